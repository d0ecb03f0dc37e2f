/*
 * completions.c: POST /v1/completions, vLLM's legacy text completions
 * (CompletionRequest, OpenAIServingCompletion), through `glm_pass
 * completions`.
 *
 * The prompt is a string, a list of token ids, or a list of either; each
 * prompt gets its own n choices, indexed prompt * n + i, and counts once in
 * usage.prompt_tokens.  No chat template and no output parsing: the text is
 * the sampled tokens decoded (skip_special_tokens as asked), cut by stop
 * strings and token ids as in chat.  max_tokens defaults to 16; echo puts
 * the prompt's text (and with logprobs the prompt's logprobs, the first
 * token's null) before the completion, and echo with max_tokens 0 answers
 * the prompt alone after one sampled token, as vLLM does.  logprobs is the
 * legacy object {text_offset, token_logprobs, tokens, top_logprobs}, where
 * each top_logprobs entry maps token texts to logprobs: the sampled token
 * first, then the N most likely (at most N+1 entries), text_offset counting
 * code points of those token texts.  Streaming sends a chunk for every
 * sampled token (stream_interval merges them), the prompt's text and ids in
 * a choice's first.  suffix is refused as vLLM refuses it.  Structured
 * outputs constrain the text from its first token (no thinking here).
 */
#include "openai.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "text/chat_template.h"

#define GLM_MAX_PROMPTS  128        /* prompts in one request */

static int glm_cmpl_prompts(glm_server *srv, glm_req *req, yajl_val root);
static int glm_cmpl_add_prompt(glm_server *srv, glm_req *req, yajl_val root, yajl_val v,
    const char *text, size_t len, int index);
static int glm_cmpl_structured(glm_server *srv, glm_req *req, yajl_val root);
static void glm_cmpl_begin(glm_req *req, glm_str *s);
static void glm_cmpl_logprobs(glm_server *srv, const glm_req *req, const glm_choice *c,
    int with_prompt, const glm_sampled *out, int n_out, long base, glm_str *s);
static long glm_utf8_chars(const char *p, size_t n);

void
glm_completions(glm_server *srv, glm_req *req, yajl_val root)
{
    glm_seq_params params;
    uint64_t seed = 0;
    int has_seed = 0, n;
    long l;

    memset(&params, 0, sizeof(params));
    if (glm_req_common(srv, req, root, "cmpl-") != 0
        || glm_request_fields_check(srv, req, root, GLM_OP_COMPLETIONS) != 0
        || glm_req_bool(req, root, "echo", &req->echo) < 0)
    {
        return;
    }
    if ((n = glm_logprob_count(srv, req, root, "logprobs", &req->top_logprobs)) < 0
        || (n > 0 && glm_logprob_max(req, "logprobs", "sample", req->top_logprobs) != 0))
    {
        return;
    }
    req->logprobs = n > 0;

    /* max_tokens: 16 when absent or null, as vLLM; 0 only with echo */
    if (glm_req_int(req, root, "max_tokens", 0, INT32_MAX, &l) < 0) {
        return;
    }
    req->asked_max_tokens = glm_req_field(root, "max_tokens") != NULL ? l : 16;
    if (req->asked_max_tokens == 0 && !req->echo) {
        glm_req_error(req, 400, "BadRequestError", "max_tokens",
                      "max_tokens must be at least 1, got 0.");
        return;
    }
    if (req->asked_max_tokens == 0) {
        /* the prompt alone, after the one token vLLM samples anyway */
        req->echo_only = 1;
        req->asked_max_tokens = 1;
    }

    if (glm_req_params(srv, req, root, &params, &seed, &has_seed) != 0
        || glm_cmpl_structured(srv, req, root) != 0
        || glm_cmpl_prompts(srv, req, root) != 0)
    {
        free(params.logit_bias);
        free(params.banned);
        return;
    }
    if (req->n_prompts * req->n_per_prompt > 1024) {
        glm_req_error(req, 400, "BadRequestError", "n", "%d prompts with n=%d ask for %d"
                      " choices; at most 1024 are served at once", req->n_prompts,
                      req->n_per_prompt, req->n_prompts * req->n_per_prompt);
        free(params.logit_bias);
        free(params.banned);
        return;
    }
    /* admitted by glm_completions_admit, on the loop */
    req->mparams = params;
    req->mseed = seed;
    req->mhas_seed = has_seed;
    req->intake = GLM_INTAKE_ADMIT;
}

