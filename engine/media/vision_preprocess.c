/*
 * vision_preprocess.c: the GLM-4V image and video processors (MODEL.md
 * sections 5-6) as transformers 5.23 runs them: Glm4vImageProcessorPil
 * (the PIL backend, which we pin for images) and Glm4vVideoProcessor (the
 * torchvision backend), plus its frame sampler and vLLM's fixed-count one.
 *
 * One pipeline serves both: a list of frames (an image is one frame repeated
 * temporal_patch_size times, which is exactly what the image processor's
 * broadcast does) goes, one temporal group and one strip of 28 output rows
 * (a block row of patches) at a time, through
 *
 *   resize      bicubic to the smart_resize size (resize_bicubic.c: Pillow's
 *               fixed point for images, torch's for videos), two row passes
 *               whose intermediate rows stay in the caches;
 *   patchify    rescale + normalise fused with the patch layout: each pixel
 *               byte maps through a 256-entry table per channel holding the
 *               reference's float32 result for that byte, written straight
 *               into pixel_values in the processor's order (rows (block_row,
 *               block_col, in_row, in_col), each row (C, T, py, px)).
 *
 * The tables make the arithmetic trivially exact: the PIL backend computes
 * float32((double) u8 * (1/255)), then (x - mean) / std in float32; the
 * torchvision backend fuses them as (float(u8) - 255 mean) / (255 std) in
 * float32 with mean*255 and std*255 rounded to float32 first.
 *
 * Threads: a call may split its block rows among `threads` threads it
 * starts and joins itself (no pool, no global state); they share only the
 * output and never wait for each other.  A frame that is the same source as
 * the previous one of its group (an image's temporal copies, a video's
 * padding) is not resized again.
 */
#include "media.h"
#include "resize_bicubic.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define GLM_HAVE_AVX2_KERNELS 1
#include <immintrin.h>
#endif

#define MAX_THREADS 64
/* fewer threads for small outputs: starting one costs about as much as
 * this many output rows of work */
#define MIN_ROWS_PER_THREAD 32
#define MAX_SIDE (1 << 24)
/* outputs at least this large bypass the caches (see store_row) */
#define STREAM_MIN_BYTES (8u << 20)
/* temporal_patch_size bound: frames held per group */
#define GLM_MAX_TPS 16

void
glm_vision_proc_default_image(glm_vision_proc *p)
{
    static const float mean[3] = { 0.48145466f, 0.4578275f, 0.40821073f };
    static const float std[3] = { 0.26862954f, 0.26130258f, 0.27577711f };

    memset(p, 0, sizeof(*p));
    p->min_pixels = 12544;
    p->max_pixels = 9633792;
    p->patch_size = 14;
    p->temporal_patch_size = 2;
    p->merge_size = 2;
    memcpy(p->mean, mean, sizeof(mean));
    memcpy(p->std, std, sizeof(std));
    p->fps = 2.0;
    p->max_duration = 300.0;
    p->threads = 1;
}

void
glm_vision_proc_default_video(glm_vision_proc *p)
{
    glm_vision_proc_default_image(p);
    p->max_pixels = 47040000;
}

/* ---- smart_resize ----------------------------------------------------------- */

/* Python's repr() of a float: the shortest digits that read back to d,
 * positional between 1e-4 and 1e16, else d.ddde+XX, and ".0" on integers. */
static void
py_float_repr(double d, char *out, size_t size)
{
    char buf[40], digits[24];
    int prec, exp10, nd, i, pos;
    char *e;

    if (isnan(d)) {
        snprintf(out, size, "nan");
        return;
    }
    if (isinf(d)) {
        snprintf(out, size, d < 0 ? "-inf" : "inf");
        return;
    }
    for (prec = 0; prec < 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec, d);
        if (strtod(buf, NULL) == d) {
            break;
        }
    }
    /* buf: [-]D[.DDD]e[+-]XX */
    e = strchr(buf, 'e');
    exp10 = atoi(e + 1);
    nd = 0;
    for (i = buf[0] == '-' ? 1 : 0; buf + i < e; i++) {
        if (buf[i] != '.') {
            digits[nd++] = buf[i];
        }
    }
    while (nd > 1 && digits[nd - 1] == '0') {
        nd--;
    }
    digits[nd] = '\0';
    pos = 0;
    if (d < 0 && pos < (int) size - 1) {
        out[pos++] = '-';
    }
