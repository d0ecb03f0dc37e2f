/* add: see add.cuh. */
#include "add.cuh"

static __global__ void
glm_add_kernel(glm_act *x, const glm_act *y, size_t n)
{
    size_t i;

    for (i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
         i += (size_t) gridDim.x * blockDim.x)
    {
        glm_act_st(x, (int64_t) i, glm_act_ld(x, (int64_t) i) + glm_act_ld(y, (int64_t) i));
    }
}

void
glm_cuda_add(cudaStream_t stream, glm_act *x, const glm_act *y, size_t n)
{
    if (n == 0) {
        return;
    }
    glm_add_kernel<<<glm_cuda_blocks(n, 256), 256, 0, stream>>>(x, y, n);
    GLM_CUDA_LAUNCHED();
}
