/*
 * json_text.c: JSON as text, apart from any schema: writing a parsed value
 * with Python's json.dumps spacing, normalizing model-written JSON (strict,
 * or lenient about Python literals) into that form, and the incremental
 * syntax check that follows a value byte by byte while it is generated.
 * The output parser (glm_output.c) uses these on the model's tool-call
 * arguments; the schema compiler (json_schema.c) writes enum values with
 * glm_json_write.  None of this reads a JSON Schema, which is why it lives
 * apart from the compiler and the validator.
 */
#include "json_text.h"

#include <string.h>

/* ---- Python-style JSON writing -------------------------------------------- */

void
glm_json_write(glm_str *out, yajl_val v)
{
    size_t i;

    if (v == NULL || YAJL_IS_NULL(v)) {
        glm_str_adds(out, "null");
    } else if (YAJL_IS_TRUE(v)) {
        glm_str_adds(out, "true");
    } else if (YAJL_IS_FALSE(v)) {
        glm_str_adds(out, "false");
    } else if (YAJL_IS_STRING(v)) {
        glm_json_strz(out, v->u.string);
    } else if (YAJL_IS_NUMBER(v)) {
        glm_str_adds(out, v->u.number.r);
    } else if (YAJL_IS_ARRAY(v)) {
        glm_str_adds(out, "[");
        for (i = 0; i < v->u.array.len; i++) {
            if (i) {
                glm_str_adds(out, ", ");
            }
            glm_json_write(out, v->u.array.values[i]);
        }
        glm_str_adds(out, "]");
    } else {
        glm_str_adds(out, "{");
        for (i = 0; i < v->u.object.len; i++) {
            if (i) {
                glm_str_adds(out, ", ");
            }
            glm_json_strz(out, v->u.object.keys[i]);
            glm_str_adds(out, ": ");
            glm_json_write(out, v->u.object.values[i]);
        }
        glm_str_adds(out, "}");
    }
}

/* ---- parsing and normalizing JSON text ----------------------------------- */

typedef struct {
    const char *p, *end;
    int         lenient;
    int         depth;
    glm_str    *out;
} schema_json;

static void
schema_json_ws(schema_json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) {
        j->p++;
    }
}

static int
schema_hex4(const char *p, unsigned *v)
{
    int i;

    *v = 0;
    for (i = 0; i < 4; i++) {
        char c = p[i];
        *v <<= 4;
        if (c >= '0' && c <= '9') *v |= (unsigned) (c - '0');
        else if (c >= 'a' && c <= 'f') *v |= (unsigned) (c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') *v |= (unsigned) (c - 'A' + 10);
        else return -1;
    }
    return 0;
}

static void
schema_utf8_put(glm_str *s, unsigned cp)
{
    char b[4];

    if (cp < 0x80) {
        b[0] = (char) cp;
        glm_str_add(s, b, 1);
    } else if (cp < 0x800) {
        b[0] = (char) (0xc0 | (cp >> 6));
        b[1] = (char) (0x80 | (cp & 0x3f));
        glm_str_add(s, b, 2);
    } else if (cp < 0x10000) {
        b[0] = (char) (0xe0 | (cp >> 12));
        b[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char) (0x80 | (cp & 0x3f));
        glm_str_add(s, b, 3);
    } else {
        b[0] = (char) (0xf0 | (cp >> 18));
        b[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
        b[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
        b[3] = (char) (0x80 | (cp & 0x3f));
        glm_str_add(s, b, 4);
    }
}

/* a quoted string (q is '"', or '\'' when lenient) decoded into raw */
static int
schema_json_string(schema_json *j, glm_str *raw)
{
    char q = *j->p++;

    while (j->p < j->end && *j->p != q) {
        unsigned char c = (unsigned char) *j->p;
        if (c < 0x20 && !j->lenient) {
            return -1;
        }
        if (c != '\\') {
            glm_str_add(raw, j->p++, 1);
            continue;
        }
        if (j->end - j->p < 2) {
            return -1;
        }
        j->p++;
        switch (*j->p) {
        case '"':  glm_str_add(raw, "\"", 1); break;
        case '\\': glm_str_add(raw, "\\", 1); break;
        case '/':  glm_str_add(raw, "/", 1); break;
        case 'b':  glm_str_add(raw, "\b", 1); break;
        case 'f':  glm_str_add(raw, "\f", 1); break;
        case 'n':  glm_str_add(raw, "\n", 1); break;
        case 'r':  glm_str_add(raw, "\r", 1); break;
        case 't':  glm_str_add(raw, "\t", 1); break;
        case '\'':
            if (!j->lenient) {
                return -1;
            }
            glm_str_add(raw, "'", 1);
            break;
        case 'u': {
            unsigned cp, lo;
            if (j->end - j->p < 5 || schema_hex4(j->p + 1, &cp) != 0) {
                return -1;
            }
            j->p += 4;
            if (cp >= 0xd800 && cp <= 0xdbff && j->end - j->p >= 7 && j->p[1] == '\\'
                && j->p[2] == 'u' && schema_hex4(j->p + 3, &lo) == 0
                && lo >= 0xdc00 && lo <= 0xdfff)
            {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                j->p += 6;
            } else if (cp >= 0xd800 && cp <= 0xdfff) {
                cp = 0xfffd;       /* a lone surrogate has no UTF-8 form */
            }
            schema_utf8_put(raw, cp);
            break;
        }
        default:
            return -1;
        }
        j->p++;
    }
    if (j->p >= j->end) {
        return -1;
    }
    j->p++;
    return 0;
}

static int
schema_json_number(schema_json *j)
{
    const char *s = j->p;
    int frac = 0;

    if (j->p < j->end && *j->p == '-') {
        j->p++;
    }
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') {
        return -1;
    }
    if (*j->p == '0') {
        j->p++;
    } else {
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
            j->p++;
        }
    }
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        frac = 1;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9') {
            return -1;
        }
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
            j->p++;
        }
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        frac = 1;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) {
            j->p++;
        }
        if (j->p >= j->end || *j->p < '0' || *j->p > '9') {
            return -1;
        }
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
            j->p++;
        }
    }
    glm_str_add(j->out, s, (size_t) (j->p - s));
    return frac ? (int) GLM_JT_NUM : (int) GLM_JT_INT;
}