#define PUT(c) do { if (pos < (int) size - 1) { out[pos++] = (c); } } while (0)
    if (exp10 >= -5 && exp10 < 16) {
        if (exp10 < 0) {
            PUT('0');
            PUT('.');
            for (i = 0; i < -exp10 - 1; i++) {
                PUT('0');
            }
            for (i = 0; i < nd; i++) {
                PUT(digits[i]);
            }
        } else {
            for (i = 0; i <= exp10; i++) {
                PUT(i < nd ? digits[i] : '0');
            }
            PUT('.');
            if (nd > exp10 + 1) {
                for (i = exp10 + 1; i < nd; i++) {
                    PUT(digits[i]);
                }
            } else {
                PUT('0');
            }
        }
        out[pos] = '\0';
    } else {
        PUT(digits[0]);
        if (nd > 1) {
            PUT('.');
            for (i = 1; i < nd; i++) {
                PUT(digits[i]);
            }
        }
        out[pos] = '\0';
        snprintf(out + pos, size - (size_t) pos, "e%c%02d", exp10 < 0 ? '-' : '+',
            exp10 < 0 ? -exp10 : exp10);
    }
#undef PUT
}

/*
 * Line by line the Python: true division in double, round() half to even
 * (rint in the default rounding mode), math.floor/ceil, int() truncation in
 * the small-side path.  Products of ints are exact in int64; the one float
 * division of two of them is correctly rounded as Python's int/int is, since
 * both are below 2^53.
 */
int
glm_smart_resize(int num_frames, int height, int width, int factor,
    int temporal_factor, int64_t min_pixels, int64_t max_pixels, int *out_h,
    int *out_w, glm_err *err)
{
    int64_t h_bar, w_bar, t_bar;
    double ratio;
    char rs[40];

    if (factor <= 0 || temporal_factor <= 0) {
        return glm_errf(err, "smart_resize: factor %d, temporal factor %d",
            factor, temporal_factor);
    }
    if (num_frames < temporal_factor) {
        return glm_errf(err, "t:%d must be larger than temporal_factor:%d",
            num_frames, temporal_factor);
    }
    if (height <= 0 || width <= 0 || height > MAX_SIDE || width > MAX_SIDE) {
        return glm_errf(err, "image size %dx%d is out of range (1..%d per side)",
            width, height, MAX_SIDE);
    }
    if (max_pixels <= 0 || min_pixels < 0) {
        return glm_errf(err, "smart_resize: pixel bounds %lld..%lld",
            (long long) min_pixels, (long long) max_pixels);
    }
    if (height < factor || width < factor) {
        double sh = (double) factor / height, sw = (double) factor / width;
        double scale = sh > sw ? sh : sw;
        double nh = height * scale, nw = width * scale;
        if (nh >= 2147483647.0 || nw >= 2147483647.0) {
            return glm_errf(err, "image size %dx%d is out of range", width, height);
        }
        height = (int) nh;
        width = (int) nw;
        if (height <= 0 || width <= 0) {
            return glm_errf(err, "image size %dx%d is out of range", width, height);
        }
    }
    ratio = (double) (height > width ? height : width)
        / (double) (height > width ? width : height);
    if (ratio > 200) {
        py_float_repr(ratio, rs, sizeof(rs));
        return glm_errf(err, "absolute aspect ratio must be smaller than 200, got %s", rs);
    }
    h_bar = (int64_t) rint((double) height / factor) * factor;
    w_bar = (int64_t) rint((double) width / factor) * factor;
    t_bar = (int64_t) rint((double) num_frames / temporal_factor) * temporal_factor;

    if (t_bar * h_bar * w_bar > max_pixels) {
        double beta = sqrt((double) ((int64_t) num_frames * height * width)
            / (double) max_pixels);
        h_bar = (int64_t) floor(height / beta / factor) * factor;
        w_bar = (int64_t) floor(width / beta / factor) * factor;
        if (h_bar < factor) {
            h_bar = factor;
        }
        if (w_bar < factor) {
            w_bar = factor;
        }
    } else if (t_bar * h_bar * w_bar < min_pixels) {
        double beta = sqrt((double) min_pixels
            / (double) ((int64_t) num_frames * height * width));
        h_bar = (int64_t) ceil(height * beta / factor) * factor;
        w_bar = (int64_t) ceil(width * beta / factor) * factor;
    }
    if (h_bar <= 0 || w_bar <= 0 || h_bar > MAX_SIDE || w_bar > MAX_SIDE) {
        return glm_errf(err, "smart_resize: %lldx%lld is out of range",
            (long long) w_bar, (long long) h_bar);
    }
    *out_h = (int) h_bar;
    *out_w = (int) w_bar;
    return 0;
}

int
glm_resize_bicubic_rgb(const uint8_t *src, int sw, int sh, uint8_t *dst,
    int dw, int dh)
{
    return glm_resize_bicubic_rgb_variant(src, sw, sh, dst, dw, dh,
        GLM_RESAMPLE_PIL, 1);
}

