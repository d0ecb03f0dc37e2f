/*
 * media_request.c: see media_request.h.
 *
 * Local files: the path is resolved with realpath() and must then lie under
 * the allowed root (itself resolved at start-up), so "..", symlinks and
 * bind tricks in the request cannot leave it; the resolved path is opened
 * with O_NOFOLLOW | O_NONBLOCK (a fifo cannot block the engine) and must be
 * a regular file no larger than the encoded-size limit.
 */
#include "media_request.h"

#include <errno.h>
#include <fcntl.h>
#include <libavutil/mem.h>
#include <libavutil/sha.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/json.h"

/* ---- options ------------------------------------------------------------------ */

static int
glm_proc_from_file(glm_vision_proc *p, const char *dir, const char *name, glm_err *err)
{
    char path[PATH_MAX], ebuf[256];
    yajl_val root, size, v, mean, std;
    size_t len;
    char *text;
    int i;

    if (glm_path_join(path, sizeof(path), dir, name) != 0 || !glm_file_exists(path)) {
        return 0;
    }
    text = glm_read_file(path, &len, err);
    if (text == NULL) {
        return -1;
    }
    root = yajl_tree_parse(text, ebuf, sizeof(ebuf));
    free(text);
    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        yajl_tree_free(root);
        return glm_errf(err, "%s: not a JSON object", path);
    }
    size = glm_json_get(root, "size");
    if (size != NULL && YAJL_IS_OBJECT(size)) {
        if ((v = glm_json_get(size, "shortest_edge")) != NULL && YAJL_IS_INTEGER(v)) {
            p->min_pixels = YAJL_GET_INTEGER(v);
        }
        if ((v = glm_json_get(size, "longest_edge")) != NULL && YAJL_IS_INTEGER(v)) {
            p->max_pixels = YAJL_GET_INTEGER(v);
        }
    }
#define GLM_PROC_INT(key, field) \
    if ((v = glm_json_get(root, key)) != NULL && YAJL_IS_INTEGER(v)) { \
        p->field = (int) YAJL_GET_INTEGER(v); \
    }
    GLM_PROC_INT("patch_size", patch_size)
    GLM_PROC_INT("temporal_patch_size", temporal_patch_size)
    GLM_PROC_INT("merge_size", merge_size)
#undef GLM_PROC_INT
    if ((v = glm_json_get(root, "fps")) != NULL && YAJL_IS_NUMBER(v)) {
        p->fps = YAJL_GET_DOUBLE(v);
    }
    mean = glm_json_get(root, "image_mean");
    std = glm_json_get(root, "image_std");
    for (i = 0; i < 3; i++) {
        if (mean != NULL && YAJL_IS_ARRAY(mean) && mean->u.array.len == 3
            && YAJL_IS_NUMBER(mean->u.array.values[i]))
        {
            p->mean[i] = (float) YAJL_GET_DOUBLE(mean->u.array.values[i]);
        }
        if (std != NULL && YAJL_IS_ARRAY(std) && std->u.array.len == 3
            && YAJL_IS_NUMBER(std->u.array.values[i]))
        {
            p->std[i] = (float) YAJL_GET_DOUBLE(std->u.array.values[i]);
        }
    }
    yajl_tree_free(root);
    if (p->min_pixels < 1 || p->max_pixels < p->min_pixels || p->patch_size < 1
        || p->temporal_patch_size < 1 || p->merge_size < 1 || !(p->fps > 0))
    {
        return glm_errf(err, "%s: size/patch/merge/fps values out of range", path);
    }
    return 0;
}

int
glm_media_opts_init(glm_media_opts *o, const char *model_dir, glm_err *err)
{
    memset(o, 0, sizeof(*o));
    glm_media_limits_default(&o->limits);
    glm_vision_proc_default_image(&o->image_proc);
    glm_vision_proc_default_video(&o->video_proc);
    o->max_items = GLM_MEDIA_MAX_ITEMS;
    if (model_dir == NULL) {
        return 0;
    }
    if (glm_proc_from_file(&o->image_proc, model_dir, "preprocessor_config.json", err) != 0
        || glm_proc_from_file(&o->video_proc, model_dir, "video_preprocessor_config.json",
                              err) != 0)
    {
        return -1;
    }
    return 0;
}