static int
schema_json_word(schema_json *j, const char *w, const char *as)
{
    size_t n = strlen(w);

    if ((size_t) (j->end - j->p) >= n && memcmp(j->p, w, n) == 0) {
        j->p += n;
        glm_str_adds(j->out, as);
        return 0;
    }
    return -1;
}

static int
schema_json_value(schema_json *j)
{
    glm_str raw = { 0 };
    int n;

    schema_json_ws(j);
    if (j->p >= j->end || ++j->depth > GLM_JSON_PREFIX_DEPTH) {
        return -1;
    }
    switch (*j->p) {
    case '{':
    case '[': {
        char close = *j->p == '{' ? '}' : ']';
        int obj = *j->p == '{';
        glm_str_add(j->out, j->p++, 1);
        for (n = 0;; n++) {
            schema_json_ws(j);
            if (j->p < j->end && *j->p == close && (n == 0 || j->lenient)) {
                break;
            }
            if (n > 0) {
                glm_str_adds(j->out, ", ");
            }
            if (obj) {
                if (j->p >= j->end || !(*j->p == '"' || (j->lenient && *j->p == '\''))) {
                    return -1;
                }
                raw.len = 0;
                if (schema_json_string(j, &raw) != 0) {
                    glm_str_free(&raw);
                    return -1;
                }
                glm_json_str(j->out, raw.data ? raw.data : "", raw.len);
                schema_json_ws(j);
                if (j->p >= j->end || *j->p != ':') {
                    glm_str_free(&raw);
                    return -1;
                }
                j->p++;
                glm_str_adds(j->out, ": ");
            }
            if (schema_json_value(j) < 0) {
                glm_str_free(&raw);
                return -1;
            }
            schema_json_ws(j);
            if (j->p < j->end && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->end && *j->p == close) {
                break;
            }
            glm_str_free(&raw);
            return -1;
        }
        glm_str_free(&raw);
        j->p++;
        glm_str_add(j->out, &close, 1);
        j->depth--;
        return obj ? (int) GLM_JT_OBJ : (int) GLM_JT_ARR;
    }
    case '\'':
        if (!j->lenient) {
            return -1;
        }
        /* fall through */
    case '"':
        if (schema_json_string(j, &raw) != 0) {
            glm_str_free(&raw);
            return -1;
        }
        glm_json_str(j->out, raw.data ? raw.data : "", raw.len);
        glm_str_free(&raw);
        j->depth--;
        return GLM_JT_STR;
    case 't':
        j->depth--;
        return schema_json_word(j, "true", "true") == 0 ? (int) GLM_JT_BOOL : -1;
    case 'f':
        j->depth--;
        return schema_json_word(j, "false", "false") == 0 ? (int) GLM_JT_BOOL : -1;
    case 'n':
        j->depth--;
        return schema_json_word(j, "null", "null") == 0 ? (int) GLM_JT_NULL : -1;
    case 'T':
        j->depth--;
        return j->lenient && schema_json_word(j, "True", "true") == 0 ? (int) GLM_JT_BOOL : -1;
    case 'F':
        j->depth--;
        return j->lenient && schema_json_word(j, "False", "false") == 0 ? (int) GLM_JT_BOOL : -1;
    case 'N':
        j->depth--;
        return j->lenient && schema_json_word(j, "None", "null") == 0 ? (int) GLM_JT_NULL : -1;
    default:
        j->depth--;
        return schema_json_number(j);
    }
}

