/*
 * safetensors.h: a checkpoint's tensors, mmap'd and checked before use.
 *
 * A checkpoint is either one `model.safetensors` or the shards named by
 * `model.safetensors.index.json`.  Each file is mapped read-only; every header
 * field (length, JSON, dtype, shape, offsets) is validated against the file
 * size before any tensor pointer is handed out, so a truncated or corrupt file
 * is a one-line error naming the file and the tensor, never a crash.
 *
 * Tensors stay in their stored dtype; the backends convert while computing.
 * FP8 E4M3 weights (compressed-tensors checkpoints) carry their scale tensor,
 * attached by the quantization loader (quant.h), and convert to the
 * dequantized values: a backend reading weights through glm_tensor_to_f32
 * serves FP8 checkpoints without knowing they are quantized.
 */
#ifndef GLM_SAFETENSORS_H
#define GLM_SAFETENSORS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/util.h"

#define GLM_MAX_DIMS 6

typedef enum {
    GLM_DTYPE_F32 = 0,
    GLM_DTYPE_F16,
    GLM_DTYPE_BF16,
    GLM_DTYPE_F8_E4M3,
    GLM_DTYPE_I64,
    GLM_DTYPE_I32,
    GLM_DTYPE_I8,
    GLM_DTYPE_U8,
    GLM_DTYPE_BOOL,
    GLM_DTYPE_F64,
} glm_dtype;

/* How an FP8 weight's scale tensor covers it (compressed-tensors strategies) */
typedef enum {
    GLM_SCALE_NONE = 0,          /* not scaled: the stored values are the values */
    GLM_SCALE_TENSOR,            /* one scale, shape [] or [1] */
    GLM_SCALE_CHANNEL,           /* one per output row, [rows, 1] */
    GLM_SCALE_BLOCK,             /* one per block, [ceil(rows/b0), ceil(cols/b1)] */
} glm_scale_strategy;

typedef struct glm_tensor {
    const char   *name;          /* owned by the checkpoint */
    const char   *file;          /* basename of the shard holding it */
    glm_dtype     dtype;
    int           ndim;
    int64_t       shape[GLM_MAX_DIMS];
    int64_t       numel;
    const void   *data;          /* inside the read-only mapping */
    size_t        nbytes;
    int           used;          /* set when the model binds it */

    /* FP8 weights: value = fp8 * scale (see glm_tensor_to_f32) */
    const struct glm_tensor *scale;  /* F32 or BF16; NULL when not scaled */
    glm_scale_strategy scale_strategy;
    int64_t       block[2];      /* rows, cols of one scale block */
    int64_t       scale_row0;    /* for a row view: its first row in the weight */
    int64_t       scale_col0;    /* for a column shard: its first column in the
                                    weight (the scale grid stays the weight's) */
    int           scale_exact;   /* keep fp8*scale in fp32 even for a BF16
                                    scale (transformers' expert path) */

    /* a GPU backend's copy, bound once when it uploads the checkpoint; valid
     * only for that upload (gen) and for exactly these bytes (a view made
     * by copying this struct has other data/nbytes and is not served it) */
    struct {
        void         *ptr;
        const void   *host;
        size_t        nbytes;
        uint64_t      gen;
    } dev;
} glm_tensor;

typedef struct glm_checkpoint glm_checkpoint;

/* Opens DIR's safetensors (sharded or single).  All headers are parsed and
 * checked here; nothing is read lazily. */
glm_checkpoint *glm_checkpoint_open(const char *dir, glm_err *err);
void glm_checkpoint_close(glm_checkpoint *ck);

/* NULL if absent. */
glm_tensor *glm_checkpoint_find(glm_checkpoint *ck, const char *name);

/* The tensor `name` with exactly the given shape (ndim dims) and a float dtype
 * (F32/F16/BF16); a one-line error naming file, tensor, expected and found
 * otherwise.  Marks the tensor used. */
glm_tensor *glm_checkpoint_get(glm_checkpoint *ck, const char *name, int ndim,
    const int64_t *shape, glm_err *err);

/* The same for an FP8 E4M3 tensor (a quantized weight, before its scale is
 * attached). */
glm_tensor *glm_checkpoint_get_fp8(glm_checkpoint *ck, const char *name, int ndim,
    const int64_t *shape, glm_err *err);

size_t glm_checkpoint_count(const glm_checkpoint *ck);
glm_tensor *glm_checkpoint_at(glm_checkpoint *ck, size_t i);
const char *glm_checkpoint_dir(const glm_checkpoint *ck);

const char *glm_dtype_name(glm_dtype t);
size_t glm_dtype_size(glm_dtype t);

/* Converts n elements starting at element `first` of a float or FP8 tensor
 * to fp32; a scaled FP8 weight gives its dequantized values. */
void glm_tensor_to_f32(const glm_tensor *t, int64_t first, int64_t n, float *out);

/* FP8 E4M3 ("e4m3fn": no infinities, S.1111.111 is NaN, max 448) to fp32,
 * exactly as torch's float8_e4m3fn.float() (NaN keeps its mantissa bits:
 * 0x7f -> 0x7ff00000). */
static inline float glm_fp8_e4m3_to_f32(uint8_t b)
{
    uint32_t sign = (uint32_t) (b & 0x80) << 24, e = (b >> 3) & 15u, m = b & 7u, u;
    float f;

    if (e == 0) {
        f = (float) m * 0.001953125f;           /* subnormal: m * 2^-9 */
        return sign ? -f : f;
    }
    if (e == 15 && m == 7) {
        u = sign | 0x7f800000u | (m << 20);
    } else {
        u = sign | ((e + 120) << 23) | (m << 20);   /* bias 7 -> 127 */
    }
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* fp32 to FP8 E4M3 ("e4m3fn"), rounding to nearest even and saturating to
 * +-448 (infinities included), as CUDA's __nv_cvt_float_to_fp8 with
 * __NV_SATFINITE and so vLLM's fp8_e4m3 KV cache; NaN stays NaN (0x7f). */
static inline uint8_t glm_f32_to_fp8_e4m3(float f)
{
    uint32_t u, mant, keep, rest;
    uint8_t sign;
    int e;

    memcpy(&u, &f, sizeof(u));
    sign = (uint8_t) ((u >> 24) & 0x80);
    u &= 0x7fffffffu;
    if (u > 0x7f800000u) {
        return sign | 0x7f;
    }
    if (u >= 0x43e00000u) {                     /* >= 448 */
        return sign | 0x7e;
    }
    e = (int) (u >> 23) - 127;
    if (e < -6) {
        /* subnormal (m * 2^-9, m < 8) or zero: the scaling by 2^9 is exact,
         * and rintf rounds to nearest even; m == 8 is the code of 2^-6 */
        float a, m;
        memcpy(&a, &u, sizeof(a));
        m = rintf(a * 512.0f);
        return sign | (uint8_t) m;
    }
    mant = u & 0x7fffffu;
    keep = mant >> 20;
    rest = mant & 0xfffffu;
    if (rest > 0x80000u || (rest == 0x80000u && (keep & 1u))) {
        keep++;
        if (keep == 8) {
            keep = 0;
            e++;
        }
    }
    /* e + 7 <= 15 here; 15 with keep 7 would be NaN, but 448 < x rounds
     * there only from x >= 464, which saturated above */
    return sign | (uint8_t) (((e + 7) << 3) | (int) keep);
}

/* "[a, b, c]" */
void glm_shape_str(char *buf, size_t size, int ndim, const int64_t *shape);

#endif
