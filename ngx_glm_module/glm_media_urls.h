/*
 * glm_media_urls.h: the nginx-free half of http(s) media fetching.
 *
 * The engine decodes media from data: URLs (and allowed file:// paths) but
 * never touches the network: an http(s) image or video URL in a chat
 * request is fetched by nginx (a subrequest to the location named by
 * glm_media_fetch), and the body the engine receives carries the fetched
 * bytes instead, as
 *
 *   "data:<media type of the response>;base64,<the bytes>"
 *
 * in place of the URL string.  This file finds those URL strings and builds
 * the rewritten body; the module only runs the subrequests between the two
 * calls.
 *
 * Where URLs are looked for (what vLLM reads, nothing else):
 *   messages[*].content[*].image_url          a string (shorthand part)
 *   messages[*].content[*].image_url.url      a string
 *   messages[*].content[*].video_url(.url)    likewise
 * in a part whose "type" is absent or names the same key ("image_url" for
 * image_url).  Only strings whose scheme is http or https (any case) are
 * ours; data:, file: and anything else reach the engine untouched.
 *
 * A URL of ours is checked before nginx sees it: at most GLM_MEDIA_URL_MAX
 * bytes, no control characters, "//" then a host (name, IPv4 or [IPv6]),
 * no user:password@, an optional port 1-65535.  What nginx requests is the
 * URL with its scheme lowercased, the fragment dropped, "/" as path when
 * there is none, and spaces, non-ASCII and the characters RFC 3986 never
 * allows raw percent-encoded.  The same URL written twice is fetched once.
 *
 * Memory: glm_media_scan_body() fills a caller-owned glm_media_scan and
 * mallocs the URL strings; glm_media_scan_free() releases them (the module
 * does it from a pool cleanup).  Nothing else allocates except the yajl
 * parser, freed before the scan returns.
 */
#ifndef GLM_MEDIA_URLS_H
#define GLM_MEDIA_URLS_H

#include <stddef.h>
#include <stdint.h>

#define GLM_MEDIA_URL_MAX        8192   /* bytes of one URL, JSON-decoded */
#define GLM_MEDIA_URLS_MAX       16     /* http(s) media references a request */
#define GLM_MEDIA_MSG_MAX        1536
#define GLM_MEDIA_URL_SHOWN      1024   /* bytes of a URL quoted in messages */
#define GLM_MEDIA_TYPE_MAX       127

#define GLM_MEDIA_IMAGE          1
#define GLM_MEDIA_VIDEO          2

/* one URL to fetch */
typedef struct {
    char        *url;           /* as the client wrote it, NUL-terminated */
    size_t       url_len;
    char        *fetch_url;     /* what nginx requests, NUL-terminated */
    size_t       fetch_url_len;
    int          kind;          /* GLM_MEDIA_IMAGE or _VIDEO (first use) */
} glm_media_fetch;

/* one place in the body that names a fetch */
typedef struct {
    size_t       start;         /* the JSON string token, quotes included: */
    size_t       end;           /*   body[start] and body[end - 1] are '"' */
    size_t       fetch;         /* index into fetches */
} glm_media_ref;

typedef struct {
    /* outcome: 0 when the body is usable as found, else the HTTP status */
    unsigned         status;
    char             message[GLM_MEDIA_MSG_MAX];
    const char      *param;     /* static string or NULL */

    size_t           nrefs;     /* in body order, start ascending */
    glm_media_ref    refs[GLM_MEDIA_URLS_MAX];
    size_t           nfetches;
    glm_media_fetch  fetches[GLM_MEDIA_URLS_MAX];
} glm_media_scan;

/* what one fetch brought back */
typedef struct {
    const char           *type;     /* from glm_media_data_type() */
    size_t                type_len;
    const unsigned char  *data;
    size_t                len;
} glm_media_bytes;

/*
 * A cheap test before the scan: 0 when the body cannot hold an http(s)
 * URL string (no "http:" or "https:" in any case, and no \u escape that
 * could spell one).  A body of base64 data: URLs never matches, as ':' is
 * not in the base64 alphabet.
 */
int glm_media_may_have_urls(const char *body, size_t len);

/*
 * Finds the http(s) media URLs of a chat body that glm_http_check_body()
 * accepted.  Returns s->status: 0 (s->nrefs may be 0), 400 for a URL that
 * is not fetchable or one too many, 500 when out of memory.  Call
 * glm_media_scan_free() whatever it returns.
 */
unsigned glm_media_scan_body(glm_media_scan *s, const char *body, size_t len);

void glm_media_scan_free(glm_media_scan *s);

/*
 * The media type a data: URL gets from a response's Content-Type value:
 * "type/subtype" lowercased, parameters dropped, or
 * "application/octet-stream" when absent or malformed.  Writes it NUL-
 * terminated into out (GLM_MEDIA_TYPE_MAX + 1 bytes) and returns its length.
 */
size_t glm_media_data_type(const char *content_type, size_t len, char *out);

/*
 * Length of the body once every ref names its fetch's bytes as a data: URL
 * (fetched[i] for fetches[i]); SIZE_MAX when it would not fit a size_t.
 */
size_t glm_media_rewrite_len(const glm_media_scan *s, size_t body_len,
    const glm_media_bytes *fetched);

/* Writes that body into out (glm_media_rewrite_len() bytes). */
void glm_media_rewrite(const glm_media_scan *s, const char *body,
    size_t body_len, const glm_media_bytes *fetched, char *out);

/* base64 (RFC 4648, padded) of len bytes into out: 4 * ((len + 2) / 3). */
size_t glm_media_base64(const unsigned char *in, size_t len, char *out);

/*
 * url as it may appear in an error message: at most GLM_MEDIA_URL_SHOWN
 * bytes, cut on a character, "..." when cut.  out holds
 * GLM_MEDIA_URL_SHOWN + 4 bytes.
 */
void glm_media_url_shown(const char *url, size_t len, char *out);

#endif
