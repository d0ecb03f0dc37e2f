/*
 * model.c: see model.h.  Each block is one function that reads like the
 * formula in MODEL.md section 3; shapes are in the comments.
 */
#include "model.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "parallel/comm.h"
#include "parallel/ranks.h"

/* ---- binding the checkpoint ---------------------------------------------- */

typedef struct {
    glm_checkpoint *ck;
    glm_quant      *quant;         /* quantization_config, NULL if none */
    const char     *prefix;
    glm_err        *err;
    int             failed;
} glm_binder;

static glm_tensor *
glm_bind(glm_binder *b, int ndim, int64_t d0, int64_t d1, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static glm_tensor *
glm_bind(glm_binder *b, int ndim, int64_t d0, int64_t d1, const char *fmt, ...)
{
    char name[512];
    int64_t shape[2] = { d0, d1 };
    glm_tensor *t;
    va_list ap;

    if (b->failed) {
        return NULL;
    }
    va_start(ap, fmt);
    vsnprintf(name, sizeof(name), fmt, ap);
    va_end(ap);
    t = glm_checkpoint_get(b->ck, name, ndim, shape, b->err);
    if (t == NULL) {
        b->failed = 1;
    }
    return t;
}

static glm_tensor *
glm_bind_linear(glm_binder *b, int64_t rows, int64_t cols, int flags,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The [rows, cols] weight of the Linear module named by fmt (no ".weight"):
 * float, or FP8 with its scale attached (quant.h). */
static glm_tensor *
glm_bind_linear(glm_binder *b, int64_t rows, int64_t cols, int flags,
    const char *fmt, ...)
{
    char module[512];
    glm_tensor *t;
    va_list ap;

    if (b->failed) {
        return NULL;
    }
    va_start(ap, fmt);
    vsnprintf(module, sizeof(module), fmt, ap);
    va_end(ap);
    t = glm_quant_bind_linear(b->ck, b->quant, module, rows, cols, flags, b->err);
    if (t == NULL) {
        b->failed = 1;
    }
    return t;
}

/* This rank's rows [lo, hi) of t (shard.h): t itself when that is all of it. */
static glm_tensor *
glm_rows(glm_model *m, glm_binder *b, glm_tensor *t, int64_t lo, int64_t hi)
{
    glm_tensor *v;

    if (t == NULL || b->failed || (lo == 0 && hi == t->shape[0])) {
        return t;
    }
    v = glm_shard_rows(&m->shards, t, lo, hi - lo);
    if (v == NULL) {
        b->failed = 1;
        glm_errf(b->err, "out of memory");
    }
    return v;
}

/* This rank's columns [lo, hi) of t: a copy of just those columns. */
static glm_tensor *
glm_cols(glm_model *m, glm_binder *b, glm_tensor *t, int64_t lo, int64_t hi)
{
    glm_tensor *v;

    if (t == NULL || b->failed || (lo == 0 && hi == t->shape[1])) {
        return t;
    }
    v = glm_shard_cols(&m->shards, t, lo, hi - lo);
    if (v == NULL) {
        b->failed = 1;
        glm_errf(b->err, "out of memory: a %" PRId64 "-column shard of %s", hi - lo, t->name);
    }
    return v;
}

/* An MLP split by the intermediate dimension I: gate and up by rows, down
 * by columns (the all-reduce after the block sums the ranks' parts). */
static void
glm_shard_mlp(glm_model *m, glm_binder *b, int64_t I, glm_tensor **gate, glm_tensor **up,
    glm_tensor **down)
{
    int64_t lo, hi;

    glm_split(I, m->shard.rank, m->shard.ranks, &lo, &hi);
    *gate = glm_rows(m, b, *gate, lo, hi);
    *up = glm_rows(m, b, *up, lo, hi);
    *down = glm_cols(m, b, *down, lo, hi);
}

/*
 * The FP8 KV cache's scale of layer l for k (which 'k') or v, under each
 * name vLLM's loaders take (maybe_remap_kv_scale_name and the quantization
 * configs' cache-scale mappers): "self_attn.k_scale", vLLM's own
 * "self_attn.attn.k_scale", ModelOpt's "self_attn.k_proj.k_scale",
 * compressed-tensors' "self_attn.k_proj.output_scale", and the deprecated
 * single "self_attn.kv_scale" for both.  A scalar, finite and positive; 1.0
 * when the checkpoint has none.  Returns 1 when found, 0 when not, -1 on a
 * bad tensor.
 */
static int
glm_bind_kv_scale(glm_binder *b, int l, char which, float *out)
{
    const char *forms[] = { "self_attn.%c_scale", "self_attn.attn.%c_scale",
                            "self_attn.%c_proj.%c_scale", "self_attn.%c_proj.output_scale",
                            "self_attn.kv_scale" };
    char name[512], tail[64];
    glm_tensor *t, *found = NULL;
    size_t i;
    float v;

    for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        snprintf(tail, sizeof(tail), forms[i], which, which);
        snprintf(name, sizeof(name), "%slayers.%d.%s", b->prefix, l, tail);
        t = glm_checkpoint_find(b->ck, name);
        if (t == NULL) {
            continue;
        }
        if (found != NULL && strcmp(tail, "self_attn.kv_scale") != 0) {
            glm_errf(b->err, "%s: layer %d has two %c scales for the KV cache, '%s' and"
                     " '%s'", t->file, l, which, found->name, t->name);
            return -1;
        }
        if (found != NULL) {
            t->used = 1;                /* the specific name wins over kv_scale */
            continue;
        }
        if ((t->dtype != GLM_DTYPE_F32 && t->dtype != GLM_DTYPE_BF16
             && t->dtype != GLM_DTYPE_F16) || t->numel != 1)
        {
            glm_errf(b->err, "%s: KV cache scale '%s' must be one float, found %s with"
                     " %lld elements", t->file, t->name, glm_dtype_name(t->dtype),
                     (long long) t->numel);
            return -1;
        }
        glm_tensor_to_f32(t, 0, 1, &v);
        if (!(v > 0.0f) || !isfinite(v)) {
            glm_errf(b->err, "%s: KV cache scale '%s' is %g: it must be positive and"
                     " finite", t->file, t->name, (double) v);
            return -1;
        }
        t->used = 1;
        found = t;
        *out = v;
    }
    return found != NULL;
}

/* Scales for the FP8 attention math of other engines (queries, softmax
 * probabilities): this engine attends in fp32 and takes no such scale, so
 * they are accepted and left alone. */
static void
glm_skip_attn_scales(glm_binder *b, int l)
{
    const char *forms[] = { "self_attn.q_scale", "self_attn.attn.q_scale",
                            "self_attn.q_proj.output_scale", "self_attn.prob_output_scale",
                            "self_attn.attn.prob_scale", "self_attn.prob_scale" };
    char name[512];
    glm_tensor *t;
    size_t i;

    for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        snprintf(name, sizeof(name), "%slayers.%d.%s", b->prefix, l, forms[i]);
        t = glm_checkpoint_find(b->ck, name);
        if (t != NULL) {
            t->used = 1;
        }
    }
}

