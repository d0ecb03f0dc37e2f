/*
 * plan.c: see plan.h.  Sizes are bytes in uint64_t throughout; GiB only
 * when printed.
 *
 * Where the constants come from:
 * - GPU memory (--gpu h100|h200): the total CUDA reports, as PyTorch prints
 *   it in its out-of-memory message: "GPU 0 has a total capacity of 79.18
 *   GiB" on an H100 80GB HBM3 and "139.80 GiB" on an H200 141GB (the value
 *   varies by a few hundredths with driver and ECC settings; these are the
 *   commonest).  `serve` uses the device's own figure instead.
 * - CUDA context: 512 MiB, an estimate (a CUDA 12/13 context with lazily
 *   loaded modules on Hopper is a few hundred MiB, and our kernels' modules
 *   add to it); the CUDA backend's start-up line reports what the device
 *   really has free, which is the check on it.
 * - cuBLASLt workspace: 32 MiB, GLM_GEMM_WORKSPACE in kernels/gemm.cu
 *   (cuBLAS's advice for Hopper).
 * - NCCL, tp > 1: 512 MiB, an estimate from NCCL's documented defaults:
 *   NCCL_BUFFSIZE 4 MiB per channel and peer, for the two ring neighbours,
 *   up to 32 channels, the simple and LL128 protocols each holding buffers
 *   (4 MiB x 2 x 32 x 2).
 * - The split-KV decode workspace: 512-token partitions of fp32 partial
 *   outputs with their max and sum per head (vLLM's paged attention v2,
 *   PARTITION_SIZE 512: tmp_out [seqs, heads, partitions, head_dim] plus
 *   exp_sums and max_logits).
 */
#include "plan.h"

#include <string.h>

#define GLM_PLAN_CUDA_CONTEXT   (512ull << 20)
#define GLM_PLAN_CUBLASLT_WS    (32ull << 20)
#define GLM_PLAN_NCCL           (512ull << 20)
#define GLM_PLAN_KV_PARTITION   512
#define GLM_PLAN_ACT_BYTES      2          /* BF16 activations */
#define GLM_PLAN_FP8_GROUP      128        /* activation scales per 1x128 group */
#define GLM_PLAN_MAX_TP         64         /* the advice searches up to here */

typedef enum {
    GLM_SHARD_WHOLE = 0,        /* every rank holds all of it */
    GLM_SHARD_ROWS,             /* split by output rows (column parallel, vocab) */
    GLM_SHARD_KV,               /* k/v: by KV head, replicated past the heads */
    GLM_SHARD_COLS,             /* split by input columns (row parallel) */
} glm_shard;

static int glm_plan_layer_of(const char *name, const char *prefix);
static glm_shard glm_plan_shard_of(const char *name, const glm_config *cfg);
static uint64_t glm_plan_shard_bytes(const glm_tensor_info *t, glm_shard s,
    const glm_plan *p, const glm_config *cfg);
static int glm_plan_is_scale(const char *name);
static int glm_plan_check(const glm_config *cfg, const glm_plan_opts *o, glm_err *err);
static void glm_plan_weights(glm_plan *p, const glm_config *cfg, const glm_tensor_list *tl);
static void glm_plan_scratch(glm_plan *p, const glm_config *cfg);
static void glm_plan_advise(glm_plan *p, const glm_config *cfg, const glm_tensor_list *tl);
static uint64_t glm_plan_fp8_copy(const glm_plan *p, uint64_t rows, uint64_t n);
static uint64_t glm_ceil_div(uint64_t a, uint64_t b);
static uint64_t glm_max_u64(uint64_t a, uint64_t b);

void
glm_plan_opts_default(glm_plan_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->tp = 1;
    o->gpu_bytes = GLM_PLAN_H100_BYTES;
    o->utilization = 0.9;
    o->kv_dtype = GLM_PLAN_KV_AUTO;
    o->max_num_seqs = 64;                 /* serve's defaults (server.c) */
    o->max_num_batched_tokens = 2048;
    o->block_size = 16;
    o->vision_max_pixels = 9633792;       /* GLM-4.5V's image longest_edge */
}

const char *
glm_plan_kv_name(glm_plan_kv t)
{
    return t == GLM_PLAN_KV_FP8 ? "fp8" : t == GLM_PLAN_KV_BF16 ? "bfloat16" : "auto";
}

