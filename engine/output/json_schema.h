/*
 * json_schema.h: the request's tools, their parameter schemas compiled into
 * a small graph the output parser (glm_output.c) and the tool-call grammar
 * (tool_grammar.c) both read, and an independent validator of values against
 * a schema.  The JSON text helpers they share are in json_text.h (included).
 *
 * Compiling (glm_tools_parse) keeps what typing and constrained decoding
 * need and drops the rest, on purpose:
 *   type (a name or a list), nullable (OpenAPI), enum, const, properties,
 *   required, additionalProperties (false / a schema), items (a schema),
 *   minItems/maxItems, minLength/maxLength, anyOf/oneOf (a union), and local
 *   $ref ("#/$defs/X", "#/definitions/X", any JSON pointer into the tool's
 *   parameters; cycles become cycles in the graph).
 * Ignored: pattern, format, minimum/maximum, multipleOf, allOf, not,
 * if/then/else, prefixItems, patternProperties, uniqueItems.  A schema that
 * is not an object (true, missing) is "any".  An object with more than 64
 * properties is compiled as an object with free keys (the grammar tracks
 * which keys were written in a 64-bit mask).  An enum with more than 256
 * values is dropped (the type stays).
 *
 * The validator (glm_schema_check) is deliberately separate from the
 * compiler: it reads the raw schema tree, so tests can check what the
 * grammar produced against an independent reading of the same schema.
 */
#ifndef GLM_JSON_SCHEMA_H
#define GLM_JSON_SCHEMA_H

#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

#include "json_text.h"     /* GLM_JT_* kinds, and the JSON text helpers */
#include "util/strbuf.h"
#include "util/util.h"

#define GLM_SCHEMA_MAX_PROPS  64
#define GLM_SCHEMA_MAX_ENUM   256

typedef struct glm_schema glm_schema;

struct glm_schema {
    uint16_t      id;              /* index in glm_tools.nodes */
    unsigned      types;           /* GLM_JT_* bits this node accepts */
    /* a union (anyOf/oneOf): the branches, each a node of its own; the
     * node's other fields are then unused */
    int           n_alts;
    glm_schema  **alts;
    /* enum/const: every value as JSON text (Python json.dumps spacing) and
     * "raw" (a string's characters unquoted, other values as JSON text),
     * each list sorted and without duplicates */
    int           n_enum, n_enum_raw;
    char        **enum_json;
    char        **enum_raw;
    /* strings, in characters; max_len -1 = unbounded */
    int32_t       min_len, max_len;
    /* objects: declared properties, in declaration order */
    int           n_props;
    char        **prop_names;
    glm_schema  **props;
    uint64_t      required;        /* bit i: prop i is required */
    glm_schema   *addl;            /* value schema of undeclared keys when n_props
                                    * is 0; NULL: no undeclared keys */
    /* arrays; max_items -1 = unbounded */
    glm_schema   *items;
    int32_t       min_items, max_items;
};

typedef struct {
    char         *name;
    glm_schema   *params;          /* the parameters object schema */
} glm_tool;

typedef struct {
    int           n;
    glm_tool     *tools;
    glm_schema  **nodes;           /* every node, nodes[i]->id == i */
    int           n_nodes, cap_nodes;
    glm_schema   *any;             /* the shared "any value" node */
} glm_tools;

/* Compiles a request's "tools" array ([{"type":"function","function":{
 * "name", "parameters"?}}]).  NULL with err for a malformed list (the
 * message names the index and field: a 400 for the request). */
glm_tools *glm_tools_parse(yajl_val tools, glm_err *err);
void glm_tools_free(glm_tools *t);

/* Compiles one more schema into *tools (made when NULL; no tool is added)
 * and returns its root node's id, or -1 with err. */
int glm_tools_add_schema(glm_tools **tools, yajl_val schema, glm_err *err);

/* Index of the tool called name (len bytes), -1 when none. */
int glm_tools_find(const glm_tools *t, const char *name, size_t len);

/* The schema of argument key of tool (a glm_tools_find index; -1 allowed):
 * the declared property, else additionalProperties, else "any". */
const glm_schema *glm_tools_arg_schema(const glm_tools *t, int tool, const char *key,
                                       size_t len);


/*
 * The validator, for the subset the grammar honours: type (name or list;
 * "integer" means a number with no fraction), nullable, enum, const,
 * properties, required, additionalProperties, items, minItems, maxItems,
 * minLength, maxLength (in characters), anyOf, oneOf (exactly one), local
 * $ref (resolved against root).  1 when value is valid; 0 with why filled
 * ("$.a[2]: expected integer").
 */
int glm_schema_check(yajl_val root, yajl_val schema, yajl_val value, char *why,
                     size_t why_size);

/* Equality of two parsed values as the validator's enum and const compare
 * them: deep, numbers by value (1 == 1.0), objects whatever their key order,
 * a NULL value as JSON null. */
int glm_schema_equal(yajl_val a, yajl_val b);

#endif
