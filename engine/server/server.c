/*
 * server.c: `glm-engine serve`: the segment, the socket, the channels, and
 * the loop that drives the scheduler.  See ring.h for the protocol and
 * server.h for the shape.
 */
#include "server.h"
#include "speculative.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend_select.h"
#include "text/chat_template.h"

static glm_server *glm_signal_server;

static void
glm_on_signal(int sig)
{
    (void) sig;
    if (glm_signal_server != NULL) {
        glm_signal_server->stop = 1;
    }
}

static uint64_t
glm_wall_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

/* the heartbeat's clock: ring.h's Health wants CLOCK_MONOTONIC */
static uint64_t
glm_mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static uint32_t
glm_pow2_at_least(uint32_t v)
{
    uint32_t p = 4096;

    while (p < v && p < (1u << 30)) {
        p <<= 1;
    }
    return p;
}

/* ---- the segments (ring.h) ----------------------------------------------- */

/* The header segment, shared read-only by every worker. */
static int
glm_segment_create(glm_server *srv, glm_err *err)
{
    glm_seg_header *h;
    size_t off = 128;
    int i;

    srv->chan_size = GLM_CHAN_DATA_OFF + (size_t) srv->o.submit_size + srv->o.output_size;
    srv->seg_size = 4096;
    srv->memfd = memfd_create("glm-engine-header", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (srv->memfd < 0) {
        return glm_errf(err, "memfd_create: %s", strerror(errno));
    }
    if (ftruncate(srv->memfd, (off_t) srv->seg_size) != 0) {
        return glm_errf(err, "sizing the header segment: %s", strerror(errno));
    }
    srv->seg = mmap(NULL, srv->seg_size, PROT_READ | PROT_WRITE, MAP_SHARED, srv->memfd, 0);
    if (srv->seg == MAP_FAILED) {
        srv->seg = NULL;
        return glm_errf(err, "mapping the header segment: %s", strerror(errno));
    }
    /* ours stays writable; nobody may map it writable after this, resize it
     * or change the seals (F_SEAL_FUTURE_WRITE: Linux 5.1) */
    if (fcntl(srv->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE
                                       | F_SEAL_SEAL) != 0)
    {
        return glm_errf(err, "sealing the header segment: %s", strerror(errno));
    }
    h = (glm_seg_header *) srv->seg;
    memset(h, 0, sizeof(*h));
    h->magic = GLM_SEG_MAGIC;
    h->version = GLM_PROTO_VERSION;
    h->header_size = sizeof(*h);
    h->epoch = srv->epoch = glm_wall_ns();
    h->segment_size = srv->seg_size;
    h->channel_size = srv->chan_size;
    h->n_channels = (uint32_t) srv->o.n_channels;
    h->submit_size = srv->o.submit_size;
    h->output_size = srv->o.output_size;
    h->engine_pid = (uint32_t) getpid();
    h->max_model_len = (uint32_t) srv->o.max_model_len;
    h->heartbeat_ns = glm_mono_ns();
    h->names_off = (uint32_t) off;
    for (i = 0; i < srv->o.n_names; i++) {
        size_t n = strlen(srv->o.names[i]) + 1;
        if (off + n > 4096) {
            return glm_errf(err, "served model names do not fit in 4 KiB");
        }
        memcpy(srv->seg + off, srv->o.names[i], n);
        off += n;
    }
    h->names_len = (uint32_t) (off - h->names_off);
    srv->conn_of_channel = calloc((size_t) srv->o.n_channels, sizeof(glm_conn *));
    srv->chan_gen = calloc((size_t) srv->o.n_channels, sizeof(uint32_t));
    if (srv->conn_of_channel == NULL || srv->chan_gen == NULL) {
        return glm_errf(err, "out of memory");
    }
    return 0;
}

/* A fresh channel segment for one assignment: mapped here, its fd returned
 * for SETUP (the caller closes it once sent).  -1 on failure. */
static int
glm_channel_create(glm_server *srv, glm_conn *c)
{
    int fd;
    void *p;

    fd = memfd_create("glm-engine-channel", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        return -1;
    }
    if (ftruncate(fd, (off_t) srv->chan_size) != 0
        || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0
        || (p = mmap(NULL, srv->chan_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0))
           == MAP_FAILED)
    {
        fprintf(stderr, "glm-engine: a channel segment of %zu bytes: %s\n", srv->chan_size,
                strerror(errno));
        close(fd);
        return -1;
    }
    c->base = p;
    return fd;
}

/* ---- the socket ----------------------------------------------------------- */

static int
glm_listen(glm_server *srv, glm_err *err)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd;

    if (strlen(srv->o.socket_path) >= sizeof(sa.sun_path)) {
        return glm_errf(err, "--socket %s: path longer than %zu bytes", srv->o.socket_path,
                        sizeof(sa.sun_path) - 1);
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, srv->o.socket_path);
    if (lstat(srv->o.socket_path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            return glm_errf(err, "--socket %s exists and is not a socket", srv->o.socket_path);
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0) {
            close(fd);
            return glm_errf(err, "another engine is listening on %s", srv->o.socket_path);
        }
        if (fd >= 0) {
            close(fd);
        }
        unlink(srv->o.socket_path);            /* stale: its engine died */
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0 || listen(fd, 128) != 0) {
        return glm_errf(err, "listening on %s: %s", srv->o.socket_path, strerror(errno));
    }
    if (srv->o.socket_group != NULL) {
        struct group *g = getgrnam(srv->o.socket_group);
        if (g == NULL || chown(srv->o.socket_path, (uid_t) -1, g->gr_gid) != 0) {
            close(fd);
            return glm_errf(err, "--socket-group %s: %s", srv->o.socket_group,
                            g == NULL ? "no such group" : strerror(errno));
        }
        srv->socket_gid = g->gr_gid;
    }
    if (chmod(srv->o.socket_path, (mode_t) srv->o.socket_mode) != 0) {
        close(fd);
        return glm_errf(err, "chmod %s: %s", srv->o.socket_path, strerror(errno));
    }
    srv->listen_fd = fd;
    return 0;
}

static void
glm_epoll_add(glm_server *srv, int fd, void *ptr)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = ptr;
    epoll_ctl(srv->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
}

static void
glm_conn_close(glm_server *srv, glm_conn *c)
{
    glm_req *r, **pp;

    /* the worker is gone: every request of its channel goes with it */
    if (c->channel >= 0) {
        for (pp = &srv->reqs; (r = *pp) != NULL; ) {
            if (r->channel == c->channel && r->chan_gen == c->chan_gen) {
                *pp = r->next;
                srv->n_reqs--;
                glm_req_abort(r);
            } else {
                pp = &r->next;
            }
        }
        srv->conn_of_channel[c->channel] = NULL;
        fprintf(stderr, "glm-engine: worker %d left channel %d\n", (int) c->pid, c->channel);
    }
    if (c->base != NULL) {
        /* never handed out again: the next owner gets a fresh one */
        munmap(c->base, srv->chan_size);
    }
    if (c->assembling != NULL) {
        glm_req_free(c->assembling);
    }
    epoll_ctl(srv->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->channel = -1;
    c->assembling = NULL;
    c->next_dead = srv->dead;
    srv->dead = c;
}

static void
glm_conn_bury(glm_server *srv)
{
    glm_conn *c;

    while ((c = srv->dead) != NULL) {
        srv->dead = c->next_dead;
        free(c);
    }
}

/* ring.h's Peers: may this peer have a channel?  NULL: yes; else why not. */
static const char *
glm_peer_refused(glm_server *srv, int fd, const struct ucred *cr)
{
    gid_t groups[256], *gs = groups;
    socklen_t len = sizeof(groups);
    const char *why = "not an allowed peer";
    int i, n;

    if (cr->uid == 0) {
        return NULL;                    /* root could read us from /proc anyway */
    }
    for (i = 0; i < srv->o.n_peer_uids; i++) {
        if (cr->uid == srv->o.peer_uids[i]) {
            return NULL;
        }
    }
    if (srv->o.n_peer_uids == 0 && srv->o.socket_group == NULL) {
        return cr->uid == srv->own_uid ? NULL : "not the engine's uid (see --allowed-peer-uid,"
                                                " --socket-group)";
    }
    if (srv->o.socket_group == NULL) {
        return "uid not in --allowed-peer-uid";
    }
    if (cr->gid == srv->socket_gid) {
        return NULL;
    }
    /* the supplementary groups it had at connect(), as SO_PEERCRED's */
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0) {
        if (errno != ERANGE || (gs = malloc(len)) == NULL
            || getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, gs, &len) != 0)
        {
            why = "its groups are unknown (SO_PEERGROUPS)";
            len = 0;
        }
    }
    n = (int) (len / sizeof(gid_t));
    for (i = 0; i < n; i++) {
        if (gs[i] == srv->socket_gid) {
            why = NULL;
            break;
        }
    }
    if (gs != groups) {
        free(gs);
    }
    return why != NULL && n > 0 ? "neither in --allowed-peer-uid nor in --socket-group" : why;
}