static int
glm_bind_layer(glm_model *m, glm_binder *b, int l)
{
    const glm_config *c = &m->cfg;
    glm_layer *L = &m->layers[l];
    const char *p = b->prefix;
    int64_t H = c->hidden_size, q = (int64_t) c->num_heads * c->head_dim;
    int64_t kv = (int64_t) c->num_kv_heads * c->head_dim, d = c->head_dim, lo, hi;
    int e, I;

    L->input_norm = glm_bind(b, 1, H, 0, "%slayers.%d.input_layernorm.weight", p, l);
    L->post_attn_norm = glm_bind(b, 1, H, 0, "%slayers.%d.post_attention_layernorm.weight", p, l);
    L->wq = glm_bind_linear(b, q, H, 0, "%slayers.%d.self_attn.q_proj", p, l);
    L->wk = glm_bind_linear(b, kv, H, 0, "%slayers.%d.self_attn.k_proj", p, l);
    L->wv = glm_bind_linear(b, kv, H, 0, "%slayers.%d.self_attn.v_proj", p, l);
    L->wo = glm_bind_linear(b, H, q, 0, "%slayers.%d.self_attn.o_proj", p, l);
    if (c->attention_bias) {
        L->bq = glm_bind(b, 1, q, 0, "%slayers.%d.self_attn.q_proj.bias", p, l);
        L->bk = glm_bind(b, 1, kv, 0, "%slayers.%d.self_attn.k_proj.bias", p, l);
        L->bv = glm_bind(b, 1, kv, 0, "%slayers.%d.self_attn.v_proj.bias", p, l);
    }
    if (c->use_qk_norm) {
        L->q_norm = glm_bind(b, 1, c->head_dim, 0, "%slayers.%d.self_attn.q_norm.weight", p, l);
        L->k_norm = glm_bind(b, 1, c->head_dim, 0, "%slayers.%d.self_attn.k_norm.weight", p, l);
    }
    /* this rank's heads: q by its query heads, k and v by its KV heads,
     * o_proj by the columns its query heads produce */
    L->wq = glm_rows(m, b, L->wq, m->head0 * d, (m->head0 + m->heads) * d);
    L->bq = glm_rows(m, b, L->bq, m->head0 * d, (m->head0 + m->heads) * d);
    L->wk = glm_rows(m, b, L->wk, m->kv_head0 * d, (m->kv_head0 + m->kv_heads) * d);
    L->bk = glm_rows(m, b, L->bk, m->kv_head0 * d, (m->kv_head0 + m->kv_heads) * d);
    L->wv = glm_rows(m, b, L->wv, m->kv_head0 * d, (m->kv_head0 + m->kv_heads) * d);
    L->bv = glm_rows(m, b, L->bv, m->kv_head0 * d, (m->kv_head0 + m->kv_heads) * d);
    L->wo = glm_cols(m, b, L->wo, m->head0 * d, (m->head0 + m->heads) * d);
    if (!b->failed) {
        int kf = glm_bind_kv_scale(b, l, 'k', &m->kv_k_scale[l]);
        int vf = kf < 0 ? -1 : glm_bind_kv_scale(b, l, 'v', &m->kv_v_scale[l]);

        if (kf < 0 || vf < 0) {
            b->failed = 1;
            return -1;
        }
        m->kv_scales_loaded += kf > 0 || vf > 0;
        glm_skip_attn_scales(b, l);
    }

    L->is_moe = l >= c->first_k_dense_replace;
    if (!L->is_moe) {
        I = c->intermediate_size;
        L->gate = glm_bind_linear(b, I, H, 0, "%slayers.%d.mlp.gate_proj", p, l);
        L->up = glm_bind_linear(b, I, H, 0, "%slayers.%d.mlp.up_proj", p, l);
        L->down = glm_bind_linear(b, H, I, 0, "%slayers.%d.mlp.down_proj", p, l);
        glm_shard_mlp(m, b, I, &L->gate, &L->up, &L->down);
        return b->failed ? -1 : 0;
    }

    I = c->moe_intermediate_size;
    if (c->n_shared_experts > 0) {
        int Is = I * c->n_shared_experts;
        L->gate = glm_bind_linear(b, Is, H, 0, "%slayers.%d.mlp.shared_experts.gate_proj", p, l);
        L->up = glm_bind_linear(b, Is, H, 0, "%slayers.%d.mlp.shared_experts.up_proj", p, l);
        L->down = glm_bind_linear(b, H, Is, 0, "%slayers.%d.mlp.shared_experts.down_proj", p, l);
        glm_shard_mlp(m, b, Is, &L->gate, &L->up, &L->down);
    }
    L->exp_gate = calloc((size_t) c->n_routed_experts, sizeof(glm_tensor *));
    L->exp_up = calloc((size_t) c->n_routed_experts, sizeof(glm_tensor *));
    L->exp_down = calloc((size_t) c->n_routed_experts, sizeof(glm_tensor *));
    if (L->exp_gate == NULL || L->exp_up == NULL || L->exp_down == NULL) {
        return glm_errf(b->err, "out of memory");
    }
    for (e = 0; e < c->n_routed_experts && !b->failed; e++) {
        L->exp_gate[e] = glm_bind_linear(b, I, H, GLM_LINEAR_EXPERT,
                                         "%slayers.%d.mlp.experts.%d.gate_proj", p, l, e);
        L->exp_up[e] = glm_bind_linear(b, I, H, GLM_LINEAR_EXPERT,
                                       "%slayers.%d.mlp.experts.%d.up_proj", p, l, e);
        L->exp_down[e] = glm_bind_linear(b, H, I, GLM_LINEAR_EXPERT,
                                         "%slayers.%d.mlp.experts.%d.down_proj", p, l, e);
    }
    /* routed experts: with expert parallel, whole experts [lo, hi) on this
     * rank and the others left out (the backend skips their picks; the
     * all-reduce after the block adds the other ranks' picks); else every
     * expert split by its intermediate columns like an MLP */
    if (m->shard.expert_parallel) {
        glm_split(c->n_routed_experts, m->shard.rank, m->shard.ranks, &lo, &hi);
        for (e = 0; e < c->n_routed_experts; e++) {
            if (e < lo || e >= hi) {
                L->exp_gate[e] = L->exp_up[e] = L->exp_down[e] = NULL;
            }
        }
    } else {
        for (e = 0; e < c->n_routed_experts && !b->failed; e++) {
            glm_shard_mlp(m, b, I, &L->exp_gate[e], &L->exp_up[e], &L->exp_down[e]);
        }
        glm_split(I, m->shard.rank, m->shard.ranks, &lo, &hi);
        I = (int) (hi - lo);
    }
    L->moe = (glm_moe_weights) {
        .n_experts = c->n_routed_experts, .top_k = c->num_experts_per_tok,
        .n_group = c->n_group, .topk_group = c->topk_group,
        .norm_topk_prob = c->norm_topk_prob,
        .routed_scaling_factor = c->routed_scaling_factor,
        .hidden = c->hidden_size, .inter = I,
        .router = glm_bind(b, 2, c->n_routed_experts, H, "%slayers.%d.mlp.gate.weight", p, l),
        .correction_bias = glm_bind(b, 1, c->n_routed_experts, 0,
                                    "%slayers.%d.mlp.gate.e_score_correction_bias", p, l),
        .gate = L->exp_gate, .up = L->exp_up, .down = L->exp_down,
        .shared_gate = L->gate, .shared_up = L->up, .shared_down = L->down,
    };
    return b->failed ? -1 : 0;
}

