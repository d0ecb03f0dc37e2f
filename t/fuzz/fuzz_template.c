/*
 * fuzz_template.c: libFuzzer harness for the chat-template parser and
 * renderer.  The input is template text; it is parsed, and when it parses it
 * is rendered through the request path (glm_chat_template_render) against a
 * fixed small request: system, user (with list content: text, image, video),
 * assistant with reasoning and a tool call, a tool result, two tools, and
 * chat_template_kwargs.  Limits are tightened so that every execution stays
 * short; hitting a limit is an ordinary (one-line) error.  What the fuzzer
 * looks for: crashes, sanitizer reports, hangs, leaks, and errors that are
 * not one line.
 *
 * Build and run: see README.md beside this file.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/chat_template.h"
#include "text/jinja.h"

static const char request[] =
    "{\"messages\": ["
    "{\"role\": \"system\", \"content\": \"You are helpful.\"},"
    "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"Hi \\u00e9\"},"
    " {\"type\": \"image\"}, {\"type\": \"video\"}]},"
    "{\"role\": \"assistant\", \"reasoning_content\": \"think\", \"content\": \"<think>x</think>ok\","
    " \"tool_calls\": [{\"id\": \"c1\", \"type\": \"function\", \"function\": {\"name\": \"f\","
    " \"arguments\": {\"a\": 1, \"b\": [1.5, null, true], \"c\": {\"d\": \"e\"}}}}]},"
    "{\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": \"{\\\"r\\\": 2}\"},"
    "{\"role\": \"user\", \"content\": \"Again /nothink\"}],"
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"description\": \"d\","
    " \"parameters\": {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}},"
    " \"required\": [\"a\"]}}}, {\"type\": \"function\", \"function\": {\"name\": \"g\"}}],"
    " \"add_generation_prompt\": true,"
    " \"chat_template_kwargs\": {\"enable_thinking\": false, \"n\": 3, \"s\": \"str\"}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    glm_jinja_limits limits = {0};
    glm_chat_template *ct;
    glm_jinja_ctx *ctx;
    glm_err err;
    const char *out;
    size_t out_len;
    struct tm now;

    if (size > 64 * 1024) {
        return 0;
    }
    ct = glm_chat_template_from_source((const char *) data, size, "fuzz", &err);
    if (ct == NULL) {
        if (strchr(err.msg, '\n') != NULL) {
            abort();        /* errors must be one line */
        }
        return 0;
    }
    glm_chat_template_set_special_token(ct, "bos_token", "<s>", &err);
    glm_chat_template_set_special_token(ct, "eos_token", "</s>", &err);
    limits.max_output = 256 * 1024;
    limits.max_memory = 32 * 1024 * 1024;
    limits.max_steps = 200000;
    ctx = glm_jinja_ctx_new(&limits, &err);
    memset(&now, 0, sizeof(now));
    now.tm_year = 126;
    now.tm_mday = 1;
    glm_jinja_ctx_set_now(ctx, &now);
    if (glm_chat_template_render(ct, ctx, request, sizeof(request) - 1, 0, &out, &out_len,
                                 &err) != 0) {
        if (strchr(err.msg, '\n') != NULL) {
            abort();
        }
    } else if (strlen(out) != out_len && memchr(out, 0, out_len) == NULL) {
        abort();            /* the output must be NUL-terminated at its length */
    }
    glm_jinja_ctx_free(ctx);
    glm_chat_template_free(ct);
    return 0;
}
