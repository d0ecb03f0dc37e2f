/*
 * test_media_urls.c: the nginx-free half of http(s) media fetching
 * (ngx_glm_module/glm_media_urls.c): which strings of a chat body are media
 * URLs to fetch, where exactly they lie, what nginx is asked to request,
 * the refusals, and the rewritten body, byte for byte.
 *
 * The byte ranges are checked independently of the scanner: every range
 * must be a quoted JSON string that yajl, parsing it alone, decodes to the
 * URL the scan reported; and the prefilter must pass every body in which
 * the scan finds a URL.  base64 is checked against RFC 4648's vectors and
 * by decoding random inputs back.  A mutation loop runs the scanner over
 * damaged bodies (under ASan/UBSan in make test) for the same invariants.
 *
 * The file under test lives outside engine/, so it is compiled into this
 * test directly rather than through the engine objects.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "../../ngx_glm_module/glm_media_urls.c"

static int passed, failed;

#define CHECK(cond, ...) do {                                   \
    if (cond) { passed++; } else {                              \
        failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__);   \
        printf(__VA_ARGS__); printf("\n"); }                    \
} while (0)

/* every ref is a quoted JSON string decoding to its fetch's URL */
static int
refs_consistent(const glm_media_scan *s, const char *body, size_t len)
{
    char      errbuf[128], *tok, *str;
    size_t    i, n;
    yajl_val  v;
    int       ok;

    for (i = 0; i < s->nrefs; i++) {
        const glm_media_ref  *r = &s->refs[i];
        const glm_media_fetch *f;

        if (r->end <= r->start + 1 || r->end > len || r->fetch >= s->nfetches
            || body[r->start] != '"' || body[r->end - 1] != '"'
            || (i > 0 && r->start < s->refs[i - 1].end))
        {
            return 0;
        }

        f = &s->fetches[r->fetch];
        n = r->end - r->start;
        tok = malloc(n + 1);
        memcpy(tok, body + r->start, n);
        tok[n] = '\0';

        v = yajl_tree_parse(tok, errbuf, sizeof(errbuf));
        str = (v != NULL && YAJL_IS_STRING(v)) ? YAJL_GET_STRING(v) : NULL;
        ok = str != NULL && strlen(str) == f->url_len
             && memcmp(str, f->url, f->url_len) == 0;
        yajl_tree_free(v);
        free(tok);

        if (!ok) {
            return 0;
        }
    }

    return 1;
}

static unsigned
scan(glm_media_scan *s, const char *body)
{
    unsigned  st;

    st = glm_media_scan_body(s, body, strlen(body));

    CHECK(refs_consistent(s, body, strlen(body)), "ranges of %s", body);
    CHECK(s->nrefs == 0 || glm_media_may_have_urls(body, strlen(body)),
          "the prefilter would have skipped %s", body);

    return st;
}

/* a chat body with one user message holding `parts` (JSON array items) */
static char *
chat(const char *parts)
{
    static char  buf[65536];

    snprintf(buf, sizeof(buf),
             "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
             "\"content\":[%s]}],\"max_tokens\":5}", parts);
    return buf;
}

static void
expect_urls(const char *parts, size_t nrefs, size_t nfetches,
    const char *fetch0, const char *url0)
{
    glm_media_scan  s;
    unsigned        st;
    const char     *body = chat(parts);

    st = scan(&s, body);

    CHECK(st == 0 && s.nrefs == nrefs && s.nfetches == nfetches,
          "%s: status %u (%s), %zu refs, %zu fetches; want %zu, %zu", parts,
          st, s.message, s.nrefs, s.nfetches, nrefs, nfetches);

    if (st == 0 && nfetches > 0 && s.nfetches > 0) {
        CHECK(fetch0 == NULL || strcmp(s.fetches[0].fetch_url, fetch0) == 0,
              "%s: fetch url %s, want %s", parts, s.fetches[0].fetch_url,
              fetch0);
        CHECK(url0 == NULL || strcmp(s.fetches[0].url, url0) == 0,
              "%s: url %s, want %s", parts, s.fetches[0].url, url0);
        CHECK(s.fetches[0].fetch_url_len == strlen(s.fetches[0].fetch_url),
              "fetch url length");
    }

    glm_media_scan_free(&s);
}

