/* moe_route: see moe_route.cuh. */
#include "moe_route.cuh"

#define GLM_ROUTE_THREADS 256

/* a beats b in the oracle's top-k order: larger value, then lower index */
static __device__ __forceinline__ int
glm_route_beats(float va, int a, float vb, int b)
{
    return va > vb || (va == vb && a < b);
}

static __global__ void
glm_moe_route_kernel(const glm_act *x, glm_cuda_weight router, const void *bias,
    int bias_fmt, int H, int E, int top_k, int n_group, int topk_group, int norm_topk_prob,
    float scaling, int32_t *idx_out, float *w_out)
{
    /* s [E], c [E], group best and second [n_group] each, group kept
     * [n_group], the picks by rank [top_k] */
    extern __shared__ float sh[];
    float *s = sh, *c = sh + E, *g1 = c + E, *g2 = g1 + n_group;
    int *keep = (int *) (g2 + n_group), *sel = keep + n_group;
    int64_t r = blockIdx.x;
    const glm_act *xr = x + r * H;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nwarps = blockDim.x >> 5;
    int per = E / n_group, e, f, g, k;

    for (e = warp; e < E; e += nwarps) {
        float acc = 0.0f;
        for (k = lane; k < H; k += 32) {
            acc += glm_act_ld(xr, k) * glm_ld_w(router, e, k, H);
        }
        acc = glm_warp_sum(acc);
        if (lane == 0) {
            s[e] = 1.0f / (1.0f + expf(-acc));
            c[e] = s[e] + glm_ld_weight(bias, bias_fmt, e);
        }
    }
    for (k = threadIdx.x; k < top_k; k += blockDim.x) {
        sel[k] = -1;
    }
    __syncthreads();

    if (n_group > 1 || topk_group < n_group) {
        /* each group's two best c: the experts of in-group rank 0 and 1 */
        for (e = threadIdx.x; e < E; e += blockDim.x) {
            int rank = 0, lo = e / per * per;
            for (f = lo; f < lo + per; f++) {
                rank += glm_route_beats(c[f], f, c[e], e);
            }
            if (rank == 0) {
                g1[e / per] = c[e];
            } else if (rank == 1) {
                g2[e / per] = c[e];
            }
        }
        __syncthreads();
        for (g = threadIdx.x; g < n_group; g += blockDim.x) {
            float sg = g1[g] + g2[g];
            int rank = 0;
            for (f = 0; f < n_group; f++) {
                rank += glm_route_beats(g1[f] + g2[f], f, sg, g);
            }
            keep[g] = rank < topk_group;
        }
        __syncthreads();
        for (e = threadIdx.x; e < E; e += blockDim.x) {
            if (!keep[e / per]) {
                c[e] = -INFINITY;
            }
        }
        __syncthreads();
    }

    for (e = threadIdx.x; e < E; e += blockDim.x) {
        int rank = 0;
        for (f = 0; f < E; f++) {
            rank += glm_route_beats(c[f], f, c[e], e);
        }
        if (rank < top_k) {
            sel[rank] = e;
        }
    }
    __syncthreads();

    if (threadIdx.x == 0) {
        float w[GLM_MOE_MAX_TOPK], sum = 0.0f;

        for (k = 0; k < top_k; k++) {
            w[k] = sel[k] >= 0 ? s[sel[k]] : 0.0f;
            sum += w[k];
        }
        for (k = 0; k < top_k; k++) {
            int pos = 0;
            if (norm_topk_prob) {
                w[k] /= sum + 1e-20f;
            }
            w[k] *= scaling;
            /* ascending expert id (ties of -1 by pick: NaN rows only) */
            for (f = 0; f < top_k; f++) {
                pos += sel[f] < sel[k] || (sel[f] == sel[k] && f < k);
            }
            idx_out[r * top_k + pos] = sel[k];
            w_out[r * top_k + pos] = w[k];
        }
    }
}

void
glm_cuda_moe_route(cudaStream_t stream, const glm_act *x, const glm_cuda_weight *router,
    const void *bias, int bias_fmt, int rows, int hidden, int n_experts, int top_k,
    int n_group, int topk_group, int norm_topk_prob, float routed_scaling_factor,
    int32_t *idx, float *w)
{
    size_t smem = (size_t) (2 * n_experts + 2 * n_group) * sizeof(float)
                  + (size_t) (n_group + top_k) * sizeof(int);

    if (rows <= 0) {
        return;
    }
    glm_moe_route_kernel<<<rows, GLM_ROUTE_THREADS, smem, stream>>>(x, *router, bias,
                                                                    bias_fmt, hidden,
                                                                    n_experts, top_k,
                                                                    n_group, topk_group,
                                                                    norm_topk_prob,
                                                                    routed_scaling_factor,
                                                                    idx, w);
    GLM_CUDA_LAUNCHED();
}
