/*
 * vision.h: GLM-4.5V's vision tower, and how its output enters the text
 * decoder (MODEL.md sections 4, 7 and 8).
 *
 *   x  = PatchEmbed(pixels)                 Conv3d (2,14,14) as one matmul
 *   x  = RMSNorm(x) + bicubic(pos_table)     table resampled to each grid
 *   24 x { x += Attn(RMSNorm(x)) with 2-D RoPE, per image / frame pair
 *          x += MLP(RMSNorm(x)) }
 *   x  = RMSNorm(x); 2x2 merge (Conv2d k=s=2); merger MLP -> LLM rows
 *
 * The merged rows replace the prompt's image-token rows in order, and every
 * prompt token gets three rope positions (t, h, w) from get_rope_index.
 */
#ifndef GLM_VISION_H
#define GLM_VISION_H

#include <stdint.h>

#include "backend/backend.h"
#include "config.h"
#include "safetensors.h"

/* One image ([1, h, w]) or one video ([pairs, h, w]); h, w in patches. */
typedef struct {
    int t, h, w;
} glm_grid;

typedef struct glm_vision glm_vision;

/* Binds model.visual.* of the checkpoint; shapes from c->vision. */
glm_vision *glm_vision_bind(glm_checkpoint *ck, const glm_config *c, glm_err *err);
void glm_vision_free(glm_vision *v);

/* LLM rows a grid becomes: t*h*w / merge^2. */
int64_t glm_vision_grid_tokens(const glm_config *c, const glm_grid *g);

/* Runs the tower over the pixel rows of n_grids images/videos (in order,
 * [sum t*h*w][3*T*p*p] as the processor lays them out); writes
 * sum t*h*w/merge^2 rows of out_hidden_size floats to out (host memory). */
int glm_vision_encode(glm_vision *v, glm_backend *be, const float *pixels,
    const glm_grid *grids, int n_grids, float *out, glm_err *err);

/* get_rope_index: the (t, h, w) position of every prompt token.  Image
 * tokens outside <|begin_of_video|>...<|end_of_video|> are images, inside
 * are video frame pairs; each run of them takes the next grid (an image) or
 * the next pair of the current video grid (grids in prompt order).  Returns
 * the rope delta through *delta: a generated token at cache index p has
 * t = h = w = p + delta.  -1 with err when the placeholders and the grids
 * disagree. */
int glm_mrope_positions(const glm_config *c, const int32_t *ids, int n,
    const glm_grid *grids, int n_grids, int32_t *pos3, int *delta, glm_err *err);

/* What a prompt with images or videos carries into the scheduler: its rope
 * positions and the rows that replace its image-token embeddings, and what
 * names each image or video for prefix caching.  Shared by the n choices of
 * a request (reference counted; single-threaded). */
#define GLM_MM_ITEM_HASH_SIZE 32

typedef struct {
    int       refs;
    int       n_prompt;
    int32_t  *pos3;          /* [n_prompt][3] */
    int       rope_delta;
    int       hidden;
    int64_t   n_rows;
    float    *rows;          /* [n_rows][hidden] */
    int32_t  *row_of;        /* [n_prompt]: row index, or -1 for text tokens */
    int       n_items;
    int32_t  *item_of;       /* [n_prompt]: its row's image/video, or -1 */
    uint8_t  *item_hash;     /* [n_items][GLM_MM_ITEM_HASH_SIZE], or NULL:
                                unnamed, so its blocks are never cached */
} glm_mm_prompt;

/* Builds it from the prompt ids and the tower output (rows taken over);
 * item_hash (n_grids digests, copied) may be NULL. */
glm_mm_prompt *glm_mm_prompt_new(const glm_config *c, const int32_t *ids, int n,
    const glm_grid *grids, int n_grids, const uint8_t *item_hash, float *rows,
    int64_t n_rows, glm_err *err);
glm_mm_prompt *glm_mm_prompt_ref(glm_mm_prompt *mm);
void glm_mm_prompt_unref(glm_mm_prompt *mm);

#endif
