/*
 * test_threadpool.c: glm_pool_run covers [0, n) exactly once per run, with
 * thread indices in range, through each way a run is handed over:
 *
 * 1. back to back: the workers spinning for the next generation and the
 *    caller spinning for them (the lock-free path a model step takes);
 * 2. after a pause longer than the spin: the workers asleep, woken by the
 *    caller's broadcast;
 * 3. a slow chunk: the caller outlasts its spin and sleeps until the worker
 *    counts itself out;
 * 4. more threads than CPUs, so threads are descheduled mid-run;
 * 5. create and destroy with workers asleep and with workers spinning.
 *
 * A lost wake-up hangs (make test's timeout catches it); a lost or doubled
 * range, or a run that returns before its ranges are done, fails a count.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/threadpool.h"

static int passed, failed;

#define CHECK(cond, ...) do {                                   \
    if (cond) { passed++; } else {                              \
        failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__);   \
        printf(__VA_ARGS__); printf("\n"); }                    \
} while (0)

#define MAX_N 257

typedef struct {
    int  hits[MAX_N];      /* __atomic */
    int  bad_thread;       /* __atomic */
    int  nthreads;
    int  slow_index;       /* this index sleeps a while; -1 none */
} run_ctx;

static void
sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

    nanosleep(&ts, NULL);
}

static void
mark(void *p, int64_t begin, int64_t end, int thread)
{
    run_ctx *c = p;
    int64_t i;

    if (thread < 0 || thread >= c->nthreads) {
        __atomic_add_fetch(&c->bad_thread, 1, __ATOMIC_RELAXED);
    }
    for (i = begin; i < end; i++) {
        if (i == c->slow_index) {
            sleep_us(20000);
        }
        __atomic_add_fetch(&c->hits[i], 1, __ATOMIC_RELAXED);
    }
}

/* runs: how many; pause_us between them; returns the runs whose counts were
 * not exactly one per index right after glm_pool_run returned */
static int
runs(glm_pool *pool, int count, long pause_us, int slow, int *bad_thread)
{
    static run_ctx c;
    int r, i, n, wrong = 0;

    for (r = 0; r < count; r++) {
        n = 1 + (r * 37) % (MAX_N - 1);
        memset(&c, 0, sizeof(c));
        c.nthreads = glm_pool_threads(pool);
        c.slow_index = slow ? n / 2 : -1;
        glm_pool_run(pool, n, mark, &c);
        for (i = 0; i < MAX_N; i++) {
            if (__atomic_load_n(&c.hits[i], __ATOMIC_RELAXED) != (i < n)) {
                wrong++;
                break;
            }
        }
        *bad_thread += __atomic_load_n(&c.bad_thread, __ATOMIC_RELAXED);
        if (pause_us > 0) {
            sleep_us(pause_us);
        }
    }
    return wrong;
}

int
main(void)
{
    static const int threads[] = { 1, 2, 5 };
    size_t t;

    for (t = 0; t < sizeof(threads) / sizeof(threads[0]); t++) {
        glm_pool *pool = glm_pool_create(threads[t]);
        int bad_thread = 0, wrong;

        CHECK(pool != NULL && glm_pool_threads(pool) == threads[t],
              "pool of %d threads", threads[t]);
        if (pool == NULL) {
            continue;
        }
        wrong = runs(pool, 3000, 0, 0, &bad_thread);
        CHECK(wrong == 0, "%d threads, back to back: %d runs miscounted", threads[t], wrong);
        /* past the spin (GLM_POOL_SPIN pauses, well under 5 ms): asleep */
        wrong = runs(pool, 40, 5000, 0, &bad_thread);
        CHECK(wrong == 0, "%d threads, after pauses: %d runs miscounted", threads[t], wrong);
        wrong = runs(pool, 10, 0, 1, &bad_thread);
        CHECK(wrong == 0, "%d threads, a slow chunk: %d runs miscounted", threads[t], wrong);
        wrong = runs(pool, 500, 0, 0, &bad_thread);
        CHECK(wrong == 0, "%d threads, back to back again: %d runs miscounted", threads[t],
              wrong);
        CHECK(bad_thread == 0, "%d threads: %d ranges ran with a thread index out of range",
              threads[t], bad_thread);
        glm_pool_destroy(pool);             /* workers spinning */

        pool = glm_pool_create(threads[t]);
        sleep_us(20000);
        glm_pool_destroy(pool);             /* workers asleep */
        printf("POOL threads=%d runs checked\n", threads[t]);
    }
    printf("test_threadpool: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
