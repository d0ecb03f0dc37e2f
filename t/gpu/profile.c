/*
 * profile.c: `make gpu-profile`, what one step of the CUDA backend asks of
 * the GPU, counted exactly in the CPU emulation (t/gpu/emu,
 * glm_emu_profile.h).  Issue 14 point 6: the baseline its later points
 * improve; nothing here is tuned to the targets.
 *
 *   profile DIR [--context N] [--prefill N]
 *
 * DIR is a GLM-4.5-Air-shaped checkpoint (t/gpu/make_profile_model.py).
 * Three steps, each run once to warm up (weights on the device, scratch
 * grown) and then once counted:
 *   decode batch=1     one sequence, one token at position --context
 *   decode batch=64    64 sequences, one token each at position --context
 *   prefill batch=P    one sequence's first --prefill tokens, logits of the last
 * The KV cache is not filled first: attention reads whatever the pool holds
 * (zeros), which changes no count.
 *
 * One line per step:
 *   PROFILE phase=<decode|prefill> batch=<b> launches_per_layer=<x>
 *           host_syncs=<y> step_allocs=<z> weight_bytes_ratio=<r>
 *           host_launches=<h> graph=<replayed|eager>
 * and a PROFILE-DETAIL line with the totals behind them.  A decode step
 * runs as the engine runs it: from a CUDA graph where the backend could
 * capture one (kernels/backend_cuda.cu, "decode graphs"; the counted pass
 * is then a replay, whose kernels count as launches and which costs the
 * host one launch plus the copy of the step's inputs), eagerly where not
 * (a MoE op that still waits on the host); a PROFILE-EAGER line gives the
 * same step with graphs off.
 * - host_launches: kernels and matmuls the host launched one by one, plus
 *   graph launches (glm_emu_profile.h).
 * - launches_per_layer: (launches of the step - launches outside the
 *   layers) / layers; outside = the embedding, the logit rows' gather, the
 *   final norm, lm_head and the sampling op, counted by running those ops
 *   alone with the step's shapes.
 * - the step is the scheduler's: the forward leaves the logits on the
 *   device and the sampling op (temperature 1, top_p 0.9) brings back a
 *   token per row; d2h_copies/d2h_bytes count what crosses back to the
 *   host (issue 14.3: only the sampled ids and their logprobs).
 * - weight_bytes_ratio: weight bytes the step's kernels read (each launch's
 *   footprint in the weight buffers, glm_emu_profile.h) over the bytes the
 *   step needs, in the checkpoint's dtypes, each tensor once: the embedding
 *   rows of its ids, every dense tensor, lm_head when logits are wanted,
 *   and in each MoE layer the experts its tokens are routed to.  The routing
 *   is computed here from the router's input (the moe op is wrapped),
 *   independently of the backend.  At batch 1 this is the weight bytes
 *   read per token over the model's active bytes per token.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/backend_cuda.h"
#include "glm_emu_profile.h"
#include "model/model.h"

#define BLOCK 16

typedef struct {
    glm_model *m;
    glm_backend *be;
    void (*moe)(glm_backend *be, void *out, const void *x, int rows,
                const glm_moe_weights *w);
    unsigned char *routed;      /* [layers][experts]: routed to in this step */
    int moe_calls;
    int record;                 /* prof_moe reads the router's input (eager steps only:
                                   a graph capture may not copy to the host) */
} prof_state;

static prof_state P;

static void
die(const char *what)
{
    fprintf(stderr, "profile: %s\n", what);
    exit(2);
}

static void *
xcalloc(size_t n, size_t s)
{
    void *p = calloc(n ? n : 1, s);

    if (p == NULL) {
        die("out of memory");
    }
    return p;
}

/* the layer whose moe weights these are */
static int
moe_layer(const glm_moe_weights *w)
{
    int l;

    for (l = 0; l < P.m->cfg.num_layers; l++) {
        if (&P.m->layers[l].moe == w) {
            return l;
        }
    }
    die("moe op called with weights of no layer");
    return -1;
}

