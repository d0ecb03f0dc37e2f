/*
 * test_structured.c: structured outputs, piece by piece and whole.
 *
 *   - the regex compiler against Python's re.fullmatch (t/regex_cases.py
 *     wrote t/fixtures/regex/cases.json), unsupported and malformed
 *     patterns refused;
 *   - GBNF grammars against a Python regex of the same language (same
 *     file), recursive and Lark grammars refused;
 *   - response_format / structured_outputs parsing: vLLM's rules and words;
 *   - the constraint inside the tool grammar on the fixture's tokenizer:
 *     mask and step agree on every id, with thinking on and off;
 *   - the fixture model (random weights) sampling at temperature 1 under a
 *     regex, a choice and a JSON schema for 100 seeds each: every content
 *     is a full match, checked by PCRE2 and by the schema validator, both
 *     independent of the automaton; and the mask's cost per token.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "output/byte_dfa.h"
#include "output/ebnf.h"
#include "output/glm_output.h"
#include "output/regex.h"
#include "output/structured.h"
#include "output/tool_grammar.h"
#include "server/scheduler.h"
#include "text/chat_template.h"
#include "util/util.h"

#define FIXTURE "t/fixtures/glm45-air-tiny"
#define CASES   "t/fixtures/regex/cases.json"
#define NLOGITS 3072

static int passed, failed;

#define CHECK(cond, ...) do {                                   \
    if (cond) { passed++; } else {                              \
        failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__);   \
        printf(__VA_ARGS__); printf("\n"); }                    \
} while (0)

static glm_tokenizer *tok;
static glm_tg_vocab *gvocab;

/* JSON written with ' for " (readable in C) */
static char *
q(const char *s)
{
    char *r = strdup(s), *p;

    for (p = r; *p; p++) {
        if (*p == '\'') {
            *p = '"';
        }
    }
    return r;
}

static yajl_val
parse(const char *s)
{
    char ebuf[256];
    yajl_val v = yajl_tree_parse(s, ebuf, sizeof(ebuf));

    if (v == NULL) {
        printf("  JSON error: %s in: %.300s\n", ebuf, s);
    }
    return v;
}

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

/* ---- the regex compiler and the grammar reader vs Python --------------------- */

static void
test_regex_cases(yajl_val cases)
{
    size_t i, k;
    int n_strings = 0, n_agree = 0, n_refused_ok = 0, n_refused = 0;

    for (i = 0; i < cases->u.array.len; i++) {
        yajl_val c = cases->u.array.values[i], list = get(c, "cases");
        const char *pattern = get(c, "pattern")->u.string;
        int supported = YAJL_IS_TRUE(get(c, "supported"));
        glm_err err;
        glm_rx *rx = glm_regex_parse(pattern, strlen(pattern), &err);
        glm_dfa *d = rx ? glm_dfa_compile(rx, &err) : NULL;

        if (!supported) {
            n_refused++;
            n_refused_ok += d == NULL;
            CHECK(d == NULL, "regex %s is refused", pattern);
            if (d == NULL && getenv("GLM_TEST_VERBOSE")) {
                printf("  %s: %s\n", pattern, err.msg);
            }
        } else {
            CHECK(d != NULL, "regex %s compiles: %s", pattern, d ? "" : err.msg);
            for (k = 0; d != NULL && k < list->u.array.len; k++) {
                yajl_val s = list->u.array.values[k]->u.array.values[0];
                int want = YAJL_IS_TRUE(list->u.array.values[k]->u.array.values[1]);
                /* yajl strings end at NUL: the cases with U+0000 carry it last */
                size_t len = strlen(s->u.string);
                int got;
                if (strcmp(pattern, "\\t\\n\\r\\f\\v\\a\\0") == 0 && len == 6) {
                    len = 7;
                }
                got = glm_dfa_match(d, s->u.string, len);
                n_strings++;
                n_agree += got == want;
                CHECK(got == want, "regex %s on \"%s\": %d, Python says %d", pattern,
                      s->u.string, got, want);
            }
        }
        glm_rx_free(rx);
        glm_dfa_free(d);
    }
    printf("regex: %d/%d strings as Python's re.fullmatch, %d/%d unsupported or malformed"
           " patterns refused\n", n_agree, n_strings, n_refused_ok, n_refused);
}

