/* moe_route: see moe_route.cuh. */
#include "moe_route.cuh"

/* The oracle's glm_topk: indices of the k largest of v[0..n) (ties: lower
 * index first), k <= n. */
static __device__ void
glm_topk_serial(const float *v, int n, int k, int *idx)
{
    int i, j, m;

    for (i = 0; i < k; i++) {
        int best = -1;
        for (j = 0; j < n; j++) {
            int taken = 0;
            for (m = 0; m < i; m++) {
                taken |= idx[m] == j;
            }
            if (!taken && (best < 0 || v[j] > v[best])) {
                best = j;
            }
        }
        idx[i] = best;
    }
}

static __global__ void
glm_moe_route_kernel(const float *logits, const void *bias, int bias_fmt, int E, int top_k,
    int n_group, int topk_group, int norm_topk_prob, float scaling, int32_t *idx_out,
    float *w_out)
{
    extern __shared__ float sh[];   /* s [E], c [E], group scores, kept groups */
    float *s = sh, *c = sh + E, *gs = sh + 2 * E;
    int *gidx = (int *) (gs + n_group);
    int64_t r = blockIdx.x;
    const float *lr = logits + r * E;
    int e;

    for (e = threadIdx.x; e < E; e += blockDim.x) {
        s[e] = 1.0f / (1.0f + expf(-lr[e]));
        c[e] = s[e] + glm_ld_weight(bias, bias_fmt, e);
    }
    __syncthreads();
    if (threadIdx.x != 0) {
        return;
    }
    {
        int per = E / n_group, g, k, top[2];
        int idx[GLM_MOE_MAX_TOPK];
        float w[GLM_MOE_MAX_TOPK], sum = 0.0f;

        if (n_group > 1 || topk_group < n_group) {
            for (g = 0; g < n_group; g++) {
                glm_topk_serial(c + g * per, per, 2, top);
                gs[g] = c[g * per + top[0]] + c[g * per + top[1]];
            }
            glm_topk_serial(gs, n_group, topk_group, gidx);
            for (g = 0; g < n_group; g++) {
                int keep = 0;
                for (k = 0; k < topk_group; k++) {
                    keep |= gidx[k] == g;
                }
                if (!keep) {
                    for (e = g * per; e < (g + 1) * per; e++) {
                        c[e] = -INFINITY;
                    }
                }
            }
        }
        glm_topk_serial(c, E, top_k, idx);
        for (k = 0; k < top_k; k++) {
            w[k] = s[idx[k]];
            sum += w[k];
        }
        for (k = 0; k < top_k; k++) {
            if (norm_topk_prob) {
                w[k] /= sum + 1e-20f;
            }
            w[k] *= scaling;
            idx_out[r * top_k + k] = idx[k];
            w_out[r * top_k + k] = w[k];
        }
    }
}

void
glm_cuda_moe_route(cudaStream_t stream, const float *logits, const void *bias,
    int bias_fmt, int rows, int n_experts, int top_k, int n_group, int topk_group,
    int norm_topk_prob, float routed_scaling_factor, int32_t *idx, float *w)
{
    size_t smem = (size_t) (2 * n_experts + n_group) * sizeof(float)
                  + (size_t) n_group * sizeof(int);

    if (rows <= 0) {
        return;
    }
    glm_moe_route_kernel<<<rows, 128, smem, stream>>>(logits, bias, bias_fmt,
                                                      n_experts, top_k,
                                                      n_group, topk_group,
                                                      norm_topk_prob,
                                                      routed_scaling_factor, idx, w);
    GLM_CUDA_LAUNCHED();
}
