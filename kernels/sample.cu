/* sample: see sample.cuh (and engine/backend/sample.h for the algorithm). */
#include "sample.cuh"

#define GLM_L GLM_SMP_LANES

/* the block's shared scratch: one slot per lane for the fixed trees */
typedef struct {
    float   f[GLM_L];
    double  d[GLM_L];
    int     i[GLM_L];
    int     j[GLM_L];
    int     list[GLM_SMP_MAX_TOP];
    int     n_list;
    int     token;
    int     cut_last;
} glm_smp_shm;

/* ---- fixed-shape block reductions: the CPU twin adds in the same tree ---- */

static __device__ float
glm_smp_sum_f(glm_smp_shm *s, float v)
{
    int t = threadIdx.x, k;
    float r;

    s->f[t] = v;
    __syncthreads();
    for (k = GLM_L / 2; k > 0; k >>= 1) {
        if (t < k) {
            s->f[t] = GLM_SMP_ADD(s->f[t], s->f[t + k]);
        }
        __syncthreads();
    }
    r = s->f[0];
    __syncthreads();
    return r;
}

static __device__ float
glm_smp_max_f(glm_smp_shm *s, float v)
{
    int t = threadIdx.x, k;
    float r;

    s->f[t] = v;
    __syncthreads();
    for (k = GLM_L / 2; k > 0; k >>= 1) {
        if (t < k && s->f[t + k] > s->f[t]) {
            s->f[t] = s->f[t + k];
        }
        __syncthreads();
    }
    r = s->f[0];
    __syncthreads();
    return r;
}

static __device__ double
glm_smp_sum_d(glm_smp_shm *s, double v)
{
    int t = threadIdx.x, k;
    double r;

    s->d[t] = v;
    __syncthreads();
    for (k = GLM_L / 2; k > 0; k >>= 1) {
        if (t < k) {
            s->d[t] += s->d[t + k];
        }
        __syncthreads();
    }
    r = s->d[0];
    __syncthreads();
    return r;
}

static __device__ int
glm_smp_sum_i(glm_smp_shm *s, int v)
{
    int t = threadIdx.x, k, r;

    s->i[t] = v;
    __syncthreads();
    for (k = GLM_L / 2; k > 0; k >>= 1) {
        if (t < k) {
            s->i[t] += s->i[t + k];
        }
        __syncthreads();
    }
    r = s->i[0];
    __syncthreads();
    return r;
}

/* the row's argmax, the lowest id winning ties (the CPU's first maximum) */
static __device__ int
glm_smp_argmax(glm_smp_shm *s, const float *z, int V)
{
    int t = threadIdx.x, k, i, best = t < V ? t : 0x7fffffff, r;
    float bv = t < V ? z[t] : -INFINITY;

    for (i = t + GLM_L; i < V; i += GLM_L) {
        if (z[i] > bv) {
            bv = z[i];
            best = i;
        }
    }
    s->f[t] = bv;
    s->i[t] = best;
    __syncthreads();
    for (k = GLM_L / 2; k > 0; k >>= 1) {
        if (t < k) {
            float v = s->f[t + k];
            int id = s->i[t + k];
            if (v > s->f[t] || (v == s->f[t] && id < s->i[t])) {
                s->f[t] = v;
                s->i[t] = id;
            }
        }
        __syncthreads();
    }
    r = s->i[0];
    __syncthreads();
    return r < V ? r : 0;
}

/* ---- the threshold searches over the weights' bits ------------------------ */

/* raw: keys of the raw logits (glm_smp_key), else the weights' bits */
static __device__ __forceinline__ uint32_t
glm_smp_key_at(const float *w, int i, int raw)
{
    return raw ? glm_smp_key(w[i]) : glm_smp_bits(w[i]);
}

/* how many keys are >= x (ge) or == x (!ge) */
static __device__ int
glm_smp_count(glm_smp_shm *s, const float *w, int V, uint32_t x, int ge, int raw)
{
    int n = 0, i;

    for (i = threadIdx.x; i < V; i += GLM_L) {
        uint32_t b = glm_smp_key_at(w, i, raw);
        n += ge ? b >= x : b == x;
    }
    return glm_smp_sum_i(s, n);
}

