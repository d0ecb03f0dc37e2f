/*
 * test_scheduler.c: continuous batching must not change what a sequence
 * computes.  All reference prompts of a fixture run at once through the
 * scheduler, greedy, under pressure: a token budget smaller than the prompts
 * (chunked prefill mixed with decodes) and a KV pool too small for all of
 * them (admission waits, and running sequences preempt and recompute).
 * Every sequence's tokens must equal transformers' greedy continuation,
 * with prefix caching off and on (preempted sequences then come back to
 * their own cached blocks).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <yajl/yajl_tree.h>

#include "server/scheduler.h"

static int passed, failed;

#define CHECK(cond, ...) do {                                   \
    if (cond) { passed++; } else {                              \
        failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__);   \
        printf(__VA_ARGS__); printf("\n"); }                    \
} while (0)

typedef struct {
    int32_t want[64];
    int     n_want, n_got, ok;
} expect_t;

typedef struct {
    glm_model *m;
    expect_t  *ex;
} ctx_t;

static int
on_token(void *p, glm_seq *seq, const glm_sampled *s)
{
    ctx_t *c = p;
    expect_t *e = &c->ex[seq->index];
    int i;

    (void) c;
    if (e->n_got < e->n_want && e->want[e->n_got] != s->token) {
        e->ok = 0;
    }
    e->n_got++;
    if (glm_config_is_eos(&c->m->cfg, s->token)) {
        return 1;
    }
    return e->n_got >= e->n_want;
}

static yajl_val
get(yajl_val o, const char *k)
{
    const char *path[] = { k, NULL };

    return yajl_tree_get(o, path, yajl_t_any);
}

static void
run(const char *dir, int n_blocks, int block_size, int budget, int max_seqs, int caching)
{
    char path[PATH_MAX], ebuf[256], *text;
    glm_backend *be = glm_backend_cpu_create(0);
    glm_model *m;
    glm_sched s;
    glm_err err;
    yajl_val ref, prompts;
    expect_t ex[16];
    glm_seq *seqs[16];
    glm_seq_params params;
    ctx_t ctx;
    size_t i, j, np;
    int steps = 0, all_ok = 1;

    m = glm_model_load(dir, be, &err);
    snprintf(path, sizeof(path), "%s/reference.json", dir);
    text = glm_read_file(path, NULL, &err);
    if (m == NULL || text == NULL) {
        CHECK(0, "%s: %s", dir, err.msg);
        return;
    }
    ref = yajl_tree_parse(text, ebuf, sizeof(ebuf));
    free(text);
    prompts = get(ref, "prompts");
    np = prompts->u.array.len < 16 ? prompts->u.array.len : 16;
    if (glm_sched_init(&s, m, n_blocks, block_size, max_seqs, budget, &err) != 0
        || (caching && glm_sched_enable_prefix_caching(&s, dir, &err) != 0))
    {
        CHECK(0, "sched init: %s", err.msg);
        return;
    }
    ctx.m = m;
    ctx.ex = ex;
    s.on_token = on_token;
    s.cb_ctx = &ctx;
    memset(&params, 0, sizeof(params));
    for (i = 0; i < np; i++) {
        yajl_val p = prompts->u.array.values[i], ids = get(p, "ids"), g = get(p, "greedy_ids");
        int32_t prompt[1024];
        int n = (int) ids->u.array.len;

        for (j = 0; j < ids->u.array.len; j++) {
            prompt[j] = (int32_t) YAJL_GET_INTEGER(ids->u.array.values[j]);
        }
        ex[i].n_want = (int) g->u.array.len;
        ex[i].n_got = 0;
        ex[i].ok = 1;
        for (j = 0; j < g->u.array.len; j++) {
            ex[i].want[j] = (int32_t) YAJL_GET_INTEGER(g->u.array.values[j]);
        }
        seqs[i] = glm_seq_new(prompt, n, &params, 0, NULL, (int) i);
        glm_sched_add(&s, seqs[i]);
    }
    while (glm_sched_has_work(&s) && steps < 100000) {
        glm_sched_step(&s);
        steps++;
    }
    for (i = 0; i < np; i++) {
        all_ok &= ex[i].ok && ex[i].n_got == ex[i].n_want;
        if (!(ex[i].ok && ex[i].n_got == ex[i].n_want)) {
            printf("  prompt %zu: %d of %d tokens, %s\n", i, ex[i].n_got, ex[i].n_want,
                   ex[i].ok ? "all equal" : "a token differs");
        }
        glm_seq_free(seqs[i]);
    }
    CHECK(all_ok, "%s: every sequence equals the reference", dir);
    CHECK(glm_sched_free_blocks(&s) == n_blocks, "%s: all %d KV blocks free at the end (%d)",
          dir, n_blocks, glm_sched_free_blocks(&s));
    printf("%s: %zu sequences, %d steps, budget %d tokens, %d blocks of %d,"
           " %llu preemptions, prefix cache %s (%llu of %llu prompt tokens found): %s\n",
           dir, np, steps, budget, n_blocks, block_size, (unsigned long long) s.preemptions,
           caching ? "on" : "off", (unsigned long long) s.prefix_hits,
           (unsigned long long) s.prefix_queries,
           all_ok ? "identical to transformers" : "DIFFERENT");
    glm_sched_free(&s);
    yajl_tree_free(ref);
    glm_model_free(m);
    be->destroy(be);
}

int
main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "t/fixtures/glm45-tiny";

    /* roomy: everything admitted at once, prefill in one step each */
    run(dir, 512, 16, 4096, 16, 0);
    /* tight: a 9-token budget, and 100 blocks of 4 (400 tokens) where the
     * ten sequences want 870: the longest (337 + 32) fits alone */
    run(dir, 100, 4, 9, 6, 0);
    run(dir, 100, 4, 9, 6, 1);
    printf("scheduler: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
