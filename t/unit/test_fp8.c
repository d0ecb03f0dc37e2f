/*
 * test_fp8.c: FP8 (compressed-tensors) checkpoints, from bits to weights.
 *
 * 1. FP8 E4M3 -> fp32 for all 256 bit patterns against torch's
 *    float8_e4m3fn.float() (t/fixtures/fp8/e4m3_to_f32.txt, written by
 *    t/reference/make_fp8_fixtures.py), fp32 bits exact, NaN included; both
 *    through glm_fp8_e4m3_to_f32 and an unscaled F8 tensor.
 * 2. Dequantization against transformers: every FP8 weight of every
 *    t/fixtures/glm45*-fp8-* fixture (the vision tower's included), loaded
 *    by the engine, must give
 *    the fp32 values transformers holds after dequantizing the same file
 *    (fp8_dequant.json: hash of the bytes, and the sum), bit for bit.
 * 3. Block scales with ragged edges and row views (the vision tower reads
 *    the fused qkv weight as three row views) against a direct formula, and
 *    conversions of ranges that start and end mid-row.
 * 4. quantization_config: ignore/targets matching as compressed-tensors'
 *    match_name (re: is re.match, anchored at the start only), and the
 *    one-line refusals of schemes the engine cannot honour.
 * 5. Binding on small checkpoints written here: scale dtypes, a scale beside
 *    a float weight, FP8 where only float is admitted, a weight that binds.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "model/model.h"
#include "model/quant.h"

static int passed, failed;

#define CHECK(cond, ...) do {                                   \
    if (cond) { passed++; } else {                              \
        failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__);   \
        printf(__VA_ARGS__); printf("\n"); }                    \
} while (0)

static uint32_t
f32_bits(float f)
{
    uint32_t u;

    memcpy(&u, &f, sizeof(u));
    return u;
}

/* ---- 1. the 256 bit patterns ---------------------------------------------- */

static void
test_e4m3_table(void)
{
    FILE *f = fopen("t/fixtures/fp8/e4m3_to_f32.txt", "r");
    char line[256];
    unsigned b, want;
    int n = 0, exact = 0, nans = 0;
    uint8_t all[256];
    float via_tensor[256];
    glm_tensor t;

    CHECK(f != NULL, "t/fixtures/fp8/e4m3_to_f32.txt: cannot open (run from the repository root)");
    if (f == NULL) {
        return;
    }
    for (b = 0; b < 256; b++) {
        all[b] = (uint8_t) b;
    }
    memset(&t, 0, sizeof(t));
    t.dtype = GLM_DTYPE_F8_E4M3;
    t.ndim = 1;
    t.shape[0] = t.numel = 256;
    t.data = all;
    t.nbytes = 256;
    glm_tensor_to_f32(&t, 0, 256, via_tensor);

    while (fgets(line, sizeof(line), f) != NULL) {
        if (line[0] == '#' || sscanf(line, "%x %x", &b, &want) != 2 || b > 255) {
            continue;
        }
        n++;
        if (f32_bits(glm_fp8_e4m3_to_f32((uint8_t) b)) == want
            && f32_bits(via_tensor[b]) == want)
        {
            exact++;
        } else {
            printf("  e4m3 0x%02x: ours 0x%08x (tensor 0x%08x), torch 0x%08x\n", b,
                   f32_bits(glm_fp8_e4m3_to_f32((uint8_t) b)), f32_bits(via_tensor[b]),
                   want);
        }
        nans += isnan(glm_fp8_e4m3_to_f32((uint8_t) b)) != 0;
    }
    fclose(f);
    printf("e4m3: %d/%d bit patterns give torch's fp32 bits (%d NaN)\n", exact, n, nans);
    CHECK(n == 256 && exact == 256 && nans == 2, "e4m3 table: %d/%d exact, %d NaN", exact, n,
          nans);
}

/* ---- 2. the fixtures against transformers -------------------------------- */

static uint64_t
fnv1a64(const float *v, int64_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    int64_t i;
    int k;

    for (i = 0; i < n; i++) {
        uint32_t u = f32_bits(v[i]);
        for (k = 0; k < 4; k++) {                 /* little-endian bytes */
            h ^= (u >> (8 * k)) & 0xffu;
            h *= 0x100000001b3ull;
        }
    }
    return h;
}

