/*
 * jinja_internal.h: what the interpreter's files (jinja_value.c,
 * jinja_parse.c, jinja_eval.c, jinja_builtins.c, jinja_pystr.c) share.  Not a
 * public API: only jinja.h is.
 *
 * Memory: a template owns one arena (its AST, symbol names, constant strings),
 * read-only after parsing.  A render context owns another arena for every
 * value, scope and output buffer of one render; glm_jinja_ctx_reset() drops it
 * whole.  Because everything a render allocates belongs to that arena, a
 * render error unwinds with longjmp to glm_jinja_render() and leaks nothing;
 * this keeps the evaluator free of error plumbing on every call.  The parser
 * does the same with the template arena.
 */
#ifndef GLM_JINJA_INTERNAL_H
#define GLM_JINJA_INTERNAL_H

#include <locale.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>

#include "jinja.h"

/* ---- value flags -------------------------------------------------------- */

#define GLM_JINJA_F_SAFE   0x01u   /* STR: a markupsafe.Markup (|safe) */
#define GLM_JINJA_F_TUPLE  0x02u   /* LIST: a Python tuple */
#define GLM_JINJA_F_ITER   0x04u   /* LIST: a generator (map/select...): no len, no repr */
#define GLM_JINJA_F_BROKEN 0x08u   /* LIST+ITER: a lazy generator over a non-iterable (its
                                      kind in .sub): it fails only when consumed, as in Python */

/* UNDEFINED sub-kinds (glm_jinja_value.sub) */
enum {
    GLM_JU_PLAIN = 0,       /* a missing name, attribute or item */
    GLM_JU_UNSAFE,          /* sandbox: list.append, obj.__class__ ... */
    GLM_JU_MISSING_ARG,     /* a macro parameter nobody passed */
    GLM_JU_NO_ITEM          /* first of an empty sequence, loop.previtem ... */
};

struct glm_jinja_list {
    glm_jinja_value *v;
    uint32_t n, cap;
};

/* Insertion-ordered; a hash index is built once a dict has more than a few
 * keys (JSON from a request may have many; templates' own dicts are small). */
struct glm_jinja_dict {
    glm_jinja_value *k, *v;
    uint32_t n, cap;
    uint32_t *index;        /* open addressing, slot = item + 1; 0 empty */
    uint32_t index_cap;     /* power of two, or 0 when there is no index */
};


/* ---- arenas ------------------------------------------------------------- */

typedef struct glm_jarena_chunk glm_jarena_chunk;

typedef struct {
    glm_jarena_chunk *head;
    size_t used_total;      /* bytes handed out since the last reset */
    size_t limit;           /* 0: none */
} glm_jarena;

void *glm_jarena_alloc(glm_jarena *a, size_t n);   /* NULL: limit or no memory */
void glm_jarena_reset(glm_jarena *a);               /* keeps the first chunk */
void glm_jarena_free(glm_jarena *a);
glm_jinja_mark glm_jarena_mark(const glm_jarena *a);
void glm_jarena_rewind(glm_jarena *a, glm_jinja_mark m);


/* ---- growable byte buffer in an arena ------------------------------------ */

typedef struct {
    char *p;
    size_t n, cap;
} glm_jbuf;


/* ---- AST ----------------------------------------------------------------- */

typedef enum {
    /* expressions */
    GLM_JN_CONST, GLM_JN_NAME, GLM_JN_GETATTR, GLM_JN_GETITEM, GLM_JN_SLICE,
    GLM_JN_CALL, GLM_JN_FILTER, GLM_JN_TEST, GLM_JN_LIST, GLM_JN_TUPLE, GLM_JN_DICT,
    GLM_JN_BINOP, GLM_JN_CONCAT, GLM_JN_AND, GLM_JN_OR, GLM_JN_NOT, GLM_JN_NEG,
    GLM_JN_POS, GLM_JN_COMPARE, GLM_JN_CONDEXPR, GLM_JN_NSREF,
    /* statements */
    GLM_JN_DATA, GLM_JN_PRINT, GLM_JN_IF, GLM_JN_FOR, GLM_JN_SET, GLM_JN_SETBLOCK,
    GLM_JN_MACRO, GLM_JN_CALLBLOCK, GLM_JN_FILTERBLOCK, GLM_JN_WITH, GLM_JN_SCOPE,
    GLM_JN_BREAK, GLM_JN_CONTINUE
} glm_jnode_type;

