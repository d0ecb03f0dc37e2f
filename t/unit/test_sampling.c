/*
 * test_sampling.c: greedy, temperature, top-k and top-p against the
 * distributions they define, with fixed seeds (so the counts are exact run
 * to run) and printed errors.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "model/sampling.h"

static int passed, failed;

#define CHECK(cond, ...) do {                                   \
    if (cond) { passed++; } else {                              \
        failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__);   \
        printf(__VA_ARGS__); printf("\n"); }                    \
} while (0)

#define N 5
#define DRAWS 200000

/* max |observed frequency - expected probability| over N tokens */
static double
freq_error(const float *logits, const glm_sampling *sp, const double *expect, uint64_t seed)
{
    float prob[N];
    int32_t idx[N];
    int counts[N] = { 0 }, i;
    glm_rng rng;
    double err = 0.0;

    glm_rng_seed(&rng, seed);
    for (i = 0; i < DRAWS; i++) {
        counts[glm_sample(logits, N, sp, &rng, prob, idx)]++;
    }
    for (i = 0; i < N; i++) {
        double d = fabs((double) counts[i] / DRAWS - expect[i]);
        err = d > err ? d : err;
    }
    return err;
}

/* ---- partial selection against a full sort ------------------------------- */

static const float *ref_keys;

static int
ref_desc(const void *a, const void *b)
{
    int32_t x = *(const int32_t *) a, y = *(const int32_t *) b;

    if (ref_keys[x] != ref_keys[y]) {
        return ref_keys[x] > ref_keys[y] ? -1 : 1;
    }
    return (x > y) - (x < y);
}

/* The warpers over the whole vocabulary sorted (descending, ties by id):
 * what glm_sample computes while sorting only what they keep.  The softmax
 * normaliser over all tokens is summed in id order, and with no warper the
 * draw walks the ids in order, as glm_sample does without a sort. */
