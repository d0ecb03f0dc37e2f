/*
 * glm_media_urls.c: http(s) media URLs of a chat body, found and replaced
 * (see the header for what is looked for and why).
 *
 * One pass of yajl's event parser, as in glm_http_check.c: a tree of a body
 * carrying megabytes of base64 would cost a worker memory for nothing.  The
 * parser keeps a small stack of what each open container is (the root, the
 * messages array, a message, its content array, a part, a part's image_url
 * or video_url object); everything deeper or elsewhere is "other" and
 * ignored.  A part's "type" may come after its URL, so a part's URLs wait
 * in `pending` until the part closes and only then become refs.
 *
 * Where a string token lies: yajl hands the string callback the decoded
 * text, not its place in the body, but yajl_get_bytes_consumed() inside a
 * callback is the offset just past the token (the lexer advances before it
 * calls back).  The opening quote is found by walking back to the first '"'
 * preceded by an even number of backslashes: inside a valid JSON string
 * every other '"' is escaped.  Both ends are checked to be quotes before a
 * ref is kept, so a yajl that behaved otherwise would give a 500, never a
 * corrupted body.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "glm_media_urls.h"

#define GLM_MEDIA_DEPTH       8       /* containers whose role is tracked */
#define GLM_MEDIA_PENDING     8       /* URLs of one part */

enum {
    GLM_R_OTHER = 0,
    GLM_R_ROOT,
    GLM_R_MESSAGES,
    GLM_R_MESSAGE,
    GLM_R_CONTENT,
    GLM_R_PART,
    GLM_R_MEDIA
};

enum {
    GLM_K_OTHER = 0,
    GLM_K_MESSAGES,
    GLM_K_CONTENT,
    GLM_K_TYPE,
    GLM_K_IMAGE_URL,
    GLM_K_VIDEO_URL,
    GLM_K_URL
};

typedef struct {
    char        *url;           /* malloc'd, NUL-terminated; NULL if too long */
    size_t       len;           /* as decoded */
    char         shown[GLM_MEDIA_URL_SHOWN + 4];
    size_t       start, end;
    int          kind;
} glm_media_pending;

typedef struct {
    glm_media_scan     *s;
    yajl_handle         h;
    const char         *body;
    size_t              body_len;

    int                 depth;
    unsigned char       role[GLM_MEDIA_DEPTH];
    unsigned char       key[GLM_MEDIA_DEPTH];
    int                 media_kind;     /* of the open GLM_R_MEDIA object */

    /* the open part */
    int                 type_seen;
    int                 type_image;
    int                 type_video;
    size_t              npending;
    glm_media_pending   pending[GLM_MEDIA_PENDING];
} glm_media_state;


