/*
 * ebnf.c: see ebnf.h.  A first pass finds each rule's name and the span of
 * its body; bodies are then read recursively from root, each reference
 * read afresh in place of the name, with the rules being expanded on a
 * stack to find recursion.
 */
#include "ebnf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EBNF_MAX_RULES  512
#define EBNF_MAX_NODES  200000     /* expansion guard: references can multiply */
#define EBNF_MAX_DEPTH  64

typedef struct {
    const char *name;
    size_t      name_len;
    size_t      body, end;         /* the body's bytes [body, end) */
} ebnf_rule;

typedef struct {
    const char *p;
    size_t      n, i, end;         /* reading [i, end) */
    ebnf_rule   rules[EBNF_MAX_RULES];
    int         n_rules;
    int         active[EBNF_MAX_DEPTH];   /* rules being expanded */
    int         depth;
    long        nodes;
    glm_err    *err;
} ebnf;

static glm_rx *ebnf_alts(ebnf *g);

static void
ebnf_where(const ebnf *g, size_t at, size_t *line, size_t *col)
{
    size_t k;

    *line = 1;
    *col = 1;
    for (k = 0; k < at && k < g->n; k++) {
        if (g->p[k] == '\n') {
            (*line)++;
            *col = 1;
        } else if (((unsigned char) g->p[k] & 0xc0) != 0x80) {
            (*col)++;
        }
    }
}

static glm_rx *
ebnf_fail(ebnf *g, size_t at, const char *what)
{
    size_t line, col;

    ebnf_where(g, at, &line, &col);
    glm_errf(g->err, "grammar: %s at line %zu column %zu", what, line, col);
    return NULL;
}

static int
ebnf_name_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || c == '_' || c == '-';
}

/* skips whitespace and comments in [i, end) */
static void
ebnf_space(ebnf *g)
{
    while (g->i < g->end) {
        char c = g->p[g->i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            g->i++;
        } else if (c == '#') {
            while (g->i < g->end && g->p[g->i] != '\n') {
                g->i++;
            }
        } else {
            break;
        }
    }
}

/* past a quoted string or a class starting at i (for the first pass) */
static size_t
ebnf_skip_quoted(const char *p, size_t n, size_t i)
{
    char close = p[i] == '[' ? ']' : p[i];

    for (i++; i < n && p[i] != close; i++) {
        if (p[i] == '\\' && i + 1 < n) {
            i++;
        }
    }
    return i < n ? i + 1 : n;
}

/* the first pass: rule names and body spans */
static int
ebnf_rules(ebnf *g)
{
    size_t i = 0, last_name = 0, last_name_len = 0;
    int have_name = 0;

    while (i < g->n) {
        char c = g->p[i];
        if (c == '"' || c == '\'' || c == '[') {
            i = ebnf_skip_quoted(g->p, g->n, i);
            have_name = 0;
        } else if (c == '#') {
            while (i < g->n && g->p[i] != '\n') {
                i++;
            }
        } else if (ebnf_name_char((unsigned char) c)) {
            last_name = i;
            while (i < g->n && ebnf_name_char((unsigned char) g->p[i])) {
                i++;
            }
            last_name_len = i - last_name;
            have_name = 1;
        } else if (c == ':' && i + 2 < g->n + 0 && g->p[i + 1] == ':' && g->p[i + 2] == '=') {
            ebnf_rule *r;
            if (!have_name) {
                ebnf_fail(g, i, "'::=' without a rule name before it");
                return -1;
            }
            if (g->n_rules == EBNF_MAX_RULES) {
                glm_errf(g->err, "grammar: more than %d rules", EBNF_MAX_RULES);
                return -1;
            }
            if (g->n_rules > 0) {
                g->rules[g->n_rules - 1].end = last_name;
            }
            r = &g->rules[g->n_rules++];
            r->name = g->p + last_name;
            r->name_len = last_name_len;
            r->body = i + 3;
            i += 3;
            have_name = 0;
        } else {
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                have_name = 0;
            }
            i++;
        }
    }
    if (g->n_rules == 0) {
        glm_errf(g->err, "grammar: no rule found; only GBNF grammars (root ::= ...) are"
                 " supported, not Lark (start: ...)");
        return -1;
    }
    g->rules[g->n_rules - 1].end = g->n;
    return 0;
}

