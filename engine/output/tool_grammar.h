/*
 * tool_grammar.h: constrained decoding of tool calls in GLM's own XML syntax
 * (SERVING-API.md 4.4: vLLM stopped enforcing tool_choice; we enforce it).
 *
 * The language, per tool_choice (ws = whitespace, at most 4 bytes a run;
 * GLM writes one "\n" there):
 *
 *   output   := [ws] ["<think>" REASONING ("</think>" | CALL…)] ws BODY EOS
 *   none     :  BODY = free text; the <tool_call> token is banned
 *   auto     :  BODY = free text [CALLS]      (calls end the turn)
 *   required :  BODY = CALLS                  (no text; one call when
 *   named    :  BODY = one CALL of that tool   parallel_tool_calls is false)
 *   CALLS    := CALL (ws CALL)* ws
 *   CALL     := "<tool_call>" NAME (ws | ε) ( ws "<arg_key>" KEY "</arg_key>"
 *               ws "<arg_value>" VALUE "</arg_value>" )* ws "</tool_call>"
 *
 * NAME is one of the tools' names exactly.  KEY is a declared property of
 * the tool's parameters not yet written (all required ones before
 * </tool_call>), or, for a schema without properties, any text.  VALUE is
 * typed by the key's schema: when the schema accepts a string, any text
 * (UTF-8) not containing a closing tag, within minLength/maxLength, or
 * exactly one enum value; otherwise one JSON value of the schema (objects
 * with their declared keys, required ones included, each once; arrays of
 * items within minItems/maxItems; numbers with at most 16 integer and 16
 * fraction digits; enum/const literally; anyOf resolved by the value's first
 * byte; nesting at most 16 deep; whitespace between JSON tokens at most 16
 * bytes a run).  REASONING and free text must not spell a tag the output
 * parser would act on there ("</think>", "<tool_call>"), and values must not
 * spell "</arg_value>" or "</tool_call>": the parser (glm_output.c) reads
 * text, so what the grammar accepts is exactly what it parses.
 *
 * Tags, EOS and the box markers are matched as their single added tokens;
 * every other token by its bytes.  Other special tokens are never allowed.
 * Thinking: with the prompt letting the model think, "<think>" may open the
 * output and free text runs until "</think>"; a "<tool_call>" token inside
 * thinking closes it implicitly (as the parser does).  think_budget (vLLM's
 * thinking_token_budget) forces "</think>" after that many reasoning tokens.
 * After the last call only whitespace and EOS (<|observation|>, …) remain.
 *
 * Structured outputs (structured.h: a JSON schema, or an automaton for a
 * regex, choice or grammar) constrain the content, with tool_choice none or
 * auto (a forced call is the reply, as vLLM):
 *
 *   output := [ws] ["<think>" REASONING "</think>"] (STRUCT | CALLS) EOS
 *
 * STRUCT starts right after "</think>" (or at the start: leading whitespace
 * is the constraint's, but "<think>" may still follow up to 4 bytes of it)
 * and is exactly the constraint's language, so the parser's content is a
 * full match.  JSON is the values' grammar above (whitespace runs at most
 * 16 bytes, or none with disable_any_whitespace); a regex, choice or
 * grammar walks the automaton byte by byte.  With auto, calls may open the
 * content instead (after whitespace only).  The content must not spell
 * "<tool_call>" when calls are possible, nor open with a spelled "<think>".
 * Where text may follow (auto, none), whitespace past the cap at the start
 * is simply text.
 *
 * Objects and their lifetimes:
 *   glm_tg_vocab  per tokenizer, built once at start-up, read-only after;
 *   glm_tg        per request: the compiled tools and a cache of masks keyed
 *                 by grammar state, shared by the request's choices;
 *   glm_tg_state  per sequence: the grammar state after the tokens so far.
 * One thread at a time per glm_tg (the scheduler thread).
 *
 * Mask cost (the per-step bound): a mask is a function of the grammar state
 * only, so it is computed once per distinct state and cached per request
 * (allow-list, deny-list or bitset, whichever is smallest; at most 8 MB,
 * then the cache starts over); applying a cached mask costs O(k) for a
 * deny-list of k ids and one pass over the logits otherwise.  Computing
 * one walks the tokens' byte strings from the state:
 *   - free-text states (reasoning, content, string values, JSON string
 *     interiors) take a precomputed bitset of the tokens that cannot change
 *     the state's structure (no '<', for strings complete UTF-8 and no '"',
 *     '\\' or control bytes; under maxLength, the safe tokens short enough,
 *     from a by-length index) and walk only the others (tokens holding '<',
 *     '"', '\\' or partial UTF-8: a few percent of a vocabulary);
 *   - every other state walks the tokens sorted by bytes, sharing prefixes
 *     and skipping every token under a dead prefix at once (a first-byte
 *     table, else one binary search), so the work is bounded by the number
 *     of viable token prefixes (small: digits, names, whitespace, tags).
 *   - an automaton state walks the sorted tokens too: the work is the
 *     number of token prefixes the automaton keeps alive from that state
 *     (all of them for ".*", a handful for "[0-9]"), once per state.
 * semantics_check measures it on a synthetic 151,552-id vocabulary: about
 * 45 us to compute a mask on average (worst ~250 us), ~50 us to apply a
 * cached one, ~80 us a step over a request's first pass.
 */
