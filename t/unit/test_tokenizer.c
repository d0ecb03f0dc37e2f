/*
 * test_tokenizer.c: the tokenizer against Hugging Face tokenizers.
 *
 *   test_tokenizer [FIXTURE_DIR]     (default t/fixtures/tokenizer)
 *   test_tokenizer --corpus-only DIR
 *       only the reference corpus (and its threads run) of another
 *       tokenizer, e.g. build/qwen3-tokenizer from
 *       t/reference/qwen3_tokenizer.py; prints "SKIPPED: ..." and passes
 *       when DIR/tokenizer.json is absent
 *
 * FIXTURE_DIR/tok_reference.jsonl holds HF's answers (t/reference/
 * make_fixtures.py): for each {"text", "ids"} line, encode(text) must be ids,
 * decode(ids) must be text, and streaming the ids through the detokenizer
 * must give text in valid UTF-8 chunks; for each {"decode_ids",
 * "skip_special", "text"} line, decode and the detokenizer must give text.
 * Then hand cases, the same corpus encoded from several threads at once,
 * and small generated tokenizer.json files for the options the fixture does
 * not use (legacy merges, ignore_merges, GPT-2's ByteLevel regex) and for
 * each thing the loader must refuse; their expected ids come from HF
 * tokenizers 0.23.3 on the same JSON.  FIXTURE_DIR/normalizers.jsonl
 * (t/reference/make_normalizer_fixtures.py) holds HF's normalized text and
 * ids for the fixture with each normalizer, and for byte_fallback.json.
 *
 * Prints "TOK corpus_bytes=<encode text bytes> mismatches=<encode lines whose
 * ids differ>" ("TOK model=DIR ..." with --corpus-only), "NORM cases=N
 * mismatches=M" and "tokenizer: N passed, M failed"; exits 1 on any failure.
 */
#include "text/tokenizer.h"
#include "util/json.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#define SHOW_MAX 5
#define N_THREADS 4

typedef struct {
    int passed, failed, shown;
} tally;

static void
check(tally *t, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
check(tally *t, int ok, const char *fmt, ...)
{
    va_list ap;

    if (ok) {
        t->passed++;
        return;
    }
    t->failed++;
    if (t->shown++ < 3 * SHOW_MAX) {
        fprintf(stderr, "FAIL: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\n");
    }
}

/* Independent of the tokenizer's own validator on purpose. */
static int
valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0, k, j;
    unsigned cp, min;

    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        if ((s[i] & 0xe0) == 0xc0) {
            k = 1, cp = s[i] & 0x1f, min = 0x80;
        } else if ((s[i] & 0xf0) == 0xe0) {
            k = 2, cp = s[i] & 0x0f, min = 0x800;
        } else if ((s[i] & 0xf8) == 0xf0) {
            k = 3, cp = s[i] & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (i + k >= n) {
            return 0;
        }
        for (j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return 0;
        }
        i += k + 1;
    }
    return 1;
}

/* Prints text as an escaped C-ish string, at most max bytes of it. */
static void
show_bytes(const char *label, const char *s, size_t n, size_t max)
{
    size_t i;

    fprintf(stderr, "    %s \"", label);
    for (i = 0; i < n && i < max; i++) {
        unsigned char c = (unsigned char) s[i];

        if (c == '\n') {
            fprintf(stderr, "\\n");
        } else if (c == '"' || c == '\\') {
            fprintf(stderr, "\\%c", c);
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(stderr, "\\x%02x", c);
        } else {
            fputc(c, stderr);
        }
    }
    fprintf(stderr, "\"%s (%zu bytes)\n", n > max ? "..." : "", n);
}

/* Position of the first difference of two id lists, and the ids around it,
 * with the text each side's ids there decode to. */
static void
show_id_diff(const glm_tokenizer *tok, const int32_t *ours, size_t n_ours,
             const int32_t *want, size_t n_want)
{
    size_t k = 0, i, from, m = n_ours < n_want ? n_ours : n_want;
    glm_tokenizer_buf a = {0}, b = {0};
    glm_err err;

    while (k < m && ours[k] == want[k]) {
        k++;
    }
    from = k > 3 ? k - 3 : 0;
    fprintf(stderr, "    first difference at id #%zu (ours %zu ids, expected %zu)\n", k,
            n_ours, n_want);
    fprintf(stderr, "    ours:     ...");
    for (i = from; i < n_ours && i < k + 6; i++) {
        fprintf(stderr, i == k ? " [%d]" : " %d", (int) ours[i]);
    }
    fprintf(stderr, "\n    expected: ...");
    for (i = from; i < n_want && i < k + 6; i++) {
        fprintf(stderr, i == k ? " [%d]" : " %d", (int) want[i]);
    }
    fprintf(stderr, "\n");
    if (glm_tokenizer_decode(tok, ours + k, (n_ours - k < 6 ? n_ours - k : 6), 0, &a, &err)
            == 0
        && glm_tokenizer_decode(tok, want + k, (n_want - k < 6 ? n_want - k : 6), 0, &b,
                                &err) == 0)
    {
        show_bytes("ours from there:    ", a.data, a.len, 80);
        show_bytes("expected from there:", b.data, b.len, 80);
    }
    glm_tokenizer_buf_free(&a);
    glm_tokenizer_buf_free(&b);
}

static int
same_ids(const glm_tokenizer_ids *a, const int32_t *b, size_t n)
{
    return a->len == n && (n == 0 || memcmp(a->ids, b, n * sizeof(*b)) == 0);
}

static int
same_text(const glm_tokenizer_buf *a, const char *b, size_t n)
{
    return a->len == n && (n == 0 || memcmp(a->data, b, n) == 0);
}

/* Streams ids through a detokenizer; every chunk must be valid UTF-8 and
 * the whole must equal want. */
