/*
 * request_fields.c: the request fields of vLLM's ChatCompletionRequest and
 * CompletionRequest that this server refuses with a 400 instead of letting
 * them pass unheeded (README: "Request fields, field by field"): the ones
 * vLLM itself refuses (a request chat template without
 * --trust-request-chat-template, a priority without priority scheduling,
 * logits_processors, suffix, an unknown reasoning_effort), in vLLM's words,
 * and the ones vLLM honours but this server does not implement (beam
 * search, watermarking, repetition detection, prompt embeddings), saying
 * so.  The chat messages are checked here too: a message GLM's template
 * would drop without a word (no role, a role it does not render) or a
 * content part it cannot read is a 400 naming messages[i] (and .content[j]).
 *
 * The fields honoured are read where they act (openai.c, completions.c,
 * the scheduler); unknown fields are accepted and ignored, as vLLM does.
 */
#include "openai.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int glm_fields_reject(glm_req *req, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int glm_fields_messages(glm_req *req, yajl_val messages);
static int glm_fields_part(glm_req *req, size_t i, size_t j, yajl_val part);
static int glm_fields_set(yajl_val v);

/* vLLM's reasoning_effort literals */
static const char *const glm_reasoning_efforts[] = {
    "none", "minimal", "low", "medium", "high", "xhigh", "max", NULL
};

/* the roles GLM-4.5's chat template renders */
static const char *const glm_roles[] = { "system", "user", "assistant", "tool", NULL };

/* content parts read as text, and the member that holds it (vLLM's
 * TEXT_PART_TYPES) */
static const struct {
    const char *type, *key;
} glm_text_parts[] = {
    { "text", "text" }, { "input_text", "text" }, { "output_text", "text" },
    { "refusal", "refusal" }, { "thinking", "thinking" }, { NULL, NULL }
};

/* content parts vLLM reads that GLM-4.5 has no use for */
static const char *const glm_unsupported_parts[] = {
    "input_audio", "audio_url", "audio_embeds", "image_embeds", "video_embeds",
    "prompt_embeds", "image_pil", "input_image", "tool_reference", NULL
};

static int
glm_fields_reject(glm_req *req, const char *param, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    glm_req_error(req, 400, "BadRequestError", param, "%s", msg);
    return -1;
}

/* A field given a value that asks for something: not null, not false, not
 * an empty list or object (vLLM's truthiness where it tests one). */
static int
glm_fields_set(yajl_val v)
{
    if (v == NULL || YAJL_IS_NULL(v) || YAJL_IS_FALSE(v)) {
        return 0;
    }
    if (YAJL_IS_ARRAY(v)) {
        return v->u.array.len > 0;
    }
    if (YAJL_IS_OBJECT(v)) {
        return v->u.object.len > 0;
    }
    return 1;
}

