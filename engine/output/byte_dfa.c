/*
 * byte_dfa.c: see byte_dfa.h.  Trees -> Thompson NFA over bytes -> DFA by
 * subset construction -> live states only.
 */
#include "byte_dfa.h"

#include <stdlib.h>
#include <string.h>

#define CP_MAX 0x10ffffu

/* ---- the tree --------------------------------------------------------------- */

glm_rx *
glm_rx_new(int kind)
{
    glm_rx *rx = calloc(1, sizeof(*rx));

    if (rx != NULL) {
        rx->kind = kind;
        rx->max = -1;
    }
    return rx;
}

void
glm_rx_free(glm_rx *rx)
{
    int i;

    if (rx == NULL) {
        return;
    }
    for (i = 0; i < rx->n_kids; i++) {
        glm_rx_free(rx->kids[i]);
    }
    free(rx->kids);
    free(rx->ranges);
    free(rx);
}

int
glm_rx_add(glm_rx *parent, glm_rx *kid)
{
    if (kid == NULL) {
        return -1;
    }
    if (parent->n_kids == parent->cap_kids) {
        int cap = parent->cap_kids ? 2 * parent->cap_kids : 4;
        glm_rx **k = realloc(parent->kids, (size_t) cap * sizeof(*k));
        if (k == NULL) {
            glm_rx_free(kid);
            return -1;
        }
        parent->kids = k;
        parent->cap_kids = cap;
    }
    parent->kids[parent->n_kids++] = kid;
    return 0;
}

int
glm_rx_class_add(glm_rx *cls, uint32_t lo, uint32_t hi)
{
    uint32_t *r;

    if (lo > hi) {
        return 0;
    }
    r = realloc(cls->ranges, (size_t) (cls->n_ranges + 1) * 2 * sizeof(uint32_t));
    if (r == NULL) {
        return -1;
    }
    cls->ranges = r;
    r[2 * cls->n_ranges] = lo;
    r[2 * cls->n_ranges + 1] = hi > CP_MAX ? CP_MAX : hi;
    cls->n_ranges++;
    return 0;
}

static int
rx_range_cmp(const void *a, const void *b)
{
    const uint32_t *x = a, *y = b;

    return (x[0] > y[0]) - (x[0] < y[0]);
}

int
glm_rx_class_finish(glm_rx *cls, int negate)
{
    int i, n = 0;
    uint32_t *r = cls->ranges;

    if (cls->n_ranges > 0) {
        qsort(r, (size_t) cls->n_ranges, 2 * sizeof(uint32_t), rx_range_cmp);
        for (i = 1, n = 1; i < cls->n_ranges; i++) {
            if (r[2 * i] <= r[2 * (n - 1) + 1] + 1) {
                if (r[2 * i + 1] > r[2 * (n - 1) + 1]) {
                    r[2 * (n - 1) + 1] = r[2 * i + 1];
                }
            } else {
                r[2 * n] = r[2 * i];
                r[2 * n + 1] = r[2 * i + 1];
                n++;
            }
        }
    }
    cls->n_ranges = n;
    if (negate) {
        uint32_t *old = cls->ranges, next = 0;
        int old_n = n;
        cls->ranges = NULL;
        cls->n_ranges = 0;
        for (i = 0; i < old_n; i++) {
            if (old[2 * i] > next && glm_rx_class_add(cls, next, old[2 * i] - 1) != 0) {
                free(old);
                return -1;
            }
            next = old[2 * i + 1] + 1;
        }
        free(old);
        if (next <= CP_MAX && glm_rx_class_add(cls, next, CP_MAX) != 0) {
            return -1;
        }
    }
    return 0;
}

