/*
 * test_kv_dtype.c: the narrow KV cache's rounding and the CPU backend's
 * store/attention through it.
 *
 * 1. fp32 -> E4M3 (glm_f32_to_fp8_e4m3) over all 256 codes: every finite
 *    code's value (decoded by glm_fp8_e4m3_to_f32, itself checked bit for
 *    bit against torch in test_fp8.c) encodes back to the code; each exact
 *    midpoint between neighbours goes to the even code, the floats just
 *    beside it to the nearer one; beyond 448 saturates (infinity included),
 *    NaN stays NaN, below half the smallest subnormal is zero.  The
 *    expectations come from the ordered table of decoded values, not from
 *    the encoder.
 * 2. fp32 -> BF16 (glm_f32_to_bf16): midpoints and their neighbours for
 *    random BF16 pairs against a double-precision nearest-even choice.
 * 3. The CPU backend's kv_store then attention with a BF16 and an FP8
 *    (scale 0.5 and 3.0) pool against attention computed directly from the
 *    rounded values: the cache holds x / scale rounded, attention reads
 *    fp8 * scale, and every query head of a GQA group reads the same rows.
 * 4. Per-layer KV scales from a checkpoint (the glm45-air-tiny fixture with
 *    scale tensors appended) under each of vLLM's names, 1.0 where absent,
 *    the query/probability scales accepted and left alone, and the one-line
 *    refusals of a bad scale (zero, not a scalar, two names for one layer);
 *    pools take the model's dtype and scales, and the CUDA-only dtypes a
 *    backend does not hold are refused by name.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <unistd.h>

#include "backend/backend.h"
#include "backend/cpu_kernels.h"
#include "model/model.h"
#include "model/safetensors.h"

static int passed, failed;

#define CHECK(cond, ...) do {                                   \
    if (cond) { passed++; } else {                              \
        failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__);   \
        printf(__VA_ARGS__); printf("\n"); }                    \
} while (0)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t
rnd_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t) (rng_state >> 16);
}

static float
rnd_f(void)
{
    return (float) ((double) rnd_u32() / 4294967296.0 * 2.0 - 1.0);
}

static void
test_e4m3(void)
{
    float val[128];
    int code, bad = 0, i;
    const float max = 448.0f;

    /* positive codes 0x00..0x7e in increasing order of value */
    for (code = 0; code < 0x7f; code++) {
        val[code] = glm_fp8_e4m3_to_f32((uint8_t) code);
        if (code > 0 && !(val[code] > val[code - 1])) {
            bad++;
        }
    }
    CHECK(bad == 0 && val[0x7e] == max, "decoded E4M3 codes are not increasing to 448");

    bad = 0;
    for (code = 0; code < 0x7f; code++) {
        uint8_t pos = glm_f32_to_fp8_e4m3(val[code]);
        uint8_t neg = glm_f32_to_fp8_e4m3(-val[code]);
        if (pos != code || neg != (0x80 | code)) {
            if (bad++ < 5) {
                printf("  E4M3 %g -> 0x%02x / -%g -> 0x%02x, want 0x%02x\n",
                       (double) val[code], pos, (double) val[code], neg, code);
            }
        }
    }
    CHECK(bad == 0, "%d finite E4M3 values do not encode to their own code", bad);

    bad = 0;
    for (code = 0; code + 1 < 0x7f; code++) {
        float mid = (val[code] + val[code + 1]) * 0.5f;   /* exact in fp32 */
        int even = (code & 1) ? code + 1 : code;
        uint8_t at = glm_f32_to_fp8_e4m3(mid);
        uint8_t below = glm_f32_to_fp8_e4m3(nextafterf(mid, 0.0f));
        uint8_t above = glm_f32_to_fp8_e4m3(nextafterf(mid, INFINITY));
        uint8_t neg = glm_f32_to_fp8_e4m3(-mid);

        if (at != even || below != code || above != code + 1 || neg != (0x80 | even)) {
            if (bad++ < 5) {
                printf("  E4M3 midpoint %.9g of 0x%02x/0x%02x: at 0x%02x below 0x%02x above"
                       " 0x%02x neg 0x%02x\n", (double) mid, code, code + 1, at, below,
                       above, neg);
            }
        }
    }
    CHECK(bad == 0, "%d E4M3 midpoints round wrongly (nearest even expected)", bad);

    {
        const float sat[] = { 448.5f, 463.9f, 464.0f, 480.0f, 1e6f, 3.4e38f, INFINITY };
        for (i = 0; i < (int) (sizeof(sat) / sizeof(sat[0])); i++) {
            CHECK(glm_f32_to_fp8_e4m3(sat[i]) == 0x7e && glm_f32_to_fp8_e4m3(-sat[i]) == 0xfe,
                  "E4M3 of %g does not saturate to +-448", (double) sat[i]);
        }
    }
    CHECK((glm_f32_to_fp8_e4m3(NAN) & 0x7f) == 0x7f, "E4M3 of NaN is not NaN");
    CHECK(glm_f32_to_fp8_e4m3(ldexpf(1.0f, -10)) == 0x00
          && glm_f32_to_fp8_e4m3(nextafterf(ldexpf(1.0f, -10), 1.0f)) == 0x01
          && glm_f32_to_fp8_e4m3(1e-30f) == 0x00 && glm_f32_to_fp8_e4m3(-1e-30f) == 0x80,
          "E4M3 below the smallest subnormal");
}