/* Layer index of "…layers.N.…" under the text prefix, or -1. */
static int
glm_layer_of(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    char *end;
    long l;

    if (strncmp(name, prefix, n) != 0 || strncmp(name + n, "layers.", 7) != 0) {
        return -1;
    }
    l = strtol(name + n + 7, &end, 10);
    return (end != name + n + 7 && *end == '.' && l >= 0 && l < 1 << 20) ? (int) l : -1;
}

/* Every tensor must be used, or be one we knowingly skip. */
static int
glm_check_unused(glm_model *m, glm_err *err)
{
    const glm_config *c = &m->cfg;
    size_t i, n = glm_checkpoint_count(m->ck);

    for (i = 0; i < n; i++) {
        glm_tensor *t = glm_checkpoint_at(m->ck, i);
        int l;

        if (t->used) {
            continue;
        }
        l = glm_layer_of(t->name, c->weight_prefix);
        if (l >= c->num_layers && l < c->num_layers + c->num_nextn_predict_layers) {
            m->skipped_mtp++;       /* multi-token-prediction head: not run yet */
            continue;
        }
        return glm_errf(err, "%s: tensor '%s' is not part of a %s with this"
                        " config.json (wrong checkpoint or config?)", t->file,
                        t->name, c->architecture);
    }
    return 0;
}

glm_model *
glm_model_load(const char *dir, glm_backend *be, glm_err *err)
{
    glm_shard alone = { 0, 1, 0 };

    return glm_model_load_shard(dir, be, &alone, NULL, NULL, err);
}

glm_model *
glm_model_load_shard(const char *dir, glm_backend *be, const glm_shard *sh,
    struct glm_comm *comm, glm_model *rank0, glm_err *err)
{
    glm_model *m;
    glm_binder b;
    glm_config *c;
    int64_t V, H, v0, v1;
    int l, j, half, h1, k1;

    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        glm_errf(err, "out of memory");
        return NULL;
    }
    m->be = be;
    m->shard = *sh;
    m->comm = comm;
    if (glm_config_load(&m->cfg, dir, err) != 0) {
        free(m);
        return NULL;
    }
    c = &m->cfg;
    m->borrows_ck = rank0 != NULL;
    m->ck = rank0 != NULL ? rank0->ck : glm_checkpoint_open(dir, err);
    if (m->ck == NULL) {
        glm_config_free(&m->cfg);
        free(m);
        return NULL;
    }
    if (glm_shard_heads(sh, c->num_heads, c->num_kv_heads, &m->head0, &h1, &m->kv_head0,
                        &k1, err) != 0) {
        goto fail;
    }
    m->heads = h1 - m->head0;
    m->kv_heads = k1 - m->kv_head0;
    V = c->vocab_size;
    H = c->hidden_size;
    b = (glm_binder) { m->ck, c->quant, c->weight_prefix, err, 0 };
    m->layers = calloc((size_t) c->num_layers, sizeof(glm_layer));
    /* the MTP layers' scales after the decoder's (glm_model_enable_mtp) */
    m->kv_k_scale = malloc((size_t) (c->num_layers + c->num_nextn_predict_layers) * sizeof(float));
    m->kv_v_scale = malloc((size_t) (c->num_layers + c->num_nextn_predict_layers) * sizeof(float));
    if (m->layers == NULL || m->kv_k_scale == NULL || m->kv_v_scale == NULL) {
        glm_errf(err, "out of memory");
        goto fail;
    }
    for (l = 0; l < c->num_layers + c->num_nextn_predict_layers; l++) {
        m->kv_k_scale[l] = m->kv_v_scale[l] = 1.0f;
    }
    m->kv_dtype = be->kv_dtype_auto;
    m->embed = glm_bind(&b, 2, V, H, "%sembed_tokens.weight", b.prefix);
    for (l = 0; l < c->num_layers && !b.failed; l++) {
        if (glm_bind_layer(m, &b, l) != 0) {
            b.failed = 1;
        }
    }
    m->final_norm = glm_bind(&b, 1, H, 0, "%snorm.weight", b.prefix);
    if (!c->tie_word_embeddings) {
        m->lm_head = glm_bind_linear(&b, V, H, 0, "lm_head");
    } else {
        m->lm_head = m->embed;
    }
    /* lm_head by vocabulary, equal slices (the last one short) so the
     * ranks' logits gather as equal blocks */
    m->vocab_slice = (V + sh->ranks - 1) / sh->ranks;
    v0 = m->vocab_slice * sh->rank < V ? m->vocab_slice * sh->rank : V;
    v1 = v0 + m->vocab_slice < V ? v0 + m->vocab_slice : V;
    m->lm_head = glm_rows(m, &b, m->lm_head, v0, v1);
    /* the vision tower runs on rank 0 (parallel/ranks.c) */
    if (!b.failed && c->arch == GLM_ARCH_VISION && sh->rank == 0) {
        m->vision = glm_vision_bind(m->ck, c, err);
        b.failed = m->vision == NULL;
    }
    if (b.failed || (sh->rank == 0 && glm_check_unused(m, err) != 0)) {
        goto fail;
    }

    half = c->rotary_dim / 2;
    m->inv_freq = calloc((size_t) half, sizeof(float));
    m->axis_of_freq = calloc((size_t) half, sizeof(int));
    if (m->inv_freq == NULL || m->axis_of_freq == NULL) {
        glm_errf(err, "out of memory");
        goto fail;
    }
    for (j = 0; j < half; j++) {
        /* fp32 as torch: 1 / base ** (arange(0, dim, 2) / dim) */
        float expo = (float) (2 * j) / (float) c->rotary_dim;
        m->inv_freq[j] = 1.0f / powf(c->rope_theta, expo);
        m->axis_of_freq[j] = 0;
        if (c->has_mrope) {
            /* sections of mrope_section[0] t, then h, then w frequencies */
            m->axis_of_freq[j] = j < c->mrope_section[0] ? 0
                                 : j < c->mrope_section[0] + c->mrope_section[1] ? 1 : 2;
        }
    }
    return m;

