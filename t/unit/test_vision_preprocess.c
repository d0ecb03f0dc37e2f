/*
 * test_vision_preprocess.c: the GLM-4V preprocessing against transformers
 * 5.23, Pillow 13 and torchvision 0.29 (t/reference/make_preproc_fixtures.py
 * wrote their answers into t/fixtures/preproc/preproc_reference.json).
 *
 *   test_vision_preprocess [FIXTURE_DIR [MEDIA_DIR]]
 *       (defaults t/fixtures/preproc, t/fixtures/media)
 *
 *  1. smart_resize on thousands of generated (frames, h, w, min, max) tuples
 *     and hand-picked edges, error messages included;
 *  2. bicubic resizing, PIL and torch variants, AVX2 and scalar kernels:
 *     md5 of the output bytes for images the script and this file both
 *     generate from a seed;
 *  3. glm_preprocess_image / glm_preprocess_video: grid, md5 of the float32
 *     pixel values (and the largest error at sampled positions when the md5
 *     differs), the video's frame-pair timestamps; 1 and 3 threads give the
 *     same bytes; and the decoder's fixture images through glm_image_decode
 *     + glm_preprocess_image against load_image + the processor;
 *  4. the samplers: Glm4vVideoProcessor.sample_frames and vLLM's uniform
 *     sampling on hundreds of videos;
 *  5. bad input: refused with a message, never a crash (ASan/UBSan build).
 *
 * Prints "PREPROC_MATCH ..." lines with the match rates, then
 * "vision_preprocess: N passed, M failed"; exits 1 on any failure.
 */
#include "media/media.h"
#include "media/resize_bicubic.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "util/json.h"

static int passed, failed, shown;

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
check(int ok, const char *fmt, ...)
{
    va_list ap;

    if (ok) {
        passed++;
        return;
    }
    failed++;
    if (shown++ < 40) {
        printf("FAIL ");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
    }
}

/* ---- MD5 (RFC 1321) ------------------------------------------------------- */

typedef struct {
    uint32_t h[4];
    uint64_t len;
    uint8_t  buf[64];
    size_t   fill;
} md5_ctx;

static uint32_t md5_k[64];
static const int md5_r[64] = {
    7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
    5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
    4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
    6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21 };

static void
md5_init(md5_ctx *c)
{
    int i;

    for (i = 0; i < 64; i++) {
        md5_k[i] = (uint32_t) floor(fabs(sin(i + 1.0)) * 4294967296.0);
    }
    c->h[0] = 0x67452301;
    c->h[1] = 0xefcdab89;
    c->h[2] = 0x98badcfe;
    c->h[3] = 0x10325476;
    c->len = 0;
    c->fill = 0;
}

static void
md5_block(md5_ctx *c, const uint8_t *p)
{
    uint32_t m[16], a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], f, t;
    int i, g;

    for (i = 0; i < 16; i++) {
        m[i] = (uint32_t) p[4 * i] | (uint32_t) p[4 * i + 1] << 8
            | (uint32_t) p[4 * i + 2] << 16 | (uint32_t) p[4 * i + 3] << 24;
    }
    for (i = 0; i < 64; i++) {
        if (i < 16) {
            f = (b & cc) | (~b & d);
            g = i;
        } else if (i < 32) {
            f = (d & b) | (~d & cc);
            g = (5 * i + 1) % 16;
        } else if (i < 48) {
            f = b ^ cc ^ d;
            g = (3 * i + 5) % 16;
        } else {
            f = cc ^ (b | ~d);
            g = (7 * i) % 16;
        }
        t = d;
        d = cc;
        cc = b;
        f = a + f + md5_k[i] + m[g];
        b = b + ((f << md5_r[i]) | (f >> (32 - md5_r[i])));
        a = t;
    }
    c->h[0] += a;
    c->h[1] += b;
    c->h[2] += cc;
    c->h[3] += d;
}

static void
md5_update(md5_ctx *c, const void *data, size_t n)
{
    const uint8_t *p = data;

    c->len += n;
    while (n > 0) {
        size_t take = 64 - c->fill < n ? 64 - c->fill : n;
        memcpy(c->buf + c->fill, p, take);
        c->fill += take;
        p += take;
        n -= take;
        if (c->fill == 64) {
            md5_block(c, c->buf);
            c->fill = 0;
        }
    }
}

static void
md5_hex(md5_ctx *c, char out[33])
{
    uint64_t bits = c->len * 8;
    uint8_t pad = 0x80, zero = 0, lenb[8];
    int i;

    md5_update(c, &pad, 1);
    while (c->fill != 56) {
        md5_update(c, &zero, 1);
    }
    for (i = 0; i < 8; i++) {
        lenb[i] = (uint8_t) (bits >> (8 * i));
    }
    md5_update(c, lenb, 8);
    for (i = 0; i < 16; i++) {
        sprintf(out + 2 * i, "%02x", (c->h[i / 4] >> (8 * (i % 4))) & 0xff);
    }
}

