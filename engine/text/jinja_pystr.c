/*
 * jinja_pystr.c: what Python's str does, for the interpreter's filters,
 * methods and operators (jinja_builtins.c) and its indexing (jinja_eval.c):
 * case mapping and classification of code points, strip, split, replace and
 * find, padding, markupsafe's escape, code-point offsets, and Python's two
 * formatting languages, printf-style `str % args` and `str.format` with the
 * format-spec mini-language.  Each gives the result Python gives and fails
 * where Python raises.  These are kept apart from jinja_builtins.c because
 * they are one concern, Python's string semantics, which several jinja2
 * filters and str methods share; that file keeps what is jinja2's own.
 */
#include "jinja_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

/* ---- strings ------------------------------------------------------------------------------------ */

uint32_t
glm_jupper_cp(glm_jrender *r, uint32_t cp)
{
    if (cp < 0x80) {
        return cp >= 'a' && cp <= 'z' ? cp - 32 : cp;
    }
    return r->t != NULL && r->t->loc != (locale_t) 0 ? (uint32_t) towupper_l((wint_t) cp, r->t->loc)
                                                      : cp;
}

uint32_t
glm_jlower_cp(glm_jrender *r, uint32_t cp)
{
    if (cp < 0x80) {
        return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    }
    return r->t != NULL && r->t->loc != (locale_t) 0 ? (uint32_t) towlower_l((wint_t) cp, r->t->loc)
                                                      : cp;
}

int
glm_jis_cased(glm_jrender *r, uint32_t cp)
{
    return glm_jupper_cp(r, cp) != cp || glm_jlower_cp(r, cp) != cp;
}

int
glm_jis_alpha(glm_jrender *r, uint32_t cp)
{
    if (cp < 0x80) {
        return (cp | 32) >= 'a' && (cp | 32) <= 'z';
    }
    return r->t != NULL && r->t->loc != (locale_t) 0 && iswalpha_l((wint_t) cp, r->t->loc);
}

int
glm_jis_digit(uint32_t cp)
{
    return cp >= '0' && cp <= '9';
}

/* Python's full upper-case mappings that change the length (SpecialCasing). */
static const char *
glm_jupper_special(uint32_t cp)
{
    switch (cp) {
    case 0xdf: return "SS";
    case 0x149: return "\xca\xbcN";
    case 0xfb00: return "FF";
    case 0xfb01: return "FI";
    case 0xfb02: return "FL";
    case 0xfb03: return "FFI";
    case 0xfb04: return "FFL";
    case 0xfb05:
    case 0xfb06: return "ST";
    default: return NULL;
    }
}


glm_jinja_value
glm_jcase(glm_jrender *r, glm_jinja_value s, int mode)
{
    glm_jbuf b = {0};
    size_t i, adv;
    int prev_cased = 0, first = 1;

    for (i = 0; i < s.n; i += adv) {
        uint32_t cp = glm_ju8_decode(s.u.s + i, s.n - i, &adv), out;
        int up;
        char enc[4];

        switch (mode) {
        case GLM_JCASE_UPPER: up = 1; break;
        case GLM_JCASE_LOWER: up = 0; break;
        case GLM_JCASE_SWAP: up = glm_jlower_cp(r, cp) == cp; break;
        case GLM_JCASE_TITLE: up = !prev_cased; break;
        default: up = first; break;
        }
        if (up) {
            const char *sp = glm_jupper_special(cp);

            if (sp != NULL) {
                if (mode == GLM_JCASE_TITLE || mode == GLM_JCASE_CAPITALIZE) {
                    /* title case of a ligature: first letter upper, rest lower */
                    size_t l = strlen(sp), k;

                    glm_jbuf_putc(r, &b, sp[0]);
                    for (k = 1; k < l; k++) {
                        glm_jbuf_putc(r, &b, (char) (sp[k] >= 'A' && sp[k] <= 'Z' ? sp[k] + 32
                                                                                  : sp[k]));
                    }
                } else {
                    glm_jbuf_put(r, &b, sp, strlen(sp));
                }
                prev_cased = 1;
                first = 0;
                continue;
            }
            out = glm_jupper_cp(r, cp);
        } else if (cp == 0x130) {
            glm_jbuf_put(r, &b, "i\xcc\x87", 3);      /* İ -> i + combining dot */
            prev_cased = 1;
            first = 0;
            continue;
        } else if (cp == 0x3a3) {
            /* final sigma: after a cased letter and not before one */
            size_t j = i + adv, adv2;
            int next_cased = j < s.n && glm_jis_cased(r, glm_ju8_decode(s.u.s + j, s.n - j, &adv2));

            out = prev_cased && !next_cased ? 0x3c2 : 0x3c3;
        } else {
            out = glm_jlower_cp(r, cp);
        }
        prev_cased = glm_jis_cased(r, cp);
        first = 0;
        glm_jbuf_put(r, &b, enc, glm_ju8_encode(out, enc));
    }
    {
        glm_jinja_value v = glm_jbuf_value(r, &b);

        v.flags = s.flags & GLM_JINJA_F_SAFE;
        return v;
    }
}

