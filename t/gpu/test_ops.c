/*
 * test_ops.c: the CUDA backend against the CPU backend, its oracle.
 *
 *   test_ops ops [--quick]             every op of backend.h (and the fused
 *                                      add+rmsnorm of backend_cuda.h) on random
 *                                      inputs: GLM-4.5-Air shapes (hidden 4096,
 *                                      96/8 heads of 128, rotary 64, 128 experts
 *                                      top-8 of 1408, vocab 151552) and odd ones
 *                                      (dims off multiples of 32, 1 and 7 tokens,
 *                                      sequences of different lengths, split and
 *                                      unsplit decode, chunked prefill)
 *   test_ops fixtures [--quick] DIR... whole tiny checkpoints on both backends:
 *                                      every position's logits (one step and
 *                                      3-token chunks) and 32 teacher-forced
 *                                      greedy steps per prompt (--quick: the
 *                                      shortest multi-token prompt, 4 steps)
 *   test_ops graphs DIR...             decode steps replayed from CUDA graphs
 *                                      against the same steps run eagerly
 *                                      (padded: bit for bit; unpadded: within
 *                                      the whole-model tolerance)
 *   test_ops vision DIR                GLM-4.5V's tower on random pixels
 *   test_ops tail [--quick]            only the step's tail: gather_rows and
 *                                      sample (every warper combination)
 *   test_ops moe [--quick]             the MoE checks of `ops` alone
 *
 * One line per check:
 *   OP <name> shape=<...> max_abs=<x> max_rel=<y> tol=<t> ok|FAIL
 *   FIXTURE <name> prompt=<i> tokens=<n> act=<bf16|fp8> rows=<r> median_row_rel=<m>
 *           tol=<t> worst_row_rel=<w> tol=<t> greedy=<k>/<s> clear_steps=<a>/<b> ok|FAIL
 *   WEIGHTS <name> device_bytes=<d> checkpoint_bytes=<c> ratio=<d/c> ok|FAIL
 *   GRAPH <name> replay_vs_padded_eager identical=<yes|no> ... replays=<r> ok|FAIL
 * max_rel is max |gpu - cpu| / (|cpu| + mean |cpu|): relative where values
 * are large, against the tensor's scale where they are near zero.  Inputs
 * are BF16-representable, so both backends start from the same values; the
 * CUDA backend then rounds each op's output to BF16 (at most 2^-8 relative)
 * where the oracle keeps fp32.  The tolerances: 0 for copies (a BF16
 * embedding row, kv_store into the fp32 pool, group_transpose); 8e-3 (one
 * BF16 rounding, x2) for each op with a BF16 output; 1.6e-2 for two
 * roundings in a row; 3e-2 for MoE (an expert is four roundings deep, see
 * TOL_MOE); 1e-4 for the GEMMs' fp32 outputs (matmul_f32: only the order of
 * fp32 sums differs).  GEMMs that take FP8 x FP8 through cuBLASLt (FP8
 * weights; the activations quantized on the fly) print two lines each:
 * against their CPU twin (x quantized exactly as kernels/quant_act does,
 * fp32 products: 8e-3 BF16 out, 1e-4 fp32 out) and against the oracle at
 * TOL_FP8_ACT (the FP8 rounding of the activations, 0.25).
 * Whole models are judged row by row (see fixture_tols: the median row
 * tight, the worst loosely, clear-margin decode steps exactly), with
 * their own bounds where the GEMMs take FP8 activations; the vision tower
 * against the output's scale: max |diff| / max |cpu| <= 3e-2.  MoE
 * rows whose routing rests on a gap under 1e-4 between two experts' scores
 * are left out and counted (near_ties=): either choice is right there.
 * `--quick` keeps the small shapes (for compute-sanitizer).  Without a GPU
 * it prints "SKIPPED: no GPU (...)" and exits 0.  Exit status 1 on any FAIL.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "backend/backend.h"
#include "backend/backend_cuda.h"
#include "model/model.h"
#include "model/quant.h"
#include "model/sampling.h"
#include "model/session.h"
#include "model/vision.h"
#ifdef GLM_EMU
#include "glm_emu_profile.h"
#endif

#define TOL_EXACT  0.0
#define TOL_SUM    1e-4     /* fp32 out (matmul_f32): sums in another order */
#define TOL_BF16   8e-3     /* a BF16 out: one rounding (8 significant bits: at
                               most 2^-8 relative), with a factor of 2 */
#define TOL_BF16x2 1.6e-2   /* two BF16 roundings in a row (in-place chains) */
#define TOL_VISION 3e-2     /* the vision tower, BF16 activations: max |diff|
                               over max |cpu| */
#define TOL_MOE    3e-2     /* an expert is four roundings deep (gate/up, swiglu,
                               down, the weighted sum); the down GEMM sums the
                               rounding errors of its inputs, ~2^-8 of a
                               typical output per sigma, max over 1e5 outputs
                               ~4.5 sigma: 1.8e-2, and a margin */
#define TOL_FP8_ACT 0.25    /* FP8 x FP8 GEMM against the oracle's BF16-activation
                               product: each activation rounded to E4M3 (3
                               mantissa bits: up to 2^-4 = 6.3% relative, ~3.6%
                               rms), so an output moves by ~3.6% of the typical
                               output per sigma; the max over ~1e4-1e5 outputs
                               is ~4.5 sigma of the typical magnitude, ~0.16
                               of max_rel's denominator, and a margin.  The
                               tight check is the twin's (TOL_BF16 / TOL_SUM). */
#define MOE_TIE    1e-4f
#define GREEDY_N   32

static glm_backend *cpu, *gpu;
static int quick, failures, checks;

static void
die(const char *what)
{
    fprintf(stderr, "test_ops: %s\n", what);
    exit(2);
}

static void *
xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (p == NULL) {
        die("out of host memory");
    }
    return p;
}

/* ---- random inputs --------------------------------------------------------- */

static uint64_t rng_state = 0x243F6A8885A308D3ull;

