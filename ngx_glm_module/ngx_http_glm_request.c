
/*
 * ngx_http_glm_module: request intake.
 *
 * The content handler of glm_pass, the reading and checking of the body,
 * and the way into the engine: a slot (released by the request's pool
 * cleanup, exactly once, with a CANCEL when the engine still runs it), the
 * SUBMIT records in the submit ring, the queue of requests waiting for room
 * there and of CANCELs waiting likewise, and the request's timeouts.  What
 * comes back is taken in ngx_http_glm_engine.c and sent in
 * ngx_http_glm_output.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>

#include "glm_http_check.h"
#include "ngx_http_glm_module.h"


/*
 * A large body is checked and, for chat, scanned for media URLs on an intake
 * thread (ngx_http_glm_jobs.c): the yajl pass over a 14 MB body takes tens
 * of milliseconds, during which the worker's event loop would pass no token
 * to any stream it serves.  The thread touches only this struct and the
 * body (read-only); the request is blocked meanwhile (r->main->blocked), so
 * it cannot be freed under the thread.
 */
struct ngx_http_glm_check_task_s {
    ngx_http_glm_job_t           job;
    ngx_http_glm_ctx_t          *ctx;
    u_char                      *body;
    size_t                       len;
    uint32_t                     op;
    glm_http_check               ck;
    glm_media_scan              *scan;          /* chat: filled if URLs may */
    ngx_uint_t                   scanned;       /* be in it */
};


#define NGX_HTTP_GLM_RETRY_MSEC      5


static ngx_int_t ngx_http_glm_request_id(ngx_http_request_t *r, ngx_str_t *id);
static void ngx_http_glm_body_start(ngx_http_request_t *r);
static void ngx_http_glm_body_read(ngx_http_request_t *r);
static void ngx_http_glm_read_more(ngx_event_t *ev);
static ngx_int_t ngx_http_glm_body_append(ngx_http_request_t *r,
    ngx_http_glm_ctx_t *ctx, u_char *p, size_t n);
static void ngx_http_glm_body_cleanup(void *data);
static void ngx_http_glm_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_glm_gather_body(ngx_http_request_t *r,
    ngx_http_glm_ctx_t *ctx);
static void ngx_http_glm_body_checked(ngx_http_request_t *r,
    ngx_http_glm_ctx_t *ctx, glm_http_check *ck);
static ngx_int_t ngx_http_glm_check_post(ngx_http_request_t *r,
    ngx_http_glm_ctx_t *ctx);
static void ngx_http_glm_check_thread(void *data);
static void ngx_http_glm_check_done(ngx_http_glm_job_t *job);
static void ngx_http_glm_check_resume(ngx_http_request_t *r);

static ngx_int_t ngx_http_glm_slot_alloc(ngx_http_glm_worker_t *w,
    ngx_http_glm_ctx_t *ctx);
static void ngx_http_glm_cleanup(void *data);
static size_t ngx_http_glm_chunk(glm_ring *ring, uint64_t tail, size_t left,
    size_t lead);
static ngx_int_t ngx_http_glm_submit(ngx_http_glm_ctx_t *ctx);
static void ngx_http_glm_cancel(ngx_http_glm_worker_t *w, uint32_t slot,
    uint32_t gen);
static ngx_int_t ngx_http_glm_flush_cancels(ngx_http_glm_worker_t *w);

static void ngx_http_glm_timeout_handler(ngx_event_t *ev);


/* what the engine answers without running the model */
#define ngx_http_glm_quick(op)                                               \
    ((op) == GLM_OP_MODELS || (op) == GLM_OP_METRICS || (op) == GLM_OP_VERSION)


