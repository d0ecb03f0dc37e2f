/*
 * json_schema.c: JSON Schema, the two readings of it.  The compiler turns
 * each tool's parameter schema into the graph of glm_schema nodes that the
 * tool-call grammar (tool_grammar.c) walks to force valid arguments and the
 * output parser (glm_output.c) uses to type them; the validator
 * (glm_schema_check) reads the raw schema tree again, independently, so
 * tests can hold what the grammar produced against the schema itself.  JSON
 * as text (writing, normalizing, the incremental check) is json_text.c's.
 */
#include "json_schema.h"
#include "util/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_MAX_DEPTH   64      /* nesting of schema objects while compiling */

/* ---- small yajl helpers --------------------------------------------------- */

static int
schema_int(yajl_val obj, const char *key, int32_t dflt)
{
    yajl_val v = glm_json_get(obj, key);
    double d;

    if (v == NULL || !YAJL_IS_NUMBER(v)) {
        return dflt;
    }
    d = YAJL_GET_DOUBLE(v);
    if (!(d >= 0)) {
        return dflt;
    }
    return d > 1e9 ? 1000000000 : (int32_t) d;
}

/* characters of UTF-8 text: bytes that do not continue a sequence */
static size_t
schema_chars(const char *p, size_t n)
{
    size_t i, c = 0;

    for (i = 0; i < n; i++) {
        c += ((unsigned char) p[i] & 0xc0) != 0x80;
    }
    return c;
}

/* the GLM_JT_* kind of a parsed value (a number written with . or e is NUM) */
static unsigned
schema_kind_of(yajl_val v)
{
    if (v == NULL || YAJL_IS_NULL(v)) {
        return GLM_JT_NULL;
    }
    if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
        return GLM_JT_BOOL;
    }
    if (YAJL_IS_STRING(v)) {
        return GLM_JT_STR;
    }
    if (YAJL_IS_NUMBER(v)) {
        return strpbrk(v->u.number.r, ".eE") ? GLM_JT_NUM : GLM_JT_INT;
    }
    return YAJL_IS_ARRAY(v) ? GLM_JT_ARR : GLM_JT_OBJ;
}

/* ---- compiling ------------------------------------------------------------ */

typedef struct {
    glm_tools    *t;
    yajl_val      root;            /* the tool's parameters, for $ref */
    yajl_val     *memo_v;          /* schema object -> node, so $ref cycles close */
    glm_schema  **memo_n;
    int           n_memo, cap_memo;
    glm_err      *err;
} schema_ctx;

static glm_schema *
schema_node(glm_tools *t)
{
    glm_schema *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        return NULL;
    }
    if (t->n_nodes == t->cap_nodes) {
        int cap = t->cap_nodes ? 2 * t->cap_nodes : 16;
        glm_schema **p = NULL;
        /* ids are 16-bit in grammar states */
        if (t->n_nodes < 65535) {
            p = realloc(t->nodes, (size_t) cap * sizeof(*p));
        }
        if (p == NULL) {
            free(s);
            return NULL;
        }
        t->nodes = p;
        t->cap_nodes = cap;
    }
    s->id = (uint16_t) t->n_nodes;
    t->nodes[t->n_nodes++] = s;
    s->max_len = -1;
    s->max_items = -1;
    return s;
}

static void
schema_node_free(glm_schema *s)
{
    int i;

    for (i = 0; i < s->n_enum; i++) {
        free(s->enum_json[i]);
    }
    for (i = 0; i < s->n_enum_raw; i++) {
        free(s->enum_raw[i]);
    }
    for (i = 0; i < s->n_props; i++) {
        free(s->prop_names[i]);
    }
    free(s->enum_json);
    free(s->enum_raw);
    free(s->prop_names);
    free(s->props);
    free(s->alts);
    free(s);
}

static int
schema_strcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

/* sorts and drops duplicates; returns the new count */
static int
schema_sort_unique(char **v, int n)
{
    int i, k = 0;

    qsort(v, (size_t) n, sizeof(char *), schema_strcmp);
    for (i = 0; i < n; i++) {
        if (k > 0 && strcmp(v[k - 1], v[i]) == 0) {
            free(v[i]);
            continue;
        }
        v[k++] = v[i];
    }
    return k;
}

