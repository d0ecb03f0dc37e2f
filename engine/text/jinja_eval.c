/*
 * jinja_eval.c: renders a parsed template: statements, expressions, scopes,
 * macros, attribute and item access, plus the public template/context API.
 *
 * Scoping is jinja2's, which its compiler gets from Python's own scoping:
 *   - the template body is the root scope; the context's variables live there
 *     and top-level {% set %} writes there;
 *   - an if has no scope of its own;
 *   - a for loop's body gets a scope that starts empty at every iteration
 *     (a {% set %} in the body is gone at the next iteration and after the
 *     loop), reading through to the enclosing scopes;
 *   - a macro is a closure: its call scope's parent is the scope the macro
 *     was defined in, looked up at call time (late binding, as Python
 *     closures); {% set %} inside it stays inside;
 *   - set blocks, filter blocks, with and call-block bodies get their own
 *     scope;
 *   - namespace() objects are the only thing a template can mutate.
 * Undefined is jinja2's default Undefined: it prints as "", iterates as
 * empty, is falsy, equals only another Undefined, and fails on attribute or
 * item access, calls, arithmetic and ordering.
 */
#include "jinja_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors and allocation ------------------------------------------------------ */

void
glm_jfail(glm_jrender *r, const char *fmt, ...)
{
    char msg[GLM_ERR_MAX / 2];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    glm_errf(r->err, "%s:%d: %s", r->t != NULL ? r->t->name : "template", r->line, msg);
    if (r->err != NULL) {
        glm_jone_line(r->err->msg, sizeof(r->err->msg));
    }
    longjmp(r->jb, 1);
}

void *
glm_jalloc(glm_jrender *r, size_t n)
{
    void *p = glm_jarena_alloc(&r->c->arena, n);

    if (p == NULL) {
        glm_jfail(r, "render exceeds the memory limit (%zu bytes)", r->c->limits.max_memory);
    }
    return p;
}

void
glm_jstep(glm_jrender *r)
{
    if (++r->steps > r->c->limits.max_steps) {
        glm_jfail(r, "render exceeds the evaluation step limit (%llu steps)",
                  (unsigned long long) r->c->limits.max_steps);
    }
}

void
glm_jfail_undefined(glm_jrender *r, glm_jinja_value u)
{
    const char *hint = u.u.s != NULL ? u.u.s : "value";
    int n = (int) (u.u.s != NULL ? u.n : 5);

    switch (u.sub) {
    case GLM_JU_UNSAFE:
        glm_jfail(r, "SecurityError: access to attribute '%.*s' is unsafe", n, hint);
    case GLM_JU_MISSING_ARG:
        glm_jfail(r, "UndefinedError: parameter '%.*s' was not provided", n, hint);
    case GLM_JU_NO_ITEM:
        glm_jfail(r, "UndefinedError: %.*s", n, hint);
    default:
        if (u.flags != 0) {
            glm_jinja_value owner;

            memset(&owner, 0, sizeof(owner));
            owner.kind = (uint8_t) (u.flags - 1);
            glm_jfail(r, "UndefinedError: '%s object' has no attribute '%.*s'",
                      glm_jv_type_name(owner), n, hint);
        }
        glm_jfail(r, "UndefinedError: '%.*s' is undefined", n, hint);
    }
}

/* An Undefined produced by looking up name on obj (for the message). */
static glm_jinja_value
glm_jundef_attr(glm_jinja_value obj, const char *name, size_t n)
{
    glm_jinja_value u = glm_jv_undef(name, n, GLM_JU_PLAIN);

    u.flags = (uint8_t) (obj.kind + 1);
    return u;
}


/* ---- scopes ----------------------------------------------------------------------- */

static glm_jscope *
glm_jscope_new(glm_jrender *r, glm_jscope *parent)
{
    glm_jscope *s = glm_jalloc(r, sizeof(*s));

    memset(s, 0, sizeof(*s));
    s->parent = parent;
    return s;
}

static glm_jinja_value *
glm_jscope_find(glm_jscope *s, int32_t sym)
{
    uint32_t i;

    for (; s != NULL; s = s->parent) {
        for (i = 0; i < s->n; i++) {
            if (s->sym[i] == sym) {
                return &s->val[i];
            }
        }
    }
    return NULL;
}

static void
glm_jscope_set(glm_jrender *r, glm_jscope *s, int32_t sym, glm_jinja_value v)
{
    uint32_t i;

    for (i = 0; i < s->n; i++) {
        if (s->sym[i] == sym) {
            s->val[i] = v;
            return;
        }
    }
    if (s->n == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 8;
        int32_t *ns = glm_jalloc(r, cap * sizeof(*ns));
        glm_jinja_value *nv = glm_jalloc(r, cap * sizeof(*nv));

        if (s->n > 0) {
            memcpy(ns, s->sym, s->n * sizeof(*ns));
            memcpy(nv, s->val, s->n * sizeof(*nv));
        }
        s->sym = ns;
        s->val = nv;
        s->cap = cap;
    }
    s->sym[s->n] = sym;
    s->val[s->n] = v;
    s->n++;
}


/* ---- iteration, attributes, items ------------------------------------------------------ */

glm_jinja_list *
glm_jiter(glm_jrender *r, glm_jinja_value v)
{
    glm_jinja_value out;
    uint32_t i;

    switch (v.kind) {
    case GLM_JINJA_LIST:
        if (v.flags & GLM_JINJA_F_BROKEN) {
            glm_jinja_value orig;

            memset(&orig, 0, sizeof(orig));
            orig.kind = (uint8_t) v.sub;
            glm_jfail(r, "TypeError: '%s' object is not iterable", glm_jv_type_name(orig));
        }
        return v.u.list;
    case GLM_JINJA_DICT:
        out = glm_jv_newlist(r, v.u.dict->n);
        for (i = 0; i < v.u.dict->n; i++) {
            out.u.list->v[i] = v.u.dict->k[i];
        }
        out.u.list->n = v.u.dict->n;
        return out.u.list;
    case GLM_JINJA_STR: {
        size_t pos = 0, adv;

        out = glm_jv_newlist(r, (uint32_t) glm_ju8_len(v.u.s, v.n));
        while (pos < v.n) {
            glm_ju8_decode(v.u.s + pos, v.n - pos, &adv);
            out.u.list->v[out.u.list->n++] = glm_jv_str(v.u.s + pos, adv);
            pos += adv;
        }
        return out.u.list;
    }
    case GLM_JINJA_UNDEFINED:
        out = glm_jv_newlist(r, 0);
        return out.u.list;
    default:
        glm_jfail(r, "TypeError: '%s' object is not iterable", glm_jv_type_name(v));
    }
}

