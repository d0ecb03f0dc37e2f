/*
 * cmd_preprocess.c: the `preprocess` and `bench-preprocess` subcommands.
 *
 *   glm-engine preprocess [--threads N] [--repeat N] [--min-pixels N]
 *                         [--max-pixels N] [--out PATH] FILE...
 *       decodes each image (any format glm_image_decode reads, or a binary
 *       PPM "P6" file) and runs the GLM-4.5V image processor on it; prints
 *       "FILE: WxH -> grid T,H,W n_patches=N tokens=N decode_ms=X
 *        preprocess_ms=Y" (the best of --repeat runs).  --out writes the
 *       pixel_values of all files, concatenated as the processor does, as
 *       float32 little-endian (to compare with transformers).
 *   glm-engine bench-preprocess [--threads N] [--seconds S]
 *                         [--preprocess-only] FILE...
 *       t/bench/bench_preproc.sh's C side: whole passes over the files until
 *       S seconds (default 2) have gone by, each image read from its file,
 *       decoded and preprocessed, as transformers' load_image + image
 *       processor do; --preprocess-only decodes once up front and times the
 *       processor alone.  Prints one line:
 *       "ours: images=N threads=T ms_per_image=X passes=P".
 *
 * Exit codes: 0 ok, 1 runtime error (one line "glm-engine: error: ..."),
 * 2 usage error.
 */
#include "media/media.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD_USAGE_PREPROCESS \
    "usage: glm-engine preprocess [--threads N] [--repeat N] [--min-pixels N]" \
    " [--max-pixels N] [--out PATH] FILE..."
#define CMD_USAGE_BENCH_PREPROCESS \
    "usage: glm-engine bench-preprocess [--threads N] [--seconds S]" \
    " [--preprocess-only] FILE..."

/* ---- binary PPM, so preprocessing can be measured from raw pixels ---------- */

static int
ppm_skip(const uint8_t *p, size_t len, size_t *i)
{
    for (;;) {
        while (*i < len && (p[*i] == ' ' || p[*i] == '\t' || p[*i] == '\n'
                || p[*i] == '\r')) {
            (*i)++;
        }
        if (*i < len && p[*i] == '#') {
            while (*i < len && p[*i] != '\n') {
                (*i)++;
            }
            continue;
        }
        return *i < len ? 0 : -1;
    }
}

static int
ppm_number(const uint8_t *p, size_t len, size_t *i, long *out)
{
    long v = 0;
    size_t start;

    if (ppm_skip(p, len, i) < 0) {
        return -1;
    }
    start = *i;
    while (*i < len && p[*i] >= '0' && p[*i] <= '9' && v < 1000000000L) {
        v = v * 10 + (p[*i] - '0');
        (*i)++;
    }
    *out = v;
    return *i > start ? 0 : -1;
}

/* 8-bit binary PPM (P6, maxval 255) -> RGB. */
static int
ppm_decode(const uint8_t *p, size_t len, glm_image *out, glm_err *err)
{
    long w, h, maxval;
    size_t i = 2, n;

    if (ppm_number(p, len, &i, &w) < 0 || ppm_number(p, len, &i, &h) < 0
        || ppm_number(p, len, &i, &maxval) < 0 || i >= len) {
        return glm_errf(err, "bad PPM header");
    }
    i++;                                 /* the one whitespace byte */
    if (w <= 0 || h <= 0 || w > 65535 || h > 65535 || maxval != 255) {
        return glm_errf(err, "PPM %ldx%ld maxval %ld not supported", w, h, maxval);
    }
    n = 3 * (size_t) w * (size_t) h;
    if (len - i < n) {
        return glm_errf(err, "PPM truncated: %zu of %zu pixel bytes", len - i, n);
    }
    out->rgb = malloc(n);
    if (out->rgb == NULL) {
        return glm_errf(err, "out of memory");
    }
    memcpy(out->rgb, p + i, n);
    out->width = (int) w;
    out->height = (int) h;
    return 0;
}