static void
test_bf16(void)
{
    int i, bad = 0;

    for (i = 0; i < 200000; i++) {
        /* a finite BF16 value and its successor (same sign, magnitude + 1) */
        uint16_t lo = (uint16_t) (rnd_u32() & 0xffff), hi;
        float a, b, mid, x;
        double da, db, dx;
        uint16_t want, got;
        int k;

        if ((lo & 0x7f80) == 0x7f80 || (lo & 0x7fff) == 0x7f7f) {
            continue;               /* inf/NaN, or no finite successor */
        }
        hi = (uint16_t) (lo + 1);
        a = glm_bf16_to_f32(lo);
        b = glm_bf16_to_f32(hi);
        mid = (float) (((double) a + (double) b) / 2.0);
        for (k = -1; k <= 1; k++) {
            x = k < 0 ? nextafterf(mid, a) : k > 0 ? nextafterf(mid, b) : mid;
            da = fabs((double) x - (double) a);
            db = fabs((double) x - (double) b);
            dx = da - db;
            want = dx < 0 ? lo : dx > 0 ? hi : ((lo & 1) ? hi : lo);
            got = glm_f32_to_bf16(x);
            if (got != want && bad++ < 5) {
                printf("  BF16 of %.9g: 0x%04x, want 0x%04x\n", (double) x, got, want);
            }
        }
    }
    CHECK(bad == 0, "%d BF16 roundings differ from nearest even", bad);
}

/* attention of token i (query q) over positions 0..last of the pool rows,
 * straight from the definition, in double */
static void
direct_attention(const float *q, const float *keys, const float *vals, int last, int hd,
    float scale, float *out)
{
    double *w = malloc((size_t) (last + 1) * sizeof(double)), mx = -INFINITY, sum = 0.0;
    int p, d;

    for (p = 0; p <= last; p++) {
        double s = 0.0;
        for (d = 0; d < hd; d++) {
            s += (double) q[d] * keys[(size_t) p * hd + d];
        }
        w[p] = s * scale;
        mx = w[p] > mx ? w[p] : mx;
    }
    for (p = 0; p <= last; p++) {
        w[p] = exp(w[p] - mx);
        sum += w[p];
    }
    for (d = 0; d < hd; d++) {
        double o = 0.0;
        for (p = 0; p <= last; p++) {
            o += w[p] / sum * vals[(size_t) p * hd + d];
        }
        out[d] = (float) o;
    }
    free(w);
}

