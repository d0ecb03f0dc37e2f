/*
 * openai.c: the OpenAI-compatible side of the engine: a submitted request
 * body in, sequences into the scheduler, response bytes out (JSON bodies or
 * complete SSE events) in the shapes vLLM emits (SERVING-API.md sections
 * 2-3).  nginx only frames HTTP around what is produced here.
 */
#include "openai.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <yajl/yajl_parse.h>

#include "text/chat_template.h"
#include "util/json.h"

static const char *glm_engine_version = "0.1.0";

/* ---- output queue ---------------------------------------------------------- */

void
glm_req_queue(glm_req *req, uint16_t type, const void *p, size_t n)
{
    uint32_t len = (uint32_t) n;

    glm_str_add(&req->pending, &type, 2);
    glm_str_add(&req->pending, &len, 4);
    glm_str_add(&req->pending, p, n);
}

void
glm_req_head(glm_req *req, uint32_t status, uint32_t ct)
{
    glm_head h = { status, ct, status == 503 ? 1u : 0u, 0 };

    glm_req_queue(req, GLM_REC_HEAD, &h, sizeof(h));
}

void
glm_req_end(glm_req *req)
{
    glm_req_queue(req, GLM_REC_END, NULL, 0);
    req->done = 1;
}

void
glm_req_json(glm_req *req, int status, const glm_str *body)
{
    glm_req_head(req, (uint32_t) status, GLM_CT_JSON);
    glm_req_queue(req, GLM_REC_DATA, body->data, body->len);
    glm_req_end(req);
}

void
glm_req_error(glm_req *req, int status, const char *type, const char *param,
    const char *fmt, ...)
{
    glm_str msg = { 0 }, body = { 0 };
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    glm_str_reserve(&msg, (size_t) n);
    va_start(ap, fmt);
    vsnprintf(msg.data, (size_t) n + 1, fmt, ap);
    va_end(ap);
    msg.len = (size_t) n;

    glm_str_adds(&body, "{\"error\":{\"message\":");
    glm_json_str(&body, msg.data, msg.len);
    glm_str_adds(&body, ",\"type\":");
    glm_json_strz(&body, type);
    glm_str_adds(&body, ",\"param\":");
    if (param != NULL) {
        glm_json_strz(&body, param);
    } else {
        glm_str_adds(&body, "null");
    }
    glm_str_addf(&body, ",\"code\":%d}}", status);
    glm_req_json(req, status, &body);
    /* atomic: intake threads answer errors too */
    __atomic_fetch_add(&req->srv->metrics.requests_error, 1, __ATOMIC_RELAXED);
    glm_str_free(&msg);
    glm_str_free(&body);
}

void
glm_req_abort(glm_req *req)
{
    if (req->n > req->n_finished) {
        req->srv->metrics.requests_abort += (uint64_t) (req->n - req->n_finished);
    }
    glm_req_free(req);
}

void
glm_req_free(glm_req *req)
{
    int i;

    for (i = 0; req->choices != NULL && i < req->n; i++) {
        glm_choice *c = &req->choices[i];
        if (c->seq != NULL) {
            if (c->seq->state != GLM_SEQ_FINISHED) {
                glm_sched_remove(&req->srv->sched, c->seq);
            }
            glm_seq_free(c->seq);
        }
        glm_out_free(c->out);
        glm_tg_state_free(c->tgs);
        glm_str_free(&c->held);
        glm_str_free(&c->content);
        glm_str_free(&c->logprobs);
        glm_str_free(&c->stop_reason);
        free(c->out_lp);
        free(c->prompt_lp);
        free(c->prompt_rank);
    }
    for (i = 0; i < req->n_prompts; i++) {
        glm_tokenizer_ids_free(&req->prompts[i]);
        glm_str_free(&req->prompt_texts[i]);
    }
    free(req->prompts);
    free(req->prompt_texts);
    free(req->allowed);
    free(req->bad_words);
    free(req->bad_word_len);
    free(req->logprob_ids);
    free(req->cache_salt);
    free(req->header_id);
    glm_str_free(&req->echo_text);
    glm_str_free(&req->prompt_text);
    for (i = 0; i < req->n_stops; i++) {
        free(req->stops[i]);
    }
    free(req->choices);
    glm_tg_free(req->tg);
    glm_out_request_free(&req->out_rq);
    free(req->stop_ids);
    glm_tokenizer_ids_free(&req->intake_ids);
    glm_media_job_free(req->intake_media);
    glm_str_free(&req->body);
    glm_str_free(&req->pending);
    free(req->mparams.logit_bias);
    free(req->mparams.banned);
    free(req);
}

/* ---- request parsing helpers ---------------------------------------------- */

yajl_val
glm_req_field(yajl_val obj, const char *key)
{
    yajl_val v = glm_json_get(obj, key);

    return v != NULL && YAJL_IS_NULL(v) ? NULL : v;
}

int
glm_req_num(glm_req *req, yajl_val root, const char *key, double lo, double hi,
    double *out)
{
    yajl_val v = glm_req_field(root, key);

    if (v == NULL) {
        return 0;
    }
    if (!YAJL_IS_NUMBER(v) || !(YAJL_GET_DOUBLE(v) >= lo && YAJL_GET_DOUBLE(v) <= hi)) {
        glm_req_error(req, 400, "BadRequestError", key, "'%s' must be a number in"
                      " [%g, %g]", key, lo, hi);
        return -1;
    }
    *out = YAJL_GET_DOUBLE(v);
    return 1;
}

int
glm_req_int(glm_req *req, yajl_val root, const char *key, long lo, long hi, long *out)
{
    yajl_val v = glm_req_field(root, key);

    if (v == NULL) {
        return 0;
    }
    if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < lo || YAJL_GET_INTEGER(v) > hi) {
        glm_req_error(req, 400, "BadRequestError", key, "'%s' must be an integer in"
                      " [%ld, %ld]", key, lo, hi);
        return -1;
    }
    *out = (long) YAJL_GET_INTEGER(v);
    return 1;
}

int
glm_req_bool(glm_req *req, yajl_val root, const char *key, int *out)
{
    yajl_val v = glm_req_field(root, key);

    if (v == NULL) {
        return 0;
    }
    if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
        glm_req_error(req, 400, "BadRequestError", key, "'%s' must be true or false", key);
        return -1;
    }
    *out = YAJL_IS_TRUE(v);
    return 1;
}

void
glm_req_make_id(glm_req *req, yajl_val root, const char *prefix)
{
    static const char hex[] = "0123456789abcdef";
    yajl_val given = glm_req_field(root, "request_id");
    glm_rng rng;
    uint64_t a, b;
    int i, n;

    if (req->header_id != NULL) {
        snprintf(req->id, sizeof(req->id), "%s%s", prefix, req->header_id);
        return;
    }
    if (given != NULL && YAJL_IS_STRING(given)) {
        snprintf(req->id, sizeof(req->id), "%s%s", prefix, given->u.string);
        return;
    }
    glm_rng_seed(&rng, (uint64_t) (glm_now_seconds() * 1e9) ^ ((uint64_t) req->slot << 32)
                       ^ req->gen ^ (uint64_t) (uintptr_t) req);
    a = glm_rng_next(&rng);
    b = glm_rng_next(&rng);
    n = snprintf(req->id, sizeof(req->id), "%s", prefix);
    for (i = 0; i < 16; i++) {
        req->id[n + i] = hex[(a >> (4 * i)) & 15];
        req->id[n + 16 + i] = hex[(b >> (4 * i)) & 15];
    }
    req->id[n + 32] = '\0';
}

int
glm_req_common(glm_server *srv, glm_req *req, yajl_val root, const char *id_prefix)
{
    yajl_val v;
    long l;

    v = glm_req_field(root, "request_id");
    if (v != NULL && (!YAJL_IS_STRING(v) || strlen(v->u.string) > GLM_MAX_REQUEST_ID)) {
        glm_req_error(req, 400, "BadRequestError", "request_id", "'request_id' must be a"
                      " string of at most %d bytes", GLM_MAX_REQUEST_ID);
        return -1;
    }
    v = glm_req_field(root, "model");
    snprintf(req->model, sizeof(req->model), "%s",
             v != NULL && YAJL_IS_STRING(v) ? v->u.string : srv->o.names[0]);
    req->created = (int64_t) time(NULL);
    glm_req_make_id(req, root, id_prefix);
    if (glm_req_bool(req, root, "stream", &req->stream) < 0) {
        return -1;
    }
    v = glm_req_field(root, "stream_options");
    if (v != NULL) {
        yajl_val iu = glm_req_field(v, "include_usage");
        yajl_val cu = glm_req_field(v, "continuous_usage_stats");

        if (!req->stream) {
            glm_req_error(req, 400, "BadRequestError", "stream_options",
                          "Stream options can only be defined when `stream=True`.");
            return -1;
        }
        if (!YAJL_IS_OBJECT(v) || (iu != NULL && !YAJL_IS_TRUE(iu) && !YAJL_IS_FALSE(iu))
            || (cu != NULL && !YAJL_IS_TRUE(cu) && !YAJL_IS_FALSE(cu)))
        {
            glm_req_error(req, 400, "BadRequestError", "stream_options", "'stream_options'"
                          " must be {\"include_usage\": bool, \"continuous_usage_stats\":"
                          " bool}");
            return -1;
        }
        /* present object: include_usage defaults to true, and the running
         * usage comes only with it (vLLM's should_include_usage) */
        req->include_usage = iu == NULL || YAJL_IS_TRUE(iu);
        req->continuous_usage = req->include_usage && cu != NULL && YAJL_IS_TRUE(cu);
    }
    if (glm_req_int(req, root, "n", 1, 128, &l) < 0) {
        return -1;
    }
    req->n_per_prompt = glm_req_field(root, "n") ? (int) l : 1;
    req->n = req->n_per_prompt;
    return 0;
}

/*
 * The chat_template_kwargs under the request's own: the server's, and what
 * vLLM derives from reasoning_effort (the value itself, and thinking off
 * for "none": enable_thinking = effort != "none" unless the request's
 * kwargs set it).  A shallow object over values that live in the server's
 * and the request's trees; glm_kwargs_free frees only its arrays.
 */
static yajl_val
glm_kwargs_new(glm_server *srv, yajl_val root)
{
    static struct yajl_val_s yes = { yajl_t_true, { 0 } }, no = { yajl_t_false, { 0 } };
    yajl_val effort = glm_req_field(root, "reasoning_effort"), dk = srv->default_kwargs;
    yajl_val kw;
    size_t i, n = dk != NULL && YAJL_IS_OBJECT(dk) ? dk->u.object.len : 0, k = 0;

    if (effort == NULL || !YAJL_IS_STRING(effort)) {
        return srv->default_kwargs;
    }
    kw = calloc(1, sizeof(*kw));
    if (kw == NULL) {
        return srv->default_kwargs;
    }
    kw->type = yajl_t_object;
    kw->u.object.keys = calloc(n + 2, sizeof(char *));
    kw->u.object.values = calloc(n + 2, sizeof(yajl_val));
    if (kw->u.object.keys == NULL || kw->u.object.values == NULL) {
        free(kw->u.object.keys);
        free(kw->u.object.values);
        free(kw);
        return srv->default_kwargs;
    }
    kw->u.object.keys[k] = "reasoning_effort";
    kw->u.object.values[k++] = effort;
    kw->u.object.keys[k] = "enable_thinking";
    kw->u.object.values[k++] = strcmp(effort->u.string, "none") != 0 ? &yes : &no;
    for (i = 0; i < n; i++) {
        if (strcmp(dk->u.object.keys[i], "reasoning_effort") != 0
            && strcmp(dk->u.object.keys[i], "enable_thinking") != 0)
        {
            kw->u.object.keys[k] = dk->u.object.keys[i];
            kw->u.object.values[k++] = dk->u.object.values[i];
        }
    }
    kw->u.object.len = k;
    return kw;
}

