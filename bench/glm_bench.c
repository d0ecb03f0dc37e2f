/*
 * glm_bench.c: glm-bench, a load generator for OpenAI-compatible chat
 * servers that measures what `vllm bench serve --backend openai-chat
 * --dataset-name random` measures, with the same definitions (see
 * bench_stats.h), so that ngx_glm and vLLM numbers can be compared directly.
 *
 * One thread, one epoll loop, non-blocking sockets, one connection per
 * request in flight; a connection whose response ended cleanly goes back to
 * an idle pool and carries a later request (aiohttp, vLLM's client, keeps
 * connections alive too).  A request is sent when it is due (all at once at
 * --request-rate inf, Poisson arrivals otherwise) and, with
 * --max-concurrency N, only while fewer than N are in flight; it waits in
 * order otherwise, and its clock starts when it is sent, as in vLLM.
 *
 * Every read() is stamped with CLOCK_MONOTONIC right after it returns; the
 * SSE events it completes carry that time.  Loopback only: the base URL's
 * host must be localhost, 127.0.0.0/8 or ::1.
 *
 * Flow: load the tokenizer and make the prompts; ask /v1/models for the
 * model if --model is absent; send prompt 0 once and wait for it to succeed
 * (vLLM's "initial single prompt test run", which also waits up to
 * --ready-check-timeout-sec for the server to come up); run; print failed
 * requests' errors (first 10), the report and a RESULT line on stdout; write
 * --result-file.  Progress goes to stderr once a second.
 *
 * Exit: 0 all requests succeeded, 3 some failed (the report is still
 * printed), 1 could not run, 2 usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <yajl/yajl_tree.h>

#include "bench_dataset.h"
#include "bench_sse.h"
#include "bench_stats.h"
#include "text/tokenizer.h"
#include "util/strbuf.h"
#include "util/util.h"

#define GLM_BENCH_READ_SIZE     (64 * 1024)
#define GLM_BENCH_SHOW_ERRORS   10

enum { GLM_BENCH_REQ_WAITING, GLM_BENCH_REQ_RUNNING, GLM_BENCH_REQ_FINISHED };
enum { GLM_BENCH_CONN_CONNECTING, GLM_BENCH_CONN_SENDING, GLM_BENCH_CONN_RECEIVING,
       GLM_BENCH_CONN_IDLE };

typedef struct glm_bench glm_bench;
typedef struct glm_bench_req glm_bench_req;
typedef struct glm_bench_conn glm_bench_conn;

struct glm_bench_req {
    glm_bench      *b;
    int             index;
    const char     *wire;            /* the whole HTTP request */
    size_t          wire_len;
    int             prompt_len;
    int             output_len;
    double          due;             /* seconds after the run's start */

    int             state;
    int             success;
    int             retried;         /* re-sent after a stale keep-alive connection */
    int             connect_errno;   /* the connect() failure, if that was it */
    double          start, ttft, last_choice, last_msg, now;
    int             got_first;
    int             done_seen;
    long long       usage_completion, usage_prompt;
    long            progress_tokens; /* credited to the progress counter */
    double         *itl;
    size_t          n_itl, cap_itl;
    glm_str         text;            /* delta.content, for the fallback count */
    char           *error;
    int             output_tokens;

    glm_bench_req  *prev, *next;     /* in flight, by start time */
    glm_bench_conn *conn;
};

struct glm_bench_conn {
    int             fd;
    int             state;
    int             reused;
    size_t          sent;
    size_t          received;        /* response bytes on this request */
    uint32_t        events;          /* the epoll mask registered */
    glm_bench_req  *req;
    glm_bench_http  http;
    glm_bench_conn *next_idle;
};

struct glm_bench {
    /* what to do */
    char            host[256];       /* as given, for messages */
    char            host_header[300];
    char            prefix[512];     /* the base URL's path, no trailing / */
    char            path[1024];      /* prefix + endpoint */
    struct sockaddr_storage addr;
    socklen_t       addrlen;
    double          timeout;
    int             keepalive;
    int             ttft_on_content;
    int             max_concurrency;
    double          progress_interval;

    /* the loop */
    int             epfd;
    glm_bench_conn *idle;
    int             n_idle;
    glm_bench_req  *head, *tail;
    int             in_flight;
    size_t          finished, failed;
    long long       progress_tokens;
    char           *rbuf;
    long            connects;        /* connections opened */
    long            resends;         /* requests re-sent after a stale keep-alive */

    /* progress */
    int             tty;
    int             progress_shown;
    double          next_progress, last_progress_t;
    long long       last_progress_tokens;
};

static volatile sig_atomic_t glm_bench_interrupted;

static void
glm_bench_on_sigint(int sig)
{
    glm_bench_interrupted = 1;
}

static void
glm_bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
glm_bench_die(const char *fmt, ...)
{
    va_list ap;

    fputs("glm-bench: error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* ---------------------------------------------------------------- URL */

/*
 * http://HOST[:PORT][/PREFIX] with HOST localhost, an IPv4 address in
 * 127.0.0.0/8, or [::1]: this workplace allows no traffic elsewhere.
 */
static int
glm_bench_parse_url(glm_bench *b, const char *url, const char *endpoint, char *why,
    size_t whysize)
{
    const char *p, *host, *hend, *path;
    char hostbuf[256], *end;
    long port = 80;
    struct sockaddr_in *sin = (struct sockaddr_in *) &b->addr;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &b->addr;
    size_t hl, pl;
    int v6 = 0;

    if (strncasecmp(url, "http://", 7) != 0) {
        snprintf(why, whysize, "%.200s: only http:// URLs are supported", url);
        return -1;
    }
    host = url + 7;
    if (*host == '[') {
        hend = strchr(host, ']');
        if (hend == NULL) {
            snprintf(why, whysize, "%.200s: unterminated [IPv6] host", url);
            return -1;
        }
        host++;
        p = hend + 1;
        v6 = 1;
    } else {
        hend = host + strcspn(host, ":/?#");
        p = hend;
    }
    hl = (size_t) (hend - host);
    if (hl == 0 || hl >= sizeof(hostbuf)) {
        snprintf(why, whysize, "%.200s: no host", url);
        return -1;
    }
    memcpy(hostbuf, host, hl);
    hostbuf[hl] = '\0';
    if (*p == ':') {
        port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535) {
            snprintf(why, whysize, "%.200s: bad port", url);
            return -1;
        }
        p = end;
    }
    if (*p != '\0' && *p != '/') {
        snprintf(why, whysize, "%.200s: unexpected \"%s\" after the host", url, p);
        return -1;
    }
    path = p;
    pl = strlen(path);
    while (pl && path[pl - 1] == '/') {
        pl--;
    }
    if (pl >= sizeof(b->prefix) || pl + strlen(endpoint) + 1 >= sizeof(b->path)) {
        snprintf(why, whysize, "%.200s: path too long", url);
        return -1;
    }
    snprintf(b->prefix, sizeof(b->prefix), "%.*s", (int) pl, path);
    snprintf(b->path, sizeof(b->path), "%.*s%s%s", (int) pl, path,
             endpoint[0] == '/' ? "" : "/", endpoint);

    memset(&b->addr, 0, sizeof(b->addr));
    if (!v6 && strcasecmp(hostbuf, "localhost") == 0) {
        /* not resolved: /etc/hosts could point it anywhere */
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else if (!v6 && inet_pton(AF_INET, hostbuf, &sin->sin_addr) == 1) {
        if ((ntohl(sin->sin_addr.s_addr) >> 24) != 127) {
            goto refuse;
        }
        sin->sin_family = AF_INET;
    } else if (v6 && inet_pton(AF_INET6, hostbuf, &sin6->sin6_addr) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr)
            && !(IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) && sin6->sin6_addr.s6_addr[12] == 127))
        {
            goto refuse;
        }
        sin6->sin6_family = AF_INET6;
    } else {
        goto refuse;
    }
    if (sin->sin_family == AF_INET) {
        sin->sin_port = htons((uint16_t) port);
        b->addrlen = sizeof(*sin);
    } else {
        sin6->sin6_port = htons((uint16_t) port);
        b->addrlen = sizeof(*sin6);
    }
    snprintf(b->host, sizeof(b->host), "%s", hostbuf);
    snprintf(b->host_header, sizeof(b->host_header), v6 ? "[%s]:%ld" : "%s:%ld",
             hostbuf, port);
    return 0;

