/*
 * test_cpu_kernels.c: the CPU backend's inner loops (cpu_kernels.h), every
 * build this CPU runs (avx512, avx2, generic), against references written
 * here in double precision from the oracle's own weight conversion
 * (glm_tensor_to_f32).
 *
 * 1. Widening: every FP8 bit pattern, every scale dtype and rounding, and
 *    BF16/F16 values, through the vector paths, equal glm_tensor_to_f32's
 *    values bit for bit (a one-hot x picks each weight out).
 * 2. Matmul: all weight kinds (F32, BF16, F16, FP8 unscaled / per tensor /
 *    per channel / per block with blocks that split vectors and not, BF16
 *    and F32 scales, a row view) and ragged shapes within the fp32
 *    dot-product error bound (K ulps of sum |x w|), with a bias.
 * 3. Batch invariance: a row's outputs are the same bits whether it is
 *    computed alone or among 9 rows, and however the columns are split
 *    between tasks: a token's logits do not depend on its batch.
 * 4. Attention over a paged cache: query tiles of several tokens, GQA
 *    groups of 1 to 160 heads (more rows than one task holds), odd head
 *    sizes and one past the transposed-key path's limit, against softmax
 *    attention in double.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu_kernels.h"

static int passed, failed;

#define CHECK(cond, ...) do {                                   \
    if (cond) { passed++; } else {                              \
        failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__);   \
        printf(__VA_ARGS__); printf("\n"); }                    \
} while (0)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t
rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t) (rng_state >> 16);
}

static float
rnd_f(void)
{
    return ((float) (rnd() % 20001) - 10000.0f) / 10000.0f;
}

static int
same_value(float a, float b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

/* ---- weights ---------------------------------------------------------------- */

typedef struct {
    glm_tensor  w, scale;
    void       *data, *sdata;
} weight;

/* a [N, K] weight of the given kind with random values; for FP8, scale
 * strategy st (block rows b0, cols b1), scale dtype sdt */
static void
weight_make(weight *wt, glm_dtype dt, int N, int K, glm_scale_strategy st, int b0,
    int b1, glm_dtype sdt, int exact)
{
    size_t es = glm_dtype_size(dt), i, ns = 0;

    memset(wt, 0, sizeof(*wt));
    wt->data = malloc((size_t) N * K * es + 1);
    for (i = 0; i < (size_t) N * K; i++) {
        float f = rnd_f() * 0.25f;
        uint16_t h;
        switch (dt) {
        case GLM_DTYPE_F32:
            memcpy((char *) wt->data + 4 * i, &f, 4);
            break;
        case GLM_DTYPE_BF16:
            h = glm_f32_to_bf16(f);
            memcpy((char *) wt->data + 2 * i, &h, 2);
            break;
        case GLM_DTYPE_F16:
            /* finite halves: random sign, exponent 1..29, mantissa */
            h = (uint16_t) ((rnd() & 0x8000) | ((1 + rnd() % 29) << 10) | (rnd() & 0x3ff));
            memcpy((char *) wt->data + 2 * i, &h, 2);
            break;
        default:        /* FP8: any finite pattern */
            do {
                ((uint8_t *) wt->data)[i] = (uint8_t) rnd();
            } while ((((uint8_t *) wt->data)[i] & 0x7f) == 0x7f);
            break;
        }
    }
    wt->w = (glm_tensor) { .name = "w", .file = "test", .dtype = dt, .ndim = 2,
                           .shape = { N, K }, .numel = (int64_t) N * K, .data = wt->data,
                           .nbytes = (size_t) N * K * es };
    if (dt != GLM_DTYPE_F8_E4M3 || st == GLM_SCALE_NONE) {
        return;
    }
    switch (st) {
    case GLM_SCALE_TENSOR: ns = 1; break;
    case GLM_SCALE_CHANNEL: ns = (size_t) N; break;
    default: ns = (size_t) ((N + b0 - 1) / b0) * ((K + b1 - 1) / b1); break;
    }
    wt->sdata = malloc(ns * 4);
    for (i = 0; i < ns; i++) {
        float f = 0.001f + (float) (rnd() % 1000) * 1e-5f;
        uint16_t h = glm_f32_to_bf16(f);
        if (sdt == GLM_DTYPE_F32) {
            memcpy((char *) wt->sdata + 4 * i, &f, 4);
        } else {
            memcpy((char *) wt->sdata + 2 * i, &h, 2);
        }
    }
    wt->scale = (glm_tensor) { .name = "w_scale", .file = "test", .dtype = sdt, .ndim = 2,
                               .numel = (int64_t) ns, .data = wt->sdata };
    wt->scale.shape[0] = st == GLM_SCALE_BLOCK ? (N + b0 - 1) / b0 : (int64_t) ns;
    wt->scale.shape[1] = st == GLM_SCALE_BLOCK ? (K + b1 - 1) / b1 : 1;
    wt->w.scale = &wt->scale;
    wt->w.scale_strategy = st;
    wt->w.block[0] = b0;
    wt->w.block[1] = b1;
    wt->w.scale_exact = exact;
}