static void
glm_kwargs_free(glm_server *srv, yajl_val kw)
{
    if (kw != NULL && kw != srv->default_kwargs) {
        free((void *) kw->u.object.keys);
        free(kw->u.object.values);
        free(kw);
    }
}

/*
 * truncate_prompt_tokens / truncation_side, as vLLM's TokenizeParams: keep
 * the last N ids (the first N with "right"); -1: max_model_len minus the
 * asked output.  max_param names the output field for the message.  A
 * prompt with images or videos is never cut (their tokens would be torn).
 * -1 after queueing the 400.
 */
int
glm_req_truncate(glm_server *srv, glm_req *req, yajl_val root, glm_tokenizer_ids *ids,
    int has_media, const char *max_param)
{
    yajl_val v = glm_req_field(root, "truncate_prompt_tokens");
    yajl_val side = glm_req_field(root, "truncation_side");
    long max_input = srv->o.max_model_len - req->asked_max_tokens, n;
    int right = 0;

    if (side != NULL) {
        if (!YAJL_IS_STRING(side)
            || (strcmp(side->u.string, "left") != 0 && strcmp(side->u.string, "right") != 0))
        {
            glm_req_error(req, 400, "BadRequestError", "truncation_side",
                          "truncation_side: Input should be 'left' or 'right'");
            return -1;
        }
        right = strcmp(side->u.string, "right") == 0;
    }
    if (v == NULL) {
        return 0;
    }
    if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < -1) {
        glm_req_error(req, 400, "BadRequestError", "truncate_prompt_tokens",
                      "'truncate_prompt_tokens' must be an integer >= -1");
        return -1;
    }
    n = (long) YAJL_GET_INTEGER(v);
    if (n > max_input) {
        glm_req_error(req, 400, "BadRequestError", "truncate_prompt_tokens",
                      "truncate_prompt_tokens=%ld cannot be greater than max_model_len -"
                      " %s = %ld. Please request a smaller truncation size.", n, max_param,
                      max_input);
        return -1;
    }
    if (n < 0) {
        n = max_input;
    }
    if ((size_t) n >= ids->len) {
        return 0;
    }
    if (has_media) {
        glm_req_error(req, 400, "BadRequestError", "truncate_prompt_tokens",
                      "truncate_prompt_tokens=%ld would cut a prompt of %zu tokens that"
                      " holds images or videos; this server does not cut those", n,
                      ids->len);
        return -1;
    }
    if (!right) {
        memmove(ids->ids, ids->ids + ids->len - (size_t) n, (size_t) n * sizeof(int32_t));
    }
    ids->len = (size_t) n;
    return 0;
}

/* The request's own template (--trust-request-chat-template), with the
 * special tokens of the server's; NULL after queueing the 400. */
static glm_chat_template *
glm_request_template(glm_server *srv, glm_req *req, yajl_val tpl)
{
    static const char *const special[] = {
        "bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
        "mask_token"
    };
    glm_chat_template *ct;
    glm_err err;
    size_t i;

    ct = glm_chat_template_from_source(tpl->u.string, strlen(tpl->u.string),
                                       "request chat_template", &err);
    if (ct == NULL) {
        glm_req_error(req, 400, "BadRequestError", "chat_template", "%s", err.msg);
        return NULL;
    }
    for (i = 0; i < sizeof(special) / sizeof(special[0]); i++) {
        const char *tok = glm_chat_template_special_token(srv->chat_template, special[i]);

        if (tok != NULL && glm_chat_template_set_special_token(ct, special[i], tok, &err) != 0) {
            glm_chat_template_free(ct);
            glm_req_error(req, 500, "InternalServerError", NULL, "%s", err.msg);
            return NULL;
        }
    }
    return ct;
}

/* Renders the chat request into prompt ids; -1 after queueing the error. */
static int
glm_prompt_ids(glm_server *srv, glm_req *req, yajl_val root, yajl_val kwargs,
    glm_tokenizer_ids *ids)
{
    glm_chat_template *own = NULL;
    yajl_val tpl = glm_req_field(root, "chat_template");
    glm_str prompt = { 0 };
    glm_err err;
    int rc;

    if (tpl != NULL && (own = glm_request_template(srv, req, tpl)) == NULL) {
        return -1;
    }
    rc = glm_chat_template_render_request(own != NULL ? own : srv->chat_template,
                                          req->body.data, req->body.len, kwargs,
                                          &prompt.data, &prompt.len, &err);
    glm_chat_template_free(own);
    if (rc != 0) {
        glm_req_error(req, 400, "BadRequestError", NULL, "%s", err.msg);
        return -1;
    }
    if (glm_tokenizer_encode(srv->tok, req->tctx, prompt.data ? prompt.data : "",
                             prompt.len, ids, &err) != 0)
    {
        glm_req_error(req, 400, "BadRequestError", "messages", "%s", err.msg);
        free(prompt.data);
        return -1;
    }
    if (req->return_prompt_text) {
        glm_str_add(&req->prompt_text, prompt.data, prompt.len);
    }
    free(prompt.data);
    return 0;
}

/* ---- chat completions: output ------------------------------------------------ */

static void
glm_chunk_begin(glm_req *req, glm_str *s)
{
    glm_str_adds(s, "data: {\"id\":");
    glm_json_strz(s, req->id);
    glm_str_addf(s, ",\"object\":\"chat.completion.chunk\",\"created\":%" PRId64 ",\"model\":",
                 req->created);
    glm_json_strz(s, req->model);
}

void
glm_req_chunk_usage(const glm_req *req, const glm_choice *c, glm_str *s, int chat,
    int before)
{
    int p = req->prompts != NULL ? (int) req->prompts[c->prompt].len : req->prompt_tokens;
    int n = before ? 0 : c->completion_tokens;

    if (!req->continuous_usage) {
        return;
    }
    glm_str_addf(s, ",\"usage\":{\"prompt_tokens\":%d,\"total_tokens\":%d,"
                 "\"completion_tokens\":%d", p, p + n, n);
    if (chat) {
        glm_str_addf(s, ",\"completion_tokens_details\":{\"reasoning_tokens\":%d}",
                     before ? 0 : glm_out_reasoning_tokens(c->out));
    }
    glm_str_adds(s, "}");
}

/* ids as a JSON list */
void
glm_ids_json(glm_str *s, const int32_t *ids, int n)
{
    int i;

    glm_str_adds(s, "[");
    for (i = 0; i < n; i++) {
        glm_str_addf(s, "%s%d", i ? "," : "", ids[i]);
    }
    glm_str_adds(s, "]");
}

/* The role chunk of a choice, and with echo the chunk of its echoed text. */
static void
glm_role_chunk(glm_req *req, glm_choice *c, int index, glm_str *s)
{
    glm_chunk_begin(req, s);
    glm_str_addf(s, ",\"choices\":[{\"index\":%d,\"delta\":{\"role\":\"assistant\","
                 "\"content\":\"\",\"reasoning_content\":null},\"logprobs\":null,"
                 "\"finish_reason\":null}],\"prompt_token_ids\":", index);
    if (req->return_token_ids) {
        glm_ids_json(s, c->seq->tokens, c->seq->n_prompt);
    } else {
        glm_str_adds(s, "null");
    }
    if (req->return_prompt_text) {
        glm_str_adds(s, ",\"prompt_text\":");
        glm_json_str(s, req->prompt_text.data ? req->prompt_text.data : "",
                     req->prompt_text.len);
    }
    glm_req_chunk_usage(req, c, s, 1, 1);
    glm_str_adds(s, "}\n\n");
    if (req->echo_text.len > 0) {
        glm_chunk_begin(req, s);
        glm_str_addf(s, ",\"choices\":[{\"index\":%d,\"delta\":{\"content\":", index);
        glm_json_str(s, req->echo_text.data, req->echo_text.len);
        glm_str_adds(s, "},\"logprobs\":null,\"finish_reason\":null}]");
        glm_req_chunk_usage(req, c, s, 1, 1);
        glm_str_adds(s, "}\n\n");
    }
    c->role_sent = 1;
}

/* One choice's chunk: the role chunk first (once), then what the output
 * parser has for the client (nothing new and not final: no chunk, unless
 * logprobs or token ids are owed).  stream_interval holds deltas back until
 * that many tokens are in; the first and the final go at once. */
static void
glm_emit_chunk(glm_req *req, glm_choice *c, int index, int final)
{
    glm_str s = { 0 }, delta = { 0 };
    int members, first = !c->role_sent;

    if (!c->role_sent) {
        glm_role_chunk(req, c, index, &s);
    }
    if (!final && !first && req->stream_interval > 1
        && c->pending_ids < req->stream_interval)
    {
        goto out;
    }
    members = c->out != NULL ? glm_out_delta(c->out, &delta) : 0;
    if (members > 0 || final || c->n_logprobs > 0
        || (req->return_token_ids && c->pending_ids > 0))
    {
        glm_chunk_begin(req, &s);
        glm_str_addf(&s, ",\"choices\":[{\"index\":%d,\"delta\":{", index);
        glm_str_add(&s, delta.data, delta.len);
        glm_str_adds(&s, "},\"logprobs\":");
        if (c->n_logprobs > 0) {
            glm_str_adds(&s, "{\"content\":[");
            glm_str_add(&s, c->logprobs.data, c->logprobs.len);
            glm_str_adds(&s, "]}");
            c->logprobs.len = 0;
            c->n_logprobs = 0;
        } else {
            glm_str_adds(&s, "null");
        }
        if (final) {
            glm_str_adds(&s, ",\"finish_reason\":");
            glm_json_strz(&s, c->finish_reason);
            glm_str_adds(&s, ",\"stop_reason\":");
            glm_str_add(&s, c->stop_reason.data ? c->stop_reason.data : "null",
                        c->stop_reason.data ? c->stop_reason.len : 4);
        } else {
            glm_str_adds(&s, ",\"finish_reason\":null");
        }
        glm_str_adds(&s, ",\"token_ids\":");
        if (req->return_token_ids) {
            glm_ids_json(&s, c->seq->tokens + c->seq->n_tokens - c->pending_ids,
                         c->pending_ids);
        } else {
            glm_str_adds(&s, "null");
        }
        glm_str_adds(&s, "}]");
        glm_req_chunk_usage(req, c, &s, 1, 0);
        glm_str_adds(&s, "}\n\n");
        c->pending_ids = 0;
    }
out:
    if (s.len > 0) {
        glm_req_queue(req, GLM_REC_DATA, s.data, s.len);
    }
    glm_str_free(&s);
    glm_str_free(&delta);
}

/* Text that is now certain (not a possible start of a stop string) goes to
 * the output parser, or for completions to the answer (streaming: into the
 * chunk); final: the turn ended (finish_reason may become "tool_calls" once
 * the parser has seen everything). */
static void
glm_release(glm_req *req, glm_choice *c, int index, size_t n, int final)
{
    if (req->op == GLM_OP_COMPLETIONS) {
        if (req->stream) {
            glm_cmpl_chunk(req, c, index, c->held.data, n, final);
        } else {
            glm_cmpl_text(c, c->held.data, n);
        }
        glm_str_consume(&c->held, n);
        return;
    }
    glm_out_feed(c->out, c->held.data, n);
    glm_str_consume(&c->held, n);
    if (final) {
        glm_out_finish(c->out);
        c->finish_reason = glm_out_finish_reason(c->out, c->finish_reason);
    }
    if (req->stream) {
        glm_emit_chunk(req, c, index, final);
    }
}