static void
check_stream(tally *t, const glm_tokenizer *tok, const int32_t *ids, size_t n,
             int skip_special, const char *want, size_t want_len, size_t lineno)
{
    glm_detok d;
    glm_tokenizer_buf out = {0};
    glm_err err;
    size_t i, before;
    int chunks_ok = 1, rc = 0;

    glm_detok_init(&d, tok, skip_special);
    for (i = 0; i < n && rc == 0; i++) {
        before = out.len;
        rc = glm_detok_push(&d, ids[i], &out, &err);
        if (!valid_utf8((const unsigned char *) out.data + before, out.len - before)) {
            chunks_ok = 0;
        }
    }
    before = out.len;
    if (rc == 0) {
        rc = glm_detok_flush(&d, &out, &err);
    }
    if (!valid_utf8((const unsigned char *) out.data + before, out.len - before)) {
        chunks_ok = 0;
    }
    check(t, rc == 0 && chunks_ok, "line %zu: detokenizer emitted a chunk that is not "
          "valid UTF-8", lineno);
    check(t, rc == 0 && same_text(&out, want, want_len),
          "line %zu: streamed text differs from the expected text", lineno);
    glm_tokenizer_buf_free(&out);
}


/* ------------------------------------------------------------------------ */
/* the reference corpus */

typedef struct {
    char *text;
    size_t text_len;
    int32_t *ids;
    size_t n_ids;
} enc_case;

typedef struct {
    enc_case *cases;
    size_t n, cap;
    size_t bytes;
} enc_cases;

static int
keep_case(enc_cases *c, const glm_tokenizer_ref *ref)
{
    enc_case *e;

    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 1024;
        e = realloc(c->cases, c->cap * sizeof(*e));
        if (e == NULL) {
            return -1;
        }
        c->cases = e;
    }
    e = &c->cases[c->n];
    e->text = malloc(ref->text.len + 1);
    e->ids = malloc((ref->ids.len + 1) * sizeof(int32_t));
    if (e->text == NULL || e->ids == NULL) {
        free(e->text);
        free(e->ids);
        return -1;
    }
    if (ref->text.len > 0) {
        memcpy(e->text, ref->text.data, ref->text.len);
    }
    if (ref->ids.len > 0) {
        memcpy(e->ids, ref->ids.ids, ref->ids.len * sizeof(int32_t));
    }
    e->text_len = ref->text.len;
    e->n_ids = ref->ids.len;
    c->bytes += ref->text.len;
    c->n++;
    return 0;
}

static void
free_cases(enc_cases *c)
{
    size_t i;

    for (i = 0; i < c->n; i++) {
        free(c->cases[i].text);
        free(c->cases[i].ids);
    }
    free(c->cases);
}

/* Runs every corpus line; fills cases with the encode lines. */
static int
run_corpus(tally *t, const glm_tokenizer *tok, glm_tokenizer_ctx *ctx, const char *dir,
           enc_cases *cases, size_t *mismatches)
{
    char path[4096], *data, *line, *nl;
    size_t len, lineno = 0, shown = 0;
    glm_tokenizer_ref ref;
    glm_tokenizer_ids ids = {0};
    glm_tokenizer_buf text = {0};
    const glm_tokenizer_buf *want;
    glm_err err;
    int rc, n_decode = 0;

    memset(&ref, 0, sizeof(ref));
    snprintf(path, sizeof(path), "%s/tok_reference.jsonl", dir);
    data = glm_read_file(path, &len, &err);
    if (data == NULL) {
        fprintf(stderr, "test_tokenizer: %s\n", err.msg);
        return -1;
    }
    for (line = data; line < data + len; line = nl + 1) {
        nl = memchr(line, '\n', (size_t) (data + len - line));
        if (nl == NULL) {
            nl = data + len;
        }
        lineno++;
        if (nl == line) {
            continue;
        }
        if (glm_tokenizer_ref_parse(&ref, line, (size_t) (nl - line), &err) != 0) {
            check(t, 0, "%s:%zu: %s", path, lineno, err.msg);
            continue;
        }
        if (ref.has_text && ref.has_ids) {
            if (keep_case(cases, &ref) != 0) {
                fprintf(stderr, "test_tokenizer: out of memory\n");
                break;
            }
            ids.len = 0;
            rc = glm_tokenizer_encode(tok, ctx, ref.text.data, ref.text.len, &ids, &err);
            if (rc != 0 || !same_ids(&ids, ref.ids.ids, ref.ids.len)) {
                ++*mismatches;
                check(t, 0, "line %zu: encode differs from HF%s%s", lineno,
                      rc ? ": " : "", rc ? err.msg : "");
                if (rc == 0 && shown++ < SHOW_MAX) {
                    show_bytes("text:", ref.text.data, ref.text.len, 120);
                    show_id_diff(tok, ids.ids, ids.len, ref.ids.ids, ref.ids.len);
                }
            } else {
                check(t, 1, "encode");
            }
            /* a normalizer may have changed the text: then the line says
             * what the ids decode to */
            want = ref.has_decoded ? &ref.decoded : &ref.text;
            text.len = 0;
            rc = glm_tokenizer_decode(tok, ref.ids.ids, ref.ids.len, 0, &text, &err);
            check(t, rc == 0 && same_text(&text, want->data, want->len),
                  "line %zu: decode(ids) differs from the %s", lineno,
                  ref.has_decoded ? "decoded text" : "text");
            check_stream(t, tok, ref.ids.ids, ref.ids.len, 0, want->data, want->len,
                         lineno);
        } else if (ref.has_text && ref.has_decode_ids && ref.has_skip_special) {
            n_decode++;
            text.len = 0;
            rc = glm_tokenizer_decode(tok, ref.decode_ids.ids, ref.decode_ids.len,
                                      ref.skip_special, &text, &err);
            check(t, rc == 0 && same_text(&text, ref.text.data, ref.text.len),
                  "line %zu: decode(skip_special=%d) differs from HF", lineno,
                  ref.skip_special);
            if (rc == 0 && !same_text(&text, ref.text.data, ref.text.len)
                && shown++ < SHOW_MAX)
            {
                show_bytes("ours:    ", text.data, text.len, 160);
                show_bytes("expected:", ref.text.data, ref.text.len, 160);
            }
            check_stream(t, tok, ref.decode_ids.ids, ref.decode_ids.len,
                         ref.skip_special, ref.text.data, ref.text.len, lineno);
        } else {
            check(t, 0, "%s:%zu: neither an encode nor a decode case", path, lineno);
        }
    }
    check(t, cases->n > 0 && n_decode > 0, "%s: expected both encode and decode cases",
          path);
    glm_tokenizer_ref_free(&ref);
    glm_tokenizer_ids_free(&ids);
    glm_tokenizer_buf_free(&text);
    free(data);
    return 0;
}


