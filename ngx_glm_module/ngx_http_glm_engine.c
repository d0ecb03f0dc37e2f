
/*
 * ngx_http_glm_module: the connection to the engine.
 *
 * One Unix socket per worker: connect, the hello/SETUP handshake, the
 * segment mapped from the memfd it passes, one-byte doorbells both ways,
 * reconnection after glm_connect_retry, and failing every request in
 * flight when the engine goes.  The output ring is drained here too: its
 * doorbell arrives on this socket, and a record that breaks the protocol
 * is the engine's fault, ending the connection; each record's bytes are
 * appended to its request and sent by ngx_http_glm_output.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "ngx_http_glm_module.h"


#define NGX_HTTP_GLM_HANDSHAKE_MSEC  5000
#define NGX_HTTP_GLM_MIN_RING        1024
#define NGX_HTTP_GLM_NAMES_AREA      4096


static void ngx_http_glm_engine_read(ngx_event_t *rev);
static void ngx_http_glm_engine_write(ngx_event_t *wev);
static void ngx_http_glm_handshake(ngx_http_glm_worker_t *w);
static ngx_int_t ngx_http_glm_attach(ngx_http_glm_worker_t *w);
static void ngx_http_glm_engine_gone(ngx_http_glm_worker_t *w,
    ngx_uint_t level, const char *why);
static void ngx_http_glm_drain(ngx_http_glm_worker_t *w);
static ngx_int_t ngx_http_glm_dispatch(ngx_http_glm_worker_t *w,
    const glm_rec *rec);
static void ngx_http_glm_count_newlines(ngx_http_glm_ctx_t *ctx,
    const u_char *p, size_t n);
static void ngx_http_glm_mark_dirty(ngx_http_glm_ctx_t *ctx);


void
ngx_http_glm_connect(ngx_http_glm_worker_t *w)
{
    ngx_err_t                  err;
    ngx_uint_t                 level;
    ngx_socket_t               s;
    glm_hello                  hello;
    ngx_connection_t          *c;
    struct sockaddr_un         sun;
    ngx_http_glm_main_conf_t  *gmcf;

    gmcf = (ngx_http_glm_main_conf_t *)
               ((u_char *) w - offsetof(ngx_http_glm_main_conf_t, worker));

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_memzero(&sun, sizeof(struct sockaddr_un));
    sun.sun_family = AF_UNIX;
    ngx_memcpy(sun.sun_path, gmcf->engine.data, gmcf->engine.len);

    s = ngx_socket(AF_UNIX, SOCK_STREAM, 0);

    if (s == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_ERR, w->log, ngx_socket_errno,
                      ngx_socket_n " failed");
        goto retry;
    }

    if (ngx_nonblocking(s) == -1) {
        ngx_log_error(NGX_LOG_ERR, w->log, ngx_socket_errno,
                      ngx_nonblocking_n " failed");
        ngx_close_socket(s);
        goto retry;
    }

    if (connect(s, (struct sockaddr *) &sun, sizeof(struct sockaddr_un))
        == -1)
    {
        err = ngx_socket_errno;

        /* the engine is down: say so once, not at every retry */
        level = w->failures++ ? NGX_LOG_INFO : NGX_LOG_ERR;

        ngx_log_error(level, w->log, err,
                      "glm: connect() to engine at unix:%V failed",
                      &gmcf->engine);
        ngx_close_socket(s);
        goto retry;
    }

    hello.magic = GLM_HELLO_MAGIC;
    hello.version = GLM_PROTO_VERSION;
    hello.pid = (uint32_t) ngx_pid;

    if (send(s, &hello, sizeof(glm_hello), MSG_NOSIGNAL)
        != (ssize_t) sizeof(glm_hello))
    {
        ngx_log_error(NGX_LOG_ERR, w->log, ngx_socket_errno,
                      "glm: sending hello to the engine failed");
        ngx_close_socket(s);
        goto retry;
    }

    c = ngx_get_connection(s, w->log);
    if (c == NULL) {
        ngx_close_socket(s);
        goto retry;
    }

    c->data = w;
    c->log = w->log;
    c->recv = ngx_recv;
    c->send = ngx_send;
    c->read->log = w->log;
    c->write->log = w->log;
    c->read->handler = ngx_http_glm_engine_read;
    c->write->handler = ngx_http_glm_engine_write;

    w->conn = c;
    w->state = NGX_HTTP_GLM_HANDSHAKE;
    w->setup_len = 0;
    w->seg_fd = -1;
    w->chan_fd = -1;

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_http_glm_disconnect(w);
        goto retry;
    }

    /* the engine answers at once; one that does not is as good as down */
    ngx_add_timer(&w->reconnect, NGX_HTTP_GLM_HANDSHAKE_MSEC);

    return;

