/*
 * test_bench_stats.c: glm-bench's arithmetic and parsing, without a server.
 *
 *   - numpy statistics: sum, mean, std, median and percentiles of float64
 *     arrays of 1 to 20,000 elements must equal, bit for bit, what numpy
 *     2.x printed for the same arrays (values below as hex floats; the
 *     arrays are made by the same integer formula in both places);
 *   - vLLM's calculate_metrics and report on a hand-made set of requests:
 *     the numbers, and the report text byte for byte as vLLM's Python
 *     formatting prints it (trailing padding included);
 *   - HTTP/1.1 response + SSE parsing with the response cut at every byte
 *     position, byte by byte, and in random pieces: same events, same end;
 *     framing by chunked encoding, Content-Length and close; error cases;
 *   - event classification (role, content, reasoning, usage, [DONE], error);
 *   - the random dataset and arrival times on the fixture tokenizer
 *     (argv[1]: another tokenizer.json).
 *
 * The bench sources are compiled in (the Makefile links only engine objects
 * into tests).  Ends with "bench_stats: N passed, M failed".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../bench/bench_stats.c"
#include "../../bench/bench_sse.c"
#include "../../bench/bench_dataset.c"

static int passed, failed;

#define CHECK(cond, ...) do {                                   \
    if (cond) { passed++; } else {                              \
        failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__);   \
        printf(__VA_ARGS__); printf("\n"); }                    \
} while (0)

/* ------------------------------------------------------------ numpy */

typedef struct {
    int    n, k;
    double v[10];   /* sum mean std median p0 p50 p90 p99 p99.9 p100 */
} glm_bench_ref;

/* numpy 2.4: np.sum, np.mean, np.std, np.median, np.percentile(a, p) */
static const glm_bench_ref refs[] = {
    { 1, 0, { 0x0.0p+0, 0x0.0p+0, 0x0.0p+0, 0x0.0p+0, 0x0.0p+0, 0x0.0p+0, 0x0.0p+0, 0x0.0p+0, 0x0.0p+0, 0x0.0p+0 } },
    { 2, 1, { 0x1.f71767ebb907ap+16, 0x1.f71767ebb907ap+15, 0x1.f67a562d9faefp+15, 0x1.f71767ebb907ap+15, 0x1.3a237c32b16d0p+6, 0x1.f71767ebb907ap+15, 0x1.c48970081c636p+16, 0x1.f1c28725d128ep+16, 0x1.f6483ca8c9a31p+16, 0x1.f6c8df0cac5b4p+16 } },
    { 5, 2, { 0x1.86e7867fb4bb2p-3, 0x1.38b938662a2f5p-5, 0x1.cb9273d5b8d17p-6, 0x1.31b311756ce8bp-5, 0x1.0dee3253fcffcp-12, 0x1.31b311756ce8bp-5, 0x1.2055856fb2faap-4, 0x1.3ed16b186bcc0p-4, 0x1.41ddcedc7e477p-4, 0x1.4234849cf21c3p-4 } },
    { 8, 3, { 0x1.6c8ce0f9a9d26p+26, 0x1.6c8ce0f9a9d26p+23, 0x1.e007a03b44a6dp+24, 0x1.093f5dc83cd4ep+6, 0x1.0c5b3f5dc83cdp+4, 0x1.093f5dc83cd4ep+6, 0x1.b7d0d260511bap+24, 0x1.51c38d11be194p+26, 0x1.688b7c511be1cp+26, 0x1.6b137a7498145p+26 } },
    { 9, 4, { 0x1.c158b67ebb907p+8, 0x1.8f6b4ce26dd5cp+5, 0x1.cfa6e8049fe88p+4, 0x1.afaee41e6a74ap+5, 0x1.079a9d260511cp-1, 0x1.afaee41e6a74ap+5, 0x1.48cac5b3f5dc9p+6, 0x1.77fbf1ce521f7p+6, 0x1.7cb40fd0f4f30p+6, 0x1.7d3a4c0a237c3p+6 } },
    { 100, 5, { 0x1.07df9bc5ed0f9p+20, 0x1.51c20f11d3472p+13, 0x1.7f62821c523f3p+14, 0x1.f4d8f761d66e9p-5, 0x1.ed2465caabbf8p-10, 0x1.f4d8f761d66e9p-5, 0x1.9e02237c32b1cp+15, 0x1.643762d9faee5p+16, 0x1.732337c32b171p+16, 0x1.74cba4c0a237dp+16 } },
    { 128, 6, { 0x1.8cadc83cd4e92p+12, 0x1.8cadc83cd4e92p+5, 0x1.cab515d0dd4afp+4, 0x1.9158b67ebb908p+5, 0x1.446f86562d9fbp-7, 0x1.9158b67ebb908p+5, 0x1.64e01038c6b78p+6, 0x1.856f1e8469094p+6, 0x1.88eb6dc2b8e35p+6, 0x1.894e930288df1p+6 } },
    { 129, 7, { 0x1.37324c12cfd77p+30, 0x1.34c8ba9d94ae1p+23, 0x1.756ed3c35977cp+24, 0x1.e511be1958b68p+5, 0x1.1be1958b67ebcp-3, 0x1.e511be1958b68p+5, 0x1.78d4e79a9d262p+25, 0x1.68f7f3a4c0a23p+26, 0x1.6e9ef74981448p+26, 0x1.6eda5f353a4c1p+26 } },
    { 1000, 8, { 0x1.8ce901708f138p+5, 0x1.966f9f2b948eep-5, 0x1.d4dc5e592875dp-6, 0x1.96cd3f00583f2p-5, 0x1.22b1c00badffcp-14, 0x1.96cd3f00583f2p-5, 0x1.6d982800bf071p-4, 0x1.91d14e3bcd35bp-4, 0x1.9557999d56666p-4, 0x1.95bf50ce04422p-4 } },
    { 8193, 9, { 0x1.2e7614c1ba9d2p+36, 0x1.2e6ca15cafb7ap+23, 0x1.67d60e50fc72ap+24, 0x1.ef4981446f865p+5, 0x0.0p+0, 0x1.ef4981446f865p+5, 0x1.7b09920f353a5p+25, 0x1.669f51446f866p+26, 0x1.771457ebb907bp+26, 0x1.78e64f0cac5b4p+26 } },
    { 20000, 10, { 0x1.e3bb80f353a4cp+19, 0x1.8c460b6da1800p+5, 0x1.c9a2fc8cfdb17p+4, 0x1.8c46f86562da0p+5, 0x0.0p+0, 0x1.8c46f86562da0p+5, 0x1.64ac5b3f5dc84p+6, 0x1.885135d606b0fp+6, 0x1.8be19823d9a2ep+6, 0x1.8c46f86562da0p+6 } },
};

