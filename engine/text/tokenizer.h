/*
 * tokenizer.h: GLM-4.5's tokenizer (a Hugging Face `tokenizer.json`, byte-level
 * BPE) in C, reproducing Hugging Face `tokenizers` exactly:
 *
 *   encode(text)  == Tokenizer.encode(text, add_special_tokens=False).ids
 *   decode(ids)   == Tokenizer.decode(ids, skip_special_tokens=...)
 *
 * Every behaviour is read from the file.  What this code does not implement
 * (normalizers other than NFC/NFD/NFKC/NFKD/Lowercase/Strip/Replace/Prepend
 * and Sequences of them, other pre-tokenizers or models, dropout, an unk
 * token standing in for a byte, lstrip/rstrip/single_word added tokens, a
 * post-processor that adds tokens, truncation, padding...) is refused at load
 * time with a one-line error that names the field and type, instead of being
 * silently approximated.
 *
 * Encoding, in Hugging Face's order:
 *   1. added tokens with normalized=false are cut out of the text (leftmost,
 *      then longest match); each stretch between them goes through the
 *      normalizer (tok_normalizer.h), and the added tokens with
 *      normalized=true (as the normalizer leaves their content) are cut out
 *      of the normalized text;
 *   2. each remaining segment is split by the pre-tokenizer's regexes
 *      (Split "Isolated": every match and every gap between matches is a
 *      piece); the Oniguruma patterns are rewritten for PCRE2 at load time;
 *   3. each piece's bytes go through BPE (lowest-rank adjacent pair first,
 *      leftmost among equals).  With byte_fallback, a byte whose byte-level
 *      token is missing starts as the <0xXX> tokens of that token's UTF-8,
 *      or is dropped when they are missing too, as HF does; ignore_merges
 *      takes a piece that is a whole vocab token as that token.
 *
 * Threads: a loaded glm_tokenizer is read-only; any number of threads may use
 * it at once.  Mutable encode state (regex match data, BPE scratch, the
 * piece -> ids cache) lives in a caller-held glm_tokenizer_ctx: one per
 * thread, never shared between concurrent calls.
 *
 * Ids are int32_t; -1 means "no such token".
 */
#ifndef GLM_TOKENIZER_H
#define GLM_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

typedef struct glm_tokenizer glm_tokenizer;
typedef struct glm_tokenizer_ctx glm_tokenizer_ctx;

/* A growable vector of token ids.  Zero-initialise it ({0}); free with
 * glm_tokenizer_ids_free().  Functions append to it. */
typedef struct {
    int32_t *ids;
    size_t len;
    size_t cap;
} glm_tokenizer_ids;

/* A growable byte buffer (decoded text; not NUL-terminated).  Zero-initialise
 * it ({0}); free with glm_tokenizer_buf_free().  Functions append to it. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} glm_tokenizer_buf;

/* Appends one id; -1 (err filled) when out of memory. */
int glm_tokenizer_ids_push(glm_tokenizer_ids *v, int32_t id, glm_err *err);
void glm_tokenizer_ids_free(glm_tokenizer_ids *v);
/* Appends n bytes; -1 (err filled) when out of memory. */
int glm_tokenizer_buf_append(glm_tokenizer_buf *b, const void *data, size_t n,
                             glm_err *err);
/* Makes room for extra more bytes; -1 (err filled) when out of memory. */
int glm_tokenizer_buf_reserve(glm_tokenizer_buf *b, size_t extra, glm_err *err);
void glm_tokenizer_buf_free(glm_tokenizer_buf *b);


/* Loads and checks a tokenizer.json.  NULL with err = "<path>: <field>: why"
 * when the file is unreadable, malformed, or asks for something this code
 * does not implement. */
glm_tokenizer *glm_tokenizer_load(const char *path, glm_err *err);
void glm_tokenizer_free(glm_tokenizer *tok);

/* Per-thread encode state: regex match data and JIT stack, BPE scratch and a
 * cache of piece -> ids (a few MB at most; reset when full).  Valid only for
 * the tokenizer it was made for; free it before the tokenizer. */
glm_tokenizer_ctx *glm_tokenizer_ctx_new(const glm_tokenizer *tok, glm_err *err);
void glm_tokenizer_ctx_free(glm_tokenizer_ctx *ctx);

/*
 * Encodes len bytes of UTF-8 text (NULs allowed) and appends the ids to out,
 * like HF encode(text, add_special_tokens=False): added tokens in the text
 * (special or not) become their ids.
 * ctx: the calling thread's context, or NULL for a one-off call (a temporary
 * context is made and freed: correct but slower, no cache).
 * -1 with err filled when the text is not valid UTF-8 (byte offset given),
 * when ctx was made for another tokenizer, on a regex engine failure, or
 * when out of memory; out then holds whatever was appended before the
 * failure.
 */
int glm_tokenizer_encode(const glm_tokenizer *tok, glm_tokenizer_ctx *ctx,
                         const char *text, size_t len, glm_tokenizer_ids *out,
                         glm_err *err);