fail:
    glm_model_free(m);
    return NULL;
}

void
glm_model_free(glm_model *m)
{
    int l;

    if (m == NULL) {
        return;
    }
    if (m->group != NULL) {
        glm_ranks_free(m->group);       /* the other ranks first: they borrow ck */
    }
    if (m->layers != NULL) {
        for (l = 0; l < m->cfg.num_layers + (m->mtp != NULL); l++) {
            free(m->layers[l].exp_gate);
            free(m->layers[l].exp_up);
            free(m->layers[l].exp_down);
        }
    }
    free(m->layers);
    free(m->kv_k_scale);
    free(m->kv_v_scale);
    if (m->act != NULL) {
        m->be->free(m->be, m->act);
    }
    if (m->hidden != NULL) {
        m->be->free(m->be, m->hidden);
    }
    for (l = 0; l < GLM_MODEL_GRAPH_SIZES; l++) {
        if (m->graph_act[l] != NULL) {
            m->be->free(m->be, m->graph_act[l]);
        }
    }
    free(m->graph_pad);
    if (m->mtp != NULL) {
        free(m->mtp->zero_row);
    }
    free(m->mtp);
    free(m->inv_freq);
    free(m->axis_of_freq);
    glm_vision_free(m->vision);
    glm_shard_store_free(m->shards);
    if (!m->borrows_ck) {
        glm_checkpoint_close(m->ck);
    }
    glm_config_free(&m->cfg);
    free(m);
}

int
glm_model_set_kv_dtype(glm_model *m, glm_kv_cache_dtype want, glm_err *err)
{
    glm_kv_dtype d = want == GLM_KV_CACHE_BF16 ? GLM_KV_BF16
                     : want == GLM_KV_CACHE_FP8 ? GLM_KV_FP8_E4M3 : m->be->kv_dtype_auto;

    if (!(m->be->kv_dtypes & (1u << d))) {
        return glm_errf(err, "--kv-cache-dtype %s: the %s backend cannot hold a %s KV"
                        " cache yet (use --kv-cache-dtype auto, or another backend)",
                        glm_kv_cache_dtype_name(want), m->be->name, glm_kv_dtype_name(d));
    }
    if (d != GLM_KV_F32 && m->cfg.head_dim > 256) {
        /* the CPU backend widens rows of up to 256 in its attention tiles
         * (cpu_kernels_body.h); every GLM-4.5 has 128 */
        return glm_errf(err, "--kv-cache-dtype %s: head_dim %d is larger than the 256"
                        " a narrow KV cache supports", glm_kv_cache_dtype_name(want),
                        m->cfg.head_dim);
    }
    m->kv_dtype = d;
    return 0;
}

int
glm_kv_pool_init(glm_kv_pool *kv, const glm_model *m, int n_blocks, int block_size,
    glm_err *err)
{
    const glm_config *c = &m->cfg;
    size_t bytes;

    memset(kv, 0, sizeof(*kv));
    kv->n_layers = c->num_layers + (m->mtp != NULL);       /* the MTP layer's last */
    kv->n_blocks = n_blocks;
    kv->block_size = block_size;
    kv->kv_dim = m->kv_heads * c->head_dim;         /* this rank's KV heads */
    kv->dtype = m->kv_dtype;
    kv->k_scale = m->kv_k_scale;
    kv->v_scale = m->kv_v_scale;
    bytes = (size_t) kv->n_layers * n_blocks * block_size * kv->kv_dim
            * glm_kv_dtype_size(kv->dtype);
    kv->k = m->be->alloc(m->be, bytes);
    kv->v = m->be->alloc(m->be, bytes);
    if (kv->k == NULL || kv->v == NULL) {
        glm_kv_pool_free(kv, m);
        return glm_errf(err, "cannot allocate the %s KV cache: 2 x %zu bytes for %d"
                        " blocks of %d tokens (lower the KV budget)",
                        glm_kv_dtype_name(kv->dtype), bytes, n_blocks, block_size);
    }
    /* rank 0 of a group: the other ranks' pools, the same blocks */
    if (m->group != NULL && glm_ranks_kv_init(m->group, n_blocks, block_size, err) != 0) {
        glm_kv_pool_free(kv, m);
        return -1;
    }
    return 0;
}

void
glm_kv_pool_free(glm_kv_pool *kv, const glm_model *m)
{
    m->be->free(m->be, kv->k);
    m->be->free(m->be, kv->v);
    kv->k = kv->v = NULL;
    if (m->group != NULL) {
        glm_ranks_kv_free(m->group);
    }
}

size_t
glm_kv_pool_bytes(const glm_kv_pool *kv)
{
    return 2 * (size_t) kv->n_layers * kv->n_blocks * kv->block_size * kv->kv_dim
           * glm_kv_dtype_size(kv->dtype);
}

