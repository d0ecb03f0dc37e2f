/*
 * backend_cuda.cu: the CUDA backend: backend.h's op table over device
 * memory, on top of the kernels in this directory (engine/backend/backend_cuda.h
 * states the contract).
 *
 * Why here and not in engine/: it is CUDA C++ (cuBLASLt, kernel launches),
 * compiled by nvcc with the kernels; engine/ stays C11 compiled by gcc, so
 * machines without nvcc build and test everything else unchanged and link
 * engine/backend/backend_cuda_stub.c instead.
 *
 * What this file does on the host, per op:
 * - weights: a byte copy of each tensor as stored (FP8 with its scale
 *   tensor, BF16, fp32), uploaded at start-up through pinned staging
 *   (glm_backend_cuda_upload_weights), which binds each copy to its
 *   glm_tensor (glm_tensor.dev): an op reads the pointer, no lookup.  A
 *   tensor the upload did not see (a view copied from a bound one, the
 *   tests' own tensors) is found or made on first use in an open-
 *   addressing table keyed by the tensor's host data address, checked by
 *   size, dtype, format and a fingerprint of its first and last 32 bytes
 *   (so a checkpoint reopened at the same address is not served stale
 *   weights).  A tensor that is a slice of one already on the device (the
 *   vision tower's q/k/v rows of one qkv weight) aliases it after its bytes
 *   are compared on both sides.
 * - metadata: the host arrays backend.h passes (ids, rope positions, the
 *   attention batch, segment bounds) are packed into one buffer per kind,
 *   compared with the previous upload of that kind, and uploaded only when
 *   they changed: every layer of a step reuses the first layer's copy.
 *   Packing is also where positions are checked against block tables (the
 *   CPU backend's internal-error aborts, done before any kernel runs).
 *   Pinned staging plus an event per kind: a staging buffer is rewritten
 *   only after its previous copy has left.
 * - scratch: grow-only device buffers per purpose, freed and reallocated
 *   stream-ordered (cudaFreeAsync/cudaMallocAsync), so no host sync.
 * Host syncs inside a step: upload()/download() (their contract), the
 * sampling op's one download of the chosen ids (and logprobs), first use
 * of a weight (and of a MoE layer's expert table).  The MoE op runs
 * routing, alignment, the grouped expert GEMMs and the combine on the
 * device: nothing in it waits for the GPU.
 *
 * - activations are BF16 (glm_act), the KV cache fp32/BF16/FP8 (the pool's
 *   dtype); backend.h's act_dtype/act_size tell the model.
 *
 * - decode graphs: a decode step's layers captured once per padded batch
 *   size and replayed (the section "decode graphs" at the end says how);
 *   the metadata of such a step goes to fixed buffers instead.
 *
 * Not yet (in this order of need): sizing memory up front
 * (--gpu-memory-utilization; graphs are captured lazily per size today),
 * tensor-core prefill attention and a tensor-core body for the grouped
 * expert GEMM.  Done: q/k/v as one GEMM and norm+RoPE+cache write
 * (matmul_qkv, attn_prep), residual+norm and gate+up+SwiGLU as ops,
 * cuBLASLt's scaled FP8 GEMM with FP8 activations, the MoE op without a
 * host sync (grouped expert GEMMs), sampling on the GPU, decode graphs.
 */
extern "C" {
#include "backend/backend.h"
#include "backend/backend_cuda.h"
#include "model/quant.h"
#include "model/safetensors.h"
#include "util/util.h"
}

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "add.cuh"
#include "attention_decode.cuh"
#include "attention_prefill.cuh"
#include "attention_segments.cuh"
#include "attention_tile.cuh"
#include "attn_prep.cuh"
#include "common.cuh"
#include "embed.cuh"
#include "gelu.cuh"
#include "gate_up_swiglu.cuh"
#include "gemm.cuh"
#include "gather_rows.cuh"
#include "group_transpose.cuh"
#include "kv_store.cuh"
#include "layernorm.cuh"
#include "moe_align.cuh"
#include "moe_combine.cuh"
#include "moe_experts.cuh"
#include "moe_route.cuh"
#include "qkv_split.cuh"
#include "quant_act.cuh"
#include "rmsnorm.cuh"
#include "rope.cuh"
#include "sample.cuh"
#include "swiglu.cuh"

/* decode attention: the cap on split partials */
#define GLM_MAX_PARTIAL_FLOATS ((size_t) 64 << 20)

/* ---- state ----------------------------------------------------------------- */

typedef struct {
    const void *host;           /* tensor data in the checkpoint mapping */
    size_t      nbytes;
    int         dtype;          /* glm_dtype as stored */
    int         fmt;            /* GLM_WFMT_* on the device */
    uint64_t    fp;             /* fingerprint of the host bytes */
    void       *dev;
    size_t      dev_bytes;
    int         owner;          /* 0: an alias into another entry's copy */
} glm_wentry;

enum {
    GLM_META_IDS = 0,
    GLM_META_ROPE,
    GLM_META_ATTN,
    GLM_META_SEG,
    GLM_META_ROWS,              /* gather_rows' row ids */
    GLM_META_N
};

typedef struct {
    void        *dev;
    char        *host;          /* pinned: the bytes last uploaded */
    size_t       cap, len;
    cudaEvent_t  copied;
    int          has_event;
} glm_meta;

enum {
    GLM_SCR_ATTN_PARTIAL = 0,
    GLM_SCR_MOE_IDX, GLM_SCR_MOE_W, GLM_SCR_MOE_PLAN, GLM_SCR_MOE_H, GLM_SCR_MOE_Y,
    GLM_SCR_ATTN_COUNTER, GLM_SCR_QKV,
    GLM_SCR_SMP_WORK, GLM_SCR_SMP_IN, GLM_SCR_SMP_OUT,     /* sample */
    GLM_SCR_GATE_UP,
    GLM_SCR_N
};

/* the attention batch as packed for the device (int32 units) */
typedef struct {
    int n_tokens, n_seqs, block_size, pool_blocks;
    int n_dec, n_tiles, max_len_dec;
    size_t off_seq, off_pos, off_block_off, off_blocks, off_dec, off_tiles, off_slot;
} glm_attn_layout;

/* One MoE layer's expert table on the device (the grouped GEMMs' weight
 * and scale pointers), built at the layer's first use from the tensors'
 * bound device copies and kept: nothing is uploaded per step.  Keyed by the
 * layer's glm_moe_weights and what it points to; a release of the weights
 * (a new gen) makes every table stale. */
typedef struct {
    const glm_moe_weights *m;
    uint64_t               gen;
    const void            *gate, *up, *down, *sgate, *sup, *sdown;
    int                    n_experts, hidden, inter;
    glm_moe_expert        *dev;         /* [n_experts + 1], the shared expert last */
} glm_moe_table;

typedef struct {
    glm_backend     be;                 /* first: the op table */
    int             device;
    int             n_sms;              /* the decode attention's split count reads it */
    cudaStream_t    stream;
    glm_cuda_gemm  *gemm;

    uint64_t        gen;                /* this upload's mark on the tensors it
                                           bound (glm_tensor.dev), unique */
    glm_wentry     *wtab;               /* open addressing, power-of-two size */
    size_t          wcap, wcount;
    size_t          weight_bytes;

    glm_meta        meta[GLM_META_N];
    int32_t        *pack;               /* host scratch for packing metadata */
    size_t          pack_cap;           /* int32 elements */
    glm_attn_layout attn;               /* layout of meta[GLM_META_ATTN] */

    void           *scr[GLM_SCR_N];
    size_t          scr_cap[GLM_SCR_N];
    int             group_member;       /* a rank of a group: tensors are shared
                                           with other ranks' threads, never bound
                                           (glm_backend_cuda_group_member) */
    glm_moe_table  *moe_tabs;           /* one per MoE layer seen */
    int             n_moe_tabs, cap_moe_tabs;

    /* sample: pinned staging for the rows' parameters and the results; each
     * call ends with its one sync, so the next may rewrite them */
    char           *smp_in_host;
    size_t          smp_in_cap;
    glm_sample_out *smp_out_host;
    size_t          smp_out_cap;        /* rows */

    struct glm_graphs *graphs;          /* decode graphs (their section) */
    const void     *attn_dev;           /* the packed attention batch on the device */
} glm_cuda;

/* a global sequence, so a backend created at a freed one's address never
 * mistakes the old one's bindings for its own */
static uint64_t glm_cu_gen_next = 1;

static glm_cuda *
glm_cu(glm_backend *be)
{
    return (glm_cuda *) be;
}

/* an internal error: the model or scheduler broke a contract of backend.h */
static void
glm_cu_bug(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
glm_cu_bug(const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "glm-engine: internal error: %s\n", msg);
    abort();
}

/* ---- scratch and metadata ------------------------------------------------- */

/* decode graphs (their section, at the end): fixed-mode metadata, and the
 * ops' way to say that what they are asked cannot be captured */
static const void *glm_graph_meta(glm_cuda *c, int slot, const void *host, size_t len);
static int glm_graph_attn(glm_cuda *c, const glm_kv_pool *kv, const glm_attn_batch *b);
static int glm_graph_deny(glm_cuda *c, const char *why);
static void glm_graphs_init(glm_cuda *c);
static void glm_graphs_free(glm_cuda *c);

static void *
glm_scratch(glm_cuda *c, int slot, size_t bytes)
{
    if (bytes > c->scr_cap[slot]) {
        if (glm_graph_deny(c, "a scratch buffer would grow")) {
            return c->scr[slot];        /* recorded, never run: the capture is dropped */
        }
        glm_cuda_scratch_moves++;
        if (c->scr[slot] != NULL) {
            GLM_CUDA_CHECK(cudaFreeAsync(c->scr[slot], c->stream));
        }
        bytes += bytes / 4;
        if (cudaMallocAsync(&c->scr[slot], bytes, c->stream) != cudaSuccess) {
            (void) cudaGetLastError();
            /* TODO(memory): size scratch up front from the batch limits */
            fprintf(stderr, "glm-engine: CUDA backend: out of GPU memory for %zu bytes"
                    " of scratch\n", bytes);
            abort();
        }
        c->scr_cap[slot] = bytes;
    }
    return c->scr[slot];
}

/* glm_scratch whose new bytes are zero: counters that kernels leave at zero
 * when they finish (the decode attention's tickets) */
static void *
glm_scratch_zeroed(glm_cuda *c, int slot, size_t bytes)
{
    size_t had = c->scr_cap[slot];
    void *p = glm_scratch(c, slot, bytes);

    if (c->scr_cap[slot] != had) {
        GLM_CUDA_CHECK(cudaMemsetAsync(p, 0, c->scr_cap[slot], c->stream));
    }
    return p;
}

static int32_t *
glm_pack_reserve(glm_cuda *c, size_t n)
{
    if (n > c->pack_cap) {
        int32_t *p = (int32_t *) realloc(c->pack, (n + n / 2) * sizeof(int32_t));
        if (p == NULL) {
            fprintf(stderr, "glm-engine: out of memory packing %zu metadata ints\n", n);
            abort();
        }
        c->pack = p;
        c->pack_cap = n + n / 2;
    }
    return c->pack;
}

/* The device copy of bytes [host, host + len) for metadata `slot`: uploaded
 * only when it differs from the slot's previous upload. */
static const void *
glm_meta_put(glm_cuda *c, int slot, const void *host, size_t len)
{
    glm_meta *m = &c->meta[slot];
    const void *fixed = glm_graph_meta(c, slot, host, len);

    if (fixed != NULL) {
        return fixed;                   /* a graph step: staged before the layers */
    }
    if (m->dev != NULL && m->len == len && memcmp(m->host, host, len) == 0) {
        return m->dev;
    }
    if (m->has_event) {
        /* the staging buffer is about to be rewritten: its last copy must be done */
        GLM_CUDA_CHECK(cudaEventSynchronize(m->copied));
    } else {
        GLM_CUDA_CHECK(cudaEventCreateWithFlags(&m->copied, cudaEventDisableTiming));
        m->has_event = 1;
    }
    if (len > m->cap || m->dev == NULL) {
        size_t cap = len + len / 2 + 256;
        if (m->dev != NULL) {
            GLM_CUDA_CHECK(cudaFreeAsync(m->dev, c->stream));
            GLM_CUDA_CHECK(cudaFreeHost(m->host));
        }
        GLM_CUDA_CHECK(cudaMallocAsync(&m->dev, cap, c->stream));
        GLM_CUDA_CHECK(cudaMallocHost((void **) &m->host, cap));
        m->cap = cap;
    }
    memcpy(m->host, host, len);
    m->len = len;
    if (len > 0) {
        GLM_CUDA_CHECK(cudaMemcpyAsync(m->dev, m->host, len, cudaMemcpyHostToDevice,
                                       c->stream));
    }
    GLM_CUDA_CHECK(cudaEventRecord(m->copied, c->stream));
    return m->dev;
}

/* ---- weights ---------------------------------------------------------------- */

static uint64_t
glm_fingerprint(const void *p, size_t n)
{
    const unsigned char *b = (const unsigned char *) p;
    uint64_t h = 1469598103934665603ull ^ n;
    size_t i, head = n < 32 ? n : 32, tail = n < 64 ? n - head : 32;

    for (i = 0; i < head; i++) {
        h = (h ^ b[i]) * 1099511628211ull;
    }
    for (i = n - tail; i < n; i++) {
        h = (h ^ b[i]) * 1099511628211ull;
    }
    return h;
}

static size_t
glm_wslot(const glm_cuda *c, const void *host)
{
    uint64_t h = (uint64_t) (uintptr_t) host;

    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (size_t) h & (c->wcap - 1);
}

static void
glm_wtab_grow(glm_cuda *c)
{
    glm_wentry *old = c->wtab;
    size_t old_cap = c->wcap, i;

    c->wcap = old_cap ? old_cap * 2 : 1024;
    c->wtab = (glm_wentry *) calloc(c->wcap, sizeof(glm_wentry));
    if (c->wtab == NULL) {
        fprintf(stderr, "glm-engine: out of memory for the weight table\n");
        abort();
    }
    for (i = 0; i < old_cap; i++) {
        if (old[i].host != NULL) {
            size_t s = glm_wslot(c, old[i].host);
            while (c->wtab[s].host != NULL) {
                s = (s + 1) & (c->wcap - 1);
            }
            c->wtab[s] = old[i];
        }
    }
    free(old);
}

/* The device format of t: its stored dtype, always (no weight is widened
 * in device memory); -1 for a dtype no kernel reads. */
