/*
 * tp_emu_check.c: the CUDA backend's tensor-parallel ranks, run in the CPU
 * emulation of CUDA (t/gpu/emu), against the one-rank CPU oracle.
 *
 * Why: NCCL cannot put two ranks on one GPU, so without several GPUs the
 * CUDA ranks are proven here: N emulated devices (GLM_EMU_DEVICES, set to 4
 * unless given), rank r's backend on device r with its own stream, each
 * rank thread launching kernels at once (the emulator serialises them
 * under one lock and checks that each launch's stream belongs to the
 * thread's current device), the shared-memory communicator standing in for
 * NCCL (t/gpu/emu/comm_emu.c: BF16 activations summed in fp32 and rounded
 * once), each rank uploading only its own shard (glm_model_tensors), and
 * the lm_head slices gathered from device memory.  Each emulated device
 * has 2 GiB (GLM_EMU_DEVICE_BYTES) unless the environment says otherwise.
 *
 * For each fixture, ranks N and expert parallel off and on, the fixture's
 * prompts of at most SHORT tokens (two of one token and one of 13) run on
 * the CPU oracle alone: every position's logits, then GREEDY greedy
 * decode steps.  The N CUDA ranks then prefill the same prompt and decode
 * the oracle's tokens (teacher forced, so every compared row has the same
 * context), and each row's max |diff| is taken over the oracle's logit
 * scale (its max |logit|).  Tolerances (why): the CUDA backend's
 * activations are BF16, one rounding per op through every layer (the
 * split adds one BF16 rounding of each block's summed partials), which
 * t/gpu/test_ops.c bounds at TOL_LOGITS = 3e-2 of the scale for a whole
 * model on one-token prompts (observed 0.5-1e-2).  Here every row of the
 * one-token prompts is held to that, and so is the median row of all; the
 * largest row only loosely (TOL_ROW_WORST): on these random tiny MoE
 * models a BF16 rounding can flip a near-tied expert choice and move a
 * whole row of a longer prompt, at one rank as at N (kernels/README.md),
 * while a fault in the split (a missing or doubled all-reduce, a wrong
 * shard or scale) moves every row by the scale itself.  The greedy
 * agreement (the ranks' argmax against the oracle's token at each decode
 * step) is printed.
 *
 * One line per run:
 *   TP backend=cuda-emu ranks=<N> ep=<0|1> fixture=<name> max_abs_logit_diff=<d>
 *      rel=<d/scale> greedy=<k>/<n> rows=<n> row_rel_median=<m> row_rel_p90=<p>
 *      one_token_rel=<o> tol=<t> worst_tol=<w> ok|FAIL
 * where the row figures are each compared logits row's max |diff| over the
 * scale: the distribution, not only its worst row.  Before the run, what
 * each rank holds on its emulated GPU:
 *   TP-WEIGHTS backend=cuda-emu ranks=<N> ep=<0|1> fixture=<name>
 *      rank_bytes=<b0,b1,...> shard_bytes=<s0,...> whole=<w> ok|FAIL
 * ok when each rank's device weight bytes are exactly the bytes of the
 * tensors its model bound (glm_model_tensors, with their scales, each once)
 * and less than the whole model's: a rank uploads its shard and no more.
 * Then serve's start-up memory plan (glm_serve_plan) over the group, which
 * prints the per-GPU plan as `plan --tensor-parallel-size N` does and a line
 * per rank on stderr:
 *   TP-SERVE-PLAN backend=cuda-emu ranks=<N> ep=<0|1> fixture=<name>
 *      kv_blocks=<b> ok|FAIL
 *
 * A vision fixture also encodes three images and a video of random pixels
 * with the tower data parallel over the CUDA ranks (each rank thread its
 * share of the images on its own GPU) against the CPU oracle's one encode,
 * within test_ops.c's vision tolerance (3e-2 of the output's scale):
 *   TP-VISION backend=cuda-emu ranks=<N> fixture=<name> grids=4 max_abs_diff=<d>
 *      rel=<d/scale> tol=<t> ok|FAIL
 *
 * Usage: tp_emu_check [--quick] [--oracle-cuda] [--ranks 2,4] FIXTURE_DIR...
 *   --quick: the first one-token prompt and 4 greedy steps (make test).
 *   --oracle-cuda: one CUDA rank as the reference instead of the CPU, which
 *   isolates what the split adds (the all-reduce's BF16 rounding of the
 *   summed partials) from what BF16 activations cost at one rank.
 * Exit 1 on any FAIL.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "backend/backend.h"
#include "backend/backend_cuda.h"
#include "backend/backend_select.h"
#include "model/model.h"
#include "model/sampling.h"
#include "model/session.h"
#include "parallel/ranks.h"
#include "server/server.h"

#define TOL_LOGITS 3e-2     /* t/gpu/test_ops.c's whole-model tolerance */
#define TOL_ROW_WORST 0.1   /* the largest row, over the logit scale: a routing
                               flip moves a row by up to ~0.09 of the scale at
                               one rank on longer prompts (kernels/README.md),
                               a fault moves every row by about the scale */
