/*
 * safetensors.c: see safetensors.h.
 *
 * File layout (https://github.com/huggingface/safetensors): an 8-byte
 * little-endian header length N, N bytes of JSON mapping tensor names to
 * {dtype, shape, data_offsets:[begin,end]} (offsets relative to the byte
 * buffer after the header), an optional "__metadata__" object, then the byte
 * buffer.  The buffer must be covered exactly by the tensors: no overlaps and
 * no holes, as the reference library insists.
 */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#define GLM_ST_MAX_HEADER (100u << 20)      /* the format's own limit */

typedef struct {
    char          *name;                     /* basename */
    void          *map;
    size_t         size;
} glm_shard;

struct glm_checkpoint {
    char          *dir;
    glm_shard     *shards;
    size_t         nshards;
    glm_tensor    *tensors;
    size_t         ntensors, cap;
    size_t        *table;                     /* open addressing: index+1, 0 empty */
    size_t         table_size;
};

static const struct {
    const char *name;
    glm_dtype   dtype;
    size_t      size;
} glm_dtypes[] = {
    { "F32", GLM_DTYPE_F32, 4 },  { "F16", GLM_DTYPE_F16, 2 },
    { "BF16", GLM_DTYPE_BF16, 2 }, { "F8_E4M3", GLM_DTYPE_F8_E4M3, 1 },
    { "I64", GLM_DTYPE_I64, 8 },  { "I32", GLM_DTYPE_I32, 4 },
    { "I8", GLM_DTYPE_I8, 1 },    { "U8", GLM_DTYPE_U8, 1 },
    { "BOOL", GLM_DTYPE_BOOL, 1 }, { "F64", GLM_DTYPE_F64, 8 },
};

const char *
glm_dtype_name(glm_dtype t)
{
    size_t i;

    for (i = 0; i < sizeof(glm_dtypes) / sizeof(glm_dtypes[0]); i++) {
        if (glm_dtypes[i].dtype == t) {
            return glm_dtypes[i].name;
        }
    }
    return "?";
}

size_t
glm_dtype_size(glm_dtype t)
{
    size_t i;

    for (i = 0; i < sizeof(glm_dtypes) / sizeof(glm_dtypes[0]); i++) {
        if (glm_dtypes[i].dtype == t) {
            return glm_dtypes[i].size;
        }
    }
    return 0;
}

void
glm_shape_str(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t off = 0;
    int i, n;

    n = snprintf(buf, size, "[");
    off = n > 0 ? (size_t) n : 0;
    for (i = 0; i < ndim && off < size; i++) {
        n = snprintf(buf + off, size - off, "%s%lld", i ? ", " : "",
                     (long long) shape[i]);
        off += n > 0 ? (size_t) n : 0;
    }
    if (off < size) {
        snprintf(buf + off, size - off, "]");
    }
}

static uint64_t
glm_hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;            /* FNV-1a */

    while (*s) {
        h ^= (unsigned char) *s++;
        h *= 1099511628211ull;
    }
    return h;
}

static int
glm_table_build(glm_checkpoint *ck, glm_err *err)
{
    size_t i, size = 16, slot;

    while (size < ck->ntensors * 2) {
        size <<= 1;
    }
    ck->table = calloc(size, sizeof(size_t));
    if (ck->table == NULL) {
        return glm_errf(err, "out of memory");
    }
    ck->table_size = size;
    for (i = 0; i < ck->ntensors; i++) {
        slot = glm_hash_str(ck->tensors[i].name) & (size - 1);
        while (ck->table[slot] != 0) {
            glm_tensor *other = &ck->tensors[ck->table[slot] - 1];
            if (strcmp(other->name, ck->tensors[i].name) == 0) {
                return glm_errf(err, "tensor '%s' appears twice (in %s and %s)",
                                other->name, other->file, ck->tensors[i].file);
            }
            slot = (slot + 1) & (size - 1);
        }
        ck->table[slot] = i + 1;
    }
    return 0;
}

glm_tensor *
glm_checkpoint_find(glm_checkpoint *ck, const char *name)
{
    size_t slot;

    if (ck->table_size == 0) {
        return NULL;
    }
    slot = glm_hash_str(name) & (ck->table_size - 1);
    while (ck->table[slot] != 0) {
        glm_tensor *t = &ck->tensors[ck->table[slot] - 1];
        if (strcmp(t->name, name) == 0) {
            return t;
        }
        slot = (slot + 1) & (ck->table_size - 1);
    }
    return NULL;
}

