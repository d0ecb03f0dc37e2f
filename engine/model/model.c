/*
 * model.c: see model.h.  Each block is one function that reads like the
 * formula in MODEL.md section 3; shapes are in the comments.
 */
#include "model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

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
    int64_t kv = (int64_t) c->num_kv_heads * c->head_dim;
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
        return b->failed ? -1 : 0;
    }

    I = c->moe_intermediate_size;
    if (c->n_shared_experts > 0) {
        int Is = I * c->n_shared_experts;
        L->gate = glm_bind_linear(b, Is, H, 0, "%slayers.%d.mlp.shared_experts.gate_proj", p, l);
        L->up = glm_bind_linear(b, Is, H, 0, "%slayers.%d.mlp.shared_experts.up_proj", p, l);
        L->down = glm_bind_linear(b, H, Is, 0, "%slayers.%d.mlp.shared_experts.down_proj", p, l);
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
    glm_model *m;
    glm_binder b;
    glm_config *c;
    int64_t V, H;
    int l, j, half;

    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        glm_errf(err, "out of memory");
        return NULL;
    }
    m->be = be;
    if (glm_config_load(&m->cfg, dir, err) != 0) {
        free(m);
        return NULL;
    }
    c = &m->cfg;
    m->ck = glm_checkpoint_open(dir, err);
    if (m->ck == NULL) {
        glm_config_free(&m->cfg);
        free(m);
        return NULL;
    }
    V = c->vocab_size;
    H = c->hidden_size;
    b = (glm_binder) { m->ck, c->quant, c->weight_prefix, err, 0 };
    m->layers = calloc((size_t) c->num_layers, sizeof(glm_layer));
    m->kv_k_scale = malloc((size_t) c->num_layers * sizeof(float));
    m->kv_v_scale = malloc((size_t) c->num_layers * sizeof(float));
    if (m->layers == NULL || m->kv_k_scale == NULL || m->kv_v_scale == NULL) {
        glm_errf(err, "out of memory");
        goto fail;
    }
    for (l = 0; l < c->num_layers; l++) {
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
    if (!b.failed && c->arch == GLM_ARCH_VISION) {
        m->vision = glm_vision_bind(m->ck, c, err);
        b.failed = m->vision == NULL;
    }
    if (b.failed || glm_check_unused(m, err) != 0) {
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
    if (m->layers != NULL) {
        for (l = 0; l < m->cfg.num_layers; l++) {
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
    free(m->inv_freq);
    free(m->axis_of_freq);
    glm_vision_free(m->vision);
    glm_checkpoint_close(m->ck);
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
    kv->n_layers = c->num_layers;
    kv->n_blocks = n_blocks;
    kv->block_size = block_size;
    kv->kv_dim = c->num_kv_heads * c->head_dim;
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
    return 0;
}

void
glm_kv_pool_free(glm_kv_pool *kv, const glm_model *m)
{
    m->be->free(m->be, kv->k);
    m->be->free(m->be, kv->v);
    kv->k = kv->v = NULL;
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

typedef struct {
    float *h, *q, *k, *v, *attn, *gate, *up, *mlp;
} glm_scratch;

/* h [T, H] -> out [T, H]: partial (M-)RoPE attention over the paged cache */
static void
glm_attention_block(glm_model *m, const glm_layer *L, int l, glm_kv_pool *kv,
    const glm_batch *b, glm_scratch *s, float *out)
{
    const glm_config *c = &m->cfg;
    glm_backend *be = m->be;
    int T = b->n_tokens;

    be->matmul(be, s->q, s->h, T, L->wq, L->bq);       /* [T, heads*d] */
    be->matmul(be, s->k, s->h, T, L->wk, L->bk);       /* [T, kv_heads*d] */
    be->matmul(be, s->v, s->h, T, L->wv, L->bv);
    if (c->use_qk_norm) {
        /* GLM-4.5: per-head RMSNorm on q and k, before RoPE */
        be->rmsnorm(be, s->q, s->q, L->q_norm, T * c->num_heads, c->head_dim, c->rms_norm_eps);
        be->rmsnorm(be, s->k, s->k, L->k_norm, T * c->num_kv_heads, c->head_dim, c->rms_norm_eps);
    }
    be->rope(be, s->q, T, c->num_heads, c->head_dim, c->rotary_dim, b->pos3,
             m->axis_of_freq, m->inv_freq);
    be->rope(be, s->k, T, c->num_kv_heads, c->head_dim, c->rotary_dim, b->pos3,
             m->axis_of_freq, m->inv_freq);
    be->kv_store(be, kv, l, s->k, s->v, &b->attn);
    be->attention(be, s->attn, s->q, kv, l, &b->attn, c->num_heads, c->num_kv_heads,
                  c->head_dim, 1.0f / sqrtf((float) c->head_dim));
    be->matmul(be, out, s->attn, T, L->wo, NULL);
}

/* h [T, H] -> out [T, H]: down(silu(gate(h)) * up(h)) */
static void
glm_mlp(glm_backend *be, const glm_tensor *gate, const glm_tensor *up,
    const glm_tensor *down, const float *h, int T, glm_scratch *s, float *out)
{
    size_t n = (size_t) T * gate->shape[0];

    be->matmul(be, s->gate, h, T, gate, NULL);
    be->matmul(be, s->up, h, T, up, NULL);
    be->swiglu(be, s->gate, s->gate, s->up, n);
    be->matmul(be, out, s->gate, T, down, NULL);
}

/* h [T, H] -> out [T, H]: routed experts plus the shared expert */
static void
glm_moe_block(glm_model *m, const glm_layer *L, const float *h, int T,
    glm_scratch *s, float *out)
{
    glm_backend *be = m->be;

    be->moe(be, out, h, T, &L->moe);
    if (L->gate != NULL) {
        glm_mlp(be, L->gate, L->up, L->down, h, T, s, s->mlp);
        be->add(be, out, s->mlp, (size_t) T * m->cfg.hidden_size);
    }
}

/* Carves n floats, 64-byte aligned, from *at (a count of floats so far);
 * returns the offset. */
static size_t
glm_carve(size_t *at, size_t n)
{
    size_t off = *at;

    *at += (n + 15) & ~(size_t) 15;
    return off;
}

void
glm_model_forward(glm_model *m, glm_kv_pool *kv, const glm_batch *b, float *logits)
{
    const glm_config *c = &m->cfg;
    glm_backend *be = m->be;
    int T = b->n_tokens, H = c->hidden_size, l, i;
    int I = c->intermediate_size > c->moe_intermediate_size * c->n_shared_experts
            ? c->intermediate_size : c->moe_intermediate_size * c->n_shared_experts;
    size_t q = (size_t) c->num_heads * c->head_dim;
    size_t kvd = (size_t) c->num_kv_heads * c->head_dim;
    size_t nl = (size_t) (b->n_logits ? b->n_logits : 1), at = 0, o[12];
    glm_scratch s;
    float *x, *y, *rows, *out;

    /* one allocation carved into the step's activations, kept for the next
     * step and grown only by a larger one: nothing is allocated per step */
    o[0] = glm_carve(&at, (size_t) T * H);              /* x */
    o[1] = glm_carve(&at, (size_t) T * H);              /* y */
    o[2] = glm_carve(&at, (size_t) T * H);              /* h */
    o[3] = glm_carve(&at, T * q);                       /* q */
    o[4] = glm_carve(&at, T * q);                       /* attn */
    o[5] = glm_carve(&at, T * kvd);                     /* k */
    o[6] = glm_carve(&at, T * kvd);                     /* v */
    o[7] = glm_carve(&at, (size_t) T * I);              /* gate */
    o[8] = glm_carve(&at, (size_t) T * I);              /* up */
    o[9] = glm_carve(&at, (size_t) T * H);              /* mlp */
    o[10] = glm_carve(&at, nl * H);                     /* rows */
    o[11] = glm_carve(&at, nl * c->vocab_size);         /* out */
    if (at > m->act_floats) {
        be->free(be, m->act);
        m->act = be->alloc(be, at * sizeof(float));
        m->act_floats = m->act != NULL ? at : 0;
        if (m->act == NULL) {
            fprintf(stderr, "glm-engine: out of memory for a %d-token step\n", T);
            abort();
        }
    }
    x = m->act + o[0];
    y = m->act + o[1];
    s.h = m->act + o[2];
    s.q = m->act + o[3];
    s.attn = m->act + o[4];
    s.k = m->act + o[5];
    s.v = m->act + o[6];
    s.gate = m->act + o[7];
    s.up = m->act + o[8];
    s.mlp = m->act + o[9];
    rows = m->act + o[10];
    out = m->act + o[11];

    be->embed(be, x, b->ids, T, m->embed);                     /* [T, H] */
    if (b->embed_rows != NULL) {
        /* vision features take the place of their placeholder tokens */
        for (i = 0; i < T; i++) {
            if (b->embed_rows[i] != NULL) {
                be->upload(be, x + (size_t) i * H, b->embed_rows[i],
                           (size_t) H * sizeof(float));
            }
        }
    }
    for (l = 0; l < c->num_layers; l++) {
        const glm_layer *L = &m->layers[l];

        be->rmsnorm(be, s.h, x, L->input_norm, T, H, c->rms_norm_eps);
        glm_attention_block(m, L, l, kv, b, &s, y);
        be->add(be, x, y, (size_t) T * H);                      /* residual */

        be->rmsnorm(be, s.h, x, L->post_attn_norm, T, H, c->rms_norm_eps);
        if (L->is_moe) {
            glm_moe_block(m, L, s.h, T, &s, y);
        } else {
            glm_mlp(be, L->gate, L->up, L->down, s.h, T, &s, y);
        }
        be->add(be, x, y, (size_t) T * H);                      /* residual */
    }

    /* only the rows that need logits go through the norm and lm_head */
    for (i = 0; i < b->n_logits; i++) {
        /* backend memory on both sides: the backends' copies accept it
         * (memcpy on the CPU, cudaMemcpyDefault on the GPU) */
        be->upload(be, rows + (size_t) i * H, x + (size_t) b->logit_rows[i] * H,
                   (size_t) H * sizeof(float));
    }
    if (b->n_logits > 0) {
        be->rmsnorm(be, rows, rows, m->final_norm, b->n_logits, H, c->rms_norm_eps);
        be->matmul(be, out, rows, b->n_logits, m->lm_head, NULL);
        be->download(be, logits, out, (size_t) b->n_logits * c->vocab_size * sizeof(float));
    }
}
