/*
 * bench_stats.h: the numbers of `vllm bench serve`, computed the way vLLM
 * computes them (vllm/benchmarks/serve.py calculate_metrics, numpy
 * statistics), so that a glm-bench result and a vLLM result can sit in one
 * table.  Nothing here does I/O except the report and JSON writers.
 *
 * Per request (times in seconds, CLOCK_MONOTONIC):
 *   start_time  just before the request is sent (before connect() on a new
 *               connection);
 *   ttft        first SSE message whose JSON has a non-empty `choices`
 *               (vLLM's role chunk), minus start_time;
 *   itl[]       for every later message with non-empty `choices`: its
 *               arrival minus the previous such message's: per chunk, not
 *               per token;
 *   latency     (E2EL) the last message before `data: [DONE]` (the usage
 *               chunk included) minus start_time;
 *   output_tokens  usage.completion_tokens (the caller resolves the
 *               fallback before handing the sample over).
 *
 * Aggregates, over successful requests only, in request order:
 *   TPOT = (latency - ttft) / (output_tokens - 1) for output_tokens > 1;
 *   ITL statistics over the concatenation of all requests' itl[];
 *   mean = numpy's pairwise sum / n; std = population std (ddof 0);
 *   median and percentiles = numpy's default "linear" method, with numpy's
 *   lerp (a + (b-a)t below t = 0.5, b - (b-a)(1-t) from there on); so for
 *   the same inputs these are the same doubles numpy prints.  An empty list
 *   gives 0, as vLLM's `np.mean(x or 0)` does.  ms = seconds statistic * 1000.
 *   duration = first dispatch to the end of the last request (failures too);
 *   request_throughput = completed / duration;
 *   output_throughput = sum(output_tokens) / duration;
 *   total_token_throughput = (sum(prompt_len of successes) + sum(output_tokens))
 *                            / duration, prompt_len from the dataset;
 *   max_output_tokens_per_s = busiest 1 s bin of the reconstructed chunk
 *     times start + ttft + cumsum(itl), bins from the earliest start;
 *   max_concurrent_requests = exact peak of overlapping [start, start +
 *     latency) intervals (an end sorts before a start at the same instant).
 */
#ifndef GLM_BENCH_STATS_H
#define GLM_BENCH_STATS_H

#include <stddef.h>
#include <stdio.h>

#include "util/strbuf.h"

#define GLM_BENCH_MAX_PERCENTILES 8

/* the four latency metrics, in vLLM's print order; bit i of a metric mask */
enum { GLM_BENCH_TTFT, GLM_BENCH_TPOT, GLM_BENCH_ITL, GLM_BENCH_E2EL, GLM_BENCH_NMETRICS };

/* One request as measured.  error is NULL on success. */
typedef struct {
    int            success;
    int            prompt_len;
    int            output_tokens;
    double         start_time;
    double         ttft;
    double         latency;
    const double  *itl;
    size_t         n_itl;
    const char    *error;
} glm_bench_sample;

typedef struct {
    double mean, median, std;
    double pct[GLM_BENCH_MAX_PERCENTILES];   /* one per glm_bench_opts.percentiles */
} glm_bench_dist;

/* What to compute and print; the defaults are glm_bench_opts_init()'s. */
typedef struct {
    double  percentiles[GLM_BENCH_MAX_PERCENTILES];   /* e.g. 99 */
    int     n_percentiles;
    unsigned metrics;            /* bit GLM_BENCH_TTFT.. set: print that section */
    double  slo_ms[GLM_BENCH_NMETRICS];   /* goodput SLOs; < 0 unset (ITL unused) */
    int     max_concurrency;     /* 0: unlimited (not printed) */
    double  request_rate;        /* INFINITY: all at once (not printed) */
} glm_bench_opts;

