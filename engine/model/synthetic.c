/*
 * synthetic.c: see synthetic.h.
 */
#include "synthetic.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "config.h"
#include "tensor_list.h"

#define GLM_SYN_CHUNK   (8u << 20)          /* bytes filled and written at a time */
#define GLM_SYN_STAMP   "synthetic.txt"     /* what was written, for reuse */

/* BF16 1.0 and 1/256, F16 random magnitude, FP8 E4M3 random magnitude: see
 * glm_syn_fill for the bit patterns */
#define GLM_SYN_BF16_ONE    0x3f80u
#define GLM_SYN_SCALE       (1.0f / 256.0f)

typedef enum {
    GLM_SYN_WEIGHT = 0,     /* random */
    GLM_SYN_ONE,            /* norms */
    GLM_SYN_ZERO,           /* the routers' correction bias, integers */
    GLM_SYN_SCALE_T,        /* FP8 weight scales */
} glm_syn_kind;

static int
glm_syn_ends(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static glm_syn_kind
glm_syn_kind_of(const glm_tensor_info *t)
{
    if (glm_syn_ends(t->name, "weight_scale") || glm_syn_ends(t->name, "weight_scale_inv")
        || glm_syn_ends(t->name, "input_scale"))
    {
        return GLM_SYN_SCALE_T;
    }
    if (strstr(t->name, "correction_bias") != NULL
        || (t->dtype != GLM_DTYPE_F32 && t->dtype != GLM_DTYPE_BF16
            && t->dtype != GLM_DTYPE_F16 && t->dtype != GLM_DTYPE_F8_E4M3))
    {
        return GLM_SYN_ZERO;
    }
    if (t->ndim == 1 && glm_syn_ends(t->name, "norm.weight")) {
        return GLM_SYN_ONE;
    }
    return GLM_SYN_WEIGHT;
}

/* splitmix64: fast, and seeded per tensor so a tensor's bytes do not depend
 * on which tensors precede it */
static uint64_t
glm_syn_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t
glm_syn_seed(const char *name)
{
    uint64_t h = 1469598103934665603ull;        /* FNV-1a */

    for (; *name; name++) {
        h = (h ^ (uint8_t) *name) * 1099511628211ull;
    }
    return h;
}

static void
glm_syn_fill(uint8_t *buf, size_t n, glm_dtype dtype, glm_syn_kind kind, uint64_t *rng)
{
    size_t i;

    if (kind == GLM_SYN_ZERO) {
        memset(buf, 0, n);
        return;
    }
    if (kind == GLM_SYN_ONE || kind == GLM_SYN_SCALE_T) {
        float f = kind == GLM_SYN_ONE ? 1.0f : GLM_SYN_SCALE;
        uint16_t h = glm_f32_to_bf16(f);
        size_t es = glm_dtype_size(dtype);

        for (i = 0; i + es <= n; i += es) {
            if (dtype == GLM_DTYPE_F32) {
                memcpy(buf + i, &f, 4);
            } else if (dtype == GLM_DTYPE_F16) {
                uint16_t one = kind == GLM_SYN_ONE ? 0x3c00u : 0x1c00u;   /* 1, 1/256 */
                memcpy(buf + i, &one, 2);
            } else {
                memcpy(buf + i, &h, 2);
            }
        }
        return;
    }
    for (i = 0; i < n; i += 8) {
        uint64_t r = glm_syn_next(rng), v;
        size_t k = n - i < 8 ? n - i : 8;

        switch (dtype) {
        case GLM_DTYPE_BF16:
            /* sign, exponent 0b011101xx (2^-11..2^-8), mantissa random */
            v = (r & 0x81ff81ff81ff81ffull) | 0x3a003a003a003a00ull;
            break;
        case GLM_DTYPE_F16:
            /* sign, exponent 0b001xx (2^-11..2^-8), mantissa random */
            v = (r & 0x8fff8fff8fff8fffull) | 0x1000100010001000ull;
            break;
        case GLM_DTYPE_F8_E4M3:
            /* sign, exponent 0b01xx (2^-3..2^0), mantissa random: never
             * the NaN code S.1111.111 */
            v = (r & 0x9f9f9f9f9f9f9f9full) | 0x2020202020202020ull;
            break;
        default: {
            /* F32: uniform in +-2^-8 */
            float f[2];
            f[0] = ((float) (uint32_t) r / 4294967296.0f - 0.5f) / 128.0f;
            f[1] = ((float) (uint32_t) (r >> 32) / 4294967296.0f - 0.5f) / 128.0f;
            memcpy(&v, f, 8);
        }
        }
        memcpy(buf + i, &v, k);
    }
}

/* the decoder layer a tensor belongs to, or -1 */
static int
glm_syn_layer_of(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);

    if (strncmp(name, prefix, n) != 0 || strncmp(name + n, "layers.", 7) != 0) {
        return -1;
    }
    return atoi(name + n + 7);
}