void
glm_prompt_logprobs_json(glm_server *srv, const glm_choice *c, glm_str *s)
{
    int i, k, n = c->seq->n_prompt;

    if (!c->seq->params.prompt_logprobs) {
        glm_str_adds(s, "null");
        return;
    }
    glm_str_adds(s, "[null");
    for (i = 1; i < n; i++) {
        const glm_sampled *lp = c->prompt_lp != NULL ? &c->prompt_lp[i] : NULL;

        if (lp == NULL) {
            glm_str_adds(s, ",null");       /* out of memory when they came */
            continue;
        }
        glm_str_adds(s, ",{");
        for (k = -1; k < lp->n_top; k++) {
            int32_t id = k < 0 ? lp->token : lp->top_ids[k];
            int dup = 0, j;

            for (j = 0; k >= 0 && j < k; j++) {
                dup |= lp->top_ids[j] == id;
            }
            if (k >= 0 && (dup || id == lp->token)) {
                continue;
            }
            glm_str_addf(s, "%s\"%d\":{\"logprob\":", k < 0 ? "" : ",", id);
            glm_json_double(s, fmax(k < 0 ? lp->logprob : lp->top_logprobs[k], -9999.0));
            glm_str_addf(s, ",\"rank\":%d,\"decoded_token\":", k < 0 ? c->prompt_rank[i] : k + 1);
            glm_token_text_json(srv, s, id, 0);
            glm_str_adds(s, "}");
        }
        glm_str_adds(s, "}");
    }
    glm_str_adds(s, "]");
}

static void
glm_final_body(glm_req *req)
{
    glm_str s = { 0 };
    int i, completion = 0, reasoning = 0;

    glm_str_adds(&s, "{\"id\":");
    glm_json_strz(&s, req->id);
    glm_str_addf(&s, ",\"object\":\"chat.completion\",\"created\":%" PRId64 ",\"model\":",
                 req->created);
    glm_json_strz(&s, req->model);
    glm_str_adds(&s, ",\"choices\":[");
    for (i = 0; i < req->n; i++) {
        glm_choice *c = &req->choices[i];
        completion += c->completion_tokens;
        reasoning += glm_out_reasoning_tokens(c->out);
        glm_str_addf(&s, "%s{\"index\":%d,\"message\":{\"role\":\"assistant\",",
                     i ? "," : "", i);
        glm_out_message_echo(c->out, req->echo_text.data, req->echo_text.len, &s);
        glm_str_adds(&s, "},\"logprobs\":");
        if (req->logprobs) {
            glm_str_adds(&s, "{\"content\":[");
            glm_str_add(&s, c->logprobs.data, c->logprobs.len);
            glm_str_adds(&s, "]}");
        } else {
            glm_str_adds(&s, "null");
        }
        glm_str_adds(&s, ",\"finish_reason\":");
        glm_json_strz(&s, c->finish_reason);
        glm_str_adds(&s, ",\"stop_reason\":");
        glm_str_add(&s, c->stop_reason.data ? c->stop_reason.data : "null",
                    c->stop_reason.data ? c->stop_reason.len : 4);
        glm_str_adds(&s, ",\"token_ids\":");
        if (req->return_token_ids) {
            glm_ids_json(&s, c->seq->tokens + c->seq->n_prompt,
                         c->seq->n_tokens - c->seq->n_prompt);
        } else {
            glm_str_adds(&s, "null");
        }
        glm_str_adds(&s, "}");
    }
    glm_str_addf(&s, "],\"service_tier\":null,\"system_fingerprint\":null,\"usage\":{"
                 "\"prompt_tokens\":%d,\"total_tokens\":%d,\"completion_tokens\":%d,"
                 "\"prompt_tokens_details\":null,\"completion_tokens_details\":"
                 "{\"reasoning_tokens\":%d}},\"prompt_logprobs\":",
                 req->prompt_tokens, req->prompt_tokens + completion, completion, reasoning);
    glm_prompt_logprobs_json(req->srv, &req->choices[0], &s);
    glm_str_adds(&s, ",\"prompt_token_ids\":");
    if (req->return_token_ids) {
        glm_ids_json(&s, req->choices[0].seq->tokens, req->choices[0].seq->n_prompt);
    } else {
        glm_str_adds(&s, "null");
    }
    if (req->return_prompt_text) {
        glm_str_adds(&s, ",\"prompt_text\":");
        glm_json_str(&s, req->prompt_text.data ? req->prompt_text.data : "",
                     req->prompt_text.len);
    }
    glm_str_adds(&s, ",\"kv_transfer_params\":null}");
    glm_req_json(req, 200, &s);
    glm_str_free(&s);
}

static void
glm_stream_end(glm_req *req)
{
    glm_str s = { 0 };
    int i, completion = 0, reasoning = 0;

    if (req->include_usage) {
        for (i = 0; i < req->n; i++) {
            completion += req->choices[i].completion_tokens;
            reasoning += glm_out_reasoning_tokens(req->choices[i].out);
        }
        glm_str_adds(&s, "data: {\"id\":");
        glm_json_strz(&s, req->id);
        glm_str_addf(&s, ",\"object\":\"chat.completion.chunk\",\"created\":%" PRId64
                     ",\"model\":", req->created);
        glm_json_strz(&s, req->model);
        glm_str_addf(&s, ",\"choices\":[],\"usage\":{\"prompt_tokens\":%d,"
                     "\"total_tokens\":%d,\"completion_tokens\":%d,"
                     "\"completion_tokens_details\":{\"reasoning_tokens\":%d}}}\n\n",
                     req->prompt_tokens, req->prompt_tokens + completion, completion,
                     reasoning);
    }
    glm_str_adds(&s, "data: [DONE]\n\n");
    glm_req_queue(req, GLM_REC_DATA, s.data, s.len);
    glm_req_end(req);
    glm_str_free(&s);
}

static void
glm_histogram(double *sum, uint64_t *n, uint64_t *b, double v)
{
    static const double le[12] = { 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5,
                                   1.0, 2.5, 10.0, 60.0 };
    int i;

    *sum += v;
    (*n)++;
    for (i = 0; i < 12; i++) {
        if (v <= le[i]) {
            b[i]++;
        }
    }
}

static void
glm_finish_choice(glm_req *req, glm_choice *c, int index, const char *reason)
{
    glm_metrics *mt = &req->srv->metrics;
    double now = glm_now_seconds();

    if (req->op == GLM_OP_COMPLETIONS) {
        glm_cmpl_decode_flush(c, &c->held);
    } else {
        glm_out_decode_flush(c->out, &c->held);
    }
    c->finished = 1;
    c->finish_reason = reason;
    glm_release(req, c, index, c->held.len, 1);
    req->n_finished++;
    /* per choice, as vLLM counts each of n's child requests */
    if (strcmp(reason, "length") == 0) {
        mt->requests_length++;
    } else {
        mt->requests_stop++;
    }
    if (req->n_finished < req->n) {
        return;
    }
    glm_histogram(&mt->e2e_sum, &mt->e2e_n, mt->e2e_b, now - req->t_arrival);
    if (req->op == GLM_OP_COMPLETIONS) {
        if (req->stream) {
            glm_cmpl_stream_end(req);
        } else {
            glm_cmpl_final_body(req);
        }
    } else if (req->stream) {
        glm_stream_end(req);
    } else {
        glm_final_body(req);
    }
}

void
glm_token_text_json(glm_server *srv, glm_str *s, int32_t id, int as_id)
{
    glm_tokenizer_buf text = { 0 };

    if (as_id) {
        glm_str_addf(s, "\"token_id:%d\"", id);
        return;
    }
    glm_tokenizer_decode(srv->tok, &id, 1, 0, &text, NULL);
    glm_json_str(s, text.data ? text.data : "", text.len);
    glm_tokenizer_buf_free(&text);
}

/* One logprobs entry: {"token","logprob","bytes","top_logprobs"} */
static void
glm_logprob_entry(glm_server *srv, const glm_req *req, glm_str *s, int32_t id, float lp,
    const glm_sampled *alts, int with_alts)
{
    glm_tokenizer_buf text = { 0 };
    const uint8_t *bytes;
    size_t n = 0, i;
    int k;

    glm_str_adds(s, "{\"token\":");
    if (req->tokens_as_ids) {
        char tmp[32];

        /* the bytes are then those of the placeholder, as vLLM encodes it */
        n = (size_t) snprintf(tmp, sizeof(tmp), "token_id:%d", id);
        glm_json_str(s, tmp, n);
        glm_str_adds(s, ",\"logprob\":");
        glm_json_double(s, fmax(lp, -9999.0));
        glm_str_adds(s, ",\"bytes\":[");
        for (i = 0; i < n; i++) {
            glm_str_addf(s, "%s%u", i ? "," : "", (unsigned char) tmp[i]);
        }
    } else {
        glm_tokenizer_decode(srv->tok, &id, 1, 0, &text, NULL);
        bytes = glm_tokenizer_token_bytes(srv->tok, id, &n);
        glm_json_str(s, text.data ? text.data : "", text.len);
        glm_str_adds(s, ",\"logprob\":");
        glm_json_double(s, fmax(lp, -9999.0));
        glm_str_adds(s, ",\"bytes\":[");
        for (i = 0; bytes != NULL && i < n; i++) {
            glm_str_addf(s, "%s%u", i ? "," : "", bytes[i]);
        }
    }
    glm_str_adds(s, "]");
    if (with_alts) {
        glm_str_adds(s, ",\"top_logprobs\":[");
        for (k = 0; k < alts->n_top; k++) {
            if (k) {
                glm_str_adds(s, ",");
            }
            glm_logprob_entry(srv, req, s, alts->top_ids[k], alts->top_logprobs[k], NULL, 0);
        }
        glm_str_adds(s, "]");
    }
    glm_str_adds(s, "}");
    glm_tokenizer_buf_free(&text);
}

void
glm_req_on_prompt_logprob(void *ctx, glm_seq *seq, int pos, const glm_sampled *sm, int rank)
{
    glm_req *req = seq->owner;
    glm_choice *c = &req->choices[seq->index];

    if (c->prompt_lp == NULL) {
        c->prompt_lp = calloc((size_t) seq->n_prompt, sizeof(glm_sampled));
        c->prompt_rank = calloc((size_t) seq->n_prompt, sizeof(int));
        if (c->prompt_lp == NULL || c->prompt_rank == NULL) {
            free(c->prompt_lp);
            free(c->prompt_rank);
            c->prompt_lp = NULL;
            c->prompt_rank = NULL;
            return;
        }
    }
    if (pos > 0 && pos < seq->n_prompt) {
        c->prompt_lp[pos] = *sm;
        c->prompt_rank[pos] = rank;
    }
}

