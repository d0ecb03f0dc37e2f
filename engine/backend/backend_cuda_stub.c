/*
 * backend_cuda_stub.c: the CUDA backend's entry points in builds without
 * it (no nvcc at build time, the ASan builds, the CPU-only test programs).
 * The Makefile links either this file or the kernels/ objects, never both, so a
 * `--backend cuda` in such a build is a clear error instead of a link
 * failure.
 */
#include "backend_cuda.h"

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

void
glm_backend_cuda_memory(glm_backend *be, size_t *weight_bytes, size_t *free_bytes,
    size_t *total_bytes)
{
    (void) be;
    *weight_bytes = *free_bytes = *total_bytes = 0;
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
