/*
 * cpu_kernels_body.h: the body of the CPU kernels (cpu_kernels.h), written
 * once over a small vector vocabulary and compiled by each of
 * cpu_kernels_{avx512,avx2,generic}.c, which define before including it:
 *
 *   GLM_VW              lanes per vector
 *   GLM_MM_RMAX         rows of x per register tile (the tile is RMAX x 4)
 *   GLM_KERNELS_SYMBOL  the glm_cpu_kernels to define, GLM_KERNELS_NAME its name
 *   glm_vf              the vector type, and these, all inline:
 *     glm_vf_zero() glm_vf_set1(f) glm_vf_load(p) glm_vf_store(p, v)
 *     glm_vf_fma(a, b, c) = a * b + c       glm_vf_mul(a, b)   glm_vf_hsum(v)
 *     glm_vf_bf16(p) glm_vf_f16(p) glm_vf_fp8(p)   VW stored weights at byte p,
 *                                                  widened exactly
 *     glm_vf_round_bf16(v)                         glm_f32_to_bf16 and back
 *
 * The matmul is written for memory speed at decode and compute speed at
 * prefill: a task owns a block of output columns (weight rows), and within it
 * sub-blocks of GLM_MM_NB columns whose weights stay in L2 while every row
 * tile of x goes past them; the register tile multiplies RMAX rows of x by 4
 * weight rows, widening each weight vector once for the RMAX rows.  So a
 * decode step (rows <= RMAX) reads each weight byte once, and a prefill reads
 * it once per step from memory and once per row tile from L2.
 */

#include <math.h>
#include <string.h>

#include "util/util.h"

#define GLM_MM_C   4          /* weight rows per register tile */
#ifndef GLM_MM_C_FEW
#define GLM_MM_C_FEW GLM_MM_C /* the same for tiles of 1 or 2 rows of x */
#endif
#define GLM_MM_CMAX (GLM_MM_C_FEW > GLM_MM_C ? GLM_MM_C_FEW : GLM_MM_C)
#define GLM_MM_NB  64         /* weight rows per L2 sub-block */
/* the software prefetch of the next tile's weights goes to L2 (prefetcht1),
 * not L1: a tile's next rows are a whole L1 ahead, and non-temporal
 * prefetches into L1 were evicted by the current rows before their turn
 * (decode streamed 10-40% slower with them on a 2-core Zen 4) */
#ifndef GLM_MM_PF_LOC
#define GLM_MM_PF_LOC 2
#endif
#define GLM_MM_KC  256        /* k per dequantized chunk (GLM_WK_DEQUANT) */

/* How a weight's values reach the registers. */
typedef enum {
    GLM_WK_F32,
    GLM_WK_BF16,
    GLM_WK_F16,
    GLM_WK_FP8,               /* fp8 * scale (scale 1 when unscaled) */
    GLM_WK_FP8_BF16,          /* the same, rounded to bf16 (compressed-tensors) */
    GLM_WK_DEQUANT,           /* anything else: glm_tensor_to_f32 per chunk */
} glm_wkind;

typedef struct {
    const glm_mm_args *a;
    glm_wkind          kind;
    int                K;
    size_t             esize;          /* bytes per stored weight */
    int                chunk;          /* k per chunk: scales are constant in it */
    const glm_tensor  *scale;          /* FP8: NULL means 1 */
    glm_scale_strategy strategy;
} glm_mm_plan;

/* One register tile's weight rows: where they are and, for FP8, the scale of
 * each over the current chunk. */
typedef struct {
    const uint8_t *w[GLM_MM_CMAX];
    int64_t        n[GLM_MM_CMAX];     /* weight row of each (repeated past N) */
    float          s[GLM_MM_CMAX];
    int            C;                  /* weight rows in this tile shape */
    size_t         next;               /* bytes from the rows to the next tile's */
    float          buf[GLM_MM_CMAX][GLM_MM_KC];
} glm_mm_tile;

