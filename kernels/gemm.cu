/* gemm: see gemm.cuh. */
#include "gemm.cuh"
#include "quant_act.cuh"

#include <cublasLt.h>
#include <string.h>

#define GLM_GEMM_PLANS      512
#define GLM_GEMM_WORKSPACE  (32u << 20)     /* cuBLASLt's advice for Hopper */

typedef struct {
    int                     used, ok;
    int                     wfmt, out_f32, M, N, K;
    int32_t                 a_mode, b_mode;     /* FP8 scale modes (0 otherwise) */
    uint32_t                align_a, align_b, align_c;
    cublasLtMatmulDesc_t    op;
    cublasLtMatrixLayout_t  a, b, c;
    cublasLtMatmulAlgo_t    algo;
    size_t                  ws_needed;
} glm_gemm_plan;

/* An FP8 weight's scales as cuBLASLt reads them (fp32, its layout), made
 * on first use from the stored scale tensor; keyed by the weight's bytes
 * and shape (a row view has its own). */
#define GLM_FP8_SCALES  4096

typedef struct {
    const void *w;
    int         N, K;
    int         a_mode;         /* CUBLASLT_MATMUL_MATRIX_SCALE_*, or -1: not served */
    float      *scales;
} glm_fp8_scales;

struct glm_cuda_gemm {
    cudaStream_t       stream;
    cublasLtHandle_t   lt;
    void              *ws;
    int                force_simt;
    int                fp8_w8a16;      /* GLM_CUDA_FP8=w8a16: FP8 weights x BF16 activations */
    int                warned;
    int                fp8_align_noted;
    float             *tmp;            /* [rows][N] fp32 before a bias epilogue */
    size_t             tmp_cap;        /* elements */
    uint8_t           *xq;             /* [rows][K] activations as FP8 E4M3 */
    size_t             xq_cap;
    float             *xs;             /* their scales, MN-major */
    size_t             xs_cap;
    size_t             fp8_scale_bytes; /* device bytes of the prepared scales */
    glm_fp8_scales     fp8[GLM_FP8_SCALES];
    glm_gemm_plan      plans[GLM_GEMM_PLANS];
};

/* ---- kernels ------------------------------------------------------------- */

__device__ __forceinline__ void
glm_gemm_store(float *p, int64_t i, float v)
{
    p[i] = v;
}

__device__ __forceinline__ void
glm_gemm_store(glm_act *p, int64_t i, float v)
{
    glm_act_st(p, i, v);
}

/* out = acc + bias per column, rounded once to out's type */
template <typename OutT>
__global__ void
glm_bias_out_kernel(OutT *out, const float *acc, const void *bias, int bias_fmt, size_t n,
    int N)
{
    size_t i;

    for (i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
         i += (size_t) gridDim.x * blockDim.x)
    {
        float v = acc[i];
        if (bias != NULL) {
            v += glm_ld_weight(bias, bias_fmt, (int64_t) (i % N));
        }
        glm_gemm_store(out, (int64_t) i, v);
    }
}

/* 32 x 32 output tile per block of 256 threads (each 4 rows of a column);
 * x BF16, W as stored and dequantized in registers, fp32 accumulation */