static void
glm_accept(glm_server *srv)
{
    struct ucred cr;
    socklen_t len;
    const char *why;
    glm_conn *c;
    int fd;

    for ( ;; ) {
        fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return;
        }
        len = sizeof(cr);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
            fprintf(stderr, "glm-engine: SO_PEERCRED: %s; peer dropped\n", strerror(errno));
            close(fd);
            continue;
        }
        why = glm_peer_refused(srv, fd, &cr);
        if (why != NULL) {
            fprintf(stderr, "glm-engine: refused peer pid %d uid %u gid %u: %s\n",
                    (int) cr.pid, (unsigned) cr.uid, (unsigned) cr.gid, why);
            close(fd);
            continue;
        }
        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            return;
        }
        c->fd = fd;
        c->channel = -1;
        c->pid = cr.pid;
        c->uid = cr.uid;
        c->gid = cr.gid;
        glm_epoll_add(srv, fd, c);
    }
}

/* SETUP; with the two segments' fds when a channel was assigned */
static int
glm_send_setup(glm_server *srv, glm_conn *c, int channel, int chan_fd, uint32_t status)
{
    glm_setup st;
    struct msghdr msg;
    struct iovec iov;
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(2 * sizeof(int))];
    } u;
    struct cmsghdr *cm;
    int fds[2];

    memset(&st, 0, sizeof(st));
    st.magic = GLM_SETUP_MAGIC;
    st.version = GLM_PROTO_VERSION;
    st.channel = (uint32_t) (channel < 0 ? 0 : channel);
    st.epoch = srv->epoch;
    st.header_size = srv->seg_size;
    st.channel_size = srv->chan_size;
    st.chan_gen = channel < 0 ? 0 : srv->chan_gen[channel];
    st.status = status;
    memset(&msg, 0, sizeof(msg));
    iov.iov_base = &st;
    iov.iov_len = sizeof(st);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (channel >= 0) {
        fds[0] = srv->memfd;
        fds[1] = chan_fd;
        memset(&u, 0, sizeof(u));
        msg.msg_control = u.buf;
        msg.msg_controllen = sizeof(u.buf);
        cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(fds));
        memcpy(CMSG_DATA(cm), fds, sizeof(fds));
    }
    return sendmsg(c->fd, &msg, MSG_NOSIGNAL) == (ssize_t) sizeof(st) ? 0 : -1;
}

/* Has the peer of this connection closed it?  (EOF waits in the socket;
 * doorbells before it do not matter any more.) */
static int
glm_conn_peer_gone(glm_conn *c)
{
    char b[64];
    ssize_t n;

    for ( ;; ) {
        n = recv(c->fd, b, sizeof(b), MSG_DONTWAIT);
        if (n > 0) {
            continue;                   /* doorbells: the rings are the truth */
        }
        return n == 0 || (errno != EAGAIN && errno != EINTR);
    }
}

/* Closes every assigned connection whose peer has gone, before its EOF
 * comes out of epoll (ring.h's Peers: a reload must not run out). */
static void
glm_reclaim_gone(glm_server *srv, pid_t pid)
{
    int i;

    for (i = 0; i < srv->o.n_channels; i++) {
        glm_conn *o = srv->conn_of_channel[i];
        if (o != NULL && (pid == 0 || o->pid == pid) && glm_conn_peer_gone(o)) {
            glm_conn_close(srv, o);
        }
    }
}

/* HELLO in, channel out.  Returns -1 to drop the connection. */
static int
glm_handshake(glm_server *srv, glm_conn *c)
{
    glm_hello h;
    glm_chan_header *ch;
    ssize_t n;
    int i, fd, channel = -1;

    n = read(c->fd, c->hello + c->hello_len, sizeof(c->hello) - c->hello_len);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        return -1;
    }
    if (n < 0) {
        return 0;
    }
    c->hello_len += (size_t) n;
    if (c->hello_len < sizeof(c->hello)) {
        return 0;
    }
    memcpy(&h, c->hello, sizeof(h));
    if (h.magic != GLM_HELLO_MAGIC || h.version != GLM_PROTO_VERSION) {
        fprintf(stderr, "glm-engine: a peer spoke another protocol (version %u); dropped\n",
                h.version);
        return -1;
    }
    /* one channel per process: its old connection must have ended */
    glm_reclaim_gone(srv, c->pid);
    for (i = 0; i < srv->o.n_channels; i++) {
        if (srv->conn_of_channel[i] != NULL && srv->conn_of_channel[i]->pid == c->pid) {
            fprintf(stderr, "glm-engine: pid %d holds channel %d already; its second"
                    " connection refused\n", (int) c->pid, i);
            glm_send_setup(srv, c, -1, -1, GLM_SETUP_PID_HAS_ONE);
            return -1;
        }
    }
    for (i = 0; i < srv->o.n_channels && channel < 0; i++) {
        if (srv->conn_of_channel[i] == NULL) {
            channel = i;
        }
    }
    if (channel < 0) {
        glm_reclaim_gone(srv, 0);
        for (i = 0; i < srv->o.n_channels && channel < 0; i++) {
            if (srv->conn_of_channel[i] == NULL) {
                channel = i;
            }
        }
    }
    if (channel < 0) {
        fprintf(stderr, "glm-engine: all %d channels taken; worker %d refused"
                " (raise --max-channels)\n", srv->o.n_channels, (int) c->pid);
        glm_send_setup(srv, c, -1, -1, GLM_SETUP_NO_CHANNEL);
        return -1;
    }
    fd = glm_channel_create(srv, c);
    if (fd < 0) {
        return -1;
    }
    ch = (glm_chan_header *) c->base;
    srv->chan_gen[channel]++;
    ch->owner_pid = (uint32_t) c->pid;
    ch->gen = srv->chan_gen[channel];
    ch->epoch = srv->epoch;
    ch->channel = (uint32_t) channel;
    glm_ring_attach(&c->submit, c->base, 0, srv->o.submit_size, srv->o.output_size);
    glm_ring_attach(&c->output, c->base, 1, srv->o.submit_size, srv->o.output_size);
    glm_ring_reset(&c->submit);
    glm_ring_reset(&c->output);
    if (glm_send_setup(srv, c, channel, fd, GLM_SETUP_OK) != 0) {
        close(fd);
        return -1;
    }
    close(fd);
    c->channel = channel;
    c->chan_gen = srv->chan_gen[channel];
    srv->conn_of_channel[channel] = c;
    fprintf(stderr, "glm-engine: worker %d (uid %u) on channel %d\n", (int) c->pid,
            (unsigned) c->uid, channel);
    return 0;
}