retry:

    ngx_add_timer(&w->reconnect, gmcf->connect_retry);
}


void
ngx_http_glm_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_glm_worker_t  *w = ev->data;

    if (w->state == NGX_HTTP_GLM_HANDSHAKE) {
        ngx_http_glm_engine_gone(w, NGX_LOG_ERR,
                                 "the engine did not answer the handshake");
        return;
    }

    if (w->state == NGX_HTTP_GLM_DOWN) {
        ngx_http_glm_connect(w);
    }
}


static void
ngx_http_glm_engine_read(ngx_event_t *rev)
{
    u_char                  buf[64];
    ssize_t                 n;
    ngx_err_t               err;
    ngx_connection_t       *c;
    ngx_http_glm_worker_t  *w;

    c = rev->data;
    w = c->data;

    if (c->close) {
        /* worker_shutdown_timeout: everything is being closed */
        ngx_http_glm_engine_gone(w, NGX_LOG_INFO, "worker is shutting down");
        return;
    }

    if (w->state == NGX_HTTP_GLM_HANDSHAKE) {
        ngx_http_glm_handshake(w);
        return;
    }

    /* doorbells: their count means nothing, only that they came */

    for ( ;; ) {
        n = recv(c->fd, buf, sizeof(buf), 0);

        if (n > 0) {
            continue;
        }

        if (n == 0) {
            ngx_http_glm_engine_gone(w, NGX_LOG_ERR,
                                     "the engine closed the connection");
            return;
        }

        err = ngx_socket_errno;

        if (err == NGX_EINTR) {
            continue;
        }

        if (err == NGX_EAGAIN) {
            rev->ready = 0;
            break;
        }

        ngx_log_error(NGX_LOG_ERR, w->log, err, "glm: recv() from engine");
        ngx_http_glm_engine_gone(w, NGX_LOG_ERR, "engine connection failed");
        return;
    }

    ngx_http_glm_drain(w);

    if (w->state == NGX_HTTP_GLM_READY
        && ngx_handle_read_event(w->conn->read, 0) != NGX_OK)
    {
        ngx_http_glm_engine_gone(w, NGX_LOG_ERR, "cannot watch the engine");
    }
}


static void
ngx_http_glm_engine_write(ngx_event_t *wev)
{
    /* doorbells are written without waiting; nothing waits here */
}


