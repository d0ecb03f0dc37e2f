/*
 * tensor_list.c: see tensor_list.h.
 */
#include "tensor_list.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define GLM_MANIFEST_MAX_TENSORS  (1 << 22)   /* a bad range is an error, not OOM */
#define GLM_MANIFEST_MAX_NAME     512

static int glm_tensor_list_push(glm_tensor_list *l, const char *name, glm_dtype dtype,
    int ndim, const int64_t *shape, glm_err *err);
static int glm_tensor_list_expand(glm_tensor_list *l, const char *name,
    const glm_tensor_info *proto, const char *path, int line, glm_err *err);
static int glm_manifest_line(glm_tensor_list *l, char *s, const char *path, int line,
    glm_err *err);
static int glm_dtype_from_name(const char *s, glm_dtype *out);
static int glm_tensor_info_cmp(const void *a, const void *b);

void
glm_tensor_list_free(glm_tensor_list *l)
{
    size_t i;

    for (i = 0; i < l->n; i++) {
        free(l->t[i].name);
    }
    free(l->t);
    memset(l, 0, sizeof(*l));
}

static int
glm_tensor_list_push(glm_tensor_list *l, const char *name, glm_dtype dtype, int ndim,
    const int64_t *shape, glm_err *err)
{
    glm_tensor_info *ti;
    int d;

    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        glm_tensor_info *t = realloc(l->t, cap * sizeof(*t));
        if (t == NULL) {
            return glm_errf(err, "out of memory listing tensors");
        }
        l->t = t;
        l->cap = cap;
    }
    ti = &l->t[l->n];
    memset(ti, 0, sizeof(*ti));
    ti->name = strdup(name);
    if (ti->name == NULL) {
        return glm_errf(err, "out of memory listing tensors");
    }
    ti->dtype = dtype;
    ti->ndim = ndim;
    ti->numel = 1;
    for (d = 0; d < ndim; d++) {
        ti->shape[d] = shape[d];
        ti->numel *= shape[d];
    }
    ti->nbytes = (uint64_t) ti->numel * glm_dtype_size(dtype);
    l->n++;
    return 0;
}

int
glm_tensor_list_from_checkpoint(glm_tensor_list *l, glm_checkpoint *ck, glm_err *err)
{
    size_t i, n = glm_checkpoint_count(ck);

    memset(l, 0, sizeof(*l));
    snprintf(l->source, sizeof(l->source), "safetensors headers");
    for (i = 0; i < n; i++) {
        const glm_tensor *t = glm_checkpoint_at(ck, i);
        if (glm_tensor_list_push(l, t->name, t->dtype, t->ndim, t->shape, err) != 0) {
            return -1;
        }
    }
    return 0;
}

static int
glm_dtype_from_name(const char *s, glm_dtype *out)
{
    int t;

    for (t = GLM_DTYPE_F32; t <= GLM_DTYPE_F64; t++) {
        if (strcmp(glm_dtype_name((glm_dtype) t), s) == 0) {
            *out = (glm_dtype) t;
            return 0;
        }
    }
    return -1;
}

/* Adds `name` with every {a..b} range expanded, first range outermost. */
static int
glm_tensor_list_expand(glm_tensor_list *l, const char *name, const glm_tensor_info *proto,
    const char *path, int line, glm_err *err)
{
    const char *open = strchr(name, '{'), *close;
    char buf[GLM_MANIFEST_MAX_NAME], *end;
    long a, b, i;
    int pre;

    if (open == NULL) {
        if (l->n >= GLM_MANIFEST_MAX_TENSORS) {
            return glm_errf(err, "%s:%d: more than %d tensors", path, line,
                            GLM_MANIFEST_MAX_TENSORS);
        }
        return glm_tensor_list_push(l, name, proto->dtype, proto->ndim, proto->shape, err);
    }
    close = strchr(open, '}');
    errno = 0;
    a = strtol(open + 1, &end, 10);
    if (close == NULL || end == open + 1 || strncmp(end, "..", 2) != 0) {
        return glm_errf(err, "%s:%d: a range in a name is {a..b}", path, line);
    }
    b = strtol(end + 2, &end, 10);
    if (errno != 0 || end != close || a < 0 || b < a) {
        return glm_errf(err, "%s:%d: a range in a name is {a..b} with 0 <= a <= b", path, line);
    }
    if (b - a >= GLM_MANIFEST_MAX_TENSORS) {
        return glm_errf(err, "%s:%d: a range of more than %d numbers", path, line,
                        GLM_MANIFEST_MAX_TENSORS);
    }
    pre = (int) (open - name);
    for (i = a; i <= b; i++) {
        if (snprintf(buf, sizeof(buf), "%.*s%ld%s", pre, name, i, close + 1)
            >= (int) sizeof(buf))
        {
            return glm_errf(err, "%s:%d: name longer than %d bytes", path, line,
                            GLM_MANIFEST_MAX_NAME - 1);
        }
        if (glm_tensor_list_expand(l, buf, proto, path, line, err) != 0) {
            return -1;
        }
    }
    return 0;
}