int
glm_resize_bicubic_rgb_torch(const uint8_t *src, int sw, int sh, uint8_t *dst,
    int dw, int dh)
{
    return glm_resize_bicubic_rgb_variant(src, sw, sh, dst, dw, dh,
        GLM_RESAMPLE_TORCH, 1);
}

/* ---- normalisation tables ---------------------------------------------------- */

/* PIL backend: rescale in float64 then cast, normalise in float32 */
static void
lut_image(const glm_vision_proc *p, float lut[3][256])
{
    int c, u;

    for (c = 0; c < 3; c++) {
        for (u = 0; u < 256; u++) {
            float x = (float) ((double) u * (1.0 / 255.0));
            lut[c][u] = (x - p->mean[c]) / p->std[c];
        }
    }
}

/* torchvision backend: mean and std times 1/rescale_factor in float32, then
 * (float(u8) - mean') / std' */
static void
lut_video(const glm_vision_proc *p, float lut[3][256])
{
    float k = (float) (1.0 / (1.0 / 255.0));
    int c, u;

    for (c = 0; c < 3; c++) {
        float m = p->mean[c] * k, s = p->std[c] * k;
        for (u = 0; u < 256; u++) {
            lut[c][u] = ((float) u - m) / s;
        }
    }
}

/* ---- the pipeline ---------------------------------------------------------- */

/*
 * Work is cut in strips: one block row of the output (merge_size patch rows,
 * 28 pixel rows) of one temporal group.  For each strip every distinct frame
 * of the group is resized into a strip buffer (the horizontal pass's rows
 * are kept in a sliding window between consecutive strips, so each is
 * computed once per thread), and the strip is patchified.  Intermediates
 * stay in the caches and nothing but pixel_values is image-sized.  Threads
 * take contiguous ranges of block rows; they share nothing but the output,
 * so they never wait for each other.
 */

typedef struct {
    /* input */
    const uint8_t  **frames;          /* [n_groups * tps], padded */
    int              sw, sh;
    /* output geometry */
    int              rw, rh;
    int              patch, merge, tps, gh, gw, n_groups;
    int              patch_dim;
    int              strip_rows;      /* merge * patch */
    float            lut[3][256];
    float           *out;
    int              stream;          /* non-temporal stores (AVX2) */
    glm_resample_plan plan;
    int              window_rows;     /* largest h-pass window of a strip */
    int              nthreads;
    int              failed;          /* a thread could not get memory */
} job;

/* One temporal slot's buffers in one thread. */
typedef struct {
    uint8_t *window;                  /* h-first: h-pass rows [wa, wb) */
    int      wa, wb;
    uint8_t *mid;                     /* v-first: the v-pass rows of a strip */
    uint8_t *strip;                   /* the resized rows of a strip */
} slot_buf;

/*
 * The output is written once and not read back here, and is mostly far
 * larger than the caches: each patch row is assembled in a small buffer
 * (L1) and then streamed out with non-temporal stores where AVX2 and the
 * alignment allow, which saves the read-for-ownership of every output line
 * (about a third of the memory traffic).
 */
#ifdef GLM_HAVE_AVX2_KERNELS
__attribute__((target("avx2")))
static void
stream_row_avx2(float *dst, const float *src, size_t n)
{
    size_t i;

    for (i = 0; i + 8 <= n; i += 8) {
        _mm256_stream_ps(dst + i, _mm256_loadu_ps(src + i));
    }
    for (; i < n; i++) {
        dst[i] = src[i];
    }
}
#endif

static void
store_row(const job *j, float *dst, const float *src, size_t n)
{
#ifdef GLM_HAVE_AVX2_KERNELS
    if (j->stream && ((uintptr_t) dst & 31) == 0) {
        stream_row_avx2(dst, src, n);
        return;
    }
#endif
    memcpy(dst, src, n * sizeof(float));
}

static void
store_fence(const job *j)
{
#ifdef GLM_HAVE_AVX2_KERNELS
    if (j->stream) {
        _mm_sfence();
    }
#endif
}

/* Patch rows of block row br of group g: the (C, T, py, px) values of each
 * patch; slot[t] points at the block row's first pixel row of frame t. */
