/*
 * byte_dfa.h: regular languages over Unicode text, compiled to a
 * deterministic automaton over UTF-8 bytes, for constrained decoding
 * (structured outputs: regex, choice and regular EBNF grammars; see
 * regex.h, ebnf.h and tool_grammar.h, which walks tokens' bytes through it).
 *
 * A language is first written as a small tree (glm_rx): classes of code
 * points, concatenation, alternation and bounded or unbounded repetition.
 * The front ends (regex.c, ebnf.c, a list of choices) build such trees; this
 * file owns them and compiles them:
 *
 *   tree -> NFA over bytes (Thompson; a class of code points becomes the
 *           alternation of its UTF-8 byte-range sequences, surrogates and
 *           code points above U+10FFFF excluded, so only valid UTF-8 is
 *           accepted) -> DFA by subset construction over byte classes
 *           (bytes no NFA edge tells apart share a column) -> states that
 *           cannot reach an accepting state are removed, so every live state
 *           can still finish: a constrained output is never led into a dead
 *           end.
 *
 * Limits, each a refusal with a message rather than a slow request:
 * repetition counts up to GLM_RX_MAX_REPEAT, at most GLM_DFA_MAX_NFA NFA
 * states and GLM_DFA_MAX_STATES DFA states, and GLM_DFA_MAX_WORK NFA states
 * visited while building (a request's pattern cannot hold an intake thread
 * for long: about a second at worst).
 *
 * Cost: glm_dfa_next is one table read.  The table is n_states x n_classes
 * int32 (at most a few MB), built once per request on the
 * intake thread that parses it.
 */
#ifndef GLM_BYTE_DFA_H
#define GLM_BYTE_DFA_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

#define GLM_RX_MAX_REPEAT   1000
#define GLM_DFA_MAX_NFA     200000
#define GLM_DFA_MAX_STATES  40000
#define GLM_DFA_MAX_WORK    50000000   /* NFA states visited while building */

enum {
    GLM_RX_CLASS,      /* one code point from ranges */
    GLM_RX_CAT,        /* kids in sequence (none: the empty string) */
    GLM_RX_ALT,        /* one of the kids (none: nothing matches) */
    GLM_RX_REPEAT,     /* kids[0] min..max times (max -1: unbounded) */
};

typedef struct glm_rx glm_rx;

struct glm_rx {
    int        kind;
    uint32_t  *ranges;             /* CLASS: n_ranges pairs lo, hi (inclusive) */
    int        n_ranges;
    glm_rx   **kids;
    int        n_kids, cap_kids;
    int        min, max;           /* REPEAT */
};

/* Constructors; NULL when out of memory.  glm_rx_add takes kid over (and
 * frees it on failure). */
glm_rx *glm_rx_new(int kind);
int glm_rx_add(glm_rx *parent, glm_rx *kid);
/* A class from ranges (pairs), or one code point, or a UTF-8 string as a
 * sequence of code points (n bytes; NULL for invalid UTF-8). */
glm_rx *glm_rx_class(const uint32_t *ranges, int n_pairs);
glm_rx *glm_rx_char(uint32_t cp);
glm_rx *glm_rx_string(const char *s, size_t n);
glm_rx *glm_rx_repeat(glm_rx *kid, int min, int max);
/* Adds [lo, hi] to a class. */
int glm_rx_class_add(glm_rx *cls, uint32_t lo, uint32_t hi);
/* Sorts and merges a class's ranges; with negate, the complement within
 * U+0000..U+10FFFF. */
int glm_rx_class_finish(glm_rx *cls, int negate);
glm_rx *glm_rx_copy(const glm_rx *rx);
void glm_rx_free(glm_rx *rx);

typedef struct {
    int32_t    n_states;           /* state 0 is the start */
    int32_t    n_classes;
    uint8_t    cls[256];           /* byte -> column */
    int32_t   *trans;              /* [n_states * n_classes]: next state, -1 dead */
    uint8_t   *accept;             /* [n_states] */
} glm_dfa;

/* NULL with err (too large, matches nothing, out of memory). */
glm_dfa *glm_dfa_compile(const glm_rx *rx, glm_err *err);
void glm_dfa_free(glm_dfa *d);

static inline int32_t
glm_dfa_next(const glm_dfa *d, int32_t state, unsigned byte)
{
    return d->trans[(size_t) state * (size_t) d->n_classes + d->cls[byte & 0xff]];
}

/* 1 when the whole of p[0..n) is in the language (tests). */
int glm_dfa_match(const glm_dfa *d, const char *p, size_t n);

#endif