template <typename OutT>
__global__ void
glm_gemm_simt_kernel(OutT *out, const glm_act *x, glm_cuda_weight w, int M, int N,
    int K, const void *bias, int bias_fmt)
{
    __shared__ float xs[32][33], ws[32][33];
    int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
    int64_t row0 = (int64_t) blockIdx.y * 32, col0 = (int64_t) blockIdx.x * 32;
    float acc[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
    int k0, i, j, kk;

    for (k0 = 0; k0 < K; k0 += 32) {
        for (i = ty; i < 32; i += 8) {
            int64_t r = row0 + i, n = col0 + i;
            int k = k0 + tx;
            xs[i][tx] = r < M && k < K ? glm_act_ld(x, r * K + k) : 0.0f;
            ws[i][tx] = n < N && k < K ? glm_ld_w(w, n, k, K) : 0.0f;
        }
        __syncthreads();
        for (kk = 0; kk < 32; kk++) {
            float wv = ws[tx][kk];
#pragma unroll
            for (j = 0; j < 4; j++) {
                acc[j] += xs[ty + 8 * j][kk] * wv;
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (j = 0; j < 4; j++) {
        int64_t r = row0 + ty + 8 * j, n = col0 + tx;
        if (r < M && n < N) {
            glm_gemm_store(out, r * N + n,
                           bias != NULL ? acc[j] + glm_ld_weight(bias, bias_fmt, n) : acc[j]);
        }
    }
}

void
glm_cuda_gemm_simt(cudaStream_t stream, void *out, int out_f32, const glm_act *x, int rows,
    const glm_cuda_weight *w, int N, int K, const void *bias, int bias_fmt)
{
    dim3 grid((unsigned) ((N + 31) / 32), (unsigned) ((rows + 31) / 32));

    if (rows <= 0 || N <= 0) {
        return;
    }
    if (out_f32) {
        glm_gemm_simt_kernel<float><<<grid, 256, 0, stream>>>((float *) out, x, *w, rows, N,
                                                              K, bias, bias_fmt);
    } else {
        glm_gemm_simt_kernel<glm_act><<<grid, 256, 0, stream>>>((glm_act *) out, x, *w, rows,
                                                                N, K, bias, bias_fmt);
    }
    GLM_CUDA_LAUNCHED();
}

/* ---- cuBLASLt ------------------------------------------------------------ */

static uint32_t
glm_align_of(const void *p)
{
    uintptr_t a = (uintptr_t) p;
    uint32_t al = 256;

    while (al > 1 && a % al != 0) {
        al >>= 1;
    }
    return al;
}

static void
glm_plan_release(glm_gemm_plan *p)
{
    if (p->a != NULL) {
        cublasLtMatrixLayoutDestroy(p->a);
    }
    if (p->b != NULL) {
        cublasLtMatrixLayoutDestroy(p->b);
    }
    if (p->c != NULL) {
        cublasLtMatrixLayoutDestroy(p->c);
    }
    if (p->op != NULL) {
        cublasLtMatmulDescDestroy(p->op);
    }
    memset(p, 0, sizeof(*p));
}

static int
glm_plan_build(glm_cuda_gemm *g, glm_gemm_plan *p)
{
    cudaDataType_t t = p->wfmt == GLM_WFMT_FP8 ? CUDA_R_8F_E4M3 : CUDA_R_16BF;
    cudaDataType_t tc = p->out_f32 ? CUDA_R_32F : CUDA_R_16BF;
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulHeuristicResult_t res;
    uint64_t ws = GLM_GEMM_WORKSPACE;
    int n = 0;

    if (cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS) {
        p->op = NULL;
        return 0;
    }
    if (cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta))
            != CUBLAS_STATUS_SUCCESS
        || cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb))
            != CUBLAS_STATUS_SUCCESS
        || (p->wfmt == GLM_WFMT_FP8
            && (cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE,
                                               &p->a_mode, sizeof(p->a_mode))
                    != CUBLAS_STATUS_SUCCESS
                || cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE,
                                                  &p->b_mode, sizeof(p->b_mode))
                    != CUBLAS_STATUS_SUCCESS))
        || cublasLtMatrixLayoutCreate(&p->a, t, (uint64_t) p->K, (uint64_t) p->N, p->K)
            != CUBLAS_STATUS_SUCCESS
        || cublasLtMatrixLayoutCreate(&p->b, t, (uint64_t) p->K, (uint64_t) p->M, p->K)
            != CUBLAS_STATUS_SUCCESS
        || cublasLtMatrixLayoutCreate(&p->c, tc, (uint64_t) p->N, (uint64_t) p->M, p->N)
            != CUBLAS_STATUS_SUCCESS)
    {
        return 0;
    }
    if (cublasLtMatmulPreferenceCreate(&pref) != CUBLAS_STATUS_SUCCESS) {
        return 0;
    }
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                         &ws, sizeof(ws));
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                         &p->align_a, sizeof(p->align_a));
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                         &p->align_b, sizeof(p->align_b));
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                         &p->align_c, sizeof(p->align_c));
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                         &p->align_c, sizeof(p->align_c));
    if (cublasLtMatmulAlgoGetHeuristic(g->lt, p->op, p->a, p->b, p->c, p->c, pref, 1, &res, &n)
            != CUBLAS_STATUS_SUCCESS
        || n < 1 || res.state != CUBLAS_STATUS_SUCCESS)
    {
        n = 0;
    }
    cublasLtMatmulPreferenceDestroy(pref);
    if (n < 1) {
        return 0;
    }
    p->algo = res.algo;
    p->ws_needed = res.workspaceSize;
    return 1;
}

