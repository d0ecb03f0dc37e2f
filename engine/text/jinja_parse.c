/*
 * jinja_parse.c: template source -> AST, following jinja2 3.1's lexer.py and
 * parser.py closely enough that every whitespace decision and every operator
 * precedence comes out the same.
 *
 * Lexer (jinja2's tokeniter with trim_blocks=True, lstrip_blocks=True,
 * keep_trailing_newline=False):
 *   - newlines are normalised to \n and one trailing newline is dropped;
 *   - "{%-", "{{-", "{#-" strip all whitespace (str.isspace) before the tag;
 *     "-%}", "-}}", "-#}" strip all whitespace after it;
 *   - trim_blocks: "%}" and "#}" eat one following "\n" ("+%}" does not);
 *   - lstrip_blocks: before "{%" and "{#" (not "{{"), spaces and tabs from the
 *     start of the line are removed when nothing else is on the line before
 *     the tag; "{%+" disables it; the start of the text counts as a line start
 *     when the previous tag ended with a newline;
 *   - inside tags: whitespace, floats, integers, names, strings (Python
 *     escapes, as jinja2's unicode-escape round trip), operators; an end tag
 *     only closes the tag when brackets are balanced.
 * Parser: the same recursive descent as jinja2's Parser (condexpr > or > and
 * > not > compare > math1 (+ -) > concat (~) > math2 (* / // %) > pow >
 * unary > primary + postfix + filters/tests).  Anything outside the subset
 * this interpreter implements is a parse error naming the construct and
 * line, so a checkpoint's template is either fully supported or refused at
 * start-up.
 */
#include "jinja_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GLM_JPARSE_MAX_DEPTH 200

/* ---- tokens -------------------------------------------------------------------------- */

enum {
    GLM_JT_EOF = 0, GLM_JT_DATA, GLM_JT_VAR_BEGIN, GLM_JT_VAR_END, GLM_JT_BLOCK_BEGIN,
    GLM_JT_BLOCK_END, GLM_JT_NAME, GLM_JT_STRING, GLM_JT_INT, GLM_JT_FLOAT, GLM_JT_OP
};

enum {
    GLM_JO_ADD = 1, GLM_JO_SUB, GLM_JO_DIV, GLM_JO_FLOORDIV, GLM_JO_MUL, GLM_JO_MOD,
    GLM_JO_POW, GLM_JO_TILDE, GLM_JO_LBRACKET, GLM_JO_RBRACKET, GLM_JO_LPAREN,
    GLM_JO_RPAREN, GLM_JO_LBRACE, GLM_JO_RBRACE, GLM_JO_EQ, GLM_JO_NE, GLM_JO_GT,
    GLM_JO_GTEQ, GLM_JO_LT, GLM_JO_LTEQ, GLM_JO_ASSIGN, GLM_JO_DOT, GLM_JO_COLON,
    GLM_JO_PIPE, GLM_JO_COMMA, GLM_JO_SEMICOLON
};

typedef struct {
    uint8_t type;
    uint8_t op;
    int line;
    const char *s;      /* NAME, DATA, STRING (decoded), also raw text */
    size_t n;
    int64_t i;
    double f;
} glm_jtok;

typedef struct {
    glm_jinja_template *t;
    glm_err *err;
    jmp_buf jb;
    /* lexer */
    const char *src;
    size_t len;
    glm_jtok *tok;
    size_t ntok, tok_cap;
    /* parser */
    size_t pos;
    int depth;
    int soft;           /* inside an if or a conditional expression (jinja2 soft frame) */
    int loop_depth;     /* for break/continue */
    glm_jmacro_def *macros[GLM_JPARSE_MAX_DEPTH];
    int nmacros;
} glm_jparser;

_Noreturn static void glm_jp_fail(glm_jparser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
glm_jp_fail(glm_jparser *p, int line, const char *fmt, ...)
{
    char msg[GLM_ERR_MAX / 2];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    glm_errf(p->err, "%s:%d: %s", p->t->name, line, msg);
    if (p->err != NULL) {
        glm_jone_line(p->err->msg, sizeof(p->err->msg));
    }
    longjmp(p->jb, 1);
}

static void *
glm_jp_alloc(glm_jparser *p, size_t n)
{
    void *m = glm_jarena_alloc(&p->t->arena, n);

    if (m == NULL) {
        glm_jp_fail(p, 0, "out of memory parsing the template");
    }
    memset(m, 0, n);
    return m;
}

static char *
glm_jp_strdup(glm_jparser *p, const char *s, size_t n)
{
    char *d = glm_jp_alloc(p, n + 1);

    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}


/* ---- lexer --------------------------------------------------------------------------------- */

static glm_jtok *
glm_jl_push(glm_jparser *p, int type, int line)
{
    glm_jtok *t;

    if (p->ntok == p->tok_cap) {
        size_t cap = p->tok_cap ? p->tok_cap * 2 : 256;
        glm_jtok *nt = glm_jp_alloc(p, cap * sizeof(*nt));

        if (p->ntok > 0) {
            memcpy(nt, p->tok, p->ntok * sizeof(*nt));
        }
        p->tok = nt;
        p->tok_cap = cap;
    }
    t = &p->tok[p->ntok++];
    memset(t, 0, sizeof(*t));
    t->type = (uint8_t) type;
    t->line = line;
    return t;
}

/* Byte length of a Python whitespace character at s[0..n), or 0. */
static size_t
glm_jl_ws(const char *s, size_t n)
{
    unsigned char c;
    size_t adv;

    if (n == 0) {
        return 0;
    }
    c = (unsigned char) s[0];
    if (c < 0x80) {
        return glm_jpy_isspace(c) ? 1 : 0;
    }
    return glm_jpy_isspace(glm_ju8_decode(s, n, &adv)) ? adv : 0;
}

/* Length of the whitespace run at s (regex \s*). */
static size_t
glm_jl_ws_run(const char *s, size_t n)
{
    size_t i = 0, w;

    while ((w = glm_jl_ws(s + i, n - i)) > 0) {
        i += w;
    }
    return i;
}

/* str.rstrip(): the length without trailing whitespace. */
static size_t
glm_jl_rstrip(const char *s, size_t n)
{
    while (n > 0) {
        size_t start = n - 1, w;

        while (start > 0 && ((unsigned char) s[start] & 0xc0) == 0x80) {
            start--;
        }
        w = glm_jl_ws(s + start, n - start);
        if (w == 0 || start + w != n) {
            break;
        }
        n = start;
    }
    return n;
}

static int
glm_jl_count_nl(const char *s, size_t n)
{
    int c = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        c += s[i] == '\n';
    }
    return c;
}

/*
 * The text before a tag, after jinja2's OptionalLStrip logic: sign '-'
 * strips all trailing whitespace; otherwise, for blocks and comments, the
 * whitespace between the last newline (or a line-starting text start) and
 * the tag is removed when it is all whitespace.
 */
static size_t
glm_jl_strip_text(const char *text, size_t n, char sign, int is_variable, int line_starting)
{
    size_t l_pos, i;
    const char *nl;

    if (sign == '-') {
        return glm_jl_rstrip(text, n);
    }
    if (sign == '+' || is_variable) {
        return n;
    }
    nl = NULL;
    for (i = n; i > 0; i--) {
        if (text[i - 1] == '\n') {
            nl = text + i - 1;
            break;
        }
    }
    l_pos = nl != NULL ? (size_t) (nl - text) + 1 : 0;
    if (l_pos > 0 || line_starting) {
        if (l_pos < n && glm_jl_ws_run(text + l_pos, n - l_pos) == n - l_pos) {
            return l_pos;
        }
    }
    return n;
}

static void
glm_jl_data(glm_jparser *p, const char *s, size_t n, int line)
{
    glm_jtok *t;

    if (n == 0) {
        return;
    }
    t = glm_jl_push(p, GLM_JT_DATA, line);
    t->s = s;
    t->n = n;
}

/* Python's unicode-escape decoding of a string literal's body (jinja2 runs
 * it after encoding non-ASCII text with backslashreplace, so non-ASCII
 * characters pass through and a backslash before one keeps its escape text). */
static void
glm_jl_string(glm_jparser *p, glm_jtok *t, const char *s, size_t n)
{
    char *out = glm_jp_alloc(p, n * 4 + 8);
    size_t o = 0, i = 0;

    while (i < n) {
        unsigned char c = (unsigned char) s[i];

        if (c != '\\' || i + 1 >= n) {
            out[o++] = (char) c;
            i++;
            continue;
        }
        c = (unsigned char) s[i + 1];
        i += 2;
        switch (c) {
        case '\n': break;
        case '\\': out[o++] = '\\'; break;
        case '\'': out[o++] = '\''; break;
        case '"': out[o++] = '"'; break;
        case 'a': out[o++] = '\a'; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'v': out[o++] = '\v'; break;
        case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': {
            uint32_t cp = c - '0';
            int k;

            for (k = 0; k < 2 && i < n && s[i] >= '0' && s[i] <= '7'; k++) {
                cp = cp * 8 + (uint32_t) (s[i++] - '0');
            }
            o += glm_ju8_encode(cp, out + o);
            break;
        }
        case 'x': case 'u': case 'U': {
            int want = c == 'x' ? 2 : c == 'u' ? 4 : 8, k;
            uint32_t cp = 0;

            for (k = 0; k < want; k++) {
                char h = i + (size_t) k < n ? s[i + (size_t) k] : '\0';
                int d = h >= '0' && h <= '9' ? h - '0'
                        : h >= 'a' && h <= 'f' ? h - 'a' + 10
                        : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;

                if (d < 0) {
                    glm_jp_fail(p, t->line, "(unicode error) truncated \\%c escape in a string",
                                c);
                }
                cp = cp * 16 + (uint32_t) d;
            }
            i += (size_t) want;
            if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
                glm_jp_fail(p, t->line, "unsupported: \\%c escape of U+%X in a string", c, cp);
            }
            o += glm_ju8_encode(cp, out + o);
            break;
        }
        case 'N':
            glm_jp_fail(p, t->line, "unsupported: \\N{...} escape in a string");
        default:
            if (c >= 0x80) {
                /* "\é": backslashreplace made it "\\xe9", which decodes to
                 * a backslash and the text "xe9" */
                size_t adv;
                uint32_t cp = glm_ju8_decode(s + i - 1, n - i + 1, &adv);

                out[o++] = '\\';
                o += (size_t) sprintf(out + o, cp < 0x100 ? "x%02x" : cp < 0x10000 ? "u%04x"
                                                                     : "U%08x", cp);
                i += adv - 1;
            } else {
                out[o++] = '\\';
                out[o++] = (char) c;
            }
        }
    }
    out[o] = '\0';
    t->s = out;
    t->n = o;
}

