/*
 * backend_select.h: picking a backend by name, for the commands' --backend
 * option ("cpu", the default, or "cuda").
 */
#ifndef GLM_BACKEND_SELECT_H
#define GLM_BACKEND_SELECT_H

#include "backend.h"
#include "model/safetensors.h"
#include "util/util.h"

/* "cpu" (threads: <= 0 all CPUs) or "cuda" (GPU `device`); NULL with a
 * one-line reason: unknown name, built without CUDA, no usable GPU. */
glm_backend *glm_backend_create_named(const char *name, int threads, int device,
    glm_err *err);

/* After glm_model_load: whatever the backend does up front (the CUDA
 * backend copies the weights to the GPU, so a model that does not fit is
 * an error here and not an abort in the first step). */
int glm_backend_prepare(glm_backend *be, glm_checkpoint *ck, glm_err *err);

#endif
