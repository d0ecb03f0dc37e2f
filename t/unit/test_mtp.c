/*
 * test_mtp.c: MTP speculative decoding (scheduler.h, model.h) must change
 * how many steps a completion takes, never what it is.
 *
 * The tiny GLM-4.5-Air fixture carries an MTP layer (layer 3) with random
 * weights.  One workload (prompts of several lengths, greedy and seeded
 * sampling with top-k/top-p, penalties, logprobs, more sequences than fit
 * one step's budget so prefills are chunked and decodes share steps) runs
 * three times on the CPU backend:
 *
 * 1. without MTP: the reference outputs;
 * 2. with the fixture's MTP layer: outputs identical token for token
 *    (its random drafts are mostly rejected: that path);
 * 3. with an "echo" MTP layer: the weights changed in memory so that the
 *    layer passes the main model's hidden state through (eh_proj = [0 I],
 *    the block's output projections 0, norms 1) and its head is lm_head:
 *    its draft for position p+2 is the main model's own greedy choice at
 *    p+1, i.e. it predicts a repeat of the newest token; a tiny random
 *    model repeats often, so drafts are accepted and the accepting path
 *    (two tokens in one step, the draft's KV kept) is exercised.  Outputs
 *    again identical, and the acceptance printed and required > 0.
 *
 * 4. The layer's own numbers: t/reference/make_mtp_reference.py builds it from
 *    transformers' parts as vLLM's glm4_moe_mtp runs it and stores the 8
 *    largest MTP logits at every position of three prompts; ours (the main
 *    model's final-normed hidden states, then the MTP layer over the prompt
 *    shifted by one) must match within 1e-3 and pick the same argmax.
 *
 * Identical outputs hold because the target's logits for a position are
 * the same whether it is computed alone or right after its predecessor in
 * one step (the CPU backend computes each token alike whatever its batch,
 * test_prefix_cache relies on the same) and sampling draws from the same
 * per-request generator in the same order.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "server/scheduler.h"
#include "util/json.h"
#include "util/util.h"

static int passed, failed;

#define CHECK(cond, ...) do {                                   \
    if (cond) { passed++; } else {                              \
        failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__);   \
        printf(__VA_ARGS__); printf("\n"); }                    \
} while (0)

#define N_SEQ    10
#define MAX_OUT  40

typedef struct {
    int32_t   ids[120];
    int       n, max_tokens;
    int32_t   out[MAX_OUT];
    float     lp[MAX_OUT];
    int       n_out;
} job_t;

static int
on_token(void *p, glm_seq *seq, const glm_sampled *s)
{
    job_t *j = &((job_t *) p)[seq->index];

    j->lp[j->n_out] = s->logprob;
    j->out[j->n_out++] = s->token;
    return j->n_out >= j->max_tokens;
}

static void
make_jobs(job_t *jobs)
{
    glm_rng r;
    int i, k;

    memset(jobs, 0, N_SEQ * sizeof(*jobs));
    glm_rng_seed(&r, 11);
    for (i = 0; i < N_SEQ; i++) {
        jobs[i].n = 13 + (int) (glm_rng_next(&r) % 100);
        for (k = 0; k < jobs[i].n; k++) {
            jobs[i].ids[k] = 10 + (int32_t) (glm_rng_next(&r) % 2900);
        }
        jobs[i].max_tokens = 8 + (int) (glm_rng_next(&r) % (MAX_OUT - 8));
    }
    /* a prompt ending in a run of one token: the echo layer's drafts hold */
    for (k = 0; k < 12; k++) {
        jobs[3].ids[jobs[3].n - 1 - k] = 777;
    }
}

static uint64_t computed;        /* tokens the last run's steps computed */

