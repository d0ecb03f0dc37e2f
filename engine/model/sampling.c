/*
 * sampling.c: see sampling.h.
 */
#include "sampling.h"

#include <math.h>
#include <stdlib.h>

static uint64_t
glm_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void
glm_rng_seed(glm_rng *rng, uint64_t seed)
{
    int i;

    /* splitmix64 expands the seed, as xoshiro's authors recommend */
    for (i = 0; i < 4; i++) {
        uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        rng->s[i] = z ^ (z >> 31);
    }
}

uint64_t
glm_rng_next(glm_rng *rng)
{
    uint64_t *s = rng->s, r = glm_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = glm_rotl(s[3], 45);
    return r;
}

float
glm_rng_uniform(glm_rng *rng)
{
    return (float) (glm_rng_next(rng) >> 40) * (1.0f / 16777216.0f);
}

int32_t
glm_argmax(const float *logits, int n)
{
    int i, best = 0;

    for (i = 1; i < n; i++) {
        if (logits[i] > logits[best]) {
            best = i;
        }
    }
    return best;
}

/* qsort has no context argument in C11: a thread-local key pointer keeps
 * concurrent samplers apart.  Order: descending logit, then ascending id. */
static _Thread_local const float *glm_sort_keys;

static int
glm_before(const float *key, int32_t x, int32_t y)
{
    return key[x] > key[y] || (key[x] == key[y] && x < y);
}

static int
glm_desc(const void *a, const void *b)
{
    int32_t x = *(const int32_t *) a, y = *(const int32_t *) b;

    return glm_before(glm_sort_keys, x, y) ? -1 : glm_before(glm_sort_keys, y, x) ? 1 : 0;
}

/*
 * Partial selection: reorders idx[lo, hi) so that idx[lo, m) are the m - lo
 * first of the range in glm_desc order, sorted, and the rest follow (in any
 * order).  Quickselect with a median-of-three pivot, then a sort of the m - lo
 * selected: O(n + m log m) where a full sort was O(n log n), and the same
 * first m as the full sort, since the order is total.
 */
static void
glm_select_sorted(const float *key, int32_t *idx, int lo, int m, int hi)
{
    int a = lo, b = hi - 1, rounds = 0;

    while (a < b && m > a && m <= b) {
        int i = a, j = b, mid = a + (b - a) / 2;
        int32_t pv, t;

        /* the median of three as pivot: no quadratic case on sorted input */
        if (glm_before(key, idx[mid], idx[a])) { t = idx[mid]; idx[mid] = idx[a]; idx[a] = t; }
        if (glm_before(key, idx[b], idx[a])) { t = idx[b]; idx[b] = idx[a]; idx[a] = t; }
        if (glm_before(key, idx[b], idx[mid])) { t = idx[b]; idx[b] = idx[mid]; idx[mid] = t; }
        pv = idx[mid];
        while (i <= j) {
            while (glm_before(key, idx[i], pv)) {
                i++;
            }
            while (glm_before(key, pv, idx[j])) {
                j--;
            }
            if (i <= j) {
                t = idx[i]; idx[i] = idx[j]; idx[j] = t;
                i++;
                j--;
            }
        }
        /* [a, j] before the pivot's place, [i, b] after it */
        if (m <= j) {
            b = j;
        } else if (m >= i) {
            a = i;
        } else {
            break;
        }
        if (++rounds > 64) {
            /* unlucky pivots: sort what is left of the range */
            glm_sort_keys = key;
            qsort(idx + a, (size_t) (b - a + 1), sizeof(int32_t), glm_desc);
            break;
        }
    }
    glm_sort_keys = key;
    qsort(idx + lo, (size_t) (m - lo), sizeof(int32_t), glm_desc);
}

int32_t
glm_sample(const float *logits, int n, const glm_sampling *p, glm_rng *rng,
    float *prob, int32_t *idx)
{
    int i, keep, sorted;
    float mx, sum, cum, u;

    if (p->temperature <= 0.0f) {
        return glm_argmax(logits, n);
    }
    for (i = 0; i < n; i++) {
        prob[i] = logits[i] / p->temperature;
        idx[i] = i;
    }

    /* Only what the warpers need is sorted: the top_k, the top_p prefix,
     * the min_p survivors.  With none of them the draw walks the tokens in
     * id order: the same distribution, without sorting the vocabulary. */
    keep = n;
    sorted = 0;
    if (p->top_k > 0 && p->top_k < keep) {
        keep = p->top_k;
        glm_select_sorted(prob, idx, 0, keep, n);
        sorted = keep;
    }
    mx = prob[glm_argmax(prob, n)];
    sum = 0.0f;
    for (i = 0; i < keep; i++) {
        sum += expf(prob[idx[i]] - mx);
    }
    if (p->top_p > 0.0f && p->top_p < 1.0f) {
        /* smallest prefix whose mass reaches top_p (at least one token):
         * sort more of the candidates only while the prefix falls short */
        int want = keep < 64 ? keep : 64;

        cum = 0.0f;
        for (i = 0; i < keep; i++) {
            if (i == sorted) {
                glm_select_sorted(prob, idx, sorted, want, keep);
                sorted = want;
                want = keep - want < 7 * want ? keep : 8 * want;
            }
            cum += expf(prob[idx[i]] - mx) / sum;
            if (cum >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
        if (sorted < keep) {
            glm_select_sorted(prob, idx, sorted, keep, keep);
            sorted = keep;
        }
        sum = 0.0f;
        for (i = 0; i < keep; i++) {
            sum += expf(prob[idx[i]] - mx);
        }
    }
    if (p->min_p > 0.0f) {
        /* keep tokens whose probability is at least min_p times the top one's;
         * exp(l - mx) is that ratio already.  They are a prefix of the
         * sorted order: gather them, then sort them. */
        int m = 0;

        for (i = 0; i < keep; i++) {
            if (expf(prob[idx[i]] - mx) >= p->min_p) {
                int32_t t = idx[m];
                idx[m++] = idx[i];
                idx[i] = t;
            }
        }
        keep = m > 0 ? m : 1;
        if (m == 0) {
            /* the top token always passes (ratio 1); only NaN logits fail it */
            idx[0] = glm_argmax(prob, n);
        }
        glm_select_sorted(prob, idx, 0, keep, keep);
        sum = 0.0f;
        for (i = 0; i < keep; i++) {
            sum += expf(prob[idx[i]] - mx);
        }
    }
    u = glm_rng_uniform(rng) * sum;
    cum = 0.0f;
    for (i = 0; i < keep; i++) {
        cum += expf(prob[idx[i]] - mx);
        if (u < cum) {
            return idx[i];
        }
    }
    return idx[keep - 1];
}
