/*
 * ring_client.c: talks to `glm-engine serve` the way a worker of
 * ngx_glm_module does, without nginx: HELLO, SETUP with the two memfds
 * (ring.h), one request into the submit ring, events out of the output ring
 * until END.  For tests and for debugging the engine alone.
 *
 *   ring_client SOCKET OP BODY|-      OP: chat tokenize detokenize models metrics version
 * Prints "HTTP <status> <content-type>" and then the body bytes.
 *
 * And, for t/engine_check.py's isolation checks (ring.h's Peers, Segments):
 *   ring_client --probe SOCKET   what a peer can reach: prints one line
 *       "fds=N header=BYTES channel=BYTES channels=N header_rw=0|1
 *        header_reopen_rw=0|1 header_write=0|1 beyond=0|1"
 *       (the header writable by mmap, by reopening /proc/self/fd, by
 *       write(); beyond: bytes mappable past its own channel)
 *   ring_client --forge SOCKET   writes a forged answer (HEAD, DATA
 *       "FORGED", END for slot 1 gen 1 on every channel number) into every
 *       ring it can reach, then prints "forged N"
 *   ring_client --twice SOCKET   two handshakes from one pid (the second must
 *       be refused), then, the first closed, a third (must succeed): prints
 *       "first=S second=S third=S" with S the SETUP status or -1 for EOF
 *
 * RING_CLIENT_CANCEL_FIRST=1: the request goes in twice, the first time
 * cancelled right after it (slot 1, then slot 2), and what is printed is
 * the second one's answer (a cancelled request may have answered already).
 * RING_CLIENT_CANCEL_FIRST=partial: likewise, but of the first time only
 * the SUBMIT record goes in, without GLM_SUBMIT_LAST, before its CANCEL: a
 * worker whose client left while it was still writing the body.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ring/ring.h"

static int
die(const char *what)
{
    fprintf(stderr, "ring_client: %s: %s\n", what, errno ? strerror(errno) : "failed");
    return 1;
}

typedef struct {
    int              fd;
    glm_setup        st;
    int              fds[2];
    int              nfds;
    glm_seg_header  *h;
    unsigned char   *chan;
} peer;

/* connect + HELLO + SETUP; returns the SETUP status, -1 on EOF or error */
static int
handshake(peer *p, const char *path)
{
    struct sockaddr_un sa;
    glm_hello hello = { GLM_HELLO_MAGIC, GLM_PROTO_VERSION, 0 };
    struct msghdr msg;
    struct iovec iov;
    union { struct cmsghdr a; char b[CMSG_SPACE(4 * sizeof(int))]; } u;
    struct cmsghdr *cm;

    memset(p, 0, sizeof(*p));
    p->fds[0] = p->fds[1] = -1;
    p->fd = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (connect(p->fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
        return -1;
    }
    hello.pid = (uint32_t) getpid();
    if (write(p->fd, &hello, sizeof(hello)) != sizeof(hello)) {
        return -1;
    }
    memset(&msg, 0, sizeof(msg));
    iov.iov_base = &p->st;
    iov.iov_len = sizeof(p->st);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.b;
    msg.msg_controllen = sizeof(u.b);
    if (recvmsg(p->fd, &msg, 0) != sizeof(p->st) || p->st.magic != GLM_SETUP_MAGIC) {
        return -1;
    }
    for (cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            int n = (int) ((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int)), i, fd;
            for (i = 0; i < n; i++) {
                memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                if (p->nfds < 2) {
                    p->fds[p->nfds] = fd;
                }
                p->nfds++;
            }
        }
    }
    return (int) p->st.status;
}

/* maps the header read-only and the channel read-write; -1 on error */
static int
attach(peer *p)
{
    struct stat sb;
    void *m;

    if (p->st.status != GLM_SETUP_OK || p->nfds != 2) {
        errno = 0;
        return -1;
    }
    if (fstat(p->fds[0], &sb) != 0 || (uint64_t) sb.st_size != p->st.header_size) {
        return -1;
    }
    m = mmap(NULL, p->st.header_size, PROT_READ, MAP_SHARED, p->fds[0], 0);
    if (m == MAP_FAILED) {
        return -1;
    }
    p->h = m;
    if (fstat(p->fds[1], &sb) != 0 || (uint64_t) sb.st_size != p->st.channel_size
        || p->h->magic != GLM_SEG_MAGIC || p->h->epoch != p->st.epoch
        || p->h->channel_size != p->st.channel_size || p->st.channel >= p->h->n_channels)
    {
        errno = 0;
        return -1;
    }
    m = mmap(NULL, p->st.channel_size, PROT_READ | PROT_WRITE, MAP_SHARED, p->fds[1], 0);
    if (m == MAP_FAILED) {
        return -1;
    }
    p->chan = m;
    return 0;
}

