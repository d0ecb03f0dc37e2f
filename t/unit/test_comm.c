/*
 * test_comm.c: the shared-memory communicator (engine/parallel/comm_shm.c)
 * under N = 1..8 rank threads and odd sizes, against a serial computation:
 *
 * 1. all_reduce_sum: every rank ends with the sum over ranks of each
 *    element, taken in rank order (so equal bits to the serial loop, not
 *    only close), for n = 1, 7, 15, 16, 17, 4097, 65537 floats, many rounds
 *    back to back with the buffers changing between rounds;
 * 2. all_gather and broadcast (every root) of odd byte counts;
 * 3. the same reductions twice give the same bits (deterministic for a given
 *    N), with values chosen so that a different summation order would
 *    round differently;
 * 4. the BF16 all-reduce (the CUDA backend's activations, in the emulator):
 *    for n = 1, 31, 32, 33, 4097, 65537 elements (ranges of 32-element
 *    lines, cut anywhere), every rank ends with the fp32 sum of the ranks'
 *    BF16 values in rank order rounded to BF16 once, equal bits; and for
 *    N >= 3 some elements would differ had each partial sum been rounded
 *    (so the check can tell the two apart).
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parallel/comm.h"

static int passed, failed;

#define CHECK(cond, ...) do {                                   \
    if (cond) { passed++; } else {                              \
        failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__);   \
        printf(__VA_ARGS__); printf("\n"); }                    \
} while (0)

static const size_t sizes[] = { 1, 7, 15, 16, 17, 4097, 65537 };
#define N_SIZES (sizeof(sizes) / sizeof(sizes[0]))
static const size_t bf16_sizes[] = { 1, 31, 32, 33, 4097, 65537 };
#define N_BF16_SIZES (sizeof(bf16_sizes) / sizeof(bf16_sizes[0]))
#define ROUNDS 5

/* rank r's contribution to element i in round k: magnitudes far apart, so
 * that summing in another order rounds differently */
static float
contribution(int r, size_t i, int k)
{
    unsigned h = (unsigned) (r * 2654435761u) ^ (unsigned) (i * 40503u) ^ (unsigned) (k * 97u);
    float mag = (r % 3 == 0) ? 1e7f : (r % 3 == 1) ? 1.0f : 1e-3f;

    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    return mag * ((float) (h % 20001u) / 10000.0f - 1.0f);
}

typedef struct {
    glm_comm *c;
    int       size;
    size_t    bad_reduce, bad_gather, bad_bcast, bad_repeat;
    float     max_err;
    size_t    bad_bf16, bf16_per_hop_differs;
} rank_job;

/* rank r's BF16 value of element i in round k: all of one magnitude, so
 * rounding each partial sum would often round differently from once */
static uint16_t
bf16_contribution(int r, size_t i, int k)
{
    return glm_f32_to_bf16(contribution(r * 3 + 1, i, k));     /* magnitude 1 */
}

/* The BF16 all-reduce of every round and size against the serial sum. */
static void
check_bf16(rank_job *j, uint16_t *h, int k)
{
    int r = j->c->rank, N = j->size, q;
    size_t si, i, n;

    for (si = 0; si < N_BF16_SIZES; si++) {
        n = bf16_sizes[si];
        for (i = 0; i < n; i++) {
            h[i] = bf16_contribution(r, i, k);
        }
        glm_comm_all_reduce_act(j->c, h, n, GLM_ACT_BF16);
        for (i = 0; i < n; i++) {
            float once = glm_bf16_to_f32(bf16_contribution(0, i, k));
            float hop = once;
            for (q = 1; q < N; q++) {
                once += glm_bf16_to_f32(bf16_contribution(q, i, k));
                hop = glm_bf16_to_f32(glm_f32_to_bf16(hop
                                                      + glm_bf16_to_f32(bf16_contribution(q, i, k))));
            }
            j->bad_bf16 += h[i] != glm_f32_to_bf16(once);
            j->bf16_per_hop_differs += glm_f32_to_bf16(once) != glm_f32_to_bf16(hop);
        }
    }
}

