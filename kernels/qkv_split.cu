/* qkv_split: see qkv_split.cuh. */
#include "qkv_split.cuh"

static __global__ void
glm_qkv_split_kernel(const float *y, size_t total, glm_qkv_parts p)
{
    int N = p.n[0] + p.n[1] + p.n[2];
    size_t i;

    for (i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < total;
         i += (size_t) gridDim.x * blockDim.x)
    {
        int64_t r = (int64_t) (i / (size_t) N);
        int c = (int) (i % (size_t) N), part = 0;
        float v = y[i];

        if (c >= p.n[0]) {
            c -= p.n[0];
            part = 1;
            if (c >= p.n[1]) {
                c -= p.n[1];
                part = 2;
            }
        }
        if (p.bias[part] != NULL) {
            v += glm_ld_weight(p.bias[part], p.bias_fmt[part], c);
        }
        glm_act_st(p.out[part], r * p.n[part] + c, v);
    }
}

void
glm_cuda_qkv_split(cudaStream_t stream, const float *y, int rows, const glm_qkv_parts *p)
{
    size_t total = (size_t) rows * (size_t) (p->n[0] + p->n[1] + p->n[2]);

    if (total == 0) {
        return;
    }
    glm_qkv_split_kernel<<<glm_cuda_blocks(total, 256), 256, 0, stream>>>(y, total, *p);
    GLM_CUDA_LAUNCHED();
}
