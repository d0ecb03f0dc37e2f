/*
 * kv_store: writes each token's k and v rows into its slot of the paged
 * cache, converting to the pool's dtype on the way (fp32; BF16 rounded to
 * nearest even; FP8 E4M3 as x / scale with this layer's scale, rounded to
 * nearest even and saturated at +-448, vLLM's fp8_e4m3).
 *
 * Layout: k, v [n_tokens, kv_dim] BF16 activations; pool_k, pool_v the
 * glm_kv_pool arrays (paged_kv.cuh); slot_row[i] (int64, device) is token
 * i's row inside a layer, block * block_size + pos % block_size, computed
 * and checked against the block table by the backend on the host;
 * layer_row0 = layer * n_blocks * block_size.  Launch: one block of 256
 * threads per token, striding over kv_dim (both sides contiguous).
 * Later: the write fused into the k/v projection epilogue after RoPE.
 */
#ifndef GLM_KERNELS_KV_STORE_CUH
#define GLM_KERNELS_KV_STORE_CUH

#include "common.cuh"
#include "paged_kv.cuh"

void glm_cuda_kv_store(cudaStream_t stream, void *pool_k, void *pool_v, int dtype,
    float k_scale, float v_scale, int64_t layer_row0, const int64_t *slot_row,
    int n_tokens, int kv_dim, const glm_act *k, const glm_act *v);

#endif
