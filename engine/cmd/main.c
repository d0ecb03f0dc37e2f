/*
 * main.c: the glm-engine command line.
 *
 *   glm-engine serve    --model DIR --socket PATH [vLLM-style options]
 *   glm-engine bench    --model DIR [--input-len N --output-len N ...]
 *   glm-engine generate --model DIR --prompt TEXT [--max-tokens N]
 *                       [--temperature T] [--top-k K] [--top-p P] [--seed S]
 *   glm-engine inspect  --model DIR
 *   glm-engine plan     --model DIR [--tensor-parallel-size N --gpu h100|h200 ...]
 *   glm-engine render-template --model DIR --request JSON
 *   glm-engine tokenize --model DIR --text TEXT [--decode]
 *   glm-engine bench-tokenizer --model DIR --corpus FILE [--seconds S]
 *   glm-engine preprocess [--threads N] [--repeat N] FILE...
 *   glm-engine bench-preprocess [--threads N] [--seconds S] FILE...
 *
 * Errors go to stderr as one line "glm-engine: error: ..." and exit 1; usage
 * mistakes exit 2.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend/backend.h"
#include "backend/backend_select.h"
#include "model/model.h"
#include "model/sampling.h"
#include "model/session.h"
#include "parallel/ranks.h"
#include "server/server.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

static void
glm_usage(FILE *f)
{
    fprintf(f,
        "usage: glm-engine COMMAND [options]\n"
        "\n"
        "commands:\n"
        "  serve    --model DIR --socket PATH   the engine behind ngx_glm_module\n"
        "           (serve --help lists its options)\n"
        "  bench    --model DIR                 offline throughput (no HTTP)\n"
        "  generate --model DIR --prompt TEXT   continue TEXT with the model\n"
        "           [--max-tokens N] (default 32) [--backend cpu|cuda] (default cpu)\n"
        "           [--temperature T --top-k K --top-p P --seed S] (default: greedy)\n"
        "           [--threads N] [--skip-special-tokens]\n"
        "           [--tensor-parallel-size N] [--enable-expert-parallel] (CPU ranks)\n"
        "           [--kv-cache-dtype auto|bfloat16|fp8] (auto: fp32 on the CPU oracle)\n"
        "  inspect  --model DIR                 check a checkpoint and describe it\n"
        "  plan     --model DIR                 the memory plan of one GPU, from config.json\n"
        "           and the safetensors headers (plan --help lists its options)\n"
        "  render-template --model DIR|--template FILE --request JSON\n"
        "                                       the prompt a chat request renders to, and its ids\n"
        "  tokenize --model DIR --text TEXT     print token ids (--text - reads stdin)\n"
        "           [--decode]\n"
        "  bench-tokenizer --model DIR --corpus FILE [--seconds S]\n"
        "  preprocess [--threads N] [--repeat N] [--min-pixels N] [--max-pixels N] FILE...\n"
        "                                       GLM-4.5V image processor: grid, patches, time\n"
        "  bench-preprocess [--threads N] [--seconds S] [--preprocess-only] FILE...\n");
}

int glm_cmd_bench(int argc, char **argv);
int glm_cmd_preprocess(int argc, char **argv);
int glm_cmd_bench_preprocess(int argc, char **argv);
int glm_cmd_plan(int argc, char **argv);

static int
glm_fail(const glm_err *err)
{
    fprintf(stderr, "glm-engine: error: %s\n", err->msg);
    return 1;
}

static int
glm_arg_float(const char *opt, const char *s, double lo, double hi, float *out)
{
    double v;

    if (glm_arg_double(opt, s, lo, hi, &v) != 0) {
        return -1;
    }
    *out = (float) v;
    return 0;
}

static int
glm_cmd_inspect(int argc, char **argv)
{
    const char *dir = NULL;
    glm_backend *be;
    glm_model *m;
    glm_err err;
    char desc[1024];
    int i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else {
            glm_usage(stderr);
            return 2;
        }
    }
    if (dir == NULL) {
        glm_usage(stderr);
        return 2;
    }
    be = glm_backend_cpu_create(1);
    if (be == NULL) {
        fprintf(stderr, "glm-engine: error: out of memory\n");
        return 1;
    }
    m = glm_model_load(dir, be, &err);
    if (m == NULL) {
        be->destroy(be);
        return glm_fail(&err);
    }
    glm_config_describe(&m->cfg, desc, sizeof(desc));
    printf("%s\n", desc);
    printf("tensors: %zu (%d MTP tensors skipped)\n",
           glm_checkpoint_count(m->ck), m->skipped_mtp);
    if (m->vision != NULL) {
        printf("vision: %d blocks, hidden %d, %d heads, patch %d, merge %d,"
               " position table %dx%d\n", m->cfg.vision.depth,
               m->cfg.vision.hidden_size, m->cfg.vision.num_heads,
               m->cfg.vision.patch_size, m->cfg.vision.spatial_merge_size,
               m->cfg.vision.image_size / m->cfg.vision.patch_size,
               m->cfg.vision.image_size / m->cfg.vision.patch_size);
    }
    glm_quant_describe(m->cfg.quant, desc, sizeof(desc));
    printf("quantization: %s\n", desc);
    if (m->cfg.quant != NULL) {
        size_t n = glm_checkpoint_count(m->ck), k, fp8 = 0;

        for (k = 0; k < n; k++) {
            fp8 += glm_checkpoint_at(m->ck, k)->dtype == GLM_DTYPE_F8_E4M3;
        }
        printf("fp8: %d weights FP8 E4M3 with their scales", m->cfg.quant->n_fp8);
        if (fp8 > (size_t) m->cfg.quant->n_fp8) {
            printf(" (%zu more in skipped MTP layers)", fp8 - (size_t) m->cfg.quant->n_fp8);
        }
        printf(", %d targeted weights stored as float and used as stored\n",
               m->cfg.quant->n_float_targeted);
    }
    glm_model_free(m);
    be->destroy(be);
    return 0;
}

static int
glm_cmd_generate(int argc, char **argv)
{
    const char *dir = NULL, *prompt = NULL, *backend = "cpu";
    long max_tokens = 32, threads = 0, seed = 0, top_k = 0;
    float temperature = 0.0f, top_p = 1.0f;
    int skip_special = 0, i, rc = 1, n_out = 0, used;
    glm_parallel par = { 1, 0, 1 };
    glm_kv_cache_dtype kv_dtype = GLM_KV_CACHE_AUTO;
    glm_backend *be = NULL;
    glm_model *m = NULL;
    glm_tokenizer *tok = NULL;
    glm_tokenizer_ids ids = { 0 };
    glm_tokenizer_buf text = { 0 };
    glm_session s;
    glm_sampling sp;
    glm_rng rng;
    glm_detok dt;
    glm_err err;
    char path[PATH_MAX];
    float *logits = NULL, *prob = NULL;
    int32_t *idx = NULL, next;
    double t0, t1, t2;

    memset(&s, 0, sizeof(s));
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--skip-special-tokens") == 0) {
            skip_special = 1;
            continue;
        }
        used = glm_parallel_arg(&par, argc, argv, &i);
        if (used != 0) {
            if (used < 0) return 2;
            continue;
        }
        if (v == NULL) {
            glm_usage(stderr);
            return 2;
        }
        i++;
        if (strcmp(a, "--model") == 0) {
            dir = v;
        } else if (strcmp(a, "--prompt") == 0) {
            prompt = v;
        } else if (strcmp(a, "--backend") == 0) {
            backend = v;
        } else if (strcmp(a, "--max-tokens") == 0) {
            if (glm_arg_long(a, v, 1, 1 << 20, &max_tokens) != 0) return 2;
        } else if (strcmp(a, "--threads") == 0) {
            if (glm_arg_long(a, v, 0, 1024, &threads) != 0) return 2;
        } else if (strcmp(a, "--seed") == 0) {
            if (glm_arg_long(a, v, 0, LONG_MAX, &seed) != 0) return 2;
        } else if (strcmp(a, "--top-k") == 0) {
            if (glm_arg_long(a, v, 0, INT_MAX, &top_k) != 0) return 2;
        } else if (strcmp(a, "--temperature") == 0) {
            if (glm_arg_float(a, v, 0.0, 100.0, &temperature) != 0) return 2;
        } else if (strcmp(a, "--top-p") == 0) {
            if (glm_arg_float(a, v, 1e-6, 1.0, &top_p) != 0) return 2;
        } else if (strcmp(a, "--kv-cache-dtype") == 0) {
            if (glm_kv_cache_dtype_arg(v, &kv_dtype) != 0) return 2;
        } else {
            fprintf(stderr, "glm-engine: unknown option %s\n", a);
            glm_usage(stderr);
            return 2;
        }
    }
    if (dir == NULL || prompt == NULL) {
        glm_usage(stderr);
        return 2;
    }
    sp = (glm_sampling) { temperature, (int) top_k, top_p, 0.0f };
    glm_rng_seed(&rng, (uint64_t) seed);

    t0 = glm_now_seconds();
    if (par.tensor_parallel > 1) {
        threads = glm_parallel_threads((int) threads, par.tensor_parallel);
    }
    be = glm_backend_create_named(backend, (int) threads, 0, &err);
    if (be == NULL) {
        goto fail;
    }
    m = glm_model_load_parallel(dir, be, &par, (int) threads, &err);
    if (m == NULL || glm_model_set_kv_dtype(m, kv_dtype, &err) != 0
        || glm_backend_prepare(be, m->ck, &err) != 0)
    {
        goto fail;
    }
    if (glm_path_join(path, sizeof(path), dir, "tokenizer.json") != 0) {
        glm_errf(&err, "%s: path too long", dir);
        goto fail;
    }
    tok = glm_tokenizer_load(path, &err);
    if (tok == NULL) {
        goto fail;
    }
    if (glm_tokenizer_encode(tok, NULL, prompt, strlen(prompt), &ids, &err) != 0) {
        glm_err_prefix(&err, "prompt");
        goto fail;
    }
    if (ids.len == 0) {
        glm_errf(&err, "the prompt is empty: give at least one token of text");
        goto fail;
    }
    if ((long) ids.len + max_tokens > m->cfg.max_position_embeddings) {
        glm_errf(&err, "prompt (%zu tokens) + --max-tokens %ld exceeds the model's"
                 " max_position_embeddings %d", ids.len, max_tokens,
                 m->cfg.max_position_embeddings);
        goto fail;
    }
    if (glm_session_init(&s, m, (int) ids.len + (int) max_tokens, 16, &err) != 0) {
        goto fail;
    }
    glm_kv_pool_describe(&s.kv, m, path, sizeof(path));
    fprintf(stderr, "glm-engine: %s\n", path);
    logits = malloc((size_t) m->cfg.vocab_size * sizeof(float));
    prob = malloc((size_t) m->cfg.vocab_size * sizeof(float));
    idx = malloc((size_t) m->cfg.vocab_size * sizeof(int32_t));
    if (logits == NULL || prob == NULL || idx == NULL) {
        glm_errf(&err, "out of memory");
        goto fail;
    }

    t1 = glm_now_seconds();
    if (glm_session_feed(&s, ids.ids, (int) ids.len, 512, logits, 0, &err) != 0) {
        goto fail;
    }
    glm_detok_init(&dt, tok, skip_special);
    for (n_out = 0; n_out < max_tokens; n_out++) {
        next = glm_sample(logits, m->cfg.vocab_size, &sp, &rng, prob, idx);
        text.len = 0;
        if (glm_detok_push(&dt, next, &text, &err) != 0) {
            goto fail;
        }
        fwrite(text.data, 1, text.len, stdout);
        fflush(stdout);
        if (glm_config_is_eos(&m->cfg, next)) {
            n_out++;
            break;
        }
        if (n_out + 1 < max_tokens
            && glm_session_feed(&s, &next, 1, 0, logits, 0, &err) != 0)
        {
            goto fail;
        }
    }
    text.len = 0;
    if (glm_detok_flush(&dt, &text, &err) != 0) {
        goto fail;
    }
    fwrite(text.data, 1, text.len, stdout);
    printf("\n");
    t2 = glm_now_seconds();
    fprintf(stderr, "glm-engine: %zu prompt tokens, %d generated; load %.3f s,"
            " generation %.3f s (%.1f tokens/s, %s backend)\n", ids.len, n_out,
            t1 - t0, t2 - t1, n_out / (t2 - t1 > 0 ? t2 - t1 : 1e-9), be->name);
    rc = 0;
    goto done;

fail:
    rc = glm_fail(&err);
done:
    free(logits);
    free(prob);
    free(idx);
    glm_session_free(&s);
    glm_tokenizer_ids_free(&ids);
    glm_tokenizer_buf_free(&text);
    glm_tokenizer_free(tok);
    glm_model_free(m);
    if (be != NULL) {
        be->destroy(be);
    }
    return rc;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        glm_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "generate") == 0) {
        return glm_cmd_generate(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "serve") == 0) {
        return glm_cmd_serve(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "bench") == 0) {
        return glm_cmd_bench(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "render-template") == 0) {
        return glm_cmd_render_template(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "inspect") == 0) {
        return glm_cmd_inspect(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "plan") == 0) {
        return glm_cmd_plan(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "tokenize") == 0) {
        return glm_cmd_tokenize(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "bench-tokenizer") == 0) {
        return glm_cmd_bench_tokenizer(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "preprocess") == 0) {
        return glm_cmd_preprocess(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "bench-preprocess") == 0) {
        return glm_cmd_bench_preprocess(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0
        || strcmp(argv[1], "-h") == 0)
    {
        glm_usage(stdout);
        return 0;
    }
    fprintf(stderr, "glm-engine: unknown command '%s'\n", argv[1]);
    glm_usage(stderr);
    return 2;
}