static void
expect_refused(const char *body, unsigned status, const char *message)
{
    glm_media_scan  s;
    unsigned        st;

    st = glm_media_scan_body(&s, body, strlen(body));

    CHECK(st == status && strstr(s.message, message) != NULL
          && (status != 400 || strcmp(s.param, "messages") == 0),
          "%.200s: status %u (%s), want %u (%s)", body, st, s.message, status,
          message);

    glm_media_scan_free(&s);
}

/* the prefilter over a literal, without its NUL */
#define MAY(lit)  glm_media_may_have_urls(lit, sizeof(lit) - 1)

static void
test_prefilter(void)
{
    int  before = failed;

    CHECK(MAY("{\"u\":\"http://x\"}"), "http:");
    CHECK(MAY("{\"u\":\"HTTPS://x\"}"), "HTTPS:");
    CHECK(MAY("\"h\\u0074tp://x\""), "\\u escape");
    CHECK(!MAY("{\"u\":\"data:image/png;base64,aHR0cDo=\"}"), "data: URL");
    CHECK(!MAY("{\"text\":\"the http protocol\"}"),
          "http without a colon");
    CHECK(!MAY("http"), "short body");
    CHECK(MAY("http:"), "exactly http:");
    CHECK(!MAY("https"), "https, no colon, at the end");
    CHECK(MAY("https:"), "exactly https:");
    CHECK(MAY("xhttps:"), "https: after a byte");
    CHECK(!MAY("{\"a\":\"ttp:\",\"b\":1}"),
          "colons of keys");
    CHECK(!MAY("\"a\\\\u\""), "an escaped backslash, then u");
    CHECK(MAY("\"a\\\\\\u0068\""),
          "an escaped backslash, then an escape");

    printf("prefilter: %s\n", failed == before ? "ok" : "FAILED");
}