static int
glm_json_int(yajl_val v, int64_t *out)
{
    if (v == NULL || !YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0) {
        return -1;
    }
    *out = YAJL_GET_INTEGER(v);
    return 0;
}

typedef struct {
    int64_t begin, end;
    size_t  index;
} glm_span;

static int
glm_span_cmp(const void *a, const void *b)
{
    const glm_span *x = a, *y = b;

    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1
           : (x->end < y->end ? -1 : x->end > y->end);
}

static int
glm_tensor_push(glm_checkpoint *ck, glm_err *err)
{
    glm_tensor *grown;
    size_t cap;

    if (ck->ntensors < ck->cap) {
        return 0;
    }
    cap = ck->cap ? ck->cap * 2 : 256;
    grown = realloc(ck->tensors, cap * sizeof(glm_tensor));
    if (grown == NULL) {
        return glm_errf(err, "out of memory");
    }
    ck->tensors = grown;
    ck->cap = cap;
    return 0;
}

/* Maps one file and appends its tensors; every field checked. */
static int
glm_shard_load(glm_checkpoint *ck, glm_shard *sh, const char *path, glm_err *err)
{
    struct stat st;
    uint64_t header_len = 0;
    const unsigned char *bytes;
    char *json = NULL, ebuf[256];
    yajl_val root = NULL;
    size_t i, first = ck->ntensors, n;
    int64_t data_len;
    glm_span *spans = NULL;
    int fd, rc = -1, d;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return glm_errf(err, "%s: cannot open: %s", path, strerror(errno));
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return glm_errf(err, "%s: not a regular file", path);
    }
    if (st.st_size < 8) {
        close(fd);
        return glm_errf(err, "%s: truncated: %lld bytes, a safetensors file has"
                        " at least an 8-byte header length", sh->name,
                        (long long) st.st_size);
    }
    sh->size = (size_t) st.st_size;
    sh->map = mmap(NULL, sh->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (sh->map == MAP_FAILED) {
        sh->map = NULL;
        return glm_errf(err, "%s: mmap failed: %s", path, strerror(errno));
    }
    bytes = sh->map;
    for (i = 0; i < 8; i++) {
        header_len |= (uint64_t) bytes[i] << (8 * i);
    }
    if (header_len > GLM_ST_MAX_HEADER || header_len > sh->size - 8) {
        return glm_errf(err, "%s: truncated or corrupt: header length %llu but"
                        " the file has %zu bytes after the length field",
                        sh->name, (unsigned long long) header_len, sh->size - 8);
    }
    if (header_len < 2 || bytes[8] != '{') {
        return glm_errf(err, "%s: corrupt: header is not a JSON object", sh->name);
    }
    json = malloc(header_len + 1);
    if (json == NULL) {
        return glm_errf(err, "out of memory");
    }
    memcpy(json, bytes + 8, header_len);
    json[header_len] = '\0';
    if (strlen(json) != header_len) {
        /* trailing NUL/space padding is allowed only as spaces by the spec */
        glm_errf(err, "%s: corrupt: NUL byte inside the JSON header", sh->name);
        goto done;
    }
    root = yajl_tree_parse(json, ebuf, sizeof(ebuf));
    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        char *nl = strchr(ebuf, '\n');
        if (nl) {
            *nl = '\0';
        }
        glm_errf(err, "%s: corrupt: header JSON does not parse (%s)", sh->name,
                 root == NULL ? ebuf : "not an object");
        goto done;
    }
    data_len = (int64_t) (sh->size - 8 - header_len);

    for (i = 0; i < root->u.object.len; i++) {
        const char *key = root->u.object.keys[i];
        yajl_val v = root->u.object.values[i], dt, shape, offs;
        glm_tensor *t;
        size_t k, esize = 0;
        int64_t numel = 1, begin, end;

        if (strcmp(key, "__metadata__") == 0) {
            continue;
        }
        if (!YAJL_IS_OBJECT(v)) {
            glm_errf(err, "%s: tensor '%s': header entry is not an object",
                     sh->name, key);
            goto done;
        }
        {
            const char *p_dtype[] = { "dtype", NULL };
            const char *p_shape[] = { "shape", NULL };
            const char *p_offs[] = { "data_offsets", NULL };
            dt = yajl_tree_get(v, p_dtype, yajl_t_string);
            shape = yajl_tree_get(v, p_shape, yajl_t_array);
            offs = yajl_tree_get(v, p_offs, yajl_t_array);
        }
        if (dt == NULL || shape == NULL || offs == NULL) {
            glm_errf(err, "%s: tensor '%s': header entry lacks dtype, shape or"
                     " data_offsets", sh->name, key);
            goto done;
        }
        if (glm_tensor_push(ck, err) != 0) {
            goto done;
        }
        t = &ck->tensors[ck->ntensors];
        memset(t, 0, sizeof(*t));
        for (k = 0; k < sizeof(glm_dtypes) / sizeof(glm_dtypes[0]); k++) {
            if (strcmp(dt->u.string, glm_dtypes[k].name) == 0) {
                t->dtype = glm_dtypes[k].dtype;
                esize = glm_dtypes[k].size;
            }
        }
        if (esize == 0 && strcmp(dt->u.string, "F8_E5M2") == 0) {
            glm_errf(err, "%s: tensor '%s': unsupported dtype 'F8_E5M2' (FP8"
                     " checkpoints must store weights as F8_E4M3, as"
                     " compressed-tensors' float-quantized format does)",
                     sh->name, key);
            goto done;
        }
        if (esize == 0) {
            glm_errf(err, "%s: tensor '%s': unsupported dtype '%s'", sh->name,
                     key, YAJL_GET_STRING(dt));
            goto done;
        }
        if (shape->u.array.len > GLM_MAX_DIMS) {
            glm_errf(err, "%s: tensor '%s': %zu dimensions (at most %d supported)",
                     sh->name, key, shape->u.array.len, GLM_MAX_DIMS);
            goto done;
        }
        t->ndim = (int) shape->u.array.len;
        for (d = 0; d < t->ndim; d++) {
            if (glm_json_int(shape->u.array.values[d], &t->shape[d]) != 0) {
                glm_errf(err, "%s: tensor '%s': shape entry %d is not a"
                         " non-negative integer", sh->name, key, d);
                goto done;
            }
            if (t->shape[d] != 0 && numel > INT64_MAX / t->shape[d]) {
                glm_errf(err, "%s: tensor '%s': shape overflows", sh->name, key);
                goto done;
            }
            numel *= t->shape[d];
        }
        if (offs->u.array.len != 2
            || glm_json_int(offs->u.array.values[0], &begin) != 0
            || glm_json_int(offs->u.array.values[1], &end) != 0
            || begin > end)
        {
            glm_errf(err, "%s: tensor '%s': data_offsets must be [begin, end]"
                     " with 0 <= begin <= end", sh->name, key);
            goto done;
        }
        if (end > data_len) {
            glm_errf(err, "%s: truncated: tensor '%s' ends at byte %lld of the"
                     " data but the file holds %lld data bytes", sh->name, key,
                     (long long) end, (long long) data_len);
            goto done;
        }
        if (numel > INT64_MAX / (int64_t) esize
            || numel * (int64_t) esize != end - begin)
        {
            char s[128];
            glm_shape_str(s, sizeof(s), t->ndim, t->shape);
            glm_errf(err, "%s: corrupt: tensor '%s' %s %s needs %lld bytes but"
                     " data_offsets span %lld", sh->name, key,
                     YAJL_GET_STRING(dt), s, (long long) (numel * (int64_t) esize),
                     (long long) (end - begin));
            goto done;
        }
        t->name = strdup(key);
        if (t->name == NULL) {
            glm_errf(err, "out of memory");
            goto done;
        }
        t->file = sh->name;
        t->numel = numel;
        t->nbytes = (size_t) (end - begin);
        t->data = bytes + 8 + header_len + begin;
        ck->ntensors++;
        /* remember offsets for the coverage check below */
        t->used = 0;
        {
            glm_span *grown = realloc(spans, (ck->ntensors - first) * sizeof(glm_span));
            if (grown == NULL) {
                glm_errf(err, "out of memory");
                goto done;
            }
            spans = grown;
            spans[ck->ntensors - first - 1] = (glm_span) { begin, end, ck->ntensors - 1 };
        }
    }

    n = ck->ntensors - first;
    if (n > 0) {
        int64_t at = 0;
        qsort(spans, n, sizeof(glm_span), glm_span_cmp);
        for (i = 0; i < n; i++) {
            if (spans[i].begin < at) {
                glm_errf(err, "%s: corrupt: tensor '%s' overlaps another tensor's"
                         " bytes", sh->name, ck->tensors[spans[i].index].name);
                goto done;
            }
            if (spans[i].begin > at) {
                glm_errf(err, "%s: corrupt: %lld bytes before tensor '%s' belong"
                         " to no tensor", sh->name, (long long) (spans[i].begin - at),
                         ck->tensors[spans[i].index].name);
                goto done;
            }
            at = spans[i].end;
        }
        if (at != data_len) {
            glm_errf(err, "%s: corrupt: %lld trailing bytes belong to no tensor",
                     sh->name, (long long) (data_len - at));
            goto done;
        }
    }
    rc = 0;