/*
 * The moe op, wrapped: the experts each row is routed to (sigmoid of the
 * router logits plus the correction bias, top-k: MODEL.md 3.4 with one
 * group, as GLM-4.5-Air), computed on the host with counting paused, then
 * the backend's own op.
 */
static void
prof_moe(glm_backend *be, void *out, const void *x, int rows, const glm_moe_weights *w)
{
    int E = w->n_experts, H = w->hidden, K = w->top_k, l = moe_layer(w), r, e, k;
    float *hx, *router, *bias, *score;

    if (!P.record) {
        P.moe(be, out, x, rows, w);
        return;
    }
    hx = xcalloc((size_t) rows * H, sizeof(float));
    router = xcalloc((size_t) E * H, sizeof(float));
    bias = xcalloc((size_t) E, sizeof(float));
    score = xcalloc((size_t) E, sizeof(float));
    if (w->n_group != 1 || w->topk_group != 1) {
        die("the profile routes one expert group (GLM-4.5-Air); this config has more");
    }
    glm_emu_pause(1);
    be->download_act(be, hx, x, (size_t) rows * H);
    glm_emu_pause(0);
    glm_tensor_to_f32(w->router, 0, (int64_t) E * H, router);
    glm_tensor_to_f32(w->correction_bias, 0, E, bias);
    for (r = 0; r < rows; r++) {
        for (e = 0; e < E; e++) {
            double acc = 0.0;
            int i;
            for (i = 0; i < H; i++) {
                acc += (double) hx[(size_t) r * H + i] * router[(size_t) e * H + i];
            }
            score[e] = 1.0f / (1.0f + expf(-(float) acc)) + bias[e];
        }
        for (k = 0; k < K; k++) {
            int best = -1;
            for (e = 0; e < E; e++) {
                if (score[e] != -INFINITY && (best < 0 || score[e] > score[best])) {
                    best = e;
                }
            }
            P.routed[(size_t) l * E + best] = 1;
            score[best] = -INFINITY;
        }
    }
    free(hx);
    free(router);
    free(bias);
    free(score);
    P.moe_calls++;
    P.moe(be, out, x, rows, w);
}

static double
tbytes(const glm_tensor *t)
{
    return t != NULL ? (double) t->nbytes : 0.0;
}

/* bytes of weights the step needs (see the top of the file) */
static double
needed_bytes(const int32_t *ids, int n, int n_logits, int *experts_routed)
{
    const glm_config *c = &P.m->cfg;
    double b = 0.0;
    int i, j, l, e;

    for (i = 0; i < n; i++) {
        for (j = 0; j < i && ids[j] != ids[i]; j++) {
        }
        if (j == i) {
            b += tbytes(P.m->embed) / c->vocab_size;
        }
    }
    *experts_routed = 0;
    for (l = 0; l < c->num_layers; l++) {
        const glm_layer *L = &P.m->layers[l];
        const glm_tensor *dense[] = { L->input_norm, L->post_attn_norm, L->wq, L->bq, L->wk,
                                      L->bk, L->wv, L->bv, L->wo, L->q_norm, L->k_norm,
                                      L->gate, L->up, L->down };
        for (i = 0; i < (int) (sizeof(dense) / sizeof(dense[0])); i++) {
            b += tbytes(dense[i]);
        }
        if (!L->is_moe) {
            continue;
        }
        b += tbytes(L->moe.router) + tbytes(L->moe.correction_bias);
        for (e = 0; e < L->moe.n_experts; e++) {
            if (P.routed[(size_t) l * L->moe.n_experts + e]) {
                b += tbytes(L->moe.gate[e]) + tbytes(L->moe.up[e]) + tbytes(L->moe.down[e]);
                (*experts_routed)++;
            }
        }
    }
    b += tbytes(P.m->final_norm);
    if (n_logits > 0) {
        b += tbytes(P.m->lm_head);
    }
    return b;
}