/* Whether strip() removes cp: whitespace when chars is NULL, else one of chars. */
static int
glm_jstrips(const glm_jinja_value *chars, uint32_t cp)
{
    size_t k, a2;

    if (chars == NULL) {
        return glm_jpy_isspace(cp);
    }
    for (k = 0; k < chars->n; k += a2) {
        if (glm_ju8_decode(chars->u.s + k, chars->n - k, &a2) == cp) {
            return 1;
        }
    }
    return 0;
}

/* The byte range of s without leading/trailing chars (whitespace if chars is NULL). */
glm_jinja_value
glm_jstrip(glm_jinja_value s, const glm_jinja_value *chars, int left, int right)
{
    size_t lo = 0, hi = s.n, adv;

    while (left && lo < hi) {
        uint32_t cp = glm_ju8_decode(s.u.s + lo, hi - lo, &adv);

        if (!glm_jstrips(chars, cp)) {
            break;
        }
        lo += adv;
    }
    while (right && hi > lo) {
        size_t start = hi - 1;
        uint32_t cp;

        while (start > lo && ((unsigned char) s.u.s[start] & 0xc0) == 0x80) {
            start--;
        }
        cp = glm_ju8_decode(s.u.s + start, hi - start, &adv);
        if (!glm_jstrips(chars, cp)) {
            break;
        }
        hi = start;
    }
    {
        glm_jinja_value v = glm_jv_str(s.u.s + lo, hi - lo);

        v.flags = s.flags & GLM_JINJA_F_SAFE;
        return v;
    }
}

/* Byte offset of code point i of s (or s's end). */
size_t
glm_jcp_off(const char *s, size_t n, int64_t i)
{
    size_t pos = 0, adv;

    while (i > 0 && pos < n) {
        glm_ju8_decode(s + pos, n - pos, &adv);
        pos += adv;
        i--;
    }
    return pos;
}

const char *
glm_jmemmem(const char *h, size_t hn, const char *n, size_t nn)
{
    if (nn == 0) {
        return h;
    }
    if (nn > hn) {
        return NULL;
    }
    return memmem(h, hn, n, nn);
}

const char *
glm_jmemrmem(const char *h, size_t hn, const char *n, size_t nn)
{
    size_t i;

    if (nn > hn) {
        return NULL;
    }
    for (i = hn - nn + 1; i > 0; i--) {
        if (memcmp(h + i - 1, n, nn) == 0) {
            return h + i - 1;
        }
    }
    return NULL;
}

int64_t
glm_jfind(glm_jinja_value s, glm_jinja_value sub, int from_right)
{
    const char *hit = from_right ? glm_jmemrmem(s.u.s, s.n, sub.u.s, sub.n)
                                 : glm_jmemmem(s.u.s, s.n, sub.u.s, sub.n);

    if (hit == NULL) {
        return -1;
    }
    return (int64_t) glm_ju8_len(s.u.s, (size_t) (hit - s.u.s));
}