static unsigned
schema_type_name(const char *s)
{
    if (strcmp(s, "string") == 0) return GLM_JT_STR;
    if (strcmp(s, "integer") == 0) return GLM_JT_INT;
    if (strcmp(s, "number") == 0) return GLM_JT_INT | GLM_JT_NUM;
    if (strcmp(s, "boolean") == 0) return GLM_JT_BOOL;
    if (strcmp(s, "null") == 0) return GLM_JT_NULL;
    if (strcmp(s, "array") == 0) return GLM_JT_ARR;
    if (strcmp(s, "object") == 0) return GLM_JT_OBJ;
    return GLM_JT_ANY;
}

/* "#/a/b~1c" inside root; NULL when it names nothing */
static yajl_val
schema_pointer(yajl_val root, const char *ref)
{
    char tok[256];
    const char *p;
    yajl_val v = root;

    if (ref[0] != '#') {
        return NULL;
    }
    p = ref + 1;
    while (*p == '/' && v != NULL) {
        size_t n = 0;
        p++;
        while (*p && *p != '/' && n + 1 < sizeof(tok)) {
            if (p[0] == '~' && (p[1] == '0' || p[1] == '1')) {
                tok[n++] = p[1] == '0' ? '~' : '/';
                p += 2;
            } else {
                tok[n++] = *p++;
            }
        }
        tok[n] = '\0';
        if (YAJL_IS_OBJECT(v)) {
            v = glm_json_get(v, tok);
        } else if (YAJL_IS_ARRAY(v)) {
            char *end;
            long i = strtol(tok, &end, 10);
            v = (*end || i < 0 || (size_t) i >= v->u.array.len) ? NULL : v->u.array.values[i];
        } else {
            v = NULL;
        }
    }
    return *p == '\0' ? v : NULL;
}

static glm_schema *schema_compile(schema_ctx *c, yajl_val v, int depth);

static int
schema_compile_enum(schema_ctx *c, glm_schema *s, yajl_val *vals, size_t n)
{
    size_t i;
    unsigned types = 0;

    if (n == 0 || n > GLM_SCHEMA_MAX_ENUM) {
        return 0;
    }
    s->enum_json = calloc(n, sizeof(char *));
    s->enum_raw = calloc(n, sizeof(char *));
    if (s->enum_json == NULL || s->enum_raw == NULL) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        glm_str j = { 0 }, r = { 0 };
        glm_json_write(&j, vals[i]);
        if (YAJL_IS_STRING(vals[i])) {
            glm_str_adds(&r, vals[i]->u.string);
        } else {
            glm_str_add(&r, j.data, j.len);
        }
        s->enum_json[i] = j.data;
        s->enum_raw[i] = r.data ? r.data : strdup("");
        types |= schema_kind_of(vals[i]);
    }
    s->n_enum = schema_sort_unique(s->enum_json, (int) n);
    /* "1" and 1 share a raw form, so this list may be shorter */
    s->n_enum_raw = schema_sort_unique(s->enum_raw, (int) n);
    s->types = types;
    return 0;
}

static int
schema_add_prop(glm_schema *s, const char *name, glm_schema *p)
{
    char **names = realloc(s->prop_names, (size_t) (s->n_props + 1) * sizeof(char *));
    glm_schema **props;

    if (names == NULL) {
        return -1;
    }
    s->prop_names = names;
    props = realloc(s->props, (size_t) (s->n_props + 1) * sizeof(glm_schema *));
    if (props == NULL) {
        return -1;
    }
    s->props = props;
    s->prop_names[s->n_props] = strdup(name);
    s->props[s->n_props] = p;
    if (s->prop_names[s->n_props] == NULL) {
        return -1;
    }
    s->n_props++;
    return 0;
}