/* launches of the ops outside the layers (embed, the logit rows' gather,
 * final norm, lm_head, sampling) alone */
static uint64_t
outside_launches(const int32_t *ids, int n, int n_logits, const int32_t *rows,
    const glm_sample_row *smp, glm_sample_out *out)
{
    const glm_config *c = &P.m->cfg;
    glm_backend *be = P.be;
    void *x = be->alloc(be, (size_t) n * c->hidden_size * be->act_size);
    void *xr = be->alloc(be, (size_t) (n_logits ? n_logits : 1) * c->hidden_size * be->act_size);
    float *lg = be->alloc(be, (size_t) (n_logits ? n_logits : 1) * c->vocab_size
                          * sizeof(float));
    glm_emu_counts k;
    int pass;

    for (pass = 0; pass < 2; pass++) {      /* the first warms up */
        glm_emu_counts_reset();
        be->embed(be, x, ids, n, P.m->embed);
        if (n_logits > 0) {
            be->gather_rows(be, xr, x, rows, n_logits, c->hidden_size);
            be->rmsnorm(be, xr, xr, P.m->final_norm, n_logits, c->hidden_size,
                        c->rms_norm_eps);
            be->matmul_f32(be, lg, xr, n_logits, P.m->lm_head, NULL);
            be->sample(be, out, lg, n_logits, c->vocab_size, smp);
        }
    }
    glm_emu_counts_get(&k);
    be->free(be, x);
    be->free(be, xr);
    be->free(be, lg);
    return k.launches;
}

/* one step: n_seqs sequences; decode puts one token each at position ctx,
 * prefill gives sequence 0 positions 0..n_tok-1 */
