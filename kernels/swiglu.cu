/* swiglu: see swiglu.cuh. */
#include "swiglu.cuh"

static __global__ void
glm_swiglu_kernel(glm_act *out, const glm_act *gate, const glm_act *up, size_t n)
{
    size_t i;

    for (i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
         i += (size_t) gridDim.x * blockDim.x)
    {
        float g = glm_act_ld(gate, (int64_t) i);
        glm_act_st(out, (int64_t) i, __fmul_rn(g / (1.0f + expf(-g)), glm_act_ld(up, (int64_t) i)));
    }
}

void
glm_cuda_swiglu(cudaStream_t stream, glm_act *out, const glm_act *gate,
    const glm_act *up, size_t n)
{
    if (n == 0) {
        return;
    }
    glm_swiglu_kernel<<<glm_cuda_blocks(n, 256), 256, 0, stream>>>(out, gate, up, n);
    GLM_CUDA_LAUNCHED();
}
