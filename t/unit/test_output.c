/*
 * test_output.c: GLM output semantics (engine/output/glm_output.c), the tool-call
 * grammar (engine/output/tool_grammar.c) and the schema helpers they share.
 *
 * Parser: canned GLM-4.5 outputs are tokenized with the fixture tokenizer
 * (tags become their single tokens, as the model emits them) and fed one
 * token at a time, all at once, in random multi-token steps and in random
 * byte splits.  The non-streaming message must equal the expected object
 * written by hand here (arguments compared as parsed JSON), and the
 * streamed deltas, concatenated per field and per tool-call index, must
 * equal the non-streaming message exactly.
 *
 * Grammar: canned outputs must be accepted token by token, with the mask
 * and the step agreeing on every vocabulary id at every position; outputs
 * the grammar must refuse are refused.  Then the random-weight fixture
 * model samples (temperature 1) under each tool_choice, through the
 * scheduler's mask hook: every token sampled must be accepted, and every
 * finished output must parse into calls whose arguments the independent
 * validator (glm_schema_check) accepts: 100 seeds for the named tool.  (The
 * prompt is a short chat without the tools: with random weights the prompt
 * changes nothing but the run time; semantics_check renders the full one.)
 *
 * Run from the repository root; prints "output: N passed, M failed".
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "output/glm_output.h"
#include "output/json_schema.h"
#include "output/tool_grammar.h"
#include "server/scheduler.h"
#include "text/chat_template.h"

#define FIXTURE "t/fixtures/glm45-air-tiny"
#define NLOGITS 3072            /* the fixture model's vocab_size (logits width) */

static int passed, failed;

#define CHECK(cond, ...) do {                                   \
    if (cond) { passed++; } else {                              \
        failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__);   \
        printf(__VA_ARGS__); printf("\n"); }                    \
} while (0)

static glm_tokenizer *tok;

/* ---- JSON helpers ----------------------------------------------------------- */

/* JSON written with ' for " (readable in C), turned into JSON */
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

static const char *
str_or_null(yajl_val v)
{
    return v != NULL && YAJL_IS_STRING(v) ? v->u.string : NULL;
}

static int
same_text(const char *a, const char *b)
{
    /* null and "" are the same "no text" */
    if (a == NULL || b == NULL) {
        return (a == NULL || !*a) && (b == NULL || !*b);
    }
    return strcmp(a, b) == 0;
}

static void
encode(const char *text, glm_tokenizer_ids *ids)
{
    glm_err err;

    ids->len = 0;
    if (glm_tokenizer_encode(tok, NULL, text, strlen(text), ids, &err) != 0) {
        printf("  encode: %s\n", err.msg);
    }
}

/* ---- streamed deltas, concatenated ----------------------------------------- */

#define MAX_CALLS 16

typedef struct {
    glm_str content, reasoning;
    int     n_calls;
    glm_str ids[MAX_CALLS], names[MAX_CALLS], args[MAX_CALLS];
    glm_str boxes;              /* entries re-serialized, comma-joined */
    int     n_boxes, n_chunks, bad;
    char    why[300];
} stream_acc;

static void
acc_free(stream_acc *a)
{
    int i;

    glm_str_free(&a->content);
    glm_str_free(&a->reasoning);
    glm_str_free(&a->boxes);
    for (i = 0; i < MAX_CALLS; i++) {
        glm_str_free(&a->ids[i]);
        glm_str_free(&a->names[i]);
        glm_str_free(&a->args[i]);
    }
    memset(a, 0, sizeof(*a));
}

static void
acc_bad(stream_acc *a, const char *why)
{
    if (!a->bad) {
        snprintf(a->why, sizeof(a->why), "%s", why);
    }
    a->bad = 1;
}

/* one delta's members (as glm_out_delta writes them) */
static void
acc_delta(stream_acc *a, const glm_str *members)
{
    glm_str wrapped = { 0 };
    yajl_val d, v, r, rc;
    size_t i;

    glm_str_adds(&wrapped, "{");
    glm_str_add(&wrapped, members->data, members->len);
    glm_str_adds(&wrapped, "}");
    d = parse(wrapped.data);
    glm_str_free(&wrapped);
    if (d == NULL) {
        acc_bad(a, "a delta is not JSON");
        return;
    }
    a->n_chunks++;
    if ((v = get(d, "content")) != NULL) {
        if (!YAJL_IS_STRING(v) || !*v->u.string) {
            acc_bad(a, "content delta not a non-empty string");
        } else {
            glm_str_adds(&a->content, v->u.string);
        }
    }
    r = get(d, "reasoning");
    rc = get(d, "reasoning_content");
    if (r != NULL || rc != NULL) {
        if (r == NULL || rc == NULL || !YAJL_IS_STRING(r) || !YAJL_IS_STRING(rc)
            || strcmp(r->u.string, rc->u.string) != 0)
        {
            acc_bad(a, "reasoning and reasoning_content differ");
        } else {
            glm_str_adds(&a->reasoning, r->u.string);
        }
    }
    if ((v = get(d, "tool_calls")) != NULL) {
        for (i = 0; YAJL_IS_ARRAY(v) && i < v->u.array.len; i++) {
            yajl_val e = v->u.array.values[i], idx = get(e, "index"), f = get(e, "function");
            yajl_val args = get(f, "arguments");
            int k;
            if (idx == NULL || !YAJL_IS_INTEGER(idx) || args == NULL || !YAJL_IS_STRING(args)) {
                acc_bad(a, "tool_calls entry without index or arguments");
                continue;
            }
            k = (int) YAJL_GET_INTEGER(idx);
            if (get(e, "id") != NULL) {
                if (k != a->n_calls || k >= MAX_CALLS) {
                    acc_bad(a, "a call header out of order");
                    continue;
                }
                if (!YAJL_IS_STRING(get(e, "type")) || strcmp(get(e, "type")->u.string, "function")
                    || !YAJL_IS_STRING(get(f, "name")))
                {
                    acc_bad(a, "call header without type function or name");
                    continue;
                }
                glm_str_adds(&a->ids[k], get(e, "id")->u.string);
                glm_str_adds(&a->names[k], get(f, "name")->u.string);
                a->n_calls++;
            } else if (k >= a->n_calls || get(f, "name") != NULL) {
                acc_bad(a, "arguments for a call with no header, or a repeated name");
                continue;
            }
            glm_str_adds(&a->args[k], args->u.string);
        }
    }
    if ((v = get(d, "glm_boxes")) != NULL) {
        for (i = 0; YAJL_IS_ARRAY(v) && i < v->u.array.len; i++) {
            if (a->n_boxes++ > 0) {
                glm_str_adds(&a->boxes, ",");
            }
            glm_json_write(&a->boxes, v->u.array.values[i]);
        }
    }
    yajl_tree_free(d);
}

static void
take_delta(glm_out *o, stream_acc *a)
{
    glm_str s = { 0 };

    if (glm_out_delta(o, &s) > 0) {
        acc_delta(a, &s);
    } else if (s.len != 0) {
        acc_bad(a, "no members but text written");
    }
    glm_str_free(&s);
}

/* the streamed result equals the message; returns 1 when it does */
static int
acc_matches(const char *what, stream_acc *a, yajl_val msg)
{
    yajl_val calls = get(msg, "tool_calls"), boxes = get(msg, "glm_boxes");
    glm_str mb = { 0 };
    size_t i;
    int ok = 1;

    if (a->bad) {
        printf("  %s: %s\n", what, a->why);
        return 0;
    }
    if (!same_text(a->content.data, str_or_null(get(msg, "content")))) {
        printf("  %s: streamed content '%s' != message '%s'\n", what,
               a->content.data ? a->content.data : "", str_or_null(get(msg, "content")));
        ok = 0;
    }
    if (!same_text(a->reasoning.data, str_or_null(get(msg, "reasoning")))) {
        printf("  %s: streamed reasoning differs\n", what);
        ok = 0;
    }
    if (calls == NULL || !YAJL_IS_ARRAY(calls) || (int) calls->u.array.len != a->n_calls) {
        printf("  %s: %d streamed calls, message has %zu\n", what, a->n_calls,
               calls && YAJL_IS_ARRAY(calls) ? calls->u.array.len : 0);
        return 0;
    }
    for (i = 0; i < calls->u.array.len; i++) {
        yajl_val c = calls->u.array.values[i], f = get(c, "function");
        if (!same_text(a->ids[i].data, str_or_null(get(c, "id")))
            || !same_text(a->names[i].data, str_or_null(get(f, "name")))
            || strcmp(a->args[i].data ? a->args[i].data : "",
                      str_or_null(get(f, "arguments")) ? str_or_null(get(f, "arguments")) : "-"))
        {
            printf("  %s: call %zu streamed as %s %s %s, message %s %s %s\n", what, i,
                   a->ids[i].data, a->names[i].data, a->args[i].data,
                   str_or_null(get(c, "id")), str_or_null(get(f, "name")),
                   str_or_null(get(f, "arguments")));
            ok = 0;
        }
    }
    for (i = 0; boxes != NULL && YAJL_IS_ARRAY(boxes) && i < boxes->u.array.len; i++) {
        if (i) {
            glm_str_adds(&mb, ",");
        }
        glm_json_write(&mb, boxes->u.array.values[i]);
    }
    if (!same_text(mb.data, a->boxes.data)) {
        printf("  %s: streamed boxes [%s] != message [%s]\n", what, a->boxes.data, mb.data);
        ok = 0;
    }
    glm_str_free(&mb);
    return ok;
}