int
glm_req_on_token(void *ctx, glm_seq *seq, const glm_sampled *sm)
{
    glm_server *srv = ctx;
    glm_req *req = seq->owner;
    glm_choice *c = &req->choices[seq->index];
    double now = glm_now_seconds();
    int i, stop_id = 0, is_eos = 0, cmpl = req->op == GLM_OP_COMPLETIONS;
    size_t keep, cut;
    char *hit = NULL, *found;

    srv->metrics.generation_tokens++;
    if (req->t_first_token == 0.0) {
        req->t_first_token = now;
        glm_histogram(&srv->metrics.ttft_sum, &srv->metrics.ttft_n, srv->metrics.ttft_b,
                      now - req->t_arrival);
    } else {
        glm_histogram(&srv->metrics.itl_sum, &srv->metrics.itl_n, srv->metrics.itl_b,
                      now - req->t_last_token);
    }
    req->t_last_token = now;
    c->completion_tokens++;
    c->pending_ids++;
    if (c->tgs != NULL) {
        /* -1 (a token the grammar did not allow: only possible when min_tokens
         * banned its EOS) leaves the grammar allowing only EOS */
        glm_tg_advance(c->tgs, sm->token);
    }

    if (req->logprobs && cmpl) {
        glm_cmpl_keep_logprob(c, sm);
    } else if (req->logprobs) {
        if (c->n_logprobs++ > 0) {
            glm_str_adds(&c->logprobs, ",");
        }
        glm_logprob_entry(srv, req, &c->logprobs, sm->token, sm->logprob, sm, 1);
    }
    if (!req->ignore_eos) {
        is_eos = glm_config_is_eos(&srv->m->cfg, sm->token);
    }
    for (i = 0; i < req->n_stop_ids; i++) {
        stop_id |= req->stop_ids[i] == sm->token;
    }
    if (is_eos || stop_id) {
        /* the stop token itself is not part of the text; its id is the
         * stop_reason unless it is the tokenizer's own end of text */
        if (!(is_eos && sm->token == srv->eos_primary)) {
            glm_str_addf(&c->stop_reason, "%d", sm->token);
        }
        glm_finish_choice(req, c, seq->index, "stop");
        return 1;
    }

    if (cmpl) {
        glm_cmpl_decode(req, c, sm->token, &c->held);
    } else {
        glm_out_decode(c->out, sm->token, &c->held);
    }

    /* stop strings: the earliest match in the held text ends the choice */
    for (i = 0; i < req->n_stops; i++) {
        found = c->held.data ? strstr(c->held.data, req->stops[i]) : NULL;
        if (found != NULL && (hit == NULL || found < hit)) {
            hit = found;
            glm_str_free(&c->stop_reason);
            glm_json_strz(&c->stop_reason, req->stops[i]);
            cut = (size_t) (found - c->held.data)
                  + (req->include_stop_str ? strlen(req->stops[i]) : 0);
        }
    }
    if (hit != NULL) {
        c->held.len = cut;
        c->held.data[cut] = '\0';
        glm_finish_choice(req, c, seq->index, "stop");
        return 1;
    }
    if (c->completion_tokens >= req->max_tokens
        || seq->n_tokens >= srv->o.max_model_len)
    {
        glm_finish_choice(req, c, seq->index, "length");
        return 1;
    }
    /* hold back what could still become a stop string, on a character
     * boundary so a chunk never ends inside a UTF-8 sequence */
    keep = req->max_stop_len > 0 ? req->max_stop_len - 1 : 0;
    cut = 0;
    if (c->held.len > keep) {
        cut = c->held.len - keep;
        while (cut > 0 && cut < c->held.len
               && ((unsigned char) c->held.data[cut] & 0xc0) == 0x80)
        {
            cut--;
        }
    }
    if (cut > 0 || (cmpl && req->stream)) {
        /* completions stream a chunk for every token, as vLLM */
        glm_release(req, c, seq->index, cut, 0);
    } else if (req->stream) {
        glm_emit_chunk(req, c, seq->index, 0);
    }
    return 0;
}

void
glm_req_mask(void *ctx, glm_seq *seq, float *logits)
{
    glm_req *req = seq->owner;
    glm_choice *c = &req->choices[seq->index];

    if (c->tgs != NULL) {
        glm_tg_mask(c->tgs, logits);
    }
}

void
glm_req_mask_bits(void *ctx, glm_seq *seq, uint32_t *allowed)
{
    glm_req *req = seq->owner;
    glm_choice *c = &req->choices[seq->index];

    if (c->tgs != NULL) {
        glm_tg_mask_bits(c->tgs, allowed);
    }
}

/* ---- sampling parameters and shared fields --------------------------------- */

/* A list of token ids below the vocabulary size into *out (malloc'd, the
 * caller's even on error); -1 after queueing the 400 (vLLM's words for an
 * id outside the vocabulary). */
static int
glm_id_list(glm_server *srv, glm_req *req, yajl_val v, const char *key, int32_t **out,
    int *n_out)
{
    int32_t vocab = srv->m->cfg.vocab_size;
    size_t i;

    if (!YAJL_IS_ARRAY(v)) {
        glm_req_error(req, 400, "BadRequestError", key, "'%s' must be a list of token ids",
                      key);
        return -1;
    }
    *out = malloc((v->u.array.len + 1) * sizeof(int32_t));
    if (*out == NULL) {
        glm_req_error(req, 500, "InternalServerError", NULL, "out of memory");
        return -1;
    }
    for (i = 0; i < v->u.array.len; i++) {
        yajl_val e = v->u.array.values[i];
        if (!YAJL_IS_INTEGER(e) || YAJL_GET_INTEGER(e) < 0 || YAJL_GET_INTEGER(e) >= vocab) {
            glm_req_error(req, 400, "BadRequestError", key, "%s contains out-of-vocab token"
                          " id! (ids must be integers from 0 to %d)", key, vocab - 1);
            return -1;
        }
        (*out)[i] = (int32_t) YAJL_GET_INTEGER(e);
    }
    *n_out = (int) v->u.array.len;
    return 0;
}

/* vLLM's bad_words: each word, left-stripped, tokenized alone and after a
 * space; the spaced form is kept when it starts with another token and has
 * as many (a new word token, not the same one behind a space). */
static int
glm_bad_words(glm_server *srv, glm_req *req, yajl_val v)
{
    glm_tokenizer_ids plain = { 0 }, spaced = { 0 };
    size_t i, total = 0, cap = 0;
    glm_str text = { 0 };
    glm_err err;
    int rc = -1;

    if (!YAJL_IS_ARRAY(v)) {
        glm_req_error(req, 400, "BadRequestError", "bad_words",
                      "'bad_words' must be a list of strings");
        return -1;
    }
    req->bad_word_len = calloc(2 * v->u.array.len + 1, sizeof(int32_t));
    if (req->bad_word_len == NULL) {
        glm_req_error(req, 500, "InternalServerError", NULL, "out of memory");
        return -1;
    }
    for (i = 0; i < v->u.array.len; i++) {
        yajl_val w = v->u.array.values[i];
        const char *p;
        int k;

        if (!YAJL_IS_STRING(w)) {
            glm_req_error(req, 400, "BadRequestError", "bad_words",
                          "'bad_words' must be a list of strings");
            goto out;
        }
        for (p = w->u.string; *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'
                              || *p == '\f' || *p == '\v'; p++) { }
        plain.len = spaced.len = 0;
        text.len = 0;
        glm_str_adds(&text, " ");
        glm_str_adds(&text, p);
        if (glm_tokenizer_encode(srv->tok, req->tctx, p, strlen(p), &plain, &err) != 0
            || glm_tokenizer_encode(srv->tok, req->tctx, text.data, text.len, &spaced,
                                    &err) != 0)
        {
            glm_req_error(req, 400, "BadRequestError", "bad_words", "%s", err.msg);
            goto out;
        }
        for (k = 0; k < 2; k++) {
            const glm_tokenizer_ids *ids = k == 0 ? &plain : &spaced;

            if (ids->len == 0
                || (k == 1 && (plain.len == 0 || spaced.ids[0] == plain.ids[0]
                               || spaced.len != plain.len)))
            {
                continue;
            }
            if (total + ids->len > cap) {
                int32_t *nw;

                cap = (total + ids->len) * 2;
                nw = realloc(req->bad_words, cap * sizeof(int32_t));
                if (nw == NULL) {
                    glm_req_error(req, 500, "InternalServerError", NULL, "out of memory");
                    goto out;
                }
                req->bad_words = nw;
            }
            memcpy(req->bad_words + total, ids->ids, ids->len * sizeof(int32_t));
            total += ids->len;
            req->bad_word_len[req->n_bad_words++] = (int32_t) ids->len;
        }
    }
    rc = 0;
out:
    glm_tokenizer_ids_free(&plain);
    glm_tokenizer_ids_free(&spaced);
    glm_str_free(&text);
    return rc;
}

/* vLLM's checks of a logprobs count (top_logprobs, prompt_logprobs,
 * completions' logprobs): an integer, >= 0 or -1 (the whole vocabulary,
 * given as its size).  0: absent, 1: *out set, -1 after the 400. */
int
glm_logprob_count(glm_server *srv, glm_req *req, yajl_val root, const char *key, int *out)
{
    yajl_val v = glm_req_field(root, key);
    long long n;

    if (v == NULL) {
        return 0;
    }
    if (!YAJL_IS_INTEGER(v)) {
        glm_req_error(req, 400, "BadRequestError", key, "`%s` must be an integer.", key);
        return -1;
    }
    n = YAJL_GET_INTEGER(v);
    if (n < 0 && n != -1) {
        glm_req_error(req, 400, "BadRequestError", key,
                      "`%s` must be a positive value or -1.", key);
        return -1;
    }
    n = n == -1 ? srv->m->cfg.vocab_size : n > INT_MAX ? INT_MAX : n;
    *out = (int) n;
    return 1;
}

/* vLLM's --max-logprobs, at its default of 20; what: "sample" or "prompt" */
int
glm_logprob_max(glm_req *req, const char *key, const char *what, int n)
{
    if (n > 20) {
        glm_req_error(req, 400, "BadRequestError", key, "Requested %s logprobs of %d,"
                      " which is greater than max allowed: 20", what, n);
        return -1;
    }
    return 0;
}

