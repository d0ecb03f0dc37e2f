/*
 * jinja_value.c: the values templates compute with, and Python's view of
 * them: truthiness, ==, ordering, hashing, str() and repr() (float repr
 * included), json.dumps as transformers' tojson calls it, and JSON input.
 * Also the arenas everything lives in.
 */
#include "jinja_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

/* ---- messages ------------------------------------------------------------ */

void
glm_jone_line(char *msg, size_t cap)
{
    char tmp[GLM_ERR_MAX];
    size_t i, o = 0;

    for (i = 0; msg[i] != '\0' && o + 3 < sizeof(tmp); i++) {
        unsigned char c = (unsigned char) msg[i];

        if (c == '\n' || c == '\r') {
            tmp[o++] = '\\';
            tmp[o++] = c == '\n' ? 'n' : 'r';
        } else {
            tmp[o++] = c < 0x20 || c == 0x7f ? ' ' : (char) c;
        }
    }
    tmp[o] = '\0';
    snprintf(msg, cap, "%s", tmp);
}


/* ---- arenas -------------------------------------------------------------- */

struct glm_jarena_chunk {
    glm_jarena_chunk *next;
    size_t cap, used;
};

#define GLM_JARENA_HDR  ((sizeof(glm_jarena_chunk) + 15u) & ~(size_t) 15u)
#define GLM_JARENA_MIN  (64u * 1024u)

void *
glm_jarena_alloc(glm_jarena *a, size_t n)
{
    glm_jarena_chunk *c;
    size_t cap;
    char *p;

    n = (n + 15u) & ~(size_t) 15u;
    if (n == 0) {
        n = 16;
    }
    if (a->limit != 0 && (n > a->limit || a->used_total > a->limit - n)) {
        return NULL;
    }
    c = a->head;
    if (c == NULL || c->cap - c->used < n) {
        /* chunks double up to 4 MiB so that big renders make few mallocs */
        cap = c != NULL ? c->cap * 2 : GLM_JARENA_MIN;
        if (cap > 4u * 1024u * 1024u) {
            cap = 4u * 1024u * 1024u;
        }
        if (cap < n) {
            cap = n;
        }
        c = malloc(GLM_JARENA_HDR + cap);
        if (c == NULL) {
            return NULL;
        }
        c->cap = cap;
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    p = (char *) c + GLM_JARENA_HDR + c->used;
    c->used += n;
    a->used_total += n;
    return p;
}

void
glm_jarena_reset(glm_jarena *a)
{
    glm_jarena_chunk *c, *next;

    if (a->head == NULL) {
        return;
    }
    /* keep the newest (largest) chunk for the next render */
    for (c = a->head->next; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    a->head->next = NULL;
    a->head->used = 0;
    a->used_total = 0;
}

glm_jinja_mark
glm_jarena_mark(const glm_jarena *a)
{
    glm_jinja_mark m;

    m.chunk = a->head;
    m.used = a->head != NULL ? a->head->used : 0;
    m.total = a->used_total;
    return m;
}

void
glm_jarena_rewind(glm_jarena *a, glm_jinja_mark m)
{
    while (a->head != NULL && a->head != (glm_jarena_chunk *) m.chunk) {
        glm_jarena_chunk *next = a->head->next;

        free(a->head);
        a->head = next;
    }
    if (a->head != NULL) {
        a->head->used = m.used;
    }
    a->used_total = m.total;
}

void
glm_jarena_free(glm_jarena *a)
{
    glm_jarena_chunk *c, *next;

    for (c = a->head; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    a->head = NULL;
    a->used_total = 0;
}


/* ---- UTF-8 and Python character classes -------------------------------------- */

uint32_t
glm_ju8_decode(const char *s, size_t n, size_t *adv)
{
    const unsigned char *u = (const unsigned char *) s;

    if (n == 0) {
        *adv = 0;
        return 0;
    }
    if (u[0] < 0x80 || n < 2) {
        *adv = 1;
        return u[0];
    }
    if (u[0] < 0xe0) {
        *adv = 2;
        return ((uint32_t) (u[0] & 0x1f) << 6) | (u[1] & 0x3f);
    }
    if (u[0] < 0xf0 || n < 4) {
        *adv = n < 3 ? n : 3;
        return n < 3 ? 0xfffd
                     : ((uint32_t) (u[0] & 0x0f) << 12) | ((uint32_t) (u[1] & 0x3f) << 6)
                       | (u[2] & 0x3f);
    }
    *adv = 4;
    return ((uint32_t) (u[0] & 0x07) << 18) | ((uint32_t) (u[1] & 0x3f) << 12)
           | ((uint32_t) (u[2] & 0x3f) << 6) | (u[3] & 0x3f);
}

size_t
glm_ju8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char) cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char) (0xc0 | (cp >> 6));
        out[1] = (char) (0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char) (0xe0 | (cp >> 12));
        out[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char) (0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char) (0xf0 | (cp >> 18));
    out[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char) (0x80 | (cp & 0x3f));
    return 4;
}

size_t
glm_ju8_len(const char *s, size_t n)
{
    size_t i, count = 0;

    for (i = 0; i < n; i++) {
        if (((unsigned char) s[i] & 0xc0) != 0x80) {
            count++;
        }
    }
    return count;
}

/* Strict UTF-8 (no surrogates, no overlongs), as Python's decoder. */
int
glm_ju8_valid(const char *s, size_t n, size_t *bad_at)
{
    const unsigned char *u = (const unsigned char *) s;
    size_t i = 0;

    while (i < n) {
        unsigned char c = u[i];
        size_t need;
        uint32_t cp, min;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1; cp = c & 0x1f; min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2; cp = c & 0x0f; min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3; cp = c & 0x07; min = 0x10000;
        } else {
            goto bad;
        }
        if (n - i <= need) {
            goto bad;
        }
        for (size_t k = 1; k <= need; k++) {
            if ((u[i + k] & 0xc0) != 0x80) {
                goto bad;
            }
            cp = (cp << 6) | (u[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            goto bad;
        }
        i += need + 1;
    }
    return 1;
bad:
    if (bad_at != NULL) {
        *bad_at = i;
    }
    return 0;
}

/* str.isspace() */
int
glm_jpy_isspace(uint32_t cp)
{
    if (cp < 0x80) {
        return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20);
    }
    return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a)
           || cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

/*
 * str.isprintable(): false for categories Cc, Cf, Cs, Co, Cn, Zl, Zp and Zs
 * other than the space.  The table covers every Cc/Cf/Zs/Zl/Zp/Cs/Co code
 * point; unassigned code points (Cn) are approximated by the noncharacters
 * and planes 4-13 and 15-16, which only matters for repr() of odd text.
 */
