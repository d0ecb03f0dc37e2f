/*
 * test_media_decode.c: engine/media_*.c against the references written by
 * t/reference/make_media_fixtures.py (t/fixtures/media/decode_reference.json).
 *
 * 1. Every image decodes to PIL's Image.open -> exif_transpose ->
 *    convert("RGB") bytes (md5); a mismatch prints the max abs difference
 *    against the expected PNG and where it is.  Files PIL refuses must be
 *    refused, with a one-line error.
 * 2. Every video: the metadata the sampler sees (total frames, fps,
 *    duration) and the frames the uniform sampler picks, byte for byte the
 *    ffmpeg CLI's rgb24 (md5 per frame); a sampler repeating its last frame.
 * 3. Bad input, each a clean one-line error: empty, one byte, unknown magic,
 *    every file truncated at many offsets, thousands of seeded random byte
 *    flips over every image (a few over every video), zero-size headers,
 *    headers claiming 100000x100000 (the pixel guard names the limit), over
 *    max_encoded_bytes, videos over max_frames / max_duration / max_pixels /
 *    max_video_pixels, a bad sampler, an image given as a video and back.
 * 4. Four threads decoding the whole corpus at once get the same bytes.
 * Runs under ASan/UBSan (make test): a crash or a sanitizer report fails it.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/md5.h>
#include <yajl/yajl_tree.h>
#include <zlib.h>

#include "media/media.h"
#include "util/json.h"

static int passed, failed;

#define LIT(s) (const uint8_t *) (s), sizeof(s) - 1

#define CHECK(cond, ...) do {                                   \
    if (cond) { passed++; } else {                              \
        failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__);   \
        printf(__VA_ARGS__); printf("\n"); }                    \
} while (0)

static const char *dir = "t/fixtures/media";
static yajl_val ref_root;

static uint8_t *
load(const char *name, size_t *len)
{
    char path[1024];
    glm_err err;
    uint8_t *p;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    p = (uint8_t *) glm_read_file(path, len, &err);
    if (p == NULL) {
        printf("FAIL %s\n", err.msg);
        failed++;
    }
    return p;
}

static void
md5_hex(const uint8_t *p, size_t n, char out[33])
{
    uint8_t d[16];
    int i;

    av_md5_sum(d, p, n);
    for (i = 0; i < 16; i++) {
        snprintf(out + 2 * i, 3, "%02x", d[i]);
    }
}

static const char *
jstr(yajl_val o, const char *k)
{
    yajl_val v = glm_json_get(o, k);

    return v != NULL && YAJL_IS_STRING(v) ? v->u.string : NULL;
}

static double
jnum(yajl_val o, const char *k)
{
    yajl_val v = glm_json_get(o, k);

    return v != NULL && YAJL_IS_NUMBER(v) ? YAJL_GET_DOUBLE(v) : -1;
}

static int
one_line(const glm_err *e)
{
    return e->msg[0] != '\0' && strchr(e->msg, '\n') == NULL;
}

/* Where got differs from the expected PNG, for the FAIL line. */
static void
diff_report(const char *expected, const uint8_t *got, int w, int h, size_t offset_rows)
{
    size_t len, i, n, first = 0, count = 0;
    uint8_t *png = load(expected, &len);
    glm_image im;
    glm_err err;
    int maxd = 0;

    if (png == NULL) {
        return;
    }
    if (glm_image_decode(png, len, NULL, &im, &err) != 0) {
        printf("    (cannot read %s: %s)\n", expected, err.msg);
        free(png);
        return;
    }
    n = (size_t) w * h * 3;
    if (im.width != w || (size_t) im.height < offset_rows + (size_t) h) {
        printf("    expected PNG is %dx%d\n", im.width, im.height);
    } else {
        const uint8_t *e = im.rgb + offset_rows * (size_t) w * 3;

        for (i = 0; i < n; i++) {
            int d = abs((int) got[i] - (int) e[i]);

            if (d > 0 && count++ == 0) {
                first = i;
            }
            if (d > maxd) {
                maxd = d;
            }
        }
        printf("    max abs diff %d, %zu of %zu bytes differ, first at pixel (%zu, %zu) "
               "channel %zu: got %d want %d\n", maxd, count, n, (first / 3) % (size_t) w,
               (first / 3) / (size_t) w, first % 3, got[first], e[first]);
    }
    glm_image_free(&im);
    free(png);
}