int
glm_plan_kv_parse(const char *s, glm_plan_kv *out)
{
    if (strcmp(s, "auto") == 0) {
        *out = GLM_PLAN_KV_AUTO;
    } else if (strcmp(s, "bfloat16") == 0 || strcmp(s, "bf16") == 0) {
        *out = GLM_PLAN_KV_BF16;
    } else if (strcmp(s, "fp8") == 0 || strcmp(s, "fp8_e4m3") == 0) {
        *out = GLM_PLAN_KV_FP8;
    } else {
        return -1;
    }
    return 0;
}

static uint64_t
glm_ceil_div(uint64_t a, uint64_t b)
{
    return (a + b - 1) / b;
}

static uint64_t
glm_max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* L for "<prefix>layers.L.", -1 otherwise */
static int
glm_plan_layer_of(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    long l = 0;
    const char *s;

    if (strncmp(name, prefix, n) != 0 || strncmp(name + n, "layers.", 7) != 0) {
        return -1;
    }
    s = name + n + 7;
    if (*s < '0' || *s > '9') {
        return -1;
    }
    while (*s >= '0' && *s <= '9' && l < 1000000) {
        l = l * 10 + (*s++ - '0');
    }
    return *s == '.' ? (int) l : -1;
}

/* How tensor parallelism splits `name` (see plan.h). */
static glm_shard
glm_plan_shard_of(const char *name, const glm_config *cfg)
{
    char embed[64];

    if (strncmp(name, "model.visual.", 13) == 0) {
        return GLM_SHARD_WHOLE;
    }
    snprintf(embed, sizeof(embed), "%sembed_tokens.", cfg->weight_prefix);
    if (strncmp(name, embed, strlen(embed)) == 0 || strncmp(name, "lm_head.", 8) == 0) {
        return GLM_SHARD_ROWS;
    }
    if (glm_plan_layer_of(name, cfg->weight_prefix) < 0) {
        return GLM_SHARD_WHOLE;
    }
    if (strstr(name, ".self_attn.q_proj.") != NULL) {
        return GLM_SHARD_ROWS;
    }
    if (strstr(name, ".self_attn.k_proj.") != NULL
        || strstr(name, ".self_attn.v_proj.") != NULL)
    {
        return GLM_SHARD_KV;
    }
    if (strstr(name, ".self_attn.o_proj.") != NULL || strstr(name, ".down_proj.") != NULL) {
        return GLM_SHARD_COLS;
    }
    if (strstr(name, ".gate_proj.") != NULL || strstr(name, ".up_proj.") != NULL) {
        return GLM_SHARD_ROWS;
    }
    return GLM_SHARD_WHOLE;   /* norms, routers, correction biases, q/k norms */
}

/* One rank's bytes of t: the split dimension takes the ceiling, so an
 * uneven split counts the largest shard.  A dimension of 1 (a per-channel
 * scale's columns, a per-tensor scale) stays whole. */
static uint64_t
glm_plan_shard_bytes(const glm_tensor_info *t, glm_shard s, const glm_plan *p,
    const glm_config *cfg)
{
    uint64_t whole = t->nbytes, dim, kept;
    int axis;

    if (s == GLM_SHARD_WHOLE || p->o.tp == 1 || t->numel == 0) {
        return whole;
    }
    axis = s == GLM_SHARD_COLS ? 1 : 0;
    if (t->ndim <= axis) {
        return whole;         /* a bias beside a row-parallel weight, a scalar */
    }
    dim = (uint64_t) t->shape[axis];
    if (s == GLM_SHARD_KV) {
        kept = glm_ceil_div(dim * (uint64_t) p->kv_heads_per_rank,
                            (uint64_t) cfg->num_kv_heads);
    } else {
        kept = glm_ceil_div(dim, (uint64_t) p->o.tp);
    }
    return whole / dim * kept;
}

static int
glm_plan_is_scale(const char *name)
{
    size_t n = strlen(name);

    return (n > 6 && strcmp(name + n - 6, "_scale") == 0)
           || (n > 10 && strcmp(name + n - 10, "_scale_inv") == 0);
}

