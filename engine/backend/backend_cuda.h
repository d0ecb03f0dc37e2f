/*
 * backend_cuda.h: the CUDA backend, and what it offers beyond backend.h.
 *
 * The backend is kernels/backend_cuda.cu (compiled by nvcc, linked into
 * glm-engine with cuBLASLt/cuBLAS/cudart when nvcc exists at build time);
 * engine/backend/backend_cuda_stub.c stands in everywhere else (builds without
 * nvcc, the ASan builds, the CPU-only test programs), so the C engine never
 * depends on CUDA to compile or link.
 *
 * Semantics are the CPU oracle's (backend.h), on device memory:
 * - alloc() returns zeroed device memory (stream-ordered pool); pointers
 *   given to the ops are device pointers, except the small metadata arrays
 *   backend.h passes (ids, pos3, axis_of_freq, inv_freq, the attention
 *   batch, cu_seqlens), which are host arrays the backend uploads itself.
 * - upload()/download() copy with cudaMemcpyDefault and return once the
 *   copy is done: either side may be host or device memory, so a
 *   backend-to-backend copy is an upload() between two device pointers.
 * - Weights (glm_tensor) are copied to the device at first use and kept,
 *   keyed by their host address: 2-D BF16 tensors stay BF16, everything
 *   else is converted to fp32 once (through glm_tensor_to_f32, so any dtype
 *   the CPU backend reads works here too).  Activations are fp32, as on
 *   the CPU.
 * - Ops run asynchronously on one stream, in call order; download() waits.
 * Nothing here has run on a GPU yet (written on a machine without one); it
 * has run in CPU emulation (t/gpu/emu, part of `make test`), matching the
 * CPU backend.  `make test-gpu` is the check on hardware.
 */
#ifndef GLM_BACKEND_CUDA_H
#define GLM_BACKEND_CUDA_H

#include <stddef.h>

#include "backend.h"
#include "model/safetensors.h"
#include "util/util.h"

/* The CUDA backend on GPU `device` (0 = the first visible one).  NULL with a
 * one-line reason when this binary was built without CUDA, no GPU is
 * visible, or the GPU is older than compute capability 8.0. */
glm_backend *glm_backend_cuda_create(int device, glm_err *err);

/* Copies every tensor of ck that the model bound (t->used) to the device
 * now, so that a model too large for the GPU fails at start-up with a
 * message, instead of aborting in its first step.  Optional. */
int glm_backend_cuda_upload_weights(glm_backend *be, glm_checkpoint *ck, glm_err *err);

/* Frees the device copies of all weights.  Device copies are keyed by host
 * address (plus a 64-byte fingerprint): call this before closing a
 * checkpoint whose weights the backend used, if the backend outlives it. */
void glm_backend_cuda_release_weights(glm_backend *be);

/* x += y; out = rmsnorm(x) in one pass (x, y, out device [rows, dim]; out
 * may alias x): backend.h's add_rmsnorm op, callable by name for tests. */
void glm_backend_cuda_add_rmsnorm(glm_backend *be, void *out, void *x,
    const void *y, const glm_tensor *w, int rows, int dim, float eps);

/* Decode steps replayed from CUDA graphs so far (all sizes). */
long glm_backend_cuda_graph_replays(glm_backend *be);

/* Decode graphs on or off from the next step (GLM_CUDA_GRAPHS=0 at start-up
 * is off); graphs already made are kept for when they are on again. */
void glm_backend_cuda_set_graphs(glm_backend *be, int on);

/* Bytes of weights on the device; the device's free and total memory. */
void glm_backend_cuda_memory(glm_backend *be, size_t *weight_bytes,
    size_t *free_bytes, size_t *total_bytes);

#endif