static int
glm_jl_isdigit(char c)
{
    return c >= '0' && c <= '9';
}

/* (\d+_)*\d+ : digits with single underscores between them */
static size_t
glm_jl_digits(const char *s, size_t n)
{
    size_t i = 0;

    if (n == 0 || !glm_jl_isdigit(s[0])) {
        return 0;
    }
    while (i < n) {
        if (glm_jl_isdigit(s[i])) {
            i++;
        } else if (s[i] == '_' && i + 1 < n && glm_jl_isdigit(s[i + 1])) {
            i++;
        } else {
            break;
        }
    }
    return i;
}

static size_t
glm_jl_float(const char *s, size_t n, size_t pos)
{
    size_t i, d, j;

    if (pos > 0 && s[-1] == '.') {
        return 0;
    }
    i = glm_jl_digits(s, n);
    if (i == 0) {
        return 0;
    }
    /* (\.digits)? e[+-]?digits  |  \.digits */
    j = i;
    if (j < n && s[j] == '.' && (d = glm_jl_digits(s + j + 1, n - j - 1)) > 0) {
        j += 1 + d;
    }
    if (j < n && (s[j] == 'e' || s[j] == 'E')) {
        size_t k = j + 1;

        if (k < n && (s[k] == '+' || s[k] == '-')) {
            k++;
        }
        if ((d = glm_jl_digits(s + k, n - k)) > 0) {
            return k + d;
        }
    }
    return j > i ? j : 0;
}

static size_t
glm_jl_integer(const char *s, size_t n, int *base)
{
    size_t i;

    *base = 10;
    if (n >= 2 && s[0] == '0' && (s[1] == 'b' || s[1] == 'B' || s[1] == 'o' || s[1] == 'O'
                                  || s[1] == 'x' || s[1] == 'X')) {
        char k = (char) (s[1] | 0x20);

        *base = k == 'b' ? 2 : k == 'o' ? 8 : 16;
        i = 2;
        for (;;) {
            size_t j = i;
            char c;

            if (j < n && s[j] == '_') {
                j++;
            }
            if (j >= n) {
                break;
            }
            c = (char) (s[j] | 0x20);
            if ((*base == 2 && (c == '0' || c == '1'))
                || (*base == 8 && c >= '0' && c <= '7')
                || (*base == 16 && (glm_jl_isdigit(c) || (c >= 'a' && c <= 'f')))) {
                i = j + 1;
            } else {
                break;
            }
        }
        if (i > 2) {
            return i;
        }
        *base = 10;
    }
    if (n > 0 && s[0] >= '1' && s[0] <= '9') {
        i = 1;
        while (i < n) {
            if (glm_jl_isdigit(s[i])) {
                i++;
            } else if (s[i] == '_' && i + 1 < n && glm_jl_isdigit(s[i + 1])) {
                i += 2;
            } else {
                break;
            }
        }
        return i;
    }
    if (n > 0 && s[0] == '0') {
        i = 1;
        while (i < n) {
            if (s[i] == '0') {
                i++;
            } else if (s[i] == '_' && i + 1 < n && s[i + 1] == '0') {
                i += 2;
            } else {
                break;
            }
        }
        return i;
    }
    return 0;
}

static size_t
glm_jl_name(const char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = (unsigned char) s[i];

        if (c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (i > 0 && glm_jl_isdigit((char) c))) {
            i++;
        } else if (c >= 0x80 && glm_jl_ws(s + i, n - i) == 0) {
            /* non-ASCII identifier characters (approximately Python's rules) */
            size_t adv;

            glm_ju8_decode(s + i, n - i, &adv);
            i += adv;
        } else {
            break;
        }
    }
    return i;
}

static size_t
glm_jl_operator(const char *s, size_t n, uint8_t *op)
{
    static const struct { const char *text; uint8_t op; } ops[] = {
        {"//", GLM_JO_FLOORDIV}, {"**", GLM_JO_POW}, {"==", GLM_JO_EQ}, {"!=", GLM_JO_NE},
        {">=", GLM_JO_GTEQ}, {"<=", GLM_JO_LTEQ}, {"+", GLM_JO_ADD}, {"-", GLM_JO_SUB},
        {"/", GLM_JO_DIV}, {"*", GLM_JO_MUL}, {"%", GLM_JO_MOD}, {"~", GLM_JO_TILDE},
        {"[", GLM_JO_LBRACKET}, {"]", GLM_JO_RBRACKET}, {"(", GLM_JO_LPAREN},
        {")", GLM_JO_RPAREN}, {"{", GLM_JO_LBRACE}, {"}", GLM_JO_RBRACE}, {">", GLM_JO_GT},
        {"<", GLM_JO_LT}, {"=", GLM_JO_ASSIGN}, {".", GLM_JO_DOT}, {":", GLM_JO_COLON},
        {"|", GLM_JO_PIPE}, {",", GLM_JO_COMMA}, {";", GLM_JO_SEMICOLON},
    };
    size_t i;

    for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        size_t l = strlen(ops[i].text);

        if (l <= n && memcmp(s, ops[i].text, l) == 0) {
            *op = ops[i].op;
            return l;
        }
    }
    return 0;
}

/*
 * Tokens inside {% %} or {{ }} from pos; returns the position after the end
 * tag (or the end of the source: jinja2 then reports the missing end in the
 * parser).  *line_starting is set from the end tag's last character.
 */
static size_t
glm_jl_tag(glm_jparser *p, size_t pos, int *line, int is_block, int *line_starting)
{
    const char *s = p->src;
    size_t n = p->len;
    char balance[GLM_JPARSE_MAX_DEPTH];
    int nbal = 0;

    while (pos < n) {
        size_t l, rest = n - pos;
        int base;
        uint8_t op;
        glm_jtok *t;

        if (nbal == 0) {
            if (is_block) {
                if (rest >= 3 && memcmp(s + pos, "+%}", 3) == 0) {
                    glm_jl_push(p, GLM_JT_BLOCK_END, *line);
                    *line_starting = 0;
                    return pos + 3;
                }
                if (rest >= 3 && memcmp(s + pos, "-%}", 3) == 0) {
                    size_t w = glm_jl_ws_run(s + pos + 3, rest - 3);

                    glm_jl_push(p, GLM_JT_BLOCK_END, *line);
                    *line_starting = w > 0 && s[pos + 3 + w - 1] == '\n';
                    *line += glm_jl_count_nl(s + pos + 3, w);
                    return pos + 3 + w;
                }
                if (rest >= 2 && memcmp(s + pos, "%}", 2) == 0) {
                    size_t e = pos + 2;

                    glm_jl_push(p, GLM_JT_BLOCK_END, *line);
                    *line_starting = 0;
                    if (e < n && s[e] == '\n') {
                        e++;
                        (*line)++;
                        *line_starting = 1;
                    }
                    return e;
                }
            } else {
                if (rest >= 3 && memcmp(s + pos, "-}}", 3) == 0) {
                    size_t w = glm_jl_ws_run(s + pos + 3, rest - 3);

                    glm_jl_push(p, GLM_JT_VAR_END, *line);
                    *line_starting = w > 0 && s[pos + 3 + w - 1] == '\n';
                    *line += glm_jl_count_nl(s + pos + 3, w);
                    return pos + 3 + w;
                }
                if (rest >= 2 && memcmp(s + pos, "}}", 2) == 0) {
                    glm_jl_push(p, GLM_JT_VAR_END, *line);
                    *line_starting = 0;
                    return pos + 2;
                }
            }
        }
        if ((l = glm_jl_ws_run(s + pos, rest)) > 0) {
            *line += glm_jl_count_nl(s + pos, l);
            pos += l;
            continue;
        }
        if ((l = glm_jl_float(s + pos, rest, pos)) > 0) {
            char buf[128];
            size_t i, k = 0;

            for (i = 0; i < l && k + 1 < sizeof(buf); i++) {
                if (s[pos + i] != '_') {
                    buf[k++] = s[pos + i];
                }
            }
            buf[k] = '\0';
            t = glm_jl_push(p, GLM_JT_FLOAT, *line);
            t->f = strtod(buf, NULL);
            pos += l;
            continue;
        }
        if ((l = glm_jl_integer(s + pos, rest, &base)) > 0) {
            char buf[128];
            size_t i, k = 0;
            char *end;

            for (i = base == 10 ? 0 : 2; i < l && k + 1 < sizeof(buf); i++) {
                if (s[pos + i] != '_') {
                    buf[k++] = s[pos + i];
                }
            }
            buf[k] = '\0';
            t = glm_jl_push(p, GLM_JT_INT, *line);
            errno = 0;
            t->i = (int64_t) strtoll(buf, &end, base);
            if (errno != 0 || l >= 100) {
                glm_jp_fail(p, *line, "unsupported: integer literal beyond 64 bits");
            }
            pos += l;
            continue;
        }
        if ((l = glm_jl_name(s + pos, rest)) > 0) {
            t = glm_jl_push(p, GLM_JT_NAME, *line);
            t->s = s + pos;
            t->n = l;
            pos += l;
            continue;
        }
        if (s[pos] == '\'' || s[pos] == '"') {
            char q = s[pos];
            size_t i = pos + 1;

            while (i < n && s[i] != q) {
                i += s[i] == '\\' && i + 1 < n ? 2 : 1;
            }
            if (i >= n) {
                glm_jp_fail(p, *line, "unexpected char %c at %zu", q, pos);
            }
            t = glm_jl_push(p, GLM_JT_STRING, *line);
            glm_jl_string(p, t, s + pos + 1, i - pos - 1);
            *line += glm_jl_count_nl(s + pos, i - pos);
            pos = i + 1;
            continue;
        }
        if ((l = glm_jl_operator(s + pos, rest, &op)) > 0) {
            if (op == GLM_JO_LBRACE || op == GLM_JO_LPAREN || op == GLM_JO_LBRACKET) {
                if (nbal >= GLM_JPARSE_MAX_DEPTH) {
                    glm_jp_fail(p, *line, "brackets nested too deeply");
                }
                balance[nbal++] = op == GLM_JO_LBRACE ? '}' : op == GLM_JO_LPAREN ? ')' : ']';
            } else if (op == GLM_JO_RBRACE || op == GLM_JO_RPAREN || op == GLM_JO_RBRACKET) {
                char c = s[pos];

                if (nbal == 0) {
                    glm_jp_fail(p, *line, "unexpected '%c'", c);
                }
                if (balance[nbal - 1] != c) {
                    glm_jp_fail(p, *line, "unexpected '%c', expected '%c'", c, balance[nbal - 1]);
                }
                nbal--;
            }
            t = glm_jl_push(p, GLM_JT_OP, *line);
            t->op = op;
            t->s = s + pos;
            t->n = l;
            pos += l;
            continue;
        }
        glm_jp_fail(p, *line, "unexpected char '%c' at %zu", s[pos], pos);
    }
    return pos;
}