static glm_jinja_value
glm_jloop_attr(glm_jrender *r, glm_jinja_value obj, const char *name, size_t n)
{
    glm_jloop *l = obj.u.p;

#define IS(lit) (n == sizeof(lit) - 1 && memcmp(name, lit, n) == 0)
    if (IS("index")) {
        return glm_jvi(l->index0 + 1);
    }
    if (IS("index0")) {
        return glm_jvi(l->index0);
    }
    if (IS("revindex")) {
        return glm_jvi(l->length - l->index0);
    }
    if (IS("revindex0")) {
        return glm_jvi(l->length - l->index0 - 1);
    }
    if (IS("first")) {
        return glm_jvb(l->index0 == 0);
    }
    if (IS("last")) {
        return glm_jvb(l->index0 == l->length - 1);
    }
    if (IS("length")) {
        return glm_jvi(l->length);
    }
    if (IS("depth")) {
        return glm_jvi(1);
    }
    if (IS("depth0")) {
        return glm_jvi(0);
    }
    if (IS("previtem")) {
        if (l->index0 == 0) {
            return glm_jv_undef("there is no previous item", 25, GLM_JU_NO_ITEM);
        }
        return l->items->v[l->index0 - 1];
    }
    if (IS("nextitem")) {
        if (l->index0 + 1 >= l->length) {
            return glm_jv_undef("there is no next item", 21, GLM_JU_NO_ITEM);
        }
        return l->items->v[l->index0 + 1];
    }
#undef IS
    {
        glm_jinja_value m;

        if (glm_jmethod_lookup(obj, name, n, &m, r)) {
            return m;
        }
    }
    return glm_jundef_attr(obj, name, n);
}

glm_jinja_value
glm_jgetattr(glm_jrender *r, glm_jinja_value obj, glm_jinja_value name, const uint16_t *mid)
{
    glm_jinja_value *v;
    int id;

    if (obj.kind == GLM_JINJA_UNDEFINED) {
        glm_jfail_undefined(r, obj);
    }
    if (name.n >= 2 && name.u.s[0] == '_' && name.u.s[1] == '_') {
        /* dunder attributes exist on every Python object; the sandbox
         * refuses them */
        if (obj.kind == GLM_JINJA_DICT
            && (v = glm_jv_dict_find_str(obj.u.dict, name.u.s, name.n)) != NULL) {
            return *v;
        }
        return glm_jv_undef(name.u.s, name.n, GLM_JU_UNSAFE);
    }
    switch (obj.kind) {
    case GLM_JINJA_NAMESPACE:
        v = glm_jv_dict_find_str(obj.u.dict, name.u.s, name.n);
        return v != NULL ? *v : glm_jundef_attr(obj, name.u.s, name.n);
    case GLM_JINJA_LOOP:
        return glm_jloop_attr(r, obj, name.u.s, name.n);
    case GLM_JINJA_DICT:
        /* Python getattr first: d.items is the method even with an "items" key */
        id = glm_jmethod_id(obj, name.u.s, name.n, mid);
        if (id != 0) {
            return glm_jmethod_bind(r, obj, id, name.u.s, name.n);
        }
        v = glm_jv_dict_find_str(obj.u.dict, name.u.s, name.n);
        return v != NULL ? *v : glm_jundef_attr(obj, name.u.s, name.n);
    default:
        id = glm_jmethod_id(obj, name.u.s, name.n, mid);
        if (id != 0) {
            return glm_jmethod_bind(r, obj, id, name.u.s, name.n);
        }
        return glm_jundef_attr(obj, name.u.s, name.n);
    }
}

static int
glm_jis_ascii(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if ((unsigned char) s[i] >= 0x80) {
            return 0;
        }
    }
    return 1;
}

glm_jinja_value
glm_jgetitem(glm_jrender *r, glm_jinja_value obj, glm_jinja_value key)
{
    glm_jinja_value *v;

    if (obj.kind == GLM_JINJA_UNDEFINED) {
        glm_jfail_undefined(r, obj);
    }
    switch (obj.kind) {
    case GLM_JINJA_LIST:
        /* generators and dict views (sub != 0) are not subscriptable */
        if ((key.kind == GLM_JINJA_INT || key.kind == GLM_JINJA_BOOL)
            && !(obj.flags & GLM_JINJA_F_ITER) && obj.sub == 0) {
            int64_t i = key.u.i, n = obj.u.list->n;

            if (i < 0) {
                i += n;
            }
            if (i >= 0 && i < n) {
                return obj.u.list->v[i];
            }
            return glm_jv_undef("list index out of range", 23, GLM_JU_NO_ITEM);
        }
        break;
    case GLM_JINJA_STR:
        if (key.kind == GLM_JINJA_INT || key.kind == GLM_JINJA_BOOL) {
            int64_t i = key.u.i, n;
            size_t off, adv;

            n = glm_jis_ascii(obj.u.s, obj.n) ? (int64_t) obj.n
                                              : (int64_t) glm_ju8_len(obj.u.s, obj.n);
            if (i < 0) {
                i += n;
            }
            if (i < 0 || i >= n) {
                return glm_jv_undef("string index out of range", 25, GLM_JU_NO_ITEM);
            }
            off = n == (int64_t) obj.n ? (size_t) i : glm_jcp_off(obj.u.s, obj.n, i);
            glm_ju8_decode(obj.u.s + off, obj.n - off, &adv);
            return glm_jv_str(obj.u.s + off, adv);
        }
        break;
    case GLM_JINJA_DICT:
        if (glm_jv_hashable(key)) {
            v = glm_jv_dict_find(obj.u.dict, key);
            if (v != NULL) {
                return *v;
            }
        }
        break;
    default:
        break;
    }
    /* obj[key] failed: a string key falls back to getattr (jinja2's sandbox) */
    if (key.kind == GLM_JINJA_STR) {
        return glm_jgetattr(r, obj, key, NULL);
    }
    return glm_jv_undef(NULL, 0, GLM_JU_PLAIN);
}

static int
glm_jslice_index(glm_jrender *r, glm_jinja_value v, int64_t *out)
{
    if (v.kind == GLM_JINJA_NONE) {
        return 0;
    }
    if (v.kind == GLM_JINJA_INT || v.kind == GLM_JINJA_BOOL) {
        *out = v.u.i;
        return 1;
    }
    glm_jfail(r, "TypeError: slice indices must be integers or None or have an __index__ method");
}

/* Python's slice adjustment: the indices start, start+step, ... */
static int64_t
glm_jslice_adjust(int64_t len, int has_start, int64_t start, int has_stop, int64_t stop,
                  int64_t step, int64_t *first)
{
    int64_t count;

    if (step > 0) {
        start = has_start ? start : 0;
        stop = has_stop ? stop : len;
        if (start < 0) {
            start = start + len < 0 ? 0 : start + len;
        } else if (start > len) {
            start = len;
        }
        if (stop < 0) {
            stop = stop + len < 0 ? 0 : stop + len;
        } else if (stop > len) {
            stop = len;
        }
        count = stop > start ? (stop - start - 1) / step + 1 : 0;
    } else {
        start = has_start ? start : len - 1;
        stop = has_stop ? stop : -1 - len;
        if (start < 0) {
            start = start + len < 0 ? -1 : start + len;
        } else if (start >= len) {
            start = len - 1;
        }
        if (stop < 0) {
            stop = stop + len < 0 ? -1 : stop + len;
        } else if (stop >= len) {
            stop = len - 1;
        }
        count = stop < start ? (start - stop - 1) / (-step) + 1 : 0;
    }
    *first = start;
    return count;
}

