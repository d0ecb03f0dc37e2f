/* moe_combine: see moe_combine.cuh. */
#include "moe_combine.cuh"

static __global__ void
glm_moe_combine_kernel(glm_act *out, const glm_act *y, const float *w,
    const int32_t *slot_of, int top_k, int hidden, int has_shared)
{
    int64_t r = blockIdx.x;
    int c, k;

    for (c = threadIdx.x; c < hidden; c += blockDim.x) {
        float o = 0.0f;
        for (k = 0; k < top_k; k++) {
            int32_t s = slot_of[r * top_k + k];
            if (s >= 0) {
                o = __fadd_rn(o, __fmul_rn(w[r * top_k + k],
                                           glm_act_ld(y, (int64_t) s * hidden + c)));
            }
        }
        if (has_shared) {
            o = __fadd_rn(o, glm_act_ld(y, r * hidden + c));
        }
        glm_act_st(out, r * hidden + c, o);
    }
}

void
glm_cuda_moe_combine(cudaStream_t stream, glm_act *out, const glm_act *y, const float *w,
    const int32_t *slot_of, int rows, int top_k, int hidden, int has_shared)
{
    if (rows <= 0) {
        return;
    }
    glm_moe_combine_kernel<<<rows, 256, 0, stream>>>(out, y, w, slot_of, top_k, hidden,
                                                     has_shared);
    GLM_CUDA_LAUNCHED();
}
