/*
 * comm.h: the collectives a tensor-parallel group needs, behind one handle
 * per rank.
 *
 * A group of `size` ranks runs the same model step on its own shard of the
 * weights; between the blocks the ranks exchange activations with these
 * four operations.  Every rank calls the same operations in the same order
 * with the same sizes (the model's step is identical on every rank), each on
 * its own handle from its own thread; a call returns when this rank's part
 * is done, and a buffer may be reused as soon as the call returns.
 *
 * Buffers are backend memory: host memory for the CPU backend (comm_shm.c:
 * the ranks are threads of one process and read each other's buffers),
 * device memory for the CUDA backend (comm_nccl.c: NCCL on each rank's
 * stream).
 *
 * Determinism: all_reduce_sum adds the size contributions of each element in
 * rank order, ((x0 + x1) + x2) + ..., on every rank, so a given size gives
 * the same bits run after run whatever the threads' timing (comm_shm.c; NCCL
 * gives its own, also deterministic, order for a fixed topology).
 *
 * Element types: the all-reduce sums the backend's activations in their own
 * type (backend.h's glm_act_dtype: fp32 on the CPU, BF16 on CUDA).  BF16 is
 * summed in fp32 and rounded to BF16 once, after the last rank's term
 * (comm_shm.c; NCCL's ncclBfloat16 reduction accumulates as its kernels
 * do, in fp32 for a ring of ranks, rounding at each hop).
 *
 * Ordering against the backend: NCCL's collectives are enqueued on the
 * rank's backend stream, after the ops that wrote the buffer and before the
 * ops that read it, and return without waiting (no host synchronisation
 * inside a step, so a step can be captured in a CUDA graph); the host reads
 * a result only through the backend's download(), which waits, or after
 * glm_comm_wait.  The shared-memory communicator works on the host and is
 * done when it returns.
 */
#ifndef GLM_COMM_H
#define GLM_COMM_H

#include <stddef.h>

#include "backend/backend.h"
#include "util/util.h"

typedef struct glm_comm glm_comm;

typedef struct {
    const char *name;               /* "shm", "nccl" */
    void (*all_reduce_sum)(glm_comm *c, void *buf, size_t n, glm_act_dtype dtype);
    void (*all_gather)(glm_comm *c, const void *send, void *recv, size_t bytes);
    void (*broadcast)(glm_comm *c, void *buf, size_t bytes, int root);
    void (*barrier)(glm_comm *c);
    void (*wait)(glm_comm *c);      /* this rank's enqueued collectives done */
    void (*destroy)(glm_comm *c);
} glm_comm_ops;

struct glm_comm {
    const glm_comm_ops *ops;
    int                 rank;       /* 0 .. size-1 */
    int                 size;
};

/* buf[0..n) = the sum over ranks of every rank's buf, in place (fp32) */
static inline void glm_comm_all_reduce_sum(glm_comm *c, float *buf, size_t n)
{
    c->ops->all_reduce_sum(c, buf, n, GLM_ACT_F32);
}

/* The same over n activations of the backend's type (fp32 or BF16): what the
 * model's blocks reduce */
static inline void glm_comm_all_reduce_act(glm_comm *c, void *buf, size_t n,
    glm_act_dtype dtype)
{
    c->ops->all_reduce_sum(c, buf, n, dtype);
}

/* recv[r * bytes .. (r+1) * bytes) = rank r's send, on every rank (recv holds
 * size * bytes; send and recv do not overlap) */
static inline void glm_comm_all_gather(glm_comm *c, const void *send, void *recv,
    size_t bytes)
{
    c->ops->all_gather(c, send, recv, bytes);
}

/* buf = root's buf on every rank */
static inline void glm_comm_broadcast(glm_comm *c, void *buf, size_t bytes, int root)
{
    c->ops->broadcast(c, buf, bytes, root);
}

/* returns when every rank has called it */
static inline void glm_comm_barrier(glm_comm *c)
{
    c->ops->barrier(c);
}

/* returns when this rank's collectives so far are done (NCCL: its stream
 * reached them); for a host that must read a buffer without the backend */
static inline void glm_comm_wait(glm_comm *c)
{
    c->ops->wait(c);
}

/*
 * Shared memory: `size` handles (out[0..size)) for `size` threads of this
 * process, rank r using out[r].  Destroy each handle once (any order, after
 * the last collective); the shared state goes with the last one.
 */
int glm_comm_shm_create(int size, glm_comm **out, glm_err *err);

/*
 * NCCL over GPUs devices[0..size) of this process (ncclCommInitAll), rank r
 * enqueueing its collectives on streams[r] (a cudaStream_t: rank r's
 * backend stream, glm_backend_cuda_stream) without waiting.  Defined in the
 * CUDA build (comm_nccl.c, linked with libnccl); builds without CUDA get an
 * error (backend_cuda_stub.c), and the CPU emulation of the CUDA backend
 * (t/gpu/emu) the shared-memory communicator standing in for NCCL, since
 * its device memory is host memory.
 */
int glm_comm_nccl_create(int size, const int *devices, void *const *streams, glm_comm **out,
    glm_err *err);

#endif
