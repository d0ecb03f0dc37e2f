/*
 * semantics_check.c: the numbers behind `make semantics-check`.
 *
 *   FORCED_TOOL_CALLS valid=<k>/<n>
 *       n seeded runs (temperature 1) of the random-weight fixture model on a
 *       chat request rendered with its tools, tool_choice naming a tool with
 *       a nested schema, thinking on with thinking_token_budget 8.  Each
 *       output is parsed while streaming (the deltas' argument fragments
 *       concatenated), and it is valid when it ended by itself with exactly
 *       one call of that tool whose arguments the JSON-schema checker
 *       (glm_schema_check, independent of the grammar's compiler) accepts.
 *   PARSE_COST us_per_token_1k=<a> us_per_token_32k=<b> ratio=<b/a>
 *       streaming parse (decode, parse, write the delta) per token of a GLM
 *       turn (reasoning, content, a call with a long string argument) of
 *       1k and 32k tokens; flat cost means a ratio near 1 (vLLM's re-parse
 *       grows with the length).
 *   MASK_COST vocab=151552 us_per_step_first_pass=<> us_per_step_cached=<>
 *             us_compute_mean=<> us_compute_max=<>
 *       the grammar's mask per decoding step on a synthetic vocabulary the
 *       size of GLM-4.5's (151,329 byte-level tokens plus its 36 added
 *       ones), over every position of a turn (thinking, text, a call with
 *       nested JSON): a request's first pass (the cache filling as it goes:
 *       what one request pays), the same turn again (every mask cached: what
 *       other choices and repeated states pay), and the cost of computing
 *       one mask from scratch, mean and worst.
 *   STRUCTURED_MASK_COST kind=<k> us_per_step_first_pass=<> us_compute_mean=<>
 *             us_compute_max=<>
 *       the same on the same vocabulary for structured outputs (thinking,
 *       then content under the constraint): a narrow regex, a wide one
 *       ([^\n]{1,80}: most tokens stay alive), a choice, a GBNF grammar and
 *       a JSON schema.
 *
 * Run from the repository root; an argument overrides the number of forced
 * runs; MASK_DEBUG=1 prints each step's mask cost.  Exit status 1 when a
 * forced output is invalid (timings never fail it: reported, not asserted).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "model/sampling.h"
#include "output/glm_output.h"
#include "output/json_schema.h"
#include "output/tool_grammar.h"
#include "server/scheduler.h"
#include "text/chat_template.h"

#define FIXTURE "t/fixtures/glm45-air-tiny"

static const char *nested_tool =
    "{\"type\":\"function\",\"function\":{\"name\":\"book_trip\","
    "\"description\":\"Book a trip for the travellers\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{"
    "\"city\":{\"type\":\"string\",\"maxLength\":12},"
    "\"nights\":{\"type\":\"integer\"},"
    "\"class\":{\"type\":\"string\",\"enum\":[\"economy\",\"business\"]},"
    "\"travellers\":{\"type\":\"array\",\"maxItems\":2,\"items\":{\"type\":\"object\","
    "\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":8},\"age\":{\"type\":\"integer\"}},"
    "\"required\":[\"name\"]}},"
    "\"budget\":{\"anyOf\":[{\"type\":\"number\"},{\"type\":\"null\"}]},"
    "\"notes\":{\"type\":[\"string\",\"null\"],\"maxLength\":10},"
    "\"flexible\":{\"type\":\"boolean\"},"
    "\"prefs\":{\"type\":\"object\",\"properties\":{\"seat\":{\"type\":\"string\","
    "\"enum\":[\"aisle\",\"window\"]},\"meal\":{\"type\":[\"string\",\"null\"],\"maxLength\":6}},"
    "\"required\":[\"seat\"]}},"
    "\"required\":[\"city\",\"nights\",\"travellers\",\"prefs\"]}}}";

static const char *other_tool =
    "{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{"
    "\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}}";

static yajl_val
get(yajl_val o, const char *k)
{
    size_t i;

    for (i = 0; o != NULL && YAJL_IS_OBJECT(o) && i < o->u.object.len; i++) {
        if (strcmp(o->u.object.keys[i], k) == 0) {
            return o->u.object.values[i];
        }
    }
    return NULL;
}

/* ---- FORCED_TOOL_CALLS -------------------------------------------------------- */

typedef struct {
    glm_model      *m;
    glm_tg_state  **st;
    glm_out       **out;
    glm_str        *args;        /* streamed argument fragments, per run */
    int            *n_calls_streamed, *eos, *n_gen, *refused;
    int             max_tokens;
} forced_ctx;

static void
forced_mask(void *p, glm_seq *seq, float *logits)
{
    forced_ctx *c = p;

    glm_tg_mask(c->st[seq->index], logits);
}

