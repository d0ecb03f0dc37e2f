/*
 * sample.h: the sampling op's parameters and results, and the arithmetic
 * its two twins share (the CPU oracle, backend/sample_cpu.c, and the CUDA
 * kernel, kernels/sample.cu, both include this file).
 *
 * What the op computes for each logits row (fp32, in backend memory):
 *   1. raw logprobs: log-softmax of the row as it came (vLLM's default),
 *      of the chosen id, of the top n (or of given ids), and the chosen id's
 *      rank; the log-sum-exp accumulates in double.
 *   2. processing, in place of transformers' logits processors and in
 *      this order: the allowed bitmask (tokens outside it -inf), presence
 *      and frequency penalties on the ids with output counts, repetition
 *      penalty on every id seen, logit_bias, banned ids (-inf).
 *   3. greedy (temperature <= 0): argmax, the lowest id winning ties.
 *      Otherwise the warpers in transformers' order without a sort:
 *      w_i = exp(z_i / T - max) (glm_smp_exp, so w_max = 1 exactly);
 *      top-k keeps the k largest w, top-p the smallest set of largest w
 *      whose mass reaches top_p of what top-k kept, min-p those with
 *      w >= min_p; equal weights are taken lowest id first.  Thresholds
 *      are found by a bitwise search over the weights' bit patterns (a
 *      non-negative float orders as its bits), with counts and masses
 *      over the whole row per probe: no sort of the vocabulary.
 *   4. the draw: u = Philox4x32-10(key = seed, counter = (counter, 0)),
 *      24 bits, times the kept mass S; the chosen id is the first whose
 *      cumulative weight exceeds u * S.
 *
 * Summation order is part of the algorithm, so that both twins choose the
 * same id from the same logits and seed: the row is split into
 * GLM_SMP_LANES interleaved lanes (lane t holds ids t, t + L, t + 2L, ...);
 * each lane sums its ids in order; masses for the threshold searches add
 * the lane sums as a fixed tree (stride L/2 down to 1); the draw adds them
 * in lane order and walks lane by lane, then within the lane in id order.
 * Every float operation is written out with its rounding (fmaf, no
 * contraction), so the weights and sums are bit-identical in C and CUDA.
 */
#ifndef GLM_BACKEND_SAMPLE_H
#define GLM_BACKEND_SAMPLE_H

#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define GLM_SMP_FN static __device__ __forceinline__   /* the kernel's copy */
#else
#define GLM_SMP_FN static inline
#include <math.h>
#endif

#define GLM_SMP_LANES     512       /* lanes of a row: the CUDA block size */
#define GLM_SMP_MAX_TOP   20        /* OpenAI's top_logprobs limit */

/* One row's request.  Host arrays; they must stay valid for the call. */
typedef struct {
    int32_t         logit_row;      /* the row of the logits this row samples */
    float           temperature;    /* <= 0: greedy */
    int32_t         top_k;          /* <= 0: off */
    float           top_p;          /* >= 1: off */
    float           min_p;          /* <= 0: off */
    float           presence_penalty, frequency_penalty;    /* 0: off */
    float           repetition_penalty;                     /* 1 (or <= 0): off */
    const int32_t  *seen_ids;       /* distinct ids of prompt and output */
    const int32_t  *seen_counts;    /* their counts in the output (0: prompt only) */
    int32_t         n_seen;
    const int32_t  *bias_ids;       /* logit_bias: z[id] += bias */
    const float    *bias;
    int32_t         n_bias;
    const int32_t  *banned;         /* -inf (min_tokens' stop ids, bad words) */
    int32_t         n_banned;
    const uint32_t *allowed;        /* NULL, or (vocab + 31) / 32 words: bit
                                       id % 32 of word id / 32 set = allowed */
    uint64_t        seed;           /* the request's generator */
    uint64_t        counter;        /* the token's index in the output */
    int32_t         forced;         /* >= 0: no draw, report this id (prompt
                                       logprobs, a scored continuation) */
    int32_t         logprobs;       /* 1: the chosen id's raw logprob */
    int32_t         n_top;          /* top alternatives wanted (<= 20) */
    const int32_t  *top_given;      /* NULL, or these ids instead of the top */
    int32_t         n_given;
    int32_t         rank;           /* 1: the chosen id's rank (1 = most likely) */
} glm_sample_row;

typedef struct {
    int32_t  token;
    float    logprob;               /* raw: log-softmax of the logits given */
    int32_t  rank;
    int32_t  n_top;
    int32_t  top_ids[GLM_SMP_MAX_TOP];
    float    top_logprobs[GLM_SMP_MAX_TOP];
} glm_sample_out;

/* ---- the shared arithmetic ------------------------------------------------- */

