/*
 * cmd_bench_synthetic.c: `glm-engine bench --synthetic NAME`: the model's
 * steps at real size against what the machine can do, measured in the same
 * run.
 *
 *   glm-engine bench --synthetic glm-4.5-air --layers 4 --dtype fp8 --backend cuda
 *
 * writes (once, then reuses) a checkpoint with the published model's exact
 * tensors and random weights (synthetic.h) for the first N layers, measures
 * the backend's copy rate (device to device) and its GEMM rate on one of the
 * model's own weights, then times decode steps at each batch size (every
 * sequence at --context tokens of KV) and single-sequence prefills, and
 * prints for each
 *
 *   BENCH <dtype> decode batch=<b> tok_s=<x> roofline_frac=<f> ...
 *   BENCH <dtype> prefill batch=1 tokens=<n> tok_s=<x> roofline_frac=<f> ...
 *
 * roofline_frac: for decode, the bytes a step must read (every dense weight,
 * the routed experts a batch of b tokens is expected to touch under uniform
 * routing, the embedding rows and the KV) divided by the step's time and the
 * measured copy rate; for prefill, the step's matmul and attention FLOPs
 * divided by its time and the measured GEMM rate.  It is the fraction of the
 * machine's own measured limit, not of a datasheet figure.
 *
 * The steps are built by hand (no scheduler, no sampling): this measures the
 * model step itself, which is what the kernels decide.  The KV pool starts
 * zeroed; its contents do not change the work.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend_select.h"
#include "model/model.h"
#include "model/synthetic.h"

int glm_cmd_bench_synthetic(int argc, char **argv);

#define GLM_BENCH_MAX_SIZES 16
#define GLM_BENCH_BLOCK     16

typedef struct {
    double dense_bytes;         /* read by every step: everything but the
                                   routed experts, the embedding, the tower */
    double expert_bytes;        /* one routed expert (its three matrices) */
    double embed_row_bytes;
    double dense_params;        /* matmul weights a token multiplies by */
    double expert_params;       /* one routed expert's */
    double lm_head_params;
    int    fp8;                 /* the decoder's matmul weights are FP8 */
    int    moe_layers;
} glm_bench_sizes;

static int
glm_bench_list(const char *opt, const char *s, long *out, int max)
{
    int n = 0;

    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || n == max || (*end != ',' && *end != '\0')) {
            fprintf(stderr, "glm-engine: %s wants up to %d positive integers separated by"
                    " commas, not \"%s\"\n", opt, max, s);
            return -1;
        }
        out[n++] = v;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

/* what a step reads and multiplies, from the tensors the model bound */
static void
glm_bench_measure(const glm_model *m, glm_bench_sizes *z)
{
    const glm_config *c = &m->cfg;
    size_t i, n = glm_checkpoint_count(m->ck);
    double experts_all = 0, expert_params_all = 0;

    memset(z, 0, sizeof(*z));
    for (i = 0; i < n; i++) {
        const glm_tensor *t = glm_checkpoint_at(m->ck, i);
        double bytes = (double) t->nbytes;

        if (!t->used || strstr(t->name, "visual") != NULL) {
            continue;
        }
        if (t == m->embed) {
            continue;
        }
        if (t == m->lm_head) {
            z->dense_bytes += bytes;        /* read by every step, but a
                                               prefill multiplies one row */
            z->lm_head_params = (double) t->numel;
            continue;
        }
        if (t->dtype == GLM_DTYPE_F8_E4M3) {
            z->fp8 = 1;
        }
        if (strstr(t->name, ".mlp.experts.") != NULL) {
            experts_all += bytes;
            if (t->ndim == 2 && t->dtype != GLM_DTYPE_F32 && !strstr(t->name, "scale")) {
                expert_params_all += (double) t->numel;
            }
            continue;
        }
        z->dense_bytes += bytes;
        if (t->ndim == 2 && t->shape[1] > 1 && !strstr(t->name, "scale")
            && !strstr(t->name, "mlp.gate.weight"))
        {
            z->dense_params += (double) t->numel;
        }
    }
    z->embed_row_bytes = (double) m->embed->nbytes / (double) m->embed->shape[0];
    z->moe_layers = c->num_layers > c->first_k_dense_replace
                    ? c->num_layers - c->first_k_dense_replace : 0;
    if (z->moe_layers > 0 && c->n_routed_experts > 0) {
        z->expert_bytes = experts_all / z->moe_layers / c->n_routed_experts;
        z->expert_params = expert_params_all / z->moe_layers / c->n_routed_experts;
    }
}

