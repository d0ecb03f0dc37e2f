/*
 * test_plan.c: the tensor manifest reader and the memory plan's rules.
 *
 * 1. A manifest with ranges expands to exactly the tensors it names, with
 *    their shapes and bytes; every malformed line is a one-line error that
 *    names the file and the line; thousands of randomly damaged manifests
 *    either parse or fail with a message (under ASan: never a bad read).
 * 2. Sharding, per plan.h, on a model built here (4 heads, 2 KV heads of 8,
 *    hidden 16): at tp 2 a column-parallel weight keeps half its rows, a
 *    row-parallel one half its columns and its whole per-channel scale, k/v
 *    one KV head, the vocabulary half its rows, norms and routers all; at
 *    tp 4 k/v still keep one whole KV head (replicated), and a 3-row weight
 *    keeps the largest shard, 1 row.  The MTP layer is counted apart.
 * 3. The KV pool: whole blocks of what is left, tokens = layers x 2 x KV
 *    heads per rank x head_dim x dtype bytes; fits iff one max-model-len
 *    sequence does; the advice names a tensor-parallel size that fits.
 */
#include <stdio.h>
#include <stdlib.h>

#include "model/plan.h"
#include "model/sampling.h"

static int passed, failed;

#define CHECK(cond, ...) do {                                   \
    if (cond) { passed++; } else {                              \
        failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__);   \
        printf(__VA_ARGS__); printf("\n"); }                    \
} while (0)

static const glm_tensor_info *
find(const glm_tensor_list *l, const char *name)
{
    size_t i;

    for (i = 0; i < l->n; i++) {
        if (strcmp(l->t[i].name, name) == 0) {
            return &l->t[i];
        }
    }
    return NULL;
}

static const char *good =
    "# a comment\n"
    "\n"
    "model.layers.{0..2}.mlp.experts.{0..3}.up_proj.weight F8_E4M3 [8,16]\n"
    "  model.layers.{0..2}.mlp.experts.{0..3}.up_proj.weight_scale BF16 [ 8 , 1 ]  \n"
    "model.norm.weight BF16 [16]\n"
    "scalar F32 []\n";

static void
test_manifest(void)
{
    glm_tensor_list l;
    const glm_tensor_info *t;
    glm_err err;
    size_t i;
    int rc;

    rc = glm_tensor_list_parse_manifest(&l, good, "m.txt", &err);
    CHECK(rc == 0, "a good manifest: %s", rc ? err.msg : "");
    CHECK(l.n == 3 * 4 * 2 + 2, "%zu tensors, want 26", l.n);
    t = find(&l, "model.layers.2.mlp.experts.3.up_proj.weight");
    CHECK(t && t->dtype == GLM_DTYPE_F8_E4M3 && t->ndim == 2 && t->shape[0] == 8
          && t->shape[1] == 16 && t->nbytes == 128, "the last expanded weight");
    t = find(&l, "model.layers.0.mlp.experts.0.up_proj.weight_scale");
    CHECK(t && t->dtype == GLM_DTYPE_BF16 && t->nbytes == 16, "a scale, spaces around");
    t = find(&l, "scalar");
    CHECK(t && t->ndim == 0 && t->numel == 1 && t->nbytes == 4, "a scalar");
    for (i = 1; i < l.n; i++) {
        CHECK(strcmp(l.t[i - 1].name, l.t[i].name) < 0, "sorted, no duplicates");
    }
    glm_tensor_list_free(&l);
}

