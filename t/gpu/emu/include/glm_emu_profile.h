/*
 * glm_emu_profile.h: what the CPU emulation (t/gpu/emu) counts while the
 * CUDA backend runs, for `make gpu-profile` (t/gpu/profile.c) and the
 * counters' self-check in test_ops.
 *
 * Why in the emulator: every kernel launch, runtime call and weight read of
 * kernels/ passes through it, so later kernels are counted the same way
 * without instrumenting them by hand.  The counts are exact for what the
 * code asks of the CUDA runtime; they say nothing about time.
 *
 * - launches: kernel launches (<<<>>> rewritten by convert.py) plus
 *   cuBLASLt matmuls, each counted as one kernel (cuBLASLt may add a split-K
 *   reduction kernel on a GPU; none of our plans ask for split-K);
 * - host_syncs: calls that make the host wait for the device:
 *   cudaStreamSynchronize, cudaEventSynchronize, cudaDeviceSynchronize,
 *   cudaMemcpy, and a cudaMemcpyAsync that touches pageable (not
 *   cudaMallocHost) host memory, which CUDA documents as synchronous
 *   ("API synchronization behavior");
 * - host_launches: what the host submitted to run: each kernel or matmul
 *   launched outside a graph, and each cudaGraphLaunch once, however many
 *   kernels its graph holds (those count in launches as they replay);
 *   graph_launches: of which cudaGraphLaunch calls;
 * - allocs: cudaMalloc, cudaMallocAsync, cudaMallocHost calls;
 * - weight_bytes: bytes of weight buffers (the allocations made between
 *   glm_emu_weights_mark(1) and (0)) that kernels read, each byte counted
 *   once per launch (a launch's footprint: what it must bring from memory
 *   at least once).  Reads reach glm_emu_read from two places: the emulated
 *   cuBLASLt reports its operands (a GEMM reads every element of both), and
 *   in the profile build the kernels are compiled with the compiler's
 *   kernel-address instrumentation, whose per-load hooks (emu_reads.cpp)
 *   report every load a kernel makes.  weights_exact is 1 only there.
 */
#ifndef GLM_EMU_PROFILE_H
#define GLM_EMU_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint64_t launches;          /* kernels, cuBLASLt matmuls included */
    uint64_t gemm_launches;     /* of which cuBLASLt matmuls */
    uint64_t host_syncs;
    uint64_t allocs;
    uint64_t frees;
    uint64_t copies;            /* cudaMemcpy(Async) calls */
    uint64_t memsets;
    uint64_t weight_bytes;
    int      weights_exact;     /* every kernel load is seen (profile build) */
    uint64_t d2h_copies;        /* copies from device memory to the host */
    uint64_t d2h_bytes;
    uint64_t host_launches;     /* eager kernels and matmuls, plus graph launches */
    uint64_t graph_launches;
} glm_emu_counts;

void glm_emu_counts_get(glm_emu_counts *c);
void glm_emu_counts_reset(void);

/* while paused nothing is counted (the profiler's own copies) */
void glm_emu_pause(int paused);

/* allocations made while on are weight buffers (until freed) */
void glm_emu_weights_mark(int on);

/* a read of [p, p + n) by the running launch */
void glm_emu_read(const void *p, size_t n);

/* device memory (cudaMalloc) in use now and at most so far, the limit
 * GLM_EMU_DEVICE_BYTES set (0: none), and the size of the last request
 * refused for it (0: none) */
void glm_emu_device_bytes(size_t *in_use, size_t *peak, size_t *limit, size_t *refused);

/* the cuBLASLt stand-in brackets each matmul with these */
void glm_emu_gemm_begin(void);
void glm_emu_gemm_end(void);

#ifdef __cplusplus
}
#endif

#endif
