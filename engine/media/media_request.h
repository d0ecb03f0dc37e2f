/*
 * media_request.h: the images and videos of one chat request, from the
 * message parts to the expanded prompt and the vision tower's input.
 *
 *   parts      {"type":"image_url","image_url":{"url":U}} and video_url, and
 *              the shorthand {"image_url":U} / {"video_url":U}, in message
 *              order (the order the chat template places their markers)
 *   bytes      data:<mime>;base64,<payload>, or a local file (file://PATH or
 *              an absolute PATH) under --allowed-local-media-path, resolved
 *              with realpath so neither ".." nor a symlink can leave it;
 *              http(s) URLs are fetched by nginx (glm_media_fetch), which
 *              hands them on as data: URLs, so any left here are refused
 *   pixels     media.h: decode, then the GLM-4V image / video processor
 *   prompt     every <|image|> marker becomes t*h*w/4 image tokens; every
 *              <|video|> becomes, per frame pair, <|begin_of_image|> +
 *              image tokens + <|end_of_image|> + the pair's second count
 *
 * Errors carry the HTTP status the server answers with: 400 for bad input
 * (naming the part and what to fix), 403 for a path outside the allowed
 * root.
 */
#ifndef GLM_MEDIA_REQUEST_H
#define GLM_MEDIA_REQUEST_H

#include <yajl/yajl_tree.h>

#include "media.h"
#include "model/config.h"
#include "model/vision.h"
#include "text/tokenizer.h"

#define GLM_MEDIA_MAX_ITEMS 64

typedef struct {
    char             *allowed_root;      /* realpath, malloc'd; NULL: no files */
    glm_media_limits  limits;
    glm_vision_proc   image_proc, video_proc;
    int               video_num_frames;  /* >0: uniform sampling (vLLM's
                                            --media-io-kwargs num_frames);
                                            else the processor's fps sampler */
    int               max_items;         /* images + videos per request */
    int64_t           max_tokens;        /* LLM tokens of all media of a request
                                            (the server's max-model-len); 0: any */
} glm_media_opts;

/* Defaults, then the model directory's preprocessor_config.json and
 * video_preprocessor_config.json where present. */
int glm_media_opts_init(glm_media_opts *o, const char *model_dir, glm_err *err);
void glm_media_opts_free(glm_media_opts *o);

/* --allowed-local-media-path DIR */
int glm_media_opts_allow_root(glm_media_opts *o, const char *dir, glm_err *err);
/* --media-io-kwargs '{"video": {"num_frames": N}}' */
int glm_media_opts_io_kwargs(glm_media_opts *o, const char *json, glm_err *err);

typedef enum { GLM_MEDIA_IMAGE = 0, GLM_MEDIA_VIDEO } glm_media_kind;

typedef struct {
    glm_media_kind    kind;
    glm_vision_input  in;
    int               width, height;     /* as decoded (after EXIF rotation) */
} glm_media_item;

typedef struct {
    glm_media_item   *items;
    int               n;
    int               n_images, n_videos;
    int               status;            /* HTTP status of the error */
    const char       *param;             /* the request field at fault */
} glm_media_set;

/* Collects, loads, decodes and preprocesses every media part of the
 * request's messages (root is the request object).  0 with set->n == 0 when
 * there is none; -1 with err, set->status and set->param on bad input. */
int glm_media_load(const glm_media_opts *o, yajl_val root, glm_media_set *set,
    glm_err *err);
void glm_media_set_free(glm_media_set *set);

/* Whether the request's messages hold any image or video part (a cheap scan
 * that decides whether the request goes through the media workers). */
int glm_media_has_parts(yajl_val root);

/* Expands the markers of ids into the image-token layout and lists the
 * grids in prompt order (*grids: n_grids entries, malloc'd).  -1 with err
 * when the markers and the media disagree. */
int glm_media_expand(const glm_config *c, const glm_tokenizer *tok,
    glm_tokenizer_ctx *tctx, const glm_media_set *set, const int32_t *ids,
    size_t n, glm_tokenizer_ids *out, glm_grid **grids, glm_err *err);

/* All pixel rows of the set in order (malloc'd), for glm_vision_encode. */
float *glm_media_pixels(const glm_media_set *set, int64_t *n_patches);

/* SHA-256 of each item as the vision tower sees it (kind, grid, frame
 * times, pixel rows): set->n digests of 32 bytes, malloc'd; NULL when out
 * of memory.  Equal digests mean equal tower input, whatever the encoding
 * the bytes came in; prefix caching names images and videos by them. */
uint8_t *glm_media_item_digests(const glm_media_set *set);

#endif