/* the mass of weights with bits >= x (strict: > x): lane sums, fixed tree */
static __device__ float
glm_smp_mass(glm_smp_shm *s, const float *w, int V, uint32_t x, int strict)
{
    float ls = 0.0f;
    int i;

    for (i = threadIdx.x; i < V; i += GLM_L) {
        uint32_t b = glm_smp_bits(w[i]);
        if (strict ? b > x : b >= x) {
            ls = GLM_SMP_ADD(ls, w[i]);
        }
    }
    return glm_smp_sum_f(s, ls);
}

/* the id of the need-th tie (key == x), from the lowest id */
static __device__ int
glm_smp_nth_tie(glm_smp_shm *s, const float *w, int V, uint32_t x, int need, int raw)
{
    int lim = 0, b, i;

    for (b = 30; b >= 0; b--) {
        int cand = lim | (1 << b), n = 0;
        for (i = threadIdx.x; i < V && i < cand; i += GLM_L) {
            n += glm_smp_key_at(w, i, raw) == x;
        }
        if (glm_smp_sum_i(s, n) < need) {
            lim = cand;
        }
    }
    return lim;
}

static __device__ void
glm_smp_cut(float *w, int V, uint32_t x, int last)
{
    int i;

    for (i = threadIdx.x; i < V; i += GLM_L) {
        uint32_t b = glm_smp_bits(w[i]);
        if (b < x || (b == x && i > last)) {
            w[i] = 0.0f;
        }
    }
    __syncthreads();
}

static __device__ void
glm_smp_top_k(glm_smp_shm *s, float *w, int V, int k)
{
    uint32_t x = 0;
    int b, eq, gt;

    for (b = 30; b >= 0; b--) {
        if (glm_smp_count(s, w, V, x | (1u << b), 1, 0) >= k) {
            x |= 1u << b;
        }
    }
    if (x == 0) {
        return;
    }
    eq = glm_smp_count(s, w, V, x, 0, 0);
    gt = glm_smp_count(s, w, V, x, 1, 0) - eq;
    glm_smp_cut(w, V, x, eq > k - gt ? glm_smp_nth_tie(s, w, V, x, k - gt, 0) : V);
}

static __device__ void
glm_smp_top_p(glm_smp_shm *s, float *w, int V, float top_p)
{
    float target = GLM_SMP_MUL(top_p, glm_smp_mass(s, w, V, 0, 0)), cum;
    uint32_t x = 0;
    int b, eq, n;

    for (b = 30; b >= 0; b--) {
        if (glm_smp_mass(s, w, V, x | (1u << b), 0) >= target) {
            x |= 1u << b;
        }
    }
    if (x == 0) {
        return;
    }
    eq = glm_smp_count(s, w, V, x, 0, 0);
    cum = glm_smp_mass(s, w, V, x, 1);
    if (threadIdx.x == 0) {
        float wx = glm_smp_float(x);
        for (n = 0; n < eq && cum < target; n++) {
            cum = GLM_SMP_ADD(cum, wx);
        }
        s->cut_last = n > 0 ? n : 1;
    }
    __syncthreads();
    n = s->cut_last;
    __syncthreads();
    glm_smp_cut(w, V, x, n < eq ? glm_smp_nth_tie(s, w, V, x, n, 0) : V);
}

/* the draw: lane sums in lane order, then the walk through one lane */
static __device__ int
glm_smp_draw(glm_smp_shm *s, const float *w, int V, float u, int fallback)
{
    int t = threadIdx.x, i, r;
    float ls = 0.0f;

    for (i = t; i < V; i += GLM_L) {
        ls = GLM_SMP_ADD(ls, w[i]);
    }
    s->f[t] = ls;
    __syncthreads();
    if (t == 0) {
        float total = 0.0f, target, cum = 0.0f;
        int lane, last = -1, tok = -1;

        for (lane = 0; lane < GLM_L; lane++) {
            total = GLM_SMP_ADD(total, s->f[lane]);
        }
        target = GLM_SMP_MUL(u, total);
        for (lane = 0; lane < GLM_L; lane++) {
            if (target < GLM_SMP_ADD(cum, s->f[lane])) {
                break;
            }
            cum = GLM_SMP_ADD(cum, s->f[lane]);
        }
        if (lane < GLM_L) {
            for (i = lane; i < V; i += GLM_L) {
                if (w[i] > 0.0f) {
                    cum = GLM_SMP_ADD(cum, w[i]);
                    last = i;
                    if (target < cum) {
                        tok = i;
                        break;
                    }
                }
            }
            tok = tok >= 0 ? tok : last;
        }
        s->token = tok >= 0 ? tok : fallback;
    }
    __syncthreads();
    r = s->token;
    __syncthreads();
    return r;
}