static int
glm_wfmt_for(const glm_tensor *t)
{
    switch (t->dtype) {
    case GLM_DTYPE_F32:
        return GLM_WFMT_F32;
    case GLM_DTYPE_BF16:
        return GLM_WFMT_BF16;
    case GLM_DTYPE_F16:
        return GLM_WFMT_F16;
    case GLM_DTYPE_F8_E4M3:
        return GLM_WFMT_FP8;
    default:
        return -1;
    }
}

/* Copies t's stored bytes to new device memory; 0, or -1 with err. */
static int
glm_weight_copy(glm_cuda *c, const glm_tensor *t, int fmt, void **dev, size_t *dev_bytes,
    glm_err *err)
{
    size_t bytes = t->nbytes;
    cudaError_t e;

    e = cudaMalloc(dev, bytes ? bytes : 4);
    if (e != cudaSuccess) {
        size_t fr = 0, tot = 0;
        (void) cudaGetLastError();
        cudaMemGetInfo(&fr, &tot);
        return glm_errf(err, "out of GPU memory for weight '%s' (%.1f MiB; %.1f GiB of"
                        " weights already on the device, %.1f GiB free of %.1f GiB):"
                        " the model does not fit this GPU",
                        t->name ? t->name : "?", bytes / 1048576.0,
                        c->weight_bytes / 1073741824.0, fr / 1073741824.0,
                        tot / 1073741824.0);
    }
    if (bytes > 0) {
        GLM_CUDA_CHECK(cudaMemcpyAsync(*dev, t->data, bytes, cudaMemcpyHostToDevice,
                                       c->stream));
        GLM_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    }
    *dev_bytes = bytes;
    return 0;
}

/* An existing device copy that contains t's bytes unchanged (t a slice of a
 * tensor already uploaded in its stored dtype), verified by comparing the
 * slice's first and last bytes on both sides; NULL if none. */
static void *
glm_weight_alias(glm_cuda *c, const glm_tensor *t, int fmt)
{
    const char *lo = (const char *) t->data, *hi = lo + t->nbytes;
    size_t i;

    for (i = 0; i < c->wcap; i++) {
        const glm_wentry *e = &c->wtab[i];
        const char *elo = (const char *) e->host;
        unsigned char a[64], b[64];
        size_t n, off;
        char *dev;

        if (e->host == NULL || !e->owner || e->dev == NULL || e->fmt != fmt
            || e->dtype != (int) t->dtype || lo < elo || hi > elo + e->nbytes)
        {
            continue;
        }
        off = (size_t) (lo - elo);
        dev = (char *) e->dev + off;
        n = t->nbytes < 32 ? t->nbytes : 32;
        GLM_CUDA_CHECK(cudaMemcpyAsync(a, dev, n, cudaMemcpyDeviceToHost, c->stream));
        GLM_CUDA_CHECK(cudaMemcpyAsync(a + 32, dev + t->nbytes - n, n,
                                       cudaMemcpyDeviceToHost, c->stream));
        GLM_CUDA_CHECK(cudaStreamSynchronize(c->stream));
        memcpy(b, lo, n);
        memcpy(b + 32, hi - n, n);
        if (memcmp(a, b, n) == 0 && memcmp(a + 32, b + 32, n) == 0) {
            return dev;
        }
    }
    return NULL;
}

/* The device copy of t in format fmt, made on first use; NULL with err
 * when the GPU has no room for it. */
static glm_wentry *
glm_weight_entry(glm_cuda *c, const glm_tensor *t, int fmt, glm_err *err)
{
    uint64_t fp = glm_fingerprint(t->data, t->nbytes);
    glm_wentry *e;
    size_t s;

    if (c->wcap == 0 || (c->wcount + 1) * 2 > c->wcap) {
        glm_wtab_grow(c);
    }
    for (s = glm_wslot(c, t->data); c->wtab[s].host != NULL; s = (s + 1) & (c->wcap - 1)) {
        e = &c->wtab[s];
        if (e->host == t->data && e->nbytes == t->nbytes && e->dtype == (int) t->dtype
            && e->fmt == fmt)
        {
            if (e->fp == fp) {
                return e;
            }
            /* same address, other bytes: a checkpoint reopened where an old
             * one was mapped; replace the stale copy in place */
            if (e->owner) {
                GLM_CUDA_CHECK(cudaStreamSynchronize(c->stream));
                GLM_CUDA_CHECK(cudaFree(e->dev));
                c->weight_bytes -= e->dev_bytes;
            }
            e->owner = 0;
            e->dev = NULL;
            if (glm_weight_copy(c, t, fmt, &e->dev, &e->dev_bytes, err) != 0) {
                e->fp = 0;          /* no copy: the next lookup tries again */
                return NULL;
            }
            e->owner = 1;
            e->fp = fp;
            c->weight_bytes += e->dev_bytes;
            return e;
        }
    }
    e = &c->wtab[s];
    memset(e, 0, sizeof(*e));
    e->dev = glm_weight_alias(c, t, fmt);
    if (e->dev == NULL) {
        if (glm_weight_copy(c, t, fmt, &e->dev, &e->dev_bytes, err) != 0) {
            return NULL;
        }
        e->owner = 1;
        c->weight_bytes += e->dev_bytes;
    }
    e->host = t->data;
    e->nbytes = t->nbytes;
    e->dtype = (int) t->dtype;
    e->fmt = fmt;
    e->fp = fp;
    c->wcount++;
    return e;
}

static void
glm_tensor_bind(glm_cuda *c, glm_tensor *t, void *dev)
{
    if (c->group_member) {
        /* the other ranks' threads read this struct: the table only */
        return;
    }
    t->dev.ptr = dev;
    t->dev.host = t->data;
    t->dev.nbytes = t->nbytes;
    t->dev.gen = c->gen;
}

/* For the ops: the device copy, or a clear stop (ops cannot fail). */
static const void *
glm_weight(glm_cuda *c, const glm_tensor *t, int *fmt_out)
{
    int fmt = glm_wfmt_for(t);
    glm_wentry *e;
    glm_err err;

    if (fmt < 0) {
        glm_cu_bug("weight '%s' is %s, a dtype no kernel reads", t->name ? t->name : "?",
                   glm_dtype_name(t->dtype));
    }
    if (fmt_out != NULL) {
        *fmt_out = fmt;
    }
    if (t->dev.ptr != NULL && t->dev.gen == c->gen && t->dev.host == t->data
        && t->dev.nbytes == t->nbytes)
    {
        return t->dev.ptr;          /* bound at upload: no lookup */
    }
    if (glm_graph_deny(c, "a weight not yet on the device (first use copies and waits)")) {
        return NULL;                /* recorded, never run: the capture is dropped */
    }
    /* tensors the upload did not see (views made from a bound tensor,
     * tests' own tensors): the table, keyed by host address */
    e = glm_weight_entry(c, t, fmt, &err);
    if (e == NULL) {
        fprintf(stderr, "glm-engine: CUDA backend: %s\n", err.msg);
        abort();
    }
    /* and bound, so the next op reads the pointer: the binding is a cache
     * in the tensor (its objects are never const; the ops' view of them is) */
    glm_tensor_bind(c, (glm_tensor *) t, e->dev);
    return e->dev;
}

/* a 1-D parameter as stored (a float dtype, *fmt says which): at least n
 * elements or it is a bug */
static const void *
glm_vec(glm_cuda *c, const glm_tensor *t, int64_t n, const char *what, int *fmt)
{
    const void *d;

    if (t->numel < n) {
        glm_cu_bug("%s '%s' has %lld elements, the op needs %lld", what,
                   t->name ? t->name : "?", (long long) t->numel, (long long) n);
    }
    d = glm_weight(c, t, fmt);
    if (*fmt == GLM_WFMT_FP8) {
        glm_cu_bug("%s '%s' is FP8 without a scale", what, t->name ? t->name : "?");
    }
    return d;
}

/* A 2-D weight as the GEMM reads it: the stored bytes, and for FP8 the
 * stored scale with how it covers the weight (safetensors.h's fields). */
static glm_cuda_weight
glm_weight_desc(glm_cuda *c, const glm_tensor *w)
{
    glm_cuda_weight d;

    memset(&d, 0, sizeof(d));
    d.w = glm_weight(c, w, &d.fmt);
    if (d.fmt != GLM_WFMT_FP8 || w->scale == NULL || w->scale_strategy == GLM_SCALE_NONE) {
        return d;
    }
    d.scale = glm_weight(c, w->scale, &d.scale_fmt);
    if (d.scale_fmt != GLM_WFMT_F32 && d.scale_fmt != GLM_WFMT_BF16) {
        glm_cu_bug("scale of '%s' is %s", w->name, glm_dtype_name(w->scale->dtype));
    }
    d.round_bf16 = d.scale_fmt == GLM_WFMT_BF16 && !w->scale_exact;
    d.scale_row0 = w->scale_row0;
    d.scale_col0 = w->scale_col0;
    switch (w->scale_strategy) {
    case GLM_SCALE_TENSOR:
        d.strategy = GLM_WSCALE_TENSOR;
        break;
    case GLM_SCALE_CHANNEL:
        d.strategy = GLM_WSCALE_CHANNEL;
        break;
    default:
        d.strategy = GLM_WSCALE_BLOCK;
        if (w->block[0] < 1 || w->block[1] < 1 || w->scale->ndim != 2) {
            glm_cu_bug("block scale of '%s' is not 2-D over positive blocks", w->name);
        }
        d.block_rows = (int) w->block[0];
        d.block_cols = (int) w->block[1];
        d.scale_cols = (int) w->scale->shape[1];
        break;
    }
    return d;
}

static const char *
glm_scale_strategy_name_cu(int st)
{
    return glm_scale_strategy_name((glm_scale_strategy) st);
}

/* ---- memory ops ---------------------------------------------------------------- */

static void *
glm_cu_alloc(glm_backend *be, size_t bytes)
{
    glm_cuda *c = glm_cu(be);
    void *p = NULL;

    if (bytes == 0) {
        bytes = 1;
    }
    if (cudaMallocAsync(&p, bytes, c->stream) != cudaSuccess) {
        (void) cudaGetLastError();
        return NULL;
    }
    /* zeroed, as the CPU backend's calloc */
    GLM_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, c->stream));
    return p;
}

static void
glm_cu_free(glm_backend *be, void *p)
{
    if (p != NULL) {
        GLM_CUDA_CHECK(cudaFreeAsync(p, glm_cu(be)->stream));
    }
}

static void
glm_cu_copy(glm_backend *be, void *dst, const void *src, size_t bytes)
{
    glm_cuda *c = glm_cu(be);

    if (bytes == 0 || glm_graph_deny(c, "a copy that waits for the device (upload/download)")) {
        return;
    }
    GLM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, c->stream));
    GLM_CUDA_CHECK(cudaStreamSynchronize(c->stream));
}

/* ---- dense ops ---------------------------------------------------------------- */

/* host fp32 <-> BF16 activations: converted on the host (activations, not
 * weights: the vision features and pixels in, the vision features out) */
static void
glm_cu_upload_act(glm_backend *be, void *dst, const float *src, size_t n)
{
    glm_cuda *c = glm_cu(be);
    uint16_t *h;
    size_t i;

    if (n == 0 || glm_graph_deny(c, "an activation copy from or to the host")) {
        return;
    }
    h = (uint16_t *) malloc(n * sizeof(uint16_t));
    if (h == NULL) {
        fprintf(stderr, "glm-engine: out of memory converting %zu activations\n", n);
        abort();
    }
    for (i = 0; i < n; i++) {
        h[i] = glm_f32_to_bf16(src[i]);
    }
    GLM_CUDA_CHECK(cudaMemcpyAsync(dst, h, n * sizeof(uint16_t), cudaMemcpyHostToDevice,
                                   c->stream));
    GLM_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    free(h);
}

static void
glm_cu_download_act(glm_backend *be, float *dst, const void *src, size_t n)
{
    glm_cuda *c = glm_cu(be);
    uint16_t *h;
    size_t i;

    if (n == 0 || glm_graph_deny(c, "an activation copy from or to the host")) {
        return;
    }
    h = (uint16_t *) malloc(n * sizeof(uint16_t));
    if (h == NULL) {
        fprintf(stderr, "glm-engine: out of memory converting %zu activations\n", n);
        abort();
    }
    GLM_CUDA_CHECK(cudaMemcpyAsync(h, src, n * sizeof(uint16_t), cudaMemcpyDeviceToHost,
                                   c->stream));
    GLM_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    for (i = 0; i < n; i++) {
        dst[i] = glm_bf16_to_f32(h[i]);
    }
    free(h);
}

static void
glm_cu_embed(glm_backend *be, void *out, const int32_t *ids, int n,
    const glm_tensor *table)
{
    glm_cuda *c = glm_cu(be);
    const void *w;
    const int32_t *d_ids;
    int fmt;

    if (n <= 0) {
        return;
    }
    if (table->ndim != 2) {
        glm_cu_bug("embed: table '%s' is not 2-D", table->name);
    }
    w = glm_weight(c, table, &fmt);
    if (fmt == GLM_WFMT_FP8) {
        glm_cu_bug("embed: table '%s' is FP8", table->name);
    }
    d_ids = (const int32_t *) glm_meta_put(c, GLM_META_IDS, ids, (size_t) n * sizeof(int32_t));
    glm_cuda_embed(c->stream, (glm_act *) out, d_ids, n, w, fmt, table->shape[0],
                   table->shape[1]);
}

static void
glm_cu_rmsnorm(glm_backend *be, void *out, const void *x, const glm_tensor *w,
    int rows, int dim, float eps)
{
    glm_cuda *c = glm_cu(be);
    const void *wd;
    int fmt;

    if (rows <= 0) {
        return;
    }
    wd = glm_vec(c, w, dim, "rmsnorm weight", &fmt);
    glm_cuda_rmsnorm(c->stream, (glm_act *) out, (const glm_act *) x, wd, fmt, rows, dim, eps);
}

