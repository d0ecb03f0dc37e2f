/*
 * test_graphs.cpp: the emulator's stream capture and graphs (emu.cpp,
 * "Graphs") against its own eager runs, so that the CUDA backend's decode
 * graphs are checked by an emulator that behaves as CUDA 13 does:
 *
 * - capture records and does not run: the buffers are untouched after
 *   cudaStreamEndCapture;
 * - a replay equals the eager run bit for bit (kernels, a cuBLASLt matmul,
 *   a memset, a pinned host-to-device copy), and a second replay after the
 *   pinned input was rewritten equals an eager run on the new input (a copy
 *   node reads its source when it replays, not when it was captured);
 * - the counters: a replay counts each of its kernels as a launch and the
 *   graph launch as one host launch;
 * - every call CUDA forbids while capturing is refused with
 *   cudaErrorStreamCaptureUnsupported (or ...Implicit) and the capture
 *   ends invalidated, with no graph.
 *
 * One line per check: EMU-GRAPH <name> ... ok|FAIL; exit 1 on a FAIL.
 */
#include <cuda_runtime.h>
#include <cublasLt.h>
#include <stdio.h>
#include <string.h>

#include "add.cuh"
#include "glm_emu_profile.h"
#include "swiglu.cuh"

extern "C" const char *glm_emu_capture_invalid_why(void);

static int failures, checks;

static void
check(const char *name, int ok, const char *detail)
{
    printf("EMU-GRAPH %s %s%s\n", name, detail, ok ? "ok" : "FAIL");
    checks++;
    failures += !ok;
}

enum { N = 400, M = 5, K = 64 };   /* M * K <= N: z feeds the matmul */

typedef struct {
    glm_act *x, *y, *z, *w, *out;
    glm_act *host_in;           /* pinned */
    cublasLtHandle_t lt;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
} bufs;

static void
fill(glm_act *p, size_t n, float scale, int seed)
{
    size_t i;

    for (i = 0; i < n; i++) {
        p[i] = __float2bfloat16_rn(scale * (float) (((int) (i * 37 + seed * 11)) % 17 - 8));
    }
}

/* The step under test: copy the pinned input in, two adds, a SwiGLU, a
 * memset and a matmul out[M, K] = z[M, K] w[K, K]^T. */
static void
step(bufs *b, cudaStream_t s)
{
    float alpha = 1.0f, beta = 0.0f;

    cudaMemcpyAsync(b->x, b->host_in, N * sizeof(glm_act), cudaMemcpyHostToDevice, s);
    glm_cuda_add(s, b->y, b->x, N);
    glm_cuda_swiglu(s, b->z, b->x, b->y, N);
    cudaMemsetAsync(b->out, 0, M * K * sizeof(glm_act), s);
    glm_cuda_add(s, b->z, b->y, M * K);
    cublasLtMatmul(b->lt, b->op, &alpha, b->w, b->la, b->z, b->lb, &beta, b->out, b->lc,
                   b->out, b->lc, NULL, NULL, 0, s);
}

static void
reset_inputs(bufs *b, int seed)
{
    fill(b->host_in, N, 0.25f, seed);
    fill(b->y, N, 0.125f, seed + 1);
    fill(b->w, K * K, 0.0625f, 3);
}

static void
snapshot(bufs *b, glm_act *to)
{
    memcpy(to, b->y, N * sizeof(glm_act));
    memcpy(to + N, b->z, N * sizeof(glm_act));
    memcpy(to + 2 * N, b->out, M * K * sizeof(glm_act));
}