static glm_schema *
schema_compile(schema_ctx *c, yajl_val v, int depth)
{
    glm_schema *s;
    yajl_val t, x;
    size_t i;
    int has_type = 0;

    if (v == NULL || !YAJL_IS_OBJECT(v) || depth > SCHEMA_MAX_DEPTH) {
        return c->t->any;
    }
    for (i = 0; i < (size_t) c->n_memo; i++) {
        if (c->memo_v[i] == v) {
            return c->memo_n[i];
        }
    }
    x = glm_json_get(v, "$ref");
    if (x != NULL && YAJL_IS_STRING(x)) {
        yajl_val target = schema_pointer(c->root, x->u.string);
        if (target == NULL) {
            glm_errf(c->err, "$ref '%s' names nothing in the parameters", x->u.string);
            return NULL;
        }
        return schema_compile(c, target, depth + 1);
    }
    s = schema_node(c->t);
    if (s == NULL) {
        glm_errf(c->err, "out of memory (or more than 65535 schema nodes)");
        return NULL;
    }
    if (c->n_memo == c->cap_memo) {
        int cap = c->cap_memo ? 2 * c->cap_memo : 16;
        yajl_val *mv = realloc(c->memo_v, (size_t) cap * sizeof(*mv));
        glm_schema **mn;
        if (mv == NULL) {
            glm_errf(c->err, "out of memory");
            return NULL;
        }
        c->memo_v = mv;
        mn = realloc(c->memo_n, (size_t) cap * sizeof(*mn));
        if (mn == NULL) {
            glm_errf(c->err, "out of memory");
            return NULL;
        }
        c->memo_n = mn;
        c->cap_memo = cap;
    }
    c->memo_v[c->n_memo] = v;
    c->memo_n[c->n_memo++] = s;

    s->types = 0;
    t = glm_json_get(v, "type");
    if (t != NULL && YAJL_IS_STRING(t)) {
        s->types = schema_type_name(t->u.string);
        has_type = 1;
    } else if (t != NULL && YAJL_IS_ARRAY(t)) {
        for (i = 0; i < t->u.array.len; i++) {
            if (YAJL_IS_STRING(t->u.array.values[i])) {
                s->types |= schema_type_name(t->u.array.values[i]->u.string);
            }
        }
        has_type = s->types != 0;
    }
    x = glm_json_get(v, "nullable");
    if (x != NULL && YAJL_IS_TRUE(x) && has_type) {
        s->types |= GLM_JT_NULL;
    }

    /* enum / const: the value set decides; the type only filters it */
    x = glm_json_get(v, "enum");
    if (x == NULL && glm_json_get(v, "const") != NULL) {
        yajl_val cv = glm_json_get(v, "const");
        if (schema_compile_enum(c, s, &cv, 1) != 0) {
            glm_errf(c->err, "out of memory");
            return NULL;
        }
        return s;
    }
    if (x != NULL && YAJL_IS_ARRAY(x) && x->u.array.len > 0
        && x->u.array.len <= GLM_SCHEMA_MAX_ENUM)
    {
        yajl_val *keep = calloc(x->u.array.len, sizeof(yajl_val));
        size_t k = 0;
        if (keep == NULL) {
            glm_errf(c->err, "out of memory");
            return NULL;
        }
        for (i = 0; i < x->u.array.len; i++) {
            unsigned kind = schema_kind_of(x->u.array.values[i]);
            if (!has_type || (kind & s->types)
                || (kind == GLM_JT_NUM && (s->types & GLM_JT_NUM)))
            {
                keep[k++] = x->u.array.values[i];
            }
        }
        if (k > 0) {
            int r = schema_compile_enum(c, s, keep, k);
            free(keep);
            if (r != 0) {
                glm_errf(c->err, "out of memory");
                return NULL;
            }
            return s;
        }
        free(keep);
    }

    /* anyOf / oneOf: a union of branches */
    x = glm_json_get(v, "anyOf");
    if (x == NULL) {
        x = glm_json_get(v, "oneOf");
    }
    if (x != NULL && YAJL_IS_ARRAY(x) && x->u.array.len > 0) {
        unsigned u = 0;
        s->alts = calloc(x->u.array.len, sizeof(glm_schema *));
        if (s->alts == NULL) {
            glm_errf(c->err, "out of memory");
            return NULL;
        }
        for (i = 0; i < x->u.array.len; i++) {
            glm_schema *b = schema_compile(c, x->u.array.values[i], depth + 1);
            if (b == NULL) {
                return NULL;
            }
            s->alts[s->n_alts++] = b;
            u |= b->types;
        }
        s->types = has_type ? (s->types & u) : u;
        if (s->types == 0) {
            s->types = u;
        }
        return s;
    }

    if (!has_type) {
        if (glm_json_get(v, "properties") != NULL || glm_json_get(v, "required") != NULL
            || glm_json_get(v, "additionalProperties") != NULL)
        {
            s->types = GLM_JT_OBJ;
        } else if (glm_json_get(v, "items") != NULL) {
            s->types = GLM_JT_ARR;
        } else {
            s->types = GLM_JT_ANY;
        }
    }

    /* strings */
    s->min_len = schema_int(v, "minLength", 0);
    s->max_len = schema_int(v, "maxLength", -1);
    if (s->max_len >= 0 && s->min_len > s->max_len) {
        s->min_len = s->max_len;
    }

    /* arrays */
    x = glm_json_get(v, "items");
    s->items = (x != NULL && YAJL_IS_OBJECT(x)) ? schema_compile(c, x, depth + 1) : c->t->any;
    if (s->items == NULL) {
        return NULL;
    }
    s->min_items = schema_int(v, "minItems", 0);
    s->max_items = schema_int(v, "maxItems", -1);
    if (s->max_items >= 0 && s->min_items > s->max_items) {
        s->min_items = s->max_items;
    }

    /* objects */
    s->addl = c->t->any;
    x = glm_json_get(v, "additionalProperties");
    if (x != NULL && YAJL_IS_FALSE(x)) {
        s->addl = NULL;
    } else if (x != NULL && YAJL_IS_OBJECT(x)) {
        s->addl = schema_compile(c, x, depth + 1);
        if (s->addl == NULL) {
            return NULL;
        }
    }
    x = glm_json_get(v, "properties");
    if (x != NULL && YAJL_IS_OBJECT(x) && x->u.object.len > 0
        && x->u.object.len <= GLM_SCHEMA_MAX_PROPS)
    {
        for (i = 0; i < x->u.object.len; i++) {
            glm_schema *p = schema_compile(c, x->u.object.values[i], depth + 1);
            if (p == NULL || schema_add_prop(s, x->u.object.keys[i], p) != 0) {
                if (p != NULL) {
                    glm_errf(c->err, "out of memory");
                }
                return NULL;
            }
        }
    }
    x = glm_json_get(v, "required");
    /* (with more than 64 properties the keys are free and nothing is tracked) */
    if (x != NULL && YAJL_IS_ARRAY(x) && (glm_json_get(v, "properties") == NULL || s->n_props > 0)) {
        for (i = 0; i < x->u.array.len; i++) {
            const char *name;
            int k;
            if (!YAJL_IS_STRING(x->u.array.values[i])) {
                continue;
            }
            name = x->u.array.values[i]->u.string;
            for (k = 0; k < s->n_props && strcmp(s->prop_names[k], name) != 0; k++) {
            }
            if (k == s->n_props) {
                /* required but undeclared: it must be writable, so declare it
                 * with the additionalProperties schema */
                if (s->n_props == GLM_SCHEMA_MAX_PROPS) {
                    continue;
                }
                if (schema_add_prop(s, name, s->addl ? s->addl : c->t->any) != 0) {
                    glm_errf(c->err, "out of memory");
                    return NULL;
                }
            }
            s->required |= 1ull << k;
        }
    }
    return s;
}

