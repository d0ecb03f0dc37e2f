
/*
 * ngx_http_glm_module: the response to the client.
 *
 * What the engine's records gathered for a request (ngx_http_glm_engine.c
 * appends them here) goes out through the filters: the head, a JSON or
 * text body whole with its length, an SSE stream as it comes, each token
 * flushed, and a comment line whenever it has been idle for
 * glm_stream_keepalive.  The worker never waits for a client: while its
 * socket is full the bytes of a stream stay in the request's buffers,
 * bounded by glm_output_limit.  A JSON body is not the client's doing: the
 * engine writes it in one burst once generation ends (its HEAD comes with
 * it, not before), so beyond glm_output_limit it goes on in a temporary file
 * in client_body_temp_path, as proxy_buffering does, and no valid request is
 * refused for its size.
 * Failures reach clients in the OpenAI shape, as a JSON error or, once a
 * stream has begun, as an SSE error event; so do nginx's own errors
 * through glm_pass error.  glm_health answers here too.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>

#include "glm_http_check.h"
#include "ngx_http_glm_module.h"


#define NGX_HTTP_GLM_SSE_TYPE        "text/event-stream; charset=utf-8"
#define NGX_HTTP_GLM_JSON_TYPE       "application/json"
#define NGX_HTTP_GLM_TEXT_TYPE       "text/plain; version=0.0.4; charset=utf-8"


static ngx_int_t ngx_http_glm_add_header(ngx_http_request_t *r,
    const char *key, const char *value);
static ngx_int_t ngx_http_glm_send_head(ngx_http_glm_ctx_t *ctx);
static ngx_int_t ngx_http_glm_output(ngx_http_glm_ctx_t *ctx);
static void ngx_http_glm_writer(ngx_http_request_t *r);
static ngx_int_t ngx_http_glm_wait_write(ngx_http_glm_ctx_t *ctx);
static ngx_buf_t *ngx_http_glm_get_buf(ngx_http_glm_ctx_t *ctx);
static ngx_int_t ngx_http_glm_spill(ngx_http_glm_ctx_t *ctx, const u_char *p,
    size_t n);
static ngx_int_t ngx_http_glm_append_last(ngx_http_glm_ctx_t *ctx);
static void ngx_http_glm_finish(ngx_http_glm_ctx_t *ctx, ngx_int_t rc);


/*
 * glm_health: 200 while this worker is attached to an engine that runs,
 * 503 while it is not, or while work waits for an engine that has not
 * turned its loop for glm_health_timeout (stopped, or stuck in a step):
 * ring.h's Health.  An idle engine asleep in poll is healthy.  GET and
 * HEAD; with "post" POST too (vLLM's /ping).
 */
ngx_int_t
ngx_http_glm_health_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_uint_t                 ok;
    ngx_http_glm_loc_conf_t   *glcf;
    ngx_http_glm_main_conf_t  *gmcf;

    gmcf = ngx_http_get_module_main_conf(r, ngx_http_glm_module);
    glcf = ngx_http_get_module_loc_conf(r, ngx_http_glm_module);

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))
        && !(glcf->health_post && r->method == NGX_HTTP_POST))
    {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    ok = gmcf->worker.state == NGX_HTTP_GLM_READY
         && !ngx_http_glm_engine_stuck(&gmcf->worker, glcf->health_timeout);

    r->headers_out.status = ok ? NGX_HTTP_OK : NGX_HTTP_SERVICE_UNAVAILABLE;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    return ngx_http_send_header(r);
}


/*
 * glm_pass error: the target of error_page, so that statuses nginx itself
 * produces (413 from client_max_body_size, 429 from limit_req, ...) reach
 * clients in the OpenAI shape too.  Its location is best named by a URI,
 * not @name: nginx refuses to redirect to a named location a request whose
 * request line it could not parse (414, a 400 for a bad request line:
 * "empty URI in redirect to named location").  nginx's 494 and 495-497
 * arrive here as 400, the status it sends for them.
 */
