/*
 * cuda_runtime.h (emulated): the subset of the CUDA runtime and device
 * language that kernels/ uses, on the CPU, so the kernels and the backend
 * can run against the CPU oracle on machines without a GPU (t/gpu/emu/emu.cpp
 * has the design note).  Device memory is host memory; every call is
 * synchronous; each CUDA thread of a block is a fiber, so __syncthreads and
 * warp shuffles have their real blocking semantics (and a barrier some
 * threads never reach is reported as a deadlock).
 */
#ifndef GLM_EMU_CUDA_RUNTIME_H
#define GLM_EMU_CUDA_RUNTIME_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <functional>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
/* blocks run one at a time, so a function-static is per-block shared memory */
#define __shared__ static

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};

struct int4 {
    int x, y, z, w;
};

extern dim3 threadIdx, blockIdx, blockDim, gridDim;
extern void *glm_emu_smem;          /* this launch's dynamic shared memory */

typedef int cudaError_t;
enum {
    cudaSuccess = 0,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidValue = 1,
    cudaErrorNotReady = 600,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorStreamCaptureImplicit = 906,
};
typedef struct glm_emu_stream *cudaStream_t;
typedef struct glm_emu_event *cudaEvent_t;
typedef struct glm_emu_pool *cudaMemPool_t;
typedef struct glm_emu_graph *cudaGraph_t;
typedef struct glm_emu_graph_exec *cudaGraphExec_t;
enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2,
};
enum cudaStreamCaptureStatus {
    cudaStreamCaptureStatusNone = 0,
    cudaStreamCaptureStatusActive = 1,
    cudaStreamCaptureStatusInvalidated = 2,
};
enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};
enum { cudaStreamNonBlocking = 1, cudaEventDisableTiming = 2 };
enum cudaMemPoolAttr { cudaMemPoolAttrReleaseThreshold = 4 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

struct cudaDeviceProp {
    char name[256];
    int major, minor;
    size_t totalGlobalMem;
    int multiProcessorCount;
};

cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaMalloc(void **p, size_t n);
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocAsync(void **p, size_t n, cudaStream_t s);
cudaError_t cudaFreeAsync(void *p, cudaStream_t s);
cudaError_t cudaMallocHost(void **p, size_t n);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind k, cudaStream_t st);
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t st);
cudaError_t cudaMemGetInfo(size_t *fr, size_t *tot);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind k);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventQuery(cudaEvent_t e);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t *p, int d);
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t p, cudaMemPoolAttr a, void *v);

/* stream capture and graphs (emu.cpp, "graphs") */
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g);
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *status);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e);
cudaError_t cudaGraphDestroy(cudaGraph_t g);

template <typename F>
cudaError_t cudaFuncSetAttribute(F f, cudaFuncAttribute a, int v)
{
    (void) f;
    (void) a;
    (void) v;
    return cudaSuccess;
}

/* ---- device functions ---- */

void __syncthreads(void);
float glm_emu_shfl_xor(float v, int o);
double glm_emu_shfl_xor_d(double v, int o);

static inline float __shfl_xor_sync(unsigned m, float v, int o) { (void) m; return glm_emu_shfl_xor(v, o); }
static inline double __shfl_xor_sync(unsigned m, double v, int o) { (void) m; return glm_emu_shfl_xor_d(v, o); }

/* blocks run one after another: every write is visible to the next */
static inline void __threadfence(void) {}

/* fibers never run at the same time: a plain add is atomic */
static inline int atomicAdd(int *p, int v) { int o = *p; *p = o + v; return o; }

static inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
static inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
static inline float __fsub_rn(float a, float b) { volatile float r = a - b; return r; }
static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
static inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }

/* ---- launches: kernel<<<cfg>>>(args) becomes glm_emu_launch(kernel, cfg, args) ---- */

struct glm_emu_cfg {
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;        /* checked against the thread's current device */
};

static inline glm_emu_cfg
glm_emu_config(dim3 grid, dim3 block, size_t smem = 0, cudaStream_t s = 0)
{
    return glm_emu_cfg { grid, block, smem, s };
}

/* stops the process when s belongs to another device than the calling
 * thread's current one */
void glm_emu_stream_check(cudaStream_t s, const char *what);

void glm_emu_run(const glm_emu_cfg &cfg, const std::function<void()> &body);

/* Work for stream s: run now, or, while s is capturing, recorded into its
 * graph (the closure holds the arguments by value, as a kernel node does)
 * and run by each replay.  is_kernel: a kernel or a cuBLASLt matmul, which
 * costs the host one launch when run eagerly (a copy or memset: 0). */
void glm_emu_submit(cudaStream_t s, int is_kernel, const std::function<void()> &work);

template <typename... P, typename... A>
void
glm_emu_launch(void (*k)(P...), const glm_emu_cfg &cfg, A... args)
{
    glm_emu_cfg c = cfg;

    glm_emu_submit(cfg.stream, 1, [=]() { glm_emu_run(c, [=]() { k(args...); }); });
}

#endif
