/*
 * bench_sse.c: see bench_sse.h.  Every parser here is a byte-at-a-time state
 * machine over spans, so a read() boundary may fall anywhere: inside the
 * status line, a header, a chunk-size line, its CRLF, a "data:" line or a
 * UTF-8 sequence.
 */
#include "bench_sse.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yajl/yajl_tree.h>

#define GLM_BENCH_SSE_MAX_EVENT  (16u << 20)
#define GLM_BENCH_HTTP_MAX_HEAD  (64u << 10)
#define GLM_BENCH_HTTP_MAX_LINE  4096u

static int
glm_bench_errf(char *err, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
glm_bench_errf(char *err, size_t size, const char *fmt, ...)
{
    va_list ap;

    if (size) {
        va_start(ap, fmt);
        vsnprintf(err, size, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void
glm_bench_sse_init(glm_bench_sse *s)
{
    s->line.len = 0;
    s->data.len = 0;
    s->has_data = 0;
    s->cr = 0;
    s->events = 0;
}

void
glm_bench_sse_free(glm_bench_sse *s)
{
    glm_str_free(&s->line);
    glm_str_free(&s->data);
}

static int
glm_bench_sse_dispatch(glm_bench_sse *s, glm_bench_sse_cb cb, void *ud)
{
    int rc = 0;

    if (s->has_data) {
        s->events++;
        /* glm_str keeps data NUL-terminated; an empty one may not exist yet */
        rc = cb(ud, s->data.data ? s->data.data : "", s->data.len);
    }
    s->data.len = 0;
    s->has_data = 0;
    return rc;
}

/* one complete line (without its terminator) */
static int
glm_bench_sse_line(glm_bench_sse *s, const char *p, size_t n, glm_bench_sse_cb cb,
    void *ud, char *err, size_t errsize)
{
    const char *colon, *value;
    size_t flen, vlen;

    if (n == 0) {
        return glm_bench_sse_dispatch(s, cb, ud);
    }
    if (p[0] == ':') {
        return 0;
    }
    colon = memchr(p, ':', n);
    flen = colon ? (size_t) (colon - p) : n;
    if (flen != 4 || memcmp(p, "data", 4) != 0) {
        return 0;               /* event, id, retry and unknown fields */
    }
    value = colon ? colon + 1 : p + n;
    vlen = (size_t) (p + n - value);
    if (vlen && value[0] == ' ') {
        value++;
        vlen--;
    }
    if (s->data.len + vlen + 1 > GLM_BENCH_SSE_MAX_EVENT) {
        return glm_bench_errf(err, errsize, "SSE event longer than %u bytes",
                              GLM_BENCH_SSE_MAX_EVENT);
    }
    if (s->has_data) {
        glm_str_add(&s->data, "\n", 1);
    }
    glm_str_add(&s->data, value, vlen);
    s->has_data = 1;
    return 0;
}

int
glm_bench_sse_feed(glm_bench_sse *s, const char *p, size_t n, glm_bench_sse_cb cb,
    void *ud, char *err, size_t errsize)
{
    const char *end = p + n, *q;

    while (p < end) {
        if (s->cr) {
            s->cr = 0;
            if (*p == '\n') {
                p++;
                continue;
            }
        }
        for (q = p; q < end && *q != '\n' && *q != '\r'; q++) {
        }
        if (q == end) {
            if (s->line.len + (size_t) (q - p) > GLM_BENCH_SSE_MAX_EVENT) {
                return glm_bench_errf(err, errsize, "SSE line longer than %u bytes",
                                      GLM_BENCH_SSE_MAX_EVENT);
            }
            glm_str_add(&s->line, p, (size_t) (q - p));
            return 0;
        }
        s->cr = *q == '\r';
        if (s->line.len) {
            /* the line started in an earlier read */
            glm_str_add(&s->line, p, (size_t) (q - p));
            if (glm_bench_sse_line(s, s->line.data, s->line.len, cb, ud, err, errsize) < 0) {
                s->line.len = 0;
                return -1;
            }
            s->line.len = 0;
        } else if (glm_bench_sse_line(s, p, (size_t) (q - p), cb, ud, err, errsize) < 0) {
            return -1;
        }
        p = q + 1;
    }
    return 0;
}

int
glm_bench_sse_finish(glm_bench_sse *s, glm_bench_sse_cb cb, void *ud, char *err,
    size_t errsize)
{
    if (s->line.len) {
        if (glm_bench_sse_line(s, s->line.data, s->line.len, cb, ud, err, errsize) < 0) {
            return -1;
        }
        s->line.len = 0;
    }
    return glm_bench_sse_dispatch(s, cb, ud);
}

void
glm_bench_http_init(glm_bench_http *h, int want_sse)
{
    h->state = GLM_BENCH_HTTP_HEAD;
    h->want_sse = want_sse;
    h->status = 0;
    h->keep_alive = 1;
    h->chunked = 0;
    h->content_length = -1;
    h->remaining = 0;
    h->body_bytes = 0;
    h->line.len = 0;
    h->body.len = 0;
    h->content_type[0] = '\0';
    h->err[0] = '\0';
    glm_bench_sse_init(&h->sse);
}

void
glm_bench_http_free(glm_bench_http *h)
{
    glm_str_free(&h->line);
    glm_str_free(&h->body);
    glm_bench_sse_free(&h->sse);
}

static int
glm_bench_http_fail(glm_bench_http *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
glm_bench_http_fail(glm_bench_http *h, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(h->err, sizeof(h->err), fmt, ap);
    va_end(ap);
    h->state = GLM_BENCH_HTTP_ERROR;
    return -1;
}

/* does the comma-separated header value v (length n) list token t? */
static int
glm_bench_header_has(const char *v, size_t n, const char *t)
{
    size_t tl = strlen(t), i = 0, j;

    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) {
            i++;
        }
        j = i;
        while (j < n && v[j] != ',') {
            j++;
        }
        /* trim the item's right end */
        while (j > i && (v[j - 1] == ' ' || v[j - 1] == '\t')) {
            j--;
        }
        if (j - i == tl && strncasecmp(v + i, t, tl) == 0) {
            return 1;
        }
        while (j < n && v[j] != ',') {
            j++;
        }
        i = j;
    }
    return 0;
}

/* the head h->line[0..len) ends with its blank line */
static int
glm_bench_http_head(glm_bench_http *h, size_t len)
{
    const char *p = h->line.data, *end = p + len, *eol, *colon, *v, *ve;
    int minor, status, n = 0, te_chunked = 0;
    size_t nl;

    eol = memchr(p, '\n', len);
    if (sscanf(p, "HTTP/1.%d %3d%n", &minor, &status, &n) != 2 || n == 0
        || status < 100 || status > 999)
    {
        nl = eol ? (size_t) (eol - p) : len;
        return glm_bench_http_fail(h, "not an HTTP/1.x status line: \"%.*s\"",
                                   (int) (nl > 80 ? 80 : nl), p);
    }
    h->status = status;
    h->keep_alive = minor >= 1;
    for (p = eol + 1; p < end; p = eol + 1) {
        eol = memchr(p, '\n', (size_t) (end - p));
        if (eol == NULL) {
            break;
        }
        ve = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
        if (ve == p) {
            break;              /* the blank line */
        }
        colon = memchr(p, ':', (size_t) (ve - p));
        if (colon == NULL) {
            return glm_bench_http_fail(h, "malformed header line \"%.*s\"",
                                       (int) (ve - p > 80 ? 80 : ve - p), p);
        }
        for (v = colon + 1; v < ve && (*v == ' ' || *v == '\t'); v++) {
        }
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) {
            ve--;
        }
        nl = (size_t) (colon - p);
        if (nl == 14 && strncasecmp(p, "content-length", 14) == 0) {
            char *e;
            long long cl = strtoll(v, &e, 10);
            if (e != ve || cl < 0 || v == ve) {
                return glm_bench_http_fail(h, "bad Content-Length \"%.*s\"",
                                           (int) (ve - v > 40 ? 40 : ve - v), v);
            }
            h->content_length = cl;
        } else if (nl == 17 && strncasecmp(p, "transfer-encoding", 17) == 0) {
            te_chunked = glm_bench_header_has(v, (size_t) (ve - v), "chunked");
        } else if (nl == 10 && strncasecmp(p, "connection", 10) == 0) {
            if (glm_bench_header_has(v, (size_t) (ve - v), "close")) {
                h->keep_alive = 0;
            } else if (glm_bench_header_has(v, (size_t) (ve - v), "keep-alive")) {
                h->keep_alive = 1;
            }
        } else if (nl == 12 && strncasecmp(p, "content-type", 12) == 0) {
            snprintf(h->content_type, sizeof(h->content_type), "%.*s",
                     (int) (ve - v), v);
        }
    }
    h->chunked = te_chunked;
    if (status < 200 || status == 204 || status == 304) {
        h->state = GLM_BENCH_HTTP_DONE;
    } else if (te_chunked) {
        h->state = GLM_BENCH_HTTP_CHUNK_SIZE;
    } else if (h->content_length >= 0) {
        h->remaining = h->content_length;
        h->state = h->remaining ? GLM_BENCH_HTTP_LENGTH : GLM_BENCH_HTTP_DONE;
    } else {
        h->keep_alive = 0;
        h->state = GLM_BENCH_HTTP_UNTIL_CLOSE;
    }
    return 0;
}

static int
glm_bench_http_body(glm_bench_http *h, const char *p, size_t n, glm_bench_sse_cb cb,
    void *ud)
{
    size_t keep;

    h->body_bytes += (long long) n;
    if (h->want_sse && h->status == 200) {
        return glm_bench_sse_feed(&h->sse, p, n, cb, ud, h->err, sizeof(h->err));
    }
    keep = GLM_BENCH_HTTP_BODY_KEEP > h->body.len ? GLM_BENCH_HTTP_BODY_KEEP - h->body.len : 0;
    glm_str_add(&h->body, p, n < keep ? n : keep);
    return 0;
}

/* the response is complete: flush what the SSE parser holds */
static int
glm_bench_http_done(glm_bench_http *h, glm_bench_sse_cb cb, void *ud)
{
    h->state = GLM_BENCH_HTTP_DONE;
    if (h->want_sse && h->status == 200) {
        if (glm_bench_sse_finish(&h->sse, cb, ud, h->err, sizeof(h->err)) < 0) {
            h->state = GLM_BENCH_HTTP_ERROR;
            return -1;
        }
    }
    return 1;
}

/* a chunk-size line: hex digits, optional ";ext" */
static int
glm_bench_http_chunk_size(glm_bench_http *h, const char *p, size_t n)
{
    long long size = 0;
    size_t i;
    int d, digits = 0;

    for (i = 0; i < n && isxdigit((unsigned char) p[i]); i++) {
        d = isdigit((unsigned char) p[i]) ? p[i] - '0' : (tolower((unsigned char) p[i]) - 'a' + 10);
        if (size > (1LL << 40)) {
            return glm_bench_http_fail(h, "chunk size too large");
        }
        size = size * 16 + d;
        digits++;
    }
    while (i < n && (p[i] == ' ' || p[i] == '\t')) {
        i++;
    }
    if (digits == 0 || (i < n && p[i] != ';')) {
        return glm_bench_http_fail(h, "bad chunk-size line \"%.*s\"",
                                   (int) (n > 40 ? 40 : n), p);
    }
    h->remaining = size;
    h->state = size ? GLM_BENCH_HTTP_CHUNK_DATA : GLM_BENCH_HTTP_TRAILER;
    return 0;
}

/*
 * Gathers one line of a chunked body's framing into h->line; returns 1 with
 * line and len set (terminator stripped) when complete, 0 when p ran out,
 * -1 when the line is too long.
 */
static int
glm_bench_http_framing_line(glm_bench_http *h, const char **p, const char *end,
    const char **line, size_t *len)
{
    const char *nl = memchr(*p, '\n', (size_t) (end - *p));
    size_t take = nl ? (size_t) (nl - *p) : (size_t) (end - *p);

    if (h->line.len + take > GLM_BENCH_HTTP_MAX_LINE) {
        glm_bench_http_fail(h, "chunked framing line longer than %u bytes",
                            GLM_BENCH_HTTP_MAX_LINE);
        return -1;
    }
    glm_str_add(&h->line, *p, take);
    *p += take;
    if (nl == NULL) {
        return 0;
    }
    (*p)++;
    *line = h->line.data;
    *len = h->line.len;
    if (*len && (*line)[*len - 1] == '\r') {
        (*len)--;
    }
    return 1;
}

int
glm_bench_http_feed(glm_bench_http *h, const char *p, size_t n, size_t *used,
    glm_bench_sse_cb cb, void *ud)
{
    const char *start = p, *end = p + n, *line, *hend;
    size_t old, len, take, scan;
    int rc;

    *used = 0;
    while (p < end || h->state == GLM_BENCH_HTTP_DONE) {
        switch (h->state) {

        case GLM_BENCH_HTTP_HEAD:
            old = h->line.len;
            glm_str_add(&h->line, p, (size_t) (end - p));
            /* look for the blank line, starting a little before the new bytes */
            scan = old > 3 ? old - 3 : 0;
            hend = NULL;
            for (len = scan; len < h->line.len; len++) {
                if (h->line.data[len] != '\n') {
                    continue;
                }
                if (len + 1 < h->line.len && h->line.data[len + 1] == '\n') {
                    hend = h->line.data + len + 2;
                    break;
                }
                if (len + 2 < h->line.len && h->line.data[len + 1] == '\r'
                    && h->line.data[len + 2] == '\n')
                {
                    hend = h->line.data + len + 3;
                    break;
                }
            }
            if (hend == NULL) {
                if (h->line.len > GLM_BENCH_HTTP_MAX_HEAD) {
                    return glm_bench_http_fail(h, "response head longer than %u bytes",
                                               GLM_BENCH_HTTP_MAX_HEAD);
                }
                *used = n;
                return 0;
            }
            len = (size_t) (hend - h->line.data);
            p += len - old;      /* bytes of this feed that belonged to the head */
            if (glm_bench_http_head(h, len) < 0) {
                return -1;
            }
            h->line.len = 0;
            if (h->status >= 100 && h->status < 200 && h->status != 101) {
                /* 100 Continue and friends: the real response follows */
                glm_bench_http_init(h, h->want_sse);
            }
            break;

        case GLM_BENCH_HTTP_CHUNK_SIZE:
            rc = glm_bench_http_framing_line(h, &p, end, &line, &len);
            if (rc <= 0) {
                if (rc < 0) {
                    return -1;
                }
                break;
            }
            if (glm_bench_http_chunk_size(h, line, len) < 0) {
                return -1;
            }
            h->line.len = 0;
            break;

        case GLM_BENCH_HTTP_CHUNK_DATA:
            take = (size_t) (end - p) < (unsigned long long) h->remaining
                   ? (size_t) (end - p) : (size_t) h->remaining;
            h->remaining -= (long long) take;
            if (h->remaining == 0) {
                h->state = GLM_BENCH_HTTP_CHUNK_END;
            }
            if (glm_bench_http_body(h, p, take, cb, ud) < 0) {
                h->state = GLM_BENCH_HTTP_ERROR;
                *used = (size_t) (p + take - start);
                return -1;
            }
            p += take;
            break;

        case GLM_BENCH_HTTP_CHUNK_END:
            rc = glm_bench_http_framing_line(h, &p, end, &line, &len);
            if (rc <= 0) {
                if (rc < 0) {
                    return -1;
                }
                break;
            }
            if (len != 0) {
                return glm_bench_http_fail(h, "chunk data not followed by CRLF");
            }
            h->line.len = 0;
            h->state = GLM_BENCH_HTTP_CHUNK_SIZE;
            break;

        case GLM_BENCH_HTTP_TRAILER:
            rc = glm_bench_http_framing_line(h, &p, end, &line, &len);
            if (rc <= 0) {
                if (rc < 0) {
                    return -1;
                }
                break;
            }
            h->line.len = 0;
            if (len == 0) {
                *used = (size_t) (p - start);
                return glm_bench_http_done(h, cb, ud);
            }
            break;

        case GLM_BENCH_HTTP_LENGTH:
            take = (size_t) (end - p) < (unsigned long long) h->remaining
                   ? (size_t) (end - p) : (size_t) h->remaining;
            h->remaining -= (long long) take;
            if (glm_bench_http_body(h, p, take, cb, ud) < 0) {
                h->state = GLM_BENCH_HTTP_ERROR;
                *used = (size_t) (p + take - start);
                return -1;
            }
            p += take;
            if (h->remaining == 0) {
                *used = (size_t) (p - start);
                return glm_bench_http_done(h, cb, ud);
            }
            break;

        case GLM_BENCH_HTTP_UNTIL_CLOSE:
            take = (size_t) (end - p);
            if (glm_bench_http_body(h, p, take, cb, ud) < 0) {
                h->state = GLM_BENCH_HTTP_ERROR;
                *used = n;
                return -1;
            }
            p = end;
            break;

        case GLM_BENCH_HTTP_DONE:
            *used = (size_t) (p - start);
            return glm_bench_http_done(h, cb, ud);

        default:
            if (h->err[0] == '\0') {
                snprintf(h->err, sizeof(h->err), "response already failed");
            }
            return -1;
        }
    }
    *used = n;
    return 0;
}

int
glm_bench_http_eof(glm_bench_http *h, glm_bench_sse_cb cb, void *ud)
{
    switch (h->state) {
    case GLM_BENCH_HTTP_UNTIL_CLOSE:
        return glm_bench_http_done(h, cb, ud);
    case GLM_BENCH_HTTP_DONE:
        return 1;
    case GLM_BENCH_HTTP_HEAD:
        return glm_bench_http_fail(h, h->line.len
                                   ? "connection closed inside the response head"
                                   : "connection closed before any response");
    case GLM_BENCH_HTTP_LENGTH:
        return glm_bench_http_fail(h, "connection closed %lld bytes short of Content-Length",
                                   h->remaining);
    case GLM_BENCH_HTTP_ERROR:
        return -1;
    default:
        return glm_bench_http_fail(h, "connection closed inside the chunked body "
                                   "(after %lld body bytes, no final 0-size chunk)",
                                   h->body_bytes);
    }
}

/* vLLM strips the message before comparing with [DONE] */
static int
glm_bench_is_done(const char *d, size_t n)
{
    while (n && isspace((unsigned char) *d)) {
        d++;
        n--;
    }
    while (n && isspace((unsigned char) d[n - 1])) {
        n--;
    }
    return n == 6 && memcmp(d, "[DONE]", 6) == 0;
}

static long long
glm_bench_json_ll(yajl_val obj, const char *key)
{
    const char *path[2] = { key, NULL };
    yajl_val v = yajl_tree_get(obj, path, yajl_t_number);

    return YAJL_IS_INTEGER(v) ? YAJL_GET_INTEGER(v) : -1;
}

static int
glm_bench_nonempty_string(yajl_val obj, const char *key)
{
    const char *path[2] = { key, NULL };
    yajl_val v = yajl_tree_get(obj, path, yajl_t_string);

    return YAJL_IS_STRING(v) && YAJL_GET_STRING(v)[0] != '\0';
}

int
glm_bench_event_parse(const char *data, size_t len, glm_bench_event *ev,
    glm_str *content, char *err, size_t errsize)
{
    static const char *choices_path[] = { "choices", NULL };
    static const char *usage_path[] = { "usage", NULL };
    static const char *error_path[] = { "error", NULL };
    static const char *delta_path[] = { "delta", NULL };
    static const char *content_path[] = { "content", NULL };
    static const char *message_path[] = { "message", NULL };
    char yerr[128];
    yajl_val root, choices, usage, error, delta, c, msg;

    memset(ev, 0, sizeof(*ev));
    ev->completion_tokens = -1;
    ev->prompt_tokens = -1;
    if (glm_bench_is_done(data, len)) {
        ev->done = 1;
        return 0;
    }
    if (strlen(data) != len) {
        return glm_bench_errf(err, errsize, "SSE data holds a NUL byte");
    }
    yerr[0] = '\0';
    root = yajl_tree_parse(data, yerr, sizeof(yerr));
    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        char *nl;
        /* yajl's message spans lines; keep the first */
        if ((nl = strchr(yerr, '\n')) != NULL) {
            *nl = '\0';
        }
        glm_bench_errf(err, errsize, "SSE data is not a JSON object (%s): \"%.60s\"",
                       root == NULL ? (yerr[0] ? yerr : "parse error") : "not an object",
                       data);
        yajl_tree_free(root);
        return -1;
    }
    choices = yajl_tree_get(root, choices_path, yajl_t_array);
    if (YAJL_IS_ARRAY(choices) && YAJL_GET_ARRAY(choices)->len > 0) {
        ev->has_choices = 1;
        delta = yajl_tree_get(YAJL_GET_ARRAY(choices)->values[0], delta_path, yajl_t_object);
        if (YAJL_IS_OBJECT(delta)) {
            c = yajl_tree_get(delta, content_path, yajl_t_string);
            if (YAJL_IS_STRING(c) && YAJL_GET_STRING(c)[0] != '\0') {
                ev->has_content = 1;
                if (content) {
                    glm_str_adds(content, YAJL_GET_STRING(c));
                }
            }
            ev->has_reasoning = glm_bench_nonempty_string(delta, "reasoning_content")
                                || glm_bench_nonempty_string(delta, "reasoning");
        }
    } else {
        usage = yajl_tree_get(root, usage_path, yajl_t_object);
        if (YAJL_IS_OBJECT(usage) && YAJL_GET_OBJECT(usage)->len > 0) {
            ev->has_usage = 1;
            ev->completion_tokens = glm_bench_json_ll(usage, "completion_tokens");
            ev->prompt_tokens = glm_bench_json_ll(usage, "prompt_tokens");
        }
    }
    error = yajl_tree_get(root, error_path, yajl_t_any);
    if (error != NULL && !YAJL_IS_NULL(error)) {
        ev->is_error = 1;
        msg = YAJL_IS_OBJECT(error) ? yajl_tree_get(error, message_path, yajl_t_string)
                                    : (YAJL_IS_STRING(error) ? error : NULL);
        snprintf(ev->message, sizeof(ev->message), "%s",
                 YAJL_IS_STRING(msg) ? YAJL_GET_STRING(msg) : data);
    }
    yajl_tree_free(root);
    return 0;
}