int
main(void)
{
    static glm_act eager1[2 * N + M * K], eager2[2 * N + M * K], got[2 * N + M * K];
    cudaStream_t s;
    cudaGraph_t g = NULL;
    cudaGraphExec_t ge = NULL;
    cudaStreamCaptureStatus st;
    glm_emu_counts k;
    bufs b;
    cudaError_t e, e2;
    char d[256];
    int ok;
    cublasOperation_t t = CUBLAS_OP_T;

    cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    cudaMalloc((void **) &b.x, N * sizeof(glm_act));
    cudaMalloc((void **) &b.y, N * sizeof(glm_act));
    cudaMalloc((void **) &b.z, N * sizeof(glm_act));
    cudaMalloc((void **) &b.w, K * K * sizeof(glm_act));
    cudaMalloc((void **) &b.out, M * K * sizeof(glm_act));
    cudaMallocHost((void **) &b.host_in, N * sizeof(glm_act));
    cublasLtCreate(&b.lt);
    cublasLtMatmulDescCreate(&b.op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasLtMatmulDescSetAttribute(b.op, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof(t));
    /* column-major: D[K, M] = W^T-as-stored (K x K, transposed) * Z (K x M) */
    cublasLtMatrixLayoutCreate(&b.la, CUDA_R_16BF, K, K, K);
    cublasLtMatrixLayoutCreate(&b.lb, CUDA_R_16BF, K, M, K);
    cublasLtMatrixLayoutCreate(&b.lc, CUDA_R_16BF, K, M, K);

    /* eager references on two inputs */
    reset_inputs(&b, 1);
    step(&b, s);
    snapshot(&b, eager1);
    reset_inputs(&b, 2);
    step(&b, s);
    snapshot(&b, eager2);

    /* capture: recorded, not run */
    reset_inputs(&b, 1);
    memset(b.z, 0x7f, N * sizeof(glm_act));
    memset(b.out, 0x7f, M * K * sizeof(glm_act));
    snapshot(&b, got);
    e = cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
    cudaStreamIsCapturing(s, &st);
    step(&b, s);
    e2 = cudaStreamEndCapture(s, &g);
    {
        static glm_act after[2 * N + M * K];
        snapshot(&b, after);
        ok = e == cudaSuccess && e2 == cudaSuccess && g != NULL
             && st == cudaStreamCaptureStatusActive && memcmp(after, got, sizeof(got)) == 0;
        check("capture_records_only", ok, "");
    }

    /* replay = eager, twice, the second on a rewritten pinned input */
    cudaGraphInstantiate(&ge, g, 0);
    glm_emu_counts_reset();
    cudaGraphLaunch(ge, s);
    glm_emu_counts_get(&k);
    snapshot(&b, got);
    ok = memcmp(got, eager1, sizeof(got)) == 0;
    check("replay_equals_eager", ok, "");
    /* 4 kernels (2 adds, swiglu, the matmul), of which 1 GEMM; 1 host launch */
    snprintf(d, sizeof(d), "launches=%llu/4 gemms=%llu/1 host_launches=%llu/1"
             " graph_launches=%llu/1 copies=%llu/1 memsets=%llu/1 ",
             (unsigned long long) k.launches, (unsigned long long) k.gemm_launches,
             (unsigned long long) k.host_launches, (unsigned long long) k.graph_launches,
             (unsigned long long) k.copies, (unsigned long long) k.memsets);
    check("replay_counters", k.launches == 4 && k.gemm_launches == 1 && k.host_launches == 1
          && k.graph_launches == 1 && k.copies == 1 && k.memsets == 1, d);
    reset_inputs(&b, 2);
    cudaGraphLaunch(ge, s);
    snapshot(&b, got);
    check("replay_reads_inputs_at_replay", memcmp(got, eager2, sizeof(got)) == 0, "");

    /* eager host launches: one per kernel or matmul */
    glm_emu_counts_reset();
    step(&b, s);
    glm_emu_counts_get(&k);
    snprintf(d, sizeof(d), "launches=%llu/4 host_launches=%llu/4 ",
             (unsigned long long) k.launches, (unsigned long long) k.host_launches);
    check("eager_counters", k.launches == 4 && k.host_launches == 4, d);
    cudaGraphExecDestroy(ge);
    cudaGraphDestroy(g);

    /* what CUDA forbids while capturing: each invalidates the capture */
    {
        static char pageable[64];
        void *p = NULL;
        cudaEvent_t ev;
        int i;

        cudaEventCreateWithFlags(&ev, cudaEventDisableTiming);
        for (i = 0; i < 9; i++) {
            const char *name = "";
            cudaError_t want = cudaErrorStreamCaptureUnsupported;

            g = NULL;
            cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
            glm_cuda_add(s, b.y, b.x, N);
            switch (i) {
            case 0:
                name = "forbids_stream_sync";
                e = cudaStreamSynchronize(s);
                break;
            case 1:
                name = "forbids_device_sync";
                e = cudaDeviceSynchronize();
                break;
            case 2:
                name = "forbids_event_sync";
                cudaEventRecord(ev, s);
                e = cudaEventSynchronize(ev);
                break;
            case 3:
                name = "forbids_blocking_copy";
                e = cudaMemcpy(b.x, b.host_in, 16, cudaMemcpyHostToDevice);
                break;
            case 4:
                name = "forbids_pageable_copy";
                e = cudaMemcpyAsync(pageable, b.x, 16, cudaMemcpyDeviceToHost, s);
                break;
            case 5:
                name = "forbids_malloc";
                e = cudaMalloc(&p, 64);
                break;
            case 6:
                name = "forbids_malloc_async";
                e = cudaMallocAsync(&p, 64, s);
                break;
            case 7:
                name = "forbids_malloc_host";
                e = cudaMallocHost(&p, 64);
                break;
            default:
                name = "forbids_legacy_stream";
                want = cudaErrorStreamCaptureImplicit;
                e = cudaMemsetAsync(b.x, 0, 16, (cudaStream_t) 0);
                break;
            }
            /* later work on the invalidated stream is refused too (a kernel
             * launcher would stop the program at its launch check) */
            e2 = cudaMemsetAsync(b.y, 0, 16, s);
            {
                cudaError_t end = cudaStreamEndCapture(s, &g);
                snprintf(d, sizeof(d), "call=%d end=%d after=%d why=\"%s\" ", (int) e,
                         (int) end, (int) e2, glm_emu_capture_invalid_why());
                check(name, e == want && end == cudaErrorStreamCaptureInvalidated
                      && g == NULL && e2 == cudaErrorStreamCaptureInvalidated, d);
            }
        }
        cudaEventDestroy(ev);
    }

    /* and the stream works eagerly again afterwards */
    reset_inputs(&b, 1);
    step(&b, s);
    snapshot(&b, got);
    check("eager_after_failed_capture", memcmp(got, eager1, sizeof(got)) == 0, "");

    cublasLtMatrixLayoutDestroy(b.la);
    cublasLtMatrixLayoutDestroy(b.lb);
    cublasLtMatrixLayoutDestroy(b.lc);
    cublasLtMatmulDescDestroy(b.op);
    cublasLtDestroy(b.lt);
    cudaFree(b.x);
    cudaFree(b.y);
    cudaFree(b.z);
    cudaFree(b.w);
    cudaFree(b.out);
    cudaFreeHost(b.host_in);
    cudaStreamDestroy(s);
    printf("test_graphs: %d checks, %d failed\n", checks, failures);
    fflush(stdout);
    return failures ? 1 : 0;
}
