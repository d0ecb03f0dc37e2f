/*
 * cmd_template.c: `glm-engine render-template`, which shows exactly the
 * prompt (and token ids) the engine would feed the model for a request.
 *
 *   glm-engine render-template (--model DIR | --template FILE | both)
 *                              (--request JSON | --request-file F|-)
 *                              [--transformers] [--now YYYY-MM-DDTHH:MM:SS]
 *
 * --model DIR       the checkpoint: its chat template and special tokens, and
 *                   tokenizer.json for the ids line when present
 * --template FILE   a template file (with --model: instead of the model's)
 * --request         an OpenAI chat-completions body; --request-file reads it
 * --transformers    render exactly as transformers' apply_chat_template (no
 *                   vLLM-style rewriting of tool arguments and media parts)
 * --now             pins strftime_now() (default: the current local time)
 *
 * Output: the prompt, a newline, then "ids: <id> <id> ..." when a tokenizer
 * was found.  Usage errors exit 2; other errors print one line
 * "glm-engine: error: ..." and exit 1.
 */
#include "text/chat_template.h"
#include "text/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void
glm_render_template_usage(FILE *f)
{
    fprintf(f,
        "usage: glm-engine render-template (--model DIR | --template FILE)\n"
        "                                  (--request JSON | --request-file F)\n"
        "                                  [--transformers] [--now YYYY-MM-DDTHH:MM:SS]\n");
}

static char *
glm_read_stdin(size_t *len)
{
    size_t cap = 65536, n = 0, got;
    char *buf = malloc(cap);

    if (buf == NULL) {
        return NULL;
    }
    while ((got = fread(buf + n, 1, cap - n - 1, stdin)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            char *nb = realloc(buf, cap * 2);

            if (nb == NULL) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int
glm_parse_now(const char *s, struct tm *tm)
{
    int y, mo, d, h, mi, se;
    char tail;

    if (sscanf(s, "%d-%d-%dT%d:%d:%d%c", &y, &mo, &d, &h, &mi, &se, &tail) != 6) {
        return -1;
    }
    memset(tm, 0, sizeof(*tm));
    tm->tm_year = y - 1900;
    tm->tm_mon = mo - 1;
    tm->tm_mday = d;
    tm->tm_hour = h;
    tm->tm_min = mi;
    tm->tm_sec = se;
    tm->tm_isdst = -1;
    /* fills tm_wday/tm_yday for %a, %j ... */
    if (mktime(tm) == (time_t) -1) {
        return -1;
    }
    return 0;
}

int
glm_cmd_render_template(int argc, char **argv)
{
    const char *model = NULL, *template_path = NULL, *request = NULL, *request_file = NULL;
    const char *now_arg = NULL;
    unsigned flags = GLM_CHAT_TEMPLATE_SERVE;
    glm_chat_template *ct = NULL;
    glm_jinja_ctx *ctx = NULL;
    glm_tokenizer *tok = NULL;
    char *body_buf = NULL, path[4096];
    const char *body, *out;
    size_t body_len = 0, out_len;
    glm_err err;
    struct tm now;
    int i, rc = 1;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "--transformers") == 0) {
            flags = 0;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            glm_render_template_usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "glm-engine: %s needs a value\n", a);
            glm_render_template_usage(stderr);
            return 2;
        }
        if (strcmp(a, "--model") == 0) {
            model = argv[++i];
        } else if (strcmp(a, "--template") == 0 || strcmp(a, "--chat-template") == 0) {
            template_path = argv[++i];
        } else if (strcmp(a, "--request") == 0) {
            request = argv[++i];
        } else if (strcmp(a, "--request-file") == 0) {
            request_file = argv[++i];
        } else if (strcmp(a, "--now") == 0) {
            now_arg = argv[++i];
        } else {
            fprintf(stderr, "glm-engine: render-template: unknown option '%s'\n", a);
            glm_render_template_usage(stderr);
            return 2;
        }
    }
    if ((model == NULL && template_path == NULL) || (request == NULL) == (request_file == NULL)) {
        glm_render_template_usage(stderr);
        return 2;
    }
    if (now_arg != NULL && glm_parse_now(now_arg, &now) != 0) {
        fprintf(stderr, "glm-engine: --now wants YYYY-MM-DDTHH:MM:SS, got '%s'\n", now_arg);
        return 2;
    }

    ct = glm_chat_template_load(model, template_path, &err);
    if (ct == NULL) {
        goto fail;
    }
    if (request != NULL) {
        body = request;
        body_len = strlen(request);
    } else {
        body_buf = strcmp(request_file, "-") == 0 ? glm_read_stdin(&body_len)
                                                  : glm_read_file(request_file, &body_len, &err);
        if (body_buf == NULL) {
            if (strcmp(request_file, "-") == 0) {
                glm_errf(&err, "cannot read the request from stdin");
            }
            goto fail;
        }
        body = body_buf;
    }
    ctx = glm_jinja_ctx_new(NULL, &err);
    if (ctx == NULL) {
        goto fail;
    }
    if (now_arg != NULL) {
        glm_jinja_ctx_set_now(ctx, &now);
    }
    if (glm_chat_template_render(ct, ctx, body, body_len, flags, &out, &out_len, &err) != 0) {
        goto fail;
    }
    fwrite(out, 1, out_len, stdout);
    fputc('\n', stdout);
    if (model != NULL && glm_path_join(path, sizeof(path), model, "tokenizer.json") == 0
        && glm_file_exists(path)) {
        glm_tokenizer_ids ids = {0};
        size_t k;

        tok = glm_tokenizer_load(path, &err);
        if (tok == NULL) {
            goto fail;
        }
        if (glm_tokenizer_encode(tok, NULL, out, out_len, &ids, &err) != 0) {
            glm_tokenizer_ids_free(&ids);
            goto fail;
        }
        fputs("ids:", stdout);
        for (k = 0; k < ids.len; k++) {
            printf(" %d", (int) ids.ids[k]);
        }
        fputc('\n', stdout);
        glm_tokenizer_ids_free(&ids);
    }
    rc = 0;
    goto done;

fail:
    fflush(stdout);
    fprintf(stderr, "glm-engine: error: %s\n", err.msg);
done:
    glm_tokenizer_free(tok);
    glm_jinja_ctx_free(ctx);
    glm_chat_template_free(ct);
    free(body_buf);
    return rc;
}
