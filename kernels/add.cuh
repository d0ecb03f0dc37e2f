/*
 * add: x[i] += y[i] (the residual adds).
 *
 * Layout: two BF16 (glm_act) arrays of n elements, summed in fp32.  Launch: grid-stride, 256 threads.
 * Later: fused into rmsnorm (glm_cuda_add_rmsnorm already does the
 * residual-then-norm pair in one pass) and into GEMM epilogues.
 */
#ifndef GLM_KERNELS_ADD_CUH
#define GLM_KERNELS_ADD_CUH

#include "common.cuh"

void glm_cuda_add(cudaStream_t stream, glm_act *x, const glm_act *y, size_t n);

#endif
