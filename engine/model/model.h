/*
 * model.h: the GLM-4.5 text decoder (GLM-4.5, GLM-4.5-Air, and GLM-4.5V's
 * language model), bound to a checkpoint and run on a backend.
 *
 *   x = embed(ids)
 *   for each layer:  x += Attn(RMSNorm(x))          partial (M-)RoPE, GQA
 *                    x += MLP or MoE(RMSNorm(x))     dense for the first k layers
 *   logits = lm_head(RMSNorm(x))
 *
 * A step runs any mix of sequences: prefill chunks and decode tokens of
 * several requests in one batch, each token carrying its sequence, its KV
 * position and its three rope positions (t, h, w; equal for text).
 */
#ifndef GLM_MODEL_H
#define GLM_MODEL_H

#include "backend/backend.h"
#include "config.h"
#include "safetensors.h"
#include "vision.h"

typedef struct {
    glm_tensor   *input_norm, *post_attn_norm;
    glm_tensor   *wq, *bq, *wk, *bk, *wv, *bv, *wo;
    glm_tensor   *q_norm, *k_norm;              /* GLM-4.5 only */
    int           is_moe;
    glm_tensor   *gate, *up, *down;             /* dense MLP, or the shared expert */
    glm_moe_weights moe;
    glm_tensor  **exp_gate, **exp_up, **exp_down;
} glm_layer;

typedef struct {
    glm_config       cfg;
    glm_checkpoint  *ck;
    glm_backend     *be;
    glm_tensor      *embed, *final_norm, *lm_head;
    glm_layer       *layers;
    float           *inv_freq;          /* [rotary_dim / 2] */
    int             *axis_of_freq;      /* [rotary_dim / 2]: 0 t, 1 h, 2 w */
    int              skipped_mtp;       /* tensors of MTP layers left unused */
    glm_vision      *vision;            /* GLM-4.5V's tower, else NULL */
    void            *act;               /* the steps' activations (backend
                                           memory, be->act_dtype), grown by
                                           the largest step */
    size_t           act_bytes;
} glm_model;

/* One forward step's tokens. */
typedef struct {
    int                    n_tokens;
    const int32_t         *ids;         /* [n_tokens] */
    const int32_t         *pos3;        /* [n_tokens][3] rope positions */
    const float * const   *embed_rows;  /* [n_tokens] host rows replacing the
                                           token's embedding (vision), NULL
                                           entries and NULL array: embed ids */
    glm_attn_batch         attn;        /* sequence, KV position per token */
    const int32_t         *logit_rows;  /* rows whose logits are wanted */
    int                    n_logits;
} glm_batch;

/* Loads config and weights from DIR, checking every tensor's shape. */
glm_model *glm_model_load(const char *dir, glm_backend *be, glm_err *err);
void glm_model_free(glm_model *m);

int glm_kv_pool_init(glm_kv_pool *kv, const glm_model *m, int n_blocks,
    int block_size, glm_err *err);
void glm_kv_pool_free(glm_kv_pool *kv, const glm_model *m);

/* Runs one step; writes n_logits rows of vocab_size fp32 logits (host). */
void glm_model_forward(glm_model *m, glm_kv_pool *kv, const glm_batch *b,
    float *logits);

#endif
