/*
 * jinja_builtins.c: jinja2's filters and tests, the globals transformers'
 * environment has (range, dict, namespace, raise_exception, strftime_now),
 * the Python str/dict/list methods templates call, and Python's operators
 * (+ - * / // % ** and `in`), each with the semantics of the Python
 * function it stands for: same results, and an error wherever Python raises.
 * The string work underneath them (case mapping, split, replace, padding,
 * % and str.format) is Python's str, in jinja_pystr.c; this file names,
 * binds and dispatches.
 */
#include "jinja_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- ids ----------------------------------------------------------------------------- */

enum {
    F_NONE = 0,
    F_ABS, F_ATTR, F_BATCH, F_CAPITALIZE, F_CENTER, F_COUNT, F_DEFAULT, F_DICTSORT,
    F_ESCAPE, F_FIRST, F_FLOAT, F_FORCEESCAPE, F_FORMAT, F_INDENT, F_INT, F_ITEMS, F_JOIN,
    F_LAST, F_LIST, F_LOWER, F_MAP, F_MAX, F_MIN, F_REJECT, F_REJECTATTR, F_REPLACE,
    F_REVERSE, F_ROUND, F_SAFE, F_SELECT, F_SELECTATTR, F_SORT, F_STRING, F_SUM, F_TITLE,
    F_TOJSON, F_TRIM, F_TRUNCATE, F_UNIQUE, F_UPPER, F_WORDCOUNT
};

/* A name and its id, for the filter and test tables (looked up by glm_jtable_id). */
typedef struct {
    const char *name;
    int id;
} glm_jnamed;

static const glm_jnamed glm_jfilters[] = {
    {"abs", F_ABS}, {"attr", F_ATTR}, {"batch", F_BATCH}, {"capitalize", F_CAPITALIZE},
    {"center", F_CENTER}, {"count", F_COUNT}, {"d", F_DEFAULT}, {"default", F_DEFAULT},
    {"dictsort", F_DICTSORT}, {"e", F_ESCAPE}, {"escape", F_ESCAPE}, {"first", F_FIRST},
    {"float", F_FLOAT}, {"forceescape", F_FORCEESCAPE}, {"format", F_FORMAT},
    {"indent", F_INDENT}, {"int", F_INT}, {"items", F_ITEMS}, {"join", F_JOIN},
    {"last", F_LAST}, {"length", F_COUNT}, {"list", F_LIST}, {"lower", F_LOWER},
    {"map", F_MAP}, {"max", F_MAX}, {"min", F_MIN}, {"reject", F_REJECT},
    {"rejectattr", F_REJECTATTR}, {"replace", F_REPLACE}, {"reverse", F_REVERSE},
    {"round", F_ROUND}, {"safe", F_SAFE}, {"select", F_SELECT}, {"selectattr", F_SELECTATTR},
    {"sort", F_SORT}, {"string", F_STRING}, {"sum", F_SUM}, {"title", F_TITLE},
    {"tojson", F_TOJSON}, {"trim", F_TRIM}, {"truncate", F_TRUNCATE}, {"unique", F_UNIQUE},
    {"upper", F_UPPER}, {"wordcount", F_WORDCOUNT},
    /* jinja2 builtins this interpreter refuses at parse time */
    {"filesizeformat", -1}, {"groupby", -1}, {"pprint", -1}, {"random", -1}, {"slice", -1},
    {"striptags", -1}, {"urlencode", -1}, {"urlize", -1}, {"wordwrap", -1}, {"xmlattr", -1},
};

enum {
    T_NONE_ = 0,
    T_BOOLEAN, T_CALLABLE, T_DEFINED, T_DIVISIBLEBY, T_EQ, T_ESCAPED, T_EVEN, T_FALSE,
    T_FILTER, T_FLOAT, T_GE, T_GT, T_IN, T_INTEGER, T_ITERABLE, T_LE, T_LOWER, T_LT,
    T_MAPPING, T_NE, T_NONE, T_NUMBER, T_ODD, T_SAMEAS, T_SEQUENCE, T_STRING, T_TEST,
    T_TRUE, T_UNDEFINED, T_UPPER
};

static const glm_jnamed glm_jtests[] = {
    {"boolean", T_BOOLEAN}, {"callable", T_CALLABLE}, {"defined", T_DEFINED},
    {"divisibleby", T_DIVISIBLEBY}, {"eq", T_EQ}, {"equalto", T_EQ}, {"==", T_EQ},
    {"escaped", T_ESCAPED}, {"even", T_EVEN}, {"false", T_FALSE}, {"filter", T_FILTER},
    {"float", T_FLOAT}, {"ge", T_GE}, {">=", T_GE}, {"gt", T_GT}, {"greaterthan", T_GT},
    {">", T_GT}, {"in", T_IN}, {"integer", T_INTEGER}, {"iterable", T_ITERABLE},
    {"le", T_LE}, {"<=", T_LE}, {"lower", T_LOWER}, {"lt", T_LT}, {"lessthan", T_LT},
    {"<", T_LT}, {"mapping", T_MAPPING}, {"ne", T_NE}, {"!=", T_NE}, {"none", T_NONE},
    {"number", T_NUMBER}, {"odd", T_ODD}, {"sameas", T_SAMEAS}, {"sequence", T_SEQUENCE},
    {"string", T_STRING}, {"test", T_TEST}, {"true", T_TRUE}, {"undefined", T_UNDEFINED},
    {"upper", T_UPPER},
};

/* methods: FUNC ids from GLM_JF_METHOD_BASE */
enum {
    M_STRIP = GLM_JF_METHOD_BASE, M_LSTRIP, M_RSTRIP, M_SPLIT, M_RSPLIT, M_SPLITLINES,
    M_STARTSWITH, M_ENDSWITH, M_REPLACE, M_UPPER, M_LOWER, M_TITLE, M_CAPITALIZE,
    M_SWAPCASE, M_CASEFOLD, M_FIND, M_RFIND, M_INDEX, M_RINDEX, M_COUNT, M_JOIN, M_FORMAT,
    M_ISDIGIT, M_ISALPHA, M_ISALNUM, M_ISSPACE, M_ISLOWER, M_ISUPPER, M_ISNUMERIC,
    M_ISDECIMAL, M_ZFILL, M_CENTER, M_LJUST, M_RJUST, M_PARTITION, M_RPARTITION,
    M_REMOVEPREFIX, M_REMOVESUFFIX,
    M_GET, M_ITEMS, M_KEYS, M_VALUES, M_COPY,
    M_LIST_INDEX, M_LIST_COUNT,
    M_LOOP_CYCLE, M_LOOP_CHANGED
};

typedef struct {
    const char *name;
    int id;         /* 0: exists in Python but unsafe in the sandbox */
} glm_jmethod;

static const glm_jmethod glm_jstr_methods[] = {
    {"strip", M_STRIP}, {"lstrip", M_LSTRIP}, {"rstrip", M_RSTRIP}, {"split", M_SPLIT},
    {"rsplit", M_RSPLIT}, {"splitlines", M_SPLITLINES}, {"startswith", M_STARTSWITH},
    {"endswith", M_ENDSWITH}, {"replace", M_REPLACE}, {"upper", M_UPPER}, {"lower", M_LOWER},
    {"title", M_TITLE}, {"capitalize", M_CAPITALIZE}, {"swapcase", M_SWAPCASE},
    {"casefold", M_CASEFOLD}, {"find", M_FIND}, {"rfind", M_RFIND}, {"index", M_INDEX},
    {"rindex", M_RINDEX}, {"count", M_COUNT}, {"join", M_JOIN}, {"format", M_FORMAT},
    {"isdigit", M_ISDIGIT}, {"isalpha", M_ISALPHA}, {"isalnum", M_ISALNUM},
    {"isspace", M_ISSPACE}, {"islower", M_ISLOWER}, {"isupper", M_ISUPPER},
    {"isnumeric", M_ISNUMERIC}, {"isdecimal", M_ISDECIMAL}, {"zfill", M_ZFILL},
    {"center", M_CENTER}, {"ljust", M_LJUST}, {"rjust", M_RJUST}, {"partition", M_PARTITION},
    {"rpartition", M_RPARTITION}, {"removeprefix", M_REMOVEPREFIX},
    {"removesuffix", M_REMOVESUFFIX}, {"format_map", 0}, {"encode", 0},
};

static const glm_jmethod glm_jdict_methods[] = {
    {"get", M_GET}, {"items", M_ITEMS}, {"keys", M_KEYS}, {"values", M_VALUES},
    {"copy", M_COPY}, {"pop", 0}, {"popitem", 0}, {"setdefault", 0}, {"update", 0},
    {"clear", 0}, {"fromkeys", 0},
};

static const glm_jmethod glm_jlist_methods[] = {
    {"index", M_LIST_INDEX}, {"count", M_LIST_COUNT}, {"copy", M_COPY}, {"append", 0},
    {"extend", 0}, {"insert", 0}, {"pop", 0}, {"remove", 0}, {"reverse", 0}, {"sort", 0},
    {"clear", 0},
};

static const glm_jmethod glm_jloop_methods[] = {
    {"cycle", M_LOOP_CYCLE}, {"changed", M_LOOP_CHANGED},
};

static int
glm_jname_is(const char *a, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(a, lit, n) == 0;
}

/* The id of name in tab, 0 when it is not there. */
static int
glm_jtable_id(const glm_jnamed *tab, size_t count, const char *name, size_t n)
{
    size_t i;

    for (i = 0; i < count; i++) {
        if (glm_jname_is(name, n, tab[i].name)) {
            return tab[i].id;
        }
    }
    return 0;
}

int
glm_jfilter_id(const char *name, size_t n)
{
    return glm_jtable_id(glm_jfilters, sizeof(glm_jfilters) / sizeof(glm_jfilters[0]), name, n);
}

int
glm_jtest_id(const char *name, size_t n)
{
    return glm_jtable_id(glm_jtests, sizeof(glm_jtests) / sizeof(glm_jtests[0]), name, n);
}

int
glm_jglobal_id(const char *name, size_t n)
{
    if (glm_jname_is(name, n, "range")) {
        return GLM_JF_RANGE;
    }
    if (glm_jname_is(name, n, "dict")) {
        return GLM_JF_DICT;
    }
    if (glm_jname_is(name, n, "namespace")) {
        return GLM_JF_NAMESPACE;
    }
    if (glm_jname_is(name, n, "raise_exception")) {
        return GLM_JF_RAISE_EXCEPTION;
    }
    if (glm_jname_is(name, n, "strftime_now")) {
        return GLM_JF_STRFTIME_NOW;
    }
    if (glm_jname_is(name, n, "cycler") || glm_jname_is(name, n, "joiner")
        || glm_jname_is(name, n, "lipsum")) {
        return -1;
    }
    return 0;
}

static const glm_jmethod *
glm_jmethod_table(int kind, size_t *count)
{
    switch (kind) {
    case GLM_JM_STR:
        *count = sizeof(glm_jstr_methods) / sizeof(glm_jstr_methods[0]);
        return glm_jstr_methods;
    case GLM_JM_DICT:
        *count = sizeof(glm_jdict_methods) / sizeof(glm_jdict_methods[0]);
        return glm_jdict_methods;
    case GLM_JM_LIST:
        *count = sizeof(glm_jlist_methods) / sizeof(glm_jlist_methods[0]);
        return glm_jlist_methods;
    default:
        *count = sizeof(glm_jloop_methods) / sizeof(glm_jloop_methods[0]);
        return glm_jloop_methods;
    }
}

void
glm_jmethod_ids(const char *name, size_t n, uint16_t mid[GLM_JM_KINDS])
{
    int k;

    for (k = 0; k < GLM_JM_KINDS; k++) {
        size_t count, i;
        const glm_jmethod *tab = glm_jmethod_table(k, &count);

        mid[k] = 0;
        for (i = 0; i < count; i++) {
            if (glm_jname_is(name, n, tab[i].name)) {
                mid[k] = tab[i].id == 0 ? GLM_JM_UNSAFE : (uint16_t) tab[i].id;
                break;
            }
        }
    }
}

int
glm_jmethod_id(glm_jinja_value obj, const char *name, size_t n, const uint16_t *mid)
{
    uint16_t local[GLM_JM_KINDS];
    int k, id;

    switch (obj.kind) {
    case GLM_JINJA_STR: k = GLM_JM_STR; break;
    case GLM_JINJA_DICT: k = GLM_JM_DICT; break;
    case GLM_JINJA_LIST: k = GLM_JM_LIST; break;
    case GLM_JINJA_LOOP: k = GLM_JM_LOOP; break;
    default: return 0;
    }
    if (mid == NULL) {
        glm_jmethod_ids(name, n, local);
        mid = local;
    }
    id = mid[k];
    if (k == GLM_JM_LIST) {
        /* generators have no methods; tuples only index() and count() */
        if (obj.flags & GLM_JINJA_F_ITER) {
            return 0;
        }
        if ((obj.flags & GLM_JINJA_F_TUPLE) && id != M_LIST_INDEX && id != M_LIST_COUNT) {
            return 0;
        }
    }
    return id;
}

