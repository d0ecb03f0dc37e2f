/*
 * emu.cpp: runs kernels/ on the CPU, for machines without a GPU.
 *
 * Why: the CUDA backend was written where no GPU exists, and a GPU session's
 * time is short.  This runs every kernel and the whole backend against the
 * CPU oracle (t/gpu/test_ops.c) here, under ASan/UBSan, so logic errors,
 * out-of-bounds indexing, divergent barriers and bad cuBLASLt layouts show
 * up before a GPU ever sees the code.  It proves nothing about what only
 * hardware shows (timing, races between blocks, memory model, real
 * cuBLASLt, host code reading device pointers: device memory is host
 * memory here).
 *
 * How: t/gpu/emu/convert.py rewrites `k<<<cfg>>>(args)` into
 * glm_emu_launch(k, glm_emu_config(cfg), args) and `extern __shared__`
 * arrays into this launch's buffer; g++ compiles the result against the
 * headers in include/.  A launch runs its blocks one after another; the
 * threads of a block are fibers on one OS thread (makecontext to start,
 * _setjmp/_longjmp to switch: no signal-mask syscalls), switched only
 * at __syncthreads and warp shuffles, which therefore block exactly as on
 * the GPU: a barrier is released when every live thread of the block (or
 * of the warp, for a shuffle) has reached it, and when nothing can proceed
 * the launch stops with a deadlock report.  Dynamic shared memory is filled
 * with NaNs before each block, so reads of unwritten shared memory show.
 * Function-static __shared__ variables are shared by the block's fibers,
 * which is the CUDA meaning since blocks do not overlap.
 *
 * It also counts what `make gpu-profile` reports (glm_emu_profile.h):
 * launches, host syncs, allocations, and the weight bytes each launch reads.
 *
 * Several host threads (tensor-parallel ranks, one per emulated GPU) may
 * call in at once.  The emulator's state is global (the fibers and their
 * stacks, threadIdx/blockIdx, function-static __shared__ variables, the
 * allocation map, the counters, the stand-in cuBLASLt's launch marks), so
 * one process-wide lock (emu_lock) is held by every launch and every
 * runtime call that touches it: launches of different threads run one
 * after another, each whole, as blocks of one launch already do.  The
 * counters are the process's (all ranks together).  GLM_EMU_DEVICES=N
 * makes N devices visible (default 1); the current device is per host
 * thread, as in CUDA, each allocation is charged to its device
 * (GLM_EMU_DEVICE_BYTES is each device's size), and a launch, copy or
 * allocation on a stream of another device than the calling thread's
 * current one stops with a report (CUDA would fail it).
 * Graphs, as CUDA 13 has them for one stream: cudaStreamBeginCapture
 * (global mode) makes kernels, cuBLASLt matmuls, copies and memsets
 * submitted to that stream nodes of a graph, recorded with their arguments
 * by value and not run; cudaGraphInstantiate + cudaGraphLaunch replays
 * them in order (one host launch; each replayed kernel counts as a
 * launch).  What CUDA refuses while a capture is active fails here too,
 * returning cudaErrorStreamCaptureUnsupported (or ...Implicit for work on
 * the legacy stream) and invalidating the capture, so that
 * cudaStreamEndCapture returns cudaErrorStreamCaptureInvalidated and no
 * graph: stream/device/event synchronisation, blocking cudaMemcpy, an
 * async copy touching pageable host memory, cudaMalloc/cudaFree/
 * cudaMallocHost/cudaFreeHost.  Stricter than CUDA: cudaMallocAsync and
 * cudaFreeAsync on the capturing stream fail too (CUDA would make graph-
 * owned memory nodes; the backend must size its scratch before capturing,
 * and this is how a capture that grows it shows).  After invalidation,
 * further work on the stream is dropped and cudaGetLastError reports it,
 * as on the hardware.
 */
#include "cuda_runtime.h"
#include "glm_emu_profile.h"

#include <setjmp.h>
#include <stdio.h>
#include <ucontext.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <vector>

/* see the note above: every entry point that touches the emulator's global
 * state holds it; recursive, since cuBLASLt's stand-in holds it from
 * glm_emu_gemm_begin to glm_emu_gemm_end around its own reads */
