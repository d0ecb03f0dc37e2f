/* attention_segments: see attention_segments.cuh. */
#include "attention_segments.cuh"
#include "attention_tile.cuh"

/* KV source for the tile kernel: a segment's rows, all visible */
struct glm_segment_src {
    const float *k, *v;
    int          stride;

    __device__ int len(int4 tl, int tok) const
    {
        (void) tok;
        return tl.w;
    }
    __device__ const float *k_row(int4 tl, int p, int kvh, int D) const
    {
        return k + (int64_t) (tl.z + p) * stride + (int64_t) kvh * D;
    }
    __device__ const float *v_row(int4 tl, int p, int kvh, int D) const
    {
        return v + (int64_t) (tl.z + p) * stride + (int64_t) kvh * D;
    }
};

void
glm_cuda_attention_segments(cudaStream_t stream, float *out, const float *q,
    const float *k, const float *v, int stride, const int4 *tiles, int n_tiles,
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
