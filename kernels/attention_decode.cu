/* attention_decode: see attention_decode.cuh. */
#include "attention_decode.cuh"

#define GLM_DEC_PER_LANE 8      /* 256 / 32: the largest head_dim served */

static __global__ void
glm_attn_decode_kernel(glm_act *out, float *partial, const glm_act *q, glm_cuda_paged kv,
    const int32_t *tok_list, const int32_t *tok_seq, const int32_t *tok_pos,
    int heads, int group, int D, float scale, int split_len, int n_splits)
{
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int sel = blockIdx.x, h = blockIdx.y * GLM_DECODE_WARPS + warp, split = blockIdx.z;
    int t, seq, len, kvh, lo, hi, p, i;
    float qv[GLM_DEC_PER_LANE], acc[GLM_DEC_PER_LANE], m = -INFINITY, l = 0.0f;
    const glm_act *qr;

    if (h >= heads) {
        return;                         /* no block-wide barrier below */
    }
    t = tok_list[sel];
    seq = tok_seq[t];
    len = tok_pos[t] + 1;
    kvh = h / group;
    lo = split * split_len;
    hi = min(len, lo + split_len);
    qr = q + ((int64_t) t * heads + h) * D;
#pragma unroll
    for (i = 0; i < GLM_DEC_PER_LANE; i++) {
        int d = lane + 32 * i;
        qv[i] = d < D ? glm_act_ld(qr, d) : 0.0f;
        acc[i] = 0.0f;
    }
    for (p = lo; p < hi; p++) {
        int64_t row = glm_paged_row(kv, seq, p) * kv.kv_dim + (int64_t) kvh * D;
        float s = 0.0f, m_new, corr, pe;
#pragma unroll
        for (i = 0; i < GLM_DEC_PER_LANE; i++) {
            int d = lane + 32 * i;
            if (d < D) {
                s += qv[i] * glm_kv_ld(kv.k, kv.dtype, row + d, kv.k_scale);
            }
        }
        s = glm_warp_sum(s) * scale;
        m_new = fmaxf(m, s);
        corr = expf(m - m_new);         /* 0 on the first position */
        pe = expf(s - m_new);
        l = l * corr + pe;
#pragma unroll
        for (i = 0; i < GLM_DEC_PER_LANE; i++) {
            int d = lane + 32 * i;
            if (d < D) {
                acc[i] = acc[i] * corr + pe * glm_kv_ld(kv.v, kv.dtype, row + d, kv.v_scale);
            }
        }
        m = m_new;
    }
    if (n_splits == 1) {
        glm_act *o = out + ((int64_t) t * heads + h) * D;
#pragma unroll
        for (i = 0; i < GLM_DEC_PER_LANE; i++) {
            int d = lane + 32 * i;
            if (d < D) {
                glm_act_st(o, d, acc[i] / l);
            }
        }
    } else {
        float *pp = partial + (((int64_t) sel * heads + h) * n_splits + split) * (D + 2);
        if (lane == 0) {
            pp[0] = m;                  /* -inf and l = 0 for an empty split */
            pp[1] = l;
        }
#pragma unroll
        for (i = 0; i < GLM_DEC_PER_LANE; i++) {
            int d = lane + 32 * i;
            if (d < D) {
                pp[2 + d] = acc[i];
            }
        }
    }
}

static __global__ void
glm_attn_decode_combine_kernel(glm_act *out, const float *partial, const int32_t *tok_list,
    int heads, int D, int n_splits)
{
    int sel = blockIdx.x, h = blockIdx.y, s, d;
    const float *pp = partial + ((int64_t) sel * heads + h) * n_splits * (D + 2);
    glm_act *o = out + ((int64_t) tok_list[sel] * heads + h) * D;
    float M = -INFINITY, L = 0.0f;

    for (s = 0; s < n_splits; s++) {
        M = fmaxf(M, pp[s * (D + 2)]);
    }
    for (s = 0; s < n_splits; s++) {
        L += pp[s * (D + 2) + 1] * expf(pp[s * (D + 2)] - M);
    }
    for (d = threadIdx.x; d < D; d += blockDim.x) {
        float a = 0.0f;
        for (s = 0; s < n_splits; s++) {
            a += pp[s * (D + 2) + 2 + d] * expf(pp[s * (D + 2)] - M);
        }
        glm_act_st(o, d, a / L);
    }
}

void
glm_cuda_attention_decode(cudaStream_t stream, glm_act *out, const glm_act *q,
    glm_cuda_paged kv, const int32_t *tok_list, int n_sel, const int32_t *tok_seq,
    const int32_t *tok_pos, int heads, int kv_heads, int head_dim, float scale,
    int split_len, int n_splits, float *partial)
{
    dim3 grid(n_sel, (heads + GLM_DECODE_WARPS - 1) / GLM_DECODE_WARPS, n_splits);

    if (n_sel <= 0) {
        return;
    }
    glm_attn_decode_kernel<<<grid, 32 * GLM_DECODE_WARPS, 0, stream>>>(
        out, partial, q, kv, tok_list, tok_seq, tok_pos, heads, heads / kv_heads,
        head_dim, scale, split_len, n_splits);
    GLM_CUDA_LAUNCHED();
    if (n_splits > 1) {
        glm_attn_decode_combine_kernel<<<dim3(n_sel, heads), 128, 0, stream>>>(
            out, partial, tok_list, heads, head_dim, n_splits);
        GLM_CUDA_LAUNCHED();
    }
}