/* C[M, N] (row-major, fp32 or BF16) = B[M, K] A[N, K]^T through cuBLASLt:
 * A and B BF16 (wfmt GLM_WFMT_BF16), or both FP8 E4M3 (GLM_WFMT_FP8) with
 * their scale modes and fp32 scale tensors; 0 when it has no algorithm for
 * this case or fails (the caller falls back). */
static int
glm_lt_matmul(glm_cuda_gemm *g, int wfmt, void *C, int out_f32, const void *B, int M,
    const void *A, int N, int K, int32_t a_mode, const float *a_scale, int32_t b_mode,
    const float *b_scale)
{
    uint32_t aa = glm_align_of(A), ab = glm_align_of(B), ac = glm_align_of(C);
    uint64_t h = ((uint64_t) M * 0x9E3779B97F4A7C15ull) ^ ((uint64_t) N * 0xC2B2AE3D27D4EB4Full)
                 ^ ((uint64_t) K * 0x165667B19E3779F9ull) ^ (uint64_t) (out_f32 * 2 + 1)
                 ^ ((uint64_t) (wfmt * 64 + a_mode * 8 + b_mode) * 0x85EBCA77C2B2AE63ull)
                 ^ ((uint64_t) (aa ^ (ab << 9) ^ (ac << 18)) * 0x27D4EB2F165667C5ull);
    glm_gemm_plan *p = &g->plans[(h ^ (h >> 29)) % GLM_GEMM_PLANS];
    float alpha = 1.0f, beta = 0.0f;
    cublasStatus_t st;

    if (!p->used || p->wfmt != wfmt || p->out_f32 != out_f32 || p->M != M || p->N != N
        || p->K != K || p->a_mode != a_mode || p->b_mode != b_mode
        || p->align_a != aa || p->align_b != ab || p->align_c != ac)
    {
        glm_plan_release(p);
        p->a_mode = a_mode;
        p->b_mode = b_mode;
        p->wfmt = wfmt;
        p->out_f32 = out_f32;
        p->M = M;
        p->N = N;
        p->K = K;
        p->align_a = aa;
        p->align_b = ab;
        p->align_c = ac;
        p->ok = glm_plan_build(g, p);
        p->used = 1;            /* a failed build is cached too */
    }
    if (!p->ok) {
        return 0;
    }
    if (wfmt == GLM_WFMT_FP8
        && (cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER,
                                           &a_scale, sizeof(a_scale)) != CUBLAS_STATUS_SUCCESS
            || cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER,
                                              &b_scale, sizeof(b_scale))
                   != CUBLAS_STATUS_SUCCESS))
    {
        return 0;
    }
    st = cublasLtMatmul(g->lt, p->op, &alpha, A, p->a, B, p->b, &beta, C, p->c, C, p->c,
                        &p->algo, g->ws, GLM_GEMM_WORKSPACE, g->stream);
    if (st != CUBLAS_STATUS_SUCCESS) {
        if (!g->warned) {
            fprintf(stderr, "glm-engine: note: cuBLASLt matmul failed (status %d) for"
                    " M=%d N=%d K=%d; using the CUDA-core GEMM\n", (int) st, M, N, K);
            g->warned = 1;
        }
        p->ok = 0;
        return 0;
    }
    return 1;
}

