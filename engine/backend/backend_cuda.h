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

/* ---- tensor-parallel ranks (parallel/ranks.c): one backend per GPU ---- */

/* Marks be as one rank of a group whose models share the checkpoint's
 * tensor structs (norms, routers, whole experts) with the other ranks'
 * threads: its device copies stay in its own table and are never cached in
 * a glm_tensor (two GPUs' pointers in one struct would race).  Call before
 * any upload; glm_backend_cuda_upload_weights then does nothing (each rank
 * uploads its own tensors with glm_backend_cuda_upload_tensors). */
void glm_backend_cuda_group_member(glm_backend *be);

/* Copies exactly ts[0..n) (NULL entries skipped) and the FP8 scale tensors
 * they name to be's GPU now, as glm_backend_cuda_upload_weights does for a
 * whole checkpoint: a rank uploads only its shard.  An error names the
 * tensor that did not fit. */
int glm_backend_cuda_upload_tensors(glm_backend *be, glm_tensor *const *ts, size_t n,
    glm_err *err);

/* Makes be's GPU the calling thread's current device (CUDA's current device
 * is per host thread: each rank thread calls this once). */
void glm_backend_cuda_make_current(glm_backend *be);

/* be's stream, a cudaStream_t: where a rank's collectives are enqueued
 * (comm.h, glm_comm_nccl_create); and be's device number. */
void *glm_backend_cuda_stream(glm_backend *be);
int glm_backend_cuda_device(glm_backend *be);

/* How x w^T multiplies an FP8 weight w (uploaded): 0 with BF16
 * activations (the CUDA-core kernel), else FP8 x FP8 through cuBLASLt with
 * the activations quantized per group of that many elements along K (K:
 * per token; 128: per 1x128 group), as glm_quant_act_fp8 does (tests). */
int glm_backend_cuda_fp8_act_group(glm_backend *be, const glm_tensor *w);

/* kernels/quant_act on the backend's stream (tests; the GEMM calls it
 * itself): x [rows, cols] activations (device, BF16) to q [rows, cols] FP8
 * E4M3 and fp32 scales (device), as glm_quant_act_fp8 lays them out. */
void glm_backend_cuda_quant_act_fp8(glm_backend *be, uint8_t *q, float *scales,
    const void *x, int rows, int cols, int group, int scale_ld);

/* The MoE op's routing alone (tests): x device [rows, hidden] -> host idx
 * and w [rows, top_k], the picks in ascending expert id. */
void glm_backend_cuda_moe_route(glm_backend *be, const void *x, int rows,
    const glm_moe_weights *m, int32_t *idx, float *w);

/* Decode steps replayed from CUDA graphs so far (all sizes). */
long glm_backend_cuda_graph_replays(glm_backend *be);

/* Decode graphs on or off from the next step (GLM_CUDA_GRAPHS=0 at start-up
 * is off); graphs already made are kept for when they are on again. */
void glm_backend_cuda_set_graphs(glm_backend *be, int on);

/* Bytes of weights on the device; the device's free and total memory. */
void glm_backend_cuda_memory(glm_backend *be, size_t *weight_bytes,
    size_t *free_bytes, size_t *total_bytes);

/* The KV-length splits the decode attention launches for n_seqs lone
 * tokens of contexts up to max_len (kernels/attention_decode.cuh: from the
 * SM count and the batch), so the tests and the profile can print it. */
int glm_backend_cuda_decode_splits(glm_backend *be, int n_seqs, int heads, int kv_heads,
    int max_len);

#endif
