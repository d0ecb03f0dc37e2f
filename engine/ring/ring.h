/*
 * ring.h: the shared-memory protocol between nginx workers and the engine.
 * nginx-free, header-only, included by ngx_glm_module and by the engine.
 *
 * SPECIFICATION
 *
 * Processes.  One engine process owns the GPUs and listens on a Unix stream
 * socket.  Each nginx worker connects once (and again after the engine
 * restarts).  Over the socket go only: the HELLO/SETUP handshake (the two
 * segments travel as memfds in SCM_RIGHTS), one-byte doorbells, and liveness
 * (EOF means the peer died).  Payloads never go through the socket.
 *
 * Peers (version 3).  Whoever may connect gets a channel, so the engine
 * checks every peer when it accepts it, by its SO_PEERCRED credentials (the
 * effective uid and gid at connect(), which the peer cannot forge) and its
 * SO_PEERGROUPS supplementary groups.  A peer is admitted when its uid is
 * 0, or is listed by --allowed-peer-uid, or --socket-group G is given and G
 * is its gid or one of its groups; with neither option, only the engine's
 * own uid (after --user) and 0.  Anyone else is closed at once, before it
 * can say anything, and logged.  A peer (the pid of SO_PEERCRED) holds at
 * most one channel: a second HELLO from a pid whose first connection is
 * still open is refused (SETUP status 2); a connection whose peer has
 * closed is reclaimed first, so is every closed connection before "all
 * channels taken" is answered (status 1), so that an nginx reload, whose
 * new workers connect while the old ones leave, never runs out.  The nginx
 * workers must not run as the engine's user: a process with the engine's
 * uid could take its descriptors from /proc.
 *
 * Segments.  Isolation is by construction: a worker maps nothing but the
 * read-only header and its own channel.
 *
 *   The header segment.  One memfd of header_size bytes (one page), made at
 *   start-up with a fresh epoch (nanoseconds since the epoch at creation;
 *   never reused), written by the engine, then sealed against resizing and
 *   against any new writable mapping (F_SEAL_FUTURE_WRITE): every worker
 *   gets the same one and can map it only PROT_READ; the engine keeps its
 *   own writable mapping for heartbeat_ns.
 *
 *     offset 0          glm_seg_header     (engine, at creation; heartbeat_ns)
 *     names_off         served model names, NUL-separated, names_len bytes,
 *                       inside the page
 *
 *   A channel segment.  A fresh memfd of channel_size bytes for every
 *   assignment, sealed against resizing, mapped MAP_SHARED read-write by the
 *   engine and by the one worker it is given to; the engine unmaps it when
 *   the connection ends and never hands it to anyone else, so a worker that
 *   left (or was dropped while still alive) keeps only the rings nobody
 *   uses any more.
 *
 *     +0                glm_chan_header    (engine, on assign)
 *     +256              glm_ring_ctl submit       worker -> engine
 *     +640              glm_ring_ctl output       engine -> worker
 *     +1024             submit data, submit_size bytes
 *     +1024+submit_size output data, output_size bytes
 *
 *   SETUP carries both: the header's fd first, the channel's second, with
 *   their sizes.  A worker checks magic, version, epoch, sizes and offsets
 *   against SETUP and the fds' sizes, and never trusts a segment of an older
 *   epoch: after an engine restart it unmaps the old ones and uses the new.
 *
 * Channels.  The engine assigns a free channel number to each connection and
 * names it in SETUP, with the channel's generation (bumped on every
 * assignment) in SETUP and in the channel header.  A channel is owned by
 * exactly one worker connection: the submit ring is single-producer (that
 * worker), single-consumer (the engine), the output ring the reverse.  The
 * submit side is therefore many producers to one consumer, built as one
 * SPSC ring per worker which the engine polls in turn: no producer can
 * block another, and a producer that dies mid-write damages only its own
 * channel, which the engine discards when the socket reports EOF.
 *
 * Rings.  A ring is a power-of-two byte buffer with free-running 64-bit
 * positions: `tail` (bytes ever written, producer-owned) and `head` (bytes
 * ever consumed, consumer-owned), each on its own 128-byte line (x86's
 * adjacent-line prefetcher pairs 64-byte lines).  Records are 16-byte
 * aligned: a 16-byte glm_rec header then the payload padded to 16.  A record
 * never wraps: when it would, the producer first writes a PAD record up to
 * the end of the buffer.  A record's total size is at most half the ring.
 *
 * Memory order.  Producer: write header+payload, then store-release `tail`.
 * Consumer: load-acquire `tail`, read records, then store-release `head`.
 * Producer reads `head` with acquire before reusing space.
 *
 * Doorbells (no lost wake-ups, Dekker style).  A consumer about to sleep
 * stores waiting=1, issues a seq_cst fence, and re-checks the ring; if it is
 * not empty it clears waiting and drains again.  A producer, after its
 * release-store of tail, issues a seq_cst fence and CASes waiting 1 -> 0; if
 * that succeeds it sends one byte on the socket.  So a doorbell is sent only
 * when the consumer may be asleep, at most once per sleep.  A doorbell write
 * that would block (EAGAIN) is dropped: one is already pending.
 *
 * Requests and slots.  A worker names each request by (slot, gen): slot is
 * an index in the worker's own table, gen a counter the worker bumps for
 * every request.  The engine echoes both in every event.  The worker ignores
 * events whose (slot, gen) is not a live request of its own (stale output of
 * a cancelled request); the engine ignores a CANCEL for a (slot, gen) it does
 * not run.
 *
 * Health.  The engine stores CLOCK_MONOTONIC nanoseconds in the header's
 * heartbeat_ns (relaxed store) at every turn of its loop: each time it polls
 * its sockets and before each scheduler step.  While it holds any request
 * not yet answered (END not written) it never sleeps longer than
 * GLM_HEARTBEAT_MAX_SLEEP_MS between two stores; with none it may sleep in
 * poll as long as it likes, since work reaches it with a doorbell.  The
 * workers keep among themselves, outside the engine's segments (version 3;
 * ngx_glm_module: in an nginx shared memory zone, which no other peer of
 * the engine can reach), for each worker the CLOCK_MONOTONIC nanoseconds at
 * which it last went from no request in the engine (none submitted and
 * unanswered) to one, busy_since_ns, 0 when it has none.  Any worker reads
 * the heartbeat and all of those (relaxed loads; each one aligned 64-bit
 * word): the engine is stuck when some worker has busy_since_ns != 0 and
 *     now - max(heartbeat_ns, busy_since_ns) >= the worker's health timeout
 * (the engine has not turned its loop for that long although work waits for
 * it; the max keeps an engine that slept idle until the work came from
 * looking stale).  Both sides run on one host: CLOCK_MONOTONIC is shared.
 *
 * Crash rules.  Engine dies: every worker sees EOF, ends open streams with an
 * SSE error event and [DONE] (or a 503 if no header was sent), answers 503
 * until it reconnects to a new engine, and unmaps the old segments.  Worker
 * dies: the engine sees EOF, cancels every request of that channel, frees
 * their KV blocks, unmaps the channel's segment and returns the channel
 * number to the free list.  Any record
 * that fails validation (length beyond the ring, unknown type) is treated as
 * the peer having died: the connection is closed.
 */
