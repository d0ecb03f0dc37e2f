/*
 * bench_dataset.c: see bench_dataset.h.
 */
#include "bench_dataset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "model/sampling.h"

/* vLLM's gen_prompt_decode_to_target_len max_retry */
#define GLM_BENCH_DATASET_RETRIES 10

/* ---- tokenizer.json "added_tokens" ids, without building a tree ---- */

typedef struct {
    int                 depth;       /* 1 inside the root object */
    int                 in_added;    /* the root key being read is "added_tokens" */
    int                 key_is_id;   /* the key just read (in an added token) is "id" */
    glm_tokenizer_ids  *ids;
    glm_err            *err;
    int                 failed;
} glm_bench_added_state;

static int
glm_bench_added_key(void *ctx, const unsigned char *key, size_t len)
{
    glm_bench_added_state *st = ctx;

    if (st->depth == 1) {
        st->in_added = len == 12 && memcmp(key, "added_tokens", 12) == 0;
    }
    st->key_is_id = st->in_added && st->depth == 3 && len == 2 && memcmp(key, "id", 2) == 0;
    return 1;
}

static int
glm_bench_added_integer(void *ctx, long long v)
{
    glm_bench_added_state *st = ctx;

    if (st->key_is_id && st->depth == 3 && v >= 0 && v <= INT32_MAX) {
        if (glm_tokenizer_ids_push(st->ids, (int32_t) v, st->err) < 0) {
            st->failed = 1;
            return 0;
        }
    }
    st->key_is_id = 0;
    return 1;
}

static int
glm_bench_added_scalar(void *ctx)
{
    ((glm_bench_added_state *) ctx)->key_is_id = 0;
    return 1;
}

static int
glm_bench_added_bool(void *ctx, int b)
{
    return glm_bench_added_scalar(ctx);
}

static int
glm_bench_added_double(void *ctx, double d)
{
    return glm_bench_added_scalar(ctx);
}

static int
glm_bench_added_string(void *ctx, const unsigned char *s, size_t len)
{
    return glm_bench_added_scalar(ctx);
}

static int
glm_bench_added_open(void *ctx)
{
    glm_bench_added_state *st = ctx;

    st->depth++;
    st->key_is_id = 0;
    return 1;
}

static int
glm_bench_added_close(void *ctx)
{
    ((glm_bench_added_state *) ctx)->depth--;
    return 1;
}

static const yajl_callbacks glm_bench_added_callbacks = {
    glm_bench_added_scalar,     /* null */
    glm_bench_added_bool,
    glm_bench_added_integer,
    glm_bench_added_double,
    NULL,                       /* number: integers and doubles instead */
    glm_bench_added_string,
    glm_bench_added_open,
    glm_bench_added_key,
    glm_bench_added_close,
    glm_bench_added_open,
    glm_bench_added_close,
};

static int
glm_bench_cmp_i32(const void *pa, const void *pb)
{
    int32_t a = *(const int32_t *) pa, b = *(const int32_t *) pb;

    return (a > b) - (a < b);
}

int
glm_bench_allowed_ids(const glm_tokenizer *tok, const char *json_path,
    glm_tokenizer_ids *out, glm_err *err)
{
    glm_tokenizer_ids added = { 0 };
    glm_bench_added_state st;
    yajl_handle h;
    yajl_status s;
    unsigned char *msg;
    char *json;
    size_t len, a = 0;
    int32_t id, vocab = glm_tokenizer_vocab_size(tok);
    int rc = -1;

    json = glm_read_file(json_path, &len, err);
    if (json == NULL) {
        return -1;
    }
    memset(&st, 0, sizeof(st));
    st.ids = &added;
    st.err = err;
    h = yajl_alloc(&glm_bench_added_callbacks, NULL, &st);
    if (h == NULL) {
        glm_errf(err, "out of memory for a JSON parser");
        goto done;
    }
    s = yajl_parse(h, (const unsigned char *) json, len);
    if (s == yajl_status_ok) {
        s = yajl_complete_parse(h);
    }
    if (s != yajl_status_ok) {
        if (!st.failed) {
            msg = yajl_get_error(h, 0, (const unsigned char *) json, len);
            glm_errf(err, "%s: invalid JSON: %s", json_path, (const char *) msg);
            err->msg[strcspn(err->msg, "\n")] = '\0';
            yajl_free_error(h, msg);
        }
        yajl_free(h);
        goto done;
    }
    yajl_free(h);
    qsort(added.ids, added.len, sizeof(*added.ids), glm_bench_cmp_i32);

    out->len = 0;
    for (id = 0; id < vocab; id++) {
        size_t n;
        while (a < added.len && added.ids[a] < id) {
            a++;
        }
        if ((a < added.len && added.ids[a] == id) || glm_tokenizer_is_special(tok, id)
            || glm_tokenizer_token_bytes(tok, id, &n) == NULL)
        {
            continue;
        }
        if (glm_tokenizer_ids_push(out, id, err) < 0) {
            goto done;
        }
    }
    if (out->len == 0) {
        glm_errf(err, "%s: no ordinary (non-added) token ids to make prompts from", json_path);
        goto done;
    }
    rc = 0;
done:
    glm_tokenizer_ids_free(&added);
    free(json);
    return rc;
}