static int32_t
ref_sample(const float *logits, int n, const glm_sampling *p, glm_rng *rng, float *prob,
    int32_t *idx)
{
    int i, keep = n, warped = 0;
    float mx, sum = 0.0f, cum, u;

    for (i = 0; i < n; i++) {
        prob[i] = logits[i] / p->temperature;
        idx[i] = i;
    }
    ref_keys = prob;
    qsort(idx, (size_t) n, sizeof(int32_t), ref_desc);
    mx = prob[idx[0]];
    if (p->top_k > 0 && p->top_k < n) {
        keep = p->top_k;
        warped = 1;
        for (i = 0; i < keep; i++) {
            sum += expf(prob[idx[i]] - mx);
        }
    } else {
        for (i = 0; i < n; i++) {
            sum += expf(prob[i] - mx);
        }
    }
    if (p->top_p > 0.0f && p->top_p < 1.0f) {
        warped = 1;
        for (i = 0, cum = 0.0f; i < keep; i++) {
            cum += expf(prob[idx[i]] - mx) / sum;
            if (cum >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
        for (i = 0, sum = 0.0f; i < keep; i++) {
            sum += expf(prob[idx[i]] - mx);
        }
    }
    if (p->min_p > 0.0f) {
        warped = 1;
        for (i = 1; i < keep; i++) {
            if (expf(prob[idx[i]] - mx) < p->min_p) {
                keep = i;
                break;
            }
        }
        for (i = 0, sum = 0.0f; i < keep; i++) {
            sum += expf(prob[idx[i]] - mx);
        }
    }
    u = glm_rng_uniform(rng) * sum;
    for (i = 0, cum = 0.0f; i < keep; i++) {
        int32_t t = warped ? idx[i] : i;
        cum += expf(prob[t] - mx);
        if (u < cum) {
            return t;
        }
    }
    return warped ? idx[keep - 1] : keep - 1;
}

#define BIG 20000

static void
test_partial_selection(void)
{
    static const glm_sampling cases[] = {
        { 1.0f, 40, 1.0f, 0.0f }, { 0.7f, 0, 0.9f, 0.0f }, { 1.0f, 0, 0.3f, 0.0f },
        { 1.0f, 0, 1.0f, 0.05f }, { 1.3f, 500, 0.95f, 0.01f }, { 1.0f, 0, 0.999f, 0.0f },
        { 1.0f, 0, 1.0f, 0.0f }, { 1.0f, BIG - 1, 1.0f, 0.0f },
    };
    static float logits[BIG], prob[BIG], prob2[BIG];
    static int32_t idx[BIG], idx2[BIG];
    size_t c;
    int i, d;

    /* a peaked distribution with many exact ties, and a flat tail */
    for (i = 0; i < BIG; i++) {
        uint32_t h = (uint32_t) i * 2654435761u;
        logits[i] = (float) ((h >> 20) % 64) * 0.25f - (i % 3 == 0 ? 0.0f : 8.0f);
    }
    for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        glm_rng r1, r2;
        int differ = 0;

        glm_rng_seed(&r1, 1000 + c);
        glm_rng_seed(&r2, 1000 + c);
        for (d = 0; d < 200; d++) {
            differ += glm_sample(logits, BIG, &cases[c], &r1, prob, idx)
                      != ref_sample(logits, BIG, &cases[c], &r2, prob2, idx2);
        }
        CHECK(differ == 0, "case %zu (T %g top_k %d top_p %g min_p %g): %d of 200 draws"
              " differ from sorting the whole vocabulary", c, cases[c].temperature,
              cases[c].top_k, cases[c].top_p, cases[c].min_p, differ);
    }
}

int
main(void)
{
    /* probabilities 0.5, 0.3, 0.15, 0.05, 0 at temperature 1 */
    float logits[N] = { logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f), -INFINITY };
    float tied[N] = { 1, 3, 3, 2, 0 }, prob[N];
    int32_t idx[N], a, b;
    glm_sampling sp;
    glm_rng r1, r2;
    double e, expect[N];
    int i, same = 1;

    CHECK(glm_argmax(tied, N) == 1, "argmax tie goes to the lowest id");
    sp = (glm_sampling) { 0.0f, 0, 1.0f };
    glm_rng_seed(&r1, 1);
    CHECK(glm_sample(logits, N, &sp, &r1, prob, idx) == 0, "temperature 0 is greedy");

    sp = (glm_sampling) { 1.0f, 0, 1.0f };
    expect[0] = 0.5; expect[1] = 0.3; expect[2] = 0.15; expect[3] = 0.05; expect[4] = 0;
    e = freq_error(logits, &sp, expect, 42);
    printf("temperature 1: max frequency error %.4f\n", e);
    CHECK(e < 0.005, "temperature 1 follows softmax (error %.4f)", e);

    sp = (glm_sampling) { 2.0f, 0, 1.0f };
    {
        double z = sqrt(0.5) + sqrt(0.3) + sqrt(0.15) + sqrt(0.05);
        expect[0] = sqrt(0.5) / z; expect[1] = sqrt(0.3) / z;
        expect[2] = sqrt(0.15) / z; expect[3] = sqrt(0.05) / z; expect[4] = 0;
    }
    e = freq_error(logits, &sp, expect, 43);
    printf("temperature 2: max frequency error %.4f\n", e);
    CHECK(e < 0.005, "temperature 2 flattens as p^(1/2) (error %.4f)", e);

    sp = (glm_sampling) { 1.0f, 2, 1.0f };
    expect[0] = 0.625; expect[1] = 0.375; expect[2] = expect[3] = expect[4] = 0;
    e = freq_error(logits, &sp, expect, 44);
    printf("top-k 2: max frequency error %.4f\n", e);
    CHECK(e < 0.005, "top-k 2 renormalises the top two (error %.4f)", e);

    /* cumulative 0.5, 0.8: top_p 0.7 keeps two tokens, 0.85 keeps three */
    sp = (glm_sampling) { 1.0f, 0, 0.7f };
    e = freq_error(logits, &sp, expect, 45);
    printf("top-p 0.7: max frequency error %.4f\n", e);
    CHECK(e < 0.005, "top-p 0.7 keeps the smallest prefix reaching 0.7 (error %.4f)", e);
    sp = (glm_sampling) { 1.0f, 0, 0.85f };
    expect[0] = 0.5 / 0.95; expect[1] = 0.3 / 0.95; expect[2] = 0.15 / 0.95; expect[3] = 0;
    e = freq_error(logits, &sp, expect, 46);
    printf("top-p 0.85: max frequency error %.4f\n", e);
    CHECK(e < 0.005, "top-p 0.85 keeps three (error %.4f)", e);

    /* ratios to the top token 1, 0.6, 0.3, 0.1: min_p 0.5 keeps two */
    sp = (glm_sampling) { 1.0f, 0, 1.0f, 0.5f };
    expect[0] = 0.625; expect[1] = 0.375; expect[2] = expect[3] = expect[4] = 0;
    e = freq_error(logits, &sp, expect, 47);
    printf("min-p 0.5: max frequency error %.4f\n", e);
    CHECK(e < 0.005, "min-p 0.5 keeps tokens at least half as likely as the top (error %.4f)", e);

    sp = (glm_sampling) { 1.0f, 1, 1.0f };
    glm_rng_seed(&r1, 9);
    for (i = 0; i < 1000; i++) {
        same &= glm_sample(logits, N, &sp, &r1, prob, idx) == 0;
    }
    CHECK(same, "top-k 1 is greedy");

    sp = (glm_sampling) { 1.0f, 0, 1.0f };
    glm_rng_seed(&r1, 123);
    glm_rng_seed(&r2, 123);
    same = 1;
    for (i = 0; i < 1000; i++) {
        a = glm_sample(logits, N, &sp, &r1, prob, idx);
        b = glm_sample(logits, N, &sp, &r2, prob, idx);
        same &= a == b;
    }
    CHECK(same, "one seed, one sequence");
    glm_rng_seed(&r2, 124);
    glm_rng_seed(&r1, 123);
    same = 1;
    for (i = 0; i < 1000; i++) {
        same &= glm_sample(logits, N, &sp, &r1, prob, idx)
                == glm_sample(logits, N, &sp, &r2, prob, idx);
    }
    CHECK(!same, "another seed, another sequence");

    test_partial_selection();

    printf("sampling: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