glm_jinja_value
glm_jsplit(glm_jrender *r, glm_jinja_value s, const glm_jinja_value *sep, int64_t maxsplit,
           int from_right)
{
    glm_jinja_value out = glm_jv_newlist(r, 0);
    size_t adv;

    if (sep != NULL && sep->n == 0) {
        glm_jfail(r, "ValueError: empty separator");
    }
    if (sep == NULL) {
        /* runs of whitespace; no empty strings */
        if (!from_right) {
            size_t i = 0;

            for (;;) {
                size_t start;

                while (i < s.n && glm_jpy_isspace(glm_ju8_decode(s.u.s + i, s.n - i, &adv))) {
                    i += adv;
                }
                if (i >= s.n) {
                    break;
                }
                if (maxsplit == 0) {
                    glm_jinja_value rest = glm_jstrip(glm_jv_str(s.u.s + i, s.n - i), NULL, 0, 1);

                    glm_jv_push(r, out, rest);
                    break;
                }
                start = i;
                while (i < s.n && !glm_jpy_isspace(glm_ju8_decode(s.u.s + i, s.n - i, &adv))) {
                    i += adv;
                }
                glm_jv_push(r, out, glm_jv_str(s.u.s + start, i - start));
                if (maxsplit > 0) {
                    maxsplit--;
                }
            }
            return out;
        }
        {
            /* rsplit(): collect from the right, then reverse */
            glm_jinja_value tmp = glm_jv_newlist(r, 0);
            size_t hi = s.n;
            uint32_t k;

            for (;;) {
                size_t end;

                while (hi > 0) {
                    size_t st = hi - 1;

                    while (st > 0 && ((unsigned char) s.u.s[st] & 0xc0) == 0x80) {
                        st--;
                    }
                    if (!glm_jpy_isspace(glm_ju8_decode(s.u.s + st, hi - st, &adv))) {
                        break;
                    }
                    hi = st;
                }
                if (hi == 0) {
                    break;
                }
                if (maxsplit == 0) {
                    glm_jinja_value rest = glm_jstrip(glm_jv_str(s.u.s, hi), NULL, 1, 0);

                    glm_jv_push(r, tmp, rest);
                    break;
                }
                end = hi;
                while (hi > 0) {
                    size_t st = hi - 1;

                    while (st > 0 && ((unsigned char) s.u.s[st] & 0xc0) == 0x80) {
                        st--;
                    }
                    if (glm_jpy_isspace(glm_ju8_decode(s.u.s + st, hi - st, &adv))) {
                        break;
                    }
                    hi = st;
                }
                glm_jv_push(r, tmp, glm_jv_str(s.u.s + hi, end - hi));
                if (maxsplit > 0) {
                    maxsplit--;
                }
            }
            for (k = tmp.u.list->n; k > 0; k--) {
                glm_jv_push(r, out, tmp.u.list->v[k - 1]);
            }
            return out;
        }
    }
    if (!from_right) {
        size_t i = 0;
        const char *hit;

        while (maxsplit != 0 && (hit = glm_jmemmem(s.u.s + i, s.n - i, sep->u.s, sep->n)) != NULL) {
            glm_jv_push(r, out, glm_jv_str(s.u.s + i, (size_t) (hit - (s.u.s + i))));
            i = (size_t) (hit - s.u.s) + sep->n;
            if (maxsplit > 0) {
                maxsplit--;
            }
            glm_jstep(r);
        }
        glm_jv_push(r, out, glm_jv_str(s.u.s + i, s.n - i));
        return out;
    }
    {
        glm_jinja_value tmp = glm_jv_newlist(r, 0);
        size_t hi = s.n;
        const char *hit;
        uint32_t k;

        while (maxsplit != 0 && (hit = glm_jmemrmem(s.u.s, hi, sep->u.s, sep->n)) != NULL) {
            size_t at = (size_t) (hit - s.u.s);

            glm_jv_push(r, tmp, glm_jv_str(s.u.s + at + sep->n, hi - at - sep->n));
            hi = at;
            if (maxsplit > 0) {
                maxsplit--;
            }
            glm_jstep(r);
        }
        glm_jv_push(r, tmp, glm_jv_str(s.u.s, hi));
        for (k = tmp.u.list->n; k > 0; k--) {
            glm_jv_push(r, out, tmp.u.list->v[k - 1]);
        }
        return out;
    }
}

glm_jinja_value
glm_jreplace(glm_jrender *r, glm_jinja_value s, glm_jinja_value old, glm_jinja_value new_,
             int64_t count)
{
    glm_jbuf b = {0};
    size_t i = 0, adv;
    const char *hit;

    if (old.n == 0) {
        /* Python inserts new before every character and at the end */
        while (i <= s.n && count != 0) {
            glm_jbuf_put(r, &b, new_.u.s, new_.n);
            if (count > 0) {
                count--;
            }
            if (i == s.n) {
                i++;
                break;
            }
            glm_ju8_decode(s.u.s + i, s.n - i, &adv);
            glm_jbuf_put(r, &b, s.u.s + i, adv);
            i += adv;
        }
        if (i < s.n) {
            glm_jbuf_put(r, &b, s.u.s + i, s.n - i);
        }
        glm_jbuf_put(r, &b, "", 0);
        return glm_jbuf_value(r, &b);
    }
    while (count != 0 && (hit = glm_jmemmem(s.u.s + i, s.n - i, old.u.s, old.n)) != NULL) {
        glm_jbuf_put(r, &b, s.u.s + i, (size_t) (hit - (s.u.s + i)));
        glm_jbuf_put(r, &b, new_.u.s, new_.n);
        i = (size_t) (hit - s.u.s) + old.n;
        if (count > 0) {
            count--;
        }
        glm_jstep(r);
    }
    glm_jbuf_put(r, &b, s.u.s + i, s.n - i);
    return glm_jbuf_value(r, &b);
}