static void
weight_free(weight *wt)
{
    free(wt->data);
    free(wt->sdata);
}

/* ---- 1. widening ------------------------------------------------------------ */

static void
test_widening(const glm_cpu_kernels *k)
{
    static const struct { glm_scale_strategy st; glm_dtype sdt; int exact; } fp8[] = {
        { GLM_SCALE_NONE, GLM_DTYPE_F32, 0 }, { GLM_SCALE_TENSOR, GLM_DTYPE_F32, 0 },
        { GLM_SCALE_CHANNEL, GLM_DTYPE_BF16, 0 }, { GLM_SCALE_CHANNEL, GLM_DTYPE_BF16, 1 },
        { GLM_SCALE_BLOCK, GLM_DTYPE_BF16, 0 },
    };
    int K = 256, N = 3, i, c, bad = 0, v;
    float *x = calloc((size_t) K, sizeof(float)), *ref = malloc((size_t) N * K * sizeof(float));
    float out[3];
    weight wt;

    for (v = 0; v < (int) (sizeof(fp8) / sizeof(fp8[0])) + 2; v++) {
        bad = 0;
        if (v < (int) (sizeof(fp8) / sizeof(fp8[0]))) {
            weight_make(&wt, GLM_DTYPE_F8_E4M3, N, K, fp8[v].st, 2, 128, fp8[v].sdt,
                        fp8[v].exact);
            /* all 256 patterns but NaN, which would spread to every sum
             * (the NaN rows are checked below) */
            for (i = 0; i < N * K; i++) {
                uint8_t b = (uint8_t) (i + i / K);
                ((uint8_t *) wt.data)[i] = (b & 0x7f) == 0x7f ? 0 : b;
            }
        } else {
            weight_make(&wt, v == (int) (sizeof(fp8) / sizeof(fp8[0])) ? GLM_DTYPE_BF16
                             : GLM_DTYPE_F16, N, K, 0, 0, 0, 0, 0);
        }
        glm_tensor_to_f32(&wt.w, 0, (int64_t) N * K, ref);
        for (i = 0; i < K; i++) {
            glm_mm_args a = { out, x, K, N, 1, &wt.w, NULL };
            x[i] = 1.0f;
            k->matmul_cols(&a, 0, N);
            for (c = 0; c < N; c++) {
                bad += !same_value(out[c], ref[c * K + i]);
            }
            x[i] = 0.0f;
        }
        CHECK(bad == 0, "%s widening variant %d: %d weights differ from glm_tensor_to_f32",
              k->name, v, bad);
        weight_free(&wt);
    }
    free(x);
    free(ref);
}

/* S.1111.111 is NaN: in the vectors and in the tail (K = 253) */
static void
test_fp8_nan(const glm_cpu_kernels *k)
{
    int K = 253, i;
    float x[253], out[3];
    weight wt;
    glm_mm_args a = { out, x, K, 3, 1, &wt.w, NULL };

    weight_make(&wt, GLM_DTYPE_F8_E4M3, 3, K, GLM_SCALE_TENSOR, 0, 0, GLM_DTYPE_BF16, 0);
    memset(wt.data, 0x7f, (size_t) K);
    memset((uint8_t *) wt.data + K, 0, (size_t) K);
    memset((uint8_t *) wt.data + 2 * K, 0, (size_t) K);
    ((uint8_t *) wt.data)[K + 5] = 0xff;
    ((uint8_t *) wt.data)[3 * K - 1] = 0x7f;
    for (i = 0; i < K; i++) {
        x[i] = 1.0f;
    }
    k->matmul_cols(&a, 0, 3);
    CHECK(isnan(out[0]) && isnan(out[1]) && isnan(out[2]),
          "%s: FP8 NaN weights give %g %g %g", k->name, out[0], out[1], out[2]);
    weight_free(&wt);
}

