/*
 * scheduler.c: see scheduler.h.
 */
#include "scheduler.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int glm_seq_reserve_blocks(glm_seq *seq, int n);
static int glm_seq_cacheable(const glm_sched *s, const glm_seq *seq);
static int glm_seq_hash_blocks(glm_sched *s, glm_seq *seq, int n_full);
static size_t glm_block_extra(const glm_sched *s, const glm_seq *seq, int first,
    uint8_t *out);
static int glm_prefix_lookup(glm_sched *s, glm_seq *seq, int *n_evictable);
static void glm_offer_blocks(glm_sched *s, glm_seq *seq, int n_done);
static int glm_bad_word_bans(const glm_seq *seq, int32_t *out, int V);
static int glm_prompt_lp_chunk(const glm_seq *seq, int from, int chunk, int *rows);
static int glm_prompt_lp_rows(const glm_seq *seq, int chunk);

int
glm_sched_blocks_for(const glm_sched *s, int n_tokens)
{
    return (n_tokens + s->block_size - 1) / s->block_size;
}

int
glm_sched_total_blocks(const glm_sched *s)
{
    return s->kv.n_blocks;
}

int
glm_sched_free_blocks(const glm_sched *s)
{
    return glm_block_pool_n_free(&s->pool);
}

int
glm_sched_init(glm_sched *s, glm_model *m, int n_blocks, int block_size,
    int max_num_seqs, int max_batched_tokens, glm_err *err)
{
    int T = max_batched_tokens, V = m->cfg.vocab_size;

    memset(s, 0, sizeof(*s));
    s->m = m;
    s->block_size = block_size;
    s->max_num_seqs = max_num_seqs;
    s->max_batched_tokens = max_batched_tokens;
    if (glm_kv_pool_init(&s->kv, m, n_blocks, block_size, err) != 0) {
        return -1;
    }
    if (glm_block_pool_init(&s->pool, n_blocks, block_size, err) != 0) {
        glm_kv_pool_free(&s->kv, m);
        return -1;
    }
    /* two counts, a position entry per token, a media digest per token */
    s->extra = malloc(8 + (size_t) block_size * (16 + GLM_MM_ITEM_HASH_SIZE));
    s->running = calloc((size_t) max_num_seqs, sizeof(glm_seq *));
    s->ids = malloc((size_t) T * sizeof(int32_t));
    s->pos3 = malloc((size_t) T * 3 * sizeof(int32_t));
    s->embed_rows = malloc((size_t) T * sizeof(float *));
    s->kv_pos = malloc((size_t) T * sizeof(int32_t));
    s->seq_of = malloc((size_t) T * sizeof(int32_t));
    s->rows = malloc((size_t) T * sizeof(int32_t));
    s->seq_blocks = malloc((size_t) max_num_seqs * sizeof(glm_seq_blocks));
    s->step_seqs = malloc((size_t) max_num_seqs * sizeof(glm_seq *));
    s->step_chunk = malloc((size_t) max_num_seqs * sizeof(int));
    s->spec = m->mtp != NULL;
    s->step_draft = calloc((size_t) max_num_seqs, 1);
    s->step_live = calloc((size_t) max_num_seqs, 1);
    s->hidden_rows = malloc((size_t) T * sizeof(int32_t));
    /* the logits stay in backend memory (m->logits): the host holds only
     * the sampling op's rows, a row per logits row, and one row of floats
     * (a constraint mask's zeros, a test's copy) */
    s->smp = calloc((size_t) T, sizeof(glm_sample_row));
    s->smp_out = calloc((size_t) T, sizeof(glm_sample_out));
    s->step_row = malloc((size_t) max_num_seqs * sizeof(int32_t));
    s->step_draft_ok = calloc((size_t) max_num_seqs, 1);
    s->raw = malloc((size_t) V * sizeof(float));
    s->counts = calloc((size_t) V, sizeof(int32_t));
    if (s->extra == NULL || s->running == NULL || s->ids == NULL
        || s->pos3 == NULL || s->embed_rows == NULL || s->kv_pos == NULL || s->seq_of == NULL
        || s->rows == NULL || s->seq_blocks == NULL || s->step_seqs == NULL
        || s->step_chunk == NULL || s->smp == NULL || s->smp_out == NULL
        || s->step_row == NULL || s->step_draft_ok == NULL || s->raw == NULL
        || s->counts == NULL || s->step_draft == NULL
        || s->step_live == NULL || s->hidden_rows == NULL)
    {
        glm_sched_free(s);
        return glm_errf(err, "out of memory sizing the scheduler for %d sequences"
                        " and %d tokens per step", max_num_seqs, max_batched_tokens);
    }
    return 0;
}

int
glm_sched_enable_prefix_caching(glm_sched *s, const char *model_dir, glm_err *err)
{
    char real[PATH_MAX], path[PATH_MAX], *config, *identity;
    size_t len, n;
    int rc;

    if (realpath(model_dir, real) == NULL) {
        snprintf(real, sizeof(real), "%s", model_dir);
    }
    if (glm_path_join(path, sizeof(path), model_dir, "config.json") != 0) {
        return glm_errf(err, "%s: path too long", model_dir);
    }
    config = glm_read_file(path, &len, err);
    if (config == NULL) {
        return -1;
    }
    n = strlen(real) + 1;
    identity = malloc(n + len);
    if (identity == NULL) {
        free(config);
        return glm_errf(err, "out of memory");
    }
    memcpy(identity, real, n);              /* the NUL separates the two */
    memcpy(identity + n, config, len);
    rc = glm_block_pool_enable_caching(&s->pool, identity, n + len, err);
    free(identity);
    free(config);
    return rc;
}