/* ---- 1. images ---------------------------------------------------------- */

static void
test_images(void)
{
    yajl_val files = glm_json_get(ref_root, "files");
    const char *kinds[] = { "jpeg", "png", "gif", "webp", "bmp" };
    int ok[5] = { 0 }, total[5] = { 0 }, refused = 0, refused_ok = 0;
    size_t i, len;
    int k;

    for (i = 0; i < files->u.array.len; i++) {
        yajl_val f = files->u.array.values[i];
        const char *name = jstr(f, "name"), *want = jstr(f, "md5");
        glm_image im;
        glm_err err;
        uint8_t *data;
        char got[33];

        if (strcmp(jstr(f, "kind"), "image") != 0) {
            continue;
        }
        for (k = 0; k < 5 && strncmp(name, kinds[k], strlen(kinds[k])) != 0; k++) {
        }
        data = load(jstr(f, "file"), &len);
        if (data == NULL) {
            continue;
        }
        if (jstr(f, "error") != NULL) {
            refused++;
            if (glm_image_decode(data, len, NULL, &im, &err) != 0 && one_line(&err)) {
                refused_ok++;
            } else {
                printf("FAIL %s: PIL refuses it (%s), we decoded it\n", name, jstr(f, "error"));
                glm_image_free(&im);
            }
            free(data);
            continue;
        }
        total[k]++;
        if (glm_image_decode(data, len, NULL, &im, &err) != 0) {
            printf("FAIL %s: %s\n", name, err.msg);
            free(data);
            continue;
        }
        md5_hex(im.rgb, (size_t) im.width * im.height * 3, got);
        if (im.width == (int) jnum(f, "width") && im.height == (int) jnum(f, "height")
            && strcmp(got, want) == 0) {
            ok[k]++;
        } else {
            printf("FAIL %s (%s): got %dx%d md5 %s, want %dx%d md5 %s\n", name, jstr(f, "note"),
                   im.width, im.height, got, (int) jnum(f, "width"), (int) jnum(f, "height"),
                   want);
            if (im.width == (int) jnum(f, "width") && im.height == (int) jnum(f, "height")) {
                diff_report(jstr(f, "expected"), im.rgb, im.width, im.height, 0);
            }
        }
        glm_image_free(&im);
        free(data);
    }
    for (k = 0; k < 5; k++) {
        printf("images %-4s: %d/%d identical to PIL's RGB\n", kinds[k], ok[k], total[k]);
        CHECK(ok[k] == total[k] && total[k] > 0, "%s: %d of %d", kinds[k], ok[k], total[k]);
    }
    printf("images PIL refuses: %d/%d refused with a one-line error\n", refused_ok, refused);
    CHECK(refused_ok == refused, "refused %d of %d", refused_ok, refused);
}

/* ---- 2. videos ---------------------------------------------------------- */

/* n frames spread evenly: i*(total-1)/(n-1), as the fixture script. */
static int
sample_uniform(void *ctx, const glm_video_meta *meta, int *idx, int max_idx, glm_err *err)
{
    int n = *(int *) ctx, i;

    if (n > max_idx) {
        return glm_errf(err, "room for %d indices, %d wanted", max_idx, n);
    }
    for (i = 0; i < n; i++) {
        idx[i] = (int) ((int64_t) i * (meta->total_frames - 1) / (n - 1));
    }
    return n;
}

/* A fixed list: ctx is {count, idx...}. */
static int
sample_list(void *ctx, const glm_video_meta *meta, int *idx, int max_idx, glm_err *err)
{
    const int *l = ctx;

    (void) meta;
    if (l[0] > max_idx) {
        return glm_errf(err, "room for %d indices", max_idx);
    }
    memcpy(idx, l + 1, sizeof(int) * (size_t) l[0]);
    return l[0];
}