glm_jinja_value
glm_jmethod_bind(glm_jrender *r, glm_jinja_value obj, int id, const char *name, size_t n)
{
    glm_jinja_value m;
    glm_jbound *b;

    if (id == GLM_JM_UNSAFE) {
        return glm_jv_undef(name, n, GLM_JU_UNSAFE);
    }
    b = glm_jalloc(r, sizeof(*b));
    b->self = obj;
    memset(&m, 0, sizeof(m));
    m.kind = GLM_JINJA_FUNC;
    m.sub = (uint16_t) id;
    m.u.p = b;
    return m;
}

int
glm_jmethod_lookup(glm_jinja_value obj, const char *name, size_t n, glm_jinja_value *out,
                   glm_jrender *r)
{
    int id = glm_jmethod_id(obj, name, n, NULL);

    if (id == 0) {
        return 0;
    }
    *out = glm_jmethod_bind(r, obj, id, name, n);
    return 1;
}


/* ---- arguments ------------------------------------------------------------------------------ */

/*
 * Binds a call's arguments to parameter names as Python does: positionals
 * first, then keywords by name; an unknown keyword, a repeated argument or
 * too many positionals is a TypeError.  Missing ones are left as
 * GLM_JINJA_KIND_COUNT (use glm_jhave()).
 */
static void
glm_jbind(glm_jrender *r, const char *fname, glm_jcall_args *a, const char *const *names,
          int nnames, int nrequired, glm_jinja_value *out)
{
    int i;
    uint32_t k;

    if (a->npos > (uint32_t) nnames) {
        glm_jfail(r, "TypeError: %s() takes at most %d argument(s) (%u given)", fname, nnames,
                  a->npos);
    }
    for (i = 0; i < nnames; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        out[i].kind = GLM_JINJA_KIND_COUNT;
        if ((uint32_t) i < a->npos) {
            out[i] = a->pos[i];
        }
    }
    for (k = 0; k < a->nkw; k++) {
        for (i = 0; i < nnames; i++) {
            if (glm_jname_is(a->kwname[k].u.s, a->kwname[k].n, names[i])) {
                break;
            }
        }
        if (i == nnames) {
            glm_jfail(r, "TypeError: %s() got an unexpected keyword argument '%.*s'", fname,
                      (int) a->kwname[k].n, a->kwname[k].u.s);
        }
        if (out[i].kind != GLM_JINJA_KIND_COUNT) {
            glm_jfail(r, "TypeError: %s() got multiple values for argument '%s'", fname,
                      names[i]);
        }
        out[i] = a->kwval[k];
    }
    for (i = 0; i < nrequired; i++) {
        if (out[i].kind == GLM_JINJA_KIND_COUNT) {
            glm_jfail(r, "TypeError: %s() missing required argument '%s'", fname, names[i]);
        }
    }
}

static int
glm_jhave(const glm_jinja_value *v)
{
    return v->kind != GLM_JINJA_KIND_COUNT;
}

static int64_t
glm_jarg_int(glm_jrender *r, glm_jinja_value v, const char *what)
{
    if (v.kind == GLM_JINJA_INT || v.kind == GLM_JINJA_BOOL) {
        return v.u.i;
    }
    if (v.kind == GLM_JINJA_UNDEFINED) {
        glm_jfail_undefined(r, v);
    }
    glm_jfail(r, "TypeError: %s must be an integer, not '%s'", what, glm_jv_type_name(v));
}

static glm_jinja_value
glm_jarg_str(glm_jrender *r, glm_jinja_value v, const char *what)
{
    if (v.kind == GLM_JINJA_STR) {
        return v;
    }
    if (v.kind == GLM_JINJA_UNDEFINED) {
        glm_jfail_undefined(r, v);
    }
    glm_jfail(r, "TypeError: %s must be str, not %s", what, glm_jv_type_name(v));
}

static glm_jinja_value
glm_jiter_value(glm_jrender *r, glm_jinja_list *l)
{
    glm_jinja_value v;

    (void) r;
    memset(&v, 0, sizeof(v));
    v.kind = GLM_JINJA_LIST;
    v.flags = GLM_JINJA_F_ITER;
    v.u.list = l;
    return v;
}

/* map/select are generators in jinja2: over a non-iterable they fail only
 * when something iterates them (an `if` on one is simply true) */
static int
glm_jis_iterable(glm_jinja_value v)
{
    return v.kind == GLM_JINJA_LIST || v.kind == GLM_JINJA_DICT || v.kind == GLM_JINJA_STR
           || v.kind == GLM_JINJA_UNDEFINED || v.kind == GLM_JINJA_LOOP;
}

static glm_jinja_value
glm_jbroken_iter(glm_jrender *r, glm_jinja_value of)
{
    glm_jinja_value v = glm_jv_newlist(r, 0);

    v.flags = GLM_JINJA_F_ITER | GLM_JINJA_F_BROKEN;
    v.sub = of.kind;
    return v;
}

static glm_jinja_value
glm_jtuple2(glm_jrender *r, glm_jinja_value a, glm_jinja_value b)
{
    glm_jinja_value t = glm_jv_newlist(r, 2);

    t.flags = GLM_JINJA_F_TUPLE;
    t.u.list->v[0] = a;
    t.u.list->v[1] = b;
    t.u.list->n = 2;
    return t;
}



/* ---- operators ------------------------------------------------------------------------------------------ */

static _Noreturn void
glm_jop_type_error(glm_jrender *r, const char *op, glm_jinja_value a, glm_jinja_value b)
{
    if (a.kind == GLM_JINJA_UNDEFINED) {
        glm_jfail_undefined(r, a);
    }
    if (b.kind == GLM_JINJA_UNDEFINED) {
        glm_jfail_undefined(r, b);
    }
    if (op[0] == '+' && a.kind == GLM_JINJA_STR) {
        glm_jfail(r, "TypeError: can only concatenate str (not \"%s\") to str",
                  glm_jv_type_name(b));
    }
    if (op[0] == '+' && a.kind == GLM_JINJA_LIST && !(a.flags & GLM_JINJA_F_ITER)) {
        glm_jfail(r, "TypeError: can only concatenate %s (not \"%s\") to %s",
                  glm_jv_type_name(a), glm_jv_type_name(b), glm_jv_type_name(a));
    }
    glm_jfail(r, "TypeError: unsupported operand type(s) for %s: '%s' and '%s'", op,
              glm_jv_type_name(a), glm_jv_type_name(b));
}

static glm_jinja_value
glm_jrepeat(glm_jrender *r, glm_jinja_value seq, int64_t times)
{
    int64_t k;

    if (times < 0) {
        times = 0;
    }
    if ((seq.kind == GLM_JINJA_STR && seq.n == 0)
        || (seq.kind == GLM_JINJA_LIST && seq.u.list->n == 0)) {
        times = 0;      /* '' * 10**16 is '' at once, not 10**16 empty appends */
    }
    if (seq.kind == GLM_JINJA_STR) {
        glm_jbuf b = {0};

        if (seq.n > 0 && (uint64_t) times > r->c->limits.max_output / seq.n) {
            glm_jfail(r, "string repetition exceeds the output limit");
        }
        for (k = 0; k < times; k++) {
            glm_jbuf_put(r, &b, seq.u.s, seq.n);
        }
        glm_jbuf_put(r, &b, "", 0);
        return glm_jbuf_value(r, &b);
    }
    {
        uint64_t total = (uint64_t) seq.u.list->n * (uint64_t) times;
        glm_jinja_value out;
        uint32_t i;

        if (seq.u.list->n > 0 && (uint64_t) times > 10000000u / seq.u.list->n) {
            glm_jfail(r, "list repetition too large");
        }
        out = glm_jv_newlist(r, (uint32_t) total);
        out.flags = seq.flags & GLM_JINJA_F_TUPLE;
        for (k = 0; k < times; k++) {
            for (i = 0; i < seq.u.list->n; i++) {
                out.u.list->v[out.u.list->n++] = seq.u.list->v[i];
            }
        }
        return out;
    }
}

static double
glm_jfloor_div(double a, double b, double *mod_out)
{
    double mod = fmod(a, b), div = (a - mod) / b, fl;

    if (mod != 0.0) {
        if ((b < 0) != (mod < 0)) {
            mod += b;
            div -= 1.0;
        }
    } else {
        mod = copysign(0.0, b);
    }
    if (div != 0.0) {
        fl = floor(div);
        if (div - fl > 0.5) {
            fl += 1.0;
        }
    } else {
        fl = copysign(0.0, a / b);
    }
    if (mod_out != NULL) {
        *mod_out = mod;
    }
    return fl;
}

glm_jinja_value
glm_jbinop(glm_jrender *r, int op, glm_jinja_value a, glm_jinja_value b)
{
    static const char *const names[] = {"+", "-", "*", "/", "//", "%", "**"};
    int ints = (a.kind == GLM_JINJA_INT || a.kind == GLM_JINJA_BOOL)
               && (b.kind == GLM_JINJA_INT || b.kind == GLM_JINJA_BOOL);
    int nums = glm_jv_is_num(a) && glm_jv_is_num(b);
    double x = nums ? (a.kind == GLM_JINJA_FLOAT ? a.u.f : (double) a.u.i) : 0;
    double y = nums ? (b.kind == GLM_JINJA_FLOAT ? b.u.f : (double) b.u.i) : 0;
    int64_t res;

    switch (op) {
    case GLM_JOP_ADD:
        if (ints) {
            if (__builtin_add_overflow(a.u.i, b.u.i, &res)) {
                glm_jfail(r, "unsupported: integer overflow beyond 64 bits");
            }
            return glm_jvi(res);
        }
        if (nums) {
            return glm_jvf(x + y);
        }
        if (a.kind == GLM_JINJA_STR && b.kind == GLM_JINJA_STR) {
            glm_jbuf buf = {0};
            glm_jinja_value out;
            int safe = (a.flags | b.flags) & GLM_JINJA_F_SAFE;

            /* Markup + str escapes the str (markupsafe's __add__/__radd__) */
            if (safe && !(a.flags & GLM_JINJA_F_SAFE)) {
                a = glm_jescape(r, a);
            }
            if (safe && !(b.flags & GLM_JINJA_F_SAFE)) {
                b = glm_jescape(r, b);
            }
            glm_jbuf_put(r, &buf, a.u.s, a.n);
            glm_jbuf_put(r, &buf, b.u.s, b.n);
            out = glm_jbuf_value(r, &buf);
            out.flags = (uint8_t) safe;
            return out;
        }
        if (a.kind == GLM_JINJA_LIST && b.kind == GLM_JINJA_LIST
            && !((a.flags | b.flags) & GLM_JINJA_F_ITER)
            && (a.flags & GLM_JINJA_F_TUPLE) == (b.flags & GLM_JINJA_F_TUPLE)) {
            glm_jinja_value out = glm_jv_newlist(r, a.u.list->n + b.u.list->n);

            out.flags = a.flags & GLM_JINJA_F_TUPLE;
            if (a.u.list->n > 0) {
                memcpy(out.u.list->v, a.u.list->v, a.u.list->n * sizeof(glm_jinja_value));
            }
            if (b.u.list->n > 0) {
                memcpy(out.u.list->v + a.u.list->n, b.u.list->v,
                       b.u.list->n * sizeof(glm_jinja_value));
            }
            out.u.list->n = a.u.list->n + b.u.list->n;
            return out;
        }
        break;
    case GLM_JOP_SUB:
        if (ints) {
            if (__builtin_sub_overflow(a.u.i, b.u.i, &res)) {
                glm_jfail(r, "unsupported: integer overflow beyond 64 bits");
            }
            return glm_jvi(res);
        }
        if (nums) {
            return glm_jvf(x - y);
        }
        break;
    case GLM_JOP_MUL:
        if (ints) {
            if (__builtin_mul_overflow(a.u.i, b.u.i, &res)) {
                glm_jfail(r, "unsupported: integer overflow beyond 64 bits");
            }
            return glm_jvi(res);
        }
        if (nums) {
            return glm_jvf(x * y);
        }
        if ((a.kind == GLM_JINJA_STR || (a.kind == GLM_JINJA_LIST && !(a.flags & GLM_JINJA_F_ITER)))
            && (b.kind == GLM_JINJA_INT || b.kind == GLM_JINJA_BOOL)) {
            return glm_jrepeat(r, a, b.u.i);
        }
        if ((b.kind == GLM_JINJA_STR || (b.kind == GLM_JINJA_LIST && !(b.flags & GLM_JINJA_F_ITER)))
            && (a.kind == GLM_JINJA_INT || a.kind == GLM_JINJA_BOOL)) {
            return glm_jrepeat(r, b, a.u.i);
        }
        break;
    case GLM_JOP_DIV:
        if (nums) {
            if (y == 0.0) {
                glm_jfail(r, "ZeroDivisionError: division by zero");
            }
            return glm_jvf(x / y);
        }
        break;
    case GLM_JOP_FLOORDIV:
    case GLM_JOP_MOD:
        if (ints) {
            int64_t q, m;

            if (b.u.i == 0) {
                glm_jfail(r, op == GLM_JOP_MOD ? "ZeroDivisionError: integer modulo by zero"
                                               : "ZeroDivisionError: integer division or modulo by zero");
            }
            if (a.u.i == INT64_MIN && b.u.i == -1) {
                glm_jfail(r, "unsupported: integer overflow beyond 64 bits");
            }
            q = a.u.i / b.u.i;
            m = a.u.i % b.u.i;
            if (m != 0 && ((m < 0) != (b.u.i < 0))) {
                q -= 1;
                m += b.u.i;
            }
            return glm_jvi(op == GLM_JOP_MOD ? m : q);
        }
        if (nums) {
            double mod, fl;

            if (y == 0.0) {
                glm_jfail(r, op == GLM_JOP_MOD ? "ZeroDivisionError: float modulo"
                                               : "ZeroDivisionError: float floor division by zero");
            }
            fl = glm_jfloor_div(x, y, &mod);
            return glm_jvf(op == GLM_JOP_MOD ? mod : fl);
        }
        if (op == GLM_JOP_MOD && a.kind == GLM_JINJA_STR) {
            return glm_jpercent(r, a, b);
        }
        break;
    case GLM_JOP_POW:
        if (ints && b.u.i >= 0) {
            int64_t base = a.u.i, e = b.u.i, acc = 1;

            while (e > 0) {
                if (e & 1) {
                    if (__builtin_mul_overflow(acc, base, &acc)) {
                        glm_jfail(r, "unsupported: integer overflow beyond 64 bits");
                    }
                }
                e >>= 1;
                if (e > 0 && __builtin_mul_overflow(base, base, &base)) {
                    glm_jfail(r, "unsupported: integer overflow beyond 64 bits");
                }
            }
            return glm_jvi(acc);
        }
        if (nums) {
            if (x == 0.0 && y < 0) {
                glm_jfail(r, "ZeroDivisionError: 0.0 cannot be raised to a negative power");
            }
            if (x < 0 && y != floor(y)) {
                glm_jfail(r, "unsupported: complex result of ** ");
            }
            return glm_jvf(pow(x, y));
        }
        break;
    default:
        break;
    }
    glm_jop_type_error(r, names[op], a, b);
}

