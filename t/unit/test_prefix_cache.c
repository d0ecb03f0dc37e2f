/*
 * test_prefix_cache.c: automatic prefix caching (block_pool.h, scheduler.h)
 * must change what is computed, never what comes out.
 *
 * 1. The block pool alone: chained hashes (ids, parent, extra and model
 *    identity all count), reference counts, eviction only when no free
 *    block is left and then least recently released first, tail blocks
 *    before head blocks, hash table deletions among colliding slots.
 * 2. The scheduler on the tiny GLM-4.5-Air fixture: one workload run with
 *    the cache off and on, every sampled position's logits captured; they
 *    must be bitwise equal (the CPU backend computes each token the same
 *    whatever else is in its batch).  The workload shares prefixes across
 *    requests, sends a prompt whose every full block is cached (its last
 *    block is recomputed), three choices of one prompt in one step, an
 *    abort in mid-prefill followed by the same prompt, a sequence that
 *    finishes while another shares its blocks, and a pool small enough to
 *    evict.  Each sequence's cached tokens are those vLLM's rule gives: the
 *    longest run of full blocks computed before, at most n - 1 tokens.
 * 3. GLM-4.5V (the tiny fixture, synthetic image rows): the same image
 *    ids with another image, or the same image at another grid (other
 *    M-RoPE positions), share only the text blocks before the image; the
 *    same image shares all; a text-only prompt shares the text blocks;
 *    a prompt without media digests is never cached.  Logits again equal.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "server/scheduler.h"

static int passed, failed;

#define CHECK(cond, ...) do {                                   \
    if (cond) { passed++; } else {                              \
        failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__);   \
        printf(__VA_ARGS__); printf("\n"); }                    \
} while (0)

#define MAX_SEQS   32
#define MAX_OUT    24
#define BS         16

/* one sequence of a workload and what it produced */
typedef struct {
    int32_t        ids[256];
    int            n, max_tokens;
    glm_mm_prompt *mm;
    int32_t        out[MAX_OUT];
    float         *logits[MAX_OUT];
    int            n_out, hit;
    glm_seq       *seq;
} spec_t;

typedef struct {
    spec_t *sp;
    int     vocab;
} ctx_t;

static void test_pool(void);
static int on_token(void *p, glm_seq *seq, const glm_sampled *s);
static void capture_logits(void *p, glm_seq *seq, const float *logits);
static void add(glm_sched *s, spec_t *sp, int i);
static void drain(glm_sched *s);
static void random_ids(glm_rng *r, int32_t *ids, int n);
static void text_workload(glm_model *m, const char *dir, int caching, spec_t *sp,
    uint64_t *queries, uint64_t *hits);
static void compare(const char *what, spec_t *off, spec_t *on, int n, int vocab);
static void test_text(const char *dir);
static void test_vision(const char *dir);