int
glm_json_normalize(const char *p, size_t n, int lenient, glm_str *out)
{
    schema_json j;
    size_t mark = out->len;
    int kind;

    j.p = p;
    j.end = p + n;
    j.lenient = lenient;
    j.depth = 0;
    j.out = out;
    kind = schema_json_value(&j);
    schema_json_ws(&j);
    if (kind < 0 || j.p != j.end) {
        out->len = mark;
        if (out->data) {
            out->data[mark] = '\0';
        }
        return -1;
    }
    return kind;
}

/* ---- incremental syntax check --------------------------------------------- */

enum {
    JP_VALUE,        /* a value may start (whitespace first) */
    JP_OBJ_FIRST,    /* after '{': '"' or '}' */
    JP_OBJ_KEY,      /* after ',' in an object: '"' */
    JP_COLON,
    JP_STRING,
    JP_ESC,
    JP_HEX,
    JP_LIT,
    JP_NUM_MINUS,    /* after '-' */
    JP_NUM_ZERO,     /* a leading 0 */
    JP_NUM_INT,
    JP_NUM_DOT,
    JP_NUM_FRAC,
    JP_NUM_E,
    JP_NUM_ESIGN,
    JP_NUM_EXP,
    JP_AFTER,        /* after a value: ',' or a closer, or the end */
    JP_ARR_FIRST,    /* after '[': a value or ']' */
};

void
glm_json_prefix_init(glm_json_prefix *j)
{
    memset(j, 0, sizeof(*j));
    j->st = JP_VALUE;
}

static int
jp_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int
jp_num_end(int st)
{
    return st == JP_NUM_ZERO || st == JP_NUM_INT || st == JP_NUM_FRAC || st == JP_NUM_EXP;
}

