/*
 * moe_combine: out[r] = sum over the token's top_k experts, in ascending
 * expert id, of w[r, k] * y[slot_of[r, k]] — the CPU oracle's order (it
 * loops experts in ascending id, adding into a zeroed row), with the
 * products and sums rounded separately as it does.
 *
 * Layout: y [pairs, H] BF16, summed in fp32 (the experts' down-projection outputs in
 * permuted order), idx / w / slot_of [rows, top_k], out [rows, H].  Launch:
 * one block of 256 threads per token; thread 0 orders the token's top_k
 * (<= 32) pairs by expert id in shared memory, then threads stride over H.
 * Later: fused into the down GEMM's epilogue (scatter-add with the weight),
 * plus the shared expert's output, in one pass.
 */
#ifndef GLM_KERNELS_MOE_COMBINE_CUH
#define GLM_KERNELS_MOE_COMBINE_CUH

#include "common.cuh"

void glm_cuda_moe_combine(cudaStream_t stream, glm_act *out, const glm_act *y,
    const int32_t *idx, const float *w, const int32_t *slot_of, int rows, int top_k,
    int hidden);

#endif
