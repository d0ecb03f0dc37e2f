/*
 * qkv_split: the epilogue of the fused q/k/v projection.  The backend runs
 * ONE GEMM over the three weights, which the upload placed side by side in
 * device memory (so together they are one [Nq + Nk + Nv, K] matrix, each
 * byte as stored), into fp32 scratch y [rows, Nq + Nk + Nv]; this kernel
 * adds each part's bias (as stored; NULL: none) to the fp32 sums and
 * rounds once into the three BF16 outputs q [rows, Nq], k [rows, Nk],
 * v [rows, Nv], the layout the unfused matmuls leave.
 *
 * Why a separate pass: the bias must meet the fp32 sum, not a rounded
 * product (gemm.cuh's epilogue does the same for one matrix), and the
 * outputs are three separate buffers.  It replaces the three matmuls'
 * three bias epilogues, so a biased q/k/v projection is 2 launches, not 6.
 *
 * Launch: a grid-stride loop over rows * (Nq + Nk + Nv), 256 threads.
 */
#ifndef GLM_KERNELS_QKV_SPLIT_CUH
#define GLM_KERNELS_QKV_SPLIT_CUH

#include "common.cuh"

typedef struct {
    glm_act     *out[3];
    const void  *bias[3];       /* NULL: none */
    int          bias_fmt[3];
    int          n[3];          /* Nq, Nk, Nv */
} glm_qkv_parts;

void glm_cuda_qkv_split(cudaStream_t stream, const float *y, int rows, const glm_qkv_parts *p);

#endif