static int
glm_plan_check(const glm_config *cfg, const glm_plan_opts *o, glm_err *err)
{
    if (o->tp < 1 || o->tp > 4096) {
        return glm_errf(err, "--tensor-parallel-size must be from 1 to 4096, not %d", o->tp);
    }
    if (cfg->num_heads % o->tp != 0) {
        /* vLLM's words */
        return glm_errf(err, "Total number of attention heads (%d) must be divisible by"
                        " tensor parallel size (%d).", cfg->num_heads, o->tp);
    }
    if (cfg->num_kv_heads % o->tp != 0 && o->tp % cfg->num_kv_heads != 0) {
        return glm_errf(err, "--tensor-parallel-size %d: the model's %d KV heads must"
                        " divide it or be divisible by it", o->tp, cfg->num_kv_heads);
    }
    if (!(o->utilization > 0.0 && o->utilization <= 1.0)) {
        return glm_errf(err, "--gpu-memory-utilization must be in (0, 1], not %g",
                        o->utilization);
    }
    if (o->gpu_bytes == 0) {
        return glm_errf(err, "the GPU's memory must be more than 0");
    }
    if (o->max_model_len < 0 || o->max_model_len > cfg->max_position_embeddings) {
        return glm_errf(err, "--max-model-len %lld exceeds the model's"
                        " max_position_embeddings %d", (long long) o->max_model_len,
                        cfg->max_position_embeddings);
    }
    if (o->max_num_seqs < 1 || o->max_num_batched_tokens < 1 || o->block_size < 1) {
        return glm_errf(err, "--max-num-seqs, --max-num-batched-tokens and --block-size"
                        " must be at least 1");
    }
    return 0;
}

static void
glm_plan_weights(glm_plan *p, const glm_config *cfg, const glm_tensor_list *tl)
{
    char embed[64];
    size_t i;
    int max_layer = -1;

    snprintf(embed, sizeof(embed), "%sembed_tokens.weight", cfg->weight_prefix);
    p->kv_elem_bytes = 2;
    for (i = 0; i < tl->n; i++) {
        const glm_tensor_info *t = &tl->t[i];
        int layer = glm_plan_layer_of(t->name, cfg->weight_prefix);
        uint64_t b = glm_plan_shard_bytes(t, glm_plan_shard_of(t->name, cfg), p, cfg);

        if (layer >= cfg->num_layers) {
            p->w_mtp += b;
            max_layer = layer > max_layer ? layer : max_layer;
            continue;
        }
        p->n_tensors++;
        if (t->dtype == GLM_DTYPE_F8_E4M3) {
            p->w_fp8 += b;
            p->fp8 = 1;
        } else if (glm_plan_is_scale(t->name)) {
            p->w_scales += b;
        } else {
            p->w_other += b;
        }
        if (strcmp(t->name, embed) == 0) {
            /* "auto" KV: the model's dtype, which its embeddings are in */
            p->kv_elem_bytes = (int) glm_dtype_size(t->dtype);
        }
    }
    p->n_mtp_layers = max_layer >= cfg->num_layers ? max_layer - cfg->num_layers + 1 : 0;
    p->weights = p->o.weights_override ? p->o.weights_override
                                       : p->w_fp8 + p->w_scales + p->w_other;
}

/* An FP8 copy of rows x n activations with one fp32 scale per 1x128 group
 * (per-token scaling needs less), when the GEMMs take FP8 inputs. */
static uint64_t
glm_plan_fp8_copy(const glm_plan *p, uint64_t rows, uint64_t n)
{
    return p->fp8 ? rows * n + rows * glm_ceil_div(n, GLM_PLAN_FP8_GROUP) * 4 : 0;
}

/*
 * The arena of one step, per rank.  T tokens of S sequences; a = 2 (BF16).
 *   residual   the residual stream and its normed copy: 2 T H a
 *   attention  qkv T (q + 2 kv) a, attention output T q a, o_proj output
 *              T H a, FP8 copy of the GEMM input, split-KV decode
 *              partials S heads ceil(len/512) (head_dim + 2) 4
 *   mlp        (dense layers) gate|up T 2I a, silu*up T I a, down T H a,
 *              FP8 copy
 *   moe        router logits T E 4, top-k ids and weights T k 8, the
 *              token/expert sort T k 8 and offsets (E + 1) 4, tokens
 *              gathered per expert T k H a, gate|up T k 2Im a, silu*up
 *              T k Im a, expert outputs T k H a, fp32 combine T H 4, the
 *              shared expert as a dense MLP of width Ish, FP8 copies
 *   logits     final rows S H a, logits S V 4 (and the rank's shard
 *              S V/tp 4 before the gather), sampling's probabilities, sort
 *              keys and indices S V 12
 *   vision     one encoder pass of P patches (the largest image):
 *              pixels P C tps ps^2 4, the block's x, normed x, qkv, attention
 *              output and SwiGLU P (6 Hv + 3 Iv) a, the merger's M = P / m^2
 *              rows (2 Ho + 3 Im') a and the embeddings it hands over M H a
 * The phases reuse the same memory: scratch = residual + the largest.
 */
