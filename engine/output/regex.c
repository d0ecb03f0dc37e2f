/*
 * regex.c: see regex.h.  A recursive-descent reader of Python's re syntax
 * (sre_parse's grammar, the supported part), building byte_dfa.h trees.
 * Positions in messages count code points, as Python's do.
 */
#include "regex.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *p;
    size_t      n, i;
    glm_err    *err;
} rx_src;

static glm_rx *rx_alt(rx_src *s, int depth);

/* the code point index of byte offset at */
static size_t
rx_pos(const rx_src *s, size_t at)
{
    size_t k, pos = 0;

    for (k = 0; k < at && k < s->n; k++) {
        pos += ((unsigned char) s->p[k] & 0xc0) != 0x80;
    }
    return pos;
}

static glm_rx *
rx_fail(rx_src *s, size_t at, const char *what)
{
    glm_errf(s->err, "%s at position %zu", what, rx_pos(s, at));
    return NULL;
}

static glm_rx *
rx_unsupported(rx_src *s, size_t at, const char *what)
{
    glm_errf(s->err, "unsupported regex construct: %s at position %zu (supported: literals,"
             " '.', classes, \\d \\w \\s, groups, |, ? * + {m,n})", what, rx_pos(s, at));
    return NULL;
}

static int
rx_peek(const rx_src *s)
{
    return s->i < s->n ? (unsigned char) s->p[s->i] : -1;
}

/* the next character (a whole UTF-8 sequence) as a code point */
static int
rx_char(rx_src *s, uint32_t *cp)
{
    unsigned b = (unsigned char) s->p[s->i];
    int len = b < 0x80 ? 1 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4, k;
    uint32_t c = len == 1 ? b : len == 2 ? (b & 0x1f) : len == 3 ? (b & 0x0f) : (b & 0x07);

    if (s->i + (size_t) len > s->n || (b >= 0x80 && b < 0xc2) || b > 0xf4) {
        glm_errf(s->err, "the pattern is not valid UTF-8");
        return -1;
    }
    for (k = 1; k < len; k++) {
        unsigned cb = (unsigned char) s->p[s->i + (size_t) k];
        if ((cb & 0xc0) != 0x80) {
            glm_errf(s->err, "the pattern is not valid UTF-8");
            return -1;
        }
        c = (c << 6) | (cb & 0x3f);
    }
    s->i += (size_t) len;
    *cp = c;
    return 0;
}

static int
rx_hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* ASCII classes (re.ASCII): d, w, s; upper case negated */
static int
rx_class_escape(glm_rx *cls, int e)
{
    switch (e | 0x20) {
    case 'd':
        return glm_rx_class_add(cls, '0', '9');
    case 'w':
        return glm_rx_class_add(cls, '0', '9') | glm_rx_class_add(cls, 'A', 'Z')
               | glm_rx_class_add(cls, 'a', 'z') | glm_rx_class_add(cls, '_', '_');
    default:
        return glm_rx_class_add(cls, '\t', '\r') | glm_rx_class_add(cls, ' ', ' ');
    }
}

/*
 * An escape after '\' (s->i is past the backslash).  Sets *cp for one
 * character, or returns a class node in *cls for \d \w \s and their
 * negations.  0 on success, -1 with err.
 */
