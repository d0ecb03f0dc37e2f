/*
 * test_http_check.c: the nginx-free half of ngx_glm_module
 * (ngx_glm_module/glm_http_check.c): Content-Type test, request body checks,
 * served-model list, error bodies and the in-band SSE error, byte for byte.
 *
 * The file under test lives outside engine/, so it is compiled into this
 * test directly rather than through the engine objects.
 */
#include <stdio.h>
#include <string.h>

#include "../../ngx_glm_module/glm_http_check.c"

static int passed, failed;

#define CHECK(cond, ...) do {                                   \
    if (cond) { passed++; } else {                              \
        failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__);   \
        printf(__VA_ARGS__); printf("\n"); }                    \
} while (0)

static void
expect(uint32_t op, const char *body, unsigned status, const char *param,
    const char *message)
{
    glm_http_check  ck;
    unsigned   got;

    got = glm_http_check_body(&ck, op, body, strlen(body));

    CHECK(got == status, "%s: status %u, want %u (%s)", body, got, status,
          ck.message);

    if (got != status || status == 0) {
        return;
    }

    CHECK((param == NULL && ck.param == NULL)
          || (param && ck.param && strcmp(param, ck.param) == 0),
          "%s: param %s, want %s", body, ck.param ? ck.param : "null",
          param ? param : "null");

    if (message != NULL) {
        CHECK(strstr(ck.message, message) != NULL,
              "%s: message '%s' lacks '%s'", body, ck.message, message);
    }
}

static void
test_content_type(void)
{
    CHECK(glm_http_is_json("application/json", 16), "plain");
    CHECK(glm_http_is_json("Application/JSON", 16), "case");
    CHECK(glm_http_is_json("application/json; charset=utf-8", 31), "charset");
    CHECK(glm_http_is_json("application/json;charset=UTF-8", 30), "charset");
    CHECK(glm_http_is_json(" application/json", 17), "leading space");
    CHECK(!glm_http_is_json("", 0), "empty");
    CHECK(!glm_http_is_json("text/plain", 10), "text");
    CHECK(!glm_http_is_json("application/jsonx", 17), "suffix");
    CHECK(!glm_http_is_json("application/json-patch+json", 27), "patch");
    CHECK(!glm_http_is_json("application/jso", 15), "short");
}

