
/*
 * ngx_http_glm_module: http(s) media URLs of a chat body (glm_media_fetch).
 *
 * One in-memory subrequest per URL to the operator's internal location,
 * which proxies to $glm_media_url; the subrequests carry none of the
 * client's headers and no body.  Once all are back the body is rewritten
 * with each URL replaced by a data: URL of its bytes (glm_media_urls.c)
 * and admitted as any other (ngx_http_glm_request.c).  A body filter,
 * installed only when some location fetches media, counts what each fetch
 * receives so that the client is told which URL failed and why.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "glm_http_check.h"
#include "glm_media_urls.h"
#include "ngx_http_glm_module.h"


/* one media URL being fetched: the data of its post_subrequest */
struct ngx_http_glm_media_s {
    ngx_http_glm_ctx_t          *ctx;
    glm_media_fetch             *fetch;
    ngx_http_post_subrequest_t   ps;

    ngx_int_t                    rc;            /* the subrequest's */
    ngx_uint_t                   status;
    ngx_str_t                    content_type;
    ngx_buf_t                   *body;          /* NULL: no bytes came */
    off_t                        received;
    size_t                       limit;         /* its location's
                                                   subrequest_output_
                                                   buffer_size */
    unsigned                     done:1;
    unsigned                     complete:1;    /* the end of the body */
    unsigned                     too_big:1;
    unsigned                     error_set:1;   /* c->error is ours */
};


static void ngx_http_glm_media_cleanup(void *data);
static ngx_int_t ngx_http_glm_media_scan_error(ngx_http_request_t *r,
    glm_media_scan *s);
static ngx_int_t ngx_http_glm_media_isolate(ngx_http_request_t *sr);
static ngx_http_glm_media_t *ngx_http_glm_media_of(ngx_http_request_t *r);
static ngx_int_t ngx_http_glm_media_done(ngx_http_request_t *sr, void *data,
    ngx_int_t rc);
static void ngx_http_glm_media_wait(ngx_http_request_t *r);
static ngx_int_t ngx_http_glm_media_finish(ngx_http_request_t *r,
    ngx_http_glm_ctx_t *ctx);
static u_char *ngx_http_glm_media_failure(ngx_http_request_t *r,
    ngx_http_glm_media_t *m);
static ngx_int_t ngx_http_glm_media_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_http_output_body_filter_pt  ngx_http_next_body_filter;