void
glm_sched_free(glm_sched *s)
{
    if (s->m != NULL && s->kv.k != NULL) {
        glm_kv_pool_free(&s->kv, s->m);
    }
    glm_block_pool_free(&s->pool);
    free(s->extra); free(s->running); free(s->ids); free(s->pos3);
    free(s->embed_rows);
    free(s->kv_pos); free(s->seq_of); free(s->rows); free(s->seq_blocks);
    free(s->step_seqs); free(s->step_chunk); free(s->logits); free(s->prob); free(s->raw);
    free(s->idx); free(s->counts);
    free(s->smp); free(s->smp_out); free(s->step_row); free(s->step_draft_ok);
    free(s->smp_ints); free(s->smp_floats); free(s->smp_words);
    free(s->step_draft); free(s->step_live); free(s->hidden_rows);
    memset(s, 0, sizeof(*s));
}

glm_seq *
glm_seq_new(const int32_t *prompt, int n, const glm_seq_params *p, uint64_t seed,
    void *owner, int index)
{
    glm_seq *seq = calloc(1, sizeof(*seq));

    if (seq == NULL) {
        free(p->logit_bias);
        free(p->banned);
        return NULL;
    }
    seq->params = *p;
    seq->cap = n + 16;
    seq->tokens = malloc((size_t) seq->cap * sizeof(int32_t));
    if (seq->tokens == NULL) {
        glm_seq_free(seq);
        return NULL;
    }
    memcpy(seq->tokens, prompt, (size_t) n * sizeof(int32_t));
    seq->n_tokens = seq->n_prompt = n;
    seq->owner = owner;
    seq->index = index;
    glm_rng_seed(&seq->rng, seed);
    seq->seed = seed;
    return seq;
}

void
glm_seq_free(glm_seq *seq)
{
    if (seq != NULL) {
        free(seq->tokens);
        free(seq->blocks);
        free(seq->hashes);
        free(seq->params.logit_bias);
        free(seq->params.banned);
        glm_mm_prompt_unref(seq->mm);
        free(seq);
    }
}

/* Last block first: the tail of a prompt is evicted before its head. */
static void
glm_release_blocks(glm_sched *s, glm_seq *seq)
{
    int i;

    for (i = seq->n_blocks - 1; i >= 0; i--) {
        glm_block_pool_release(&s->pool, seq->blocks[i]);
    }
    seq->n_blocks = 0;
    seq->n_cached = 0;
    seq->n_offered = 0;
}

static int
glm_seq_reserve_blocks(glm_seq *seq, int n)
{
    if (n > seq->blocks_cap) {
        int cap = n + 8;
        int32_t *b = realloc(seq->blocks, (size_t) cap * sizeof(int32_t));
        if (b == NULL) {
            return -1;
        }
        seq->blocks = b;
        seq->blocks_cap = cap;
    }
    return 0;
}

/* Grows the block table to hold n tokens; -1 when the pool is short. */
static int
glm_ensure_blocks(glm_sched *s, glm_seq *seq, int n)
{
    int need = glm_sched_blocks_for(s, n);

    if (need - seq->n_blocks > glm_block_pool_n_free(&s->pool)
        || glm_seq_reserve_blocks(seq, need) != 0)
    {
        return -1;
    }
    while (seq->n_blocks < need) {
        seq->blocks[seq->n_blocks++] = glm_block_pool_alloc(&s->pool);
    }
    return 0;
}

/* ---- prefix caching ------------------------------------------------------- */

/* A prompt whose images carry no digests never shares a block. */
static int
glm_seq_cacheable(const glm_sched *s, const glm_seq *seq)
{
    return s->pool.caching && (seq->mm == NULL || seq->mm->item_hash != NULL);
}

/* Extends seq->hashes to its first n_full blocks (tokens must cover them). */
static int
glm_seq_hash_blocks(glm_sched *s, glm_seq *seq, int n_full)
{
    if (n_full > seq->hashes_cap) {
        int cap = n_full + 16;
        glm_block_hash *h = realloc(seq->hashes, (size_t) cap * sizeof(*h));
        if (h == NULL) {
            return -1;
        }
        seq->hashes = h;
        seq->hashes_cap = cap;
    }
    if (seq->n_hashes == 0 && n_full > 0 && seq->params.cache_salt != NULL) {
        static const int32_t none = 0;

        /* vLLM puts the salt in the first block's keys: here it makes a
         * root of its own, so a salted chain meets no other chain */
        glm_block_pool_hash(&s->pool, &seq->salt_root, &s->pool.root, &none, 0,
                            seq->params.cache_salt, seq->params.cache_salt_len);
    }
    while (seq->n_hashes < n_full) {
        int i = seq->n_hashes, first = i * s->block_size;
        size_t extra_len = glm_block_extra(s, seq, first, s->extra);

        glm_block_pool_hash(&s->pool, &seq->hashes[i],
                            i > 0 ? &seq->hashes[i - 1]
                            : seq->params.cache_salt != NULL ? &seq->salt_root
                            : &s->pool.root,
                            seq->tokens + first, s->block_size, s->extra, extra_len);
        seq->n_hashes++;
    }
    return 0;
}