static void
patchify_block_row(const job *j, const uint8_t *const *slot, int g, int br,
    float *buf)
{
    int p = j->patch, m = j->merge, tps = j->tps;
    int bw = j->gw / m;
    size_t pp = (size_t) p * p;
    size_t row_bytes = 3 * (size_t) j->rw;
    size_t group_rows = (size_t) j->gh * j->gw;
    int bc, ir, ic, t, py, px;

    for (bc = 0; bc < bw; bc++) {
        for (ir = 0; ir < m; ir++) {
            for (ic = 0; ic < m; ic++) {
                size_t row = g * group_rows
                    + ((size_t) br * bw + bc) * m * m + (size_t) ir * m + ic;
                size_t y0 = (size_t) ir * p;
                size_t x0 = (size_t) (bc * m + ic) * p;

                for (t = 0; t < tps; t++) {
                    float *r = buf + (size_t) t * pp;
                    float *gch = r + (size_t) tps * pp;
                    float *bch = r + 2 * (size_t) tps * pp;
                    if (t > 0 && slot[t] == slot[t - 1]) {
                        memcpy(r, r - pp, sizeof(float) * pp);
                        memcpy(gch, gch - pp, sizeof(float) * pp);
                        memcpy(bch, bch - pp, sizeof(float) * pp);
                        continue;
                    }
                    for (py = 0; py < p; py++) {
                        const uint8_t *s = slot[t] + (y0 + py) * row_bytes + x0 * 3;
                        size_t o = (size_t) py * p;
                        for (px = 0; px < p; px++) {
                            r[o + px] = j->lut[0][s[3 * px]];
                            gch[o + px] = j->lut[1][s[3 * px + 1]];
                            bch[o + px] = j->lut[2][s[3 * px + 2]];
                        }
                    }
                }
                store_row(j, j->out + row * j->patch_dim, buf, (size_t) j->patch_dim);
            }
        }
    }
}

/* The input rows [a, b) that output rows [y0, y1) of the vertical pass
 * read (ascending in y, but torch's clipped tap counts can make an end
 * smaller than the one before: take the extremes). */
static void
strip_window(const glm_resample_plan *pl, int y0, int y1, int *a, int *b)
{
    int y;

    *a = pl->v.start[y0];
    *b = 0;
    for (y = y0; y < y1; y++) {
        if (pl->v.start[y] < *a) {
            *a = pl->v.start[y];
        }
        if (pl->v.start[y] + pl->v.count[y] > *b) {
            *b = pl->v.start[y] + pl->v.count[y];
        }
    }
}

/* The resized rows [y0, y0 + strip_rows) of frame src, through sb. */
static const uint8_t *
resize_strip(const job *j, slot_buf *sb, const uint8_t *src, int y0)
{
    const glm_resample_plan *pl = &j->plan;
    size_t in_row = 3 * (size_t) j->sw, out_row = 3 * (size_t) j->rw;
    int y1 = y0 + j->strip_rows;

    if (!pl->need_h && !pl->need_v) {
        return src + (size_t) y0 * in_row;
    }
    if (pl->need_h && !pl->need_v) {
        glm_resample_h_rows(pl, src + (size_t) y0 * in_row, sb->strip, j->strip_rows);
    } else if (!pl->need_h) {
        glm_resample_v_rows(pl, src, 0, j->sw, sb->strip, y0, y1);
    } else if (!pl->h_first) {
        glm_resample_v_rows(pl, src, 0, j->sw, sb->mid, y0, y1);
        glm_resample_h_rows(pl, sb->mid, sb->strip, j->strip_rows);
    } else {
        /* the source rows the vertical taps of the strip read, through the
         * horizontal pass; the rows shared with the previous strip move to
         * the front of the window instead of being computed again */
        int a, b, keep_from, first_new;

        strip_window(pl, y0, y1, &a, &b);
        keep_from = sb->wa <= a && a < sb->wb ? a : sb->wb;

        if (keep_from < sb->wb && keep_from >= a) {
            memmove(sb->window, sb->window + (size_t) (keep_from - sb->wa) * out_row,
                (size_t) (sb->wb - keep_from) * out_row);
            first_new = sb->wb;
        } else {
            first_new = a;
        }
        if (first_new < b) {
            glm_resample_h_rows(pl, src + (size_t) first_new * in_row,
                sb->window + (size_t) (first_new - a) * out_row, b - first_new);
        }
        sb->wa = a;
        sb->wb = b;
        glm_resample_v_rows(pl, sb->window, a, j->rw, sb->strip, y0, y1);
    }
    return sb->strip;
}

