/*
 * fake_engine.c: a deterministic stand-in for `glm-engine serve`, speaking
 * engine/ring/ring.h, for testing ngx_glm_module without a model or a GPU.
 *
 *   fake_engine --socket PATH [--log FILE] [--model NAME]... [--channels N]
 *               [--submit-size BYTES] [--output-size BYTES]
 *               [--socket-mode OCTAL] [--socket-group GROUP]
 *               [--max-model-len N]
 *               [--slow MS] [--stall] [--die-after N] [--flood BYTES]
 *               [--pause-intake]
 *
 * It creates the header segment (a sealed memfd) with a fresh epoch, listens
 * on PATH, answers each worker's HELLO with SETUP (the header's fd and a
 * fresh channel segment's in SCM_RIGHTS), and answers each request from the
 * request itself.  It does not check its peers (ring.h's Peers): the socket's
 * mode and group are all that keeps others out, which is enough for tests:
 *
 *   chat, "stream": true   HEAD{200,SSE}; a role chunk; one chunk per word
 *                          of the last message's content; a finish chunk;
 *                          data: [DONE]; END
 *   chat, otherwise        HEAD{200,JSON}; one chat.completion whose
 *                          content is the last message's content; END
 *   completions            HEAD{200,JSON}; a text_completion whose text is
 *                          the prompt string; END
 *   tokenize/detokenize    bytes as tokens, and back
 *   models/metrics/version fixed answers from the command line
 *
 * Misbehaviour, for all requests by switch or per request by a top-level
 * string field "fake" in the body (comma-separated):
 *   slow:MS     MS between events          stall      HEAD (+ role) only
 *   nohead      nothing at all             die:N      SIGKILL itself after
 *                                                     N DATA records
 *   flood:B     B bytes of 1000-byte chunks as fast as the ring takes them
 *   error:S     HEAD{S,JSON} + an OpenAI error body, even when streaming
 *   busy        HEAD{503,JSON,retry_after 2} + error body
 *   bad         DATA before HEAD (a per-request protocol error)
 *   garbage     a record of an unknown type (the channel is broken)
 *   echo        the answer's content is the request body as received
 *               (what the module made of it: media URLs inlined...)
 *   hold        HEAD, then nothing more until a SIGUSR2 arrives (a request
 *               queued for a batch slot, as the engine's are)
 * SIGUSR1 toggles --pause-intake (stop reading submit rings); SIGUSR2
 * releases the requests held so far.
 * The heartbeat (ring.h's Health) is kept as the engine keeps it: every
 * turn of the loop, at least every GLM_HEARTBEAT_MAX_SLEEP_MS while it holds
 * requests (stalled ones too) or has intake paused; SIGSTOP makes it stuck.
 *
 * Every event goes to the log, one line each, for the tests to read:
 *   READY epoch=E | HELLO chan=C gen=G pid=P | GONE chan=C
 *   SUBMIT chan=C slot=S gen=G op=O len=N
 *   REQUEST_ID chan=C slot=S gen=G id=X-Request-Id (when the header came)
 *   BODY chan=C slot=S gen=G fnv=H records=R
 *   CANCEL chan=C slot=S gen=G active|unknown | DONE chan=C slot=S gen=G
 *   DIE
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <yajl/yajl_tree.h>

#include "ring/ring.h"

#define MAX_CLIENTS   64
#define MAX_CHANNELS  64
#define NAMES_OFF     128
#define HEADER_SIZE   4096

typedef struct {
    char   *p;
    size_t  len, cap;
} str;

typedef struct {
    uint16_t  type;
    str       data;
} outrec;

typedef struct req req;

struct req {
    req       *next;
    int        chan;
    uint32_t   slot, gen, op;
    char      *body;
    uint32_t   body_len, got;
    int        records;             /* SUBMIT(_MORE) records of the body */
    int        complete;
    outrec    *recs;
    int        nrecs, caprecs, cur;
    size_t     cur_off;             /* bytes of recs[cur] already sent */
    long       slow_ms;
    long       die_after;           /* DATA records until SIGKILL; -1 never */
    long       data_sent;
    double     next_ms;
    long       hold;                /* past the HEAD once E.releases >= it */
};

typedef struct {
    int        fd;
    int        chan;                /* -1 until HELLO */
    unsigned char hello[sizeof(glm_hello)];
    size_t     hello_len;
} client;

typedef struct {
    int        in_use;
    uint32_t   gen;
    int        client;
    unsigned char *base;            /* its segment while in use */
    glm_ring   submit, output;
} channel;

static struct {
    const char *socket_path;
    FILE       *log;
    const char *names[16];
    int         n_names;
    uint32_t    n_channels, submit_size, output_size, max_model_len;
    mode_t      socket_mode;
    const char *socket_group;
    long        slow_ms, die_after, flood;
    int         stall;
    volatile sig_atomic_t pause_intake;
    volatile sig_atomic_t releases;     /* SIGUSR2s so far */
    volatile sig_atomic_t quit;
    unsigned char *seg;             /* the header segment */
    size_t      seg_size;
    size_t      chan_size;          /* each channel segment */
    int         seg_fd;
    uint64_t    epoch;
    client      clients[MAX_CLIENTS];
    int         n_clients;
    channel     chans[MAX_CHANNELS];
    req        *reqs;
    unsigned long n_requests;
} E;