static void
run(glm_model *m, job_t *jobs, uint64_t *drafts, uint64_t *accepted)
{
    glm_sched s;
    glm_err err;
    glm_seq *seqs[N_SEQ];
    int i, steps = 0;

    /* 6 sequences at once, 64 tokens a step: prefills are chunked and
     * share steps with decodes */
    if (glm_sched_init(&s, m, 128, 16, 6, 64, &err) != 0) {
        CHECK(0, "sched init: %s", err.msg);
        return;
    }
    s.on_token = on_token;
    s.cb_ctx = jobs;
    for (i = 0; i < N_SEQ; i++) {
        glm_seq_params p;
        memset(&p, 0, sizeof(p));
        p.sampling.top_p = 1.0f;
        switch (i % 4) {
        case 0:                                 /* greedy */
            break;
        case 1:                                 /* seeded sampling */
            p.sampling.temperature = 1.0f;
            break;
        case 2:
            p.sampling.temperature = 0.7f;
            p.sampling.top_k = 20;
            p.sampling.top_p = 0.9f;
            p.repetition_penalty = 1.3f;
            p.logprobs = 1;
            break;
        default:
            p.presence_penalty = 0.5f;
            p.frequency_penalty = 0.2f;
            break;
        }
        if (p.repetition_penalty == 0.0f) {
            p.repetition_penalty = 1.0f;
        }
        seqs[i] = glm_seq_new(jobs[i].ids, jobs[i].n, &p, 1000 + (uint64_t) i, NULL, i);
        glm_sched_add(&s, seqs[i]);
    }
    while (glm_sched_has_work(&s) && steps++ < 10000) {
        glm_sched_step(&s);
    }
    *drafts = s.spec_drafts;
    *accepted = s.spec_accepted;
    computed = s.step_tokens;
    CHECK(s.preemptions == 0, "the pool is large enough: no preemption");
    for (i = 0; i < N_SEQ; i++) {
        glm_seq_free(seqs[i]);
    }
    glm_sched_free(&s);
}

static int
same(const char *what, const job_t *ref, const job_t *got)
{
    int i, k, ok = 1;

    for (i = 0; i < N_SEQ; i++) {
        int eq = ref[i].n_out == got[i].n_out;
        for (k = 0; eq && k < ref[i].n_out; k++) {
            eq = ref[i].out[k] == got[i].out[k]
                 && (ref[i].lp[k] == got[i].lp[k]
                     || (isnan(ref[i].lp[k]) && isnan(got[i].lp[k])));
        }
        CHECK(eq, "%s: sequence %d differs from the one without MTP (%d vs %d tokens)",
              what, i, ref[i].n_out, got[i].n_out);
        ok &= eq;
    }
    return ok;
}

/* a heap copy of t's bytes, each element set by fill(row, col) */
static void
overwrite(glm_tensor *t, float (*fill)(int64_t row, int64_t col), void **keep)
{
    int64_t rows = t->shape[0], cols = t->ndim > 1 ? t->shape[1] : 1, r, c;
    uint16_t *bf = malloc((size_t) t->numel * sizeof(uint16_t));

    if (t->dtype != GLM_DTYPE_BF16 || bf == NULL) {
        CHECK(0, "%s: a BF16 tensor expected", t->name);
        free(bf);
        return;
    }
    for (r = 0; r < rows; r++) {
        for (c = 0; c < cols; c++) {
            bf[r * cols + c] = glm_f32_to_bf16(fill(r, c));
        }
    }
    t->data = bf;
    *keep = bf;
}

static float fill_one(int64_t r, int64_t c) { (void) r; (void) c; return 1.0f; }
static float fill_zero(int64_t r, int64_t c) { (void) r; (void) c; return 0.0f; }
static int64_t echo_hidden;
/* [0 I]: the hidden-state half through, the embedding half dropped */
static float fill_echo(int64_t r, int64_t c) { return c == echo_hidden + r ? 1.0f : 0.0f; }

