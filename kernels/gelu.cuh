/*
 * gelu: out[i] = 0.5 x (1 + erf(x / sqrt 2)), the exact form (torch
 * nn.GELU(), the vision merger's activation).
 *
 * Layout: BF16 (glm_act) arrays of n elements, fp32 math, out may alias x.  Launch: grid-stride,
 * 256 threads.  erff is the accurate device version; the expression is the
 * CPU oracle's, with the products kept unfused.
 */
#ifndef GLM_KERNELS_GELU_CUH
#define GLM_KERNELS_GELU_CUH

#include "common.cuh"

void glm_cuda_gelu(cudaStream_t stream, glm_act *out, const glm_act *x, size_t n);

#endif