static std::recursive_mutex emu_lock;
#define EMU_LOCKED std::lock_guard<std::recursive_mutex> emu_guard_(emu_lock)

#define EMU_MAX_DEVICES 16
static thread_local int emu_device;             /* cudaSetDevice, per host thread */

struct glm_emu_stream {
    int device;                                 /* the device current at creation */
    int capturing;                              /* cudaStreamCaptureStatus */
    struct glm_emu_graph *graph;
};

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define GLM_EMU_ASAN 1
#else
#define GLM_EMU_ASAN 0
#endif

dim3 threadIdx, blockIdx, blockDim, gridDim;
void *glm_emu_smem;

enum { F_RUN, F_WAIT_BLOCK, F_WAIT_WARP, F_DONE };

typedef struct {
    ucontext_t ctx;             /* the entry point, used once */
    jmp_buf    jb;              /* where it yielded */
    int        state;
    int        started;
} glm_fiber;

#define GLM_EMU_MAX_THREADS 1024
#define GLM_EMU_STACK (512u << 10)

static glm_fiber fibers[GLM_EMU_MAX_THREADS];
static char *stacks;
static int n_threads, cur;
static ucontext_t sched_ctx;
static jmp_buf sched_jb;
static const std::function<void()> *body_cur;
static double shfl_slot[GLM_EMU_MAX_THREADS];
#if GLM_EMU_ASAN
static const void *sched_bottom;
static size_t sched_size;
#endif
static size_t smem_cap;

static void
fail(const char *what)
{
    fprintf(stderr, "emu: %s (block %u,%u,%u thread %d)\n", what, blockIdx.x, blockIdx.y,
            blockIdx.z, cur);
    abort();
}

/* ---- fiber switching (annotated for ASan) ---- */

/* noinline: the _setjmp below gets a frame of its own, so nothing of the
 * caller's lives only in registers across the jump back */
static __attribute__((noinline)) void
to_fiber(int t)
{
#if GLM_EMU_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, stacks + (size_t) t * GLM_EMU_STACK, GLM_EMU_STACK);
#endif
    if (_setjmp(sched_jb) == 0) {
        if (!fibers[t].started) {
            fibers[t].started = 1;
            swapcontext(&sched_ctx, &fibers[t].ctx);
        } else {
            _longjmp(fibers[t].jb, 1);
        }
    }
#if GLM_EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
}

static __attribute__((noinline)) void
to_scheduler(int state)
{
    int me = cur;

    fibers[me].state = state;
#if GLM_EMU_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, sched_bottom, sched_size);
#endif
    if (_setjmp(fibers[me].jb) == 0) {
        _longjmp(sched_jb, 1);
    }
#if GLM_EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
}

/* A fiber runs the kernel body once per block of the launch: after each
 * block it parks as F_DONE and is resumed with the next blockIdx. */
static void
fiber_entry(void)
{
#if GLM_EMU_ASAN
    __sanitizer_finish_switch_fiber(NULL, &sched_bottom, &sched_size);
#endif
    for (;;) {
        (*body_cur)();
        to_scheduler(F_DONE);
    }
}

/* ---- device-side sync ---- */

void
__syncthreads(void)
{
    to_scheduler(F_WAIT_BLOCK);
}

double
glm_emu_shfl_xor_d(double v, int o)
{
    int me = cur, src = me ^ o;
    double r;

    if (o < 0 || o > 31 || src >= n_threads) {
        fail("shuffle outside the warp");
    }
    shfl_slot[me] = v;
    to_scheduler(F_WAIT_WARP);
    if (fibers[src].state == F_DONE) {
        fail("shuffle from a lane that has exited");
    }
    r = shfl_slot[src];
    to_scheduler(F_WAIT_WARP);
    return r;
}

float
glm_emu_shfl_xor(float v, int o)
{
    return (float) glm_emu_shfl_xor_d((double) v, o);
}

/* ---- profile counters (glm_emu_profile.h) ---- */

enum { A_DEVICE, A_PINNED };

typedef struct {
    size_t                     size;
    int                        kind;
    int                        device;          /* device memory: whose */
    int                        weight;
    std::vector<unsigned char> *seen;   /* weights: bytes read by this launch, a bit each */
} glm_alloc;