/* ---- parser cases ----------------------------------------------------------- */

#define MSG "'messages':[{'role':'user','content':'hi'}]"
#define TOOLS \
    "'tools':[" \
    "{'type':'function','function':{'name':'get_weather','parameters':{'type':'object'," \
    "'properties':{'city':{'type':'string'},'days':{'type':'integer'}},'required':['city']}}}," \
    "{'type':'function','function':{'name':'get_time','parameters':{'type':'object'," \
    "'properties':{'tz':{'type':'string'}}}}}," \
    "{'type':'function','function':{'name':'list_files','parameters':{'type':'object'," \
    "'properties':{}}}}," \
    "{'type':'function','function':{'name':'write_file','parameters':{'type':'object'," \
    "'properties':{'path':{'type':'string'},'content':{'type':'string'}}," \
    "'required':['path','content']}}}," \
    "{'type':'function','function':{'name':'typed','parameters':{'type':'object'," \
    "'properties':{'s_null':{'type':['string','null']},'s_str':{'type':'string'}," \
    "'any_of':{'anyOf':[{'type':'string'},{'type':'integer'}]},'num':{'type':'number'}," \
    "'flag':{'type':'boolean'},'obj':{'type':'object','properties':{'x':{'type':'integer'}}}," \
    "'arr':{'type':'array'},'nullable':{'type':'integer','nullable':true}," \
    "'ref':{'$ref':'#/$defs/point'}},'$defs':{'point':{'type':'object'," \
    "'properties':{'x':{'type':'number'}}}}}}}]"

typedef struct {
    const char *name;
    const char *request;        /* ' for " */
    const char *text;           /* what the model wrote */
    const char *engine;         /* the engine's finish reason */
    const char *expect;         /* ' for ": content, reasoning, tool_calls, finish_reason... */
    const char *think_span;     /* its token count is reasoning_tokens; NULL: 0 */
    int         skip_special;
    int         image_w, image_h;
} out_case;

