/*
 * backend_cpu.c: the CPU reference backend.  fp32 everywhere, weights widened
 * from their stored dtype in registers as they are used (so a checkpoint is
 * never copied), loops split over a thread pool.  This is the oracle the CUDA
 * kernels are tested against, and it is itself tested against transformers:
 * the inner loops (cpu_kernels.h) change only the order of fp32 sums.
 *
 * Nothing is allocated per step once the largest step has been seen: the
 * scratch buffers below grow to fit and stay.
 */
#include "backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cpu_kernels.h"
#include "util/threadpool.h"

/* scratch buffers, each owned by one op (ops never run concurrently) */
enum {
    GLM_SCRATCH_NORM,           /* rmsnorm's weights in fp32 */
    GLM_SCRATCH_ROPE,           /* cos/sin of one row */
    GLM_SCRATCH_ATTN,           /* attention's query tiles */
    GLM_SCRATCH_MOE,            /* routing, grouping and expert activations */
    GLM_SCRATCH_SAMPLE,         /* sampling's processed row */
    GLM_SCRATCH_GATE_UP,        /* gate_up_swiglu's up half */
    GLM_SCRATCH_N
};

typedef struct {
    glm_backend             be;
    glm_pool               *pool;
    const glm_cpu_kernels  *k;
    void                   *scratch[GLM_SCRATCH_N];
    size_t                  scratch_size[GLM_SCRATCH_N];
} glm_cpu;

/* MoE: expert column blocks per task (gate and up weights of a block stay in
 * L2 while the expert's tokens go past them) */
#define GLM_MOE_COLS 32

static glm_pool *
glm_cpu_pool(glm_backend *be)
{
    return ((glm_cpu *) be)->pool;
}

static const glm_cpu_kernels *
glm_cpu_k(glm_backend *be)
{
    return ((glm_cpu *) be)->k;
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

/* Scratch buffer `which`, at least `bytes`, 64-byte aligned; grows, never
 * shrinks, so a step allocates only when it is the largest yet. */
static void *
glm_cpu_scratch(glm_backend *be, int which, size_t bytes)
{
    glm_cpu *cpu = (glm_cpu *) be;

    if (bytes > cpu->scratch_size[which]) {
        size_t size = bytes + bytes / 4 + 64;

        free(cpu->scratch[which]);
        cpu->scratch[which] = NULL;
        if (posix_memalign(&cpu->scratch[which], 64, size) != 0) {
            fprintf(stderr, "glm-engine: out of memory allocating %zu bytes\n", size);
            abort();
        }
        cpu->scratch_size[which] = size;
    }
    return cpu->scratch[which];
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
    const glm_cpu_kernels *k;
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
        float inv = 1.0f / sqrtf(j->k->dot(x, x, j->dim) / (float) j->dim + j->eps);

        for (i = 0; i < j->dim; i++) {
            y[i] = j->w[i] * (x[i] * inv);
        }
    }
}

static void
glm_cpu_rmsnorm(glm_backend *be, float *out, const float *x, const glm_tensor *w,
    int rows, int dim, float eps)
{
    float *wf = glm_cpu_scratch(be, GLM_SCRATCH_NORM, (size_t) dim * sizeof(float));
    glm_rms_job j = { out, x, wf, dim, eps, glm_cpu_k(be) };

    glm_tensor_to_f32(w, 0, dim, wf);
    glm_pool_run(glm_cpu_pool(be), rows, glm_rms_rows, &j);
}

/* ---- matmul --------------------------------------------------------------- */

typedef struct {
    const glm_cpu_kernels *k;
    glm_mm_args            a;
    int64_t                N;
} glm_mm_job;

/* a task is a range of column quads (4 weight rows, one register tile) */
static void
glm_mm_quads(void *p, int64_t begin, int64_t end, int thread)
{
    glm_mm_job *j = p;

    (void) thread;
    j->k->matmul_cols(&j->a, begin * 4, end * 4 < j->N ? end * 4 : j->N);
}