static int
decode_any(const uint8_t *data, size_t len, const glm_media_limits *lim,
    glm_image *out, glm_err *err)
{
    memset(out, 0, sizeof(*out));
    if (len >= 2 && data[0] == 'P' && data[1] == '6') {
        return ppm_decode(data, len, out, err);
    }
    return glm_image_decode(data, len, lim, out, err);
}

static int
read_and_decode(const char *path, const glm_media_limits *lim, glm_image *im,
    glm_err *err)
{
    size_t len;
    char *data = glm_read_file(path, &len, err);
    int rc;

    if (data == NULL) {
        return -1;
    }
    rc = decode_any((const uint8_t *) data, len, lim, im, err);
    free(data);
    if (rc < 0) {
        glm_err_prefix(err, "%s", path);
    }
    return rc;
}

static int
parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        return -1;
    }
    *out = v;
    return 0;
}

static int
cmd_fail(const glm_err *err)
{
    fprintf(stderr, "glm-engine: error: %s\n", err->msg);
    return 1;
}

int glm_cmd_preprocess(int argc, char **argv);
int glm_cmd_bench_preprocess(int argc, char **argv);

int
glm_cmd_preprocess(int argc, char **argv)
{
    glm_vision_proc p;
    glm_media_limits lim;
    glm_err err;
    long v, repeat = 1;
    int i, first_file = 0, r;
    const char *out_path = NULL;
    FILE *out = NULL;

    glm_vision_proc_default_image(&p);
    glm_media_limits_default(&lim);
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc
            && parse_int(argv[i + 1], 1, 256, &v) == 0) {
            p.threads = (int) v;
            i++;
        } else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc
            && parse_int(argv[i + 1], 1, 1000000, &v) == 0) {
            repeat = v;
            i++;
        } else if (strcmp(argv[i], "--min-pixels") == 0 && i + 1 < argc
            && parse_int(argv[i + 1], 0, LONG_MAX, &v) == 0) {
            p.min_pixels = v;
            i++;
        } else if (strcmp(argv[i], "--max-pixels") == 0 && i + 1 < argc
            && parse_int(argv[i + 1], 1, LONG_MAX, &v) == 0) {
            p.max_pixels = v;
            i++;
        } else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            out_path = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "%s\n", CMD_USAGE_PREPROCESS);
            return 2;
        } else {
            first_file = i;
            break;
        }
    }
    if (first_file == 0) {
        fprintf(stderr, "%s\n", CMD_USAGE_PREPROCESS);
        return 2;
    }
    if (out_path != NULL && (out = fopen(out_path, "wb")) == NULL) {
        glm_errf(&err, "%s: cannot create: %s", out_path, strerror(errno));
        return cmd_fail(&err);
    }
    for (i = first_file; i < argc; i++) {
        double best_dec = 1e30, best_pre = 1e30, t0, t1, t2;
        glm_vision_input vi;
        glm_image im;

        memset(&vi, 0, sizeof(vi));
        for (r = 0; r < repeat; r++) {
            t0 = glm_now_seconds();
            if (read_and_decode(argv[i], &lim, &im, &err) < 0) {
                return cmd_fail(&err);
            }
            t1 = glm_now_seconds();
            glm_vision_input_free(&vi);
            if (glm_preprocess_image(&im, &p, &vi, &err) < 0) {
                glm_err_prefix(&err, "%s", argv[i]);
                free(im.rgb);
                if (out != NULL) {
                    fclose(out);
                }
                return cmd_fail(&err);
            }
            t2 = glm_now_seconds();
            best_dec = t1 - t0 < best_dec ? t1 - t0 : best_dec;
            best_pre = t2 - t1 < best_pre ? t2 - t1 : best_pre;
            if (r + 1 < repeat) {
                free(im.rgb);
            }
        }
        printf("%s: %dx%d -> grid %d,%d,%d n_patches=%lld tokens=%lld"
            " decode_ms=%.3f preprocess_ms=%.3f threads=%d\n", argv[i], im.width,
            im.height, vi.grid_t, vi.grid_h, vi.grid_w, (long long) vi.n_patches,
            (long long) glm_vision_tokens(&vi, p.merge_size), best_dec * 1e3,
            best_pre * 1e3, p.threads);
        free(im.rgb);
        if (out != NULL) {
            size_t n = (size_t) vi.n_patches * vi.patch_dim;
            /* little-endian hosts only, which is every host we build for */
            if (fwrite(vi.pixel_values, sizeof(float), n, out) != n) {
                glm_errf(&err, "%s: write failed", out_path);
                glm_vision_input_free(&vi);
                fclose(out);
                return cmd_fail(&err);
            }
        }
        glm_vision_input_free(&vi);
    }
    if (out != NULL && fclose(out) != 0) {
        glm_errf(&err, "%s: write failed", out_path);
        return cmd_fail(&err);
    }
    return 0;
}

