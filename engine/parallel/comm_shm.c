/*
 * comm_shm.c: the collectives of comm.h between threads of one process, for
 * the CPU backend's ranks.
 *
 * The ranks share one small table of pointers: each collective publishes
 * this rank's buffer in its slot, meets the others at a barrier, works on
 * the others' buffers directly (they are plain host memory), and meets them
 * again before returning, so no buffer is read after its owner has moved on.
 *
 * all_reduce_sum splits the elements into `size` ranges, one per rank; rank
 * r sums its range over every rank's buffer in rank order and writes the
 * sum back into every buffer.  Each element is therefore written by one
 * thread only, its sum always takes the same order, and the result is the
 * same bits whatever the threads' timing.  BF16 elements (the CUDA
 * backend's activations, in the emulator whose device memory is host
 * memory) are widened, summed in fp32 in the same rank order and rounded
 * to BF16 once, to nearest even.  No scratch: a step allocates nothing.
 */
#include "comm.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int                size;
    int                refs;            /* handles not yet destroyed */
    pthread_mutex_t    lock;            /* refs */
    pthread_barrier_t  barrier;
    const void       **slot;            /* [size] each rank's published buffer */
} glm_shm_group;

typedef struct {
    glm_comm       base;
    glm_shm_group *g;
} glm_shm_comm;

static glm_shm_group *
glm_shm_group_of(glm_comm *c)
{
    return ((glm_shm_comm *) c)->g;
}

/* Elements [lo, hi) of n for rank r, `per_line` elements to a 64-byte
 * line: ranges of whole lines, so two ranks never write one cache line. */
static void
glm_shm_range(size_t n, size_t per_line, int r, int size, size_t *lo, size_t *hi)
{
    size_t lines = (n + per_line - 1) / per_line;

    *lo = lines * (size_t) r / (size_t) size * per_line;
    *hi = lines * (size_t) (r + 1) / (size_t) size * per_line;
    *lo = *lo < n ? *lo : n;
    *hi = *hi < n ? *hi : n;
}

static void
glm_shm_all_reduce_sum(glm_comm *c, void *buf, size_t n, glm_act_dtype dtype)
{
    glm_shm_group *g = glm_shm_group_of(c);
    size_t lo, hi, i;
    int r;

    g->slot[c->rank] = buf;
    pthread_barrier_wait(&g->barrier);
    if (dtype == GLM_ACT_BF16) {
        glm_shm_range(n, 32, c->rank, g->size, &lo, &hi);
        for (i = lo; i < hi; i++) {
            float sum = glm_bf16_to_f32(((const uint16_t *) g->slot[0])[i]);
            uint16_t h;
            for (r = 1; r < g->size; r++) {
                sum += glm_bf16_to_f32(((const uint16_t *) g->slot[r])[i]);
            }
            h = glm_f32_to_bf16(sum);
            for (r = 0; r < g->size; r++) {
                ((uint16_t *) g->slot[r])[i] = h;
            }
        }
    } else {
        glm_shm_range(n, 16, c->rank, g->size, &lo, &hi);
        for (i = lo; i < hi; i++) {
            float sum = ((const float *) g->slot[0])[i];
            for (r = 1; r < g->size; r++) {
                sum += ((const float *) g->slot[r])[i];
            }
            for (r = 0; r < g->size; r++) {
                ((float *) g->slot[r])[i] = sum;
            }
        }
    }
    pthread_barrier_wait(&g->barrier);
}

static void
glm_shm_all_gather(glm_comm *c, const void *send, void *recv, size_t bytes)
{
    glm_shm_group *g = glm_shm_group_of(c);
    int r;

    g->slot[c->rank] = send;
    pthread_barrier_wait(&g->barrier);
    for (r = 0; r < g->size; r++) {
        memcpy((char *) recv + (size_t) r * bytes, g->slot[r], bytes);
    }
    pthread_barrier_wait(&g->barrier);
}

static void
glm_shm_broadcast(glm_comm *c, void *buf, size_t bytes, int root)
{
    glm_shm_group *g = glm_shm_group_of(c);

    if (c->rank == root) {
        g->slot[root] = buf;
    }
    pthread_barrier_wait(&g->barrier);
    if (c->rank != root) {
        memcpy(buf, g->slot[root], bytes);
    }
    pthread_barrier_wait(&g->barrier);
}

static void
glm_shm_barrier(glm_comm *c)
{
    pthread_barrier_wait(&glm_shm_group_of(c)->barrier);
}

/* every collective is done when it returns */
static void
glm_shm_wait(glm_comm *c)
{
    (void) c;
}

static void
glm_shm_destroy(glm_comm *c)
{
    glm_shm_group *g = glm_shm_group_of(c);
    int last;

    pthread_mutex_lock(&g->lock);
    last = --g->refs == 0;
    pthread_mutex_unlock(&g->lock);
    free(c);
    if (last) {
        pthread_barrier_destroy(&g->barrier);
        pthread_mutex_destroy(&g->lock);
        free(g->slot);
        free(g);
    }
}

static const glm_comm_ops glm_shm_ops = {
    .name = "shm",
    .all_reduce_sum = glm_shm_all_reduce_sum,
    .all_gather = glm_shm_all_gather,
    .broadcast = glm_shm_broadcast,
    .barrier = glm_shm_barrier,
    .wait = glm_shm_wait,
    .destroy = glm_shm_destroy,
};

int
glm_comm_shm_create(int size, glm_comm **out, glm_err *err)
{
    glm_shm_group *g;
    int r;

    if (size < 1 || size > 4096) {
        return glm_errf(err, "a group of %d ranks: want 1 to 4096", size);
    }
    g = calloc(1, sizeof(*g));
    if (g == NULL || (g->slot = calloc((size_t) size, sizeof(void *))) == NULL) {
        free(g);
        return glm_errf(err, "out of memory");
    }
    g->size = size;
    if (pthread_barrier_init(&g->barrier, NULL, (unsigned) size) != 0) {
        free(g->slot);
        free(g);
        return glm_errf(err, "cannot create a barrier for %d ranks", size);
    }
    pthread_mutex_init(&g->lock, NULL);
    for (r = 0; r < size; r++) {
        glm_shm_comm *sc = calloc(1, sizeof(*sc));
        if (sc == NULL) {
            while (r-- > 0) {
                free(out[r]);
            }
            pthread_barrier_destroy(&g->barrier);
            pthread_mutex_destroy(&g->lock);
            free(g->slot);
            free(g);
            return glm_errf(err, "out of memory");
        }
        sc->base = (glm_comm) { &glm_shm_ops, r, size };
        sc->g = g;
        out[r] = &sc->base;
    }
    g->refs = size;
    return 0;
}