static glm_jinja_value
glm_jslice(glm_jrender *r, glm_jscope *s, glm_jinja_value obj, const glm_jnode *sl)
{
    int64_t start = 0, stop = 0, step = 1, first, count, k;
    int has_start = 0, has_stop = 0;

    if (obj.kind == GLM_JINJA_UNDEFINED) {
        glm_jfail_undefined(r, obj);
    }
    if (sl->u.slice.start != NULL) {
        has_start = glm_jslice_index(r, glm_jeval(r, s, sl->u.slice.start), &start);
    }
    if (sl->u.slice.stop != NULL) {
        has_stop = glm_jslice_index(r, glm_jeval(r, s, sl->u.slice.stop), &stop);
    }
    if (sl->u.slice.step != NULL) {
        int64_t st;

        if (glm_jslice_index(r, glm_jeval(r, s, sl->u.slice.step), &st)) {
            step = st;
        }
    }
    /* jinja2 compiles slices to plain Python subscription (no sandbox
     * getitem): anything but a sequence raises */
    if (obj.kind == GLM_JINJA_DICT) {
        glm_jfail(r, "TypeError: unhashable type: 'slice'");
    }
    if ((obj.kind != GLM_JINJA_LIST && obj.kind != GLM_JINJA_STR)
        || (obj.kind == GLM_JINJA_LIST && ((obj.flags & GLM_JINJA_F_ITER) || obj.sub != 0))) {
        glm_jfail(r, "TypeError: '%s' object is not subscriptable", glm_jv_type_name(obj));
    }
    if (step == 0) {
        glm_jfail(r, "ValueError: slice step cannot be zero");
    }
    if (obj.kind == GLM_JINJA_LIST && !(obj.flags & GLM_JINJA_F_ITER)) {
        glm_jinja_value out;

        count = glm_jslice_adjust(obj.u.list->n, has_start, start, has_stop, stop, step, &first);
        out = glm_jv_newlist(r, (uint32_t) count);
        out.flags = obj.flags & GLM_JINJA_F_TUPLE;
        for (k = 0; k < count; k++) {
            out.u.list->v[k] = obj.u.list->v[first + k * step];
        }
        out.u.list->n = (uint32_t) count;
        return out;
    }
    if (obj.kind == GLM_JINJA_STR) {
        glm_jbuf b = {0};
        size_t *offs = NULL, ncp, i, pos, adv;

        if (glm_jis_ascii(obj.u.s, obj.n)) {
            count = glm_jslice_adjust((int64_t) obj.n, has_start, start, has_stop, stop, step,
                                      &first);
            if (step == 1) {
                return glm_jv_str(obj.u.s + first, (size_t) count);
            }
            for (k = 0; k < count; k++) {
                glm_jbuf_putc(r, &b, obj.u.s[first + k * step]);
            }
            return glm_jbuf_value(r, &b);
        }
        ncp = glm_ju8_len(obj.u.s, obj.n);
        offs = glm_jalloc(r, (ncp + 1) * sizeof(*offs));
        for (i = 0, pos = 0; i < ncp; i++) {
            offs[i] = pos;
            glm_ju8_decode(obj.u.s + pos, obj.n - pos, &adv);
            pos += adv;
        }
        offs[ncp] = obj.n;
        count = glm_jslice_adjust((int64_t) ncp, has_start, start, has_stop, stop, step, &first);
        if (step == 1) {
            return glm_jv_str(obj.u.s + offs[first], offs[first + count] - offs[first]);
        }
        for (k = 0; k < count; k++) {
            int64_t c = first + k * step;

            glm_jbuf_put(r, &b, obj.u.s + offs[c], offs[c + 1] - offs[c]);
        }
        return glm_jbuf_value(r, &b);
    }
    return glm_jv_undef(NULL, 0, GLM_JU_PLAIN);
}


/* ---- statements ---------------------------------------------------------------------- */

static void glm_jexec_body(glm_jrender *r, glm_jscope *s, const glm_jnodes *body);

static void
glm_jassign(glm_jrender *r, glm_jscope *s, const glm_jnode *target, glm_jinja_value v)
{
    if (target->type == GLM_JN_NAME) {
        glm_jscope_set(r, s, target->u.name.sym, v);
    } else if (target->type == GLM_JN_NSREF) {
        glm_jinja_value *ns = glm_jscope_find(s, target->u.nsref.sym);
        const glm_jinja_value *attr = &target->u.nsref.attr;

        if (ns == NULL || ns->kind != GLM_JINJA_NAMESPACE) {
            glm_jfail(r, "TemplateRuntimeError: cannot assign attribute on non-namespace object");
        }
        if (attr->n > 0 && attr->u.s[0] == '_') {
            /* transformers' TemplateNamespace */
            glm_jfail(r, "SecurityError: Chat templates cannot store underscore-prefixed "
                      "attributes on a namespace, but got '%s'", attr->u.s);
        }
        glm_jv_dict_put(r, *ns, *attr, v);
    } else {
        const glm_jnodes *t = &target->u.seq.items;
        glm_jinja_list *items = glm_jiter(r, v);
        uint32_t i;

        if (items->n < t->n) {
            glm_jfail(r, "ValueError: not enough values to unpack (expected %u, got %u)", t->n,
                      items->n);
        }
        if (items->n > t->n) {
            glm_jfail(r, "ValueError: too many values to unpack (expected %u)", t->n);
        }
        for (i = 0; i < t->n; i++) {
            glm_jassign(r, s, t->v[i], items->v[i]);
        }
    }
}

/* Renders body in scope s into a new string. */
static glm_jinja_value
glm_jcapture(glm_jrender *r, glm_jscope *s, const glm_jnodes *body)
{
    glm_jbuf *saved = r->out, buf = {0};

    r->out = &buf;
    glm_jexec_body(r, s, body);
    r->out = saved;
    return glm_jbuf_value(r, &buf);
}

static glm_jinja_value glm_jeval_filter(glm_jrender *r, glm_jscope *s, const glm_jnode *n,
                                        const glm_jinja_value *input);

static glm_jinja_value
glm_jmacro_value(glm_jrender *r, const glm_jmacro_def *def, glm_jscope *s)
{
    glm_jmacro *m = glm_jalloc(r, sizeof(*m));
    glm_jinja_value v;

    m->def = def;
    m->scope = s;
    m->caller = glm_jvnone();
    memset(&v, 0, sizeof(v));
    v.kind = GLM_JINJA_MACRO;
    v.u.p = m;
    return v;
}

static void glm_jeval_call_args(glm_jrender *r, glm_jscope *s, const glm_jargs *a,
                                glm_jcall_args *out, const glm_jinja_value *extra_name,
                                const glm_jinja_value *extra_val);