ngx_int_t
ngx_http_glm_error_handler(ngx_http_request_t *r)
{
    ngx_int_t   rc;
    ngx_uint_t  status;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    status = r->err_status ? r->err_status : NGX_HTTP_NOT_FOUND;

    /* what nginx would have said, in the shape clients parse */
    return ngx_http_glm_send_error(r, status, glm_http_error_reason(status),
                                   NULL, status == 429 || status == 503 ? 1 : 0,
                                   NULL);
}


ngx_int_t
ngx_http_glm_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *message, const char *param, ngx_uint_t retry_after,
    const char *allow)
{
    size_t        len;
    u_char        num[NGX_INT_T_LEN + 1];
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    len = glm_http_error_json(NULL, 0, (unsigned) status, message, param);

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    glm_http_error_json((char *) b->pos, len, (unsigned) status, message,
                        param);
    b->last = b->pos + len;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    ngx_http_clean_header(r);

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    r->headers_out.content_type_len = sizeof(NGX_HTTP_GLM_JSON_TYPE) - 1;
    ngx_str_set(&r->headers_out.content_type, NGX_HTTP_GLM_JSON_TYPE);
    r->headers_out.content_type_lowcase = NULL;

    if (retry_after) {
        *ngx_sprintf(num, "%ui", retry_after) = '\0';

        if (ngx_http_glm_add_header(r, "Retry-After", (char *) num)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (allow != NULL
        && ngx_http_glm_add_header(r, "Allow", allow) != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_int_t
ngx_http_glm_add_header(ngx_http_request_t *r, const char *key,
    const char *value)
{
    size_t            len;
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    len = ngx_strlen(value);

    h->hash = 1;
    h->key.len = ngx_strlen(key);
    h->key.data = (u_char *) key;
    h->value.data = ngx_pnalloc(r->pool, len);

    if (h->value.data == NULL) {
        h->hash = 0;
        return NGX_ERROR;
    }

    ngx_memcpy(h->value.data, value, len);
    h->value.len = len;

    return NGX_OK;
}


/* passes on what one drain gathered for a request */
void
ngx_http_glm_flush(ngx_http_glm_ctx_t *ctx)
{
    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (ctx->done) {
        return;
    }

    if (ctx->bad) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "glm: the engine sent a malformed response");

        ngx_http_glm_fail(ctx, 502, NGX_HTTP_BAD_GATEWAY,
                          "The engine sent a malformed response", 0);
        return;
    }

    if (ctx->spill_failed) {
        ngx_http_glm_fail(ctx, 500, NGX_HTTP_INTERNAL_SERVER_ERROR,
                          "The response could not be buffered", 0);
        return;
    }

    if (ctx->overflow) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "glm: more than %uz bytes of response wait for the "
                      "client, request cancelled", ctx->conf->output_limit);

        if (ctx->header_sent) {
            /* the client does not read: nothing in-band would reach it */
            ngx_http_glm_cancel_live(ctx);

            ngx_http_glm_finish(ctx, NGX_ERROR);
            return;
        }

        ngx_http_glm_fail(ctx, 502, NGX_HTTP_BAD_GATEWAY,
                          "The response is larger than the server buffers",
                          0);
        return;
    }

    if (!ctx->head) {
        return;
    }

    if (ctx->content_type != GLM_CT_SSE && !ctx->ended) {
        /* a JSON or text body goes out whole, with its length */
        return;
    }

    if (!ctx->header_sent) {
        rc = ngx_http_glm_send_head(ctx);

        if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
            ngx_http_glm_cancel_live(ctx);

            ngx_http_glm_finish(ctx, rc);
            return;
        }
    }

    if (ctx->ended && ngx_http_glm_append_last(ctx) != NGX_OK) {
        ngx_http_glm_finish(ctx, NGX_ERROR);
        return;
    }

    rc = ngx_http_glm_output(ctx);

    if (rc == NGX_ERROR) {
        ngx_http_glm_cancel_live(ctx);

        ngx_http_glm_finish(ctx, NGX_ERROR);
        return;
    }

    if (ctx->ended) {
        ngx_http_glm_finish(ctx, rc);
        return;
    }

    if (ngx_http_glm_wait_write(ctx) != NGX_OK) {
        ngx_http_glm_cancel_live(ctx);

        ngx_http_glm_finish(ctx, NGX_ERROR);
        return;
    }

    /* the client has just been sent something: the idle time starts over */
    if (ctx->content_type == GLM_CT_SSE && ctx->conf->stream_keepalive) {
        ngx_add_timer(&ctx->keepalive, ctx->conf->stream_keepalive);
    }
}


