/*
 * sample_cpu.c: the sampling op's CPU twin, the oracle that defines the
 * algorithm (sample.h has it in words); kernels/sample.cu computes the
 * same steps over the same lanes, in the same order.
 *
 * Written for clarity over speed: each probe of a threshold search is a
 * pass over the row (31 per search), which on the CPU costs a few ms per
 * row with top-k or top-p set; plain temperature sampling and greedy rows
 * are one or two passes.
 */
#include "backend/sample.h"

#include <math.h>

#define L GLM_SMP_LANES

/* ---- raw logprobs ----------------------------------------------------------- */

/* log-sum-exp of the raw row, accumulated in double */
static double
glm_smp_lse(const float *l, int V)
{
    float mx = -INFINITY;
    double sum = 0.0;
    int i;

    for (i = 0; i < V; i++) {
        mx = l[i] > mx ? l[i] : mx;
    }
    for (i = 0; i < V; i++) {
        sum += exp((double) (l[i] - mx));
    }
    return (double) mx + log(sum);
}

/* the n most likely raw ids, descending, the lower id first on a tie */
static int
glm_smp_top(const float *l, int V, int n, int32_t *ids)
{
    int i, k, have = 0;

    for (i = 0; i < V && n > 0; i++) {
        if (have == n && !(l[i] > l[ids[n - 1]])) {
            continue;
        }
        k = have < n ? have++ : n - 1;
        while (k > 0 && l[i] > l[ids[k - 1]]) {
            ids[k] = ids[k - 1];
            k--;
        }
        ids[k] = i;
    }
    return have;
}

static void
glm_smp_logprobs(glm_sample_out *o, const float *l, int V, const glm_sample_row *p)
{
    double lse;
    int k, n;

    if (!p->logprobs && p->n_top <= 0 && p->n_given <= 0) {
        return;
    }
    lse = glm_smp_lse(l, V);
    o->logprob = (float) ((double) l[o->token] - lse);
    if (p->top_given != NULL) {
        n = p->n_given < GLM_SMP_MAX_TOP ? p->n_given : GLM_SMP_MAX_TOP;
        for (k = 0; k < n; k++) {
            o->top_ids[k] = p->top_given[k];
        }
    } else {
        n = glm_smp_top(l, V, p->n_top < GLM_SMP_MAX_TOP ? p->n_top : GLM_SMP_MAX_TOP,
                        o->top_ids);
    }
    o->n_top = n;
    for (k = 0; k < n; k++) {
        o->top_logprobs[k] = (float) ((double) l[o->top_ids[k]] - lse);
    }
}

/* ---- processing and the warpers --------------------------------------------- */

static int32_t
glm_smp_argmax(const float *z, int V)
{
    int i, best = 0;

    for (i = 1; i < V; i++) {
        if (z[i] > z[best]) {
            best = i;
        }
    }
    return best;
}

/* z = the processed row: mask, penalties, bias, bans (sample.h, step 2) */
static void
glm_smp_process(float *z, const float *l, int V, const glm_sample_row *p)
{
    int i;

    for (i = 0; i < V; i++) {
        z[i] = p->allowed != NULL && !((p->allowed[i >> 5] >> (i & 31)) & 1u) ? -INFINITY : l[i];
    }
    if (p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f
        || (p->repetition_penalty > 0.0f && p->repetition_penalty != 1.0f))
    {
        for (i = 0; i < p->n_seen; i++) {
            int32_t id = p->seen_ids[i];
            if (id >= 0 && id < V) {
                z[id] = glm_smp_penalize(z[id], p->seen_counts[i], p->presence_penalty,
                                         p->frequency_penalty, p->repetition_penalty);
            }
        }
    }
    for (i = 0; i < p->n_bias; i++) {
        if (p->bias_ids[i] >= 0 && p->bias_ids[i] < V) {
            z[p->bias_ids[i]] = GLM_SMP_ADD(z[p->bias_ids[i]], p->bias[i]);
        }
    }
    for (i = 0; i < p->n_banned; i++) {
        if (p->banned[i] >= 0 && p->banned[i] < V) {
            z[p->banned[i]] = -INFINITY;
        }
    }
}

/* how many weights have bits >= x (ge) or == x (!ge) */
static int64_t
glm_smp_count(const float *w, int V, uint32_t x, int ge)
{
    int64_t n = 0;
    int i;

    for (i = 0; i < V; i++) {
        uint32_t b = glm_smp_bits(w[i]);
        n += ge ? b >= x : b == x;
    }
    return n;
}

/* the mass of the weights with bits >= x (strict: > x), lane sums then the
 * fixed tree */
static float
glm_smp_mass(const float *w, int V, uint32_t x, int strict)
{
    float ls[L];
    int t, i, s;

    for (t = 0; t < L; t++) {
        ls[t] = 0.0f;
        for (i = t; i < V; i += L) {
            uint32_t b = glm_smp_bits(w[i]);
            if (strict ? b > x : b >= x) {
                ls[t] = GLM_SMP_ADD(ls[t], w[i]);
            }
        }
    }
    for (s = L / 2; s > 0; s >>= 1) {
        for (t = 0; t < s; t++) {
            ls[t] = GLM_SMP_ADD(ls[t], ls[t + s]);
        }
    }
    return ls[0];
}

