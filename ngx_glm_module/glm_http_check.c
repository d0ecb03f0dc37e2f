/*
 * glm_http_check.c: request body checks and error bodies (see the header).
 *
 * The body is parsed once with yajl's event parser, not into a tree: only
 * the top-level fields matter here, the engine parses the body again for
 * everything else, and a tree of a large prompt would cost a worker memory
 * for nothing.  The first problem found stops the parse; its message names
 * the field the way the OpenAI schema does.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "glm_http_check.h"

enum {
    GLM_F_OTHER = 0,
    GLM_F_MODEL,
    GLM_F_MESSAGES,
    GLM_F_STREAM,
    GLM_F_MAX_TOKENS,
    GLM_F_MAX_COMPLETION_TOKENS,
    GLM_F_N,
    GLM_F_TEMPERATURE,
    GLM_F_TOP_P
};

enum {
    GLM_V_NULL = 0,
    GLM_V_BOOL,
    GLM_V_NUMBER,
    GLM_V_STRING,
    GLM_V_MAP,
    GLM_V_ARRAY
};

/* which ops a field is checked for */
#define GLM_FOR_ALL        0
#define GLM_FOR_CHAT       1        /* chat completions only */
#define GLM_FOR_GENERATE   2        /* chat completions and completions */

typedef struct {
    const char  *name;
    int          field;
    int          ops;
} glm_field_name;

static const glm_field_name  glm_fields[] = {
    { "model", GLM_F_MODEL, GLM_FOR_ALL },
    { "messages", GLM_F_MESSAGES, GLM_FOR_CHAT },
    { "stream", GLM_F_STREAM, GLM_FOR_GENERATE },
    { "max_tokens", GLM_F_MAX_TOKENS, GLM_FOR_GENERATE },
    { "max_completion_tokens", GLM_F_MAX_COMPLETION_TOKENS, GLM_FOR_CHAT },
    { "n", GLM_F_N, GLM_FOR_GENERATE },
    { "temperature", GLM_F_TEMPERATURE, GLM_FOR_GENERATE },
    { "top_p", GLM_F_TOP_P, GLM_FOR_GENERATE },
    { NULL, 0, 0 }
};

typedef struct {
    glm_http_check  *ck;
    uint32_t         op;
    int              depth;         /* containers open around the parser */
    int              field;         /* GLM_F_* of the current top-level key */
    const char      *field_name;
    int              in_messages;   /* the messages array is the open one */
    int              messages_seen;
    long             messages_n;
} glm_http_check_state;

typedef struct {
    char        *buf;
    size_t       cap;
    size_t       len;               /* bytes wanted so far, may exceed cap */
} glm_writer;

static int glm_check_fail(glm_http_check_state *st, unsigned status,
    const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int glm_check_value(glm_http_check_state *st, int kind,
    const char *num, size_t num_len);
static int glm_check_is_count(const char *num, size_t len);
static int glm_cb_null(void *ctx);
static int glm_cb_boolean(void *ctx, int v);
static int glm_cb_number(void *ctx, const char *s, size_t len);
static int glm_cb_string(void *ctx, const unsigned char *s, size_t len);
static int glm_cb_start_map(void *ctx);
static int glm_cb_map_key(void *ctx, const unsigned char *s, size_t len);
static int glm_cb_end_map(void *ctx);
static int glm_cb_start_array(void *ctx);
static int glm_cb_end_array(void *ctx);
static size_t glm_utf8_prefix(const char *s, size_t len, size_t max);
static void glm_put(glm_writer *w, const char *s, size_t n);
static void glm_puts(glm_writer *w, const char *s);
static void glm_put_json_str(glm_writer *w, const char *s);
static void glm_put_error_object(glm_writer *w, unsigned status,
    const char *message, const char *param);


static const yajl_callbacks  glm_check_callbacks = {
    glm_cb_null,
    glm_cb_boolean,
    NULL,                           /* integers and doubles come as numbers */
    NULL,
    glm_cb_number,
    glm_cb_string,
    glm_cb_start_map,
    glm_cb_map_key,
    glm_cb_end_map,
    glm_cb_start_array,
    glm_cb_end_array
};


int
glm_http_is_json(const char *ct, size_t len)
{
    static const char  json[] = "application/json";
    size_t             i, n;

    n = sizeof(json) - 1;

    while (len > 0 && (*ct == ' ' || *ct == '\t')) {
        ct++;
        len--;
    }

    if (len < n) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        char  c = ct[i];

        if (c >= 'A' && c <= 'Z') {
            c = (char) (c - 'A' + 'a');
        }

        if (c != json[i]) {
            return 0;
        }
    }

    return len == n || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t';
}


