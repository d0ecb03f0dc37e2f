/*
 * kv_store: writes each token's k and v rows into its slot of the paged
 * cache.
 *
 * Layout: k, v [n_tokens, kv_dim] fp32; pool_k, pool_v the glm_kv_pool
 * arrays; slot_row[i] (int64, device) is token i's row inside a layer,
 * block * block_size + pos % block_size, computed and checked against the
 * block table by the backend on the host; layer_row0 = layer * n_blocks *
 * block_size.  Launch: one block of 256 threads per token, striding over
 * kv_dim (both sides contiguous).
 * Later: the cache in BF16/FP8 (the conversion happens here), and the write
 * fused into the k/v projection epilogue after RoPE.
 */
#ifndef GLM_KERNELS_KV_STORE_CUH
#define GLM_KERNELS_KV_STORE_CUH

#include "common.cuh"

void glm_cuda_kv_store(cudaStream_t stream, float *pool_k, float *pool_v,
    int64_t layer_row0, const int64_t *slot_row, int n_tokens, int kv_dim,
    const glm_act *k, const glm_act *v);

#endif