int
glm_jcontains(glm_jrender *r, glm_jinja_value c, glm_jinja_value item)
{
    uint32_t i;

    switch (c.kind) {
    case GLM_JINJA_STR:
        if (item.kind != GLM_JINJA_STR) {
            if (item.kind == GLM_JINJA_UNDEFINED) {
                glm_jfail_undefined(r, item);
            }
            glm_jfail(r, "TypeError: 'in <string>' requires string as left operand, not %s",
                      glm_jv_type_name(item));
        }
        return glm_jmemmem(c.u.s, c.n, item.u.s, item.n) != NULL;
    case GLM_JINJA_LIST:
        if (c.flags & GLM_JINJA_F_BROKEN) {
            glm_jiter(r, c);
        }
        for (i = 0; i < c.u.list->n; i++) {
            glm_jstep(r);
            if (glm_jv_eq(r, c.u.list->v[i], item)) {
                return 1;
            }
        }
        return 0;
    case GLM_JINJA_DICT:
        if (!glm_jv_hashable(item)) {
            glm_jfail(r, "TypeError: unhashable type: '%s'", glm_jv_type_name(item));
        }
        return glm_jv_dict_find(c.u.dict, item) != NULL;
    case GLM_JINJA_UNDEFINED:
        return 0;
    case GLM_JINJA_LOOP: {
        glm_jloop *l = c.u.p;

        for (i = 0; i < l->items->n; i++) {
            if (glm_jv_eq(r, l->items->v[i], item)) {
                return 1;
            }
        }
        return 0;
    }
    default:
        glm_jfail(r, "TypeError: argument of type '%s' is not iterable", glm_jv_type_name(c));
    }
}


/* ---- sorting --------------------------------------------------------------------------------------------- */

typedef struct {
    glm_jinja_value key;
    glm_jinja_value item;
} glm_jsort_item;

/* Stable merge sort (Python's sorted is stable). */
static void
glm_jmerge_sort(glm_jrender *r, glm_jsort_item *v, glm_jsort_item *tmp, size_t n, int reverse)
{
    size_t mid, i, j, k;

    if (n < 2) {
        return;
    }
    mid = n / 2;
    glm_jmerge_sort(r, v, tmp, mid, reverse);
    glm_jmerge_sort(r, v + mid, tmp, n - mid, reverse);
    for (i = 0, j = mid, k = 0; i < mid && j < n;) {
        int c = glm_jv_cmp(r, v[j].key, v[i].key);

        glm_jstep(r);
        /* take the right one only when strictly before (after, reversed) */
        if (reverse ? c > 0 : c < 0) {
            tmp[k++] = v[j++];
        } else {
            tmp[k++] = v[i++];
        }
    }
    while (i < mid) {
        tmp[k++] = v[i++];
    }
    while (j < n) {
        tmp[k++] = v[j++];
    }
    memcpy(v, tmp, n * sizeof(*v));
}

/* jinja2's ignore_case: lower() for strings */
static glm_jinja_value
glm_jfold(glm_jrender *r, glm_jinja_value v, int case_sensitive)
{
    if (!case_sensitive && v.kind == GLM_JINJA_STR) {
        return glm_jcase(r, v, GLM_JCASE_LOWER);
    }
    return v;
}

/* jinja2's make_attrgetter: "a.b.0" -> getitem chain (ints for digits) */
static glm_jinja_value
glm_jattr_path(glm_jrender *r, glm_jinja_value item, glm_jinja_value path)
{
    size_t i = 0;

    if (path.kind == GLM_JINJA_INT) {
        return glm_jgetitem(r, item, path);
    }
    if (path.kind != GLM_JINJA_STR) {
        return glm_jgetitem(r, item, path);
    }
    while (i <= path.n) {
        size_t j = i;
        int digits = 1;

        while (j < path.n && path.u.s[j] != '.') {
            digits &= glm_jis_digit((unsigned char) path.u.s[j]);
            j++;
        }
        if (digits && j > i && j - i < 18) {
            item = glm_jgetitem(r, item, glm_jvi(strtoll(path.u.s + i, NULL, 10)));
        } else {
            item = glm_jgetitem(r, item, glm_jv_str(path.u.s + i, j - i));
        }
        i = j + 1;
    }
    return item;
}

static glm_jinja_value
glm_jsorted(glm_jrender *r, glm_jinja_list *l, int reverse, int case_sensitive,
            const glm_jinja_value *attribute)
{
    glm_jsort_item *v = glm_jalloc(r, (l->n + 1) * sizeof(*v));
    glm_jsort_item *tmp = glm_jalloc(r, (l->n + 1) * sizeof(*tmp));
    glm_jinja_value out = glm_jv_newlist(r, l->n);
    uint32_t i;

    for (i = 0; i < l->n; i++) {
        glm_jinja_value k = attribute != NULL ? glm_jattr_path(r, l->v[i], *attribute) : l->v[i];

        v[i].key = glm_jfold(r, k, case_sensitive);
        v[i].item = l->v[i];
    }
    glm_jmerge_sort(r, v, tmp, l->n, reverse);
    for (i = 0; i < l->n; i++) {
        out.u.list->v[i] = v[i].item;
    }
    out.u.list->n = l->n;
    return out;
}


/* ---- tests ---------------------------------------------------------------------------------------------------- */

static int glm_jtest_num(glm_jrender *r, int id, glm_jinja_value v, glm_jcall_args *a);

int
glm_jtest_call(glm_jrender *r, int id, const char *name, glm_jinja_value v, glm_jcall_args *a)
{
    static const char *const one[] = {"other"};
    glm_jinja_value arg[1];

    switch (id) {
    case T_DEFINED: case T_UNDEFINED: case T_NONE: case T_STRING: case T_MAPPING:
    case T_NUMBER: case T_INTEGER: case T_FLOAT: case T_BOOLEAN: case T_TRUE: case T_FALSE:
    case T_ESCAPED: case T_CALLABLE: case T_ITERABLE: case T_SEQUENCE: case T_LOWER:
    case T_UPPER:
        if (a->npos > 0 || a->nkw > 0) {
            glm_jfail(r, "TypeError: test_%s() takes 1 positional argument but %u were given",
                      name, 1 + a->npos + a->nkw);
        }
        break;
    default:
        break;
    }
    switch (id) {
    case T_DEFINED: return v.kind != GLM_JINJA_UNDEFINED;
    case T_UNDEFINED: return v.kind == GLM_JINJA_UNDEFINED;
    case T_NONE: return v.kind == GLM_JINJA_NONE;
    case T_STRING: return v.kind == GLM_JINJA_STR;
    case T_MAPPING: return v.kind == GLM_JINJA_DICT;
    case T_NUMBER: return glm_jv_is_num(v) || v.kind == GLM_JINJA_BIGINT;
    case T_INTEGER: return v.kind == GLM_JINJA_INT || v.kind == GLM_JINJA_BIGINT;
    case T_FLOAT: return v.kind == GLM_JINJA_FLOAT;
    case T_BOOLEAN: return v.kind == GLM_JINJA_BOOL;
    case T_TRUE: return v.kind == GLM_JINJA_BOOL && v.u.i;
    case T_FALSE: return v.kind == GLM_JINJA_BOOL && !v.u.i;
    case T_ESCAPED: return v.kind == GLM_JINJA_STR && (v.flags & GLM_JINJA_F_SAFE);
    case T_CALLABLE:
        /* Undefined and LoopContext define __call__ */
        return v.kind == GLM_JINJA_MACRO || v.kind == GLM_JINJA_FUNC
               || v.kind == GLM_JINJA_UNDEFINED || v.kind == GLM_JINJA_LOOP;
    case T_ITERABLE:
        return v.kind == GLM_JINJA_STR || v.kind == GLM_JINJA_LIST || v.kind == GLM_JINJA_DICT
               || v.kind == GLM_JINJA_UNDEFINED || v.kind == GLM_JINJA_LOOP;
    case T_SEQUENCE:
        /* len() and __getitem__: Undefined has both */
        return v.kind == GLM_JINJA_STR || v.kind == GLM_JINJA_DICT
               || v.kind == GLM_JINJA_UNDEFINED
               || (v.kind == GLM_JINJA_LIST && !(v.flags & GLM_JINJA_F_ITER));
    case T_LOWER:
    case T_UPPER: {
        glm_jinja_value s = glm_jv_to_str(r, v);
        size_t i, adv;
        int cased = 0;

        for (i = 0; i < s.n; i += adv) {
            uint32_t cp = glm_ju8_decode(s.u.s + i, s.n - i, &adv);

            if (id == T_LOWER ? glm_jupper_cp(r, cp) != cp && glm_jlower_cp(r, cp) == cp
                              : glm_jlower_cp(r, cp) != cp && glm_jupper_cp(r, cp) == cp) {
                cased = 1;
            } else if (glm_jis_cased(r, cp)) {
                return 0;
            }
        }
        return cased;
    }
    case T_DIVISIBLEBY:
    case T_ODD:
    case T_EVEN:
        return glm_jtest_num(r, id, v, a);
    default:
        break;
    }
    glm_jbind(r, name, a, one, 1, 1, arg);
    switch (id) {
    case T_EQ: return glm_jv_eq(r, v, arg[0]);
    case T_NE: return !glm_jv_eq(r, v, arg[0]);
    case T_LT: return glm_jv_cmp(r, v, arg[0]) < 0;
    case T_LE: return glm_jv_cmp(r, v, arg[0]) <= 0;
    case T_GT: return glm_jv_cmp(r, v, arg[0]) > 0;
    case T_GE: return glm_jv_cmp(r, v, arg[0]) >= 0;
    case T_IN: return glm_jcontains(r, arg[0], v);
    case T_SAMEAS:
        if (v.kind != arg[0].kind) {
            return 0;
        }
        switch (v.kind) {
        case GLM_JINJA_NONE: return 1;
        case GLM_JINJA_BOOL: return v.u.i == arg[0].u.i;
        case GLM_JINJA_INT: return v.u.i == arg[0].u.i && v.u.i >= -5 && v.u.i <= 256;
        case GLM_JINJA_STR: return v.u.s == arg[0].u.s && v.n == arg[0].n;
        case GLM_JINJA_FLOAT: return 0;
        default: return v.u.p == arg[0].u.p;
        }
    case T_FILTER:
    case T_TEST:
        if (arg[0].kind != GLM_JINJA_STR) {
            return 0;
        }
        return (id == T_FILTER ? glm_jfilter_id(arg[0].u.s, arg[0].n)
                               : glm_jtest_id(arg[0].u.s, arg[0].n)) > 0;
    default:
        glm_jfail(r, "internal error: test %d", id);
    }
}