void
glm_kv_pool_describe(const glm_kv_pool *kv, const glm_model *m, char *buf, size_t size)
{
    char scales[96] = "";

    if (kv->dtype == GLM_KV_FP8_E4M3) {
        if (m->kv_scales_loaded > 0) {
            snprintf(scales, sizeof(scales), ", per-layer scales from the checkpoint"
                     " (%d of %d layers)", m->kv_scales_loaded, kv->n_layers);
        } else {
            snprintf(scales, sizeof(scales), ", scales 1.0 (none in the checkpoint)");
        }
    }
    snprintf(buf, size, "KV cache %s%s: %zu bytes (%.3f GiB), %d blocks of %d tokens,"
             " %zu bytes per token", glm_kv_dtype_name(kv->dtype), scales,
             glm_kv_pool_bytes(kv), glm_kv_pool_bytes(kv) / 1073741824.0, kv->n_blocks,
             kv->block_size,
             2 * (size_t) kv->n_layers * kv->kv_dim * glm_kv_dtype_size(kv->dtype));
}

/* ---- the forward pass ---------------------------------------------------- */

/* activations: be->act_dtype elements, never read here */
typedef struct {
    void *h, *q, *k, *v, *attn, *gate, *up, *mlp;
} glm_scratch;

/* h [T, H] -> out [T, H]: partial (M-)RoPE attention over the paged cache */
static void
glm_attention_block(glm_model *m, const glm_layer *L, int l, glm_kv_pool *kv,
    const glm_batch *b, glm_scratch *s, void *out)
{
    const glm_config *c = &m->cfg;
    glm_backend *be = m->be;
    int T = b->n_tokens;

    /* q [T, heads*d], k and v [T, kv_heads*d] */
    be->matmul_qkv(be, s->q, s->k, s->v, s->h, T, L->wq, L->wk, L->wv, L->bq, L->bk, L->bv);
    /* GLM-4.5: per-head RMSNorm on q and k before RoPE; then partial
     * M-RoPE on q and k; then k and v into the cache: one op */
    be->attn_prep(be, s->q, s->k, s->v, m->heads, m->kv_heads, c->head_dim,
                  c->use_qk_norm ? L->q_norm : NULL, c->use_qk_norm ? L->k_norm : NULL,
                  c->rms_norm_eps, c->rotary_dim, b->pos3, m->axis_of_freq, m->inv_freq,
                  kv, l, &b->attn);
    be->attention(be, s->attn, s->q, kv, l, &b->attn, m->heads, m->kv_heads,
                  c->head_dim, 1.0f / sqrtf((float) c->head_dim));
    be->matmul(be, out, s->attn, T, L->wo, NULL);
    if (m->comm != NULL) {
        /* o_proj by columns */
        glm_comm_all_reduce_act(m->comm, out, (size_t) T * c->hidden_size, be->act_dtype);
    }
}

/* h [T, H] -> out [T, H]: down(silu(gate(h)) * up(h)) */
static void
glm_mlp(glm_backend *be, const glm_tensor *gate, const glm_tensor *up,
    const glm_tensor *down, const void *h, int T, glm_scratch *s, void *out)
{
    be->gate_up_swiglu(be, s->gate, h, T, gate, up);  /* [T, I] */
    be->matmul(be, out, s->gate, T, down, NULL);
}

/* h [T, H] -> out [T, H]: routed experts plus the shared expert, one op
 * (L->moe carries the shared expert, so a backend can fuse it with the
 * routed ones) */
static void
glm_moe_block(glm_model *m, const glm_layer *L, const void *h, int T,
    glm_scratch *s, void *out)
{
    glm_backend *be = m->be;

    (void) s;
    be->moe(be, out, h, T, &L->moe);
}

/* Carves n elements of `size` bytes, 64-byte aligned, from *at (a count of
 * bytes so far); returns the byte offset. */
static size_t
glm_carve(size_t *at, size_t n, size_t size)
{
    size_t off = *at;

    *at += (n * size + 63) & ~(size_t) 63;
    return off;
}

/* element i of an activation buffer */
static void *
glm_act_at(const glm_backend *be, void *p, size_t i)
{
    return (char *) p + i * be->act_size;
}

/* The step's activations: a layer's scratch, x and y, then n_extra more
 * buffers of extra[i] bytes each (rows, logits...).  One allocation carved
 * into them, kept in m->act and grown only by a larger step: nothing is
 * allocated per step.  I is the widest MLP intermediate the step runs. */
static void
glm_step_buffers(glm_model *m, int T, size_t I, glm_scratch *s, void **x, void **y,
    const size_t *extra, void **extra_out, int n_extra)
{
    const glm_config *c = &m->cfg;
    glm_backend *be = m->be;
    size_t H = (size_t) c->hidden_size, q = (size_t) c->num_heads * c->head_dim;
    size_t kvd = (size_t) c->num_kv_heads * c->head_dim, as = be->act_size, at = 0, o[10], eo[4];
    char *base;
    int i;

    o[0] = glm_carve(&at, (size_t) T * H, as);          /* x */
    o[1] = glm_carve(&at, (size_t) T * H, as);          /* y */
    o[2] = glm_carve(&at, (size_t) T * H, as);          /* h */
    o[3] = glm_carve(&at, T * q, as);                   /* q */
    o[4] = glm_carve(&at, T * q, as);                   /* attn */
    o[5] = glm_carve(&at, T * kvd, as);                 /* k */
    o[6] = glm_carve(&at, T * kvd, as);                 /* v */
    o[7] = glm_carve(&at, (size_t) T * I, as);          /* gate */
    o[8] = glm_carve(&at, (size_t) T * I, as);          /* up */
    o[9] = glm_carve(&at, (size_t) T * H, as);          /* mlp */
    for (i = 0; i < n_extra; i++) {
        eo[i] = glm_carve(&at, extra[i], 1);
    }
    if (at > m->act_bytes) {
        be->free(be, m->act);
        m->act = be->alloc(be, at);
        m->act_bytes = m->act != NULL ? at : 0;
        if (m->act == NULL) {
            fprintf(stderr, "glm-engine: out of memory for a %d-token step\n", T);
            abort();
        }
    }
    base = m->act;
    *x = base + o[0];
    *y = base + o[1];
    s->h = base + o[2];
    s->q = base + o[3];
    s->attn = base + o[4];
    s->k = base + o[5];
    s->v = base + o[6];
    s->gate = base + o[7];
    s->up = base + o[8];
    s->mlp = base + o[9];
    for (i = 0; i < n_extra; i++) {
        extra_out[i] = base + eo[i];
    }
}