static void
md5_of(const void *data, size_t n, char out[33])
{
    md5_ctx c;

    md5_init(&c);
    md5_update(&c, data, n);
    md5_hex(&c, out);
}

/* ---- the generated inputs (mirrors make_preproc_fixtures.py) ----------------- */

static uint32_t
hash32(uint32_t i, uint32_t seed)
{
    uint32_t h = i * 0x9E3779B1u + seed * 0x85EBCA77u + 0x165667B1u;

    h ^= h >> 15;
    h *= 0x2C1B3C6Du;
    h ^= h >> 12;
    h *= 0x297A2D39u;
    h ^= h >> 15;
    return h;
}

static uint8_t *
make_image(int w, int h, int kind, uint32_t seed)
{
    size_t n = (size_t) w * h * 3, i;
    uint8_t *p = malloc(n ? n : 1);

    for (i = 0; i < n; i++) {
        uint32_t hv = hash32((uint32_t) i, seed);
        if (kind == 0) {
            p[i] = (uint8_t) (hv >> 24);
        } else {
            uint32_t c = (uint32_t) (i % 3), x = (uint32_t) ((i / 3) % (size_t) w);
            uint32_t y = (uint32_t) (i / (3 * (size_t) w));
            p[i] = (uint8_t) (((x * (3 * c + 5) + y * (2 * c + 7)) / 4 + (hv >> 27)) % 256);
        }
    }
    return p;
}

static uint32_t
fnv1a32_ints(const int *v, int n)
{
    uint32_t h = 0x811C9DC5u;
    int i, b;

    for (i = 0; i < n; i++) {
        uint32_t u = (uint32_t) v[i];
        for (b = 0; b < 4; b++) {
            h = (h ^ ((u >> (8 * b)) & 0xff)) * 0x01000193u;
        }
    }
    return h;
}

/* ---- JSON helpers ---------------------------------------------------------- */

static long long
jint(yajl_val v)
{
    return v != NULL && YAJL_IS_INTEGER(v) ? YAJL_GET_INTEGER(v) : -999999;
}

static double
jnum(yajl_val v)
{
    return v != NULL && YAJL_IS_NUMBER(v) ? YAJL_GET_DOUBLE(v) : NAN;
}

static yajl_val
jat(yajl_val arr, size_t i)
{
    return arr != NULL && YAJL_IS_ARRAY(arr) && i < arr->u.array.len
        ? arr->u.array.values[i] : NULL;
}

static size_t
jlen(yajl_val arr)
{
    return arr != NULL && YAJL_IS_ARRAY(arr) ? arr->u.array.len : 0;
}

static const char *
jstr(yajl_val v)
{
    return v != NULL && YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
}

/* ---- 1. smart_resize ---------------------------------------------------------- */

static const int64_t pixel_bounds[5][2] = {
    { 12544, 9633792 }, { 12544, 47040000 }, { 112 * 112, 28 * 28 * 15000 },
    { 3136, 12845056 }, { 56 * 56, 28 * 28 * 1280 } };

