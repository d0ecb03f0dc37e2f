/*
 * structured.c: see structured.h.  Request fields in, a glm_so out; the
 * messages for malformed fields are pydantic's as vLLM returns them (field
 * path, pydantic's sentence, [type=..., input_value=..., input_type=...]),
 * the rule violations vLLM checks itself are vLLM's sentences.
 */
#include "structured.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebnf.h"
#include "regex.h"
#include "util/json.h"

#define SO_JSON_WS  16             /* as tool-call JSON (tool_grammar.c TG_JSON_WS) */

/* A JSON null counts as absent, as pydantic's optional fields. */
static yajl_val
so_field(yajl_val obj, const char *key)
{
    yajl_val v = glm_json_get(obj, key);

    return v != NULL && YAJL_IS_NULL(v) ? NULL : v;
}

/* pydantic's input_value and input_type for a value */
static void
so_input(yajl_val v, char *buf, size_t n)
{
    const char *type;
    char val[64];

    if (YAJL_IS_STRING(v)) {
        type = "str";
        snprintf(val, sizeof(val), "'%.50s'", v->u.string);
    } else if (YAJL_IS_INTEGER(v)) {
        type = "int";
        snprintf(val, sizeof(val), "%.50s", v->u.number.r);
    } else if (YAJL_IS_NUMBER(v)) {
        type = "float";
        snprintf(val, sizeof(val), "%.50s", v->u.number.r);
    } else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
        type = "bool";
        snprintf(val, sizeof(val), "%s", YAJL_IS_TRUE(v) ? "True" : "False");
    } else if (YAJL_IS_ARRAY(v)) {
        type = "list";
        snprintf(val, sizeof(val), "[...]");
    } else if (YAJL_IS_OBJECT(v)) {
        type = "dict";
        snprintf(val, sizeof(val), "{...}");
    } else {
        type = "NoneType";
        snprintf(val, sizeof(val), "None");
    }
    snprintf(buf, n, "input_value=%s, input_type=%s", val, type);
}

static int
so_pydantic(glm_err *err, const char *loc, const char *msg, const char *type, yajl_val v)
{
    char in[160];

    so_input(v, in, sizeof(in));
    return glm_errf(err, "1 validation error for ChatCompletionRequest\n%s\n  %s [type=%s, %s]",
                    loc, msg, type, in);
}

static int
so_bool(yajl_val obj, const char *key, const char *loc, int *out, glm_err *err)
{
    yajl_val v = so_field(obj, key);

    if (v == NULL) {
        return 0;
    }
    if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
        return so_pydantic(err, loc, "Input should be a valid boolean", "bool_type", v);
    }
    *out = YAJL_IS_TRUE(v);
    return 0;
}

/* the JSON schema of a response: compiled into *tools */
static int
so_schema(glm_so *so, glm_tools **tools, yajl_val schema, const char *what, glm_err *err)
{
    int root = glm_tools_add_schema(tools, schema, err);

    if (root < 0) {
        return glm_err_prefix(err, "%s", what);
    }
    so->kind = GLM_SO_JSON;
    so->root = root;
    return 0;
}

static int
so_json_object(glm_so *so, glm_tools **tools, glm_err *err)
{
    char ebuf[64];
    yajl_val obj = yajl_tree_parse("{\"type\": \"object\"}", ebuf, sizeof(ebuf));
    int r;

    if (obj == NULL) {
        return glm_errf(err, "out of memory");
    }
    r = so_schema(so, tools, obj, "json_object", err);
    yajl_tree_free(obj);
    so->what = "json_object";
    return r;
}

static int
so_dfa(glm_so *so, glm_rx *rx, const char *what, glm_err *err)
{
    if (rx == NULL) {
        return glm_err_prefix(err, "structured_outputs.%s", what);
    }
    so->dfa = glm_dfa_compile(rx, err);
    glm_rx_free(rx);
    if (so->dfa == NULL) {
        return glm_err_prefix(err, "structured_outputs.%s", what);
    }
    so->kind = GLM_SO_DFA;
    so->what = what;
    return 0;
}

