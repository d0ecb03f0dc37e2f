/*
 * gather_rows: out[i, :] = x[rows[i], :], the rows of a step whose logits
 * are wanted, in one launch (the model's tail copied them one blocking
 * copy per row before).
 *
 * Layout: x [*, dim] and out [n, dim] BF16 activations; rows [n] int32 on
 * the device.  Launch: one block of 256 threads per row, striding over dim
 * (coalesced).  The CPU twin is backend_cpu.c's gather_rows (a memcpy per
 * row of fp32); the copy is exact on both.
 */
#ifndef GLM_KERNELS_GATHER_ROWS_CUH
#define GLM_KERNELS_GATHER_ROWS_CUH

#include "common.cuh"

void glm_cuda_gather_rows(cudaStream_t stream, glm_act *out, const glm_act *x,
    const int32_t *rows, int n, int64_t dim);

#endif