void
glm_media_opts_free(glm_media_opts *o)
{
    free(o->allowed_root);
    o->allowed_root = NULL;
}

int
glm_media_opts_allow_root(glm_media_opts *o, const char *dir, glm_err *err)
{
    char *r = realpath(dir, NULL);
    struct stat st;

    if (r == NULL) {
        return glm_errf(err, "--allowed-local-media-path %s: %s", dir, strerror(errno));
    }
    if (stat(r, &st) != 0 || !S_ISDIR(st.st_mode)) {
        free(r);
        return glm_errf(err, "--allowed-local-media-path %s: not a directory", dir);
    }
    free(o->allowed_root);
    o->allowed_root = r;
    return 0;
}

int
glm_media_opts_io_kwargs(glm_media_opts *o, const char *json, glm_err *err)
{
    char ebuf[256];
    yajl_val root = yajl_tree_parse(json, ebuf, sizeof(ebuf)), video, nf;

    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        yajl_tree_free(root);
        return glm_errf(err, "--media-io-kwargs must be a JSON object such as"
                        " '{\"video\": {\"num_frames\": 32}}'");
    }
    video = glm_json_get(root, "video");
    if (video != NULL) {
        nf = YAJL_IS_OBJECT(video) ? glm_json_get(video, "num_frames") : NULL;
        if (nf != NULL) {
            if (!YAJL_IS_INTEGER(nf) || YAJL_GET_INTEGER(nf) < -1
                || YAJL_GET_INTEGER(nf) > o->limits.max_frames)
            {
                yajl_tree_free(root);
                return glm_errf(err, "--media-io-kwargs: video.num_frames must be -1 (the"
                                " processor's fps sampling) or 1..%d", o->limits.max_frames);
            }
            o->video_num_frames = (int) YAJL_GET_INTEGER(nf);
        }
    }
    yajl_tree_free(root);
    return 0;
}

/* ---- bytes ----------------------------------------------------------------------- */

static int
glm_b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

/* Standard or URL-safe base64, whitespace ignored, padding optional. */
static uint8_t *
glm_b64_decode(const char *s, size_t n, size_t max_out, size_t *out_len, glm_err *err)
{
    uint8_t *out;
    uint32_t acc = 0;
    size_t i, o = 0;
    int bits = 0, pad = 0;

    if (n / 4 * 3 > 2 * max_out + 3) {
        /* far over: refused before decoding; near it, the exact size below */
        glm_errf(err, "the data: URL holds about %zu bytes, over the limit of %zu"
                 " encoded bytes per image or video", n / 4 * 3, max_out);
        return NULL;
    }
    out = malloc(n / 4 * 3 + 3);
    if (out == NULL) {
        glm_errf(err, "out of memory");
        return NULL;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        int v;
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
            continue;
        }
        if (c == '=') {
            pad++;
            continue;
        }
        v = glm_b64_value(c);
        if (v < 0 || pad > 0) {
            free(out);
            glm_errf(err, "the data: URL's base64 payload has an invalid character at"
                     " offset %zu", i);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t) v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t) (acc >> bits);
        }
    }
    if (bits >= 6 || pad > 2) {
        free(out);
        glm_errf(err, "the data: URL's base64 payload is truncated");
        return NULL;
    }
    if (o > max_out) {
        free(out);
        glm_errf(err, "the media is %zu bytes, over the limit of %zu encoded bytes",
                 o, max_out);
        return NULL;
    }
    *out_len = o;
    return out;
}

static int
glm_hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int
glm_under_root(const char *real, const char *root)
{
    size_t root_len = strlen(root);

    return strncmp(real, root, root_len) == 0
           && (real[root_len] == '/' || real[root_len] == '\0'
               || (root_len == 1 && root[0] == '/'));
}

/* Whether a path that does not resolve (realpath failed) would lie under
 * the root: judged by its deepest ancestor that does resolve, so that a
 * missing file outside the root answers as an existing one does (403), and
 * no answer depends on what exists outside it. */