static void
test_grammar_cases(yajl_val grammars)
{
    size_t i, k;
    int n = 0, agree = 0;

    for (i = 0; i < grammars->u.array.len; i++) {
        yajl_val c = grammars->u.array.values[i], list = get(c, "cases");
        const char *text = get(c, "grammar")->u.string;
        glm_err err;
        glm_rx *rx = glm_ebnf_parse(text, strlen(text), &err);
        glm_dfa *d = rx ? glm_dfa_compile(rx, &err) : NULL;

        CHECK(d != NULL, "grammar %zu compiles: %s", i, d ? "" : err.msg);
        for (k = 0; d != NULL && k < list->u.array.len; k++) {
            yajl_val s = list->u.array.values[k]->u.array.values[0];
            int want = YAJL_IS_TRUE(list->u.array.values[k]->u.array.values[1]);
            int got = glm_dfa_match(d, s->u.string, strlen(s->u.string));
            n++;
            agree += got == want;
            CHECK(got == want, "grammar %zu on \"%s\": %d, its regex says %d", i, s->u.string,
                  got, want);
        }
        glm_rx_free(rx);
        glm_dfa_free(d);
    }
    printf("grammar: %d/%d strings as the equivalent Python regex\n", agree, n);

    {
        static const struct { const char *g, *why; } bad[] = {
            { "root ::= \"(\" root \")\" | \"x\"", "refers back to itself" },
            { "root ::= a\na ::= b \"x\"\nb ::= a", "refers back to itself" },
            { "start: \"a\" | \"b\"", "not Lark" },
            { "expr ::= \"a\"", "no 'root' rule" },
            { "root ::= undefined", "undefined rule 'undefined'" },
            { "root ::= \"a", "unterminated string" },
            { "root ::= (\"a\"", "without its ')'" },
        };
        for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
            glm_err err;
            glm_rx *rx = glm_ebnf_parse(bad[k].g, strlen(bad[k].g), &err);
            CHECK(rx == NULL && strstr(err.msg, bad[k].why) != NULL,
                  "grammar \"%s\" is refused (%s)", bad[k].g, rx ? "accepted" : err.msg);
            glm_rx_free(rx);
        }
    }
}

/* ---- request fields ------------------------------------------------------------- */