/*
 * glm_stream_keepalive: a stream's client has been sent nothing for that
 * long (its request waits for a batch slot, or a long prompt is read), so
 * a comment line goes out, which SSE clients ignore, lest a proxy's idle
 * timeout cut the connection.  Not while output waits for the client,
 * which a comment would only lengthen, nor inside an event.
 */
void
ngx_http_glm_keepalive_handler(ngx_event_t *ev)
{
    static u_char        comment[] = ": keepalive\n\n";

    ngx_int_t            rc;
    ngx_http_request_t  *r;
    ngx_http_glm_ctx_t  *ctx;

    ctx = ev->data;
    r = ctx->request;

    if (ctx->done || ctx->ended || !ctx->header_sent) {
        return;
    }

    if (ctx->out == NULL && ctx->busy == NULL && ctx->sse_newlines == 2
        && !r->buffered && !r->connection->buffered)
    {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "glm: stream keepalive");

        if (ngx_http_glm_append(ctx, comment, sizeof(comment) - 1)
            != NGX_OK)
        {
            ngx_http_glm_cancel_live(ctx);

            ngx_http_glm_finish(ctx, NGX_ERROR);
            return;
        }

        rc = ngx_http_glm_output(ctx);

        if (rc == NGX_ERROR || ngx_http_glm_wait_write(ctx) != NGX_OK) {
            ngx_http_glm_cancel_live(ctx);

            ngx_http_glm_finish(ctx, NGX_ERROR);
            return;
        }
    }

    ngx_add_timer(ev, ctx->conf->stream_keepalive);
}