int
glm_req_params(glm_server *srv, glm_req *req, yajl_val root, glm_seq_params *p,
    uint64_t *seed, int *has_seed)
{
    const glm_config *cfg = &srv->m->cfg;
    yajl_val v;
    double d;
    long l;
    size_t i;
    int r, b, n;

    memset(p, 0, sizeof(*p));
    /* generation_config.json gives the defaults, as vLLM's --generation-config auto */
    p->sampling.temperature = srv->o.use_generation_config ? cfg->gen_temperature : 1.0f;
    p->sampling.top_p = srv->o.use_generation_config ? cfg->gen_top_p : 1.0f;
    p->sampling.top_k = srv->o.use_generation_config ? cfg->gen_top_k : 0;
    p->repetition_penalty = 1.0f;

    if ((r = glm_req_num(req, root, "temperature", 0.0, 100.0, &d)) < 0) return -1;
    if (r) p->sampling.temperature = (float) d;
    if ((r = glm_req_num(req, root, "top_p", 1e-9, 1.0, &d)) < 0) return -1;
    if (r) p->sampling.top_p = (float) d;
    if ((r = glm_req_int(req, root, "top_k", -1, INT32_MAX, &l)) < 0) return -1;
    if (r) p->sampling.top_k = l < 0 ? 0 : (int) l;
    if ((r = glm_req_num(req, root, "min_p", 0.0, 1.0, &d)) < 0) return -1;
    if (r) p->sampling.min_p = (float) d;
    if ((r = glm_req_num(req, root, "presence_penalty", -2.0, 2.0, &d)) < 0) return -1;
    if (r) p->presence_penalty = (float) d;
    if ((r = glm_req_num(req, root, "frequency_penalty", -2.0, 2.0, &d)) < 0) return -1;
    if (r) p->frequency_penalty = (float) d;
    if ((r = glm_req_num(req, root, "repetition_penalty", 1e-6, 100.0, &d)) < 0) return -1;
    if (r) p->repetition_penalty = (float) d;
    if ((r = glm_req_int(req, root, "min_tokens", 0, INT32_MAX, &l)) < 0) return -1;
    if (r) p->min_tokens = (int) l;
    if ((r = glm_req_int(req, root, "seed", INT64_MIN / 2, INT64_MAX / 2, &l)) < 0) return -1;
    *has_seed = r;
    *seed = (uint64_t) l;

    if (req->op == GLM_OP_CHAT) {
        if ((r = glm_req_bool(req, root, "logprobs", &b)) < 0) return -1;
        req->logprobs = r ? b : 0;
        if ((r = glm_logprob_count(srv, req, root, "top_logprobs", &n)) < 0) {
            return -1;
        }
        req->top_logprobs = r ? n : 0;
        if (req->top_logprobs > 0 && !req->logprobs) {
            glm_req_error(req, 400, "BadRequestError", "top_logprobs",
                          "when using `top_logprobs`, `logprobs` must be set to true.");
            return -1;
        }
        if (req->logprobs
            && glm_logprob_max(req, "top_logprobs", "sample", req->top_logprobs) != 0)
        {
            return -1;
        }
    }
    p->logprobs = req->logprobs;
    p->top_logprobs = req->top_logprobs;

    v = glm_req_field(root, "logprob_token_ids");
    if (v != NULL) {
        if (YAJL_IS_ARRAY(v) && v->u.array.len == 0) {
            glm_req_error(req, 400, "BadRequestError", "logprob_token_ids",
                          "`logprob_token_ids` must not be an empty list.");
            return -1;
        }
        if (!req->logprobs) {
            glm_req_error(req, 400, "BadRequestError", "logprob_token_ids",
                          req->op == GLM_OP_CHAT
                          ? "when using `logprob_token_ids`, `logprobs` must be set to true."
                          : "when using `logprob_token_ids`, `logprobs` must be set.");
            return -1;
        }
        if (glm_id_list(srv, req, v, "logprob_token_ids", &req->logprob_ids,
                        &req->n_logprob_ids) != 0)
        {
            return -1;
        }
        if (req->n_logprob_ids > 20) {
            glm_req_error(req, 400, "BadRequestError", "logprob_token_ids", "Requested"
                          " sample logprobs of %d, which is greater than max allowed: 20",
                          req->n_logprob_ids);
            return -1;
        }
        p->logprob_ids = req->logprob_ids;
        p->n_logprob_ids = req->n_logprob_ids;
    }

    req->prompt_logprobs = -1;
    v = glm_req_field(root, "prompt_logprobs");
    if (v != NULL && req->stream && YAJL_IS_NUMBER(v)
        && (YAJL_GET_DOUBLE(v) > 0 || YAJL_GET_DOUBLE(v) == -1))
    {
        glm_req_error(req, 400, "BadRequestError", "prompt_logprobs",
                      "`prompt_logprobs` are not available when `stream=True`.");
        return -1;
    }
    if ((r = glm_logprob_count(srv, req, root, "prompt_logprobs", &n)) < 0
        || (r && glm_logprob_max(req, "prompt_logprobs", "prompt", n) != 0))
    {
        return -1;
    }
    if (r && !req->stream) {
        /* streamed, 0 is allowed and nothing carries them: not computed */
        req->prompt_logprobs = n;
    }
    if (req->prompt_logprobs < 0 && req->echo
        && (req->op == GLM_OP_CHAT ? !req->stream : req->logprobs))
    {
        /* vLLM: echo asks for the prompt's logprobs, as many as the output's
         * (chat: always, though a stream has no field for them; completions:
         * with logprobs, which its echo then shows) */
        req->prompt_logprobs = req->top_logprobs;
    }
    p->prompt_logprobs = req->prompt_logprobs >= 0;
    p->prompt_top_logprobs = req->prompt_logprobs > 0 ? req->prompt_logprobs : 0;

    if ((r = glm_req_bool(req, root, "ignore_eos", &req->ignore_eos)) < 0) return -1;
    req->skip_special = 1;
    if ((r = glm_req_bool(req, root, "skip_special_tokens", &req->skip_special)) < 0) return -1;
    if ((r = glm_req_bool(req, root, "include_stop_str_in_output", &req->include_stop_str)) < 0) {
        return -1;
    }
    if ((r = glm_req_bool(req, root, "return_token_ids", &req->return_token_ids)) < 0) {
        return -1;
    }
    if ((r = glm_req_bool(req, root, "return_tokens_as_token_ids", &req->tokens_as_ids)) < 0) {
        return -1;
    }
    if ((r = glm_req_int(req, root, "stream_interval", 1, INT32_MAX, &l)) < 0) return -1;
    req->stream_interval = r ? (int) l : 1;

    v = glm_req_field(root, "logit_bias");
    if (v != NULL) {
        if (!YAJL_IS_OBJECT(v)) {
            glm_req_error(req, 400, "BadRequestError", "logit_bias",
                          "'logit_bias' must map token ids to numbers");
            return -1;
        }
        p->logit_bias = calloc(v->u.object.len + 1, sizeof(glm_logit_bias));
        for (i = 0; i < v->u.object.len; i++) {
            char *end;
            long id = strtol(v->u.object.keys[i], &end, 10);
            if (*end != '\0' || id < 0 || id >= cfg->vocab_size
                || !YAJL_IS_NUMBER(v->u.object.values[i]))
            {
                glm_req_error(req, 400, "BadRequestError", "logit_bias",
                              "logit_bias key '%s' is not a token id below %d with a number",
                              v->u.object.keys[i], cfg->vocab_size);
                return -1;
            }
            d = YAJL_GET_DOUBLE(v->u.object.values[i]);
            p->logit_bias[p->n_logit_bias++] = (glm_logit_bias) {
                (int32_t) id, (float) (d < -100 ? -100 : d > 100 ? 100 : d) };
        }
    }

    v = glm_req_field(root, "allowed_token_ids");
    if (v != NULL) {
        int32_t *ids = NULL;
        int n_ids = 0;

        if (YAJL_IS_ARRAY(v) && v->u.array.len == 0) {
            glm_req_error(req, 400, "BadRequestError", "allowed_token_ids",
                          "allowed_token_ids is not None and empty!");
            return -1;
        }
        if (glm_id_list(srv, req, v, "allowed_token_ids", &ids, &n_ids) != 0) {
            free(ids);
            return -1;
        }
        req->allowed = calloc(((size_t) cfg->vocab_size + 7) / 8, 1);
        if (req->allowed == NULL) {
            free(ids);
            glm_req_error(req, 500, "InternalServerError", NULL, "out of memory");
            return -1;
        }
        for (n = 0; n < n_ids; n++) {
            req->allowed[ids[n] >> 3] |= (uint8_t) (1u << (ids[n] & 7));
        }
        free(ids);
        p->allowed = req->allowed;
    }

    v = glm_req_field(root, "bad_words");
    if (v != NULL) {
        if (glm_bad_words(srv, req, v) != 0) {
            return -1;
        }
        p->bad_words = req->bad_words;
        p->bad_word_len = req->bad_word_len;
        p->n_bad_words = req->n_bad_words;
    }

    v = glm_req_field(root, "cache_salt");
    if (v != NULL) {
        if (!YAJL_IS_STRING(v) || v->u.string[0] == '\0') {
            glm_req_error(req, 400, "BadRequestError", "cache_salt",
                          "Parameter 'cache_salt' must be a non-empty string if provided.");
            return -1;
        }
        req->cache_salt = strdup(v->u.string);
        p->cache_salt = req->cache_salt;
        p->cache_salt_len = strlen(req->cache_salt);
    }

    v = glm_req_field(root, "stop_token_ids");
    if (v != NULL) {
        if (!YAJL_IS_ARRAY(v)) {
            glm_req_error(req, 400, "BadRequestError", "stop_token_ids",
                          "'stop_token_ids' must be a list of token ids");
            return -1;
        }
        req->stop_ids = calloc(v->u.array.len + 1, sizeof(int32_t));
        for (i = 0; i < v->u.array.len; i++) {
            yajl_val e = v->u.array.values[i];
            if (!YAJL_IS_INTEGER(e) || YAJL_GET_INTEGER(e) < 0
                || YAJL_GET_INTEGER(e) >= cfg->vocab_size)
            {
                glm_req_error(req, 400, "BadRequestError", "stop_token_ids",
                              "stop_token_ids must be token ids below %d", cfg->vocab_size);
                return -1;
            }
            req->stop_ids[req->n_stop_ids++] = (int32_t) YAJL_GET_INTEGER(e);
        }
    }
    /* while below min_tokens no stop token may end the sequence */
    p->banned = calloc((size_t) (cfg->n_eos + req->n_stop_ids + 1), sizeof(int32_t));
    for (i = 0; i < (size_t) cfg->n_eos; i++) {
        p->banned[p->n_banned++] = cfg->eos_ids[i];
    }
    for (i = 0; i < (size_t) req->n_stop_ids; i++) {
        p->banned[p->n_banned++] = req->stop_ids[i];
    }

    v = glm_req_field(root, "stop");
    if (v != NULL) {
        yajl_val *items = &v;
        size_t n_items = 1;
        if (YAJL_IS_ARRAY(v)) {
            items = v->u.array.values;
            n_items = v->u.array.len;
        }
        for (i = 0; i < n_items; i++) {
            if (!YAJL_IS_STRING(items[i]) || items[i]->u.string[0] == '\0'
                || req->n_stops == GLM_MAX_STOPS)
            {
                glm_req_error(req, 400, "BadRequestError", "stop", "'stop' must be a"
                              " non-empty string or a list of at most %d of them",
                              GLM_MAX_STOPS);
                return -1;
            }
            req->stops[req->n_stops++] = strdup(items[i]->u.string);
            if (strlen(items[i]->u.string) > req->max_stop_len) {
                req->max_stop_len = strlen(items[i]->u.string);
            }
        }
    }
    return 0;
}

/*
 * Images and videos, in two halves.  glm_media_job_run (any thread: a media
 * worker, or the loop when there are none) loads, decodes and preprocesses
 * the media and expands the prompt; glm_chat_media_done (the loop thread)
 * runs the vision tower, builds the sequences' M-RoPE positions and rows and
 * admits the request.  Decoding a large image or a video therefore never
 * stalls the other streams' decode steps.
 */
/* The media half on a parsed request. */
static void
glm_media_job_fill(glm_server *srv, glm_media_job *job, yajl_val root,
    glm_tokenizer_ctx *tctx)
{
    const glm_config *c = &srv->m->cfg;

    job->status = 400;
    job->param = "messages";
    job->rc = -1;
    if (glm_media_load(&srv->media, root, &job->set, &job->err) != 0) {
        job->status = job->set.status;
        job->param = job->set.param ? job->set.param : "messages";
    } else if (job->set.n > 0 && srv->m->vision == NULL) {
        glm_errf(&job->err, "%s is a text model: it does not accept images or videos",
                 c->architecture);
    } else if (glm_media_expand(c, srv->tok, tctx, &job->set, job->ids.ids, job->ids.len,
                                &job->expanded, &job->grids, &job->err) == 0)
    {
        job->rc = 0;
        /* names for prefix caching, hashed here rather than on the loop;
         * without them the prompt's blocks are just not shared */
        job->item_hash = job->set.n > 0 ? glm_media_item_digests(&job->set) : NULL;
    }
}

void
glm_media_job_run(glm_server *srv, glm_media_job *job, glm_tokenizer_ctx *tctx)
{
    char ebuf[128];
    yajl_val root = yajl_tree_parse(job->body.data ? job->body.data : "", ebuf, sizeof(ebuf));

    if (root == NULL) {
        job->status = 400;
        job->param = "messages";
        job->rc = -1;
        glm_errf(&job->err, "the request body is not JSON");
        return;
    }
    glm_media_job_fill(srv, job, root, tctx);
    yajl_tree_free(root);
}