static void
logf_(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfprintf(E.log, fmt, ap);
    va_end(ap);
    fputc('\n', E.log);
    fflush(E.log);
}

static void
die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "fake_engine: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(1);
}

static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- strings ---------------------------------------------------------- */

static void
str_add(str *s, const void *p, size_t n)
{
    if (s->len + n + 1 > s->cap) {
        s->cap = (s->len + n + 1) * 2;
        s->p = realloc(s->p, s->cap);
        if (s->p == NULL) {
            die("out of memory");
        }
    }
    memcpy(s->p + s->len, p, n);
    s->len += n;
    s->p[s->len] = '\0';
}

static void
str_adds(str *s, const char *z)
{
    str_add(s, z, strlen(z));
}

static void
str_addf(str *s, const char *fmt, ...)
{
    char    buf[512];
    va_list ap;
    int     n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    str_add(s, buf, n < (int) sizeof(buf) ? (size_t) n : sizeof(buf) - 1);
}

static void
str_json(str *s, const char *p, size_t n)
{
    size_t i;
    char   esc[8];

    str_add(s, "\"", 1);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char) p[i];

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char) c;
            str_add(s, esc, 2);
        } else if (c == '\n') {
            str_add(s, "\\n", 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            str_add(s, esc, 6);
        } else {
            str_add(s, &p[i], 1);
        }
    }
    str_add(s, "\"", 1);
}

static uint32_t
fnv1a(const char *p, size_t n)
{
    uint32_t h = 2166136261u;
    size_t   i;

    for (i = 0; i < n; i++) {
        h = (h ^ (unsigned char) p[i]) * 16777619u;
    }
    return h;
}

/* ---- responses -------------------------------------------------------- */

static void
emit(req *r, uint16_t type, const void *p, size_t n)
{
    outrec *o;

    if (r->nrecs == r->caprecs) {
        r->caprecs = r->caprecs ? r->caprecs * 2 : 16;
        r->recs = realloc(r->recs, r->caprecs * sizeof(outrec));
        if (r->recs == NULL) {
            die("out of memory");
        }
    }
    o = &r->recs[r->nrecs++];
    memset(o, 0, sizeof(*o));
    o->type = type;
    if (n) {
        str_add(&o->data, p, n);
    }
}

static void
emit_head(req *r, uint32_t status, uint32_t ct, uint32_t retry_after)
{
    glm_head h;

    memset(&h, 0, sizeof(h));
    h.status = status;
    h.content_type = ct;
    h.retry_after = retry_after;
    emit(r, GLM_REC_HEAD, &h, sizeof(h));
}

static void
emit_str(req *r, str *s)
{
    emit(r, GLM_REC_DATA, s->p, s->len);
    s->len = 0;
}

static void
emit_error(req *r, uint32_t status, uint32_t retry_after, const char *msg)
{
    str s = { 0 };

    emit_head(r, status, GLM_CT_JSON, retry_after);
    str_adds(&s, "{\"error\":{\"message\":");
    str_json(&s, msg, strlen(msg));
    str_addf(&s, ",\"type\":\"%s\",\"param\":null,\"code\":%u}}",
             status == 503 ? "ServiceUnavailableError" : "BadRequestError",
             status);
    emit_str(r, &s);
    emit(r, GLM_REC_END, NULL, 0);
    free(s.p);
}

static const char *
yget_string(yajl_val root, const char *key)
{
    const char *path[] = { key, NULL };
    yajl_val    v = yajl_tree_get(root, path, yajl_t_string);

    return v ? YAJL_GET_STRING(v) : NULL;
}

/* the text of the last message: a string, or its text parts joined */
static void
last_content(yajl_val root, str *out)
{
    const char *path[] = { "messages", NULL };
    yajl_val    msgs = yajl_tree_get(root, path, yajl_t_array), last, c;
    const char *cpath[] = { "content", NULL };
    const char *tpath[] = { "text", NULL };
    size_t      i;

    if (msgs == NULL || YAJL_GET_ARRAY(msgs)->len == 0) {
        return;
    }
    last = YAJL_GET_ARRAY(msgs)->values[YAJL_GET_ARRAY(msgs)->len - 1];
    c = yajl_tree_get(last, cpath, yajl_t_any);
    if (c && YAJL_IS_STRING(c)) {
        str_adds(out, YAJL_GET_STRING(c));
    } else if (c && YAJL_IS_ARRAY(c)) {
        for (i = 0; i < YAJL_GET_ARRAY(c)->len; i++) {
            yajl_val t = yajl_tree_get(YAJL_GET_ARRAY(c)->values[i], tpath,
                                       yajl_t_string);
            if (t) {
                str_adds(out, YAJL_GET_STRING(t));
            }
        }
    }
}

static void
chunk_head(str *s, req *r, const char *model)
{
    str_addf(s, "data: {\"id\":\"chatcmpl-fake-%u\",\"object\":"
             "\"chat.completion.chunk\",\"created\":1700000000,\"model\":",
             r->gen);
    str_json(s, model, strlen(model));
    str_adds(s, ",\"choices\":[{\"index\":0,\"delta\":");
}

