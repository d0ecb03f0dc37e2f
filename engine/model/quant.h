/*
 * quant.h: FP8 checkpoints in the compressed-tensors format: config.json's
 * `quantization_config`, and binding each FP8 weight to its scale.
 *
 * What the format says (compressed-tensors, as llm-compressor writes it; the
 * GLM-4.5/4.5V FP8 releases are such checkpoints):
 *
 *   "quantization_config": {
 *     "quant_method": "compressed-tensors",
 *     "format": "float-quantized",            (or naive-quantized)
 *     "config_groups": { "<group>": {
 *         "targets": ["Linear"],              class names or module names
 *                                             or "re:" regexes
 *         "weights": { "num_bits": 8, "type": "float",
 *                      "strategy": "tensor" | "channel" | "block",
 *                      "block_structure": [rows, cols],   (block only)
 *                      "symmetric": true, "dynamic": false },
 *         "input_activations": { ... "dynamic": true, "strategy": "token" } } },
 *     "ignore": ["lm_head", "re:.*mlp\\.gate$", ...] }
 *
 * A targeted, not ignored Linear module M stores `M.weight` as F8_E4M3 and
 * `M.weight_scale` (F32 or BF16): shape [1] (or []) per tensor, [out, 1] per
 * channel, [ceil(out/rows), ceil(in/cols)] per block.  Targets and ignore
 * entries match module names the way compressed-tensors does: "re:" entries
 * with Python's re.match (anchored at the start only), other entries
 * exactly; "Linear" targets every Linear module.  The first group whose
 * targets match a module quantizes it.
 *
 * Activation quantization is recorded and not applied: the CPU backend
 * computes with the dequantized weights, as transformers does when it loads
 * the checkpoint with dequantize=True (the reference), and a dynamic
 * per-token or per-group activation scheme is a kernel matter.
 *
 * A module the config targets whose weight is stored in a float dtype is
 * used as stored: GLM-4.5V-FP8's ignore list names the vision qkv layers
 * with vLLM's module names (visual.blocks.N.attn.qkv_proj), which match no
 * checkpoint module, and the file keeps those weights BF16 (vLLM PR 22949).
 */
#ifndef GLM_QUANT_H
#define GLM_QUANT_H

#include <yajl/yajl_tree.h>

#include "safetensors.h"
#include "util/util.h"

typedef struct glm_quant_pattern glm_quant_pattern;

typedef struct {
    char               name[64];        /* the config_groups key */
    glm_scale_strategy strategy;
    int64_t            block[2];        /* block strategy: rows, cols */
    int                targets_linear;  /* "Linear" is among the targets */
    glm_quant_pattern *targets;
    int                n_targets;
    /* input activations: recorded for inspect, not applied */
    int                act_quantized, act_dynamic;
    char               act_strategy[16];
} glm_quant_group;

typedef struct glm_quant {
    char               format[32];
    glm_quant_group   *groups;
    int                n_groups;
    glm_quant_pattern *ignore;
    int                n_ignore;
    /* filled while binding, for inspect */
    int                n_fp8;           /* FP8 weights bound with their scale */
    int                n_float_targeted;/* targeted weights stored as float */
} glm_quant;

/* Parses a quantization_config object (FILE names config.json in errors).
 * *out is NULL when qc is NULL or JSON null. */
int glm_quant_parse(yajl_val qc, glm_quant **out, const char *file, glm_err *err);
void glm_quant_free(glm_quant *q);

/* The group that quantizes Linear module `module`, or NULL; when an ignore
 * entry excludes it, *ignored_by (if not NULL) is set to that entry. */
const glm_quant_group *glm_quant_group_of(const glm_quant *q, const char *module,
    const char **ignored_by);

/* 1 when `name` matches the entry the way compressed-tensors' match_name does. */
int glm_quant_pattern_match(const glm_quant_pattern *p, const char *name);

#define GLM_LINEAR_EXPERT 1     /* a routed expert: transformers keeps the
                                   dequantized product in fp32 */

/*
 * The weight of Linear module `module` ("model.layers.0.self_attn.q_proj"):
 * `module.weight` of shape [rows, cols], either in a float dtype, or FP8 E4M3
 * with `module.weight_scale` checked against q's strategy and attached, so
 * glm_tensor_to_f32 returns the dequantized values.  q may be NULL (no
 * quantization_config; then an FP8 weight is an error).  One-line errors
 * name the file, the tensor and what was expected.
 */
glm_tensor *glm_quant_bind_linear(glm_checkpoint *ck, glm_quant *q, const char *module,
    int64_t rows, int64_t cols, int flags, glm_err *err);

/* One line: "compressed-tensors float-quantized: FP8 E4M3 weights per
 * channel, activations dynamic per token (not applied on CPU), 5 ignore
 * entries". */
void glm_quant_describe(const glm_quant *q, char *buf, size_t size);

const char *glm_scale_strategy_name(glm_scale_strategy s);

/*
 * Dynamic FP8 E4M3 quantization of activations, the CPU twin of the CUDA
 * backend's kernels/quant_act.cu (same bytes, same scales): per row, groups
 * of `group` elements (group >= cols: one per row), each with
 * scale = max(amax, 1e-10) / 448 and q = fp8(clamp(x / scale, +-448)),
 * as vLLM's per_token_group_quant_fp8.  x [rows, cols] fp32; q [rows, cols];
 * the scale of row r, group g at scales[g * scale_ld + r] when scale_ld > 0,
 * else at scales[r * n_groups + g].
 */
void glm_quant_act_fp8(const float *x, uint8_t *q, float *scales, int rows, int cols,
    int group, int scale_ld);

#endif
