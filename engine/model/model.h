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
#include "plan.h"
#include "safetensors.h"
#include "shard.h"
#include "vision.h"

/* graph sizes the model keeps activations for: 1, 2, 4 ... 512 rows */
#define GLM_MODEL_GRAPH_SIZES 10

struct glm_comm;
struct glm_rank_group;

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
    glm_kv_dtype     kv_dtype;          /* what glm_kv_pool_init gives pools:
                                           the backend's auto until
                                           glm_model_set_kv_dtype says */
    float           *kv_k_scale;        /* [num_layers] the fp8 cache's per-layer */
    float           *kv_v_scale;        /* scales: the checkpoint's, else 1.0 */
    int              kv_scales_loaded;  /* layers whose scales the checkpoint has */
    void            *act;               /* the steps' activations (backend
                                           memory, be->act_dtype), grown by
                                           the largest step */
    size_t           act_bytes;

    /* tensor parallel (shard.h): this rank's part of the weights */
    glm_shard        shard;             /* {0, 1, 0} alone */
    struct glm_comm *comm;              /* NULL alone */
    int              head0, heads;      /* this rank's query heads */
    int              kv_head0, kv_heads;/* and the KV heads they read */
    int64_t          vocab_slice;       /* lm_head rows per rank: ceil(V / ranks) */
    glm_shard_store *shards;            /* the shard tensors this rank made */
    int              borrows_ck;        /* ck belongs to rank 0's model */
    struct glm_rank_group *group;       /* rank 0 of a group: the other ranks,
                                           which glm_model_forward drives */

    /* MTP speculative decoding (glm_model_enable_mtp): the checkpoint's
     * next-token-prediction layer, stored as layer num_layers */
    struct glm_mtp  *mtp;
    void            *hidden;            /* the last step's final-normed rows,
                                           kept for the MTP layer (backend
                                           memory, be->act_dtype) */
    size_t           hidden_bytes;

    /* the last step's logits, left in backend memory for the sampling op:
     * fp32 [n_logits, vocab_size] (rank 0 of a group: the gathered rows),
     * valid until the next forward */
    float           *logits;
    /* decode graphs (model.c, "decode graphs"): per graph size (1, 2, 4
     * ... rows), the activations its graph was made on, never moved by a
     * larger step; host room for the padded batch */
    void            *graph_act[GLM_MODEL_GRAPH_SIZES];
    size_t           graph_act_bytes[GLM_MODEL_GRAPH_SIZES];
    int32_t         *graph_pad;
    size_t           graph_pad_cap;     /* int32 elements */
} glm_model;

/* GLM-4.5's multi-token-prediction layer (DeepSeek-V3's MTP, as vLLM's
 * glm4_moe_mtp runs it): for the token t+1 at position p and the main
 * model's final-normed hidden state h_p,
 *
 *   x = eh_proj([enorm(embed(t+1)) ; hnorm(h_p)])        (embed 0 at p = 0)
 *   x = decoder layer(x)              attention over its own KV layer, MoE
 *   logits = head(norm(x))            a draft for the token at p + 2
 */
typedef struct glm_mtp {
    glm_layer    *block;                /* &layers[num_layers] */
    glm_tensor   *enorm, *hnorm, *eh_proj, *head_norm, *head, *embed;
    float        *zero_row;             /* host: the embedding at position 0 */
} glm_mtp;

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
    int                    keep_hidden; /* MTP: keep every row's final-normed
                                           hidden state in m->hidden */
} glm_batch;

/* Loads config and weights from DIR, checking every tensor's shape. */
glm_model *glm_model_load(const char *dir, glm_backend *be, glm_err *err);

/* The same for one rank of a tensor-parallel group (parallel/ranks.c makes
 * groups): only the rank's shard of each weight is bound; comm joins the
 * ranks' blocks; rank0 (NULL for rank 0 itself) lends its checkpoint, so
 * every rank's views point into one mapping. */
glm_model *glm_model_load_shard(const char *dir, glm_backend *be, const glm_shard *sh,
    struct glm_comm *comm, glm_model *rank0, glm_err *err);
void glm_model_free(glm_model *m);

/* Binds the MTP layer (one rank only: the layer is not sharded yet); the
 * KV pool made after this holds one more layer, the MTP layer's.  An error
 * names what the checkpoint lacks. */
int glm_model_enable_mtp(glm_model *m, glm_err *err);

/* One MTP step: token i is b->ids[i] (the token after position kv_pos[i])
 * with the hidden state m->hidden[hidden_rows[i]] of the last forward (run
 * with keep_hidden); leaves b->n_logits rows of draft logits at m->logits
 * (backend memory), copied to the host too where logits is not NULL. */
void glm_model_mtp_forward(glm_model *m, glm_kv_pool *kv, const glm_batch *b,
    const int32_t *hidden_rows, float *logits);

/* --kv-cache-dtype: auto is the backend's choice (be->kv_dtype_auto: fp32
 * on the CPU oracle, BF16 where the backend computes in BF16); an explicit
 * dtype the backend cannot hold is an error that says so.  Pools made after
 * this take the dtype. */
int glm_model_set_kv_dtype(glm_model *m, glm_kv_cache_dtype want, glm_err *err);

/* A paged pool of n_blocks blocks of block_size tokens for every layer, of
 * m->kv_dtype with m's per-layer scales. */
int glm_kv_pool_init(glm_kv_pool *kv, const glm_model *m, int n_blocks,
    int block_size, glm_err *err);
void glm_kv_pool_free(glm_kv_pool *kv, const glm_model *m);

/* Bytes of k and v together. */
size_t glm_kv_pool_bytes(const glm_kv_pool *kv);

/* One line for start-up: "KV cache fp8_e4m3 (scales 1.0: none in the
 * checkpoint), 2 x 0.12 GiB = 262144 bytes, 64 blocks of 16 tokens" */
void glm_kv_pool_describe(const glm_kv_pool *kv, const glm_model *m, char *buf,
    size_t size);

/* Runs one step; leaves n_logits rows of vocab_size fp32 logits in backend
 * memory at m->logits (for be->sample) and copies them to the host too
 * where logits is not NULL.  On rank 0 of a group, every rank runs the
 * step (each on its own KV pool) and rank 0 gathers the logits. */
void glm_model_forward(glm_model *m, glm_kv_pool *kv, const glm_batch *b,
    float *logits);

/* This rank's part of the step (a rank thread's call); logits NULL on all
 * but rank 0 (and there too when the host wants none). */
void glm_model_forward_rank(glm_model *m, glm_kv_pool *kv, const glm_batch *b,
    float *logits);

/* The decoder's weights as this model (rank) bound them, experts it does not
 * own left out (model_tensors.c): up to cap of them into out; returns how
 * many there are (call with cap 0 to size out).  FP8 scale tensors are not
 * listed; each weight names its own (t->scale). */
size_t glm_model_tensors(const glm_model *m, glm_tensor **out, size_t cap);

#endif