/* odd/even/divisibleby take no or one argument: handled apart from glm_jbind */
static int
glm_jtest_num(glm_jrender *r, int id, glm_jinja_value v, glm_jcall_args *a)
{
    glm_jinja_value m = glm_jvi(id == T_DIVISIBLEBY ? 0 : 2);

    if (id == T_DIVISIBLEBY) {
        static const char *const names[] = {"num"};
        glm_jinja_value arg[1];

        glm_jbind(r, "divisibleby", a, names, 1, 1, arg);
        m = arg[0];
    } else if (a->npos > 0 || a->nkw > 0) {
        glm_jfail(r, "TypeError: %s() takes 1 positional argument", id == T_ODD ? "odd" : "even");
    }
    m = glm_jbinop(r, GLM_JOP_MOD, v, m);
    if (id == T_ODD) {
        return glm_jv_eq(r, m, glm_jvi(1));
    }
    return glm_jv_eq(r, m, glm_jvi(0));
}


/* ---- filters -------------------------------------------------------------------------------------------------- */

static glm_jinja_value
glm_jlist_of(glm_jrender *r, glm_jinja_value v)
{
    glm_jinja_list *l = glm_jiter(r, v);
    glm_jinja_value out;

    if (v.kind == GLM_JINJA_LIST && !(v.flags & GLM_JINJA_F_TUPLE)
        && !(v.flags & GLM_JINJA_F_ITER)) {
        /* list(x) is a copy; values are immutable, so sharing the items is fine */
        out = glm_jv_newlist(r, l->n);
        if (l->n > 0) {
            memcpy(out.u.list->v, l->v, l->n * sizeof(*l->v));
        }
        out.u.list->n = l->n;
        return out;
    }
    out = glm_jv_newlist(r, 0);
    out.u.list = l;
    return out;
}

static glm_jinja_value
glm_jtojson(glm_jrender *r, glm_jinja_value v, glm_jcall_args *a)
{
    static const char *const names[] = {"ensure_ascii", "indent", "separators", "sort_keys"};
    glm_jinja_value arg[4];
    glm_jbuf b = {0};
    const char *indent = NULL, *isep = NULL, *ksep = NULL;
    size_t indent_n = 0;
    int ensure_ascii = 0, sort_keys = 0;
    char spaces[257];

    glm_jbind(r, "tojson", a, names, 4, 0, arg);
    if (glm_jhave(&arg[0])) {
        ensure_ascii = glm_jv_truthy(arg[0]);
    }
    if (glm_jhave(&arg[1]) && arg[1].kind != GLM_JINJA_NONE) {
        if (arg[1].kind == GLM_JINJA_STR) {
            indent = arg[1].u.s;
            indent_n = arg[1].n;
        } else if (arg[1].kind == GLM_JINJA_INT || arg[1].kind == GLM_JINJA_BOOL) {
            int64_t k, w = arg[1].u.i;

            if (w > 256) {
                glm_jfail(r, "unsupported: tojson indent above 256");
            }
            for (k = 0; k < w; k++) {
                spaces[k] = ' ';
            }
            indent = spaces;
            indent_n = w > 0 ? (size_t) w : 0;
        } else {
            glm_jfail(r, "TypeError: tojson indent must be an int or a str");
        }
    }
    if (glm_jhave(&arg[2]) && arg[2].kind != GLM_JINJA_NONE) {
        glm_jinja_list *l;

        if (arg[2].kind != GLM_JINJA_LIST || arg[2].u.list->n != 2) {
            glm_jfail(r, "ValueError: tojson separators must be a pair of strings");
        }
        l = arg[2].u.list;
        isep = glm_jv_newstr(r, glm_jarg_str(r, l->v[0], "separator").u.s, l->v[0].n).u.s;
        ksep = glm_jv_newstr(r, glm_jarg_str(r, l->v[1], "separator").u.s, l->v[1].n).u.s;
    }
    if (glm_jhave(&arg[3])) {
        sort_keys = glm_jv_truthy(arg[3]);
    }
    glm_jv_write_json(r, &b, v, ensure_ascii, indent, indent_n, isep, ksep, sort_keys, 0, 0);
    glm_jbuf_put(r, &b, "", 0);
    return glm_jbuf_value(r, &b);
}

static glm_jinja_value
glm_jindent(glm_jrender *r, glm_jinja_value v, glm_jcall_args *a)
{
    static const char *const names[] = {"width", "first", "blank"};
    glm_jinja_value arg[3], s, ind;
    glm_jbuf b = {0};
    int first = 0, blank = 0;
    size_t i = 0;
    int line = 0;

    glm_jbind(r, "indent", a, names, 3, 0, arg);
    /* jinja2 does `s += "\n"; s.splitlines()`: only a str survives that */
    if (v.kind == GLM_JINJA_UNDEFINED) {
        glm_jfail_undefined(r, v);
    }
    if (v.kind != GLM_JINJA_STR) {
        glm_jfail(r, "TypeError: indent expects a string, got %s", glm_jv_type_name(v));
    }
    s = v;
    if (!glm_jhave(&arg[0])) {
        ind = glm_jv_str("    ", 4);
    } else if (arg[0].kind == GLM_JINJA_STR) {
        ind = arg[0];
    } else {
        int64_t w = glm_jarg_int(r, arg[0], "indent width"), k;
        glm_jbuf ib = {0};

        if (w > 4096) {
            glm_jfail(r, "unsupported: indent width above 4096");
        }
        for (k = 0; k < w; k++) {
            glm_jbuf_putc(r, &ib, ' ');
        }
        ind = glm_jbuf_value(r, &ib);
    }
    first = glm_jhave(&arg[1]) && glm_jv_truthy(arg[1]);
    blank = glm_jhave(&arg[2]) && glm_jv_truthy(arg[2]);
    /* s += "\n"; lines = s.splitlines(); join with "\n" + indent ... (jinja2 3.1) */
    {
        glm_jinja_value lines;
        glm_jbuf sb = {0};
        uint32_t k;

        glm_jbuf_put(r, &sb, s.u.s, s.n);
        glm_jbuf_putc(r, &sb, '\n');
        {
            glm_jinja_value withnl = glm_jbuf_value(r, &sb);
            glm_jcall_args none = {0};
            glm_jinja_value splitlines;

            glm_jmethod_lookup(withnl, "splitlines", 10, &splitlines, r);
            lines = glm_jfunc_call(r, splitlines, &none);
        }
        for (k = 0; k < lines.u.list->n; k++) {
            glm_jinja_value ln = lines.u.list->v[k];

            if (k > 0) {
                glm_jbuf_putc(r, &b, '\n');
            }
            if ((k == 0 && first) || (k > 0 && (blank || ln.n > 0))) {
                glm_jbuf_put(r, &b, ind.u.s, ind.n);
            }
            glm_jbuf_put(r, &b, ln.u.s, ln.n);
        }
        (void) i;
        (void) line;
    }
    glm_jbuf_put(r, &b, "", 0);
    return glm_jbuf_value(r, &b);
}

/* select/reject/selectattr/rejectattr: jinja2's select_or_reject */
static glm_jinja_value
glm_jselect(glm_jrender *r, glm_jinja_value v, glm_jcall_args *a, int lookup_attr, int want)
{
    glm_jinja_list *items;
    glm_jinja_value out = glm_jv_newlist(r, 0), attr;
    uint32_t i, off = 0;
    int test_id = 0;
    const char *test_name = NULL;
    glm_jcall_args targs;

    /* jinja2's select_or_reject does nothing at all for a falsy value
     * (None, Undefined, []): no iteration, no argument checks */
    if (!glm_jv_truthy(v)) {
        return glm_jiter_value(r, out.u.list);
    }
    if (!glm_jis_iterable(v)) {
        return glm_jbroken_iter(r, v);
    }
    items = glm_jiter(r, v);
    memset(&attr, 0, sizeof(attr));
    if (lookup_attr) {
        if (a->npos < 1) {
            glm_jfail(r, "TypeError: %s() missing the attribute argument",
                      want ? "selectattr" : "rejectattr");
        }
        attr = a->pos[0];
        off = 1;
    }
    if (a->npos > off) {
        glm_jinja_value tn = glm_jarg_str(r, a->pos[off], "test name");

        test_id = glm_jtest_id(tn.u.s, tn.n);
        test_name = glm_jv_newstr(r, tn.u.s, tn.n).u.s;
        if (test_id <= 0) {
            glm_jfail(r, "TemplateRuntimeError: No test named '%s'.", test_name);
        }
        off++;
    }
    targs.pos = a->pos + off;
    targs.npos = a->npos > off ? a->npos - off : 0;
    targs.kwname = a->kwname;
    targs.kwval = a->kwval;
    targs.nkw = a->nkw;
    for (i = 0; i < items->n; i++) {
        glm_jinja_value x = lookup_attr ? glm_jattr_path(r, items->v[i], attr) : items->v[i];
        int ok = test_id ? glm_jtest_call(r, test_id, test_name, x, &targs) : glm_jv_truthy(x);

        glm_jstep(r);
        if (ok == want) {
            glm_jv_push(r, out, items->v[i]);
        }
    }
    return glm_jiter_value(r, out.u.list);
}

static glm_jinja_value
glm_jmap(glm_jrender *r, glm_jinja_value v, glm_jcall_args *a)
{
    glm_jinja_list *items;
    glm_jinja_value out;
    uint32_t i, k;

    /* jinja2's map, like select, skips a falsy value entirely */
    if (!glm_jv_truthy(v)) {
        return glm_jiter_value(r, glm_jv_newlist(r, 0).u.list);
    }
    if (!glm_jis_iterable(v)) {
        return glm_jbroken_iter(r, v);
    }
    items = glm_jiter(r, v);
    out = glm_jv_newlist(r, items->n);

    if (a->npos == 0) {
        /* map(attribute=..., default=...) */
        glm_jinja_value attr, deflt;
        int have_attr = 0, have_default = 0;

        memset(&attr, 0, sizeof(attr));
        memset(&deflt, 0, sizeof(deflt));
        for (k = 0; k < a->nkw; k++) {
            if (glm_jname_is(a->kwname[k].u.s, a->kwname[k].n, "attribute")) {
                attr = a->kwval[k];
                have_attr = 1;
            } else if (glm_jname_is(a->kwname[k].u.s, a->kwname[k].n, "default")) {
                deflt = a->kwval[k];
                have_default = 1;
            } else {
                glm_jfail(r, "FilterArgumentError: Unexpected keyword argument '%.*s'",
                          (int) a->kwname[k].n, a->kwname[k].u.s);
            }
        }
        if (!have_attr) {
            glm_jfail(r, "FilterArgumentError: map requires a filter argument");
        }
        for (i = 0; i < items->n; i++) {
            glm_jinja_value x = glm_jattr_path(r, items->v[i], attr);

            if (have_default && x.kind == GLM_JINJA_UNDEFINED) {
                x = deflt;
            }
            out.u.list->v[out.u.list->n++] = x;
        }
    } else {
        glm_jinja_value fname = glm_jarg_str(r, a->pos[0], "filter name");
        int fid = glm_jfilter_id(fname.u.s, fname.n);
        glm_jcall_args fargs = *a;
        const char *fn = glm_jv_newstr(r, fname.u.s, fname.n).u.s;

        if (fid <= 0) {
            glm_jfail(r, "TemplateRuntimeError: No filter named '%s'.", fn);
        }
        fargs.pos = a->pos + 1;
        fargs.npos = a->npos - 1;
        for (i = 0; i < items->n; i++) {
            glm_jstep(r);
            out.u.list->v[out.u.list->n++] = glm_jfilter_call(r, fid, fn, items->v[i], &fargs);
        }
    }
    return glm_jiter_value(r, out.u.list);
}

static glm_jinja_value
glm_jminmax(glm_jrender *r, glm_jinja_value v, glm_jcall_args *a, int want_max)
{
    static const char *const names[] = {"case_sensitive", "attribute"};
    glm_jinja_value arg[2], best, bestkey;
    glm_jinja_list *items;
    uint32_t i;
    int cs;

    glm_jbind(r, want_max ? "max" : "min", a, names, 2, 0, arg);
    cs = glm_jhave(&arg[0]) && glm_jv_truthy(arg[0]);
    items = glm_jiter(r, v);
    if (items->n == 0) {
        return glm_jv_undef(want_max ? "No aggregated item, sequence was empty."
                                     : "No aggregated item, sequence was empty.", 39,
                            GLM_JU_NO_ITEM);
    }
    best = items->v[0];
    bestkey = glm_jfold(r, glm_jhave(&arg[1]) ? glm_jattr_path(r, best, arg[1]) : best, cs);
    for (i = 1; i < items->n; i++) {
        glm_jinja_value k = glm_jfold(r, glm_jhave(&arg[1]) ? glm_jattr_path(r, items->v[i], arg[1])
                                                             : items->v[i], cs);
        int c = glm_jv_cmp(r, k, bestkey);

        if (want_max ? c > 0 : c < 0) {
            best = items->v[i];
            bestkey = k;
        }
    }
    return best;
}