/* markupsafe.escape */
glm_jinja_value
glm_jescape(glm_jrender *r, glm_jinja_value v)
{
    glm_jbuf b = {0};
    glm_jinja_value s, out;
    size_t i;

    if (v.kind == GLM_JINJA_STR && (v.flags & GLM_JINJA_F_SAFE)) {
        return v;
    }
    s = glm_jv_to_str(r, v);
    for (i = 0; i < s.n; i++) {
        switch (s.u.s[i]) {
        case '&': glm_jbuf_put(r, &b, "&amp;", 5); break;
        case '<': glm_jbuf_put(r, &b, "&lt;", 4); break;
        case '>': glm_jbuf_put(r, &b, "&gt;", 4); break;
        case '"': glm_jbuf_put(r, &b, "&#34;", 5); break;
        case '\'': glm_jbuf_put(r, &b, "&#39;", 5); break;
        default: glm_jbuf_putc(r, &b, s.u.s[i]);
        }
    }
    glm_jbuf_put(r, &b, "", 0);
    out = glm_jbuf_value(r, &b);
    out.flags = GLM_JINJA_F_SAFE;
    return out;
}

glm_jinja_value
glm_jpad(glm_jrender *r, glm_jinja_value s, int64_t width, int align, uint32_t fill)
{
    int64_t len = (int64_t) glm_ju8_len(s.u.s, s.n), pad, left, k;
    glm_jbuf b = {0};
    char enc[4];
    size_t fl = glm_ju8_encode(fill, enc);

    if (width <= len) {
        return s;
    }
    if (width > (int64_t) r->c->limits.max_output) {
        glm_jfail(r, "padding width %lld exceeds the output limit", (long long) width);
    }
    pad = width - len;
    /* align: '<' left, '>' right, '^' format()'s center (extra space on the
     * right), 'c' str.center (extra space on the left when width is odd) */
    left = align == '<' ? 0 : align == '>' ? pad : align == '^' ? pad / 2
           : (pad / 2 + (pad & width & 1));
    for (k = 0; k < left; k++) {
        glm_jbuf_put(r, &b, enc, fl);
    }
    glm_jbuf_put(r, &b, s.u.s, s.n);
    for (k = 0; k < pad - left; k++) {
        glm_jbuf_put(r, &b, enc, fl);
    }
    return glm_jbuf_value(r, &b);
}


/* ---- printf-style % and str.format ------------------------------------------------------------------ */

static void
glm_jformat_number(glm_jrender *r, glm_jbuf *b, glm_jinja_value v, char type, const char *flags,
                   int64_t width, int64_t prec)
{
    char fmt[32], tmp[512];
    int n;

    if (v.kind == GLM_JINJA_UNDEFINED) {
        glm_jfail_undefined(r, v);
    }
    if (!glm_jv_is_num(v)) {
        glm_jfail(r, "TypeError: %%%c format: a real number is required, not %s", type,
                  glm_jv_type_name(v));
    }
    if (width > 256 || prec > 256) {
        glm_jfail(r, "unsupported: format width or precision above 256");
    }
    if (type == 'd' || type == 'i' || type == 'x' || type == 'X' || type == 'o') {
        long long i = v.kind == GLM_JINJA_FLOAT ? (long long) v.u.f : (long long) v.u.i;
        char conv[2] = {type == 'i' ? 'd' : type, '\0'};

        if (v.kind == GLM_JINJA_FLOAT && (type != 'd' && type != 'i')) {
            glm_jfail(r, "TypeError: %%%c format: an integer is required, not float", type);
        }
        snprintf(fmt, sizeof(fmt), "%%%s%s%sll%s", flags, width >= 0 ? "*" : "",
                 prec >= 0 ? ".*" : "", conv);
        if (width >= 0 && prec >= 0) {
            n = snprintf(tmp, sizeof(tmp), fmt, (int) width, (int) prec, i);
        } else if (width >= 0) {
            n = snprintf(tmp, sizeof(tmp), fmt, (int) width, i);
        } else if (prec >= 0) {
            n = snprintf(tmp, sizeof(tmp), fmt, (int) prec, i);
        } else {
            n = snprintf(tmp, sizeof(tmp), fmt, i);
        }
    } else {
        double d = v.kind == GLM_JINJA_FLOAT ? v.u.f : (double) v.u.i;

        if (isinf(d) || isnan(d)) {
            n = snprintf(tmp, sizeof(tmp), "%s", isnan(d) ? "nan" : d < 0 ? "-inf" : "inf");
        } else {
            snprintf(fmt, sizeof(fmt), "%%%s%s.*%c", flags, width >= 0 ? "*" : "", type);
            if (width >= 0) {
                n = snprintf(tmp, sizeof(tmp), fmt, (int) width, (int) (prec >= 0 ? prec : 6), d);
            } else {
                n = snprintf(tmp, sizeof(tmp), fmt, (int) (prec >= 0 ? prec : 6), d);
            }
        }
    }
    if (n < 0 || (size_t) n >= sizeof(tmp)) {
        glm_jfail(r, "formatted number too long");
    }
    glm_jbuf_put(r, b, tmp, (size_t) n);
}

