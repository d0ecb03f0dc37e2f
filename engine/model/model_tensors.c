/*
 * model_tensors.c: the weights one model (one rank's) computes with.
 *
 * Why: a tensor-parallel rank's weights are not the checkpoint's "used"
 * tensors (the checkpoint is shared by the ranks, and a rank holds row
 * views and column copies of most of them), so a backend that copies
 * weights to its device up front (the CUDA backend, one GPU per rank) asks
 * the model for exactly its own: the decoder's tensors as bound for this
 * rank, experts another rank owns (expert parallel) left out.  The vision
 * tower and the MTP layer are not listed: the tower's tensors go to the
 * device at first use, and MTP does not run with tensor parallel.
 */
#include "model.h"

/* Appends t (when not NULL) to out[0..cap), counting past cap. */
static void
glm_list_add(glm_tensor **out, size_t cap, size_t *n, glm_tensor *t)
{
    if (t == NULL) {
        return;
    }
    if (*n < cap) {
        out[*n] = t;
    }
    (*n)++;
}

size_t
glm_model_tensors(const glm_model *m, glm_tensor **out, size_t cap)
{
    const glm_config *c = &m->cfg;
    size_t n = 0;
    int l, e;

    glm_list_add(out, cap, &n, m->embed);
    glm_list_add(out, cap, &n, m->final_norm);
    if (m->lm_head != m->embed) {
        glm_list_add(out, cap, &n, m->lm_head);
    }
    for (l = 0; m->layers != NULL && l < c->num_layers; l++) {
        const glm_layer *L = &m->layers[l];
        glm_tensor *t[] = {
            L->input_norm, L->post_attn_norm, L->wq, L->bq, L->wk, L->bk, L->wv, L->bv,
            L->wo, L->q_norm, L->k_norm, L->gate, L->up, L->down,
        };
        size_t i;

        for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
            glm_list_add(out, cap, &n, t[i]);
        }
        if (!L->is_moe) {
            continue;
        }
        glm_list_add(out, cap, &n, (glm_tensor *) L->moe.router);
        glm_list_add(out, cap, &n, (glm_tensor *) L->moe.correction_bias);
        for (e = 0; L->exp_gate != NULL && e < c->n_routed_experts; e++) {
            glm_list_add(out, cap, &n, L->exp_gate[e]);
            glm_list_add(out, cap, &n, L->exp_up[e]);
            glm_list_add(out, cap, &n, L->exp_down[e]);
        }
    }
    return n;
}