/* ---- 2 and 3. matmul -------------------------------------------------------- */

typedef struct {
    const char        *name;
    glm_dtype          dt;
    glm_scale_strategy st;
    int                b0, b1;
    glm_dtype          sdt;
    int                exact;
} wkind;

static const wkind kinds[] = {
    { "f32", GLM_DTYPE_F32, 0, 0, 0, 0, 0 },
    { "bf16", GLM_DTYPE_BF16, 0, 0, 0, 0, 0 },
    { "f16", GLM_DTYPE_F16, 0, 0, 0, 0, 0 },
    { "fp8", GLM_DTYPE_F8_E4M3, GLM_SCALE_NONE, 0, 0, 0, 0 },
    { "fp8-tensor-f32", GLM_DTYPE_F8_E4M3, GLM_SCALE_TENSOR, 0, 0, GLM_DTYPE_F32, 0 },
    { "fp8-channel-bf16", GLM_DTYPE_F8_E4M3, GLM_SCALE_CHANNEL, 0, 0, GLM_DTYPE_BF16, 0 },
    { "fp8-channel-bf16-exact", GLM_DTYPE_F8_E4M3, GLM_SCALE_CHANNEL, 0, 0, GLM_DTYPE_BF16, 1 },
    { "fp8-block128", GLM_DTYPE_F8_E4M3, GLM_SCALE_BLOCK, 128, 128, GLM_DTYPE_BF16, 0 },
    { "fp8-block32-f32", GLM_DTYPE_F8_E4M3, GLM_SCALE_BLOCK, 3, 32, GLM_DTYPE_F32, 0 },
    { "fp8-block48x40", GLM_DTYPE_F8_E4M3, GLM_SCALE_BLOCK, 48, 40, GLM_DTYPE_BF16, 0 },
};

