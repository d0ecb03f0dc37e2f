/* gelu: see gelu.cuh. */
#include "gelu.cuh"

static __global__ void
glm_gelu_kernel(glm_act *out, const glm_act *x, size_t n)
{
    size_t i;

    for (i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
         i += (size_t) gridDim.x * blockDim.x)
    {
        float v = glm_act_ld(x, (int64_t) i);
        float e = erff(__fmul_rn(v, 0.70710678118654752440f));
        glm_act_st(out, (int64_t) i, __fmul_rn(__fmul_rn(0.5f, v), 1.0f + e));
    }
}

void
glm_cuda_gelu(cudaStream_t stream, glm_act *out, const glm_act *x, size_t n)
{
    if (n == 0) {
        return;
    }
    glm_gelu_kernel<<<glm_cuda_blocks(n, 256), 256, 0, stream>>>(out, x, n);
    GLM_CUDA_LAUNCHED();
}