static void
test_bodies(void)
{
    glm_http_check  ck;
    char       big[400];
    size_t     i;

    expect(GLM_OP_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
           0, NULL, NULL);
    expect(GLM_OP_CHAT, "", 400, NULL, "empty");
    expect(GLM_OP_CHAT, "  \n", 400, NULL, "empty");
    expect(GLM_OP_CHAT, "[1,2]", 400, NULL, "must be a JSON object");
    expect(GLM_OP_CHAT, "\"x\"", 400, NULL, "must be a JSON object");
    expect(GLM_OP_CHAT, "{\"messages\":[{}]", 400, NULL, "Invalid JSON");
    expect(GLM_OP_CHAT, "{\"messages\":[{}]} x", 400, NULL, "Invalid JSON");
    expect(GLM_OP_CHAT, "{messages:1}", 400, NULL, "Invalid JSON");
    expect(GLM_OP_CHAT, "{}", 400, "messages", "'messages' is a required");
    expect(GLM_OP_CHAT, "{\"messages\":[]}", 400, "messages", "non-empty");
    expect(GLM_OP_CHAT, "{\"messages\":{}}", 400, "messages", "non-empty");
    expect(GLM_OP_CHAT, "{\"messages\":null}", 400, "messages", NULL);
    expect(GLM_OP_CHAT, "{\"messages\":[{},3]}", 400, "messages",
           "'messages[1]' must be an object");
    expect(GLM_OP_CHAT, "{\"messages\":[{}],\"stream\":\"yes\"}", 400,
           "stream", "'stream' must be a boolean");
    expect(GLM_OP_CHAT, "{\"messages\":[{}],\"stream\":null}", 0, NULL, NULL);
    expect(GLM_OP_CHAT, "{\"messages\":[{}],\"model\":7}", 400, "model",
           "'model' must be a string");
    expect(GLM_OP_CHAT, "{\"messages\":[{}],\"max_tokens\":-1}", 400,
           "max_tokens", "'max_tokens' must be a non-negative integer");
    expect(GLM_OP_CHAT, "{\"messages\":[{}],\"max_tokens\":1.5}", 400,
           "max_tokens", NULL);
    expect(GLM_OP_CHAT, "{\"messages\":[{}],\"max_tokens\":\"5\"}", 400,
           "max_tokens", NULL);
    expect(GLM_OP_CHAT, "{\"messages\":[{}],\"max_tokens\":true}", 400,
           "max_tokens", NULL);
    expect(GLM_OP_CHAT, "{\"messages\":[{}],\"max_tokens\":8.0}", 0, NULL,
           NULL);
    expect(GLM_OP_CHAT, "{\"messages\":[{}],\"max_tokens\":0,\"n\":1,"
           "\"max_completion_tokens\":123456789012}", 0, NULL, NULL);
    expect(GLM_OP_CHAT, "{\"messages\":[{}],\"max_completion_tokens\":-3}",
           400, "max_completion_tokens", NULL);
    expect(GLM_OP_CHAT, "{\"messages\":[{}],\"n\":1e400}", 400, "n", NULL);
    expect(GLM_OP_CHAT, "{\"messages\":[{}],\"temperature\":\"hot\"}", 400,
           "temperature", "'temperature' must be a number");
    expect(GLM_OP_CHAT, "{\"messages\":[{}],\"top_p\":[]}", 400, "top_p",
           NULL);
    expect(GLM_OP_CHAT, "{\"messages\":[{}],\"temperature\":0.7,"
           "\"top_p\":1,\"extra\":{\"n\":-1,\"stream\":3}}", 0, NULL, NULL);
    /* nested keys with checked names are not top-level fields */
    expect(GLM_OP_CHAT, "{\"messages\":[{\"model\":1,\"stream\":2}]}", 0,
           NULL, NULL);
    /* the last of repeated keys wins, as in Python */
    expect(GLM_OP_CHAT, "{\"messages\":[],\"messages\":[{}]}", 0, NULL, NULL);
    expect(GLM_OP_CHAT, "{\"messages\":[{}],\"messages\":[]}", 400,
           "messages", NULL);
    /* invalid UTF-8 in a string is a JSON error */
    expect(GLM_OP_CHAT, "{\"messages\":[{\"content\":\"\xff\"}]}", 400, NULL,
           "Invalid JSON");

    /* completions: the generation fields, no messages (the engine checks
     * the prompt) */
    expect(GLM_OP_COMPLETIONS, "{\"prompt\":\"x\"}", 0, NULL, NULL);
    expect(GLM_OP_COMPLETIONS, "{\"prompt\":[1,2],\"max_tokens\":0}", 0, NULL, NULL);
    expect(GLM_OP_COMPLETIONS, "{\"prompt\":\"x\",\"max_tokens\":-1}", 400,
           "max_tokens", "non-negative integer");
    expect(GLM_OP_COMPLETIONS, "{\"prompt\":\"x\",\"stream\":1}", 400, "stream",
           "boolean");
    expect(GLM_OP_COMPLETIONS, "{\"prompt\":\"x\",\"n\":1.5}", 400, "n", NULL);
    expect(GLM_OP_COMPLETIONS, "{\"prompt\":\"x\",\"max_completion_tokens\":-1}", 0,
           NULL, NULL);

    /* tokenize/detokenize: any object, only model is checked */
    expect(GLM_OP_TOKENIZE, "{\"prompt\":\"x\"}", 0, NULL, NULL);
    expect(GLM_OP_TOKENIZE, "{\"prompt\":\"x\",\"n\":-1,\"stream\":1}", 0,
           NULL, NULL);
    expect(GLM_OP_DETOKENIZE, "{\"tokens\":[1,2],\"model\":[]}", 400,
           "model", NULL);
    expect(GLM_OP_DETOKENIZE, "[]", 400, NULL, "must be a JSON object");

    /* the module passes NULL for a request without a body */
    CHECK(glm_http_check_body(&ck, GLM_OP_CHAT, NULL, 0) == 400
          && strstr(ck.message, "empty") != NULL, "NULL body");

    glm_http_check_body(&ck, GLM_OP_CHAT,
                        "{\"stream\":true,\"model\":\"glm\\u002d4.5\","
                        "\"messages\":[{}]}", 54);
    CHECK(ck.status == 0 && ck.stream == 1 && ck.has_model
          && strcmp(ck.model, "glm-4.5") == 0 && ck.model_len == 7,
          "facts: status %u stream %d model '%s'", ck.status, ck.stream,
          ck.model);

    glm_http_check_body(&ck, GLM_OP_CHAT,
                        "{\"stream\":false,\"messages\":[{}]}", 32);
    CHECK(ck.status == 0 && ck.stream == 0 && !ck.has_model, "no model");

    /* a model name beyond the limit is cut on a character boundary */
    strcpy(big, "{\"messages\":[{}],\"model\":\"");
    for (i = 0; i < 130; i++) {
        strcat(big, "\xc3\xa9");                    /* é, 2 bytes */
    }
    strcat(big, "\"}");
    glm_http_check_body(&ck, GLM_OP_CHAT, big, strlen(big));
    CHECK(ck.status == 0 && ck.model_truncated && ck.model_len == 256,
          "truncated model: %zu", ck.model_len);
    glm_http_unknown_model(&ck);
    CHECK(ck.status == 404 && strcmp(ck.param, "model") == 0
          && strstr(ck.message, "...` does not exist.") != NULL,
          "truncated 404: %s", ck.message);
}