static void
glm_cu_gemm(glm_backend *be, void *out, int out_f32, const void *x, int rows,
    const glm_tensor *w, const glm_tensor *bias)
{
    glm_cuda *c = glm_cu(be);
    const void *b = NULL;
    glm_cuda_weight wd;
    int bfmt = GLM_WFMT_F32;

    if (rows <= 0) {
        return;
    }
    if (w->ndim != 2 || w->shape[0] > INT32_MAX || w->shape[1] > INT32_MAX) {
        glm_cu_bug("matmul: weight '%s' is not a 2-D matrix of int-sized sides", w->name);
    }
    wd = glm_weight_desc(c, w);
    if (bias != NULL) {
        b = glm_vec(c, bias, w->shape[0], "matmul bias", &bfmt);
    }
    glm_cuda_gemm_run(c->gemm, out, out_f32, (const glm_act *) x, rows, &wd,
                      (int) w->shape[0], (int) w->shape[1], b, bfmt);
}

static void
glm_cu_matmul(glm_backend *be, void *out, const void *x, int rows, const glm_tensor *w,
    const glm_tensor *bias)
{
    glm_cu_gemm(be, out, 0, x, rows, w, bias);
}

/* fp32 out: the logits */
static void
glm_cu_matmul_f32(glm_backend *be, float *out, const void *x, int rows,
    const glm_tensor *w, const glm_tensor *bias)
{
    glm_cu_gemm(be, out, 1, x, rows, w, bias);
}

/*
 * One GEMM for q, k and v where the three weights lie side by side on the
 * device (glm_backend_cuda_upload_weights places a layer's q/k/v_proj so)
 * in one format that is a plain matrix (not FP8: its scales are per
 * tensor), sharing K: together they are one [Nq + Nk + Nv, K] weight.  fp32
 * sums into scratch, then qkv_split adds the biases and rounds into q, k,
 * v.  Otherwise three matmuls.
 */
static void
glm_cu_matmul_qkv(glm_backend *be, void *q, void *k, void *v, const void *x, int rows,
    const glm_tensor *wq, const glm_tensor *wk, const glm_tensor *wv, const glm_tensor *bq,
    const glm_tensor *bk, const glm_tensor *bv)
{
    glm_cuda *c = glm_cu(be);
    const glm_tensor *w[3] = { wq, wk, wv }, *b[3] = { bq, bk, bv };
    glm_cuda_weight wd[3];
    glm_qkv_parts p;
    int i, together = 1, N = 0;
    float *y;

    if (rows <= 0) {
        return;
    }
    for (i = 0; i < 3; i++) {
        if (w[i]->ndim != 2 || w[i]->shape[0] > INT32_MAX || w[i]->shape[1] > INT32_MAX) {
            glm_cu_bug("matmul_qkv: weight '%s' is not a 2-D matrix of int-sized sides",
                       w[i]->name);
        }
        wd[i] = glm_weight_desc(c, w[i]);
        together = together && wd[i].fmt == wd[0].fmt && wd[i].fmt != GLM_WFMT_FP8
                   && w[i]->shape[1] == w[0]->shape[1]
                   && (i == 0 || (const char *) wd[i - 1].w + w[i - 1]->nbytes
                                 == (const char *) wd[i].w);
        N += (int) w[i]->shape[0];
    }
    if (!together) {
        glm_cu_gemm(be, q, 0, x, rows, wq, bq);
        glm_cu_gemm(be, k, 0, x, rows, wk, bk);
        glm_cu_gemm(be, v, 0, x, rows, wv, bv);
        return;
    }
    memset(&p, 0, sizeof(p));
    p.out[0] = (glm_act *) q;
    p.out[1] = (glm_act *) k;
    p.out[2] = (glm_act *) v;
    for (i = 0; i < 3; i++) {
        p.n[i] = (int) w[i]->shape[0];
        p.bias_fmt[i] = GLM_WFMT_F32;
        if (b[i] != NULL) {
            p.bias[i] = glm_vec(c, b[i], w[i]->shape[0], "matmul bias", &p.bias_fmt[i]);
        }
    }
    y = (float *) glm_scratch(c, GLM_SCR_QKV, (size_t) rows * N * sizeof(float));
    glm_cuda_gemm_run(c->gemm, y, 1, (const glm_act *) x, rows, &wd[0], N,
                      (int) wq->shape[1], NULL, GLM_WFMT_F32);
    glm_cuda_qkv_split(c->stream, y, rows, &p);
}

static void
glm_cu_rope(glm_backend *be, void *x, int rows, int heads, int head_dim, int rot_dim,
    const int32_t *pos3, const int *axis_of_freq, const float *inv_freq)
{
    glm_cuda *c = glm_cu(be);
    int n_half = rot_dim / 2, j;
    size_t n = (size_t) rows * 3 + 2 * (size_t) n_half;
    int32_t *p;
    const int32_t *d;

    if (rows <= 0 || n_half <= 0) {
        return;
    }
    if (rot_dim > head_dim) {
        glm_cu_bug("rope: rot_dim %d > head_dim %d", rot_dim, head_dim);
    }
    /* one upload for positions, axes and frequencies: [pos3][axis][inv_freq] */
    p = glm_pack_reserve(c, n);
    memcpy(p, pos3, (size_t) rows * 3 * sizeof(int32_t));
    for (j = 0; j < n_half; j++) {
        if (axis_of_freq[j] < 0 || axis_of_freq[j] > 2) {
            glm_cu_bug("rope: axis_of_freq[%d] = %d", j, axis_of_freq[j]);
        }
        p[(size_t) rows * 3 + j] = axis_of_freq[j];
    }
    memcpy(p + (size_t) rows * 3 + n_half, inv_freq, (size_t) n_half * sizeof(float));
    d = (const int32_t *) glm_meta_put(c, GLM_META_ROPE, p, n * sizeof(int32_t));
    glm_cuda_rope(c->stream, (glm_act *) x, rows, heads, head_dim, rot_dim, d, d + (size_t) rows * 3,
                  (const float *) (d + (size_t) rows * 3 + n_half));
}

static void
glm_cu_swiglu(glm_backend *be, void *out, const void *gate, const void *up, size_t n)
{
    glm_cuda_swiglu(glm_cu(be)->stream, (glm_act *) out, (const glm_act *) gate,
                    (const glm_act *) up, n);
}

static void
glm_cu_add(glm_backend *be, void *x, const void *y, size_t n)
{
    glm_cuda_add(glm_cu(be)->stream, (glm_act *) x, (const glm_act *) y, n);
}

static void
glm_cu_add_rmsnorm(glm_backend *be, void *out, void *x, const void *y, const glm_tensor *w,
    int rows, int dim, float eps)
{
    glm_cuda *c = glm_cu(be);
    const void *wd;
    int fmt;

    if (rows <= 0) {
        return;
    }
    wd = glm_vec(c, w, dim, "rmsnorm weight", &fmt);
    glm_cuda_add_rmsnorm(c->stream, (glm_act *) out, (glm_act *) x, (const glm_act *) y, wd,
                         fmt, rows, dim, eps);
}

/* one launch for decode-sized batches of BF16 weights (gate_up_swiglu.cuh);
 * otherwise the gate and up GEMMs, then SwiGLU, the up half in scratch */
static void
glm_cu_gate_up_swiglu(glm_backend *be, void *out, const void *x, int rows,
    const glm_tensor *gate, const glm_tensor *up)
{
    glm_cuda *c = glm_cu(be);
    size_t n = (size_t) rows * gate->shape[0];
    glm_act *u;

    if (rows <= 0) {
        return;
    }
    if (gate->ndim != 2 || up->ndim != 2 || up->shape[0] != gate->shape[0]
        || up->shape[1] != gate->shape[1] || gate->shape[0] > INT32_MAX
        || gate->shape[1] > INT32_MAX)
    {
        glm_cu_bug("gate_up_swiglu: '%s' and '%s' are not two [N, K] matrices", gate->name,
                   up->name);
    }
    if (rows <= GLM_GATE_UP_ROWS && gate->dtype == GLM_DTYPE_BF16 && up->dtype == GLM_DTYPE_BF16
        && gate->scale == NULL && up->scale == NULL)
    {
        int fg, fu;
        const void *g = glm_weight(c, gate, &fg), *uw = glm_weight(c, up, &fu);
        glm_cuda_gate_up_swiglu(c->stream, (glm_act *) out, (const glm_act *) x, rows,
                                (const __nv_bfloat16 *) g, (const __nv_bfloat16 *) uw,
                                (int) gate->shape[0], (int) gate->shape[1]);
        return;
    }
    u = (glm_act *) glm_scratch(c, GLM_SCR_GATE_UP, n * sizeof(glm_act));
    glm_cu_gemm(be, out, 0, x, rows, gate, NULL);
    glm_cu_gemm(be, u, 0, x, rows, up, NULL);
    glm_cuda_swiglu(c->stream, (glm_act *) out, (const glm_act *) out, u, n);
}

/* ---- attention ------------------------------------------------------------------ */

static size_t
glm_round_up(size_t n, size_t m)
{
    return (n + m - 1) / m * m;
}

/*
 * Packs an attention batch for the device and checks it (the CPU backend's
 * glm_kv_slot checks, done up front):
 *   header [8] | tok_seq [n] | tok_pos [n] | block_off [n_seqs + 1] |
 *   blocks | dec_list [n_dec] | (pad to 4) tiles [4 * n_tiles] |
 *   (pad to 2) slot_row [n] as int64
 * Only the part of each block table the batch reaches is copied.  Tokens in
 * runs of two or more consecutive tokens of one sequence (prefill chunks)
 * become tiles of up to GLM_TILE_Q rows; lone tokens go to the decode kernel.
 */
static void
glm_attn_pack(glm_cuda *c, const glm_kv_pool *kv, const glm_attn_batch *b)
{
    glm_attn_layout L;
    int n = b->n_tokens, i, s;
    size_t total_blocks = 0, size, k;
    int32_t *p, *need;

    if (glm_graph_attn(c, kv, b)) {
        return;                         /* a graph step: the fixed layout, staged */
    }
    memset(&L, 0, sizeof(L));
    L.n_tokens = n;
    L.n_seqs = b->n_seqs;
    L.block_size = kv->block_size;
    L.pool_blocks = kv->n_blocks;
    need = (int32_t *) calloc((size_t) (b->n_seqs > 0 ? b->n_seqs : 1), sizeof(int32_t));
    if (need == NULL) {
        fprintf(stderr, "glm-engine: out of memory packing the attention batch\n");
        abort();
    }
    for (i = 0; i < n; i++) {
        int sq = b->seq[i], pos = b->kv_pos[i], nb;
        if (sq < 0 || sq >= b->n_seqs) {
            glm_cu_bug("attention batch: token %d names sequence %d of %d", i, sq, b->n_seqs);
        }
        if (pos < 0 || pos / kv->block_size >= b->seqs[sq].n_blocks) {
            /* the same words as the CPU backend */
            glm_cu_bug("kv position %d outside its block table (%d blocks)", pos,
                       b->seqs[sq].n_blocks);
        }
        nb = pos / kv->block_size + 1;
        need[sq] = nb > need[sq] ? nb : need[sq];
    }
    for (s = 0; s < b->n_seqs; s++) {
        total_blocks += (size_t) need[s];
    }

    /* lone tokens and tiles */
    for (i = 0; i < n; ) {
        int j = i + 1;
        while (j < n && b->seq[j] == b->seq[i]) {
            j++;
        }
        if (j - i == 1) {
            L.n_dec++;
            L.max_len_dec = b->kv_pos[i] + 1 > L.max_len_dec ? b->kv_pos[i] + 1 : L.max_len_dec;
        } else {
            L.n_tiles += (j - i + GLM_TILE_Q - 1) / GLM_TILE_Q;
        }
        i = j;
    }

    L.off_seq = 8;
    L.off_pos = L.off_seq + (size_t) n;
    L.off_block_off = L.off_pos + (size_t) n;
    L.off_blocks = L.off_block_off + (size_t) b->n_seqs + 1;
    L.off_dec = L.off_blocks + total_blocks;
    L.off_tiles = glm_round_up(L.off_dec + (size_t) L.n_dec, 4);
    L.off_slot = glm_round_up(L.off_tiles + 4 * (size_t) L.n_tiles, 2);
    size = L.off_slot + 2 * (size_t) n;

    p = glm_pack_reserve(c, size);
    memset(p, 0, size * sizeof(int32_t));
    p[0] = n;
    p[1] = b->n_seqs;
    p[2] = kv->block_size;
    p[3] = kv->n_blocks;
    p[4] = L.n_dec;
    p[5] = L.n_tiles;
    p[6] = L.max_len_dec;
    p[7] = (int32_t) total_blocks;
    memcpy(p + L.off_seq, b->seq, (size_t) n * sizeof(int32_t));
    memcpy(p + L.off_pos, b->kv_pos, (size_t) n * sizeof(int32_t));
    k = 0;
    for (s = 0; s < b->n_seqs; s++) {
        int bi;
        p[L.off_block_off + s] = (int32_t) k;
        for (bi = 0; bi < need[s]; bi++) {
            int32_t blk = b->seqs[s].blocks[bi];
            if (blk < 0 || blk >= kv->n_blocks) {
                glm_cu_bug("kv block %d of sequence %d is %d, outside the pool of %d",
                           bi, s, blk, kv->n_blocks);
            }
            p[L.off_blocks + k++] = blk;
        }
    }
    p[L.off_block_off + b->n_seqs] = (int32_t) k;
    {
        int nd = 0, nt = 0;
        for (i = 0; i < n; ) {
            int j = i + 1, t0;
            while (j < n && b->seq[j] == b->seq[i]) {
                j++;
            }
            if (j - i == 1) {
                p[L.off_dec + nd++] = i;
            } else {
                for (t0 = i; t0 < j; t0 += GLM_TILE_Q) {
                    int32_t *tl = p + L.off_tiles + 4 * (size_t) nt++;
                    tl[0] = t0;
                    tl[1] = j - t0 < GLM_TILE_Q ? j - t0 : GLM_TILE_Q;
                    tl[2] = b->seq[i];
                    tl[3] = 0;
                }
            }
            i = j;
        }
    }
    for (i = 0; i < n; i++) {
        int pos = b->kv_pos[i];
        int64_t row = (int64_t) b->seqs[b->seq[i]].blocks[pos / kv->block_size]
                      * kv->block_size + pos % kv->block_size;
        memcpy(p + L.off_slot + 2 * (size_t) i, &row, sizeof(row));
    }
    free(need);
    c->attn_dev = glm_meta_put(c, GLM_META_ATTN, p, size * sizeof(int32_t));
    c->attn = L;
}

