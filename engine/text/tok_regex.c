/*
 * tok_regex.c: Oniguruma patterns from tokenizer.json, rewritten for PCRE2
 * and walked the way the onig crate's find_iter walks them.  See tok_regex.h.
 */
#include "tok_regex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int regex_translate(const char *src, glm_tokenizer_buf *dst, glm_err *err);
static int regex_build(glm_tok_regex *rx, const char *pcre2_pattern, glm_err *err);

/*
 * Oniguruma's \s (what HF's regexes use) is Unicode White_Space: U+0009-000D,
 * 0020, 0085, 00A0, 1680, 2000-200A, 2028, 2029, 202F, 205F, 3000.  PCRE2's
 * \s under UCP is \p{Xsp} plus \h and \v, which also takes U+180E (Mongolian
 * vowel separator, a space before Unicode 6.3).  So \s is spelled out;
 * with PCRE2's own \s, the corpus lines holding U+180E encode differently
 * from HF (t/unit/test_tokenizer.c catches it).
 */
#define RX_WS_ITEMS \
    "\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}" \
    "\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"


/*
 * Rewrites an Oniguruma pattern (what HF compiles) into PCRE2 syntax with the
 * same meaning, or refuses it.  Both are backtracking engines with the same
 * leftmost-first alternation, so most syntax carries over; the rules:
 *   \s, \S    spelled out as Oniguruma's White_Space set (RX_WS_ITEMS);
 *             \S inside [...] has no PCRE2 spelling and is refused
 *   \uHHHH    -> \x{HHHH} (PCRE2 has no \u by default)
 *   \v        -> \x{b} (Oniguruma: vertical tab; PCRE2: a class)
 *   \d \D \w \W \h \H \b \B \R \X \K and other letter escapes: refused
 *             (class contents or meaning differ between the engines)
 *   ^ $       refused (line vs string anchors depend on Oniguruma's syntax)
 *   nested [ and && in a class (Oniguruma set operations), {,n}: refused
 * Escapes kept as they are: \p{..} \P{..} \x.. \n \r \t \f \e \a \A \z \Z
 * \G, digits, and any escaped non-alphanumeric.
 */
static int
regex_translate(const char *src, glm_tokenizer_buf *dst, glm_err *err)
{
    size_t i = 0, n = strlen(src);
    int in_class = 0, class_start = 0;
    char c, e;
    char tmp[16];
    const char *rep;

    dst->len = 0;
    while (i < n) {
        c = src[i];
        if (c == '\\') {
            if (i + 1 >= n) {
                return glm_errf(err, "pattern ends with a backslash");
            }
            e = src[i + 1];
            if (e == 's') {
                rep = in_class ? RX_WS_ITEMS : "[" RX_WS_ITEMS "]";
                if (glm_tokenizer_buf_append(dst, rep, strlen(rep), err) != 0) {
                    return -1;
                }
                i += 2;
                continue;
            }
            if (e == 'S') {
                if (in_class) {
                    return glm_errf(err, "\\S inside [...] at offset %zu is not supported", i);
                }
                if (glm_tokenizer_buf_append(dst, "[^" RX_WS_ITEMS "]",
                                             strlen("[^" RX_WS_ITEMS "]"), err) != 0)
                {
                    return -1;
                }
                i += 2;
                continue;
            }
            if (e == 'u') {
                if (i + 6 > n || strspn(src + i + 2, "0123456789abcdefABCDEF") < 4) {
                    return glm_errf(err, "\\u at offset %zu needs 4 hex digits", i);
                }
                snprintf(tmp, sizeof(tmp), "\\x{%.4s}", src + i + 2);
                if (glm_tokenizer_buf_append(dst, tmp, strlen(tmp), err) != 0) {
                    return -1;
                }
                i += 6;
                continue;
            }
            if (e == 'v') {
                if (glm_tokenizer_buf_append(dst, "\\x{b}", 5, err) != 0) {
                    return -1;
                }
                i += 2;
                continue;
            }
            if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z')) {
                if (strchr("pPxnrtfeaAzZG", e) == NULL) {
                    return glm_errf(err, "escape \\%c at offset %zu is not supported "
                                    "(Oniguruma and PCRE2 differ on it)", e, i);
                }
            }
            if (glm_tokenizer_buf_append(dst, src + i, 2, err) != 0) {
                return -1;
            }
            i += 2;
            if ((e == 'p' || e == 'P') && i < n && src[i] == '{') {
                /* copy the property name verbatim */
                while (i < n && src[i] != '}') {
                    if (glm_tokenizer_buf_append(dst, src + i, 1, err) != 0) {
                        return -1;
                    }
                    i++;
                }
            }
            class_start = 0;
            continue;
        }
        if (in_class) {
            if (c == '[') {
                return glm_errf(err, "nested [ in a class at offset %zu is not supported", i);
            }
            if (c == '&' && i + 1 < n && src[i + 1] == '&') {
                return glm_errf(err, "class intersection && at offset %zu is not supported",
                                i);
            }
            if (c == ']' && !class_start) {
                in_class = 0;
            }
            class_start = (class_start && c == '^') ? 1 : 0;
        } else if (c == '[') {
            in_class = 1;
            class_start = 1;
        } else if (c == '^' || c == '$') {
            return glm_errf(err, "anchor %c at offset %zu is not supported", c, i);
        } else if (c == '{' && i + 1 < n && src[i + 1] == ',') {
            return glm_errf(err, "quantifier {,n} at offset %zu is not supported", i);
        } else if (c == '(' && i + 2 < n && src[i + 1] == '?') {
            /* inline options: Oniguruma's m is PCRE2's s */
            size_t j = i + 2;
            while (j < n && strchr("imx-", src[j]) != NULL && src[j] != '\0') {
                if (src[j] == 'm') {
                    return glm_errf(err, "option (?m at offset %zu is not supported", i);
                }
                j++;
            }
        }
        if (glm_tokenizer_buf_append(dst, &c, 1, err) != 0) {
            return -1;
        }
        i++;
    }
    if (in_class) {
        return glm_errf(err, "unterminated [ class");
    }
    return glm_tokenizer_buf_append(dst, "", 1, err);    /* NUL-terminate */
}