static glm_req *
glm_find_req(glm_server *srv, int channel, uint32_t slot, uint32_t gen)
{
    glm_req *r;

    for (r = srv->reqs; r != NULL; r = r->next) {
        if (r->channel == channel && r->slot == slot && r->gen == gen) {
            return r;
        }
    }
    return NULL;
}

static void
glm_req_unlink(glm_server *srv, glm_req *req)
{
    glm_req **pp;

    for (pp = &srv->reqs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == req) {
            *pp = req->next;
            srv->n_reqs--;
            return;
        }
    }
}

/* ---- intake workers ---------------------------------------------------------- */

/*
 * A submitted request's parse, checks, template and tokens run on an intake
 * thread (glm_req_intake), so that a large or slow body never stalls the
 * loop's decode steps; the loop then only admits it (glm_req_intake_done).
 * While a thread holds a request it sits in srv->intake_reqs, not in
 * srv->reqs: the loop touches none of its fields but the links and
 * `dropped`.  A request cancelled meanwhile (or whose worker left) is freed
 * when it comes back.  Requests are admitted in the order they come back,
 * which across threads need not be the order they came in.
 */
static void *
glm_intake_worker(void *arg)
{
    glm_server *srv = arg;
    glm_tokenizer_ctx *tctx;
    glm_req *req;
    glm_err err;
    uint64_t one = 1;

    if (srv->o.intake_nice > 0) {
        /* below the loop and the model's threads: a flood of large bodies
         * takes what CPU they leave */
        setpriority(PRIO_PROCESS, (id_t) gettid(), srv->o.intake_nice);
    }
    tctx = glm_tokenizer_ctx_new(srv->tok, &err);
    for ( ;; ) {
        pthread_mutex_lock(&srv->intake_mu);
        while (!srv->intake_stop && srv->intake_todo == NULL) {
            pthread_cond_wait(&srv->intake_cv, &srv->intake_mu);
        }
        if (srv->intake_todo == NULL) {
            pthread_mutex_unlock(&srv->intake_mu);
            break;
        }
        req = srv->intake_todo;
        srv->intake_todo = req->intake_next;
        if (srv->intake_todo == NULL) {
            srv->intake_todo_tail = NULL;
        }
        pthread_mutex_unlock(&srv->intake_mu);

        if (tctx == NULL) {
            req->intake = GLM_INTAKE_ANSWERED;
            glm_req_error(req, 500, "InternalServerError", NULL, "intake worker: %s",
                          err.msg);
        } else {
            req->tctx = tctx;
            glm_req_intake(srv, req);
            req->tctx = NULL;
        }

        pthread_mutex_lock(&srv->intake_mu);
        req->intake_next = srv->intake_done;
        srv->intake_done = req;
        pthread_mutex_unlock(&srv->intake_mu);
        if (write(srv->intake_efd, &one, sizeof(one)) < 0) {
            /* the counter only overflows after 2^64 - 1 requests */
        }
    }
    glm_tokenizer_ctx_free(tctx);
    return NULL;
}

static void
glm_req_link(glm_server *srv, glm_req *req)
{
    req->next = srv->reqs;
    srv->reqs = req;
    srv->n_reqs++;
}

/* A complete request: answered on the loop when it is light (or there are
 * no intake threads), otherwise queued for an intake thread. */
static void
glm_intake_submit(glm_server *srv, glm_req *req)
{
    if (srv->n_intake_tids == 0 || glm_req_on_loop(req)) {
        glm_req_link(srv, req);
        glm_req_handle(srv, req);
        return;
    }
    req->next = srv->intake_reqs;
    srv->intake_reqs = req;
    req->intake_next = NULL;
    pthread_mutex_lock(&srv->intake_mu);
    if (srv->intake_todo_tail != NULL) {
        srv->intake_todo_tail->intake_next = req;
    } else {
        srv->intake_todo = req;
    }
    srv->intake_todo_tail = req;
    pthread_cond_signal(&srv->intake_cv);
    pthread_mutex_unlock(&srv->intake_mu);
}

static void
glm_intake_cancel(glm_server *srv, int channel, uint32_t slot, uint32_t gen)
{
    glm_req *r;

    for (r = srv->intake_reqs; r != NULL; r = r->next) {
        if (r->channel == channel && r->slot == slot && r->gen == gen) {
            r->dropped = 1;
        }
    }
}

/* Requests back from the intake threads: into srv->reqs and admitted, or
 * freed when their client or worker left meanwhile. */
static void
glm_intake_collect(glm_server *srv)
{
    glm_req *done, *prev = NULL, *next, **pp;
    uint64_t n;

    if (read(srv->intake_efd, &n, sizeof(n)) < 0) {
        /* EAGAIN: nothing new; the list is the truth anyway */
    }
    pthread_mutex_lock(&srv->intake_mu);
    done = srv->intake_done;
    srv->intake_done = NULL;
    pthread_mutex_unlock(&srv->intake_mu);
    while (done != NULL) {                  /* oldest first */
        next = done->intake_next;
        done->intake_next = prev;
        prev = done;
        done = next;
    }
    for (done = prev; done != NULL; done = next) {
        glm_conn *c = srv->conn_of_channel[done->channel];

        next = done->intake_next;
        for (pp = &srv->intake_reqs; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == done) {
                *pp = done->next;
                break;
            }
        }
        if (done->dropped || c == NULL || c->chan_gen != done->chan_gen) {
            glm_req_abort(done);
            continue;
        }
        glm_req_link(srv, done);
        glm_req_intake_done(srv, done);
    }
}

static int
glm_intake_start(glm_server *srv, glm_err *err)
{
    int i;

    srv->intake_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (srv->intake_efd < 0) {
        return glm_errf(err, "eventfd: %s", strerror(errno));
    }
    pthread_mutex_init(&srv->intake_mu, NULL);
    pthread_cond_init(&srv->intake_cv, NULL);
    if (srv->o.intake_threads <= 0) {
        return 0;
    }
    srv->intake_tids = calloc((size_t) srv->o.intake_threads, sizeof(pthread_t));
    if (srv->intake_tids == NULL) {
        return glm_errf(err, "out of memory");
    }
    for (i = 0; i < srv->o.intake_threads; i++) {
        if (pthread_create(&srv->intake_tids[i], NULL, glm_intake_worker, srv) != 0) {
            return glm_errf(err, "cannot start intake threads: %s", strerror(errno));
        }
        srv->n_intake_tids++;
    }
    return 0;
}

static void
glm_intake_stop(glm_server *srv)
{
    glm_req *r;
    int i;

    if (srv->intake_efd < 0) {
        return;
    }
    pthread_mutex_lock(&srv->intake_mu);
    srv->intake_stop = 1;
    /* queued requests are dropped: the engine is going away */
    while ((r = srv->intake_todo) != NULL) {
        srv->intake_todo = r->intake_next;
        glm_req_free(r);
    }
    srv->intake_todo_tail = NULL;
    pthread_cond_broadcast(&srv->intake_cv);
    pthread_mutex_unlock(&srv->intake_mu);
    for (i = 0; i < srv->n_intake_tids; i++) {
        pthread_join(srv->intake_tids[i], NULL);
    }
    while ((r = srv->intake_done) != NULL) {
        srv->intake_done = r->intake_next;
        glm_req_free(r);
    }
    srv->intake_reqs = NULL;
    free(srv->intake_tids);
    close(srv->intake_efd);
    srv->intake_efd = -1;
}

/* Submit-ring bytes the loop copies out per turn, all channels together:
 * a 14 MB body is taken over several turns, each followed by a decode step,
 * not in one copy that the running streams would wait for. */
#define GLM_DRAIN_TURN_BYTES  (1u << 20)

/* Takes complete records from a worker's submit ring, at most *budget
 * bytes of them (one record at least), and counts them off the budget. */
