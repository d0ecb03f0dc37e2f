/*
 * scheduler.h: continuous batching over the paged KV cache.
 *
 * Every step takes the running sequences first (each computes what it lacks:
 * one token when decoding, a chunk when its prefill is unfinished), then
 * admits waiting sequences in arrival order while the token budget
 * (max_num_batched_tokens), the sequence limit (max_num_seqs) and free KV
 * blocks allow.  A running sequence that needs a block when none is free
 * preempts the most recently admitted one: its blocks are freed and it goes
 * back to the front of the queue to be recomputed (vLLM's recompute policy).
 *
 * With prefix caching on (glm_sched_enable_prefix_caching), a sequence being
 * admitted first takes the longest run of its full blocks already cached
 * (block_pool.h) and computes only the rest; at most n_tokens - 1 tokens
 * are taken, so that the last one is computed for its logits, as vLLM does
 * (which may recompute a whole block).  A block is offered to the cache in
 * the step that fills it, once no sequence of that step can be preempted
 * any more: a sequence admitted later in the same step (the other choices
 * of an n > 1 request, the same prompt sent twice at once) finds it
 * already, since a step stores every token's keys and values before any
 * token attends.  Released blocks stay cached until their space is needed.
 * A sequence that asks for prompt_logprobs takes no cached block (its
 * prompt's logits must be computed, as in vLLM), and one with a cache_salt
 * shares blocks only with sequences of the same salt (the salt is hashed
 * into the root of its chain).
 *
 * The scheduler knows tokens and blocks, not requests: after each step it
 * calls the owner's callback with every sampled token; the callback decides
 * whether the sequence is finished (stop tokens, stop strings, length) and
 * emits output.
 */
#ifndef GLM_SCHEDULER_H
#define GLM_SCHEDULER_H

#include <stdint.h>

#include "block_pool.h"
#include "model/model.h"
#include "model/sampling.h"
#include "model/vision.h"

typedef enum {
    GLM_SEQ_WAITING = 0,
    GLM_SEQ_RUNNING,
    GLM_SEQ_FINISHED,
} glm_seq_state;

typedef struct {
    int32_t id;
    float   bias;
} glm_logit_bias;

typedef struct {
    glm_sampling     sampling;          /* temperature, top-k, top-p, min-p */
    float            presence_penalty;  /* OpenAI: on output tokens */
    float            frequency_penalty;
    float            repetition_penalty;  /* transformers/vLLM: prompt+output */
    glm_logit_bias  *logit_bias;
    int              n_logit_bias;
    int32_t         *banned;            /* ids masked while below min_tokens */
    int              n_banned;
    int              min_tokens;
    int              logprobs;          /* 1: compute the sampled token's logprob */
    int              top_logprobs;      /* how many alternatives */
    /* the arrays below belong to the owner and outlive the sequence */
    const int32_t   *logprob_ids;       /* alternatives: these ids instead of the
                                           top_logprobs most likely (at most 20) */
    int              n_logprob_ids;
    int              prompt_logprobs;   /* 1: the prompt's logprobs, with
                                           prompt_top_logprobs alternatives per
                                           token (at most 20): on_prompt_logprob */
    int              prompt_top_logprobs;
    const uint8_t   *allowed;           /* NULL, or a vocab_size bitmap: only
                                           these ids may be sampled */
    const int32_t   *bad_words;         /* token sequences, concatenated: the last
                                           token of one is masked when the output
                                           ends with the ones before it */
    const int32_t   *bad_word_len;      /* [n_bad_words] */
    int              n_bad_words;
    const char      *cache_salt;        /* NULL, or prefix-cache blocks are shared
                                           only with the same salt */
    size_t           cache_salt_len;
} glm_seq_params;

typedef struct glm_seq glm_seq;

/* Prompt rows whose logits one step computes for prompt_logprobs, beyond
 * each sequence's last row: a sequence that wants them is prefilled at most
 * this many tokens per step, so that the logits stay a few rows. */