/* ------------------------------------------------------------------------ */
/* threads */

typedef struct {
    const glm_tokenizer *tok;
    const enc_cases *cases;
    int use_ctx;
    size_t bad;
} thread_job;

static void *
thread_main(void *arg)
{
    thread_job *job = arg;
    glm_tokenizer_ctx *ctx = NULL;
    glm_tokenizer_ids ids = {0};
    glm_err err;
    size_t i;
    const enc_case *c;

    if (job->use_ctx && (ctx = glm_tokenizer_ctx_new(job->tok, &err)) == NULL) {
        job->bad = job->cases->n;
        return NULL;
    }
    for (i = 0; i < job->cases->n; i++) {
        c = &job->cases->cases[i];
        ids.len = 0;
        if (glm_tokenizer_encode(job->tok, ctx, c->text, c->text_len, &ids, &err) != 0
            || !same_ids(&ids, c->ids, c->n_ids))
        {
            job->bad++;
        }
    }
    glm_tokenizer_ids_free(&ids);
    glm_tokenizer_ctx_free(ctx);
    return NULL;
}

static void
run_threads(tally *t, const glm_tokenizer *tok, const enc_cases *cases)
{
    pthread_t th[N_THREADS];
    thread_job job[N_THREADS];
    int i;

    for (i = 0; i < N_THREADS; i++) {
        job[i].tok = tok;
        job[i].cases = cases;
        job[i].use_ctx = i != 0;    /* thread 0 takes the ctx == NULL path */
        job[i].bad = 0;
        if (pthread_create(&th[i], NULL, thread_main, &job[i]) != 0) {
            check(t, 0, "pthread_create failed");
            job[i].bad = 0;
            th[i] = pthread_self();
        }
    }
    for (i = 0; i < N_THREADS; i++) {
        if (!pthread_equal(th[i], pthread_self())) {
            pthread_join(th[i], NULL);
        }
        check(t, job[i].bad == 0, "thread %d (%s): %zu of %zu encodes differ", i,
              job[i].use_ctx ? "own ctx" : "ctx NULL", job[i].bad, cases->n);
    }
}


/* ------------------------------------------------------------------------ */
/* hand cases on the fixture */

static void
encode_is(tally *t, const glm_tokenizer *tok, glm_tokenizer_ctx *ctx, const char *text,
          size_t len, const int32_t *want, size_t n_want, const char *what)
{
    glm_tokenizer_ids ids = {0};
    glm_err err;
    int rc = glm_tokenizer_encode(tok, ctx, text, len, &ids, &err);

    check(t, rc == 0 && same_ids(&ids, want, n_want), "%s: encode gives %s", what,
          rc ? err.msg : "other ids");
    glm_tokenizer_ids_free(&ids);
}

static void
decode_is(tally *t, const glm_tokenizer *tok, const int32_t *ids, size_t n, int skip,
          const char *want, const char *what)
{
    glm_tokenizer_buf out = {0};
    glm_err err;
    int rc = glm_tokenizer_decode(tok, ids, n, skip, &out, &err);

    check(t, rc == 0 && same_text(&out, want, strlen(want)), "%s: decode gives \"%.*s\"",
          what, (int) out.len, out.data ? out.data : "");
    glm_tokenizer_buf_free(&out);
}