/* "NAME DTYPE [d0,d1,...]" (s is modified) */
static int
glm_manifest_line(glm_tensor_list *l, char *s, const char *path, int line, glm_err *err)
{
    glm_tensor_info proto;
    char *name, *dtype, *shape, *p, *end;

    memset(&proto, 0, sizeof(proto));
    name = strtok(s, " \t");
    dtype = strtok(NULL, " \t");
    shape = strtok(NULL, "");
    if (name == NULL || dtype == NULL || shape == NULL) {
        return glm_errf(err, "%s:%d: expected NAME DTYPE SHAPE", path, line);
    }
    if (strlen(name) >= GLM_MANIFEST_MAX_NAME) {
        return glm_errf(err, "%s:%d: name longer than %d bytes", path, line,
                        GLM_MANIFEST_MAX_NAME - 1);
    }
    if (glm_dtype_from_name(dtype, &proto.dtype) != 0) {
        return glm_errf(err, "%s:%d: unknown dtype '%s' (safetensors names: BF16, F32,"
                        " F8_E4M3, ...)", path, line, dtype);
    }
    p = shape;
    while (isspace((unsigned char) *p)) {
        p++;
    }
    if (*p++ != '[') {
        return glm_errf(err, "%s:%d: shape must be [d0,d1,...]", path, line);
    }
    for (;;) {
        while (isspace((unsigned char) *p)) {
            p++;
        }
        if (*p == ']' && proto.ndim == 0) {
            p++;
            break;
        }
        errno = 0;
        if (proto.ndim == GLM_MAX_DIMS) {
            return glm_errf(err, "%s:%d: more than %d dimensions", path, line, GLM_MAX_DIMS);
        }
        proto.shape[proto.ndim] = strtoll(p, &end, 10);
        if (errno != 0 || end == p || proto.shape[proto.ndim] < 0
            || proto.shape[proto.ndim] > (1LL << 40))
        {
            return glm_errf(err, "%s:%d: shape must be [d0,d1,...] of sizes >= 0",
                            path, line);
        }
        proto.ndim++;
        p = end;
        while (isspace((unsigned char) *p)) {
            p++;
        }
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p++ == ']') {
            break;
        }
        return glm_errf(err, "%s:%d: shape must be [d0,d1,...]", path, line);
    }
    while (isspace((unsigned char) *p)) {
        p++;
    }
    if (*p != '\0') {
        return glm_errf(err, "%s:%d: unexpected '%s' after the shape", path, line, p);
    }
    return glm_tensor_list_expand(l, name, &proto, path, line, err);
}

static int
glm_tensor_info_cmp(const void *a, const void *b)
{
    return strcmp(((const glm_tensor_info *) a)->name, ((const glm_tensor_info *) b)->name);
}

int
glm_tensor_list_parse_manifest(glm_tensor_list *l, const char *text, const char *path,
    glm_err *err)
{
    const char *p = text;
    char buf[2048];
    int line = 0;
    size_t i;

    memset(l, 0, sizeof(*l));
    snprintf(l->source, sizeof(l->source), "%s", GLM_TENSORS_MANIFEST);
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t) (nl - p) : strlen(p);
        char *s = buf, *e;

        line++;
        if (len >= sizeof(buf)) {
            return glm_errf(err, "%s:%d: line longer than %zu bytes", path, line,
                            sizeof(buf) - 1);
        }
        memcpy(buf, p, len);
        buf[len] = '\0';
        p += len + (nl != NULL);
        while (isspace((unsigned char) *s)) {
            s++;
        }
        e = s + strlen(s);
        while (e > s && isspace((unsigned char) e[-1])) {
            *--e = '\0';
        }
        if (*s == '\0' || *s == '#') {
            continue;
        }
        if (glm_manifest_line(l, s, path, line, err) != 0) {
            return -1;
        }
    }
    if (l->n == 0) {
        return glm_errf(err, "%s: no tensors", path);
    }
    qsort(l->t, l->n, sizeof(l->t[0]), glm_tensor_info_cmp);
    for (i = 1; i < l->n; i++) {
        if (strcmp(l->t[i - 1].name, l->t[i].name) == 0) {
            return glm_errf(err, "%s: tensor '%s' is listed twice", path, l->t[i].name);
        }
    }
    return 0;
}

int
glm_tensor_list_load(glm_tensor_list *l, const char *dir, glm_err *err)
{
    char path[4096], path2[4096];
    glm_checkpoint *ck;
    char *text;
    int rc;

    memset(l, 0, sizeof(*l));
    if (glm_path_join(path, sizeof(path), dir, "model.safetensors.index.json") != 0
        || glm_path_join(path2, sizeof(path2), dir, "model.safetensors") != 0)
    {
        return glm_errf(err, "%s: path too long", dir);
    }
    if (glm_file_exists(path) || glm_file_exists(path2)) {
        ck = glm_checkpoint_open(dir, err);
        if (ck == NULL) {
            return -1;
        }
        rc = glm_tensor_list_from_checkpoint(l, ck, err);
        glm_checkpoint_close(ck);
        return rc;
    }
    if (glm_path_join(path, sizeof(path), dir, GLM_TENSORS_MANIFEST) != 0) {
        return glm_errf(err, "%s: path too long", dir);
    }
    if (!glm_file_exists(path)) {
        return glm_errf(err, "%s: no model.safetensors, model.safetensors.index.json or"
                        " %s (a tensor manifest)", dir, GLM_TENSORS_MANIFEST);
    }
    text = glm_read_file(path, NULL, err);
    if (text == NULL) {
        return -1;
    }
    rc = glm_tensor_list_parse_manifest(l, text, path, err);
    free(text);
    return rc;
}