refuse:
    snprintf(why, whysize, "refusing to send traffic to \"%s\": glm-bench targets only "
             "loopback (localhost, 127.0.0.0/8, [::1]); this workplace forbids "
             "traffic to any other address", hostbuf);
    return -1;
}

/* ---------------------------------------------------------------- requests */

/* a yajl tree value back to JSON */
static void
glm_bench_json_value(glm_str *s, yajl_val v)
{
    size_t i;

    if (YAJL_IS_STRING(v)) {
        glm_json_strz(s, YAJL_GET_STRING(v));
    } else if (YAJL_IS_NUMBER(v)) {
        glm_str_adds(s, YAJL_GET_NUMBER(v));
    } else if (YAJL_IS_OBJECT(v)) {
        glm_str_adds(s, "{");
        for (i = 0; i < v->u.object.len; i++) {
            glm_str_adds(s, i ? ", " : "");
            glm_json_strz(s, v->u.object.keys[i]);
            glm_str_adds(s, ": ");
            glm_bench_json_value(s, v->u.object.values[i]);
        }
        glm_str_adds(s, "}");
    } else if (YAJL_IS_ARRAY(v)) {
        glm_str_adds(s, "[");
        for (i = 0; i < v->u.array.len; i++) {
            glm_str_adds(s, i ? ", " : "");
            glm_bench_json_value(s, v->u.array.values[i]);
        }
        glm_str_adds(s, "]");
    } else if (YAJL_IS_TRUE(v)) {
        glm_str_adds(s, "true");
    } else if (YAJL_IS_FALSE(v)) {
        glm_str_adds(s, "false");
    } else {
        glm_str_adds(s, "null");
    }
}

/* the request body's fixed members, in vLLM's openai-chat order */
static const char *const glm_bench_body_keys[] = {
    "model", "messages", "max_tokens", "ignore_eos", "stream", "stream_options",
    "temperature"
};
#define GLM_BENCH_NBODY (sizeof(glm_bench_body_keys) / sizeof(glm_bench_body_keys[0]))

typedef struct {
    glm_str   members;                    /* ", \"k\": v" for each extra member */
    int       overridden[GLM_BENCH_NBODY];
} glm_bench_extra;

/* --extra-body: its members replace or join the fixed ones (dict.update) */
static int
glm_bench_extra_parse(glm_bench_extra *x, const char *json, char *why, size_t whysize)
{
    yajl_val root;
    size_t i, k;

    memset(x, 0, sizeof(*x));
    if (json == NULL) {
        return 0;
    }
    root = yajl_tree_parse(json, why, whysize);
    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        if (root != NULL) {
            snprintf(why, whysize, "not a JSON object");
        }
        why[strcspn(why, "\n")] = '\0';
        yajl_tree_free(root);
        return -1;
    }
    for (i = 0; i < root->u.object.len; i++) {
        for (k = 0; k < GLM_BENCH_NBODY; k++) {
            if (strcmp(root->u.object.keys[i], glm_bench_body_keys[k]) == 0) {
                x->overridden[k] = 1;
            }
        }
        glm_str_adds(&x->members, ", ");
        glm_json_strz(&x->members, root->u.object.keys[i]);
        glm_str_adds(&x->members, ": ");
        glm_bench_json_value(&x->members, root->u.object.values[i]);
    }
    yajl_tree_free(root);
    return 0;
}

static void
glm_bench_build_wire(glm_bench *b, glm_str *wire, const char *model,
    const glm_bench_prompt *p, int index, const glm_bench_extra *x, const char *api_key)
{
    glm_str body = { 0 };
    size_t k;
    int n = 0;

    glm_str_adds(&body, "{");
    for (k = 0; k < GLM_BENCH_NBODY; k++) {
        if (x->overridden[k]) {
            continue;
        }
        glm_str_adds(&body, n++ ? ", " : "");
        glm_json_strz(&body, glm_bench_body_keys[k]);
        glm_str_adds(&body, ": ");
        switch (k) {
        case 0:
            glm_json_strz(&body, model);
            break;
        case 1:
            glm_str_adds(&body, "[{\"role\": \"user\", \"content\": ");
            glm_json_str(&body, p->text, p->text_len);
            glm_str_adds(&body, "}]");
            break;
        case 2:
            glm_str_addf(&body, "%d", p->output_len);
            break;
        case 3:
        case 4:
            glm_str_adds(&body, "true");
            break;
        case 5:
            glm_str_adds(&body, "{\"include_usage\": true}");
            break;
        default:
            glm_str_adds(&body, "0.0");
            break;
        }
    }
    if (x->members.len) {
        glm_str_add(&body, n ? x->members.data : x->members.data + 2,
                    n ? x->members.len : x->members.len - 2);
    }
    glm_str_adds(&body, "}");

    wire->len = 0;
    glm_str_addf(wire, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: glm-bench\r\n"
                 "Accept: */*\r\nContent-Type: application/json\r\n", b->path, b->host_header);
    if (api_key != NULL && *api_key) {
        glm_str_addf(wire, "Authorization: Bearer %s\r\n", api_key);
    }
    glm_str_addf(wire, "X-Request-Id: glm-bench-%d\r\nContent-Length: %zu\r\n%s\r\n",
                 index, body.len, b->keepalive ? "" : "Connection: close\r\n");
    glm_str_add(wire, body.data, body.len);
    glm_str_free(&body);
}

/* ---------------------------------------------------------------- the loop */

static double
glm_bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

