/*
 * glm_output.c: see glm_output.h for the rules.
 *
 * One state machine over text.  Text arrives in pieces split anywhere; a
 * piece is scanned once: runs without '<' go to the current region's
 * handler, and at a '<' the region's tags are tried.  Only a '<' that may
 * still become a tag (the text ends inside it) and an incomplete UTF-8
 * character are held back, so the held text never exceeds the longest tag.
 */
#include "glm_output.h"
#include "util/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/sampling.h"

enum {
    T_THINK_OPEN, T_THINK_CLOSE, T_CALL_OPEN, T_CALL_CLOSE, T_KEY_OPEN, T_KEY_CLOSE,
    T_VAL_OPEN, T_VAL_CLOSE, T_BOX_OPEN, T_BOX_CLOSE, OUT_N_TAGS
};

static const char *const out_tag_text[OUT_N_TAGS] = {
    "<think>", "</think>", "<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>",
    "<arg_value>", "</arg_value>", "<|begin_of_box|>", "<|end_of_box|>",
};

#define TB(t) (1u << (t))

enum {
    R_START,         /* thinking on, nothing but whitespace yet */
    R_THINK,
    R_CONTENT,
    R_NAME,          /* after <tool_call> */
    R_ARGS,          /* between pairs */
    R_KEY,
    R_AFTER_KEY,
    R_VALUE,
    R_SKIP,          /* a call that is dropped */
};

enum {
    VM_STR,          /* a string, streamed */
    VM_JSON,         /* not a string: buffered, parsed at the end */
    VM_MIXED,        /* maybe JSON, maybe a string: buffered while undecided */
    VM_MIXED_STR,    /* decided: a string, streamed */
};

typedef struct {
    char       id[48];
    glm_str    name;
    glm_str    args;
    int        n_args;
    int        tool;
} out_call;

typedef struct {
    int        index;
    int        header;           /* carries id, type and name */
    glm_str    args;
} out_dcall;

struct glm_out {
    glm_out_opts     o;
    const glm_out_request *rq;
    glm_detok        detok;
    int              region;
    glm_str          pend;        /* input not yet scanned */
    glm_str          ws_hold;     /* content whitespace not yet known to be content */
    int              after_call;  /* only whitespace since a </tool_call> */
    int              swallow_think_close;
    int              content_started;
    /* the call and pair being read */
    int              cur;         /* index in calls, -1 when none */
    glm_str          name, key, val;
    int              vmode;
    unsigned         vallowed;    /* JSON kinds a mixed value may take */
    glm_json_prefix  jp;
    /* results */
    glm_str          content, reasoning;
    out_call        *calls;
    int              n_calls, cap_calls;
    glm_str          boxes;       /* JSON entries, comma-separated */
    int              n_boxes, in_box;
    glm_str          box_text;
    /* streaming deltas not yet taken */
    glm_str          d_content, d_reasoning, d_boxes;
    out_dcall       *d_calls;
    int              n_dcalls, cap_dcalls;
    /* token counting */
    int              rt;          /* 0: before any text, 1: in <think>, 2: after */
    int              reasoning_tokens;
    int32_t          id_think_open, id_think_close, id_call_open, id_box_open, id_box_close;
    glm_rng          rng;
    glm_tokenizer_buf tbuf;
    glm_str          scratch;
    int              finished;
};

/* ---- the request ---------------------------------------------------------- */

/* Jinja's truthiness, as the chat template tests enable_thinking */
static int
out_truthy(yajl_val v)
{
    if (v == NULL || YAJL_IS_NULL(v) || YAJL_IS_FALSE(v)) {
        return 0;
    }
    if (YAJL_IS_NUMBER(v)) {
        return YAJL_GET_DOUBLE(v) != 0.0;
    }
    if (YAJL_IS_STRING(v)) {
        return v->u.string[0] != '\0';
    }
    if (YAJL_IS_ARRAY(v)) {
        return v->u.array.len > 0;
    }
    if (YAJL_IS_OBJECT(v)) {
        return v->u.object.len > 0;
    }
    return 1;
}

static int
out_bool(yajl_val root, const char *key, int dflt, const char **param, glm_err *err, int *out)
{
    yajl_val v = glm_json_get(root, key);

    *out = dflt;
    if (v == NULL || YAJL_IS_NULL(v)) {
        return 0;
    }
    if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
        *param = key;
        return glm_errf(err, "'%s' must be true or false", key);
    }
    *out = YAJL_IS_TRUE(v);
    return 0;
}

