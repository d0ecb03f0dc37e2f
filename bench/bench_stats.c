/*
 * bench_stats.c: see bench_stats.h.  The numpy reproductions were checked
 * bit for bit against numpy 2.x (np.sum, np.mean, np.std, np.median,
 * np.percentile on float64 arrays of 1 to 50,000 elements); the unit test
 * pins a few of those values.
 */
#include "bench_stats.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const glm_bench_metric_names[GLM_BENCH_NMETRICS] = {
    "ttft", "tpot", "itl", "e2el"
};
static const char *const glm_bench_metric_labels[GLM_BENCH_NMETRICS] = {
    "TTFT", "TPOT", "ITL", "E2EL"
};
static const char *const glm_bench_metric_headers[GLM_BENCH_NMETRICS] = {
    "Time to First Token", "Time per Output Token (excl. 1st token)",
    "Inter-token Latency", "End-to-end Latency"
};

/* numpy's PW_BLOCKSIZE */
#define GLM_BENCH_PW_BLOCK 128

double
glm_bench_sum(const double *a, size_t n)
{
    double r[8], res;
    size_t i, n2;

    if (n < 8) {
        /* -0.0 so that a sum of -0.0s stays -0.0, as numpy */
        res = -0.0;
        for (i = 0; i < n; i++) {
            res += a[i];
        }
        return res;
    }
    if (n <= GLM_BENCH_PW_BLOCK) {
        for (i = 0; i < 8; i++) {
            r[i] = a[i];
        }
        for (i = 8; i < n - (n % 8); i += 8) {
            r[0] += a[i + 0];
            r[1] += a[i + 1];
            r[2] += a[i + 2];
            r[3] += a[i + 3];
            r[4] += a[i + 4];
            r[5] += a[i + 5];
            r[6] += a[i + 6];
            r[7] += a[i + 7];
        }
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) {
            res += a[i];
        }
        return res;
    }
    /* halve, keeping the first half a multiple of the unroll factor */
    n2 = n / 2;
    n2 -= n2 % 8;
    return glm_bench_sum(a, n2) + glm_bench_sum(a + n2, n - n2);
}

double
glm_bench_mean(const double *a, size_t n)
{
    /* the reduction starts from add's identity: 0.0 + pairwise(a) */
    return n ? (0.0 + glm_bench_sum(a, n)) / (double) n : 0.0;
}

double
glm_bench_std(const double *a, size_t n)
{
    double mean, *d, var;
    size_t i;

    if (n == 0) {
        return 0.0;
    }
    mean = glm_bench_mean(a, n);
    d = malloc(n * sizeof(*d));
    if (d == NULL) {
        /* a plain loop: the same number to within rounding */
        var = 0.0;
        for (i = 0; i < n; i++) {
            var += (a[i] - mean) * (a[i] - mean);
        }
        return sqrt(var / (double) n);
    }
    for (i = 0; i < n; i++) {
        d[i] = (a[i] - mean) * (a[i] - mean);
    }
    var = (0.0 + glm_bench_sum(d, n)) / (double) n;
    free(d);
    return sqrt(var);
}

/* numpy's _lerp: exact at both ends, monotone in t */
static double
glm_bench_lerp(double a, double b, double t)
{
    double diff = b - a;

    return t >= 0.5 ? b - diff * (1.0 - t) : a + diff * t;
}

double
glm_bench_percentile_sorted(const double *s, size_t n, double p)
{
    double q, vi, lo;
    size_t i, j;

    if (n == 0) {
        return 0.0;
    }
    /* np.percentile divides by 100, then "linear": virtual index (n-1)q */
    q = p / 100.0;
    vi = (double) (n - 1) * q;
    lo = floor(vi);
    i = (size_t) lo;
    if (i >= n - 1) {
        return s[n - 1];
    }
    j = i + 1;
    return glm_bench_lerp(s[i], s[j], vi - lo);
}

double
glm_bench_median_sorted(const double *s, size_t n)
{
    if (n == 0) {
        return 0.0;
    }
    if (n % 2) {
        return s[n / 2];
    }
    /* np.mean of the two middle values */
    return (-0.0 + s[n / 2 - 1] + s[n / 2]) / 2.0;
}

static int
glm_bench_cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *) pa, b = *(const double *) pb;

    return (a > b) - (a < b);
}