static void
answer_chat(req *r, yajl_val root, const char *fake)
{
    const char *spath[] = { "stream", NULL };
    yajl_val    sv = root ? yajl_tree_get(root, spath, yajl_t_any) : NULL;
    int         stream = sv && YAJL_IS_TRUE(sv);
    const char *model = root ? yget_string(root, "model") : NULL;
    str         content = { 0 }, s = { 0 };
    const char *p, *q, *end;
    long        flood = E.flood, words = 0;
    int         stall = E.stall, nohead = 0, bad = 0, garbage = 0, echo = 0;
    unsigned    err = 0;

    if (model == NULL) {
        model = E.n_names ? E.names[0] : "fake";
    }

    /* per-request behaviour */
    for (p = fake; p && *p; p = q + (*q == ',')) {
        q = strchr(p, ',');
        if (q == NULL) {
            q = p + strlen(p);
        }
        if (strncmp(p, "slow:", 5) == 0) {
            r->slow_ms = atol(p + 5);
        } else if (strncmp(p, "die:", 4) == 0) {
            r->die_after = atol(p + 4);
        } else if (strncmp(p, "flood:", 6) == 0) {
            flood = atol(p + 6);
        } else if (strncmp(p, "error:", 6) == 0) {
            err = (unsigned) atoi(p + 6);
        } else if (strncmp(p, "stall", 5) == 0) {
            stall = 1;
        } else if (strncmp(p, "nohead", 6) == 0) {
            nohead = 1;
        } else if (strncmp(p, "busy", 4) == 0) {
            err = 503;
        } else if (strncmp(p, "bad", 3) == 0) {
            bad = 1;
        } else if (strncmp(p, "garbage", 7) == 0) {
            garbage = 1;
        } else if (strncmp(p, "echo", 4) == 0) {
            echo = 1;
        } else if (strncmp(p, "hold", 4) == 0) {
            r->hold = E.releases + 1;
        }
    }

    if (nohead) {
        return;
    }
    if (garbage) {
        emit(r, 99, "x", 1);
        return;
    }
    if (bad) {
        emit(r, GLM_REC_DATA, "x", 1);
        emit(r, GLM_REC_END, NULL, 0);
        return;
    }
    if (err == 503) {
        emit_error(r, 503, 2, "fake engine busy");
        return;
    }
    if (err) {
        emit_error(r, err, 0, "fake engine error");
        return;
    }

    if (echo) {
        str_add(&content, r->body, r->body_len);
    } else if (root) {
        last_content(root, &content);
    }
    if (content.len == 0) {
        str_adds(&content, "Hello");
    }

    if (!stream) {
        if (stall) {
            free(content.p);
            return;
        }
        emit_head(r, 200, GLM_CT_JSON, 0);
        str_addf(&s, "{\"id\":\"chatcmpl-fake-%u\",\"object\":\"chat.completion\","
                 "\"created\":1700000000,\"model\":", r->gen);
        str_json(&s, model, strlen(model));
        str_adds(&s, ",\"choices\":[{\"index\":0,\"message\":{\"role\":"
                 "\"assistant\",\"content\":");
        if (flood > 0) {
            str f = { 0 };
            long i;

            for (i = 0; i < flood; i++) {
                str_add(&f, "x", 1);
            }
            str_json(&s, f.p, f.len);
            free(f.p);
        } else {
            str_json(&s, content.p, content.len);
        }
        str_addf(&s, ",\"reasoning_content\":null,\"tool_calls\":[]},"
                 "\"logprobs\":null,\"finish_reason\":\"stop\","
                 "\"stop_reason\":null}],\"usage\":{\"prompt_tokens\":%zu,"
                 "\"total_tokens\":%zu,\"completion_tokens\":%zu}}",
                 content.len, 2 * content.len, content.len);
        emit_str(r, &s);
        emit(r, GLM_REC_END, NULL, 0);
        free(s.p);
        free(content.p);
        return;
    }

    emit_head(r, 200, GLM_CT_SSE, 0);
    chunk_head(&s, r, model);
    str_adds(&s, "{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,"
             "\"finish_reason\":null}]}\n\n");
    emit_str(r, &s);

    if (stall) {
        free(s.p);
        free(content.p);
        return;
    }

    if (flood > 0) {
        char  x[1000];
        long  sent = 0;

        memset(x, 'x', sizeof(x));
        while (sent < flood) {
            chunk_head(&s, r, model);
            str_adds(&s, "{\"content\":");
            str_json(&s, x, sizeof(x));
            str_adds(&s, "},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
            emit_str(r, &s);
            sent += sizeof(x);
        }
    } else {
        end = content.p + content.len;
        for (p = content.p; p < end; p = q) {
            while (p < end && *p == ' ') {
                p++;
            }
            if (p == end) {
                break;
            }
            q = memchr(p, ' ', (size_t) (end - p));
            if (q == NULL) {
                q = end;
            }
            chunk_head(&s, r, model);
            str_adds(&s, "{\"content\":");
            if (words++) {
                str tmp = { 0 };

                str_add(&tmp, " ", 1);
                str_add(&tmp, p, (size_t) (q - p));
                str_json(&s, tmp.p, tmp.len);
                free(tmp.p);
            } else {
                str_json(&s, p, (size_t) (q - p));
            }
            str_adds(&s, "},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
            emit_str(r, &s);
        }
    }

    chunk_head(&s, r, model);
    str_adds(&s, "{},\"logprobs\":null,\"finish_reason\":\"stop\","
             "\"stop_reason\":null}]}\n\n");
    str_adds(&s, "data: [DONE]\n\n");
    emit_str(r, &s);
    emit(r, GLM_REC_END, NULL, 0);
    free(s.p);
    free(content.p);
}

static void
answer(req *r)
{
    char        errbuf[256];
    yajl_val    root = NULL;
    const char *fake = NULL;
    str         s = { 0 };
    int         i;

    r->slow_ms = E.slow_ms;
    r->die_after = E.die_after;
    r->next_ms = now_ms();

    if (r->body_len) {
        char *z = malloc(r->body_len + 1);

        memcpy(z, r->body, r->body_len);
        z[r->body_len] = '\0';
        root = yajl_tree_parse(z, errbuf, sizeof(errbuf));
        free(z);
        if (root) {
            fake = yget_string(root, "fake");
        }
    }

    switch (r->op) {
    case GLM_OP_CHAT:
        answer_chat(r, root, fake);
        break;

    case GLM_OP_COMPLETIONS: {
        /* a text_completion whose text is the prompt string: enough to see
         * the route; the engine's own answers are tested with the engine */
        const char *prompt = root ? yget_string(root, "prompt") : NULL;

        emit_head(r, 200, GLM_CT_JSON, 0);
        str_addf(&s, "{\"id\":\"cmpl-fake-%u\",\"object\":\"text_completion\","
                 "\"created\":1700000000,\"model\":\"fake\",\"choices\":[{\"index\":0,"
                 "\"text\":", r->gen);
        str_json(&s, prompt ? prompt : "", prompt ? strlen(prompt) : 0);
        str_adds(&s, ",\"logprobs\":null,\"finish_reason\":\"length\","
                 "\"stop_reason\":null}]}");
        emit_str(r, &s);
        emit(r, GLM_REC_END, NULL, 0);
        break;
    }

    case GLM_OP_TOKENIZE: {
        const char *prompt = root ? yget_string(root, "prompt") : NULL;
        str         text = { 0 };
        size_t      k;

        if (prompt) {
            str_adds(&text, prompt);
        } else if (root) {
            last_content(root, &text);
        }
        emit_head(r, 200, GLM_CT_JSON, 0);
        str_addf(&s, "{\"count\":%zu,\"max_model_len\":%u,\"tokens\":[",
                 text.len, E.max_model_len);
        for (k = 0; k < text.len; k++) {
            str_addf(&s, "%s%u", k ? "," : "", (unsigned char) text.p[k]);
        }
        str_adds(&s, "],\"token_strs\":null}");
        emit_str(r, &s);
        emit(r, GLM_REC_END, NULL, 0);
        free(text.p);
        break;
    }

    case GLM_OP_DETOKENIZE: {
        const char *path[] = { "tokens", NULL };
        yajl_val    t = root ? yajl_tree_get(root, path, yajl_t_array) : NULL;
        str         text = { 0 };
        size_t      k;

        for (k = 0; t && k < YAJL_GET_ARRAY(t)->len; k++) {
            char c = (char) YAJL_GET_INTEGER(YAJL_GET_ARRAY(t)->values[k]);
            str_add(&text, &c, 1);
        }
        emit_head(r, 200, GLM_CT_JSON, 0);
        str_adds(&s, "{\"prompt\":");
        str_json(&s, text.p ? text.p : "", text.len);
        str_adds(&s, "}");
        emit_str(r, &s);
        emit(r, GLM_REC_END, NULL, 0);
        free(text.p);
        break;
    }

    case GLM_OP_MODELS:
        emit_head(r, 200, GLM_CT_JSON, 0);
        str_adds(&s, "{\"object\":\"list\",\"data\":[");
        for (i = 0; i < E.n_names; i++) {
            str_adds(&s, i ? ",{\"id\":" : "{\"id\":");
            str_json(&s, E.names[i], strlen(E.names[i]));
            str_addf(&s, ",\"object\":\"model\",\"created\":1700000000,"
                     "\"owned_by\":\"ngx_glm\",\"root\":\"fake\","
                     "\"parent\":null,\"max_model_len\":%u,"
                     "\"permission\":[]}", E.max_model_len);
        }
        str_adds(&s, "]}");
        emit_str(r, &s);
        emit(r, GLM_REC_END, NULL, 0);
        break;

    case GLM_OP_METRICS:
        emit_head(r, 200, GLM_CT_TEXT, 0);
        str_addf(&s, "# HELP fake_requests_total Requests seen.\n"
                 "# TYPE fake_requests_total counter\n"
                 "fake_requests_total %lu\n", E.n_requests);
        emit_str(r, &s);
        emit(r, GLM_REC_END, NULL, 0);
        break;

    case GLM_OP_VERSION:
        emit_head(r, 200, GLM_CT_JSON, 0);
        str_adds(&s, "{\"version\":\"fake-engine\"}");
        emit_str(r, &s);
        emit(r, GLM_REC_END, NULL, 0);
        break;

    default:
        emit_error(r, 400, 0, "unknown op");
        break;
    }

    free(s.p);
    if (root) {
        yajl_tree_free(root);
    }
}

/* ---- requests ----------------------------------------------------------- */

static req *
req_find(int chan, uint32_t slot, uint32_t gen)
{
    req *r;

    for (r = E.reqs; r; r = r->next) {
        if (r->chan == chan && r->slot == slot && r->gen == gen) {
            return r;
        }
    }
    return NULL;
}

static void
req_free(req *dead)
{
    req **pp;
    int   i;

    for (pp = &E.reqs; *pp; pp = &(*pp)->next) {
        if (*pp == dead) {
            *pp = dead->next;
            break;
        }
    }
    for (i = 0; i < dead->nrecs; i++) {
        free(dead->recs[i].data.p);
    }
    free(dead->recs);
    free(dead->body);
    free(dead);
}

static void
doorbell(channel *ch)
{
    char b = 1;

    if (send(E.clients[ch->client].fd, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0
        && errno != EAGAIN)
    {
        /* the worker is gone: its EOF is handled by the poll loop */
    }
}

/* writes what the request has due; lowers *timeout to when it is due next */
static void
req_pump(req *r, double now, int *timeout)
{
    channel *ch = &E.chans[r->chan];
    int      bell = 0, full = 0;

    while (r->cur < r->nrecs && now >= r->next_ms
           && !(r->hold && r->cur > 0 && E.releases < r->hold))
    {
        outrec  *o = &r->recs[r->cur];
        uint32_t max = glm_ring_max_payload(&ch->output);
        size_t   n = o->data.len - r->cur_off;
        void    *p;

        if (n > max) {
            n = max;
        }
        p = glm_ring_reserve(&ch->output, (uint32_t) n);
        if (p == NULL) {
            full = 1;
            break;
        }
        if (n) {
            memcpy(p, o->data.p + r->cur_off, n);
        }
        bell |= glm_ring_commit(&ch->output, o->type, 0, r->slot, r->gen,
                                (uint32_t) n);
        r->cur_off += n;
        if (r->cur_off < o->data.len) {
            continue;
        }
        r->cur++;
        r->cur_off = 0;
        if (o->type == GLM_REC_DATA) {
            r->data_sent++;
            if (r->die_after >= 0 && r->data_sent >= r->die_after) {
                if (bell) {
                    doorbell(ch);
                }
                logf_("DIE");
                usleep(50000);
                raise(SIGKILL);
            }
        }
        if (r->slow_ms > 0) {
            r->next_ms = now + r->slow_ms;
        }
    }
    if (bell) {
        doorbell(ch);
    }
    if (r->cur == r->nrecs && r->nrecs > 0
        && r->recs[r->nrecs - 1].type == GLM_REC_END)
    {
        logf_("DONE chan=%d slot=%u gen=%u", r->chan, r->slot, r->gen);
        req_free(r);
        return;
    }
    if (full) {
        /* the worker drains without telling us: look again soon */
        *timeout = 1;
    } else if (r->hold && r->cur > 0 && E.releases < r->hold) {
        /* SIGUSR2 interrupts poll(); the bound covers one arriving before */
        if (*timeout < 0 || *timeout > 50) {
            *timeout = 50;
        }
    } else if (r->cur < r->nrecs) {
        int wait = (int) (r->next_ms - now) + 1;

        if (*timeout < 0 || wait < *timeout) {
            *timeout = wait;
        }
    }
}

/* ---- channels and clients ----------------------------------------------- */

/* ring.h's Health: CLOCK_MONOTONIC, stored at every turn of the loop */
static void
heartbeat(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    __atomic_store_n(&((glm_seg_header *) E.seg)->heartbeat_ns,
                     (uint64_t) ts.tv_sec * 1000000000ull
                     + (uint64_t) ts.tv_nsec, __ATOMIC_RELAXED);
}

static void
client_close(int i)
{
    client *c = &E.clients[i];
    req    *r, *next;

    if (c->chan >= 0) {
        for (r = E.reqs; r; r = next) {
            next = r->next;
            if (r->chan == c->chan) {
                req_free(r);
            }
        }
        E.chans[c->chan].in_use = 0;
        /* never handed out again: the next owner gets a fresh one */
        munmap(E.chans[c->chan].base, E.chan_size);
        E.chans[c->chan].base = NULL;
        logf_("GONE chan=%d", c->chan);
    }
    close(c->fd);
    E.clients[i] = E.clients[--E.n_clients];
    if (E.clients[i].chan >= 0 && i < E.n_clients) {
        E.chans[E.clients[i].chan].client = i;
    }
}

static int
client_hello(int i)
{
    client          *c = &E.clients[i];
    glm_hello        h;
    glm_setup        s;
    channel         *ch = NULL;
    glm_chan_header *chh;
    unsigned char   *base;
    struct msghdr    msg;
    struct iovec     iov;
    union {
        struct cmsghdr cm;
        char           space[CMSG_SPACE(2 * sizeof(int))];
    } cbuf;
    struct cmsghdr  *cm;
    uint32_t         k;
    int              fds[2], rc;

    memcpy(&h, c->hello, sizeof(h));
    if (h.magic != GLM_HELLO_MAGIC || h.version != GLM_PROTO_VERSION) {
        logf_("BADHELLO");
        return -1;
    }

    memset(&s, 0, sizeof(s));
    s.magic = GLM_SETUP_MAGIC;
    s.version = GLM_PROTO_VERSION;
    s.epoch = E.epoch;
    s.header_size = E.seg_size;
    s.channel_size = E.chan_size;

    for (k = 0; k < E.n_channels; k++) {
        if (!E.chans[k].in_use) {
            ch = &E.chans[k];
            break;
        }
    }

    memset(&msg, 0, sizeof(msg));
    iov.iov_base = &s;
    iov.iov_len = sizeof(s);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;

    if (ch == NULL) {
        s.status = GLM_SETUP_NO_CHANNEL;
        logf_("NOCHANNEL pid=%u", h.pid);
        sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        return -1;
    }

    fds[0] = E.seg_fd;
    fds[1] = memfd_create("glm-fake-channel", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fds[1] < 0 || ftruncate(fds[1], (off_t) E.chan_size) < 0
        || fcntl(fds[1], F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
           < 0)
    {
        die("channel memfd: %s", strerror(errno));
    }
    base = mmap(NULL, E.chan_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                fds[1], 0);
    if (base == MAP_FAILED) {
        die("channel mmap: %s", strerror(errno));
    }
    ch->base = base;
    ch->in_use = 1;
    ch->gen++;
    ch->client = i;
    glm_ring_attach(&ch->submit, base, 0, E.submit_size, E.output_size);
    glm_ring_attach(&ch->output, base, 1, E.submit_size, E.output_size);
    glm_ring_reset(&ch->submit);
    glm_ring_reset(&ch->output);
    chh = (glm_chan_header *) base;
    chh->owner_pid = h.pid;
    chh->epoch = E.epoch;
    chh->channel = k;
    __atomic_store_n(&chh->gen, ch->gen, __ATOMIC_RELEASE);
    c->chan = (int) k;

    s.channel = k;
    s.chan_gen = ch->gen;

    msg.msg_control = &cbuf;
    msg.msg_controllen = sizeof(cbuf);
    cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(fds));
    memcpy(CMSG_DATA(cm), fds, sizeof(fds));

    rc = sendmsg(c->fd, &msg, MSG_NOSIGNAL) == (ssize_t) sizeof(s) ? 0 : -1;
    close(fds[1]);
    if (rc != 0) {
        return -1;
    }
    logf_("HELLO chan=%u gen=%u pid=%u", k, ch->gen, h.pid);
    return 0;
}

/* reads the channel's submit ring; -1 when the worker broke it */
static int
intake(int chan)
{
    channel       *ch = &E.chans[chan];
    const glm_rec *rec;
    int            bad = 0;
    req           *r;

    for (;;) {
        rec = glm_ring_peek(&ch->submit, &bad);
        if (bad) {
            logf_("BADRING chan=%d", chan);
            return -1;
        }
        if (rec == NULL) {
            if (glm_ring_prepare_wait(&ch->submit)) {
                continue;
            }
            return 0;
        }

        switch (rec->type) {
        case GLM_REC_SUBMIT: {
            glm_submit sub;

            if (rec->len < sizeof(sub)) {
                logf_("BADSUBMIT chan=%d", chan);
                return -1;
            }
            memcpy(&sub, glm_rec_payload(rec), sizeof(sub));
            if (sub.request_id_len > GLM_REQUEST_ID_MAX
                || rec->len < sizeof(sub) + sub.request_id_len)
            {
                logf_("BADSUBMIT chan=%d", chan);
                return -1;
            }
            r = calloc(1, sizeof(req));
            r->chan = chan;
            r->slot = rec->slot;
            r->gen = rec->gen;
            r->op = sub.op;
            r->body_len = sub.body_len;
            r->body = malloc(sub.body_len + 1);
            r->got = rec->len - (uint32_t) sizeof(sub) - sub.request_id_len;
            r->records = 1;
            if (r->got > r->body_len) {
                logf_("BADSUBMIT chan=%d", chan);
                free(r->body);
                free(r);
                return -1;
            }
            memcpy(r->body, (const char *) glm_rec_payload(rec) + sizeof(sub)
                            + sub.request_id_len, r->got);
            r->next = E.reqs;
            E.reqs = r;
            E.n_requests++;
            logf_("SUBMIT chan=%d slot=%u gen=%u op=%u len=%u", chan,
                  r->slot, r->gen, r->op, r->body_len);
            if (sub.request_id_len > 0) {
                logf_("REQUEST_ID chan=%d slot=%u gen=%u id=%.*s", chan, r->slot,
                      r->gen, (int) sub.request_id_len,
                      (const char *) glm_rec_payload(rec) + sizeof(sub));
            }
            break;
        }

        case GLM_REC_SUBMIT_MORE:
            r = req_find(chan, rec->slot, rec->gen);
            if (r == NULL || r->complete || r->got + rec->len > r->body_len) {
                logf_("BADMORE chan=%d", chan);
                return -1;
            }
            memcpy(r->body + r->got, glm_rec_payload(rec), rec->len);
            r->got += rec->len;
            r->records++;
            break;

        case GLM_REC_CANCEL:
            r = req_find(chan, rec->slot, rec->gen);
            logf_("CANCEL chan=%d slot=%u gen=%u %s", chan, rec->slot,
                  rec->gen, r ? "active" : "unknown");
            if (r) {
                req_free(r);
            }
            r = NULL;
            break;

        default:
            logf_("BADTYPE chan=%d type=%u", chan, rec->type);
            return -1;
        }

        if (r && (rec->type == GLM_REC_SUBMIT || rec->type == GLM_REC_SUBMIT_MORE)
            && (rec->flags & GLM_SUBMIT_LAST))
        {
            if (r->got != r->body_len) {
                logf_("BADLENGTH chan=%d", chan);
                return -1;
            }
            r->complete = 1;
            logf_("BODY chan=%d slot=%u gen=%u fnv=%08x records=%d", chan,
                  r->slot, r->gen, fnv1a(r->body, r->body_len), r->records);
            answer(r);
        }
        glm_ring_release(&ch->submit, rec);
    }
}

/* ---- main ----------------------------------------------------------------- */

static void
on_signal(int sig)
{
    if (sig == SIGUSR1) {
        E.pause_intake = !E.pause_intake;
    } else if (sig == SIGUSR2) {
        E.releases++;
    } else {
        E.quit = 1;
    }
}

static void
setup_segment(void)
{
    glm_seg_header *h;
    struct timespec ts;
    size_t          names = 0, chan_size;
    int             i;

    chan_size = GLM_CHAN_DATA_OFF + E.submit_size + E.output_size;
    E.chan_size = chan_size;
    E.seg_size = HEADER_SIZE;
    E.seg_fd = memfd_create("glm-fake-engine", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (E.seg_fd < 0 || ftruncate(E.seg_fd, (off_t) E.seg_size) < 0) {
        die("memfd: %s", strerror(errno));
    }
    E.seg = mmap(NULL, E.seg_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                 E.seg_fd, 0);
    if (E.seg == MAP_FAILED) {
        die("mmap: %s", strerror(errno));
    }
    /* as the engine: workers may map it only read-only (ring.h) */
    if (fcntl(E.seg_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW
                                     | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) < 0)
    {
        die("sealing the header: %s", strerror(errno));
    }

    clock_gettime(CLOCK_REALTIME, &ts);
    E.epoch = (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;

    for (i = 0; i < E.n_names; i++) {
        size_t n = strlen(E.names[i]) + 1;

        if (NAMES_OFF + names + n > HEADER_SIZE) {
            die("model names do not fit the first page");
        }
        memcpy(E.seg + NAMES_OFF + names, E.names[i], n);
        names += n;
    }

    h = (glm_seg_header *) E.seg;
    h->magic = GLM_SEG_MAGIC;
    h->version = GLM_PROTO_VERSION;
    h->header_size = sizeof(glm_seg_header);
    h->epoch = E.epoch;
    h->segment_size = E.seg_size;
    h->channel_size = chan_size;
    h->n_channels = E.n_channels;
    h->submit_size = E.submit_size;
    h->output_size = E.output_size;
    h->engine_pid = (uint32_t) getpid();
    h->names_off = NAMES_OFF;
    h->names_len = (uint32_t) names;
    h->max_model_len = E.max_model_len;
}

static int
listen_socket(void)
{
    struct sockaddr_un sun;
    int                fd;

    if (strlen(E.socket_path) >= sizeof(sun.sun_path)) {
        die("socket path too long");
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, E.socket_path);
    unlink(E.socket_path);

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *) &sun, sizeof(sun)) < 0) {
        die("bind %s: %s", E.socket_path, strerror(errno));
    }
    if (E.socket_group != NULL) {
        struct group *g = getgrnam(E.socket_group);

        if (g == NULL || chown(E.socket_path, (uid_t) -1, g->gr_gid) < 0) {
            die("--socket-group %s: %s", E.socket_group,
                g == NULL ? "no such group" : strerror(errno));
        }
    }
    if (chmod(E.socket_path, E.socket_mode) < 0) {
        die("chmod %s: %s", E.socket_path, strerror(errno));
    }
    if (listen(fd, 64) < 0) {
        die("listen: %s", strerror(errno));
    }
    return fd;
}

static int
is_pow2(unsigned long v)
{
    return v >= 1024 && (v & (v - 1)) == 0;
}

int
main(int argc, char **argv)
{
    struct pollfd    pfd[MAX_CLIENTS + 1];
    struct sigaction sa;
    int              lfd, i, n, timeout;
    double           now;
    req             *r, *next;

    E.log = stderr;
    E.n_channels = 16;
    E.submit_size = 1u << 20;
    E.output_size = 1u << 16;
    E.max_model_len = 4096;
    E.socket_mode = 0600;
    E.die_after = -1;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--stall") == 0) {
            E.stall = 1;
            continue;
        }
        if (strcmp(a, "--pause-intake") == 0) {
            E.pause_intake = 1;
            continue;
        }
        if (v == NULL) {
            die("%s wants a value", a);
        }
        i++;
        if (strcmp(a, "--socket") == 0) {
            E.socket_path = v;
        } else if (strcmp(a, "--log") == 0) {
            E.log = fopen(v, "a");
            if (E.log == NULL) {
                die("%s: %s", v, strerror(errno));
            }
        } else if (strcmp(a, "--model") == 0) {
            if (E.n_names == 16) {
                die("too many models");
            }
            E.names[E.n_names++] = v;
        } else if (strcmp(a, "--channels") == 0) {
            E.n_channels = (uint32_t) atoi(v);
        } else if (strcmp(a, "--submit-size") == 0) {
            E.submit_size = (uint32_t) atol(v);
        } else if (strcmp(a, "--output-size") == 0) {
            E.output_size = (uint32_t) atol(v);
        } else if (strcmp(a, "--socket-mode") == 0) {
            E.socket_mode = (mode_t) strtol(v, NULL, 8);
        } else if (strcmp(a, "--socket-group") == 0) {
            E.socket_group = v;
        } else if (strcmp(a, "--max-model-len") == 0) {
            E.max_model_len = (uint32_t) atol(v);
        } else if (strcmp(a, "--slow") == 0) {
            E.slow_ms = atol(v);
        } else if (strcmp(a, "--die-after") == 0) {
            E.die_after = atol(v);
        } else if (strcmp(a, "--flood") == 0) {
            E.flood = atol(v);
        } else {
            die("unknown option %s", a);
        }
    }
    if (E.socket_path == NULL) {
        die("usage: fake_engine --socket PATH [options] (see the source)");
    }
    if (E.n_channels == 0 || E.n_channels > MAX_CHANNELS
        || !is_pow2(E.submit_size) || !is_pow2(E.output_size))
    {
        die("bad --channels or ring sizes (powers of two >= 1024)");
    }
    if (E.n_names == 0) {
        E.names[E.n_names++] = "glm-4.5-air";
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    setup_segment();
    lfd = listen_socket();
    logf_("READY epoch=%llu pid=%d", (unsigned long long) E.epoch,
          (int) getpid());

    while (!E.quit) {
        heartbeat();
        now = now_ms();
        timeout = -1;

        /* intake first, so that cancels beat output */
        if (!E.pause_intake) {
            for (i = 0; i < E.n_clients; i++) {
                if (E.clients[i].chan >= 0 && intake(E.clients[i].chan) < 0) {
                    client_close(i--);
                }
            }
        }

        for (r = E.reqs; r; r = next) {
            next = r->next;
            if (r->complete) {
                req_pump(r, now, &timeout);
            }
        }

        /* holding requests (stalled ones too) or not reading: alive, so
         * the heartbeat stays fresh; else a doorbell wakes us */
        if ((E.reqs != NULL || E.pause_intake)
            && (timeout < 0 || timeout > GLM_HEARTBEAT_MAX_SLEEP_MS))
        {
            timeout = GLM_HEARTBEAT_MAX_SLEEP_MS;
        }

        pfd[0].fd = lfd;
        pfd[0].events = POLLIN;
        for (i = 0; i < E.n_clients; i++) {
            pfd[i + 1].fd = E.clients[i].fd;
            pfd[i + 1].events = POLLIN;
        }

        n = poll(pfd, (nfds_t) E.n_clients + 1, timeout);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("poll: %s", strerror(errno));
        }

        for (i = E.n_clients - 1; i >= 0; i--) {
            char    buf[256];
            client *c = &E.clients[i];
            ssize_t k;

            if (!(pfd[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) {
                continue;
            }
            if (c->chan < 0) {
                k = recv(c->fd, c->hello + c->hello_len,
                         sizeof(glm_hello) - c->hello_len, MSG_DONTWAIT);
                if (k <= 0) {
                    if (k < 0 && errno == EAGAIN) {
                        continue;
                    }
                    client_close(i);
                    continue;
                }
                c->hello_len += (size_t) k;
                if (c->hello_len == sizeof(glm_hello) && client_hello(i) < 0) {
                    client_close(i);
                }
                continue;
            }
            for (;;) {
                k = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (k > 0) {
                    continue;
                }
                if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
                    break;
                }
                client_close(i);
                break;
            }
        }

        if (pfd[0].revents & POLLIN) {
            for (;;) {
                int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

                if (fd < 0) {
                    break;
                }
                if (E.n_clients == MAX_CLIENTS) {
                    close(fd);
                    continue;
                }
                E.clients[E.n_clients].fd = fd;
                E.clients[E.n_clients].chan = -1;
                E.clients[E.n_clients].hello_len = 0;
                E.n_clients++;
            }
        }
    }

    while (E.reqs) {
        req_free(E.reqs);
    }
    while (E.n_clients) {
        client_close(E.n_clients - 1);
    }
    unlink(E.socket_path);
    logf_("EXIT");
    if (E.log != stderr) {
        fclose(E.log);
    }
    return 0;
}