static void
test_request_parse(void)
{
    static const struct {
        const char *req;           /* ' for " */
        const char *param;         /* NULL: accepted */
        const char *msg;           /* a part of the message, or the kind when accepted */
    } cs[] = {
        { "{'response_format':{'type':'json_object'}}", NULL, "json_object" },
        { "{'response_format':{'type':'text'}}", NULL, "none" },
        { "{'response_format':{'type':'json_schema','json_schema':{'name':'x','schema':"
          "{'type':'object','properties':{'a':{'type':'integer'}},'required':['a']},"
          "'strict':true}}}", NULL, "json_schema" },
        { "{'structured_outputs':{'regex':'[a-z]+'}}", NULL, "regex" },
        { "{'structured_outputs':{'choice':['a','b']}}", NULL, "choice" },
        { "{'structured_outputs':{'grammar':'root ::= \\'x\\''}}", NULL, "grammar" },
        { "{'structured_outputs':{'json':'{\\'type\\': \\'integer\\'}'}}", NULL, "json_schema" },
        { "{'structured_outputs':{'json_object':true,'disable_any_whitespace':true}}", NULL,
          "json_object" },
        { "{'response_format':{'type':'foo'}}", "response_format",
          "response_format.ResponseFormat.type\n  Input should be 'text', 'json_object' or"
          " 'json_schema' [type=literal_error, input_value='foo', input_type=str]" },
        { "{'response_format':'json'}", "response_format", "valid dictionary" },
        { "{'response_format':{'type':'json_schema'}}", "response_format",
          "When response_format type is 'json_schema', the 'json_schema' field must be"
          " provided." },
        { "{'response_format':{'type':'json_schema','json_schema':{'schema':{}}}}",
          "response_format", "json_schema.name\n  Field required" },
        { "{'response_format':{'type':'structural_tag','format':{}}}", "response_format",
          "'structural_tag' is not supported" },
        { "{'structured_outputs':{'regex':'a','choice':['a']}}", "structured_outputs",
          "You can only use one kind of constraints for structured outputs ('json', 'regex'"
          " or 'choice')." },
        { "{'structured_outputs':{'regex':'a','grammar':'root ::= \\'a\\''}}",
          "structured_outputs", "You can only use one kind of structured outputs constraint" },
        { "{'structured_outputs':{}}", "structured_outputs",
          "You must use one kind of structured outputs constraint but none are specified" },
        { "{'structured_outputs':{'regex':'(?=a)a'}}", "structured_outputs",
          "unsupported regex construct: a lookahead" },
        { "{'structured_outputs':{'regex':'a**'}}", "structured_outputs",
          "multiple repeat at position 2" },
        { "{'structured_outputs':{'choice':[]}}", "structured_outputs", "non-empty list" },
        { "{'structured_outputs':{'grammar':'root ::= root \\'a\\''}}", "structured_outputs",
          "refers back to itself" },
        { "{'structured_outputs':{'structural_tag':'{}'}}", "structured_outputs",
          "structural_tag is not supported" },
        { "{'structured_outputs':{'regex':'a','whitespace_pattern':' *'}}",
          "structured_outputs", "whitespace_pattern is not supported" },
        { "{'response_format':{'type':'json_object'},'structured_outputs':{'regex':'a'}}",
          "structured_outputs", "multiple are specified" },
        { "{'tools':[{'type':'function','function':{'name':'f'}}],'tool_choice':{'type':"
          "'function','function':{'name':'f'}},'structured_outputs':{'regex':'a'}}",
          "structured_outputs", "You can only either use constraints for structured outputs"
          " or tools, not both." },
        { "{'tools':[{'type':'function','function':{'name':'f'}}],'tool_choice':'required',"
          "'response_format':{'type':'json_object'}}", NULL, "none" },
    };
    size_t i;

    for (i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
        char *t = q(cs[i].req);
        yajl_val root = parse(t);
        glm_out_request rq;
        const char *param = NULL, *kind;
        glm_err err;
        int r;

        err.msg[0] = '\0';
        r = glm_out_request_parse(&rq, root, NULL, &param, &err);
        kind = rq.tg.so == NULL ? "none" : rq.so.what;
        if (cs[i].param == NULL) {
            CHECK(r == 0 && strcmp(kind, cs[i].msg) == 0, "%s: accepted as %s (%s)", cs[i].req,
                  cs[i].msg, r == 0 ? kind : err.msg);
        } else {
            CHECK(r != 0 && param != NULL && strcmp(param, cs[i].param) == 0
                  && strstr(err.msg, cs[i].msg) != NULL, "%s: 400 on %s \"%s\" (%s: %s)",
                  cs[i].req, cs[i].param, cs[i].msg, param ? param : "-", r ? err.msg : "ok");
        }
        glm_out_request_free(&rq);
        yajl_tree_free(root);
        free(t);
    }
}

/* ---- the constraint inside the tool grammar -------------------------------------- */