static const out_case cases[] = {
    { "reasoning then content", "{" MSG "}",
      "\n<think>Let me think about it.</think>\nThe answer is 42.", "stop",
      "{'content':'\\nThe answer is 42.','reasoning':'Let me think about it.','tool_calls':[],"
      "'finish_reason':'stop'}", "<think>Let me think about it.</think>", 1, 0, 0 },
    { "model skips thinking: all content", "{" MSG "}",
      "Hello there! No thinking today.", "stop",
      "{'content':'Hello there! No thinking today.','reasoning':null,'tool_calls':[],"
      "'finish_reason':'stop'}", NULL, 1, 0, 0 },
    { "thinking off: tags are text", "{" MSG ",'chat_template_kwargs':{'enable_thinking':false}}",
      "\nSure.</think> ok <think>x", "stop",
      "{'content':'\\nSure.</think> ok <think>x','reasoning':null,'tool_calls':[],"
      "'finish_reason':'stop'}", NULL, 1, 0, 0 },
    { "truncated inside think", "{" MSG "}",
      "<think>I am still thinking about the", "length",
      "{'content':null,'reasoning':'I am still thinking about the','tool_calls':[],"
      "'finish_reason':'length'}", "<think>I am still thinking about the", 1, 0, 0 },
    { "include_reasoning false", "{" MSG ",'include_reasoning':false}",
      "<think>secret plan</think>Public answer.", "stop",
      "{'content':'Public answer.','reasoning':null,'tool_calls':[],'finish_reason':'stop'}",
      "<think>secret plan</think>", 1, 0, 0 },
    { "empty think, whitespace-only content is null", "{" MSG "}",
      "<think></think>\n\n", "stop",
      "{'content':null,'reasoning':null,'tool_calls':[],'finish_reason':'stop'}",
      "<think></think>", 1, 0, 0 },
    { "one call after reasoning", "{" MSG "," TOOLS "}",
      "<think>Need the weather.</think>\n<tool_call>get_weather\n<arg_key>city</arg_key>\n"
      "<arg_value>Beijing</arg_value>\n<arg_key>days</arg_key>\n<arg_value>3</arg_value>\n"
      "</tool_call>", "stop",
      "{'content':null,'reasoning':'Need the weather.','tool_calls':[{'name':'get_weather',"
      "'arguments':{'city':'Beijing','days':3},"
      "'arguments_text':'{\\'city\\': \\'Beijing\\', \\'days\\': 3}'}],"
      "'finish_reason':'tool_calls'}", "<think>Need the weather.</think>", 1, 0, 0 },
    { "prose, then two calls back to back", "{" MSG "," TOOLS "}",
      "I will check both.\n<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris"
      "</arg_value>\n</tool_call><tool_call>get_time\n<arg_key>tz</arg_key>\n"
      "<arg_value>Asia/Shanghai</arg_value>\n</tool_call>", "stop",
      "{'content':'I will check both.','reasoning':null,'tool_calls':["
      "{'name':'get_weather','arguments':{'city':'Paris'}},"
      "{'name':'get_time','arguments':{'tz':'Asia/Shanghai'}}],'finish_reason':'tool_calls'}",
      NULL, 1, 0, 0 },
    { "zero-argument calls", "{" MSG "," TOOLS "}",
      "<tool_call>list_files</tool_call>\n<tool_call>list_files\n</tool_call>", "stop",
      "{'content':null,'reasoning':null,'tool_calls':[{'name':'list_files','arguments':{},"
      "'arguments_text':'{}'},{'name':'list_files','arguments':{},'arguments_text':'{}'}],"
      "'finish_reason':'tool_calls'}", NULL, 1, 0, 0 },
    { "long string value with quotes, newlines, tags-like text, UTF-8", "{" MSG "," TOOLS "}",
      "<tool_call>write_file\n<arg_key>path</arg_key>\n<arg_value>/tmp/a.py</arg_value>\n"
      "<arg_key>content</arg_key>\n<arg_value>def f(x):\n    return \"<b>\" + x + '</b>'"
      "  # \\ \xe4\xb8\xad\xe6\x96\x87 \xe2\x9c\x93 </arg\n\t</arg_value>\n</tool_call>", "stop",
      "{'content':null,'reasoning':null,'tool_calls':[{'name':'write_file','arguments':"
      "{'path':'/tmp/a.py','content':'def f(x):\\n    return \\'<b>\\' + x + \\u0027</b>\\u0027"
      "  # \\\\ \xe4\xb8\xad\xe6\x96\x87 \xe2\x9c\x93 </arg\\n\\t'}}],"
      "'finish_reason':'tool_calls'}", NULL, 1, 0, 0 },
    { "values typed from the schema", "{" MSG "," TOOLS "}",
      "<tool_call>typed\n<arg_key>s_null</arg_key>\n<arg_value>null</arg_value>\n"
      "<arg_key>s_str</arg_key>\n<arg_value>123</arg_value>\n"
      "<arg_key>any_of</arg_key>\n<arg_value>42</arg_value>\n"
      "<arg_key>num</arg_key>\n<arg_value>3.5</arg_value>\n"
      "<arg_key>flag</arg_key>\n<arg_value>True</arg_value>\n"
      "<arg_key>obj</arg_key>\n<arg_value>{\"x\": 1, \"y\": [1, 2]}</arg_value>\n"
      "<arg_key>arr</arg_key>\n<arg_value>\n[1, \"two\", null]\n</arg_value>\n"
      "<arg_key>extra</arg_key>\n<arg_value>plain words</arg_value>\n"
      "<arg_key>extra2</arg_key>\n<arg_value>{\"k\": true}</arg_value>\n"
      "<arg_key>nullable</arg_key>\n<arg_value>null</arg_value>\n"
      "<arg_key>ref</arg_key>\n<arg_value>{'x': 2.5}</arg_value>\n</tool_call>", "stop",
      "{'content':null,'reasoning':null,'tool_calls':[{'name':'typed','arguments':"
      "{'s_null':null,'s_str':'123','any_of':42,'num':3.5,'flag':true,'obj':{'x':1,'y':[1,2]},"
      "'arr':[1,'two',null],'extra':'plain words','extra2':{'k':true},'nullable':null,"
      "'ref':{'x':2.5}}}],'finish_reason':'tool_calls'}", NULL, 1, 0, 0 },
    { "strings stay strings", "{" MSG "," TOOLS "}",
      "<tool_call>typed\n<arg_key>s_null</arg_key>\n<arg_value>hello</arg_value>\n"
      "<arg_key>any_of</arg_key>\n<arg_value>4x2</arg_value>\n"
      "<arg_key>s_str</arg_key>\n<arg_value> padded </arg_value>\n"
      "<arg_key>num</arg_key>\n<arg_value>not a number</arg_value>\n"
      "<arg_key>extra</arg_key>\n<arg_value>nullx</arg_value>\n</tool_call>", "stop",
      "{'content':null,'reasoning':null,'tool_calls':[{'name':'typed','arguments':"
      "{'s_null':'hello','any_of':'4x2','s_str':' padded ','num':'not a number','extra':'nullx'},"
      "'arguments_text':'{\\'s_null\\': \\'hello\\', \\'any_of\\': \\'4x2\\', \\'s_str\\': "
      "\\' padded \\', \\'num\\': \\'not a number\\', \\'extra\\': \\'nullx\\'}'}],"
      "'finish_reason':'tool_calls'}", NULL, 1, 0, 0 },
    { "a call inside thinking is kept", "{" MSG "," TOOLS "}",
      "<think>I should call it.<tool_call>get_weather\n<arg_key>city</arg_key>\n"
      "<arg_value>Rome</arg_value>\n</tool_call></think>", "stop",
      "{'content':null,'reasoning':'I should call it.','tool_calls':[{'name':'get_weather',"
      "'arguments':{'city':'Rome'}}],'finish_reason':'tool_calls'}",
      "<think>I should call it.", 1, 0, 0 },
    { "parallel_tool_calls false keeps the first", "{" MSG "," TOOLS ",'parallel_tool_calls':false}",
      "<tool_call>get_time\n<arg_key>tz</arg_key>\n<arg_value>UTC</arg_value>\n</tool_call>\n"
      "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Oslo</arg_value>\n"
      "</tool_call>", "stop",
      "{'content':null,'reasoning':null,'tool_calls':[{'name':'get_time','arguments':"
      "{'tz':'UTC'}}],'finish_reason':'tool_calls'}", NULL, 1, 0, 0 },
    { "tool_choice none: call text is content", "{" MSG "," TOOLS ",'tool_choice':'none'}",
      "<tool_call>get_time\n</tool_call>", "stop",
      "{'content':'<tool_call>get_time\\n</tool_call>','reasoning':null,'tool_calls':[],"
      "'finish_reason':'stop'}", NULL, 1, 0, 0 },
    { "named tool_choice finishes with stop",
      "{" MSG "," TOOLS ",'tool_choice':{'type':'function','function':{'name':'get_time'}}}",
      "<tool_call>get_time\n<arg_key>tz</arg_key>\n<arg_value>UTC</arg_value>\n</tool_call>",
      "stop",
      "{'content':null,'reasoning':null,'tool_calls':[{'name':'get_time','arguments':"
      "{'tz':'UTC'}}],'finish_reason':'stop'}", NULL, 1, 0, 0 },
    { "truncated in a string value", "{" MSG "," TOOLS "}",
      "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Ber", "length",
      "{'content':null,'reasoning':null,'tool_calls':[{'name':'get_weather','arguments':"
      "{'city':'Ber'}}],'finish_reason':'length'}", NULL, 1, 0, 0 },
    { "truncated in a number value", "{" MSG "," TOOLS "}",
      "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Berlin</arg_value>\n"
      "<arg_key>days</arg_key>\n<arg_value>1", "length",
      "{'content':null,'reasoning':null,'tool_calls':[{'name':'get_weather','arguments':"
      "{'city':'Berlin'}}],'finish_reason':'length'}", NULL, 1, 0, 0 },
    { "truncated in the name", "{" MSG "," TOOLS "}",
      "Let me see. <tool_call>get_wea", "length",
      "{'content':'Let me see.','reasoning':null,'tool_calls':[],'finish_reason':'length'}",
      NULL, 1, 0, 0 },
    { "text after a call", "{" MSG "," TOOLS "}",
      "<tool_call>list_files</tool_call>\n\nDone.", "stop",
      "{'content':'Done.','reasoning':null,'tool_calls':[{'name':'list_files','arguments':{}}],"
      "'finish_reason':'tool_calls'}", NULL, 1, 0, 0 },
    { "text around a call keeps its separating whitespace", "{" MSG "," TOOLS "}",
      "Checking Beijing.\n<tool_call>get_weather\n<arg_key>city</arg_key>\n"
      "<arg_value>Beijing</arg_value>\n</tool_call>\nAlso Shanghai.", "stop",
      "{'content':'Checking Beijing.\\nAlso Shanghai.','reasoning':null,'tool_calls':"
      "[{'name':'get_weather','arguments':{'city':'Beijing'}}],'finish_reason':'tool_calls'}",
      NULL, 1, 0, 0 },
    { "box kept in content", "{" MSG "}",
      "The cat is at <|begin_of_box|>[[120,50,380,400]]<|end_of_box|>.", "stop",
      "{'content':'The cat is at <|begin_of_box|>[[120,50,380,400]]<|end_of_box|>.',"
      "'reasoning':null,'tool_calls':[],'finish_reason':'stop'}", NULL, 1, 0, 0 },
    { "glm_boxes with pixels", "{" MSG ",'glm_boxes':true}",
      "<think>Find them.</think>Cat <|begin_of_box|>[[120,50,380,400],[0,0,1000,1000]]"
      "<|end_of_box|> and answer <|begin_of_box|>42<|end_of_box|>", "stop",
      "{'content':'Cat <|begin_of_box|>[[120,50,380,400],[0,0,1000,1000]]<|end_of_box|> and "
      "answer <|begin_of_box|>42<|end_of_box|>','reasoning':'Find them.','tool_calls':[],"
      "'finish_reason':'stop','glm_boxes':[{'index':0,'text':'[[120,50,380,400],[0,0,1000,1000]]',"
      "'coords':[[120,50,380,400],[0,0,1000,1000]],'pixels':[[77,20,243,160],[0,0,640,400]]},"
      "{'index':1,'text':'42','coords':[],'pixels':[]}]}",
      "<think>Find them.</think>", 1, 640, 400 },
    { "other special tokens dropped with skip_special_tokens", "{" MSG "}",
      "A[gMASK]B<|begin_of_box|>1<|end_of_box|>", "stop",
      "{'content':'AB<|begin_of_box|>1<|end_of_box|>','reasoning':null,'tool_calls':[],"
      "'finish_reason':'stop'}", NULL, 1, 0, 0 },
    { "and kept without it", "{" MSG "}",
      "A[gMASK]B", "stop",
      "{'content':'A[gMASK]B','reasoning':null,'tool_calls':[],'finish_reason':'stop'}",
      NULL, 0, 0, 0 },
};

/* the message of a finished parser, parsed */
static yajl_val
message_of(glm_out *o)
{
    glm_str s = { 0 };
    yajl_val v;

    glm_str_adds(&s, "{");
    glm_out_message(o, &s);
    glm_str_adds(&s, "}");
    v = parse(s.data);
    glm_str_free(&s);
    return v;
}

static glm_out *
new_parser(const glm_out_request *rq, const out_case *c, int stream)
{
    glm_out_opts oo;

    memset(&oo, 0, sizeof(oo));
    oo.rq = rq;
    oo.tok = tok;
    oo.skip_special = c->skip_special;
    oo.stream = stream;
    oo.image_w = c->image_w;
    oo.image_h = c->image_h;
    oo.id_seed = 12345;
    return glm_out_new(&oo);
}

/* one streaming run: steps of token counts given by split (NULL: one token),
 * or, with bytes > 0, the decoded text in random pieces of 1..bytes */
static int
run_stream(const char *what, const glm_out_request *rq, const out_case *c,
           const glm_tokenizer_ids *ids, int max_step, int bytes, uint64_t seed, yajl_val msg)
{
    glm_out *o = new_parser(rq, c, 1);
    stream_acc a;
    glm_rng rng;
    size_t i = 0;
    int ok;

    memset(&a, 0, sizeof(a));
    glm_rng_seed(&rng, seed);
    if (bytes > 0) {
        glm_out *dec = new_parser(rq, c, 0);
        glm_str text = { 0 };
        for (i = 0; i < ids->len; i++) {
            glm_out_decode(dec, ids->ids[i], &text);
        }
        glm_out_decode_flush(dec, &text);
        glm_out_free(dec);
        for (i = 0; i < text.len;) {
            size_t n = 1 + (size_t) (glm_rng_next(&rng) % (uint64_t) bytes);
            n = n > text.len - i ? text.len - i : n;
            glm_out_feed(o, text.data + i, n);
            take_delta(o, &a);
            i += n;
        }
        glm_str_free(&text);
    } else {
        while (i < ids->len) {
            glm_str text = { 0 };
            size_t n = max_step <= 1 ? 1 : 1 + (size_t) (glm_rng_next(&rng) % (uint64_t) max_step);
            size_t k;
            if (max_step == 0) {
                n = ids->len;
            }
            for (k = 0; k < n && i < ids->len; k++, i++) {
                glm_out_decode(o, ids->ids[i], &text);
            }
            glm_out_feed(o, text.data, text.len);
            glm_str_free(&text);
            take_delta(o, &a);
        }
    }
    glm_out_finish(o);
    take_delta(o, &a);
    ok = acc_matches(what, &a, msg);
    acc_free(&a);
    glm_out_free(o);
    return ok;
}