static void
glm_bench_req_fail(glm_bench_req *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* the first failure reason sticks */
static void
glm_bench_req_fail(glm_bench_req *r, const char *fmt, ...)
{
    va_list ap;
    char buf[512];

    if (r->error != NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    r->error = strdup(buf);
    if (r->error == NULL) {
        r->error = (char *) "out of memory";
    }
}

static void
glm_bench_epoll(glm_bench *b, glm_bench_conn *c, int op, uint32_t events)
{
    struct epoll_event ev;

    ev.events = events;
    ev.data.ptr = c;
    if (epoll_ctl(b->epfd, op, c->fd, &ev) < 0) {
        glm_bench_die("epoll_ctl: %s", strerror(errno));
    }
    c->events = events;
}

static void
glm_bench_conn_close(glm_bench *b, glm_bench_conn *c)
{
    if (c->fd >= 0) {
        close(c->fd);           /* leaves the epoll set with it */
    }
    glm_bench_http_free(&c->http);
    free(c);
}

static void
glm_bench_unlink(glm_bench *b, glm_bench_req *r)
{
    if (r->prev) {
        r->prev->next = r->next;
    } else {
        b->head = r->next;
    }
    if (r->next) {
        r->next->prev = r->prev;
    } else {
        b->tail = r->prev;
    }
    r->prev = r->next = NULL;
    b->in_flight--;
}


static glm_bench_conn *
glm_bench_pop_idle(glm_bench *b)
{
    glm_bench_conn *c = b->idle;

    if (c != NULL) {
        b->idle = c->next_idle;
        c->next_idle = NULL;
        b->n_idle--;
    }
    return c;
}

/* the server closed (or wrote to) an idle keep-alive connection */
static void
glm_bench_drop_idle(glm_bench *b, glm_bench_conn *c)
{
    glm_bench_conn **pp;

    for (pp = &b->idle; *pp != NULL; pp = &(*pp)->next_idle) {
        if (*pp == c) {
            *pp = c->next_idle;
            b->n_idle--;
            break;
        }
    }
    glm_bench_conn_close(b, c);
}

/*
 * A request is over.  Its connection goes to the idle pool when reuse is
 * true (and keep-alive is on), is closed otherwise.
 */
static void
glm_bench_finish(glm_bench *b, glm_bench_req *r, int success, int reuse)
{
    glm_bench_conn *c = r->conn;

    if (c != NULL) {
        c->req = NULL;
        r->conn = NULL;
        if (reuse && b->keepalive) {
            c->state = GLM_BENCH_CONN_IDLE;
            c->reused = 0;
            c->next_idle = b->idle;
            b->idle = c;
            b->n_idle++;
            if (c->events != EPOLLIN) {
                glm_bench_epoll(b, c, EPOLL_CTL_MOD, EPOLLIN);
            }
        } else {
            glm_bench_conn_close(b, c);
        }
    }
    if (r->state == GLM_BENCH_REQ_RUNNING) {
        glm_bench_unlink(b, r);
    }
    r->state = GLM_BENCH_REQ_FINISHED;
    if (!success && r->error == NULL) {
        glm_bench_req_fail(r, "failed");
    }
    r->success = success && r->error == NULL;
    b->finished++;
    if (!r->success) {
        b->failed++;
    } else if (r->usage_completion > 0) {
        /* progress counted content chunks; settle on the server's count */
        b->progress_tokens += r->usage_completion - r->progress_tokens;
        r->progress_tokens = (long) r->usage_completion;
        glm_str_free(&r->text);
    }
}

/*
 * One SSE event of r's stream, stamped r->now.  vLLM's rules: a message
 * with non-empty choices is the first token (TTFT) or one ITL sample; a
 * usage chunk gives the output token count; every message but [DONE] moves
 * the end (E2EL).  With --ttft-on-content, choice chunks before the first
 * one that carries content or reasoning text are not timed.
 */
static int
glm_bench_on_event(void *ud, const char *data, size_t len)
{
    glm_bench_req *r = ud;
    glm_bench *b = r->b;
    glm_bench_event ev;
    char err[320];
    double *p;

    if (r->done_seen) {
        return 0;
    }
    if (glm_bench_event_parse(data, len, &ev, &r->text, err, sizeof(err)) < 0) {
        glm_bench_req_fail(r, "%s", err);
        return -1;
    }
    if (ev.done) {
        r->done_seen = 1;
        return 0;
    }
    if (ev.is_error) {
        glm_bench_req_fail(r, "error event in the stream: %s", ev.message);
        return -1;
    }
    r->last_msg = r->now;
    if (ev.has_choices) {
        if (r->got_first) {
            if (r->n_itl == r->cap_itl) {
                r->cap_itl = r->cap_itl ? r->cap_itl * 2 : (size_t) r->output_len + 8;
                p = realloc(r->itl, r->cap_itl * sizeof(*p));
                if (p == NULL) {
                    glm_bench_die("out of memory for %zu ITL samples", r->cap_itl);
                }
                r->itl = p;
            }
            r->itl[r->n_itl++] = r->now - r->last_choice;
            r->last_choice = r->now;
        } else if (!b->ttft_on_content || ev.has_content || ev.has_reasoning) {
            r->got_first = 1;
            r->ttft = r->now - r->start;
            r->last_choice = r->now;
        }
        if (ev.has_content || ev.has_reasoning) {
            r->progress_tokens++;
            b->progress_tokens++;
        }
    } else if (ev.has_usage) {
        r->usage_completion = ev.completion_tokens;
        r->usage_prompt = ev.prompt_tokens;
    }
    return 0;
}

static int glm_bench_connect(glm_bench *b, glm_bench_req *r);

/*
 * A socket error on c.  A reused keep-alive connection that fails before any
 * byte of the response arrived was most likely closed by the server while
 * idle: the request goes again, once, on a new connection (its clock keeps
 * running).  Returns -1: c is gone.
 */
static int
glm_bench_conn_error(glm_bench *b, glm_bench_conn *c, const char *what, int err)
{
    glm_bench_req *r = c->req;

    if (c->reused && !r->retried && c->received == 0) {
        r->retried = 1;
        r->conn = NULL;
        b->resends++;
        glm_bench_conn_close(b, c);
        if (glm_bench_connect(b, r) < 0) {
            glm_bench_finish(b, r, 0, 0);
        }
        return -1;
    }
    if (err) {
        glm_bench_req_fail(r, "%s: %s", what, strerror(err));
    } else {
        glm_bench_req_fail(r, "%s", what);
    }
    glm_bench_finish(b, r, 0, 0);
    return -1;
}

/* 0: c is still there; -1: the request ended and c went with it */
static int
glm_bench_send(glm_bench *b, glm_bench_conn *c)
{
    glm_bench_req *r = c->req;
    ssize_t n;

    while (c->sent < r->wire_len) {
        n = send(c->fd, r->wire + c->sent, r->wire_len - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (c->events != (EPOLLIN | EPOLLOUT)) {
                    glm_bench_epoll(b, c, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);
                }
                return 0;
            }
            return glm_bench_conn_error(b, c, "send", errno);
        }
        c->sent += (size_t) n;
    }
    c->state = GLM_BENCH_CONN_RECEIVING;
    if (c->events != EPOLLIN) {
        glm_bench_epoll(b, c, EPOLL_CTL_MOD, EPOLLIN);
    }
    return 0;
}

/* -1: the request failed (not finished yet: the caller finishes it) */
static int
glm_bench_connect(glm_bench *b, glm_bench_req *r)
{
    glm_bench_conn *c;
    int fd, one = 1;

    fd = socket(b->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        glm_bench_req_fail(r, "socket: %s", strerror(errno));
        return -1;
    }
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        glm_bench_die("out of memory for a connection");
    }
    c->fd = fd;
    c->req = r;
    r->conn = c;
    b->connects++;
    glm_bench_http_init(&c->http, 1);
    if (connect(fd, (struct sockaddr *) &b->addr, b->addrlen) == 0) {
        c->state = GLM_BENCH_CONN_SENDING;
        glm_bench_epoll(b, c, EPOLL_CTL_ADD, EPOLLIN);
        glm_bench_send(b, c);
        return 0;
    }
    if (errno == EINPROGRESS) {
        c->state = GLM_BENCH_CONN_CONNECTING;
        glm_bench_epoll(b, c, EPOLL_CTL_ADD, EPOLLIN | EPOLLOUT);
        return 0;
    }
    r->connect_errno = errno;
    glm_bench_req_fail(r, "connect to %s: %s", b->host_header, strerror(errno));
    return -1;
}

