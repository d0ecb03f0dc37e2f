/*
 * test_scheduler.c: continuous batching must not change what a sequence
 * computes, and the per-sequence logits processors (bad words, allowed
 * ids) and prompt logprobs do what they say (processors(), below).  All reference prompts of a fixture run at once through the
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

/* ---- the per-sequence logits processors and prompt logprobs ---- */

typedef struct {
    int32_t got[64];
    int     n, want;
    int     lp_top1_ok, lp_seen;       /* prompt logprobs */
    yajl_val topk_ids;                 /* the reference's, per prompt position */
} one_t;

static int
one_token(void *p, glm_seq *seq, const glm_sampled *s)
{
    one_t *o = p;

    o->got[o->n++] = s->token;
    return o->n >= o->want;
}

static void
one_prompt_lp(void *p, glm_seq *seq, int pos, const glm_sampled *s, int rank)
{
    one_t *o = p;
    yajl_val row = o->topk_ids->u.array.values[pos - 1];
    int top1 = (int) YAJL_GET_INTEGER(row->u.array.values[0]);

    o->lp_seen++;
    o->lp_top1_ok += s->n_top == 3 && s->top_ids[0] == top1 && s->logprob <= 0
                     && (rank == 1) == (s->token == top1);
}

/* One sequence of reference prompt `which`, greedy, through a scheduler of
 * `budget` tokens per step. */
static void
one_run(glm_model *m, yajl_val prompt, const glm_seq_params *params, int budget, int want,
    one_t *o)
{
    yajl_val ids = get(prompt, "ids");
    int32_t toks[1024];
    glm_seq_params pp = *params;
    glm_sched s;
    glm_seq *seq;
    glm_err err;
    size_t j;
    int steps = 0;

    memset(o, 0, sizeof(*o));
    o->want = want;
    o->topk_ids = get(prompt, "topk_ids");
    for (j = 0; j < ids->u.array.len; j++) {
        toks[j] = (int32_t) YAJL_GET_INTEGER(ids->u.array.values[j]);
    }
    if (glm_sched_init(&s, m, 256, 16, 4, budget, &err) != 0) {
        CHECK(0, "sched init: %s", err.msg);
        return;
    }
    s.on_token = one_token;
    s.on_prompt_logprob = one_prompt_lp;
    s.cb_ctx = o;
    pp.banned = NULL;
    pp.logit_bias = NULL;
    seq = glm_seq_new(toks, (int) ids->u.array.len, &pp, 0, NULL, 0);
    glm_sched_add(&s, seq);
    while (glm_sched_has_work(&s) && steps++ < 100000) {
        glm_sched_step(&s);
    }
    glm_seq_free(seq);
    glm_sched_free(&s);
}

/*
 * bad_words: with the greedy answer's first two tokens as a word, the first
 * still comes and the second never follows it; allowed_token_ids: only
 * those; prompt_logprobs of a 337-token prompt at 9 tokens a step (rows cut
 * to the step's budget): every position once, the reference's most likely
 * id first, rank 1 exactly when the prompt token is that id.
 */
static void
processors(const char *dir)
{
    char path[PATH_MAX], ebuf[256], *text;
    glm_backend *be = glm_backend_cpu_create(0);
    glm_model *m;
    glm_err err;
    yajl_val ref, prompts, p1, g;
    glm_seq_params params;
    int32_t word[2], g0, g1, bad_len[1] = { 2 };
    uint8_t allowed[512];
    one_t o;
    int i, only = 1;

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
    p1 = prompts->u.array.values[1];
    g = get(p1, "greedy_ids");
    g0 = (int32_t) YAJL_GET_INTEGER(g->u.array.values[0]);
    g1 = (int32_t) YAJL_GET_INTEGER(g->u.array.values[1]);

    memset(&params, 0, sizeof(params));
    word[0] = g0;
    word[1] = g1;
    params.bad_words = word;
    params.bad_word_len = bad_len;
    params.n_bad_words = 1;
    one_run(m, p1, &params, 4096, 4, &o);
    CHECK(o.n == 4 && o.got[0] == g0 && o.got[1] != g1,
          "bad_words [%d %d]: %d then %d", g0, g1, o.got[0], o.got[1]);

    memset(&params, 0, sizeof(params));
    memset(allowed, 0, sizeof(allowed));
    allowed[5 >> 3] |= 1u << (5 & 7);
    allowed[g1 >> 3] |= (uint8_t) (1u << (g1 & 7));
    params.allowed = allowed;
    one_run(m, p1, &params, 4096, 8, &o);
    for (i = 0; i < o.n; i++) {
        only &= o.got[i] == 5 || o.got[i] == g1;
    }
    CHECK(o.n == 8 && only, "allowed_token_ids {5, %d}: only those", g1);

    memset(&params, 0, sizeof(params));
    params.prompt_logprobs = 1;
    params.prompt_top_logprobs = 3;
    one_run(m, prompts->u.array.values[7], &params, 9, 1, &o);
    i = (int) get(prompts->u.array.values[7], "ids")->u.array.len;
    CHECK(o.lp_seen == i - 1 && o.lp_top1_ok == i - 1,
          "prompt_logprobs of %d tokens at 9 a step: %d delivered, %d as the reference",
          i, o.lp_seen, o.lp_top1_ok);
    /* a roomy step: the prompt goes GLM_SCHED_PROMPT_LP_ROWS at a time */
    one_run(m, prompts->u.array.values[7], &params, 4096, 1, &o);
    CHECK(o.lp_seen == i - 1 && o.lp_top1_ok == i - 1,
          "prompt_logprobs of %d tokens, %d rows a step: %d delivered, %d as the reference",
          i, GLM_SCHED_PROMPT_LP_ROWS, o.lp_seen, o.lp_top1_ok);
    printf("%s: bad_words, allowed_token_ids, prompt_logprobs (%d positions)\n", dir, i - 1);
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
    processors(dir);
    printf("scheduler: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
