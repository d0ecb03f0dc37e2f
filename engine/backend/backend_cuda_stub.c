/*
 * backend_cuda_stub.c: the CUDA backend's entry points in builds without
 * it (no nvcc at build time, the ASan builds, the CPU-only test programs).
 * The Makefile links either this file or the kernels/ objects, never both, so a
 * `--backend cuda` in such a build is a clear error instead of a link
 * failure.
 */
#include "backend_cuda.h"
#include "parallel/comm.h"

#include <stdio.h>
#include <stdlib.h>

glm_backend *
glm_backend_cuda_create(int device, glm_err *err)
{
    (void) device;
    glm_errf(err, "this glm-engine was built without CUDA (nvcc was not found at"
             " build time, or this is the ASan build): use --backend cpu, or"
             " rebuild with the CUDA toolkit installed");
    return NULL;
}

int
glm_backend_cuda_upload_weights(glm_backend *be, glm_checkpoint *ck, glm_err *err)
{
    (void) be;
    (void) ck;
    return glm_errf(err, "built without CUDA");
}

void
glm_backend_cuda_release_weights(glm_backend *be)
{
    (void) be;
}

void
glm_backend_cuda_add_rmsnorm(glm_backend *be, void *out, void *x, const void *y,
    const glm_tensor *w, int rows, int dim, float eps)
{
    /* unreachable: no CUDA backend can exist in this build */
    (void) be; (void) out; (void) x; (void) y; (void) w; (void) rows; (void) dim;
    (void) eps;
    fprintf(stderr, "glm-engine: internal error: CUDA op in a build without CUDA\n");
    abort();
}

int
glm_backend_cuda_fp8_act_group(glm_backend *be, const glm_tensor *w)
{
    (void) be;
    (void) w;
    return 0;
}

void
glm_backend_cuda_quant_act_fp8(glm_backend *be, uint8_t *q, float *scales, const void *x,
    int rows, int cols, int group, int scale_ld)
{
    /* unreachable: no CUDA backend can exist in this build */
    (void) be; (void) q; (void) scales; (void) x;
    (void) rows; (void) cols; (void) group; (void) scale_ld;
    fprintf(stderr, "glm-engine: internal error: CUDA op in a build without CUDA\n");
    abort();
}

void
glm_backend_cuda_moe_route(glm_backend *be, const void *x, int rows,
    const glm_moe_weights *m, int32_t *idx, float *w)
{
    /* unreachable: no CUDA backend can exist in this build */
    (void) be; (void) x; (void) rows; (void) m; (void) idx; (void) w;
    fprintf(stderr, "glm-engine: internal error: CUDA op in a build without CUDA\n");
    abort();
}

void
glm_backend_cuda_memory(glm_backend *be, size_t *weight_bytes, size_t *free_bytes,
    size_t *total_bytes)
{
    (void) be;
    *weight_bytes = *free_bytes = *total_bytes = 0;
}

/* unreachable too: ranks on "cuda" need a CUDA backend first */
void
glm_backend_cuda_group_member(glm_backend *be)
{
    (void) be;
}

int
glm_backend_cuda_upload_tensors(glm_backend *be, glm_tensor *const *ts, size_t n,
    glm_err *err)
{
    (void) be;
    (void) ts;
    (void) n;
    return glm_errf(err, "built without CUDA");
}

void
glm_backend_cuda_make_current(glm_backend *be)
{
    (void) be;
}

void *
glm_backend_cuda_stream(glm_backend *be)
{
    (void) be;
    return NULL;
}

int
glm_backend_cuda_device(glm_backend *be)
{
    (void) be;
    return -1;
}

int
glm_comm_nccl_create(int size, const int *devices, void *const *streams, glm_comm **out,
    glm_err *err)
{
    (void) size;
    (void) devices;
    (void) streams;
    (void) out;
    return glm_errf(err, "this glm-engine was built without CUDA, so without NCCL");
}

int
glm_backend_cuda_decode_splits(glm_backend *be, int n_seqs, int heads, int kv_heads, int max_len)
{
    (void) be; (void) n_seqs; (void) heads; (void) kv_heads; (void) max_len;
    return 1;
}

long
glm_backend_cuda_graph_replays(glm_backend *be)
{
    (void) be;
    return 0;
}

void
glm_backend_cuda_set_graphs(glm_backend *be, int on)
{
    (void) be;
    (void) on;
}