static int
rx_escape(rx_src *s, int in_class, uint32_t *cp, glm_rx **cls)
{
    size_t at = s->i - 1;
    int c = rx_peek(s), k, ndig;
    uint32_t v;

    *cls = NULL;
    if (c < 0) {
        rx_fail(s, at, "bad escape (end of pattern)");
        return -1;
    }
    switch (c) {
    case 'd': case 'D': case 'w': case 'W': case 's': case 'S': {
        glm_rx *r = glm_rx_new(GLM_RX_CLASS);
        s->i++;
        if (r == NULL || rx_class_escape(r, c) != 0
            || glm_rx_class_finish(r, c == 'D' || c == 'W' || c == 'S') != 0)
        {
            glm_rx_free(r);
            glm_errf(s->err, "out of memory");
            return -1;
        }
        *cls = r;
        return 0;
    }
    case 'n': *cp = '\n'; s->i++; return 0;
    case 't': *cp = '\t'; s->i++; return 0;
    case 'r': *cp = '\r'; s->i++; return 0;
    case 'f': *cp = '\f'; s->i++; return 0;
    case 'v': *cp = '\v'; s->i++; return 0;
    case 'a': *cp = '\a'; s->i++; return 0;
    case 'b':
        if (in_class) {
            *cp = '\b';
            s->i++;
            return 0;
        }
        rx_unsupported(s, at, "the word boundary \\b");
        return -1;
    case 'x': case 'u': case 'U':
        ndig = c == 'x' ? 2 : c == 'u' ? 4 : 8;
        s->i++;
        for (v = 0, k = 0; k < ndig; k++) {
            int h = rx_hexval(rx_peek(s));
            if (h < 0) {
                glm_errf(s->err, "incomplete escape \\%c at position %zu", c, rx_pos(s, at));
                return -1;
            }
            v = v * 16 + (uint32_t) h;
            s->i++;
        }
        if (v > 0x10ffff) {
            glm_errf(s->err, "bad escape \\%c at position %zu", c, rx_pos(s, at));
            return -1;
        }
        *cp = v;
        return 0;
    case '0':
        /* octal: \0 and up to two more octal digits */
        s->i++;
        for (v = 0, k = 0; k < 2 && rx_peek(s) >= '0' && rx_peek(s) <= '7'; k++) {
            v = v * 8 + (uint32_t) (rx_peek(s) - '0');
            s->i++;
        }
        *cp = v;
        return 0;
    case 'B': case 'A': case 'Z': case 'z': case 'G':
        rx_unsupported(s, at, "an anchor escape (\\A \\B \\Z)");
        return -1;
    default:
        break;
    }
    if (c >= '1' && c <= '9') {
        if (in_class) {
            glm_errf(s->err, "bad escape \\%c at position %zu", c, rx_pos(s, at));
            return -1;
        }
        rx_unsupported(s, at, "a backreference");
        return -1;
    }
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
        glm_errf(s->err, "bad escape \\%c at position %zu", c, rx_pos(s, at));
        return -1;
    }
    return rx_char(s, cp);
}

/* [...] with s->i past '[' */
static glm_rx *
rx_set(rx_src *s)
{
    size_t at = s->i - 1;
    glm_rx *cls = glm_rx_new(GLM_RX_CLASS);
    int negate = 0, first = 1;

    if (cls == NULL) {
        glm_errf(s->err, "out of memory");
        return NULL;
    }
    if (rx_peek(s) == '^') {
        negate = 1;
        s->i++;
    }
    for (;;) {
        uint32_t lo, hi;
        glm_rx *esc = NULL;
        size_t item_at = s->i;
        int c = rx_peek(s);

        if (c < 0) {
            glm_rx_free(cls);
            return rx_fail(s, at, "unterminated character set");
        }
        if (c == ']' && !first) {
            s->i++;
            break;
        }
        first = 0;
        if (c == '\\') {
            s->i++;
            if (rx_escape(s, 1, &lo, &esc) != 0) {
                glm_rx_free(cls);
                return NULL;
            }
        } else if (rx_char(s, &lo) != 0) {
            glm_rx_free(cls);
            return NULL;
        }
        if (esc != NULL) {
            int k, bad = 0;
            /* a class escape cannot start a range */
            if (rx_peek(s) == '-' && s->i + 1 < s->n && s->p[s->i + 1] != ']') {
                glm_errf(s->err, "bad character range at position %zu", rx_pos(s, item_at));
                bad = 1;
            }
            for (k = 0; !bad && k < esc->n_ranges; k++) {
                bad = glm_rx_class_add(cls, esc->ranges[2 * k], esc->ranges[2 * k + 1]) != 0;
            }
            glm_rx_free(esc);
            if (bad) {
                glm_rx_free(cls);
                return NULL;
            }
            continue;
        }
        hi = lo;
        if (rx_peek(s) == '-' && s->i + 1 < s->n && s->p[s->i + 1] != ']') {
            s->i++;
            if (rx_peek(s) == '\\') {
                s->i++;
                if (rx_escape(s, 1, &hi, &esc) != 0) {
                    glm_rx_free(cls);
                    return NULL;
                }
                if (esc != NULL) {
                    glm_rx_free(esc);
                    glm_rx_free(cls);
                    return rx_fail(s, item_at, "bad character range");
                }
            } else if (rx_char(s, &hi) != 0) {
                glm_rx_free(cls);
                return NULL;
            }
            if (hi < lo) {
                glm_rx_free(cls);
                return rx_fail(s, item_at, "bad character range");
            }
        }
        if (glm_rx_class_add(cls, lo, hi) != 0) {
            glm_rx_free(cls);
            glm_errf(s->err, "out of memory");
            return NULL;
        }
    }
    if (glm_rx_class_finish(cls, negate) != 0) {
        glm_rx_free(cls);
        glm_errf(s->err, "out of memory");
        return NULL;
    }
    return cls;
}