static float
glm_mm_scale_at(const glm_tensor *s, int64_t i)
{
    uint16_t h;
    float f;

    if (s->dtype == GLM_DTYPE_F32) {
        memcpy(&f, (const unsigned char *) s->data + i * 4, 4);
        return f;
    }
    memcpy(&h, (const unsigned char *) s->data + i * 2, 2);
    return glm_bf16_to_f32(h);
}

/* The scales of the tile's rows over the chunk starting at k0, or the chunk
 * itself, dequantized (GLM_WK_DEQUANT). */
static void
glm_mm_chunk_begin(const glm_mm_plan *p, glm_mm_tile *t, int k0, int kc)
{
    const glm_tensor *w = p->a->w, *s = p->scale;
    int c;

    for (c = 0; c < t->C; c++) {
        if (p->kind == GLM_WK_DEQUANT) {
            glm_tensor_to_f32(w, t->n[c] * p->K + k0, kc, t->buf[c]);
            continue;
        }
        if (s == NULL) {
            t->s[c] = 1.0f;
            continue;
        }
        switch (p->strategy) {
        case GLM_SCALE_CHANNEL:
            t->s[c] = glm_mm_scale_at(s, w->scale_row0 + t->n[c]);
            break;
        case GLM_SCALE_BLOCK:
            t->s[c] = glm_mm_scale_at(s, (w->scale_row0 + t->n[c]) / w->block[0]
                                         * s->shape[1] + (w->scale_col0 + k0) / w->block[1]);
            break;
        default:
            t->s[c] = glm_mm_scale_at(s, 0);
            break;
        }
    }
}

/* VW weights of tile row c from element k (k - k0 into the chunk). */
static inline __attribute__((always_inline)) glm_vf
glm_mm_load_w(glm_wkind kind, const glm_mm_tile *t, int c, int k, int k0)
{
    glm_vf v;

    switch (kind) {
    case GLM_WK_F32:
        return glm_vf_load((const float *) t->w[c] + k);
    case GLM_WK_BF16:
        return glm_vf_bf16(t->w[c] + 2 * (size_t) k);
    case GLM_WK_F16:
        return glm_vf_f16(t->w[c] + 2 * (size_t) k);
    case GLM_WK_FP8:
        return glm_vf_mul(glm_vf_fp8(t->w[c] + k), glm_vf_set1(t->s[c]));
    case GLM_WK_FP8_BF16:
        v = glm_vf_mul(glm_vf_fp8(t->w[c] + k), glm_vf_set1(t->s[c]));
        return glm_vf_round_bf16(v);
    default:
        return glm_vf_load(t->buf[c] + (k - k0));
    }
}

/* One weight of tile row c, as the vector path widens it. */
static inline float
glm_mm_scalar_w(glm_wkind kind, const glm_mm_tile *t, int c, int k, int k0)
{
    uint16_t h;
    float f;

    switch (kind) {
    case GLM_WK_F32:
        memcpy(&f, t->w[c] + 4 * (size_t) k, 4);
        return f;
    case GLM_WK_BF16:
        memcpy(&h, t->w[c] + 2 * (size_t) k, 2);
        return glm_bf16_to_f32(h);
    case GLM_WK_F16:
        memcpy(&h, t->w[c] + 2 * (size_t) k, 2);
        return glm_f16_to_f32(h);
    case GLM_WK_FP8:
        return glm_fp8_e4m3_to_f32(t->w[c][k]) * t->s[c];
    case GLM_WK_FP8_BF16:
        return glm_bf16_to_f32(glm_f32_to_bf16(glm_fp8_e4m3_to_f32(t->w[c][k]) * t->s[c]));
    default:
        return t->buf[c][k - k0];
    }
}

