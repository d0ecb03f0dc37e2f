/* embed: see embed.cuh. */
#include "embed.cuh"

static __global__ void
glm_embed_kernel(glm_act *out, const int32_t *ids, const void *table, int fmt,
    int64_t vocab, int64_t dim)
{
    int64_t i = blockIdx.x, id = ids[i], c;
    glm_act *o = out + i * dim;

    if (id < 0 || id >= vocab) {
        for (c = threadIdx.x; c < dim; c += blockDim.x) {
            glm_act_st(o, c, __int_as_float(0x7fc00000));
        }
        return;
    }
    for (c = threadIdx.x; c < dim; c += blockDim.x) {
        glm_act_st(o, c, glm_ld_weight(table, fmt, id * dim + c));
    }
}

void
glm_cuda_embed(cudaStream_t stream, glm_act *out, const int32_t *ids, int n,
    const void *table, int fmt, int64_t vocab, int64_t dim)
{
    if (n <= 0) {
        return;
    }
    glm_embed_kernel<<<n, 256, 0, stream>>>(out, ids, table, fmt, vocab, dim);
    GLM_CUDA_LAUNCHED();
}