static ngx_int_t
ngx_http_glm_send_head(ngx_http_glm_ctx_t *ctx)
{
    u_char                    num[NGX_INT_T_LEN + 1];
    ngx_http_request_t       *r;
    ngx_http_core_loc_conf_t *clcf;

    r = ctx->request;

    r->headers_out.status = ctx->status;

    switch (ctx->content_type) {

    case GLM_CT_SSE:
        ngx_str_set(&r->headers_out.content_type, NGX_HTTP_GLM_SSE_TYPE);
        r->headers_out.content_length_n = -1;
        break;

    case GLM_CT_TEXT:
        ngx_str_set(&r->headers_out.content_type, NGX_HTTP_GLM_TEXT_TYPE);
        r->headers_out.content_length_n = ctx->buffered;
        break;

    default: /* GLM_CT_JSON */
        ngx_str_set(&r->headers_out.content_type, NGX_HTTP_GLM_JSON_TYPE);
        r->headers_out.content_length_n = ctx->buffered;
        break;
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (ctx->retry_after) {
        *ngx_sprintf(num, "%ui", ctx->retry_after) = '\0';

        if (ngx_http_glm_add_header(r, "Retry-After", (char *) num)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ctx->content_type == GLM_CT_SSE) {
        if (ngx_http_glm_add_header(r, "Cache-Control", "no-cache") != NGX_OK
            || ngx_http_glm_add_header(r, "X-Accel-Buffering", "no")
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        r->allow_ranges = 0;

        /* tokens are small writes that must not wait for Nagle */
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        if (clcf->tcp_nodelay && ngx_tcp_nodelay(r->connection) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    ctx->header_sent = 1;

    return ngx_http_send_header(r);
}


/* hands ctx->out to the filters; NGX_OK, NGX_AGAIN or NGX_ERROR */
static ngx_int_t
ngx_http_glm_output(ngx_http_glm_ctx_t *ctx)
{
    ngx_int_t            rc;
    ngx_buf_t           *b;
    ngx_chain_t         *cl, *last;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (ctx->out == NULL) {
        if (ctx->header_flushed) {
            return NGX_OK;
        }

        /* the response head of a stream goes out before its first token */
        b = ngx_http_glm_get_buf(ctx);
        if (b == NULL) {
            return NGX_ERROR;
        }

        b->flush = 1;
    }

    last = NULL;

    for (cl = ctx->out; cl; cl = cl->next) {
        last = cl;
    }

    if (ctx->content_type == GLM_CT_SSE) {
        last->buf->flush = 1;
    }

    ctx->header_flushed = 1;

    rc = ngx_http_output_filter(r, ctx->out);

    ngx_chain_update_chains(r->pool, &ctx->free, &ctx->busy, &ctx->out,
                            (ngx_buf_tag_t) &ngx_http_glm_module);

    ctx->last_out = &ctx->out;
    ctx->buffered = 0;

    for (cl = ctx->busy; cl; cl = cl->next) {
        ctx->buffered += ngx_buf_size(cl->buf);
    }

    return rc;
}


static void
ngx_http_glm_writer(ngx_http_request_t *r)
{
    ngx_int_t            rc;
    ngx_event_t         *wev;
    ngx_connection_t    *c;
    ngx_http_glm_ctx_t  *ctx;

    c = r->connection;
    wev = c->write;
    ctx = ngx_http_get_module_ctx(r, ngx_http_glm_module);

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "client timed out");
        c->timedout = 1;

        ngx_http_glm_cancel_live(ctx);

        ngx_http_glm_finish(ctx, NGX_HTTP_REQUEST_TIME_OUT);
        return;
    }

    if (!wev->delayed) {
        rc = ngx_http_output_filter(r, NULL);

        ngx_chain_update_chains(r->pool, &ctx->free, &ctx->busy, &ctx->out,
                                (ngx_buf_tag_t) &ngx_http_glm_module);

        if (rc == NGX_ERROR) {
            ngx_http_glm_cancel_live(ctx);

            ngx_http_glm_finish(ctx, NGX_ERROR);
            return;
        }
    }

    if (ngx_http_glm_wait_write(ctx) != NGX_OK) {
        ngx_http_glm_cancel_live(ctx);

        ngx_http_glm_finish(ctx, NGX_ERROR);
    }
}


/* while the client socket is full, wait for it under send_timeout */
static ngx_int_t
ngx_http_glm_wait_write(ngx_http_glm_ctx_t *ctx)
{
    ngx_chain_t               *cl;
    ngx_event_t               *wev;
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_core_loc_conf_t  *clcf;

    r = ctx->request;
    c = r->connection;
    wev = c->write;

    ctx->buffered = 0;

    for (cl = ctx->busy; cl; cl = cl->next) {
        ctx->buffered += ngx_buf_size(cl->buf);
    }

    if (!(r->buffered || c->buffered || wev->delayed)) {
        r->write_event_handler = ngx_http_request_empty_handler;

        if (wev->timer_set) {
            ngx_del_timer(wev);
        }

        return NGX_OK;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    r->write_event_handler = ngx_http_glm_writer;

    if (!wev->delayed && !wev->timer_set) {
        ngx_add_timer(wev, clcf->send_timeout);
    }

    return ngx_handle_write_event(wev, clcf->send_lowat);
}


/* a free buf with our tag, emptied and flagless, appended to ctx->out */
static ngx_buf_t *
ngx_http_glm_get_buf(ngx_http_glm_ctx_t *ctx)
{
    u_char       *start, *end;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    cl = ngx_chain_get_free_buf(ctx->request->pool, &ctx->free);
    if (cl == NULL) {
        return NULL;
    }

    b = cl->buf;
    start = b->start;
    end = b->end;

    ngx_memzero(b, sizeof(ngx_buf_t));

    b->start = start;
    b->end = end;
    b->pos = start;
    b->last = start;
    b->tag = (ngx_buf_tag_t) &ngx_http_glm_module;

    cl->next = NULL;
    *ctx->last_out = cl;
    ctx->last_out = &cl->next;

    return b;
}


ngx_int_t
ngx_http_glm_append(ngx_http_glm_ctx_t *ctx, const u_char *p, size_t n)
{
    size_t       size;
    ngx_buf_t   *b;
    ngx_chain_t *cl;

    b = NULL;

    if (ctx->out) {
        cl = (ngx_chain_t *) ((u_char *) ctx->last_out
                              - offsetof(ngx_chain_t, next));
        b = cl->buf;

        if (!b->temporary || (size_t) (b->end - b->last) < n) {
            b = NULL;
        }
    }

    if (b == NULL) {
        b = ngx_http_glm_get_buf(ctx);
        if (b == NULL) {
            return NGX_ERROR;
        }

        size = ngx_max(n, NGX_HTTP_GLM_BUF_SIZE);

        if (b->start == NULL || (size_t) (b->end - b->start) < n) {
            b->start = ngx_palloc(ctx->request->pool, size);
            if (b->start == NULL) {
                return NGX_ERROR;
            }

            b->end = b->start + size;
            b->pos = b->start;
            b->last = b->start;
        }

        b->temporary = 1;
    }

    b->last = ngx_cpymem(b->last, p, n);
    ctx->buffered += n;

    return NGX_OK;
}


/*
 * A JSON or text body, passed on whole at END: memory holds at most
 * glm_output_limit of it, what comes beyond goes to a temporary file,
 * which then holds everything up to the last byte in memory.
 */
ngx_int_t
ngx_http_glm_append_body(ngx_http_glm_ctx_t *ctx, const u_char *p, size_t n)
{
    if (ctx->buffered - ctx->spilled + n <= ctx->conf->output_limit) {
        return ngx_http_glm_append(ctx, p, n);
    }

    return ngx_http_glm_spill(ctx, p, n);
}


/* ctx->out is [the file's buf] then memory bufs: the memory, then p, go to
 * the file */
static ngx_int_t
ngx_http_glm_spill(ngx_http_glm_ctx_t *ctx, const u_char *p, size_t n)
{
    ssize_t                    want, written;
    ngx_buf_t                  b, *fb;
    ngx_chain_t                in, *mem, *cl, *next;
    ngx_temp_file_t           *tf;
    ngx_http_request_t        *r;
    ngx_http_core_loc_conf_t  *clcf;

    r = ctx->request;
    tf = ctx->spill;

    if (tf == NULL) {
        tf = ngx_pcalloc(r->pool, sizeof(ngx_temp_file_t));
        if (tf == NULL) {
            return NGX_ERROR;
        }

        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        tf->file.fd = NGX_INVALID_FILE;
        tf->file.log = r->connection->log;
        tf->path = clcf->client_body_temp_path;
        tf->pool = r->pool;
        tf->log_level = NGX_LOG_INFO;
        tf->warn = "a response is buffered to a temporary file";

        fb = ngx_calloc_buf(r->pool);
        if (fb == NULL) {
            return NGX_ERROR;
        }

        cl = ngx_alloc_chain_link(r->pool);
        if (cl == NULL) {
            return NGX_ERROR;
        }

        fb->in_file = 1;
        fb->file = &tf->file;
        fb->tag = (ngx_buf_tag_t) &ngx_http_glm_module;

        cl->buf = fb;
        cl->next = NULL;

        ctx->spill = tf;
        mem = ctx->out;

    } else {
        cl = ctx->spill_cl;
        mem = cl->next;
    }

    want = 0;

    for (next = mem; next; next = next->next) {
        want += ngx_buf_size(next->buf);
    }

    written = want ? ngx_write_chain_to_temp_file(tf, mem) : 0;

    if (written != want) {
        goto failed;
    }

    tf->offset += written;

    ngx_memzero(&b, sizeof(ngx_buf_t));
    b.pos = (u_char *) p;
    b.last = (u_char *) p + n;
    b.memory = 1;

    in.buf = &b;
    in.next = NULL;

    written = ngx_write_chain_to_temp_file(tf, &in);

    if (written != (ssize_t) n) {
        goto failed;
    }

    tf->offset += written;

    /* the memory bufs are reused for what comes after the file's end */
    for ( /* void */ ; mem; mem = next) {
        next = mem->next;
        mem->next = ctx->free;
        ctx->free = mem;
    }

    cl->next = NULL;
    cl->buf->file_last = tf->offset;

    ctx->spill_cl = cl;
    ctx->out = cl;
    ctx->last_out = &cl->next;

    ctx->buffered += n;
    ctx->spilled = (size_t) tf->offset;

    return NGX_OK;

failed:

    /* ngx_write_chain_to_file() said why, or the disk is full */
    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "glm: writing the response to a temporary file failed");

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_glm_append_last(ngx_http_glm_ctx_t *ctx)
{
    ngx_buf_t           *b;
    ngx_http_request_t  *r;

    r = ctx->request;

    b = ngx_http_glm_get_buf(ctx);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;
    b->flush = 1;

    return NGX_OK;
}


/*
 * Ends a request the engine cannot finish: in-band (SSE error event and
 * [DONE]) once a stream has begun, else a JSON error with `status`.
 */
void
ngx_http_glm_fail(ngx_http_glm_ctx_t *ctx, ngx_uint_t inband,
    ngx_uint_t status, const char *message, ngx_uint_t retry_after)
{
    u_char              *p;
    size_t               len;
    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = ctx->request;

    ngx_http_glm_cancel_live(ctx);

    if (ctx->header_sent) {
        if (ctx->content_type != GLM_CT_SSE) {
            ngx_http_glm_finish(ctx, NGX_ERROR);
            return;
        }

        len = glm_http_sse_error(NULL, 0, (unsigned) inband, message);

        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            ngx_http_glm_finish(ctx, NGX_ERROR);
            return;
        }

        glm_http_sse_error((char *) p, len, (unsigned) inband, message);

        if (ngx_http_glm_append(ctx, p, len) != NGX_OK
            || ngx_http_glm_append_last(ctx) != NGX_OK)
        {
            ngx_http_glm_finish(ctx, NGX_ERROR);
            return;
        }

        rc = ngx_http_glm_output(ctx);
        ngx_http_glm_finish(ctx, rc);
        return;
    }

    /* what was gathered for a JSON body is dropped with the pool */
    ctx->out = NULL;
    ctx->last_out = &ctx->out;

    rc = ngx_http_glm_send_error(r, status, message, NULL, retry_after, NULL);
    ngx_http_glm_finish(ctx, rc);
}


/*
 * Finalizes the request, then runs what the finalization posted on its
 * connection: called from the engine's events, not the client's, nothing
 * else would run it (a terminated request would hang until its client
 * stirred).
 */
static void
ngx_http_glm_finish(ngx_http_glm_ctx_t *ctx, ngx_int_t rc)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    if (ctx->done) {
        return;
    }

    ngx_http_glm_detach(ctx);

    if (r->write_event_handler == ngx_http_glm_writer) {
        r->write_event_handler = ngx_http_request_empty_handler;
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}