static void
run_case(const out_case *c)
{
    char *req_text = q(c->request), *exp_text = q(c->expect);
    yajl_val req = parse(req_text), exp = parse(exp_text), msg = NULL, calls, ecalls;
    glm_tokenizer_ids ids = { 0 }, span = { 0 };
    glm_out_request rq;
    const char *param;
    glm_out *o;
    glm_err err;
    size_t i;
    int ok = 1, seed;

    if (req == NULL || exp == NULL || glm_out_request_parse(&rq, req, NULL, &param, &err) != 0) {
        CHECK(0, "%s: bad case: %s", c->name, req && exp ? err.msg : "JSON");
        goto out;
    }
    encode(c->text, &ids);

    /* non-streaming, one token at a time */
    o = new_parser(&rq, c, 0);
    for (i = 0; i < ids.len; i++) {
        glm_out_feed_token(o, ids.ids[i]);
    }
    glm_out_finish(o);
    msg = message_of(o);
    if (msg == NULL) {
        CHECK(0, "%s: the message is not JSON", c->name);
        glm_out_free(o);
        glm_out_request_free(&rq);
        goto out;
    }
    if (!same_text(str_or_null(get(msg, "content")), str_or_null(get(exp, "content")))
        || (get(msg, "content") && YAJL_IS_STRING(get(msg, "content"))
            && !*get(msg, "content")->u.string))
    {
        printf("  content '%s', expected '%s'\n", str_or_null(get(msg, "content")),
               str_or_null(get(exp, "content")));
        ok = 0;
    }
    if (!same_text(str_or_null(get(msg, "reasoning")), str_or_null(get(exp, "reasoning")))
        || !same_text(str_or_null(get(msg, "reasoning_content")),
                      str_or_null(get(exp, "reasoning"))))
    {
        printf("  reasoning '%s', expected '%s'\n", str_or_null(get(msg, "reasoning")),
               str_or_null(get(exp, "reasoning")));
        ok = 0;
    }
    calls = get(msg, "tool_calls");
    ecalls = get(exp, "tool_calls");
    if (!YAJL_IS_ARRAY(calls) || calls->u.array.len != ecalls->u.array.len) {
        printf("  %zu calls, expected %zu\n", YAJL_IS_ARRAY(calls) ? calls->u.array.len : 0,
               ecalls->u.array.len);
        ok = 0;
    } else {
        for (i = 0; i < calls->u.array.len; i++) {
            yajl_val c1 = calls->u.array.values[i], e1 = ecalls->u.array.values[i];
            yajl_val f = get(c1, "function"), args;
            const char *atext = str_or_null(get(f, "arguments"));
            if (!same_text(str_or_null(get(f, "name")), str_or_null(get(e1, "name")))) {
                printf("  call %zu name %s\n", i, str_or_null(get(f, "name")));
                ok = 0;
            }
            if (str_or_null(get(c1, "id")) == NULL
                || strncmp(str_or_null(get(c1, "id")), "chatcmpl-tool-", 14) != 0
                || strlen(str_or_null(get(c1, "id"))) != 46)
            {
                printf("  call %zu id %s\n", i, str_or_null(get(c1, "id")));
                ok = 0;
            }
            args = atext ? parse(atext) : NULL;
            if (args == NULL || !glm_schema_equal(args, get(e1, "arguments"))) {
                printf("  call %zu arguments %s\n", i, atext);
                ok = 0;
            }
            if (get(e1, "arguments_text") && !same_text(atext, str_or_null(get(e1, "arguments_text")))) {
                printf("  call %zu arguments text %s, expected %s\n", i, atext,
                       str_or_null(get(e1, "arguments_text")));
                ok = 0;
            }
            yajl_tree_free(args);
        }
    }
    if (strcmp(glm_out_finish_reason(o, c->engine), str_or_null(get(exp, "finish_reason"))) != 0) {
        printf("  finish_reason %s\n", glm_out_finish_reason(o, c->engine));
        ok = 0;
    }
    if (get(exp, "glm_boxes") != NULL
        && !glm_schema_equal(get(msg, "glm_boxes"), get(exp, "glm_boxes"))) {
        glm_str s = { 0 };
        glm_json_write(&s, get(msg, "glm_boxes"));
        printf("  glm_boxes %s\n", s.data);
        glm_str_free(&s);
        ok = 0;
    }
    if (get(exp, "glm_boxes") == NULL && get(msg, "glm_boxes") != NULL) {
        printf("  glm_boxes present without the request field\n");
        ok = 0;
    }
    if (c->think_span) {
        encode(c->think_span, &span);
    }
    if (glm_out_reasoning_tokens(o) != (int) (c->think_span ? span.len : 0)) {
        printf("  reasoning_tokens %d, expected %zu\n", glm_out_reasoning_tokens(o),
               c->think_span ? span.len : 0);
        ok = 0;
    }
    CHECK(ok, "%s: message as expected", c->name);
    glm_out_free(o);

    CHECK(run_stream("token by token", &rq, c, &ids, 1, 0, 1, msg),
          "%s: streamed one token per step = message", c->name);
    CHECK(run_stream("all at once", &rq, c, &ids, 0, 0, 1, msg),
          "%s: streamed in one step = message", c->name);
    ok = 1;
    for (seed = 1; seed <= 20; seed++) {
        ok &= run_stream("multi-token steps", &rq, c, &ids, 2 + seed % 5, 0, (uint64_t) seed, msg);
    }
    CHECK(ok, "%s: streamed in random multi-token steps = message", c->name);
    ok = 1;
    for (seed = 1; seed <= 20; seed++) {
        ok &= run_stream("byte splits", &rq, c, &ids, 0, 1 + seed % 7, (uint64_t) seed, msg);
    }
    CHECK(ok, "%s: streamed in random byte splits = message", c->name);
    glm_out_request_free(&rq);
out:
    yajl_tree_free(req);
    yajl_tree_free(exp);
    yajl_tree_free(msg);
    glm_tokenizer_ids_free(&ids);
    glm_tokenizer_ids_free(&span);
    free(req_text);
    free(exp_text);
}

/* random token streams, heavy in tags and JSON punctuation: whatever the
 * model writes, the message is JSON, every call's arguments are a JSON
 * object, and streaming (per token, in random steps) gives the message */
static void
test_parser_fuzz(void)
{
    static const char *pieces[] = {
        "<think>", "</think>", "<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>",
        "<arg_value>", "</arg_value>", "<|begin_of_box|>", "<|end_of_box|>", "{", "}", "[",
        "]", "\"", ":", ",", "1", "2.5", "null", "true", "\n", " ", "city", "typed", "num",
        "get_weather", "s_null", "obj", "<", "</", "x", "\xe4\xb8\xad",
    };
    static const char *reqs[] = {
        "{" MSG "," TOOLS "}",
        "{" MSG "," TOOLS ",'parallel_tool_calls':false,'glm_boxes':true}",
        "{" MSG "," TOOLS ",'chat_template_kwargs':{'enable_thinking':false}}",
        "{" MSG "," TOOLS ",'tool_choice':'none'}",
    };
    int32_t piece_ids[64], n_pieces = 0, V = glm_tokenizer_vocab_size(tok);
    glm_tokenizer_ids ids = { 0 };
    glm_rng rng;
    int run, bad_json = 0, bad_args = 0, bad_stream = 0, calls = 0;
    size_t k;

    for (k = 0; k < sizeof(pieces) / sizeof(pieces[0]); k++) {
        encode(pieces[k], &ids);
        if (ids.len == 1) {
            piece_ids[n_pieces++] = ids.ids[0];
        }
    }
    glm_rng_seed(&rng, 99);
    for (run = 0; run < 300; run++) {
        char *rt = q(reqs[run % 4]);
        yajl_val req = parse(rt), msg, cs;
        glm_out_request rq;
        const char *param;
        glm_err err;
        out_case c;
        glm_out *o;
        size_t i;

        memset(&c, 0, sizeof(c));
        c.skip_special = 1;
        c.image_w = 100;
        c.image_h = 100;
        glm_out_request_parse(&rq, req, NULL, &param, &err);
        ids.len = 0;
        for (i = 0; i < 120; i++) {
            int32_t id;
            size_t len;
            const uint8_t *b;
            if (glm_rng_next(&rng) % 10 < 6) {
                id = piece_ids[glm_rng_next(&rng) % (uint64_t) n_pieces];
            } else {
                id = (int32_t) (glm_rng_next(&rng) % (uint64_t) V);
            }
            b = glm_tokenizer_token_bytes(tok, id, &len);
            if (b == NULL || memchr(b, 0, len) != NULL || id == 3000 || id == 3007 || id == 3009) {
                continue;
            }
            glm_tokenizer_ids_push(&ids, id, &err);
        }
        o = new_parser(&rq, &c, 0);
        for (i = 0; i < ids.len; i++) {
            glm_out_feed_token(o, ids.ids[i]);
        }
        glm_out_finish(o);
        msg = message_of(o);
        if (msg == NULL) {
            bad_json++;
        } else {
            cs = get(msg, "tool_calls");
            for (k = 0; cs != NULL && k < cs->u.array.len; k++) {
                const char *a = str_or_null(get(get(cs->u.array.values[k], "function"),
                                                "arguments"));
                yajl_val av = a ? parse(a) : NULL;
                calls++;
                if (av == NULL || !YAJL_IS_OBJECT(av)) {
                    bad_args++;
                    printf("  fuzz run %d: arguments %s\n", run, a);
                }
                yajl_tree_free(av);
            }
            if (!run_stream("fuzz per token", &rq, &c, &ids, 1, 0, 1, msg)
                || !run_stream("fuzz steps", &rq, &c, &ids, 4, 0, (uint64_t) run, msg)
                || !run_stream("fuzz bytes", &rq, &c, &ids, 0, 5, (uint64_t) run, msg))
            {
                bad_stream++;
            }
        }
        yajl_tree_free(msg);
        glm_out_free(o);
        glm_out_request_free(&rq);
        yajl_tree_free(req);
        free(rt);
    }
    CHECK(bad_json == 0 && bad_args == 0 && bad_stream == 0 && calls > 50,
          "random tag soup: 300 messages JSON, %d calls with object arguments, streamed ="
          " message (%d bad JSON, %d bad arguments, %d stream differences)", calls, bad_json,
          bad_args, bad_stream);
    glm_tokenizer_ids_free(&ids);
}