static yajl_val
get(yajl_val obj, const char *key)
{
    const char *path[] = { key, NULL };

    return obj ? yajl_tree_get(obj, path, yajl_t_any) : NULL;
}

static void
test_fixture_dequant(const char *dir)
{
    char path[512], ebuf[256];
    const char *name = strrchr(dir, '/') + 1;
    glm_backend *be = glm_backend_cpu_create(1);
    glm_model *m;
    glm_err err;
    char *text;
    yajl_val ref, tensors;
    size_t i;
    int exact = 0, n = 0;
    double worst_sum = 0.0;

    m = glm_model_load(dir, be, &err);
    CHECK(m != NULL, "%s: %s", dir, err.msg);
    snprintf(path, sizeof(path), "%s/fp8_dequant.json", dir);
    text = glm_read_file(path, NULL, &err);
    CHECK(text != NULL, "%s", err.msg);
    ref = text ? yajl_tree_parse(text, ebuf, sizeof(ebuf)) : NULL;
    tensors = get(ref, "tensors");
    if (m == NULL || tensors == NULL || !YAJL_IS_OBJECT(tensors)) {
        CHECK(0, "%s: no model or no fp8_dequant.json tensors", dir);
        goto done;
    }
    for (i = 0; i < tensors->u.object.len; i++) {
        const char *tname = tensors->u.object.keys[i];
        yajl_val e = tensors->u.object.values[i];
        glm_tensor *t = glm_checkpoint_find(m->ck, tname);
        const char *hex = YAJL_GET_STRING(get(e, "fnv1a64"));
        double want_sum = YAJL_GET_DOUBLE(get(e, "sum")), sum = 0.0;
        float *v;
        int64_t k;

        n++;
        if (t == NULL || t->dtype != GLM_DTYPE_F8_E4M3 || t->scale == NULL || hex == NULL) {
            printf("  %s %s: not bound as a scaled FP8 weight\n", name, tname);
            continue;
        }
        v = malloc((size_t) t->numel * sizeof(float));
        glm_tensor_to_f32(t, 0, t->numel, v);
        for (k = 0; k < t->numel; k++) {
            sum += v[k];
        }
        if (strtoull(hex, NULL, 16) == fnv1a64(v, t->numel)) {
            exact++;
        } else {
            printf("  %s %s: values differ from transformers' (sum %.9g, reference %.9g)\n",
                   name, tname, sum, want_sum);
        }
        if (fabs(sum - want_sum) > worst_sum) {
            worst_sum = fabs(sum - want_sum);
        }
        free(v);
    }
    printf("dequant %s: %d/%d FP8 weights bit-exact vs transformers (max |sum diff| %.2g)\n",
           name, exact, n, worst_sum);
    CHECK(n > 0 && exact == n, "%s: %d/%d bit-exact", name, exact, n);
done:
    yajl_tree_free(ref);
    free(text);
    glm_model_free(m);
    be->destroy(be);
}

/* ---- 3. ragged blocks and row views --------------------------------------- */

/* value at (r, c) of a block-scaled weight, straight from the definition */
static float
direct(const uint8_t *q, int cols, const uint16_t *scale, int scale_cols, int b0, int b1,
    int r, int c, int exact)
{
    float v = glm_fp8_e4m3_to_f32(q[r * cols + c])
              * glm_bf16_to_f32(scale[(r / b0) * scale_cols + c / b1]);

    return exact ? v : glm_bf16_to_f32(glm_f32_to_bf16(v));
}

