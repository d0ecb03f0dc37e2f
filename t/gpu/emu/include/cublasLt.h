/*
 * cublasLt.h (emulated): the cuBLASLt calls kernels/gemm.cu makes, computed
 * naively from cuBLASLt's documented semantics (column-major matrices,
 * D = alpha op(A) op(B) + beta C, products accumulated in fp32 as the
 * tensor cores do, D rounded to its type once), so the emulation checks how
 * gemm.cu maps row-major activations and weights onto it.  Types: A and B
 * alike (fp32 or BF16); C and D alike, fp32, or BF16 when A and B are BF16
 * (the combinations the cuBLASLt documentation lists for CUBLAS_COMPUTE_32F).
 * A shape, leading dimension or type that does not fit is an abort, not a
 * fallback.
 *
 * Scaled FP8 (cuBLASLt 12.9+/13, Hopper): A and B CUDA_R_8F_E4M3, each with
 * a scale mode (CUBLASLT_MATMUL_DESC_A/B_SCALE_MODE) and an fp32 scale
 * tensor (A/B_SCALE_POINTER, device memory; NULL = 1 for SCALAR_32F), D
 * BF16 or fp32 (C alike).  Operand X (A: m outputs, B: n outputs, both with
 * K inner) reads its scales as documented, in the layouts Transformer
 * Engine hands cuBLASLt unchanged:
 *   SCALAR_32F      one float
 *   OUTER_VEC_32F   one per outer index (A: m, B: n); both operands so
 *   VEC128_32F      one per 1x128 block along K: s[kb * pad4(outer) + i]
 *   BLK128x128_32F  one per 128x128 block:       s[(i / 128) * pad4(KB) + kb]
 * (pad4: rounded up to a multiple of 4, KB = ceil(K / 128)).  Accepted
 * pairs on sm_90: SCALAR x SCALAR, OUTER_VEC x OUTER_VEC, VEC128 x VEC128,
 * VEC128 x BLK128x128 and BLK128x128 x VEC128 (never 2-D x 2-D); TN only
 * (A transposed, B not), leading dimensions and pointers 16-byte aligned,
 * D's leading dimension too.  The heuristic returns no algorithm for any
 * other case (as the library does); cublasLtMatmul aborts on one.  The
 * product: fp32 sums of the FP8 values per 128-element K block (per K for
 * SCALAR and OUTER_VEC), each block sum times its two scales added into an
 * fp32 accumulator, then alpha * acc (+ beta C), rounded once to D.
 */
#ifndef GLM_EMU_CUBLASLT_H
#define GLM_EMU_CUBLASLT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cuda_bf16.h"
#include "cuda_runtime.h"
#include "glm_emu_profile.h"

/* the profile build hooks every load of kernels/; this naive product reads
 * each element n times, so it reports its operands itself instead */
#ifdef GLM_EMU_PROFILE
#define GLM_EMU_UNHOOKED __attribute__((no_sanitize_address))
#else
#define GLM_EMU_UNHOOKED
#endif

typedef int cublasStatus_t;
enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_NOT_SUPPORTED = 15 };
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum { CUBLAS_COMPUTE_32F = 68 } cublasComputeType_t;
typedef enum { CUDA_R_32F = 0, CUDA_R_16BF = 14, CUDA_R_8F_E4M3 = 28 } cudaDataType_t;
typedef enum {
    CUBLASLT_MATMUL_DESC_TRANSA = 3,
    CUBLASLT_MATMUL_DESC_TRANSB = 4,
    CUBLASLT_MATMUL_DESC_A_SCALE_POINTER = 17,
    CUBLASLT_MATMUL_DESC_B_SCALE_POINTER = 18,
    CUBLASLT_MATMUL_DESC_FAST_ACCUM = 25,
    CUBLASLT_MATMUL_DESC_A_SCALE_MODE = 31,
    CUBLASLT_MATMUL_DESC_B_SCALE_MODE = 32,
} cublasLtMatmulDescAttributes_t;
typedef enum {
    CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F = 0,
    CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F = 3,
    CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F = 4,
    CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F = 5,
} cublasLtMatmulMatrixScale_t;
typedef enum {
    CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8,
} cublasLtMatmulPreferenceAttributes_t;