int
glm_tools_find(const glm_tools *t, const char *name, size_t len)
{
    int i;

    for (i = 0; t != NULL && i < t->n; i++) {
        if (strlen(t->tools[i].name) == len && memcmp(t->tools[i].name, name, len) == 0) {
            return i;
        }
    }
    return -1;
}

const glm_schema *
glm_tools_arg_schema(const glm_tools *t, int tool, const char *key, size_t len)
{
    const glm_schema *p;
    int i;

    if (t == NULL || tool < 0 || tool >= t->n) {
        return t ? t->any : NULL;
    }
    p = t->tools[tool].params;
    if (p->n_alts > 0 || !(p->types & GLM_JT_OBJ)) {
        return t->any;
    }
    for (i = 0; i < p->n_props; i++) {
        if (strlen(p->prop_names[i]) == len && memcmp(p->prop_names[i], key, len) == 0) {
            return p->props[i];
        }
    }
    return p->addl ? p->addl : t->any;
}

void
glm_tools_free(glm_tools *t)
{
    int i;

    if (t == NULL) {
        return;
    }
    for (i = 0; i < t->n; i++) {
        free(t->tools[i].name);
    }
    for (i = 0; i < t->n_nodes; i++) {
        schema_node_free(t->nodes[i]);
    }
    free(t->nodes);
    free(t->tools);
    free(t);
}

