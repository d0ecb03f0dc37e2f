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
 * Numerics: activations are BF16 between ops (glm_act below), fp32 inside
 * every kernel; the oracle computes in fp32 throughout.  Where a
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

/* The CUDA backend's activation element (backend.h's act_dtype): BF16
 * between ops, half the bytes of fp32 for every activation read and
 * written.  Each kernel widens to fp32 in registers, computes in fp32 and
 * rounds once, to nearest even (at most 2^-8 relative), when it stores.  What the math needs in
 * fp32 stays fp32 (router logits and routing weights, softmax and norm
 * statistics, attention partials, the final logits). */
typedef __nv_bfloat16 glm_act;

__device__ __forceinline__ float
glm_act_ld(const glm_act *p, int64_t i)
{
    return __bfloat162float(p[i]);
}

__device__ __forceinline__ void
glm_act_st(glm_act *p, int64_t i, float v)
{
    p[i] = __float2bfloat16_rn(v);
}

/* How a weight sits in device memory: exactly as the checkpoint stores it
 * (no weight is ever widened on the device; the kernels widen in registers,
 * as the CPU oracle does).  FP8 E4M3 weights come with their scale tensor,
 * also as stored (F32 or BF16), described by a glm_cuda_weight. */
enum {
    GLM_WFMT_F32 = 0,
    GLM_WFMT_BF16 = 1,
    GLM_WFMT_F16 = 2,
    GLM_WFMT_FP8 = 3,           /* E4M3 ("e4m3fn": no infinities, max 448) */
};

/* How an FP8 weight's scale covers it; the values of safetensors.h's
 * glm_scale_strategy (kernels/ does not include engine headers) */
enum {
    GLM_WSCALE_NONE = 0,
    GLM_WSCALE_TENSOR = 1,      /* one scale */
    GLM_WSCALE_CHANNEL = 2,     /* one per output row */
    GLM_WSCALE_BLOCK = 3,       /* one per [block_rows, block_cols] block, any shape */
};

/* IEEE half bits to fp32, exact (subnormals, infinities and NaN kept) */
__device__ __forceinline__ float
glm_f16_bits_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t) (h & 0x8000u) << 16, e = (h >> 10) & 31u, m = h & 1023u;
    float f;

    if (e == 0) {
        f = (float) m * 5.9604644775390625e-8f;        /* m * 2^-24, exact */
        return sign ? -f : f;
    }
    if (e == 31) {
        return __uint_as_float(sign | 0x7f800000u | (m << 13));
    }
    return __uint_as_float(sign | ((e + 112) << 23) | (m << 13));
}

/* FP8 E4M3 bits to fp32, exactly as safetensors.h's glm_fp8_e4m3_to_f32
 * (the oracle's conversion; S.1111.111 is NaN) */
__device__ __forceinline__ float
glm_fp8_bits_to_float(uint8_t b)
{
    uint32_t sign = (uint32_t) (b & 0x80) << 24, e = (b >> 3) & 15u, m = b & 7u;
    float f;

    if (e == 0) {
        f = (float) m * 0.001953125f;                  /* m * 2^-9 */
        return sign ? -f : f;
    }
    if (e == 15 && m == 7) {
        return __uint_as_float(sign | 0x7f800000u | (m << 20));
    }
    return __uint_as_float(sign | ((e + 120) << 23) | (m << 20));
}

/* fp32 to FP8 E4M3 ("e4m3fn") bits: round to nearest even, saturating at
 * +-448 (there is no infinity), NaN to NaN: how vLLM's fp8_e4m3 KV cache
 * stores x / scale.  Exact in fp32: every step is a scaling by a power of
 * two or a rintf. */
__device__ __forceinline__ uint8_t
glm_float_to_fp8_bits(float x)
{
    uint32_t u = __float_as_uint(x), sign = (u >> 24) & 0x80u;
    float a = fabsf(x), q;
    int e;

    if (a != a) {
        return (uint8_t) (sign | 0x7f);
    }
    if (a >= 448.0f) {
        return (uint8_t) (sign | 0x7e);                /* 1.75 * 2^8 */
    }
    if (a < 0.015625f) {                               /* below 2^-6: subnormal */
        q = rintf(a * 512.0f);                         /* units of 2^-9 */
        return (uint8_t) (sign | (uint32_t) q);        /* q == 8 is 2^-6, code 0x08 */
    }
    e = (int) ((__float_as_uint(a) >> 23) & 0xff) - 127;      /* a in [2^e, 2^e+1) */
    q = rintf(ldexpf(a, 3 - e));                       /* 8..16: 1.mmm in eighths */
    if (q >= 16.0f) {
        q = 8.0f;
        e++;
    }
    if (e > 8 || (e == 8 && q > 14.0f)) {
        return (uint8_t) (sign | 0x7e);
    }
    return (uint8_t) (sign | (uint32_t) ((e + 7) << 3) | ((uint32_t) q - 8u));
}

/* element i of an unscaled stored tensor, as fp32 */
__device__ __forceinline__ float
glm_ld_weight(const void *w, int fmt, int64_t i)
{
    switch (fmt) {
    case GLM_WFMT_BF16:
        return __bfloat162float(((const __nv_bfloat16 *) w)[i]);
    case GLM_WFMT_F16:
        return glm_f16_bits_to_float(((const uint16_t *) w)[i]);
    case GLM_WFMT_FP8:
        return glm_fp8_bits_to_float(((const uint8_t *) w)[i]);
    default:
        return ((const float *) w)[i];
    }
}

/* A 2-D weight [N, K] as stored on the device, with what dequantizes it. */
typedef struct {
    const void *w;              /* [N, K] row-major, GLM_WFMT_* */
    int         fmt;
    /* FP8 only: value = fp8 * scale (the oracle's glm_fp8_dequant) */
    int         strategy;       /* GLM_WSCALE_* */
    const void *scale;          /* as stored: F32 or BF16 */
    int         scale_fmt;
    int         block_rows, block_cols, scale_cols;
    int64_t     scale_row0;     /* a row view's first row in its weight */
    int64_t     scale_col0;     /* a column shard's first column in its weight */
    int         round_bf16;     /* a BF16 scale: the product rounded to BF16,
                                   as transformers' dequantization does */
} glm_cuda_weight;

/* W[n, k] as fp32, dequantized in registers exactly as the oracle does */
__device__ __forceinline__ float
glm_ld_w(const glm_cuda_weight &w, int64_t n, int64_t k, int64_t K)
{
    float v = glm_ld_weight(w.w, w.fmt, n * K + k), s;
    int64_t r;

    if (w.fmt != GLM_WFMT_FP8 || w.strategy == GLM_WSCALE_NONE) {
        return v;
    }
    r = w.scale_row0 + n;
    s = glm_ld_weight(w.scale, w.scale_fmt,
                      w.strategy == GLM_WSCALE_TENSOR ? 0
                      : w.strategy == GLM_WSCALE_CHANNEL ? r
                      : r / w.block_rows * w.scale_cols
                        + (w.scale_col0 + k) / w.block_cols);
    v = __fmul_rn(v, s);
    return w.round_bf16 ? __bfloat162float(__float2bfloat16_rn(v)) : v;
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