static void
test_where(void)
{
    int  before = failed;

    /* the four forms */
    expect_urls("{\"type\":\"image_url\",\"image_url\":{\"url\":"
                "\"https://example.com/cat.jpg\"}}", 1, 1,
                "https://example.com/cat.jpg", "https://example.com/cat.jpg");
    expect_urls("{\"image_url\":\"http://example.com/a.png\"}", 1, 1,
                "http://example.com/a.png", NULL);
    expect_urls("{\"type\":\"video_url\",\"video_url\":{\"url\":"
                "\"http://example.com/v.mp4\"}}", 1, 1, NULL, NULL);
    expect_urls("{\"video_url\":\"http://example.com/v.mp4\"}", 1, 1, NULL,
                NULL);

    /* "type" after the URL still decides; a type for something else wins */
    expect_urls("{\"image_url\":{\"url\":\"http://h/x\",\"detail\":\"low\"},"
                "\"type\":\"image_url\"}", 1, 1, NULL, NULL);
    expect_urls("{\"type\":\"text\",\"text\":\"hi\",\"image_url\":"
                "\"http://h/x\"}", 0, 0, NULL, NULL);
    expect_urls("{\"video_url\":\"http://h/x\",\"type\":\"image_url\"}", 0, 0,
                NULL, NULL);
    expect_urls("{\"type\":\"image_url\",\"image_url\":{\"url\":\"http://h/i\"},"
                "\"video_url\":{\"url\":\"http://h/v\"}}", 1, 1, "http://h/i",
                NULL);

    /* other schemes are the engine's */
    expect_urls("{\"type\":\"image_url\",\"image_url\":{\"url\":"
                "\"data:image/png;base64,iVBORw0KGgo=\"}}", 0, 0, NULL, NULL);
    expect_urls("{\"type\":\"image_url\",\"image_url\":{\"url\":"
                "\"file:///srv/a.png\"}}", 0, 0, NULL, NULL);
    expect_urls("{\"type\":\"image_url\",\"image_url\":{\"url\":"
                "\"ftp://h/a.png\"}}", 0, 0, NULL, NULL);
    expect_urls("{\"type\":\"image_url\",\"image_url\":{\"url\":"
                "\"httpx://h/a.png\"}}", 0, 0, NULL, NULL);

    /* places that are not media parts */
    expect_urls("\"http://h/bare-string-part\"", 0, 0, NULL, NULL);
    expect_urls("{\"type\":\"text\",\"text\":\"http://h/in-text\"}", 0, 0,
                NULL, NULL);
    expect_urls("{\"type\":\"image_url\",\"image_url\":{\"nested\":"
                "{\"url\":\"http://h/deeper\"}}}", 0, 0, NULL, NULL);
    expect_urls("{\"type\":\"image_url\",\"image_url\":[\"http://h/arr\"]}", 0,
                0, NULL, NULL);
    expect_urls("{\"type\":\"image_url\",\"image_url\":{\"uri\":"
                "\"http://h/wrong-key\"}}", 0, 0, NULL, NULL);

    {
        glm_media_scan  s;
        const char     *body;

        body = "{\"image_url\":\"http://h/top\",\"messages\":[{\"role\":"
               "\"user\",\"content\":\"http://h/string-content\",\"image_url\":"
               "\"http://h/message-level\"}],\"tools\":[{\"content\":"
               "[{\"image_url\":\"http://h/in-tools\"}]}]}";
        CHECK(scan(&s, body) == 0 && s.nrefs == 0, "outside parts: %zu refs",
              s.nrefs);
        glm_media_scan_free(&s);

        /* every message is read, whatever its role; several parts */
        body = "{\"messages\":[{\"role\":\"system\",\"content\":[{\"image_url\":"
               "\"http://h/1\"}]},{\"role\":\"user\",\"content\":\"hi\"},"
               "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
               "\"x\"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
               "\"http://h/2\"}},{\"video_url\":{\"url\":\"https://h/3\"}}]}]}";
        CHECK(scan(&s, body) == 0 && s.nrefs == 3 && s.nfetches == 3
              && strcmp(s.fetches[2].url, "https://h/3") == 0
              && s.fetches[0].kind == GLM_MEDIA_IMAGE
              && s.fetches[2].kind == GLM_MEDIA_VIDEO,
              "three messages: %zu refs", s.nrefs);
        glm_media_scan_free(&s);

        /* a repeated "messages": both are rewritten, whichever one wins */
        body = "{\"messages\":[{\"content\":[{\"image_url\":\"http://h/a\"}]}],"
               "\"messages\":[{\"content\":[{\"image_url\":\"http://h/b\"}]}]}";
        CHECK(scan(&s, body) == 0 && s.nrefs == 2, "repeated messages");
        glm_media_scan_free(&s);
    }

    printf("where URLs are looked for: %s\n", failed == before ? "ok" : "FAILED");
}

static void
test_urls(void)
{
    int  before = failed;

    /* escapes in the body: the range covers the escaped token */
    expect_urls("{\"image_url\":\"https:\\/\\/example.com\\/a\\\"b\\\\c.png\"}",
                1, 1, "https://example.com/a%22b%5Cc.png",
                "https://example.com/a\"b\\c.png");
    expect_urls("{\"image_url\":\"\\u0068ttp://h/x\"}", 1, 1, "http://h/x",
                "http://h/x");

    /* what nginx requests */
    expect_urls("{\"image_url\":\"HTTP://Example.COM\"}", 1, 1,
                "http://Example.COM/", "HTTP://Example.COM");
    expect_urls("{\"image_url\":\"hTTpS://h:8443?x=1&y=2\"}", 1, 1,
                "https://h:8443/?x=1&y=2", NULL);
    expect_urls("{\"image_url\":\"http://h/a b/c.png?q=1#frag ment\"}", 1, 1,
                "http://h/a%20b/c.png?q=1", NULL);
    expect_urls("{\"image_url\":\"http://h/caf\xc3\xa9.png\"}", 1, 1,
                "http://h/caf%C3%A9.png", NULL);
    expect_urls("{\"image_url\":\"http://h/%7Ba%7D/{b}|^`<>\"}", 1, 1,
                "http://h/%7Ba%7D/%7Bb%7D%7C%5E%60%3C%3E", NULL);
    expect_urls("{\"image_url\":\"http://[::1]:8080/x\"}", 1, 1,
                "http://[::1]:8080/x", NULL);
    expect_urls("{\"image_url\":\"http://127.0.0.1:1/x\"}", 1, 1,
                "http://127.0.0.1:1/x", NULL);
    expect_urls("{\"image_url\":\"http://a-b.c_d.example:65535/x\"}", 1, 1,
                NULL, NULL);

    /* the same URL twice is fetched once; different ones are not merged */
    expect_urls("{\"image_url\":\"http://h/x\"},{\"type\":\"image_url\","
                "\"image_url\":{\"url\":\"http://h/x\"}}", 2, 1, NULL, NULL);
    expect_urls("{\"image_url\":\"http://h/x\"},{\"image_url\":\"http://h/X\"}",
                2, 2, NULL, NULL);

    printf("URLs as requested: %s\n", failed == before ? "ok" : "FAILED");
}