int
glm_jpy_isprintable(uint32_t cp)
{
    static const uint32_t ranges[][2] = {
        {0x7f, 0xa0}, {0xad, 0xad}, {0x600, 0x605}, {0x61c, 0x61c}, {0x6dd, 0x6dd},
        {0x70f, 0x70f}, {0x890, 0x891}, {0x8e2, 0x8e2}, {0x1680, 0x1680},
        {0x180e, 0x180e}, {0x2000, 0x200f}, {0x2028, 0x202f}, {0x205f, 0x2064},
        {0x2066, 0x206f}, {0x3000, 0x3000}, {0xd800, 0xf8ff}, {0xfdd0, 0xfdef},
        {0xfeff, 0xfeff}, {0xfff9, 0xfffb}, {0xfffe, 0xffff}, {0x110bd, 0x110bd},
        {0x110cd, 0x110cd}, {0x13430, 0x1343f}, {0x1bca0, 0x1bca3},
        {0x1d173, 0x1d17a}, {0x40000, 0xdffff}, {0xe0000, 0xe0fff},
        {0xf0000, 0x10ffff},
    };
    size_t i;

    if (cp < 0x20) {
        return 0;
    }
    if (cp < 0x7f) {
        return 1;
    }
    if ((cp & 0xfffe) == 0xfffe) {
        return 0;
    }
    for (i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        if (cp >= ranges[i][0] && cp <= ranges[i][1]) {
            return 0;
        }
    }
    return 1;
}


/* ---- constructors ------------------------------------------------------------ */

glm_jinja_value
glm_jv_str(const char *s, size_t n)
{
    glm_jinja_value v;

    memset(&v, 0, sizeof(v));
    v.kind = GLM_JINJA_STR;
    v.n = (uint32_t) n;
    v.u.s = s;
    return v;
}

glm_jinja_value
glm_jv_strz(const char *s)
{
    return glm_jv_str(s, strlen(s));
}

glm_jinja_value
glm_jv_undef(const char *hint, size_t n, int sub)
{
    glm_jinja_value v;

    memset(&v, 0, sizeof(v));
    v.kind = GLM_JINJA_UNDEFINED;
    v.sub = (uint16_t) sub;
    v.u.s = hint;
    v.n = (uint32_t) n;
    return v;
}

/* jinja.h's scalar constructors: calls, for callers outside the interpreter */
glm_jinja_value
glm_jinja_none(void)
{
    return glm_jvnone();
}

glm_jinja_value
glm_jinja_bool(int b)
{
    return glm_jvb(b);
}

glm_jinja_value
glm_jinja_int(int64_t i)
{
    return glm_jvi(i);
}

glm_jinja_value
glm_jinja_float(double f)
{
    return glm_jvf(f);
}

glm_jinja_value
glm_jv_newstr(glm_jrender *r, const char *s, size_t n)
{
    char *p;

    if (n > r->c->limits.max_output) {
        glm_jfail(r, "string of %zu bytes exceeds the output limit (%zu)", n,
                  r->c->limits.max_output);
    }
    p = glm_jalloc(r, n + 1);
    if (n > 0) {
        memcpy(p, s, n);
    }
    p[n] = '\0';
    return glm_jv_str(p, n);
}

int
glm_jv_arena_push(glm_jarena *a, glm_jinja_list *l, glm_jinja_value v)
{
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 4;
        glm_jinja_value *nv;

        if (cap < l->cap) {
            return -1;
        }
        nv = glm_jarena_alloc(a, (size_t) cap * sizeof(*nv));
        if (nv == NULL) {
            return -1;
        }
        if (l->n > 0) {
            memcpy(nv, l->v, (size_t) l->n * sizeof(*nv));
        }
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = v;
    return 0;
}

glm_jinja_value
glm_jv_newlist(glm_jrender *r, uint32_t cap)
{
    glm_jinja_value v;
    glm_jinja_list *l = glm_jalloc(r, sizeof(*l));

    memset(l, 0, sizeof(*l));
    if (cap > 0) {
        l->v = glm_jalloc(r, (size_t) cap * sizeof(*l->v));
        l->cap = cap;
    }
    memset(&v, 0, sizeof(v));
    v.kind = GLM_JINJA_LIST;
    v.u.list = l;
    return v;
}

void
glm_jv_push(glm_jrender *r, glm_jinja_value list, glm_jinja_value v)
{
    if (glm_jv_arena_push(&r->c->arena, list.u.list, v) != 0) {
        glm_jfail(r, "out of memory (render memory limit %zu bytes)",
                  r->c->limits.max_memory);
    }
}

glm_jinja_value
glm_jv_newdict(glm_jrender *r, uint32_t cap)
{
    glm_jinja_value v;
    glm_jinja_dict *d = glm_jalloc(r, sizeof(*d));

    memset(d, 0, sizeof(*d));
    if (cap > 0) {
        d->k = glm_jalloc(r, (size_t) cap * sizeof(*d->k));
        d->v = glm_jalloc(r, (size_t) cap * sizeof(*d->v));
        d->cap = cap;
    }
    memset(&v, 0, sizeof(v));
    v.kind = GLM_JINJA_DICT;
    v.u.dict = d;
    return v;
}


/* ---- hashing and dict lookup ---------------------------------------------------- */