static void
test_smart_resize(yajl_val sec)
{
    yajl_val expected = glm_json_get(sec, "expected"), edges = glm_json_get(sec, "edges");
    uint32_t seed = (uint32_t) jint(glm_json_get(sec, "seed"));
    size_t n = jlen(expected), k, match = 0;
    static const int sides[5] = { 27, 60, 600, 6000, 40000 };

    for (k = 0; k < n; k++) {
        uint32_t r[8];
        int frames, h, w, oh = 0, ow = 0, rc, j, sel;
        int64_t lo, hi;
        glm_err err;
        yajl_val e = jat(expected, k);

        for (j = 0; j < 8; j++) {
            r[j] = hash32((uint32_t) (8 * k + j), seed);
        }
        sel = (int) (r[0] % 10);
        frames = sel < 5 ? 2 : 1 + (int) (r[1] % (sel < 6 ? 3u : 1200u));
        h = 1 + (int) (r[2] % (uint32_t) sides[r[3] % 5]);
        w = 1 + (int) (r[4] % (uint32_t) sides[r[5] % 5]);
        if (r[6] % 7 < 5) {
            lo = pixel_bounds[r[6] % 5][0];
            hi = pixel_bounds[r[6] % 5][1];
        } else {
            lo = 1 + r[7] % 200000;
            hi = lo + r[6] % 60000000;
        }
        rc = glm_smart_resize(frames, h, w, 28, 2, lo, hi, &oh, &ow, &err);
        if (jint(jat(e, 0)) == -1) {
            int code = (int) jint(jat(e, 1));
            int ok = rc < 0 && (code == 1 ? strncmp(err.msg, "t:", 2) == 0
                : strncmp(err.msg, "absolute aspect ratio", 21) == 0);
            match += ok;
            check(ok, "smart_resize(%d, %d, %d, %lld, %lld): expected error %d, got %s",
                frames, h, w, (long long) lo, (long long) hi, code,
                rc < 0 ? err.msg : "success");
        } else {
            int ok = rc == 0 && oh == jint(jat(e, 0)) && ow == jint(jat(e, 1));
            match += ok;
            check(ok, "smart_resize(%d, %d, %d, %lld, %lld) = %dx%d, expected %lldx%lld%s%s",
                frames, h, w, (long long) lo, (long long) hi, oh, ow,
                jint(jat(e, 0)), jint(jat(e, 1)), rc < 0 ? ": " : "", rc < 0 ? err.msg : "");
        }
    }
    for (k = 0; k < jlen(edges); k++) {
        yajl_val c = jat(edges, k), in = glm_json_get(c, "in"), out = glm_json_get(c, "out");
        const char *msg = jstr(glm_json_get(c, "error"));
        int oh = 0, ow = 0, rc;
        glm_err err;

        rc = glm_smart_resize((int) jint(jat(in, 0)), (int) jint(jat(in, 1)),
            (int) jint(jat(in, 2)), 28, 2, jint(jat(in, 3)), jint(jat(in, 4)), &oh, &ow, &err);
        if (msg != NULL) {
            check(rc < 0 && strcmp(err.msg, msg) == 0, "smart_resize edge %zu: '%s', expected '%s'",
                k, rc < 0 ? err.msg : "success", msg);
        } else {
            check(rc == 0 && oh == jint(jat(out, 0)) && ow == jint(jat(out, 1)),
                "smart_resize edge %zu (%lld, %lld, %lld): %dx%d, expected %lldx%lld", k,
                jint(jat(in, 0)), jint(jat(in, 1)), jint(jat(in, 2)), oh, ow,
                jint(jat(out, 0)), jint(jat(out, 1)));
        }
        match += msg != NULL ? rc < 0 && strcmp(err.msg, msg) == 0
                             : rc == 0 && oh == jint(jat(out, 0)) && ow == jint(jat(out, 1));
    }
    printf("PREPROC_MATCH smart_resize %zu/%zu\n", match, n + jlen(edges));
}

/* ---- 2. resize ------------------------------------------------------------------ */

static void
test_resize(yajl_val sec)
{
    size_t k, n = jlen(sec);
    int match[2][2] = { { 0, 0 }, { 0, 0 } }, total[2] = { 0, 0 };
    int64_t bytes_differ_pil_torch = 0;

    for (k = 0; k < n; k++) {
        yajl_val c = jat(sec, k);
        int sw = (int) jint(jat(glm_json_get(c, "src"), 0));
        int sh = (int) jint(jat(glm_json_get(c, "src"), 1));
        int dw = (int) jint(jat(glm_json_get(c, "dst"), 0));
        int dh = (int) jint(jat(glm_json_get(c, "dst"), 1));
        int kind = (int) jint(glm_json_get(c, "kind"));
        uint32_t seed = (uint32_t) jint(glm_json_get(c, "seed"));
        const char *want[2] = { jstr(glm_json_get(c, "pil_md5")),
                                jstr(glm_json_get(c, "torch_md5")) };
        uint8_t *src = make_image(sw, sh, kind, seed);
        uint8_t *dst = malloc(3 * (size_t) dw * dh);
        char got[33];
        int variant, simd;

        for (variant = 0; variant < 2; variant++) {
            if (want[variant] == NULL) {
                continue;               /* torch itself fails on this size */
            }
            total[variant]++;
            for (simd = 1; simd >= 0; simd--) {
                int rc = glm_resize_bicubic_rgb_variant(src, sw, sh, dst, dw, dh,
                    variant, simd);
                md5_of(dst, 3 * (size_t) dw * dh, got);
                match[variant][simd] += rc == 0 && strcmp(got, want[variant]) == 0;
                check(rc == 0 && strcmp(got, want[variant]) == 0,
                    "resize %s %s %dx%d -> %dx%d kind %d: md5 %s, expected %s",
                    variant ? "torch" : "pil", simd ? "avx2" : "scalar", sw, sh, dw, dh,
                    kind, got, want[variant]);
            }
        }
        if (want[1] != NULL) {
            bytes_differ_pil_torch += jint(glm_json_get(c, "pil_torch_differ"));
        }
        free(src);
        free(dst);
    }
    printf("PREPROC_MATCH resize_pil avx2=%d/%d scalar=%d/%d\n",
        match[0][1], total[0], match[0][0], total[0]);
    printf("PREPROC_MATCH resize_torch avx2=%d/%d scalar=%d/%d"
        " (PIL and torch outputs differ in %lld bytes of these cases)\n",
        match[1][1], total[1], match[1][0], total[1], (long long) bytes_differ_pil_torch);

    /* the public wrappers are the variants */
    {
        uint8_t *src = make_image(37, 23, 0, 5), a[3 * 50 * 17], b[3 * 50 * 17];
        check(glm_resize_bicubic_rgb(src, 37, 23, a, 50, 17) == 0
            && glm_resize_bicubic_rgb_variant(src, 37, 23, b, 50, 17, GLM_RESAMPLE_PIL, 0) == 0
            && memcmp(a, b, sizeof(a)) == 0, "glm_resize_bicubic_rgb is the PIL variant");
        check(glm_resize_bicubic_rgb_torch(src, 37, 23, a, 50, 17) == 0
            && glm_resize_bicubic_rgb_variant(src, 37, 23, b, 50, 17, GLM_RESAMPLE_TORCH, 0) == 0
            && memcmp(a, b, sizeof(a)) == 0, "glm_resize_bicubic_rgb_torch is the torch variant");
        check(glm_resize_bicubic_rgb(src, 0, 23, a, 50, 17) < 0
            && glm_resize_bicubic_rgb(src, 37, 23, a, 50, -1) < 0
            && glm_resize_bicubic_rgb(NULL, 37, 23, a, 50, 17) < 0, "bad sizes refused");
        free(src);
    }
}

