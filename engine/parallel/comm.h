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
 */
#ifndef GLM_COMM_H
#define GLM_COMM_H

#include <stddef.h>

#include "util/util.h"

typedef struct glm_comm glm_comm;

typedef struct {
    const char *name;               /* "shm", "nccl" */
    void (*all_reduce_sum)(glm_comm *c, float *buf, size_t n);
    void (*all_gather)(glm_comm *c, const void *send, void *recv, size_t bytes);
    void (*broadcast)(glm_comm *c, void *buf, size_t bytes, int root);
    void (*barrier)(glm_comm *c);
    void (*destroy)(glm_comm *c);
} glm_comm_ops;

struct glm_comm {
    const glm_comm_ops *ops;
    int                 rank;       /* 0 .. size-1 */
    int                 size;
};

/* buf[0..n) = the sum over ranks of every rank's buf, in place */
static inline void glm_comm_all_reduce_sum(glm_comm *c, float *buf, size_t n)
{
    c->ops->all_reduce_sum(c, buf, n);
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

/*
 * Shared memory: `size` handles (out[0..size)) for `size` threads of this
 * process, rank r using out[r].  Destroy each handle once (any order, after
 * the last collective); the shared state goes with the last one.
 */
int glm_comm_shm_create(int size, glm_comm **out, glm_err *err);

/*
 * NCCL over GPUs devices[0..size) of this process (ncclCommInitAll), each
 * handle with its own CUDA stream on its device; collectives are enqueued
 * on that stream and the call waits for them (the model's ops are
 * synchronous on the backend's stream).  Defined only in the CUDA build
 * (comm_nccl.c, linked with libnccl); the CUDA backend's ranks are not wired
 * to it yet (parallel/ranks.c refuses --tensor-parallel-size > 1 on cuda).
 */
int glm_comm_nccl_create(int size, const int *devices, glm_comm **out, glm_err *err);

#endif