static void
test_request_parse(void)
{
    static const struct { const char *req; int ok; const char *param; } rs[] = {
        { "{" MSG ",'tool_choice':'auto'}", 0, "tool_choice" },
        { "{" MSG "," TOOLS ",'tool_choice':{'type':'function','function':{'name':'nope'}}}",
          0, "tool_choice" },
        { "{" MSG "," TOOLS ",'tool_choice':'sometimes'}", 0, "tool_choice" },
        { "{" MSG ",'tools':[{'type':'function','function':{}}]}", 0, "tools" },
        { "{" MSG ",'include_reasoning':3}", 0, "include_reasoning" },
        { "{" MSG ",'thinking_token_budget':-1}", 0, "thinking_token_budget" },
        { "{" MSG "," TOOLS "}", 1, NULL },
    };
    size_t i;

    for (i = 0; i < sizeof(rs) / sizeof(rs[0]); i++) {
        char *t = q(rs[i].req);
        yajl_val v = parse(t);
        glm_out_request rq;
        const char *param = NULL;
        glm_err err;
        int r = glm_out_request_parse(&rq, v, NULL, &param, &err);
        CHECK((r == 0) == rs[i].ok && (rs[i].ok || (param && !strcmp(param, rs[i].param))),
              "request %zu: %s (param %s)", i, r ? err.msg : "accepted", param ? param : "-");
        glm_out_request_free(&rq);
        yajl_tree_free(v);
        free(t);
    }
    {
        char *t = q("{" MSG "," TOOLS "}"), *t2 = q("{" MSG ",'chat_template_kwargs':"
                                                   "{'enable_thinking':null}}");
        char *dk = q("{'enable_thinking':false}");
        yajl_val v = parse(t), v2 = parse(t2), d = parse(dk);
        glm_out_request rq;
        const char *param;
        glm_err err;
        glm_out_request_parse(&rq, v, NULL, &param, &err);
        CHECK(rq.tg.choice == GLM_TOOL_CHOICE_AUTO && rq.parse_tools && rq.constrain
              && rq.tg.thinking && rq.tg.parallel && rq.include_reasoning && !rq.boxes,
              "defaults: tools present -> auto, thinking on, parallel, reasoning included");
        glm_out_request_free(&rq);
        glm_out_request_parse(&rq, v, d, &param, &err);
        CHECK(!rq.tg.thinking, "server default enable_thinking=false applies");
        glm_out_request_free(&rq);
        glm_out_request_parse(&rq, v2, NULL, &param, &err);
        CHECK(!rq.tg.thinking, "enable_thinking null is falsy, as the template sees it");
        glm_out_request_free(&rq);
        yajl_tree_free(v);
        yajl_tree_free(v2);
        yajl_tree_free(d);
        free(t);
        free(t2);
        free(dk);
    }
}

/* ---- schema helpers ----------------------------------------------------------- */

static void
test_json_helpers(void)
{
    static const struct { const char *in; int lenient; const char *out; } ns[] = {
        { " {\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\\u00e9\"}} ", 0,
          "{\"a\": 1, \"b\": [true, false, null], \"c\": {\"d\": \"e\xc3\xa9\"}}" },
        { "[1.5e3, -0, \"x\\ny\"]", 0, "[1.5e3, -0, \"x\\ny\"]" },
        { "{'a': True, 'b': None, 'c': [1, 2,],}", 1, "{\"a\": true, \"b\": null, \"c\": [1, 2]}" },
        { "{'a': True}", 0, NULL },
        { "01", 0, NULL },
        { "[1, 2", 0, NULL },
        { "\"\\ud83d\\ude00\"", 0, "\"\xf0\x9f\x98\x80\"" },
        { "nulls", 0, NULL },
    };
    static const struct { const char *in; int complete, failed; } ps[] = {
        { "{\"a\": [1, 2.5e-3, true, null, \"x\\\"\"]}", 1, 0 },
        { "{\"a\": [1, 2", 0, 0 },
        { "12", 1, 0 },
        { "12 3", 0, 1 },
        { "tru", 0, 0 },
        { "trux", 0, 1 },
        { "{\"a\" 1}", 0, 1 },
        { "  null  ", 1, 0 },
        { "Beijing", 0, 1 },
    };
    size_t i;

    for (i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
        glm_str out = { 0 };
        int k = glm_json_normalize(ns[i].in, strlen(ns[i].in), ns[i].lenient, &out);
        CHECK(ns[i].out ? (k >= 0 && out.data && strcmp(out.data, ns[i].out) == 0)
                        : (k < 0 && out.len == 0),
              "normalize %s -> %s", ns[i].in, k >= 0 ? out.data : "(invalid)");
        glm_str_free(&out);
    }
    for (i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        glm_json_prefix j;
        glm_json_prefix_init(&j);
        glm_json_prefix_push(&j, ps[i].in, strlen(ps[i].in));
        CHECK(glm_json_prefix_complete(&j) == ps[i].complete && j.failed == ps[i].failed,
              "prefix %s: complete %d failed %d", ps[i].in, glm_json_prefix_complete(&j),
              j.failed);
    }
    {
        char *s = q("{'type':'object','properties':{'a':{'type':'integer'},'b':{'anyOf':["
                    "{'type':'string','maxLength':3},{'type':'null'}]},'c':{'type':'array',"
                    "'items':{'enum':['x','y']},'maxItems':2},'d':{'$ref':'#/$defs/D'}},"
                    "'required':['a'],'additionalProperties':false,"
                    "'$defs':{'D':{'type':'object','required':['e']}}}");
        static const struct { const char *v; int ok; } vs[] = {
            { "{'a':1}", 1 }, { "{'a':1.0,'b':null,'c':['x','y']}", 1 }, { "{}", 0 },
            { "{'a':1.5}", 0 }, { "{'a':1,'b':'abcd'}", 0 }, { "{'a':1,'c':['z']}", 0 },
            { "{'a':1,'c':['x','x','x']}", 0 }, { "{'a':1,'z':2}", 0 },
            { "{'a':1,'d':{'e':0}}", 1 }, { "{'a':1,'d':{}}", 0 },
        };
        yajl_val schema = parse(s);
        char why[256];
        for (i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
            char *t = q(vs[i].v);
            yajl_val v = parse(t);
            int ok = glm_schema_check(schema, schema, v, why, sizeof(why));
            CHECK(ok == vs[i].ok, "validate %s: %d (%s)", vs[i].v, ok, why);
            yajl_tree_free(v);
            free(t);
        }
        yajl_tree_free(schema);
        free(s);
    }
}

/* ---- the grammar without a model ------------------------------------------------ */

#define GTOOLS \
    "[{'type':'function','function':{'name':'get_weather','parameters':{'type':'object'," \
    "'properties':{'city':{'type':'string','maxLength':20},'days':{'type':'integer'}," \
    "'unit':{'type':'string','enum':['c','f']},'opts':{'type':'object','properties':" \
    "{'hourly':{'type':'boolean'},'tags':{'type':'array','items':{'type':'string'}," \
    "'maxItems':2}},'required':['hourly']},'note':{'type':['string','null']}}," \
    "'required':['city']}}}," \
    "{'type':'function','function':{'name':'get_time','parameters':{'type':'object'," \
    "'properties':{}}}}]"