void
glm_completions_admit(glm_server *srv, glm_req *req)
{
    /* glm_req_admit takes over the parameters' arrays */
    glm_req_admit(srv, req, req->prompts, req->n_prompts, NULL, &req->mparams, req->mseed,
                  req->mhas_seed);
    memset(&req->mparams, 0, sizeof(req->mparams));
}

/* response_format / structured_outputs: the chat grammar with no tools
 * and no thinking, so that the constraint holds from the first token */
static int
glm_cmpl_structured(glm_server *srv, glm_req *req, yajl_val root)
{
    glm_out_request *rq = &req->out_rq;
    const char *param = NULL;
    glm_err err;

    memset(rq, 0, sizeof(*rq));
    rq->tg.named = -1;
    rq->tg.think_budget = -1;
    rq->tg.choice = GLM_TOOL_CHOICE_NONE;
    if (glm_so_parse(&rq->so, &rq->tools, root, 0, 0, &param, &err) != 0) {
        glm_req_error(req, 400, "BadRequestError", param, "%s", err.msg);
        return -1;
    }
    if (rq->so.kind == GLM_SO_NONE) {
        return 0;
    }
    if (srv->tg_vocab == NULL) {
        glm_req_error(req, 400, "BadRequestError", "response_format", "structured outputs"
                      " are not available: the tokenizer lacks GLM's tag tokens, which the"
                      " constrained-decoding grammar needs");
        return -1;
    }
    rq->tg.so = &rq->so;
    rq->constrain = 1;
    req->tg = glm_tg_new(srv->tg_vocab, rq->tools, &rq->tg, &err);
    if (req->tg == NULL) {
        glm_req_error(req, 400, "BadRequestError", "response_format", "%s", err.msg);
        return -1;
    }
    return 0;
}

/* The prompts: ids, and for echo their text (a token prompt's decoded). */
static int
glm_cmpl_prompts(glm_server *srv, glm_req *req, yajl_val root)
{
    yajl_val v = glm_req_field(root, "prompt");
    size_t i, n = 1;
    int all_ints = 1, all_strings = 1, all_lists = 1;

    if (v == NULL || (YAJL_IS_STRING(v) && v->u.string[0] == '\0')
        || (YAJL_IS_ARRAY(v) && v->u.array.len == 0))
    {
        glm_req_error(req, 400, "BadRequestError", "prompt",
                      "Either prompt or prompt_embeds must be provided and non-empty.");
        return -1;
    }
    if (YAJL_IS_ARRAY(v)) {
        for (i = 0; i < v->u.array.len; i++) {
            yajl_val e = v->u.array.values[i];
            all_ints &= YAJL_IS_INTEGER(e);
            all_strings &= YAJL_IS_STRING(e);
            all_lists &= YAJL_IS_ARRAY(e);
        }
        if (!all_ints && !all_strings && !all_lists) {
            glm_req_error(req, 400, "BadRequestError", "prompt", "'prompt' must be a"
                          " string, a list of token ids, or a list of strings or of lists"
                          " of token ids");
            return -1;
        }
        n = all_ints ? 1 : v->u.array.len;
    } else if (!YAJL_IS_STRING(v)) {
        glm_req_error(req, 400, "BadRequestError", "prompt", "'prompt' must be a string,"
                      " a list of token ids, or a list of strings or of lists of token ids");
        return -1;
    }
    if (n > GLM_MAX_PROMPTS) {
        glm_req_error(req, 400, "BadRequestError", "prompt", "prompt list length %zu"
                      " exceeds the maximum allowed count of %d.", n, GLM_MAX_PROMPTS);
        return -1;
    }
    req->prompts = calloc(n, sizeof(glm_tokenizer_ids));
    req->prompt_texts = calloc(n, sizeof(glm_str));
    if (req->prompts == NULL || req->prompt_texts == NULL) {
        glm_req_error(req, 500, "InternalServerError", NULL, "out of memory");
        return -1;
    }
    req->n_prompts = (int) n;
    if (YAJL_IS_STRING(v)) {
        /* the text with its length: the tree's copy ends at a U+0000 */
        char *text;
        size_t len;
        glm_err err;
        int rc;

        if (glm_json_string_member(req->body.data, req->body.len, "prompt", &text, &len,
                                   &err) != 0)
        {
            glm_req_error(req, 400, "BadRequestError", "prompt", "%s", err.msg);
            return -1;
        }
        rc = glm_cmpl_add_prompt(srv, req, root, NULL, text, len, 0);
        free(text);
        return rc;
    }
    if (all_ints) {
        return glm_cmpl_add_prompt(srv, req, root, v, NULL, 0, 0);
    }
    for (i = 0; i < n; i++) {
        yajl_val e = v->u.array.values[i];
        int rc = YAJL_IS_STRING(e)
                 ? glm_cmpl_add_prompt(srv, req, root, NULL, e->u.string,
                                       strlen(e->u.string), (int) i)
                 : glm_cmpl_add_prompt(srv, req, root, e, NULL, 0, (int) i);
        if (rc != 0) {
            return -1;
        }
    }
    return 0;
}