/*
 * What else decides the keys and values of the block starting at token
 * `first`, for a prompt with images or videos: the (t, h, w) rope position
 * of every token not at the text default (p, p, p), and the digest of every
 * image or video with rows in the block, so that two images (or one image
 * at two sizes) behind the same placeholder ids never share a block.  Empty
 * where both lists are, so a text block hashes as in a text-only prompt.
 */
static size_t
glm_block_extra(const glm_sched *s, const glm_seq *seq, int first, uint8_t *out)
{
    const glm_mm_prompt *mm = seq->mm;
    int32_t n_pos = 0, n_items = 0, last = -1, entry[4];
    size_t len = 2 * sizeof(int32_t);
    int j, p;

    if (mm == NULL) {
        return 0;
    }
    for (j = 0; j < s->block_size; j++) {
        p = first + j;
        if (p < mm->n_prompt) {
            memcpy(entry + 1, mm->pos3 + 3 * p, 3 * sizeof(int32_t));
        } else {
            entry[1] = entry[2] = entry[3] = p + mm->rope_delta;
        }
        if (entry[1] != p || entry[2] != p || entry[3] != p) {
            entry[0] = j;
            memcpy(out + len, entry, sizeof(entry));
            len += sizeof(entry);
            n_pos++;
        }
    }
    for (j = 0; j < s->block_size; j++) {
        p = first + j;
        if (p < mm->n_prompt && mm->item_of[p] >= 0 && mm->item_of[p] != last) {
            last = mm->item_of[p];
            memcpy(out + len, mm->item_hash + (size_t) last * GLM_MM_ITEM_HASH_SIZE,
                   GLM_MM_ITEM_HASH_SIZE);
            len += GLM_MM_ITEM_HASH_SIZE;
            n_items++;
        }
    }
    if (n_pos == 0 && n_items == 0) {
        return 0;
    }
    memcpy(out, &n_pos, sizeof(n_pos));
    memcpy(out + sizeof(n_pos), &n_items, sizeof(n_items));
    return len;
}

/*
 * The longest run of seq's leading full blocks that are cached, at most
 * n_tokens - 1 tokens (the last must be computed for its logits), written
 * to seq->blocks[0..k) but not taken; *n_evictable: how many of them nobody
 * holds (taking them uses up free capacity).  Returns k.
 */
static int
glm_prefix_lookup(glm_sched *s, glm_seq *seq, int *n_evictable)
{
    int k, max_k = (seq->n_tokens - 1) / s->block_size;

    *n_evictable = 0;
    if (max_k <= 0 || glm_seq_hash_blocks(s, seq, max_k) != 0
        || glm_seq_reserve_blocks(seq, glm_sched_blocks_for(s, seq->n_tokens)) != 0)
    {
        return 0;
    }
    for (k = 0; k < max_k; k++) {
        int32_t b = glm_block_pool_lookup(&s->pool, &seq->hashes[k]);
        if (b < 0) {
            break;
        }
        seq->blocks[k] = b;
        *n_evictable += s->pool.ref[b] == 0;
    }
    return k;
}

/* Caches seq's blocks that are full once its first n_done tokens are
 * computed (they are by the end of this step). */
static void
glm_offer_blocks(glm_sched *s, glm_seq *seq, int n_done)
{
    int n_full = n_done / s->block_size;

    if (seq->n_offered >= n_full || !glm_seq_cacheable(s, seq)
        || glm_seq_hash_blocks(s, seq, n_full) != 0)
    {
        return;
    }
    for (; seq->n_offered < n_full; seq->n_offered++) {
        glm_block_pool_cache(&s->pool, seq->blocks[seq->n_offered],
                             &seq->hashes[seq->n_offered]);
    }
}

static void
glm_wait_push_front(glm_sched *s, glm_seq *seq)
{
    seq->state = GLM_SEQ_WAITING;
    seq->next_wait = s->wait_head;
    s->wait_head = seq;
    if (s->wait_tail == NULL) {
        s->wait_tail = seq;
    }
    s->n_waiting++;
}

void
glm_sched_add(glm_sched *s, glm_seq *seq)
{
    seq->state = GLM_SEQ_WAITING;
    seq->next_wait = NULL;
    if (s->wait_tail) {
        s->wait_tail->next_wait = seq;
    } else {
        s->wait_head = seq;
    }
    s->wait_tail = seq;
    s->n_waiting++;
}

static void
glm_running_remove(glm_sched *s, glm_seq *seq)
{
    int i;

    for (i = 0; i < s->n_running; i++) {
        if (s->running[i] == seq) {
            memmove(&s->running[i], &s->running[i + 1],
                    (size_t) (s->n_running - i - 1) * sizeof(glm_seq *));
            s->n_running--;
            return;
        }
    }
}

void
glm_sched_remove(glm_sched *s, glm_seq *seq)
{
    glm_seq **pp, *prev = NULL;

    if (seq->state == GLM_SEQ_RUNNING) {
        glm_running_remove(s, seq);
    } else if (seq->state == GLM_SEQ_WAITING) {
        for (pp = &s->wait_head; *pp != NULL; prev = *pp, pp = &(*pp)->next_wait) {
            if (*pp == seq) {
                *pp = seq->next_wait;
                if (s->wait_tail == seq) {
                    s->wait_tail = prev;
                }
                s->n_waiting--;
                break;
            }
        }
    }
    glm_release_blocks(s, seq);
    seq->state = GLM_SEQ_FINISHED;
}