struct glm_emu_layout { cudaDataType_t t; uint64_t rows, cols; int64_t ld; };
struct glm_emu_desc {
    int ta, tb, fast_accum;
    cublasComputeType_t ct;
    cudaDataType_t st;
    int32_t a_mode, b_mode;
    const float *a_scale, *b_scale;
};
typedef struct glm_emu_layout *cublasLtMatrixLayout_t;
typedef struct glm_emu_desc *cublasLtMatmulDesc_t;
typedef struct glm_emu_pref *cublasLtMatmulPreference_t;
typedef struct glm_emu_lt *cublasLtHandle_t;
typedef struct { uint64_t data[8]; } cublasLtMatmulAlgo_t;
typedef struct {
    cublasLtMatmulAlgo_t algo;
    size_t workspaceSize;
    cublasStatus_t state;
    float wavesCount;
    int reserved[4];
} cublasLtMatmulHeuristicResult_t;

static inline cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) { *h = (cublasLtHandle_t) 1; return 0; }
static inline cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) { (void) h; return 0; }

static inline cublasStatus_t
cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t ct, cudaDataType_t st)
{
    *d = (cublasLtMatmulDesc_t) calloc(1, sizeof(struct glm_emu_desc));
    (*d)->ct = ct;
    (*d)->st = st;
    return 0;
}

static inline cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) { free(d); return 0; }

static inline cublasStatus_t
cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a,
    const void *v, size_t n)
{
    if (a == CUBLASLT_MATMUL_DESC_TRANSA) {
        d->ta = *(const cublasOperation_t *) v;
    } else if (a == CUBLASLT_MATMUL_DESC_TRANSB) {
        d->tb = *(const cublasOperation_t *) v;
    } else if (a == CUBLASLT_MATMUL_DESC_A_SCALE_POINTER && n == sizeof(void *)) {
        d->a_scale = *(const float *const *) v;
    } else if (a == CUBLASLT_MATMUL_DESC_B_SCALE_POINTER && n == sizeof(void *)) {
        d->b_scale = *(const float *const *) v;
    } else if (a == CUBLASLT_MATMUL_DESC_A_SCALE_MODE && n == sizeof(int32_t)) {
        d->a_mode = *(const int32_t *) v;
    } else if (a == CUBLASLT_MATMUL_DESC_B_SCALE_MODE && n == sizeof(int32_t)) {
        d->b_mode = *(const int32_t *) v;
    } else if (a == CUBLASLT_MATMUL_DESC_FAST_ACCUM && n == sizeof(int8_t)) {
        d->fast_accum = *(const int8_t *) v;
    } else {
        fprintf(stderr, "emu cublasLt: descriptor attribute %d (size %zu) not emulated\n",
                (int) a, n);
        abort();
    }
    return 0;
}

static inline cublasStatus_t
cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t t, uint64_t rows,
    uint64_t cols, int64_t ld)
{
    *l = (cublasLtMatrixLayout_t) calloc(1, sizeof(struct glm_emu_layout));
    **l = glm_emu_layout { t, rows, cols, ld };
    if (ld < (int64_t) rows) {
        fprintf(stderr, "emu cublasLt: ld %lld < rows %llu\n", (long long) ld,
                (unsigned long long) rows);
        abort();
    }
    return 0;
}

static inline cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) { free(l); return 0; }
static inline cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) { *p = (cublasLtMatmulPreference_t) 1; return 0; }
static inline cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) { (void) p; return 0; }

static inline cublasStatus_t
cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
    cublasLtMatmulPreferenceAttributes_t a, const void *v, size_t n)
{
    (void) p; (void) a; (void) v; (void) n;
    return 0;
}

