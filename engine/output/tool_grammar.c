/*
 * tool_grammar.c: see tool_grammar.h for the language and the cost bound.
 *
 * The grammar is a pushdown automaton over bytes (plus whole-token steps
 * for tags, EOS and box markers).  Its state is a fixed header and a stack
 * of JSON frames; both are plain bytes with no padding, so a state can be
 * copied with memcpy and hashed as a cache key.  Fields that do not matter
 * in a phase are kept at zero (tg_enter) so that equal situations give
 * equal keys and the mask cache hits.
 */
#include "tool_grammar.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TG_MAX_DEPTH      16       /* JSON nesting inside one value */
#define TG_XML_WS         4        /* whitespace bytes in a run between tags (GLM writes one "\n") */
#define TG_JSON_WS        16       /* whitespace bytes in a run inside JSON (pretty-printed to depth 3) */
#define TG_MAX_INT        16       /* digits of a JSON number's parts */
#define TG_MAX_FRAC       16
#define TG_MAX_EXP        3
#define TG_MAX_FREE_KEY   128      /* characters of a key without a schema */
#define TG_NONE16         0xffffu
#define TG_CACHE_BYTES    (8u << 20)    /* masks kept per request, then the cache starts over */

/* ---- tags ----------------------------------------------------------------- */

enum {
    TAG_THINK_OPEN, TAG_THINK_CLOSE, TAG_CALL_OPEN, TAG_CALL_CLOSE,
    TAG_KEY_OPEN, TAG_KEY_CLOSE, TAG_VAL_OPEN, TAG_VAL_CLOSE, TG_N_TAGS
};

static const char *const tg_tag_text[TG_N_TAGS] = {
    "<think>", "</think>", "<tool_call>", "</tool_call>",
    "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>",
};

#define TAGBIT(t) (1u << (t))

/* ---- the vocabulary ------------------------------------------------------- */

enum { TK_NONE, TK_BYTES, TK_TAG, TK_EOS, TK_BOX, TK_SPECIAL };
enum { CLS_TEXT, CLS_STR, CLS_JSTR, TG_N_CLS };

struct glm_tg_vocab {
    int32_t    n_tok, n_logits, n_words;
    uint8_t   *kind;               /* [n_tok] TK_* */
    int8_t    *tag;                /* [n_tok] tag index or -1 */
    uint32_t  *off, *len;          /* token bytes in blob */
    uint8_t   *blob;
    uint16_t  *nchars;             /* UTF-8 lead bytes */
    int32_t   *sorted;             /* TK_BYTES ids by their bytes */
    uint16_t  *lcp;                /* common prefix with the previous sorted token */
    int32_t    n_sorted;
    int32_t    first[257];         /* sorted tokens starting with byte b: [first[b], first[b+1]) */
    uint64_t  *safe[TG_N_CLS];     /* tokens that cannot change a free state's structure */
    int32_t   *unsafe[TG_N_CLS];   /* the other TK_BYTES tokens, walked one by one */
    int32_t    n_unsafe[TG_N_CLS];
    int32_t   *bychars[TG_N_CLS];  /* safe tokens by character count, ascending */
    int32_t    n_safe[TG_N_CLS];
    int32_t   *chars_at[TG_N_CLS]; /* [c]: first index in bychars with nchars >= c */
    int32_t    max_chars;
    int32_t   *whole;              /* non-byte tokens (tags, EOS, boxes, specials) */
    int32_t    n_whole;
    int32_t    tag_id[TG_N_TAGS];
    int32_t   *eos;
    int        n_eos;
    uint32_t   max_len;
};

/* ---- the state ------------------------------------------------------------ */

enum {
    P_START,         /* thinking on: [ws] before <think>, a call, or text */
    P_THINK,         /* inside <think> */
    P_POST_THINK,    /* [ws] after </think> (or the start with thinking off) */
    P_CONTENT,       /* free text (auto, none) */
    P_NAME,          /* the tool name after <tool_call> */
    P_ARGS,          /* [ws] then <arg_key> or </tool_call> */
    P_KEY_LIT,       /* a declared key */
    P_KEY_FREE,      /* a key of a schema without properties */
    P_KEY_END,       /* [ws] then <arg_value> */
    P_VRAW,          /* a string value: text */
    P_VRAW_LIT,      /* a string value: one of the enum values */
    P_VJSON,         /* a non-string value: JSON on the frame stack */
    P_AFTER_CALL,    /* [ws] then another call or EOS */
    P_STRUCT,        /* content under a structured-output constraint */
    P_END,           /* EOS seen */
    P_ERROR,         /* a token the grammar refused: EOS only */
};