static glm_jinja_value
glm_jto_int(glm_jrender *r, glm_jinja_value v, glm_jinja_value deflt, int64_t base)
{
    if (v.kind == GLM_JINJA_INT) {
        return v;
    }
    if (v.kind == GLM_JINJA_BOOL) {
        return glm_jvi(v.u.i);
    }
    if (v.kind == GLM_JINJA_FLOAT) {
        if (isnan(v.u.f) || isinf(v.u.f) || fabs(v.u.f) >= 9.2e18) {
            return deflt;
        }
        return glm_jvi((int64_t) v.u.f);
    }
    if (v.kind == GLM_JINJA_STR) {
        /* int(s, base), else int(float(s)) (jinja2's do_int) */
        char buf[128], *end;
        glm_jinja_value t = glm_jstrip(v, NULL, 1, 1);
        size_t i, k = 0;
        long long iv;
        double d;

        if (t.n == 0 || t.n >= sizeof(buf)) {
            return deflt;
        }
        for (i = 0; i < t.n; i++) {
            if (t.u.s[i] != '_') {
                buf[k++] = t.u.s[i];
            }
        }
        buf[k] = '\0';
        errno = 0;
        iv = strtoll(buf, &end, (int) base);
        if (*end == '\0' && errno == 0) {
            return glm_jvi(iv);
        }
        errno = 0;
        d = strtod(buf, &end);
        if (*end == '\0' && errno == 0 && !isnan(d) && !isinf(d) && fabs(d) < 9.2e18) {
            return glm_jvi((int64_t) d);
        }
        return deflt;
    }
    return deflt;
}

static glm_jinja_value
glm_jto_float(glm_jrender *r, glm_jinja_value v, glm_jinja_value deflt)
{
    (void) r;
    if (v.kind == GLM_JINJA_FLOAT) {
        return v;
    }
    if (v.kind == GLM_JINJA_INT || v.kind == GLM_JINJA_BOOL) {
        return glm_jvf((double) v.u.i);
    }
    if (v.kind == GLM_JINJA_STR) {
        char buf[128], *end;
        glm_jinja_value t = glm_jstrip(v, NULL, 1, 1);
        double d;

        if (t.n == 0 || t.n >= sizeof(buf)) {
            return deflt;
        }
        memcpy(buf, t.u.s, t.n);
        buf[t.n] = '\0';
        d = strtod(buf, &end);
        if (*end == '\0') {
            return glm_jvf(d);
        }
    }
    return deflt;
}