static inline uint64_t glm_emu_pad4(uint64_t x) { return (x + 3) / 4 * 4; }

static inline int
glm_emu_block_mode(int32_t m)
{
    return m == CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F
           || m == CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
}

/* NULL when cuBLASLt on sm_90 has an algorithm for this matmul, else why
 * not (the non-FP8 cases: no scale mode may be set).  Pointers are checked
 * only when given (the matmul call; the heuristic sees layouts). */
static inline const char *
glm_emu_fp8_declines(const struct glm_emu_desc *d, const struct glm_emu_layout *a,
    const struct glm_emu_layout *b, const struct glm_emu_layout *c,
    const struct glm_emu_layout *dd, const void *const ptrs[4])
{
    int fp8 = a->t == CUDA_R_8F_E4M3 || b->t == CUDA_R_8F_E4M3;
    int am = d->a_mode, bm = d->b_mode, i;

    if (!fp8) {
        return am != 0 || bm != 0 ? "scale modes set on a non-FP8 matmul" : NULL;
    }
    if (a->t != CUDA_R_8F_E4M3 || b->t != CUDA_R_8F_E4M3) {
        return "FP8 A with a non-FP8 B (or the reverse)";
    }
    if (!d->ta || d->tb) {
        return "FP8 on Hopper is TN only (A transposed, B not)";
    }
    if (dd->t != CUDA_R_16BF && dd->t != CUDA_R_32F) {
        return "D is neither BF16 nor fp32";
    }
    if (c->t != dd->t) {
        return "C and D types differ";
    }
    if (a->ld % 16 != 0 || b->ld % 16 != 0
        || (uint64_t) dd->ld * (dd->t == CUDA_R_32F ? 4 : 2) % 16 != 0) {
        return "a leading dimension is not a multiple of 16 bytes";
    }
    if (!((am == 0 && bm == 0)
          || (am == CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F
              && bm == CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F)
          || (glm_emu_block_mode(am) && glm_emu_block_mode(bm)
              && !(am == CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F
                   && bm == CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F)))) {
        return "scale modes A/B are not a pair sm_90 supports";
    }
    if ((glm_emu_block_mode(am) || am == CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F)
        && d->fast_accum) {
        return "fast accumulation with vector or block scales";
    }
    if (ptrs != NULL) {
        for (i = 0; i < 4; i++) {
            if ((uintptr_t) ptrs[i] % 16 != 0) {
                return "a matrix pointer is not 16-byte aligned";
            }
        }
        if ((am != 0 && (d->a_scale == NULL || (uintptr_t) d->a_scale % 16 != 0))
            || (bm != 0 && (d->b_scale == NULL || (uintptr_t) d->b_scale % 16 != 0))) {
            return "a vector or block scale tensor is missing or not 16-byte aligned";
        }
    }
    return NULL;
}

/* the scale of element (outer i, inner k) of an FP8 operand, per its mode */
static inline GLM_EMU_UNHOOKED float
glm_emu_scale_at(const float *s, int32_t mode, uint64_t outer, uint64_t K, uint64_t i,
    uint64_t k)
{
    switch (mode) {
    case CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F:
        return s[i];
    case CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F:
        return s[(k / 128) * glm_emu_pad4(outer) + i];
    case CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F:
        return s[(i / 128) * glm_emu_pad4((K + 127) / 128) + k / 128];
    default:
        return s != NULL ? s[0] : 1.0f;
    }
}

/* the bytes of a scale tensor, as the library reads them */
static inline void
glm_emu_read_scales(const float *s, int32_t mode, uint64_t outer, uint64_t K)
{
    uint64_t n = mode == CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F ? outer
                 : mode == CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F
                     ? (K + 127) / 128 * glm_emu_pad4(outer)
                 : mode == CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F
                     ? (outer + 127) / 128 * glm_emu_pad4((K + 127) / 128)
                 : 1;

    if (s != NULL) {
        glm_emu_read(s, n * sizeof(float));
    }
}