static void
ngx_http_glm_handshake(ngx_http_glm_worker_t *w)
{
    int              *fds;
    size_t            i, nfds;
    ssize_t           n;
    ngx_err_t         err;
    struct iovec      iov;
    struct msghdr     msg;
    struct cmsghdr   *cmsg;
    union {
        struct cmsghdr  cm;
        u_char          space[CMSG_SPACE(4 * sizeof(int))];
    } cbuf;

    for ( ;; ) {
        iov.iov_base = (u_char *) &w->setup + w->setup_len;
        iov.iov_len = sizeof(glm_setup) - w->setup_len;

        ngx_memzero(&msg, sizeof(struct msghdr));
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = &cbuf;
        msg.msg_controllen = sizeof(cbuf);

        n = recvmsg(w->conn->fd, &msg, MSG_CMSG_CLOEXEC);

        if (n == -1) {
            err = ngx_socket_errno;

            if (err == NGX_EINTR) {
                continue;
            }

            if (err == NGX_EAGAIN) {
                w->conn->read->ready = 0;

                if (ngx_handle_read_event(w->conn->read, 0) != NGX_OK) {
                    ngx_http_glm_engine_gone(w, NGX_LOG_ERR,
                                             "cannot watch the engine");
                }

                return;
            }

            ngx_log_error(NGX_LOG_ERR, w->log, err,
                          "glm: recvmsg() from engine failed");
            ngx_http_glm_engine_gone(w, NGX_LOG_ERR, "handshake failed");
            return;
        }

        if (n == 0) {
            ngx_http_glm_engine_gone(w, NGX_LOG_ERR,
                                     "the engine closed the connection "
                                     "during the handshake");
            return;
        }

        for (cmsg = CMSG_FIRSTHDR(&msg);
             cmsg != NULL;
             cmsg = CMSG_NXTHDR(&msg, cmsg))
        {
            if (cmsg->cmsg_level != SOL_SOCKET
                || cmsg->cmsg_type != SCM_RIGHTS)
            {
                continue;
            }

            fds = (int *) CMSG_DATA(cmsg);
            nfds = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);

            /* the header segment, then our channel's (ring.h) */
            for (i = 0; i < nfds; i++) {
                if (w->seg_fd == -1) {
                    w->seg_fd = fds[i];

                } else if (w->chan_fd == -1) {
                    w->chan_fd = fds[i];

                } else {
                    close(fds[i]);
                }
            }
        }

        if (msg.msg_flags & MSG_CTRUNC) {
            ngx_http_glm_engine_gone(w, NGX_LOG_ERR,
                                     "the engine sent too many descriptors");
            return;
        }

        w->setup_len += n;

        if (w->setup_len == sizeof(glm_setup)) {
            break;
        }
    }

    if (w->reconnect.timer_set) {
        ngx_del_timer(&w->reconnect);
    }

    if (ngx_http_glm_attach(w) != NGX_OK) {
        ngx_http_glm_engine_gone(w, NGX_LOG_ERR, "handshake refused");
        return;
    }

    w->state = NGX_HTTP_GLM_READY;
    w->failures = 0;

    /* arms the doorbell for the first response */
    ngx_http_glm_drain(w);

    if (w->state == NGX_HTTP_GLM_READY
        && ngx_handle_read_event(w->conn->read, 0) != NGX_OK)
    {
        ngx_http_glm_engine_gone(w, NGX_LOG_ERR, "cannot watch the engine");
    }
}


/*
 * maps the two segments of SETUP after checking every size and offset in
 * them: the header read-only (the engine sealed it so), our channel
 * read-write
 */
