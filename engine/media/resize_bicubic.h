/*
 * resize_bicubic.h: bicubic resampling of 8-bit RGB, bit-exact with the two
 * resamplers the GLM-4V processors use (internal to the media code; the
 * public entry points are in media.h).
 *
 *   GLM_RESAMPLE_PIL    Pillow 13's Image.resize(size, BICUBIC): the image
 *                       processor (PIL backend).  Coefficients in double,
 *                       normalised, rounded to 22-bit fixed point; the
 *                       vertical pass runs first when the height shrinks by
 *                       more than twice as many pixels as the width does,
 *                       else the horizontal one.
 *   GLM_RESAMPLE_TORCH  torch's uint8 antialiased bicubic (what
 *                       torchvision.transforms.v2.functional.resize(...,
 *                       BICUBIC, antialias=True) runs on uint8 tensors): the
 *                       video processor.  The same filter support, but int16
 *                       coefficients whose precision is chosen from the
 *                       largest weight of the axis (at most 22 bits, usually
 *                       14), its own rounding of the cubic's outer lobe, and
 *                       always the horizontal pass first.
 *
 * Both are separable two-pass filters whose intermediate image is rounded
 * and clipped to uint8.  Each output sample is (sum_i p_i * k_i + 2^(prec-1))
 * >> prec, clipped to 0..255, with integer p_i and k_i and an exact integer
 * sum: any evaluation order gives the same bytes, which is what lets the
 * AVX2 kernels (x86-64, chosen at run time) differ from the scalar ones in
 * everything but the result.
 *
 * A glm_resample_plan holds the coefficient tables of one (source size,
 * destination size, variant); building it is the only floating-point work.
 * Running it is exposed row by row (a horizontal pass over any rows, a
 * vertical pass for any output rows from a window of input rows), so that
 * callers can resize a strip at a time with the intermediates in cache, and
 * give different strips to different threads.
 */
#ifndef GLM_RESIZE_BICUBIC_H
#define GLM_RESIZE_BICUBIC_H

#include <stddef.h>
#include <stdint.h>

enum {
    GLM_RESAMPLE_PIL = 0,
    GLM_RESAMPLE_TORCH = 1
};

/* One axis: for each output position, the first input index, the tap count
 * and taps coefficients (int32; ksize per output, zero-padded). */
typedef struct {
    int       in_size, out_size;
    int       ksize;              /* coefficients stored per output (even) */
    int       prec;               /* fixed-point bits */
    int      *start;              /* [out_size] */
    int      *count;              /* [out_size] */
    int32_t  *coef;               /* [out_size][ksize] */
    int16_t  *coef_hi, *coef_lo;  /* the same split as k = hi * 2^11 + lo */
    int       simd_end;           /* outputs below this may use 8-byte loads */
} glm_resample_axis;

typedef struct {
    int       sw, sh, dw, dh;
    int       variant;
    int       need_h, need_v;
    int       h_first;            /* horizontal pass first */
    int       tmp_w, tmp_h;       /* the intermediate image */
    int       tmp_row0;           /* first source row the first pass reads */
    glm_resample_axis h, v;
    int       simd;               /* 1: AVX2 kernels */
} glm_resample_plan;

/* Builds the tables.  simd: 1 to allow AVX2 (used only where the CPU has
 * it), 0 for the scalar kernels.  0, or -1 on bad sizes or no memory. */
int glm_resample_plan_init(glm_resample_plan *plan, int sw, int sh, int dw,
    int dh, int variant, int simd);
void glm_resample_plan_free(glm_resample_plan *plan);

/* Rows of the intermediate image when both passes are needed, else 0. */
int glm_resample_first_rows(const glm_resample_plan *plan);

/* n rows of the horizontal pass: in (sw pixels a row, or dw... the axis'
 * input width) -> out (dw pixels a row). */
void glm_resample_h_rows(const glm_resample_plan *plan, const uint8_t *in,
    uint8_t *out, int n);
/* Output rows [begin, end) of the vertical pass, images `width` pixels
 * wide: out receives row `begin` first; `in` holds the input rows from
 * in_row0 on (so it must cover v.start[y] .. v.start[y] + v.count[y] - 1
 * for every y in the range). */
void glm_resample_v_rows(const glm_resample_plan *plan, const uint8_t *in,
    int in_row0, int width, uint8_t *out, int begin, int end);

/* The whole resize in the calling thread; -1 on bad sizes or no memory. */
int glm_resize_bicubic_rgb_variant(const uint8_t *src, int sw, int sh,
    uint8_t *dst, int dw, int dh, int variant, int simd);

#endif