static int glm_media_fail(glm_media_scan *s, unsigned status,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int glm_media_is_http(const unsigned char *s, size_t len);
static int glm_media_candidate(glm_media_state *st, const unsigned char *s,
    size_t len, int kind);
static int glm_media_close_part(glm_media_state *st);
static int glm_media_accept(glm_media_state *st, glm_media_pending *p);
static const char *glm_media_normalize(const char *url, size_t len,
    char *out, size_t *out_len);
static void glm_media_drop_pending(glm_media_state *st);
static int glm_media_role(glm_media_state *st, int is_map);
static int glm_mcb_null(void *ctx);
static int glm_mcb_boolean(void *ctx, int v);
static int glm_mcb_number(void *ctx, const char *s, size_t len);
static int glm_mcb_string(void *ctx, const unsigned char *s, size_t len);
static int glm_mcb_start_map(void *ctx);
static int glm_mcb_map_key(void *ctx, const unsigned char *s, size_t len);
static int glm_mcb_end_map(void *ctx);
static int glm_mcb_start_array(void *ctx);
static int glm_mcb_end_array(void *ctx);


static const yajl_callbacks  glm_media_callbacks = {
    glm_mcb_null,
    glm_mcb_boolean,
    NULL,
    NULL,
    glm_mcb_number,
    glm_mcb_string,
    glm_mcb_start_map,
    glm_mcb_map_key,
    glm_mcb_end_map,
    glm_mcb_start_array,
    glm_mcb_end_array
};

static const char  glm_media_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";


int
glm_media_may_have_urls(const char *body, size_t len)
{
    const char  *p, *end;

    end = body + len;

    /* every "http:" or "https:" has a colon: look only where colons are */
    for (p = body; (p = memchr(p, ':', (size_t) (end - p))) != NULL; p++) {
        if ((p - body >= 5
             && glm_media_is_http((const unsigned char *) p - 5, 6))
            || (p - body >= 4
                && glm_media_is_http((const unsigned char *) p - 4, 5)))
        {
            return 1;
        }
    }

    for (p = body; (p = memchr(p, '\\', (size_t) (end - p))) != NULL; p++) {
        if (p + 1 < end && p[1] == 'u') {
            return 1;
        }

        /* "\\" is one escape: its second backslash starts nothing */
        if (p + 1 < end && p[1] == '\\') {
            p++;
        }
    }

    return 0;
}


unsigned
glm_media_scan_body(glm_media_scan *s, const char *body, size_t len)
{
    yajl_status       rc;
    glm_media_state  *st;

    memset(s, 0, sizeof(*s));

    /* the state holds the pending URLs' message copies: keep it off the
     * stack of an nginx worker */
    st = calloc(1, sizeof(glm_media_state));
    if (st == NULL) {
        glm_media_fail(s, 500, "Out of memory reading media URLs");
        return s->status;
    }

    st->s = s;
    st->body = body;
    st->body_len = len;

    st->h = yajl_alloc(&glm_media_callbacks, NULL, st);
    if (st->h == NULL) {
        free(st);
        glm_media_fail(s, 500, "Out of memory reading media URLs");
        return s->status;
    }

    rc = yajl_parse(st->h, (const unsigned char *) body, len);
    if (rc == yajl_status_ok) {
        rc = yajl_complete_parse(st->h);
    }

    if (rc == yajl_status_error && s->status == 0) {
        /* glm_http_check_body() passed it: only a caller skipping it */
        glm_media_fail(s, 400, "Invalid JSON in the request body");
    }

    yajl_free(st->h);
    glm_media_drop_pending(st);
    free(st);

    return s->status;
}


void
glm_media_scan_free(glm_media_scan *s)
{
    size_t  i;

    for (i = 0; i < s->nfetches; i++) {
        free(s->fetches[i].url);
        free(s->fetches[i].fetch_url);
        s->fetches[i].url = NULL;
        s->fetches[i].fetch_url = NULL;
    }

    s->nfetches = 0;
    s->nrefs = 0;
}


size_t
glm_media_data_type(const char *ct, size_t len, char *out)
{
    static const char  fallback[] = "application/octet-stream";
    size_t             i, n, slash;

    while (len > 0 && (*ct == ' ' || *ct == '\t')) {
        ct++;
        len--;
    }

    for (n = 0; n < len && ct[n] != ';'; n++) {
        /* void */
    }

    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) {
        n--;
    }

    slash = 0;

    if (n == 0 || n > GLM_MEDIA_TYPE_MAX) {
        goto fallback;
    }

    for (i = 0; i < n; i++) {
        unsigned char  c = (unsigned char) ct[i];

        if (c == '/') {
            if (slash || i == 0 || i == n - 1) {
                goto fallback;
            }

            slash = i;
            out[i] = '/';
            continue;
        }

        /* RFC 7230 tchar: nothing that could end a JSON string or split a
         * data: URL (no '"', '\\', ',', ';', space) */
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c)))
        {
            goto fallback;
        }

        out[i] = (char) ((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
    }

    if (!slash) {
        goto fallback;
    }

    out[n] = '\0';
    return n;

fallback:

    memcpy(out, fallback, sizeof(fallback));
    return sizeof(fallback) - 1;
}


size_t
glm_media_rewrite_len(const glm_media_scan *s, size_t body_len,
    const glm_media_bytes *fetched)
{
    size_t                  i, len, b64, tok;
    const glm_media_bytes  *f;

    len = body_len;

    for (i = 0; i < s->nrefs; i++) {
        f = &fetched[s->refs[i].fetch];

        if (f->len > (SIZE_MAX / 4 - 4) / 4 * 3) {
            return SIZE_MAX;
        }

        b64 = (f->len + 2) / 3 * 4;

        /* "data:" TYPE ";base64," B64, quoted */
        tok = sizeof("\"data:;base64,\"") - 1;

        if (f->type_len > SIZE_MAX - tok - b64) {
            return SIZE_MAX;
        }

        tok += f->type_len + b64;

        len -= s->refs[i].end - s->refs[i].start;

        if (len > SIZE_MAX - tok) {
            return SIZE_MAX;
        }

        len += tok;
    }

    return len;
}


