
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


#define NGX_HTTP_GLM_RETRY_MSEC      5


static void ngx_http_glm_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_glm_gather_body(ngx_http_request_t *r,
    ngx_http_glm_ctx_t *ctx);

static ngx_int_t ngx_http_glm_slot_alloc(ngx_http_glm_worker_t *w,
    ngx_http_glm_ctx_t *ctx);
static void ngx_http_glm_cleanup(void *data);
static size_t ngx_http_glm_chunk(glm_ring *ring, uint64_t tail, size_t left,
    ngx_uint_t first);
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

    ngx_http_set_ctx(r, ctx, ngx_http_glm_module);

    rc = ngx_http_read_client_request_body(r, ngx_http_glm_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_glm_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                rc;
    glm_http_check           ck;
    ngx_http_glm_ctx_t      *ctx;
    ngx_http_glm_worker_t   *w;

    ctx = ngx_http_get_module_ctx(r, ngx_http_glm_module);
    w = ctx->worker;

    if (ctx->op == GLM_OP_MODELS || ctx->op == GLM_OP_METRICS
        || ctx->op == GLM_OP_VERSION)
    {
        /* a body sent with GET is read and ignored */
        ctx->body_len = 0;

    } else {
        if (ngx_http_glm_gather_body(r, ctx) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        if (glm_http_check_body(&ck, ctx->op, (char *) ctx->body,
                                ctx->body_len)
            != 0)
        {
            rc = ngx_http_glm_send_error(r, ck.status, ck.message, ck.param,
                                         0, NULL);
            ngx_http_finalize_request(r, rc);
            return;
        }

        if (w->state == NGX_HTTP_GLM_READY && ck.has_model
            && (ck.model_truncated
                || !glm_http_model_served(w->names, w->names_len, ck.model,
                                          ck.model_len)))
        {
            glm_http_unknown_model(&ck);
            rc = ngx_http_glm_send_error(r, ck.status, ck.message, ck.param,
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
    }

    rc = ngx_http_glm_admit(ctx);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
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
        || ngx_http_glm_submit_bound(&w->submit, ctx->body_len)
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
 * Body bytes the next record carries when written at `tail`.  A record that
 * would straddle the end of the buffer is cut to end there instead (when
 * that leaves room for any body), so that no ring space goes to padding and
 * a body can take nearly the whole ring.
 */
static size_t
ngx_http_glm_chunk(glm_ring *ring, uint64_t tail, size_t left,
    ngx_uint_t first)
{
    size_t  lead, chunk, to_end;

    lead = first ? sizeof(glm_submit) : 0;
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


/* ring bytes a body may need, wherever the ring's tail stands */
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
 * Writes the whole body as SUBMIT + SUBMIT_MORE records, or nothing:
 * NGX_AGAIN when the ring lacks room for all of it now.
 */
static ngx_int_t
ngx_http_glm_submit(ngx_http_glm_ctx_t *ctx)
{
    int                     bell;
    u_char                 *p, *body;
    size_t                  left, chunk, lead;
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
    left = ctx->body_len;
    first = 1;

    do {
        lead = first ? sizeof(glm_submit) : 0;
        chunk = ngx_http_glm_chunk(ring, tail, left, first);
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
    body = ctx->body;
    left = ctx->body_len;
    first = 1;

    sub.op = ctx->op;
    sub.body_len = (uint32_t) ctx->body_len;

    do {
        lead = first ? sizeof(glm_submit) : 0;
        chunk = ngx_http_glm_chunk(ring, ring->ctl->tail, left, first);
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
        }

        if (chunk) {
            ngx_memcpy(p, body, chunk);
        }

        body += chunk;
        left -= chunk;
        flags = left ? 0 : GLM_SUBMIT_LAST;
        first = 0;

        bell |= glm_ring_commit(ring, type, flags, ctx->slot, ctx->gen,
                                payload);

    } while (left);

    if (bell) {
        ngx_http_glm_doorbell(w);
    }

    return NGX_OK;
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