/* the pool's dtype for the kernels (GLM_KVT_* share glm_kv_dtype's values) */
static int
glm_kv_dtype_checked(const glm_kv_pool *kv)
{
    switch (kv->dtype) {
    case GLM_KV_F32:
        return GLM_KVT_F32;
    case GLM_KV_BF16:
        return GLM_KVT_BF16;
    case GLM_KV_FP8_E4M3:
        return GLM_KVT_FP8;
    default:
        glm_cu_bug("KV pool dtype %d", (int) kv->dtype);
    }
}

static glm_cuda_paged
glm_paged_view(glm_cuda *c, const glm_kv_pool *kv, int layer)
{
    const int32_t *d = (const int32_t *) c->attn_dev;
    glm_cuda_paged p;

    p.k = kv->k;
    p.v = kv->v;
    p.dtype = glm_kv_dtype_checked(kv);
    p.k_scale = kv->k_scale != NULL ? kv->k_scale[layer] : 1.0f;
    p.v_scale = kv->v_scale != NULL ? kv->v_scale[layer] : 1.0f;
    p.layer_row0 = (int64_t) layer * kv->n_blocks * kv->block_size;
    p.block_size = kv->block_size;
    p.kv_dim = kv->kv_dim;
    p.block_off = d + c->attn.off_block_off;
    p.blocks = d + c->attn.off_blocks;
    return p;
}

static void
glm_cu_kv_store(glm_backend *be, glm_kv_pool *kv, int layer, const void *k,
    const void *v, const glm_attn_batch *b)
{
    glm_cuda *c = glm_cu(be);
    const int32_t *d;

    if (b->n_tokens <= 0) {
        return;
    }
    if (layer < 0 || layer >= kv->n_layers) {
        glm_cu_bug("kv_store: layer %d of %d", layer, kv->n_layers);
    }
    glm_attn_pack(c, kv, b);
    d = (const int32_t *) c->attn_dev;
    glm_cuda_kv_store(c->stream, kv->k, kv->v, glm_kv_dtype_checked(kv),
                      kv->k_scale != NULL ? kv->k_scale[layer] : 1.0f,
                      kv->v_scale != NULL ? kv->v_scale[layer] : 1.0f,
                      (int64_t) layer * kv->n_blocks * kv->block_size,
                      (const int64_t *) (d + c->attn.off_slot), b->n_tokens, kv->kv_dim,
                      (const glm_act *) k, (const glm_act *) v);
}

static void
glm_cu_attn_prep(glm_backend *be, void *q, void *k, const void *v, int heads, int kv_heads,
    int head_dim, const glm_tensor *q_norm, const glm_tensor *k_norm, float eps, int rot_dim,
    const int32_t *pos3, const int *axis_of_freq, const float *inv_freq, glm_kv_pool *kv,
    int layer, const glm_attn_batch *b)
{
    glm_cuda *c = glm_cu(be);
    int T = b->n_tokens, n_half = rot_dim / 2, j;
    size_t n = (size_t) T * 3 + 2 * (size_t) n_half;
    glm_attn_prep_args a;
    const int32_t *d, *dr;
    int32_t *p;

    if (T <= 0) {
        return;
    }
    if (layer < 0 || layer >= kv->n_layers || kv_heads * head_dim != kv->kv_dim
        || rot_dim < 0 || rot_dim > head_dim)
    {
        glm_cu_bug("attn_prep: layer %d of %d, kv_heads %d x head_dim %d vs kv_dim %d,"
                   " rot_dim %d", layer, kv->n_layers, kv_heads, head_dim, kv->kv_dim, rot_dim);
    }
    memset(&a, 0, sizeof(a));
    if (q_norm != NULL) {
        a.q_norm_w = glm_vec(c, q_norm, head_dim, "q_norm weight", &a.q_norm_fmt);
    }
    if (k_norm != NULL) {
        a.k_norm_w = glm_vec(c, k_norm, head_dim, "k_norm weight", &a.k_norm_fmt);
    }
    a.eps = eps;
    a.rot_dim = n_half * 2;
    /* the rope op's metadata: [pos3][axis][inv_freq] */
    p = glm_pack_reserve(c, n);
    memcpy(p, pos3, (size_t) T * 3 * sizeof(int32_t));
    for (j = 0; j < n_half; j++) {
        if (axis_of_freq[j] < 0 || axis_of_freq[j] > 2) {
            glm_cu_bug("attn_prep: axis_of_freq[%d] = %d", j, axis_of_freq[j]);
        }
        p[(size_t) T * 3 + j] = axis_of_freq[j];
    }
    memcpy(p + (size_t) T * 3 + n_half, inv_freq, (size_t) n_half * sizeof(float));
    dr = (const int32_t *) glm_meta_put(c, GLM_META_ROPE, p, n * sizeof(int32_t));
    a.pos3 = dr;
    a.axis_of_freq = dr + (size_t) T * 3;
    a.inv_freq = (const float *) (dr + (size_t) T * 3 + n_half);
    /* the attention batch (the attention op that follows reuses it) */
    glm_attn_pack(c, kv, b);
    d = (const int32_t *) c->attn_dev;     /* a graph step: its fixed buffer */
    a.pool_k = kv->k;
    a.pool_v = kv->v;
    a.kv_dtype = glm_kv_dtype_checked(kv);
    a.k_scale = kv->k_scale != NULL ? kv->k_scale[layer] : 1.0f;
    a.v_scale = kv->v_scale != NULL ? kv->v_scale[layer] : 1.0f;
    a.layer_row0 = (int64_t) layer * kv->n_blocks * kv->block_size;
    a.slot_row = (const int64_t *) (d + c->attn.off_slot);
    glm_cuda_attn_prep(c->stream, (glm_act *) q, (glm_act *) k, (const glm_act *) v, T, heads,
                       kv_heads, head_dim, &a);
}

static void
glm_cu_attention(glm_backend *be, void *out, const void *q, const glm_kv_pool *kv,
    int layer, const glm_attn_batch *b, int heads, int kv_heads, int head_dim,
    float scale)
{
    glm_cuda *c = glm_cu(be);
    const glm_attn_layout *L = &c->attn;
    const int32_t *d;
    glm_cuda_paged pv;

    if (b->n_tokens <= 0) {
        return;
    }
    if (head_dim < 1 || head_dim > GLM_ATTN_MAX_HEAD_DIM || kv_heads < 1
        || heads % kv_heads != 0 || kv_heads * head_dim != kv->kv_dim)
    {
        glm_cu_bug("attention: heads %d, kv_heads %d, head_dim %d, kv_dim %d"
                   " (head_dim <= %d, heads a multiple of kv_heads)", heads, kv_heads,
                   head_dim, kv->kv_dim, GLM_ATTN_MAX_HEAD_DIM);
    }
    if (layer < 0 || layer >= kv->n_layers) {
        glm_cu_bug("attention: layer %d of %d", layer, kv->n_layers);
    }
    glm_attn_pack(c, kv, b);        /* normally the kv_store's copy, unchanged */
    d = (const int32_t *) c->attn_dev;
    pv = glm_paged_view(c, kv, layer);
    if (L->n_tiles > 0) {
        glm_cuda_attention_prefill(c->stream, (glm_act *) out, (const glm_act *) q, pv, (const int4 *) (d + L->off_tiles),
                                   L->n_tiles, d + L->off_pos, heads, kv_heads, head_dim,
                                   scale);
    }
    if (L->n_dec > 0) {
        /* the grid from the batch and the longest context only (a graph
         * captured at a maximum context replays for shorter ones) */
        int n_splits = glm_attn_decode_splits(c->n_sms, L->n_dec, kv_heads, heads / kv_heads,
                                              L->max_len_dec);
        int split_len;
        float *partial = NULL;
        int *counter = NULL;

        while (n_splits > 1 && glm_attn_decode_partial_floats(L->n_dec, heads, kv_heads, head_dim,
                                                              n_splits) > GLM_MAX_PARTIAL_FLOATS)
        {
            n_splits /= 2;
        }
        split_len = (L->max_len_dec + n_splits - 1) / n_splits;
        if (n_splits > 1) {
            partial = (float *) glm_scratch(c, GLM_SCR_ATTN_PARTIAL,
                                            glm_attn_decode_partial_floats(L->n_dec, heads,
                                                kv_heads, head_dim, n_splits) * sizeof(float));
            counter = (int *) glm_scratch_zeroed(c, GLM_SCR_ATTN_COUNTER,
                                                 glm_attn_decode_counters(L->n_dec, heads, kv_heads)
                                                 * sizeof(int));
        }
        glm_cuda_attention_decode(c->stream, (glm_act *) out, (const glm_act *) q, pv, d + L->off_dec, L->n_dec,
                                  d + L->off_seq, d + L->off_pos, heads, kv_heads, head_dim,
                                  scale, split_len, n_splits, partial, counter);
    }
}

/* ---- MoE ------------------------------------------------------------------------ */

static void
glm_moe_tables_free(glm_cuda *c)
{
    int i;

    if (c->n_moe_tabs > 0) {
        GLM_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    }
    for (i = 0; i < c->n_moe_tabs; i++) {
        cudaFree(c->moe_tabs[i].dev);
    }
    c->n_moe_tabs = 0;
}

/* w as the grouped GEMMs read it, checked to be [rows, cols] */
static glm_cuda_weight
glm_moe_weight(glm_cuda *c, const glm_tensor *w, int64_t rows, int64_t cols)
{
    if (w->ndim != 2 || w->shape[0] != rows || w->shape[1] != cols) {
        glm_cu_bug("moe: expert weight '%s' is not [%lld, %lld]", w->name ? w->name : "?",
                   (long long) rows, (long long) cols);
    }
    return glm_weight_desc(c, w);
}

/* The layer's expert table on the device: found, or built once (its first
 * use waits for the copy, as a weight's first use does). */
static const glm_moe_expert *
glm_moe_table_of(glm_cuda *c, const glm_moe_weights *m)
{
    int E = m->n_experts, H = m->hidden, I = m->inter, i, e;
    glm_moe_table *t = NULL;
    glm_moe_expert *host;

    for (i = 0; i < c->n_moe_tabs; i++) {
        t = &c->moe_tabs[i];
        if (t->m == m) {
            if (t->gen == c->gen && t->gate == m->gate && t->up == m->up
                && t->down == m->down && t->sgate == m->shared_gate
                && t->sup == m->shared_up && t->sdown == m->shared_down
                && t->n_experts == E && t->hidden == H && t->inter == I)
            {
                return t->dev;
            }
            break;                      /* stale: rebuilt in place */
        }
        t = NULL;
    }
    if (t == NULL) {
        if (c->n_moe_tabs == c->cap_moe_tabs) {
            int cap = c->cap_moe_tabs ? 2 * c->cap_moe_tabs : 64;
            glm_moe_table *p = (glm_moe_table *) realloc(c->moe_tabs, cap * sizeof(*p));
            if (p == NULL) {
                fprintf(stderr, "glm-engine: out of memory for MoE expert tables\n");
                abort();
            }
            c->moe_tabs = p;
            c->cap_moe_tabs = cap;
        }
        t = &c->moe_tabs[c->n_moe_tabs++];
        t->dev = NULL;
    }
    host = (glm_moe_expert *) calloc((size_t) E + 1, sizeof(*host));
    if (host == NULL) {
        fprintf(stderr, "glm-engine: out of memory for a MoE expert table\n");
        abort();
    }
    for (e = 0; e < E; e++) {
        if (m->gate[e] == NULL) {
            continue;                   /* another rank's expert */
        }
        host[e].gate = glm_moe_weight(c, m->gate[e], I, H);
        host[e].up = glm_moe_weight(c, m->up[e], I, H);
        host[e].down = glm_moe_weight(c, m->down[e], H, I);
    }
    if (m->shared_gate != NULL) {
        int64_t Is = m->shared_gate->shape[0];
        host[E].gate = glm_moe_weight(c, m->shared_gate, Is, H);
        host[E].up = glm_moe_weight(c, m->shared_up, Is, H);
        host[E].down = glm_moe_weight(c, m->shared_down, H, Is);
    }
    if (t->dev != NULL) {
        GLM_CUDA_CHECK(cudaStreamSynchronize(c->stream));
        GLM_CUDA_CHECK(cudaFree(t->dev));
    }
    GLM_CUDA_CHECK(cudaMalloc((void **) &t->dev, ((size_t) E + 1) * sizeof(*host)));
    GLM_CUDA_CHECK(cudaMemcpy(t->dev, host, ((size_t) E + 1) * sizeof(*host),
                              cudaMemcpyHostToDevice));
    free(host);
    t->m = m;
    t->gen = c->gen;
    t->gate = m->gate;
    t->up = m->up;
    t->down = m->down;
    t->sgate = m->shared_gate;
    t->sup = m->shared_up;
    t->sdown = m->shared_down;
    t->n_experts = E;
    t->hidden = H;
    t->inter = I;
    return t->dev;
}

static void
glm_moe_check(const glm_moe_weights *m)
{
    int E = m->n_experts, K = m->top_k, H = m->hidden;

    if (E < 1 || E > GLM_MOE_MAX_EXPERTS || K < 1 || K > GLM_MOE_MAX_TOPK || K > E
        || m->n_group < 1 || E % m->n_group != 0 || m->topk_group < 1
        || m->topk_group > m->n_group
        || ((m->n_group > 1 || m->topk_group < m->n_group) && E / m->n_group < 2))
    {
        glm_cu_bug("moe: %d experts, top %d, %d groups keeping %d: outside what the"
                   " router supports", E, K, m->n_group, m->topk_group);
    }
    if (m->router->ndim != 2 || m->router->shape[0] != E || m->router->shape[1] != H) {
        glm_cu_bug("moe: router '%s' is not [%d, %d]", m->router->name, E, H);
    }
    if ((m->shared_gate == NULL) != (m->shared_up == NULL)
        || (m->shared_gate == NULL) != (m->shared_down == NULL))
    {
        glm_cu_bug("moe: a shared expert needs gate, up and down");
    }
}

/* routing of x into idx / w [rows, top_k] (ascending expert id) */
static void
glm_moe_route_dev(glm_cuda *c, const void *x, int rows, const glm_moe_weights *m,
    int32_t *idx, float *w)
{
    glm_cuda_weight router = glm_weight_desc(c, m->router);
    const void *cb;
    int cb_fmt;

    cb = glm_vec(c, m->correction_bias, m->n_experts, "correction bias", &cb_fmt);
    glm_cuda_moe_route(c->stream, (const glm_act *) x, &router, cb, cb_fmt, rows, m->hidden,
                       m->n_experts, m->top_k, m->n_group, m->topk_group,
                       m->norm_topk_prob, m->routed_scaling_factor, idx, w);
}