/* Frees the most recently admitted running sequence other than `keep`. */
static int
glm_preempt_one(glm_sched *s, glm_seq *keep)
{
    glm_seq *victim = NULL;
    int i;

    for (i = 0; i < s->n_running; i++) {
        if (s->running[i] != keep
            && (victim == NULL || s->running[i]->admit_order > victim->admit_order))
        {
            victim = s->running[i];
        }
    }
    if (victim == NULL) {
        return -1;
    }
    glm_running_remove(s, victim);
    glm_release_blocks(s, victim);
    victim->has_draft = 0;              /* its MTP KV is recomputed with it */
    victim->n_preempted++;
    s->preemptions++;
    glm_wait_push_front(s, victim);
    return 0;
}

int
glm_sched_has_work(const glm_sched *s)
{
    int i;

    if (s->wait_head != NULL) {
        return 1;
    }
    for (i = 0; i < s->n_running; i++) {
        if (!s->running[i]->paused) {
            return 1;
        }
    }
    return 0;
}

/* vLLM's bad words: a word's last token is banned when the output so far
 * ends with the tokens before it (a one-token word always); writes the
 * banned ids to out, returns how many */
static int
glm_bad_word_bans(const glm_seq *seq, int32_t *out, int V)
{
    const glm_seq_params *p = &seq->params;
    const int32_t *w = p->bad_words;
    int n_out = seq->n_tokens - seq->n_prompt, k, j, len, n = 0;

    for (k = 0; k < p->n_bad_words; w += len, k++) {
        len = p->bad_word_len[k];
        if (len < 1 || len - 1 > n_out || w[len - 1] < 0 || w[len - 1] >= V) {
            continue;
        }
        for (j = 0; j < len - 1; j++) {
            if (seq->tokens[seq->n_tokens - (len - 1) + j] != w[j]) {
                break;
            }
        }
        if (j == len - 1) {
            out[n++] = w[len - 1];
        }
    }
    return n;
}

/* ---- the sampling op's rows ------------------------------------------------------ */

static int
glm_grow(void **p, size_t *cap, size_t want, size_t elem)
{
    if (want > *cap) {
        void *q = realloc(*p, (want + want / 2 + 64) * elem);
        if (q == NULL) {
            return -1;
        }
        *p = q;
        *cap = want + want / 2 + 64;
    }
    return 0;
}

static int
glm_seq_masked(const glm_sched *s, const glm_seq *seq)
{
    return seq->params.allowed != NULL
           || (seq->constrained && (s->mask_bits != NULL || s->mask != NULL));
}

static int
glm_seq_penalized(const glm_seq_params *p)
{
    return p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f
           || (p->repetition_penalty > 0.0f && p->repetition_penalty != 1.0f);
}

/* Starts a pass of rows, sized for the sequences seqs[0..n) (NULL entries
 * skipped) whose next token it samples: their lists go in pools grown now,
 * so the pointers the rows take stay valid until the op has run. */
static int
glm_smp_begin(glm_sched *s, glm_seq *const *seqs, const uint8_t *take, int n)
{
    size_t ints = 0, floats = 0, words = 0, W = ((size_t) s->m->cfg.vocab_size + 31) / 32;
    int i;

    for (i = 0; i < n; i++) {
        const glm_seq *seq = seqs[i];
        const glm_seq_params *p;
        if (seq == NULL || (take != NULL && !take[i])) {
            continue;
        }
        p = &seq->params;
        ints += (glm_seq_penalized(p) ? 2 * (size_t) seq->n_tokens : 0)
                + (size_t) p->n_logit_bias + (size_t) p->n_banned + (size_t) p->n_bad_words;
        floats += (size_t) p->n_logit_bias;
        words += glm_seq_masked(s, seq) ? W : 0;
    }
    s->smp_ints_used = s->smp_floats_used = s->smp_words_used = 0;
    return glm_grow((void **) &s->smp_ints, &s->smp_ints_cap, ints, sizeof(int32_t)) != 0
           || glm_grow((void **) &s->smp_floats, &s->smp_floats_cap, floats, sizeof(float)) != 0
           || glm_grow((void **) &s->smp_words, &s->smp_words_cap, words, sizeof(uint32_t)) != 0
           ? -1 : 0;
}

/* The allowed set as words: the request's allowed_token_ids, then the
 * grammar (mask_bits, or the float mask on a row of zeros: what stays
 * finite is allowed). */
static void
glm_smp_allowed(glm_sched *s, glm_seq *seq, uint32_t *w)
{
    const uint8_t *a = seq->params.allowed;
    int V = s->m->cfg.vocab_size, W = (V + 31) / 32, i;

    for (i = 0; i < W; i++) {
        w[i] = ~0u;
    }
    if (a != NULL) {
        memset(w, 0, (size_t) W * sizeof(uint32_t));
        for (i = 0; i < V; i++) {
            w[i >> 5] |= (uint32_t) ((a[i >> 3] >> (i & 7)) & 1u) << (i & 31);
        }
    }
    if (seq->constrained && s->mask_bits != NULL) {
        s->mask_bits(s->cb_ctx, seq, w);
    } else if (seq->constrained && s->mask != NULL) {
        memset(s->raw, 0, (size_t) V * sizeof(float));
        s->mask(s->cb_ctx, seq, s->raw);
        for (i = 0; i < V; i++) {
            if (!(s->raw[i] > -INFINITY)) {
                w[i >> 5] &= ~(1u << (i & 31));
            }
        }
    }
}