int
glm_request_fields_check(glm_server *srv, glm_req *req, yajl_val root, uint32_t op)
{
    yajl_val v;
    size_t i;

    /* both endpoints */
    v = glm_req_field(root, "priority");
    if (v != NULL) {
        if (!YAJL_IS_INTEGER(v)) {
            return glm_fields_reject(req, "priority", "'priority' must be an integer");
        }
        if (YAJL_GET_INTEGER(v) != 0) {
            return glm_fields_reject(req, NULL, "Got priority %lld but Priority scheduling"
                                     " is not enabled.", (long long) YAJL_GET_INTEGER(v));
        }
    }
    if (glm_fields_set(glm_req_field(root, "logits_processors"))) {
        return glm_fields_reject(req, NULL, "The `logits_processors` argument is not"
                                 " supported by this server. See --logits-processor-pattern"
                                 " engine argugment for more information.");
    }
    v = glm_req_field(root, "use_beam_search");
    if (v != NULL && !YAJL_IS_FALSE(v)) {
        return glm_fields_reject(req, "use_beam_search", "beam search is not supported by"
                                 " this server: leave use_beam_search false and use n for"
                                 " several samples");
    }
    v = glm_req_field(root, "watermarking");
    if (v != NULL && !YAJL_IS_FALSE(v)) {
        return glm_fields_reject(req, "watermarking", "watermarking is not supported by this"
                                 " server");
    }
    if (glm_req_field(root, "repetition_detection") != NULL) {
        return glm_fields_reject(req, "repetition_detection", "repetition_detection is not"
                                 " supported by this server: use stop strings, max_tokens or"
                                 " repetition_penalty");
    }
    v = glm_req_field(root, "routed_experts_prompt_start");
    if (v != NULL && (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0)) {
        return glm_fields_reject(req, "routed_experts_prompt_start",
                                 "'routed_experts_prompt_start' must be an integer >= 0");
    }

    if (op == GLM_OP_COMPLETIONS) {
        if (glm_req_field(root, "suffix") != NULL) {
            return glm_fields_reject(req, NULL, "suffix is not currently supported");
        }
        if (glm_req_field(root, "prompt_embeds") != NULL) {
            return glm_fields_reject(req, "prompt_embeds", "You must set"
                                     " `--enable-prompt-embeds` to input `prompt_embeds`."
                                     " (this server takes no prompt embeddings)");
        }
        return 0;
    }

    /* chat */
    if (glm_request_template_check(srv, req, root) != 0) {
        return -1;
    }
    v = glm_req_field(root, "reasoning_effort");
    if (v != NULL) {
        for (i = 0; YAJL_IS_STRING(v) && glm_reasoning_efforts[i] != NULL; i++) {
            if (strcmp(v->u.string, glm_reasoning_efforts[i]) == 0) {
                break;
            }
        }
        if (!YAJL_IS_STRING(v) || glm_reasoning_efforts[i] == NULL) {
            return glm_fields_reject(req, "reasoning_effort", "reasoning_effort: Input should"
                                     " be 'none', 'minimal', 'low', 'medium', 'high', 'xhigh'"
                                     " or 'max'");
        }
    }
    v = glm_req_field(root, "media_io_kwargs");
    if (v != NULL) {
        yajl_val video = glm_req_field(v, "video");
        if (!YAJL_IS_OBJECT(v) || v->u.object.len != (video != NULL ? 1u : 0u)
            || (video != NULL && (!YAJL_IS_OBJECT(video) || video->u.object.len != 1
                                  || glm_req_field(video, "num_frames") == NULL)))
        {
            return glm_fields_reject(req, "media_io_kwargs", "media_io_kwargs: only"
                                     " {\"video\": {\"num_frames\": N}} is supported");
        }
    }
    return glm_fields_messages(req, glm_req_field(root, "messages"));
}

int
glm_request_template_check(glm_server *srv, glm_req *req, yajl_val root)
{
    yajl_val kw = glm_req_field(root, "chat_template_kwargs");
    yajl_val v = glm_req_field(root, "chat_template");

    if ((v != NULL || (kw != NULL && YAJL_IS_OBJECT(kw)
                       && glm_req_field(kw, "chat_template") != NULL))
        && !srv->o.trust_request_chat_template)
    {
        return glm_fields_reject(req, NULL, "Chat template is passed with request, but"
                                 " --trust-request-chat-template is not set. Refused request"
                                 " with untrusted chat template.");
    }
    if (v != NULL && !YAJL_IS_STRING(v)) {
        return glm_fields_reject(req, "chat_template", "'chat_template' must be a string");
    }
    return 0;
}

