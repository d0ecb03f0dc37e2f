/*
 * cmd_tokenizer.c: the `tokenize` and `bench-tokenizer` subcommands, and the
 * reader of the tokenizer reference corpus that the bench and the unit test
 * share.
 *
 *   glm-engine tokenize --model DIR --text TEXT|- [--decode | --normalize]
 *       prints the ids of TEXT (stdin for -) on one line, and with --decode
 *       the decoded ids (special tokens kept) on a second line; with
 *       --normalize, only TEXT as tokenizer.json's normalizer leaves it
 *       (t/reference/check_normalizers.py compares that with HF's).
 *   glm-engine bench-tokenizer --model DIR --corpus FILE [--seconds S]
 *       single-thread encode throughput over the corpus's documents, for
 *       t/bench/bench_tokenizer.sh to compare with HF tokenizers.
 *
 * Exit codes: 0 ok, 1 runtime error (one line "glm-engine: error: ..."),
 * 2 usage error.
 */
#include "text/tokenizer.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#define CMD_USAGE_TOKENIZE \
    "usage: glm-engine tokenize --model DIR --text TEXT|- [--decode | --normalize]"
#define CMD_USAGE_BENCH \
    "usage: glm-engine bench-tokenizer --model DIR --corpus FILE [--seconds S]"


/* ------------------------------------------------------------------------ */
/* reference corpus lines */

enum { REF_OTHER, REF_TEXT, REF_IDS, REF_DECODE_IDS, REF_SKIP, REF_DECODED };

typedef struct {
    glm_tokenizer_ref *ref;
    int depth;          /* 1 = inside the top-level object */
    int key;            /* the top-level key whose value comes next */
    int array;          /* REF_IDS / REF_DECODE_IDS while inside that array */
    glm_err *err;
    int failed;
} ref_state;

static int
ref_on_string(void *ctx, const unsigned char *s, size_t len)
{
    ref_state *st = ctx;

    if (st->depth == 1 && st->key == REF_TEXT) {
        st->ref->text.len = 0;
        if (glm_tokenizer_buf_append(&st->ref->text, s, len, st->err) != 0) {
            st->failed = 1;
            return 0;
        }
        st->ref->has_text = 1;
    } else if (st->depth == 1 && st->key == REF_DECODED) {
        st->ref->decoded.len = 0;
        if (glm_tokenizer_buf_append(&st->ref->decoded, s, len, st->err) != 0) {
            st->failed = 1;
            return 0;
        }
        st->ref->has_decoded = 1;
    }
    return 1;
}

static int
ref_on_integer(void *ctx, long long v)
{
    ref_state *st = ctx;
    glm_tokenizer_ids *ids;

    if (st->depth != 2 || st->array == REF_OTHER) {
        return 1;
    }
    if (v < INT32_MIN || v > INT32_MAX) {
        glm_errf(st->err, "id %lld does not fit in 32 bits", v);
        st->failed = 1;
        return 0;
    }
    ids = st->array == REF_IDS ? &st->ref->ids : &st->ref->decode_ids;
    if (glm_tokenizer_ids_push(ids, (int32_t) v, st->err) != 0) {
        st->failed = 1;
        return 0;
    }
    return 1;
}

static int
ref_on_boolean(void *ctx, int v)
{
    ref_state *st = ctx;

    if (st->depth == 1 && st->key == REF_SKIP) {
        st->ref->has_skip_special = 1;
        st->ref->skip_special = v;
    }
    return 1;
}

static int
ref_on_map_key(void *ctx, const unsigned char *s, size_t len)
{
    ref_state *st = ctx;

    if (st->depth == 1) {
        st->key = REF_OTHER;
        if (len == 4 && memcmp(s, "text", 4) == 0) {
            st->key = REF_TEXT;
        } else if (len == 3 && memcmp(s, "ids", 3) == 0) {
            st->key = REF_IDS;
        } else if (len == 10 && memcmp(s, "decode_ids", 10) == 0) {
            st->key = REF_DECODE_IDS;
        } else if (len == 12 && memcmp(s, "skip_special", 12) == 0) {
            st->key = REF_SKIP;
        } else if (len == 7 && memcmp(s, "decoded", 7) == 0) {
            st->key = REF_DECODED;
        }
    }
    return 1;
}

