/* attention_decode: see attention_decode.cuh. */
#include "attention_decode.cuh"

#define GLM_DEC_MAX_CHUNK 32    /* positions staged at once: a lane each in the softmax */
#define GLM_DEC_ACC (GLM_DEC_MAX_GROUP * 256 / GLM_DEC_THREADS)  /* (g, d) pairs per thread */

/* positions per chunk: K and V of the chunk in 2 x 8 KiB of fp32 */
__host__ __device__ static inline int
glm_dec_chunk(int head_dim)
{
    int ch = 2048 / head_dim;

    return ch > GLM_DEC_MAX_CHUNK ? GLM_DEC_MAX_CHUNK : ch;
}

/* shared memory: the chunk's rows (int64), q, K (rows padded), V, the
 * probabilities, and m, l, corr per head */
static size_t
glm_dec_smem_floats(int gsz, int D)
{
    int ch = glm_dec_chunk(D);

    return 2 * GLM_DEC_MAX_CHUNK + (size_t) gsz * D + (size_t) ch * (D + 1) + (size_t) ch * D
           + (size_t) gsz * ch + 3 * (size_t) gsz;
}

static __global__ void
glm_attn_decode_kernel(glm_act *out, float *partial, int *counter, const glm_act *q,
    glm_cuda_paged kv, const int32_t *tok_list, const int32_t *tok_seq, const int32_t *tok_pos,
    int heads, int group, int head_chunks, int D, float scale, int split_len)
{
    extern __shared__ float smem[];
    __shared__ int is_last;
    int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nwarps = blockDim.x >> 5;
    int sel = blockIdx.x, y = blockIdx.y, split = blockIdx.z, n_splits = gridDim.z;
    int kvh = y / head_chunks, hc = y % head_chunks;
    int gsz = min(group, GLM_DEC_MAX_GROUP), h0 = kvh * group + hc * GLM_DEC_MAX_GROUP;
    int G = min(gsz, group - hc * GLM_DEC_MAX_GROUP), GD = G * D, CH = glm_dec_chunk(D);
    int t = tok_list[sel], seq = tok_seq[t], len = tok_pos[t] + 1;
    int lo = split * split_len, hi = min(len, lo + split_len);
    int n_active = (len + split_len - 1) / split_len;
    int64_t *rows = (int64_t *) smem;
    float *qs = smem + 2 * GLM_DEC_MAX_CHUNK, *ks = qs + gsz * D, *vs = ks + CH * (D + 1);
    float *ps = vs + CH * D, *m = ps + gsz * CH, *l = m + gsz, *corr = l + gsz;
    float acc[GLM_DEC_ACC];
    int64_t slot = (int64_t) sel * gridDim.y + y;
    int i, k, c0;

    if (lo >= hi) {
        return;                         /* past this sequence: uniform over the CTA */
    }
    for (i = tid; i < GD; i += blockDim.x) {
        qs[i] = glm_act_ld(q, ((int64_t) t * heads + h0) * D + i) * scale;
    }
    for (i = tid; i < G; i += blockDim.x) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
    }