static glm_tg *
grammar_of(const char *request_q, glm_out_request *rq)
{
    char *t = q(request_q);
    yajl_val root = parse(t);
    const char *param;
    glm_err err;
    glm_tg *g = NULL;

    if (glm_out_request_parse(rq, root, NULL, &param, &err) != 0) {
        printf("  request: %s\n", err.msg);
    } else {
        g = glm_tg_new(gvocab, rq->tools, &rq->tg, &err);
        if (g == NULL) {
            printf("  grammar: %s\n", err.msg);
        }
    }
    yajl_tree_free(root);
    free(t);
    return g;
}

/* text token by token; mask and step compared on every id at every step;
 * returns how many tokens were accepted, *ends: EOS allowed at the end */
static size_t
walk(glm_tg *g, const char *text, int *agree, int *ends)
{
    glm_tokenizer_ids ids = { 0 };
    glm_tg_state *st = glm_tg_state_new(g);
    uint64_t bits[NLOGITS / 64 + 1];
    uint32_t words[(NLOGITS + 31) / 32];
    float logits[NLOGITS];
    int32_t V = glm_tokenizer_vocab_size(tok), id, eos = glm_tokenizer_token_id(tok,
                                                                            "<|endoftext|>");
    size_t i, accepted = 0;
    glm_err err;

    glm_tokenizer_encode(tok, NULL, text, strlen(text), &ids, &err);
    *agree = 1;
    for (i = 0; i <= ids.len; i++) {
        glm_tg_allowed(st, bits);
        for (id = 0; id < V; id++) {
            glm_tg_state *c = glm_tg_state_copy(st);
            int ok = glm_tg_advance(c, id) == 0;
            if (ok != (int) ((bits[id >> 6] >> (id & 63)) & 1)) {
                if (*agree) {
                    printf("  mask and step disagree on id %d at token %zu\n", id, i);
                }
                *agree = 0;
            }
            glm_tg_state_free(c);
        }
        for (id = 0; id < NLOGITS; id++) {
            logits[id] = 0.0f;
        }
        glm_tg_mask(st, logits);
        for (id = 0; id < (NLOGITS + 31) / 32; id++) {
            words[id] = ~0u;
        }
        glm_tg_mask_bits(st, words);       /* the sampling op's form */
        for (id = 0; id < V; id++) {
            if ((logits[id] == 0.0f) != (int) ((bits[id >> 6] >> (id & 63)) & 1)
                || (logits[id] == 0.0f) != (int) ((words[id >> 5] >> (id & 31)) & 1))
            {
                if (*agree) {
                    printf("  cached mask differs on id %d at token %zu\n", id, i);
                }
                *agree = 0;
            }
        }
        if (i == ids.len) {
            *ends = (int) ((bits[eos >> 6] >> (eos & 63)) & 1);
            break;
        }
        if (!((bits[ids.ids[i] >> 6] >> (ids.ids[i] & 63)) & 1)
            || glm_tg_advance(st, ids.ids[i]) != 0)
        {
            *ends = 0;
            break;
        }
        accepted++;
    }
    i = ids.len;
    glm_tokenizer_ids_free(&ids);
    glm_tg_state_free(st);
    return accepted == i ? accepted : (size_t) -1;
}

