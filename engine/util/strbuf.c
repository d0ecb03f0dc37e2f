/*
 * strbuf.c: see strbuf.h.
 */
#include "strbuf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
glm_str_reserve(glm_str *s, size_t extra)
{
    size_t cap;
    char *p;

    if (s->len + extra + 1 <= s->cap) {
        return;
    }
    cap = s->cap ? s->cap : 256;
    while (cap < s->len + extra + 1) {
        cap *= 2;
    }
    p = realloc(s->data, cap);
    if (p == NULL) {
        fprintf(stderr, "glm-engine: out of memory (%zu bytes)\n", cap);
        abort();
    }
    s->data = p;
    s->cap = cap;
}

void
glm_str_add(glm_str *s, const void *p, size_t n)
{
    glm_str_reserve(s, n);
    if (n) {
        memcpy(s->data + s->len, p, n);
    }
    s->len += n;
    s->data[s->len] = '\0';
}

void
glm_str_adds(glm_str *s, const char *z)
{
    glm_str_add(s, z, strlen(z));
}

void
glm_str_addf(glm_str *s, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    glm_str_reserve(s, (size_t) n);
    va_start(ap, fmt);
    vsnprintf(s->data + s->len, (size_t) n + 1, fmt, ap);
    va_end(ap);
    s->len += (size_t) n;
}

void
glm_str_free(glm_str *s)
{
    free(s->data);
    s->data = NULL;
    s->len = s->cap = 0;
}

void
glm_str_consume(glm_str *s, size_t n)
{
    if (n >= s->len) {
        s->len = 0;
    } else {
        memmove(s->data, s->data + n, s->len - n);
        s->len -= n;
    }
    if (s->data) {
        s->data[s->len] = '\0';
    }
}

/* length of the valid UTF-8 sequence at p (1..4), or 0 if invalid */
static size_t
glm_utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    }
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80) {
            return 0;
        }
        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f)) {
            return 0;
        }
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80
            || (p[3] & 0xc0) != 0x80)
        {
            return 0;
        }
        if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f)) {
            return 0;
        }
        return 4;
    }
    return 0;
}

void
glm_json_str(glm_str *s, const char *z, size_t n)
{
    const unsigned char *p = (const unsigned char *) z;
    size_t i = 0, k;

    glm_str_reserve(s, n + 2);
    glm_str_add(s, "\"", 1);
    while (i < n) {
        unsigned char c = p[i];
        switch (c) {
        case '"':  glm_str_add(s, "\\\"", 2); i++; continue;
        case '\\': glm_str_add(s, "\\\\", 2); i++; continue;
        case '\n': glm_str_add(s, "\\n", 2); i++; continue;
        case '\r': glm_str_add(s, "\\r", 2); i++; continue;
        case '\t': glm_str_add(s, "\\t", 2); i++; continue;
        case '\b': glm_str_add(s, "\\b", 2); i++; continue;
        case '\f': glm_str_add(s, "\\f", 2); i++; continue;
        default:
            break;
        }
        if (c < 0x20 || c == 0x7f) {
            glm_str_addf(s, "\\u%04x", c);
            i++;
            continue;
        }
        k = glm_utf8_len(p + i, n - i);
        if (k == 0) {
            glm_str_add(s, "\xef\xbf\xbd", 3);
            i++;
            continue;
        }
        glm_str_add(s, p + i, k);
        i += k;
    }
    glm_str_add(s, "\"", 1);
}

void
glm_json_strz(glm_str *s, const char *z)
{
    glm_json_str(s, z, strlen(z));
}

void
glm_json_double(glm_str *s, double v)
{
    char buf[64];
    int prec;

    if (!isfinite(v)) {
        /* JSON has no infinities: -inf logprobs become a very small number,
         * as OpenAI clients expect a number there */
        glm_str_adds(s, v < 0 ? "-9999.0" : (isnan(v) ? "null" : "9999.0"));
        return;
    }
    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, v);
        if (strtod(buf, NULL) == v) {
            break;
        }
    }
    glm_str_adds(s, buf);
    if (strpbrk(buf, ".eEn") == NULL) {
        glm_str_adds(s, ".0");
    }
}