#pragma unroll
    for (k = 0; k < GLM_DEC_ACC; k++) {
        acc[k] = 0.0f;
    }

    for (c0 = lo; c0 < hi; c0 += CH) {
        int n = min(CH, hi - c0), g, p;

        __syncthreads();                /* the previous chunk is consumed */
        if (tid < n) {
            rows[tid] = glm_paged_row(kv, seq, c0 + tid) * kv.kv_dim + (int64_t) kvh * D;
        }
        __syncthreads();
        for (i = tid; i < n * D; i += blockDim.x) {
            int64_t at = rows[i / D] + i % D;
            ks[(i / D) * (D + 1) + i % D] = glm_kv_ld(kv.k, kv.dtype, at, kv.k_scale);
            vs[i] = glm_kv_ld(kv.v, kv.dtype, at, kv.v_scale);
        }
        __syncthreads();
        /* scores: a thread per (head, position) */
        for (i = tid; i < G * CH; i += blockDim.x) {
            float s = -INFINITY;
            g = i / CH;
            p = i % CH;
            if (p < n) {
                const float *qg = qs + g * D, *kp = ks + p * (D + 1);
                int d;
                s = 0.0f;
                for (d = 0; d < D; d++) {
                    s += qg[d] * kp[d];
                }
            }
            ps[i] = s;
        }
        __syncthreads();
        /* online softmax: a warp per head, a lane per position */
        for (g = warp; g < G; g += nwarps) {
            float s = lane < CH ? ps[g * CH + lane] : -INFINITY;
            float m_old = m[g], m_new = fmaxf(m_old, glm_warp_max(s));
            float pe = lane < n ? expf(s - m_new) : 0.0f;
            float sum = glm_warp_sum(pe);
            if (lane < CH) {
                ps[g * CH + lane] = pe;
            }
            if (lane == 0) {
                float c = expf(m_old - m_new);      /* 0 on the first chunk */
                m[g] = m_new;
                l[g] = l[g] * c + sum;
                corr[g] = c;
            }
        }
        __syncthreads();
        /* acc[g][d] = acc * corr[g] + sum_p P[g][p] V[p][d] */
#pragma unroll
        for (k = 0; k < GLM_DEC_ACC; k++) {
            i = tid + k * GLM_DEC_THREADS;
            if (i < GD) {
                const float *pg = ps + (i / D) * CH, *vd = vs + i % D;
                float a = acc[k] * corr[i / D];
                for (p = 0; p < n; p++) {
                    a += pg[p] * vd[p * D];
                }
                acc[k] = a;
            }
        }
    }

    if (n_active == 1) {
#pragma unroll
        for (k = 0; k < GLM_DEC_ACC; k++) {
            i = tid + k * GLM_DEC_THREADS;
            if (i < GD) {
                glm_act_st(out, ((int64_t) t * heads + h0) * D + i, acc[k] / l[i / D]);
            }
        }
        return;
    }

    /* this split's (m, l, acc), then a ticket; the last CTA merges */
    {
        int PS = gsz * (D + 2);
        float *pp = partial + (slot * n_splits + split) * PS;
        volatile const float *all = partial + slot * n_splits * PS;

        for (i = tid; i < G; i += blockDim.x) {
            pp[i] = m[i];
            pp[gsz + i] = l[i];
        }
#pragma unroll
        for (k = 0; k < GLM_DEC_ACC; k++) {
            i = tid + k * GLM_DEC_THREADS;
            if (i < GD) {
                pp[2 * gsz + i] = acc[k];
            }
        }
        __threadfence();                /* the partial is visible before the ticket */
        __syncthreads();
        if (tid == 0) {
            is_last = atomicAdd(counter + slot, 1) == n_active - 1;
        }
        __syncthreads();
        if (!is_last) {
            return;
        }
        __threadfence();                /* the others' partials, read past L1 (volatile) */
        for (i = tid; i < GD; i += blockDim.x) {
            int g = i / D, s;
            float M = -INFINITY, L = 0.0f, a = 0.0f;
            for (s = 0; s < n_active; s++) {
                M = fmaxf(M, all[s * PS + g]);
            }
            for (s = 0; s < n_active; s++) {
                float w = expf(all[s * PS + g] - M);
                L += all[s * PS + gsz + g] * w;
                a += all[s * PS + 2 * gsz + i] * w;
            }
            glm_act_st(out, ((int64_t) t * heads + h0) * D + i, a / L);
        }
        if (tid == 0) {
            counter[slot] = 0;          /* ready for the next launch */
        }
    }
}

int
glm_attn_decode_splits(int n_sms, int n_sel, int kv_heads, int group, int max_len)
{
    int head_chunks = (group + GLM_DEC_MAX_GROUP - 1) / GLM_DEC_MAX_GROUP;
    int64_t ctas = (int64_t) (n_sel > 0 ? n_sel : 1) * kv_heads * head_chunks;
    int64_t want = (2 * (int64_t) (n_sms > 0 ? n_sms : 1) + ctas - 1) / ctas;
    int64_t most = ((int64_t) max_len + GLM_DEC_MIN_SPLIT - 1) / GLM_DEC_MIN_SPLIT;
    int64_t n = want < most ? want : most;

    return n < 1 ? 1 : n > GLM_DEC_MAX_SPLITS ? GLM_DEC_MAX_SPLITS : (int) n;
}

size_t
glm_attn_decode_partial_floats(int n_sel, int heads, int kv_heads, int head_dim, int n_splits)
{
    int group = heads / kv_heads, head_chunks = (group + GLM_DEC_MAX_GROUP - 1) / GLM_DEC_MAX_GROUP;
    int gsz = group < GLM_DEC_MAX_GROUP ? group : GLM_DEC_MAX_GROUP;

    return (size_t) n_sel * kv_heads * head_chunks * n_splits * gsz * (head_dim + 2);
}

size_t
glm_attn_decode_counters(int n_sel, int heads, int kv_heads)
{
    int group = heads / kv_heads;

    return (size_t) n_sel * kv_heads * ((group + GLM_DEC_MAX_GROUP - 1) / GLM_DEC_MAX_GROUP);
}

void
glm_cuda_attention_decode(cudaStream_t stream, glm_act *out, const glm_act *q,
    glm_cuda_paged kv, const int32_t *tok_list, int n_sel, const int32_t *tok_seq,
    const int32_t *tok_pos, int heads, int kv_heads, int head_dim, float scale,
    int split_len, int n_splits, float *partial, int *counter)
{
    int group = heads / kv_heads, head_chunks = (group + GLM_DEC_MAX_GROUP - 1) / GLM_DEC_MAX_GROUP;
    int gsz = group < GLM_DEC_MAX_GROUP ? group : GLM_DEC_MAX_GROUP;
    dim3 grid(n_sel, kv_heads * head_chunks, n_splits);

    if (n_sel <= 0) {
        return;
    }
    glm_attn_decode_kernel<<<grid, GLM_DEC_THREADS, glm_dec_smem_floats(gsz, head_dim) * sizeof(float),
                             stream>>>(
        out, partial, counter, q, kv, tok_list, tok_seq, tok_pos, heads, group, head_chunks,
        head_dim, scale, split_len);
    GLM_CUDA_LAUNCHED();
}
