/*
 * attention_decode: causal attention of single query tokens (decode steps,
 * and any token the backend did not group into a prefill tile) over their
 * sequences' paged KV cache, split over the KV length, the splits combined
 * in the same launch.
 *
 * What: for each selected token t (tok_list[0 .. n_sel)) and query head h,
 * softmax(scale * q_t,h . k_p) over positions p = 0 .. tok_pos[t] of
 * sequence tok_seq[t], times v_p; head h reads KV head h / (heads /
 * kv_heads).
 *
 * Launch shape: grid (n_sel, kv_heads * head_chunks, n_splits), 128
 * threads.  One CTA serves one (token, KV head, split) and ALL the query
 * heads of that KV head (GQA: 12 for GLM-4.5-Air), up to
 * GLM_DEC_MAX_GROUP of them (head_chunks = ceil(group / GLM_DEC_MAX_GROUP),
 * 1 for every published config), so each K and V row of the split is read
 * from memory once, not once per query head.
 *
 * How: the CTA stages its heads' queries (fp32) in shared memory, then
 * walks its positions in chunks of GLM_DEC_CHUNK (<= 32, 2048 / head_dim):
 * the chunk's block-table rows, then its K and V rows widened to fp32 into
 * shared memory (K rows padded by one float so the score loop's lanes,
 * which read different rows, hit different banks), then the group x chunk
 * scores (a thread per pair), then per head an online softmax (a warp per
 * head: running max m, sum l, the correction e^(m_old - m_new)), then the
 * accumulators acc[g][d] (threads own (g, d) pairs, in registers).  fp32
 * throughout; the output is rounded to BF16 once.
 *
 * Splits: split s covers [s * split_len, (s + 1) * split_len) of the
 * sequence.  The grid depends only on the number of tokens and on a
 * maximum context (n_splits * split_len >= the longest sequence), never on
 * the lengths: each CTA reads its sequence's length from device memory and
 * returns at once when its split starts past it, so a CUDA graph captured
 * for a batch size and a maximum context replays for any lengths below it.
 * A sequence whose length fits one split is written directly.  Otherwise
 * each active CTA writes (m, l, acc) for its heads to `partial`, fences,
 * and takes a ticket from `counter` [n_sel][kv_heads * head_chunks]; the
 * CTA that draws the last ticket (the number of active splits, known from
 * the length) merges all of them, out = sum_s acc_s e^(m_s - M) /
 * sum_s l_s e^(m_s - M) with M = max_s m_s, and resets the counter to 0
 * for the next launch.  The counters must be zero before the first launch
 * (the backend clears them when it allocates them).
 *
 * Split count: glm_attn_decode_splits, from the SM count and the batch:
 * enough CTAs for about two waves of the SMs, none shorter than
 * GLM_DEC_MIN_SPLIT positions, at most GLM_DEC_MAX_SPLITS.  Batch 1 of
 * GLM-4.5-Air on 132 SMs: 8 CTAs per split, so a long context gets 33
 * splits; batch 64: 512 CTAs already, one split.
 *
 * Layout: q, out [n_tokens, heads * head_dim] BF16 activations; cache as
 * paged_kv.cuh (fp32, BF16 or FP8 with per-layer scales); partial
 * [n_sel][kv_heads * head_chunks][n_splits][gsz * (head_dim + 2)] fp32
 * (gsz = min(group, GLM_DEC_MAX_GROUP)): m[gsz], l[gsz], acc[gsz][head_dim].
 * head_dim <= 256.
 * Later: 16-byte loads of the K/V rows and a double-buffered (cp.async)
 * chunk; the scores on tensor cores when the group is large.
 */
#ifndef GLM_KERNELS_ATTENTION_DECODE_CUH
#define GLM_KERNELS_ATTENTION_DECODE_CUH

#include "paged_kv.cuh"

#define GLM_DEC_THREADS     128
#define GLM_DEC_MAX_GROUP   16      /* query heads per CTA */
#define GLM_DEC_MIN_SPLIT   256     /* positions: shorter splits cost more to merge than they save */
#define GLM_DEC_MAX_SPLITS  64

/* n_splits for n_sel tokens of kv_heads KV heads (group query heads each)
 * over contexts of at most max_len positions on n_sms SMs */
int glm_attn_decode_splits(int n_sms, int n_sel, int kv_heads, int group, int max_len);

/* floats of `partial` and ints of `counter` a launch needs */
size_t glm_attn_decode_partial_floats(int n_sel, int heads, int kv_heads, int head_dim,
    int n_splits);
size_t glm_attn_decode_counters(int n_sel, int heads, int kv_heads);

void glm_cuda_attention_decode(cudaStream_t stream, glm_act *out, const glm_act *q,
    glm_cuda_paged kv, const int32_t *tok_list, int n_sel, const int32_t *tok_seq,
    const int32_t *tok_pos, int heads, int kv_heads, int head_dim, float scale,
    int split_len, int n_splits, float *partial, int *counter);

#endif