/* binary operators and comparisons (glm_jnode.op) */
enum {
    GLM_JOP_ADD, GLM_JOP_SUB, GLM_JOP_MUL, GLM_JOP_DIV, GLM_JOP_FLOORDIV,
    GLM_JOP_MOD, GLM_JOP_POW,
    GLM_JOP_EQ, GLM_JOP_NE, GLM_JOP_LT, GLM_JOP_LE, GLM_JOP_GT, GLM_JOP_GE,
    GLM_JOP_IN, GLM_JOP_NOTIN
};

typedef struct glm_jnode glm_jnode;

/* Receivers of methods, for the per-attribute method ids a GETATTR node
 * carries (0: none, GLM_JM_UNSAFE: a method the sandbox refuses). */
enum { GLM_JM_STR, GLM_JM_DICT, GLM_JM_LIST, GLM_JM_LOOP, GLM_JM_KINDS };
#define GLM_JM_UNSAFE 0xffffu

typedef struct {
    glm_jnode **v;
    uint32_t n;
} glm_jnodes;

/* Arguments of a call, filter or test. */
typedef struct {
    glm_jnodes pos;
    glm_jinja_value *kwname;    /* STR values, nkw of them */
    glm_jnodes kwval;
    glm_jnode *dyn_args, *dyn_kwargs;
} glm_jargs;

/* A macro definition (also the caller of a call block). */
typedef struct {
    glm_jinja_value name;       /* STR */
    int32_t sym;                /* MACRO: the name's symbol */
    uint32_t nparams;
    int32_t *param_sym;
    glm_jinja_value *param_name;
    glm_jnode **param_default;  /* NULL where there is none */
    glm_jnodes body;
    uint8_t catch_varargs, catch_kwargs, catch_caller;
} glm_jmacro_def;

struct glm_jnode {
    uint8_t type;           /* glm_jnode_type */
    uint8_t op;             /* BINOP/COMPARE operator */
    uint16_t id;            /* FILTER/TEST: builtin id; NAME: global id */
    int32_t line;
    union {
        glm_jinja_value cval;                                       /* CONST, DATA */
        struct { int32_t sym; } name;                               /* NAME */
        struct {                                                    /* GETATTR */
            glm_jnode *obj;
            glm_jinja_value attr;
            uint16_t mid[GLM_JM_KINDS];     /* method ids, resolved when parsing */
        } getattr;
        struct { glm_jnode *obj, *key; } getitem;                   /* GETITEM */
        struct { glm_jnode *start, *stop, *step; } slice;           /* SLICE */
        struct { glm_jnode *fn; glm_jargs args; } call;             /* CALL */
        struct {                                                    /* FILTER, TEST */
            glm_jnode *obj;         /* NULL: the input of a filter block */
            glm_jargs args;
            glm_jinja_value name;
            uint8_t negate;
        } ft;
        struct { glm_jnodes items; } seq;       /* LIST, TUPLE, DICT (k,v,k,v), CONCAT */
        struct { glm_jnode *l, *r; } bin;       /* BINOP, AND, OR */
        struct { glm_jnode *x; } un;            /* NOT, NEG, POS, PRINT */
        struct {                                /* COMPARE */
            glm_jnode *first;
            glm_jnodes rest;
            uint8_t *ops;
        } cmp;
        struct { glm_jnode *test, *yes, *no; } cond;                /* CONDEXPR */
        struct { int32_t sym; glm_jinja_value attr; } nsref;        /* NSREF */
        struct {                                                    /* IF */
            glm_jnode *test;
            glm_jnodes body, orelse;
        } if_;
        struct {                                                    /* FOR */
            glm_jnode *target, *iter, *filter;
            glm_jnodes body, orelse;
            uint8_t recursive;
        } for_;
        struct { glm_jnode *target, *value; } set;                  /* SET */
        struct {                                                    /* SETBLOCK */
            glm_jnode *target, *filter;
            glm_jnodes body;
        } setblock;
        glm_jmacro_def *macro;                                      /* MACRO */
        struct { glm_jnode *call; glm_jmacro_def *caller; } callblock;
        struct { glm_jnode *filter; glm_jnodes body; } filterblock;
        struct {                                                    /* WITH */
            glm_jnodes targets, values;
            glm_jnodes body;
        } with;
        struct { glm_jnodes body; } scope;      /* SCOPE ({% generation %}) */
    } u;
};