static void
glm_cpu_matmul(glm_backend *be, float *out, const float *x, int rows,
    const glm_tensor *w, const glm_tensor *bias)
{
    glm_mm_job j;

    if (rows <= 0) {
        return;
    }
    j.k = glm_cpu_k(be);
    j.a = (glm_mm_args) { out, x, w->shape[1], w->shape[0], rows, w, bias };
    j.N = w->shape[0];
    glm_pool_run(glm_cpu_pool(be), (j.N + 3) / 4, glm_mm_quads, &j);
}

/* ---- rope ----------------------------------------------------------------- */

static void
glm_cpu_rope(glm_backend *be, float *x, int rows, int heads, int head_dim,
    int rot_dim, const int32_t *pos3, const int *axis_of_freq,
    const float *inv_freq)
{
    int half = rot_dim / 2, r, h, j;
    float *cs = glm_cpu_scratch(be, GLM_SCRATCH_ROPE, (size_t) rot_dim * sizeof(float));

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
}

/* ---- kv cache and attention ----------------------------------------------- */

/* narrows each row to the pool's dtype (a copy for fp32); attention widens
 * them back in its key/value tiles (cpu_kernels_body.h) */
static void
glm_cpu_kv_store(glm_backend *be, glm_kv_pool *kv, int layer, const float *k,
    const float *v, const glm_attn_batch *b)
{
    float ks = kv->dtype == GLM_KV_FP8_E4M3 ? kv->k_scale[layer] : 1.0f;
    float vs = kv->dtype == GLM_KV_FP8_E4M3 ? kv->v_scale[layer] : 1.0f;
    int i;

    (void) be;
    for (i = 0; i < b->n_tokens; i++) {
        const glm_seq_blocks *s = &b->seqs[b->seq[i]];
        glm_kv_narrow(kv->dtype, k + (int64_t) i * kv->kv_dim, kv->kv_dim, ks,
                      glm_kv_slot(kv, kv->k, layer, s, b->kv_pos[i]));
        glm_kv_narrow(kv->dtype, v + (int64_t) i * kv->kv_dim, kv->kv_dim, vs,
                      glm_kv_slot(kv, kv->v, layer, s, b->kv_pos[i]));
    }
}

typedef struct {
    const glm_cpu_kernels *k;
    glm_attn_args          a;
} glm_attn_job;

static void
glm_attn_tasks(void *p, int64_t begin, int64_t end, int thread)
{
    glm_attn_job *j = p;
    int64_t task;

    (void) thread;
    for (task = begin; task < end; task++) {
        j->k->attn_tile(&j->a, task / j->a.kv_heads, (int) (task % j->a.kv_heads));
    }
}