static void
test_store_attention(glm_backend *be, glm_kv_dtype dtype, float kscale, float vscale)
{
    enum { LAYERS = 2, HEADS = 8, KVH = 2, HD = 64, BS = 16, NB = 6, T = 70 };
    int kvd = KVH * HD, layer = 1, i, h, d, p, group = HEADS / KVH;
    float kscales[LAYERS] = { 1.0f, kscale }, vscales[LAYERS] = { 1.0f, vscale };
    int32_t blocks[NB] = { 4, 1, 5, 0, 3, 2 }, seq[T], pos[T];
    glm_seq_blocks sb = { blocks, NB };
    glm_attn_batch b = { T, seq, pos, &sb, 1 };
    size_t bytes = (size_t) LAYERS * NB * BS * kvd * glm_kv_dtype_size(dtype);
    glm_kv_pool kv = { LAYERS, NB, BS, kvd, dtype, calloc(1, bytes), calloc(1, bytes),
                       kscales, vscales };
    float *k = malloc((size_t) T * kvd * sizeof(float)), *v = malloc((size_t) T * kvd * sizeof(float));
    float *q = malloc((size_t) T * HEADS * HD * sizeof(float));
    float *out = malloc((size_t) T * HEADS * HD * sizeof(float));
    float *rk = malloc((size_t) T * HD * sizeof(float)), *rv = malloc((size_t) T * HD * sizeof(float));
    float want[HD], scale = 1.0f / 8.0f;
    double worst = 0.0, store_bad = 0;

    for (i = 0; i < T * kvd; i++) {
        /* spread over magnitudes, some beyond 448 * scale to saturate */
        k[i] = rnd_f() * (i % 97 == 0 ? 2000.0f : 3.0f);
        v[i] = rnd_f() * 2.0f;
    }
    for (i = 0; i < T * HEADS * HD; i++) {
        q[i] = rnd_f() * 0.05f;
    }
    for (i = 0; i < T; i++) {
        seq[i] = 0;
        pos[i] = i;
    }
    be->kv_store(be, &kv, layer, k, v, &b);
    be->attention(be, out, q, &kv, layer, &b, HEADS, KVH, HD, scale);

    /* what the cache must hold: each value rounded as the dtype says */
    for (i = 0; i < T; i++) {
        const void *kr = glm_kv_slot(&kv, kv.k, layer, &sb, i);
        for (d = 0; d < kvd; d++) {
            float x = k[(size_t) i * kvd + d], want_k;
            float got;
            glm_kv_widen(dtype, kr, d, 1, kscale, &got);
            want_k = dtype == GLM_KV_BF16 ? glm_bf16_to_f32(glm_f32_to_bf16(x))
                     : glm_fp8_e4m3_to_f32(glm_f32_to_fp8_e4m3(x / kscale)) * kscale;
            store_bad += got != want_k;
        }
    }
    CHECK(store_bad == 0, "%s: %g cached keys differ from their rounding",
          glm_kv_dtype_name(dtype), store_bad);

    for (h = 0; h < KVH; h++) {
        /* the rounded rows of kv head h, read back through the slots */
        for (p = 0; p < T; p++) {
            glm_kv_widen(dtype, glm_kv_slot(&kv, kv.k, layer, &sb, p), (int64_t) h * HD, HD,
                         kscale, rk + (size_t) p * HD);
            glm_kv_widen(dtype, glm_kv_slot(&kv, kv.v, layer, &sb, p), (int64_t) h * HD, HD,
                         vscale, rv + (size_t) p * HD);
        }
        for (i = 0; i < T; i++) {
            int g;
            for (g = 0; g < group; g++) {
                int qh = h * group + g;
                const float *qr = q + ((size_t) i * HEADS + qh) * HD;
                const float *o = out + ((size_t) i * HEADS + qh) * HD;
                direct_attention(qr, rk, rv, i, HD, scale, want);
                for (d = 0; d < HD; d++) {
                    double e = fabs((double) o[d] - want[d]);
                    worst = e > worst ? e : worst;
                }
            }
        }
    }
    printf("KVDTYPE %s k_scale=%g v_scale=%g attention max_abs_err=%.3g (vs the rounded"
           " cache, in double)\n", glm_kv_dtype_name(dtype), (double) kscale,
           (double) vscale, worst);
    /* fp32 sums against double, scores up to ~10 (keys up to 2000): 5e-5 */
    CHECK(worst < 5e-5, "%s attention over the rounded cache: max error %.3g",
          glm_kv_dtype_name(dtype), worst);
    free(kv.k);
    free(kv.v);
    free(k);
    free(v);
    free(q);
    free(out);
    free(rk);
    free(rv);
}

/* ---- 4. scales from a checkpoint ----------------------------------------- */

#define FIXTURE "t/fixtures/glm45-air-tiny"

