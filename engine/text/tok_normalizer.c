/*
 * tok_normalizer.c: tokenizer.json normalizers.  See tok_normalizer.h for
 * the contract; this comment is about how.
 *
 * A normalizer loads as a flat list of steps (a Sequence is its members in
 * order).  Text goes through the steps one after another; a step that
 * changes nothing costs one scan and no copy (the NFx quick check, a scan
 * for a character that lowercases, a regex that finds nothing), Strip only
 * narrows the view, and a step that changes something writes into the
 * scratch buffer the current text is not in.  So ASCII text through an NFC
 * normalizer is one pass over the bytes, eight at a time.
 *
 * HF semantics kept here:
 *   Strip       char::is_whitespace from either end
 *   Replace     every match of the pattern as the onig crate's find_iter
 *               walks it (empty matches included), replaced by the content
 *               verbatim; the empty string is left alone (HF's find_matches
 *               gives it no match)
 *   Prepend     only to a non-empty string
 */
#include "tok_normalizer.h"
#include "util/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    NZ_NFC,
    NZ_NFD,
    NZ_NFKC,
    NZ_NFKD,
    NZ_LOWERCASE,
    NZ_STRIP,
    NZ_REPLACE,
    NZ_PREPEND,
} nz_kind;

typedef struct {
    nz_kind kind;
    int strip_left, strip_right;
    char *text;                 /* Replace content, Prepend string */
    size_t text_len;
    glm_tok_regex rx;           /* Replace */
} nz_step;

struct glm_tok_normalizer {
    nz_step *steps;
    size_t n_steps, cap;
    uint32_t ovec_pairs;
};

#define NZ_SUPPORTED "NFC, NFD, NFKC, NFKD, Lowercase, Strip, Replace, Prepend, Sequence"
#define NZ_MAX_DEPTH 16

static int load_step(glm_tok_normalizer *nz, yajl_val v, const char *field, int depth,
                     glm_err *err);
static nz_step *add_step(glm_tok_normalizer *nz, nz_kind kind, const char *field,
                         glm_err *err);
static int get_string(yajl_val obj, const char *key, const char *field, const char **s,
                      glm_err *err);
static int get_flag(yajl_val obj, const char *key, const char *field, int *v, glm_err *err);
static int step_replace(const nz_step *st, glm_tok_norm_scratch *sc, const uint8_t *s,
                        size_t n, glm_tokenizer_buf *dst, int *changed, glm_err *err);


/* ------------------------------------------------------------------------ */
/* loading */

static nz_step *
add_step(glm_tok_normalizer *nz, nz_kind kind, const char *field, glm_err *err)
{
    nz_step *p;
    size_t cap;

    if (nz->n_steps == nz->cap) {
        cap = nz->cap ? nz->cap * 2 : 4;
        p = realloc(nz->steps, cap * sizeof(*p));
        if (p == NULL) {
            glm_errf(err, "%s: out of memory", field);
            return NULL;
        }
        nz->steps = p;
        nz->cap = cap;
    }
    p = &nz->steps[nz->n_steps++];
    memset(p, 0, sizeof(*p));
    p->kind = kind;
    return p;
}

static int
get_string(yajl_val obj, const char *key, const char *field, const char **s, glm_err *err)
{
    yajl_val v = glm_json_get(obj, key);

    if (!YAJL_IS_STRING(v)) {
        return glm_errf(err, "%s.%s: missing or not a string", field, key);
    }
    *s = v->u.string;
    return 0;
}

static int
get_flag(yajl_val obj, const char *key, const char *field, int *v, glm_err *err)
{
    yajl_val b = glm_json_get(obj, key);

    if (!YAJL_IS_TRUE(b) && !YAJL_IS_FALSE(b)) {
        return glm_errf(err, "%s.%s: missing or not true/false", field, key);
    }
    *v = YAJL_IS_TRUE(b);
    return 0;
}