/*
 * The op's row for the sequence's next token from logits row `row`: what
 * the logits processors did on the host before (penalties on the counts of
 * the ids seen, logit_bias, min_tokens' and bad words' bans, the allowed
 * set) becomes the row's lists; the draw is keyed by the sequence's seed
 * and the token's index in the output; logprobs raw, as vLLM's default.
 */
static void
glm_smp_row(glm_sched *s, glm_seq *seq, int row, glm_sample_row *q)
{
    const glm_seq_params *p = &seq->params;
    int V = s->m->cfg.vocab_size, n_out = seq->n_tokens - seq->n_prompt, i, n;
    int32_t *ids;

    memset(q, 0, sizeof(*q));
    q->logit_row = row;
    q->temperature = p->sampling.temperature;
    q->top_k = p->sampling.top_k;
    q->top_p = p->sampling.top_p;
    q->min_p = p->sampling.min_p;
    q->presence_penalty = p->presence_penalty;
    q->frequency_penalty = p->frequency_penalty;
    q->repetition_penalty = p->repetition_penalty;
    q->seed = seq->seed;
    q->counter = (uint64_t) n_out;
    q->forced = -1;
    if (glm_seq_penalized(p)) {
        /* distinct ids (of the output only, unless repetition wants the
         * prompt's too), each with its output count; s->counts holds
         * 1 + that count while a token is being counted */
        int rep = p->repetition_penalty > 0.0f && p->repetition_penalty != 1.0f;
        ids = s->smp_ints + s->smp_ints_used;
        n = 0;
        for (i = rep ? 0 : seq->n_prompt; i < seq->n_tokens; i++) {
            int32_t t = seq->tokens[i];
            if (s->counts[t] == 0) {
                ids[n++] = t;
                s->counts[t] = 1;
            }
            s->counts[t] += i >= seq->n_prompt;
        }
        for (i = 0; i < n; i++) {
            ids[n + i] = s->counts[ids[i]] - 1;
            s->counts[ids[i]] = 0;
        }
        q->seen_ids = ids;
        q->seen_counts = ids + n;
        q->n_seen = n;
        s->smp_ints_used += 2 * (size_t) n;
    }
    if (p->n_logit_bias > 0) {
        int32_t *bid = s->smp_ints + s->smp_ints_used;
        float *bv = s->smp_floats + s->smp_floats_used;
        for (i = 0; i < p->n_logit_bias; i++) {
            bid[i] = p->logit_bias[i].id;
            bv[i] = p->logit_bias[i].bias;
        }
        q->bias_ids = bid;
        q->bias = bv;
        q->n_bias = p->n_logit_bias;
        s->smp_ints_used += (size_t) p->n_logit_bias;
        s->smp_floats_used += (size_t) p->n_logit_bias;
    }
    ids = s->smp_ints + s->smp_ints_used;
    n = 0;
    if (n_out < p->min_tokens) {
        for (i = 0; i < p->n_banned; i++) {
            ids[n++] = p->banned[i];
        }
    }
    if (p->n_bad_words > 0) {
        n += glm_bad_word_bans(seq, ids + n, V);
    }
    if (n > 0) {
        q->banned = ids;
        q->n_banned = n;
        s->smp_ints_used += (size_t) n;
    }
    if (glm_seq_masked(s, seq)) {
        uint32_t *w = s->smp_words + s->smp_words_used;
        glm_smp_allowed(s, seq, w);
        q->allowed = w;
        s->smp_words_used += ((size_t) V + 31) / 32;
    }
    if (p->logprobs) {
        q->logprobs = 1;
        q->n_top = p->top_logprobs;
        if (p->logprob_ids != NULL) {
            q->top_given = p->logprob_ids;
            q->n_given = p->n_logprob_ids;
        }
    }
    if (s->on_logits != NULL) {
        s->m->be->download(s->m->be, s->raw, s->m->logits + (size_t) row * V,
                           (size_t) V * sizeof(float));
        s->on_logits(s->cb_ctx, seq, s->raw);
    }
}

static void
glm_sampled_from(glm_sampled *o, const glm_sample_out *r)
{
    memset(o, 0, sizeof(*o));
    o->token = r->token;
    o->logprob = r->logprob;
    o->n_top = r->n_top;
    memcpy(o->top_ids, r->top_ids, sizeof(o->top_ids));
    memcpy(o->top_logprobs, r->top_logprobs, sizeof(o->top_logprobs));
}

static int
glm_append_token(glm_seq *seq, int32_t t)
{
    if (seq->n_tokens == seq->cap) {
        int cap = seq->cap * 2;
        int32_t *p = realloc(seq->tokens, (size_t) cap * sizeof(int32_t));
        if (p == NULL) {
            return -1;
        }
        seq->tokens = p;
        seq->cap = cap;
    }
    seq->tokens[seq->n_tokens++] = t;
    return 0;
}

