/*
 * bench_sse.h: reading an OpenAI streaming response off a socket, with no
 * I/O of its own: bytes go in as read() returned them, cut anywhere, and
 * complete SSE events come out through a callback.
 *
 *   glm_bench_http  an HTTP/1.1 response: status line and headers, then a
 *                   body framed by chunked transfer encoding, Content-Length,
 *                   or the connection's close.  A 200 body goes to the SSE
 *                   parser when SSE is wanted; any other body is kept (the
 *                   first 64 KiB) for the error message or the caller.
 *   glm_bench_sse   the text/event-stream format: lines end with \n, \r\n
 *                   or \r; "data:" lines (one optional space after the colon)
 *                   are joined with \n; an empty line dispatches the event;
 *                   ":" comments and other fields (event, id, retry) are
 *                   ignored.  At the end of the body an event still missing
 *                   its blank line is dispatched, as vLLM's reader does.
 *   glm_bench_event what vllm bench serve looks at in one event's JSON:
 *                   non-empty "choices", choices[0].delta.content, a
 *                   "usage" object (read only from a chunk without choices,
 *                   as vLLM), and "[DONE]".  An "error" member, which an
 *                   OpenAI-compatible server may send mid-stream, is
 *                   reported too.
 */
#ifndef GLM_BENCH_SSE_H
#define GLM_BENCH_SSE_H

#include <stddef.h>

#include "util/strbuf.h"

/* Called with each event's data (NUL-terminated at data[len]); return 0 to
 * go on, -1 to stop parsing (the caller keeps its own reason). */
typedef int (*glm_bench_sse_cb)(void *ud, const char *data, size_t len);

typedef struct {
    glm_str  line;        /* the line being read */
    glm_str  data;        /* data lines of the event being built */
    int      has_data;    /* a data field was seen in this event */
    int      cr;          /* the last byte was \r: a \n right after it is part of it */
    long     events;      /* dispatched so far */
} glm_bench_sse;

void glm_bench_sse_init(glm_bench_sse *s);
void glm_bench_sse_free(glm_bench_sse *s);
/* 0, or -1 when cb stopped or an event grew past 16 MiB (err filled) */
int glm_bench_sse_feed(glm_bench_sse *s, const char *p, size_t n,
                       glm_bench_sse_cb cb, void *ud, char *err, size_t errsize);
/* end of the stream: a partial last line and an event without its blank
 * line are dispatched */
int glm_bench_sse_finish(glm_bench_sse *s, glm_bench_sse_cb cb, void *ud,
                         char *err, size_t errsize);

enum {
    GLM_BENCH_HTTP_HEAD,
    GLM_BENCH_HTTP_CHUNK_SIZE,
    GLM_BENCH_HTTP_CHUNK_DATA,
    GLM_BENCH_HTTP_CHUNK_END,
    GLM_BENCH_HTTP_TRAILER,
    GLM_BENCH_HTTP_LENGTH,
    GLM_BENCH_HTTP_UNTIL_CLOSE,
    GLM_BENCH_HTTP_DONE,
    GLM_BENCH_HTTP_ERROR
};

#define GLM_BENCH_HTTP_BODY_KEEP  (64 * 1024)

typedef struct {
    int        state;
    int        want_sse;
    int        status;           /* 0 until the status line is read */
    int        keep_alive;       /* the connection may carry another request */
    int        chunked;
    long long  content_length;   /* -1 when absent */
    long long  remaining;        /* of the current chunk, or of the body */
    long long  body_bytes;       /* decoded body bytes so far */
    glm_str    line;             /* the head, then a chunk-size or trailer line */
    glm_str    body;             /* a non-SSE body (first GLM_BENCH_HTTP_BODY_KEEP bytes) */
    glm_bench_sse sse;
    char       content_type[96];
    char       err[256];
} glm_bench_http;

/* want_sse: a 200 body is an event stream.  Also resets a used parser for a
 * new response on the same connection (buffers kept). */
void glm_bench_http_init(glm_bench_http *h, int want_sse);
void glm_bench_http_free(glm_bench_http *h);

/*
 * Feeds n bytes read from the connection.  Returns 0 when more are needed,
 * 1 when the response is complete (*used: bytes consumed; anything after
 * belongs to no request), -1 on a malformed response or when cb stopped
 * (h->err says which; empty when cb stopped).
 */
int glm_bench_http_feed(glm_bench_http *h, const char *p, size_t n, size_t *used,
                        glm_bench_sse_cb cb, void *ud);
/* The peer closed the connection: 1 when that ends the response (a body
 * delimited by the close), -1 otherwise (h->err says where it was cut). */
int glm_bench_http_eof(glm_bench_http *h, glm_bench_sse_cb cb, void *ud);

typedef struct {
    int        done;              /* the data was "[DONE]" */
    int        has_choices;       /* "choices" is a non-empty array */
    int        has_content;       /* choices[0].delta.content is a non-empty string */
    int        has_reasoning;     /* delta.reasoning_content or delta.reasoning, non-empty */
    int        has_usage;         /* "usage" object in a chunk without choices */
    long long  completion_tokens; /* usage.completion_tokens; -1 when absent */
    long long  prompt_tokens;     /* usage.prompt_tokens; -1 when absent */
    int        is_error;          /* an "error" member */
    char       message[256];      /* error.message (or the error JSON's start) */
} glm_bench_event;

/*
 * Classifies one event's data (NUL-terminated at data[len]).  Appends
 * choices[0].delta.content to content when content is not NULL.  -1 with err
 * filled when the data is neither "[DONE]" nor a JSON object.
 */
int glm_bench_event_parse(const char *data, size_t len, glm_bench_event *ev,
                          glm_str *content, char *err, size_t errsize);

#endif
