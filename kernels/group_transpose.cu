/* group_transpose: see group_transpose.cuh. */
#include "group_transpose.cuh"

static __global__ void
glm_group_transpose_kernel(glm_act *out, const glm_act *x, int g, int dim, size_t n)
{
    size_t o, per = (size_t) g * dim;

    for (o = blockIdx.x * (size_t) blockDim.x + threadIdx.x; o < n;
         o += (size_t) gridDim.x * blockDim.x)
    {
        size_t grp = o / per, within = o % per;
        int c = (int) (within / g), i = (int) (within % g);
        out[o] = x[grp * per + (size_t) i * dim + c];
    }
}

void
glm_cuda_group_transpose(cudaStream_t stream, glm_act *out, const glm_act *x,
    int groups, int g, int dim)
{
    size_t n = (size_t) groups * g * dim;

    if (n == 0) {
        return;
    }
    glm_group_transpose_kernel<<<glm_cuda_blocks(n, 256), 256, 0, stream>>>(out, x, g,
                                                                            dim, n);
    GLM_CUDA_LAUNCHED();
}