/* the arrays numpy saw (t/unit: gen() in the generator script, same formula) */
static void
gen(double *a, int n, int k)
{
    int i;

    for (i = 0; i < n; i++) {
        double v = (double) (((long) i * 7919 + 13L * k) % 10007) / 101.0;
        if (k % 2 == 1 && i % 5 == 0) {
            v = v * 1e6;
        }
        if (k % 3 == 2) {
            v = v * 1e-3;
        }
        a[i] = v;
    }
}

static int
cmp_d(const void *pa, const void *pb)
{
    double a = *(const double *) pa, b = *(const double *) pb;

    return (a > b) - (a < b);
}

static void
test_numpy(void)
{
    static const double pcts[6] = { 0, 50, 90, 99, 99.9, 100 };
    static const char *names[10] = {
        "sum", "mean", "std", "median", "p0", "p50", "p90", "p99", "p99.9", "p100"
    };
    double *a, *s, got[10], maxrel = 0.0;
    size_t r;
    int i, exact = 0, total = 0;

    for (r = 0; r < sizeof(refs) / sizeof(refs[0]); r++) {
        const glm_bench_ref *ref = &refs[r];
        a = malloc((size_t) ref->n * sizeof(double));
        s = malloc((size_t) ref->n * sizeof(double));
        gen(a, ref->n, ref->k);
        memcpy(s, a, (size_t) ref->n * sizeof(double));
        qsort(s, (size_t) ref->n, sizeof(double), cmp_d);
        got[0] = glm_bench_sum(a, (size_t) ref->n);
        got[1] = glm_bench_mean(a, (size_t) ref->n);
        got[2] = glm_bench_std(a, (size_t) ref->n);
        got[3] = glm_bench_median_sorted(s, (size_t) ref->n);
        for (i = 0; i < 6; i++) {
            got[4 + i] = glm_bench_percentile_sorted(s, (size_t) ref->n, pcts[i]);
        }
        for (i = 0; i < 10; i++) {
            double rel = fabs(got[i] - ref->v[i]) / fmax(fabs(ref->v[i]), 1e-300);
            maxrel = fmax(maxrel, ref->v[i] == got[i] ? 0.0 : rel);
            exact += got[i] == ref->v[i];
            total++;
            CHECK(got[i] == ref->v[i], "n=%d %s: got %a (%.17g), numpy %a (%.17g)",
                  ref->n, names[i], got[i], got[i], ref->v[i], ref->v[i]);
        }
        free(a);
        free(s);
    }
    printf("numpy statistics: %d/%d bit-identical, max relative difference %.3g\n",
           exact, total, maxrel);

    /* the empty list: vLLM's np.mean(x or 0) is 0 */
    CHECK(glm_bench_mean(NULL, 0) == 0.0 && glm_bench_std(NULL, 0) == 0.0
          && glm_bench_percentile_sorted(NULL, 0, 99) == 0.0
          && glm_bench_median_sorted(NULL, 0) == 0.0, "empty statistics are 0");
    {
        /* a hand case: [1, 2, 3, 4]: median 2.5, p99 = 3 + 0.97 (numpy: 3.9699999999999998) */
        double v[4] = { 1, 2, 3, 4 };
        CHECK(glm_bench_median_sorted(v, 4) == 2.5, "median of 1..4");
        CHECK(glm_bench_percentile_sorted(v, 4, 99) == 3.9699999999999998,
              "p99 of 1..4 = %.17g", glm_bench_percentile_sorted(v, 4, 99));
        CHECK(glm_bench_percentile_sorted(v, 4, 25) == 1.75, "p25 of 1..4");
    }
}

/* ------------------------------------------------------------ metrics and report */