void
glm_media_rewrite(const glm_media_scan *s, const char *body, size_t body_len,
    const glm_media_bytes *fetched, char *out)
{
    char                   *p;
    size_t                  i, at;
    const glm_media_ref    *ref;
    const glm_media_bytes  *f;

    p = out;
    at = 0;

    for (i = 0; i < s->nrefs; i++) {
        ref = &s->refs[i];
        f = &fetched[ref->fetch];

        memcpy(p, body + at, ref->start - at);
        p += ref->start - at;

        memcpy(p, "\"data:", 6);
        p += 6;
        memcpy(p, f->type, f->type_len);
        p += f->type_len;
        memcpy(p, ";base64,", 8);
        p += 8;
        p += glm_media_base64(f->data, f->len, p);
        *p++ = '"';

        at = ref->end;
    }

    memcpy(p, body + at, body_len - at);
}


size_t
glm_media_base64(const unsigned char *in, size_t len, char *out)
{
    char    *p;
    size_t   i;
    uint32_t v;

    p = out;

    for (i = 0; i + 3 <= len; i += 3) {
        v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];
        p[0] = glm_media_b64[v >> 18];
        p[1] = glm_media_b64[(v >> 12) & 63];
        p[2] = glm_media_b64[(v >> 6) & 63];
        p[3] = glm_media_b64[v & 63];
        p += 4;
    }

    if (len - i == 1) {
        v = (uint32_t) in[i] << 16;
        p[0] = glm_media_b64[v >> 18];
        p[1] = glm_media_b64[(v >> 12) & 63];
        p[2] = '=';
        p[3] = '=';
        p += 4;

    } else if (len - i == 2) {
        v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8;
        p[0] = glm_media_b64[v >> 18];
        p[1] = glm_media_b64[(v >> 12) & 63];
        p[2] = glm_media_b64[(v >> 6) & 63];
        p[3] = '=';
        p += 4;
    }

    return (size_t) (p - out);
}


void
glm_media_url_shown(const char *url, size_t len, char *out)
{
    size_t  n;

    if (len <= GLM_MEDIA_URL_SHOWN) {
        memcpy(out, url, len);
        out[len] = '\0';
        return;
    }

    n = GLM_MEDIA_URL_SHOWN;

    while (n > 0 && ((unsigned char) url[n] & 0xc0) == 0x80) {
        n--;
    }

    memcpy(out, url, n);
    memcpy(out + n, "...", 4);
}


static int
glm_media_fail(glm_media_scan *s, unsigned status, const char *fmt, ...)
{
    va_list  ap;

    if (s->status != 0) {
        return 0;
    }

    s->status = status;
    s->param = status == 400 ? "messages" : NULL;

    va_start(ap, fmt);
    vsnprintf(s->message, sizeof(s->message), fmt, ap);
    va_end(ap);

    /* stops the parse */
    return 0;
}


/* the scheme is http or https, in any case */
static int
glm_media_is_http(const unsigned char *s, size_t len)
{
    if (len < 5 || (s[0] | 0x20) != 'h' || (s[1] | 0x20) != 't'
        || (s[2] | 0x20) != 't' || (s[3] | 0x20) != 'p')
    {
        return 0;
    }

    return s[4] == ':' || (len >= 6 && (s[4] | 0x20) == 's' && s[5] == ':');
}