/* raw_begin at s: {%(-|+|)\s*raw\s*(-%}\s*|%}); returns its length or 0. */
static size_t
glm_jl_raw_begin(const char *s, size_t n, const char *word)
{
    size_t i = 2, wl = strlen(word);

    if (n < 2 || s[0] != '{' || s[1] != '%') {
        return 0;
    }
    if (i < n && (s[i] == '-' || s[i] == '+')) {
        i++;
    }
    i += glm_jl_ws_run(s + i, n - i);
    if (n - i < wl || memcmp(s + i, word, wl) != 0) {
        return 0;
    }
    i += wl;
    i += glm_jl_ws_run(s + i, n - i);
    if (n - i >= 3 && memcmp(s + i, "-%}", 3) == 0) {
        return i + 3 + glm_jl_ws_run(s + i + 3, n - i - 3);
    }
    if (n - i >= 2 && memcmp(s + i, "%}", 2) == 0) {
        return i + 2;
    }
    return 0;
}

static void
glm_jl_tokenize(glm_jparser *p)
{
    const char *s = p->src;
    size_t n = p->len, pos = 0;
    int line = 1, line_starting = 1;

    while (pos < n) {
        size_t q, text_n, raw;
        char sign = 0, kind = 0;

        /* the earliest tag start */
        for (q = pos; q + 1 < n; q++) {
            if (s[q] == '{' && (s[q + 1] == '{' || s[q + 1] == '%' || s[q + 1] == '#')) {
                break;
            }
        }
        if (q + 1 >= n) {
            glm_jl_data(p, s + pos, n - pos, line);
            break;
        }
        kind = s[q + 1];
        if (q + 2 < n && (s[q + 2] == '-' || s[q + 2] == '+')) {
            sign = s[q + 2];
        }
        text_n = glm_jl_strip_text(s + pos, q - pos, sign, kind == '{', line_starting);
        glm_jl_data(p, s + pos, text_n, line);
        line += glm_jl_count_nl(s + pos, q - pos);

        raw = kind == '%' ? glm_jl_raw_begin(s + q, n - q, "raw") : 0;
        if (raw > 0) {
            size_t r = q + raw, e, endlen = 0;
            char esign = 0;

            line += glm_jl_count_nl(s + q, raw);
            line_starting = s[q + raw - 1] == '\n';
            for (e = r; e + 1 < n; e++) {
                if (s[e] == '{' && s[e + 1] == '%') {
                    size_t i = e + 2, w;

                    esign = 0;
                    if (i < n && (s[i] == '-' || s[i] == '+')) {
                        esign = s[i++];
                    }
                    i += glm_jl_ws_run(s + i, n - i);
                    if (n - i >= 6 && memcmp(s + i, "endraw", 6) == 0) {
                        i += 6;
                        i += glm_jl_ws_run(s + i, n - i);
                        if (n - i >= 3 && memcmp(s + i, "+%}", 3) == 0) {
                            endlen = i + 3 - e;
                        } else if (n - i >= 3 && memcmp(s + i, "-%}", 3) == 0) {
                            w = glm_jl_ws_run(s + i + 3, n - i - 3);
                            endlen = i + 3 + w - e;
                        } else if (n - i >= 2 && memcmp(s + i, "%}", 2) == 0) {
                            endlen = i + 2 - e + (i + 2 < n && s[i + 2] == '\n');
                        }
                        if (endlen > 0) {
                            break;
                        }
                    }
                }
            }
            if (endlen == 0) {
                glm_jp_fail(p, line, "Missing end of raw directive");
            }
            text_n = glm_jl_strip_text(s + r, e - r, esign, 0, line_starting);
            glm_jl_data(p, s + r, text_n, line);
            line += glm_jl_count_nl(s + r, e + endlen - r);
            line_starting = s[e + endlen - 1] == '\n';
            pos = e + endlen;
            continue;
        }
        pos = q + 2 + (sign != 0);
        if (kind == '#') {
            size_t e, end = 0;

            for (e = pos; e + 1 < n; e++) {
                if ((s[e] == '+' || s[e] == '-') && e + 2 < n && s[e + 1] == '#'
                    && s[e + 2] == '}') {
                    end = e + 3;
                    if (s[e] == '-') {
                        end += glm_jl_ws_run(s + end, n - end);
                    }
                    break;
                }
                if (s[e] == '#' && s[e + 1] == '}') {
                    end = e + 2;
                    if (end < n && s[end] == '\n') {
                        end++;
                    }
                    break;
                }
            }
            if (end == 0) {
                glm_jp_fail(p, line, "Missing end of comment tag");
            }
            line += glm_jl_count_nl(s + pos, end - pos);
            line_starting = s[end - 1] == '\n';
            pos = end;
            continue;
        }
        glm_jl_push(p, kind == '%' ? GLM_JT_BLOCK_BEGIN : GLM_JT_VAR_BEGIN, line);
        pos = glm_jl_tag(p, pos, &line, kind == '%', &line_starting);
    }
    glm_jl_push(p, GLM_JT_EOF, line);
}


/* ---- symbols -------------------------------------------------------------------------------- */

static uint32_t
glm_jsym_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    size_t i;

    for (i = 0; i < n; i++) {
        h = (h ^ (unsigned char) s[i]) * 16777619u;
    }
    return h;
}

int32_t
glm_jsym_find(const glm_jinja_template *t, const char *name, size_t n)
{
    uint32_t slot;

    if (t->sym_index_cap == 0) {
        return -1;
    }
    slot = glm_jsym_hash(name, n) & (t->sym_index_cap - 1);
    while (t->sym_index[slot] != 0) {
        uint32_t id = t->sym_index[slot] - 1;

        if (t->sym_len[id] == n && memcmp(t->sym_name[id], name, n) == 0) {
            return (int32_t) id;
        }
        slot = (slot + 1) & (t->sym_index_cap - 1);
    }
    return -1;
}

static int32_t
glm_jsym_intern(glm_jparser *p, const char *name, size_t n)
{
    glm_jinja_template *t = p->t;
    int32_t id = glm_jsym_find(t, name, n);
    uint32_t i;

    if (id >= 0) {
        return id;
    }
    if (t->nsym == t->sym_cap) {
        uint32_t cap = t->sym_cap ? t->sym_cap * 2 : 64;
        char **nn = glm_jp_alloc(p, cap * sizeof(*nn));
        uint32_t *nl = glm_jp_alloc(p, cap * sizeof(*nl));

        if (t->nsym > 0) {
            memcpy(nn, t->sym_name, t->nsym * sizeof(*nn));
            memcpy(nl, t->sym_len, t->nsym * sizeof(*nl));
        }
        t->sym_name = nn;
        t->sym_len = nl;
        t->sym_cap = cap;
    }
    id = (int32_t) t->nsym++;
    t->sym_name[id] = glm_jp_strdup(p, name, n);
    t->sym_len[id] = (uint32_t) n;
    if (t->nsym * 2 > t->sym_index_cap) {
        uint32_t cap = t->sym_index_cap ? t->sym_index_cap * 2 : 128;

        t->sym_index = glm_jp_alloc(p, cap * sizeof(*t->sym_index));
        t->sym_index_cap = cap;
        for (i = 0; i < t->nsym; i++) {
            uint32_t slot = glm_jsym_hash(t->sym_name[i], t->sym_len[i]) & (cap - 1);

            while (t->sym_index[slot] != 0) {
                slot = (slot + 1) & (cap - 1);
            }
            t->sym_index[slot] = i + 1;
        }
    } else {
        uint32_t slot = glm_jsym_hash(name, n) & (t->sym_index_cap - 1);

        while (t->sym_index[slot] != 0) {
            slot = (slot + 1) & (t->sym_index_cap - 1);
        }
        t->sym_index[slot] = (uint32_t) id + 1;
    }
    return id;
}


/* ---- token stream ------------------------------------------------------------------------------ */

static glm_jtok *
glm_jp_cur(glm_jparser *p)
{
    return &p->tok[p->pos];
}

static glm_jtok *
glm_jp_look(glm_jparser *p)
{
    return &p->tok[p->pos + 1 < p->ntok ? p->pos + 1 : p->pos];
}

static glm_jtok *
glm_jp_next(glm_jparser *p)
{
    glm_jtok *t = &p->tok[p->pos];

    if (p->pos + 1 < p->ntok) {
        p->pos++;
    }
    return t;
}

static int
glm_jp_is_name(const glm_jtok *t, const char *name)
{
    size_t l = strlen(name);

    return t->type == GLM_JT_NAME && t->n == l && memcmp(t->s, name, l) == 0;
}

static int
glm_jp_is_op(const glm_jtok *t, int op)
{
    return t->type == GLM_JT_OP && t->op == op;
}