/* structured_outputs.choice: the exact strings */
static glm_rx *
so_choice(yajl_val list, glm_err *err)
{
    glm_rx *alt;
    size_t i;

    if (!YAJL_IS_ARRAY(list) || list->u.array.len == 0) {
        glm_errf(err, "'choice' must be a non-empty list of strings");
        return NULL;
    }
    alt = glm_rx_new(GLM_RX_ALT);
    for (i = 0; alt != NULL && i < list->u.array.len; i++) {
        yajl_val c = list->u.array.values[i];
        if (!YAJL_IS_STRING(c)) {
            glm_rx_free(alt);
            glm_errf(err, "choice[%zu] is not a string", i);
            return NULL;
        }
        if (glm_rx_add(alt, glm_rx_string(c->u.string, strlen(c->u.string))) != 0) {
            glm_rx_free(alt);
            alt = NULL;
        }
    }
    if (alt == NULL) {
        glm_errf(err, "out of memory");
    }
    return alt;
}

/* structured_outputs: exactly one constraint, read into so */
static int
so_structured_outputs(glm_so *so, glm_tools **tools, yajl_val s, int named_tool,
                      const char **param, glm_err *err)
{
    static const char *const kinds[] = { "json", "regex", "choice", "grammar", "json_object",
                                         "structural_tag" };
    yajl_val v;
    int i, n = 0, n_core = 0, dummy = 0;

    *param = "structured_outputs";
    if (!YAJL_IS_OBJECT(s)) {
        return so_pydantic(err, "structured_outputs", "Input should be a dictionary or an"
                           " instance of StructuredOutputsParams", "dataclass_type", s);
    }
    for (i = 0; i < 6; i++) {
        if (so_field(s, kinds[i]) != NULL) {
            n++;
            n_core += i < 3;
        }
    }
    if (n_core > 1) {
        return glm_errf(err, "You can only use one kind of constraints for structured outputs"
                        " ('json', 'regex' or 'choice').");
    }
    if (n_core > 0 && named_tool) {
        return glm_errf(err, "You can only either use constraints for structured outputs or"
                        " tools, not both.");
    }
    if (n > 1) {
        return glm_errf(err, "You can only use one kind of structured outputs constraint but"
                        " multiple are specified: %s%s%s%s%s%s",
                        so_field(s, "json") ? "json " : "", so_field(s, "regex") ? "regex " : "",
                        so_field(s, "choice") ? "choice " : "",
                        so_field(s, "grammar") ? "grammar " : "",
                        so_field(s, "json_object") ? "json_object " : "",
                        so_field(s, "structural_tag") ? "structural_tag" : "");
    }
    if (n == 0) {
        return glm_errf(err, "You must use one kind of structured outputs constraint but none"
                        " are specified");
    }
    if (so_field(s, "structural_tag") != NULL) {
        return glm_errf(err, "structured_outputs.structural_tag is not supported by this"
                        " server: use json, regex, choice or grammar");
    }
    if (so_field(s, "whitespace_pattern") != NULL) {
        return glm_errf(err, "structured_outputs.whitespace_pattern is not supported by this"
                        " server: JSON whitespace is a run of at most %d spaces, tabs or"
                        " newlines, or none with disable_any_whitespace", SO_JSON_WS);
    }
    if (so_bool(s, "disable_any_whitespace", "structured_outputs.disable_any_whitespace",
                &dummy, err) != 0)
    {
        return -1;
    }
    so->json_ws = dummy ? 0 : SO_JSON_WS;
    if (so_bool(s, "disable_additional_properties",
                "structured_outputs.disable_additional_properties", &dummy, err) != 0)
    {
        return -1;
    }
    if ((v = so_field(s, "json")) != NULL) {
        yajl_val parsed = NULL;
        char ebuf[128];
        int r;
        if (YAJL_IS_STRING(v)) {
            parsed = yajl_tree_parse(v->u.string, ebuf, sizeof(ebuf));
            if (parsed == NULL || !YAJL_IS_OBJECT(parsed)) {
                yajl_tree_free(parsed);
                return glm_errf(err, "structured_outputs.json: a string must hold a JSON"
                                " schema object");
            }
            v = parsed;
        } else if (!YAJL_IS_OBJECT(v)) {
            return so_pydantic(err, "structured_outputs.json", "Input should be a valid"
                               " string or dictionary", "union_type", v);
        }
        r = so_schema(so, tools, v, "structured_outputs.json", err);
        so->what = "json_schema";
        yajl_tree_free(parsed);
        return r;
    }
    if ((v = so_field(s, "json_object")) != NULL) {
        if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
            return so_pydantic(err, "structured_outputs.json_object",
                               "Input should be a valid boolean", "bool_type", v);
        }
        return YAJL_IS_TRUE(v) ? so_json_object(so, tools, err) : 0;
    }
    if ((v = so_field(s, "regex")) != NULL) {
        if (!YAJL_IS_STRING(v)) {
            return so_pydantic(err, "structured_outputs.regex", "Input should be a valid"
                               " string", "string_type", v);
        }
        return so_dfa(so, glm_regex_parse(v->u.string, strlen(v->u.string), err), "regex",
                      err);
    }
    if ((v = so_field(s, "choice")) != NULL) {
        return so_dfa(so, so_choice(v, err), "choice", err);
    }
    v = so_field(s, "grammar");
    if (!YAJL_IS_STRING(v)) {
        return so_pydantic(err, "structured_outputs.grammar", "Input should be a valid"
                           " string", "string_type", v);
    }
    return so_dfa(so, glm_ebnf_parse(v->u.string, strlen(v->u.string), err), "grammar", err);
}