static void
glm_plan_scratch(glm_plan *p, const glm_config *cfg)
{
    const uint64_t a = p->o.act_bytes > 0 ? (uint64_t) p->o.act_bytes : GLM_PLAN_ACT_BYTES;
    const uint64_t tp = (uint64_t) p->o.tp;
    uint64_t T = (uint64_t) p->o.max_num_batched_tokens;
    uint64_t S = glm_max_u64(1, (uint64_t) p->o.max_num_seqs < T ? (uint64_t) p->o.max_num_seqs : T);
    uint64_t H = (uint64_t) cfg->hidden_size, d = (uint64_t) cfg->head_dim;
    uint64_t qh = (uint64_t) cfg->num_heads / tp, q = qh * d;
    uint64_t kv = (uint64_t) p->kv_heads_per_rank * d;
    uint64_t V = (uint64_t) cfg->vocab_size;
    uint64_t parts = glm_ceil_div((uint64_t) p->o.max_model_len, GLM_PLAN_KV_PARTITION);
    uint64_t m;

    p->s_residual = 2 * T * H * a;
    p->s_attention = T * (q + 2 * kv) * a + T * q * a + T * H * a
                     + glm_plan_fp8_copy(p, T, glm_max_u64(H, q))
                     + S * qh * parts * (d + 2) * 4;
    if (cfg->first_k_dense_replace > 0) {
        uint64_t I = glm_ceil_div((uint64_t) cfg->intermediate_size, tp);
        p->s_mlp = T * 2 * I * a + T * I * a + T * H * a
                   + glm_plan_fp8_copy(p, T, glm_max_u64(H, I));
    }
    if (cfg->n_routed_experts > 0 && cfg->first_k_dense_replace < cfg->num_layers) {
        uint64_t E = (uint64_t) cfg->n_routed_experts, k = (uint64_t) cfg->num_experts_per_tok;
        uint64_t Im = glm_ceil_div((uint64_t) cfg->moe_intermediate_size, tp);
        uint64_t Ish = glm_ceil_div((uint64_t) cfg->n_shared_experts
                                    * (uint64_t) cfg->moe_intermediate_size, tp);
        p->s_moe = T * E * 4 + T * k * 8 + T * k * 8 + (E + 1) * 4
                   + T * k * H * a + T * k * 2 * Im * a + T * k * Im * a + T * k * H * a
                   + T * H * 4
                   + glm_plan_fp8_copy(p, T * k, glm_max_u64(H, Im));
        if (Ish > 0) {
            p->s_moe += T * 2 * Ish * a + T * Ish * a + T * H * a
                        + glm_plan_fp8_copy(p, T, glm_max_u64(H, Ish));
        }
    }
    p->s_logits = S * H * a + S * V * 4 + (tp > 1 ? S * glm_ceil_div(V, tp) * 4 : 0)
                  + S * V * 12;
    if (cfg->arch == GLM_ARCH_VISION && cfg->vision.depth > 0 && p->o.vision_max_pixels > 0) {
        uint64_t ps = (uint64_t) cfg->vision.patch_size;
        uint64_t tps = (uint64_t) (cfg->vision.temporal_patch_size > 0
                                   ? cfg->vision.temporal_patch_size : 1);
        uint64_t P = (uint64_t) p->o.vision_max_pixels / (tps * ps * ps);
        uint64_t Hv = (uint64_t) cfg->vision.hidden_size;
        uint64_t Iv = (uint64_t) cfg->vision.out_hidden_size;
        uint64_t Ho = (uint64_t) cfg->vision.out_hidden_size;
        uint64_t Imr = (uint64_t) cfg->vision.intermediate_size;

        m = (uint64_t) cfg->vision.spatial_merge_size;
        m = m > 0 ? m * m : 1;
        p->s_vision = P * (uint64_t) cfg->vision.in_channels * tps * ps * ps * 4
                      + P * (6 * Hv + 3 * Iv) * a
                      + glm_plan_fp8_copy(p, P, glm_max_u64(Hv, Iv))
                      + P / m * (2 * Ho + 3 * Imr) * a + P / m * H * a;
    }
    m = glm_max_u64(glm_max_u64(p->s_attention, p->s_mlp),
                    glm_max_u64(glm_max_u64(p->s_moe, p->s_logits), p->s_vision));
    p->scratch = p->s_residual + m;
}