static uint64_t
rnd64(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [-1, 1) */
static float
rndu(void)
{
    return (float) ((double) (rnd64() >> 40) / 8388608.0 - 1.0);
}

/* random activations, rounded to BF16 so that the CPU oracle (fp32) and
 * the CUDA backend (BF16 activations) start from the same values */
static float *
rnd_floats(size_t n, float scale)
{
    float *p = xmalloc(n * sizeof(float));
    size_t i;

    for (i = 0; i < n; i++) {
        p[i] = glm_bf16_to_f32(glm_f32_to_bf16(rndu() * scale));
    }
    return p;
}

/* ---- host tensors standing in for checkpoint weights ------------------------ */

static glm_tensor *
tensor_new(const char *name, glm_dtype dt, int ndim, int64_t d0, int64_t d1, float scale)
{
    glm_tensor *t = calloc(1, sizeof(*t));
    int64_t i;

    if (t == NULL) {
        die("out of host memory");
    }
    t->name = name;
    t->file = "test_ops";
    t->dtype = dt;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim == 2 ? d1 : 0;
    t->numel = d0 * (ndim == 2 ? d1 : 1);
    t->nbytes = (size_t) t->numel * glm_dtype_size(dt);
    t->data = xmalloc(t->nbytes);
    for (i = 0; i < t->numel; i++) {
        float v = rndu() * scale;
        if (dt == GLM_DTYPE_BF16) {
            ((uint16_t *) t->data)[i] = glm_f32_to_bf16(v);
        } else {
            ((float *) t->data)[i] = v;
        }
    }
    t->used = 1;
    return t;
}

/* An FP8 E4M3 [N, K] weight with its scale tensor (dtype sdt: F32 or BF16)
 * covering it per tensor, per channel or per [b0, b1] block, as
 * glm_quant_bind_linear attaches it.  Bytes with exponents 1..8 (values
 * 2^-6 .. 3.75, both signs, never NaN) and scales around sqrt(3 / K) / 2:
 * outputs of order 1.  exact: the expert path's fp32 product. */
static glm_tensor *
tensor_fp8_new(const char *name, int64_t N, int64_t K, glm_scale_strategy st, int64_t b0,
    int64_t b1, glm_dtype sdt, int exact)
{
    glm_tensor *t = calloc(1, sizeof(*t));
    int64_t i, s0 = 1, s1 = 1;
    uint8_t *q;

    if (t == NULL) {
        die("out of host memory");
    }
    if (st == GLM_SCALE_CHANNEL) {
        s0 = N;
    } else if (st == GLM_SCALE_BLOCK) {
        s0 = (N + b0 - 1) / b0;
        s1 = (K + b1 - 1) / b1;
    }
    t->scale = tensor_new("w_scale", sdt, st == GLM_SCALE_TENSOR ? 1 : 2, s0, s1, 1.0f);
    for (i = 0; i < s0 * s1; i++) {
        float v = sqrtf(3.0f / (float) K) * (0.25f + 0.5f * fabsf(rndu()));
        if (sdt == GLM_DTYPE_BF16) {
            ((uint16_t *) t->scale->data)[i] = glm_f32_to_bf16(v);
        } else {
            ((float *) t->scale->data)[i] = v;
        }
    }
    t->name = name;
    t->file = "test_ops";
    t->dtype = GLM_DTYPE_F8_E4M3;
    t->ndim = 2;
    t->shape[0] = N;
    t->shape[1] = K;
    t->numel = N * K;
    t->nbytes = (size_t) t->numel;
    q = xmalloc(t->nbytes);
    for (i = 0; i < t->numel; i++) {
        uint64_t r = rnd64();
        q[i] = (uint8_t) ((r & 0x80) | ((1 + (r >> 8) % 8) << 3) | ((r >> 16) & 7));
    }
    t->data = q;
    t->scale_strategy = st;
    t->block[0] = b0;
    t->block[1] = b1;
    t->scale_exact = exact;
    t->used = 1;
    return t;
}

static void
tensor_fp8_free(glm_tensor *t)
{
    if (t != NULL) {
        glm_tensor *sc = (glm_tensor *) t->scale;
        free((void *) sc->data);
        free(sc);
        free((void *) t->data);
        free(t);
    }
}

/* a [d0, d1] view at element `first` of t's data (shares the buffer) */
static glm_tensor *
tensor_view(const glm_tensor *t, int64_t first, int64_t d0, int64_t d1)
{
    glm_tensor *v = calloc(1, sizeof(*v));

    if (v == NULL) {
        die("out of host memory");
    }
    *v = *t;
    v->ndim = 2;
    v->shape[0] = d0;
    v->shape[1] = d1;
    v->numel = d0 * d1;
    v->nbytes = (size_t) v->numel * glm_dtype_size(t->dtype);
    v->data = (const char *) t->data + first * (int64_t) glm_dtype_size(t->dtype);
    return v;
}

static void
tensor_free(glm_tensor *t)
{
    if (t != NULL) {
        free((void *) t->data);
        free(t);
    }
}

/* ---- device helpers ------------------------------------------------------------ */

/* n activations in backend memory (be->act_dtype), from host fp32 h */
static void *
dev_put(glm_backend *be, const float *h, size_t n)
{
    void *d = be->alloc(be, n * be->act_size);

    if (d == NULL) {
        die("GPU alloc failed");
    }
    if (h != NULL) {
        be->upload_act(be, d, h, n);
    }
    return d;
}

/* n activations back as host fp32 */
static float *
dev_get(glm_backend *be, const void *d, size_t n)
{
    float *h = xmalloc(n * sizeof(float));

    be->download_act(be, h, d, n);
    return h;
}

/* n fp32 values in backend memory (the KV pool, fp32 logits) */
static float *
dev_put_f32(glm_backend *be, size_t n)
{
    float *d = be->alloc(be, n * sizeof(float));

    if (d == NULL) {
        die("GPU alloc failed");
    }
    return d;
}

static float *
dev_get_f32(glm_backend *be, const float *d, size_t n)
{
    float *h = xmalloc(n * sizeof(float));

    be->download(be, h, d, n * sizeof(float));
    return h;
}

/* ---- comparison ------------------------------------------------------------------- */

static int
compare(const char *op, const char *shape, const float *ref, const float *got, size_t n,
    double tol)
{
    double mean = 0.0, max_abs = 0.0, max_rel = 0.0;
    size_t i, bad = 0;
    int ok;

    for (i = 0; i < n; i++) {
        mean += fabs((double) ref[i]);
    }
    mean = n ? mean / (double) n : 0.0;
    for (i = 0; i < n; i++) {
        double d = fabs((double) got[i] - (double) ref[i]), r;
        if (!(d <= INFINITY) || !!isinf(got[i]) != !!isinf(ref[i])) {
            d = INFINITY;       /* NaN, or a lost/invented infinity */
        }
        if (isinf(ref[i]) && ref[i] == got[i]) {
            d = 0.0;
        }
        r = d == 0.0 ? 0.0 : d / (fabs((double) ref[i]) + mean + 1e-30);
        if (d > max_abs) {
            max_abs = d;
        }
        if (r > max_rel) {
            max_rel = r;
            bad = i;
        }
    }
    ok = max_rel <= tol;
    printf("OP %s shape=%s max_abs=%.3g max_rel=%.3g tol=%g %s", op, shape, max_abs, max_rel,
           tol, ok ? "ok" : "FAIL");
    if (!ok) {
        printf(" (worst at %zu: cpu %.9g gpu %.9g)", bad, ref[bad], got[bad]);
    }
    printf("\n");
    fflush(stdout);
    checks++;
    failures += !ok;
    return ok;
}

/* ---- embed -------------------------------------------------------------------------- */

static void
test_embed(const glm_tensor *table)
{
    int counts[] = { 1, 7, 64 }, c, i;
    int64_t V = table->shape[0], D = table->shape[1];
    char shape[128];

    for (c = 0; c < 3; c++) {
        int n = counts[c];
        int32_t *ids = xmalloc((size_t) n * sizeof(int32_t));
        float *out_c = xmalloc((size_t) n * D * sizeof(float)), *out_g, *d;

        for (i = 0; i < n; i++) {
            ids[i] = (int32_t) (rnd64() % (uint64_t) V);
        }
        ids[0] = (int32_t) (V - 1);
        if (n > 1) {
            ids[n - 1] = 0;
        }
        cpu->embed(cpu, out_c, ids, n, table);
        d = dev_put(gpu, NULL, (size_t) n * D);
        gpu->embed(gpu, d, ids, n, table);
        out_g = dev_get(gpu, d, (size_t) n * D);
        snprintf(shape, sizeof(shape), "n=%d,vocab=%lld,dim=%lld,%s", n, (long long) V,
                 (long long) D, glm_dtype_name(table->dtype));
        /* a BF16 table row is a BF16 activation exactly; fp32 rounds once */
        compare("embed", shape, out_c, out_g, (size_t) n * D,
                table->dtype == GLM_DTYPE_BF16 ? TOL_EXACT : TOL_BF16);
        gpu->free(gpu, d);
        free(ids);
        free(out_c);
        free(out_g);
    }
}

/* ---- rmsnorm, add+rmsnorm ------------------------------------------------------------- */

static void
test_rmsnorm(int rows, int dim, int in_place)
{
    glm_tensor *w = tensor_new("norm.weight", GLM_DTYPE_BF16, 1, dim, 0, 1.5f);
    size_t n = (size_t) rows * dim;
    float *x = rnd_floats(n, 3.0f), *out_c = xmalloc(n * sizeof(float)), *out_g;
    float *dx = dev_put(gpu, x, n), *dout = in_place ? dx : dev_put(gpu, NULL, n);
    char shape[128];

    if (in_place) {
        memcpy(out_c, x, n * sizeof(float));
        cpu->rmsnorm(cpu, out_c, out_c, w, rows, dim, 1e-5f);
    } else {
        cpu->rmsnorm(cpu, out_c, x, w, rows, dim, 1e-5f);
    }
    gpu->rmsnorm(gpu, dout, dx, w, rows, dim, 1e-5f);
    out_g = dev_get(gpu, dout, n);
    snprintf(shape, sizeof(shape), "rows=%d,dim=%d%s", rows, dim, in_place ? ",in_place" : "");
    compare("rmsnorm", shape, out_c, out_g, n, TOL_BF16);
    if (!in_place) {
        gpu->free(gpu, dout);
    }
    gpu->free(gpu, dx);
    free(x);
    free(out_c);
    free(out_g);
    tensor_free(w);
}

static void
test_add_rmsnorm(int rows, int dim)
{
    glm_tensor *w = tensor_new("norm.weight", GLM_DTYPE_BF16, 1, dim, 0, 1.5f);
    size_t n = (size_t) rows * dim;
    float *x = rnd_floats(n, 3.0f), *y = rnd_floats(n, 1.0f);
    float *out_c = xmalloc(n * sizeof(float)), *out_g, *x_g;
    float *dx = dev_put(gpu, x, n), *dy = dev_put(gpu, y, n), *dout = dev_put(gpu, NULL, n);
    char shape[128];

    /* the op table's entries: the CPU twin is add then rmsnorm */
    cpu->add_rmsnorm(cpu, out_c, x, y, w, rows, dim, 1e-5f);
    gpu->add_rmsnorm(gpu, dout, dx, dy, w, rows, dim, 1e-5f);
    out_g = dev_get(gpu, dout, n);
    x_g = dev_get(gpu, dx, n);
    snprintf(shape, sizeof(shape), "rows=%d,dim=%d,residual", rows, dim);
    compare("add_rmsnorm.sum", shape, x, x_g, n, TOL_BF16);
    /* normed from the rounded sum, then rounded itself */
    compare("add_rmsnorm.norm", shape, out_c, out_g, n, TOL_BF16x2);
    gpu->free(gpu, dx);
    gpu->free(gpu, dy);
    gpu->free(gpu, dout);
    free(x);
    free(y);
    free(out_c);
    free(out_g);
    free(x_g);
    tensor_free(w);
}

/* the dense MLP's first half as one op: silu(x gate^T) * (x up^T).  Up to
 * 8 rows of BF16 weights (GLM_GATE_UP_ROWS) the CUDA backend fuses it and
 * rounds once; beyond, two GEMMs and swiglu round after each GEMM and after
 * the product: two roundings deep */
static void
test_gate_up_swiglu(int rows, int N, int K, glm_dtype dt)
{
    glm_tensor *g = tensor_new("mlp.gate_proj.weight", dt, 2, N, K, 0.2f);
    glm_tensor *u = tensor_new("mlp.up_proj.weight", dt, 2, N, K, 0.2f);
    size_t n = (size_t) rows * N;
    float *x = rnd_floats((size_t) rows * K, 1.0f), *out_c = xmalloc(n * sizeof(float)), *out_g;
    void *dx = dev_put(gpu, x, (size_t) rows * K), *dout = dev_put(gpu, NULL, n);
    char shape[128];

    cpu->gate_up_swiglu(cpu, out_c, x, rows, g, u);
    gpu->gate_up_swiglu(gpu, dout, dx, rows, g, u);
    out_g = dev_get(gpu, dout, n);
    snprintf(shape, sizeof(shape), "rows=%d,N=%d,K=%d,%s", rows, N, K, glm_dtype_name(dt));
    compare("gate_up_swiglu", shape, out_c, out_g, n,
            rows <= 8 && dt == GLM_DTYPE_BF16 ? TOL_BF16 : TOL_BF16x2);
    gpu->free(gpu, dx);
    gpu->free(gpu, dout);
    glm_backend_cuda_release_weights(gpu);
    free(x);
    free(out_c);
    free(out_g);
    tensor_free(g);
    tensor_free(u);
}

/* ---- matmul ------------------------------------------------------------------------------ */

/* The FP8 x FP8 path's CPU twin: x quantized exactly as kernels/quant_act
 * does (glm_quant_act_fp8, groups of `group` along K), the weight
 * dequantized without the oracle's BF16 rounding (cuBLASLt multiplies the
 * stored FP8 by fp32 scales), products summed in double; + bias. */
static float *
fp8_act_twin(const float *x, int rows, const glm_tensor *w, const glm_tensor *bias, int group)
{
    int64_t N = w->shape[0], K = w->shape[1], n, k;
    int n_groups = (int) ((K + group - 1) / group), r;
    uint8_t *q = xmalloc((size_t) rows * K);
    float *s = xmalloc((size_t) rows * n_groups * sizeof(float));
    float *wf = xmalloc((size_t) N * K * sizeof(float));
    float *bf = bias != NULL ? xmalloc((size_t) N * sizeof(float)) : NULL;
    float *out = xmalloc((size_t) rows * N * sizeof(float));
    glm_tensor exact = *w;

    exact.scale_exact = 1;
    glm_quant_act_fp8(x, q, s, rows, (int) K, group, 0);
    glm_tensor_to_f32(&exact, 0, N * K, wf);
    if (bf != NULL) {
        glm_tensor_to_f32(bias, 0, N, bf);
    }
    for (r = 0; r < rows; r++) {
        for (n = 0; n < N; n++) {
            double acc = 0.0;
            for (k = 0; k < K; k++) {
                acc += (double) glm_fp8_e4m3_to_f32(q[(size_t) r * K + k])
                       * (double) s[(size_t) r * n_groups + k / group]
                       * (double) wf[(size_t) n * K + k];
            }
            out[(size_t) r * N + n] = (float) (acc + (bf != NULL ? (double) bf[n] : 0.0));
        }
    }
    free(q);
    free(s);
    free(wf);
    free(bf);
    return out;
}

/* kernels/quant_act against its twin: the same bytes and scales (tol 0),
 * rows of ordinary values, one all zero, one with a huge and a tiny entry */
static void
test_quant_act(int rows, int cols, int group, int scale_ld)
{
    float *x = rnd_floats((size_t) rows * cols, 4.0f);
    int n_groups = (cols + (group > 0 && group < cols ? group : cols) - 1)
                   / (group > 0 && group < cols ? group : cols);
    size_t ns = scale_ld > 0 ? (size_t) n_groups * scale_ld : (size_t) rows * n_groups, i;
    uint8_t *qc = xmalloc((size_t) rows * cols), *qg = xmalloc((size_t) rows * cols);
    float *sc = calloc(ns, sizeof(float)), *sg = xmalloc(ns * sizeof(float));
    float *dc = xmalloc((size_t) rows * cols * sizeof(float));
    float *dg = xmalloc((size_t) rows * cols * sizeof(float));
    void *dx, *dq, *ds;
    char shape[96];

    if (rows > 2) {
        memset(x + (size_t) cols, 0, (size_t) cols * sizeof(float));
        /* BF16-representable, as the device holds them */
        x[2 * (size_t) cols] = glm_bf16_to_f32(glm_f32_to_bf16(3.0e4f));
        x[2 * (size_t) cols + 1] = glm_bf16_to_f32(glm_f32_to_bf16(1.0e-3f));
    }
    glm_quant_act_fp8(x, qc, sc, rows, cols, group, scale_ld);
    dx = dev_put(gpu, x, (size_t) rows * cols);
    dq = gpu->alloc(gpu, (size_t) rows * cols);
    ds = gpu->alloc(gpu, ns * sizeof(float));
    if (dq == NULL || ds == NULL || sc == NULL) {
        die("GPU alloc failed");
    }
    gpu->upload(gpu, ds, sc, ns * sizeof(float));    /* padding equal on both sides */
    glm_backend_cuda_quant_act_fp8(gpu, dq, ds, dx, rows, cols, group, scale_ld);
    gpu->download(gpu, qg, dq, (size_t) rows * cols);
    gpu->download(gpu, sg, ds, ns * sizeof(float));
    for (i = 0; i < (size_t) rows * cols; i++) {
        dc[i] = glm_fp8_e4m3_to_f32(qc[i]);
        dg[i] = glm_fp8_e4m3_to_f32(qg[i]);
    }
    snprintf(shape, sizeof(shape), "rows=%d,cols=%d,group=%d,scale_ld=%d,q", rows, cols, group,
             scale_ld);
    compare("quant_act_fp8", shape, dc, dg, (size_t) rows * cols, TOL_EXACT);
    snprintf(shape, sizeof(shape), "rows=%d,cols=%d,group=%d,scale_ld=%d,scales", rows, cols,
             group, scale_ld);
    compare("quant_act_fp8", shape, sc, sg, ns, TOL_EXACT);
    gpu->free(gpu, dx);
    gpu->free(gpu, dq);
    gpu->free(gpu, ds);
    free(x); free(qc); free(qg); free(sc); free(sg); free(dc); free(dg);
}

static void
test_matmul_with(glm_backend *g, const char *label, int rows, const glm_tensor *w,
    const glm_tensor *bias)
{
    int64_t N = w->shape[0], K = w->shape[1];
    float *x = rnd_floats((size_t) rows * K, 1.0f);
    float *out_c = xmalloc((size_t) rows * N * sizeof(float)), *out_g;
    float *dx = dev_put(g, x, (size_t) rows * K), *dout = dev_put(g, NULL, (size_t) rows * N);
    float *dlog = dev_put_f32(g, (size_t) rows * N);
    char shape[160];

    int group;

    cpu->matmul(cpu, out_c, x, rows, w, bias);
    g->matmul(g, dout, dx, rows, w, bias);
    out_g = dev_get(g, dout, (size_t) rows * N);
    snprintf(shape, sizeof(shape), "%s,rows=%d,N=%lld,K=%lld,%s%s", label, rows,
             (long long) N, (long long) K, glm_dtype_name(w->dtype), bias ? ",bias" : "");
    group = w->dtype == GLM_DTYPE_F8_E4M3 ? glm_backend_cuda_fp8_act_group(g, w) : 0;
    if (group > 0) {
        /* FP8 x FP8 through cuBLASLt: tight against the twin that
         * quantizes x as the kernel does; against the oracle at the FP8
         * activations' tolerance */
        float *twin = fp8_act_twin(x, rows, w, bias, group);
        char sh[200];
        snprintf(sh, sizeof(sh), "%s,act_group=%d", shape, group);
        compare("matmul[fp8xfp8~twin]", sh, twin, out_g, (size_t) rows * N, TOL_BF16);
        compare("matmul[fp8xfp8~oracle]", sh, out_c, out_g, (size_t) rows * N, TOL_FP8_ACT);
        free(out_g);
        g->matmul_f32(g, dlog, dx, rows, w, bias);
        out_g = dev_get_f32(g, dlog, (size_t) rows * N);
        compare("matmul_f32[fp8xfp8~twin]", sh, twin, out_g, (size_t) rows * N, TOL_SUM);
        compare("matmul_f32[fp8xfp8~oracle]", sh, out_c, out_g, (size_t) rows * N,
                TOL_FP8_ACT);
        free(twin);
    } else {
        compare(g == gpu ? "matmul" : "matmul[simt]", shape, out_c, out_g, (size_t) rows * N,
                TOL_BF16);
        free(out_g);
        /* fp32 out (logits, router): the same inputs, only the order of the sums differs */
        g->matmul_f32(g, dlog, dx, rows, w, bias);
        out_g = dev_get_f32(g, dlog, (size_t) rows * N);
        compare(g == gpu ? "matmul_f32" : "matmul_f32[simt]", shape, out_c, out_g,
                (size_t) rows * N, TOL_SUM);
    }
    g->free(g, dx);
    g->free(g, dout);
    g->free(g, dlog);
    free(x);
    free(out_c);
    free(out_g);
}

static void
test_matmul(glm_backend *g, const char *label, const int *rows, int n_rows, int64_t N,
    int64_t K, glm_dtype dt, int with_bias)
{
    /* weights ~ U(-a, a) with a = sqrt(3 / K): outputs of order 1 */
    glm_tensor *w = tensor_new("w", dt, 2, N, K, sqrtf(3.0f / (float) K));
    glm_tensor *b = with_bias ? tensor_new("b", GLM_DTYPE_BF16, 1, N, 0, 0.5f) : NULL;
    int i;

    for (i = 0; i < n_rows; i++) {
        test_matmul_with(g, label, rows[i], w, b);
    }
    tensor_free(w);
    tensor_free(b);
}

/* FP8 weights as stored, every scale layout the checkpoints use (and a row
 * view into one, as the vision tower's q/k/v rows of its qkv weight) */
static void
test_matmul_fp8(glm_backend *g, const char *label, const int *rows, int n_rows, int64_t N,
    int64_t K, glm_scale_strategy st, int64_t b0, int64_t b1, glm_dtype sdt, int exact)
{
    glm_tensor *w = tensor_fp8_new("w_fp8", N, K, st, b0, b1, sdt, exact);
    glm_tensor *b = tensor_new("b", GLM_DTYPE_BF16, 1, N, 0, 0.5f);
    char lab[96];
    int i;

    for (i = 0; i < n_rows; i++) {
        snprintf(lab, sizeof(lab), "%s,fp8_%s%s%s", label, glm_scale_strategy_name(st),
                 sdt == GLM_DTYPE_BF16 ? ",bf16_scale" : "", exact ? ",exact" : "");
        test_matmul_with(g, lab, rows[i], w, i == 0 ? b : NULL);
    }
    if (N >= 4 && st != GLM_SCALE_TENSOR) {
        /* rows [N/2 + 1, N) of w, scales found through scale_row0 */
        int64_t r0 = N / 2 + 1;
        glm_tensor *v = tensor_view(w, r0 * K, N - r0, K);
        v->scale_row0 = r0;
        snprintf(lab, sizeof(lab), "%s,fp8_%s,row_view", label, glm_scale_strategy_name(st));
        test_matmul_with(g, lab, rows[0], v, NULL);
        free(v);
    }
    if (st == GLM_SCALE_BLOCK && b0 == 128 && N > 128) {
        /* a row view starting on a block: its scales found in place */
        glm_tensor *v = tensor_view(w, 128 * K, N - 128, K);
        v->scale_row0 = 128;
        snprintf(lab, sizeof(lab), "%s,fp8_%s,block_row_view", label,
                 glm_scale_strategy_name(st));
        test_matmul_with(g, lab, rows[0], v, NULL);
        free(v);
    }
    tensor_fp8_free(w);
    tensor_free(b);
}

/* ---- rope ------------------------------------------------------------------------------------ */

static void
test_rope(const char *label, int rows, int heads, int head_dim, int rot_dim, float theta,
    const int sections[3], int max_pos)
{
    int n_half = rot_dim / 2, j, r;
    int *axis = xmalloc((size_t) n_half * sizeof(int));
    float *inv_freq = xmalloc((size_t) n_half * sizeof(float));
    int32_t *pos3 = xmalloc((size_t) rows * 3 * sizeof(int32_t));
    size_t n = (size_t) rows * heads * head_dim;
    float *x = rnd_floats(n, 2.0f), *dx = dev_put(gpu, x, n), *out_g;
    char shape[160];

    for (j = 0; j < n_half; j++) {
        inv_freq[j] = 1.0f / powf(theta, (float) (2 * j) / (float) rot_dim);
        axis[j] = sections == NULL ? 0
                  : j < sections[0] ? 0 : j < sections[0] + sections[1] ? 1 : 2;
    }
    for (r = 0; r < rows; r++) {
        int p = (int) (rnd64() % (uint64_t) max_pos);
        pos3[3 * r] = p;
        pos3[3 * r + 1] = sections ? (int) (rnd64() % (uint64_t) max_pos) : p;
        pos3[3 * r + 2] = sections ? (int) (rnd64() % (uint64_t) max_pos) : p;
    }
    pos3[0] = max_pos - 1;
    cpu->rope(cpu, x, rows, heads, head_dim, rot_dim, pos3, axis, inv_freq);
    gpu->rope(gpu, dx, rows, heads, head_dim, rot_dim, pos3, axis, inv_freq);
    out_g = dev_get(gpu, dx, n);
    snprintf(shape, sizeof(shape), "%s,rows=%d,heads=%d,head_dim=%d,rot=%d,max_pos=%d", label,
             rows, heads, head_dim, rot_dim, max_pos);
    compare("rope", shape, x, out_g, n, TOL_BF16);
    gpu->free(gpu, dx);
    free(axis);
    free(inv_freq);
    free(pos3);
    free(x);
    free(out_g);
}

/* ---- kv_store + attention ----------------------------------------------------------------- */

typedef struct {
    int cached, fresh;          /* tokens already in the cache, tokens this step */
} seq_spec;

/* the KV dtype test_attention runs the GPU's pool in; FP8 per-layer scales
 * differ by layer, so a scale read from the wrong layer shows */
static glm_kv_dtype kv_dtype = GLM_KV_F32;
static const float kv_k_scale[2] = { 0.011f, 0.023f }, kv_v_scale[2] = { 0.017f, 0.029f };

static const char *
kv_dtype_name(glm_kv_dtype t)
{
    return t == GLM_KV_BF16 ? "bf16" : t == GLM_KV_FP8_E4M3 ? "fp8" : "f32";
}

/* FP8 E4M3 by search: the nearest of the 126 finite magnitudes (decoded by
 * safetensors.h's conversion), ties to the even code, beyond 448 saturated:
 * an oracle written independently of the kernels' bit arithmetic */
static uint8_t
fp8_nearest(float x)
{
    float a = fabsf(x), best_d = INFINITY;
    uint8_t best = 0, sign = signbit(x) ? 0x80 : 0, c;

    if (isnan(x)) {
        return (uint8_t) (sign | 0x7f);
    }
    for (c = 0; c <= 0x7e; c++) {
        float d = fabsf(glm_fp8_e4m3_to_f32(c) - a);
        if (d < best_d || (d == best_d && (c & 1) == 0)) {
            best_d = d;
            best = c;
        }
    }
    return (uint8_t) (sign | best);
}

/* what a pool of kv_dtype keeps of x at layer l (x BF16-representable) */
static float
kv_kept(float x, int l, int is_v)
{
    float s = is_v ? kv_v_scale[l] : kv_k_scale[l];

    if (kv_dtype != GLM_KV_FP8_E4M3) {
        return x;
    }
    return glm_fp8_e4m3_to_f32(fp8_nearest(x / s)) * s;
}

static float *kv_pool_widen(glm_backend *be, const glm_kv_pool *kv, const void *d, size_t n,
    int is_v);

/* a GPU pool of kv_dtype back as fp32 (FP8 times its layer's scale) */
static float *
kv_pool_get(const glm_kv_pool *kv, const void *d, size_t n, int is_v)
{
    return kv_pool_widen(gpu, kv, d, n, is_v);
}

/* be's pool of kv->dtype back as fp32 */
static float *
kv_pool_widen(glm_backend *be, const glm_kv_pool *kv, const void *d, size_t n, int is_v)
{
    size_t es = kv->dtype == GLM_KV_F32 ? 4 : kv->dtype == GLM_KV_BF16 ? 2 : 1, i;
    size_t per_layer = n / (size_t) kv->n_layers;
    unsigned char *raw = xmalloc(n * es);
    float *h = xmalloc(n * sizeof(float));

    be->download(be, raw, d, n * es);
    for (i = 0; i < n; i++) {
        int l = (int) (i / per_layer);
        uint16_t b;
        if (kv->dtype == GLM_KV_F32) {
            memcpy(&h[i], raw + 4 * i, 4);
        } else if (kv->dtype == GLM_KV_BF16) {
            memcpy(&b, raw + 2 * i, 2);
            h[i] = glm_bf16_to_f32(b);
        } else {
            h[i] = glm_fp8_e4m3_to_f32(raw[i]) * (is_v ? kv->v_scale[l] : kv->k_scale[l]);
        }
    }
    free(raw);
    return h;
}

/* k or v rows for the CPU's fp32 pool: what the GPU's pool will keep */
static float *
kv_rows_kept(const float *x, size_t n, int l, int is_v)
{
    float *y = xmalloc(n * sizeof(float));
    size_t i;

    for (i = 0; i < n; i++) {
        y[i] = kv_kept(x[i], l, is_v);
    }
    return y;
}

static void
test_attention(const char *label, int heads, int kv_heads, int D, int bs,
    const seq_spec *ss, int n_seqs)
{
    int kv_dim = kv_heads * D, n_layers = 2, layer = 1, s, i, p;
    int total_blocks = 0, pool_blocks, Tc = 0, T = 0, at;
    int32_t *perm, *tables, *seq, *pos;
    glm_seq_blocks *seqs = xmalloc((size_t) n_seqs * sizeof(glm_seq_blocks));
    glm_kv_pool pc, pg;
    glm_attn_batch b;
    size_t pool_floats;
    float *k, *v, *q, *dk, *dv, *dq, *out_c, *dout, *out_g, *pool_g;
    char shape[256];
    int len;

    for (s = 0; s < n_seqs; s++) {
        total_blocks += (ss[s].cached + ss[s].fresh + bs - 1) / bs;
        Tc += ss[s].cached;
        T += ss[s].fresh;
    }
    pool_blocks = total_blocks + 3;
    /* block tables out of order across a shuffled pool, as the scheduler's */
    perm = xmalloc((size_t) pool_blocks * sizeof(int32_t));
    for (i = 0; i < pool_blocks; i++) {
        perm[i] = i;
    }
    for (i = pool_blocks - 1; i > 0; i--) {
        int j = (int) (rnd64() % (uint64_t) (i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    tables = perm;
    at = 0;
    for (s = 0; s < n_seqs; s++) {
        seqs[s].blocks = tables + at;
        seqs[s].n_blocks = (ss[s].cached + ss[s].fresh + bs - 1) / bs;
        at += seqs[s].n_blocks;
    }
    pool_floats = (size_t) n_layers * pool_blocks * bs * kv_dim;
    pc = (glm_kv_pool) { n_layers, pool_blocks, bs, kv_dim, GLM_KV_F32,
                         cpu->alloc(cpu, pool_floats * sizeof(float)),
                         cpu->alloc(cpu, pool_floats * sizeof(float)), NULL, NULL };
    {
        size_t es = kv_dtype == GLM_KV_F32 ? 4 : kv_dtype == GLM_KV_BF16 ? 2 : 1;
        pg = (glm_kv_pool) { n_layers, pool_blocks, bs, kv_dim, kv_dtype,
                             gpu->alloc(gpu, pool_floats * es), gpu->alloc(gpu, pool_floats * es),
                             kv_dtype == GLM_KV_FP8_E4M3 ? kv_k_scale : NULL,
                             kv_dtype == GLM_KV_FP8_E4M3 ? kv_v_scale : NULL };
    }

    /* the cached prefix: layer 0 gets other values, so a wrong layer offset shows */
    seq = xmalloc((size_t) (Tc > T ? Tc : T) * sizeof(int32_t) + 4);
    pos = xmalloc((size_t) (Tc > T ? Tc : T) * sizeof(int32_t) + 4);
    if (Tc > 0) {
        int lyr;
        i = 0;
        for (s = 0; s < n_seqs; s++) {
            for (p = 0; p < ss[s].cached; p++, i++) {
                seq[i] = s;
                pos[i] = p;
            }
        }
        b = (glm_attn_batch) { Tc, seq, pos, seqs, n_seqs };
        for (lyr = 0; lyr < 2; lyr++) {
            k = rnd_floats((size_t) Tc * kv_dim, 1.0f);
            v = rnd_floats((size_t) Tc * kv_dim, 1.0f);
            dk = dev_put(gpu, k, (size_t) Tc * kv_dim);
            dv = dev_put(gpu, v, (size_t) Tc * kv_dim);
            {
                float *kq = kv_rows_kept(k, (size_t) Tc * kv_dim, lyr, 0);
                float *vq = kv_rows_kept(v, (size_t) Tc * kv_dim, lyr, 1);
                cpu->kv_store(cpu, &pc, lyr, kq, vq, &b);
                free(kq);
                free(vq);
            }
            gpu->kv_store(gpu, &pg, lyr, dk, dv, &b);
            gpu->free(gpu, dk);
            gpu->free(gpu, dv);
            free(k);
            free(v);
        }
    }

    /* this step: each sequence's fresh tokens, consecutive */
    i = 0;
    for (s = 0; s < n_seqs; s++) {
        for (p = 0; p < ss[s].fresh; p++, i++) {
            seq[i] = s;
            pos[i] = ss[s].cached + p;
        }
    }
    b = (glm_attn_batch) { T, seq, pos, seqs, n_seqs };
    q = rnd_floats((size_t) T * heads * D, 1.0f);
    k = rnd_floats((size_t) T * kv_dim, 1.0f);
    v = rnd_floats((size_t) T * kv_dim, 1.0f);
    dq = dev_put(gpu, q, (size_t) T * heads * D);
    dk = dev_put(gpu, k, (size_t) T * kv_dim);
    dv = dev_put(gpu, v, (size_t) T * kv_dim);
    out_c = xmalloc((size_t) T * heads * D * sizeof(float));
    dout = dev_put(gpu, NULL, (size_t) T * heads * D);
    {
        float *kq = kv_rows_kept(k, (size_t) T * kv_dim, layer, 0);
        float *vq = kv_rows_kept(v, (size_t) T * kv_dim, layer, 1);
        cpu->kv_store(cpu, &pc, layer, kq, vq, &b);
        free(kq);
        free(vq);
    }
    gpu->kv_store(gpu, &pg, layer, dk, dv, &b);
    cpu->attention(cpu, out_c, q, &pc, layer, &b, heads, kv_heads, D, 1.0f / sqrtf((float) D));
    gpu->attention(gpu, dout, dq, &pg, layer, &b, heads, kv_heads, D, 1.0f / sqrtf((float) D));
    out_g = dev_get(gpu, dout, (size_t) T * heads * D);
    len = snprintf(shape, sizeof(shape), "%s,kv=%s,heads=%d/%d,head_dim=%d,block=%d,seqs=",
                   label, kv_dtype_name(kv_dtype), heads, kv_heads, D, bs);
    for (s = 0; s < n_seqs && len < (int) sizeof(shape) - 24; s++) {
        len += snprintf(shape + len, sizeof(shape) - (size_t) len, "%s%d+%d", s ? ":" : "",
                        ss[s].cached, ss[s].fresh);
    }
    compare("attention", shape, out_c, out_g, (size_t) T * heads * D, TOL_BF16);
    if (strncmp(label, "decode", 6) == 0) {
        /* again on the same backend: the split merge's tickets were left at
         * zero, or this launch merges too early (or never) */
        char again_shape[160];
        float *again, *zero = calloc((size_t) T * heads * D, sizeof(float));
        int max_len = 0;
        for (s = 0; s < n_seqs; s++) {
            max_len = ss[s].cached + ss[s].fresh > max_len ? ss[s].cached + ss[s].fresh : max_len;
        }
        gpu->upload_act(gpu, dout, zero, (size_t) T * heads * D);
        free(zero);
        gpu->attention(gpu, dout, dq, &pg, layer, &b, heads, kv_heads, D,
                       1.0f / sqrtf((float) D));
        again = dev_get(gpu, dout, (size_t) T * heads * D);
        snprintf(again_shape, sizeof(again_shape), "%s_again,kv=%s,heads=%d/%d,head_dim=%d,splits=%d", label,
                 kv_dtype_name(kv_dtype), heads, kv_heads, D,
                 glm_backend_cuda_decode_splits(gpu, T, heads, kv_heads, max_len));
        compare("attention", again_shape, out_c, again, (size_t) T * heads * D, TOL_BF16);
        free(again);
    }

    /* the pool holds exactly what the oracle's encoding says, every layer */
    pool_g = kv_pool_get(&pg, pg.k, pool_floats, 0);
    compare("kv_store.k", shape, pc.k, pool_g, pool_floats, TOL_EXACT);
    free(pool_g);
    pool_g = kv_pool_get(&pg, pg.v, pool_floats, 1);
    compare("kv_store.v", shape, pc.v, pool_g, pool_floats, TOL_EXACT);
    free(pool_g);

    gpu->free(gpu, dq);
    gpu->free(gpu, dk);
    gpu->free(gpu, dv);
    gpu->free(gpu, dout);
    gpu->free(gpu, pg.k);
    gpu->free(gpu, pg.v);
    cpu->free(cpu, pc.k);
    cpu->free(cpu, pc.v);
    free(q);
    free(k);
    free(v);
    free(out_c);
    free(out_g);
    free(seq);
    free(pos);
    free(perm);
    free(seqs);
}

/* ---- attn_prep: q/k norm + partial M-RoPE + kv_store, fused ------------------------------- */

#define TOL_FP8 0.125   /* a pool entry one E4M3 step apart (3 mantissa bits: at most
                           2^-3 relative) where the two sides' k differ by a BF16
                           rounding and land on either side of a rounding boundary */

static void
test_attn_prep(const char *label, int T, int heads, int kv_heads, int D, int rot_dim,
    int qk_norm, const int sections[3])
{
    int n_half = rot_dim / 2, kv_dim = kv_heads * D, bs = 16, n_layers = 2, layer = 1;
    int pool_blocks, i, j, at = 0;
    int *axis = xmalloc((size_t) (n_half + 1) * sizeof(int));
    float *inv_freq = xmalloc((size_t) (n_half + 1) * sizeof(float));
    int32_t *pos3 = xmalloc((size_t) T * 3 * sizeof(int32_t));
    int32_t *seq = xmalloc((size_t) T * sizeof(int32_t)), *pos = xmalloc((size_t) T * sizeof(int32_t));
    int32_t *tables;
    glm_seq_blocks *seqs = xmalloc((size_t) T * sizeof(glm_seq_blocks));
    size_t nq = (size_t) T * heads * D, nk = (size_t) T * kv_dim, pool_n, es;
    float *q = rnd_floats(nq, 2.0f), *k = rnd_floats(nk, 2.0f), *v = rnd_floats(nk, 2.0f);
    float *dq = dev_put(gpu, q, nq), *dk = dev_put(gpu, k, nk), *dv = dev_put(gpu, v, nk);
    float *qg, *kg, *pc_, *pg_;
    glm_tensor *qn = qk_norm ? tensor_new("q_norm", GLM_DTYPE_BF16, 1, D, 0, 2.0f) : NULL;
    glm_tensor *kn = qk_norm ? tensor_new("k_norm", GLM_DTYPE_BF16, 1, D, 0, 2.0f) : NULL;
    glm_kv_pool pc, pg;
    glm_attn_batch b;
    char shape[200];

    for (j = 0; j < n_half; j++) {
        inv_freq[j] = 1.0f / powf(1e6f, (float) (2 * j) / (float) rot_dim);
        axis[j] = sections == NULL ? 0
                  : j < sections[0] ? 0 : j < sections[0] + sections[1] ? 1 : 2;
    }
    /* a decode-shaped batch: token i alone in sequence i, at a random
     * position; M-RoPE positions apart from the cache position */
    for (i = 0; i < T; i++) {
        seq[i] = i;
        pos[i] = (int) (rnd64() % 300);
        pos3[3 * i] = pos[i];
        pos3[3 * i + 1] = sections ? (int) (rnd64() % 300) : pos[i];
        pos3[3 * i + 2] = sections ? (int) (rnd64() % 300) : pos[i];
        seqs[i].n_blocks = pos[i] / bs + 1;
        at += seqs[i].n_blocks;
    }
    pool_blocks = at + 2;
    tables = xmalloc((size_t) pool_blocks * sizeof(int32_t));
    for (i = 0; i < pool_blocks; i++) {
        tables[i] = pool_blocks - 1 - i;        /* out of order */
    }
    at = 0;
    for (i = 0; i < T; i++) {
        seqs[i].blocks = tables + at;
        at += seqs[i].n_blocks;
    }
    b = (glm_attn_batch) { T, seq, pos, seqs, T };
    pool_n = (size_t) n_layers * pool_blocks * bs * kv_dim;
    es = glm_kv_dtype_size(kv_dtype);
    pc = (glm_kv_pool) { n_layers, pool_blocks, bs, kv_dim, kv_dtype,
                         cpu->alloc(cpu, pool_n * es), cpu->alloc(cpu, pool_n * es),
                         kv_dtype == GLM_KV_FP8_E4M3 ? kv_k_scale : NULL,
                         kv_dtype == GLM_KV_FP8_E4M3 ? kv_v_scale : NULL };
    pg = pc;
    pg.k = gpu->alloc(gpu, pool_n * es);
    pg.v = gpu->alloc(gpu, pool_n * es);
    memset(pc.k, 0, pool_n * es);
    memset(pc.v, 0, pool_n * es);
    {
        void *zero = calloc(pool_n, es);
        gpu->upload(gpu, pg.k, zero, pool_n * es);
        gpu->upload(gpu, pg.v, zero, pool_n * es);
        free(zero);
    }

    cpu->attn_prep(cpu, q, k, v, heads, kv_heads, D, qn, kn, 1e-5f, rot_dim, pos3, axis,
                   inv_freq, &pc, layer, &b);
    gpu->attn_prep(gpu, dq, dk, dv, heads, kv_heads, D, qn, kn, 1e-5f, rot_dim, pos3, axis,
                   inv_freq, &pg, layer, &b);

    snprintf(shape, sizeof(shape), "%s,kv=%s,rows=%d,heads=%d/%d,head_dim=%d,rot=%d,qk_norm=%d%s",
             label, kv_dtype_name(kv_dtype), T, heads, kv_heads, D, rot_dim, qk_norm,
             sections ? ",mrope" : "");
    qg = dev_get(gpu, dq, nq);
    kg = dev_get(gpu, dk, nk);
    compare("attn_prep.q", shape, q, qg, nq, TOL_BF16);
    compare("attn_prep.k", shape, k, kg, nk, TOL_BF16);
    /* every layer of both pools (the other layer must stay untouched).  k:
     * against the oracle's pool within the rounding of k, and exactly
     * against what the GPU's own k output encodes to, stored by the
     * oracle's kv_store into an fp32 pool */
    pc_ = kv_pool_widen(cpu, &pc, pc.k, pool_n, 0);
    pg_ = kv_pool_widen(gpu, &pg, pg.k, pool_n, 0);
    compare("attn_prep.kv_k", shape, pc_, pg_, pool_n,
            kv_dtype == GLM_KV_FP8_E4M3 ? TOL_FP8 : TOL_BF16);
    {
        glm_kv_pool pe = pc;
        float *kept = kv_rows_kept(kg, nk, layer, 0);
        pe.dtype = GLM_KV_F32;
        pe.k = cpu->alloc(cpu, pool_n * sizeof(float));
        pe.v = cpu->alloc(cpu, pool_n * sizeof(float));
        memset(pe.k, 0, pool_n * sizeof(float));
        cpu->kv_store(cpu, &pe, layer, kept, v, &b);
        compare("attn_prep.kv_k_exact", shape, pe.k, pg_, pool_n, TOL_EXACT);
        cpu->free(cpu, pe.k);
        cpu->free(cpu, pe.v);
        free(kept);
    }
    free(pc_);
    free(pg_);
    pc_ = kv_pool_widen(cpu, &pc, pc.v, pool_n, 1);
    pg_ = kv_pool_widen(gpu, &pg, pg.v, pool_n, 1);
    compare("attn_prep.kv_v", shape, pc_, pg_, pool_n, TOL_EXACT);
    free(pc_);
    free(pg_);

    free(qg);
    free(kg);
    gpu->free(gpu, dq);
    gpu->free(gpu, dk);
    gpu->free(gpu, dv);
    gpu->free(gpu, pg.k);
    gpu->free(gpu, pg.v);
    cpu->free(cpu, pc.k);
    cpu->free(cpu, pc.v);
    tensor_free(qn);
    tensor_free(kn);
    free(q);
    free(k);
    free(v);
    free(axis);
    free(inv_freq);
    free(pos3);
    free(seq);
    free(pos);
    free(seqs);
    free(tables);
}

/* the decode attention's split count (kernels/attention_decode.cuh) from
 * the SM count and the batch: printed, and held to what it promises */
static void
test_decode_splits(int n_seqs, int heads, int kv_heads, int max_len)
{
    int splits = glm_backend_cuda_decode_splits(gpu, n_seqs, heads, kv_heads, max_len);
    int most = (max_len + 255) / 256, ok = splits >= 1 && splits <= 64;

    /* never shorter than 256 positions a split; one split once the batch
     * alone fills the SMs twice (132 emulated); several for a long context
     * of one sequence */
    ok = ok && (splits <= most || splits == 1);
    ok = ok && (n_seqs * kv_heads < 2 * 132 || splits == 1);
    ok = ok && (n_seqs > 1 || max_len < 2048 || splits >= 8);
    printf("DECODE_SPLITS seqs=%d heads=%d/%d max_len=%d sms=132 splits=%d %s\n", n_seqs, heads,
           kv_heads, max_len, splits, ok ? "ok" : "FAIL");
    checks++;
    failures += !ok;
}

/* ---- elementwise ---------------------------------------------------------------------------- */

static void
test_elementwise(size_t n)
{
    float *a = rnd_floats(n, 6.0f), *b = rnd_floats(n, 2.0f), *c = xmalloc(n * sizeof(float));
    float *da = dev_put(gpu, a, n), *db = dev_put(gpu, b, n), *dc = dev_put(gpu, NULL, n);
    float *got;
    char shape[64];

    snprintf(shape, sizeof(shape), "n=%zu", n);
    cpu->swiglu(cpu, c, a, b, n);
    gpu->swiglu(gpu, dc, da, db, n);
    got = dev_get(gpu, dc, n);
    compare("swiglu", shape, c, got, n, TOL_BF16);
    free(got);

    cpu->gelu(cpu, c, a, n);
    gpu->gelu(gpu, dc, da, n);
    got = dev_get(gpu, dc, n);
    compare("gelu", shape, c, got, n, TOL_BF16);
    free(got);

    /* in place, as the model calls them: swiglu(g, g, u), gelu(y, y) */
    memcpy(c, a, n * sizeof(float));
    cpu->swiglu(cpu, c, c, b, n);
    cpu->gelu(cpu, c, c, n);
    gpu->upload_act(gpu, dc, a, n);
    gpu->swiglu(gpu, dc, dc, db, n);
    gpu->gelu(gpu, dc, dc, n);
    got = dev_get(gpu, dc, n);
    compare("swiglu+gelu.in_place", shape, c, got, n, TOL_BF16x2);
    free(got);

    cpu->add(cpu, a, b, n);
    gpu->add(gpu, da, db, n);
    got = dev_get(gpu, da, n);
    compare("add", shape, a, got, n, TOL_BF16);
    free(got);

    gpu->free(gpu, da);
    gpu->free(gpu, db);
    gpu->free(gpu, dc);
    free(a);
    free(b);
    free(c);
}

/* ---- vision ops -------------------------------------------------------------------------------- */

static void
test_layernorm(int rows, int dim)
{
    glm_tensor *w = tensor_new("ln.weight", GLM_DTYPE_BF16, 1, dim, 0, 1.5f);
    glm_tensor *bt = tensor_new("ln.bias", GLM_DTYPE_BF16, 1, dim, 0, 0.5f);
    size_t n = (size_t) rows * dim;
    float *x = rnd_floats(n, 3.0f), *out_c = xmalloc(n * sizeof(float)), *got;
    float *dx = dev_put(gpu, x, n), *dout = dev_put(gpu, NULL, n);
    char shape[64];
    int i;

    for (i = 0; i < (int) n; i++) {
        /* an offset: the mean matters; rounded, as the GPU's input is BF16 */
        x[i] = glm_bf16_to_f32(glm_f32_to_bf16(x[i] + 5.0f));
    }
    gpu->upload_act(gpu, dx, x, n);
    cpu->layernorm(cpu, out_c, x, w, bt, rows, dim, 1e-5f);
    gpu->layernorm(gpu, dout, dx, w, bt, rows, dim, 1e-5f);
    got = dev_get(gpu, dout, n);
    snprintf(shape, sizeof(shape), "rows=%d,dim=%d", rows, dim);
    compare("layernorm", shape, out_c, got, n, TOL_BF16);
    gpu->free(gpu, dx);
    gpu->free(gpu, dout);
    free(x);
    free(out_c);
    free(got);
    tensor_free(w);
    tensor_free(bt);
}

static void
test_segments(int heads, int D, int stride, const int32_t *cu, int n_seg)
{
    int N = cu[n_seg], s, len;
    size_t n = (size_t) N * stride;
    float *q = rnd_floats(n, 1.0f), *k = rnd_floats(n, 1.0f), *v = rnd_floats(n, 1.0f);
    float *out_c = calloc(n, sizeof(float)), *got;
    float *dq = dev_put(gpu, q, n), *dk = dev_put(gpu, k, n), *dv = dev_put(gpu, v, n);
    float *dout = dev_put(gpu, NULL, n);
    char shape[192];

    cpu->attention_segments(cpu, out_c, q, k, v, stride, cu, n_seg, heads, D,
                            1.0f / sqrtf((float) D));
    gpu->attention_segments(gpu, dout, dq, dk, dv, stride, cu, n_seg, heads, D,
                            1.0f / sqrtf((float) D));
    got = dev_get(gpu, dout, n);
    len = snprintf(shape, sizeof(shape), "heads=%d,head_dim=%d,stride=%d,segments=", heads,
                   D, stride);
    for (s = 0; s < n_seg && len < (int) sizeof(shape) - 16; s++) {
        len += snprintf(shape + len, sizeof(shape) - (size_t) len, "%s%d", s ? ":" : "",
                        cu[s + 1] - cu[s]);
    }
    compare("attention_segments", shape, out_c, got, n, TOL_BF16);
    gpu->free(gpu, dq);
    gpu->free(gpu, dk);
    gpu->free(gpu, dv);
    gpu->free(gpu, dout);
    free(q);
    free(k);
    free(v);
    free(out_c);
    free(got);
}

static void
test_group_transpose(int groups, int g, int dim)
{
    size_t n = (size_t) groups * g * dim;
    float *x = rnd_floats(n, 1.0f), *out_c = xmalloc(n * sizeof(float)), *got;
    float *dx = dev_put(gpu, x, n), *dout = dev_put(gpu, NULL, n);
    char shape[64];

    cpu->group_transpose(cpu, out_c, x, groups, g, dim);
    gpu->group_transpose(gpu, dout, dx, groups, g, dim);
    got = dev_get(gpu, dout, n);
    snprintf(shape, sizeof(shape), "groups=%d,g=%d,dim=%d", groups, g, dim);
    compare("group_transpose", shape, out_c, got, n, TOL_EXACT);
    gpu->free(gpu, dx);
    gpu->free(gpu, dout);
    free(x);
    free(out_c);
    free(got);
}

/* ---- MoE ------------------------------------------------------------------------------------------ */

static int
cmp_desc(const void *a, const void *b)
{
    float x = *(const float *) a, y = *(const float *) b;

    return x < y ? 1 : x > y ? -1 : 0;
}

/* The smallest score gap the oracle's routing of one row rests on: the
 * group boundary (topk_group-th vs next group score) and the expert
 * boundary (top_k-th vs next allowed score). */
static float
route_margin(const glm_moe_weights *m, const float *logits, const float *bias)
{
    int E = m->n_experts, per = E / m->n_group, e, g, n_ok = 0;
    float *c = xmalloc((size_t) E * sizeof(float)), *gs = xmalloc((size_t) m->n_group * sizeof(float));
    float *ok = xmalloc((size_t) E * sizeof(float)), *tmp = xmalloc((size_t) per * sizeof(float));
    float margin = INFINITY, cut = -INFINITY;

    for (e = 0; e < E; e++) {
        c[e] = 1.0f / (1.0f + expf(-logits[e])) + bias[e];
    }
    if (m->n_group > 1 || m->topk_group < m->n_group) {
        float *sorted = xmalloc((size_t) m->n_group * sizeof(float));
        for (g = 0; g < m->n_group; g++) {
            memcpy(tmp, c + g * per, (size_t) per * sizeof(float));
            qsort(tmp, (size_t) per, sizeof(float), cmp_desc);
            gs[g] = tmp[0] + tmp[1];
        }
        memcpy(sorted, gs, (size_t) m->n_group * sizeof(float));
        qsort(sorted, (size_t) m->n_group, sizeof(float), cmp_desc);
        if (m->topk_group < m->n_group) {
            margin = sorted[m->topk_group - 1] - sorted[m->topk_group];
            cut = sorted[m->topk_group - 1];
        }
        for (g = 0; g < m->n_group; g++) {
            if (gs[g] >= cut) {
                memcpy(ok + n_ok, c + g * per, (size_t) per * sizeof(float));
                n_ok += per;
            }
        }
        free(sorted);
    } else {
        memcpy(ok, c, (size_t) E * sizeof(float));
        n_ok = E;
    }
    qsort(ok, (size_t) n_ok, sizeof(float), cmp_desc);
    if (m->top_k < n_ok && ok[m->top_k - 1] - ok[m->top_k] < margin) {
        margin = ok[m->top_k - 1] - ok[m->top_k];
    }
    free(c);
    free(gs);
    free(ok);
    free(tmp);
    return margin;
}

/* the variants test_moe runs (set by the caller, as kv_dtype for attention):
 * FP8 E4M3 experts with 128x128 block scales (MOE_FP8 distinct matrices,
 * reused cyclically: E real-width FP8 experts do not fit host memory); a
 * shared expert of width moe_shared (0: none); expert parallel (odd
 * experts NULL, another rank's); moe_distinct > 0: BF16 experts reuse that
 * many matrices cyclically too (each expert's device copy is made when its
 * layer's expert table is built, all E at once) */
#define MOE_FP8 16
static int moe_fp8, moe_shared, moe_ep, moe_distinct;

/* The routing alone against the oracle's (glm_moe_route_oracle): the same
 * experts for every row (picks compared in ascending id) and weights
 * within 1e-6.  ties: x in {-1, 0, 1} and router rows in 1/16 steps with
 * every expert an exact twin of its neighbour (bias too), so logits are
 * exact in fp32 whatever the summation order, equal on both backends, and
 * full of exact ties the oracle breaks by the lower index: every row is
 * compared.  Otherwise random; rows resting on a gap under MOE_TIE are
 * left out and counted. */
static void
test_moe_route(const char *label, int E, int top_k, int n_group, int topk_group, int norm,
    float scaling, int H, int rows, int ties)
{
    glm_tensor *router = tensor_new("router", GLM_DTYPE_BF16, 2, E, H, 3.0f / sqrtf((float) H));
    glm_tensor *cbias = tensor_new("e_score_correction_bias", GLM_DTYPE_F32, 1, E, 0, 0.1f);
    size_t n = (size_t) rows * H, P = (size_t) rows * top_k;
    float *x = rnd_floats(n, 1.0f), *logits = xmalloc((size_t) rows * E * sizeof(float));
    float *bias = xmalloc((size_t) E * sizeof(float)), *wc = xmalloc(P * sizeof(float));
    float *wg = xmalloc(P * sizeof(float)), max_abs = 0.0f;
    int32_t *ic = xmalloc(P * sizeof(int32_t)), *ig = xmalloc(P * sizeof(int32_t));
    int r, k, q, e, kept = 0, near = 0, mism = 0, ok;
    glm_moe_weights m;
    void *dx;

    if (ties) {
        uint16_t *rw = (uint16_t *) router->data;
        float *cb = (float *) cbias->data;
        for (e = 0; e < E; e++) {
            for (k = 0; k < H; k++) {
                rw[(size_t) e * H + k] = e % 2 ? rw[(size_t) (e - 1) * H + k]
                                       : glm_f32_to_bf16((float) ((int) (rnd64() % 9) - 4) / 16.0f);
            }
            cb[e] = e % 2 ? cb[e - 1] : (float) ((int) (rnd64() % 3) - 1) / 4.0f;
        }
        for (q = 0; q < (int) n; q++) {
            x[q] = (float) ((int) (rnd64() % 3) - 1);
        }
    }
    m = (glm_moe_weights) { E, top_k, n_group, topk_group, norm, scaling, H, 0, router, cbias,
                            NULL, NULL, NULL, NULL, NULL, NULL };
    glm_tensor_to_f32(cbias, 0, E, bias);
    cpu->matmul(cpu, logits, x, rows, router, NULL);
    glm_moe_route_oracle(&m, logits, rows, ic, wc);
    dx = dev_put(gpu, x, n);
    glm_backend_cuda_moe_route(gpu, dx, rows, &m, ig, wg);
    for (r = 0; r < rows; r++) {
        int32_t *a = ic + (size_t) r * top_k, *b = ig + (size_t) r * top_k;
        float *wa = wc + (size_t) r * top_k, *wb = wg + (size_t) r * top_k;
        /* the oracle's picks in ascending id, as the CUDA op stores them */
        for (k = 1; k < top_k; k++) {
            for (q = k; q > 0 && a[q - 1] > a[q]; q--) {
                int32_t ti = a[q];
                float tw = wa[q];
                a[q] = a[q - 1];
                wa[q] = wa[q - 1];
                a[q - 1] = ti;
                wa[q - 1] = tw;
            }
        }
        if (!ties && route_margin(&m, logits + (size_t) r * E, bias) < MOE_TIE) {
            near++;
            continue;
        }
        kept++;
        for (k = 0; k < top_k; k++) {
            float d = fabsf(wa[k] - wb[k]);
            mism += a[k] != b[k];
            if (!(d <= max_abs)) {
                max_abs = d;
            }
        }
    }
    ok = mism == 0 && max_abs <= 1e-6f && kept > 0;
    printf("OP moe_route shape=%s,rows=%d,experts=%d,top=%d,groups=%d/%d,hidden=%d,%s"
           "compared=%d,near_ties=%d id_mismatches=%d max_abs_w=%.3g tol=1e-06 %s\n", label,
           rows, E, top_k, topk_group, n_group, H, ties ? "exact_ties," : "", kept, near, mism,
           (double) max_abs, ok ? "ok" : "FAIL");
    checks++;
    failures += !ok;
    gpu->free(gpu, dx);
    free(x);
    free(logits);
    free(bias);
    free(wc);
    free(wg);
    free(ic);
    free(ig);
    tensor_free(router);
    tensor_free(cbias);
    glm_backend_cuda_release_weights(gpu);
}

static void
test_moe(const char *label, int E, int top_k, int n_group, int topk_group, int norm,
    float scaling, int H, int I, const int *rows_list, int n_rows_list)
{
    /* expert weights: distinct windows of three shared pools (each expert a
     * different matrix at its own address, without E full copies in host memory) */
    int64_t step = 4099;
    glm_tensor *pg = tensor_new("gate.pool", GLM_DTYPE_BF16, 1, (int64_t) I * H + E * step, 0,
                                sqrtf(3.0f / (float) H));
    glm_tensor *pu = tensor_new("up.pool", GLM_DTYPE_BF16, 1, (int64_t) I * H + E * step, 0,
                                sqrtf(3.0f / (float) H));
    glm_tensor *pd = tensor_new("down.pool", GLM_DTYPE_BF16, 1, (int64_t) H * I + E * step, 0,
                                sqrtf(3.0f / (float) I));
    glm_tensor **gate = xmalloc((size_t) E * sizeof(glm_tensor *));
    glm_tensor **up = xmalloc((size_t) E * sizeof(glm_tensor *));
    glm_tensor **down = xmalloc((size_t) E * sizeof(glm_tensor *));
    glm_tensor *router = tensor_new("router", GLM_DTYPE_BF16, 2, E, H, 3.0f / sqrtf((float) H));
    glm_tensor *cbias = tensor_new("e_score_correction_bias", GLM_DTYPE_F32, 1, E, 0, 0.1f);
    glm_tensor **g_on = xmalloc((size_t) E * sizeof(glm_tensor *));
    glm_tensor **u_on = xmalloc((size_t) E * sizeof(glm_tensor *));
    glm_tensor **d_on = xmalloc((size_t) E * sizeof(glm_tensor *));
    glm_tensor *f8[3][MOE_FP8], *sh[3] = { NULL, NULL, NULL };
    glm_moe_weights m;
    float *bias = xmalloc((size_t) E * sizeof(float));
    char variant[96];
    int e, ri, i;

    for (e = 0; e < E; e++) {
        gate[e] = tensor_view(pg, e * step, I, H);
        up[e] = tensor_view(pu, e * step, I, H);
        down[e] = tensor_view(pd, e * step, H, I);
    }
    for (i = 0; moe_fp8 && i < MOE_FP8; i++) {
        f8[0][i] = tensor_fp8_new("gate.fp8", I, H, GLM_SCALE_BLOCK, 128, 128, GLM_DTYPE_F32, 1);
        f8[1][i] = tensor_fp8_new("up.fp8", I, H, GLM_SCALE_BLOCK, 128, 128, GLM_DTYPE_F32, 1);
        f8[2][i] = tensor_fp8_new("down.fp8", H, I, GLM_SCALE_BLOCK, 128, 128, GLM_DTYPE_F32, 1);
    }
    for (e = 0; e < E; e++) {
        int off = moe_ep && e % 2;      /* another rank's expert */
        int d = moe_distinct > 0 ? e % moe_distinct : e;
        g_on[e] = off ? NULL : moe_fp8 ? f8[0][e % MOE_FP8] : gate[d];
        u_on[e] = off ? NULL : moe_fp8 ? f8[1][e % MOE_FP8] : up[d];
        d_on[e] = off ? NULL : moe_fp8 ? f8[2][e % MOE_FP8] : down[d];
    }
    if (moe_shared > 0) {
        if (moe_fp8) {
            sh[0] = tensor_fp8_new("shared.gate", moe_shared, H, GLM_SCALE_BLOCK, 128, 128,
                                   GLM_DTYPE_F32, 0);
            sh[1] = tensor_fp8_new("shared.up", moe_shared, H, GLM_SCALE_BLOCK, 128, 128,
                                   GLM_DTYPE_F32, 0);
            sh[2] = tensor_fp8_new("shared.down", H, moe_shared, GLM_SCALE_BLOCK, 128, 128,
                                   GLM_DTYPE_F32, 0);
        } else {
            sh[0] = tensor_new("shared.gate", GLM_DTYPE_BF16, 2, moe_shared, H,
                               sqrtf(3.0f / (float) H));
            sh[1] = tensor_new("shared.up", GLM_DTYPE_BF16, 2, moe_shared, H,
                               sqrtf(3.0f / (float) H));
            sh[2] = tensor_new("shared.down", GLM_DTYPE_BF16, 2, H, moe_shared,
                               sqrtf(3.0f / (float) moe_shared));
        }
    }
    m = (glm_moe_weights) { E, top_k, n_group, topk_group, norm, scaling, H, I, router, cbias,
                            g_on, u_on, d_on, sh[0], sh[1], sh[2] };
    snprintf(variant, sizeof(variant), "%s,distinct_matrices=%d,shared_inter=%d%s",
             moe_fp8 ? ",fp8_block128" : ",bf16",
             (moe_fp8 || moe_distinct) && E > MOE_FP8 ? MOE_FP8 : E, moe_shared,
             moe_ep ? ",ep_odd_experts_elsewhere" : "");
    glm_tensor_to_f32(cbias, 0, E, bias);

    for (ri = 0; ri < n_rows_list; ri++) {
        int rows = rows_list[ri], r, kept = 0, ties = 0;
        size_t n = (size_t) rows * H;
        float *x = rnd_floats(n, 1.0f), *out_c = xmalloc(n * sizeof(float)), *out_g;
        float *logits = xmalloc((size_t) rows * E * sizeof(float));
        float *dx = dev_put(gpu, x, n), *dout = dev_put(gpu, NULL, n);
        float *ref_kept = xmalloc(n * sizeof(float)), *got_kept = xmalloc(n * sizeof(float));
        char shape[192];

        cpu->moe(cpu, out_c, x, rows, &m);
        gpu->moe(gpu, dout, dx, rows, &m);
        out_g = dev_get(gpu, dout, n);
        cpu->matmul(cpu, logits, x, rows, router, NULL);
        for (r = 0; r < rows; r++) {
            if (route_margin(&m, logits + (size_t) r * E, bias) < MOE_TIE) {
                ties++;
                continue;
            }
            memcpy(ref_kept + (size_t) kept * H, out_c + (size_t) r * H, (size_t) H * sizeof(float));
            memcpy(got_kept + (size_t) kept * H, out_g + (size_t) r * H, (size_t) H * sizeof(float));
            kept++;
        }
        snprintf(shape, sizeof(shape), "%s,rows=%d,experts=%d,top=%d,groups=%d/%d,hidden=%d,"
                 "inter=%d%s,near_ties=%d", label, rows, E, top_k, topk_group, n_group, H, I,
                 variant, ties);
        compare("moe", shape, ref_kept, got_kept, (size_t) kept * H, TOL_MOE);
        gpu->free(gpu, dx);
        gpu->free(gpu, dout);
        free(x);
        free(out_c);
        free(out_g);
        free(logits);
        free(ref_kept);
        free(got_kept);
    }
    for (e = 0; e < E; e++) {
        free(gate[e]);
        free(up[e]);
        free(down[e]);
    }
    for (i = 0; moe_fp8 && i < MOE_FP8; i++) {
        tensor_fp8_free(f8[0][i]);
        tensor_fp8_free(f8[1][i]);
        tensor_fp8_free(f8[2][i]);
    }
    for (i = 0; i < 3; i++) {
        if (moe_fp8) {
            tensor_fp8_free(sh[i]);
        } else {
            tensor_free(sh[i]);
        }
    }
    free(gate);
    free(up);
    free(down);
    free(g_on);
    free(u_on);
    free(d_on);
    free(bias);
    tensor_free(pg);
    tensor_free(pu);
    tensor_free(pd);
    tensor_free(router);
    tensor_free(cbias);
    glm_backend_cuda_release_weights(gpu);
}

#ifdef GLM_EMU
/* One counter check: what the emulator counted since the reset against
 * what the backend's code asks for, counted by hand from kernels/. */
static void
counters_expect(const char *what, uint64_t launches, uint64_t gemms, uint64_t syncs,
    uint64_t allocs, uint64_t weight_bytes)
{
    glm_emu_counts k;
    int ok;

    glm_emu_counts_get(&k);
    ok = k.launches == launches && k.gemm_launches == gemms && k.host_syncs == syncs
         && k.allocs == allocs && k.weight_bytes == weight_bytes;
    printf("COUNTERS %s launches=%llu/%llu gemms=%llu/%llu host_syncs=%llu/%llu"
           " allocs=%llu/%llu weight_bytes=%llu/%llu %s\n", what,
           (unsigned long long) k.launches, (unsigned long long) launches,
           (unsigned long long) k.gemm_launches, (unsigned long long) gemms,
           (unsigned long long) k.host_syncs, (unsigned long long) syncs,
           (unsigned long long) k.allocs, (unsigned long long) allocs,
           (unsigned long long) k.weight_bytes, (unsigned long long) weight_bytes,
           ok ? "ok" : "FAIL");
    checks++;
    failures += !ok;
}

/*
 * The emulator's profile counters (`make gpu-profile`) on steps counted by
 * hand: an add is one kernel; a BF16 matmul is ONE cuBLASLt matmul of the
 * BF16 activations writing BF16, reading the weight once, at any number of
 * rows (no split of fp32 activations any more); with a bias, the matmul
 * writes fp32 scratch and one epilogue kernel adds the bias (read once) and
 * rounds; a download into pageable memory is a synchronous copy plus the
 * stream sync after it.
 */
static void
test_counters(void)
{
    const int N = 96, K = 64, big = 40;
    glm_tensor *w = tensor_new("counted", GLM_DTYPE_BF16, 2, N, K, 0.5f);
    glm_tensor *b = tensor_new("counted.bias", GLM_DTYPE_BF16, 1, N, 0, 0.5f);
    float *hx = rnd_floats((size_t) big * K, 1.0f), host[4];
    void *x = dev_put(gpu, hx, (size_t) big * K);
    void *y = dev_put(gpu, NULL, (size_t) big * N);
    uint64_t wbytes = (uint64_t) N * K * 2;

    /* warm-up: grows the GEMM's scratch; then the weights alone, marked */
    gpu->matmul(gpu, y, x, big, w, b);
    glm_backend_cuda_release_weights(gpu);
    glm_emu_weights_mark(1);
    gpu->matmul(gpu, y, x, 1, w, b);
    glm_emu_weights_mark(0);

    glm_emu_counts_reset();
    gpu->add(gpu, y, x, (size_t) K);
    counters_expect("add", 1, 0, 0, 0, 0);
    glm_emu_counts_reset();
    gpu->matmul(gpu, y, x, 1, w, NULL);
    counters_expect("matmul_rows=1", 1, 1, 0, 0, wbytes);
    glm_emu_counts_reset();
    gpu->matmul(gpu, y, x, big, w, NULL);
    counters_expect("matmul_rows=40", 1, 1, 0, 0, wbytes);
    glm_emu_counts_reset();
    gpu->matmul(gpu, y, x, big, w, b);
    /* weight bytes: only cuBLASLt reports its operands in this build (the
     * kernels' own loads are hooked in the profile build only) */
    counters_expect("matmul_rows=40_bias", 2, 1, 0, 0, wbytes);
    glm_emu_counts_reset();
    gpu->download(gpu, host, y, sizeof(host));
    counters_expect("download", 0, 0, 2, 0, 0);

    glm_backend_cuda_release_weights(gpu);
    gpu->free(gpu, x);
    gpu->free(gpu, y);
    free(hx);
    tensor_free(w);
    tensor_free(b);
}
#endif

/* ---- matmul_qkv: q, k and v of one input ------------------------------------------------ */

/*
 * The three projections against three matmuls on the oracle.  together:
 * the weights are row views of one [Nq + Nk + Nv, K] tensor, so on the
 * device they alias one copy side by side, as the upload places a layer's
 * q/k/v_proj, and the backend runs one GEMM plus the split epilogue
 * (counted: 2 launches, 1 GEMM, each weight byte read once); otherwise
 * three separate tensors and three matmuls.
 */
static void
test_matmul_qkv(const char *label, int rows, int Nq, int Nk, int Nv, int K, int bias,
    int together)
{
    int N = Nq + Nk + Nv, i;
    glm_tensor *all = together ? tensor_new("qkv_all", GLM_DTYPE_BF16, 2, N, K, 0.05f) : NULL;
    glm_tensor *w[3], *b[3] = { NULL, NULL, NULL };
    int n[3] = { Nq, Nk, Nv };
    float *x = rnd_floats((size_t) rows * K, 1.0f), *dx = dev_put(gpu, x, (size_t) rows * K);
    float *out_c[3], *dout[3], *got;
    char shape[160];
    const char *part[3] = { "matmul_qkv.q", "matmul_qkv.k", "matmul_qkv.v" };

    for (i = 0; i < 3; i++) {
        int64_t first = i == 0 ? 0 : i == 1 ? Nq : Nq + Nk;
        w[i] = together ? tensor_view(all, first * K, n[i], K)
                        : tensor_new("qkv_part", GLM_DTYPE_BF16, 2, n[i], K, 0.05f);
        if (bias) {
            b[i] = tensor_new("qkv_bias", GLM_DTYPE_BF16, 1, n[i], 0, 0.5f);
        }
        out_c[i] = xmalloc((size_t) rows * n[i] * sizeof(float));
        dout[i] = dev_put(gpu, NULL, (size_t) rows * n[i]);
    }
#ifdef GLM_EMU
    glm_backend_cuda_release_weights(gpu);
    glm_emu_weights_mark(1);
#endif
    if (together) {
        /* the whole weight on the device first: the views alias it */
        float *d1 = dev_put(gpu, NULL, (size_t) N);
        gpu->matmul(gpu, d1, dx, 1, all, NULL);
        gpu->free(gpu, d1);
    }
    cpu->matmul_qkv(cpu, out_c[0], out_c[1], out_c[2], x, rows, w[0], w[1], w[2], b[0], b[1],
                    b[2]);
    gpu->matmul_qkv(gpu, dout[0], dout[1], dout[2], dx, rows, w[0], w[1], w[2], b[0], b[1],
                    b[2]);
#ifdef GLM_EMU
    glm_emu_weights_mark(0);
    glm_emu_counts_reset();
    gpu->matmul_qkv(gpu, dout[0], dout[1], dout[2], dx, rows, w[0], w[1], w[2], b[0], b[1],
                    b[2]);
    snprintf(shape, sizeof(shape), "matmul_qkv_%s%s", together ? "together" : "apart",
             bias ? "_bias" : "");
    counters_expect(shape, together ? 2 : bias ? 6 : 3, together ? 1 : 3, 0, 0,
                    (uint64_t) N * K * 2);
#endif
    snprintf(shape, sizeof(shape), "%s,rows=%d,N=%d+%d+%d,K=%d,BF16%s,%s", label, rows, Nq, Nk,
             Nv, K, bias ? ",bias" : "", together ? "one_gemm" : "three_gemms");
    for (i = 0; i < 3; i++) {
        got = dev_get(gpu, dout[i], (size_t) rows * n[i]);
        compare(part[i], shape, out_c[i], got, (size_t) rows * n[i], TOL_BF16);
        free(got);
        gpu->free(gpu, dout[i]);
        free(out_c[i]);
        tensor_free(b[i]);
        if (together) {
            free(w[i]);
        } else {
            tensor_free(w[i]);
        }
    }
    glm_backend_cuda_release_weights(gpu);
    tensor_free(all);
    gpu->free(gpu, dx);
    free(x);
}

/* ---- the op suite ------------------------------------------------------------------------------- */

/* ---- gather_rows and sample (issue 14.3) ------------------------------------- */

static void
test_gather_rows(int n_src, int n, int dim)
{
    float *x = rnd_floats((size_t) n_src * dim, 1.0f), *ref = xmalloc((size_t) n * dim * 4);
    float *dx = dev_put(gpu, x, (size_t) n_src * dim), *dout = dev_put(gpu, NULL, (size_t) n * dim);
    int32_t *rows = xmalloc((size_t) n * sizeof(int32_t));
    float *got;
    char shape[64];
    int i;

    for (i = 0; i < n; i++) {
        rows[i] = (int32_t) (rnd64() % (uint64_t) n_src);
    }
    cpu->gather_rows(cpu, ref, x, rows, n, dim);
    gpu->gather_rows(gpu, dout, dx, rows, n, dim);
    got = dev_get(gpu, dout, (size_t) n * dim);
    snprintf(shape, sizeof(shape), "src=%d,rows=%d,dim=%d", n_src, n, dim);
    compare("gather_rows", shape, ref, got, (size_t) n * dim, TOL_EXACT);
    gpu->free(gpu, dx);
    gpu->free(gpu, dout);
    free(x);
    free(ref);
    free(rows);
    free(got);
}

/* the sampling twins choose the same ids: bit-identical arithmetic in a
 * fixed order (engine/backend/sample.h), so ids and top-logprob ids must
 * agree exactly; raw logprobs sum exp in double in another order */
#define TOL_LOGPROB 1e-5

enum { SMP_GREEDY, SMP_TEMP, SMP_TOPK, SMP_TOPP, SMP_MINP, SMP_ALL, SMP_PROCESS, SMP_TIES,
       SMP_FORCED, SMP_N };
static const char *const smp_names[SMP_N] = {
    "greedy", "temperature", "top_k", "top_p", "min_p", "top_k+top_p+min_p",
    "penalties+bias+bans+mask", "ties", "forced+rank"
};

static void
test_sample(int kind, int rows, int V)
{
    float *lg = xmalloc((size_t) rows * V * sizeof(float)), *dl = dev_put_f32(gpu, (size_t) rows * V);
    glm_sample_row *p = calloc((size_t) rows, sizeof(*p));
    glm_sample_out *oc = calloc((size_t) rows, sizeof(*oc)), *og = calloc((size_t) rows, sizeof(*og));
    int words = (V + 31) / 32, nl = 24, r, i, k, same = 0, same_top = 1, ok, drawn = 0;
    uint32_t *allowed = xmalloc((size_t) rows * words * sizeof(uint32_t));
    int32_t *lists = xmalloc((size_t) rows * 4 * nl * sizeof(int32_t));
    float *bias = xmalloc((size_t) rows * nl * sizeof(float));
    double max_lp = 0.0;
    char shape[96];

    for (r = 0; r < rows; r++) {
        glm_sample_row *q = &p[r];
        float scale = 2.0f + 6.0f * (float) (rnd64() % 100) / 100.0f;

        for (i = 0; i < V; i++) {
            lg[(size_t) r * V + i] = kind == SMP_TIES ? (float) (int) (rndu() * 3.0f)
                                                      : rndu() * scale;
        }
        q->logit_row = rows - 1 - r;       /* rows read out of order */
        q->temperature = kind == SMP_GREEDY ? 0.0f : 0.3f + (float) (rnd64() % 150) / 100.0f;
        q->top_p = 1.0f;
        q->repetition_penalty = 1.0f;
        q->seed = rnd64();
        q->counter = rnd64() % 1000;
        q->forced = -1;
        /* greedy and min_p rows ask for no logprobs: the ids-only download */
        q->logprobs = kind != SMP_GREEDY && kind != SMP_MINP;
        q->n_top = q->logprobs ? (int) (rnd64() % 21) : 0;
        if (kind == SMP_TOPK || kind == SMP_ALL || kind == SMP_TIES) {
            q->top_k = 1 + (int) (rnd64() % 60);
        }
        if (kind == SMP_TOPP || kind == SMP_ALL || kind == SMP_TIES) {
            q->top_p = 0.05f + (float) (rnd64() % 90) / 100.0f;
        }
        if (kind == SMP_MINP || kind == SMP_ALL) {
            q->min_p = 0.01f + (float) (rnd64() % 30) / 100.0f;
        }
        if (kind == SMP_PROCESS) {
            int32_t *l = lists + (size_t) r * 4 * nl;
            q->presence_penalty = 0.5f;
            q->frequency_penalty = 0.3f;
            q->repetition_penalty = 1.3f;
            for (k = 0; k < nl; k++) {
                l[k] = (int32_t) (rnd64() % (uint64_t) V);
                l[nl + k] = (int32_t) (rnd64() % 3);
                l[2 * nl + k] = (int32_t) (rnd64() % (uint64_t) V);
                l[3 * nl + k] = (int32_t) (rnd64() % (uint64_t) V);
                bias[(size_t) r * nl + k] = rndu() * 10.0f;
            }
            /* seen ids are distinct; a repeated bias id adds twice */
            for (k = 1; k < nl; k++) {
                l[k] = (l[k - 1] + 1 + l[k] % 7) % V;
            }
            q->seen_ids = l;
            q->seen_counts = l + nl;
            q->n_seen = nl;
            q->bias_ids = l + 2 * nl;
            q->bias = bias + (size_t) r * nl;
            q->n_bias = nl;
            q->banned = l + 3 * nl;
            q->n_banned = nl / 2;
            for (i = 0; i < words; i++) {
                allowed[(size_t) r * words + i] = (uint32_t) rnd64() | (uint32_t) rnd64();
            }
            q->allowed = allowed + (size_t) r * words;
            q->top_k = r % 2 ? 40 : 0;
        }
        if (kind == SMP_FORCED) {
            q->forced = (int32_t) (rnd64() % (uint64_t) V);
            q->rank = 1;
            if (r % 2) {
                q->top_given = lists + (size_t) r * 4 * nl;
                q->n_given = 5;
                for (k = 0; k < 5; k++) {
                    lists[(size_t) r * 4 * nl + k] = (int32_t) (rnd64() % (uint64_t) V);
                }
            }
        }
    }
    gpu->upload(gpu, dl, lg, (size_t) rows * V * sizeof(float));
    cpu->sample(cpu, oc, lg, rows, V, p);
    gpu->sample(gpu, og, dl, rows, V, p);
    for (r = 0; r < rows; r++) {
        const float *l = lg + (size_t) p[r].logit_row * V;
        int best = 0;
        for (i = 1; i < V; i++) {
            best = l[i] > l[best] ? i : best;
        }
        drawn += oc[r].token != best;   /* not the raw argmax: the draw is tested */
        same += oc[r].token == og[r].token;
        same_top &= oc[r].n_top == og[r].n_top && oc[r].rank == og[r].rank;
        for (k = 0; k < oc[r].n_top; k++) {
            double d = fabs((double) oc[r].top_logprobs[k] - og[r].top_logprobs[k]);
            same_top &= oc[r].top_ids[k] == og[r].top_ids[k];
            max_lp = d > max_lp ? d : max_lp;
        }
        {
            double d = fabs((double) oc[r].logprob - og[r].logprob);
            max_lp = d > max_lp || d != d ? d : max_lp;
        }
    }
    ok = same == rows && same_top && max_lp <= TOL_LOGPROB;
    snprintf(shape, sizeof(shape), "rows=%d,vocab=%d", rows, V);
    printf("OP sample:%s shape=%s ids=%d/%d not_argmax=%d top_ids_and_ranks=%s"
           " max_abs_logprob=%.3g tol=%g %s\n", smp_names[kind], shape, same, rows, drawn,
           same_top ? "same" : "DIFFER", max_lp, TOL_LOGPROB, ok ? "ok" : "FAIL");
    fflush(stdout);
    checks++;
    failures += !ok;
    gpu->free(gpu, dl);
    free(lg);
    free(p);
    free(oc);
    free(og);
    free(allowed);
    free(lists);
    free(bias);
}

static void run_tail_ops(void);

#ifdef GLM_EMU
/* The moe op, counted: five launches (route with its GEMM, align,
 * gate_up, down, combine) whatever the routing, no host sync, no
 * allocation once its scratch and expert table exist (the first call). */
static void
test_moe_counters(void)
{
    const int E = 16, K = 4, H = 64, I = 32, rows = 3;
    glm_tensor *router = tensor_new("router", GLM_DTYPE_BF16, 2, E, H, 0.5f);
    glm_tensor *cbias = tensor_new("bias", GLM_DTYPE_F32, 1, E, 0, 0.1f);
    glm_tensor *w[3][16], *sh[3];
    float *hx = rnd_floats((size_t) rows * H, 1.0f);
    void *x = dev_put(gpu, hx, (size_t) rows * H), *y = dev_put(gpu, NULL, (size_t) rows * H);
    glm_moe_weights m;
    int e, i;

    for (e = 0; e < E; e++) {
        w[0][e] = tensor_new("gate", GLM_DTYPE_BF16, 2, I, H, 0.2f);
        w[1][e] = tensor_new("up", GLM_DTYPE_BF16, 2, I, H, 0.2f);
        w[2][e] = tensor_new("down", GLM_DTYPE_BF16, 2, H, I, 0.2f);
    }
    sh[0] = tensor_new("shared.gate", GLM_DTYPE_BF16, 2, I, H, 0.2f);
    sh[1] = tensor_new("shared.up", GLM_DTYPE_BF16, 2, I, H, 0.2f);
    sh[2] = tensor_new("shared.down", GLM_DTYPE_BF16, 2, H, I, 0.2f);
    m = (glm_moe_weights) { E, K, 1, 1, 1, 1.0f, H, I, router, cbias, w[0], w[1], w[2],
                            sh[0], sh[1], sh[2] };
    gpu->moe(gpu, y, x, rows, &m);          /* warm-up: table and scratch */
    glm_emu_counts_reset();
    gpu->moe(gpu, y, x, rows, &m);
    counters_expect("moe_rows=3_shared", 5, 0, 0, 0, 0);
    glm_backend_cuda_release_weights(gpu);
    gpu->free(gpu, x);
    gpu->free(gpu, y);
    free(hx);
    for (i = 0; i < 3; i++) {
        for (e = 0; e < E; e++) {
            tensor_free(w[i][e]);
        }
        tensor_free(sh[i]);
    }
    tensor_free(router);
    tensor_free(cbias);
}
#endif

/* the MoE op's checks (also alone: test_ops moe [--quick]) */
static void
run_moe(void)
{
    /* MoE: GLM-4.5-Air's router and experts; a small config with enough
     * tokens per expert for several row tiles of the grouped GEMMs;
     * GLM-4.5's group-limited routing with odd sizes */
    if (!quick) {
        int rows[] = { 1, 7, 64, 300 };
        test_moe("air", 128, 8, 1, 1, 1, 1.0f, 4096, 1408, rows, 4);
    }
    {
        int rows_many[] = { 200 }, rows_few[] = { 1, 7 }, rows_air[] = { 2 };
#ifdef GLM_EMU
        test_moe_counters();
#endif
        test_moe("busy", 8, 2, 1, 1, 1, 1.0f, 256, 96, rows_many, 1);
        test_moe("grouped", 16, 4, 4, 2, 0, 2.5f, 77, 33, rows_few, 2);

        /* the routing alone: exact ids (ties included) and weights */
        test_moe_route("air", 128, 8, 1, 1, 1, 1.0f, quick ? 1024 : 4096, 16, 0);
        test_moe_route("air", 128, 8, 1, 1, 1, 1.0f, 64, 64, 1);
        test_moe_route("glm45", 160, 8, 8, 4, 1, 2.5f, 96, 33, 0);
        test_moe_route("grouped", 16, 4, 4, 2, 0, 2.5f, 77, 64, 1);

        /* the grouped GEMMs with the shared expert fused, BF16 and FP8
         * block-scaled experts, expert parallel (NULL experts) */
        moe_shared = 33 + 13;
        test_moe("grouped", 16, 4, 4, 2, 0, 2.5f, 77, 33, rows_few, 2);
        moe_ep = 1;
        test_moe("grouped", 16, 4, 4, 2, 0, 2.5f, 77, 33, rows_few, 2);
        moe_ep = 0;
        moe_fp8 = 1;
        moe_shared = 160;
        test_moe("fp8", 8, 2, 1, 1, 1, 1.0f, 300, 130, rows_few, 2);
        moe_shared = 1408;
        if (!quick) {
            /* GLM-4.5-Air's widths: minutes in the emulator, so not in
             * make test's --quick run */
            test_moe("air", 128, 8, 1, 1, 1, 1.0f, 4096, 1408, rows_air, 1);
            moe_fp8 = 0;
            moe_distinct = MOE_FP8;
            test_moe("air", 128, 8, 1, 1, 1, 1.0f, 4096, 1408, rows_air, 1);
            moe_distinct = 0;
        }
        moe_fp8 = 0;
        moe_shared = 0;
    }
}

static int
run_ops(void)
{
    glm_backend *simt, *w8a16;
    glm_err err;

#ifdef GLM_EMU
    test_counters();
#endif
    /* embed (and the lm_head GEMM on the same table) */
    if (!quick) {
        glm_tensor *table = tensor_new("embed_tokens", GLM_DTYPE_BF16, 2, 151552, 4096,
                                       0.05f);
        int rows[] = { 1, 7 };
        test_embed(table);
        test_matmul_with(gpu, "lm_head", rows[0], table, NULL);
        test_matmul_with(gpu, "lm_head", rows[1], table, NULL);
        tensor_free(table);
        glm_backend_cuda_release_weights(gpu);
    }
    {
        glm_tensor *t1 = tensor_new("embed_small", GLM_DTYPE_BF16, 2, 3072, 64, 0.5f);
        glm_tensor *t2 = tensor_new("embed_f32", GLM_DTYPE_F32, 2, 1000, 77, 0.5f);
        test_embed(t1);
        test_embed(t2);
        tensor_free(t1);
        tensor_free(t2);
    }

    /* rmsnorm: hidden rows, per-head q/k-norm rows, odd dims, in place */
    if (!quick) {
        test_rmsnorm(1, 4096, 0);
        test_rmsnorm(64, 4096, 0);
        test_rmsnorm(7 * 96, 128, 0);
    }
    test_rmsnorm(7, 4096, 0);
    test_rmsnorm(7, 4096, 1);
    test_rmsnorm(33, 77, 0);
    test_rmsnorm(1, 1, 0);
    test_add_rmsnorm(7, 4096);
    test_gate_up_swiglu(1, 352, 256, GLM_DTYPE_BF16);
    test_gate_up_swiglu(7, 100, 77, GLM_DTYPE_BF16);
    if (!quick) {
        test_gate_up_swiglu(64, 1408, 4096, GLM_DTYPE_BF16);
    }
    test_add_rmsnorm(33, 77);

    /* matmul: GLM-4.5-Air projections (rows on both sides of the stacked /
     * two-pass switch at 32), fp32 weights, odd sides (cuBLASLt or not) */
    if (!quick) {
        int r_small[] = { 1, 7, 100 }, r_kv[] = { 1, 33 }, r7[] = { 7 }, r40[] = { 40 };
        test_matmul(gpu, "q_proj", r_small, 3, 12288, 4096, GLM_DTYPE_BF16, 1);
        test_matmul(gpu, "k_proj", r_kv, 2, 1024, 4096, GLM_DTYPE_BF16, 1);
        test_matmul(gpu, "o_proj", r7, 1, 4096, 12288, GLM_DTYPE_BF16, 0);
        test_matmul(gpu, "dense_gate", r7, 1, 10944, 4096, GLM_DTYPE_BF16, 0);
        test_matmul(gpu, "dense_down", r40, 1, 4096, 10944, GLM_DTYPE_BF16, 0);
        test_matmul(gpu, "router", r7, 1, 128, 4096, GLM_DTYPE_BF16, 0);
        test_matmul(gpu, "router", r7, 1, 128, 4096, GLM_DTYPE_F32, 0);
        glm_backend_cuda_release_weights(gpu);
    }
    {
        int r_odd[] = { 1, 7, 45 }, r1[] = { 1 }, r100[] = { 100 };
        test_matmul(gpu, "odd", r_odd, 3, 33, 77, GLM_DTYPE_BF16, 1);
        test_matmul(gpu, "odd", r1, 1, 1, 33, GLM_DTYPE_BF16, 0);
        test_matmul(gpu, "odd", r_odd, 3, 77, 33, GLM_DTYPE_F32, 1);
        test_matmul(gpu, "odd_k", r100, 1, 50, 4097, GLM_DTYPE_BF16, 1);
        test_matmul(gpu, "tiny", r_odd, 3, 128, 64, GLM_DTYPE_BF16, 1);
    }
    /* q, k and v as one GEMM (weights side by side) or three: GLM-4.5-Air's
     * widths, odd ones */
    test_matmul_qkv("air", 1, 12288, 1024, 1024, 4096, 1, 1);
    test_matmul_qkv("odd", 7, 96, 33, 33, 77, 1, 1);
    test_matmul_qkv("odd", 45, 96, 33, 33, 77, 0, 1);
    test_matmul_qkv("odd", 7, 96, 33, 33, 77, 1, 0);
    if (!quick) {
        test_matmul_qkv("air", 7, 12288, 1024, 1024, 4096, 1, 1);
        test_matmul_qkv("air", 40, 12288, 1024, 1024, 4096, 1, 1);
    }
    /* FP8 E4M3 weights, read as stored: per tensor, per channel, 128x128
     * blocks (GLM-4.5-FP8's layout, with a K that ends inside a block) and
     * the fixtures' odd 48x40 blocks; BF16 scales rounded (transformers'
     * dense path) or exact (its expert path) */
    {
        int r_small[] = { 1, 7 }, r33[] = { 33 };
        test_matmul_fp8(gpu, "tensor", r_small, 2, 77, 200, GLM_SCALE_TENSOR, 0, 0,
                        GLM_DTYPE_F32, 0);
        test_matmul_fp8(gpu, "channel", r_small, 2, 96, 64, GLM_SCALE_CHANNEL, 0, 0,
                        GLM_DTYPE_BF16, 0);
        test_matmul_fp8(gpu, "channel", r33, 1, 96, 64, GLM_SCALE_CHANNEL, 0, 0,
                        GLM_DTYPE_BF16, 1);
        test_matmul_fp8(gpu, "block128", r_small, 2, 256, 300, GLM_SCALE_BLOCK, 128, 128,
                        GLM_DTYPE_F32, 0);
        test_matmul_fp8(gpu, "block48x40", r_small, 2, 100, 90, GLM_SCALE_BLOCK, 48, 40,
                        GLM_DTYPE_BF16, 0);
        /* FP8 x FP8 through cuBLASLt: K multiple of 16 (a partial last
         * 128-block at 400), per-tensor, per-channel, 128x128 blocks with
         * BF16 and F32 scales, the fixtures' hidden 64 */
        test_matmul_fp8(gpu, "tensor", r_small, 2, 80, 208, GLM_SCALE_TENSOR, 0, 0,
                        GLM_DTYPE_F32, 0);
        test_matmul_fp8(gpu, "channel", r_small, 2, 96, 64, GLM_SCALE_CHANNEL, 0, 0,
                        GLM_DTYPE_F32, 0);
        test_matmul_fp8(gpu, "block128", r_small, 2, 264, 400, GLM_SCALE_BLOCK, 128, 128,
                        GLM_DTYPE_BF16, 0);
        test_matmul_fp8(gpu, "block128", r33, 1, 256, 512, GLM_SCALE_BLOCK, 128, 128,
                        GLM_DTYPE_F32, 0);
        if (!quick) {
            int r_big[] = { 1, 40 };
            test_matmul_fp8(gpu, "q_proj", r_big, 2, 12288, 4096, GLM_SCALE_BLOCK, 128, 128,
                            GLM_DTYPE_F32, 0);
            test_matmul_fp8(gpu, "expert_gate", r_big, 2, 1408, 4096, GLM_SCALE_CHANNEL,
                            0, 0, GLM_DTYPE_BF16, 1);
        }
        glm_backend_cuda_release_weights(gpu);
    }

    /* the FP8 activation quantizer: per token, per 1x128 group (a last
     * group cut short), both scale layouts */
    test_quant_act(5, 300, 128, 8);
    test_quant_act(5, 300, 128, 0);
    test_quant_act(7, 64, 64, 8);
    test_quant_act(3, 4096, 0, 4);

    /* the CUDA-core GEMM that stands in where cuBLASLt declines */
    setenv("GLM_CUDA_GEMM", "simt", 1);
    simt = glm_backend_cuda_create(0, &err);
    unsetenv("GLM_CUDA_GEMM");
    if (simt == NULL) {
        printf("OP matmul[simt] shape=- max_abs=- max_rel=- tol=- FAIL (%s)\n", err.msg);
        failures++;
    } else {
        int r_odd[] = { 1, 7, 45 }, r_kv[] = { 7, 40 };
        test_matmul(simt, "odd", r_odd, 3, 33, 77, GLM_DTYPE_BF16, 1);
        test_matmul(simt, "odd", r_odd, 3, 77, 33, GLM_DTYPE_F32, 0);
        if (!quick) {
            test_matmul(simt, "k_proj", r_kv, 2, 1024, 4096, GLM_DTYPE_BF16, 1);
        }
        simt->destroy(simt);
    }
    /* GLM_CUDA_FP8=w8a16: FP8 weights against BF16 activations (the
     * CUDA-core kernel) at the BF16 tolerance, where the default backend
     * takes FP8 x FP8 */
    setenv("GLM_CUDA_FP8", "w8a16", 1);
    w8a16 = glm_backend_cuda_create(0, &err);
    unsetenv("GLM_CUDA_FP8");
    if (w8a16 == NULL) {
        printf("OP matmul[w8a16] shape=- max_abs=- max_rel=- tol=- FAIL (%s)\n", err.msg);
        failures++;
    } else {
        int r_small[] = { 1, 7 };
        test_matmul_fp8(w8a16, "w8a16,block128", r_small, 2, 264, 400, GLM_SCALE_BLOCK, 128,
                        128, GLM_DTYPE_BF16, 0);
        glm_backend_cuda_release_weights(w8a16);
        w8a16->destroy(w8a16);
    }

    /* rope: text (partial, theta 1e6), GLM-4.5V's M-RoPE, the vision tower's
     * full-width 2-D rope, odd sizes */
    {
        int mrope[3] = { 8, 12, 12 }, vis[3] = { 0, 32, 32 }, tiny[3] = { 2, 3, 3 };
        test_rope("text_q", 7, 96, 128, 64, 1e6f, NULL, 131072);
        test_rope("text_k", 7, 8, 128, 64, 1e6f, NULL, 131072);
        test_rope("text_1", 1, 96, 128, 64, 1e6f, NULL, 4096);
        test_rope("mrope", 7, 96, 128, 64, 1e4f, mrope, 8192);
        test_rope("vision", 50, 12, 128, 128, 1e4f, vis, 64);
        test_rope("odd", 5, 3, 34, 34, 1e4f, NULL, 1000);
        test_rope("odd", 5, 2, 80, 40, 1e4f, NULL, 1000);
        test_rope("mrope_tiny", 7, 4, 32, 16, 1e4f, tiny, 100);
    }

    /* paged attention: decode split and unsplit, prefill tiles, chunked
     * prefill over a cached prefix, mixed batches, odd head sizes */
    {
        seq_spec dec_long[] = { { 0, 1 }, { 16, 1 }, { 299, 1 }, { 2048, 1 }, { 5000, 1 } };
        seq_spec dec_short[] = { { 5, 1 }, { 100, 1 }, { 400, 1 } };
        seq_spec pre7[] = { { 0, 7 } };
        seq_spec chunk[] = { { 40, 37 } };
        seq_spec mixed[] = { { 100, 70 }, { 1000, 1 }, { 0, 1 }, { 3, 2 } };
        seq_spec tiny[] = { { 0, 5 }, { 9, 1 }, { 30, 3 } };
        seq_spec odd[] = { { 0, 9 }, { 13, 1 }, { 600, 1 } };
        seq_spec wide[] = { { 700, 1 }, { 20, 3 } };
        seq_spec split_small[] = { { 0, 1 }, { 1500, 1 }, { 700, 1 }, { 511, 1 } };

        if (!quick) {
            test_attention("decode_split", 96, 8, 128, 16, dec_long, 5);
            test_attention("mixed", 96, 8, 128, 16, mixed, 4);
        }
        test_attention("decode", 96, 8, 128, 16, dec_short, 3);
        test_attention("prefill", 96, 8, 128, 16, pre7, 1);
        test_attention("chunked", 96, 8, 128, 16, chunk, 1);
        test_attention("tiny", 4, 2, 32, 4, tiny, 3);
        test_attention("odd", 6, 3, 80, 5, odd, 3);
        test_attention("head256", 2, 1, 256, 16, wide, 2);
        test_attention("decode_split_small", 4, 2, 32, 16, split_small, 4);

        /* the BF16 and FP8 E4M3 caches (per-layer scales): the same kernels
         * read them; the oracle's pool holds what the GPU's keeps */
        for (kv_dtype = GLM_KV_BF16; kv_dtype <= GLM_KV_FP8_E4M3; kv_dtype++) {
            test_attention("decode", 96, 8, 128, 16, dec_short, 3);
            test_attention("chunked", 96, 8, 128, 16, chunk, 1);
            test_attention("odd", 6, 3, 80, 5, odd, 3);
            test_attention("decode_split_small", 4, 2, 32, 16, split_small, 4);
        }
        kv_dtype = GLM_KV_F32;

        /* the GQA split-KV decode kernel: one sequence far past several
         * splits and chunks; a batch of lengths from 1 to several splits;
         * each KV dtype */
        {
            /* the emulator pays for filling the cached prefix (a block of
             * fibers per row): --quick keeps the contexts short */
            seq_spec b1_long[] = { { 2999, 1 } }, b1[] = { { 1100, 1 } };
            seq_spec batch[] = { { 0, 1 }, { 700, 1 }, { 31, 1 }, { 1300, 1 }, { 257, 1 } };
            seq_spec batch_short[] = { { 0, 1 }, { 300, 1 }, { 31, 1 }, { 600, 1 }, { 257, 1 } };
            for (kv_dtype = GLM_KV_F32; kv_dtype <= GLM_KV_FP8_E4M3; kv_dtype++) {
                if (!quick) {
                    test_attention("decode_b1", 96, 8, 128, 16, b1_long, 1);
                    test_attention("decode_batch", 96, 8, 128, 16, batch, 5);
                } else if (kv_dtype != GLM_KV_F32) {
                    test_attention("decode_b1", 96, 8, 128, 16, b1, 1);
                    test_attention("decode_batch", 96, 8, 128, 16, batch_short, 5);
                }
            }
            kv_dtype = GLM_KV_F32;
            test_attention("decode_group20", 40, 2, 64, 16, batch_short, 5);
        }
        test_decode_splits(1, 96, 8, 1);
        test_decode_splits(1, 96, 8, 600);
        test_decode_splits(1, 96, 8, 3000);
        test_decode_splits(1, 96, 8, 32768);
        test_decode_splits(5, 96, 8, 1300);
        test_decode_splits(64, 96, 8, 32768);
        test_decode_splits(256, 96, 8, 131072);
    }

    /* the fused attention prep: q/k norm (GLM-4.5) or not (GLM-4.5V),
     * partial rope or M-RoPE, into each KV dtype */
    {
        int mrope[3] = { 8, 12, 12 }, tiny[3] = { 2, 3, 3 };
        for (kv_dtype = GLM_KV_F32; kv_dtype <= GLM_KV_FP8_E4M3; kv_dtype++) {
            test_attn_prep("air", 3, 96, 8, 128, 64, 1, NULL);
            test_attn_prep("glm45v", 2, 96, 8, 128, 64, 0, mrope);
        }
        kv_dtype = GLM_KV_F32;
        test_attn_prep("batch", 9, 96, 8, 128, 64, 1, NULL);
        test_attn_prep("odd", 4, 6, 3, 80, 40, 1, NULL);
        test_attn_prep("mrope_tiny", 5, 4, 2, 32, 16, 1, tiny);
    }

    /* elementwise */
    test_elementwise(1);
    test_elementwise((size_t) 7 * 1408);
    if (!quick) {
        test_elementwise((size_t) 64 * 10944 + 3);
    }

    /* vision ops */
    test_layernorm(7, 4096);
    test_layernorm(33, 77);
    test_layernorm(1, 1536);
    {
        int32_t cu_big[] = { 0, 16, 80, 87, 88, 600 }, cu_tiny[] = { 0, 4, 20 };
        int32_t cu_odd[] = { 0, 33, 33, 34 };
        if (!quick) {
            test_segments(12, 128, 1536, cu_big, 5);
        }
        test_segments(2, 16, 32, cu_tiny, 2);
        test_segments(3, 40, 130, cu_odd, 3);
    }
    test_group_transpose(150, 4, 1536);
    test_group_transpose(7, 4, 77);
    test_group_transpose(3, 1, 5);

    run_moe();

    run_tail_ops();
    return 0;
}

/* the step's tail: the logits rows, then a token per row (ids identical
 * to the oracle's for every warper combination); `test_ops tail` alone */
static void
run_tail_ops(void)
{
    test_gather_rows(64, 7, 4096);
    test_gather_rows(5, 5, 77);
    {
        int kind;
        for (kind = 0; kind < SMP_N; kind++) {
            test_sample(kind, 8, 2053);
        }
        if (!quick) {
            for (kind = 0; kind < SMP_N; kind++) {
                test_sample(kind, 8, 151552);
            }
        }
    }
}

/* ---- fixtures -------------------------------------------------------------------------------------- */

static void
on_segv(int sig)
{
    static const char msg[] =
        "test_ops: SIGSEGV in a fixture run.  If it is the host reading device memory:"
        " glm_model_forward (engine/model/model.c) must copy the logit rows through the backend"
        " (be->upload between two backend pointers), not memcpy; see kernels/README.md\n";
    ssize_t w = write(2, msg, sizeof(msg) - 1);

    (void) w;
    (void) sig;
    _exit(3);
}

static yajl_val
jget(yajl_val obj, const char *key)
{
    const char *path[] = { key, NULL };

    return obj ? yajl_tree_get(obj, path, yajl_t_any) : NULL;
}

static double
max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    size_t i;

    for (i = 0; i < n; i++) {
        double d = fabs((double) a[i] - (double) b[i]);
        if (!(d <= m)) {
            m = d;              /* also NaN: caught below as a failure */
        }
    }
    return m;
}

static double
max_abs(const float *a, size_t n)
{
    double m = 0.0;
    size_t i;

    for (i = 0; i < n; i++) {
        m = fabs((double) a[i]) > m ? fabs((double) a[i]) : m;
    }
    return m;
}

/*
 * Whole models are judged row by row, as make kv-dtype-check judges a
 * narrow KV cache: each compared logit row (every prompt position from one
 * step and from 3-token chunks, every teacher-forced decode step) gives
 * max |gpu - cpu| over the row's own scale (max |cpu|).  The rounding error
 * of the activations moves every row a little: the median row is held
 * tight.  These tiny random MoE models route on near-ties, and one rounding
 * that flips an expert choice moves a whole row: the worst row is held
 * loosely.  Decode is teacher forced (the GPU is fed the oracle's greedy
 * tokens, so every step compares the same context); a step must pick the
 * oracle's token where the oracle's top-1 margin is clear of such a swing,
 * and the overall greedy agreement is printed.
 */
typedef struct {
    const char *act;            /* "bf16" or "fp8": the activations the GEMMs take */
    double      median_tol, worst_tol, clear_margin;
} fixture_tols;

/* BF16 activations: one BF16 rounding per op is ~2^-9 relative; measured
 * in emulation (glm45-air-tiny, every prompt), the median row moves
 * 4.6e-3..6.9e-3 of its scale, the worst (routing flips) 0.09.  FP8 x FP8
 * GEMMs (activations with 3 mantissa bits, up to 2^-4 relative each, 16x
 * BF16's): medians 3.4e-2..5.7e-2, worst 0.18 (glm45-air-tiny-fp8-channel,
 * every prompt; the other FP8 fixtures' --quick prompt alike).  Bounds
 * ~2-3x the worst measured; a wrong layout, scale or row moves every row
 * by O(1).  A top-1 margin moves by at most twice a row's max diff, and
 * only a routing flip comes near that; measured, greedy picks part only
 * where the oracle's margin is under 0.05 of the row scale: clear
 * margins 0.15 and 0.25, 3-5x that. */
static const fixture_tols fixture_tols_bf16 = { "bf16", 1.5e-2, 0.25, 0.15 };
static const fixture_tols fixture_tols_fp8  = { "fp8",  0.12,   0.4,  0.25 };

typedef struct {
    double *rel;                /* each compared row's max |diff| / max |cpu| */
    size_t  n, cap;
    double  worst;
    int     greedy_ok, greedy_n, clear_ok, clear_n;
} row_tally;

static void
tally_row(row_tally *t, const float *cpu_row, const float *gpu_row, int V)
{
    double d = max_abs_diff(cpu_row, gpu_row, (size_t) V), sc = max_abs(cpu_row, (size_t) V);
    double r = sc > 0 ? d / sc : d;

    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 256;
        t->rel = realloc(t->rel, t->cap * sizeof(double));
        if (t->rel == NULL) {
            die("out of host memory");
        }
    }
    if (!(r <= t->worst)) {
        t->worst = r;           /* NaN too: fails below */
    }
    t->rel[t->n++] = r;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;

    return x < y ? -1 : x > y;
}

static double
tally_median(row_tally *t)
{
    if (t->n == 0) {
        return 0.0;
    }
    qsort(t->rel, t->n, sizeof(double), cmp_double);
    return t->rel[t->n / 2];
}

/* top-1 minus top-2 of a row, over the row's scale */
static double
row_margin(const float *row, int V)
{
    float a = -INFINITY, b = -INFINITY;
    double sc = max_abs(row, (size_t) V);
    int i;

    for (i = 0; i < V; i++) {
        if (row[i] > a) {
            b = a;
            a = row[i];
        } else if (row[i] > b) {
            b = row[i];
        }
    }
    return sc > 0 ? ((double) a - (double) b) / sc : 0.0;
}

static int
fixture_prompt(const char *name, int pi, glm_model *mc, glm_model *mg, const int32_t *ids,
    int n, const fixture_tols *tol)
{
    int V = mc->cfg.vocab_size, s, p, ok, steps = quick ? 4 : GREEDY_N;
    float *lc = xmalloc((size_t) n * V * sizeof(float)), *lg = xmalloc((size_t) n * V * sizeof(float));
    float *steps_c = xmalloc((size_t) steps * V * sizeof(float));
    int32_t *ids_c = xmalloc((size_t) steps * sizeof(int32_t));
    row_tally t;
    glm_session sc, sg;
    glm_err err;
    double median;

    memset(&t, 0, sizeof(t));
    /* the oracle: every position, then its greedy continuation */
    if (glm_session_init(&sc, mc, n + steps + 1, 16, &err) != 0
        || glm_session_feed(&sc, ids, n, 0, lc, 1, &err) != 0)
    {
        goto fail;
    }
    memcpy(steps_c, lc + (size_t) (n - 1) * V, (size_t) V * sizeof(float));
    for (s = 0; s < steps; s++) {
        ids_c[s] = glm_argmax(steps_c + (size_t) s * V, V);
        if (s + 1 < steps
            && glm_session_feed(&sc, &ids_c[s], 1, 0, steps_c + (size_t) (s + 1) * V, 0, &err)
                   != 0)
        {
            glm_session_free(&sc);
            goto fail;
        }
    }
    glm_session_free(&sc);

    /* the GPU in 3-token chunks: every position */
    if (glm_session_init(&sg, mg, n + steps + 1, 4, &err) != 0
        || glm_session_feed(&sg, ids, n, 3, lg, 1, &err) != 0)
    {
        goto fail;
    }
    glm_session_free(&sg);
    for (p = 0; p < n; p++) {
        tally_row(&t, lc + (size_t) p * V, lg + (size_t) p * V, V);
    }
    /* the GPU in one step, then teacher-forced decode on the oracle's tokens */
    if (glm_session_init(&sg, mg, n + steps + 1, 16, &err) != 0
        || glm_session_feed(&sg, ids, n, 0, lg, 1, &err) != 0)
    {
        goto fail;
    }
    for (p = 0; p < n; p++) {
        tally_row(&t, lc + (size_t) p * V, lg + (size_t) p * V, V);
    }
    memmove(lg, lg + (size_t) (n - 1) * V, (size_t) V * sizeof(float));
    for (s = 0; s < steps; s++) {
        const float *base = steps_c + (size_t) s * V;
        int same = glm_argmax(lg, V) == ids_c[s];

        tally_row(&t, base, lg, V);
        t.greedy_ok += same;
        t.greedy_n++;
        if (row_margin(base, V) > tol->clear_margin) {
            t.clear_ok += same;
            t.clear_n++;
        } else if (!same) {
            fprintf(stderr, "FIXTURE %s prompt=%d: decode step %d: near tie (oracle margin"
                    " %.3g of the row scale): cpu %d, gpu %d\n", name, pi, s,
                    row_margin(base, V), ids_c[s], glm_argmax(lg, V));
        }
        if (s + 1 < steps && glm_session_feed(&sg, &ids_c[s], 1, 0, lg, 0, &err) != 0) {
            glm_session_free(&sg);
            goto fail;
        }
    }
    glm_session_free(&sg);
    median = tally_median(&t);
    ok = median <= tol->median_tol && t.worst <= tol->worst_tol && t.clear_ok == t.clear_n;
    printf("FIXTURE %s prompt=%d tokens=%d act=%s rows=%zu median_row_rel=%.3g tol=%g"
           " worst_row_rel=%.3g tol=%g greedy=%d/%d clear_steps=%d/%d (margin>%g) %s\n",
           name, pi, n, tol->act, t.n, median, tol->median_tol, t.worst, tol->worst_tol,
           t.greedy_ok, t.greedy_n, t.clear_ok, t.clear_n, tol->clear_margin,
           ok ? "ok" : "FAIL");
    fflush(stdout);
    checks++;
    failures += !ok;
    free(t.rel);
    free(lc);
    free(lg);
    free(steps_c);
    free(ids_c);
    return ok;
fail:
    printf("FIXTURE %s prompt=%d error: %s FAIL\n", name, pi, err.msg);
    failures++;
    free(t.rel);
    free(lc);
    free(lg);
    free(steps_c);
    free(ids_c);
    return 0;
}

/* The MTP layer's logits at every position of a prompt on one backend: the
 * main model's forward keeps its final-normed rows, then the MTP layer runs
 * over the prompt shifted by one (`shifted`, its last id any token). */
static int
mtp_logits(glm_model *m, const int32_t *ids, const int32_t *shifted, int n, float *out,
    glm_err *err)
{
    int nb = (n + 15) / 16, i, V = m->cfg.vocab_size;
    int32_t *blocks = xmalloc((size_t) nb * sizeof(int32_t));
    int32_t *pos3 = xmalloc((size_t) n * 3 * sizeof(int32_t));
    int32_t *seq = xmalloc((size_t) n * sizeof(int32_t));
    int32_t *kv_pos = xmalloc((size_t) n * sizeof(int32_t));
    int32_t *rows = xmalloc((size_t) n * sizeof(int32_t));
    float *last = xmalloc((size_t) V * sizeof(float));
    glm_seq_blocks sb = { blocks, nb };
    glm_kv_pool kv;
    glm_batch b;
    int rc = -1;

    for (i = 0; i < nb; i++) {
        blocks[i] = i;
    }
    for (i = 0; i < n; i++) {
        pos3[3 * i] = pos3[3 * i + 1] = pos3[3 * i + 2] = kv_pos[i] = rows[i] = i;
        seq[i] = 0;
    }
    if (glm_kv_pool_init(&kv, m, nb, 16, err) == 0) {
        memset(&b, 0, sizeof(b));
        b.n_tokens = n;
        b.ids = ids;
        b.pos3 = pos3;
        b.attn = (glm_attn_batch) { n, seq, kv_pos, &sb, 1 };
        b.logit_rows = rows + n - 1;
        b.n_logits = 1;
        b.keep_hidden = 1;
        glm_model_forward(m, &kv, &b, last);
        b.ids = shifted;
        b.logit_rows = rows;
        b.n_logits = n;
        b.keep_hidden = 0;
        glm_model_mtp_forward(m, &kv, &b, rows, out);
        glm_kv_pool_free(&kv, m);
        rc = 0;
    }
    free(blocks); free(pos3); free(seq); free(kv_pos); free(rows); free(last);
    return rc;
}

/* MTP speculative decoding's draft layer, CUDA against the CPU oracle at
 * the whole-model tolerance (its input is the main model's BF16 hidden
 * state on the GPU) */
static void
fixture_mtp(const char *name, glm_model *mc, glm_model *mg, const int32_t *ids, int n,
    const fixture_tols *tol)
{
    int V = mc->cfg.vocab_size, i, agree = 0, ok;
    int32_t *shifted = xmalloc((size_t) n * sizeof(int32_t));
    float *lc = xmalloc((size_t) n * V * sizeof(float)), *lg = xmalloc((size_t) n * V * sizeof(float));
    row_tally t;
    double median;
    glm_err err;

    memset(&t, 0, sizeof(t));

    for (i = 0; i + 1 < n; i++) {
        shifted[i] = ids[i + 1];
    }
    shifted[n - 1] = ids[0];
    if (mtp_logits(mc, ids, shifted, n, lc, &err) != 0
        || mtp_logits(mg, ids, shifted, n, lg, &err) != 0)
    {
        printf("MTP %s error: %s FAIL\n", name, err.msg);
        failures++;
    } else {
        for (i = 0; i < n; i++) {
            agree += glm_argmax(lc + (size_t) i * V, V) == glm_argmax(lg + (size_t) i * V, V);
            tally_row(&t, lc + (size_t) i * V, lg + (size_t) i * V, V);
        }
        median = tally_median(&t);
        ok = median <= tol->median_tol && t.worst <= tol->worst_tol;
        printf("MTP %s tokens=%d act=%s median_row_rel=%.3g tol=%g worst_row_rel=%.3g tol=%g"
               " argmax=%d/%d %s\n", name, n, tol->act, median, tol->median_tol, t.worst,
               tol->worst_tol, agree, n, ok ? "ok" : "FAIL");
        checks++;
        failures += !ok;
    }
    free(t.rel);
    fflush(stdout);
    free(shifted);
    free(lc);
    free(lg);
}

static void
run_fixture(const char *dir)
{
    const char *name = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    char path[4096], ebuf[256];
    glm_model *mc, *mg;
    glm_err err;
    yajl_val ref, prompts;
    char *text;
    size_t pi, quick_pi = 0, quick_len = 0;
    const fixture_tols *tol;
    int mtp;

    mc = glm_model_load(dir, cpu, &err);
    mg = mc ? glm_model_load(dir, gpu, &err) : NULL;
    /* the MTP layer where the checkpoint has one, bound before the upload
     * as serve does (a fixture without one is simply not checked for it) */
    mtp = mg != NULL && mc->cfg.num_nextn_predict_layers > 0
          && glm_model_enable_mtp(mc, &err) == 0 && glm_model_enable_mtp(mg, &err) == 0;
    if (mg == NULL || glm_backend_cuda_upload_weights(gpu, mg->ck, &err) != 0) {
        printf("FIXTURE %s error: %s FAIL\n", name, err.msg);
        failures++;
        glm_model_free(mc);
        glm_model_free(mg);
        return;
    }
    {
        /* weights as stored: the device holds the bytes of the tensors the
         * model binds, not more (nothing widened: BF16 would double, fp32
         * quadruple FP8); tensors it skips (MTP layers) stay on the host */
        size_t wb = 0, fr, tot, model_bytes = 0, skipped = 0, i, n = glm_checkpoint_count(mg->ck);
        double ratio;
        int ok;

        for (i = 0; i < n; i++) {
            const glm_tensor *t = glm_checkpoint_at(mg->ck, i);
            if (t->used) {
                model_bytes += t->nbytes;
            } else {
                skipped += t->nbytes;
            }
        }
        glm_backend_cuda_memory(gpu, &wb, &fr, &tot);
        ratio = model_bytes ? (double) wb / (double) model_bytes : 0.0;
        ok = ratio >= 0.98 && ratio <= 1.02;
        printf("WEIGHTS %s device_bytes=%zu checkpoint_bytes=%zu ratio=%.4f tol=0.02"
               " (not loaded: %zu bytes of %d MTP tensors) %s\n", name, wb, model_bytes,
               ratio, skipped, mg->skipped_mtp, ok ? "ok" : "FAIL");
        checks++;
        failures += !ok;
        {
            /* bound at load: every tensor the model uses carries its device
             * copy, so no op looks it up (glm_tensor.dev) */
            size_t used = 0, bound = 0;
            for (i = 0; i < n; i++) {
                const glm_tensor *t = glm_checkpoint_at(mg->ck, i);
                used += t->used != 0;
                bound += t->used && t->dev.ptr != NULL && t->dev.host == t->data;
            }
            ok = used > 0 && bound == used;
            printf("BOUND %s tensors=%zu/%zu %s\n", name, bound, used, ok ? "ok" : "FAIL");
            checks++;
            failures += !ok;
        }
    }
    {
        /* FP8 activations where any FP8 matrix takes the FP8 x FP8 GEMM */
        size_t i, n = glm_checkpoint_count(mg->ck);
        int fp8_act = 0;
        for (i = 0; i < n; i++) {
            const glm_tensor *t = glm_checkpoint_at(mg->ck, i);
            fp8_act += t->used && t->ndim == 2 && t->dtype == GLM_DTYPE_F8_E4M3
                       && glm_backend_cuda_fp8_act_group(gpu, t) > 0;
        }
        tol = fp8_act ? &fixture_tols_fp8 : &fixture_tols_bf16;
        printf("FIXTURE %s act=%s (%d matrices FP8 x FP8)\n", name, tol->act, fp8_act);
    }
    snprintf(path, sizeof(path), "%s/reference.json", dir);
    text = glm_read_file(path, NULL, &err);
    ref = text ? yajl_tree_parse(text, ebuf, sizeof(ebuf)) : NULL;
    free(text);
    prompts = jget(ref, "prompts");
    if (prompts == NULL || !YAJL_IS_ARRAY(prompts)) {
        printf("FIXTURE %s error: %s has no prompts FAIL\n", name, path);
        failures++;
    } else {
        /* --quick: the shortest prompt of more than one token (positions
         * past 0 attend, route and chunk) */
        for (pi = 0; pi < prompts->u.array.len; pi++) {
            yajl_val a = jget(prompts->u.array.values[pi], "ids");
            if (a != NULL && YAJL_IS_ARRAY(a) && a->u.array.len > 1
                && (quick_len == 0 || a->u.array.len < quick_len)) {
                quick_pi = pi;
                quick_len = a->u.array.len;
            }
        }
        for (pi = 0; pi < prompts->u.array.len; pi++) {
            yajl_val a = jget(prompts->u.array.values[pi], "ids");
            int32_t *ids;
            size_t i;
            if (a == NULL || !YAJL_IS_ARRAY(a) || a->u.array.len == 0
                || (quick && pi != quick_pi)) {
                continue;
            }
            ids = xmalloc(a->u.array.len * sizeof(int32_t));
            for (i = 0; i < a->u.array.len; i++) {
                ids[i] = (int32_t) YAJL_GET_INTEGER(a->u.array.values[i]);
            }
            fixture_prompt(name, (int) pi, mc, mg, ids, (int) a->u.array.len, tol);
            free(ids);
        }
        /* the MTP layer over the longest prompt: every position past 0 has
         * an embedding and a hidden state to mix (not with --quick: long) */
        if (mtp && !quick) {
            yajl_val best = NULL;
            for (pi = 0; pi < prompts->u.array.len; pi++) {
                yajl_val a = jget(prompts->u.array.values[pi], "ids");
                if (a != NULL && YAJL_IS_ARRAY(a)
                    && (best == NULL || a->u.array.len > best->u.array.len)) {
                    best = a;
                }
            }
            if (best != NULL && best->u.array.len > 1) {
                int32_t *ids = xmalloc(best->u.array.len * sizeof(int32_t));
                size_t i;
                for (i = 0; i < best->u.array.len; i++) {
                    ids[i] = (int32_t) YAJL_GET_INTEGER(best->u.array.values[i]);
                }
                fixture_mtp(name, mc, mg, ids, (int) best->u.array.len, tol);
                free(ids);
            }
        }
    }
    yajl_tree_free(ref);
    glm_backend_cuda_release_weights(gpu);
    glm_model_free(mg);
    glm_model_free(mc);
}

/* ---- decode graphs ------------------------------------------------------------------------------ */

/*
 * The same steps on three fresh CUDA backends: GLM_CUDA_GRAPHS=0 (every
 * step eager, unpadded), =pad (decode steps padded and run eagerly in the
 * graphs' fixed layout, what a capture records) and =1 (captured once per
 * size, then replayed).  Five sequences are prefilled, then decode steps of
 * 1, 3, 5, 2, 5, 4, 1, 3 rows (padded to 1, 4, 8, 2, 8, 4, 1, 4) feed fixed
 * tokens, so every run asks the same.  A replay must equal the padded eager
 * run bit for bit, and the eager run within the whole-model tolerance; on a
 * dense model replays must have happened, on a MoE model (whose op still
 * waits on the host) none may, and the step runs eagerly instead.
 */
#define GRAPH_SEQS   5
#define GRAPH_STEPS  8
#define GRAPH_BLOCKS 4              /* per sequence, of 16 positions */

static const int graph_batch[GRAPH_STEPS] = { 1, 3, 5, 2, 5, 4, 1, 3 };

static float *
graph_run(const char *dir, const char *mode, size_t *n_out, long *replays, int *moe)
{
    int32_t blocks[GRAPH_SEQS][GRAPH_BLOCKS], len[GRAPH_SEQS];
    int32_t ids[16], pos3[16 * 3], seq[16], kv_pos[16], rows[16];
    glm_seq_blocks sb[GRAPH_SEQS];
    glm_backend *be;
    glm_model *m;
    glm_kv_pool kv;
    glm_batch b;
    glm_err err;
    float *all, *at;
    size_t total = 0;
    int s, i, st, V, l;

    setenv("GLM_CUDA_GRAPHS", mode, 1);
    be = glm_backend_cuda_create(0, &err);
    unsetenv("GLM_CUDA_GRAPHS");
    if (be == NULL) {
        die(err.msg);
    }
    m = glm_model_load(dir, be, &err);
    if (m == NULL || glm_backend_cuda_upload_weights(be, m->ck, &err) != 0
        || glm_kv_pool_init(&kv, m, GRAPH_SEQS * GRAPH_BLOCKS, 16, &err) != 0)
    {
        die(err.msg);
    }
    V = m->cfg.vocab_size;
    *moe = 0;
    for (l = 0; l < m->cfg.num_layers; l++) {
        *moe |= m->layers[l].is_moe;
    }
    for (st = 0; st < GRAPH_STEPS; st++) {
        total += (size_t) graph_batch[st];
    }
    all = xmalloc(total * V * sizeof(float));
    at = all;
    for (s = 0; s < GRAPH_SEQS; s++) {
        for (i = 0; i < GRAPH_BLOCKS; i++) {
            blocks[s][i] = s * GRAPH_BLOCKS + i;
        }
        sb[s] = (glm_seq_blocks) { blocks[s], GRAPH_BLOCKS };
        len[s] = 0;
    }
    /* prefill: sequence s gets 2 + s tokens in one chunk (eager) */
    for (s = 0; s < GRAPH_SEQS; s++) {
        int T = 2 + s;
        for (i = 0; i < T; i++) {
            ids[i] = (s * 13 + i * 7 + 1) % V;
            pos3[3 * i] = pos3[3 * i + 1] = pos3[3 * i + 2] = kv_pos[i] = i;
            seq[i] = 0;
        }
        rows[0] = T - 1;
        memset(&b, 0, sizeof(b));
        b.n_tokens = T;
        b.ids = ids;
        b.pos3 = pos3;
        b.attn = (glm_attn_batch) { T, seq, kv_pos, &sb[s], 1 };
        b.logit_rows = rows;
        b.n_logits = 1;
        glm_model_forward(m, &kv, &b, at);     /* overwritten below: only the cache counts */
        len[s] = T;
    }
    for (st = 0; st < GRAPH_STEPS; st++) {
        int B = graph_batch[st];
        for (i = 0; i < B; i++) {
            ids[i] = (st * 31 + i * 17 + 5) % V;
            pos3[3 * i] = pos3[3 * i + 1] = pos3[3 * i + 2] = kv_pos[i] = len[i];
            seq[i] = i;
            rows[i] = i;
            len[i]++;
        }
        memset(&b, 0, sizeof(b));
        b.n_tokens = B;
        b.ids = ids;
        b.pos3 = pos3;
        b.attn = (glm_attn_batch) { B, seq, kv_pos, sb, B };
        b.logit_rows = rows;
        b.n_logits = B;
        glm_model_forward(m, &kv, &b, at);
        at += (size_t) B * V;
    }
    *replays = glm_backend_cuda_graph_replays(be);
    *n_out = total * V;
    glm_kv_pool_free(&kv, m);
    glm_model_free(m);
    be->destroy(be);
    return all;
}

static void
run_graphs(const char *dir)
{
    const char *name = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    size_t n, n2, n3, i;
    long r_eager, r_pad, r_on;
    int moe;
    float *eager = graph_run(dir, "0", &n, &r_eager, &moe);
    float *pad = graph_run(dir, "pad", &n2, &r_pad, &moe);
    float *on = graph_run(dir, "1", &n3, &r_on, &moe);
    double d_pad = 0.0, d_eager = 0.0, scale = 0.0;
    int ok;

    if (n != n2 || n != n3) {
        die("graph runs of different lengths");
    }
    for (i = 0; i < n; i++) {
        double a = fabs((double) on[i] - pad[i]), e = fabs((double) on[i] - eager[i]);
        d_pad = a > d_pad || a != a ? a : d_pad;
        d_eager = e > d_eager || e != e ? e : d_eager;
        scale = fabs(eager[i]) > scale ? fabs(eager[i]) : scale;
    }
    /* a replay is the padded eager step, recorded: the same bits; since
     * the MoE op waits for nothing on the host, MoE models replay too */
    ok = memcmp(on, pad, n * sizeof(float)) == 0 && r_pad == 0 && r_eager == 0 && r_on > 0;
    printf("GRAPH %s replay_vs_padded_eager identical=%s max_abs=%.3g replays=%ld"
           " (%s) %s\n", name, memcmp(on, pad, n * sizeof(float)) == 0 ? "yes" : "no", d_pad,
           r_on, moe ? "MoE: must replay" : "dense: must replay", ok ? "ok" : "FAIL");
    checks++;
    failures += !ok;
    ok = scale > 0 && d_eager / scale <= 3e-2;
    printf("GRAPH %s graphs_vs_eager max_abs_logit_diff=%.3g logit_scale=%.3g rel=%.3g"
           " tol=0.03 %s\n", name, d_eager, scale, scale > 0 ? d_eager / scale : d_eager,
           ok ? "ok" : "FAIL");
    checks++;
    failures += !ok;
    free(eager);
    free(pad);
    free(on);
}

/* GLM-4.5V's tower on random pixels: one image and one two-pair video, and
 * an image with segments longer than one attention tile */
static void
run_vision(const char *dir)
{
    glm_grid grids[3] = { { 1, 4, 4 }, { 2, 2, 4 }, { 1, 8, 12 } };
    glm_model *mc, *mg;
    glm_err err;
    int64_t N = 0, rows = 0;
    int g, K;
    float *px, *oc, *og;

    mc = glm_model_load(dir, cpu, &err);
    mg = mc ? glm_model_load(dir, gpu, &err) : NULL;
    /* all weights up front: the tower's q/k/v are row slices of one qkv
     * weight, so this also covers the backend aliasing them into it */
    if (mg == NULL || mg->vision == NULL
        || glm_backend_cuda_upload_weights(gpu, mg->ck, &err) != 0)
    {
        printf("OP vision_encode shape=- max_abs=- max_rel=- tol=- FAIL (%s)\n",
               mg == NULL || mg->vision != NULL ? err.msg : "not a vision checkpoint");
        failures++;
        glm_model_free(mc);
        glm_model_free(mg);
        return;
    }
    K = mc->cfg.vision.in_channels * mc->cfg.vision.temporal_patch_size
        * mc->cfg.vision.patch_size * mc->cfg.vision.patch_size;
    for (g = 0; g < 3; g++) {
        N += (int64_t) grids[g].t * grids[g].h * grids[g].w;
        rows += glm_vision_grid_tokens(&mc->cfg, &grids[g]);
    }
    px = rnd_floats((size_t) N * K, 2.0f);
    oc = xmalloc((size_t) rows * mc->cfg.vision.out_hidden_size * sizeof(float));
    og = xmalloc((size_t) rows * mc->cfg.vision.out_hidden_size * sizeof(float));
    if (glm_vision_encode(mc->vision, cpu, px, grids, 3, oc, &err) != 0
        || glm_vision_encode(mg->vision, gpu, px, grids, 3, og, &err) != 0)
    {
        printf("OP vision_encode shape=- max_abs=- max_rel=- tol=- FAIL (%s)\n", err.msg);
        failures++;
    } else {
        /* the tower is deep (every layer rounds its activations to BF16):
         * measured as the fixtures' logits, against the output's scale */
        size_t nv = (size_t) rows * mc->cfg.vision.out_hidden_size;
        double d = max_abs_diff(oc, og, nv), scale = max_abs(oc, nv);
        int ok = d <= TOL_VISION * scale;

        printf("OP vision_encode shape=patches=%lld,rows=%lld max_abs=%.3g scale=%.3g"
               " rel=%.3g tol=%g %s\n", (long long) N, (long long) rows, d, scale,
               scale > 0 ? d / scale : d, TOL_VISION, ok ? "ok" : "FAIL");
        checks++;
        failures += !ok;
    }
    free(px);
    free(oc);
    free(og);
    glm_backend_cuda_release_weights(gpu);
    glm_model_free(mg);
    glm_model_free(mc);
}

int
main(int argc, char **argv)
{
    glm_err err;
    int i, first = 2;

    if (argc < 2) {
        fprintf(stderr, "usage: test_ops ops [--quick] | fixtures [--quick] DIR... |"
                " graphs DIR... | vision DIR\n");
        return 2;
    }
    if (argc > 2 && strcmp(argv[2], "--quick") == 0) {
        quick = 1;
        first = 3;
    }
    gpu = glm_backend_cuda_create(0, &err);
    if (gpu == NULL) {
        printf("SKIPPED: no GPU (%s)\n", err.msg);
        return 0;
    }
    cpu = glm_backend_cpu_create(0);
    if (cpu == NULL) {
        die("cannot start the CPU backend");
    }
    if (strcmp(argv[1], "ops") == 0) {
        run_ops();
    } else if (strcmp(argv[1], "tail") == 0) {
        run_tail_ops();
    } else if (strcmp(argv[1], "moe") == 0) {
        run_moe();
    } else if (strcmp(argv[1], "fixtures") == 0) {
        signal(SIGSEGV, on_segv);
        for (i = first; i < argc; i++) {
            run_fixture(argv[i]);
        }
    } else if (strcmp(argv[1], "graphs") == 0) {
        for (i = first; i < argc; i++) {
            run_graphs(argv[i]);
        }
    } else if (strcmp(argv[1], "vision") == 0 && argc > first) {
        run_vision(argv[first]);
    } else {
        fprintf(stderr, "test_ops: unknown mode '%s'\n", argv[1]);
        return 2;
    }
    gpu->destroy(gpu);
    cpu->destroy(cpu);
    printf("test_ops %s: %d checks, %d failed\n", argv[1], checks, failures);
    return failures ? 1 : 0;
}