static int
ref_on_start_map(void *ctx)
{
    ((ref_state *) ctx)->depth++;
    return 1;
}

static int
ref_on_end_map(void *ctx)
{
    ((ref_state *) ctx)->depth--;
    return 1;
}

static int
ref_on_start_array(void *ctx)
{
    ref_state *st = ctx;

    if (st->depth == 1 && (st->key == REF_IDS || st->key == REF_DECODE_IDS)) {
        st->array = st->key;
        if (st->key == REF_IDS) {
            st->ref->has_ids = 1;
            st->ref->ids.len = 0;
        } else {
            st->ref->has_decode_ids = 1;
            st->ref->decode_ids.len = 0;
        }
    }
    st->depth++;
    return 1;
}

static int
ref_on_end_array(void *ctx)
{
    ref_state *st = ctx;

    if (--st->depth == 1) {
        st->array = REF_OTHER;
    }
    return 1;
}

static const yajl_callbacks ref_callbacks = {
    NULL,               /* null */
    ref_on_boolean,
    ref_on_integer,
    NULL,               /* double */
    NULL,               /* number */
    ref_on_string,
    ref_on_start_map,
    ref_on_map_key,
    ref_on_end_map,
    ref_on_start_array,
    ref_on_end_array,
};

int
glm_tokenizer_ref_parse(glm_tokenizer_ref *ref, const char *line, size_t len,
                        glm_err *err)
{
    ref_state st;
    yajl_handle h;
    yajl_status s;
    unsigned char *msg;

    ref->has_text = ref->has_ids = ref->has_decode_ids = ref->has_skip_special = 0;
    ref->has_decoded = 0;
    ref->skip_special = 0;
    ref->text.len = ref->ids.len = ref->decode_ids.len = ref->decoded.len = 0;
    memset(&st, 0, sizeof(st));
    st.ref = ref;
    st.err = err;
    h = yajl_alloc(&ref_callbacks, NULL, &st);
    if (h == NULL) {
        return glm_errf(err, "out of memory for a JSON parser");
    }
    s = yajl_parse(h, (const unsigned char *) line, len);
    if (s == yajl_status_ok) {
        s = yajl_complete_parse(h);
    }
    if (s != yajl_status_ok) {
        if (!st.failed) {
            msg = yajl_get_error(h, 0, (const unsigned char *) line, len);
            glm_errf(err, "invalid JSON: %s", (const char *) msg);
            err->msg[strcspn(err->msg, "\n")] = '\0';
            yajl_free_error(h, msg);
        }
        yajl_free(h);
        return -1;
    }
    yajl_free(h);
    return 0;
}

void
glm_tokenizer_ref_free(glm_tokenizer_ref *ref)
{
    glm_tokenizer_buf_free(&ref->text);
    glm_tokenizer_buf_free(&ref->decoded);
    glm_tokenizer_ids_free(&ref->ids);
    glm_tokenizer_ids_free(&ref->decode_ids);
}


/* ------------------------------------------------------------------------ */
/* shared helpers */

static int
cmd_fail(const char *msg)
{
    fprintf(stderr, "glm-engine: error: %s\n", msg);
    return 1;
}

static int
cmd_usage(const char *usage, const char *fmt, const char *arg)
{
    fprintf(stderr, "glm-engine: error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s\n", usage);
    return 2;
}

static glm_tokenizer *
cmd_load(const char *dir, glm_err *err)
{
    char path[4096];

    if (glm_path_join(path, sizeof(path), dir, "tokenizer.json") != 0) {
        glm_errf(err, "%s: path too long", dir);
        return NULL;
    }
    return glm_tokenizer_load(path, err);
}

static int
read_stream(FILE *f, glm_tokenizer_buf *b, glm_err *err)
{
    char chunk[65536];
    size_t n;

    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (glm_tokenizer_buf_append(b, chunk, n, err) != 0) {
            return -1;
        }
    }
    if (ferror(f)) {
        return glm_errf(err, "reading stdin: %s", strerror(errno));
    }
    return 0;
}