static void
test_matmul(const glm_cpu_kernels *k)
{
    static const int shapes[][3] = {     /* rows, N, K */
        { 1, 1, 1 }, { 1, 5, 7 }, { 2, 4, 16 }, { 3, 17, 40 }, { 4, 9, 129 },
        { 5, 64, 256 }, { 9, 70, 300 }, { 1, 130, 2048 }, { 6, 33, 512 },
    };
    size_t ki, si;
    int r, n, i;

    for (ki = 0; ki < sizeof(kinds) / sizeof(kinds[0]); ki++) {
        const wkind *wk = &kinds[ki];
        double worst = 0.0;
        int bad = 0, variant = 0;

        for (si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
            int R = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
            float *x = malloc((size_t) R * K * sizeof(float));
            float *wf = malloc((size_t) N * K * sizeof(float));
            float *out = malloc((size_t) R * N * sizeof(float));
            float *one = malloc((size_t) N * sizeof(float));
            float *split = malloc((size_t) R * N * sizeof(float));
            float biasf[256];
            glm_tensor bias = { .name = "b", .file = "test", .dtype = GLM_DTYPE_F32,
                                .ndim = 1, .shape = { N }, .numel = N, .data = biasf };
            weight wt;
            glm_mm_args a;

            weight_make(&wt, wk->dt, N, K, wk->st, wk->b0, wk->b1, wk->sdt, wk->exact);
            glm_tensor_to_f32(&wt.w, 0, (int64_t) N * K, wf);
            for (i = 0; i < R * K; i++) {
                x[i] = rnd_f();
            }
            for (n = 0; n < N; n++) {
                biasf[n] = rnd_f();
            }
            a = (glm_mm_args) { out, x, K, N, R, &wt.w, si % 2 ? &bias : NULL };
            k->matmul_cols(&a, 0, N);
            for (r = 0; r < R; r++) {
                for (n = 0; n < N; n++) {
                    double ref = a.bias ? biasf[n] : 0.0, mag = fabs(ref), err;
                    for (i = 0; i < K; i++) {
                        ref += (double) x[r * K + i] * wf[n * K + i];
                        mag += fabs((double) x[r * K + i] * wf[n * K + i]);
                    }
                    err = fabs(out[r * N + n] - ref);
                    worst = err / (mag + 1e-30) > worst ? err / (mag + 1e-30) : worst;
                    /* fp32 dot-product bound: (K + 2) units of 2^-24 of sum |x w| */
                    bad += !(err <= (K + 2) * 0x1p-24 * mag + 1e-30);
                }
            }
            /* the same bits one row at a time, and in uneven column pieces */
            for (r = 0; r < R; r++) {
                glm_mm_args b = { one, x + r * K, K, N, 1, &wt.w, a.bias };
                k->matmul_cols(&b, 0, N);
                variant += memcmp(one, out + r * N, (size_t) N * sizeof(float)) != 0;
            }
            a.out = split;
            for (n = 0; n < N; n += 1 + n % 7) {
                k->matmul_cols(&a, n, n + 1 + n % 7 < N ? n + 1 + n % 7 : N);
            }
            variant += memcmp(split, out, (size_t) R * N * sizeof(float)) != 0;
            weight_free(&wt);
            free(x); free(wf); free(out); free(one); free(split);
        }
        printf("KERNEL %s matmul %s max_rel_err=%.3g (of sum |x w|)\n", k->name, wk->name,
               worst);
        CHECK(bad == 0, "%s matmul %s: %d outputs outside the fp32 bound", k->name,
              wk->name, bad);
        CHECK(variant == 0, "%s matmul %s: %d results depend on the batch or the split",
              k->name, wk->name, variant);
    }
}

/* a row view, as the vision tower reads its fused qkv weight: rows from
 * row0 with the scale rows that cover them */
static void
test_row_view(const glm_cpu_kernels *k)
{
    int N = 12, K = 96, row0 = 5, V = 4, i, bad = 0;
    float x[96], wf[4 * 96], out[4];
    weight wt;
    glm_tensor view;
    glm_mm_args a = { out, x, K, V, 1, &view, NULL };

    weight_make(&wt, GLM_DTYPE_F8_E4M3, N, K, GLM_SCALE_BLOCK, 3, 32, GLM_DTYPE_BF16, 0);
    view = wt.w;
    view.shape[0] = V;
    view.numel = (int64_t) V * K;
    view.data = (const uint8_t *) wt.data + (size_t) row0 * K;
    view.scale_row0 = row0;
    glm_tensor_to_f32(&view, 0, (int64_t) V * K, wf);
    for (i = 0; i < K; i++) {
        x[i] = rnd_f();
    }
    k->matmul_cols(&a, 0, V);
    for (i = 0; i < V; i++) {
        double ref = 0.0, mag = 0.0;
        int j;
        for (j = 0; j < K; j++) {
            ref += (double) x[j] * wf[i * K + j];
            mag += fabs((double) x[j] * wf[i * K + j]);
        }
        bad += !(fabs(out[i] - ref) <= (K + 2) * 0x1p-24 * mag);
    }
    CHECK(bad == 0, "%s: %d outputs of a row view differ", k->name, bad);
    weight_free(&wt);
}

/* ---- 4. attention ----------------------------------------------------------- */