done:
    free(spans);
    yajl_tree_free(root);
    free(json);
    return rc;
}

static int
glm_shard_name_ok(const char *name)
{
    size_t n = strlen(name);

    return n > 12 && strchr(name, '/') == NULL && strcmp(name, "..") != 0
           && name[0] != '.' && strcmp(name + n - 12, ".safetensors") == 0;
}

static int
glm_checkpoint_add_shard(glm_checkpoint *ck, const char *name, glm_err *err)
{
    char path[PATH_MAX];
    glm_shard *grown, *sh;

    grown = realloc(ck->shards, (ck->nshards + 1) * sizeof(glm_shard));
    if (grown == NULL) {
        return glm_errf(err, "out of memory");
    }
    ck->shards = grown;
    sh = &ck->shards[ck->nshards++];
    memset(sh, 0, sizeof(*sh));
    sh->name = strdup(name);
    if (sh->name == NULL) {
        return glm_errf(err, "out of memory");
    }
    if (glm_path_join(path, sizeof(path), ck->dir, name) != 0) {
        return glm_errf(err, "%s/%s: path too long", ck->dir, name);
    }
    return glm_shard_load(ck, sh, path, err);
}

static int
glm_checkpoint_open_index(glm_checkpoint *ck, const char *index_path, glm_err *err)
{
    char *text, ebuf[256];
    yajl_val root, map;
    size_t i, j;
    int rc = -1;
    const char *p_map[] = { "weight_map", NULL };

    text = glm_read_file(index_path, NULL, err);
    if (text == NULL) {
        return -1;
    }
    root = yajl_tree_parse(text, ebuf, sizeof(ebuf));
    free(text);
    if (root == NULL) {
        char *nl = strchr(ebuf, '\n');
        if (nl) {
            *nl = '\0';
        }
        return glm_errf(err, "model.safetensors.index.json: invalid JSON (%s)", ebuf);
    }
    map = yajl_tree_get(root, p_map, yajl_t_object);
    if (map == NULL) {
        glm_errf(err, "model.safetensors.index.json: no \"weight_map\" object");
        goto done;
    }
    /* open every distinct shard once, in order of first mention */
    for (i = 0; i < map->u.object.len; i++) {
        const char *file = YAJL_GET_STRING(map->u.object.values[i]);
        int seen = 0;

        if (file == NULL || !glm_shard_name_ok(file)) {
            glm_errf(err, "model.safetensors.index.json: tensor '%s' maps to"
                     " '%s', which is not a plain *.safetensors file name",
                     map->u.object.keys[i], file ? file : "(not a string)");
            goto done;
        }
        for (j = 0; j < ck->nshards; j++) {
            if (strcmp(ck->shards[j].name, file) == 0) {
                seen = 1;
                break;
            }
        }
        if (!seen && glm_checkpoint_add_shard(ck, file, err) != 0) {
            goto done;
        }
    }
    if (glm_table_build(ck, err) != 0) {
        goto done;
    }
    for (i = 0; i < map->u.object.len; i++) {
        glm_tensor *t = glm_checkpoint_find(ck, map->u.object.keys[i]);
        const char *file = YAJL_GET_STRING(map->u.object.values[i]);
        if (t == NULL || strcmp(t->file, file) != 0) {
            glm_errf(err, "model.safetensors.index.json names tensor '%s' in %s,"
                     " but %s", map->u.object.keys[i], file,
                     t == NULL ? "no shard holds it" : "it is in another shard");
            goto done;
        }
    }
    rc = 0;
done:
    yajl_tree_free(root);
    return rc;
}