static void
hand_cases(tally *t, const glm_tokenizer *tok, glm_tokenizer_ctx *ctx)
{
    static const struct {
        const char *text;
        size_t len;
    } bad[] = {
        { "\xff", 1 }, { "ab\xc3", 3 }, { "\xc0\xaf", 2 }, { "\xed\xa0\x80", 3 },
        { "\xf4\x90\x80\x80", 4 }, { "ok\x80ok", 5 }, { "\xe2\x82", 2 },
    };
    glm_tokenizer_ids ids = {0};
    glm_tokenizer_buf out = {0};
    glm_detok d;
    glm_err err;
    int32_t a = glm_tokenizer_token_id(tok, "a"), b = glm_tokenizer_token_id(tok, "b");
    int32_t user = glm_tokenizer_token_id(tok, "<|user|>");
    int32_t think = glm_tokenizer_token_id(tok, "<think>");
    int32_t eot = glm_tokenizer_token_id(tok, "<|endoftext|>");
    /* the byte-level tokens of f0 9f 98 80 (U+1F600): "ð", "Ł", "ĺ", "Ģ" */
    static const char *const emoji_bytes[4] = {
        "\xc3\xb0", "\xc5\x81", "\xc4\xba", "\xc4\xa2",
    };
    int32_t emoji[4];
    size_t i, n, before;
    const uint8_t *p;
    int rc, split_ok = 1;

    /* the empty string: no ids, no error */
    rc = glm_tokenizer_encode(tok, ctx, "", 0, &ids, &err);
    check(t, rc == 0 && ids.len == 0, "empty text: rc %d, %zu ids", rc, ids.len);
    rc = glm_tokenizer_encode(tok, NULL, "", 0, &ids, &err);
    check(t, rc == 0 && ids.len == 0, "empty text, ctx NULL: rc %d, %zu ids", rc, ids.len);
    decode_is(t, tok, NULL, 0, 0, "", "no ids");

    /* invalid UTF-8 is an error, with ctx and without */
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ids.len = 0;
        rc = glm_tokenizer_encode(tok, ctx, bad[i].text, bad[i].len, &ids, &err);
        check(t, rc == -1 && strstr(err.msg, "UTF-8") != NULL,
              "invalid UTF-8 case %zu: rc %d", i, rc);
        rc = glm_tokenizer_encode(tok, NULL, bad[i].text, bad[i].len, &ids, &err);
        check(t, rc == -1, "invalid UTF-8 case %zu, ctx NULL: rc %d", i, rc);
    }

    /* accessors, against the fixture's known ids */
    check(t, glm_tokenizer_vocab_size(tok) == 3036, "vocab size %d, want 3036",
          (int) glm_tokenizer_vocab_size(tok));
    check(t, eot == 3000 && user == 3007 && think == 3021,
          "token ids: <|endoftext|> %d <|user|> %d <think> %d", (int) eot, (int) user,
          (int) think);
    check(t, glm_tokenizer_token_id(tok, "<|no such token|>") == -1, "unknown token id");
    check(t, glm_tokenizer_is_special(tok, user) && !glm_tokenizer_is_special(tok, think)
          && !glm_tokenizer_is_special(tok, a) && !glm_tokenizer_is_special(tok, -1)
          && !glm_tokenizer_is_special(tok, 1 << 30), "is_special");
    p = glm_tokenizer_token_bytes(tok, glm_tokenizer_token_id(tok, "\xc4\xa0"), &n);
    check(t, p != NULL && n == 1 && p[0] == ' ', "bytes of \"Ġ\" are a space");
    p = glm_tokenizer_token_bytes(tok, user, &n);
    check(t, p != NULL && n == 8 && memcmp(p, "<|user|>", 8) == 0, "bytes of <|user|>");
    check(t, glm_tokenizer_token_bytes(tok, 5000, &n) == NULL && n == 0,
          "bytes of an unknown id");

    /* unknown ids are skipped, special ones only when asked */
    {
        int32_t v[] = { a, 999999, -1, 3036, b, user, think };

        decode_is(t, tok, v, 7, 0, "ab<|user|><think>", "unknown ids");
        decode_is(t, tok, v, 7, 1, "ab<think>", "skip_special");
    }

    /* special tokens inside text, whole and cut short */
    {
        int32_t v1[] = { user, a };

        encode_is(t, tok, ctx, "<|user|>a", 9, v1, 2, "<|user|>a");
    }
    ids.len = 0;
    rc = glm_tokenizer_encode(tok, ctx, "<|user|", 7, &ids, &err);
    for (i = 0; rc == 0 && i < ids.len; i++) {
        rc = ids.ids[i] >= 3000 ? -2 : 0;
    }
    check(t, rc == 0 && ids.len > 1, "a cut-short special token is plain text");

    /* NUL bytes are text like any other */
    ids.len = 0;
    rc = glm_tokenizer_encode(tok, ctx, "a\0b", 3, &ids, &err);
    out.len = 0;
    check(t, rc == 0 && glm_tokenizer_decode(tok, ids.ids, ids.len, 0, &out, &err) == 0
          && same_text(&out, "a\0b", 3), "NUL inside text round-trips");

    /* the streaming detokenizer holds a 4-byte sequence fed one byte token
     * at a time until it is whole */
    for (i = 0; i < 4; i++) {
        emoji[i] = glm_tokenizer_token_id(tok, emoji_bytes[i]);
        split_ok = split_ok && emoji[i] >= 0;
    }
    if (split_ok) {
        out.len = 0;
        glm_detok_init(&d, tok, 0);
        for (i = 0; i < 3; i++) {
            glm_detok_push(&d, emoji[i], &out, &err);
        }
        check(t, out.len == 0, "detok holds an incomplete sequence (%zu bytes out)", out.len);
        glm_detok_push(&d, emoji[3], &out, &err);
        check(t, same_text(&out, "\xf0\x9f\x98\x80", 4), "detok emits it when whole");
        /* cut short by the end of the stream: one U+FFFD at flush */
        out.len = 0;
        glm_detok_push(&d, emoji[0], &out, &err);
        glm_detok_push(&d, emoji[1], &out, &err);
        before = out.len;
        glm_detok_flush(&d, &out, &err);
        check(t, before == 0 && same_text(&out, "\xef\xbf\xbd", 3),
              "flush turns a held prefix into U+FFFD");
        /* broken by an ASCII byte: U+FFFD then the byte */
        out.len = 0;
        glm_detok_push(&d, emoji[0], &out, &err);
        glm_detok_push(&d, a, &out, &err);
        glm_detok_flush(&d, &out, &err);
        check(t, same_text(&out, "\xef\xbf\xbd" "a", 4), "broken sequence then 'a'");
    }
    check(t, split_ok, "byte tokens for the split-sequence case exist");

    glm_tokenizer_ids_free(&ids);
    glm_tokenizer_buf_free(&out);
}


/* ------------------------------------------------------------------------ */
/* normalizers and byte fallback, against t/reference/make_normalizer_fixtures.py */

/* The JSON value starting at p (an object or array), as [p, *end). */
static int
json_value_end(const char *p, const char **end)
{
    int depth = 0, in_str = 0;

    for (; *p != '\0'; p++) {
        if (in_str) {
            if (*p == '\\' && p[1] != '\0') {
                p++;
            } else if (*p == '"') {
                in_str = 0;
            }
        } else if (*p == '"') {
            in_str = 1;
        } else if (*p == '{' || *p == '[') {
            depth++;
        } else if ((*p == '}' || *p == ']') && --depth == 0) {
            *end = p + 1;
            return 0;
        }
    }
    return -1;
}