ngx_int_t
ngx_http_glm_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_uint_t                 method;
    ngx_table_elt_t           *ct;
    ngx_pool_cleanup_t        *cln;
    ngx_http_glm_ctx_t        *ctx;
    ngx_http_glm_pass_t       *pass;
    ngx_http_glm_worker_t     *w;
    ngx_http_glm_loc_conf_t   *glcf;
    ngx_http_glm_main_conf_t  *gmcf;

    glcf = ngx_http_get_module_loc_conf(r, ngx_http_glm_module);
    gmcf = ngx_http_get_module_main_conf(r, ngx_http_glm_module);
    w = &gmcf->worker;

    if (glcf->op == NGX_HTTP_GLM_OP_ERROR) {
        return ngx_http_glm_error_handler(r);
    }

    method = NGX_HTTP_POST;

    for (pass = ngx_http_glm_passes; pass->name.len; pass++) {
        if (pass->op == glcf->op) {
            method = pass->method;
            break;
        }
    }

    if (r->method != method) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_glm_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                       "Method Not Allowed", NULL, 0,
                                       method == NGX_HTTP_GET ? "GET"
                                                              : "POST");
    }

    ct = r->headers_in.content_type;

    if (method == NGX_HTTP_POST
        && (ct == NULL
            || !glm_http_is_json((char *) ct->value.data, ct->value.len)))
    {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_glm_send_error(r, NGX_HTTP_BAD_REQUEST,
                                       "Unsupported Media Type: Only "
                                       "'application/json' is allowed",
                                       NULL, 0, NULL);
    }

    if (w->state != NGX_HTTP_GLM_READY) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_glm_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "engine not available", NULL, 1,
                                       NULL);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_glm_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->worker = w;
    ctx->conf = glcf;
    ctx->op = (uint32_t) glcf->op;
    ctx->last_out = &ctx->out;

    if ((ctx->op == GLM_OP_CHAT || ctx->op == GLM_OP_COMPLETIONS)
        && ngx_http_glm_request_id(r, &ctx->request_id) == NGX_ERROR)
    {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_glm_send_error(r, NGX_HTTP_BAD_REQUEST,
                                       "The X-Request-Id header is longer than "
                                       "256 bytes", NULL, 0, NULL);
    }

    ngx_http_set_ctx(r, ctx, ngx_http_glm_module);

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_glm_body_cleanup;
    cln->data = ctx;

    ctx->read_more.handler = ngx_http_glm_read_more;
    ctx->read_more.data = ctx;
    ctx->read_more.log = r->connection->log;

    /*
     * unbuffered: the body comes to ngx_http_glm_body_read() as nginx reads
     * it, which takes at most NGX_HTTP_GLM_READ_TURN bytes per turn of the
     * event loop; buffered, nginx would read a fast client's whole body in
     * one go, however long the other connections wait
     */
    if (ngx_http_glm_quick(ctx->op)) {
        rc = ngx_http_read_client_request_body(r, ngx_http_glm_body_handler);

    } else {
        r->request_body_no_buffering = 1;
        rc = ngx_http_read_client_request_body(r, ngx_http_glm_body_start);
    }

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/*
 * The client's X-Request-Id (the first one), which the engine makes the
 * response's id of, as vLLM: NGX_OK, NGX_DECLINED without one, NGX_ERROR
 * when longer than the ring carries.
 */
static ngx_int_t
ngx_http_glm_request_id(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NGX_DECLINED;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("X-Request-Id") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "X-Request-Id",
                               sizeof("X-Request-Id") - 1) == 0)
        {
            if (h[i].value.len > GLM_REQUEST_ID_MAX) {
                return NGX_ERROR;
            }

            *id = h[i].value;
            return NGX_OK;
        }
    }
}


/* nginx has begun reading the body (or read all of it with the header) */
static void
ngx_http_glm_body_start(ngx_http_request_t *r)
{
    ngx_http_glm_ctx_t  *ctx;

    if (!r->request_body_no_buffering) {
        /* all of it came with the header, in memory */
        ngx_http_glm_body_handler(r);
        return;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_glm_module);
    ctx->reading = 1;

    r->read_event_handler = ngx_http_glm_body_read;

    ngx_http_glm_body_read(r);
}


/*
 * Takes what nginx has read of the body into ctx->body and asks for more,
 * until the body is whole or NGX_HTTP_GLM_READ_TURN bytes went in this
 * turn; then goes on at the next turn of the event loop, after the other
 * connections' events (ngx_posted_next_events).
 */
static void
ngx_http_glm_body_read(ngx_http_request_t *r)
{
    size_t                    turn, n;
    ngx_int_t                 rc;
    ngx_buf_t                *b;
    ngx_chain_t              *cl;
    ngx_http_glm_ctx_t       *ctx;
    ngx_http_request_body_t  *rb;

    ctx = ngx_http_get_module_ctx(r, ngx_http_glm_module);
    rb = r->request_body;
    turn = 0;

    if (!ctx->reading) {
        /* a read event after the end of the body */
        return;
    }

    if (ctx->read_more.posted) {
        /* a read event came first: this turn is that one */
        ngx_delete_posted_event(&ctx->read_more);
    }

    for ( ;; ) {
        for (cl = rb->bufs; cl; cl = cl->next) {
            b = cl->buf;
            n = (size_t) (b->last - b->pos);

            if (n == 0) {
                continue;
            }

            if (ngx_http_glm_body_append(r, ctx, b->pos, n) != NGX_OK) {
                ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
                return;
            }

            b->pos = b->last;
            turn += n;
        }

        rb->bufs = NULL;

        if (!r->reading_body) {
            break;
        }

        if (turn >= NGX_HTTP_GLM_READ_TURN) {
            ngx_post_event(&ctx->read_more, &ngx_posted_next_events);
            return;
        }

        rc = ngx_http_read_unbuffered_request_body(r);

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            ngx_http_finalize_request(r, rc);
            return;
        }

        if (rc == NGX_AGAIN && rb->bufs == NULL) {
            /* the client's next bytes call us again */
            return;
        }
    }

    ctx->reading = 0;
    r->read_event_handler = ngx_http_block_reading;

    ngx_http_glm_body_handler(r);
}