/* the streamed delta: count call headers and collect arguments */
static void
forced_delta(forced_ctx *c, int i)
{
    glm_str s = { 0 }, w = { 0 };
    yajl_val d, calls;
    char ebuf[128];
    size_t k;

    if (glm_out_delta(c->out[i], &s) == 0) {
        glm_str_free(&s);
        return;
    }
    glm_str_adds(&w, "{");
    glm_str_add(&w, s.data, s.len);
    glm_str_adds(&w, "}");
    d = yajl_tree_parse(w.data, ebuf, sizeof(ebuf));
    calls = get(d, "tool_calls");
    for (k = 0; calls != NULL && YAJL_IS_ARRAY(calls) && k < calls->u.array.len; k++) {
        yajl_val e = calls->u.array.values[k], a = get(get(e, "function"), "arguments");
        if (get(e, "id") != NULL) {
            c->n_calls_streamed[i]++;
        }
        if (a != NULL && YAJL_IS_STRING(a) && YAJL_GET_INTEGER(get(e, "index")) == 0) {
            glm_str_adds(&c->args[i], a->u.string);
        }
    }
    yajl_tree_free(d);
    glm_str_free(&s);
    glm_str_free(&w);
}

static int
forced_token(void *p, glm_seq *seq, const glm_sampled *sm)
{
    forced_ctx *c = p;
    int i = seq->index;

    c->n_gen[i]++;
    if (glm_tg_advance(c->st[i], sm->token) != 0) {
        c->refused[i]++;
    }
    if (glm_config_is_eos(&c->m->cfg, sm->token)) {
        c->eos[i] = 1;
        glm_out_finish(c->out[i]);
        forced_delta(c, i);
        return 1;
    }
    glm_out_feed_token(c->out[i], sm->token);
    forced_delta(c, i);
    if (c->n_gen[i] >= c->max_tokens) {
        glm_out_finish(c->out[i]);
        forced_delta(c, i);
        return 1;
    }
    return 0;
}