static void *
rank_main(void *p)
{
    rank_job *j = p;
    int r = j->c->rank, N = j->size, k, s, q, root;
    size_t si, i, n;
    float *buf = malloc(65537 * sizeof(float)), *again = malloc(65537 * sizeof(float));
    unsigned char *send = malloc(4099), *recv = malloc(4099 * 8), *bc = malloc(4099);
    uint16_t *h = malloc(65537 * sizeof(uint16_t));

    for (k = 0; k < ROUNDS; k++) {
        check_bf16(j, h, k);
        for (si = 0; si < N_SIZES; si++) {
            n = sizes[si];
            for (i = 0; i < n; i++) {
                buf[i] = again[i] = contribution(r, i, k);
            }
            glm_comm_all_reduce_sum(j->c, buf, n);
            glm_comm_all_reduce_sum(j->c, again, n);
            for (i = 0; i < n; i++) {
                float want = contribution(0, i, k);
                for (q = 1; q < N; q++) {
                    want += contribution(q, i, k);
                }
                if (memcmp(&buf[i], &want, sizeof(float)) != 0) {
                    float e = fabsf(buf[i] - want);
                    j->bad_reduce++;
                    j->max_err = e > j->max_err ? e : j->max_err;
                }
                if (memcmp(&buf[i], &again[i], sizeof(float)) != 0) {
                    j->bad_repeat++;
                }
            }
        }
        /* all-gather of 1, 3 and 4099 bytes */
        for (s = 1; s <= 4099; s = s == 1 ? 3 : s == 3 ? 4099 : 5000) {
            for (i = 0; i < (size_t) s; i++) {
                send[i] = (unsigned char) (r * 31 + (int) i + k);
            }
            memset(recv, 0xee, (size_t) s * N);
            glm_comm_all_gather(j->c, send, recv, (size_t) s);
            for (q = 0; q < N; q++) {
                for (i = 0; i < (size_t) s; i++) {
                    j->bad_gather += recv[(size_t) q * s + i] != (unsigned char) (q * 31 + (int) i + k);
                }
            }
        }
        /* broadcast of 4099 bytes from every root */
        for (root = 0; root < N; root++) {
            for (i = 0; i < 4099; i++) {
                bc[i] = (unsigned char) (r == root ? root + i + k : 0xee);
            }
            glm_comm_broadcast(j->c, bc, 4099, root);
            for (i = 0; i < 4099; i++) {
                j->bad_bcast += bc[i] != (unsigned char) (root + i + k);
            }
        }
        glm_comm_barrier(j->c);
    }
    free(buf);
    free(again);
    free(send);
    free(recv);
    free(bc);
    free(h);
    return NULL;
}

static void
test_group(int N)
{
    glm_comm *comms[8];
    pthread_t th[8];
    rank_job jobs[8];
    glm_err err;
    size_t bad_reduce = 0, bad_gather = 0, bad_bcast = 0, bad_repeat = 0, bad_bf16 = 0;
    size_t per_hop = 0;
    float max_err = 0.0f;
    int r;

    CHECK(glm_comm_shm_create(N, comms, &err) == 0, "N=%d: %s", N, err.msg);
    for (r = 0; r < N; r++) {
        jobs[r] = (rank_job) { comms[r], N, 0, 0, 0, 0, 0.0f, 0, 0 };
        CHECK(comms[r]->rank == r && comms[r]->size == N, "rank %d of %d", comms[r]->rank,
              comms[r]->size);
        pthread_create(&th[r], NULL, rank_main, &jobs[r]);
    }
    for (r = 0; r < N; r++) {
        pthread_join(th[r], NULL);
        bad_reduce += jobs[r].bad_reduce;
        bad_gather += jobs[r].bad_gather;
        bad_bcast += jobs[r].bad_bcast;
        bad_repeat += jobs[r].bad_repeat;
        max_err = jobs[r].max_err > max_err ? jobs[r].max_err : max_err;
        bad_bf16 += jobs[r].bad_bf16;
        per_hop += jobs[r].bf16_per_hop_differs;
        comms[r]->ops->destroy(comms[r]);
    }
    printf("COMM shm N=%d all_reduce_sum sizes=1..65537 rounds=%d bits_differ=%zu"
           " max_abs_err=%g repeat_differs=%zu all_gather_bad=%zu broadcast_bad=%zu\n",
           N, ROUNDS, bad_reduce, max_err, bad_repeat, bad_gather, bad_bcast);
    printf("COMM shm N=%d all_reduce bf16 sizes=1..65537 rounds=%d bits_differ=%zu"
           " (rounding each partial sum instead would differ in %zu)\n", N, ROUNDS, bad_bf16,
           per_hop);
    CHECK(bad_bf16 == 0, "N=%d: %zu BF16 sums differ from fp32-then-round-once", N, bad_bf16);
    CHECK(N < 3 || per_hop > 0, "N=%d: the BF16 values never tell one rounding from many", N);
    CHECK(bad_reduce == 0, "N=%d: %zu sums differ from the serial rank-order sum", N, bad_reduce);
    CHECK(bad_repeat == 0, "N=%d: %zu sums differ between two identical reductions", N,
          bad_repeat);
    CHECK(bad_gather == 0, "N=%d: %zu gathered bytes wrong", N, bad_gather);
    CHECK(bad_bcast == 0, "N=%d: %zu broadcast bytes wrong", N, bad_bcast);
}

int
main(void)
{
    glm_comm *c[1];
    glm_err err;
    int N;

    for (N = 1; N <= 8; N++) {
        test_group(N);
    }
    CHECK(glm_comm_shm_create(0, c, &err) == -1 && strstr(err.msg, "0 ranks") != NULL,
          "size 0: '%s'", err.msg);
    printf("test_comm: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