static void
glm_jexec_for(glm_jrender *r, glm_jscope *s, const glm_jnode *n)
{
    glm_jinja_value iterable = glm_jeval(r, s, n->u.for_.iter), lv;
    glm_jinja_list *items = glm_jiter(r, iterable);
    glm_jscope *ls = glm_jscope_new(r, s);
    glm_jloop *loop;
    uint32_t i;

    if (n->u.for_.filter != NULL) {
        glm_jinja_value kept = glm_jv_newlist(r, items->n);

        for (i = 0; i < items->n; i++) {
            glm_jassign(r, ls, n->u.for_.target, items->v[i]);
            if (glm_jv_truthy(glm_jeval(r, ls, n->u.for_.filter))) {
                kept.u.list->v[kept.u.list->n++] = items->v[i];
            }
        }
        items = kept.u.list;
    }
    loop = glm_jalloc(r, sizeof(*loop));
    memset(loop, 0, sizeof(*loop));
    loop->items = items;
    loop->length = items->n;
    memset(&lv, 0, sizeof(lv));
    lv.kind = GLM_JINJA_LOOP;
    lv.u.p = loop;
    glm_jscope_set(r, ls, GLM_JSYM_LOOP, lv);
    for (i = 0; i < items->n; i++) {
        glm_jstep(r);
        /* jinja2 re-resolves the body's variables from the enclosing scope at
         * the start of every iteration (`l_1_y = resolve('y')`): a {% set %}
         * does not survive into the next iteration */
        ls->n = 0;
        glm_jscope_set(r, ls, GLM_JSYM_LOOP, lv);
        loop->index0 = i;
        glm_jassign(r, ls, n->u.for_.target, items->v[i]);
        glm_jexec_body(r, ls, &n->u.for_.body);
        if (r->loop_ctl == GLM_JN_BREAK) {
            r->loop_ctl = 0;
            break;
        }
        r->loop_ctl = 0;
    }
    if (items->n == 0 && n->u.for_.orelse.n > 0) {
        glm_jexec_body(r, ls, &n->u.for_.orelse);
    }
}

static void
glm_jexec(glm_jrender *r, glm_jscope *s, const glm_jnode *n)
{
    glm_jstep(r);
    r->line = n->line;
    switch (n->type) {
    case GLM_JN_DATA:
        glm_jbuf_put(r, r->out, n->u.cval.u.s, n->u.cval.n);
        return;
    case GLM_JN_PRINT:
        glm_jv_write_str(r, r->out, glm_jeval(r, s, n->u.un.x));
        return;
    case GLM_JN_IF:
        while (n != NULL) {
            if (glm_jv_truthy(glm_jeval(r, s, n->u.if_.test))) {
                glm_jexec_body(r, s, &n->u.if_.body);
                return;
            }
            if (n->u.if_.orelse.n == 1 && n->u.if_.orelse.v[0]->type == GLM_JN_IF
                && n->u.if_.orelse.v[0]->op == 1) {
                n = n->u.if_.orelse.v[0];      /* elif */
                r->line = n->line;
                continue;
            }
            glm_jexec_body(r, s, &n->u.if_.orelse);
            return;
        }
        return;
    case GLM_JN_FOR:
        glm_jexec_for(r, s, n);
        return;
    case GLM_JN_SET:
        glm_jassign(r, s, n->u.set.target, glm_jeval(r, s, n->u.set.value));
        return;
    case GLM_JN_SETBLOCK: {
        glm_jinja_value v = glm_jcapture(r, glm_jscope_new(r, s), &n->u.setblock.body);

        if (n->u.setblock.filter != NULL) {
            v = glm_jeval_filter(r, s, n->u.setblock.filter, &v);
        }
        glm_jassign(r, s, n->u.setblock.target, v);
        return;
    }
    case GLM_JN_MACRO:
        glm_jscope_set(r, s, n->u.macro->sym, glm_jmacro_value(r, n->u.macro, s));
        return;
    case GLM_JN_CALLBLOCK: {
        const glm_jnode *call = n->u.callblock.call;
        glm_jinja_value fn = glm_jeval(r, s, call->u.call.fn);
        glm_jinja_value caller = glm_jmacro_value(r, n->u.callblock.caller, s);
        glm_jinja_value name = glm_jv_str("caller", 6);
        glm_jcall_args a;

        glm_jeval_call_args(r, s, &call->u.call.args, &a, &name, &caller);
        r->line = n->line;
        glm_jv_write_str(r, r->out, glm_jcall(r, fn, &a));
        return;
    }
    case GLM_JN_FILTERBLOCK: {
        glm_jinja_value v = glm_jcapture(r, glm_jscope_new(r, s), &n->u.filterblock.body);

        glm_jv_write_str(r, r->out, glm_jeval_filter(r, s, n->u.filterblock.filter, &v));
        return;
    }
    case GLM_JN_WITH: {
        glm_jscope *ws = glm_jscope_new(r, s);
        uint32_t i;

        for (i = 0; i < n->u.with.targets.n; i++) {
            glm_jassign(r, ws, n->u.with.targets.v[i], glm_jeval(r, s, n->u.with.values.v[i]));
        }
        glm_jexec_body(r, ws, &n->u.with.body);
        return;
    }
    case GLM_JN_SCOPE:
        glm_jexec_body(r, glm_jscope_new(r, s), &n->u.scope.body);
        return;
    case GLM_JN_BREAK:
    case GLM_JN_CONTINUE:
        r->loop_ctl = n->type;
        return;
    default:
        glm_jfail(r, "internal error: statement type %d", n->type);
    }
}

static void
glm_jexec_body(glm_jrender *r, glm_jscope *s, const glm_jnodes *body)
{
    uint32_t i;

    if (++r->depth > r->c->limits.max_depth) {
        glm_jfail(r, "template nested too deeply at render time (limit %d)",
                  r->c->limits.max_depth);
    }
    for (i = 0; i < body->n; i++) {
        glm_jexec(r, s, body->v[i]);
        if (r->loop_ctl != 0) {
            break;
        }
    }
    r->depth--;
}


/* ---- calls --------------------------------------------------------------------------- */

static void
glm_jeval_call_args(glm_jrender *r, glm_jscope *s, const glm_jargs *a, glm_jcall_args *out,
                    const glm_jinja_value *extra_name, const glm_jinja_value *extra_val)
{
    uint32_t i, npos = a->pos.n, nkw = a->kwval.n;
    glm_jinja_list *dyn = NULL;
    glm_jinja_dict *dynkw = NULL;

    if (a->dyn_args != NULL) {
        dyn = glm_jiter(r, glm_jeval(r, s, a->dyn_args));
        npos += dyn->n;
    }
    if (a->dyn_kwargs != NULL) {
        glm_jinja_value d = glm_jeval(r, s, a->dyn_kwargs);

        if (d.kind != GLM_JINJA_DICT) {
            glm_jfail(r, "TypeError: argument after ** must be a mapping, not %s",
                      glm_jv_type_name(d));
        }
        dynkw = d.u.dict;
        nkw += dynkw->n;
    }
    if (extra_name != NULL) {
        nkw++;
    }
    out->npos = 0;
    out->nkw = 0;
    if (npos + nkw == 0) {
        /* most calls have no arguments or only a few: no allocation for none */
        out->pos = out->kwname = out->kwval = r->noargs;
        return;
    }
    out->pos = glm_jalloc(r, (npos + 2 * nkw) * sizeof(*out->pos));
    out->kwname = out->pos + npos;
    out->kwval = out->kwname + nkw;
    for (i = 0; i < a->pos.n; i++) {
        out->pos[out->npos++] = glm_jeval(r, s, a->pos.v[i]);
    }
    for (i = 0; dyn != NULL && i < dyn->n; i++) {
        out->pos[out->npos++] = dyn->v[i];
    }
    for (i = 0; i < a->kwval.n; i++) {
        out->kwname[out->nkw] = a->kwname[i];
        out->kwval[out->nkw++] = glm_jeval(r, s, a->kwval.v[i]);
    }
    for (i = 0; dynkw != NULL && i < dynkw->n; i++) {
        if (dynkw->k[i].kind != GLM_JINJA_STR) {
            glm_jfail(r, "TypeError: keywords must be strings");
        }
        out->kwname[out->nkw] = dynkw->k[i];
        out->kwval[out->nkw++] = dynkw->v[i];
    }
    if (extra_name != NULL) {
        out->kwname[out->nkw] = *extra_name;
        out->kwval[out->nkw++] = *extra_val;
    }
}