static std::map<uintptr_t, glm_alloc> allocs;
static std::vector<uintptr_t> weight_lo;        /* weight allocations, ascending */
static std::vector<glm_alloc *> weight_of;
static std::vector<glm_alloc *> touched;        /* weights read by this launch */
static glm_emu_counts counts;
static int paused, marking_weights, in_launch;
int glm_emu_loads_hooked;                       /* set by emu_reads.cpp when linked */

static void
weights_reindex(void)
{
    weight_lo.clear();
    weight_of.clear();
    for (auto &a : allocs) {
        if (a.second.weight) {
            weight_lo.push_back(a.first);
            weight_of.push_back(&a.second);
        }
    }
}

static void
alloc_add(void *p, size_t n, int kind)
{
    glm_alloc a = { n, kind, emu_device, 0, NULL };

    if (!paused) {
        counts.allocs++;
    }
    if (marking_weights && kind == A_DEVICE) {
        a.weight = 1;
        a.seen = new std::vector<unsigned char>((n + 7) / 8);
    }
    allocs[(uintptr_t) p] = a;
    if (a.weight) {
        weights_reindex();
    }
}

static void
alloc_remove(void *p)
{
    auto it = allocs.find((uintptr_t) p);

    if (p == NULL) {
        return;
    }
    if (!paused) {
        counts.frees++;
    }
    if (it != allocs.end()) {
        int w = it->second.weight;
        delete it->second.seen;
        allocs.erase(it);
        if (w) {
            weights_reindex();
        }
    }
}

/* device memory (cudaMalloc), not host memory pinned or not */
static int
is_device(const void *p)
{
    auto it = allocs.upper_bound((uintptr_t) p);

    if (it == allocs.begin()) {
        return 0;
    }
    --it;
    return (uintptr_t) p < it->first + it->second.size && it->second.kind == A_DEVICE;
}

/* a copy from the device to the host: what a step sends back */
static void
count_d2h(void *d, const void *s, size_t n)
{
    if (!paused && is_device(s) && !is_device(d)) {
        counts.d2h_copies++;
        counts.d2h_bytes += n;
    }
}

/* pinned or device memory (not pageable host memory) */
static int
is_registered(const void *p)
{
    auto it = allocs.upper_bound((uintptr_t) p);

    if (it == allocs.begin()) {
        return 0;
    }
    --it;
    return (uintptr_t) p < it->first + it->second.size;
}

static void
host_sync(void)
{
    if (!paused) {
        counts.host_syncs++;
    }
}

static void
launch_begin(void)
{
    if (!paused) {
        counts.launches++;
    }
    in_launch = 1;
}

static void
launch_end(void)
{
    for (glm_alloc *a : touched) {
        std::fill(a->seen->begin(), a->seen->end(), 0);
    }
    touched.clear();
    in_launch = 0;
}

extern "C" void
glm_emu_read(const void *p, size_t n)
{
    uintptr_t lo = (uintptr_t) p, hi = lo + n;
    size_t i;

    if (!in_launch || paused || weight_lo.empty() || hi <= weight_lo.front()) {
        return;
    }
    i = (size_t) (std::upper_bound(weight_lo.begin(), weight_lo.end(), lo) - weight_lo.begin());
    if (i == 0) {
        return;
    }
    glm_alloc *a = weight_of[i - 1];
    uintptr_t base = weight_lo[i - 1], b;
    if (lo >= base + a->size) {
        return;
    }
    if (hi > base + a->size) {
        hi = base + a->size;
    }
    for (b = lo - base; b < hi - base; b++) {
        unsigned char bit = (unsigned char) (1u << (b & 7));
        unsigned char &cell = (*a->seen)[b >> 3];
        if (!(cell & bit)) {
            cell |= bit;
            counts.weight_bytes++;
        }
    }
    if (touched.empty() || touched.back() != a) {
        if (std::find(touched.begin(), touched.end(), a) == touched.end()) {
            touched.push_back(a);
        }
    }
}

/* held until glm_emu_gemm_end: the stand-in cuBLASLt's product is a launch */
extern "C" void
glm_emu_gemm_begin(void)
{
    emu_lock.lock();
    if (!paused) {
        counts.gemm_launches++;
    }
    launch_begin();
}

