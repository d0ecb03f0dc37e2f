/*
 * util.c: see util.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

int
glm_errf(glm_err *err, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL) {
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return -1;
}

int
glm_err_prefix(glm_err *err, const char *fmt, ...)
{
    char prefix[GLM_ERR_MAX / 2], old[GLM_ERR_MAX];
    va_list ap;

    if (err == NULL) {
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    snprintf(err->msg, sizeof(err->msg), "%s: %.*s", prefix,
             (int) (sizeof(err->msg) - sizeof(prefix) - 3), old);
    return -1;
}

char *
glm_read_file(const char *path, size_t *len, glm_err *err)
{
    FILE *f;
    char *buf;
    struct stat st;
    size_t n;

    f = fopen(path, "rb");
    if (f == NULL) {
        glm_errf(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        glm_errf(err, "%s: not a regular file", path);
        return NULL;
    }
    buf = malloc((size_t) st.st_size + 1);
    if (buf == NULL) {
        fclose(f);
        glm_errf(err, "%s: out of memory reading %lld bytes", path,
                 (long long) st.st_size);
        return NULL;
    }
    n = fread(buf, 1, (size_t) st.st_size, f);
    fclose(f);
    if (n != (size_t) st.st_size) {
        free(buf);
        glm_errf(err, "%s: short read (%zu of %lld bytes)", path, n,
                 (long long) st.st_size);
        return NULL;
    }
    buf[n] = '\0';
    if (len != NULL) {
        *len = n;
    }
    return buf;
}

int
glm_path_join(char *out, size_t out_size, const char *dir, const char *name)
{
    int n;

    n = snprintf(out, out_size, "%s/%s", dir, name);
    return (n < 0 || (size_t) n >= out_size) ? -1 : 0;
}

int
glm_file_exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

double
glm_now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

float
glm_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t) (h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t u;
    float f;

    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else {
            /* subnormal: value = mant * 2^-24 */
            f = (float) mant * (1.0f / 16777216.0f);
            return sign ? -f : f;
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((exp + 112) << 23) | (mant << 13);
    }
    memcpy(&f, &u, sizeof(f));
    return f;
}

int
glm_arg_long(const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;

    errno = 0;
    *out = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || *out < lo || *out > hi) {
        fprintf(stderr, "glm-engine: %s wants an integer in [%ld, %ld], got '%s'\n",
                opt, lo, hi, s);
        return -1;
    }
    return 0;
}

int
glm_arg_double(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;

    errno = 0;
    *out = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(*out >= lo && *out <= hi)) {
        fprintf(stderr, "glm-engine: %s wants a number in [%g, %g], got '%s'\n",
                opt, lo, hi, s);
        return -1;
    }
    return 0;
}
