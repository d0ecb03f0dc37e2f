/*
 * moe_combine: out[r] = sum over the token's top_k picks, in ascending
 * expert id, of w[r, k] * y[slot_of[r, k]], then + y[r] (the shared
 * expert's output) when the layer has one: the CPU oracle's order (it loops
 * the picks in ascending id, adding into a zeroed row, then adds the shared
 * expert's row), with the products and sums rounded separately as it does,
 * and one BF16 rounding at the store.  A pick without a slot (slot_of < 0:
 * another rank's expert) adds nothing; the all-reduce after the block adds
 * it on its own rank.
 *
 * Layout: y [slots, H] BF16 (moe_experts' down outputs; the shared expert's
 * rows are slots 0..rows-1), idx / w / slot_of [rows, top_k] with the picks
 * already in ascending expert id (moe_route stores them so), out [rows, H].
 * Launch: one block of 256 threads per token, threads striding over H.
 * Why not in the down GEMM's epilogue: a token's picks land in different
 * CTAs, and summing them there in a fixed order would need a second pass
 * (or order-dependent atomics) anyway.
 */
#ifndef GLM_KERNELS_MOE_COMBINE_CUH
#define GLM_KERNELS_MOE_COMBINE_CUH

#include "common.cuh"

void glm_cuda_moe_combine(cudaStream_t stream, glm_act *out, const glm_act *y,
    const float *w, const int32_t *slot_of, int rows, int top_k, int hidden,
    int has_shared);

#endif