/* ---- the random dataset ---- */

/* uniform in [0, n), n >= 1, without modulo bias */
static uint64_t
glm_bench_below(glm_rng *r, uint64_t n)
{
    uint64_t x, limit = UINT64_MAX - UINT64_MAX % n;

    do {
        x = glm_rng_next(r);
    } while (x >= limit);
    return x % n;
}

/* uniform in [0, 1) with 53 random bits */
static double
glm_bench_uniform(glm_rng *r)
{
    return (double) (glm_rng_next(r) >> 11) * 0x1p-53;
}

/*
 * vLLM's gen_prompt_decode_to_target_len: decode seq, re-encode, truncate
 * or pad with random allowed ids, until the re-encoded length is target
 * (at most 10 rounds).  Leaves the last decode in text and its re-encode in
 * enc; adds to *mismatch what the rounds left over.
 */
static int
glm_bench_fit_length(const glm_tokenizer *tok, glm_tokenizer_ctx *ctx,
    const glm_tokenizer_ids *allowed, glm_rng *rng, long target, glm_tokenizer_ids *seq,
    glm_tokenizer_buf *text, glm_tokenizer_ids *enc, long *mismatch, glm_err *err)
{
    long tries, k;

    for (tries = GLM_BENCH_DATASET_RETRIES; ; tries--) {
        text->len = 0;
        enc->len = 0;
        if (glm_tokenizer_decode(tok, seq->ids, seq->len, 0, text, err) < 0
            || glm_tokenizer_encode(tok, ctx, text->data ? text->data : "", text->len,
                                    enc, err) < 0)
        {
            return -1;
        }
        if (tries <= 0) {
            *mismatch += (long) enc->len - target;
            return 0;
        }
        if ((long) enc->len == target) {
            return 0;
        }
        seq->len = 0;
        for (k = 0; k < (long) enc->len && k < target; k++) {
            if (glm_tokenizer_ids_push(seq, enc->ids[k], err) < 0) {
                return -1;
            }
        }
        for (; k < target; k++) {
            if (glm_tokenizer_ids_push(seq, allowed->ids[glm_bench_below(rng, allowed->len)],
                                       err) < 0)
            {
                return -1;
            }
        }
    }
}

void
glm_bench_dataset_free(glm_bench_prompt *p, size_t n)
{
    size_t i;

    if (p == NULL) {
        return;
    }
    for (i = 0; i < n; i++) {
        free(p[i].text);
    }
    free(p);
}