static const char expected_report[] =
    "============ Serving Benchmark Result ============\n"
    "Successful requests:                     3         \n"
    "Failed requests:                         1         \n"
    "Maximum request concurrency:             4         \n"
    "Request rate configured (RPS):           2.00      \n"
    "Benchmark duration (s):                  2.50      \n"
    "Total input tokens:                      230       \n"
    "Total generated tokens:                  8         \n"
    "Request throughput (req/s):              1.20      \n"
    "Request goodput (req/s):                 0.40      \n"
    "Output token throughput (tok/s):         3.20      \n"
    "Peak output token throughput (tok/s):    4.00      \n"
    "Peak concurrent requests:                2.00      \n"
    "Total token throughput (tok/s):          95.20     \n"
    "---------------Time to First Token----------------\n"
    "Mean TTFT (ms):                          375.00    \n"
    "Median TTFT (ms):                        250.00    \n"
    "P99 TTFT (ms):                           740.00    \n"
    "-----Time per Output Token (excl. 1st token)------\n"
    "Mean TPOT (ms):                          385.42    \n"
    "Median TPOT (ms):                        385.42    \n"
    "P99 TPOT (ms):                           681.46    \n"
    "---------------Inter-token Latency----------------\n"
    "Mean ITL (ms):                           247.92    \n"
    "Median ITL (ms):                         187.50    \n"
    "P99 ITL (ms):                            500.00    \n"
    "----------------End-to-end Latency----------------\n"
    "Mean E2EL (ms):                          916.67    \n"
    "Median E2EL (ms):                        750.00    \n"
    "P99 E2EL (ms):                           1485.00   \n"
    "==================================================\n"
    ;

/* mean, median, std, p99 (ms) that vLLM's calculate_metrics gives for them */
static const double expected_dist[GLM_BENCH_NMETRICS][4] = {
    { 0x1.7700000000000p+8, 0x1.f400000000000p+7, 0x1.0e07e699b73f9p+8, 0x1.7200000000000p+9 },
    { 0x1.816aaaaaaaaabp+8, 0x1.816aaaaaaaaabp+8, 0x1.2e15555555556p+8, 0x1.54baaaaaaaaaap+9 },
    { 0x1.efd5555555556p+7, 0x1.7700000000000p+7, 0x1.7b421b6845dc8p+7, 0x1.f400000000000p+8 },
    { 0x1.ca55555555555p+9, 0x1.7700000000000p+9, 0x1.a8eb153ca591ep+8, 0x1.733ffffffffffp+10 },
};

