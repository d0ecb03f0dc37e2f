/*
 * gemm: the dense projections, out[rows, N] = x[rows, K] W[N, K]^T (+ b[N]):
 * BF16 activations (glm_act; FP8 on the fly against FP8 weights) against
 * weights as stored (BF16, fp32, F16, FP8 E4M3 with its scales), fp32
 * accumulation, out BF16, or fp32 where the math needs it (router logits,
 * the final logits).
 *
 * BF16 weights (the release dtype) go through cuBLASLt on tensor cores:
 * A = W, B = x, both BF16, CUBLAS_COMPUTE_32F; D is BF16 (rounded once from
 * the fp32 accumulators) or fp32.  With a bias, D is fp32 scratch and one
 * epilogue kernel adds the bias and rounds, so the bias is not added to an
 * already rounded product.  The split of fp32 activations into hi/lo BF16
 * halves that the fp32-activation version needed is gone.
 *
 * FP8 E4M3 weights go FP8 x FP8 through cuBLASLt's scaled matmul (CUDA
 * 12.9+ scale modes, Hopper): the activations are quantized on the fly
 * (kernels/quant_act: amax / 448 per group, vLLM's convention) and each
 * weight format maps onto a mode sm_90 pairs with the activations' one:
 *   per tensor, per channel   A OUTER_VEC_32F (N scales; a per-tensor scale
 *                             broadcast), B OUTER_VEC_32F (per token)
 *   128x128 blocks            A BLK128x128_32F ([ceil(N/128)][pad4(ceil(K/128))]
 *                             fp32), B VEC128_32F (per 1x128 group, scales
 *                             MN-major with ld pad4(M))
 *   other block shapes        no mode: the CUDA-core kernel, BF16 activations
 * The weight's scales in cuBLASLt's layout (fp32, padded) are made on a
 * weight's first use; F32 scales already in that layout are used in place.
 * FP8 needs TN, K % 16 == 0, N % 8 == 0 (D's leading dimension in 16-byte
 * units) and 16-byte aligned operands; anything else, or a declining
 * heuristic, takes the CUDA-core kernel.  GLM_CUDA_FP8=w8a16 keeps BF16
 * activations for FP8 weights (the CUDA-core kernel, closest to the
 * oracle); the default is FP8 x FP8, twice BF16's tensor-core rate on
 * Hopper and half the activation bytes.  D is BF16 or fp32 as for BF16.
 *
 * F16 and fp32 weights (cuBLASLt multiplies like types only), and FP8
 * weights cuBLASLt has no mode for, go through the CUDA-core kernel, which
 * reads them as stored and dequantizes in registers exactly as the oracle
 * does (glm_ld_w): no weight is widened in device memory.
 *
 * cuBLASLt plans (descriptors, layouts and the heuristic's algorithm) are
 * cached per (M, N, K, output type, scale modes, pointer alignments) in a
 * direct-mapped table; an FP8 call sets its two scale pointers on the
 * plan's descriptor.  Column-major view: out^T [N, M] = op(A) B with A = W as [K, N]
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

/* the same for FP8 weights scaled per GLM_WSCALE_* (blocks of the given
 * shape) */
const char *glm_cuda_gemm_path_fp8(const glm_cuda_gemm *g, int strategy, int block_rows,
    int block_cols);

/* drops the FP8 weights' prepared scales (before the weights are freed) */
void glm_cuda_gemm_forget_weights(glm_cuda_gemm *g);

/* 0 when x W^T takes BF16 activations; else the group along K of the FP8
 * activations' scales (K: per token, 128: per 1x128 group) */
int glm_cuda_gemm_fp8_act_group(const glm_cuda_gemm *g, const glm_cuda_weight *w, int N,
    int K);
/* Moves of any grow-only device scratch buffer (the GEMM's and the
 * backend's): a CUDA graph captured before a move reads freed memory, so
 * the backend's decode graphs are re-made when this changes. */
extern unsigned glm_cuda_scratch_moves;

#endif
