/*
 * test_shard.c: the tensor-parallel split of heads and weights
 * (engine/model/shard.c), against direct computations:
 *
 * 1. glm_shard_heads for GLM-4.5 (96 heads, 8 KV), the tiny fixtures (4, 2)
 *    and other shapes, N = 1..16: the ranks' query heads partition the heads
 *    in order, each rank holds the KV heads its query heads read, and the
 *    backend's local GQA mapping h / (heads / kv_heads) names the same KV
 *    head as the global one; more ranks than heads is refused.
 * 2. Column shards of an FP8 weight with ragged 4x5 block scales, at every
 *    first column and width: dequantized, they are the whole weight's
 *    columns bit for bit (the scale grid indexed from scale_col0), and row
 *    shards of them too.
 * 3. The CPU backend's matmul over column shards of an FP8 block weight
 *    (16-wide blocks: shards starting on a block edge take the kernels'
 *    scaled path, the others the dequantizing one) against a direct sum of
 *    the whole weight's columns; the max error is printed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "model/shard.h"

static int passed, failed;

#define CHECK(cond, ...) do {                                   \
    if (cond) { passed++; } else {                              \
        failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__);   \
        printf(__VA_ARGS__); printf("\n"); }                    \
} while (0)

static void
test_heads(void)
{
    static const int shapes[][2] = { { 96, 8 }, { 4, 2 }, { 12, 4 }, { 8, 8 }, { 64, 4 } };
    int si, N, r, bad = 0, cases = 0;
    glm_err err;

    for (si = 0; si < 5; si++) {
        int heads = shapes[si][0], kv = shapes[si][1], g = heads / kv;
        for (N = 1; N <= 16 && N <= heads; N++) {
            int next = 0;
            for (r = 0; r < N; r++) {
                glm_shard sh = { r, N, 0 };
                int h0, h1, k0, k1, hl, local_g;
                if (glm_shard_heads(&sh, heads, kv, &h0, &h1, &k0, &k1, &err) != 0) {
                    printf("  heads %d kv %d N %d rank %d: %s\n", heads, kv, N, r, err.msg);
                    bad++;
                    break;
                }
                cases++;
                bad += h0 != next || h1 <= h0 || k1 <= k0 || k0 < 0 || k1 > kv;
                next = h1;
                local_g = (h1 - h0) / (k1 - k0);
                bad += local_g * (k1 - k0) != h1 - h0;
                for (hl = 0; hl < h1 - h0; hl++) {
                    bad += (h0 + hl) / g != k0 + hl / local_g;
                }
            }
            bad += next != heads;
        }
    }
    printf("heads: %d rank splits of 5 shapes, N = 1..16: %d wrong\n", cases, bad);
    CHECK(bad == 0, "%d head splits wrong", bad);
    {
        glm_shard sh = { 0, 5, 0 };
        int h0, h1, k0, k1;
        CHECK(glm_shard_heads(&sh, 4, 2, &h0, &h1, &k0, &k1, &err) == -1
              && strstr(err.msg, "more than the model's 4 attention heads") != NULL,
              "5 ranks over 4 heads: '%s'", err.msg);
    }
}

static uint32_t
f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* an FP8 [R, C] weight with bf16 block scales of b0 x b1 */
typedef struct {
    uint8_t   *q;
    uint16_t  *scale;
    glm_tensor s, t;
} fp8_weight;

static void
fp8_weight_init(fp8_weight *w, int R, int C, int b0, int b1, unsigned seed)
{
    int SR = (R + b0 - 1) / b0, SC = (C + b1 - 1) / b1, i;

    w->q = malloc((size_t) R * C);
    w->scale = malloc((size_t) SR * SC * 2);
    for (i = 0; i < R * C; i++) {
        seed = seed * 1103515245u + 12345u;
        w->q[i] = (uint8_t) (seed >> 16);
        if ((w->q[i] & 0x7f) == 0x7f) {
            w->q[i] ^= 1;                       /* no NaN */
        }
    }
    for (i = 0; i < SR * SC; i++) {
        w->scale[i] = glm_f32_to_bf16(0.001f * (float) (i + 1) + 0.0003f);
    }
    memset(&w->s, 0, sizeof(w->s));
    w->s.dtype = GLM_DTYPE_BF16;
    w->s.ndim = 2;
    w->s.shape[0] = SR;
    w->s.shape[1] = SC;
    w->s.numel = SR * SC;
    w->s.data = w->scale;
    memset(&w->t, 0, sizeof(w->t));
    w->t.name = "w";
    w->t.dtype = GLM_DTYPE_F8_E4M3;
    w->t.ndim = 2;
    w->t.shape[0] = R;
    w->t.shape[1] = C;
    w->t.numel = R * C;
    w->t.nbytes = (size_t) R * C;
    w->t.data = w->q;
    w->t.scale = &w->s;
    w->t.scale_strategy = GLM_SCALE_BLOCK;
    w->t.block[0] = b0;
    w->t.block[1] = b1;
}