static void
test_metrics(void)
{
    static const double itl0[3] = { 0.05, 0.0625, 0.125 }, itl3[3] = { 0.5, 0.5, 0.25 };
    glm_bench_sample s[4];
    glm_bench_opts o;
    glm_bench_metrics m;
    glm_bench_run_info info;
    glm_str json = { 0 };
    char *text = NULL;
    size_t len = 0;
    FILE *f;
    int k;

    memset(s, 0, sizeof(s));
    s[0] = (glm_bench_sample) { 1, 100, 4, 10.0, 0.25, 0.5, itl0, 3, NULL };
    s[1] = (glm_bench_sample) { 0, 200, 0, 0.0, 0.0, 0.0, NULL, 0, "HTTP 500: boom" };
    s[2] = (glm_bench_sample) { 1, 50, 1, 10.5, 0.75, 0.75, NULL, 0, NULL };
    s[3] = (glm_bench_sample) { 1, 80, 3, 11.0, 0.125, 1.5, itl3, 3, NULL };
    glm_bench_opts_init(&o);
    o.max_concurrency = 4;
    o.request_rate = 2.0;
    CHECK(glm_bench_parse_goodput("ttft:300", &o) == 0 && glm_bench_parse_goodput("tpot:200", &o) == 0,
          "goodput parses");
    CHECK(glm_bench_metrics_compute(s, 4, 2.5, &o, &m) == 0, "metrics");
    CHECK(m.completed == 3 && m.failed == 1, "completed %d failed %d", m.completed, m.failed);
    CHECK(m.total_input == 230, "prompt tokens of successes only: %lld", m.total_input);
    CHECK(m.total_output == 8, "output tokens %lld", m.total_output);
    CHECK(m.good_completed == 1, "goodput count %d", m.good_completed);
    CHECK(m.max_output_tokens_per_s == 4.0, "peak bin %g", m.max_output_tokens_per_s);
    CHECK(m.max_concurrent_requests == 2, "peak concurrency %d (an end at the same instant "
          "as a start comes first)", m.max_concurrent_requests);
    for (k = 0; k < GLM_BENCH_NMETRICS; k++) {
        CHECK(m.m[k].mean == expected_dist[k][0] && m.m[k].median == expected_dist[k][1]
              && m.m[k].std == expected_dist[k][2] && m.m[k].pct[0] == expected_dist[k][3],
              "%s: mean %a median %a std %a p99 %a", glm_bench_metric_names[k], m.m[k].mean,
              m.m[k].median, m.m[k].std, m.m[k].pct[0]);
    }

    {
        /* back to back: [0, 1) then [1, 2) never overlap */
        glm_bench_sample t2[2] = {
            { 1, 1, 1, 0.0, 0.5, 1.0, NULL, 0, NULL },
            { 1, 1, 1, 1.0, 0.5, 1.0, NULL, 0, NULL },
        };
        glm_bench_metrics m2;
        glm_bench_metrics_compute(t2, 2, 2.0, &o, &m2);
        CHECK(m2.max_concurrent_requests == 1 && m2.max_output_tokens_per_s == 1.0,
              "back-to-back requests: peak %d, %g tok/s", m2.max_concurrent_requests,
              m2.max_output_tokens_per_s);
    }

    f = open_memstream(&text, &len);
    glm_bench_report_print(f, &o, &m);
    fclose(f);
    CHECK(strcmp(text, expected_report) == 0, "report differs from vLLM's:\n%s", text);
    free(text);

    /* without concurrency, rate, goodput: those rows go; "P99.9" for 99.9 */
    glm_bench_opts_init(&o);
    CHECK(glm_bench_parse_percentiles("50,99.9", &o) == 0 && o.n_percentiles == 2, "percentiles");
    CHECK(glm_bench_parse_metrics("ttft,itl", &o.metrics) == 0, "metric names");
    glm_bench_metrics_compute(s, 4, 2.5, &o, &m);
    f = open_memstream(&text, &len);
    glm_bench_report_print(f, &o, &m);
    glm_bench_result_line(f, &o, &m, 1000, 100, 4);
    fclose(f);
    CHECK(strstr(text, "Maximum request concurrency") == NULL
          && strstr(text, "Request rate configured") == NULL
          && strstr(text, "Request goodput") == NULL, "optional rows left out");
    CHECK(strstr(text, "P99.9 ITL (ms):                          500.00    \n") != NULL
          && strstr(text, "P50 TTFT (ms):") != NULL && strstr(text, "TPOT") == NULL,
          "selected metrics and percentile words:\n%s", text);
    CHECK(strstr(text, "\nRESULT completed=3 failed=1 ") != NULL
          && strstr(text, " output_tok_s=3.2000 ") != NULL
          && strstr(text, " max_concurrency=inf request_rate=inf ") != NULL,
          "RESULT line:\n%s", text);
    free(text);

    /* the JSON: vLLM's names, valid JSON */
    memset(&info, 0, sizeof(info));
    info.date = "20250101-000000";
    info.backend = "openai-chat";
    info.model_id = "glm-4.5";
    info.tokenizer_id = "tok.json";
    info.ttft_mode = "first-choices";
    info.server_prompt_tokens = -1;
    info.detailed = 1;
    glm_bench_result_json(&json, &info, &o, &m, s, 4);
    {
        char yerr[128];
        const char *p1[] = { "p99.9_itl_ms", NULL }, *p2[] = { "request_rate", NULL };
        const char *p3[] = { "itls", NULL }, *p4[] = { "completed", NULL };
        const char *p5[] = { "errors", NULL };
        yajl_val root = yajl_tree_parse(json.data, yerr, sizeof(yerr)), v;
        CHECK(root != NULL, "result JSON parses: %s\n%s", yerr, json.data);
        v = yajl_tree_get(root, p1, yajl_t_number);
        CHECK(YAJL_IS_DOUBLE(v) && YAJL_GET_DOUBLE(v) == 500.0, "p99.9_itl_ms");
        v = yajl_tree_get(root, p2, yajl_t_string);
        CHECK(YAJL_IS_STRING(v) && strcmp(v->u.string, "inf") == 0, "request_rate \"inf\"");
        v = yajl_tree_get(root, p3, yajl_t_array);
        CHECK(YAJL_IS_ARRAY(v) && v->u.array.len == 4
              && YAJL_IS_ARRAY(v->u.array.values[0]) && v->u.array.values[0]->u.array.len == 3,
              "itls per request");
        v = yajl_tree_get(root, p4, yajl_t_number);
        CHECK(YAJL_IS_INTEGER(v) && YAJL_GET_INTEGER(v) == 3, "completed");
        v = yajl_tree_get(root, p5, yajl_t_array);
        CHECK(YAJL_IS_ARRAY(v) && YAJL_IS_STRING(v->u.array.values[1])
              && strcmp(v->u.array.values[1]->u.string, "HTTP 500: boom") == 0,
              "errors");
        yajl_tree_free(root);
    }
    glm_str_free(&json);

    CHECK(glm_bench_parse_metrics("ttft,bogus", &o.metrics) < 0, "unknown metric refused");
    CHECK(glm_bench_parse_percentiles("101", &o) < 0 && glm_bench_parse_percentiles("9x", &o) < 0,
          "bad percentiles refused");
    CHECK(glm_bench_parse_goodput("itl:5", &o) < 0 && glm_bench_parse_goodput("ttft", &o) < 0,
          "bad goodput refused");
}

/* ------------------------------------------------------------ HTTP + SSE */

typedef struct {
    glm_str all;        /* events, each followed by \x1e */
    int     n;
    int     stop_at;    /* stop (return -1) at this event; 0: never */
} collector;

static int
collect(void *ud, const char *data, size_t len)
{
    collector *c = ud;

    if (data[len] != '\0') {
        CHECK(0, "event data not NUL-terminated");
    }
    glm_str_add(&c->all, data, len);
    glm_str_add(&c->all, "\x1e", 1);
    c->n++;
    return c->stop_at && c->n == c->stop_at ? -1 : 0;
}

static const char sse_body[] =
    ": keep-alive comment\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\r\n\r\n"
    "event: message\nid: 3\nretry: 10\n"
    "data: {\"choices\":[{\"index\":0,\n"
    "data: \"delta\":{\"content\":\"lo \xc3\xa9\xf0\x9f\x98\x80\"}}]}\n\n"
    "data:{\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"hmm\"}}]}\r\r"
    "data: {\"choices\":[{\"index\":0,\r\ndata: \"delta\":{\"content\":\"!\"}}]}\r\n\r\n"
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15}}\n\n"
    "data: [DONE]\n\n";