unsigned
glm_http_check_body(glm_http_check *ck, uint32_t op, const char *body,
    size_t len)
{
    size_t           i, at;
    yajl_handle      h;
    yajl_status      rc;
    unsigned char   *err;
    glm_http_check_state  st;

    memset(ck, 0, sizeof(*ck));
    memset(&st, 0, sizeof(st));
    st.ck = ck;
    st.op = op;

    for (i = 0; i < len; i++) {
        if (body[i] != ' ' && body[i] != '\t' && body[i] != '\r'
            && body[i] != '\n')
        {
            break;
        }
    }

    if (i == len) {
        glm_check_fail(&st, 400, NULL,
                       "The request body is empty; expected a JSON object");
        return ck->status;
    }

    h = yajl_alloc(&glm_check_callbacks, NULL, &st);
    if (h == NULL) {
        glm_check_fail(&st, 500, NULL, "Out of memory checking the request");
        return ck->status;
    }

    rc = yajl_parse(h, (const unsigned char *) body, len);
    if (rc == yajl_status_ok) {
        rc = yajl_complete_parse(h);
    }

    if (rc == yajl_status_error) {
        at = yajl_get_bytes_consumed(h);
        err = yajl_get_error(h, 0, NULL, 0);

        if (err != NULL) {
            size_t  n = strlen((char *) err);

            while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' ')) {
                err[--n] = '\0';
            }
        }

        glm_check_fail(&st, 400, NULL,
                       "Invalid JSON in the request body at byte %zu: %s", at,
                       err ? (char *) err : "parse error");

        if (err != NULL) {
            yajl_free_error(h, err);
        }
    }

    yajl_free(h);

    if (ck->status != 0) {
        return ck->status;
    }

    if (op == GLM_OP_CHAT) {
        if (!st.messages_seen) {
            glm_check_fail(&st, 400, "messages",
                           "'messages' is a required field");

        } else if (st.messages_n == 0) {
            glm_check_fail(&st, 400, "messages",
                           "'messages' must be a non-empty array");
        }
    }

    return ck->status;
}


int
glm_http_model_served(const char *names, size_t names_len, const char *model,
    size_t model_len)
{
    int          any;
    const char  *p, *q, *end;

    any = 0;
    p = names;
    end = names + names_len;

    while (p < end) {
        q = memchr(p, '\0', (size_t) (end - p));
        if (q == NULL) {
            q = end;
        }

        if (q > p) {
            any = 1;

            if ((size_t) (q - p) == model_len
                && memcmp(p, model, model_len) == 0)
            {
                return 1;
            }
        }

        p = q + 1;
    }

    return !any;
}


void
glm_http_unknown_model(glm_http_check *ck)
{
    ck->status = 404;
    ck->param = "model";
    snprintf(ck->message, sizeof(ck->message),
             "The model `%s%s` does not exist.", ck->model,
             ck->model_truncated ? "..." : "");
}


const char *
glm_http_error_type(unsigned status)
{
    switch (status) {
    case 400: return "BadRequestError";
    case 401: return "AuthenticationError";
    case 403: return "PermissionDeniedError";
    case 404: return "NotFoundError";
    case 405: return "MethodNotAllowedError";
    case 408: return "RequestTimeoutError";
    case 409: return "ConflictError";
    case 411: return "LengthRequiredError";
    case 413: return "RequestEntityTooLargeError";
    case 414: return "RequestURITooLongError";
    case 415: return "UnsupportedMediaTypeError";
    case 422: return "UnprocessableEntityError";
    case 429: return "RateLimitError";
    case 500: return "InternalServerError";
    case 501: return "NotImplementedError";
    case 502: return "BadGatewayError";
    case 503: return "ServiceUnavailableError";
    case 504: return "GatewayTimeoutError";
    }

    return status >= 500 ? "InternalServerError" : "BadRequestError";
}


const char *
glm_http_error_reason(unsigned status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Request Entity Too Large";
    case 414: return "Request-URI Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    }

    return status >= 500 ? "Internal Server Error" : "Bad Request";
}


size_t
glm_http_error_json(char *buf, size_t cap, unsigned status,
    const char *message, const char *param)
{
    glm_writer  w = { buf, cap, 0 };

    glm_put_error_object(&w, status, message, param);

    return w.len;
}