static void
test_refusals(void)
{
    char   parts[40000], url[9000], *p;
    int    before = failed, i;
    glm_media_scan  s;

#define URL_PART(u)  chat("{\"image_url\":\"" u "\"}")

    expect_refused(URL_PART("http:example.com/a.png"), 400,
                   "Invalid media URL http:example.com/a.png: expected //host "
                   "after the scheme");
    expect_refused(URL_PART("http://user:pw@h/a.png"), 400,
                   "user names and passwords are not allowed");
    expect_refused(URL_PART("http:///a.png"), 400, "no host");
    expect_refused(URL_PART("http://"), 400, "no host");
    expect_refused(URL_PART("http://h:0/"), 400, "invalid port");
    expect_refused(URL_PART("http://h:65536/"), 400, "invalid port");
    expect_refused(URL_PART("http://h:/"), 400, "invalid port");
    expect_refused(URL_PART("http://h:80x/"), 400, "invalid port");
    expect_refused(URL_PART("http://h:000080/"), 400, "invalid port");
    expect_refused(URL_PART("http://ex ample.com/"), 400, "invalid host name");
    expect_refused(URL_PART("http://h%41/"), 400, "invalid host name");
    expect_refused(URL_PART("http://[zz]/"), 400, "invalid IPv6 address");
    expect_refused(URL_PART("http://[::1/"), 400, "invalid IPv6 address");
    expect_refused(URL_PART("http://[]/"), 400, "invalid IPv6 address");
    expect_refused(URL_PART("http://[::1]x/"), 400, "invalid port");
    expect_refused(URL_PART("http://h/a\\u0000b"), 400,
                   "control characters are not allowed");
    expect_refused(URL_PART("http://h/a\\tb"), 400,
                   "control characters are not allowed");
    expect_refused(URL_PART("http://h/a\\u007fb"), 400,
                   "control characters are not allowed");

    /* length: 8192 bytes pass, 8193 do not (and the message cuts it) */
    strcpy(url, "http://h/");
    memset(url + 9, 'a', GLM_MEDIA_URL_MAX - 9);
    url[GLM_MEDIA_URL_MAX] = '\0';
    snprintf(parts, sizeof(parts), "{\"image_url\":\"%s\"}", url);
    expect_urls(parts, 1, 1, url, url);
    strcat(url, "a");
    snprintf(parts, sizeof(parts), "{\"image_url\":\"%s\"}", url);
    glm_media_scan_body(&s, chat(parts), strlen(chat(parts)));
    CHECK(s.status == 400 && strstr(s.message, "is longer than 8192 bytes")
          && strstr(s.message, "aaa... is longer") && strlen(s.message) < 1200,
          "long URL: %u %.80s", s.status, s.message);
    glm_media_scan_free(&s);

    /* 16 URLs pass, the 17th is refused, in one part or in many */
    for (i = 0, p = parts; i < GLM_MEDIA_URLS_MAX; i++) {
        p += sprintf(p, "%s{\"image_url\":\"http://h/%d\"}", i ? "," : "", i);
    }
    expect_urls(parts, GLM_MEDIA_URLS_MAX, GLM_MEDIA_URLS_MAX, NULL, NULL);
    sprintf(p, ",{\"image_url\":\"http://h/x\"}");
    expect_refused(chat(parts), 400,
                   "At most 16 http(s) media URLs are allowed in a request");
    /* the same URL 17 times: each use counts, as each is a media item */
    for (i = 0, p = parts; i <= GLM_MEDIA_URLS_MAX; i++) {
        p += sprintf(p, "%s{\"image_url\":\"http://h/same\"}", i ? "," : "");
    }
    expect_refused(chat(parts), 400, "At most 16");
    for (i = 0, p = parts + sprintf(parts, "{\"type\":\"image_url\"");
         i <= GLM_MEDIA_URLS_MAX; i++)
    {
        p += sprintf(p, ",\"image_url\":\"http://h/%d\"", i);
    }
    strcpy(p, "}");
    expect_refused(chat(parts), 400, "At most 16");

    /* the first bad URL in body order is the one named */
    expect_refused(chat("{\"image_url\":\"http://h/ok\"},{\"image_url\":"
                        "\"http://bad host/\"},{\"image_url\":\"http:nohost\"}"),
                   400, "Invalid media URL http://bad host/");

    /* a bad URL where nothing is fetched is the engine's business */
    expect_urls("{\"type\":\"text\",\"image_url\":\"http:nohost\"}", 0, 0,
                NULL, NULL);

    printf("refusals: %s\n", failed == before ? "ok" : "FAILED");
}