/* One prompt from text, or from the list of ids ids_v. */
static int
glm_cmpl_add_prompt(glm_server *srv, glm_req *req, yajl_val root, yajl_val ids_v,
    const char *text, size_t len, int index)
{
    glm_tokenizer_ids *ids = &req->prompts[index];
    glm_str *echo = &req->prompt_texts[index];
    int32_t vocab = srv->m->cfg.vocab_size;
    glm_err err;
    size_t i, n;

    if (ids_v != NULL) {
        for (i = 0; i < ids_v->u.array.len; i++) {
            yajl_val e = ids_v->u.array.values[i];
            if (!YAJL_IS_INTEGER(e) || YAJL_GET_INTEGER(e) < 0) {
                glm_req_error(req, 400, "BadRequestError", "prompt", "'prompt' must be a"
                              " string, a list of token ids, or a list of strings or of"
                              " lists of token ids");
                return -1;
            }
            if (YAJL_GET_INTEGER(e) >= vocab) {
                glm_req_error(req, 400, "BadRequestError", "prompt", "Token id %lld is out"
                              " of vocabulary", (long long) YAJL_GET_INTEGER(e));
                return -1;
            }
            if (glm_tokenizer_ids_push(ids, (int32_t) YAJL_GET_INTEGER(e), &err) != 0) {
                glm_req_error(req, 500, "InternalServerError", NULL, "%s", err.msg);
                return -1;
            }
        }
        if (req->echo && !req->return_token_ids) {
            glm_tokenizer_buf t = { 0 };

            glm_tokenizer_decode(srv->tok, ids->ids, ids->len, 0, &t, NULL);
            glm_str_add(echo, t.data, t.len);
            glm_tokenizer_buf_free(&t);
        }
    } else {
        if (glm_tokenizer_encode(srv->tok, req->tctx, text, len, ids, &err) != 0) {
            glm_req_error(req, 400, "BadRequestError", "prompt", "%s", err.msg);
            return -1;
        }
        /* with return_token_ids the ids stand for the prompt, as vLLM */
        if (req->echo && !req->return_token_ids) {
            glm_str_add(echo, text, len);
        }
    }
    n = ids->len;
    if (glm_req_truncate(srv, req, root, ids, 0, "max_tokens") != 0) {
        return -1;
    }
    if (ids->len < n && req->echo && !req->return_token_ids) {
        glm_tokenizer_buf t = { 0 };

        /* cut: what is echoed is what the model saw */
        echo->len = 0;
        glm_tokenizer_decode(srv->tok, ids->ids, ids->len, 0, &t, NULL);
        glm_str_add(echo, t.data, t.len);
        glm_tokenizer_buf_free(&t);
    }
    if (ids->len == 0) {
        glm_req_error(req, 400, "BadRequestError", "prompt",
                      "The decoder prompt cannot be empty");
        return -1;
    }
    return 0;
}

/* ---- output ------------------------------------------------------------------ */

void
glm_cmpl_decode(glm_req *req, glm_choice *c, int32_t token, glm_str *text)
{
    glm_tokenizer_buf b = { 0 };

    glm_detok_push(&c->detok, token, &b, NULL);
    glm_str_add(text, b.data, b.len);
    glm_tokenizer_buf_free(&b);
}