static glm_jinja_value
glm_jcall_macro(glm_jrender *r, glm_jinja_value fn, glm_jcall_args *a)
{
    const glm_jmacro *m = fn.u.p;
    const glm_jmacro_def *def = m->def;
    glm_jscope *ms;
    glm_jinja_value *given, out, kwargs, caller;
    uint8_t *have;
    uint32_t i, k;
    int saved_line = r->line;

    if (++r->call_depth > r->c->limits.max_call_depth) {
        glm_jfail(r, "maximum macro call depth exceeded (%d)", r->c->limits.max_call_depth);
    }
    if (a->npos > def->nparams && !def->catch_varargs) {
        glm_jfail(r, "TypeError: macro '%s' takes not more than %u argument(s)", def->name.u.s,
                  def->nparams);
    }
    given = glm_jalloc(r, (def->nparams + 1) * sizeof(*given));
    have = glm_jalloc(r, def->nparams + 1);
    memset(have, 0, def->nparams + 1);
    for (i = 0; i < def->nparams && i < a->npos; i++) {
        given[i] = a->pos[i];
        have[i] = 1;
    }
    memset(&kwargs, 0, sizeof(kwargs));
    caller = glm_jv_undef("No caller defined", 17, GLM_JU_NO_ITEM);
    if (def->catch_kwargs) {
        kwargs = glm_jv_newdict(r, 0);
    }
    for (k = 0; k < a->nkw; k++) {
        const glm_jinja_value *kn = &a->kwname[k];

        for (i = 0; i < def->nparams; i++) {
            if (def->param_name[i].n == kn->n
                && memcmp(def->param_name[i].u.s, kn->u.s, kn->n) == 0) {
                break;
            }
        }
        if (i < def->nparams) {
            if (have[i]) {
                glm_jfail(r, "TypeError: macro '%s' got multiple values for argument '%s'",
                          def->name.u.s, def->param_name[i].u.s);
            }
            given[i] = a->kwval[k];
            have[i] = 1;
        } else if (def->catch_caller && kn->n == 6 && memcmp(kn->u.s, "caller", 6) == 0) {
            caller = a->kwval[k];
        } else if (def->catch_kwargs) {
            glm_jv_dict_put(r, kwargs, *kn, a->kwval[k]);
        } else {
            glm_jfail(r, "TypeError: macro '%s' takes no keyword argument '%.*s'",
                      def->name.u.s, (int) kn->n, kn->u.s);
        }
    }
    ms = glm_jscope_new(r, m->scope);
    for (i = 0; i < def->nparams; i++) {
        glm_jinja_value v;

        if (have[i]) {
            v = given[i];
        } else if (def->param_default[i] != NULL) {
            v = glm_jeval(r, ms, def->param_default[i]);
        } else {
            v = glm_jv_undef(def->param_name[i].u.s, def->param_name[i].n, GLM_JU_MISSING_ARG);
        }
        glm_jscope_set(r, ms, def->param_sym[i], v);
    }
    if (def->catch_varargs) {
        glm_jinja_value va = glm_jv_newlist(r, a->npos > def->nparams ? a->npos - def->nparams : 0);

        va.flags = GLM_JINJA_F_TUPLE;
        for (i = def->nparams; i < a->npos; i++) {
            va.u.list->v[va.u.list->n++] = a->pos[i];
        }
        glm_jscope_set(r, ms, GLM_JSYM_VARARGS, va);
    }
    if (def->catch_kwargs) {
        glm_jscope_set(r, ms, GLM_JSYM_KWARGS, kwargs);
    }
    if (def->catch_caller) {
        glm_jscope_set(r, ms, GLM_JSYM_CALLER, caller);
    }
    {
        int loop_ctl = r->loop_ctl;

        r->loop_ctl = 0;
        out = glm_jcapture(r, ms, &def->body);
        r->loop_ctl = loop_ctl;
    }
    r->call_depth--;
    r->line = saved_line;
    return out;
}

glm_jinja_value
glm_jcall(glm_jrender *r, glm_jinja_value fn, glm_jcall_args *a)
{
    switch (fn.kind) {
    case GLM_JINJA_MACRO:
        return glm_jcall_macro(r, fn, a);
    case GLM_JINJA_FUNC:
        return glm_jfunc_call(r, fn, a);
    case GLM_JINJA_UNDEFINED:
        glm_jfail_undefined(r, fn);
    default:
        glm_jfail(r, "TypeError: '%s' object is not callable", glm_jv_type_name(fn));
    }
}


/* ---- expressions ------------------------------------------------------------------------ */

static glm_jinja_value
glm_jeval_filter(glm_jrender *r, glm_jscope *s, const glm_jnode *n, const glm_jinja_value *input)
{
    glm_jinja_value v;
    glm_jcall_args a;

    if (n->u.ft.obj == NULL) {
        v = *input;
    } else if (input != NULL) {
        /* a filter block's chain: FILTER nodes down to the block's text */
        v = glm_jeval_filter(r, s, n->u.ft.obj, input);
    } else {
        v = glm_jeval(r, s, n->u.ft.obj);
    }
    glm_jeval_call_args(r, s, &n->u.ft.args, &a, NULL, NULL);
    r->line = n->line;
    if (n->id == 0) {
        glm_jfail(r, "TemplateRuntimeError: No filter named '%s' found.", n->u.ft.name.u.s);
    }
    return glm_jfilter_call(r, n->id, n->u.ft.name.u.s, v, &a);
}