glm_checkpoint *
glm_checkpoint_open(const char *dir, glm_err *err)
{
    glm_checkpoint *ck;
    char path[PATH_MAX];
    int rc;

    ck = calloc(1, sizeof(*ck));
    if (ck == NULL || (ck->dir = strdup(dir)) == NULL) {
        free(ck);
        glm_errf(err, "out of memory");
        return NULL;
    }
    if (glm_path_join(path, sizeof(path), dir, "model.safetensors.index.json") != 0) {
        glm_errf(err, "%s: path too long", dir);
        glm_checkpoint_close(ck);
        return NULL;
    }
    if (glm_file_exists(path)) {
        rc = glm_checkpoint_open_index(ck, path, err);
    } else {
        glm_path_join(path, sizeof(path), dir, "model.safetensors");
        if (!glm_file_exists(path)) {
            glm_errf(err, "%s: no model.safetensors or model.safetensors.index.json", dir);
            glm_checkpoint_close(ck);
            return NULL;
        }
        rc = glm_checkpoint_add_shard(ck, "model.safetensors", err);
        if (rc == 0) {
            rc = glm_table_build(ck, err);
        }
    }
    if (rc != 0) {
        glm_checkpoint_close(ck);
        return NULL;
    }
    return ck;
}

void
glm_checkpoint_close(glm_checkpoint *ck)
{
    size_t i;

    if (ck == NULL) {
        return;
    }
    for (i = 0; i < ck->ntensors; i++) {
        free((char *) ck->tensors[i].name);
    }
    for (i = 0; i < ck->nshards; i++) {
        if (ck->shards[i].map != NULL) {
            munmap(ck->shards[i].map, ck->shards[i].size);
        }
        free(ck->shards[i].name);
    }
    free(ck->shards);
    free(ck->tensors);
    free(ck->table);
    free(ck->dir);
    free(ck);
}