/* 4. the MTP layer's logits against the committed reference */
static void
reference(glm_model *m, const char *dir)
{
    char path[4096], msg[256];
    char *text;
    yajl_val root, prompts;
    glm_err err;
    size_t pi;
    int V = m->cfg.vocab_size, H = m->cfg.hidden_size;

    glm_path_join(path, sizeof(path), dir, "mtp_reference.json");
    text = glm_read_file(path, NULL, &err);
    root = text != NULL ? yajl_tree_parse(text, msg, sizeof(msg)) : NULL;
    prompts = glm_json_get(root, "prompts");
    CHECK(prompts != NULL && YAJL_IS_ARRAY(prompts), "%s: no prompts", path);
    for (pi = 0; prompts != NULL && pi < prompts->u.array.len; pi++) {
        yajl_val P = prompts->u.array.values[pi];
        yajl_val ids = glm_json_get(P, "ids"), sh = glm_json_get(P, "shifted");
        yajl_val top = glm_json_get(P, "top");
        int n = (int) ids->u.array.len, i, k, argmax_ok = 0;
        int32_t *tok = malloc((size_t) n * 4), *nxt = malloc((size_t) n * 4);
        int32_t *pos3 = malloc((size_t) n * 12), *seq = calloc((size_t) n, 4);
        int32_t *kv_pos = malloc((size_t) n * 4), *rows = malloc((size_t) n * 4);
        int32_t blocks[16];
        float *logits = malloc((size_t) n * V * sizeof(float));
        glm_seq_blocks sb = { blocks, 16 };
        glm_kv_pool kv;
        glm_batch b;
        double maxd = 0;

        for (i = 0; i < 16; i++) {
            blocks[i] = i;
        }
        for (i = 0; i < n; i++) {
            tok[i] = (int32_t) YAJL_GET_INTEGER(ids->u.array.values[i]);
            nxt[i] = (int32_t) YAJL_GET_INTEGER(sh->u.array.values[i]);
            pos3[3 * i] = pos3[3 * i + 1] = pos3[3 * i + 2] = kv_pos[i] = rows[i] = i;
        }
        if (glm_kv_pool_init(&kv, m, 16, 16, &err) != 0) {
            CHECK(0, "kv pool: %s", err.msg);
            break;
        }
        memset(&b, 0, sizeof(b));
        b.n_tokens = n;
        b.ids = tok;
        b.pos3 = pos3;
        b.attn = (glm_attn_batch) { n, seq, kv_pos, &sb, 1 };
        b.logit_rows = rows + n - 1;
        b.n_logits = 1;
        b.keep_hidden = 1;
        glm_model_forward(m, &kv, &b, logits);
        CHECK(glm_argmax(logits, V) == nxt[n - 1],
              "prompt %zu: the main model's next token %d, the reference's %d", pi,
              glm_argmax(logits, V), nxt[n - 1]);
        b.ids = nxt;
        b.logit_rows = rows;
        b.n_logits = n;
        b.keep_hidden = 0;
        glm_model_mtp_forward(m, &kv, &b, rows, logits);
        for (i = 0; i < n; i++) {
            yajl_val t = top->u.array.values[i];
            for (k = 0; k < (int) t->u.array.len; k++) {
                yajl_val e = t->u.array.values[k];
                int id = (int) YAJL_GET_INTEGER(e->u.array.values[0]);
                double want = YAJL_GET_DOUBLE(e->u.array.values[1]);
                double d = fabs(logits[(size_t) i * V + id] - want);
                maxd = d > maxd ? d : maxd;
                if (k == 0) {
                    argmax_ok += glm_argmax(logits + (size_t) i * V, V) == id;
                }
            }
        }
        printf("MTP-REF prompt=%zu tokens=%d max_abs_diff=%.3g argmax=%d/%d (hidden %d)\n",
               pi, n, maxd, argmax_ok, n, H);
        CHECK(maxd < 1e-3 && argmax_ok == n, "prompt %zu: MTP logits off the reference", pi);
        glm_kv_pool_free(&kv, m);
        free(tok); free(nxt); free(pos3); free(seq); free(kv_pos); free(rows); free(logits);
    }
    yajl_tree_free(root);
    free(text);
}

