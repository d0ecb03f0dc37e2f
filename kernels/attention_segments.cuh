/*
 * attention_segments: non-causal attention inside segments (the vision
 * tower: each image, and each frame pair of a video, attends only within
 * itself).  Token i of segment s attends to every token j with
 * cu_seqlens[s] <= j < cu_seqlens[s + 1].
 *
 * Tile i = int4 { first token, n_rows <= GLM_TILE_Q, segment start,
 * segment length }: the backend cuts each segment into tiles of
 * consecutive tokens.  Layout: q, k, v, out [n, heads * head_dim] with rows
 * `stride` elements apart (head h at column h * head_dim), BF16.  Launch:
 * grid (n_tiles, heads), attention_tile.cuh's kernel with a contiguous KV
 * source and no GQA.
 * Later: the vision tower in BF16 with a tensor-core tile; segments of a
 * few thousand patches make this the tower's largest cost.
 */
#ifndef GLM_KERNELS_ATTENTION_SEGMENTS_CUH
#define GLM_KERNELS_ATTENTION_SEGMENTS_CUH

#include "common.cuh"

void glm_cuda_attention_segments(cudaStream_t stream, glm_act *out, const glm_act *q,
    const glm_act *k, const glm_act *v, int stride, const int4 *tiles, int n_tiles,
    int heads, int head_dim, float scale);

#endif