glm_jinja_value
glm_jfilter_call(glm_jrender *r, int id, const char *name, glm_jinja_value v, glm_jcall_args *a)
{
    glm_jinja_value arg[6];
    glm_jinja_list *items;
    uint32_t i;

    glm_jstep(r);
    switch (id) {
    case F_TOJSON:
        return glm_jtojson(r, v, a);
    case F_SAFE:
        glm_jbind(r, name, a, NULL, 0, 0, arg);
        v = glm_jv_to_str(r, v);
        v.flags |= GLM_JINJA_F_SAFE;
        return v;
    case F_ESCAPE:
        glm_jbind(r, name, a, NULL, 0, 0, arg);
        return glm_jescape(r, v);
    case F_FORCEESCAPE:
        glm_jbind(r, name, a, NULL, 0, 0, arg);
        v = glm_jv_to_str(r, v);
        v.flags &= (uint8_t) ~GLM_JINJA_F_SAFE;
        return glm_jescape(r, v);
    case F_STRING:
        glm_jbind(r, name, a, NULL, 0, 0, arg);
        return glm_jv_to_str(r, v);
    case F_COUNT:
        glm_jbind(r, name, a, NULL, 0, 0, arg);
        switch (v.kind) {
        case GLM_JINJA_STR: return glm_jvi((int64_t) glm_ju8_len(v.u.s, v.n));
        case GLM_JINJA_LIST:
            if (v.flags & GLM_JINJA_F_ITER) {
                glm_jfail(r, "TypeError: object of type 'generator' has no len()");
            }
            return glm_jvi(v.u.list->n);
        case GLM_JINJA_DICT:
        case GLM_JINJA_NAMESPACE: return glm_jvi(v.u.dict->n);
        case GLM_JINJA_UNDEFINED: return glm_jvi(0);
        case GLM_JINJA_LOOP: return glm_jvi(((glm_jloop *) v.u.p)->length);
        default:
            glm_jfail(r, "TypeError: object of type '%s' has no len()", glm_jv_type_name(v));
        }
    case F_TRIM: {
        static const char *const names[] = {"chars"};

        glm_jbind(r, name, a, names, 1, 0, arg);
        v = glm_jv_to_str(r, v);
        if (glm_jhave(&arg[0]) && arg[0].kind != GLM_JINJA_NONE) {
            glm_jinja_value chars = glm_jarg_str(r, arg[0], "strip arg");

            return glm_jstrip(v, &chars, 1, 1);
        }
        return glm_jstrip(v, NULL, 1, 1);
    }
    case F_DEFAULT: {
        static const char *const names[] = {"default_value", "boolean"};

        glm_jbind(r, name, a, names, 2, 0, arg);
        if (v.kind == GLM_JINJA_UNDEFINED
            || (glm_jhave(&arg[1]) && glm_jv_truthy(arg[1]) && !glm_jv_truthy(v))) {
            return glm_jhave(&arg[0]) ? arg[0] : glm_jv_str("", 0);
        }
        return v;
    }
    case F_UPPER:
    case F_LOWER:
    case F_CAPITALIZE:
        glm_jbind(r, name, a, NULL, 0, 0, arg);
        return glm_jcase(r, glm_jv_to_str(r, v), id == F_UPPER ? GLM_JCASE_UPPER
                                                : id == F_LOWER ? GLM_JCASE_LOWER
                                                                : GLM_JCASE_CAPITALIZE);
    case F_TITLE: {
        /* jinja2: split on runs of [-\s({[<], then item[0].upper() + item[1:].lower() */
        glm_jinja_value s;
        glm_jbuf b = {0};
        size_t pos = 0, adv;

        glm_jbind(r, name, a, NULL, 0, 0, arg);
        s = glm_jv_to_str(r, v);
        while (pos < s.n) {
            size_t start = pos;
            int sep = -1;

            while (pos < s.n) {
                uint32_t cp = glm_ju8_decode(s.u.s + pos, s.n - pos, &adv);
                int is_sep = cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<'
                             || glm_jpy_isspace(cp);

                if (sep < 0) {
                    sep = is_sep;
                } else if (sep != is_sep) {
                    break;
                }
                pos += adv;
            }
            {
                glm_jinja_value item = glm_jv_str(s.u.s + start, pos - start);
                size_t a1;

                glm_ju8_decode(item.u.s, item.n, &a1);
                item = glm_jcase(r, glm_jv_str(item.u.s, a1), GLM_JCASE_UPPER);
                glm_jbuf_put(r, &b, item.u.s, item.n);
                item = glm_jcase(r, glm_jv_str(s.u.s + start + a1, pos - start - a1),
                                 GLM_JCASE_LOWER);
                glm_jbuf_put(r, &b, item.u.s, item.n);
            }
        }
        glm_jbuf_put(r, &b, "", 0);
        return glm_jbuf_value(r, &b);
    }
    case F_REPLACE: {
        static const char *const names[] = {"old", "new", "count"};
        glm_jinja_value s;

        glm_jbind(r, name, a, names, 3, 2, arg);
        s = glm_jv_to_str(r, v);
        return glm_jreplace(r, s, glm_jv_to_str(r, arg[0]), glm_jv_to_str(r, arg[1]),
                            glm_jhave(&arg[2]) && arg[2].kind != GLM_JINJA_NONE
                                ? glm_jarg_int(r, arg[2], "count") : -1);
    }
    case F_JOIN: {
        static const char *const names[] = {"d", "attribute"};
        glm_jbuf b = {0};
        glm_jinja_value d;

        glm_jbind(r, name, a, names, 2, 0, arg);
        d = glm_jhave(&arg[0]) ? glm_jv_to_str(r, arg[0]) : glm_jv_str("", 0);
        items = glm_jiter(r, v);
        for (i = 0; i < items->n; i++) {
            glm_jinja_value x = glm_jhave(&arg[1]) ? glm_jattr_path(r, items->v[i], arg[1])
                                                    : items->v[i];

            if (i > 0) {
                glm_jbuf_put(r, &b, d.u.s, d.n);
            }
            glm_jv_write_str(r, &b, x);
        }
        glm_jbuf_put(r, &b, "", 0);
        return glm_jbuf_value(r, &b);
    }
    case F_ITEMS: {
        glm_jinja_value out;

        glm_jbind(r, name, a, NULL, 0, 0, arg);
        if (v.kind == GLM_JINJA_UNDEFINED) {
            return glm_jiter_value(r, glm_jv_newlist(r, 0).u.list);
        }
        if (v.kind != GLM_JINJA_DICT) {
            /* a generator in jinja2: the TypeError waits for iteration */
            return glm_jbroken_iter(r, v);
        }
        out = glm_jv_newlist(r, v.u.dict->n);
        for (i = 0; i < v.u.dict->n; i++) {
            out.u.list->v[i] = glm_jtuple2(r, v.u.dict->k[i], v.u.dict->v[i]);
        }
        out.u.list->n = v.u.dict->n;
        return glm_jiter_value(r, out.u.list);
    }
    case F_DICTSORT: {
        static const char *const names[] = {"case_sensitive", "by", "reverse"};
        glm_jinja_value pairs;
        glm_jsort_item *sv, *tmp;
        int by_value = 0, cs;

        glm_jbind(r, name, a, names, 3, 0, arg);
        if (v.kind != GLM_JINJA_DICT) {
            if (v.kind == GLM_JINJA_UNDEFINED) {
                glm_jfail_undefined(r, v);
            }
            glm_jfail(r, "AttributeError: '%s' object has no attribute 'items'",
                      glm_jv_type_name(v));
        }
        cs = glm_jhave(&arg[0]) && glm_jv_truthy(arg[0]);
        if (glm_jhave(&arg[1])) {
            glm_jinja_value by = glm_jarg_str(r, arg[1], "by");

            if (glm_jname_is(by.u.s, by.n, "value")) {
                by_value = 1;
            } else if (!glm_jname_is(by.u.s, by.n, "key")) {
                glm_jfail(r, "FilterArgumentError: You can only sort by either \"key\" or \"value\"");
            }
        }
        sv = glm_jalloc(r, (v.u.dict->n + 1) * sizeof(*sv));
        tmp = glm_jalloc(r, (v.u.dict->n + 1) * sizeof(*tmp));
        for (i = 0; i < v.u.dict->n; i++) {
            sv[i].key = glm_jfold(r, by_value ? v.u.dict->v[i] : v.u.dict->k[i], cs);
            sv[i].item = glm_jtuple2(r, v.u.dict->k[i], v.u.dict->v[i]);
        }
        glm_jmerge_sort(r, sv, tmp, v.u.dict->n, glm_jhave(&arg[2]) && glm_jv_truthy(arg[2]));
        pairs = glm_jv_newlist(r, v.u.dict->n);
        for (i = 0; i < v.u.dict->n; i++) {
            pairs.u.list->v[i] = sv[i].item;
        }
        pairs.u.list->n = v.u.dict->n;
        return pairs;
    }
    case F_SORT: {
        static const char *const names[] = {"reverse", "case_sensitive", "attribute"};

        glm_jbind(r, name, a, names, 3, 0, arg);
        return glm_jsorted(r, glm_jiter(r, v), glm_jhave(&arg[0]) && glm_jv_truthy(arg[0]),
                           glm_jhave(&arg[1]) && glm_jv_truthy(arg[1]),
                           glm_jhave(&arg[2]) && arg[2].kind != GLM_JINJA_NONE ? &arg[2] : NULL);
    }
    case F_UNIQUE: {
        static const char *const names[] = {"case_sensitive", "attribute"};
        glm_jinja_value seen = glm_jv_newdict(r, 0), out = glm_jv_newlist(r, 0);
        int cs;

        glm_jbind(r, name, a, names, 2, 0, arg);
        cs = glm_jhave(&arg[0]) && glm_jv_truthy(arg[0]);
        if (!glm_jis_iterable(v)) {
            return glm_jbroken_iter(r, v);
        }
        items = glm_jiter(r, v);
        for (i = 0; i < items->n; i++) {
            glm_jinja_value k = glm_jfold(r, glm_jhave(&arg[1]) && arg[1].kind != GLM_JINJA_NONE
                                                 ? glm_jattr_path(r, items->v[i], arg[1])
                                                 : items->v[i], cs);

            if (!glm_jv_hashable(k)) {
                glm_jfail(r, "TypeError: unhashable type: '%s'", glm_jv_type_name(k));
            }
            if (glm_jv_dict_find(seen.u.dict, k) == NULL) {
                glm_jv_dict_put(r, seen, k, glm_jvnone());
                glm_jv_push(r, out, items->v[i]);
            }
        }
        return glm_jiter_value(r, out.u.list);
    }
    case F_LIST:
        glm_jbind(r, name, a, NULL, 0, 0, arg);
        return glm_jlist_of(r, v);
    case F_FIRST:
        glm_jbind(r, name, a, NULL, 0, 0, arg);
        items = glm_jiter(r, v);
        if (items->n == 0) {
            return glm_jv_undef("No first item, sequence was empty.", 34, GLM_JU_NO_ITEM);
        }
        return items->v[0];
    case F_LAST:
        glm_jbind(r, name, a, NULL, 0, 0, arg);
        if (v.kind == GLM_JINJA_LIST && (v.flags & GLM_JINJA_F_ITER)) {
            glm_jfail(r, "TypeError: 'generator' object is not reversible");
        }
        items = glm_jiter(r, v);
        if (items->n == 0) {
            return glm_jv_undef("No last item, sequence was empty.", 33, GLM_JU_NO_ITEM);
        }
        return items->v[items->n - 1];
    case F_REVERSE:
        glm_jbind(r, name, a, NULL, 0, 0, arg);
        if (v.kind == GLM_JINJA_STR) {
            glm_jbuf b = {0};
            size_t pos = v.n;

            while (pos > 0) {
                size_t st = pos - 1;

                while (st > 0 && ((unsigned char) v.u.s[st] & 0xc0) == 0x80) {
                    st--;
                }
                glm_jbuf_put(r, &b, v.u.s + st, pos - st);
                pos = st;
            }
            glm_jbuf_put(r, &b, "", 0);
            return glm_jbuf_value(r, &b);
        }
        {
            glm_jinja_value out;

            if (!glm_jis_iterable(v)) {
                glm_jfail(r, "FilterArgumentError: argument must be iterable");
            }
            items = glm_jiter(r, v);
            out = glm_jv_newlist(r, items->n);
            for (i = 0; i < items->n; i++) {
                out.u.list->v[i] = items->v[items->n - 1 - i];
            }
            out.u.list->n = items->n;
            /* reversed() works on sequences and dicts (an iterator, always
             * true); a generator falls back to a reversed list */
            return v.kind == GLM_JINJA_LIST && (v.flags & GLM_JINJA_F_ITER)
                   ? out : glm_jiter_value(r, out.u.list);
        }
    case F_MAP:
        return glm_jmap(r, v, a);
    case F_SELECT:
    case F_REJECT:
        return glm_jselect(r, v, a, 0, id == F_SELECT);
    case F_SELECTATTR:
    case F_REJECTATTR:
        return glm_jselect(r, v, a, 1, id == F_SELECTATTR);
    case F_MIN:
    case F_MAX:
        return glm_jminmax(r, v, a, id == F_MAX);
    case F_SUM: {
        static const char *const names[] = {"attribute", "start"};
        glm_jinja_value acc;

        glm_jbind(r, name, a, names, 2, 0, arg);
        acc = glm_jhave(&arg[1]) ? arg[1] : glm_jvi(0);
        items = glm_jiter(r, v);
        for (i = 0; i < items->n; i++) {
            acc = glm_jbinop(r, GLM_JOP_ADD, acc,
                             glm_jhave(&arg[0]) && arg[0].kind != GLM_JINJA_NONE
                                 ? glm_jattr_path(r, items->v[i], arg[0]) : items->v[i]);
        }
        return acc;
    }
    case F_ABS:
        glm_jbind(r, name, a, NULL, 0, 0, arg);
        if (v.kind == GLM_JINJA_INT || v.kind == GLM_JINJA_BOOL) {
            if (v.u.i == INT64_MIN) {
                glm_jfail(r, "unsupported: integer overflow beyond 64 bits");
            }
            return glm_jvi(v.u.i < 0 ? -v.u.i : v.u.i);
        }
        if (v.kind == GLM_JINJA_FLOAT) {
            return glm_jvf(fabs(v.u.f));
        }
        if (v.kind == GLM_JINJA_UNDEFINED) {
            glm_jfail_undefined(r, v);
        }
        glm_jfail(r, "TypeError: bad operand type for abs(): '%s'", glm_jv_type_name(v));
    case F_INT: {
        static const char *const names[] = {"default", "base"};

        glm_jbind(r, name, a, names, 2, 0, arg);
        if (v.kind == GLM_JINJA_UNDEFINED) {
            glm_jfail_undefined(r, v);     /* int(Undefined) raises */
        }
        return glm_jto_int(r, v, glm_jhave(&arg[0]) ? arg[0] : glm_jvi(0),
                           glm_jhave(&arg[1]) ? glm_jarg_int(r, arg[1], "base") : 10);
    }
    case F_FLOAT: {
        static const char *const names[] = {"default"};

        glm_jbind(r, name, a, names, 1, 0, arg);
        if (v.kind == GLM_JINJA_UNDEFINED) {
            glm_jfail_undefined(r, v);
        }
        return glm_jto_float(r, v, glm_jhave(&arg[0]) ? arg[0] : glm_jvf(0.0));
    }
    case F_ROUND: {
        static const char *const names[] = {"precision", "method"};
        int64_t prec;
        double x, scale;
        glm_jinja_value method = glm_jv_str("common", 6);

        glm_jbind(r, name, a, names, 2, 0, arg);
        prec = glm_jhave(&arg[0]) ? glm_jarg_int(r, arg[0], "precision") : 0;
        if (glm_jhave(&arg[1])) {
            method = glm_jarg_str(r, arg[1], "method");
        }
        if (!glm_jv_is_num(v)) {
            if (v.kind == GLM_JINJA_UNDEFINED) {
                glm_jfail_undefined(r, v);
            }
            glm_jfail(r, "TypeError: type %s doesn't define __round__ method", glm_jv_type_name(v));
        }
        x = v.kind == GLM_JINJA_FLOAT ? v.u.f : (double) v.u.i;
        if (prec < -300 || prec > 300) {
            glm_jfail(r, "unsupported: round precision %lld", (long long) prec);
        }
        scale = pow(10.0, (double) prec);
        if (glm_jname_is(method.u.s, method.n, "common")) {
            if (v.kind != GLM_JINJA_FLOAT) {
                return glm_jvi(v.u.i);    /* round(int, n) stays an int */
            }
            if (prec > 0 && isfinite(x)) {
                /* Python rounds the double's exact decimal value (round(2.675, 2)
                 * is 2.67); printf does the same, ties to even */
                char buf[400];

                snprintf(buf, sizeof(buf), "%.*f", (int) prec, x);
                return glm_jvf(strtod(buf, NULL));
            }
            return glm_jvf(nearbyint(x * scale) / scale);
        }
        if (glm_jname_is(method.u.s, method.n, "ceil")) {
            return glm_jvf(ceil(x * scale) / scale);
        }
        if (glm_jname_is(method.u.s, method.n, "floor")) {
            return glm_jvf(floor(x * scale) / scale);
        }
        glm_jfail(r, "FilterArgumentError: method must be common, ceil or floor");
    }
    case F_CENTER: {
        static const char *const names[] = {"width"};

        glm_jbind(r, name, a, names, 1, 0, arg);
        return glm_jpad(r, glm_jv_to_str(r, v),
                        glm_jhave(&arg[0]) ? glm_jarg_int(r, arg[0], "width") : 80, 'c', ' ');
    }
    case F_INDENT:
        return glm_jindent(r, v, a);
    case F_FORMAT: {
        glm_jinja_value tup;

        if (a->npos > 0 && a->nkw > 0) {
            glm_jfail(r, "FilterArgumentError: can't handle positional and keyword arguments "
                      "at the same time");
        }
        if (a->nkw > 0) {
            tup = glm_jv_newdict(r, a->nkw);
            for (i = 0; i < a->nkw; i++) {
                glm_jv_dict_put(r, tup, a->kwname[i], a->kwval[i]);
            }
        } else {
            tup = glm_jv_newlist(r, a->npos);
            tup.flags = GLM_JINJA_F_TUPLE;
            for (i = 0; i < a->npos; i++) {
                tup.u.list->v[i] = a->pos[i];
            }
            tup.u.list->n = a->npos;
        }
        return glm_jpercent(r, glm_jv_to_str(r, v), tup);
    }
    case F_ATTR: {
        static const char *const names[] = {"name"};
        glm_jinja_value m;

        glm_jbind(r, name, a, names, 1, 1, arg);
        if (arg[0].kind != GLM_JINJA_STR) {
            return glm_jv_undef(NULL, 0, GLM_JU_PLAIN);
        }
        if (v.kind == GLM_JINJA_NAMESPACE) {
            glm_jinja_value *x = glm_jv_dict_find_str(v.u.dict, arg[0].u.s, arg[0].n);

            return x != NULL ? *x : glm_jv_undef(NULL, 0, GLM_JU_PLAIN);
        }
        if (v.kind == GLM_JINJA_LOOP) {
            return glm_jgetattr(r, v, arg[0], NULL);
        }
        if (glm_jmethod_lookup(v, arg[0].u.s, arg[0].n, &m, r)) {
            return m;
        }
        return glm_jv_undef(arg[0].u.s, arg[0].n, GLM_JU_PLAIN);
    }
    case F_BATCH: {
        static const char *const names[] = {"linecount", "fill_with"};
        glm_jinja_value out = glm_jv_newlist(r, 0), cur;
        int64_t count;

        glm_jbind(r, name, a, names, 2, 1, arg);
        count = glm_jarg_int(r, arg[0], "linecount");
        if (count <= 0) {
            glm_jfail(r, "unsupported: batch size below 1");
        }
        if (!glm_jis_iterable(v)) {
            return glm_jbroken_iter(r, v);
        }
        items = glm_jiter(r, v);
        cur = glm_jv_newlist(r, 0);
        for (i = 0; i < items->n; i++) {
            if ((int64_t) cur.u.list->n == count) {
                glm_jv_push(r, out, cur);
                cur = glm_jv_newlist(r, 0);
            }
            glm_jv_push(r, cur, items->v[i]);
        }
        if (cur.u.list->n > 0) {
            if (glm_jhave(&arg[1]) && arg[1].kind != GLM_JINJA_NONE) {
                while ((int64_t) cur.u.list->n < count) {
                    glm_jstep(r);
                    glm_jv_push(r, cur, arg[1]);
                }
            }
            glm_jv_push(r, out, cur);
        }
        return glm_jiter_value(r, out.u.list);
    }
    case F_WORDCOUNT: {
        glm_jinja_value s;
        size_t pos = 0, adv;
        int64_t count = 0;
        int in_word = 0;

        glm_jbind(r, name, a, NULL, 0, 0, arg);
        s = glm_jv_to_str(r, v);
        while (pos < s.n) {
            uint32_t cp = glm_ju8_decode(s.u.s + pos, s.n - pos, &adv);
            int w = cp == '_' || glm_jis_digit(cp) || glm_jis_alpha(r, cp);

            if (w && !in_word) {
                count++;
            }
            in_word = w;
            pos += adv;
        }
        return glm_jvi(count);
    }
    case F_TRUNCATE: {
        static const char *const names[] = {"length", "killwords", "end", "leeway"};
        glm_jinja_value s, end, head;
        int64_t length, leeway, slen, elen;
        glm_jbuf b = {0};

        glm_jbind(r, name, a, names, 4, 0, arg);
        length = glm_jhave(&arg[0]) ? glm_jarg_int(r, arg[0], "length") : 255;
        if (v.kind != GLM_JINJA_STR) {
            /* do_truncate works on whatever it gets: len(), then a slice + str */
            int64_t vlen;

            if (v.kind == GLM_JINJA_UNDEFINED) {
                return v;
            }
            if (v.kind == GLM_JINJA_LIST && !(v.flags & GLM_JINJA_F_ITER)) {
                vlen = v.u.list->n;
            } else if (v.kind == GLM_JINJA_DICT) {
                vlen = v.u.dict->n;
            } else {
                glm_jfail(r, "TypeError: object of type '%s' has no len()", glm_jv_type_name(v));
            }
            if (vlen <= length + (glm_jhave(&arg[3]) && arg[3].kind != GLM_JINJA_NONE
                                  ? glm_jarg_int(r, arg[3], "leeway") : 5)) {
                return v;
            }
            glm_jfail(r, "TypeError: can only concatenate %s (not \"str\") to %s",
                      glm_jv_type_name(v), glm_jv_type_name(v));
        }
        s = v;
        end = glm_jhave(&arg[2]) ? glm_jarg_str(r, arg[2], "end") : glm_jv_str("...", 3);
        leeway = glm_jhave(&arg[3]) && arg[3].kind != GLM_JINJA_NONE
                 ? glm_jarg_int(r, arg[3], "leeway") : 5;
        elen = (int64_t) glm_ju8_len(end.u.s, end.n);
        slen = (int64_t) glm_ju8_len(s.u.s, s.n);
        if (length < elen || leeway < 0) {
            glm_jfail(r, "AssertionError: expected length >= %lld, got %lld", (long long) elen,
                      (long long) length);
        }
        if (slen <= length + leeway) {
            return s;
        }
        head = glm_jv_str(s.u.s, glm_jcp_off(s.u.s, s.n, length - elen));
        if (!(glm_jhave(&arg[1]) && glm_jv_truthy(arg[1]))) {
            const char *sp = glm_jmemrmem(head.u.s, head.n, " ", 1);

            if (sp != NULL) {
                head.n = (uint32_t) (sp - head.u.s);
            }
        }
        glm_jbuf_put(r, &b, head.u.s, head.n);
        glm_jbuf_put(r, &b, end.u.s, end.n);
        return glm_jbuf_value(r, &b);
    }
    default:
        glm_jfail(r, "internal error: filter %d", id);
    }
}


/* ---- globals and methods --------------------------------------------------------------------------------------- */