static int
glm_drain_submits(glm_server *srv, glm_conn *c, size_t *budget)
{
    const glm_rec *rec;
    uint32_t id_len;
    int bad = 0;

    while (*budget > 0 && (rec = glm_ring_peek(&c->submit, &bad)) != NULL) {
        const unsigned char *p = glm_rec_payload(rec);
        glm_req *req;

        *budget -= rec->len < *budget ? rec->len : *budget;

        switch (rec->type) {
        case GLM_REC_SUBMIT:
            if (rec->len < sizeof(glm_submit) || c->assembling != NULL) {
                return -1;
            }
            req = calloc(1, sizeof(*req));
            if (req == NULL) {
                return -1;
            }
            {
                glm_submit sub;
                memcpy(&sub, p, sizeof(sub));
                req->op = sub.op;
                req->body_len = sub.body_len;
                id_len = sub.request_id_len;
            }
            if (id_len > GLM_REQUEST_ID_MAX || rec->len < sizeof(glm_submit) + id_len) {
                free(req);
                return -1;
            }
            if (id_len > 0) {
                req->header_id = strndup((const char *) p + sizeof(glm_submit), id_len);
            }
            if (req->body_len > srv->o.submit_size) {
                /* a body the module would never send: it checks that the
                 * ring can hold it whole */
                free(req);
                return -1;
            }
            glm_str_reserve(&req->body, req->body_len);
            req->srv = srv;
            req->serial = ++srv->next_serial;
            req->channel = c->channel;
            req->chan_gen = c->chan_gen;
            req->slot = rec->slot;
            req->gen = rec->gen;
            req->t_arrival = glm_now_seconds();
            glm_str_add(&req->body, p + sizeof(glm_submit) + id_len,
                        rec->len - sizeof(glm_submit) - id_len);
            c->assembling = req;
            break;
        case GLM_REC_SUBMIT_MORE:
            req = c->assembling;
            if (req == NULL || req->slot != rec->slot || req->gen != rec->gen) {
                return -1;
            }
            glm_str_add(&req->body, p, rec->len);
            break;
        case GLM_REC_CANCEL:
            req = c->assembling;
            if (req != NULL && req->slot == rec->slot && req->gen == rec->gen) {
                /* its client went while the module was still writing the
                 * body: the rest will not come */
                c->assembling = NULL;
                glm_req_free(req);
                glm_ring_release(&c->submit, rec);
                continue;
            }
            req = glm_find_req(srv, c->channel, rec->slot, rec->gen);
            if (req != NULL) {
                glm_req_unlink(srv, req);
                glm_req_abort(req);
            } else {
                glm_intake_cancel(srv, c->channel, rec->slot, rec->gen);
            }
            glm_ring_release(&c->submit, rec);
            continue;
        default:
            return -1;
        }
        if (req->body.len > req->body_len) {
            return -1;
        }
        if (rec->flags & GLM_SUBMIT_LAST) {
            if (req->body.len != req->body_len) {
                return -1;
            }
            c->assembling = NULL;
            glm_ring_release(&c->submit, rec);
            glm_intake_submit(srv, req);
            continue;
        }
        glm_ring_release(&c->submit, rec);
    }
    return bad ? -1 : 0;
}

/* Moves queued output into the ring as far as it fits. */
static void
glm_flush_req(glm_server *srv, glm_req *req)
{
    glm_conn *c = srv->conn_of_channel[req->channel];

    if (c == NULL || c->chan_gen != req->chan_gen) {
        req->pending.len = req->pending_off = 0;
        return;
    }
    while (req->pending_off < req->pending.len) {
        unsigned char *p = (unsigned char *) req->pending.data + req->pending_off;
        uint16_t type;
        uint32_t len, chunk;
        void *dst;

        memcpy(&type, p, 2);
        memcpy(&len, p + 2, 4);
        chunk = len;
        if (chunk > glm_ring_max_payload(&c->output)) {
            chunk = glm_ring_max_payload(&c->output);
        }
        dst = glm_ring_reserve(&c->output, chunk);
        if (dst == NULL) {
            break;              /* full: the worker drains, we come back */
        }
        memcpy(dst, p + 6, chunk);
        c->bell |= glm_ring_commit(&c->output, type, 0, req->slot, req->gen, chunk);
        if (chunk < len) {
            /* the rest becomes a record of its own, its header written over
             * bytes that are already in the ring */
            uint32_t rest = len - chunk;
            unsigned char *q = p + chunk;
            memcpy(q, &type, 2);
            memcpy(q + 2, &rest, 4);
            req->pending_off += chunk;
            continue;
        }
        req->pending_off += 6 + len;
    }
    if (req->pending_off == req->pending.len) {
        req->pending.len = req->pending_off = 0;
    } else if (req->pending_off > 65536) {
        glm_str_consume(&req->pending, req->pending_off);
        req->pending_off = 0;
    }
}

static void
glm_ring_bells(glm_server *srv)
{
    int i;
    char b = 'E';

    for (i = 0; i < srv->o.n_channels; i++) {
        glm_conn *c = srv->conn_of_channel[i];
        if (c != NULL && c->bell) {
            c->bell = 0;
            /* EAGAIN: a doorbell is already pending, which is all we need */
            if (write(c->fd, &b, 1) < 0 && errno != EAGAIN) {
                /* EOF will show up in epoll */
            }
        }
    }
}

/* Output, backpressure and retirement of every live request. */
static void
glm_service_requests(glm_server *srv)
{
    glm_req *r, **pp;
    double now = glm_now_seconds();
    int i;

    for (pp = &srv->reqs; (r = *pp) != NULL; ) {
        glm_flush_req(srv, r);
        if (r->done && r->pending.len == 0) {
            *pp = r->next;
            srv->n_reqs--;
            glm_req_free(r);
            continue;
        }
        /* a slow worker or client: stop computing for it, then give up */
        if (r->pending.len - r->pending_off > srv->o.max_pending_output) {
            if (!r->paused) {
                r->paused = 1;
                r->paused_since = now;
                for (i = 0; r->choices && i < r->n; i++) {
                    if (r->choices[i].seq) {
                        r->choices[i].seq->paused = 1;
                    }
                }
            } else if (now - r->paused_since > srv->o.backpressure_deadline) {
                fprintf(stderr, "glm-engine: request %s aborted: its output was not"
                        " read for %.0f s\n", r->id, srv->o.backpressure_deadline);
                *pp = r->next;
                srv->n_reqs--;
                glm_req_abort(r);
                continue;
            }
        } else if (r->paused) {
            r->paused = 0;
            for (i = 0; r->choices && i < r->n; i++) {
                if (r->choices[i].seq) {
                    r->choices[i].seq->paused = 0;
                }
            }
        }
        pp = &r->next;
    }
}

/* ---- media workers ---------------------------------------------------------- */

static void *
glm_media_worker(void *arg)
{
    glm_server *srv = arg;
    glm_tokenizer_ctx *tctx;
    glm_media_job *job;
    glm_err err;
    uint64_t one = 1;

    tctx = glm_tokenizer_ctx_new(srv->tok, &err);
    for ( ;; ) {
        pthread_mutex_lock(&srv->media_mu);
        while (!srv->media_stop && srv->media_todo == NULL) {
            pthread_cond_wait(&srv->media_cv, &srv->media_mu);
        }
        if (srv->media_todo == NULL) {
            pthread_mutex_unlock(&srv->media_mu);
            break;
        }
        job = srv->media_todo;
        srv->media_todo = job->next;
        if (srv->media_todo == NULL) {
            srv->media_todo_tail = NULL;
        }
        pthread_mutex_unlock(&srv->media_mu);

        if (tctx == NULL) {
            job->rc = -1;
            job->status = 500;
            job->param = NULL;
            glm_errf(&job->err, "media worker: %s", err.msg);
        } else {
            glm_media_job_run(srv, job, tctx);
        }

        pthread_mutex_lock(&srv->media_mu);
        job->next = srv->media_done;
        srv->media_done = job;
        pthread_mutex_unlock(&srv->media_mu);
        if (write(srv->media_efd, &one, sizeof(one)) < 0) {
            /* the counter only overflows after 2^64 - 1 jobs */
        }
    }
    glm_tokenizer_ctx_free(tctx);
    return NULL;
}