static void
ngx_http_glm_read_more(ngx_event_t *ev)
{
    ngx_http_glm_ctx_t  *ctx = ev->data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    ngx_http_glm_body_read(r);

    ngx_http_run_posted_requests(c);
}


/* ctx->body grows as the body comes: at once to its Content-Length */
static ngx_int_t
ngx_http_glm_body_append(ngx_http_request_t *r, ngx_http_glm_ctx_t *ctx,
    u_char *p, size_t n)
{
    size_t   cap;
    u_char  *body;

    if (ctx->body_len + n > ctx->body_cap) {
        cap = ngx_max(ctx->body_cap * 2, ctx->body_len + n);

        if (ctx->body_cap == 0 && r->headers_in.content_length_n > 0) {
            cap = ngx_max(cap, (size_t) r->headers_in.content_length_n);

        } else {
            cap = ngx_max(cap, NGX_HTTP_GLM_THREAD_MIN);
        }

        body = ngx_pnalloc(r->pool, cap);
        if (body == NULL) {
            return NGX_ERROR;
        }

        if (ctx->body_len) {
            ngx_memcpy(body, ctx->body, ctx->body_len);
        }

        if (ctx->body_cap) {
            /* a large allocation goes back at once */
            ngx_pfree(r->pool, ctx->body);
        }

        ctx->body = body;
        ctx->body_cap = cap;
    }

    ngx_memcpy(ctx->body + ctx->body_len, p, n);
    ctx->body_len += n;

    return NGX_OK;
}


static void
ngx_http_glm_body_cleanup(void *data)
{
    ngx_http_glm_ctx_t  *ctx = data;

    if (ctx->read_more.posted) {
        ngx_delete_posted_event(&ctx->read_more);
    }
}


/* the body is whole: check it, here or on an intake thread */
static void
ngx_http_glm_body_handler(ngx_http_request_t *r)
{
    ngx_int_t            rc;
    glm_http_check       ck;
    ngx_http_glm_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_glm_module);

    if (ngx_http_glm_quick(ctx->op)) {
        /* a body sent with GET is read and ignored */
        ctx->body_len = 0;

        rc = ngx_http_glm_admit(ctx);

        if (rc != NGX_DONE) {
            ngx_http_finalize_request(r, rc);
        }

        return;
    }

    if (ctx->body_cap == 0
        && ngx_http_glm_gather_body(r, ctx) != NGX_OK)
    {
        /* it came with the header, not through ngx_http_glm_body_read() */
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ctx->body_len >= NGX_HTTP_GLM_THREAD_MIN) {
        rc = ngx_http_glm_check_post(r, ctx);

        if (rc == NGX_OK) {
            /* ngx_http_glm_check_resume() goes on */
            return;
        }

        if (rc == NGX_ERROR) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        /* NGX_DECLINED: glm_intake_threads 0, check it here */
    }

    glm_http_check_body(&ck, ctx->op, (char *) ctx->body, ctx->body_len);

    ngx_http_glm_body_checked(r, ctx, &ck);
}


