/*
 * tok_regex.h: the regexes of tokenizer.json (Split pre-tokenizers, Replace
 * normalizers) as Hugging Face tokenizers runs them, on PCRE2.
 *
 * HF compiles these patterns with Oniguruma and walks them with the onig
 * crate's find_iter; here they are rewritten into PCRE2 syntax with the same
 * meaning (or refused, naming what cannot be carried over) and walked by
 * glm_tok_regex_next, which keeps find_iter's rule for empty matches.
 *
 * A compiled glm_tok_regex is read-only and shared between threads; the
 * match data and match context are the calling thread's.
 */
#ifndef GLM_TOK_REGEX_H
#define GLM_TOK_REGEX_H

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif

#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "text/tokenizer.h"

typedef struct {
    pcre2_code *re;
    int jit;                    /* JIT-compiled (else the interpreter runs) */
    uint32_t ovec_pairs;        /* capture groups + 1: the match data it needs */
} glm_tok_regex;

/* Where a find_iter walk stands; glm_tok_regex_iter_init before the first
 * glm_tok_regex_next. */
typedef struct {
    size_t start;
    size_t last_match_end;
} glm_tok_regex_iter;

/* Compiles an Oniguruma pattern as HF writes it in tokenizer.json.  -1 with
 * err (no field prefix) when it uses syntax that is refused or PCRE2 rejects
 * the rewritten pattern. */
int glm_tok_regex_compile(glm_tok_regex *rx, const char *onig_pattern, glm_err *err);

/* Compiles a pattern that matches the string s literally (HF's Replace with
 * a {"String": ...} pattern is regex::escape(s) compiled by Oniguruma). */
int glm_tok_regex_compile_literal(glm_tok_regex *rx, const char *s, glm_err *err);

void glm_tok_regex_free(glm_tok_regex *rx);

static inline void
glm_tok_regex_iter_init(glm_tok_regex_iter *it)
{
    it->start = 0;
    it->last_match_end = SIZE_MAX;
}

/*
 * The next match of rx in s[0..n) (valid UTF-8), as the onig crate's
 * find_iter gives it: an empty match right where the previous match ended is
 * skipped and the search moves on one character.  1 with [*ms, *me) set, 0
 * when there are no more, -1 with err when the regex engine fails.
 */
int glm_tok_regex_next(const glm_tok_regex *rx, pcre2_match_data *md,
                       pcre2_match_context *mctx, const uint8_t *s, size_t n,
                       glm_tok_regex_iter *it, size_t *ms, size_t *me, glm_err *err);

#endif
