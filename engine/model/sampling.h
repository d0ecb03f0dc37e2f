/*
 * sampling.h: choosing the next token from fp32 logits.
 *
 * temperature 0 is greedy (argmax; the lowest id wins a tie, as torch.argmax).
 * Otherwise the warpers run in transformers' order, temperature, then top-k,
 * then top-p, then min-p, and a token is drawn with the request's own seeded generator,
 * so a seed reproduces a completion exactly on the same engine build.
 */
#ifndef GLM_SAMPLING_H
#define GLM_SAMPLING_H

#include <stdint.h>

typedef struct {
    float     temperature;     /* 0: greedy */
    int       top_k;           /* 0: off */
    float     top_p;           /* 1: off */
    float     min_p;           /* 0: off; relative to the top token's prob */
} glm_sampling;

typedef struct {
    uint64_t  s[4];            /* xoshiro256** state */
} glm_rng;

void glm_rng_seed(glm_rng *rng, uint64_t seed);
uint64_t glm_rng_next(glm_rng *rng);
/* uniform in [0, 1) with 24 random bits */
float glm_rng_uniform(glm_rng *rng);

int32_t glm_argmax(const float *logits, int n);

/* scratch: n floats and n int32s the caller owns (no allocation per token). */
int32_t glm_sample(const float *logits, int n, const glm_sampling *p, glm_rng *rng,
    float *prob_scratch, int32_t *idx_scratch);

#endif