static const char *
glm_jp_describe(const glm_jtok *t, char *buf, size_t size)
{
    switch (t->type) {
    case GLM_JT_EOF: return "end of template";
    case GLM_JT_DATA: return "template data";
    case GLM_JT_VAR_BEGIN: return "begin of print statement";
    case GLM_JT_VAR_END: return "end of print statement";
    case GLM_JT_BLOCK_BEGIN: return "begin of statement block";
    case GLM_JT_BLOCK_END: return "end of statement block";
    case GLM_JT_STRING: return "string";
    case GLM_JT_INT: return "integer";
    case GLM_JT_FLOAT: return "float";
    default:
        snprintf(buf, size, "%.*s", (int) (t->n < 40 ? t->n : 40), t->s);
        return buf;
    }
}

_Noreturn static void
glm_jp_unexpected(glm_jparser *p, const char *wanted)
{
    char buf[64];
    glm_jtok *t = glm_jp_cur(p);

    glm_jp_fail(p, t->line, "expected %s, got '%s'", wanted, glm_jp_describe(t, buf, sizeof(buf)));
}

static void
glm_jp_expect_op(glm_jparser *p, int op, const char *what)
{
    if (!glm_jp_is_op(glm_jp_cur(p), op)) {
        glm_jp_unexpected(p, what);
    }
    glm_jp_next(p);
}

static void
glm_jp_expect_type(glm_jparser *p, int type, const char *what)
{
    if (glm_jp_cur(p)->type != type) {
        glm_jp_unexpected(p, what);
    }
    glm_jp_next(p);
}

static void
glm_jp_expect_name(glm_jparser *p, const char *name)
{
    if (!glm_jp_is_name(glm_jp_cur(p), name)) {
        char what[64];

        snprintf(what, sizeof(what), "'%s'", name);
        glm_jp_unexpected(p, what);
    }
    glm_jp_next(p);
}

static int
glm_jp_skip_name(glm_jparser *p, const char *name)
{
    if (glm_jp_is_name(glm_jp_cur(p), name)) {
        glm_jp_next(p);
        return 1;
    }
    return 0;
}

static void
glm_jp_enter(glm_jparser *p)
{
    if (++p->depth > GLM_JPARSE_MAX_DEPTH) {
        glm_jp_fail(p, glm_jp_cur(p)->line, "template nested too deeply (limit %d levels)",
                    GLM_JPARSE_MAX_DEPTH);
    }
}


/* ---- node helpers -------------------------------------------------------------------------------- */

static glm_jnode *
glm_jp_node(glm_jparser *p, int type, int line)
{
    glm_jnode *n = glm_jp_alloc(p, sizeof(*n));

    n->type = (uint8_t) type;
    n->line = line;
    return n;
}

typedef struct {
    glm_jnode **v;
    uint32_t n, cap;
} glm_jvec;

