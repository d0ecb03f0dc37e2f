/*
 * backend_cpu.c: the CPU reference backend.  fp32 everywhere, weights
 * converted row by row from their stored dtype as they are used (so a
 * checkpoint is never copied), loops split over a thread pool.  Simple on
 * purpose: this is the oracle the CUDA kernels are tested against, and it is
 * itself tested against transformers.
 */
#include "backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/threadpool.h"

typedef struct {
    glm_backend  be;
    glm_pool    *pool;
} glm_cpu;

static glm_pool *
glm_cpu_pool(glm_backend *be)
{
    return ((glm_cpu *) be)->pool;
}

static void *
glm_cpu_xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);

    if (p == NULL) {
        /* activations are sized up front from the batch limits; failing here
         * means the host is out of memory, which nothing can recover from */
        fprintf(stderr, "glm-engine: out of memory allocating %zu bytes\n", bytes);
        abort();
    }
    return p;
}

static void *
glm_cpu_alloc(glm_backend *be, size_t bytes)
{
    void *p = calloc(1, bytes ? bytes : 1);

    (void) be;
    return p;
}

static void
glm_cpu_free(glm_backend *be, void *p)
{
    (void) be;
    free(p);
}

static void
glm_cpu_copy(glm_backend *be, void *dst, const void *src, size_t bytes)
{
    (void) be;
    memcpy(dst, src, bytes);
}