/* "{m}", "{m,}", "{,n}", "{m,n}", "{,}" at s->i; 0 and the bounds, or -1
 * when it is not a quantifier (then '{' is a literal and s->i is unchanged) */
static int
rx_braces(rx_src *s, long *min, long *max)
{
    size_t j = s->i + 1;
    long lo = -1, hi = -1;
    int comma = 0;

    if (j < s->n && s->p[j] == '}') {
        return -1;
    }
    while (j < s->n && s->p[j] >= '0' && s->p[j] <= '9') {
        lo = (lo < 0 ? 0 : lo) * 10 + (s->p[j] - '0');
        if (lo > 100000000) {
            lo = 100000000;
        }
        j++;
    }
    if (j < s->n && s->p[j] == ',') {
        comma = 1;
        j++;
        while (j < s->n && s->p[j] >= '0' && s->p[j] <= '9') {
            hi = (hi < 0 ? 0 : hi) * 10 + (s->p[j] - '0');
            if (hi > 100000000) {
                hi = 100000000;
            }
            j++;
        }
    }
    if (j >= s->n || s->p[j] != '}') {
        return -1;
    }
    *min = lo < 0 ? 0 : lo;
    *max = comma ? hi : *min;      /* -1: unbounded */
    s->i = j + 1;
    return 0;
}

