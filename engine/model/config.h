/*
 * config.h: what config.json and generation_config.json say about the model.
 *
 * Both published architectures are read: Glm4MoeForCausalLM (GLM-4.5,
 * GLM-4.5-Air; text keys at the top level) and Glm4vMoeForConditionalGeneration
 * (GLM-4.5V; text keys under "text_config", vision under "vision_config").
 * RoPE may be given as rope_theta + partial_rotary_factor + rope_scaling (the
 * hub files) or as rope_parameters (transformers v5).  Missing keys take the
 * transformers class defaults; keys of the wrong type are errors.  An FP8
 * checkpoint's quantization_config (top level for both architectures) is
 * parsed by quant.c.
 */
#ifndef GLM_CONFIG_H
#define GLM_CONFIG_H

#include <stdint.h>

#include "quant.h"
#include "util/util.h"

#define GLM_MAX_EOS 8

typedef enum {
    GLM_ARCH_TEXT = 0,           /* Glm4MoeForCausalLM */
    GLM_ARCH_VISION,             /* Glm4vMoeForConditionalGeneration */
} glm_arch;

typedef struct {
    glm_arch  arch;
    char      architecture[64];
    char      weight_prefix[32];     /* "model." or "model.language_model." */

    int       vocab_size;
    int       hidden_size;
    int       num_layers;
    int       num_heads;
    int       num_kv_heads;
    int       head_dim;
    int       rotary_dim;            /* head_dim * partial_rotary_factor */
    float     rope_theta;
    int       mrope_section[3];      /* frequency counts per (t, h, w) axis */
    int       has_mrope;
    int       max_position_embeddings;
    int       attention_bias;
    int       use_qk_norm;
    int       intermediate_size;     /* dense MLP */
    int       moe_intermediate_size;
    int       first_k_dense_replace;
    int       n_routed_experts;
    int       n_shared_experts;
    int       num_experts_per_tok;
    float     routed_scaling_factor;
    int       n_group;
    int       topk_group;
    int       norm_topk_prob;
    float     rms_norm_eps;
    int       tie_word_embeddings;
    int       num_nextn_predict_layers;  /* MTP layers stored after the last */

    int       eos_ids[GLM_MAX_EOS];
    int       n_eos;
    int       pad_token_id;

    /* vision (GLM-4.5V): ids from config.json, the tower from vision_config */
    int       image_token_id, video_token_id;
    int       image_start_token_id, image_end_token_id;
    int       video_start_token_id, video_end_token_id;
    struct {
        int   depth;                 /* ViT blocks, 24 */
        int   hidden_size;           /* 1536 */
        int   num_heads;             /* 12 */
        int   intermediate_size;     /* the merger's MLP, 10944 */
        int   out_hidden_size;       /* block MLP width and merger width, 4096 */
        int   patch_size;            /* 14 */
        int   temporal_patch_size;   /* 2 */
        int   spatial_merge_size;    /* 2 */
        int   image_size;            /* 336: position table side = image/patch */
        int   in_channels;           /* 3 */
        int   attention_bias;
        float rms_norm_eps;
        float rope_theta;
    } vision;

    /* quantization_config (compressed-tensors FP8), NULL for a float
     * checkpoint; owned, freed by glm_config_free */
    glm_quant *quant;

    /* generation_config.json defaults (greedy when do_sample is false) */
    int       gen_do_sample;
    float     gen_temperature;
    float     gen_top_p;
    int       gen_top_k;
} glm_config;

/* Reads DIR/config.json and, if present, DIR/generation_config.json.  A
 * loaded config is released with glm_config_free (nothing is held after a
 * failed load). */
int glm_config_load(glm_config *cfg, const char *dir, glm_err *err);
void glm_config_free(glm_config *cfg);

/* One paragraph describing the model, for start-up logs. */
void glm_config_describe(const glm_config *cfg, char *buf, size_t size);

/* Whether id ends a turn: one of generation_config's eos_token_id. */
int glm_config_is_eos(const glm_config *cfg, int32_t id);

#endif