static void
test_blocks_and_views(void)
{
    enum { R = 11, C = 13, B0 = 4, B1 = 5, SR = 3, SC = 3 };
    uint8_t q[R * C];
    uint16_t scale[SR * SC];
    float full[R * C], part[R * C], want;
    glm_tensor s, t, v;
    int r, c, i, exact, bad = 0, views_bad = 0, ranges_bad = 0;
    unsigned seed = 12345;

    for (i = 0; i < R * C; i++) {
        seed = seed * 1103515245u + 12345u;
        q[i] = (uint8_t) (seed >> 16);
        if ((q[i] & 0x7f) == 0x7f) {
            q[i] ^= 1;                          /* keep NaN out of the sums */
        }
    }
    for (i = 0; i < SR * SC; i++) {
        scale[i] = glm_f32_to_bf16(0.001f * (float) (i + 1) + 0.0003f);
    }
    memset(&s, 0, sizeof(s));
    s.dtype = GLM_DTYPE_BF16;
    s.ndim = 2;
    s.shape[0] = SR;
    s.shape[1] = SC;
    s.numel = SR * SC;
    s.data = scale;
    memset(&t, 0, sizeof(t));
    t.dtype = GLM_DTYPE_F8_E4M3;
    t.ndim = 2;
    t.shape[0] = R;
    t.shape[1] = C;
    t.numel = R * C;
    t.data = q;
    t.scale = &s;
    t.scale_strategy = GLM_SCALE_BLOCK;
    t.block[0] = B0;
    t.block[1] = B1;

    for (exact = 0; exact < 2; exact++) {
        t.scale_exact = exact;
        glm_tensor_to_f32(&t, 0, R * C, full);
        for (r = 0; r < R; r++) {
            for (c = 0; c < C; c++) {
                want = direct(q, C, scale, SC, B0, B1, r, c, exact);
                bad += f32_bits(full[r * C + c]) != f32_bits(want);
            }
        }
        /* ranges starting and ending mid-row, mid-block */
        for (i = 0; i + 17 <= R * C; i += 7) {
            glm_tensor_to_f32(&t, i, 17, part);
            ranges_bad += memcmp(part, full + i, 17 * sizeof(float)) != 0;
        }
        /* row views at every offset, as vision.c slices the fused qkv */
        for (r = 0; r < R; r++) {
            v = t;
            v.shape[0] = R - r;
            v.numel = (R - r) * C;
            v.data = q + r * C;
            v.scale_row0 = r;
            glm_tensor_to_f32(&v, 0, v.numel, part);
            views_bad += memcmp(part, full + r * C, (size_t) v.numel * sizeof(float)) != 0;
        }
    }
    printf("blocks: %dx%d weight, %dx%d blocks (ragged both ways), bf16-rounded and exact:"
           " %d values off, %d ranges off, %d row views off\n", R, C, B0, B1, bad,
           ranges_bad, views_bad);
    CHECK(bad == 0 && ranges_bad == 0 && views_bad == 0, "block dequantization");

    /* channel and tensor scales through the same path */
    t.scale_exact = 0;
    t.scale_strategy = GLM_SCALE_CHANNEL;
    s.shape[0] = R;
    s.shape[1] = 1;
    {
        uint16_t ch[R];
        for (r = 0; r < R; r++) {
            ch[r] = glm_f32_to_bf16(0.01f + 0.002f * (float) r);
        }
        s.data = ch;
        v = t;
        v.shape[0] = R - 3;
        v.numel = (R - 3) * C;
        v.data = q + 3 * C;
        v.scale_row0 = 3;
        glm_tensor_to_f32(&v, 0, v.numel, part);
        bad = 0;
        for (r = 3; r < R; r++) {
            for (c = 0; c < C; c++) {
                float w = glm_fp8_e4m3_to_f32(q[r * C + c]) * glm_bf16_to_f32(ch[r]);
                bad += f32_bits(part[(r - 3) * C + c])
                       != f32_bits(glm_bf16_to_f32(glm_f32_to_bf16(w)));
            }
        }
        CHECK(bad == 0, "channel view: %d values off", bad);
        t.scale_strategy = GLM_SCALE_TENSOR;
        glm_tensor_to_f32(&t, 5, 1, part);
        CHECK(f32_bits(part[0]) == f32_bits(glm_bf16_to_f32(glm_f32_to_bf16(
                  glm_fp8_e4m3_to_f32(q[5]) * glm_bf16_to_f32(ch[0])))),
              "tensor scale");
    }
    printf("channel/tensor scales: views and single elements checked\n");
}

/* ---- 4. quantization_config --------------------------------------------- */

