/*
 * session.c: see session.h.
 */
#include "session.h"

#include <stdlib.h>
#include <string.h>

int
glm_session_init(glm_session *s, glm_model *m, int max_len, int block_size,
    glm_err *err)
{
    int i;

    memset(s, 0, sizeof(*s));
    if (max_len <= 0 || block_size <= 0) {
        return glm_errf(err, "session length and block size must be positive");
    }
    s->m = m;
    s->max_len = max_len;
    s->n_blocks = (max_len + block_size - 1) / block_size;
    s->blocks = malloc((size_t) s->n_blocks * sizeof(int32_t));
    if (s->blocks == NULL) {
        return glm_errf(err, "out of memory");
    }
    for (i = 0; i < s->n_blocks; i++) {
        s->blocks[i] = s->n_blocks - 1 - i;
    }
    if (glm_kv_pool_init(&s->kv, m, s->n_blocks, block_size, err) != 0) {
        free(s->blocks);
        s->blocks = NULL;
        return -1;
    }
    return 0;
}

void
glm_session_free(glm_session *s)
{
    if (s->m != NULL && s->kv.k != NULL) {
        glm_kv_pool_free(&s->kv, s->m);
    }
    free(s->blocks);
    s->blocks = NULL;
}

int
glm_session_feed(glm_session *s, const int32_t *ids, int n, int chunk,
    float *logits, int all_logits, glm_err *err)
{
    int32_t *pos3, *kv_pos, *seq, *rows;
    const float **erows;
    glm_seq_blocks sb = { s->blocks, s->n_blocks };
    int done = 0, T, i, V = s->m->cfg.vocab_size;

    if (n <= 0) {
        return glm_errf(err, "nothing to feed");
    }
    if (s->n_cached + n > s->max_len) {
        return glm_errf(err, "%d tokens exceed the session's %d-token context",
                        s->n_cached + n, s->max_len);
    }
    for (i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= V) {
            return glm_errf(err, "token id %d outside the model's vocabulary"
                            " (%d)", ids[i], V);
        }
    }
    if (chunk <= 0 || chunk > n) {
        chunk = n;
    }
    pos3 = malloc((size_t) chunk * 3 * sizeof(int32_t));
    kv_pos = malloc((size_t) chunk * sizeof(int32_t));
    seq = calloc((size_t) chunk, sizeof(int32_t));
    rows = malloc((size_t) chunk * sizeof(int32_t));
    erows = calloc((size_t) chunk, sizeof(float *));
    if (pos3 == NULL || kv_pos == NULL || seq == NULL || rows == NULL || erows == NULL) {
        free(pos3); free(kv_pos); free(seq); free(rows); free(erows);
        return glm_errf(err, "out of memory");
    }
    while (done < n) {
        glm_batch b;
        int last_chunk;

        T = n - done < chunk ? n - done : chunk;
        last_chunk = done + T == n;
        for (i = 0; i < T; i++) {
            int p = s->n_cached + i;
            const glm_mm_prompt *mm = s->mm;
            erows[i] = NULL;
            if (mm == NULL) {
                pos3[3 * i] = pos3[3 * i + 1] = pos3[3 * i + 2] = p;
            } else if (p < mm->n_prompt) {
                memcpy(pos3 + 3 * i, mm->pos3 + 3 * p, 3 * sizeof(int32_t));
                if (mm->row_of[p] >= 0) {
                    erows[i] = mm->rows + (int64_t) mm->row_of[p] * mm->hidden;
                }
            } else {
                pos3[3 * i] = pos3[3 * i + 1] = pos3[3 * i + 2] = p + mm->rope_delta;
            }
            kv_pos[i] = p;
            rows[i] = i;
        }
        memset(&b, 0, sizeof(b));
        b.n_tokens = T;
        b.ids = ids + done;
        b.pos3 = pos3;
        b.embed_rows = erows;
        b.attn = (glm_attn_batch) { T, seq, kv_pos, &sb, 1 };
        if (all_logits) {
            b.logit_rows = rows;
            b.n_logits = T;
        } else {
            b.logit_rows = rows + T - 1;
            b.n_logits = last_chunk ? 1 : 0;
        }
        glm_model_forward(s->m, &s->kv, &b,
                          all_logits ? logits + (size_t) done * V : logits);
        s->n_cached += T;
        done += T;
    }
    free(pos3); free(kv_pos); free(seq); free(rows); free(erows);
    return 0;
}