/* Thread `thread` of nthreads: its block rows of every group. */
static void
job_thread(job *j, int thread)
{
    const glm_resample_plan *pl = &j->plan;
    slot_buf sb[GLM_MAX_TPS];
    const uint8_t *slot[GLM_MAX_TPS];
    size_t strip_bytes = 3 * (size_t) j->rw * j->strip_rows;
    float *buf = NULL;
    int n_br = j->gh / j->merge, b0, b1, g, br, t;

    b0 = (int) ((int64_t) n_br * thread / j->nthreads);
    b1 = (int) ((int64_t) n_br * (thread + 1) / j->nthreads);
    memset(sb, 0, sizeof(sb));
    buf = malloc(sizeof(float) * (size_t) j->patch_dim);
    if (buf == NULL) {
        goto fail;
    }
    for (t = 0; t < j->tps && (pl->need_h || pl->need_v); t++) {
        sb[t].strip = malloc(strip_bytes);
        if (sb[t].strip == NULL) {
            goto fail;
        }
        if (pl->need_h && pl->need_v && pl->h_first) {
            sb[t].window = malloc(3 * (size_t) j->rw * j->window_rows);
            if (sb[t].window == NULL) {
                goto fail;
            }
        } else if (pl->need_h && pl->need_v) {
            sb[t].mid = malloc(3 * (size_t) j->sw * j->strip_rows);
            if (sb[t].mid == NULL) {
                goto fail;
            }
        }
    }

    for (g = 0; g < j->n_groups; g++) {
        for (t = 0; t < j->tps; t++) {
            sb[t].wa = sb[t].wb = 0;     /* a new frame: the window is stale */
        }
        for (br = b0; br < b1; br++) {
            for (t = 0; t < j->tps; t++) {
                const uint8_t *src = j->frames[(size_t) g * j->tps + t];
                if (t > 0 && src == j->frames[(size_t) g * j->tps + t - 1]) {
                    slot[t] = slot[t - 1];
                    continue;
                }
                slot[t] = resize_strip(j, &sb[t], src, br * j->strip_rows);
            }
            patchify_block_row(j, slot, g, br, buf);
        }
    }
    store_fence(j);
    goto done;

fail:
    __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
done:
    for (t = 0; t < j->tps; t++) {
        free(sb[t].strip);
        free(sb[t].window);
        free(sb[t].mid);
    }
    free(buf);
}

typedef struct {
    job *j;
    int  thread;
} job_arg;

static void *
job_main(void *p)
{
    job_arg *a = p;

    job_thread(a->j, a->thread);
    return NULL;
}

/* Runs job_thread on `want` threads, the caller being thread 0; a thread
 * the system refuses to start is run by the caller after its own share. */
static void
job_run(job *j, int want)
{
    pthread_t th[MAX_THREADS];
    job_arg args[MAX_THREADS];
    int started[MAX_THREADS];
    int i;

    j->nthreads = want;
    for (i = 1; i < want; i++) {
        args[i].j = j;
        args[i].thread = i;
        started[i] = pthread_create(&th[i], NULL, job_main, &args[i]) == 0;
    }
    job_thread(j, 0);
    for (i = 1; i < want; i++) {
        if (started[i]) {
            pthread_join(th[i], NULL);
        } else {
            job_thread(j, i);
        }
    }
}

/*
 * pixel_values is large (24 bytes per resized pixel: 24 MB for a 1-megapixel
 * image) and fresh memory costs a page fault and a page clear per 4 KiB on
 * its first write, which took as long as the patchify itself.  Up to 32 MiB
 * glibc's malloc keeps freed blocks for the next request (its mmap threshold
 * adapts up to that), so a steady stream of images reuses warm memory;
 * beyond that every block is a fresh mmap, and those are allocated 2 MiB-
 * aligned and offered to transparent huge pages (a hint; the memory stays
 * free()able), 512 times fewer faults.
 */
#define HUGE_PAGE (2u << 20)
#define HUGE_OUTPUT (32u << 20)

static void *
alloc_large(size_t bytes)
{
#ifdef MADV_HUGEPAGE
    if (bytes > HUGE_OUTPUT) {
        size_t rounded = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
        void *p = aligned_alloc(HUGE_PAGE, rounded);
        if (p != NULL) {
            (void) madvise(p, rounded, MADV_HUGEPAGE);
            return p;
        }
    }
#endif
    return malloc(bytes ? bytes : 1);
}

