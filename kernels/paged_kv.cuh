/*
 * paged_kv.cuh: the paged KV cache as the attention kernels see it (not an
 * op).  The pool is the backend's glm_kv_pool: for k and for v,
 * [layer][block][slot][kv_dim] of its dtype: fp32, BF16, or FP8 E4M3
 * holding x / scale with one scale per layer for k and one for v (vLLM's
 * fp8_e4m3 cache).  Kernels read an element as fp32 through glm_kv_ld.
 * A sequence's block table is a run of `blocks` starting at
 * block_off[seq]; position p of sequence s lives in block
 * blocks[block_off[s] + p / block_size], slot p % block_size.  The
 * backend checks every position against its table on the host before a
 * launch, so the kernels index without bounds checks.
 */
#ifndef GLM_KERNELS_PAGED_KV_CUH
#define GLM_KERNELS_PAGED_KV_CUH

#include "common.cuh"

/* glm_kv_dtype's values (backend.h) */
enum { GLM_KVT_F32 = 0, GLM_KVT_BF16 = 1, GLM_KVT_FP8 = 2 };

typedef struct {
    const void     *k, *v;          /* pool bases */
    int             dtype;          /* GLM_KVT_* */
    float           k_scale, v_scale;   /* this layer's (FP8; 1 otherwise) */
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

/* element i of a pool of dtype, as fp32, times scale (FP8 only) */
__device__ __forceinline__ float
glm_kv_ld(const void *pool, int dtype, int64_t i, float scale)
{
    switch (dtype) {
    case GLM_KVT_BF16:
        return __bfloat162float(((const __nv_bfloat16 *) pool)[i]);
    case GLM_KVT_FP8:
        return __fmul_rn(glm_fp8_bits_to_float(((const uint8_t *) pool)[i]), scale);
    default:
        return ((const float *) pool)[i];
    }
}

/* stores x (fp32) as element i of a pool of dtype: FP8 holds x / scale */
__device__ __forceinline__ void
glm_kv_st(void *pool, int dtype, int64_t i, float x, float scale)
{
    switch (dtype) {
    case GLM_KVT_BF16:
        ((__nv_bfloat16 *) pool)[i] = __float2bfloat16_rn(x);
        break;
    case GLM_KVT_FP8:
        ((uint8_t *) pool)[i] = glm_float_to_fp8_bits(x / scale);
        break;
    default:
        ((float *) pool)[i] = x;
        break;
    }
}

#endif
