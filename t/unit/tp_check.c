/*
 * tp_check.c: tensor and expert parallel on the CPU backend against one rank.
 *
 * For each fixture directory it runs the same token sequence on the model
 * loaded whole (one rank, glm_model_load) and split over N = 2, 3 and 4
 * ranks (parallel/ranks.c: N rank threads, shared-memory all-reduces), with
 * expert parallel off and on:
 *   - a 13-token prompt prefilled in chunks of 5 over the paged cache,
 *     every position's logits compared;
 *   - a greedy continuation of GREEDY tokens decoded one by one, each step's
 *     logits compared and the chosen ids required to be the same.
 * The fixtures' shapes make N = 3 split unevenly (4 heads over 3 ranks,
 * intermediate sizes 32 and 128), put one KV head on several ranks (N > 2
 * KV heads), and cut FP8 scale blocks (48x40 and 128x128 blocks, columns
 * shards starting inside a block).
 *
 * Prints one line per run:
 *   TP ranks=<N> ep=<0|1> fixture=<name> max_abs_logit_diff=<d> greedy=<k>/<k>
 * and fails (exit 1) when d > 1e-4 or a greedy id differs.
 *
 * Vision fixtures also encode three images and a video of random pixels
 * with the tower data parallel (each rank its share of the images) against
 * one glm_vision_encode of them all:
 *   TP-VISION ranks=<N> fixture=<name> grids=4 max_abs_diff=<d>
 * Usage: tp_check [--ranks 2,3,4] FIXTURE_DIR...
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "model/model.h"
#include "model/session.h"
#include "parallel/ranks.h"

#define TP_TOL 1e-4
#define PROMPT 13
#define CHUNK 5
#define GREEDY 8

static int
argmax(const float *l, int n)
{
    int i, best = 0;

    for (i = 1; i < n; i++) {
        if (l[i] > l[best]) {
            best = i;
        }
    }
    return best;
}

/* The prompt's logits ([PROMPT][V]), then each greedy step's ([GREEDY][V])
 * and ids; -1 with the reason printed. */
static int
run(glm_model *m, const int32_t *prompt, float *logits, int32_t *ids, glm_err *err)
{
    glm_session s;
    int V = m->cfg.vocab_size, i;
    int32_t next;

    if (glm_session_init(&s, m, PROMPT + GREEDY + 1, 4, err) != 0) {
        return -1;
    }
    if (glm_session_feed(&s, prompt, PROMPT, CHUNK, logits, 1, err) != 0) {
        glm_session_free(&s);
        return -1;
    }
    next = argmax(logits + (size_t) (PROMPT - 1) * V, V);
    for (i = 0; i < GREEDY; i++) {
        float *l = logits + (size_t) (PROMPT + i) * V;
        ids[i] = next;
        if (glm_session_feed(&s, &next, 1, 0, l, 0, err) != 0) {
            glm_session_free(&s);
            return -1;
        }
        next = argmax(l, V);
    }
    glm_session_free(&s);
    return 0;
}

/* Three images and a two-pair video, in patches (multiples of the merge) */
static const glm_grid vision_grids[] = { { 1, 4, 4 }, { 1, 2, 6 }, { 2, 4, 2 }, { 1, 2, 2 } };
#define N_VISION_GRIDS 4

static int
check_vision(const char *dir, const char *name, const int *ranks, int n_ranks)
{
    glm_backend *be1 = glm_backend_cpu_create(0);
    glm_err err;
    glm_model *m = glm_model_load(dir, be1, &err);
    const glm_config *c;
    float *px, *want, *got;
    int64_t patches = 0, rows = 0, cols, k, out_floats;
    int i, ri, bad = 0;
    unsigned seed = 12345;

    if (m == NULL || m->vision == NULL) {
        glm_model_free(m);
        be1->destroy(be1);
        return 0;
    }
    c = &m->cfg;
    cols = (int64_t) c->vision.in_channels * c->vision.temporal_patch_size
           * c->vision.patch_size * c->vision.patch_size;
    for (i = 0; i < N_VISION_GRIDS; i++) {
        patches += (int64_t) vision_grids[i].t * vision_grids[i].h * vision_grids[i].w;
        rows += glm_vision_grid_tokens(c, &vision_grids[i]);
    }
    out_floats = rows * c->hidden_size;
    px = malloc((size_t) (patches * cols) * sizeof(float));
    want = malloc((size_t) out_floats * sizeof(float));
    got = malloc((size_t) out_floats * sizeof(float));
    for (k = 0; k < patches * cols; k++) {
        seed = seed * 1103515245u + 12345u;
        px[k] = (float) ((seed >> 8) & 0xffff) / 32768.0f - 1.0f;   /* normalized pixels */
    }
    if (glm_vision_encode(m->vision, be1, px, vision_grids, N_VISION_GRIDS, want, &err) != 0) {
        printf("TP-VISION fixture=%s one rank: %s\n", name, err.msg);
        bad = 1;
    }
    glm_model_free(m);
    be1->destroy(be1);
    for (ri = 0; ri < n_ranks && !bad; ri++) {
        glm_parallel p = { ranks[ri], 0, 1 };
        int threads = glm_parallel_threads(0, p.tensor_parallel);
        glm_backend *be = glm_backend_cpu_create(threads);
        double d = 0.0;

        m = glm_model_load_parallel(dir, be, &p, threads, &err);
        memset(got, 0xff, (size_t) out_floats * sizeof(float));   /* NaN */
        if (m == NULL
            || glm_model_encode_images(m, px, vision_grids, N_VISION_GRIDS, got, &err) != 0)
        {
            printf("TP-VISION ranks=%d fixture=%s error: %s\n", p.tensor_parallel, name, err.msg);
            bad = 1;
        } else {
            for (k = 0; k < out_floats; k++) {
                double e = fabs((double) got[k] - (double) want[k]);
                d = e > d || isnan(e) ? e : d;
            }
            printf("TP-VISION ranks=%d fixture=%s grids=%d max_abs_diff=%.3g\n",
                   p.tensor_parallel, name, N_VISION_GRIDS, d);
            bad |= !(d <= TP_TOL);
        }
        glm_model_free(m);
        be->destroy(be);
    }
    free(px);
    free(want);
    free(got);
    return bad;
}