static inline cublasStatus_t
cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d,
    cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
    cublasLtMatrixLayout_t dd, cublasLtMatmulPreference_t p, int req,
    cublasLtMatmulHeuristicResult_t *res, int *n)
{
    (void) h; (void) p; (void) req;
    memset(res, 0, sizeof(*res));
    *n = 0;
    if (glm_emu_fp8_declines(d, a, b, c, dd, NULL) != NULL) {
        return 0;               /* no algorithm: the caller falls back */
    }
    res->state = CUBLAS_STATUS_SUCCESS;
    *n = 1;
    return 0;
}

static inline GLM_EMU_UNHOOKED double
glm_emu_elem(const void *p, const struct glm_emu_layout *l, uint64_t i, uint64_t j)
{
    uint64_t at = i + j * (uint64_t) l->ld;

    if (i >= l->rows || j >= l->cols) {
        fprintf(stderr, "emu cublasLt: element (%llu, %llu) outside %llux%llu\n",
                (unsigned long long) i, (unsigned long long) j,
                (unsigned long long) l->rows, (unsigned long long) l->cols);
        abort();
    }
    if (l->t == CUDA_R_8F_E4M3) {
        /* E4M3 -> fp32 by hand ("e4m3fn": S.1111.111 is NaN) */
        uint8_t q = ((const uint8_t *) p)[at];
        uint32_t sign = (uint32_t) (q & 0x80) << 24, e = (q >> 3) & 15u, m = q & 7u, u;
        float f;
        if (e == 0) {
            f = (float) m * 0.001953125f;
            return sign ? -f : f;
        }
        u = e == 15 && m == 7 ? sign | 0x7fc00000u : sign | ((e + 120) << 23) | (m << 20);
        memcpy(&f, &u, sizeof(f));
        return f;
    }
    if (l->t == CUDA_R_16BF) {
        /* BF16 -> fp32 by hand: __bfloat162float would be a hooked call */
        uint32_t u = (uint32_t) ((const uint16_t *) p)[at] << 16;
        float f;
        memcpy(&f, &u, sizeof(f));
        return f;
    }
    return ((const float *) p)[at];
}

/* every element of a matrix operand, column by column */
static inline void
glm_emu_read_matrix(const void *p, const struct glm_emu_layout *l)
{
    size_t es = l->t == CUDA_R_8F_E4M3 ? 1 : l->t == CUDA_R_16BF ? 2 : 4;
    uint64_t j;

    for (j = 0; j < l->cols; j++) {
        glm_emu_read((const char *) p + j * (uint64_t) l->ld * es, l->rows * es);
    }
}

/* D = alpha op(A) op(B) + beta C, computed when the stream runs it (at
 * once, or at each replay of a captured graph: the descriptors are held by
 * value, as cuBLASLt copies them into the graph's kernel node) */
