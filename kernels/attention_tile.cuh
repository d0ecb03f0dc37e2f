/*
 * attention_tile.cuh: the tiled online-softmax attention core shared by
 * prefill over the paged cache (attention_prefill.cu) and the vision
 * tower's segmented attention (attention_segments.cu).  Not an op by itself.
 *
 * What a block computes: one tile of up to GLM_TILE_Q query rows (tokens
 * first .. first + n_rows - 1 of the batch) for one query head h, against
 * key/value rows 0 .. len_i - 1 of that tile's "KV space" (a sequence's
 * paged cache, causal: len_i = kv_pos_i + 1; or a vision segment,
 * non-causal: len_i = segment length).  Query head h reads KV head
 * h / group (GQA).
 *
 * How (FlashAttention's schedule, on CUDA cores in fp32): Q tile and an O
 * accumulator in shared memory; for each GLM_TILE_K-row block of KV: load K
 * and V into shared memory, S = scale * Q K^T with masked entries -inf, per
 * row m_new = max(m, max S), P = exp(S - m_new), l = l * exp(m - m_new) +
 * sum P, O = O * exp(m - m_new) + P V; finally O / l.  One tile touches each
 * KV row once per query head instead of once per query token.
 *
 * Shared memory (floats): Q [TQ][D], K [TK][D+1] (padded: the S loop walks
 * K rows across lanes), V [TK][D], P [TQ][TK+1], O [TQ][D], three per-row
 * vectors and the row lengths: about 70 KB for D = 128, 136 KB for D = 256
 * (the launchers raise the dynamic shared-memory limit).  128 threads.
 *
 * Why fp32 CUDA cores and not tensor cores: q, k, v arrive as BF16 (or
 * FP8 KV) and are widened into fp32 shared memory; the scores, softmax and
 * accumulators stay fp32 so this kernel is the device-side reference.  The
 * tensor-core version (mma.sync / wgmma on BF16 or FP8 tiles) comes next.
 * Later also: a block per KV head doing all `group` query heads, so K/V
 * tiles load once per group; cp.async double buffering.
 */
#ifndef GLM_KERNELS_ATTENTION_TILE_CUH
#define GLM_KERNELS_ATTENTION_TILE_CUH

#include "common.cuh"

#define GLM_TILE_Q        32
#define GLM_TILE_K        32
#define GLM_TILE_THREADS  128
#define GLM_ATTN_MAX_HEAD_DIM 256

/* A tile: int4 { first token, n_rows, a, b }; a and b belong to the KV
 * source (the sequence; or the segment start and length). */

static inline size_t
glm_attn_tile_smem(int D)
{
    size_t f = (size_t) GLM_TILE_Q * D + (size_t) GLM_TILE_K * (D + 1)
               + (size_t) GLM_TILE_K * D + (size_t) GLM_TILE_Q * (GLM_TILE_K + 1)
               + (size_t) GLM_TILE_Q * D + 3 * GLM_TILE_Q;

    return f * sizeof(float) + GLM_TILE_Q * sizeof(int);
}

template <class Src>
__global__ void
glm_attn_tile_kernel(glm_act *out, const glm_act *q, int q_stride, Src src,
    const int4 *tiles, int heads, int group, int D, float scale)
{
    extern __shared__ float sm[];
    __shared__ int max_len_s;
    const int TQ = GLM_TILE_Q, TK = GLM_TILE_K, Dp = D + 1, Pp = GLM_TILE_K + 1;
    float *Qs = sm;
    float *Ks = Qs + TQ * D;
    float *Vs = Ks + TK * Dp;
    float *Ps = Vs + TK * D;
    float *Os = Ps + TQ * Pp;
    float *row_m = Os + TQ * D, *row_l = row_m + TQ, *row_a = row_l + TQ;
    int *row_len = (int *) (row_a + TQ);
    int4 tl = tiles[blockIdx.x];
    int h = blockIdx.y, kvh = h / group, n_rows = tl.y, tid = threadIdx.x;
    int idx, kt, max_len;

    for (idx = tid; idx < TQ * D; idx += blockDim.x) {
        int i = idx / D, d = idx % D;
        Qs[idx] = i < n_rows ? glm_act_ld(q, (int64_t) (tl.x + i) * q_stride + (int64_t) h * D + d)
                             : 0.0f;
        Os[idx] = 0.0f;
    }
    if (tid < TQ) {
        row_m[tid] = -INFINITY;
        row_l[tid] = 0.0f;
        row_a[tid] = 1.0f;
        row_len[tid] = tid < n_rows ? src.len(tl, tl.x + tid) : 0;
    }
    __syncthreads();
    if (tid == 0) {
        int mx = 0;
        for (idx = 0; idx < TQ; idx++) {
            mx = row_len[idx] > mx ? row_len[idx] : mx;
        }
        max_len_s = mx;
    }
    __syncthreads();
    max_len = max_len_s;

    for (kt = 0; kt < max_len; kt += TK) {
        for (idx = tid; idx < TK * D; idx += blockDim.x) {
            int j = idx / D, d = idx % D, p = kt + j;
            float kx = 0.0f, vx = 0.0f;
            if (p < max_len) {
                kx = src.k_at(tl, p, kvh, D, d);
                vx = src.v_at(tl, p, kvh, D, d);
            }
            Ks[j * Dp + d] = kx;
            Vs[j * D + d] = vx;
        }
        __syncthreads();

        for (idx = tid; idx < TQ * TK; idx += blockDim.x) {
            int i = idx / TK, j = idx % TK, d;
            float s = -INFINITY;
            if (i < n_rows && kt + j < row_len[i]) {
                const float *qi = Qs + i * D, *kj = Ks + j * Dp;
                float acc = 0.0f;
                for (d = 0; d < D; d++) {
                    acc += qi[d] * kj[d];
                }
                s = acc * scale;
            }
            Ps[i * Pp + j] = s;
        }
        __syncthreads();

        if (tid < TQ) {
            float *pr = Ps + tid * Pp, mx = -INFINITY, m_new, a, sum = 0.0f;
            int j;
            for (j = 0; j < TK; j++) {
                mx = fmaxf(mx, pr[j]);
            }
            m_new = fmaxf(row_m[tid], mx);
            if (m_new == -INFINITY) {
                /* nothing visible yet (a padding row): keep O and l at 0 */
                for (j = 0; j < TK; j++) {
                    pr[j] = 0.0f;
                }
                row_a[tid] = 1.0f;
            } else {
                a = expf(row_m[tid] - m_new);
                for (j = 0; j < TK; j++) {
                    pr[j] = expf(pr[j] - m_new);
                    sum += pr[j];
                }
                row_l[tid] = row_l[tid] * a + sum;
                row_a[tid] = a;
                row_m[tid] = m_new;
            }
        }
        __syncthreads();

        for (idx = tid; idx < TQ * D; idx += blockDim.x) {
            int i = idx / D, d = idx % D, j;
            const float *pr = Ps + i * Pp;
            float o = Os[idx] * row_a[i];
            for (j = 0; j < TK; j++) {
                o += pr[j] * Vs[j * D + d];
            }
            Os[idx] = o;
        }
        __syncthreads();
    }

    for (idx = tid; idx < TQ * D; idx += blockDim.x) {
        int i = idx / D, d = idx % D;
        if (i < n_rows) {
            glm_act_st(out, (int64_t) (tl.x + i) * q_stride + (int64_t) h * D + d,
                       Os[idx] / row_l[i]);
        }
    }
}

#endif
