/*
 * jinja.h: a Jinja2-subset interpreter for chat templates, written so that a
 * template renders byte-for-byte what transformers' apply_chat_template
 * renders with Python's jinja2 (ImmutableSandboxedEnvironment, trim_blocks,
 * lstrip_blocks, loopcontrols, the {% generation %} tag, transformers' tojson /
 * raise_exception / strftime_now / dict / namespace).
 *
 * jinja2's semantics are the specification: Python str/int/float/None
 * rendering (float repr, True/None, list and dict repr), truthiness, integer
 * vs float division, negative indexing, slices with steps, jinja2's
 * Undefined (prints as "", iterates as empty, fails on attribute access or
 * arithmetic), the sandbox (no list.append, no dunder attributes, range() at
 * most 100000 items), jinja2's scoping (a for body is one scope, if is none,
 * macros are closures), whitespace control and the lexer's exact rules.
 *
 * Life cycle:
 *   glm_jinja_parse()    once at start-up: the whole template is checked, and
 *                        anything this interpreter does not implement (a tag,
 *                        filter, test or global it lacks) is an error naming
 *                        the construct and the line.  The result is read-only
 *                        and may be shared by any number of threads.
 *   glm_jinja_ctx_new()  one per thread: an arena that holds the variables and
 *                        every value and string one render makes.
 *   glm_jinja_set() ...  variables (JSON-shaped values, see below).
 *   glm_jinja_render()   render; errors at render time (raise_exception, a
 *                        type error, undefined attribute access, a limit) come
 *                        back as one line and never crash.
 *   glm_jinja_ctx_reset() between renders (keeps the memory).
 *
 * Limits (glm_jinja_limits): output size, arena memory, evaluation steps and
 * nesting depth are bounded, so `{% for i in range(10**9) %}` or a deeply
 * recursive macro is an error, not a hang or a stack overflow.
 *
 * Values: glm_jinja_value is a small tagged value (16 bytes) passed by value.
 * Strings are UTF-8 (validated on the way in), lists and dicts keep insertion
 * order (JSON object order, as Python's dict does).  Integers are int64;
 * JSON integers beyond int64 are kept as decimal text (they print and tojson
 * exactly; arithmetic on them is an error).  Values live in a ctx and are
 * valid until its reset/free.  The builder functions below are for callers
 * that prepare variables (chat_template.c); during a render values are
 * immutable (the sandbox forbids mutation), so they may be shared freely.
 */
#ifndef GLM_JINJA_H
#define GLM_JINJA_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/util.h"

typedef struct glm_jinja_template glm_jinja_template;
typedef struct glm_jinja_ctx glm_jinja_ctx;
typedef struct glm_jinja_list glm_jinja_list;
typedef struct glm_jinja_dict glm_jinja_dict;

typedef enum {
    GLM_JINJA_UNDEFINED = 0,
    GLM_JINJA_NONE,
    GLM_JINJA_BOOL,
    GLM_JINJA_INT,
    GLM_JINJA_FLOAT,
    GLM_JINJA_STR,
    GLM_JINJA_LIST,     /* also tuples and iterators (flags) */
    GLM_JINJA_DICT,
    GLM_JINJA_BIGINT,   /* integer beyond int64, as decimal text in u.s/n */
    /* made only by templates */
    GLM_JINJA_NAMESPACE,
    GLM_JINJA_MACRO,
    GLM_JINJA_LOOP,
    GLM_JINJA_FUNC,     /* a global function or a bound method */
    GLM_JINJA_KIND_COUNT
} glm_jinja_kind;

typedef struct {
    uint8_t kind;       /* glm_jinja_kind */
    uint8_t flags;      /* GLM_JINJA_F_*, jinja_internal.h */
    uint16_t sub;       /* kind-specific tag (function id, undefined kind) */
    uint32_t n;         /* string length in bytes (STR, BIGINT, UNDEFINED hint) */
    union {
        int64_t i;      /* BOOL (0/1), INT */
        double f;       /* FLOAT */
        const char *s;  /* STR, BIGINT, UNDEFINED (name hint, may be NULL) */
        glm_jinja_list *list;
        glm_jinja_dict *dict;   /* DICT, NAMESPACE */
        void *p;
    } u;
} glm_jinja_value;

typedef struct {
    size_t max_output;      /* bytes of rendered text; default 16 MiB */
    size_t max_memory;      /* arena bytes per render; default 256 MiB */
    uint64_t max_steps;     /* evaluation steps; default 50,000,000 */
    int max_depth;          /* nested evaluation depth; default 400 */
    int max_call_depth;     /* nested macro calls; default 100 */
} glm_jinja_limits;


/* ---- templates ---------------------------------------------------------- */