/* ---- templates ------------------------------------------------------------ */

/* Well-known symbols: the first names of every template's symbol table. */
enum {
    GLM_JSYM_LOOP = 0, GLM_JSYM_CALLER, GLM_JSYM_VARARGS, GLM_JSYM_KWARGS,
    GLM_JSYM_FIXED_COUNT
};

/* Globals (glm_jnode.id of a NAME; 0 = none) and bound methods: FUNC ids. */
enum {
    GLM_JF_NONE = 0,
    GLM_JF_RANGE, GLM_JF_DICT, GLM_JF_NAMESPACE, GLM_JF_RAISE_EXCEPTION,
    GLM_JF_STRFTIME_NOW,
    GLM_JF_GLOBAL_END,
    /* methods start here; see jinja_builtins.c */
    GLM_JF_METHOD_BASE = 32
};

struct glm_jinja_template {
    glm_jarena arena;
    char *name;
    char *source;
    size_t source_len;
    glm_jnodes body;
    char **sym_name;        /* symbol id -> NUL-terminated name */
    uint32_t *sym_len;
    uint32_t nsym, sym_cap;
    uint32_t *sym_index;    /* hash of names -> id + 1 */
    uint32_t sym_index_cap;
    locale_t loc;           /* C.UTF-8 for Unicode case mapping; 0: ASCII only */
};

int32_t glm_jsym_find(const glm_jinja_template *t, const char *name, size_t n);


/* ---- render state ----------------------------------------------------------- */

typedef struct glm_jscope glm_jscope;
struct glm_jscope {
    glm_jscope *parent;
    int32_t *sym;
    glm_jinja_value *val;
    uint32_t n, cap;
};

typedef struct {
    const glm_jmacro_def *def;
    glm_jscope *scope;          /* where it was defined */
    glm_jinja_value caller;     /* CALLBLOCK callers: none */
} glm_jmacro;

typedef struct {
    int64_t index0, length;
    glm_jinja_list *items;
    glm_jinja_value last_changed;
    int has_changed;
} glm_jloop;

typedef struct {
    glm_jinja_value self;
} glm_jbound;

struct glm_jinja_ctx {
    glm_jarena arena;
    glm_jinja_limits limits;
    /* variables set by glm_jinja_set */
    char **var_name;
    glm_jinja_value *var_val;
    uint32_t nvar, var_cap;
    struct tm now;
    int has_now;
};

typedef struct {
    glm_jinja_ctx *c;
    const glm_jinja_template *t;
    glm_err *err;
    jmp_buf jb;
    glm_jbuf *out;
    size_t out_total;       /* bytes written to every buffer (bounded) */
    uint64_t steps;
    int depth;
    int call_depth;
    int loop_ctl;           /* 0, GLM_JN_BREAK or GLM_JN_CONTINUE pending */
    int line;               /* the line being evaluated, for messages */
    glm_jinja_value noargs[1];  /* what an argument list with no arguments points at */
} glm_jrender;

