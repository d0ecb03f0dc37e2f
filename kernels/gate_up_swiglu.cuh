/*
 * gate_up_swiglu: a dense MLP's first half in one launch for a few rows
 * (decode): out[r, j] = silu(x[r] . gate[j]) * (x[r] . up[j]).
 *
 * What is fused: the gate GEMM, the up GEMM and SwiGLU (three launches and
 * two [rows, N] round trips through memory otherwise); the two dot products
 * stay fp32 until the one rounding of the product, one rounding fewer than
 * the unfused GEMM, GEMM, swiglu.
 * Layout: x [rows, K] BF16 activations; gate and up [N, K] BF16 as stored
 * (the backend falls back to the unfused sequence for other formats);
 * out [rows, N] BF16.
 * Launch: a warp per output column j (8 per block) and up to
 * GLM_GATE_UP_ROWS rows per block (grid.y over row groups); each lane
 * strides over K reading one gate and one up element per step for every
 * row of its group, then a shuffle reduction.  A weight row is read once
 * per row group, so this serves decode batches (the backend uses it for
 * rows <= GLM_GATE_UP_ROWS; larger batches take the GEMMs).
 * Later: 16-byte loads and FP8 weights with their scales; a grouped GEMM
 * epilogue (issue 14's MoE kernel) for prefill-sized batches.
 */
#ifndef GLM_KERNELS_GATE_UP_SWIGLU_CUH
#define GLM_KERNELS_GATE_UP_SWIGLU_CUH

#include "common.cuh"

#define GLM_GATE_UP_ROWS 8

void glm_cuda_gate_up_swiglu(cudaStream_t stream, glm_act *out, const glm_act *x, int rows,
    const __nv_bfloat16 *gate, const __nv_bfloat16 *up, int N, int K);

#endif