static int
check_video_frames(yajl_val f, const glm_video *v, const char *what)
{
    yajl_val md5s = glm_json_get(f, "frame_md5");
    int i, bad = 0;
    size_t size = (size_t) v->width * v->height * 3;
    char got[33];

    for (i = 0; i < v->n_frames; i++) {
        const char *want = md5s->u.array.values[v->frame_index[i]]->u.string;

        md5_hex(v->rgb + i * size, size, got);
        if (strcmp(got, want) != 0) {
            printf("FAIL %s %s: frame %d (stream frame %d) md5 %s, the CLI's %s\n",
                   jstr(f, "name"), what, i, v->frame_index[i], got, want);
            if (strcmp(what, "uniform") == 0) {
                diff_report(jstr(f, "expected"), v->rgb + i * size, v->width, v->height,
                            (size_t) i * v->height);
            }
            bad++;
        }
    }
    return bad;
}

static void
test_videos(void)
{
    yajl_val files = glm_json_get(ref_root, "files");
    int nvid = 0, ok = 0, n = 8, meta_ok = 0;
    size_t i, len;

    for (i = 0; i < files->u.array.len; i++) {
        yajl_val f = files->u.array.values[i];
        const char *name = jstr(f, "name");
        glm_video v;
        glm_err err;
        uint8_t *data;
        int bad, dup[4];

        if (strcmp(jstr(f, "kind"), "video") != 0) {
            continue;
        }
        nvid++;
        data = load(jstr(f, "file"), &len);
        if (data == NULL) {
            continue;
        }
        if (glm_video_decode(data, len, NULL, sample_uniform, &n, &v, &err) != 0) {
            printf("FAIL %s: %s\n", name, err.msg);
            free(data);
            continue;
        }
        if (v.meta.total_frames == (int) jnum(f, "total_frames")
            && fabs(v.meta.fps - jnum(f, "fps")) < 1e-6
            && fabs(v.meta.duration - jnum(f, "duration")) < 1e-3) {
            meta_ok++;
        } else {
            printf("FAIL %s: meta %d frames %.6f fps %.4f s, ffprobe %d %.6f %.4f\n", name,
                   v.meta.total_frames, v.meta.fps, v.meta.duration, (int) jnum(f, "total_frames"),
                   jnum(f, "fps"), jnum(f, "duration"));
        }
        bad = v.width != (int) jnum(f, "width") || v.height != (int) jnum(f, "height")
              || v.n_frames != n;
        if (bad) {
            printf("FAIL %s: %d frames of %dx%d, want %d of %dx%d\n", name, v.n_frames, v.width,
                   v.height, n, (int) jnum(f, "width"), (int) jnum(f, "height"));
        } else {
            bad = check_video_frames(f, &v, "uniform");
        }
        glm_video_free(&v);
        /* the last frame listed twice is stored twice */
        dup[0] = 3;
        dup[1] = 1;
        dup[2] = (int) jnum(f, "total_frames") - 1;
        dup[3] = dup[2];
        if (glm_video_decode(data, len, NULL, sample_list, dup, &v, &err) != 0) {
            printf("FAIL %s (repeated last frame): %s\n", name, err.msg);
            bad++;
        } else {
            bad += v.n_frames != 3 || check_video_frames(f, &v, "repeat");
            glm_video_free(&v);
        }
        ok += bad == 0;
        free(data);
    }
    printf("videos: %d/%d metadata as ffprobe says, %d/%d with every kept frame identical to "
           "the ffmpeg CLI's rgb24\n", meta_ok, nvid, ok, nvid);
    CHECK(nvid > 0 && ok == nvid && meta_ok == nvid, "videos %d ok of %d", ok, nvid);
}

/* ---- 3. bad input ------------------------------------------------------- */

