/*
 * vision_preprocess.c: the GLM-4V image and video processors (MODEL.md
 * sections 5-6) as transformers 5.23 runs them: Glm4vImageProcessorPil
 * (the PIL backend, which we pin for images) and Glm4vVideoProcessor (the
 * torchvision backend), plus its frame sampler and vLLM's fixed-count one.
 *
 * One pipeline serves both: a list of frames (an image is one frame repeated
 * temporal_patch_size times, which is exactly what the image processor's
 * broadcast does) goes, one temporal group at a time, through
 *
 *   resize      bicubic to the smart_resize size (resize_bicubic.c: Pillow's
 *               fixed point for images, torch's for videos), two row passes;
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
 * Threads: a call may split its rows among `threads` threads it starts and
 * joins itself (no pool, no global state); each resize pass and the
 * patchify step are split by rows, with a barrier between steps.  A
 * resized frame that is the same source as the previous one is not resized
 * again.
 */
#include "media.h"
#include "resize_bicubic.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define GLM_HAVE_AVX2_KERNELS 1
#include <immintrin.h>
#endif

#define MAX_THREADS 64
/* fewer threads for small outputs: starting one costs more than this many
 * output rows of work */
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

typedef struct {
    /* input */
    const uint8_t  **frames;          /* [n_groups * tps], padded */
    int              sw, sh;
    /* output geometry */
    int              rw, rh;
    int              patch, merge, tps, gh, gw, n_groups;
    int              patch_dim;
    float            lut[3][256];
    float           *out;
    int              stream;          /* non-temporal stores (AVX2) */
    float           *rowbuf;          /* one patch row per thread */
    /* work */
    glm_resample_plan plan;
    uint8_t         *tmp;             /* first resize pass */
    uint8_t         *resized[GLM_MAX_TPS]; /* one buffer per temporal slot */
    /* threads: started behind a gate, so that the barrier is set up for
     * the number that really started */
    int              nthreads;
    pthread_barrier_t barrier;
    pthread_mutex_t  gate_mu;
    pthread_cond_t   gate_cv;
    int              gate_open;
} job;

static void
job_sync(job *j)
{
    if (j->nthreads > 1) {
        pthread_barrier_wait(&j->barrier);
    }
}

static void
split(int n, int thread, int nthreads, int *begin, int *end)
{
    *begin = (int) ((int64_t) n * thread / nthreads);
    *end = (int) ((int64_t) n * (thread + 1) / nthreads);
}

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
 * patch, T from the group's frames (slot[t], resized), through buf (one
 * row). */
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
                size_t y0 = (size_t) (br * m + ir) * p;
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

/* Thread `thread` of nthreads: its share of every pass of every group. */
static void
job_thread(job *j, int thread)
{
    const uint8_t *slot[GLM_MAX_TPS];
    float *buf = j->rowbuf + (size_t) thread * j->patch_dim;
    int n = j->nthreads, rows1 = glm_resample_first_rows(&j->plan);
    int resize = j->rw != j->sw || j->rh != j->sh;
    int g, t, b, e;

    for (g = 0; g < j->n_groups; g++) {
        for (t = 0; t < j->tps; t++) {
            const uint8_t *src = j->frames[(size_t) g * j->tps + t];
            if (t > 0 && src == j->frames[(size_t) g * j->tps + t - 1]) {
                slot[t] = slot[t - 1];
                continue;
            }
            if (!resize) {
                slot[t] = src;
                continue;
            }
            if (rows1 > 0) {
                split(rows1, thread, n, &b, &e);
                glm_resample_first_pass(&j->plan, src, j->tmp, b, e);
                job_sync(j);
            }
            split(j->rh, thread, n, &b, &e);
            glm_resample_second_pass(&j->plan, rows1 > 0 ? j->tmp : src,
                j->resized[t], b, e);
            slot[t] = j->resized[t];
            job_sync(j);
        }
        split(j->gh / j->merge, thread, n, &b, &e);
        for (; b < e; b++) {
            patchify_block_row(j, slot, g, b, buf);
        }
        store_fence(j);
        if (g + 1 < j->n_groups) {
            job_sync(j);                /* before the buffers are reused */
        }
    }
}

