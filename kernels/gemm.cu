/* gemm: see gemm.cuh. */
#include "gemm.cuh"

#include <cublasLt.h>
#include <string.h>

#define GLM_GEMM_PLANS      512
#define GLM_GEMM_WORKSPACE  (32u << 20)     /* cuBLASLt's advice for Hopper */

typedef struct {
    int                     used, ok;
    int                     wfmt, out_f32, M, N, K;
    uint32_t                align_a, align_b, align_c;
    cublasLtMatmulDesc_t    op;
    cublasLtMatrixLayout_t  a, b, c;
    cublasLtMatmulAlgo_t    algo;
    size_t                  ws_needed;
} glm_gemm_plan;

struct glm_cuda_gemm {
    cudaStream_t       stream;
    cublasLtHandle_t   lt;
    void              *ws;
    int                force_simt;
    int                warned;
    float             *tmp;            /* [rows][N] fp32 before a bias epilogue */
    size_t             tmp_cap;        /* elements */
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
    cudaDataType_t t = CUDA_R_16BF, tc = p->out_f32 ? CUDA_R_32F : CUDA_R_16BF;
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

/* C[M, N] (row-major, fp32 or BF16) = B[M, K] A[N, K]^T through cuBLASLt,
 * A and B BF16; 0 when it has no algorithm for this case or fails (the
 * caller falls back). */
static int
glm_lt_gemm(glm_cuda_gemm *g, void *C, int out_f32, const void *B, int M, const void *A,
    int N, int K)
{
    int wfmt = GLM_WFMT_BF16;
    uint32_t aa = glm_align_of(A), ab = glm_align_of(B), ac = glm_align_of(C);
    uint64_t h = ((uint64_t) M * 0x9E3779B97F4A7C15ull) ^ ((uint64_t) N * 0xC2B2AE3D27D4EB4Full)
                 ^ ((uint64_t) K * 0x165667B19E3779F9ull) ^ (uint64_t) (out_f32 * 2 + 1)
                 ^ ((uint64_t) (aa ^ (ab << 9) ^ (ac << 18)) * 0x27D4EB2F165667C5ull);
    glm_gemm_plan *p = &g->plans[(h ^ (h >> 29)) % GLM_GEMM_PLANS];
    float alpha = 1.0f, beta = 0.0f;
    cublasStatus_t st;

    if (!p->used || p->wfmt != wfmt || p->out_f32 != out_f32 || p->M != M || p->N != N
        || p->K != K
        || p->align_a != aa || p->align_b != ab || p->align_c != ac)
    {
        glm_plan_release(p);
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

void
glm_cuda_gemm_run(glm_cuda_gemm *g, void *out, int out_f32, const glm_act *x, int rows,
    const glm_cuda_weight *w, int N, int K, const void *bias, int bias_fmt)
{
    size_t n_out = (size_t) rows * N;

    if (rows <= 0 || N <= 0) {
        return;
    }
    if (!g->force_simt && K > 0 && w->fmt == GLM_WFMT_BF16) {
        if (bias == NULL && glm_lt_gemm(g, out, out_f32, x, rows, w->w, N, K)) {
            return;
        }
        if (bias != NULL) {
            /* fp32 accumulators, then bias and one rounding */
            glm_grow(g->stream, (void **) &g->tmp, &g->tmp_cap, n_out, sizeof(float));
            if (glm_lt_gemm(g, g->tmp, 1, x, rows, w->w, N, K)) {
                if (out_f32) {
                    glm_bias_out_kernel<float><<<glm_cuda_blocks(n_out, 256), 256, 0,
                                                 g->stream>>>((float *) out, g->tmp, bias,
                                                              bias_fmt, n_out, N);
                } else {
                    glm_bias_out_kernel<glm_act><<<glm_cuda_blocks(n_out, 256), 256, 0,
                                                   g->stream>>>((glm_act *) out, g->tmp, bias,
                                                                bias_fmt, n_out, N);
                }
                GLM_CUDA_LAUNCHED();
                return;
            }
        }
    }
    /* FP8, F16, fp32 weights (cuBLASLt multiplies like types only), a shape
     * cuBLASLt declined, or GLM_CUDA_GEMM=simt */
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
        return "own CUDA-core GEMM, FP8 dequantized in registers with its scales"
               " (stored FP8 on the device; cuBLASLt's scaled FP8 GEMM needs FP8"
               " activations, not wired yet)";
    default:
        return "own CUDA-core GEMM, F16 widened in registers";
    }
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
    cudaStreamSynchronize(g->stream);
    cudaFree(g->ws);
    cublasLtDestroy(g->lt);
    free(g);
}
