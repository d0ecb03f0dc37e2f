/*
 * swiglu: out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)).
 *
 * Layout: three BF16 (glm_act) arrays of n elements, fp32 math (out may alias gate, as the model
 * calls it).  Launch: grid-stride, 256 threads.  The expression is the CPU
 * oracle's, term for term (expf, one division, one product); expf is the
 * accurate device version (no fast-math), within 2 ulp of glibc's.
 * Later: fused into the gate/up GEMM epilogue, writing BF16/FP8 for the down
 * projection.
 */
#ifndef GLM_KERNELS_SWIGLU_CUH
#define GLM_KERNELS_SWIGLU_CUH

#include "common.cuh"

void glm_cuda_swiglu(cudaStream_t stream, glm_act *out, const glm_act *gate,
    const glm_act *up, size_t n);

#endif