static int
glm_missing_under_root(const char *path, const char *root)
{
    char anc[PATH_MAX], *slash, *real;
    int under;

    snprintf(anc, sizeof(anc), "%s", path);
    for ( ;; ) {
        slash = strrchr(anc, '/');
        if (slash == NULL) {
            return 0;
        }
        slash[slash == anc ? 1 : 0] = '\0';
        real = realpath(anc, NULL);
        if (real != NULL) {
            under = glm_under_root(real, root);
            free(real);
            return under;
        }
        if (slash == anc) {
            return 0;
        }
    }
}

/* Reads a local file under the allowed root; sets *status (400/403). */
static uint8_t *
glm_read_local(const glm_media_opts *o, const char *url, size_t *len, int *status,
    glm_err *err)
{
    char path[PATH_MAX], *real;
    const char *p = url;
    size_t n = 0;
    struct stat st;
    uint8_t *buf;
    ssize_t r;
    int fd;

    *status = 400;
    if (o->allowed_root == NULL) {
        glm_errf(err, "Cannot load local files without `--allowed-local-media-path`.");
        return NULL;
    }
    if (strncmp(p, "file://", 7) == 0) {
        p += 7;
        if (strncmp(p, "localhost/", 10) == 0) {
            p += 9;
        }
    }
    /* percent-decoding, as a file URL's path is */
    while (*p != '\0') {
        char c = *p++;
        if (c == '%' && glm_hexval(p[0]) >= 0 && glm_hexval(p[1]) >= 0) {
            c = (char) (glm_hexval(p[0]) * 16 + glm_hexval(p[1]));
            p += 2;
        }
        if (c == '\0' || n + 1 >= sizeof(path)) {
            glm_errf(err, "the local media path is malformed or too long");
            return NULL;
        }
        path[n++] = c;
    }
    path[n] = '\0';
    if (path[0] != '/') {
        glm_errf(err, "the local media path '%s' must be absolute (file:///path)", path);
        return NULL;
    }
    real = realpath(path, NULL);
    if (real == NULL) {
        int e = errno;

        if (glm_missing_under_root(path, o->allowed_root)) {
            glm_errf(err, "cannot open the local media file '%s': %s", path, strerror(e));
            return NULL;
        }
    }
    if (real == NULL || !glm_under_root(real, o->allowed_root)) {
        *status = 403;
        glm_errf(err, "The file path %s must be a subpath of `--allowed-local-media-path"
                 " %s`.", path, o->allowed_root);
        free(real);
        return NULL;
    }
    fd = open(real, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    free(real);
    if (fd < 0) {
        glm_errf(err, "cannot open the local media file '%s': %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        glm_errf(err, "the local media path '%s' is %s, not a regular file", path,
                 S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a fifo"
                 : "a special file");
        return NULL;
    }
    if ((uint64_t) st.st_size > o->limits.max_encoded_bytes) {
        close(fd);
        glm_errf(err, "the local media file '%s' is %lld bytes, over the limit of %zu"
                 " encoded bytes", path, (long long) st.st_size, o->limits.max_encoded_bytes);
        return NULL;
    }
    buf = malloc((size_t) st.st_size + 1);
    if (buf == NULL) {
        close(fd);
        glm_errf(err, "out of memory");
        return NULL;
    }
    n = 0;
    while (n < (size_t) st.st_size) {
        r = read(fd, buf + n, (size_t) st.st_size - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        n += (size_t) r;
    }
    close(fd);
    *len = n;
    return buf;
}

/* The bytes behind a media URL. */
static uint8_t *
glm_media_bytes(const glm_media_opts *o, const char *url, size_t *len, int *status,
    glm_err *err)
{
    *status = 400;
    if (strncmp(url, "data:", 5) == 0) {
        const char *comma = strchr(url, ','), *semi;
        if (comma == NULL) {
            glm_errf(err, "the data: URL has no ',' before its payload");
            return NULL;
        }
        semi = comma - url >= 12 ? comma - 7 : NULL;
        if (semi == NULL || strncmp(semi, ";base64", 7) != 0) {
            glm_errf(err, "only base64 data: URLs are supported"
                     " (data:<mime>;base64,<payload>)");
            return NULL;
        }
        return glm_b64_decode(comma + 1, strlen(comma + 1), o->limits.max_encoded_bytes,
                              len, err);
    }
    if (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0) {
        glm_errf(err, "http(s) media URLs are not enabled on this server: the operator"
                 " configures glm_media_fetch in nginx (or send the media as a data: URL)");
        return NULL;
    }
    if (strncmp(url, "file:", 5) == 0 || url[0] == '/') {
        return glm_read_local(o, url, len, status, err);
    }
    glm_errf(err, "unsupported media URL scheme in '%.40s': use data:, file:// or"
             " http(s)://", url);
    return NULL;
}

/* ---- collecting ------------------------------------------------------------------ */

typedef struct {
    double fps;
    int    num_frames;        /* > 0: uniform */
} glm_mm_kwargs;

static int
glm_mm_kwargs_parse(const glm_media_opts *o, yajl_val root, glm_mm_kwargs *k,
    glm_media_set *set, glm_err *err)
{
    yajl_val kw = glm_json_get(root, "mm_processor_kwargs");
    yajl_val io = glm_json_get(root, "media_io_kwargs"), video, nf;
    size_t i;

    k->fps = o->video_proc.fps;
    k->num_frames = o->video_num_frames;
    /* the request's media_io_kwargs over --media-io-kwargs, as vLLM merges
     * them (request_fields.c refused any other key) */
    video = io != NULL && YAJL_IS_OBJECT(io) ? glm_json_get(io, "video") : NULL;
    nf = video != NULL && YAJL_IS_OBJECT(video) ? glm_json_get(video, "num_frames") : NULL;
    if (nf != NULL) {
        if (!YAJL_IS_INTEGER(nf) || YAJL_GET_INTEGER(nf) < -1 || YAJL_GET_INTEGER(nf) == 0
            || YAJL_GET_INTEGER(nf) > o->limits.max_frames)
        {
            set->param = "media_io_kwargs";
            return glm_errf(err, "media_io_kwargs.video.num_frames must be -1 (the"
                            " processor's fps sampling) or 1..%d", o->limits.max_frames);
        }
        k->num_frames = (int) YAJL_GET_INTEGER(nf);
    }
    if (kw == NULL || YAJL_IS_NULL(kw)) {
        return 0;
    }
    set->param = "mm_processor_kwargs";
    if (!YAJL_IS_OBJECT(kw)) {
        return glm_errf(err, "'mm_processor_kwargs' must be an object");
    }
    for (i = 0; i < kw->u.object.len; i++) {
        const char *key = kw->u.object.keys[i];
        yajl_val v = kw->u.object.values[i];
        if (strcmp(key, "fps") == 0) {
            if (!YAJL_IS_NUMBER(v) || !(YAJL_GET_DOUBLE(v) > 0 && YAJL_GET_DOUBLE(v) <= 120)) {
                return glm_errf(err, "mm_processor_kwargs.fps must be a number in (0, 120]");
            }
            k->fps = YAJL_GET_DOUBLE(v);
            k->num_frames = 0;
        } else if (strcmp(key, "num_frames") == 0) {
            if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 1
                || YAJL_GET_INTEGER(v) > o->limits.max_frames)
            {
                return glm_errf(err, "mm_processor_kwargs.num_frames must be an integer"
                                " in 1..%d", o->limits.max_frames);
            }
            k->num_frames = (int) YAJL_GET_INTEGER(v);
        } else {
            return glm_errf(err, "mm_processor_kwargs.%s is not supported (fps,"
                            " num_frames)", key);
        }
    }
    set->param = NULL;
    return 0;
}

/* The URL of a part, its kind; 0 when the part is not media. */
static int
glm_part_media(yajl_val part, glm_media_kind *kind, const char **url, glm_err *err)
{
    static const char *keys[2] = { "image_url", "video_url" };
    yajl_val type = glm_json_get(part, "type"), v;
    int k;

    if (!YAJL_IS_OBJECT(part)) {
        return 0;
    }
    if (type != NULL && YAJL_IS_STRING(type)
        && (strcmp(type->u.string, "image_embeds") == 0
            || strcmp(type->u.string, "input_audio") == 0
            || strcmp(type->u.string, "audio_url") == 0))
    {
        glm_errf(err, "content parts of type '%s' are not supported by this model",
                 type->u.string);
        return -1;
    }
    for (k = 0; k < 2; k++) {
        if (type != NULL && YAJL_IS_STRING(type) && strcmp(type->u.string, keys[k]) != 0) {
            continue;
        }
        v = glm_json_get(part, keys[k]);
        if (v == NULL) {
            if (type != NULL && YAJL_IS_STRING(type)) {
                glm_errf(err, "a '%s' part needs an '%s' member with a url", keys[k],
                         keys[k]);
                return -1;
            }
            continue;
        }
        if (YAJL_IS_OBJECT(v)) {
            v = glm_json_get(v, "url");
        }
        if (v == NULL || !YAJL_IS_STRING(v)) {
            glm_errf(err, "'%s.url' must be a string (a data:, file:// or http(s) URL)",
                     keys[k]);
            return -1;
        }
        *kind = k == 0 ? GLM_MEDIA_IMAGE : GLM_MEDIA_VIDEO;
        *url = v->u.string;
        return 1;
    }
    return 0;
}

static int
glm_load_item(const glm_media_opts *o, const glm_mm_kwargs *kw, glm_media_kind kind,
    const char *url, glm_media_item *item, int *status, glm_err *err)
{
    size_t len = 0;
    uint8_t *bytes = glm_media_bytes(o, url, &len, status, err);
    int r;

    if (bytes == NULL) {
        return -1;
    }
    *status = 400;
    item->kind = kind;
    if (kind == GLM_MEDIA_IMAGE) {
        glm_image im = { 0 };
        r = glm_image_decode(bytes, len, &o->limits, &im, err);
        free(bytes);
        item->width = im.width;
        item->height = im.height;
        if (r == 0) {
            r = glm_preprocess_image(&im, &o->image_proc, &item->in, err);
        }
        glm_image_free(&im);
        return r;
    } else {
        glm_video v = { 0 };
        glm_vision_proc vp = o->video_proc;
        int nf = kw->num_frames;

        vp.fps = kw->fps;
        if (nf > 0) {
            r = glm_video_decode(bytes, len, &o->limits, glm_sample_uniform, &nf, &v, err);
        } else {
            r = glm_video_decode(bytes, len, &o->limits, glm_sample_frames_fps, &vp, &v, err);
        }
        free(bytes);
        item->width = v.width;
        item->height = v.height;
        if (r == 0) {
            r = glm_preprocess_video(&v, &vp, &item->in, err);
        }
        glm_video_free(&v);
        return r;
    }
}

int
glm_media_load(const glm_media_opts *o, yajl_val root, glm_media_set *set, glm_err *err)
{
    yajl_val msgs = glm_json_get(root, "messages");
    glm_mm_kwargs kw = { 0, 0 };
    int64_t tokens = 0;
    size_t i, j;

    memset(set, 0, sizeof(*set));
    set->status = 400;
    if (msgs == NULL || !YAJL_IS_ARRAY(msgs)) {
        return 0;
    }
    for (i = 0; i < msgs->u.array.len; i++) {
        yajl_val content = glm_json_get(msgs->u.array.values[i], "content");
        if (content == NULL || !YAJL_IS_ARRAY(content)) {
            continue;
        }
        for (j = 0; j < content->u.array.len; j++) {
            glm_media_kind kind;
            const char *url;
            int r = glm_part_media(content->u.array.values[j], &kind, &url, err);
            glm_media_item *item;

            if (r == 0) {
                continue;
            }
            if (r < 0) {
                goto bad_part;
            }
            if (set->n == 0 && glm_mm_kwargs_parse(o, root, &kw, set, err) != 0) {
                return -1;
            }
            if (set->n >= o->max_items) {
                glm_errf(err, "the request has more than %d images and videos",
                         o->max_items);
                goto bad_part;
            }
            if (set->items == NULL) {
                set->items = calloc((size_t) o->max_items, sizeof(glm_media_item));
                if (set->items == NULL) {
                    set->status = 500;
                    return glm_errf(err, "out of memory");
                }
            }
            item = &set->items[set->n];
            if (glm_load_item(o, &kw, kind, url, item, &set->status, err) != 0) {
                glm_err_prefix(err, "messages[%zu].content[%zu] (%s %d)", i, j,
                               kind == GLM_MEDIA_IMAGE ? "image" : "video",
                               (kind == GLM_MEDIA_IMAGE ? set->n_images : set->n_videos) + 1);
                set->param = "messages";
                glm_vision_input_free(&item->in);
                return -1;
            }
            set->n++;
            tokens += glm_vision_tokens(&item->in, o->image_proc.merge_size);
            if (o->max_tokens > 0 && tokens > o->max_tokens) {
                /* stop before the next image takes more memory for nothing */
                glm_errf(err, "the images and videos up to messages[%zu].content[%zu] already"
                         " need %lld tokens, more than the model's context of %lld",
                         i, j, (long long) tokens, (long long) o->max_tokens);
                set->param = "messages";
                set->status = 400;
                return -1;
            }
            if (kind == GLM_MEDIA_IMAGE) {
                set->n_images++;
            } else {
                set->n_videos++;
            }
            continue;
bad_part:
            glm_err_prefix(err, "messages[%zu].content[%zu]", i, j);
            set->param = "messages";
            set->status = 400;
            return -1;
        }
    }
    return 0;
}

int
glm_media_has_parts(yajl_val root)
{
    yajl_val msgs = glm_json_get(root, "messages");
    size_t i, j;

    if (msgs == NULL || !YAJL_IS_ARRAY(msgs)) {
        return 0;
    }
    for (i = 0; i < msgs->u.array.len; i++) {
        yajl_val content = glm_json_get(msgs->u.array.values[i], "content");
        for (j = 0; content != NULL && YAJL_IS_ARRAY(content) && j < content->u.array.len; j++) {
            yajl_val part = content->u.array.values[j], type;
            if (!YAJL_IS_OBJECT(part)) {
                continue;
            }
            type = glm_json_get(part, "type");
            if (glm_json_get(part, "image_url") != NULL
                || glm_json_get(part, "video_url") != NULL
                || (type != NULL && YAJL_IS_STRING(type) && strcmp(type->u.string, "text") != 0))
            {
                return 1;
            }
        }
    }
    return 0;
}

void
glm_media_set_free(glm_media_set *set)
{
    int i;

    for (i = 0; i < set->n; i++) {
        glm_vision_input_free(&set->items[i].in);
    }
    free(set->items);
    memset(set, 0, sizeof(*set));
}

/* ---- the prompt ------------------------------------------------------------------ */

static int
glm_ids_push(glm_tokenizer_ids *v, int32_t id)
{
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 256;
        int32_t *p = realloc(v->ids, cap * sizeof(int32_t));
        if (p == NULL) {
            return -1;
        }
        v->ids = p;
        v->cap = cap;
    }
    v->ids[v->len++] = id;
    return 0;
}

