/*
 * tokenizer.c: Hugging Face byte-level BPE (tokenizer.json) in C.  See
 * tokenizer.h for the contract; this comment is about how.
 *
 * Load: yajl's tree of tokenizer.json is checked field by field and turned
 * into flat tables:
 *   - per id: the bytes it decodes to (ByteLevel decoder rule) and flags;
 *   - the vocab keyed by its tokenizer.json string (merges and token_id()
 *     look tokens up that way), and, for ignore_merges, by decoded bytes;
 *   - merges as an open-addressing table (left id, right id) -> (rank, id);
 *   - a byte trie per added-token set (normalized=false, and normalized=true
 *     keyed by the normalized content);
 *   - the normalizer (tok_normalizer.c), run on each stretch of text between
 *     the normalized=false added tokens; with a quick check that makes it
 *     one scan and no copy when it would change nothing (ASCII under NFC);
 *   - the pre-tokenizer regexes, rewritten from Oniguruma to PCRE2 syntax
 *     and JIT-compiled (tok_regex.c).
 * BPE works on raw bytes: the byte-level alphabet is a bijection, so mapping
 * every vocab key back to bytes once at load lets encode skip the byte ->
 * unicode step entirely.  A piece of n bytes starts as n single-byte tokens.
 *
 * Encode never allocates per piece: ids are written straight into the output
 * vector, BPE scratch lives in the caller's glm_tokenizer_ctx, and repeated
 * pieces come from the ctx's cache.  Short pieces are merged with a linear
 * scan (cheap for the usual 2..20 bytes); long ones (a 5000-space run) with
 * a heap and a linked list, as HF does, so they stay O(n log n).  Both give
 * HF's result: repeatedly merge the lowest-rank adjacent pair, leftmost
 * among equal ranks.
 *
 * Decode runs the bytes through a WHATWG-style UTF-8 decoder whose error
 * rule (one U+FFFD per maximal subpart of an ill-formed sequence) is the one
 * Rust's String::from_utf8_lossy uses; the streaming detokenizer is the same
 * decoder stopped between ids, so the two agree by construction.
 */
#include "tokenizer.h"
#include "tok_normalizer.h"
#include "tok_regex.h"
#include "unicode_norm.h"
#include "util/json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

/* Ids above this are taken as a corrupt file rather than a real vocab. */
#define TOK_MAX_ID          (1 << 24)
/* Split stages: the file's Split regexes plus ByteLevel's own, if used. */
#define TOK_MAX_STAGES      8
/* Pieces up to this long merge by linear scan, longer ones with a heap. */
#define TOK_SMALL_PIECE     48
/* The per-ctx piece cache: pieces of 2..TOK_CACHE_MAX_PIECE bytes (HF
 * caches words under 256 chars), emptied when full.  Slots are kept small
 * so the table stays in L2. */
#define TOK_CACHE_SLOTS     32768
#define TOK_CACHE_ENTRIES   16384
#define TOK_CACHE_KEY_BYTES (1 << 20)
#define TOK_CACHE_IDS       (1 << 18)
#define TOK_CACHE_MAX_PIECE 256

#define TOK_FLAG_PRESENT 1u
#define TOK_FLAG_SPECIAL 2u
#define TOK_FLAG_ADDED   4u

#define TOK_MERGE_EMPTY  UINT64_MAX

/* GPT-2's pattern, which ByteLevel applies itself when use_regex is true. */
static const char tok_gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

typedef struct {
    uint64_t key;       /* (left id << 32) | right id; TOK_MERGE_EMPTY if free */
    uint32_t rank;
    int32_t new_id;
} tok_merge;

/* A string -> id map whose keys live in its own arena. */
typedef struct {
    uint32_t *slots;    /* entry index + 1; 0 = empty */
    size_t mask;
    struct tok_strmap_entry {
        uint64_t hash;
        size_t off;
        uint32_t len;
        int32_t id;
    } *entries;
    size_t n, cap;
    char *arena;
    size_t arena_len, arena_cap;
} tok_strmap;

/* Byte trie of one added-token set, for leftmost-longest matching. */
typedef struct {
    size_t n_tokens;
    int32_t *term;      /* per node: id of the token ending there, or -1 */
    size_t n_nodes;
    uint64_t *edge_key; /* ((node << 8) | byte) + 1; 0 = empty */
    uint32_t *edge_child;
    size_t edge_mask;
    uint8_t first[32];  /* bitmap of the tokens' first bytes */
} tok_trie;

struct glm_tokenizer {
    int32_t n_ids;              /* max id + 1 */
    uint32_t *tok_off;          /* per id: its bytes in tok_bytes */
    uint32_t *tok_len;
    uint8_t *tok_flags;
    uint8_t *tok_bytes;
    size_t tok_bytes_len, tok_bytes_cap;

    int32_t byte_id[256];       /* the single-byte tokens */
    /* what each byte starts BPE as: its token, or with byte_fallback the
     * <0xXX> tokens standing in for a missing one (0 to 2 of them) */
    int32_t byte_ids[256][2];
    uint8_t byte_n[256];
    int byte_exact;             /* every byte is its own one token */
    int ignore_merges;
    int byte_fallback;

    glm_tok_normalizer *normalizer;     /* NULL: none */

    tok_merge *merges;
    size_t merge_mask;

    tok_strmap vocab;           /* tokenizer.json vocab key -> id */
    tok_strmap vocab_bytes;     /* decoded bytes -> id (ignore_merges only) */
    tok_strmap added;           /* added token content -> id */

    tok_trie trie_raw;          /* added tokens with normalized=false */
    tok_trie trie_norm;         /* added tokens with normalized=true */

    int n_stages;
    glm_tok_regex stage[TOK_MAX_STAGES];
    uint32_t ovec_pairs;        /* match data size for every regex here */

    int16_t byte_of_cp[324];    /* byte-level alphabet: code point -> byte */
    uint16_t cp_of_byte[256];
};

typedef struct {
    int32_t id;
    int32_t prev, next;
    uint32_t len;               /* 0 once merged into its left neighbour */
} tok_sym;

/* A candidate merge in the heap: (rank << 32) | position of its left
 * symbol, so one integer compare orders by rank, then leftmost. */
typedef uint64_t tok_heap_item;

typedef struct {
    uint32_t hash;
    uint32_t key_off;
    uint32_t ids_off;
    uint16_t key_len;           /* 0 = empty slot (cached pieces have >= 2) */
    uint16_t n_ids;
} tok_cache_slot;

struct glm_tokenizer_ctx {
    const glm_tokenizer *tok;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;

    tok_sym *sym;
    tok_heap_item *heap;
    size_t scratch_cap;

    glm_tok_norm_scratch norm;

    tok_cache_slot *cache;      /* NULL: no cache */
    size_t cache_entries;
    uint8_t *cache_keys;
    size_t cache_keys_len;
    int32_t *cache_ids;
    size_t cache_ids_len;
};


static int added_patterns(glm_tokenizer *tok, yajl_val added, glm_tokenizer_buf *pat,
                          size_t *total_raw, size_t *total_norm, glm_err *err);
static int add_added(glm_tokenizer *tok, yajl_val added, const glm_tokenizer_buf *pat,
                     glm_err *err);
static int next_level(const glm_tokenizer *tok, glm_tokenizer_ctx *ctx, int level,
                      const uint8_t *s, size_t n, glm_tokenizer_ids *out, glm_err *err);


/* ------------------------------------------------------------------------ */
/* growable vectors */

static int
ids_reserve(glm_tokenizer_ids *v, size_t extra, glm_err *err)
{
    size_t cap;
    int32_t *p;

    if (v->cap - v->len >= extra) {
        return 0;
    }
    cap = v->cap ? v->cap : 64;
    while (cap - v->len < extra) {
        cap *= 2;
    }
    p = realloc(v->ids, cap * sizeof(*p));
    if (p == NULL) {
        return glm_errf(err, "out of memory growing a token vector to %zu ids", cap);
    }
    v->ids = p;
    v->cap = cap;
    return 0;
}

int
glm_tokenizer_ids_push(glm_tokenizer_ids *v, int32_t id, glm_err *err)
{
    if (v->len == v->cap && ids_reserve(v, 1, err) != 0) {
        return -1;
    }
    v->ids[v->len++] = id;
    return 0;
}

void
glm_tokenizer_ids_free(glm_tokenizer_ids *v)
{
    free(v->ids);
    v->ids = NULL;
    v->len = v->cap = 0;
}

int
glm_tokenizer_buf_reserve(glm_tokenizer_buf *b, size_t extra, glm_err *err)
{
    size_t cap;
    char *p;

    if (b->cap - b->len >= extra) {
        return 0;
    }
    cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) {
        cap *= 2;
    }
    p = realloc(b->data, cap);
    if (p == NULL) {
        return glm_errf(err, "out of memory growing a text buffer to %zu bytes", cap);
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int
glm_tokenizer_buf_append(glm_tokenizer_buf *b, const void *data, size_t n,
                         glm_err *err)
{
    if (glm_tokenizer_buf_reserve(b, n, err) != 0) {
        return -1;
    }
    if (n > 0) {
        memcpy(b->data + b->len, data, n);
    }
    b->len += n;
    return 0;
}

void
glm_tokenizer_buf_free(glm_tokenizer_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}


/* ------------------------------------------------------------------------ */
/* hashing, UTF-8 */

static inline uint64_t
tok_mix(uint64_t h)
{
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}

static uint64_t
tok_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t) n * 0xff51afd7ed558ccdull);
    uint64_t w;

    while (n >= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    if (n > 0) {
        w = 0;
        memcpy(&w, p, n);
        h = (h ^ w) * 0x94d049bb133111ebull;
    }
    return tok_mix(h);
}