int
glm_so_parse(glm_so *so, glm_tools **tools, yajl_val root, int forced_tool, int named_tool,
             const char **param, glm_err *err)
{
    yajl_val rf = so_field(root, "response_format"), st = so_field(root, "structured_outputs");
    yajl_val type = NULL, js = NULL, schema = NULL;
    const char *t = NULL;

    memset(so, 0, sizeof(*so));
    so->json_ws = SO_JSON_WS;
    so->root = -1;
    *param = NULL;

    /* response_format: checked first, applied over structured_outputs */
    if (rf != NULL) {
        *param = "response_format";
        if (!YAJL_IS_OBJECT(rf)) {
            return so_pydantic(err, "response_format.ResponseFormat", "Input should be a valid"
                               " dictionary or instance of ResponseFormat", "model_type", rf);
        }
        type = glm_json_get(rf, "type");
        if (type == NULL) {
            return glm_errf(err, "1 validation error for ChatCompletionRequest\n"
                            "response_format.ResponseFormat.type\n  Field required"
                            " [type=missing]");
        }
        t = YAJL_IS_STRING(type) ? type->u.string : "";
        if (strcmp(t, "structural_tag") == 0) {
            return glm_errf(err, "response_format type 'structural_tag' is not supported by"
                            " this server: use 'json_schema', 'json_object' or"
                            " structured_outputs");
        }
        if (strcmp(t, "text") != 0 && strcmp(t, "json_object") != 0
            && strcmp(t, "json_schema") != 0)
        {
            return so_pydantic(err, "response_format.ResponseFormat.type", "Input should be"
                               " 'text', 'json_object' or 'json_schema'", "literal_error",
                               type);
        }
        if (strcmp(t, "json_schema") == 0) {
            yajl_val name, strict;
            js = so_field(rf, "json_schema");
            if (js == NULL) {
                return glm_errf(err, "When response_format type is 'json_schema', the"
                                " 'json_schema' field must be provided.");
            }
            if (!YAJL_IS_OBJECT(js)) {
                return so_pydantic(err, "response_format.ResponseFormat.json_schema",
                                   "Input should be a valid dictionary or instance of"
                                   " JsonSchemaResponseFormat", "model_type", js);
            }
            name = glm_json_get(js, "name");
            if (name == NULL) {
                return glm_errf(err, "1 validation error for ChatCompletionRequest\n"
                                "response_format.ResponseFormat.json_schema.name\n  Field"
                                " required [type=missing]");
            }
            if (!YAJL_IS_STRING(name)) {
                return so_pydantic(err, "response_format.ResponseFormat.json_schema.name",
                                   "Input should be a valid string", "string_type", name);
            }
            strict = so_field(js, "strict");
            if (strict != NULL && !YAJL_IS_TRUE(strict) && !YAJL_IS_FALSE(strict)) {
                return so_pydantic(err, "response_format.ResponseFormat.json_schema.strict",
                                   "Input should be a valid boolean", "bool_type", strict);
            }
            schema = so_field(js, "schema");
            if (schema != NULL && !YAJL_IS_OBJECT(schema)) {
                return so_pydantic(err, "response_format.ResponseFormat.json_schema.schema",
                                   "Input should be a valid dictionary", "dict_type", schema);
            }
            if (schema == NULL) {
                return glm_errf(err, "You must use one kind of structured outputs constraint"
                                " but none are specified: response_format.json_schema has no"
                                " 'schema'");
            }
        }
    }
    if (st != NULL) {
        glm_so from_so;
        int r;
        /* a structured_outputs constraint of another kind than response_format's */
        if (t != NULL && strcmp(t, "text") != 0 && YAJL_IS_OBJECT(st)) {
            const char *same = strcmp(t, "json_schema") == 0 ? "json" : "json_object";
            static const char *const kinds[] = { "json", "regex", "choice", "grammar",
                                                 "json_object", "structural_tag" };
            int i;
            for (i = 0; i < 6; i++) {
                if (strcmp(kinds[i], same) != 0 && so_field(st, kinds[i]) != NULL) {
                    *param = "structured_outputs";
                    return glm_errf(err, "You can only use one kind of structured outputs"
                                    " constraint but multiple are specified: response_format"
                                    " %s and structured_outputs.%s", t, kinds[i]);
                }
            }
        }
        if (t == NULL || strcmp(t, "text") == 0) {
            from_so = *so;
            r = so_structured_outputs(&from_so, tools, st, named_tool, param, err);
            glm_dfa_free(r != 0 ? from_so.dfa : NULL);
            if (r != 0) {
                return -1;
            }
            *so = from_so;
        } else {
            /* only the options are read: the constraint is response_format's */
            int off = 0;
            if (!YAJL_IS_OBJECT(st)) {
                *param = "structured_outputs";
                return so_pydantic(err, "structured_outputs", "Input should be a dictionary"
                                   " or an instance of StructuredOutputsParams",
                                   "dataclass_type", st);
            }
            if (so_bool(st, "disable_any_whitespace", "structured_outputs.disable_any_whitespace",
                        &off, err) != 0)
            {
                *param = "structured_outputs";
                return -1;
            }
            so->json_ws = off ? 0 : SO_JSON_WS;
        }
    }
    if (t != NULL && strcmp(t, "json_object") == 0) {
        *param = "response_format";
        if (so_json_object(so, tools, err) != 0) {
            return -1;
        }
    } else if (t != NULL && strcmp(t, "json_schema") == 0) {
        *param = "response_format";
        if (so_schema(so, tools, schema, "response_format.json_schema.schema", err) != 0) {
            return -1;
        }
        so->what = "json_schema";
    }
    if (forced_tool && so->kind != GLM_SO_NONE) {
        /* the forced call is the reply: nothing is left to constrain */
        glm_so_free(so);
    }
    *param = NULL;
    return 0;
}

void
glm_so_free(glm_so *so)
{
    glm_dfa_free(so->dfa);
    so->dfa = NULL;
    so->kind = GLM_SO_NONE;
    so->root = -1;
}