static int
ebnf_find(const ebnf *g, const char *name, size_t len)
{
    int k;

    for (k = 0; k < g->n_rules; k++) {
        if (g->rules[k].name_len == len && memcmp(g->rules[k].name, name, len) == 0) {
            return k;
        }
    }
    return -1;
}

static int
ebnf_hex(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* one character of a string or class at i, escapes read; -1 on error */
static int
ebnf_char(ebnf *g, uint32_t *cp)
{
    const unsigned char *p = (const unsigned char *) g->p;
    size_t at = g->i;
    unsigned b;
    int len, k;

    if (g->i >= g->end) {
        ebnf_fail(g, at, "unterminated string or class");
        return -1;
    }
    b = p[g->i];
    if (b == '\\') {
        int e = g->i + 1 < g->end ? p[g->i + 1] : -1, nd;
        uint32_t v = 0;
        g->i += 2;
        switch (e) {
        case 'n': *cp = '\n'; return 0;
        case 't': *cp = '\t'; return 0;
        case 'r': *cp = '\r'; return 0;
        case '\\': case '"': case '\'': case ']': case '[': case '-': case '^':
            *cp = (uint32_t) e;
            return 0;
        case 'x': case 'u': case 'U':
            nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            for (k = 0; k < nd; k++) {
                int h = g->i < g->end ? ebnf_hex(p[g->i]) : -1;
                if (h < 0) {
                    ebnf_fail(g, at, "incomplete \\x, \\u or \\U escape");
                    return -1;
                }
                v = v * 16 + (uint32_t) h;
                g->i++;
            }
            if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
                ebnf_fail(g, at, "escape outside Unicode scalar values");
                return -1;
            }
            *cp = v;
            return 0;
        default:
            ebnf_fail(g, at, "unknown escape");
            return -1;
        }
    }
    len = b < 0x80 ? 1 : b >= 0xc2 && b < 0xe0 ? 2 : b >= 0xe0 && b < 0xf0 ? 3
        : b >= 0xf0 && b < 0xf5 ? 4 : 0;
    if (len == 0 || g->i + (size_t) len > g->end) {
        ebnf_fail(g, at, "invalid UTF-8");
        return -1;
    }
    *cp = len == 1 ? b : len == 2 ? (b & 0x1f) : len == 3 ? (b & 0x0f) : (b & 0x07);
    for (k = 1; k < len; k++) {
        if ((p[g->i + (size_t) k] & 0xc0) != 0x80) {
            ebnf_fail(g, at, "invalid UTF-8");
            return -1;
        }
        *cp = (*cp << 6) | (p[g->i + (size_t) k] & 0x3f);
    }
    g->i += (size_t) len;
    return 0;
}

static glm_rx *
ebnf_string(ebnf *g)
{
    char q = g->p[g->i];
    size_t at = g->i;
    glm_rx *cat = glm_rx_new(GLM_RX_CAT);

    g->i++;
    while (cat != NULL) {
        uint32_t cp;
        if (g->i >= g->end) {
            glm_rx_free(cat);
            return ebnf_fail(g, at, "unterminated string");
        }
        if (g->p[g->i] == q) {
            g->i++;
            return cat;
        }
        if (ebnf_char(g, &cp) != 0) {
            glm_rx_free(cat);
            return NULL;
        }
        if (glm_rx_add(cat, glm_rx_char(cp)) != 0) {
            glm_rx_free(cat);
            cat = NULL;
        }
    }
    glm_errf(g->err, "out of memory");
    return NULL;
}