static int
forced_tool_calls(glm_tokenizer *tok, int n, int *valid_out)
{
    glm_backend *be = glm_backend_cpu_create(0);
    glm_model *m;
    glm_chat_template *ct;
    glm_err err;
    glm_str req = { 0 };
    yajl_val root, schema;
    char ebuf[256], *prompt = NULL, why[256];
    size_t plen = 0;
    glm_tokenizer_ids ids = { 0 };
    glm_out_request rq;
    const char *param;
    glm_tg_vocab *voc;
    glm_tg *g;
    glm_sched s;
    forced_ctx c;
    glm_seq **seqs;
    int i, valid = 0, eos_n = 0, refused = 0, steps = 0;
    int32_t eos[16];
    double t0 = glm_now_seconds(), tokens = 0;

    m = glm_model_load(FIXTURE, be, &err);
    ct = m ? glm_chat_template_load(FIXTURE, NULL, &err) : NULL;
    if (m == NULL || ct == NULL) {
        fprintf(stderr, "semantics_check: %s\n", err.msg);
        return -1;
    }
    glm_str_addf(&req, "{\"messages\":[{\"role\":\"user\",\"content\":\"Book two nights in Rome"
                 " for Ann.\"}],\"tools\":[%s,%s],\"tool_choice\":{\"type\":\"function\","
                 "\"function\":{\"name\":\"book_trip\"}},\"thinking_token_budget\":8}",
                 nested_tool, other_tool);
    root = yajl_tree_parse(req.data, ebuf, sizeof(ebuf));
    schema = get(get(get(root, "tools")->u.array.values[0], "function"), "parameters");
    if (glm_out_request_parse(&rq, root, NULL, &param, &err) != 0
        || glm_chat_template_render_request(ct, req.data, req.len, NULL, &prompt, &plen, &err) != 0
        || glm_tokenizer_encode(tok, NULL, prompt, plen, &ids, &err) != 0)
    {
        fprintf(stderr, "semantics_check: request: %s\n", err.msg);
        return -1;
    }
    for (i = 0; i < m->cfg.n_eos && i < 16; i++) {
        eos[i] = m->cfg.eos_ids[i];
    }
    voc = glm_tg_vocab_new(tok, m->cfg.vocab_size, eos, m->cfg.n_eos, &err);
    g = voc ? glm_tg_new(voc, rq.tools, &rq.tg, &err) : NULL;
    if (g == NULL || glm_sched_init(&s, m, (int) ((ids.len + 1200) / 16 + 2) * n, 16, n, 16384,
                                    &err) != 0)
    {
        fprintf(stderr, "semantics_check: %s\n", err.msg);
        return -1;
    }
    memset(&c, 0, sizeof(c));
    c.m = m;
    c.max_tokens = 1200;
    seqs = calloc((size_t) n, sizeof(*seqs));
    c.st = calloc((size_t) n, sizeof(*c.st));
    c.out = calloc((size_t) n, sizeof(*c.out));
    c.args = calloc((size_t) n, sizeof(*c.args));
    c.n_calls_streamed = calloc((size_t) n, sizeof(int));
    c.eos = calloc((size_t) n, sizeof(int));
    c.n_gen = calloc((size_t) n, sizeof(int));
    c.refused = calloc((size_t) n, sizeof(int));
    s.on_token = forced_token;
    s.mask = forced_mask;
    s.cb_ctx = &c;
    for (i = 0; i < n; i++) {
        glm_seq_params p;
        glm_out_opts oo;
        glm_seq *seq;
        memset(&p, 0, sizeof(p));
        p.sampling.temperature = 1.0f;
        p.sampling.top_p = 1.0f;
        p.repetition_penalty = 1.0f;
        memset(&oo, 0, sizeof(oo));
        oo.rq = &rq;
        oo.tok = tok;
        oo.skip_special = 1;
        oo.stream = 1;
        oo.id_seed = (uint64_t) i;
        c.st[i] = glm_tg_state_new(g);
        c.out[i] = glm_out_new(&oo);
        seq = glm_seq_new(ids.ids, (int) ids.len, &p, 7000 + (uint64_t) i, NULL, i);
        seq->constrained = 1;
        seqs[i] = seq;
        glm_sched_add(&s, seq);
    }
    while (glm_sched_has_work(&s) && steps < 1000000) {
        glm_sched_step(&s);
        steps++;
    }
    for (i = 0; i < n; i++) {
        yajl_val args = c.args[i].data ? yajl_tree_parse(c.args[i].data, ebuf, sizeof(ebuf)) : NULL;
        int ok = c.eos[i] && !c.refused[i] && c.n_calls_streamed[i] == 1 && args != NULL
                 && glm_schema_check(schema, schema, args, why, sizeof(why));
        if (!ok) {
            printf("  run %d invalid (%s, %d tokens, %d calls, %s): %.300s\n", i,
                   c.eos[i] ? "ended" : "cut", c.n_gen[i], c.n_calls_streamed[i],
                   args ? why : "arguments not JSON", c.args[i].data ? c.args[i].data : "");
        }
        valid += ok;
        eos_n += c.eos[i];
        refused += c.refused[i] > 0;
        tokens += c.n_gen[i];
        yajl_tree_free(args);
        glm_str_free(&c.args[i]);
        glm_tg_state_free(c.st[i]);
        glm_out_free(c.out[i]);
    }
    printf("# forced: prompt %zu tokens (the request rendered with its tools), %d runs,"
           " %.0f output tokens on average, %d ended by EOS, %d refused a token, %.1f s\n",
           ids.len, n, tokens / n, eos_n, refused, glm_now_seconds() - t0);
    *valid_out = valid;
    for (i = 0; i < n; i++) {
        glm_seq_free(seqs[i]);
    }
    free(seqs);
    glm_sched_free(&s);
    glm_tg_free(g);
    glm_tg_vocab_free(voc);
    glm_out_request_free(&rq);
    glm_tokenizer_ids_free(&ids);
    free(prompt);
    yajl_tree_free(root);
    glm_str_free(&req);
    free(c.st);
    free(c.out);
    free(c.args);
    free(c.n_calls_streamed);
    free(c.eos);
    free(c.n_gen);
    free(c.refused);
    glm_chat_template_free(ct);
    glm_model_free(m);
    be->destroy(be);
    return 0;
}

/* ---- PARSE_COST ------------------------------------------------------------------ */

/* a GLM turn of at least n tokens: reasoning, content, then a call whose
 * long string argument holds code */
static void
synthetic_turn(glm_tokenizer *tok, int n, glm_tokenizer_ids *ids)
{
    static const char *para =
        "Let me check the file. The function returns \"<b>\" + x; it needs a < b and "
        "escapes like \\n. \xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97 and more words to read.\n";
    static const char *code =
        "def f(x):\n    if x < 3 and y > 2:\n        return \"<tag attr='1'>\" + str(x)\n"
        "    # \xe4\xb8\xad\xe6\x96\x87 \\ comment </arg\n";
    glm_str t = { 0 };
    glm_err err;
    int r = n / 4, i;

    glm_str_adds(&t, "<think>");
    for (i = 0; i < r / 30 + 1; i++) {
        glm_str_adds(&t, para);
    }
    glm_str_adds(&t, "</think>\nHere is the plan.\n");
    for (i = 0; i < r / 60 + 1; i++) {
        glm_str_adds(&t, para);
    }
    glm_str_adds(&t, "<tool_call>write_file\n<arg_key>path</arg_key>\n<arg_value>/tmp/f.py"
                 "</arg_value>\n<arg_key>opts</arg_key>\n<arg_value>{\"mode\": \"w\", \"n\": [1, 2]}"
                 "</arg_value>\n<arg_key>content</arg_key>\n<arg_value>");
    for (i = 0; i < n / 20 + 1; i++) {
        glm_str_adds(&t, code);
    }
    glm_str_adds(&t, "</arg_value>\n</tool_call>");
    ids->len = 0;
    glm_tokenizer_encode(tok, NULL, t.data, t.len, ids, &err);
    glm_str_free(&t);
}

