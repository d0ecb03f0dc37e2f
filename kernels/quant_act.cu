/* quant_act: see quant_act.cuh. */
#include "quant_act.cuh"

#define GLM_QUANT_THREADS 128

__global__ void
glm_quant_act_fp8_kernel(uint8_t *q, float *scales, const glm_act *x, int cols, int group,
    int n_groups, int scale_ld)
{
    __shared__ float red[32];
    int64_t row = blockIdx.x / n_groups;
    int g = (int) (blockIdx.x % n_groups), c0 = g * group, c1 = c0 + group, c;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const glm_act *xr = x + row * cols;
    float amax = 0.0f, scale;

    if (c1 > cols) {
        c1 = cols;
    }
    for (c = c0 + threadIdx.x; c < c1; c += blockDim.x) {
        amax = fmaxf(amax, fabsf(glm_act_ld(xr, c)));
    }
    amax = glm_warp_max(amax);
    if (lane == 0) {
        red[warp] = amax;
    }
    __syncthreads();
    amax = lane < (int) (blockDim.x >> 5) ? red[lane] : 0.0f;
    amax = glm_warp_max(amax);
    scale = fmaxf(amax, GLM_QUANT_ACT_EPS) / GLM_FP8_E4M3_MAX;
    if (threadIdx.x == 0) {
        scales[scale_ld > 0 ? (int64_t) g * scale_ld + row : row * n_groups + g] = scale;
    }
    for (c = c0 + threadIdx.x; c < c1; c += blockDim.x) {
        float v = glm_act_ld(xr, c) / scale;
        v = fminf(fmaxf(v, -GLM_FP8_E4M3_MAX), GLM_FP8_E4M3_MAX);
        q[row * cols + c] = glm_float_to_fp8_bits(v);
    }
}

void
glm_cuda_quant_act_fp8(cudaStream_t stream, uint8_t *q, float *scales, const glm_act *x,
    int rows, int cols, int group, int scale_ld)
{
    int n_groups;

    if (rows <= 0 || cols <= 0) {
        return;
    }
    if (group <= 0 || group > cols) {
        group = cols;
    }
    n_groups = (cols + group - 1) / group;
    glm_quant_act_fp8_kernel<<<(unsigned) ((int64_t) rows * n_groups), GLM_QUANT_THREADS, 0,
                               stream>>>(q, scales, x, cols, group, n_groups, scale_ld);
    GLM_CUDA_LAUNCHED();
}