/* the id of the need-th tie (bits == x), counting from the lowest id */
static int32_t
glm_smp_nth_tie(const float *w, int V, uint32_t x, int64_t need)
{
    int32_t lim = 0;
    int b, i;

    for (b = 30; b >= 0; b--) {
        int32_t cand = lim | (int32_t) (1u << b);
        int64_t n = 0;
        for (i = 0; i < V && i < cand; i++) {
            n += glm_smp_bits(w[i]) == x;
        }
        if (n < need) {
            lim = cand;
        }
    }
    return lim;
}

/* zero every weight below the threshold x, and ties above the `last` id */
static void
glm_smp_cut(float *w, int V, uint32_t x, int32_t last)
{
    int i;

    for (i = 0; i < V; i++) {
        uint32_t b = glm_smp_bits(w[i]);
        if (b < x || (b == x && i > last)) {
            w[i] = 0.0f;
        }
    }
}

static void
glm_smp_top_k(float *w, int V, int64_t k)
{
    uint32_t x = 0;
    int64_t gt, eq;
    int b;

    for (b = 30; b >= 0; b--) {
        if (glm_smp_count(w, V, x | (1u << b), 1) >= k) {
            x |= 1u << b;
        }
    }
    if (x == 0) {
        return;                         /* k reaches into the zero weights */
    }
    eq = glm_smp_count(w, V, x, 0);
    gt = glm_smp_count(w, V, x, 1) - eq;
    glm_smp_cut(w, V, x, eq > k - gt ? glm_smp_nth_tie(w, V, x, k - gt) : V);
}

static void
glm_smp_top_p(float *w, int V, float top_p)
{
    float target = GLM_SMP_MUL(top_p, glm_smp_mass(w, V, 0, 0)), cum, wx;
    uint32_t x = 0;
    int64_t eq, n;
    int b;

    for (b = 30; b >= 0; b--) {
        if (glm_smp_mass(w, V, x | (1u << b), 0) >= target) {
            x |= 1u << b;
        }
    }
    if (x == 0) {
        return;
    }
    /* the ties at the threshold, lowest id first, while the mass falls short */
    eq = glm_smp_count(w, V, x, 0);
    cum = glm_smp_mass(w, V, x, 1);
    wx = glm_smp_float(x);
    for (n = 0; n < eq && cum < target; n++) {
        cum = GLM_SMP_ADD(cum, wx);
    }
    n = n > 0 ? n : 1;
    glm_smp_cut(w, V, x, n < eq ? glm_smp_nth_tie(w, V, x, n) : V);
}

/* the draw: lane sums added in lane order, then a walk through the lane */
static int32_t
glm_smp_draw(const float *w, int V, float u, int32_t fallback)
{
    float ls[L], total = 0.0f, target, cum = 0.0f;
    int t, i, last = -1;

    for (t = 0; t < L; t++) {
        ls[t] = 0.0f;
        for (i = t; i < V; i += L) {
            ls[t] = GLM_SMP_ADD(ls[t], w[i]);
        }
        total = GLM_SMP_ADD(total, ls[t]);
    }
    target = GLM_SMP_MUL(u, total);
    for (t = 0; t < L; t++) {
        if (target < GLM_SMP_ADD(cum, ls[t])) {
            break;
        }
        cum = GLM_SMP_ADD(cum, ls[t]);
    }
    if (t == L) {
        return fallback;
    }
    for (i = t; i < V; i += L) {
        if (w[i] > 0.0f) {
            cum = GLM_SMP_ADD(cum, w[i]);
            last = i;
            if (target < cum) {
                return i;
            }
        }
    }
    return last >= 0 ? last : fallback;    /* the lane's sum rounded differently */
}

static int32_t
glm_smp_choose(float *z, const float *l, int V, const glm_sample_row *p)
{
    float mx = -INFINITY, T = p->temperature;
    int32_t greedy;
    int i;

    glm_smp_process(z, l, V, p);
    greedy = glm_smp_argmax(z, V);
    if (!(T > 0.0f)) {
        return greedy;
    }
    for (i = 0; i < V; i++) {
        float zt = GLM_SMP_DIV(z[i], T);
        mx = zt > mx ? zt : mx;
    }
    if (mx == -INFINITY) {
        return greedy;                  /* nothing allowed: the grammar's fallback */
    }
    for (i = 0; i < V; i++) {
        z[i] = glm_smp_exp(GLM_SMP_SUB(GLM_SMP_DIV(z[i], T), mx));
    }
    if (p->top_k > 0 && p->top_k < V) {
        glm_smp_top_k(z, V, p->top_k);
    }
    if (p->top_p > 0.0f && p->top_p < 1.0f) {
        glm_smp_top_p(z, V, p->top_p);
    }
    if (p->min_p > 0.0f) {
        for (i = 0; i < V; i++) {
            if (z[i] < p->min_p && z[i] != 1.0f) {
                z[i] = 0.0f;
            }
        }
    }
    return glm_smp_draw(z, V, glm_smp_uniform(p->seed, p->counter), greedy);
}

void
glm_sample_rows_cpu(glm_sample_out *out, const float *logits, int rows, int vocab,
    const glm_sample_row *p, float *scratch)
{
    int r, i;

    for (r = 0; r < rows; r++) {
        const float *l = logits + (size_t) p[r].logit_row * vocab;
        glm_sample_out *o = &out[r];

        memset(o, 0, sizeof(*o));
        o->token = p[r].forced >= 0 && p[r].forced < vocab
                   ? p[r].forced : glm_smp_choose(scratch, l, vocab, &p[r]);
        glm_smp_logprobs(o, l, vocab, &p[r]);
        if (p[r].rank) {
            o->rank = 1;
            for (i = 0; i < vocab; i++) {
                o->rank += l[i] > l[o->token];
            }
        }
    }
}
