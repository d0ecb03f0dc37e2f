/* swiglu: see swiglu.cuh. */
#include "swiglu.cuh"

static __global__ void
glm_swiglu_kernel(float *out, const float *gate, const float *up, size_t n)
{
    size_t i;

    for (i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
         i += (size_t) gridDim.x * blockDim.x)
    {
        float g = gate[i];
        out[i] = __fmul_rn(g / (1.0f + expf(-g)), up[i]);
    }
}

void
glm_cuda_swiglu(cudaStream_t stream, float *out, const float *gate,
    const float *up, size_t n)
{
    if (n == 0) {
        return;
    }
    glm_swiglu_kernel<<<glm_cuda_blocks(n, 256), 256, 0, stream>>>(out, gate, up, n);
    GLM_CUDA_LAUNCHED();
}