/* str % args (Python's printf-style formatting, the common conversions). */
glm_jinja_value
glm_jpercent(glm_jrender *r, glm_jinja_value fmtv, glm_jinja_value args)
{
    glm_jbuf b = {0};
    const char *f = fmtv.u.s;
    size_t n = fmtv.n, i = 0;
    uint32_t argi = 0, nargs;
    const glm_jinja_value *argv;
    int is_map = args.kind == GLM_JINJA_DICT, used_map = 0;
    /* Python treats any right operand with __getitem__ (but not a tuple or
     * str) as a mapping: leftover arguments are then no error */
    int mapping_like = is_map || args.kind == GLM_JINJA_UNDEFINED
                       || (args.kind == GLM_JINJA_LIST
                           && !(args.flags & (GLM_JINJA_F_TUPLE | GLM_JINJA_F_ITER)));

    if (args.kind == GLM_JINJA_LIST && (args.flags & GLM_JINJA_F_TUPLE)) {
        argv = args.u.list->v;
        nargs = args.u.list->n;
    } else {
        argv = &args;
        nargs = 1;
    }
    while (i < n) {
        const char *pct = memchr(f + i, '%', n - i);
        char flags[8];
        int nflags = 0;
        int64_t width = -1, prec = -1;
        glm_jinja_value v;
        char type;

        if (pct == NULL) {
            glm_jbuf_put(r, &b, f + i, n - i);
            break;
        }
        glm_jbuf_put(r, &b, f + i, (size_t) (pct - (f + i)));
        i = (size_t) (pct - f) + 1;
        if (i < n && f[i] == '%') {
            glm_jbuf_putc(r, &b, '%');
            i++;
            continue;
        }
        memset(&v, 0, sizeof(v));
        v.kind = GLM_JINJA_KIND_COUNT;
        if (i < n && f[i] == '(') {
            size_t close = i + 1;
            glm_jinja_value *mv;

            while (close < n && f[close] != ')') {
                close++;
            }
            if (close >= n) {
                glm_jfail(r, "ValueError: incomplete format key");
            }
            if (!is_map) {
                glm_jfail(r, "TypeError: format requires a mapping");
            }
            mv = glm_jv_dict_find_str(args.u.dict, f + i + 1, close - i - 1);
            if (mv == NULL) {
                glm_jfail(r, "KeyError: '%.*s'", (int) (close - i - 1), f + i + 1);
            }
            v = *mv;
            used_map = 1;
            i = close + 1;
        }
        while (i < n && strchr("-+ #0", f[i]) != NULL && nflags < 6) {
            flags[nflags++] = f[i++];
        }
        flags[nflags] = '\0';
        if (i < n && f[i] == '*') {
            glm_jfail(r, "unsupported: '*' width in %% formatting");
        }
        while (i < n && glm_jis_digit((unsigned char) f[i])) {
            width = (width < 0 ? 0 : width) * 10 + (f[i++] - '0');
            if (width > 100000) {
                glm_jfail(r, "format width too large");
            }
        }
        if (i < n && f[i] == '.') {
            i++;
            prec = 0;
            while (i < n && glm_jis_digit((unsigned char) f[i])) {
                prec = prec * 10 + (f[i++] - '0');
                if (prec > 100000) {
                    glm_jfail(r, "format precision too large");
                }
            }
        }
        if (i >= n) {
            glm_jfail(r, "ValueError: incomplete format");
        }
        type = f[i++];
        if (v.kind == GLM_JINJA_KIND_COUNT) {
            if (is_map && nargs == 1 && argv == &args) {
                v = args;   /* "%s" % {...} formats the dict itself */
                used_map = 1;
            } else {
                if (argi >= nargs) {
                    glm_jfail(r, "TypeError: not enough arguments for format string");
                }
                v = argv[argi++];
            }
        }
        switch (type) {
        case 's':
        case 'r':
        case 'a': {
            glm_jbuf sb = {0};
            glm_jinja_value sv;

            if (type == 's') {
                glm_jv_write_str(r, &sb, v);
            } else {
                glm_jv_write_repr(r, &sb, v, 0);
            }
            sv = glm_jbuf_value(r, &sb);
            if (prec >= 0) {
                sv.n = (uint32_t) glm_jcp_off(sv.u.s, sv.n, prec);    /* the first prec chars */
            }
            if (fmtv.flags & GLM_JINJA_F_SAFE) {
                sv = glm_jescape(r, sv);
            }
            if (width >= 0) {
                sv = glm_jpad(r, sv, width, strchr(flags, '-') != NULL ? '<' : '>', ' ');
            }
            glm_jbuf_put(r, &b, sv.u.s, sv.n);
            break;
        }
        case 'd': case 'i': case 'x': case 'X': case 'o': case 'f': case 'F': case 'e':
        case 'E': case 'g': case 'G':
            glm_jformat_number(r, &b, v, type, flags, width, prec);
            break;
        default:
            glm_jfail(r, "ValueError: unsupported format character '%c'", type);
        }
    }
    if (!mapping_like && argi < nargs) {
        glm_jfail(r, "TypeError: not all arguments converted during string formatting");
    }
    (void) used_map;
    glm_jbuf_put(r, &b, "", 0);
    {
        glm_jinja_value out = glm_jbuf_value(r, &b);

        out.flags = fmtv.flags & GLM_JINJA_F_SAFE;
        return out;
    }
}