/* config.json with num_hidden_layers (the decoder's, wherever it sits) set
 * to `layers` and no MTP layer */
static char *
glm_syn_config(const char *text, int from, int layers)
{
    static const char *keys[] = { "\"num_hidden_layers\"", "\"num_nextn_predict_layers\"" };
    size_t cap = strlen(text) + 64, len = 0;
    char *out = malloc(cap);
    const char *p = text;

    if (out == NULL) {
        return NULL;
    }
    while (*p) {
        int k, matched = 0;

        for (k = 0; k < 2 && !matched; k++) {
            size_t kl = strlen(keys[k]);
            const char *q;
            char *end;
            long v;

            if (strncmp(p, keys[k], kl) != 0) {
                continue;
            }
            for (q = p + kl; *q == ' ' || *q == '\t' || *q == '\n' || *q == '\r' || *q == ':'; q++) {
            }
            v = strtol(q, &end, 10);
            if (end == q || (k == 0 && v != from)) {
                continue;
            }
            len += (size_t) snprintf(out + len, cap - len, "%.*s%d", (int) (q - p), p,
                                     k == 0 ? layers : 0);
            p = end;
            matched = 1;
        }
        if (!matched) {
            out[len++] = *p++;
        }
    }
    out[len] = '\0';
    return out;
}

static int
glm_syn_write_file(const char *path, const char *text, glm_err *err)
{
    FILE *f = fopen(path, "w");

    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
        if (f != NULL) {
            fclose(f);
        }
        return glm_errf(err, "%s: %s", path, strerror(errno));
    }
    return 0;
}

static int
glm_syn_mkdirs(const char *dir, glm_err *err)
{
    char tmp[4096];
    size_t i, n = strlen(dir);

    if (n >= sizeof(tmp)) {
        return glm_errf(err, "%s: path too long", dir);
    }
    memcpy(tmp, dir, n + 1);
    for (i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char c = tmp[i];
            tmp[i] = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
                return glm_errf(err, "mkdir %s: %s", tmp, strerror(errno));
            }
            tmp[i] = c;
        }
    }
    return 0;
}

/* F32/I32 first, then 2-byte types, then bytes: every tensor starts at a
 * multiple of its element size */
static int
glm_syn_order(const void *a, const void *b)
{
    const glm_tensor_info *x = *(glm_tensor_info * const *) a, *y = *(glm_tensor_info * const *) b;
    size_t sx = glm_dtype_size(x->dtype), sy = glm_dtype_size(y->dtype);

    if (sx != sy) {
        return sx > sy ? -1 : 1;
    }
    return strcmp(x->name, y->name);
}

static int
glm_syn_by_name(const void *a, const void *b)
{
    return strcmp(((const glm_tensor_info *) a)->name, ((const glm_tensor_info *) b)->name);
}

static int
glm_syn_by_name_ptr(const void *a, const void *b)
{
    return strcmp((*(glm_tensor_info * const *) a)->name, (*(glm_tensor_info * const *) b)->name);
}