/* A failed job's error, as the request's answer. */
static void
glm_media_job_error(glm_req *req, const glm_media_job *job)
{
    glm_req_error(req, job->status, job->status == 403 ? "PermissionDeniedError"
                  : job->status >= 500 ? "InternalServerError" : "BadRequestError",
                  job->param, "%s", job->err.msg);
}

void
glm_media_job_free(glm_media_job *job)
{
    if (job != NULL) {
        glm_str_free(&job->body);
        glm_tokenizer_ids_free(&job->ids);
        glm_tokenizer_ids_free(&job->expanded);
        glm_media_set_free(&job->set);
        free(job->grids);
        free(job->item_hash);
        free(job);
    }
}

void
glm_chat_media_done(glm_server *srv, glm_req *req, glm_media_job *job)
{
    const glm_config *c = &srv->m->cfg;
    glm_mm_prompt *mm = NULL;
    float *px = NULL, *rows = NULL;
    int64_t n_patches = 0, n_rows = 0;
    glm_seq_params params = req->mparams;
    glm_err err;
    int i;

    req->media_wait = 0;
    memset(&req->mparams, 0, sizeof(req->mparams));
    if (job->rc != 0) {
        glm_media_job_error(req, job);
        goto out;
    }
    if (job->set.n > 0) {
        for (i = job->set.n - 1; i >= 0; i--) {
            if (job->set.items[i].kind == GLM_MEDIA_IMAGE) {
                req->image_w = job->set.items[i].width;
                req->image_h = job->set.items[i].height;
            }
        }
        for (i = 0; i < job->set.n; i++) {
            n_rows += glm_vision_grid_tokens(c, &job->grids[i]);
        }
        px = glm_media_pixels(&job->set, &n_patches);
        rows = malloc((size_t) (n_rows ? n_rows : 1) * c->hidden_size * sizeof(float));
        if (px == NULL || rows == NULL
            || glm_model_encode_images(srv->m, px, job->grids, job->set.n, rows, &err) != 0)
        {
            if (px == NULL || rows == NULL) {
                glm_errf(&err, "out of memory for %lld vision patches", (long long) n_patches);
            }
            free(rows);
            glm_req_error(req, 500, "InternalServerError", NULL, "%s", err.msg);
            goto out;
        }
        mm = glm_mm_prompt_new(c, job->expanded.ids, (int) job->expanded.len, job->grids,
                               job->set.n, job->item_hash, rows, n_rows, &err);
        if (mm == NULL) {                /* rows are taken over, even on failure */
            glm_req_error(req, 400, "BadRequestError", "messages", "%s", err.msg);
            goto out;
        }
    }
    glm_req_admit(srv, req, &job->expanded, 1, mm, &params, req->mseed, req->mhas_seed);
    params.logit_bias = NULL;
    params.banned = NULL;
out:
    free(px);
    glm_mm_prompt_unref(mm);
    free(params.logit_bias);
    free(params.banned);
}

/* Marker tokens typed into text would be taken for media that is not there. */
static int
glm_stray_markers(glm_server *srv, const glm_tokenizer_ids *ids)
{
    const glm_config *c = &srv->m->cfg;
    size_t i;

    if (srv->m->vision == NULL) {
        return 0;
    }
    for (i = 0; i < ids->len; i++) {
        if (ids->ids[i] == c->image_token_id || ids->ids[i] == c->video_token_id) {
            return 1;
        }
    }
    return 0;
}

/* vLLM's echo: the last message's content when its role is the answer's
 * (assistant with add_generation_prompt, else the last message's own), its
 * text parts joined by newlines */
static void
glm_chat_echo(glm_req *req, yajl_val root)
{
    yajl_val msgs = glm_req_field(root, "messages"), last, role, content, agp;
    const char *answer_role = "assistant";
    size_t i;

    if (msgs == NULL || !YAJL_IS_ARRAY(msgs) || msgs->u.array.len == 0) {
        return;
    }
    last = msgs->u.array.values[msgs->u.array.len - 1];
    role = glm_req_field(last, "role");
    content = glm_req_field(last, "content");
    agp = glm_req_field(root, "add_generation_prompt");
    if (role == NULL || !YAJL_IS_STRING(role) || content == NULL) {
        return;
    }
    if (agp != NULL && YAJL_IS_FALSE(agp)) {
        answer_role = role->u.string;
    }
    if (strcmp(role->u.string, answer_role) != 0) {
        return;
    }
    if (YAJL_IS_STRING(content)) {
        glm_str_adds(&req->echo_text, content->u.string);
        return;
    }
    for (i = 0; YAJL_IS_ARRAY(content) && i < content->u.array.len; i++) {
        yajl_val part = content->u.array.values[i], text = glm_req_field(part, "text");

        if (YAJL_IS_STRING(part)) {
            text = part;
        }
        if (text != NULL && YAJL_IS_STRING(text)) {
            if (req->echo_text.len > 0) {
                glm_str_adds(&req->echo_text, "\n");
            }
            glm_str_adds(&req->echo_text, text->u.string);
        }
    }
}

static void
glm_chat(glm_server *srv, glm_req *req, yajl_val root)
{
    glm_tokenizer_ids ids = { 0 };
    glm_seq_params params;
    yajl_val v, kwargs = NULL;
    uint64_t seed = 0;
    int has_seed = 0;
    long l;

    memset(&params, 0, sizeof(params));
    v = glm_req_field(root, "messages");
    if (v == NULL || !YAJL_IS_ARRAY(v) || v->u.array.len == 0) {
        glm_req_error(req, 400, "BadRequestError", "messages",
                      "'messages' must be a non-empty list of chat messages");
        return;
    }
    if (glm_req_common(srv, req, root, "chatcmpl-") != 0
        || glm_request_fields_check(srv, req, root, GLM_OP_CHAT) != 0
        || glm_req_bool(req, root, "echo", &req->echo) < 0
        || glm_req_bool(req, root, "return_prompt_text", &req->return_prompt_text) < 0)
    {
        return;
    }
    if (glm_req_params(srv, req, root, &params, &seed, &has_seed) != 0) {
        goto out;
    }
    if (req->echo) {
        glm_chat_echo(req, root);
    }
    kwargs = glm_kwargs_new(srv, root);
    {
        const char *param;
        glm_err err;
        if (glm_out_request_parse(&req->out_rq, root, kwargs, &param, &err) != 0) {
            glm_req_error(req, 400, "BadRequestError", param, "%s", err.msg);
            goto out;
        }
        if (req->out_rq.tg.so != NULL && srv->tg_vocab == NULL) {
            glm_req_error(req, 400, "BadRequestError", "response_format", "structured outputs"
                          " are not available: the tokenizer lacks GLM's tag tokens, which"
                          " the constrained-decoding grammar needs");
            goto out;
        }
        if (req->out_rq.constrain && srv->tg_vocab != NULL) {
            req->tg = glm_tg_new(srv->tg_vocab, req->out_rq.tools, &req->out_rq.tg, &err);
            if (req->tg == NULL) {
                glm_req_error(req, 400, "BadRequestError", "tools", "%s", err.msg);
                goto out;
            }
        }
    }
    /* the asked limit is read here, while the parse tree exists: a request
     * with media is admitted later, after its tree is gone */
    if (glm_req_int(req, root, "max_tokens", 1, INT32_MAX, &l) < 0
        || glm_req_int(req, root, "max_completion_tokens", 1, INT32_MAX, &l) < 0)
    {
        goto out;
    }
    v = glm_req_field(root, "max_completion_tokens");
    if (v == NULL) {
        v = glm_req_field(root, "max_tokens");
    }
    req->asked_max_tokens = v != NULL ? (long) YAJL_GET_INTEGER(v) : 0;
    if (glm_prompt_ids(srv, req, root, kwargs, &ids) != 0
        || glm_req_truncate(srv, req, root, &ids, glm_media_has_parts(root),
                            glm_req_field(root, "max_completion_tokens") != NULL
                            ? "max_completion_tokens" : "max_tokens") != 0)
    {
        goto out;
    }
    if (ids.len == 0) {
        glm_req_error(req, 400, "BadRequestError", "truncate_prompt_tokens",
                      "The decoder prompt cannot be empty");
        goto out;
    }
    if (glm_media_has_parts(root)) {
        /* the media half runs on a worker; the request waits, owning its
         * sampling parameters, and glm_chat_media_done admits it */
        glm_media_job *job = calloc(1, sizeof(*job));
        if (job == NULL) {
            glm_req_error(req, 500, "InternalServerError", NULL, "out of memory");
            goto out;
        }
        glm_str_add(&job->body, req->body.data, req->body.len);
        job->serial = req->serial;
        job->ids = ids;
        memset(&ids, 0, sizeof(ids));
        req->mparams = params;
        req->mseed = seed;
        req->mhas_seed = has_seed;
        params.logit_bias = NULL;
        params.banned = NULL;
        req->intake_media = job;         /* submitted by glm_req_intake_done */
        req->intake = GLM_INTAKE_MEDIA;
        goto out;
    }
    if (glm_stray_markers(srv, &ids)) {
        glm_req_error(req, 400, "BadRequestError", "messages", "the prompt holds"
                      " <|image|> or <|video|> tokens but the messages have no image_url or"
                      " video_url part: send images and videos as content parts");
        goto out;
    }
    /* admitted by glm_req_intake_done, on the loop */
    req->intake_ids = ids;
    memset(&ids, 0, sizeof(ids));
    req->mparams = params;
    req->mseed = seed;
    req->mhas_seed = has_seed;
    params.logit_bias = NULL;
    params.banned = NULL;
    req->intake = GLM_INTAKE_ADMIT;
out:
    glm_kwargs_free(srv, kwargs);
    free(params.logit_bias);
    free(params.banned);
    glm_tokenizer_ids_free(&ids);
}