static void
profile_step(glm_kv_pool *kv, const char *phase, int n_seqs, int n_tok, int ctx)
{
    const glm_config *c = &P.m->cfg;
    int decode = strcmp(phase, "decode") == 0, i, s, pass, routed = 0;
    int len = decode ? ctx + 1 : n_tok, per = (len + BLOCK - 1) / BLOCK;
    int32_t *ids = xcalloc((size_t) n_tok, sizeof(int32_t));
    int32_t *pos3 = xcalloc((size_t) n_tok * 3, sizeof(int32_t));
    int32_t *seq = xcalloc((size_t) n_tok, sizeof(int32_t));
    int32_t *kpos = xcalloc((size_t) n_tok, sizeof(int32_t));
    int32_t *blocks = xcalloc((size_t) n_seqs * per, sizeof(int32_t));
    int32_t *rows = xcalloc((size_t) n_tok, sizeof(int32_t));
    glm_seq_blocks *sb = xcalloc((size_t) n_seqs, sizeof(glm_seq_blocks));
    glm_sample_row *smp;
    glm_sample_out *out;
    glm_batch b;
    glm_emu_counts k;
    uint64_t outside;
    double need, ratio, per_layer;
    int n_logits = decode ? n_tok : 1;
    long replays;
    uint64_t rnd = 0x9E3779B97F4A7C15ull * (uint64_t) (n_seqs + n_tok);

    if ((size_t) n_seqs * per > (size_t) kv->n_blocks) {
        die("the KV pool is too small for this step");
    }
    for (s = 0; s < n_seqs; s++) {
        for (i = 0; i < per; i++) {
            blocks[(size_t) s * per + i] = s * per + i;
        }
        sb[s].blocks = blocks + (size_t) s * per;
        sb[s].n_blocks = per;
    }
    for (i = 0; i < n_tok; i++) {
        rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t) ((rnd >> 33) % (uint64_t) (c->vocab_size - 16));
        seq[i] = decode ? i : 0;
        kpos[i] = decode ? ctx : i;
        pos3[3 * i] = pos3[3 * i + 1] = pos3[3 * i + 2] = kpos[i];
        rows[i] = decode ? i : n_tok - 1;
    }
    memset(&b, 0, sizeof(b));
    memset(&b, 0, sizeof(b));
    b.n_tokens = n_tok;
    b.ids = ids;
    b.pos3 = pos3;
    b.attn.n_tokens = n_tok;
    b.attn.seq = seq;
    b.attn.kv_pos = kpos;
    b.attn.seqs = sb;
    b.attn.n_seqs = n_seqs;
    b.logit_rows = rows;
    b.n_logits = n_logits;
    /* the scheduler's step: the forward leaves the logits on the device and
     * the sampling op returns a token per row (temperature 1, the API's
     * default, with a top_p: the threshold search runs) */
    smp = xcalloc((size_t) n_logits, sizeof(*smp));
    out = xcalloc((size_t) n_logits, sizeof(*out));
    for (i = 0; i < n_logits; i++) {
        smp[i].logit_row = i;
        smp[i].temperature = 1.0f;
        smp[i].top_p = 0.9f;
        smp[i].repetition_penalty = 1.0f;
        smp[i].seed = 1000u + (uint64_t) i;
        smp[i].forced = -1;
    }

    outside = outside_launches(ids, n_tok, n_logits, rows, smp, out);
    if (decode) {
        /* the same step with graphs off: what each replay saves the host */
        glm_backend_cuda_set_graphs(P.be, 0);
        P.record = 1;
        for (pass = 0; pass < 2; pass++) {
            memset(P.routed, 0, (size_t) c->num_layers * c->n_routed_experts);
            P.moe_calls = 0;
            glm_emu_counts_reset();
            glm_model_forward(P.m, kv, &b, NULL);
            P.be->sample(P.be, out, P.m->logits, n_logits, c->vocab_size, smp);
        }
        glm_emu_counts_get(&k);
        glm_backend_cuda_set_graphs(P.be, 1);
        /* the graph passes below cannot read activations on the host; the
         * routing is a function of the step's inputs, so the eager pass's
         * is this step's */
        P.record = 0;
        printf("PROFILE-EAGER phase=%s batch=%d launches_per_layer=%.1f host_launches=%llu"
               " host_syncs=%llu step_allocs=%llu\n", phase, n_tok,
               (double) (k.launches - outside) / c->num_layers,
               (unsigned long long) k.host_launches, (unsigned long long) k.host_syncs,
               (unsigned long long) k.allocs);
    }
    replays = glm_backend_cuda_graph_replays(P.be);
    if (!decode) {
        P.record = 1;
    }
    for (pass = 0; pass < 2; pass++) {      /* the first warms up (and captures) */
        if (P.record) {
            memset(P.routed, 0, (size_t) c->num_layers * c->n_routed_experts);
            P.moe_calls = 0;
        }
        glm_emu_counts_reset();
        glm_model_forward(P.m, kv, &b, NULL);
        P.be->sample(P.be, out, P.m->logits, n_logits, c->vocab_size, smp);
    }
    glm_emu_counts_get(&k);
    replays = glm_backend_cuda_graph_replays(P.be) - replays;
    need = needed_bytes(ids, n_tok, n_logits, &routed);
    per_layer = (double) (k.launches - outside) / c->num_layers;
    ratio = need > 0 ? (double) k.weight_bytes / need : 0.0;
    printf("PROFILE phase=%s batch=%d launches_per_layer=%.1f host_syncs=%llu"
           " step_allocs=%llu weight_bytes_ratio=%.3f host_launches=%llu graph=%s"
           " d2h_copies=%llu d2h_bytes=%llu\n", phase, n_tok, per_layer,
           (unsigned long long) k.host_syncs, (unsigned long long) k.allocs, ratio,
           (unsigned long long) k.host_launches, replays > 0 ? "replayed" : "eager",
           (unsigned long long) k.d2h_copies, (unsigned long long) k.d2h_bytes);
    printf("PROFILE-DETAIL phase=%s batch=%d context=%d layers=%d launches=%llu"
           " outside_layers=%llu cublaslt=%llu copies=%llu memsets=%llu frees=%llu"
           " weight_bytes_read=%llu weight_bytes_needed=%.0f experts_routed_per_moe_layer=%.1f"
           " exact=%s\n", phase, n_tok, decode ? ctx : 0, c->num_layers,
           (unsigned long long) k.launches, (unsigned long long) outside,
           (unsigned long long) k.gemm_launches, (unsigned long long) k.copies,
           (unsigned long long) k.memsets, (unsigned long long) k.frees,
           (unsigned long long) k.weight_bytes, need,
           P.moe_calls ? (double) routed / P.moe_calls : 0.0,
           k.weights_exact ? "yes" : "no (loads not hooked: only cuBLASLt reads counted)");
    fflush(stdout);
    free(ids);
    free(pos3);
    free(seq);
    free(kpos);
    free(blocks);
    free(rows);
    free(sb);
    free(smp);
    free(out);
}

