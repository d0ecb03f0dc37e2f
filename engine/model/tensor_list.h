/*
 * tensor_list.h: a checkpoint's tensors as names, dtypes and shapes, without
 * their data: what a memory plan (plan.h) needs and nothing more.
 *
 * Two sources:
 * - the safetensors headers of a checkpoint directory (safetensors.h parses
 *   and checks them; the files are mapped, never read past the headers);
 * - a tensor manifest, DIR/tensors.txt, for a directory that holds only
 *   config.json (t/fixtures/configs: the published checkpoints, hundreds of
 *   GB, described in a few KB).  Its format:
 *
 *     # comment
 *     NAME DTYPE SHAPE
 *
 *   one tensor per line; DTYPE as safetensors spells it (BF16, F32,
 *   F8_E4M3, ...); SHAPE as [d0,d1,...] ([] for a scalar).  A NAME may hold
 *   ranges {a..b}, each standing for every integer from a to b, so that
 *   "model.layers.{1..45}.mlp.experts.{0..127}.up_proj.weight" is the 5760
 *   tensors it names.  A name listed twice is an error, as in safetensors.
 *
 * Safetensors files win when both are present.
 */
#ifndef GLM_TENSOR_LIST_H
#define GLM_TENSOR_LIST_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"
#include "util/util.h"

#define GLM_TENSORS_MANIFEST "tensors.txt"

typedef struct {
    char      *name;            /* owned by the list */
    glm_dtype  dtype;
    int        ndim;
    int64_t    shape[GLM_MAX_DIMS];
    int64_t    numel;
    uint64_t   nbytes;
} glm_tensor_info;

typedef struct {
    glm_tensor_info *t;
    size_t           n, cap;
    char             source[64];   /* "safetensors headers" or "tensors.txt" */
} glm_tensor_list;

/* DIR's tensors: from its safetensors headers when it has model.safetensors
 * or model.safetensors.index.json, else from DIR/tensors.txt.  One-line
 * errors name the file and the line or tensor.  Free with
 * glm_tensor_list_free (also after a failed load). */
int glm_tensor_list_load(glm_tensor_list *l, const char *dir, glm_err *err);

/* The tensors of an open checkpoint (its headers, already checked). */
int glm_tensor_list_from_checkpoint(glm_tensor_list *l, glm_checkpoint *ck, glm_err *err);

/* Parses manifest text (path names it in errors). */
int glm_tensor_list_parse_manifest(glm_tensor_list *l, const char *text,
    const char *path, glm_err *err);

void glm_tensor_list_free(glm_tensor_list *l);

#endif