static void
test_grammar(void)
{
    static const struct {
        const char *req, *text;
        int accept, ends;          /* all tokens accepted; EOS allowed after them */
    } cs[] = {
        /* thinking on: the constraint starts after </think> */
        { "{'structured_outputs':{'regex':'\\\\d{3}-\\\\d{4}'}}",
          "\n<think>free text here</think>555-1234", 1, 1 },
        { "{'structured_outputs':{'regex':'\\\\d{3}-\\\\d{4}'}}", "<think>x</think>555-12", 1, 0 },
        { "{'structured_outputs':{'regex':'\\\\d{3}-\\\\d{4}'}}", "<think>x</think>\n555", 0, 0 },
        { "{'structured_outputs':{'regex':'\\\\d{3}-\\\\d{4}'}}", "<think>x</think>555-12345", 0, 0 },
        /* no <think>: the content itself */
        { "{'structured_outputs':{'regex':'\\\\d{3}-\\\\d{4}'}}", "555-1234", 1, 1 },
        { "{'structured_outputs':{'choice':['red','green']}}", "green", 1, 1 },
        { "{'structured_outputs':{'choice':['red','green']}}", "gre", 1, 0 },
        { "{'structured_outputs':{'choice':['red','green']}}", "blue", 0, 0 },
        /* thinking off: the prompt closed it */
        { "{'structured_outputs':{'choice':['red','green']},'chat_template_kwargs':"
          "{'enable_thinking':false}}", "<think>", 0, 0 },
        { "{'response_format':{'type':'json_schema','json_schema':{'name':'p','schema':"
          "{'type':'object','properties':{'name':{'type':'string','maxLength':5},"
          "'age':{'type':'integer'}},'required':['name','age'],'additionalProperties':false}}},"
          "'chat_template_kwargs':{'enable_thinking':false}}",
          "{\"name\": \"Ann\", \"age\": 30}", 1, 1 },
        { "{'response_format':{'type':'json_schema','json_schema':{'name':'p','schema':"
          "{'type':'object','properties':{'name':{'type':'string','maxLength':5},"
          "'age':{'type':'integer'}},'required':['name','age']}}}}",
          "<think>hm</think>\n{\"name\": \"Ann\"}", 0, 0 },
        { "{'response_format':{'type':'json_object'}}", "\n<think>a</think>\n {\"k\": [1, {}]}\n",
          1, 1 },
        { "{'response_format':{'type':'json_object'}}", "<think>a</think>[1]", 0, 0 },
        { "{'response_format':{'type':'json_object'},'structured_outputs':"
          "{'disable_any_whitespace':true}}", "{\"a\":1}", 1, 1 },
        { "{'response_format':{'type':'json_object'},'structured_outputs':"
          "{'disable_any_whitespace':true}}", "{\"a\": 1}", 0, 0 },
        /* auto tools: a call may take the content's place */
        { "{'tools':[{'type':'function','function':{'name':'f'}}],'structured_outputs':"
          "{'choice':['yes','no']}}", "<think>x</think>\n<tool_call>f</tool_call>", 1, 1 },
        { "{'tools':[{'type':'function','function':{'name':'f'}}],'structured_outputs':"
          "{'choice':['yes','no']}}", "<think>x</think>yes", 1, 1 },
        { "{'tools':[{'type':'function','function':{'name':'f'}}],'structured_outputs':"
          "{'regex':'.*'}}", "<think>x</think>a <tool_call>", 0, 0 },
        /* a forced call drops the constraint */
        { "{'tools':[{'type':'function','function':{'name':'f'}}],'tool_choice':'required',"
          "'structured_outputs':{'choice':['yes']}}", "<tool_call>f</tool_call>", 1, 1 },
        { "{'structured_outputs':{'grammar':'root ::= \\'SELECT \\' [a-z]+'}}",
          "<think></think>SELECT abc", 1, 1 },
        { "{'structured_outputs':{'regex':'\\\\w+'}}", "caf\xc3\xa9", 0, 0 },
        { "{'structured_outputs':{'regex':'.+'}}", "caf\xc3\xa9 \xe4\xb8\xad", 1, 1 },
    };
    size_t i;

    for (i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
        glm_out_request rq;
        glm_tg *g = grammar_of(cs[i].req, &rq);
        int agree = 0, ends = 0;
        size_t n = g ? walk(g, cs[i].text, &agree, &ends) : 0;
        int accepted = g != NULL && n != (size_t) -1;
        CHECK(g != NULL && agree && accepted == cs[i].accept && (!accepted || ends == cs[i].ends),
              "grammar %zu \"%s\": %s%s, mask = step (%s)", i, cs[i].text,
              cs[i].accept ? "accepted" : "refused",
              cs[i].accept ? (cs[i].ends ? ", may end" : ", may not end yet") : "",
              !g ? "no grammar" : !agree ? "disagree" : accepted != cs[i].accept ? "wrong verdict"
              : "ends wrong");
        glm_tg_free(g);
        glm_out_request_free(&rq);
    }
}

