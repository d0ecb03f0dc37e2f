/*
 * json_text.h: JSON as text, with no schema involved: the kinds of JSON
 * values as bits, Python json.dumps-style writing and normalizing, and an
 * incremental syntax check for JSON being generated.  json_schema.h
 * includes this, so the schema code and its callers see one interface.
 */
#ifndef GLM_JSON_TEXT_H
#define GLM_JSON_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

#include "util/strbuf.h"

/* JSON value kinds, as bits.  "number" is INT|NUM: every integer is one. */
#define GLM_JT_NULL   0x01u
#define GLM_JT_BOOL   0x02u
#define GLM_JT_INT    0x04u
#define GLM_JT_NUM    0x08u
#define GLM_JT_STR    0x10u
#define GLM_JT_ARR    0x20u
#define GLM_JT_OBJ    0x40u
#define GLM_JT_ANY    0x7fu

/*
 * Parses JSON text (surrounding whitespace allowed) and appends it to out
 * normalized the way Python's json.dumps(ensure_ascii=False) writes it:
 * ", " and ": " separators, strings re-escaped, numbers as written.
 * lenient also accepts Python literals (True, False, None, 'single-quoted'
 * strings, trailing commas), as vLLM's ast.literal_eval fallback does.
 * Returns the value's GLM_JT_* kind, or -1 (out unchanged) when the text is
 * not one value.
 */
int glm_json_normalize(const char *p, size_t n, int lenient, glm_str *out);

/* Python json.dumps of a parsed value (same spacing as above). */
void glm_json_write(glm_str *out, yajl_val v);


/*
 * Incremental JSON syntax check, a byte at a time: tells as early as possible
 * that a text can no longer be one JSON value, so the output parser can stop
 * buffering a value it may have to type as a string.  Plain struct, no
 * allocation; nesting deeper than GLM_JSON_PREFIX_DEPTH is an error.
 */
#define GLM_JSON_PREFIX_DEPTH 64

typedef struct {
    uint8_t       stack[GLM_JSON_PREFIX_DEPTH];  /* '{' or '[' per level */
    int           depth;
    int           st;              /* what the next byte may be */
    int           key;             /* the string being read is an object key */
    int           hex;             /* \uXXXX digits left */
    const char   *lit;             /* true/false/null being matched */
    int           litpos;
    unsigned      kind;            /* GLM_JT_* of the top-level value, 0 before it */
    int           failed;
} glm_json_prefix;

void glm_json_prefix_init(glm_json_prefix *j);
/* -1 once the bytes so far cannot start one JSON value (sticky). */
int glm_json_prefix_push(glm_json_prefix *j, const char *p, size_t n);
/* 1 when the bytes so far are exactly one complete value (plus whitespace). */
int glm_json_prefix_complete(const glm_json_prefix *j);

#endif