void
glm_model_forward(glm_model *m, glm_kv_pool *kv, const glm_batch *b, float *logits)
{
    if (m->group != NULL) {
        glm_ranks_forward(m->group, kv, b, logits);
        return;
    }
    glm_model_forward_rank(m, kv, b, logits);
}

/* Full rows of logits from the gathered slices: rank r's block of
 * n_rows * S floats holds its [n_rows, w_r] matmul output, w_r its slice's
 * width (S, the last one shorter), for vocabulary [r * S, r * S + w_r).
 * Backend memory on both sides (the ranks run the CPU backend, whose
 * copies are memcpy). */
static void
glm_logits_unslice(glm_model *m, const float *gathered, int n_rows, float *logits)
{
    glm_backend *be = m->be;
    int64_t V = m->cfg.vocab_size, S = m->vocab_slice, v0, w;
    int r, i;

    for (r = 0; r < m->shard.ranks; r++) {
        v0 = S * r < V ? S * r : V;
        w = v0 + S < V ? S : V - v0;
        for (i = 0; i < n_rows && w > 0; i++) {
            be->upload(be, logits + (size_t) i * V + v0,
                       gathered + (size_t) r * n_rows * S + (size_t) i * w,
                       (size_t) w * sizeof(float));
        }
    }
}

/* The embedding and the decoder layers of a step: x [T, H] ends as the
 * last layer's output (before the final norm). */
static void
glm_decoder(glm_model *m, glm_kv_pool *kv, const glm_batch *b, glm_scratch *s, void *x,
    void *y)
{
    const glm_config *c = &m->cfg;
    glm_backend *be = m->be;
    int T = b->n_tokens, H = c->hidden_size, l, i;

    be->embed(be, x, b->ids, T, m->embed);                     /* [T, H] */
    if (b->embed_rows != NULL) {
        /* vision features take the place of their placeholder tokens */
        for (i = 0; i < T; i++) {
            if (b->embed_rows[i] != NULL) {
                be->upload_act(be, glm_act_at(be, x, (size_t) i * H), b->embed_rows[i],
                               (size_t) H);
            }
        }
    }
    for (l = 0; l < c->num_layers; l++) {
        const glm_layer *L = &m->layers[l];

        if (l == 0) {
            be->rmsnorm(be, s->h, x, L->input_norm, T, H, c->rms_norm_eps);
        } else {
            /* the previous layer's MLP residual with this layer's norm */
            be->add_rmsnorm(be, s->h, x, y, L->input_norm, T, H, c->rms_norm_eps);
        }
        glm_attention_block(m, L, l, kv, b, s, y);
        /* residual, then the MLP's norm */
        be->add_rmsnorm(be, s->h, x, y, L->post_attn_norm, T, H, c->rms_norm_eps);
        if (L->is_moe) {
            glm_moe_block(m, L, s->h, T, s, y);
        } else {
            glm_mlp(be, L->gate, L->up, L->down, s->h, T, s, y);
        }
        if (m->comm != NULL) {
            /* down by columns, in the backend's activation type */
            glm_comm_all_reduce_act(m->comm, y, (size_t) T * H, be->act_dtype);
        }
        if (l == c->num_layers - 1) {
            be->add(be, x, y, (size_t) T * H);                  /* residual */
        }
    }
}

/* ---- decode graphs --------------------------------------------------------
 *
 * A decode step (each token the one new token of its sequence, no vision
 * rows, one rank) may have its embedding and layers replayed from a graph
 * the backend captured at a fixed number of rows (backend.h, graph_rows /
 * graph_begin / graph_end).  The model's part:
 * - it pads the batch to the graph's rows with copies of row 0 (same token,
 *   position and sequence): a padded row computes exactly what row 0
 *   computes and writes the same K and V bytes to row 0's cache slot, so it
 *   changes nothing, and nobody asks for its logits;
 * - it runs glm_decoder only when graph_begin/graph_end ask (a new size:
 *   once eagerly, once under capture; a replay: not at all), so no host
 *   work of the layers is skipped by a replay except the ops' own;
 * - each size has its own activation buffer (m->graph_act), allocated on
 *   first use and never moved, since a graph holds its addresses;
 * - everything after the last layer (final norm, logits) runs eagerly on
 *   the first T rows.
 */

/* the graph rows for this step, 0: eager */
static int
glm_graph_rows(glm_model *m, const glm_batch *b)
{
    glm_backend *be = m->be;
    int i;

    if (be->graph_rows == NULL || m->comm != NULL || b->n_tokens < 1
        || b->attn.n_tokens != b->n_tokens)
    {
        return 0;
    }
    for (i = 0; i < b->n_tokens; i++) {
        if ((i > 0 && b->attn.seq[i] == b->attn.seq[i - 1])     /* a prefill chunk */
            || (b->embed_rows != NULL && b->embed_rows[i] != NULL))   /* vision rows */
        {
            return 0;
        }
    }
    return be->graph_rows(be, b->n_tokens);
}

/* The step through a graph of G rows: 0 and x, y, s and ex set up on the
 * graph's buffers with the layers' output in x; -1: no graph (run eagerly). */