/* ---- the fixture model under constraints ------------------------------------------- */

typedef struct {
    glm_model     *m;
    glm_tg_state **st;
    glm_out      **out;
    int           *n_gen, *eos, *rejected;
    int            max_tokens;
    double         mask_s;
    long           masks;
} model_ctx;

static void
model_mask(void *p, glm_seq *seq, float *logits)
{
    model_ctx *c = p;
    double t0 = glm_now_seconds();

    glm_tg_mask(c->st[seq->index], logits);
    c->mask_s += glm_now_seconds() - t0;
    c->masks++;
}

static int
model_token(void *p, glm_seq *seq, const glm_sampled *s)
{
    model_ctx *c = p;
    int i = seq->index;

    c->n_gen[i]++;
    if (glm_tg_advance(c->st[i], s->token) != 0) {
        c->rejected[i]++;
    }
    if (glm_config_is_eos(&c->m->cfg, s->token)) {
        c->eos[i] = 1;
        glm_out_finish(c->out[i]);
        return 1;
    }
    glm_out_feed_token(c->out[i], s->token);
    if (c->n_gen[i] >= c->max_tokens) {
        glm_out_finish(c->out[i]);
        return 1;
    }
    return 0;
}

typedef int (*content_check)(const char *content, void *arg, char *why, size_t n);