void
glm_cmpl_decode_flush(glm_choice *c, glm_str *text)
{
    glm_tokenizer_buf b = { 0 };

    if (glm_detok_flush(&c->detok, &b, NULL) == 0) {
        glm_str_add(text, b.data, b.len);
    }
    glm_tokenizer_buf_free(&b);
}

void
glm_cmpl_keep_logprob(glm_choice *c, const glm_sampled *sm)
{
    if (c->n_out_lp == c->cap_out_lp) {
        int cap = c->cap_out_lp ? 2 * c->cap_out_lp : 16;
        glm_sampled *p = realloc(c->out_lp, (size_t) cap * sizeof(glm_sampled));

        if (p == NULL) {
            return;
        }
        c->out_lp = p;
        c->cap_out_lp = cap;
    }
    c->out_lp[c->n_out_lp++] = *sm;
}

void
glm_cmpl_text(glm_choice *c, const char *text, size_t n)
{
    glm_str_add(&c->content, text, n);
}

static void
glm_cmpl_begin(glm_req *req, glm_str *s)
{
    glm_str_adds(s, "{\"id\":");
    glm_json_strz(s, req->id);
    glm_str_addf(s, ",\"object\":\"text_completion\",\"created\":%" PRId64 ",\"model\":",
                 req->created);
    glm_json_strz(s, req->model);
}

static long
glm_utf8_chars(const char *p, size_t n)
{
    long chars = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        chars += ((unsigned char) p[i] & 0xc0) != 0x80;
    }
    return chars;
}

/* One entry's text for tokens[] and the top_logprobs keys. */
static void
glm_cmpl_token_text(glm_server *srv, const glm_req *req, int32_t id, glm_str *out)
{
    glm_tokenizer_buf t = { 0 };

    out->len = 0;
    if (req->tokens_as_ids) {
        glm_str_addf(out, "token_id:%d", id);
        return;
    }
    glm_tokenizer_decode(srv->tok, &id, 1, 0, &t, NULL);
    glm_str_add(out, t.data, t.len);
    glm_tokenizer_buf_free(&t);
}

/* The top_logprobs map of one position: the token first, then the others
 * in their order, an id seen before not repeated, at most keep ids; keyed
 * by text, a text seen before keeps its place and takes the later value,
 * as the Python dict vLLM builds. */
static void
glm_cmpl_top_map(glm_server *srv, const glm_req *req, const glm_sampled *lp, int keep,
    glm_str *s)
{
    glm_str texts[21], tmp = { 0 };
    double values[21];
    int32_t ids[21];
    int n_ids = 0, n_texts = 0, k, j;

    memset(texts, 0, sizeof(texts));
    for (k = -1; k < lp->n_top && n_ids < keep && n_ids < 21; k++) {
        int32_t id = k < 0 ? lp->token : lp->top_ids[k];
        double v = fmax(k < 0 ? lp->logprob : lp->top_logprobs[k], -9999.0);

        for (j = 0; j < n_ids && ids[j] != id; j++) { }
        if (j < n_ids) {
            continue;
        }
        ids[n_ids++] = id;
        glm_cmpl_token_text(srv, req, id, &tmp);
        for (j = 0; j < n_texts; j++) {
            if (texts[j].len == tmp.len
                && (tmp.len == 0 || memcmp(texts[j].data, tmp.data, tmp.len) == 0))
            {
                break;
            }
        }
        if (j == n_texts) {
            glm_str_add(&texts[n_texts++], tmp.data ? tmp.data : "", tmp.len);
        }
        values[j] = v;
    }
    glm_str_adds(s, "{");
    for (j = 0; j < n_texts; j++) {
        glm_str_adds(s, j ? "," : "");
        glm_json_str(s, texts[j].data, texts[j].len);
        glm_str_adds(s, ":");
        glm_json_double(s, values[j]);
    }
    glm_str_adds(s, "}");
    for (j = 0; j < n_texts; j++) {
        glm_str_free(&texts[j]);
    }
    glm_str_free(&tmp);
}

/*
 * The legacy logprobs object for the prompt's tokens (with_prompt: echo;
 * the first has no logprob) then n_out sampled ones; text offsets from base.
 */