void
glm_bench_dist_compute(const double *a, size_t n, const glm_bench_opts *o,
    double scale, glm_bench_dist *d)
{
    double *sorted;
    int k;

    memset(d, 0, sizeof(*d));
    if (n == 0) {
        return;
    }
    d->mean = glm_bench_mean(a, n) * scale;
    d->std = glm_bench_std(a, n) * scale;
    sorted = malloc(n * sizeof(*sorted));
    if (sorted == NULL) {
        fprintf(stderr, "glm-bench: out of memory sorting %zu values\n", n);
        abort();
    }
    memcpy(sorted, a, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), glm_bench_cmp_double);
    d->median = glm_bench_median_sorted(sorted, n) * scale;
    for (k = 0; k < o->n_percentiles; k++) {
        d->pct[k] = glm_bench_percentile_sorted(sorted, n, o->percentiles[k]) * scale;
    }
    free(sorted);
}

void
glm_bench_opts_init(glm_bench_opts *o)
{
    int i;

    memset(o, 0, sizeof(*o));
    o->percentiles[0] = 99.0;
    o->n_percentiles = 1;
    /* vLLM prints ttft,tpot,itl by default; e2el is asked for here */
    o->metrics = (1u << GLM_BENCH_NMETRICS) - 1;
    for (i = 0; i < GLM_BENCH_NMETRICS; i++) {
        o->slo_ms[i] = -1.0;
    }
    o->request_rate = INFINITY;
}

static int
glm_bench_metric_index(const char *name, size_t len)
{
    int i;

    for (i = 0; i < GLM_BENCH_NMETRICS; i++) {
        if (strlen(glm_bench_metric_names[i]) == len
            && strncmp(glm_bench_metric_names[i], name, len) == 0)
        {
            return i;
        }
    }
    return -1;
}

int
glm_bench_parse_metrics(const char *list, unsigned *mask)
{
    const char *p = list, *e;
    unsigned m = 0;
    int i;

    while (*p) {
        e = strchr(p, ',');
        if (e == NULL) {
            e = p + strlen(p);
        }
        i = glm_bench_metric_index(p, (size_t) (e - p));
        if (i < 0) {
            return -1;
        }
        m |= 1u << i;
        p = *e ? e + 1 : e;
    }
    *mask = m;
    return 0;
}

int
glm_bench_parse_percentiles(const char *list, glm_bench_opts *o)
{
    const char *p = list;
    char *end;
    double v;
    int n = 0;

    while (*p) {
        v = strtod(p, &end);
        if (end == p || (*end != ',' && *end != '\0') || !(v >= 0.0 && v <= 100.0)
            || n == GLM_BENCH_MAX_PERCENTILES)
        {
            return -1;
        }
        o->percentiles[n++] = v;
        p = *end ? end + 1 : end;
    }
    if (n == 0) {
        return -1;
    }
    o->n_percentiles = n;
    return 0;
}

int
glm_bench_parse_goodput(const char *kv, glm_bench_opts *o)
{
    const char *colon = strchr(kv, ':');
    char *end;
    double v;
    int i;

    if (colon == NULL) {
        return -1;
    }
    i = glm_bench_metric_index(kv, (size_t) (colon - kv));
    if (i < 0 || i == GLM_BENCH_ITL) {
        return -1;
    }
    v = strtod(colon + 1, &end);
    if (end == colon + 1 || *end != '\0' || !(v >= 0.0)) {
        return -1;
    }
    o->slo_ms[i] = v;
    return 0;
}

/* append v to a growable double array; aborts when out of memory */
static void
glm_bench_push(double **a, size_t *n, size_t *cap, double v)
{
    double *p;

    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        p = realloc(*a, *cap * sizeof(**a));
        if (p == NULL) {
            fprintf(stderr, "glm-bench: out of memory (%zu values)\n", *cap);
            abort();
        }
        *a = p;
    }
    (*a)[(*n)++] = v;
}

typedef struct {
    double t;
    int    delta;
} glm_bench_edge;

static int
glm_bench_cmp_edge(const void *pa, const void *pb)
{
    const glm_bench_edge *a = pa, *b = pb;

    if (a->t != b->t) {
        return a->t < b->t ? -1 : 1;
    }
    return a->delta - b->delta;
}

