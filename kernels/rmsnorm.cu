/* rmsnorm: see rmsnorm.cuh. */
#include "rmsnorm.cuh"

static __global__ void
glm_rmsnorm_kernel(glm_act *out, glm_act *x, const glm_act *y, const void *w, int wfmt,
    int dim, float eps)
{
    __shared__ float red[32];
    int64_t r = blockIdx.x;
    glm_act *xr = x + r * dim, *o = out + r * dim;
    const glm_act *yr = y != NULL ? y + r * dim : NULL;
    float ss = 0.0f, inv;
    int i;

    for (i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = glm_act_ld(xr, i);
        if (yr != NULL) {
            /* the stored (rounded) sum is what the next layer reads: the
             * statistics are taken over it too */
            glm_act_st(xr, i, v + glm_act_ld(yr, i));
            v = glm_act_ld(xr, i);
        }
        ss += __fmul_rn(v, v);
    }
    ss = glm_block_sum(ss, red);
    inv = 1.0f / sqrtf(ss / (float) dim + eps);
    for (i = threadIdx.x; i < dim; i += blockDim.x) {
        glm_act_st(o, i, __fmul_rn(glm_ld_weight(w, wfmt, i), __fmul_rn(glm_act_ld(xr, i), inv)));
    }
}

static void
glm_rmsnorm_launch(cudaStream_t stream, glm_act *out, glm_act *x, const glm_act *y,
    const void *w, int wfmt, int rows, int dim, float eps)
{
    int threads = dim <= 128 ? 32 : dim <= 512 ? 128 : 256;

    if (rows <= 0 || dim <= 0) {
        return;
    }
    glm_rmsnorm_kernel<<<rows, threads, 0, stream>>>(out, x, y, w, wfmt, dim, eps);
    GLM_CUDA_LAUNCHED();
}

void
glm_cuda_rmsnorm(cudaStream_t stream, glm_act *out, const glm_act *x, const void *w,
    int wfmt, int rows, int dim, float eps)
{
    /* x is only written when a residual is given */
    glm_rmsnorm_launch(stream, out, (glm_act *) x, NULL, w, wfmt, rows, dim, eps);
}

void
glm_cuda_add_rmsnorm(cudaStream_t stream, glm_act *out, glm_act *x, const glm_act *y,
    const void *w, int wfmt, int rows, int dim, float eps)
{
    glm_rmsnorm_launch(stream, out, x, y, w, wfmt, rows, dim, eps);
}