/* Resizes and patchifies the frames into out->pixel_values. */
static int
run_frames(const uint8_t **frames, int n_groups, int sw, int sh, int rw,
    int rh, int variant, const glm_vision_proc *p, int video,
    glm_vision_input *out, glm_err *err)
{
    job *j;
    size_t n_rows, n_floats;
    int want, br, n_br, rc = -1;

    j = calloc(1, sizeof(*j));
    if (j == NULL) {
        return glm_errf(err, "out of memory");
    }
    j->frames = frames;
    j->sw = sw;
    j->sh = sh;
    j->rw = rw;
    j->rh = rh;
    j->patch = p->patch_size;
    j->merge = p->merge_size;
    j->tps = p->temporal_patch_size;
    j->gh = rh / p->patch_size;
    j->gw = rw / p->patch_size;
    j->n_groups = n_groups;
    j->patch_dim = 3 * j->tps * j->patch * j->patch;
    j->strip_rows = j->merge * j->patch;
    if (video) {
        lut_video(p, j->lut);
    } else {
        lut_image(p, j->lut);
    }

    n_rows = (size_t) n_groups * j->gh * j->gw;
    if (n_rows > SIZE_MAX / sizeof(float) / (size_t) j->patch_dim) {
        free(j);
        return glm_errf(err, "pixel_values too large");
    }
    n_floats = n_rows * j->patch_dim;
    out->pixel_values = alloc_large(n_floats * sizeof(float));
    if (out->pixel_values == NULL) {
        free(j);
        return glm_errf(err, "out of memory for %zu pixel values", n_floats);
    }
    j->out = out->pixel_values;

    if (glm_resample_plan_init(&j->plan, sw, sh, rw, rh, variant, 1) < 0) {
        glm_errf(err, "cannot resize %dx%d to %dx%d", sw, sh, rw, rh);
        goto done;
    }
    n_br = j->gh / j->merge;
    if (j->plan.need_h && j->plan.need_v && j->plan.h_first) {
        for (br = 0; br < n_br; br++) {
            int a, b;
            strip_window(&j->plan, br * j->strip_rows, (br + 1) * j->strip_rows, &a, &b);
            if (b - a > j->window_rows) {
                j->window_rows = b - a;
            }
        }
    }
#ifdef GLM_HAVE_AVX2_KERNELS
    j->stream = n_floats * sizeof(float) >= STREAM_MIN_BYTES
        && __builtin_cpu_supports("avx2");
#endif

    want = p->threads < 1 ? 1 : p->threads > MAX_THREADS ? MAX_THREADS : p->threads;
    if (want > rh / MIN_ROWS_PER_THREAD) {
        want = rh / MIN_ROWS_PER_THREAD > 0 ? rh / MIN_ROWS_PER_THREAD : 1;
    }
    if (want > n_br) {
        want = n_br > 0 ? n_br : 1;
    }
    job_run(j, want);
    if (j->failed) {
        glm_errf(err, "out of memory");
        goto done;
    }
    rc = 0;

done:
    glm_resample_plan_free(&j->plan);
    free(j);
    if (rc < 0) {
        free(out->pixel_values);
        out->pixel_values = NULL;
    }
    return rc;
}

static int
check_proc(const glm_vision_proc *p, glm_err *err)
{
    if (p->patch_size <= 0 || p->merge_size <= 0 || p->temporal_patch_size <= 0
        || p->temporal_patch_size > GLM_MAX_TPS || p->patch_size > 1024 || p->merge_size > 64) {
        return glm_errf(err, "vision processor: patch %d, merge %d, temporal %d",
            p->patch_size, p->merge_size, p->temporal_patch_size);
    }
    return 0;
}

void
glm_vision_input_free(glm_vision_input *vi)
{
    if (vi == NULL) {
        return;
    }
    free(vi->pixel_values);
    free(vi->pair_seconds);
    memset(vi, 0, sizeof(*vi));
}

int
glm_preprocess_image(const glm_image *im, const glm_vision_proc *p,
    glm_vision_input *out, glm_err *err)
{
    const uint8_t *frames[GLM_MAX_TPS], *rgb;
    uint8_t *keyed = NULL;
    int rh, rw, t, rc;

    memset(out, 0, sizeof(*out));
    if (check_proc(p, err) < 0) {
        return -1;
    }
    if (im == NULL || im->rgb == NULL || im->width <= 0 || im->height <= 0) {
        return glm_errf(err, "empty image");
    }
    if (glm_smart_resize(p->temporal_patch_size, im->height, im->width,
            p->patch_size * p->merge_size, p->temporal_patch_size,
            p->min_pixels, p->max_pixels, &rh, &rw, err) < 0) {
        return -1;
    }
    rgb = im->rgb;
    if (im->has_key) {
        /* convert_to_rgb: RGBA with the key colour transparent, composited
         * on opaque white: the key's pixels turn white, the rest stay */
        size_t i, n = (size_t) im->width * im->height;
        keyed = malloc(3 * n);
        if (keyed == NULL) {
            return glm_errf(err, "out of memory");
        }
        for (i = 0; i < n; i++) {
            const uint8_t *px = im->rgb + 3 * i;
            int is_key = px[0] == im->key_rgb[0] && px[1] == im->key_rgb[1]
                && px[2] == im->key_rgb[2];
            keyed[3 * i] = is_key ? 255 : px[0];
            keyed[3 * i + 1] = is_key ? 255 : px[1];
            keyed[3 * i + 2] = is_key ? 255 : px[2];
        }
        rgb = keyed;
    }
    for (t = 0; t < p->temporal_patch_size; t++) {
        frames[t] = rgb;
    }
    rc = run_frames(frames, 1, im->width, im->height, rw, rh, GLM_RESAMPLE_PIL,
        p, 0, out, err);
    free(keyed);
    if (rc < 0) {
        return -1;
    }
    out->grid_t = 1;
    out->grid_h = rh / p->patch_size;
    out->grid_w = rw / p->patch_size;
    out->n_patches = (int64_t) out->grid_h * out->grid_w;
    out->patch_dim = 3 * p->temporal_patch_size * p->patch_size * p->patch_size;
    return 0;
}

