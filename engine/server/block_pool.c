/*
 * block_pool.c: see block_pool.h.
 *
 * The hash table is open addressing with linear probing over the first 8
 * bytes of each hash (SHA-256 output is uniform), at most half full, and
 * deletes by shifting the following entries back, so lookups never meet
 * tombstones however long the engine runs.
 */
#include "block_pool.h"

#include <libavutil/mem.h>
#include <libavutil/sha.h>
#include <stdlib.h>
#include <string.h>

static uint32_t glm_pool_slot(const glm_block_pool *p, const glm_block_hash *h);
static void glm_pool_table_remove(glm_block_pool *p, int32_t b);
static void glm_pool_lru_unlink(glm_block_pool *p, int32_t b);
static void glm_pool_lru_append(glm_block_pool *p, int32_t b);

int
glm_block_pool_init(glm_block_pool *p, int n_blocks, int block_size, glm_err *err)
{
    uint32_t size = 1;
    int i;

    memset(p, 0, sizeof(*p));
    if (n_blocks <= 0 || block_size <= 0) {
        return glm_errf(err, "the KV cache needs at least one block of at least one token");
    }
    while (size < 2u * (uint32_t) n_blocks) {
        size <<= 1;
    }
    p->n_blocks = n_blocks;
    p->block_size = block_size;
    p->ref = calloc((size_t) n_blocks, sizeof(int32_t));
    p->cached = calloc((size_t) n_blocks, 1);
    p->free_stack = malloc((size_t) n_blocks * sizeof(int32_t));
    p->lru_prev = malloc((size_t) n_blocks * sizeof(int32_t));
    p->lru_next = malloc((size_t) n_blocks * sizeof(int32_t));
    if (p->ref == NULL || p->cached == NULL || p->free_stack == NULL
        || p->lru_prev == NULL || p->lru_next == NULL)
    {
        glm_block_pool_free(p);
        return glm_errf(err, "out of memory for %d KV blocks", n_blocks);
    }
    /* block 0 on top: the first sequence gets blocks 0, 1, 2... */
    for (i = 0; i < n_blocks; i++) {
        p->free_stack[i] = n_blocks - 1 - i;
    }
    p->n_free_stack = n_blocks;
    p->lru_head = p->lru_tail = -1;
    p->table_mask = size - 1;
    return 0;
}

void
glm_block_pool_free(glm_block_pool *p)
{
    free(p->ref); free(p->cached); free(p->hash); free(p->free_stack);
    free(p->lru_prev); free(p->lru_next); free(p->table);
    av_free(p->sha);
    memset(p, 0, sizeof(*p));
}

int
glm_block_pool_enable_caching(glm_block_pool *p, const void *identity, size_t len,
    glm_err *err)
{
    static const char tag[] = "glm-prefix-cache";
    uint32_t i;

    if (p->caching) {
        return 0;
    }
    p->hash = malloc((size_t) p->n_blocks * sizeof(glm_block_hash));
    p->table = malloc(((size_t) p->table_mask + 1) * sizeof(int32_t));
    p->sha = av_sha_alloc();
    if (p->hash == NULL || p->table == NULL || p->sha == NULL) {
        free(p->hash); free(p->table); av_free(p->sha);
        p->hash = NULL; p->table = NULL; p->sha = NULL;
        return glm_errf(err, "out of memory for the prefix cache of %d blocks", p->n_blocks);
    }
    for (i = 0; i <= p->table_mask; i++) {
        p->table[i] = -1;
    }
    av_sha_init(p->sha, 256);
    av_sha_update(p->sha, (const uint8_t *) tag, sizeof(tag) - 1);
    av_sha_update(p->sha, identity, len);
    av_sha_final(p->sha, p->root.b);
    p->caching = 1;
    return 0;
}

int
glm_block_pool_n_free(const glm_block_pool *p)
{
    return p->n_free_stack + p->n_evictable;
}

int32_t
glm_block_pool_alloc(glm_block_pool *p)
{
    int32_t b;

    if (p->n_free_stack > 0) {
        b = p->free_stack[--p->n_free_stack];
    } else if (p->lru_head >= 0) {
        b = p->lru_head;
        glm_pool_lru_unlink(p, b);
        glm_pool_table_remove(p, b);
        p->cached[b] = 0;
        p->evictions++;
    } else {
        return -1;
    }
    p->ref[b] = 1;
    return b;
}