/* A finished job goes to its request, if the request is still there (the
 * client may have left meanwhile). */
static void
glm_media_deliver(glm_server *srv, glm_media_job *job)
{
    glm_req *r;

    for (r = srv->reqs; r != NULL; r = r->next) {
        if (r->serial == job->serial && r->media_wait) {
            glm_chat_media_done(srv, r, job);
            break;
        }
    }
    glm_media_job_free(job);
}

void
glm_media_submit(glm_server *srv, glm_media_job *job)
{
    if (srv->n_media_tids == 0) {
        glm_media_job_run(srv, job, srv->tok_ctx);
        glm_media_deliver(srv, job);
        return;
    }
    job->next = NULL;
    pthread_mutex_lock(&srv->media_mu);
    if (srv->media_todo_tail != NULL) {
        srv->media_todo_tail->next = job;
    } else {
        srv->media_todo = job;
    }
    srv->media_todo_tail = job;
    pthread_cond_signal(&srv->media_cv);
    pthread_mutex_unlock(&srv->media_mu);
}

static void
glm_media_collect(glm_server *srv)
{
    glm_media_job *done, *prev = NULL, *next;
    uint64_t n;

    if (read(srv->media_efd, &n, sizeof(n)) < 0) {
        /* EAGAIN: nothing new; the list is the truth anyway */
    }
    pthread_mutex_lock(&srv->media_mu);
    done = srv->media_done;
    srv->media_done = NULL;
    pthread_mutex_unlock(&srv->media_mu);
    while (done != NULL) {                  /* oldest first */
        next = done->next;
        done->next = prev;
        prev = done;
        done = next;
    }
    for (done = prev; done != NULL; done = next) {
        next = done->next;
        glm_media_deliver(srv, done);
    }
}

static int
glm_media_start(glm_server *srv, glm_err *err)
{
    int i;

    srv->media_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (srv->media_efd < 0) {
        return glm_errf(err, "eventfd: %s", strerror(errno));
    }
    pthread_mutex_init(&srv->media_mu, NULL);
    pthread_cond_init(&srv->media_cv, NULL);
    if (srv->o.media_threads <= 0) {
        return 0;
    }
    srv->media_tids = calloc((size_t) srv->o.media_threads, sizeof(pthread_t));
    if (srv->media_tids == NULL) {
        return glm_errf(err, "out of memory");
    }
    for (i = 0; i < srv->o.media_threads; i++) {
        if (pthread_create(&srv->media_tids[i], NULL, glm_media_worker, srv) != 0) {
            return glm_errf(err, "cannot start media worker threads: %s", strerror(errno));
        }
        srv->n_media_tids++;
    }
    return 0;
}

static void
glm_media_stop(glm_server *srv)
{
    glm_media_job *j;
    int i;

    if (srv->media_efd < 0) {
        return;
    }
    pthread_mutex_lock(&srv->media_mu);
    srv->media_stop = 1;
    /* queued jobs are dropped: their requests are going away too */
    while ((j = srv->media_todo) != NULL) {
        srv->media_todo = j->next;
        glm_media_job_free(j);
    }
    srv->media_todo_tail = NULL;
    pthread_cond_broadcast(&srv->media_cv);
    pthread_mutex_unlock(&srv->media_mu);
    for (i = 0; i < srv->n_media_tids; i++) {
        pthread_join(srv->media_tids[i], NULL);
    }
    while ((j = srv->media_done) != NULL) {
        srv->media_done = j->next;
        glm_media_job_free(j);
    }
    free(srv->media_tids);
    close(srv->media_efd);
    srv->media_efd = -1;
}

static void
glm_handle_event(glm_server *srv, struct epoll_event *ev)
{
    glm_conn *c = ev->data.ptr;
    char buf[256];
    ssize_t n;

    if (c == NULL) {
        glm_accept(srv);
        return;
    }
    if ((void *) c == (void *) &srv->media_efd) {
        glm_media_collect(srv);
        return;
    }
    if ((void *) c == (void *) &srv->intake_efd) {
        glm_intake_collect(srv);
        return;
    }
    if (c->fd < 0) {
        return;                         /* closed earlier in this batch */
    }
    if (c->channel < 0) {
        if (glm_handshake(srv, c) != 0) {
            glm_conn_close(srv, c);
        }
        return;
    }
    /* doorbells: their count means nothing, the rings are the truth */
    for ( ;; ) {
        n = read(c->fd, buf, sizeof(buf));
        if (n > 0) {
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            glm_conn_close(srv, c);
        }
        return;
    }
}

static int
glm_poll(glm_server *srv, int timeout_ms)
{
    struct epoll_event evs[64];
    int n, i;

    n = epoll_wait(srv->epoll_fd, evs, 64, timeout_ms);
    for (i = 0; i < n; i++) {
        glm_handle_event(srv, &evs[i]);
    }
    glm_conn_bury(srv);
    return n;
}

static void
glm_drain_all(glm_server *srv)
{
    size_t budget = GLM_DRAIN_TURN_BYTES;
    int i, n = srv->o.n_channels;

    /* the channel first served moves round, so that one worker's large
     * bodies cannot keep the others' waiting */
    srv->drain_first = (srv->drain_first + 1) % (n > 0 ? n : 1);
    for (i = 0; i < n && budget > 0; i++) {
        glm_conn *c = srv->conn_of_channel[(srv->drain_first + i) % n];
        if (c != NULL && glm_drain_submits(srv, c, &budget) != 0) {
            fprintf(stderr, "glm-engine: worker %d wrote a malformed record;"
                    " dropping its connection\n", (int) c->pid);
            glm_conn_close(srv, c);
        }
    }
}

/* Before sleeping: announce it on every submit ring, then re-check them. */
static int
glm_can_sleep(glm_server *srv)
{
    int i, busy = 0;

    for (i = 0; i < srv->o.n_channels; i++) {
        glm_conn *c = srv->conn_of_channel[i];
        if (c != NULL) {
            busy |= glm_ring_prepare_wait(&c->submit);
        }
    }
    return !busy;
}

static int
glm_any_pending(glm_server *srv)
{
    glm_req *r;

    for (r = srv->reqs; r != NULL; r = r->next) {
        if (r->pending.len > r->pending_off) {
            return 1;
        }
    }
    return 0;
}

static void
glm_loop(glm_server *srv)
{
    glm_seg_header *h = (glm_seg_header *) srv->seg;

    while (!srv->stop) {
        /* ring.h's Health: every turn, so before every poll and step */
        __atomic_store_n(&h->heartbeat_ns, glm_mono_ns(), __ATOMIC_RELAXED);
        glm_poll(srv, 0);
        glm_drain_all(srv);
        if (glm_sched_has_work(&srv->sched)) {
            glm_sched_step(&srv->sched);
        }
        glm_service_requests(srv);
        glm_ring_bells(srv);
        if (glm_sched_has_work(&srv->sched)) {
            continue;
        }
        if (glm_can_sleep(srv)) {
            /* pending output: the worker drains on its own, retry shortly;
             * requests held (waiting for media, say): keep the heartbeat
             * fresh; none: a doorbell wakes us */
            glm_poll(srv, glm_any_pending(srv) ? 2
                          : srv->n_reqs > 0 || srv->intake_reqs != NULL
                          ? GLM_HEARTBEAT_MAX_SLEEP_MS : 1000);
        }
    }
}

/* --user: after the socket and the model, before any peer comes (ring.h's
 * Peers: the default peer is the uid we run as from here on). */
