/*
 * backend_select.c: see backend_select.h.
 */
#include "backend_select.h"

#include <stdio.h>
#include <string.h>

#include "backend_cuda.h"

glm_backend *
glm_backend_create_named(const char *name, int threads, int device, glm_err *err)
{
    glm_backend *be;

    if (name == NULL || strcmp(name, "cpu") == 0) {
        be = glm_backend_cpu_create(threads);
        if (be == NULL) {
            glm_errf(err, "cannot start the CPU backend (out of memory or threads)");
        }
        return be;
    }
    if (strcmp(name, "cuda") == 0) {
        be = glm_backend_cuda_create(device, err);
        if (be == NULL) {
            glm_err_prefix(err, "--backend cuda");
        }
        return be;
    }
    glm_errf(err, "unknown backend '%s' (cpu or cuda)", name);
    return NULL;
}

int
glm_backend_prepare(glm_backend *be, glm_checkpoint *ck, glm_err *err)
{
    size_t w, fr, tot;

    if (strcmp(be->name, "cuda") != 0) {
        return 0;
    }
    if (glm_backend_cuda_upload_weights(be, ck, err) != 0) {
        return -1;
    }
    glm_backend_cuda_memory(be, &w, &fr, &tot);
    fprintf(stderr, "glm-engine: CUDA backend: %.2f GiB of weights on the GPU, %.2f GiB"
            " free of %.2f GiB\n", w / 1073741824.0, fr / 1073741824.0,
            tot / 1073741824.0);
    return 0;
}