static glm_jinja_value
glm_jmake_dict(glm_jrender *r, glm_jcall_args *a, const char *fname, int reject_underscore)
{
    glm_jinja_value d = glm_jv_newdict(r, 0);
    uint32_t i;

    if (a->npos > 1) {
        glm_jfail(r, "TypeError: %s expected at most 1 argument, got %u", fname, a->npos);
    }
    if (a->npos == 1) {
        glm_jinja_value src = a->pos[0];

        if (src.kind == GLM_JINJA_DICT || src.kind == GLM_JINJA_NAMESPACE) {
            for (i = 0; i < src.u.dict->n; i++) {
                glm_jv_dict_put(r, d, src.u.dict->k[i], src.u.dict->v[i]);
            }
        } else {
            glm_jinja_list *l = glm_jiter(r, src);

            for (i = 0; i < l->n; i++) {
                glm_jinja_list *pair = glm_jiter(r, l->v[i]);

                if (pair->n != 2) {
                    glm_jfail(r, "ValueError: dictionary update sequence element #%u has length "
                              "%u; 2 is required", i, pair->n);
                }
                glm_jv_dict_put(r, d, pair->v[0], pair->v[1]);
            }
        }
    }
    for (i = 0; i < a->nkw; i++) {
        glm_jv_dict_put(r, d, a->kwname[i], a->kwval[i]);
    }
    if (reject_underscore) {
        for (i = 0; i < d.u.dict->n; i++) {
            glm_jinja_value k = d.u.dict->k[i];

            if (k.kind == GLM_JINJA_STR && k.n > 0 && k.u.s[0] == '_') {
                glm_jfail(r, "SecurityError: Chat templates cannot store underscore-prefixed "
                          "attributes on a namespace, but got '%.*s'", (int) k.n, k.u.s);
            }
        }
    }
    return d;
}

static glm_jinja_value
glm_jstrftime(glm_jrender *r, glm_jinja_value fmt)
{
    struct tm tm;
    glm_jbuf f = {0}, out = {0};
    char tmp[1024];
    size_t i, n;

    if (r->c->has_now) {
        tm = r->c->now;
    } else {
        time_t now = time(NULL);

        localtime_r(&now, &tm);
    }
    /* datetime.strftime: %f is microseconds; a naive datetime has empty %z/%Z */
    for (i = 0; i < fmt.n; i++) {
        if (fmt.u.s[i] == '%' && i + 1 < fmt.n) {
            char c = fmt.u.s[i + 1];

            if (c == 'f') {
                glm_jbuf_put(r, &f, "000000", 6);
                i++;
                continue;
            }
            if (c == 'z' || c == 'Z') {
                i++;
                continue;
            }
            glm_jbuf_putc(r, &f, '%');
            glm_jbuf_putc(r, &f, c);
            i++;
            continue;
        }
        glm_jbuf_putc(r, &f, fmt.u.s[i]);
    }
    glm_jbuf_put(r, &f, "", 0);
    if (f.n == 0) {
        return glm_jv_str("", 0);
    }
    /* strftime on pieces so an empty expansion is not mistaken for an error */
    glm_jbuf_put(r, &f, "\x01", 1);
    n = strftime(tmp, sizeof(tmp), f.p, &tm);
    if (n == 0) {
        glm_jfail(r, "strftime_now: format too long");
    }
    glm_jbuf_put(r, &out, tmp, n - 1);
    return glm_jbuf_value(r, &out);
}

static int
glm_jstr_pred(glm_jrender *r, glm_jinja_value s, int id)
{
    size_t i, adv;
    int cased = 0;

    if (s.n == 0) {
        return 0;
    }
    for (i = 0; i < s.n; i += adv) {
        uint32_t cp = glm_ju8_decode(s.u.s + i, s.n - i, &adv);

        switch (id) {
        case M_ISDIGIT:
        case M_ISDECIMAL:
        case M_ISNUMERIC:
            if (!glm_jis_digit(cp)) {
                return 0;
            }
            break;
        case M_ISALPHA:
            if (!glm_jis_alpha(r, cp)) {
                return 0;
            }
            break;
        case M_ISALNUM:
            if (!glm_jis_alpha(r, cp) && !glm_jis_digit(cp)) {
                return 0;
            }
            break;
        case M_ISSPACE:
            if (!glm_jpy_isspace(cp)) {
                return 0;
            }
            break;
        case M_ISLOWER:
            if (glm_jlower_cp(r, cp) != cp) {
                return 0;
            }
            cased |= glm_jupper_cp(r, cp) != cp;
            break;
        case M_ISUPPER:
            if (glm_jupper_cp(r, cp) != cp) {
                return 0;
            }
            cased |= glm_jlower_cp(r, cp) != cp;
            break;
        default:
            break;
        }
    }
    return (id == M_ISLOWER || id == M_ISUPPER) ? cased : 1;
}

/* str.startswith/endswith(prefix or tuple, start=None, end=None) */
static int
glm_jaffix(glm_jrender *r, glm_jinja_value s, glm_jcall_args *a, int ends)
{
    static const char *const names[] = {"prefix", "start", "end"};
    glm_jinja_value arg[3], *cands;
    uint32_t ncand, i;

    glm_jbind(r, ends ? "endswith" : "startswith", a, names, 3, 1, arg);
    if (glm_jhave(&arg[1]) || glm_jhave(&arg[2])) {
        glm_jfail(r, "unsupported: start/end arguments of %s", ends ? "endswith" : "startswith");
    }
    if (arg[0].kind == GLM_JINJA_LIST && (arg[0].flags & GLM_JINJA_F_TUPLE)) {
        cands = arg[0].u.list->v;
        ncand = arg[0].u.list->n;
    } else {
        cands = &arg[0];
        ncand = 1;
    }
    for (i = 0; i < ncand; i++) {
        glm_jinja_value p = cands[i];

        if (p.kind != GLM_JINJA_STR) {
            if (p.kind == GLM_JINJA_UNDEFINED) {
                glm_jfail_undefined(r, p);
            }
            glm_jfail(r, "TypeError: %s first arg must be str or a tuple of str, not %s",
                      ends ? "endswith" : "startswith", glm_jv_type_name(p));
        }
        if (p.n <= s.n && memcmp(ends ? s.u.s + s.n - p.n : s.u.s, p.u.s, p.n) == 0) {
            return 1;
        }
    }
    return 0;
}


static glm_jinja_value glm_jfunc_call_inner(glm_jrender *r, glm_jinja_value fn,
                                            glm_jcall_args *a);

/* markupsafe.Markup's methods escape their string arguments and return
 * Markup (also inside the lists and tuples split/partition return). */
static glm_jinja_value
glm_jmark_safe(glm_jinja_value v)
{
    uint32_t i;

    if (v.kind == GLM_JINJA_STR) {
        v.flags |= GLM_JINJA_F_SAFE;
    } else if (v.kind == GLM_JINJA_LIST && !(v.flags & GLM_JINJA_F_ITER)) {
        for (i = 0; i < v.u.list->n; i++) {
            if (v.u.list->v[i].kind == GLM_JINJA_STR) {
                v.u.list->v[i].flags |= GLM_JINJA_F_SAFE;
            }
        }
    }
    return v;
}

glm_jinja_value
glm_jfunc_call(glm_jrender *r, glm_jinja_value fn, glm_jcall_args *a)
{
    glm_jinja_value self, out;
    glm_jcall_args esc;
    uint32_t i;

    if (fn.sub < M_STRIP || fn.sub > M_REMOVESUFFIX) {
        return glm_jfunc_call_inner(r, fn, a);
    }
    self = ((glm_jbound *) fn.u.p)->self;
    if (!(self.flags & GLM_JINJA_F_SAFE)) {
        return glm_jfunc_call_inner(r, fn, a);
    }
    esc = *a;
    if (fn.sub == M_REPLACE || fn.sub == M_JOIN || fn.sub == M_FORMAT) {
        esc.pos = glm_jalloc(r, (a->npos + 1) * sizeof(*esc.pos));
        esc.kwval = glm_jalloc(r, (a->nkw + 1) * sizeof(*esc.kwval));
        for (i = 0; i < a->npos; i++) {
            esc.pos[i] = a->pos[i];
            if (fn.sub == M_JOIN && a->pos[i].kind == GLM_JINJA_LIST) {
                glm_jinja_list *l = glm_jiter(r, a->pos[i]);
                glm_jinja_value el = glm_jv_newlist(r, l->n);
                uint32_t k;

                for (k = 0; k < l->n; k++) {
                    el.u.list->v[k] = l->v[k].kind == GLM_JINJA_STR ? glm_jescape(r, l->v[k])
                                                                    : l->v[k];
                }
                el.u.list->n = l->n;
                esc.pos[i] = el;
            } else if (a->pos[i].kind == GLM_JINJA_STR
                       || (fn.sub == M_FORMAT && a->pos[i].kind != GLM_JINJA_UNDEFINED)) {
                esc.pos[i] = glm_jescape(r, a->pos[i]);
            }
        }
        for (i = 0; i < a->nkw; i++) {
            esc.kwval[i] = a->kwval[i].kind == GLM_JINJA_STR
                           || (fn.sub == M_FORMAT && a->kwval[i].kind != GLM_JINJA_UNDEFINED)
                           ? glm_jescape(r, a->kwval[i]) : a->kwval[i];
        }
    }
    out = glm_jfunc_call_inner(r, fn, &esc);
    return glm_jmark_safe(out);
}

