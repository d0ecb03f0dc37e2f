/*
 * openai.h: what the OpenAI layer's files share.  openai.c holds the chat
 * completions, the other ring ops and everything a generating request
 * goes through whatever its endpoint (sampling parameters, admission, the
 * per-token path, stop strings, usage); completions.c the legacy
 * /v1/completions (prompts as text or ids, plain text out, the legacy
 * logprobs); request_fields.c the vLLM request fields refused with a 400.
 * server.h declares what the rest of the engine calls.
 */
#ifndef GLM_OPENAI_H
#define GLM_OPENAI_H

#include "server.h"

/* ---- openai.c ------------------------------------------------------------- */

void glm_req_head(glm_req *req, uint32_t status, uint32_t ct);
void glm_req_end(glm_req *req);
void glm_req_json(glm_req *req, int status, const glm_str *body);
/* ids as a JSON list: [1,2,3] */
void glm_ids_json(glm_str *s, const int32_t *ids, int n);

/* A request field; JSON null counts as absent, as OpenAI's optional fields. */
yajl_val glm_req_field(yajl_val obj, const char *key);
/* Optional typed fields: 0 absent, 1 read into *out, -1 after queueing the
 * 400 (wrong type, out of [lo, hi]). */
int glm_req_num(glm_req *req, yajl_val root, const char *key, double lo, double hi,
    double *out);
int glm_req_int(glm_req *req, yajl_val root, const char *key, long lo, long hi, long *out);
int glm_req_bool(glm_req *req, yajl_val root, const char *key, int *out);

/* The response id: prefix + the X-Request-Id header, else the body's
 * request_id, else 32 random hex digits (vLLM's _base_request_id). */
void glm_req_make_id(glm_req *req, yajl_val root, const char *prefix);

/* stream, stream_options, n (1..max_n), model, created, id: what every
 * generating request reads first.  -1 after queueing the error. */
int glm_req_common(glm_server *srv, glm_req *req, yajl_val root, const char *id_prefix);

/*
 * The sampling parameters and the fields every generating endpoint shares
 * (penalties, seed, stop, stop_token_ids, logit_bias, allowed_token_ids,
 * bad_words, ignore_eos, skip_special_tokens, prompt_logprobs, cache_salt,
 * return_token_ids, ...); chat's logprobs/top_logprobs too (completions
 * reads its integer logprobs itself).  p's arrays belong to the caller
 * even on error.  -1 after queueing the 400.
 */
int glm_req_params(glm_server *srv, glm_req *req, yajl_val root, glm_seq_params *p,
    uint64_t *seed, int *has_seed);

/* truncate_prompt_tokens and truncation_side on one prompt's ids (see
 * openai.c); -1 after queueing the 400. */
int glm_req_truncate(glm_server *srv, glm_req *req, yajl_val root, glm_tokenizer_ids *ids,
    int has_media, const char *max_param);

/* A logprobs count field as vLLM checks it: an integer >= 0, or -1 for
 * the whole vocabulary (then its size).  0 absent, 1 *out set, -1 after
 * the 400.  glm_logprob_max: the --max-logprobs check (20), -1 after the
 * 400 ("Requested <what> logprobs of N, ..."). */
int glm_logprob_count(glm_server *srv, glm_req *req, yajl_val root, const char *key,
    int *out);
int glm_logprob_max(glm_req *req, const char *key, const char *what, int n);

/*
 * Length checks, then n_per_prompt sequences for each prompt into the
 * scheduler (choice index prompt * n_per_prompt + i).  mm: the one chat
 * prompt's images and videos, or NULL.  Takes over params' arrays.
 */
void glm_req_admit(glm_server *srv, glm_req *req, const glm_tokenizer_ids *prompts,
    int n_prompts, glm_mm_prompt *mm, glm_seq_params *params, uint64_t seed, int has_seed);

/* A token's text as vLLM shows it in logprobs: decode([id]) keeping special
 * tokens, or "token_id:N" (as_id: return_tokens_as_token_ids), as JSON. */
void glm_token_text_json(glm_server *srv, glm_str *s, int32_t id, int as_id);

/* vLLM's prompt_logprobs of a choice: null for the first token, then per
 * token a map of ids to {"logprob", "rank", "decoded_token"}: the prompt
 * token first, then the most likely ones (an id already there is not
 * repeated); null when they were not computed. */
void glm_prompt_logprobs_json(glm_server *srv, const glm_choice *c, glm_str *s);

/* "usage": the counts of one choice so far (continuous_usage_stats);
 * before: for a chunk sent ahead of its tokens (the role chunk, echo) */
void glm_req_chunk_usage(const glm_req *req, const glm_choice *c, glm_str *s, int chat,
    int before);

/* ---- completions.c ---------------------------------------------------------- */

/* POST /v1/completions on a parsed body (intake). */
void glm_completions(glm_server *srv, glm_req *req, yajl_val root);
/* The loop's half: admission of the prompts kept by glm_completions. */
void glm_completions_admit(glm_server *srv, glm_req *req);
/* A sampled token's text (skip_special_tokens as asked), appended to text. */
void glm_cmpl_decode(glm_req *req, glm_choice *c, int32_t token, glm_str *text);
void glm_cmpl_decode_flush(glm_choice *c, glm_str *text);
/* Keeps a sampled token's logprobs for the legacy logprobs object. */
void glm_cmpl_keep_logprob(glm_choice *c, const glm_sampled *sm);
/* Streaming: the chunk for what choice c has released since the last one
 * (held text up to n), final with its finish_reason. */
void glm_cmpl_chunk(glm_req *req, glm_choice *c, int index, const char *text, size_t n,
    int final);
/* Not streaming: text released for the body. */
void glm_cmpl_text(glm_choice *c, const char *text, size_t n);
/* Every choice finished: the JSON body, or the usage chunk and [DONE]. */
void glm_cmpl_final_body(glm_req *req);
void glm_cmpl_stream_end(glm_req *req);

/* ---- request_fields.c --------------------------------------------------------- */

/*
 * The fields vLLM refuses, or that the server does not implement and so
 * refuses rather than ignore, for op (GLM_OP_CHAT or GLM_OP_COMPLETIONS):
 * -1 after queueing the 400 with vLLM's message where vLLM has one.
 */
int glm_request_fields_check(glm_server *srv, glm_req *req, yajl_val root, uint32_t op);
/* A request's chat_template (or chat_template_kwargs.chat_template): vLLM's
 * 400 unless --trust-request-chat-template; -1 after queueing it. */
int glm_request_template_check(glm_server *srv, glm_req *req, yajl_val root);

#endif