#ifndef GLM_RING_H
#define GLM_RING_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define GLM_SEG_MAGIC          0x31474e49524d4c47ull     /* "GLMRING1" */
#define GLM_PROTO_VERSION      4u     /* 2: the health fields; 3: a segment
                                         per channel, checked peers; 4: SUBMIT
                                         carries the X-Request-Id header */
#define GLM_HELLO_MAGIC        0x4f4c4c45484d4c47ull     /* "GLMHELLO" */
#define GLM_SETUP_MAGIC        0x50555445534d4c47ull     /* "GLMSETUP" */

/* the longest an engine holding unanswered requests sleeps between
 * heartbeats (see Health); a worker's health timeout must be well above it */
#define GLM_HEARTBEAT_MAX_SLEEP_MS  100

#define GLM_CHAN_HEADER_OFF    0
#define GLM_CHAN_SUBMIT_OFF    256
#define GLM_CHAN_OUTPUT_OFF    640
#define GLM_CHAN_DATA_OFF      1024

/* record types: worker -> engine */
#define GLM_REC_PAD            0u     /* filler to the end of the buffer */
#define GLM_REC_SUBMIT         1u     /* payload: glm_submit, request id, body */
#define GLM_REC_SUBMIT_MORE    2u     /* continues the body of a SUBMIT */
#define GLM_REC_CANCEL         3u     /* no payload */
/* engine -> worker */
#define GLM_REC_HEAD           16u    /* payload: glm_head */
#define GLM_REC_DATA           17u    /* payload: response body bytes */
#define GLM_REC_END            18u    /* no payload: response complete */

