/*
 * safetensors.h: a checkpoint's tensors, mmap'd and checked before use.
 *
 * A checkpoint is either one `model.safetensors` or the shards named by
 * `model.safetensors.index.json`.  Each file is mapped read-only; every header
 * field (length, JSON, dtype, shape, offsets) is validated against the file
 * size before any tensor pointer is handed out, so a truncated or corrupt file
 * is a one-line error naming the file and the tensor, never a crash.
 *
 * Tensors stay in their stored dtype; the backends convert while computing.
 */
#ifndef GLM_SAFETENSORS_H
#define GLM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define GLM_MAX_DIMS 6

typedef enum {
    GLM_DTYPE_F32 = 0,
    GLM_DTYPE_F16,
    GLM_DTYPE_BF16,
    GLM_DTYPE_F8_E4M3,
    GLM_DTYPE_I64,
    GLM_DTYPE_I32,
    GLM_DTYPE_I8,
    GLM_DTYPE_U8,
    GLM_DTYPE_BOOL,
    GLM_DTYPE_F64,
} glm_dtype;

typedef struct {
    const char   *name;          /* owned by the checkpoint */
    const char   *file;          /* basename of the shard holding it */
    glm_dtype     dtype;
    int           ndim;
    int64_t       shape[GLM_MAX_DIMS];
    int64_t       numel;
    const void   *data;          /* inside the read-only mapping */
    size_t        nbytes;
    int           used;          /* set when the model binds it */
} glm_tensor;

typedef struct glm_checkpoint glm_checkpoint;

/* Opens DIR's safetensors (sharded or single).  All headers are parsed and
 * checked here; nothing is read lazily. */
glm_checkpoint *glm_checkpoint_open(const char *dir, glm_err *err);
void glm_checkpoint_close(glm_checkpoint *ck);

/* NULL if absent. */
glm_tensor *glm_checkpoint_find(glm_checkpoint *ck, const char *name);

/* The tensor `name` with exactly the given shape (ndim dims) and a float dtype
 * (F32/F16/BF16); a one-line error naming file, tensor, expected and found
 * otherwise.  Marks the tensor used. */
glm_tensor *glm_checkpoint_get(glm_checkpoint *ck, const char *name, int ndim,
    const int64_t *shape, glm_err *err);

size_t glm_checkpoint_count(const glm_checkpoint *ck);
glm_tensor *glm_checkpoint_at(glm_checkpoint *ck, size_t i);
const char *glm_checkpoint_dir(const glm_checkpoint *ck);

const char *glm_dtype_name(glm_dtype t);
size_t glm_dtype_size(glm_dtype t);

/* Converts n elements starting at element `first` of a float tensor to fp32. */
void glm_tensor_to_f32(const glm_tensor *t, int64_t first, int64_t n, float *out);

/* "[a, b, c]" */
void glm_shape_str(char *buf, size_t size, int ndim, const int64_t *shape);

#endif