static int
glm_lt_gemm(glm_cuda_gemm *g, void *C, int out_f32, const void *B, int M, const void *A,
    int N, int K)
{
    return glm_lt_matmul(g, GLM_WFMT_BF16, C, out_f32, B, M, A, N, K, 0, NULL, 0, NULL);
}
unsigned glm_cuda_scratch_moves;

/* grow-only scratch; cudaFreeAsync keeps it stream-ordered behind earlier
 * kernels still reading the old buffer */
static void
glm_grow(cudaStream_t s, void **buf, size_t *cap, size_t elems, size_t elem_size)
{
    if (elems <= *cap) {
        return;
    }
    glm_cuda_scratch_moves++;           /* a captured graph holding *buf is stale */
    if (*buf != NULL) {
        GLM_CUDA_CHECK(cudaFreeAsync(*buf, s));
    }
    elems += elems / 4;
    GLM_CUDA_CHECK(cudaMallocAsync(buf, elems * elem_size, s));
    *cap = elems;
}

/* ---- FP8 x FP8 through cuBLASLt's scaled matmul ---------------------------- */

static uint64_t glm_pad4(uint64_t x) { return (x + 3) / 4 * 4; }

/* cuBLASLt's scale mode for an FP8 weight's scales (as operand A), or -1
 * where it has none (the CUDA-core kernel serves it).  Per tensor and per
 * channel are both an outer vector over N (a per-tensor scale broadcast:
 * sm_90 pairs OUTER_VEC with OUTER_VEC only, and the activations' per-token
 * scales are one); 128x128 blocks are BLK128x128 (with 1x128 activation
 * groups, VEC128).  Other block shapes have no mode. */
static int32_t
glm_fp8_weight_mode(int strategy, int block_rows, int block_cols)
{
    switch (strategy) {
    case GLM_WSCALE_TENSOR:
    case GLM_WSCALE_CHANNEL:
        return CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
    case GLM_WSCALE_BLOCK:
        return block_rows == 128 && block_cols == 128 ? CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F
                                                      : -1;
    default:
        return -1;
    }
}

/* -1, or the weight's mode when this product goes FP8 x FP8: not forced to
 * the CUDA-core kernel, K and N fit cuBLASLt's FP8 rules (leading
 * dimensions of A and B multiples of 16 bytes, D's of 16 bytes for BF16),
 * a block-scaled row view starting on a block */
static int32_t
glm_fp8_mode_for(const glm_cuda_gemm *g, const glm_cuda_weight *w, int N, int K)
{
    int32_t mode;

    if (g->force_simt || g->fp8_w8a16 || w->fmt != GLM_WFMT_FP8 || K % 16 != 0 || N % 8 != 0) {
        return -1;
    }
    mode = glm_fp8_weight_mode(w->strategy, w->block_rows, w->block_cols);
    if (mode == CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F && w->scale_row0 % 128 != 0) {
        return -1;
    }
    return mode;
}

int
glm_cuda_gemm_fp8_act_group(const glm_cuda_gemm *g, const glm_cuda_weight *w, int N, int K)
{
    int32_t mode = glm_fp8_mode_for(g, w, N, K);

    return mode < 0 ? 0 : mode == CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F ? 128 : K;
}

/* the weight's scales in cuBLASLt's layout: an outer vector of N fp32, or
 * [ceil(N/128)][pad4(ceil(K/128))] fp32 blocks (zero padding) */
__global__ void
glm_fp8_scales_kernel(float *out, glm_cuda_weight w, int N, int KB, int kb_pad, int block)
{
    int64_t i, n = block ? (int64_t) ((N + 127) / 128) * kb_pad : N;

    for (i = blockIdx.x * (int64_t) blockDim.x + threadIdx.x; i < n;
         i += (int64_t) gridDim.x * blockDim.x)
    {
        if (block) {
            int64_t nb = i / kb_pad, kb = i % kb_pad;
            out[i] = kb < KB ? glm_ld_weight(w.scale, w.scale_fmt,
                                             (w.scale_row0 / 128 + nb) * w.scale_cols + kb)
                             : 0.0f;
        } else {
            out[i] = glm_ld_weight(w.scale, w.scale_fmt,
                                   w.strategy == GLM_WSCALE_TENSOR ? 0 : w.scale_row0 + i);
        }
    }
}

