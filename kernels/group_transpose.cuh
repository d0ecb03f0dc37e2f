/*
 * group_transpose: groups of g consecutive rows of dim values, each
 * transposed: out[grp][c * g + i] = x[grp * g + i][c] (the vision tower's
 * 2x2 merge, before the merge convolution as one matmul).
 *
 * Layout: x and out [groups * g, dim] BF16 (glm_act), distinct buffers.  Launch: one
 * thread per output element, grid-stride; reads are strided by dim but the
 * whole tensor is a few MB per image, read once.
 * Later: folded into the merge GEMM's operand load.
 */
#ifndef GLM_KERNELS_GROUP_TRANSPOSE_CUH
#define GLM_KERNELS_GROUP_TRANSPOSE_CUH

#include "common.cuh"

void glm_cuda_group_transpose(cudaStream_t stream, glm_act *out, const glm_act *x,
    int groups, int g, int dim);

#endif