static int
jp_byte(glm_json_prefix *j, unsigned char c)
{
    for (;;) {
        switch (j->st) {
        case JP_ARR_FIRST:
            if (c == ']') {
                j->depth--;
                j->st = JP_AFTER;
                return 0;
            }
            j->st = JP_VALUE;
            continue;
        case JP_VALUE:
            if (jp_ws(c)) {
                return 0;
            }
            if (j->kind == 0) {
                j->kind = c == '{' ? GLM_JT_OBJ : c == '[' ? GLM_JT_ARR : c == '"' ? GLM_JT_STR
                        : c == 't' || c == 'f' ? GLM_JT_BOOL : c == 'n' ? GLM_JT_NULL
                        : GLM_JT_INT | GLM_JT_NUM;
            }
            if (c == '{' || c == '[') {
                if (j->depth == GLM_JSON_PREFIX_DEPTH) {
                    return -1;
                }
                j->stack[j->depth++] = c;
                j->st = c == '{' ? JP_OBJ_FIRST : JP_ARR_FIRST;
                return 0;
            }
            if (c == '"') {
                j->key = 0;
                j->st = JP_STRING;
                return 0;
            }
            if (c == 't' || c == 'f' || c == 'n') {
                j->lit = c == 't' ? "true" : c == 'f' ? "false" : "null";
                j->litpos = 1;
                j->st = JP_LIT;
                return 0;
            }
            if (c == '-') {
                j->st = JP_NUM_MINUS;
                return 0;
            }
            if (c >= '0' && c <= '9') {
                j->st = c == '0' ? JP_NUM_ZERO : JP_NUM_INT;
                return 0;
            }
            return -1;
        case JP_OBJ_FIRST:
        case JP_OBJ_KEY:
            if (jp_ws(c)) {
                return 0;
            }
            if (c == '}' && j->st == JP_OBJ_FIRST) {
                j->depth--;
                j->st = JP_AFTER;
                return 0;
            }
            if (c == '"') {
                j->key = 1;
                j->st = JP_STRING;
                return 0;
            }
            return -1;
        case JP_COLON:
            if (jp_ws(c)) {
                return 0;
            }
            if (c == ':') {
                j->st = JP_VALUE;
                return 0;
            }
            return -1;
        case JP_STRING:
            if (c == '"') {
                j->st = j->key ? JP_COLON : JP_AFTER;
                return 0;
            }
            if (c == '\\') {
                j->st = JP_ESC;
                return 0;
            }
            return c < 0x20 ? -1 : 0;
        case JP_ESC:
            if (c == 'u') {
                j->hex = 4;
                j->st = JP_HEX;
                return 0;
            }
            if (strchr("\"\\/bfnrt", c) == NULL || c == 0) {
                return -1;
            }
            j->st = JP_STRING;
            return 0;
        case JP_HEX:
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
                return -1;
            }
            if (--j->hex == 0) {
                j->st = JP_STRING;
            }
            return 0;
        case JP_LIT:
            if (j->lit[j->litpos] != (char) c) {
                return -1;
            }
            if (j->lit[++j->litpos] == '\0') {
                j->st = JP_AFTER;
            }
            return 0;
        case JP_NUM_MINUS:
            if (c >= '0' && c <= '9') {
                j->st = c == '0' ? JP_NUM_ZERO : JP_NUM_INT;
                return 0;
            }
            return -1;
        case JP_NUM_ZERO:
        case JP_NUM_INT:
            if (c >= '0' && c <= '9' && j->st == JP_NUM_INT) {
                return 0;
            }
            if (c == '.') {
                j->st = JP_NUM_DOT;
                return 0;
            }
            if (c == 'e' || c == 'E') {
                j->st = JP_NUM_E;
                return 0;
            }
            j->st = JP_AFTER;
            continue;
        case JP_NUM_DOT:
            if (c >= '0' && c <= '9') {
                j->st = JP_NUM_FRAC;
                return 0;
            }
            return -1;
        case JP_NUM_FRAC:
            if (c >= '0' && c <= '9') {
                return 0;
            }
            if (c == 'e' || c == 'E') {
                j->st = JP_NUM_E;
                return 0;
            }
            j->st = JP_AFTER;
            continue;
        case JP_NUM_E:
            if (c == '+' || c == '-') {
                j->st = JP_NUM_ESIGN;
                return 0;
            }
            /* fall through */
        case JP_NUM_ESIGN:
            if (c >= '0' && c <= '9') {
                j->st = JP_NUM_EXP;
                return 0;
            }
            return -1;
        case JP_NUM_EXP:
            if (c >= '0' && c <= '9') {
                return 0;
            }
            j->st = JP_AFTER;
            continue;
        case JP_AFTER:
            if (jp_ws(c)) {
                return 0;
            }
            if (j->depth == 0) {
                return -1;
            }
            if (c == ',') {
                j->st = j->stack[j->depth - 1] == '{' ? JP_OBJ_KEY : JP_VALUE;
                return 0;
            }
            if (c == (j->stack[j->depth - 1] == '{' ? '}' : ']')) {
                j->depth--;
                return 0;
            }
            return -1;
        default:
            return -1;
        }
    }
}

int
glm_json_prefix_push(glm_json_prefix *j, const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n && !j->failed; i++) {
        if (jp_byte(j, (unsigned char) p[i]) != 0) {
            j->failed = 1;
        }
    }
    return j->failed ? -1 : 0;
}

int
glm_json_prefix_complete(const glm_json_prefix *j)
{
    return !j->failed && j->depth == 0 && j->kind != 0
           && (j->st == JP_AFTER || jp_num_end(j->st));
}
