/*
 * gemm: the dense projections, out[rows, N] = x[rows, K] W[N, K]^T (+ b[N]):
 * BF16 activations (glm_act) against weights as stored (BF16, fp32, F16, FP8
 * E4M3 with its scales), fp32 accumulation, out BF16, or fp32 where the
 * math needs it (router logits, the final logits).
 *
 * BF16 weights (the release dtype) go through cuBLASLt on tensor cores:
 * A = W, B = x, both BF16, CUBLAS_COMPUTE_32F; D is BF16 (rounded once from
 * the fp32 accumulators) or fp32.  With a bias, D is fp32 scratch and one
 * epilogue kernel adds the bias and rounds, so the bias is not added to an
 * already rounded product.  The split of fp32 activations into hi/lo BF16
 * halves that the fp32-activation version needed is gone.
 *
 * FP8 weights (per-tensor, per-channel and block scales of any block shape),
 * F16 weights and fp32 weights (cuBLASLt multiplies like types only) go
 * through the CUDA-core kernel, which reads them as stored and dequantizes
 * in registers exactly as the oracle does (glm_ld_w): no weight is widened
 * in device memory.  cuBLASLt's scaled FP8 GEMM (FP8 activations quantized
 * on the fly) replaces this for FP8 next.
 *
 * cuBLASLt plans (descriptors, layouts and the heuristic's algorithm) are
 * cached per (M, N, K, output type, pointer alignments) in a direct-mapped
 * table.  Column-major view: out^T [N, M] = op(A) B with A = W as [K, N]
 * (ld K) transposed, B = x as [K, M] (ld K): the "TN" layout cuBLASLt likes
 * best.
 *
 * Whenever cuBLASLt has no algorithm (odd leading dimensions, alignment)
 * or fails, or GLM_CUDA_GEMM=simt is set, the CUDA-core kernel computes the
 * same product (32 x 32 output tiles, K in steps of 32 through shared
 * memory).  It is also the device-side reference the GPU test compares
 * cuBLASLt's path against.
 */
#ifndef GLM_KERNELS_GEMM_CUH
#define GLM_KERNELS_GEMM_CUH

#include "common.cuh"

typedef struct glm_cuda_gemm glm_cuda_gemm;

/* NULL with a one-line reason in why[] when cuBLASLt cannot start. */
glm_cuda_gemm *glm_cuda_gemm_create(cudaStream_t stream, int force_simt, char *why,
    size_t why_size);
void glm_cuda_gemm_destroy(glm_cuda_gemm *g);

/* out[rows, N] = x[rows, K] W[N, K]^T (+ bias[N]); out fp32 when out_f32,
 * else BF16; w as stored (common.cuh), bias [N] as stored (GLM_WFMT_*); out
 * must not alias x. */
void glm_cuda_gemm_run(glm_cuda_gemm *g, void *out, int out_f32, const glm_act *x,
    int rows, const glm_cuda_weight *w, int N, int K, const void *bias, int bias_fmt);

/* the CUDA-core fallback on its own (tests, and where cuBLASLt declines) */
void glm_cuda_gemm_simt(cudaStream_t stream, void *out, int out_f32, const glm_act *x,
    int rows, const glm_cuda_weight *w, int N, int K, const void *bias, int bias_fmt);

/* which path weights of format wfmt take, in words (printed at start-up) */
const char *glm_cuda_gemm_path(const glm_cuda_gemm *g, int wfmt);

/* Moves of any grow-only device scratch buffer (the GEMM's and the
 * backend's): a CUDA graph captured before a move reads freed memory, so
 * the backend's decode graphs are re-made when this changes. */
extern unsigned glm_cuda_scratch_moves;

#endif