static glm_jinja_value
glm_jeval_inner(glm_jrender *r, glm_jscope *s, const glm_jnode *n)
{
    glm_jinja_value a, b, *found;
    uint32_t i;

    switch (n->type) {
    case GLM_JN_CONST:
        return n->u.cval;
    case GLM_JN_NAME:
        found = glm_jscope_find(s, n->u.name.sym);
        if (found != NULL) {
            return *found;
        }
        if (n->id != 0) {
            memset(&a, 0, sizeof(a));
            a.kind = GLM_JINJA_FUNC;
            a.sub = n->id;
            return a;
        }
        return glm_jv_undef(r->t->sym_name[n->u.name.sym], r->t->sym_len[n->u.name.sym],
                            GLM_JU_PLAIN);
    case GLM_JN_GETATTR:
        a = glm_jeval(r, s, n->u.getattr.obj);
        r->line = n->line;
        return glm_jgetattr(r, a, n->u.getattr.attr, n->u.getattr.mid);
    case GLM_JN_GETITEM:
        a = glm_jeval(r, s, n->u.getitem.obj);
        if (n->u.getitem.key->type == GLM_JN_SLICE) {
            return glm_jslice(r, s, a, n->u.getitem.key);
        }
        b = glm_jeval(r, s, n->u.getitem.key);
        r->line = n->line;
        return glm_jgetitem(r, a, b);
    case GLM_JN_CALL: {
        glm_jcall_args ca;
        const glm_jnode *fn = n->u.call.fn;

        if (fn->type == GLM_JN_GETATTR) {
            /* obj.method(...): call the method directly, no bound value */
            const glm_jinja_value *attr = &fn->u.getattr.attr;
            int id;

            a = glm_jeval(r, s, fn->u.getattr.obj);
            r->line = fn->line;
            id = a.kind == GLM_JINJA_UNDEFINED || (attr->n >= 2 && attr->u.s[0] == '_')
                 ? 0 : glm_jmethod_id(a, attr->u.s, attr->n, fn->u.getattr.mid);
            if (id != 0 && id != GLM_JM_UNSAFE) {
                glm_jbound self;
                glm_jinja_value f;

                self.self = a;
                memset(&f, 0, sizeof(f));
                f.kind = GLM_JINJA_FUNC;
                f.sub = (uint16_t) id;
                f.u.p = &self;
                glm_jeval_call_args(r, s, &n->u.call.args, &ca, NULL, NULL);
                r->line = n->line;
                return glm_jfunc_call(r, f, &ca);
            }
            a = glm_jgetattr(r, a, *attr, fn->u.getattr.mid);
        } else {
            a = glm_jeval(r, s, fn);
        }
        glm_jeval_call_args(r, s, &n->u.call.args, &ca, NULL, NULL);
        r->line = n->line;
        return glm_jcall(r, a, &ca);
    }
    case GLM_JN_FILTER:
        return glm_jeval_filter(r, s, n, NULL);
    case GLM_JN_TEST: {
        glm_jcall_args ca;

        a = glm_jeval(r, s, n->u.ft.obj);
        glm_jeval_call_args(r, s, &n->u.ft.args, &ca, NULL, NULL);
        r->line = n->line;
        if (n->id == 0) {
            glm_jfail(r, "TemplateRuntimeError: No test named '%s' found.", n->u.ft.name.u.s);
        }
        return glm_jvb(glm_jtest_call(r, n->id, n->u.ft.name.u.s, a, &ca));
    }
    case GLM_JN_LIST:
    case GLM_JN_TUPLE:
        a = glm_jv_newlist(r, n->u.seq.items.n);
        if (n->type == GLM_JN_TUPLE) {
            a.flags = GLM_JINJA_F_TUPLE;
        }
        for (i = 0; i < n->u.seq.items.n; i++) {
            a.u.list->v[i] = glm_jeval(r, s, n->u.seq.items.v[i]);
            a.u.list->n = i + 1;
        }
        return a;
    case GLM_JN_DICT:
        a = glm_jv_newdict(r, n->u.seq.items.n / 2);
        for (i = 0; i + 1 < n->u.seq.items.n; i += 2) {
            glm_jinja_value k = glm_jeval(r, s, n->u.seq.items.v[i]);
            glm_jinja_value v = glm_jeval(r, s, n->u.seq.items.v[i + 1]);

            glm_jv_dict_put(r, a, k, v);
        }
        return a;
    case GLM_JN_BINOP:
        a = glm_jeval(r, s, n->u.bin.l);
        b = glm_jeval(r, s, n->u.bin.r);
        r->line = n->line;
        return glm_jbinop(r, n->op, a, b);
    case GLM_JN_CONCAT: {
        glm_jbuf buf = {0};

        for (i = 0; i < n->u.seq.items.n; i++) {
            glm_jv_write_str(r, &buf, glm_jeval(r, s, n->u.seq.items.v[i]));
        }
        return glm_jbuf_value(r, &buf);
    }
    case GLM_JN_AND:
        a = glm_jeval(r, s, n->u.bin.l);
        return glm_jv_truthy(a) ? glm_jeval(r, s, n->u.bin.r) : a;
    case GLM_JN_OR:
        a = glm_jeval(r, s, n->u.bin.l);
        return glm_jv_truthy(a) ? a : glm_jeval(r, s, n->u.bin.r);
    case GLM_JN_NOT:
        return glm_jvb(!glm_jv_truthy(glm_jeval(r, s, n->u.un.x)));
    case GLM_JN_NEG:
    case GLM_JN_POS:
        a = glm_jeval(r, s, n->u.un.x);
        r->line = n->line;
        if (a.kind == GLM_JINJA_UNDEFINED) {
            glm_jfail_undefined(r, a);
        }
        if (a.kind == GLM_JINJA_BOOL) {
            a.kind = GLM_JINJA_INT;
        }
        if (n->type == GLM_JN_POS && (a.kind == GLM_JINJA_INT || a.kind == GLM_JINJA_FLOAT)) {
            return a;
        }
        if (a.kind == GLM_JINJA_INT && a.u.i != INT64_MIN) {
            return glm_jvi(-a.u.i);
        }
        if (a.kind == GLM_JINJA_FLOAT) {
            return glm_jvf(-a.u.f);
        }
        glm_jfail(r, "TypeError: bad operand type for unary %c: '%s'",
                  n->type == GLM_JN_NEG ? '-' : '+', glm_jv_type_name(a));
    case GLM_JN_COMPARE:
        a = glm_jeval(r, s, n->u.cmp.first);
        for (i = 0; i < n->u.cmp.rest.n; i++) {
            int op = n->u.cmp.ops[i], ok;

            b = glm_jeval(r, s, n->u.cmp.rest.v[i]);
            r->line = n->line;
            switch (op) {
            case GLM_JOP_EQ: ok = glm_jv_eq(r, a, b); break;
            case GLM_JOP_NE: ok = !glm_jv_eq(r, a, b); break;
            case GLM_JOP_LT: ok = glm_jv_cmp(r, a, b) < 0; break;
            case GLM_JOP_LE: ok = glm_jv_cmp(r, a, b) <= 0; break;
            case GLM_JOP_GT: ok = glm_jv_cmp(r, a, b) > 0; break;
            case GLM_JOP_GE: ok = glm_jv_cmp(r, a, b) >= 0; break;
            case GLM_JOP_IN: ok = glm_jcontains(r, b, a); break;
            default: ok = !glm_jcontains(r, b, a); break;
            }
            if (!ok) {
                return glm_jvb(0);
            }
            a = b;
        }
        return glm_jvb(1);
    case GLM_JN_CONDEXPR:
        if (glm_jv_truthy(glm_jeval(r, s, n->u.cond.test))) {
            return glm_jeval(r, s, n->u.cond.yes);
        }
        if (n->u.cond.no != NULL) {
            return glm_jeval(r, s, n->u.cond.no);
        }
        return glm_jv_undef("the inline if-expression evaluated to false and no else "
                            "section was defined.", 77, GLM_JU_NO_ITEM);
    default:
        glm_jfail(r, "internal error: expression type %d", n->type);
    }
}

