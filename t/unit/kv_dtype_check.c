/*
 * kv_dtype_check.c: what a narrow KV cache costs, measured on the CPU
 * backend against its own fp32 cache (make kv-dtype-check).
 *
 * For every fixture and every prompt of its reference.json (the prompts the
 * reference checks use), and for the GLM-4.5V fixtures every image and
 * video request of vl_reference.json too (rendered, preprocessed and
 * encoded by the fp32 tower as vision_check does, then M-RoPE positions
 * through the cache), the fp32-cache run gives the baseline: the logits
 * of every prompt position from one prefill, then a greedy continuation of
 * the reference's length, decoded token by token.  Each narrow dtype then
 * prefills the same prompt and decodes the baseline's tokens (teacher
 * forced, so every step compares the same context), through its own cache:
 *
 *   KV dtype=<d> fixture=<name> max_abs_logit_diff=<x> greedy=<k>/<n>
 *      median_row_diff=<m> clear_steps=<a>/<b> ok|FAIL
 *
 * x is the largest |logit - fp32 logit| over every vocabulary entry of every
 * compared row (each prefill position, each decode step), m the median of
 * the rows' largest; k of n decode steps pick the fp32 run's token; of the b
 * steps whose fp32 top-1 margin is clear (below), a pick the same.
 *
 * Tolerances (why).  A cache element is rounded once: relative error at
 * most 2^-9 for BF16 (8 significant bits), 2^-4 for E4M3 (4 bits; scale
 * 1.0 on these fixtures, whose k/v stay far inside +-448).  Attention is a
 * softmax of q.k and a convex combination of values, so a logit moves by
 * about that relative error times the logit scale (|logits| up to ~4 here):
 * ~4e-3 for BF16, 16 times that for FP8; measured, the median row moves
 * 2e-3..4e-3 (bf16) and 0.035..0.064 (fp8), 15x apart as the mantissas say.
 * The largest row is another matter: these tiny random MoE models route on
 * near-ties, and a rounding that flips one expert choice moves a row by
 * ~0.1-0.3 whatever the dtype (0.12..0.25 bf16, 0.18..0.31 fp8 measured).
 * So the rounding error is asserted on the median row (bf16 <= 1e-2, fp8
 * <= 0.15: ~2.5x the worst measured; a wrong scale, row or widening moves
 * every row by O(1)), the largest row loosely (bf16 <= 0.5, fp8 <= 0.6),
 * and greedy agreement only at steps whose fp32 top-1 margin is clear
 * (bf16 > 0.1, fp8 > 0.3: about twice a routing flip's swing, so only a
 * fault can flip them); the overall greedy agreement is printed.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <yajl/yajl_tree.h>

#include "media/media_request.h"
#include "model/model.h"
#include "model/sampling.h"
#include "model/session.h"
#include "model/vision.h"
#include "output/json_text.h"
#include "ref_common.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

/* bounds on the median row's max |diff| (the rounding error), on the
 * largest one (routing flips included), and the fp32 top-1 margin above
 * which a decode step must pick the same token */
static const struct {
    glm_kv_cache_dtype dtype;
    const char        *name;
    double             median_tol, max_tol, clear_margin;
} glm_kv_cases[] = {
    { GLM_KV_CACHE_BF16, "bfloat16", 1e-2, 0.5, 0.1 },
    { GLM_KV_CACHE_FP8,  "fp8",      0.15, 0.6, 0.3 },
};

typedef struct {
    double  max_diff;
    int     greedy_ok, greedy_n, clear_ok, clear_n;
    double *rows;               /* each compared row's max |diff| */
    size_t  n_rows, cap_rows;
} glm_kv_tally;

static void
glm_tally_row(glm_kv_tally *t, double d)
{
    if (t->n_rows == t->cap_rows) {
        size_t cap = t->cap_rows ? 2 * t->cap_rows : 1024;
        double *r = realloc(t->rows, cap * sizeof(double));
        if (r == NULL) {
            fprintf(stderr, "kv_dtype_check: out of memory\n");
            exit(1);
        }
        t->rows = r;
        t->cap_rows = cap;
    }
    t->rows[t->n_rows++] = d;
    t->max_diff = d > t->max_diff ? d : t->max_diff;
}