#define GLM_SCHED_PROMPT_LP_ROWS  64

struct glm_seq {
    int32_t         *tokens;            /* prompt then generated */
    int              n_tokens, cap;
    int              n_prompt;
    int              n_cached;          /* tokens with KV in the cache */
    int32_t         *blocks;
    int              n_blocks, blocks_cap;
    glm_seq_state    state;
    int              paused;            /* the owner's output is backed up */
    uint64_t         admit_order;
    glm_seq_params   params;
    glm_rng          rng;
    uint64_t         seed;              /* the sampling op's Philox key: the
                                           draw of output token i depends on
                                           (seed, i) only */
    void            *owner;             /* the request */
    int              index;             /* choice index within it */
    glm_seq         *next_wait;         /* waiting queue link */
    int              n_preempted;
    int              constrained;       /* call the scheduler's mask first */
    glm_mm_prompt   *mm;                /* images/videos: positions and rows */
    glm_block_hash  *hashes;            /* prefix caching: its full blocks' */
    int              n_hashes, hashes_cap;
    int              n_offered;         /* leading blocks offered to the cache */
    int              n_prefix_hit;      /* tokens found cached at admission */
    glm_block_hash   salt_root;         /* the parent of block 0 when salted */
    int              has_draft;         /* MTP: a draft for the next position */
    int32_t          draft;
};

/* What the callback learns about a sampled token. */
typedef struct {
    int32_t          token;
    float            logprob;           /* of the sampled token (raw logits) */
    int32_t          top_ids[20];
    float            top_logprobs[20];
    int              n_top;
} glm_sampled;

/* Returns nonzero to finish the sequence (the scheduler then frees it). */
typedef int (*glm_on_token)(void *ctx, glm_seq *seq, const glm_sampled *s);

/* prompt_logprobs: the raw logprob of prompt token `pos` (1 .. n_prompt-1:
 * the first has none) given the tokens before it, in s->token/logprob, its
 * rank in the vocabulary (1: the most likely), and the prompt_logprobs most
 * likely tokens.  Called in order while the prompt is computed; again for
 * the same positions if the sequence is preempted and recomputed. */
typedef void (*glm_on_prompt_logprob)(void *ctx, glm_seq *seq, int pos,
    const glm_sampled *s, int rank);

/* Constrained decoding: sets the logits of tokens the sequence may not emit
 * next to -inf, after the penalties and before sampling.  Called only for
 * sequences whose `constrained` flag is set.  The logits stay on the device
 * now: the scheduler calls it on a host row of zeros and takes what stays
 * finite as the allowed set; mask_bits (below) says the same directly. */
typedef void (*glm_logits_mask)(void *ctx, glm_seq *seq, float *logits);

/* The same as a bitmask, the sampling op's input: clears bit id % 32 of
 * allowed[id / 32] for every id the sequence may not emit next (the
 * words arrive set for what the request allows). */
typedef void (*glm_logits_mask_bits)(void *ctx, glm_seq *seq, uint32_t *allowed);

/* Tests: a host copy of a row of logits about to be sampled (one download
 * per row; never set in serving). */
typedef void (*glm_logits_seen)(void *ctx, glm_seq *seq, const float *logits);