int
main(int argc, char **argv)
{
    const char *text_dir = argc > 1 ? argv[1] : "t/fixtures/glm45-air-tiny";
    const char *vl_dir = argc > 2 ? argv[2] : "t/fixtures/glm45v-tiny";

    test_pool();
    test_text(text_dir);
    test_vision(vl_dir);
    printf("prefix cache: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

/* ---- 1. the pool ---------------------------------------------------------- */

static void
test_pool(void)
{
    glm_block_pool p, q;
    glm_block_hash h[8], x, y, z;
    glm_err err;
    int32_t ids[4] = { 1, 2, 3, 4 }, ids2[4] = { 1, 2, 3, 5 }, b[8];
    int i, ok;

    CHECK(glm_block_pool_init(&p, 6, 4, &err) == 0
          && glm_block_pool_enable_caching(&p, "model-a", 7, &err) == 0
          && glm_block_pool_init(&q, 6, 4, &err) == 0
          && glm_block_pool_enable_caching(&q, "model-b", 7, &err) == 0, "pool init");

    /* hashes: every input counts, and the model's identity too */
    glm_block_pool_hash(&p, &x, &p.root, ids, 4, NULL, 0);
    glm_block_pool_hash(&p, &y, &p.root, ids, 4, NULL, 0);
    CHECK(memcmp(&x, &y, sizeof(x)) == 0, "a hash depends on its inputs only");
    glm_block_pool_hash(&p, &y, &p.root, ids2, 4, NULL, 0);
    CHECK(memcmp(&x, &y, sizeof(x)) != 0, "another last id, another hash");
    glm_block_pool_hash(&p, &y, &x, ids, 4, NULL, 0);
    CHECK(memcmp(&x, &y, sizeof(x)) != 0, "another parent, another hash");
    glm_block_pool_hash(&p, &y, &p.root, ids, 4, "img", 3);
    CHECK(memcmp(&x, &y, sizeof(x)) != 0, "an extra (media digest), another hash");
    glm_block_pool_hash(&q, &z, &q.root, ids, 4, NULL, 0);
    CHECK(memcmp(&x, &z, sizeof(x)) != 0, "another model, another hash for the same ids");

    /* allocation, caching, sharing */
    for (i = 0; i < 6; i++) {
        b[i] = glm_block_pool_alloc(&p);
        glm_block_pool_hash(&p, &h[i], i ? &h[i - 1] : &p.root, ids, 4, NULL, 0);
    }
    CHECK(b[0] == 0 && b[5] == 5 && glm_block_pool_alloc(&p) == -1
          && glm_block_pool_n_free(&p) == 0, "six blocks handed out, then none");
    CHECK(glm_block_pool_cache(&p, b[0], &h[0]) == 1 && glm_block_pool_cache(&p, b[1], &h[0]) == 0
          && glm_block_pool_lookup(&p, &h[0]) == b[0],
          "a hash names one block: a second block with it stays uncached");
    glm_block_pool_cache(&p, b[1], &h[1]);
    glm_block_pool_cache(&p, b[2], &h[2]);
    glm_block_pool_take(&p, b[0]);               /* a second sequence shares block 0 */
    glm_block_pool_release(&p, b[0]);
    CHECK(glm_block_pool_n_free(&p) == 0 && p.ref[b[0]] == 1,
          "a shared block stays held while one holder is left");
    /* one sequence (blocks 0, 1, 2, 3) released last to first: 3 is not
     * cached (free), 2, 1, 0 become evictable in that order */
    for (i = 3; i >= 0; i--) {
        glm_block_pool_release(&p, b[i]);
    }
    CHECK(glm_block_pool_n_free(&p) == 4 && p.n_evictable == 3 && p.n_free_stack == 1,
          "released: 1 free, 3 evictable, all capacity");
    CHECK(glm_block_pool_alloc(&p) == b[3] && glm_block_pool_lookup(&p, &h[2]) == b[2]
          && p.evictions == 0, "a free block goes first: nothing evicted while one is left");
    CHECK(glm_block_pool_alloc(&p) == b[2] && glm_block_pool_lookup(&p, &h[2]) == -1
          && glm_block_pool_lookup(&p, &h[1]) == b[1] && p.evictions == 1,
          "then the least recently released: the tail block, the head stays cached");
    glm_block_pool_take(&p, b[1]);
    CHECK(glm_block_pool_alloc(&p) == b[0] && glm_block_pool_lookup(&p, &h[1]) == b[1]
          && glm_block_pool_alloc(&p) == -1,
          "a block taken again is not evictable; with everything held, nothing is left");
    glm_block_pool_free(&p);

    /* deletions among colliding slots: 12 blocks whose hashes all start in
     * the same slot, cached, then every other one evicted */
    CHECK(glm_block_pool_init(&p, 12, 4, &err) == 0
          && glm_block_pool_enable_caching(&p, "m", 1, &err) == 0, "pool init");
    for (i = 0; i < 12; i++) {
        glm_block_hash c;
        memset(&c, 0, sizeof(c));
        c.b[0] = 5;                              /* the same home slot */
        c.b[20] = (uint8_t) i;
        b[i % 8] = glm_block_pool_alloc(&p);
        glm_block_pool_cache(&p, b[i % 8], &c);
    }
    for (i = 0; i < 12; i++) {
        glm_block_pool_release(&p, i);
    }
    for (i = 0; i < 12; i += 2) {
        /* evicts 0, 1, 2... in release order; keep the odd ones cached */
        int32_t e = glm_block_pool_alloc(&p);
        glm_block_pool_take(&p, e + 1);
    }
    ok = 1;
    for (i = 0; i < 12; i++) {
        glm_block_hash c;
        memset(&c, 0, sizeof(c));
        c.b[0] = 5;
        c.b[20] = (uint8_t) i;
        ok &= glm_block_pool_lookup(&p, &c) == (i % 2 ? i : -1);
    }
    CHECK(ok, "colliding hashes: the evicted are gone, every other one still found");
    glm_block_pool_free(&p);
    glm_block_pool_free(&q);
}

/* ---- 2. the scheduler, text ----------------------------------------------- */

static int
on_token(void *p, glm_seq *seq, const glm_sampled *s)
{
    spec_t *sp = &((ctx_t *) p)->sp[seq->index];

    sp->out[sp->n_out++] = s->token;
    return sp->n_out >= sp->max_tokens;
}

/* the scheduler's constrained-decoding hook sees each sampled position's
 * logits (raw: no penalties in these requests) */
static void
capture_logits(void *p, glm_seq *seq, const float *logits)
{
    ctx_t *c = p;
    spec_t *sp = &c->sp[seq->index];

    sp->logits[sp->n_out] = malloc((size_t) c->vocab * sizeof(float));
    memcpy(sp->logits[sp->n_out], logits, (size_t) c->vocab * sizeof(float));
}

static void
add(glm_sched *s, spec_t *sp, int i)
{
    glm_seq_params params;

    memset(&params, 0, sizeof(params));
    sp[i].seq = glm_seq_new(sp[i].ids, sp[i].n, &params, 0, NULL, i);
    sp[i].seq->constrained = 1;
    sp[i].seq->mm = glm_mm_prompt_ref(sp[i].mm);
    glm_sched_add(s, sp[i].seq);
}

static void
drain(glm_sched *s)
{
    int steps = 0;

    while (glm_sched_has_work(s) && steps++ < 10000) {
        glm_sched_step(s);
    }
}

static void
random_ids(glm_rng *r, int32_t *ids, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        ids[i] = 10 + (int32_t) (glm_rng_next(r) % 2900);
    }
}

enum { S0, S1, S2, S3, S3W, S4A, S4B, S4C, S5, S6, S7, S8, E1, E2, E3, E1B, N_TEXT };

/*
 * The workload, in phases; each seq's n_prefix_hit is kept in sp[i].hit.
 * P is a 40-token shared prefix, Q, R, S, U* fresh prompts.
 */
static void
text_workload(glm_model *m, const char *dir, int caching, spec_t *sp, uint64_t *queries,
    uint64_t *hits)
{
    glm_sched s, e;
    glm_err err;
    glm_rng r;
    ctx_t ctx = { sp, m->cfg.vocab_size };
    int32_t P[40], Q[40], R[100], S[50], U[3][60];
    uint64_t evicted[4];
    int i;

    memset(sp, 0, N_TEXT * sizeof(*sp));
    glm_rng_seed(&r, 7);
    random_ids(&r, P, 40);
    random_ids(&r, Q, 40);
    random_ids(&r, R, 100);
    random_ids(&r, S, 50);
    for (i = 0; i < 3; i++) {
        random_ids(&r, U[i], 60);
    }
    if (glm_sched_init(&s, m, 64, BS, 8, 256, &err) != 0
        || (caching && glm_sched_enable_prefix_caching(&s, dir, &err) != 0))
    {
        CHECK(0, "sched init: %s", err.msg);
        return;
    }
    s.on_token = on_token;
    s.on_logits = capture_logits;
    s.cb_ctx = &ctx;

    /* phase 1: S0 = P + 7 ids, 17 tokens out: 63 tokens computed */
    memcpy(sp[S0].ids, P, sizeof(P));
    random_ids(&r, sp[S0].ids + 40, 7);
    sp[S0].n = 47;
    sp[S0].max_tokens = 17;
    add(&s, sp, S0);
    drain(&s);

    /* phase 2, all at once: another suffix; the same prompt; S0's prompt
     * and output (64 ids, 3 full blocks cached); S0's prompt and its first
     * output token (48 ids, every full block cached); three choices of a
     * new prompt, admitted in one step */
    memcpy(sp[S1].ids, P, sizeof(P));
    random_ids(&r, sp[S1].ids + 40, 7);
    sp[S1].n = 47;
    memcpy(sp[S2].ids, sp[S0].ids, 47 * sizeof(int32_t));
    sp[S2].n = 47;
    memcpy(sp[S3].ids, sp[S0].ids, 47 * sizeof(int32_t));
    memcpy(sp[S3].ids + 47, sp[S0].out, 17 * sizeof(int32_t));
    sp[S3].n = 64;
    memcpy(sp[S3W].ids, sp[S3].ids, 48 * sizeof(int32_t));
    sp[S3W].n = 48;
    for (i = S4A; i <= S4C; i++) {
        memcpy(sp[i].ids, Q, sizeof(Q));
        sp[i].n = 40;
    }
    for (i = S1; i <= S4C; i++) {
        sp[i].max_tokens = 4;
        add(&s, sp, i);
    }
    drain(&s);

    /* phase 3: a 100-token prompt aborted after two 32-token chunks, then
     * the same prompt again */
    s.max_batched_tokens = 32;
    memcpy(sp[S5].ids, R, sizeof(R));
    sp[S5].n = 100;
    sp[S5].max_tokens = 2;
    add(&s, sp, S5);
    glm_sched_step(&s);
    glm_sched_step(&s);
    sp[S5].hit = sp[S5].seq->n_prefix_hit;
    glm_sched_remove(&s, sp[S5].seq);
    memcpy(sp[S6].ids, R, sizeof(R));
    sp[S6].n = 100;
    sp[S6].max_tokens = 2;
    add(&s, sp, S6);
    drain(&s);
    s.max_batched_tokens = 256;

    /* phase 4: S7 (S, one token) finishes in the step where S8 (S + 10
     * ids) starts on its blocks; S8 decodes on alone */
    memcpy(sp[S7].ids, S, sizeof(S));
    sp[S7].n = 50;
    sp[S7].max_tokens = 1;
    memcpy(sp[S8].ids, S, sizeof(S));
    random_ids(&r, sp[S8].ids + 50, 10);
    sp[S8].n = 60;
    sp[S8].max_tokens = 20;
    add(&s, sp, S7);
    add(&s, sp, S8);
    drain(&s);
    CHECK(glm_sched_free_blocks(&s) == 64, "all 64 blocks free or evictable at the end (%d)",
          glm_sched_free_blocks(&s));
    *queries = s.prefix_queries;
    *hits = s.prefix_hits;
    for (i = S0; i <= S8; i++) {
        if (i != S5) {
            sp[i].hit = sp[i].seq->n_prefix_hit;
        }
    }

    /* phase 5, a pool of 12 blocks: three 60-token prompts one after
     * another (5 blocks each, 4 of them full), then the first again */
    if (glm_sched_init(&e, m, 12, BS, 4, 256, &err) != 0
        || (caching && glm_sched_enable_prefix_caching(&e, dir, &err) != 0))
    {
        CHECK(0, "sched init: %s", err.msg);
        return;
    }
    e.on_token = on_token;
    e.on_logits = capture_logits;
    e.cb_ctx = &ctx;
    for (i = 0; i < 4; i++) {
        int k = i == 3 ? E1B : E1 + i;
        memcpy(sp[k].ids, U[i == 3 ? 0 : i], sizeof(U[0]));
        sp[k].n = 60;
        sp[k].max_tokens = 8;
        add(&e, sp, k);
        drain(&e);
        sp[k].hit = sp[k].seq->n_prefix_hit;
        evicted[i] = e.pool.evictions;
    }
    if (caching) {
        /* 12 blocks: E1 and E2 take 5 each (4 cached at the end), E3 its
         * fifth by evicting E1's last cached block; E1B takes E1's first
         * three, one free block, and evicts for its fifth */
        CHECK(evicted[0] == 0 && evicted[1] == 0 && evicted[2] == 1 && evicted[3] == 2,
              "phase 5: blocks evicted only once no free one is left (%llu %llu %llu %llu)",
              (unsigned long long) evicted[0], (unsigned long long) evicted[1],
              (unsigned long long) evicted[2], (unsigned long long) evicted[3]);
    }
    for (i = 0; i < N_TEXT; i++) {
        glm_seq_free(sp[i].seq);
        sp[i].seq = NULL;
    }
    glm_sched_free(&e);
    glm_sched_free(&s);
}

static void
compare(const char *what, spec_t *off, spec_t *on, int n, int vocab)
{
    int i, k, same = 1, positions = 0;
    float maxdiff = 0.0f;

    for (i = 0; i < n; i++) {
        if (off[i].n == 0) {
            continue;
        }
        if (off[i].n_out != on[i].n_out
            || memcmp(off[i].out, on[i].out, (size_t) off[i].n_out * sizeof(int32_t)) != 0)
        {
            printf("  %s seq %d: tokens differ\n", what, i);
            same = 0;
        }
        for (k = 0; k < off[i].n_out && k < on[i].n_out; k++) {
            int v;
            for (v = 0; v < vocab; v++) {
                float d = fabsf(off[i].logits[k][v] - on[i].logits[k][v]);
                maxdiff = d > maxdiff ? d : maxdiff;
            }
            same &= memcmp(off[i].logits[k], on[i].logits[k], (size_t) vocab * sizeof(float)) == 0;
            positions++;
        }
    }
    CHECK(same, "%s: cache on and off give the same tokens and bitwise equal logits"
          " (%d positions, max |diff| %g)", what, positions, maxdiff);
    printf("%s: %d sampled positions, logits with and without the cache: max |diff| %g\n",
           what, positions, maxdiff);
}

static void
free_specs(spec_t *sp, int n)
{
    int i, k;

    for (i = 0; i < n; i++) {
        for (k = 0; k < MAX_OUT; k++) {
            free(sp[i].logits[k]);
        }
        glm_mm_prompt_unref(sp[i].mm);
    }
}

static void
test_text(const char *dir)
{
    glm_backend *be = glm_backend_cpu_create(1);
    glm_err err;
    glm_model *m = glm_model_load(dir, be, &err);
    static spec_t off[N_TEXT], on[N_TEXT];
    uint64_t q_off, h_off, q_on, h_on, q_want = 0, h_want = 0;
    /* vLLM's rule: the longest run of full blocks computed before (at
     * admission), at most n - 1 tokens */
    static const int want[N_TEXT] = {
        [S0] = 0,
        [S1] = 32,      /* P's first two blocks; block 2 mixes P and another suffix */
        [S2] = 32,      /* 47 ids: at most 46 cached, so 2 blocks */
        [S3] = 48,      /* 63 of its 64 ids were computed by S0: 3 full blocks */
        [S3W] = 32,     /* all 48 ids cached, but the last must be computed:
                           its whole third block is */
        [S4A] = 0, [S4B] = 32, [S4C] = 32,  /* S4A's blocks in the same step */
        [S5] = 0,
        [S6] = 64,      /* the aborted one had computed 64 ids */
        [S7] = 0,
        [S8] = 48,      /* S7's 3 full blocks, being computed in that step */
        [E1] = 0, [E2] = 0, [E3] = 0,
        [E1B] = 48,     /* E1's blocks 0-2 survived: only its block 3 was evicted */
    };
    int i, ok = 1;

    if (m == NULL) {
        CHECK(0, "%s: %s", dir, err.msg);
        return;
    }
    text_workload(m, dir, 0, off, &q_off, &h_off);
    text_workload(m, dir, 1, on, &q_on, &h_on);
    compare("text", off, on, N_TEXT, m->cfg.vocab_size);
    for (i = 0; i < N_TEXT; i++) {
        if (on[i].hit != want[i] || off[i].hit != 0) {
            printf("  seq %d: %d tokens cached, want %d\n", i, on[i].hit, want[i]);
            ok = 0;
        }
        if (i <= S8) {          /* the first scheduler's new sequences */
            q_want += (uint64_t) on[i].n;
            h_want += (uint64_t) want[i];
        }
    }
    CHECK(ok, "each sequence found the prefix vLLM's rule gives");
    CHECK(q_off == 0 && h_off == 0, "cache off: no queries, no hits");
    CHECK(q_on == q_want && h_on == h_want, "queries %llu (want %llu: every prompt token),"
          " hits %llu (want %llu)", (unsigned long long) q_on, (unsigned long long) q_want,
          (unsigned long long) h_on, (unsigned long long) h_want);
    free_specs(off, N_TEXT);
    free_specs(on, N_TEXT);
    glm_model_free(m);
    be->destroy(be);
}

/* ---- 3. GLM-4.5V ---------------------------------------------------------- */

enum { V0, V1, V2, V3, V4, V5, N_VL };

/* text(20) <begin_image> 8 image tokens <end_image> text(20): 50 ids */
static glm_mm_prompt *
vl_prompt(const glm_config *c, spec_t *sp, const int32_t *text, const glm_grid *g,
    const float *rows, const uint8_t *digest)
{
    float *r = malloc(8 * (size_t) c->hidden_size * sizeof(float));
    glm_err err;
    glm_mm_prompt *mm;
    int i;

    memcpy(sp->ids, text, 20 * sizeof(int32_t));
    sp->ids[20] = c->image_start_token_id;
    for (i = 0; i < 8; i++) {
        sp->ids[21 + i] = c->image_token_id;
    }
    sp->ids[29] = c->image_end_token_id;
    memcpy(sp->ids + 30, text + 20, 20 * sizeof(int32_t));
    sp->n = 50;
    sp->max_tokens = 6;
    memcpy(r, rows, 8 * (size_t) c->hidden_size * sizeof(float));
    mm = glm_mm_prompt_new(c, sp->ids, sp->n, g, 1, digest, r, 8, &err);
    CHECK(mm != NULL, "mm prompt: %s", mm ? "" : err.msg);
    return mm;
}

static void
vl_workload(glm_model *m, const char *dir, int caching, spec_t *sp, uint64_t *queries,
    uint64_t *hits)
{
    const glm_config *c = &m->cfg;
    glm_grid g48 = { 1, 4, 8 }, g84 = { 1, 8, 4 };   /* 8 LLM tokens each */
    uint8_t dx[32], dy[32];
    float *rx = malloc(8 * (size_t) c->hidden_size * sizeof(float));
    float *ry = malloc(8 * (size_t) c->hidden_size * sizeof(float));
    int32_t text[40];
    ctx_t ctx = { sp, c->vocab_size };
    glm_sched s;
    glm_err err;
    glm_rng r;
    int i;

    memset(sp, 0, N_VL * sizeof(*sp));
    glm_rng_seed(&r, 11);
    random_ids(&r, text, 40);
    for (i = 0; i < 8 * c->hidden_size; i++) {
        rx[i] = glm_rng_uniform(&r) * 2.0f - 1.0f;
        ry[i] = glm_rng_uniform(&r) * 2.0f - 1.0f;
    }
    memset(dx, 0xaa, sizeof(dx));
    memset(dy, 0xbb, sizeof(dy));
    sp[V0].mm = vl_prompt(c, &sp[V0], text, &g48, rx, dx);
    sp[V1].mm = vl_prompt(c, &sp[V1], text, &g48, ry, dy);    /* another image */
    sp[V2].mm = vl_prompt(c, &sp[V2], text, &g48, rx, dx);    /* the same image */
    /* the same rows and digest at another grid: only the positions differ */
    sp[V3].mm = vl_prompt(c, &sp[V3], text, &g84, rx, dx);
    memcpy(sp[V4].ids, text, sizeof(text));                   /* the text alone */
    sp[V4].n = 40;
    sp[V4].max_tokens = 6;
    sp[V5].mm = vl_prompt(c, &sp[V5], text, &g48, rx, NULL);  /* no digests */
    free(rx);
    free(ry);

    if (glm_sched_init(&s, m, 64, BS, 8, 256, &err) != 0
        || (caching && glm_sched_enable_prefix_caching(&s, dir, &err) != 0))
    {
        CHECK(0, "sched init: %s", err.msg);
        return;
    }
    s.on_token = on_token;
    s.on_logits = capture_logits;
    s.cb_ctx = &ctx;
    add(&s, sp, V0);
    drain(&s);
    for (i = V1; i < N_VL; i++) {
        add(&s, sp, i);
    }
    drain(&s);
    for (i = 0; i < N_VL; i++) {
        sp[i].hit = sp[i].seq->n_prefix_hit;
        glm_seq_free(sp[i].seq);
        sp[i].seq = NULL;
    }
    *queries = s.prefix_queries;
    *hits = s.prefix_hits;
    glm_sched_free(&s);
}

static void
test_vision(const char *dir)
{
    glm_backend *be;
    glm_err err;
    glm_model *m;
    char path[PATH_MAX];
    static spec_t off[N_VL], on[N_VL];
    static const int want[N_VL] = {
        [V0] = 0,
        [V1] = 16,      /* block 1 holds the image: another image, no share */
        [V2] = 48,      /* the same image: 49 ids at most, 3 blocks */
        [V3] = 16,      /* same digest, other grid: other positions from block 1 on */
        [V4] = 16,      /* text-only: block 0 is all text at positions (p, p, p) */
        [V5] = 0,       /* no digests: not looked up, not counted */
    };
    uint64_t q_on, h_on, q_off, h_off;
    int i, ok = 1;

    glm_path_join(path, sizeof(path), dir, "config.json");
    if (!glm_file_exists(path)) {
        printf("SKIPPED: %s not found\n", path);
        return;
    }
    be = glm_backend_cpu_create(1);
    m = glm_model_load(dir, be, &err);
    if (m == NULL) {
        CHECK(0, "%s: %s", dir, err.msg);
        return;
    }
    vl_workload(m, dir, 0, off, &q_off, &h_off);
    vl_workload(m, dir, 1, on, &q_on, &h_on);
    compare("vision", off, on, N_VL, m->cfg.vocab_size);
    for (i = 0; i < N_VL; i++) {
        if (on[i].hit != want[i]) {
            printf("  vision seq %d: %d tokens cached, want %d\n", i, on[i].hit, want[i]);
            ok = 0;
        }
    }
    CHECK(ok, "vision: blocks with other media or other positions are not shared");
    CHECK(q_on == 50 * 4 + 40 && h_on == 16 + 48 + 16 + 16,
          "vision: queries %llu, hits %llu (the digest-less prompt uncounted)",
          (unsigned long long) q_on, (unsigned long long) h_on);
    free_specs(off, N_VL);
    free_specs(on, N_VL);
    glm_model_free(m);
    be->destroy(be);
}