/* ---- 3. processors -------------------------------------------------------------- */

static void
compare_pixels(const char *what, yajl_val c, const float *pv, size_t n)
{
    const char *want = jstr(glm_json_get(c, "md5"));
    yajl_val samples = glm_json_get(c, "samples");
    size_t stride = (size_t) jint(glm_json_get(c, "sample_stride")), i;
    double maxerr = 0;
    char got[33];

    md5_of(pv, n * sizeof(float), got);
    for (i = 0; i < jlen(samples) && i * stride < n; i++) {
        double e = fabs(pv[i * stride] - jnum(jat(samples, i)));
        if (e > maxerr) {
            maxerr = e;
        }
    }
    check(want != NULL && strcmp(got, want) == 0,
        "%s: pixel_values md5 %s, expected %s (max error at %zu sampled values %.3g)",
        what, got, want ? want : "?", jlen(samples), maxerr);
    check(maxerr <= 1e-6, "%s: sampled values differ by %.3g", what, maxerr);
}

static void
proc_from_case(yajl_val c, glm_vision_proc *p, int video)
{
    yajl_val size = glm_json_get(c, "size");

    if (video) {
        glm_vision_proc_default_video(p);
    } else {
        glm_vision_proc_default_image(p);
    }
    p->min_pixels = jint(glm_json_get(size, "shortest_edge"));
    p->max_pixels = jint(glm_json_get(size, "longest_edge"));
}

static void
test_images(yajl_val sec)
{
    size_t k;
    int match = 0;

    for (k = 0; k < jlen(sec); k++) {
        yajl_val c = jat(sec, k), grid = glm_json_get(c, "grid");
        glm_image im;
        glm_vision_proc p;
        glm_vision_input a, b;
        glm_err err;
        char what[96];
        int rc;

        memset(&im, 0, sizeof(im));
        im.width = (int) jint(jat(glm_json_get(c, "src"), 0));
        im.height = (int) jint(jat(glm_json_get(c, "src"), 1));
        im.rgb = make_image(im.width, im.height, (int) jint(glm_json_get(c, "kind")),
            (uint32_t) jint(glm_json_get(c, "seed")));
        proc_from_case(c, &p, 0);
        snprintf(what, sizeof(what), "image %dx%d", im.width, im.height);
        rc = glm_preprocess_image(&im, &p, &a, &err);
        check(rc == 0, "%s: %s", what, rc < 0 ? err.msg : "");
        if (rc == 0) {
            int ok = a.grid_t == jint(jat(grid, 0)) && a.grid_h == jint(jat(grid, 1))
                && a.grid_w == jint(jat(grid, 2)) && a.patch_dim == 1176
                && a.n_patches == (int64_t) a.grid_h * a.grid_w && a.pair_seconds == NULL;
            check(ok, "%s: grid %d,%d,%d, expected %lld,%lld,%lld", what, a.grid_t,
                a.grid_h, a.grid_w, jint(jat(grid, 0)), jint(jat(grid, 1)), jint(jat(grid, 2)));
            if (ok) {
                int before = failed;
                compare_pixels(what, c, a.pixel_values, (size_t) a.n_patches * a.patch_dim);
                match += failed == before;
                p.threads = 3;
                rc = glm_preprocess_image(&im, &p, &b, &err);
                check(rc == 0 && b.n_patches == a.n_patches
                    && memcmp(a.pixel_values, b.pixel_values,
                        sizeof(float) * (size_t) a.n_patches * a.patch_dim) == 0,
                    "%s: 3 threads give other pixel values", what);
                glm_vision_input_free(&b);
            }
            check(glm_vision_tokens(&a, 2) == a.n_patches / 4, "%s: tokens", what);
            glm_vision_input_free(&a);
        }
        free(im.rgb);
    }
    printf("PREPROC_MATCH image_pixel_values %d/%zu\n", match, jlen(sec));
}

