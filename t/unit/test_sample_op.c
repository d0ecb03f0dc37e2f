/*
 * test_sample_op.c: the sampling op's CPU oracle (engine/backend/sample.h,
 * sample_cpu.c) against the definitions it replaces: the draw's frequencies
 * against transformers' warpers computed by a full sort, processing against
 * the scheduler's former host edits, raw logprobs against a double
 * log-softmax, greedy ties, reproducibility per (seed, counter), and the
 * shared exp against libm.  (t/gpu/test_ops.c checks the CUDA twin against
 * this one.)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/sample.h"

static int passed, failed;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (cond) {                                                           \
            passed++;                                                         \
        } else {                                                              \
            failed++;                                                         \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                       \
            printf(__VA_ARGS__);                                              \
            printf("\n");                                                     \
        }                                                                     \
    } while (0)

static uint64_t rs = 0x9E3779B97F4A7C15ull;

static double
rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (double) (rs >> 11) / 9007199254740992.0;
}

static glm_sample_row
row_default(void)
{
    glm_sample_row p;

    memset(&p, 0, sizeof(p));
    p.temperature = 1.0f;
    p.top_p = 1.0f;
    p.repetition_penalty = 1.0f;
    p.forced = -1;
    p.seed = 7;
    return p;
}

static int32_t
sample1(const float *l, int V, glm_sample_row *p, float *scratch, glm_sample_out *o)
{
    glm_sample_rows_cpu(o, l, 1, V, p, scratch);
    return o->token;
}

/* transformers' warpers by a full sort: the kept probabilities */
static void
expected(const float *l, int V, const glm_sample_row *p, double *prob)
{
    int idx[256], i, j, keep = V;
    double mx = -INFINITY, sum = 0.0, cum = 0.0;

    for (i = 0; i < V; i++) {
        idx[i] = i;
    }
    for (i = 1; i < V; i++) {           /* descending, lower id first */
        int t = idx[i];
        for (j = i; j > 0 && (l[idx[j - 1]] < l[t] || (l[idx[j - 1]] == l[t] && idx[j - 1] > t)); j--) {
            idx[j] = idx[j - 1];
        }
        idx[j] = t;
    }
    for (i = 0; i < V; i++) {
        prob[i] = 0.0;
        mx = l[i] / p->temperature > mx ? l[i] / p->temperature : mx;
    }
    if (p->top_k > 0 && p->top_k < keep) {
        keep = p->top_k;
    }
    for (i = 0; i < keep; i++) {
        sum += exp(l[idx[i]] / p->temperature - mx);
    }
    if (p->top_p < 1.0f) {
        for (i = 0; i < keep; i++) {
            cum += exp(l[idx[i]] / p->temperature - mx) / sum;
            if (cum >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    sum = 0.0;
    for (i = 0; i < keep; i++) {
        double w = exp(l[idx[i]] / p->temperature - mx);
        if (w >= p->min_p) {
            prob[idx[i]] = w;
            sum += w;
        }
    }
    for (i = 0; i < V; i++) {
        prob[i] /= sum;
    }
}

static void
test_distribution(void)
{
    enum { V = 60, N = 200000 };
    float l[V], scratch[V];
    double prob[V], tv;
    int counts[V], c, i, outside;
    glm_sample_out o;
    struct { float T; int k; float p, mp; } cases[] = {
        { 1.0f, 0, 1.0f, 0.0f }, { 0.7f, 10, 1.0f, 0.0f }, { 1.3f, 0, 0.8f, 0.0f },
        { 1.0f, 0, 1.0f, 0.1f }, { 0.9f, 20, 0.9f, 0.05f },
    };

    for (i = 0; i < V; i++) {
        l[i] = (float) (rnd() * 6.0 - 3.0);
    }
    for (c = 0; c < (int) (sizeof(cases) / sizeof(cases[0])); c++) {
        glm_sample_row p = row_default();
        uint64_t n;

        p.temperature = cases[c].T;
        p.top_k = cases[c].k;
        p.top_p = cases[c].p;
        p.min_p = cases[c].mp;
        p.seed = 1234 + (uint64_t) c;
        expected(l, V, &p, prob);
        memset(counts, 0, sizeof(counts));
        for (n = 0; n < N; n++) {
            p.counter = n;
            counts[sample1(l, V, &p, scratch, &o)]++;
        }
        tv = 0.0;
        outside = 0;
        for (i = 0; i < V; i++) {
            tv += fabs((double) counts[i] / N - prob[i]);
            outside += prob[i] == 0.0 && counts[i] > 0;
        }
        tv /= 2;
        /* sampling noise: E[TV] ~ sum sqrt(p(1-p)/N)/2 < 0.01 here */
        CHECK(tv < 0.01 && outside == 0, "case %d: total variation %.4f, %d tokens drawn"
              " outside the kept set", c, tv, outside);
        printf("draw T=%.1f top_k=%d top_p=%.1f min_p=%.2f: total variation vs the sorted"
               " warpers %.4f over %d draws, outside %d\n", cases[c].T, cases[c].k,
               cases[c].p, cases[c].mp, tv, N, outside);
    }
}

static void
test_greedy_and_seed(void)
{
    float l[100], scratch[100];
    glm_sample_out o;
    glm_sample_row p = row_default();
    int i, differ = 0;
    int32_t a, b;

    for (i = 0; i < 100; i++) {
        l[i] = (float) (i % 7);
    }
    p.temperature = 0.0f;
    CHECK(sample1(l, 100, &p, scratch, &o) == 6, "greedy: the lowest id of the ties");
    p.temperature = 1.0f;
    p.top_k = 1;
    CHECK(sample1(l, 100, &p, scratch, &o) == 6, "top_k 1: the lowest id of the ties");
    p.top_k = 3;                        /* 6, 13, 20 among the 14 ties */
    for (i = 0; i < 300; i++) {
        int32_t t;
        p.counter = (uint64_t) i;
        t = sample1(l, 100, &p, scratch, &o);
        differ |= !(t == 6 || t == 13 || t == 20);
    }
    CHECK(!differ, "top_k 3 over ties keeps the three lowest ids");
    p.top_k = 0;
    for (i = 0; i < 100; i++) {
        l[i] = (float) (rnd() * 2.0);
    }
    p.seed = 99;
    p.counter = 5;
    a = sample1(l, 100, &p, scratch, &o);
    b = sample1(l, 100, &p, scratch, &o);
    CHECK(a == b, "the same seed and counter draw the same id");
    for (i = 0, differ = 0; i < 20; i++) {
        p.counter = (uint64_t) i;
        differ += sample1(l, 100, &p, scratch, &o) != a;
    }
    CHECK(differ > 5, "other counters draw other ids (%d of 20 differ)", differ);
}

static void
test_processing(void)
{
    enum { V = 300 };
    float l[V], z[V], scratch[V], bias[3] = { 2.5f, -1.0f, 0.75f };
    int32_t seen[4] = { 3, 17, 40, 299 }, counts[4] = { 2, 0, 1, 3 };
    int32_t bias_ids[3] = { 5, 17, 5 }, banned[2] = { 7, 40 };
    uint32_t allowed[(V + 31) / 32];
    glm_sample_out o;
    glm_sample_row p = row_default();
    int i, best = 0, r;
    double lse = 0.0, mx = -INFINITY;

    for (r = 0; r < 20; r++) {
        for (i = 0; i < V; i++) {
            l[i] = (float) (rnd() * 8.0 - 4.0);
        }
        for (i = 0; i < (V + 31) / 32; i++) {
            allowed[i] = (uint32_t) (rs >> 3) | 0x80000021u;
            rnd();
        }
        /* the scheduler's former host edits, in its order */
        memcpy(z, l, sizeof(z));
        for (i = 0; i < 4; i++) {
            if (counts[i] > 0) {
                z[seen[i]] -= 0.3f * (float) counts[i] + 0.5f;
            }
            z[seen[i]] = z[seen[i]] > 0 ? z[seen[i]] / 1.2f : z[seen[i]] * 1.2f;
        }
        for (i = 0; i < 3; i++) {
            z[bias_ids[i]] += bias[i];
        }
        z[7] = z[40] = -INFINITY;
        for (i = 0; i < V; i++) {
            if (!((allowed[i >> 5] >> (i & 31)) & 1u)) {
                z[i] = -INFINITY;
            }
        }
        for (i = 1, best = 0; i < V; i++) {
            best = z[i] > z[best] ? i : best;
        }
        p.temperature = 0.0f;
        p.presence_penalty = 0.5f;
        p.frequency_penalty = 0.3f;
        p.repetition_penalty = 1.2f;
        p.seen_ids = seen;
        p.seen_counts = counts;
        p.n_seen = 4;
        p.bias_ids = bias_ids;
        p.bias = bias;
        p.n_bias = 3;
        p.banned = banned;
        p.n_banned = 2;
        p.allowed = allowed;
        p.logprobs = 1;
        p.n_top = 5;
        p.rank = 1;
        sample1(l, V, &p, scratch, &o);
        if (o.token != best) {
            break;
        }
    }
    CHECK(r == 20, "greedy after penalties, bias, bans and the mask: the host edits' argmax"
          " (row %d)", r);
    /* raw logprobs of the last row, against a double log-softmax */
    for (i = 0; i < V; i++) {
        mx = l[i] > mx ? l[i] : mx;
    }
    for (i = 0; i < V; i++) {
        lse += exp(l[i] - mx);
    }
    lse = mx + log(lse);
    CHECK(fabs(o.logprob - (l[o.token] - lse)) < 1e-5, "raw logprob %.7f vs %.7f", o.logprob,
          l[o.token] - lse);
    CHECK(o.n_top == 5 && o.top_logprobs[0] >= o.top_logprobs[4]
          && fabs(o.top_logprobs[0] - (mx - lse)) < 1e-5, "top logprobs descend from the max");
    for (i = 0, r = 1; i < V; i++) {
        r += l[i] > l[o.token];
    }
    CHECK(o.rank == r, "rank %d vs %d", o.rank, r);
    p = row_default();
    p.forced = 123;
    p.logprobs = 1;
    sample1(l, V, &p, scratch, &o);
    CHECK(o.token == 123 && fabs(o.logprob - (l[123] - lse)) < 1e-5, "a forced row reports"
          " its id's raw logprob");
}

static void
test_exp(void)
{
    double worst = 0.0;
    float x;

    CHECK(glm_smp_exp(0.0f) == 1.0f, "exp(0) is 1 exactly");
    CHECK(glm_smp_exp(-INFINITY) == 0.0f && glm_smp_exp(-90.0f) == 0.0f, "exp underflows to 0");
    for (x = -86.0f; x <= 0.0f; x += 0.0137f) {
        double ref = exp((double) x), got = glm_smp_exp(x);
        double ulp = ldexp(1.0, ilogb(ref) - 23);
        worst = fabs(got - ref) / ulp > worst ? fabs(got - ref) / ulp : worst;
    }
    CHECK(worst <= 2.0, "exp within 2 ulp (worst %.2f)", worst);
    printf("exp: worst %.2f ulp over [-86, 0]\n", worst);
}

int
main(void)
{
    test_exp();
    test_greedy_and_seed();
    test_processing();
    test_distribution();
    printf("sample op: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