/* the prepared scales of w (made on first use), NULL when the table is full */
static const float *
glm_fp8_scales_of(glm_cuda_gemm *g, const glm_cuda_weight *w, int N, int K, int32_t mode)
{
    uintptr_t h = ((uintptr_t) w->w >> 4) * 0x9E3779B97F4A7C15ull ^ (uintptr_t) N * 31u
                  ^ (uintptr_t) K;
    int block = mode == CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
    int KB = (K + 127) / 128, kb_pad = (int) glm_pad4((uint64_t) KB), i;
    size_t n = block ? (size_t) ((N + 127) / 128) * kb_pad : (size_t) N;

    for (i = 0; i < GLM_FP8_SCALES; i++) {
        glm_fp8_scales *e = &g->fp8[(h + i) % GLM_FP8_SCALES];
        if (e->w == w->w && e->N == N && e->K == K) {
            return e->scales;
        }
        if (e->w == NULL) {
            e->w = w->w;
            e->N = N;
            e->K = K;
            e->a_mode = mode;
            if (w->scale_fmt == GLM_WFMT_F32 && w->strategy != GLM_WSCALE_TENSOR
                && (!block || (kb_pad == KB && w->scale_cols == KB)))
            {
                /* stored fp32 in cuBLASLt's layout already: used in place
                 * where aligned (GLM-4.5-FP8's blocks over K = 4096) */
                const float *direct = (const float *) w->scale
                                      + (block ? w->scale_row0 / 128 * KB : w->scale_row0);
                if ((uintptr_t) direct % 16 == 0) {
                    e->scales = (float *) direct;
                    e->a_mode = -2;             /* not ours to free */
                    return e->scales;
                }
            }
            GLM_CUDA_CHECK(cudaMalloc((void **) &e->scales, n * sizeof(float)));
            g->fp8_scale_bytes += n * sizeof(float);
            glm_fp8_scales_kernel<<<glm_cuda_blocks(n, 256), 256, 0, g->stream>>>(
                e->scales, *w, N, KB, kb_pad, block);
            GLM_CUDA_LAUNCHED();
            return e->scales;
        }
    }
    return NULL;
}

void
glm_cuda_gemm_forget_weights(glm_cuda_gemm *g)
{
    int i;

    if (g == NULL) {
        return;
    }
    GLM_CUDA_CHECK(cudaStreamSynchronize(g->stream));
    for (i = 0; i < GLM_FP8_SCALES; i++) {
        if (g->fp8[i].scales != NULL && g->fp8[i].a_mode != -2) {
            cudaFree(g->fp8[i].scales);
        }
    }
    memset(g->fp8, 0, sizeof(g->fp8));
    g->fp8_scale_bytes = 0;
}

/* x quantized to FP8 (per token for outer-vector weights, per 1x128 group
 * for block-scaled ones), then one scaled cuBLASLt matmul into C (fp32
 * or BF16); 0 when cuBLASLt declines (the caller falls back) */
static int
glm_fp8_gemm(glm_cuda_gemm *g, void *C, int out_f32, const glm_act *x, int M,
    const glm_cuda_weight *w, int N, int K, int32_t a_mode)
{
    int block = a_mode == CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
    int group = block ? 128 : K, n_groups = (K + group - 1) / group;
    int scale_ld = (int) glm_pad4((uint64_t) M);
    const float *ws;

    if (glm_align_of(C) < 16 || glm_align_of(w->w) < 16) {
        /* FP8 matrices and D: 16-byte aligned (said once: a slow path) */
        if (!g->fp8_align_noted) {
            fprintf(stderr, "glm-engine: note: an FP8 GEMM's output or weight is not 16-byte"
                    " aligned (M=%d N=%d K=%d); the CUDA-core GEMM serves it\n", M, N, K);
            g->fp8_align_noted = 1;
        }
        return 0;
    }
    ws = glm_fp8_scales_of(g, w, N, K, a_mode);
    if (ws == NULL) {
        if (!g->warned) {
            fprintf(stderr, "glm-engine: note: more than %d FP8 weights; the rest take the"
                    " CUDA-core GEMM\n", GLM_FP8_SCALES);
            g->warned = 1;
        }
        return 0;
    }
    glm_grow(g->stream, (void **) &g->xq, &g->xq_cap, (size_t) M * K, 1);
    glm_grow(g->stream, (void **) &g->xs, &g->xs_cap, (size_t) n_groups * scale_ld,
             sizeof(float));
    glm_cuda_quant_act_fp8(g->stream, g->xq, g->xs, x, M, K, group, scale_ld);
    return glm_lt_matmul(g, GLM_WFMT_FP8, C, out_f32, g->xq, M, w->w, N, K, a_mode, ws,
                         block ? CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F
                               : CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F,
                         g->xs);
}