static int
expect_image_error(const uint8_t *d, size_t n, const glm_media_limits *lim, const char *needle,
    const char *what)
{
    glm_image im;
    glm_err err;

    err.msg[0] = '\0';
    if (glm_image_decode(d, n, lim, &im, &err) == 0) {
        printf("FAIL %s: decoded (%dx%d), want an error\n", what, im.width, im.height);
        glm_image_free(&im);
        return 0;
    }
    if (!one_line(&err) || (needle != NULL && strstr(err.msg, needle) == NULL)) {
        printf("FAIL %s: error \"%s\", want one line containing \"%s\"\n", what, err.msg,
               needle ? needle : "");
        return 0;
    }
    return 1;
}

static uint8_t *
png_zero_size(size_t *n, uint32_t w, uint32_t h)
{
    static const uint8_t sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
    uint8_t *p = calloc(1, 8 + 25 + 12);
    uint8_t ihdr[17] = { 'I', 'H', 'D', 'R' };
    uint32_t crc;

    memcpy(p, sig, 8);
    p[11] = 13;
    ihdr[4] = (uint8_t) (w >> 24); ihdr[5] = (uint8_t) (w >> 16);
    ihdr[6] = (uint8_t) (w >> 8);  ihdr[7] = (uint8_t) w;
    ihdr[8] = (uint8_t) (h >> 24); ihdr[9] = (uint8_t) (h >> 16);
    ihdr[10] = (uint8_t) (h >> 8); ihdr[11] = (uint8_t) h;
    ihdr[12] = 8;
    ihdr[13] = 2;
    memcpy(p + 12, ihdr, 17);
    crc = (uint32_t) crc32(0, ihdr, 17);
    p[29] = (uint8_t) (crc >> 24); p[30] = (uint8_t) (crc >> 16);
    p[31] = (uint8_t) (crc >> 8);  p[32] = (uint8_t) crc;
    /* an empty IDAT-less IEND: the size guard must speak first */
    memcpy(p + 33, "\0\0\0\0IEND\xae\x42\x60\x82", 12);
    *n = 8 + 25 + 12;
    return p;
}

/* A copy of `src` with its SOF0 height/width set. */
static uint8_t *
jpeg_with_size(const uint8_t *src, size_t n, int w, int h)
{
    uint8_t *p = malloc(n);
    size_t i;

    memcpy(p, src, n);
    for (i = 2; i + 9 < n; i++) {
        if (p[i] == 0xff && (p[i + 1] == 0xc0 || p[i + 1] == 0xc1 || p[i + 1] == 0xc2)) {
            p[i + 5] = (uint8_t) (h >> 8);
            p[i + 6] = (uint8_t) h;
            p[i + 7] = (uint8_t) (w >> 8);
            p[i + 8] = (uint8_t) w;
            break;
        }
    }
    return p;
}