static void
test_videos(yajl_val sec)
{
    size_t k;
    int match = 0;

    for (k = 0; k < jlen(sec); k++) {
        yajl_val c = jat(sec, k), grid = glm_json_get(c, "grid");
        yajl_val seeds = glm_json_get(c, "seeds"), fidx = glm_json_get(c, "frame_index");
        yajl_val stamps = glm_json_get(c, "pair_seconds");
        glm_video v;
        glm_vision_proc p;
        glm_vision_input a, b;
        glm_err err;
        char what[96];
        size_t frame_bytes;
        int rc, f, i;

        memset(&v, 0, sizeof(v));
        v.n_frames = (int) jint(glm_json_get(c, "frames"));
        v.width = (int) jint(jat(glm_json_get(c, "src"), 0));
        v.height = (int) jint(jat(glm_json_get(c, "src"), 1));
        v.meta.fps = jnum(glm_json_get(c, "fps"));
        frame_bytes = 3 * (size_t) v.width * v.height;
        v.rgb = malloc(frame_bytes * v.n_frames);
        v.frame_index = malloc(sizeof(int) * v.n_frames);
        for (f = 0; f < v.n_frames; f++) {
            uint8_t *fr = make_image(v.width, v.height, (int) jint(glm_json_get(c, "kind")),
                (uint32_t) jint(jat(seeds, f)));
            memcpy(v.rgb + f * frame_bytes, fr, frame_bytes);
            free(fr);
            v.frame_index[f] = (int) jint(jat(fidx, f));
        }
        v.meta.total_frames = v.frame_index[v.n_frames - 1] + 1;
        proc_from_case(c, &p, 1);
        snprintf(what, sizeof(what), "video %d x %dx%d", v.n_frames, v.width, v.height);
        rc = glm_preprocess_video(&v, &p, &a, &err);
        check(rc == 0, "%s: %s", what, rc < 0 ? err.msg : "");
        if (rc == 0) {
            int ok = a.grid_t == jint(jat(grid, 0)) && a.grid_h == jint(jat(grid, 1))
                && a.grid_w == jint(jat(grid, 2))
                && a.n_patches == (int64_t) a.grid_t * a.grid_h * a.grid_w;
            check(ok, "%s: grid %d,%d,%d, expected %lld,%lld,%lld", what, a.grid_t,
                a.grid_h, a.grid_w, jint(jat(grid, 0)), jint(jat(grid, 1)), jint(jat(grid, 2)));
            if (ok) {
                int before = failed;
                compare_pixels(what, c, a.pixel_values, (size_t) a.n_patches * a.patch_dim);
                for (i = 0; i < a.grid_t; i++) {
                    check(a.pair_seconds[i] == jint(jat(stamps, i)),
                        "%s: pair %d at %d s, expected %lld", what, i, a.pair_seconds[i],
                        jint(jat(stamps, i)));
                }
                match += failed == before;
                p.threads = 3;
                rc = glm_preprocess_video(&v, &p, &b, &err);
                check(rc == 0 && b.n_patches == a.n_patches
                    && memcmp(a.pixel_values, b.pixel_values,
                        sizeof(float) * (size_t) a.n_patches * a.patch_dim) == 0,
                    "%s: 3 threads give other pixel values", what);
                glm_vision_input_free(&b);
            }
            glm_vision_input_free(&a);
        }
        free(v.rgb);
        free(v.frame_index);
    }
    printf("PREPROC_MATCH video_pixel_values %d/%zu\n", match, jlen(sec));
}

/* The decoder's fixture files through glm_image_decode and the image
 * processor: transformers' load_image + processor give these md5s. */