/* out = acc + bias, rounded once to out's type */
static void
glm_bias_epilogue(glm_cuda_gemm *g, void *out, int out_f32, size_t n_out, int N,
    const void *bias, int bias_fmt)
{
    if (out_f32) {
        glm_bias_out_kernel<float><<<glm_cuda_blocks(n_out, 256), 256, 0, g->stream>>>(
            (float *) out, g->tmp, bias, bias_fmt, n_out, N);
    } else {
        glm_bias_out_kernel<glm_act><<<glm_cuda_blocks(n_out, 256), 256, 0, g->stream>>>(
            (glm_act *) out, g->tmp, bias, bias_fmt, n_out, N);
    }
    GLM_CUDA_LAUNCHED();
}

void
glm_cuda_gemm_run(glm_cuda_gemm *g, void *out, int out_f32, const glm_act *x, int rows,
    const glm_cuda_weight *w, int N, int K, const void *bias, int bias_fmt)
{
    size_t n_out = (size_t) rows * N;
    int32_t fp8_mode;

    if (rows <= 0 || N <= 0) {
        return;
    }
    fp8_mode = glm_fp8_mode_for(g, w, N, K);
    if (fp8_mode >= 0) {
        if (bias == NULL && glm_fp8_gemm(g, out, out_f32, x, rows, w, N, K, fp8_mode)) {
            return;
        }
        if (bias != NULL) {
            glm_grow(g->stream, (void **) &g->tmp, &g->tmp_cap, n_out, sizeof(float));
            if (glm_fp8_gemm(g, g->tmp, 1, x, rows, w, N, K, fp8_mode)) {
                glm_bias_epilogue(g, out, out_f32, n_out, N, bias, bias_fmt);
                return;
            }
        }
    }
    if (!g->force_simt && K > 0 && w->fmt == GLM_WFMT_BF16) {
        if (bias == NULL && glm_lt_gemm(g, out, out_f32, x, rows, w->w, N, K)) {
            return;
        }
        if (bias != NULL) {
            /* fp32 accumulators, then bias and one rounding */
            glm_grow(g->stream, (void **) &g->tmp, &g->tmp_cap, n_out, sizeof(float));
            if (glm_lt_gemm(g, g->tmp, 1, x, rows, w->w, N, K)) {
                glm_bias_epilogue(g, out, out_f32, n_out, N, bias, bias_fmt);
                return;
            }
        }
    }
    /* FP8 weights cuBLASLt has no scale mode for (or GLM_CUDA_FP8=w8a16),
     * F16 and fp32 weights (cuBLASLt multiplies like types only), a shape
     * cuBLASLt declined, or GLM_CUDA_GEMM=simt: BF16 activations */
    glm_cuda_gemm_simt(g->stream, out, out_f32, x, rows, w, N, K, bias, bias_fmt);
}

const char *
glm_cuda_gemm_path(const glm_cuda_gemm *g, int wfmt)
{
    if (g->force_simt) {
        return "CUDA-core GEMM (GLM_CUDA_GEMM=simt)";
    }
    switch (wfmt) {
    case GLM_WFMT_BF16:
        return "cuBLASLt BF16 x BF16 on tensor cores, fp32 accumulation (CUDA-core GEMM"
               " where cuBLASLt declines a shape)";
    case GLM_WFMT_F32:
        return "own CUDA-core GEMM (cuBLASLt multiplies like types only: BF16"
               " activations x fp32 weights is not one of them)";
    case GLM_WFMT_FP8:
        return "own CUDA-core GEMM, FP8 dequantized in registers with its scales";
    default:
        return "own CUDA-core GEMM, F16 widened in registers";
    }
}