static glm_tg_vocab *gvocab;

/* feeds text token by token; checks mask/step agreement on every id at every
 * position; returns the number of tokens accepted (all: ids->len) */
static size_t
grammar_walk(glm_tg *g, const char *text, int exhaustive, int *agree)
{
    glm_tokenizer_ids ids = { 0 };
    glm_tg_state *st = glm_tg_state_new(g);
    int32_t V = glm_tokenizer_vocab_size(tok);
    uint64_t *bits = calloc((size_t) NLOGITS / 64 + 1, sizeof(uint64_t));
    float *logits = malloc((size_t) NLOGITS * sizeof(float));
    size_t i, accepted = 0;
    int32_t id;

    encode(text, &ids);
    *agree = 1;
    for (i = 0; i < ids.len; i++) {
        int allowed;
        if (exhaustive) {
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
            /* the cached mask applied to logits says the same */
            for (id = 0; id < V; id++) {
                logits[id] = 0.0f;
            }
            glm_tg_mask(st, logits);
            for (id = 0; id < V; id++) {
                if ((logits[id] == 0.0f) != (int) ((bits[id >> 6] >> (id & 63)) & 1)) {
                    if (*agree) {
                        printf("  cached mask differs on id %d at token %zu\n", id, i);
                    }
                    *agree = 0;
                }
            }
        }
        glm_tg_allowed(st, bits);
        allowed = (int) ((bits[ids.ids[i] >> 6] >> (ids.ids[i] & 63)) & 1);
        if (!allowed || glm_tg_advance(st, ids.ids[i]) != 0) {
            break;
        }
        accepted++;
    }
    glm_tokenizer_ids_free(&ids);
    glm_tg_state_free(st);
    free(bits);
    free(logits);
    return accepted;
}

static glm_tg *
grammar_for(glm_tools *tools, glm_tool_choice choice, int named, int thinking, int parallel,
            int budget)
{
    glm_tg_opts o;
    glm_err err;
    glm_tg *g;

    memset(&o, 0, sizeof(o));
    o.choice = choice;
    o.named = named;
    o.parallel = parallel;
    o.thinking = thinking;
    o.think_budget = budget;
    g = glm_tg_new(gvocab, tools, &o, &err);
    if (g == NULL) {
        printf("  glm_tg_new: %s\n", err.msg);
    }
    return g;
}

static void
test_grammar_units(void)
{
    static const struct {
        const char *what;
        glm_tool_choice choice;
        int named, thinking, parallel;
        const char *text;
        int accept;          /* 1: all tokens accepted; 0: refused somewhere */
    } gs[] = {
        { "named call with nested object", GLM_TOOL_CHOICE_NAMED, 0, 1, 1,
          "\n<think>ok</think>\n<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>"
          "Paris</arg_value>\n<arg_key>opts</arg_key>\n<arg_value>{\"hourly\": true, \"tags\":"
          " [\"a\", \"b\"]}</arg_value>\n<arg_key>days</arg_key>\n<arg_value>-12</arg_value>\n"
          "<arg_key>unit</arg_key>\n<arg_value>c</arg_value>\n<arg_key>note</arg_key>\n"
          "<arg_value>null</arg_value>\n</tool_call><|observation|>", 1 },
        { "required: two calls, second zero-arg", GLM_TOOL_CHOICE_REQUIRED, -1, 0, 1,
          "\n<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>x</arg_value>\n"
          "</tool_call>\n<tool_call>get_time</tool_call><|observation|>", 1 },
        { "auto: text then a call", GLM_TOOL_CHOICE_AUTO, -1, 1, 1,
          "<think>hm</think>\nSure, checking.<tool_call>get_time\n</tool_call><|observation|>", 1 },
        { "auto: plain answer ends", GLM_TOOL_CHOICE_AUTO, -1, 1, 1,
          "Just text, a < b and <b>bold</b> here.<|endoftext|>", 1 },
        { "auto: a tag token out of place", GLM_TOOL_CHOICE_AUTO, -1, 1, 1,
          "Just text and </arg_value>", 0 },
        { "auto: call inside thinking", GLM_TOOL_CHOICE_AUTO, -1, 1, 1,
          "<think>call now<tool_call>get_time\n</tool_call><|observation|>", 1 },
        { "none: text", GLM_TOOL_CHOICE_NONE, -1, 1, 1, "<think>a</think>b<|endoftext|>", 1 },
        { "none: no call", GLM_TOOL_CHOICE_NONE, -1, 1, 1, "ok <tool_call>", 0 },
        { "named: the other tool", GLM_TOOL_CHOICE_NAMED, 0, 1, 1, "<tool_call>get_time", 0 },
        { "named: no text", GLM_TOOL_CHOICE_NAMED, 0, 0, 1, "Sure", 0 },
        { "named: missing required key", GLM_TOOL_CHOICE_NAMED, 0, 0, 1,
          "<tool_call>get_weather\n</tool_call>", 0 },
        { "named: undeclared key", GLM_TOOL_CHOICE_NAMED, 0, 0, 1,
          "<tool_call>get_weather\n<arg_key>town", 0 },
        { "named: key twice", GLM_TOOL_CHOICE_NAMED, 0, 0, 1,
          "<tool_call>get_weather\n<arg_key>city</arg_key><arg_value>a</arg_value>"
          "<arg_key>city</arg_key>", 0 },
        { "maxLength", GLM_TOOL_CHOICE_NAMED, 0, 0, 1,
          "<tool_call>get_weather\n<arg_key>city</arg_key><arg_value>"
          "abcdefghijklmnopqrstuvwxyz", 0 },
        { "enum", GLM_TOOL_CHOICE_NAMED, 0, 0, 1,
          "<tool_call>get_weather\n<arg_key>unit</arg_key><arg_value>k", 0 },
        { "integer refuses a fraction", GLM_TOOL_CHOICE_NAMED, 0, 0, 1,
          "<tool_call>get_weather\n<arg_key>days</arg_key><arg_value>1.5", 0 },
        { "nested required key", GLM_TOOL_CHOICE_NAMED, 0, 0, 1,
          "<tool_call>get_weather\n<arg_key>opts</arg_key><arg_value>{\"tags\": []}", 0 },
        { "maxItems", GLM_TOOL_CHOICE_NAMED, 0, 0, 1,
          "<tool_call>get_weather\n<arg_key>opts</arg_key><arg_value>{\"hourly\": false, "
          "\"tags\": [\"a\", \"b\", \"c\"", 0 },
        { "a value may not spell its closing tag", GLM_TOOL_CHOICE_NAMED, 0, 0, 1,
          "<tool_call>get_weather\n<arg_key>city</arg_key><arg_value>a</arg_val" "ue>", 1 },
        { "no text after the call", GLM_TOOL_CHOICE_AUTO, -1, 0, 1,
          "<tool_call>get_time</tool_call>more", 0 },
        { "parallel false: one call", GLM_TOOL_CHOICE_REQUIRED, -1, 0, 0,
          "<tool_call>get_time</tool_call><tool_call>", 0 },
    };
    glm_tools *tools;
    char *t = q(GTOOLS);
    yajl_val tv = parse(t);
    glm_err err;
    size_t i;

    tools = glm_tools_parse(tv, &err);
    CHECK(tools != NULL, "tools compile: %s", tools ? "" : err.msg);
    for (i = 0; tools && i < sizeof(gs) / sizeof(gs[0]); i++) {
        glm_tg *g = grammar_for(tools, gs[i].choice, gs[i].named, gs[i].thinking, gs[i].parallel, -1);
        glm_tokenizer_ids ids = { 0 };
        size_t n;
        int agree;
        encode(gs[i].text, &ids);
        n = grammar_walk(g, gs[i].text, 1, &agree);
        CHECK(agree, "%s: mask and step agree on every id", gs[i].what);
        CHECK(gs[i].accept ? n == ids.len : n < ids.len, "%s: %s (%zu of %zu tokens accepted)",
              gs[i].what, gs[i].accept ? "accepted" : "refused", n, ids.len);
        glm_tokenizer_ids_free(&ids);
        glm_tg_free(g);
    }
    /* a spelled closing tag inside a value: the token-by-token text is refused */
    if (tools) {
        glm_tg *g = grammar_for(tools, GLM_TOOL_CHOICE_NAMED, 0, 0, 1, -1);
        glm_tg_state *st = glm_tg_state_new(g);
        glm_tokenizer_ids ids = { 0 };
        const char *pre = "<tool_call>get_weather\n<arg_key>city</arg_key><arg_value>a";
        const char *pieces[] = { "<", "/", "arg", "_", "value", ">" };
        size_t k;
        int ok = 1, refused = 0;
        encode(pre, &ids);
        for (k = 0; k < ids.len; k++) {
            ok &= glm_tg_advance(st, ids.ids[k]) == 0;
        }
        for (k = 0; k < 6 && ok; k++) {
            glm_tokenizer_ids one = { 0 };
            size_t m;
            encode(pieces[k], &one);
            for (m = 0; m < one.len; m++) {
                if (glm_tg_advance(st, one.ids[m]) != 0) {
                    refused = 1;
                }
            }
            glm_tokenizer_ids_free(&one);
        }
        CHECK(ok && refused, "\"</arg_value>\" spelled in pieces inside a value is refused");
        glm_tokenizer_ids_free(&ids);
        glm_tg_state_free(st);
        glm_tg_free(g);
    }
    /* think budget: after 3 reasoning tokens only </think> */
    if (tools) {
        glm_tg *g = grammar_for(tools, GLM_TOOL_CHOICE_AUTO, -1, 1, 1, 3);
        glm_tg_state *st = glm_tg_state_new(g);
        int32_t V = glm_tokenizer_vocab_size(tok), id, n_allowed = 0, close_id;
        float *l = calloc((size_t) NLOGITS, sizeof(float));
        glm_tokenizer_ids ids = { 0 };
        size_t k;
        encode("<think>one two three", &ids);
        for (k = 0; k < 4 && k < ids.len; k++) {
            glm_tg_advance(st, ids.ids[k]);
        }
        glm_tg_mask(st, l);
        close_id = glm_tokenizer_token_id(tok, "</think>");
        for (id = 0; id < V; id++) {
            n_allowed += l[id] == 0.0f;
        }
        CHECK(n_allowed == 1 && l[close_id] == 0.0f, "thinking_token_budget forces </think>"
              " (%d allowed)", n_allowed);
        free(l);
        glm_tokenizer_ids_free(&ids);
        glm_tg_state_free(st);
        glm_tg_free(g);
    }
    glm_tools_free(tools);
    yajl_tree_free(tv);
    free(t);

    /* recursive $ref, a name that prefixes another, free keys */
    {
        static const struct { const char *text; int accept; } rs[] = {
            { "<tool_call>get\n<arg_key>tree</arg_key>\n<arg_value>{\"v\": 1, \"child\": "
              "{\"v\": 2, \"child\": {\"v\": 3}}}</arg_value>\n</tool_call><|observation|>", 1 },
            { "<tool_call>get_time\n</tool_call><tool_call>get</tool_call><|observation|>", 1 },
            { "<tool_call>free\n<arg_key>any key</arg_key><arg_value>[1, {\"a\": null}]"
              "</arg_value><arg_key>x</arg_key><arg_value>text</arg_value></tool_call>"
              "<|observation|>", 1 },
            { "<tool_call>get\n<arg_key>tree</arg_key>\n<arg_value>{\"child\": {}}", 0 },
            { "<tool_call>free\n<arg_key> lead", 0 },
        };
        char *rt = q("[{'type':'function','function':{'name':'get','parameters':{'type':'object',"
                     "'properties':{'tree':{'$ref':'#/$defs/node'}},'$defs':{'node':{'type':'object',"
                     "'properties':{'v':{'type':'integer'},'child':{'$ref':'#/$defs/node'}},"
                     "'required':['v']}}}}},"
                     "{'type':'function','function':{'name':'get_time'}},"
                     "{'type':'function','function':{'name':'free','parameters':{'type':'object'}}}]");
        yajl_val rv = parse(rt);
        glm_tools *rtools = glm_tools_parse(rv, &err);
        CHECK(rtools != NULL, "recursive schema compiles: %s", rtools ? "" : err.msg);
        for (i = 0; rtools && i < sizeof(rs) / sizeof(rs[0]); i++) {
            glm_tg *g = grammar_for(rtools, GLM_TOOL_CHOICE_REQUIRED, -1, 0, 1, -1);
            glm_tokenizer_ids ids = { 0 };
            size_t n;
            int agree;
            encode(rs[i].text, &ids);
            n = grammar_walk(g, rs[i].text, 1, &agree);
            CHECK(agree && (rs[i].accept ? n == ids.len : n < ids.len),
                  "grammar case %zu: %s (%zu of %zu tokens)", i,
                  rs[i].accept ? "accepted" : "refused", n, ids.len);
            glm_tokenizer_ids_free(&ids);
            glm_tg_free(g);
        }
        glm_tools_free(rtools);
        yajl_tree_free(rv);
        free(rt);
    }
}