/* Writes the fixture's tokenizer.json with "normalizer": null replaced by
 * the normalizer text nz[0..nz_len) (and ignore_merges turned on) to path. */
static int
write_variant(const char *base, const char *path, const char *nz, size_t nz_len,
              int ignore_merges)
{
    static const char null_nz[] = "\"normalizer\": null";
    static const char im_off[] = "\"ignore_merges\": false";
    const char *a = strstr(base, null_nz), *b = strstr(base, im_off);
    FILE *f;

    if (a == NULL || b == NULL || b < a || (f = fopen(path, "w")) == NULL) {
        return -1;
    }
    fprintf(f, "%.*s\"normalizer\": %.*s", (int) (a - base), base, (int) nz_len, nz);
    a += sizeof(null_nz) - 1;
    if (ignore_merges) {
        fprintf(f, "%.*s\"ignore_merges\": true%s", (int) (b - a), a,
                b + sizeof(im_off) - 1);
    } else {
        fputs(a, f);
    }
    return fclose(f);
}

typedef struct {
    glm_tokenizer *tok;
    char key[4096];             /* what it was loaded from */
} norm_loaded;

/* The tokenizer for one fixture line, reloaded only when the line asks for
 * another one than the previous line. */
static glm_tokenizer *
norm_tokenizer(norm_loaded *cur, const char *dir, const char *line, yajl_val root,
               const char *base, const char *tmpdir, glm_err *err)
{
    yajl_val file = glm_json_get(root, "file");
    int im = YAJL_IS_TRUE(glm_json_get(root, "ignore_merges"));
    const char *nz = strstr(line, "\"normalizer\": "), *nz_end = NULL;
    char key[4096], path[4096];

    if (YAJL_IS_STRING(file)) {
        snprintf(key, sizeof(key), "file %s", file->u.string);
        snprintf(path, sizeof(path), "%s/%s", dir, file->u.string);
    } else {
        if (nz == NULL || json_value_end(nz + 14, &nz_end) != 0) {
            glm_errf(err, "line has neither \"file\" nor a \"normalizer\" object");
            return NULL;
        }
        snprintf(key, sizeof(key), "%d %.*s", im, (int) (nz_end - nz - 14), nz + 14);
        snprintf(path, sizeof(path), "%s/tokenizer.json", tmpdir);
    }
    if (cur->tok != NULL && strcmp(cur->key, key) == 0) {
        return cur->tok;
    }
    glm_tokenizer_free(cur->tok);
    cur->tok = NULL;
    if (!YAJL_IS_STRING(file)
        && write_variant(base, path, nz + 14, (size_t) (nz_end - nz - 14), im) != 0)
    {
        glm_errf(err, "cannot write %s", path);
        return NULL;
    }
    cur->tok = glm_tokenizer_load(path, err);
    snprintf(cur->key, sizeof(cur->key), "%s", key);
    return cur->tok;
}

static void
norm_cases(tally *t, const char *dir)
{
    char path[4096], tmpdir[] = "/tmp/test_tokenizer_nz.XXXXXX", ebuf[256];
    char *data, *base, *line, *nl;
    size_t len, lineno = 0, n_cases = 0, mismatches = 0, k;
    yajl_val root, text, normalized, ids;
    norm_loaded cur = { NULL, "" };
    glm_tokenizer *tok;
    glm_tokenizer_buf out = {0};
    glm_tokenizer_ids got = {0};
    int32_t want[4096];
    glm_err err;
    int ok, rc;

    snprintf(path, sizeof(path), "%s/normalizers.jsonl", dir);
    data = glm_read_file(path, &len, &err);
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    base = glm_read_file(path, NULL, &err);
    if (data == NULL || base == NULL || mkdtemp(tmpdir) == NULL) {
        check(t, 0, "normalizer fixtures: %s", err.msg);
        free(data);
        free(base);
        return;
    }
    for (line = data; line < data + len; line = nl + 1) {
        nl = memchr(line, '\n', (size_t) (data + len - line));
        if (nl == NULL) {
            nl = data + len;
        }
        lineno++;
        if (nl == line) {
            continue;
        }
        *nl = '\0';
        root = yajl_tree_parse(line, ebuf, sizeof(ebuf));
        text = glm_json_get(root, "text");
        normalized = glm_json_get(root, "normalized");
        ids = glm_json_get(root, "ids");
        if (root == NULL || !YAJL_IS_STRING(text) || !YAJL_IS_STRING(normalized)) {
            check(t, 0, "normalizers.jsonl:%zu: malformed line", lineno);
            yajl_tree_free(root);
            continue;
        }
        tok = norm_tokenizer(&cur, dir, line, root, base, tmpdir, &err);
        if (tok == NULL) {
            check(t, 0, "normalizers.jsonl:%zu: %s", lineno, err.msg);
            yajl_tree_free(root);
            continue;
        }
        n_cases++;
        out.len = 0;
        rc = glm_tokenizer_normalize(tok, NULL, text->u.string, strlen(text->u.string), &out,
                                     &err);
        ok = rc == 0 && same_text(&out, normalized->u.string, strlen(normalized->u.string));
        check(t, ok, "normalizers.jsonl:%zu: normalized text differs from HF's", lineno);
        if (!ok && t->shown < 3 * SHOW_MAX) {
            show_bytes("text:    ", text->u.string, strlen(text->u.string), 120);
            show_bytes("ours:    ", out.data ? out.data : "", out.len, 120);
            show_bytes("expected:", normalized->u.string, strlen(normalized->u.string), 120);
        }
        if (YAJL_IS_ARRAY(ids) && ids->u.array.len <= sizeof(want) / sizeof(want[0])) {
            for (k = 0; k < ids->u.array.len; k++) {
                want[k] = (int32_t) YAJL_GET_INTEGER(ids->u.array.values[k]);
            }
            got.len = 0;
            rc = glm_tokenizer_encode(tok, NULL, text->u.string, strlen(text->u.string), &got,
                                      &err);
            ok = ok && rc == 0 && same_ids(&got, want, ids->u.array.len);
            check(t, rc == 0 && same_ids(&got, want, ids->u.array.len),
                  "normalizers.jsonl:%zu: encode differs from HF%s%s", lineno,
                  rc ? ": " : "", rc ? err.msg : "");
            if (rc == 0 && !same_ids(&got, want, ids->u.array.len) && t->shown < 3 * SHOW_MAX) {
                show_id_diff(tok, got.ids, got.len, want, ids->u.array.len);
            }
        }
        mismatches += !ok;
        yajl_tree_free(root);
    }
    check(t, n_cases > 300, "normalizers.jsonl: only %zu cases", n_cases);
    printf("NORM cases=%zu mismatches=%zu\n", n_cases, mismatches);
    glm_tokenizer_free(cur.tok);
    glm_tokenizer_buf_free(&out);
    glm_tokenizer_ids_free(&got);
    snprintf(path, sizeof(path), "%s/tokenizer.json", tmpdir);
    unlink(path);
    rmdir(tmpdir);
    free(data);
    free(base);
}