static void
test_headers(void)
{
    static const uint8_t one[][1] = { { 0xff }, { 0x89 }, { 'G' }, { 'R' }, { 'B' }, { 0 } };
    static const uint8_t junk[] = { 0x00, 0x11, 0x22, 0x33, 0x44 };
    glm_media_limits lim;
    glm_image im;
    glm_err err;
    uint8_t *p, *jpg, *webp, bmp[54];
    size_t n, jn, wn, i;
    int ok = 0, total = 0;

    glm_media_limits_default(&lim);
    total++; ok += expect_image_error((const uint8_t *) "", 0, NULL, "no data", "empty");
    for (i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
        total++;
        ok += expect_image_error(one[i], 1, NULL, "not a supported image", "one byte");
    }
    total++;
    ok += expect_image_error(junk, sizeof(junk), NULL,
                             "not a supported image: unknown format (JPEG, PNG, GIF, WebP and"
                             " BMP are)", "wrong magic");
    total++;
    ok += expect_image_error((const uint8_t *) "II*\0\x08\0\0\0", 8, NULL, "TIFF", "TIFF");

    /* zero sizes */
    p = png_zero_size(&n, 0, 0);
    total++; ok += expect_image_error(p, n, NULL, "zero size", "PNG 0x0");
    free(p);
    jpg = load("jpeg_420.jpg", &jn);
    if (jpg != NULL) {
        p = jpeg_with_size(jpg, jn, 0, 0);
        total++; ok += expect_image_error(p, jn, NULL, NULL, "JPEG 0x0");
        free(p);
        p = jpeg_with_size(jpg, jn, 60000, 60000);
        total++; ok += expect_image_error(p, jn, NULL, "3600000000 pixels, over the limit of "
                                          "67108864 (decompression bomb guard)", "JPEG 60000^2");
        free(p);
    }
    total++; ok += expect_image_error(LIT("GIF89a\0\0\0\0\0\0\0,\0\0\0\0\0\0\0\0\0\x02\x02\x4c"
                                          "\x01\0;"), NULL, "zero size", "GIF 0x0");
    total++; ok += expect_image_error(LIT("GIF89a\xff\xff\xff\xff\0\0\0,\0\0\0\0\x01\0\x01\0\0"
                                          "\x02\x02\x4c\x01\0;"), NULL, "65535x65535 = 4294836225 "
                                      "pixels, over the limit of 67108864", "GIF 65535^2");
    memset(bmp, 0, sizeof(bmp));
    memcpy(bmp, "BM", 2);
    bmp[10] = 54; bmp[14] = 40; bmp[26] = 1; bmp[28] = 24;
    total++; ok += expect_image_error(bmp, sizeof(bmp), NULL, "zero size", "BMP 0x0");
    bmp[18] = 0xa0; bmp[19] = 0x86; bmp[20] = 0x01;              /* 100000 */
    bmp[22] = 0xa0; bmp[23] = 0x86; bmp[24] = 0x01;
    total++; ok += expect_image_error(bmp, sizeof(bmp), NULL, "100000x100000 = 10000000000 "
                                      "pixels, over the limit of 67108864", "BMP 100000^2");
    bmp[18] = 0xff; bmp[19] = 0xff; bmp[20] = 0xff; bmp[21] = 0xff;  /* 4294967295 wide */
    total++; ok += expect_image_error(bmp, sizeof(bmp), NULL, "4294967295x100000 = "
                                      "429496729500000 pixels", "BMP 2^32-1 wide");
    webp = load("webp_animated.webp", &wn);
    if (webp != NULL && wn > 30 && memcmp(webp + 12, "VP8X", 4) == 0) {
        memcpy(webp + 24, "\x0f\x27\x00\x0f\x27\x00", 6);        /* canvas 10000 x 10000 */
        total++; ok += expect_image_error(webp, wn, NULL, "10000x10000 = 100000000 pixels, over "
                                          "the limit of 67108864", "WebP 10000^2");
    }
    free(webp);

    /* the lying IHDR: refused before libpng allocates a row */
    p = png_zero_size(&n, 100000, 100000);
    total++; ok += expect_image_error(p, n, NULL, "image is 100000x100000 = 10000000000 pixels, "
                                      "over the limit of 67108864 (decompression bomb guard)",
                                      "PNG 100000^2");
    lim.max_pixels = 960;
    if (jpg != NULL) {
        total++;                    /* 40x24 = 960: exactly at the limit decodes */
        ok += glm_image_decode(jpg, jn, &lim, &im, &err) == 0;
        glm_image_free(&im);
        lim.max_pixels = 959;
        total++; ok += expect_image_error(jpg, jn, &lim, "40x24 = 960 pixels, over the limit of 959",
                                          "JPEG over a lower limit");
    }
    glm_media_limits_default(&lim);
    lim.max_encoded_bytes = 100;
    if (jpg != NULL) {
        char want[128];

        snprintf(want, sizeof(want), "image data is %zu bytes, over the limit of 100", jn);
        total++; ok += expect_image_error(jpg, jn, &lim, want, "over max_encoded_bytes");
    }
    free(p);
    free(jpg);
    printf("bad headers and limits: %d/%d clean one-line errors naming what is wrong\n", ok,
           total);
    CHECK(ok == total, "%d of %d", ok, total);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t
rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t) (rng_state >> 16);
}

