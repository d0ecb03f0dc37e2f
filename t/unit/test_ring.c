/*
 * test_ring.c: the shared-memory ring of engine/ring/ring.h.
 *
 * 1. One process: records round-trip, wrap with PAD records, full and
 *    oversize reservations fail, a corrupt length is reported as bad.
 * 2. Stress: 8 producer processes, each on its own channel of one memfd
 *    segment, send 131072 records each (1,048,576 in all) of varying length
 *    with a sequence number and a checksum; the consumer sleeps in poll() on
 *    the doorbell sockets using the waiting-flag protocol.  Every record must
 *    arrive exactly once, in order per producer, intact.
 * 3. A producer SIGKILLed while writing: the consumer sees EOF on its socket,
 *    drains what was committed (a gap-free prefix, no torn record), and the
 *    other producers' streams are unaffected.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ring/ring.h"

static int passed, failed;

#define CHECK(cond, ...) do {                                   \
    if (cond) { passed++; } else {                              \
        failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__);   \
        printf(__VA_ARGS__); printf("\n"); }                    \
} while (0)

#define SUBMIT_SIZE  (64u << 10)
#define OUTPUT_SIZE  (16u << 10)
#define CHAN_SIZE    (GLM_CHAN_DATA_OFF + SUBMIT_SIZE + OUTPUT_SIZE)
#define PRODUCERS    8
#define PER_PRODUCER 131072u

static uint32_t
checksum(const unsigned char *p, uint32_t n)
{
    uint32_t h = 2166136261u, i;

    for (i = 0; i < n; i++) {
        h = (h ^ p[i]) * 16777619u;
    }
    return h;
}

/* payload: u32 seq, u32 checksum of the rest, then seq-derived bytes */
static uint32_t
fill(unsigned char *p, uint32_t seq, uint32_t producer)
{
    uint32_t len = 8 + (seq * 2654435761u >> 7) % 300, i, sum;

    for (i = 8; i < len; i++) {
        p[i] = (unsigned char) (seq + i * 31 + producer);
    }
    sum = checksum(p + 8, len - 8);
    memcpy(p, &seq, 4);
    memcpy(p + 4, &sum, 4);
    return len;
}

static void
test_single(void)
{
    unsigned char *chan = calloc(1, CHAN_SIZE);
    glm_ring r;
    const glm_rec *rec;
    unsigned char buf[4096];
    int bell = 0, bad = 0, n = 0, i, ok = 1;
    uint32_t seq = 0, got = 0;

    glm_ring_attach(&r, chan, 1, SUBMIT_SIZE, OUTPUT_SIZE);
    glm_ring_reset(&r);
    CHECK(glm_ring_peek(&r, &bad) == NULL && !bad, "empty ring");
    CHECK(glm_ring_reserve(&r, OUTPUT_SIZE / 2) == NULL, "oversize record refused");

    /* fill until full, drain, repeat: exercises wrap and PAD */
    for (i = 0; i < 50; i++) {
        for ( ;; ) {
            uint32_t len = fill(buf, seq, 0);
            if (glm_ring_put(&r, GLM_REC_DATA, 0, 7, seq, buf, len, &bell) != 0) {
                break;
            }
            seq++;
            n++;
        }
        while ((rec = glm_ring_peek(&r, &bad)) != NULL) {
            uint32_t s, sum;
            memcpy(&s, glm_rec_payload(rec), 4);
            memcpy(&sum, (const unsigned char *) glm_rec_payload(rec) + 4, 4);
            ok &= s == got && rec->gen == got && rec->slot == 7
                  && sum == checksum((const unsigned char *) glm_rec_payload(rec) + 8,
                                     rec->len - 8);
            got++;
            glm_ring_release(&r, rec);
        }
    }
    CHECK(ok && got == seq && !bad, "%u records through %d fill/drain rounds", got, i);
    CHECK(bell == 0, "no doorbell while the consumer is awake");
    CHECK(glm_ring_prepare_wait(&r) == 0, "empty ring lets the consumer sleep");
    glm_ring_put(&r, GLM_REC_END, 0, 1, 1, NULL, 0, &bell);
    CHECK(bell == 1, "first record after sleep rings the bell");
    bell = 0;
    glm_ring_put(&r, GLM_REC_END, 0, 1, 2, NULL, 0, &bell);
    CHECK(bell == 0, "one bell per sleep");

    /* a record claiming more bytes than were published */
    rec = glm_ring_peek(&r, &bad);
    ((glm_rec *) rec)->len = 1u << 30;
    rec = glm_ring_peek(&r, &bad);
    CHECK(rec == NULL && bad, "impossible length is reported, not followed");
    free(chan);
}