const char *
glm_cuda_gemm_path_fp8(const glm_cuda_gemm *g, int strategy, int block_rows, int block_cols)
{
    int32_t mode = glm_fp8_weight_mode(strategy, block_rows, block_cols);

    if (g->force_simt) {
        return "CUDA-core GEMM (GLM_CUDA_GEMM=simt), BF16 activations";
    }
    if (g->fp8_w8a16) {
        return "own CUDA-core GEMM, BF16 activations, FP8 dequantized in registers"
               " (GLM_CUDA_FP8=w8a16)";
    }
    if (mode == CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F) {
        return "cuBLASLt FP8 x FP8 (weights OUTER_VEC_32F, activations quantized per token,"
               " OUTER_VEC_32F), fp32 accumulation (CUDA-core GEMM where cuBLASLt declines"
               " a shape: K % 16, N % 8)";
    }
    if (mode == CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F) {
        return "cuBLASLt FP8 x FP8 (weights BLK128x128_32F, activations quantized per 1x128"
               " group, VEC128_32F), fp32 accumulation (CUDA-core GEMM where cuBLASLt"
               " declines a shape: K % 16, N % 8, a row view off a block)";
    }
    return "own CUDA-core GEMM, BF16 activations, FP8 dequantized in registers (cuBLASLt"
           " has no scale mode for these blocks: only 128x128 on Hopper)";
}

glm_cuda_gemm *
glm_cuda_gemm_create(cudaStream_t stream, int force_simt, char *why, size_t why_size)
{
    glm_cuda_gemm *g = (glm_cuda_gemm *) calloc(1, sizeof(*g));
    cublasStatus_t st;
    cudaError_t e;

    if (g == NULL) {
        snprintf(why, why_size, "out of memory");
        return NULL;
    }
    g->stream = stream;
    g->force_simt = force_simt;
    {
        /* FP8 weights: FP8 x FP8 on tensor cores by default (twice BF16's
         * rate on Hopper, half the bytes per activation); w8a16 keeps BF16
         * activations through the CUDA-core kernel (closest to the oracle) */
        const char *fp8 = getenv("GLM_CUDA_FP8");
        g->fp8_w8a16 = fp8 != NULL && strcmp(fp8, "w8a16") == 0;
    }
    st = cublasLtCreate(&g->lt);
    if (st != CUBLAS_STATUS_SUCCESS) {
        snprintf(why, why_size, "cublasLtCreate failed (status %d)", (int) st);
        free(g);
        return NULL;
    }
    e = cudaMalloc(&g->ws, GLM_GEMM_WORKSPACE);
    if (e != cudaSuccess) {
        snprintf(why, why_size, "cannot allocate the cuBLASLt workspace: %s",
                 cudaGetErrorString(e));
        cublasLtDestroy(g->lt);
        free(g);
        return NULL;
    }
    return g;
}

void
glm_cuda_gemm_destroy(glm_cuda_gemm *g)
{
    int i;

    if (g == NULL) {
        return;
    }
    cudaStreamSynchronize(g->stream);
    for (i = 0; i < GLM_GEMM_PLANS; i++) {
        glm_plan_release(&g->plans[i]);
    }
    if (g->tmp != NULL) {
        cudaFreeAsync(g->tmp, g->stream);
    }
    if (g->xq != NULL) {
        cudaFreeAsync(g->xq, g->stream);
    }
    if (g->xs != NULL) {
        cudaFreeAsync(g->xs, g->stream);
    }
    glm_cuda_gemm_forget_weights(g);
    cudaStreamSynchronize(g->stream);
    cudaFree(g->ws);
    cublasLtDestroy(g->lt);
    free(g);
}