extern "C" void glm_emu_gemm_end(void) { launch_end(); emu_lock.unlock(); }

extern "C" void
glm_emu_counts_get(glm_emu_counts *c)
{
    EMU_LOCKED;
    *c = counts;
    c->weights_exact = glm_emu_loads_hooked;
}

extern "C" void glm_emu_counts_reset(void) { EMU_LOCKED; memset(&counts, 0, sizeof(counts)); }
extern "C" void glm_emu_pause(int on) { EMU_LOCKED; paused = on; }
extern "C" void glm_emu_weights_mark(int on) { EMU_LOCKED; marking_weights = on; }

/* ---- launches ---- */

/* getcontext "returns twice" as far as the compiler knows (it never does
 * here: makecontext replaces where it would return); keep it in a frame
 * of its own */
static __attribute__((noinline)) void
init_fiber(int t)
{
    getcontext(&fibers[t].ctx);
    fibers[t].ctx.uc_stack.ss_sp = stacks + (size_t) t * GLM_EMU_STACK;
    fibers[t].ctx.uc_stack.ss_size = GLM_EMU_STACK;
    fibers[t].ctx.uc_link = NULL;
    makecontext(&fibers[t].ctx, fiber_entry, 0);
    fibers[t].started = 0;
}

static void
start_fibers(void)
{
    int t;

    for (t = 0; t < n_threads; t++) {
        init_fiber(t);
    }
}

static void
run_block(void)
{
    int t, w;

    if (glm_emu_smem != NULL) {
        memset(glm_emu_smem, 0xff, smem_cap);   /* NaN floats, -1 ints */
    }
    for (t = 0; t < n_threads; t++) {
        fibers[t].state = F_RUN;
    }
    for (;;) {
        int alive = 0, at_block = 0, released = 0;

        for (t = 0; t < n_threads; t++) {
            if (fibers[t].state == F_RUN) {
                cur = t;
                threadIdx = dim3((unsigned) t);
                to_fiber(t);
            }
        }
        for (t = 0; t < n_threads; t++) {
            alive += fibers[t].state != F_DONE;
            at_block += fibers[t].state == F_WAIT_BLOCK;
        }
        if (alive == 0) {
            return;
        }
        if (at_block == alive) {
            for (t = 0; t < n_threads; t++) {
                if (fibers[t].state == F_WAIT_BLOCK) {
                    fibers[t].state = F_RUN;
                }
            }
            continue;
        }
        for (w = 0; w * 32 < n_threads; w++) {
            int a = 0, at_warp = 0, end = (w + 1) * 32 < n_threads ? (w + 1) * 32 : n_threads;
            for (t = w * 32; t < end; t++) {
                a += fibers[t].state != F_DONE;
                at_warp += fibers[t].state == F_WAIT_WARP;
            }
            if (a > 0 && at_warp == a) {
                for (t = w * 32; t < end; t++) {
                    if (fibers[t].state == F_WAIT_WARP) {
                        fibers[t].state = F_RUN;
                    }
                }
                released = 1;
            }
        }
        if (!released) {
            fprintf(stderr, "emu: deadlock: %d live threads, %d at __syncthreads, the rest"
                    " at warp shuffles of warps with lanes elsewhere\n", alive, at_block);
            cur = -1;
            fail("deadlock");
        }
    }
}