size_t
glm_http_sse_error(char *buf, size_t cap, unsigned code, const char *message)
{
    glm_writer  w = { buf, cap, 0 };

    glm_puts(&w, "data: ");
    glm_put_error_object(&w, code, message, NULL);
    glm_puts(&w, "\n\ndata: [DONE]\n\n");

    return w.len;
}


static int
glm_check_fail(glm_http_check_state *st, unsigned status, const char *param,
    const char *fmt, ...)
{
    va_list  ap;

    if (st->ck->status != 0) {
        return 0;
    }

    st->ck->status = status;
    st->ck->param = param;

    va_start(ap, fmt);
    vsnprintf(st->ck->message, sizeof(st->ck->message), fmt, ap);
    va_end(ap);

    /* stops the parse */
    return 0;
}


/*
 * A value (scalar or the start of a container) is about to be seen at
 * st->depth.  Returns 0 to stop the parse.
 */
static int
glm_check_value(glm_http_check_state *st, int kind, const char *num,
    size_t num_len)
{
    const char  *name;

    if (st->depth == 0) {
        if (kind != GLM_V_MAP) {
            return glm_check_fail(st, 400, NULL,
                                  "The request body must be a JSON object");
        }

        return 1;
    }

    if (st->depth == 2 && st->in_messages) {
        if (kind != GLM_V_MAP) {
            return glm_check_fail(st, 400, "messages",
                                  "'messages[%ld]' must be an object",
                                  st->messages_n);
        }

        st->messages_n++;
        return 1;
    }

    if (st->depth != 1) {
        return 1;
    }

    name = st->field_name;

    switch (st->field) {

    case GLM_F_MODEL:
        if (kind != GLM_V_STRING && kind != GLM_V_NULL) {
            return glm_check_fail(st, 400, "model",
                                  "'model' must be a string");
        }
        break;

    case GLM_F_MESSAGES:
        if (kind != GLM_V_ARRAY) {
            return glm_check_fail(st, 400, "messages",
                                  "'messages' must be a non-empty array");
        }
        st->messages_seen = 1;
        break;

    case GLM_F_STREAM:
        if (kind != GLM_V_BOOL && kind != GLM_V_NULL) {
            return glm_check_fail(st, 400, "stream",
                                  "'stream' must be a boolean");
        }
        break;

    case GLM_F_MAX_TOKENS:
    case GLM_F_MAX_COMPLETION_TOKENS:
    case GLM_F_N:
        if (kind == GLM_V_NULL) {
            break;
        }

        if (kind != GLM_V_NUMBER || !glm_check_is_count(num, num_len)) {
            return glm_check_fail(st, 400, name,
                                  "'%s' must be a non-negative integer", name);
        }
        break;

    case GLM_F_TEMPERATURE:
    case GLM_F_TOP_P:
        if (kind != GLM_V_NUMBER && kind != GLM_V_NULL) {
            return glm_check_fail(st, 400, name, "'%s' must be a number",
                                  name);
        }
        break;

    default:
        break;
    }

    return 1;
}


/* a JSON number that is a whole value >= 0 (pydantic accepts 8.0 for 8) */
static int
glm_check_is_count(const char *num, size_t len)
{
    char    tmp[64], *end;
    double  v;

    if (len == 0 || len >= sizeof(tmp)) {
        return 0;
    }

    memcpy(tmp, num, len);
    tmp[len] = '\0';

    v = strtod(tmp, &end);

    if (end != tmp + len || !isfinite(v) || v < 0) {
        return 0;
    }

    return v >= 9007199254740992.0 || v == (double) (int64_t) v;
}


static int
glm_cb_null(void *ctx)
{
    return glm_check_value(ctx, GLM_V_NULL, NULL, 0);
}


static int
glm_cb_boolean(void *ctx, int v)
{
    glm_http_check_state  *st = ctx;

    if (!glm_check_value(st, GLM_V_BOOL, NULL, 0)) {
        return 0;
    }

    if (st->depth == 1 && st->field == GLM_F_STREAM) {
        st->ck->stream = v ? 1 : 0;
    }

    return 1;
}


static int
glm_cb_number(void *ctx, const char *s, size_t len)
{
    return glm_check_value(ctx, GLM_V_NUMBER, s, len);
}