static void
test_end_to_end(yajl_val sec, const char *media_dir)
{
    size_t k;
    int match = 0, keys_missing = 0;

    for (k = 0; k < jlen(sec); k++) {
        yajl_val c = jat(sec, k), grid = glm_json_get(c, "grid");
        const char *name = jstr(glm_json_get(c, "file")), *want = jstr(glm_json_get(c, "md5"));
        char path[512], got[33] = "";
        glm_vision_proc p;
        glm_vision_input vi;
        glm_image im;
        glm_err err;
        size_t len;
        char *data;
        int ok = 0;

        snprintf(path, sizeof(path), "%s/%s", media_dir, name ? name : "?");
        data = glm_read_file(path, &len, &err);
        if (data == NULL) {
            check(0, "end to end: %s", err.msg);
            continue;
        }
        glm_vision_proc_default_image(&p);
        if (glm_image_decode((const uint8_t *) data, len, NULL, &im, &err) < 0) {
            check(0, "end to end %s: decode: %s", name, err.msg);
        } else {
            yajl_val key = glm_json_get(c, "key");
            if (jlen(key) == 3) {
                int i;
                if (!im.has_key) {
                    /* the decoder's half: PIL's info["transparency"] */
                    printf("NOTE end to end %s: the decoder reports no transparent colour,"
                        " PIL keeps (%lld, %lld, %lld); using the fixture's\n", name,
                        jint(jat(key, 0)), jint(jat(key, 1)), jint(jat(key, 2)));
                    keys_missing++;
                } else {
                    check(im.key_rgb[0] == jint(jat(key, 0)) && im.key_rgb[1] == jint(jat(key, 1))
                        && im.key_rgb[2] == jint(jat(key, 2)), "end to end %s: key colour", name);
                }
                im.has_key = 1;
                for (i = 0; i < 3; i++) {
                    im.key_rgb[i] = (uint8_t) jint(jat(key, i));
                }
            } else {
                check(!im.has_key, "end to end %s: the decoder reports a key colour PIL"
                    " does not keep", name);
            }
            if (glm_preprocess_image(&im, &p, &vi, &err) < 0) {
                check(0, "end to end %s: %s", name, err.msg);
            } else {
                md5_of(vi.pixel_values, sizeof(float) * (size_t) vi.n_patches * vi.patch_dim, got);
                ok = vi.grid_h == jint(jat(grid, 1)) && vi.grid_w == jint(jat(grid, 2))
                    && want != NULL && strcmp(got, want) == 0;
                check(ok, "end to end %s (%dx%d): grid %d,%d md5 %s, expected %lld,%lld %s",
                    name, im.width, im.height, vi.grid_h, vi.grid_w, got,
                    jint(jat(grid, 1)), jint(jat(grid, 2)), want ? want : "?");
                glm_vision_input_free(&vi);
            }
            glm_image_free(&im);
        }
        match += ok;
        free(data);
    }
    printf("PREPROC_MATCH end_to_end_decode_preprocess %d/%zu%s\n", match, jlen(sec),
        keys_missing ? " (transparent colours from the fixture, see NOTE)" : "");
}

/* A large image through several threads equals one thread (rows split
 * unevenly, both pass orders, the torch variant). */
static void
test_threads(void)
{
    static const int sizes[][2] = { { 1000, 700 }, { 700, 1000 }, { 640, 2000 } };
    size_t s;

    for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        glm_image im;
        glm_video v;
        glm_vision_proc p;
        glm_vision_input a, b;
        glm_err err;
        int t;

        memset(&im, 0, sizeof(im));
        im.width = sizes[s][0];
        im.height = sizes[s][1];
        im.rgb = make_image(im.width, im.height, 1, 42 + (uint32_t) s);
        glm_vision_proc_default_image(&p);
        p.max_pixels = 784 * 2 * 300;     /* a downscale */
        if (s == 2) {
            p.max_pixels = 9633792;
        }
        check(glm_preprocess_image(&im, &p, &a, &err) == 0, "threads: %s", err.msg);
        for (t = 2; t <= 7; t += 5) {
            p.threads = t;
            check(glm_preprocess_image(&im, &p, &b, &err) == 0
                && memcmp(a.pixel_values, b.pixel_values,
                    sizeof(float) * (size_t) a.n_patches * a.patch_dim) == 0,
                "image %dx%d: %d threads differ from 1", im.width, im.height, t);
            glm_vision_input_free(&b);
        }
        glm_vision_input_free(&a);

        memset(&v, 0, sizeof(v));
        v.n_frames = 3;
        v.width = im.width;
        v.height = im.height / 3;
        v.rgb = im.rgb;                 /* 3 frames of a third of the height */
        v.meta.fps = 30;
        glm_vision_proc_default_video(&p);
        check(glm_preprocess_video(&v, &p, &a, &err) == 0, "threads video: %s", err.msg);
        p.threads = 4;
        check(glm_preprocess_video(&v, &p, &b, &err) == 0
            && memcmp(a.pixel_values, b.pixel_values,
                sizeof(float) * (size_t) a.n_patches * a.patch_dim) == 0,
            "video %dx%d: 4 threads differ from 1", v.width, v.height);
        check(a.pair_seconds != NULL && a.pair_seconds[0] == 0 && a.pair_seconds[1] == 0,
            "video without frame_index: pair seconds from positions");
        glm_vision_input_free(&a);
        glm_vision_input_free(&b);
        free(im.rgb);
    }
}

/* A key colour turns exactly its pixels white, as convert_to_rgb's
 * composite on white does. */