int
main(int argc, char **argv)
{
    int ctx = 64, prefill = 16, batch = 64, i, per;
    glm_kv_pool kv;
    glm_err err;

    if (argc < 2) {
        fprintf(stderr, "usage: profile DIR [--context N] [--prefill N]\n");
        return 2;
    }
    for (i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--context") == 0) {
            ctx = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--prefill") == 0) {
            prefill = atoi(argv[i + 1]);
        } else {
            die("unknown option");
        }
    }
    if (ctx < 0 || prefill < 1) {
        die("--context must be >= 0 and --prefill >= 1");
    }
    P.be = glm_backend_cuda_create(0, &err);
    if (P.be == NULL) {
        fprintf(stderr, "profile: %s\n", err.msg);
        return 2;
    }
    P.m = glm_model_load(argv[1], P.be, &err);
    if (P.m == NULL) {
        fprintf(stderr, "profile: %s: %s\n", argv[1], err.msg);
        return 2;
    }
    glm_emu_weights_mark(1);
    if (glm_backend_cuda_upload_weights(P.be, P.m->ck, &err) != 0) {
        fprintf(stderr, "profile: %s\n", err.msg);
        return 2;
    }
    glm_emu_weights_mark(0);
    P.routed = xcalloc((size_t) P.m->cfg.num_layers * P.m->cfg.n_routed_experts, 1);
    P.moe = P.be->moe;
    P.be->moe = prof_moe;
    per = (ctx + 1 + BLOCK - 1) / BLOCK;
    per = per * batch > (prefill + BLOCK - 1) / BLOCK ? per * batch
                                                      : (prefill + BLOCK - 1) / BLOCK;
    if (glm_kv_pool_init(&kv, P.m, per, BLOCK, &err) != 0) {
        fprintf(stderr, "profile: %s\n", err.msg);
        return 2;
    }
    printf("PROFILE-MODEL %s hidden=%d heads=%d/%d head_dim=%d experts=%d top_k=%d"
           " moe_inter=%d vocab=%d layers=%d (first %d dense)\n", argv[1],
           P.m->cfg.hidden_size, P.m->cfg.num_heads, P.m->cfg.num_kv_heads,
           P.m->cfg.head_dim, P.m->cfg.n_routed_experts, P.m->cfg.num_experts_per_tok,
           P.m->cfg.moe_intermediate_size, P.m->cfg.vocab_size, P.m->cfg.num_layers,
           P.m->cfg.first_k_dense_replace);
    fflush(stdout);
    profile_step(&kv, "decode", 1, 1, ctx);
    profile_step(&kv, "decode", batch, batch, ctx);
    profile_step(&kv, "prefill", 1, prefill, ctx);
    glm_kv_pool_free(&kv, P.m);
    glm_backend_cuda_release_weights(P.be);
    glm_model_free(P.m);
    P.be->destroy(P.be);
    free(P.routed);
    return 0;
}