/* Eight partial sums: lets the compiler vectorise without -ffast-math. */
static float
glm_dot(const float *a, const float *b, int n)
{
    float s[8] = { 0 };
    int i, j;

    for (i = 0; i + 8 <= n; i += 8) {
        for (j = 0; j < 8; j++) {
            s[j] += a[i + j] * b[i + j];
        }
    }
    for (; i < n; i++) {
        s[0] += a[i] * b[i];
    }
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

/* ---- embed ---------------------------------------------------------------- */

static void
glm_cpu_embed(glm_backend *be, float *out, const int32_t *ids, int n,
    const glm_tensor *table)
{
    int64_t dim = table->shape[1];
    int i;

    (void) be;
    for (i = 0; i < n; i++) {
        glm_tensor_to_f32(table, (int64_t) ids[i] * dim, dim, out + i * dim);
    }
}

/* ---- rmsnorm -------------------------------------------------------------- */

typedef struct {
    float *out;
    const float *x, *w;
    int dim;
    float eps;
} glm_rms_job;

static void
glm_rms_rows(void *p, int64_t begin, int64_t end, int thread)
{
    glm_rms_job *j = p;
    int64_t r;
    int i;

    (void) thread;
    for (r = begin; r < end; r++) {
        const float *x = j->x + r * j->dim;
        float *y = j->out + r * j->dim;
        float ss = 0.0f, inv;

        for (i = 0; i < j->dim; i++) {
            ss += x[i] * x[i];
        }
        inv = 1.0f / sqrtf(ss / (float) j->dim + j->eps);
        for (i = 0; i < j->dim; i++) {
            y[i] = j->w[i] * (x[i] * inv);
        }
    }
}

static void
glm_cpu_rmsnorm(glm_backend *be, float *out, const float *x, const glm_tensor *w,
    int rows, int dim, float eps)
{
    glm_rms_job j;
    float *wf = glm_cpu_xmalloc((size_t) dim * sizeof(float));

    glm_tensor_to_f32(w, 0, dim, wf);
    j = (glm_rms_job) { out, x, wf, dim, eps };
    glm_pool_run(glm_cpu_pool(be), rows, glm_rms_rows, &j);
    free(wf);
}

/* ---- matmul --------------------------------------------------------------- */

typedef struct {
    float *out;
    const float *x;
    int rows, K, N;
    const glm_tensor *w, *bias;
} glm_mm_job;

static void
glm_mm_cols(void *p, int64_t begin, int64_t end, int thread)
{
    glm_mm_job *j = p;
    float *wrow = glm_cpu_xmalloc((size_t) j->K * sizeof(float));
    float b = 0.0f;
    int64_t n;
    int r;

    (void) thread;
    for (n = begin; n < end; n++) {
        glm_tensor_to_f32(j->w, n * j->K, j->K, wrow);
        if (j->bias != NULL) {
            glm_tensor_to_f32(j->bias, n, 1, &b);
        }
        for (r = 0; r < j->rows; r++) {
            j->out[(int64_t) r * j->N + n] = glm_dot(j->x + (int64_t) r * j->K, wrow, j->K) + b;
        }
    }
    free(wrow);
}

static void
glm_cpu_matmul(glm_backend *be, float *out, const float *x, int rows,
    const glm_tensor *w, const glm_tensor *bias)
{
    glm_mm_job j = { out, x, rows, (int) w->shape[1], (int) w->shape[0], w, bias };

    if (rows > 0) {
        glm_pool_run(glm_cpu_pool(be), j.N, glm_mm_cols, &j);
    }
}

/* ---- rope ----------------------------------------------------------------- */

static void
glm_cpu_rope(glm_backend *be, float *x, int rows, int heads, int head_dim,
    int rot_dim, const int32_t *pos3, const int *axis_of_freq,
    const float *inv_freq)
{
    int half = rot_dim / 2, r, h, j;
    float *cs = glm_cpu_xmalloc((size_t) rot_dim * sizeof(float));

    (void) be;
    for (r = 0; r < rows; r++) {
        /* angles in fp32 as transformers computes them: pos * inv_freq */
        for (j = 0; j < half; j++) {
            float theta = (float) pos3[r * 3 + axis_of_freq[j]] * inv_freq[j];
            cs[j] = cosf(theta);
            cs[half + j] = sinf(theta);
        }
        for (h = 0; h < heads; h++) {
            float *v = x + ((int64_t) r * heads + h) * head_dim;
            for (j = 0; j < half; j++) {
                float a = v[j], b = v[j + half];
                v[j] = a * cs[j] - b * cs[half + j];
                v[j + half] = b * cs[j] + a * cs[half + j];
            }
        }
    }
    free(cs);
}

/* ---- kv cache and attention ----------------------------------------------- */

static float *
glm_kv_slot(const glm_kv_pool *kv, float *base, int layer, const glm_seq_blocks *s,
    int pos)
{
    int bi = pos / kv->block_size;

    if (pos < 0 || bi >= s->n_blocks || s->blocks[bi] < 0
        || s->blocks[bi] >= kv->n_blocks)
    {
        /* the scheduler sizes block tables before a step: a miss is a bug */
        fprintf(stderr, "glm-engine: internal error: kv position %d outside its"
                " block table (%d blocks)\n", pos, s->n_blocks);
        abort();
    }
    return base + (((int64_t) layer * kv->n_blocks + s->blocks[bi]) * kv->block_size
                   + pos % kv->block_size) * kv->kv_dim;
}

static void
glm_cpu_kv_store(glm_backend *be, glm_kv_pool *kv, int layer, const float *k,
    const float *v, const glm_attn_batch *b)
{
    int i;

    (void) be;
    for (i = 0; i < b->n_tokens; i++) {
        const glm_seq_blocks *s = &b->seqs[b->seq[i]];
        memcpy(glm_kv_slot(kv, kv->k, layer, s, b->kv_pos[i]),
               k + (int64_t) i * kv->kv_dim, (size_t) kv->kv_dim * sizeof(float));
        memcpy(glm_kv_slot(kv, kv->v, layer, s, b->kv_pos[i]),
               v + (int64_t) i * kv->kv_dim, (size_t) kv->kv_dim * sizeof(float));
    }
}

typedef struct {
    float *out;
    const float *q;
    const glm_kv_pool *kv;
    int layer;
    const glm_attn_batch *b;
    int heads, kv_heads, head_dim, max_len;
    float scale;
} glm_attn_job;

static void
glm_attn_tasks(void *p, int64_t begin, int64_t end, int thread)
{
    glm_attn_job *j = p;
    float *score = glm_cpu_xmalloc((size_t) j->max_len * sizeof(float));
    int64_t task;
    int group = j->heads / j->kv_heads;

    (void) thread;
    for (task = begin; task < end; task++) {
        int i = (int) (task / j->heads), h = (int) (task % j->heads);
        int kvh = h / group, len = j->b->kv_pos[i] + 1, t, d;
        const glm_seq_blocks *s = &j->b->seqs[j->b->seq[i]];
        const float *q = j->q + ((int64_t) i * j->heads + h) * j->head_dim;
        float *o = j->out + ((int64_t) i * j->heads + h) * j->head_dim;
        float mx = -INFINITY, sum = 0.0f;

        for (t = 0; t < len; t++) {
            const float *k = glm_kv_slot(j->kv, j->kv->k, j->layer, s, t)
                             + kvh * j->head_dim;
            score[t] = glm_dot(q, k, j->head_dim) * j->scale;
            mx = score[t] > mx ? score[t] : mx;
        }
        for (t = 0; t < len; t++) {
            score[t] = expf(score[t] - mx);
            sum += score[t];
        }
        for (d = 0; d < j->head_dim; d++) {
            o[d] = 0.0f;
        }
        for (t = 0; t < len; t++) {
            const float *v = glm_kv_slot(j->kv, j->kv->v, j->layer, s, t)
                             + kvh * j->head_dim;
            float w = score[t] / sum;
            for (d = 0; d < j->head_dim; d++) {
                o[d] += w * v[d];
            }
        }
    }
    free(score);
}

static void
glm_cpu_attention(glm_backend *be, float *out, const float *q,
    const glm_kv_pool *kv, int layer, const glm_attn_batch *b, int heads,
    int kv_heads, int head_dim, float scale)
{
    glm_attn_job j = { out, q, kv, layer, b, heads, kv_heads, head_dim, 1, scale };
    int i;

    for (i = 0; i < b->n_tokens; i++) {
        if (b->kv_pos[i] + 1 > j.max_len) {
            j.max_len = b->kv_pos[i] + 1;
        }
    }
    glm_pool_run(glm_cpu_pool(be), (int64_t) b->n_tokens * heads, glm_attn_tasks, &j);
}

/* ---- elementwise ---------------------------------------------------------- */

static void
glm_cpu_swiglu(glm_backend *be, float *out, const float *gate, const float *up,
    size_t n)
{
    size_t i;

    (void) be;
    for (i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

static void
glm_cpu_add(glm_backend *be, float *x, const float *y, size_t n)
{
    size_t i;

    (void) be;
    for (i = 0; i < n; i++) {
        x[i] += y[i];
    }
}

/* ---- MoE ------------------------------------------------------------------ */

/* Indices of the k largest values (ties: lower index first); k <= n. */
static void
glm_topk(const float *v, int n, int k, int *idx)
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

/* Routing for one token (MODEL.md 3.4): returns the chosen experts and their
 * weights.  scratch holds 3*E + n_group floats. */
static void
glm_moe_route_row(const glm_moe_weights *m, const float *logits, const float *bias,
    int *idx, float *w, float *scratch, int *gidx)
{
    int E = m->n_experts, per = E / m->n_group, e, g, k;
    float *s = scratch, *c = scratch + E, *gs = scratch + 2 * E, sum = 0.0f;

    for (e = 0; e < E; e++) {
        s[e] = 1.0f / (1.0f + expf(-logits[e]));
        c[e] = s[e] + bias[e];
    }
    if (m->n_group > 1 || m->topk_group < m->n_group) {
        for (g = 0; g < m->n_group; g++) {
            int top[2];
            glm_topk(c + g * per, per, 2, top);
            gs[g] = c[g * per + top[0]] + c[g * per + top[1]];
        }
        glm_topk(gs, m->n_group, m->topk_group, gidx);
        for (g = 0; g < m->n_group; g++) {
            int keep = 0;
            for (k = 0; k < m->topk_group; k++) {
                keep |= gidx[k] == g;
            }
            if (!keep) {
                for (e = g * per; e < (g + 1) * per; e++) {
                    c[e] = -INFINITY;
                }
            }
        }
    }
    glm_topk(c, E, m->top_k, idx);
    for (k = 0; k < m->top_k; k++) {
        w[k] = s[idx[k]];
        sum += w[k];
    }
    for (k = 0; k < m->top_k; k++) {
        if (m->norm_topk_prob) {
            w[k] /= sum + 1e-20f;
        }
        w[k] *= m->routed_scaling_factor;
    }
}

static void
glm_cpu_moe(glm_backend *be, float *out, const float *x, int rows,
    const glm_moe_weights *m)
{
    int E = m->n_experts, K = m->top_k, H = m->hidden, I = m->inter;
    float *logits = glm_cpu_xmalloc((size_t) rows * E * sizeof(float));
    float *bias = glm_cpu_xmalloc((size_t) E * sizeof(float));
    float *scratch = glm_cpu_xmalloc((size_t) (3 * E + m->n_group) * sizeof(float));
    int *gidx = glm_cpu_xmalloc((size_t) m->n_group * sizeof(int));
    int *idx = glm_cpu_xmalloc((size_t) rows * K * sizeof(int));
    float *w = glm_cpu_xmalloc((size_t) rows * K * sizeof(float));
    int *members = glm_cpu_xmalloc((size_t) rows * sizeof(int));
    float *mw = glm_cpu_xmalloc((size_t) rows * sizeof(float));
    float *xe = glm_cpu_xmalloc((size_t) rows * H * sizeof(float));
    float *g = glm_cpu_xmalloc((size_t) rows * I * sizeof(float));
    float *u = glm_cpu_xmalloc((size_t) rows * I * sizeof(float));
    float *d = glm_cpu_xmalloc((size_t) rows * H * sizeof(float));
    int r, e, k, n, c;

    /* router: fp32 logits, as transformers upcasts both sides */
    glm_cpu_matmul(be, logits, x, rows, m->router, NULL);
    glm_tensor_to_f32(m->correction_bias, 0, E, bias);
    for (r = 0; r < rows; r++) {
        glm_moe_route_row(m, logits + (int64_t) r * E, bias, idx + r * K, w + r * K,
                          scratch, gidx);
    }
    memset(out, 0, (size_t) rows * H * sizeof(float));

    /* experts in ascending id, each over the tokens routed to it; fp32 sums */
    for (e = 0; e < E; e++) {
        n = 0;
        for (r = 0; r < rows; r++) {
            for (k = 0; k < K; k++) {
                if (idx[r * K + k] == e) {
                    members[n] = r;
                    mw[n] = w[r * K + k];
                    memcpy(xe + (int64_t) n * H, x + (int64_t) r * H, (size_t) H * sizeof(float));
                    n++;
                }
            }
        }
        if (n == 0) {
            continue;
        }
        glm_cpu_matmul(be, g, xe, n, m->gate[e], NULL);
        glm_cpu_matmul(be, u, xe, n, m->up[e], NULL);
        glm_cpu_swiglu(be, g, g, u, (size_t) n * I);
        glm_cpu_matmul(be, d, g, n, m->down[e], NULL);
        for (r = 0; r < n; r++) {
            float *o = out + (int64_t) members[r] * H;
            for (c = 0; c < H; c++) {
                o[c] += mw[r] * d[(int64_t) r * H + c];
            }
        }
    }
    free(logits); free(bias); free(scratch); free(gidx); free(idx); free(w);
    free(members); free(mw); free(xe); free(g); free(u); free(d);
}

/* ---- the vision tower's ops ------------------------------------------------ */

typedef struct {
    float *out;
    const float *x, *w, *b;
    int dim;
    float eps;
} glm_ln_job;

static void
glm_ln_rows(void *p, int64_t begin, int64_t end, int thread)
{
    glm_ln_job *j = p;
    int64_t r;
    int i;

    (void) thread;
    for (r = begin; r < end; r++) {
        const float *x = j->x + r * j->dim;
        float *y = j->out + r * j->dim;
        double mean = 0.0, var = 0.0;
        float inv;

        /* two passes in double: the reference's fp32 reduction is more
         * accurate than a naive fp32 sum, and this is the oracle */
        for (i = 0; i < j->dim; i++) {
            mean += x[i];
        }
        mean /= j->dim;
        for (i = 0; i < j->dim; i++) {
            double d = x[i] - mean;
            var += d * d;
        }
        var /= j->dim;
        inv = (float) (1.0 / sqrt(var + j->eps));
        for (i = 0; i < j->dim; i++) {
            y[i] = ((x[i] - (float) mean) * inv) * j->w[i] + j->b[i];
        }
    }
}

static void
glm_cpu_layernorm(glm_backend *be, float *out, const float *x, const glm_tensor *w,
    const glm_tensor *b, int rows, int dim, float eps)
{
    float *wf = glm_cpu_xmalloc((size_t) dim * 2 * sizeof(float));
    glm_ln_job j;

    glm_tensor_to_f32(w, 0, dim, wf);
    glm_tensor_to_f32(b, 0, dim, wf + dim);
    j = (glm_ln_job) { out, x, wf, wf + dim, dim, eps };
    glm_pool_run(glm_cpu_pool(be), rows, glm_ln_rows, &j);
    free(wf);
}

static void
glm_cpu_gelu(glm_backend *be, float *out, const float *x, size_t n)
{
    size_t i;

    (void) be;
    for (i = 0; i < n; i++) {
        out[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752440f));
    }
}

typedef struct {
    float *out;
    const float *q, *k, *v;
    int stride;
    const int32_t *cu;
    int n_segments, heads, head_dim, max_len;
    float scale;
} glm_seg_attn_job;

static void
glm_seg_attn_tasks(void *p, int64_t begin, int64_t end, int thread)
{
    glm_seg_attn_job *j = p;
    float *score = glm_cpu_xmalloc((size_t) j->max_len * sizeof(float));
    int64_t task;
    int s = 0;

    (void) thread;
    for (task = begin; task < end; task++) {
        int i = (int) (task / j->heads), h = (int) (task % j->heads), t, d, lo, len;
        const float *q = j->q + (int64_t) i * j->stride + h * j->head_dim;
        float *o = j->out + (int64_t) i * j->stride + h * j->head_dim;
        float mx = -INFINITY, sum = 0.0f;

        while (s > 0 && j->cu[s] > i) {
            s--;
        }
        while (s < j->n_segments - 1 && j->cu[s + 1] <= i) {
            s++;
        }
        lo = j->cu[s];
        len = j->cu[s + 1] - lo;
        for (t = 0; t < len; t++) {
            const float *k = j->k + (int64_t) (lo + t) * j->stride + h * j->head_dim;
            score[t] = glm_dot(q, k, j->head_dim) * j->scale;
            mx = score[t] > mx ? score[t] : mx;
        }
        for (t = 0; t < len; t++) {
            score[t] = expf(score[t] - mx);
            sum += score[t];
        }
        for (d = 0; d < j->head_dim; d++) {
            o[d] = 0.0f;
        }
        for (t = 0; t < len; t++) {
            const float *v = j->v + (int64_t) (lo + t) * j->stride + h * j->head_dim;
            float w = score[t] / sum;
            for (d = 0; d < j->head_dim; d++) {
                o[d] += w * v[d];
            }
        }
    }
    free(score);
}

static void
glm_cpu_attention_segments(glm_backend *be, float *out, const float *q,
    const float *k, const float *v, int stride, const int32_t *cu_seqlens,
    int n_segments, int heads, int head_dim, float scale)
{
    glm_seg_attn_job j = { out, q, k, v, stride, cu_seqlens, n_segments, heads,
                           head_dim, 1, scale };
    int s;

    for (s = 0; s < n_segments; s++) {
        if (cu_seqlens[s + 1] - cu_seqlens[s] > j.max_len) {
            j.max_len = cu_seqlens[s + 1] - cu_seqlens[s];
        }
    }
    if (n_segments > 0) {
        glm_pool_run(glm_cpu_pool(be), (int64_t) cu_seqlens[n_segments] * heads,
                     glm_seg_attn_tasks, &j);
    }
}

static void
glm_cpu_group_transpose(glm_backend *be, float *out, const float *x, int groups,
    int g, int dim)
{
    int64_t grp;
    int i, c;

    (void) be;
    for (grp = 0; grp < groups; grp++) {
        const float *src = x + grp * g * dim;
        float *dst = out + grp * g * dim;
        for (i = 0; i < g; i++) {
            for (c = 0; c < dim; c++) {
                dst[c * g + i] = src[i * dim + c];
            }
        }
    }
}

static void
glm_cpu_destroy(glm_backend *be)
{
    glm_cpu *cpu = (glm_cpu *) be;

    glm_pool_destroy(cpu->pool);
    free(cpu);
}

glm_backend *
glm_backend_cpu_create(int nthreads)
{
    glm_cpu *cpu = calloc(1, sizeof(*cpu));

    if (cpu == NULL) {
        return NULL;
    }
    cpu->pool = glm_pool_create(nthreads);
    if (cpu->pool == NULL) {
        free(cpu);
        return NULL;
    }
    cpu->be = (glm_backend) {
        .name = "cpu",
        .alloc = glm_cpu_alloc,
        .free = glm_cpu_free,
        .upload = glm_cpu_copy,
        .download = glm_cpu_copy,
        .embed = glm_cpu_embed,
        .rmsnorm = glm_cpu_rmsnorm,
        .matmul = glm_cpu_matmul,
        .rope = glm_cpu_rope,
        .kv_store = glm_cpu_kv_store,
        .attention = glm_cpu_attention,
        .swiglu = glm_cpu_swiglu,
        .add = glm_cpu_add,
        .moe = glm_cpu_moe,
        .layernorm = glm_cpu_layernorm,
        .gelu = glm_cpu_gelu,
        .attention_segments = glm_cpu_attention_segments,
        .group_transpose = glm_cpu_group_transpose,
        .destroy = glm_cpu_destroy,
    };
    return &cpu->be;
}