static int
glm_decode_graph(glm_model *m, glm_kv_pool *kv, const glm_batch *b, int G, size_t I,
    glm_scratch *s, void **x, void **y, void **ex)
{
    const glm_config *c = &m->cfg;
    glm_backend *be = m->be;
    size_t H = (size_t) c->hidden_size, as = be->act_size, need = (size_t) G * 6;
    size_t S = (size_t) m->vocab_slice;
    size_t extra[3] = { (size_t) G * H * as, (size_t) G * S * sizeof(float), 0 };
    int T = b->n_tokens, k = 0, i, rc;
    void *keep = m->act;
    size_t keep_bytes = m->act_bytes;
    int32_t *ids, *pos3, *seq, *kv_pos;
    glm_graph_step st;
    glm_batch pb;

    while ((1 << k) < G) {
        k++;
    }
    if (k >= GLM_MODEL_GRAPH_SIZES || G < T) {
        return -1;
    }
    if (need > m->graph_pad_cap) {
        int32_t *p = realloc(m->graph_pad, need * sizeof(int32_t));
        if (p == NULL) {
            return -1;
        }
        m->graph_pad = p;
        m->graph_pad_cap = need;
    }
    /* this size's activations (glm_step_buffers carves m->act) */
    m->act = m->graph_act[k];
    m->act_bytes = m->graph_act_bytes[k];
    glm_step_buffers(m, G, I, s, x, y, extra, ex, 3);
    m->graph_act[k] = m->act;
    m->graph_act_bytes[k] = m->act_bytes;
    m->act = keep;
    m->act_bytes = keep_bytes;

    ids = m->graph_pad;
    pos3 = ids + G;
    seq = pos3 + 3 * (size_t) G;
    kv_pos = seq + G;
    for (i = 0; i < G; i++) {
        int r = i < T ? i : 0;
        ids[i] = b->ids[r];
        memcpy(pos3 + 3 * (size_t) i, b->pos3 + 3 * (size_t) r, 3 * sizeof(int32_t));
        seq[i] = b->attn.seq[r];
        kv_pos[i] = b->attn.kv_pos[r];
    }
    pb = *b;
    pb.n_tokens = G;
    pb.ids = ids;
    pb.pos3 = pos3;
    pb.attn.n_tokens = G;
    pb.attn.seq = seq;
    pb.attn.kv_pos = kv_pos;
    st.rows = G;
    st.ids = ids;
    st.pos3 = pos3;
    st.attn = &pb.attn;
    st.kv = kv;
    st.act = m->graph_act[k];

    rc = be->graph_begin(be, &st);
    if (rc < 0) {
        return -1;
    }
    while (rc > 0) {
        glm_decoder(m, kv, &pb, s, *x, *y);
        rc = be->graph_end(be);
    }
    return 0;
}

void
glm_model_forward_rank(glm_model *m, glm_kv_pool *kv, const glm_batch *b, float *logits)
{
    const glm_config *c = &m->cfg;
    glm_backend *be = m->be;
    int T = b->n_tokens, H = c->hidden_size, G;
    int I = c->intermediate_size > c->moe_intermediate_size * c->n_shared_experts
            ? c->intermediate_size : c->moe_intermediate_size * c->n_shared_experts;
    size_t nl = (size_t) (b->n_logits ? b->n_logits : 1), as = be->act_size;
    size_t S = (size_t) m->vocab_slice, ranks = (size_t) m->shard.ranks;
    size_t extra[4] = {
        nl * H * as,                                    /* rows */
        nl * S * sizeof(float),                         /* out: this rank's fp32 logits */
        ranks > 1 ? ranks * nl * S * sizeof(float) : 0, /* gathered slices */
        ranks > 1 && m->shard.rank == 0
        ? nl * (size_t) c->vocab_size * sizeof(float) : 0,  /* full: rank 0's rows */
    };
    void *ex[4] = { NULL, NULL, NULL, NULL };
    glm_scratch s;
    void *x, *y, *rows;
    float *out, *gathered, *full;

    /* a graph step has no ranks (glm_graph_rows), so no gathered or full */
    G = glm_graph_rows(m, b);
    if (G == 0 || glm_decode_graph(m, kv, b, G, (size_t) I, &s, &x, &y, ex) != 0) {
        glm_step_buffers(m, T, (size_t) I, &s, &x, &y, extra, ex, 4);
        glm_decoder(m, kv, b, &s, x, y);
    }
    rows = ex[0];
    out = ex[1];
    gathered = ex[2];
    full = ex[3];

    /* only the rows that need logits go through the norm and lm_head;
     * every row when the MTP layer wants them all */
    if (b->keep_hidden) {
        if ((size_t) T * H * as > m->hidden_bytes) {
            be->free(be, m->hidden);
            m->hidden = be->alloc(be, (size_t) T * H * as);
            m->hidden_bytes = m->hidden != NULL ? (size_t) T * H * as : 0;
            if (m->hidden == NULL) {
                fprintf(stderr, "glm-engine: out of memory for a %d-token step\n", T);
                abort();
            }
        }
        be->rmsnorm(be, m->hidden, x, m->final_norm, T, H, c->rms_norm_eps);
    }
    /* the rows that want logits, in one gather (no copy per row) */
    be->gather_rows(be, rows, b->keep_hidden ? m->hidden : x, b->logit_rows, b->n_logits, H);
    m->logits = out;
    if (b->n_logits > 0) {
        if (!b->keep_hidden) {
            be->rmsnorm(be, rows, rows, m->final_norm, b->n_logits, H, c->rms_norm_eps);
        }
        if (m->lm_head->shape[0] > 0) {
            be->matmul_f32(be, out, rows, b->n_logits, m->lm_head, NULL);  /* [n, slice] */
        }
        if (m->comm != NULL) {
            /* lm_head by vocabulary: every rank's slice to rank 0, which samples */
            glm_comm_all_gather(m->comm, out, gathered, (size_t) b->n_logits * S * sizeof(float));
            if (m->shard.rank == 0) {
                glm_logits_unslice(m, gathered, b->n_logits, full);
                m->logits = full;
            }
        }
        /* the logits stay in backend memory for be->sample; a host copy
         * only for the callers that ask (tests, the reference tools) */
        if (logits != NULL) {
            be->download(be, logits, m->logits,
                         (size_t) b->n_logits * c->vocab_size * sizeof(float));
        }
    }
}

/* ---- the MTP layer ------------------------------------------------------- */

