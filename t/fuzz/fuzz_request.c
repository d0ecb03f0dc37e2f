/*
 * fuzz_request.c: libFuzzer harness for the request side: the input is an
 * OpenAI chat-completions body (what a client sends), rendered with the
 * GLM-4.5V test checkpoint's template in serving mode
 * (GLM_CHAT_TEMPLATE_SERVE: tool-argument JSON strings parsed, media parts
 * rewritten), so malformed JSON, odd shapes, huge numbers and deep nesting
 * all go through the path the server runs for every request.  Aborts on
 * crashes, sanitizer reports, leaks and multi-line errors.
 *
 * Build and run: see README.md beside this file.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/chat_template.h"
#include "text/jinja.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static glm_chat_template *ct;   /* loaded once: read-only after loading */
    glm_jinja_limits limits = {0};
    glm_jinja_ctx *ctx;
    glm_err err;
    const char *out;
    size_t out_len;

    if (ct == NULL) {
        ct = glm_chat_template_load("t/fixtures/glm45v-tiny", NULL, &err);
        if (ct == NULL) {
            abort();    /* run from the repository root */
        }
    }
    limits.max_output = 1024 * 1024;
    limits.max_memory = 64 * 1024 * 1024;
    limits.max_steps = 1000000;
    ctx = glm_jinja_ctx_new(&limits, &err);
    if (glm_chat_template_render(ct, ctx, (const char *) data, size, GLM_CHAT_TEMPLATE_SERVE,
                                 &out, &out_len, &err) != 0) {
        if (strchr(err.msg, '\n') != NULL) {
            abort();
        }
    }
    glm_jinja_ctx_free(ctx);
    return 0;
}