glm_tools *
glm_tools_parse(yajl_val tools, glm_err *err)
{
    glm_tools *t;
    schema_ctx c;
    size_t i;

    if (tools == NULL || !YAJL_IS_ARRAY(tools)) {
        glm_errf(err, "'tools' must be a list of {\"type\": \"function\", \"function\": {...}}");
        return NULL;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL || (t->any = schema_node(t)) == NULL) {
        free(t);
        glm_errf(err, "out of memory");
        return NULL;
    }
    t->any->types = GLM_JT_ANY;
    t->any->items = t->any;
    t->any->addl = t->any;
    t->tools = calloc(tools->u.array.len + 1, sizeof(glm_tool));
    if (t->tools == NULL) {
        glm_tools_free(t);
        glm_errf(err, "out of memory");
        return NULL;
    }
    memset(&c, 0, sizeof(c));
    c.t = t;
    c.err = err;
    for (i = 0; i < tools->u.array.len; i++) {
        yajl_val tool = tools->u.array.values[i], f, name, params, type;

        type = glm_json_get(tool, "type");
        f = glm_json_get(tool, "function");
        name = glm_json_get(f, "name");
        if (!YAJL_IS_OBJECT(tool) || (type != NULL && !(YAJL_IS_STRING(type)
                                      && strcmp(type->u.string, "function") == 0)))
        {
            glm_errf(err, "tools[%zu]: only {\"type\": \"function\", ...} tools are supported", i);
            goto fail;
        }
        if (f == NULL || !YAJL_IS_OBJECT(f) || name == NULL || !YAJL_IS_STRING(name)
            || name->u.string[0] == '\0')
        {
            glm_errf(err, "tools[%zu].function.name must be a non-empty string", i);
            goto fail;
        }
        if (glm_tools_find(t, name->u.string, strlen(name->u.string)) >= 0) {
            glm_errf(err, "tools[%zu]: the name '%s' is used twice", i, name->u.string);
            goto fail;
        }
        params = glm_json_get(f, "parameters");
        if (params != NULL && !YAJL_IS_OBJECT(params) && !YAJL_IS_NULL(params)) {
            glm_errf(err, "tools[%zu].function.parameters must be a JSON schema object", i);
            goto fail;
        }
        c.root = params;
        c.n_memo = 0;
        t->tools[t->n].name = strdup(name->u.string);
        if (params == NULL || YAJL_IS_NULL(params)) {
            /* no schema: an object with free keys (vLLM accepts any) */
            glm_schema *s = schema_node(t);
            if (s == NULL) {
                glm_errf(err, "out of memory");
                goto fail;
            }
            s->types = GLM_JT_OBJ;
            s->items = t->any;
            s->addl = t->any;
            t->tools[t->n].params = s;
        } else {
            t->tools[t->n].params = schema_compile(&c, params, 0);
            if (t->tools[t->n].params == NULL) {
                glm_err_prefix(err, "tools[%zu].function.parameters", i);
                t->n++;
                goto fail;
            }
        }
        t->n++;
    }
    free(c.memo_v);
    free(c.memo_n);
    return t;
fail:
    free(c.memo_v);
    free(c.memo_n);
    glm_tools_free(t);
    return NULL;
}

/* ---- the validator -------------------------------------------------------- */

/* One more schema (a structured-output response) into t, created when *t is
 * NULL: it shares the nodes, so one grammar walks tools and response. */
int
glm_tools_add_schema(glm_tools **tp, yajl_val schema, glm_err *err)
{
    glm_tools *t = *tp;
    glm_schema *root;
    schema_ctx c;

    if (t == NULL) {
        t = calloc(1, sizeof(*t));
        if (t == NULL || (t->any = schema_node(t)) == NULL
            || (t->tools = calloc(1, sizeof(glm_tool))) == NULL)
        {
            glm_tools_free(t);
            return glm_errf(err, "out of memory");
        }
        t->any->types = GLM_JT_ANY;
        t->any->items = t->any;
        t->any->addl = t->any;
        *tp = t;
    }
    memset(&c, 0, sizeof(c));
    c.t = t;
    c.err = err;
    c.root = schema;
    root = schema_compile(&c, schema, 0);
    free(c.memo_v);
    free(c.memo_n);
    return root == NULL ? -1 : root->id;
}