static int
probe(const char *path)
{
    peer p;
    char name[64];
    int rw, reopen_rw = 0, wr, beyond, fd;
    void *m;
    long page = sysconf(_SC_PAGESIZE);

    if (handshake(&p, path) != 0 || attach(&p) != 0) {
        return die("handshake");
    }
    m = mmap(NULL, p.st.header_size, PROT_READ | PROT_WRITE, MAP_SHARED, p.fds[0], 0);
    rw = m != MAP_FAILED;
    snprintf(name, sizeof(name), "/proc/self/fd/%d", p.fds[0]);
    fd = open(name, O_RDWR);
    if (fd >= 0) {
        m = mmap(NULL, p.st.header_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        reopen_rw = m != MAP_FAILED;
        reopen_rw |= pwrite(fd, "x", 1, 0) == 1;
        close(fd);
    }
    wr = pwrite(p.fds[0], "x", 1, 0) == 1;
    /* the fds are the whole of what it holds: nothing past its channel */
    m = mmap(NULL, (size_t) page, PROT_READ, MAP_SHARED, p.fds[1],
             (off_t) ((p.st.channel_size + (uint64_t) page - 1) & ~(uint64_t) (page - 1)));
    beyond = m != MAP_FAILED && ftruncate(p.fds[1], (off_t) p.st.channel_size * 2) == 0;
    printf("fds=%d header=%llu channel=%llu channels=%u header_rw=%d header_reopen_rw=%d"
           " header_write=%d beyond=%d\n", p.nfds, (unsigned long long) p.st.header_size,
           (unsigned long long) p.st.channel_size, p.h->n_channels, rw, reopen_rw, wr, beyond);
    return 0;
}

static int
forge_ring(glm_ring *r)
{
    glm_head hd = { 200, GLM_CT_SSE, 0, 0 };
    const char *text = "data: {\"choices\":[{\"delta\":{\"content\":\"FORGED\"}}]}\n\n"
                       "data: [DONE]\n\n";
    int bell = 0, n = 0;

    n += glm_ring_put(r, GLM_REC_HEAD, 0, 1, 1, &hd, sizeof(hd), &bell) == 0;
    n += glm_ring_put(r, GLM_REC_DATA, 0, 1, 1, text, (uint32_t) strlen(text), &bell) == 0;
    n += glm_ring_put(r, GLM_REC_END, 0, 1, 1, NULL, 0, &bell) == 0;
    return n;
}

static int
forge(const char *path)
{
    peer p;
    glm_ring sub, out;
    unsigned char *h;
    int n = 0;

    if (handshake(&p, path) != 0 || attach(&p) != 0) {
        return die("handshake");
    }
    /* all it can reach: its own rings (both directions) and, if it could,
     * the header */
    glm_ring_attach(&sub, p.chan, 0, p.h->submit_size, p.h->output_size);
    glm_ring_attach(&out, p.chan, 1, p.h->submit_size, p.h->output_size);
    n += forge_ring(&out);
    n += forge_ring(&sub);
    h = mmap(NULL, p.st.header_size, PROT_READ | PROT_WRITE, MAP_SHARED, p.fds[0], 0);
    if (h != MAP_FAILED) {
        memset(h + 128, 'F', 64);
        n++;
    }
    if (write(p.fd, "!", 1) != 1) {
        return die("doorbell");
    }
    printf("forged %d\n", n);
    fflush(stdout);
    /* stay until the engine has read the doorbell (it drops the connection
     * for the garbage in the submit ring, or keeps it): EOF or a while */
    {
        struct pollfd pfd = { p.fd, POLLIN, 0 };
        char junk[64];
        while (poll(&pfd, 1, 2000) > 0 && read(p.fd, junk, sizeof(junk)) > 0) {
        }
    }
    return 0;
}

static int
twice(const char *path)
{
    peer a, b, c;
    int sa, sb, sc;

    sa = handshake(&a, path);
    sb = handshake(&b, path);
    close(a.fd);
    sc = handshake(&c, path);
    printf("first=%d second=%d third=%d\n", sa, sb, sc);
    return 0;
}

int
main(int argc, char **argv)
{
    peer pe;
    glm_ring sub, out;
    glm_submit head;
    char *body = NULL, bell = 'S';
    size_t blen = 0, off = 0;
    uint32_t op;
    int fd, ring = 0, bad = 0, done = 0;
    const char *cf = getenv("RING_CLIENT_CANCEL_FIRST");
    int partial = cf != NULL && strcmp(cf, "partial") == 0;
    uint32_t slot = cf != NULL && (*cf == '1' || partial) ? 1 : 2, last = 2;

    if (argc == 3 && strcmp(argv[1], "--probe") == 0) {
        return probe(argv[2]);
    }
    if (argc == 3 && strcmp(argv[1], "--forge") == 0) {
        return forge(argv[2]);
    }
    if (argc == 3 && strcmp(argv[1], "--twice") == 0) {
        return twice(argv[2]);
    }
    if (argc != 4) {
        fprintf(stderr, "usage: ring_client SOCKET OP BODY|-\n");
        return 2;
    }
    op = strcmp(argv[2], "chat") == 0 ? GLM_OP_CHAT : strcmp(argv[2], "tokenize") == 0
         ? GLM_OP_TOKENIZE : strcmp(argv[2], "detokenize") == 0 ? GLM_OP_DETOKENIZE
         : strcmp(argv[2], "models") == 0 ? GLM_OP_MODELS : strcmp(argv[2], "metrics") == 0
         ? GLM_OP_METRICS : GLM_OP_VERSION;
    if (strcmp(argv[3], "-") == 0) {
        size_t cap = 0;
        int c;
        while ((c = getchar()) != EOF) {
            if (blen + 1 >= cap) {
                cap = cap ? cap * 2 : 4096;
                body = realloc(body, cap);
            }
            body[blen++] = (char) c;
        }
    } else {
        body = strdup(argv[3]);
        blen = strlen(body);
    }
    if (handshake(&pe, argv[1]) != 0) {
        return die("setup");
    }
    if (attach(&pe) != 0) {
        return die("segments");
    }
    fd = pe.fd;
    glm_ring_attach(&sub, pe.chan, 0, pe.h->submit_size, pe.h->output_size);
    glm_ring_attach(&out, pe.chan, 1, pe.h->submit_size, pe.h->output_size);

    /* the body in SUBMIT + SUBMIT_MORE records */
    memset(&head, 0, sizeof(head));
    head.op = op;
    head.body_len = (uint32_t) blen;
again:
    off = 0;
    do {
        uint32_t room = glm_ring_max_payload(&sub) - (off == 0 ? sizeof(head) : 0);
        uint32_t n = (uint32_t) (blen - off < room ? blen - off : room);
        unsigned char *p = glm_ring_reserve(&sub, n + (off == 0 ? sizeof(head) : 0));
        if (p == NULL) {
            usleep(1000);
            continue;
        }
        if (off == 0) {
            memcpy(p, &head, sizeof(head));
            memcpy(p + sizeof(head), body, n);
        } else {
            memcpy(p, body + off, n);
        }
        ring |= glm_ring_commit(&sub, off == 0 ? GLM_REC_SUBMIT : GLM_REC_SUBMIT_MORE,
                                off + n == blen && !(partial && slot < last)
                                ? GLM_SUBMIT_LAST : 0, slot, 1,
                                n + (off == 0 ? sizeof(head) : 0));
        off += n;
        if (partial && slot < last) {
            break;
        }
    } while (off < blen);
    if (slot < last) {
        while (glm_ring_reserve(&sub, 0) == NULL) {
            usleep(1000);
        }
        ring |= glm_ring_commit(&sub, GLM_REC_CANCEL, 0, slot, 1, 0);
        slot = last;
        goto again;
    }
    if (ring && write(fd, &bell, 1) != 1) {
        return die("doorbell");
    }

    while (!done) {
        const glm_rec *rec;
        struct pollfd pfd = { fd, POLLIN, 0 };
        char junk[64];

        while ((rec = glm_ring_peek(&out, &bad)) != NULL) {
            if (rec->slot != last) {
                /* the cancelled request's, from before its cancel */
            } else if (rec->type == GLM_REC_HEAD) {
                glm_head hd;
                memcpy(&hd, glm_rec_payload(rec), sizeof(hd));
                printf("HTTP %u %s\n", hd.status, hd.content_type == GLM_CT_SSE ? "sse"
                       : hd.content_type == GLM_CT_TEXT ? "text" : "json");
            } else if (rec->type == GLM_REC_DATA) {
                fwrite(glm_rec_payload(rec), 1, rec->len, stdout);
            } else if (rec->type == GLM_REC_END) {
                done = 1;
            }
            fflush(stdout);
            glm_ring_release(&out, rec);
        }
        if (bad) {
            return die("bad record");
        }
        if (done || glm_ring_prepare_wait(&out)) {
            continue;
        }
        if (poll(&pfd, 1, 60000) <= 0) {
            return die("no output for 60 s");
        }
        if (read(fd, junk, sizeof(junk)) == 0) {
            return die("engine closed the connection");
        }
    }
    printf("\n");
    return 0;
}