static double
parse_cost(glm_tokenizer *tok, const glm_out_request *rq, int n)
{
    glm_tokenizer_ids ids = { 0 };
    glm_str delta = { 0 };
    double best = 1e30;
    int rep;

    synthetic_turn(tok, n, &ids);
    if ((int) ids.len > n) {
        ids.len = (size_t) n;
    }
    for (rep = 0; rep < (n < 4096 ? 200 : 8); rep++) {
        glm_out_opts oo;
        glm_out *o;
        double t0, t;
        size_t i;
        memset(&oo, 0, sizeof(oo));
        oo.rq = rq;
        oo.tok = tok;
        oo.skip_special = 1;
        oo.stream = 1;
        o = glm_out_new(&oo);
        t0 = glm_now_seconds();
        for (i = 0; i < ids.len; i++) {
            glm_out_feed_token(o, ids.ids[i]);
            delta.len = 0;
            glm_out_delta(o, &delta);
        }
        glm_out_finish(o);
        glm_out_delta(o, &delta);
        t = glm_now_seconds() - t0;
        best = t < best ? t : best;
        glm_out_free(o);
    }
    glm_str_free(&delta);
    best = best * 1e6 / (double) ids.len;
    glm_tokenizer_ids_free(&ids);
    return best;
}

/* ---- MASK_COST ------------------------------------------------------------------- */

#define SYN_BPE     151329
#define SYN_LOGITS  151552

static const char *glm_added[36] = {
    "<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>", "<|system|>",
    "<|user|>", "<|assistant|>", "<|observation|>", "<|begin_of_image|>", "<|end_of_image|>",
    "<|begin_of_video|>", "<|end_of_video|>", "<|begin_of_audio|>", "<|end_of_audio|>",
    "<|begin_of_transcription|>", "<|end_of_transcription|>", "<|code_prefix|>",
    "<|code_middle|>", "<|code_suffix|>", "<think>", "</think>", "<tool_call>", "</tool_call>",
    "<tool_response>", "</tool_response>", "<arg_key>", "</arg_key>", "<arg_value>",
    "</arg_value>", "/nothink", "<|begin_of_box|>", "<|end_of_box|>", "<|image|>", "<|video|>",
};

typedef struct {
    uint8_t  **bytes;
    size_t    *lens;
    uint8_t   *special;
    int32_t    n;
    /* open-addressing set of token strings -> id */
    int32_t   *slot;
    uint32_t   cap;
} syn_vocab;