static void
test_data_type(void)
{
    char    out[GLM_MEDIA_TYPE_MAX + 1];
    char    big[300];
    size_t  n;
    int     before = failed, i;

    static const struct { const char *in, *want; } cases[] = {
        { "image/png", "image/png" },
        { "IMAGE/PNG; charset=binary", "image/png" },
        { "  image/jpeg  ", "image/jpeg" },
        { "video/mp4;codecs=\"avc1\"", "video/mp4" },
        { "application/vnd.foo+json", "application/vnd.foo+json" },
        { "", "application/octet-stream" },
        { "image", "application/octet-stream" },
        { "image/", "application/octet-stream" },
        { "/png", "application/octet-stream" },
        { "a/b/c", "application/octet-stream" },
        { "image/pn\"g", "application/octet-stream" },
        { "image/p,ng", "application/octet-stream" },
        { "image/p\\ng", "application/octet-stream" },
        { "image /png", "application/octet-stream" },
        { "image/p\xc3\xa9", "application/octet-stream" },
    };

    for (i = 0; i < (int) (sizeof(cases) / sizeof(cases[0])); i++) {
        n = glm_media_data_type(cases[i].in, strlen(cases[i].in), out);
        CHECK(n == strlen(cases[i].want) && strcmp(out, cases[i].want) == 0,
              "content type '%s': '%s', want '%s'", cases[i].in, out,
              cases[i].want);
    }

    memset(big, 'a', sizeof(big));
    big[5] = '/';
    n = glm_media_data_type(big, GLM_MEDIA_TYPE_MAX, out);
    CHECK(n == GLM_MEDIA_TYPE_MAX, "longest type kept");
    n = glm_media_data_type(big, GLM_MEDIA_TYPE_MAX + 1, out);
    CHECK(strcmp(out, "application/octet-stream") == 0, "longer type dropped");
    CHECK(glm_media_data_type(NULL, 0, out) == 24, "absent type");

    printf("data: media types: %s\n", failed == before ? "ok" : "FAILED");
}

static int
b64_value(char c)
{
    const char  *p = strchr(glm_media_b64, c);

    return (c != '\0' && p != NULL) ? (int) (p - glm_media_b64) : -1;
}