static void
test_manifest_errors(void)
{
    static const struct { const char *text, *want; } bad[] = {
        { "a BF16\n", "m.txt:1: expected NAME DTYPE SHAPE" },
        { "# c\na BF32 [1]\n", "m.txt:2: unknown dtype 'BF32'" },
        { "a BF16 1,2\n", "m.txt:1: shape must be [d0,d1,...]" },
        { "a BF16 [1,2\n", "m.txt:1: shape must be [d0,d1,...]" },
        { "a BF16 [1,,2]\n", "m.txt:1: shape must be" },
        { "a BF16 [-1]\n", "of sizes >= 0" },
        { "a BF16 [1,2,3,4,5,6,7]\n", "more than 6 dimensions" },
        { "a BF16 [1] x\n", "unexpected 'x' after the shape" },
        { "a.{2..1} BF16 [1]\n", "a range in a name is {a..b}" },
        { "a.{1..} BF16 [1]\n", "a range in a name is {a..b}" },
        { "a.{1..2 BF16 [1]\n", "a range in a name is {a..b}" },
        { "a.{0..99999999} BF16 [1]\n", "a range of more than" },
        { "a.{0..4000}.{0..4000} BF16 [1]\n", "more than 4194304 tensors" },
        { "a BF16 [1]\nb BF16 [1]\na F32 [2]\n", "tensor 'a' is listed twice" },
        { "# nothing\n", "m.txt: no tensors" },
    };
    glm_tensor_list l;
    glm_err err;
    size_t i;
    int rc;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err.msg[0] = '\0';
        rc = glm_tensor_list_parse_manifest(&l, bad[i].text, "m.txt", &err);
        CHECK(rc == -1 && strstr(err.msg, bad[i].want) != NULL,
              "bad manifest %zu: '%s', want '%s'", i, err.msg, bad[i].want);
        glm_tensor_list_free(&l);
    }
}

/* Random bytes changed, lines cut short: parse or fail, never crash. */
static void
test_manifest_damage(void)
{
    static const char alphabet[] = "{}[].,0123456789 \nab#-";
    size_t len = strlen(good), i;
    glm_rng rng;
    char *buf = malloc(len + 1);
    int round, ok = 0, errors = 0;

    glm_rng_seed(&rng, 11);
    for (round = 0; round < 4000; round++) {
        glm_tensor_list l;
        glm_err err;
        int n = 1 + (int) (glm_rng_next(&rng) % 4);

        memcpy(buf, good, len + 1);
        while (n-- > 0) {
            i = glm_rng_next(&rng) % len;
            buf[i] = alphabet[glm_rng_next(&rng) % (sizeof(alphabet) - 1)];
        }
        if (glm_rng_next(&rng) % 4 == 0) {
            buf[glm_rng_next(&rng) % len] = '\0';
        }
        err.msg[0] = '\0';
        if (glm_tensor_list_parse_manifest(&l, buf, "m.txt", &err) == 0) {
            ok++;
        } else if (err.msg[0] != '\0') {
            errors++;
        }
        glm_tensor_list_free(&l);
    }
    free(buf);
    CHECK(ok + errors == 4000 && ok > 0 && errors > 0,
          "damaged manifests: %d parsed, %d errors, of 4000", ok, errors);
}

/* 2 layers + 1 MTP layer; layer 0 dense, layer 1 MoE with 2 experts */
static const char *model_manifest =
    "model.embed_tokens.weight BF16 [64,16]\n"
    "lm_head.weight BF16 [64,16]\n"
    "model.norm.weight BF16 [16]\n"
    "model.layers.{0..2}.input_layernorm.weight BF16 [16]\n"
    "model.layers.{0..2}.self_attn.q_proj.weight F8_E4M3 [32,16]\n"
    "model.layers.{0..2}.self_attn.q_proj.weight_scale BF16 [32,1]\n"
    "model.layers.{0..2}.self_attn.q_proj.bias BF16 [32]\n"
    "model.layers.{0..2}.self_attn.k_proj.weight BF16 [16,16]\n"
    "model.layers.{0..2}.self_attn.v_proj.weight BF16 [16,16]\n"
    "model.layers.{0..2}.self_attn.o_proj.weight F8_E4M3 [16,32]\n"
    "model.layers.{0..2}.self_attn.o_proj.weight_scale BF16 [16,1]\n"
    "model.layers.0.mlp.gate_proj.weight BF16 [3,16]\n"
    "model.layers.0.mlp.down_proj.weight BF16 [16,3]\n"
    "model.layers.{1..2}.mlp.gate.weight BF16 [2,16]\n"
    "model.layers.{1..2}.mlp.experts.{0..1}.up_proj.weight BF16 [8,16]\n";

