/*
 * session.h: one sequence on a model, for the command-line tools and the
 * reference checks (the server schedules many sequences through the same
 * glm_model_forward batch interface).
 *
 * The session owns a paged KV pool sized for max_len tokens.  Its block
 * table is deliberately not in block order, so that anything assuming a
 * contiguous cache fails the reference checks instead of passing by luck.
 */
#ifndef GLM_SESSION_H
#define GLM_SESSION_H

#include "model.h"

typedef struct {
    glm_model      *m;
    glm_kv_pool     kv;
    int32_t        *blocks;
    int             n_blocks;
    int             max_len;
    int             n_cached;      /* tokens already in the cache */
    const glm_mm_prompt *mm;       /* set by the caller for a vision prompt */
} glm_session;

int glm_session_init(glm_session *s, glm_model *m, int max_len, int block_size,
    glm_err *err);
void glm_session_free(glm_session *s);

/* Appends n tokens, computing them chunk tokens per forward step (0: all at
 * once).  logits receives vocab_size floats per token when all_logits, else
 * only the last token's.  Text positions: (t, h, w) = (p, p, p); with mm
 * set, the prompt's positions and vision rows come from it and later tokens
 * sit at p + rope_delta. */
int glm_session_feed(glm_session *s, const int32_t *ids, int n, int chunk,
    float *logits, int all_logits, glm_err *err);

#endif