int
glm_plan_compute(glm_plan *p, const glm_config *cfg, const glm_tensor_list *tl,
    const glm_plan_opts *o, glm_err *err)
{
    uint64_t fixed, avail;

    memset(p, 0, sizeof(*p));
    p->o = *o;
    if (p->o.max_model_len == 0) {
        p->o.max_model_len = cfg->max_position_embeddings;
    }
    if (glm_plan_check(cfg, &p->o, err) != 0) {
        return -1;
    }
    p->kv_heads_per_rank = cfg->num_kv_heads >= p->o.tp ? cfg->num_kv_heads / p->o.tp : 1;

    glm_plan_weights(p, cfg, tl);
    glm_plan_scratch(p, cfg);

    p->ov_context = GLM_PLAN_CUDA_CONTEXT;
    p->ov_cublas = GLM_PLAN_CUBLASLT_WS;
    p->ov_nccl = p->o.tp > 1 ? GLM_PLAN_NCCL : 0;
    p->overhead = p->ov_context + p->ov_cublas + p->ov_nccl;

    if (p->o.kv_dtype == GLM_PLAN_KV_FP8) {
        p->kv_elem_bytes = 1;
    } else if (p->o.kv_dtype == GLM_PLAN_KV_BF16) {
        p->kv_elem_bytes = 2;
    }
    if (p->o.kv_elem_bytes > 0) {
        p->kv_elem_bytes = p->o.kv_elem_bytes;
    }
    p->kv_bytes_per_token = (uint64_t) cfg->num_layers * 2 * (uint64_t) p->kv_heads_per_rank
                            * (uint64_t) cfg->head_dim * (uint64_t) p->kv_elem_bytes;
    p->budget = (uint64_t) ((double) p->o.gpu_bytes * p->o.utilization);
    fixed = p->weights + p->scratch + p->overhead;
    avail = p->budget > fixed ? p->budget - fixed : 0;
    p->kv_blocks = (int64_t) (avail / (p->kv_bytes_per_token * (uint64_t) p->o.block_size));
    p->kv_tokens = p->kv_blocks * p->o.block_size;
    p->kv_bytes = (uint64_t) p->kv_tokens * p->kv_bytes_per_token;
    p->fits = p->kv_tokens >= p->o.max_model_len;
    if (!p->fits && !p->o.no_advice) {
        glm_plan_advise(p, cfg, tl);
    }
    return 0;
}

/* What to change: more ranks when the weights, scratch and overhead leave
 * nothing for the KV cache; otherwise a shorter context (vLLM's advice),
 * a smaller KV dtype, or a smaller step. */
static void
glm_plan_advise(glm_plan *p, const glm_config *cfg, const glm_tensor_list *tl)
{
    uint64_t fixed = p->weights + p->scratch + p->overhead;
    char *s = p->advice;
    size_t left = sizeof(p->advice);
    int n, tp;

    if (p->kv_tokens == 0 || fixed > p->budget) {
        n = snprintf(s, left, "weights %.2f GiB + scratch %.2f GiB + overhead %.2f GiB per GPU"
                     " leave %s for the KV cache within %.2f x %.2f GiB",
                     p->weights / GLM_GIB, p->scratch / GLM_GIB, p->overhead / GLM_GIB,
                     fixed > p->budget ? "nothing" : "less than one block",
                     p->o.utilization, p->o.gpu_bytes / GLM_GIB);
        s += n;
        left -= (size_t) n;
        for (tp = p->o.tp + 1; tp <= GLM_PLAN_MAX_TP; tp++) {
            glm_plan_opts o = p->o;
            glm_plan q;
            glm_err e;

            o.tp = tp;
            o.no_advice = 1;
            if (glm_plan_compute(&q, cfg, tl, &o, &e) == 0 && q.fits) {
                snprintf(s, left, ": raise --tensor-parallel-size to %d (%.2f GiB of weights"
                         " per GPU), or use a GPU with more memory", tp, q.weights / GLM_GIB);
                return;
            }
        }
        snprintf(s, left, ": no --tensor-parallel-size up to %d fits; use GPUs with more"
                 " memory", GLM_PLAN_MAX_TP);
        return;
    }
    n = snprintf(s, left, "one --max-model-len %lld sequence needs %.2f GiB of KV cache,"
                 " larger than the %.2f GiB left: lower --max-model-len to %lld",
                 (long long) p->o.max_model_len,
                 (double) p->o.max_model_len * (double) p->kv_bytes_per_token / GLM_GIB,
                 (p->budget - fixed) / GLM_GIB, (long long) p->kv_tokens);
    s += n;
    left -= (size_t) n;
    if (p->kv_elem_bytes > 1) {
        n = snprintf(s, left, ", use --kv-cache-dtype fp8");
        s += n;
        left -= (size_t) n;
    }
    snprintf(s, left, ", raise --gpu-memory-utilization (%.2f), or lower"
             " --max-num-batched-tokens/--max-num-seqs (scratch %.2f GiB)",
             p->o.utilization, p->scratch / GLM_GIB);
}