static glm_jinja_value
glm_jfunc_call_inner(glm_jrender *r, glm_jinja_value fn, glm_jcall_args *a)
{
    glm_jinja_value arg[4], self;
    uint32_t i;

    memset(&self, 0, sizeof(self));
    if (fn.sub >= GLM_JF_METHOD_BASE) {
        self = ((glm_jbound *) fn.u.p)->self;
    }
    glm_jstep(r);
    switch (fn.sub) {
    case GLM_JF_RANGE: {
        int64_t start = 0, stop, step = 1, count, k;
        glm_jinja_value out;

        if (a->nkw > 0) {
            glm_jfail(r, "TypeError: range() takes no keyword arguments");
        }
        if (a->npos < 1 || a->npos > 3) {
            glm_jfail(r, "TypeError: range expected 1 to 3 arguments, got %u", a->npos);
        }
        if (a->npos == 1) {
            stop = glm_jarg_int(r, a->pos[0], "range() argument");
        } else {
            start = glm_jarg_int(r, a->pos[0], "range() argument");
            stop = glm_jarg_int(r, a->pos[1], "range() argument");
            if (a->npos == 3) {
                step = glm_jarg_int(r, a->pos[2], "range() argument");
            }
        }
        if (step == 0) {
            glm_jfail(r, "ValueError: range() arg 3 must not be zero");
        }
        if (step > 0) {
            count = stop > start ? (int64_t) (((uint64_t) stop - (uint64_t) start - 1) / (uint64_t) step) + 1 : 0;
        } else {
            count = start > stop ? (int64_t) (((uint64_t) start - (uint64_t) stop - 1) / (uint64_t) (-(step + 1) + 1)) + 1 : 0;
        }
        /* jinja2's sandbox: MAX_RANGE */
        if (count > 100000 || count < 0) {
            glm_jfail(r, "OverflowError: Range too big. The sandbox blocks ranges larger than "
                      "MAX_RANGE (100000).");
        }
        out = glm_jv_newlist(r, (uint32_t) count);
        for (k = 0; k < count; k++) {
            out.u.list->v[k] = glm_jvi(start + k * step);
        }
        out.u.list->n = (uint32_t) count;
        return out;
    }
    case GLM_JF_DICT:
        return glm_jmake_dict(r, a, "dict", 0);
    case GLM_JF_NAMESPACE: {
        glm_jinja_value d = glm_jmake_dict(r, a, "namespace", 1);

        d.kind = GLM_JINJA_NAMESPACE;
        return d;
    }
    case GLM_JF_RAISE_EXCEPTION: {
        static const char *const names[] = {"message"};
        glm_jinja_value msg;

        glm_jbind(r, "raise_exception", a, names, 1, 1, arg);
        msg = glm_jv_to_str(r, arg[0]);
        glm_jfail(r, "TemplateError: %.*s", (int) (msg.n > 400 ? 400 : msg.n), msg.u.s);
    }
    case GLM_JF_STRFTIME_NOW: {
        static const char *const names[] = {"format"};

        glm_jbind(r, "strftime_now", a, names, 1, 1, arg);
        return glm_jstrftime(r, glm_jarg_str(r, arg[0], "strftime() argument 1"));
    }

    /* str methods */
    case M_STRIP:
    case M_LSTRIP:
    case M_RSTRIP: {
        static const char *const names[] = {"chars"};

        glm_jbind(r, "strip", a, names, 1, 0, arg);
        if (glm_jhave(&arg[0]) && arg[0].kind != GLM_JINJA_NONE) {
            glm_jinja_value chars = glm_jarg_str(r, arg[0], "strip arg");

            return glm_jstrip(self, &chars, fn.sub != M_RSTRIP, fn.sub != M_LSTRIP);
        }
        return glm_jstrip(self, NULL, fn.sub != M_RSTRIP, fn.sub != M_LSTRIP);
    }
    case M_SPLIT:
    case M_RSPLIT: {
        static const char *const names[] = {"sep", "maxsplit"};
        glm_jinja_value sep;
        int64_t maxsplit = -1;

        glm_jbind(r, "split", a, names, 2, 0, arg);
        if (glm_jhave(&arg[1])) {
            maxsplit = glm_jarg_int(r, arg[1], "maxsplit");
        }
        if (glm_jhave(&arg[0]) && arg[0].kind != GLM_JINJA_NONE) {
            sep = glm_jarg_str(r, arg[0], "separator");
            return glm_jsplit(r, self, &sep, maxsplit, fn.sub == M_RSPLIT);
        }
        return glm_jsplit(r, self, NULL, maxsplit, fn.sub == M_RSPLIT);
    }
    case M_SPLITLINES: {
        static const char *const names[] = {"keepends"};
        glm_jinja_value out = glm_jv_newlist(r, 0);
        size_t pos = 0, start = 0, adv;
        int keep;

        glm_jbind(r, "splitlines", a, names, 1, 0, arg);
        keep = glm_jhave(&arg[0]) && glm_jv_truthy(arg[0]);
        while (pos < self.n) {
            uint32_t cp = glm_ju8_decode(self.u.s + pos, self.n - pos, &adv);

            if (cp == '\n' || cp == '\r' || cp == 0x0b || cp == 0x0c || cp == 0x1c || cp == 0x1d
                || cp == 0x1e || cp == 0x85 || cp == 0x2028 || cp == 0x2029) {
                size_t eol = pos + adv;

                if (cp == '\r' && eol < self.n && self.u.s[eol] == '\n') {
                    eol++;
                }
                glm_jv_push(r, out, glm_jv_str(self.u.s + start, (keep ? eol : pos) - start));
                pos = start = eol;
                continue;
            }
            pos += adv;
        }
        if (start < self.n) {
            glm_jv_push(r, out, glm_jv_str(self.u.s + start, self.n - start));
        }
        return out;
    }
    case M_STARTSWITH:
    case M_ENDSWITH:
        return glm_jvb(glm_jaffix(r, self, a, fn.sub == M_ENDSWITH));
    case M_REPLACE: {
        static const char *const names[] = {"old", "new", "count"};

        glm_jbind(r, "replace", a, names, 3, 2, arg);
        return glm_jreplace(r, self, glm_jarg_str(r, arg[0], "replace() argument 1"),
                            glm_jarg_str(r, arg[1], "replace() argument 2"),
                            glm_jhave(&arg[2]) ? glm_jarg_int(r, arg[2], "count") : -1);
    }
    case M_UPPER:
    case M_LOWER:
    case M_TITLE:
    case M_CAPITALIZE:
    case M_SWAPCASE:
    case M_CASEFOLD:
        glm_jbind(r, "str method", a, NULL, 0, 0, arg);
        return glm_jcase(r, self, fn.sub == M_UPPER ? GLM_JCASE_UPPER
                                  : fn.sub == M_TITLE ? GLM_JCASE_TITLE
                                  : fn.sub == M_CAPITALIZE ? GLM_JCASE_CAPITALIZE
                                  : fn.sub == M_SWAPCASE ? GLM_JCASE_SWAP : GLM_JCASE_LOWER);
    case M_FIND:
    case M_RFIND:
    case M_INDEX:
    case M_RINDEX:
    case M_COUNT: {
        static const char *const names[] = {"sub", "start", "end"};
        glm_jinja_value sub;
        int64_t at;

        glm_jbind(r, "find", a, names, 3, 1, arg);
        if (glm_jhave(&arg[1]) || glm_jhave(&arg[2])) {
            glm_jfail(r, "unsupported: start/end arguments of str.find/index/count");
        }
        sub = glm_jarg_str(r, arg[0], "substring");
        if (fn.sub == M_COUNT) {
            int64_t count = 0;
            size_t pos = 0;
            const char *hit;

            if (sub.n == 0) {
                return glm_jvi((int64_t) glm_ju8_len(self.u.s, self.n) + 1);
            }
            while ((hit = glm_jmemmem(self.u.s + pos, self.n - pos, sub.u.s, sub.n)) != NULL) {
                count++;
                pos = (size_t) (hit - self.u.s) + sub.n;
            }
            return glm_jvi(count);
        }
        at = glm_jfind(self, sub, fn.sub == M_RFIND || fn.sub == M_RINDEX);
        if (at < 0 && (fn.sub == M_INDEX || fn.sub == M_RINDEX)) {
            glm_jfail(r, "ValueError: substring not found");
        }
        return glm_jvi(at);
    }
    case M_JOIN: {
        static const char *const names[] = {"iterable"};
        glm_jbuf b = {0};
        glm_jinja_list *items;

        glm_jbind(r, "join", a, names, 1, 1, arg);
        items = glm_jiter(r, arg[0]);
        for (i = 0; i < items->n; i++) {
            if (items->v[i].kind != GLM_JINJA_STR) {
                glm_jfail(r, "TypeError: sequence item %u: expected str instance, %s found", i,
                          glm_jv_type_name(items->v[i]));
            }
            if (i > 0) {
                glm_jbuf_put(r, &b, self.u.s, self.n);
            }
            glm_jbuf_put(r, &b, items->v[i].u.s, items->v[i].n);
        }
        glm_jbuf_put(r, &b, "", 0);
        return glm_jbuf_value(r, &b);
    }
    case M_FORMAT:
        return glm_jstr_format(r, self, a);
    case M_ISDIGIT: case M_ISALPHA: case M_ISALNUM: case M_ISSPACE: case M_ISLOWER:
    case M_ISUPPER: case M_ISNUMERIC: case M_ISDECIMAL:
        glm_jbind(r, "str method", a, NULL, 0, 0, arg);
        return glm_jvb(glm_jstr_pred(r, self, fn.sub));
    case M_ZFILL: {
        static const char *const names[] = {"width"};
        int64_t w, len, k;
        glm_jbuf b = {0};
        size_t signlen;

        glm_jbind(r, "zfill", a, names, 1, 1, arg);
        w = glm_jarg_int(r, arg[0], "width");
        len = (int64_t) glm_ju8_len(self.u.s, self.n);
        if (w <= len) {
            return self;
        }
        if (w > (int64_t) r->c->limits.max_output) {
            glm_jfail(r, "zfill width exceeds the output limit");
        }
        signlen = self.n > 0 && (self.u.s[0] == '+' || self.u.s[0] == '-');
        glm_jbuf_put(r, &b, self.u.s, signlen);
        for (k = 0; k < w - len; k++) {
            glm_jbuf_putc(r, &b, '0');
        }
        glm_jbuf_put(r, &b, self.u.s + signlen, self.n - signlen);
        return glm_jbuf_value(r, &b);
    }
    case M_CENTER:
    case M_LJUST:
    case M_RJUST: {
        static const char *const names[] = {"width", "fillchar"};
        uint32_t fill = ' ';

        glm_jbind(r, "justify", a, names, 2, 1, arg);
        if (glm_jhave(&arg[1])) {
            glm_jinja_value fc = glm_jarg_str(r, arg[1], "fillchar");
            size_t adv;

            if (glm_ju8_len(fc.u.s, fc.n) != 1) {
                glm_jfail(r, "TypeError: The fill character must be exactly one character long");
            }
            fill = glm_ju8_decode(fc.u.s, fc.n, &adv);
        }
        return glm_jpad(r, self, glm_jarg_int(r, arg[0], "width"),
                        fn.sub == M_CENTER ? 'c' : fn.sub == M_LJUST ? '<' : '>', fill);
    }
    case M_PARTITION:
    case M_RPARTITION: {
        static const char *const names[] = {"sep"};
        glm_jinja_value sep, t = glm_jv_newlist(r, 3);
        const char *hit;

        glm_jbind(r, "partition", a, names, 1, 1, arg);
        sep = glm_jarg_str(r, arg[0], "separator");
        if (sep.n == 0) {
            glm_jfail(r, "ValueError: empty separator");
        }
        t.flags = GLM_JINJA_F_TUPLE;
        t.u.list->n = 3;
        hit = fn.sub == M_PARTITION ? glm_jmemmem(self.u.s, self.n, sep.u.s, sep.n)
                                    : glm_jmemrmem(self.u.s, self.n, sep.u.s, sep.n);
        if (hit == NULL) {
            t.u.list->v[fn.sub == M_PARTITION ? 0 : 2] = self;
            t.u.list->v[1] = glm_jv_str("", 0);
            t.u.list->v[fn.sub == M_PARTITION ? 2 : 0] = glm_jv_str("", 0);
            return t;
        }
        t.u.list->v[0] = glm_jv_str(self.u.s, (size_t) (hit - self.u.s));
        t.u.list->v[1] = sep;
        t.u.list->v[2] = glm_jv_str(hit + sep.n, self.n - (size_t) (hit - self.u.s) - sep.n);
        return t;
    }
    case M_REMOVEPREFIX:
    case M_REMOVESUFFIX: {
        static const char *const names[] = {"affix"};
        glm_jinja_value x;

        glm_jbind(r, "removeprefix", a, names, 1, 1, arg);
        x = glm_jarg_str(r, arg[0], "affix");
        if (x.n <= self.n) {
            if (fn.sub == M_REMOVEPREFIX && memcmp(self.u.s, x.u.s, x.n) == 0) {
                return glm_jv_str(self.u.s + x.n, self.n - x.n);
            }
            if (fn.sub == M_REMOVESUFFIX && memcmp(self.u.s + self.n - x.n, x.u.s, x.n) == 0) {
                return glm_jv_str(self.u.s, self.n - x.n);
            }
        }
        return self;
    }

    /* dict methods */
    case M_GET: {
        static const char *const names[] = {"key", "default"};
        glm_jinja_value *v;

        glm_jbind(r, "get", a, names, 2, 1, arg);
        if (!glm_jv_hashable(arg[0])) {
            glm_jfail(r, "TypeError: unhashable type: '%s'", glm_jv_type_name(arg[0]));
        }
        v = glm_jv_dict_find(self.u.dict, arg[0]);
        if (v != NULL) {
            return *v;
        }
        return glm_jhave(&arg[1]) ? arg[1] : glm_jvnone();
    }
    case M_ITEMS:
    case M_KEYS:
    case M_VALUES: {
        glm_jinja_value out = glm_jv_newlist(r, self.u.dict->n);

        glm_jbind(r, "dict method", a, NULL, 0, 0, arg);
        for (i = 0; i < self.u.dict->n; i++) {
            out.u.list->v[i] = fn.sub == M_KEYS ? self.u.dict->k[i]
                               : fn.sub == M_VALUES ? self.u.dict->v[i]
                               : glm_jtuple2(r, self.u.dict->k[i], self.u.dict->v[i]);
        }
        out.u.list->n = self.u.dict->n;
        /* dict_keys / dict_values / dict_items: only their repr differs */
        out.sub = (uint16_t) (fn.sub == M_KEYS ? 1 : fn.sub == M_VALUES ? 2 : 3);
        return out;
    }
    case M_COPY:
        glm_jbind(r, "copy", a, NULL, 0, 0, arg);
        if (self.kind == GLM_JINJA_DICT) {
            glm_jinja_value d = glm_jv_newdict(r, self.u.dict->n);

            for (i = 0; i < self.u.dict->n; i++) {
                glm_jv_dict_put(r, d, self.u.dict->k[i], self.u.dict->v[i]);
            }
            return d;
        }
        return glm_jlist_of(r, self);

    /* list methods */
    case M_LIST_INDEX:
    case M_LIST_COUNT: {
        static const char *const names[] = {"value"};
        int64_t count = 0;

        glm_jbind(r, "list method", a, names, 1, 1, arg);
        for (i = 0; i < self.u.list->n; i++) {
            if (glm_jv_eq(r, self.u.list->v[i], arg[0])) {
                if (fn.sub == M_LIST_INDEX) {
                    return glm_jvi(i);
                }
                count++;
            }
        }
        if (fn.sub == M_LIST_INDEX) {
            glm_jfail(r, "ValueError: value is not in list");
        }
        return glm_jvi(count);
    }

    /* loop methods */
    case M_LOOP_CYCLE: {
        glm_jloop *l = self.u.p;

        if (a->npos == 0) {
            glm_jfail(r, "TypeError: no items for cycling given");
        }
        return a->pos[l->index0 % a->npos];
    }
    case M_LOOP_CHANGED: {
        glm_jloop *l = self.u.p;
        glm_jinja_value val = glm_jv_newlist(r, a->npos);

        val.flags = GLM_JINJA_F_TUPLE;
        for (i = 0; i < a->npos; i++) {
            val.u.list->v[i] = a->pos[i];
        }
        val.u.list->n = a->npos;
        if (!l->has_changed || !glm_jv_eq(r, val, l->last_changed)) {
            l->last_changed = val;
            l->has_changed = 1;
            return glm_jvb(1);
        }
        return glm_jvb(0);
    }
    default:
        glm_jfail(r, "internal error: function %d", fn.sub);
    }
}