int
glm_cmd_bench_preprocess(int argc, char **argv)
{
    glm_vision_proc p;
    glm_media_limits lim;
    glm_err err;
    glm_image *pre = NULL;
    double seconds = 2.0, t0, elapsed;
    long v, images = 0, passes = 0;
    int i, first_file = 0, n_files, only = 0, f, rc = 1;

    glm_vision_proc_default_image(&p);
    glm_media_limits_default(&lim);
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc
            && parse_int(argv[i + 1], 1, 256, &v) == 0) {
            p.threads = (int) v;
            i++;
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            char *end;
            seconds = strtod(argv[i + 1], &end);
            if (*end != '\0' || !(seconds >= 0) || seconds > 3600) {
                fprintf(stderr, "%s\n", CMD_USAGE_BENCH_PREPROCESS);
                return 2;
            }
            i++;
        } else if (strcmp(argv[i], "--preprocess-only") == 0) {
            only = 1;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "%s\n", CMD_USAGE_BENCH_PREPROCESS);
            return 2;
        } else {
            first_file = i;
            break;
        }
    }
    if (first_file == 0) {
        fprintf(stderr, "%s\n", CMD_USAGE_BENCH_PREPROCESS);
        return 2;
    }
    n_files = argc - first_file;
    pre = calloc((size_t) n_files, sizeof(*pre));
    if (pre == NULL) {
        glm_errf(&err, "out of memory");
        return cmd_fail(&err);
    }
    /* decode every file once: checks them, and is the input of
     * --preprocess-only; the warm-up pass of both modes */
    for (f = 0; f < n_files; f++) {
        glm_vision_input vi;
        if (read_and_decode(argv[first_file + f], &lim, &pre[f], &err) < 0
            || glm_preprocess_image(&pre[f], &p, &vi, &err) < 0) {
            cmd_fail(&err);
            goto done;
        }
        glm_vision_input_free(&vi);
    }

    t0 = glm_now_seconds();
    do {
        for (f = 0; f < n_files; f++) {
            glm_vision_input vi;
            glm_image im;

            if (only) {
                if (glm_preprocess_image(&pre[f], &p, &vi, &err) < 0) {
                    cmd_fail(&err);
                    goto done;
                }
            } else {
                if (read_and_decode(argv[first_file + f], &lim, &im, &err) < 0) {
                    cmd_fail(&err);
                    goto done;
                }
                if (glm_preprocess_image(&im, &p, &vi, &err) < 0) {
                    free(im.rgb);
                    cmd_fail(&err);
                    goto done;
                }
                free(im.rgb);
            }
            glm_vision_input_free(&vi);
            images++;
        }
        passes++;
        elapsed = glm_now_seconds() - t0;
    } while (elapsed < seconds);

    printf("ours: images=%d threads=%d ms_per_image=%.3f passes=%ld mode=%s\n",
        n_files, p.threads, elapsed * 1e3 / (double) images, passes,
        only ? "preprocess-only" : "decode+preprocess");
    rc = 0;

done:
    for (f = 0; f < n_files; f++) {
        free(pre[f].rgb);
    }
    free(pre);
    return rc;
}