static glm_quant *
parse(const char *json, glm_err *err)
{
    char ebuf[256];
    yajl_val v = yajl_tree_parse(json, ebuf, sizeof(ebuf));
    glm_quant *q = NULL;

    if (v == NULL) {
        snprintf(err->msg, sizeof(err->msg), "bad test JSON: %s", ebuf);
        return NULL;
    }
    if (glm_quant_parse(v, &q, "config.json", err) != 0) {
        q = NULL;
    }
    yajl_tree_free(v);
    return q;
}

#define GROUP(w) "{\"quant_method\":\"compressed-tensors\",\"format\":\"float-quantized\"," \
    "\"config_groups\":{\"group_0\":{\"targets\":[\"Linear\"],\"weights\":" w "}}"
#define W_CHANNEL "{\"num_bits\":8,\"type\":\"float\",\"strategy\":\"channel\"," \
    "\"symmetric\":true,\"dynamic\":false}"

static void
test_config(void)
{
    static const struct {
        const char *json, *want;
    } bad[] = {
        { GROUP("{\"num_bits\":8,\"type\":\"float\",\"strategy\":\"group\",\"group_size\":128}") "}",
          "strategy \"group\" is not supported (tensor, channel or block)" },
        { GROUP("{\"num_bits\":4,\"type\":\"int\",\"strategy\":\"channel\"}") "}",
          "only 8-bit float (FP8 E4M3) quantization is supported" },
        { GROUP("{\"num_bits\":8,\"type\":\"float\",\"strategy\":\"channel\",\"symmetric\":false}") "}",
          "asymmetric weights" },
        { GROUP("{\"num_bits\":8,\"type\":\"float\",\"strategy\":\"block\"}") "}",
          "needs block_structure [rows, cols]" },
        { GROUP("{\"num_bits\":8,\"type\":\"float\",\"strategy\":\"channel\",\"dynamic\":true}") "}",
          "dynamic weight scales" },
        { GROUP(W_CHANNEL) ",\"ignore\":[\"re:(unclosed\"]}", "ignore \"re:(unclosed\": regex error" },
        { GROUP(W_CHANNEL) ",\"kv_cache_scheme\":{\"num_bits\":8}}", "kv_cache_scheme is not supported" },
        { GROUP(W_CHANNEL) ",\"kv_cache_scheme\":{\"num_bits\":8,\"type\":\"float\","
          "\"strategy\":\"head\"}}", "kv_cache_scheme is not supported (only static per-tensor" },
        { GROUP(W_CHANNEL) ",\"sparsity_config\":{\"format\":\"sparse-24-bitmask\"}}",
          "sparsity_config (format \"sparse-24-bitmask\") is not supported" },
        { "{\"quant_method\":\"fp8\",\"weight_block_size\":[128,128]}",
          "quant_method \"fp8\" is not supported" },
        { "{\"quant_method\":\"compressed-tensors\",\"format\":\"pack-quantized\",\"config_groups\":"
          "{\"g\":{\"targets\":[\"Linear\"],\"weights\":" W_CHANNEL "}}}",
          "format \"pack-quantized\" is not supported" },
    };
    glm_err err;
    glm_quant *q;
    const char *by;
    size_t i;
    int ok = 0;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err.msg[0] = '\0';
        q = parse(bad[i].json, &err);
        if (q == NULL && strstr(err.msg, bad[i].want) != NULL && strchr(err.msg, '\n') == NULL) {
            ok++;
        } else {
            printf("  config case %zu: wanted \"%s\", got %s\n", i, bad[i].want,
                   q ? "success" : err.msg);
        }
        glm_quant_free(q);
    }
    printf("config: %d/%zu unsupported schemes refused with one line\n", ok,
           sizeof(bad) / sizeof(bad[0]));
    CHECK(ok == (int) (sizeof(bad) / sizeof(bad[0])), "config refusals");

    /* llm-compressor's FP8 KV scheme: static per-tensor scales, which the
     * model reads as k_proj/v_proj.output_scale (test_kv_dtype.c) */
    q = parse(GROUP(W_CHANNEL) ",\"kv_cache_scheme\":{\"num_bits\":8,\"type\":\"float\","
              "\"strategy\":\"tensor\",\"dynamic\":false,\"symmetric\":true}}", &err);
    CHECK(q != NULL, "an FP8 per-tensor kv_cache_scheme: %s", q ? "" : err.msg);
    glm_quant_free(q);

    q = parse(GROUP("{\"num_bits\":8,\"type\":\"float\",\"strategy\":\"block\","
                    "\"block_structure\":\"48x40\"}")
              ",\"ignore\":[\"lm_head\",\"re:.*mlp\\\\.gate$\",\"re:model\\\\.layers\\\\.0\\\\.\"]}",
              &err);
    CHECK(q != NULL && q->groups[0].block[0] == 48 && q->groups[0].block[1] == 40,
          "block_structure as \"RxC\": %s", q ? "wrong" : err.msg);
    if (q != NULL) {
        /* exact names, re.match anchored at the start only */
        CHECK(glm_quant_group_of(q, "lm_head", &by) == NULL && by && strcmp(by, "lm_head") == 0,
              "lm_head ignored");
        CHECK(glm_quant_group_of(q, "lm_head_2", &by) != NULL, "exact entries are exact");
        CHECK(glm_quant_group_of(q, "model.layers.1.mlp.gate", &by) == NULL,
              "router ignored by regex");
        CHECK(glm_quant_group_of(q, "model.layers.1.mlp.gate_proj", &by) != NULL,
              "gate_proj is not the router ($)");
        CHECK(glm_quant_group_of(q, "model.layers.0.self_attn.q_proj", &by) == NULL,
              "prefix regex ignores a layer");
        CHECK(glm_quant_group_of(q, "model.layers.10.self_attn.q_proj", &by) != NULL,
              "re: is anchored at the start only, like re.match, so layers.0\\. does"
              " not match layers.10");
        glm_quant_free(q);
    }
    q = parse("{\"quant_method\":\"compressed-tensors\",\"config_groups\":{\"g\":{\"targets\":"
              "[\"re:.*experts.*\"],\"weights\":" W_CHANNEL "}}}", &err);
    CHECK(q != NULL, "%s", err.msg);
    if (q != NULL) {
        CHECK(glm_quant_group_of(q, "model.layers.1.mlp.experts.3.up_proj", NULL) != NULL
              && glm_quant_group_of(q, "model.layers.1.self_attn.q_proj", NULL) == NULL,
              "regex targets select modules");
        glm_quant_free(q);
    }
    printf("config: ignore and targets match as compressed-tensors' match_name\n");
}

