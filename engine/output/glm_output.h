/*
 * glm_output.h: what a GLM-4.5 turn means, as OpenAI fields: reasoning,
 * content, tool calls and grounding boxes, parsed in one pass as tokens
 * arrive, written as streaming deltas and as the final message.
 *
 * The rules (SERVING-API.md sections 3-6 and 9 say why each one matters):
 *
 * Reasoning.  The generation prompt is "<|assistant|>"; with thinking on the
 *   model opens "<think>", with enable_thinking=false the prompt already ends
 *   "<think></think>".  So: with thinking on, reasoning is the text after a
 *   "<think>" that opens the output (whitespace before it is dropped) up to
 *   "</think>"; output that does not open with "<think>" is all content (a
 *   model that skips thinking never has its answer put in reasoning, unlike
 *   vLLM's R1-style parser); a turn cut off inside "<think>" has reasoning
 *   and no content.  With thinking off everything is content.  Reasoning is
 *   sent as both "reasoning" and "reasoning_content"; include_reasoning=false
 *   drops it.  usage reasoning_tokens counts the tokens from "<think>" to
 *   "</think>" inclusive (to the end when never closed).
 * Tool calls (tools given and tool_choice not "none").  A call is
 *   "<tool_call>NAME" (up to whitespace or a tag), then pairs
 *   "<arg_key>K</arg_key>" "<arg_value>V</arg_value>", then "</tool_call>";
 *   text between the tags is ignored.  A "<tool_call>" inside thinking ends
 *   the thinking there (GLM does this at long context; vLLM loses the call)
 *   and a "</think>" that follows later is dropped.  Arguments are the JSON
 *   object {"K": V, ...} (Python json.dumps spacing), streamed as they are
 *   read: the name once complete (with a fresh id chatcmpl-tool-<32 hex>),
 *   then fragments that concatenate to the object; string values stream
 *   character by character (only a possible partial closing tag and an
 *   incomplete UTF-8 character are held back).  V is typed by the key's
 *   schema: a schema that accepts only strings keeps V verbatim; one that
 *   accepts no string parses V as JSON (stripped; then Python literals;
 *   else V stays a string); one that accepts strings and other types, or an
 *   unknown key, types V as JSON of an allowed non-string type when it is
 *   exactly that (so ["string","null"] gives null for "null" and "abc" for
 *   abc) and as the verbatim string otherwise, deciding as early as the text
 *   allows.  parallel_tool_calls=false keeps only the first call.  A call
 *   cut off by the end of the turn is closed: a string value being read
 *   ends where the text ended, a non-string value not yet complete is
 *   dropped, the object is closed; a call whose name was not complete is
 *   dropped.  finish_reason "stop" becomes "tool_calls" when a call was
 *   made (not for a named tool_choice, as OpenAI and vLLM).
 * Content is the text outside reasoning and calls, where whitespace that
 *   touches a call (before "<tool_call>", after "</tool_call>") is dropped
 *   and whitespace-only content is null; streamed content concatenates to
 *   the same string.
 * Boxes.  "<|begin_of_box|>…<|end_of_box|>" stay in content (they are
 *   special tokens, kept whatever skip_special_tokens says).  With the
 *   request's "glm_boxes": true each box is also returned in "glm_boxes":
 *   {"index", "text", "coords": [[x1,y1,x2,y2],...] (the model's 0-1000
 *   values), "pixels": [[...]] (rounded, when the image size is known)}.
 *
 * The parser reads text, not token ids, so it works whatever
 * skip_special_tokens is: glm_out_decode turns ids into the text it wants
 * (tags and box markers always; other special tokens only when the request
 * keeps them).  Cost per token is flat: each byte is looked at a bounded
 * number of times, nothing is re-parsed.
 */
#ifndef GLM_OUTPUT_H
#define GLM_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

#include "json_schema.h"
#include "text/tokenizer.h"
#include "tool_grammar.h"
#include "util/strbuf.h"
#include "util/util.h"