void
glm_emu_run(const glm_emu_cfg &cfg, const std::function<void()> &body)
{
    EMU_LOCKED;
    unsigned x, y, z;

    glm_emu_stream_check(cfg.stream, "a kernel launch");
    if (cfg.block.y != 1 || cfg.block.z != 1) {
        fail("only 1-D blocks are emulated");
    }
    n_threads = (int) cfg.block.x;
    if (n_threads < 1 || n_threads > GLM_EMU_MAX_THREADS || cfg.grid.x < 1 || cfg.grid.y < 1
        || cfg.grid.z < 1 || cfg.grid.y > 65535 || cfg.grid.z > 65535)
    {
        fail("bad launch configuration");
    }
    if (stacks == NULL) {
        stacks = (char *) malloc((size_t) GLM_EMU_MAX_THREADS * GLM_EMU_STACK);
        if (stacks == NULL) {
            fail("out of memory for fiber stacks");
        }
    }
    if (cfg.smem > 227u * 1024) {
        fail("more dynamic shared memory than a Hopper block may have");
    }
    free(glm_emu_smem);
    glm_emu_smem = cfg.smem ? malloc(cfg.smem) : NULL;
    smem_cap = cfg.smem;
    blockDim = cfg.block;
    gridDim = cfg.grid;
    body_cur = &body;
    launch_begin();
    start_fibers();
    for (z = 0; z < cfg.grid.z; z++) {
        for (y = 0; y < cfg.grid.y; y++) {
            for (x = 0; x < cfg.grid.x; x++) {
                blockIdx = dim3(x, y, z);
                run_block();
            }
        }
    }
    free(glm_emu_smem);
    glm_emu_smem = NULL;
    smem_cap = 0;
    launch_end();
}

/* ---- graphs ---- */

struct glm_emu_graph {
    std::vector<std::function<void()>> nodes;
};

struct glm_emu_graph_exec {
    std::vector<std::function<void()>> nodes;
};

static cudaStream_t capturing;          /* the one stream capturing (global mode) */
static cudaError_t last_error;
static std::string invalid_why;

static void
capture_invalidate(cudaStream_t s, const char *why)
{
    if (s != NULL && s->capturing == cudaStreamCaptureStatusActive) {
        s->capturing = cudaStreamCaptureStatusInvalidated;
        invalid_why = why;
        if (getenv("GLM_EMU_CAPTURE_TRACE") != NULL) {
            fprintf(stderr, "emu: capture invalidated: %s\n", why);
        }
    }
}

/* an API call CUDA forbids while any capture is active (global mode):
 * the error it returns, or cudaSuccess when no capture is active */
static cudaError_t
capture_forbids(const char *what)
{
    if (capturing == NULL) {
        return cudaSuccess;
    }
    capture_invalidate(capturing, what);
    return cudaErrorStreamCaptureUnsupported;
}

void
glm_emu_submit(cudaStream_t s, int is_kernel, const std::function<void()> &work)
{
    EMU_LOCKED;
    if (s != NULL && s->capturing == cudaStreamCaptureStatusActive) {
        s->graph->nodes.push_back(work);
        return;
    }
    if (s != NULL && s->capturing == cudaStreamCaptureStatusInvalidated) {
        last_error = cudaErrorStreamCaptureInvalidated;
        return;
    }
    if (s == NULL && capturing != NULL) {
        /* the legacy stream synchronises with the capturing one */
        capture_invalidate(capturing, "work on the legacy stream while capturing");
        last_error = cudaErrorStreamCaptureImplicit;
        return;
    }
    if (is_kernel && !paused) {
        counts.host_launches++;
    }
    work();
}

cudaError_t
cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode)
{
    EMU_LOCKED;
    if (s == NULL || capturing != NULL || mode != cudaStreamCaptureModeGlobal) {
        /* the legacy stream cannot capture; one capture at a time here */
        return cudaErrorInvalidValue;
    }
    s->capturing = cudaStreamCaptureStatusActive;
    s->graph = new glm_emu_graph;
    capturing = s;
    invalid_why.clear();
    return cudaSuccess;
}

cudaError_t
cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g)
{
    EMU_LOCKED;
    int status = s != NULL ? s->capturing : 0;

    *g = NULL;
    if (s == NULL || status == cudaStreamCaptureStatusNone) {
        return cudaErrorInvalidValue;
    }
    s->capturing = cudaStreamCaptureStatusNone;
    capturing = NULL;
    if (status == cudaStreamCaptureStatusInvalidated) {
        delete s->graph;
        s->graph = NULL;
        return cudaErrorStreamCaptureInvalidated;
    }
    *g = s->graph;
    s->graph = NULL;
    return cudaSuccess;
}

cudaError_t
cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *status)
{
    *status = s != NULL ? (cudaStreamCaptureStatus) s->capturing
              : cudaStreamCaptureStatusNone;
    return cudaSuccess;
}