/* format(value, spec) for the specs templates use: [[fill]align][sign][0][width][,][.prec][type] */
static void
glm_jformat_spec(glm_jrender *r, glm_jbuf *b, glm_jinja_value v, const char *spec, size_t sn)
{
    size_t i = 0, adv;
    uint32_t fill = ' ';
    int align = 0;
    char sign = 0, type = 0, group = 0;
    int64_t width = -1, prec = -1;
    glm_jinja_value s;

    if (sn == 0) {
        glm_jv_write_str(r, b, v);      /* format(x, '') is str(x): "" for Undefined */
        return;
    }
    if (v.kind == GLM_JINJA_UNDEFINED) {
        glm_jfail(r, "TypeError: unsupported format string passed to Undefined.__format__");
    }
    if (sn >= 2) {
        uint32_t c0 = glm_ju8_decode(spec, sn, &adv);

        if (adv < sn && strchr("<>^=", spec[adv]) != NULL) {
            fill = c0;
            align = spec[adv];
            i = adv + 1;
        }
    }
    if (align == 0 && i < sn && strchr("<>^=", spec[i]) != NULL) {
        align = spec[i++];
    }
    if (i < sn && strchr("+- ", spec[i]) != NULL) {
        sign = spec[i++];
    }
    if (i < sn && spec[i] == '0') {
        if (align == 0) {
            fill = '0';
            align = '=';
        }
        i++;
    }
    while (i < sn && glm_jis_digit((unsigned char) spec[i])) {
        width = (width < 0 ? 0 : width) * 10 + (spec[i++] - '0');
        if (width > 100000) {
            glm_jfail(r, "format width too large");
        }
    }
    if (i < sn && (spec[i] == ',' || spec[i] == '_')) {
        group = spec[i++];
    }
    if (i < sn && spec[i] == '.') {
        i++;
        prec = 0;
        while (i < sn && glm_jis_digit((unsigned char) spec[i])) {
            prec = prec * 10 + (spec[i++] - '0');
            if (prec > 1000) {
                glm_jfail(r, "format precision too large");
            }
        }
    }
    if (i < sn) {
        type = spec[i++];
    }
    if (i != sn) {
        glm_jfail(r, "unsupported: format spec '%.*s'", (int) sn, spec);
    }
    if (v.kind == GLM_JINJA_STR && (type == 0 || type == 's') && sign == 0 && align != '='
        && group == 0) {
        s = v;
        if (prec >= 0) {
            s.n = (uint32_t) glm_jcp_off(s.u.s, s.n, prec);     /* the first prec chars */
        }
        s = glm_jpad(r, s, width, align ? align : '<', fill);
        glm_jbuf_put(r, b, s.u.s, s.n);
        return;
    }
    if (v.kind == GLM_JINJA_FLOAT && type == 0 && prec < 0 && sign == 0 && align != '='
        && group == 0) {
        /* no type, no precision: str(float) padded */
        glm_jbuf fb = {0};

        glm_jv_write_str(r, &fb, v);
        s = glm_jpad(r, glm_jbuf_value(r, &fb), width, align ? align : '>', fill);
        glm_jbuf_put(r, b, s.u.s, s.n);
        return;
    }
    if (glm_jv_is_num(v) && (type == 'd' || type == 'f' || type == 'F' || type == 'e'
                             || type == 'E' || type == 'x' || type == 'X' || type == 'o'
                             || (type == 0 && v.kind != GLM_JINJA_FLOAT && prec < 0))) {
        glm_jbuf nb = {0};
        char fl[3] = {0, 0, 0};

        if (sign == '+' || sign == ' ') {
            fl[0] = sign;
        }
        if (v.kind == GLM_JINJA_FLOAT && (type == 'd' || type == 'x' || type == 'X'
                                          || type == 'o')) {
            glm_jfail(r, "ValueError: Unknown format code '%c' for object of type 'float'", type);
        }
        glm_jformat_number(r, &nb, v.kind == GLM_JINJA_BOOL ? glm_jvi(v.u.i) : v,
                           type ? type : 'd', fl, -1, prec);
        s = glm_jbuf_value(r, &nb);
        if (group != 0 && (type == 0 || type == 'd' || type == 'f' || type == 'F')) {
            /* thousands separators in the integer part */
            glm_jbuf gb = {0};
            size_t st = s.n > 0 && (s.u.s[0] == '-' || s.u.s[0] == '+' || s.u.s[0] == ' ');
            size_t end = st, k;

            while (end < s.n && glm_jis_digit((unsigned char) s.u.s[end])) {
                end++;
            }
            glm_jbuf_put(r, &gb, s.u.s, st);
            for (k = st; k < end; k++) {
                if (k > st && (end - k) % 3 == 0) {
                    glm_jbuf_putc(r, &gb, group);
                }
                glm_jbuf_putc(r, &gb, s.u.s[k]);
            }
            glm_jbuf_put(r, &gb, s.u.s + end, s.n - end);
            s = glm_jbuf_value(r, &gb);
        } else if (group != 0) {
            glm_jfail(r, "unsupported: format spec '%.*s'", (int) sn, spec);
        }
        if (align == '=' && width > (int64_t) s.n) {
            /* sign-aware padding: fill after the sign */
            size_t signlen = s.n > 0 && (s.u.s[0] == '-' || s.u.s[0] == '+' || s.u.s[0] == ' ');
            int64_t k;
            char enc[4];
            size_t el = glm_ju8_encode(fill, enc);

            glm_jbuf_put(r, b, s.u.s, signlen);
            for (k = 0; k < width - (int64_t) s.n; k++) {
                glm_jbuf_put(r, b, enc, el);
            }
            glm_jbuf_put(r, b, s.u.s + signlen, s.n - signlen);
            return;
        }
        s = glm_jpad(r, s, width, align ? align : '>', fill);
        glm_jbuf_put(r, b, s.u.s, s.n);
        return;
    }
    glm_jfail(r, "unsupported: format spec '%.*s' for %s", (int) sn, spec, glm_jv_type_name(v));
}