glm_jinja_value
glm_jeval(glm_jrender *r, glm_jscope *s, const glm_jnode *n)
{
    glm_jinja_value v;

    glm_jstep(r);
    if (++r->depth > r->c->limits.max_depth) {
        glm_jfail(r, "expression nested too deeply at render time (limit %d)",
                  r->c->limits.max_depth);
    }
    r->line = n->line;
    v = glm_jeval_inner(r, s, n);
    r->depth--;
    return v;
}


/* ---- public API: templates ----------------------------------------------------------------- */

glm_jinja_template *
glm_jinja_parse(const char *src, size_t len, const char *name, glm_err *err)
{
    glm_jinja_template *t = calloc(1, sizeof(*t));

    if (t == NULL) {
        glm_errf(err, "out of memory");
        return NULL;
    }
    t->name = strdup(name != NULL ? name : "template");
    t->source = malloc(len + 1);
    if (t->name == NULL || t->source == NULL) {
        glm_jinja_free(t);
        glm_errf(err, "out of memory");
        return NULL;
    }
    memcpy(t->source, src, len);
    t->source[len] = '\0';
    t->source_len = len;
    if (glm_jparse_template(t, err) != 0) {
        glm_jinja_free(t);
        return NULL;
    }
    /* Unicode case mapping for upper()/lower()/title(): a per-template
     * locale object, never the process locale */
    t->loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t) 0);
    return t;
}

void
glm_jinja_free(glm_jinja_template *t)
{
    if (t == NULL) {
        return;
    }
    if (t->loc != (locale_t) 0) {
        freelocale(t->loc);
    }
    glm_jarena_free(&t->arena);
    free(t->name);
    free(t->source);
    free(t);
}

const char *
glm_jinja_source(const glm_jinja_template *t, size_t *len)
{
    if (len != NULL) {
        *len = t->source_len;
    }
    return t->source;
}


/* ---- public API: contexts and rendering ---------------------------------------------------------- */

glm_jinja_ctx *
glm_jinja_ctx_new(const glm_jinja_limits *limits, glm_err *err)
{
    glm_jinja_ctx *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        glm_errf(err, "out of memory");
        return NULL;
    }
    c->limits.max_output = 16u * 1024u * 1024u;
    c->limits.max_memory = 256u * 1024u * 1024u;
    c->limits.max_steps = 50u * 1000u * 1000u;
    c->limits.max_depth = 400;
    c->limits.max_call_depth = 100;
    if (limits != NULL) {
        if (limits->max_output != 0) {
            c->limits.max_output = limits->max_output;
        }
        if (limits->max_memory != 0) {
            c->limits.max_memory = limits->max_memory;
        }
        if (limits->max_steps != 0) {
            c->limits.max_steps = limits->max_steps;
        }
        if (limits->max_depth != 0) {
            c->limits.max_depth = limits->max_depth;
        }
        if (limits->max_call_depth != 0) {
            c->limits.max_call_depth = limits->max_call_depth;
        }
    }
    c->arena.limit = c->limits.max_memory;
    return c;
}

void
glm_jinja_ctx_free(glm_jinja_ctx *c)
{
    if (c == NULL) {
        return;
    }
    glm_jarena_free(&c->arena);
    free(c);
}

void
glm_jinja_ctx_reset(glm_jinja_ctx *c)
{
    glm_jarena_reset(&c->arena);
    c->var_name = NULL;
    c->var_val = NULL;
    c->nvar = 0;
    c->var_cap = 0;
}

glm_jinja_mark
glm_jinja_ctx_mark(glm_jinja_ctx *c)
{
    return glm_jarena_mark(&c->arena);
}

void
glm_jinja_ctx_rewind(glm_jinja_ctx *c, glm_jinja_mark m)
{
    glm_jarena_rewind(&c->arena, m);
}

void
glm_jinja_ctx_set_now(glm_jinja_ctx *c, const struct tm *now)
{
    if (now == NULL) {
        c->has_now = 0;
    } else {
        c->now = *now;
        c->has_now = 1;
    }
}

int
glm_jinja_set(glm_jinja_ctx *c, const char *name, glm_jinja_value v, glm_err *err)
{
    uint32_t i;
    size_t n = strlen(name);

    for (i = 0; i < c->nvar; i++) {
        if (strcmp(c->var_name[i], name) == 0) {
            c->var_val[i] = v;
            return 0;
        }
    }
    if (c->nvar == c->var_cap) {
        uint32_t cap = c->var_cap ? c->var_cap * 2 : 16;
        char **nn = glm_jarena_alloc(&c->arena, cap * sizeof(*nn));
        glm_jinja_value *nv = glm_jarena_alloc(&c->arena, cap * sizeof(*nv));

        if (nn == NULL || nv == NULL) {
            return glm_errf(err, "out of memory setting template variable '%s'", name);
        }
        if (c->nvar > 0) {
            memcpy(nn, c->var_name, c->nvar * sizeof(*nn));
            memcpy(nv, c->var_val, c->nvar * sizeof(*nv));
        }
        c->var_name = nn;
        c->var_val = nv;
        c->var_cap = cap;
    }
    c->var_name[c->nvar] = glm_jarena_alloc(&c->arena, n + 1);
    if (c->var_name[c->nvar] == NULL) {
        return glm_errf(err, "out of memory setting template variable '%s'", name);
    }
    memcpy(c->var_name[c->nvar], name, n + 1);
    c->var_val[c->nvar] = v;
    c->nvar++;
    return 0;
}

int
glm_jinja_render(const glm_jinja_template *t, glm_jinja_ctx *c, const char **out,
                 size_t *out_len, glm_err *err)
{
    glm_jrender rs;
    glm_jrender *r = &rs;
    glm_jbuf *buf;
    glm_jscope *root;
    uint32_t i;

    memset(r, 0, sizeof(*r));
    r->c = c;
    r->t = t;
    r->err = err;
    if (setjmp(r->jb) != 0) {
        return -1;
    }
    buf = glm_jalloc(r, sizeof(*buf));
    memset(buf, 0, sizeof(*buf));
    r->out = buf;
    root = glm_jscope_new(r, NULL);
    for (i = 0; i < c->nvar; i++) {
        int32_t sym = glm_jsym_find(t, c->var_name[i], strlen(c->var_name[i]));

        /* a variable the template never names cannot matter to it */
        if (sym >= 0) {
            glm_jscope_set(r, root, sym, c->var_val[i]);
        }
    }
    glm_jexec_body(r, root, &t->body);
    if (buf->p == NULL) {
        glm_jbuf_put(r, buf, "", 0);
    }
    *out = buf->p;
    *out_len = buf->n;
    return 0;
}


/* ---- public API: values ------------------------------------------------------------------------ */