void
glm_req_admit(glm_server *srv, glm_req *req, const glm_tokenizer_ids *prompts,
    int n_prompts, glm_mm_prompt *mm, glm_seq_params *params_p, uint64_t seed,
    int has_seed)
{
    glm_seq_params params = *params_p;
    int i, k, L = srv->o.max_model_len, min_len = INT_MAX;
    size_t total = 0;
    long l;

    for (k = 0; k < n_prompts; k++) {
        size_t len = prompts[k].len;

        total += len;
        min_len = (int) len < min_len ? (int) len : min_len;
        if ((int) len >= L) {
            glm_req_error(req, 400, "BadRequestError", "input_tokens",
                          "This model's maximum context length is %d tokens. However, your"
                          " request has %zu input tokens. Please reduce the length of the"
                          " input messages.", L, len);
            goto out;
        }
        if (req->asked_max_tokens > 0 && req->asked_max_tokens > L - (long) len) {
            l = req->asked_max_tokens;
            glm_req_error(req, 400, "BadRequestError", "max_tokens",
                          "'max_tokens' or 'max_completion_tokens' is too large: %ld. This"
                          " model's maximum context length is %d tokens and your request has"
                          " %zu input tokens (%ld > %d - %zu).", l, L, len, l, L, len);
            goto out;
        }
    }
    req->prompt_tokens = (int) total;
    /* without max_tokens each choice may run to the context's end: the
     * per-token check against max_model_len stops the longer prompts */
    req->max_tokens = req->asked_max_tokens > 0 ? (int) req->asked_max_tokens : L - min_len;
    for (k = 0; k < n_prompts; k++) {
        int len = (int) prompts[k].len;
        int need = len + (req->asked_max_tokens > 0 ? (int) req->asked_max_tokens : L - len);

        if (glm_sched_blocks_for(&srv->sched, need) > glm_sched_total_blocks(&srv->sched)) {
            glm_req_error(req, 400, "BadRequestError", "max_tokens",
                          "prompt (%d tokens) plus max_tokens (%d) needs more KV cache than"
                          " the engine has (%d blocks of %d tokens); lower max_tokens",
                          len, need - len, glm_sched_total_blocks(&srv->sched),
                          srv->o.block_size);
            goto out;
        }
    }

    req->n = n_prompts * req->n_per_prompt;
    req->choices = calloc((size_t) req->n, sizeof(glm_choice));
    if (req->choices == NULL) {
        glm_req_error(req, 500, "InternalServerError", NULL, "out of memory");
        goto out;
    }
    if (!has_seed) {
        seed = (uint64_t) (glm_now_seconds() * 1e9) ^ (uint64_t) (uintptr_t) req;
    }
    for (i = 0; i < req->n; i++) {
        glm_choice *c = &req->choices[i];
        const glm_tokenizer_ids *ids = &prompts[i / req->n_per_prompt];
        glm_seq_params pi = params;

        c->prompt = i / req->n_per_prompt;
        /* each choice owns its copies of the parameter arrays */
        if (params.n_logit_bias) {
            pi.logit_bias = malloc((size_t) params.n_logit_bias * sizeof(glm_logit_bias));
            memcpy(pi.logit_bias, params.logit_bias,
                   (size_t) params.n_logit_bias * sizeof(glm_logit_bias));
        }
        pi.banned = malloc((size_t) (params.n_banned + 1) * sizeof(int32_t));
        memcpy(pi.banned, params.banned, (size_t) params.n_banned * sizeof(int32_t));
        /* seeds by choice index within the prompt, so that a seeded prompt
         * samples the same alone or in a list */
        c->seq = glm_seq_new(ids->ids, (int) ids->len, &pi,
                             seed + (uint64_t) (i % req->n_per_prompt), req, i);
        if (c->seq != NULL) {
            c->seq->mm = glm_mm_prompt_ref(mm);
        }
        if (req->op == GLM_OP_COMPLETIONS) {
            glm_detok_init(&c->detok, srv->tok, req->skip_special);
        } else {
            glm_out_opts oo;
            memset(&oo, 0, sizeof(oo));
            oo.rq = &req->out_rq;
            oo.tok = srv->tok;
            oo.skip_special = req->skip_special;
            oo.stream = req->stream;
            oo.image_w = req->image_w;
            oo.image_h = req->image_h;
            /* tool-call ids: from the request's own random id, so they
             * differ between requests even when the seed is the same */
            oo.id_seed = (uint64_t) i;
            for (const char *p = req->id; *p; p++) {
                oo.id_seed = (oo.id_seed ^ (unsigned char) *p) * 0x100000001b3ull;
            }
            c->out = glm_out_new(&oo);
        }
        if (req->tg != NULL) {
            c->tgs = glm_tg_state_new(req->tg);
            if (c->seq != NULL) {
                c->seq->constrained = 1;
            }
        }
        if (c->seq == NULL || (req->op != GLM_OP_COMPLETIONS && c->out == NULL)
            || (req->tg != NULL && c->tgs == NULL))
        {
            glm_req_error(req, 500, "InternalServerError", NULL, "out of memory");
            goto out;
        }
    }
    for (i = 0; i < req->n; i++) {
        glm_sched_add(&srv->sched, req->choices[i].seq);
    }
    srv->metrics.prompt_tokens += total * (uint64_t) req->n_per_prompt;
    if (req->stream) {
        glm_req_head(req, 200, GLM_CT_SSE);
    }
out:
    free(params.logit_bias);
    free(params.banned);
}

/* ---- the other endpoints --------------------------------------------------- */

static void
glm_models(glm_server *srv, glm_req *req)
{
    glm_str s = { 0 };
    int i;
    int64_t now = (int64_t) time(NULL);

    glm_str_adds(&s, "{\"object\":\"list\",\"data\":[");
    for (i = 0; i < srv->o.n_names; i++) {
        glm_str_addf(&s, "%s{\"id\":", i ? "," : "");
        glm_json_strz(&s, srv->o.names[i]);
        glm_str_addf(&s, ",\"object\":\"model\",\"created\":%" PRId64 ",\"owned_by\":"
                     "\"ngx_glm\",\"root\":", now);
        glm_json_strz(&s, srv->o.model_dir);
        glm_str_addf(&s, ",\"parent\":null,\"max_model_len\":%d,\"permission\":[]}",
                     srv->o.max_model_len);
    }
    glm_str_adds(&s, "]}");
    glm_req_json(req, 200, &s);
    glm_str_free(&s);
}

static void
glm_tokenize(glm_server *srv, glm_req *req, yajl_val root)
{
    glm_tokenizer_ids ids = { 0 };
    glm_str s = { 0 };
    yajl_val prompt = glm_req_field(root, "prompt");
    glm_err err;
    size_t i;

    if (prompt != NULL) {
        if (!YAJL_IS_STRING(prompt)) {
            glm_req_error(req, 400, "BadRequestError", "prompt", "'prompt' must be a string");
            return;
        }
        /* the text with its length: the tree's copy ends at a U+0000 */
        char *text;
        size_t text_len;
        int rc = glm_json_string_member(req->body.data, req->body.len, "prompt", &text,
                                        &text_len, &err);

        if (rc == 0) {
            rc = glm_tokenizer_encode(srv->tok, req->tctx, text, text_len, &ids, &err);
            free(text);
        }
        if (rc != 0) {
            glm_req_error(req, 400, "BadRequestError", "prompt", "%s", err.msg);
            return;
        }
    } else if (glm_req_field(root, "messages") != NULL) {
        yajl_val kwargs;
        int rc;

        if (glm_request_template_check(srv, req, root) != 0) {
            return;
        }
        kwargs = glm_kwargs_new(srv, root);
        rc = glm_prompt_ids(srv, req, root, kwargs, &ids);
        glm_kwargs_free(srv, kwargs);
        if (rc != 0) {
            return;
        }
        if (glm_media_has_parts(root)) {
            /* the ids the model would see: markers expanded for the media
             * (decoded here, on the intake thread: /tokenize is not a
             * serving path) */
            glm_media_job *job = calloc(1, sizeof(*job));
            if (job == NULL) {
                glm_req_error(req, 500, "InternalServerError", NULL, "out of memory");
                glm_tokenizer_ids_free(&ids);
                return;
            }
            job->ids = ids;
            glm_media_job_fill(srv, job, root, req->tctx);
            if (job->rc != 0) {
                glm_media_job_error(req, job);
                glm_media_job_free(job);
                return;
            }
            ids = job->expanded;
            memset(&job->expanded, 0, sizeof(job->expanded));
            glm_media_job_free(job);
        }
    } else {
        glm_req_error(req, 400, "BadRequestError", NULL,
                      "give either 'prompt' (a string) or 'messages' (a chat)");
        return;
    }
    glm_str_addf(&s, "{\"count\":%zu,\"max_model_len\":%d,\"tokens\":[", ids.len,
                 srv->o.max_model_len);
    for (i = 0; i < ids.len; i++) {
        glm_str_addf(&s, "%s%d", i ? "," : "", ids.ids[i]);
    }
    glm_str_adds(&s, "],\"token_strs\":null}");
    glm_req_json(req, 200, &s);
    glm_str_free(&s);
    glm_tokenizer_ids_free(&ids);
}

/*
 * /detokenize parses its body with yajl's event API straight into an id
 * array: no tree of a node per id, and a body with more ids than
 * max-model-len is refused as soon as the parse gets there, whatever its
 * size.  So is a bad id: the parse stops at the first one, so that a body
 * that is invalid JSON after it gets the bad id's error (the tree parse
 * named the invalid JSON); otherwise the errors are the tree parse's.
 */
enum { GLM_DT_OK, GLM_DT_NOT_LIST, GLM_DT_BAD_ID, GLM_DT_TOO_MANY };

typedef struct {
    int32_t    *ids;
    size_t      n, cap, limit;
    long long   vocab;
    int         depth;              /* open containers */
    int         not_object;         /* the top-level value is not an object */
    int         key_is_tokens;      /* the last top-level key was the first "tokens" */
    int         seen_tokens;
    int         in_tokens;          /* the tokens array is the open depth-2 container */
    int         err;                /* GLM_DT_*: the first error seen */
    size_t      bad_index;
} glm_dt;

enum { GLM_DT_V_SCALAR, GLM_DT_V_INT, GLM_DT_V_NULL, GLM_DT_V_MAP, GLM_DT_V_ARRAY };

/* One value (a scalar or a container's start) at the current depth. */
static int
glm_dt_value(glm_dt *dt, int kind, long long v)
{
    if (dt->depth == 0) {
        dt->not_object = kind != GLM_DT_V_MAP;
        return 1;
    }
    if (dt->not_object) {
        return 1;
    }
    if (dt->depth == 1 && dt->key_is_tokens) {
        dt->key_is_tokens = 0;
        if (kind == GLM_DT_V_ARRAY) {
            dt->in_tokens = 1;
        } else if (dt->err == GLM_DT_OK) {
            dt->err = GLM_DT_NOT_LIST;    /* null too: the same answer as absent */
        }
        return 1;
    }
    if (dt->depth == 2 && dt->in_tokens && dt->err == GLM_DT_OK) {
        if (kind != GLM_DT_V_INT || v < 0 || v >= dt->vocab) {
            dt->err = GLM_DT_BAD_ID;
            dt->bad_index = dt->n;
            return 0;                     /* stop here: the rest is not read */
        }
        if (dt->n == dt->limit) {
            dt->err = GLM_DT_TOO_MANY;
            return 0;                     /* stop here: the rest is not read */
        }
        if (dt->n == dt->cap) {
            size_t cap = dt->cap ? dt->cap * 2 : 256;
            int32_t *p = realloc(dt->ids, cap * sizeof(int32_t));
            if (p == NULL) {
                return 0;
            }
            dt->ids = p;
            dt->cap = cap;
        }
        dt->ids[dt->n++] = (int32_t) v;
    }
    return 1;
}

static int glm_dt_null(void *c) { return glm_dt_value(c, GLM_DT_V_NULL, 0); }
static int glm_dt_bool(void *c, int b) { return glm_dt_value(c, GLM_DT_V_SCALAR, 0); }
static int glm_dt_int(void *c, long long v) { return glm_dt_value(c, GLM_DT_V_INT, v); }
static int glm_dt_double(void *c, double d) { return glm_dt_value(c, GLM_DT_V_SCALAR, 0); }

static int
glm_dt_string(void *c, const unsigned char *s, size_t n)
{
    return glm_dt_value(c, GLM_DT_V_SCALAR, 0);
}

static int
glm_dt_start(glm_dt *dt, int kind)
{
    int rc = glm_dt_value(dt, kind, 0);

    dt->depth++;
    return rc;
}

static int glm_dt_start_map(void *c) { return glm_dt_start(c, GLM_DT_V_MAP); }
static int glm_dt_start_array(void *c) { return glm_dt_start(c, GLM_DT_V_ARRAY); }

static int
glm_dt_end(void *c)
{
    glm_dt *dt = c;

    if (--dt->depth == 1) {
        dt->in_tokens = 0;
    }
    return 1;
}