/*
 * out[r, n[c]] for r < R (R rows of x from x0) and the tile's C weight rows
 * (cols of them are real; the others repeat the last and are not stored).
 * R, C and kind are constants at each call, so the accumulators live in
 * registers: R x C vectors of VW partial sums each.  Each column's sum is
 * its own, in k order: C does not change any result.
 */
static inline __attribute__((always_inline)) void
glm_mm_tile_rows(const glm_mm_plan *p, glm_mm_tile *t, const float *x0, int R, int C,
    int cols, float *out0, glm_wkind kind)
{
    const glm_mm_args *a = p->a;
    glm_vf acc[GLM_MM_RMAX][GLM_MM_CMAX], wv[GLM_MM_CMAX], xv;
    float tail[GLM_MM_RMAX][GLM_MM_CMAX], b;
    int K = p->K, k0, k, kend, r, c;

#pragma GCC unroll 4
    for (r = 0; r < R; r++) {
#pragma GCC unroll 8
        for (c = 0; c < C; c++) {
            acc[r][c] = glm_vf_zero();
            tail[r][c] = 0.0f;
        }
    }
    for (k0 = 0; k0 < K; k0 += p->chunk) {
        kend = K - k0 < p->chunk ? K : k0 + p->chunk;
        if (kind >= GLM_WK_FP8) {
            glm_mm_chunk_begin(p, t, k0, kend - k0);
        }
        /* fully unrolled (R and C are constants): the accumulators
         * and the widened weights must stay in registers */
        for (k = k0; k + GLM_VW <= kend; k += GLM_VW) {
#pragma GCC unroll 8
            for (c = 0; c < C; c++) {
                /* the next tile's rows (the next 4 weight rows in memory),
                 * so they arrive while this tile computes: rows of a few KB
                 * are a page each, where the hardware prefetchers stop */
                __builtin_prefetch(t->w[c] + t->next + k * p->esize, 0, GLM_MM_PF_LOC);
                wv[c] = glm_mm_load_w(kind, t, c, k, k0);
            }
#pragma GCC unroll 4
            for (r = 0; r < R; r++) {
                xv = glm_vf_load(x0 + r * a->ldx + k);
#pragma GCC unroll 8
                for (c = 0; c < C; c++) {
                    acc[r][c] = glm_vf_fma(wv[c], xv, acc[r][c]);
                }
            }
        }
        /* chunks are whole vectors but for the last one: this is K's tail */
        for (; k < kend; k++) {
            for (c = 0; c < C; c++) {
                float w = glm_mm_scalar_w(kind, t, c, k, k0);
                for (r = 0; r < R; r++) {
                    tail[r][c] += x0[r * a->ldx + k] * w;
                }
            }
        }
    }
    for (c = 0; c < cols; c++) {
        b = 0.0f;
        if (a->bias != NULL) {
            glm_tensor_to_f32(a->bias, t->n[c], 1, &b);
        }
        for (r = 0; r < R; r++) {
            out0[r * a->ldo + t->n[c]] = (glm_vf_hsum(acc[r][c]) + tail[r][c]) + b;
        }
    }
}

/* One instance per weight kind, R chosen by a switch so that each case has
 * its constant row count. */
#define GLM_MM_KIND_FN(fn, KIND)                                               \
static void                                                                    \
fn(const glm_mm_plan *p, glm_mm_tile *t, const float *x0, int R, int cols,     \
    float *out0)                                                               \
{                                                                              \
    switch (R) {                                                               \
    case 1: glm_mm_tile_rows(p, t, x0, 1, GLM_MM_C_FEW, cols, out0, KIND); break; \
    case 2: glm_mm_tile_rows(p, t, x0, 2, GLM_MM_C_FEW, cols, out0, KIND); break; \
    GLM_MM_CASES_ABOVE_2(p, t, x0, cols, out0, KIND)                           \
    }                                                                          \
}