static ngx_int_t
ngx_http_glm_attach(ngx_http_glm_worker_t *w)
{
    u_char           *seg, *chan;
    uint64_t          size, data;
    ngx_uint_t        level, err_level;
    glm_setup        *s;
    struct stat       st;
    glm_seg_header   *hdr;
    glm_chan_header  *ch;

    s = &w->setup;

    /* an engine that keeps refusing is reported once, not every retry */
    err_level = w->failures ? NGX_LOG_INFO : NGX_LOG_ERR;

    if (s->magic != GLM_SETUP_MAGIC || s->version != GLM_PROTO_VERSION) {
        ngx_log_error(err_level, w->log, 0,
                      "glm: the engine speaks another protocol "
                      "(setup magic %uxL version %uD, want version %uD)",
                      s->magic, s->version, GLM_PROTO_VERSION);
        return NGX_ERROR;
    }

    if (s->status != GLM_SETUP_OK) {
        ngx_log_error(err_level, w->log, 0,
                      "glm: the engine has no free channel%s (status %uD)",
                      s->status == GLM_SETUP_PID_HAS_ONE
                      ? " for this process, which holds one already" : "",
                      s->status);
        return NGX_ERROR;
    }

    if (w->seg_fd == -1 || w->chan_fd == -1) {
        ngx_log_error(err_level, w->log, 0,
                      "glm: the engine sent no segment descriptors");
        return NGX_ERROR;
    }

    /* the header segment */

    if (fstat(w->seg_fd, &st) == -1) {
        ngx_log_error(err_level, w->log, ngx_errno, "glm: fstat() failed");
        return NGX_ERROR;
    }

    size = s->header_size;

    if ((uint64_t) st.st_size != size || size < NGX_HTTP_GLM_NAMES_AREA
        || size > (uint64_t) NGX_MAX_OFF_T_VALUE)
    {
        ngx_log_error(err_level, w->log, 0,
                      "glm: header segment is %O bytes, setup says %uL",
                      st.st_size, size);
        return NGX_ERROR;
    }

    seg = mmap(NULL, (size_t) size, PROT_READ, MAP_SHARED, w->seg_fd, 0);

    if (seg == MAP_FAILED) {
        ngx_log_error(err_level, w->log, ngx_errno,
                      "glm: mmap() of the header segment failed");
        return NGX_ERROR;
    }

    close(w->seg_fd);
    w->seg_fd = -1;
    w->seg = seg;
    w->seg_size = (size_t) size;

    hdr = (glm_seg_header *) seg;

#define ngx_http_glm_bad(what)                                               \
    do {                                                                      \
        ngx_log_error(err_level, w->log, 0, "glm: bad segment: %s", what);  \
        return NGX_ERROR;                                                     \
    } while (0)

    if (hdr->magic != GLM_SEG_MAGIC) {
        ngx_http_glm_bad("magic");
    }

    if (hdr->version != GLM_PROTO_VERSION
        || hdr->header_size != sizeof(glm_seg_header))
    {
        ngx_http_glm_bad("version or header size");
    }

    if (hdr->epoch != s->epoch || hdr->segment_size != size
        || hdr->channel_size != s->channel_size)
    {
        ngx_http_glm_bad("epoch or sizes differ from the setup message");
    }

    if (hdr->n_channels == 0 || s->channel >= hdr->n_channels) {
        ngx_http_glm_bad("channel number");
    }

    if (hdr->submit_size < NGX_HTTP_GLM_MIN_RING
        || (hdr->submit_size & (hdr->submit_size - 1))
        || hdr->output_size < NGX_HTTP_GLM_MIN_RING
        || (hdr->output_size & (hdr->output_size - 1)))
    {
        ngx_http_glm_bad("ring sizes");
    }

    data = (uint64_t) GLM_CHAN_DATA_OFF + hdr->submit_size + hdr->output_size;

    if (hdr->channel_size < data
        || hdr->channel_size > (uint64_t) NGX_MAX_OFF_T_VALUE)
    {
        ngx_http_glm_bad("channel layout");
    }

    if (hdr->names_len > 0
        && (hdr->names_off < sizeof(glm_seg_header)
            || (uint64_t) hdr->names_off + hdr->names_len
               > NGX_HTTP_GLM_NAMES_AREA))
    {
        ngx_http_glm_bad("model names outside the first page");
    }

    /* our channel's segment */

    if (fstat(w->chan_fd, &st) == -1) {
        ngx_log_error(err_level, w->log, ngx_errno, "glm: fstat() failed");
        return NGX_ERROR;
    }

    if ((uint64_t) st.st_size != hdr->channel_size) {
        ngx_http_glm_bad("channel segment size");
    }

    chan = mmap(NULL, (size_t) hdr->channel_size, PROT_READ|PROT_WRITE,
                MAP_SHARED, w->chan_fd, 0);

    if (chan == MAP_FAILED) {
        ngx_log_error(err_level, w->log, ngx_errno,
                      "glm: mmap() of the channel segment failed");
        return NGX_ERROR;
    }

    close(w->chan_fd);
    w->chan_fd = -1;
    w->chan_seg = chan;
    w->chan_seg_size = (size_t) hdr->channel_size;

    ch = (glm_chan_header *) (chan + GLM_CHAN_HEADER_OFF);

    if (ch->gen != s->chan_gen || ch->epoch != hdr->epoch
        || ch->channel != s->channel)
    {
        ngx_http_glm_bad("channel header differs from the setup message");
    }

    glm_ring_attach(&w->submit, chan, 0, hdr->submit_size, hdr->output_size);
    glm_ring_attach(&w->output, chan, 1, hdr->submit_size, hdr->output_size);

    if (w->submit.ctl->size != w->submit.size
        || w->output.ctl->size != w->output.size
        || w->submit.ctl->tail - w->submit.ctl->head > w->submit.size
        || w->output.ctl->tail - w->output.ctl->head > w->output.size)
    {
        ngx_http_glm_bad("rings not reset");
    }

#undef ngx_http_glm_bad

    w->names_len = hdr->names_len;

    if (w->names_len) {
        w->names = ngx_alloc(w->names_len, w->log);
        if (w->names == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(w->names, seg + hdr->names_off, w->names_len);
    }

    /* a new epoch is a restarted engine: worth a notice */
    level = (w->epoch && w->epoch != hdr->epoch) ? NGX_LOG_NOTICE
                                                 : NGX_LOG_INFO;

    ngx_log_error(level, w->log, 0,
                  "glm: attached to engine pid %uD epoch %uL channel %uD, "
                  "rings %uD/%uD bytes",
                  hdr->engine_pid, hdr->epoch, s->channel, hdr->submit_size,
                  hdr->output_size);

    w->epoch = hdr->epoch;
    w->engine_pid = hdr->engine_pid;

    w->hdr = hdr;
    w->chan = ch;

    return NGX_OK;
}


/* closes the connection and forgets the segments; requests are not touched */
void
ngx_http_glm_disconnect(ngx_http_glm_worker_t *w)
{
    if (w->conn) {
        ngx_close_connection(w->conn);
        w->conn = NULL;
    }

    if (w->seg_fd != -1) {
        close(w->seg_fd);
        w->seg_fd = -1;
    }

    if (w->chan_fd != -1) {
        close(w->chan_fd);
        w->chan_fd = -1;
    }

    if (w->seg) {
        munmap(w->seg, w->seg_size);
        w->seg = NULL;
        w->seg_size = 0;
    }

    if (w->chan_seg) {
        munmap(w->chan_seg, w->chan_seg_size);
        w->chan_seg = NULL;
        w->chan_seg_size = 0;
    }

    ngx_free(w->names);
    w->names = NULL;
    w->names_len = 0;

    w->hdr = NULL;
    w->chan = NULL;

    ngx_memzero(&w->submit, sizeof(glm_ring));
    ngx_memzero(&w->output, sizeof(glm_ring));

    w->ncancels = 0;
    w->state = NGX_HTTP_GLM_DOWN;
}


/*
 * The engine died, broke the protocol or refused us: fail every request in
 * flight, drop the segment, try again after glm_connect_retry.
 */
static void
ngx_http_glm_engine_gone(ngx_http_glm_worker_t *w, ngx_uint_t level,
    const char *why)
{
    ngx_uint_t                 i, was_ready;
    ngx_http_glm_ctx_t        *ctx;
    ngx_http_glm_main_conf_t  *gmcf;

    gmcf = (ngx_http_glm_main_conf_t *)
               ((u_char *) w - offsetof(ngx_http_glm_main_conf_t, worker));

    was_ready = (w->state == NGX_HTTP_GLM_READY);

    if (was_ready) {
        ngx_log_error(level, w->log, 0, "glm: engine pid %ui lost: %s",
                      w->engine_pid, why);

    } else {
        if (w->failures++ && level == NGX_LOG_ERR) {
            level = NGX_LOG_INFO;
        }

        ngx_log_error(level, w->log, 0, "glm: %s", why);
    }

    ngx_http_glm_disconnect(w);

    if (w->reconnect.timer_set) {
        ngx_del_timer(&w->reconnect);
    }

    if (w->retry.timer_set) {
        ngx_del_timer(&w->retry);
    }

    if (w->resume.posted) {
        ngx_delete_posted_event(&w->resume);
    }

    for (i = 0; i < w->nslots; i++) {
        ctx = w->slots[i];

        if (ctx == NULL || ctx->done) {
            continue;
        }

        ngx_http_glm_set_live(ctx, 0);

        if (ctx->waiting) {
            ngx_queue_remove(&ctx->wait_link);
            ctx->waiting = 0;
        }

        ctx->partial = 0;           /* that channel is gone with its ring */

        ngx_http_glm_fail(ctx, 500, NGX_HTTP_SERVICE_UNAVAILABLE,
                          "engine process exited", 1);
    }

    if (!ngx_exiting && !ngx_terminate && !ngx_quit) {
        ngx_add_timer(&w->reconnect, gmcf->connect_retry);
    }
}


void
ngx_http_glm_doorbell(ngx_http_glm_worker_t *w)
{
    ssize_t    n;
    ngx_err_t  err;

    n = send(w->conn->fd, "!", 1, MSG_DONTWAIT|MSG_NOSIGNAL);

    if (n == 1) {
        return;
    }

    err = ngx_socket_errno;

    if (err == NGX_EAGAIN || err == NGX_EINTR) {
        /* a doorbell is already pending */
        return;
    }

    /* the read handler sees the EOF and deals with it, outside this call */
    ngx_log_error(NGX_LOG_INFO, w->log, err, "glm: doorbell send() failed");
    ngx_post_event(w->conn->read, &ngx_posted_events);
}


/* ---- health (ring.h's Health) ------------------------------------------ */

uint64_t
ngx_http_glm_mono_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000000 + (uint64_t) ts.tv_nsec;
}


