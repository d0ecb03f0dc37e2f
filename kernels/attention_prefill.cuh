/*
 * attention_prefill: causal attention of runs of query tokens of one
 * sequence (a prefill chunk) over that sequence's paged KV cache.
 *
 * Tile i = int4 { first token, n_rows <= GLM_TILE_Q, sequence, 0 }: tokens
 * first .. first + n_rows - 1 of the batch all belong to that sequence; row
 * r attends to positions 0 .. tok_pos[first + r] of it (the chunk's own k/v
 * are already in the cache: kv_store runs first, so chunked prefill over an
 * earlier cached prefix needs nothing special).  The backend builds tiles
 * from runs of consecutive tokens of one sequence and sends lone tokens
 * (decode) to attention_decode instead.
 *
 * Layout: q, out [n_tokens, heads * head_dim] BF16, math fp32; the cache as
 * paged_kv.cuh.  Launch: grid (n_tiles, heads), GLM_TILE_THREADS threads,
 * glm_attn_tile_smem(head_dim) bytes of dynamic shared memory; head_dim <=
 * GLM_ATTN_MAX_HEAD_DIM.  The kernel is attention_tile.cuh's; its note says
 * why it is fp32 on CUDA cores for now.
 */
#ifndef GLM_KERNELS_ATTENTION_PREFILL_CUH
#define GLM_KERNELS_ATTENTION_PREFILL_CUH

#include "paged_kv.cuh"

void glm_cuda_attention_prefill(cudaStream_t stream, glm_act *out, const glm_act *q,
    glm_cuda_paged kv, const int4 *tiles, int n_tiles, const int32_t *tok_pos,
    int heads, int kv_heads, int head_dim, float scale);

#endif