static void
glm_cmpl_logprobs(glm_server *srv, const glm_req *req, const glm_choice *c,
    int with_prompt, const glm_sampled *out, int n_out, long base, glm_str *s)
{
    glm_str tokens = { 0 }, values = { 0 }, tops = { 0 }, offsets = { 0 }, text = { 0 };
    const glm_tokenizer_ids *prompt = &req->prompts[c->prompt];
    int n_prompt = with_prompt ? (int) prompt->len : 0, i, keep;
    long offset = base;

    keep = req->n_logprob_ids > 0 ? 21 : req->top_logprobs + 1;
    for (i = 0; i < n_prompt + n_out; i++) {
        const glm_sampled *lp = NULL;
        int32_t id;

        if (i < n_prompt) {
            id = prompt->ids[i];
            lp = i > 0 && c->prompt_lp != NULL ? &c->prompt_lp[i] : NULL;
        } else {
            lp = &out[i - n_prompt];
            id = lp->token;
        }
        glm_cmpl_token_text(srv, req, id, &text);
        glm_str_adds(&tokens, i ? "," : "");
        glm_json_str(&tokens, text.data ? text.data : "", text.len);
        glm_str_addf(&offsets, "%s%ld", i ? "," : "", offset);
        offset += glm_utf8_chars(text.data ? text.data : "", text.len);
        glm_str_adds(&values, i ? "," : "");
        glm_str_adds(&tops, i ? "," : "");
        if (lp == NULL) {
            glm_str_adds(&values, "null");
            glm_str_adds(&tops, "null");
        } else {
            glm_json_double(&values, fmax(lp->logprob, -9999.0));
            glm_cmpl_top_map(srv, req, lp, keep, &tops);
        }
    }
    glm_str_adds(s, "{\"text_offset\":[");
    glm_str_add(s, offsets.data, offsets.len);
    glm_str_adds(s, "],\"token_logprobs\":[");
    glm_str_add(s, values.data, values.len);
    glm_str_adds(s, "],\"tokens\":[");
    glm_str_add(s, tokens.data, tokens.len);
    glm_str_adds(s, "],\"top_logprobs\":[");
    glm_str_add(s, tops.data, tops.len);
    glm_str_adds(s, "]}");
    glm_str_free(&tokens);
    glm_str_free(&values);
    glm_str_free(&tops);
    glm_str_free(&offsets);
    glm_str_free(&text);
}


void
glm_cmpl_chunk(glm_req *req, glm_choice *c, int index, const char *text, size_t n,
    int final)
{
    glm_server *srv = req->srv;
    const glm_tokenizer_ids *prompt = &req->prompts[c->prompt];
    const glm_str *ptext = &req->prompt_texts[c->prompt];
    int first = !c->role_sent, echo = first && req->echo;
    glm_str s = { 0 }, delta = { 0 };

    if (!req->echo_only) {
        glm_str_add(&c->content, text, n);
    }
    if (!first && !final && c->pending_ids < req->stream_interval) {
        return;
    }
    if (echo) {
        glm_str_add(&delta, ptext->data, ptext->len);
    }
    glm_str_add(&delta, c->content.data, c->content.len);
    c->content.len = 0;

    glm_str_adds(&s, "data: ");
    glm_cmpl_begin(req, &s);
    glm_str_addf(&s, ",\"choices\":[{\"index\":%d,\"text\":", index);
    glm_json_str(&s, delta.data ? delta.data : "", delta.len);
    glm_str_adds(&s, ",\"logprobs\":");
    if (req->logprobs) {
        glm_cmpl_logprobs(srv, req, c, echo, c->out_lp,
                          req->echo_only ? 0 : c->n_out_lp, c->text_chars, &s);
    } else {
        glm_str_adds(&s, "null");
    }
    c->n_out_lp = 0;
    c->text_chars += glm_utf8_chars(delta.data ? delta.data : "", delta.len);
    glm_str_adds(&s, ",\"finish_reason\":");
    if (final) {
        glm_json_strz(&s, c->finish_reason);
        glm_str_adds(&s, ",\"stop_reason\":");
        glm_str_add(&s, c->stop_reason.data ? c->stop_reason.data : "null",
                    c->stop_reason.data ? c->stop_reason.len : 4);
    } else {
        glm_str_adds(&s, "null,\"stop_reason\":null");
    }
    /* the prompt's ids: in the first chunk with echo, or when asked */
    glm_str_adds(&s, ",\"prompt_token_ids\":");
    if (first && (req->echo || req->return_token_ids)) {
        glm_ids_json(&s, prompt->ids, (int) prompt->len);
    } else {
        glm_str_adds(&s, "null");
    }
    glm_str_adds(&s, ",\"token_ids\":");
    if (req->return_token_ids) {
        glm_ids_json(&s, c->seq->tokens + c->seq->n_tokens - c->pending_ids, c->pending_ids);
    } else {
        glm_str_adds(&s, "null");
    }
    glm_str_adds(&s, "}]");
    glm_req_chunk_usage(req, c, &s, 0, 0);
    glm_str_adds(&s, "}\n\n");
    glm_req_queue(req, GLM_REC_DATA, s.data, s.len);
    c->pending_ids = 0;
    c->role_sent = 1;
    glm_str_free(&s);
    glm_str_free(&delta);
}