int
glm_preprocess_video(const glm_video *v, const glm_vision_proc *p,
    glm_vision_input *out, glm_err *err)
{
    const uint8_t **frames;
    size_t frame_bytes;
    double fps;
    int rh, rw, n_groups, n_pad, i, tps;

    memset(out, 0, sizeof(*out));
    if (check_proc(p, err) < 0) {
        return -1;
    }
    if (v == NULL || v->rgb == NULL || v->n_frames <= 0 || v->width <= 0
        || v->height <= 0) {
        return glm_errf(err, "empty video");
    }
    tps = p->temporal_patch_size;
    /* the budget covers all sampled frames, before padding */
    if (glm_smart_resize(v->n_frames, v->height, v->width,
            p->patch_size * p->merge_size, tps, p->min_pixels, p->max_pixels,
            &rh, &rw, err) < 0) {
        return -1;
    }
    n_groups = (v->n_frames + tps - 1) / tps;
    n_pad = n_groups * tps;
    frames = malloc(sizeof(*frames) * (size_t) n_pad);
    out->pair_seconds = malloc(sizeof(int) * (size_t) n_groups);
    if (frames == NULL || out->pair_seconds == NULL) {
        free(frames);
        free(out->pair_seconds);
        out->pair_seconds = NULL;
        return glm_errf(err, "out of memory");
    }
    frame_bytes = 3 * (size_t) v->width * v->height;
    for (i = 0; i < n_pad; i++) {
        int f = i < v->n_frames ? i : v->n_frames - 1;  /* repeat the last */
        frames[i] = v->rgb + (size_t) f * frame_bytes;
    }
    /* processing_glm4v: timestamps = [idx / fps for idx in frames_indices]
     * [::2], printed as int(); fps 24 when the container has none */
    fps = v->meta.fps > 0 && isfinite(v->meta.fps) ? v->meta.fps : 24.0;
    for (i = 0; i < n_groups; i++) {
        int k = 2 * i < v->n_frames ? 2 * i : v->n_frames - 1;
        double idx = v->frame_index != NULL ? v->frame_index[k] : k;
        double s = idx / fps;
        out->pair_seconds[i] = s < 2147483647.0 ? (int) s : 2147483647;
    }
    if (run_frames(frames, n_groups, v->width, v->height, rw, rh,
            GLM_RESAMPLE_TORCH, p, 1, out, err) < 0) {
        free(frames);
        free(out->pair_seconds);
        out->pair_seconds = NULL;
        return -1;
    }
    free(frames);
    out->grid_t = n_groups;
    out->grid_h = rh / p->patch_size;
    out->grid_w = rw / p->patch_size;
    out->n_patches = (int64_t) n_groups * out->grid_h * out->grid_w;
    out->patch_dim = 3 * tps * p->patch_size * p->patch_size;
    return 0;
}

/* ---- frame samplers ---------------------------------------------------------- */

/* Appends v unless already present (the sequences are ascending, so the
 * last entry is the one to compare; the scan is for safety only). */
static int
push_unique(int *idx, int *n, int max_idx, int v, glm_err *err)
{
    int i;

    if (*n > 0 && idx[*n - 1] == v) {
        return 0;
    }
    for (i = *n - 2; i >= 0; i--) {
        if (idx[i] == v) {
            return 0;
        }
    }
    if (*n >= max_idx) {
        return glm_errf(err, "video: more than %d frames sampled", max_idx);
    }
    idx[(*n)++] = v;
    return 0;
}

/*
 * Glm4vVideoProcessor.sample_frames (transformers 5.23):
 *   duration = metadata.duration or round((total - 1) / fps) + 1
 *   duration <= max_duration: n = max(floor(duration * target_fps), 1),
 *       idx_i = min(total - 1, ceil(i * fps / target_fps))
 *   else: n = int(max_duration * target_fps); all frames if n >= total, else
 *       idx_i = min(total - 1, ceil(t_i * fps)), t = linspace(0, duration, n)
 *   drop repeats keeping the first; an odd count repeats the last index.
 */