static int
glm_cb_string(void *ctx, const unsigned char *s, size_t len)
{
    size_t            n;
    glm_http_check_state  *st = ctx;
    glm_http_check        *ck = st->ck;

    if (!glm_check_value(st, GLM_V_STRING, NULL, 0)) {
        return 0;
    }

    if (st->depth == 1 && st->field == GLM_F_MODEL) {
        n = glm_utf8_prefix((const char *) s, len, GLM_CHECK_MODEL_MAX);
        memcpy(ck->model, s, n);
        ck->model[n] = '\0';
        ck->model_len = n;
        ck->model_truncated = n < len;
        ck->has_model = 1;
    }

    return 1;
}


static int
glm_cb_start_map(void *ctx)
{
    glm_http_check_state  *st = ctx;

    if (!glm_check_value(st, GLM_V_MAP, NULL, 0)) {
        return 0;
    }

    st->depth++;
    return 1;
}


static int
glm_cb_map_key(void *ctx, const unsigned char *s, size_t len)
{
    const glm_field_name  *f;
    glm_http_check_state  *st = ctx;

    if (st->depth != 1) {
        return 1;
    }

    st->field = GLM_F_OTHER;
    st->field_name = NULL;

    for (f = glm_fields; f->name; f++) {
        if ((f->ops == GLM_FOR_CHAT && st->op != GLM_OP_CHAT)
            || (f->ops == GLM_FOR_GENERATE && st->op != GLM_OP_CHAT
                && st->op != GLM_OP_COMPLETIONS))
        {
            continue;
        }

        if (strlen(f->name) == len && memcmp(f->name, s, len) == 0) {
            st->field = f->field;
            st->field_name = f->name;
            break;
        }
    }

    return 1;
}


static int
glm_cb_end_map(void *ctx)
{
    glm_http_check_state  *st = ctx;

    st->depth--;
    return 1;
}


static int
glm_cb_start_array(void *ctx)
{
    glm_http_check_state  *st = ctx;

    if (!glm_check_value(st, GLM_V_ARRAY, NULL, 0)) {
        return 0;
    }

    if (st->depth == 1 && st->field == GLM_F_MESSAGES) {
        /* a repeated key starts the count again, as the last value wins */
        st->in_messages = 1;
        st->messages_n = 0;
    }

    st->depth++;
    return 1;
}


static int
glm_cb_end_array(void *ctx)
{
    glm_http_check_state  *st = ctx;

    st->depth--;

    if (st->depth == 1) {
        st->in_messages = 0;
    }

    return 1;
}


/* the longest prefix of s, at most max bytes, that ends on a character */
static size_t
glm_utf8_prefix(const char *s, size_t len, size_t max)
{
    size_t  n;

    if (len <= max) {
        return len;
    }

    n = max;

    while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80) {
        n--;
    }

    return n;
}


static void
glm_put(glm_writer *w, const char *s, size_t n)
{
    if (w->len < w->cap) {
        size_t  room = w->cap - w->len;

        memcpy(w->buf + w->len, s, n < room ? n : room);
    }

    w->len += n;
}


static void
glm_puts(glm_writer *w, const char *s)
{
    glm_put(w, s, strlen(s));
}


static void
glm_put_json_str(glm_writer *w, const char *s)
{
    char                 esc[8];
    const unsigned char *p;

    glm_put(w, "\"", 1);

    for (p = (const unsigned char *) s; *p; p++) {
        switch (*p) {
        case '"':  glm_put(w, "\\\"", 2); break;
        case '\\': glm_put(w, "\\\\", 2); break;
        case '\n': glm_put(w, "\\n", 2); break;
        case '\r': glm_put(w, "\\r", 2); break;
        case '\t': glm_put(w, "\\t", 2); break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof(esc), "\\u%04x", *p);
                glm_put(w, esc, 6);

            } else {
                glm_put(w, (const char *) p, 1);
            }
        }
    }

    glm_put(w, "\"", 1);
}


static void
glm_put_error_object(glm_writer *w, unsigned status, const char *message,
    const char *param)
{
    char  code[16];

    glm_puts(w, "{\"error\":{\"message\":");
    glm_put_json_str(w, message);
    glm_puts(w, ",\"type\":");
    glm_put_json_str(w, glm_http_error_type(status));
    glm_puts(w, ",\"param\":");

    if (param != NULL) {
        glm_put_json_str(w, param);

    } else {
        glm_puts(w, "null");
    }

    snprintf(code, sizeof(code), "%u", status);
    glm_puts(w, ",\"code\":");
    glm_puts(w, code);
    glm_puts(w, "}}");
}