/* ------------------------------------------------------------------------ */
/* tokenize */

int
glm_cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *text = NULL;
    int decode = 0, normalize = 0, i, rc = 1;
    glm_tokenizer *tok = NULL;
    glm_tokenizer_buf input = {0}, out = {0};
    glm_tokenizer_ids ids = {0};
    glm_err err;
    size_t k;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
            model = argv[++i];
        } else if (strcmp(argv[i], "--text") == 0 && i + 1 < argc) {
            text = argv[++i];
        } else if (strcmp(argv[i], "--decode") == 0) {
            decode = 1;
        } else if (strcmp(argv[i], "--normalize") == 0) {
            normalize = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("%s\n", CMD_USAGE_TOKENIZE);
            return 0;
        } else {
            return cmd_usage(CMD_USAGE_TOKENIZE, "tokenize: unexpected argument '%s'",
                             argv[i]);
        }
    }
    if (model == NULL || text == NULL) {
        return cmd_usage(CMD_USAGE_TOKENIZE, "tokenize: %s is required",
                         model == NULL ? "--model DIR" : "--text TEXT");
    }
    if (strcmp(text, "-") == 0) {
        if (read_stream(stdin, &input, &err) != 0) {
            return cmd_fail(err.msg);
        }
    } else if (glm_tokenizer_buf_append(&input, text, strlen(text), &err) != 0) {
        return cmd_fail(err.msg);
    }
    tok = cmd_load(model, &err);
    if (tok != NULL && normalize) {
        if (glm_tokenizer_normalize(tok, NULL, input.data, input.len, &out, &err) != 0) {
            cmd_fail(err.msg);
            goto done;
        }
        fwrite(out.data, 1, out.len, stdout);
        rc = fflush(stdout) == 0 ? 0 : cmd_fail("writing stdout failed");
        goto done;
    }
    if (tok == NULL
        || glm_tokenizer_encode(tok, NULL, input.data, input.len, &ids, &err) != 0)
    {
        cmd_fail(err.msg);
        goto done;
    }
    for (k = 0; k < ids.len; k++) {
        printf(k ? " %d" : "%d", (int) ids.ids[k]);
    }
    printf("\n");
    if (decode) {
        if (glm_tokenizer_decode(tok, ids.ids, ids.len, 0, &out, &err) != 0) {
            cmd_fail(err.msg);
            goto done;
        }
        fwrite(out.data, 1, out.len, stdout);
        printf("\n");
    }
    rc = fflush(stdout) == 0 ? 0 : cmd_fail("writing stdout failed");
done:
    glm_tokenizer_free(tok);
    glm_tokenizer_buf_free(&input);
    glm_tokenizer_buf_free(&out);
    glm_tokenizer_ids_free(&ids);
    return rc;
}


/* ------------------------------------------------------------------------ */
/* bench-tokenizer */

/* The corpus documents: every line with a "text", except the decode cases
 * (lines with "decode_ids", whose text is a decoder output), back to back in
 * one buffer. */
static int
load_corpus(const char *path, glm_tokenizer_buf *all, size_t **ends, size_t *n_docs,
            glm_err *err)
{
    char *data, *line, *nl;
    size_t len, cap = 0, lineno = 0;
    glm_tokenizer_ref ref;
    size_t *e;
    int rc = 0;

    memset(&ref, 0, sizeof(ref));
    data = glm_read_file(path, &len, err);
    if (data == NULL) {
        return -1;
    }
    *ends = NULL;
    *n_docs = 0;
    for (line = data; line < data + len; line = nl + 1) {
        nl = memchr(line, '\n', (size_t) (data + len - line));
        if (nl == NULL) {
            nl = data + len;
        }
        lineno++;
        if (nl == line) {
            continue;
        }
        if (glm_tokenizer_ref_parse(&ref, line, (size_t) (nl - line), err) != 0) {
            glm_err_prefix(err, "%s:%zu", path, lineno);
            rc = -1;
            break;
        }
        if (!ref.has_text || ref.has_decode_ids) {
            continue;
        }
        if (*n_docs == cap) {
            cap = cap ? cap * 2 : 1024;
            e = realloc(*ends, cap * sizeof(*e));
            if (e == NULL) {
                rc = glm_errf(err, "out of memory");
                break;
            }
            *ends = e;
        }
        if (glm_tokenizer_buf_append(all, ref.text.data, ref.text.len, err) != 0) {
            rc = -1;
            break;
        }
        (*ends)[(*n_docs)++] = all->len;
    }
    glm_tokenizer_ref_free(&ref);
    free(data);
    if (rc == 0 && *n_docs == 0) {
        rc = glm_errf(err, "%s: no lines with a \"text\" to encode", path);
    }
    return rc;
}