#if GLM_MM_RMAX == 4
#define GLM_MM_CASES_ABOVE_2(p, t, x0, cols, out0, KIND)                       \
    case 3: glm_mm_tile_rows(p, t, x0, 3, GLM_MM_C, cols, out0, KIND); break;  \
    default: glm_mm_tile_rows(p, t, x0, 4, GLM_MM_C, cols, out0, KIND); break;
#elif GLM_MM_RMAX == 2
#define GLM_MM_CASES_ABOVE_2(p, t, x0, cols, out0, KIND)
#else
#error "GLM_MM_RMAX must be 2 or 4"
#endif

GLM_MM_KIND_FN(glm_mm_tile_f32, GLM_WK_F32)
GLM_MM_KIND_FN(glm_mm_tile_bf16, GLM_WK_BF16)
GLM_MM_KIND_FN(glm_mm_tile_f16, GLM_WK_F16)
GLM_MM_KIND_FN(glm_mm_tile_fp8, GLM_WK_FP8)
GLM_MM_KIND_FN(glm_mm_tile_fp8_bf16, GLM_WK_FP8_BF16)
GLM_MM_KIND_FN(glm_mm_tile_dequant, GLM_WK_DEQUANT)

typedef void (*glm_mm_tile_fn)(const glm_mm_plan *p, glm_mm_tile *t, const float *x0,
    int R, int cols, float *out0);

static void
glm_mm_plan_init(glm_mm_plan *p, const glm_mm_args *a)
{
    const glm_tensor *w = a->w;

    p->a = a;
    p->K = (int) w->shape[1];
    p->chunk = p->K > 0 ? p->K : 1;
    p->scale = NULL;
    p->strategy = GLM_SCALE_NONE;
    p->esize = glm_dtype_size(w->dtype);
    switch (w->dtype) {
    case GLM_DTYPE_F32:
        p->kind = GLM_WK_F32;
        return;
    case GLM_DTYPE_BF16:
        p->kind = GLM_WK_BF16;
        return;
    case GLM_DTYPE_F16:
        p->kind = GLM_WK_F16;
        return;
    case GLM_DTYPE_F8_E4M3:
        p->kind = GLM_WK_FP8;
        if (w->scale == NULL || w->scale_strategy == GLM_SCALE_NONE) {
            return;
        }
        p->scale = w->scale;
        p->strategy = w->scale_strategy;
        if (w->scale->dtype == GLM_DTYPE_BF16 && !w->scale_exact) {
            p->kind = GLM_WK_FP8_BF16;
        }
        if (p->strategy != GLM_SCALE_BLOCK) {
            return;
        }
        /* a column shard starting inside a scale block (tensor parallel)
         * has blocks the chunks do not line up with: dequantize */
        if (w->block[1] % GLM_VW == 0 && w->block[1] <= INT32_MAX
            && w->scale_col0 % w->block[1] == 0) {
            p->chunk = (int) w->block[1];
            return;
        }
        break;                  /* blocks that split a vector: dequantize */
    default:
        break;
    }
    p->kind = GLM_WK_DEQUANT;
    p->chunk = GLM_MM_KC;
}