static void
glm_bench_dispatch(glm_bench *b, glm_bench_req *r)
{
    glm_bench_conn *c;

    r->state = GLM_BENCH_REQ_RUNNING;
    r->prev = b->tail;
    r->next = NULL;
    if (b->tail) {
        b->tail->next = r;
    } else {
        b->head = r;
    }
    b->tail = r;
    b->in_flight++;

    r->start = glm_bench_now();
    c = glm_bench_pop_idle(b);
    if (c != NULL) {
        c->req = r;
        r->conn = c;
        c->reused = 1;
        c->sent = 0;
        c->received = 0;
        c->state = GLM_BENCH_CONN_SENDING;
        glm_bench_http_init(&c->http, 1);
        glm_bench_send(b, c);
        return;
    }
    if (glm_bench_connect(b, r) < 0) {
        glm_bench_finish(b, r, 0, 0);
    }
}

/* printable excerpt of an error body */
static void
glm_bench_excerpt(char *out, size_t size, const char *p, size_t n)
{
    size_t i, o = 0;

    for (i = 0; i < n && o + 1 < size; i++) {
        out[o++] = (unsigned char) p[i] < 0x20 ? ' ' : p[i];
    }
    out[o] = '\0';
}

/* the response on c is complete; leftover bytes followed it in the same read */
static void
glm_bench_response_done(glm_bench *b, glm_bench_conn *c, size_t leftover)
{
    glm_bench_req *r = c->req;
    glm_bench_http *h = &c->http;
    char body[240];
    int reuse = h->keep_alive && leftover == 0 && c->sent == r->wire_len;

    if (h->status != 200) {
        glm_bench_excerpt(body, sizeof(body), h->body.data ? h->body.data : "", h->body.len);
        glm_bench_req_fail(r, "HTTP %d: %s", h->status, body);
    } else if (!r->got_first) {
        glm_bench_req_fail(r, "no %s in a 200 response (Content-Type: %s, %lld body bytes)",
                           b->ttft_on_content ? "chunk with content"
                                              : "SSE chunk with non-empty choices",
                           h->content_type[0] ? h->content_type : "none", h->body_bytes);
    } else if (!r->done_seen) {
        glm_bench_req_fail(r, "the stream ended without \"data: [DONE]\"");
    }
    glm_bench_finish(b, r, r->error == NULL, reuse);
}

static void
glm_bench_recv(glm_bench *b, glm_bench_conn *c)
{
    glm_bench_req *r = c->req;
    ssize_t n;
    size_t used;
    int rc;

    n = read(c->fd, b->rbuf, GLM_BENCH_READ_SIZE);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            return;
        }
        glm_bench_conn_error(b, c, "read", errno);
        return;
    }
    r->now = glm_bench_now();
    c->received += (size_t) n;
    if (n == 0) {
        rc = glm_bench_http_eof(&c->http, glm_bench_on_event, r);
        if (rc == 1) {
            c->http.keep_alive = 0;
            glm_bench_response_done(b, c, 0);
            return;
        }
        glm_bench_conn_error(b, c, c->http.err[0] ? c->http.err : "connection closed", 0);
        return;
    }
    rc = glm_bench_http_feed(&c->http, b->rbuf, (size_t) n, &used, glm_bench_on_event, r);
    if (rc == 1) {
        glm_bench_response_done(b, c, (size_t) n - used);
    } else if (rc < 0) {
        if (c->http.err[0]) {
            glm_bench_req_fail(r, "malformed response: %s", c->http.err);
        }
        glm_bench_finish(b, r, 0, 0);
    }
}

static void
glm_bench_on_io(glm_bench *b, glm_bench_conn *c, uint32_t ev)
{
    glm_bench_req *r = c->req;
    socklen_t len;
    int err = 0;

    if (c->state == GLM_BENCH_CONN_IDLE) {
        glm_bench_drop_idle(b, c);
        return;
    }
    if (c->state == GLM_BENCH_CONN_CONNECTING) {
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
            return;
        }
        len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
            err = errno;
        }
        if (err) {
            r->connect_errno = err;
            glm_bench_req_fail(r, "connect to %s: %s", b->host_header, strerror(err));
            glm_bench_finish(b, r, 0, 0);
            return;
        }
        c->state = GLM_BENCH_CONN_SENDING;
    }
    if (c->state == GLM_BENCH_CONN_SENDING && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        if (glm_bench_send(b, c) < 0) {
            return;
        }
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        glm_bench_recv(b, c);
    }
}

static void
glm_bench_progress(glm_bench *b, size_t n, double t0, double now, int last)
{
    double dt = now - b->last_progress_t;
    double rate = dt > 0 ? (double) (b->progress_tokens - b->last_progress_tokens) / dt : 0.0;

    fprintf(stderr, "%sglm-bench: %zu/%zu done, %d in flight, %zu failed, %.1f tok/s, %.0f s%s",
            b->tty ? "\r\033[K" : "", b->finished, n, b->in_flight, b->failed,
            rate, now - t0, b->tty && !last ? "" : "\n");
    fflush(stderr);
    b->progress_shown = 1;
    b->last_progress_t = now;
    b->last_progress_tokens = b->progress_tokens;
    while (b->next_progress <= now) {
        b->next_progress += b->progress_interval;
    }
}

/*
 * Runs reqs[0..n) (due times ascending) until every one has finished, or
 * until SIGINT, which fails the rest.  Returns the duration: from just
 * before the first dispatch to the end of the last request, as vLLM's
 * benchmark_duration.
 */
static double
glm_bench_run(glm_bench *b, glm_bench_req *reqs, size_t n, int progress)
{
    struct epoll_event evs[256];
    glm_bench_req *r;
    size_t next = 0, i;
    double t0, now, wait;
    int k, e, ms;

    b->finished = b->failed = 0;
    b->progress_tokens = b->last_progress_tokens = 0;
    progress = progress && b->progress_interval > 0;
    t0 = glm_bench_now();
    b->last_progress_t = t0;
    b->next_progress = t0 + b->progress_interval;
    while (b->finished < n) {
        now = glm_bench_now();
        if (glm_bench_interrupted) {
            while ((r = b->head) != NULL) {
                glm_bench_req_fail(r, "interrupted");
                glm_bench_finish(b, r, 0, 0);
            }
            for (i = next; i < n; i++) {
                glm_bench_req_fail(&reqs[i], "interrupted before it was sent");
                glm_bench_finish(b, &reqs[i], 0, 0);
            }
            break;
        }
        while (next < n && (b->max_concurrency == 0 || b->in_flight < b->max_concurrency)
               && t0 + reqs[next].due <= now)
        {
            glm_bench_dispatch(b, &reqs[next++]);
        }
        while ((r = b->head) != NULL && now - r->start >= b->timeout) {
            glm_bench_req_fail(r, "timeout: no complete response after %g s", b->timeout);
            glm_bench_finish(b, r, 0, 0);
        }
        if (progress && now >= b->next_progress) {
            glm_bench_progress(b, n, t0, now, 0);
        }
        if (b->finished >= n) {
            break;
        }
        wait = 1.0;                     /* a bound, for SIGINT's sake */
        if (next < n && (b->max_concurrency == 0 || b->in_flight < b->max_concurrency)) {
            wait = fmin(wait, t0 + reqs[next].due - now);
        }
        if (b->head != NULL) {
            wait = fmin(wait, b->head->start + b->timeout - now);
        }
        if (progress) {
            wait = fmin(wait, b->next_progress - now);
        }
        ms = wait <= 0.0 ? 0 : (int) ceil(wait * 1000.0);
        k = epoll_wait(b->epfd, evs, (int) (sizeof(evs) / sizeof(evs[0])), ms);
        if (k < 0) {
            if (errno == EINTR) {
                continue;
            }
            glm_bench_die("epoll_wait: %s", strerror(errno));
        }
        for (e = 0; e < k; e++) {
            glm_bench_on_io(b, evs[e].data.ptr, evs[e].events);
        }
    }
    now = glm_bench_now();
    if (progress && (b->progress_shown || b->tty)) {
        glm_bench_progress(b, n, t0, now, 1);
    }
    return now - t0;
}

