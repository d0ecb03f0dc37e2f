/*
 * quant_act: BF16 activations to FP8 E4M3 with fp32 scales computed on the
 * fly, per token (one scale per row) or per 1 x group of a row (group 128:
 * DeepSeek-V3's and vLLM's per_token_group_quant_fp8 convention), for the
 * scaled FP8 GEMMs (kernels/gemm.cu) and any later FP8 consumer.
 *
 * Math (vLLM's per_token_group_quant_fp8, term for term): over a group,
 * amax = max |x| clamped to at least 1e-10 (an all-zero group gets a
 * finite scale), scale = amax / 448, q = x / scale clamped to +-448 and
 * rounded to the nearest even E4M3 value (glm_float_to_fp8_bits), so
 * q * scale ~= x with at most 2^-4 relative error per element.  Every step
 * is one IEEE fp32 operation (a division is correctly rounded without
 * fast-math, which the build does not use), so the CPU twin
 * (engine/model/quant.c, glm_quant_act_fp8) gives the same bytes.
 *
 * Layout: x [rows, cols] BF16 row-major; q [rows, cols] E4M3 bytes
 * row-major; groups of `group` elements from the start of each row (the
 * last one shorter when cols is not a multiple; group >= cols means one
 * scale per row).  scales of row r, group g at
 *   scales[g * scale_ld + r]     with scale_ld > 0 (MN-major: what
 *                                cuBLASLt's OUTER_VEC_32F and VEC128_32F
 *                                modes read, scale_ld >= rows, a multiple
 *                                of 4 for VEC128_32F),
 *   scales[r * n_groups + g]     with scale_ld == 0 (row-major, vLLM's
 *                                default layout).
 *
 * Launch: one block of 128 threads per (row, group): the group's amax by a
 * block reduction, then each thread quantizes its strided elements.  Plain
 * and memory-bound; later, fused into the producing kernel (rmsnorm,
 * swiglu) so the BF16 row is not read twice.
 */
#ifndef GLM_KERNELS_QUANT_ACT_CUH
#define GLM_KERNELS_QUANT_ACT_CUH

#include "common.cuh"

#define GLM_FP8_E4M3_MAX     448.0f
#define GLM_QUANT_ACT_EPS    1e-10f

void glm_cuda_quant_act_fp8(cudaStream_t stream, uint8_t *q, float *scales,
    const glm_act *x, int rows, int cols, int group, int scale_ld);

#endif
