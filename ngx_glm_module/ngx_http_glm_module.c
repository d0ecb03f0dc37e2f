
/*
 * ngx_http_glm_module: the nginx side of ngx_glm.
 *
 * Each worker keeps one Unix-socket connection to the engine process and,
 * through it, one channel of the engine's shared-memory segment (the
 * protocol is engine/ring/ring.h).  A request read by nginx is checked
 * (glm_http_check.c), written into the channel's submit ring as SUBMIT
 * records, and answered from HEAD/DATA/END records the engine writes into
 * the output ring; the socket only carries the handshake, one-byte
 * doorbells and liveness.
 *
 * The worker never waits for a client on the engine's behalf: it drains the
 * output ring into request buffers at once and bounds what each request may
 * hold (glm_output_limit).  Every request known to the engine holds a
 * non-cancelable timer (glm_read_timeout), so a reload lets it finish; the
 * reconnect timer is cancelable.  A request's slot is released by its pool
 * cleanup, exactly once, which is also where a CANCEL is sent if the engine
 * still runs it.
 *
 * http(s) media URLs in a chat body are fetched here, not by the engine
 * (glm_media_fetch): one in-memory subrequest per URL to the operator's
 * internal location, which proxies to $glm_media_url; once all are back,
 * the body goes to the engine with each URL replaced by a data: URL of the
 * bytes (glm_media_urls.c).  The subrequests carry none of the client's
 * headers and no body, so nothing of the client's (Authorization, the
 * prompt) reaches the media's server.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>

#include <sys/un.h>

#include "glm_http_check.h"
#include "ngx_http_glm_module.h"


#define NGX_HTTP_GLM_RETRY_MSEC      5


static ngx_int_t ngx_http_glm_handler(ngx_http_request_t *r);
static void ngx_http_glm_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_glm_gather_body(ngx_http_request_t *r,
    ngx_http_glm_ctx_t *ctx);

static ngx_int_t ngx_http_glm_slot_alloc(ngx_http_glm_worker_t *w,
    ngx_http_glm_ctx_t *ctx);
static void ngx_http_glm_cleanup(void *data);
static size_t ngx_http_glm_chunk(glm_ring *ring, uint64_t tail, size_t left,
    ngx_uint_t first);
static ngx_int_t ngx_http_glm_submit(ngx_http_glm_ctx_t *ctx);
static void ngx_http_glm_retry_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_glm_flush_cancels(ngx_http_glm_worker_t *w);

static void ngx_http_glm_timeout_handler(ngx_event_t *ev);

static void *ngx_http_glm_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_glm_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_glm_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_glm_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_glm_engine(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_glm_pass(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_glm_health(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_glm_media_fetch(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_glm_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_glm_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_glm_init_process(ngx_cycle_t *cycle);
static void ngx_http_glm_exit_process(ngx_cycle_t *cycle);


static ngx_http_glm_pass_t  ngx_http_glm_passes[] = {
    { ngx_string("chat"), GLM_OP_CHAT, NGX_HTTP_POST },
    { ngx_string("tokenize"), GLM_OP_TOKENIZE, NGX_HTTP_POST },
    { ngx_string("detokenize"), GLM_OP_DETOKENIZE, NGX_HTTP_POST },
    { ngx_string("models"), GLM_OP_MODELS, NGX_HTTP_GET },
    { ngx_string("metrics"), GLM_OP_METRICS, NGX_HTTP_GET },
    { ngx_string("version"), GLM_OP_VERSION, NGX_HTTP_GET },
    { ngx_string("error"), NGX_HTTP_GLM_OP_ERROR, 0 },
    { ngx_null_string, 0, 0 }
};


static ngx_command_t  ngx_http_glm_commands[] = {

    { ngx_string("glm_engine"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_glm_engine,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("glm_connect_retry"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_glm_main_conf_t, connect_retry),
      NULL },

    { ngx_string("glm_pass"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_glm_pass,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("glm_health"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_glm_health,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("glm_read_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_glm_loc_conf_t, read_timeout),
      NULL },

    { ngx_string("glm_submit_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_glm_loc_conf_t, submit_timeout),
      NULL },

    { ngx_string("glm_output_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_glm_loc_conf_t, output_limit),
      NULL },

    { ngx_string("glm_media_fetch"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_glm_media_fetch,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_variable_t  ngx_http_glm_variables[] = {

    /* the URL a glm_media_fetch subrequest fetches: proxy_pass $glm_media_url */
    { ngx_string("glm_media_url"), NULL, ngx_http_glm_media_url_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_http_module_t  ngx_http_glm_module_ctx = {
    ngx_http_glm_add_variables,            /* preconfiguration */
    ngx_http_glm_postconfiguration,        /* postconfiguration */

    ngx_http_glm_create_main_conf,         /* create main configuration */
    ngx_http_glm_init_main_conf,           /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_glm_create_loc_conf,          /* create location configuration */
    ngx_http_glm_merge_loc_conf            /* merge location configuration */
};


ngx_module_t  ngx_http_glm_module = {
    NGX_MODULE_V1,
    &ngx_http_glm_module_ctx,              /* module context */
    ngx_http_glm_commands,                 /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_glm_init_process,             /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_glm_exit_process,             /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* ---- requests ---------------------------------------------------------- */

static ngx_int_t
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

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    if (ngx_queue_empty(&w->waiting)) {
        rc = ngx_http_glm_submit(ctx);

        if (rc == NGX_OK) {
            ctx->live = 1;
            ngx_add_timer(&ctx->timeout, ctx->conf->read_timeout);
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


/* the request's pool goes away: the one place a slot is released */
static void
ngx_http_glm_cleanup(void *data)
{
    ngx_http_glm_ctx_t  *ctx = data;

    ngx_http_glm_worker_t  *w;

    w = ctx->worker;

    ctx->done = 1;

    if (ctx->timeout.timer_set) {
        ngx_del_timer(&ctx->timeout);
    }

    if (ctx->waiting) {
        ngx_queue_remove(&ctx->wait_link);
        ctx->waiting = 0;
    }

    if (ctx->in_dirty) {
        ngx_queue_remove(&ctx->dirty_link);
        ctx->in_dirty = 0;
    }

    if (ctx->live) {
        ctx->live = 0;
        ngx_http_glm_cancel(w, ctx->slot, ctx->gen);
    }

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

            ctx->live = 1;
            ngx_add_timer(&ctx->timeout, ctx->conf->read_timeout);
        }
    }

    if ((w->ncancels || !ngx_queue_empty(&w->waiting))
        && !w->retry.timer_set)
    {
        ngx_add_timer(&w->retry, NGX_HTTP_GLM_RETRY_MSEC);
    }
}


static void
ngx_http_glm_retry_handler(ngx_event_t *ev)
{
    ngx_http_glm_process_queue(ev->data);
}


void
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


/* ---- output ------------------------------------------------------------ */

static void
ngx_http_glm_timeout_handler(ngx_event_t *ev)
{
    ngx_http_glm_ctx_t  *ctx = ev->data;

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

    ngx_log_error(NGX_LOG_ERR, r->connection->log, NGX_ETIMEDOUT,
                  "glm: no output from the engine for %M ms",
                  ctx->conf->read_timeout);

    ngx_http_glm_fail(ctx, 504, NGX_HTTP_GATEWAY_TIME_OUT,
                      "The engine did not respond in time", 0);
}


/* ---- configuration ----------------------------------------------------- */

static void *
ngx_http_glm_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_glm_main_conf_t  *gmcf;

    gmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_glm_main_conf_t));
    if (gmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     gmcf->engine = { 0, NULL };
     *     gmcf->used = 0;
     */

    gmcf->connect_retry = NGX_CONF_UNSET_MSEC;

    return gmcf;
}