/* a decoder written for the test, strict about padding */
static long
b64_decode(const char *in, size_t len, unsigned char *out)
{
    size_t  i, n;
    int     a, b, c, d;

    if (len % 4) {
        return -1;
    }

    for (i = 0, n = 0; i < len; i += 4) {
        a = b64_value(in[i]);
        b = b64_value(in[i + 1]);
        c = in[i + 2] == '=' ? -2 : b64_value(in[i + 2]);
        d = in[i + 3] == '=' ? -2 : b64_value(in[i + 3]);

        if (a < 0 || b < 0 || c == -1 || d == -1
            || ((c == -2 || d == -2) && i + 4 != len) || (c == -2 && d != -2))
        {
            return -1;
        }

        out[n++] = (unsigned char) (a << 2 | b >> 4);
        if (c >= 0) {
            out[n++] = (unsigned char) ((b & 15) << 4 | c >> 2);
        }
        if (d >= 0) {
            out[n++] = (unsigned char) ((c & 3) << 6 | d);
        }
    }

    return (long) n;
}

static void
test_base64(void)
{
    static const char  *vec[][2] = {
        { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
        { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" },
        { "foobar", "Zm9vYmFy" },
    };
    char           out[4200];
    unsigned char  in[3000], back[3000];
    size_t         n, len;
    int            i, k, before = failed;

    for (i = 0; i < 7; i++) {
        n = glm_media_base64((const unsigned char *) vec[i][0],
                             strlen(vec[i][0]), out);
        CHECK(n == strlen(vec[i][1]) && memcmp(out, vec[i][1], n) == 0,
              "RFC 4648 '%s': %.*s", vec[i][0], (int) n, out);
    }

    srand(7);

    for (k = 0; k < 200; k++) {
        len = (size_t) (rand() % (int) sizeof(in));

        for (n = 0; n < len; n++) {
            in[n] = (unsigned char) rand();
        }

        n = glm_media_base64(in, len, out);
        CHECK(n == (len + 2) / 3 * 4 && b64_decode(out, n, back) == (long) len
              && memcmp(in, back, len) == 0, "round trip of %zu bytes", len);
    }

    printf("base64: %s\n", failed == before ? "ok" : "FAILED");
}

static void
test_rewrite(void)
{
    glm_media_scan   s;
    glm_media_bytes  got[GLM_MEDIA_URLS_MAX];
    const char      *body, *want;
    char            *out;
    size_t           len;
    int              before = failed;

    body = "{\"messages\":[{\"role\":\"user\",\"content\":["
           "{\"type\":\"image_url\",\"image_url\":{\"url\":\"http://h/a.png\"}},"
           "{\"type\":\"text\",\"text\":\"and\"},"
           "{\"image_url\":\"http:\\/\\/h\\/b.bin\"},"
           "{\"image_url\":\"data:image/gif;base64,R0lG\"},"
           "{\"type\":\"image_url\",\"image_url\":{\"url\":\"http://h/a.png\","
           "\"detail\":\"high\"}}]}],\"stream\":false}";

    CHECK(scan(&s, body) == 0 && s.nrefs == 3 && s.nfetches == 2,
          "rewrite scan: %u %zu %zu", s.status, s.nrefs, s.nfetches);

    got[0].type = "image/png";
    got[0].type_len = 9;
    got[0].data = (const unsigned char *) "foob";
    got[0].len = 4;
    got[1].type = "application/octet-stream";
    got[1].type_len = 24;
    got[1].data = (const unsigned char *) "";
    got[1].len = 0;

    want = "{\"messages\":[{\"role\":\"user\",\"content\":["
           "{\"type\":\"image_url\",\"image_url\":{\"url\":"
           "\"data:image/png;base64,Zm9vYg==\"}},"
           "{\"type\":\"text\",\"text\":\"and\"},"
           "{\"image_url\":\"data:application/octet-stream;base64,\"},"
           "{\"image_url\":\"data:image/gif;base64,R0lG\"},"
           "{\"type\":\"image_url\",\"image_url\":{\"url\":"
           "\"data:image/png;base64,Zm9vYg==\",\"detail\":\"high\"}}]}],"
           "\"stream\":false}";

    len = glm_media_rewrite_len(&s, strlen(body), got);
    CHECK(len == strlen(want), "rewritten length %zu, want %zu", len,
          strlen(want));

    if (len == strlen(want)) {
        out = malloc(len);
        glm_media_rewrite(&s, body, strlen(body), got, out);
        CHECK(memcmp(out, want, len) == 0, "rewritten body: %.*s", (int) len,
              out);
        free(out);
    }

    /* sizes that do not fit a size_t are reported, never wrapped */
    got[0].len = SIZE_MAX / 2;
    CHECK(glm_media_rewrite_len(&s, strlen(body), got) == SIZE_MAX,
          "overflowing length");

    glm_media_scan_free(&s);

    /* no refs: the body as it was */
    body = chat("{\"type\":\"text\",\"text\":\"plain\"}");
    CHECK(scan(&s, body) == 0 && s.nrefs == 0
          && glm_media_rewrite_len(&s, strlen(body), got) == strlen(body),
          "nothing to rewrite");
    glm_media_scan_free(&s);

    printf("rewritten body: %s\n", failed == before ? "ok" : "FAILED");
}

/* damaged bodies: never a crash, never a range that is not a string */
static void
test_mutations(void)
{
    static const char  *seeds[] = {
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
        "\"image_url\":{\"url\":\"http://h/a.png\"}},{\"image_url\":"
        "\"https:\\/\\/h\\/\\\"q\\\"\"},{\"video_url\":{\"url\":\"HTTP://x:1\"}}"
        ",{\"type\":\"text\",\"text\":\"\\\\\\\"http://no\"}]}]}",
    };
    static const char   alphabet[] = "{}[]\":,\\/ hp:tu0a";
    char                buf[512];
    size_t              len, seed_len;
    int                 k, m, before = failed, ok_scans = 0;
    glm_media_scan      s;

    srand(11);
    seed_len = strlen(seeds[0]);

    for (k = 0; k < 20000; k++) {
        memcpy(buf, seeds[0], seed_len + 1);
        len = seed_len;

        for (m = 1 + rand() % 4; m > 0; m--) {
            size_t  at = (size_t) rand() % len;

            switch (rand() % 3) {
            case 0:
                buf[at] = alphabet[rand() % (int) (sizeof(alphabet) - 1)];
                break;
            case 1:
                if (len > 1) {
                    memmove(buf + at, buf + at + 1, len - at);
                    len--;
                }
                break;
            default:
                if (len + 1 < sizeof(buf)) {
                    memmove(buf + at + 1, buf + at, len - at + 1);
                    buf[at] = alphabet[rand() % (int) (sizeof(alphabet) - 1)];
                    len++;
                }
            }
        }

        glm_media_scan_body(&s, buf, len);

        if (s.status == 0) {
            ok_scans++;
            CHECK(refs_consistent(&s, buf, len), "mutant %d: %.*s", k,
                  (int) len, buf);
            CHECK(s.nrefs == 0 || glm_media_may_have_urls(buf, len),
                  "mutant %d skipped by the prefilter: %.*s", k, (int) len,
                  buf);
        }

        glm_media_scan_free(&s);
    }

    /* deep nesting costs nothing and finds nothing */
    {
        static char  deep[20000];
        size_t       i;

        len = 0;
        len += (size_t) sprintf(deep, "{\"messages\":[{\"content\":[{\"image_url\":");
        for (i = 0; i < 4000; i++) {
            deep[len++] = '[';
        }
        len += (size_t) sprintf(deep + len, "\"http://h/\"");
        for (i = 0; i < 4000; i++) {
            deep[len++] = ']';
        }
        len += (size_t) sprintf(deep + len, "}]}]}");
        glm_media_scan_body(&s, deep, len);
        CHECK(s.status == 0 && s.nrefs == 0, "deep nesting: %u %zu", s.status,
              s.nrefs);
        glm_media_scan_free(&s);
    }

    printf("20000 damaged bodies (%d still JSON): %s\n", ok_scans,
           failed == before ? "ok" : "FAILED");
}

int
main(void)
{
    test_prefilter();
    test_where();
    test_urls();
    test_refusals();
    test_data_type();
    test_base64();
    test_rewrite();
    test_mutations();

    printf("test_media_urls: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
