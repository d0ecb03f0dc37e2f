/*
 * test_vision.c: M-RoPE positions (get_rope_index) on MODEL.md 7's worked
 * example and on videos, the placeholder/grid consistency errors, and the
 * data: URL decoding of media_request.c (base64 forms a client may send).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "media/media_request.h"
#include "model/config.h"
#include "model/vision.h"

static int n_pass, n_fail;

#define CHECK(cond, ...) do {                                   \
        if (cond) { n_pass++; } else {                          \
            n_fail++; printf("FAIL %s:%d: ", __FILE__, __LINE__); \
            printf(__VA_ARGS__); printf("\n");                  \
        }                                                       \
    } while (0)

static glm_config
glm_cfg(void)
{
    glm_config c;

    memset(&c, 0, sizeof(c));
    c.image_token_id = 100;
    c.video_token_id = 101;
    c.image_start_token_id = 102;
    c.image_end_token_id = 103;
    c.video_start_token_id = 104;
    c.video_end_token_id = 105;
    c.vision.spatial_merge_size = 2;
    c.hidden_size = 4;
    return c;
}

static void
test_worked_example(void)
{
    /* MODEL.md 7: 4 text tokens, one image with grid 4x6 (2x3 LLM tokens), 3 text */
    glm_config c = glm_cfg();
    int32_t ids[13] = { 1, 2, 3, 102, 100, 100, 100, 100, 100, 100, 103, 7, 8 };
    static const int32_t want[13][3] = {
        {0,0,0}, {1,1,1}, {2,2,2}, {3,3,3}, {4,4,4}, {4,4,5}, {4,4,6}, {4,5,4}, {4,5,5},
        {4,5,6}, {7,7,7}, {8,8,8}, {9,9,9},
    };
    glm_grid g = { 1, 4, 6 };
    int32_t pos[13 * 3];
    int delta = 0, i, bad = 0;
    glm_err err;

    CHECK(glm_mrope_positions(&c, ids, 13, &g, 1, pos, &delta, &err) == 0, "%s", err.msg);
    for (i = 0; i < 13; i++) {
        bad += memcmp(pos + 3 * i, want[i], sizeof(want[i])) != 0;
    }
    CHECK(bad == 0, "worked example: %d positions differ", bad);
    CHECK(delta == -3, "worked example: rope delta %d, want -3", delta);
}

static void
test_video_pairs(void)
{
    /* <bov> [<boi> 4 tokens <eoi> "0"] [<boi> 4 tokens <eoi> "1"] <eov>: each pair
     * a group at t = cur, the text between pairs advancing cur */
    glm_config c = glm_cfg();
    int32_t ids[] = { 104, 102, 100, 100, 100, 100, 103, 50, 102, 100, 100, 100, 100, 103,
                      51, 105 };
    int n = (int) (sizeof(ids) / sizeof(ids[0]));
    glm_grid g = { 2, 4, 4 };
    int32_t pos[16 * 3];
    int delta = 0;
    glm_err err;

    CHECK(glm_mrope_positions(&c, ids, n, &g, 1, pos, &delta, &err) == 0, "%s", err.msg);
    /* bov 0, boi 1, pair 0 at t=2 (h,w 2..3), eoi 4, "0" 5, boi 6, pair 1 at t=7 */
    CHECK(pos[3 * 2] == 2 && pos[3 * 5 + 1] == 3 && pos[3 * 5 + 2] == 3, "pair 0 positions");
    CHECK(pos[3 * 6] == 4 && pos[3 * 7] == 5 && pos[3 * 8] == 6, "text between pairs");
    CHECK(pos[3 * 9] == 7 && pos[3 * 12 + 1] == 8 && pos[3 * 12 + 2] == 8, "pair 1 positions");
    CHECK(pos[3 * 15] == 11 && delta == 12 - n, "after the video: %d, delta %d", pos[3 * 15],
          delta);
}

