/* add: see add.cuh. */
#include "add.cuh"

static __global__ void
glm_add_kernel(float *x, const float *y, size_t n)
{
    size_t i;

    for (i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
         i += (size_t) gridDim.x * blockDim.x)
    {
        x[i] += y[i];
    }
}

void
glm_cuda_add(cudaStream_t stream, float *x, const float *y, size_t n)
{
    if (n == 0) {
        return;
    }
    glm_add_kernel<<<glm_cuda_blocks(n, 256), 256, 0, stream>>>(x, y, n);
    GLM_CUDA_LAUNCHED();
}