/* What a request asks of the output (shared by its choices). */
typedef struct {
    glm_tools     *tools;            /* owned; NULL when the request has none (a
                                      * structured-output schema lives here too) */
    glm_so         so;               /* response_format / structured_outputs */
    glm_tg_opts    tg;               /* tool_choice, parallel, thinking, budget */
    int            parse_tools;      /* calls are parsed (tools, choice != none) */
    int            include_reasoning;
    int            boxes;            /* "glm_boxes": true */
    int            constrain;        /* attach a tool_grammar to each choice */
} glm_out_request;

/*
 * Reads tools, tool_choice, parallel_tool_calls, response_format and
 * structured_outputs (structured.h), include_reasoning,
 * chat_template_kwargs.enable_thinking (over default_kwargs, with Jinja's
 * truthiness, as the template sees it), thinking_token_budget and glm_boxes
 * from a chat request.  -1 with err and *param (the field) for a 400, with
 * vLLM's rules: tool_choice without tools, a named tool that is not in
 * tools, malformed values.  Free with glm_out_request_free even on error.
 */
int glm_out_request_parse(glm_out_request *rq, yajl_val root, yajl_val default_kwargs,
                          const char **param, glm_err *err);
void glm_out_request_free(glm_out_request *rq);

typedef struct {
    const glm_out_request *rq;       /* must outlive the parser */
    const glm_tokenizer   *tok;
    int            skip_special;     /* the request's skip_special_tokens */
    int            stream;           /* record deltas for glm_out_delta */
    int            image_w, image_h; /* 0: unknown (no pixel boxes) */
    uint64_t       id_seed;          /* tool-call ids */
} glm_out_opts;

typedef struct glm_out glm_out;

/* One choice's parser; NULL when out of memory. */
glm_out *glm_out_new(const glm_out_opts *o);
void glm_out_free(glm_out *o);

/* The text of one sampled token as the parser reads it (appended to text;
 * may be empty while a UTF-8 character is incomplete).  Counts the token
 * (reasoning_tokens).  Do not pass stop/EOS tokens. */
void glm_out_decode(glm_out *o, int32_t id, glm_str *text);
/* The end of the token stream for the decoder: an unfinished UTF-8
 * character becomes U+FFFD (appended to text).  glm_out_finish does this
 * itself; call it first only when the text goes through something else
 * (stop strings) before glm_out_feed. */
void glm_out_decode_flush(glm_out *o, glm_str *text);
/* Parses text, split anywhere. */
void glm_out_feed(glm_out *o, const char *text, size_t n);
/* glm_out_decode then glm_out_feed. */
void glm_out_feed_token(glm_out *o, int32_t id);
/* The turn ended: flushes held text and closes what is open (see above). */
void glm_out_finish(glm_out *o);

/* Streaming: appends the members of a delta object for everything parsed
 * since the last call, e.g.  "content":"..","reasoning":"..",
 * "reasoning_content":"..","tool_calls":[...],"glm_boxes":[...]  (no braces,
 * no leading comma) and returns how many members it wrote (0: nothing new,
 * send no chunk unless it is the final one). */
int glm_out_delta(glm_out *o, glm_str *s);

/* Non-streaming: appends the message members after "role":
 * "content":..,"refusal":null,"annotations":null,"audio":null,
 * "function_call":null,"tool_calls":[..],"reasoning":..,"reasoning_content":..
 * [,"glm_boxes":[..]]. */
void glm_out_message(const glm_out *o, glm_str *s);
/* The same with echo (a chat request's "echo") before the content. */
void glm_out_message_echo(const glm_out *o, const char *echo, size_t echo_len, glm_str *s);

/* "tool_calls" for an engine "stop" when calls were made (auto/required),
 * else engine_reason. */
const char *glm_out_finish_reason(const glm_out *o, const char *engine_reason);
int glm_out_reasoning_tokens(const glm_out *o);
int glm_out_n_calls(const glm_out *o);

#endif