static const char *expected_events[] = {
    "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}",
    "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}",
    "{\"choices\":[{\"index\":0,\n\"delta\":{\"content\":\"lo \xc3\xa9\xf0\x9f\x98\x80\"}}]}",
    "{\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"hmm\"}}]}",
    "{\"choices\":[{\"index\":0,\n\"delta\":{\"content\":\"!\"}}]}",
    "{\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15}}",
    "[DONE]",
};

#define NEVENTS ((int) (sizeof(expected_events) / sizeof(expected_events[0])))

static const char next_response[] = "HTTP/1.1 200 OK\r\n";

/* the SSE body in chunks of varied sizes, with an extension and a trailer */
static void
chunked_response(glm_str *r)
{
    static const size_t sizes[] = { 1, 7, 30, 2, 100, 64 };
    size_t off = 0, i = 0, n, total = sizeof(sse_body) - 1;

    glm_str_adds(r, "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
                 "TRANSFER-ENCODING: Chunked\r\nX-Odd: a:b\r\n\r\n");
    while (off < total) {
        n = sizes[i++ % (sizeof(sizes) / sizeof(sizes[0]))];
        n = n > total - off ? total - off : n;
        glm_str_addf(r, i == 3 ? "%zX;name=value\r\n" : "%zx\r\n", n);
        glm_str_add(r, sse_body + off, n);
        glm_str_adds(r, "\r\n");
        off += n;
    }
    glm_str_adds(r, "0\r\nX-Trailer: v\r\n\r\n");
}

/*
 * Feeds response r in pieces cut at cuts[0..ncuts) (ascending offsets);
 * returns the final feed's rc, events in c, *done_at: the offset where the
 * response ended.
 */
static int
feed_cut(glm_bench_http *h, const glm_str *r, const size_t *cuts, size_t ncuts,
    collector *c, size_t *done_at)
{
    size_t prev = 0, i, used;
    int rc = 0;

    *done_at = (size_t) -1;
    for (i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : r->len;
        if (end < prev) {
            continue;
        }
        rc = glm_bench_http_feed(h, r->data + prev, end - prev, &used, collect, c);
        if (rc != 0) {
            *done_at = prev + used;
            return rc;
        }
        prev = end;
    }
    return rc;
}

static void
check_events(const collector *c, const char *what)
{
    glm_str want = { 0 };
    size_t i;

    for (i = 0; i < sizeof(expected_events) / sizeof(expected_events[0]); i++) {
        glm_str_adds(&want, expected_events[i]);
        glm_str_add(&want, "\x1e", 1);
    }
    CHECK(c->all.len == want.len && memcmp(c->all.data, want.data, want.len) == 0,
          "%s: events differ (%d events)", what, c->n);
    glm_str_free(&want);
}

static void
test_sse_cuts(void)
{
    glm_str r = { 0 };
    glm_bench_http h = { 0 };
    collector c;
    size_t cut[2], *many, i, at, resp_len, bad = 0, nmany;
    glm_rng rng;
    int rc, round;

    memset(&c, 0, sizeof(c));
    chunked_response(&r);
    resp_len = r.len;
    glm_str_adds(&r, next_response);          /* bytes of a next response after it */

    /* one piece */
    glm_bench_http_init(&h, 1);
    rc = feed_cut(&h, &r, NULL, 0, &c, &at);
    CHECK(rc == 1 && at == resp_len, "one piece: rc %d, ended at %zu of %zu", rc, at, resp_len);
    CHECK(h.status == 200 && h.chunked && h.keep_alive, "status %d chunked %d keep-alive %d",
          h.status, h.chunked, h.keep_alive);
    CHECK(strcmp(h.content_type, "text/event-stream; charset=utf-8") == 0, "content type %s",
          h.content_type);
    check_events(&c, "one piece");

    /* two pieces, cut at every offset; then three pieces around every offset */
    for (i = 0; i <= r.len; i++) {
        c.all.len = 0;
        c.n = 0;
        glm_bench_http_init(&h, 1);
        cut[0] = i;
        rc = feed_cut(&h, &r, cut, 1, &c, &at);
        if (rc != 1 || at != resp_len || c.n != NEVENTS) {
            bad++;
            if (bad < 5) {
                printf("  cut at %zu: rc %d, ended at %zu, %d events\n", i, rc, at, c.n);
            }
            continue;
        }
        check_events(&c, "two pieces");
        c.all.len = 0;
        c.n = 0;
        glm_bench_http_init(&h, 1);
        cut[0] = i > 0 ? i - 1 : 0;
        cut[1] = i + 1 < r.len ? i + 1 : r.len;
        rc = feed_cut(&h, &r, cut, 2, &c, &at);
        bad += rc != 1 || at != resp_len || c.n != NEVENTS;
    }
    CHECK(bad == 0, "%zu of %zu cut positions misparsed", bad, r.len + 1);

    /* byte by byte, and random pieces */
    many = malloc(r.len * sizeof(*many));
    for (round = 0; round < 200; round++) {
        glm_rng_seed(&rng, (uint64_t) round);
        nmany = 0;
        for (i = 1; i < r.len; i++) {
            if (round == 0 || glm_rng_next(&rng) % 9 == 0) {
                many[nmany++] = i;
            }
        }
        c.all.len = 0;
        c.n = 0;
        glm_bench_http_init(&h, 1);
        rc = feed_cut(&h, &r, many, nmany, &c, &at);
        if (rc != 1 || at != resp_len) {
            CHECK(0, "random pieces round %d: rc %d at %zu", round, rc, at);
            break;
        }
        check_events(&c, round == 0 ? "byte by byte" : "random pieces");
    }
    free(many);

    /* the callback can stop the parse */
    c.all.len = 0;
    c.n = 0;
    c.stop_at = 2;
    glm_bench_http_init(&h, 1);
    rc = feed_cut(&h, &r, NULL, 0, &c, &at);
    CHECK(rc == -1 && c.n == 2 && h.err[0] == '\0', "callback stop: rc %d n %d", rc, c.n);
    c.stop_at = 0;

    glm_bench_http_free(&h);
    glm_str_free(&r);
    glm_str_free(&c.all);
}