/*
 * prompt_logprobs: a chunk of a sequence from token `from` cut so that its
 * prompt rows (positions whose next token is a prompt token) fit *rows, the
 * step's remaining budget of them, which it takes.  Other sequences: chunk.
 */
static int
glm_prompt_lp_chunk(const glm_seq *seq, int from, int chunk, int *rows)
{
    int want;

    if (!seq->params.prompt_logprobs) {
        return chunk;
    }
    want = seq->n_prompt - 1 - from;
    want = want < 0 ? 0 : want < chunk ? want : chunk;
    if (want > *rows) {
        chunk = *rows;          /* then every position of the chunk is a row */
        want = *rows;
    }
    *rows -= want;
    return chunk;
}

/* how many prompt-logprob rows a chunk just computed has (from n_cached) */
static int
glm_prompt_lp_rows(const glm_seq *seq, int chunk)
{
    int p, n = 0;

    if (!seq->params.prompt_logprobs) {
        return 0;
    }
    for (p = seq->n_cached; p < seq->n_cached + chunk && p + 1 < seq->n_prompt; p++) {
        n++;
    }
    return n;
}

/* Reports a sampled token; returns 1 when that finished the sequence (it is
 * then out of the scheduler and must not be touched). */
static int
glm_take_token(glm_sched *s, glm_seq *seq, const glm_sample_out *r, int32_t *token)
{
    glm_sampled out;

    glm_sampled_from(&out, r);
    *token = out.token;
    if (glm_append_token(seq, out.token) != 0
        || s->on_token(s->cb_ctx, seq, &out))
    {
        glm_sched_remove(s, seq);
        seq->state = GLM_SEQ_FINISHED;
        return 1;
    }
    return 0;
}

static void
glm_smp_out_of_memory(void)
{
    /* the host lists of one step's rows: a few ints per token of the
     * sequences; failing that, nothing sensible remains to sample with */
    fprintf(stderr, "glm-engine: out of memory for the sampling rows of a step\n");
    abort();
}

/* 5. The MTP layer over the positions this step computed, each with the
 * token that follows it and the main model's hidden state there (which
 * fills the MTP layer's KV); where the following token is a sequence's
 * newest, its logits give the draft for the position after (greedy, as
 * vLLM's MTP proposer, by the sampling op).  The step's token arrays are
 * compacted in place. */
static void
glm_mtp_step(glm_sched *s, int n_step, int T)
{
    int V = s->m->cfg.vocab_size, k = 0, n_rows = 0, t, r;
    glm_batch b;

    for (t = 0; t < T; t++) {
        int i = s->seq_of[t], p = s->kv_pos[t];
        glm_seq *seq = s->step_seqs[i];

        /* finished sequences, and a rejected draft's position, drop out */
        if (!s->step_live[i] || p + 1 >= seq->n_tokens) {
            continue;
        }
        s->ids[k] = seq->tokens[p + 1];
        memmove(s->pos3 + 3 * k, s->pos3 + 3 * t, 3 * sizeof(int32_t));
        s->kv_pos[k] = p;
        s->seq_of[k] = i;
        s->hidden_rows[k] = t;
        if (p + 2 == seq->n_tokens) {
            s->rows[n_rows++] = k;
        }
        k++;
    }
    if (k == 0) {
        return;
    }
    memset(&b, 0, sizeof(b));
    b.n_tokens = k;
    b.ids = s->ids;
    b.pos3 = s->pos3;
    b.attn = (glm_attn_batch) { k, s->seq_of, s->kv_pos, s->seq_blocks, n_step };
    b.logit_rows = s->rows;
    b.n_logits = n_rows;
    glm_model_mtp_forward(s->m, &s->kv, &b, s->hidden_rows, NULL);
    for (r = 0; r < n_rows; r++) {
        memset(&s->smp[r], 0, sizeof(s->smp[r]));
        s->smp[r].logit_row = r;
        s->smp[r].forced = -1;          /* temperature 0: the argmax */
    }
    s->m->be->sample(s->m->be, s->smp_out, s->m->logits, n_rows, V, s->smp);
    for (r = 0; r < n_rows; r++) {
        glm_seq *seq = s->step_seqs[s->seq_of[s->rows[r]]];
        seq->draft = s->smp_out[r].token;
        seq->has_draft = 1;
    }
}

