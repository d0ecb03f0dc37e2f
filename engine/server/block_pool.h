/*
 * block_pool.h: the paged KV cache's blocks: who holds each one, which are
 * free, and automatic prefix caching (vLLM's, docs/design/prefix_caching).
 *
 * A full block is named by a chained hash:
 *
 *   hash(block i) = SHA-256(hash(block i-1) || its token ids || extra)
 *   hash(block -1) = SHA-256("glm-prefix-cache" || the model's identity)
 *
 * where extra is whatever else decides the block's keys and values beyond
 * the ids and the blocks before it (for GLM-4.5V: the digests of the images
 * and videos whose placeholder tokens lie in the block, and rope positions
 * that are not the text default; scheduler.c builds it).  Two sequences
 * whose prompts start with the same ids therefore find the same hashes for
 * their common full blocks, and the second takes the first's blocks instead
 * of computing them.  SHA-256, as vLLM's default prefix_caching_hash_algo,
 * so that nobody can make two different prefixes collide on purpose.
 *
 * Every block is in exactly one of three states:
 *   held       ref > 0: in the block table of ref sequences;
 *   evictable  ref == 0 and cached: its hash in the table, its keys and
 *              values kept for a later prompt, on an LRU list;
 *   free       ref == 0 and not cached.
 * A block is cached (given its hash) once it is full; a cached block is
 * never written again, so any number of sequences may hold it.  Allocation
 * takes a free block and evicts the least recently released evictable one
 * only when no free block is left.  glm_block_pool_n_free() counts both
 * kinds, as vLLM's usage does: an evictable block is capacity.
 *
 * Single-threaded: the engine loop owns the pool.
 */
#ifndef GLM_BLOCK_POOL_H
#define GLM_BLOCK_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

#define GLM_BLOCK_HASH_SIZE 32

typedef struct {
    uint8_t  b[GLM_BLOCK_HASH_SIZE];
} glm_block_hash;

typedef struct {
    int              n_blocks, block_size;
    int              caching;          /* 0: every release frees */
    glm_block_hash   root;             /* the hash before block 0 */
    int32_t         *ref;              /* [n_blocks] holders */
    uint8_t         *cached;           /* [n_blocks] 1: hash[b] is in the table */
    glm_block_hash  *hash;             /* [n_blocks] */
    int32_t         *free_stack;       /* free blocks, the next on top */
    int              n_free_stack;
    int32_t         *lru_prev, *lru_next;   /* evictable blocks, oldest first */
    int32_t          lru_head, lru_tail;
    int              n_evictable;
    int32_t         *table;            /* open addressing: block id, -1 empty */
    uint32_t         table_mask;
    void            *sha;              /* libavutil's AVSHA, reused */
    uint64_t         evictions;
} glm_block_pool;

/* All blocks free, caching off. */
int glm_block_pool_init(glm_block_pool *p, int n_blocks, int block_size, glm_err *err);
void glm_block_pool_free(glm_block_pool *p);

/* Turns caching on; identity names the model (its blocks' root hash). */
int glm_block_pool_enable_caching(glm_block_pool *p, const void *identity, size_t len,
    glm_err *err);

/* Free plus evictable: what allocation can still hand out. */
int glm_block_pool_n_free(const glm_block_pool *p);

/* A block for new keys and values, held once: a free one, else the least
 * recently released evictable one (dropped from the cache); -1 if none. */
int32_t glm_block_pool_alloc(glm_block_pool *p);

/* Another holder for a cached block found by glm_block_pool_lookup (an
 * evictable one leaves the LRU list). */
void glm_block_pool_take(glm_block_pool *p, int32_t b);

/* One holder less; at none, a cached block becomes evictable (the most
 * recent), any other free.  Release a sequence's blocks last to first, so
 * that its tail goes before its head (the head is what others share). */
void glm_block_pool_release(glm_block_pool *p, int32_t b);

/* The cached block with this hash, or -1. */
int32_t glm_block_pool_lookup(const glm_block_pool *p, const glm_block_hash *h);

/* Offers a held, full block under hash h.  Nothing happens when caching is
 * off or another block already has the hash (that one stays the cached
 * copy; b is freed as usual when released).  Returns 1 when b was cached. */
int glm_block_pool_cache(glm_block_pool *p, int32_t b, const glm_block_hash *h);

/* out = SHA-256(parent || ids || extra): one block's chained hash (with
 * caching on: it uses the pool's hash context). */
void glm_block_pool_hash(glm_block_pool *p, glm_block_hash *out,
    const glm_block_hash *parent, const int32_t *ids, int n, const void *extra,
    size_t extra_len);

#endif