/* ---- the grammar on the fixture model ----------------------------------------- */

#define NESTED_TOOL \
    "{'type':'function','function':{'name':'book_trip','description':'Book a trip'," \
    "'parameters':{'type':'object','properties':{" \
    "'city':{'type':'string','maxLength':6}," \
    "'nights':{'anyOf':[{'type':'integer'},{'type':'null'}]}," \
    "'travellers':{'type':'array','maxItems':1,'items':{'type':'object','properties':{" \
    "'name':{'type':'string','maxLength':4}},'required':['name']}}," \
    "'prefs':{'type':'object','properties':{'seat':{'type':'string','enum':['aisle','window']}}," \
    "'required':['seat']}},'required':['city','travellers','prefs']}}}"
#define SMALL_TOOL \
    "{'type':'function','function':{'name':'ping','parameters':{'type':'object'," \
    "'properties':{'n':{'type':'integer'}},'required':['n']}}}"

typedef struct {
    glm_model     *m;
    glm_tg_state **st;
    glm_out      **out;
    stream_acc    *acc;
    int           *n_gen, *ended_eos, *rejected, *saw_call_token;
    int            max_tokens;
    int32_t        call_open;
} model_ctx;

static void
model_mask(void *p, glm_seq *seq, float *logits)
{
    model_ctx *c = p;

    glm_tg_mask(c->st[seq->index], logits);
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
    c->saw_call_token[i] |= s->token == c->call_open;
    if (glm_config_is_eos(&c->m->cfg, s->token)) {
        c->ended_eos[i] = 1;
        glm_out_finish(c->out[i]);
        take_delta(c->out[i], &c->acc[i]);
        return 1;
    }
    glm_out_feed_token(c->out[i], s->token);
    take_delta(c->out[i], &c->acc[i]);
    if (c->n_gen[i] >= c->max_tokens) {
        glm_out_finish(c->out[i]);
        take_delta(c->out[i], &c->acc[i]);
        return 1;
    }
    return 0;
}

typedef struct {
    int n, eos, valid, calls_total, rejected, saw_call_token, no_call_when_required;
    int streamed_equal;
    double tokens;
} model_result;

/* runs n seeded sequences of the request through the scheduler with the
 * grammar, and checks every output against the request's tool schemas */
