/* attention_segments: see attention_segments.cuh. */
#include "attention_segments.cuh"
#include "attention_tile.cuh"

/* KV source for the tile kernel: a segment's rows, all visible */
struct glm_segment_src {
    const glm_act *k, *v;
    int            stride;

    __device__ int len(int4 tl, int tok) const
    {
        (void) tok;
        return tl.w;
    }
    __device__ float k_at(int4 tl, int p, int kvh, int D, int d) const
    {
        return glm_act_ld(k, (int64_t) (tl.z + p) * stride + (int64_t) kvh * D + d);
    }
    __device__ float v_at(int4 tl, int p, int kvh, int D, int d) const
    {
        return glm_act_ld(v, (int64_t) (tl.z + p) * stride + (int64_t) kvh * D + d);
    }
};

void
glm_cuda_attention_segments(cudaStream_t stream, glm_act *out, const glm_act *q,
    const glm_act *k, const glm_act *v, int stride, const int4 *tiles, int n_tiles,
    int heads, int head_dim, float scale)
{
    size_t smem = glm_attn_tile_smem(head_dim);
    glm_segment_src src = { k, v, stride };

    if (n_tiles <= 0) {
        return;
    }
    GLM_CUDA_CHECK(cudaFuncSetAttribute(glm_attn_tile_kernel<glm_segment_src>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int) smem));
    glm_attn_tile_kernel<glm_segment_src><<<dim3(n_tiles, heads), GLM_TILE_THREADS, smem,
                                            stream>>>(out, q, stride, src, tiles, heads, 1,
                                                      head_dim, scale);
    GLM_CUDA_LAUNCHED();
}
