/*
 * threadpool.c: see threadpool.h.  Workers sleep on a condition variable
 * between runs; a run hands out ranges by an atomic counter in chunks so that
 * uneven work (attention over different lengths) still balances.
 *
 * A model step is a chain of a few hundred short runs, so a worker first
 * spins a little (GLM_POOL_SPIN pauses, tens of microseconds) for the next
 * run before it sleeps, and the caller spins as long for the workers to
 * finish: a futex wake-up per run would cost as much as a small matmul.
 * The spin is bounded, so on a busy machine a descheduled thread costs its
 * chunk, never a stall: the atomic counter hands the rest to whoever runs.
 */
#include "threadpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define GLM_POOL_SPIN 4096

static inline void
glm_pool_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

struct glm_pool {
    int              nthreads;
    pthread_t       *threads;
    pthread_mutex_t  mu;
    pthread_cond_t   wake, done;
    uint64_t         generation;       /* bumped per run (__atomic, under mu) */
    int              stopping;         /* __atomic, set under mu */
    int              active;           /* workers still inside the run (__atomic,
                                          under mu) */

    /* the current run */
    glm_pool_fn      fn;
    void            *ctx;
    int64_t          n, chunk;
    int64_t          next;             /* __atomic */
};

typedef struct {
    glm_pool *pool;
    int       index;
} glm_worker_arg;

static void
glm_pool_work(glm_pool *pool, int thread)
{
    int64_t begin, end;

    for ( ;; ) {
        begin = __atomic_fetch_add(&pool->next, pool->chunk, __ATOMIC_RELAXED);
        if (begin >= pool->n) {
            return;
        }
        end = begin + pool->chunk < pool->n ? begin + pool->chunk : pool->n;
        pool->fn(pool->ctx, begin, end, thread);
    }
}

static void *
glm_pool_main(void *p)
{
    glm_worker_arg *arg = p;
    glm_pool *pool = arg->pool;
    int index = arg->index;
    uint64_t seen = 0;

    free(arg);
    for ( ;; ) {
        int spin;

        for (spin = 0; spin < GLM_POOL_SPIN
                       && __atomic_load_n(&pool->generation, __ATOMIC_ACQUIRE) == seen
                       && !__atomic_load_n(&pool->stopping, __ATOMIC_ACQUIRE); spin++)
        {
            glm_pool_pause();
        }
        pthread_mutex_lock(&pool->mu);
        while (!pool->stopping && pool->generation == seen) {
            pthread_cond_wait(&pool->wake, &pool->mu);
        }
        if (pool->stopping) {
            pthread_mutex_unlock(&pool->mu);
            break;
        }
        seen = pool->generation;
        pthread_mutex_unlock(&pool->mu);
        glm_pool_work(pool, index);
        pthread_mutex_lock(&pool->mu);
        if (__atomic_sub_fetch(&pool->active, 1, __ATOMIC_ACQ_REL) == 0) {
            pthread_cond_signal(&pool->done);
        }
        pthread_mutex_unlock(&pool->mu);
    }
    return NULL;
}

glm_pool *
glm_pool_create(int nthreads)
{
    glm_pool *pool;
    int i;

    if (nthreads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = n > 0 ? (int) n : 1;
    }
    pool = calloc(1, sizeof(*pool));
    if (pool == NULL) {
        return NULL;
    }
    pool->nthreads = nthreads;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    pool->threads = calloc((size_t) nthreads, sizeof(pthread_t));
    if (pool->threads == NULL) {
        free(pool);
        return NULL;
    }
    for (i = 1; i < nthreads; i++) {
        glm_worker_arg *arg = malloc(sizeof(*arg));
        if (arg == NULL) {
            break;
        }
        arg->pool = pool;
        arg->index = i;
        if (pthread_create(&pool->threads[i], NULL, glm_pool_main, arg) != 0) {
            free(arg);
            break;
        }
    }
    pool->nthreads = i;         /* what we actually got */
    return pool;
}

void
glm_pool_destroy(glm_pool *pool)
{
    int i;

    if (pool == NULL) {
        return;
    }
    pthread_mutex_lock(&pool->mu);
    __atomic_store_n(&pool->stopping, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mu);
    for (i = 1; i < pool->nthreads; i++) {
        pthread_join(pool->threads[i], NULL);
    }
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->wake);
    pthread_cond_destroy(&pool->done);
    free(pool->threads);
    free(pool);
}

int
glm_pool_threads(const glm_pool *pool)
{
    return pool->nthreads;
}

void
glm_pool_run(glm_pool *pool, int64_t n, glm_pool_fn fn, void *ctx)
{
    int64_t chunk;
    int spin;

    if (n <= 0) {
        return;
    }
    if (pool->nthreads == 1 || n == 1) {
        fn(ctx, 0, n, 0);
        return;
    }
    /* about 4 chunks per thread: balance without much counter traffic */
    chunk = n / ((int64_t) pool->nthreads * 4);
    if (chunk < 1) {
        chunk = 1;
    }
    pthread_mutex_lock(&pool->mu);
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n = n;
    pool->chunk = chunk;
    __atomic_store_n(&pool->next, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&pool->active, pool->nthreads - 1, __ATOMIC_RELAXED);
    __atomic_store_n(&pool->generation, pool->generation + 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mu);

    glm_pool_work(pool, 0);

    for (spin = 0; spin < GLM_POOL_SPIN
                   && __atomic_load_n(&pool->active, __ATOMIC_ACQUIRE) > 0; spin++)
    {
        glm_pool_pause();
    }
    pthread_mutex_lock(&pool->mu);
    while (pool->active > 0) {
        pthread_cond_wait(&pool->done, &pool->mu);
    }
    pthread_mutex_unlock(&pool->mu);
}