static glm_rx *
ebnf_class(ebnf *g)
{
    size_t at = g->i;
    glm_rx *cls = glm_rx_new(GLM_RX_CLASS);
    int negate = 0;

    if (cls == NULL) {
        glm_errf(g->err, "out of memory");
        return NULL;
    }
    g->i++;
    if (g->i < g->end && g->p[g->i] == '^') {
        negate = 1;
        g->i++;
    }
    for (;;) {
        uint32_t lo, hi;
        if (g->i >= g->end) {
            glm_rx_free(cls);
            return ebnf_fail(g, at, "unterminated character class");
        }
        if (g->p[g->i] == ']') {
            g->i++;
            break;
        }
        if (ebnf_char(g, &lo) != 0) {
            glm_rx_free(cls);
            return NULL;
        }
        hi = lo;
        if (g->i + 1 < g->end && g->p[g->i] == '-' && g->p[g->i + 1] != ']') {
            g->i++;
            if (ebnf_char(g, &hi) != 0) {
                glm_rx_free(cls);
                return NULL;
            }
            if (hi < lo) {
                glm_rx_free(cls);
                return ebnf_fail(g, at, "character range with its end before its start");
            }
        }
        if (glm_rx_class_add(cls, lo, hi) != 0) {
            glm_rx_free(cls);
            glm_errf(g->err, "out of memory");
            return NULL;
        }
    }
    if (glm_rx_class_finish(cls, negate) != 0) {
        glm_rx_free(cls);
        glm_errf(g->err, "out of memory");
        return NULL;
    }
    return cls;
}

/* the body of rule k, read where the reference stands */
static glm_rx *
ebnf_expand(ebnf *g, int k, size_t ref_at)
{
    size_t save_i = g->i, save_end = g->end;
    glm_rx *rx;
    int d;

    for (d = 0; d < g->depth; d++) {
        if (g->active[d] == k) {
            char msg[200];
            snprintf(msg, sizeof(msg), "the rule '%.*s' refers back to itself (a recursive"
                     " grammar is not regular; only regular grammars are supported)",
                     (int) (g->rules[k].name_len > 60 ? 60 : g->rules[k].name_len),
                     g->rules[k].name);
            return ebnf_fail(g, ref_at, msg);
        }
    }
    if (g->depth == EBNF_MAX_DEPTH) {
        return ebnf_fail(g, ref_at, "rules nest more than 64 deep");
    }
    g->active[g->depth++] = k;
    g->i = g->rules[k].body;
    g->end = g->rules[k].end;
    rx = ebnf_alts(g);
    if (rx != NULL) {
        ebnf_space(g);
        if (g->i < g->end) {
            glm_rx_free(rx);
            rx = ebnf_fail(g, g->i, g->p[g->i] == ')' ? "unbalanced ')'" : "unexpected text");
        }
    }
    g->depth--;
    g->i = save_i;
    g->end = save_end;
    return rx;
}

