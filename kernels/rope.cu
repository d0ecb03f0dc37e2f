/* rope: see rope.cuh. */
#include "rope.cuh"

static __global__ void
glm_rope_kernel(glm_act *x, int heads, int head_dim, int rot_dim, const int32_t *pos3,
    const int32_t *axis_of_freq, const float *inv_freq)
{
    extern __shared__ float cs[];       /* [n_half] cos, then [n_half] sin */
    int64_t r = blockIdx.x;
    int n_half = rot_dim / 2, t;

    for (t = threadIdx.x; t < n_half; t += blockDim.x) {
        float theta = __fmul_rn((float) pos3[r * 3 + axis_of_freq[t]], inv_freq[t]);
        cs[t] = cosf(theta);
        cs[n_half + t] = sinf(theta);
    }
    __syncthreads();
    for (t = threadIdx.x; t < heads * n_half; t += blockDim.x) {
        int h = t / n_half, j = t % n_half;
        glm_act *v = x + (r * heads + h) * head_dim;
        float a = glm_act_ld(v, j), b = glm_act_ld(v, j + n_half), c = cs[j], s = cs[n_half + j];
        glm_act_st(v, j, __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s)));
        glm_act_st(v, j + n_half, __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s)));
    }
}

void
glm_cuda_rope(cudaStream_t stream, glm_act *x, int rows, int heads, int head_dim,
    int rot_dim, const int32_t *pos3, const int32_t *axis_of_freq,
    const float *inv_freq)
{
    if (rows <= 0 || heads <= 0 || rot_dim < 2) {
        return;
    }
    glm_rope_kernel<<<rows, 128, (size_t) rot_dim * sizeof(float), stream>>>(
        x, heads, head_dim, rot_dim, pos3, axis_of_freq, inv_freq);
    GLM_CUDA_LAUNCHED();
}