/* Parses and checks a template.  name appears in messages ("<name>:<line>:
 * ...").  NULL with err on a syntax error or an unsupported construct. */
glm_jinja_template *glm_jinja_parse(const char *src, size_t len, const char *name,
                                    glm_err *err);
void glm_jinja_free(glm_jinja_template *t);

/* The source as given (transformers checks some things by substring). */
const char *glm_jinja_source(const glm_jinja_template *t, size_t *len);


/* ---- render contexts ---------------------------------------------------- */

/* limits NULL: defaults. */
glm_jinja_ctx *glm_jinja_ctx_new(const glm_jinja_limits *limits, glm_err *err);
void glm_jinja_ctx_free(glm_jinja_ctx *c);
/* Drops the variables and every value and output of the previous render. */
void glm_jinja_ctx_reset(glm_jinja_ctx *c);
/* Pins what strftime_now() sees (a naive local time, as datetime.now());
 * NULL: the real local time at each call.  Survives reset. */
void glm_jinja_ctx_set_now(glm_jinja_ctx *c, const struct tm *now);

/* A point in c's memory: rewinding to it drops every value and output made
 * since (renders of the same variables, without rebuilding them). */
typedef struct {
    void *chunk;
    size_t used, total;
} glm_jinja_mark;
glm_jinja_mark glm_jinja_ctx_mark(glm_jinja_ctx *c);
/* Values made after the mark must not be in use any more; variables set
 * before it stay. */
void glm_jinja_ctx_rewind(glm_jinja_ctx *c, glm_jinja_mark m);

/* Sets (or replaces) a template variable. */
int glm_jinja_set(glm_jinja_ctx *c, const char *name, glm_jinja_value v, glm_err *err);

/*
 * Renders t with c's variables.  *out (NUL-terminated, *out_len bytes) is
 * valid until c is reset or freed.  -1 with a one-line err ("line N: why")
 * on any render error.
 */
int glm_jinja_render(const glm_jinja_template *t, glm_jinja_ctx *c,
                     const char **out, size_t *out_len, glm_err *err);


/* ---- values (for preparing variables) ------------------------------------ */

glm_jinja_value glm_jinja_none(void);
glm_jinja_value glm_jinja_bool(int b);
glm_jinja_value glm_jinja_int(int64_t i);
glm_jinja_value glm_jinja_float(double f);
/* Copies n bytes of UTF-8 into c; -1 when invalid UTF-8 or out of memory. */
int glm_jinja_str(glm_jinja_ctx *c, const char *s, size_t n, glm_jinja_value *out,
                  glm_err *err);
/* Parses one JSON value (yajl; integers stay integers, object key order is
 * kept, a repeated key keeps its first position and last value, as
 * json.loads does). */
int glm_jinja_from_json(glm_jinja_ctx *c, const char *json, size_t n,
                        glm_jinja_value *out, glm_err *err);
int glm_jinja_list_new(glm_jinja_ctx *c, glm_jinja_value *out, glm_err *err);
int glm_jinja_list_push(glm_jinja_ctx *c, glm_jinja_value list, glm_jinja_value v,
                        glm_err *err);
int glm_jinja_dict_new(glm_jinja_ctx *c, glm_jinja_value *out, glm_err *err);
/* Replaces the value of key in place, or appends key at the end. */
int glm_jinja_dict_set(glm_jinja_ctx *c, glm_jinja_value dict, const char *key,
                       glm_jinja_value v, glm_err *err);
/* Inserts key at position pos (0 = first), or replaces its value in place
 * when it is already there. */
int glm_jinja_dict_insert(glm_jinja_ctx *c, glm_jinja_value dict, size_t pos,
                          const char *key, glm_jinja_value v, glm_err *err);
/* Removes key (string keys); 1 when it was there. */
int glm_jinja_dict_del(glm_jinja_value dict, const char *key);
/* The value of a string key, or NULL. */
glm_jinja_value *glm_jinja_dict_get(glm_jinja_value dict, const char *key);
/* Items of a list or dict (0 for anything else). */
size_t glm_jinja_len(glm_jinja_value v);
glm_jinja_value *glm_jinja_list_at(glm_jinja_value list, size_t i);
glm_jinja_value *glm_jinja_dict_key_at(glm_jinja_value dict, size_t i);
glm_jinja_value *glm_jinja_dict_val_at(glm_jinja_value dict, size_t i);

/*
 * json.dumps(v, ensure_ascii, indent, separators=None, sort_keys=False) as
 * transformers' tojson filter calls it; indent < 0 means None.  The text is in
 * c (valid until reset).  -1 on a value JSON cannot hold.
 */
int glm_jinja_tojson(glm_jinja_ctx *c, glm_jinja_value v, int ensure_ascii, int indent,
                     const char **out, size_t *out_len, glm_err *err);

#endif
