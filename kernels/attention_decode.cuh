/*
 * attention_decode: causal attention of single query tokens (decode steps,
 * and any token the backend did not group into a prefill tile) over their
 * sequences' paged KV cache, optionally split over the KV length.
 *
 * What: for each selected token t (tok_list[0 .. n_sel)) and query head h,
 * softmax(scale * q_t,h . k_p) over positions p = 0 .. tok_pos[t] of
 * sequence tok_seq[t], times v_p; head h reads KV head h / (heads /
 * kv_heads).
 *
 * How: one warp per (token, head, split); a lane holds head_dim / 32 of the
 * query and of the accumulator (head_dim <= 256).  The warp walks its
 * positions in order with an online softmax (running max m, sum l,
 * rescaled accumulator); each position costs one coalesced K row read, one
 * shuffle reduction and one V row read.  4 warps (4 heads) per block.
 * With n_splits == 1 the warp writes out = acc / l directly.  Otherwise
 * split s covers positions [s * split_len, (s + 1) * split_len) and writes
 * (m, l, acc[head_dim]) to `partial` [n_sel][heads][n_splits][head_dim + 2];
 * a second kernel merges the splits (out = sum_s acc_s e^(m_s - M) /
 * sum_s l_s e^(m_s - M), M = max m_s), so a 32k-token context runs on 64
 * blocks' worth of warps instead of one.  The backend chooses split_len.
 *
 * Layout: q, out [n_tokens, heads * head_dim] BF16 activations, the
 * softmax and accumulators fp32; cache as paged_kv.cuh (fp32, BF16 or FP8).
 * Later: a block per (token, KV head) loading each K/V row once for all
 * `group` query heads (12 for GLM-4.5-Air), 16-byte loads, the BF16/FP8
 * cache; split count from the SM count rather than a fixed length.
 */
#ifndef GLM_KERNELS_ATTENTION_DECODE_CUH
#define GLM_KERNELS_ATTENTION_DECODE_CUH

#include "paged_kv.cuh"

#define GLM_DECODE_WARPS 4

void glm_cuda_attention_decode(cudaStream_t stream, glm_act *out, const glm_act *q,
    glm_cuda_paged kv, const int32_t *tok_list, int n_sel, const int32_t *tok_seq,
    const int32_t *tok_pos, int heads, int kv_heads, int head_dim, float scale,
    int split_len, int n_splits, float *partial);

#endif
