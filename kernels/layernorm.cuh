/*
 * layernorm: out[r] = (x[r] - mean) / sqrt(var + eps) * w + b, torch
 * LayerNorm (biased variance), the vision merger's norm.
 *
 * Layout: x, out [rows, dim] BF16 (glm_act; may alias), statistics in double; w, b [dim] as stored
 * (GLM_WFMT_*, widened in registers).  Launch: one
 * block of 256 threads per row.  Two passes with double accumulators, as
 * the CPU oracle does (mean, then the centred sum of squares); the affine
 * step is the oracle's ((x - mean) * inv) * w + b in fp32.
 */
#ifndef GLM_KERNELS_LAYERNORM_CUH
#define GLM_KERNELS_LAYERNORM_CUH

#include "common.cuh"

void glm_cuda_layernorm(cudaStream_t stream, glm_act *out, const glm_act *x,
    const void *w, const void *b, int wfmt, int bfmt, int rows, int dim, float eps);

#endif