static glm_rx *
ebnf_item(ebnf *g)
{
    size_t at = g->i;
    char c = g->p[g->i];
    glm_rx *rx;

    if (++g->nodes > EBNF_MAX_NODES) {
        glm_errf(g->err, "grammar: expands to more than %d items", EBNF_MAX_NODES);
        return NULL;
    }
    if (c == '"' || c == '\'') {
        rx = ebnf_string(g);
    } else if (c == '[') {
        rx = ebnf_class(g);
    } else if (c == '.') {
        uint32_t any[2] = { 0, 0x10ffff };
        g->i++;
        rx = glm_rx_class(any, 1);
    } else if (c == '(') {
        g->i++;
        rx = ebnf_alts(g);
        if (rx == NULL) {
            return NULL;
        }
        ebnf_space(g);
        if (g->i >= g->end || g->p[g->i] != ')') {
            glm_rx_free(rx);
            return ebnf_fail(g, at, "'(' without its ')'");
        }
        g->i++;
    } else if (ebnf_name_char((unsigned char) c)) {
        size_t s = g->i;
        int k;
        while (g->i < g->end && ebnf_name_char((unsigned char) g->p[g->i])) {
            g->i++;
        }
        k = ebnf_find(g, g->p + s, g->i - s);
        if (k < 0) {
            char msg[160];
            snprintf(msg, sizeof(msg), "undefined rule '%.*s'",
                     (int) (g->i - s > 60 ? 60 : g->i - s), g->p + s);
            return ebnf_fail(g, s, msg);
        }
        rx = ebnf_expand(g, k, s);
    } else {
        return ebnf_fail(g, at, "unexpected character");
    }
    if (rx == NULL) {
        return NULL;
    }
    /* quantifiers */
    for (;;) {
        long min, max;
        size_t qat = g->i;
        if (g->i >= g->end) {
            return rx;
        }
        c = g->p[g->i];
        if (c == '*' || c == '+' || c == '?') {
            g->i++;
            min = c == '+';
            max = c == '?' ? 1 : -1;
        } else if (c == '{') {
            min = max = 0;
            g->i++;
            while (g->i < g->end && g->p[g->i] >= '0' && g->p[g->i] <= '9') {
                min = min * 10 + (g->p[g->i++] - '0');
                if (min > 1000000) {
                    min = 1000000;
                }
            }
            max = min;
            if (g->i < g->end && g->p[g->i] == ',') {
                g->i++;
                max = -1;
                if (g->i < g->end && g->p[g->i] >= '0' && g->p[g->i] <= '9') {
                    max = 0;
                    while (g->i < g->end && g->p[g->i] >= '0' && g->p[g->i] <= '9') {
                        max = max * 10 + (g->p[g->i++] - '0');
                        if (max > 1000000) {
                            max = 1000000;
                        }
                    }
                }
            }
            if (g->i >= g->end || g->p[g->i] != '}' || (max >= 0 && max < min)) {
                glm_rx_free(rx);
                return ebnf_fail(g, qat, "bad {m,n} repetition");
            }
            g->i++;
        } else {
            return rx;
        }
        if (min > GLM_RX_MAX_REPEAT || max > GLM_RX_MAX_REPEAT) {
            glm_rx_free(rx);
            return ebnf_fail(g, qat, "repetition count above 1000");
        }
        rx = glm_rx_repeat(rx, (int) min, (int) max);
        if (rx == NULL) {
            glm_errf(g->err, "out of memory");
            return NULL;
        }
    }
}

static glm_rx *
ebnf_alts(ebnf *g)
{
    glm_rx *alt = glm_rx_new(GLM_RX_ALT), *cat = NULL;

    if (alt == NULL) {
        glm_errf(g->err, "out of memory");
        return NULL;
    }
    for (;;) {
        cat = glm_rx_new(GLM_RX_CAT);
        if (cat == NULL) {
            break;
        }
        for (;;) {
            ebnf_space(g);
            if (g->i >= g->end || g->p[g->i] == '|' || g->p[g->i] == ')') {
                break;
            }
            if (glm_rx_add(cat, ebnf_item(g)) != 0) {
                glm_rx_free(cat);
                glm_rx_free(alt);
                if (g->err->msg[0] == '\0') {
                    glm_errf(g->err, "out of memory");
                }
                return NULL;
            }
        }
        if (glm_rx_add(alt, cat) != 0) {
            break;
        }
        if (g->i < g->end && g->p[g->i] == '|') {
            g->i++;
            continue;
        }
        return alt;
    }
    glm_rx_free(alt);
    glm_errf(g->err, "out of memory");
    return NULL;
}

glm_rx *
glm_ebnf_parse(const char *grammar, size_t n, glm_err *err)
{
    ebnf *g = calloc(1, sizeof(*g));
    glm_rx *rx;
    int root;

    if (g == NULL) {
        glm_errf(err, "out of memory");
        return NULL;
    }
    g->p = grammar;
    g->n = n;
    g->err = err;
    err->msg[0] = '\0';
    if (ebnf_rules(g) != 0) {
        free(g);
        return NULL;
    }
    root = ebnf_find(g, "root", 4);
    if (root < 0) {
        free(g);
        glm_errf(err, "grammar: no 'root' rule (the start rule is root ::= ...)");
        return NULL;
    }
    g->end = n;
    rx = ebnf_expand(g, root, g->rules[root].body);
    free(g);
    return rx;
}
