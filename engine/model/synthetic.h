/*
 * synthetic.h: a checkpoint with a published model's exact tensors (names,
 * dtypes, shapes, FP8 scales) and random weights, written from its
 * configuration alone, so that the engine can be measured at real size on
 * any machine without downloading hundreds of GB (`glm-engine bench
 * --synthetic`).
 *
 * The source is a directory holding config.json and either safetensors
 * files or a tensors.txt manifest (tensor_list.h): t/fixtures/configs has
 * the published GLM-4.5, GLM-4.5-Air and GLM-4.5V releases, BF16 and FP8.
 * Only the first `layers` decoder layers are written (the MTP layer never),
 * and config.json says so; everything outside the decoder layers (embedding,
 * lm_head, final norm, the vision tower) is written whole.
 *
 * Values are random but keep a step finite at any width: weights of
 * magnitude 2^-11..2^-7 (BF16/F16) or FP8 codes of magnitude 1/8..2 with a
 * scale of 1/256, norms 1, biases small, the routers' correction bias 0.
 * The same source and layer count always give the same bytes.
 */
#ifndef GLM_SYNTHETIC_H
#define GLM_SYNTHETIC_H

#include "util/util.h"

/* Writes OUT/config.json and OUT/model.safetensors (OUT is created; an
 * existing complete result for the same source and layer count is kept and
 * reused).  Progress goes to stderr.  After writing, the file's headers are
 * read back and checked against the source's tensors. */
int glm_synthetic_write(const char *src, int layers, const char *out, glm_err *err);

#endif
