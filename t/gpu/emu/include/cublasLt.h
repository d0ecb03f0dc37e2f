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
typedef enum { CUDA_R_32F = 0, CUDA_R_16BF = 14 } cudaDataType_t;
typedef enum { CUBLASLT_MATMUL_DESC_TRANSA = 3, CUBLASLT_MATMUL_DESC_TRANSB = 4 }
    cublasLtMatmulDescAttributes_t;
typedef enum {
    CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8,
} cublasLtMatmulPreferenceAttributes_t;

struct glm_emu_layout { cudaDataType_t t; uint64_t rows, cols; int64_t ld; };
struct glm_emu_desc { int ta, tb; cublasComputeType_t ct; cudaDataType_t st; };
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
    (void) n;
    if (a == CUBLASLT_MATMUL_DESC_TRANSA) {
        d->ta = *(const cublasOperation_t *) v;
    } else if (a == CUBLASLT_MATMUL_DESC_TRANSB) {
        d->tb = *(const cublasOperation_t *) v;
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

static inline cublasStatus_t
cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d,
    cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
    cublasLtMatrixLayout_t dd, cublasLtMatmulPreference_t p, int req,
    cublasLtMatmulHeuristicResult_t *res, int *n)
{
    (void) h; (void) d; (void) a; (void) b; (void) c; (void) dd; (void) p; (void) req;
    memset(res, 0, sizeof(*res));
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
    size_t es = l->t == CUDA_R_16BF ? 2 : 4;
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

    glm_emu_gemm_begin();
    glm_emu_read_matrix(A, la);
    glm_emu_read_matrix(B, lb);
    if (be != 0.0f) {
        glm_emu_read_matrix(C, lc);
    }
    for (j = 0; j < n; j++) {
        for (i = 0; i < m; i++) {
            float acc = 0.0f, v;
            double c;
            for (p = 0; p < k; p++) {
                double a = d->ta ? glm_emu_elem(A, la, p, i) : glm_emu_elem(A, la, i, p);
                double b = d->tb ? glm_emu_elem(B, lb, j, p) : glm_emu_elem(B, lb, p, j);
                acc += (float) a * (float) b;
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

    (void) h; (void) algo; (void) ws; (void) ws_size;
    if (k != kb || lc->rows != m || lc->cols != n || ld->rows != m || ld->cols != n
        || lc->t != ld->t || la->t != lb->t
        || (ld->t != CUDA_R_32F && !(ld->t == CUDA_R_16BF && la->t == CUDA_R_16BF)))
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
