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
    if (m->layers == NULL) {
        glm_errf(err, "out of memory");
        goto fail;
    }
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
glm_kv_pool_init(glm_kv_pool *kv, const glm_model *m, int n_blocks, int block_size,
    glm_err *err)
{
    const glm_config *c = &m->cfg;
    size_t bytes;

    kv->n_layers = c->num_layers;
    kv->n_blocks = n_blocks;
    kv->block_size = block_size;
    kv->kv_dim = c->num_kv_heads * c->head_dim;
    kv->dtype = GLM_KV_F32;
    kv->k_scale = kv->v_scale = NULL;
    bytes = (size_t) kv->n_layers * n_blocks * block_size * kv->kv_dim * sizeof(float);
    kv->k = m->be->alloc(m->be, bytes);
    kv->v = m->be->alloc(m->be, bytes);
    if (kv->k == NULL || kv->v == NULL) {
        glm_kv_pool_free(kv, m);
        return glm_errf(err, "cannot allocate the KV cache: 2 x %zu bytes for %d"
                        " blocks of %d tokens (lower the KV budget)", bytes,
                        n_blocks, block_size);
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
    const glm_tensor *down, const void *h, int T, glm_scratch *s, void *out)
{
    size_t n = (size_t) T * gate->shape[0];

    be->matmul(be, s->gate, h, T, gate, NULL);
    be->matmul(be, s->up, h, T, up, NULL);
    be->swiglu(be, s->gate, s->gate, s->up, n);
    be->matmul(be, out, s->gate, T, down, NULL);
}

/* h [T, H] -> out [T, H]: routed experts plus the shared expert */
static void
glm_moe_block(glm_model *m, const glm_layer *L, const void *h, int T,
    glm_scratch *s, void *out)
{
    glm_backend *be = m->be;

    be->moe(be, out, h, T, &L->moe);
    if (L->gate != NULL) {
        glm_mlp(be, L->gate, L->up, L->down, h, T, s, s->mlp);
        be->add(be, out, s->mlp, (size_t) T * m->cfg.hidden_size);
    }
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
    size_t nl = (size_t) (b->n_logits ? b->n_logits : 1), at = 0, o[12], as = be->act_size;
    glm_scratch s;
    void *x, *y, *rows;
    float *out;

    /* one allocation carved into the step's activations, kept for the next
     * step and grown only by a larger one: nothing is allocated per step */
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
    o[10] = glm_carve(&at, nl * H, as);                 /* rows */
    o[11] = glm_carve(&at, nl * c->vocab_size, sizeof(float));  /* out: fp32 logits */
    if (at > m->act_bytes) {
        be->free(be, m->act);
        m->act = be->alloc(be, at);
        m->act_bytes = m->act != NULL ? at : 0;
        if (m->act == NULL) {
            fprintf(stderr, "glm-engine: out of memory for a %d-token step\n", T);
            abort();
        }
    }
    x = (char *) m->act + o[0];
    y = (char *) m->act + o[1];
    s.h = (char *) m->act + o[2];
    s.q = (char *) m->act + o[3];
    s.attn = (char *) m->act + o[4];
    s.k = (char *) m->act + o[5];
    s.v = (char *) m->act + o[6];
    s.gate = (char *) m->act + o[7];
    s.up = (char *) m->act + o[8];
    s.mlp = (char *) m->act + o[9];
    rows = (char *) m->act + o[10];
    out = (float *) ((char *) m->act + o[11]);

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
        be->upload(be, glm_act_at(be, rows, (size_t) i * H),
                   glm_act_at(be, x, (size_t) b->logit_rows[i] * H), (size_t) H * as);
    }
    if (b->n_logits > 0) {
        be->rmsnorm(be, rows, rows, m->final_norm, b->n_logits, H, c->rms_norm_eps);
        be->matmul_f32(be, out, rows, b->n_logits, m->lm_head, NULL);
        be->download(be, logits, out, (size_t) b->n_logits * c->vocab_size * sizeof(float));
    }
}