static int
glm_cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

/* the median of the rows' max |diff|: the smooth rounding error, which a
 * few MoE routing flips do not move */
static double
glm_tally_median(glm_kv_tally *t)
{
    if (t->n_rows == 0) {
        return 0.0;
    }
    qsort(t->rows, t->n_rows, sizeof(double), glm_cmp_double);
    return t->rows[t->n_rows / 2];
}

static double
glm_row_diff(const float *a, const float *b, int V)
{
    double mx = 0.0, d;
    int i;

    for (i = 0; i < V; i++) {
        d = fabs((double) a[i] - (double) b[i]);
        mx = d > mx ? d : mx;
    }
    return mx;
}

/* top-1 minus top-2 of a row */
static double
glm_margin(const float *row, int V)
{
    float a = -INFINITY, b = -INFINITY;
    int i;

    for (i = 0; i < V; i++) {
        if (row[i] > a) {
            b = a;
            a = row[i];
        } else if (row[i] > b) {
            b = row[i];
        }
    }
    return (double) a - (double) b;
}

/*
 * One prompt through an fp32 cache (base_* filled) when dtype is fp32, else
 * through dtype's cache against base_*.  base_prefill: [n, V];
 * base_steps: [ng, V]; base_ids: [ng].
 */
static int
glm_run_prompt(glm_model *m, const glm_mm_prompt *mm, glm_kv_cache_dtype dtype,
    const int32_t *ids, int n, int ng, float *base_prefill, float *base_steps,
    int32_t *base_ids, double clear_margin, glm_kv_tally *t, glm_err *err)
{
    int V = m->cfg.vocab_size, s, baseline = dtype == GLM_KV_CACHE_AUTO, p;
    float *prefill = baseline ? base_prefill : malloc((size_t) n * V * sizeof(float));
    float *logits = malloc((size_t) V * sizeof(float));
    glm_session sess;
    int rc = -1;

    if (prefill == NULL || logits == NULL) {
        glm_errf(err, "out of memory");
        goto done;
    }
    if (glm_model_set_kv_dtype(m, dtype, err) != 0) {
        goto done;
    }
    if (baseline && m->kv_dtype != GLM_KV_F32) {
        glm_errf(err, "the %s backend's auto KV cache is %s, not the fp32 baseline",
                 m->be->name, glm_kv_dtype_name(m->kv_dtype));
        goto done;
    }
    if (glm_session_init(&sess, m, n + ng + 1, 16, err) != 0) {
        goto done;
    }
    sess.mm = mm;
    if (glm_session_feed(&sess, ids, n, 0, prefill, 1, err) != 0) {
        glm_session_free(&sess);
        goto done;
    }
    if (!baseline) {
        for (p = 0; p < n; p++) {
            glm_tally_row(t, glm_row_diff(prefill + (size_t) p * V,
                                          base_prefill + (size_t) p * V, V));
        }
    }
    memcpy(logits, prefill + (size_t) (n - 1) * V, (size_t) V * sizeof(float));
    for (s = 0; s < ng; s++) {
        float *base = base_steps + (size_t) s * V;
        int32_t next;

        if (baseline) {
            memcpy(base, logits, (size_t) V * sizeof(float));
            base_ids[s] = glm_argmax(logits, V);
        } else {
            int same = glm_argmax(logits, V) == base_ids[s];

            glm_tally_row(t, glm_row_diff(logits, base, V));
            t->greedy_ok += same;
            t->greedy_n++;
            if (glm_margin(base, V) > clear_margin) {
                t->clear_ok += same;
                t->clear_n++;
            }
        }
        next = base_ids[s];
        if (s + 1 < ng && glm_session_feed(&sess, &next, 1, 0, logits, 0, err) != 0) {
            glm_session_free(&sess);
            goto done;
        }
    }
    glm_session_free(&sess);
    rc = 0;
done:
    if (!baseline) {
        free(prefill);
    }
    free(logits);
    return rc;
}