static void
glm_cpu_attention(glm_backend *be, float *out, const float *q,
    const glm_kv_pool *kv, int layer, const glm_attn_batch *b, int heads,
    int kv_heads, int head_dim, float scale)
{
    int32_t *tiles = glm_cpu_scratch(be, GLM_SCRATCH_ATTN,
                                     (size_t) (b->n_tokens + 1) * sizeof(int32_t));
    int group = heads / kv_heads, max_tokens, n_tiles = 0, i;
    glm_attn_job j;

    /* query tiles: runs of tokens of one sequence, as many as keep the task's
     * query rows (tokens x group) within GLM_ATTN_ROWS */
    max_tokens = group < GLM_ATTN_ROWS ? GLM_ATTN_ROWS / group : 1;
    for (i = 0; i < b->n_tokens; i++) {
        if (i == 0 || b->seq[i] != b->seq[tiles[n_tiles - 1]]
            || i - tiles[n_tiles - 1] >= max_tokens)
        {
            tiles[n_tiles++] = i;
        }
    }
    tiles[n_tiles] = b->n_tokens;
    j.k = glm_cpu_k(be);
    j.a = (glm_attn_args) { out, q, kv, layer, b, heads, kv_heads, head_dim, scale, tiles };
    glm_pool_run(glm_cpu_pool(be), (int64_t) n_tiles * kv_heads, glm_attn_tasks, &j);
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

/*
 * The routed experts, grouped by expert once per layer: a counting sort of
 * the (token, pick) pairs puts each expert's tokens in one block of rows
 * (ascending token order), so each expert's weights stream once for all its
 * tokens.  Two pool runs spread the experts' column blocks over the threads:
 * gate and up with SwiGLU, then down; a third sums each token's picks in
 * ascending expert order, as before grouping.
 */
typedef struct {
    const glm_cpu_kernels *k;
    const glm_moe_weights *m;
    const int32_t         *off;       /* [E + 1] first grouped row of each expert */
    const int32_t         *task_off;  /* [E + 1] first task of each expert */
    const float           *xg;        /* [pairs, H] grouped token rows */
    float                 *g, *u;     /* [pairs, I] */
    float                 *d;         /* [pairs, H] */
    /* the combine */
    float                 *out;
    const int32_t         *idx, *slot;
    const float           *w;
} glm_moe_job;

/* The expert whose tasks include `task`: task_off is ascending. */
static int
glm_moe_expert_of(const glm_moe_job *j, int64_t task)
{
    int lo = 0, hi = j->m->n_experts - 1;

    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (j->task_off[mid] <= task) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    return lo;
}

static void
glm_moe_gate_up(void *p, int64_t begin, int64_t end, int thread)
{
    glm_moe_job *j = p;
    const glm_moe_weights *m = j->m;
    int64_t task, c0, c1, r, c;
    int H = m->hidden, I = m->inter, e, n;
    glm_mm_args a;

    (void) thread;
    for (task = begin; task < end; task++) {
        e = glm_moe_expert_of(j, task);
        n = j->off[e + 1] - j->off[e];
        c0 = (task - j->task_off[e]) * GLM_MOE_COLS;
        c1 = c0 + GLM_MOE_COLS < I ? c0 + GLM_MOE_COLS : I;
        a = (glm_mm_args) { j->g + (int64_t) j->off[e] * I, j->xg + (int64_t) j->off[e] * H,
                            H, I, n, m->gate[e], NULL };
        j->k->matmul_cols(&a, c0, c1);
        a.out = j->u + (int64_t) j->off[e] * I;
        a.w = m->up[e];
        j->k->matmul_cols(&a, c0, c1);
        for (r = j->off[e]; r < j->off[e + 1]; r++) {
            float *g = j->g + r * I, *u = j->u + r * I;
            for (c = c0; c < c1; c++) {
                g[c] = g[c] / (1.0f + expf(-g[c])) * u[c];
            }
        }
    }
}

static void
glm_moe_down(void *p, int64_t begin, int64_t end, int thread)
{
    glm_moe_job *j = p;
    const glm_moe_weights *m = j->m;
    int64_t task, c0, c1;
    int H = m->hidden, I = m->inter, e;
    glm_mm_args a;

    (void) thread;
    for (task = begin; task < end; task++) {
        e = glm_moe_expert_of(j, task);
        c0 = (task - j->task_off[e]) * GLM_MOE_COLS;
        c1 = c0 + GLM_MOE_COLS < H ? c0 + GLM_MOE_COLS : H;
        a = (glm_mm_args) { j->d + (int64_t) j->off[e] * H, j->g + (int64_t) j->off[e] * I,
                            I, H, j->off[e + 1] - j->off[e], m->down[e], NULL };
        j->k->matmul_cols(&a, c0, c1);
    }
}

/* out[r] = sum of w * expert(x[r]) over r's picks, ascending expert */
static void
glm_moe_combine(void *p, int64_t begin, int64_t end, int thread)
{
    glm_moe_job *j = p;
    int K = j->m->top_k, H = j->m->hidden, k, c;
    int64_t r;

    (void) thread;
    for (r = begin; r < end; r++) {
        float *o = j->out + r * H;

        memset(o, 0, (size_t) H * sizeof(float));
        for (k = 0; k < K; k++) {
            const float *d;
            float w = j->w[r * K + k];
            if (j->slot[r * K + k] < 0) {
                continue;               /* another rank's expert */
            }
            d = j->d + (int64_t) j->slot[r * K + k] * H;
            for (c = 0; c < H; c++) {
                o[c] += w * d[c];
            }
        }
    }
}

/* Carves n bytes, 64-aligned, from *at. */
static void *
glm_carve(char **at, size_t n)
{
    void *p = *at;

    *at += (n + 63) & ~(size_t) 63;
    return p;
}

static void
glm_cpu_moe(glm_backend *be, float *out, const float *x, int rows,
    const glm_moe_weights *m)
{
    int E = m->n_experts, K = m->top_k, H = m->hidden, I = m->inter;
    size_t P = (size_t) rows * K, bytes;
    size_t Is = m->shared_gate != NULL ? (size_t) m->shared_gate->shape[0] : 0;
    float *logits, *bias, *scratch, *w, *xg, *g, *u, *d, *sg, *su, *sd;
    int32_t *idx, *slot, *off, *fill, *task_off;
    int *gidx;
    char *at;
    glm_moe_job j;
    int r, e, k;

    if (rows <= 0) {
        return;
    }
    bytes = 64 * 16 + ((size_t) rows * E + E + 3 * E + m->n_group + P) * sizeof(float)
            + (2 * P + 3 * (size_t) E + 2) * sizeof(int32_t) + m->n_group * sizeof(int)
            + P * (2 * (size_t) H + 2 * (size_t) I) * sizeof(float)
            + (size_t) rows * (2 * Is + (size_t) H) * sizeof(float);
    at = glm_cpu_scratch(be, GLM_SCRATCH_MOE, bytes);
    logits = glm_carve(&at, (size_t) rows * E * sizeof(float));
    bias = glm_carve(&at, (size_t) E * sizeof(float));
    scratch = glm_carve(&at, (size_t) (3 * E + m->n_group) * sizeof(float));
    gidx = glm_carve(&at, (size_t) m->n_group * sizeof(int));
    idx = glm_carve(&at, P * sizeof(int32_t));
    w = glm_carve(&at, P * sizeof(float));
    slot = glm_carve(&at, P * sizeof(int32_t));
    off = glm_carve(&at, (size_t) (E + 1) * sizeof(int32_t));
    fill = glm_carve(&at, (size_t) E * sizeof(int32_t));
    task_off = glm_carve(&at, (size_t) (E + 1) * sizeof(int32_t));
    xg = glm_carve(&at, P * H * sizeof(float));
    g = glm_carve(&at, P * I * sizeof(float));
    u = glm_carve(&at, P * I * sizeof(float));
    d = glm_carve(&at, P * H * sizeof(float));
    sg = glm_carve(&at, (size_t) rows * Is * sizeof(float));
    su = glm_carve(&at, (size_t) rows * Is * sizeof(float));
    sd = glm_carve(&at, (size_t) rows * H * sizeof(float));

    /* router: fp32 logits, as transformers upcasts both sides */
    glm_cpu_matmul(be, logits, x, rows, m->router, NULL);
    glm_tensor_to_f32(m->correction_bias, 0, E, bias);
    for (r = 0; r < rows; r++) {
        glm_moe_route_row(m, logits + (int64_t) r * E, bias, idx + r * K, w + r * K,
                          scratch, gidx);
    }

    /* group: each expert's pairs in one block, tokens ascending; an expert
     * without weights is another rank's (expert parallel): its picks are
     * left out here and summed in by the all-reduce after the block */
    memset(off, 0, (size_t) (E + 1) * sizeof(int32_t));
    for (r = 0; r < (int) P; r++) {
        off[idx[r] + 1] += m->gate[idx[r]] != NULL;
    }
    for (e = 0; e < E; e++) {
        off[e + 1] += off[e];
        fill[e] = off[e];
    }
    for (r = 0; r < rows; r++) {
        for (k = 0; k < K; k++) {
            int32_t sl;
            if (m->gate[idx[r * K + k]] == NULL) {
                slot[r * K + k] = -1;
                continue;
            }
            sl = fill[idx[r * K + k]]++;
            slot[r * K + k] = sl;
            memcpy(xg + (int64_t) sl * H, x + (int64_t) r * H, (size_t) H * sizeof(float));
        }
        /* the picks in ascending expert, the order the sums take */
        for (k = 1; k < K; k++) {
            int32_t ik = idx[r * K + k], sk = slot[r * K + k], q = k;
            float wk = w[r * K + k];
            while (q > 0 && idx[r * K + q - 1] > ik) {
                idx[r * K + q] = idx[r * K + q - 1];
                slot[r * K + q] = slot[r * K + q - 1];
                w[r * K + q] = w[r * K + q - 1];
                q--;
            }
            idx[r * K + q] = ik;
            slot[r * K + q] = sk;
            w[r * K + q] = wk;
        }
    }

    j = (glm_moe_job) { glm_cpu_k(be), m, off, task_off, xg, g, u, d, out, idx, slot, w };
    task_off[0] = 0;
    for (e = 0; e < E; e++) {
        task_off[e + 1] = task_off[e]
                          + (off[e + 1] > off[e] ? (I + GLM_MOE_COLS - 1) / GLM_MOE_COLS : 0);
    }
    glm_pool_run(glm_cpu_pool(be), task_off[E], glm_moe_gate_up, &j);
    for (e = 0; e < E; e++) {
        task_off[e + 1] = task_off[e]
                          + (off[e + 1] > off[e] ? (H + GLM_MOE_COLS - 1) / GLM_MOE_COLS : 0);
    }
    glm_pool_run(glm_cpu_pool(be), task_off[E], glm_moe_down, &j);
    glm_pool_run(glm_cpu_pool(be), rows, glm_moe_combine, &j);

    /* the shared expert: the model's MLP (down(silu(gate x) * up x)) by the
     * same ops in the same order, added to the routed sum */
    if (m->shared_gate != NULL) {
        glm_cpu_matmul(be, sg, x, rows, m->shared_gate, NULL);
        glm_cpu_matmul(be, su, x, rows, m->shared_up, NULL);
        glm_cpu_swiglu(be, sg, sg, su, (size_t) rows * Is);
        glm_cpu_matmul(be, sd, sg, rows, m->shared_down, NULL);
        glm_cpu_add(be, out, sd, (size_t) rows * H);
    }
}

void
glm_moe_route_oracle(const glm_moe_weights *m, const float *logits, int rows,
    int32_t *idx, float *w)
{
    int E = m->n_experts, K = m->top_k, r, k;
    float *scratch = malloc((size_t) (3 * E + m->n_group) * sizeof(float));
    int *gidx = malloc((size_t) m->n_group * sizeof(int)), *ix = malloc((size_t) K * sizeof(int));
    float *bias = malloc((size_t) E * sizeof(float));

    if (scratch == NULL || gidx == NULL || ix == NULL || bias == NULL) {
        fprintf(stderr, "glm-engine: out of memory routing %d rows\n", rows);
        abort();
    }
    glm_tensor_to_f32(m->correction_bias, 0, E, bias);
    for (r = 0; r < rows; r++) {
        glm_moe_route_row(m, logits + (int64_t) r * E, bias, ix, w + (int64_t) r * K,
                          scratch, gidx);
        for (k = 0; k < K; k++) {
            idx[(int64_t) r * K + k] = ix[k];
        }
    }
    free(scratch);
    free(gidx);
    free(ix);
    free(bias);
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
    int i;

    glm_pool_destroy(cpu->pool);
    for (i = 0; i < GLM_SCRATCH_N; i++) {
        free(cpu->scratch[i]);
    }
    free(cpu);
}

/* ---- the op table ----------------------------------------------------------
 * backend.h passes activations untyped (each backend owns their dtype); here
 * they are fp32, so each entry hands its pointers on as float. */

static void
glm_cpu_upload_act(glm_backend *be, void *dst, const float *src, size_t n)
{
    glm_cpu_copy(be, dst, src, n * sizeof(float));
}

static void
glm_cpu_download_act(glm_backend *be, float *dst, const void *src, size_t n)
{
    glm_cpu_copy(be, dst, src, n * sizeof(float));
}

static void
glm_cpu_op_embed(glm_backend *be, void *out, const int32_t *ids, int n,
    const glm_tensor *table)
{
    glm_cpu_embed(be, out, ids, n, table);
}

static void
glm_cpu_op_rmsnorm(glm_backend *be, void *out, const void *x, const glm_tensor *w,
    int rows, int dim, float eps)
{
    glm_cpu_rmsnorm(be, out, x, w, rows, dim, eps);
}

static void
glm_cpu_op_matmul(glm_backend *be, void *out, const void *x, int rows,
    const glm_tensor *w, const glm_tensor *bias)
{
    glm_cpu_matmul(be, out, x, rows, w, bias);
}

static void
glm_cpu_op_matmul_qkv(glm_backend *be, void *q, void *k, void *v, const void *x, int rows,
    const glm_tensor *wq, const glm_tensor *wk, const glm_tensor *wv, const glm_tensor *bq,
    const glm_tensor *bk, const glm_tensor *bv)
{
    glm_cpu_matmul(be, q, x, rows, wq, bq);
    glm_cpu_matmul(be, k, x, rows, wk, bk);
    glm_cpu_matmul(be, v, x, rows, wv, bv);
}

static void
glm_cpu_op_matmul_f32(glm_backend *be, float *out, const void *x, int rows,
    const glm_tensor *w, const glm_tensor *bias)
{
    glm_cpu_matmul(be, out, x, rows, w, bias);
}

static void
glm_cpu_op_rope(glm_backend *be, void *x, int rows, int heads, int head_dim,
    int rot_dim, const int32_t *pos3, const int *axis_of_freq, const float *inv_freq)
{
    glm_cpu_rope(be, x, rows, heads, head_dim, rot_dim, pos3, axis_of_freq, inv_freq);
}

static void
glm_cpu_op_kv_store(glm_backend *be, glm_kv_pool *kv, int layer, const void *k,
    const void *v, const glm_attn_batch *b)
{
    glm_cpu_kv_store(be, kv, layer, k, v, b);
}

static void
glm_cpu_op_attention(glm_backend *be, void *out, const void *q, const glm_kv_pool *kv,
    int layer, const glm_attn_batch *b, int heads, int kv_heads, int head_dim,
    float scale)
{
    glm_cpu_attention(be, out, q, kv, layer, b, heads, kv_heads, head_dim, scale);
}

/* the unfused sequence, as model.c ran it before the op existed: the
 * oracle's numbers do not depend on the fusion */
static void
glm_cpu_op_attn_prep(glm_backend *be, void *q, void *k, const void *v, int heads,
    int kv_heads, int head_dim, const glm_tensor *q_norm, const glm_tensor *k_norm, float eps,
    int rot_dim, const int32_t *pos3, const int *axis_of_freq, const float *inv_freq,
    glm_kv_pool *kv, int layer, const glm_attn_batch *b)
{
    int T = b->n_tokens;

    if (q_norm != NULL) {
        glm_cpu_rmsnorm(be, q, q, q_norm, T * heads, head_dim, eps);
    }
    if (k_norm != NULL) {
        glm_cpu_rmsnorm(be, k, k, k_norm, T * kv_heads, head_dim, eps);
    }
    glm_cpu_rope(be, q, T, heads, head_dim, rot_dim, pos3, axis_of_freq, inv_freq);
    glm_cpu_rope(be, k, T, kv_heads, head_dim, rot_dim, pos3, axis_of_freq, inv_freq);
    glm_cpu_kv_store(be, kv, layer, k, v, b);
}

static void
glm_cpu_op_swiglu(glm_backend *be, void *out, const void *gate, const void *up,
    size_t n)
{
    glm_cpu_swiglu(be, out, gate, up, n);
}

static void
glm_cpu_op_add(glm_backend *be, void *x, const void *y, size_t n)
{
    glm_cpu_add(be, x, y, n);
}

/* exactly add then rmsnorm: the oracle's numbers do not move */
static void
glm_cpu_op_add_rmsnorm(glm_backend *be, void *out, void *x, const void *y,
    const glm_tensor *w, int rows, int dim, float eps)
{
    glm_cpu_add(be, x, y, (size_t) rows * dim);
    glm_cpu_rmsnorm(be, out, x, w, rows, dim, eps);
}

/* exactly matmul, matmul, swiglu; the up half goes through scratch */
static void
glm_cpu_op_gate_up_swiglu(glm_backend *be, void *out, const void *x, int rows,
    const glm_tensor *gate, const glm_tensor *up)
{
    size_t n = (size_t) rows * gate->shape[0];
    float *u = glm_cpu_scratch(be, GLM_SCRATCH_GATE_UP, n * sizeof(float));

    glm_cpu_matmul(be, out, x, rows, gate, NULL);
    glm_cpu_matmul(be, u, x, rows, up, NULL);
    glm_cpu_swiglu(be, out, out, u, n);
}

static void
glm_cpu_op_moe(glm_backend *be, void *out, const void *x, int rows,
    const glm_moe_weights *m)
{
    glm_cpu_moe(be, out, x, rows, m);
}

static void
glm_cpu_op_layernorm(glm_backend *be, void *out, const void *x, const glm_tensor *w,
    const glm_tensor *b, int rows, int dim, float eps)
{
    glm_cpu_layernorm(be, out, x, w, b, rows, dim, eps);
}

static void
glm_cpu_op_gelu(glm_backend *be, void *out, const void *x, size_t n)
{
    glm_cpu_gelu(be, out, x, n);
}

static void
glm_cpu_op_attention_segments(glm_backend *be, void *out, const void *q, const void *k,
    const void *v, int stride, const int32_t *cu_seqlens, int n_segments, int heads,
    int head_dim, float scale)
{
    glm_cpu_attention_segments(be, out, q, k, v, stride, cu_seqlens, n_segments, heads,
                               head_dim, scale);
}

static void
glm_cpu_op_group_transpose(glm_backend *be, void *out, const void *x, int groups,
    int g, int dim)
{
    glm_cpu_group_transpose(be, out, x, groups, g, dim);
}

static void
glm_cpu_op_gather_rows(glm_backend *be, void *out, const void *x, const int32_t *rows,
    int n, int dim)
{
    int i;

    for (i = 0; i < n; i++) {
        memcpy((float *) out + (size_t) i * dim, (const float *) x + (size_t) rows[i] * dim,
               (size_t) dim * sizeof(float));
    }
}

static void
glm_cpu_op_sample(glm_backend *be, glm_sample_out *out, const float *logits, int rows,
    int vocab, const glm_sample_row *p)
{
    if (rows > 0) {
        glm_sample_rows_cpu(out, logits, rows, vocab, p,
                            glm_cpu_scratch(be, GLM_SCRATCH_SAMPLE,
                                            (size_t) vocab * sizeof(float)));
    }
}

glm_backend *
glm_backend_cpu_create(int nthreads)
{
    glm_cpu *cpu = calloc(1, sizeof(*cpu));

    if (cpu == NULL) {
        return NULL;
    }
    cpu->k = glm_cpu_kernels_select();
    cpu->pool = glm_pool_create(nthreads);
    if (cpu->pool == NULL) {
        free(cpu);
        return NULL;
    }
    cpu->be = (glm_backend) {
        .name = "cpu",
        /* the oracle keeps fp32 unless asked: bfloat16 and fp8 are there to
         * measure what they cost (make kv-dtype-check) */
        .kv_dtypes = 1u << GLM_KV_F32 | 1u << GLM_KV_BF16 | 1u << GLM_KV_FP8_E4M3,
        .kv_dtype_auto = GLM_KV_F32,
        .act_dtype = GLM_ACT_F32,
        .act_size = sizeof(float),
        .alloc = glm_cpu_alloc,
        .free = glm_cpu_free,
        .upload = glm_cpu_copy,
        .download = glm_cpu_copy,
        .upload_act = glm_cpu_upload_act,
        .download_act = glm_cpu_download_act,
        .embed = glm_cpu_op_embed,
        .rmsnorm = glm_cpu_op_rmsnorm,
        .matmul = glm_cpu_op_matmul,
        .matmul_f32 = glm_cpu_op_matmul_f32,
        .matmul_qkv = glm_cpu_op_matmul_qkv,
        .rope = glm_cpu_op_rope,
        .kv_store = glm_cpu_op_kv_store,
        .attention = glm_cpu_op_attention,
        .attn_prep = glm_cpu_op_attn_prep,
        .swiglu = glm_cpu_op_swiglu,
        .add = glm_cpu_op_add,
        .add_rmsnorm = glm_cpu_op_add_rmsnorm,
        .gate_up_swiglu = glm_cpu_op_gate_up_swiglu,
        .moe = glm_cpu_op_moe,
        .layernorm = glm_cpu_op_layernorm,
        .gelu = glm_cpu_op_gelu,
        .attention_segments = glm_cpu_op_attention_segments,
        .group_transpose = glm_cpu_op_group_transpose,
        .gather_rows = glm_cpu_op_gather_rows,
        .sample = glm_cpu_op_sample,
        .destroy = glm_cpu_destroy,
    };
    return &cpu->be;
}
