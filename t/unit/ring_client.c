/*
 * ring_client.c: talks to `glm-engine serve` the way a worker of
 * ngx_glm_module does, without nginx: HELLO, SETUP with the memfd, one
 * request into the submit ring, events out of the output ring until END.
 * For tests and for debugging the engine alone.
 *
 *   ring_client SOCKET OP BODY|-      OP: chat tokenize detokenize models metrics version
 * Prints "HTTP <status> <content-type>" and then the body bytes.
 * RING_CLIENT_CANCEL_FIRST=1: the request goes in twice, the first time
 * cancelled right after it (slot 1, then slot 2), and what is printed is
 * the second one's answer (a cancelled request may have answered already).
 */
#include <errno.h>
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

int
main(int argc, char **argv)
{
    struct sockaddr_un sa;
    glm_hello hello = { GLM_HELLO_MAGIC, GLM_PROTO_VERSION, 0 };
    glm_setup st;
    struct msghdr msg;
    struct iovec iov;
    union { struct cmsghdr a; char b[CMSG_SPACE(sizeof(int))]; } u;
    struct cmsghdr *cm;
    glm_seg_header *h;
    glm_ring sub, out;
    glm_submit head;
    unsigned char *seg, *base;
    char *body = NULL, bell = 'S';
    size_t blen = 0, off = 0;
    uint32_t op;
    int fd, memfd = -1, ring = 0, bad = 0, done = 0;
    struct stat sb;
    const char *cf = getenv("RING_CLIENT_CANCEL_FIRST");
    uint32_t slot = cf != NULL && *cf == '1' ? 1 : 2, last = 2;

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
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
        return die("connect");
    }
    hello.pid = (uint32_t) getpid();
    if (write(fd, &hello, sizeof(hello)) != sizeof(hello)) {
        return die("hello");
    }
    memset(&msg, 0, sizeof(msg));
    iov.iov_base = &st;
    iov.iov_len = sizeof(st);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.b;
    msg.msg_controllen = sizeof(u.b);
    if (recvmsg(fd, &msg, 0) != sizeof(st) || st.magic != GLM_SETUP_MAGIC || st.status != 0) {
        return die("setup");
    }
    cm = CMSG_FIRSTHDR(&msg);
    if (cm == NULL || cm->cmsg_type != SCM_RIGHTS) {
        return die("no memfd in setup");
    }
    memcpy(&memfd, CMSG_DATA(cm), sizeof(int));
    if (fstat(memfd, &sb) != 0 || (uint64_t) sb.st_size != st.segment_size) {
        return die("segment size");
    }
    seg = mmap(NULL, st.segment_size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    h = (glm_seg_header *) seg;
    if (seg == MAP_FAILED || h->magic != GLM_SEG_MAGIC || h->epoch != st.epoch
        || st.channel >= h->n_channels)
    {
        return die("segment header");
    }
    base = seg + h->channels_off + (size_t) st.channel * h->channel_size;
    glm_ring_attach(&sub, base, 0, h->submit_size, h->output_size);
    glm_ring_attach(&out, base, 1, h->submit_size, h->output_size);

    /* the body in SUBMIT + SUBMIT_MORE records */
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
                                off + n == blen ? GLM_SUBMIT_LAST : 0, slot, 1,
                                n + (off == 0 ? sizeof(head) : 0));
        off += n;
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