int
glm_sample_frames_fps(void *ctx, const glm_video_meta *meta, int *idx,
    int max_idx, glm_err *err)
{
    const glm_vision_proc *p = ctx;
    double duration, target;
    int64_t last, i, n;
    int count = 0;

    if (p == NULL || meta == NULL || idx == NULL) {
        return glm_errf(err, "video sampler: no configuration");
    }
    if (meta->total_frames <= 0) {
        return glm_errf(err, "video has no frames");
    }
    if (!(meta->fps > 0) || !isfinite(meta->fps)) {
        return glm_errf(err, "video has no frame rate");
    }
    target = p->fps;
    if (!(target > 0) || !isfinite(target)) {
        return glm_errf(err, "video sampling fps %g is not positive", target);
    }
    last = meta->total_frames - 1;
    duration = meta->duration != 0.0 ? meta->duration
                                     : rint((double) last / meta->fps) + 1;
    if (!isfinite(duration)) {
        return glm_errf(err, "video duration is not a number");
    }

    if (duration <= p->max_duration) {
        double fn = floor(duration * target);
        n = fn < 1 ? 1 : fn > 1e12 ? (int64_t) 1e12 : (int64_t) fn;
        for (i = 0; i < n; i++) {
            double c = ceil((double) i * meta->fps / target);
            int64_t f = c >= (double) last ? last : (int64_t) c;
            if (push_unique(idx, &count, max_idx, (int) f, err) < 0) {
                return -1;
            }
            if (f == last) {
                break;                  /* every later index is the last too */
            }
        }
    } else {
        double fs = p->max_duration * target;
        n = fs >= 1e12 ? (int64_t) 1e12 : fs > 0 ? (int64_t) fs : 0;
        if (n >= meta->total_frames) {
            for (i = 0; i <= last; i++) {
                if (push_unique(idx, &count, max_idx, (int) i, err) < 0) {
                    return -1;
                }
            }
        } else {
            /* numpy.linspace(0, duration, n): i * (duration / (n - 1)), the
             * last exactly duration */
            double step = n > 1 ? duration / (double) (n - 1) : 0.0;
            for (i = 0; i < n; i++) {
                double t = n > 1 && i == n - 1 ? duration
                    : n > 1 ? (double) i * step : 0.0 * duration;
                double c = ceil(t * meta->fps);
                int64_t f = c >= (double) last ? last : (int64_t) c;
                if (push_unique(idx, &count, max_idx, (int) f, err) < 0) {
                    return -1;
                }
            }
        }
    }
    if (count == 0) {
        return glm_errf(err, "video: no frames sampled");
    }
    if (count & 1) {
        if (count >= max_idx) {
            return glm_errf(err, "video: more than %d frames sampled", max_idx);
        }
        idx[count] = idx[count - 1];
        count++;
    }
    return count;
}

/*
 * vLLM's fixed frame count (--media-io-kwargs '{"video": {"num_frames": N}}',
 * vllm/multimodal/video.py, OpenCV backend): n = min(N, total) for N > 0,
 * else every frame; at least 1; every frame when n == total, else
 * numpy.linspace(0, total - 1, n, dtype=int) (floor of i * (total-1)/(n-1),
 * the last exactly total - 1).  No padding to even: the processor repeats
 * the last frame itself.
 */
int
glm_sample_uniform(void *ctx, const glm_video_meta *meta, int *idx,
    int max_idx, glm_err *err)
{
    const int *num_frames = ctx;
    int64_t total, n, i;

    if (num_frames == NULL || meta == NULL || idx == NULL) {
        return glm_errf(err, "video sampler: no frame count");
    }
    total = meta->total_frames;
    if (total <= 0) {
        return glm_errf(err, "video has no frames");
    }
    n = *num_frames > 0 && *num_frames < total ? *num_frames : total;
    if (n < 1) {
        n = 1;
    }
    if (n > max_idx) {
        return glm_errf(err, "video: %lld frames wanted, at most %d allowed",
            (long long) n, max_idx);
    }
    if (n == total) {
        for (i = 0; i < n; i++) {
            idx[i] = (int) i;
        }
        return (int) n;
    }
    {
        double delta = (double) (total - 1);
        double step = n > 1 ? delta / (double) (n - 1) : 0.0;
        for (i = 0; i < n; i++) {
            double y;
            if (n > 1 && i == n - 1) {
                y = delta;
            } else if (n > 1 && step == 0.0) {
                y = (double) i / (double) (n - 1) * delta;
            } else if (n > 1) {
                y = (double) i * step;
            } else {
                y = (double) i * delta;
            }
            idx[i] = (int) floor(y);
        }
    }
    return (int) n;
}