static uint64_t
glm_jhash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    size_t i;

    for (i = 0; i < n; i++) {
        h ^= (unsigned char) s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t
glm_jhash_int(int64_t i)
{
    uint64_t x = (uint64_t) i;

    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

int
glm_jv_hashable(glm_jinja_value v)
{
    uint32_t i;

    switch (v.kind) {
    case GLM_JINJA_DICT:
    case GLM_JINJA_NAMESPACE:
        return 0;
    case GLM_JINJA_LIST:
        if (!(v.flags & GLM_JINJA_F_TUPLE)) {
            return (v.flags & GLM_JINJA_F_ITER) != 0;   /* generators hash by id */
        }
        for (i = 0; i < v.u.list->n; i++) {
            if (!glm_jv_hashable(v.u.list->v[i])) {
                return 0;
            }
        }
        return 1;
    default:
        return 1;
    }
}

/* Equal values hash equal (1 == 1.0 == True, as in Python). */
static uint64_t
glm_jhash(glm_jinja_value v)
{
    uint64_t h;
    uint32_t i;

    switch (v.kind) {
    case GLM_JINJA_STR:
        return glm_jhash_bytes(v.u.s, v.n);
    case GLM_JINJA_BOOL:
    case GLM_JINJA_INT:
        return glm_jhash_int(v.u.i);
    case GLM_JINJA_FLOAT:
        if (v.u.f == floor(v.u.f) && fabs(v.u.f) < 9.2e18) {
            return glm_jhash_int((int64_t) v.u.f);
        }
        {
            uint64_t bits;

            memcpy(&bits, &v.u.f, sizeof(bits));
            return glm_jhash_int((int64_t) bits);
        }
    case GLM_JINJA_BIGINT:
        return glm_jhash_bytes(v.u.s, v.n) ^ 0x5bd1e995u;
    case GLM_JINJA_LIST:
        if (v.flags & GLM_JINJA_F_TUPLE) {
            h = 0x345678u;
            for (i = 0; i < v.u.list->n; i++) {
                h = (h ^ glm_jhash(v.u.list->v[i])) * 1000003u;
            }
            return h;
        }
        return glm_jhash_int((int64_t) (uintptr_t) v.u.list);
    case GLM_JINJA_NONE:
        return 0x9e3779b97f4a7c15ull;
    case GLM_JINJA_UNDEFINED:
        return 0x1234567u;
    default:
        return glm_jhash_int((int64_t) (uintptr_t) v.u.p);
    }
}

/* Equality for keys (no render state: keys are scalars or tuples of them). */
static int
glm_jkey_eq(glm_jinja_value a, glm_jinja_value b)
{
    uint32_t i;

    if (a.kind == GLM_JINJA_STR && b.kind == GLM_JINJA_STR) {
        return a.n == b.n && memcmp(a.u.s, b.u.s, a.n) == 0;
    }
    if (glm_jv_is_num(a) && glm_jv_is_num(b)) {
        if (a.kind != GLM_JINJA_FLOAT && b.kind != GLM_JINJA_FLOAT) {
            return a.u.i == b.u.i;
        }
        return (a.kind == GLM_JINJA_FLOAT ? a.u.f : (double) a.u.i)
               == (b.kind == GLM_JINJA_FLOAT ? b.u.f : (double) b.u.i);
    }
    if (a.kind != b.kind) {
        return 0;
    }
    switch (a.kind) {
    case GLM_JINJA_NONE:
    case GLM_JINJA_UNDEFINED:
        return 1;
    case GLM_JINJA_BIGINT:
        return a.n == b.n && memcmp(a.u.s, b.u.s, a.n) == 0;
    case GLM_JINJA_LIST:
        if ((a.flags & GLM_JINJA_F_TUPLE) != (b.flags & GLM_JINJA_F_TUPLE)
            || !(a.flags & GLM_JINJA_F_TUPLE)) {
            return a.u.list == b.u.list;
        }
        if (a.u.list->n != b.u.list->n) {
            return 0;
        }
        for (i = 0; i < a.u.list->n; i++) {
            if (!glm_jkey_eq(a.u.list->v[i], b.u.list->v[i])) {
                return 0;
            }
        }
        return 1;
    default:
        return a.u.p == b.u.p;
    }
}

void
glm_jv_dict_drop_index(glm_jinja_dict *d)
{
    d->index = NULL;
    d->index_cap = 0;
}

/* Builds the index in a; 0 on success (no index is not an error: lookups
 * fall back to a scan). */
static void
glm_jdict_build_index(glm_jarena *a, glm_jinja_dict *d)
{
    uint32_t cap = 16, i;
    uint32_t *idx;

    while (cap < d->n * 2 + 2) {
        cap *= 2;
    }
    idx = glm_jarena_alloc(a, (size_t) cap * sizeof(*idx));
    if (idx == NULL) {
        return;
    }
    memset(idx, 0, (size_t) cap * sizeof(*idx));
    for (i = 0; i < d->n; i++) {
        uint64_t h = glm_jhash(d->k[i]);
        uint32_t slot = (uint32_t) h & (cap - 1);

        while (idx[slot] != 0) {
            slot = (slot + 1) & (cap - 1);
        }
        idx[slot] = i + 1;
    }
    d->index = idx;
    d->index_cap = cap;
}

static int64_t
glm_jdict_pos(const glm_jinja_dict *d, glm_jinja_value k)
{
    uint32_t i;

    if (d->index_cap != 0) {
        uint32_t slot = (uint32_t) glm_jhash(k) & (d->index_cap - 1);

        while (d->index[slot] != 0) {
            i = d->index[slot] - 1;
            if (glm_jkey_eq(d->k[i], k)) {
                return i;
            }
            slot = (slot + 1) & (d->index_cap - 1);
        }
        return -1;
    }
    for (i = 0; i < d->n; i++) {
        if (glm_jkey_eq(d->k[i], k)) {
            return i;
        }
    }
    return -1;
}

glm_jinja_value *
glm_jv_dict_find(const glm_jinja_dict *d, glm_jinja_value k)
{
    int64_t i = glm_jdict_pos(d, k);

    return i < 0 ? NULL : &d->v[i];
}

glm_jinja_value *
glm_jv_dict_find_str(const glm_jinja_dict *d, const char *s, size_t n)
{
    uint32_t i;

    if (d->index_cap != 0) {
        return glm_jv_dict_find(d, glm_jv_str(s, n));
    }
    for (i = 0; i < d->n; i++) {
        if (d->k[i].kind == GLM_JINJA_STR && d->k[i].n == n
            && memcmp(d->k[i].u.s, s, n) == 0) {
            return &d->v[i];
        }
    }
    return NULL;
}

int
glm_jv_arena_dict_put(glm_jarena *a, glm_jinja_dict *d, glm_jinja_value k,
                      glm_jinja_value v, int unused)
{
    int64_t pos = glm_jdict_pos(d, k);

    (void) unused;
    if (pos >= 0) {
        d->v[pos] = v;      /* Python keeps the first key's position */
        return 0;
    }
    if (d->n == d->cap) {
        uint32_t cap = d->cap ? d->cap * 2 : 4;
        glm_jinja_value *nk, *nv;

        if (cap < d->cap) {
            return -1;
        }
        nk = glm_jarena_alloc(a, (size_t) cap * sizeof(*nk));
        nv = glm_jarena_alloc(a, (size_t) cap * sizeof(*nv));
        if (nk == NULL || nv == NULL) {
            return -1;
        }
        if (d->n > 0) {
            memcpy(nk, d->k, (size_t) d->n * sizeof(*nk));
            memcpy(nv, d->v, (size_t) d->n * sizeof(*nv));
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = k;
    d->v[d->n] = v;
    d->n++;
    if (d->n > 8 && (d->index_cap == 0 || d->n * 2 + 2 > d->index_cap)) {
        glm_jdict_build_index(a, d);
    } else if (d->index_cap != 0) {
        uint32_t slot = (uint32_t) glm_jhash(k) & (d->index_cap - 1);

        while (d->index[slot] != 0) {
            slot = (slot + 1) & (d->index_cap - 1);
        }
        d->index[slot] = d->n;
    }
    return 0;
}

void
glm_jv_dict_put(glm_jrender *r, glm_jinja_value dict, glm_jinja_value k, glm_jinja_value v)
{
    if (!glm_jv_hashable(k)) {
        glm_jfail(r, "unhashable type: '%s'", glm_jv_type_name(k));
    }
    if (glm_jv_arena_dict_put(&r->c->arena, dict.u.dict, k, v, 0) != 0) {
        glm_jfail(r, "out of memory (render memory limit %zu bytes)",
                  r->c->limits.max_memory);
    }
}


/* ---- Python semantics ------------------------------------------------------------ */

int
glm_jv_is_str(glm_jinja_value v)
{
    return v.kind == GLM_JINJA_STR;
}

int
glm_jv_is_num(glm_jinja_value v)
{
    return v.kind == GLM_JINJA_INT || v.kind == GLM_JINJA_FLOAT || v.kind == GLM_JINJA_BOOL;
}

const char *
glm_jv_type_name(glm_jinja_value v)
{
    switch (v.kind) {
    case GLM_JINJA_UNDEFINED: return "Undefined";
    case GLM_JINJA_NONE: return "NoneType";
    case GLM_JINJA_BOOL: return "bool";
    case GLM_JINJA_INT:
    case GLM_JINJA_BIGINT: return "int";
    case GLM_JINJA_FLOAT: return "float";
    case GLM_JINJA_STR: return (v.flags & GLM_JINJA_F_SAFE) ? "Markup" : "str";
    case GLM_JINJA_LIST:
        return (v.flags & GLM_JINJA_F_TUPLE) ? "tuple"
               : (v.flags & GLM_JINJA_F_ITER) ? "generator" : "list";
    case GLM_JINJA_DICT: return "dict";
    case GLM_JINJA_NAMESPACE: return "Namespace";
    case GLM_JINJA_MACRO: return "Macro";
    case GLM_JINJA_LOOP: return "LoopContext";
    case GLM_JINJA_FUNC: return "builtin_function_or_method";
    default: return "object";
    }
}

int
glm_jv_truthy(glm_jinja_value v)
{
    switch (v.kind) {
    case GLM_JINJA_UNDEFINED:
    case GLM_JINJA_NONE:
        return 0;
    case GLM_JINJA_BOOL:
    case GLM_JINJA_INT:
        return v.u.i != 0;
    case GLM_JINJA_FLOAT:
        return v.u.f != 0.0;
    case GLM_JINJA_STR:
        return v.n != 0;
    case GLM_JINJA_LIST:
        return (v.flags & GLM_JINJA_F_ITER) ? 1 : v.u.list->n != 0;
    case GLM_JINJA_DICT:
        return v.u.dict->n != 0;
    case GLM_JINJA_LOOP:
        return ((glm_jloop *) v.u.p)->length != 0;
    default:
        return 1;
    }
}

static double
glm_jnum_f(glm_jinja_value v)
{
    return v.kind == GLM_JINJA_FLOAT ? v.u.f : (double) v.u.i;
}

int
glm_jv_eq(glm_jrender *r, glm_jinja_value a, glm_jinja_value b)
{
    uint32_t i;

    if (++r->depth > r->c->limits.max_depth) {
        glm_jfail(r, "maximum recursion depth exceeded in comparison");
    }
    if (a.kind == GLM_JINJA_LIST && b.kind == GLM_JINJA_LIST
        && !((a.flags | b.flags) & GLM_JINJA_F_ITER)) {
        int eq = 1;

        if ((a.flags & GLM_JINJA_F_TUPLE) != (b.flags & GLM_JINJA_F_TUPLE)
            || a.u.list->n != b.u.list->n) {
            eq = 0;
        }
        for (i = 0; eq && i < a.u.list->n; i++) {
            eq = glm_jv_eq(r, a.u.list->v[i], b.u.list->v[i]);
        }
        r->depth--;
        return eq;
    }
    if (a.kind == GLM_JINJA_DICT && b.kind == GLM_JINJA_DICT) {
        int eq = a.u.dict->n == b.u.dict->n;

        for (i = 0; eq && i < a.u.dict->n; i++) {
            glm_jinja_value *bv = glm_jv_dict_find(b.u.dict, a.u.dict->k[i]);

            eq = bv != NULL && glm_jv_eq(r, a.u.dict->v[i], *bv);
        }
        r->depth--;
        return eq;
    }
    r->depth--;
    if (glm_jv_is_num(a) && glm_jv_is_num(b)) {
        if (a.kind != GLM_JINJA_FLOAT && b.kind != GLM_JINJA_FLOAT) {
            return a.u.i == b.u.i;
        }
        return glm_jnum_f(a) == glm_jnum_f(b);
    }
    return glm_jkey_eq(a, b);
}

int
glm_jv_cmp(glm_jrender *r, glm_jinja_value a, glm_jinja_value b)
{
    if (glm_jv_is_num(a) && glm_jv_is_num(b)) {
        if (a.kind != GLM_JINJA_FLOAT && b.kind != GLM_JINJA_FLOAT) {
            return (a.u.i > b.u.i) - (a.u.i < b.u.i);
        }
        {
            double x = glm_jnum_f(a), y = glm_jnum_f(b);

            return (x > y) - (x < y);
        }
    }
    if (a.kind == GLM_JINJA_STR && b.kind == GLM_JINJA_STR) {
        /* UTF-8 byte order is code point order */
        size_t n = a.n < b.n ? a.n : b.n;
        int c = n ? memcmp(a.u.s, b.u.s, n) : 0;

        if (c != 0) {
            return c;
        }
        return (a.n > b.n) - (a.n < b.n);
    }
    if (a.kind == GLM_JINJA_LIST && b.kind == GLM_JINJA_LIST
        && (a.flags & GLM_JINJA_F_TUPLE) == (b.flags & GLM_JINJA_F_TUPLE)
        && !((a.flags | b.flags) & GLM_JINJA_F_ITER)) {
        uint32_t i, n = a.u.list->n < b.u.list->n ? a.u.list->n : b.u.list->n;

        if (++r->depth > r->c->limits.max_depth) {
            glm_jfail(r, "maximum recursion depth exceeded in comparison");
        }
        for (i = 0; i < n; i++) {
            if (!glm_jv_eq(r, a.u.list->v[i], b.u.list->v[i])) {
                int c = glm_jv_cmp(r, a.u.list->v[i], b.u.list->v[i]);

                r->depth--;
                return c;
            }
        }
        r->depth--;
        return (a.u.list->n > b.u.list->n) - (a.u.list->n < b.u.list->n);
    }
    if (a.kind == GLM_JINJA_UNDEFINED) {
        glm_jfail_undefined(r, a);
    }
    if (b.kind == GLM_JINJA_UNDEFINED) {
        glm_jfail_undefined(r, b);
    }
    glm_jfail(r, "'<' not supported between instances of '%s' and '%s'",
              glm_jv_type_name(a), glm_jv_type_name(b));
}


/* ---- buffers -------------------------------------------------------------------- */

static void
glm_jbuf_grow(glm_jrender *r, glm_jbuf *b, size_t need)
{
    size_t cap;
    char *p;

    if (need > r->c->limits.max_output) {
        glm_jfail(r, "rendered text exceeds the output limit (%zu bytes)",
                  r->c->limits.max_output);
    }
    cap = b->cap ? b->cap * 2 : 256;
    while (cap < need + 1) {
        cap *= 2;
    }
    p = glm_jalloc(r, cap);
    if (b->n > 0) {
        memcpy(p, b->p, b->n);
    }
    b->p = p;
    b->cap = cap;
}

void
glm_jbuf_put(glm_jrender *r, glm_jbuf *b, const char *s, size_t n)
{
    if (b->cap - b->n < n + 1 || b->p == NULL) {
        glm_jbuf_grow(r, b, b->n + n);
    }
    if (n > 0) {
        memcpy(b->p + b->n, s, n);
    }
    b->n += n;
    b->p[b->n] = '\0';
}

void
glm_jbuf_putc(glm_jrender *r, glm_jbuf *b, char ch)
{
    glm_jbuf_put(r, b, &ch, 1);
}

void
glm_jbuf_printf(glm_jrender *r, glm_jbuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) {
        n = 0;
    }
    glm_jbuf_put(r, b, tmp, (size_t) n < sizeof(tmp) ? (size_t) n : sizeof(tmp) - 1);
}

glm_jinja_value
glm_jbuf_value(glm_jrender *r, glm_jbuf *b)
{
    if (b->p == NULL) {
        return glm_jv_str("", 0);
    }
    return glm_jv_str(b->p, b->n);
}


/* ---- str() and repr() --------------------------------------------------------------- */

/*
 * repr(float): the shortest digits that read back to the same double (the
 * first precision whose correctly rounded %e form round-trips), laid out as
 * Python does: positional when -4 < decimal point <= 16, else d.ddde+XX.
 */
size_t
glm_jv_float_repr(double f, char *out, size_t size)
{
    char buf[48], digits[24];
    int prec, exp10, nd = 0, decpt, neg;
    char *e, *p;
    size_t o = 0;

#define PUT(ch) do { if (o + 1 < size) out[o] = (ch); o++; } while (0)
    if (isnan(f)) {
        return (size_t) snprintf(out, size, "nan");
    }
    if (isinf(f)) {
        return (size_t) snprintf(out, size, f < 0 ? "-inf" : "inf");
    }
    if (f == 0.0) {
        return (size_t) snprintf(out, size, signbit(f) ? "-0.0" : "0.0");
    }
    prec = 18;
    {
        /* fast path: f * 10^k integral with at most 15 digits.  Decimals of
         * up to 15 significant digits survive a round trip (DBL_DIG), so one
         * that reads back as f is the unique shortest: no search needed */
        static const double p10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};
        int k;

        for (k = 0; k < 9; k++) {
            double y = f * p10[k];

            if (fabs(y) < 1e15 && y == (double) (int64_t) y) {
                char tmp[48];

                snprintf(tmp, sizeof(tmp), "%llde-%d", (long long) (int64_t) y, k);
                if (strtod(tmp, NULL) == f) {
                    snprintf(buf, sizeof(buf), "%.*e", 14, f);
                    /* %.14e of a <=15-digit decimal is exact: trailing zeros
                     * are stripped below */
                    prec = 0;
                }
                break;
            }
        }
    }
    if (prec != 0) {
        for (prec = 1; prec <= 17; prec++) {
            snprintf(buf, sizeof(buf), "%.*e", prec - 1, f);
            if (strtod(buf, NULL) == f) {
                break;
            }
        }
    }
    neg = buf[0] == '-';
    e = strchr(buf, 'e');
    exp10 = atoi(e + 1);
    for (p = buf + neg; p < e; p++) {
        if (*p != '.') {
            digits[nd++] = *p;
        }
    }
    while (nd > 1 && digits[nd - 1] == '0') {
        nd--;
    }
    decpt = exp10 + 1;
    if (neg) {
        PUT('-');
    }
    if (decpt > -4 && decpt <= 16) {
        int i;

        if (decpt <= 0) {
            PUT('0');
            PUT('.');
            for (i = 0; i < -decpt; i++) {
                PUT('0');
            }
            for (i = 0; i < nd; i++) {
                PUT(digits[i]);
            }
        } else if (decpt >= nd) {
            for (i = 0; i < nd; i++) {
                PUT(digits[i]);
            }
            for (i = nd; i < decpt; i++) {
                PUT('0');
            }
            PUT('.');
            PUT('0');
        } else {
            for (i = 0; i < nd; i++) {
                if (i == decpt) {
                    PUT('.');
                }
                PUT(digits[i]);
            }
        }
    } else {
        char eb[8];
        int i, en;

        PUT(digits[0]);
        if (nd > 1) {
            PUT('.');
            for (i = 1; i < nd; i++) {
                PUT(digits[i]);
            }
        }
        en = snprintf(eb, sizeof(eb), "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
        for (i = 0; i < en; i++) {
            PUT(eb[i]);
        }
    }
    if (size > 0) {
        out[o < size ? o : size - 1] = '\0';
    }
    return o;
#undef PUT
}

static void
glm_jwrite_str_repr(glm_jrender *r, glm_jbuf *b, const char *s, size_t n)
{
    char quote = '\'';
    size_t i, adv, start;
    int has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;

    if (has_sq && !has_dq) {
        quote = '"';
    }
    glm_jbuf_putc(r, b, quote);
    start = 0;
    for (i = 0; i < n; i += adv) {
        uint32_t cp = glm_ju8_decode(s + i, n - i, &adv);
        char esc[16];
        int en = 0;

        if (cp == (uint32_t) quote || cp == '\\') {
            esc[0] = '\\';
            esc[1] = (char) cp;
            en = 2;
        } else if (cp == '\t') {
            en = snprintf(esc, sizeof(esc), "\\t");
        } else if (cp == '\n') {
            en = snprintf(esc, sizeof(esc), "\\n");
        } else if (cp == '\r') {
            en = snprintf(esc, sizeof(esc), "\\r");
        } else if (cp < 0x20 || cp == 0x7f) {
            en = snprintf(esc, sizeof(esc), "\\x%02x", cp);
        } else if (cp >= 0x80 && !glm_jpy_isprintable(cp)) {
            if (cp < 0x100) {
                en = snprintf(esc, sizeof(esc), "\\x%02x", cp);
            } else if (cp < 0x10000) {
                en = snprintf(esc, sizeof(esc), "\\u%04x", cp);
            } else {
                en = snprintf(esc, sizeof(esc), "\\U%08x", cp);
            }
        }
        if (en > 0) {
            glm_jbuf_put(r, b, s + start, i - start);
            glm_jbuf_put(r, b, esc, (size_t) en);
            start = i + adv;
        }
    }
    glm_jbuf_put(r, b, s + start, n - start);
    glm_jbuf_putc(r, b, quote);
}

static void
glm_jwrite_scalar(glm_jrender *r, glm_jbuf *b, glm_jinja_value v)
{
    char tmp[40];
    size_t n;

    switch (v.kind) {
    case GLM_JINJA_NONE:
        glm_jbuf_put(r, b, "None", 4);
        break;
    case GLM_JINJA_BOOL:
        if (v.u.i) {
            glm_jbuf_put(r, b, "True", 4);
        } else {
            glm_jbuf_put(r, b, "False", 5);
        }
        break;
    case GLM_JINJA_INT:
        n = (size_t) snprintf(tmp, sizeof(tmp), "%lld", (long long) v.u.i);
        glm_jbuf_put(r, b, tmp, n);
        break;
    case GLM_JINJA_FLOAT:
        n = glm_jv_float_repr(v.u.f, tmp, sizeof(tmp));
        glm_jbuf_put(r, b, tmp, n);
        break;
    case GLM_JINJA_BIGINT:
        glm_jbuf_put(r, b, v.u.s, v.n);
        break;
    default:
        break;
    }
}

void
glm_jv_write_repr(glm_jrender *r, glm_jbuf *b, glm_jinja_value v, int depth)
{
    uint32_t i;

    if (depth > r->c->limits.max_depth) {
        glm_jfail(r, "maximum recursion depth exceeded while getting the repr of an object");
    }
    switch (v.kind) {
    case GLM_JINJA_STR:
        if (v.flags & GLM_JINJA_F_SAFE) {
            glm_jbuf_put(r, b, "Markup(", 7);
            glm_jwrite_str_repr(r, b, v.u.s, v.n);
            glm_jbuf_putc(r, b, ')');
        } else {
            glm_jwrite_str_repr(r, b, v.u.s, v.n);
        }
        return;
    case GLM_JINJA_UNDEFINED:
        glm_jbuf_put(r, b, "Undefined", 9);
        return;
    case GLM_JINJA_LIST:
        if (v.flags & GLM_JINJA_F_ITER) {
            /* Python prints an address here; no template can depend on it,
             * but one may test or measure the text, so do not fail */
            glm_jbuf_put(r, b, "<generator object at 0x7f0000000000>", 36);
            return;
        }
        if (v.sub != 0 && !(v.flags & GLM_JINJA_F_TUPLE)) {
            static const char *const views[] = {"", "dict_keys(", "dict_values(", "dict_items("};

            glm_jbuf_put(r, b, views[v.sub & 3], strlen(views[v.sub & 3]));
        }
        glm_jbuf_putc(r, b, (v.flags & GLM_JINJA_F_TUPLE) ? '(' : '[');
        for (i = 0; i < v.u.list->n; i++) {
            if (i > 0) {
                glm_jbuf_put(r, b, ", ", 2);
            }
            glm_jv_write_repr(r, b, v.u.list->v[i], depth + 1);
        }
        if ((v.flags & GLM_JINJA_F_TUPLE) && v.u.list->n == 1) {
            glm_jbuf_putc(r, b, ',');
        }
        glm_jbuf_putc(r, b, (v.flags & GLM_JINJA_F_TUPLE) ? ')' : ']');
        if (v.sub != 0 && !(v.flags & GLM_JINJA_F_TUPLE)) {
            glm_jbuf_putc(r, b, ')');
        }
        return;
    case GLM_JINJA_DICT:
    case GLM_JINJA_NAMESPACE:
        if (v.kind == GLM_JINJA_NAMESPACE) {
            glm_jbuf_put(r, b, "<Namespace ", 11);
        }
        glm_jbuf_putc(r, b, '{');
        for (i = 0; i < v.u.dict->n; i++) {
            if (i > 0) {
                glm_jbuf_put(r, b, ", ", 2);
            }
            glm_jv_write_repr(r, b, v.u.dict->k[i], depth + 1);
            glm_jbuf_put(r, b, ": ", 2);
            glm_jv_write_repr(r, b, v.u.dict->v[i], depth + 1);
        }
        glm_jbuf_putc(r, b, '}');
        if (v.kind == GLM_JINJA_NAMESPACE) {
            glm_jbuf_putc(r, b, '>');
        }
        return;
    case GLM_JINJA_MACRO: {
        const glm_jmacro *m = v.u.p;

        glm_jbuf_put(r, b, "<Macro ", 7);
        glm_jwrite_str_repr(r, b, m->def->name.u.s, m->def->name.n);
        glm_jbuf_putc(r, b, '>');
        return;
    }
    case GLM_JINJA_LOOP: {
        const glm_jloop *l = v.u.p;

        glm_jbuf_printf(r, b, "<LoopContext %lld/%lld>", (long long) (l->index0 + 1),
                        (long long) l->length);
        return;
    }
    case GLM_JINJA_FUNC:
        glm_jbuf_put(r, b, "<built-in method at 0x7f0000000000>", 35);
        return;
    default:
        glm_jwrite_scalar(r, b, v);
    }
}

void
glm_jv_write_str(glm_jrender *r, glm_jbuf *b, glm_jinja_value v)
{
    switch (v.kind) {
    case GLM_JINJA_STR:
        glm_jbuf_put(r, b, v.u.s, v.n);
        return;
    case GLM_JINJA_UNDEFINED:
        return;
    default:
        glm_jv_write_repr(r, b, v, 0);
    }
}

glm_jinja_value
glm_jv_to_str(glm_jrender *r, glm_jinja_value v)
{
    glm_jbuf b = {0};

    if (v.kind == GLM_JINJA_STR) {
        return v;
    }
    if (v.kind == GLM_JINJA_UNDEFINED) {
        return glm_jv_str("", 0);
    }
    glm_jv_write_str(r, &b, v);
    return glm_jbuf_value(r, &b);
}


/* ---- json.dumps ------------------------------------------------------------------------ */

static void
glm_jwrite_json_str(glm_jrender *r, glm_jbuf *b, const char *s, size_t n, int ensure_ascii)
{
    size_t i, adv, start = 0;

    glm_jbuf_putc(r, b, '"');
    for (i = 0; i < n; i += adv) {
        unsigned char c = (unsigned char) s[i];
        char esc[16];
        int en = 0;

        adv = 1;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char) c;
            en = 2;
        } else if (c == '\n') {
            en = snprintf(esc, sizeof(esc), "\\n");
        } else if (c == '\r') {
            en = snprintf(esc, sizeof(esc), "\\r");
        } else if (c == '\t') {
            en = snprintf(esc, sizeof(esc), "\\t");
        } else if (c == '\b') {
            en = snprintf(esc, sizeof(esc), "\\b");
        } else if (c == '\f') {
            en = snprintf(esc, sizeof(esc), "\\f");
        } else if (c < 0x20 || (ensure_ascii && c == 0x7f)) {
            en = snprintf(esc, sizeof(esc), "\\u%04x", c);
        } else if (c >= 0x80 && ensure_ascii) {
            uint32_t cp = glm_ju8_decode(s + i, n - i, &adv);

            if (cp >= 0x10000) {
                cp -= 0x10000;
                en = snprintf(esc, sizeof(esc), "\\u%04x\\u%04x", 0xd800 + (cp >> 10),
                              0xdc00 + (cp & 0x3ff));
            } else {
                en = snprintf(esc, sizeof(esc), "\\u%04x", cp);
            }
        }
        if (en > 0) {
            glm_jbuf_put(r, b, s + start, i - start);
            glm_jbuf_put(r, b, esc, (size_t) en);
            start = i + adv;
        }
    }
    glm_jbuf_put(r, b, s + start, n - start);
    glm_jbuf_putc(r, b, '"');
}

static void
glm_jwrite_json_scalar(glm_jrender *r, glm_jbuf *b, glm_jinja_value v, int as_key)
{
    char tmp[40];
    size_t n;

    switch (v.kind) {
    case GLM_JINJA_NONE:
        glm_jbuf_put(r, b, as_key ? "\"null\"" : "null", as_key ? 6 : 4);
        return;
    case GLM_JINJA_BOOL:
        if (as_key) {
            glm_jbuf_put(r, b, v.u.i ? "\"true\"" : "\"false\"", v.u.i ? 6 : 7);
        } else {
            glm_jbuf_put(r, b, v.u.i ? "true" : "false", v.u.i ? 4 : 5);
        }
        return;
    case GLM_JINJA_INT:
    case GLM_JINJA_BIGINT:
    case GLM_JINJA_FLOAT:
        if (v.kind == GLM_JINJA_FLOAT && isnan(v.u.f)) {
            n = (size_t) snprintf(tmp, sizeof(tmp), "NaN");
        } else if (v.kind == GLM_JINJA_FLOAT && isinf(v.u.f)) {
            n = (size_t) snprintf(tmp, sizeof(tmp), v.u.f < 0 ? "-Infinity" : "Infinity");
        } else if (v.kind == GLM_JINJA_FLOAT) {
            n = glm_jv_float_repr(v.u.f, tmp, sizeof(tmp));
        } else if (v.kind == GLM_JINJA_BIGINT) {
            if (as_key) {
                glm_jbuf_putc(r, b, '"');
            }
            glm_jbuf_put(r, b, v.u.s, v.n);
            if (as_key) {
                glm_jbuf_putc(r, b, '"');
            }
            return;
        } else {
            n = (size_t) snprintf(tmp, sizeof(tmp), "%lld", (long long) v.u.i);
        }
        if (as_key) {
            glm_jbuf_putc(r, b, '"');
        }
        glm_jbuf_put(r, b, tmp, n);
        if (as_key) {
            glm_jbuf_putc(r, b, '"');
        }
        return;
    default:
        break;
    }
    if (as_key) {
        glm_jfail(r, "keys must be str, int, float, bool or None, not %s",
                  glm_jv_type_name(v));
    }
    glm_jfail(r, "Object of type %s is not JSON serializable", glm_jv_type_name(v));
}

static void
glm_jjson_newline(glm_jrender *r, glm_jbuf *b, const char *indent, size_t indent_n, int level)
{
    int i;

    glm_jbuf_putc(r, b, '\n');
    for (i = 0; i < level; i++) {
        glm_jbuf_put(r, b, indent, indent_n);
    }
}

/* Python's sorted(d.items()) order for sort_keys: by key, a TypeError when
 * keys of different types meet. */
static void
glm_jsort_keys(glm_jrender *r, const glm_jinja_dict *d, uint32_t *order)
{
    uint32_t i, j;

    for (i = 0; i < d->n; i++) {
        order[i] = i;
    }
    for (i = 1; i < d->n; i++) {     /* insertion sort: stable, dicts are small */
        uint32_t x = order[i];

        for (j = i; j > 0 && glm_jv_cmp(r, d->k[order[j - 1]], d->k[x]) > 0; j--) {
            order[j] = order[j - 1];
        }
        order[j] = x;
    }
}

void
glm_jv_write_json(glm_jrender *r, glm_jbuf *b, glm_jinja_value v, int ensure_ascii,
                  const char *indent, size_t indent_n, const char *item_sep,
                  const char *key_sep, int sort_keys, int depth, int level)
{
    uint32_t i;
    const char *isep = item_sep != NULL ? item_sep : (indent != NULL ? "," : ", ");
    const char *ksep = key_sep != NULL ? key_sep : ": ";

    if (depth > r->c->limits.max_depth) {
        glm_jfail(r, "maximum recursion depth exceeded while encoding a JSON object");
    }
    glm_jstep(r);
    switch (v.kind) {
    case GLM_JINJA_STR:
        glm_jwrite_json_str(r, b, v.u.s, v.n, ensure_ascii);
        return;
    case GLM_JINJA_LIST:
        if (v.flags & GLM_JINJA_F_ITER) {
            glm_jfail(r, "Object of type generator is not JSON serializable");
        }
        if (v.u.list->n == 0) {
            glm_jbuf_put(r, b, "[]", 2);
            return;
        }
        glm_jbuf_putc(r, b, '[');
        if (indent != NULL) {
            glm_jjson_newline(r, b, indent, indent_n, level + 1);
        }
        for (i = 0; i < v.u.list->n; i++) {
            if (i > 0) {
                glm_jbuf_put(r, b, isep, strlen(isep));
                if (indent != NULL) {
                    glm_jjson_newline(r, b, indent, indent_n, level + 1);
                }
            }
            glm_jv_write_json(r, b, v.u.list->v[i], ensure_ascii, indent, indent_n, item_sep,
                              key_sep, sort_keys, depth + 1, level + 1);
        }
        if (indent != NULL) {
            glm_jjson_newline(r, b, indent, indent_n, level);
        }
        glm_jbuf_putc(r, b, ']');
        return;
    case GLM_JINJA_DICT: {
        const glm_jinja_dict *d = v.u.dict;
        uint32_t *order = NULL;

        if (d->n == 0) {
            glm_jbuf_put(r, b, "{}", 2);
            return;
        }
        if (sort_keys) {
            order = glm_jalloc(r, (size_t) d->n * sizeof(*order));
            glm_jsort_keys(r, d, order);
        }
        glm_jbuf_putc(r, b, '{');
        if (indent != NULL) {
            glm_jjson_newline(r, b, indent, indent_n, level + 1);
        }
        for (i = 0; i < d->n; i++) {
            uint32_t k = order != NULL ? order[i] : i;

            if (i > 0) {
                glm_jbuf_put(r, b, isep, strlen(isep));
                if (indent != NULL) {
                    glm_jjson_newline(r, b, indent, indent_n, level + 1);
                }
            }
            if (d->k[k].kind == GLM_JINJA_STR) {
                glm_jwrite_json_str(r, b, d->k[k].u.s, d->k[k].n, ensure_ascii);
            } else {
                glm_jwrite_json_scalar(r, b, d->k[k], 1);
            }
            glm_jbuf_put(r, b, ksep, strlen(ksep));
            glm_jv_write_json(r, b, d->v[k], ensure_ascii, indent, indent_n, item_sep,
                              key_sep, sort_keys, depth + 1, level + 1);
        }
        if (indent != NULL) {
            glm_jjson_newline(r, b, indent, indent_n, level);
        }
        glm_jbuf_putc(r, b, '}');
        return;
    }
    default:
        glm_jwrite_json_scalar(r, b, v, 0);
    }
}


/* ---- JSON input (yajl events) ---------------------------------------------------------------- */

#define GLM_JJSON_MAX_DEPTH 512

typedef struct {
    glm_jarena *a;
    glm_jinja_value stack[GLM_JJSON_MAX_DEPTH];
    glm_jinja_value key[GLM_JJSON_MAX_DEPTH];
    int depth;
    glm_jinja_value result;
    int have_result;
    const char *fail;       /* why a callback stopped the parse */
} glm_jjson_state;

static int
glm_jjson_add(glm_jjson_state *st, glm_jinja_value v)
{
    glm_jinja_value *top;

    if (st->depth == 0) {
        st->result = v;
        st->have_result = 1;
        return 1;
    }
    top = &st->stack[st->depth - 1];
    if (top->kind == GLM_JINJA_LIST) {
        if (glm_jv_arena_push(st->a, top->u.list, v) != 0) {
            st->fail = "out of memory";
            return 0;
        }
        return 1;
    }
    if (glm_jv_arena_dict_put(st->a, top->u.dict, st->key[st->depth - 1], v, 0) != 0) {
        st->fail = "out of memory";
        return 0;
    }
    return 1;
}

static int
glm_jjson_null(void *ctx)
{
    return glm_jjson_add(ctx, glm_jvnone());
}

static int
glm_jjson_boolean(void *ctx, int b)
{
    return glm_jjson_add(ctx, glm_jvb(b));
}

static int
glm_jjson_number(void *ctx, const char *s, size_t n)
{
    glm_jjson_state *st = ctx;
    char tmp[64];
    glm_jinja_value v;

    if (memchr(s, '.', n) == NULL && memchr(s, 'e', n) == NULL && memchr(s, 'E', n) == NULL) {
        long long i;
        char *end;

        if (n < sizeof(tmp)) {
            memcpy(tmp, s, n);
            tmp[n] = '\0';
            errno = 0;
            i = strtoll(tmp, &end, 10);
            if (errno == 0 && *end == '\0') {
                return glm_jjson_add(st, glm_jvi(i));
            }
        }
        /* beyond int64: keep the decimal text (Python ints are unbounded) */
        {
            char *p = glm_jarena_alloc(st->a, n + 1);

            if (p == NULL) {
                st->fail = "out of memory";
                return 0;
            }
            memcpy(p, s, n);
            p[n] = '\0';
            memset(&v, 0, sizeof(v));
            v.kind = GLM_JINJA_BIGINT;
            v.u.s = p;
            v.n = (uint32_t) n;
            return glm_jjson_add(st, v);
        }
    }
    if (n >= sizeof(tmp)) {
        char *p = glm_jarena_alloc(st->a, n + 1);

        if (p == NULL) {
            st->fail = "out of memory";
            return 0;
        }
        memcpy(p, s, n);
        p[n] = '\0';
        return glm_jjson_add(st, glm_jvf(strtod(p, NULL)));
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return glm_jjson_add(st, glm_jvf(strtod(tmp, NULL)));
}

static int
glm_jjson_string(void *ctx, const unsigned char *s, size_t n)
{
    glm_jjson_state *st = ctx;
    char *p;

    if (n > UINT32_MAX) {
        st->fail = "string too long";
        return 0;
    }
    p = glm_jarena_alloc(st->a, n + 1);
    if (p == NULL) {
        st->fail = "out of memory";
        return 0;
    }
    memcpy(p, s, n);
    p[n] = '\0';
    return glm_jjson_add(st, glm_jv_str(p, n));
}

static int
glm_jjson_open(glm_jjson_state *st, glm_jinja_kind kind)
{
    glm_jinja_value v;
    void *c;

    if (st->depth >= GLM_JJSON_MAX_DEPTH) {
        st->fail = "nested too deeply";
        return 0;
    }
    c = glm_jarena_alloc(st->a, kind == GLM_JINJA_LIST ? sizeof(glm_jinja_list)
                                                        : sizeof(glm_jinja_dict));
    if (c == NULL) {
        st->fail = "out of memory";
        return 0;
    }
    memset(c, 0, kind == GLM_JINJA_LIST ? sizeof(glm_jinja_list) : sizeof(glm_jinja_dict));
    memset(&v, 0, sizeof(v));
    v.kind = (uint8_t) kind;
    v.u.p = c;
    if (!glm_jjson_add(st, v)) {
        return 0;
    }
    st->stack[st->depth++] = v;
    return 1;
}

static int
glm_jjson_start_map(void *ctx)
{
    return glm_jjson_open(ctx, GLM_JINJA_DICT);
}

static int
glm_jjson_map_key(void *ctx, const unsigned char *s, size_t n)
{
    glm_jjson_state *st = ctx;
    char *p = glm_jarena_alloc(st->a, n + 1);

    if (p == NULL || n > UINT32_MAX) {
        st->fail = "out of memory";
        return 0;
    }
    memcpy(p, s, n);
    p[n] = '\0';
    st->key[st->depth - 1] = glm_jv_str(p, n);
    return 1;
}

static int
glm_jjson_close(void *ctx)
{
    glm_jjson_state *st = ctx;

    st->depth--;
    return 1;
}

static int
glm_jjson_start_array(void *ctx)
{
    return glm_jjson_open(ctx, GLM_JINJA_LIST);
}

static const yajl_callbacks glm_jjson_callbacks = {
    glm_jjson_null, glm_jjson_boolean, NULL, NULL, glm_jjson_number, glm_jjson_string,
    glm_jjson_start_map, glm_jjson_map_key, glm_jjson_close, glm_jjson_start_array,
    glm_jjson_close
};

int
glm_jv_parse_json(glm_jarena *a, const char *json, size_t n, glm_jinja_value *out,
                  glm_err *err)
{
    glm_jjson_state *st;
    yajl_handle h;
    yajl_status s;

    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return glm_errf(err, "out of memory parsing JSON");
    }
    st->a = a;
    h = yajl_alloc(&glm_jjson_callbacks, NULL, st);
    if (h == NULL) {
        free(st);
        return glm_errf(err, "out of memory parsing JSON");
    }
    s = yajl_parse(h, (const unsigned char *) json, n);
    if (s == yajl_status_ok) {
        s = yajl_complete_parse(h);
    }
    if (s != yajl_status_ok || !st->have_result) {
        if (st->fail != NULL) {
            glm_errf(err, "JSON: %s", st->fail);
        } else if (s != yajl_status_ok) {
            unsigned char *msg = yajl_get_error(h, 0, (const unsigned char *) json, n);
            size_t off = yajl_get_bytes_consumed(h);

            glm_errf(err, "invalid JSON at byte %zu: %s", off,
                     msg != NULL ? (const char *) msg : "parse error");
            if (err != NULL) {
                glm_jone_line(err->msg, sizeof(err->msg));
            }
            if (msg != NULL) {
                yajl_free_error(h, msg);
            }
        } else {
            glm_errf(err, "invalid JSON: empty document");
        }
        yajl_free(h);
        free(st);
        return -1;
    }
    *out = st->result;
    yajl_free(h);
    free(st);
    return 0;
}