/* a URL string in a place the engine reads media from */
static int
glm_media_candidate(glm_media_state *st, const unsigned char *s, size_t len,
    int kind)
{
    size_t              end, start, bs;
    const char         *body;
    glm_media_pending  *p;

    if (!glm_media_is_http(s, len)) {
        return 1;
    }

    body = st->body;
    end = yajl_get_bytes_consumed(st->h);

    if (end < 2 || end > st->body_len || body[end - 1] != '"') {
        return glm_media_fail(st->s, 500, "Could not locate a media URL in "
                              "the request body");
    }

    /* back to the opening quote: the first '"' not escaped */
    for (start = end - 1; start > 0; /* void */ ) {
        start--;

        if (body[start] != '"') {
            continue;
        }

        for (bs = 0; bs < start && body[start - 1 - bs] == '\\'; bs++) {
            /* void */
        }

        if (bs % 2 == 0) {
            break;
        }
    }

    if (body[start] != '"' || start == end - 1) {
        return glm_media_fail(st->s, 500, "Could not locate a media URL in "
                              "the request body");
    }

    if (st->npending == GLM_MEDIA_PENDING) {
        return glm_media_fail(st->s, 400, "At most %d http(s) media URLs are "
                              "allowed in a request", GLM_MEDIA_URLS_MAX);
    }

    p = &st->pending[st->npending];
    memset(p, 0, sizeof(*p));

    p->len = len;
    p->start = start;
    p->end = end;
    p->kind = kind;
    glm_media_url_shown((const char *) s, len, p->shown);

    if (len <= GLM_MEDIA_URL_MAX) {
        p->url = malloc(len + 1);
        if (p->url == NULL) {
            return glm_media_fail(st->s, 500, "Out of memory reading media "
                                  "URLs");
        }

        memcpy(p->url, s, len);
        p->url[len] = '\0';
    }

    st->npending++;

    return 1;
}


/* a part closed: its URLs count when its type asks for them */
static int
glm_media_close_part(glm_media_state *st)
{
    size_t              i;
    glm_media_pending  *p;

    for (i = 0; i < st->npending; i++) {
        p = &st->pending[i];

        if (st->type_seen
            && !(p->kind == GLM_MEDIA_IMAGE && st->type_image)
            && !(p->kind == GLM_MEDIA_VIDEO && st->type_video))
        {
            continue;
        }

        if (!glm_media_accept(st, p)) {
            return 0;
        }
    }

    glm_media_drop_pending(st);

    st->type_seen = 0;
    st->type_image = 0;
    st->type_video = 0;

    return 1;
}


static int
glm_media_accept(glm_media_state *st, glm_media_pending *p)
{
    char             *fetch_url;
    size_t            i, n;
    const char       *why;
    glm_media_ref    *ref;
    glm_media_scan   *s;
    glm_media_fetch  *f;

    s = st->s;

    if (s->nrefs == GLM_MEDIA_URLS_MAX) {
        return glm_media_fail(s, 400, "At most %d http(s) media URLs are "
                              "allowed in a request", GLM_MEDIA_URLS_MAX);
    }

    if (p->url == NULL) {
        return glm_media_fail(s, 400, "The media URL %s is longer than %d "
                              "bytes", p->shown, GLM_MEDIA_URL_MAX);
    }

    ref = &s->refs[s->nrefs];
    ref->start = p->start;
    ref->end = p->end;

    for (i = 0; i < s->nfetches; i++) {
        if (s->fetches[i].url_len == p->len
            && memcmp(s->fetches[i].url, p->url, p->len) == 0)
        {
            ref->fetch = i;
            s->nrefs++;
            return 1;
        }
    }

    /* scheme, "://", host, "/" and every other byte percent-encoded */
    fetch_url = malloc(3 * p->len + 8);
    if (fetch_url == NULL) {
        return glm_media_fail(s, 500, "Out of memory reading media URLs");
    }

    why = glm_media_normalize(p->url, p->len, fetch_url, &n);

    if (why != NULL) {
        free(fetch_url);
        return glm_media_fail(s, 400, "Invalid media URL %s: %s", p->shown,
                              why);
    }

    f = &s->fetches[s->nfetches];
    f->url = p->url;
    f->url_len = p->len;
    f->fetch_url = fetch_url;
    f->fetch_url_len = n;
    f->kind = p->kind;
    p->url = NULL;

    ref->fetch = s->nfetches++;
    s->nrefs++;

    return 1;
}


/*
 * The URL nginx requests (see the header), into out (3 * len + 8 bytes);
 * NULL, or why the URL cannot be fetched.
 */