cudaError_t
cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long flags)
{
    EMU_LOCKED;
    (void) flags;
    if (g == NULL) {
        return cudaErrorInvalidValue;
    }
    *e = new glm_emu_graph_exec;
    (*e)->nodes = g->nodes;     /* an instance is a snapshot of the graph */
    return cudaSuccess;
}

cudaError_t
cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s)
{
    EMU_LOCKED;
    if (e == NULL) {
        return cudaErrorInvalidValue;
    }
    if (s != NULL && s->capturing != cudaStreamCaptureStatusNone) {
        /* CUDA can capture a graph launch as a child graph; nothing here does */
        capture_invalidate(s, "cudaGraphLaunch while capturing");
        return cudaErrorStreamCaptureUnsupported;
    }
    if (!paused) {
        counts.host_launches++;
        counts.graph_launches++;
    }
    for (auto &n : e->nodes) {
        n();
    }
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) { delete e; return cudaSuccess; }
cudaError_t cudaGraphDestroy(cudaGraph_t g) { delete g; return cudaSuccess; }

/* the reason the last capture was invalidated ("" if none), for tests */
extern "C" const char *glm_emu_capture_invalid_why(void) { return invalid_why.c_str(); }

/* ---- runtime API: host memory, everything synchronous ---- */

/*
 * Device memory: GLM_EMU_DEVICE_BYTES in the environment (bytes, or with a
 * k/m/g suffix) makes the emulated card that large: cudaMalloc beyond it
 * returns cudaErrorMemoryAllocation, as a real card does, instead of
 * taking the host's memory (make big-check runs a real-width model here);
 * cudaMemGetInfo and the device properties report it.  Unset: no limit,
 * and the 80 GiB card the properties always said.
 */
static size_t device_limit, device_in_use[EMU_MAX_DEVICES], device_peak, device_refused;
static int device_limit_read, device_count;

/* GLM_EMU_DEVICES: how many devices are visible (1 unset) */
static int
emu_device_count(void)
{
    if (device_count == 0) {
        const char *s = getenv("GLM_EMU_DEVICES");
        int n = s != NULL ? atoi(s) : 1;

        if (n < 1 || n > EMU_MAX_DEVICES) {
            fail("GLM_EMU_DEVICES wants 1 to 16 devices");
        }
        device_count = n;
    }
    return device_count;
}

void
glm_emu_stream_check(cudaStream_t s, const char *what)
{
    if (s != NULL && s->device != emu_device) {
        fprintf(stderr, "emu: %s on a stream of device %d from a thread whose current device"
                " is %d (cudaSetDevice first)\n", what, s->device, emu_device);
        abort();
    }
}

static size_t
emu_device_limit(void)
{
    if (!device_limit_read) {
        const char *s = getenv("GLM_EMU_DEVICE_BYTES");
        char *end = NULL;
        unsigned long long v = s ? strtoull(s, &end, 10) : 0;

        if (s != NULL && end != s) {
            int shift = *end == 'k' || *end == 'K' ? 10 : *end == 'm' || *end == 'M' ? 20
                        : *end == 'g' || *end == 'G' ? 30 : 0;
            end += shift != 0;
            if (*end == '\0') {
                device_limit = (size_t) (v << shift);
            }
        }
        if (s != NULL && device_limit == 0) {
            fail("GLM_EMU_DEVICE_BYTES wants a positive size (bytes, or with k, m or g)");
        }
        device_limit_read = 1;
    }
    return device_limit;
}

void
glm_emu_device_bytes(size_t *in_use, size_t *peak, size_t *limit, size_t *refused)
{
    EMU_LOCKED;
    *in_use = device_in_use[emu_device];
    *peak = device_peak;
    *limit = emu_device_limit();
    *refused = device_refused;
}


cudaError_t cudaGetDeviceCount(int *n) { EMU_LOCKED; *n = emu_device_count(); return cudaSuccess; }

cudaError_t
cudaSetDevice(int d)
{
    EMU_LOCKED;
    if (d < 0 || d >= emu_device_count()) {
        return cudaErrorInvalidValue;
    }
    emu_device = d;
    return cudaSuccess;
}

cudaError_t
cudaGetDeviceProperties(cudaDeviceProp *p, int d)
{
    (void) d;
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "CPU emulation (t/gpu/emu)");
    p->major = 9;
    p->minor = 0;
    p->totalGlobalMem = emu_device_limit() ? device_limit : (size_t) 80 << 30;
    p->multiProcessorCount = 132;
    return cudaSuccess;
}