typedef struct {
    glm_model       *m;
    glm_kv_pool      kv;
    int              block_size;
    glm_block_pool   pool;
    glm_seq        **running;
    int              n_running;
    glm_seq         *wait_head, *wait_tail;
    int              n_waiting;
    int              max_num_seqs;
    int              max_batched_tokens;
    uint64_t         admit_counter;
    uint64_t         preemptions;
    uint64_t         steps;
    uint64_t         step_tokens;       /* tokens computed in all steps */
    /* vllm:prefix_cache_queries / _hits: prompt tokens of new sequences
     * looked up, and those found cached (preempted ones are not counted,
     * as vLLM keeps them apart) */
    uint64_t         prefix_queries, prefix_hits;
    /* MTP speculative decoding, on when the model has its MTP layer bound
     * (glm_model_enable_mtp, before glm_sched_init): each decoding sequence
     * also computes the draft the MTP layer made for the position after;
     * the token sampled where the draft stands decides: equal, and the
     * draft row's logits give one more token in the same step.  Sampling
     * is unchanged, so outputs are those without it (vllm:spec_decode_*) */
    int              spec;
    uint64_t         spec_drafts, spec_accepted;
    glm_on_token     on_token;
    glm_on_prompt_logprob on_prompt_logprob;
    glm_logits_mask  mask;
    glm_logits_mask_bits mask_bits;     /* preferred over mask where set */
    glm_logits_seen  on_logits;
    void            *cb_ctx;
    /* per-step scratch, sized for max_batched_tokens */
    int32_t         *ids, *pos3, *kv_pos, *seq_of, *rows;
    const float    **embed_rows;
    glm_seq_blocks  *seq_blocks;
    glm_seq        **step_seqs;
    int             *step_chunk;
    uint8_t         *step_draft;        /* MTP: the step computes its draft */
    uint8_t         *step_live;         /* MTP: still running after sampling */
    int32_t         *hidden_rows;       /* MTP: the batch row of each token */
    float           *logits, *prob, *raw;   /* raw: logits before processing;
                                               logits: max_num_seqs rows, and
                                               GLM_SCHED_PROMPT_LP_ROWS more */
    int32_t         *idx, *counts;
    uint8_t         *extra;             /* one block's hash extra */

    /* the sampling op's rows (backend.h sample) and their host lists,
     * sized for a pass before its rows are built, so pointers stay put */
    glm_sample_row  *smp;
    glm_sample_out  *smp_out;
    int32_t         *smp_ints;
    float           *smp_floats;
    uint32_t        *smp_words;
    size_t           smp_ints_cap, smp_floats_cap, smp_words_cap;
    size_t           smp_ints_used, smp_floats_used, smp_words_used;
    int32_t         *step_row;          /* per step sequence: its accepted
                                           draft's logits row */
    uint8_t         *step_draft_ok;     /* MTP: the draft matched, its row is
                                           sampled in the second pass */
} glm_sched;

int glm_sched_init(glm_sched *s, glm_model *m, int n_blocks, int block_size,
    int max_num_seqs, int max_batched_tokens, glm_err *err);
void glm_sched_free(glm_sched *s);

/* Turns automatic prefix caching on (off after glm_sched_init).  The
 * model's identity (model_dir's real path and its config.json) seeds the
 * block hashes, so that they name this model's keys and values only. */
int glm_sched_enable_prefix_caching(glm_sched *s, const char *model_dir, glm_err *err);

/* A new sequence over a copy of the prompt, waiting; NULL when out of memory.
 * The sequence owns p's arrays (logit_bias, banned) from here on, even on
 * failure, and frees them with itself. */
glm_seq *glm_seq_new(const int32_t *prompt, int n, const glm_seq_params *p,
    uint64_t seed, void *owner, int index);
void glm_seq_free(glm_seq *seq);

void glm_sched_add(glm_sched *s, glm_seq *seq);
/* Removes a sequence wherever it is (cancel); frees its blocks.  The caller
 * frees the sequence. */
void glm_sched_remove(glm_sched *s, glm_seq *seq);

int glm_sched_has_work(const glm_sched *s);
/* Runs one step; returns the number of tokens computed (0: nothing to do). */
int glm_sched_step(glm_sched *s);

/* Blocks needed to hold n tokens. */
int glm_sched_blocks_for(const glm_sched *s, int n_tokens);
int glm_sched_total_blocks(const glm_sched *s);
/* Blocks allocation can hand out: free, or cached and held by nobody. */
int glm_sched_free_blocks(const glm_sched *s);

#endif
