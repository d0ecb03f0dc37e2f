/*
 * speculative.c: see speculative.h.
 */
#include "speculative.h"

#include <stdio.h>

#include "util/json.h"

int
glm_speculative_config_parse(const char *json, int *tokens, glm_err *err)
{
    static const char *methods[] = { "mtp", "glm4_moe_mtp", "deepseek_mtp" };
    char msg[256];
    yajl_val root, method, n;
    size_t i;
    int ok = 0;

    root = yajl_tree_parse(json, msg, sizeof(msg));
    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        yajl_tree_free(root);
        return glm_errf(err, "--speculative-config must be a JSON object, e.g."
                        " '{\"method\": \"mtp\", \"num_speculative_tokens\": 1}'");
    }
    for (i = 0; i < root->u.object.len; i++) {
        const char *k = root->u.object.keys[i];
        if (strcmp(k, "method") != 0 && strcmp(k, "num_speculative_tokens") != 0) {
            glm_errf(err, "--speculative-config: \"%s\" is not supported (method and"
                     " num_speculative_tokens are)", k);
            goto done;
        }
    }
    method = glm_json_get(root, "method");
    if (method == NULL || !YAJL_IS_STRING(method)) {
        glm_errf(err, "--speculative-config: \"method\" must be \"mtp\" (the checkpoint's"
                 " multi-token-prediction layer)");
        goto done;
    }
    for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        ok |= strcmp(method->u.string, methods[i]) == 0;
    }
    if (!ok) {
        glm_errf(err, "--speculative-config: method \"%s\" is not supported; \"mtp\" is"
                 " (the checkpoint's own next-token-prediction layer)", method->u.string);
        goto done;
    }
    ok = 0;
    n = glm_json_get(root, "num_speculative_tokens");
    if (n != NULL && !(YAJL_IS_INTEGER(n) && YAJL_GET_INTEGER(n) == 1)) {
        glm_errf(err, "--speculative-config: num_speculative_tokens must be 1 (GLM-4.5"
                 " has one MTP layer; more drafts per step are not supported yet)");
        goto done;
    }
    *tokens = 1;
    ok = 1;
done:
    yajl_tree_free(root);
    return ok ? 1 : -1;
}
