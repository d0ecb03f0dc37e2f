/*
 * paged_kv.cuh: the paged KV cache as the attention kernels see it (not an
 * op).  The pool is the backend's glm_kv_pool: for k and for v,
 * [layer][block][slot][kv_dim] fp32.  A sequence's block table is a run of
 * `blocks` starting at block_off[seq]; position p of sequence s lives in
 * block blocks[block_off[s] + p / block_size], slot p % block_size.  The
 * backend checks every position against its table on the host before a
 * launch, so the kernels index without bounds checks.
 */
#ifndef GLM_KERNELS_PAGED_KV_CUH
#define GLM_KERNELS_PAGED_KV_CUH

#include "common.cuh"

typedef struct {
    const float    *k, *v;          /* pool bases */
    int64_t         layer_row0;     /* layer * n_blocks * block_size */
    int             block_size;
    int             kv_dim;         /* kv_heads * head_dim */
    const int32_t  *block_off;      /* [n_seqs + 1] */
    const int32_t  *blocks;         /* all tables, concatenated */
} glm_cuda_paged;

/* the pool row (in units of kv_dim floats) holding position pos of seq */
__device__ __forceinline__ int64_t
glm_paged_row(const glm_cuda_paged &p, int seq, int pos)
{
    int32_t b = p.blocks[p.block_off[seq] + pos / p.block_size];

    return p.layer_row0 + (int64_t) b * p.block_size + pos % p.block_size;
}

#endif