glm_rx *
glm_rx_class(const uint32_t *ranges, int n_pairs)
{
    glm_rx *rx = glm_rx_new(GLM_RX_CLASS);
    int i;

    if (rx == NULL) {
        return NULL;
    }
    for (i = 0; i < n_pairs; i++) {
        if (glm_rx_class_add(rx, ranges[2 * i], ranges[2 * i + 1]) != 0) {
            glm_rx_free(rx);
            return NULL;
        }
    }
    if (glm_rx_class_finish(rx, 0) != 0) {
        glm_rx_free(rx);
        return NULL;
    }
    return rx;
}

glm_rx *
glm_rx_char(uint32_t cp)
{
    uint32_t r[2] = { cp, cp };

    return glm_rx_class(r, 1);
}

/* one code point from valid UTF-8; -1 when invalid */
static int
rx_utf8_decode(const unsigned char *p, size_t n, uint32_t *cp)
{
    unsigned b = p[0];
    int len, i;
    uint32_t c, min;

    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    if (b >= 0xc2 && b < 0xe0) {
        len = 2, c = b & 0x1f, min = 0x80;
    } else if (b >= 0xe0 && b < 0xf0) {
        len = 3, c = b & 0x0f, min = 0x800;
    } else if (b >= 0xf0 && b < 0xf5) {
        len = 4, c = b & 0x07, min = 0x10000;
    } else {
        return -1;
    }
    if ((size_t) len > n) {
        return -1;
    }
    for (i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return -1;
        }
        c = (c << 6) | (p[i] & 0x3f);
    }
    if (c < min || c > CP_MAX || (c >= 0xd800 && c <= 0xdfff)) {
        return -1;
    }
    *cp = c;
    return len;
}

glm_rx *
glm_rx_string(const char *s, size_t n)
{
    glm_rx *cat = glm_rx_new(GLM_RX_CAT);
    size_t i = 0;

    while (cat != NULL && i < n) {
        uint32_t cp;
        int len = rx_utf8_decode((const unsigned char *) s + i, n - i, &cp);
        if (len < 0 || glm_rx_add(cat, glm_rx_char(cp)) != 0) {
            glm_rx_free(cat);
            return NULL;
        }
        i += (size_t) len;
    }
    return cat;
}

glm_rx *
glm_rx_repeat(glm_rx *kid, int min, int max)
{
    glm_rx *rx;

    if (kid == NULL) {
        return NULL;
    }
    rx = glm_rx_new(GLM_RX_REPEAT);
    if (rx == NULL || glm_rx_add(rx, kid) != 0) {
        if (rx == NULL) {
            glm_rx_free(kid);
        }
        glm_rx_free(rx);
        return NULL;
    }
    rx->min = min;
    rx->max = max;
    return rx;
}

glm_rx *
glm_rx_copy(const glm_rx *rx)
{
    glm_rx *c = glm_rx_new(rx->kind);
    int i;

    if (c == NULL) {
        return NULL;
    }
    c->min = rx->min;
    c->max = rx->max;
    if (rx->n_ranges > 0) {
        c->ranges = malloc((size_t) rx->n_ranges * 2 * sizeof(uint32_t));
        if (c->ranges == NULL) {
            glm_rx_free(c);
            return NULL;
        }
        memcpy(c->ranges, rx->ranges, (size_t) rx->n_ranges * 2 * sizeof(uint32_t));
        c->n_ranges = rx->n_ranges;
    }
    for (i = 0; i < rx->n_kids; i++) {
        if (glm_rx_add(c, glm_rx_copy(rx->kids[i])) != 0) {
            glm_rx_free(c);
            return NULL;
        }
    }
    return c;
}

/* ---- the NFA ---------------------------------------------------------------- */

/* A state either reads one byte in [lo, hi] and goes to out, or (eps) goes
 * to out and, when set, out2 without reading. */
typedef struct {
    int32_t  out, out2;
    uint8_t  lo, hi, eps;
} nfa_state;

typedef struct {
    nfa_state *s;
    int32_t    n, cap;
    glm_err   *err;
} nfa;

typedef struct {
    int32_t start, end;            /* end: an eps state with no way out yet */
} frag;