/* DIR/model.safetensors: the fixture's tensors plus `extra` (JSON members
 * naming F32 tensors at offsets 0, 4, ... past the fixture's data) whose
 * values are `vals`; DIR/config.json the fixture's */
static int
write_with_scales(const char *dir, const char *extra, const float *vals, int n)
{
    char path[512], *text;
    unsigned char len[8];
    FILE *in, *out;
    uint64_t hlen = 0, data, k;
    long size;
    size_t hl, i;
    char *header, *buf, *json;
    glm_err err;

    snprintf(path, sizeof(path), "%s/config.json", dir);
    text = glm_read_file(FIXTURE "/config.json", NULL, &err);
    out = fopen(path, "wb");
    if (text == NULL || out == NULL) {
        free(text);
        return -1;
    }
    fputs(text, out);
    fclose(out);
    free(text);

    in = fopen(FIXTURE "/model.safetensors", "rb");
    if (in == NULL || fread(len, 1, 8, in) != 8) {
        return -1;
    }
    for (i = 0; i < 8; i++) {
        hlen |= (uint64_t) len[i] << (8 * i);
    }
    fseek(in, 0, SEEK_END);
    size = ftell(in);
    data = (uint64_t) size - 8 - hlen;
    header = calloc(1, hlen + 1);
    buf = malloc(data);
    fseek(in, 8, SEEK_SET);
    if (fread(header, 1, hlen, in) != hlen || fread(buf, 1, data, in) != data) {
        return -1;
    }
    fclose(in);
    hl = strlen(header);
    while (hl > 0 && header[hl - 1] != '}') {
        hl--;
    }
    json = malloc(hl + 16 * strlen(extra) + 64);      /* "@i" grows to "[a,b]" */
    /* the extra members' offsets are relative: shift them past the data */
    memcpy(json, header, hl - 1);
    json[hl - 1] = '\0';
    {
        char *o = json + strlen(json);
        const char *e = extra;
        while (*e) {
            if (*e == '@' || *e == '#') {     /* @i: value i; #i: values i, i+1 */
                uint64_t w = *e == '#' ? 8 : 4;
                int idx = (int) strtol(e + 1, (char **) &e, 10);
                o += sprintf(o, "[%llu,%llu]", (unsigned long long) (data + 4 * (uint64_t) idx),
                             (unsigned long long) (data + 4 * (uint64_t) idx + w));
            } else {
                *o++ = *e++;
            }
        }
        *o++ = '}';
        while ((o - json) % 8 != 0) {
            *o++ = ' ';
        }
        *o = '\0';
    }
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    out = fopen(path, "wb");
    k = strlen(json);
    for (i = 0; i < 8; i++) {
        len[i] = (unsigned char) (k >> (8 * i));
    }
    fwrite(len, 1, 8, out);
    fwrite(json, 1, k, out);
    fwrite(buf, 1, data, out);
    fwrite(vals, sizeof(float), (size_t) n, out);
    fclose(out);
    free(header);
    free(buf);
    free(json);
    return 0;
}

#define SCALAR(name, i) ",\"model.layers." name "\":{\"dtype\":\"F32\",\"shape\":[]," \
                        "\"data_offsets\":@" #i "}"