/* busiest 1 s bin of chunk arrivals, and the peak of overlapping requests */
static int
glm_bench_peaks(const glm_bench_sample *s, size_t n, glm_bench_metrics *m)
{
    double min_start = INFINITY, max_end = -INFINITY, t, *bins, best = 0.0;
    glm_bench_edge *edges;
    size_t i, j, nb, ne = 0, bucket;
    int cur = 0, peak = 0;

    for (i = 0; i < n; i++) {
        if (s[i].success) {
            min_start = fmin(min_start, s[i].start_time);
            max_end = fmax(max_end, s[i].start_time + s[i].latency);
        }
    }
    if (!(max_end >= min_start)) {
        return 0;
    }
    /* int(np.ceil(max_end - min_start)) + 1 */
    nb = (size_t) ceil(max_end - min_start) + 1;
    bins = calloc(nb, sizeof(*bins));
    edges = malloc(2 * n * sizeof(*edges));
    if (bins == NULL || edges == NULL) {
        free(bins);
        free(edges);
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (!s[i].success) {
            continue;
        }
        t = s[i].start_time + s[i].ttft;
        for (j = 0; ; j++) {
            /* int() truncates toward zero; t - min_start >= 0 here */
            if (t - min_start >= 0.0) {
                bucket = (size_t) (t - min_start);
                if (bucket < nb) {
                    bins[bucket] += 1.0;
                }
            }
            if (j == s[i].n_itl) {
                break;
            }
            t += s[i].itl[j];
        }
        edges[ne++] = (glm_bench_edge) { s[i].start_time, 1 };
        edges[ne++] = (glm_bench_edge) { s[i].start_time + s[i].latency, -1 };
    }
    for (i = 0; i < nb; i++) {
        best = fmax(best, bins[i]);
    }
    qsort(edges, ne, sizeof(*edges), glm_bench_cmp_edge);
    for (i = 0; i < ne; i++) {
        cur += edges[i].delta;
        peak = cur > peak ? cur : peak;
    }
    m->max_output_tokens_per_s = best;
    m->max_concurrent_requests = peak;
    free(bins);
    free(edges);
    return 0;
}

int
glm_bench_metrics_compute(const glm_bench_sample *s, size_t n, double duration,
    const glm_bench_opts *o, glm_bench_metrics *m)
{
    double *v[GLM_BENCH_NMETRICS] = { NULL }, tpot, slo;
    size_t nv[GLM_BENCH_NMETRICS] = { 0 }, cap[GLM_BENCH_NMETRICS] = { 0 }, i, j;
    int k, good;

    memset(m, 0, sizeof(*m));
    m->duration = duration;
    for (i = 0; i < n; i++) {
        if (!s[i].success) {
            m->failed++;
            continue;
        }
        m->completed++;
        m->total_input += s[i].prompt_len;
        m->total_output += s[i].output_tokens;
        tpot = 0.0;
        if (s[i].output_tokens > 1) {
            tpot = (s[i].latency - s[i].ttft) / (double) (s[i].output_tokens - 1);
            glm_bench_push(&v[GLM_BENCH_TPOT], &nv[GLM_BENCH_TPOT], &cap[GLM_BENCH_TPOT], tpot);
        }
        for (j = 0; j < s[i].n_itl; j++) {
            glm_bench_push(&v[GLM_BENCH_ITL], &nv[GLM_BENCH_ITL], &cap[GLM_BENCH_ITL], s[i].itl[j]);
        }
        glm_bench_push(&v[GLM_BENCH_TTFT], &nv[GLM_BENCH_TTFT], &cap[GLM_BENCH_TTFT], s[i].ttft);
        glm_bench_push(&v[GLM_BENCH_E2EL], &nv[GLM_BENCH_E2EL], &cap[GLM_BENCH_E2EL], s[i].latency);

        /* goodput: a request with <= 1 token counts as tpot 0, as vLLM */
        good = 1;
        for (k = 0; k < GLM_BENCH_NMETRICS; k++) {
            if (o->slo_ms[k] < 0.0) {
                continue;
            }
            slo = o->slo_ms[k] / 1000.0;
            if ((k == GLM_BENCH_TTFT && !(slo >= s[i].ttft))
                || (k == GLM_BENCH_TPOT && !(slo >= tpot))
                || (k == GLM_BENCH_E2EL && !(slo >= s[i].latency)))
            {
                good = 0;
            }
        }
        m->good_completed += good;
    }
    if (duration > 0.0) {
        m->request_throughput = m->completed / duration;
        m->request_goodput = m->good_completed / duration;
        m->output_throughput = (double) m->total_output / duration;
        m->total_token_throughput = (double) (m->total_input + m->total_output) / duration;
    }
    for (k = 0; k < GLM_BENCH_NMETRICS; k++) {
        glm_bench_dist_compute(v[k], nv[k], o, 1000.0, &m->m[k]);
        free(v[k]);
    }
    return glm_bench_peaks(s, n, m);
}