static uint64_t
syn_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    size_t i;

    for (i = 0; i < n; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

static int32_t
syn_find(const syn_vocab *v, const uint8_t *p, size_t n)
{
    uint32_t j = (uint32_t) syn_hash(p, n) & (v->cap - 1);

    for (; v->slot[j] >= 0; j = (j + 1) & (v->cap - 1)) {
        int32_t id = v->slot[j];
        if (v->lens[id] == n && memcmp(v->bytes[id], p, n) == 0) {
            return id;
        }
    }
    return -1;
}

static int
syn_add(syn_vocab *v, const uint8_t *p, size_t n, int special)
{
    uint32_t j;

    if (n == 0 || syn_find(v, p, n) >= 0) {
        return 0;
    }
    v->bytes[v->n] = malloc(n);
    memcpy(v->bytes[v->n], p, n);
    v->lens[v->n] = n;
    v->special[v->n] = (uint8_t) special;
    for (j = (uint32_t) syn_hash(p, n) & (v->cap - 1); v->slot[j] >= 0; j = (j + 1) & (v->cap - 1)) {
    }
    v->slot[j] = v->n++;
    return 1;
}

static size_t
syn_utf8(uint8_t *b, unsigned cp)
{
    if (cp < 0x80) {
        b[0] = (uint8_t) cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (uint8_t) (0xc0 | (cp >> 6));
        b[1] = (uint8_t) (0x80 | (cp & 0x3f));
        return 2;
    }
    b[0] = (uint8_t) (0xe0 | (cp >> 12));
    b[1] = (uint8_t) (0x80 | ((cp >> 6) & 0x3f));
    b[2] = (uint8_t) (0x80 | (cp & 0x3f));
    return 3;
}

/* 151,329 distinct byte strings shaped like a byte-level BPE vocabulary
 * (all 256 bytes; English pieces with and without a leading space; CJK;
 * digits; code punctuation, some with '<', '"' or '\\'; whitespace runs;
 * partial UTF-8), then GLM-4.5's 36 added tokens */
static void
syn_build(syn_vocab *v)
{
    static const char punct[] = "(){}[]<>=+-*/;:,.\"'\\_#@!?&|%$^~`";
    glm_rng rng;
    uint8_t b[64];
    int i;

    v->n = 0;
    v->cap = 1u << 19;
    v->slot = malloc(v->cap * sizeof(int32_t));
    memset(v->slot, -1, v->cap * sizeof(int32_t));
    v->bytes = calloc(SYN_BPE + 64, sizeof(uint8_t *));
    v->lens = calloc(SYN_BPE + 64, sizeof(size_t));
    v->special = calloc(SYN_BPE + 64, 1);
    glm_rng_seed(&rng, 42);
    for (i = 0; i < 256; i++) {
        b[0] = (uint8_t) i;
        syn_add(v, b, 1, 0);
    }
    /* whitespace as byte-level BPE vocabularies have it: runs of one kind,
     * newlines followed by indentation (a few hundred tokens) */
    for (i = 1; i <= 80; i++) {
        memset(b, ' ', (size_t) i);
        syn_add(v, b, (size_t) i, 0);
    }
    for (i = 1; i <= 16; i++) {
        memset(b, '\t', (size_t) i);
        syn_add(v, b, (size_t) i, 0);
        memset(b, '\n', (size_t) i);
        syn_add(v, b, (size_t) (i < 8 ? i : 8), 0);
    }
    for (i = 1; i <= 48; i++) {
        b[0] = '\n';
        memset(b + 1, ' ', (size_t) i);
        syn_add(v, b, (size_t) i + 1, 0);
        b[1] = '\n';
        memset(b + 2, ' ', (size_t) i);
        syn_add(v, b, (size_t) (i < 16 ? i : 16) + 2, 0);
    }
    for (i = 1; i <= 8; i++) {
        b[0] = '\n';
        memset(b + 1, '\t', (size_t) i);
        syn_add(v, b, (size_t) i + 1, 0);
    }
    syn_add(v, (const uint8_t *) " \n", 2, 0);
    syn_add(v, (const uint8_t *) "\r\n", 2, 0);
    syn_add(v, (const uint8_t *) " \n\n", 3, 0);
    while (v->n < SYN_BPE) {
        unsigned kind = (unsigned) (glm_rng_next(&rng) % 100);
        size_t n = 0, k, len;
        if (kind < 55) {                       /* words */
            if (glm_rng_next(&rng) % 3) {
                b[n++] = ' ';
            }
            len = 2 + glm_rng_next(&rng) % 9;
            for (k = 0; k < len; k++) {
                b[n++] = (uint8_t) ('a' + glm_rng_next(&rng) % 26);
            }
            if (glm_rng_next(&rng) % 5 == 0) {
                b[n - len] = (uint8_t) (b[n - len] - 32);
            }
        } else if (kind < 75) {                /* CJK */
            len = 1 + glm_rng_next(&rng) % 3;
            for (k = 0; k < len; k++) {
                n += syn_utf8(b + n, 0x4e00 + (unsigned) (glm_rng_next(&rng) % 0x5200));
            }
        } else if (kind < 82) {                /* digits */
            len = 1 + glm_rng_next(&rng) % 3;
            if (glm_rng_next(&rng) % 4 == 0) {
                b[n++] = ' ';
            }
            for (k = 0; k < len; k++) {
                b[n++] = (uint8_t) ('0' + glm_rng_next(&rng) % 10);
            }
        } else if (kind < 92) {                /* code punctuation */
            len = 1 + glm_rng_next(&rng) % 4;
            if (glm_rng_next(&rng) % 3 == 0) {
                b[n++] = ' ';
            }
            for (k = 0; k < len; k++) {
                b[n++] = (uint8_t) punct[glm_rng_next(&rng) % (sizeof(punct) - 1)];
            }
            if (glm_rng_next(&rng) % 3 == 0) {
                b[n++] = (uint8_t) ('a' + glm_rng_next(&rng) % 26);
            }
        } else if (kind < 96) {                /* mixed letters and digits */
            len = 2 + glm_rng_next(&rng) % 6;
            for (k = 0; k < len; k++) {
                b[n++] = (uint8_t) "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789_"
                         [glm_rng_next(&rng) % 47];
            }
        } else {                               /* partial UTF-8 */
            uint8_t c[3];
            syn_utf8(c, 0x4e00 + (unsigned) (glm_rng_next(&rng) % 0x5200));
            if (glm_rng_next(&rng) % 2) {
                b[n++] = c[0];
                b[n++] = c[1];
            } else {
                b[n++] = c[1];
                b[n++] = c[2];
                b[n++] = (uint8_t) ('a' + glm_rng_next(&rng) % 26);
            }
        }
        syn_add(v, b, n, 0);
    }
    for (i = 0; i < 36; i++) {
        syn_add(v, (const uint8_t *) glm_added[i], strlen(glm_added[i]), 1);
    }
}

/* added tokens cut out first (as the real tokenizer does), greedy longest
 * match between them: enough to make a plausible token stream */
static void
syn_encode(const syn_vocab *v, const char *text, glm_tokenizer_ids *ids)
{
    const uint8_t *p = (const uint8_t *) text;
    size_t n = strlen(text), i = 0, len, end, at;
    glm_err err;
    int k, which;

    ids->len = 0;
    while (i < n) {
        /* the next added token, if any */
        end = n;
        which = -1;
        for (k = 0; k < 36; k++) {
            const char *hit = strstr(text + i, glm_added[k]);
            if (hit != NULL && (size_t) (hit - text) < end) {
                end = (size_t) (hit - text);
                which = k;
            }
        }
        while (i < end) {
            int32_t id = -1;
            for (len = end - i < 32 ? end - i : 32; len > 0; len--) {
                if ((id = syn_find(v, p + i, len)) >= 0) {
                    break;
                }
            }
            glm_tokenizer_ids_push(ids, id, &err);
            i += len;
        }
        if (which >= 0) {
            at = strlen(glm_added[which]);
            glm_tokenizer_ids_push(ids, syn_find(v, p + i, at), &err);
            i += at;
        }
    }
}

static void
mask_cost(void)
{
    syn_vocab v;
    glm_tg_vocab *voc;
    glm_tools *tools;
    glm_tg *g;
    glm_tg_state *st;
    glm_tg_opts o;
    glm_err err;
    glm_str turn = { 0 }, tl = { 0 };
    glm_tokenizer_ids ids = { 0 };
    yajl_val tv;
    char ebuf[256];
    float *logits = malloc(SYN_LOGITS * sizeof(float));
    uint64_t *bits = malloc((SYN_LOGITS / 64 + 1) * sizeof(uint64_t)), hits, misses;
    int32_t eos[3];
    double t0, t_served = 0, t_miss = 0, t_hit = 0, worst = 0, t_build;
    size_t i;
    int k, refused = 0;

    t0 = glm_now_seconds();
    syn_build(&v);
    eos[0] = syn_find(&v, (const uint8_t *) "<|endoftext|>", 13);
    eos[1] = syn_find(&v, (const uint8_t *) "<|user|>", 8);
    eos[2] = syn_find(&v, (const uint8_t *) "<|observation|>", 15);
    voc = glm_tg_vocab_from_bytes(v.n, (const uint8_t *const *) v.bytes, v.lens, v.special,
                                  SYN_LOGITS, eos, 3, &err);
    t_build = glm_now_seconds() - t0;
    glm_str_addf(&tl, "[%s,%s]", nested_tool, other_tool);
    tv = yajl_tree_parse(tl.data, ebuf, sizeof(ebuf));
    tools = glm_tools_parse(tv, &err);
    if (voc == NULL || tools == NULL) {
        printf("MASK_COST error=%s\n", err.msg);
        return;
    }
    memset(&o, 0, sizeof(o));
    o.choice = GLM_TOOL_CHOICE_AUTO;
    o.parallel = 1;
    o.thinking = 1;
    o.think_budget = -1;
    g = glm_tg_new(voc, tools, &o, &err);
    st = glm_tg_state_new(g);
    glm_str_adds(&turn, "\n<think>The user wants a trip. I need city, nights and the travellers;"
                 " a < b holds and \"quotes\" too. \xe4\xb8\xad\xe6\x96\x87 reasoning here.</think>\n"
                 "Booking it now.<tool_call>book_trip\n<arg_key>city</arg_key>\n<arg_value>Rome"
                 "</arg_value>\n<arg_key>nights</arg_key>\n<arg_value>2</arg_value>\n"
                 "<arg_key>travellers</arg_key>\n<arg_value>[{\"name\": \"Ann\", \"age\": 31}, "
                 "{\"name\": \"Bo \\\"B\\\"\"}]</arg_value>\n<arg_key>notes</arg_key>\n<arg_value>"
                 "late <in></arg_value>\n<arg_key>prefs</arg_key>\n<arg_value>{\"seat\": "
                 "\"aisle\", \"meal\": null}</arg_value>\n<arg_key>budget</arg_key>\n<arg_value>"
                 "1250.5</arg_value>\n</tool_call><|observation|>");
    syn_encode(&v, turn.data, &ids);
    for (i = 0; i < ids.len; i++) {
        double a, b;
        for (k = 0; k < SYN_LOGITS; k++) {
            logits[k] = 0.0f;
        }
        a = glm_now_seconds();
        glm_tg_allowed(st, bits);                /* computed, as on a miss */
        b = glm_now_seconds();
        t_miss += b - a;
        worst = b - a > worst ? b - a : worst;
        if (getenv("MASK_DEBUG")) {
            int nb = 0, w;
            for (w = 0; w < SYN_LOGITS / 64; w++) nb += __builtin_popcountll(bits[w]);
            printf("  %3zu %8.1f us  allowed %6d  next '%.*s'\n", i, (b - a) * 1e6, nb,
                   (int) v.lens[ids.ids[i]], v.bytes[ids.ids[i]]);
        }
        a = glm_now_seconds();
        glm_tg_mask(st, logits);                 /* as served: cached after the first */
        t_served += glm_now_seconds() - a;
        if (!((bits[ids.ids[i] >> 6] >> (ids.ids[i] & 63)) & 1) || isinf(logits[ids.ids[i]])
            || glm_tg_advance(st, ids.ids[i]) != 0)
        {
            refused++;
            break;
        }
    }
    /* the same turn again: every mask now comes from the cache */
    glm_tg_state_free(st);
    st = glm_tg_state_new(g);
    for (i = 0; i < ids.len && !refused; i++) {
        double a = glm_now_seconds();
        glm_tg_mask(st, logits);
        t_hit += glm_now_seconds() - a;
        glm_tg_advance(st, ids.ids[i]);
    }
    glm_tg_stats(g, &hits, &misses);
    printf("# mask: synthetic vocabulary built and indexed in %.2f s; a %zu-token turn"
           " (thinking, text, one call with nested JSON), %llu cache hits, %llu misses%s\n",
           t_build, ids.len, (unsigned long long) hits, (unsigned long long) misses,
           refused ? "; THE TURN WAS REFUSED" : "");
    printf("MASK_COST vocab=%d us_per_step_first_pass=%.1f us_per_step_cached=%.1f"
           " us_compute_mean=%.1f us_compute_max=%.1f\n", SYN_LOGITS,
           t_served * 1e6 / (double) ids.len, t_hit * 1e6 / (double) ids.len,
           t_miss * 1e6 / (double) ids.len, worst * 1e6);
    glm_tg_state_free(st);
    glm_tg_free(g);
    glm_tools_free(tools);
    glm_tg_vocab_free(voc);
    yajl_tree_free(tv);
    glm_str_free(&turn);
    glm_str_free(&tl);
    glm_tokenizer_ids_free(&ids);
    for (k = 0; k < v.n; k++) {
        free(v.bytes[k]);
    }
    free(v.bytes);
    free(v.lens);
    free(v.special);
    free(v.slot);
    free(logits);
    free(bits);
}

/* the mask over a turn whose content is under a structured-output constraint */
static void
structured_cost(const syn_vocab *v, glm_tg_vocab *voc, const char *kind, const char *request,
                const char *content)
{
    char ebuf[256];
    yajl_val root = yajl_tree_parse(request, ebuf, sizeof(ebuf));
    glm_out_request rq;
    const char *param;
    glm_err err;
    glm_tg *g = NULL;
    glm_tg_state *st;
    glm_str turn = { 0 };
    glm_tokenizer_ids ids = { 0 };
    float *logits = malloc(SYN_LOGITS * sizeof(float));
    uint64_t *bits = malloc((SYN_LOGITS / 64 + 1) * sizeof(uint64_t));
    double t_served = 0, t_miss = 0, worst = 0;
    size_t i;
    int k, refused = 0;

    if (root == NULL || glm_out_request_parse(&rq, root, NULL, &param, &err) != 0
        || (g = glm_tg_new(voc, rq.tools, &rq.tg, &err)) == NULL)
    {
        printf("STRUCTURED_MASK_COST kind=%s error=%s\n", kind, root ? err.msg : ebuf);
        return;
    }
    st = glm_tg_state_new(g);
    glm_str_addf(&turn, "\n<think>Thinking about it, a < b.</think>%s<|endoftext|>", content);
    syn_encode(v, turn.data, &ids);
    for (i = 0; i < ids.len; i++) {
        double a, b;
        for (k = 0; k < SYN_LOGITS; k++) {
            logits[k] = 0.0f;
        }
        a = glm_now_seconds();
        glm_tg_allowed(st, bits);
        b = glm_now_seconds();
        t_miss += b - a;
        worst = b - a > worst ? b - a : worst;
        a = glm_now_seconds();
        glm_tg_mask(st, logits);
        t_served += glm_now_seconds() - a;
        if (!((bits[ids.ids[i] >> 6] >> (ids.ids[i] & 63)) & 1) || isinf(logits[ids.ids[i]])
            || glm_tg_advance(st, ids.ids[i]) != 0)
        {
            refused = 1;
            break;
        }
    }
    printf("STRUCTURED_MASK_COST kind=%s steps=%zu us_per_step_first_pass=%.1f"
           " us_compute_mean=%.1f us_compute_max=%.1f%s\n", kind, ids.len,
           t_served * 1e6 / (double) ids.len, t_miss * 1e6 / (double) ids.len, worst * 1e6,
           refused ? " THE TURN WAS REFUSED" : "");
    glm_tg_state_free(st);
    glm_tg_free(g);
    glm_out_request_free(&rq);
    yajl_tree_free(root);
    glm_str_free(&turn);
    glm_tokenizer_ids_free(&ids);
    free(logits);
    free(bits);
}

static void
structured_costs(void)
{
    syn_vocab v;
    glm_tg_vocab *voc;
    glm_err err;
    int32_t eos[3];
    int k;

    syn_build(&v);
    eos[0] = syn_find(&v, (const uint8_t *) "<|endoftext|>", 13);
    eos[1] = syn_find(&v, (const uint8_t *) "<|user|>", 8);
    eos[2] = syn_find(&v, (const uint8_t *) "<|observation|>", 15);
    voc = glm_tg_vocab_from_bytes(v.n, (const uint8_t *const *) v.bytes, v.lens, v.special,
                                  SYN_LOGITS, eos, 3, &err);
    if (voc == NULL) {
        printf("STRUCTURED_MASK_COST error=%s\n", err.msg);
        return;
    }
    structured_cost(&v, voc, "regex_narrow", "{\"structured_outputs\":{\"regex\":"
                    "\"\\\\(\\\\d{3}\\\\) \\\\d{3}-\\\\d{4}\"}}", "(555) 123-4567");
    structured_cost(&v, voc, "regex_wide", "{\"structured_outputs\":{\"regex\":"
                    "\"[^\\\\n]{1,80}\"}}", "A free line of text, with some words in it.");
    structured_cost(&v, voc, "choice", "{\"structured_outputs\":{\"choice\":[\"positive\","
                    "\"negative\",\"neutral\"]}}", "negative");
    structured_cost(&v, voc, "grammar", "{\"structured_outputs\":{\"grammar\":\"root ::= "
                    "\\\"SELECT \\\" [a-z_]+ \\\" FROM \\\" [a-z_]+\"}}",
                    "SELECT name FROM users");
    structured_cost(&v, voc, "json_schema", "{\"response_format\":{\"type\":\"json_schema\","
                    "\"json_schema\":{\"name\":\"p\",\"schema\":{\"type\":\"object\","
                    "\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":"
                    "\"integer\"},\"tags\":{\"type\":\"array\",\"items\":{\"type\":"
                    "\"string\"}}},\"required\":[\"name\",\"age\",\"tags\"]}}}}",
                    "\n{\"name\": \"Ann Smith\", \"age\": 31, \"tags\": [\"a\", \"bc\"]}");
    glm_tg_vocab_free(voc);
    for (k = 0; k < v.n; k++) {
        free(v.bytes[k]);
    }
    free(v.bytes);
    free(v.lens);
    free(v.special);
    free(v.slot);
}

int
main(int argc, char **argv)
{
    glm_tokenizer *tok;
    glm_err err;
    glm_out_request rq;
    const char *param;
    yajl_val root;
    char ebuf[256];
    int n = argc > 1 ? atoi(argv[1]) : 100, valid = 0;
    double a, b;

    tok = glm_tokenizer_load(FIXTURE "/tokenizer.json", &err);
    if (tok == NULL) {
        fprintf(stderr, "semantics_check: %s\n", err.msg);
        return 1;
    }
    if (forced_tool_calls(tok, n, &valid) != 0) {
        return 1;
    }
    printf("FORCED_TOOL_CALLS valid=%d/%d\n", valid, n);

    root = yajl_tree_parse("{\"messages\":[],\"tools\":[{\"type\":\"function\",\"function\":"
                           "{\"name\":\"write_file\",\"parameters\":{\"type\":\"object\","
                           "\"properties\":{\"path\":{\"type\":\"string\"},\"content\":{\"type\":"
                           "\"string\"},\"opts\":{\"type\":\"object\"}}}}}]}", ebuf, sizeof(ebuf));
    glm_out_request_parse(&rq, root, NULL, &param, &err);
    a = parse_cost(tok, &rq, 1024);
    b = parse_cost(tok, &rq, 32768);
    printf("PARSE_COST us_per_token_1k=%.3f us_per_token_32k=%.3f ratio=%.2f\n", a, b, b / a);
    glm_out_request_free(&rq);
    yajl_tree_free(root);

    mask_cost();
    structured_costs();
    glm_tokenizer_free(tok);
    return valid == n ? 0 : 1;
}