static void
test_checkpoint_scales(glm_backend *be)
{
    static const struct {
        const char *extra, *want;
        float vals[2];
        int n;
    } bad[] = {
        { SCALAR("0.self_attn.k_scale", 0), "is 0: it must be positive", { 0.0f }, 1 },
        { ",\"model.layers.1.self_attn.v_scale\":{\"dtype\":\"F32\",\"shape\":[2],"
          "\"data_offsets\":#0}", "must be one float", { 1.0f, 1.0f }, 2 },
        { SCALAR("2.self_attn.k_scale", 0) SCALAR("2.self_attn.k_proj.output_scale", 1),
          "layer 2 has two k scales", { 1.0f, 2.0f }, 2 },
    };
    char dir[] = "/tmp/test_kv_dtype.XXXXXX", path[512];
    float vals[] = { 0.5f, 2.0f, 0.25f, 8.0f, 4.0f, 3.0f };
    glm_model *m;
    glm_kv_pool kv;
    glm_err err;
    size_t i;

    if (mkdtemp(dir) == NULL) {
        CHECK(0, "mkdtemp");
        return;
    }
    /* layer 0: vLLM's plain names; layer 1: compressed-tensors' output
     * scales; layer 2: the deprecated kv_scale for both, and a q scale */
    if (write_with_scales(dir, SCALAR("0.self_attn.k_scale", 0) SCALAR("0.self_attn.v_scale", 1)
                          SCALAR("1.self_attn.k_proj.output_scale", 2)
                          SCALAR("1.self_attn.v_proj.output_scale", 3)
                          SCALAR("2.self_attn.kv_scale", 4) SCALAR("2.self_attn.q_scale", 5),
                          vals, 6) != 0)
    {
        CHECK(0, "cannot write a checkpoint in %s from " FIXTURE, dir);
        return;
    }
    m = glm_model_load(dir, be, &err);
    CHECK(m != NULL, "a checkpoint with KV scales: %s", m ? "" : err.msg);
    if (m != NULL) {
        CHECK(m->kv_k_scale[0] == 0.5f && m->kv_v_scale[0] == 2.0f
              && m->kv_k_scale[1] == 0.25f && m->kv_v_scale[1] == 8.0f
              && m->kv_k_scale[2] == 4.0f && m->kv_v_scale[2] == 4.0f
              && m->kv_scales_loaded == 3,
              "KV scales k %g %g %g v %g %g %g (%d layers)", (double) m->kv_k_scale[0],
              (double) m->kv_k_scale[1], (double) m->kv_k_scale[2], (double) m->kv_v_scale[0],
              (double) m->kv_v_scale[1], (double) m->kv_v_scale[2], m->kv_scales_loaded);
        CHECK(m->kv_dtype == GLM_KV_F32, "the CPU backend's auto KV cache is %s, not float32",
              glm_kv_dtype_name(m->kv_dtype));
        CHECK(glm_model_set_kv_dtype(m, GLM_KV_CACHE_FP8, &err) == 0
              && glm_kv_pool_init(&kv, m, 2, 16, &err) == 0, "fp8 pool: %s", err.msg);
        if (kv.k != NULL) {
            CHECK(kv.dtype == GLM_KV_FP8_E4M3 && kv.k_scale[1] == 0.25f
                  && kv.v_scale[0] == 2.0f
                  && glm_kv_pool_bytes(&kv) == 2 * (size_t) 3 * 2 * 16 * kv.kv_dim,
                  "the fp8 pool: dtype %s, %zu bytes", glm_kv_dtype_name(kv.dtype),
                  glm_kv_pool_bytes(&kv));
            glm_kv_pool_free(&kv, m);
        }
        {
            /* a backend that holds fp32 only (the CUDA backend today) */
            unsigned held = be->kv_dtypes;
            be->kv_dtypes = 1u << GLM_KV_F32;
            CHECK(glm_model_set_kv_dtype(m, GLM_KV_CACHE_BF16, &err) != 0
                  && strstr(err.msg, "cannot hold a bfloat16 KV cache") != NULL,
                  "an unheld dtype: %s", err.msg);
            be->kv_dtypes = held;
        }
        glm_model_free(m);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (write_with_scales(dir, bad[i].extra, bad[i].vals, bad[i].n) != 0) {
            CHECK(0, "cannot write bad case %zu", i);
            continue;
        }
        m = glm_model_load(dir, be, &err);
        CHECK(m == NULL && strstr(err.msg, bad[i].want) != NULL,
              "bad KV scale case %zu: wanted \"%s\", got %s", i, bad[i].want,
              m ? "success" : err.msg);
        glm_model_free(m);
    }
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/config.json", dir);
    unlink(path);
    rmdir(dir);
}

int
main(void)
{
    glm_backend *be = glm_backend_cpu_create(2);

    test_e4m3();
    test_bf16();
    if (be == NULL) {
        printf("FAIL: no CPU backend\n");
        return 1;
    }
    test_store_attention(be, GLM_KV_BF16, 1.0f, 1.0f);
    test_store_attention(be, GLM_KV_FP8_E4M3, 1.0f, 1.0f);
    test_store_attention(be, GLM_KV_FP8_E4M3, 0.5f, 3.0f);
    test_checkpoint_scales(be);
    be->destroy(be);
    printf("test_kv_dtype: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