int
glm_out_request_parse(glm_out_request *rq, yajl_val root, yajl_val default_kwargs,
                      const char **param, glm_err *err)
{
    yajl_val tools = glm_json_get(root, "tools"), tc = glm_json_get(root, "tool_choice"), v, kw;
    int has_tools;

    memset(rq, 0, sizeof(*rq));
    rq->tg.named = -1;
    rq->tg.think_budget = -1;
    *param = NULL;
    if (tools != NULL && YAJL_IS_NULL(tools)) {
        tools = NULL;
    }
    if (tc != NULL && YAJL_IS_NULL(tc)) {
        tc = NULL;
    }
    if (tools != NULL) {
        rq->tools = glm_tools_parse(tools, err);
        if (rq->tools == NULL) {
            *param = "tools";
            return -1;
        }
    }
    has_tools = rq->tools != NULL && rq->tools->n > 0;

    /* tool_choice: vLLM's defaults and checks */
    if (tc == NULL) {
        rq->tg.choice = has_tools ? GLM_TOOL_CHOICE_AUTO : GLM_TOOL_CHOICE_NONE;
    } else if (tools == NULL) {
        *param = "tool_choice";
        return glm_errf(err, "When using `tool_choice`, `tools` must be set.");
    } else if (YAJL_IS_STRING(tc)) {
        if (strcmp(tc->u.string, "none") == 0) {
            rq->tg.choice = GLM_TOOL_CHOICE_NONE;
        } else if (strcmp(tc->u.string, "auto") == 0) {
            rq->tg.choice = has_tools ? GLM_TOOL_CHOICE_AUTO : GLM_TOOL_CHOICE_NONE;
        } else if (strcmp(tc->u.string, "required") == 0) {
            rq->tg.choice = has_tools ? GLM_TOOL_CHOICE_REQUIRED : GLM_TOOL_CHOICE_NONE;
        } else {
            *param = "tool_choice";
            return glm_errf(err, "'tool_choice' must be \"none\", \"auto\", \"required\" or"
                            " {\"type\": \"function\", \"function\": {\"name\": ...}}");
        }
    } else {
        yajl_val f = glm_json_get(tc, "function"), name = glm_json_get(f, "name");
        int idx;
        if (!YAJL_IS_OBJECT(tc) || name == NULL || !YAJL_IS_STRING(name)) {
            *param = "tool_choice";
            return glm_errf(err, "'tool_choice' must be \"none\", \"auto\", \"required\" or"
                            " {\"type\": \"function\", \"function\": {\"name\": ...}}");
        }
        idx = glm_tools_find(rq->tools, name->u.string, strlen(name->u.string));
        if (idx < 0) {
            *param = "tool_choice";
            return glm_errf(err, "Tool '%s' has not been passed in `tools`.", name->u.string);
        }
        rq->tg.choice = GLM_TOOL_CHOICE_NAMED;
        rq->tg.named = idx;
    }
    if (glm_so_parse(&rq->so, &rq->tools, root, rq->tg.choice >= GLM_TOOL_CHOICE_REQUIRED,
                     rq->tg.choice == GLM_TOOL_CHOICE_NAMED, param, err) != 0)
    {
        return -1;
    }
    rq->tg.so = rq->so.kind != GLM_SO_NONE ? &rq->so : NULL;
    if (out_bool(root, "parallel_tool_calls", 1, param, err, &rq->tg.parallel) != 0
        || out_bool(root, "include_reasoning", 1, param, err, &rq->include_reasoning) != 0
        || out_bool(root, "glm_boxes", 0, param, err, &rq->boxes) != 0)
    {
        return -1;
    }

    /* thinking: what the template will see (request kwargs over the server's) */
    rq->tg.thinking = 1;
    kw = glm_json_get(root, "chat_template_kwargs");
    if (kw != NULL && YAJL_IS_OBJECT(kw) && (v = glm_json_get(kw, "enable_thinking")) != NULL) {
        rq->tg.thinking = out_truthy(v);
    } else if ((v = glm_json_get(default_kwargs, "enable_thinking")) != NULL) {
        rq->tg.thinking = out_truthy(v);
    }
    v = glm_json_get(root, "thinking_token_budget");
    if (v != NULL && !YAJL_IS_NULL(v)) {
        if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0 || YAJL_GET_INTEGER(v) > INT32_MAX) {
            *param = "thinking_token_budget";
            return glm_errf(err, "'thinking_token_budget' must be a non-negative integer");
        }
        rq->tg.think_budget = (int) YAJL_GET_INTEGER(v);
    }
    rq->parse_tools = has_tools && rq->tg.choice != GLM_TOOL_CHOICE_NONE;
    rq->constrain = has_tools || (rq->tg.thinking && rq->tg.think_budget >= 0)
                    || rq->tg.so != NULL;
    return 0;
}

void
glm_out_request_free(glm_out_request *rq)
{
    glm_tools_free(rq->tools);
    rq->tools = NULL;
    glm_so_free(&rq->so);
    rq->tg.so = NULL;
}

/* ---- output helpers ------------------------------------------------------- */