int
glm_sched_step(glm_sched *s)
{
    int budget = s->max_batched_tokens, n_step = 0, T = 0, n_logits = 0, i, j, any_mm, draft;
    int n_rows, r, n_accepted;
    int V = s->m->cfg.vocab_size, lp_rows = GLM_SCHED_PROMPT_LP_ROWS;
    glm_batch b;

    /* 1. running sequences, oldest first */
    for (i = 0; i < s->n_running && budget > 0; i++) {
        glm_seq *seq = s->running[i];
        int chunk;

        if (seq->paused) {
            continue;
        }
        chunk = seq->n_tokens - seq->n_cached;
        chunk = chunk < budget ? chunk : budget;
        chunk = glm_prompt_lp_chunk(seq, seq->n_cached, chunk, &lp_rows);
        if (chunk == 0) {
            continue;
        }
        /* a decoding sequence with an MTP draft computes it too, where the
         * budget and a block for its position allow (never by preempting) */
        draft = seq->has_draft && chunk == 1 && seq->n_cached + 1 == seq->n_tokens
                && budget >= 2 && glm_ensure_blocks(s, seq, seq->n_tokens + 1) == 0;
        while (glm_ensure_blocks(s, seq, seq->n_cached + chunk) != 0) {
            if (glm_preempt_one(s, seq) != 0) {
                /* alone and still short: wait for it to free by itself */
                chunk = 0;
                break;
            }
            /* the victim may have sat before us in the array */
            for (j = 0; j < s->n_running; j++) {
                if (s->running[j] == seq) {
                    i = j;
                }
            }
            for (j = 0; j < n_step; j++) {
                if (s->step_seqs[j]->state != GLM_SEQ_RUNNING) {
                    /* a preempted member of this step: drop it */
                    budget += s->step_chunk[j] + s->step_draft[j];
                    memmove(&s->step_seqs[j], &s->step_seqs[j + 1],
                            (size_t) (n_step - j - 1) * sizeof(glm_seq *));
                    memmove(&s->step_chunk[j], &s->step_chunk[j + 1],
                            (size_t) (n_step - j - 1) * sizeof(int));
                    memmove(&s->step_draft[j], &s->step_draft[j + 1],
                            (size_t) (n_step - j - 1));
                    n_step--;
                    j--;
                }
            }
        }
        if (chunk > 0) {
            s->step_seqs[n_step] = seq;
            s->step_draft[n_step] = (uint8_t) draft;
            s->step_chunk[n_step++] = chunk;
            budget -= chunk + draft;
        }
    }
    /* nothing of this step can be preempted from here on */
    for (i = 0; i < n_step; i++) {
        glm_offer_blocks(s, s->step_seqs[i], s->step_seqs[i]->n_cached + s->step_chunk[i]);
    }

    /* 2. admit waiting sequences in order while everything allows, each
     * starting after the blocks of its prefix already cached */
    while (s->wait_head != NULL && s->n_running < s->max_num_seqs && budget > 0) {
        glm_seq *seq = s->wait_head;
        int hit = 0, n_evictable = 0, chunk, need, plp_left;

        if (glm_seq_cacheable(s, seq) && !seq->params.prompt_logprobs) {
            hit = glm_prefix_lookup(s, seq, &n_evictable);
        }
        chunk = seq->n_tokens - hit * s->block_size;
        chunk = chunk < budget ? chunk : budget;
        plp_left = lp_rows;
        chunk = glm_prompt_lp_chunk(seq, hit * s->block_size, chunk, &plp_left);
        need = glm_sched_blocks_for(s, hit * s->block_size + chunk) - hit;
        if (chunk == 0 || need > glm_block_pool_n_free(&s->pool) - n_evictable) {
            break;
        }
        lp_rows = plp_left;
        for (j = 0; j < hit; j++) {
            glm_block_pool_take(&s->pool, seq->blocks[j]);
        }
        seq->n_blocks = seq->n_offered = hit;
        seq->n_cached = seq->n_prefix_hit = hit * s->block_size;
        if (glm_ensure_blocks(s, seq, seq->n_cached + chunk) != 0) {
            glm_release_blocks(s, seq);     /* out of memory for its table */
            break;
        }
        if (glm_seq_cacheable(s, seq) && seq->n_preempted == 0
            && !seq->params.prompt_logprobs)
        {
            s->prefix_queries += (uint64_t) seq->n_tokens;
            s->prefix_hits += (uint64_t) seq->n_prefix_hit;
        }
        glm_offer_blocks(s, seq, seq->n_cached + chunk);
        s->wait_head = seq->next_wait;
        if (s->wait_head == NULL) {
            s->wait_tail = NULL;
        }
        s->n_waiting--;
        seq->state = GLM_SEQ_RUNNING;
        seq->admit_order = ++s->admit_counter;
        s->running[s->n_running++] = seq;
        s->step_seqs[n_step] = seq;
        s->step_draft[n_step] = 0;
        s->step_chunk[n_step++] = chunk;
        budget -= chunk;
    }
    if (n_step == 0) {
        return 0;
    }

    /* 3. one batch: each sequence's tokens at their positions; a prompt
     * with images takes its M-RoPE positions and vision rows from its mm,
     * and what follows it continues at position p + rope_delta */
    any_mm = 0;
    for (i = 0; i < n_step; i++) {
        glm_seq *seq = s->step_seqs[i];
        s->seq_blocks[i] = (glm_seq_blocks) { seq->blocks, seq->n_blocks };
        for (j = 0; j < s->step_chunk[i]; j++) {
            int p = seq->n_cached + j;
            s->ids[T] = seq->tokens[p];
            s->embed_rows[T] = NULL;
            if (seq->mm == NULL) {
                s->pos3[3 * T] = s->pos3[3 * T + 1] = s->pos3[3 * T + 2] = p;
            } else if (p < seq->mm->n_prompt) {
                const glm_mm_prompt *mm = seq->mm;
                memcpy(s->pos3 + 3 * T, mm->pos3 + 3 * p, 3 * sizeof(int32_t));
                if (mm->row_of[p] >= 0) {
                    s->embed_rows[T] = mm->rows + (int64_t) mm->row_of[p] * mm->hidden;
                    any_mm = 1;
                }
            } else {
                s->pos3[3 * T] = s->pos3[3 * T + 1] = s->pos3[3 * T + 2]
                    = p + seq->mm->rope_delta;
            }
            s->kv_pos[T] = p;
            s->seq_of[T] = i;
            if (seq->params.prompt_logprobs && p + 1 < seq->n_prompt) {
                s->rows[n_logits++] = T;
            }
            T++;
        }
        if (seq->n_cached + s->step_chunk[i] == seq->n_tokens) {
            s->rows[n_logits++] = T - 1;
        }
        if (s->step_draft[i]) {
            /* the draft at the next position, its logits right after */
            int p = seq->n_tokens;
            s->ids[T] = seq->draft;
            s->embed_rows[T] = NULL;
            s->pos3[3 * T] = s->pos3[3 * T + 1] = s->pos3[3 * T + 2]
                = seq->mm == NULL ? p : p + seq->mm->rope_delta;
            s->kv_pos[T] = p;
            s->seq_of[T] = i;
            s->rows[n_logits++] = T;
            T++;
        }
    }
    memset(&b, 0, sizeof(b));
    b.n_tokens = T;
    b.ids = s->ids;
    b.pos3 = s->pos3;
    b.embed_rows = any_mm ? s->embed_rows : NULL;
    b.attn = (glm_attn_batch) { T, s->seq_of, s->kv_pos, s->seq_blocks, n_step };
    b.logit_rows = s->rows;
    b.n_logits = n_logits;
    b.keep_hidden = s->spec;
    glm_model_forward(s->m, &s->kv, &b, NULL);
    s->steps++;
    s->step_tokens += (uint64_t) T;

    /* 4. one sampling op over the step's rows, the logits staying in
     * backend memory: each prompt-logprobs row (its next prompt token
     * forced) and each sequence that reached its end.  A draft's row
     * waits for the token before it (second pass below). */
    if (glm_smp_begin(s, s->step_seqs, NULL, n_step) != 0) {
        glm_smp_out_of_memory();
    }
    n_rows = 0;
    for (i = 0, j = 0; i < n_step; i++) {
        glm_seq *seq = s->step_seqs[i];
        int k, n_lp = glm_prompt_lp_rows(seq, s->step_chunk[i]);

        for (k = 0; k < n_lp; k++, j++) {
            glm_sample_row *q = &s->smp[n_rows++];
            memset(q, 0, sizeof(*q));
            q->logit_row = j;
            q->forced = seq->tokens[seq->n_cached + k + 1];
            q->logprobs = 1;
            q->n_top = seq->params.prompt_top_logprobs;
            q->rank = 1;
        }
        s->step_row[i] = -1;
        if (seq->n_cached + s->step_chunk[i] == seq->n_tokens) {
            s->step_row[i] = n_rows;
            glm_smp_row(s, seq, j++, &s->smp[n_rows++]);
        }
        if (s->step_draft[i]) {
            j++;
        }
    }
    s->m->be->sample(s->m->be, s->smp_out, s->m->logits, n_rows, V, s->smp);

    for (i = 0, j = 0, r = 0, n_accepted = 0; i < n_step; i++) {
        glm_seq *seq = s->step_seqs[i];
        int at_end = seq->n_cached + s->step_chunk[i] == seq->n_tokens, done, k;
        int n_lp = glm_prompt_lp_rows(seq, s->step_chunk[i]);
        int32_t token;

        for (k = 0; k < n_lp; k++, r++, j++) {
            glm_sampled out;
            glm_sampled_from(&out, &s->smp_out[r]);
            if (s->on_prompt_logprob != NULL) {
                s->on_prompt_logprob(s->cb_ctx, seq, seq->n_cached + k + 1, &out,
                                     s->smp_out[r].rank);
            }
        }
        seq->n_cached += s->step_chunk[i];
        s->step_live[i] = 1;
        s->step_draft_ok[i] = 0;
        if (!at_end) {
            continue;
        }
        done = glm_take_token(s, seq, &s->smp_out[r++], &token);
        j++;
        if (s->step_draft[i]) {
            s->spec_drafts++;               /* computed, so counted (vLLM too) */
            if (!done && token == seq->draft) {
                /* the draft's keys and values are this token's, and its
                 * row's logits are the next position's */
                s->spec_accepted++;
                seq->n_cached++;
                s->step_draft_ok[i] = 1;
                s->step_row[i] = j;
                n_accepted++;
            }
            j++;
        }
        s->step_live[i] = !done;
        if (!done) {
            seq->has_draft = 0;
        }
    }

    /* the accepted drafts' rows: sampled as the next token of each, with
     * the state the first token left (penalties, grammar, the counter) */
    if (n_accepted > 0) {
        if (glm_smp_begin(s, s->step_seqs, s->step_draft_ok, n_step) != 0) {
            glm_smp_out_of_memory();
        }
        for (i = 0, n_rows = 0; i < n_step; i++) {
            if (s->step_draft_ok[i]) {
                glm_smp_row(s, s->step_seqs[i], s->step_row[i], &s->smp[n_rows++]);
            }
        }
        s->m->be->sample(s->m->be, s->smp_out, s->m->logits, n_rows, V, s->smp);
        for (i = 0, r = 0; i < n_step; i++) {
            int32_t token;
            if (s->step_draft_ok[i]) {
                s->step_live[i] = !glm_take_token(s, s->step_seqs[i], &s->smp_out[r++], &token);
            }
        }
    }
    if (s->spec) {
        glm_mtp_step(s, n_step, T);
    }
    return T;
}