/* glm_rec.flags on SUBMIT */
#define GLM_SUBMIT_LAST        1u     /* the body is complete */

/* what a SUBMIT asks for */
#define GLM_OP_CHAT            1u     /* /v1/chat/completions */
#define GLM_OP_TOKENIZE        2u     /* /tokenize */
#define GLM_OP_DETOKENIZE      3u     /* /detokenize */
#define GLM_OP_MODELS          4u     /* /v1/models */
#define GLM_OP_METRICS         5u     /* /metrics */
#define GLM_OP_VERSION         6u     /* /version */
#define GLM_OP_COMPLETIONS     7u     /* /v1/completions */

/* glm_head.content_type */
#define GLM_CT_JSON            1u
#define GLM_CT_SSE             2u
#define GLM_CT_TEXT            3u     /* text/plain (Prometheus metrics) */

typedef struct {
    uint64_t magic;
    uint32_t version;
    uint32_t header_size;           /* sizeof(glm_seg_header) */
    uint64_t epoch;
    uint64_t segment_size;          /* of this, the header segment */
    uint64_t channel_size;          /* of each channel segment */
    uint32_t n_channels;            /* channel numbers, 0 .. n_channels-1 */
    uint32_t submit_size;           /* bytes, power of two */
    uint32_t output_size;           /* bytes, power of two */
    uint32_t engine_pid;
    uint64_t heartbeat_ns;          /* engine: CLOCK_MONOTONIC ns, relaxed
                                       store every loop turn (see Health) */
    uint32_t names_off;             /* served model names, NUL-separated */
    uint32_t names_len;             /* bytes, within the first page */
    uint32_t max_model_len;         /* for the worker's early checks */
    uint8_t  reserved[52];
} glm_seg_header;

typedef struct {
    uint32_t owner_pid;             /* worker pid (SO_PEERCRED; for logs) */
    uint32_t gen;                   /* bumped on every assignment */
    uint64_t epoch;                 /* the header's */
    uint32_t channel;               /* its number */
    uint8_t  reserved[236];
} glm_chan_header;

typedef struct {
    uint64_t head;                  /* consumer-owned */
    uint32_t waiting;               /* consumer sets; producer CASes to 0 */
    uint8_t  pad0[116];
    uint64_t tail;                  /* producer-owned */
    uint8_t  pad1[120];
    uint64_t size;                  /* constant after reset */
    uint8_t  pad2[120];
} glm_ring_ctl;

typedef struct {
    uint32_t len;                   /* payload bytes, before padding */
    uint16_t type;
    uint16_t flags;
    uint32_t slot;
    uint32_t gen;
} glm_rec;

/*
 * The first SUBMIT of a request: this header, then request_id_len bytes of
 * the client's X-Request-Id header (vLLM names the response after it; at
 * most GLM_REQUEST_ID_MAX, none when 0), then the body's first bytes.
 */
typedef struct {
    uint32_t op;                    /* GLM_OP_* */
    uint32_t body_len;              /* total body bytes across SUBMIT(_MORE) */
    uint32_t request_id_len;        /* X-Request-Id bytes before the body */
    uint32_t reserved;
} glm_submit;

#define GLM_REQUEST_ID_MAX     256u

typedef struct {
    uint32_t status;                /* HTTP status */
    uint32_t content_type;          /* GLM_CT_* */
    uint32_t retry_after;           /* seconds; 0: none */
    uint32_t reserved;
} glm_head;

/* handshake messages on the socket */
typedef struct {
    uint64_t magic;                 /* GLM_HELLO_MAGIC */
    uint32_t version;
    uint32_t pid;
} glm_hello;