int
glm_model_enable_mtp(glm_model *m, glm_err *err)
{
    const glm_config *c = &m->cfg;
    int L = c->num_layers;
    int64_t H = c->hidden_size, V = c->vocab_size;
    glm_binder b = { m->ck, c->quant, c->weight_prefix, err, 0 };
    glm_layer *layers;
    glm_mtp *mtp;
    char name[512];

    if (m->mtp != NULL) {
        return 0;
    }
    if (m->shard.ranks > 1 || m->group != NULL) {
        return glm_errf(err, "MTP speculative decoding does not run with tensor parallel"
                        " yet (--tensor-parallel-size 1)");
    }
    if (c->num_nextn_predict_layers < 1) {
        return glm_errf(err, "this checkpoint has no MTP layer (config.json:"
                        " num_nextn_predict_layers is 0); GLM-4.5V has none");
    }
    snprintf(name, sizeof(name), "%slayers.%d.eh_proj.weight", c->weight_prefix, L);
    if (glm_checkpoint_find(m->ck, name) == NULL) {
        return glm_errf(err, "config.json says %d MTP layer(s) but the checkpoint has no %s",
                        c->num_nextn_predict_layers, name);
    }
    layers = realloc(m->layers, (size_t) (L + 1) * sizeof(glm_layer));
    mtp = calloc(1, sizeof(*mtp));
    if (mtp != NULL) {
        mtp->zero_row = calloc((size_t) H, sizeof(float));
    }
    if (layers == NULL || mtp == NULL || mtp->zero_row == NULL) {
        if (mtp != NULL) {
            free(mtp->zero_row);
        }
        free(mtp);
        if (layers != NULL) {
            m->layers = layers;
        }
        return glm_errf(err, "out of memory");
    }
    m->layers = layers;
    memset(&m->layers[L], 0, sizeof(glm_layer));
    m->mtp = mtp;                       /* from here, glm_model_free frees layer L */
    mtp->block = &m->layers[L];
    if (glm_bind_layer(m, &b, L) != 0) {
        goto fail;
    }
    mtp->enorm = glm_bind(&b, 1, H, 0, "%slayers.%d.enorm.weight", b.prefix, L);
    mtp->hnorm = glm_bind(&b, 1, H, 0, "%slayers.%d.hnorm.weight", b.prefix, L);
    mtp->eh_proj = glm_bind_linear(&b, H, 2 * H, 0, "%slayers.%d.eh_proj", b.prefix, L);
    mtp->head_norm = glm_bind(&b, 1, H, 0, "%slayers.%d.shared_head.norm.weight", b.prefix, L);
    /* the release's copies of the embedding and lm_head where it stores
     * them (as vLLM loads them), else the model's own */
    snprintf(name, sizeof(name), "%slayers.%d.shared_head.head.weight", b.prefix, L);
    mtp->head = glm_checkpoint_find(m->ck, name) != NULL
                ? glm_bind_linear(&b, V, H, 0, "%slayers.%d.shared_head.head", b.prefix, L)
                : m->lm_head;
    snprintf(name, sizeof(name), "%slayers.%d.embed_tokens.weight", b.prefix, L);
    mtp->embed = glm_checkpoint_find(m->ck, name) != NULL
                 ? glm_bind(&b, 2, V, H, "%slayers.%d.embed_tokens.weight", b.prefix, L)
                 : m->embed;
    if (b.failed) {
        goto fail;
    }
    return 0;
fail:
    glm_err_prefix(err, "MTP layer %d", L);
    return -1;
}

void
glm_model_mtp_forward(glm_model *m, glm_kv_pool *kv, const glm_batch *b,
    const int32_t *hidden_rows, float *logits)
{
    const glm_config *c = &m->cfg;
    const glm_mtp *mtp = m->mtp;
    const glm_layer *L = mtp->block;
    glm_backend *be = m->be;
    int T = b->n_tokens, H = c->hidden_size, V = c->vocab_size, i;
    size_t I = (size_t) c->moe_intermediate_size * (c->n_shared_experts > 0
                                                    ? c->n_shared_experts : 1);
    size_t nl = (size_t) (b->n_logits ? b->n_logits : 1), as = be->act_size;
    size_t extra[4] = {
        (size_t) T * H * as,                            /* e: the tokens' embeddings */
        (size_t) T * 2 * H * as,                        /* cat: [enorm(e) ; hnorm(h)] */
        nl * H * as,                                    /* rows */
        nl * (size_t) V * sizeof(float),                /* out: fp32 logits */
    };
    void *ex[4];
    glm_scratch s;
    void *x, *y, *e, *cat, *rows;
    float *out;

    if (!L->is_moe && (size_t) c->intermediate_size > I) {
        I = (size_t) c->intermediate_size;
    }
    glm_step_buffers(m, T, I, &s, &x, &y, extra, ex, 4);
    e = ex[0];
    cat = ex[1];
    rows = ex[2];
    out = ex[3];

    /* x = eh_proj([enorm(embed(t+1)) ; hnorm(h_p)]); the embedding is 0 at
     * position 0 (vLLM's MTP masks it: nothing precedes that token) */
    be->embed(be, e, b->ids, T, mtp->embed);
    be->rmsnorm(be, e, e, mtp->enorm, T, H, c->rms_norm_eps);
    for (i = 0; i < T; i++) {
        be->upload(be, glm_act_at(be, s.h, (size_t) i * H),
                   glm_act_at(be, m->hidden, (size_t) hidden_rows[i] * H), (size_t) H * as);
    }
    be->rmsnorm(be, s.h, s.h, mtp->hnorm, T, H, c->rms_norm_eps);
    for (i = 0; i < T; i++) {
        if (b->attn.kv_pos[i] == 0) {
            be->upload_act(be, glm_act_at(be, cat, (size_t) i * 2 * H), mtp->zero_row,
                           (size_t) H);
        } else {
            be->upload(be, glm_act_at(be, cat, (size_t) i * 2 * H),
                       glm_act_at(be, e, (size_t) i * H), (size_t) H * as);
        }
        be->upload(be, glm_act_at(be, cat, (size_t) i * 2 * H + H),
                   glm_act_at(be, s.h, (size_t) i * H), (size_t) H * as);
    }
    be->matmul(be, x, cat, T, mtp->eh_proj, NULL);             /* [T, H] */

    /* the decoder layer, on the MTP layer's own KV (layer num_layers) */
    be->rmsnorm(be, s.h, x, L->input_norm, T, H, c->rms_norm_eps);
    glm_attention_block(m, L, c->num_layers, kv, b, &s, y);
    be->add_rmsnorm(be, s.h, x, y, L->post_attn_norm, T, H, c->rms_norm_eps);
    if (L->is_moe) {
        glm_moe_block(m, L, s.h, T, &s, y);
    } else {
        glm_mlp(be, L->gate, L->up, L->down, s.h, T, &s, y);
    }
    be->add(be, x, y, (size_t) T * H);

    be->gather_rows(be, rows, x, b->logit_rows, b->n_logits, H);
    m->logits = out;
    if (b->n_logits > 0) {
        be->rmsnorm(be, rows, rows, mtp->head_norm, b->n_logits, H, c->rms_norm_eps);
        be->matmul_f32(be, out, rows, b->n_logits, mtp->head, NULL);
        if (logits != NULL) {
            be->download(be, logits, out, (size_t) b->n_logits * V * sizeof(float));
        }
    }
}