static int
out_is_ws(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

static void
out_reasoning(glm_out *o, const char *p, size_t n)
{
    if (!o->rq->include_reasoning || n == 0) {
        return;
    }
    glm_str_add(&o->reasoning, p, n);
    if (o->o.stream) {
        glm_str_add(&o->d_reasoning, p, n);
    }
}

static void
out_emit_content(glm_out *o, const char *p, size_t n)
{
    if (n == 0) {
        return;
    }
    glm_str_add(&o->content, p, n);
    if (o->o.stream) {
        glm_str_add(&o->d_content, p, n);
    }
}

/* content text: whitespace waits until non-space text shows it is content */
static void
out_content(glm_out *o, const char *p, size_t n)
{
    size_t i = 0, j;

    if (o->in_box) {
        glm_str_add(&o->box_text, p, n);
    }
    while (i < n) {
        j = i;
        if (out_is_ws((unsigned char) p[i])) {
            while (j < n && out_is_ws((unsigned char) p[j])) {
                j++;
            }
            glm_str_add(&o->ws_hold, p + i, j - i);
        } else {
            while (j < n && !out_is_ws((unsigned char) p[j])) {
                j++;
            }
            if (o->after_call) {
                /* whitespace after </tool_call> is the call's formatting,
                 * unless it separates this text from text before the call:
                 * "Checking Beijing.\n<tool_call>..</tool_call>\nAlso
                 * Shanghai." keeps its "\n" */
                if (!o->content_started) {
                    o->ws_hold.len = 0;
                }
                o->after_call = 0;
            }
            out_emit_content(o, o->ws_hold.data, o->ws_hold.len);
            o->ws_hold.len = 0;
            out_emit_content(o, p + i, j - i);
            o->content_started = 1;
        }
        i = j;
    }
}

/* the stream entry for call index, appended to or started */
static out_dcall *
out_dcall_for(glm_out *o, int index, int header)
{
    out_dcall *d;

    if (!header && o->n_dcalls > 0 && o->d_calls[o->n_dcalls - 1].index == index) {
        return &o->d_calls[o->n_dcalls - 1];
    }
    if (o->n_dcalls == o->cap_dcalls) {
        int cap = o->cap_dcalls ? 2 * o->cap_dcalls : 4;
        out_dcall *p = realloc(o->d_calls, (size_t) cap * sizeof(*p));
        if (p == NULL) {
            abort();     /* as glm_str: only a host out of memory gets here */
        }
        o->d_calls = p;
        o->cap_dcalls = cap;
    }
    d = &o->d_calls[o->n_dcalls++];
    memset(d, 0, sizeof(*d));
    d->index = index;
    d->header = header;
    return d;
}

/* arguments text (JSON) of the current call */
static void
out_args(glm_out *o, const char *p, size_t n)
{
    out_call *c = &o->calls[o->cur];

    glm_str_add(&c->args, p, n);
    if (o->o.stream) {
        glm_str_add(&out_dcall_for(o, o->cur, 0)->args, p, n);
    }
}

static void
out_argss(glm_out *o, const char *z)
{
    out_args(o, z, strlen(z));
}

/* text as the inside of a JSON string */
static void
out_args_escaped(glm_out *o, const char *p, size_t n)
{
    if (n == 0) {
        return;
    }
    o->scratch.len = 0;
    glm_json_str(&o->scratch, p, n);
    out_args(o, o->scratch.data + 1, o->scratch.len - 2);
}

/* {"key":  or  , "key":  */
static void
out_key_prefix(glm_out *o)
{
    out_call *c = &o->calls[o->cur];

    out_argss(o, c->n_args == 0 ? "{" : ", ");
    o->scratch.len = 0;
    glm_json_str(&o->scratch, o->key.data ? o->key.data : "", o->key.len);
    glm_str_adds(&o->scratch, ": ");
    out_args(o, o->scratch.data, o->scratch.len);
    c->n_args++;
}

static void
out_trim(glm_str *s)
{
    size_t a = 0, b = s->len;

    while (a < b && out_is_ws((unsigned char) s->data[a])) {
        a++;
    }
    while (b > a && out_is_ws((unsigned char) s->data[b - 1])) {
        b--;
    }
    if (a > 0) {
        memmove(s->data, s->data + a, b - a);
    }
    s->len = b - a;
    if (s->data) {
        s->data[s->len] = '\0';
    }
}

/* ---- calls ----------------------------------------------------------------- */

static void
out_call_open(glm_out *o)
{
    o->ws_hold.len = 0;          /* whitespace before a call is formatting */
    o->after_call = 0;
    o->name.len = 0;
    o->cur = -1;
    if (!o->rq->tg.parallel && o->n_calls >= 1) {
        o->region = R_SKIP;
        return;
    }
    o->region = R_NAME;
}

/* the name is complete: the call exists from here */
static int
out_call_begin(glm_out *o)
{
    static const char hex[] = "0123456789abcdef";
    out_call *c;
    uint64_t a, b;
    int i;

    out_trim(&o->name);
    if (o->name.len == 0) {
        o->region = R_SKIP;
        return -1;
    }
    if (o->n_calls == o->cap_calls) {
        int cap = o->cap_calls ? 2 * o->cap_calls : 4;
        out_call *p = realloc(o->calls, (size_t) cap * sizeof(*p));
        if (p == NULL) {
            abort();
        }
        o->calls = p;
        o->cap_calls = cap;
    }
    o->cur = o->n_calls++;
    c = &o->calls[o->cur];
    memset(c, 0, sizeof(*c));
    a = glm_rng_next(&o->rng);
    b = glm_rng_next(&o->rng);
    memcpy(c->id, "chatcmpl-tool-", 14);
    for (i = 0; i < 16; i++) {
        c->id[14 + i] = hex[(a >> (4 * i)) & 15];
        c->id[30 + i] = hex[(b >> (4 * i)) & 15];
    }
    c->id[46] = '\0';
    glm_str_add(&c->name, o->name.data, o->name.len);
    c->tool = glm_tools_find(o->rq->tools, o->name.data, o->name.len);
    glm_str_add(&c->args, "", 0);
    if (o->o.stream) {
        out_dcall_for(o, o->cur, 1);
    }
    o->region = R_ARGS;
    return 0;
}

static void
out_call_end(glm_out *o)
{
    if (o->cur >= 0) {
        out_argss(o, o->calls[o->cur].n_args == 0 ? "{}" : "}");
    }
    o->cur = -1;
    o->region = R_CONTENT;
    o->after_call = 1;
    o->ws_hold.len = 0;
}

static void
out_value_begin(glm_out *o)
{
    const glm_schema *s;
    unsigned t;

    out_trim(&o->key);
    s = glm_tools_arg_schema(o->rq->tools, o->calls[o->cur].tool, o->key.data ? o->key.data : "",
                             o->key.len);
    t = s != NULL ? s->types : GLM_JT_ANY;
    o->val.len = 0;
    o->region = R_VALUE;
    if (t == GLM_JT_STR) {
        o->vmode = VM_STR;
        out_key_prefix(o);
        out_argss(o, "\"");
    } else if (!(t & GLM_JT_STR)) {
        o->vmode = VM_JSON;
    } else {
        o->vmode = VM_MIXED;
        /* "any": a JSON string literal is a string too (as vLLM's json.loads) */
        o->vallowed = t == GLM_JT_ANY ? GLM_JT_ANY : (t & ~GLM_JT_STR);
        glm_json_prefix_init(&o->jp);
    }
}

/* a mixed value turned out to be a string: send what was held */
static void
out_value_commit_string(glm_out *o)
{
    o->vmode = VM_MIXED_STR;
    out_key_prefix(o);
    out_argss(o, "\"");
    out_args_escaped(o, o->val.data, o->val.len);
    o->val.len = 0;
}

static void
out_value_text(glm_out *o, const char *p, size_t n)
{
    switch (o->vmode) {
    case VM_STR:
    case VM_MIXED_STR:
        out_args_escaped(o, p, n);
        break;
    case VM_JSON:
        glm_str_add(&o->val, p, n);
        break;
    default:
        glm_str_add(&o->val, p, n);
        if (glm_json_prefix_push(&o->jp, p, n) != 0
            || (o->jp.kind != 0 && !(o->jp.kind & o->vallowed)))
        {
            out_value_commit_string(o);
        }
        break;
    }
}

/* the value is complete (truncated: only strings are kept) */
static void
out_value_end(glm_out *o, int truncated)
{
    glm_str *s = &o->scratch;
    int kind;

    switch (o->vmode) {
    case VM_STR:
    case VM_MIXED_STR:
        out_argss(o, "\"");
        break;
    case VM_JSON:
        if (truncated) {
            break;
        }
        s->len = 0;
        kind = glm_json_normalize(o->val.data ? o->val.data : "", o->val.len, 0, s);
        if (kind < 0) {
            kind = glm_json_normalize(o->val.data ? o->val.data : "", o->val.len, 1, s);
        }
        if (kind < 0) {
            out_trim(&o->val);
            glm_json_str(s, o->val.data ? o->val.data : "", o->val.len);
        }
        {
            /* out_key_prefix uses scratch: keep the value aside */
            glm_str v = { 0 };
            glm_str_add(&v, s->data, s->len);
            out_key_prefix(o);
            out_args(o, v.data, v.len);
            glm_str_free(&v);
        }
        break;
    default:
        if (truncated) {
            break;
        }
        s->len = 0;
        kind = -1;
        if (glm_json_prefix_complete(&o->jp)) {
            kind = glm_json_normalize(o->val.data ? o->val.data : "", o->val.len, 0, s);
        }
        if (kind >= 0 && ((unsigned) kind & o->vallowed)) {
            glm_str v = { 0 };
            glm_str_add(&v, s->data, s->len);
            out_key_prefix(o);
            out_args(o, v.data, v.len);
            glm_str_free(&v);
        } else {
            out_value_commit_string(o);
            out_argss(o, "\"");
        }
        break;
    }
    o->val.len = 0;
    o->region = R_ARGS;
}

/* ---- boxes ----------------------------------------------------------------- */

static void
out_box_finish(glm_out *o)
{
    const char *p = o->box_text.data ? o->box_text.data : "";
    size_t n = o->box_text.len, i = 0;
    glm_str coords = { 0 }, pixels = { 0 }, e = { 0 };
    int groups = 0;

    o->in_box = 0;
    if (!o->rq->boxes) {
        return;
    }
    /* [x1,y1,x2,y2] (or (…), <…>) groups of four numbers, innermost */
    while (i < n) {
        double v[4];
        size_t start[4], len[4], j;
        int k = 0, ok = 1;
        if (p[i] != '[' && p[i] != '(' && p[i] != '<') {
            i++;
            continue;
        }
        j = i + 1;
        for (;;) {
            while (j < n && (out_is_ws((unsigned char) p[j]) || p[j] == ',')) {
                j++;
            }
            if (j < n && (p[j] == ']' || p[j] == ')' || p[j] == '>')) {
                break;
            }
            if (j < n && (p[j] == '-' || p[j] == '.' || (p[j] >= '0' && p[j] <= '9')) && k < 4) {
                char buf[64], *end;
                size_t m = 0;
                while (j + m < n && m < sizeof(buf) - 1
                       && (p[j + m] == '-' || p[j + m] == '.' || p[j + m] == 'e'
                           || (p[j + m] >= '0' && p[j + m] <= '9')))
                {
                    buf[m] = p[j + m];
                    m++;
                }
                buf[m] = '\0';
                v[k] = strtod(buf, &end);
                if (end == buf || (size_t) (end - buf) != m || !isfinite(v[k])) {
                    ok = 0;
                    break;
                }
                start[k] = j;
                len[k++] = m;
                j += m;
                continue;
            }
            ok = 0;
            break;
        }
        if (!ok || k != 4 || j >= n) {
            i++;
            continue;
        }
        glm_str_adds(&coords, groups ? ",[" : "[");
        glm_str_adds(&pixels, groups ? ",[" : "[");
        for (k = 0; k < 4; k++) {
            double dim = (k % 2 == 0) ? o->o.image_w : o->o.image_h;
            glm_str_addf(&coords, "%s", k ? "," : "");
            glm_str_add(&coords, p + start[k], len[k]);
            glm_str_addf(&pixels, "%s%ld", k ? "," : "", (long) lround(v[k] * dim / 1000.0));
        }
        glm_str_adds(&coords, "]");
        glm_str_adds(&pixels, "]");
        groups++;
        i = j + 1;
    }
    glm_str_addf(&e, "{\"index\":%d,\"text\":", o->n_boxes);
    glm_json_str(&e, p, n);
    glm_str_adds(&e, ",\"coords\":[");
    glm_str_add(&e, coords.data, coords.len);
    glm_str_adds(&e, "]");
    if (o->o.image_w > 0 && o->o.image_h > 0) {
        glm_str_adds(&e, ",\"pixels\":[");
        glm_str_add(&e, pixels.data, pixels.len);
        glm_str_adds(&e, "]");
    }
    glm_str_adds(&e, "}");
    if (o->n_boxes++ > 0) {
        glm_str_adds(&o->boxes, ",");
    }
    glm_str_add(&o->boxes, e.data, e.len);
    if (o->o.stream) {
        if (o->d_boxes.len > 0) {
            glm_str_adds(&o->d_boxes, ",");
        }
        glm_str_add(&o->d_boxes, e.data, e.len);
    }
    glm_str_free(&coords);
    glm_str_free(&pixels);
    glm_str_free(&e);
}

/* ---- the scanner ----------------------------------------------------------- */

static unsigned
out_region_tags(const glm_out *o)
{
    unsigned call = o->rq->parse_tools ? TB(T_CALL_OPEN) : 0;
    unsigned content = call | TB(T_BOX_OPEN) | TB(T_BOX_CLOSE)
                       | (o->swallow_think_close ? TB(T_THINK_CLOSE) : 0);

    switch (o->region) {
    case R_START:     return TB(T_THINK_OPEN) | content;
    case R_THINK:     return TB(T_THINK_CLOSE) | call;
    case R_CONTENT:   return content;
    case R_NAME:      return TB(T_KEY_OPEN) | TB(T_CALL_CLOSE);
    case R_ARGS:      return TB(T_KEY_OPEN) | TB(T_CALL_CLOSE);
    case R_KEY:       return TB(T_KEY_CLOSE) | TB(T_CALL_CLOSE);
    case R_AFTER_KEY: return TB(T_VAL_OPEN) | TB(T_KEY_OPEN) | TB(T_CALL_CLOSE);
    case R_VALUE:     return TB(T_VAL_CLOSE) | TB(T_CALL_CLOSE);
    case R_SKIP:      return TB(T_CALL_CLOSE);
    default:          return 0;
    }
}

static void
out_text(glm_out *o, const char *p, size_t n)
{
    size_t i;

    while (n > 0) {
        switch (o->region) {
        case R_START:
            /* whitespace before <think> is dropped if <think> comes */
            for (i = 0; i < n && out_is_ws((unsigned char) p[i]); i++) {
            }
            glm_str_add(&o->ws_hold, p, i);
            if (i == n) {
                return;
            }
            o->region = R_CONTENT;
            p += i;
            n -= i;
            continue;
        case R_THINK:
            out_reasoning(o, p, n);
            return;
        case R_CONTENT:
            out_content(o, p, n);
            return;
        case R_NAME:
            for (i = 0; i < n; i++) {
                if (out_is_ws((unsigned char) p[i])) {
                    if (o->name.len > 0) {
                        break;
                    }
                    continue;
                }
                glm_str_add(&o->name, p + i, 1);
            }
            if (i == n) {
                return;
            }
            out_call_begin(o);
            p += i;
            n -= i;
            continue;
        case R_KEY:
            glm_str_add(&o->key, p, n);
            return;
        case R_VALUE:
            out_value_text(o, p, n);
            return;
        default:
            /* text between tags of a call is ignored */
            return;
        }
    }
}

static void
out_tag(glm_out *o, int t)
{
    if (o->region == R_START && t != T_THINK_OPEN) {
        o->region = R_CONTENT;
    }
    switch (t) {
    case T_THINK_OPEN:
        o->ws_hold.len = 0;
        o->region = R_THINK;
        return;
    case T_THINK_CLOSE:
        if (o->region == R_THINK) {
            o->region = R_CONTENT;
        } else {
            o->swallow_think_close = 0;       /* the stray one after an implicit close */
        }
        return;
    case T_BOX_OPEN:
        out_content(o, out_tag_text[t], strlen(out_tag_text[t]));
        o->in_box = 1;
        o->box_text.len = 0;
        return;
    case T_BOX_CLOSE:
        if (o->in_box) {
            o->in_box = 0;
            out_content(o, out_tag_text[t], strlen(out_tag_text[t]));
            o->in_box = 1;
            out_box_finish(o);
        } else {
            out_content(o, out_tag_text[t], strlen(out_tag_text[t]));
        }
        return;
    case T_CALL_OPEN:
        if (o->region == R_THINK) {
            o->swallow_think_close = 1;
        }
        out_call_open(o);
        return;
    case T_KEY_OPEN:
        if (o->region == R_NAME && out_call_begin(o) != 0) {
            return;
        }
        o->key.len = 0;
        o->region = R_KEY;
        return;
    case T_KEY_CLOSE:
        o->region = R_AFTER_KEY;
        return;
    case T_VAL_OPEN:
        out_value_begin(o);
        return;
    case T_VAL_CLOSE:
        out_value_end(o, 0);
        return;
    case T_CALL_CLOSE:
        if (o->region == R_NAME && out_call_begin(o) != 0) {
            o->region = R_CONTENT;
            o->after_call = 1;
            return;
        }
        if (o->region == R_VALUE) {
            out_value_end(o, 0);
        }
        if (o->region == R_SKIP) {
            o->cur = -1;
        }
        out_call_end(o);
        return;
    default:
        return;
    }
}

/* bytes at the end of p that start an unfinished UTF-8 character */
static size_t
out_utf8_tail(const char *p, size_t n)
{
    size_t k, back;

    for (back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = (unsigned char) p[n - back];
        if ((c & 0xc0) == 0x80) {
            continue;
        }
        k = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 1;
        if (c >= 0xf5) {
            k = 1;
        }
        return k > back ? back : 0;
    }
    return 0;
}

static void
out_scan(glm_out *o, int final)
{
    const char *p = o->pend.data;
    size_t n = o->pend.len, i = 0, lim;

    if (n == 0) {
        return;
    }
    lim = final ? n : n - out_utf8_tail(p, n);
    while (i < lim) {
        const char *lt = memchr(p + i, '<', lim - i);
        unsigned mask;
        int t, partial = 0, hit = -1;

        if (lt == NULL) {
            out_text(o, p + i, lim - i);
            i = lim;
            break;
        }
        if (lt > p + i) {
            out_text(o, p + i, (size_t) (lt - (p + i)));
            i = (size_t) (lt - p);
        }
        mask = out_region_tags(o);
        for (t = 0; t < OUT_N_TAGS; t++) {
            size_t len = strlen(out_tag_text[t]);
            if (!(mask & TB(t))) {
                continue;
            }
            if (n - i >= len && memcmp(p + i, out_tag_text[t], len) == 0) {
                hit = t;
                break;
            }
            if (n - i < len && memcmp(p + i, out_tag_text[t], n - i) == 0) {
                partial = 1;
            }
        }
        if (hit >= 0) {
            i += strlen(out_tag_text[hit]);
            out_tag(o, hit);
            continue;
        }
        if (partial && !final) {
            break;              /* may still become a tag: hold it */
        }
        out_text(o, p + i, 1);
        i++;
    }
    glm_str_consume(&o->pend, i);
}

/* ---- public ---------------------------------------------------------------- */

glm_out *
glm_out_new(const glm_out_opts *opts)
{
    glm_out *o = calloc(1, sizeof(*o));

    if (o == NULL) {
        return NULL;
    }
    o->o = *opts;
    o->rq = opts->rq;
    glm_detok_init(&o->detok, opts->tok, 0);
    o->region = o->rq->tg.thinking ? R_START : R_CONTENT;
    o->rt = o->rq->tg.thinking ? 0 : 2;
    o->cur = -1;
    o->id_think_open = glm_tokenizer_token_id(opts->tok, "<think>");
    o->id_think_close = glm_tokenizer_token_id(opts->tok, "</think>");
    o->id_call_open = glm_tokenizer_token_id(opts->tok, "<tool_call>");
    o->id_box_open = glm_tokenizer_token_id(opts->tok, "<|begin_of_box|>");
    o->id_box_close = glm_tokenizer_token_id(opts->tok, "<|end_of_box|>");
    glm_rng_seed(&o->rng, opts->id_seed);
    return o;
}

void
glm_out_free(glm_out *o)
{
    int i;

    if (o == NULL) {
        return;
    }
    for (i = 0; i < o->n_calls; i++) {
        glm_str_free(&o->calls[i].name);
        glm_str_free(&o->calls[i].args);
    }
    for (i = 0; i < o->n_dcalls; i++) {
        glm_str_free(&o->d_calls[i].args);
    }
    free(o->calls);
    free(o->d_calls);
    glm_str_free(&o->pend);
    glm_str_free(&o->ws_hold);
    glm_str_free(&o->name);
    glm_str_free(&o->key);
    glm_str_free(&o->val);
    glm_str_free(&o->content);
    glm_str_free(&o->reasoning);
    glm_str_free(&o->boxes);
    glm_str_free(&o->box_text);
    glm_str_free(&o->d_content);
    glm_str_free(&o->d_reasoning);
    glm_str_free(&o->d_boxes);
    glm_str_free(&o->scratch);
    glm_tokenizer_buf_free(&o->tbuf);
    free(o);
}

void
glm_out_decode(glm_out *o, int32_t id, glm_str *text)
{
    size_t i, ws = 1;

    o->tbuf.len = 0;
    if (glm_tokenizer_is_special(o->o.tok, id) && o->o.skip_special
        && id != o->id_box_open && id != o->id_box_close)
    {
        return;
    }
    glm_detok_push(&o->detok, id, &o->tbuf, NULL);
    glm_str_add(text, o->tbuf.data, o->tbuf.len);
    /* reasoning tokens: <think> opening the output through </think> */
    if (o->rt == 0) {
        for (i = 0; i < o->tbuf.len; i++) {
            ws &= out_is_ws((unsigned char) o->tbuf.data[i]);
        }
        if (id == o->id_think_open) {
            o->rt = 1;
            o->reasoning_tokens++;
        } else if (!ws || o->tbuf.len == 0) {
            o->rt = 2;          /* text (an unfinished character is text too) */
        }
    } else if (o->rt == 1) {
        if (id == o->id_call_open && o->rq->parse_tools) {
            o->rt = 2;
        } else {
            o->reasoning_tokens++;
            if (id == o->id_think_close) {
                o->rt = 2;
            }
        }
    }
}

void
glm_out_decode_flush(glm_out *o, glm_str *text)
{
    o->tbuf.len = 0;
    if (glm_detok_flush(&o->detok, &o->tbuf, NULL) == 0) {
        glm_str_add(text, o->tbuf.data, o->tbuf.len);
    }
}

void
glm_out_feed(glm_out *o, const char *text, size_t n)
{
    if (o->finished || n == 0) {
        return;
    }
    glm_str_add(&o->pend, text, n);
    out_scan(o, 0);
}

void
glm_out_feed_token(glm_out *o, int32_t id)
{
    glm_str text = { 0 };

    glm_out_decode(o, id, &text);
    glm_out_feed(o, text.data, text.len);
    glm_str_free(&text);
}

void
glm_out_finish(glm_out *o)
{
    glm_tokenizer_buf tail = { 0 };

    if (o->finished) {
        return;
    }
    if (glm_detok_flush(&o->detok, &tail, NULL) == 0 && tail.len > 0) {
        glm_str_add(&o->pend, tail.data, tail.len);
    }
    glm_tokenizer_buf_free(&tail);
    out_scan(o, 1);
    switch (o->region) {
    case R_CONTENT:
        if (o->content_started && !o->after_call) {
            out_emit_content(o, o->ws_hold.data, o->ws_hold.len);
        }
        break;
    case R_NAME:
        break;                  /* the name never completed: no call */
    case R_VALUE:
        out_value_end(o, 1);
        /* fall through */
    case R_ARGS:
    case R_KEY:
    case R_AFTER_KEY:
        if (o->cur >= 0) {
            out_argss(o, o->calls[o->cur].n_args == 0 ? "{}" : "}");
        }
        break;
    default:
        break;
    }
    o->ws_hold.len = 0;
    o->finished = 1;
}

int
glm_out_delta(glm_out *o, glm_str *s)
{
    int members = 0, i;

    if (o->d_content.len > 0) {
        glm_str_adds(s, "\"content\":");
        glm_json_str(s, o->d_content.data, o->d_content.len);
        members++;
    }
    if (o->d_reasoning.len > 0) {
        glm_str_adds(s, members ? ",\"reasoning\":" : "\"reasoning\":");
        glm_json_str(s, o->d_reasoning.data, o->d_reasoning.len);
        glm_str_adds(s, ",\"reasoning_content\":");
        glm_json_str(s, o->d_reasoning.data, o->d_reasoning.len);
        members += 2;
    }
    if (o->n_dcalls > 0) {
        glm_str_adds(s, members ? ",\"tool_calls\":[" : "\"tool_calls\":[");
        for (i = 0; i < o->n_dcalls; i++) {
            out_dcall *d = &o->d_calls[i];
            glm_str_addf(s, "%s{\"index\":%d,", i ? "," : "", d->index);
            if (d->header) {
                glm_str_adds(s, "\"id\":");
                glm_json_strz(s, o->calls[d->index].id);
                glm_str_adds(s, ",\"type\":\"function\",\"function\":{\"name\":");
                glm_json_str(s, o->calls[d->index].name.data, o->calls[d->index].name.len);
                glm_str_adds(s, ",\"arguments\":");
            } else {
                glm_str_adds(s, "\"function\":{\"arguments\":");
            }
            glm_json_str(s, d->args.data ? d->args.data : "", d->args.len);
            glm_str_adds(s, "}}");
            glm_str_free(&d->args);
        }
        glm_str_adds(s, "]");
        o->n_dcalls = 0;
        members++;
    }
    if (o->d_boxes.len > 0) {
        glm_str_adds(s, members ? ",\"glm_boxes\":[" : "\"glm_boxes\":[");
        glm_str_add(s, o->d_boxes.data, o->d_boxes.len);
        glm_str_adds(s, "]");
        members++;
    }
    o->d_content.len = 0;
    o->d_reasoning.len = 0;
    o->d_boxes.len = 0;
    return members;
}

void
glm_out_message(const glm_out *o, glm_str *s)
{
    glm_out_message_echo(o, NULL, 0, s);
}

void
glm_out_message_echo(const glm_out *o, const char *echo, size_t echo_len, glm_str *s)
{
    int i;

    glm_str_adds(s, "\"content\":");
    if (echo_len > 0) {
        glm_str whole = { 0 };

        glm_str_add(&whole, echo, echo_len);
        glm_str_add(&whole, o->content.data, o->content.len);
        glm_json_str(s, whole.data, whole.len);
        glm_str_free(&whole);
    } else if (o->content.len > 0) {
        glm_json_str(s, o->content.data, o->content.len);
    } else {
        glm_str_adds(s, "null");
    }
    glm_str_adds(s, ",\"refusal\":null,\"annotations\":null,\"audio\":null,"
                 "\"function_call\":null,\"tool_calls\":[");
    for (i = 0; i < o->n_calls; i++) {
        const out_call *c = &o->calls[i];
        glm_str_adds(s, i ? ",{\"id\":" : "{\"id\":");
        glm_json_strz(s, c->id);
        glm_str_adds(s, ",\"type\":\"function\",\"function\":{\"name\":");
        glm_json_str(s, c->name.data, c->name.len);
        glm_str_adds(s, ",\"arguments\":");
        glm_json_str(s, c->args.data ? c->args.data : "", c->args.len);
        glm_str_adds(s, "}}");
    }
    glm_str_adds(s, "],\"reasoning\":");
    if (o->reasoning.len > 0) {
        glm_json_str(s, o->reasoning.data, o->reasoning.len);
        glm_str_adds(s, ",\"reasoning_content\":");
        glm_json_str(s, o->reasoning.data, o->reasoning.len);
    } else {
        glm_str_adds(s, "null,\"reasoning_content\":null");
    }
    if (o->rq->boxes) {
        glm_str_adds(s, ",\"glm_boxes\":[");
        glm_str_add(s, o->boxes.data, o->boxes.len);
        glm_str_adds(s, "]");
    }
}

const char *
glm_out_finish_reason(const glm_out *o, const char *engine_reason)
{
    if (strcmp(engine_reason, "stop") == 0 && o->n_calls > 0
        && o->rq->tg.choice != GLM_TOOL_CHOICE_NAMED)
    {
        return "tool_calls";
    }
    return engine_reason;
}

int
glm_out_reasoning_tokens(const glm_out *o)
{
    return o->reasoning_tokens;
}

int
glm_out_n_calls(const glm_out *o)
{
    return o->n_calls;
}