static void
test_column_shards(void)
{
    enum { R = 11, C = 13 };
    fp8_weight w;
    glm_shard_store *store = NULL;
    float full[R * C], part[R * C];
    int c0, n, r, c, shards = 0, bad = 0, exact;

    fp8_weight_init(&w, R, C, 4, 5, 777);
    for (exact = 0; exact < 2; exact++) {
        w.t.scale_exact = exact;
        glm_tensor_to_f32(&w.t, 0, R * C, full);
        for (c0 = 0; c0 < C; c0++) {
            for (n = 1; c0 + n <= C; n++) {
                glm_tensor *cs = glm_shard_cols(&store, &w.t, c0, n), *rs;
                glm_tensor_to_f32(cs, 0, (int64_t) R * n, part);
                for (r = 0; r < R; r++) {
                    for (c = 0; c < n; c++) {
                        bad += f32_bits(part[r * n + c]) != f32_bits(full[r * C + c0 + c]);
                    }
                }
                /* rows 3..9 of the shard: both offsets at once */
                rs = glm_shard_rows(&store, cs, 3, 7);
                glm_tensor_to_f32(rs, 0, (int64_t) 7 * n, part);
                for (r = 0; r < 7; r++) {
                    for (c = 0; c < n; c++) {
                        bad += f32_bits(part[r * n + c]) != f32_bits(full[(r + 3) * C + c0 + c]);
                    }
                }
                shards++;
            }
        }
    }
    printf("column shards: %d shards of an %dx%d FP8 weight with 4x5 block scales: %d values"
           " off\n", shards, R, C, bad);
    CHECK(bad == 0, "%d dequantized values of column shards differ", bad);
    glm_shard_store_free(store);
    free(w.q);
    free(w.scale);
}

static void
test_matmul_shards(void)
{
    enum { R = 24, C = 96, ROWS = 3 };
    static const int starts[][2] = { { 0, 48 }, { 16, 32 }, { 48, 48 }, { 5, 40 }, { 37, 59 },
                                     { 90, 6 } };
    glm_backend *be = glm_backend_cpu_create(1);
    fp8_weight w;
    glm_shard_store *store = NULL;
    float full[R * C], x[ROWS * C], *xs, *out;
    double max_err = 0.0;
    int i, k, r, o;
    unsigned seed = 99;

    fp8_weight_init(&w, R, C, 8, 16, 4242);
    w.t.scale_exact = 1;
    glm_tensor_to_f32(&w.t, 0, R * C, full);
    for (i = 0; i < ROWS * C; i++) {
        seed = seed * 1103515245u + 12345u;
        x[i] = (float) ((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
    xs = be->alloc(be, ROWS * C * sizeof(float));
    out = be->alloc(be, ROWS * R * sizeof(float));
    for (i = 0; i < 6; i++) {
        int c0 = starts[i][0], n = starts[i][1];
        glm_tensor *cs = glm_shard_cols(&store, &w.t, c0, n);
        double err = 0.0;

        for (r = 0; r < ROWS; r++) {
            memcpy(xs + r * n, x + r * C + c0, (size_t) n * sizeof(float));
        }
        be->matmul(be, out, xs, ROWS, cs, NULL);
        for (r = 0; r < ROWS; r++) {
            for (o = 0; o < R; o++) {
                double want = 0.0;
                for (k = 0; k < n; k++) {
                    want += (double) x[r * C + c0 + k] * full[o * C + c0 + k];
                }
                err = fmax(err, fabs(out[r * R + o] - want));
            }
        }
        printf("matmul: columns [%d, %d) of a %dx%d FP8 weight, 8x16 blocks (%s path):"
               " max_abs_err=%.3g\n", c0, c0 + n, R, C, c0 % 16 ? "dequantizing" : "scaled",
               err);
        max_err = fmax(max_err, err);
    }
    CHECK(max_err <= 1e-4, "matmul over column shards: max error %g", max_err);
    be->free(be, xs);
    be->free(be, out);
    be->destroy(be);
    glm_shard_store_free(store);
    free(w.q);
    free(w.scale);
}

int
main(void)
{
    test_heads();
    test_column_shards();
    test_matmul_shards();
    printf("test_shard: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
