/*
 * rmsnorm: out[r] = w * x[r] / sqrt(mean(x[r]^2) + eps), rows of length dim;
 * the fused form first adds a residual in place: x[r] += y[r], then norms
 * the sum (the decoder's "x += attn(...); h = norm(x)" pair in one pass).
 *
 * Layout: x, y, out [rows, dim] BF16 (glm_act; out may alias x), the sum of
 * squares in fp32; w [dim] as stored
 * (BF16 or fp32, GLM_WFMT_*; widened in registers).  Launch: one block per row; 32 threads for
 * dim <= 128 (q/k-norm over head_dim rows), 128 up to 512, else 256.  Each
 * thread touches the same indices in both passes, so in-place use has no
 * cross-thread hazard.  The scale is computed as the oracle does:
 * inv = 1 / sqrtf(ss / dim + eps); y = w * (x * inv), with IEEE division and
 * square root (no fast-math); only the order of the fp32 sum of squares
 * differs (tree instead of sequential).
 * Later: vector loads, several rows per block for small dim, BF16/FP8 output
 * for the next GEMM.
 */
#ifndef GLM_KERNELS_RMSNORM_CUH
#define GLM_KERNELS_RMSNORM_CUH

#include "common.cuh"

void glm_cuda_rmsnorm(cudaStream_t stream, glm_act *out, const glm_act *x,
    const void *w, int wfmt, int rows, int dim, float eps);

/* x += y; out = rmsnorm(x) */
void glm_cuda_add_rmsnorm(cudaStream_t stream, glm_act *out, glm_act *x, const glm_act *y,
    const void *w, int wfmt, int rows, int dim, float eps);

#endif