/* One prompt (ids, and mm for a vision prompt): the fp32 baseline, then
 * each narrow dtype against it; 0, or 1 after printing the error. */
static int
glm_compare_prompt(glm_model *m, const glm_mm_prompt *mm, const int32_t *ids, int n, int ng,
    const char *name, const char *what, glm_kv_tally *tally)
{
    int V = m->cfg.vocab_size, di, failed = 0;
    float *base_prefill = malloc((size_t) (n ? n : 1) * V * sizeof(float));
    float *base_steps = malloc((size_t) (ng ? ng : 1) * V * sizeof(float));
    int32_t *base_ids = malloc((size_t) (ng ? ng : 1) * sizeof(int32_t));
    double before[2] = { tally[0].max_diff, tally[1].max_diff };
    glm_err err;

    if (n == 0 || base_prefill == NULL || base_steps == NULL || base_ids == NULL
        || glm_run_prompt(m, mm, GLM_KV_CACHE_AUTO, ids, n, ng, base_prefill, base_steps,
                          base_ids, 0.0, NULL, &err) != 0)
    {
        printf("KV fixture=%s %s error: %s\n", name, what, n == 0 ? "no prompt ids" : err.msg);
        failed = 1;
    }
    for (di = 0; di < 2 && !failed; di++) {
        if (glm_run_prompt(m, mm, glm_kv_cases[di].dtype, ids, n, ng, base_prefill,
                           base_steps, base_ids, glm_kv_cases[di].clear_margin,
                           &tally[di], &err) != 0)
        {
            printf("KV fixture=%s %s error: %s\n", name, what, err.msg);
            failed = 1;
        }
    }
    if (getenv("GLM_KV_CHECK_VERBOSE") != NULL) {
        fprintf(stderr, "KV fixture=%s %s (%d tokens): bf16 %.3g fp8 %.3g\n", name, what, n,
                tally[0].max_diff > before[0] ? tally[0].max_diff : 0.0,
                tally[1].max_diff > before[1] ? tally[1].max_diff : 0.0);
    }
    free(base_prefill);
    free(base_steps);
    free(base_ids);
    return failed;
}

/* vl_reference.json with its relative media URLs made absolute */
static yajl_val
glm_load_vl_reference(const char *dir, const char *abs, char **text_out, glm_err *err)
{
    char path[PATH_MAX], ebuf[256], to[PATH_MAX + 16];
    const char *from = "file://media/";
    size_t nf = strlen(from), nt, n = 0;
    char *text, *o, *p;
    yajl_val v;

    snprintf(path, sizeof(path), "%s/vl_reference.json", dir);
    text = glm_read_file(path, NULL, err);
    if (text == NULL) {
        return NULL;
    }
    snprintf(to, sizeof(to), "file://%s/media/", abs);
    nt = strlen(to);
    o = malloc(strlen(text) * (nt / nf + 2) + 1);
    if (o == NULL) {
        free(text);
        glm_errf(err, "out of memory");
        return NULL;
    }
    for (p = text; *p; ) {
        if (strncmp(p, from, nf) == 0) {
            memcpy(o + n, to, nt);
            n += nt;
            p += nf;
        } else {
            o[n++] = *p++;
        }
    }
    o[n] = '\0';
    free(text);
    v = yajl_tree_parse(o, ebuf, sizeof(ebuf));
    if (v == NULL) {
        glm_errf(err, "%s: %s", path, ebuf);
        free(o);
        return NULL;
    }
    *text_out = o;
    return v;
}

/*
 * The fixture's image and video prompts (vl_reference.json, the requests
 * vision_check renders), each through the chat template, the media loader
 * and the vision tower (fp32, whatever the cache) into an M-RoPE prompt,
 * then compared as the text prompts are.
 */