static int
glm_drop_privileges(glm_server *srv, glm_err *err)
{
    struct passwd *pw;

    if (srv->o.user == NULL) {
        if (geteuid() == 0) {
            fprintf(stderr, "glm-engine: warning: serving as root; --user NAME drops to an"
                    " unprivileged user once the socket and the model are open\n");
        }
        srv->own_uid = geteuid();
        return 0;
    }
    pw = getpwnam(srv->o.user);
    if (pw == NULL) {
        return glm_errf(err, "--user %s: no such user", srv->o.user);
    }
    if (geteuid() != 0) {
        if (geteuid() != pw->pw_uid) {
            return glm_errf(err, "--user %s: only root can become another user", srv->o.user);
        }
        srv->own_uid = pw->pw_uid;
        return 0;
    }
    /* the socket is the engine's: it may remove it when it stops */
    if (chown(srv->o.socket_path, pw->pw_uid, (gid_t) -1) != 0
        || initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0
        || setuid(pw->pw_uid) != 0)
    {
        return glm_errf(err, "--user %s: %s", srv->o.user, strerror(errno));
    }
    if (setuid(0) == 0 || geteuid() != pw->pw_uid || getegid() != pw->pw_gid) {
        return glm_errf(err, "--user %s: root privileges could not be dropped", srv->o.user);
    }
    srv->own_uid = pw->pw_uid;
    fprintf(stderr, "glm-engine: running as %s (uid %u gid %u)\n", pw->pw_name,
            (unsigned) pw->pw_uid, (unsigned) pw->pw_gid);
    return 0;
}

/* --allowed-peer-uid UID|NAME[,UID|NAME...] */
static int
glm_parse_peer_uids(glm_serve_opts *o, const char *val)
{
    char buf[1024], *tok, *save = NULL, *end;
    struct passwd *pw;
    long v;

    snprintf(buf, sizeof(buf), "%s", val);
    for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        v = strtol(tok, &end, 10);
        if (end == tok || *end != '\0') {
            pw = getpwnam(tok);
            if (pw == NULL) {
                fprintf(stderr, "glm-engine: --allowed-peer-uid %s: no such user\n", tok);
                return -1;
            }
            v = (long) pw->pw_uid;
        }
        if (v < 0 || v > (long) UINT32_MAX - 1 || o->n_peer_uids == GLM_MAX_PEER_UIDS) {
            fprintf(stderr, "glm-engine: --allowed-peer-uid wants at most %d uids or user"
                    " names\n", GLM_MAX_PEER_UIDS);
            return -1;
        }
        o->peer_uids[o->n_peer_uids++] = (uid_t) v;
    }
    return 0;
}

/* ---- command line --------------------------------------------------------- */

static void
glm_serve_usage(FILE *f)
{
    fprintf(f,
        "usage: glm-engine serve --model DIR --socket PATH [options]\n"
        "  --served-model-name NAME...   names clients may use (default: the model dir)\n"
        "  --max-model-len N             context limit (default: the model's)\n"
        "  --max-num-seqs N              sequences per step (default 64)\n"
        "  --max-num-batched-tokens N    tokens per step (default 2048)\n"
        "  --kv-blocks N                 KV cache blocks (CPU backend; default: enough for\n"
        "                                max-num-seqs full contexts, at most 4096)\n"
        "  --gpu-memory-utilization F    CUDA backend: the fraction of the GPU's memory to\n"
        "                                use; the KV cache gets what the weights and a step\n"
        "                                leave (default 0.9; glm-engine plan shows it)\n"
        "  --block-size N                tokens per KV block (default 16)\n"
        "  --kv-cache-dtype auto|bfloat16|fp8  the KV cache's element type; fp8 is\n"
        "                                vLLM's fp8_e4m3 with the checkpoint's per-layer\n"
        "                                scales (auto: fp32 on the CPU backend, the oracle)\n"
        "  --[no-]enable-prefix-caching  reuse the KV blocks of prompt prefixes already\n"
        "                                computed (default: on)\n"
        "  --generation-config auto|vllm defaults from generation_config.json (auto) or none\n"
        "  --chat-template FILE          override the checkpoint's chat template\n"
        "  --trust-request-chat-template render a request's own chat_template (else a\n"
        "                                request that has one is refused, as vLLM)\n"
        "  --speculative-config JSON     '{\"method\": \"mtp\", \"num_speculative_tokens\": 1}':\n"
        "                                the checkpoint's MTP layer drafts a token per step\n"
        "  --default-chat-template-kwargs JSON\n"
        "  --socket-mode OCTAL           socket permissions (default 0660)\n"
        "  --socket-group GROUP          socket group (e.g. www-data for nginx workers);\n"
        "                                peers whose gid or groups include it may connect\n"
        "  --allowed-peer-uid UID|NAME   may connect too (repeatable, or a comma list);\n"
        "                                root always may; with neither option, only the\n"
        "                                engine's own uid may (ring.h: Peers)\n"
        "  --user NAME                   started as root: become NAME (its uid, gid and\n"
        "                                groups) once the socket and the model are open\n"
        "  --max-channels N              nginx worker connections (default 64)\n"
        "  --submit-ring-size SIZE       each worker's request ring (default 64m, rounded\n"
        "                                up to a power of two): a request body travels\n"
        "                                whole, so nginx's client_max_body_size, and a body\n"
        "                                with fetched media inlined as base64, must fit it\n"
        "  --threads N                   CPU backend threads (default: all; shared by\n"
        "                                the ranks)\n"
        "  --tensor-parallel-size N, -tp N  split the model over N ranks, one thread each,\n"
        "                                rank 0 scheduling (default 1; cpu backend)\n"
        "  --enable-expert-parallel      whole routed experts per rank (default: every\n"
        "                                expert split like the MLPs)\n"
        "  --mm-encoder-tp-mode data|weights  accepted as vLLM spells it; the vision\n"
        "                                tower runs on rank 0 either way for now\n"
        "  --backend cpu|cuda            where the model runs (default cpu; cuda: GPU 0)\n"
        "  --allowed-local-media-path DIR  allow file:// images and videos under DIR\n"
        "  --media-threads N             image/video decoding threads (default 2; 0: on\n"
        "                                the engine loop)\n"
        "  --limit-media-bytes N         encoded bytes per image or video (default 64 MiB)\n"
        "  --limit-media-pixels N        pixels per image or video frame (default 64 Mi)\n"
        "  --limit-video-frames N        frames kept per video (default 1200)\n"
        "  --limit-video-seconds N       video duration (default 3600)\n"
        "  --intake-threads N            request parsing, chat template and tokenizer\n"
        "                                threads (default 2; 0: on the engine loop)\n"
        "  --intake-nice N               their nice value, 0-19 (default 0: the\n"
        "                                engine's own priority)\n"
        "  --media-io-kwargs JSON        e.g. '{\"video\": {\"num_frames\": 32}}' (uniform\n"
        "                                sampling; default: the processor's 2 fps)\n");
}

