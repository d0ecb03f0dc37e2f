/*
 * threadpool.c: see threadpool.h.  A run hands out ranges by an atomic
 * counter in chunks so that uneven work (attention over different lengths)
 * still balances.
 *
 * A model step is a chain of a few hundred short runs (a decode step's
 * expert matmuls take tens of microseconds), so the hand-off between runs
 * must cost less than that: no lock and no system call on the way.  The
 * caller publishes a run by bumping `generation`; a worker spins (bounded,
 * GLM_POOL_SPIN pauses, a few hundred microseconds) for the next generation
 * and counts itself out of `active` when its share is done; the caller spins
 * as long for `active` to reach 0.  Only when a spin runs out does a thread
 * sleep on a condition variable: a worker between requests, or the caller
 * waiting on a descheduled worker on a busy machine.  (Taking the mutex on
 * every run, as this pool first did, put the worker to sleep in the futex
 * whenever it met the caller inside it, and a futex wake in a VM costs more
 * than the run: two threads were slower than one.)
 *
 * Memory order, all __atomic seq_cst where a sleeper is involved:
 *   caller: job fields; generation++ (release); if sleeping > 0, lock,
 *           broadcast `wake`, unlock.
 *   worker: generation (acquire) != seen: read the job fields, work,
 *           active-- ; if that made 0 and caller_waiting, lock, signal
 *           `done`, unlock.
 *   a worker goes to sleep under mu: sleeping++ then re-reads generation;
 *   the caller bumps generation then reads sleeping: one of the two sees the
 *   other (both seq_cst), so no wake-up is lost.  The same pairing guards
 *   caller_waiting against active.
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
    uint64_t         generation;       /* bumped per run (__atomic) */
    int              stopping;         /* __atomic, set under mu */
    int              sleeping;         /* workers asleep or about to (__atomic) */
    int              caller_waiting;   /* the caller sleeps on done (__atomic) */

    /* the current run: written by the caller before generation++ */
    glm_pool_fn      fn;
    void            *ctx;
    int64_t          n, chunk;
    /* on their own cache lines: every thread writes these during a run */
    int64_t          next __attribute__((aligned(64)));     /* __atomic */
    int              active __attribute__((aligned(64)));   /* workers still in the
                                                               run (__atomic) */
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
        if (__atomic_load_n(&pool->generation, __ATOMIC_ACQUIRE) == seen
            && !__atomic_load_n(&pool->stopping, __ATOMIC_ACQUIRE))
        {
            pthread_mutex_lock(&pool->mu);
            __atomic_add_fetch(&pool->sleeping, 1, __ATOMIC_SEQ_CST);
            while (!__atomic_load_n(&pool->stopping, __ATOMIC_SEQ_CST)
                   && __atomic_load_n(&pool->generation, __ATOMIC_SEQ_CST) == seen)
            {
                pthread_cond_wait(&pool->wake, &pool->mu);
            }
            __atomic_sub_fetch(&pool->sleeping, 1, __ATOMIC_SEQ_CST);
            pthread_mutex_unlock(&pool->mu);
        }
        if (__atomic_load_n(&pool->stopping, __ATOMIC_ACQUIRE)) {
            break;
        }
        seen = __atomic_load_n(&pool->generation, __ATOMIC_ACQUIRE);
        glm_pool_work(pool, index);
        if (__atomic_sub_fetch(&pool->active, 1, __ATOMIC_SEQ_CST) == 0
            && __atomic_load_n(&pool->caller_waiting, __ATOMIC_SEQ_CST))
        {
            pthread_mutex_lock(&pool->mu);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->mu);
        }
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
    /* every worker has counted itself out of the last run (active == 0), so
     * none reads these while they change */
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n = n;
    pool->chunk = chunk;
    __atomic_store_n(&pool->next, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&pool->active, pool->nthreads - 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&pool->generation, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&pool->sleeping, __ATOMIC_SEQ_CST) > 0) {
        pthread_mutex_lock(&pool->mu);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mu);
    }

    glm_pool_work(pool, 0);

    for (spin = 0; spin < GLM_POOL_SPIN
                   && __atomic_load_n(&pool->active, __ATOMIC_ACQUIRE) > 0; spin++)
    {
        glm_pool_pause();
    }
    if (__atomic_load_n(&pool->active, __ATOMIC_ACQUIRE) > 0) {
        pthread_mutex_lock(&pool->mu);
        __atomic_store_n(&pool->caller_waiting, 1, __ATOMIC_SEQ_CST);
        while (__atomic_load_n(&pool->active, __ATOMIC_SEQ_CST) > 0) {
            pthread_cond_wait(&pool->done, &pool->mu);
        }
        __atomic_store_n(&pool->caller_waiting, 0, __ATOMIC_SEQ_CST);
        pthread_mutex_unlock(&pool->mu);
    }
}
