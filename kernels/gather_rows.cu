/* gather_rows: see gather_rows.cuh. */
#include "gather_rows.cuh"

static __global__ void
glm_gather_rows_kernel(glm_act *out, const glm_act *x, const int32_t *rows, int64_t dim)
{
    const glm_act *src = x + (int64_t) rows[blockIdx.x] * dim;
    glm_act *dst = out + (int64_t) blockIdx.x * dim;
    int64_t c;

    for (c = threadIdx.x; c < dim; c += blockDim.x) {
        dst[c] = src[c];
    }
}

void
glm_cuda_gather_rows(cudaStream_t stream, glm_act *out, const glm_act *x,
    const int32_t *rows, int n, int64_t dim)
{
    if (n <= 0) {
        return;
    }
    glm_gather_rows_kernel<<<n, 256, 0, stream>>>(out, x, rows, dim);
    GLM_CUDA_LAUNCHED();
}