static glm_tensor *
glm_checkpoint_get_typed(glm_checkpoint *ck, const char *name, int ndim,
    const int64_t *shape, int want_fp8, glm_err *err)
{
    glm_tensor *t;
    char want[128], have[128];
    int d, same, is_float;

    t = glm_checkpoint_find(ck, name);
    if (t == NULL) {
        glm_errf(err, "%s: tensor '%s' is missing from the checkpoint", ck->dir, name);
        return NULL;
    }
    same = t->ndim == ndim;
    for (d = 0; same && d < ndim; d++) {
        same = t->shape[d] == shape[d];
    }
    if (!same) {
        glm_shape_str(want, sizeof(want), ndim, shape);
        glm_shape_str(have, sizeof(have), t->ndim, t->shape);
        glm_errf(err, "%s: tensor '%s' has shape %s, expected %s (from config.json)",
                 t->file, name, have, want);
        return NULL;
    }
    is_float = t->dtype == GLM_DTYPE_F32 || t->dtype == GLM_DTYPE_F16
               || t->dtype == GLM_DTYPE_BF16;
    if (want_fp8 && t->dtype != GLM_DTYPE_F8_E4M3) {
        glm_errf(err, "%s: tensor '%s' has dtype %s, expected F8_E4M3",
                 t->file, name, glm_dtype_name(t->dtype));
        return NULL;
    }
    if (!want_fp8 && t->dtype == GLM_DTYPE_F8_E4M3) {
        glm_errf(err, "%s: tensor '%s' has dtype F8_E4M3, but only the weights"
                 " of Linear layers can be FP8 (this one must be BF16, F16 or F32)",
                 t->file, name);
        return NULL;
    }
    if (!want_fp8 && !is_float) {
        glm_errf(err, "%s: tensor '%s' has dtype %s, expected BF16, F16 or F32",
                 t->file, name, glm_dtype_name(t->dtype));
        return NULL;
    }
    t->used = 1;
    return t;
}

glm_tensor *
glm_checkpoint_get(glm_checkpoint *ck, const char *name, int ndim,
    const int64_t *shape, glm_err *err)
{
    return glm_checkpoint_get_typed(ck, name, ndim, shape, 0, err);
}

glm_tensor *
glm_checkpoint_get_fp8(glm_checkpoint *ck, const char *name, int ndim,
    const int64_t *shape, glm_err *err)
{
    return glm_checkpoint_get_typed(ck, name, ndim, shape, 1, err);
}

size_t
glm_checkpoint_count(const glm_checkpoint *ck)
{
    return ck->ntensors;
}

glm_tensor *
glm_checkpoint_at(glm_checkpoint *ck, size_t i)
{
    return i < ck->ntensors ? &ck->tensors[i] : NULL;
}

const char *
glm_checkpoint_dir(const glm_checkpoint *ck)
{
    return ck->dir;
}