#define SHORT      13       /* the longest prompt run */
#define MAX_PROMPTS 4
#define GREEDY     8

static int quick, oracle_cuda;

typedef struct {
    int32_t ids[SHORT];
    int     n;
} prompt;

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;

    return x < y ? -1 : x > y;
}

/* The fixture's prompts of at most SHORT tokens (reference.json), in order;
 * --quick: the first one. */
static int
load_prompts(const char *dir, prompt *p, int max)
{
    char path[4096], ebuf[256];
    const char *key[] = { "prompts", NULL }, *ids_key[] = { "ids", NULL };
    glm_err err;
    char *text;
    yajl_val ref, arr;
    size_t i, k;
    int n = 0;

    snprintf(path, sizeof(path), "%s/reference.json", dir);
    text = glm_read_file(path, NULL, &err);
    ref = text ? yajl_tree_parse(text, ebuf, sizeof(ebuf)) : NULL;
    free(text);
    arr = ref ? yajl_tree_get(ref, key, yajl_t_array) : NULL;
    for (i = 0; arr != NULL && i < arr->u.array.len && n < max && !(quick && n == 1); i++) {
        yajl_val a = yajl_tree_get(arr->u.array.values[i], ids_key, yajl_t_array);
        if (a == NULL || a->u.array.len == 0 || a->u.array.len > SHORT) {
            continue;
        }
        for (k = 0; k < a->u.array.len; k++) {
            p[n].ids[k] = (int32_t) YAJL_GET_INTEGER(a->u.array.values[k]);
        }
        p[n++].n = (int) a->u.array.len;
    }
    yajl_tree_free(ref);
    return n;
}

/* A prompt's logits at every position ([n][V]), then `steps` decode steps'
 * ([steps][V]); picks[s] the argmax of the row that chooses token s after
 * the prompt.  forced NULL: each step feeds the model's own pick (greedy);
 * else forced[s] (teacher forcing: every run sees the oracle's context). */
static int
run(glm_model *m, const prompt *p, int steps, const int32_t *forced, float *logits,
    int32_t *picks, glm_err *err)
{
    glm_session s;
    int V = m->cfg.vocab_size, i;

    if (glm_session_init(&s, m, p->n + steps + 1, 4, err) != 0) {
        return -1;
    }
    if (glm_session_feed(&s, p->ids, p->n, 0, logits, 1, err) != 0) {
        glm_session_free(&s);
        return -1;
    }
    for (i = 0; i < steps; i++) {
        float *l = logits + (size_t) (p->n + i) * V;
        int32_t next;
        picks[i] = glm_argmax(l - V, V);
        next = forced != NULL ? forced[i] : picks[i];
        if (glm_session_feed(&s, &next, 1, 0, l, 0, err) != 0) {
            glm_session_free(&s);
            return -1;
        }
    }
    glm_session_free(&s);
    return 0;
}

typedef struct {
    float   *logits;        /* [n + steps][V] per prompt */
    int32_t  ids[GREEDY];
} result;