const char *
cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess:
        return "no error";
    case cudaErrorStreamCaptureUnsupported:
        return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated:
        return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureImplicit:
        return "operation would make the legacy stream depend on a capturing blocking stream";
    default:
        return "emulated error";
    }
}

cudaError_t
cudaGetLastError(void)
{
    cudaError_t e = last_error;

    last_error = cudaSuccess;
    return e;
}

static cudaError_t
emu_malloc(void **p, size_t n)
{
    *p = NULL;
    if (posix_memalign(p, 256, n ? n : 1) != 0) {
        return cudaErrorMemoryAllocation;
    }
    memset(*p, 0xa5, n);       /* garbage, as cudaMalloc gives */
    return cudaSuccess;
}

cudaError_t
cudaMalloc(void **p, size_t n)
{
    EMU_LOCKED;
    cudaError_t e;
    size_t &in_use = device_in_use[emu_device];

    if ((e = capture_forbids("cudaMalloc while capturing")) != cudaSuccess) {
        *p = NULL;
        return e;
    }
    if (emu_device_limit() != 0 && n > device_limit - in_use) {
        *p = NULL;
        device_refused = n;
        return cudaErrorMemoryAllocation;
    }
    e = emu_malloc(p, n);
    if (e == cudaSuccess) {
        alloc_add(*p, n, A_DEVICE);
        in_use += n;
        device_peak = in_use > device_peak ? in_use : device_peak;
    }
    return e;
}

cudaError_t
cudaFree(void *p)
{
    EMU_LOCKED;
    auto it = allocs.find((uintptr_t) p);
    cudaError_t e;

    if ((e = capture_forbids("cudaFree while capturing")) != cudaSuccess) {
        return e;
    }

    if (p != NULL && it != allocs.end() && it->second.kind == A_DEVICE) {
        device_in_use[it->second.device] -= it->second.size;
    }
    alloc_remove(p);
    free(p);
    return cudaSuccess;
}
/* stricter than CUDA while capturing (the design note says why) */
cudaError_t
cudaMallocAsync(void **p, size_t n, cudaStream_t s)
{
    EMU_LOCKED;
    glm_emu_stream_check(s, "cudaMallocAsync");
    if (capturing != NULL && s == capturing) {
        capture_invalidate(s, "cudaMallocAsync while capturing (scratch grew?)");
        *p = NULL;
        return cudaErrorStreamCaptureUnsupported;
    }
    return cudaMalloc(p, n);
}

cudaError_t
cudaFreeAsync(void *p, cudaStream_t s)
{
    EMU_LOCKED;
    if (capturing != NULL && s == capturing) {
        capture_invalidate(s, "cudaFreeAsync while capturing (scratch grew?)");
        return cudaErrorStreamCaptureUnsupported;
    }
    return cudaFree(p);
}

cudaError_t
cudaMallocHost(void **p, size_t n)
{
    EMU_LOCKED;
    cudaError_t e = capture_forbids("cudaMallocHost while capturing");

    if (e != cudaSuccess) {
        *p = NULL;
        return e;
    }
    e = emu_malloc(p, n);

    if (e == cudaSuccess) {
        alloc_add(*p, n, A_PINNED);
    }
    return e;
}

cudaError_t cudaFreeHost(void *p) { return cudaFree(p); }

cudaError_t
cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind k, cudaStream_t st)
{
    EMU_LOCKED;
    int pageable = !is_registered(d) || !is_registered(s);

    (void) k;
    glm_emu_stream_check(st, "cudaMemcpyAsync");
    if (st != NULL && st->capturing == cudaStreamCaptureStatusActive && pageable) {
        capture_invalidate(st, "cudaMemcpyAsync with pageable host memory while capturing");
        return cudaErrorStreamCaptureUnsupported;
    }
    if (st != NULL && st->capturing == cudaStreamCaptureStatusActive) {
        /* a copy node: copies whatever the buffers hold when it replays */
        glm_emu_submit(st, 0, [=]() {
            if (!paused) {
                counts.copies++;
            }
            if (n > 0) {
                memmove(d, s, n);
            }
        });
        return cudaSuccess;
    }
    if (st != NULL && st->capturing == cudaStreamCaptureStatusInvalidated) {
        return cudaErrorStreamCaptureInvalidated;
    }
    if (!paused) {
        counts.copies++;
    }
    /* CUDA: an async copy to or from pageable host memory is synchronous */
    if (pageable) {
        host_sync();
    }
    count_d2h(d, s, n);
    if (n > 0) {
        memmove(d, s, n);
    }
    return cudaSuccess;
}

