/*
 * chat_template.c: see chat_template.h.  Loading follows transformers'
 * from_pretrained precedence; rendering follows apply_chat_template and
 * render_jinja_template (transformers 5.x) step by step, so the template
 * sees the same variables in the same shape.
 */
#include "chat_template.h"
#include "util/json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#define GLM_CT_NSPECIAL 7

/* transformers' SPECIAL_TOKENS_ATTRIBUTES, in its order */
static const char *const glm_ct_special_names[GLM_CT_NSPECIAL] = {
    "bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"
};

struct glm_chat_template {
    glm_jinja_template *tpl;         /* "default" */
    glm_jinja_template *tool_use;    /* "tool_use", or NULL */
    char *origin;
    char *special[GLM_CT_NSPECIAL];
};

static int
glm_ct_special_index(const char *name)
{
    int i;

    for (i = 0; i < GLM_CT_NSPECIAL; i++) {
        if (strcmp(glm_ct_special_names[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

void
glm_chat_template_free(glm_chat_template *ct)
{
    int i;

    if (ct == NULL) {
        return;
    }
    glm_jinja_free(ct->tpl);
    glm_jinja_free(ct->tool_use);
    free(ct->origin);
    for (i = 0; i < GLM_CT_NSPECIAL; i++) {
        free(ct->special[i]);
    }
    free(ct);
}

glm_chat_template *
glm_chat_template_from_source(const char *src, size_t len, const char *name, glm_err *err)
{
    glm_chat_template *ct = calloc(1, sizeof(*ct));

    if (ct == NULL) {
        glm_errf(err, "out of memory");
        return NULL;
    }
    ct->origin = strdup(name != NULL ? name : "template");
    if (ct->origin == NULL) {
        glm_chat_template_free(ct);
        glm_errf(err, "out of memory");
        return NULL;
    }
    ct->tpl = glm_jinja_parse(src, len, ct->origin, err);
    if (ct->tpl == NULL) {
        glm_chat_template_free(ct);
        return NULL;
    }
    return ct;
}

const char *
glm_chat_template_origin(const glm_chat_template *ct)
{
    return ct->origin;
}

const glm_jinja_template *
glm_chat_template_jinja(const glm_chat_template *ct)
{
    return ct->tpl;
}

const char *
glm_chat_template_special_token(const glm_chat_template *ct, const char *name)
{
    int i = glm_ct_special_index(name);

    return i < 0 ? NULL : ct->special[i];
}

int
glm_chat_template_set_special_token(glm_chat_template *ct, const char *name, const char *value,
                                    glm_err *err)
{
    int i = glm_ct_special_index(name);
    char *copy = NULL;

    if (i < 0) {
        return glm_errf(err, "'%s' is not a special token attribute", name);
    }
    if (value != NULL && (copy = strdup(value)) == NULL) {
        return glm_errf(err, "out of memory");
    }
    free(ct->special[i]);
    ct->special[i] = copy;
    return 0;
}


/* ---- loading ---------------------------------------------------------------------- */

static yajl_val
glm_ct_read_json(const char *path, glm_err *err)
{
    char *text, ebuf[256];
    yajl_val v;

    text = glm_read_file(path, NULL, err);
    if (text == NULL) {
        return NULL;
    }
    ebuf[0] = '\0';
    v = yajl_tree_parse(text, ebuf, sizeof(ebuf));
    free(text);
    if (v == NULL) {
        char *nl = strchr(ebuf, '\n');

        if (nl != NULL) {
            *nl = '\0';
        }
        glm_errf(err, "%s: invalid JSON: %s", path, ebuf[0] ? ebuf : "parse error");
        return NULL;
    }
    return v;
}

/* A special token entry: a string or an AddedToken object {"content": ...}. */
static int
glm_ct_take_specials(glm_chat_template *ct, yajl_val cfg, const char *path, glm_err *err)
{
    int i;

    for (i = 0; i < GLM_CT_NSPECIAL; i++) {
        yajl_val v = glm_json_get(cfg, glm_ct_special_names[i]);
        const char *s = NULL;

        if (ct->special[i] != NULL || v == NULL || YAJL_IS_NULL(v)) {
            continue;
        }
        if (YAJL_IS_STRING(v)) {
            s = v->u.string;
        } else if (YAJL_IS_OBJECT(v)) {
            yajl_val c = glm_json_get(v, "content");

            if (c != NULL && YAJL_IS_STRING(c)) {
                s = c->u.string;
            }
        }
        if (s == NULL) {
            return glm_errf(err, "%s: %s: expected a string or {\"content\": string}", path,
                            glm_ct_special_names[i]);
        }
        if (glm_chat_template_set_special_token(ct, glm_ct_special_names[i], s, err) != 0) {
            return -1;
        }
    }
    return 0;
}

static glm_jinja_template *
glm_ct_parse(const char *src, size_t len, const char *origin, glm_err *err)
{
    glm_jinja_template *t = glm_jinja_parse(src, len, origin, err);

    return t;
}

/* Reads DIR/<name>.jinja into *tpl when it exists: 1 found, 0 absent, -1 error. */
static int
glm_ct_try_file(const char *path, glm_jinja_template **tpl, glm_err *err)
{
    size_t len;
    char *src;

    if (!glm_file_exists(path)) {
        return 0;
    }
    src = glm_read_file(path, &len, err);
    if (src == NULL) {
        return -1;
    }
    *tpl = glm_ct_parse(src, len, path, err);
    free(src);
    return *tpl == NULL ? -1 : 1;
}

/* The chat_template field of a JSON config: a string, or [{name, template}]. */
static int
glm_ct_from_config(glm_chat_template *ct, yajl_val field, const char *path, glm_err *err)
{
    char origin[4096];
    size_t i;

    if (YAJL_IS_STRING(field)) {
        const char *s = field->u.string;

        snprintf(origin, sizeof(origin), "%s:chat_template", path);
        ct->tpl = glm_ct_parse(s, strlen(s), origin, err);
        return ct->tpl == NULL ? -1 : 1;
    }
    if (YAJL_IS_ARRAY(field)) {
        for (i = 0; i < field->u.array.len; i++) {
            yajl_val item = field->u.array.values[i];
            yajl_val name = glm_json_get(item, "name");
            yajl_val tpl = glm_json_get(item, "template");
            glm_jinja_template **slot;
            const char *s;

            if (name == NULL || !YAJL_IS_STRING(name) || tpl == NULL || !YAJL_IS_STRING(tpl)) {
                return glm_errf(err, "%s: chat_template[%zu]: expected {\"name\": string, "
                                "\"template\": string}", path, i);
            }
            if (strcmp(name->u.string, "default") == 0) {
                slot = &ct->tpl;
            } else if (strcmp(name->u.string, "tool_use") == 0) {
                slot = &ct->tool_use;
            } else {
                continue;   /* other named templates are only used when asked for by name */
            }
            if (*slot != NULL) {
                continue;
            }
            s = tpl->u.string;
            snprintf(origin, sizeof(origin), "%s:chat_template[%s]", path, name->u.string);
            *slot = glm_ct_parse(s, strlen(s), origin, err);
            if (*slot == NULL) {
                return -1;
            }
        }
        if (ct->tpl == NULL) {
            return glm_errf(err, "%s: chat_template is a list with no \"default\" template "
                            "(transformers needs one, or the template's name)", path);
        }
        return 1;
    }
    if (YAJL_IS_NULL(field)) {
        return 0;
    }
    return glm_errf(err, "%s: chat_template: expected a string or a list of "
                    "{\"name\", \"template\"}", path);
}

glm_chat_template *
glm_chat_template_load(const char *model_dir, const char *override_path, glm_err *err)
{
    glm_chat_template *ct = calloc(1, sizeof(*ct));
    char path[4096];
    yajl_val cfg = NULL;
    int rc;

    if (ct == NULL) {
        glm_errf(err, "out of memory");
        return NULL;
    }
    if (model_dir != NULL) {
        /* special tokens first: tokenizer_config.json, then special_tokens_map.json */
        if (glm_path_join(path, sizeof(path), model_dir, "tokenizer_config.json") != 0) {
            glm_errf(err, "%s: path too long", model_dir);
            goto fail;
        }
        if (glm_file_exists(path)) {
            cfg = glm_ct_read_json(path, err);
            if (cfg == NULL || glm_ct_take_specials(ct, cfg, path, err) != 0) {
                goto fail;
            }
        }
        if (glm_path_join(path, sizeof(path), model_dir, "special_tokens_map.json") == 0
            && glm_file_exists(path)) {
            yajl_val m = glm_ct_read_json(path, err);

            if (m == NULL) {
                goto fail;
            }
            rc = glm_ct_take_specials(ct, m, path, err);
            yajl_tree_free(m);
            if (rc != 0) {
                goto fail;
            }
        }
    }
    if (override_path != NULL) {
        rc = glm_ct_try_file(override_path, &ct->tpl, err);
        if (rc == 0) {
            glm_errf(err, "%s: no such chat template file", override_path);
        }
        if (rc != 1) {
            goto fail;
        }
        ct->origin = strdup(override_path);
        goto done;
    }
    if (model_dir == NULL) {
        glm_errf(err, "no model directory and no chat template file");
        goto fail;
    }
    if (glm_path_join(path, sizeof(path), model_dir, "chat_template.jinja") != 0) {
        glm_errf(err, "%s: path too long", model_dir);
        goto fail;
    }
    rc = glm_ct_try_file(path, &ct->tpl, err);
    if (rc < 0) {
        goto fail;
    }
    if (rc == 1) {
        char extra[4096];

        ct->origin = strdup(path);
        if (glm_path_join(extra, sizeof(extra), model_dir,
                          "additional_chat_templates/tool_use.jinja") == 0
            && glm_ct_try_file(extra, &ct->tool_use, err) < 0) {
            goto fail;
        }
        goto done;
    }
    if (glm_path_join(path, sizeof(path), model_dir, "chat_template.json") == 0
        && glm_file_exists(path)) {
        yajl_val pc = glm_ct_read_json(path, err);
        yajl_val field;

        if (pc == NULL) {
            goto fail;
        }
        field = glm_json_get(pc, "chat_template");
        rc = field != NULL ? glm_ct_from_config(ct, field, path, err) : 0;
        yajl_tree_free(pc);
        if (rc < 0) {
            goto fail;
        }
        if (rc == 1) {
            ct->origin = strdup(path);
            goto done;
        }
    }
    if (cfg != NULL) {
        yajl_val field = glm_json_get(cfg, "chat_template");

        glm_path_join(path, sizeof(path), model_dir, "tokenizer_config.json");
        rc = field != NULL ? glm_ct_from_config(ct, field, path, err) : 0;
        if (rc < 0) {
            goto fail;
        }
        if (rc == 1) {
            ct->origin = strdup(path);
            goto done;
        }
    }
    glm_errf(err, "%s: no chat template (looked for chat_template.jinja, chat_template.json and "
             "the chat_template field of tokenizer_config.json); pass --chat-template FILE",
             model_dir);
    goto fail;

done:
    if (cfg != NULL) {
        yajl_tree_free(cfg);
    }
    if (ct->origin == NULL) {
        glm_errf(err, "out of memory");
        glm_chat_template_free(ct);
        return NULL;
    }
    return ct;

fail:
    if (cfg != NULL) {
        yajl_tree_free(cfg);
    }
    glm_chat_template_free(ct);
    return NULL;
}


/* ---- rendering -------------------------------------------------------------------------- */

static int
glm_ct_is_str(const glm_jinja_value *v, const char *s)
{
    return v != NULL && v->kind == GLM_JINJA_STR && v->n == strlen(s)
           && memcmp(v->u.s, s, v->n) == 0;
}

/* vLLM: assistant tool-call arguments as objects */
static int
glm_ct_parse_tool_args(glm_jinja_ctx *ctx, glm_jinja_value msg, size_t mi, glm_err *err)
{
    glm_jinja_value *calls = glm_jinja_dict_get(msg, "tool_calls");
    size_t i;

    if (!glm_ct_is_str(glm_jinja_dict_get(msg, "role"), "assistant") || calls == NULL
        || calls->kind != GLM_JINJA_LIST) {
        return 0;
    }
    for (i = 0; i < glm_jinja_len(*calls); i++) {
        glm_jinja_value *call = glm_jinja_list_at(*calls, i);
        glm_jinja_value *fn = call != NULL ? glm_jinja_dict_get(*call, "function") : NULL;
        glm_jinja_value *args, parsed;

        if (fn == NULL || fn->kind != GLM_JINJA_DICT) {
            return glm_errf(err, "messages[%zu].tool_calls[%zu]: expected a \"function\" object",
                            mi, i);
        }
        args = glm_jinja_dict_get(*fn, "arguments");
        if (args == NULL || args->kind == GLM_JINJA_NONE
            || (args->kind == GLM_JINJA_STR && args->n == 0)) {
            if (glm_jinja_dict_new(ctx, &parsed, err) != 0
                || glm_jinja_dict_set(ctx, *fn, "arguments", parsed, err) != 0) {
                return -1;
            }
        } else if (args->kind == GLM_JINJA_STR) {
            if (glm_jinja_from_json(ctx, args->u.s, args->n, &parsed, err) != 0) {
                return glm_err_prefix(err, "messages[%zu].tool_calls[%zu].function.arguments",
                                      mi, i);
            }
            *args = parsed;
        }
    }
    return 0;
}

/* The member holding the text of a part vLLM reads as text, or NULL. */
static const char *
glm_ct_text_part_key(const glm_jinja_value *type)
{
    if (glm_ct_is_str(type, "text") || glm_ct_is_str(type, "input_text")
        || glm_ct_is_str(type, "output_text"))
    {
        return "text";
    }
    if (glm_ct_is_str(type, "refusal")) {
        return "refusal";
    }
    if (glm_ct_is_str(type, "thinking")) {
        return "thinking";
    }
    return NULL;
}

/* vLLM's "openai" content format: media parts reduced to their type, the
 * text-like ones to {"type": "text", "text": ...} */
static int
glm_ct_media_parts(glm_jinja_ctx *ctx, glm_jinja_value msg, glm_err *err)
{
    static const struct { const char *from, *to; } map[] = {
        {"image_url", "image"}, {"image", "image"}, {"image_pil", "image"},
        {"image_embeds", "image"}, {"video_url", "video"}, {"video", "video"},
        {"input_audio", "audio"}, {"audio_url", "audio"}, {"audio", "audio"},
    };
    glm_jinja_value *content = glm_jinja_dict_get(msg, "content");
    const char *text_key;
    size_t i, k;

    if (content == NULL || content->kind != GLM_JINJA_LIST) {
        return 0;
    }
    for (i = 0; i < glm_jinja_len(*content); i++) {
        glm_jinja_value *part = glm_jinja_list_at(*content, i);
        glm_jinja_value *type = part != NULL && part->kind == GLM_JINJA_DICT
                                ? glm_jinja_dict_get(*part, "type") : NULL;
        glm_jinja_value repl, s, shorthand;

        if (type == NULL && part != NULL && part->kind == GLM_JINJA_DICT) {
            /* vLLM's untyped shorthand parts {"image_url": U}, {"video_url": U} */
            const char *key = glm_jinja_dict_get(*part, "image_url") != NULL ? "image_url"
                              : glm_jinja_dict_get(*part, "video_url") != NULL ? "video_url"
                              : NULL;
            if (key != NULL) {
                if (glm_jinja_str(ctx, key, strlen(key), &shorthand, err) != 0) {
                    return -1;
                }
                type = &shorthand;
            }
        }
        if (type == NULL || type->kind != GLM_JINJA_STR) {
            continue;
        }
        text_key = glm_ct_text_part_key(type);
        if (text_key != NULL) {
            /* vLLM reads these as text (its TEXT_PART_TYPES) */
            glm_jinja_value *text = glm_jinja_dict_get(*part, text_key);

            if (text == NULL || text->kind == GLM_JINJA_NONE) {
                continue;
            }
            if (glm_jinja_dict_new(ctx, &repl, err) != 0
                || glm_jinja_str(ctx, "text", 4, &s, err) != 0
                || glm_jinja_dict_set(ctx, repl, "type", s, err) != 0
                || glm_jinja_dict_set(ctx, repl, "text", *text, err) != 0) {
                return -1;
            }
            *part = repl;
            continue;
        }
        for (k = 0; k < sizeof(map) / sizeof(map[0]); k++) {
            if (glm_ct_is_str(type, map[k].from)) {
                if (glm_jinja_dict_new(ctx, &repl, err) != 0
                    || glm_jinja_str(ctx, map[k].to, strlen(map[k].to), &s, err) != 0
                    || glm_jinja_dict_set(ctx, repl, "type", s, err) != 0) {
                    return -1;
                }
                *part = repl;
                break;
            }
        }
    }
    return 0;
}

/* transformers' _alias_reasoning_fields:
 *   {"thinking": r, **message, "reasoning_content": r} */
static int
glm_ct_alias_reasoning(glm_jinja_ctx *ctx, glm_jinja_value *msg, glm_err *err)
{
    static const char *const fields[] = {"reasoning_content", "thinking", "reasoning"};
    glm_jinja_value *r = NULL, copy, reasoning;
    size_t i;

    for (i = 0; i < 3 && r == NULL; i++) {
        glm_jinja_value *v = glm_jinja_dict_get(*msg, fields[i]);

        if (v != NULL && v->kind != GLM_JINJA_NONE) {
            r = v;
        }
    }
    if (r == NULL) {
        return 0;
    }
    reasoning = *r;
    if (glm_jinja_dict_new(ctx, &copy, err) != 0
        || glm_jinja_dict_set(ctx, copy, "thinking", reasoning, err) != 0) {
        return -1;
    }
    for (i = 0; i < glm_jinja_len(*msg); i++) {
        glm_jinja_value *k = glm_jinja_dict_key_at(*msg, i);
        glm_jinja_value *v = glm_jinja_dict_val_at(*msg, i);
        char key[256];

        if (k->kind != GLM_JINJA_STR || k->n >= sizeof(key) || memchr(k->u.s, 0, k->n) != NULL) {
            return glm_errf(err, "message key too long or not a string");
        }
        memcpy(key, k->u.s, k->n);
        key[k->n] = '\0';
        if (glm_jinja_dict_set(ctx, copy, key, *v, err) != 0) {
            return -1;
        }
    }
    if (glm_jinja_dict_set(ctx, copy, "reasoning_content", reasoning, err) != 0) {
        return -1;
    }
    *msg = copy;
    return 0;
}

#define GLM_CT_CONTINUE_TAG "CONTINUE_FINAL_MESSAGE_TAG "

/* str.isspace() of the code point at s[i] (UTF-8): its byte length, or 0. */
static size_t
glm_ct_space_at(const char *s, size_t n, size_t i)
{
    const unsigned char *u = (const unsigned char *) s + i;
    uint32_t cp;
    size_t len;

    if (u[0] < 0x80) {
        return ((u[0] >= 0x09 && u[0] <= 0x0d) || (u[0] >= 0x1c && u[0] <= 0x20)) ? 1 : 0;
    }
    if (u[0] >= 0xc0 && u[0] < 0xe0 && n - i >= 2) {
        cp = ((uint32_t) (u[0] & 0x1f) << 6) | (u[1] & 0x3f);
        len = 2;
    } else if (u[0] >= 0xe0 && u[0] < 0xf0 && n - i >= 3) {
        cp = ((uint32_t) (u[0] & 0x0f) << 12) | ((uint32_t) (u[1] & 0x3f) << 6) | (u[2] & 0x3f);
        len = 3;
    } else {
        return 0;
    }
    return (cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a)
            || cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000)
           ? len : 0;
}

/* Python's str.strip() bounds of s[0..n). */
static void
glm_ct_strip(const char *s, size_t n, size_t *lo, size_t *hi)
{
    size_t a = 0, b = n, w;

    while (a < b && (w = glm_ct_space_at(s, b, a)) > 0) {
        a += w;
    }
    while (b > a) {
        size_t st = b - 1;

        while (st > a && ((unsigned char) s[st] & 0xc0) == 0x80) {
            st--;
        }
        w = glm_ct_space_at(s, b, st);
        if (w == 0 || st + w != b) {
            break;
        }
        b = st;
    }
    *lo = a;
    *hi = b;
}

static const char *
glm_ct_find_last(const char *h, size_t hn, const char *needle, size_t nn)
{
    size_t i;

    if (nn > hn) {
        return NULL;
    }
    for (i = hn - nn + 1; i > 0; i--) {
        if (memcmp(h + i - 1, needle, nn) == 0) {
            return h + i - 1;
        }
    }
    return NULL;
}

/* Appends the continue tag to the final message's content (transformers'
 * continue_final_message preparation); *final is the text before the tag. */
static int
glm_ct_continue_prepare(glm_jinja_ctx *ctx, const glm_jinja_template *t, glm_jinja_value last,
                        glm_jinja_value *final, glm_err *err)
{
    glm_jinja_value *content = glm_jinja_dict_get(last, "content");
    glm_jinja_value *target = NULL, tagged;
    const char *src;
    size_t srclen, i;
    char *buf;

    if (content == NULL || content->kind == GLM_JINJA_NONE) {
        return glm_errf(err, "continue_final_message is set but the final message has no "
                        "\"content\" to continue!");
    }
    src = glm_jinja_source(t, &srclen);
    if (memmem(src, srclen, "content", 7) == NULL) {
        return glm_errf(err, "continue_final_message is set to \"content\" but this is not an "
                        "accepted field in the chat_template");
    }
    if (content->kind == GLM_JINJA_LIST) {
        for (i = glm_jinja_len(*content); i > 0; i--) {
            glm_jinja_value *block = glm_jinja_list_at(*content, i - 1);

            if (block->kind == GLM_JINJA_DICT && glm_jinja_dict_get(*block, "text") != NULL) {
                target = glm_jinja_dict_get(*block, "text");
                break;
            }
            if (block->kind != GLM_JINJA_DICT) {
                return glm_errf(err, "continue_final_message: content blocks must be objects");
            }
        }
        if (target == NULL) {
            return glm_errf(err, "continue_final_message is set but we could not find any text "
                            "to continue in the final message!");
        }
    } else {
        target = content;
    }
    if (target->kind != GLM_JINJA_STR) {
        return glm_errf(err, "continue_final_message: the final message's text is not a string");
    }
    *final = *target;
    buf = malloc(target->n + sizeof(GLM_CT_CONTINUE_TAG));
    if (buf == NULL) {
        return glm_errf(err, "out of memory");
    }
    memcpy(buf, target->u.s, target->n);
    memcpy(buf + target->n, GLM_CT_CONTINUE_TAG, sizeof(GLM_CT_CONTINUE_TAG));
    if (glm_jinja_str(ctx, buf, target->n + sizeof(GLM_CT_CONTINUE_TAG) - 1, &tagged, err) != 0) {
        free(buf);
        return -1;
    }
    free(buf);
    *target = tagged;
    return 0;
}

static int
glm_ct_continue_finish(glm_jinja_ctx *ctx, glm_jinja_value final, const char **out,
                       size_t *out_len, glm_err *err)
{
    static const char tag[] = GLM_CT_CONTINUE_TAG;
    size_t lo, hi, tlen = sizeof(tag) - 1, cut;
    const char *at;
    glm_jinja_value v;

    glm_ct_strip(final.u.s, final.n, &lo, &hi);
    if (memmem(*out, *out_len, final.u.s + lo, hi - lo) == NULL
        || memmem(*out, *out_len, tag, tlen - 1) == NULL) {
        return glm_errf(err, "continue_final_message is set but the final message does not "
                        "appear in the chat after applying the chat template!");
    }
    at = glm_ct_find_last(*out, *out_len, tag, tlen - 1);
    cut = (size_t) (at - *out);
    if (!(*out_len - cut >= tlen && memcmp(at, tag, tlen) == 0)) {
        /* the template trimmed the tag's trailing space: rstrip what is before */
        glm_ct_strip(*out, cut, &lo, &hi);
        cut = hi;
    }
    if (glm_jinja_str(ctx, *out, cut, &v, err) != 0) {
        return -1;
    }
    *out = v.u.s;
    *out_len = v.n;
    return 0;
}

static const char *
glm_ct_bad_kwarg(const char *key)
{
    static const char *const reserved[] = {
        "messages", "tools", "documents", "add_generation_prompt", "continue_final_message",
        "chat_template", "tokenize", "conversation", "return_dict", "return_assistant_tokens_mask"
    };
    size_t i;

    for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        if (strcmp(reserved[i], key) == 0) {
            return reserved[i];
        }
    }
    return NULL;
}

static int
glm_ct_set_kwargs(glm_jinja_ctx *ctx, const glm_jinja_value *kwargs, const char *what,
                  glm_err *err)
{
    size_t i;

    for (i = 0; kwargs != NULL && i < glm_jinja_len(*kwargs); i++) {
        glm_jinja_value *key = glm_jinja_dict_key_at(*kwargs, i);
        char name[256];

        if (key->kind != GLM_JINJA_STR || key->n >= sizeof(name)
            || memchr(key->u.s, 0, key->n) != NULL) {
            return glm_errf(err, "%s: key too long", what);
        }
        memcpy(name, key->u.s, key->n);
        name[key->n] = '\0';
        if (glm_ct_bad_kwarg(name) != NULL) {
            return glm_errf(err, "%s may not set '%s'", what, name);
        }
        if (glm_jinja_set(ctx, name, *glm_jinja_dict_val_at(*kwargs, i), err) != 0) {
            return -1;
        }
    }
    return 0;
}

/* The whole request -> prompt path on an already parsed request. */
static int
glm_ct_render_value(const glm_chat_template *ct, glm_jinja_ctx *ctx, glm_jinja_value req,
                    const glm_jinja_value *default_kwargs, unsigned flags, const char **out,
                    size_t *out_len, glm_err *err)
{
    glm_jinja_value *messages, *tools, *documents, *v, *kwargs;
    glm_jinja_value none = glm_jinja_none(), tv, final;
    const glm_jinja_template *t;
    int add_generation_prompt = 1, continue_final = 0;
    size_t i, k;

    memset(&final, 0, sizeof(final));
    if (req.kind != GLM_JINJA_DICT) {
        return glm_errf(err, "request: expected a JSON object");
    }
    messages = glm_jinja_dict_get(req, "messages");
    if (messages == NULL || messages->kind != GLM_JINJA_LIST) {
        return glm_errf(err, "request: \"messages\" must be a list of messages");
    }
    if (glm_jinja_len(*messages) == 0) {
        return glm_errf(err, "request: Cannot apply chat template to an empty conversation. "
                        "Provide at least one message.");
    }
    tools = glm_jinja_dict_get(req, "tools");
    if (tools != NULL && tools->kind == GLM_JINJA_NONE) {
        tools = NULL;
    }
    if (tools != NULL) {
        if (tools->kind != GLM_JINJA_LIST) {
            return glm_errf(err, "request: \"tools\" must be a list");
        }
        for (i = 0; i < glm_jinja_len(*tools); i++) {
            if (glm_jinja_list_at(*tools, i)->kind != GLM_JINJA_DICT) {
                return glm_errf(err, "request: tools[%zu]: Tools should either be a JSON schema, "
                                "or a callable function", i);
            }
        }
    }
    documents = glm_jinja_dict_get(req, "documents");
    if (documents != NULL && documents->kind == GLM_JINJA_NONE) {
        documents = NULL;
    }
    if (documents != NULL) {
        if (documents->kind != GLM_JINJA_LIST) {
            return glm_errf(err, "request: \"documents\" must be a list");
        }
        for (i = 0; i < glm_jinja_len(*documents); i++) {
            if (glm_jinja_list_at(*documents, i)->kind != GLM_JINJA_DICT) {
                return glm_errf(err, "request: Documents should be a list of dicts with 'title' "
                                "and 'text' keys!");
            }
        }
    }
    v = glm_jinja_dict_get(req, "add_generation_prompt");
    if (v != NULL && v->kind != GLM_JINJA_NONE) {
        if (v->kind != GLM_JINJA_BOOL) {
            return glm_errf(err, "request: \"add_generation_prompt\" must be a boolean");
        }
        add_generation_prompt = (int) v->u.i;
    }
    v = glm_jinja_dict_get(req, "continue_final_message");
    if (v != NULL && v->kind != GLM_JINJA_NONE) {
        if (v->kind != GLM_JINJA_BOOL) {
            return glm_errf(err, "request: \"continue_final_message\" must be a boolean");
        }
        continue_final = (int) v->u.i;
    }
    if (continue_final && add_generation_prompt) {
        return glm_errf(err, "request: continue_final_message and add_generation_prompt are not "
                        "compatible. Use continue_final_message when you want the model to "
                        "continue the final message, and add_generation_prompt when you want to "
                        "add a header that will prompt it to start a new assistant message "
                        "instead.");
    }
    kwargs = glm_jinja_dict_get(req, "chat_template_kwargs");
    if (kwargs != NULL && kwargs->kind == GLM_JINJA_NONE) {
        kwargs = NULL;
    }
    if (kwargs != NULL && kwargs->kind != GLM_JINJA_DICT) {
        return glm_errf(err, "request: \"chat_template_kwargs\" must be an object");
    }

    /* messages: None-valued keys dropped (apply_chat_template), the vLLM
     * rewrites when asked, reasoning aliased (render_jinja_template) */
    for (i = 0; i < glm_jinja_len(*messages); i++) {
        glm_jinja_value *m = glm_jinja_list_at(*messages, i);

        if (m->kind != GLM_JINJA_DICT) {
            return glm_errf(err, "request: messages[%zu]: Chat messages should be dicts", i);
        }
        for (k = glm_jinja_len(*m); k > 0; k--) {
            glm_jinja_value *key = glm_jinja_dict_key_at(*m, k - 1);

            if (glm_jinja_dict_val_at(*m, k - 1)->kind == GLM_JINJA_NONE) {
                char name[256];

                if (key->n >= sizeof(name)) {
                    return glm_errf(err, "request: messages[%zu]: key too long", i);
                }
                memcpy(name, key->u.s, key->n);
                name[key->n] = '\0';
                glm_jinja_dict_del(*m, name);
            }
        }
        if ((flags & GLM_CHAT_TEMPLATE_PARSE_TOOL_ARGS)
            && glm_ct_parse_tool_args(ctx, *m, i, err) != 0) {
            return glm_err_prefix(err, "request");
        }
        if ((flags & GLM_CHAT_TEMPLATE_MEDIA_PARTS) && glm_ct_media_parts(ctx, *m, err) != 0) {
            return -1;
        }
        if (glm_ct_alias_reasoning(ctx, m, err) != 0) {
            return -1;
        }
    }
    t = tools != NULL && ct->tool_use != NULL ? ct->tool_use : ct->tpl;
    if (continue_final) {
        glm_jinja_value *last = glm_jinja_list_at(*messages, glm_jinja_len(*messages) - 1);

        if (glm_ct_continue_prepare(ctx, t, *last, &final, err) != 0) {
            return glm_err_prefix(err, "request");
        }
    }

    /* variables: special tokens, then chat_template_kwargs over them, then
     * the explicit arguments */
    for (i = 0; i < GLM_CT_NSPECIAL; i++) {
        if (ct->special[i] == NULL) {
            continue;
        }
        if (glm_jinja_str(ctx, ct->special[i], strlen(ct->special[i]), &tv, err) != 0
            || glm_jinja_set(ctx, glm_ct_special_names[i], tv, err) != 0) {
            return -1;
        }
    }
    if (default_kwargs != NULL && default_kwargs->kind == GLM_JINJA_DICT
        && glm_ct_set_kwargs(ctx, default_kwargs, "default chat_template_kwargs", err) != 0) {
        return -1;
    }
    if (glm_ct_set_kwargs(ctx, kwargs, "request: chat_template_kwargs", err) != 0) {
        return -1;
    }
    if (glm_jinja_set(ctx, "messages", *messages, err) != 0
        || glm_jinja_set(ctx, "tools", tools != NULL ? *tools : none, err) != 0
        || glm_jinja_set(ctx, "documents", documents != NULL ? *documents : none, err) != 0
        || glm_jinja_set(ctx, "add_generation_prompt", glm_jinja_bool(add_generation_prompt),
                         err) != 0) {
        return -1;
    }
    if (glm_jinja_render(t, ctx, out, out_len, err) != 0) {
        return -1;
    }
    if (continue_final) {
        return glm_ct_continue_finish(ctx, final, out, out_len, err);
    }
    return 0;
}

int
glm_chat_template_render(const glm_chat_template *ct, glm_jinja_ctx *ctx, const char *body,
                         size_t len, unsigned flags, const char **out, size_t *out_len,
                         glm_err *err)
{
    glm_jinja_value req;

    if (glm_jinja_from_json(ctx, body, len, &req, err) != 0) {
        return glm_err_prefix(err, "request");
    }
    return glm_ct_render_value(ct, ctx, req, NULL, flags, out, out_len, err);
}

/* yajl tree -> template values, numbers from their text as json.loads reads
 * them (an integer beyond int64 stays exact). */
static int
glm_ct_from_yajl(glm_jinja_ctx *ctx, yajl_val v, int depth, glm_jinja_value *out, glm_err *err)
{
    size_t i;

    if (depth > 512) {
        return glm_errf(err, "request: JSON nested too deeply");
    }
    if (v == NULL || YAJL_IS_NULL(v)) {
        *out = glm_jinja_none();
        return 0;
    }
    if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
        *out = glm_jinja_bool(YAJL_IS_TRUE(v));
        return 0;
    }
    if (YAJL_IS_STRING(v)) {
        return glm_jinja_str(ctx, v->u.string, strlen(v->u.string), out, err);
    }
    if (YAJL_IS_NUMBER(v)) {
        const char *r = v->u.number.r;

        if (strpbrk(r, ".eE") != NULL) {
            *out = glm_jinja_float(strtod(r, NULL));
            return 0;
        }
        if (YAJL_IS_INTEGER(v)) {
            *out = glm_jinja_int(v->u.number.i);
            return 0;
        }
        return glm_jinja_from_json(ctx, r, strlen(r), out, err);
    }
    if (YAJL_IS_ARRAY(v)) {
        if (glm_jinja_list_new(ctx, out, err) != 0) {
            return -1;
        }
        for (i = 0; i < v->u.array.len; i++) {
            glm_jinja_value item;

            if (glm_ct_from_yajl(ctx, v->u.array.values[i], depth + 1, &item, err) != 0
                || glm_jinja_list_push(ctx, *out, item, err) != 0) {
                return -1;
            }
        }
        return 0;
    }
    if (YAJL_IS_OBJECT(v)) {
        if (glm_jinja_dict_new(ctx, out, err) != 0) {
            return -1;
        }
        for (i = 0; i < v->u.object.len; i++) {
            glm_jinja_value item;

            if (glm_ct_from_yajl(ctx, v->u.object.values[i], depth + 1, &item, err) != 0
                || glm_jinja_dict_set(ctx, *out, v->u.object.keys[i], item, err) != 0) {
                return -1;
            }
        }
        return 0;
    }
    return glm_errf(err, "request: unexpected JSON value");
}

int
glm_chat_template_render_request(const glm_chat_template *ct, const char *body, size_t len,
                                 yajl_val default_kwargs, char **out, size_t *out_len,
                                 glm_err *err)
{
    glm_jinja_ctx *ctx;
    glm_jinja_value req, dk;
    const char *text;
    size_t n;
    int rc = -1;

    *out = NULL;
    *out_len = 0;
    ctx = glm_jinja_ctx_new(NULL, err);
    if (ctx == NULL) {
        return -1;
    }
    if (glm_jinja_from_json(ctx, body, len, &req, err) != 0) {
        glm_err_prefix(err, "request");
        goto done;
    }
    if (default_kwargs != NULL) {
        if (!YAJL_IS_OBJECT(default_kwargs)) {
            glm_errf(err, "default chat_template_kwargs must be an object");
            goto done;
        }
        if (glm_ct_from_yajl(ctx, default_kwargs, 0, &dk, err) != 0) {
            goto done;
        }
    }
    if (glm_ct_render_value(ct, ctx, req, default_kwargs != NULL ? &dk : NULL,
                            GLM_CHAT_TEMPLATE_SERVE, &text, &n, err) != 0) {
        goto done;
    }
    *out = malloc(n + 1);
    if (*out == NULL) {
        glm_errf(err, "out of memory");
        goto done;
    }
    memcpy(*out, text, n);
    (*out)[n] = '\0';
    *out_len = n;
    rc = 0;
done:
    glm_jinja_ctx_free(ctx);
    return rc;
}

int
glm_json_string_member(const char *body, size_t len, const char *key, char **out,
                       size_t *out_len, glm_err *err)
{
    glm_jinja_ctx *ctx;
    glm_jinja_value doc, *v;
    int rc = -1;

    *out = NULL;
    *out_len = 0;
    ctx = glm_jinja_ctx_new(NULL, err);
    if (ctx == NULL) {
        return -1;
    }
    if (glm_jinja_from_json(ctx, body, len, &doc, err) != 0) {
        glm_err_prefix(err, "request");
        goto done;
    }
    v = doc.kind == GLM_JINJA_DICT ? glm_jinja_dict_get(doc, key) : NULL;
    if (v == NULL) {
        rc = 1;
        goto done;
    }
    if (v->kind != GLM_JINJA_STR) {
        glm_errf(err, "'%s' must be a string", key);
        goto done;
    }
    *out = malloc(v->n + 1);
    if (*out == NULL) {
        glm_errf(err, "out of memory");
        goto done;
    }
    memcpy(*out, v->u.s, v->n);
    (*out)[v->n] = '\0';
    *out_len = v->n;
    rc = 0;
done:
    glm_jinja_ctx_free(ctx);
    return rc;
}