/* the body is read and checked: answer its error, or send it on */
static void
ngx_http_glm_body_checked(ngx_http_request_t *r, ngx_http_glm_ctx_t *ctx,
    glm_http_check *ck)
{
    ngx_int_t               rc;
    ngx_http_glm_worker_t  *w;

    w = ctx->worker;

    if (ck->status != 0) {
        rc = ngx_http_glm_send_error(r, ck->status, ck->message, ck->param,
                                     0, NULL);
        ngx_http_finalize_request(r, rc);
        return;
    }

    if (w->state == NGX_HTTP_GLM_READY && ck->has_model
        && (ck->model_truncated
            || !glm_http_model_served(w->names, w->names_len, ck->model,
                                      ck->model_len)))
    {
        glm_http_unknown_model(ck);
        rc = ngx_http_glm_send_error(r, ck->status, ck->message, ck->param,
                                     0, NULL);
        ngx_http_finalize_request(r, rc);
        return;
    }

    if (ctx->op == GLM_OP_CHAT) {
        rc = ngx_http_glm_media_start(r, ctx);

        if (rc == NGX_DONE) {
            /* fetching: ngx_http_glm_media_wait() goes on */
            return;
        }

        if (rc != NGX_DECLINED) {
            ngx_http_finalize_request(r, rc);
            return;
        }
    }

    rc = ngx_http_glm_admit(ctx);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


/*
 * NGX_OK when an intake thread has the body, NGX_DECLINED when there are
 * none, NGX_ERROR.
 */
static ngx_int_t
ngx_http_glm_check_post(ngx_http_request_t *r, ngx_http_glm_ctx_t *ctx)
{
    ngx_int_t                   rc;
    ngx_http_glm_check_task_t  *t;

    t = ngx_pcalloc(r->pool, sizeof(ngx_http_glm_check_task_t));
    if (t == NULL) {
        return NGX_ERROR;
    }

    t->ctx = ctx;
    t->body = ctx->body;
    t->len = ctx->body_len;
    t->op = ctx->op;

    if (ctx->op == GLM_OP_CHAT) {
        /* freed by its pool cleanup even if the request ends meanwhile */
        if (ngx_http_glm_media_scan_alloc(r, ctx) != NGX_OK) {
            return NGX_ERROR;
        }

        t->scan = ctx->media;
        ctx->media = NULL;
    }

    t->job.run = ngx_http_glm_check_thread;
    t->job.done = ngx_http_glm_check_done;
    t->job.data = t;

    rc = ngx_http_glm_job_post(&t->job);

    if (rc != NGX_OK) {
        return rc;
    }

    ctx->check = t;
    ctx->checking = 1;

    r->main->blocked++;
    r->aio = 1;
    r->write_event_handler = ngx_http_glm_check_resume;

    return NGX_OK;
}


/* on an intake thread: the body, read-only, and this struct */
static void
ngx_http_glm_check_thread(void *data)
{
    ngx_http_glm_check_task_t  *t = data;

    if (glm_http_check_body(&t->ck, t->op, (char *) t->body, t->len) != 0) {
        return;
    }

    if (t->scan != NULL && glm_media_may_have_urls((char *) t->body, t->len))
    {
        glm_media_scan_body(t->scan, (char *) t->body, t->len);
        t->scanned = 1;
    }
}


/* back on the event loop */
static void
ngx_http_glm_check_done(ngx_http_glm_job_t *job)
{
    ngx_http_glm_check_task_t  *t = job->data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = t->ctx->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    r->main->blocked--;
    r->aio = 0;
    t->ctx->checking = 0;

    /* ours, or the finalizer if the request was terminated meanwhile */
    r->write_event_handler(r);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_glm_check_resume(ngx_http_request_t *r)
{
    ngx_http_glm_ctx_t         *ctx;
    ngx_http_glm_check_task_t  *t;

    ctx = ngx_http_get_module_ctx(r, ngx_http_glm_module);

    if (ctx->checking) {
        /* a write event before the thread is done */
        return;
    }

    r->write_event_handler = ngx_http_request_empty_handler;

    t = ctx->check;

    if (t->scan != NULL) {
        ctx->media_scanned = 1;
        ctx->media = t->scanned ? t->scan : NULL;
    }

    ngx_http_glm_body_checked(r, ctx, &t->ck);
}


/* the request body as one buffer, read back from the temp file if need be */
static ngx_int_t
ngx_http_glm_gather_body(ngx_http_request_t *r, ngx_http_glm_ctx_t *ctx)
{
    off_t         size;
    u_char       *p;
    size_t        len;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    ctx->body = NULL;
    ctx->body_len = 0;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += (size_t) ngx_buf_size(cl->buf);
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL && ngx_buf_in_memory(cl->buf)) {
        ctx->body = cl->buf->pos;
        ctx->body_len = len;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, len ? len : 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->body = p;
    ctx->body_len = len;

    for ( /* void */ ; cl; cl = cl->next) {
        b = cl->buf;

        if (ngx_buf_in_memory(b)) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
            continue;
        }

        if (!b->in_file || b->file_last == b->file_pos) {
            /* an empty body is one special buf, without a file */
            continue;
        }

        size = b->file_last - b->file_pos;

        n = ngx_read_file(b->file, p, (size_t) size, b->file_pos);

        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (n != size) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          ngx_read_file_n " read only %z of %O from \"%V\"",
                          n, size, &b->file->name);
            return NGX_ERROR;
        }

        p += n;
    }

    return NGX_OK;
}