#ifndef GLM_TOOL_GRAMMAR_H
#define GLM_TOOL_GRAMMAR_H

#include <stddef.h>
#include <stdint.h>

#include "json_schema.h"
#include "structured.h"
#include "text/tokenizer.h"
#include "util/util.h"

typedef enum {
    GLM_TOOL_CHOICE_NONE = 0,
    GLM_TOOL_CHOICE_AUTO,
    GLM_TOOL_CHOICE_REQUIRED,
    GLM_TOOL_CHOICE_NAMED,
} glm_tool_choice;

typedef struct {
    glm_tool_choice choice;
    int             named;          /* tool index for GLM_TOOL_CHOICE_NAMED */
    int             parallel;       /* parallel_tool_calls (default 1) */
    int             thinking;       /* the prompt lets the model open <think> */
    int             think_budget;   /* -1: none */
    const glm_so   *so;             /* structured output; NULL: none (must outlive
                                     * the grammar) */
} glm_tg_opts;

typedef struct glm_tg_vocab glm_tg_vocab;
typedef struct glm_tg glm_tg;
typedef struct glm_tg_state glm_tg_state;

/* The token tables for a tokenizer: n_logits is the model's logits width
 * (ids at or above the tokenizer's size are never allowed); eos the ids that
 * end a turn (generation_config's eos_token_id).  NULL with err when the
 * tokenizer lacks GLM's tag tokens (<think> … </arg_value>) or n_eos is 0. */
glm_tg_vocab *glm_tg_vocab_new(const glm_tokenizer *tok, int32_t n_logits,
                               const int32_t *eos, int n_eos, glm_err *err);

/* The same from raw token byte strings (benchmarks: a synthetic vocabulary).
 * special[i] nonzero marks a special added token; tag, box and EOS tokens
 * are found by their text among the special ones. */
glm_tg_vocab *glm_tg_vocab_from_bytes(int32_t n_tokens, const uint8_t *const *bytes,
                                      const size_t *lens, const uint8_t *special,
                                      int32_t n_logits, const int32_t *eos, int n_eos,
                                      glm_err *err);
void glm_tg_vocab_free(glm_tg_vocab *v);

/* The grammar for one request.  tools must outlive it.  NULL with err when
 * the options ask for a call and there are no tools, or the named index is
 * out of range. */
glm_tg *glm_tg_new(const glm_tg_vocab *v, const glm_tools *tools, const glm_tg_opts *o,
                   glm_err *err);
void glm_tg_free(glm_tg *g);

/* A sequence's state at the start of its output; NULL when out of memory. */
glm_tg_state *glm_tg_state_new(glm_tg *g);
void glm_tg_state_free(glm_tg_state *s);
/* A copy of s (for tests and look-ahead); NULL when out of memory. */
glm_tg_state *glm_tg_state_copy(const glm_tg_state *s);

/* Sets logits[i] = -inf for every id the grammar does not allow next
 * (logits has n_logits entries).  Returns how many ids stay allowed (never
 * 0: a finished or broken state allows EOS). */
int glm_tg_mask(glm_tg_state *s, float *logits);

/* The same as a bitmask for the sampling op: clears bit id % 32 of
 * words[id / 32] for every id the grammar does not allow next (words has
 * (n_logits + 31) / 32 entries; bits already clear stay clear). */
int glm_tg_mask_bits(glm_tg_state *s, uint32_t *words);

/* Consumes the sampled token.  0, or -1 when the grammar did not allow it
 * (the state then allows only EOS, so the turn ends). */
int glm_tg_advance(glm_tg_state *s, int32_t token);

/* The allowed set as a bitset of n_logits bits (for tests). */
void glm_tg_allowed(glm_tg_state *s, uint64_t *bits);

/* 1 once the state accepts EOS (a complete output so far). */
int glm_tg_can_end(const glm_tg_state *s);

/* Mask cache statistics since glm_tg_new (hits, misses), for benchmarks. */
void glm_tg_stats(const glm_tg *g, uint64_t *hits, uint64_t *misses);

#endif