static int
glm_fields_messages(glm_req *req, yajl_val messages)
{
    size_t i, j, k;

    for (i = 0; messages != NULL && YAJL_IS_ARRAY(messages) && i < messages->u.array.len;
         i++)
    {
        yajl_val m = messages->u.array.values[i], role, content;

        if (!YAJL_IS_OBJECT(m)) {
            return glm_fields_reject(req, "messages", "messages[%zu] must be an object with a"
                                     " 'role'", i);
        }
        role = glm_req_field(m, "role");
        if (role == NULL) {
            return glm_fields_reject(req, "messages", "messages[%zu] has no 'role': give one"
                                     " of system, user, assistant or tool", i);
        }
        if (!YAJL_IS_STRING(role)) {
            return glm_fields_reject(req, "messages", "messages[%zu]: 'role' must be a"
                                     " string: system, user, assistant or tool", i);
        }
        for (k = 0; glm_roles[k] != NULL && strcmp(glm_roles[k], role->u.string) != 0; k++) {
        }
        if (glm_roles[k] == NULL) {
            return glm_fields_reject(req, "messages", "messages[%zu]: unknown role '%s': this"
                                     " model's chat template renders system, user, assistant"
                                     " and tool messages only", i, role->u.string);
        }
        content = glm_req_field(m, "content");
        if (content == NULL || YAJL_IS_STRING(content)) {
            continue;
        }
        if (!YAJL_IS_ARRAY(content)) {
            return glm_fields_reject(req, "messages", "messages[%zu]: 'content' must be a"
                                     " string, a list of content parts, or null", i);
        }
        for (j = 0; j < content->u.array.len; j++) {
            if (glm_fields_part(req, i, j, content->u.array.values[j]) != 0) {
                return -1;
            }
        }
    }
    return 0;
}

/* One content part: text-like (with its text member a string or null),
 * an image or a video, or a string; anything else is a 400. */
static int
glm_fields_part(glm_req *req, size_t i, size_t j, yajl_val part)
{
    yajl_val type, text;
    size_t k;

    if (YAJL_IS_STRING(part)) {
        return 0;
    }
    if (!YAJL_IS_OBJECT(part)) {
        return glm_fields_reject(req, "messages", "messages[%zu].content[%zu] must be a"
                                 " string or an object with a 'type'", i, j);
    }
    type = glm_req_field(part, "type");
    if (type == NULL) {
        if (glm_req_field(part, "image_url") != NULL
            || glm_req_field(part, "video_url") != NULL)
        {
            return 0;           /* vLLM's untyped shorthands */
        }
        return glm_fields_reject(req, "messages", "messages[%zu].content[%zu]: Missing"
                                 " 'type' field in multimodal part.", i, j);
    }
    if (!YAJL_IS_STRING(type)) {
        return glm_fields_reject(req, "messages", "messages[%zu].content[%zu]: 'type' must"
                                 " be a string", i, j);
    }
    for (k = 0; glm_text_parts[k].type != NULL; k++) {
        if (strcmp(type->u.string, glm_text_parts[k].type) == 0) {
            text = glm_req_field(part, glm_text_parts[k].key);
            if (text != NULL && !YAJL_IS_STRING(text)) {
                return glm_fields_reject(req, "messages", "messages[%zu].content[%zu]: '%s'"
                                         " must be a string", i, j, glm_text_parts[k].key);
            }
            return 0;
        }
    }
    if (strcmp(type->u.string, "image_url") == 0 || strcmp(type->u.string, "video_url") == 0) {
        return 0;               /* the media code reads and checks them */
    }
    for (k = 0; glm_unsupported_parts[k] != NULL; k++) {
        if (strcmp(type->u.string, glm_unsupported_parts[k]) == 0) {
            return glm_fields_reject(req, "messages", "messages[%zu].content[%zu]: content"
                                     " parts of type '%s' are not supported by this server"
                                     " (GLM-4.5 reads text, images and videos)", i, j,
                                     type->u.string);
        }
    }
    return glm_fields_reject(req, "messages", "messages[%zu].content[%zu]: Unsupported chat"
                             " content part type: '%s'. Supported types: image_url,"
                             " input_text, output_text, refusal, text, thinking, video_url.",
                             i, j, type->u.string);
}
