/*
 * strbuf.h: a growable byte string and the JSON writing the server needs
 * (escaped strings, numbers as Python's json prints them closely enough for
 * any JSON reader).  Allocation failure aborts: every buffer here is bounded
 * by a request's own limits, so running out means the host is out of memory.
 */
#ifndef GLM_STRBUF_H
#define GLM_STRBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char   *data;
    size_t  len;
    size_t  cap;
} glm_str;

void glm_str_reserve(glm_str *s, size_t extra);
void glm_str_add(glm_str *s, const void *p, size_t n);
void glm_str_adds(glm_str *s, const char *z);
void glm_str_addf(glm_str *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void glm_str_free(glm_str *s);
/* drops the first n bytes */
void glm_str_consume(glm_str *s, size_t n);

/* "…" with JSON escapes; invalid UTF-8 is written as U+FFFD */
void glm_json_str(glm_str *s, const char *p, size_t n);
void glm_json_strz(glm_str *s, const char *z);
/* shortest representation that reads back as the same double */
void glm_json_double(glm_str *s, double v);

#endif