static void
glm_jvec_push(glm_jparser *p, glm_jvec *v, glm_jnode *n)
{
    if (v->n == v->cap) {
        uint32_t cap = v->cap ? v->cap * 2 : 4;
        glm_jnode **nv = glm_jp_alloc(p, cap * sizeof(*nv));

        if (v->n > 0) {
            memcpy(nv, v->v, v->n * sizeof(*nv));
        }
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = n;
}

static glm_jnodes
glm_jvec_done(glm_jvec *v)
{
    glm_jnodes r;

    r.v = v->v;
    r.n = v->n;
    return r;
}

static glm_jinja_value
glm_jp_strval(glm_jparser *p, const char *s, size_t n)
{
    return glm_jv_str(glm_jp_strdup(p, s, n), n);
}


/* ---- expressions ----------------------------------------------------------------------------------- */

static glm_jnode *glm_jp_expression(glm_jparser *p, int with_condexpr);
static glm_jnode *glm_jp_math1(glm_jparser *p);
static void glm_jp_call_args(glm_jparser *p, glm_jargs *a);
static glm_jnode *glm_jp_unary(glm_jparser *p, int with_filter);
static glm_jnode *glm_jp_primary(glm_jparser *p, int with_namespace);
static glm_jnode *glm_jp_postfix(glm_jparser *p, glm_jnode *node);
static glm_jnode *glm_jp_filter(glm_jparser *p, glm_jnode *node, int start_inline);
static glm_jnode *glm_jp_tuple(glm_jparser *p, int simplified, int with_condexpr,
                               const char *const *extra_end, int explicit_parens,
                               int with_namespace);

static glm_jnode *
glm_jp_condexpr(glm_jparser *p)
{
    int line = glm_jp_cur(p)->line;
    glm_jnode *expr1 = glm_jp_expression(p, 0);

    while (glm_jp_skip_name(p, "if")) {
        int soft = p->soft;
        glm_jnode *c = glm_jp_node(p, GLM_JN_CONDEXPR, line);

        p->soft = 1;
        c->u.cond.yes = expr1;
        c->u.cond.test = glm_jp_expression(p, 0);
        if (glm_jp_skip_name(p, "else")) {
            glm_jp_enter(p);
            c->u.cond.no = glm_jp_condexpr(p);
            p->depth--;
        }
        p->soft = soft;
        expr1 = c;
        line = glm_jp_cur(p)->line;
    }
    return expr1;
}

static glm_jnode *
glm_jp_not(glm_jparser *p)
{
    if (glm_jp_is_name(glm_jp_cur(p), "not")) {
        glm_jnode *n = glm_jp_node(p, GLM_JN_NOT, glm_jp_next(p)->line);

        glm_jp_enter(p);
        n->u.un.x = glm_jp_not(p);
        p->depth--;
        return n;
    }
    {
        /* compare */
        int line = glm_jp_cur(p)->line;
        glm_jnode *expr = NULL;
        glm_jvec rest = {0};
        uint8_t ops[64];
        uint32_t nops = 0;

        expr = glm_jp_math1(p);
        for (;;) {
            glm_jtok *t = glm_jp_cur(p);
            int op = -1;

            if (t->type == GLM_JT_OP) {
                switch (t->op) {
                case GLM_JO_EQ: op = GLM_JOP_EQ; break;
                case GLM_JO_NE: op = GLM_JOP_NE; break;
                case GLM_JO_LT: op = GLM_JOP_LT; break;
                case GLM_JO_LTEQ: op = GLM_JOP_LE; break;
                case GLM_JO_GT: op = GLM_JOP_GT; break;
                case GLM_JO_GTEQ: op = GLM_JOP_GE; break;
                default: break;
                }
                if (op >= 0) {
                    glm_jp_next(p);
                }
            } else if (glm_jp_is_name(t, "in")) {
                glm_jp_next(p);
                op = GLM_JOP_IN;
            } else if (glm_jp_is_name(t, "not") && glm_jp_is_name(glm_jp_look(p), "in")) {
                glm_jp_next(p);
                glm_jp_next(p);
                op = GLM_JOP_NOTIN;
            }
            if (op < 0) {
                break;
            }
            if (nops >= sizeof(ops)) {
                glm_jp_fail(p, t->line, "too many chained comparisons");
            }
            ops[nops++] = (uint8_t) op;
            glm_jvec_push(p, &rest, glm_jp_math1(p));
            line = glm_jp_cur(p)->line;
        }
        if (nops == 0) {
            return expr;
        }
        {
            glm_jnode *c = glm_jp_node(p, GLM_JN_COMPARE, line);

            c->u.cmp.first = expr;
            c->u.cmp.rest = glm_jvec_done(&rest);
            c->u.cmp.ops = glm_jp_alloc(p, nops);
            memcpy(c->u.cmp.ops, ops, nops);
            return c;
        }
    }
}

static glm_jnode *
glm_jp_and(glm_jparser *p)
{
    int line = glm_jp_cur(p)->line;
    glm_jnode *left = glm_jp_not(p);

    while (glm_jp_skip_name(p, "and")) {
        glm_jnode *n = glm_jp_node(p, GLM_JN_AND, line);

        n->u.bin.l = left;
        n->u.bin.r = glm_jp_not(p);
        left = n;
        line = glm_jp_cur(p)->line;
    }
    return left;
}

static glm_jnode *
glm_jp_or(glm_jparser *p)
{
    int line = glm_jp_cur(p)->line;
    glm_jnode *left = glm_jp_and(p);

    while (glm_jp_skip_name(p, "or")) {
        glm_jnode *n = glm_jp_node(p, GLM_JN_OR, line);

        n->u.bin.l = left;
        n->u.bin.r = glm_jp_and(p);
        left = n;
        line = glm_jp_cur(p)->line;
    }
    return left;
}

static glm_jnode *
glm_jp_expression(glm_jparser *p, int with_condexpr)
{
    glm_jnode *n;

    glm_jp_enter(p);
    n = with_condexpr ? glm_jp_condexpr(p) : glm_jp_or(p);
    p->depth--;
    return n;
}

static glm_jnode *
glm_jp_binop(glm_jparser *p, int op, glm_jnode *l, glm_jnode *r, int line)
{
    glm_jnode *n = glm_jp_node(p, GLM_JN_BINOP, line);

    n->op = (uint8_t) op;
    n->u.bin.l = l;
    n->u.bin.r = r;
    return n;
}

static glm_jnode *
glm_jp_pow(glm_jparser *p)
{
    int line = glm_jp_cur(p)->line;
    glm_jnode *left = glm_jp_unary(p, 1);

    while (glm_jp_is_op(glm_jp_cur(p), GLM_JO_POW)) {
        glm_jp_next(p);
        left = glm_jp_binop(p, GLM_JOP_POW, left, glm_jp_unary(p, 1), line);
        line = glm_jp_cur(p)->line;
    }
    return left;
}

static glm_jnode *
glm_jp_math2(glm_jparser *p)
{
    int line = glm_jp_cur(p)->line;
    glm_jnode *left = glm_jp_pow(p);

    for (;;) {
        glm_jtok *t = glm_jp_cur(p);
        int op;

        if (t->type != GLM_JT_OP) {
            break;
        }
        if (t->op == GLM_JO_MUL) {
            op = GLM_JOP_MUL;
        } else if (t->op == GLM_JO_DIV) {
            op = GLM_JOP_DIV;
        } else if (t->op == GLM_JO_FLOORDIV) {
            op = GLM_JOP_FLOORDIV;
        } else if (t->op == GLM_JO_MOD) {
            op = GLM_JOP_MOD;
        } else {
            break;
        }
        glm_jp_next(p);
        left = glm_jp_binop(p, op, left, glm_jp_pow(p), line);
        line = glm_jp_cur(p)->line;
    }
    return left;
}

static glm_jnode *
glm_jp_concat(glm_jparser *p)
{
    int line = glm_jp_cur(p)->line;
    glm_jvec args = {0};
    glm_jnode *first = glm_jp_math2(p), *n;

    if (!glm_jp_is_op(glm_jp_cur(p), GLM_JO_TILDE)) {
        return first;
    }
    glm_jvec_push(p, &args, first);
    while (glm_jp_is_op(glm_jp_cur(p), GLM_JO_TILDE)) {
        glm_jp_next(p);
        glm_jvec_push(p, &args, glm_jp_math2(p));
    }
    n = glm_jp_node(p, GLM_JN_CONCAT, line);
    n->u.seq.items = glm_jvec_done(&args);
    return n;
}

static glm_jnode *
glm_jp_math1(glm_jparser *p)
{
    int line = glm_jp_cur(p)->line;
    glm_jnode *left = glm_jp_concat(p);

    for (;;) {
        glm_jtok *t = glm_jp_cur(p);
        int op;

        if (glm_jp_is_op(t, GLM_JO_ADD)) {
            op = GLM_JOP_ADD;
        } else if (glm_jp_is_op(t, GLM_JO_SUB)) {
            op = GLM_JOP_SUB;
        } else {
            break;
        }
        glm_jp_next(p);
        left = glm_jp_binop(p, op, left, glm_jp_concat(p), line);
        line = glm_jp_cur(p)->line;
    }
    return left;
}

static void glm_jp_filter_test_common(glm_jparser *p, glm_jnode *n);

static glm_jnode *
glm_jp_unary(glm_jparser *p, int with_filter)
{
    glm_jtok *t = glm_jp_cur(p);
    glm_jnode *node;

    glm_jp_enter(p);
    if (glm_jp_is_op(t, GLM_JO_SUB) || glm_jp_is_op(t, GLM_JO_ADD)) {
        node = glm_jp_node(p, glm_jp_is_op(t, GLM_JO_SUB) ? GLM_JN_NEG : GLM_JN_POS, t->line);
        glm_jp_next(p);
        node->u.un.x = glm_jp_unary(p, 0);
    } else {
        node = glm_jp_primary(p, 0);
    }
    node = glm_jp_postfix(p, node);
    if (with_filter) {
        /* filters, tests and calls after them */
        for (;;) {
            glm_jtok *c = glm_jp_cur(p);

            if (glm_jp_is_op(c, GLM_JO_PIPE)) {
                node = glm_jp_filter(p, node, 0);
            } else if (glm_jp_is_name(c, "is")) {
                /* parse_test */
                glm_jnode *tn;
                int line = glm_jp_next(p)->line, negated = 0;
                glm_jtok *nt;

                if (glm_jp_skip_name(p, "not")) {
                    negated = 1;
                }
                nt = glm_jp_cur(p);
                if (nt->type != GLM_JT_NAME) {
                    glm_jp_unexpected(p, "a test name");
                }
                glm_jp_next(p);
                tn = glm_jp_node(p, GLM_JN_TEST, line);
                tn->u.ft.obj = node;
                tn->u.ft.name = glm_jp_strval(p, nt->s, nt->n);
                if (glm_jp_is_op(glm_jp_cur(p), GLM_JO_DOT)) {
                    glm_jp_fail(p, line, "unsupported: dotted test name");
                }
                c = glm_jp_cur(p);
                if (glm_jp_is_op(c, GLM_JO_LPAREN)) {
                    glm_jp_call_args(p, &tn->u.ft.args);
                } else if ((c->type == GLM_JT_NAME || c->type == GLM_JT_STRING
                            || c->type == GLM_JT_INT || c->type == GLM_JT_FLOAT
                            || glm_jp_is_op(c, GLM_JO_LPAREN) || glm_jp_is_op(c, GLM_JO_LBRACKET)
                            || glm_jp_is_op(c, GLM_JO_LBRACE))
                           && !glm_jp_is_name(c, "else") && !glm_jp_is_name(c, "or")
                           && !glm_jp_is_name(c, "and")) {
                    glm_jnode *arg;

                    if (glm_jp_is_name(c, "is")) {
                        glm_jp_fail(p, c->line, "You cannot chain multiple tests with is");
                    }
                    arg = glm_jp_postfix(p, glm_jp_primary(p, 0));
                    tn->u.ft.args.pos.v = glm_jp_alloc(p, sizeof(glm_jnode *));
                    tn->u.ft.args.pos.v[0] = arg;
                    tn->u.ft.args.pos.n = 1;
                }
                glm_jp_filter_test_common(p, tn);
                if (negated) {
                    glm_jnode *nn = glm_jp_node(p, GLM_JN_NOT, line);

                    nn->u.un.x = tn;
                    tn = nn;
                }
                node = tn;
            } else if (glm_jp_is_op(c, GLM_JO_LPAREN)) {
                glm_jnode *call = glm_jp_node(p, GLM_JN_CALL, c->line);

                call->u.call.fn = node;
                glm_jp_call_args(p, &call->u.call.args);
                node = call;
            } else {
                break;
            }
        }
    }
    p->depth--;
    return node;
}

/* Marks the macros being parsed that use caller/varargs/kwargs (jinja2
 * decides what a macro accepts from the names its body reads). */
static void
glm_jp_note_name(glm_jparser *p, int32_t sym)
{
    int i;

    for (i = 0; i < p->nmacros; i++) {
        if (sym == GLM_JSYM_CALLER) {
            p->macros[i]->catch_caller = 1;
        } else if (sym == GLM_JSYM_VARARGS) {
            p->macros[i]->catch_varargs = 1;
        } else if (sym == GLM_JSYM_KWARGS) {
            p->macros[i]->catch_kwargs = 1;
        }
    }
}

static glm_jnode *
glm_jp_name_node(glm_jparser *p, const glm_jtok *t)
{
    glm_jnode *n = glm_jp_node(p, GLM_JN_NAME, t->line);
    int g;

    n->u.name.sym = glm_jsym_intern(p, t->s, t->n);
    glm_jp_note_name(p, n->u.name.sym);
    g = glm_jglobal_id(t->s, t->n);
    if (g < 0) {
        glm_jp_fail(p, t->line, "unsupported: global '%.*s'", (int) t->n, t->s);
    }
    n->id = (uint16_t) g;
    return n;
}

static glm_jnode *
glm_jp_list(glm_jparser *p)
{
    glm_jnode *n = glm_jp_node(p, GLM_JN_LIST, glm_jp_cur(p)->line);
    glm_jvec items = {0};

    glm_jp_expect_op(p, GLM_JO_LBRACKET, "'['");
    while (!glm_jp_is_op(glm_jp_cur(p), GLM_JO_RBRACKET)) {
        if (items.n > 0) {
            glm_jp_expect_op(p, GLM_JO_COMMA, "','");
        }
        if (glm_jp_is_op(glm_jp_cur(p), GLM_JO_RBRACKET)) {
            break;
        }
        glm_jvec_push(p, &items, glm_jp_expression(p, 1));
    }
    glm_jp_expect_op(p, GLM_JO_RBRACKET, "']'");
    n->u.seq.items = glm_jvec_done(&items);
    return n;
}

static glm_jnode *
glm_jp_dict(glm_jparser *p)
{
    glm_jnode *n = glm_jp_node(p, GLM_JN_DICT, glm_jp_cur(p)->line);
    glm_jvec items = {0};

    glm_jp_expect_op(p, GLM_JO_LBRACE, "'{'");
    while (!glm_jp_is_op(glm_jp_cur(p), GLM_JO_RBRACE)) {
        if (items.n > 0) {
            glm_jp_expect_op(p, GLM_JO_COMMA, "','");
        }
        if (glm_jp_is_op(glm_jp_cur(p), GLM_JO_RBRACE)) {
            break;
        }
        glm_jvec_push(p, &items, glm_jp_expression(p, 1));
        glm_jp_expect_op(p, GLM_JO_COLON, "':'");
        glm_jvec_push(p, &items, glm_jp_expression(p, 1));
    }
    glm_jp_expect_op(p, GLM_JO_RBRACE, "'}'");
    n->u.seq.items = glm_jvec_done(&items);
    return n;
}

static glm_jnode *
glm_jp_primary(glm_jparser *p, int with_namespace)
{
    glm_jtok *t = glm_jp_cur(p);
    glm_jnode *n;
    char buf[64];

    glm_jp_enter(p);
    if (t->type == GLM_JT_NAME) {
        glm_jp_next(p);
        if (glm_jp_is_name(t, "true") || glm_jp_is_name(t, "True")
            || glm_jp_is_name(t, "false") || glm_jp_is_name(t, "False")) {
            n = glm_jp_node(p, GLM_JN_CONST, t->line);
            n->u.cval = glm_jvb(t->s[0] == 't' || t->s[0] == 'T');
        } else if (glm_jp_is_name(t, "none") || glm_jp_is_name(t, "None")) {
            n = glm_jp_node(p, GLM_JN_CONST, t->line);
            n->u.cval = glm_jvnone();
        } else if (with_namespace && glm_jp_is_op(glm_jp_cur(p), GLM_JO_DOT)) {
            glm_jtok *attr;

            glm_jp_next(p);
            attr = glm_jp_cur(p);
            glm_jp_expect_type(p, GLM_JT_NAME, "a name");
            n = glm_jp_node(p, GLM_JN_NSREF, t->line);
            n->u.nsref.sym = glm_jsym_intern(p, t->s, t->n);
            n->u.nsref.attr = glm_jp_strval(p, attr->s, attr->n);
        } else {
            n = glm_jp_name_node(p, t);
        }
    } else if (t->type == GLM_JT_STRING) {
        size_t total = 0, k;
        char *s;

        for (k = p->pos; p->tok[k].type == GLM_JT_STRING; k++) {
            total += p->tok[k].n;
        }
        s = glm_jp_alloc(p, total + 1);
        total = 0;
        n = glm_jp_node(p, GLM_JN_CONST, t->line);
        while (glm_jp_cur(p)->type == GLM_JT_STRING) {
            glm_jtok *st = glm_jp_next(p);

            memcpy(s + total, st->s, st->n);
            total += st->n;
        }
        n->u.cval = glm_jv_str(s, total);
    } else if (t->type == GLM_JT_INT || t->type == GLM_JT_FLOAT) {
        glm_jp_next(p);
        n = glm_jp_node(p, GLM_JN_CONST, t->line);
        n->u.cval = t->type == GLM_JT_INT ? glm_jvi(t->i) : glm_jvf(t->f);
    } else if (glm_jp_is_op(t, GLM_JO_LPAREN)) {
        glm_jp_next(p);
        n = glm_jp_tuple(p, 0, 1, NULL, 1, 0);
        glm_jp_expect_op(p, GLM_JO_RPAREN, "')'");
    } else if (glm_jp_is_op(t, GLM_JO_LBRACKET)) {
        n = glm_jp_list(p);
    } else if (glm_jp_is_op(t, GLM_JO_LBRACE)) {
        n = glm_jp_dict(p);
    } else {
        glm_jp_fail(p, t->line, "unexpected '%s'", glm_jp_describe(t, buf, sizeof(buf)));
    }
    p->depth--;
    return n;
}

static int
glm_jp_is_tuple_end(glm_jparser *p, const char *const *extra_end)
{
    glm_jtok *t = glm_jp_cur(p);

    if (t->type == GLM_JT_VAR_END || t->type == GLM_JT_BLOCK_END
        || glm_jp_is_op(t, GLM_JO_RPAREN)) {
        return 1;
    }
    if (extra_end != NULL) {
        for (; *extra_end != NULL; extra_end++) {
            if (glm_jp_is_name(t, *extra_end)) {
                return 1;
            }
        }
    }
    return 0;
}

static glm_jnode *
glm_jp_tuple(glm_jparser *p, int simplified, int with_condexpr, const char *const *extra_end,
             int explicit_parens, int with_namespace)
{
    int line = glm_jp_cur(p)->line, is_tuple = 0;
    glm_jvec args = {0};
    glm_jnode *n;

    for (;;) {
        if (args.n > 0) {
            glm_jp_expect_op(p, GLM_JO_COMMA, "','");
        }
        if (glm_jp_is_tuple_end(p, extra_end)) {
            break;
        }
        glm_jvec_push(p, &args, simplified ? glm_jp_primary(p, with_namespace)
                                           : glm_jp_expression(p, with_condexpr));
        if (glm_jp_is_op(glm_jp_cur(p), GLM_JO_COMMA)) {
            is_tuple = 1;
        } else {
            break;
        }
        line = glm_jp_cur(p)->line;
    }
    if (!is_tuple) {
        if (args.n > 0) {
            return args.v[0];
        }
        if (!explicit_parens) {
            glm_jp_unexpected(p, "an expression");
        }
    }
    n = glm_jp_node(p, GLM_JN_TUPLE, line);
    n->u.seq.items = glm_jvec_done(&args);
    return n;
}

static void
glm_jp_call_args(glm_jparser *p, glm_jargs *a)
{
    glm_jvec pos = {0}, kwval = {0};
    glm_jinja_value names[256];
    uint32_t nkw = 0;
    int line = glm_jp_cur(p)->line, require_comma = 0;

    glm_jp_expect_op(p, GLM_JO_LPAREN, "'('");
    while (!glm_jp_is_op(glm_jp_cur(p), GLM_JO_RPAREN)) {
        glm_jtok *t;

        if (require_comma) {
            glm_jp_expect_op(p, GLM_JO_COMMA, "','");
            if (glm_jp_is_op(glm_jp_cur(p), GLM_JO_RPAREN)) {
                break;
            }
        }
        t = glm_jp_cur(p);
        if (glm_jp_is_op(t, GLM_JO_MUL)) {
            if (a->dyn_args != NULL || a->dyn_kwargs != NULL) {
                glm_jp_fail(p, line, "invalid syntax for function call expression");
            }
            glm_jp_next(p);
            a->dyn_args = glm_jp_expression(p, 1);
        } else if (glm_jp_is_op(t, GLM_JO_POW)) {
            if (a->dyn_kwargs != NULL) {
                glm_jp_fail(p, line, "invalid syntax for function call expression");
            }
            glm_jp_next(p);
            a->dyn_kwargs = glm_jp_expression(p, 1);
        } else if (t->type == GLM_JT_NAME && glm_jp_is_op(glm_jp_look(p), GLM_JO_ASSIGN)) {
            if (a->dyn_kwargs != NULL) {
                glm_jp_fail(p, line, "invalid syntax for function call expression");
            }
            if (nkw >= sizeof(names) / sizeof(names[0])) {
                glm_jp_fail(p, line, "too many keyword arguments");
            }
            names[nkw++] = glm_jp_strval(p, t->s, t->n);
            glm_jp_next(p);
            glm_jp_next(p);
            glm_jvec_push(p, &kwval, glm_jp_expression(p, 1));
        } else {
            if (a->dyn_args != NULL || a->dyn_kwargs != NULL || nkw > 0) {
                glm_jp_fail(p, line, "invalid syntax for function call expression");
            }
            glm_jvec_push(p, &pos, glm_jp_expression(p, 1));
        }
        require_comma = 1;
    }
    glm_jp_expect_op(p, GLM_JO_RPAREN, "')'");
    a->pos = glm_jvec_done(&pos);
    a->kwval = glm_jvec_done(&kwval);
    if (nkw > 0) {
        a->kwname = glm_jp_alloc(p, nkw * sizeof(*a->kwname));
        memcpy(a->kwname, names, nkw * sizeof(*a->kwname));
    }
}

/* Resolves a filter or test name.  jinja2 fails at compile time for an
 * unknown one unless it sits in an if or a conditional expression, where the
 * error waits until the code runs; a jinja2 builtin this interpreter lacks
 * is refused here either way. */
static void
glm_jp_filter_test_common(glm_jparser *p, glm_jnode *n)
{
    int is_filter = n->type == GLM_JN_FILTER;
    const glm_jinja_value *name = &n->u.ft.name;
    int id = is_filter ? glm_jfilter_id(name->u.s, name->n) : glm_jtest_id(name->u.s, name->n);

    if (id < 0) {
        glm_jp_fail(p, n->line, "unsupported: %s '%s'", is_filter ? "filter" : "test",
                    name->u.s);
    }
    if (id == 0 && !p->soft) {
        glm_jp_fail(p, n->line, "No %s named '%s'.", is_filter ? "filter" : "test", name->u.s);
    }
    n->id = (uint16_t) id;
}

static glm_jnode *
glm_jp_filter(glm_jparser *p, glm_jnode *node, int start_inline)
{
    while (glm_jp_is_op(glm_jp_cur(p), GLM_JO_PIPE) || start_inline) {
        glm_jtok *t;
        glm_jnode *f;

        if (!start_inline) {
            glm_jp_next(p);
        }
        t = glm_jp_cur(p);
        glm_jp_expect_type(p, GLM_JT_NAME, "a filter name");
        if (glm_jp_is_op(glm_jp_cur(p), GLM_JO_DOT)) {
            glm_jp_fail(p, t->line, "unsupported: dotted filter name");
        }
        f = glm_jp_node(p, GLM_JN_FILTER, t->line);
        f->u.ft.obj = node;
        f->u.ft.name = glm_jp_strval(p, t->s, t->n);
        if (glm_jp_is_op(glm_jp_cur(p), GLM_JO_LPAREN)) {
            glm_jp_call_args(p, &f->u.ft.args);
        }
        glm_jp_filter_test_common(p, f);
        node = f;
        start_inline = 0;
    }
    return node;
}

static glm_jnode *
glm_jp_subscribed(glm_jparser *p)
{
    int line = glm_jp_cur(p)->line;
    glm_jnode *args[3] = {NULL, NULL, NULL}, *n;

    if (glm_jp_is_op(glm_jp_cur(p), GLM_JO_COLON)) {
        glm_jp_next(p);
    } else {
        glm_jnode *node = glm_jp_expression(p, 1);

        if (!glm_jp_is_op(glm_jp_cur(p), GLM_JO_COLON)) {
            return node;
        }
        glm_jp_next(p);
        args[0] = node;
    }
    if (glm_jp_is_op(glm_jp_cur(p), GLM_JO_COLON)) {
        args[1] = NULL;
    } else if (!glm_jp_is_op(glm_jp_cur(p), GLM_JO_RBRACKET)
               && !glm_jp_is_op(glm_jp_cur(p), GLM_JO_COMMA)) {
        args[1] = glm_jp_expression(p, 1);
    }
    if (glm_jp_is_op(glm_jp_cur(p), GLM_JO_COLON)) {
        glm_jp_next(p);
        if (!glm_jp_is_op(glm_jp_cur(p), GLM_JO_RBRACKET)
            && !glm_jp_is_op(glm_jp_cur(p), GLM_JO_COMMA)) {
            args[2] = glm_jp_expression(p, 1);
        }
    }
    n = glm_jp_node(p, GLM_JN_SLICE, line);
    n->u.slice.start = args[0];
    n->u.slice.stop = args[1];
    n->u.slice.step = args[2];
    return n;
}

static glm_jnode *
glm_jp_postfix(glm_jparser *p, glm_jnode *node)
{
    for (;;) {
        glm_jtok *t = glm_jp_cur(p);

        if (glm_jp_is_op(t, GLM_JO_DOT)) {
            glm_jtok *a;

            glm_jp_next(p);
            a = glm_jp_cur(p);
            if (a->type == GLM_JT_NAME) {
                glm_jnode *g = glm_jp_node(p, GLM_JN_GETATTR, t->line);

                glm_jp_next(p);
                g->u.getattr.obj = node;
                g->u.getattr.attr = glm_jp_strval(p, a->s, a->n);
                glm_jmethod_ids(a->s, a->n, g->u.getattr.mid);
                node = g;
            } else if (a->type == GLM_JT_INT) {
                glm_jnode *g = glm_jp_node(p, GLM_JN_GETITEM, t->line);
                glm_jnode *k = glm_jp_node(p, GLM_JN_CONST, a->line);

                glm_jp_next(p);
                k->u.cval = glm_jvi(a->i);
                g->u.getitem.obj = node;
                g->u.getitem.key = k;
                node = g;
            } else {
                glm_jp_fail(p, a->line, "expected name or number");
            }
        } else if (glm_jp_is_op(t, GLM_JO_LBRACKET)) {
            glm_jvec args = {0};
            glm_jnode *g = glm_jp_node(p, GLM_JN_GETITEM, t->line);

            glm_jp_next(p);
            while (!glm_jp_is_op(glm_jp_cur(p), GLM_JO_RBRACKET)) {
                if (args.n > 0) {
                    glm_jp_expect_op(p, GLM_JO_COMMA, "','");
                }
                glm_jvec_push(p, &args, glm_jp_subscribed(p));
            }
            glm_jp_expect_op(p, GLM_JO_RBRACKET, "']'");
            g->u.getitem.obj = node;
            if (args.n == 1) {
                g->u.getitem.key = args.v[0];
            } else {
                glm_jnode *tup = glm_jp_node(p, GLM_JN_TUPLE, t->line);

                tup->u.seq.items = glm_jvec_done(&args);
                g->u.getitem.key = tup;
            }
            node = g;
        } else if (glm_jp_is_op(t, GLM_JO_LPAREN)) {
            glm_jnode *call = glm_jp_node(p, GLM_JN_CALL, t->line);

            call->u.call.fn = node;
            glm_jp_call_args(p, &call->u.call.args);
            node = call;
        } else {
            break;
        }
    }
    return node;
}


/* ---- statements ------------------------------------------------------------------------------------------- */

static glm_jnodes glm_jp_subparse(glm_jparser *p, const char *const *end);

/* parse_statements: optional ':' then block end, a body until one of end. */
static glm_jnodes
glm_jp_statements(glm_jparser *p, const char *const *end, int drop_needle)
{
    glm_jnodes body;

    if (glm_jp_is_op(glm_jp_cur(p), GLM_JO_COLON)) {
        glm_jp_next(p);
    }
    glm_jp_expect_type(p, GLM_JT_BLOCK_END, "end of statement block");
    body = glm_jp_subparse(p, end);
    if (glm_jp_cur(p)->type == GLM_JT_EOF) {
        glm_jp_fail(p, glm_jp_cur(p)->line, "Unexpected end of template. Jinja was looking "
                    "for the following tags: '%s'.", end[0]);
    }
    if (drop_needle) {
        glm_jp_next(p);
    }
    return body;
}

static glm_jnode *
glm_jp_assign_target(glm_jparser *p, int with_tuple, int name_only,
                     const char *const *extra_end, int with_namespace)
{
    glm_jnode *target;
    uint32_t i;

    if (name_only) {
        glm_jtok *t = glm_jp_cur(p);

        glm_jp_expect_type(p, GLM_JT_NAME, "a name");
        target = glm_jp_node(p, GLM_JN_NAME, t->line);
        target->u.name.sym = glm_jsym_intern(p, t->s, t->n);
        return target;
    }
    target = with_tuple ? glm_jp_tuple(p, 1, 1, extra_end, 0, with_namespace)
                        : glm_jp_primary(p, with_namespace);
    if (target->type == GLM_JN_TUPLE) {
        for (i = 0; i < target->u.seq.items.n; i++) {
            int ty = target->u.seq.items.v[i]->type;

            if (ty != GLM_JN_NAME && ty != GLM_JN_NSREF) {
                glm_jp_fail(p, target->line, "can't assign to 'tuple'");
            }
        }
    } else if (target->type != GLM_JN_NAME && target->type != GLM_JN_NSREF) {
        glm_jp_fail(p, target->line, "can't assign to '%s'",
                    target->type == GLM_JN_CONST ? "const" : "expression");
    }
    return target;
}

static glm_jnode *
glm_jp_if(glm_jparser *p)
{
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    static const char *const endif[] = {"endif", NULL};
    glm_jnode *result, *node;
    int soft = p->soft;

    p->soft = 1;
    result = node = glm_jp_node(p, GLM_JN_IF, glm_jp_next(p)->line);
    for (;;) {
        glm_jtok *t;

        node->u.if_.test = glm_jp_tuple(p, 0, 0, NULL, 0, 0);
        node->u.if_.body = glm_jp_statements(p, ends, 0);
        t = glm_jp_next(p);
        if (glm_jp_is_name(t, "elif")) {
            glm_jnode *elif = glm_jp_node(p, GLM_JN_IF, glm_jp_cur(p)->line);

            /* op 1 marks an elif: the evaluator walks the chain in a loop,
             * so a long elif chain costs no recursion */
            elif->op = 1;
            node->u.if_.orelse.v = glm_jp_alloc(p, sizeof(glm_jnode *));
            node->u.if_.orelse.v[0] = elif;
            node->u.if_.orelse.n = 1;
            node = elif;
            continue;
        }
        if (glm_jp_is_name(t, "else")) {
            node->u.if_.orelse = glm_jp_statements(p, endif, 1);
        }
        break;
    }
    p->soft = soft;
    return result;
}

static glm_jnode *
glm_jp_for(glm_jparser *p)
{
    static const char *const in_end[] = {"in", NULL};
    static const char *const rec_end[] = {"recursive", NULL};
    static const char *const ends[] = {"endfor", "else", NULL};
    static const char *const endfor[] = {"endfor", NULL};
    glm_jnode *n = glm_jp_node(p, GLM_JN_FOR, glm_jp_next(p)->line);
    int soft = p->soft;

    n->u.for_.target = glm_jp_assign_target(p, 1, 0, in_end, 0);
    glm_jp_expect_name(p, "in");
    n->u.for_.iter = glm_jp_tuple(p, 0, 0, rec_end, 0, 0);
    p->soft = 0;
    if (glm_jp_skip_name(p, "if")) {
        n->u.for_.filter = glm_jp_expression(p, 1);
    }
    if (glm_jp_skip_name(p, "recursive")) {
        glm_jp_fail(p, n->line, "unsupported: recursive for loop");
    }
    p->loop_depth++;
    n->u.for_.body = glm_jp_statements(p, ends, 0);
    p->loop_depth--;
    if (glm_jp_is_name(glm_jp_next(p), "else")) {
        n->u.for_.orelse = glm_jp_statements(p, endfor, 1);
    }
    p->soft = soft;
    return n;
}

static glm_jnode *
glm_jp_set(glm_jparser *p)
{
    static const char *const endset[] = {"endset", NULL};
    int line = glm_jp_next(p)->line;
    glm_jnode *target = glm_jp_assign_target(p, 1, 0, NULL, 1), *n;

    if (glm_jp_is_op(glm_jp_cur(p), GLM_JO_ASSIGN)) {
        glm_jp_next(p);
        n = glm_jp_node(p, GLM_JN_SET, line);
        n->u.set.target = target;
        n->u.set.value = glm_jp_tuple(p, 0, 1, NULL, 0, 0);
        return n;
    }
    {
        int soft = p->soft;

        p->soft = 0;
        n = glm_jp_node(p, GLM_JN_SETBLOCK, line);
        n->u.setblock.target = target;
        if (glm_jp_is_op(glm_jp_cur(p), GLM_JO_PIPE)) {
            n->u.setblock.filter = glm_jp_filter(p, NULL, 0);
        }
        n->u.setblock.body = glm_jp_statements(p, endset, 1);
        p->soft = soft;
    }
    return n;
}

static void
glm_jp_signature(glm_jparser *p, glm_jmacro_def *m)
{
    int32_t syms[256];
    glm_jinja_value names[256];
    glm_jnode *defaults[256];
    uint32_t n = 0, have_default = 0;

    glm_jp_expect_op(p, GLM_JO_LPAREN, "'('");
    while (!glm_jp_is_op(glm_jp_cur(p), GLM_JO_RPAREN)) {
        glm_jtok *t;

        if (n > 0) {
            glm_jp_expect_op(p, GLM_JO_COMMA, "','");
        }
        if (n >= 256) {
            glm_jp_fail(p, glm_jp_cur(p)->line, "too many macro parameters");
        }
        t = glm_jp_cur(p);
        glm_jp_expect_type(p, GLM_JT_NAME, "a parameter name");
        syms[n] = glm_jsym_intern(p, t->s, t->n);
        names[n] = glm_jp_strval(p, t->s, t->n);
        defaults[n] = NULL;
        if (glm_jp_is_op(glm_jp_cur(p), GLM_JO_ASSIGN)) {
            glm_jp_next(p);
            defaults[n] = glm_jp_expression(p, 1);
            have_default = 1;
        } else if (have_default) {
            glm_jp_fail(p, t->line, "non-default argument follows default argument");
        }
        n++;
    }
    glm_jp_expect_op(p, GLM_JO_RPAREN, "')'");
    m->nparams = n;
    if (n > 0) {
        m->param_sym = glm_jp_alloc(p, n * sizeof(*m->param_sym));
        m->param_name = glm_jp_alloc(p, n * sizeof(*m->param_name));
        m->param_default = glm_jp_alloc(p, n * sizeof(*m->param_default));
        memcpy(m->param_sym, syms, n * sizeof(*syms));
        memcpy(m->param_name, names, n * sizeof(*names));
        memcpy(m->param_default, defaults, n * sizeof(*defaults));
    }
}

/* Parses a macro body with the macro on the stack (for caller/varargs/kwargs)
 * and break/continue out of reach (a macro is a function in jinja2). */
static void
glm_jp_macro_body(glm_jparser *p, glm_jmacro_def *m, const char *const *end)
{
    int loop_depth = p->loop_depth, soft = p->soft;

    if (p->nmacros >= GLM_JPARSE_MAX_DEPTH) {
        glm_jp_fail(p, glm_jp_cur(p)->line, "macros nested too deeply");
    }
    p->macros[p->nmacros++] = m;
    p->loop_depth = 0;
    p->soft = 0;
    m->body = glm_jp_statements(p, end, 1);
    p->nmacros--;
    p->loop_depth = loop_depth;
    p->soft = soft;
}

static glm_jnode *
glm_jp_macro(glm_jparser *p)
{
    static const char *const end[] = {"endmacro", NULL};
    glm_jnode *n = glm_jp_node(p, GLM_JN_MACRO, glm_jp_next(p)->line);
    glm_jmacro_def *m = glm_jp_alloc(p, sizeof(*m));
    glm_jtok *t = glm_jp_cur(p);
    int soft = p->soft;

    glm_jp_expect_type(p, GLM_JT_NAME, "a macro name");
    m->sym = glm_jsym_intern(p, t->s, t->n);
    m->name = glm_jp_strval(p, t->s, t->n);
    p->soft = 0;
    glm_jp_signature(p, m);
    p->soft = soft;
    glm_jp_macro_body(p, m, end);
    n->u.macro = m;
    return n;
}

static glm_jnode *
glm_jp_call_block(glm_jparser *p)
{
    static const char *const end[] = {"endcall", NULL};
    glm_jnode *n = glm_jp_node(p, GLM_JN_CALLBLOCK, glm_jp_next(p)->line);
    glm_jmacro_def *m = glm_jp_alloc(p, sizeof(*m));
    glm_jnode *call;

    m->name = glm_jv_strz("caller");
    m->sym = -1;
    if (glm_jp_is_op(glm_jp_cur(p), GLM_JO_LPAREN)) {
        glm_jp_signature(p, m);
    }
    call = glm_jp_expression(p, 1);
    if (call->type != GLM_JN_CALL) {
        glm_jp_fail(p, n->line, "expected call");
    }
    glm_jp_macro_body(p, m, end);
    n->u.callblock.call = call;
    n->u.callblock.caller = m;
    return n;
}

static glm_jnode *
glm_jp_filter_block(glm_jparser *p)
{
    static const char *const end[] = {"endfilter", NULL};
    glm_jnode *n = glm_jp_node(p, GLM_JN_FILTERBLOCK, glm_jp_next(p)->line);
    int soft = p->soft;

    p->soft = 0;
    n->u.filterblock.filter = glm_jp_filter(p, NULL, 1);
    n->u.filterblock.body = glm_jp_statements(p, end, 1);
    p->soft = soft;
    return n;
}

static glm_jnode *
glm_jp_with(glm_jparser *p)
{
    static const char *const end[] = {"endwith", NULL};
    glm_jnode *n = glm_jp_node(p, GLM_JN_WITH, glm_jp_next(p)->line);
    glm_jvec targets = {0}, values = {0};
    int soft = p->soft;

    while (glm_jp_cur(p)->type != GLM_JT_BLOCK_END) {
        glm_jnode *target;

        if (targets.n > 0) {
            glm_jp_expect_op(p, GLM_JO_COMMA, "','");
        }
        target = glm_jp_assign_target(p, 1, 0, NULL, 0);
        glm_jvec_push(p, &targets, target);
        glm_jp_expect_op(p, GLM_JO_ASSIGN, "'='");
        glm_jvec_push(p, &values, glm_jp_expression(p, 1));
    }
    n->u.with.targets = glm_jvec_done(&targets);
    n->u.with.values = glm_jvec_done(&values);
    p->soft = 0;
    n->u.with.body = glm_jp_statements(p, end, 1);
    p->soft = soft;
    return n;
}

static void
glm_jp_statement(glm_jparser *p, glm_jvec *body)
{
    glm_jtok *t = glm_jp_cur(p);
    glm_jnode *n = NULL;

    if (t->type != GLM_JT_NAME) {
        glm_jp_fail(p, t->line, "tag name expected");
    }
    glm_jp_enter(p);
    if (glm_jp_is_name(t, "if")) {
        n = glm_jp_if(p);
    } else if (glm_jp_is_name(t, "for")) {
        n = glm_jp_for(p);
    } else if (glm_jp_is_name(t, "set")) {
        n = glm_jp_set(p);
    } else if (glm_jp_is_name(t, "macro")) {
        n = glm_jp_macro(p);
    } else if (glm_jp_is_name(t, "call")) {
        n = glm_jp_call_block(p);
    } else if (glm_jp_is_name(t, "filter")) {
        n = glm_jp_filter_block(p);
    } else if (glm_jp_is_name(t, "with")) {
        n = glm_jp_with(p);
    } else if (glm_jp_is_name(t, "print")) {
        glm_jp_next(p);
        while (glm_jp_cur(p)->type != GLM_JT_BLOCK_END) {
            glm_jnode *pr;

            if (n != NULL) {
                glm_jp_expect_op(p, GLM_JO_COMMA, "','");
            }
            pr = glm_jp_node(p, GLM_JN_PRINT, t->line);
            pr->u.un.x = glm_jp_expression(p, 1);
            glm_jvec_push(p, body, pr);
            n = pr;
        }
        p->depth--;
        return;
    } else if (glm_jp_is_name(t, "break") || glm_jp_is_name(t, "continue")) {
        if (p->loop_depth == 0) {
            glm_jp_fail(p, t->line, "'%.*s' outside loop", (int) t->n, t->s);
        }
        n = glm_jp_node(p, t->s[0] == 'b' ? GLM_JN_BREAK : GLM_JN_CONTINUE, t->line);
        glm_jp_next(p);
    } else if (glm_jp_is_name(t, "generation")) {
        /* transformers' AssistantTracker: renders its body unchanged (as a
         * call block, so it has its own scope) */
        static const char *const end[] = {"endgeneration", NULL};
        int soft = p->soft, loop_depth = p->loop_depth;

        n = glm_jp_node(p, GLM_JN_SCOPE, glm_jp_next(p)->line);
        p->soft = 0;
        p->loop_depth = 0;
        n->u.scope.body = glm_jp_statements(p, end, 1);
        p->soft = soft;
        p->loop_depth = loop_depth;
    } else if (glm_jp_is_name(t, "block") || glm_jp_is_name(t, "extends")
               || glm_jp_is_name(t, "include") || glm_jp_is_name(t, "import")
               || glm_jp_is_name(t, "from") || glm_jp_is_name(t, "autoescape")) {
        glm_jp_fail(p, t->line, "unsupported: tag '%.*s'", (int) t->n, t->s);
    } else {
        glm_jp_fail(p, t->line, "Encountered unknown tag '%.*s'.", (int) t->n, t->s);
    }
    glm_jvec_push(p, body, n);
    p->depth--;
}

static glm_jnodes
glm_jp_subparse(glm_jparser *p, const char *const *end)
{
    glm_jvec body = {0};

    for (;;) {
        glm_jtok *t = glm_jp_cur(p);

        if (t->type == GLM_JT_EOF) {
            break;
        }
        if (t->type == GLM_JT_DATA) {
            glm_jnode *n = glm_jp_node(p, GLM_JN_DATA, t->line);

            n->u.cval = glm_jv_str(t->s, t->n);
            glm_jvec_push(p, &body, n);
            glm_jp_next(p);
        } else if (t->type == GLM_JT_VAR_BEGIN) {
            glm_jnode *n = glm_jp_node(p, GLM_JN_PRINT, t->line);

            glm_jp_next(p);
            n->u.un.x = glm_jp_tuple(p, 0, 1, NULL, 0, 0);
            glm_jp_expect_type(p, GLM_JT_VAR_END, "end of print statement");
            glm_jvec_push(p, &body, n);
        } else if (t->type == GLM_JT_BLOCK_BEGIN) {
            glm_jtok *name;

            glm_jp_next(p);
            name = glm_jp_cur(p);
            if (end != NULL) {
                const char *const *e;

                for (e = end; *e != NULL; e++) {
                    if (glm_jp_is_name(name, *e)) {
                        return glm_jvec_done(&body);
                    }
                }
            }
            if (name->type == GLM_JT_NAME
                && (glm_jp_is_name(name, "endif") || glm_jp_is_name(name, "endfor")
                    || glm_jp_is_name(name, "endmacro") || glm_jp_is_name(name, "endset")
                    || glm_jp_is_name(name, "endcall") || glm_jp_is_name(name, "endfilter")
                    || glm_jp_is_name(name, "endwith") || glm_jp_is_name(name, "elif")
                    || glm_jp_is_name(name, "else") || glm_jp_is_name(name, "endgeneration"))) {
                glm_jp_fail(p, name->line, "Encountered unknown tag '%.*s'.", (int) name->n,
                            name->s);
            }
            glm_jp_statement(p, &body);
            glm_jp_expect_type(p, GLM_JT_BLOCK_END, "end of statement block");
        } else {
            glm_jp_fail(p, t->line, "internal parsing error");
        }
    }
    return glm_jvec_done(&body);
}


/* ---- entry point ------------------------------------------------------------------------------------------------ */

int
glm_jparse_template(glm_jinja_template *t, glm_err *err)
{
    glm_jparser *p;
    size_t i, o, bad;
    char *src;
    int rc = 0;

    if (!glm_ju8_valid(t->source, t->source_len, &bad)) {
        return glm_errf(err, "%s: not valid UTF-8 (byte %zu)", t->name, bad);
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return glm_errf(err, "%s: out of memory", t->name);
    }
    p->t = t;
    p->err = err;
    if (setjmp(p->jb) != 0) {
        free(p);
        return -1;
    }
    /* newlines to \n, one trailing newline dropped (keep_trailing_newline) */
    src = glm_jp_alloc(p, t->source_len + 1);
    for (i = 0, o = 0; i < t->source_len; i++) {
        if (t->source[i] == '\r') {
            src[o++] = '\n';
            if (i + 1 < t->source_len && t->source[i + 1] == '\n') {
                i++;
            }
        } else {
            src[o++] = t->source[i];
        }
    }
    if (o > 0 && src[o - 1] == '\n') {
        o--;
    }
    src[o] = '\0';
    p->src = src;
    p->len = o;

    /* the well-known symbols come first, in enum order */
    glm_jsym_intern(p, "loop", 4);
    glm_jsym_intern(p, "caller", 6);
    glm_jsym_intern(p, "varargs", 7);
    glm_jsym_intern(p, "kwargs", 6);

    glm_jl_tokenize(p);
    t->body = glm_jp_subparse(p, NULL);
    if (glm_jp_cur(p)->type != GLM_JT_EOF) {
        glm_jp_unexpected(p, "end of template");
    }
    free(p);
    return rc;
}