static int schema_check(yajl_val root, yajl_val s, yajl_val v, glm_str *path,
                        char *why, size_t n, int depth);

static int
schema_fail(char *why, size_t n, const glm_str *path, const char *msg)
{
    snprintf(why, n, "%s: %s", path->data ? path->data : "$", msg);
    return 0;
}

int
glm_schema_equal(yajl_val a, yajl_val b)
{
    size_t i, k;

    if (schema_kind_of(a) == GLM_JT_INT || schema_kind_of(a) == GLM_JT_NUM) {
        return YAJL_IS_NUMBER(b) && YAJL_GET_DOUBLE(a) == YAJL_GET_DOUBLE(b);
    }
    if (schema_kind_of(a) != schema_kind_of(b)) {
        return 0;
    }
    if (YAJL_IS_TRUE(a) != YAJL_IS_TRUE(b)) {
        return 0;
    }
    if (YAJL_IS_STRING(a)) {
        return strcmp(a->u.string, b->u.string) == 0;
    }
    if (YAJL_IS_ARRAY(a)) {
        if (a->u.array.len != b->u.array.len) {
            return 0;
        }
        for (i = 0; i < a->u.array.len; i++) {
            if (!glm_schema_equal(a->u.array.values[i], b->u.array.values[i])) {
                return 0;
            }
        }
        return 1;
    }
    if (YAJL_IS_OBJECT(a)) {
        if (a->u.object.len != b->u.object.len) {
            return 0;
        }
        for (i = 0; i < a->u.object.len; i++) {
            yajl_val bv = NULL;
            for (k = 0; k < b->u.object.len; k++) {
                if (strcmp(a->u.object.keys[i], b->u.object.keys[k]) == 0) {
                    bv = b->u.object.values[k];
                }
            }
            if (bv == NULL || !glm_schema_equal(a->u.object.values[i], bv)) {
                return 0;
            }
        }
        return 1;
    }
    return 1;
}

static int
schema_type_ok(const char *t, yajl_val v)
{
    if (strcmp(t, "string") == 0) return YAJL_IS_STRING(v);
    if (strcmp(t, "number") == 0) return YAJL_IS_NUMBER(v);
    if (strcmp(t, "integer") == 0) {
        return YAJL_IS_NUMBER(v) && floor(YAJL_GET_DOUBLE(v)) == YAJL_GET_DOUBLE(v)
               && isfinite(YAJL_GET_DOUBLE(v));
    }
    if (strcmp(t, "boolean") == 0) return YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v);
    if (strcmp(t, "null") == 0) return v == NULL || YAJL_IS_NULL(v);
    if (strcmp(t, "array") == 0) return YAJL_IS_ARRAY(v);
    if (strcmp(t, "object") == 0) return YAJL_IS_OBJECT(v);
    return 1;
}