/* one concatenation, up to '|' or ')' or the end */
static glm_rx *
rx_cat(rx_src *s, int depth)
{
    glm_rx *cat = glm_rx_new(GLM_RX_CAT), *atom;
    int last_repeat = 0;

    if (cat == NULL) {
        glm_errf(s->err, "out of memory");
        return NULL;
    }
    for (;;) {
        int c = rx_peek(s);
        size_t at = s->i;
        uint32_t cp;
        long min = 0, max = -1;
        int is_quant = 0;

        if (c < 0 || c == '|' || c == ')') {
            return cat;
        }
        /* quantifiers */
        if (c == '*' || c == '+' || c == '?') {
            s->i++;
            min = c == '+' ? 1 : 0;
            max = c == '?' ? 1 : -1;
            is_quant = 1;
        } else if (c == '{' && rx_braces(s, &min, &max) == 0) {
            is_quant = 1;
        }
        if (is_quant) {
            glm_rx *r;
            if (cat->n_kids == 0) {
                glm_rx_free(cat);
                return rx_fail(s, at, "nothing to repeat");
            }
            if (last_repeat) {
                glm_rx_free(cat);
                return rx_fail(s, at, "multiple repeat");
            }
            if (max >= 0 && min > max) {
                glm_rx_free(cat);
                return rx_fail(s, at, "min repeat greater than max repeat");
            }
            if (min > GLM_RX_MAX_REPEAT || max > GLM_RX_MAX_REPEAT) {
                glm_rx_free(cat);
                glm_errf(s->err, "repetition count above %d at position %zu",
                         GLM_RX_MAX_REPEAT, rx_pos(s, at));
                return NULL;
            }
            if (rx_peek(s) == '?') {
                s->i++;                       /* lazy: the same language */
            } else if (rx_peek(s) == '+') {
                glm_rx_free(cat);
                return rx_unsupported(s, s->i, "a possessive quantifier");
            }
            r = glm_rx_repeat(cat->kids[cat->n_kids - 1], (int) min, (int) max);
            if (r == NULL) {
                cat->n_kids--;
                glm_rx_free(cat);
                glm_errf(s->err, "out of memory");
                return NULL;
            }
            cat->kids[cat->n_kids - 1] = r;
            last_repeat = 1;
            continue;
        }
        last_repeat = 0;
        atom = NULL;
        switch (c) {
        case '(':
            s->i++;
            if (rx_peek(s) == '?') {
                int e = s->i + 1 < s->n ? (unsigned char) s->p[s->i + 1] : -1;
                if (e == ':') {
                    s->i += 2;
                } else if (e == 'P' && s->i + 2 < s->n && s->p[s->i + 2] == '<') {
                    size_t j = s->i + 3;
                    while (j < s->n && s->p[j] != '>') {
                        j++;
                    }
                    if (j >= s->n || j == s->i + 3) {
                        glm_rx_free(cat);
                        return rx_fail(s, s->i + 3, "missing group name");
                    }
                    s->i = j + 1;
                } else if (e == '#') {
                    while (s->i < s->n && s->p[s->i] != ')') {
                        s->i++;
                    }
                    if (s->i >= s->n) {
                        glm_rx_free(cat);
                        return rx_fail(s, at, "missing ), unterminated comment");
                    }
                    s->i++;
                    continue;
                } else {
                    const char *what = e == '=' || e == '!' ? "a lookahead"
                                     : e == '<' ? "a lookbehind"
                                     : e == 'P' ? "a named backreference"
                                     : e == '(' ? "a conditional group"
                                     : e == '>' ? "an atomic group"
                                     : "inline flags";
                    glm_rx_free(cat);
                    return rx_unsupported(s, at, what);
                }
            }
            atom = rx_alt(s, depth + 1);
            if (atom == NULL) {
                glm_rx_free(cat);
                return NULL;
            }
            if (rx_peek(s) != ')') {
                glm_rx_free(atom);
                glm_rx_free(cat);
                return rx_fail(s, at, "missing ), unterminated subpattern");
            }
            s->i++;
            break;
        case '[':
            s->i++;
            atom = rx_set(s);
            break;
        case '.': {
            uint32_t r[4] = { 0, '\n' - 1, '\n' + 1, 0x10ffff };
            s->i++;
            atom = glm_rx_class(r, 2);
            break;
        }
        case '^':
            if (at == 0) {
                s->i++;
                continue;
            }
            glm_rx_free(cat);
            return rx_unsupported(s, at, "'^' that is not at the start of the pattern");
        case '$':
            if (at + 1 == s->n) {
                s->i++;
                continue;
            }
            glm_rx_free(cat);
            return rx_unsupported(s, at, "'$' that is not at the end of the pattern");
        case '\\':
            s->i++;
            if (rx_escape(s, 0, &cp, &atom) != 0) {
                glm_rx_free(cat);
                return NULL;
            }
            if (atom == NULL) {
                atom = glm_rx_char(cp);
            }
            break;
        default:
            if (rx_char(s, &cp) != 0) {
                glm_rx_free(cat);
                return NULL;
            }
            atom = glm_rx_char(cp);
            break;
        }
        if (atom == NULL) {
            glm_rx_free(cat);
            if (s->err->msg[0] == '\0') {
                glm_errf(s->err, "out of memory");
            }
            return NULL;
        }
        if (glm_rx_add(cat, atom) != 0) {
            glm_rx_free(cat);
            glm_errf(s->err, "out of memory");
            return NULL;
        }
    }
}

static glm_rx *
rx_alt(rx_src *s, int depth)
{
    glm_rx *alt, *branch;

    if (depth > 100) {
        glm_errf(s->err, "the pattern nests groups more than 100 deep");
        return NULL;
    }
    alt = glm_rx_new(GLM_RX_ALT);
    if (alt == NULL) {
        glm_errf(s->err, "out of memory");
        return NULL;
    }
    for (;;) {
        branch = rx_cat(s, depth);
        if (branch == NULL) {
            glm_rx_free(alt);
            return NULL;
        }
        if (glm_rx_add(alt, branch) != 0) {
            glm_rx_free(alt);
            glm_errf(s->err, "out of memory");
            return NULL;
        }
        if (rx_peek(s) != '|') {
            return alt;
        }
        s->i++;
    }
}

glm_rx *
glm_regex_parse(const char *pattern, size_t n, glm_err *err)
{
    rx_src s;
    glm_rx *rx;

    s.p = pattern;
    s.n = n;
    s.i = 0;
    s.err = err;
    err->msg[0] = '\0';
    rx = rx_alt(&s, 0);
    if (rx != NULL && s.i < n) {
        /* only a ')' stops the top level early */
        glm_rx_free(rx);
        return rx_fail(&s, s.i, "unbalanced parenthesis");
    }
    return rx;
}
