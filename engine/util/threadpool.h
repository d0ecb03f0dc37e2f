/*
 * threadpool.h: a fixed set of worker threads for data-parallel loops.
 *
 * glm_pool_run(pool, n, fn, ctx) calls fn(ctx, begin, end, thread) over
 * disjoint ranges covering [0, n) and returns when all are done.  The calling
 * thread takes part, so a pool of 1 thread runs everything inline.  One run at
 * a time per pool: the model step owns its pool.
 */
#ifndef GLM_THREADPOOL_H
#define GLM_THREADPOOL_H

#include <stdint.h>

typedef struct glm_pool glm_pool;

typedef void (*glm_pool_fn)(void *ctx, int64_t begin, int64_t end, int thread);

/* nthreads <= 0: one per online CPU. */
glm_pool *glm_pool_create(int nthreads);
void glm_pool_destroy(glm_pool *pool);
int glm_pool_threads(const glm_pool *pool);
void glm_pool_run(glm_pool *pool, int64_t n, glm_pool_fn fn, void *ctx);

#endif
