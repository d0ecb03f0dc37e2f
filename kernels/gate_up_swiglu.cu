/* gate_up_swiglu: see gate_up_swiglu.cuh. */
#include "gate_up_swiglu.cuh"

#define GLM_GATE_UP_WARPS 8

static __global__ void
glm_gate_up_swiglu_kernel(glm_act *out, const glm_act *x, const __nv_bfloat16 *gate,
    const __nv_bfloat16 *up, int rows, int N, int K)
{
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, r, k;
    int j = blockIdx.x * GLM_GATE_UP_WARPS + warp, r0 = blockIdx.y * GLM_GATE_UP_ROWS;
    int nr = rows - r0 < GLM_GATE_UP_ROWS ? rows - r0 : GLM_GATE_UP_ROWS;
    float ag[GLM_GATE_UP_ROWS], au[GLM_GATE_UP_ROWS];

    if (j >= N) {
        return;                 /* the whole warp: no shuffle is left waiting */
    }
#pragma unroll
    for (r = 0; r < GLM_GATE_UP_ROWS; r++) {
        ag[r] = 0.0f;
        au[r] = 0.0f;
    }
    for (k = lane; k < K; k += 32) {
        float wg = __bfloat162float(gate[(int64_t) j * K + k]);
        float wu = __bfloat162float(up[(int64_t) j * K + k]);
#pragma unroll
        for (r = 0; r < GLM_GATE_UP_ROWS; r++) {
            if (r < nr) {
                float xv = glm_act_ld(x, (int64_t) (r0 + r) * K + k);
                ag[r] += xv * wg;
                au[r] += xv * wu;
            }
        }
    }
#pragma unroll
    for (r = 0; r < GLM_GATE_UP_ROWS; r++) {
        ag[r] = glm_warp_sum(ag[r]);
        au[r] = glm_warp_sum(au[r]);
    }
    if (lane == 0) {
        for (r = 0; r < nr; r++) {
            float g = ag[r];
            glm_act_st(out, (int64_t) (r0 + r) * N + j, __fmul_rn(g / (1.0f + expf(-g)), au[r]));
        }
    }
}

void
glm_cuda_gate_up_swiglu(cudaStream_t stream, glm_act *out, const glm_act *x, int rows,
    const __nv_bfloat16 *gate, const __nv_bfloat16 *up, int N, int K)
{
    dim3 grid((unsigned) ((N + GLM_GATE_UP_WARPS - 1) / GLM_GATE_UP_WARPS),
              (unsigned) ((rows + GLM_GATE_UP_ROWS - 1) / GLM_GATE_UP_ROWS));

    if (rows <= 0 || N <= 0) {
        return;
    }
    glm_gate_up_swiglu_kernel<<<grid, 32 * GLM_GATE_UP_WARPS, 0, stream>>>(out, x, gate, up,
                                                                            rows, N, K);
    GLM_CUDA_LAUNCHED();
}