/* the written file's tensors are the kept source tensors, exactly */
static int
glm_syn_verify(const char *out, glm_tensor_info **kept, size_t n, glm_err *err)
{
    glm_tensor_list back;
    glm_tensor_info **byname;
    size_t i;
    int d, rc = -1;

    if (glm_tensor_list_load(&back, out, err) != 0) {
        glm_tensor_list_free(&back);
        return glm_err_prefix(err, "reading back %s", out);
    }
    byname = malloc(n * sizeof(*byname) + 1);
    if (byname == NULL) {
        glm_tensor_list_free(&back);
        return glm_errf(err, "out of memory");
    }
    memcpy(byname, kept, n * sizeof(*byname));
    qsort(byname, n, sizeof(*byname), glm_syn_by_name_ptr);
    qsort(back.t, back.n, sizeof(back.t[0]), glm_syn_by_name);
    if (back.n != n) {
        glm_errf(err, "%s holds %zu tensors, %zu were written", out, back.n, n);
        goto done;
    }
    for (i = 0; i < n; i++) {
        const glm_tensor_info *a = byname[i], *b = &back.t[i];
        int same = strcmp(a->name, b->name) == 0 && a->dtype == b->dtype && a->ndim == b->ndim;
        for (d = 0; same && d < a->ndim; d++) {
            same = a->shape[d] == b->shape[d];
        }
        if (!same) {
            glm_errf(err, "%s: tensor %s does not read back as written", out, a->name);
            goto done;
        }
    }
    rc = 0;
done:
    free(byname);
    glm_tensor_list_free(&back);
    return rc;
}