int
glm_cmd_serve(int argc, char **argv)
{
    int media_rc;
    glm_server *srv;
    glm_serve_opts *o;
    glm_err err;
    char path[PATH_MAX], desc[1024];
    int i, rc = 1;
    long v;

    srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        return 1;
    }
    o = &srv->o;
    o->max_num_seqs = 64;
    o->max_num_batched_tokens = 2048;
    o->block_size = 16;
    o->prefix_caching = 1;
    o->n_channels = 64;
    /* the largest request body travels whole through this ring: 64 MiB
     * holds nginx's client_max_body_size 32m of conf.d, or a fetched image
     * of 32m inlined as base64 (4/3 larger) by glm_media_fetch; pages are
     * committed only as bodies pass through */
    o->submit_size = 64u << 20;
    o->output_size = 1u << 20;
    o->socket_mode = 0660;
    o->use_generation_config = 1;
    o->max_pending_output = 4u << 20;
    o->backpressure_deadline = 30.0;
    srv->listen_fd = srv->epoll_fd = srv->memfd = srv->media_efd = srv->intake_efd = -1;
    srv->socket_gid = (gid_t) -1;
    o->media_threads = 2;
    o->intake_threads = 2;
    o->par = (glm_parallel) { 1, 0, 1 };

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        char *end;
        int used;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            glm_serve_usage(stdout);
            free(srv);
            return 0;
        }
        used = glm_parallel_arg(&o->par, argc, argv, &i);
        if (used < 0) {
            free(srv);
            return 2;
        }
        if (used > 0) {
            continue;
        }
        if (strcmp(a, "--enable-prefix-caching") == 0
            || strcmp(a, "--no-enable-prefix-caching") == 0)
        {
            o->prefix_caching = a[2] == 'e';
            continue;
        }
        if (strcmp(a, "--trust-request-chat-template") == 0) {
            o->trust_request_chat_template = 1;
            continue;
        }
        if (val == NULL) {
            glm_serve_usage(stderr);
            return 2;
        }
        i++;
        v = strtol(val, &end, 10);
        if (strcmp(a, "--submit-ring-size") == 0) {
            /* bytes, or with nginx's k/m/g suffixes */
            long long size = v;
            int shift = 0;

            if (end != val && *end != '\0' && end[1] == '\0') {
                shift = (*end | 0x20) == 'k' ? 10 : (*end | 0x20) == 'm' ? 20
                        : (*end | 0x20) == 'g' ? 30 : -1;
                end += shift >= 0;
            }
            /* v is at most 2^30 before the shift, so it cannot overflow */
            size = shift > 0 && v >= 0 && v <= (1L << 30) ? size << shift : size;
            if (*end != '\0' || end == val || size < (1 << 16) || size > (1LL << 30)) {
                fprintf(stderr, "glm-engine: --submit-ring-size wants a size from 64k to 1g"
                        " (bytes, or with a k, m or g suffix)\n");
                return 2;
            }
            o->submit_size = (uint32_t) size;
            continue;
        }
#define GLM_INT_OPT(name, field, lo, hi)                                        \
        if (strcmp(a, name) == 0) {                                             \
            if (*end != '\0' || end == val || v < (lo) || v > (hi)) {           \
                fprintf(stderr, "glm-engine: %s wants an integer in [%ld, %ld]\n", \
                        name, (long) (lo), (long) (hi));                        \
                return 2;                                                       \
            }                                                                   \
            o->field = (int) v;                                                 \
            continue;                                                           \
        }
        GLM_INT_OPT("--max-model-len", max_model_len, 1, INT_MAX)
        GLM_INT_OPT("--max-num-seqs", max_num_seqs, 1, 65536)
        GLM_INT_OPT("--max-num-batched-tokens", max_num_batched_tokens, 1, 1 << 20)
        GLM_INT_OPT("--kv-blocks", kv_blocks, 1, 1 << 24)
        GLM_INT_OPT("--num-gpu-blocks-override", kv_blocks, 1, 1 << 24)
        GLM_INT_OPT("--block-size", block_size, 1, 4096)
        GLM_INT_OPT("--max-channels", n_channels, 1, 1024)
        GLM_INT_OPT("--threads", threads, 0, 1024)
        GLM_INT_OPT("--media-threads", media_threads, 0, 256)
        GLM_INT_OPT("--intake-threads", intake_threads, 0, 256)
        GLM_INT_OPT("--intake-nice", intake_nice, 0, 19)
        GLM_INT_OPT("--limit-media-bytes", limit_media_bytes, 1, INT_MAX)
        GLM_INT_OPT("--limit-media-pixels", limit_media_pixels, 1, INT_MAX)
        GLM_INT_OPT("--limit-video-frames", limit_video_frames, 2, 100000)
        GLM_INT_OPT("--limit-video-seconds", limit_video_seconds, 1, 86400)
