/* layernorm: see layernorm.cuh. */
#include "layernorm.cuh"

static __global__ void
glm_layernorm_kernel(glm_act *out, const glm_act *x, const void *w, const void *b,
    int wfmt, int bfmt, int dim, float eps)
{
    __shared__ double red[32];
    int64_t r = blockIdx.x;
    const glm_act *xr = x + r * dim;
    glm_act *o = out + r * dim;
    double mean = 0.0, var = 0.0;
    float inv, meanf;
    int i;

    for (i = threadIdx.x; i < dim; i += blockDim.x) {
        mean += glm_act_ld(xr, i);
    }
    mean = glm_block_sum(mean, red) / dim;
    for (i = threadIdx.x; i < dim; i += blockDim.x) {
        double d = glm_act_ld(xr, i) - mean;
        var += d * d;
    }
    var = glm_block_sum(var, red) / dim;
    inv = (float) (1.0 / sqrt(var + eps));
    meanf = (float) mean;
    for (i = threadIdx.x; i < dim; i += blockDim.x) {
        glm_act_st(o, i, __fadd_rn(__fmul_rn(__fmul_rn(glm_act_ld(xr, i) - meanf, inv), glm_ld_weight(w, wfmt, i)),
                          glm_ld_weight(b, bfmt, i)));
    }
}

void
glm_cuda_layernorm(cudaStream_t stream, glm_act *out, const glm_act *x, const void *w,
    const void *b, int wfmt, int bfmt, int rows, int dim, float eps)
{
    if (rows <= 0 || dim <= 0) {
        return;
    }
    glm_layernorm_kernel<<<rows, 256, 0, stream>>>(out, x, w, b, wfmt, bfmt, dim, eps);
    GLM_CUDA_LAUNCHED();
}