/* processing (mask, penalties, bias, bans), greedy or the warpers and draw */
static __device__ int
glm_smp_choose(glm_smp_shm *s, float *z, const float *l, int V, const glm_smp_dev *p,
    const int32_t *blob)
{
    const uint32_t *allowed = p->has_allowed ? (const uint32_t *) (blob + p->off_allowed) : NULL;
    float T = p->temperature, mx = -INFINITY;
    int t = threadIdx.x, i, greedy;

    for (i = t; i < V; i += GLM_L) {
        z[i] = allowed != NULL && !((allowed[i >> 5] >> (i & 31)) & 1u) ? -INFINITY : l[i];
    }
    __syncthreads();
    if (p->presence != 0.0f || p->frequency != 0.0f
        || (p->repetition > 0.0f && p->repetition != 1.0f))
    {
        for (i = t; i < p->n_seen; i += GLM_L) {
            int id = blob[p->off_seen + i];
            if (id >= 0 && id < V) {
                z[id] = glm_smp_penalize(z[id], blob[p->off_seen + p->n_seen + i],
                                         p->presence, p->frequency, p->repetition);
            }
        }
    }
    __syncthreads();
    if (t == 0) {
        /* in list order: a repeated id adds both, as the CPU does */
        for (i = 0; i < p->n_bias; i++) {
            int id = blob[p->off_bias + i];
            if (id >= 0 && id < V) {
                z[id] = GLM_SMP_ADD(z[id], __int_as_float(blob[p->off_bias + p->n_bias + i]));
            }
        }
    }
    __syncthreads();
    for (i = t; i < p->n_banned; i += GLM_L) {
        int id = blob[p->off_banned + i];
        if (id >= 0 && id < V) {
            z[id] = -INFINITY;
        }
    }
    __syncthreads();
    greedy = glm_smp_argmax(s, z, V);
    if (!(T > 0.0f)) {
        return greedy;
    }
    for (i = t; i < V; i += GLM_L) {
        float zt = GLM_SMP_DIV(z[i], T);
        mx = zt > mx ? zt : mx;
    }
    mx = glm_smp_max_f(s, mx);
    if (mx == -INFINITY) {
        return greedy;
    }
    for (i = t; i < V; i += GLM_L) {
        z[i] = glm_smp_exp(GLM_SMP_SUB(GLM_SMP_DIV(z[i], T), mx));
    }
    __syncthreads();
    if (p->top_k > 0 && p->top_k < V) {
        glm_smp_top_k(s, z, V, p->top_k);
    }
    if (p->top_p > 0.0f && p->top_p < 1.0f) {
        glm_smp_top_p(s, z, V, p->top_p);
    }
    if (p->min_p > 0.0f) {
        for (i = t; i < V; i += GLM_L) {
            if (z[i] < p->min_p && z[i] != 1.0f) {
                z[i] = 0.0f;
            }
        }
        __syncthreads();
    }
    return glm_smp_draw(s, z, V, glm_smp_uniform(p->seed, p->counter), greedy);
}