/* One pass over every document; adds the token count to *tokens. */
static int
bench_pass(const glm_tokenizer *tok, glm_tokenizer_ctx *ctx, const glm_tokenizer_buf *all,
           const size_t *ends, size_t n_docs, glm_tokenizer_ids *ids, double *tokens,
           glm_err *err)
{
    size_t d, start = 0;

    for (d = 0; d < n_docs; d++) {
        ids->len = 0;
        if (glm_tokenizer_encode(tok, ctx, all->data + start, ends[d] - start, ids,
                                 err) != 0)
        {
            return glm_err_prefix(err, "document %zu", d);
        }
        *tokens += (double) ids->len;
        start = ends[d];
    }
    return 0;
}

int
glm_cmd_bench_tokenizer(int argc, char **argv)
{
    const char *model = NULL, *corpus = NULL;
    double seconds = 2.0, t0, elapsed, tokens = 0, warm = 0;
    glm_tokenizer *tok = NULL;
    glm_tokenizer_ctx *ctx = NULL;
    glm_tokenizer_buf all = {0};
    glm_tokenizer_ids ids = {0};
    size_t *ends = NULL, n_docs = 0;
    long passes = 0;
    char *end;
    glm_err err;
    int i, rc = 1;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
            model = argv[++i];
        } else if (strcmp(argv[i], "--corpus") == 0 && i + 1 < argc) {
            corpus = argv[++i];
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = strtod(argv[++i], &end);
            if (*end != '\0' || !(seconds > 0) || seconds > 3600) {
                return cmd_usage(CMD_USAGE_BENCH,
                                 "bench-tokenizer: --seconds wants a number in (0, 3600], "
                                 "not '%s'", argv[i]);
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("%s\n", CMD_USAGE_BENCH);
            return 0;
        } else {
            return cmd_usage(CMD_USAGE_BENCH, "bench-tokenizer: unexpected argument '%s'",
                             argv[i]);
        }
    }
    if (model == NULL || corpus == NULL) {
        return cmd_usage(CMD_USAGE_BENCH, "bench-tokenizer: %s is required",
                         model == NULL ? "--model DIR" : "--corpus FILE");
    }
    tok = cmd_load(model, &err);
    if (tok == NULL || (ctx = glm_tokenizer_ctx_new(tok, &err)) == NULL
        || load_corpus(corpus, &all, &ends, &n_docs, &err) != 0
        || bench_pass(tok, ctx, &all, ends, n_docs, &ids, &warm, &err) != 0)
    {
        cmd_fail(err.msg);
        goto done;
    }
    t0 = glm_now_seconds();
    do {
        if (bench_pass(tok, ctx, &all, ends, n_docs, &ids, &tokens, &err) != 0) {
            cmd_fail(err.msg);
            goto done;
        }
        passes++;
        elapsed = glm_now_seconds() - t0;
    } while (elapsed < seconds);
    printf("ours: %.2f MB/s, %.0f tokens/s, %zu bytes per pass\n",
           (double) all.len * (double) passes / elapsed / 1e6, tokens / elapsed, all.len);
    rc = 0;
done:
    glm_tokenizer_ctx_free(ctx);
    glm_tokenizer_free(tok);
    glm_tokenizer_buf_free(&all);
    glm_tokenizer_ids_free(&ids);
    free(ends);
    return rc;
}