static void
test_damage(void)
{
    yajl_val files = glm_json_get(ref_root, "files");
    size_t i, len, cut, step;
    int truncated = 0, trunc_err = 0, flips = 0, flip_err = 0, bad_msgs = 0, vflips = 0, it, k;
    int n = 8;

    for (i = 0; i < files->u.array.len; i++) {
        yajl_val f = files->u.array.values[i];
        int video = strcmp(jstr(f, "kind"), "video") == 0;
        uint8_t *data = load(jstr(f, "file"), &len), *copy;
        glm_image im;
        glm_video v;
        glm_err err;

        if (data == NULL) {
            continue;
        }
        copy = malloc(len);
        if (video) {
            for (k = 1; k < 16; k++) {
                size_t at = len * (size_t) k / 16;

                truncated++;
                err.msg[0] = '\0';
                if (glm_video_decode(data, at, NULL, sample_uniform, &n, &v, &err) == 0) {
                    glm_video_free(&v);
                } else {
                    trunc_err++;
                    bad_msgs += !one_line(&err);
                }
            }
        } else {
            step = len / 64 > 0 ? len / 64 : 1;
            for (cut = 0; cut < len; cut += (cut < 64 ? 1 : step)) {
                uint8_t *t = malloc(cut ? cut : 1);     /* exact size: ASan sees overreads */

                memcpy(t, data, cut);
                truncated++;
                err.msg[0] = '\0';
                if (glm_image_decode(t, cut, NULL, &im, &err) != 0) {
                    trunc_err++;
                    bad_msgs += !one_line(&err);
                } else {
                    glm_image_free(&im);
                }
                free(t);
            }
        }
        for (it = 0; it < (video ? 12 : 150); it++) {
            int nflip = 1 + (int) (rnd() % 8);

            memcpy(copy, data, len);
            for (k = 0; k < nflip; k++) {
                copy[rnd() % len] ^= (uint8_t) (1u << (rnd() % 8));
            }
            err.msg[0] = '\0';
            if (video) {
                vflips++;
                if (glm_video_decode(copy, len, NULL, sample_uniform, &n, &v, &err) == 0) {
                    glm_video_free(&v);
                } else {
                    bad_msgs += !one_line(&err);
                }
                continue;
            }
            flips++;
            if (glm_image_decode(copy, len, NULL, &im, &err) == 0) {
                glm_image_free(&im);
            } else {
                flip_err++;
                bad_msgs += !one_line(&err);
            }
        }
        free(copy);
        free(data);
    }
    printf("damage: %d truncations (%d refused), %d images with random bit flips (%d refused), "
           "%d damaged videos; %d errors not one line\n", truncated, trunc_err, flips, flip_err,
           vflips, bad_msgs);
    CHECK(bad_msgs == 0 && truncated > 1000 && flips > 1000, "damage");
}