/*
 * One MoE layer in five launches and no host sync: routing with its GEMM,
 * alignment (slots and row tiles), the grouped gate+up+SwiGLU GEMM, the
 * grouped down GEMM (the shared expert as table entry E in both), and the
 * combine.  Scratch is sized from rows on the host: the worst case of the
 * routing, never its outcome.
 */
static void
glm_cu_moe(glm_backend *be, void *out, const void *x, int rows,
    const glm_moe_weights *m)
{
    glm_cuda *c = glm_cu(be);
    int E = m->n_experts, K = m->top_k, H = m->hidden, I = m->inter;
    int Is = m->shared_gate != NULL ? (int) m->shared_gate->shape[0] : 0;
    int ld_h = I > Is ? I : Is, max_tiles = glm_moe_max_tiles(rows, K, E);
    size_t pairs = (size_t) rows * K, slots = pairs + (size_t) rows;
    const glm_moe_expert *table;
    int32_t *idx, *plan, *slot_of, *row_token, *tiles, *n_tiles;
    glm_act *h, *y;
    float *w;

    if (rows <= 0) {
        return;
    }
    glm_moe_check(m);
    table = glm_moe_table_of(c, m);
    idx = (int32_t *) glm_scratch(c, GLM_SCR_MOE_IDX, pairs * sizeof(int32_t));
    w = (float *) glm_scratch(c, GLM_SCR_MOE_W, pairs * sizeof(float));
    plan = (int32_t *) glm_scratch(c, GLM_SCR_MOE_PLAN,
                                   (pairs + slots + 3 * (size_t) max_tiles + 1)
                                   * sizeof(int32_t));
    slot_of = plan;
    row_token = slot_of + pairs;
    tiles = row_token + slots;
    n_tiles = tiles + 3 * (size_t) max_tiles;
    h = (glm_act *) glm_scratch(c, GLM_SCR_MOE_H, slots * ld_h * sizeof(glm_act));
    y = (glm_act *) glm_scratch(c, GLM_SCR_MOE_Y, slots * H * sizeof(glm_act));

    glm_moe_route_dev(c, x, rows, m, idx, w);
    glm_cuda_moe_align(c->stream, idx, rows, K, E, table, slot_of, row_token, tiles, n_tiles);
    glm_cuda_moe_gate_up(c->stream, h, ld_h, (const glm_act *) x, row_token, tiles, n_tiles,
                         max_tiles, table, E, H, I, Is);
    glm_cuda_moe_down(c->stream, y, h, ld_h, tiles, n_tiles, max_tiles, table, E, H, I, Is);
    glm_cuda_moe_combine(c->stream, (glm_act *) out, y, w, slot_of, rows, K, H,
                         m->shared_gate != NULL);
}

/* ---- vision ops ------------------------------------------------------------------ */

static void
glm_cu_layernorm(glm_backend *be, void *out, const void *x, const glm_tensor *w,
    const glm_tensor *b, int rows, int dim, float eps)
{
    glm_cuda *c = glm_cu(be);
    const void *wd, *bd;
    int wfmt, bfmt;

    if (rows <= 0) {
        return;
    }
    wd = glm_vec(c, w, dim, "layernorm weight", &wfmt);
    bd = glm_vec(c, b, dim, "layernorm bias", &bfmt);
    glm_cuda_layernorm(c->stream, (glm_act *) out, (const glm_act *) x, wd, bd, wfmt, bfmt, rows, dim, eps);
}

static void
glm_cu_gelu(glm_backend *be, void *out, const void *x, size_t n)
{
    glm_cuda_gelu(glm_cu(be)->stream, (glm_act *) out, (const glm_act *) x, n);
}

static void
glm_cu_attention_segments(glm_backend *be, void *out, const void *q, const void *k,
    const void *v, int stride, const int32_t *cu_seqlens, int n_segments, int heads,
    int head_dim, float scale)
{
    glm_cuda *c = glm_cu(be);
    size_t n_tiles = 0, t;
    int s, t0;
    int32_t *p;
    const int32_t *d;

    if (n_segments <= 0) {
        return;
    }
    if (head_dim < 1 || head_dim > GLM_ATTN_MAX_HEAD_DIM || stride < heads * head_dim) {
        glm_cu_bug("attention_segments: head_dim %d, heads %d, stride %d", head_dim,
                   heads, stride);
    }
    for (s = 0; s < n_segments; s++) {
        int len = cu_seqlens[s + 1] - cu_seqlens[s];
        if (len < 0 || cu_seqlens[s] < 0) {
            glm_cu_bug("attention_segments: cu_seqlens not ascending at %d", s);
        }
        n_tiles += (size_t) (len + GLM_TILE_Q - 1) / GLM_TILE_Q;
    }
    if (n_tiles == 0) {
        return;
    }
    p = glm_pack_reserve(c, 4 * n_tiles);
    t = 0;
    for (s = 0; s < n_segments; s++) {
        int lo = cu_seqlens[s], hi = cu_seqlens[s + 1];
        for (t0 = lo; t0 < hi; t0 += GLM_TILE_Q) {
            p[4 * t] = t0;
            p[4 * t + 1] = hi - t0 < GLM_TILE_Q ? hi - t0 : GLM_TILE_Q;
            p[4 * t + 2] = lo;
            p[4 * t + 3] = hi - lo;
            t++;
        }
    }
    d = (const int32_t *) glm_meta_put(c, GLM_META_SEG, p, 4 * n_tiles * sizeof(int32_t));
    glm_cuda_attention_segments(c->stream, (glm_act *) out, (const glm_act *) q,
                                (const glm_act *) k, (const glm_act *) v, stride, (const int4 *) d,
                                (int) n_tiles, heads, head_dim, scale);
}

static void
glm_cu_group_transpose(glm_backend *be, void *out, const void *x, int groups, int g,
    int dim)
{
    glm_cuda_group_transpose(glm_cu(be)->stream, (glm_act *) out, (const glm_act *) x,
                             groups, g, dim);
}

/* ---- life cycle ------------------------------------------------------------------ */

static void
glm_cu_gather_rows(glm_backend *be, void *out, const void *x, const int32_t *rows, int n,
    int dim)
{
    glm_cuda *c = glm_cu(be);
    const int32_t *d_rows;

    if (n <= 0) {
        return;
    }
    d_rows = (const int32_t *) glm_meta_put(c, GLM_META_ROWS, rows, (size_t) n * sizeof(int32_t));
    glm_cuda_gather_rows(c->stream, (glm_act *) out, (const glm_act *) x, d_rows, n, dim);
}

/* pinned host memory of at least `bytes`, grown (never in a warm step) */
static void *
glm_pinned_grow(void *p, size_t *cap, size_t bytes)
{
    if (bytes <= *cap) {
        return p;
    }
    if (p != NULL) {
        GLM_CUDA_CHECK(cudaFreeHost(p));
    }
    bytes += bytes / 2 + 4096;
    GLM_CUDA_CHECK(cudaMallocHost(&p, bytes));
    *cap = bytes;
    return p;
}

/*
 * The rows' parameters and lists go up in one copy (pinned: no sync), the
 * kernel chooses, and the results come down in one copy: the step's only
 * device-to-host transfer and its one synchronisation.
 */
static void
glm_cu_sample(glm_backend *be, glm_sample_out *out, const float *logits, int rows,
    int vocab, const glm_sample_row *p)
{
    glm_cuda *c = glm_cu(be);
    size_t words = ((size_t) vocab + 31) / 32, n_int = 0, head, bytes;
    glm_smp_dev *dp;
    int32_t *blob, *d_tokens;
    char *d_in;
    glm_sample_out *d_out;
    int r, i, ids_only = 1;

    if (rows <= 0) {
        return;
    }
    for (r = 0; r < rows; r++) {
        ids_only &= !p[r].logprobs && p[r].n_top <= 0 && p[r].n_given <= 0 && !p[r].rank;
        n_int += 2 * (size_t) p[r].n_seen + 2 * (size_t) p[r].n_bias + (size_t) p[r].n_banned
                 + (p[r].allowed != NULL ? words : 0)
                 + (p[r].top_given != NULL && p[r].n_given > 0 ? (size_t) p[r].n_given : 0);
    }
    head = glm_round_up((size_t) rows * sizeof(glm_smp_dev), 16);
    bytes = head + n_int * sizeof(int32_t);
    c->smp_in_host = (char *) glm_pinned_grow(c->smp_in_host, &c->smp_in_cap, bytes);
    {
        size_t cap = c->smp_out_cap * sizeof(glm_sample_out);
        c->smp_out_host = (glm_sample_out *) glm_pinned_grow(c->smp_out_host, &cap,
                                                             (size_t) rows * sizeof(glm_sample_out));
        c->smp_out_cap = cap / sizeof(glm_sample_out);
    }
    dp = (glm_smp_dev *) c->smp_in_host;
    blob = (int32_t *) (c->smp_in_host + head);
    n_int = 0;
    for (r = 0; r < rows; r++) {
        const glm_sample_row *q = &p[r];
        glm_smp_dev *d = &dp[r];

        memset(d, 0, sizeof(*d));
        d->logit_row = q->logit_row;
        d->temperature = q->temperature;
        d->top_p = q->top_p;
        d->min_p = q->min_p;
        d->presence = q->presence_penalty;
        d->frequency = q->frequency_penalty;
        d->repetition = q->repetition_penalty;
        d->top_k = q->top_k;
        d->forced = q->forced;
        d->logprobs = q->logprobs;
        d->n_top = q->top_given != NULL ? 0 : q->n_top;
        d->rank = q->rank;
        d->seed = q->seed;
        d->counter = q->counter;
        d->off_seen = (int32_t) n_int;
        d->n_seen = q->n_seen;
        for (i = 0; i < q->n_seen; i++) {
            blob[n_int + i] = q->seen_ids[i];
            blob[n_int + q->n_seen + i] = q->seen_counts[i];
        }
        n_int += 2 * (size_t) q->n_seen;
        d->off_bias = (int32_t) n_int;
        d->n_bias = q->n_bias;
        for (i = 0; i < q->n_bias; i++) {
            blob[n_int + i] = q->bias_ids[i];
            memcpy(&blob[n_int + q->n_bias + i], &q->bias[i], sizeof(float));
        }
        n_int += 2 * (size_t) q->n_bias;
        d->off_banned = (int32_t) n_int;
        d->n_banned = q->n_banned;
        if (q->n_banned > 0) {
            memcpy(blob + n_int, q->banned, (size_t) q->n_banned * sizeof(int32_t));
        }
        n_int += (size_t) q->n_banned;
        d->off_allowed = (int32_t) n_int;
        d->has_allowed = q->allowed != NULL;
        if (q->allowed != NULL) {
            memcpy(blob + n_int, q->allowed, words * sizeof(uint32_t));
            n_int += words;
        }
        d->off_given = (int32_t) n_int;
        if (q->top_given != NULL && q->n_given > 0) {
            d->n_given = q->n_given;
            memcpy(blob + n_int, q->top_given, (size_t) q->n_given * sizeof(int32_t));
            n_int += (size_t) q->n_given;
        }
    }
    d_in = (char *) glm_scratch(c, GLM_SCR_SMP_IN, bytes);
    d_out = (glm_sample_out *) glm_scratch(c, GLM_SCR_SMP_OUT,
                                           (size_t) rows * (sizeof(glm_sample_out) + 4));
    d_tokens = (int32_t *) (d_out + rows);
    GLM_CUDA_CHECK(cudaMemcpyAsync(d_in, c->smp_in_host, bytes, cudaMemcpyHostToDevice,
                                   c->stream));
    glm_cuda_sample(c->stream, d_out, d_tokens, logits,
                    (float *) glm_scratch(c, GLM_SCR_SMP_WORK,
                                          (size_t) rows * vocab * sizeof(float)),
                    (const glm_smp_dev *) d_in, (const int32_t *) (d_in + head), rows, vocab);
    if (ids_only) {
        /* the ids alone: 4 bytes a row */
        int32_t *ids = (int32_t *) c->smp_out_host;
        GLM_CUDA_CHECK(cudaMemcpyAsync(ids, d_tokens, (size_t) rows * sizeof(int32_t),
                                       cudaMemcpyDeviceToHost, c->stream));
        GLM_CUDA_CHECK(cudaStreamSynchronize(c->stream));
        memset(out, 0, (size_t) rows * sizeof(glm_sample_out));
        for (r = 0; r < rows; r++) {
            out[r].token = ids[r];
        }
        return;
    }
    GLM_CUDA_CHECK(cudaMemcpyAsync(c->smp_out_host, d_out, (size_t) rows * sizeof(glm_sample_out),
                                   cudaMemcpyDeviceToHost, c->stream));
    GLM_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    memcpy(out, c->smp_out_host, (size_t) rows * sizeof(glm_sample_out));
}

static void
glm_cu_release_weights(glm_cuda *c)
{
    size_t i;

    glm_moe_tables_free(c);
    if (c->wtab == NULL) {
        return;
    }
    GLM_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    glm_cuda_gemm_forget_weights(c->gemm);     /* its FP8 scales derive from them */
    for (i = 0; i < c->wcap; i++) {
        if (c->wtab[i].host != NULL && c->wtab[i].owner) {
            cudaFree(c->wtab[i].dev);
        }
    }
    free(c->wtab);
    c->wtab = NULL;
    c->wcap = c->wcount = 0;
    c->weight_bytes = 0;
    /* every binding of the released copies goes stale at once */
    c->gen = __atomic_fetch_add(&glm_cu_gen_next, 1, __ATOMIC_RELAXED);
}

static void
glm_cu_destroy(glm_backend *be)
{
    glm_cuda *c = glm_cu(be);
    int i;

    cudaStreamSynchronize(c->stream);
    glm_graphs_free(c);
    glm_cu_release_weights(c);
    for (i = 0; i < GLM_META_N; i++) {
        if (c->meta[i].dev != NULL) {
            cudaFreeAsync(c->meta[i].dev, c->stream);
            cudaFreeHost(c->meta[i].host);
        }
        if (c->meta[i].has_event) {
            cudaEventDestroy(c->meta[i].copied);
        }
    }
    for (i = 0; i < GLM_SCR_N; i++) {
        if (c->scr[i] != NULL) {
            cudaFreeAsync(c->scr[i], c->stream);
        }
    }
    glm_cuda_gemm_destroy(c->gemm);
    cudaStreamSynchronize(c->stream);
    cudaFreeHost(c->smp_in_host);
    cudaFreeHost(c->smp_out_host);
    free(c->moe_tabs);
    cudaStreamDestroy(c->stream);
    free(c->pack);
    free(c);
}