/* ------------------------------------------------------------------------ */
/* generated tokenizer.json files */

typedef struct {
    const char *normalizer;
    const char *pre_tokenizer;
    const char *post_processor;
    const char *decoder;
    const char *added_tokens;
    const char *model_extra;        /* inserted into "model" */
    const char *dropout;
    int legacy_merges;
    int drop_byte;                  /* byte whose token is left out, or -1 */
    const char *subword_affix;      /* continuing_subword_prefix, end_of_word_suffix */
    const char *unk_token;
} mini_opts;

/* GLM's split regex, JSON-escaped. */
#define MINI_GLM_REGEX \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?" \
    "[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+"

#define MINI_PRE_GLM \
    "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":" \
    "{\"Regex\":\"" MINI_GLM_REGEX "\"},\"behavior\":\"Isolated\",\"invert\":false}," \
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true," \
    "\"use_regex\":false}]}"
#define MINI_PRE_GPT2 \
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true," \
    "\"use_regex\":true}"
#define MINI_ADDED \
    "[{\"id\":268,\"content\":\"<|x|>\",\"single_word\":false,\"lstrip\":false," \
    "\"rstrip\":false,\"normalized\":false,\"special\":true}," \
    "{\"id\":269,\"content\":\"<y>\",\"single_word\":false,\"lstrip\":false," \
    "\"rstrip\":false,\"normalized\":true,\"special\":false}]"

/* Merges and the tokens they make, ids 256.. in this order; then "xyz"
 * (id 267), a vocab token no merge reaches; the added tokens are 268, 269.
 * "3 4" and "' S" tell GLM's split from GPT-2's: GLM cuts digits in threes
 * and takes 'S case-insensitively. */
static const char *const mini_merges[][2] = {
    { "h", "e" }, { "l", "l" }, { "he", "ll" }, { "hell", "o" }, { "\xc4\xa0", "w" },
    { "o", "r" }, { "\xc4\xa0w", "or" }, { "l", "d" }, { "\xc4\xa0wor", "ld" },
    { "3", "4" }, { "'", "S" },
};
#define MINI_N_MERGES (sizeof(mini_merges) / sizeof(mini_merges[0]))

/* The byte-level alphabet's char for byte b, as UTF-8. */
static size_t
byte_char(int b, char *out)
{
    int k, n = 0, cp = b;

    if (!((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae)) {
        for (k = 0; k < b; k++) {
            if (!((k >= '!' && k <= '~') || (k >= 0xa1 && k <= 0xac) || k >= 0xae)) {
                n++;
            }
        }
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char) cp;
        return 1;
    }
    out[0] = (char) (0xc0 | (cp >> 6));
    out[1] = (char) (0x80 | (cp & 0x3f));
    return 2;
}

static int
write_mini(const char *path, const mini_opts *o)
{
    FILE *f = fopen(path, "w");
    char c[4];
    size_t k, i;
    int b, first = 1;

    if (f == NULL) {
        return -1;
    }
    fprintf(f, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,"
            "\"added_tokens\":%s,\"normalizer\":%s,\"pre_tokenizer\":%s,"
            "\"post_processor\":%s,\"decoder\":%s,\"model\":{\"type\":\"BPE\","
            "\"dropout\":%s,\"unk_token\":%s,\"continuing_subword_prefix\":%s,"
            "\"end_of_word_suffix\":%s,\"fuse_unk\":false,%s\"vocab\":{",
            o->added_tokens, o->normalizer, o->pre_tokenizer, o->post_processor,
            o->decoder, o->dropout, o->unk_token, o->subword_affix, o->subword_affix,
            o->model_extra);
    for (b = 0; b < 256; b++) {
        if (b == o->drop_byte) {
            continue;
        }
        k = byte_char(b, c);
        fprintf(f, "%s\"%s%.*s\":%d", first ? "" : ",",
                (k == 1 && (c[0] == '"' || c[0] == '\\')) ? "\\" : "", (int) k, c, b);
        first = 0;
    }
    for (i = 0; i < sizeof(mini_merges) / sizeof(mini_merges[0]); i++) {
        fprintf(f, ",\"%s%s\":%zu", mini_merges[i][0], mini_merges[i][1], 256 + i);
    }
    fprintf(f, ",\"xyz\":%zu},\"merges\":[", 256 + MINI_N_MERGES);
    for (i = 0; i < sizeof(mini_merges) / sizeof(mini_merges[0]); i++) {
        if (o->legacy_merges) {
            fprintf(f, "%s\"%s %s\"", i ? "," : "", mini_merges[i][0], mini_merges[i][1]);
        } else {
            fprintf(f, "%s[\"%s\",\"%s\"]", i ? "," : "", mini_merges[i][0],
                    mini_merges[i][1]);
        }
    }
    fprintf(f, "]}}\n");
    return fclose(f);
}

static const mini_opts mini_default = {
    "null", MINI_PRE_GLM, "null",
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,"
    "\"use_regex\":true}", MINI_ADDED, "", "null", 0, -1, "null", "null",
};

/* ids HF tokenizers 0.23.3 gives on the same files (see the file comment) */
static const char mini_text[] =
    "hello world's <|x|>Hello<y> 1xyz 12345 it'S\xe2\x80\x85hello";
static const int32_t mini_want_glm[] = {
    259, 264, 39, 115, 32, 268, 72, 101, 257, 111, 269, 32, 49, 120, 121, 122, 32, 49,
    50, 51, 52, 53, 32, 105, 116, 266, 226, 128, 133, 259,
};
static const int32_t mini_want_gpt2[] = {
    259, 264, 39, 115, 32, 268, 72, 101, 257, 111, 269, 32, 49, 120, 121, 122, 32, 49,
    50, 265, 53, 32, 105, 116, 39, 83, 226, 128, 133, 259,
};
static const int32_t mini_want_ignore[] = {
    259, 264, 39, 115, 32, 268, 72, 101, 257, 111, 269, 32, 49, 267, 32, 49, 50, 51, 52,
    53, 32, 105, 116, 266, 226, 128, 133, 259,
};

static glm_tokenizer *
load_mini(const char *dir, const mini_opts *o, glm_err *err)
{
    char path[4096];

    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    if (write_mini(path, o) != 0) {
        glm_errf(err, "cannot write %s", path);
        return NULL;
    }
    return glm_tokenizer_load(path, err);
}

static void
mini_encodes(tally *t, const char *dir, const mini_opts *o, const int32_t *want,
             size_t n_want, const char *what)
{
    glm_err err;
    glm_tokenizer *tok = load_mini(dir, o, &err);

    check(t, tok != NULL, "%s: load failed: %s", what, tok ? "" : err.msg);
    if (tok != NULL) {
        glm_tokenizer_ctx *ctx = glm_tokenizer_ctx_new(tok, &err);

        encode_is(t, tok, ctx, mini_text, strlen(mini_text), want, n_want, what);
        encode_is(t, tok, NULL, mini_text, strlen(mini_text), want, n_want, what);
        glm_tokenizer_ctx_free(ctx);
        glm_tokenizer_free(tok);
    }
}

static void
mini_refuses(tally *t, const char *dir, const mini_opts *o, const char *field)
{
    glm_err err;
    glm_tokenizer *tok = load_mini(dir, o, &err);

    check(t, tok == NULL && strstr(err.msg, field) != NULL,
          "a file with a bad %s should be refused naming it (got: %s)", field,
          tok ? "loaded" : err.msg);
    glm_tokenizer_free(tok);
}

static void
mini_cases(tally *t)
{
    char dir[] = "/tmp/test_tokenizer.XXXXXX", path[4096];
    mini_opts o;

    if (mkdtemp(dir) == NULL) {
        check(t, 0, "mkdtemp failed");
        return;
    }
    o = mini_default;
    mini_encodes(t, dir, &o, mini_want_glm, sizeof(mini_want_glm) / 4, "mini GLM split");
    o.legacy_merges = 1;
    mini_encodes(t, dir, &o, mini_want_glm, sizeof(mini_want_glm) / 4,
                 "mini legacy merges");
    o = mini_default;
    o.subword_affix = "\"\"";       /* what transformers' converters write */
    mini_encodes(t, dir, &o, mini_want_glm, sizeof(mini_want_glm) / 4,
                 "mini \"\" subword prefix and suffix");
    o = mini_default;
    o.subword_affix = "\"##\"";
    mini_refuses(t, dir, &o, "model.continuing_subword_prefix");
    o = mini_default;
    o.pre_tokenizer = MINI_PRE_GPT2;
    mini_encodes(t, dir, &o, mini_want_gpt2, sizeof(mini_want_gpt2) / 4,
                 "mini GPT-2 ByteLevel");
    o = mini_default;
    o.model_extra = "\"ignore_merges\":true,";
    mini_encodes(t, dir, &o, mini_want_ignore, sizeof(mini_want_ignore) / 4,
                 "mini ignore_merges");
    o = mini_default;
    o.post_processor = "{\"type\":\"TemplateProcessing\",\"single\":[{\"Sequence\":"
                       "{\"id\":\"A\",\"type_id\":0}}],\"pair\":[],\"special_tokens\":{}}";
    mini_encodes(t, dir, &o, mini_want_glm, sizeof(mini_want_glm) / 4,
                 "mini template adding nothing");

    /* byte fallback never fires when all 256 byte tokens are there */
    o = mini_default;
    o.model_extra = "\"byte_fallback\":true,";
    mini_encodes(t, dir, &o, mini_want_glm, sizeof(mini_want_glm) / 4,
                 "mini byte_fallback, nothing to fall back on");
    /* a byte with neither its token nor <0xXX> is the unk token in HF */
    o = mini_default;
    o.model_extra = "\"byte_fallback\":true,";
    o.drop_byte = 0x41;
    o.unk_token = "\"xyz\"";
    o.added_tokens = "[]";
    mini_refuses(t, dir, &o, "model.unk_token");

    /* normalizers the loader refuses, by name and place */
    o = mini_default;
    o.normalizer = "{\"type\":\"BertNormalizer\",\"clean_text\":true}";
    mini_refuses(t, dir, &o, "normalizer: \"BertNormalizer\" is not supported");
    o = mini_default;
    o.normalizer = "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFD\"},"
                   "{\"type\":\"StripAccents\"}]}";
    mini_refuses(t, dir, &o, "normalizer.normalizers[1]: \"StripAccents\"");
    o = mini_default;
    o.normalizer = "{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"\"}";
    mini_refuses(t, dir, &o, "\"Precompiled\" is not supported");
    o = mini_default;
    o.normalizer = "{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"\\\\d+\"},"
                   "\"content\":\"0\"}";
    mini_refuses(t, dir, &o, "normalizer.pattern.Regex");
    o = mini_default;
    o.normalizer = "{\"type\":\"Strip\",\"strip_right\":true}";
    mini_refuses(t, dir, &o, "normalizer.strip_left");
    o = mini_default;
    o.normalizer = "{\"type\":\"Prepend\",\"prepend\":\"\\udc00\"}";
    mini_refuses(t, dir, &o, "normalizer.prepend: not valid UTF-8");
    /* normalized added tokens are looked for as the normalizer leaves them:
     * two that become the same, or one that becomes nothing, are refused */
    o = mini_default;
    o.normalizer = "{\"type\":\"Lowercase\"}";
    o.added_tokens = "[{\"id\":268,\"content\":\"<Y>\",\"normalized\":true,"
                     "\"special\":false},{\"id\":269,\"content\":\"<y>\","
                     "\"normalized\":true,\"special\":false}]";
    mini_refuses(t, dir, &o, "added_tokens[1]: \"<y>\" is looked for as \"<y>\"");
    o = mini_default;
    o.normalizer = "{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":true}";
    o.added_tokens = "[{\"id\":268,\"content\":\"  \",\"normalized\":true,"
                     "\"special\":false}]";
    mini_refuses(t, dir, &o, "normalizes to nothing");
    o = mini_default;
    o.dropout = "0.1";
    mini_refuses(t, dir, &o, "model.dropout");
    o = mini_default;
    o.drop_byte = 0x41;
    mini_refuses(t, dir, &o, "model.vocab");
    o = mini_default;
    o.added_tokens = "[{\"id\":268,\"content\":\"<|x|>\",\"single_word\":false,"
                     "\"lstrip\":true,\"rstrip\":false,\"normalized\":false,"
                     "\"special\":true}]";
    mini_refuses(t, dir, &o, "lstrip");
    o = mini_default;
    o.added_tokens = "[{\"id\":300,\"content\":\"<|x|>\",\"normalized\":false,"
                     "\"special\":true}]";
    mini_refuses(t, dir, &o, "added_tokens[0]");
    o = mini_default;
    o.post_processor = "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":"
                       "{\"id\":\"<|x|>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\","
                       "\"type_id\":0}}],\"pair\":[],\"special_tokens\":{}}";
    mini_refuses(t, dir, &o, "post_processor.single[0]");
    o = mini_default;
    o.decoder = "{\"type\":\"WordPiece\"}";
    mini_refuses(t, dir, &o, "decoder");
    o = mini_default;
    o.pre_tokenizer = "{\"type\":\"Whitespace\"}";
    mini_refuses(t, dir, &o, "pre_tokenizer");
    o = mini_default;
    o.pre_tokenizer = "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,"
                      "\"trim_offsets\":true,\"use_regex\":true}";
    mini_refuses(t, dir, &o, "add_prefix_space");
    o = mini_default;
    o.pre_tokenizer = "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
                      "\"pattern\":{\"Regex\":\"\\\\w+\"},\"behavior\":\"Isolated\","
                      "\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":"
                      "false,\"use_regex\":false}]}";
    mini_refuses(t, dir, &o, "pre_tokenizer.pretokenizers[0]");

    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    unlink(path);
    rmdir(dir);
}