static void
glm_bench_req_reset(glm_bench_req *r)
{
    free(r->itl);
    glm_str_free(&r->text);
    if (r->error != NULL && strcmp(r->error, "out of memory") != 0) {
        free(r->error);
    }
    r->state = GLM_BENCH_REQ_WAITING;
    r->success = r->retried = r->connect_errno = 0;
    r->start = r->ttft = r->last_choice = r->last_msg = r->now = 0.0;
    r->got_first = r->done_seen = 0;
    r->usage_completion = r->usage_prompt = -1;
    r->progress_tokens = 0;
    r->itl = NULL;
    r->n_itl = r->cap_itl = 0;
    r->error = NULL;
    r->output_tokens = 0;
    r->prev = r->next = NULL;
    r->conn = NULL;
}

/* ---------------------------------------------------------------- GET */

/*
 * A blocking GET of prefix + path; the body (first 64 KiB) in h->body.
 * Connection refused is retried once a second until deadline.
 */
static int
glm_bench_get(glm_bench *b, const char *path, glm_bench_http *h, double deadline,
    char *why, size_t whysize)
{
    char req[1400];
    struct pollfd pfd;
    ssize_t n;
    size_t used, off = 0, len;
    int fd = -1, rc = 0;

    len = (size_t) snprintf(req, sizeof(req), "GET %s%s HTTP/1.1\r\nHost: %s\r\n"
                            "User-Agent: glm-bench\r\nAccept: application/json\r\n"
                            "Connection: close\r\n\r\n", b->prefix, path, b->host_header);
    for (;;) {
        fd = socket(b->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            snprintf(why, whysize, "socket: %s", strerror(errno));
            return -1;
        }
        if (connect(fd, (struct sockaddr *) &b->addr, b->addrlen) == 0) {
            break;
        }
        if (errno != ECONNREFUSED || glm_bench_now() + 1.0 > deadline || glm_bench_interrupted) {
            snprintf(why, whysize, "connect to %s: %s", b->host_header, strerror(errno));
            close(fd);
            return -1;
        }
        close(fd);
        fprintf(stderr, "glm-bench: %s refuses connections; retrying\n", b->host_header);
        sleep(1);
    }
    while (off < len) {
        n = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno != EINTR) {
            snprintf(why, whysize, "send: %s", strerror(errno));
            close(fd);
            return -1;
        }
        off += n > 0 ? (size_t) n : 0;
    }
    glm_bench_http_init(h, 0);
    while (rc == 0) {
        pfd.fd = fd;
        pfd.events = POLLIN;
        if (poll(&pfd, 1, (int) (b->timeout * 1000.0)) == 0) {
            snprintf(why, whysize, "GET %.100s%s: no response in %g s", b->prefix, path,
                     b->timeout);
            close(fd);
            return -1;
        }
        n = read(fd, b->rbuf, GLM_BENCH_READ_SIZE);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            snprintf(why, whysize, "read: %s", strerror(errno));
            close(fd);
            return -1;
        }
        rc = n == 0 ? glm_bench_http_eof(h, NULL, NULL)
                    : glm_bench_http_feed(h, b->rbuf, (size_t) n, &used, NULL, NULL);
    }
    close(fd);
    if (rc < 0) {
        snprintf(why, whysize, "GET %.100s%s: %s", b->prefix, path, h->err);
        return -1;
    }
    return 0;
}

/* data[0].id of GET /v1/models */
static char *
glm_bench_first_model(glm_bench *b, double deadline, char *why, size_t whysize)
{
    static const char *data_path[] = { "data", NULL };
    static const char *id_path[] = { "id", NULL };
    glm_bench_http h = { 0 };
    yajl_val root = NULL, data, id;
    char yerr[128], body[200], *model = NULL;

    if (glm_bench_get(b, "/v1/models", &h, deadline, why, whysize) < 0) {
        goto done;
    }
    glm_bench_excerpt(body, sizeof(body), h.body.data ? h.body.data : "", h.body.len);
    if (h.status != 200) {
        snprintf(why, whysize, "GET %.100s/v1/models: HTTP %d: %s", b->prefix, h.status, body);
        goto done;
    }
    root = yajl_tree_parse(h.body.data ? h.body.data : "", yerr, sizeof(yerr));
    data = yajl_tree_get(root, data_path, yajl_t_array);
    id = YAJL_IS_ARRAY(data) && data->u.array.len
         ? yajl_tree_get(data->u.array.values[0], id_path, yajl_t_string) : NULL;
    if (!YAJL_IS_STRING(id)) {
        snprintf(why, whysize, "GET %.100s/v1/models: no data[0].id in \"%s\"; give --model",
                 b->prefix, body);
        goto done;
    }
    model = strdup(id->u.string);
done:
    yajl_tree_free(root);
    glm_bench_http_free(&h);
    return model;
}

/* ---------------------------------------------------------------- main */

static void
glm_bench_usage(FILE *f)
{
    fprintf(f,
        "usage: glm-bench [options]\n"
        "\n"
        "Streams chat completions of random prompts to a loopback server and prints\n"
        "what `vllm bench serve --backend openai-chat --dataset-name random` prints.\n"
        "\n"
        "target\n"
        "  --base-url URL            http://HOST[:PORT][/PREFIX], HOST loopback only\n"
        "                            (default http://127.0.0.1:8080)\n"
        "  --host H --port P         the same as --base-url http://H:P\n"
        "  --endpoint PATH           default /v1/chat/completions\n"
        "  --model NAME              default: data[0].id of GET /v1/models\n"
        "  --extra-body JSON         members added to (or replacing) each request's\n"
        "  --no-keepalive            a new connection for every request\n"
        "dataset (vLLM's random dataset)\n"
        "  --tokenizer PATH          tokenizer.json, or a directory holding one\n"
        "  --tokenizer-dir DIR       the same (default t/fixtures/glm45-air-tiny)\n"
        "  --input-len N             prompt tokens (default 1024; --random-input-len)\n"
        "  --output-len N            max_tokens, ignore_eos (default 128; --random-output-len)\n"
        "  --range-ratio R           lengths uniform in [L(1-R), L(1+R)] (default 0)\n"
        "  --num-prompts N           default 1000\n"
        "  --random-prefix-len N     N random ids before every prompt's own (default 0)\n"
        "  --seed N                  prompts and arrivals (default 0)\n"
        "load\n"
        "  --request-rate R          requests/s, Poisson arrivals (default inf: all at once)\n"
        "  --max-concurrency N       at most N requests in flight (default: no limit)\n"
        "  --timeout S               per request (default 600)\n"
        "  --ready-check-timeout-sec S  wait up to S for the first test request (default\n"
        "                            600; 0 skips the test request)\n"
        "output\n"
        "  --result-file PATH        JSON result (vLLM --save-result field names)\n"
        "  --save-detailed           add per-request arrays to the JSON\n"
        "  --label L                 the JSON's label\n"
        "  --percentile-metrics L    of ttft,tpot,itl,e2el (default all four)\n"
        "  --metric-percentiles L    e.g. 50,90,99 (default 99)\n"
        "  --goodput KEY:MS          SLO for request goodput (ttft, tpot, e2el; repeatable)\n"
        "  --ttft-on-choices         TTFT at vLLM's first chunk with non-empty choices (the\n"
        "                            role chunk) instead of the first chunk with content\n"
        "                            text (the default, which an early role chunk cannot\n"
        "                            flatter)\n"
        "  --progress-interval S     progress line period on stderr (default 1; 0 off)\n");
}