static void
tiny_config(glm_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->architecture, sizeof(cfg->architecture), "test");
    snprintf(cfg->weight_prefix, sizeof(cfg->weight_prefix), "model.");
    cfg->vocab_size = 64;
    cfg->hidden_size = 16;
    cfg->num_layers = 2;
    cfg->num_heads = 4;
    cfg->num_kv_heads = 2;
    cfg->head_dim = 8;
    cfg->max_position_embeddings = 1024;
    cfg->intermediate_size = 3;
    cfg->moe_intermediate_size = 8;
    cfg->first_k_dense_replace = 1;
    cfg->n_routed_experts = 2;
    cfg->n_shared_experts = 0;
    cfg->num_experts_per_tok = 1;
}

static void
test_sharding(void)
{
    glm_tensor_list l;
    glm_config cfg;
    glm_plan_opts o;
    glm_plan p;
    glm_err err;
    /* bytes per layer, by tensor, at tp 1 / 2 / 4 (plan.h's rules):
     *   input_layernorm    32 / 32 / 32     whole
     *   q_proj.weight     512 /256 /128     rows
     *   q_proj.weight_scale 64 / 32 / 16    rows, with its weight
     *   q_proj.bias        64 / 32 / 16     rows
     *   k_proj, v_proj    512 each / 256 / 256   one of 2 KV heads; at tp 4
     *                                       the head is replicated, not split
     *   o_proj.weight     512 /256 /128     columns
     *   o_proj.weight_scale 32 / 32 / 32    whole beside a row-parallel weight
     * layer 0: gate_proj [3,16] BF16 96 / 64 / 32 (ceil(3/2) = 2 rows,
     *   ceil(3/4) = 1), down_proj [16,3] 96 / 64 / 32 (columns);
     * layer 1: router 64 / 64 / 64 whole, 2 experts' up_proj 2 x 256 / 2 x 128 / 2 x 64;
     * embed_tokens and lm_head 2048 each / 1024 / 512 (vocabulary rows), norm 32. */
    const uint64_t attn[3] = {
        32 + 512 + 64 + 64 + 512 + 512 + 32 + 512,   /* the 512 o_proj bytes are FP8 */
        32 + 256 + 32 + 32 + 256 + 256 + 32 + 256,
        32 + 128 + 16 + 16 + 256 + 256 + 32 + 128,
    };
    const uint64_t dense[3] = { 192, 128, 64 }, moe[3] = { 64 + 512, 64 + 256, 64 + 128 };
    const uint64_t glob[3] = { 4096 + 32, 2048 + 32, 1024 + 32 };
    const int tps[3] = { 1, 2, 4 };
    int i;

    tiny_config(&cfg);
    CHECK(glm_tensor_list_parse_manifest(&l, model_manifest, "model.txt", &err) == 0,
          "the model's manifest: %s", err.msg);
    for (i = 0; i < 3; i++) {
        uint64_t want = 2 * attn[i] + dense[i] + moe[i] + glob[i];

        glm_plan_opts_default(&o);
        o.tp = tps[i];
        CHECK(glm_plan_compute(&p, &cfg, &l, &o, &err) == 0, "tp %d: %s", tps[i], err.msg);
        CHECK(p.weights == want, "tp %d: weights %llu bytes, want %llu", tps[i],
              (unsigned long long) p.weights, (unsigned long long) want);
        CHECK(p.kv_heads_per_rank == (tps[i] == 1 ? 2 : 1), "tp %d: %d KV heads per rank",
              tps[i], p.kv_heads_per_rank);
        CHECK(p.n_mtp_layers == 1 && p.w_mtp == attn[i] + moe[i],
              "tp %d: the MTP layer apart, %llu bytes", tps[i], (unsigned long long) p.w_mtp);
        CHECK(p.fp8 == 1 && p.w_fp8 == 2 * (512 + 512) / (uint64_t) tps[i],
              "tp %d: FP8 bytes %llu", tps[i], (unsigned long long) p.w_fp8);
    }
    o.tp = 3;
    CHECK(glm_plan_compute(&p, &cfg, &l, &o, &err) == -1
          && strstr(err.msg, "Total number of attention heads (4) must be divisible by"
                    " tensor parallel size (3).") != NULL, "tp 3: '%s'", err.msg);
    glm_tensor_list_free(&l);
}