static int32_t
nfa_add(nfa *a, int eps, unsigned lo, unsigned hi, int32_t out)
{
    if (a->n == a->cap) {
        int32_t cap = a->cap ? 2 * a->cap : 256;
        nfa_state *s;
        if (a->n >= GLM_DFA_MAX_NFA) {
            glm_errf(a->err, "the pattern is too large (more than %d automaton states):"
                     " use smaller repetition counts", GLM_DFA_MAX_NFA);
            return -1;
        }
        s = realloc(a->s, (size_t) cap * sizeof(*s));
        if (s == NULL) {
            glm_errf(a->err, "out of memory compiling the pattern");
            return -1;
        }
        a->s = s;
        a->cap = cap;
    }
    a->s[a->n].out = out;
    a->s[a->n].out2 = -1;
    a->s[a->n].lo = (uint8_t) lo;
    a->s[a->n].hi = (uint8_t) hi;
    a->s[a->n].eps = (uint8_t) eps;
    return a->n++;
}

static int
nfa_eps(nfa *a, int32_t out)
{
    return nfa_add(a, 1, 0, 0, out);
}

/* one UTF-8 byte-range sequence [lo[i], hi[i]] for i < n, from `from` to `to` */
static int
nfa_seq(nfa *a, const uint8_t *lo, const uint8_t *hi, int n, int32_t from, int32_t to)
{
    int32_t next = to, i, s = -1;

    for (i = n - 1; i >= 0; i--) {
        s = nfa_add(a, 0, lo[i], hi[i], next);
        if (s < 0) {
            return -1;
        }
        next = s;
    }
    /* from is an eps state: chain a split so it reaches this sequence too */
    if (a->s[from].out < 0) {
        a->s[from].out = s;
    } else {
        int32_t split = nfa_eps(a, a->s[from].out);
        if (split < 0) {
            return -1;
        }
        a->s[split].out2 = s;
        a->s[from].out = split;
    }
    return 0;
}