static void
producer(unsigned char *seg, int index, int sock, uint32_t count)
{
    glm_ring r;
    unsigned char buf[512];
    uint32_t seq;
    int bell;
    char b = 'S';

    glm_ring_attach(&r, seg + (size_t) index * CHAN_SIZE, 0, SUBMIT_SIZE, OUTPUT_SIZE);
    for (seq = 0; seq < count; seq++) {
        uint32_t len = fill(buf, seq, (uint32_t) index);
        bell = 0;
        while (glm_ring_put(&r, GLM_REC_SUBMIT, 0, (uint32_t) index, seq, buf, len,
                            &bell) != 0)
        {
            sched_yield();      /* full: the consumer is behind */
        }
        if (bell && write(sock, &b, 1) < 0 && errno != EAGAIN) {
            _exit(3);
        }
    }
    _exit(0);
}

/* Drains channel i; returns -1 on a bad or out-of-order record. */
static int
drain(glm_ring *r, int i, uint32_t *next)
{
    const glm_rec *rec;
    int bad = 0;

    while ((rec = glm_ring_peek(r, &bad)) != NULL) {
        const unsigned char *p = glm_rec_payload(rec);
        uint32_t s, sum;

        memcpy(&s, p, 4);
        memcpy(&sum, p + 4, 4);
        if (s != next[i] || rec->gen != s || rec->slot != (uint32_t) i
            || sum != checksum(p + 8, rec->len - 8))
        {
            printf("channel %d: record %u (gen %u) where %u was due\n", i, s, rec->gen, next[i]);
            return -1;
        }
        next[i]++;
        glm_ring_release(r, rec);
    }
    return bad ? -1 : 0;
}

static void
test_processes(int kill_one)
{
    size_t size = (size_t) PRODUCERS * CHAN_SIZE;
    int fd = memfd_create("glm-test-ring", MFD_CLOEXEC), i, open_n = PRODUCERS;
    int socks[PRODUCERS][2], status, errors = 0, eof[PRODUCERS] = { 0 };
    unsigned char *seg;
    glm_ring rings[PRODUCERS];
    uint32_t next[PRODUCERS] = { 0 }, total = 0, victim_got = 0;
    pid_t pids[PRODUCERS];
    struct pollfd pfd[PRODUCERS];
    int victim = kill_one ? 3 : -1;

    if (fd < 0 || ftruncate(fd, (off_t) size) != 0) {
        CHECK(0, "memfd: %s", strerror(errno));
        return;
    }
    seg = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    for (i = 0; i < PRODUCERS; i++) {
        glm_ring_attach(&rings[i], seg + (size_t) i * CHAN_SIZE, 0, SUBMIT_SIZE, OUTPUT_SIZE);
        glm_ring_reset(&rings[i]);
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socks[i]);
    }
    for (i = 0; i < PRODUCERS; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            producer(seg, i, socks[i][1], i == victim ? 0xffffffffu : PER_PRODUCER);
        }
        close(socks[i][1]);
    }
    if (victim >= 0) {
        usleep(100000);
        kill(pids[victim], SIGKILL);
    }

    while (open_n > 0 && errors == 0) {
        int busy = 0;

        for (i = 0; i < PRODUCERS; i++) {
            uint32_t before = next[i];
            if (drain(&rings[i], i, next) != 0) {
                errors++;
            }
            busy |= next[i] != before;
        }
        if (busy) {
            continue;
        }
        /* nothing anywhere: announce sleep on every ring, then poll */
        for (i = 0; i < PRODUCERS; i++) {
            busy |= !eof[i] && glm_ring_prepare_wait(&rings[i]);
            pfd[i].fd = eof[i] ? -1 : socks[i][0];
            pfd[i].events = POLLIN;
        }
        if (busy) {
            continue;
        }
        if (poll(pfd, PRODUCERS, 5000) == 0) {
            printf("consumer: no doorbell for 5 s (lost wake-up)\n");
            errors++;
        }
        for (i = 0; i < PRODUCERS; i++) {
            char junk[64];
            ssize_t n;
            if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP))) {
                continue;
            }
            n = read(socks[i][0], junk, sizeof(junk));
            if (n == 0) {
                /* EOF: the producer exited or died; take what it committed */
                if (drain(&rings[i], i, next) != 0) {
                    errors++;
                }
                eof[i] = 1;
                open_n--;
            }
        }
    }
    for (i = 0; i < PRODUCERS; i++) {
        waitpid(pids[i], &status, 0);
        if (i == victim) {
            victim_got = next[i];
            CHECK(WIFSIGNALED(status), "victim was killed");
        } else {
            total += next[i];
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "producer %d exit", i);
            CHECK(next[i] == PER_PRODUCER, "producer %d: %u of %u records", i, next[i],
                  PER_PRODUCER);
        }
        close(socks[i][0]);
    }
    CHECK(errors == 0, "no lost, duplicated, reordered or torn record");
    if (victim >= 0) {
        printf("killed producer: %u records committed before SIGKILL, all intact;"
               " %u records from the other %d\n", victim_got, total, PRODUCERS - 1);
    } else {
        printf("stress: %u records from %d producer processes, none lost or duplicated\n",
               total, PRODUCERS);
    }
    munmap(seg, size);
    close(fd);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    test_single();
    test_processes(0);
    test_processes(1);
    printf("ring: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