/* str.format(*args, **kwargs) */
glm_jinja_value
glm_jstr_format(glm_jrender *r, glm_jinja_value fmtv, glm_jcall_args *a)
{
    glm_jbuf b = {0};
    const char *f = fmtv.u.s;
    size_t n = fmtv.n, i = 0;
    uint32_t auto_idx = 0;
    int manual = 0, automatic = 0;

    while (i < n) {
        char c = f[i];

        if (c == '}') {
            if (i + 1 < n && f[i + 1] == '}') {
                glm_jbuf_putc(r, &b, '}');
                i += 2;
                continue;
            }
            glm_jfail(r, "ValueError: Single '}' encountered in format string");
        }
        if (c != '{') {
            glm_jbuf_putc(r, &b, c);
            i++;
            continue;
        }
        if (i + 1 < n && f[i + 1] == '{') {
            glm_jbuf_putc(r, &b, '{');
            i += 2;
            continue;
        }
        {
            size_t start = ++i, name_end, conv_at = 0, spec_at = 0, end;
            int depth = 1;
            glm_jinja_value v;

            while (i < n && depth > 0) {
                if (f[i] == '{') {
                    depth++;
                } else if (f[i] == '}') {
                    depth--;
                }
                if (depth > 0) {
                    i++;
                }
            }
            if (i >= n) {
                glm_jfail(r, "ValueError: expected '}' before end of string");
            }
            end = i++;
            for (name_end = start; name_end < end && f[name_end] != '!' && f[name_end] != ':';
                 name_end++) {
                if (f[name_end] == '[') {
                    while (name_end < end && f[name_end] != ']') {
                        name_end++;
                    }
                }
            }
            if (name_end < end && f[name_end] == '!') {
                conv_at = name_end + 1;
                spec_at = conv_at + 1;
                if (spec_at < end && f[spec_at] != ':') {
                    glm_jfail(r, "ValueError: expected ':' after conversion specifier");
                }
                if (spec_at < end) {
                    spec_at++;
                }
            } else if (name_end < end) {
                spec_at = name_end + 1;
            }
            {
                /* the first part: empty (automatic), a number, or a name */
                size_t k = start;
                const char *first_end;

                while (k < name_end && f[k] != '.' && f[k] != '[') {
                    k++;
                }
                first_end = f + k;
                if (k == start) {
                    if (manual) {
                        glm_jfail(r, "ValueError: cannot switch from manual field specification "
                                  "to automatic field numbering");
                    }
                    automatic = 1;
                    if (auto_idx >= a->npos) {
                        glm_jfail(r, "IndexError: Replacement index %u out of range for "
                                  "positional args tuple", auto_idx);
                    }
                    v = a->pos[auto_idx++];
                } else if (glm_jis_digit((unsigned char) f[start])) {
                    int64_t idx = 0;
                    size_t d;

                    if (automatic) {
                        glm_jfail(r, "ValueError: cannot switch from automatic field numbering "
                                  "to manual field specification");
                    }
                    manual = 1;
                    for (d = start; d < k; d++) {
                        if (!glm_jis_digit((unsigned char) f[d]) || idx > 100000) {
                            glm_jfail(r, "unsupported: format field '%.*s'", (int) (k - start),
                                      f + start);
                        }
                        idx = idx * 10 + (f[d] - '0');
                    }
                    if (idx >= a->npos) {
                        glm_jfail(r, "IndexError: Replacement index %lld out of range for "
                                  "positional args tuple", (long long) idx);
                    }
                    v = a->pos[idx];
                } else {
                    uint32_t q;

                    for (q = 0; q < a->nkw; q++) {
                        if (a->kwname[q].n == k - start
                            && memcmp(a->kwname[q].u.s, f + start, k - start) == 0) {
                            break;
                        }
                    }
                    if (q == a->nkw) {
                        glm_jfail(r, "KeyError: '%.*s'", (int) (k - start), f + start);
                    }
                    v = a->kwval[q];
                }
                /* .attr and [key] parts */
                while (first_end < f + name_end) {
                    if (*first_end == '.') {
                        const char *as = first_end + 1, *ae = as;

                        while (ae < f + name_end && *ae != '.' && *ae != '[') {
                            ae++;
                        }
                        v = glm_jgetattr(r, v, glm_jv_str(as, (size_t) (ae - as)), NULL);
                        first_end = ae;
                    } else {
                        const char *ks = first_end + 1, *ke = ks;
                        int all_digits = 1;

                        while (ke < f + name_end && *ke != ']') {
                            all_digits &= glm_jis_digit((unsigned char) *ke);
                            ke++;
                        }
                        if (all_digits && ke > ks && ke - ks < 18) {
                            v = glm_jgetitem(r, v, glm_jvi(strtoll(ks, NULL, 10)));
                        } else {
                            v = glm_jgetitem(r, v, glm_jv_str(ks, (size_t) (ke - ks)));
                        }
                        first_end = ke + 1;
                    }
                }
            }
            if (conv_at != 0) {
                glm_jbuf cb = {0};

                if (f[conv_at] == 'r' || f[conv_at] == 'a') {
                    glm_jv_write_repr(r, &cb, v, 0);
                } else if (f[conv_at] == 's') {
                    glm_jv_write_str(r, &cb, v);
                } else {
                    glm_jfail(r, "ValueError: Unknown conversion specifier %c", f[conv_at]);
                }
                v = glm_jbuf_value(r, &cb);
            }
            if (spec_at != 0 && memchr(f + spec_at, '{', end - spec_at) != NULL) {
                glm_jfail(r, "unsupported: nested replacement field in a format spec");
            }
            glm_jformat_spec(r, &b, v, spec_at ? f + spec_at : "", spec_at ? end - spec_at : 0);
        }
    }
    glm_jbuf_put(r, &b, "", 0);
    return glm_jbuf_value(r, &b);
}
