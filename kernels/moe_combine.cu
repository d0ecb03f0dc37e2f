/* moe_combine: see moe_combine.cuh. */
#include "moe_combine.cuh"
#include "moe_route.cuh"

static __global__ void
glm_moe_combine_kernel(glm_act *out, const glm_act *y, const int32_t *idx, const float *w,
    const int32_t *slot_of, int top_k, int hidden)
{
    __shared__ int order[GLM_MOE_MAX_TOPK];
    int64_t r = blockIdx.x;
    int c, k;

    if (threadIdx.x == 0) {
        /* insertion sort of k = 0..top_k-1 by expert id */
        for (k = 0; k < top_k; k++) {
            int j = k;
            while (j > 0 && idx[r * top_k + order[j - 1]] > idx[r * top_k + k]) {
                order[j] = order[j - 1];
                j--;
            }
            order[j] = k;
        }
    }
    __syncthreads();
    for (c = threadIdx.x; c < hidden; c += blockDim.x) {
        float o = 0.0f;
        for (k = 0; k < top_k; k++) {
            int64_t pair = r * top_k + order[k];
            o = __fadd_rn(o, __fmul_rn(w[pair], glm_act_ld(y, (int64_t) slot_of[pair] * hidden + c)));
        }
        glm_act_st(out, r * hidden + c, o);
    }
}

void
glm_cuda_moe_combine(cudaStream_t stream, glm_act *out, const glm_act *y, const int32_t *idx,
    const float *w, const int32_t *slot_of, int rows, int top_k, int hidden)
{
    if (rows <= 0) {
        return;
    }
    glm_moe_combine_kernel<<<rows, 256, 0, stream>>>(out, y, idx, w, slot_of, top_k,
                                                     hidden);
    GLM_CUDA_LAUNCHED();
}