static int
schema_check(yajl_val root, yajl_val s, yajl_val v, glm_str *path, char *why, size_t n,
             int depth)
{
    yajl_val x;
    size_t i, k, mark = path->len;

    if (s == NULL || !YAJL_IS_OBJECT(s)) {
        return 1;
    }
    if (depth > SCHEMA_MAX_DEPTH) {
        return schema_fail(why, n, path, "schema nested too deeply");
    }
    x = glm_json_get(s, "$ref");
    if (x != NULL && YAJL_IS_STRING(x)) {
        yajl_val t = schema_pointer(root, x->u.string);
        if (t == NULL) {
            return schema_fail(why, n, path, "unresolvable $ref");
        }
        return schema_check(root, t, v, path, why, n, depth + 1);
    }
    x = glm_json_get(s, "type");
    if (x != NULL) {
        int ok = 0;
        if (YAJL_IS_STRING(x)) {
            ok = schema_type_ok(x->u.string, v);
        } else if (YAJL_IS_ARRAY(x)) {
            for (i = 0; i < x->u.array.len; i++) {
                ok |= YAJL_IS_STRING(x->u.array.values[i])
                      && schema_type_ok(x->u.array.values[i]->u.string, v);
            }
        }
        if (!ok && YAJL_IS_TRUE(glm_json_get(s, "nullable")) && YAJL_IS_NULL(v)) {
            ok = 1;
        }
        if (!ok) {
            return schema_fail(why, n, path, "wrong type");
        }
    }
    x = glm_json_get(s, "enum");
    if (x != NULL && YAJL_IS_ARRAY(x)) {
        int ok = 0;
        for (i = 0; i < x->u.array.len; i++) {
            ok |= glm_schema_equal(x->u.array.values[i], v);
        }
        if (!ok) {
            return schema_fail(why, n, path, "not one of the enum values");
        }
    }
    x = glm_json_get(s, "const");
    if (x != NULL && !glm_schema_equal(x, v)) {
        return schema_fail(why, n, path, "not the const value");
    }
    x = glm_json_get(s, "anyOf");
    if (x != NULL && YAJL_IS_ARRAY(x)) {
        int ok = 0;
        for (i = 0; i < x->u.array.len && !ok; i++) {
            ok = schema_check(root, x->u.array.values[i], v, path, why, n, depth + 1);
        }
        if (!ok) {
            return schema_fail(why, n, path, "matches no anyOf branch");
        }
    }
    x = glm_json_get(s, "oneOf");
    if (x != NULL && YAJL_IS_ARRAY(x)) {
        int hits = 0;
        for (i = 0; i < x->u.array.len; i++) {
            hits += schema_check(root, x->u.array.values[i], v, path, why, n, depth + 1);
        }
        if (hits != 1) {
            return schema_fail(why, n, path, "does not match exactly one oneOf branch");
        }
    }
    if (YAJL_IS_STRING(v)) {
        size_t c = schema_chars(v->u.string, strlen(v->u.string));
        if (c < (size_t) schema_int(s, "minLength", 0)) {
            return schema_fail(why, n, path, "shorter than minLength");
        }
        if (schema_int(s, "maxLength", -1) >= 0 && c > (size_t) schema_int(s, "maxLength", -1)) {
            return schema_fail(why, n, path, "longer than maxLength");
        }
    }
    if (YAJL_IS_ARRAY(v)) {
        x = glm_json_get(s, "items");
        if (v->u.array.len < (size_t) schema_int(s, "minItems", 0)) {
            return schema_fail(why, n, path, "fewer than minItems");
        }
        if (schema_int(s, "maxItems", -1) >= 0
            && v->u.array.len > (size_t) schema_int(s, "maxItems", -1))
        {
            return schema_fail(why, n, path, "more than maxItems");
        }
        for (i = 0; x != NULL && i < v->u.array.len; i++) {
            glm_str_addf(path, "[%zu]", i);
            if (!schema_check(root, x, v->u.array.values[i], path, why, n, depth + 1)) {
                return 0;
            }
            path->len = mark;
            path->data[mark] = '\0';
        }
    }
    if (YAJL_IS_OBJECT(v)) {
        yajl_val props = glm_json_get(s, "properties"), addl = glm_json_get(s, "additionalProperties");
        x = glm_json_get(s, "required");
        for (i = 0; x != NULL && YAJL_IS_ARRAY(x) && i < x->u.array.len; i++) {
            yajl_val r = x->u.array.values[i];
            if (YAJL_IS_STRING(r) && glm_json_get(v, r->u.string) == NULL) {
                char msg[300];
                snprintf(msg, sizeof(msg), "required key '%.200s' missing", r->u.string);
                return schema_fail(why, n, path, msg);
            }
        }
        for (k = 0; k < v->u.object.len; k++) {
            yajl_val ps = glm_json_get(props, v->u.object.keys[k]);
            glm_str_addf(path, ".%s", v->u.object.keys[k]);
            if (ps == NULL && addl != NULL && YAJL_IS_FALSE(addl)) {
                return schema_fail(why, n, path, "undeclared key");
            }
            if (!schema_check(root, ps != NULL ? ps : addl, v->u.object.values[k], path, why,
                              n, depth + 1))
            {
                return 0;
            }
            path->len = mark;
            path->data[mark] = '\0';
        }
    }
    return 1;
}

int
glm_schema_check(yajl_val root, yajl_val schema, yajl_val value, char *why, size_t why_size)
{
    glm_str path = { 0 };
    int ok;

    glm_str_adds(&path, "$");
    why[0] = '\0';
    ok = schema_check(root, schema, value, &path, why, why_size, 0);
    glm_str_free(&path);
    return ok;
}