/* n seeded outputs of the request; each finished content goes through check */
static void
run_model(glm_model *m, const glm_chat_template *ct, const char *what, const char *request_q,
          int n, int max_tokens, content_check check, void *arg)
{
    char *rtext = q(request_q);
    yajl_val req = parse(rtext);
    glm_out_request rq;
    const char *param;
    glm_err err;
    char *prompt = NULL;
    size_t plen = 0;
    glm_tokenizer_ids ids = { 0 };
    glm_tg *g = NULL;
    glm_sched s;
    glm_seq **seqs = calloc((size_t) n, sizeof(glm_seq *));
    model_ctx mc;
    int i, steps = 0, valid = 0, finished = 0, rejected = 0;
    double tokens = 0, t0 = glm_now_seconds();

    memset(&mc, 0, sizeof(mc));
    mc.st = calloc((size_t) n, sizeof(glm_tg_state *));
    mc.out = calloc((size_t) n, sizeof(glm_out *));
    mc.n_gen = calloc((size_t) n, sizeof(int));
    mc.eos = calloc((size_t) n, sizeof(int));
    mc.rejected = calloc((size_t) n, sizeof(int));
    mc.m = m;
    mc.max_tokens = max_tokens;
    if (glm_out_request_parse(&rq, req, NULL, &param, &err) != 0
        || glm_chat_template_render_request(ct, rtext, strlen(rtext), NULL, &prompt, &plen,
                                            &err) != 0
        || glm_tokenizer_encode(tok, NULL, prompt, plen, &ids, &err) != 0
        || (g = glm_tg_new(gvocab, rq.tools, &rq.tg, &err)) == NULL
        || glm_sched_init(&s, m, 4096, 16, n, 8192, &err) != 0)
    {
        CHECK(0, "%s: setup: %s", what, err.msg);
        goto out;
    }
    s.on_token = model_token;
    s.mask = model_mask;
    s.cb_ctx = &mc;
    for (i = 0; i < n; i++) {
        glm_seq_params p;
        glm_out_opts oo;
        memset(&p, 0, sizeof(p));
        p.sampling.temperature = 1.0f;
        p.sampling.top_p = 1.0f;
        p.repetition_penalty = 1.0f;
        memset(&oo, 0, sizeof(oo));
        oo.rq = &rq;
        oo.tok = tok;
        oo.skip_special = 1;
        mc.st[i] = glm_tg_state_new(g);
        mc.out[i] = glm_out_new(&oo);
        seqs[i] = glm_seq_new(ids.ids, (int) ids.len, &p, 1000 + (uint64_t) i, NULL, i);
        seqs[i]->constrained = 1;
        glm_sched_add(&s, seqs[i]);
    }
    while (glm_sched_has_work(&s) && steps < 100000) {
        glm_sched_step(&s);
        steps++;
    }
    for (i = 0; i < n; i++) {
        glm_str ms = { 0 };
        yajl_val msg, content;
        char why[256] = "";
        int ok;
        glm_str_adds(&ms, "{");
        glm_out_message(mc.out[i], &ms);
        glm_str_adds(&ms, "}");
        msg = parse(ms.data);
        content = get(msg, "content");
        tokens += mc.n_gen[i];
        finished += mc.eos[i];
        rejected += mc.rejected[i] > 0;
        ok = mc.eos[i] && !mc.rejected[i]
             && check(content && YAJL_IS_STRING(content) ? content->u.string : "", arg, why,
                      sizeof(why));
        valid += ok;
        if (!ok || getenv("GLM_TEST_VERBOSE")) {
            printf("  %s seed %d (%d tokens, %s): %.300s %s\n", what, i, mc.n_gen[i],
                   mc.eos[i] ? "eos" : "cut", ms.data, why);
        }
        yajl_tree_free(msg);
        glm_str_free(&ms);
        glm_seq_free(seqs[i]);
        glm_tg_state_free(mc.st[i]);
        glm_out_free(mc.out[i]);
    }
    glm_sched_free(&s);
    printf("model, %s: %d/%d full matches, %d ended by EOS, %.0f tokens on average;"
           " mask %.1f us per token (%ld masks, %.1f s)\n", what, valid, n, finished,
           tokens / n, mc.masks ? 1e6 * mc.mask_s / (double) mc.masks : 0.0, mc.masks,
           glm_now_seconds() - t0);
    CHECK(valid == n && rejected == 0, "%s, %d seeds at temperature 1: every output is"
          " finished and a full match (%d/%d)", what, n, valid, n);
out:
    glm_tg_free(g);
    glm_out_request_free(&rq);
    glm_tokenizer_ids_free(&ids);
    free(prompt);
    free(seqs);
    free(mc.st);
    free(mc.out);
    free(mc.n_gen);
    free(mc.eos);
    free(mc.rejected);
    yajl_tree_free(req);
    free(rtext);
}

/* PCRE2, anchored at both ends: an independent reading of the pattern */
static int
check_pcre(const char *content, void *arg, char *why, size_t n)
{
    pcre2_code *re = arg;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int r = pcre2_match(re, (PCRE2_SPTR) content, PCRE2_ZERO_TERMINATED, 0,
                        PCRE2_ANCHORED | PCRE2_ENDANCHORED, md, NULL);

    pcre2_match_data_free(md);
    if (r < 0) {
        snprintf(why, n, "PCRE2 finds no full match");
    }
    return r >= 0;
}

static int
check_schema(const char *content, void *arg, char *why, size_t n)
{
    yajl_val schema = arg, v;
    char ebuf[128];
    int ok;

    v = yajl_tree_parse(content, ebuf, sizeof(ebuf));
    if (v == NULL) {
        snprintf(why, n, "not JSON: %s", ebuf);
        return 0;
    }
    ok = glm_schema_check(schema, schema, v, why, n);
    yajl_tree_free(v);
    return ok;
}

static pcre2_code *
pcre(const char *pattern)
{
    int e;
    PCRE2_SIZE off;

    return pcre2_compile((PCRE2_SPTR) pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &e, &off, NULL);
}