extern "C" glm_backend *
glm_backend_cuda_create(int device, glm_err *err)
{
    cudaDeviceProp prop;
    cudaMemPool_t pool;
    uint64_t keep = UINT64_MAX;
    const char *gemm_env = getenv("GLM_CUDA_GEMM");
    char why[256];
    glm_cuda *c;
    cudaError_t e;
    int n = 0;

    e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        (void) cudaGetLastError();
        glm_errf(err, "no CUDA GPU is available (%s): use --backend cpu",
                 e != cudaSuccess ? cudaGetErrorString(e) : "the driver lists no device");
        return NULL;
    }
    if (device < 0 || device >= n) {
        glm_errf(err, "CUDA device %d does not exist (%d visible)", device, n);
        return NULL;
    }
    if ((e = cudaSetDevice(device)) != cudaSuccess
        || (e = cudaGetDeviceProperties(&prop, device)) != cudaSuccess)
    {
        glm_errf(err, "CUDA device %d: %s", device, cudaGetErrorString(e));
        return NULL;
    }
    if (prop.major < 8) {
        glm_errf(err, "GPU %d (%s) has compute capability %d.%d; the CUDA backend needs"
                 " 8.0 or newer (it is built for sm_90a plus compute_80 PTX)", device,
                 prop.name, prop.major, prop.minor);
        return NULL;
    }
    c = (glm_cuda *) calloc(1, sizeof(*c));
    if (c == NULL) {
        glm_errf(err, "out of memory");
        return NULL;
    }
    c->device = device;
    c->n_sms = prop.multiProcessorCount;
    c->gen = __atomic_fetch_add(&glm_cu_gen_next, 1, __ATOMIC_RELAXED);
    if ((e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        glm_errf(err, "CUDA device %d (%s): cannot start: %s", device, prop.name,
                 cudaGetErrorString(e));
        if (c->stream != NULL) {
            cudaStreamDestroy(c->stream);
        }
        free(c);
        return NULL;
    }
    /* keep freed activations in the pool: model.c allocates them per step */
    if (cudaDeviceGetDefaultMemPool(&pool, device) == cudaSuccess) {
        cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
    }
    c->gemm = glm_cuda_gemm_create(c->stream, gemm_env != NULL && strcmp(gemm_env, "simt") == 0,
                                   why, sizeof(why));
    if (c->gemm == NULL) {
        glm_errf(err, "CUDA device %d (%s): %s", device, prop.name, why);
        cudaStreamDestroy(c->stream);
        free(c);
        return NULL;
    }
    c->be.name = "cuda";
    c->be.kv_dtypes = 1u << GLM_KV_F32 | 1u << GLM_KV_BF16 | 1u << GLM_KV_FP8_E4M3;
    c->be.kv_dtype_auto = GLM_KV_BF16;      /* the model's dtype, as vLLM's auto */
    c->be.act_dtype = GLM_ACT_BF16;
    c->be.act_size = sizeof(glm_act);
    c->be.upload_act = glm_cu_upload_act;
    c->be.download_act = glm_cu_download_act;
    c->be.matmul_f32 = glm_cu_matmul_f32;
    c->be.alloc = glm_cu_alloc;
    c->be.free = glm_cu_free;
    c->be.upload = glm_cu_copy;
    c->be.download = glm_cu_copy;
    c->be.embed = glm_cu_embed;
    c->be.rmsnorm = glm_cu_rmsnorm;
    c->be.matmul = glm_cu_matmul;
    c->be.matmul_qkv = glm_cu_matmul_qkv;
    c->be.rope = glm_cu_rope;
    c->be.kv_store = glm_cu_kv_store;
    c->be.attention = glm_cu_attention;
    c->be.attn_prep = glm_cu_attn_prep;
    c->be.swiglu = glm_cu_swiglu;
    c->be.add = glm_cu_add;
    c->be.add_rmsnorm = glm_cu_add_rmsnorm;
    c->be.gate_up_swiglu = glm_cu_gate_up_swiglu;
    c->be.moe = glm_cu_moe;
    c->be.layernorm = glm_cu_layernorm;
    c->be.gelu = glm_cu_gelu;
    c->be.attention_segments = glm_cu_attention_segments;
    c->be.group_transpose = glm_cu_group_transpose;
    c->be.gather_rows = glm_cu_gather_rows;
    c->be.sample = glm_cu_sample;
    c->be.destroy = glm_cu_destroy;
    glm_graphs_init(c);
    return &c->be;
}

/* ---- the extensions of backend_cuda.h ------------------------------------------- */

static glm_cuda *
glm_cu_checked(glm_backend *be)
{
    if (be == NULL || be->destroy != glm_cu_destroy) {
        glm_cu_bug("a CUDA backend function was given the %s backend",
                   be != NULL ? be->name : "NULL");
    }
    return glm_cu(be);
}

/* pinned staging for the start-up upload: a few buffers, reused in turn */
#define GLM_STAGE_BUFS   4
#define GLM_STAGE_BYTES  ((size_t) 64 << 20)

static const char *
glm_wfmt_name(int fmt)
{
    static const char *names[] = { "F32", "BF16", "F16", "FP8 E4M3" };

    return fmt >= 0 && fmt < 4 ? names[fmt] : "?";
}

/* One line per weight format the model's matrices use: which GEMM path
 * serves it (so a slow fallback is visible at start-up, not guessed). */
static void
glm_cu_print_paths(glm_cuda *c, glm_tensor *const *ts, size_t n)
{
    size_t i;
    int seen[4][4] = { { 0 } }, f, st;
    int64_t blk[2] = { 0, 0 };

    for (i = 0; i < n; i++) {
        const glm_tensor *t = ts[i];
        f = glm_wfmt_for(t);
        if (t->ndim == 2 && f >= 0 && !(t->name && strstr(t->name, "embed_tokens"))) {
            st = t->scale != NULL ? (int) t->scale_strategy : 0;
            seen[f][st & 3]++;
            if (st == GLM_SCALE_BLOCK) {
                blk[0] = t->block[0];
                blk[1] = t->block[1];
            }
        }
    }
    for (f = 0; f < 4; f++) {
        for (st = 0; st < 4; st++) {
            if (seen[f][st]) {
                char how[64] = "";
                if (st == GLM_SCALE_BLOCK) {
                    snprintf(how, sizeof(how), " scaled per %lldx%lld block",
                             (long long) blk[0], (long long) blk[1]);
                } else if (st != 0) {
                    snprintf(how, sizeof(how), " scaled per %s",
                             glm_scale_strategy_name_cu(st));
                }
                fprintf(stderr, "glm-engine: CUDA GEMM: %d %s%s matrices -> %s\n",
                        seen[f][st], glm_wfmt_name(f), how,
                        f == GLM_WFMT_FP8 && st != 0
                            ? glm_cuda_gemm_path_fp8(c->gemm, st, (int) blk[0], (int) blk[1])
                            : glm_cuda_gemm_path(c->gemm, f));
            }
        }
    }
}

/* a layer's q/k/v_proj weights, to lie side by side in one allocation
 * (glm_cu_matmul_qkv runs them as one GEMM) */
typedef struct {
    const glm_tensor *t[3];
    size_t            off[3], total;
    void             *base;             /* allocated with the first member uploaded */
} glm_qkv_group;

/* the groups: every used 2-D "...q_proj.weight" whose k_proj and v_proj
 * are used too, in one format that is a plain matrix (not FP8, whose
 * scales are per tensor), sharing K.  *out is malloc'ed (NULL when none). */
static size_t
glm_qkv_groups(glm_checkpoint *ck, glm_qkv_group **out)
{
    size_t i, n = glm_checkpoint_count(ck), count = 0, cap = 0;
    glm_qkv_group *g = NULL;

    for (i = 0; i < n; i++) {
        glm_tensor *t = glm_checkpoint_at(ck, i), *kv[2];
        const char *suffix = "q_proj.weight";
        size_t len = t->name != NULL ? strlen(t->name) : 0, sl = strlen(suffix);
        char name[512];
        int fmt = glm_wfmt_for(t), j, ok = 1;

        if (!t->used || fmt < 0 || fmt == GLM_WFMT_FP8 || t->ndim != 2 || len < sl
            || len >= sizeof(name) || strcmp(t->name + len - sl, suffix) != 0)
        {
            continue;
        }
        for (j = 0; j < 2; j++) {
            memcpy(name, t->name, len + 1);
            name[len - sl] = j == 0 ? 'k' : 'v';
            kv[j] = glm_checkpoint_find(ck, name);
            ok = ok && kv[j] != NULL && kv[j]->used && glm_wfmt_for(kv[j]) == fmt
                 && kv[j]->ndim == 2 && kv[j]->shape[1] == t->shape[1];
        }
        if (!ok) {
            continue;
        }
        if (count == cap) {
            glm_qkv_group *ng;
            cap = cap ? 2 * cap : 64;
            ng = (glm_qkv_group *) realloc(g, cap * sizeof(*g));
            if (ng == NULL) {
                break;                  /* no grouping: three GEMMs, still right */
            }
            g = ng;
        }
        g[count].t[0] = t;
        g[count].t[1] = kv[0];
        g[count].t[2] = kv[1];
        g[count].off[0] = 0;
        g[count].off[1] = t->nbytes;
        g[count].off[2] = t->nbytes + kv[0]->nbytes;
        g[count].total = t->nbytes + kv[0]->nbytes + kv[1]->nbytes;
        g[count].base = NULL;
        count++;
    }
    *out = g;
    return count;
}

/*
 * Every tensor the model bound goes to the device as stored, through
 * GLM_STAGE_BUFS pinned buffers used in turn: the host copies a chunk from
 * the mapping into a free buffer while the copies of the others run (an
 * event per buffer says when it is free again; no sync per tensor, and the
 * host never converts a value).  A progress line every GiB or so.  A
 * layer's q, k and v projections share one allocation, in that order
 * (glm_qkv_groups): the same bytes, one GEMM.
 */
static int
glm_cu_upload(glm_cuda *c, glm_checkpoint *ck, glm_tensor *const *ts, size_t n, glm_err *err)
{
    size_t i, total = 0, done = 0;
    size_t next_note = (size_t) 1 << 30;
    size_t stage_bytes, off, chunk;
    char *stage[GLM_STAGE_BUFS] = { NULL };
    cudaEvent_t freed[GLM_STAGE_BUFS];
    int nbuf = 0, turn = 0, rc = 0, k, tty = isatty(2);
    double t0 = glm_now_seconds(), dt;
    glm_qkv_group *groups = NULL;
    /* a rank's shards are views outside the checkpoint's list: no grouping
     * there (matmul_qkv takes three GEMMs, still right) */
    size_t n_groups = ck != NULL ? glm_qkv_groups(ck, &groups) : 0;

    for (i = 0; i < n; i++) {
        if (glm_wfmt_for(ts[i]) >= 0) {
            total += ts[i]->nbytes;
        }
    }
    stage_bytes = total < GLM_STAGE_BYTES ? (total > 0 ? total : 1) : GLM_STAGE_BYTES;
    for (nbuf = 0; nbuf < GLM_STAGE_BUFS; nbuf++) {
        if (cudaMallocHost((void **) &stage[nbuf], stage_bytes) != cudaSuccess) {
            (void) cudaGetLastError();
            break;
        }
        GLM_CUDA_CHECK(cudaEventCreateWithFlags(&freed[nbuf], cudaEventDisableTiming));
        GLM_CUDA_CHECK(cudaEventRecord(freed[nbuf], c->stream));
    }
    if (nbuf == 0) {
        free(groups);
        return glm_errf(err, "cannot allocate %zu MiB of pinned staging memory to upload"
                        " the weights", stage_bytes >> 20);
    }
    for (i = 0; i < n && rc == 0; i++) {
        glm_tensor *t = ts[i];
        int fmt = glm_wfmt_for(t);
        glm_wentry *e;
        size_t s, gi;
        void *dev = NULL;
        int member = -1;

        if (fmt < 0) {
            continue;
        }
        for (gi = 0; gi < n_groups && member < 0; gi++) {
            member = t == groups[gi].t[0] ? 0 : t == groups[gi].t[1] ? 1
                     : t == groups[gi].t[2] ? 2 : -1;
        }
        gi--;                           /* the group, when member >= 0 */
        if (c->wcap == 0 || (c->wcount + 1) * 2 > c->wcap) {
            glm_wtab_grow(c);
        }
        for (s = glm_wslot(c, t->data); c->wtab[s].host != NULL; s = (s + 1) & (c->wcap - 1)) {
            if (c->wtab[s].host == t->data && c->wtab[s].nbytes == t->nbytes
                && c->wtab[s].fmt == fmt && c->wtab[s].fp == glm_fingerprint(t->data, t->nbytes))
            {
                break;
            }
        }
        if (c->wtab[s].host != NULL) {
            glm_tensor_bind(c, t, c->wtab[s].dev);  /* a second upload of one checkpoint */
            continue;
        }
        if (member >= 0 && groups[gi].base != NULL) {
            dev = (char *) groups[gi].base + groups[gi].off[member];
        } else if (cudaMalloc(&dev, member >= 0 ? groups[gi].total
                                    : t->nbytes ? t->nbytes : 4) != cudaSuccess)
        {
            size_t fr = 0, tot = 0;
            (void) cudaGetLastError();
            cudaMemGetInfo(&fr, &tot);
            rc = glm_errf(err, "out of GPU memory for weight '%s' (%.1f MiB; %.2f GiB of"
                          " %.2f GiB of weights on the device, %.2f GiB free of %.2f GiB):"
                          " the model does not fit this GPU",
                          t->name ? t->name : "?", t->nbytes / 1048576.0,
                          done / 1073741824.0, total / 1073741824.0, fr / 1073741824.0,
                          tot / 1073741824.0);
            break;
        } else if (member >= 0) {
            groups[gi].base = dev;
            dev = (char *) dev + groups[gi].off[member];
        }
        for (off = 0; off < t->nbytes; off += chunk) {
            chunk = t->nbytes - off < stage_bytes ? t->nbytes - off : stage_bytes;
            /* the buffer's previous copy must have left before it is refilled */
            GLM_CUDA_CHECK(cudaEventSynchronize(freed[turn]));
            memcpy(stage[turn], (const char *) t->data + off, chunk);
            GLM_CUDA_CHECK(cudaMemcpyAsync((char *) dev + off, stage[turn], chunk,
                                           cudaMemcpyHostToDevice, c->stream));
            GLM_CUDA_CHECK(cudaEventRecord(freed[turn], c->stream));
            turn = (turn + 1) % nbuf;
        }
        e = &c->wtab[s];
        memset(e, 0, sizeof(*e));
        e->host = t->data;
        e->nbytes = t->nbytes;
        e->dtype = (int) t->dtype;
        e->fmt = fmt;
        e->fp = glm_fingerprint(t->data, t->nbytes);
        e->dev = dev;
        e->dev_bytes = t->nbytes;
        e->owner = member <= 0;         /* a group's allocation is freed through q */
        c->wcount++;
        c->weight_bytes += t->nbytes;
        glm_tensor_bind(c, t, dev);
        done += t->nbytes;
        if (done >= next_note || done == total) {
            dt = glm_now_seconds() - t0;
            fprintf(stderr, "%sglm-engine: loading weights: %.2f / %.2f GiB, %.2f GB/s%s",
                    tty ? "\r" : "", done / 1073741824.0, total / 1073741824.0,
                    dt > 0 ? done / dt / 1e9 : 0.0, tty && done < total ? "" : "\n");
            next_note = done + ((size_t) 1 << 30);
        }
    }
    GLM_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    for (k = 0; k < nbuf; k++) {
        cudaEventDestroy(freed[k]);
        cudaFreeHost(stage[k]);
    }
    free(groups);
    if (rc == 0) {
        glm_cu_print_paths(c, ts, n);
    }
    return rc;
}