static int
glm_dt_key(void *c, const unsigned char *k, size_t n)
{
    glm_dt *dt = c;

    if (dt->depth == 1 && !dt->not_object) {
        dt->key_is_tokens = !dt->seen_tokens && n == 6 && memcmp(k, "tokens", 6) == 0;
        dt->seen_tokens |= dt->key_is_tokens;
    }
    return 1;
}

static const yajl_callbacks glm_dt_callbacks = {
    glm_dt_null, glm_dt_bool, glm_dt_int, glm_dt_double, NULL, glm_dt_string,
    glm_dt_start_map, glm_dt_key, glm_dt_end, glm_dt_start_array, glm_dt_end,
};

static void
glm_detokenize(glm_server *srv, glm_req *req)
{
    const unsigned char *body = (const unsigned char *) (req->body.data ? req->body.data : "");
    size_t len = strlen((const char *) body);     /* as yajl_tree_parse reads it */
    glm_tokenizer_buf text = { 0 };
    glm_str s = { 0 };
    glm_dt dt;
    yajl_handle h;
    yajl_status st;

    memset(&dt, 0, sizeof(dt));
    dt.vocab = srv->m->cfg.vocab_size;
    dt.limit = (size_t) srv->o.max_model_len;
    h = yajl_alloc(&glm_dt_callbacks, NULL, &dt);
    if (h == NULL) {
        glm_req_error(req, 500, "InternalServerError", NULL, "out of memory");
        return;
    }
    yajl_config(h, yajl_allow_comments, 1);        /* as yajl_tree_parse */
    st = yajl_parse(h, body, len);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }
    if (st == yajl_status_client_canceled && dt.err == GLM_DT_OK) {
        glm_req_error(req, 500, "InternalServerError", NULL, "out of memory");
    } else if (st == yajl_status_client_canceled && dt.err == GLM_DT_TOO_MANY) {
        glm_req_error(req, 413, "RequestEntityTooLargeError", "tokens", "'tokens' holds more"
                      " than %zu token ids, the engine's limit (its max-model-len):"
                      " detokenize at most %zu at a time", dt.limit, dt.limit);
    } else if (st == yajl_status_client_canceled) {   /* GLM_DT_BAD_ID */
        glm_req_error(req, 400, "BadRequestError", "tokens", "token %zu is not an id"
                      " below %d", dt.bad_index, srv->m->cfg.vocab_size);
    } else if (st != yajl_status_ok) {
        char *e = (char *) yajl_get_error(h, 1, body, len), *nl;

        if ((nl = strchr(e, '\n')) != NULL) {
            *nl = '\0';
        }
        glm_req_error(req, 400, "BadRequestError", NULL, "the request body is not a JSON"
                      " object: %s", e);
        yajl_free_error(h, (unsigned char *) e);
    } else if (dt.not_object) {
        glm_req_error(req, 400, "BadRequestError", NULL, "the request body is not a JSON"
                      " object");
    } else if (!dt.seen_tokens || dt.err == GLM_DT_NOT_LIST) {
        glm_req_error(req, 400, "BadRequestError", "tokens", "'tokens' must be a list of"
                      " token ids");
    } else {
        glm_tokenizer_decode(srv->tok, dt.ids, dt.n, 0, &text, NULL);
        glm_str_adds(&s, "{\"prompt\":");
        glm_json_str(&s, text.data ? text.data : "", text.len);
        glm_str_adds(&s, "}");
        glm_req_json(req, 200, &s);
    }
    yajl_free(h);
    glm_str_free(&s);
    glm_tokenizer_buf_free(&text);
    free(dt.ids);
}

static void
glm_prom_hist(glm_str *s, const char *name, const char *model, const double *sum,
    const uint64_t *n, const uint64_t *b)
{
    static const char *le[12] = { "0.001", "0.005", "0.01", "0.02", "0.05", "0.1",
                                  "0.25", "0.5", "1.0", "2.5", "10.0", "60.0" };
    int i;

    glm_str_addf(s, "# TYPE %s histogram\n", name);
    for (i = 0; i < 12; i++) {
        glm_str_addf(s, "%s_bucket{model_name=\"%s\",le=\"%s\"} %" PRIu64 "\n", name,
                     model, le[i], b[i]);
    }
    glm_str_addf(s, "%s_bucket{model_name=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", name, model, *n);
    glm_str_addf(s, "%s_sum{model_name=\"%s\"} %.6f\n", name, model, *sum);
    glm_str_addf(s, "%s_count{model_name=\"%s\"} %" PRIu64 "\n", name, model, *n);
}

static void
glm_metrics_text(glm_server *srv, glm_req *req)
{
    glm_metrics *mt = &srv->metrics;
    glm_sched *sc = &srv->sched;
    glm_str s = { 0 };
    const char *m = srv->o.names[0];
    int total = glm_sched_total_blocks(sc);

    glm_str_addf(&s, "# TYPE vllm:num_requests_running gauge\n"
                 "vllm:num_requests_running{model_name=\"%s\"} %d\n", m, sc->n_running);
    glm_str_addf(&s, "# TYPE vllm:num_requests_waiting gauge\n"
                 "vllm:num_requests_waiting{model_name=\"%s\"} %d\n", m, sc->n_waiting);
    glm_str_addf(&s, "# TYPE vllm:kv_cache_usage_perc gauge\n"
                 "vllm:kv_cache_usage_perc{model_name=\"%s\"} %.6f\n", m,
                 total ? (double) (total - glm_sched_free_blocks(sc)) / total : 0.0);
    glm_str_addf(&s, "# TYPE vllm:prompt_tokens_total counter\n"
                 "vllm:prompt_tokens_total{model_name=\"%s\"} %" PRIu64 "\n", m,
                 mt->prompt_tokens);
    glm_str_addf(&s, "# TYPE vllm:generation_tokens_total counter\n"
                 "vllm:generation_tokens_total{model_name=\"%s\"} %" PRIu64 "\n", m,
                 mt->generation_tokens);
    glm_str_addf(&s, "# TYPE vllm:prefix_cache_queries_total counter\n"
                 "vllm:prefix_cache_queries_total{model_name=\"%s\"} %" PRIu64 "\n", m,
                 sc->prefix_queries);
    glm_str_addf(&s, "# TYPE vllm:prefix_cache_hits_total counter\n"
                 "vllm:prefix_cache_hits_total{model_name=\"%s\"} %" PRIu64 "\n", m,
                 sc->prefix_hits);
    if (sc->spec) {
        /* vLLM's speculative-decoding counters: drafts verified (one token
         * each), and those the sampled token matched */
        glm_str_addf(&s, "# TYPE vllm:spec_decode_num_drafts_total counter\n"
                     "vllm:spec_decode_num_drafts_total{model_name=\"%s\"} %" PRIu64 "\n"
                     "# TYPE vllm:spec_decode_num_draft_tokens_total counter\n"
                     "vllm:spec_decode_num_draft_tokens_total{model_name=\"%s\"} %" PRIu64 "\n"
                     "# TYPE vllm:spec_decode_num_accepted_tokens_total counter\n"
                     "vllm:spec_decode_num_accepted_tokens_total{model_name=\"%s\"} %" PRIu64
                     "\n", m, sc->spec_drafts, m, sc->spec_drafts, m, sc->spec_accepted);
    }
    glm_str_addf(&s, "# TYPE vllm:num_preemptions_total counter\n"
                 "vllm:num_preemptions_total{model_name=\"%s\"} %" PRIu64 "\n", m,
                 sc->preemptions);
    glm_str_addf(&s, "# TYPE vllm:request_success_total counter\n"
                 "vllm:request_success_total{model_name=\"%s\",finished_reason=\"stop\"} %"
                 PRIu64 "\n"
                 "vllm:request_success_total{model_name=\"%s\",finished_reason=\"length\"} %"
                 PRIu64 "\n"
                 "vllm:request_success_total{model_name=\"%s\",finished_reason=\"abort\"} %"
                 PRIu64 "\n", m, mt->requests_stop, m,
                 mt->requests_length, m, mt->requests_abort);
    glm_prom_hist(&s, "vllm:time_to_first_token_seconds", m, &mt->ttft_sum, &mt->ttft_n,
                  mt->ttft_b);
    glm_prom_hist(&s, "vllm:inter_token_latency_seconds", m, &mt->itl_sum, &mt->itl_n,
                  mt->itl_b);
    glm_prom_hist(&s, "vllm:e2e_request_latency_seconds", m, &mt->e2e_sum, &mt->e2e_n,
                  mt->e2e_b);
    glm_req_head(req, 200, GLM_CT_TEXT);
    glm_req_queue(req, GLM_REC_DATA, s.data, s.len);
    glm_req_end(req);
    glm_str_free(&s);
}

int
glm_req_on_loop(const glm_req *req)
{
    return req->op == GLM_OP_MODELS || req->op == GLM_OP_METRICS
           || req->op == GLM_OP_VERSION;
}

void
glm_req_intake(glm_server *srv, glm_req *req)
{
    yajl_val root = NULL;
    char ebuf[256];

    req->intake = GLM_INTAKE_ANSWERED;
    if (req->op == GLM_OP_MODELS) {
        glm_models(srv, req);
        return;
    }
    if (req->op == GLM_OP_METRICS) {
        glm_metrics_text(srv, req);
        return;
    }
    if (req->op == GLM_OP_VERSION) {
        glm_str s = { 0 };
        glm_str_addf(&s, "{\"version\":\"%s\"}", glm_engine_version);
        glm_req_json(req, 200, &s);
        glm_str_free(&s);
        return;
    }
    if (req->op == GLM_OP_DETOKENIZE) {
        glm_detokenize(srv, req);
        return;
    }
    root = yajl_tree_parse(req->body.data ? req->body.data : "", ebuf, sizeof(ebuf));
    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        char *nl = strchr(ebuf, '\n');
        if (nl) {
            *nl = '\0';
        }
        glm_req_error(req, 400, "BadRequestError", NULL, "the request body is not a JSON"
                      " object%s%s", root ? "" : ": ", root ? "" : ebuf);
        yajl_tree_free(root);
        return;
    }
    switch (req->op) {
    case GLM_OP_CHAT:
        glm_chat(srv, req, root);
        break;
    case GLM_OP_COMPLETIONS:
        glm_completions(srv, req, root);
        break;
    case GLM_OP_TOKENIZE:
        glm_tokenize(srv, req, root);
        break;
    default:
        glm_req_error(req, 404, "NotFoundError", NULL, "unknown operation %u", req->op);
        break;
    }
    yajl_tree_free(root);
}

void
glm_req_intake_done(glm_server *srv, glm_req *req)
{
    glm_media_job *job = req->intake_media;

    req->tctx = NULL;
    if (req->intake == GLM_INTAKE_ADMIT && req->op == GLM_OP_COMPLETIONS) {
        glm_completions_admit(srv, req);
    } else if (req->intake == GLM_INTAKE_ADMIT) {
        /* glm_req_admit takes over the parameters' arrays */
        glm_req_admit(srv, req, &req->intake_ids, 1, NULL, &req->mparams, req->mseed,
                      req->mhas_seed);
        memset(&req->mparams, 0, sizeof(req->mparams));
        glm_tokenizer_ids_free(&req->intake_ids);
    } else if (req->intake == GLM_INTAKE_MEDIA) {
        req->intake_media = NULL;
        req->media_wait = 1;
        glm_media_submit(srv, job);
    }
    req->intake = GLM_INTAKE_ANSWERED;
}

void
glm_req_handle(glm_server *srv, glm_req *req)
{
    req->tctx = srv->tok_ctx;
    glm_req_intake(srv, req);
    glm_req_intake_done(srv, req);
}