/* ctx->media, empty, released with the request */
ngx_int_t
ngx_http_glm_media_scan_alloc(ngx_http_request_t *r, ngx_http_glm_ctx_t *ctx)
{
    glm_media_scan      *s;
    ngx_pool_cleanup_t  *cln;

    s = ngx_pcalloc(r->pool, sizeof(glm_media_scan));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (s == NULL || cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_glm_media_cleanup;
    cln->data = s;
    ctx->media = s;

    return NGX_OK;
}


static ngx_int_t
ngx_http_glm_media_scan_error(ngx_http_request_t *r, glm_media_scan *s)
{
    return ngx_http_glm_send_error(r, s->status, s->message, s->param, 0,
                                   NULL);
}


/*
 * Starts fetching the http(s) media URLs of a chat body.  NGX_DECLINED when
 * there are none (the body goes to the engine as it is), NGX_DONE while
 * subrequests run, else what to finalize the request with.
 */
ngx_int_t
ngx_http_glm_media_start(ngx_http_request_t *r, ngx_http_glm_ctx_t *ctx)
{
    ngx_uint_t                i;
    glm_media_scan           *s;
    ngx_http_request_t       *sr;
    ngx_http_glm_media_t     *m;
    ngx_http_glm_loc_conf_t  *glcf;

    if (!ctx->media_scanned) {
        /* a small body: scanned here, not on a thread */

        if (!glm_media_may_have_urls((char *) ctx->body, ctx->body_len)) {
            return NGX_DECLINED;
        }

        if (ngx_http_glm_media_scan_alloc(r, ctx) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        glm_media_scan_body(ctx->media, (char *) ctx->body, ctx->body_len);
    }

    s = ctx->media;

    if (s == NULL) {
        return NGX_DECLINED;
    }

    if (s->status != 0) {
        return ngx_http_glm_media_scan_error(r, s);
    }

    if (s->nrefs == 0) {
        return NGX_DECLINED;
    }

    glcf = ctx->conf;

    if (glcf->media_fetch.len == 0) {
        return ngx_http_glm_send_error(r, NGX_HTTP_BAD_REQUEST,
                                       "http(s) media URLs are not enabled on "
                                       "this server: configure "
                                       "glm_media_fetch (or send the media "
                                       "as a data: URL)", "messages", 0,
                                       NULL);
    }

    ctx->fetches = ngx_pcalloc(r->pool,
                               s->nfetches * sizeof(ngx_http_glm_media_t));
    if (ctx->fetches == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < s->nfetches; i++) {
        m = &ctx->fetches[i];
        m->ctx = ctx;
        m->fetch = &s->fetches[i];
        m->ps.handler = ngx_http_glm_media_done;
        m->ps.data = m;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "glm media fetch \"%s\"", m->fetch->fetch_url);

        /* waited: one finishing before its turn is finalized at once */
        if (ngx_http_subrequest(r, &glcf->media_fetch, NULL, &sr, &m->ps,
                                NGX_HTTP_SUBREQUEST_IN_MEMORY
                                |NGX_HTTP_SUBREQUEST_WAITED)
            != NGX_OK
            || ngx_http_glm_media_isolate(sr) != NGX_OK)
        {
            /* the ones already posted end with the request */
            return NGX_ERROR;
        }

        ctx->media_pending++;
    }

    r->write_event_handler = ngx_http_glm_media_wait;

    /* a client gone while fetches run ends them (when it is the active
     * request; an active fetch's upstream notices on its own) */
    r->read_event_handler = ngx_http_test_reading;

    return NGX_DONE;
}


static void
ngx_http_glm_media_cleanup(void *data)
{
    glm_media_scan_free(data);
}


/*
 * A subrequest starts with its parent's headers, body and variables: the
 * media's server gets neither headers nor body (no Authorization, Cookie
 * or prompt leaves nginx, and the parent's body buffers are never touched
 * by the proxy), and each fetch gets variables of its own, so that a map
 * of $glm_media_url (an allowlist) is evaluated for each URL rather than
 * once for the first and cached for all.
 */
static ngx_int_t
ngx_http_glm_media_isolate(ngx_http_request_t *sr)
{
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_get_module_main_conf(sr, ngx_http_core_module);

    sr->variables = ngx_pcalloc(sr->pool, cmcf->variables.nelts
                                          * sizeof(ngx_http_variable_value_t));
    if (sr->variables == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(&sr->headers_in, sizeof(ngx_http_headers_in_t));

    if (ngx_list_init(&sr->headers_in.headers, sr->pool, 2,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    sr->headers_in.content_length_n = -1;
    sr->headers_in.keep_alive_n = -1;
    sr->request_body = NULL;

    return NGX_OK;
}


/* the fetch a request is, or NULL when it is not one of ours */
static ngx_http_glm_media_t *
ngx_http_glm_media_of(ngx_http_request_t *r)
{
    if (r == r->main || r->post_subrequest == NULL
        || r->post_subrequest->handler != ngx_http_glm_media_done)
    {
        return NULL;
    }

    return r->post_subrequest->data;
}


/*
 * A fetch ended (called again, rc 0, when a fetch that ended before its
 * turn is finalized).  The status is recorded and replaced by NGX_OK: an
 * error here must not terminate the client's request, nor an error page
 * be made for a response nobody sees.
 */
static ngx_int_t
ngx_http_glm_media_done(ngx_http_request_t *sr, void *data, ngx_int_t rc)
{
    ngx_http_glm_media_t *m = data;

    if (m->error_set) {
        /* see ngx_http_glm_media_body_filter(): the client is fine */
        sr->connection->error = 0;
        m->error_set = 0;
    }

    if (m->done) {
        return NGX_OK;
    }

    m->done = 1;
    m->rc = rc;
    m->status = sr->headers_out.status;
    m->content_type = sr->headers_out.content_type;
    m->body = sr->out ? sr->out->buf : NULL;
    m->ctx->media_pending--;

    ngx_log_debug5(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "glm media fetched \"%s\": rc:%i status:%ui size:%O "
                   "complete:%ui", m->fetch->fetch_url, rc, m->status,
                   m->received, (ngx_uint_t) m->complete);

    return sr->connection->error ? NGX_ERROR : NGX_OK;
}


/* the chat request's write_event_handler while its fetches run */
static void
ngx_http_glm_media_wait(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_connection_t              *c;
    ngx_http_glm_ctx_t            *ctx;
    ngx_http_postponed_request_t  *pr;

    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_glm_module);

    if (ctx->media_pending) {
        return;
    }

    /*
     * Fetches that ended while another one was the active request wait in
     * r->postponed to be finalized (logged, their reference released) when
     * their turn comes: give each its turn, as the postpone filter would;
     * each wakes this handler again once done.
     */
    while (r->postponed) {
        if (c->data != r) {
            return;
        }

        pr = r->postponed;
        r->postponed = pr->next;

        if (pr->request) {
            c->data = pr->request;
            (void) ngx_http_post_request(pr->request, NULL);
            return;
        }
    }

    r->write_event_handler = ngx_http_request_empty_handler;

    rc = ngx_http_glm_media_finish(r, ctx);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


/* every fetch is back: the engine gets the body with the bytes inlined */
static ngx_int_t
ngx_http_glm_media_finish(ngx_http_request_t *r, ngx_http_glm_ctx_t *ctx)
{
    u_char                 *p, *msg;
    size_t                  len;
    ngx_uint_t              i;
    glm_media_scan         *s;
    glm_media_bytes        *got;
    ngx_http_glm_media_t   *m;
    ngx_http_glm_worker_t  *w;

    s = ctx->media;
    w = ctx->worker;

    /* the first URL that failed, in body order, is the one answered */
    for (i = 0; i < s->nfetches; i++) {
        msg = ngx_http_glm_media_failure(r, &ctx->fetches[i]);

        if (msg == NULL) {
            continue;
        }

        if (msg == (u_char *) -1) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0, "glm: %s", msg);

        return ngx_http_glm_send_error(r, NGX_HTTP_BAD_REQUEST, (char *) msg,
                                       "messages", 0, NULL);
    }

    got = ngx_palloc(r->pool, s->nfetches * sizeof(glm_media_bytes));
    if (got == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < s->nfetches; i++) {
        m = &ctx->fetches[i];

        p = ngx_pnalloc(r->pool, GLM_MEDIA_TYPE_MAX + 1);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        got[i].type = (char *) p;
        got[i].type_len = glm_media_data_type((char *) m->content_type.data,
                                              m->content_type.len, (char *) p);
        got[i].data = m->body ? m->body->pos : (u_char *) "";
        got[i].len = m->body ? (size_t) (m->body->last - m->body->pos) : 0;
    }

    len = glm_media_rewrite_len(s, ctx->body_len, got);

    /* refused before the allocation: 16 URLs of 32m each are 700m here */
    if (len == SIZE_MAX || len > UINT32_MAX
        || (w->state == NGX_HTTP_GLM_READY
            && ngx_http_glm_submit_bound(&w->submit, len + ctx->request_id.len)
               > w->submit.size))
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "glm: request body of %uz bytes with its media "
                      "inlined does not fit the engine's submit ring of "
                      "%uL bytes", len, w->submit.size);

        return ngx_http_glm_send_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                       "The request body with its fetched "
                                       "media is larger than the engine "
                                       "accepts", "messages", 0, NULL);
    }

    p = ngx_pnalloc(r->pool, len ? len : 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    glm_media_rewrite(s, (char *) ctx->body, ctx->body_len, got, (char *) p);

    ctx->body = p;
    ctx->body_len = len;

    /* the request may generate for minutes: keep only the new body */
    for (i = 0; i < s->nfetches; i++) {
        m = &ctx->fetches[i];

        if (m->body && m->body->start) {
            (void) ngx_pfree(r->pool, m->body->start);
            m->body = NULL;
        }
    }

    return ngx_http_glm_admit(ctx);
}


/*
 * Why a fetch cannot be used, as the client's 400 says it: NULL when it
 * can, (u_char *) -1 when out of memory.
 */
static u_char *
ngx_http_glm_media_failure(ngx_http_request_t *r, ngx_http_glm_media_t *m)
{
    u_char      *msg, *last;
    char         url[GLM_MEDIA_URL_SHOWN + 4];
    size_t       size;

    if (!m->too_big && m->rc == NGX_OK && m->status == NGX_HTTP_OK
        && m->complete)
    {
        return NULL;
    }

    glm_media_url_shown(m->fetch->url, m->fetch->url_len, url);

    size = sizeof("fetching  failed: ") + ngx_strlen(url) + 160;

    msg = ngx_pnalloc(r->pool, size);
    if (msg == NULL) {
        return (u_char *) -1;
    }

    /* nginx's own statuses first: they say why there is no response */
    if (m->rc == NGX_HTTP_GATEWAY_TIME_OUT) {
        last = ngx_snprintf(msg, size - 1, "fetching %s failed: timed out",
                            url);

    } else if (m->rc == NGX_HTTP_BAD_GATEWAY) {
        last = ngx_snprintf(msg, size - 1, "fetching %s failed: no response "
                            "from its server", url);

    } else if (m->rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        last = ngx_snprintf(msg, size - 1, "fetching %s failed: %i %s", url,
                            m->rc, glm_http_error_reason((unsigned) m->rc));

    } else if (m->status != NGX_HTTP_OK && m->status != 0) {
        last = ngx_snprintf(msg, size - 1, "fetching %s failed: upstream "
                            "returned %ui", url, m->status);

    } else if (m->too_big) {
        last = ngx_snprintf(msg, size - 1, "fetching %s failed: the response "
                            "is larger than %uz bytes "
                            "(subrequest_output_buffer_size)", url, m->limit);

    } else {
        last = ngx_snprintf(msg, size - 1, "fetching %s failed: the response "
                            "ended before it was complete", url);
    }

    *last = '\0';

    return msg;
}


/*
 * Counts what a fetch receives, before the in-memory buffer does, so that
 *
 *   - a body over subrequest_output_buffer_size is refused naming the
 *     limit.  nginx's own check (the postpone filter's "too big subrequest
 *     response") fails the body with NGX_ERROR, and ngx_http_output_filter()
 *     then marks the connection, the client's, as broken: the client would
 *     lose its connection with no answer.  The same happens here (NGX_ERROR
 *     is what makes the upstream module close the upstream connection at
 *     once rather than read on), but the mark is taken back when the fetch
 *     ends (ngx_http_glm_media_done(), synchronously after this error);
 *
 *   - a body that never reached its end (the upstream failed after the
 *     header: nginx then finalizes the subrequest with 0, as if whole) is
 *     told from a whole one by the last buffer it never saw.
 */
static ngx_int_t
ngx_http_glm_media_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t               *cl;
    ngx_http_glm_media_t      *m;
    ngx_http_core_loc_conf_t  *clcf;

    m = ngx_http_glm_media_of(r);

    if (m == NULL || m->done) {
        return ngx_http_next_body_filter(r, in);
    }

    if (m->too_big) {
        /* a flush after the error */
        m->error_set |= !r->connection->error;
        return NGX_ERROR;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
    m->limit = clcf->subrequest_output_buffer_size;

    for (cl = in; cl; cl = cl->next) {
        m->received += ngx_buf_size(cl->buf);

        if (cl->buf->last_buf || cl->buf->last_in_chain) {
            m->complete = 1;
        }
    }

    if (r->headers_out.content_length_n > (off_t) m->limit
        || m->received > (off_t) m->limit)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "glm: media response over subrequest_output_buffer_"
                      "size %uz: \"%s\"", m->limit, m->fetch->fetch_url);

        m->too_big = 1;
        m->error_set = !r->connection->error;
        return NGX_ERROR;
    }

    return ngx_http_next_body_filter(r, in);
}


ngx_int_t
ngx_http_glm_media_url_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_glm_media_t  *m;

    m = ngx_http_glm_media_of(r);

    if (m == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = (u_char *) m->fetch->fetch_url;
    v->len = m->fetch->fetch_url_len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/* from postconfiguration, when some location has glm_media_fetch */
ngx_int_t
ngx_http_glm_media_init(ngx_conf_t *cf)
{
    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_glm_media_body_filter;

    return NGX_OK;
}