static int
regex_build(glm_tok_regex *rx, const char *pattern, glm_err *err)
{
    pcre2_compile_context *cctx;
    int ecode;
    PCRE2_SIZE eoff;
    PCRE2_UCHAR msg[256];
    uint32_t caps = 0;

    memset(rx, 0, sizeof(*rx));
    cctx = pcre2_compile_context_create(NULL);
    if (cctx == NULL) {
        return glm_errf(err, "out of memory");
    }
    /* '.' excludes only \n, as in Oniguruma */
    pcre2_set_newline(cctx, PCRE2_NEWLINE_LF);
    rx->re = pcre2_compile((PCRE2_SPTR) pattern, PCRE2_ZERO_TERMINATED,
                           PCRE2_UTF | PCRE2_UCP, &ecode, &eoff, cctx);
    pcre2_compile_context_free(cctx);
    if (rx->re == NULL) {
        pcre2_get_error_message(ecode, msg, sizeof(msg));
        return glm_errf(err, "PCRE2 rejects the pattern (as rewritten: %s) at offset "
                        "%zu: %s", pattern, (size_t) eoff, (char *) msg);
    }
    /* JIT where the platform has it; the interpreter gives the same matches */
    rx->jit = pcre2_jit_compile(rx->re, PCRE2_JIT_COMPLETE) == 0;
    pcre2_pattern_info(rx->re, PCRE2_INFO_CAPTURECOUNT, &caps);
    rx->ovec_pairs = caps + 1;
    return 0;
}

int
glm_tok_regex_compile(glm_tok_regex *rx, const char *onig_pattern, glm_err *err)
{
    glm_tokenizer_buf pat = {0};
    int rc;

    memset(rx, 0, sizeof(*rx));
    rc = regex_translate(onig_pattern, &pat, err);
    if (rc == 0) {
        rc = regex_build(rx, pat.data, err);
    }
    glm_tokenizer_buf_free(&pat);
    return rc;
}

int
glm_tok_regex_compile_literal(glm_tok_regex *rx, const char *s, glm_err *err)
{
    glm_tokenizer_buf pat = {0};
    const char *p;
    int rc = 0;

    /* a backslash before an ASCII non-alphanumeric is always that character
     * in PCRE2; other bytes (letters, digits, UTF-8) stand for themselves */
    for (p = s; *p != '\0' && rc == 0; p++) {
        unsigned char c = (unsigned char) *p;

        if (c < 0x80 && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
                          || (c >= 'A' && c <= 'Z')))
        {
            rc = glm_tokenizer_buf_append(&pat, "\\", 1, err);
        }
        if (rc == 0) {
            rc = glm_tokenizer_buf_append(&pat, p, 1, err);
        }
    }
    if (rc == 0) {
        rc = glm_tokenizer_buf_append(&pat, "", 1, err);
    }
    if (rc == 0) {
        rc = regex_build(rx, pat.data, err);
    }
    glm_tokenizer_buf_free(&pat);
    return rc;
}

void
glm_tok_regex_free(glm_tok_regex *rx)
{
    if (rx->re != NULL) {
        pcre2_code_free(rx->re);
    }
    memset(rx, 0, sizeof(*rx));
}

int
glm_tok_regex_next(const glm_tok_regex *rx, pcre2_match_data *md,
                   pcre2_match_context *mctx, const uint8_t *s, size_t n,
                   glm_tok_regex_iter *it, size_t *ms, size_t *me, glm_err *err)
{
    int rc;
    PCRE2_SIZE *ov;
    PCRE2_UCHAR msg[256];
    uint8_t c;

    while (it->start <= n) {
        if (rx->jit) {
            rc = pcre2_jit_match(rx->re, s, n, it->start, 0, md, mctx);
            if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
                rc = pcre2_match(rx->re, s, n, it->start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                                 md, mctx);
            }
        } else {
            rc = pcre2_match(rx->re, s, n, it->start, PCRE2_NO_UTF_CHECK, md, mctx);
        }
        if (rc == PCRE2_ERROR_NOMATCH) {
            return 0;
        }
        if (rc < 0) {
            pcre2_get_error_message(rc, msg, sizeof(msg));
            return glm_errf(err, "regex failed on a %zu-byte segment: %s", n, (char *) msg);
        }
        ov = pcre2_get_ovector_pointer(md);
        if (ov[0] == ov[1] && it->last_match_end == ov[1]) {
            /* one character on (a byte past the end stops the walk) */
            c = it->start < n ? s[it->start] : 0;
            it->start += c < 0xc0 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
            continue;
        }
        it->start = ov[1];
        it->last_match_end = ov[1];
        *ms = ov[0];
        *me = ov[1];
        return 1;
    }
    return 0;
}