int
glm_jinja_str(glm_jinja_ctx *c, const char *s, size_t n, glm_jinja_value *out, glm_err *err)
{
    char *p;
    size_t bad;

    if (!glm_ju8_valid(s, n, &bad)) {
        return glm_errf(err, "string is not valid UTF-8 (byte %zu)", bad);
    }
    if (n > UINT32_MAX) {
        return glm_errf(err, "string too long");
    }
    p = glm_jarena_alloc(&c->arena, n + 1);
    if (p == NULL) {
        return glm_errf(err, "out of memory");
    }
    memcpy(p, s, n);
    p[n] = '\0';
    *out = glm_jv_str(p, n);
    return 0;
}

int
glm_jinja_from_json(glm_jinja_ctx *c, const char *json, size_t n, glm_jinja_value *out,
                    glm_err *err)
{
    return glm_jv_parse_json(&c->arena, json, n, out, err);
}

int
glm_jinja_list_new(glm_jinja_ctx *c, glm_jinja_value *out, glm_err *err)
{
    glm_jinja_list *l = glm_jarena_alloc(&c->arena, sizeof(*l));

    if (l == NULL) {
        return glm_errf(err, "out of memory");
    }
    memset(l, 0, sizeof(*l));
    memset(out, 0, sizeof(*out));
    out->kind = GLM_JINJA_LIST;
    out->u.list = l;
    return 0;
}

int
glm_jinja_list_push(glm_jinja_ctx *c, glm_jinja_value list, glm_jinja_value v, glm_err *err)
{
    if (list.kind != GLM_JINJA_LIST || glm_jv_arena_push(&c->arena, list.u.list, v) != 0) {
        return glm_errf(err, list.kind != GLM_JINJA_LIST ? "not a list" : "out of memory");
    }
    return 0;
}

int
glm_jinja_dict_new(glm_jinja_ctx *c, glm_jinja_value *out, glm_err *err)
{
    glm_jinja_dict *d = glm_jarena_alloc(&c->arena, sizeof(*d));

    if (d == NULL) {
        return glm_errf(err, "out of memory");
    }
    memset(d, 0, sizeof(*d));
    memset(out, 0, sizeof(*out));
    out->kind = GLM_JINJA_DICT;
    out->u.dict = d;
    return 0;
}

static int
glm_jinja_key(glm_jinja_ctx *c, const char *key, glm_jinja_value *out, glm_err *err)
{
    return glm_jinja_str(c, key, strlen(key), out, err);
}

int
glm_jinja_dict_set(glm_jinja_ctx *c, glm_jinja_value dict, const char *key, glm_jinja_value v,
                   glm_err *err)
{
    glm_jinja_value k;

    if (dict.kind != GLM_JINJA_DICT) {
        return glm_errf(err, "not a dict");
    }
    if (glm_jinja_key(c, key, &k, err) != 0) {
        return -1;
    }
    if (glm_jv_arena_dict_put(&c->arena, dict.u.dict, k, v, 0) != 0) {
        return glm_errf(err, "out of memory");
    }
    return 0;
}

int
glm_jinja_dict_insert(glm_jinja_ctx *c, glm_jinja_value dict, size_t pos, const char *key,
                      glm_jinja_value v, glm_err *err)
{
    glm_jinja_dict *d;
    glm_jinja_value *existing, k;

    if (dict.kind != GLM_JINJA_DICT) {
        return glm_errf(err, "not a dict");
    }
    d = dict.u.dict;
    existing = glm_jv_dict_find_str(d, key, strlen(key));
    if (existing != NULL) {
        *existing = v;
        return 0;
    }
    if (glm_jinja_dict_set(c, dict, key, v, err) != 0) {
        return -1;
    }
    if (pos < d->n - 1) {
        k = d->k[d->n - 1];
        v = d->v[d->n - 1];
        memmove(d->k + pos + 1, d->k + pos, (d->n - 1 - pos) * sizeof(*d->k));
        memmove(d->v + pos + 1, d->v + pos, (d->n - 1 - pos) * sizeof(*d->v));
        d->k[pos] = k;
        d->v[pos] = v;
        glm_jv_dict_drop_index(d);
    }
    return 0;
}

int
glm_jinja_dict_del(glm_jinja_value dict, const char *key)
{
    glm_jinja_dict *d;
    glm_jinja_value *v;
    size_t pos;

    if (dict.kind != GLM_JINJA_DICT) {
        return 0;
    }
    d = dict.u.dict;
    v = glm_jv_dict_find_str(d, key, strlen(key));
    if (v == NULL) {
        return 0;
    }
    pos = (size_t) (v - d->v);
    memmove(d->k + pos, d->k + pos + 1, (d->n - 1 - pos) * sizeof(*d->k));
    memmove(d->v + pos, d->v + pos + 1, (d->n - 1 - pos) * sizeof(*d->v));
    d->n--;
    glm_jv_dict_drop_index(d);
    return 1;
}

glm_jinja_value *
glm_jinja_dict_get(glm_jinja_value dict, const char *key)
{
    if (dict.kind != GLM_JINJA_DICT) {
        return NULL;
    }
    return glm_jv_dict_find_str(dict.u.dict, key, strlen(key));
}

size_t
glm_jinja_len(glm_jinja_value v)
{
    if (v.kind == GLM_JINJA_LIST) {
        return v.u.list->n;
    }
    if (v.kind == GLM_JINJA_DICT) {
        return v.u.dict->n;
    }
    return 0;
}

glm_jinja_value *
glm_jinja_list_at(glm_jinja_value list, size_t i)
{
    if (list.kind != GLM_JINJA_LIST || i >= list.u.list->n) {
        return NULL;
    }
    return &list.u.list->v[i];
}

glm_jinja_value *
glm_jinja_dict_key_at(glm_jinja_value dict, size_t i)
{
    if (dict.kind != GLM_JINJA_DICT || i >= dict.u.dict->n) {
        return NULL;
    }
    return &dict.u.dict->k[i];
}

glm_jinja_value *
glm_jinja_dict_val_at(glm_jinja_value dict, size_t i)
{
    if (dict.kind != GLM_JINJA_DICT || i >= dict.u.dict->n) {
        return NULL;
    }
    return &dict.u.dict->v[i];
}

int
glm_jinja_tojson(glm_jinja_ctx *c, glm_jinja_value v, int ensure_ascii, int indent,
                 const char **out, size_t *out_len, glm_err *err)
{
    glm_jrender rs;
    glm_jrender *r = &rs;
    glm_jbuf *b;
    char spaces[64];
    int k;

    memset(r, 0, sizeof(*r));
    r->c = c;
    r->err = err;
    if (setjmp(r->jb) != 0) {
        return -1;
    }
    b = glm_jalloc(r, sizeof(*b));
    memset(b, 0, sizeof(*b));
    for (k = 0; k < indent && k < (int) sizeof(spaces); k++) {
        spaces[k] = ' ';
    }
    glm_jv_write_json(r, b, v, ensure_ascii, indent >= 0 ? spaces : NULL,
                      indent >= 0 ? (size_t) k : 0, NULL, NULL, 0, 0, 0);
    glm_jbuf_put(r, b, "", 0);
    *out = b->p;
    *out_len = b->n;
    return 0;
}