typedef struct {
    job *j;
    int  thread;
} job_arg;

static void *
job_main(void *p)
{
    job_arg *a = p;
    job *j = a->j;

    pthread_mutex_lock(&j->gate_mu);
    while (!j->gate_open) {
        pthread_cond_wait(&j->gate_cv, &j->gate_mu);
    }
    pthread_mutex_unlock(&j->gate_mu);
    if (a->thread < j->nthreads) {
        job_thread(j, a->thread);
    }
    return NULL;
}

/* Runs job_thread on `want` threads (the caller is thread 0), or on as many
 * as the system lets us start. */
static void
job_run(job *j, int want)
{
    pthread_t th[MAX_THREADS];
    job_arg args[MAX_THREADS];
    int i, started = 0;

    j->nthreads = 1;
    if (want > 1) {
        pthread_mutex_init(&j->gate_mu, NULL);
        pthread_cond_init(&j->gate_cv, NULL);
        for (i = 1; i < want; i++) {
            args[i].j = j;
            args[i].thread = i;
            if (pthread_create(&th[i], NULL, job_main, &args[i]) != 0) {
                break;
            }
            started++;
        }
        pthread_mutex_lock(&j->gate_mu);
        j->nthreads = 1 + started;
        if (j->nthreads > 1
            && pthread_barrier_init(&j->barrier, NULL, (unsigned) j->nthreads) != 0) {
            j->nthreads = 1;            /* the started threads do nothing */
        }
        j->gate_open = 1;
        pthread_cond_broadcast(&j->gate_cv);
        pthread_mutex_unlock(&j->gate_mu);
    }
    job_thread(j, 0);
    for (i = 1; i <= started; i++) {
        pthread_join(th[i], NULL);
    }
    if (want > 1) {
        if (j->nthreads > 1) {
            pthread_barrier_destroy(&j->barrier);
        }
        pthread_cond_destroy(&j->gate_cv);
        pthread_mutex_destroy(&j->gate_mu);
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
    size_t n_rows, n_floats, frame_bytes;
    int t, want, rc = -1;

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
    frame_bytes = 3 * (size_t) rw * rh;
    if (rw != sw || rh != sh) {
        if (glm_resample_first_rows(&j->plan) > 0) {
            j->tmp = alloc_large(3 * (size_t) j->plan.tmp_w * j->plan.tmp_h);
            if (j->tmp == NULL) {
                glm_errf(err, "out of memory");
                goto done;
            }
        }
        /* an image is one frame repeated: one slot suffices */
        for (t = 0; t < (video ? j->tps : 1); t++) {
            j->resized[t] = alloc_large(frame_bytes);
            if (j->resized[t] == NULL) {
                glm_errf(err, "out of memory");
                goto done;
            }
        }
    }

    want = p->threads < 1 ? 1 : p->threads > MAX_THREADS ? MAX_THREADS : p->threads;
    if (want > rh / MIN_ROWS_PER_THREAD) {
        want = rh / MIN_ROWS_PER_THREAD > 0 ? rh / MIN_ROWS_PER_THREAD : 1;
    }
    j->rowbuf = malloc(sizeof(float) * (size_t) j->patch_dim * want);
    if (j->rowbuf == NULL) {
        glm_errf(err, "out of memory");
        goto done;
    }
#ifdef GLM_HAVE_AVX2_KERNELS
    j->stream = n_floats * sizeof(float) >= STREAM_MIN_BYTES
        && __builtin_cpu_supports("avx2");
#endif
    job_run(j, want);
    rc = 0;

done:
    glm_resample_plan_free(&j->plan);
    free(j->tmp);
    free(j->rowbuf);
    for (t = 0; t < j->tps; t++) {
        free(j->resized[t]);
    }
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
    const uint8_t *frames[GLM_MAX_TPS];
    int rh, rw, t;

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
    for (t = 0; t < p->temporal_patch_size; t++) {
        frames[t] = im->rgb;
    }
    if (run_frames(frames, 1, im->width, im->height, rw, rh, GLM_RESAMPLE_PIL,
            p, 0, out, err) < 0) {
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