static int
glm_vl_prompts(const char *dir, glm_model *m, const char *name, glm_kv_tally *tally)
{
    const glm_config *c = &m->cfg;
    char abs[PATH_MAX], path[PATH_MAX], *text = NULL, what[96];
    glm_tokenizer *tok = NULL;
    glm_chat_template *tpl = NULL;
    glm_media_opts mo;
    yajl_val ref = NULL, cases;
    glm_err err;
    size_t k;
    int failed = 0, mo_ok = 0;

    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    if (realpath(dir, abs) == NULL) {
        glm_errf(&err, "%s: not found", dir);
        failed = 1;
    } else if ((tok = glm_tokenizer_load(path, &err)) == NULL
               || (tpl = glm_chat_template_load(dir, NULL, &err)) == NULL
               || glm_media_opts_init(&mo, dir, &err) != 0)
    {
        failed = 1;
    } else {
        mo_ok = 1;
        if (glm_media_opts_allow_root(&mo, abs, &err) != 0
            || (ref = glm_load_vl_reference(dir, abs, &text, &err)) == NULL)
        {
            failed = 1;
        }
    }
    cases = ref ? glm_get(ref, "cases") : NULL;
    if (!failed && (cases == NULL || !YAJL_IS_ARRAY(cases))) {
        glm_errf(&err, "%s/vl_reference.json has no cases", dir);
        failed = 1;
    }
    if (failed) {
        printf("KV fixture=%s vision prompts error: %s\n", name, err.msg);
    }
    for (k = 0; !failed && k < cases->u.array.len; k++) {
        yajl_val cs = cases->u.array.values[k];
        glm_tokenizer_ids ids = { 0 }, x = { 0 };
        glm_media_set set;
        glm_grid *grids = NULL;
        glm_mm_prompt *mm = NULL;
        glm_str body = { 0 };
        char *prompt = NULL;
        size_t plen = 0;
        int64_t n_rows = 0, n_patches;
        float *px = NULL, *rows = NULL;
        int32_t *greedy = NULL;
        int ng = 0, i;

        snprintf(what, sizeof(what), "vision prompt '%s'",
                 glm_get(cs, "name") ? glm_get(cs, "name")->u.string : "?");
        memset(&set, 0, sizeof(set));
        glm_ids_of(glm_get(cs, "greedy_ids"), &greedy, &ng);
        glm_json_write(&body, cs);
        if (glm_chat_template_render_request(tpl, body.data, body.len, NULL, &prompt, &plen,
                                             &err) != 0
            || glm_tokenizer_encode(tok, NULL, prompt, plen, &ids, &err) != 0
            || glm_media_load(&mo, cs, &set, &err) != 0
            || glm_media_expand(c, tok, NULL, &set, ids.ids, ids.len, &x, &grids, &err) != 0)
        {
            printf("KV fixture=%s %s error: %s\n", name, what, err.msg);
            failed = 1;
        } else {
            for (i = 0; i < set.n; i++) {
                n_rows += glm_vision_grid_tokens(c, &grids[i]);
            }
            px = glm_media_pixels(&set, &n_patches);
            rows = malloc((size_t) (n_rows ? n_rows : 1) * c->hidden_size * sizeof(float));
            if (px == NULL || rows == NULL
                || glm_vision_encode(m->vision, m->be, px, grids, set.n, rows, &err) != 0
                || (mm = glm_mm_prompt_new(c, x.ids, (int) x.len, grids, set.n, NULL, rows,
                                           n_rows, &err)) == NULL)
            {
                printf("KV fixture=%s %s error: %s\n", name, what,
                       px == NULL || rows == NULL ? "out of memory" : err.msg);
                free(rows);
                failed = 1;
            } else {
                failed = glm_compare_prompt(m, mm, x.ids, (int) x.len, ng, name, what, tally);
            }
        }
        glm_mm_prompt_unref(mm);
        glm_str_free(&body);
        free(prompt);
        free(px);
        free(grids);
        free(greedy);
        glm_tokenizer_ids_free(&ids);
        glm_tokenizer_ids_free(&x);
        glm_media_set_free(&set);
    }
    yajl_tree_free(ref);
    free(text);
    if (mo_ok) {
        glm_media_opts_free(&mo);
    }
    glm_chat_template_free(tpl);
    glm_tokenizer_free(tok);
    return failed;
}