static inline GLM_EMU_UNHOOKED void
glm_emu_lt_compute(struct glm_emu_desc dd, struct glm_emu_layout la_, struct glm_emu_layout lb_,
    struct glm_emu_layout lc_, struct glm_emu_layout ld_, float al, float be, const void *A,
    const void *B, const void *C, void *D)
{
    const struct glm_emu_desc *d = &dd;
    const struct glm_emu_layout *la = &la_, *lb = &lb_, *lc = &lc_, *ld = &ld_;
    uint64_t m = d->ta ? la->cols : la->rows, k = d->ta ? la->rows : la->cols;
    uint64_t n = d->tb ? lb->rows : lb->cols, i, j, p;

    int fp8 = la->t == CUDA_R_8F_E4M3;
    glm_emu_gemm_begin();
    glm_emu_read_matrix(A, la);
    glm_emu_read_matrix(B, lb);
    if (be != 0.0f) {
        glm_emu_read_matrix(C, lc);
    }
    if (fp8) {
        glm_emu_read_scales(d->a_scale, d->a_mode, m, k);
        glm_emu_read_scales(d->b_scale, d->b_mode, n, k);
    }
    for (j = 0; j < n; j++) {
        for (i = 0; i < m; i++) {
            float acc = 0.0f, v;
            double c;
            if (fp8) {
                /* fp32 sums per 128-element K block (the whole K when the
                 * scales do not vary along K), times the two scales */
                uint64_t step = glm_emu_block_mode(d->a_mode) ? 128 : k, p0;
                for (p0 = 0; p0 < k; p0 += step) {
                    float part = 0.0f;
                    for (p = p0; p < k && p < p0 + step; p++) {
                        part += (float) glm_emu_elem(A, la, p, i)
                                * (float) glm_emu_elem(B, lb, p, j);
                    }
                    acc += part * glm_emu_scale_at(d->a_scale, d->a_mode, m, k, i, p0)
                           * glm_emu_scale_at(d->b_scale, d->b_mode, n, k, j, p0);
                }
            } else {
                for (p = 0; p < k; p++) {
                    double a = d->ta ? glm_emu_elem(A, la, p, i) : glm_emu_elem(A, la, i, p);
                    double b = d->tb ? glm_emu_elem(B, lb, j, p) : glm_emu_elem(B, lb, p, j);
                    acc += (float) a * (float) b;
                }
            }
            c = be != 0.0f ? glm_emu_elem(C, lc, i, j) : 0.0;
            v = (float) (al * acc + be * c);
            if (ld->t == CUDA_R_16BF) {
                __nv_bfloat16 r = __float2bfloat16_rn(v);
                memcpy((uint16_t *) D + i + j * (uint64_t) ld->ld, &r, 2);
            } else {
                ((float *) D)[i + j * (uint64_t) ld->ld] = v;
            }
        }
    }
    glm_emu_gemm_end();
}

static inline GLM_EMU_UNHOOKED cublasStatus_t
cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha, const void *A,
    cublasLtMatrixLayout_t la, const void *B, cublasLtMatrixLayout_t lb, const void *beta,
    const void *C, cublasLtMatrixLayout_t lc, void *D, cublasLtMatrixLayout_t ld,
    const cublasLtMatmulAlgo_t *algo, void *ws, size_t ws_size, cudaStream_t s)
{
    uint64_t m = d->ta ? la->cols : la->rows, k = d->ta ? la->rows : la->cols;
    uint64_t kb = d->tb ? lb->cols : lb->rows, n = d->tb ? lb->rows : lb->cols;
    float al = *(const float *) alpha, be = *(const float *) beta;
    struct glm_emu_desc dd = *d;
    struct glm_emu_layout a_ = *la, b_ = *lb, c_ = *lc, d_ = *ld;

    const void *ptrs[4] = { A, B, C, D };
    const char *why = glm_emu_fp8_declines(d, la, lb, lc, ld, ptrs);

    (void) h; (void) algo; (void) ws; (void) ws_size;
    if (why != NULL) {
        fprintf(stderr, "emu cublasLt: the library would reject this matmul: %s\n", why);
        abort();
    }
    if (k != kb || lc->rows != m || lc->cols != n || ld->rows != m || ld->cols != n
        || lc->t != ld->t || la->t != lb->t
        || (ld->t != CUDA_R_32F && !(ld->t == CUDA_R_16BF && la->t != CUDA_R_32F)))
    {
        fprintf(stderr, "emu cublasLt: op(A) %llux%llu, op(B) %llux%llu, C %llux%llu:"
                " shapes or types do not fit\n", (unsigned long long) m,
                (unsigned long long) k, (unsigned long long) kb, (unsigned long long) n,
                (unsigned long long) lc->rows, (unsigned long long) lc->cols);
        abort();
    }
    /* an error (work on an invalidated capture) stays for cudaGetLastError */
    glm_emu_submit(s, 1, [=]() { glm_emu_lt_compute(dd, a_, b_, c_, d_, al, be, A, B, C, D); });
    return CUBLAS_STATUS_SUCCESS;
}

#endif
