/*
 * bench_dataset.h: vLLM's "random" dataset and request arrival times, made
 * with the project's tokenizer and RNG instead of transformers and numpy.
 *
 * Random dataset (vllm/benchmarks/datasets RandomDataset.sample):
 *   - lengths: input uniform in [floor(L(1-r)), ceil(L(1+r))], output in
 *     [max(1, floor(O(1-r))), max(1, ceil(O(1+r)))], r = --range-ratio;
 *     GLM's tokenizer adds no special tokens to an encode, so L is not
 *     reduced;
 *   - ids: allowed[(offset + i + k) % |allowed|] for k < input_len, offset
 *     uniform in [0, vocab), where "allowed" is the base vocabulary: every id
 *     below vocab size that names a token, minus all added tokens (the
 *     special ones, and also <think>, <tool_call>... which vLLM leaves out
 *     because they lie above tokenizer.vocab_size);
 *   - --random-prefix-len P: P ids drawn once from "allowed" (after the
 *     offsets) and fitted to P ids on their own as below, then put before
 *     every prompt's ids, the target becoming P + L: the shared system
 *     prompt of a prefix-caching benchmark;
 *   - text: decode, re-encode, truncate or pad with random allowed ids, up
 *     to 10 times, until the re-encoded length is the target; prompt_len is
 *     the length of the final re-encode (what the server's tokenizer sees
 *     for the text alone, before the chat template).
 * The RNG is the project's xoshiro256** (sampling.h) seeded with --seed, so
 * a seed gives the same prompts on every run, but not numpy's prompts.
 *
 * Arrivals (vllm/benchmarks/serve.py get_request, burstiness 1): at rate
 * inf every delay is 0; otherwise exponential gaps with mean 1/rate from
 * an RNG seeded with seed, accumulated, then scaled so that the last
 * arrival is at n/rate exactly (current vLLM does this to make throughput
 * independent of the seed).
 */
#ifndef GLM_BENCH_DATASET_H
#define GLM_BENCH_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "text/tokenizer.h"

typedef struct {
    char   *text;          /* NUL-terminated UTF-8 */
    size_t  text_len;
    int     prompt_len;    /* tokens of text, re-encoded */
    int     output_len;    /* max_tokens for this request */
} glm_bench_prompt;

typedef struct {
    long      num_prompts;
    long      input_len;
    long      output_len;
    double    range_ratio;  /* [0, 1) */
    uint64_t  seed;
    long      prefix_len;   /* ids shared by every prompt, before its own */
} glm_bench_dataset_cfg;

/*
 * The ids prompts are drawn from, ascending: ids below
 * glm_tokenizer_vocab_size() that name a token and are not listed in
 * tokenizer.json's "added_tokens" (read from json_path with yajl's event
 * parser).  -1 with err on an unreadable file or an empty result.
 */
int glm_bench_allowed_ids(const glm_tokenizer *tok, const char *json_path,
                          glm_tokenizer_ids *out, glm_err *err);

/*
 * num_prompts prompts (free with glm_bench_dataset_free).  *mismatch: the
 * sum over prompts (and the prefix) of (final tokens - target tokens) when
 * 10 rounds did not converge, as vLLM's warning counts it.  NULL with err on bad lengths or
 * out of memory.
 */
glm_bench_prompt *glm_bench_dataset_random(const glm_tokenizer *tok,
                                           const glm_tokenizer_ids *allowed,
                                           const glm_bench_dataset_cfg *cfg,
                                           long *mismatch, glm_err *err);
void glm_bench_dataset_free(glm_bench_prompt *p, size_t n);

/* delay[i]: seconds after the start at which request i is due (see above) */
void glm_bench_arrivals(double *delay, size_t n, double rate, uint64_t seed);

#endif