/* Makes a message one line: newlines become "\n", other control characters
 * spaces (messages quote template text and raise_exception arguments). */
void glm_jone_line(char *msg, size_t cap);

/* Errors: fill err with "line N: ..." and unwind to glm_jinja_render. */
_Noreturn void glm_jfail(glm_jrender *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void *glm_jalloc(glm_jrender *r, size_t n);         /* never NULL */


/* ---- values (jinja_value.c) -------------------------------------------------- */

/* inline constructors for the hot paths (the public glm_jinja_* are calls) */
static inline glm_jinja_value
glm_jvb(int b)
{
    glm_jinja_value v = {GLM_JINJA_BOOL, 0, 0, 0, {.i = b != 0}};

    return v;
}

static inline glm_jinja_value
glm_jvi(int64_t i)
{
    glm_jinja_value v = {GLM_JINJA_INT, 0, 0, 0, {.i = i}};

    return v;
}

static inline glm_jinja_value
glm_jvf(double f)
{
    glm_jinja_value v = {GLM_JINJA_FLOAT, 0, 0, 0, {.f = f}};

    return v;
}

static inline glm_jinja_value
glm_jvnone(void)
{
    glm_jinja_value v = {GLM_JINJA_NONE, 0, 0, 0, {.i = 0}};

    return v;
}

glm_jinja_value glm_jv_str(const char *s, size_t n);         /* no copy */
glm_jinja_value glm_jv_strz(const char *s);                  /* no copy */
glm_jinja_value glm_jv_undef(const char *hint, size_t n, int sub);
glm_jinja_value glm_jv_newstr(glm_jrender *r, const char *s, size_t n);
glm_jinja_value glm_jv_newlist(glm_jrender *r, uint32_t cap);
void glm_jv_push(glm_jrender *r, glm_jinja_value list, glm_jinja_value v);
glm_jinja_value glm_jv_newdict(glm_jrender *r, uint32_t cap);
void glm_jv_dict_put(glm_jrender *r, glm_jinja_value dict, glm_jinja_value k,
                     glm_jinja_value v);
/* NULL when absent; -1 slot for unhashable keys is an error raised by callers */
glm_jinja_value *glm_jv_dict_find(const glm_jinja_dict *d, glm_jinja_value k);
glm_jinja_value *glm_jv_dict_find_str(const glm_jinja_dict *d, const char *s, size_t n);

int glm_jv_truthy(glm_jinja_value v);
int glm_jv_is_str(glm_jinja_value v);
int glm_jv_is_num(glm_jinja_value v);            /* INT, FLOAT, BOOL */
int glm_jv_hashable(glm_jinja_value v);
int glm_jv_eq(glm_jrender *r, glm_jinja_value a, glm_jinja_value b);
/* <0, 0, >0; a TypeError (render error) when Python cannot order them */
int glm_jv_cmp(glm_jrender *r, glm_jinja_value a, glm_jinja_value b);
const char *glm_jv_type_name(glm_jinja_value v);

void glm_jbuf_put(glm_jrender *r, glm_jbuf *b, const char *s, size_t n);
void glm_jbuf_putc(glm_jrender *r, glm_jbuf *b, char ch);
void glm_jbuf_printf(glm_jrender *r, glm_jbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
glm_jinja_value glm_jbuf_value(glm_jrender *r, glm_jbuf *b);    /* copies out */

/* Python str(v) and repr(v) appended to b. */
void glm_jv_write_str(glm_jrender *r, glm_jbuf *b, glm_jinja_value v);
void glm_jv_write_repr(glm_jrender *r, glm_jbuf *b, glm_jinja_value v, int depth);
/* str(v) as a value (strings returned as they are) */
glm_jinja_value glm_jv_to_str(glm_jrender *r, glm_jinja_value v);
/* Python repr(float) */
size_t glm_jv_float_repr(double f, char *out, size_t size);
/* json.dumps; indent NULL = None; item_sep/key_sep NULL = defaults */
void glm_jv_write_json(glm_jrender *r, glm_jbuf *b, glm_jinja_value v, int ensure_ascii,
                       const char *indent, size_t indent_n, const char *item_sep,
                       const char *key_sep, int sort_keys, int depth, int level);

/* UTF-8 helpers (strings are valid UTF-8) */
uint32_t glm_ju8_decode(const char *s, size_t n, size_t *adv);
size_t glm_ju8_encode(uint32_t cp, char *out);
size_t glm_ju8_len(const char *s, size_t n);         /* code points */
int glm_ju8_valid(const char *s, size_t n, size_t *bad_at);
int glm_jpy_isspace(uint32_t cp);
int glm_jpy_isprintable(uint32_t cp);

/* JSON -> values via yajl's event API (arena-backed). */
int glm_jv_parse_json(glm_jarena *a, const char *json, size_t n, glm_jinja_value *out,
                      glm_err *err);
/* dict/list builders on a bare arena (used outside renders); -1 on no memory */
int glm_jv_arena_push(glm_jarena *a, glm_jinja_list *l, glm_jinja_value v);
int glm_jv_arena_dict_put(glm_jarena *a, glm_jinja_dict *d, glm_jinja_value k,
                          glm_jinja_value v, int replace_only_value);
void glm_jv_dict_drop_index(glm_jinja_dict *d);


/* ---- parser (jinja_parse.c) ------------------------------------------------- */

int glm_jparse_template(glm_jinja_template *t, glm_err *err);


/* ---- evaluation (jinja_eval.c) ---------------------------------------------- */

glm_jinja_value glm_jeval(glm_jrender *r, glm_jscope *s, const glm_jnode *n);
/* Calls a callable value with evaluated arguments. */
typedef struct {
    glm_jinja_value *pos;
    uint32_t npos;
    glm_jinja_value *kwname;    /* STR */
    glm_jinja_value *kwval;
    uint32_t nkw;
} glm_jcall_args;
glm_jinja_value glm_jcall(glm_jrender *r, glm_jinja_value fn, glm_jcall_args *a);
/* iteration: a list view of any iterable (dict -> keys, str -> chars) */
glm_jinja_list *glm_jiter(glm_jrender *r, glm_jinja_value v);
glm_jinja_value glm_jgetattr(glm_jrender *r, glm_jinja_value obj, glm_jinja_value name,
                             const uint16_t *mid);
glm_jinja_value glm_jgetitem(glm_jrender *r, glm_jinja_value obj, glm_jinja_value key);
void glm_jstep(glm_jrender *r);
/* UndefinedError for an operation on an undefined value */
_Noreturn void glm_jfail_undefined(glm_jrender *r, glm_jinja_value u);


/* ---- Python's str (jinja_pystr.c) ------------------------------------------- */

/* Case mapping and classification of a code point (Unicode through the
 * template's C.UTF-8 locale, ASCII without one). */
uint32_t glm_jupper_cp(glm_jrender *r, uint32_t cp);
uint32_t glm_jlower_cp(glm_jrender *r, uint32_t cp);
int glm_jis_cased(glm_jrender *r, uint32_t cp);
int glm_jis_alpha(glm_jrender *r, uint32_t cp);
int glm_jis_digit(uint32_t cp);
/* str.upper/lower/swapcase/title/capitalize (casefold is lower) */
enum { GLM_JCASE_UPPER, GLM_JCASE_LOWER, GLM_JCASE_SWAP, GLM_JCASE_TITLE, GLM_JCASE_CAPITALIZE };
glm_jinja_value glm_jcase(glm_jrender *r, glm_jinja_value s, int mode);
/* str.strip/lstrip/rstrip: a view of s; chars NULL strips whitespace */
glm_jinja_value glm_jstrip(glm_jinja_value s, const glm_jinja_value *chars, int left, int right);
/* Byte offset of code point i of s: 0 for i <= 0, n past the end. */
size_t glm_jcp_off(const char *s, size_t n, int64_t i);
/* First / last occurrence of n in h (an empty n: at h's start / end). */
const char *glm_jmemmem(const char *h, size_t hn, const char *n, size_t nn);
const char *glm_jmemrmem(const char *h, size_t hn, const char *n, size_t nn);
/* str.find/rfind: a code-point index, -1 when absent */
int64_t glm_jfind(glm_jinja_value s, glm_jinja_value sub, int from_right);
/* str.split/rsplit (sep NULL: runs of whitespace; maxsplit < 0: no limit) */
glm_jinja_value glm_jsplit(glm_jrender *r, glm_jinja_value s, const glm_jinja_value *sep,
                           int64_t maxsplit, int from_right);
/* str.replace (count < 0: all) */
glm_jinja_value glm_jreplace(glm_jrender *r, glm_jinja_value s, glm_jinja_value old,
                             glm_jinja_value new_, int64_t count);
/* markupsafe.escape: a Markup string (safe strings come back as they are) */
glm_jinja_value glm_jescape(glm_jrender *r, glm_jinja_value v);
/* s padded to width code points with fill; align '<' '>' '^' (format's
 * center) or 'c' (str.center) */
glm_jinja_value glm_jpad(glm_jrender *r, glm_jinja_value s, int64_t width, int align,
                         uint32_t fill);
/* str % args, and str.format(*args, **kwargs) */
glm_jinja_value glm_jpercent(glm_jrender *r, glm_jinja_value fmtv, glm_jinja_value args);
glm_jinja_value glm_jstr_format(glm_jrender *r, glm_jinja_value fmtv, glm_jcall_args *a);


/* ---- builtins (jinja_builtins.c) --------------------------------------------- */

/* Filter and test ids by name: >0 implemented, 0 unknown to jinja2,
 * -1 a jinja2 builtin this interpreter does not implement. */
int glm_jfilter_id(const char *name, size_t n);
int glm_jtest_id(const char *name, size_t n);
int glm_jglobal_id(const char *name, size_t n);     /* GLM_JF_*; -1 unsupported */
glm_jinja_value glm_jfilter_call(glm_jrender *r, int id, const char *name,
                                 glm_jinja_value v, glm_jcall_args *a);
int glm_jtest_call(glm_jrender *r, int id, const char *name, glm_jinja_value v,
                   glm_jcall_args *a);
glm_jinja_value glm_jfunc_call(glm_jrender *r, glm_jinja_value fn, glm_jcall_args *a);
/* The method ids of an attribute name for each receiver kind. */
void glm_jmethod_ids(const char *name, size_t n, uint16_t mid[GLM_JM_KINDS]);
/* The method id for obj (0 none, GLM_JM_UNSAFE refused) from mid[] or, when
 * mid is NULL, by name. */
int glm_jmethod_id(glm_jinja_value obj, const char *name, size_t n, const uint16_t *mid);
/* Method id (from glm_jmethod_id) bound to obj: a FUNC value, or an unsafe
 * Undefined named name for GLM_JM_UNSAFE. */
glm_jinja_value glm_jmethod_bind(glm_jrender *r, glm_jinja_value obj, int id, const char *name,
                                 size_t n);
/* A bound method of obj named name: 1 and *out set (an unsafe Undefined for
 * a refused one), 0 when the type has none. */
int glm_jmethod_lookup(glm_jinja_value obj, const char *name, size_t n,
                       glm_jinja_value *out, glm_jrender *r);
/* Binary and unary operators with Python semantics. */
glm_jinja_value glm_jbinop(glm_jrender *r, int op, glm_jinja_value a, glm_jinja_value b);
int glm_jcontains(glm_jrender *r, glm_jinja_value container, glm_jinja_value item);

#endif