static int
check_fixture(const char *dir, const int *ranks, int n_ranks)
{
    const char *name = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    glm_backend *be1 = glm_backend_cpu_create(0);
    glm_model *m;
    glm_err err;
    float *ref = NULL, *got = NULL;
    int32_t prompt[PROMPT], ref_ids[GREEDY], ids[GREEDY];
    int V, i, ri, ep, bad = 0;
    size_t n, k;

    m = glm_model_load(dir, be1, &err);
    if (m == NULL) {
        printf("TP fixture=%s error: %s\n", name, err.msg);
        be1->destroy(be1);
        return 1;
    }
    V = m->cfg.vocab_size;
    n = (size_t) (PROMPT + GREEDY) * V;
    ref = malloc(n * sizeof(float));
    got = malloc(n * sizeof(float));
    for (i = 0; i < PROMPT; i++) {
        prompt[i] = (int32_t) ((i * 7919 + 17) % V);     /* any ids of the vocabulary */
    }
    if (ref == NULL || got == NULL || run(m, prompt, ref, ref_ids, &err) != 0) {
        printf("TP fixture=%s one rank: %s\n", name, ref && got ? err.msg : "out of memory");
        bad = 1;
    }
    glm_model_free(m);
    be1->destroy(be1);

    for (ri = 0; ri < n_ranks && !bad; ri++) {
        for (ep = 0; ep <= 1; ep++) {
            glm_parallel p = { ranks[ri], ep, 1 };
            int threads = glm_parallel_threads(0, p.tensor_parallel), same = 0;
            glm_backend *be = glm_backend_cpu_create(threads);
            double d = 0.0;

            m = glm_model_load_parallel(dir, be, &p, threads, &err);
            if (m == NULL || run(m, prompt, got, ids, &err) != 0) {
                printf("TP ranks=%d ep=%d fixture=%s error: %s\n", p.tensor_parallel, ep,
                       name, err.msg);
                glm_model_free(m);
                be->destroy(be);
                bad = 1;
                continue;
            }
            for (k = 0; k < n; k++) {
                double e = fabs((double) got[k] - (double) ref[k]);
                d = e > d || isnan(e) ? e : d;
            }
            for (i = 0; i < GREEDY; i++) {
                same += ids[i] == ref_ids[i];
            }
            printf("TP ranks=%d ep=%d fixture=%s max_abs_logit_diff=%.3g greedy=%d/%d\n",
                   p.tensor_parallel, ep, name, d, same, GREEDY);
            fflush(stdout);
            if (!(d <= TP_TOL) || same != GREEDY) {
                bad = 1;
            }
            glm_model_free(m);
            be->destroy(be);
        }
    }
    free(ref);
    free(got);
    return bad | check_vision(dir, name, ranks, n_ranks);
}

int
main(int argc, char **argv)
{
    int ranks[8] = { 2, 3, 4 }, n_ranks = 3, i = 1, failed = 0;

    if (argc > 2 && strcmp(argv[1], "--ranks") == 0) {
        char *s = argv[2], *end;
        for (n_ranks = 0; n_ranks < 8 && *s; n_ranks++) {
            ranks[n_ranks] = (int) strtol(s, &end, 10);
            if (end == s || ranks[n_ranks] < 1) {
                fprintf(stderr, "tp_check: --ranks wants numbers like 2,3,4\n");
                return 2;
            }
            s = *end == ',' ? end + 1 : end;
        }
        i = 3;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: tp_check [--ranks 2,3,4] FIXTURE_DIR...\n");
        return 2;
    }
    for (; i < argc; i++) {
        failed |= check_fixture(argv[i], ranks, n_ranks);
    }
    return failed;
}