/* Python's "{s:{c}^{n}}": the extra fill character goes to the right */
static void
glm_bench_center(FILE *f, const char *s, char fill, int width)
{
    int len = (int) strlen(s), left, right, i;

    left = len < width ? (width - len) / 2 : 0;
    right = len < width ? width - len - left : 0;
    for (i = 0; i < left; i++) {
        fputc(fill, f);
    }
    fputs(s, f);
    for (i = 0; i < right; i++) {
        fputc(fill, f);
    }
    fputc('\n', f);
}

/* vLLM's p_word: "99" for 99.0, else Python's str(p) ("99.9") */
static void
glm_bench_pct_word(char *buf, size_t size, double p)
{
    int prec;

    if (p == floor(p)) {
        snprintf(buf, size, "%d", (int) p);
        return;
    }
    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, p);
        if (strtod(buf, NULL) == p) {
            break;
        }
    }
}

static void
glm_bench_row_int(FILE *f, const char *label, long long v)
{
    fprintf(f, "%-40s %-10lld\n", label, v);
}

static void
glm_bench_row(FILE *f, const char *label, double v)
{
    fprintf(f, "%-40s %-10.2f\n", label, v);
}

void
glm_bench_report_print(FILE *f, const glm_bench_opts *o, const glm_bench_metrics *m)
{
    char label[96], word[32];
    int k, i, goodput = 0;

    for (k = 0; k < GLM_BENCH_NMETRICS; k++) {
        goodput |= o->slo_ms[k] >= 0.0;
    }
    glm_bench_center(f, " Serving Benchmark Result ", '=', 50);
    glm_bench_row_int(f, "Successful requests:", m->completed);
    glm_bench_row_int(f, "Failed requests:", m->failed);
    if (o->max_concurrency > 0) {
        glm_bench_row_int(f, "Maximum request concurrency:", o->max_concurrency);
    }
    if (isfinite(o->request_rate)) {
        glm_bench_row(f, "Request rate configured (RPS):", o->request_rate);
    }
    glm_bench_row(f, "Benchmark duration (s):", m->duration);
    glm_bench_row_int(f, "Total input tokens:", m->total_input);
    glm_bench_row_int(f, "Total generated tokens:", m->total_output);
    glm_bench_row(f, "Request throughput (req/s):", m->request_throughput);
    if (goodput) {
        glm_bench_row(f, "Request goodput (req/s):", m->request_goodput);
    }
    glm_bench_row(f, "Output token throughput (tok/s):", m->output_throughput);
    glm_bench_row(f, "Peak output token throughput (tok/s):", m->max_output_tokens_per_s);
    glm_bench_row(f, "Peak concurrent requests:", (double) m->max_concurrent_requests);
    glm_bench_row(f, "Total token throughput (tok/s):", m->total_token_throughput);
    for (k = 0; k < GLM_BENCH_NMETRICS; k++) {
        if (!(o->metrics & (1u << k))) {
            continue;
        }
        glm_bench_center(f, glm_bench_metric_headers[k], '-', 50);
        snprintf(label, sizeof(label), "Mean %s (ms):", glm_bench_metric_labels[k]);
        glm_bench_row(f, label, m->m[k].mean);
        snprintf(label, sizeof(label), "Median %s (ms):", glm_bench_metric_labels[k]);
        glm_bench_row(f, label, m->m[k].median);
        for (i = 0; i < o->n_percentiles; i++) {
            glm_bench_pct_word(word, sizeof(word), o->percentiles[i]);
            snprintf(label, sizeof(label), "P%s %s (ms):", word, glm_bench_metric_labels[k]);
            glm_bench_row(f, label, m->m[k].pct[i]);
        }
    }
    glm_bench_center(f, "", '=', 50);
}

