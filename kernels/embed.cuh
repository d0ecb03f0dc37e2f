/*
 * embed: out[i, :] = table[ids[i], :] as BF16 activations.
 *
 * Layout: table [vocab, dim] in device memory, BF16 (the checkpoint's dtype,
 * uploaded once) or fp32; ids [n] int32 on the device; out [n, dim] fp32.
 * Launch: one block of 256 threads per token, threads striding over dim
 * (a row is contiguous, so loads and stores coalesce).  Ids outside the
 * table write a NaN row instead of reading out of bounds: the session and
 * the scheduler check ids first, so a NaN here points at a bug upstream.
 * Later: 16-byte vector loads (8 bf16) when dim % 8 == 0.
 */
#ifndef GLM_KERNELS_EMBED_CUH
#define GLM_KERNELS_EMBED_CUH

#include "common.cuh"

void glm_cuda_embed(cudaStream_t stream, glm_act *out, const int32_t *ids, int n,
    const void *table, int fmt, int64_t vocab, int64_t dim);

#endif