#define TOL_VISION 3e-2     /* t/gpu/test_ops.c's: max |diff| over max |cpu| */

/* Three images and a two-pair video, in patches (multiples of the merge) */
static const glm_grid vision_grids[] = { { 1, 4, 4 }, { 1, 2, 6 }, { 2, 4, 2 }, { 1, 2, 2 } };
#define N_VISION_GRIDS 4

static int
check_vision(const char *dir, const char *name, const int *ranks, int n_ranks)
{
    glm_backend *cpu = glm_backend_cpu_create(1);
    glm_err err;
    glm_model *m = glm_model_load(dir, cpu, &err);
    const glm_config *c;
    float *px, *want, *got;
    int64_t patches = 0, rows = 0, cols, k, out_floats;
    int i, ri, bad = 0;
    unsigned seed = 12345;

    if (m == NULL || m->vision == NULL) {
        glm_model_free(m);
        cpu->destroy(cpu);
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
    if (glm_vision_encode(m->vision, cpu, px, vision_grids, N_VISION_GRIDS, want, &err) != 0) {
        printf("TP-VISION backend=cuda-emu fixture=%s oracle: %s FAIL\n", name, err.msg);
        bad = 1;
    }
    glm_model_free(m);
    cpu->destroy(cpu);
    for (ri = 0; ri < n_ranks && !bad; ri++) {
        glm_parallel p = { ranks[ri], 0, 1 };
        glm_backend *be = glm_backend_create_named("cuda", 1, 0, &err);
        double d = 0.0, scale = 0.0;
        int ok;

        m = be ? glm_model_load_parallel(dir, be, &p, 1, &err) : NULL;
        memset(got, 0xff, (size_t) out_floats * sizeof(float));   /* NaN */
        if (m == NULL
            || glm_model_encode_images(m, px, vision_grids, N_VISION_GRIDS, got, &err) != 0)
        {
            printf("TP-VISION backend=cuda-emu ranks=%d fixture=%s error: %s FAIL\n",
                   p.tensor_parallel, name, err.msg);
            bad = 1;
        } else {
            for (k = 0; k < out_floats; k++) {
                double e = fabs((double) got[k] - (double) want[k]);
                d = e > d || isnan(e) ? e : d;
                scale = fmax(scale, fabs((double) want[k]));
            }
            ok = d <= TOL_VISION * scale;
            printf("TP-VISION backend=cuda-emu ranks=%d fixture=%s grids=%d max_abs_diff=%.3g"
                   " rel=%.3g tol=%g %s\n", p.tensor_parallel, name, N_VISION_GRIDS, d,
                   scale > 0 ? d / scale : d, TOL_VISION, ok ? "ok" : "FAIL");
            fflush(stdout);
            bad |= !ok;
        }
        glm_model_free(m);
        if (be) {
            be->destroy(be);
        }
    }
    free(px);
    free(want);
    free(got);
    return bad;
}

/* The bytes of ts[0..n) and of the scales they name, each tensor once. */
static size_t
distinct_bytes(glm_tensor **ts, size_t n)
{
    const glm_tensor **seen = calloc(2 * n + 1, sizeof(*seen));
    size_t i, k, n_seen = 0, bytes = 0;
    int pass;

    for (i = 0; seen != NULL && i < n; i++) {
        for (pass = 0; pass < 2; pass++) {
            const glm_tensor *t = pass == 0 ? ts[i] : ts[i]->scale;
            if (t == NULL) {
                continue;
            }
            for (k = 0; k < n_seen && seen[k] != t; k++) {
            }
            if (k == n_seen) {
                seen[n_seen++] = t;
                bytes += t->nbytes;
            }
        }
    }
    free(seen);
    return bytes;
}

/* Each rank's device weights are its own tensors' bytes, and less than the
 * whole model's; one TP-WEIGHTS line. */
static int
check_weights(glm_model *m, const char *name, int ep, size_t whole)
{
    int N = glm_model_ranks(m), r, ok = 1;
    char got[256] = "", want[256] = "";
    size_t off_g = 0, off_w = 0;

    for (r = 0; r < N; r++) {
        glm_model *mr = glm_model_rank(m, r);
        size_t n = glm_model_tensors(mr, NULL, 0), w, fr, tot, shard;
        glm_tensor **ts = malloc((n ? n : 1) * sizeof(*ts));

        glm_model_tensors(mr, ts, n);
        shard = distinct_bytes(ts, n);
        free(ts);
        glm_backend_cuda_memory(mr->be, &w, &fr, &tot);
        ok &= w == shard && w < whole;
        off_g += (size_t) snprintf(got + off_g, sizeof(got) - off_g, "%s%zu", r ? "," : "", w);
        off_w += (size_t) snprintf(want + off_w, sizeof(want) - off_w, "%s%zu", r ? "," : "",
                                   shard);
        off_g = off_g < sizeof(got) ? off_g : sizeof(got) - 1;
        off_w = off_w < sizeof(want) ? off_w : sizeof(want) - 1;
    }
    printf("TP-WEIGHTS backend=cuda-emu ranks=%d ep=%d fixture=%s rank_bytes=%s shard_bytes=%s"
           " whole=%zu %s\n", N, ep, name, got, want, whole, ok ? "ok" : "FAIL");
    return ok;
}

/* serve's start-up plan over the group: it must size a KV pool per rank. */
static int
check_serve_plan(glm_model *m, glm_backend *be, const char *dir, const char *name,
    const glm_parallel *par)
{
    glm_server *srv = calloc(1, sizeof(*srv));
    glm_err err;
    int rc, ok;

    if (srv == NULL) {
        return 0;
    }
    srv->m = m;
    srv->be = be;
    srv->o.model_dir = dir;
    srv->o.max_model_len = m->cfg.max_position_embeddings;
    srv->o.max_num_seqs = 4;
    srv->o.max_num_batched_tokens = 256;
    srv->o.block_size = 16;
    srv->o.par = *par;
    rc = glm_serve_plan(srv, &err);
    ok = rc == 0 && srv->o.kv_blocks > 0;
    printf("TP-SERVE-PLAN backend=cuda-emu ranks=%d ep=%d fixture=%s kv_blocks=%d%s%s %s\n",
           par->tensor_parallel, par->expert_parallel, name, srv->o.kv_blocks,
           rc != 0 ? " error: " : "", rc != 0 ? err.msg : "", ok ? "ok" : "FAIL");
    free(srv);
    return ok;
}

static int
check_fixture(const char *dir, const int *ranks, int n_ranks)
{
    const char *name = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    int steps = quick ? 4 : GREEDY, np, pi, ri, ep, V, bad = 0;
    prompt prompts[MAX_PROMPTS];
    result ref[MAX_PROMPTS];
    glm_backend *cpu;
    glm_model *m;
    glm_err err;
    size_t whole;

    np = load_prompts(dir, prompts, MAX_PROMPTS);
    if (np == 0) {
        printf("TP backend=cuda-emu fixture=%s error: no prompt of at most %d tokens FAIL\n",
               name, SHORT);
        return 1;
    }
    cpu = oracle_cuda ? glm_backend_create_named("cuda", 1, 0, &err) : glm_backend_cpu_create(1);
    m = cpu ? glm_model_load(dir, cpu, &err) : NULL;
    if (m != NULL && glm_backend_prepare(cpu, m->ck, &err) != 0) {
        glm_model_free(m);
        m = NULL;
    }
    if (m == NULL) {
        printf("TP backend=cuda-emu fixture=%s error: %s FAIL\n", name,
               cpu ? err.msg : "no CPU backend");
        if (cpu) {
            cpu->destroy(cpu);
        }
        return 1;
    }
    V = m->cfg.vocab_size;
    {
        size_t n = glm_model_tensors(m, NULL, 0);
        glm_tensor **ts = malloc((n ? n : 1) * sizeof(*ts));
        glm_model_tensors(m, ts, n);
        whole = distinct_bytes(ts, n);
        free(ts);
    }
    memset(ref, 0, sizeof(ref));
    for (pi = 0; pi < np && !bad; pi++) {
        ref[pi].logits = malloc((size_t) (prompts[pi].n + steps) * V * sizeof(float));
        if (ref[pi].logits == NULL
            || run(m, &prompts[pi], steps, NULL, ref[pi].logits, ref[pi].ids, &err) != 0)
        {
            printf("TP backend=cuda-emu fixture=%s oracle error: %s FAIL\n", name,
                   ref[pi].logits ? err.msg : "out of memory");
            bad = 1;
        }
    }
    glm_model_free(m);
    cpu->destroy(cpu);

    for (ri = 0; ri < n_ranks && !bad; ri++) {
        for (ep = 0; ep <= 1; ep++) {
            glm_parallel par = { ranks[ri], ep, 1 };
            glm_backend *be = glm_backend_create_named("cuda", 1, 0, &err);
            double d = 0.0, d_short = 0.0, scale = 0.0, *row_rel = NULL;
            int agree = 0, total = 0, rows = 0, ok = 1;

            m = be ? glm_model_load_parallel(dir, be, &par, 1, &err) : NULL;
            /* what serve does next: nothing for a group (each rank uploaded
             * its shard at load), proven by the call succeeding */
            if (m != NULL && glm_backend_prepare(be, m->ck, &err) != 0) {
                glm_model_free(m);
                m = NULL;
            }
            if (m == NULL) {
                printf("TP backend=cuda-emu ranks=%d ep=%d fixture=%s error: %s FAIL\n",
                       par.tensor_parallel, ep, name, err.msg);
                if (be) {
                    be->destroy(be);
                }
                bad = 1;
                continue;
            }
            if (!check_weights(m, name, ep, whole) || !check_serve_plan(m, be, dir, name, &par)) {
                bad = 1;
            }
            for (pi = 0; pi < np; pi++) {
                rows += prompts[pi].n + steps;
            }
            row_rel = calloc((size_t) rows, sizeof(double));
            rows = 0;
            for (pi = 0; pi < np && ok; pi++) {
                int n = prompts[pi].n, s, r;
                float *got = malloc((size_t) (n + steps) * V * sizeof(float));
                const float *want = ref[pi].logits;
                int32_t picks[GREEDY];

                if (got == NULL
                    || run(m, &prompts[pi], steps, ref[pi].ids, got, picks, &err) != 0)
                {
                    printf("TP backend=cuda-emu ranks=%d ep=%d fixture=%s error: %s FAIL\n",
                           par.tensor_parallel, ep, name, got ? err.msg : "out of memory");
                    free(got);
                    ok = 0;
                    break;
                }
                for (r = 0; r < n + steps; r++) {
                    for (s = 0; s < V; s++) {
                        scale = fmax(scale, fabs((double) want[(size_t) r * V + s]));
                    }
                }
                /* every row: both runs saw the same context (teacher forced) */
                for (r = 0; r < n + steps; r++) {
                    double rd = 0.0;
                    for (s = 0; s < V; s++) {
                        double e = fabs((double) got[(size_t) r * V + s]
                                        - (double) want[(size_t) r * V + s]);
                        rd = e > rd || isnan(e) ? e : rd;
                    }
                    row_rel[rows++] = rd;
                    d = rd > d || isnan(rd) ? rd : d;
                    if (n == 1) {
                        d_short = rd > d_short || isnan(rd) ? rd : d_short;
                    }
                }
                for (s = 0; s < steps; s++) {
                    agree += picks[s] == ref[pi].ids[s];
                }
                total += steps;
                free(got);
            }
            if (ok) {
                int i;
                double med, p90;
                for (i = 0; i < rows; i++) {
                    row_rel[i] = scale > 0 ? row_rel[i] / scale : row_rel[i];
                }
                qsort(row_rel, (size_t) rows, sizeof(double), cmp_double);
                med = rows ? row_rel[rows / 2] : 0.0;
                p90 = rows ? row_rel[(rows * 9) / 10 < rows ? (rows * 9) / 10 : rows - 1] : 0.0;
                /* the rounding error: one-token prompts' rows all within the
                 * whole-model tolerance, and the median row of all; the
                 * largest row (a flipped near-tied expert moves a whole row)
                 * loosely */
                ok = d_short <= TOL_LOGITS * scale && med <= TOL_LOGITS
                     && d <= TOL_ROW_WORST * scale;
                printf("TP backend=cuda-emu ranks=%d ep=%d fixture=%s max_abs_logit_diff=%.3g"
                       " rel=%.3g greedy=%d/%d rows=%d row_rel_median=%.3g row_rel_p90=%.3g"
                       " one_token_rel=%.3g tol=%g worst_tol=%g %s\n", par.tensor_parallel, ep,
                       name, d, scale > 0 ? d / scale : d, agree, total, rows, med, p90,
                       scale > 0 ? d_short / scale : d_short, TOL_LOGITS, TOL_ROW_WORST,
                       ok ? "ok" : "FAIL");
                fflush(stdout);
            }
            bad |= !ok;
            free(row_rel);
            glm_model_free(m);
            be->destroy(be);
        }
    }
    for (pi = 0; pi < np; pi++) {
        free(ref[pi].logits);
    }
    return bad | check_vision(dir, name, ranks, n_ranks);
}

/* More ranks than visible GPUs: a start-up error that names the count. */
static int
check_too_many(const char *dir)
{
    int n, ok;
    glm_err err;
    glm_backend *be = glm_backend_create_named("cuda", 1, 0, &err);
    glm_parallel par = { 0, 0, 1 };
    glm_model *m;
    char want[64];

    if (be == NULL) {
        printf("TP-DEVICES backend=cuda-emu error: %s FAIL\n", err.msg);
        return 1;
    }
    n = atoi(getenv("GLM_EMU_DEVICES"));     /* the emulator's visible GPUs (main sets it) */
    par.tensor_parallel = n + 1;
    m = glm_model_load_parallel(dir, be, &par, 1, &err);
    snprintf(want, sizeof(want), "(%d visible)", n);
    ok = m == NULL && strstr(err.msg, want) != NULL;
    printf("TP-DEVICES backend=cuda-emu devices=%d ranks=%d refused=\"%s\" %s\n", n, n + 1,
           m == NULL ? err.msg : "(loaded)", ok ? "ok" : "FAIL");
    glm_model_free(m);
    be->destroy(be);
    return !ok;
}

int
main(int argc, char **argv)
{
    int ranks[8] = { 2, 4 }, n_ranks = 2, i = 1, failed = 0;

    /* before the first CUDA call: the emulator reads them once; sized
     * devices, so each rank's memory lines and serve's plan show what that
     * device holds */
    setenv("GLM_EMU_DEVICES", "4", 0);
    setenv("GLM_EMU_DEVICE_BYTES", "2g", 0);
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "--oracle-cuda") == 0) {
            oracle_cuda = 1;        /* one CUDA rank as the reference: the TP part alone */
        } else if (strcmp(argv[i], "--ranks") == 0 && i + 1 < argc) {
            char *s = argv[++i], *end;
            for (n_ranks = 0; n_ranks < 8 && *s; n_ranks++) {
                ranks[n_ranks] = (int) strtol(s, &end, 10);
                if (end == s || ranks[n_ranks] < 1) {
                    fprintf(stderr, "tp_emu_check: --ranks wants numbers like 2,4\n");
                    return 2;
                }
                s = *end == ',' ? end + 1 : end;
            }
        } else {
            fprintf(stderr, "tp_emu_check: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (i >= argc) {
        fprintf(stderr, "usage: tp_emu_check [--quick] [--oracle-cuda] [--ranks 2,4]"
                " FIXTURE_DIR...\n");
        return 2;
    }
    failed |= check_too_many(argv[i]);
    for (; i < argc; i++) {
        failed |= check_fixture(argv[i], ranks, n_ranks);
    }
    return failed ? 1 : 0;
}