#undef GLM_INT_OPT
        if (strcmp(a, "--model") == 0) {
            o->model_dir = val;
        } else if (strcmp(a, "--socket") == 0) {
            o->socket_path = val;
        } else if (strcmp(a, "--served-model-name") == 0) {
            /* vLLM takes several names after one flag */
            i--;
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0
                   && o->n_names < GLM_MAX_NAMES)
            {
                o->names[o->n_names++] = argv[++i];
            }
        } else if (strcmp(a, "--generation-config") == 0) {
            o->use_generation_config = strcmp(val, "vllm") != 0;
        } else if (strcmp(a, "--chat-template") == 0) {
            o->chat_template = val;
        } else if (strcmp(a, "--speculative-config") == 0) {
            o->speculative_config = val;
        } else if (strcmp(a, "--default-chat-template-kwargs") == 0) {
            o->default_template_kwargs = val;
        } else if (strcmp(a, "--socket-mode") == 0) {
            o->socket_mode = (int) strtol(val, &end, 8);
            if (*end != '\0' || o->socket_mode < 0 || o->socket_mode > 0777) {
                fprintf(stderr, "glm-engine: --socket-mode wants an octal mode like 0660\n");
                return 2;
            }
        } else if (strcmp(a, "--socket-group") == 0) {
            o->socket_group = val;
        } else if (strcmp(a, "--allowed-peer-uid") == 0) {
            if (glm_parse_peer_uids(o, val) != 0) {
                return 2;
            }
        } else if (strcmp(a, "--user") == 0) {
            o->user = val;
        } else if (strcmp(a, "--allowed-local-media-path") == 0) {
            o->allowed_local_media_path = val;
        } else if (strcmp(a, "--media-io-kwargs") == 0) {
            o->media_io_kwargs = val;
        } else if (strcmp(a, "--backend") == 0) {
            o->backend = val;
        } else if (strcmp(a, "--kv-cache-dtype") == 0) {
            if (glm_kv_cache_dtype_arg(val, &o->kv_cache_dtype) != 0) {
                return 2;
            }
        } else if (strcmp(a, "--gpu-memory-utilization") == 0) {
            o->gpu_memory_utilization = strtod(val, &end);
            if (*end != '\0' || end == val || !(o->gpu_memory_utilization > 0.0
                                                 && o->gpu_memory_utilization <= 1.0))
            {
                fprintf(stderr, "glm-engine: --gpu-memory-utilization wants a fraction in"
                        " (0, 1]\n");
                return 2;
            }
        } else {
            fprintf(stderr, "glm-engine: unknown option %s\n", a);
            glm_serve_usage(stderr);
            return 2;
        }
    }
    if (o->model_dir == NULL || o->socket_path == NULL) {
        glm_serve_usage(stderr);
        return 2;
    }
    if (o->n_names == 0) {
        o->names[o->n_names++] = o->model_dir;
    }

    if (o->par.tensor_parallel > 1) {
        o->threads = glm_parallel_threads(o->threads, o->par.tensor_parallel);
    }
    srv->be = glm_backend_create_named(o->backend, o->threads, 0, &err);
    srv->m = srv->be ? glm_model_load_parallel(o->model_dir, srv->be, &o->par, o->threads, &err)
                     : NULL;
    if (srv->m == NULL) {
        goto fail;
    }
    /* before the backend binds the weights: the MTP layer's are among them */
    if (o->speculative_config != NULL) {
        int n_spec;
        if (glm_speculative_config_parse(o->speculative_config, &n_spec, &err) < 0
            || glm_model_enable_mtp(srv->m, &err) != 0)
        {
            goto fail;
        }
        fprintf(stderr, "glm-engine: speculative decoding: MTP, %d draft token per step"
                " (layer %d)\n", n_spec, srv->m->cfg.num_layers);
    }
    if (glm_model_set_kv_dtype(srv->m, o->kv_cache_dtype, &err) != 0
        || glm_backend_prepare(srv->be, srv->m->ck, &err) != 0)
    {
        goto fail;
    }
    if (o->max_model_len == 0 || o->max_model_len > srv->m->cfg.max_position_embeddings) {
        if (o->max_model_len > srv->m->cfg.max_position_embeddings) {
            glm_errf(&err, "--max-model-len %d exceeds the model's max_position_embeddings %d",
                     o->max_model_len, srv->m->cfg.max_position_embeddings);
            goto fail;
        }
        o->max_model_len = srv->m->cfg.max_position_embeddings;
    }
    if (glm_serve_plan(srv, &err) != 0) {
        goto fail;
    }
    if (o->kv_blocks == 0) {
        long want = (long) o->max_num_seqs * ((o->max_model_len + o->block_size - 1) / o->block_size);
        o->kv_blocks = (int) (want < 4096 ? want : 4096);
    }
    if ((long) o->kv_blocks * o->block_size < o->max_model_len) {
        /* a single full-length request must fit, or it could never run */
        long need = (o->max_model_len + o->block_size - 1) / o->block_size;
        fprintf(stderr, "glm-engine: note: raising --kv-blocks to %ld so one %d-token"
                " sequence fits\n", need, o->max_model_len);
        o->kv_blocks = (int) need;
    }
    glm_path_join(path, sizeof(path), o->model_dir, "tokenizer.json");
    srv->tok = glm_tokenizer_load(path, &err);
    if (srv->tok == NULL || (srv->tok_ctx = glm_tokenizer_ctx_new(srv->tok, &err)) == NULL) {
        goto fail;
    }
    srv->chat_template = glm_chat_template_load(o->model_dir, o->chat_template, &err);
    if (srv->chat_template == NULL) {
        goto fail;
    }
    if (o->default_template_kwargs != NULL) {
        char ebuf[128];
        srv->default_kwargs = yajl_tree_parse(o->default_template_kwargs, ebuf, sizeof(ebuf));
        if (srv->default_kwargs == NULL || !YAJL_IS_OBJECT(srv->default_kwargs)) {
            glm_errf(&err, "--default-chat-template-kwargs must be a JSON object");
            goto fail;
        }
    }
    srv->eos_primary = glm_tokenizer_token_id(srv->tok, "<|endoftext|>");
    media_rc = glm_media_opts_init(&srv->media, o->model_dir, &err);
    if (media_rc == 0) {
        glm_media_limits *lim = &srv->media.limits;
        lim->max_encoded_bytes = o->limit_media_bytes ? (size_t) o->limit_media_bytes
                                 : lim->max_encoded_bytes;
        lim->max_pixels = o->limit_media_pixels ? o->limit_media_pixels : lim->max_pixels;
        lim->max_frames = o->limit_video_frames ? o->limit_video_frames : lim->max_frames;
        lim->max_duration = o->limit_video_seconds ? o->limit_video_seconds : lim->max_duration;
        srv->media.max_tokens = o->max_model_len;
    }
    if (media_rc != 0
        || (o->allowed_local_media_path != NULL
            && glm_media_opts_allow_root(&srv->media, o->allowed_local_media_path, &err) != 0)
        || (o->media_io_kwargs != NULL
            && glm_media_opts_io_kwargs(&srv->media, o->media_io_kwargs, &err) != 0))
    {
        goto fail;
    }
    if (glm_sched_init(&srv->sched, srv->m, o->kv_blocks, o->block_size, o->max_num_seqs,
                       o->max_num_batched_tokens, &err) != 0)
    {
        goto fail;
    }
    if (o->prefix_caching
        && glm_sched_enable_prefix_caching(&srv->sched, o->model_dir, &err) != 0)
    {
        goto fail;
    }
    glm_kv_pool_describe(&srv->sched.kv, srv->m, desc, sizeof(desc));
    fprintf(stderr, "glm-engine: %s\n", desc);
    srv->sched.on_token = glm_req_on_token;
    srv->sched.on_prompt_logprob = glm_req_on_prompt_logprob;
    srv->sched.mask = glm_req_mask;
    srv->sched.mask_bits = glm_req_mask_bits;
    srv->sched.cb_ctx = srv;
    {
        int32_t eos[GLM_MAX_EOS];
        for (i = 0; i < srv->m->cfg.n_eos; i++) {
            eos[i] = srv->m->cfg.eos_ids[i];
        }
        srv->tg_vocab = glm_tg_vocab_new(srv->tok, srv->m->cfg.vocab_size, eos,
                                         srv->m->cfg.n_eos, &err);
        if (srv->tg_vocab == NULL) {
            fprintf(stderr, "glm-engine: note: %s; tool_choice is not enforced\n", err.msg);
        }
    }
    o->submit_size = glm_pow2_at_least(o->submit_size);
    o->output_size = glm_pow2_at_least(o->output_size);
    if (glm_segment_create(srv, &err) != 0 || glm_listen(srv, &err) != 0
        || glm_drop_privileges(srv, &err) != 0)
    {
        goto fail;
    }
    srv->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    glm_epoll_add(srv, srv->listen_fd, NULL);
    if (glm_media_start(srv, &err) != 0) {
        goto fail;
    }
    glm_epoll_add(srv, srv->media_efd, &srv->media_efd);
    if (glm_intake_start(srv, &err) != 0) {
        goto fail;
    }
    glm_epoll_add(srv, srv->intake_efd, &srv->intake_efd);

    glm_signal_server = srv;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, glm_on_signal);
    signal(SIGTERM, glm_on_signal);
    glm_config_describe(&srv->m->cfg, desc, sizeof(desc));
    fprintf(stderr, "glm-engine: %s\n", desc);
    fprintf(stderr, "glm-engine: serving '%s' on %s (%s backend x %d rank%s%s, max-model-len %d,"
            " %d KV blocks of %d, %d seqs, %d tokens per step, prefix caching %s)\n",
            o->names[0], o->socket_path, srv->be->name, o->par.tensor_parallel,
            o->par.tensor_parallel > 1 ? "s" : "",
            o->par.expert_parallel && o->par.tensor_parallel > 1 ? " expert-parallel" : "",
            o->max_model_len, o->kv_blocks,
            o->block_size, o->max_num_seqs, o->max_num_batched_tokens,
            o->prefix_caching ? "on" : "off");
    glm_loop(srv);
    fprintf(stderr, "glm-engine: shutting down\n");
    rc = 0;
    goto done;

fail:
    fprintf(stderr, "glm-engine: error: %s\n", err.msg);
done:
    if (srv->listen_fd >= 0) {
        close(srv->listen_fd);
        unlink(o->socket_path);
    }
    glm_intake_stop(srv);
    glm_media_stop(srv);
    while (srv->reqs != NULL) {
        glm_req *r = srv->reqs;
        srv->reqs = r->next;
        glm_req_free(r);
    }
    for (i = 0; srv->conn_of_channel && i < o->n_channels; i++) {
        glm_conn *c = srv->conn_of_channel[i];
        if (c != NULL) {
            close(c->fd);
            munmap(c->base, srv->chan_size);
            free(c);
        }
    }
    glm_conn_bury(srv);
    if (srv->sched.m != NULL) {
        glm_sched_free(&srv->sched);
    }
    if (srv->seg != NULL) {
        munmap(srv->seg, srv->seg_size);
    }
    if (srv->memfd >= 0) {
        close(srv->memfd);
    }
    if (srv->epoll_fd >= 0) {
        close(srv->epoll_fd);
    }
    glm_tg_vocab_free(srv->tg_vocab);
    yajl_tree_free(srv->default_kwargs);
    glm_chat_template_free(srv->chat_template);
    glm_tokenizer_ctx_free(srv->tok_ctx);
    glm_tokenizer_free(srv->tok);
    glm_media_opts_free(&srv->media);
    glm_model_free(srv->m);
    if (srv->be != NULL) {
        srv->be->destroy(srv->be);
    }
    free(srv->conn_of_channel);
    free(srv->chan_gen);
    free(srv);
    return rc;
}