/*
 * Gives the request a slot and puts it into the submit ring, or behind the
 * requests already waiting for room.  Returns NGX_DONE when the request now
 * waits for the engine, else what to finalize it with.
 */
ngx_int_t
ngx_http_glm_admit(ngx_http_glm_ctx_t *ctx)
{
    ngx_int_t               rc;
    ngx_http_request_t     *r;
    ngx_http_glm_worker_t  *w;

    r = ctx->request;
    w = ctx->worker;

    if (w->state != NGX_HTTP_GLM_READY) {
        return ngx_http_glm_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "engine not available", NULL, 1, NULL);
    }

    if (ctx->body_len > UINT32_MAX
        || ngx_http_glm_submit_bound(&w->submit,
                                     ctx->body_len + ctx->request_id.len)
           > w->submit.size)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "glm: request body of %uz bytes does not fit the "
                      "engine's submit ring of %uL bytes",
                      ctx->body_len, w->submit.size);

        return ngx_http_glm_send_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                       "The request body is larger than the "
                                       "engine accepts", NULL, 0, NULL);
    }

    if (ngx_http_glm_slot_alloc(w, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->timeout.handler = ngx_http_glm_timeout_handler;
    ctx->timeout.data = ctx;
    ctx->timeout.log = r->connection->log;

    ctx->keepalive.handler = ngx_http_glm_keepalive_handler;
    ctx->keepalive.data = ctx;
    ctx->keepalive.log = r->connection->log;

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    if (ngx_queue_empty(&w->waiting)) {
        rc = ngx_http_glm_submit(ctx);

        if (rc == NGX_OK) {
            ngx_http_glm_set_live(ctx, 1);
            return NGX_DONE;
        }

        if (rc == NGX_BUSY) {
            ngx_post_event(&w->resume, &ngx_posted_next_events);
        }
    }

    ctx->waiting = 1;
    ngx_queue_insert_tail(&w->waiting, &ctx->wait_link);
    ngx_add_timer(&ctx->timeout, ctx->conf->submit_timeout);

    if (!w->retry.timer_set) {
        ngx_add_timer(&w->retry, NGX_HTTP_GLM_RETRY_MSEC);
    }

    return NGX_DONE;
}


/* ---- slots and the submit ring ----------------------------------------- */

static ngx_int_t
ngx_http_glm_slot_alloc(ngx_http_glm_worker_t *w, ngx_http_glm_ctx_t *ctx)
{
    uint32_t              *free_slots;
    ngx_uint_t             i, n;
    ngx_pool_cleanup_t    *cln;
    ngx_http_glm_ctx_t   **slots;

    cln = ngx_pool_cleanup_add(ctx->request->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    if (w->nfree == 0) {
        n = w->nslots ? w->nslots * 2 : 64;

        if (n > UINT32_MAX) {
            return NGX_ERROR;
        }

        slots = ngx_alloc(n * sizeof(ngx_http_glm_ctx_t *), w->log);
        free_slots = ngx_alloc(n * sizeof(uint32_t), w->log);

        if (slots == NULL || free_slots == NULL) {
            ngx_free(slots);
            ngx_free(free_slots);
            return NGX_ERROR;
        }

        if (w->nslots) {
            ngx_memcpy(slots, w->slots,
                       w->nslots * sizeof(ngx_http_glm_ctx_t *));
        }

        for (i = w->nslots; i < n; i++) {
            slots[i] = NULL;
        }

        /* the lowest new slot is handed out first */
        for (i = 0; i < n - w->nslots; i++) {
            free_slots[i] = (uint32_t) (n - 1 - i);
        }

        ngx_free(w->slots);
        ngx_free(w->free_slots);

        w->nfree = n - w->nslots;
        w->nslots = n;
        w->slots = slots;
        w->free_slots = free_slots;
    }

    ctx->slot = w->free_slots[--w->nfree];

    if (++w->gen == 0) {
        w->gen = 1;
    }

    ctx->gen = w->gen;
    ctx->has_slot = 1;
    w->slots[ctx->slot] = ctx;

    cln->handler = ngx_http_glm_cleanup;
    cln->data = ctx;

    return NGX_OK;
}


/* done: the request leaves its timer and the worker's queues */
void
ngx_http_glm_detach(ngx_http_glm_ctx_t *ctx)
{
    ctx->done = 1;

    if (ctx->timeout.timer_set) {
        ngx_del_timer(&ctx->timeout);
    }

    if (ctx->keepalive.timer_set) {
        ngx_del_timer(&ctx->keepalive);
    }

    if (ctx->waiting) {
        ngx_queue_remove(&ctx->wait_link);
        ctx->waiting = 0;
    }

    if (ctx->partial) {
        /*
         * before any other body goes in: the engine drops the part of this
         * one that it has
         */
        ctx->partial = 0;
        ngx_http_glm_cancel(ctx->worker, ctx->slot, ctx->gen);
    }

    if (ctx->in_dirty) {
        ngx_queue_remove(&ctx->dirty_link);
        ctx->in_dirty = 0;
    }
}


/* the request's pool goes away: the one place a slot is released */
static void
ngx_http_glm_cleanup(void *data)
{
    ngx_http_glm_ctx_t  *ctx = data;

    ngx_http_glm_worker_t  *w;

    w = ctx->worker;

    ngx_http_glm_detach(ctx);

    ngx_http_glm_cancel_live(ctx);

    if (ctx->has_slot) {
        ctx->has_slot = 0;
        w->slots[ctx->slot] = NULL;
        w->free_slots[w->nfree++] = ctx->slot;
    }
}


/*
 * Body bytes the next record carries when written at `tail`, after `lead`
 * bytes of its own (the first: glm_submit and the request id).  A record that
 * would straddle the end of the buffer is cut to end there instead (when
 * that leaves room for any body), so that no ring space goes to padding and
 * a body can take nearly the whole ring.
 */
static size_t
ngx_http_glm_chunk(glm_ring *ring, uint64_t tail, size_t left, size_t lead)
{
    size_t  chunk, to_end;

    chunk = ngx_min(left, glm_ring_max_payload(ring) - lead);
    to_end = (size_t) (ring->size - (tail & (ring->size - 1)));

    if (glm_rec_total((uint32_t) (lead + chunk)) > to_end
        && to_end > sizeof(glm_rec) + lead)
    {
        /* to_end is a multiple of GLM_REC_ALIGN: the record ends exactly */
        chunk = ngx_min(chunk, to_end - sizeof(glm_rec) - lead);
    }

    return chunk;
}


/*
 * ring bytes a body may need, wherever the ring's tail stands; body_len
 * counts the request id too, which goes where the body's first bytes would
 */
size_t
ngx_http_glm_submit_bound(glm_ring *ring, size_t body_len)
{
    size_t  records;

    records = body_len / (glm_ring_max_payload(ring) - sizeof(glm_submit)) + 3;

    return body_len + sizeof(glm_submit)
           + records * (sizeof(glm_rec) + GLM_REC_ALIGN - 1)
           + 2 * sizeof(glm_rec);
}


/*
 * Writes the body as SUBMIT + SUBMIT_MORE records, once the ring has room
 * for all that is left of it: NGX_AGAIN when it has not (nothing written),
 * NGX_BUSY when NGX_HTTP_GLM_SUBMIT_TURN bytes went in and more are to
 * follow at the next turn of the event loop, NGX_OK when the last did.
 * Until then the request stays first in the worker's queue, so that no
 * other body comes between its records (CANCELs may: the engine takes them
 * apart, and one for this request drops what it has of the body).
 */
static ngx_int_t
ngx_http_glm_submit(ngx_http_glm_ctx_t *ctx)
{
    int                     bell;
    u_char                 *p, *body;
    size_t                  left, chunk, lead, turn;
    uint16_t                type, flags;
    uint32_t                payload;
    uint64_t                tail, head, need, idx, size;
    glm_ring               *ring;
    glm_submit              sub;
    ngx_uint_t              first;
    ngx_http_glm_worker_t  *w;

    w = ctx->worker;
    ring = &w->submit;
    size = ring->size;

    if (ngx_http_glm_flush_cancels(w) != NGX_OK) {
        return NGX_AGAIN;
    }

    /* replay glm_ring_reserve's arithmetic over all records, pads included */

    tail = ring->ctl->tail;
    head = __atomic_load_n(&ring->ctl->head, __ATOMIC_ACQUIRE);
    left = ctx->body_len - ctx->submitted;
    first = (ctx->submitted == 0);

    do {
        lead = first ? sizeof(glm_submit) + ctx->request_id.len : 0;
        chunk = ngx_http_glm_chunk(ring, tail, left, lead);
        need = glm_rec_total((uint32_t) (lead + chunk));
        idx = tail & (size - 1);

        if (need > size - idx) {
            tail += size - idx;
        }

        if (tail + need - head > size) {
            return NGX_AGAIN;
        }

        tail += need;
        left -= chunk;
        first = 0;

    } while (left);

    /* it fits: write for real, record for record as replayed */

    bell = 0;
    body = ctx->body + ctx->submitted;
    left = ctx->body_len - ctx->submitted;
    first = (ctx->submitted == 0);
    turn = 0;

    ngx_memzero(&sub, sizeof(glm_submit));
    sub.op = ctx->op;
    sub.body_len = (uint32_t) ctx->body_len;
    sub.request_id_len = (uint32_t) ctx->request_id.len;

    do {
        lead = first ? sizeof(glm_submit) + ctx->request_id.len : 0;
        chunk = ngx_http_glm_chunk(ring, ring->ctl->tail, left, lead);
        payload = (uint32_t) (lead + chunk);
        type = first ? GLM_REC_SUBMIT : GLM_REC_SUBMIT_MORE;

        p = glm_ring_reserve(ring, payload);

        if (p == NULL) {
            /* cannot happen after the replay: the consumer only frees */
            ngx_log_error(NGX_LOG_ALERT, w->log, 0,
                          "glm: submit ring reservation failed");
            return NGX_ERROR;
        }

        if (first) {
            p = ngx_cpymem(p, &sub, sizeof(glm_submit));
            p = ngx_cpymem(p, ctx->request_id.data, ctx->request_id.len);
        }

        if (chunk) {
            ngx_memcpy(p, body, chunk);
        }

        body += chunk;
        left -= chunk;
        turn += chunk;
        ctx->submitted += chunk;
        flags = left ? 0 : GLM_SUBMIT_LAST;
        first = 0;

        bell |= glm_ring_commit(ring, type, flags, ctx->slot, ctx->gen,
                                payload);

    } while (left && turn < NGX_HTTP_GLM_SUBMIT_TURN);

    if (bell) {
        ngx_http_glm_doorbell(w);
    }

    ctx->partial = (left != 0);

    return left ? NGX_BUSY : NGX_OK;
}


void
ngx_http_glm_process_queue(ngx_http_glm_worker_t *w)
{
    ngx_int_t            rc;
    ngx_queue_t         *q;
    ngx_http_glm_ctx_t  *ctx;

    if (w->state != NGX_HTTP_GLM_READY) {
        return;
    }

    if (ngx_http_glm_flush_cancels(w) == NGX_OK) {

        while (!ngx_queue_empty(&w->waiting)) {
            q = ngx_queue_head(&w->waiting);
            ctx = ngx_queue_data(q, ngx_http_glm_ctx_t, wait_link);

            rc = ngx_http_glm_submit(ctx);

            if (rc == NGX_AGAIN) {
                break;
            }

            if (rc == NGX_BUSY) {
                /* the rest at the next turn, after the other events */
                ngx_post_event(&w->resume, &ngx_posted_next_events);
                break;
            }

            ngx_queue_remove(q);
            ctx->waiting = 0;

            if (rc != NGX_OK) {
                ngx_http_glm_fail(ctx, 500, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                  "Internal server error", 0);
                continue;
            }

            ngx_http_glm_set_live(ctx, 1);
        }
    }

    if ((w->ncancels || !ngx_queue_empty(&w->waiting))
        && !w->retry.timer_set)
    {
        ngx_add_timer(&w->retry, NGX_HTTP_GLM_RETRY_MSEC);
    }
}


void
ngx_http_glm_retry_handler(ngx_event_t *ev)
{
    ngx_http_glm_process_queue(ev->data);
}


/* a request the engine still runs is to stop there: a CANCEL, once */
void
ngx_http_glm_cancel_live(ngx_http_glm_ctx_t *ctx)
{
    if (ctx->live) {
        ngx_http_glm_set_live(ctx, 0);
        ngx_http_glm_cancel(ctx->worker, ctx->slot, ctx->gen);
    }
}


/*
 * The request is in the engine (submitted, not answered) or no longer.  The
 * worker publishes since when it has had any there (ring.h's Health), and
 * the request waits for its first record: glm_read_timeout, or for the
 * requests the engine answers at once (models, metrics, version),
 * glm_health_timeout, after which the timeout handler asks whether the
 * engine is stuck.
 */
void
ngx_http_glm_set_live(ngx_http_glm_ctx_t *ctx, ngx_uint_t live)
{
    ngx_http_glm_worker_t  *w;

    w = ctx->worker;

    if (ctx->live == live) {
        return;
    }

    ctx->live = live;

    if (!live) {
        if (w->nlive && --w->nlive == 0 && w->own) {
            __atomic_store_n(&w->own->busy_since_ns, 0, __ATOMIC_RELAXED);
        }

        return;
    }

    ctx->live_since = ngx_http_glm_mono_ns();

    if (w->nlive++ == 0 && w->own) {
        __atomic_store_n(&w->own->busy_since_ns, ctx->live_since,
                         __ATOMIC_RELAXED);
    }

    ngx_add_timer(&ctx->timeout, ngx_http_glm_quick(ctx->op)
                                 ? ngx_min(ctx->conf->health_timeout,
                                           ctx->conf->read_timeout)
                                 : ctx->conf->read_timeout);
}


static void
ngx_http_glm_cancel(ngx_http_glm_worker_t *w, uint32_t slot, uint32_t gen)
{
    ngx_uint_t              n;
    ngx_http_glm_cancel_t  *cancels;

    if (w->state != NGX_HTTP_GLM_READY) {
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, w->log, 0,
                   "glm cancel slot:%uD gen:%uD", slot, gen);

    if (w->ncancels == w->cancels_cap) {
        n = w->cancels_cap ? w->cancels_cap * 2 : 16;

        cancels = ngx_alloc(n * sizeof(ngx_http_glm_cancel_t), w->log);
        if (cancels == NULL) {
            /* the engine finds out at the read timeout of nobody: drop it */
            return;
        }

        if (w->ncancels) {
            ngx_memcpy(cancels, w->cancels,
                       w->ncancels * sizeof(ngx_http_glm_cancel_t));
        }

        ngx_free(w->cancels);
        w->cancels = cancels;
        w->cancels_cap = n;
    }

    w->cancels[w->ncancels].slot = slot;
    w->cancels[w->ncancels].gen = gen;
    w->ncancels++;

    if (ngx_http_glm_flush_cancels(w) != NGX_OK && !w->retry.timer_set) {
        ngx_add_timer(&w->retry, NGX_HTTP_GLM_RETRY_MSEC);
    }
}


/* NGX_OK when no CANCEL is left waiting for room */
static ngx_int_t
ngx_http_glm_flush_cancels(ngx_http_glm_worker_t *w)
{
    int         bell;
    ngx_uint_t  i;

    if (w->ncancels == 0) {
        return NGX_OK;
    }

    bell = 0;

    for (i = 0; i < w->ncancels; i++) {
        if (glm_ring_put(&w->submit, GLM_REC_CANCEL, 0, w->cancels[i].slot,
                         w->cancels[i].gen, NULL, 0, &bell)
            != 0)
        {
            break;
        }
    }

    if (i) {
        ngx_memmove(w->cancels, &w->cancels[i],
                    (w->ncancels - i) * sizeof(ngx_http_glm_cancel_t));
        w->ncancels -= i;
    }

    if (bell) {
        ngx_http_glm_doorbell(w);
    }

    return w->ncancels ? NGX_AGAIN : NGX_OK;
}


/* ---- timeouts ---------------------------------------------------------- */

static void
ngx_http_glm_timeout_handler(ngx_event_t *ev)
{
    ngx_http_glm_ctx_t  *ctx = ev->data;

    ngx_msec_t           stale, waited;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (ctx->done) {
        return;
    }

    if (ctx->waiting) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "glm: no room in the submit ring for %M ms",
                      ctx->conf->submit_timeout);

        ngx_queue_remove(&ctx->wait_link);
        ctx->waiting = 0;

        ngx_http_glm_fail(ctx, 503, NGX_HTTP_SERVICE_UNAVAILABLE,
                          "engine busy", 1);
        return;
    }

    if (ngx_http_glm_quick(ctx->op) && !ctx->head && ctx->live) {
        /* an engine that runs answers these at once: is it stuck? */
        stale = ngx_http_glm_stale(ctx->worker, ctx->live_since);

        if (stale >= ctx->conf->health_timeout) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "glm: the engine has not run for %M ms",
                          stale);

            ngx_http_glm_fail(ctx, 503, NGX_HTTP_SERVICE_UNAVAILABLE,
                              "engine not responding", 1);
            return;
        }

        waited = (ngx_msec_t) ((ngx_http_glm_mono_ns() - ctx->live_since)
                               / 1000000);

        if (waited < ctx->conf->read_timeout) {
            /* it runs, but slowly: look again when it could be stuck */
            ngx_add_timer(&ctx->timeout,
                          ngx_min(ctx->conf->health_timeout - stale + 1,
                                  ctx->conf->read_timeout - waited));
            return;
        }
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, NGX_ETIMEDOUT,
                  "glm: no output from the engine for %M ms",
                  ctx->conf->read_timeout);

    ngx_http_glm_fail(ctx, 504, NGX_HTTP_GATEWAY_TIME_OUT,
                      "The engine did not respond in time", 0);
}