int
glm_media_expand(const glm_config *c, const glm_tokenizer *tok,
    glm_tokenizer_ctx *tctx, const glm_media_set *set, const int32_t *ids,
    size_t n, glm_tokenizer_ids *out, glm_grid **grids_out, glm_err *err)
{
    int merge2 = c->vision.spatial_merge_size * c->vision.spatial_merge_size;
    int n_img = 0, n_vid = 0, next = 0, k, oom = 0;
    glm_grid *grids;
    size_t i;

    memset(out, 0, sizeof(*out));
    for (i = 0; i < n; i++) {
        n_img += ids[i] == c->image_token_id;
        n_vid += ids[i] == c->video_token_id;
    }
    if (n_img != set->n_images || n_vid != set->n_videos) {
        return glm_errf(err, "the prompt places %d image(s) and %d video(s) but the"
                        " messages hold %d and %d (the chat template renders one"
                        " marker per image_url/video_url part; do not put <|image|> or"
                        " <|video|> in text)", n_img, n_vid, set->n_images, set->n_videos);
    }
    grids = calloc((size_t) (set->n ? set->n : 1), sizeof(glm_grid));
    if (grids == NULL) {
        return glm_errf(err, "out of memory");
    }
    for (i = 0; i < n && !oom; i++) {
        const glm_media_item *it;
        int64_t per, t;

        if (ids[i] != c->image_token_id && ids[i] != c->video_token_id) {
            oom |= glm_ids_push(out, ids[i]);
            continue;
        }
        /* markers and media both in prompt order; the kinds must pair up */
        it = &set->items[next];
        if ((ids[i] == c->video_token_id) != (it->kind == GLM_MEDIA_VIDEO)) {
            free(grids);
            glm_tokenizer_ids_free(out);
            return glm_errf(err, "the chat template placed the images and videos in a"
                            " different order than the messages list them");
        }
        grids[next] = (glm_grid) { it->in.grid_t, it->in.grid_h, it->in.grid_w };
        per = (int64_t) it->in.grid_h * it->in.grid_w / merge2;
        if (it->kind == GLM_MEDIA_IMAGE) {
            for (t = 0; t < per * it->in.grid_t && !oom; t++) {
                oom |= glm_ids_push(out, c->image_token_id);
            }
        } else {
            for (k = 0; k < it->in.grid_t && !oom; k++) {
                char ts[32];
                glm_tokenizer_ids tsid = { 0 };
                size_t q;

                oom |= glm_ids_push(out, c->image_start_token_id);
                for (t = 0; t < per && !oom; t++) {
                    oom |= glm_ids_push(out, c->image_token_id);
                }
                oom |= glm_ids_push(out, c->image_end_token_id);
                snprintf(ts, sizeof(ts), "%d", it->in.pair_seconds ? it->in.pair_seconds[k] : 0);
                if (glm_tokenizer_encode(tok, tctx, ts, strlen(ts), &tsid, err) != 0) {
                    free(grids);
                    glm_tokenizer_ids_free(out);
                    return -1;
                }
                for (q = 0; q < tsid.len && !oom; q++) {
                    oom |= glm_ids_push(out, tsid.ids[q]);
                }
                glm_tokenizer_ids_free(&tsid);
            }
        }
        next++;
    }
    if (oom) {
        free(grids);
        glm_tokenizer_ids_free(out);
        return glm_errf(err, "out of memory");
    }
    *grids_out = grids;
    return 0;
}