static void
test_mismatches(void)
{
    glm_config c = glm_cfg();
    int32_t one[] = { 1, 100, 100, 100, 100, 2 };
    int32_t pos[64 * 3];
    glm_grid g2[2] = { { 1, 4, 4 }, { 1, 4, 4 } }, big = { 1, 4, 6 }, vid = { 3, 4, 4 };
    int32_t vids[] = { 104, 100, 100, 100, 100, 50, 100, 100, 100, 100, 105 };
    int delta;
    glm_err err;

    CHECK(glm_mrope_positions(&c, one, 6, g2, 2, pos, &delta, &err) != 0
          && strstr(err.msg, "cover 1 of 2") != NULL, "fewer placeholders: %s", err.msg);
    CHECK(glm_mrope_positions(&c, one, 6, &big, 1, pos, &delta, &err) != 0
          && strstr(err.msg, "run of 4 image tokens") != NULL, "short run: %s", err.msg);
    CHECK(glm_mrope_positions(&c, one, 6, g2, 0, pos, &delta, &err) != 0
          && strstr(err.msg, "more image placeholders") != NULL, "no grids: %s", err.msg);
    CHECK(glm_mrope_positions(&c, vids, 11, &vid, 1, pos, &delta, &err) != 0,
          "a 3-pair video placed twice must fail");
}

/* data: URLs through glm_media_load: forms that decode, forms refused */
static void
test_data_urls(const char *png_path)
{
    static const char *b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    glm_media_opts o;
    glm_media_set set;
    glm_err err;
    size_t len, i, k;
    char *png = glm_read_file(png_path, &len, &err), *enc, *body;
    struct { const char *name; int mutate; int ok; const char *msg; } cases[] = {
        { "standard base64", 0, 1, NULL },
        { "wrapped with newlines", 1, 1, NULL },
        { "padding removed", 2, 1, NULL },
        { "URL-safe alphabet", 3, 1, NULL },
        { "a '*' inside", 4, 0, "invalid character" },
        { "cut mid-quantum", 5, 0, NULL },
        { "no ;base64", 6, 0, "only base64" },
    };

    if (png == NULL) {
        CHECK(0, "%s", err.msg);
        return;
    }
    enc = malloc(len * 2 + 16);
    body = malloc(len * 3 + 512);
    CHECK(glm_media_opts_init(&o, NULL, &err) == 0, "opts");
    for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        size_t n = 0, j;
        yajl_val root;
        char ebuf[128];
        int r;

        for (i = 0; i < len; i += 3) {
            uint32_t v = (uint32_t) (uint8_t) png[i] << 16;
            int m = len - i >= 3 ? 3 : (int) (len - i);
            v |= m > 1 ? (uint32_t) (uint8_t) png[i + 1] << 8 : 0;
            v |= m > 2 ? (uint32_t) (uint8_t) png[i + 2] : 0;
            enc[n++] = b64[v >> 18];
            enc[n++] = b64[(v >> 12) & 63];
            enc[n++] = m > 1 ? b64[(v >> 6) & 63] : '=';
            enc[n++] = m > 2 ? b64[v & 63] : '=';
            if (cases[k].mutate == 1 && n % 76 == 0) {
                enc[n++] = '\\';
                enc[n++] = 'n';
            }
        }
        enc[n] = '\0';
        if (cases[k].mutate == 2) {
            while (n > 0 && enc[n - 1] == '=') {
                enc[--n] = '\0';
            }
        }
        for (j = 0; cases[k].mutate == 3 && j < n; j++) {
            enc[j] = enc[j] == '+' ? '-' : enc[j] == '/' ? '_' : enc[j];
        }
        if (cases[k].mutate == 4) {
            enc[n / 2] = '*';
        }
        if (cases[k].mutate == 5) {
            enc[n - 7] = '\0';
        }
        snprintf(body, len * 3 + 512, "{\"messages\":[{\"role\":\"user\",\"content\":"
                 "[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png%s,%s\"}}]}]}",
                 cases[k].mutate == 6 ? "" : ";base64", enc);
        root = yajl_tree_parse(body, ebuf, sizeof(ebuf));
        r = glm_media_load(&o, root, &set, &err);
        CHECK((r == 0) == cases[k].ok && (cases[k].ok ? set.n == 1 : set.status == 400),
              "%s: r=%d %s", cases[k].name, r, r ? err.msg : "");
        if (cases[k].msg != NULL) {
            CHECK(r != 0 && strstr(err.msg, cases[k].msg) != NULL, "%s: message '%s'",
                  cases[k].name, err.msg);
        }
        glm_media_set_free(&set);
        yajl_tree_free(root);
    }
    glm_media_opts_free(&o);
    free(enc);
    free(body);
    free(png);
}

int
main(int argc, char **argv)
{
    test_worked_example();
    test_video_pairs();
    test_mismatches();
    test_data_urls(argc > 1 ? argv[1] : "t/fixtures/glm45v-tiny/media/cat.png");
    printf("vision: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail != 0;
}