static long
glm_bench_long(const char *opt, const char *v, long min)
{
    char *end;
    long x;

    errno = 0;
    x = strtol(v, &end, 10);
    if (errno || end == v || *end != '\0' || x < min) {
        fprintf(stderr, "glm-bench: %s wants an integer >= %ld, not \"%s\"\n", opt, min, v);
        exit(2);
    }
    return x;
}

static double
glm_bench_double(const char *opt, const char *v, double min)
{
    char *end;
    double x;

    x = strtod(v, &end);
    if (end == v || *end != '\0' || !(x >= min)) {
        fprintf(stderr, "glm-bench: %s wants a number >= %g, not \"%s\"\n", opt, min, v);
        exit(2);
    }
    return x;
}

enum {
    OPT_BASE_URL = 256, OPT_HOST, OPT_PORT, OPT_ENDPOINT, OPT_MODEL, OPT_EXTRA_BODY,
    OPT_NO_KEEPALIVE, OPT_TOKENIZER, OPT_INPUT_LEN, OPT_OUTPUT_LEN, OPT_RANGE_RATIO,
    OPT_NUM_PROMPTS, OPT_PREFIX_LEN, OPT_SEED, OPT_REQUEST_RATE, OPT_MAX_CONCURRENCY, OPT_TIMEOUT,
    OPT_READY, OPT_RESULT_FILE, OPT_SAVE_DETAILED, OPT_LABEL, OPT_PCT_METRICS,
    OPT_METRIC_PCTS, OPT_GOODPUT, OPT_TTFT_CONTENT, OPT_TTFT_CHOICES, OPT_PROGRESS, OPT_HELP
};

static const struct option glm_bench_options[] = {
    { "base-url", required_argument, NULL, OPT_BASE_URL },
    { "host", required_argument, NULL, OPT_HOST },
    { "port", required_argument, NULL, OPT_PORT },
    { "endpoint", required_argument, NULL, OPT_ENDPOINT },
    { "model", required_argument, NULL, OPT_MODEL },
    { "extra-body", required_argument, NULL, OPT_EXTRA_BODY },
    { "no-keepalive", no_argument, NULL, OPT_NO_KEEPALIVE },
    { "tokenizer", required_argument, NULL, OPT_TOKENIZER },
    { "tokenizer-dir", required_argument, NULL, OPT_TOKENIZER },
    { "input-len", required_argument, NULL, OPT_INPUT_LEN },
    { "random-input-len", required_argument, NULL, OPT_INPUT_LEN },
    { "output-len", required_argument, NULL, OPT_OUTPUT_LEN },
    { "random-output-len", required_argument, NULL, OPT_OUTPUT_LEN },
    { "range-ratio", required_argument, NULL, OPT_RANGE_RATIO },
    { "random-range-ratio", required_argument, NULL, OPT_RANGE_RATIO },
    { "num-prompts", required_argument, NULL, OPT_NUM_PROMPTS },
    { "random-prefix-len", required_argument, NULL, OPT_PREFIX_LEN },
    { "seed", required_argument, NULL, OPT_SEED },
    { "request-rate", required_argument, NULL, OPT_REQUEST_RATE },
    { "max-concurrency", required_argument, NULL, OPT_MAX_CONCURRENCY },
    { "timeout", required_argument, NULL, OPT_TIMEOUT },
    { "ready-check-timeout-sec", required_argument, NULL, OPT_READY },
    { "result-file", required_argument, NULL, OPT_RESULT_FILE },
    { "save-detailed", no_argument, NULL, OPT_SAVE_DETAILED },
    { "label", required_argument, NULL, OPT_LABEL },
    { "percentile-metrics", required_argument, NULL, OPT_PCT_METRICS },
    { "metric-percentiles", required_argument, NULL, OPT_METRIC_PCTS },
    { "goodput", required_argument, NULL, OPT_GOODPUT },
    { "ttft-on-content", no_argument, NULL, OPT_TTFT_CONTENT },
    { "ttft-on-choices", no_argument, NULL, OPT_TTFT_CHOICES },
    { "progress-interval", required_argument, NULL, OPT_PROGRESS },
    { "help", no_argument, NULL, OPT_HELP },
    { NULL, 0, NULL, 0 }
};

/* SIGINT stops the run (the report covers what finished); SIGPIPE is off */
static void
glm_bench_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = glm_bench_on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* room for one descriptor per request in flight */
static void
glm_bench_fd_limit(long need)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        return;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void) setrlimit(RLIMIT_NOFILE, &rl);
        (void) getrlimit(RLIMIT_NOFILE, &rl);
    }
    if ((long long) rl.rlim_cur < need + 32) {
        glm_bench_die("%ld requests may be in flight but only %llu file descriptors are "
                      "allowed (ulimit -n); lower --num-prompts or set --max-concurrency",
                      need, (unsigned long long) rl.rlim_cur);
    }
}