static void
test_kv_pool(void)
{
    glm_tensor_list l;
    glm_config cfg;
    glm_plan_opts o;
    glm_plan p;
    glm_err err;
    uint64_t fixed, per_token = 2 * 2 * 2 * 8 * 2;    /* layers, k+v, heads, dim, bf16 */

    tiny_config(&cfg);
    glm_tensor_list_parse_manifest(&l, model_manifest, "model.txt", &err);
    glm_plan_opts_default(&o);
    CHECK(glm_plan_compute(&p, &cfg, &l, &o, &err) == 0, "%s", err.msg);
    fixed = p.weights + p.scratch + p.overhead;
    CHECK(p.kv_bytes_per_token == per_token, "%llu bytes per token",
          (unsigned long long) p.kv_bytes_per_token);
    CHECK(p.kv_blocks == (int64_t) ((p.budget - fixed) / (per_token * 16))
          && p.kv_tokens == p.kv_blocks * 16 && p.kv_bytes == (uint64_t) p.kv_tokens * per_token,
          "whole blocks of what is left");
    o.kv_dtype = GLM_PLAN_KV_FP8;
    glm_plan_compute(&p, &cfg, &l, &o, &err);
    CHECK(p.kv_bytes_per_token == per_token / 2 && p.fits, "fp8: half the bytes per token");

    /* exactly one 1024-token sequence, then one byte less */
    glm_plan_opts_default(&o);
    o.gpu_bytes = 1ull << 30;
    o.utilization = 1.0;
    glm_plan_compute(&p, &cfg, &l, &o, &err);
    fixed = p.weights + p.scratch + p.overhead;
    o.gpu_bytes = fixed + 1024 * per_token;
    glm_plan_compute(&p, &cfg, &l, &o, &err);
    CHECK(p.fits && p.kv_tokens == 1024, "1024 tokens fit: %lld", (long long) p.kv_tokens);
    o.gpu_bytes--;
    glm_plan_compute(&p, &cfg, &l, &o, &err);
    CHECK(!p.fits && p.kv_tokens == 1008 && strstr(p.advice, "lower --max-model-len to 1008")
          && strstr(p.advice, "--kv-cache-dtype fp8"), "one byte short: '%s'", p.advice);

    /* nothing left: the advice is more GPUs, and no tp fits when the
     * weights are small and NCCL's overhead is what is too much */
    o.gpu_bytes = fixed - 1;
    glm_plan_compute(&p, &cfg, &l, &o, &err);
    CHECK(!p.fits && p.kv_tokens == 0 && strstr(p.advice, "leave nothing for the KV cache")
          && strstr(p.advice, "no --tensor-parallel-size up to 64 fits"), "'%s'", p.advice);
    glm_tensor_list_free(&l);
}

/* a 2 GiB shared expert: 2.5 GiB is too little for one GPU, enough for two
 * (1 GiB of it each, plus NCCL's 0.5 GiB) */
static void
test_advice_tp(void)
{
    glm_tensor_list l;
    glm_config cfg;
    glm_plan_opts o;
    glm_plan p;
    glm_err err;
    char *text = malloc(strlen(model_manifest) + 128);

    sprintf(text, "%smodel.layers.1.mlp.shared_experts.up_proj.weight BF16 [8,134217728]\n",
            model_manifest);
    tiny_config(&cfg);
    CHECK(glm_tensor_list_parse_manifest(&l, text, "big.txt", &err) == 0, "%s", err.msg);
    glm_plan_opts_default(&o);
    o.gpu_bytes = (uint64_t) (2.5 * GLM_GIB);
    o.utilization = 1.0;
    glm_plan_compute(&p, &cfg, &l, &o, &err);
    CHECK(!p.fits && strstr(p.advice, "raise --tensor-parallel-size to 2 (1.00 GiB of weights"
                            " per GPU)"), "'%s'", p.advice);
    glm_tensor_list_free(&l);
    free(text);
}

int
main(void)
{
    test_manifest();
    test_manifest_errors();
    test_manifest_damage();
    test_sharding();
    test_kv_pool();
    test_advice_tp();
    printf("plan: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