static int
utf8_len(uint32_t cp)
{
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

static void
utf8_put(uint32_t cp, int n, uint8_t *b)
{
    switch (n) {
    case 1: b[0] = (uint8_t) cp; break;
    case 2: b[0] = (uint8_t) (0xc0 | (cp >> 6)); b[1] = (uint8_t) (0x80 | (cp & 0x3f)); break;
    case 3:
        b[0] = (uint8_t) (0xe0 | (cp >> 12));
        b[1] = (uint8_t) (0x80 | ((cp >> 6) & 0x3f));
        b[2] = (uint8_t) (0x80 | (cp & 0x3f));
        break;
    default:
        b[0] = (uint8_t) (0xf0 | (cp >> 18));
        b[1] = (uint8_t) (0x80 | ((cp >> 12) & 0x3f));
        b[2] = (uint8_t) (0x80 | ((cp >> 6) & 0x3f));
        b[3] = (uint8_t) (0x80 | (cp & 0x3f));
        break;
    }
}

/* The code points [lo, hi] as byte-range sequences: split until each piece
 * has one encoded length and, per continuation position, either a full
 * 0x80-0xbf span or a single shared prefix. */
static int
nfa_cp_range(nfa *a, uint32_t lo, uint32_t hi, int32_t from, int32_t to)
{
    static const uint32_t len_max[4] = { 0x7f, 0x7ff, 0xffff, CP_MAX };
    uint8_t bl[4], bh[4];
    int n, i;

    if (lo > hi) {
        return 0;
    }
    /* no surrogates */
    if (lo <= 0xdfff && hi >= 0xd800) {
        if (lo < 0xd800 && nfa_cp_range(a, lo, 0xd7ff, from, to) != 0) {
            return -1;
        }
        return hi > 0xdfff ? nfa_cp_range(a, 0xe000, hi, from, to) : 0;
    }
    for (i = 0; i < 3; i++) {
        if (lo <= len_max[i] && hi > len_max[i]) {
            if (nfa_cp_range(a, lo, len_max[i], from, to) != 0) {
                return -1;
            }
            return nfa_cp_range(a, len_max[i] + 1, hi, from, to);
        }
    }
    n = utf8_len(lo);
    for (i = 1; i < n; i++) {
        uint32_t m = (1u << (6 * i)) - 1;
        if ((lo & ~m) != (hi & ~m)) {
            if ((lo & m) != 0) {
                if (nfa_cp_range(a, lo, lo | m, from, to) != 0) {
                    return -1;
                }
                return nfa_cp_range(a, (lo | m) + 1, hi, from, to);
            }
            if ((hi & m) != m) {
                if (nfa_cp_range(a, lo, (hi & ~m) - 1, from, to) != 0) {
                    return -1;
                }
                return nfa_cp_range(a, hi & ~m, hi, from, to);
            }
        }
    }
    utf8_put(lo, n, bl);
    utf8_put(hi, n, bh);
    return nfa_seq(a, bl, bh, n, from, to);
}

static int nfa_build(nfa *a, const glm_rx *rx, frag *f, int depth);

static int
nfa_build(nfa *a, const glm_rx *rx, frag *f, int depth)
{
    frag k;
    int i;

    if (depth > 200) {
        glm_errf(a->err, "the pattern nests more than 200 levels deep");
        return -1;
    }
    f->end = nfa_eps(a, -1);
    f->start = nfa_eps(a, -1);
    if (f->end < 0 || f->start < 0) {
        return -1;
    }
    switch (rx->kind) {
    case GLM_RX_CLASS:
        for (i = 0; i < rx->n_ranges; i++) {
            if (nfa_cp_range(a, rx->ranges[2 * i], rx->ranges[2 * i + 1], f->start, f->end)
                != 0)
            {
                return -1;
            }
        }
        return 0;
    case GLM_RX_CAT: {
        int32_t last = f->start;
        for (i = 0; i < rx->n_kids; i++) {
            if (nfa_build(a, rx->kids[i], &k, depth + 1) != 0) {
                return -1;
            }
            a->s[last].out = k.start;
            last = k.end;
        }
        a->s[last].out = f->end;
        return 0;
    }
    case GLM_RX_ALT:
        for (i = 0; i < rx->n_kids; i++) {
            int32_t split;
            if (nfa_build(a, rx->kids[i], &k, depth + 1) != 0) {
                return -1;
            }
            a->s[k.end].out = f->end;
            if (a->s[f->start].out < 0) {
                a->s[f->start].out = k.start;
                continue;
            }
            split = nfa_eps(a, a->s[f->start].out);
            if (split < 0) {
                return -1;
            }
            a->s[split].out2 = k.start;
            a->s[f->start].out = split;
        }
        return 0;
    default: {
        /* REPEAT: min copies, then max-min optional ones nested, or a loop */
        int32_t last = f->start;
        int n = rx->max < 0 ? rx->min : rx->max;
        for (i = 0; i < n; i++) {
            if (nfa_build(a, rx->kids[0], &k, depth + 1) != 0) {
                return -1;
            }
            a->s[last].out = k.start;
            if (i >= rx->min) {
                a->s[last].out2 = f->end;     /* stop before this optional copy */
            }
            last = k.end;
        }
        if (rx->max < 0) {
            if (nfa_build(a, rx->kids[0], &k, depth + 1) != 0) {
                return -1;
            }
            a->s[last].out = k.start;
            a->s[last].out2 = f->end;
            a->s[k.end].out = last;
        } else {
            a->s[last].out = f->end;
        }
        return 0;
    }
    }
}

/* ---- subset construction ------------------------------------------------------ */

typedef struct {
    const nfa  *a;
    int32_t     accept;            /* the NFA's final state */
    int32_t    *stack;
    uint32_t   *mark;              /* closure stamps */
    uint32_t    stamp;
    int32_t    *set;               /* scratch: the set being built */
    int32_t     n_set;
    /* DFA states: their sets in pool, hashed */
    int32_t    *pool;
    size_t      n_pool, cap_pool;
    size_t     *set_off;
    int32_t    *set_len;
    int32_t     n_states, cap_states;
    int32_t    *tab;               /* hash: state index or -1 */
    uint32_t    cap_tab;
    uint64_t    work;              /* NFA states visited, against GLM_DFA_MAX_WORK */
} subset;

/* the states reached from the seeds without reading, keeping only those that
 * read a byte and the final one (others do not tell sets apart) */
static void
closure(subset *x, const int32_t *seeds, int32_t n_seeds)
{
    const nfa *a = x->a;
    int32_t sp = 0, i;

    x->stamp++;
    x->n_set = 0;
    for (i = 0; i < n_seeds; i++) {
        if (x->mark[seeds[i]] != x->stamp) {
            x->mark[seeds[i]] = x->stamp;
            x->stack[sp++] = seeds[i];
        }
    }
    while (sp > 0) {
        int32_t s = x->stack[--sp];
        const nfa_state *st = &a->s[s];

        x->work++;
        if (!st->eps || s == x->accept) {
            x->set[x->n_set++] = s;
            if (!st->eps) {
                continue;
            }
        }
        if (st->out >= 0 && x->mark[st->out] != x->stamp) {
            x->mark[st->out] = x->stamp;
            x->stack[sp++] = st->out;
        }
        if (st->out2 >= 0 && x->mark[st->out2] != x->stamp) {
            x->mark[st->out2] = x->stamp;
            x->stack[sp++] = st->out2;
        }
    }
}

static int
int32_cmp(const void *p, const void *q)
{
    int32_t x = *(const int32_t *) p, y = *(const int32_t *) q;

    return (x > y) - (x < y);
}

static uint32_t
set_hash(const int32_t *s, int32_t n)
{
    uint32_t h = 2166136261u;
    int32_t i;

    for (i = 0; i < n; i++) {
        h = (h ^ (uint32_t) s[i]) * 16777619u;
    }
    return h ^ (h >> 15);
}

static int
subset_grow_tab(subset *x)
{
    uint32_t cap = x->cap_tab ? 2 * x->cap_tab : 1024, j;
    int32_t *tab = malloc((size_t) cap * sizeof(int32_t)), i;

    if (tab == NULL) {
        return -1;
    }
    memset(tab, -1, (size_t) cap * sizeof(int32_t));
    for (i = 0; i < x->n_states; i++) {
        j = set_hash(x->pool + x->set_off[i], x->set_len[i]) & (cap - 1);
        while (tab[j] >= 0) {
            j = (j + 1) & (cap - 1);
        }
        tab[j] = i;
    }
    free(x->tab);
    x->tab = tab;
    x->cap_tab = cap;
    return 0;
}

/* the DFA state for x->set (sorted here), added when new; -1 on failure */
static int32_t
subset_intern(subset *x, glm_err *err)
{
    uint32_t j;
    int32_t i;

    qsort(x->set, (size_t) x->n_set, sizeof(int32_t), int32_cmp);
    if (x->cap_tab == 0 && subset_grow_tab(x) != 0) {
        goto oom;
    }
    for (j = set_hash(x->set, x->n_set) & (x->cap_tab - 1); (i = x->tab[j]) >= 0;
         j = (j + 1) & (x->cap_tab - 1))
    {
        if (x->set_len[i] == x->n_set
            && memcmp(x->pool + x->set_off[i], x->set, (size_t) x->n_set * sizeof(int32_t)) == 0)
        {
            return i;
        }
    }
    if (x->n_states >= GLM_DFA_MAX_STATES) {
        glm_errf(err, "the pattern is too large (more than %d automaton states): use smaller"
                 " repetition counts or fewer alternatives", GLM_DFA_MAX_STATES);
        return -1;
    }
    if (x->n_states == x->cap_states) {
        int32_t cap = x->cap_states ? 2 * x->cap_states : 64;
        size_t *off = realloc(x->set_off, (size_t) cap * sizeof(size_t));
        int32_t *len;
        if (off == NULL) {
            goto oom;
        }
        x->set_off = off;
        len = realloc(x->set_len, (size_t) cap * sizeof(int32_t));
        if (len == NULL) {
            goto oom;
        }
        x->set_len = len;
        x->cap_states = cap;
    }
    if (x->n_pool + (size_t) x->n_set > x->cap_pool) {
        size_t cap = x->cap_pool ? 2 * x->cap_pool : 4096;
        int32_t *pool;
        while (cap < x->n_pool + (size_t) x->n_set) {
            cap *= 2;
        }
        pool = realloc(x->pool, cap * sizeof(int32_t));
        if (pool == NULL) {
            goto oom;
        }
        x->pool = pool;
        x->cap_pool = cap;
    }
    memcpy(x->pool + x->n_pool, x->set, (size_t) x->n_set * sizeof(int32_t));
    x->set_off[x->n_states] = x->n_pool;
    x->set_len[x->n_states] = x->n_set;
    x->n_pool += (size_t) x->n_set;
    x->tab[j] = x->n_states++;
    if ((uint32_t) x->n_states * 2 > x->cap_tab && subset_grow_tab(x) != 0) {
        goto oom;
    }
    return x->n_states - 1;
oom:
    glm_errf(err, "out of memory compiling the pattern");
    return -1;
}

void
glm_dfa_free(glm_dfa *d)
{
    if (d != NULL) {
        free(d->trans);
        free(d->accept);
        free(d);
    }
}

/* keeps the states that can reach an accepting one, renumbered in order */
static int
dfa_prune(glm_dfa *d, glm_err *err)
{
    int32_t n = d->n_states, C = d->n_classes, s, c, k;
    uint8_t *live = calloc((size_t) n + 1, 1);
    int32_t *renum = malloc(((size_t) n + 1) * sizeof(int32_t));
    int changed = 1;

    if (live == NULL || renum == NULL) {
        free(live);
        free(renum);
        return glm_errf(err, "out of memory compiling the pattern");
    }
    for (s = 0; s < n; s++) {
        live[s] = d->accept[s];
    }
    /* a fixed point: n is at most GLM_DFA_MAX_STATES, the table is small */
    while (changed) {
        changed = 0;
        for (s = 0; s < n; s++) {
            if (live[s]) {
                continue;
            }
            for (c = 0; c < C; c++) {
                int32_t t = d->trans[(size_t) s * C + c];
                if (t >= 0 && live[t]) {
                    live[s] = 1;
                    changed = 1;
                    break;
                }
            }
        }
    }
    if (!live[0]) {
        free(live);
        free(renum);
        return glm_errf(err, "the pattern matches no string");
    }
    for (s = 0, k = 0; s < n; s++) {
        renum[s] = live[s] ? k++ : -1;
    }
    for (s = 0; s < n; s++) {
        if (!live[s]) {
            continue;
        }
        for (c = 0; c < C; c++) {
            int32_t t = d->trans[(size_t) s * C + c];
            d->trans[(size_t) renum[s] * C + c] = t >= 0 ? renum[t] : -1;
        }
        d->accept[renum[s]] = d->accept[s];
    }
    d->n_states = k;
    free(live);
    free(renum);
    return 0;
}

glm_dfa *
glm_dfa_compile(const glm_rx *rx, glm_err *err)
{
    nfa a;
    frag f;
    subset x;
    glm_dfa *d = NULL;
    uint8_t boundary[257], rep[256];
    int32_t i, s, c, C = 0, *seeds = NULL, cap_trans = 0;
    int ok = 0;

    memset(&a, 0, sizeof(a));
    memset(&x, 0, sizeof(x));
    a.err = err;
    if (nfa_build(&a, rx, &f, 0) != 0) {
        free(a.s);
        return NULL;
    }
    d = calloc(1, sizeof(*d));
    x.a = &a;
    x.accept = f.end;
    x.stack = malloc(((size_t) a.n + 1) * sizeof(int32_t));
    x.mark = calloc((size_t) a.n + 1, sizeof(uint32_t));
    x.set = malloc(((size_t) a.n + 1) * sizeof(int32_t));
    seeds = malloc(((size_t) a.n + 1) * sizeof(int32_t));
    if (d == NULL || x.stack == NULL || x.mark == NULL || x.set == NULL || seeds == NULL) {
        glm_errf(err, "out of memory compiling the pattern");
        goto out;
    }

    /* byte classes: bytes between the same range boundaries act alike */
    memset(boundary, 0, sizeof(boundary));
    boundary[0] = 1;
    for (i = 0; i < a.n; i++) {
        if (!a.s[i].eps) {
            boundary[a.s[i].lo] = 1;
            boundary[a.s[i].hi + 1] = 1;
        }
    }
    for (i = 0; i < 256; i++) {
        if (boundary[i]) {
            rep[C++] = (uint8_t) i;
        }
        d->cls[i] = (uint8_t) (C - 1);
    }
    d->n_classes = C;

    closure(&x, &f.start, 1);
    if (subset_intern(&x, err) != 0) {
        goto out;
    }
    for (s = 0; s < x.n_states; s++) {
        if (x.n_states * C > cap_trans) {
            int32_t cap = cap_trans ? 2 * cap_trans : 64 * C, *t;
            while (cap < x.n_states * C) {
                cap *= 2;
            }
            t = realloc(d->trans, (size_t) cap * sizeof(int32_t));
            if (t == NULL) {
                glm_errf(err, "out of memory compiling the pattern");
                goto out;
            }
            d->trans = t;
            cap_trans = cap;
        }
        for (c = 0; c < C; c++) {
            int32_t n_seeds = 0, k, t;
            const int32_t *set = x.pool + x.set_off[s];
            for (k = 0; k < x.set_len[s]; k++) {
                const nfa_state *st = &a.s[set[k]];
                if (!st->eps && rep[c] >= st->lo && rep[c] <= st->hi) {
                    seeds[n_seeds++] = st->out;
                }
            }
            if (n_seeds == 0) {
                d->trans[(size_t) s * C + c] = -1;
                continue;
            }
            closure(&x, seeds, n_seeds);
            if (x.work > GLM_DFA_MAX_WORK) {
                glm_errf(err, "the pattern is too complex to compile (its automaton would"
                         " take too long to build): use fewer or smaller repetitions");
                goto out;
            }
            t = subset_intern(&x, err);
            if (t < 0) {
                goto out;
            }
            d->trans[(size_t) s * C + c] = t;
        }
    }
    d->n_states = x.n_states;
    d->accept = calloc((size_t) x.n_states + 1, 1);
    if (d->accept == NULL) {
        glm_errf(err, "out of memory compiling the pattern");
        goto out;
    }
    for (s = 0; s < x.n_states; s++) {
        const int32_t *set = x.pool + x.set_off[s];
        for (i = 0; i < x.set_len[s]; i++) {
            d->accept[s] |= set[i] == f.end;
        }
    }
    if (dfa_prune(d, err) != 0) {
        goto out;
    }
    ok = 1;
out:
    free(a.s);
    free(x.stack);
    free(x.mark);
    free(x.set);
    free(x.pool);
    free(x.set_off);
    free(x.set_len);
    free(x.tab);
    free(seeds);
    if (!ok) {
        glm_dfa_free(d);
        return NULL;
    }
    return d;
}

int
glm_dfa_match(const glm_dfa *d, const char *p, size_t n)
{
    int32_t s = 0;
    size_t i;

    for (i = 0; i < n && s >= 0; i++) {
        s = glm_dfa_next(d, s, (unsigned char) p[i]);
    }
    return s >= 0 && d->accept[s];
}