int
main(int argc, char **argv)
{
    const char *base_url = NULL, *host = NULL, *endpoint = "/v1/chat/completions";
    const char *tok_arg = "t/fixtures/glm45-air-tiny", *extra_json = NULL;
    const char *result_file = NULL, *label = NULL;
    char *model = NULL, tok_path[4096], why[512], date[32], url[600];
    char rate_s[48], conc_s[24];
    long port = -1, input_len = 1024, output_len = 128, num_prompts = 1000, seed = 0;
    long mismatch = 0, max_conc = 0, prefix_len = 0;
    double range_ratio = 0.0, request_rate = INFINITY, timeout = 600.0, ready = 600.0;
    double progress = 1.0, t, duration;
    int detailed = 0, ttft_content = 1, keepalive = 1, opt, rc;
    glm_bench_opts o;
    glm_bench b;
    glm_bench_extra extra;
    glm_tokenizer *tok;
    glm_tokenizer_ids allowed = { 0 }, enc = { 0 };
    glm_tokenizer_ctx *ctx;
    glm_bench_dataset_cfg cfg;
    glm_bench_prompt *prompts;
    glm_bench_req *reqs, test;
    glm_bench_sample *samples;
    glm_bench_metrics m;
    glm_bench_run_info info;
    glm_str *wires, json = { 0 };
    double *due;
    long long server_prompt = -1;
    size_t i, n, shown;
    time_t now_wall;
    FILE *f;
    glm_err err;

    glm_bench_opts_init(&o);
    while ((opt = getopt_long(argc, argv, "h", glm_bench_options, NULL)) != -1) {
        switch (opt) {
        case OPT_BASE_URL: base_url = optarg; break;
        case OPT_HOST: host = optarg; break;
        case OPT_PORT: port = glm_bench_long("--port", optarg, 1); break;
        case OPT_ENDPOINT: endpoint = optarg; break;
        case OPT_MODEL: model = strdup(optarg); break;
        case OPT_EXTRA_BODY: extra_json = optarg; break;
        case OPT_NO_KEEPALIVE: keepalive = 0; break;
        case OPT_TOKENIZER: tok_arg = optarg; break;
        case OPT_INPUT_LEN: input_len = glm_bench_long("--input-len", optarg, 1); break;
        case OPT_OUTPUT_LEN: output_len = glm_bench_long("--output-len", optarg, 1); break;
        case OPT_RANGE_RATIO: range_ratio = glm_bench_double("--range-ratio", optarg, 0.0); break;
        case OPT_NUM_PROMPTS: num_prompts = glm_bench_long("--num-prompts", optarg, 1); break;
        case OPT_PREFIX_LEN: prefix_len = glm_bench_long("--random-prefix-len", optarg, 0); break;
        case OPT_SEED: seed = glm_bench_long("--seed", optarg, 0); break;
        case OPT_REQUEST_RATE:
            request_rate = strcasecmp(optarg, "inf") == 0
                           ? INFINITY : glm_bench_double("--request-rate", optarg, 1e-9);
            break;
        case OPT_MAX_CONCURRENCY:
            max_conc = glm_bench_long("--max-concurrency", optarg, 1);
            break;
        case OPT_TIMEOUT: timeout = glm_bench_double("--timeout", optarg, 0.001); break;
        case OPT_READY: ready = glm_bench_double("--ready-check-timeout-sec", optarg, 0.0); break;
        case OPT_RESULT_FILE: result_file = optarg; break;
        case OPT_SAVE_DETAILED: detailed = 1; break;
        case OPT_LABEL: label = optarg; break;
        case OPT_PCT_METRICS:
            if (glm_bench_parse_metrics(optarg, &o.metrics) < 0) {
                fprintf(stderr, "glm-bench: --percentile-metrics: names are ttft,tpot,itl,e2el\n");
                return 2;
            }
            break;
        case OPT_METRIC_PCTS:
            if (glm_bench_parse_percentiles(optarg, &o) < 0) {
                fprintf(stderr, "glm-bench: --metric-percentiles: up to %d numbers in [0, 100], "
                        "comma-separated\n", GLM_BENCH_MAX_PERCENTILES);
                return 2;
            }
            break;
        case OPT_GOODPUT:
            {
                /* "ttft:500 tpot:50" in one argument, as vLLM's nargs="+" */
                char *copy = strdup(optarg), *save = NULL, *kv;
                for (kv = strtok_r(copy, " ", &save); kv; kv = strtok_r(NULL, " ", &save)) {
                    if (glm_bench_parse_goodput(kv, &o) < 0) {
                        fprintf(stderr, "glm-bench: --goodput wants ttft:MS, tpot:MS or "
                                "e2el:MS, not \"%s\"\n", kv);
                        return 2;
                    }
                }
                free(copy);
            }
            break;
        case OPT_TTFT_CONTENT: ttft_content = 1; break;
        case OPT_TTFT_CHOICES: ttft_content = 0; break;
        case OPT_PROGRESS: progress = glm_bench_double("--progress-interval", optarg, 0.0); break;
        case OPT_HELP:
        case 'h':
            glm_bench_usage(stdout);
            return 0;
        default:
            glm_bench_usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "glm-bench: unexpected argument \"%s\"\n", argv[optind]);
        glm_bench_usage(stderr);
        return 2;
    }
    if (base_url == NULL) {
        snprintf(url, sizeof(url), "http://%s%s%s:%ld", host && strchr(host, ':') ? "[" : "",
                 host ? host : "127.0.0.1", host && strchr(host, ':') ? "]" : "",
                 port > 0 ? port : 8080);
        base_url = url;
    } else if (host != NULL || port > 0) {
        fprintf(stderr, "glm-bench: give --base-url or --host/--port, not both\n");
        return 2;
    }

    memset(&b, 0, sizeof(b));
    if (glm_bench_parse_url(&b, base_url, endpoint, why, sizeof(why)) < 0) {
        fprintf(stderr, "glm-bench: %s\n", why);
        return 2;
    }
    if (glm_bench_extra_parse(&extra, extra_json, why, sizeof(why)) < 0) {
        fprintf(stderr, "glm-bench: --extra-body: %s\n", why);
        return 2;
    }
    b.timeout = timeout;
    b.keepalive = keepalive;
    b.ttft_on_content = ttft_content;
    b.max_concurrency = (int) max_conc;
    b.progress_interval = progress;
    b.tty = isatty(STDERR_FILENO);
    b.rbuf = malloc(GLM_BENCH_READ_SIZE);
    b.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (b.rbuf == NULL || b.epfd < 0) {
        glm_bench_die("epoll_create1: %s", strerror(errno));
    }
    o.max_concurrency = (int) max_conc;
    o.request_rate = request_rate;
    glm_bench_signals();
    glm_bench_fd_limit(max_conc > 0 && max_conc < num_prompts ? max_conc : num_prompts);

    /* the dataset */
    if (glm_path_join(tok_path, sizeof(tok_path), tok_arg, "tokenizer.json") < 0) {
        glm_bench_die("--tokenizer path too long");
    }
    if (!glm_file_exists(tok_path) || strstr(tok_arg, ".json") != NULL) {
        snprintf(tok_path, sizeof(tok_path), "%s", tok_arg);
    }
    t = glm_bench_now();
    tok = glm_tokenizer_load(tok_path, &err);
    if (tok == NULL) {
        glm_bench_die("%s", err.msg);
    }
    if (glm_bench_allowed_ids(tok, tok_path, &allowed, &err) < 0) {
        glm_bench_die("%s", err.msg);
    }
    cfg.num_prompts = num_prompts;
    cfg.input_len = input_len;
    cfg.output_len = output_len;
    cfg.range_ratio = range_ratio;
    cfg.seed = (uint64_t) seed;
    cfg.prefix_len = prefix_len;
    prompts = glm_bench_dataset_random(tok, &allowed, &cfg, &mismatch, &err);
    if (prompts == NULL) {
        glm_bench_die("%s", err.msg);
    }
    n = (size_t) num_prompts;
    fprintf(stderr, "glm-bench: %zu random prompts from %s (%zu ids to draw from) in %.2f s\n",
            n, tok_path, allowed.len, glm_bench_now() - t);
    if (mismatch != 0) {
        fprintf(stderr, "glm-bench: across all prompts, %ld %s tokens than asked after "
                "decoding and re-encoding (vLLM warns the same way)\n",
                labs(mismatch), mismatch > 0 ? "more" : "fewer");
    }

    /* the model */
    if (model == NULL) {
        model = glm_bench_first_model(&b, glm_bench_now() + ready, why, sizeof(why));
        if (model == NULL) {
            glm_bench_die("%s", why);
        }
        fprintf(stderr, "glm-bench: model %s (from /v1/models)\n", model);
    }

    /* the requests */
    wires = calloc(n, sizeof(*wires));
    reqs = calloc(n, sizeof(*reqs));
    due = calloc(n, sizeof(*due));
    samples = calloc(n, sizeof(*samples));
    if (wires == NULL || reqs == NULL || due == NULL || samples == NULL) {
        glm_bench_die("out of memory for %zu requests", n);
    }
    glm_bench_arrivals(due, n, request_rate, (uint64_t) seed);
    for (i = 0; i < n; i++) {
        glm_bench_build_wire(&b, &wires[i], model, &prompts[i], (int) i, &extra,
                             getenv("OPENAI_API_KEY"));
        reqs[i].b = &b;
        reqs[i].index = (int) i;
        reqs[i].wire = wires[i].data;
        reqs[i].wire_len = wires[i].len;
        reqs[i].prompt_len = prompts[i].prompt_len;
        reqs[i].output_len = prompts[i].output_len;
        reqs[i].due = due[i];
        glm_bench_req_reset(&reqs[i]);
    }

    /* vLLM's initial single prompt test run, which also waits for the server */
    if (ready > 0) {
        double deadline = glm_bench_now() + ready;
        fprintf(stderr, "glm-bench: initial test run (prompt 0, %d output tokens)...\n",
                reqs[0].output_len);
        test = reqs[0];
        for (;;) {
            glm_bench_req_reset(&test);
            test.due = 0.0;
            glm_bench_run(&b, &test, 1, 0);
            if (test.success || glm_bench_interrupted) {
                break;
            }
            if (test.connect_errno != ECONNREFUSED || glm_bench_now() + 1.0 > deadline) {
                glm_bench_die("initial test run failed: %s", test.error);
            }
            fprintf(stderr, "glm-bench: %s; retrying\n", test.error);
            sleep(1);
        }
        glm_bench_req_reset(&test);
        if (glm_bench_interrupted) {
            glm_bench_die("interrupted");
        }
    }

    if (isfinite(request_rate)) {
        snprintf(rate_s, sizeof(rate_s), "%g/s (Poisson)", request_rate);
    } else {
        snprintf(rate_s, sizeof(rate_s), "inf");
    }
    if (max_conc > 0) {
        snprintf(conc_s, sizeof(conc_s), "%ld", max_conc);
    } else {
        snprintf(conc_s, sizeof(conc_s), "none");
    }
    fprintf(stderr, "glm-bench: %zu requests to http://%s%s, model %s, request rate %s, "
            "max concurrency %s\n", n, b.host_header, b.path, model, rate_s, conc_s);
    b.connects = b.resends = 0;
    duration = glm_bench_run(&b, reqs, n, 1);
    fprintf(stderr, "glm-bench: %ld connections opened", b.connects);
    if (b.resends) {
        fprintf(stderr, ", %ld requests re-sent on a new connection (the server had "
                "closed the kept-alive one)", b.resends);
    }
    fputc('\n', stderr);
    if (glm_bench_interrupted) {
        fprintf(stderr, "glm-bench: interrupted: the report covers the requests that "
                "finished; the others count as failed\n");
    }

    /* output tokens: usage, else vLLM's fallback of re-tokenizing the text */
    ctx = glm_tokenizer_ctx_new(tok, &err);
    if (ctx == NULL) {
        glm_bench_die("%s", err.msg);
    }
    for (i = 0; i < n; i++) {
        glm_bench_req *r = &reqs[i];
        if (r->success && r->usage_completion > 0) {
            r->output_tokens = (int) r->usage_completion;
        } else if (r->success) {
            enc.len = 0;
            if (glm_tokenizer_encode(tok, ctx, r->text.data ? r->text.data : "", r->text.len,
                                     &enc, &err) < 0)
            {
                glm_bench_die("re-tokenizing request %zu's output: %s", i, err.msg);
            }
            r->output_tokens = (int) enc.len;
        }
        if (r->success && r->usage_prompt >= 0) {
            server_prompt = (server_prompt < 0 ? 0 : server_prompt) + r->usage_prompt;
        }
        samples[i].success = r->success;
        samples[i].prompt_len = r->prompt_len;
        samples[i].output_tokens = r->output_tokens;
        samples[i].start_time = r->start;
        samples[i].ttft = r->ttft;
        samples[i].latency = r->success ? r->last_msg - r->start : 0.0;
        samples[i].itl = r->itl;
        samples[i].n_itl = r->n_itl;
        samples[i].error = r->error;
    }
    glm_tokenizer_ctx_free(ctx);
    glm_tokenizer_ids_free(&enc);

    if (glm_bench_metrics_compute(samples, n, duration, &o, &m) < 0) {
        glm_bench_die("out of memory computing the metrics");
    }
    if (m.failed > 0) {
        printf("Failed requests during benchmark run detected (capping to %d):\n",
               GLM_BENCH_SHOW_ERRORS);
        for (i = 0, shown = 0; i < n && shown < GLM_BENCH_SHOW_ERRORS; i++) {
            if (!samples[i].success) {
                printf("Error %zu: request %zu: %s\n", shown++, i, samples[i].error);
            }
        }
    }
    glm_bench_report_print(stdout, &o, &m);
    if (server_prompt >= 0 && server_prompt != m.total_input) {
        fprintf(stderr, "glm-bench: the server counted %lld prompt tokens (chat template "
                "included); the dataset %lld (the text alone, as vLLM counts them)\n",
                server_prompt, m.total_input);
    }
    glm_bench_result_line(stdout, &o, &m, input_len, output_len, num_prompts);
    fflush(stdout);

    if (result_file != NULL) {
        now_wall = time(NULL);
        strftime(date, sizeof(date), "%Y%m%d-%H%M%S", localtime(&now_wall));
        memset(&info, 0, sizeof(info));
        info.date = date;
        info.backend = "openai-chat";
        info.label = label;
        info.model_id = model;
        info.tokenizer_id = tok_path;
        info.base_url = base_url;
        info.endpoint = endpoint;
        info.num_prompts = num_prompts;
        info.input_len = input_len;
        info.output_len = output_len;
        info.range_ratio = range_ratio;
        info.seed = seed;
        info.timeout_s = timeout;
        info.ttft_mode = ttft_content ? "first-content" : "first-choices";
        info.server_prompt_tokens = server_prompt;
        info.detailed = detailed;
        glm_bench_result_json(&json, &info, &o, &m, samples, n);
        f = fopen(result_file, "w");
        if (f == NULL || fwrite(json.data, 1, json.len, f) != json.len || fclose(f) != 0) {
            fprintf(stderr, "glm-bench: error: writing %s: %s\n", result_file, strerror(errno));
            return 1;
        }
        fprintf(stderr, "glm-bench: wrote %s\n", result_file);
        glm_str_free(&json);
    }

    rc = m.failed > 0 || glm_bench_interrupted ? 3 : 0;
    while (b.idle != NULL) {
        glm_bench_conn_close(&b, glm_bench_pop_idle(&b));
    }
    for (i = 0; i < n; i++) {
        glm_bench_req_reset(&reqs[i]);
        glm_str_free(&wires[i]);
    }
    free(reqs);
    free(wires);
    free(due);
    free(samples);
    free(model);
    free(b.rbuf);
    close(b.epfd);
    glm_str_free(&extra.members);
    glm_bench_dataset_free(prompts, n);
    glm_tokenizer_ids_free(&allowed);
    glm_tokenizer_free(tok);
    return rc;
}