typedef struct {
    int         completed, failed;
    long long   total_input, total_output;
    double      duration;
    double      request_throughput, request_goodput;
    double      output_throughput, total_token_throughput;
    double      max_output_tokens_per_s;
    int         max_concurrent_requests;
    int         good_completed;
    glm_bench_dist m[GLM_BENCH_NMETRICS];   /* milliseconds */
} glm_bench_metrics;

/* numpy.sum of a contiguous float64 array: pairwise, blocks of 128 with 8
 * accumulators, exactly as numpy's DOUBLE_pairwise_sum. */
double glm_bench_sum(const double *a, size_t n);
/* numpy.mean / numpy.std (ddof 0); 0 for n == 0 */
double glm_bench_mean(const double *a, size_t n);
double glm_bench_std(const double *a, size_t n);
/* numpy.percentile(a, p) (method "linear") over an ascending array; p in
 * [0, 100]; 0 for n == 0.  numpy.median is p = 50 except that numpy averages
 * the two middle values for even n: use glm_bench_median_sorted. */
double glm_bench_percentile_sorted(const double *sorted, size_t n, double p);
double glm_bench_median_sorted(const double *sorted, size_t n);
/* mean, median, std, percentiles of a (any order; not modified), each
 * statistic taken in a's unit and then multiplied by scale (1000 for ms) */
void glm_bench_dist_compute(const double *a, size_t n, const glm_bench_opts *o,
                            double scale, glm_bench_dist *d);

void glm_bench_opts_init(glm_bench_opts *o);
/* "ttft,tpot,itl,e2el" -> mask; -1 on an unknown name */
int glm_bench_parse_metrics(const char *list, unsigned *mask);
/* "50,90,99" -> percentiles; -1 if malformed, out of [0,100] or too many */
int glm_bench_parse_percentiles(const char *list, glm_bench_opts *o);
/* "ttft:500" (ms) -> o->slo_ms; -1 if malformed */
int glm_bench_parse_goodput(const char *kv, glm_bench_opts *o);

/* vLLM's calculate_metrics over n samples (request order).  -1 only when out
 * of memory. */
int glm_bench_metrics_compute(const glm_bench_sample *s, size_t n, double duration,
                              const glm_bench_opts *o, glm_bench_metrics *m);

/* The "Serving Benchmark Result" block, byte for byte as vLLM prints it
 * ("{:<40} {:<10}" columns, two decimals, trailing padding included). */
void glm_bench_report_print(FILE *f, const glm_bench_opts *o, const glm_bench_metrics *m);

/* One greppable line: "RESULT completed=.. failed=.. ... output_tok_s=..". */
void glm_bench_result_line(FILE *f, const glm_bench_opts *o, const glm_bench_metrics *m,
                           long input_len, long output_len, long num_prompts);

/* Run description that goes into the JSON result next to the metrics. */
typedef struct {
    const char *date;            /* "%Y%m%d-%H%M%S", as vLLM */
    const char *backend;         /* "openai-chat" */
    const char *label;           /* NULL: null */
    const char *model_id;
    const char *tokenizer_id;
    const char *base_url, *endpoint;
    long        num_prompts;
    long        input_len, output_len;
    double      range_ratio;
    long        seed;
    double      timeout_s;
    const char *ttft_mode;       /* "first-choices" (vLLM) | "first-content" */
    long long   server_prompt_tokens;   /* sum of usage.prompt_tokens; -1 none */
    int         detailed;        /* add the per-request arrays */
} glm_bench_run_info;

/* The --result-file JSON: vLLM's --save-result field names where they exist
 * (date, backend, model_id, num_prompts, request_rate, max_concurrency,
 * duration, completed, ..., mean_ttft_ms, p99_itl_ms, ...), plus the run's
 * own parameters.  With info->detailed also input_lens, output_lens, ttfts,
 * itls, latencies, start_times, errors. */
void glm_bench_result_json(glm_str *out, const glm_bench_run_info *info,
                           const glm_bench_opts *o, const glm_bench_metrics *m,
                           const glm_bench_sample *s, size_t n);

#endif