int
main(int argc, char **argv)
{
    int corpus_only = argc > 1 && strcmp(argv[1], "--corpus-only") == 0;
    const char *dir = argc > 1 + corpus_only ? argv[1 + corpus_only] : "t/fixtures/tokenizer";
    char path[4096];
    glm_tokenizer *tok;
    glm_tokenizer_ctx *ctx;
    glm_err err;
    tally t = {0, 0, 0};
    enc_cases cases = {0};
    size_t mismatches = 0;

    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    if (corpus_only && access(path, F_OK) != 0) {
        printf("SKIPPED: %s not found (t/reference/qwen3_tokenizer.py writes it)\n", path);
        return 0;
    }
    tok = glm_tokenizer_load(path, &err);
    if (tok == NULL) {
        fprintf(stderr, "test_tokenizer: %s\n", err.msg);
        return 1;
    }
    ctx = glm_tokenizer_ctx_new(tok, &err);
    if (ctx == NULL) {
        fprintf(stderr, "test_tokenizer: %s\n", err.msg);
        glm_tokenizer_free(tok);
        return 1;
    }
    if (run_corpus(&t, tok, ctx, dir, &cases, &mismatches) != 0) {
        t.failed++;
    }
    run_threads(&t, tok, &cases);
    if (corpus_only) {
        printf("TOK model=%s corpus_bytes=%zu mismatches=%zu\n", dir, cases.bytes, mismatches);
    } else {
        hand_cases(&t, tok, ctx);
        mini_cases(&t);
        norm_cases(&t, dir);
        printf("TOK corpus_bytes=%zu mismatches=%zu\n", cases.bytes, mismatches);
    }
    printf("tokenizer: %d passed, %d failed\n", t.passed, t.failed);
    free_cases(&cases);
    glm_tokenizer_ctx_free(ctx);
    glm_tokenizer_free(tok);
    return t.failed ? 1 : 0;
}