void
glm_bench_result_line(FILE *f, const glm_bench_opts *o, const glm_bench_metrics *m,
    long input_len, long output_len, long num_prompts)
{
    char word[32];
    int k, i;

    fprintf(f, "RESULT completed=%d failed=%d num_prompts=%ld input_len=%ld output_len=%ld",
            m->completed, m->failed, num_prompts, input_len, output_len);
    if (o->max_concurrency > 0) {
        fprintf(f, " max_concurrency=%d", o->max_concurrency);
    } else {
        fprintf(f, " max_concurrency=inf");
    }
    if (isfinite(o->request_rate)) {
        fprintf(f, " request_rate=%.4f", o->request_rate);
    } else {
        fprintf(f, " request_rate=inf");
    }
    fprintf(f, " duration_s=%.4f total_input_tokens=%lld total_output_tokens=%lld"
            " request_throughput=%.4f output_throughput=%.4f total_token_throughput=%.4f"
            " output_tok_s=%.4f max_output_tokens_per_s=%.2f max_concurrent_requests=%d",
            m->duration, m->total_input, m->total_output, m->request_throughput,
            m->output_throughput, m->total_token_throughput, m->output_throughput,
            m->max_output_tokens_per_s, m->max_concurrent_requests);
    for (k = 0; k < GLM_BENCH_NMETRICS; k++) {
        fprintf(f, " mean_%s_ms=%.4f median_%s_ms=%.4f", glm_bench_metric_names[k],
                m->m[k].mean, glm_bench_metric_names[k], m->m[k].median);
        for (i = 0; i < o->n_percentiles; i++) {
            glm_bench_pct_word(word, sizeof(word), o->percentiles[i]);
            fprintf(f, " p%s_%s_ms=%.4f", word, glm_bench_metric_names[k], m->m[k].pct[i]);
        }
    }
    fputc('\n', f);
}

static void
glm_bench_json_key(glm_str *out, const char *key)
{
    glm_str_adds(out, out->len > 1 ? ", " : "");
    glm_json_strz(out, key);
    glm_str_adds(out, ": ");
}

/* as Python's json prints floats: 1520.0 rather than 1.52e+03 */
static void
glm_bench_json_double(glm_str *out, double v)
{
    if (isfinite(v) && v == floor(v) && fabs(v) < 1e15) {
        glm_str_addf(out, "%.1f", v);
    } else {
        glm_json_double(out, v);
    }
}

static void
glm_bench_json_num(glm_str *out, const char *key, double v)
{
    glm_bench_json_key(out, key);
    glm_bench_json_double(out, v);
}

static void
glm_bench_json_int(glm_str *out, const char *key, long long v)
{
    glm_bench_json_key(out, key);
    glm_str_addf(out, "%lld", v);
}

static void
glm_bench_json_strz(glm_str *out, const char *key, const char *v)
{
    glm_bench_json_key(out, key);
    if (v == NULL) {
        glm_str_adds(out, "null");
    } else {
        glm_json_strz(out, v);
    }
}