#ifdef __CUDACC__
#define GLM_SMP_MUL(a, b)  __fmul_rn((a), (b))
#define GLM_SMP_ADD(a, b)  __fadd_rn((a), (b))
#define GLM_SMP_SUB(a, b)  __fsub_rn((a), (b))
#define GLM_SMP_DIV(a, b)  __fdiv_rn((a), (b))
#define GLM_SMP_FMA(a, b, c) __fmaf_rn((a), (b), (c))
#else
/* ISO C11 (-std=c11) does not contract a * b + c into an fma */
#define GLM_SMP_MUL(a, b)  ((a) * (b))
#define GLM_SMP_ADD(a, b)  ((a) + (b))
#define GLM_SMP_SUB(a, b)  ((a) - (b))
#define GLM_SMP_DIV(a, b)  ((a) / (b))
#define GLM_SMP_FMA(a, b, c) fmaf((a), (b), (c))
#endif

GLM_SMP_FN uint32_t
glm_smp_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

GLM_SMP_FN float
glm_smp_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/*
 * exp(x) for x <= 0, the same bits on both twins: x = n ln2 + r (Cody-Waite,
 * ln2 split in two), a degree-7 Taylor polynomial in r by fma, times 2^n
 * built from its exponent bits.  Within 2 ulp of expf; exp(0) = 1 exactly
 * (so the top token's weight is 1); below -86.5 it is 0 (no subnormals,
 * which a flush-to-zero build would treat differently).
 */
GLM_SMP_FN float
glm_smp_exp(float x)
{
    float n, r, p;

    if (!(x > -86.5f)) {
        return 0.0f;                /* -inf, NaN and underflow weigh nothing */
    }
    n = rintf(GLM_SMP_MUL(x, 1.44269504f));
    r = GLM_SMP_FMA(n, -0.693145752f, x);          /* ln2's high part: exact */
    r = GLM_SMP_FMA(n, -1.42860677e-6f, r);        /* and its low part */
    p = 1.0f / 5040.0f;
    p = GLM_SMP_FMA(p, r, 1.0f / 720.0f);
    p = GLM_SMP_FMA(p, r, 1.0f / 120.0f);
    p = GLM_SMP_FMA(p, r, 1.0f / 24.0f);
    p = GLM_SMP_FMA(p, r, 1.0f / 6.0f);
    p = GLM_SMP_FMA(p, r, 0.5f);
    p = GLM_SMP_FMA(p, r, 1.0f);
    p = GLM_SMP_FMA(p, r, 1.0f);
    return GLM_SMP_MUL(p, glm_smp_float((uint32_t) ((int32_t) n + 127) << 23));
}

/* Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
 * 3"): a counter-based generator, so a token's draw depends only on the
 * request's seed and the token's index, never on what ran before. */
GLM_SMP_FN void
glm_smp_philox(uint32_t key0, uint32_t key1, uint32_t c[4])
{
    int i;

    for (i = 0; i < 10; i++) {
        uint64_t p0 = (uint64_t) 0xD2511F53u * c[0], p1 = (uint64_t) 0xCD9E8D57u * c[2];
        uint32_t n0 = (uint32_t) (p1 >> 32) ^ c[1] ^ key0;
        uint32_t n2 = (uint32_t) (p0 >> 32) ^ c[3] ^ key1;

        c[1] = (uint32_t) p1;
        c[3] = (uint32_t) p0;
        c[0] = n0;
        c[2] = n2;
        key0 += 0x9E3779B9u;
        key1 += 0xBB67AE85u;
    }
}

/* the draw's uniform in [0, 1), 24 random bits */
GLM_SMP_FN float
glm_smp_uniform(uint64_t seed, uint64_t counter)
{
    uint32_t c[4] = { (uint32_t) counter, (uint32_t) (counter >> 32), 0, 0 };

    glm_smp_philox((uint32_t) seed, (uint32_t) (seed >> 32), c);
    return (float) (c[0] >> 8) * (1.0f / 16777216.0f);
}

/* a float's total order as an unsigned key (for raw logits, signed) */
GLM_SMP_FN uint32_t
glm_smp_key(float f)
{
    uint32_t u = glm_smp_bits(f);
    return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

/* the penalties of one seen id (presence/frequency on output counts, then
 * repetition), in the order of transformers' processors */
GLM_SMP_FN float
glm_smp_penalize(float z, int32_t count, float presence, float frequency, float repetition)
{
    if (count > 0 && (presence != 0.0f || frequency != 0.0f)) {
        z = GLM_SMP_SUB(z, GLM_SMP_ADD(GLM_SMP_MUL(frequency, (float) count), presence));
    }
    if (repetition > 0.0f && repetition != 1.0f) {
        z = z > 0.0f ? GLM_SMP_DIV(z, repetition) : GLM_SMP_MUL(z, repetition);
    }
    return z;
}

/* The CPU twin over rows of host-addressable logits; `scratch` holds
 * vocab floats.  The CPU backend's op. */
void glm_sample_rows_cpu(glm_sample_out *out, const float *logits, int rows, int vocab,
    const glm_sample_row *p, float *scratch);

#endif