static model_result
run_model(glm_model *m, const glm_chat_template *ct, const char *request_q, int n, int max_tokens,
          int verbose)
{
    char *rtext = q(request_q), *ptext = q("{'messages':[{'role':'user','content':'Go'}]}");
    yajl_val req = parse(rtext), tools_v = get(req, "tools");
    model_result r;
    glm_out_request rq;
    const char *param;
    glm_err err;
    char *prompt = NULL;
    size_t plen = 0;
    glm_tokenizer_ids ids = { 0 };
    glm_tg *g = NULL;
    glm_sched s;
    glm_seq **seqs = calloc((size_t) n, sizeof(glm_seq *));
    glm_tg_state **st = calloc((size_t) n, sizeof(glm_tg_state *));
    glm_out **out = calloc((size_t) n, sizeof(glm_out *));
    stream_acc *acc = calloc((size_t) n, sizeof(stream_acc));
    int *n_gen = calloc((size_t) n, sizeof(int)), *eos = calloc((size_t) n, sizeof(int));
    int *rej = calloc((size_t) n, sizeof(int)), *sawc = calloc((size_t) n, sizeof(int));
    model_ctx mc;
    int i, steps = 0, nul_n = 0;
    glm_logit_bias nul_ids[16];
    int32_t tid;

    for (tid = 0; tid < glm_tokenizer_vocab_size(tok) && nul_n < 16; tid++) {
        size_t len;
        const uint8_t *b = glm_tokenizer_token_bytes(tok, tid, &len);
        if (b != NULL && memchr(b, 0, len) != NULL) {
            nul_ids[nul_n].id = tid;
            nul_ids[nul_n++].bias = -100.0f;
        }
    }

    memset(&r, 0, sizeof(r));
    r.n = n;
    if (glm_out_request_parse(&rq, req, NULL, &param, &err) != 0
        || glm_chat_template_render_request(ct, ptext, strlen(ptext), NULL, &prompt, &plen,
                                            &err) != 0)
    {
        CHECK(0, "model request: %s", err.msg);
        goto out;
    }
    if (glm_tokenizer_encode(tok, NULL, prompt, plen, &ids, &err) != 0) {
        CHECK(0, "model prompt: %s", err.msg);
        goto out;
    }
    g = glm_tg_new(gvocab, rq.tools, &rq.tg, &err);
    if (g == NULL || glm_sched_init(&s, m, 4096, 16, n, 8192, &err) != 0) {
        CHECK(0, "grammar/scheduler: %s", err.msg);
        goto out;
    }
    memset(&mc, 0, sizeof(mc));
    mc.m = m;
    mc.st = st;
    mc.out = out;
    mc.acc = acc;
    mc.n_gen = n_gen;
    mc.ended_eos = eos;
    mc.rejected = rej;
    mc.saw_call_token = sawc;
    mc.max_tokens = max_tokens;
    mc.call_open = glm_tokenizer_token_id(tok, "<tool_call>");
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
        /* yajl_tree strings end at a NUL, so text holding U+0000 could not be
         * compared here: the byte tokens that decode to it are biased away */
        p.logit_bias = malloc(sizeof(glm_logit_bias) * (size_t) nul_n);
        memcpy(p.logit_bias, nul_ids, sizeof(glm_logit_bias) * (size_t) nul_n);
        p.n_logit_bias = nul_n;
        memset(&oo, 0, sizeof(oo));
        oo.rq = &rq;
        oo.tok = tok;
        oo.skip_special = 1;
        oo.stream = 1;
        oo.id_seed = (uint64_t) i + 1;
        st[i] = glm_tg_state_new(g);
        out[i] = glm_out_new(&oo);
        seqs[i] = glm_seq_new(ids.ids, (int) ids.len, &p, 1000 + (uint64_t) i, NULL, i);
        seqs[i]->constrained = 1;
        glm_sched_add(&s, seqs[i]);
    }
    while (glm_sched_has_work(&s) && steps < 100000) {
        glm_sched_step(&s);
        steps++;
    }
    for (i = 0; i < n; i++) {
        yajl_val msg = message_of(out[i]), calls = get(msg, "tool_calls");
        size_t k;
        int ok = 1;
        r.tokens += n_gen[i];
        r.eos += eos[i];
        r.rejected += rej[i] > 0;
        r.saw_call_token += sawc[i];
        r.streamed_equal += acc_matches("model stream", &acc[i], msg);
        if (rq.tg.choice >= GLM_TOOL_CHOICE_REQUIRED && eos[i]
            && (calls == NULL || calls->u.array.len == 0))
        {
            r.no_call_when_required++;
        }
        for (k = 0; calls != NULL && k < calls->u.array.len; k++) {
            yajl_val f = get(calls->u.array.values[k], "function"), args, schema = NULL;
            const char *name = str_or_null(get(f, "name"));
            size_t t;
            char why[256] = "";
            r.calls_total++;
            args = parse(str_or_null(get(f, "arguments")));
            for (t = 0; t < tools_v->u.array.len; t++) {
                yajl_val fn = get(tools_v->u.array.values[t], "function");
                if (strcmp(str_or_null(get(fn, "name")), name) == 0) {
                    schema = get(fn, "parameters");
                }
            }
            if (args == NULL || schema == NULL
                || (eos[i] && !glm_schema_check(schema, schema, args, why, sizeof(why))))
            {
                ok = 0;
                if (verbose) {
                    printf("  seed %d: call %s %s invalid: %s\n", i, name,
                           str_or_null(get(f, "arguments")), why);
                }
            }
            yajl_tree_free(args);
        }
        /* a finished output is valid when its calls are; a cut one is not counted */
        r.valid += eos[i] && ok && !rej[i]
                   && !(rq.tg.choice >= GLM_TOOL_CHOICE_REQUIRED
                        && (calls == NULL || calls->u.array.len == 0));
        if (verbose > 2 && i < 2) {
            glm_tokenizer_buf tb = { 0 };
            glm_tokenizer_decode(tok, seqs[i]->tokens + seqs[i]->n_prompt,
                                 (size_t) (seqs[i]->n_tokens - seqs[i]->n_prompt), 0, &tb, NULL);
            printf("  raw: %.*s\n", (int) tb.len, tb.data);
            glm_tokenizer_buf_free(&tb);
        }
        if (verbose > 1 && i < 2) {
            glm_str ms = { 0 };
            glm_out_message(out[i], &ms);
            printf("  seed %d (%d tokens, %s): %.600s\n", i, n_gen[i], eos[i] ? "eos" : "cut",
                   ms.data);
            glm_str_free(&ms);
        }
        yajl_tree_free(msg);
        glm_seq_free(seqs[i]);
        glm_tg_state_free(st[i]);
        glm_out_free(out[i]);
        acc_free(&acc[i]);
    }
    glm_sched_free(&s);
out:
    glm_tg_free(g);
    glm_out_request_free(&rq);
    glm_tokenizer_ids_free(&ids);
    free(prompt);
    free(seqs);
    free(st);
    free(out);
    free(acc);
    free(n_gen);
    free(eos);
    free(rej);
    free(sawc);
    yajl_tree_free(req);
    free(rtext);
    free(ptext);
    return r;
}

static void
test_model(void)
{
    glm_backend *be = glm_backend_cpu_create(0);
    glm_chat_template *ct;
    glm_model *m;
    glm_err err;
    model_result r;
    const char *verbose = getenv("GLM_TEST_VERBOSE");
    int vb = verbose ? atoi(verbose) : 0;
    double t0 = glm_now_seconds();

    m = glm_model_load(FIXTURE, be, &err);
    ct = m ? glm_chat_template_load(FIXTURE, NULL, &err) : NULL;
    if (m == NULL || ct == NULL) {
        CHECK(0, "fixture: %s", err.msg);
        return;
    }

    r = run_model(m, ct, "{'messages':[{'role':'user','content':'Book me a trip'}],'tools':["
                  NESTED_TOOL "," SMALL_TOOL "],'tool_choice':{'type':'function','function':"
                  "{'name':'book_trip'}},'thinking_token_budget':2}", 100, 1000, vb);
    printf("model, named tool, thinking budget 2: %d/%d finished valid, %d ended by EOS,"
           " %.0f tokens on average (%.1f s)\n", r.valid, r.n, r.eos, r.tokens / r.n,
           glm_now_seconds() - t0);
    CHECK(r.valid == r.n && r.rejected == 0, "named tool, 100 seeds: every output is one valid"
          " call (%d/%d valid, %d with a refused token)", r.valid, r.n, r.rejected);
    CHECK(r.calls_total == r.n, "named tool: exactly one call each (%d)", r.calls_total);
    CHECK(r.streamed_equal == r.n, "named tool: streamed = message (%d/%d)", r.streamed_equal, r.n);

    r = run_model(m, ct, "{'messages':[{'role':'user','content':'Ping'}],'tools':["
                  SMALL_TOOL "," NESTED_TOOL "],'tool_choice':'required',"
                  "'chat_template_kwargs':{'enable_thinking':false}}", 12, 1000, vb);
    CHECK(r.rejected == 0 && r.no_call_when_required == 0 && r.valid == r.eos && r.eos > 0,
          "required: every finished output has valid calls (%d/%d valid of %d finished)",
          r.valid, r.n, r.eos);
    CHECK(r.streamed_equal == r.n, "required: streamed = message (%d/%d)", r.streamed_equal, r.n);

    r = run_model(m, ct, "{'messages':[{'role':'user','content':'Ping'}],'tools':["
                  SMALL_TOOL "],'tool_choice':'auto','thinking_token_budget':2}", 12, 100, vb);
    CHECK(r.rejected == 0 && r.valid == r.eos, "auto: every finished output is valid"
          " (%d/%d valid, %d finished, %d calls)", r.valid, r.n, r.eos, r.calls_total);
    CHECK(r.streamed_equal == r.n, "auto: streamed = message (%d/%d)", r.streamed_equal, r.n);

    r = run_model(m, ct, "{'messages':[{'role':'user','content':'Ping'}],'tools':["
                  SMALL_TOOL "],'tool_choice':'none','thinking_token_budget':2}", 12, 60, vb);
    CHECK(r.rejected == 0 && r.saw_call_token == 0 && r.calls_total == 0,
          "none: no <tool_call> token is ever sampled (%d outputs)", r.n);

    glm_chat_template_free(ct);
    glm_model_free(m);
    be->destroy(be);
}

int
main(void)
{
    glm_err err;
    size_t i;
    int32_t eos[3];

    tok = glm_tokenizer_load(FIXTURE "/tokenizer.json", &err);
    if (tok == NULL) {
        printf("tokenizer: %s\n", err.msg);
        printf("output: 0 passed, 1 failed\n");
        return 1;
    }
    test_json_helpers();
    test_request_parse();
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_case(&cases[i]);
    }
    test_parser_fuzz();
    eos[0] = glm_tokenizer_token_id(tok, "<|endoftext|>");
    eos[1] = glm_tokenizer_token_id(tok, "<|user|>");
    eos[2] = glm_tokenizer_token_id(tok, "<|observation|>");
    gvocab = glm_tg_vocab_new(tok, NLOGITS, eos, 3, &err);
    CHECK(gvocab != NULL, "grammar vocabulary: %s", gvocab ? "" : err.msg);
    if (gvocab != NULL) {
        test_grammar_units();
        test_model();
        glm_tg_vocab_free(gvocab);
    }
    glm_tokenizer_free(tok);
    printf("output: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