enum { F_VAL = 1, F_OBJ, F_ARR, F_STR, F_NUM, F_LIT };
enum { O_FIRST, O_KEYLIT, O_KEYFREE, O_COLON, O_VALUE, O_NEXT, O_KEYSTART };
enum { A_FIRST, A_ITEM, A_NEXT, A_ITEMSTART };
enum { S_NORMAL, S_ESC, S_U1, S_U2, S_U2D, S_U3, S_U4 };
#define S_KEY 0x80
enum { N_START, N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

typedef struct {
    uint64_t  seen;                /* F_OBJ: declared keys written */
    uint32_t  count;               /* F_STR chars (bounded only), F_ARR items, F_NUM digits */
    uint16_t  node;                /* schema node id */
    uint16_t  lo, hi, pos;         /* F_LIT, F_OBJ key literal */
    uint16_t  key;                 /* F_OBJ: key of the open value; F_LIT: set id */
    uint8_t   kind, sub;
} tg_frame;

typedef struct {
    uint64_t  seen;                /* top-level keys written in this call */
    uint32_t  count;               /* characters of a bounded raw value / free key */
    uint16_t  tool, key, vnode;
    uint16_t  lo, hi, pos;         /* name, key or raw enum literal */
    uint16_t  ncalls;              /* saturates at 2 */
    uint8_t   phase, ws, tagpos, tagalive;
    uint8_t   u8need, u8lo, u8hi, depth;
    uint8_t   sdead;               /* P_START: the constraint refused the whitespace so far */
    uint8_t   sbody;               /* P_STRUCT: a byte other than whitespace was written */
    uint8_t   pad[4];
} tg_head;

_Static_assert(sizeof(tg_frame) == 24, "tg_frame must have no padding (hashed as bytes)");
_Static_assert(sizeof(tg_head) == 40, "tg_head must have no padding (hashed as bytes)");

typedef struct {
    tg_head   h;
    tg_frame  f[TG_MAX_DEPTH];
} tg_bstate;

/* ---- the per-request grammar ---------------------------------------------- */

typedef struct {
    int32_t     n;
    const char **s;
    uint32_t   *len;
    uint16_t   *val;
    char      **owned;
} tg_set;

enum { SET_BOOL, SET_NULL, SET_NAMES, SET_FIRST_FREE };
enum { MASK_ALLOW, MASK_DENY, MASK_BITS };

typedef struct {
    uint64_t   hash;
    uint8_t   *key;                /* NULL: empty slot */
    uint32_t   key_len;
    uint8_t    kind;
    int32_t    n;                  /* ids in the list */
    int32_t    n_allowed;
    void      *data;
} tg_entry;

struct glm_tg {
    const glm_tg_vocab *v;
    const glm_tools    *tools;
    const glm_so       *so;        /* the content's constraint; NULL: none */
    int          json_ws;          /* whitespace bytes in a run inside JSON */
    glm_tg_opts  o;
    int          calls;            /* calls can happen */
    int          free_text;        /* text and EOS before any call (auto, none) */
    uint8_t      tags_think, tags_content, tags_content_start, tags_key, tags_value;
    tg_set      *sets;
    int32_t      n_sets;
    int32_t     *set_enum_json, *set_enum_raw, *set_keys_json, *set_keys_raw;
    tg_entry    *tab;
    uint32_t     cap, used;
    size_t       bytes;
    uint64_t     hits, misses;
    uint64_t    *bits;             /* scratch: n_words */
    tg_bstate   *stack;            /* scratch: max_len + 1 states */
    tg_bstate    tmp;
    int32_t     *dstack;           /* scratch: automaton states, max_len + 1 */
    float       *fsave;            /* scratch for allow-lists */
    int32_t      fsave_cap;
};

struct glm_tg_state {
    glm_tg     *g;
    tg_bstate   s;
    int32_t     think_tokens;
};

/* ---- small helpers --------------------------------------------------------- */

static int
tg_is_ws(unsigned b)
{
    return b == ' ' || b == '\n' || b == '\t' || b == '\r';
}

static void
tg_copy(tg_bstate *dst, const tg_bstate *src)
{
    memcpy(dst, src, sizeof(tg_head) + (size_t) src->h.depth * sizeof(tg_frame));
}

static size_t
tg_key_len(const tg_bstate *s)
{
    return sizeof(tg_head) + (size_t) s->h.depth * sizeof(tg_frame);
}

/* a new phase: everything that only means something inside a phase is
 * cleared (tool, key, seen and ncalls are the caller's) */
static void
tg_enter(tg_head *h, int phase)
{
    h->phase = (uint8_t) phase;
    h->ws = h->tagpos = h->tagalive = 0;
    h->u8need = h->u8lo = h->u8hi = 0;
    h->sdead = h->sbody = 0;
    h->depth = 0;
    h->count = 0;
    h->lo = h->hi = h->pos = 0;
    h->vnode = 0;
}

static int
tg_ws(tg_head *h, int cap)
{
    return ++h->ws > cap ? -1 : 0;
}

/* Tracks the text since the last '<' against the tags in mask: completing
 * one is refused (the parser would act on it here).  Every tag starts with
 * '<' and has no other, so the match never needs to back up. */
static int
tg_tag_step(tg_head *h, unsigned b, unsigned mask)
{
    unsigned alive = 0, t;

    if (b == '<') {
        h->tagpos = mask ? 1 : 0;
        h->tagalive = (uint8_t) mask;
        return 0;
    }
    if (h->tagpos == 0) {
        return 0;
    }
    for (t = 0; t < TG_N_TAGS; t++) {
        if ((h->tagalive & TAGBIT(t)) && (unsigned char) tg_tag_text[t][h->tagpos] == b) {
            if (tg_tag_text[t][h->tagpos + 1] == '\0') {
                return -1;
            }
            alive |= TAGBIT(t);
        }
    }
    if (alive == 0) {
        h->tagpos = 0;
        h->tagalive = 0;
    } else {
        h->tagpos++;
        h->tagalive = (uint8_t) alive;
    }
    return 0;
}

/* UTF-8 well-formedness; *lead = 1 when b starts a character */
static int
tg_utf8(tg_head *h, unsigned b, int *lead)
{
    *lead = 0;
    if (h->u8need) {
        if (b < h->u8lo || b > h->u8hi) {
            return -1;
        }
        if (--h->u8need == 0) {
            h->u8lo = h->u8hi = 0;
        } else {
            h->u8lo = 0x80;
            h->u8hi = 0xbf;
        }
        return 0;
    }
    *lead = 1;
    if (b < 0x80) {
        return 0;
    }
    if (b < 0xc2 || b > 0xf4) {
        return -1;
    }
    if (b < 0xe0) {
        h->u8need = 1;
        h->u8lo = 0x80;
        h->u8hi = 0xbf;
    } else if (b < 0xf0) {
        h->u8need = 2;
        h->u8lo = b == 0xe0 ? 0xa0 : 0x80;
        h->u8hi = b == 0xed ? 0x9f : 0xbf;
    } else {
        h->u8need = 3;
        h->u8lo = b == 0xf0 ? 0x90 : 0x80;
        h->u8hi = b == 0xf4 ? 0x8f : 0xbf;
    }
    return 0;
}

/* Literal alternatives: entries [lo, hi) of the sorted set share their first
 * pos bytes; one more byte narrows the range.  excl: values (bits) that may
 * not be chosen (keys already written). */
static int
tg_lit_key(const tg_set *S, int32_t i, uint32_t pos)
{
    return S->len[i] > pos ? (int) (unsigned char) S->s[i][pos] : -1;
}

static int
tg_lit(const tg_set *S, uint16_t *lo, uint16_t *hi, uint16_t *pos, unsigned b, uint64_t excl)
{
    int32_t a = *lo, c = *hi, m, first, end;

    while (a < c) {
        m = a + (c - a) / 2;
        if (tg_lit_key(S, m, *pos) < (int) b) {
            a = m + 1;
        } else {
            c = m;
        }
    }
    first = a;
    c = *hi;
    while (a < c) {
        m = a + (c - a) / 2;
        if (tg_lit_key(S, m, *pos) <= (int) b) {
            a = m + 1;
        } else {
            c = m;
        }
    }
    end = a;
    if (first == end) {
        return -1;
    }
    if (excl) {
        int32_t i;
        for (i = first; i < end && (S->val[i] < 64 && (excl >> S->val[i]) & 1); i++) {
        }
        if (i == end) {
            return -1;
        }
    }
    *lo = (uint16_t) first;
    *hi = (uint16_t) end;
    (*pos)++;
    return 0;
}

static int
tg_lit_done(const tg_set *S, uint16_t lo, uint16_t hi, uint16_t pos, uint64_t excl)
{
    return lo < hi && S->len[lo] == pos
           && !(S->val[lo] < 64 && excl && ((excl >> S->val[lo]) & 1));
}

static const glm_schema *
tg_node(const glm_tg *g, uint16_t id)
{
    return g->tools->nodes[id];
}

static const glm_schema *
tg_params(const glm_tg *g, const tg_head *h)
{
    return g->tools->tools[h->tool].params;
}

static int
tg_has_props(const glm_schema *p)
{
    return p->n_alts == 0 && (p->types & GLM_JT_OBJ) && p->n_props > 0;
}

static uint64_t
tg_all_props(const glm_schema *p)
{
    return p->n_props >= 64 ? ~0ull : (1ull << p->n_props) - 1;
}

static int
tg_more_calls(const glm_tg *g, const tg_head *h)
{
    if (g->o.choice == GLM_TOOL_CHOICE_NAMED || !g->o.parallel) {
        return h->ncalls == 0;
    }
    return 1;
}

static int
tg_free_phase(int phase)
{
    return phase == P_START || phase == P_THINK || phase == P_POST_THINK || phase == P_CONTENT;
}

static int tg_struct_complete(const glm_tg *g, const tg_bstate *s);

static int
tg_eos_ok(const glm_tg *g, const tg_bstate *s)
{
    const tg_head *h = &s->h;

    if (g->so != NULL && (h->phase == P_START || h->phase == P_STRUCT)) {
        return !h->sdead && tg_struct_complete(g, s);
    }
    if (tg_free_phase(h->phase)) {
        return g->free_text;
    }
    return h->phase == P_AFTER_CALL || h->phase == P_END || h->phase == P_ERROR;
}

/* ---- JSON values ----------------------------------------------------------- */

#define TG_AGAIN 1

static unsigned
tg_kind_of_byte(unsigned b)
{
    switch (b) {
    case '{': return GLM_JT_OBJ;
    case '[': return GLM_JT_ARR;
    case '"': return GLM_JT_STR;
    case 't': case 'f': return GLM_JT_BOOL;
    case 'n': return GLM_JT_NULL;
    case '-': return GLM_JT_INT | GLM_JT_NUM;
    default:
        return b >= '0' && b <= '9' ? GLM_JT_INT | GLM_JT_NUM : 0;
    }
}

static int
tg_push(tg_bstate *s, int kind, uint16_t node)
{
    tg_frame *f;

    if (s->h.depth >= TG_MAX_DEPTH) {
        return -1;
    }
    f = &s->f[s->h.depth++];
    memset(f, 0, sizeof(*f));
    f->kind = (uint8_t) kind;
    f->node = node;
    return 0;
}

static int
tg_arr_bounded(const glm_schema *n)
{
    return n->min_items > 0 || n->max_items >= 0;
}

/* a frame's value is complete: tell its parent */
static void
tg_pop(const glm_tg *g, tg_bstate *s)
{
    tg_frame *p;

    memset(&s->f[--s->h.depth], 0, sizeof(tg_frame));
    s->h.ws = 0;
    s->h.tagpos = s->h.tagalive = 0;
    if (s->h.depth == 0) {
        return;
    }
    p = &s->f[s->h.depth - 1];
    if (p->kind == F_OBJ) {
        if (p->sub == O_KEYFREE) {
            p->sub = O_COLON;
            p->key = TG_NONE16;
        } else {
            if (p->key < 64) {
                p->seen |= 1ull << p->key;
            }
            p->sub = O_NEXT;
        }
    } else if (p->kind == F_ARR) {
        const glm_schema *an = g->tools->nodes[p->node];
        p->sub = A_NEXT;
        /* items are counted only where a bound needs it (cache keys) */
        if (tg_arr_bounded(an)
            && p->count < (uint32_t) (an->max_items >= 0 ? an->max_items : an->min_items))
        {
            p->count++;
        }
    }
}

static int
tg_str_bounded(const glm_schema *n)
{
    return n->min_len > 0 || n->max_len >= 0;
}

/* the value schema of an object's key (TG_NONE16: an undeclared key) */
static const glm_schema *
tg_obj_value(const glm_tg *g, const glm_schema *n, uint16_t key)
{
    if (key != TG_NONE16 && key < n->n_props) {
        return n->props[key];
    }
    return n->addl ? n->addl : g->tools->any;
}

/* F_VAL sees its first non-space byte: becomes the frame of that value */
static int
tg_val_start(const glm_tg *g, tg_bstate *s, tg_frame *f, unsigned b)
{
    const glm_schema *n = tg_node(g, f->node);
    unsigned kb = tg_kind_of_byte(b);
    int guard;

    for (guard = 0; n->n_alts > 0 && guard < 16; guard++) {
        const glm_schema *cand = NULL;
        int i, hits = 0;
        for (i = 0; i < n->n_alts; i++) {
            if (n->alts[i]->types & kb) {
                cand = n->alts[i];
                hits++;
            }
        }
        if (hits == 0) {
            return -1;
        }
        /* two branches of the same kind: that kind, unconstrained */
        n = hits == 1 ? cand : g->tools->any;
    }
    if (n->n_alts > 0 || !(n->types & kb)) {
        return -1;
    }
    f->node = n->id;
    if (n->n_enum > 0) {
        f->kind = F_LIT;
        f->key = (uint16_t) g->set_enum_json[n->id];
        f->lo = 0;
        f->hi = (uint16_t) g->sets[f->key].n;
        f->pos = 0;
        return TG_AGAIN;
    }
    switch (b) {
    case '{':
        /* at the depth limit a container can have no members: open it only
         * if it may stay empty, so no state is left without a way out */
        if (s->h.depth >= TG_MAX_DEPTH && n->n_props > 0 && n->required != 0) {
            return -1;
        }
        f->kind = F_OBJ;
        f->sub = O_FIRST;
        f->key = TG_NONE16;
        return 0;
    case '[':
        if (s->h.depth >= TG_MAX_DEPTH && n->min_items > 0) {
            return -1;
        }
        f->kind = F_ARR;
        f->sub = A_FIRST;
        return 0;
    case '"':
        f->kind = F_STR;
        f->sub = S_NORMAL;
        s->h.u8need = s->h.u8lo = s->h.u8hi = 0;
        s->h.tagpos = s->h.tagalive = 0;
        return 0;
    case 't':
    case 'f':
    case 'n':
        f->kind = F_LIT;
        f->key = b == 'n' ? SET_NULL : SET_BOOL;
        f->lo = 0;
        f->hi = (uint16_t) g->sets[f->key].n;
        f->pos = 0;
        return TG_AGAIN;
    default:
        f->kind = F_NUM;
        f->sub = N_START;
        return TG_AGAIN;
    }
}

/* a '"' that starts an object key */
static int
tg_obj_key_start(const glm_tg *g, tg_bstate *s, tg_frame *f)
{
    const glm_schema *n = tg_node(g, f->node);

    if (n->n_props > 0) {
        const tg_set *S = &g->sets[g->set_keys_json[n->id]];
        f->sub = O_KEYLIT;
        f->lo = 0;
        f->hi = (uint16_t) S->n;
        f->pos = 0;
        return tg_lit(S, &f->lo, &f->hi, &f->pos, '"', f->seen);
    }
    if (n->addl == NULL) {
        return -1;
    }
    f->sub = O_KEYFREE;
    if (tg_push(s, F_STR, 0) != 0) {
        return -1;
    }
    s->f[s->h.depth - 1].sub = S_KEY;
    s->h.u8need = s->h.u8lo = s->h.u8hi = 0;
    s->h.tagpos = s->h.tagalive = 0;
    return 0;
}

static int
tg_hex(unsigned b)
{
    return (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F');
}

/* one byte of a JSON string's inside */
static int
tg_str_byte(const glm_tg *g, tg_bstate *s, tg_frame *f, unsigned b)
{
    const glm_schema *n = tg_node(g, f->node);
    int key = (f->sub & S_KEY) != 0, sub = f->sub & ~S_KEY, lead, counted = 0;

    if (tg_tag_step(&s->h, b, s->h.phase == P_VJSON ? g->tags_value : g->tags_content) != 0) {
        return -1;
    }
    switch (sub) {
    case S_NORMAL:
        if (b == '"') {
            if (s->h.u8need || (!key && f->count < (uint32_t) n->min_len)) {
                return -1;
            }
            tg_pop(g, s);
            return 0;
        }
        if (b == '\\') {
            /* an escape is one character: counted where it starts, so one
             * is never begun that maxLength would not let finish */
            if (s->h.u8need) {
                return -1;
            }
            f->sub = (uint8_t) (S_ESC | (f->sub & S_KEY));
            counted = 1;
            break;
        }
        if (b < 0x20 || tg_utf8(&s->h, b, &lead) != 0) {
            return -1;
        }
        counted = lead;
        break;
    case S_ESC:
        if (b == 'u') {
            f->sub = (uint8_t) (S_U1 | (f->sub & S_KEY));
            return 0;
        }
        if (strchr("\"\\/bfnrt", (int) b) == NULL || b == 0) {
            return -1;
        }
        f->sub = (uint8_t) (S_NORMAL | (f->sub & S_KEY));
        return 0;
    case S_U1:
        if (!tg_hex(b)) {
            return -1;
        }
        /* \uD800-\uDFFF are surrogates: refused, a lone one is not text */
        f->sub = (uint8_t) ((b == 'd' || b == 'D' ? S_U2D : S_U2) | (f->sub & S_KEY));
        return 0;
    case S_U2D:
        if (!(b >= '0' && b <= '7')) {
            return -1;
        }
        f->sub = (uint8_t) (S_U3 | (f->sub & S_KEY));
        return 0;
    case S_U2:
    case S_U3:
        if (!tg_hex(b)) {
            return -1;
        }
        f->sub = (uint8_t) ((sub + (sub == S_U2 ? 2 : 1)) | (f->sub & S_KEY));
        return 0;
    case S_U4:
        if (!tg_hex(b)) {
            return -1;
        }
        f->sub = (uint8_t) (S_NORMAL | (f->sub & S_KEY));
        return 0;
    default:
        return -1;
    }
    if (counted && !key && tg_str_bounded(n)) {
        f->count++;
        if (n->max_len >= 0 && f->count > (uint32_t) n->max_len) {
            return -1;
        }
    }
    return 0;
}

static int
tg_num_byte(const glm_tg *g, tg_bstate *s, tg_frame *f, unsigned b)
{
    int digit = b >= '0' && b <= '9';
    int int_only = !(tg_node(g, f->node)->types & GLM_JT_NUM);

    switch (f->sub) {
    case N_START:
    case N_MINUS:
        if (b == '-' && f->sub == N_START) {
            f->sub = N_MINUS;
            return 0;
        }
        if (!digit) {
            return -1;
        }
        f->sub = b == '0' ? N_ZERO : N_INT;
        f->count = 1;
        return 0;
    case N_ZERO:
    case N_INT:
        if (digit && f->sub == N_INT) {
            return ++f->count > TG_MAX_INT ? -1 : 0;
        }
        if (!int_only && b == '.') {
            f->sub = N_DOT;
            f->count = 0;
            return 0;
        }
        if (!int_only && (b == 'e' || b == 'E')) {
            f->sub = N_E;
            f->count = 0;
            return 0;
        }
        break;
    case N_DOT:
        if (!digit) {
            return -1;
        }
        f->sub = N_FRAC;
        f->count = 1;
        return 0;
    case N_FRAC:
        if (digit) {
            return ++f->count > TG_MAX_FRAC ? -1 : 0;
        }
        if (b == 'e' || b == 'E') {
            f->sub = N_E;
            f->count = 0;
            return 0;
        }
        break;
    case N_E:
        if (b == '+' || b == '-') {
            f->sub = N_ESIGN;
            return 0;
        }
        /* fall through */
    case N_ESIGN:
        if (!digit) {
            return -1;
        }
        f->sub = N_EXP;
        f->count = 1;
        return 0;
    case N_EXP:
        if (digit) {
            return ++f->count > TG_MAX_EXP ? -1 : 0;
        }
        break;
    default:
        return -1;
    }
    /* the number ended before b: b belongs to the parent */
    tg_pop(g, s);
    return TG_AGAIN;
}

static int
tg_num_complete(const tg_frame *f)
{
    return f->sub == N_ZERO || f->sub == N_INT || f->sub == N_FRAC || f->sub == N_EXP;
}

static int
tg_json_byte(const glm_tg *g, tg_bstate *s, unsigned b)
{
    int r, guard;

    for (guard = 0; guard < 2 * TG_MAX_DEPTH + 4; guard++) {
        tg_frame *f;
        const glm_schema *n;

        if (s->h.depth == 0) {
            /* the value is complete: whitespace until </arg_value> */
            return tg_is_ws(b) ? tg_ws(&s->h, g->json_ws) : -1;
        }
        f = &s->f[s->h.depth - 1];
        n = tg_node(g, f->node);
        switch (f->kind) {
        case F_VAL:
            if (tg_is_ws(b)) {
                return tg_ws(&s->h, g->json_ws);
            }
            s->h.ws = 0;
            r = tg_val_start(g, s, f, b);
            if (r == TG_AGAIN) {
                continue;
            }
            return r;
        case F_STR:
            return tg_str_byte(g, s, f, b);
        case F_NUM:
            r = tg_num_byte(g, s, f, b);
            if (r == TG_AGAIN) {
                continue;
            }
            return r;
        case F_LIT: {
            const tg_set *S = &g->sets[f->key];
            if (tg_lit(S, &f->lo, &f->hi, &f->pos, b, 0) == 0) {
                if (S->len[f->lo] == f->pos && f->hi - f->lo == 1) {
                    tg_pop(g, s);
                }
                return 0;
            }
            if (tg_lit_done(S, f->lo, f->hi, f->pos, 0)) {
                tg_pop(g, s);
                continue;
            }
            return -1;
        }
        case F_OBJ:
            if (f->sub == O_KEYLIT) {
                const tg_set *S = &g->sets[g->set_keys_json[n->id]];
                if (tg_lit(S, &f->lo, &f->hi, &f->pos, b, f->seen) != 0) {
                    return -1;
                }
                if (tg_lit_done(S, f->lo, f->hi, f->pos, f->seen)) {
                    f->key = S->val[f->lo];
                    f->sub = O_COLON;
                    f->lo = f->hi = f->pos = 0;
                }
                return 0;
            }
            if (tg_is_ws(b)) {
                return tg_ws(&s->h, g->json_ws);
            }
            s->h.ws = 0;
            switch (f->sub) {
            case O_FIRST:
                if (b == '}') {
                    if (n->n_props > 0 && (n->required & ~f->seen) != 0) {
                        return -1;
                    }
                    tg_pop(g, s);
                    return 0;
                }
                /* fall through */
            case O_KEYSTART:
                if (b != '"' || s->h.depth >= TG_MAX_DEPTH) {
                    return -1;      /* its value could not be pushed */
                }
                return tg_obj_key_start(g, s, f);
            case O_COLON:
                if (b != ':') {
                    return -1;
                }
                f->sub = O_VALUE;
                return tg_push(s, F_VAL, tg_obj_value(g, n, f->key)->id);
            case O_NEXT:
                if (b == ',') {
                    if (s->h.depth >= TG_MAX_DEPTH
                        || (n->n_props > 0 ? (f->seen & tg_all_props(n)) == tg_all_props(n)
                                           : n->addl == NULL))
                    {
                        return -1;
                    }
                    f->sub = O_KEYSTART;
                    f->key = TG_NONE16;
                    return 0;
                }
                if (b == '}' && (n->n_props == 0 || (n->required & ~f->seen) == 0)) {
                    tg_pop(g, s);
                    return 0;
                }
                return -1;
            default:
                return -1;
            }
        case F_ARR:
            if (tg_is_ws(b)) {
                return tg_ws(&s->h, g->json_ws);
            }
            s->h.ws = 0;
            switch (f->sub) {
            case A_FIRST:
                if (b == ']') {
                    if (n->min_items > 0) {
                        return -1;
                    }
                    tg_pop(g, s);
                    return 0;
                }
                if (n->max_items == 0) {
                    return -1;
                }
                /* fall through */
            case A_ITEMSTART:
                f->sub = A_ITEM;
                if (tg_push(s, F_VAL, n->items->id) != 0) {
                    return -1;
                }
                continue;
            case A_NEXT:
                if (b == ',') {
                    if (s->h.depth >= TG_MAX_DEPTH
                        || (n->max_items >= 0 && f->count >= (uint32_t) n->max_items))
                    {
                        return -1;
                    }
                    f->sub = A_ITEMSTART;
                    return 0;
                }
                if (b == ']' && f->count >= (uint32_t) n->min_items) {
                    tg_pop(g, s);
                    return 0;
                }
                return -1;
            default:
                return -1;
            }
        default:
            return -1;
        }
    }
    return -1;
}

/* ---- the XML level --------------------------------------------------------- */

static const glm_schema *
tg_key_schema(const glm_tg *g, const tg_head *h)
{
    const glm_schema *p = tg_params(g, h);

    if (h->key != TG_NONE16 && tg_has_props(p) && h->key < p->n_props) {
        return p->props[h->key];
    }
    return (p->n_alts == 0 && p->addl) ? p->addl : g->tools->any;
}

/* the branch that gives a string value its constraints; any when unclear */
static const glm_schema *
tg_string_branch(const glm_tg *g, const glm_schema *n)
{
    int guard;

    for (guard = 0; n->n_alts > 0 && guard < 16; guard++) {
        const glm_schema *cand = NULL;
        int i, hits = 0;
        for (i = 0; i < n->n_alts; i++) {
            if (n->alts[i]->types & GLM_JT_STR) {
                cand = n->alts[i];
                hits++;
            }
        }
        n = hits == 1 ? cand : g->tools->any;
    }
    return n->n_alts > 0 ? g->tools->any : n;
}

static int
tg_start_call(const glm_tg *g, tg_bstate *s)
{
    tg_head *h = &s->h;

    if (!g->calls || !tg_more_calls(g, h)) {
        return -1;
    }
    tg_enter(h, P_NAME);
    h->tool = h->key = 0;
    h->seen = 0;
    h->hi = (uint16_t) g->sets[SET_NAMES].n;
    if (h->ncalls < 2) {
        h->ncalls++;
    }
    return 0;
}

static int
tg_name_done(const glm_tg *g, tg_head *h)
{
    const tg_set *S = &g->sets[SET_NAMES];

    if (!tg_lit_done(S, h->lo, h->hi, h->pos, 0)) {
        return -1;
    }
    h->tool = S->val[h->lo];
    return 0;
}

static int
tg_key_start(const glm_tg *g, tg_bstate *s)
{
    tg_head *h = &s->h;
    const glm_schema *p = tg_params(g, h);

    if (tg_has_props(p)) {
        if ((h->seen & tg_all_props(p)) == tg_all_props(p)) {
            return -1;
        }
        tg_enter(h, P_KEY_LIT);
        h->hi = (uint16_t) g->sets[g->set_keys_raw[p->id]].n;
        return 0;
    }
    if (p->n_alts == 0 && p->addl == NULL) {
        return -1;
    }
    tg_enter(h, P_KEY_FREE);
    return 0;
}

static int
tg_call_close_ok(const glm_tg *g, const tg_head *h)
{
    const glm_schema *p = tg_params(g, h);

    return !tg_has_props(p) || (p->required & ~h->seen) == 0;
}

static void
tg_finish_call(tg_head *h)
{
    tg_enter(h, P_AFTER_CALL);
    h->tool = h->key = 0;
    h->seen = 0;
}

static int
tg_value_start(const glm_tg *g, tg_bstate *s)
{
    tg_head *h = &s->h;
    const glm_schema *n = tg_key_schema(g, h);

    if (n->types & GLM_JT_STR) {
        const glm_schema *str = tg_string_branch(g, n);
        if (str->n_enum_raw > 0) {
            tg_enter(h, P_VRAW_LIT);
            h->vnode = str->id;
            h->hi = (uint16_t) g->sets[g->set_enum_raw[str->id]].n;
            return 0;
        }
        tg_enter(h, P_VRAW);
        h->vnode = str->id;
        return 0;
    }
    tg_enter(h, P_VJSON);
    return tg_push(s, F_VAL, n->id);
}

static int
tg_value_done(const glm_tg *g, tg_bstate *s)
{
    tg_head *h = &s->h;

    switch (h->phase) {
    case P_VRAW:
        if (h->u8need || h->count < (uint32_t) tg_node(g, h->vnode)->min_len) {
            return -1;
        }
        break;
    case P_VRAW_LIT:
        if (!tg_lit_done(&g->sets[g->set_enum_raw[h->vnode]], h->lo, h->hi, h->pos, 0)) {
            return -1;
        }
        break;
    case P_VJSON:
        if (h->depth == 1) {
            tg_frame *f = &s->f[0];
            if (f->kind == F_NUM && tg_num_complete(f)) {
                tg_pop(g, s);
            } else if (f->kind == F_LIT
                       && tg_lit_done(&g->sets[f->key], f->lo, f->hi, f->pos, 0))
            {
                tg_pop(g, s);
            }
        }
        if (h->depth != 0) {
            return -1;
        }
        break;
    default:
        return -1;
    }
    if (h->key != TG_NONE16 && h->key < 64) {
        h->seen |= 1ull << h->key;
    }
    tg_enter(h, P_ARGS);
    h->key = 0;
    return 0;
}

/* ---- the structured-output constraint ---------------------------------------- */

/* a phase that starts the content: with a constraint, P_POST_THINK is the
 * constraint's own start (no tag may follow "</think>" but a call), and
 * P_START also carries the constraint's state for text that opens without
 * <think> */
static int
tg_begin(const glm_tg *g, tg_bstate *s, int phase)
{
    if (g->so != NULL && phase == P_POST_THINK) {
        phase = P_STRUCT;
    }
    tg_enter(&s->h, phase);
    if (g->so == NULL || (phase != P_START && phase != P_STRUCT)) {
        return 0;
    }
    if (g->so->kind == GLM_SO_JSON) {
        return tg_push(s, F_VAL, (uint16_t) g->so->root);
    }
    s->h.count = 0;                     /* the automaton's start state */
    return 0;
}

static int
tg_struct_complete(const glm_tg *g, const tg_bstate *s)
{
    const tg_frame *f;

    if (g->so->kind == GLM_SO_DFA) {
        return g->so->dfa->accept[s->h.count];
    }
    if (s->h.depth == 0) {
        return 1;
    }
    if (s->h.depth > 1) {
        return 0;
    }
    f = &s->f[0];
    if (f->kind == F_NUM) {
        return tg_num_complete(f);
    }
    return f->kind == F_LIT && tg_lit_done(&g->sets[f->key], f->lo, f->hi, f->pos, 0);
}

/* one byte of constrained content */
static int
tg_struct_byte(const glm_tg *g, tg_bstate *s, unsigned b)
{
    tg_head *h = &s->h;
    int32_t next;

    if (!tg_is_ws(b)) {
        h->sbody = 1;
    }
    if (g->so->kind == GLM_SO_JSON) {
        return tg_json_byte(g, s, b);
    }
    /* text the output parser would read as a tag is refused here too */
    if (tg_tag_step(h, b, g->tags_content) != 0) {
        return -1;
    }
    next = glm_dfa_next(g->so->dfa, (int32_t) h->count, b);
    if (next < 0) {
        return -1;
    }
    h->count = (uint32_t) next;
    return 0;
}

/* The start of constrained content.  Whitespace there may still precede a
 * tag: "<think>" in P_START (GLM writes "\n<think>"), "<tool_call>" where
 * calls may take the content's place.  So up to TG_XML_WS bytes of it count
 * for the XML level and are fed to the constraint too, which may refuse
 * them (sdead: then only a tag may follow).  The first other byte starts
 * the content proper. */
static int
tg_struct_lead(const glm_tg *g, tg_bstate *s, unsigned b)
{
    tg_head *h = &s->h;
    int from_start = h->phase == P_START;

    if (tg_is_ws(b) && h->ws < TG_XML_WS && (from_start || g->calls)) {
        uint8_t ws = h->ws;
        if (h->sdead || tg_struct_byte(g, s, b) != 0) {
            h->sdead = 1;
        }
        h->sbody = 0;
        h->ws = (uint8_t) (ws + 1);
        return 0;
    }
    if (h->sdead) {
        return -1;
    }
    h->phase = P_STRUCT;
    if (g->so->kind == GLM_SO_DFA) {
        h->ws = 0;
        if (b == '<') {
            /* content opening with a spelled "<think>" would be read as
             * thinking: the tags watched from here on include it */
            int32_t next = glm_dfa_next(g->so->dfa, (int32_t) h->count, b);
            if (next < 0 || tg_tag_step(h, b, from_start ? g->tags_content_start
                                                         : g->tags_content) != 0)
            {
                return -1;
            }
            h->count = (uint32_t) next;
            h->sbody = 1;
            return 0;
        }
    }
    return tg_struct_byte(g, s, b);
}

/* one byte of a token's text */
static int
tg_byte(const glm_tg *g, tg_bstate *s, unsigned b)
{
    tg_head *h = &s->h;
    const tg_set *S;
    int lead;

    switch (h->phase) {
    case P_START:
    case P_POST_THINK:
        if (g->so != NULL) {
            return tg_struct_lead(g, s, b);
        }
        if (tg_is_ws(b)) {
            if (g->free_text && h->ws >= TG_XML_WS) {
                /* where text may follow, more whitespace is text: so every
                 * token without '<' is allowed here, as in P_CONTENT */
                tg_enter(h, P_CONTENT);
                return 0;
            }
            return tg_ws(h, TG_XML_WS);
        }
        if (!g->free_text) {
            return -1;
        }
        {
            int from_start = h->phase == P_START;
            tg_enter(h, P_CONTENT);
            /* text opening with a spelled "<think>" would be read as
             * thinking by the parser */
            return tg_tag_step(h, b, from_start ? g->tags_content_start : g->tags_content);
        }
    case P_THINK:
        return tg_tag_step(h, b, g->tags_think);
    case P_CONTENT:
        return tg_tag_step(h, b, g->tags_content);
    case P_NAME:
        S = &g->sets[SET_NAMES];
        if (tg_is_ws(b)) {
            if (tg_name_done(g, h) != 0) {
                return -1;
            }
            {
                uint16_t tool = h->tool;
                tg_enter(h, P_ARGS);
                h->tool = tool;
            }
            h->ws = 1;
            return 0;
        }
        return tg_lit(S, &h->lo, &h->hi, &h->pos, b, 0);
    case P_ARGS:
    case P_KEY_END:
    case P_AFTER_CALL:
        return tg_is_ws(b) ? tg_ws(h, TG_XML_WS) : -1;
    case P_KEY_LIT:
        S = &g->sets[g->set_keys_raw[tg_params(g, h)->id]];
        return tg_lit(S, &h->lo, &h->hi, &h->pos, b, h->seen);
    case P_KEY_FREE:
        if (h->count == 0 && tg_is_ws(b)) {
            return -1;
        }
        if (tg_tag_step(h, b, g->tags_key) != 0 || tg_utf8(h, b, &lead) != 0) {
            return -1;
        }
        if (lead && ++h->count > TG_MAX_FREE_KEY) {
            return -1;
        }
        return 0;
    case P_VRAW: {
        const glm_schema *n = tg_node(g, h->vnode);
        if (tg_tag_step(h, b, g->tags_value) != 0 || tg_utf8(h, b, &lead) != 0) {
            return -1;
        }
        if (lead && tg_str_bounded(n)) {
            h->count++;
            if (n->max_len >= 0 && h->count > (uint32_t) n->max_len) {
                return -1;
            }
        }
        return 0;
    }
    case P_VRAW_LIT:
        S = &g->sets[g->set_enum_raw[h->vnode]];
        return tg_lit(S, &h->lo, &h->hi, &h->pos, b, 0);
    case P_VJSON:
        return tg_json_byte(g, s, b);
    case P_STRUCT:
        return h->sbody ? tg_struct_byte(g, s, b) : tg_struct_lead(g, s, b);
    default:
        return -1;
    }
}

/* a whole token that is not plain bytes: a tag, EOS, a box marker */
static int
tg_token(const glm_tg *g, tg_bstate *s, int32_t id)
{
    const glm_tg_vocab *v = g->v;
    tg_head *h = &s->h;
    uint32_t i;

    switch (v->kind[id]) {
    case TK_EOS:
        if (!tg_eos_ok(g, s)) {
            return -1;
        }
        tg_enter(h, P_END);
        return 0;
    case TK_BOX:
        /* box markers are text to the parser: allowed where text is free */
        if (!tg_free_phase(h->phase)
            || (!g->free_text && h->phase != P_THINK))
        {
            return -1;
        }
        for (i = 0; i < v->len[id]; i++) {
            if (tg_byte(g, s, v->blob[v->off[id] + i]) != 0) {
                return -1;
            }
        }
        return 0;
    case TK_TAG:
        break;
    default:
        return -1;
    }
    switch (v->tag[id]) {
    case TAG_THINK_OPEN:
        if (h->phase != P_START || !g->o.thinking) {
            return -1;
        }
        tg_enter(h, P_THINK);
        return 0;
    case TAG_THINK_CLOSE:
        if (h->phase != P_THINK) {
            return -1;
        }
        return tg_begin(g, s, P_POST_THINK);
    case TAG_CALL_OPEN:
        /* under a constraint a call may open the content, after whitespace */
        if (!tg_free_phase(h->phase) && h->phase != P_AFTER_CALL
            && !(h->phase == P_STRUCT && !h->sbody))
        {
            return -1;
        }
        return tg_start_call(g, s);
    case TAG_CALL_CLOSE:
        if (h->phase == P_NAME && tg_name_done(g, h) != 0) {
            return -1;
        }
        if ((h->phase != P_NAME && h->phase != P_ARGS) || !tg_call_close_ok(g, h)) {
            return -1;
        }
        tg_finish_call(h);
        return 0;
    case TAG_KEY_OPEN:
        if (h->phase == P_NAME) {
            if (tg_name_done(g, h) != 0) {
                return -1;
            }
        } else if (h->phase != P_ARGS) {
            return -1;
        }
        return tg_key_start(g, s);
    case TAG_KEY_CLOSE:
        if (h->phase == P_KEY_LIT) {
            const tg_set *S = &g->sets[g->set_keys_raw[tg_params(g, h)->id]];
            uint16_t key;
            if (!tg_lit_done(S, h->lo, h->hi, h->pos, h->seen)) {
                return -1;
            }
            key = S->val[h->lo];
            tg_enter(h, P_KEY_END);
            h->key = key;
            return 0;
        }
        if (h->phase == P_KEY_FREE && h->count > 0 && h->u8need == 0) {
            tg_enter(h, P_KEY_END);
            h->key = TG_NONE16;
            return 0;
        }
        return -1;
    case TAG_VAL_OPEN:
        if (h->phase != P_KEY_END) {
            return -1;
        }
        return tg_value_start(g, s);
    case TAG_VAL_CLOSE:
        return tg_value_done(g, s);
    default:
        return -1;
    }
}

static int
tg_step_token(const glm_tg *g, tg_bstate *s, int32_t id)
{
    const glm_tg_vocab *v = g->v;
    uint32_t i;

    if (id < 0 || id >= v->n_tok) {
        return -1;
    }
    if (v->kind[id] != TK_BYTES) {
        return tg_token(g, s, id);
    }
    for (i = 0; i < v->len[id]; i++) {
        if (tg_byte(g, s, v->blob[v->off[id] + i]) != 0) {
            return -1;
        }
    }
    return 0;
}

/* ---- computing a mask ------------------------------------------------------ */

static void
tg_set_bit(uint64_t *bits, int32_t id)
{
    bits[id >> 6] |= 1ull << (id & 63);
}

static void
tg_clear_bit(uint64_t *bits, int32_t id)
{
    bits[id >> 6] &= ~(1ull << (id & 63));
}

static int
tg_walk(glm_tg *g, const tg_bstate *s, int32_t id)
{
    tg_copy(&g->tmp, s);
    return tg_step_token(g, &g->tmp, id);
}

/* first sorted index after i whose token does not start with p[0..m) */
static int32_t
tg_prefix_end(const glm_tg_vocab *v, int32_t i, const uint8_t *p, uint32_t m)
{
    int32_t lo = i + 1, hi = v->n_sorted;

    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2, id = v->sorted[mid];
        if (v->len[id] >= m && memcmp(v->blob + v->off[id], p, m) == 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* Every plain token, in byte order, each prefix stepped once; a dead prefix
 * skips all the tokens under it. */
static void
tg_dfs(glm_tg *g, const tg_bstate *start, uint64_t *bits)
{
    const glm_tg_vocab *v = g->v;
    tg_bstate *st = g->stack;
    int32_t i = 0, n = v->n_sorted;
    uint32_t have = 0, next_lcp = 0;
    int use_next = 0;

    tg_copy(&st[0], start);
    while (i < n) {
        int32_t id = v->sorted[i];
        const uint8_t *b = v->blob + v->off[id];
        uint32_t L = v->len[id], l = use_next ? next_lcp : v->lcp[i], d;

        use_next = 0;
        d = l < have ? l : have;
        for (; d < L; d++) {
            tg_copy(&st[d + 1], &st[d]);
            if (tg_byte(g, &st[d + 1], b[d]) != 0) {
                break;
            }
        }
        if (d < L) {
            /* a dead first byte (the common case) ends its whole range */
            int32_t j = d == 0 ? v->first[b[0] + 1] : tg_prefix_end(v, i, b, d + 1);
            have = d;
            if (j < n) {
                int32_t jd = v->sorted[j];
                const uint8_t *q = v->blob + v->off[jd];
                uint32_t k = 0, m = v->len[jd] < L ? v->len[jd] : L;
                while (k < m && q[k] == b[k]) {
                    k++;
                }
                next_lcp = k;
                use_next = 1;
            }
            i = j;
            continue;
        }
        tg_set_bit(bits, id);
        have = L;
        i++;
    }
}

/* Free-text states: most tokens cannot change anything but a counter, so
 * they come from a precomputed bitset and only the rest is walked. */
static int
tg_fast_class(const glm_tg *g, const tg_bstate *s, int *cls, int64_t *remaining)
{
    const tg_head *h = &s->h;
    const tg_frame *f;
    const glm_schema *n;

    *remaining = -1;
    switch (h->phase) {
    case P_START:
    case P_POST_THINK:
        if (!g->free_text) {
            return 0;
        }
        /* fall through */
    case P_THINK:
    case P_CONTENT:
        *cls = CLS_TEXT;
        return 1;
    case P_VRAW:
        if (h->u8need) {
            return 0;
        }
        n = tg_node(g, h->vnode);
        if (n->max_len >= 0) {
            *remaining = (int64_t) n->max_len - h->count;
        }
        *cls = CLS_STR;
        return 1;
    case P_KEY_FREE:
        if (h->u8need || h->count == 0) {
            return 0;
        }
        *remaining = (int64_t) TG_MAX_FREE_KEY - h->count;
        *cls = CLS_STR;
        return 1;
    case P_STRUCT:
        if (g->so->kind != GLM_SO_JSON) {
            return 0;
        }
        /* fall through */
    case P_VJSON:
        if (h->depth == 0 || h->u8need) {
            return 0;
        }
        f = &s->f[h->depth - 1];
        if (f->kind != F_STR || (f->sub & ~S_KEY) != S_NORMAL) {
            return 0;
        }
        n = tg_node(g, f->node);
        if (!(f->sub & S_KEY) && n->max_len >= 0) {
            *remaining = (int64_t) n->max_len - f->count;
        }
        *cls = CLS_JSTR;
        return 1;
    default:
        return 0;
    }
}

static void
tg_fast(glm_tg *g, const tg_bstate *s, int cls, int64_t remaining, uint64_t *bits)
{
    const glm_tg_vocab *v = g->v;
    uint8_t done[256];
    int32_t k, t;

    if (remaining >= 0 && remaining < v->max_chars) {
        /* a bounded string: the safe tokens short enough, from whichever
         * side of the character-count split is smaller */
        int32_t split = v->chars_at[cls][remaining + 1];
        if (split < v->n_safe[cls] - split) {
            memset(bits, 0, (size_t) v->n_words * sizeof(uint64_t));
            for (k = 0; k < split; k++) {
                tg_set_bit(bits, v->bychars[cls][k]);
            }
        } else {
            memcpy(bits, v->safe[cls], (size_t) v->n_words * sizeof(uint64_t));
            for (k = split; k < v->n_safe[cls]; k++) {
                tg_clear_bit(bits, v->bychars[cls][k]);
            }
        }
    } else {
        memcpy(bits, v->safe[cls], (size_t) v->n_words * sizeof(uint64_t));
    }
    if (s->h.tagpos > 0) {
        /* tokens that may continue the partial tag are walked */
        memset(done, 0, sizeof(done));
        for (t = 0; t < TG_N_TAGS; t++) {
            unsigned c;
            if (!(s->h.tagalive & TAGBIT(t))) {
                continue;
            }
            c = (unsigned char) tg_tag_text[t][s->h.tagpos];
            if (c == 0 || done[c]) {
                continue;
            }
            done[c] = 1;
            for (k = v->first[c]; k < v->first[c + 1]; k++) {
                int32_t id = v->sorted[k];
                tg_clear_bit(bits, id);
                if (tg_walk(g, s, id) == 0) {
                    tg_set_bit(bits, id);
                }
            }
        }
    }
    for (k = 0; k < v->n_unsafe[cls]; k++) {
        int32_t id = v->unsafe[cls][k];
        if (tg_walk(g, s, id) == 0) {
            tg_set_bit(bits, id);
        }
    }
}

/* Inside automaton-constrained content a token's fate is the automaton's
 * alone (bar tags, below): the same sorted walk as tg_dfs, carrying one
 * state number per byte instead of a grammar state. */
static void
tg_dfa_dfs(glm_tg *g, int32_t start, uint64_t *bits)
{
    const glm_tg_vocab *v = g->v;
    const glm_dfa *d = g->so->dfa;
    int32_t *st = g->dstack, i = 0, n = v->n_sorted;
    uint32_t have = 0;

    st[0] = start;
    while (i < n) {
        int32_t id = v->sorted[i], next;
        const uint8_t *b = v->blob + v->off[id];
        uint32_t L = v->len[id], p = v->lcp[i] < have ? v->lcp[i] : have;

        for (; p < L; p++) {
            if ((next = glm_dfa_next(d, st[p], b[p])) < 0) {
                break;
            }
            st[p + 1] = next;
        }
        if (p < L) {
            /* every token under the dead prefix b[0..p] is skipped */
            i = p == 0 ? v->first[b[0] + 1] : tg_prefix_end(v, i, b, p + 1);
            have = p;
            continue;
        }
        tg_set_bit(bits, id);
        have = L;
        i++;
    }
}

static void
tg_compute(glm_tg *g, const tg_bstate *s, uint64_t *bits)
{
    const glm_tg_vocab *v = g->v;
    int32_t k;
    int64_t remaining;
    int cls;

    if (g->dstack != NULL && s->h.phase == P_STRUCT && s->h.sbody && s->h.tagpos == 0) {
        memset(bits, 0, (size_t) v->n_words * sizeof(uint64_t));
        tg_dfa_dfs(g, (int32_t) s->h.count, bits);
        /* where calls may come, a token holding '<' may spell a tag: walked */
        for (k = 0; g->tags_content && k < v->n_unsafe[CLS_TEXT]; k++) {
            int32_t id = v->unsafe[CLS_TEXT][k];
            tg_clear_bit(bits, id);
            if (tg_walk(g, s, id) == 0) {
                tg_set_bit(bits, id);
            }
        }
    } else if (tg_fast_class(g, s, &cls, &remaining)) {
        tg_fast(g, s, cls, remaining, bits);
    } else {
        memset(bits, 0, (size_t) v->n_words * sizeof(uint64_t));
        tg_dfs(g, s, bits);
    }
    for (k = 0; k < v->n_whole; k++) {
        int32_t id = v->whole[k];
        tg_copy(&g->tmp, s);
        if (tg_token(g, &g->tmp, id) == 0) {
            tg_set_bit(bits, id);
        }
    }
}

/* ---- the mask cache -------------------------------------------------------- */

static uint64_t
tg_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    size_t i;

    for (i = 0; i < n; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

static void
tg_cache_clear(glm_tg *g)
{
    uint32_t i;

    for (i = 0; i < g->cap; i++) {
        free(g->tab[i].key);
        free(g->tab[i].data);
    }
    memset(g->tab, 0, (size_t) g->cap * sizeof(tg_entry));
    g->used = 0;
    g->bytes = 0;
}

static int
tg_cache_grow(glm_tg *g)
{
    uint32_t cap = g->cap ? 2 * g->cap : 256, i;
    tg_entry *tab = calloc(cap, sizeof(tg_entry));

    if (tab == NULL) {
        return -1;
    }
    for (i = 0; i < g->cap; i++) {
        tg_entry *e = &g->tab[i];
        uint32_t j;
        if (e->key == NULL) {
            continue;
        }
        for (j = (uint32_t) e->hash & (cap - 1); tab[j].key != NULL; j = (j + 1) & (cap - 1)) {
        }
        tab[j] = *e;
    }
    free(g->tab);
    g->tab = tab;
    g->cap = cap;
    return 0;
}

/* the entry for a state, computed on a miss; NULL when out of memory */
static tg_entry *
tg_lookup(glm_tg *g, const tg_bstate *s)
{
    const glm_tg_vocab *v = g->v;
    const uint8_t *key = (const uint8_t *) s;
    size_t klen = tg_key_len(s);
    uint64_t h = tg_hash(key, klen);
    uint32_t j, n_allowed = 0, i;
    tg_entry *e;
    uint64_t *bits = g->bits;
    int32_t k;

    if (g->cap > 0) {
        for (j = (uint32_t) h & (g->cap - 1); g->tab[j].key != NULL; j = (j + 1) & (g->cap - 1)) {
            e = &g->tab[j];
            if (e->hash == h && e->key_len == klen && memcmp(e->key, key, klen) == 0) {
                g->hits++;
                return e;
            }
        }
    }
    g->misses++;
    if (g->bytes > TG_CACHE_BYTES) {
        tg_cache_clear(g);
    }
    if ((g->used + 1) * 2 > g->cap && tg_cache_grow(g) != 0) {
        return NULL;
    }
    tg_compute(g, s, bits);
    for (i = 0; i < (uint32_t) v->n_words; i++) {
        n_allowed += (uint32_t) __builtin_popcountll(bits[i]);
    }
    for (j = (uint32_t) h & (g->cap - 1); g->tab[j].key != NULL; j = (j + 1) & (g->cap - 1)) {
    }
    e = &g->tab[j];
    memset(e, 0, sizeof(*e));
    e->n_allowed = (int32_t) n_allowed;
    if (n_allowed <= (uint32_t) v->n_logits / 16
        || (uint32_t) v->n_logits - n_allowed <= (uint32_t) v->n_logits / 16)
    {
        /* a list of the allowed ids, or of the refused ones: the shorter */
        int deny = n_allowed > (uint32_t) v->n_logits / 16;
        int32_t *ids = malloc(((deny ? (uint32_t) v->n_logits - n_allowed : n_allowed) + 1)
                              * sizeof(int32_t));
        if (ids == NULL) {
            return NULL;
        }
        for (k = 0, i = 0; i < (uint32_t) v->n_words; i++) {
            uint64_t w = deny ? ~bits[i] : bits[i];
            while (w) {
                int32_t id = (int32_t) (i * 64 + (uint32_t) __builtin_ctzll(w));
                w &= w - 1;
                if (id < v->n_logits) {
                    ids[k++] = id;
                }
            }
        }
        e->kind = deny ? MASK_DENY : MASK_ALLOW;
        e->n = k;
        e->data = ids;
        g->bytes += (size_t) k * sizeof(int32_t);
    } else {
        uint64_t *copy = malloc((size_t) v->n_words * sizeof(uint64_t));
        if (copy == NULL) {
            return NULL;
        }
        memcpy(copy, bits, (size_t) v->n_words * sizeof(uint64_t));
        e->kind = MASK_BITS;
        e->data = copy;
        g->bytes += (size_t) v->n_words * sizeof(uint64_t);
    }
    e->key = malloc(klen);
    if (e->key == NULL) {
        free(e->data);
        e->data = NULL;
        return NULL;
    }
    memcpy(e->key, key, klen);
    e->key_len = (uint32_t) klen;
    e->hash = h;
    g->used++;
    g->bytes += klen + sizeof(tg_entry);
    return e;
}

static void
tg_apply(glm_tg *g, const tg_entry *e, float *logits)
{
    const glm_tg_vocab *v = g->v;
    const int32_t *ids = e->data;
    int32_t i, n = v->n_logits;

    switch (e->kind) {
    case MASK_ALLOW:
        if (e->n > g->fsave_cap) {
            float *p = realloc(g->fsave, (size_t) e->n * sizeof(float));
            if (p == NULL) {
                return;
            }
            g->fsave = p;
            g->fsave_cap = e->n;
        }
        for (i = 0; i < e->n; i++) {
            g->fsave[i] = logits[ids[i]];
        }
        for (i = 0; i < n; i++) {
            logits[i] = -INFINITY;
        }
        for (i = 0; i < e->n; i++) {
            logits[ids[i]] = g->fsave[i];
        }
        break;
    case MASK_DENY:
        for (i = 0; i < e->n; i++) {
            logits[ids[i]] = -INFINITY;
        }
        break;
    default: {
        const uint64_t *bits = e->data;
        for (i = 0; i < v->n_words; i++) {
            uint64_t w = bits[i];
            int32_t base = i * 64, j, lim = n - base < 64 ? n - base : 64;
            if (w == ~0ull) {
                continue;
            }
            /* branch-free, so the compiler can vectorize it */
            for (j = 0; j < lim; j++) {
                logits[base + j] = ((w >> j) & 1) ? logits[base + j] : -INFINITY;
            }
        }
        break;
    }
    }
}

/* ---- public: masks and steps ---------------------------------------------- */

/* the forced cases that bypass the cache: a single id, or EOS only */
static int
tg_forced(const glm_tg_state *st, int32_t *only)
{
    const glm_tg *g = st->g;
    int ph = st->s.h.phase;

    if (ph == P_END || ph == P_ERROR) {
        *only = -1;
        return 1;
    }
    if (ph == P_THINK && g->o.think_budget >= 0 && st->think_tokens >= g->o.think_budget) {
        *only = g->v->tag_id[TAG_THINK_CLOSE];
        return 1;
    }
    return 0;
}

int
glm_tg_mask(glm_tg_state *st, float *logits)
{
    glm_tg *g = st->g;
    const glm_tg_vocab *v = g->v;
    tg_entry *e;
    int32_t only, i;

    if (tg_forced(st, &only)) {
        float keep[64];
        int n = only >= 0 ? 1 : (v->n_eos < 64 ? v->n_eos : 64);
        for (i = 0; i < n; i++) {
            keep[i] = logits[only >= 0 ? only : v->eos[i]];
        }
        for (i = 0; i < v->n_logits; i++) {
            logits[i] = -INFINITY;
        }
        for (i = 0; i < n; i++) {
            logits[only >= 0 ? only : v->eos[i]] = keep[i];
        }
        return n;
    }
    e = tg_lookup(g, &st->s);
    if (e == NULL) {
        return v->n_logits;      /* out of memory: unconstrained, never stuck */
    }
    tg_apply(g, e, logits);
    return e->n_allowed;
}

/* words &= the entry's allowed set, 32 ids a word */
static void
tg_apply_bits(glm_tg *g, const tg_entry *e, uint32_t *words)
{
    const glm_tg_vocab *v = g->v;
    const int32_t *ids = e->data;
    int32_t i, n = v->n_logits, W = (n + 31) / 32;

    switch (e->kind) {
    case MASK_ALLOW:
        /* keep what was set of the listed ids, clear the rest: the listed
         * bits are saved in fsave (as 0/1) while the words are cleared */
        if (e->n > g->fsave_cap) {
            float *p = realloc(g->fsave, (size_t) e->n * sizeof(float));
            if (p == NULL) {
                return;
            }
            g->fsave = p;
            g->fsave_cap = e->n;
        }
        for (i = 0; i < e->n; i++) {
            g->fsave[i] = (float) ((words[ids[i] >> 5] >> (ids[i] & 31)) & 1u);
        }
        memset(words, 0, (size_t) W * sizeof(uint32_t));
        for (i = 0; i < e->n; i++) {
            words[ids[i] >> 5] |= (uint32_t) (g->fsave[i] != 0.0f) << (ids[i] & 31);
        }
        break;
    case MASK_DENY:
        for (i = 0; i < e->n; i++) {
            words[ids[i] >> 5] &= ~(1u << (ids[i] & 31));
        }
        break;
    default: {
        const uint64_t *bits = e->data;
        for (i = 0; i < W; i++) {
            words[i] &= (uint32_t) (bits[i >> 1] >> (32 * (i & 1)));
        }
        break;
    }
    }
}

int
glm_tg_mask_bits(glm_tg_state *st, uint32_t *words)
{
    glm_tg *g = st->g;
    const glm_tg_vocab *v = g->v;
    tg_entry *e;
    int32_t only, i, W = (v->n_logits + 31) / 32;

    if (tg_forced(st, &only)) {
        uint32_t keep[64];
        int n = only >= 0 ? 1 : (v->n_eos < 64 ? v->n_eos : 64);
        for (i = 0; i < n; i++) {
            int32_t id = only >= 0 ? only : v->eos[i];
            keep[i] = (words[id >> 5] >> (id & 31)) & 1u;
        }
        memset(words, 0, (size_t) W * sizeof(uint32_t));
        for (i = 0; i < n; i++) {
            int32_t id = only >= 0 ? only : v->eos[i];
            words[id >> 5] |= keep[i] << (id & 31);
        }
        return n;
    }
    e = tg_lookup(g, &st->s);
    if (e == NULL) {
        return v->n_logits;
    }
    tg_apply_bits(g, e, words);
    return e->n_allowed;
}

void
glm_tg_allowed(glm_tg_state *st, uint64_t *bits)
{
    glm_tg *g = st->g;
    const glm_tg_vocab *v = g->v;
    int32_t only, i;

    memset(bits, 0, (size_t) v->n_words * sizeof(uint64_t));
    if (tg_forced(st, &only)) {
        if (only >= 0) {
            tg_set_bit(bits, only);
        } else {
            for (i = 0; i < v->n_eos; i++) {
                tg_set_bit(bits, v->eos[i]);
            }
        }
        return;
    }
    tg_compute(g, &st->s, bits);
}

int
glm_tg_advance(glm_tg_state *st, int32_t token)
{
    glm_tg *g = st->g;
    int32_t only;
    int was_think = st->s.h.phase == P_THINK;

    if (tg_forced(st, &only)) {
        int ok = only >= 0 ? token == only : 0;
        int i;
        for (i = 0; only < 0 && i < g->v->n_eos; i++) {
            ok |= g->v->eos[i] == token;
        }
        if (!ok) {
            tg_enter(&st->s.h, P_ERROR);
            return -1;
        }
        if (only < 0) {
            tg_enter(&st->s.h, P_END);
            return 0;
        }
    }
    tg_copy(&g->tmp, &st->s);
    if (tg_step_token(g, &g->tmp, token) != 0) {
        tg_enter(&st->s.h, P_ERROR);
        return -1;
    }
    tg_copy(&st->s, &g->tmp);
    if (was_think && st->s.h.phase == P_THINK) {
        st->think_tokens++;
    }
    return 0;
}

int
glm_tg_can_end(const glm_tg_state *st)
{
    return tg_eos_ok(st->g, &st->s);
}

void
glm_tg_stats(const glm_tg *g, uint64_t *hits, uint64_t *misses)
{
    *hits = g->hits;
    *misses = g->misses;
}

glm_tg_state *
glm_tg_state_new(glm_tg *g)
{
    glm_tg_state *st = calloc(1, sizeof(*st));

    if (st == NULL) {
        return NULL;
    }
    st->g = g;
    tg_begin(g, &st->s, g->o.thinking ? P_START : P_POST_THINK);
    return st;
}

glm_tg_state *
glm_tg_state_copy(const glm_tg_state *st)
{
    glm_tg_state *c = malloc(sizeof(*c));

    if (c != NULL) {
        memcpy(c, st, sizeof(*c));
    }
    return c;
}

void
glm_tg_state_free(glm_tg_state *st)
{
    free(st);
}

/* ---- building the grammar -------------------------------------------------- */

typedef struct {
    const char *s;
    uint32_t    len;
    uint16_t    val;
} tg_item;

/* byte strings in lexicographic order, a prefix before what it starts */
static int
tg_bytes_cmp(const void *x, uint32_t xn, const void *y, uint32_t yn)
{
    int c = memcmp(x, y, xn < yn ? xn : yn);

    if (c != 0) {
        return c;
    }
    return (xn > yn) - (xn < yn);
}

static int
tg_item_cmp(const void *a, const void *b)
{
    const tg_item *x = a, *y = b;

    return tg_bytes_cmp(x->s, x->len, y->s, y->len);
}

/* a set from items (sorted here); owned strings are freed with the set */
static int
tg_add_set(glm_tg *g, tg_item *items, int32_t n, char **owned)
{
    tg_set *sets = realloc(g->sets, (size_t) (g->n_sets + 1) * sizeof(tg_set));
    tg_set *S;
    int32_t i;

    if (sets == NULL) {
        return -1;
    }
    g->sets = sets;
    S = &g->sets[g->n_sets];
    memset(S, 0, sizeof(*S));
    S->owned = owned;
    qsort(items, (size_t) n, sizeof(tg_item), tg_item_cmp);
    S->s = calloc((size_t) n + 1, sizeof(char *));
    S->len = calloc((size_t) n + 1, sizeof(uint32_t));
    S->val = calloc((size_t) n + 1, sizeof(uint16_t));
    if (S->s == NULL || S->len == NULL || S->val == NULL) {
        free(S->s);
        free(S->len);
        free(S->val);
        return -1;
    }
    for (i = 0; i < n; i++) {
        S->s[i] = items[i].s;
        S->len[i] = items[i].len;
        S->val[i] = items[i].val;
    }
    S->n = n;
    return g->n_sets++;
}

static int
tg_add_strings(glm_tg *g, char **strs, int32_t n)
{
    tg_item *items = calloc((size_t) n + 1, sizeof(tg_item));
    int32_t i;
    int id;

    if (items == NULL) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        items[i].s = strs[i];
        items[i].len = (uint32_t) strlen(strs[i]);
        items[i].val = (uint16_t) i;
    }
    id = tg_add_set(g, items, n, NULL);
    free(items);
    return id;
}

static void
tg_free_set(tg_set *S)
{
    int32_t i;

    if (S->owned != NULL) {
        for (i = 0; i < S->n; i++) {
            free(S->owned[i]);
        }
        free(S->owned);
    }
    free(S->s);
    free(S->len);
    free(S->val);
}

void
glm_tg_free(glm_tg *g)
{
    int32_t i;

    if (g == NULL) {
        return;
    }
    if (g->tab != NULL) {
        tg_cache_clear(g);
    }
    free(g->tab);
    for (i = 0; i < g->n_sets; i++) {
        tg_free_set(&g->sets[i]);
    }
    free(g->sets);
    free(g->set_enum_json);
    free(g->set_enum_raw);
    free(g->set_keys_json);
    free(g->set_keys_raw);
    free(g->bits);
    free(g->stack);
    free(g->dstack);
    free(g->fsave);
    free(g);
}

glm_tg *
glm_tg_new(const glm_tg_vocab *v, const glm_tools *tools, const glm_tg_opts *o, glm_err *err)
{
    static const char *bools[2] = { "false", "true" };
    static const char *nulls[1] = { "null" };
    glm_tg *g;
    tg_item *items = NULL;
    int32_t i, k, n_nodes;

    if (o->choice != GLM_TOOL_CHOICE_NONE && (tools == NULL || tools->n == 0)) {
        glm_errf(err, "tool_choice needs tools");
        return NULL;
    }
    if (o->choice == GLM_TOOL_CHOICE_NAMED && (o->named < 0 || o->named >= tools->n)) {
        glm_errf(err, "tool_choice names no tool");
        return NULL;
    }
    if (tools != NULL && tools->n > 65535) {
        glm_errf(err, "more than 65535 tools");
        return NULL;
    }
    g = calloc(1, sizeof(*g));
    if (g == NULL) {
        glm_errf(err, "out of memory");
        return NULL;
    }
    g->v = v;
    g->tools = tools;
    g->o = *o;
    g->calls = o->choice != GLM_TOOL_CHOICE_NONE;
    g->free_text = o->choice == GLM_TOOL_CHOICE_NONE || o->choice == GLM_TOOL_CHOICE_AUTO;
    g->json_ws = TG_JSON_WS;
    if (o->so != NULL && o->so->kind != GLM_SO_NONE && g->free_text) {
        /* a forced call is the whole reply: a constraint applies otherwise */
        g->so = o->so;
        g->free_text = 0;
        g->json_ws = o->so->json_ws;
    }
    g->tags_think = (uint8_t) (TAGBIT(TAG_THINK_CLOSE) | (g->calls ? TAGBIT(TAG_CALL_OPEN) : 0));
    g->tags_content = (uint8_t) (g->calls ? TAGBIT(TAG_CALL_OPEN) : 0);
    g->tags_content_start = (uint8_t) (g->tags_content | (o->thinking ? TAGBIT(TAG_THINK_OPEN) : 0));
    g->tags_key = (uint8_t) (TAGBIT(TAG_KEY_CLOSE) | TAGBIT(TAG_CALL_CLOSE));
    g->tags_value = (uint8_t) (TAGBIT(TAG_VAL_CLOSE) | TAGBIT(TAG_CALL_CLOSE));

    if (g->so != NULL && g->so->kind == GLM_SO_DFA) {
        g->dstack = calloc((size_t) v->max_len + 2, sizeof(int32_t));
        if (g->dstack == NULL) {
            goto oom;
        }
    }
    g->bits = calloc((size_t) v->n_words, sizeof(uint64_t));
    g->stack = calloc((size_t) v->max_len + 2, sizeof(tg_bstate));
    if (g->bits == NULL || g->stack == NULL) {
        goto oom;
    }
    if (tg_add_strings(g, (char **) bools, 2) != SET_BOOL
        || tg_add_strings(g, (char **) nulls, 1) != SET_NULL)
    {
        goto oom;
    }
    /* names: every tool, or only the named one */
    n_nodes = tools ? tools->n_nodes : 0;
    items = calloc((size_t) (tools ? tools->n : 0) + 1, sizeof(tg_item));
    if (items == NULL) {
        goto oom;
    }
    for (i = 0, k = 0; tools != NULL && i < tools->n; i++) {
        if (o->choice == GLM_TOOL_CHOICE_NAMED && i != o->named) {
            continue;
        }
        items[k].s = tools->tools[i].name;
        items[k].len = (uint32_t) strlen(tools->tools[i].name);
        items[k++].val = (uint16_t) i;
    }
    if (tg_add_set(g, items, k, NULL) != SET_NAMES) {
        goto oom;
    }
    free(items);
    items = NULL;

    g->set_enum_json = malloc(((size_t) n_nodes + 1) * sizeof(int32_t));
    g->set_enum_raw = malloc(((size_t) n_nodes + 1) * sizeof(int32_t));
    g->set_keys_json = malloc(((size_t) n_nodes + 1) * sizeof(int32_t));
    g->set_keys_raw = malloc(((size_t) n_nodes + 1) * sizeof(int32_t));
    if (!g->set_enum_json || !g->set_enum_raw || !g->set_keys_json || !g->set_keys_raw) {
        goto oom;
    }
    for (i = 0; i < n_nodes; i++) {
        const glm_schema *n = tools->nodes[i];
        g->set_enum_json[i] = g->set_enum_raw[i] = g->set_keys_json[i] = g->set_keys_raw[i] = -1;
        if (n->n_enum > 0) {
            if ((g->set_enum_json[i] = tg_add_strings(g, n->enum_json, n->n_enum)) < 0
                || (g->set_enum_raw[i] = tg_add_strings(g, n->enum_raw, n->n_enum_raw)) < 0)
            {
                goto oom;
            }
        }
        if (n->n_props > 0) {
            char **quoted = calloc((size_t) n->n_props + 1, sizeof(char *));
            items = calloc((size_t) n->n_props + 1, sizeof(tg_item));
            if (quoted == NULL || items == NULL) {
                free(quoted);
                goto oom;
            }
            for (k = 0; k < n->n_props; k++) {
                glm_str q = { 0 };
                glm_json_strz(&q, n->prop_names[k]);
                quoted[k] = q.data;
                items[k].s = q.data;
                items[k].len = (uint32_t) q.len;
                items[k].val = (uint16_t) k;
            }
            if ((g->set_keys_json[i] = tg_add_set(g, items, n->n_props, quoted)) < 0) {
                for (k = 0; k < n->n_props; k++) {
                    free(quoted[k]);
                }
                free(quoted);
                goto oom;
            }
            for (k = 0; k < n->n_props; k++) {
                items[k].s = n->prop_names[k];
                items[k].len = (uint32_t) strlen(n->prop_names[k]);
                items[k].val = (uint16_t) k;
            }
            if ((g->set_keys_raw[i] = tg_add_set(g, items, n->n_props, NULL)) < 0) {
                goto oom;
            }
            free(items);
            items = NULL;
        }
    }
    return g;
oom:
    free(items);
    glm_tg_free(g);
    glm_errf(err, "out of memory building the tool grammar");
    return NULL;
}

/* ---- building the vocabulary ---------------------------------------------- */

typedef struct {
    const uint8_t *p;
    uint32_t       len;
    int32_t        id;
} tg_tok;

static int
tg_tok_cmp(const void *a, const void *b)
{
    const tg_tok *x = a, *y = b;

    return tg_bytes_cmp(x->p, x->len, y->p, y->len);
}

/* a whole token's bytes are complete UTF-8 */
static int
tg_utf8_complete(const uint8_t *p, uint32_t n)
{
    tg_head h;
    uint32_t i;
    int lead;

    memset(&h, 0, sizeof(h));
    for (i = 0; i < n; i++) {
        if (tg_utf8(&h, p[i], &lead) != 0) {
            return 0;
        }
    }
    return h.u8need == 0;
}

void
glm_tg_vocab_free(glm_tg_vocab *v)
{
    int c;

    if (v == NULL) {
        return;
    }
    free(v->kind);
    free(v->tag);
    free(v->off);
    free(v->len);
    free(v->blob);
    free(v->nchars);
    free(v->sorted);
    free(v->lcp);
    for (c = 0; c < TG_N_CLS; c++) {
        free(v->safe[c]);
        free(v->unsafe[c]);
        free(v->bychars[c]);
        free(v->chars_at[c]);
    }
    free(v->whole);
    free(v->eos);
    free(v);
}

/* kinds[] already says TK_NONE / TK_BYTES / TK_SPECIAL; tags, boxes and EOS
 * are marked here from their ids */
static glm_tg_vocab *
tg_vocab_build(int32_t n_tok, const uint8_t *const *bytes, const size_t *lens, uint8_t *kinds,
               const int32_t *tag_ids, const int32_t *box_ids, int32_t n_logits,
               const int32_t *eos, int n_eos, glm_err *err)
{
    glm_tg_vocab *v = calloc(1, sizeof(*v));
    tg_tok *toks = NULL;
    size_t total = 0, pos = 0;
    int32_t i, n = 0, c, nu[TG_N_CLS] = { 0 };

    if (v == NULL) {
        free(kinds);
        glm_errf(err, "out of memory");
        return NULL;
    }
    v->kind = kinds;
    if (n_logits < n_tok) {
        n_logits = n_tok;
    }
    v->n_tok = n_tok;
    v->n_logits = n_logits;
    v->n_words = (n_logits + 63) / 64;
    for (i = 0; i < TG_N_TAGS; i++) {
        if (tag_ids[i] < 0 || tag_ids[i] >= n_tok) {
            glm_errf(err, "the tokenizer has no %s token: GLM tool-call grammar unavailable",
                     tg_tag_text[i]);
            goto fail;
        }
    }
    v->tag = malloc((size_t) n_tok);
    v->off = calloc((size_t) n_tok, sizeof(uint32_t));
    v->len = calloc((size_t) n_tok, sizeof(uint32_t));
    v->nchars = calloc((size_t) n_tok, sizeof(uint16_t));
    v->eos = calloc((size_t) n_eos + 1, sizeof(int32_t));
    if (!v->tag || !v->off || !v->len || !v->nchars || !v->eos) {
        goto oom;
    }
    memset(v->tag, -1, (size_t) n_tok);
    for (i = 0; i < n_tok; i++) {
        total += bytes[i] ? lens[i] : 0;
    }
    v->blob = malloc(total + 1);
    if (v->blob == NULL) {
        goto oom;
    }
    for (i = 0; i < n_tok; i++) {
        if (bytes[i] == NULL || lens[i] == 0 || lens[i] > 65535) {
            kinds[i] = TK_NONE;
            continue;
        }
        v->off[i] = (uint32_t) pos;
        v->len[i] = (uint32_t) lens[i];
        memcpy(v->blob + pos, bytes[i], lens[i]);
        pos += lens[i];
        if (lens[i] > v->max_len) {
            v->max_len = (uint32_t) lens[i];
        }
    }
    for (i = 0; i < TG_N_TAGS; i++) {
        v->tag_id[i] = tag_ids[i];
        kinds[tag_ids[i]] = TK_TAG;
        v->tag[tag_ids[i]] = (int8_t) i;
    }
    for (i = 0; i < 2; i++) {
        if (box_ids[i] >= 0 && box_ids[i] < n_tok && kinds[box_ids[i]] != TK_NONE) {
            kinds[box_ids[i]] = TK_BOX;
        }
    }
    for (i = 0; i < n_eos; i++) {
        if (eos[i] >= 0 && eos[i] < n_tok) {
            v->eos[v->n_eos++] = eos[i];
            kinds[eos[i]] = TK_EOS;
        }
    }
    if (v->n_eos == 0) {
        glm_errf(err, "no end-of-turn token id inside the tokenizer's vocabulary");
        goto fail;
    }

    /* plain tokens, sorted by bytes, with their classes */
    toks = malloc((size_t) n_tok * sizeof(tg_tok) + 1);
    v->whole = malloc((size_t) n_tok * sizeof(int32_t) + 1);
    for (c = 0; c < TG_N_CLS; c++) {
        v->safe[c] = calloc((size_t) v->n_words, sizeof(uint64_t));
        v->unsafe[c] = malloc((size_t) n_tok * sizeof(int32_t) + 1);
        if (v->safe[c] == NULL || v->unsafe[c] == NULL) {
            goto oom;
        }
    }
    if (toks == NULL || v->whole == NULL) {
        goto oom;
    }
    for (i = 0; i < n_tok; i++) {
        const uint8_t *p = v->blob + v->off[i];
        uint32_t L = v->len[i], k;
        int lt = 0, jbad = 0, u8;
        if (kinds[i] == TK_NONE) {
            continue;
        }
        if (kinds[i] != TK_BYTES) {
            v->whole[v->n_whole++] = i;
            continue;
        }
        toks[n].p = p;
        toks[n].len = L;
        toks[n++].id = i;
        for (k = 0; k < L; k++) {
            lt |= p[k] == '<';
            jbad |= p[k] == '"' || p[k] == '\\' || p[k] < 0x20;
            v->nchars[i] += (p[k] & 0xc0) != 0x80;
        }
        u8 = tg_utf8_complete(p, L);
        if (!lt) {
            tg_set_bit(v->safe[CLS_TEXT], i);
        } else {
            v->unsafe[CLS_TEXT][nu[CLS_TEXT]++] = i;
        }
        /* string classes are used only between characters (no UTF-8
         * sequence open), where a token opening with a continuation byte
         * can never be allowed: it is neither safe nor worth walking */
        if (!lt && u8) {
            tg_set_bit(v->safe[CLS_STR], i);
        } else if ((p[0] & 0xc0) != 0x80) {
            v->unsafe[CLS_STR][nu[CLS_STR]++] = i;
        }
        if (!lt && u8 && !jbad) {
            tg_set_bit(v->safe[CLS_JSTR], i);
        } else if ((p[0] & 0xc0) != 0x80) {
            v->unsafe[CLS_JSTR][nu[CLS_JSTR]++] = i;
        }
    }
    for (c = 0; c < TG_N_CLS; c++) {
        v->n_unsafe[c] = nu[c];
    }
    /* safe tokens by character count (a counting sort), for maxLength */
    for (i = 0; i < n_tok; i++) {
        if (kinds[i] == TK_BYTES && v->nchars[i] > v->max_chars) {
            v->max_chars = v->nchars[i];
        }
    }
    for (c = 0; c < TG_N_CLS; c++) {
        int32_t ch, *at;
        v->bychars[c] = malloc((size_t) n_tok * sizeof(int32_t) + 1);
        v->chars_at[c] = at = calloc((size_t) v->max_chars + 3, sizeof(int32_t));
        if (v->bychars[c] == NULL || at == NULL) {
            goto oom;
        }
        for (i = 0; i < n_tok; i++) {
            if ((v->safe[c][i >> 6] >> (i & 63)) & 1) {
                at[v->nchars[i] + 1]++;
            }
        }
        for (ch = 1; ch <= v->max_chars + 2; ch++) {
            at[ch] += at[ch - 1];
        }
        v->n_safe[c] = at[v->max_chars + 1];
        for (i = 0; i < n_tok; i++) {
            if ((v->safe[c][i >> 6] >> (i & 63)) & 1) {
                v->bychars[c][at[v->nchars[i]]++] = i;
            }
        }
        /* the fill above advanced each start by its count: shift back */
        for (ch = v->max_chars + 1; ch > 0; ch--) {
            at[ch] = at[ch - 1];
        }
        at[0] = 0;
    }
    qsort(toks, (size_t) n, sizeof(tg_tok), tg_tok_cmp);
    v->n_sorted = n;
    v->sorted = malloc((size_t) n * sizeof(int32_t) + 1);
    v->lcp = calloc((size_t) n + 1, sizeof(uint16_t));
    if (v->sorted == NULL || v->lcp == NULL) {
        goto oom;
    }
    for (i = 0; i < n; i++) {
        v->sorted[i] = toks[i].id;
        if (i > 0) {
            uint32_t k = 0, m = toks[i].len < toks[i - 1].len ? toks[i].len : toks[i - 1].len;
            while (k < m && toks[i].p[k] == toks[i - 1].p[k]) {
                k++;
            }
            v->lcp[i] = (uint16_t) k;
        }
    }
    for (c = 0, i = 0; c < 256; c++) {
        v->first[c] = i;
        while (i < n && toks[i].p[0] == c) {
            i++;
        }
    }
    v->first[256] = n;
    free(toks);
    return v;
oom:
    glm_errf(err, "out of memory building the grammar's vocabulary tables");
fail:
    free(toks);
    glm_tg_vocab_free(v);
    return NULL;
}

glm_tg_vocab *
glm_tg_vocab_new(const glm_tokenizer *tok, int32_t n_logits, const int32_t *eos, int n_eos,
                 glm_err *err)
{
    int32_t n = glm_tokenizer_vocab_size(tok), i, tags[TG_N_TAGS], box[2];
    const uint8_t **bytes = calloc((size_t) n + 1, sizeof(uint8_t *));
    size_t *lens = calloc((size_t) n + 1, sizeof(size_t));
    uint8_t *kinds = calloc((size_t) n + 1, 1);
    glm_tg_vocab *v;

    if (bytes == NULL || lens == NULL || kinds == NULL) {
        free(bytes);
        free(lens);
        free(kinds);
        glm_errf(err, "out of memory");
        return NULL;
    }
    for (i = 0; i < n; i++) {
        bytes[i] = glm_tokenizer_token_bytes(tok, i, &lens[i]);
        kinds[i] = bytes[i] == NULL ? TK_NONE
                 : glm_tokenizer_is_special(tok, i) ? TK_SPECIAL : TK_BYTES;
    }
    for (i = 0; i < TG_N_TAGS; i++) {
        tags[i] = glm_tokenizer_token_id(tok, tg_tag_text[i]);
    }
    box[0] = glm_tokenizer_token_id(tok, "<|begin_of_box|>");
    box[1] = glm_tokenizer_token_id(tok, "<|end_of_box|>");
    v = tg_vocab_build(n, bytes, lens, kinds, tags, box, n_logits, eos, n_eos, err);
    free(bytes);
    free(lens);
    return v;
}

glm_tg_vocab *
glm_tg_vocab_from_bytes(int32_t n_tokens, const uint8_t *const *bytes, const size_t *lens,
                        const uint8_t *special, int32_t n_logits, const int32_t *eos, int n_eos,
                        glm_err *err)
{
    uint8_t *kinds = calloc((size_t) n_tokens + 1, 1);
    int32_t i, t, tags[TG_N_TAGS], box[2] = { -1, -1 };

    if (kinds == NULL) {
        glm_errf(err, "out of memory");
        return NULL;
    }
    for (t = 0; t < TG_N_TAGS; t++) {
        tags[t] = -1;
    }
    for (i = 0; i < n_tokens; i++) {
        kinds[i] = bytes[i] == NULL ? TK_NONE : special[i] ? TK_SPECIAL : TK_BYTES;
        if (!special[i] || bytes[i] == NULL) {
            continue;
        }
        for (t = 0; t < TG_N_TAGS; t++) {
            if (tags[t] < 0 && lens[i] == strlen(tg_tag_text[t])
                && memcmp(bytes[i], tg_tag_text[t], lens[i]) == 0)
            {
                tags[t] = i;
            }
        }
        if (lens[i] == 16 && memcmp(bytes[i], "<|begin_of_box|>", 16) == 0) {
            box[0] = i;
        }
        if (lens[i] == 14 && memcmp(bytes[i], "<|end_of_box|>", 14) == 0) {
            box[1] = i;
        }
    }
    return tg_vocab_build(n_tokens, bytes, lens, kinds, tags, box, n_logits, eos, n_eos, err);
}