static const char *
glm_media_normalize(const char *url, size_t len, char *out, size_t *out_len)
{
    char         *o;
    size_t        i, at, auth, auth_end, end, host_end, port;
    unsigned char c;

    static const char  hex[] = "0123456789ABCDEF";

    for (i = 0; i < len; i++) {
        c = (unsigned char) url[i];

        if (c < 0x20 || c == 0x7f) {
            return "control characters are not allowed";
        }
    }

    /* the scheme is http: or https: (glm_media_is_http) */
    at = (url[4] == ':') ? 5 : 6;
    o = out;
    o += sprintf(o, "%s://", at == 5 ? "http" : "https");

    if (len < at + 2 || url[at] != '/' || url[at + 1] != '/') {
        return "expected //host after the scheme";
    }

    auth = at + 2;

    for (end = auth; end < len && url[end] != '#'; end++) {
        /* void */
    }

    for (auth_end = auth;
         auth_end < end && url[auth_end] != '/' && url[auth_end] != '?';
         auth_end++)
    {
        /* void */
    }

    if (memchr(url + auth, '@', auth_end - auth) != NULL) {
        return "user names and passwords are not allowed in media URLs";
    }

    if (auth_end == auth) {
        return "no host";
    }

    if (url[auth] == '[') {
        for (host_end = auth + 1; host_end < auth_end; host_end++) {
            c = (unsigned char) url[host_end];

            if (c == ']') {
                break;
            }

            if (!((c >= '0' && c <= '9') || ((c | 0x20) >= 'a'
                                               && (c | 0x20) <= 'f')
                  || c == ':' || c == '.'))
            {
                return "invalid IPv6 address";
            }
        }

        if (host_end == auth_end || host_end == auth + 1) {
            return "invalid IPv6 address";
        }

        host_end++;

    } else {
        for (host_end = auth; host_end < auth_end; host_end++) {
            c = (unsigned char) url[host_end];

            if (c == ':') {
                break;
            }

            if (!((c >= '0' && c <= '9') || ((c | 0x20) >= 'a'
                                               && (c | 0x20) <= 'z')
                  || c == '.' || c == '-' || c == '_'))
            {
                return "invalid host name";
            }
        }

        if (host_end == auth) {
            return "no host";
        }
    }

    if (host_end < auth_end) {
        if (url[host_end] != ':' || host_end + 1 == auth_end
            || auth_end - host_end - 1 > 5)
        {
            return "invalid port";
        }

        port = 0;

        for (i = host_end + 1; i < auth_end; i++) {
            if (url[i] < '0' || url[i] > '9') {
                return "invalid port";
            }

            port = port * 10 + (size_t) (url[i] - '0');
        }

        if (port == 0 || port > 65535) {
            return "invalid port";
        }
    }

    memcpy(o, url + auth, auth_end - auth);
    o += auth_end - auth;

    /* nginx would send its own location's URI for an empty path */
    if (auth_end == end || url[auth_end] == '?') {
        *o++ = '/';
    }

    for (i = auth_end; i < end; i++) {
        c = (unsigned char) url[i];

        if (c >= 0x80 || strchr(" \"<>\\^`{|}", c) != NULL) {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];

        } else {
            *o++ = (char) c;
        }
    }

    *o = '\0';
    *out_len = (size_t) (o - out);

    return NULL;
}


static void
glm_media_drop_pending(glm_media_state *st)
{
    size_t  i;

    for (i = 0; i < st->npending; i++) {
        free(st->pending[i].url);
        st->pending[i].url = NULL;
    }

    st->npending = 0;
}


/* the role of a map (is_map) or array opening at st->depth */
static int
glm_media_role(glm_media_state *st, int is_map)
{
    int  d, parent, key;

    d = st->depth;

    if (d == 0) {
        return is_map ? GLM_R_ROOT : GLM_R_OTHER;
    }

    if (d >= GLM_MEDIA_DEPTH) {
        return GLM_R_OTHER;
    }

    parent = st->role[d - 1];
    key = st->key[d - 1];

    switch (parent) {

    case GLM_R_ROOT:
        return (!is_map && key == GLM_K_MESSAGES) ? GLM_R_MESSAGES
                                                  : GLM_R_OTHER;

    case GLM_R_MESSAGES:
        return is_map ? GLM_R_MESSAGE : GLM_R_OTHER;

    case GLM_R_MESSAGE:
        return (!is_map && key == GLM_K_CONTENT) ? GLM_R_CONTENT
                                                 : GLM_R_OTHER;

    case GLM_R_CONTENT:
        return is_map ? GLM_R_PART : GLM_R_OTHER;

    case GLM_R_PART:
        if (is_map && (key == GLM_K_IMAGE_URL || key == GLM_K_VIDEO_URL)) {
            st->media_kind = key == GLM_K_IMAGE_URL ? GLM_MEDIA_IMAGE
                                                    : GLM_MEDIA_VIDEO;
            return GLM_R_MEDIA;
        }

        return GLM_R_OTHER;
    }

    return GLM_R_OTHER;
}