static char *
ngx_http_glm_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_glm_main_conf_t *gmcf = conf;

    ngx_conf_init_msec_value(gmcf->connect_retry, 1000);

    if (gmcf->connect_retry == 0) {
        gmcf->connect_retry = 1;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_glm_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_glm_loc_conf_t  *glcf;

    glcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_glm_loc_conf_t));
    if (glcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     glcf->media_fetch = { 0, NULL };
     */

    glcf->op = NGX_CONF_UNSET_UINT;
    glcf->read_timeout = NGX_CONF_UNSET_MSEC;
    glcf->submit_timeout = NGX_CONF_UNSET_MSEC;
    glcf->output_limit = NGX_CONF_UNSET_SIZE;

    return glcf;
}


static char *
ngx_http_glm_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_glm_loc_conf_t *prev = parent;
    ngx_http_glm_loc_conf_t *conf = child;

    /* glm_pass is not inherited: it names the handler of its location */
    ngx_conf_init_uint_value(conf->op, GLM_OP_CHAT);

    ngx_conf_merge_msec_value(conf->read_timeout, prev->read_timeout, 600000);
    ngx_conf_merge_msec_value(conf->submit_timeout, prev->submit_timeout,
                              3000);
    ngx_conf_merge_size_value(conf->output_limit, prev->output_limit,
                              8 * 1024 * 1024);

    /* "off" is stored as the empty string, which is also the default */
    ngx_conf_merge_str_value(conf->media_fetch, prev->media_fetch, "");

    if (conf->output_limit < NGX_HTTP_GLM_BUF_SIZE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"glm_output_limit\" must be at least %d",
                           NGX_HTTP_GLM_BUF_SIZE);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_glm_engine(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_glm_main_conf_t *gmcf = conf;

    ngx_str_t          *value;
    struct sockaddr_un  sun;

    if (gmcf->engine.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len <= 5 || ngx_strncmp(value[1].data, "unix:", 5) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"glm_engine\" wants \"unix:PATH\", not \"%V\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    gmcf->engine.data = value[1].data + 5;
    gmcf->engine.len = value[1].len - 5;

    if (gmcf->engine.len >= sizeof(sun.sun_path)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"glm_engine\" socket path is longer than %uz",
                           sizeof(sun.sun_path) - 1);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_glm_pass(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_glm_loc_conf_t *glcf = conf;

    ngx_str_t                 *value;
    ngx_http_glm_pass_t       *pass;
    ngx_http_core_loc_conf_t  *clcf;
    ngx_http_glm_main_conf_t  *gmcf;

    if (glcf->op != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    glcf->op = GLM_OP_CHAT;

    if (cf->args->nelts == 2) {
        for (pass = ngx_http_glm_passes; pass->name.len; pass++) {
            if (pass->name.len == value[1].len
                && ngx_strncmp(pass->name.data, value[1].data, value[1].len)
                   == 0)
            {
                break;
            }
        }

        if (pass->name.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unknown glm_pass \"%V\": chat, tokenize, "
                               "detokenize, models, metrics, version or "
                               "error", &value[1]);
            return NGX_CONF_ERROR;
        }

        glcf->op = pass->op;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_glm_handler;

    gmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_glm_module);
    gmcf->used = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_glm_health(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;
    ngx_http_glm_main_conf_t  *gmcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_glm_health_handler;

    gmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_glm_module);
    gmcf->used = 1;

    return NGX_CONF_OK;
}


/*
 * glm_media_fetch URI | off: the internal location that fetches http(s)
 * media URLs (it proxies to $glm_media_url); off, the default, refuses
 * requests carrying them.
 */
static char *
ngx_http_glm_media_fetch(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_glm_loc_conf_t *glcf = conf;

    ngx_str_t                 *value;
    ngx_http_glm_main_conf_t  *gmcf;

    if (glcf->media_fetch.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        ngx_str_set(&glcf->media_fetch, "");
        return NGX_CONF_OK;
    }

    if (value[1].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"glm_media_fetch\" wants a location's URI "
                           "such as /_glm_media, or off, not \"%V\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    glcf->media_fetch = value[1];

    gmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_glm_module);
    gmcf->media_used = 1;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_glm_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_glm_variables; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_glm_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_glm_main_conf_t  *gmcf;

    gmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_glm_module);

    if (gmcf->used && gmcf->engine.data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "glm_pass and glm_health need \"glm_engine\" "
                           "in the http block");
        return NGX_ERROR;
    }

    /* only configurations that fetch media pay for the filter */
    if (gmcf->media_used) {
        return ngx_http_glm_media_init(cf);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_glm_init_process(ngx_cycle_t *cycle)
{
    ngx_http_glm_worker_t     *w;
    ngx_http_glm_main_conf_t  *gmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    gmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_glm_module);

    if (gmcf == NULL || gmcf->engine.data == NULL) {
        return NGX_OK;
    }

    w = &gmcf->worker;

    ngx_memzero(w, sizeof(ngx_http_glm_worker_t));

    w->log = cycle->log;
    w->seg_fd = -1;
    w->state = NGX_HTTP_GLM_DOWN;

    ngx_queue_init(&w->waiting);
    ngx_queue_init(&w->dirty);

    w->reconnect.handler = ngx_http_glm_reconnect_handler;
    w->reconnect.data = w;
    w->reconnect.log = cycle->log;
    w->reconnect.cancelable = 1;

    /* requests that wait for the ring hold their own non-cancelable timers */
    w->retry.handler = ngx_http_glm_retry_handler;
    w->retry.data = w;
    w->retry.log = cycle->log;
    w->retry.cancelable = 1;

    ngx_http_glm_connect(w);

    return NGX_OK;
}


static void
ngx_http_glm_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_glm_worker_t     *w;
    ngx_http_glm_main_conf_t  *gmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return;
    }

    gmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_glm_module);

    if (gmcf == NULL || gmcf->engine.data == NULL) {
        return;
    }

    w = &gmcf->worker;

    if (w->reconnect.timer_set) {
        ngx_del_timer(&w->reconnect);
    }

    if (w->retry.timer_set) {
        ngx_del_timer(&w->retry);
    }

    ngx_http_glm_disconnect(w);

    ngx_free(w->slots);
    ngx_free(w->free_slots);
    ngx_free(w->cancels);

    w->slots = NULL;
    w->free_slots = NULL;
    w->cancels = NULL;
    w->nslots = 0;
    w->nfree = 0;
}