int
glm_synthetic_write(const char *src, int layers, const char *out, glm_err *err)
{
    glm_config cfg;
    glm_tensor_list list;
    glm_tensor_info **kept = NULL;
    char path[4096], stamp[8192], *cfg_text = NULL, *new_cfg = NULL, *header = NULL, *old;
    size_t i, n = 0, hcap, hlen = 0;
    uint64_t total = 0, done = 0, offset = 0, next_report = 1ull << 30;
    uint8_t *buf = NULL;
    FILE *f = NULL;
    double t0;
    int rc = -1;

    memset(&list, 0, sizeof(list));
    if (glm_config_load(&cfg, src, err) != 0) {
        return glm_err_prefix(err, "synthetic checkpoint from %s", src);
    }
    if (layers < 1 || layers > cfg.num_layers) {
        glm_errf(err, "--layers %d: %s has %d decoder layers", layers, src, cfg.num_layers);
        goto done;
    }
    if (glm_tensor_list_load(&list, src, err) != 0) {
        glm_err_prefix(err, "synthetic checkpoint from %s", src);
        goto done;
    }
    kept = malloc(list.n * sizeof(*kept) + 1);
    if (kept == NULL) {
        glm_errf(err, "out of memory");
        goto done;
    }
    for (i = 0; i < list.n; i++) {
        int l = glm_syn_layer_of(list.t[i].name, cfg.weight_prefix);
        if (l < layers) {
            kept[n++] = &list.t[i];
            total += list.t[i].nbytes;
        }
    }
    qsort(kept, n, sizeof(*kept), glm_syn_order);
    snprintf(stamp, sizeof(stamp), "source %s\nlayers %d\ntensors %zu\nbytes %llu\n", src,
             layers, n, (unsigned long long) total);

    if (glm_syn_mkdirs(out, err) != 0) {
        goto done;
    }
    glm_path_join(path, sizeof(path), out, GLM_SYN_STAMP);
    old = glm_file_exists(path) ? glm_read_file(path, NULL, err) : NULL;
    if (old != NULL && strcmp(old, stamp) == 0) {
        free(old);
        fprintf(stderr, "synthetic: reusing %s (%d of %d layers of %s, %.2f GiB)\n", out,
                layers, cfg.num_layers, src, (double) total / (1u << 30));
        rc = 0;
        goto done;
    }
    free(old);
    remove(path);                   /* incomplete until the stamp is back */

    glm_path_join(path, sizeof(path), src, "config.json");
    cfg_text = glm_read_file(path, NULL, err);
    new_cfg = cfg_text != NULL ? glm_syn_config(cfg_text, cfg.num_layers, layers) : NULL;
    if (new_cfg == NULL) {
        if (cfg_text != NULL) {
            glm_errf(err, "out of memory");
        }
        goto done;
    }
    glm_path_join(path, sizeof(path), out, "config.json");
    if (glm_syn_write_file(path, new_cfg, err) != 0) {
        goto done;
    }

    /* the safetensors header: 8-byte length, JSON padded to 8 bytes */
    hcap = 256 + n * 256;
    header = malloc(hcap);
    if (header == NULL) {
        glm_errf(err, "out of memory");
        goto done;
    }
    hlen = (size_t) snprintf(header, hcap, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (i = 0; i < n; i++) {
        const glm_tensor_info *t = kept[i];
        int d;

        if (hcap - hlen < strlen(t->name) + 200) {
            glm_errf(err, "tensor name too long: %s", t->name);
            goto done;
        }
        hlen += (size_t) snprintf(header + hlen, hcap - hlen, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                                  t->name, glm_dtype_name(t->dtype));
        for (d = 0; d < t->ndim; d++) {
            hlen += (size_t) snprintf(header + hlen, hcap - hlen, "%s%lld", d ? "," : "",
                                      (long long) t->shape[d]);
        }
        hlen += (size_t) snprintf(header + hlen, hcap - hlen, "],\"data_offsets\":[%llu,%llu]}",
                                  (unsigned long long) offset,
                                  (unsigned long long) (offset + t->nbytes));
        offset += t->nbytes;
    }
    header[hlen++] = '}';
    while (hlen % 8 != 0) {
        header[hlen++] = ' ';
    }

    glm_path_join(path, sizeof(path), out, "model.safetensors");
    f = fopen(path, "wb");
    buf = malloc(GLM_SYN_CHUNK);
    if (f == NULL || buf == NULL) {
        glm_errf(err, "%s: %s", path, f == NULL ? strerror(errno) : "out of memory");
        goto done;
    }
    {
        uint64_t hl = hlen;
        uint8_t le[8];
        int b;
        for (b = 0; b < 8; b++) {
            le[b] = (uint8_t) (hl >> (8 * b));
        }
        if (fwrite(le, 1, 8, f) != 8 || fwrite(header, 1, hlen, f) != hlen) {
            glm_errf(err, "%s: %s", path, strerror(errno));
            goto done;
        }
    }
    fprintf(stderr, "synthetic: writing %s: %zu tensors, %.2f GiB (%d of %d layers of %s)\n",
            path, n, (double) total / (1u << 30), layers, cfg.num_layers, src);
    t0 = glm_now_seconds();
    for (i = 0; i < n; i++) {
        const glm_tensor_info *t = kept[i];
        glm_syn_kind kind = glm_syn_kind_of(t);
        uint64_t rng = glm_syn_seed(t->name), left = t->nbytes;

        while (left > 0) {
            size_t k = left < GLM_SYN_CHUNK ? (size_t) left : GLM_SYN_CHUNK;
            glm_syn_fill(buf, k, t->dtype, kind, &rng);
            if (fwrite(buf, 1, k, f) != k) {
                glm_errf(err, "%s: %s", path, strerror(errno));
                goto done;
            }
            left -= k;
            done += k;
            if (done >= next_report) {
                double dt = glm_now_seconds() - t0;
                fprintf(stderr, "synthetic: %.1f / %.1f GiB written (%.2f GB/s)\n",
                        (double) done / (1u << 30), (double) total / (1u << 30),
                        dt > 0 ? (double) done / dt / 1e9 : 0.0);
                next_report += 1ull << 30;
            }
        }
    }
    if (fclose(f) != 0) {
        f = NULL;
        glm_errf(err, "%s: %s", path, strerror(errno));
        goto done;
    }
    f = NULL;
    if (glm_syn_verify(out, kept, n, err) != 0) {
        goto done;
    }
    glm_path_join(path, sizeof(path), out, GLM_SYN_STAMP);
    if (glm_syn_write_file(path, stamp, err) != 0) {
        goto done;
    }
    rc = 0;
done:
    if (f != NULL) {
        fclose(f);
    }
    free(buf);
    free(header);
    free(new_cfg);
    free(cfg_text);
    free(kept);
    glm_tensor_list_free(&list);
    glm_config_free(&cfg);
    return rc;
}