void
glm_bench_result_json(glm_str *out, const glm_bench_run_info *info,
    const glm_bench_opts *o, const glm_bench_metrics *m,
    const glm_bench_sample *s, size_t n)
{
    char key[64], word[32];
    int k, i, goodput = 0;
    size_t r, j;

    for (k = 0; k < GLM_BENCH_NMETRICS; k++) {
        goodput |= o->slo_ms[k] >= 0.0;
    }
    glm_str_adds(out, "{");
    glm_bench_json_strz(out, "date", info->date);
    glm_bench_json_strz(out, "endpoint_type", info->backend);
    glm_bench_json_strz(out, "backend", info->backend);
    glm_bench_json_strz(out, "label", info->label);
    glm_bench_json_strz(out, "model_id", info->model_id);
    glm_bench_json_strz(out, "tokenizer_id", info->tokenizer_id);
    glm_bench_json_int(out, "num_prompts", info->num_prompts);
    glm_bench_json_key(out, "request_rate");
    if (isfinite(o->request_rate)) {
        glm_bench_json_double(out, o->request_rate);
    } else {
        glm_str_adds(out, "\"inf\"");
    }
    glm_bench_json_num(out, "burstiness", 1.0);
    glm_bench_json_key(out, "max_concurrency");
    if (o->max_concurrency > 0) {
        glm_str_addf(out, "%d", o->max_concurrency);
    } else {
        glm_str_adds(out, "null");
    }
    glm_bench_json_num(out, "duration", m->duration);
    glm_bench_json_int(out, "completed", m->completed);
    glm_bench_json_int(out, "failed", m->failed);
    glm_bench_json_int(out, "total_input_tokens", m->total_input);
    glm_bench_json_int(out, "total_output_tokens", m->total_output);
    glm_bench_json_num(out, "request_throughput", m->request_throughput);
    glm_bench_json_key(out, "request_goodput");
    if (goodput) {
        glm_bench_json_double(out, m->request_goodput);
    } else {
        glm_str_adds(out, "null");
    }
    glm_bench_json_num(out, "output_throughput", m->output_throughput);
    glm_bench_json_num(out, "total_token_throughput", m->total_token_throughput);
    glm_bench_json_num(out, "max_output_tokens_per_s", m->max_output_tokens_per_s);
    glm_bench_json_int(out, "max_concurrent_requests", m->max_concurrent_requests);
    for (k = 0; k < GLM_BENCH_NMETRICS; k++) {
        if (!(o->metrics & (1u << k))) {
            continue;
        }
        snprintf(key, sizeof(key), "mean_%s_ms", glm_bench_metric_names[k]);
        glm_bench_json_num(out, key, m->m[k].mean);
        snprintf(key, sizeof(key), "median_%s_ms", glm_bench_metric_names[k]);
        glm_bench_json_num(out, key, m->m[k].median);
        snprintf(key, sizeof(key), "std_%s_ms", glm_bench_metric_names[k]);
        glm_bench_json_num(out, key, m->m[k].std);
        for (i = 0; i < o->n_percentiles; i++) {
            glm_bench_pct_word(word, sizeof(word), o->percentiles[i]);
            snprintf(key, sizeof(key), "p%s_%s_ms", word, glm_bench_metric_names[k]);
            glm_bench_json_num(out, key, m->m[k].pct[i]);
        }
    }

    /* the run's own parameters (vLLM puts its argparse names here too) */
    glm_bench_json_strz(out, "base_url", info->base_url);
    glm_bench_json_strz(out, "endpoint", info->endpoint);
    glm_bench_json_strz(out, "dataset_name", "random");
    glm_bench_json_int(out, "random_input_len", info->input_len);
    glm_bench_json_int(out, "random_output_len", info->output_len);
    glm_bench_json_num(out, "random_range_ratio", info->range_ratio);
    glm_bench_json_int(out, "seed", info->seed);
    glm_bench_json_num(out, "timeout", info->timeout_s);
    glm_bench_json_strz(out, "ttft_mode", info->ttft_mode);
    glm_bench_json_key(out, "server_prompt_tokens");
    if (info->server_prompt_tokens >= 0) {
        glm_str_addf(out, "%lld", info->server_prompt_tokens);
    } else {
        glm_str_adds(out, "null");
    }

    if (info->detailed) {
        glm_bench_json_key(out, "input_lens");
        glm_str_adds(out, "[");
        for (r = 0; r < n; r++) {
            glm_str_addf(out, "%s%d", r ? ", " : "", s[r].prompt_len);
        }
        glm_str_adds(out, "], \"output_lens\": [");
        for (r = 0; r < n; r++) {
            glm_str_addf(out, "%s%d", r ? ", " : "", s[r].success ? s[r].output_tokens : 0);
        }
        glm_str_adds(out, "], \"ttfts\": [");
        for (r = 0; r < n; r++) {
            glm_str_adds(out, r ? ", " : "");
            glm_bench_json_double(out, s[r].ttft);
        }
        glm_str_adds(out, "], \"itls\": [");
        for (r = 0; r < n; r++) {
            glm_str_adds(out, r ? ", [" : "[");
            for (j = 0; j < s[r].n_itl; j++) {
                glm_str_adds(out, j ? ", " : "");
                glm_bench_json_double(out, s[r].itl[j]);
            }
            glm_str_adds(out, "]");
        }
        glm_str_adds(out, "], \"latencies\": [");
        for (r = 0; r < n; r++) {
            glm_str_adds(out, r ? ", " : "");
            glm_bench_json_double(out, s[r].latency);
        }
        glm_str_adds(out, "], \"start_times\": [");
        for (r = 0; r < n; r++) {
            glm_str_adds(out, r ? ", " : "");
            glm_bench_json_double(out, s[r].start_time);
        }
        glm_str_adds(out, "], \"errors\": [");
        for (r = 0; r < n; r++) {
            glm_str_adds(out, r ? ", " : "");
            glm_json_strz(out, s[r].error ? s[r].error : "");
        }
        glm_str_adds(out, "]");
    }
    glm_str_adds(out, "}\n");
}