cudaError_t
cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind k)
{
    EMU_LOCKED;
    cudaError_t e = capture_forbids("cudaMemcpy (blocking) while capturing");

    if (e != cudaSuccess) {
        return e;
    }
    if (!paused) {
        counts.copies++;
    }
    host_sync();
    (void) k;
    count_d2h(d, s, n);
    if (n > 0) {
        memmove(d, s, n);
    }
    return cudaSuccess;
}

cudaError_t
cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t st)
{
    EMU_LOCKED;
    glm_emu_stream_check(st, "cudaMemsetAsync");
    if (st != NULL && st->capturing == cudaStreamCaptureStatusInvalidated) {
        return cudaErrorStreamCaptureInvalidated;
    }
    if (st == NULL && capturing != NULL) {
        capture_invalidate(capturing, "cudaMemsetAsync on the legacy stream while capturing");
        return cudaErrorStreamCaptureImplicit;
    }
    glm_emu_submit(st, 0, [=]() {
        if (!paused) {
            counts.memsets++;
        }
        memset(d, v, n);
    });
    return cudaSuccess;
}

cudaError_t
cudaMemGetInfo(size_t *fr, size_t *tot)
{
    EMU_LOCKED;
    if (emu_device_limit() != 0) {
        *tot = device_limit;
        *fr = device_limit - device_in_use[emu_device];
        return cudaSuccess;
    }
    *fr = (size_t) 64 << 30;
    *tot = (size_t) 80 << 30;
    return cudaSuccess;
}

cudaError_t
cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags)
{
    (void) flags;
    *s = new glm_emu_stream();
    (*s)->device = emu_device;
    return cudaSuccess;
}

cudaError_t
cudaStreamDestroy(cudaStream_t s)
{
    EMU_LOCKED;
    if (s != NULL && s == capturing) {
        capturing = NULL;
    }
    if (s != NULL) {
        delete s->graph;
    }
    delete s;
    return cudaSuccess;
}

cudaError_t
cudaStreamSynchronize(cudaStream_t s)
{
    EMU_LOCKED;
    cudaError_t e = capture_forbids("cudaStreamSynchronize while capturing");

    (void) s;
    if (e != cudaSuccess) {
        return e;
    }
    host_sync();
    return cudaSuccess;
}

cudaError_t
cudaDeviceSynchronize(void)
{
    EMU_LOCKED;
    cudaError_t e = capture_forbids("cudaDeviceSynchronize while capturing");

    if (e != cudaSuccess) {
        return e;
    }
    host_sync();
    return cudaSuccess;
}

cudaError_t
cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags)
{
    (void) flags;
    *e = (cudaEvent_t) malloc(1);
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) { (void) e; (void) s; return cudaSuccess; }

cudaError_t
cudaEventSynchronize(cudaEvent_t e)
{
    EMU_LOCKED;
    cudaError_t err = capture_forbids("cudaEventSynchronize while capturing");

    (void) e;
    if (err != cudaSuccess) {
        return err;
    }
    host_sync();
    return cudaSuccess;
}
/* every call is synchronous here: whatever an event marks is done; not a
 * host sync (it never waits) */
cudaError_t cudaEventQuery(cudaEvent_t e) { (void) e; return cudaSuccess; }
cudaError_t cudaEventDestroy(cudaEvent_t e) { free(e); return cudaSuccess; }
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t *p, int d) { (void) d; *p = NULL; return cudaSuccess; }

cudaError_t
cudaMemPoolSetAttribute(cudaMemPool_t p, cudaMemPoolAttr a, void *v)
{
    (void) p;
    (void) a;
    (void) v;
    return cudaSuccess;
}