/* One scalar of a scale tensor (F32 or BF16, checked at binding). */
static float
glm_scale_at(const glm_tensor *s, int64_t i)
{
    uint16_t h;
    float f;

    if (s->dtype == GLM_DTYPE_F32) {
        memcpy(&f, (const unsigned char *) s->data + i * 4, 4);
        return f;
    }
    memcpy(&h, (const unsigned char *) s->data + i * 2, 2);
    return glm_bf16_to_f32(h);
}

/*
 * Dequantizes elements [first, first+n) of an FP8 weight: value = fp8 * s,
 * with s the scale covering the element's (row, column).
 *
 * What transformers 5.23 holds after loading a compressed-tensors FP8
 * checkpoint with dequantize=True, in fp32 (t/reference/make_fp8_fixtures.py
 * checks it bit for bit):
 *   - Linear modules go through compressed-tensors' dequantize, which
 *     computes fp8.to(scale.dtype) * scale: with a BF16 scale the product is
 *     rounded to bf16 (round to nearest even) and then widened;
 *   - the routed experts, fused at load time, are dequantized by
 *     transformers' own path, fp8.float() * scale.float(): no rounding
 *     (scale_exact).
 * With an F32 scale both are the plain fp32 product.  fp8 * bf16 needs 12
 * significant bits, so the fp32 product itself is exact.
 */
static void
glm_fp8_dequant(const glm_tensor *t, int64_t first, int64_t n, float *out)
{
    const uint8_t *q = (const uint8_t *) t->data + first;
    const glm_tensor *s = t->scale;
    int round_bf16 = s->dtype == GLM_DTYPE_BF16 && !t->scale_exact;
    int64_t cols = t->ndim >= 2 ? t->shape[t->ndim - 1] : t->numel;
    int64_t i = 0, k, row, col, gcol, end, scale_cols;
    float sc;

    while (i < n) {
        row = (first + i) / cols;
        col = (first + i) % cols;
        end = n - i < cols - col ? n - i : cols - col;     /* rest of this row */
        switch (t->scale_strategy) {
        case GLM_SCALE_TENSOR:
            sc = glm_scale_at(s, 0);
            break;
        case GLM_SCALE_CHANNEL:
            sc = glm_scale_at(s, t->scale_row0 + row);
            break;
        default:                                       /* GLM_SCALE_BLOCK */
            /* gcol: the column in the whole weight, whose scale grid this is */
            scale_cols = s->shape[1];
            gcol = t->scale_col0 + col;
            sc = glm_scale_at(s, (t->scale_row0 + row) / t->block[0] * scale_cols
                                 + gcol / t->block[1]);
            /* stop at the end of this column block */
            if ((gcol / t->block[1] + 1) * t->block[1] - gcol < end) {
                end = (gcol / t->block[1] + 1) * t->block[1] - gcol;
            }
            break;
        }
        for (k = 0; k < end; k++) {
            float v = glm_fp8_e4m3_to_f32(q[i + k]) * sc;
            out[i + k] = round_bf16 ? glm_bf16_to_f32(glm_f32_to_bf16(v)) : v;
        }
        i += end;
    }
}

void
glm_tensor_to_f32(const glm_tensor *t, int64_t first, int64_t n, float *out)
{
    const unsigned char *p;
    int64_t i;
    uint16_t h;

    switch (t->dtype) {
    case GLM_DTYPE_F32:
        memcpy(out, (const unsigned char *) t->data + first * 4,
               (size_t) n * sizeof(float));
        break;
    case GLM_DTYPE_BF16:
        p = (const unsigned char *) t->data + first * 2;
        for (i = 0; i < n; i++) {
            memcpy(&h, p + 2 * i, 2);
            out[i] = glm_bf16_to_f32(h);
        }
        break;
    case GLM_DTYPE_F16:
        p = (const unsigned char *) t->data + first * 2;
        for (i = 0; i < n; i++) {
            memcpy(&h, p + 2 * i, 2);
            out[i] = glm_f16_to_f32(h);
        }
        break;
    case GLM_DTYPE_F8_E4M3:
        if (t->scale != NULL && t->scale_strategy != GLM_SCALE_NONE) {
            glm_fp8_dequant(t, first, n, out);
            break;
        }
        p = (const unsigned char *) t->data + first;
        for (i = 0; i < n; i++) {
            out[i] = glm_fp8_e4m3_to_f32(p[i]);
        }
        break;
    default:
        /* glm_checkpoint_get() admits float dtypes only */
        memset(out, 0, (size_t) n * sizeof(float));
        break;
    }
}