typedef struct {
    uint64_t magic;                 /* GLM_SETUP_MAGIC */
    uint32_t version;
    uint32_t channel;
    uint64_t epoch;
    uint64_t header_size;           /* bytes of the header segment, fd 0 */
    uint64_t channel_size;          /* bytes of the channel segment, fd 1 */
    uint32_t chan_gen;
    uint32_t status;                /* GLM_SETUP_*; not OK: no fds (503) */
} glm_setup;

#define GLM_SETUP_OK           0u
#define GLM_SETUP_NO_CHANNEL   1u     /* all channels taken */
#define GLM_SETUP_PID_HAS_ONE  2u     /* this pid holds a channel already */

_Static_assert(sizeof(glm_seg_header) == 128, "segment header layout");
_Static_assert(sizeof(glm_chan_header) == 256, "channel header layout");
_Static_assert(offsetof(glm_seg_header, heartbeat_ns) % 8 == 0, "heartbeat aligned");
_Static_assert(sizeof(glm_ring_ctl) == 384, "ring control layout");
_Static_assert(offsetof(glm_ring_ctl, tail) == 128, "tail on its own line");
_Static_assert(offsetof(glm_ring_ctl, size) == 256, "size on its own line");
_Static_assert(GLM_CHAN_SUBMIT_OFF + sizeof(glm_ring_ctl) <= GLM_CHAN_OUTPUT_OFF,
               "submit ctl fits");
_Static_assert(GLM_CHAN_OUTPUT_OFF + sizeof(glm_ring_ctl) <= GLM_CHAN_DATA_OFF,
               "output ctl fits");
_Static_assert(sizeof(glm_rec) == 16, "record header layout");
_Static_assert(sizeof(glm_head) == 16 && sizeof(glm_submit) == 16, "payload heads");
_Static_assert(sizeof(glm_hello) == 16 && sizeof(glm_setup) == 48, "handshake");
_Static_assert(__atomic_always_lock_free(sizeof(uint64_t), 0),
               "64-bit atomics must be lock-free to work across processes");

/* A process's view of one ring: control block plus its data buffer. */
typedef struct {
    glm_ring_ctl  *ctl;
    unsigned char *data;
    uint64_t       size;            /* the size this side validated */
} glm_ring;

#define GLM_REC_ALIGN  16u

static inline uint64_t
glm_rec_total(uint32_t payload)
{
    return sizeof(glm_rec) + (((uint64_t) payload + GLM_REC_ALIGN - 1)
                              & ~(uint64_t) (GLM_REC_ALIGN - 1));
}

/* Largest payload one record can carry in a ring of this size. */
static inline uint32_t
glm_ring_max_payload(const glm_ring *r)
{
    return (uint32_t) (r->size / 2 - sizeof(glm_rec));
}

static inline void
glm_ring_attach(glm_ring *r, void *chan_base, int output, uint64_t submit_size,
    uint64_t output_size)
{
    unsigned char *base = chan_base;

    r->ctl = (glm_ring_ctl *) (base + (output ? GLM_CHAN_OUTPUT_OFF : GLM_CHAN_SUBMIT_OFF));
    r->data = base + GLM_CHAN_DATA_OFF + (output ? submit_size : 0);
    r->size = output ? output_size : submit_size;
}

