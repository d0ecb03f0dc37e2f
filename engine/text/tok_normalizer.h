/*
 * tok_normalizer.h: tokenizer.json's "normalizer", as Hugging Face
 * tokenizers 0.23.3 applies it (Tokenizer.normalizer.normalize_str).
 *
 * Supported: NFC, NFD, NFKC, NFKD, Lowercase, Strip, Replace (a String or a
 * Regex pattern; the content is inserted literally, as 0.23.3 does), Prepend,
 * and a Sequence of these (nested Sequences flattened).  Anything else
 * (BertNormalizer, StripAccents, Precompiled, Nmt, ByteLevel...) is refused
 * at load naming its type and where it sits.
 *
 * The tokenizer runs it on each stretch of text between the added tokens
 * that match the raw text (normalized=false), as HF does, and on the content
 * of the normalized=true added tokens, which are then looked for in the
 * normalized text.
 */
#ifndef GLM_TOK_NORMALIZER_H
#define GLM_TOK_NORMALIZER_H

#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

#include "text/tok_regex.h"
#include "text/tokenizer.h"
#include "text/unicode_norm.h"

typedef struct glm_tok_normalizer glm_tok_normalizer;

/* Per-thread working memory of glm_tok_normalize.  Zero-initialise; md and
 * mctx are the caller's PCRE2 match data (sized for
 * glm_tok_normalizer_ovec_pairs) when the normalizer has a Replace, else
 * unused.  Free with glm_tok_norm_scratch_free (which leaves md, mctx). */
typedef struct {
    glm_tokenizer_buf buf[2];
    glm_uni_scratch uni;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
} glm_tok_norm_scratch;

/* Loads the "normalizer" value v (an object; the caller handles null).  NULL
 * with err = "normalizer...: why" when it is malformed or not supported. */
glm_tok_normalizer *glm_tok_normalizer_load(yajl_val v, glm_err *err);
void glm_tok_normalizer_free(glm_tok_normalizer *nz);

/* Match data pairs its Replace regexes need (0 when it has none). */
uint32_t glm_tok_normalizer_ovec_pairs(const glm_tok_normalizer *nz);

/*
 * Normalizes s[0..n) (valid UTF-8).  *out and *out_len get the result:
 * either a part of s itself (nothing changed, or only stripped) or text in
 * sc's buffers, valid until the next call with sc.  -1 with err when out of
 * memory or a regex fails.
 */
int glm_tok_normalize(const glm_tok_normalizer *nz, glm_tok_norm_scratch *sc,
                      const uint8_t *s, size_t n, const uint8_t **out, size_t *out_len,
                      glm_err *err);

void glm_tok_norm_scratch_free(glm_tok_norm_scratch *sc);

#endif