extern "C" int
glm_backend_cuda_upload_weights(glm_backend *be, glm_checkpoint *ck, glm_err *err)
{
    glm_cuda *c = glm_cu_checked(be);
    size_t i, k = 0, n = glm_checkpoint_count(ck);
    glm_tensor **ts;
    int rc;

    if (c->group_member) {
        return 0;       /* each rank uploaded its own shard at load (parallel/ranks.c) */
    }
    ts = (glm_tensor **) malloc((n ? n : 1) * sizeof(*ts));
    if (ts == NULL) {
        return glm_errf(err, "out of memory");
    }
    for (i = 0; i < n; i++) {
        glm_tensor *t = glm_checkpoint_at(ck, i);
        if (t->used) {
            ts[k++] = t;
        }
    }
    rc = glm_cu_upload(c, ck, ts, k, err);
    free(ts);
    return rc;
}

extern "C" int
glm_backend_cuda_upload_tensors(glm_backend *be, glm_tensor *const *ts, size_t n,
    glm_err *err)
{
    glm_cuda *c = glm_cu_checked(be);
    glm_tensor **all;
    size_t i, k = 0;
    int rc;

    /* each tensor, then its FP8 scale tensor: repeats (a scale several row
     * views share) are found in the table and uploaded once */
    all = (glm_tensor **) malloc((2 * n + 1) * sizeof(*all));
    if (all == NULL) {
        return glm_errf(err, "out of memory");
    }
    for (i = 0; i < n; i++) {
        if (ts[i] != NULL) {
            all[k++] = ts[i];
            if (ts[i]->scale != NULL) {
                all[k++] = (glm_tensor *) ts[i]->scale;
            }
        }
    }
    GLM_CUDA_CHECK(cudaSetDevice(c->device));
    rc = glm_cu_upload(c, NULL, all, k, err);
    free(all);
    return rc;
}

extern "C" void
glm_backend_cuda_group_member(glm_backend *be)
{
    glm_cu_checked(be)->group_member = 1;
}

extern "C" void
glm_backend_cuda_make_current(glm_backend *be)
{
    GLM_CUDA_CHECK(cudaSetDevice(glm_cu_checked(be)->device));
}

extern "C" void *
glm_backend_cuda_stream(glm_backend *be)
{
    return (void *) glm_cu_checked(be)->stream;
}

extern "C" int
glm_backend_cuda_device(glm_backend *be)
{
    return glm_cu_checked(be)->device;
}

extern "C" void
glm_backend_cuda_release_weights(glm_backend *be)
{
    glm_cu_release_weights(glm_cu_checked(be));
}

extern "C" void
glm_backend_cuda_add_rmsnorm(glm_backend *be, void *out, void *x, const void *y,
    const glm_tensor *w, int rows, int dim, float eps)
{
    glm_cu_add_rmsnorm(&glm_cu_checked(be)->be, out, x, y, w, rows, dim, eps);
}

extern "C" int
glm_backend_cuda_decode_splits(glm_backend *be, int n_seqs, int heads, int kv_heads, int max_len)
{
    return glm_attn_decode_splits(glm_cu(be)->n_sms, n_seqs, kv_heads, heads / kv_heads, max_len);
}

extern "C" void
glm_backend_cuda_quant_act_fp8(glm_backend *be, uint8_t *q, float *scales, const void *x,
    int rows, int cols, int group, int scale_ld)
{
    glm_cuda *c = glm_cu_checked(be);

    glm_cuda_quant_act_fp8(c->stream, q, scales, (const glm_act *) x, rows, cols, group,
                           scale_ld);
}

extern "C" int
glm_backend_cuda_fp8_act_group(glm_backend *be, const glm_tensor *w)
{
    glm_cuda *c = glm_cu_checked(be);
    glm_cuda_weight wd;

    if (w->ndim != 2 || w->dtype != GLM_DTYPE_F8_E4M3) {
        return 0;
    }
    wd = glm_weight_desc(c, w);
    return glm_cuda_gemm_fp8_act_group(c->gemm, &wd, (int) w->shape[0], (int) w->shape[1]);
}

extern "C" void
glm_backend_cuda_memory(glm_backend *be, size_t *weight_bytes, size_t *free_bytes,
    size_t *total_bytes)
{
    glm_cuda *c = glm_cu_checked(be);

    *weight_bytes = c->weight_bytes;
    *free_bytes = *total_bytes = 0;
    cudaMemGetInfo(free_bytes, total_bytes);
}

void
glm_backend_cuda_moe_route(glm_backend *be, const void *x, int rows,
    const glm_moe_weights *m, int32_t *idx, float *w)
{
    glm_cuda *c = glm_cu_checked(be);
    size_t pairs = (size_t) rows * m->top_k;
    int32_t *didx;
    float *dw;

    if (rows <= 0) {
        return;
    }
    glm_moe_check(m);
    didx = (int32_t *) glm_scratch(c, GLM_SCR_MOE_IDX, pairs * sizeof(int32_t));
    dw = (float *) glm_scratch(c, GLM_SCR_MOE_W, pairs * sizeof(float));
    glm_moe_route_dev(c, x, rows, m, didx, dw);
    glm_cu_copy(be, idx, didx, pairs * sizeof(int32_t));
    glm_cu_copy(be, w, dw, pairs * sizeof(float));
}

/* ---- decode graphs ------------------------------------------------------------------ */

/*
 * A decode step (every token the one new token of its sequence) from the
 * embedding through the last layer, replayed from a CUDA graph captured at a
 * fixed number of rows: 1, 2, 4, ... up to GLM_GRAPH_MAX_ROWS (env
 * GLM_CUDA_GRAPH_MAX_ROWS; GLM_CUDA_GRAPHS=0 turns graphs off, =pad runs
 * every graph step eagerly as the warm-up does, never capturing: the twin a
 * replay must equal bit for bit).  The model's side (backend.h,
 * graph_rows/graph_begin/graph_end): it pads the batch to the graph's rows,
 * passes the step's inputs, and runs its layers only when told to.
 *
 * For a size not yet captured, graph_begin stages the inputs and asks for
 * the layers once eagerly in "fixed" mode (the warm-up: the real step, with
 * the fixed layout below, which also grows every scratch buffer to this
 * size and binds every weight), then graph_end begins the capture and asks
 * for the layers again: recorded, not run.  Later steps of that size stage
 * their inputs and launch the graph; the layers do not run on the host.
 *
 * Fixed mode: a graph reads its per-step inputs from fixed device buffers
 * of its own (token ids, rope positions + the model's constant rope axes
 * and frequencies, the attention batch), written before each replay by one
 * async copy from pinned staging.  The ops' own metadata uploads
 * (glm_meta_put, glm_attn_pack) return those buffers instead of uploading,
 * after checking that what they packed equals what was staged (so the
 * staging is proven to be what the ops would have uploaded).  The attention
 * batch gets a layout that depends only on the rows and a block-table
 * capacity per row (max_blocks): every row its own sequence entry and a
 * decode row, block tables at stride max_blocks, and decode attention split
 * for max_blocks * block_size positions.  A step that needs more blocks than
 * the graph was made for re-captures it at twice the capacity.
 *
 * A graph is dropped and re-made when what it baked in moved: the weights
 * (released or re-uploaded), the KV pool, the model's activation buffer for
 * its size, or a scratch buffer (this file's and the GEMM's: both count
 * their moves in glm_cuda_scratch_moves).
 *
 * What cannot be captured: an op that must wait for the device on the host
 * (today the MoE op, which reads the expert counts), a copy to or from the
 * host, a scratch buffer growing.  The op notes the reason (glm_graph_deny)
 * and records nothing; graph_end then discards the capture, prints the
 * reason once, and steps of that size run eagerly from then on.  The
 * warm-up already computed the step, so nothing is lost.
 */
#define GLM_GRAPH_SIZES     10          /* 1 .. 512 rows */
#define GLM_GRAPH_MIN_BLOCKS 16
#define GLM_GRAPH_MAX_HALF  (GLM_ATTN_MAX_HEAD_DIM / 2)

enum { GLM_GMODE_OFF = 0, GLM_GMODE_WARMUP, GLM_GMODE_CAPTURE };

typedef struct {
    cudaGraphExec_t exec;
    int             failed;             /* cannot be captured: eager */
    int             max_blocks;         /* block-table capacity per row */
    uint64_t        gen;                /* what it was captured on */
    unsigned        scratch_moves;
    const void     *kv_k, *act;
    int             kv_blocks, kv_block_size;
    void           *dev;                /* ids | rope | attn, fixed */
    char           *host;               /* pinned staging of the same */
    size_t          bytes;
    size_t          off_rope, off_attn, rope_len, attn_len;  /* bytes */
    int             rope_known;         /* host holds the rope constants */
    cudaEvent_t     copied;             /* the staging's last copy */
    int             has_event;
    long            replays;
    int             announced;          /* its capture was printed */
} glm_graph;

typedef struct glm_graphs {
    int         enabled, pad_only, max_rows;
    int         mode, cur;              /* GLM_GMODE_*, the size being made */
    char        why[200];               /* why the capture in progress cannot hold */
    char        told[200];              /* the last reason printed */
    glm_graph   g[GLM_GRAPH_SIZES];
} glm_graphs;

static int
glm_graph_index(int rows)
{
    int i = 0;

    while ((1 << i) < rows) {
        i++;
    }
    return i;
}

/* An op that cannot be part of a graph says so while capturing (and then
 * records nothing): 1 if it must stop here. */
static int
glm_graph_deny(glm_cuda *c, const char *why)
{
    glm_graphs *gs = c->graphs;

    if (gs == NULL || gs->mode != GLM_GMODE_CAPTURE) {
        return 0;
    }
    if (gs->why[0] == '\0') {
        snprintf(gs->why, sizeof(gs->why), "%s", why);
    }
    return 1;
}

static int
glm_graph_fixed(const glm_cuda *c)
{
    return c->graphs != NULL && c->graphs->mode != GLM_GMODE_OFF;
}

/* The fixed attention layout for `rows` rows at `max_blocks` per row into p
 * (NULL: size only); returns its length in int32 units.  Checks as
 * glm_attn_pack does. */
static size_t
glm_graph_attn_layout(const glm_kv_pool *kv, const glm_attn_batch *b, int rows,
    int max_blocks, int32_t *p, glm_attn_layout *L)
{
    size_t size;
    int i, bi;

    memset(L, 0, sizeof(*L));
    L->n_tokens = rows;
    L->n_seqs = rows;
    L->block_size = kv->block_size;
    L->pool_blocks = kv->n_blocks;
    L->n_dec = rows;
    L->n_tiles = 0;
    L->max_len_dec = max_blocks * kv->block_size;
    L->off_seq = 8;
    L->off_pos = L->off_seq + (size_t) rows;
    L->off_block_off = L->off_pos + (size_t) rows;
    L->off_blocks = L->off_block_off + (size_t) rows + 1;
    L->off_dec = L->off_blocks + (size_t) rows * max_blocks;
    L->off_tiles = glm_round_up(L->off_dec + (size_t) rows, 4);
    L->off_slot = glm_round_up(L->off_tiles, 2);
    size = L->off_slot + 2 * (size_t) rows;
    if (p == NULL) {
        return size;
    }
    if (b->n_tokens != rows) {
        glm_cu_bug("graph step: %d tokens for a graph of %d rows", b->n_tokens, rows);
    }
    memset(p, 0, size * sizeof(int32_t));
    p[0] = rows;
    p[1] = rows;
    p[2] = kv->block_size;
    p[3] = kv->n_blocks;
    p[4] = rows;
    p[5] = 0;
    p[6] = L->max_len_dec;
    p[7] = rows * max_blocks;
    for (i = 0; i < rows; i++) {
        int sq = b->seq[i], pos = b->kv_pos[i], need;
        const glm_seq_blocks *sb;
        int64_t row;

        if (sq < 0 || sq >= b->n_seqs) {
            glm_cu_bug("attention batch: token %d names sequence %d of %d", i, sq, b->n_seqs);
        }
        sb = &b->seqs[sq];
        if (pos < 0 || pos / kv->block_size >= sb->n_blocks) {
            glm_cu_bug("kv position %d outside its block table (%d blocks)", pos, sb->n_blocks);
        }
        need = pos / kv->block_size + 1;
        if (need > max_blocks) {
            glm_cu_bug("graph step: %d blocks for a capacity of %d", need, max_blocks);
        }
        p[L->off_seq + i] = i;
        p[L->off_pos + i] = pos;
        p[L->off_block_off + i] = i * max_blocks;
        for (bi = 0; bi < need; bi++) {
            int32_t blk = sb->blocks[bi];
            if (blk < 0 || blk >= kv->n_blocks) {
                glm_cu_bug("kv block %d of sequence %d is %d, outside the pool of %d",
                           bi, sq, blk, kv->n_blocks);
            }
            p[L->off_blocks + (size_t) i * max_blocks + bi] = blk;
        }
        p[L->off_dec + i] = i;
        row = (int64_t) sb->blocks[pos / kv->block_size] * kv->block_size
              + pos % kv->block_size;
        memcpy(p + L->off_slot + 2 * (size_t) i, &row, sizeof(row));
    }
    p[L->off_block_off + rows] = rows * max_blocks;
    return size;
}