static void
glm_mm_cols(const glm_mm_args *a, int64_t n0, int64_t n1)
{
    static const glm_mm_tile_fn by_kind[] = {
        [GLM_WK_F32] = glm_mm_tile_f32, [GLM_WK_BF16] = glm_mm_tile_bf16,
        [GLM_WK_F16] = glm_mm_tile_f16, [GLM_WK_FP8] = glm_mm_tile_fp8,
        [GLM_WK_FP8_BF16] = glm_mm_tile_fp8_bf16, [GLM_WK_DEQUANT] = glm_mm_tile_dequant,
    };
    glm_mm_plan p;
    glm_mm_tile t;
    glm_mm_tile_fn fn;
    int64_t nb, nb_end, n, r0;
    int R, C, cols, c;

    glm_mm_plan_init(&p, a);
    fn = by_kind[p.kind];
    for (nb = n0; nb < n1; nb = nb_end) {
        nb_end = n1 - nb < GLM_MM_NB ? n1 : nb + GLM_MM_NB;
        for (r0 = 0; r0 < a->rows; r0 += GLM_MM_RMAX) {
            R = a->rows - r0 < GLM_MM_RMAX ? (int) (a->rows - r0) : GLM_MM_RMAX;
            /* few rows: more weight rows per tile, more streams in flight */
            C = R <= 2 ? GLM_MM_C_FEW : GLM_MM_C;
            t.C = C;
            t.next = (size_t) C * (size_t) p.K * p.esize;
            for (n = nb; n < nb_end; n += C) {
                cols = nb_end - n < C ? (int) (nb_end - n) : C;
                for (c = 0; c < GLM_MM_CMAX; c++) {
                    t.n[c] = n + (c < cols ? c : cols - 1);
                    t.w[c] = (const uint8_t *) a->w->data
                             + (size_t) t.n[c] * (size_t) p.K * p.esize;
                }
                fn(&p, &t, a->x + r0 * a->ldx, R, cols, a->out + r0 * a->ldo);
            }
        }
    }
}

/* ---- attention ------------------------------------------------------------ */

static float
glm_k_dot(const float *a, const float *b, int n)
{
    glm_vf acc = glm_vf_zero();
    float tail = 0.0f;
    int i;

    for (i = 0; i + GLM_VW <= n; i += GLM_VW) {
        acc = glm_vf_fma(glm_vf_load(a + i), glm_vf_load(b + i), acc);
    }
    for (; i < n; i++) {
        tail += a[i] * b[i];
    }
    return glm_vf_hsum(acc) + tail;
}

/* y = y * c + sum_j p[j] * v[j][:], n values: four vectors of y at a time,
 * so that four independent FMA chains hide the FMA latency */
static void
glm_k_scale_axpy(float *y, float c, const float *p, const float * const *v, int nv,
    int n)
{
    glm_vf a0, a1, a2, a3, pj, cv = glm_vf_set1(c);
    int i, j;

    for (i = 0; i + 4 * GLM_VW <= n; i += 4 * GLM_VW) {
        a0 = glm_vf_mul(glm_vf_load(y + i), cv);
        a1 = glm_vf_mul(glm_vf_load(y + i + GLM_VW), cv);
        a2 = glm_vf_mul(glm_vf_load(y + i + 2 * GLM_VW), cv);
        a3 = glm_vf_mul(glm_vf_load(y + i + 3 * GLM_VW), cv);
        for (j = 0; j < nv; j++) {
            pj = glm_vf_set1(p[j]);
            a0 = glm_vf_fma(pj, glm_vf_load(v[j] + i), a0);
            a1 = glm_vf_fma(pj, glm_vf_load(v[j] + i + GLM_VW), a1);
            a2 = glm_vf_fma(pj, glm_vf_load(v[j] + i + 2 * GLM_VW), a2);
            a3 = glm_vf_fma(pj, glm_vf_load(v[j] + i + 3 * GLM_VW), a3);
        }
        glm_vf_store(y + i, a0);
        glm_vf_store(y + i + GLM_VW, a1);
        glm_vf_store(y + i + 2 * GLM_VW, a2);
        glm_vf_store(y + i + 3 * GLM_VW, a3);
    }
    for (; i + GLM_VW <= n; i += GLM_VW) {
        a0 = glm_vf_mul(glm_vf_load(y + i), cv);
        for (j = 0; j < nv; j++) {
            a0 = glm_vf_fma(glm_vf_set1(p[j]), glm_vf_load(v[j] + i), a0);
        }
        glm_vf_store(y + i, a0);
    }
    for (; i < n; i++) {
        float s = y[i] * c;
        for (j = 0; j < nv; j++) {
            s += p[j] * v[j][i];
        }
        y[i] = s;
    }
}