static int
glm_mcb_null(void *ctx)
{
    return 1;
}


static int
glm_mcb_boolean(void *ctx, int v)
{
    return 1;
}


static int
glm_mcb_number(void *ctx, const char *s, size_t len)
{
    return 1;
}


static int
glm_mcb_string(void *ctx, const unsigned char *s, size_t len)
{
    int               f;
    glm_media_state  *st = ctx;

    f = st->depth - 1;

    if (f < 0 || f >= GLM_MEDIA_DEPTH) {
        return 1;
    }

    if (st->role[f] == GLM_R_PART) {
        switch (st->key[f]) {

        case GLM_K_TYPE:
            st->type_seen = 1;

            if (len == 9 && memcmp(s, "image_url", 9) == 0) {
                st->type_image = 1;

            } else if (len == 9 && memcmp(s, "video_url", 9) == 0) {
                st->type_video = 1;
            }

            return 1;

        case GLM_K_IMAGE_URL:
            return glm_media_candidate(st, s, len, GLM_MEDIA_IMAGE);

        case GLM_K_VIDEO_URL:
            return glm_media_candidate(st, s, len, GLM_MEDIA_VIDEO);
        }

        return 1;
    }

    if (st->role[f] == GLM_R_MEDIA && st->key[f] == GLM_K_URL) {
        return glm_media_candidate(st, s, len, st->media_kind);
    }

    return 1;
}


static int
glm_mcb_start_map(void *ctx)
{
    int               role;
    glm_media_state  *st = ctx;

    role = glm_media_role(st, 1);

    if (role == GLM_R_PART) {
        /* parts never nest: the last one closed cleared its state */
        st->type_seen = 0;
        st->type_image = 0;
        st->type_video = 0;
    }

    if (st->depth < GLM_MEDIA_DEPTH) {
        st->role[st->depth] = (unsigned char) role;
        st->key[st->depth] = GLM_K_OTHER;
    }

    st->depth++;
    return 1;
}


static int
glm_mcb_map_key(void *ctx, const unsigned char *s, size_t len)
{
    int               f, key;
    glm_media_state  *st = ctx;

    f = st->depth - 1;

    if (f < 0 || f >= GLM_MEDIA_DEPTH) {
        return 1;
    }

#define GLM_KEY_IS(name)  (len == sizeof(name) - 1 && memcmp(s, name, len) == 0)

    key = GLM_K_OTHER;

    switch (st->role[f]) {

    case GLM_R_ROOT:
        if (GLM_KEY_IS("messages")) {
            key = GLM_K_MESSAGES;
        }
        break;

    case GLM_R_MESSAGE:
        if (GLM_KEY_IS("content")) {
            key = GLM_K_CONTENT;
        }
        break;

    case GLM_R_PART:
        if (GLM_KEY_IS("type")) {
            key = GLM_K_TYPE;

        } else if (GLM_KEY_IS("image_url")) {
            key = GLM_K_IMAGE_URL;

        } else if (GLM_KEY_IS("video_url")) {
            key = GLM_K_VIDEO_URL;
        }
        break;

    case GLM_R_MEDIA:
        if (GLM_KEY_IS("url")) {
            key = GLM_K_URL;
        }
        break;
    }

#undef GLM_KEY_IS

    st->key[f] = (unsigned char) key;
    return 1;
}


static int
glm_mcb_end_map(void *ctx)
{
    glm_media_state  *st = ctx;

    st->depth--;

    if (st->depth < GLM_MEDIA_DEPTH && st->role[st->depth] == GLM_R_PART) {
        return glm_media_close_part(st);
    }

    return 1;
}


static int
glm_mcb_start_array(void *ctx)
{
    int               role;
    glm_media_state  *st = ctx;

    role = glm_media_role(st, 0);

    if (st->depth < GLM_MEDIA_DEPTH) {
        st->role[st->depth] = (unsigned char) role;
        st->key[st->depth] = GLM_K_OTHER;
    }

    st->depth++;
    return 1;
}


static int
glm_mcb_end_array(void *ctx)
{
    glm_media_state  *st = ctx;

    st->depth--;
    return 1;
}