static int
load_step(glm_tok_normalizer *nz, yajl_val v, const char *field, int depth, glm_err *err)
{
    static const struct {
        const char *name;
        nz_kind kind;
    } simple[] = {
        { "NFC", NZ_NFC }, { "NFD", NZ_NFD }, { "NFKC", NZ_NFKC }, { "NFKD", NZ_NFKD },
        { "Lowercase", NZ_LOWERCASE },
    };
    yajl_val t = glm_json_get(v, "type"), list, pat, x;
    const char *type = YAJL_IS_STRING(t) ? t->u.string : NULL, *s = NULL;
    char sub[160];
    nz_step *st;
    size_t i;

    if (!YAJL_IS_OBJECT(v)) {
        return glm_errf(err, "%s: not an object", field);
    }
    if (type == NULL) {
        return glm_errf(err, "%s.type: missing", field);
    }
    for (i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
        if (strcmp(type, simple[i].name) == 0) {
            return add_step(nz, simple[i].kind, field, err) ? 0 : -1;
        }
    }
    if (strcmp(type, "Sequence") == 0) {
        list = glm_json_get(v, "normalizers");
        if (!YAJL_IS_ARRAY(list)) {
            return glm_errf(err, "%s.normalizers: missing or not an array", field);
        }
        if (depth >= NZ_MAX_DEPTH) {
            return glm_errf(err, "%s: Sequences nested more than %d deep", field,
                            NZ_MAX_DEPTH);
        }
        for (i = 0; i < list->u.array.len; i++) {
            snprintf(sub, sizeof(sub), "%s.normalizers[%zu]", field, i);
            if (load_step(nz, list->u.array.values[i], sub, depth + 1, err) != 0) {
                return -1;
            }
        }
        return 0;
    }
    if (strcmp(type, "Strip") == 0) {
        if ((st = add_step(nz, NZ_STRIP, field, err)) == NULL
            || get_flag(v, "strip_left", field, &st->strip_left, err) != 0
            || get_flag(v, "strip_right", field, &st->strip_right, err) != 0)
        {
            return -1;
        }
        return 0;
    }
    if (strcmp(type, "Prepend") == 0 || strcmp(type, "Replace") == 0) {
        int replace = type[1] == 'e';

        if ((st = add_step(nz, replace ? NZ_REPLACE : NZ_PREPEND, field, err)) == NULL
            || get_string(v, replace ? "content" : "prepend", field, &s, err) != 0)
        {
            return -1;
        }
        st->text_len = strlen(s);
        /* yajl passes a lone surrogate escape through as its bytes */
        if (glm_utf8_invalid_at((const uint8_t *) s, st->text_len) < st->text_len) {
            return glm_errf(err, "%s.%s: not valid UTF-8", field,
                            replace ? "content" : "prepend");
        }
        st->text = malloc(st->text_len + 1);
        if (st->text == NULL) {
            return glm_errf(err, "%s: out of memory", field);
        }
        memcpy(st->text, s, st->text_len + 1);
        if (!replace) {
            return 0;
        }
        pat = glm_json_get(v, "pattern");
        if ((x = glm_json_get(pat, "String")) != NULL && YAJL_IS_STRING(x)) {
            if (glm_tok_regex_compile_literal(&st->rx, x->u.string, err) != 0) {
                return glm_err_prefix(err, "%s.pattern.String", field);
            }
        } else if ((x = glm_json_get(pat, "Regex")) != NULL && YAJL_IS_STRING(x)) {
            if (glm_tok_regex_compile(&st->rx, x->u.string, err) != 0) {
                return glm_err_prefix(err, "%s.pattern.Regex", field);
            }
        } else {
            return glm_errf(err, "%s.pattern: neither {\"String\": ...} nor {\"Regex\": ...}",
                            field);
        }
        if (st->rx.ovec_pairs > nz->ovec_pairs) {
            nz->ovec_pairs = st->rx.ovec_pairs;
        }
        return 0;
    }
    return glm_errf(err, "%s: \"%s\" is not supported (only " NZ_SUPPORTED ")", field, type);
}

glm_tok_normalizer *
glm_tok_normalizer_load(yajl_val v, glm_err *err)
{
    glm_tok_normalizer *nz = calloc(1, sizeof(*nz));

    if (nz == NULL) {
        glm_errf(err, "normalizer: out of memory");
        return NULL;
    }
    if (load_step(nz, v, "normalizer", 0, err) != 0) {
        glm_tok_normalizer_free(nz);
        return NULL;
    }
    return nz;
}

void
glm_tok_normalizer_free(glm_tok_normalizer *nz)
{
    size_t i;

    if (nz == NULL) {
        return;
    }
    for (i = 0; i < nz->n_steps; i++) {
        free(nz->steps[i].text);
        glm_tok_regex_free(&nz->steps[i].rx);
    }
    free(nz->steps);
    free(nz);
}