static int
glm_check_fixture(const char *dir, glm_backend *be)
{
    char path[PATH_MAX], ebuf[256];
    const char *name = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    glm_kv_tally tally[2];
    yajl_val ref = NULL, prompts;
    glm_model *m;
    glm_err err;
    char *text, what[64];
    size_t pi;
    int di, failed = 0, failed_prompts;

    memset(tally, 0, sizeof(tally));
    m = glm_model_load(dir, be, &err);
    snprintf(path, sizeof(path), "%s/reference.json", dir);
    text = m ? glm_read_file(path, NULL, &err) : NULL;
    if (text == NULL) {
        printf("KV fixture=%s error: %s\n", name, err.msg);
        glm_model_free(m);
        return 1;
    }
    ref = yajl_tree_parse(text, ebuf, sizeof(ebuf));
    free(text);
    prompts = ref ? glm_get(ref, "prompts") : NULL;
    if (prompts == NULL || !YAJL_IS_ARRAY(prompts)) {
        printf("KV fixture=%s error: %s: no prompts\n", name, path);
        yajl_tree_free(ref);
        glm_model_free(m);
        return 1;
    }
    for (pi = 0; pi < prompts->u.array.len && !failed; pi++) {
        yajl_val pr = prompts->u.array.values[pi];
        int32_t *ids = NULL, *greedy = NULL;
        int n = 0, ng = 0;

        glm_ids_of(glm_get(pr, "ids"), &ids, &n);
        glm_ids_of(glm_get(pr, "greedy_ids"), &greedy, &ng);
        snprintf(what, sizeof(what), "prompt %zu", pi);
        failed = glm_compare_prompt(m, NULL, ids, n, ng, name, what, tally);
        free(ids);
        free(greedy);
    }
    if (!failed && m->vision != NULL) {
        failed = glm_vl_prompts(dir, m, name, tally);
    }
    failed_prompts = failed;
    for (di = 0; di < 2 && !failed_prompts; di++) {
        glm_kv_tally *t = &tally[di];
        double median = glm_tally_median(t);
        int ok = median <= glm_kv_cases[di].median_tol && t->max_diff <= glm_kv_cases[di].max_tol
                 && t->clear_ok == t->clear_n;

        printf("KV dtype=%s fixture=%s max_abs_logit_diff=%.3g greedy=%d/%d"
               " median_row_diff=%.3g clear_steps=%d/%d %s\n", glm_kv_cases[di].name, name,
               t->max_diff, t->greedy_ok, t->greedy_n, median, t->clear_ok, t->clear_n,
               ok ? "ok" : "FAIL");
        failed |= !ok;
    }
    for (di = 0; di < 2; di++) {
        free(tally[di].rows);
    }
    glm_model_set_kv_dtype(m, GLM_KV_CACHE_AUTO, &err);
    yajl_tree_free(ref);
    glm_model_free(m);
    return failed;
}

int
main(int argc, char **argv)
{
    glm_backend *be;
    int i, failed = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: kv_dtype_check FIXTURE_DIR...\n");
        return 2;
    }
    be = glm_backend_cpu_create(0);
    if (be == NULL) {
        fprintf(stderr, "kv_dtype_check: cannot start the CPU backend\n");
        return 1;
    }
    for (i = 1; i < argc; i++) {
        failed += glm_check_fixture(argv[i], be);
    }
    be->destroy(be);
    printf("kv-dtype: %d fixtures passed, %d failed\n", argc - 1 - failed, failed);
    return failed ? 1 : 0;
}