static void
test_model(void)
{
    glm_backend *be = glm_backend_cpu_create(0);
    glm_chat_template *ct;
    glm_model *m;
    glm_err err;
    pcre2_code *re;
    char *schema_text;
    yajl_val schema;

    m = glm_model_load(FIXTURE, be, &err);
    ct = m ? glm_chat_template_load(FIXTURE, NULL, &err) : NULL;
    if (m == NULL || ct == NULL) {
        CHECK(0, "fixture: %s", err.msg);
        return;
    }
    re = pcre("(\\+|-)?\\d{1,4}(\\.\\d{1,2})? [a-z]{2,6}(, [A-Z][a-z]{0,5}){0,2}");
    run_model(m, ct, "regex, thinking budget 2", "{'messages':[{'role':'user','content':'Go'}],'structured_outputs':{'regex':"
              "'(\\\\+|-)?\\\\d{1,4}(\\\\.\\\\d{1,2})? [a-z]{2,6}(, [A-Z][a-z]{0,5}){0,2}'},"
              "'thinking_token_budget':2}", 100, 200, check_pcre, re);
    pcre2_code_free(re);

    re = pcre("red|green|blue|dark \\(\"navy\"\\)");
    run_model(m, ct, "choice, thinking off", "{'messages':[{'role':'user','content':'Go'}],"
              "'structured_outputs':{'choice':['red','green',"
              "'blue','dark (\\\"navy\\\")']},'chat_template_kwargs':{'enable_thinking':false}}",
              100, 60, check_pcre, re);
    pcre2_code_free(re);

    schema_text = q("{'type':'object','properties':{'name':{'type':'string','maxLength':6},"
                    "'age':{'type':'integer'},'pet':{'enum':['cat','dog',null]},"
                    "'tags':{'type':'array','items':{'type':'boolean'},'maxItems':3}},"
                    "'required':['name','age','pet','tags'],'additionalProperties':false}");
    schema = parse(schema_text);
    {
        char *req = malloc(strlen(schema_text) + 200);
        sprintf(req, "{\"messages\":[{\"role\":\"user\",\"content\":\"Go\"}],"
                "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":"
                "\"p\",\"schema\":%s,\"strict\":true}},\"thinking_token_budget\":3}",
                schema_text);
        run_model(m, ct, "json_schema, thinking budget 3", req, 100, 300, check_schema, schema);
        free(req);
    }
    yajl_tree_free(schema);
    free(schema_text);

    glm_chat_template_free(ct);
    glm_model_free(m);
    be->destroy(be);
}

int
main(void)
{
    glm_err err;
    size_t len;
    char *text = glm_read_file(CASES, &len, &err);
    yajl_val cases = text ? parse(text) : NULL;
    int32_t eos[3];

    if (cases == NULL) {
        printf("%s: %s\nstructured: 0 passed, 1 failed\n", CASES, text ? "not JSON" : err.msg);
        return 1;
    }
    test_regex_cases(get(cases, "regex"));
    test_grammar_cases(get(cases, "grammar"));
    yajl_tree_free(cases);
    free(text);

    test_request_parse();

    tok = glm_tokenizer_load(FIXTURE "/tokenizer.json", &err);
    if (tok == NULL) {
        printf("tokenizer: %s\nstructured: %d passed, %d failed\n", err.msg, passed, failed + 1);
        return 1;
    }
    eos[0] = glm_tokenizer_token_id(tok, "<|endoftext|>");
    eos[1] = glm_tokenizer_token_id(tok, "<|user|>");
    eos[2] = glm_tokenizer_token_id(tok, "<|observation|>");
    gvocab = glm_tg_vocab_new(tok, NLOGITS, eos, 3, &err);
    CHECK(gvocab != NULL, "grammar vocabulary: %s", gvocab ? "" : err.msg);
    if (gvocab != NULL) {
        test_grammar();
        test_model();
        glm_tg_vocab_free(gvocab);
    }
    glm_tokenizer_free(tok);
    printf("structured: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