#define GLM_ATTN_HD_MAX 256     /* head sizes up to this take the transposed path */
#define GLM_ATTN_KV     (GLM_ATTN_KT / GLM_VW)      /* vectors per key tile */

/*
 * score[r][j] = q[r] . k[j] * scale for 4 query rows and a key tile, from
 * the tile transposed (kt[d][j]): each lane is one key, summed over d in
 * order, so no horizontal sums; 4 rows x GLM_ATTN_KV vectors of
 * independent accumulators.
 */
static inline void
glm_attn_scores4(const float * const *q, float (*kt)[GLM_ATTN_KT], int hd, float scale,
    float (*score)[GLM_ATTN_KT], int nr)
{
    glm_vf acc[4][GLM_ATTN_KV], kv;
    int d, r, v;

#pragma GCC unroll 4
    for (r = 0; r < 4; r++) {
#pragma GCC unroll 4
        for (v = 0; v < GLM_ATTN_KV; v++) {
            acc[r][v] = glm_vf_zero();
        }
    }
    for (d = 0; d < hd; d++) {
#pragma GCC unroll 4
        for (v = 0; v < GLM_ATTN_KV; v++) {
            kv = glm_vf_load(kt[d] + v * GLM_VW);
#pragma GCC unroll 4
            for (r = 0; r < 4; r++) {
                acc[r][v] = glm_vf_fma(glm_vf_set1(q[r][d]), kv, acc[r][v]);
            }
        }
    }
    for (r = 0; r < nr; r++) {
        for (v = 0; v < GLM_ATTN_KV; v++) {
            glm_vf_store(score[r] + v * GLM_VW, glm_vf_mul(acc[r][v], glm_vf_set1(scale)));
        }
    }
}

/* Query rows [row0, row0 + rows) of an attention task (row = token of the
 * tile * group + head in the group), at most GLM_ATTN_ROWS. */