float *
glm_media_pixels(const glm_media_set *set, int64_t *n_patches)
{
    int64_t total = 0, off = 0;
    int dim = 0, i;
    float *px;

    for (i = 0; i < set->n; i++) {
        total += set->items[i].in.n_patches;
        dim = set->items[i].in.patch_dim;
    }
    *n_patches = total;
    px = malloc((size_t) (total ? total : 1) * (size_t) (dim ? dim : 1) * sizeof(float));
    if (px == NULL) {
        return NULL;
    }
    for (i = 0; i < set->n; i++) {
        const glm_vision_input *in = &set->items[i].in;
        memcpy(px + off * dim, in->pixel_values, (size_t) in->n_patches * dim * sizeof(float));
        off += in->n_patches;
    }
    return px;
}

uint8_t *
glm_media_item_digests(const glm_media_set *set)
{
    struct AVSHA *sha = av_sha_alloc();
    uint8_t *out = malloc((size_t) (set->n ? set->n : 1) * 32);
    int i;

    if (sha == NULL || out == NULL) {
        av_free(sha);
        free(out);
        return NULL;
    }
    for (i = 0; i < set->n; i++) {
        const glm_vision_input *in = &set->items[i].in;
        int32_t head[6] = { (int32_t) set->items[i].kind, in->grid_t, in->grid_h, in->grid_w,
                            in->patch_dim, in->pair_seconds != NULL };

        av_sha_init(sha, 256);
        av_sha_update(sha, (const uint8_t *) "glm-media", 9);
        av_sha_update(sha, (const uint8_t *) head, sizeof(head));
        if (in->pair_seconds != NULL) {
            av_sha_update(sha, (const uint8_t *) in->pair_seconds,
                          (size_t) in->grid_t * sizeof(int));
        }
        av_sha_update(sha, (const uint8_t *) in->pixel_values,
                      (size_t) in->n_patches * (size_t) in->patch_dim * sizeof(float));
        av_sha_final(sha, out + (size_t) i * 32);
    }
    av_free(sha);
    return out;
}