/* ms since the engine last turned its loop or since `since`, the later */
ngx_msec_t
ngx_http_glm_stale(ngx_http_glm_worker_t *w, uint64_t since)
{
    uint64_t  now, last;

    if (w->hdr == NULL) {
        return 0;
    }

    now = ngx_http_glm_mono_ns();
    last = __atomic_load_n(&w->hdr->heartbeat_ns, __ATOMIC_RELAXED);

    if (since > last) {
        last = since;
    }

    return now > last ? (ngx_msec_t) ((now - last) / 1000000) : 0;
}


/*
 * Work waits for the engine on some worker's behalf (its slot in the health
 * zone), and the engine has not turned its loop for `timeout` ms since it
 * could have: an engine that sleeps with nothing to do is not stuck, a
 * doorbell wakes it.  A slot whose worker died busy (and was not respawned
 * into it) is no one's work.
 */
ngx_uint_t
ngx_http_glm_engine_stuck(ngx_http_glm_worker_t *w, ngx_msec_t timeout)
{
    ngx_uint_t  i;
    uint64_t    since, pid;

    if (w->hdr == NULL || w->board == NULL) {
        return 0;
    }

    for (i = 0; i < NGX_MAX_PROCESSES; i++) {
        since = __atomic_load_n(&w->board[i].busy_since_ns, __ATOMIC_RELAXED);

        if (since == 0 || ngx_http_glm_stale(w, since) < timeout) {
            continue;
        }

        pid = __atomic_load_n(&w->board[i].pid, __ATOMIC_RELAXED);

        if (pid && kill((ngx_pid_t) pid, 0) == -1 && ngx_errno == NGX_ESRCH) {
            continue;
        }

        return 1;
    }

    return 0;
}