static void
test_attention(const glm_cpu_kernels *k)
{
    static const int cases[][4] = {   /* heads, kv_heads, head_dim, tokens per tile */
        { 4, 2, 32, 1 }, { 8, 1, 128, 5 }, { 12, 4, 34, 3 }, { 160, 1, 16, 2 },
        { 2, 2, 8, 16 }, { 4, 2, 272, 3 },  /* heads past GLM_ATTN_HD_MAX: dot path */
    };
    size_t ci;

    for (ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
        int heads = cases[ci][0], kvh = cases[ci][1], hd = cases[ci][2], nt = cases[ci][3];
        int bs = 16, nblocks = 12, layers = 2, layer = 1, kvd = kvh * hd, group = heads / kvh;
        int len0 = 37 + (int) ci * 11;      /* the first token's position */
        glm_kv_pool kv = { layers, nblocks, bs, kvd, GLM_KV_F32, NULL, NULL, NULL, NULL };
        int32_t blocks[12], seq[16], pos[16], tiles[2] = { 0, nt };
        glm_seq_blocks sb = { blocks, nblocks };
        glm_attn_batch b = { nt, seq, pos, &sb, 1 };
        size_t pool = (size_t) layers * nblocks * bs * kvd;
        float *q = malloc((size_t) nt * heads * hd * sizeof(float));
        float *out = malloc((size_t) nt * heads * hd * sizeof(float));
        float scale = 1.0f / sqrtf((float) hd);
        double worst = 0.0;
        size_t i;
        int t, h, p, d, kh;
        glm_attn_args a;

        kv.k = malloc(pool * sizeof(float));
        kv.v = malloc(pool * sizeof(float));
        for (i = 0; i < pool; i++) {
            ((float *) kv.k)[i] = rnd_f();
            ((float *) kv.v)[i] = rnd_f();
        }
        for (i = 0; i < (size_t) nblocks; i++) {
            blocks[i] = (int32_t) ((i * 5 + 3) % nblocks);      /* scattered blocks */
        }
        for (t = 0; t < nt; t++) {
            seq[t] = 0;
            pos[t] = len0 + t;
        }
        for (i = 0; i < (size_t) nt * heads * hd; i++) {
            q[i] = rnd_f() * 2.0f;
        }
        a = (glm_attn_args) { out, q, &kv, layer, &b, heads, kvh, hd, scale, tiles };
        for (kh = 0; kh < kvh; kh++) {
            k->attn_tile(&a, 0, kh);
        }
        for (t = 0; t < nt; t++) {
            for (h = 0; h < heads; h++) {
                const float *qq = q + ((size_t) t * heads + h) * hd;
                double *sc = malloc((size_t) (pos[t] + 1) * sizeof(double)), mx = -INFINITY;
                double sum = 0.0;
                kh = h / group;
                for (p = 0; p <= pos[t]; p++) {
                    const float *kk = glm_kv_slot(&kv, kv.k, layer, &sb, p) + kh * hd;
                    double s = 0.0;
                    for (d = 0; d < hd; d++) {
                        s += (double) qq[d] * kk[d];
                    }
                    sc[p] = s * scale;
                    mx = sc[p] > mx ? sc[p] : mx;
                }
                for (p = 0; p <= pos[t]; p++) {
                    sc[p] = exp(sc[p] - mx);
                    sum += sc[p];
                }
                for (d = 0; d < hd; d++) {
                    double o = 0.0;
                    for (p = 0; p <= pos[t]; p++) {
                        o += sc[p] / sum
                             * glm_kv_slot(&kv, kv.v, layer, &sb, p)[kh * hd + d];
                    }
                    o = fabs(out[((size_t) t * heads + h) * hd + d] - o);
                    worst = o > worst ? o : worst;
                }
                free(sc);
            }
        }
        printf("KERNEL %s attention heads=%d kv_heads=%d head_dim=%d tokens=%d max_abs_err=%.3g\n",
               k->name, heads, kvh, hd, nt, worst);
        CHECK(worst < 1e-5, "%s attention case %zu: max error %g", k->name, ci, worst);
        free(q); free(out); free(kv.k); free(kv.v);
    }
}

int
main(void)
{
    static const char *isas[] = { "avx512", "avx2", "generic" };
    size_t i;

    for (i = 0; i < sizeof(isas) / sizeof(isas[0]); i++) {
        const glm_cpu_kernels *k = glm_cpu_kernels_named(isas[i]);

        if (k == NULL) {
            printf("KERNEL %s SKIPPED: this CPU does not run it\n", isas[i]);
            continue;
        }
        test_widening(k);
        test_fp8_nan(k);
        test_matmul(k);
        test_row_view(k);
        test_attention(k);
    }
    printf("KERNEL selected %s\n", glm_cpu_kernels_select()->name);
    printf("test_cpu_kernels: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
