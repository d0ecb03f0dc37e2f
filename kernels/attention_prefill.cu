/* attention_prefill: see attention_prefill.cuh. */
#include "attention_prefill.cuh"
#include "attention_tile.cuh"

/* KV source for the tile kernel: a sequence's paged cache, causal */
struct glm_paged_src {
    glm_cuda_paged  kv;
    const int32_t  *tok_pos;

    __device__ int len(int4 tl, int tok) const
    {
        (void) tl;
        return tok_pos[tok] + 1;
    }
    __device__ float k_at(int4 tl, int p, int kvh, int D, int d) const
    {
        return glm_kv_ld(kv.k, kv.dtype, glm_paged_row(kv, tl.z, p) * kv.kv_dim
                                         + (int64_t) kvh * D + d, kv.k_scale);
    }
    __device__ float v_at(int4 tl, int p, int kvh, int D, int d) const
    {
        return glm_kv_ld(kv.v, kv.dtype, glm_paged_row(kv, tl.z, p) * kv.kv_dim
                                         + (int64_t) kvh * D + d, kv.v_scale);
    }
};

void
glm_cuda_attention_prefill(cudaStream_t stream, glm_act *out, const glm_act *q,
    glm_cuda_paged kv, const int4 *tiles, int n_tiles, const int32_t *tok_pos,
    int heads, int kv_heads, int head_dim, float scale)
{
    size_t smem = glm_attn_tile_smem(head_dim);
    glm_paged_src src = { kv, tok_pos };

    if (n_tiles <= 0) {
        return;
    }
    GLM_CUDA_CHECK(cudaFuncSetAttribute(glm_attn_tile_kernel<glm_paged_src>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int) smem));
    glm_attn_tile_kernel<glm_paged_src><<<dim3(n_tiles, heads), GLM_TILE_THREADS, smem,
                                          stream>>>(out, q, heads * head_dim, src, tiles,
                                                    heads, heads / kv_heads, head_dim,
                                                    scale);
    GLM_CUDA_LAUNCHED();
}