/* ---- the output ring --------------------------------------------------- */

/*
 * Takes every record the engine has written, then arms the doorbell
 * (ring.h's consumer protocol).  A flood is taken one ring's worth at a time
 * so that the rest of the worker keeps running.
 */
static void
ngx_http_glm_drain(ngx_http_glm_worker_t *w)
{
    int                  bad;
    uint64_t             taken;
    ngx_queue_t         *q;
    const glm_rec       *rec;
    ngx_http_glm_ctx_t  *ctx;

    taken = 0;
    bad = 0;

    for ( ;; ) {
        rec = glm_ring_peek(&w->output, &bad);

        if (bad) {
            ngx_http_glm_engine_gone(w, NGX_LOG_ERR,
                                     "malformed record in the output ring");
            return;
        }

        if (rec == NULL) {
            if (glm_ring_prepare_wait(&w->output)) {
                continue;
            }

            break;
        }

        if (ngx_http_glm_dispatch(w, rec) != NGX_OK) {
            ngx_http_glm_engine_gone(w, NGX_LOG_ERR,
                                     "invalid record in the output ring");
            return;
        }

        taken += glm_rec_total(rec->len);
        glm_ring_release(&w->output, rec);

        if (taken >= w->output.size) {
            ngx_post_event(w->conn->read, &ngx_posted_events);
            break;
        }
    }

    while (!ngx_queue_empty(&w->dirty)) {
        q = ngx_queue_head(&w->dirty);
        ngx_queue_remove(q);

        ctx = ngx_queue_data(q, ngx_http_glm_ctx_t, dirty_link);
        ctx->in_dirty = 0;

        ngx_http_glm_flush(ctx);
    }

    /* cancels sent from the flushes above may wait for room */
    ngx_http_glm_process_queue(w);
}


