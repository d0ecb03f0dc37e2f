/*
 * structured.h: a chat request's structured-output constraint, read from
 * OpenAI's response_format and vLLM's structured_outputs, as vLLM reads them
 * (SERVING-API.md 2.1):
 *
 *   response_format {"type": "text"}                  no constraint
 *                   {"type": "json_object"}           any JSON object
 *                   {"type": "json_schema", "json_schema": {"name", "schema",
 *                    "strict"?, "description"?}}      JSON valid against schema
 *   structured_outputs {"json": schema | "schema text"}, {"regex": "..."},
 *                   {"choice": ["a", "b"]}, {"grammar": "root ::= ..."},
 *                   {"json_object": true}; options "disable_any_whitespace"
 *                   (JSON with no whitespace), "disable_additional_properties"
 *                   (accepted: undeclared keys are never generated where
 *                   properties are declared).
 *
 * response_format overrides the same kind in structured_outputs; two
 * different kinds, or none in a structured_outputs object, are a 400 with
 * vLLM's words.  structural_tag (either field) and whitespace_pattern are
 * refused with a 400 that names them.  A forced tool call (tool_choice
 * "required" or named) drops the constraint, as vLLM does: the reply is the
 * call.  The constraint applies to the content, after "</think>" when the
 * model thinks (tool_grammar.h).
 *
 * JSON schemas are compiled into the request's glm_tools (json_schema.h),
 * so the grammar walks them with the tools' machinery; regex, choice and
 * grammar become a byte_dfa.h automaton.
 */
#ifndef GLM_STRUCTURED_H
#define GLM_STRUCTURED_H

#include <yajl/yajl_tree.h>

#include "byte_dfa.h"
#include "json_schema.h"

typedef enum {
    GLM_SO_NONE = 0,
    GLM_SO_JSON,                   /* root: a node of the request's glm_tools */
    GLM_SO_DFA,                    /* dfa: regex, choice, grammar */
} glm_so_kind;

typedef struct {
    glm_so_kind  kind;
    int          root;             /* GLM_SO_JSON: the schema's node id */
    glm_dfa     *dfa;              /* GLM_SO_DFA: owned */
    int          json_ws;          /* whitespace bytes allowed in a run inside JSON */
    const char  *what;             /* "json_schema", "json_object", "regex", "choice", "grammar" */
} glm_so;

/*
 * Reads response_format and structured_outputs from a chat request.  JSON
 * schemas go into *tools (made when NULL).  forced_tool: tool_choice is
 * "required" or names a tool (the constraint is then read, checked and
 * dropped), named_tool: it names one (vLLM refuses structured_outputs
 * json/regex/choice with it).  0, or -1 with err and *param for a 400.
 */
int glm_so_parse(glm_so *so, glm_tools **tools, yajl_val root, int forced_tool,
                 int named_tool, const char **param, glm_err *err);
void glm_so_free(glm_so *so);

#endif