/* raw logprobs: the chosen id's, the top n (or the given ids'), its rank */
static __device__ void
glm_smp_logprobs(glm_smp_shm *s, glm_sample_out *o, const float *l, int V,
    const glm_smp_dev *p, const int32_t *blob, int token)
{
    int t = threadIdx.x, i, k, n = 0;
    float mx = -INFINITY;
    double sum = 0.0, lse;

    for (i = t; i < V; i += GLM_L) {
        mx = l[i] > mx ? l[i] : mx;
    }
    mx = glm_smp_max_f(s, mx);
    for (i = t; i < V; i += GLM_L) {
        sum += exp((double) GLM_SMP_SUB(l[i], mx));
    }
    lse = (double) mx + log(glm_smp_sum_d(s, sum));
    if (p->n_given > 0) {
        n = p->n_given < GLM_SMP_MAX_TOP ? p->n_given : GLM_SMP_MAX_TOP;
        if (t < n) {
            s->list[t] = blob[p->off_given + t];
        }
    } else if (p->n_top > 0) {
        uint32_t x = 0;
        int b, eq, gt, last;

        n = p->n_top < GLM_SMP_MAX_TOP ? p->n_top : GLM_SMP_MAX_TOP;
        n = n < V ? n : V;
        for (b = 31; b >= 0; b--) {
            if (glm_smp_count(s, l, V, x | (1u << b), 1, 1) >= n) {
                x |= 1u << b;
            }
        }
        eq = glm_smp_count(s, l, V, x, 0, 1);
        gt = glm_smp_count(s, l, V, x, 1, 1) - eq;
        last = eq > n - gt ? glm_smp_nth_tie(s, l, V, x, n - gt, 1) : V;
        if (t == 0) {
            s->n_list = 0;
        }
        __syncthreads();
        for (i = t; i < V; i += GLM_L) {
            uint32_t key = glm_smp_key(l[i]);
            if (key > x || (key == x && i <= last)) {
                s->list[atomicAdd(&s->n_list, 1)] = i;
            }
        }
        __syncthreads();
        if (t == 0) {
            /* descending, the lower id first on a tie */
            for (i = 1; i < n; i++) {
                int id = s->list[i];
                for (k = i; k > 0 && (l[s->list[k - 1]] < l[id]
                                      || (l[s->list[k - 1]] == l[id] && s->list[k - 1] > id)); k--) {
                    s->list[k] = s->list[k - 1];
                }
                s->list[k] = id;
            }
        }
    }
    __syncthreads();
    if (t == 0) {
        o->logprob = (float) ((double) l[token] - lse);
        o->n_top = n;
        for (k = 0; k < n; k++) {
            o->top_ids[k] = s->list[k];
            o->top_logprobs[k] = (float) ((double) l[s->list[k]] - lse);
        }
    }
}

static __global__ void
glm_sample_kernel(glm_sample_out *out, int32_t *tokens, const float *logits, float *work,
    const glm_smp_dev *rows_p, const int32_t *blob, int V)
{
    __shared__ glm_smp_shm s;
    const glm_smp_dev *p = &rows_p[blockIdx.x];
    const float *l = logits + (size_t) p->logit_row * V;
    glm_sample_out *o = &out[blockIdx.x];
    int t = threadIdx.x, token, k, rank;

    if (t == 0) {
        o->logprob = 0.0f;
        o->rank = 0;
        o->n_top = 0;
        for (k = 0; k < GLM_SMP_MAX_TOP; k++) {
            o->top_ids[k] = 0;
            o->top_logprobs[k] = 0.0f;
        }
    }
    token = p->forced >= 0 && p->forced < V
            ? p->forced : glm_smp_choose(&s, work + (size_t) blockIdx.x * V, l, V, p, blob);
    if (p->logprobs || p->n_top > 0 || p->n_given > 0) {
        glm_smp_logprobs(&s, o, l, V, p, blob, token);
    }
    if (p->rank) {
        int n = 0, i;
        for (i = t; i < V; i += GLM_L) {
            n += l[i] > l[token];
        }
        rank = 1 + glm_smp_sum_i(&s, n);
        if (t == 0) {
            o->rank = rank;
        }
    }
    if (t == 0) {
        o->token = token;
        tokens[blockIdx.x] = token;
    }
}

void
glm_cuda_sample(cudaStream_t stream, glm_sample_out *out, int32_t *tokens,
    const float *logits, float *work, const glm_smp_dev *rows_p, const int32_t *blob,
    int rows, int vocab)
{
    if (rows <= 0) {
        return;
    }
    glm_sample_kernel<<<rows, GLM_L, 0, stream>>>(out, tokens, logits, work, rows_p, blob,
                                                  vocab);
    GLM_CUDA_LAUNCHED();
}