/* the host waits for the backend: a small download follows the queue */
static void
glm_bench_sync(glm_backend *be, void *dev)
{
    float f;

    be->download(be, &f, dev, sizeof(f));
}

static int
glm_bench_rates(glm_backend *be, const glm_model *m, double *copy_gbs, double *gemm_tflops,
    char *shape, size_t shape_size)
{
    int cpu = strcmp(be->name, "cpu") == 0;
    size_t bytes = cpu ? (size_t) 256 << 20 : (size_t) 1 << 30;
    const glm_tensor *w = NULL;
    const glm_layer *L = &m->layers[0];
    int rows = cpu ? 256 : 4096, reps, i;
    double t0, dt;
    void *a, *b, *x, *y;

    a = be->alloc(be, bytes);
    b = be->alloc(be, bytes);
    if (a == NULL || b == NULL) {
        be->free(be, a);
        be->free(be, b);
        return -1;
    }
    be->upload(be, b, a, bytes);                /* first touch */
    glm_bench_sync(be, b);
    reps = 0;
    t0 = glm_now_seconds();
    do {
        be->upload(be, b, a, bytes);
        reps++;
        glm_bench_sync(be, b);
        dt = glm_now_seconds() - t0;
    } while (dt < 0.5 || reps < 3);
    *copy_gbs = 2.0 * (double) bytes * reps / dt / 1e9;     /* read + write */
    be->free(be, a);
    be->free(be, b);

    /* the GEMM rate on the largest of the first layer's weights */
    w = L->wq;
    if (L->gate != NULL && L->gate->numel > w->numel) {
        w = L->gate;
    }
    /* activations in the backend's own element type (BF16 on CUDA) */
    x = be->alloc(be, (size_t) rows * w->shape[1] * be->act_size);
    y = be->alloc(be, (size_t) rows * w->shape[0] * be->act_size);
    if (x == NULL || y == NULL) {
        be->free(be, x);
        be->free(be, y);
        return -1;
    }
    {
        size_t nx = (size_t) rows * w->shape[1];
        float *h = malloc(nx * sizeof(float));
        if (h == NULL) {
            be->free(be, x);
            be->free(be, y);
            return -1;
        }
        for (i = 0; i < (int) nx; i++) {
            h[i] = (float) ((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
        }
        be->upload_act(be, x, h, nx);
        free(h);
    }
    be->matmul(be, y, x, rows, w, NULL);
    glm_bench_sync(be, y);
    reps = 0;
    t0 = glm_now_seconds();
    do {
        be->matmul(be, y, x, rows, w, NULL);
        reps++;
        glm_bench_sync(be, y);
        dt = glm_now_seconds() - t0;
    } while (dt < 0.5 || reps < 3);
    *gemm_tflops = 2.0 * rows * (double) w->shape[0] * (double) w->shape[1] * reps / dt / 1e12;
    snprintf(shape, shape_size, "%dx%lldx%lld:%s", rows, (long long) w->shape[0],
             (long long) w->shape[1], glm_dtype_name(w->dtype));
    be->free(be, x);
    be->free(be, y);
    return 0;
}

/* a zeroed KV pool: its values do not change the work, but uninitialised
 * device memory could hold NaNs that reach the routers */
static int
glm_bench_zero_kv(glm_backend *be, glm_kv_pool *kv)
{
    size_t total = glm_kv_pool_bytes(kv) / 2, chunk = (size_t) 64 << 20, off;
    void *zero = calloc(1, chunk);

    if (zero == NULL) {
        return -1;
    }
    for (off = 0; off < total; off += chunk) {
        size_t k = total - off < chunk ? total - off : chunk;
        be->upload(be, (char *) kv->k + off, zero, k);
        be->upload(be, (char *) kv->v + off, zero, k);
    }
    free(zero);
    return 0;
}

int
glm_cmd_bench_synthetic(int argc, char **argv)
{
    const char *name = NULL, *dtype = "bf16", *backend = "cpu", *configs = "t/fixtures/configs";
    const char *out_dir = NULL;
    long layers = 4, threads = 0, context = 1024, steps = 8, budget = 8192;
    long batches[GLM_BENCH_MAX_SIZES] = { 1, 8, 32, 64, 128, 256 };
    long prefills[GLM_BENCH_MAX_SIZES] = { 1024, 8192 };
    int n_batches = 6, n_prefills = 2, i, j, rc = 1, fp8;
    char src[PATH_MAX], out[PATH_MAX], shape[128];
    glm_backend *be = NULL;
    glm_model *m = NULL;
    glm_kv_pool kv;
    glm_bench_sizes z;
    glm_err err;
    double copy_gbs = 0, gemm_tflops = 0;
    long max_b = 0, max_p = 0, per_seq, n_blocks;
    int32_t *ids = NULL, *pos3 = NULL, *seq = NULL, *kv_pos = NULL, *blocks = NULL,
            *logit_rows = NULL;
    glm_seq_blocks *seqs = NULL;
    float *logits = NULL;

    memset(&kv, 0, sizeof(kv));
    memset(&err, 0, sizeof(err));
    for (i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (v == NULL) {
            fprintf(stderr, "glm-engine: %s wants a value\n", o);
            return 2;
        }
        i++;
        if (strcmp(o, "--synthetic") == 0) name = v;
        else if (strcmp(o, "--dtype") == 0) dtype = v;
        else if (strcmp(o, "--backend") == 0) backend = v;
        else if (strcmp(o, "--configs") == 0) configs = v;
        else if (strcmp(o, "--synthetic-out") == 0) out_dir = v;
        else if (strcmp(o, "--layers") == 0) {
            if (glm_arg_long(o, v, 1, 200, &layers) != 0) return 2;
        } else if (strcmp(o, "--threads") == 0) {
            if (glm_arg_long(o, v, 0, 4096, &threads) != 0) return 2;
        } else if (strcmp(o, "--context") == 0) {
            if (glm_arg_long(o, v, 1, 1 << 20, &context) != 0) return 2;
        } else if (strcmp(o, "--steps") == 0) {
            if (glm_arg_long(o, v, 1, 10000, &steps) != 0) return 2;
        } else if (strcmp(o, "--max-num-batched-tokens") == 0) {
            if (glm_arg_long(o, v, 1, 1 << 20, &budget) != 0) return 2;
        } else if (strcmp(o, "--batch-sizes") == 0) {
            if ((n_batches = glm_bench_list(o, v, batches, GLM_BENCH_MAX_SIZES)) < 0) return 2;
        } else if (strcmp(o, "--prefill-lens") == 0) {
            if (strcmp(v, "none") == 0) {
                n_prefills = 0;
            } else if ((n_prefills = glm_bench_list(o, v, prefills, GLM_BENCH_MAX_SIZES)) < 0) {
                return 2;
            }
        } else {
            fprintf(stderr, "glm-engine: bench --synthetic: unknown option %s\n"
                    "usage: glm-engine bench --synthetic glm-4.5-air|glm-4.5|glm-4.5v|DIR"
                    " [--dtype bf16|fp8] [--layers N] [--backend cpu|cuda] [--threads N]"
                    " [--batch-sizes 1,8,32,64,128,256] [--context N] [--steps N]"
                    " [--prefill-lens 1024,8192|none] [--max-num-batched-tokens N]"
                    " [--configs DIR] [--synthetic-out DIR]\n", o);
            return 2;
        }
    }
    if (name == NULL) {
        fprintf(stderr, "glm-engine: bench --synthetic wants a model name or directory\n");
        return 2;
    }
    if (strcmp(dtype, "bf16") != 0 && strcmp(dtype, "fp8") != 0) {
        fprintf(stderr, "glm-engine: --dtype wants bf16 or fp8, not \"%s\"\n", dtype);
        return 2;
    }
    fp8 = dtype[0] == 'f';
    /* a published model by name (its configuration in --configs), or a
     * directory with config.json and safetensors or tensors.txt */
    if (strcmp(name, "glm-4.5-air") == 0 || strcmp(name, "glm-4.5") == 0
        || strcmp(name, "glm-4.5v") == 0)
    {
        const char *pub = name[7] == '-' ? "GLM-4.5-Air" : name[7] == 'v' ? "GLM-4.5V" : "GLM-4.5";
        char probe[PATH_MAX];

        snprintf(src, sizeof(src), "%.3000s/%s%s", configs, pub, fp8 ? "-FP8" : "");
        if (glm_path_join(probe, sizeof(probe), src, "config.json") != 0
            || !glm_file_exists(probe))
        {
            fprintf(stderr, "glm-engine: %s not found: run from the repository root or pass"
                    " --configs DIR (the folder holding %s)\n", src, pub);
            return 2;
        }
    } else {
        snprintf(src, sizeof(src), "%s", name);
    }
    {
        const char *base = strrchr(src, '/');
        int len = out_dir != NULL
                  ? snprintf(out, sizeof(out), "%s", out_dir)
                  : snprintf(out, sizeof(out), "build/synthetic/%.200s-L%ld",
                             base ? base + 1 : src, layers);
        if (len < 0 || (size_t) len >= sizeof(out)) {
            fprintf(stderr, "glm-engine: --synthetic-out: path too long\n");
            return 2;
        }
    }
    if (glm_synthetic_write(src, (int) layers, out, &err) != 0) {
        goto fail;
    }
    be = glm_backend_create_named(backend, (int) threads, 0, &err);
    m = be ? glm_model_load(out, be, &err) : NULL;
    if (m == NULL || glm_backend_prepare(be, m->ck, &err) != 0) {
        goto fail;
    }
    glm_bench_measure(m, &z);
    if (z.fp8 != fp8 && strcmp(name, src) == 0) {
        dtype = z.fp8 ? "fp8" : "bf16";         /* a directory: as stored */
    }
    if (glm_bench_rates(be, m, &copy_gbs, &gemm_tflops, shape, sizeof(shape)) != 0) {
        glm_errf(&err, "out of backend memory measuring the copy and GEMM rates");
        goto fail;
    }
    printf("RATE backend=%s copy_gbs=%.1f gemm_tflops=%.3f gemm=%s model=%s layers=%ld"
           " dense_gib=%.3f expert_mib=%.2f\n", be->name, copy_gbs, gemm_tflops, shape, src,
           layers, z.dense_bytes / (1u << 30), z.expert_bytes / (1u << 20));
    fflush(stdout);

    for (i = 0; i < n_batches; i++) {
        max_b = batches[i] > max_b ? batches[i] : max_b;
    }
    for (i = 0; i < n_prefills; i++) {
        max_p = prefills[i] > max_p ? prefills[i] : max_p;
    }
    per_seq = (context + steps + 1 + GLM_BENCH_BLOCK) / GLM_BENCH_BLOCK;
    n_blocks = max_b * per_seq;
    if ((max_p + GLM_BENCH_BLOCK) / GLM_BENCH_BLOCK > n_blocks) {
        n_blocks = (max_p + GLM_BENCH_BLOCK) / GLM_BENCH_BLOCK;
    }
    if (glm_kv_pool_init(&kv, m, (int) n_blocks, GLM_BENCH_BLOCK, &err) != 0
        || glm_bench_zero_kv(be, &kv) != 0)
    {
        if (err.msg[0] == '\0') {
            glm_errf(&err, "out of memory zeroing the KV pool");
        }
        goto fail;
    }
    {
        long n_tok = max_b > budget ? max_b : budget;
        ids = malloc((size_t) n_tok * sizeof(int32_t));
        pos3 = malloc((size_t) n_tok * 3 * sizeof(int32_t));
        seq = calloc((size_t) n_tok, sizeof(int32_t));
        kv_pos = malloc((size_t) n_tok * sizeof(int32_t));
        logit_rows = malloc((size_t) n_tok * sizeof(int32_t));
        blocks = malloc((size_t) n_blocks * sizeof(int32_t));
        seqs = malloc((size_t) max_b * sizeof(glm_seq_blocks));
        logits = malloc((size_t) max_b * m->cfg.vocab_size * sizeof(float));
        if (!ids || !pos3 || !seq || !kv_pos || !logit_rows || !blocks || !seqs || !logits) {
            glm_errf(&err, "out of memory");
            goto fail;
        }
        for (i = 0; i < n_tok; i++) {
            ids[i] = (int32_t) ((i * 2654435761u + 12345u) % (uint32_t) m->cfg.vocab_size);
        }
        for (i = 0; i < n_blocks; i++) {
            blocks[i] = i;
        }
    }

    /* decode: b sequences, one token each at position context + s */
    for (i = 0; i < n_batches; i++) {
        int b = (int) batches[i], s;
        glm_batch batch;
        double t0, dt, touched, bytes, kv_bytes;

        for (j = 0; j < b; j++) {
            seqs[j].blocks = blocks + (size_t) j * per_seq;
            seqs[j].n_blocks = (int) per_seq;
            seq[j] = j;
            logit_rows[j] = j;
        }
        memset(&batch, 0, sizeof(batch));
        batch.n_tokens = b;
        batch.ids = ids;
        batch.pos3 = pos3;
        batch.attn.n_tokens = b;
        batch.attn.seq = seq;
        batch.attn.kv_pos = kv_pos;
        batch.attn.seqs = seqs;
        batch.attn.n_seqs = b;
        batch.logit_rows = logit_rows;
        batch.n_logits = b;
        t0 = 0;
        for (s = -1; s < steps; s++) {              /* step -1 warms up */
            int p = (int) context + (s < 0 ? 0 : s);
            for (j = 0; j < b; j++) {
                kv_pos[j] = p;
                pos3[3 * j] = pos3[3 * j + 1] = pos3[3 * j + 2] = p;
            }
            if (s == 0) {
                t0 = glm_now_seconds();
            }
            glm_model_forward(m, &kv, &batch, logits);
        }
        dt = (glm_now_seconds() - t0) / (double) steps;
        touched = m->cfg.n_routed_experts
                  * (1.0 - pow(1.0 - (double) m->cfg.num_experts_per_tok
                                     / m->cfg.n_routed_experts, b));
        kv_bytes = (double) b * (context + 1) * m->cfg.num_layers * 2.0 * kv.kv_dim
                   * glm_kv_dtype_size(kv.dtype);
        bytes = z.dense_bytes + z.moe_layers * touched * z.expert_bytes
                + b * z.embed_row_bytes + kv_bytes;
        printf("BENCH %s decode batch=%d tok_s=%.1f roofline_frac=%.3f step_ms=%.3f"
               " bytes_per_step=%.0f context=%ld\n", dtype, b, b / dt,
               bytes / dt / (copy_gbs * 1e9), dt * 1e3, bytes, context);
        fflush(stdout);
    }

    /* prefill: one sequence, chunks of --max-num-batched-tokens */
    for (i = 0; i < n_prefills; i++) {
        long n = prefills[i], done = 0;
        double t0, dt, flops;
        glm_batch batch;

        seqs[0].blocks = blocks;
        seqs[0].n_blocks = (int) ((max_p + GLM_BENCH_BLOCK) / GLM_BENCH_BLOCK);
        t0 = glm_now_seconds();
        while (done < n) {
            int c = (int) (n - done < budget ? n - done : budget);
            for (j = 0; j < c; j++) {
                seq[j] = 0;
                kv_pos[j] = (int32_t) (done + j);
                pos3[3 * j] = pos3[3 * j + 1] = pos3[3 * j + 2] = (int32_t) (done + j);
            }
            logit_rows[0] = c - 1;
            memset(&batch, 0, sizeof(batch));
            batch.n_tokens = c;
            batch.ids = ids;
            batch.pos3 = pos3;
            batch.attn.n_tokens = c;
            batch.attn.seq = seq;
            batch.attn.kv_pos = kv_pos;
            batch.attn.seqs = seqs;
            batch.attn.n_seqs = 1;
            batch.logit_rows = logit_rows;
            batch.n_logits = done + c == n ? 1 : 0;
            glm_model_forward(m, &kv, &batch, logits);
            done += c;
        }
        if (batch.n_logits == 0) {
            glm_bench_sync(be, kv.k);
        }
        dt = glm_now_seconds() - t0;
        flops = 2.0 * n * (z.dense_params + z.moe_layers * m->cfg.num_experts_per_tok
                           * z.expert_params)
                + 2.0 * 2.0 * ((double) n * n / 2.0) * m->cfg.num_heads * m->cfg.head_dim
                  * m->cfg.num_layers
                + 2.0 * z.lm_head_params;
        printf("BENCH %s prefill batch=1 tokens=%ld tok_s=%.1f roofline_frac=%.3f"
               " seconds=%.3f tflops=%.3f\n", dtype, n, n / dt,
               flops / dt / (gemm_tflops * 1e12), dt, flops / dt / 1e12);
        fflush(stdout);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "glm-engine: error: %s\n", err.msg);
done:
    free(ids);
    free(pos3);
    free(seq);
    free(kv_pos);
    free(logit_rows);
    free(blocks);
    free(seqs);
    free(logits);
    if (m != NULL && kv.k != NULL) {
        glm_kv_pool_free(&kv, m);
    }
    glm_model_free(m);
    if (be != NULL) {
        be->destroy(be);
    }
    return rc;
}