void
glm_plan_print(FILE *f, const glm_plan *p, const glm_config *cfg, const char *model)
{
    const char *kvname = p->kv_elem_bytes == 1 ? "fp8" : p->kv_elem_bytes == 2 ? "bfloat16"
                         : "float32";

    fprintf(f, "plan: %s (%s, %d layers, %zu tensors loaded), tensor parallel %d,"
            " GPU %.2f GiB x %.2f = %.2f GiB\n", model, cfg->architecture, cfg->num_layers,
            p->n_tensors, p->o.tp, p->o.gpu_bytes / GLM_GIB, p->o.utilization,
            p->budget / GLM_GIB);
    if (p->o.weights_override) {
        fprintf(f, "  weights   %8.2f GiB  measured on the GPU (planned: %.2f GiB as stored)\n",
                p->weights / GLM_GIB, (p->w_fp8 + p->w_scales + p->w_other) / GLM_GIB);
    } else {
        fprintf(f, "  weights   %8.2f GiB  per GPU as stored: FP8 E4M3 %.2f, scales %.2f,"
                " other (BF16, F32) %.2f; %llu bytes\n", p->weights / GLM_GIB,
                p->w_fp8 / GLM_GIB, p->w_scales / GLM_GIB, p->w_other / GLM_GIB,
                (unsigned long long) p->weights);
    }
    if (p->n_mtp_layers > 0) {
        fprintf(f, "  mtp       %8.2f GiB  %d MTP layer(s) after layer %d: not loaded"
                " (no speculative decoding)\n", p->w_mtp / GLM_GIB, p->n_mtp_layers,
                cfg->num_layers - 1);
    }
    fprintf(f, "  scratch   %8.2f GiB  one step of %d tokens, %d sequences: residual %.2f,"
            " then the largest of attention %.2f, mlp %.2f, moe %.2f, logits %.2f,"
            " vision %.2f\n", p->scratch / GLM_GIB, p->o.max_num_batched_tokens,
            p->o.max_num_seqs, p->s_residual / GLM_GIB, p->s_attention / GLM_GIB,
            p->s_mlp / GLM_GIB, p->s_moe / GLM_GIB, p->s_logits / GLM_GIB,
            p->s_vision / GLM_GIB);
    fprintf(f, "  overhead  %8.2f GiB  CUDA context %.2f (estimate), cuBLASLt workspace %.2f,"
            " NCCL %.2f%s\n", p->overhead / GLM_GIB, p->ov_context / GLM_GIB,
            p->ov_cublas / GLM_GIB, p->ov_nccl / GLM_GIB, p->o.tp > 1 ? " (estimate)" : "");
    fprintf(f, "  kv cache  %8.2f GiB  %lld tokens in %lld blocks of %d; %llu bytes/token"
            " (%s: %d layers x 2 x %d KV heads x %d)\n", p->kv_bytes / GLM_GIB,
            (long long) p->kv_tokens, (long long) p->kv_blocks, p->o.block_size,
            (unsigned long long) p->kv_bytes_per_token, kvname, cfg->num_layers,
            p->kv_heads_per_rank, cfg->head_dim);
    fprintf(f, "  context   max-model-len %lld: %.2f GiB of KV for one sequence, %s\n",
            (long long) p->o.max_model_len,
            (double) p->o.max_model_len * (double) p->kv_bytes_per_token / GLM_GIB,
            p->fits ? "fits" : "does not fit");
    if (!p->fits) {
        fprintf(f, "  does not fit: %s\n", p->advice);
    }
    fprintf(f, "PLAN model=%s dtype=%s tp=%d gpu_gib=%.2f fits=%s weights_gib=%.2f"
            " kv_tokens=%lld\n", model, p->fp8 ? "fp8" : "bf16", p->o.tp,
            p->o.gpu_bytes / GLM_GIB, p->fits ? "yes" : "no", p->weights / GLM_GIB,
            (long long) p->kv_tokens);
}