/* feeds a whole response at once; returns rc, with *used */
static int
feed_all(glm_bench_http *h, const char *resp, collector *c, size_t *used)
{
    c->all.len = 0;
    c->n = 0;
    return glm_bench_http_feed(h, resp, strlen(resp), used, collect, c);
}

static void
test_http_framing(void)
{
    glm_bench_http h = { 0 };
    collector c;
    glm_str r = { 0 };
    size_t used, at, cut;
    int rc;

    memset(&c, 0, sizeof(c));
    /* Content-Length */
    glm_str_addf(&r, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s", sizeof(sse_body) - 1, sse_body);
    glm_bench_http_init(&h, 1);
    rc = feed_all(&h, r.data, &c, &used);
    CHECK(rc == 1 && used == r.len && h.keep_alive, "Content-Length: rc %d used %zu/%zu", rc, used, r.len);
    check_events(&c, "Content-Length");
    for (cut = 1; cut < r.len; cut += 3) {
        glm_bench_http_init(&h, 1);
        c.all.len = 0;
        c.n = 0;
        rc = feed_cut(&h, &r, &cut, 1, &c, &at);
        if (rc != 1 || c.n != NEVENTS) {
            CHECK(0, "Content-Length cut at %zu: rc %d, %d events", cut, rc, c.n);
            break;
        }
    }

    /* delimited by the close (HTTP/1.0, no length); the last event lacks its blank line */
    r.len = 0;
    glm_str_adds(&r, "HTTP/1.0 200 OK\nContent-Type: text/event-stream\n\n");
    glm_str_add(&r, sse_body, sizeof(sse_body) - 3);        /* "...data: [DONE]" */
    glm_bench_http_init(&h, 1);
    rc = feed_all(&h, r.data, &c, &used);
    CHECK(rc == 0 && !h.keep_alive && c.n == NEVENTS - 1, "close-delimited: rc %d, %d events so far", rc, c.n);
    rc = glm_bench_http_eof(&h, collect, &c);
    CHECK(rc == 1, "close ends a close-delimited body");
    check_events(&c, "close-delimited, unterminated last event");

    /* Connection: close; 100 Continue first; keep-alive off for 1.0 */
    glm_bench_http_init(&h, 1);
    rc = feed_all(&h, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nConnection: close\r\n"
                  "Content-Length: 14\r\n\r\ndata: [DONE]\n\n", &c, &used);
    CHECK(rc == 1 && h.status == 200 && !h.keep_alive && c.n == 1, "100 Continue, Connection: close");

    /* an error response: the body is kept, no SSE */
    glm_bench_http_init(&h, 1);
    rc = feed_all(&h, "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                  "Content-Length: 28\r\n\r\n{\"error\":{\"message\":\"no\"}}\n\n", &c, &used);
    CHECK(rc == 1 && h.status == 400 && c.n == 0 && h.body.len == 28
          && memcmp(h.body.data, "{\"error\"", 8) == 0, "400 body kept");

    /* 204: no body */
    glm_bench_http_init(&h, 1);
    rc = feed_all(&h, "HTTP/1.1 204 No Content\r\n\r\n", &c, &used);
    CHECK(rc == 1 && h.status == 204 && used == 27, "204 ends at the head");

    /* malformed */
    glm_bench_http_init(&h, 1);
    rc = feed_all(&h, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", &c, &used);
    CHECK(rc == -1 && strstr(h.err, "chunk-size") != NULL, "bad chunk size: %s", h.err);
    glm_bench_http_init(&h, 1);
    rc = feed_all(&h, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", &c, &used);
    CHECK(rc == -1 && strstr(h.err, "CRLF") != NULL, "chunk without CRLF: %s", h.err);
    glm_bench_http_init(&h, 1);
    rc = feed_all(&h, "SSH-2.0-OpenSSH\r\n\r\n", &c, &used);
    CHECK(rc == -1 && strstr(h.err, "status line") != NULL, "not HTTP: %s", h.err);
    glm_bench_http_init(&h, 1);
    rc = feed_all(&h, "HTTP/1.1 200 OK\r\nContent-Length: x1\r\n\r\n", &c, &used);
    CHECK(rc == -1 && strstr(h.err, "Content-Length") != NULL, "bad Content-Length: %s", h.err);

    /* cut short */
    glm_bench_http_init(&h, 1);
    rc = feed_all(&h, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\ndata:", &c, &used);
    CHECK(rc == 0 && glm_bench_http_eof(&h, collect, &c) == -1
          && strstr(h.err, "chunked body") != NULL, "closed inside a chunked body: %s", h.err);
    glm_bench_http_init(&h, 1);
    rc = feed_all(&h, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", &c, &used);
    CHECK(rc == 0 && glm_bench_http_eof(&h, collect, &c) == -1
          && strstr(h.err, "7 bytes short") != NULL, "closed short of Content-Length: %s", h.err);
    glm_bench_http_init(&h, 1);
    CHECK(glm_bench_http_eof(&h, collect, &c) == -1 && strstr(h.err, "before any response") != NULL,
          "closed before any byte: %s", h.err);

    /* the SSE parser alone: comment-only events and empty data dispatch nothing / "" */
    {
        glm_bench_sse s;
        char err[64];
        memset(&s, 0, sizeof(s));
        glm_bench_sse_init(&s);
        c.all.len = 0;
        c.n = 0;
        glm_bench_sse_feed(&s, ":x\n\nid: 1\n\ndata\n\n", 18, collect, &c, err, sizeof(err));
        CHECK(c.n == 1 && c.all.len == 1, "\"data\" alone is one empty event, comments none (%d)", c.n);
        glm_bench_sse_free(&s);
    }

    glm_bench_http_free(&h);
    glm_str_free(&r);
    glm_str_free(&c.all);
}

static void
test_events(void)
{
    glm_bench_event ev;
    glm_str content = { 0 };
    char err[256];
    size_t i;

    for (i = 0; i < sizeof(expected_events) / sizeof(expected_events[0]); i++) {
        CHECK(glm_bench_event_parse(expected_events[i], strlen(expected_events[i]), &ev, &content,
                                    err, sizeof(err)) == 0, "event %zu parses: %s", i, err);
        switch (i) {
        case 0:
            CHECK(ev.has_choices && !ev.has_content && !ev.has_usage, "role chunk");
            break;
        case 1:
        case 2:
            CHECK(ev.has_choices && ev.has_content, "content chunk %zu", i);
            break;
        case 3:
            CHECK(ev.has_choices && !ev.has_content && ev.has_reasoning, "reasoning chunk");
            break;
        case 4:
            CHECK(ev.has_choices && ev.has_content, "content chunk with CRLF between data lines");
            break;
        case 5:
            CHECK(!ev.has_choices && ev.has_usage && ev.completion_tokens == 3
                  && ev.prompt_tokens == 12, "usage chunk");
            break;
        default:
            CHECK(ev.done, "[DONE]");
        }
    }
    CHECK(content.len == strlen("Hello \xc3\xa9\xf0\x9f\x98\x80!")
          && strcmp(content.data, "Hello \xc3\xa9\xf0\x9f\x98\x80!") == 0, "content text: %s", content.data);

#define PARSE(s) glm_bench_event_parse(s, strlen(s), &ev, NULL, err, sizeof(err))
    CHECK(PARSE(" [DONE] ") == 0 && ev.done, "[DONE] with spaces");
    CHECK(PARSE("{\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":{\"completion_tokens\":9}}") == 0
          && ev.has_choices && !ev.has_usage, "usage beside choices is not read (vLLM)");
    CHECK(PARSE("{\"choices\":[],\"usage\":null}") == 0 && !ev.has_choices && !ev.has_usage,
          "empty choices, null usage");
    CHECK(PARSE("{\"error\":{\"message\":\"out of KV cache\",\"code\":500}}") == 0
          && ev.is_error && strcmp(ev.message, "out of KV cache") == 0, "error event");
    CHECK(PARSE("{\"choices\":[{\"delta\":{\"content\":null}}]}") == 0 && ev.has_choices
          && !ev.has_content, "null content");
    CHECK(PARSE("{\"choices\": [{\"delta\": {\"content\": \"x\"") < 0 && strstr(err, "JSON") != NULL,
          "truncated JSON: %s", err);
    CHECK(PARSE("[1,2]") < 0, "not an object");
    CHECK(PARSE("") < 0, "empty data");
#undef PARSE
    glm_str_free(&content);
}

/* ------------------------------------------------------------ dataset */

static void
test_dataset(const char *tok_path)
{
    glm_tokenizer *tok;
    glm_tokenizer_ids allowed = { 0 }, enc = { 0 };
    glm_bench_dataset_cfg cfg = { 40, 64, 20, 0.5, 7, 0 };
    glm_bench_prompt *p, *q;
    double due[500], gaps = 0.0;
    long mismatch, mismatch2, i, bad_len = 0, bad_out = 0, added = 0, special = 0;
    size_t j;
    int same = 1, differ = 0, mono = 1;
    glm_err err;

    tok = glm_tokenizer_load(tok_path, &err);
    if (tok == NULL) {
        CHECK(0, "load %s (run from the repository root, or give a tokenizer.json): %s",
              tok_path, err.msg);
        return;
    }
    CHECK(glm_bench_allowed_ids(tok, tok_path, &allowed, &err) == 0, "allowed ids: %s", err.msg);
    for (j = 0; j < allowed.len; j++) {
        special += glm_tokenizer_is_special(tok, allowed.ids[j]);
        added += glm_tokenizer_token_id(tok, "<think>") == allowed.ids[j]
                 || glm_tokenizer_token_id(tok, "<tool_call>") == allowed.ids[j];
    }
    CHECK(allowed.len > 0 && special == 0 && added == 0,
          "%zu allowed ids, %ld special, %ld non-special added tokens among them",
          allowed.len, special, added);
    printf("dataset: %zu of %d ids allowed (added tokens left out)\n", allowed.len,
           glm_tokenizer_vocab_size(tok));

    p = glm_bench_dataset_random(tok, &allowed, &cfg, &mismatch, &err);
    q = glm_bench_dataset_random(tok, &allowed, &cfg, &mismatch2, &err);
    CHECK(p != NULL && q != NULL, "dataset: %s", err.msg);
    if (p == NULL || q == NULL) {
        glm_bench_dataset_free(p, (size_t) cfg.num_prompts);
        glm_bench_dataset_free(q, (size_t) cfg.num_prompts);
        glm_tokenizer_ids_free(&allowed);
        glm_tokenizer_free(tok);
        return;
    }
    for (i = 0; i < cfg.num_prompts; i++) {
        enc.len = 0;
        glm_tokenizer_encode(tok, NULL, p[i].text, p[i].text_len, &enc, &err);
        bad_len += (long) enc.len != p[i].prompt_len;
        /* floor(64*0.5)=32 .. ceil(64*1.5)=96, plus what 10 rounds left over */
        bad_len += p[i].prompt_len < 32 || p[i].prompt_len > 96 + 4;
        bad_out += p[i].output_len < 10 || p[i].output_len > 30;
        for (j = 0; j < enc.len; j++) {
            special += glm_tokenizer_is_special(tok, enc.ids[j]);
        }
        same &= p[i].text_len == q[i].text_len && memcmp(p[i].text, q[i].text, p[i].text_len) == 0
                && p[i].output_len == q[i].output_len;
        differ |= i > 0 && p[i].prompt_len != p[0].prompt_len;
    }
    CHECK(bad_len == 0 && bad_out == 0, "%ld prompts with a bad length, %ld bad output lengths",
          bad_len, bad_out);
    CHECK(special == 0, "%ld special tokens in the prompts", special);
    CHECK(same && mismatch == mismatch2, "a seed makes the same prompts");
    CHECK(differ, "range ratio 0.5 varies the lengths");
    glm_bench_dataset_free(q, (size_t) cfg.num_prompts);

    cfg.seed = 8;
    cfg.range_ratio = 0.0;
    q = glm_bench_dataset_random(tok, &allowed, &cfg, &mismatch2, &err);
    CHECK(q != NULL && q[0].output_len == 20 && strcmp(q[0].text, p[0].text) != 0,
          "another seed, other prompts; ratio 0 fixes the output length");
    glm_bench_dataset_free(q, (size_t) cfg.num_prompts);
    glm_bench_dataset_free(p, (size_t) cfg.num_prompts);

    /* --random-prefix-len: every prompt starts with the same 200 ids (up
     * to where the decoded text meets the prompt's own part), and its own
     * 64 differ (drawn ids re-encode longer: fitted with the prompt, the
     * prefix would push them out) */
    cfg.range_ratio = 0.0;
    for (cfg.prefix_len = 0; cfg.prefix_len <= 200; cfg.prefix_len += 200) {
        glm_tokenizer_ids first = { 0 };
        size_t common = SIZE_MAX;

        cfg.num_prompts = 8;
        bad_len = 0;
        q = glm_bench_dataset_random(tok, &allowed, &cfg, &mismatch2, &err);
        for (i = 0; q != NULL && i < cfg.num_prompts; i++) {
            enc.len = 0;
            glm_tokenizer_encode(tok, NULL, q[i].text, q[i].text_len, i ? &enc : &first, &err);
            bad_len += labs(q[i].prompt_len - (cfg.prefix_len + 64)) > 4;
            for (j = 0; i > 0 && j < enc.len && j < first.len && enc.ids[j] == first.ids[j]; j++) {
            }
            common = i > 0 && j < common ? j : common;
        }
        CHECK(q != NULL && bad_len == 0 && (cfg.prefix_len ? common >= 195 && common < 232 : common < 8),
              "prefix %ld ids: prompts of %ld ids, %zu ids in common", cfg.prefix_len,
              cfg.prefix_len + 64, common);
        glm_bench_dataset_free(q, q ? (size_t) cfg.num_prompts : 0);
        glm_tokenizer_ids_free(&first);
    }
    cfg.prefix_len = 0;

    cfg.range_ratio = 1.0;
    CHECK(glm_bench_dataset_random(tok, &allowed, &cfg, &mismatch, &err) == NULL
          && strstr(err.msg, "range-ratio") != NULL, "range ratio 1 refused: %s", err.msg);

    /* arrivals */
    glm_bench_arrivals(due, 500, INFINITY, 1);
    CHECK(due[0] == 0.0 && due[499] == 0.0, "rate inf: all at once");
    glm_bench_arrivals(due, 500, 20.0, 1);
    for (j = 1; j < 500; j++) {
        mono &= due[j] >= due[j - 1];
        gaps += due[j] - due[j - 1];
    }
    CHECK(mono && fabs(due[499] - 25.0) < 1e-9 && due[0] > 0.0,
          "Poisson arrivals ascend and end at n/rate: last %.12g", due[499]);

    glm_tokenizer_ids_free(&enc);
    glm_tokenizer_ids_free(&allowed);
    glm_tokenizer_free(tok);
}

int
main(int argc, char **argv)
{
    test_numpy();
    test_metrics();
    test_sse_cuts();
    test_http_framing();
    test_events();
    test_dataset(argc > 1 ? argv[1] : "t/fixtures/glm45-air-tiny/tokenizer.json");
    printf("bench_stats: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