/* Length of the UTF-8 sequence starting with lead byte c (1 for junk). */
static inline size_t
utf8_len(uint8_t c)
{
    return c < 0xc0 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

/* Decodes one code point of valid UTF-8 at s (n > 0 bytes left). */
static uint32_t
utf8_decode(const uint8_t *s, size_t n, size_t *len)
{
    size_t k = utf8_len(s[0]);
    uint32_t cp;
    size_t i;

    if (k > n) {
        k = n;
    }
    *len = k;
    if (k == 1) {
        return s[0];
    }
    cp = s[0] & (0x7f >> k);
    for (i = 1; i < k; i++) {
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    return cp;
}


/* ------------------------------------------------------------------------ */
/* string -> id map */

static int
strmap_init(tok_strmap *m, size_t expect, glm_err *err)
{
    size_t slots = 16;

    while (slots < expect * 2) {
        slots *= 2;
    }
    memset(m, 0, sizeof(*m));
    m->slots = calloc(slots, sizeof(*m->slots));
    m->entries = malloc((expect ? expect : 1) * sizeof(*m->entries));
    if (m->slots == NULL || m->entries == NULL) {
        return glm_errf(err, "out of memory for a %zu-entry token map", expect);
    }
    m->mask = slots - 1;
    m->cap = expect ? expect : 1;
    return 0;
}

static void
strmap_free(tok_strmap *m)
{
    free(m->slots);
    free(m->entries);
    free(m->arena);
    memset(m, 0, sizeof(*m));
}

static int32_t
strmap_find_h(const tok_strmap *m, const void *key, size_t len, uint64_t h)
{
    size_t i;
    uint32_t e;
    const struct tok_strmap_entry *en;

    if (m->slots == NULL) {
        return -1;
    }
    for (i = h & m->mask; (e = m->slots[i]) != 0; i = (i + 1) & m->mask) {
        en = &m->entries[e - 1];
        if (en->hash == h && en->len == len
            && memcmp(m->arena + en->off, key, len) == 0)
        {
            return en->id;
        }
    }
    return -1;
}

static int32_t
strmap_find(const tok_strmap *m, const void *key, size_t len)
{
    return strmap_find_h(m, key, len, tok_hash(key, len));
}

/* Adds key -> id.  *old gets the id already there (then nothing is added)
 * or -1. */
static int
strmap_add(tok_strmap *m, const void *key, size_t len, int32_t id, int32_t *old,
           glm_err *err)
{
    uint64_t h = tok_hash(key, len);
    size_t i, cap;
    char *p;
    struct tok_strmap_entry *en;

    *old = strmap_find_h(m, key, len, h);
    if (*old >= 0) {
        return 0;
    }
    if (m->n == m->cap || (m->n + 1) * 2 > m->mask + 1) {
        /* callers size the map up front; growing is not needed */
        return glm_errf(err, "token map overflow (%zu entries)", m->n);
    }
    if (m->arena_cap - m->arena_len < len) {
        cap = m->arena_cap ? m->arena_cap : 4096;
        while (cap - m->arena_len < len) {
            cap *= 2;
        }
        p = realloc(m->arena, cap);
        if (p == NULL) {
            return glm_errf(err, "out of memory for token strings (%zu bytes)", cap);
        }
        m->arena = p;
        m->arena_cap = cap;
    }
    if (len > 0) {
        memcpy(m->arena + m->arena_len, key, len);
    }
    en = &m->entries[m->n];
    en->hash = h;
    en->off = m->arena_len;
    en->len = (uint32_t) len;
    en->id = id;
    m->arena_len += len;
    m->n++;
    for (i = h & m->mask; m->slots[i] != 0; i = (i + 1) & m->mask) {
    }
    m->slots[i] = (uint32_t) m->n;
    return 0;
}


/* ------------------------------------------------------------------------ */
/* added-token tries */

static int
trie_init(tok_trie *t, size_t total_bytes, glm_err *err)
{
    size_t slots = 16;

    while (slots < total_bytes * 2 + 2) {
        slots *= 2;
    }
    memset(t, 0, sizeof(*t));
    t->term = malloc((total_bytes + 1) * sizeof(*t->term));
    t->edge_key = calloc(slots, sizeof(*t->edge_key));
    t->edge_child = malloc(slots * sizeof(*t->edge_child));
    if (t->term == NULL || t->edge_key == NULL || t->edge_child == NULL) {
        return glm_errf(err, "out of memory for the added-token trie");
    }
    t->edge_mask = slots - 1;
    t->term[0] = -1;
    t->n_nodes = 1;
    return 0;
}

static void
trie_free(tok_trie *t)
{
    free(t->term);
    free(t->edge_key);
    free(t->edge_child);
    memset(t, 0, sizeof(*t));
}

static inline int64_t
trie_child(const tok_trie *t, size_t node, uint8_t byte)
{
    uint64_t key = (((uint64_t) node << 8) | byte) + 1;
    size_t i;

    for (i = tok_mix(key) & t->edge_mask; t->edge_key[i] != 0;
         i = (i + 1) & t->edge_mask)
    {
        if (t->edge_key[i] == key) {
            return t->edge_child[i];
        }
    }
    return -1;
}

/* Inserts a token; the trie was sized for all of them by trie_init. */
static void
trie_add(tok_trie *t, const uint8_t *s, size_t n, int32_t id)
{
    size_t node = 0, j, i;
    int64_t child;
    uint64_t key;

    t->first[s[0] >> 3] |= (uint8_t) (1u << (s[0] & 7));
    for (j = 0; j < n; j++) {
        child = trie_child(t, node, s[j]);
        if (child < 0) {
            key = (((uint64_t) node << 8) | s[j]) + 1;
            for (i = tok_mix(key) & t->edge_mask; t->edge_key[i] != 0;
                 i = (i + 1) & t->edge_mask)
            {
            }
            child = (int64_t) t->n_nodes++;
            t->term[child] = -1;
            t->edge_key[i] = key;
            t->edge_child[i] = (uint32_t) child;
        }
        node = (size_t) child;
    }
    t->term[node] = id;
    t->n_tokens++;
}

/* Longest token starting at s; its length (0 if none) and *id. */
static inline size_t
trie_longest(const tok_trie *t, const uint8_t *s, size_t n, int32_t *id)
{
    size_t node = 0, j, best = 0;
    int64_t child;

    for (j = 0; j < n; j++) {
        child = trie_child(t, node, s[j]);
        if (child < 0) {
            break;
        }
        node = (size_t) child;
        if (t->term[node] >= 0) {
            best = j + 1;
            *id = t->term[node];
        }
    }
    return best;
}


/* ------------------------------------------------------------------------ */
/* merges */

static inline const tok_merge *
merge_find(const glm_tokenizer *tok, int32_t a, int32_t b)
{
    uint64_t key = ((uint64_t) (uint32_t) a << 32) | (uint32_t) b;
    size_t i;
    const tok_merge *m;

    for (i = tok_mix(key) & tok->merge_mask;; i = (i + 1) & tok->merge_mask) {
        m = &tok->merges[i];
        if (m->key == key) {
            return m;
        }
        if (m->key == TOK_MERGE_EMPTY) {
            return NULL;
        }
    }
}

/* HF builds its merge map with collect(): a repeated pair keeps the later
 * rank, so an insert overwrites. */
static void
merge_put(glm_tokenizer *tok, int32_t a, int32_t b, uint32_t rank, int32_t new_id)
{
    uint64_t key = ((uint64_t) (uint32_t) a << 32) | (uint32_t) b;
    size_t i;
    tok_merge *m;

    for (i = tok_mix(key) & tok->merge_mask;; i = (i + 1) & tok->merge_mask) {
        m = &tok->merges[i];
        if (m->key == key || m->key == TOK_MERGE_EMPTY) {
            m->key = key;
            m->rank = rank;
            m->new_id = new_id;
            return;
        }
    }
}


/* ------------------------------------------------------------------------ */
/* pre-tokenizer regexes */

static int
add_stage(glm_tokenizer *tok, const char *pattern, const char *field, glm_err *err)
{
    glm_tok_regex *rx;

    if (tok->n_stages == TOK_MAX_STAGES) {
        return glm_errf(err, "%s: more than %d regex splits", field, TOK_MAX_STAGES);
    }
    rx = &tok->stage[tok->n_stages];
    if (glm_tok_regex_compile(rx, pattern, err) != 0) {
        return glm_err_prefix(err, "%s", field);
    }
    if (rx->ovec_pairs > tok->ovec_pairs) {
        tok->ovec_pairs = rx->ovec_pairs;
    }
    tok->n_stages++;
    return 0;
}


/* ------------------------------------------------------------------------ */
/* loading */

/* "absent or null" */
static int
is_none(yajl_val v)
{
    return v == NULL || YAJL_IS_NULL(v);
}

static int
is_none_or_empty(yajl_val v)
{
    return is_none(v) || (YAJL_IS_STRING(v) && v->u.string[0] == '\0');
}

/* A boolean field: dflt when absent; -1 (err) when not a boolean. */
static int
get_bool(yajl_val obj, const char *key, int dflt, const char *field, glm_err *err)
{
    yajl_val v = glm_json_get(obj, key);

    if (v == NULL) {
        return dflt;
    }
    if (YAJL_IS_TRUE(v)) {
        return 1;
    }
    if (YAJL_IS_FALSE(v)) {
        return 0;
    }
    return glm_errf(err, "%s.%s: expected true or false", field, key);
}

static const char *
get_type(yajl_val obj)
{
    yajl_val t = glm_json_get(obj, "type");

    return YAJL_IS_STRING(t) ? t->u.string : NULL;
}

/* Maps a tokenizer.json token string to the bytes it stands for: through the
 * byte-level alphabet when every char is in it, else its own UTF-8 (the
 * ByteLevel decoder's rule).  Appends to tok_bytes; *byte_level says which. */
static int
token_to_bytes(glm_tokenizer *tok, const char *s, size_t n, uint32_t *off,
               uint32_t *len, int *byte_level, glm_err *err)
{
    size_t i, k, cap, start = tok->tok_bytes_len;
    uint32_t cp;
    uint8_t *p;

    if (tok->tok_bytes == NULL || tok->tok_bytes_cap - tok->tok_bytes_len < n) {
        cap = tok->tok_bytes_cap ? tok->tok_bytes_cap : 1 << 16;
        while (cap - tok->tok_bytes_len < n) {
            cap *= 2;
        }
        if (cap > UINT32_MAX) {
            return glm_errf(err, "token strings exceed 4 GB");
        }
        p = realloc(tok->tok_bytes, cap);
        if (p == NULL) {
            return glm_errf(err, "out of memory for token bytes");
        }
        tok->tok_bytes = p;
        tok->tok_bytes_cap = cap;
    }
    p = tok->tok_bytes + start;
    *byte_level = 1;
    for (i = 0; i < n; i += k) {
        cp = utf8_decode((const uint8_t *) s + i, n - i, &k);
        if (cp >= 324 || tok->byte_of_cp[cp] < 0) {
            *byte_level = 0;
            break;
        }
        *p++ = (uint8_t) tok->byte_of_cp[cp];
    }
    if (!*byte_level) {
        memcpy(tok->tok_bytes + start, s, n);
        p = tok->tok_bytes + start + n;
    }
    *off = (uint32_t) start;
    *len = (uint32_t) (p - (tok->tok_bytes + start));
    tok->tok_bytes_len += *len;
    return 0;
}

static void
init_byte_alphabet(glm_tokenizer *tok)
{
    int b, n = 0;

    /* GPT-2's bytes_to_unicode: printable Latin-1 maps to itself, the other
     * 68 bytes to U+0100.. in byte order */
    for (b = 0; b < 324; b++) {
        tok->byte_of_cp[b] = -1;
    }
    for (b = 0; b < 256; b++) {
        if ((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae) {
            tok->cp_of_byte[b] = (uint16_t) b;
        } else {
            tok->cp_of_byte[b] = (uint16_t) (256 + n++);
        }
        tok->byte_of_cp[tok->cp_of_byte[b]] = (int16_t) b;
    }
}

static int
check_model_options(yajl_val model, glm_err *err)
{
    const char *type = get_type(model);
    yajl_val v;

    if (!YAJL_IS_OBJECT(model)) {
        return glm_errf(err, "model: missing or not an object");
    }
    if (type == NULL || strcmp(type, "BPE") != 0) {
        return glm_errf(err, "model.type: \"%s\" is not supported (only BPE)",
                        type ? type : "(missing)");
    }
    if (!is_none(glm_json_get(model, "dropout"))) {
        return glm_errf(err, "model.dropout: must be null (BPE dropout is not implemented)");
    }
    /* "" is what transformers' converters write for "none": an empty
     * prefix or suffix changes no string BPE builds, so it is null here */
    if (!is_none_or_empty(glm_json_get(model, "continuing_subword_prefix"))) {
        return glm_errf(err, "model.continuing_subword_prefix: must be null or \"\""
                        " (not implemented)");
    }
    if (!is_none_or_empty(glm_json_get(model, "end_of_word_suffix"))) {
        return glm_errf(err, "model.end_of_word_suffix: must be null or \"\" (not implemented)");
    }
    v = glm_json_get(model, "vocab");
    if (!YAJL_IS_OBJECT(v)) {
        return glm_errf(err, "model.vocab: missing or not an object");
    }
    v = glm_json_get(model, "merges");
    if (!YAJL_IS_ARRAY(v)) {
        return glm_errf(err, "model.merges: missing or not an array");
    }
    return 0;
}

static int
get_id(yajl_val v, const char *field, size_t index, int32_t *id, glm_err *err)
{
    long long x;

    if (!YAJL_IS_INTEGER(v)) {
        return glm_errf(err, "%s[%zu]: id is not an integer", field, index);
    }
    x = YAJL_GET_INTEGER(v);
    if (x < 0 || x >= TOK_MAX_ID) {
        return glm_errf(err, "%s[%zu]: id %lld out of range [0, %d)", field, index, x,
                        TOK_MAX_ID);
    }
    *id = (int32_t) x;
    return 0;
}

static int
load_vocab(glm_tokenizer *tok, yajl_val model, yajl_val added, glm_err *err)
{
    yajl_val vocab = glm_json_get(model, "vocab");
    size_t n = vocab->u.object.len, i;
    int32_t id, max_id = -1, old;
    const char *key;
    uint32_t off, len;
    int byte_level, b;
    size_t j;
    char one[4], hex[8];

    for (i = 0; i < n; i++) {
        if (get_id(vocab->u.object.values[i], "model.vocab", i, &id, err) != 0) {
            return -1;
        }
        if (id > max_id) {
            max_id = id;
        }
    }
    if (YAJL_IS_ARRAY(added)) {
        for (i = 0; i < added->u.array.len; i++) {
            if (get_id(glm_json_get(added->u.array.values[i], "id"), "added_tokens", i, &id,
                       err) != 0)
            {
                return -1;
            }
            if (id > max_id) {
                max_id = id;
            }
        }
    }
    tok->n_ids = max_id + 1;
    tok->tok_off = calloc((size_t) tok->n_ids + 1, sizeof(*tok->tok_off));
    tok->tok_len = calloc((size_t) tok->n_ids + 1, sizeof(*tok->tok_len));
    tok->tok_flags = calloc((size_t) tok->n_ids + 1, sizeof(*tok->tok_flags));
    if (tok->tok_off == NULL || tok->tok_len == NULL || tok->tok_flags == NULL) {
        return glm_errf(err, "out of memory for %d token ids", tok->n_ids);
    }
    if (strmap_init(&tok->vocab, n, err) != 0) {
        return -1;
    }
    if (tok->ignore_merges && strmap_init(&tok->vocab_bytes, n, err) != 0) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        key = vocab->u.object.keys[i];
        id = (int32_t) YAJL_GET_INTEGER(vocab->u.object.values[i]);
        if (tok->tok_flags[id] & TOK_FLAG_PRESENT) {
            return glm_errf(err, "model.vocab: id %d is given to two tokens", id);
        }
        if (strmap_add(&tok->vocab, key, strlen(key), id, &old, err) != 0) {
            return -1;
        }
        if (old >= 0) {
            return glm_errf(err, "model.vocab: token \"%s\" appears twice", key);
        }
        if (token_to_bytes(tok, key, strlen(key), &off, &len, &byte_level, err) != 0) {
            return -1;
        }
        tok->tok_off[id] = off;
        tok->tok_len[id] = len;
        tok->tok_flags[id] = TOK_FLAG_PRESENT;
        /* only byte-level keys can be the whole of a piece */
        if (tok->ignore_merges && byte_level
            && strmap_add(&tok->vocab_bytes, tok->tok_bytes + off, len, id, &old, err) != 0)
        {
            return -1;
        }
    }
    for (b = 0; b < 256; b++) {
        uint32_t cp = tok->cp_of_byte[b];
        size_t k;

        if (cp < 0x80) {
            one[0] = (char) cp;
            k = 1;
        } else {
            one[0] = (char) (0xc0 | (cp >> 6));
            one[1] = (char) (0x80 | (cp & 0x3f));
            k = 2;
        }
        tok->byte_id[b] = strmap_find(&tok->vocab, one, k);
        tok->byte_ids[b][0] = tok->byte_id[b];
        tok->byte_n[b] = 1;
        if (tok->byte_id[b] >= 0) {
            continue;
        }
        if (!tok->byte_fallback) {
            return glm_errf(err, "model.vocab: no token \"%.*s\" for byte 0x%02x (a "
                            "byte-level BPE without byte_fallback needs all 256)",
                            (int) k, one, b);
        }
        /*
         * HF's byte fallback: a character missing from the vocab becomes the
         * <0xXX> tokens of its UTF-8 bytes.  The character is the byte-level
         * one, so byte 0x0a ("Ċ", U+010A) falls back to <0xC4> <0x8A>.  When
         * one of them is missing too, HF drops the character (or emits the
         * unk token, which is not implemented here).
         */
        tok->byte_exact = 0;
        tok->byte_n[b] = 0;
        for (j = 0; j < k; j++) {
            snprintf(hex, sizeof(hex), "<0x%02X>", (unsigned) (uint8_t) one[j]);
            tok->byte_ids[b][j] = strmap_find(&tok->vocab, hex, strlen(hex));
            if (tok->byte_ids[b][j] < 0) {
                break;
            }
        }
        if (j == k) {
            tok->byte_n[b] = (uint8_t) k;
        } else if (!is_none(glm_json_get(model, "unk_token"))) {
            return glm_errf(err, "model.unk_token: byte 0x%02x has neither \"%.*s\" nor "
                            "byte-fallback tokens, so HF would emit the unk token: not "
                            "implemented", b, (int) k, one);
        }
    }
    return 0;
}

/* Splits a legacy "a b" merge (exactly one space, as HF requires). */
static int
merge_parts(yajl_val m, size_t rank, const char **a, size_t *alen, const char **b,
            size_t *blen, glm_err *err)
{
    const char *s, *sp;

    if (YAJL_IS_STRING(m)) {
        s = m->u.string;
        sp = strchr(s, ' ');
        if (sp == NULL || strchr(sp + 1, ' ') != NULL) {
            return glm_errf(err, "model.merges[%zu]: \"%s\" is not two tokens "
                            "separated by one space", rank, s);
        }
        *a = s;
        *alen = (size_t) (sp - s);
        *b = sp + 1;
        *blen = strlen(sp + 1);
        return 0;
    }
    if (YAJL_IS_ARRAY(m) && m->u.array.len == 2 && YAJL_IS_STRING(m->u.array.values[0])
        && YAJL_IS_STRING(m->u.array.values[1]))
    {
        *a = m->u.array.values[0]->u.string;
        *alen = strlen(*a);
        *b = m->u.array.values[1]->u.string;
        *blen = strlen(*b);
        return 0;
    }
    return glm_errf(err, "model.merges[%zu]: neither \"a b\" nor [\"a\", \"b\"]", rank);
}

static int
load_merges(glm_tokenizer *tok, yajl_val model, glm_err *err)
{
    yajl_val merges = glm_json_get(model, "merges");
    size_t n = merges->u.array.len, slots = 16, i, alen = 0, blen = 0, cap = 0;
    uint32_t rank = 0;
    const char *a = NULL, *b = NULL;
    char *cat = NULL, *p;
    int32_t ia, ib, ic;
    yajl_val m;

    while (slots < n * 2 + 2) {
        slots *= 2;
    }
    tok->merges = malloc(slots * sizeof(*tok->merges));
    if (tok->merges == NULL) {
        return glm_errf(err, "out of memory for %zu merges", n);
    }
    for (i = 0; i < slots; i++) {
        tok->merges[i].key = TOK_MERGE_EMPTY;
    }
    tok->merge_mask = slots - 1;
    for (i = 0; i < n; i++) {
        m = merges->u.array.values[i];
        /* HF drops a "#version" header line and does not count it */
        if (YAJL_IS_STRING(m) && strncmp(m->u.string, "#version", 8) == 0) {
            continue;
        }
        if (merge_parts(m, rank, &a, &alen, &b, &blen, err) != 0) {
            free(cat);
            return -1;
        }
        if (alen + blen > cap) {
            cap = (alen + blen) * 2 + 64;
            p = realloc(cat, cap);
            if (p == NULL) {
                free(cat);
                return glm_errf(err, "out of memory");
            }
            cat = p;
        }
        memcpy(cat, a, alen);
        memcpy(cat + alen, b, blen);
        ia = strmap_find(&tok->vocab, a, alen);
        ib = strmap_find(&tok->vocab, b, blen);
        ic = strmap_find(&tok->vocab, cat, alen + blen);
        if (ia < 0 || ib < 0 || ic < 0) {
            glm_errf(err, "model.merges[%zu]: \"%.*s\" is not in the vocab", (size_t) rank,
                     (int) (ia < 0 ? alen : ib < 0 ? blen : alen + blen),
                     ia < 0 ? a : ib < 0 ? b : cat);
            free(cat);
            return -1;
        }
        merge_put(tok, ia, ib, rank, ic);
        rank++;
    }
    free(cat);
    return 0;
}

/*
 * Added tokens, with the ids HF would give them: Tokenizer.from_file ignores
 * the ids written in the file and calls add_tokens(), which gives a token
 * its vocab id when its content is a vocab key, else the next id after the
 * vocab (counted as the number of vocab entries).  A file whose ids differ
 * from that would decode differently here than in HF, so it is refused.
 */
static int
load_added(glm_tokenizer *tok, yajl_val added, glm_err *err)
{
    size_t n, i, total_raw = 0, total_norm = 0;
    glm_tokenizer_buf *pat;
    int rc;

    if (is_none(added)) {
        return strmap_init(&tok->added, 0, err);
    }
    if (!YAJL_IS_ARRAY(added)) {
        return glm_errf(err, "added_tokens: not an array");
    }
    n = added->u.array.len;
    if (strmap_init(&tok->added, n, err) != 0) {
        return -1;
    }
    /* what each token is looked for as: normalized ones through the
     * normalizer, as HF's AddedVocabulary builds its normalized trie */
    pat = calloc(n + 1, sizeof(*pat));
    if (pat == NULL) {
        return glm_errf(err, "out of memory for %zu added tokens", n);
    }
    rc = added_patterns(tok, added, pat, &total_raw, &total_norm, err);
    if (rc == 0) {
        rc = trie_init(&tok->trie_raw, total_raw, err);
    }
    if (rc == 0) {
        rc = trie_init(&tok->trie_norm, total_norm, err);
    }
    if (rc == 0) {
        rc = add_added(tok, added, pat, err);
    }
    for (i = 0; i < n; i++) {
        glm_tokenizer_buf_free(&pat[i]);
    }
    free(pat);
    return rc;
}

/* pat[i] = added token i's content, normalized when it is a normalized one;
 * totals of their lengths per trie. */
static int
added_patterns(glm_tokenizer *tok, yajl_val added, glm_tokenizer_buf *pat,
               size_t *total_raw, size_t *total_norm, glm_err *err)
{
    glm_tok_norm_scratch sc;
    pcre2_match_data *md = NULL;
    yajl_val t, content;
    const uint8_t *p;
    size_t i, len;
    int normalized, rc = 0;

    memset(&sc, 0, sizeof(sc));
    if (tok->normalizer != NULL && tok->ovec_pairs > 0) {
        md = pcre2_match_data_create(tok->ovec_pairs, NULL);
        if (md == NULL) {
            return glm_errf(err, "out of memory for regex match data");
        }
        sc.md = md;
    }
    for (i = 0; i < added->u.array.len && rc == 0; i++) {
        t = added->u.array.values[i];
        content = glm_json_get(t, "content");
        if (!YAJL_IS_STRING(content)) {
            rc = glm_errf(err, "added_tokens[%zu].content: missing or not a string", i);
            break;
        }
        normalized = get_bool(t, "normalized", 0, "added_tokens[]", err);
        if (normalized < 0) {
            rc = -1;
            break;
        }
        p = (const uint8_t *) content->u.string;
        len = strlen(content->u.string);
        if (normalized && tok->normalizer != NULL && len > 0) {
            if (glm_utf8_invalid_at(p, len) < len) {
                rc = glm_errf(err, "added_tokens[%zu].content: not valid UTF-8", i);
                break;
            }
            if (glm_tok_normalize(tok->normalizer, &sc, p, len, &p, &len, err) != 0) {
                rc = glm_err_prefix(err, "added_tokens[%zu]", i);
                break;
            }
            if (len == 0) {
                rc = glm_errf(err, "added_tokens[%zu]: \"%s\" normalizes to nothing; "
                              "a normalized added token must keep some text", i,
                              content->u.string);
                break;
            }
        }
        rc = glm_tokenizer_buf_append(&pat[i], p, len, err);
        *(normalized ? total_norm : total_raw) += len;
    }
    glm_tok_norm_scratch_free(&sc);
    pcre2_match_data_free(md);
    return rc;
}

static int
add_added(glm_tokenizer *tok, yajl_val added, const glm_tokenizer_buf *pat, glm_err *err)
{
    size_t n = added->u.array.len, i, len, plen;
    yajl_val t, content;
    int32_t id, want, next_id, old, in_vocab, dup = -1;
    int special, normalized, f;
    uint32_t off, blen;
    int byte_level;
    tok_trie *trie;
    static const char *const refused[] = { "lstrip", "rstrip", "single_word" };

    next_id = (int32_t) tok->vocab.n;
    for (i = 0; i < n; i++) {
        t = added->u.array.values[i];
        content = glm_json_get(t, "content");
        len = strlen(content->u.string);
        for (f = 0; f < 3; f++) {
            int v = get_bool(t, refused[f], 0, "added_tokens[]", err);

            if (v < 0) {
                return -1;
            }
            if (v) {
                return glm_errf(err, "added_tokens[%zu].%s: true is not implemented "
                                "(token \"%s\")", i, refused[f], content->u.string);
            }
        }
        special = get_bool(t, "special", 0, "added_tokens[]", err);
        normalized = get_bool(t, "normalized", 0, "added_tokens[]", err);
        if (special < 0 || normalized < 0) {
            return -1;
        }
        if (get_id(glm_json_get(t, "id"), "added_tokens", i, &id, err) != 0) {
            return -1;
        }
        if (len == 0) {
            continue;       /* HF ignores empty added tokens */
        }
        in_vocab = strmap_find(&tok->vocab, content->u.string, len);
        want = in_vocab >= 0 ? in_vocab : next_id++;
        if (id != want) {
            return glm_errf(err, "added_tokens[%zu]: \"%s\" has id %d in the file, but "
                            "Hugging Face tokenizers would give it id %d", i,
                            content->u.string, id, want);
        }
        if (in_vocab < 0 && (tok->tok_flags[id] & TOK_FLAG_PRESENT)) {
            return glm_errf(err, "added_tokens[%zu]: \"%s\" gets id %d, which a "
                            "different vocab token already has", i, content->u.string, id);
        }
        if (strmap_add(&tok->added, content->u.string, len, id, &old, err) != 0) {
            return -1;
        }
        if (old >= 0) {
            return glm_errf(err, "added_tokens[%zu]: \"%s\" appears twice", i,
                            content->u.string);
        }
        if ((tok->tok_flags[id] & TOK_FLAG_PRESENT) == 0) {
            if (token_to_bytes(tok, content->u.string, len, &off, &blen, &byte_level,
                               err) != 0)
            {
                return -1;
            }
            tok->tok_off[id] = off;
            tok->tok_len[id] = blen;
        }
        tok->tok_flags[id] |= TOK_FLAG_PRESENT | TOK_FLAG_ADDED
                              | (special ? TOK_FLAG_SPECIAL : 0);
        trie = normalized ? &tok->trie_norm : &tok->trie_raw;
        plen = pat[i].len;
        if (trie_longest(trie, (const uint8_t *) pat[i].data, plen, &dup) == plen) {
            return glm_errf(err, "added_tokens[%zu]: \"%s\" is looked for as \"%.*s\", "
                            "as another added token (id %d) already is", i,
                            content->u.string, (int) plen, pat[i].data, (int) dup);
        }
        trie_add(trie, (const uint8_t *) pat[i].data, plen, id);
    }
    return 0;
}

static int
load_byte_level(glm_tokenizer *tok, yajl_val bl, const char *field, glm_err *err)
{
    yajl_val aps = glm_json_get(bl, "add_prefix_space");
    int use_regex;

    if (!YAJL_IS_FALSE(aps)) {
        return glm_errf(err, "%s.add_prefix_space: must be false (a prefix space is "
                        "not implemented)", field);
    }
    use_regex = get_bool(bl, "use_regex", 1, field, err);    /* HF's default */
    if (use_regex < 0) {
        return -1;
    }
    if (use_regex) {
        return add_stage(tok, tok_gpt2_pattern, field, err);
    }
    return 0;
}

static int
load_split(glm_tokenizer *tok, yajl_val sp, const char *field, glm_err *err)
{
    yajl_val pat = glm_json_get(sp, "pattern"), rx, beh;
    int inv;

    rx = glm_json_get(pat, "Regex");
    if (!YAJL_IS_STRING(rx)) {
        return glm_errf(err, "%s.pattern: only {\"Regex\": ...} is supported", field);
    }
    beh = glm_json_get(sp, "behavior");
    if (!YAJL_IS_STRING(beh) || strcmp(beh->u.string, "Isolated") != 0) {
        return glm_errf(err, "%s.behavior: only \"Isolated\" is supported", field);
    }
    inv = get_bool(sp, "invert", 0, field, err);
    if (inv < 0) {
        return -1;
    }
    if (inv) {
        return glm_errf(err, "%s.invert: must be false", field);
    }
    return add_stage(tok, rx->u.string, field, err);
}

static int
load_pre_tokenizer(glm_tokenizer *tok, yajl_val pt, glm_err *err)
{
    const char *type = get_type(pt);
    yajl_val list;
    size_t i, n;
    char field[64];

    if (type != NULL && strcmp(type, "ByteLevel") == 0) {
        return load_byte_level(tok, pt, "pre_tokenizer", err);
    }
    if (type == NULL || strcmp(type, "Sequence") != 0) {
        return glm_errf(err, "pre_tokenizer: \"%s\" is not supported (ByteLevel, or a "
                        "Sequence of Splits ending with ByteLevel)",
                        type ? type : "(missing)");
    }
    list = glm_json_get(pt, "pretokenizers");
    if (!YAJL_IS_ARRAY(list) || list->u.array.len == 0) {
        return glm_errf(err, "pre_tokenizer.pretokenizers: missing or empty");
    }
    n = list->u.array.len;
    for (i = 0; i < n; i++) {
        snprintf(field, sizeof(field), "pre_tokenizer.pretokenizers[%zu]", i);
        type = get_type(list->u.array.values[i]);
        if (i + 1 < n && type != NULL && strcmp(type, "Split") == 0) {
            if (load_split(tok, list->u.array.values[i], field, err) != 0) {
                return -1;
            }
        } else if (i + 1 == n && type != NULL && strcmp(type, "ByteLevel") == 0) {
            if (load_byte_level(tok, list->u.array.values[i], field, err) != 0) {
                return -1;
            }
        } else {
            return glm_errf(err, "%s: \"%s\" is not supported here (Splits, then a "
                            "final ByteLevel)", field, type ? type : "(missing)");
        }
    }
    return 0;
}

/* encode() is HF's add_special_tokens=False, which never runs the
 * post-processor's templates; still, refuse a file whose template adds
 * tokens, so nobody mistakes this for a full encode(). */
static int
check_post_processor(yajl_val pp, const char *field, glm_err *err)
{
    const char *type = get_type(pp);
    yajl_val list, item, st;
    size_t i;
    char sub[96];

    if (is_none(pp) || (type != NULL && strcmp(type, "ByteLevel") == 0)) {
        return 0;
    }
    if (type != NULL && strcmp(type, "Sequence") == 0) {
        list = glm_json_get(pp, "processors");
        if (!YAJL_IS_ARRAY(list)) {
            return glm_errf(err, "%s.processors: missing", field);
        }
        for (i = 0; i < list->u.array.len; i++) {
            snprintf(sub, sizeof(sub), "%s.processors[%zu]", field, i);
            if (check_post_processor(list->u.array.values[i], sub, err) != 0) {
                return -1;
            }
        }
        return 0;
    }
    if (type != NULL && strcmp(type, "TemplateProcessing") == 0) {
        list = glm_json_get(pp, "single");
        if (!YAJL_IS_ARRAY(list)) {
            return glm_errf(err, "%s.single: missing", field);
        }
        for (i = 0; i < list->u.array.len; i++) {
            item = list->u.array.values[i];
            if (glm_json_get(item, "Sequence") != NULL) {
                continue;
            }
            st = glm_json_get(glm_json_get(item, "SpecialToken"), "id");
            return glm_errf(err, "%s.single[%zu]: the template adds token \"%s\"; a "
                            "post-processor that adds tokens is not implemented", field,
                            i, YAJL_IS_STRING(st) ? st->u.string : "?");
        }
        return 0;
    }
    return glm_errf(err, "%s: \"%s\" is not supported", field, type ? type : "(missing)");
}

static int
load_json(glm_tokenizer *tok, yajl_val root, glm_err *err)
{
    yajl_val model = glm_json_get(root, "model"), added = glm_json_get(root, "added_tokens");
    yajl_val nz;
    const char *type;
    int im, bf;

    if (!YAJL_IS_OBJECT(root)) {
        return glm_errf(err, "not a JSON object");
    }
    if (!is_none(glm_json_get(root, "truncation"))) {
        return glm_errf(err, "truncation: must be null (not implemented)");
    }
    if (!is_none(glm_json_get(root, "padding"))) {
        return glm_errf(err, "padding: must be null (not implemented)");
    }
    type = get_type(glm_json_get(root, "decoder"));
    if (type == NULL || strcmp(type, "ByteLevel") != 0) {
        return glm_errf(err, "decoder: \"%s\" is not supported (only ByteLevel)",
                        type ? type : "(missing)");
    }
    if (check_post_processor(glm_json_get(root, "post_processor"), "post_processor", err) != 0
        || check_model_options(model, err) != 0)
    {
        return -1;
    }
    im = get_bool(model, "ignore_merges", 0, "model", err);
    bf = get_bool(model, "byte_fallback", 0, "model", err);
    if (im < 0 || bf < 0) {
        return -1;
    }
    tok->ignore_merges = im;
    tok->byte_fallback = bf;
    nz = glm_json_get(root, "normalizer");
    if (!is_none(nz)) {
        tok->normalizer = glm_tok_normalizer_load(nz, err);
        if (tok->normalizer == NULL) {
            return -1;
        }
        tok->ovec_pairs = glm_tok_normalizer_ovec_pairs(tok->normalizer);
    }
    if (load_vocab(tok, model, added, err) != 0
        || load_merges(tok, model, err) != 0
        || load_added(tok, added, err) != 0
        || load_pre_tokenizer(tok, glm_json_get(root, "pre_tokenizer"), err) != 0)
    {
        return -1;
    }
    return 0;
}

glm_tokenizer *
glm_tokenizer_load(const char *path, glm_err *err)
{
    glm_tokenizer *tok;
    char *text, ebuf[256];
    yajl_val root;
    int rc;

    text = glm_read_file(path, NULL, err);
    if (text == NULL) {
        return NULL;
    }
    ebuf[0] = '\0';
    root = yajl_tree_parse(text, ebuf, sizeof(ebuf));
    free(text);
    if (root == NULL) {
        /* yajl's message spans lines; keep the first */
        ebuf[strcspn(ebuf, "\n")] = '\0';
        glm_errf(err, "%s: invalid JSON: %s", path, ebuf[0] ? ebuf : "parse error");
        return NULL;
    }
    tok = calloc(1, sizeof(*tok));
    if (tok == NULL) {
        yajl_tree_free(root);
        glm_errf(err, "%s: out of memory", path);
        return NULL;
    }
    init_byte_alphabet(tok);
    tok->byte_exact = 1;
    rc = load_json(tok, root, err);
    yajl_tree_free(root);
    if (rc != 0) {
        glm_err_prefix(err, "%s", path);
        glm_tokenizer_free(tok);
        return NULL;
    }
    return tok;
}

void
glm_tokenizer_free(glm_tokenizer *tok)
{
    int i;

    if (tok == NULL) {
        return;
    }
    free(tok->tok_off);
    free(tok->tok_len);
    free(tok->tok_flags);
    free(tok->tok_bytes);
    free(tok->merges);
    strmap_free(&tok->vocab);
    strmap_free(&tok->vocab_bytes);
    strmap_free(&tok->added);
    trie_free(&tok->trie_raw);
    trie_free(&tok->trie_norm);
    glm_tok_normalizer_free(tok->normalizer);
    for (i = 0; i < tok->n_stages; i++) {
        glm_tok_regex_free(&tok->stage[i]);
    }
    free(tok);
}


/* ------------------------------------------------------------------------ */
/* encode context */

static glm_tokenizer_ctx *
ctx_create(const glm_tokenizer *tok, int with_cache, glm_err *err)
{
    glm_tokenizer_ctx *ctx = calloc(1, sizeof(*ctx));

    if (ctx == NULL) {
        glm_errf(err, "out of memory for a tokenizer context");
        return NULL;
    }
    ctx->tok = tok;
    if (tok->ovec_pairs > 0) {
        ctx->md = pcre2_match_data_create(tok->ovec_pairs, NULL);
        ctx->mctx = pcre2_match_context_create(NULL);
        /* PCRE2's default JIT stack is 32 KB of machine stack; a long-lived
         * ctx gets room to grow instead of falling back to the interpreter
         * (re_find) on deep matches.  One-off contexts skip the mmap. */
        if (with_cache) {
            ctx->jit_stack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
        }
        if (ctx->md == NULL || ctx->mctx == NULL || (with_cache && ctx->jit_stack == NULL)) {
            glm_tokenizer_ctx_free(ctx);
            glm_errf(err, "out of memory for regex match data");
            return NULL;
        }
        if (ctx->jit_stack != NULL) {
            pcre2_jit_stack_assign(ctx->mctx, NULL, ctx->jit_stack);
        }
        ctx->norm.md = ctx->md;
        ctx->norm.mctx = ctx->mctx;
    }
    if (with_cache) {
        ctx->cache = calloc(TOK_CACHE_SLOTS, sizeof(*ctx->cache));
        ctx->cache_keys = malloc(TOK_CACHE_KEY_BYTES);
        ctx->cache_ids = malloc(TOK_CACHE_IDS * sizeof(*ctx->cache_ids));
        if (ctx->cache == NULL || ctx->cache_keys == NULL || ctx->cache_ids == NULL) {
            glm_tokenizer_ctx_free(ctx);
            glm_errf(err, "out of memory for the tokenizer cache");
            return NULL;
        }
    }
    return ctx;
}

glm_tokenizer_ctx *
glm_tokenizer_ctx_new(const glm_tokenizer *tok, glm_err *err)
{
    return ctx_create(tok, 1, err);
}

void
glm_tokenizer_ctx_free(glm_tokenizer_ctx *ctx)
{
    if (ctx == NULL) {
        return;
    }
    pcre2_match_data_free(ctx->md);
    pcre2_match_context_free(ctx->mctx);
    pcre2_jit_stack_free(ctx->jit_stack);
    glm_tok_norm_scratch_free(&ctx->norm);
    free(ctx->sym);
    free(ctx->heap);
    free(ctx->cache);
    free(ctx->cache_keys);
    free(ctx->cache_ids);
    free(ctx);
}

static int
scratch_reserve(glm_tokenizer_ctx *ctx, size_t n, glm_err *err)
{
    size_t cap = ctx->scratch_cap ? ctx->scratch_cap : 256;
    tok_sym *s;
    tok_heap_item *h;

    if (n <= ctx->scratch_cap) {
        return 0;
    }
    while (cap < n) {
        cap *= 2;
    }
    s = realloc(ctx->sym, cap * sizeof(*s));
    if (s == NULL) {
        return glm_errf(err, "out of memory for BPE scratch (%zu symbols)", cap);
    }
    ctx->sym = s;
    h = realloc(ctx->heap, cap * sizeof(*h));
    if (h == NULL) {
        return glm_errf(err, "out of memory for BPE scratch (%zu symbols)", cap);
    }
    ctx->heap = h;
    ctx->scratch_cap = cap;
    return 0;
}


/* ------------------------------------------------------------------------ */
/* BPE */

/* Small pieces: ids[] (the n starting symbols) and the rank of each
 * adjacent pair in arrays; merge the leftmost lowest-ranked pair until none
 * is left.  Returns the count. */
static size_t
bpe_small(const glm_tokenizer *tok, int32_t *ids, size_t n)
{
    uint32_t rank[TOK_SMALL_PIECE];
    int32_t nid[TOK_SMALL_PIECE];
    const tok_merge *m;
    size_t i, best;
    uint32_t best_rank;

    for (i = 0; i + 1 < n; i++) {
        m = merge_find(tok, ids[i], ids[i + 1]);
        rank[i] = m ? m->rank : UINT32_MAX;
        nid[i] = m ? m->new_id : -1;
    }
    while (n > 1) {
        best = 0;
        best_rank = rank[0];
        for (i = 1; i + 1 < n; i++) {
            if (rank[i] < best_rank) {
                best_rank = rank[i];
                best = i;
            }
        }
        if (best_rank == UINT32_MAX) {
            break;
        }
        ids[best] = nid[best];
        memmove(ids + best + 1, ids + best + 2, (n - best - 2) * sizeof(*ids));
        memmove(rank + best, rank + best + 1, (n - best - 2) * sizeof(*rank));
        memmove(nid + best, nid + best + 1, (n - best - 2) * sizeof(*nid));
        n--;
        if (best > 0) {
            m = merge_find(tok, ids[best - 1], ids[best]);
            rank[best - 1] = m ? m->rank : UINT32_MAX;
            nid[best - 1] = m ? m->new_id : -1;
        }
        if (best + 1 < n) {
            m = merge_find(tok, ids[best], ids[best + 1]);
            rank[best] = m ? m->rank : UINT32_MAX;
            nid[best] = m ? m->new_id : -1;
        }
    }
    return n;
}

static void
heap_push(tok_heap_item *h, size_t *n, tok_heap_item it)
{
    size_t i = (*n)++, parent;

    while (i > 0) {
        parent = (i - 1) / 2;
        if (it >= h[parent]) {
            break;
        }
        h[i] = h[parent];
        i = parent;
    }
    h[i] = it;
}

static tok_heap_item
heap_pop(tok_heap_item *h, size_t *n)
{
    tok_heap_item top = h[0], last = h[--(*n)];
    size_t i = 0, c;

    while ((c = 2 * i + 1) < *n) {
        if (c + 1 < *n && h[c + 1] < h[c]) {
            c++;
        }
        if (h[c] >= last) {
            break;
        }
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) {
        h[i] = last;
    }
    return top;
}

static inline void
heap_push_pair(const glm_tokenizer *tok, tok_heap_item *h, size_t *n, const tok_sym *sym,
               int32_t left, int32_t right)
{
    const tok_merge *m = merge_find(tok, sym[left].id, sym[right].id);

    if (m != NULL) {
        heap_push(h, n, ((uint64_t) m->rank << 32) | (uint32_t) left);
    }
}

/*
 * Long pieces: HF's Word::merge_all (symbols in a linked list, candidate
 * merges in a min-heap on (rank, position), stale entries skipped).  HF
 * calls an entry stale when the pair now at its position merges to another
 * id; here, when it has another rank.  Same thing: a rank names one pair,
 * and the left symbol at a position only grows, so the pair there can only
 * change into one that makes a longer token.  The heap never holds more than
 * 2n entries: each merge removes a symbol and pushes at most two.
 */
static int
bpe_long(const glm_tokenizer *tok, glm_tokenizer_ctx *ctx, int32_t *ids, size_t n,
         size_t *count, glm_err *err)
{
    tok_sym *sym;
    tok_heap_item *heap, it;
    size_t nh = 0, i, k;
    const tok_merge *m;
    int32_t pos, next;
    uint32_t rank;

    if (scratch_reserve(ctx, 2 * n + 2, err) != 0) {
        return -1;
    }
    sym = ctx->sym;
    heap = ctx->heap;
    for (i = 0; i < n; i++) {
        sym[i].id = ids[i];
        sym[i].prev = (int32_t) i - 1;
        sym[i].next = i + 1 < n ? (int32_t) i + 1 : -1;
        sym[i].len = 1;
    }
    for (i = 0; i + 1 < n; i++) {
        heap_push_pair(tok, heap, &nh, sym, (int32_t) i, (int32_t) i + 1);
    }
    while (nh > 0) {
        it = heap_pop(heap, &nh);
        rank = (uint32_t) (it >> 32);
        pos = (int32_t) (uint32_t) it;
        if (sym[pos].len == 0 || sym[pos].next < 0) {
            continue;
        }
        next = sym[pos].next;
        m = merge_find(tok, sym[pos].id, sym[next].id);
        if (m == NULL || m->rank != rank) {
            continue;       /* stale: one side changed since the push */
        }
        sym[pos].id = m->new_id;
        sym[pos].len += sym[next].len;
        sym[pos].next = sym[next].next;
        sym[next].len = 0;
        if (sym[pos].next >= 0) {
            sym[sym[pos].next].prev = pos;
        }
        if (sym[pos].prev >= 0) {
            heap_push_pair(tok, heap, &nh, sym, sym[pos].prev, pos);
        }
        if (sym[pos].next >= 0) {
            heap_push_pair(tok, heap, &nh, sym, pos, sym[pos].next);
        }
    }
    k = 0;
    for (i = 0; i < n; i = (size_t) (sym[i].next < 0 ? (int32_t) n : sym[i].next)) {
        ids[k++] = sym[i].id;
    }
    *count = k;
    return 0;
}

static void
cache_clear(glm_tokenizer_ctx *ctx)
{
    memset(ctx->cache, 0, TOK_CACHE_SLOTS * sizeof(*ctx->cache));
    ctx->cache_entries = 0;
    ctx->cache_keys_len = 0;
    ctx->cache_ids_len = 0;
}

/* The symbols BPE starts from for the bytes s[0..n): one token per byte, or
 * with byte fallback what stands in for each; returns how many (<= 2n). */
static size_t
start_symbols(const glm_tokenizer *tok, const uint8_t *s, size_t n, int32_t *ids)
{
    size_t i, m = 0;

    if (tok->byte_exact) {
        for (i = 0; i < n; i++) {
            ids[i] = tok->byte_id[s[i]];
        }
        return n;
    }
    for (i = 0; i < n; i++) {
        if (tok->byte_n[s[i]] > 0) {
            ids[m++] = tok->byte_ids[s[i]][0];
        }
        if (tok->byte_n[s[i]] > 1) {
            ids[m++] = tok->byte_ids[s[i]][1];
        }
    }
    return m;
}

/* One pre-tokenized piece (n >= 1 bytes) -> ids appended to out. */
static int
bpe_piece(const glm_tokenizer *tok, glm_tokenizer_ctx *ctx, const uint8_t *s, size_t n,
          glm_tokenizer_ids *out, glm_err *err)
{
    uint32_t h = 0;
    size_t i = 0, count, m;
    tok_cache_slot *slot = NULL;
    int32_t id, *dst;

    if (n == 1 && tok->byte_exact) {
        return glm_tokenizer_ids_push(out, tok->byte_id[s[0]], err);
    }
    if (tok->ignore_merges) {
        id = strmap_find(&tok->vocab_bytes, s, n);
        if (id >= 0) {
            return glm_tokenizer_ids_push(out, id, err);
        }
    }
    if (ctx->cache != NULL && n <= TOK_CACHE_MAX_PIECE) {
        h = (uint32_t) tok_hash(s, n);
        for (i = h & (TOK_CACHE_SLOTS - 1); ctx->cache[i].key_len != 0;
             i = (i + 1) & (TOK_CACHE_SLOTS - 1))
        {
            slot = &ctx->cache[i];
            if (slot->hash == h && slot->key_len == n
                && memcmp(ctx->cache_keys + slot->key_off, s, n) == 0)
            {
                if (ids_reserve(out, slot->n_ids, err) != 0) {
                    return -1;
                }
                memcpy(out->ids + out->len, ctx->cache_ids + slot->ids_off,
                       slot->n_ids * sizeof(int32_t));
                out->len += slot->n_ids;
                return 0;
            }
        }
    }
    if (ids_reserve(out, 2 * n, err) != 0) {
        return -1;
    }
    dst = out->ids + out->len;
    m = start_symbols(tok, s, n, dst);
    if (m <= TOK_SMALL_PIECE) {
        count = bpe_small(tok, dst, m);
    } else if (bpe_long(tok, ctx, dst, m, &count, err) != 0) {
        return -1;
    }
    out->len += count;
    if (ctx->cache != NULL && n <= TOK_CACHE_MAX_PIECE) {
        if (ctx->cache_entries + 1 > TOK_CACHE_ENTRIES
            || ctx->cache_keys_len + n > TOK_CACHE_KEY_BYTES
            || ctx->cache_ids_len + count > TOK_CACHE_IDS)
        {
            cache_clear(ctx);
            i = h & (TOK_CACHE_SLOTS - 1);
        }
        /* i is the empty slot the lookup stopped at */
        slot = &ctx->cache[i];
        slot->hash = h;
        slot->key_off = (uint32_t) ctx->cache_keys_len;
        slot->key_len = (uint16_t) n;
        slot->ids_off = (uint32_t) ctx->cache_ids_len;
        slot->n_ids = (uint16_t) count;
        memcpy(ctx->cache_keys + ctx->cache_keys_len, s, n);
        memcpy(ctx->cache_ids + ctx->cache_ids_len, dst, count * sizeof(int32_t));
        ctx->cache_keys_len += n;
        ctx->cache_ids_len += count;
        ctx->cache_entries++;
    }
    return 0;
}


/* ------------------------------------------------------------------------ */
/* encode */

/*
 * Split "Isolated" by stage's regex, then the next stage (or BPE) on each
 * piece.  The loop is the onig crate's find_iter, which HF uses: an empty
 * match right where the previous match ended is rejected and the search
 * moves on one character; empty pieces are dropped.
 */
static int
encode_stage(const glm_tokenizer *tok, glm_tokenizer_ctx *ctx, int stage,
             const uint8_t *s, size_t n, glm_tokenizer_ids *out, glm_err *err)
{
    glm_tok_regex_iter it;
    size_t prev = 0, ms, me;
    int rc;

    if (stage == tok->n_stages) {
        return bpe_piece(tok, ctx, s, n, out, err);
    }
    glm_tok_regex_iter_init(&it);
    while ((rc = glm_tok_regex_next(&tok->stage[stage], ctx->md, ctx->mctx, s, n, &it, &ms,
                                    &me, err)) != 0)
    {
        if (rc < 0) {
            return glm_err_prefix(err, "pre-tokenizer");
        }
        if (prev < ms && encode_stage(tok, ctx, stage + 1, s + prev, ms - prev, out, err)
                         != 0)
        {
            return -1;
        }
        if (ms < me && encode_stage(tok, ctx, stage + 1, s + ms, me - ms, out, err) != 0) {
            return -1;
        }
        prev = me;
    }
    if (prev < n) {
        return encode_stage(tok, ctx, stage + 1, s + prev, n - prev, out, err);
    }
    return 0;
}

/* Cuts the tokens of one added-token set out of s (leftmost, then longest,
 * like aho-corasick's LeftmostLongest); the gaps go on to next_level. */
static int
encode_added(const glm_tokenizer *tok, glm_tokenizer_ctx *ctx, int level,
             const uint8_t *s, size_t n, glm_tokenizer_ids *out, glm_err *err)
{
    const tok_trie *t = level == 0 ? &tok->trie_raw : &tok->trie_norm;
    size_t i = 0, gap = 0, mlen;
    int32_t id = -1;

    if (t->n_tokens == 0) {
        return next_level(tok, ctx, level, s, n, out, err);
    }
    while (i < n) {
        if ((t->first[s[i] >> 3] & (1u << (s[i] & 7))) == 0) {
            i++;
            continue;
        }
        mlen = trie_longest(t, s + i, n - i, &id);
        if (mlen == 0) {
            i++;
            continue;
        }
        if (gap < i && next_level(tok, ctx, level, s + gap, i - gap, out, err) != 0) {
            return -1;
        }
        if (glm_tokenizer_ids_push(out, id, err) != 0) {
            return -1;
        }
        i += mlen;
        gap = i;
    }
    if (gap < n) {
        return next_level(tok, ctx, level, s + gap, n - gap, out, err);
    }
    return 0;
}

/*
 * HF's order (AddedVocabulary::extract_and_normalize): the raw text loses its
 * normalized=false added tokens (level 0); each stretch between them is
 * normalized on its own (so Prepend and Strip act on every stretch), loses
 * its normalized=true added tokens (level 1), and what is left goes to the
 * pre-tokenizer and BPE.
 */
static int
next_level(const glm_tokenizer *tok, glm_tokenizer_ctx *ctx, int level,
           const uint8_t *s, size_t n, glm_tokenizer_ids *out, glm_err *err)
{
    const uint8_t *t;
    size_t tn;

    if (level == 1) {
        return encode_stage(tok, ctx, 0, s, n, out, err);
    }
    if (tok->normalizer == NULL) {
        return encode_added(tok, ctx, 1, s, n, out, err);
    }
    if (glm_tok_normalize(tok->normalizer, &ctx->norm, s, n, &t, &tn, err) != 0) {
        return -1;
    }
    return tn > 0 ? encode_added(tok, ctx, 1, t, tn, out, err) : 0;
}

int
glm_tokenizer_encode(const glm_tokenizer *tok, glm_tokenizer_ctx *ctx, const char *text,
                     size_t len, glm_tokenizer_ids *out, glm_err *err)
{
    const uint8_t *s = (const uint8_t *) text;
    glm_tokenizer_ctx *own = NULL;
    size_t bad;
    int rc;

    if (len == 0) {
        return 0;
    }
    bad = glm_utf8_invalid_at(s, len);
    if (bad < len) {
        return glm_errf(err, "text is not valid UTF-8 (bad byte 0x%02x at offset %zu)",
                        s[bad], bad);
    }
    if (ctx != NULL && ctx->tok != tok) {
        return glm_errf(err, "tokenizer context belongs to another tokenizer");
    }
    if (ctx == NULL) {
        own = ctx_create(tok, 0, err);
        if (own == NULL) {
            return -1;
        }
        ctx = own;
    }
    /* room for one id per byte up front: BPE never makes more (byte
     * fallback may, and bpe_piece reserves for it) */
    rc = ids_reserve(out, len, err);
    if (rc == 0) {
        rc = encode_added(tok, ctx, 0, s, len, out, err);
    }
    glm_tokenizer_ctx_free(own);
    return rc;
}


int
glm_tokenizer_normalize(const glm_tokenizer *tok, glm_tokenizer_ctx *ctx, const char *text,
                        size_t len, glm_tokenizer_buf *out, glm_err *err)
{
    const uint8_t *s = (const uint8_t *) text, *t = s;
    glm_tokenizer_ctx *own = NULL;
    size_t bad, tn = len;
    int rc = 0;

    bad = glm_utf8_invalid_at(s, len);
    if (bad < len) {
        return glm_errf(err, "text is not valid UTF-8 (bad byte 0x%02x at offset %zu)",
                        s[bad], bad);
    }
    if (ctx != NULL && ctx->tok != tok) {
        return glm_errf(err, "tokenizer context belongs to another tokenizer");
    }
    if (tok->normalizer != NULL) {
        if (ctx == NULL && (ctx = own = ctx_create(tok, 0, err)) == NULL) {
            return -1;
        }
        rc = glm_tok_normalize(tok->normalizer, &ctx->norm, s, len, &t, &tn, err);
    }
    if (rc == 0) {
        rc = glm_tokenizer_buf_append(out, t, tn, err);
    }
    glm_tokenizer_ctx_free(own);
    return rc;
}


/* ------------------------------------------------------------------------ */
/* decode */

static const char tok_fffd[3] = { (char) 0xef, (char) 0xbf, (char) 0xbd };

static inline void
detok_reset(glm_detok *d)
{
    d->need = 0;
    d->npend = 0;
    d->lower = 0x80;
    d->upper = 0xbf;
}

void
glm_detok_init(glm_detok *d, const glm_tokenizer *tok, int skip_special)
{
    d->tok = tok;
    d->skip_special = skip_special;
    detok_reset(d);
}

/* The WHATWG UTF-8 decoder over p[0..n), writing into out (room reserved
 * by the caller).  A byte that breaks a sequence ends it with one U+FFFD and
 * is then looked at again as a fresh start. */
static void
detok_bytes(glm_detok *d, const uint8_t *p, size_t n, glm_tokenizer_buf *out)
{
    char *o = out->data + out->len;
    size_t i = 0;
    uint8_t b;

    while (i < n) {
        b = p[i];
        if (d->need == 0) {
            if (b < 0x80) {
                *o++ = (char) b;
            } else if (b >= 0xc2 && b <= 0xdf) {
                d->need = 1;
                d->pend[d->npend++] = b;
            } else if (b >= 0xe0 && b <= 0xef) {
                d->lower = b == 0xe0 ? 0xa0 : 0x80;
                d->upper = b == 0xed ? 0x9f : 0xbf;
                d->need = 2;
                d->pend[d->npend++] = b;
            } else if (b >= 0xf0 && b <= 0xf4) {
                d->lower = b == 0xf0 ? 0x90 : 0x80;
                d->upper = b == 0xf4 ? 0x8f : 0xbf;
                d->need = 3;
                d->pend[d->npend++] = b;
            } else {
                memcpy(o, tok_fffd, 3);
                o += 3;
            }
            i++;
            continue;
        }
        if (b < d->lower || b > d->upper) {
            memcpy(o, tok_fffd, 3);
            o += 3;
            detok_reset(d);
            continue;           /* b again, as a start byte */
        }
        d->lower = 0x80;
        d->upper = 0xbf;
        d->pend[d->npend++] = b;
        if (--d->need == 0) {
            memcpy(o, d->pend, (size_t) d->npend);
            o += d->npend;
            d->npend = 0;
        }
        i++;
    }
    out->len = (size_t) (o - out->data);
}

int
glm_detok_push(glm_detok *d, int32_t id, glm_tokenizer_buf *out, glm_err *err)
{
    const glm_tokenizer *tok = d->tok;
    uint8_t f;
    uint32_t n;

    if (id < 0 || id >= tok->n_ids) {
        return 0;
    }
    f = tok->tok_flags[id];
    if ((f & TOK_FLAG_PRESENT) == 0 || (d->skip_special && (f & TOK_FLAG_SPECIAL))) {
        return 0;
    }
    n = tok->tok_len[id];
    /* worst case 6 bytes out per byte in: U+FFFD for a broken sequence, then
     * U+FFFD again for the byte that broke it */
    if (glm_tokenizer_buf_reserve(out, (size_t) n * 6 + 8, err) != 0) {
        return -1;
    }
    detok_bytes(d, tok->tok_bytes + tok->tok_off[id], n, out);
    return 0;
}

int
glm_detok_flush(glm_detok *d, glm_tokenizer_buf *out, glm_err *err)
{
    if (d->need != 0) {
        if (glm_tokenizer_buf_append(out, tok_fffd, 3, err) != 0) {
            return -1;
        }
    }
    detok_reset(d);
    return 0;
}

int
glm_tokenizer_decode(const glm_tokenizer *tok, const int32_t *ids, size_t n,
                     int skip_special, glm_tokenizer_buf *out, glm_err *err)
{
    glm_detok d;
    size_t i;

    glm_detok_init(&d, tok, skip_special);
    for (i = 0; i < n; i++) {
        if (glm_detok_push(&d, ids[i], out, err) != 0) {
            return -1;
        }
    }
    return glm_detok_flush(&d, out, err);
}


/* ------------------------------------------------------------------------ */
/* accessors */

int32_t
glm_tokenizer_token_id(const glm_tokenizer *tok, const char *token)
{
    size_t n = strlen(token);
    int32_t id = strmap_find(&tok->added, token, n);

    return id >= 0 ? id : strmap_find(&tok->vocab, token, n);
}

int32_t
glm_tokenizer_vocab_size(const glm_tokenizer *tok)
{
    return tok->n_ids;
}

int
glm_tokenizer_is_special(const glm_tokenizer *tok, int32_t id)
{
    return id >= 0 && id < tok->n_ids && (tok->tok_flags[id] & TOK_FLAG_SPECIAL) != 0;
}

const uint8_t *
glm_tokenizer_token_bytes(const glm_tokenizer *tok, int32_t id, size_t *len)
{
    if (id < 0 || id >= tok->n_ids || (tok->tok_flags[id] & TOK_FLAG_PRESENT) == 0) {
        *len = 0;
        return NULL;
    }
    *len = tok->tok_len[id];
    return tok->tok_bytes + tok->tok_off[id];
}
