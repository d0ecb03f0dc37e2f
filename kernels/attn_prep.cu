/* attn_prep: see attn_prep.cuh. */
#include "attn_prep.cuh"

#define GLM_PREP_THREADS 256

/* the activation's rounding, as the pool receives it */
__device__ __forceinline__ float
glm_prep_rounded(float x)
{
    return __bfloat162float(__float2bfloat16_rn(x));
}

static __global__ void
glm_attn_prep_kernel(glm_act *q, glm_act *k, const glm_act *v, int heads, int kv_heads,
    int D, glm_attn_prep_args a)
{
    extern __shared__ float cs[];       /* [n_half] cos, then [n_half] sin */
    int64_t r = blockIdx.x, dst = (a.layer_row0 + a.slot_row[r]) * (int64_t) kv_heads * D;
    int n_half = a.rot_dim / 2, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int nwarps = blockDim.x >> 5, job, j;

    for (j = threadIdx.x; j < n_half; j += blockDim.x) {
        float theta = __fmul_rn((float) a.pos3[r * 3 + a.axis_of_freq[j]], a.inv_freq[j]);
        cs[j] = cosf(theta);
        cs[n_half + j] = sinf(theta);
    }
    __syncthreads();
    for (job = warp; job < heads + 2 * kv_heads; job += nwarps) {
        if (job < heads + kv_heads) {
            int is_k = job >= heads, h = is_k ? job - heads : job, d;
            glm_act *x = is_k ? k + (r * kv_heads + h) * D : q + (r * heads + h) * D;
            const void *w = is_k ? a.k_norm_w : a.q_norm_w;
            int wfmt = is_k ? a.k_norm_fmt : a.q_norm_fmt;
            float inv = 1.0f;

            if (w != NULL) {
                float ss = 0.0f;
                for (d = lane; d < D; d += 32) {
                    float e = glm_act_ld(x, d);
                    ss += __fmul_rn(e, e);
                }
                ss = glm_warp_sum(ss);
                inv = 1.0f / sqrtf(ss / (float) D + a.eps);
            }
            /* this lane's pairs (j, j + n_half), then its dims past rot_dim:
             * the elements it read for the norm are its own to rewrite */
            for (j = lane; j < n_half; j += 32) {
                float e0 = glm_act_ld(x, j), e1 = glm_act_ld(x, j + n_half), c = cs[j];
                float s = cs[n_half + j], r0, r1;
                if (w != NULL) {
                    e0 = __fmul_rn(glm_ld_weight(w, wfmt, j), __fmul_rn(e0, inv));
                    e1 = __fmul_rn(glm_ld_weight(w, wfmt, j + n_half), __fmul_rn(e1, inv));
                }
                r0 = glm_prep_rounded(__fsub_rn(__fmul_rn(e0, c), __fmul_rn(e1, s)));
                r1 = glm_prep_rounded(__fadd_rn(__fmul_rn(e1, c), __fmul_rn(e0, s)));
                glm_act_st(x, j, r0);
                glm_act_st(x, j + n_half, r1);
                if (is_k) {
                    glm_kv_st(a.pool_k, a.kv_dtype, dst + (int64_t) h * D + j, r0, a.k_scale);
                    glm_kv_st(a.pool_k, a.kv_dtype, dst + (int64_t) h * D + j + n_half, r1,
                              a.k_scale);
                }
            }
            for (d = 2 * n_half + lane; d < D; d += 32) {
                float e = glm_act_ld(x, d);
                if (w != NULL) {
                    e = glm_prep_rounded(__fmul_rn(glm_ld_weight(w, wfmt, d), __fmul_rn(e, inv)));
                    glm_act_st(x, d, e);
                }
                if (is_k) {
                    glm_kv_st(a.pool_k, a.kv_dtype, dst + (int64_t) h * D + d, e, a.k_scale);
                }
            }
        } else {
            int h = job - heads - kv_heads, d;
            const glm_act *x = v + (r * kv_heads + h) * D;
            for (d = lane; d < D; d += 32) {
                glm_kv_st(a.pool_v, a.kv_dtype, dst + (int64_t) h * D + d, glm_act_ld(x, d),
                          a.v_scale);
            }
        }
    }
}

void
glm_cuda_attn_prep(cudaStream_t stream, glm_act *q, glm_act *k, const glm_act *v, int rows,
    int heads, int kv_heads, int head_dim, const glm_attn_prep_args *a)
{
    if (rows <= 0) {
        return;
    }
    glm_attn_prep_kernel<<<rows, GLM_PREP_THREADS, (size_t) (a->rot_dim / 2 * 2 + 1) * sizeof(float),
                           stream>>>(q, k, v, heads, kv_heads, head_dim, *a);
    GLM_CUDA_LAUNCHED();
}