static void
test_key_colour(void)
{
    glm_image a, b;
    glm_vision_proc p;
    glm_vision_input va, vb;
    glm_err err;
    size_t i, n = 90 * 60;

    memset(&a, 0, sizeof(a));
    a.width = 90;
    a.height = 60;
    a.rgb = make_image(90, 60, 1, 77);
    for (i = 0; i < n; i += 7) {          /* plant the key colour */
        a.rgb[3 * i] = 10;
        a.rgb[3 * i + 1] = 20;
        a.rgb[3 * i + 2] = 30;
    }
    b = a;
    b.rgb = malloc(3 * n);
    for (i = 0; i < n; i++) {
        int key = a.rgb[3 * i] == 10 && a.rgb[3 * i + 1] == 20 && a.rgb[3 * i + 2] == 30;
        b.rgb[3 * i] = key ? 255 : a.rgb[3 * i];
        b.rgb[3 * i + 1] = key ? 255 : a.rgb[3 * i + 1];
        b.rgb[3 * i + 2] = key ? 255 : a.rgb[3 * i + 2];
    }
    a.has_key = 1;
    a.key_rgb[0] = 10;
    a.key_rgb[1] = 20;
    a.key_rgb[2] = 30;
    glm_vision_proc_default_image(&p);
    check(glm_preprocess_image(&a, &p, &va, &err) == 0
        && glm_preprocess_image(&b, &p, &vb, &err) == 0
        && va.n_patches == vb.n_patches
        && memcmp(va.pixel_values, vb.pixel_values,
            sizeof(float) * (size_t) va.n_patches * va.patch_dim) == 0,
        "key colour: its pixels become white, nothing else changes");
    check(a.rgb[0] == 10 && a.rgb[2] == 30, "key colour: the input is left alone");
    glm_vision_input_free(&va);
    glm_vision_input_free(&vb);
    free(a.rgb);
    free(b.rgb);
}

/* ---- 4. samplers ---------------------------------------------------------------- */

static void
check_indices(const char *what, const int *idx, int n, yajl_val c, int at, int *match)
{
    long long wn = jint(jat(c, at)), wh = jint(jat(c, at + 1));
    long long wf = jint(jat(c, at + 2)), wl = jint(jat(c, at + 3));
    int ok = n == wn && (long long) fnv1a32_ints(idx, n) == wh
        && (n == 0 || (idx[0] == wf && idx[n - 1] == wl));

    *match += ok;
    check(ok, "%s: %d frames [%d..%d], expected %lld [%lld..%lld]%s", what, n,
        n > 0 ? idx[0] : -1, n > 0 ? idx[n - 1] : -1, wn, wf, wl,
        n == wn ? " (other indices)" : "");
}

static void
test_samplers(yajl_val fps_sec, yajl_val uni_sec)
{
    size_t k;
    int match = 0;
    glm_err err;

    for (k = 0; k < jlen(fps_sec); k++) {
        yajl_val c = jat(fps_sec, k);
        glm_video_meta meta;
        glm_vision_proc p;
        int *idx, n;
        char what[160];

        meta.total_frames = (int) jint(jat(c, 0));
        meta.fps = jnum(jat(c, 1));
        meta.duration = jnum(jat(c, 2));
        glm_vision_proc_default_video(&p);
        p.fps = jnum(jat(c, 3));
        p.max_duration = jnum(jat(c, 4));
        idx = malloc(sizeof(int) * ((size_t) meta.total_frames + 2));
        snprintf(what, sizeof(what), "sample_frames(total %d, fps %.17g, duration %.17g,"
            " target %g, max %g)", meta.total_frames, meta.fps, meta.duration, p.fps,
            p.max_duration);
        n = glm_sample_frames_fps(&p, &meta, idx, meta.total_frames + 2, &err);
        if (n < 0) {
            check(0, "%s: %s", what, err.msg);
        } else {
            check_indices(what, idx, n, c, 5, &match);
        }
        free(idx);
    }
    printf("PREPROC_MATCH sample_frames_fps %d/%zu\n", match, jlen(fps_sec));

    match = 0;
    for (k = 0; k < jlen(uni_sec); k++) {
        yajl_val c = jat(uni_sec, k);
        glm_video_meta meta = { 0, 30.0, 0.0 };
        int num = (int) jint(jat(c, 1)), *idx, n;
        char what[96];

        meta.total_frames = (int) jint(jat(c, 0));
        idx = malloc(sizeof(int) * ((size_t) meta.total_frames + 2));
        snprintf(what, sizeof(what), "sample_uniform(total %d, num_frames %d)",
            meta.total_frames, num);
        n = glm_sample_uniform(&num, &meta, idx, meta.total_frames + 2, &err);
        if (n < 0) {
            check(0, "%s: %s", what, err.msg);
        } else {
            check_indices(what, idx, n, c, 2, &match);
        }
        free(idx);
    }
    printf("PREPROC_MATCH sample_uniform %d/%zu\n", match, jlen(uni_sec));

    /* limits and bad metadata */
    {
        glm_vision_proc p;
        glm_video_meta meta = { 1000, 30.0, 0.0 };
        int idx[8], num = 100;

        glm_vision_proc_default_video(&p);
        check(glm_sample_frames_fps(&p, &meta, idx, 8, &err) < 0
            && strstr(err.msg, "more than 8") != NULL, "fps sampler: max_idx enforced");
        check(glm_sample_uniform(&num, &meta, idx, 8, &err) < 0, "uniform: max_idx enforced");
        meta.fps = 0;
        check(glm_sample_frames_fps(&p, &meta, idx, 8, &err) < 0, "fps 0 refused");
        meta.fps = NAN;
        check(glm_sample_frames_fps(&p, &meta, idx, 8, &err) < 0, "fps NaN refused");
        meta.fps = 30;
        meta.total_frames = 0;
        check(glm_sample_frames_fps(&p, &meta, idx, 8, &err) < 0
            && glm_sample_uniform(&num, &meta, idx, 8, &err) < 0, "no frames refused");
        meta.total_frames = 1;
        check(glm_sample_frames_fps(&p, &meta, idx, 8, &err) == 2 && idx[0] == 0 && idx[1] == 0,
            "one frame: sampled twice");
        check(glm_sample_frames_fps(NULL, &meta, idx, 8, &err) < 0
            && glm_sample_uniform(NULL, &meta, idx, 8, &err) < 0, "no context refused");
    }
}

