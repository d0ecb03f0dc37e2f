/*
 * common.cuh: what every kernel file shares: error checks, the two device
 * weight formats, warp and block reductions.  Not an op; each op has its own
 * .cu/.cuh pair whose launcher takes the stream first and device pointers
 * only (host metadata is the backend's business, kernels/backend_cuda.cu).
 *
 * First version, written on a machine without a GPU: everything here
 * compiles (sm_90a SASS + compute_80 PTX) and has run only in the CPU
 * emulation of t/gpu/emu (against the CPU oracle, under ASan).  The kernels
 * favour plain, obviously-correct code over speed; each design note says
 * what the faster version will change.
 *
 * Numerics: activations are fp32 everywhere, as in the CPU oracle.  Where a
 * sum or a product could be contracted into an FMA and the oracle does not
 * (gcc -std=c11 keeps mul and add apart), the kernels use __fmul_rn /
 * __fadd_rn so the two backends round the same way.
 */
#ifndef GLM_KERNELS_COMMON_CUH
#define GLM_KERNELS_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A CUDA error inside an op is unrecoverable for the engine (a sticky
 * device fault, or a bug): say where and stop, as the CPU backend does for
 * its internal errors.  Bad input never gets this far: the backend checks
 * shapes and positions on the host before launching. */
static inline void
glm_cuda_fatal(const char *what, cudaError_t e, const char *file, int line)
{
    fprintf(stderr, "glm-engine: CUDA error: %s: %s (%s:%d)\n", what,
            cudaGetErrorString(e), file, line);
    abort();
}

#define GLM_CUDA_CHECK(call)                                                  \
    do {                                                                      \
        cudaError_t glm_e_ = (call);                                          \
        if (glm_e_ != cudaSuccess) {                                          \
            glm_cuda_fatal(#call, glm_e_, __FILE__, __LINE__);                \
        }                                                                     \
    } while (0)

/* after every launch: catches bad launch configurations at once */
#define GLM_CUDA_LAUNCHED() GLM_CUDA_CHECK(cudaGetLastError())

/* How a weight sits in device memory.  2-D BF16 tensors keep their stored
 * dtype (the GEMMs read BF16); everything else becomes fp32 at upload. */
enum {
    GLM_WFMT_F32 = 0,
    GLM_WFMT_BF16 = 1,
};

__device__ __forceinline__ float
glm_ld_weight(const void *w, int fmt, int64_t i)
{
    if (fmt == GLM_WFMT_BF16) {
        return __bfloat162float(((const __nv_bfloat16 *) w)[i]);
    }
    return ((const float *) w)[i];
}

__device__ __forceinline__ float
glm_warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, o);
    }
    return v;
}

__device__ __forceinline__ float
glm_warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) {
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    }
    return v;
}

__device__ __forceinline__ double
glm_warp_sum(double v)
{
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, o);
    }
    return v;
}

/* Sum (float or double) over the block (blockDim.x a multiple of 32, at most 1024); every
 * thread gets the result.  `red` is 32 slots of shared memory; the trailing
 * barrier lets the caller reuse it at once. */
template <typename T>
__device__ __forceinline__ T
glm_block_sum(T v, T *red)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int nwarps = blockDim.x >> 5;

    v = glm_warp_sum(v);
    if (lane == 0) {
        red[warp] = v;
    }
    __syncthreads();
    v = lane < nwarps ? red[lane] : (T) 0;
    if (warp == 0) {
        v = glm_warp_sum(v);
        if (lane == 0) {
            red[0] = v;
        }
    }
    __syncthreads();
    v = red[0];
    __syncthreads();
    return v;
}

/* Blocks for a grid-stride elementwise kernel over n items. */
static inline unsigned
glm_cuda_blocks(size_t n, int threads)
{
    size_t b = (n + (size_t) threads - 1) / (size_t) threads;

    if (b < 1) {
        b = 1;
    }
    return b > 65535u * 16u ? 65535u * 16u : (unsigned) b;
}

#endif
