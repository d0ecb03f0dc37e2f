/*
 * shard.c: see shard.h.
 */
#include "shard.h"

#include <stdlib.h>
#include <string.h>

/* One allocation per shard tensor (and its copied columns), chained. */
struct glm_shard_store {
    glm_shard_store *next;
    glm_tensor       t;
    /* copied columns follow, 64-byte aligned */
};

void
glm_split(int64_t n, int rank, int ranks, int64_t *lo, int64_t *hi)
{
    *lo = n * rank / ranks;
    *hi = n * (rank + 1) / ranks;
}

int
glm_shard_heads(const glm_shard *sh, int heads, int kv_heads, int *h0, int *h1,
    int *k0, int *k1, glm_err *err)
{
    int N = sh->ranks, r = sh->rank, g, k;
    int64_t lo, hi, rlo, rhi;

    if (kv_heads <= 0 || heads % kv_heads != 0) {
        return glm_errf(err, "%d attention heads are not a multiple of %d KV heads",
                        heads, kv_heads);
    }
    g = heads / kv_heads;
    if (N > heads) {
        return glm_errf(err, "--tensor-parallel-size %d is more than the model's %d"
                        " attention heads: every rank needs one", N, heads);
    }
    if (N <= kv_heads) {
        glm_split(kv_heads, r, N, &lo, &hi);
        *k0 = (int) lo;
        *k1 = (int) hi;
        *h0 = *k0 * g;
        *h1 = *k1 * g;
        return 0;
    }
    /* the KV head whose ranks include r: ranks [rlo, rhi) share head k */
    for (k = 0; k < kv_heads; k++) {
        glm_split(N, k, kv_heads, &rlo, &rhi);
        if (r >= rlo && r < rhi) {
            break;
        }
    }
    if (rhi - rlo > g) {
        return glm_errf(err, "--tensor-parallel-size %d: %d ranks would share KV head %d"
                        " of %d query heads", N, (int) (rhi - rlo), k, g);
    }
    glm_split(g, (int) (r - rlo), (int) (rhi - rlo), &lo, &hi);
    *k0 = k;
    *k1 = k + 1;
    *h0 = k * g + (int) lo;
    *h1 = k * g + (int) hi;
    return 0;
}

void
glm_shard_store_free(glm_shard_store *s)
{
    while (s != NULL) {
        glm_shard_store *next = s->next;
        free(s);
        s = next;
    }
}

static glm_shard_store *
glm_shard_new(glm_shard_store **s, size_t extra)
{
    glm_shard_store *n;

    if (posix_memalign((void **) &n, 64, (sizeof(*n) + 63) / 64 * 64 + extra) != 0) {
        return NULL;
    }
    n->next = *s;
    *s = n;
    return n;
}

glm_tensor *
glm_shard_rows(glm_shard_store **s, const glm_tensor *t, int64_t row0, int64_t rows)
{
    glm_shard_store *n = glm_shard_new(s, 0);
    int64_t per_row = t->ndim >= 2 ? t->shape[1] : 1;
    size_t es = glm_dtype_size(t->dtype);

    if (n == NULL) {
        return NULL;
    }
    n->t = *t;
    n->t.shape[0] = rows;
    n->t.numel = rows * per_row;
    n->t.data = (const char *) t->data + (size_t) (row0 * per_row) * es;
    n->t.nbytes = (size_t) n->t.numel * es;
    n->t.scale_row0 = t->scale_row0 + row0;
    return &n->t;
}

glm_tensor *
glm_shard_cols(glm_shard_store **s, const glm_tensor *t, int64_t col0, int64_t cols)
{
    int64_t R = t->shape[0], C = t->shape[1], r;
    size_t es = glm_dtype_size(t->dtype), row = (size_t) cols * es;
    glm_shard_store *n = glm_shard_new(s, (size_t) R * row);
    char *dst;

    if (n == NULL) {
        return NULL;
    }
    dst = (char *) n + (sizeof(*n) + 63) / 64 * 64;
    for (r = 0; r < R; r++) {
        memcpy(dst + (size_t) r * row,
               (const char *) t->data + ((size_t) (r * C + col0)) * es, row);
    }
    n->t = *t;
    n->t.shape[1] = cols;
    n->t.numel = R * cols;
    n->t.data = dst;
    n->t.nbytes = (size_t) R * row;
    n->t.scale_col0 = t->scale_col0 + col0;
    return &n->t;
}