glm_bench_prompt *
glm_bench_dataset_random(const glm_tokenizer *tok, const glm_tokenizer_ids *allowed,
    const glm_bench_dataset_cfg *cfg, long *mismatch, glm_err *err)
{
    glm_bench_prompt *out = NULL;
    glm_tokenizer_ctx *ctx = NULL;
    glm_tokenizer_ids seq = { 0 }, enc = { 0 };
    glm_tokenizer_buf text = { 0 };
    glm_rng rng;
    long in_lo, in_hi, out_lo, out_hi, *in_len = NULL, *out_len = NULL, *offset = NULL;
    int32_t *prefix = NULL;
    long i, k, target;
    size_t na = allowed->len;
    int32_t vocab = glm_tokenizer_vocab_size(tok);
    double r = cfg->range_ratio;

    *mismatch = 0;
    if (!(r >= 0.0 && r < 1.0)) {
        glm_errf(err, "--range-ratio %g: must be in [0, 1)", r);
        return NULL;
    }
    if (cfg->num_prompts < 1 || cfg->input_len < 1 || cfg->output_len < 1
        || cfg->prefix_len < 0)
    {
        glm_errf(err, "--num-prompts, --input-len and --output-len must be >= 1,"
                 " --random-prefix-len >= 0");
        return NULL;
    }
    in_lo = (long) floor((double) cfg->input_len * (1.0 - r));
    in_hi = (long) ceil((double) cfg->input_len * (1.0 + r));
    out_lo = (long) floor((double) cfg->output_len * (1.0 - r));
    out_hi = (long) ceil((double) cfg->output_len * (1.0 + r));
    out_lo = out_lo < 1 ? 1 : out_lo;
    out_hi = out_hi < 1 ? 1 : out_hi;
    if (in_lo < 1) {
        glm_errf(err, "--input-len %ld with --range-ratio %g allows empty prompts",
                 cfg->input_len, r);
        return NULL;
    }

    out = calloc((size_t) cfg->num_prompts, sizeof(*out));
    in_len = malloc((size_t) cfg->num_prompts * sizeof(long));
    out_len = malloc((size_t) cfg->num_prompts * sizeof(long));
    offset = malloc((size_t) cfg->num_prompts * sizeof(long));
    prefix = malloc((size_t) (cfg->prefix_len ? cfg->prefix_len : 1) * sizeof(int32_t));
    ctx = glm_tokenizer_ctx_new(tok, err);
    if (out == NULL || in_len == NULL || out_len == NULL || offset == NULL || prefix == NULL
        || ctx == NULL)
    {
        if (ctx != NULL) {
            glm_errf(err, "out of memory for %ld prompts", cfg->num_prompts);
        }
        goto fail;
    }

    /* vLLM's order of draws: all input lengths, all output lengths, offsets */
    glm_rng_seed(&rng, cfg->seed);
    for (i = 0; i < cfg->num_prompts; i++) {
        in_len[i] = in_lo + (long) glm_bench_below(&rng, (uint64_t) (in_hi - in_lo + 1));
    }
    for (i = 0; i < cfg->num_prompts; i++) {
        out_len[i] = out_lo + (long) glm_bench_below(&rng, (uint64_t) (out_hi - out_lo + 1));
    }
    for (i = 0; i < cfg->num_prompts; i++) {
        offset[i] = (long) glm_bench_below(&rng, (uint64_t) vocab);
    }
    /* the prefix is fitted on its own first (as current vLLM's get_prefix),
     * so that it survives every prompt's fitting: drawn ids re-encode to
     * more ids, and fitting prefix + own ids at once would cut the own part */
    seq.len = 0;
    for (k = 0; k < cfg->prefix_len; k++) {
        if (glm_tokenizer_ids_push(&seq, allowed->ids[glm_bench_below(&rng, na)], err) < 0) {
            goto fail;
        }
    }
    if (cfg->prefix_len > 0
        && glm_bench_fit_length(tok, ctx, allowed, &rng, cfg->prefix_len, &seq, &text, &enc,
                                mismatch, err) < 0)
    {
        glm_err_prefix(err, "prefix");
        goto fail;
    }
    for (k = 0; k < cfg->prefix_len; k++) {
        prefix[k] = k < (long) enc.len ? enc.ids[k] : seq.ids[k];
    }

    for (i = 0; i < cfg->num_prompts; i++) {
        target = cfg->prefix_len + in_len[i];
        seq.len = 0;
        for (k = 0; k < target; k++) {
            int32_t id = k < cfg->prefix_len ? prefix[k]
                : allowed->ids[(size_t) (offset[i] + i + k - cfg->prefix_len) % na];
            if (glm_tokenizer_ids_push(&seq, id, err) < 0) {
                goto fail;
            }
        }
        /* decode, re-encode, fix the length; the text is the last decode */
        if (glm_bench_fit_length(tok, ctx, allowed, &rng, target, &seq, &text, &enc, mismatch,
                                 err) < 0)
        {
            glm_err_prefix(err, "prompt %ld", i);
            goto fail;
        }
        out[i].text = malloc(text.len + 1);
        if (out[i].text == NULL) {
            glm_errf(err, "out of memory for prompt %ld", i);
            goto fail;
        }
        if (text.len) {
            memcpy(out[i].text, text.data, text.len);
        }
        out[i].text[text.len] = '\0';
        out[i].text_len = text.len;
        out[i].prompt_len = (int) enc.len;
        out[i].output_len = (int) out_len[i];
    }
    glm_tokenizer_ids_free(&seq);
    glm_tokenizer_ids_free(&enc);
    glm_tokenizer_buf_free(&text);
    glm_tokenizer_ctx_free(ctx);
    free(in_len);
    free(out_len);
    free(offset);
    free(prefix);
    return out;

fail:
    glm_bench_dataset_free(out, out ? (size_t) cfg->num_prompts : 0);
    glm_tokenizer_ids_free(&seq);
    glm_tokenizer_ids_free(&enc);
    glm_tokenizer_buf_free(&text);
    glm_tokenizer_ctx_free(ctx);
    free(in_len);
    free(out_len);
    free(offset);
    free(prefix);
    return NULL;
}

void
glm_bench_arrivals(double *delay, size_t n, double rate, uint64_t seed)
{
    glm_rng rng;
    double acc = 0.0, scale;
    size_t i;

    if (n == 0) {
        return;
    }
    if (!isfinite(rate)) {
        memset(delay, 0, n * sizeof(*delay));
        return;
    }
    /* a stream of its own, so that arrivals do not depend on the prompts */
    glm_rng_seed(&rng, seed ^ 0x6172726976616cull);
    for (i = 0; i < n; i++) {
        acc += -log1p(-glm_bench_uniform(&rng)) / rate;
        delay[i] = acc;
    }
    if (delay[n - 1] > 0.0) {
        scale = ((double) n / rate) / delay[n - 1];
        for (i = 0; i < n; i++) {
            delay[i] *= scale;
        }
    }
}
