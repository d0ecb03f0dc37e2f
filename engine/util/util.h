/*
 * util.h: the small things every engine file needs: error reports that carry
 * where and why, whole-file reads, bf16/f16 conversion, a monotonic clock.
 *
 * Error convention: a function that can fail takes a `glm_err *` as its last
 * argument, fills it with one line (no trailing newline) and returns -1 (or
 * NULL).  The caller either adds context with glm_err_prefix() or prints it.
 * Nothing in the engine calls exit() on bad input; only main() does.
 */
#ifndef GLM_UTIL_H
#define GLM_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define GLM_ERR_MAX 1024

typedef struct {
    char msg[GLM_ERR_MAX];
} glm_err;

/* printf-style: replaces the message.  Always returns -1 for `return glm_errf(...)`. */
int glm_errf(glm_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* printf-style: puts "<prefix>: " before the current message. */
int glm_err_prefix(glm_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Reads a whole file into a NUL-terminated malloc'd buffer. */
char *glm_read_file(const char *path, size_t *len, glm_err *err);

/* Joins dir and name into out (size out_size); -1 if it does not fit. */
int glm_path_join(char *out, size_t out_size, const char *dir, const char *name);

int glm_file_exists(const char *path);

double glm_now_seconds(void);

/* A command-line value of option opt as a whole integer / number within
 * [lo, hi]; else prints "glm-engine: OPT wants ..." and returns -1. */
int glm_arg_long(const char *opt, const char *s, long lo, long hi, long *out);
int glm_arg_double(const char *opt, const char *s, double lo, double hi, double *out);

static inline float glm_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t) h << 16;
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* Round to nearest even, NaN kept quiet: what torch does for .to(bfloat16). */
static inline uint16_t glm_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return (uint16_t) ((u >> 16) | 0x40);
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t) (u >> 16);
}

float glm_f16_to_f32(uint16_t h);

#endif