static void
glm_attn_rows(const glm_attn_args *a, int t0, int kvh, int row0, int rows)
{
    const glm_attn_batch *b = a->b;
    const glm_kv_pool *kv = a->kv;
    int group = a->heads / a->kv_heads, hd = a->head_dim;
    const glm_seq_blocks *s = &b->seqs[b->seq[t0]];
    float score[GLM_ATTN_ROWS][GLM_ATTN_KT], mx[GLM_ATTN_ROWS], sum[GLM_ATTN_ROWS];
    float kt_tile[GLM_ATTN_HD_MAX][GLM_ATTN_KT];
    float k_wide[GLM_ATTN_KT][GLM_ATTN_HD_MAX], v_wide[GLM_ATTN_KT][GLM_ATTN_HD_MAX];
    const float *kp[GLM_ATTN_KT], *vp[GLM_ATTN_KT], *q[GLM_ATTN_ROWS];
    float *o[GLM_ATTN_ROWS];
    int last[GLM_ATTN_ROWS], max_pos = 0, p0, kt, r, j, d;

    if (kv->dtype != GLM_KV_F32 && hd > GLM_ATTN_HD_MAX) {
        /* glm_model_set_kv_dtype refuses such a model: reaching here is a bug */
        fprintf(stderr, "glm-engine: internal error: a %s KV cache with head_dim %d"
                " (at most %d)\n", glm_kv_dtype_name(kv->dtype), hd, GLM_ATTN_HD_MAX);
        abort();
    }
    for (r = 0; r < rows; r++) {
        int i = t0 + (row0 + r) / group, h = kvh * group + (row0 + r) % group;
        q[r] = a->q + ((int64_t) i * a->heads + h) * hd;
        o[r] = a->out + ((int64_t) i * a->heads + h) * hd;
        last[r] = b->kv_pos[i];
        max_pos = last[r] > max_pos ? last[r] : max_pos;
        mx[r] = -INFINITY;
        sum[r] = 0.0f;
        memset(o[r], 0, (size_t) hd * sizeof(float));
    }
    for (p0 = 0; p0 <= max_pos; p0 += GLM_ATTN_KT) {
        kt = max_pos + 1 - p0 < GLM_ATTN_KT ? max_pos + 1 - p0 : GLM_ATTN_KT;
        for (j = 0; j < kt; j++) {
            const void *kr = glm_kv_slot(kv, kv->k, a->layer, s, p0 + j);
            const void *vr = glm_kv_slot(kv, kv->v, a->layer, s, p0 + j);

            if (kv->dtype == GLM_KV_F32) {
                kp[j] = (const float *) kr + kvh * hd;
                vp[j] = (const float *) vr + kvh * hd;
            } else {
                /* a narrow cache: each row widened once for the whole task
                 * (every query head of the GQA group, every token of the
                 * tile), into buffers that stay in L1 */
                glm_kv_widen(kv->dtype, kr, (int64_t) kvh * hd, hd, kv->k_scale[a->layer],
                             k_wide[j]);
                glm_kv_widen(kv->dtype, vr, (int64_t) kvh * hd, hd, kv->v_scale[a->layer],
                             v_wide[j]);
                kp[j] = k_wide[j];
                vp[j] = v_wide[j];
            }
        }
        /* scores: each key row is read once for all the task's query rows */
        if (hd <= GLM_ATTN_HD_MAX) {
            for (d = 0; d < hd; d++) {
                for (j = 0; j < GLM_ATTN_KT; j++) {
                    kt_tile[d][j] = j < kt ? kp[j][d] : 0.0f;
                }
            }
            for (r = 0; r < rows; r += 4) {
                const float *q4[4];
                int rr;
                for (rr = 0; rr < 4; rr++) {
                    q4[rr] = q[r + rr < rows ? r + rr : r];
                }
                glm_attn_scores4(q4, kt_tile, hd, a->scale, score + r,
                                 rows - r < 4 ? rows - r : 4);
            }
        } else {
            for (j = 0; j < kt; j++) {
                for (r = 0; r < rows; r++) {
                    score[r][j] = glm_k_dot(q[r], kp[j], hd) * a->scale;
                }
            }
        }
        /* online softmax: rescale what the earlier key tiles summed */
        for (r = 0; r < rows; r++) {
            float m = mx[r], corr, part = 0.0f;
            int n = last[r] + 1 - p0 < kt ? last[r] + 1 - p0 : kt;

            if (n <= 0) {
                continue;
            }
            for (j = 0; j < n; j++) {
                m = score[r][j] > m ? score[r][j] : m;
            }
            corr = expf(mx[r] - m);         /* 0 on the first tile */
            for (j = 0; j < n; j++) {
                score[r][j] = expf(score[r][j] - m);
                part += score[r][j];
            }
            sum[r] = sum[r] * corr + part;
            mx[r] = m;
            glm_k_scale_axpy(o[r], corr, score[r], vp, n, hd);
        }
    }
    for (r = 0; r < rows; r++) {
        for (d = 0; d < hd; d++) {
            o[r][d] /= sum[r];
        }
    }
}

static void
glm_attn_tile(const glm_attn_args *a, int64_t tile, int kvh)
{
    int t0 = a->tiles[tile], nt = a->tiles[tile + 1] - t0;
    int rows = nt * (a->heads / a->kv_heads), r0;

    for (r0 = 0; r0 < rows; r0 += GLM_ATTN_ROWS) {
        glm_attn_rows(a, t0, kvh, r0, rows - r0 < GLM_ATTN_ROWS ? rows - r0 : GLM_ATTN_ROWS);
    }
}

const glm_cpu_kernels GLM_KERNELS_SYMBOL = {
    .name = GLM_KERNELS_NAME,
    .matmul_cols = glm_mm_cols,
    .attn_tile = glm_attn_tile,
    .dot = glm_k_dot,
};
