/*
 * plan.h: the memory plan of one GPU: weights, one step's scratch, fixed
 * overhead, and the paged KV cache from what --gpu-memory-utilization leaves.
 *
 * Computed from config.json and the tensor list (names, dtypes, shapes: the
 * safetensors headers or a manifest, tensor_list.h), never from the weights,
 * so `glm-engine plan` sizes a deployment on any machine and the CUDA
 * backend can size its pools with the same arithmetic at start-up.  No CUDA
 * and no nginx here.
 *
 * The figures are those of the design (DESIGN.md, issue 11), per GPU of a
 * tensor-parallel group of `tp` ranks:
 *
 * weights   every tensor the model loads, in its stored dtype (FP8 E4M3 with
 *           its scales, BF16 as it is; no widening), sharded as tensor
 *           parallelism shards them (vLLM's layout): q/k/v, gate/up (dense,
 *           shared and routed experts) by output rows; o and down by input
 *           columns; k/v by KV head, one head per rank replicated when the
 *           ranks outnumber the KV heads; embed_tokens and lm_head by
 *           vocabulary rows (VocabParallelEmbedding / ParallelLMHead); norms,
 *           routers and the vision tower whole on every rank (the encoder
 *           runs data-parallel).  A scale tensor shards with its weight: a
 *           per-channel [out, 1] scale follows the rows of a column-parallel
 *           weight and stays whole beside a row-parallel one; 128x128 block
 *           scales follow whichever dimension is split.  A split takes the
 *           ceiling, so uneven shards count the largest rank.
 *           The MTP layers (num_nextn_predict_layers, stored after the last
 *           decoder layer) are counted apart and not loaded: neither this
 *           engine nor vLLM without speculative decoding runs them
 *           (vLLM's Glm4MoeForCausalLM skips them in load_weights; only its
 *           Glm4MoeMTP draft model loads them, and gives them KV).
 * scratch   one arena sized for the worst step: max-num-batched-tokens
 *           tokens of max-num-seqs sequences, BF16 activations, fp32 where
 *           the math needs it (router logits, the MoE combine, logits and
 *           sampling), FP8 activation copies with 1x128 group scales when
 *           the weights are FP8; the residual pair is live throughout, then
 *           the largest of the attention, dense MLP, MoE, logits and vision
 *           phases (each reuses the same arena).  See glm_plan_scratch in
 *           plan.c for every buffer.
 * overhead  what is not ours to size: the CUDA context (an estimate),
 *           cuBLASLt's workspace (kernels/gemm.cu), NCCL's buffers when
 *           tp > 1 (an estimate from NCCL's documented defaults).
 * kv cache  util x GPU memory, less the above, in blocks of block_size
 *           tokens; a token costs layers x 2 x kv_heads_per_rank x head_dim
 *           x (2 bytes bfloat16, 1 byte fp8) (every GLM-4.5 layer is full
 *           attention).
 *
 * It fits when the KV cache holds at least one max-model-len sequence, as
 * vLLM requires at start-up; when it does not, plan->advice names what to
 * change.
 */
#ifndef GLM_PLAN_H
#define GLM_PLAN_H

#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "tensor_list.h"
#include "util/util.h"

#define GLM_GIB 1073741824.0

/* the total memory CUDA reports (cudaMemGetInfo) for the cards --gpu names;
 * plan.c says where the figures come from */
#define GLM_PLAN_H100_BYTES  ((uint64_t) (79.18 * GLM_GIB))
#define GLM_PLAN_H200_BYTES  ((uint64_t) (139.80 * GLM_GIB))

/* --kv-cache-dtype as the plan reads it (backend.h's glm_kv_dtype is the
 * pool's element type) */
typedef enum {
    GLM_PLAN_KV_AUTO = 0,       /* the model's dtype: its embedding table's */
    GLM_PLAN_KV_BF16,
    GLM_PLAN_KV_FP8,            /* fp8_e4m3, per-layer scales */
} glm_plan_kv;

typedef struct {
    int          tp;                       /* tensor-parallel ranks, >= 1 */
    uint64_t     gpu_bytes;                /* one GPU's total memory */
    double       utilization;              /* (0, 1], vLLM's default 0.9 */
    glm_plan_kv kv_dtype;
    int64_t      max_model_len;            /* 0: the model's max_position_embeddings */
    int          max_num_seqs;
    int          max_num_batched_tokens;
    int          block_size;               /* tokens per KV block */
    int64_t      vision_max_pixels;        /* one encoder pass (GLM-4.5V): the
                                              image processor's longest_edge */
    uint64_t     weights_override;         /* not 0: the bytes of weights a
                                              backend measured on its GPU, used
                                              in place of the planned ones */
    int          act_bytes;                /* not 0: a backend's activation
                                              element size, for BF16's 2 */
    int          kv_elem_bytes;            /* not 0: a backend's KV element
                                              size, whatever kv_dtype says */
    int          no_advice;                /* internal: no search for a tp that fits */
} glm_plan_opts;

typedef struct {
    glm_plan_opts o;                       /* as used (defaults filled in) */

    /* weights per GPU */
    uint64_t     w_fp8, w_scales, w_other; /* FP8 E4M3, their scales, the rest */
    uint64_t     weights;                  /* the sum, or o.weights_override */
    uint64_t     w_mtp;                    /* MTP layers: not loaded */
    int          n_mtp_layers;
    int          fp8;                      /* FP8 weights among those loaded */
    size_t       n_tensors;

    /* scratch: the arena of one step, and its phases */
    uint64_t     s_residual, s_attention, s_mlp, s_moe, s_logits, s_vision;
    uint64_t     scratch;

    /* fixed overhead */
    uint64_t     ov_context, ov_cublas, ov_nccl;
    uint64_t     overhead;

    /* the KV cache */
    int          kv_heads_per_rank;
    int          kv_elem_bytes;
    uint64_t     kv_bytes_per_token;
    uint64_t     budget;                   /* utilization x gpu_bytes */
    uint64_t     kv_bytes;                 /* the pool: whole blocks */
    int64_t      kv_blocks, kv_tokens;

    int          fits;
    char         advice[512];              /* what to change, when it does not fit */
} glm_plan;

/* Fills o with `serve`'s defaults (tp 1, H100 memory, 0.9, auto, the model's
 * length, 64 sequences, 2048 tokens, blocks of 16, GLM-4.5V's image
 * longest_edge). */
void glm_plan_opts_default(glm_plan_opts *o);

/* The plan for cfg with tensors `tl`.  -1 with a one-line error for options
 * the model cannot take (a tp that does not divide its heads, a length over
 * its max_position_embeddings); not fitting is not an error (plan->fits). */
int glm_plan_compute(glm_plan *p, const glm_config *cfg, const glm_tensor_list *tl,
    const glm_plan_opts *o, glm_err *err);

/* One line per part, the advice when it does not fit, then
 *   PLAN model=<name> dtype=<bf16|fp8> tp=<n> gpu_gib=<g> fits=<yes|no>
 *        weights_gib=<w> kv_tokens=<k>
 * (one line). */
void glm_plan_print(FILE *f, const glm_plan *p, const glm_config *cfg, const char *model);

const char *glm_plan_kv_name(glm_plan_kv t);

/* "auto", "bfloat16" (or "bf16"), "fp8" (or "fp8_e4m3"); -1 otherwise */
int glm_plan_kv_parse(const char *s, glm_plan_kv *out);

#endif