static void
test_video_limits(void)
{
    glm_media_limits lim;
    glm_video v;
    glm_err err;
    uint8_t *mp4, *png;
    size_t n, pn;
    int ok = 0, total = 0, eight = 8, backwards[3] = { 2, 5, 1 };

#define VIDEO_ERROR(needle, what, sampler, ctx) do {                                    \
        total++;                                                                        \
        err.msg[0] = '\0';                                                              \
        if (glm_video_decode(mp4, n, &lim, sampler, ctx, &v, &err) == 0) {              \
            printf("FAIL %s: decoded\n", what);                                         \
            glm_video_free(&v);                                                         \
        } else if (!one_line(&err) || strstr(err.msg, needle) == NULL) {                \
            printf("FAIL %s: \"%s\", want \"%s\"\n", what, err.msg, needle);            \
        } else {                                                                        \
            ok++;                                                                       \
        }                                                                               \
    } while (0)

    mp4 = load("video_h264.mp4", &n);
    png = load("png_rgb8.png", &pn);
    if (mp4 == NULL || png == NULL) {
        free(mp4);
        free(png);
        return;
    }
    glm_media_limits_default(&lim);
    lim.max_frames = 4;
    VIDEO_ERROR("video has 8 frames to keep, over the limit of 4", "max_frames", sample_uniform,
                &eight);
    glm_media_limits_default(&lim);
    lim.max_duration = 0.5;
    VIDEO_ERROR("video is 2.0 s long, over the limit of 0.5 s", "max_duration", sample_uniform,
                &eight);
    glm_media_limits_default(&lim);
    lim.max_pixels = 1000;
    VIDEO_ERROR("video frames are 64x48 = 3072 pixels, over the limit of 1000", "max_pixels",
                sample_uniform, &eight);
    glm_media_limits_default(&lim);
    lim.max_video_pixels = 5 * 3072;
    VIDEO_ERROR("video would keep 8 frames of 64x48 = 24576 pixels, over the limit of 15360",
                "max_video_pixels", sample_uniform, &eight);
    glm_media_limits_default(&lim);
    lim.max_encoded_bytes = 1000;
    VIDEO_ERROR("over the limit of 1000", "max_encoded_bytes", sample_uniform, &eight);
    glm_media_limits_default(&lim);
    VIDEO_ERROR("not in order (1 after 5)", "a sampler going backwards", sample_list, backwards);
    total++;
    if (glm_video_decode(png, pn, NULL, sample_uniform, &eight, &v, &err) != 0
        && one_line(&err) && strstr(err.msg, "not a supported video") != NULL) {
        ok++;
    } else {
        printf("FAIL a PNG as a video: %s\n", err.msg);
    }
    total++;
    ok += expect_image_error(mp4, n, NULL, "not a supported image: an MP4/MOV video",
                             "an MP4 as an image");
    printf("video limits: %d/%d refused with the limit and the value named\n", ok, total);
    CHECK(ok == total, "%d of %d", ok, total);
    free(mp4);
    free(png);
}

/* ---- 4. threads --------------------------------------------------------- */

static void *
decode_all(void *arg)
{
    yajl_val files = glm_json_get(ref_root, "files");
    int *bad = arg;
    size_t i, len;

    for (i = 0; i < files->u.array.len; i++) {
        yajl_val f = files->u.array.values[i];
        uint8_t *data;
        glm_image im;
        glm_err err;
        char got[33];

        if (strcmp(jstr(f, "kind"), "image") != 0 || jstr(f, "error") != NULL) {
            continue;
        }
        data = load(jstr(f, "file"), &len);
        if (data == NULL) {
            continue;
        }
        if (glm_image_decode(data, len, NULL, &im, &err) != 0) {
            (*bad)++;
        } else {
            md5_hex(im.rgb, (size_t) im.width * im.height * 3, got);
            *bad += strcmp(got, jstr(f, "md5")) != 0;
            glm_image_free(&im);
        }
        free(data);
    }
    return NULL;
}

static void
test_threads(void)
{
    pthread_t t[4];
    int bad[4] = { 0 }, i, sum = 0;

    for (i = 0; i < 4; i++) {
        pthread_create(&t[i], NULL, decode_all, &bad[i]);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        sum += bad[i];
    }
    printf("threads: 4 threads decoding the corpus at once, %d differences\n", sum);
    CHECK(sum == 0, "%d differences", sum);
}

int
main(int argc, char **argv)
{
    char errbuf[256];
    glm_err err;
    size_t len;
    char *json, path[1024];

    if (argc > 1) {
        dir = argv[1];
    }
    snprintf(path, sizeof(path), "%s/decode_reference.json", dir);
    json = glm_read_file(path, &len, &err);
    if (json == NULL) {
        printf("FAIL %s (run from the repository root)\n", err.msg);
        return 1;
    }
    ref_root = yajl_tree_parse(json, errbuf, sizeof(errbuf));
    free(json);
    if (ref_root == NULL || !YAJL_IS_ARRAY(glm_json_get(ref_root, "files"))) {
        printf("FAIL %s: %s\n", path, errbuf);
        return 1;
    }
    test_images();
    test_videos();
    test_headers();
    test_video_limits();
    test_damage();
    test_threads();
    yajl_tree_free(ref_root);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