void
glm_block_pool_take(glm_block_pool *p, int32_t b)
{
    if (p->ref[b]++ == 0) {
        glm_pool_lru_unlink(p, b);
    }
}

void
glm_block_pool_release(glm_block_pool *p, int32_t b)
{
    if (--p->ref[b] > 0) {
        return;
    }
    if (p->cached[b]) {
        glm_pool_lru_append(p, b);
    } else {
        p->free_stack[p->n_free_stack++] = b;
    }
}

int32_t
glm_block_pool_lookup(const glm_block_pool *p, const glm_block_hash *h)
{
    uint32_t i;

    if (!p->caching) {
        return -1;
    }
    for (i = glm_pool_slot(p, h); p->table[i] >= 0; i = (i + 1) & p->table_mask) {
        if (memcmp(p->hash[p->table[i]].b, h->b, GLM_BLOCK_HASH_SIZE) == 0) {
            return p->table[i];
        }
    }
    return -1;
}

int
glm_block_pool_cache(glm_block_pool *p, int32_t b, const glm_block_hash *h)
{
    uint32_t i;

    if (!p->caching || p->cached[b]) {
        return 0;
    }
    for (i = glm_pool_slot(p, h); p->table[i] >= 0; i = (i + 1) & p->table_mask) {
        if (memcmp(p->hash[p->table[i]].b, h->b, GLM_BLOCK_HASH_SIZE) == 0) {
            return 0;
        }
    }
    /* at most n_blocks entries in a table of 2 n_blocks: a slot is empty */
    p->hash[b] = *h;
    p->cached[b] = 1;
    p->table[i] = b;
    return 1;
}

void
glm_block_pool_hash(glm_block_pool *p, glm_block_hash *out, const glm_block_hash *parent,
    const int32_t *ids, int n, const void *extra, size_t extra_len)
{
    av_sha_init(p->sha, 256);
    av_sha_update(p->sha, parent->b, GLM_BLOCK_HASH_SIZE);
    av_sha_update(p->sha, (const uint8_t *) ids, (size_t) n * sizeof(int32_t));
    if (extra_len > 0) {
        av_sha_update(p->sha, extra, extra_len);
    }
    av_sha_final(p->sha, out->b);
}

static uint32_t
glm_pool_slot(const glm_block_pool *p, const glm_block_hash *h)
{
    uint64_t v;

    memcpy(&v, h->b, sizeof(v));
    return (uint32_t) (v & p->table_mask);
}

/* Backward-shift deletion: each entry after the hole that may move back
 * (its home slot is not between the hole and itself) fills the hole. */
static void
glm_pool_table_remove(glm_block_pool *p, int32_t b)
{
    uint32_t hole, i, home;

    for (hole = glm_pool_slot(p, &p->hash[b]); p->table[hole] != b;
         hole = (hole + 1) & p->table_mask)
    {
        /* b is cached, so it is in the table */
    }
    p->table[hole] = -1;
    for (i = (hole + 1) & p->table_mask; p->table[i] >= 0; i = (i + 1) & p->table_mask) {
        home = glm_pool_slot(p, &p->hash[p->table[i]]);
        if (((i - home) & p->table_mask) >= ((i - hole) & p->table_mask)) {
            p->table[hole] = p->table[i];
            p->table[i] = -1;
            hole = i;
        }
    }
}

static void
glm_pool_lru_unlink(glm_block_pool *p, int32_t b)
{
    int32_t prev = p->lru_prev[b], next = p->lru_next[b];

    if (prev >= 0) {
        p->lru_next[prev] = next;
    } else {
        p->lru_head = next;
    }
    if (next >= 0) {
        p->lru_prev[next] = prev;
    } else {
        p->lru_tail = prev;
    }
    p->n_evictable--;
}

static void
glm_pool_lru_append(glm_block_pool *p, int32_t b)
{
    p->lru_prev[b] = p->lru_tail;
    p->lru_next[b] = -1;
    if (p->lru_tail >= 0) {
        p->lru_next[p->lru_tail] = b;
    } else {
        p->lru_head = b;
    }
    p->lru_tail = b;
    p->n_evictable++;
}
