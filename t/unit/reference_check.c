/*
 * reference_check.c: the C engine against transformers, fixture by fixture.
 *
 * For each fixture directory (a tiny random-weight checkpoint and the
 * reference.json that t/reference/make_fixtures.py wrote from transformers in
 * fp32) it checks, for every prompt:
 *   - our tokenizer gives the reference's prompt ids;
 *   - logits at every position (the reference's top-k entries) and the whole
 *     last-position row, computed in one prefill step and again in 3-token
 *     chunks (so chunked prefill over the paged cache is covered);
 *   - a greedy continuation decoded token by token through the KV cache, its
 *     ids against the reference's, and each decode step's top-k logits.
 * Prints one line per fixture:
 *   REF <fixture> max_abs_logit_diff=<x> greedy=<k>/<n>
 * and fails (exit 1) when x > 2e-3 or k != n.
 */
#include <math.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <yajl/yajl_tree.h>

#include "model/model.h"
#include "model/sampling.h"
#include "model/session.h"
#include "ref_common.h"
#include "text/tokenizer.h"

#define GLM_REF_TOL 2e-3

static int
glm_check_fixture(const char *dir, glm_backend *be)
{
    char path[PATH_MAX], ebuf[256];
    const char *name;
    char *text;
    yajl_val ref, prompts;
    glm_model *m;
    glm_tokenizer *tok;
    glm_err err;
    double max_diff = 0.0, d;
    int greedy_ok = 0, greedy_n = 0, tok_bad = 0, V, p, chunked;
    size_t pi;

    name = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    m = glm_model_load(dir, be, &err);
    if (m == NULL) {
        printf("REF %s error: %s\n", name, err.msg);
        return 1;
    }
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    tok = glm_tokenizer_load(path, &err);
    snprintf(path, sizeof(path), "%s/reference.json", dir);
    text = glm_read_file(path, NULL, &err);
    if (tok == NULL || text == NULL) {
        printf("REF %s error: %s\n", name, err.msg);
        glm_model_free(m);
        glm_tokenizer_free(tok);
        free(text);
        return 1;
    }
    ref = yajl_tree_parse(text, ebuf, sizeof(ebuf));
    free(text);
    prompts = ref ? glm_get(ref, "prompts") : NULL;
    if (prompts == NULL || !YAJL_IS_ARRAY(prompts)) {
        printf("REF %s error: %s: no prompts\n", name, path);
        yajl_tree_free(ref);
        glm_tokenizer_free(tok);
        glm_model_free(m);
        return 1;
    }
    V = m->cfg.vocab_size;

    for (pi = 0; pi < prompts->u.array.len; pi++) {
        yajl_val pr = prompts->u.array.values[pi];
        yajl_val tk_ids = glm_get(pr, "topk_ids"), tk_vals = glm_get(pr, "topk_logits");
        yajl_val last = glm_get(pr, "last_logits");
        yajl_val st_ids = glm_get(pr, "step_topk_ids"), st_vals = glm_get(pr, "step_topk_logits");
        yajl_val ptext = glm_get(pr, "text");
        int32_t *ids = NULL, *greedy = NULL;
        int n = 0, ng = 0, s;
        float *logits;
        glm_tokenizer_ids ours = { 0 };
        glm_session sess;

        glm_ids_of(glm_get(pr, "ids"), &ids, &n);
        glm_ids_of(glm_get(pr, "greedy_ids"), &greedy, &ng);

        /* the tokenizer must produce the reference's prompt ids */
        if (glm_tokenizer_encode(tok, NULL, ptext->u.string, strlen(ptext->u.string),
                                 &ours, &err) != 0
            || ours.len != (size_t) n
            || memcmp(ours.ids, ids, (size_t) n * sizeof(int32_t)) != 0)
        {
            tok_bad++;
            fprintf(stderr, "REF %s prompt %zu: tokenizer ids differ\n", name, pi);
        }
        glm_tokenizer_ids_free(&ours);

        /* every position's logits, one step and then 3-token chunks */
        logits = malloc((size_t) n * V * sizeof(float));
        for (chunked = 0; chunked < 2; chunked++) {
            if (glm_session_init(&sess, m, n + ng + 1, 4, &err) != 0
                || glm_session_feed(&sess, ids, n, chunked ? 3 : 0, logits, 1, &err) != 0)
            {
                printf("REF %s error: %s\n", name, err.msg);
                return 1;
            }
            glm_session_free(&sess);
            for (p = 0; p < n; p++) {
                d = glm_topk_diff(logits + (size_t) p * V, tk_ids->u.array.values[p],
                                  tk_vals->u.array.values[p]);
                max_diff = d > max_diff ? d : max_diff;
            }
            for (p = 0; p < V; p++) {
                d = fabs((double) logits[(size_t) (n - 1) * V + p]
                         - YAJL_GET_DOUBLE(last->u.array.values[p]));
                max_diff = d > max_diff ? d : max_diff;
            }
        }

        /* greedy decode through the cache */
        if (glm_session_init(&sess, m, n + ng + 1, 16, &err) != 0
            || glm_session_feed(&sess, ids, n, 0, logits, 0, &err) != 0)
        {
            printf("REF %s error: %s\n", name, err.msg);
            return 1;
        }
        for (s = 0; s < ng; s++) {
            int32_t next = glm_argmax(logits, V);
            d = glm_topk_diff(logits, st_ids->u.array.values[s], st_vals->u.array.values[s]);
            max_diff = d > max_diff ? d : max_diff;
            if (next != greedy[s]) {
                fprintf(stderr, "REF %s prompt %zu: greedy step %d: ours %d, reference %d\n",
                        name, pi, s, next, greedy[s]);
                break;
            }
            greedy_ok++;
            if (glm_config_is_eos(&m->cfg, next) || s + 1 == ng) {
                continue;
            }
            if (glm_session_feed(&sess, &next, 1, 0, logits, 0, &err) != 0) {
                printf("REF %s error: %s\n", name, err.msg);
                return 1;
            }
        }
        greedy_n += ng;
        glm_session_free(&sess);
        free(logits);
        free(ids);
        free(greedy);
    }
    printf("REF %s max_abs_logit_diff=%.3g greedy=%d/%d%s\n", name, max_diff,
           greedy_ok, greedy_n, tok_bad ? " TOKENIZER-MISMATCH" : "");
    yajl_tree_free(ref);
    glm_tokenizer_free(tok);
    glm_model_free(m);
    return !(max_diff <= GLM_REF_TOL && greedy_ok == greedy_n && tok_bad == 0);
}

int
main(int argc, char **argv)
{
    glm_backend *be = glm_backend_cpu_create(0);
    int i, failed = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: reference_check FIXTURE_DIR...\n");
        return 2;
    }
    for (i = 1; i < argc; i++) {
        failed += glm_check_fixture(argv[i], be);
    }
    be->destroy(be);
    printf("reference: %d passed, %d failed\n", argc - 1 - failed, failed);
    return failed ? 1 : 0;
}