/*
 * Appends len bytes of UTF-8 text as the file's normalizer leaves them, like
 * HF Tokenizer.normalizer.normalize_str(text) (the text itself when the file
 * has none).  encode() runs the same normalizer, but on each stretch between
 * the normalized=false added tokens.  ctx as for encode; -1 with err when the
 * text is not valid UTF-8, on a regex failure or when out of memory.
 */
int glm_tokenizer_normalize(const glm_tokenizer *tok, glm_tokenizer_ctx *ctx,
                            const char *text, size_t len, glm_tokenizer_buf *out,
                            glm_err *err);

/*
 * Appends the text of n ids to out, like HF decode(ids, skip_special_tokens):
 * ids that name no token (negative, >= vocab size, holes) are skipped
 * silently; special added tokens are dropped when skip_special; the bytes are
 * the ByteLevel decoder's; invalid UTF-8 in the result becomes U+FFFD per
 * maximal subpart (Rust's String::from_utf8_lossy).  Output is valid UTF-8.
 * -1 only when out of memory.
 */
int glm_tokenizer_decode(const glm_tokenizer *tok, const int32_t *ids, size_t n,
                         int skip_special, glm_tokenizer_buf *out, glm_err *err);

/* The id of a token given by its tokenizer.json string (an added token's
 * content such as "<|user|>", or a vocab key in byte-level form such as
 * "Ġthe"), as HF token_to_id; -1 when there is none. */
int32_t glm_tokenizer_token_id(const glm_tokenizer *tok, const char *token);

/* Max id + 1 over the vocab and the added tokens (151365 for GLM-4.5; the
 * model's embedding is larger). */
int32_t glm_tokenizer_vocab_size(const glm_tokenizer *tok);

/* 1 when id is an added token marked special (dropped by skip_special). */
int glm_tokenizer_is_special(const glm_tokenizer *tok, int32_t id);

/* The bytes id decodes to (what decode() concatenates before the UTF-8
 * repair: may be a partial UTF-8 sequence), *len set; NULL when id names no
 * token.  Valid as long as the tokenizer. */
const uint8_t *glm_tokenizer_token_bytes(const glm_tokenizer *tok, int32_t id,
                                         size_t *len);


/*
 * Incremental detokenizer for streaming.  Push ids one at a time; each push
 * appends the text that is now final: never a partial UTF-8 sequence (an
 * incomplete trailing sequence, at most 3 bytes, is held until it completes
 * or proves invalid).  Everything appended by the pushes plus a final flush
 * is byte-for-byte glm_tokenizer_decode() of all the ids with the same
 * skip_special, U+FFFD placement included.  Plain struct, no allocation;
 * one per stream; flush leaves it ready for a new stream.
 */
typedef struct {
    const glm_tokenizer *tok;
    int skip_special;
    int need;               /* continuation bytes still expected */
    int npend;              /* bytes of the incomplete sequence held in pend */
    uint8_t lower, upper;   /* allowed range of the next continuation byte */
    uint8_t pend[4];
} glm_detok;

void glm_detok_init(glm_detok *d, const glm_tokenizer *tok, int skip_special);
/* -1 only when out of memory. */
int glm_detok_push(glm_detok *d, int32_t id, glm_tokenizer_buf *out, glm_err *err);
/* Ends the stream: a held incomplete sequence becomes U+FFFD.  -1 on OOM. */
int glm_detok_flush(glm_detok *d, glm_tokenizer_buf *out, glm_err *err);


/*
 * The tokenizer reference corpus (t/fixtures/tokenizer/tok_reference.jsonl),
 * shared by the bench command and the unit test: one JSON object per line,
 * {"text", "ids"} for encode cases (with "decoded" when decode(ids) is not
 * the text: a normalizer changed it), {"decode_ids", "skip_special", "text"}
 * for decode cases.  Parsed with yajl's event API, so texts may hold NULs.
 */
typedef struct {
    int has_text, has_ids, has_decode_ids, has_skip_special, has_decoded;
    int skip_special;
    glm_tokenizer_buf text;
    glm_tokenizer_buf decoded;
    glm_tokenizer_ids ids;
    glm_tokenizer_ids decode_ids;
} glm_tokenizer_ref;

/* Parses one line into ref (cleared first; reuses its buffers).  -1 with err
 * on malformed JSON. */
int glm_tokenizer_ref_parse(glm_tokenizer_ref *ref, const char *line, size_t len,
                            glm_err *err);
void glm_tokenizer_ref_free(glm_tokenizer_ref *ref);


/* CLI subcommands (argv[0] is the subcommand); return the exit code.
 *   tokenize --model DIR --text TEXT|- [--decode]
 *   bench-tokenizer --model DIR --corpus FILE [--seconds S] */
int glm_cmd_tokenize(int argc, char **argv);
int glm_cmd_bench_tokenizer(int argc, char **argv);

#endif