void
glm_cmpl_final_body(glm_req *req)
{
    glm_server *srv = req->srv;
    glm_str s = { 0 }, text = { 0 };
    int i, completion = 0;

    glm_cmpl_begin(req, &s);
    glm_str_adds(&s, ",\"choices\":[");
    for (i = 0; i < req->n; i++) {
        glm_choice *c = &req->choices[i];
        const glm_tokenizer_ids *prompt = &req->prompts[c->prompt];
        const glm_str *ptext = &req->prompt_texts[c->prompt];
        int n_out = c->seq->n_tokens - c->seq->n_prompt;

        completion += c->completion_tokens;
        text.len = 0;
        if (req->echo) {
            glm_str_add(&text, ptext->data, ptext->len);
        }
        if (!req->echo_only) {
            glm_str_add(&text, c->content.data, c->content.len);
        }
        glm_str_addf(&s, "%s{\"index\":%d,\"text\":", i ? "," : "", i);
        glm_json_str(&s, text.data ? text.data : "", text.len);
        glm_str_adds(&s, ",\"logprobs\":");
        if (req->logprobs) {
            glm_cmpl_logprobs(srv, req, c, req->echo, c->out_lp,
                              req->echo_only ? 0 : c->n_out_lp, 0, &s);
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
            glm_ids_json(&s, c->seq->tokens + c->seq->n_prompt, n_out);
        } else {
            glm_str_adds(&s, "null");
        }
        glm_str_adds(&s, ",\"prompt_logprobs\":");
        glm_prompt_logprobs_json(srv, c, &s);
        glm_str_adds(&s, ",\"prompt_token_ids\":");
        if (req->return_token_ids) {
            glm_ids_json(&s, prompt->ids, (int) prompt->len);
        } else {
            glm_str_adds(&s, "null");
        }
        glm_str_adds(&s, "}");
    }
    glm_str_addf(&s, "],\"service_tier\":null,\"system_fingerprint\":null,\"usage\":{"
                 "\"prompt_tokens\":%d,\"total_tokens\":%d,\"completion_tokens\":%d,"
                 "\"prompt_tokens_details\":null},\"kv_transfer_params\":null}",
                 req->prompt_tokens, req->prompt_tokens + completion, completion);
    glm_req_json(req, 200, &s);
    glm_str_free(&s);
    glm_str_free(&text);
}

void
glm_cmpl_stream_end(glm_req *req)
{
    glm_str s = { 0 };
    int i, completion = 0;

    if (req->include_usage) {
        for (i = 0; i < req->n; i++) {
            completion += req->choices[i].completion_tokens;
        }
        glm_str_adds(&s, "data: ");
        glm_cmpl_begin(req, &s);
        glm_str_addf(&s, ",\"choices\":[],\"usage\":{\"prompt_tokens\":%d,"
                     "\"total_tokens\":%d,\"completion_tokens\":%d}}\n\n",
                     req->prompt_tokens, req->prompt_tokens + completion, completion);
    }
    glm_str_adds(&s, "data: [DONE]\n\n");
    glm_req_queue(req, GLM_REC_DATA, s.data, s.len);
    glm_req_end(req);
    glm_str_free(&s);
}