/* ---- 5. bad input ------------------------------------------------------------------ */

static void
test_bad_input(void)
{
    glm_vision_proc p;
    glm_vision_input out;
    glm_image im;
    glm_video v;
    glm_err err;
    uint8_t px[3 * 4] = { 0 };
    int h, w;

    glm_vision_proc_default_image(&p);
    check(p.min_pixels == 12544 && p.max_pixels == 9633792 && p.patch_size == 14
        && p.temporal_patch_size == 2 && p.merge_size == 2 && p.threads == 1
        && fabsf(p.mean[0] - 0.48145466f) == 0 && fabsf(p.std[2] - 0.27577711f) == 0,
        "image defaults");
    glm_vision_proc_default_video(&p);
    check(p.max_pixels == 47040000 && p.fps == 2 && p.max_duration == 300, "video defaults");

    glm_vision_proc_default_image(&p);
    memset(&im, 0, sizeof(im));
    im.width = 0;
    im.height = 4;
    im.rgb = px;
    check(glm_preprocess_image(&im, &p, &out, &err) < 0 && out.pixel_values == NULL,
        "empty image refused");
    im.width = 1;
    im.rgb = NULL;
    check(glm_preprocess_image(&im, &p, &out, &err) < 0, "image without pixels refused");
    im.width = 1000;
    im.height = 1;
    im.rgb = malloc(3000);
    memset(im.rgb, 7, 3000);
    check(glm_preprocess_image(&im, &p, &out, &err) < 0
        && strstr(err.msg, "absolute aspect ratio must be smaller than 200, got 1000.0"),
        "aspect ratio refused: %s", err.msg);
    free(im.rgb);
    p.patch_size = 0;
    im.width = 2;
    im.height = 2;
    im.rgb = px;
    check(glm_preprocess_image(&im, &p, &out, &err) < 0, "patch size 0 refused");

    glm_vision_proc_default_video(&p);
    memset(&v, 0, sizeof(v));
    v.n_frames = 1;
    v.width = 2;
    v.height = 2;
    v.rgb = px;
    check(glm_preprocess_video(&v, &p, &out, &err) < 0
        && strcmp(err.msg, "t:1 must be larger than temporal_factor:2") == 0,
        "one-frame video refused as the processor does: %s", err.msg);
    v.n_frames = 0;
    check(glm_preprocess_video(&v, &p, &out, &err) < 0, "no frames refused");

    check(glm_smart_resize(2, 0, 10, 28, 2, 1, 100, &h, &w, &err) < 0, "height 0 refused");
    check(glm_smart_resize(2, 10, 10, 28, 2, 1, 0, &h, &w, &err) < 0, "max_pixels 0 refused");
    check(glm_smart_resize(2, 1 << 25, 10, 28, 2, 1, 100, &h, &w, &err) < 0, "huge refused");
    glm_vision_input_free(NULL);
}

int
main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "t/fixtures/preproc";
    const char *media_dir = argc > 2 ? argv[2] : "t/fixtures/media";
    char path[512], errbuf[256];
    glm_err err;
    size_t len;
    char *text;
    yajl_val root;

    snprintf(path, sizeof(path), "%s/preproc_reference.json", dir);
    text = glm_read_file(path, &len, &err);
    if (text == NULL) {
        printf("FAIL %s\n", err.msg);
        return 1;
    }
    root = yajl_tree_parse(text, errbuf, sizeof(errbuf));
    free(text);
    if (root == NULL) {
        printf("FAIL %s: %s\n", path, errbuf);
        return 1;
    }

    test_smart_resize(glm_json_get(root, "smart_resize"));
    test_resize(glm_json_get(root, "resize"));
    test_images(glm_json_get(root, "image"));
    test_videos(glm_json_get(root, "video"));
    test_end_to_end(glm_json_get(root, "end_to_end"), media_dir);
    test_threads();
    test_key_colour();
    test_samplers(glm_json_get(root, "sample_fps"), glm_json_get(root, "sample_uniform"));
    test_bad_input();
    yajl_tree_free(root);

    printf("vision_preprocess: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
