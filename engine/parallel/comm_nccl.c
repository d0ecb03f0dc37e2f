/*
 * comm_nccl.c: the collectives of comm.h over NCCL, for the CUDA backend's
 * ranks: one engine process, one thread per GPU, one communicator per GPU
 * from ncclCommInitAll (all ranks live in this process, so no unique id has
 * to travel between processes).
 *
 * Each rank enqueues its collectives on its backend's stream (handed in at
 * creation) and returns without waiting: the ops before a collective wrote
 * its buffer on that stream, the ops after it read the result on that
 * stream, and the host sees results only through the backend's download()
 * (which waits) or glm_comm_wait.  So a step holds no host synchronisation
 * for its all-reduces and can later be captured in a CUDA graph.  The
 * all-reduce takes the activations' type: ncclBfloat16 for the CUDA
 * backend's BF16, ncclFloat32 for fp32.  The barrier is the one call that
 * waits (it is outside steps).  A failed collective leaves the whole group
 * unusable (NCCL's own rule), so it ends the process with NCCL's reason
 * instead of returning a half-reduced step.
 *
 * Compiled and linked only where nvcc exists (the Makefile's CUDA build); it
 * has not run here: the ranks need one GPU each, and the development machine
 * has none.  The CPU backend's ranks use comm_shm.c, and so does the CUDA
 * backend in CPU emulation (t/gpu/emu/comm_emu.c).
 */
#include "comm.h"

#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime.h>
#include <nccl.h>

typedef struct {
    glm_comm        base;
    ncclComm_t      nc;
    cudaStream_t    stream;         /* the rank's backend stream, or own_stream */
    int             own_stream;
    int             device;
    float          *one;            /* a device float for the barrier */
} glm_nccl_comm;

static glm_nccl_comm *
glm_nccl(glm_comm *c)
{
    return (glm_nccl_comm *) c;
}

static void
glm_nccl_check(ncclResult_t rc, const glm_comm *c, const char *what)
{
    if (rc != ncclSuccess) {
        fprintf(stderr, "glm-engine: rank %d of %d: NCCL %s failed: %s\n",
                c->rank, c->size, what, ncclGetErrorString(rc));
        abort();
    }
}

static void
glm_nccl_wait(glm_nccl_comm *n, const char *what)
{
    cudaError_t rc = cudaStreamSynchronize(n->stream);

    if (rc != cudaSuccess) {
        fprintf(stderr, "glm-engine: rank %d of %d: %s on GPU %d: %s\n", n->base.rank,
                n->base.size, what, n->device, cudaGetErrorString(rc));
        abort();
    }
}

static void
glm_nccl_all_reduce_sum(glm_comm *c, void *buf, size_t n, glm_act_dtype dtype)
{
    glm_nccl_comm *nc = glm_nccl(c);

    cudaSetDevice(nc->device);
    glm_nccl_check(ncclAllReduce(buf, buf, n, dtype == GLM_ACT_BF16 ? ncclBfloat16 : ncclFloat32,
                                 ncclSum, nc->nc, nc->stream), c, "all-reduce");
}

static void
glm_nccl_all_gather(glm_comm *c, const void *send, void *recv, size_t bytes)
{
    glm_nccl_comm *nc = glm_nccl(c);

    cudaSetDevice(nc->device);
    glm_nccl_check(ncclAllGather(send, recv, bytes, ncclUint8, nc->nc, nc->stream),
                   c, "all-gather");
}

static void
glm_nccl_broadcast(glm_comm *c, void *buf, size_t bytes, int root)
{
    glm_nccl_comm *nc = glm_nccl(c);

    cudaSetDevice(nc->device);
    glm_nccl_check(ncclBroadcast(buf, buf, bytes, ncclUint8, root, nc->nc, nc->stream),
                   c, "broadcast");
}

static void
glm_nccl_wait_op(glm_comm *c)
{
    glm_nccl_wait(glm_nccl(c), "a collective");
}

/* an all-reduce of one float, waited for: returns on each rank when all
 * have joined */
static void
glm_nccl_barrier(glm_comm *c)
{
    glm_nccl_all_reduce_sum(c, glm_nccl(c)->one, 1, GLM_ACT_F32);
    glm_nccl_wait(glm_nccl(c), "barrier");
}

static void
glm_nccl_destroy(glm_comm *c)
{
    glm_nccl_comm *nc = glm_nccl(c);

    cudaSetDevice(nc->device);
    ncclCommDestroy(nc->nc);
    cudaFree(nc->one);
    if (nc->own_stream) {
        cudaStreamDestroy(nc->stream);
    }
    free(nc);
}

static const glm_comm_ops glm_nccl_ops = {
    .name = "nccl",
    .all_reduce_sum = glm_nccl_all_reduce_sum,
    .all_gather = glm_nccl_all_gather,
    .broadcast = glm_nccl_broadcast,
    .barrier = glm_nccl_barrier,
    .wait = glm_nccl_wait_op,
    .destroy = glm_nccl_destroy,
};

int
glm_comm_nccl_create(int size, const int *devices, void *const *streams, glm_comm **out,
    glm_err *err)
{
    ncclComm_t *ncs;
    ncclResult_t rc;
    int r, j;

    if (size < 1 || size > 4096) {
        return glm_errf(err, "a group of %d ranks: want 1 to 4096", size);
    }
    ncs = calloc((size_t) size, sizeof(*ncs));
    if (ncs == NULL) {
        return glm_errf(err, "out of memory");
    }
    rc = ncclCommInitAll(ncs, size, devices);
    if (rc != ncclSuccess) {
        free(ncs);
        return glm_errf(err, "NCCL cannot join %d GPUs: %s", size, ncclGetErrorString(rc));
    }
    for (r = 0; r < size; r++) {
        glm_nccl_comm *nc = calloc(1, sizeof(*nc));
        cudaError_t ce = cudaErrorMemoryAllocation;

        if (nc != NULL) {
            nc->base = (glm_comm) { &glm_nccl_ops, r, size };
            nc->nc = ncs[r];
            nc->device = devices[r];
            ce = cudaSetDevice(devices[r]);
            if (ce == cudaSuccess && streams != NULL && streams[r] != NULL) {
                nc->stream = (cudaStream_t) streams[r];
            } else if (ce == cudaSuccess) {
                ce = cudaStreamCreateWithFlags(&nc->stream, cudaStreamNonBlocking);
                nc->own_stream = ce == cudaSuccess;
            }
            if (ce == cudaSuccess) {
                ce = cudaMalloc((void **) &nc->one, sizeof(float));
            }
        }
        if (ce != cudaSuccess) {
            glm_errf(err, "GPU %d: cannot set up rank %d's stream: %s", devices[r], r,
                     cudaGetErrorString(ce));
            free(nc);
            for (j = 0; j < size; j++) {
                if (j < r) {
                    glm_nccl_destroy(out[j]);       /* its comm goes with it */
                } else {
                    ncclCommDestroy(ncs[j]);
                }
            }
            free(ncs);
            return -1;
        }
        out[r] = &nc->base;
    }
    free(ncs);
    return 0;
}