uint32_t
glm_tok_normalizer_ovec_pairs(const glm_tok_normalizer *nz)
{
    return nz->ovec_pairs;
}


/* ------------------------------------------------------------------------ */
/* normalizing */

/* Writes s with every match replaced into dst; *changed = 0 (dst untouched)
 * when there is no match. */
static int
step_replace(const nz_step *st, glm_tok_norm_scratch *sc, const uint8_t *s, size_t n,
             glm_tokenizer_buf *dst, int *changed, glm_err *err)
{
    glm_tok_regex_iter it;
    size_t prev = 0, ms, me;
    int rc;

    *changed = 0;
    if (n == 0) {
        return 0;
    }
    glm_tok_regex_iter_init(&it);
    while ((rc = glm_tok_regex_next(&st->rx, sc->md, sc->mctx, s, n, &it, &ms, &me, err))
           != 0)
    {
        if (rc < 0) {
            return glm_err_prefix(err, "normalizer Replace");
        }
        if (!*changed) {
            dst->len = 0;
            *changed = 1;
        }
        if (glm_tokenizer_buf_append(dst, s + prev, ms - prev, err) != 0
            || glm_tokenizer_buf_append(dst, st->text, st->text_len, err) != 0)
        {
            return -1;
        }
        prev = me;
    }
    if (*changed && glm_tokenizer_buf_append(dst, s + prev, n - prev, err) != 0) {
        return -1;
    }
    return 0;
}

int
glm_tok_normalize(const glm_tok_normalizer *nz, glm_tok_norm_scratch *sc,
                  const uint8_t *s, size_t n, const uint8_t **out, size_t *out_len,
                  glm_err *err)
{
    static const glm_uni_form forms[] = { GLM_UNI_NFC, GLM_UNI_NFD, GLM_UNI_NFKC,
                                          GLM_UNI_NFKD };
    const uint8_t *cur = s;
    size_t len = n, i, a, b, k, cl;
    glm_tokenizer_buf *dst;
    const nz_step *st;
    int which = 0, changed;

    for (i = 0; i < nz->n_steps; i++) {
        st = &nz->steps[i];
        /* the buffer cur is not in */
        dst = &sc->buf[which];
        changed = 0;
        switch (st->kind) {
        case NZ_NFC:
        case NZ_NFD:
        case NZ_NFKC:
        case NZ_NFKD:
            if (glm_uni_quick_check(forms[st->kind], cur, len) < len) {
                dst->len = 0;
                if (glm_uni_normalize(forms[st->kind], cur, len, &sc->uni, dst, err) != 0) {
                    return -1;
                }
                changed = 1;
            }
            break;
        case NZ_LOWERCASE:
            if (glm_uni_lower_check(cur, len) < len) {
                dst->len = 0;
                if (glm_uni_lowercase(cur, len, dst, err) != 0) {
                    return -1;
                }
                changed = 1;
            }
            break;
        case NZ_STRIP:
            a = 0;
            b = len;
            while (st->strip_left && a < b
                   && glm_uni_is_white_space(glm_utf8_decode(cur + a, b - a, &k)))
            {
                a += k;
            }
            while (st->strip_right && b > a) {
                k = b - 1;
                while (k > a && (cur[k] & 0xc0) == 0x80) {
                    k--;
                }
                if (!glm_uni_is_white_space(glm_utf8_decode(cur + k, b - k, &cl))) {
                    break;
                }
                b = k;
            }
            cur += a;
            len = b - a;
            break;
        case NZ_PREPEND:
            if (len > 0) {
                dst->len = 0;
                if (glm_tokenizer_buf_append(dst, st->text, st->text_len, err) != 0
                    || glm_tokenizer_buf_append(dst, cur, len, err) != 0)
                {
                    return -1;
                }
                changed = 1;
            }
            break;
        case NZ_REPLACE:
            if (step_replace(st, sc, cur, len, dst, &changed, err) != 0) {
                return -1;
            }
            break;
        }
        if (changed) {
            cur = (const uint8_t *) dst->data;
            len = dst->len;
            which ^= 1;
        }
    }
    *out = cur;
    *out_len = len;
    return 0;
}

void
glm_tok_norm_scratch_free(glm_tok_norm_scratch *sc)
{
    glm_tokenizer_buf_free(&sc->buf[0]);
    glm_tokenizer_buf_free(&sc->buf[1]);
    glm_uni_scratch_free(&sc->uni);
}
