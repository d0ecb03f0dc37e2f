/*
 * moe_permute: token permutation by expert, so each expert's GEMMs see its
 * tokens as one contiguous block of rows.
 *
 * From the router's idx [rows, top_k] (pairs = rows * top_k):
 *   count:   counts[e] = number of pairs choosing e (counts zeroed first);
 *   offsets: offsets[e] = sum of counts[0..e), offsets[E] = pairs (one
 *            block, serial scan: E <= 1024); cursor[] zeroed;
 *   scatter: each pair (r, k) takes the next slot of its expert:
 *            slot = offsets[e] + atomicAdd(cursor[e]); perm_token[slot] = r,
 *            slot_of[r * top_k + k] = slot;
 *   gather:  xperm[slot] = x[perm_token[slot]] (rows of H floats).
 * The order of tokens inside one expert's block depends on atomics; no
 * result depends on it (GEMM rows are independent, and moe_combine sums
 * each token's experts in ascending expert id through slot_of).
 * Launch: grid-stride for count/scatter, one block per slot for gather.
 * Later: the gather folded into the grouped GEMM's A-operand load (and the
 * BF16/FP8 quantisation of the activations with it).
 */
#ifndef GLM_KERNELS_MOE_PERMUTE_CUH
#define GLM_KERNELS_MOE_PERMUTE_CUH

#include "common.cuh"

void glm_cuda_moe_count(cudaStream_t stream, const int32_t *idx, int pairs,
    int32_t *counts);

void glm_cuda_moe_offsets(cudaStream_t stream, const int32_t *counts, int n_experts,
    int32_t *offsets, int32_t *cursor);

void glm_cuda_moe_scatter(cudaStream_t stream, const int32_t *idx, int pairs,
    int top_k, const int32_t *offsets, int32_t *cursor, int32_t *perm_token,
    int32_t *slot_of);

void glm_cuda_moe_gather(cudaStream_t stream, glm_act *xperm, const glm_act *x,
    const int32_t *perm_token, int pairs, int hidden);

#endif
