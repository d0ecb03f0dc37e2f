/*
 * chat_template.h: a checkpoint's chat template, loaded and parsed once, and
 * the prompt it renders for an OpenAI chat-completions request, byte-for-byte
 * what transformers' tokenizer.apply_chat_template(..., tokenize=False)
 * returns for the same inputs.
 *
 * Loading (glm_chat_template_load), in transformers' order of precedence:
 *   1. the override file (the engine's --chat-template FILE), if given;
 *   2. DIR/chat_template.jinja (plus DIR/additional_chat_templates/
 *      tool_use.jinja as the "tool_use" template, if present);
 *   3. the "chat_template" field of DIR/chat_template.json (processor file);
 *   4. the "chat_template" field of DIR/tokenizer_config.json: a string, or a
 *      list of {"name", "template"} from which "default" is used (and
 *      "tool_use" when the request has tools, as transformers picks it).
 * The special-token strings transformers passes to every template (bos_token,
 * eos_token, unk_token, sep_token, pad_token, cls_token, mask_token) come from
 * tokenizer_config.json (a string or an AddedToken object {"content": ...}),
 * then special_tokens_map.json for those still missing.  Everything is
 * parsed at load time: an unsupported construct is an error naming the file,
 * line and construct.
 *
 * Rendering (glm_chat_template_render) maps a request body onto
 * apply_chat_template's arguments:
 *   messages               -> messages (required, a non-empty list of objects;
 *                             keys whose value is null are dropped, and
 *                             reasoning_content / thinking / reasoning are
 *                             aliased as transformers does)
 *   tools, documents       -> tools, documents (None when absent or null)
 *   add_generation_prompt  -> add_generation_prompt (default true)
 *   continue_final_message -> continue_final_message (default false; the
 *                             final message is left open, as transformers
 *                             does it: same checks, same trimming)
 *   chat_template_kwargs   -> extra template variables (they override the
 *                             special tokens; messages/tools/documents/
 *                             add_generation_prompt cannot be overridden)
 * With flags 0 this is exactly transformers.  The GLM_CHAT_TEMPLATE_* flags add
 * the rewriting vLLM's OpenAI server does before it calls transformers (what
 * `vllm serve` sends to the template), for serving.
 *
 * Threads: a loaded template is read-only; render with one glm_jinja_ctx per
 * thread.
 */
#ifndef GLM_CHAT_TEMPLATE_H
#define GLM_CHAT_TEMPLATE_H

#include <stddef.h>

#include <yajl/yajl_tree.h>

#include "jinja.h"
#include "util/util.h"

typedef struct glm_chat_template glm_chat_template;

/* assistant tool_calls[].function.arguments given as a JSON string are parsed
 * into an object, and missing/empty ones become {} (vLLM) */
#define GLM_CHAT_TEMPLATE_PARSE_TOOL_ARGS  0x1u
/* content parts image_url/video_url/input_audio (and image, video, audio)
 * become {"type": "image"|"video"|"audio"}, text parts {"type": "text",
 * "text": ...} (vLLM's "openai" content format) */
#define GLM_CHAT_TEMPLATE_MEDIA_PARTS      0x2u
/* what the server uses */
#define GLM_CHAT_TEMPLATE_SERVE \
    (GLM_CHAT_TEMPLATE_PARSE_TOOL_ARGS | GLM_CHAT_TEMPLATE_MEDIA_PARTS)

/* model_dir may be NULL when override_path is given (no special tokens then).
 * NULL with err when there is no template or it does not parse. */
glm_chat_template *glm_chat_template_load(const char *model_dir, const char *override_path,
                                          glm_err *err);
/* A template from source text; no special tokens until set. */
glm_chat_template *glm_chat_template_from_source(const char *src, size_t len, const char *name,
                                                 glm_err *err);
void glm_chat_template_free(glm_chat_template *ct);

/* Where the template came from, e.g. "DIR/chat_template.jinja". */
const char *glm_chat_template_origin(const glm_chat_template *ct);
/* The default template (for direct glm_jinja_render use). */
const glm_jinja_template *glm_chat_template_jinja(const glm_chat_template *ct);

/* Special tokens by attribute name ("bos_token" ...); NULL when unset. */
const char *glm_chat_template_special_token(const glm_chat_template *ct, const char *name);
/* Sets (value != NULL) or clears one of the seven attributes. */
int glm_chat_template_set_special_token(glm_chat_template *ct, const char *name,
                                        const char *value, glm_err *err);

/*
 * Renders the prompt for a chat-completions request body (JSON) into ctx:
 * *out (NUL-terminated) stays valid until ctx is reset or freed.  flags: 0
 * (transformers) or GLM_CHAT_TEMPLATE_* bits.  -1 with a one-line err for a
 * malformed request or a render error (raise_exception, type error, limit):
 * a 400 for that request.
 */
int glm_chat_template_render(const glm_chat_template *ct, glm_jinja_ctx *ctx,
                             const char *body, size_t len, unsigned flags,
                             const char **out, size_t *out_len, glm_err *err);

/*
 * The server's entry point: the same as glm_chat_template_render with
 * GLM_CHAT_TEMPLATE_SERVE, on the request body as it came (not a yajl tree,
 * whose strings end at a U+0000), with the server's default
 * chat_template_kwargs (an object, or NULL) under the request's own.  Uses a
 * context of its own, so any thread may call it.  *out is malloc'd (free()
 * it); the prompt may hold NUL bytes: *out_len is its length.
 */
int glm_chat_template_render_request(const glm_chat_template *ct, const char *body,
                                     size_t len, yajl_val default_kwargs, char **out,
                                     size_t *out_len, glm_err *err);

/*
 * The string member `key` of the JSON object in body, with its length (a
 * U+0000 inside stays), in a context of its own: *out is malloc'd.  0 when
 * found, 1 when absent, -1 with err when body is not JSON or the member is not
 * a string.
 */
int glm_json_string_member(const char *body, size_t len, const char *key, char **out,
                           size_t *out_len, glm_err *err);

/* CLI: render-template --model DIR|--template FILE --request JSON|--request-file F
 *      [--transformers] [--now YYYY-MM-DDTHH:MM:SS]  (argv[0] = "render-template") */
int glm_cmd_render_template(int argc, char **argv);

#endif