/* ---- 5. binding against a checkpoint written here ------------------------ */

/* one safetensors file holding `header`'s tensors over `nbytes` zero bytes */
static void
write_checkpoint(const char *dir, const char *header, size_t nbytes)
{
    char path[512];
    unsigned char len[8];
    size_t h = strlen(header), i;
    FILE *f;

    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    f = fopen(path, "wb");
    for (i = 0; i < 8; i++) {
        len[i] = (unsigned char) ((uint64_t) h >> (8 * i));
    }
    fwrite(len, 1, 8, f);
    fwrite(header, 1, h, f);
    for (i = 0; i < nbytes; i++) {
        fputc(0x38, f);                     /* FP8 1.0, and harmless elsewhere */
    }
    fclose(f);
}

static void
test_binding(void)
{
    static const struct {
        const char *header, *module, *want;
        size_t nbytes;
    } cases[] = {
        { "{\"m.weight\":{\"dtype\":\"F8_E4M3\",\"shape\":[2,2],\"data_offsets\":[0,4]},"
          "\"m.weight_scale\":{\"dtype\":\"F16\",\"shape\":[2,1],\"data_offsets\":[4,8]}}",
          "m", "tensor 'm.weight_scale' has dtype F16, expected F32 or BF16", 8 },
        { "{\"m.weight\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
          "\"m.weight_scale\":{\"dtype\":\"F32\",\"shape\":[2,1],\"data_offsets\":[8,16]}}",
          "m", "tensor 'm.weight_scale' scales 'm.weight', which is stored as BF16, not F8_E4M3", 16 },
        { "{\"m.weight\":{\"dtype\":\"F8_E4M3\",\"shape\":[2,3],\"data_offsets\":[0,6]},"
          "\"m.weight_scale\":{\"dtype\":\"F32\",\"shape\":[2,1],\"data_offsets\":[6,14]}}",
          "m", "tensor 'm.weight' has shape [2, 3], expected [2, 2]", 14 },
    };
    char dir[] = "/tmp/test_fp8.XXXXXX", path[512];
    glm_checkpoint *ck;
    glm_quant *q;
    glm_tensor *t;
    glm_err err;
    int64_t s22[2] = { 2, 2 };
    size_t i;
    int ok = 0;

    if (mkdtemp(dir) == NULL) {
        CHECK(0, "mkdtemp");
        return;
    }
    q = parse(GROUP(W_CHANNEL) "}", &err);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_checkpoint(dir, cases[i].header, cases[i].nbytes);
        ck = glm_checkpoint_open(dir, &err);
        t = ck ? glm_quant_bind_linear(ck, q, cases[i].module, 2, 2, 0, &err) : NULL;
        if (t == NULL && strstr(err.msg, cases[i].want) != NULL) {
            ok++;
        } else {
            printf("  binding case %zu: wanted \"%s\", got %s\n", i, cases[i].want,
                   t ? "success" : err.msg);
        }
        glm_checkpoint_close(ck);
    }
    /* an FP8 tensor where only float is admitted (an embedding, a router) */
    write_checkpoint(dir, "{\"e.weight\":{\"dtype\":\"F8_E4M3\",\"shape\":[2,2],"
                     "\"data_offsets\":[0,4]}}", 4);
    ck = glm_checkpoint_open(dir, &err);
    t = ck ? glm_checkpoint_get(ck, "e.weight", 2, s22, &err) : NULL;
    if (t == NULL && strstr(err.msg, "only the weights of Linear layers can be FP8") != NULL) {
        ok++;
    } else {
        printf("  FP8 outside a Linear layer: got %s\n", t ? "success" : err.msg);
    }
    glm_checkpoint_close(ck);
    /* and one that binds: value = fp8 * scale */
    write_checkpoint(dir, "{\"m.weight\":{\"dtype\":\"F8_E4M3\",\"shape\":[2,2],"
                     "\"data_offsets\":[0,4]},\"m.weight_scale\":{\"dtype\":\"BF16\","
                     "\"shape\":[2,1],\"data_offsets\":[4,8]}}", 8);
    ck = glm_checkpoint_open(dir, &err);
    t = ck ? glm_quant_bind_linear(ck, q, "m", 2, 2, 0, &err) : NULL;
    if (t != NULL && t->scale != NULL && t->scale_strategy == GLM_SCALE_CHANNEL) {
        float v[4];
        /* bytes 0x38 everywhere: weight 1.0, scale bf16 0x3838 */
        glm_tensor_to_f32(t, 0, 4, v);
        ok += v[0] == glm_bf16_to_f32(0x3838) && v[3] == v[0];
    } else {
        printf("  binding a channel-scaled weight: %s\n", t ? "no scale attached" : err.msg);
    }
    glm_checkpoint_close(ck);
    glm_quant_free(q);
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
    printf("binding: %d/%zu checkpoints written here bind or fail as they should\n", ok,
           sizeof(cases) / sizeof(cases[0]) + 2);
    CHECK(ok == (int) (sizeof(cases) / sizeof(cases[0]) + 2), "binding cases");
}

int
main(void)
{
    static const char *fixtures[] = {
        "t/fixtures/glm45-air-tiny-fp8-tensor", "t/fixtures/glm45-air-tiny-fp8-channel",
        "t/fixtures/glm45-air-tiny-fp8-block", "t/fixtures/glm45-air-tiny-fp8-block48x40",
        "t/fixtures/glm45v-tiny-fp8-channel",
    };
    size_t i;

    test_e4m3_table();
    for (i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
        test_fixture_dequant(fixtures[i]);
    }
    test_blocks_and_views();
    test_config();
    test_binding();
    printf("test_fp8: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