/* Engine only, before handing the channel out. */
static inline void
glm_ring_reset(glm_ring *r)
{
    memset(r->ctl, 0, sizeof(*r->ctl));
    r->ctl->size = r->size;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* ---- producer ---------------------------------------------------------- */

/* Room for a record with `payload` bytes?  Writes a PAD record if the record
 * would straddle the end.  Returns a pointer to the payload area or NULL
 * when the ring is full (try again after the consumer drains). */
static inline void *
glm_ring_reserve(glm_ring *r, uint32_t payload)
{
    uint64_t need = glm_rec_total(payload);
    uint64_t tail = r->ctl->tail;                       /* ours */
    uint64_t head = __atomic_load_n(&r->ctl->head, __ATOMIC_ACQUIRE);
    uint64_t idx = tail & (r->size - 1), to_end = r->size - idx;

    if (need > r->size / 2) {
        return NULL;
    }
    if (need > to_end) {
        glm_rec *pad;

        if (tail + to_end + need - head > r->size) {
            return NULL;
        }
        pad = (glm_rec *) (r->data + idx);
        pad->len = (uint32_t) (to_end - sizeof(glm_rec));
        pad->type = GLM_REC_PAD;
        pad->flags = 0;
        pad->slot = pad->gen = 0;
        tail += to_end;
        __atomic_store_n(&r->ctl->tail, tail, __ATOMIC_RELEASE);
        idx = 0;
    } else if (tail + need - head > r->size) {
        return NULL;
    }
    return r->data + idx + sizeof(glm_rec);
}

/* Publishes the record reserved last.  Returns 1 when the consumer may be
 * asleep and a doorbell must be sent. */
static inline int
glm_ring_commit(glm_ring *r, uint16_t type, uint16_t flags, uint32_t slot,
    uint32_t gen, uint32_t payload)
{
    uint64_t tail = r->ctl->tail;
    glm_rec *rec = (glm_rec *) (r->data + (tail & (r->size - 1)));
    uint32_t one = 1;

    rec->len = payload;
    rec->type = type;
    rec->flags = flags;
    rec->slot = slot;
    rec->gen = gen;
    __atomic_store_n(&r->ctl->tail, tail + glm_rec_total(payload), __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (__atomic_load_n(&r->ctl->waiting, __ATOMIC_RELAXED) == 0) {
        return 0;
    }
    return __atomic_compare_exchange_n(&r->ctl->waiting, &one, 0, 0,
                                       __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

/* reserve + copy + commit for a small record; -1 when full */
static inline int
glm_ring_put(glm_ring *r, uint16_t type, uint16_t flags, uint32_t slot,
    uint32_t gen, const void *payload, uint32_t len, int *ring_bell)
{
    void *p = glm_ring_reserve(r, len);

    if (p == NULL) {
        return -1;
    }
    if (len) {
        memcpy(p, payload, len);
    }
    *ring_bell |= glm_ring_commit(r, type, flags, slot, gen, len);
    return 0;
}

/* ---- consumer ---------------------------------------------------------- */

/* The next record, or NULL when empty.  PAD records are skipped.  Sets *bad
 * when the producer wrote something impossible (treat as a dead peer). */
static inline const glm_rec *
glm_ring_peek(glm_ring *r, int *bad)
{
    uint64_t head, tail, idx, total;
    const glm_rec *rec;

    for ( ;; ) {
        head = r->ctl->head;                            /* ours */
        tail = __atomic_load_n(&r->ctl->tail, __ATOMIC_ACQUIRE);
        if (head == tail) {
            return NULL;
        }
        idx = head & (r->size - 1);
        if (tail - head > r->size || (head & (GLM_REC_ALIGN - 1)) != 0
            || r->size - idx < sizeof(glm_rec))
        {
            *bad = 1;
            return NULL;
        }
        rec = (const glm_rec *) (r->data + idx);
        total = glm_rec_total(rec->len);
        if (total > r->size - idx || total > tail - head) {
            *bad = 1;
            return NULL;
        }
        if (rec->type != GLM_REC_PAD) {
            return rec;
        }
        __atomic_store_n(&r->ctl->head, head + total, __ATOMIC_RELEASE);
    }
}

static inline const void *
glm_rec_payload(const glm_rec *rec)
{
    return (const unsigned char *) rec + sizeof(glm_rec);
}

/* Consumes the record returned by the last peek. */
static inline void
glm_ring_release(glm_ring *r, const glm_rec *rec)
{
    __atomic_store_n(&r->ctl->head, r->ctl->head + glm_rec_total(rec->len),
                     __ATOMIC_RELEASE);
}

/* Call before sleeping.  Returns 1 when the ring is (now) non-empty and the
 * caller must drain instead of sleeping. */
static inline int
glm_ring_prepare_wait(glm_ring *r)
{
    __atomic_store_n(&r->ctl->waiting, 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (__atomic_load_n(&r->ctl->tail, __ATOMIC_ACQUIRE) != r->ctl->head) {
        __atomic_store_n(&r->ctl->waiting, 0, __ATOMIC_RELAXED);
        return 1;
    }
    return 0;
}

/* Bytes the consumer has not taken yet (for backpressure decisions). */
static inline uint64_t
glm_ring_used(const glm_ring *r)
{
    return __atomic_load_n(&r->ctl->tail, __ATOMIC_ACQUIRE)
           - __atomic_load_n(&r->ctl->head, __ATOMIC_ACQUIRE);
}

#endif
