/*
 * gemm: the dense projections, out[rows, N] = x[rows, K] W[N, K]^T (+ b[N]),
 * fp32 activations against weights kept in their stored dtype (BF16, fp32,
 * F16, FP8 E4M3 with its scales), fp32 accumulation: the CPU oracle's
 * semantics.
 *
 * BF16 weights (the release dtype) go through cuBLASLt on tensor cores.
 * cuBLASLt has no fp32 x BF16 GEMM, and casting x to BF16 would round the
 * activations to 8 mantissa bits, far from the oracle.  So x is split
 * exactly into two BF16 parts, x = hi + lo + O(2^-17 |x|) (hi =
 * bf16(x), lo = bf16(x - hi)), and y = hi W^T + lo W^T with fp32
 * accumulation: each product of two BF16 numbers is exact in fp32, so the
 * result carries about 16 mantissa bits of x instead of 8 (relative error
 * ~1e-5 of the row scale, like fp32 summation-order differences).
 *   - rows <= GLM_GEMM_STACK_ROWS (decode): hi and lo are stacked as 2*rows
 *     rows of ONE GEMM (the weights, which dominate the traffic, are read
 *     once), then a combine kernel adds the halves and the bias;
 *   - more rows (prefill, compute-bound): two GEMMs into out, the second
 *     with beta = 1, then the bias.
 * fp32 weights (norms never come here; small checkpoints, converted
 * dtypes) use cuBLASLt's fp32 GEMM (CUBLAS_COMPUTE_32F: no TF32).
 *
 * cuBLASLt plans (descriptors, layouts and the heuristic's algorithm) are
 * cached per (dtype, M, N, K, pointer alignments) in a direct-mapped table.
 * Column-major view: out^T [N, M] = op(A) B with A = W as [K, N] (ld K)
 * transposed, B = x as [K, M] (ld K): the "TN" layout cuBLASLt likes best.
 *
 * FP8 weights (per-tensor, per-channel and block scales of any block shape)
 * and F16 weights go through the CUDA-core kernel, which reads them as
 * stored and dequantizes in registers exactly as the oracle does
 * (glm_ld_w): no weight is widened in device memory.
 *
 * Whenever cuBLASLt has no algorithm (odd leading dimensions, alignment)
 * or fails, or GLM_CUDA_GEMM=simt is set, a plain tiled CUDA-core kernel
 * computes the same product in fp32 (32 x 32 output tiles, K in steps of
 * 32 through shared memory).  It is also the device-side reference the
 * GPU test compares cuBLASLt's path against.
 *
 * Later: BF16 (then FP8, block-scaled) activations straight from the
 * previous kernel's epilogue, dropping the split; bias and SwiGLU epilogues;
 * FP8 weights through cuBLASLt's scaled FP8 GEMM.
 */
#ifndef GLM_KERNELS_GEMM_CUH
#define GLM_KERNELS_GEMM_CUH

#include "common.cuh"

#define GLM_GEMM_STACK_ROWS 32

typedef struct glm_cuda_gemm glm_cuda_gemm;

/* NULL with a one-line reason in why[] when cuBLASLt cannot start. */
glm_cuda_gemm *glm_cuda_gemm_create(cudaStream_t stream, int force_simt, char *why,
    size_t why_size);
void glm_cuda_gemm_destroy(glm_cuda_gemm *g);

/* out[rows, N] = x[rows, K] W[N, K]^T (+ bias[N]); w as stored (common.cuh),
 * bias [N] as stored (GLM_WFMT_*); out must not alias x. */
void glm_cuda_gemm_run(glm_cuda_gemm *g, float *out, const float *x, int rows,
    const glm_cuda_weight *w, int N, int K, const void *bias, int bias_fmt);

/* the CUDA-core fallback on its own (tests, and where cuBLASLt declines) */
void glm_cuda_gemm_simt(cudaStream_t stream, float *out, const float *x, int rows,
    const glm_cuda_weight *w, int N, int K, const void *bias, int bias_fmt);

/* which path weights of format wfmt take, in words (printed at start-up) */
const char *glm_cuda_gemm_path(const glm_cuda_gemm *g, int wfmt);

#endif