int
main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "t/fixtures/glm45-air-tiny";
    static job_t ref[N_SEQ], got[N_SEQ];
    void *keep[64];
    int n_keep = 0, e, accepted_total = 0;
    glm_backend *be;
    glm_model *m;
    glm_err err;
    uint64_t d, a, ref_computed;

    be = glm_backend_cpu_create(2);
    m = glm_model_load(dir, be, &err);
    if (m == NULL) {
        printf("FAIL load %s: %s\n", dir, err.msg);
        return 1;
    }
    make_jobs(ref);
    run(m, ref, &d, &a);
    ref_computed = computed;
    CHECK(d == 0 && a == 0, "no drafts without MTP");
    glm_model_free(m);

    /* 2. the fixture's MTP layer */
    m = glm_model_load(dir, be, &err);
    CHECK(m != NULL && glm_model_enable_mtp(m, &err) == 0, "enable MTP: %s", err.msg);
    if (m == NULL || m->mtp == NULL) {
        return 1;
    }
    reference(m, dir);
    make_jobs(got);
    run(m, got, &d, &a);
    same("fixture MTP", ref, got);
    CHECK(computed == ref_computed + d - a, "tokens computed: %llu, expected %llu + %llu - %llu",
          (unsigned long long) computed, (unsigned long long) ref_computed,
          (unsigned long long) d, (unsigned long long) a);
    printf("MTP fixture-layer drafts=%llu accepted=%llu rate=%.3f\n", (unsigned long long) d,
           (unsigned long long) a, d ? (double) a / d : 0.0);
    CHECK(d > 0, "drafts were verified");
    glm_model_free(m);

    /* 3. the echo layer */
    m = glm_model_load(dir, be, &err);
    CHECK(m != NULL && glm_model_enable_mtp(m, &err) == 0, "enable MTP: %s", err.msg);
    if (m == NULL || m->mtp == NULL) {
        return 1;
    }
    echo_hidden = m->cfg.hidden_size;
    overwrite(m->mtp->eh_proj, fill_echo, &keep[n_keep++]);
    overwrite(m->mtp->hnorm, fill_one, &keep[n_keep++]);
    overwrite(m->mtp->head_norm, fill_one, &keep[n_keep++]);
    overwrite(m->mtp->block->wo, fill_zero, &keep[n_keep++]);
    overwrite(m->mtp->block->down, fill_zero, &keep[n_keep++]);
    for (e = 0; e < m->cfg.n_routed_experts && n_keep < 64; e++) {
        overwrite(m->mtp->block->exp_down[e], fill_zero, &keep[n_keep++]);
    }
    make_jobs(got);
    run(m, got, &d, &a);
    same("echo MTP", ref, got);
    accepted_total = (int) a;
    printf("MTP echo-layer drafts=%llu accepted=%llu rate=%.3f\n", (unsigned long long) d,
           (unsigned long long) a, d ? (double) a / d : 0.0);
    CHECK(accepted_total > 0, "the echo layer's drafts are accepted sometimes");
    /* each draft is one more token computed, each accepted one a token the
     * next step need not compute: exactly */
    CHECK(computed == ref_computed + d - a, "tokens computed: %llu, expected %llu + %llu - %llu",
          (unsigned long long) computed, (unsigned long long) ref_computed,
          (unsigned long long) d, (unsigned long long) a);
    glm_model_free(m);
    while (n_keep > 0) {
        free(keep[--n_keep]);
    }

    /* a checkpoint without the layer is refused by name */
    {
        glm_model *v = glm_model_load("t/fixtures/glm45v-tiny", be, &err);
        if (v != NULL) {
            CHECK(glm_model_enable_mtp(v, &err) != 0 && strstr(err.msg, "no MTP layer") != NULL,
                  "GLM-4.5V: no MTP layer, said so (%s)", err.msg);
            glm_model_free(v);
        }
    }
    be->destroy(be);
    printf("mtp: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