static void
test_models(void)
{
    static const char  names[] = "glm-4.5\0glm-4.5-air\0";
    glm_http_check          ck;

    CHECK(glm_http_model_served(names, sizeof(names) - 1, "glm-4.5", 7), "first");
    CHECK(glm_http_model_served(names, sizeof(names) - 1, "glm-4.5-air", 11),
          "second");
    CHECK(!glm_http_model_served(names, sizeof(names) - 1, "glm-4", 5), "prefix");
    CHECK(!glm_http_model_served(names, sizeof(names) - 1, "", 0), "empty name");
    CHECK(!glm_http_model_served("a\0b", 3, "a\0b", 3), "embedded NUL");
    CHECK(glm_http_model_served("only", 4, "only", 4), "no trailing NUL");
    CHECK(glm_http_model_served("", 0, "anything", 8), "empty list");
    CHECK(glm_http_model_served("\0\0", 2, "anything", 8), "list of empties");

    glm_http_check_body(&ck, GLM_OP_CHAT,
                        "{\"model\":\"gpt-4\",\"messages\":[{}]}", 33);
    glm_http_unknown_model(&ck);
    CHECK(strcmp(ck.message, "The model `gpt-4` does not exist.") == 0,
          "404 message: %s", ck.message);
}

static void
test_error_bodies(void)
{
    char    buf[512];
    size_t  n;

    n = glm_http_error_json(buf, sizeof(buf), 400,
                       "Unsupported Media Type: Only 'application/json' is "
                       "allowed", NULL);
    CHECK(n < sizeof(buf) && memcmp(buf,
          "{\"error\":{\"message\":\"Unsupported Media Type: Only "
          "'application/json' is allowed\",\"type\":\"BadRequestError\","
          "\"param\":null,\"code\":400}}", n) == 0, "400: %.*s", (int) n, buf);

    n = glm_http_error_json(buf, sizeof(buf), 404,
                       "The model `x\"y` does not exist.", "model");
    CHECK(n < sizeof(buf) && memcmp(buf,
          "{\"error\":{\"message\":\"The model `x\\\"y` does not exist.\","
          "\"type\":\"NotFoundError\",\"param\":\"model\",\"code\":404}}", n)
          == 0, "404: %.*s", (int) n, buf);

    n = glm_http_error_json(buf, sizeof(buf), 503, "a\\b\n\x01", NULL);
    CHECK(n < sizeof(buf) && memcmp(buf,
          "{\"error\":{\"message\":\"a\\\\b\\n\\u0001\","
          "\"type\":\"ServiceUnavailableError\",\"param\":null,\"code\":503}}",
          n) == 0, "escapes: %.*s", (int) n, buf);

    /* sizing call, then a short buffer: never written past cap */
    n = glm_http_error_json(NULL, 0, 413, "too large", NULL);
    memset(buf, 'Z', sizeof(buf));
    CHECK(glm_http_error_json(buf, 10, 413, "too large", NULL) == n
          && buf[10] == 'Z' && memcmp(buf, "{\"error\":{", 10) == 0,
          "bounded write");

    n = glm_http_sse_error(buf, sizeof(buf), 500, "engine process exited");
    CHECK(n < sizeof(buf) && memcmp(buf,
          "data: {\"error\":{\"message\":\"engine process exited\","
          "\"type\":\"InternalServerError\",\"param\":null,\"code\":500}}\n\n"
          "data: [DONE]\n\n", n) == 0, "sse: %.*s", (int) n, buf);

    CHECK(strcmp(glm_http_error_type(429), "RateLimitError") == 0, "429 type");
    CHECK(strcmp(glm_http_error_type(599), "InternalServerError") == 0, "5xx type");
    CHECK(strcmp(glm_http_error_type(418), "BadRequestError") == 0, "4xx type");
    CHECK(strcmp(glm_http_error_reason(413), "Request Entity Too Large") == 0,
          "413 reason");
}

int
main(void)
{
    test_content_type();
    test_bodies();
    test_models();
    test_error_bodies();

    printf("test_http_check: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