/* In fixed mode: the graph's buffer for metadata `slot`, after checking
 * that the op's packing equals the staged bytes; NULL outside fixed mode
 * or for a kind graphs do not stage. */
static const void *
glm_graph_meta(glm_cuda *c, int slot, const void *host, size_t len)
{
    glm_graphs *gs = c->graphs;
    glm_graph *g;

    if (!glm_graph_fixed(c) || (slot != GLM_META_IDS && slot != GLM_META_ROPE)) {
        return NULL;
    }
    g = &gs->g[gs->cur];
    if (slot == GLM_META_IDS) {
        if (len != (size_t) (1 << gs->cur) * sizeof(int32_t) || memcmp(host, g->host, len) != 0) {
            glm_cu_bug("graph step: the token ids the embedding packed differ from the staged ids");
        }
        return g->dev;
    }
    /* rope: positions staged; the constants after them are learnt from the
     * warm-up's first rope op and staged from then on */
    {
        size_t pos_bytes = (size_t) 3 * (1 << gs->cur) * sizeof(int32_t);
        if (len > g->off_attn - g->off_rope || len < pos_bytes
            || memcmp(host, g->host + g->off_rope, pos_bytes) != 0)
        {
            glm_cu_bug("graph step: the rope positions packed differ from the staged ones");
        }
        if (!g->rope_known || g->rope_len != len) {
            if (gs->mode == GLM_GMODE_CAPTURE) {
                glm_cu_bug("graph step: rope constants first seen while capturing");
            }
            memcpy(g->host + g->off_rope, host, len);
            GLM_CUDA_CHECK(cudaMemcpyAsync((char *) g->dev + g->off_rope, g->host + g->off_rope,
                                           len, cudaMemcpyHostToDevice, c->stream));
            GLM_CUDA_CHECK(cudaEventRecord(g->copied, c->stream));
            g->rope_known = 1;
            g->rope_len = len;
        } else if (memcmp(host, g->host + g->off_rope, len) != 0) {
            glm_cu_bug("graph step: the rope axes or frequencies changed");
        }
        return (char *) g->dev + g->off_rope;
    }
}

/* In fixed mode: the attention batch in the fixed layout, checked against
 * the staged bytes; 1 if it handled the pack. */
static int
glm_graph_attn(glm_cuda *c, const glm_kv_pool *kv, const glm_attn_batch *b)
{
    glm_graphs *gs = c->graphs;
    glm_graph *g;
    glm_attn_layout L;
    size_t n;

    if (!glm_graph_fixed(c)) {
        return 0;
    }
    g = &gs->g[gs->cur];
    n = glm_graph_attn_layout(kv, b, 1 << gs->cur, g->max_blocks, NULL, &L);
    glm_graph_attn_layout(kv, b, 1 << gs->cur, g->max_blocks, glm_pack_reserve(c, n), &L);
    if (n * sizeof(int32_t) != g->attn_len
        || memcmp(c->pack, g->host + g->off_attn, g->attn_len) != 0)
    {
        glm_cu_bug("graph step: the attention batch packed differs from the staged one");
    }
    c->attn = L;
    c->attn_dev = (char *) g->dev + g->off_attn;
    return 1;
}

static void
glm_graph_drop(glm_graph *g)
{
    if (g->exec != NULL) {
        GLM_CUDA_CHECK(cudaGraphExecDestroy(g->exec));
        g->exec = NULL;
    }
}

static void
glm_graph_free(glm_graph *g)
{
    glm_graph_drop(g);
    if (g->dev != NULL) {
        cudaFree(g->dev);
        cudaFreeHost(g->host);
        g->dev = NULL;
        g->host = NULL;
    }
    if (g->has_event) {
        cudaEventDestroy(g->copied);
        g->has_event = 0;
    }
}

/* the step's blocks per row at most */
static int
glm_graph_need_blocks(const glm_graph_step *st)
{
    int i, need = 1;

    for (i = 0; i < st->rows; i++) {
        int n = st->attn->kv_pos[i] / st->kv->block_size + 1;
        need = n > need ? n : need;
    }
    return need;
}

/* Writes the step's inputs into the graph's pinned staging and copies
 * them to its fixed buffers (stream-ordered before the replay). */
static void
glm_graph_stage(glm_cuda *c, glm_graph *g, const glm_graph_step *st)
{
    glm_attn_layout L;
    size_t rows = (size_t) st->rows;

    if (g->has_event && cudaEventQuery(g->copied) == cudaErrorNotReady) {
        /* the previous step's copy is still reading the staging */
        GLM_CUDA_CHECK(cudaEventSynchronize(g->copied));
    }
    (void) cudaGetLastError();
    memcpy(g->host, st->ids, rows * sizeof(int32_t));
    memcpy(g->host + g->off_rope, st->pos3, rows * 3 * sizeof(int32_t));
    glm_graph_attn_layout(st->kv, st->attn, st->rows, g->max_blocks,
                          (int32_t *) (g->host + g->off_attn), &L);
    GLM_CUDA_CHECK(cudaMemcpyAsync(g->dev, g->host, g->bytes, cudaMemcpyHostToDevice,
                                   c->stream));
    GLM_CUDA_CHECK(cudaEventRecord(g->copied, c->stream));
}

static int
glm_cu_graph_rows(glm_backend *be, int n_tokens)
{
    glm_cuda *c = glm_cu(be);
    glm_graphs *gs = c->graphs;
    int i;

    if (gs == NULL || !gs->enabled || n_tokens < 1 || n_tokens > gs->max_rows) {
        return 0;
    }
    i = glm_graph_index(n_tokens);
    return gs->g[i].failed ? 0 : 1 << i;
}

static int
glm_cu_graph_begin(glm_backend *be, const glm_graph_step *st)
{
    glm_cuda *c = glm_cu(be);
    glm_graphs *gs = c->graphs;
    glm_graph *g;
    int i, need;
    glm_attn_layout L;

    if (gs == NULL || !gs->enabled || st->rows < 1 || st->rows > gs->max_rows
        || (st->rows & (st->rows - 1)) != 0 || gs->mode != GLM_GMODE_OFF)
    {
        return -1;
    }
    i = glm_graph_index(st->rows);
    g = &gs->g[i];
    if (g->failed) {
        return -1;
    }
    need = glm_graph_need_blocks(st);
    if (g->exec != NULL
        && (g->gen != c->gen || g->scratch_moves != glm_cuda_scratch_moves
            || g->kv_k != st->kv->k || g->kv_blocks != st->kv->n_blocks
            || g->kv_block_size != st->kv->block_size || g->act != st->act
            || need > g->max_blocks))
    {
        glm_graph_drop(g);      /* something it baked in moved: made again below */
    }
    if (g->exec != NULL) {
        glm_graph_stage(c, g, st);
        GLM_CUDA_CHECK(cudaGraphLaunch(g->exec, c->stream));
        g->replays++;
        return 0;
    }

    /* a new graph (or pad-only mode): buffers for this capacity, then the warm-up */
    {
        int mb = g->max_blocks > GLM_GRAPH_MIN_BLOCKS ? g->max_blocks : GLM_GRAPH_MIN_BLOCKS;
        size_t rows = (size_t) st->rows, attn, bytes;

        while (mb < need) {
            mb *= 2;
        }
        attn = glm_graph_attn_layout(st->kv, st->attn, st->rows, mb, NULL, &L)
               * sizeof(int32_t);
        bytes = glm_round_up(rows * sizeof(int32_t), 256)
                + glm_round_up((rows * 3 + 2 * GLM_GRAPH_MAX_HALF) * sizeof(int32_t), 256)
                + attn;
        if (g->dev == NULL || bytes > g->bytes || mb != g->max_blocks) {
            size_t keep_rope = g->rope_known ? g->rope_len : 0;
            char *rope_copy = NULL;
            if (keep_rope > 0) {
                rope_copy = (char *) malloc(keep_rope);
                if (rope_copy == NULL) {
                    glm_cu_bug("out of host memory for the rope constants");
                }
                memcpy(rope_copy, g->host + g->off_rope, keep_rope);
            }
            if (g->dev != NULL) {
                GLM_CUDA_CHECK(cudaStreamSynchronize(c->stream));
                cudaFree(g->dev);
                cudaFreeHost(g->host);
            }
            GLM_CUDA_CHECK(cudaMalloc(&g->dev, bytes));
            GLM_CUDA_CHECK(cudaMallocHost((void **) &g->host, bytes));
            memset(g->host, 0, bytes);
            if (!g->has_event) {
                GLM_CUDA_CHECK(cudaEventCreateWithFlags(&g->copied, cudaEventDisableTiming));
                g->has_event = 1;
            }
            g->bytes = bytes;
            g->off_rope = glm_round_up(rows * sizeof(int32_t), 256);
            g->off_attn = g->off_rope
                          + glm_round_up((rows * 3 + 2 * GLM_GRAPH_MAX_HALF) * sizeof(int32_t), 256);
            g->attn_len = attn;
            if (rope_copy != NULL) {
                memcpy(g->host + g->off_rope, rope_copy, keep_rope);
                free(rope_copy);
            }
        }
        g->max_blocks = mb;
    }
    glm_graph_stage(c, g, st);
    /* the warm-up learns the rope constants afresh: a graph re-made for
     * another model on this backend (new weights) has other frequencies */
    g->rope_known = 0;
    gs->cur = i;
    gs->mode = GLM_GMODE_WARMUP;
    gs->why[0] = '\0';
    g->gen = c->gen;
    g->kv_k = st->kv->k;
    g->kv_blocks = st->kv->n_blocks;
    g->kv_block_size = st->kv->block_size;
    g->act = st->act;
    return 1;
}

static int
glm_cu_graph_end(glm_backend *be)
{
    glm_cuda *c = glm_cu(be);
    glm_graphs *gs = c->graphs;
    glm_graph *g;
    cudaGraph_t graph = NULL;
    cudaError_t e;

    if (gs == NULL || gs->mode == GLM_GMODE_OFF) {
        glm_cu_bug("graph_end without graph_begin");
    }
    g = &gs->g[gs->cur];
    if (gs->mode == GLM_GMODE_WARMUP) {
        if (gs->pad_only) {
            gs->mode = GLM_GMODE_OFF;
            return 0;
        }
        /* everything the step grows has grown: now record it */
        g->scratch_moves = glm_cuda_scratch_moves;
        (void) cudaGetLastError();
        GLM_CUDA_CHECK(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeGlobal));
        gs->mode = GLM_GMODE_CAPTURE;
        return 1;
    }
    gs->mode = GLM_GMODE_OFF;
    e = cudaStreamEndCapture(c->stream, &graph);
    if (e == cudaSuccess && gs->why[0] == '\0' && g->scratch_moves != glm_cuda_scratch_moves) {
        snprintf(gs->why, sizeof(gs->why), "a scratch buffer grew while capturing");
    }
    if (e != cudaSuccess && gs->why[0] == '\0') {
        snprintf(gs->why, sizeof(gs->why), "cudaStreamEndCapture: %s", cudaGetErrorString(e));
    }
    (void) cudaGetLastError();
    if (gs->why[0] == '\0') {
        e = cudaGraphInstantiate(&g->exec, graph, 0);
        if (e != cudaSuccess) {
            (void) cudaGetLastError();
            g->exec = NULL;
            snprintf(gs->why, sizeof(gs->why), "cudaGraphInstantiate: %s", cudaGetErrorString(e));
        }
    }
    if (graph != NULL) {
        cudaGraphDestroy(graph);
    }
    if (gs->why[0] != '\0') {
        g->failed = 1;
        if (strcmp(gs->why, gs->told) != 0) {
            /* once per reason: every size usually fails for the same one */
            fprintf(stderr, "glm-engine: CUDA graphs: a decode step of %d rows cannot be"
                    " captured (%s); such steps run eagerly\n", 1 << gs->cur, gs->why);
            snprintf(gs->told, sizeof(gs->told), "%s", gs->why);
        }
        return 0;
    }
    if (!g->announced) {
        /* once per size: a re-capture (something it held moved) is routine */
        fprintf(stderr, "glm-engine: CUDA graphs: decode step of %d rows captured (block"
                " tables of %d blocks per row)\n", 1 << gs->cur, g->max_blocks);
        g->announced = 1;
    }
    return 0;
}

static void
glm_graphs_init(glm_cuda *c)
{
    const char *on = getenv("GLM_CUDA_GRAPHS"), *max = getenv("GLM_CUDA_GRAPH_MAX_ROWS");
    glm_graphs *gs = (glm_graphs *) calloc(1, sizeof(*gs));

    if (gs == NULL) {
        return;                 /* no graphs: every step eager */
    }
    gs->enabled = on == NULL || strcmp(on, "0") != 0;
    gs->pad_only = on != NULL && strcmp(on, "pad") == 0;
    gs->max_rows = 1 << (GLM_GRAPH_SIZES - 1);
    if (max != NULL && atoi(max) >= 1 && atoi(max) <= gs->max_rows) {
        gs->max_rows = atoi(max);
    }
    c->graphs = gs;
    c->be.graph_rows = glm_cu_graph_rows;
    c->be.graph_begin = glm_cu_graph_begin;
    c->be.graph_end = glm_cu_graph_end;
}

static void
glm_graphs_free(glm_cuda *c)
{
    int i;

    if (c->graphs == NULL) {
        return;
    }
    for (i = 0; i < GLM_GRAPH_SIZES; i++) {
        glm_graph_free(&c->graphs->g[i]);
    }
    free(c->graphs);
    c->graphs = NULL;
}

extern "C" long
glm_backend_cuda_graph_replays(glm_backend *be)
{
    glm_cuda *c = glm_cu_checked(be);
    long n = 0;
    int i;

    for (i = 0; c->graphs != NULL && i < GLM_GRAPH_SIZES; i++) {
        n += c->graphs->g[i].replays;
    }
    return n;
}

extern "C" void
glm_backend_cuda_set_graphs(glm_backend *be, int on)
{
    glm_cuda *c = glm_cu_checked(be);

    if (c->graphs != NULL) {
        c->graphs->enabled = on;
    }
}
