/*
 * cmd_bench.c: `glm-engine bench`: the engine's own offline throughput, the
 * baseline the served numbers (glm-bench through nginx) are compared with.
 * Same scheduler, same batching limits, no HTTP, no ring: random prompts of
 * --input-len tokens, --output-len tokens each (stop tokens ignored, as the
 * served benchmark asks with ignore_eos), all submitted at once.  Prefix
 * caching is on as in `glm-engine serve` (--no-enable-prefix-caching turns
 * it off); random prompts share no block, so it only costs its hashing.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend/backend_select.h"
#include "parallel/ranks.h"
#include "server/scheduler.h"
#include "server/speculative.h"
#include "text/tokenizer.h"

typedef struct {
    int    output_len;
    long   tokens;
    int   *generated;
} glm_bench_ctx;

static int
glm_bench_on_token(void *p, glm_seq *seq, const glm_sampled *s)
{
    glm_bench_ctx *b = p;

    (void) s;
    b->tokens++;
    return ++b->generated[seq->index] >= b->output_len;
}

int glm_cmd_bench(int argc, char **argv);
int glm_cmd_bench_synthetic(int argc, char **argv);

int
glm_cmd_bench(int argc, char **argv)
{
    const char *dir = NULL, *backend = "cpu", *spec = NULL;
    long input_len = 128, output_len = 32, num_prompts = 64, max_seqs = 64;
    long budget = 2048, threads = 0, seed = 0;
    glm_backend *be = NULL;
    glm_model *m = NULL;
    glm_tokenizer *tok = NULL;
    glm_sched s;
    glm_seq **seqs = NULL;
    glm_bench_ctx ctx;
    glm_seq_params params;
    glm_rng rng;
    glm_err err;
    char path[PATH_MAX];
    int32_t *prompt = NULL;
    double t0, t1;
    int i, j, rc = 1, blocks, prefix_caching = 1, used;
    glm_parallel par = { 1, 0, 1 };
    glm_kv_cache_dtype kv_dtype = GLM_KV_CACHE_AUTO;
    char desc[256];

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--synthetic") == 0) {
            return glm_cmd_bench_synthetic(argc, argv);      /* a sweep of its own */
        }
    }
    for (i = 1; i < argc; i += 2) {
        char *end;
        long v;

        used = glm_parallel_arg(&par, argc, argv, &i);
        if (used != 0) {
            if (used < 0) return 2;
            i--;
            continue;
        }
        if (strcmp(argv[i], "--enable-prefix-caching") == 0
            || strcmp(argv[i], "--no-enable-prefix-caching") == 0)
        {
            prefix_caching = argv[i][2] == 'e';
            i--;
            continue;
        }
        if (i + 1 == argc) {
            break;
        }
        v = strtol(argv[i + 1], &end, 10);
        if (strcmp(argv[i], "--model") == 0) {
            dir = argv[i + 1];
            continue;
        }
        if (strcmp(argv[i], "--speculative-config") == 0) {
            spec = argv[i + 1];
            continue;
        }
        if (strcmp(argv[i], "--backend") == 0) {
            backend = argv[i + 1];
            continue;
        }
        if (strcmp(argv[i], "--kv-cache-dtype") == 0) {
            if (glm_kv_cache_dtype_arg(argv[i + 1], &kv_dtype) != 0) {
                return 2;
            }
            continue;
        }
        if (*end != '\0' || v < 0) {
            fprintf(stderr, "glm-engine: %s wants a non-negative integer\n", argv[i]);
            return 2;
        }
        if (strcmp(argv[i], "--input-len") == 0) input_len = v;
        else if (strcmp(argv[i], "--output-len") == 0) output_len = v;
        else if (strcmp(argv[i], "--num-prompts") == 0) num_prompts = v;
        else if (strcmp(argv[i], "--max-num-seqs") == 0) max_seqs = v;
        else if (strcmp(argv[i], "--max-num-batched-tokens") == 0) budget = v;
        else if (strcmp(argv[i], "--threads") == 0) threads = v;
        else if (strcmp(argv[i], "--seed") == 0) seed = v;
        else {
            fprintf(stderr, "glm-engine: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (dir == NULL || i != argc || input_len < 1 || output_len < 1 || num_prompts < 1
        || max_seqs < 1 || budget < 1)
    {
        fprintf(stderr, "usage: glm-engine bench --model DIR [--input-len N] [--output-len N]"
                " [--num-prompts N] [--max-num-seqs N] [--max-num-batched-tokens N]"
                " [--threads N] [--seed S] [--backend cpu|cuda]"
                " [--kv-cache-dtype auto|bfloat16|fp8]"
                " [--no-enable-prefix-caching] [--tensor-parallel-size N]"
                " [--enable-expert-parallel] [--speculative-config JSON]\n");
        return 2;
    }
    if (par.tensor_parallel > 1) {
        threads = glm_parallel_threads((int) threads, par.tensor_parallel);
    }
    be = glm_backend_create_named(backend, (int) threads, 0, &err);
    m = be ? glm_model_load_parallel(dir, be, &par, (int) threads, &err) : NULL;
    if (m == NULL) {
        goto fail;
    }
    if (spec != NULL) {
        /* before the backend binds the weights: the MTP layer's are among them */
        int n_spec;
        if (glm_speculative_config_parse(spec, &n_spec, &err) < 0
            || glm_model_enable_mtp(m, &err) != 0)
        {
            goto fail;
        }
    }
    if (glm_model_set_kv_dtype(m, kv_dtype, &err) != 0
        || glm_backend_prepare(be, m->ck, &err) != 0)
    {
        goto fail;
    }
    glm_path_join(path, sizeof(path), dir, "tokenizer.json");
    tok = glm_tokenizer_load(path, &err);
    if (tok == NULL) {
        goto fail;
    }
    blocks = (int) (max_seqs * ((input_len + output_len + 15) / 16));
    if (glm_sched_init(&s, m, blocks, 16, (int) max_seqs, (int) budget, &err) != 0) {
        goto fail;
    }
    if (prefix_caching && glm_sched_enable_prefix_caching(&s, dir, &err) != 0) {
        glm_sched_free(&s);
        goto fail;
    }
    glm_kv_pool_describe(&s.kv, m, desc, sizeof(desc));
    fprintf(stderr, "glm-engine: %s\n", desc);
    memset(&ctx, 0, sizeof(ctx));
    ctx.output_len = (int) output_len;
    ctx.generated = calloc((size_t) num_prompts, sizeof(int));
    s.on_token = glm_bench_on_token;
    s.cb_ctx = &ctx;
    memset(&params, 0, sizeof(params));
    seqs = calloc((size_t) num_prompts, sizeof(glm_seq *));
    prompt = malloc((size_t) input_len * sizeof(int32_t));
    glm_rng_seed(&rng, (uint64_t) seed);
    for (i = 0; i < num_prompts; i++) {
        /* random ordinary tokens, as the served benchmark's random dataset */
        for (j = 0; j < input_len; j++) {
            int32_t t;
            do {
                t = (int32_t) (glm_rng_next(&rng) % (uint64_t) glm_tokenizer_vocab_size(tok));
            } while (glm_tokenizer_is_special(tok, t) || t >= m->cfg.vocab_size);
            prompt[j] = t;
        }
        seqs[i] = glm_seq_new(prompt, (int) input_len, &params, (uint64_t) i, NULL, i);
        glm_sched_add(&s, seqs[i]);
    }
    t0 = glm_now_seconds();
    while (glm_sched_has_work(&s)) {
        glm_sched_step(&s);
    }
    t1 = glm_now_seconds();
    printf("OFFLINE model=%s prompts=%ld input_len=%ld output_len=%ld max_num_seqs=%ld"
           " steps=%llu seconds=%.3f output_tok_s=%.1f total_tok_s=%.1f\n", dir, num_prompts,
           input_len, output_len, max_seqs, (unsigned long long) s.steps, t1 - t0,
           ctx.tokens / (t1 - t0), (ctx.tokens + num_prompts * input_len) / (t1 - t0));
    if (s.spec) {
        printf("SPEC drafts=%llu accepted=%llu acceptance=%.3f steps=%llu\n",
               (unsigned long long) s.spec_drafts, (unsigned long long) s.spec_accepted,
               s.spec_drafts ? (double) s.spec_accepted / s.spec_drafts : 0.0,
               (unsigned long long) s.steps);
    }
    rc = 0;
    for (i = 0; i < num_prompts; i++) {
        glm_seq_free(seqs[i]);
    }
    glm_sched_free(&s);
    free(ctx.generated);
    goto done;
fail:
    fprintf(stderr, "glm-engine: error: %s\n", err.msg);
done:
    free(seqs);
    free(prompt);
    glm_tokenizer_free(tok);
    glm_model_free(m);
    if (be != NULL) {
        be->destroy(be);
    }
    return rc;
}
