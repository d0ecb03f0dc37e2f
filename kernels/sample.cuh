/*
 * sample: a token per row of fp32 logits, chosen on the device, so only the
 * chosen ids and the requested logprobs cross to the host (issue 14.3).
 *
 * What: engine/backend/sample.h states the algorithm (processing, greedy,
 * temperature, top-k, top-p, min-p, the Philox draw, raw logprobs); the CPU
 * twin (engine/backend/sample_cpu.c) is the oracle.  Both include sample.h
 * for the arithmetic (exp, Philox, penalties), and both sum over the same
 * GLM_SMP_LANES interleaved lanes in the same order, so the weights, the
 * masses and hence the chosen id are bit-identical: no tolerance on ids.
 * Raw logprobs accumulate the log-sum-exp in double as a block tree here
 * and sequentially on the CPU: they agree to ~1e-6 absolute, not bitwise.
 *
 * Layout: logits [rows, vocab] fp32 (lm_head's output, read only); work
 * [rows, vocab] fp32 scratch (the processed row, then its weights); rows'
 * parameters as glm_smp_dev[rows] plus one int32 blob holding each row's
 * lists (seen ids and counts, bias ids and values, banned ids, allowed
 * words, given ids) at the offsets its glm_smp_dev names; out[rows] the
 * host's glm_sample_out, and tokens[rows] the ids alone (4 bytes a row to
 * download when no row asks for logprobs, instead of 176).
 *
 * Launch: one block of GLM_SMP_LANES (512) threads per row; thread t is
 * lane t (ids t, t + 512, ...: coalesced).  Thresholds are bitwise searches
 * of 31 probes, each a pass over the row and a fixed shared-memory tree:
 * ~62 passes of 151k floats with top-k and top-p both set, from L2.
 * Later: a radix histogram for the counts (fewer passes), several rows per
 * block at small vocabularies.
 */
#ifndef GLM_KERNELS_SAMPLE_CUH
#define GLM_KERNELS_SAMPLE_CUH

#include "common.cuh"

extern "C" {
#include "backend/sample.h"
}

/* one row's parameters on the device; list offsets index the int32 blob */
typedef struct {
    float     temperature, top_p, min_p;
    float     presence, frequency, repetition;
    int32_t   top_k, forced, logprobs, n_top, rank, has_allowed;
    int32_t   off_seen, n_seen, off_bias, n_bias, off_banned, n_banned;
    int32_t   off_allowed, off_given, n_given, logit_row;
    uint64_t  seed, counter;
} glm_smp_dev;

/* out[r] gets row r's results and tokens[r] its id alone (what the host
 * downloads when no row wants logprobs) */
void glm_cuda_sample(cudaStream_t stream, glm_sample_out *out, int32_t *tokens,
    const float *logits, float *work, const glm_smp_dev *rows_p, const int32_t *blob,
    int rows, int vocab);

#endif
