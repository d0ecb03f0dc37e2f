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
glm_desc(const void *a, const void *b)
{
    int32_t x = *(const int32_t *) a, y = *(const int32_t *) b;
    float fx = glm_sort_keys[x], fy = glm_sort_keys[y];

    return fx > fy ? -1 : fx < fy ? 1 : (x > y) - (x < y);
}

int32_t
glm_sample(const float *logits, int n, const glm_sampling *p, glm_rng *rng,
    float *prob, int32_t *idx)
{
    int i, keep;
    float mx, sum, cum, u;

    if (p->temperature <= 0.0f) {
        return glm_argmax(logits, n);
    }
    for (i = 0; i < n; i++) {
        prob[i] = logits[i] / p->temperature;
        idx[i] = i;
    }
    glm_sort_keys = prob;
    qsort(idx, (size_t) n, sizeof(int32_t), glm_desc);

    keep = n;
    if (p->top_k > 0 && p->top_k < keep) {
        keep = p->top_k;
    }
    mx = prob[idx[0]];
    sum = 0.0f;
    for (i = 0; i < keep; i++) {
        sum += expf(prob[idx[i]] - mx);
    }
    if (p->top_p > 0.0f && p->top_p < 1.0f) {
        /* smallest prefix whose mass reaches top_p (at least one token) */
        cum = 0.0f;
        for (i = 0; i < keep; i++) {
            cum += expf(prob[idx[i]] - mx) / sum;
            if (cum >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
        sum = 0.0f;
        for (i = 0; i < keep; i++) {
            sum += expf(prob[idx[i]] - mx);
        }
    }
    if (p->min_p > 0.0f) {
        /* keep tokens whose probability is at least min_p times the top one's;
         * exp(l - mx) is that ratio already */
        for (i = 1; i < keep; i++) {
            if (expf(prob[idx[i]] - mx) < p->min_p) {
                keep = i;
                break;
            }
        }
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
