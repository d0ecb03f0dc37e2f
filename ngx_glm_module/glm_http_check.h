/*
 * glm_http_check.h: the HTTP-facing rules of ngx_glm that need no nginx:
 * request body checks (yajl), OpenAI-shaped error bodies, the in-band SSE
 * error event, the served-model list of the segment.
 *
 * The nginx module only calls these and moves their bytes into buffers; the
 * unit test (t/unit/test_http_check.c) calls them directly.  Nothing here
 * keeps state between calls, and nothing allocates except the yajl parser,
 * which is freed before glm_http_check_body() returns.
 *
 * Error bodies are the vLLM >= 0.10.1 shape:
 *   {"error":{"message":"...","type":"BadRequestError","param":null,
 *             "code":400}}
 * The in-band SSE error (after a 200 stream has begun) is that object as one
 * event, then the terminator openai-python waits for:
 *   data: {"error":{...}}\n\ndata: [DONE]\n\n
 */
#ifndef GLM_HTTP_CHECK_H
#define GLM_HTTP_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "ring/ring.h"

#define GLM_CHECK_MSG_MAX    512
#define GLM_CHECK_MODEL_MAX  256

typedef struct {
    /* outcome: 0 when the body passed, else the HTTP status to answer */
    unsigned     status;
    char         message[GLM_CHECK_MSG_MAX];
    const char  *param;                 /* static string or NULL */

    /* facts learned on the way (valid when status == 0) */
    int          stream;                /* "stream": true */
    int          has_model;             /* "model" is a string */
    int          model_truncated;       /* longer than GLM_CHECK_MODEL_MAX */
    size_t       model_len;
    char         model[GLM_CHECK_MODEL_MAX + 1];
} glm_http_check;

/*
 * Is this Content-Type header application/json (any case, any parameters
 * such as ";charset=utf-8")?  An absent header (len 0) is not.
 */
int glm_http_is_json(const char *ct, size_t len);

/*
 * Checks a complete request body for `op` (GLM_OP_* of ring.h).  For every
 * op the body must be one JSON object; for chat the fields the worker can
 * judge alone are checked: messages (non-empty array of objects), stream
 * (bool), model (string), max_tokens / max_completion_tokens / n
 * (non-negative integers), temperature / top_p (numbers); for completions
 * the same but messages and max_completion_tokens (the engine checks the
 * prompt); null stands for "not given", as in the OpenAI schema.  Returns
 * ck->status.
 */
unsigned glm_http_check_body(glm_http_check *ck, uint32_t op, const char *body,
    size_t len);

/*
 * Is `model` one of the names in `names` (NUL-separated, names_len bytes,
 * as in the segment header)?  An empty list accepts every name.
 */
int glm_http_model_served(const char *names, size_t names_len,
    const char *model, size_t model_len);

/* Fills ck with the 404 of an unknown model. */
void glm_http_unknown_model(glm_http_check *ck);

/* "BadRequestError", "NotFoundError", ... for an HTTP status. */
const char *glm_http_error_type(unsigned status);

/* The reason phrase used when nginx itself produced the status. */
const char *glm_http_error_reason(unsigned status);

/*
 * Writes the error body into buf (at most cap bytes, not NUL-terminated)
 * and returns its full length, like snprintf: call with cap 0 to size it.
 * param NULL gives "param":null.
 */
size_t glm_http_error_json(char *buf, size_t cap, unsigned status,
    const char *message, const char *param);

/* The in-band SSE error event followed by data: [DONE]; same contract. */
size_t glm_http_sse_error(char *buf, size_t cap, unsigned code,
    const char *message);

#endif