/* NGX_ERROR: the engine wrote something no engine may write */
static ngx_int_t
ngx_http_glm_dispatch(ngx_http_glm_worker_t *w, const glm_rec *rec)
{
    glm_head             head;
    ngx_http_glm_ctx_t  *ctx;

    switch (rec->type) {

    case GLM_REC_HEAD:
        if (rec->len < sizeof(glm_head)) {
            return NGX_ERROR;
        }
        break;

    case GLM_REC_DATA:
    case GLM_REC_END:
        break;

    default:
        return NGX_ERROR;
    }

    if (rec->slot >= w->nslots) {
        return NGX_OK;
    }

    ctx = w->slots[rec->slot];

    if (ctx == NULL || ctx->gen != rec->gen || !ctx->live || ctx->done) {
        /* output of a request that is gone */
        return NGX_OK;
    }

    ngx_add_timer(&ctx->timeout, ctx->conf->read_timeout);

    switch (rec->type) {

    case GLM_REC_HEAD:
        if (ctx->head) {
            ctx->bad = 1;
            break;
        }

        ngx_memcpy(&head, glm_rec_payload(rec), sizeof(glm_head));

        if (head.status < 100 || head.status > 599
            || (head.content_type != GLM_CT_JSON
                && head.content_type != GLM_CT_SSE
                && head.content_type != GLM_CT_TEXT))
        {
            ctx->bad = 1;
            break;
        }

        ctx->head = 1;
        ctx->status = head.status;
        ctx->content_type = head.content_type;
        ctx->retry_after = head.retry_after;
        ctx->sse_newlines = 2;
        break;

    case GLM_REC_DATA:
        if (!ctx->head) {
            ctx->bad = 1;
            break;
        }

        if (rec->len == 0 || ctx->bad || ctx->overflow
            || ctx->spill_failed)
        {
            break;
        }

        if (ctx->content_type != GLM_CT_SSE) {
            /* a body that waits for END: what does not fit in memory goes
             * to a temporary file, no client is at fault yet */
            if (ngx_http_glm_append_body(ctx, glm_rec_payload(rec), rec->len)
                != NGX_OK)
            {
                ctx->spill_failed = 1;
            }

            break;
        }

        if (ctx->buffered + rec->len > ctx->conf->output_limit) {
            ctx->overflow = 1;
            break;
        }

        if (ngx_http_glm_append(ctx, glm_rec_payload(rec), rec->len)
            != NGX_OK)
        {
            ctx->bad = 1;
        }

        ngx_http_glm_count_newlines(ctx, glm_rec_payload(rec), rec->len);
        break;

    default: /* GLM_REC_END */
        if (!ctx->head) {
            ctx->bad = 1;
        }

        ctx->ended = 1;
        ngx_http_glm_set_live(ctx, 0);
        break;
    }

    ngx_http_glm_mark_dirty(ctx);

    return NGX_OK;
}


/*
 * The newlines that end what a stream has carried so far, up to 2: at 2 the
 * client is between two SSE events, where a keepalive comment may go (an
 * event may span DATA records).
 */
static void
ngx_http_glm_count_newlines(ngx_http_glm_ctx_t *ctx, const u_char *p,
    size_t n)
{
    ngx_uint_t  nl;

    for (nl = 0; nl < 2 && nl < n && p[n - 1 - nl] == '\n'; nl++) {
        /* void */
    }

    if (nl == n) {
        nl += ctx->sse_newlines;
    }

    ctx->sse_newlines = ngx_min(nl, 2);
}


static void
ngx_http_glm_mark_dirty(ngx_http_glm_ctx_t *ctx)
{
    if (!ctx->in_dirty) {
        ctx->in_dirty = 1;
        ngx_queue_insert_tail(&ctx->worker->dirty, &ctx->dirty_link);
    }
}
