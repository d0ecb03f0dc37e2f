/*
 * quant.c: see quant.h.  Parsing refuses, with the key and the value, every
 * quantization_config this engine cannot honour (integer or 4-bit weights,
 * asymmetric or dynamic weight scales, group strategies, KV-cache
 * quantization, transforms): a checkpoint either loads with the values its
 * writer meant or does not load.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "quant.h"
#include "util/json.h"

#include <limits.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>

struct glm_quant_pattern {
    char       *text;                   /* as written, "re:" included */
    pcre2_code *re;                     /* NULL: exact match */
};

const char *
glm_scale_strategy_name(glm_scale_strategy s)
{
    switch (s) {
    case GLM_SCALE_TENSOR: return "tensor";
    case GLM_SCALE_CHANNEL: return "channel";
    case GLM_SCALE_BLOCK: return "block";
    default: return "none";
    }
}

static int
glm_pattern_init(glm_quant_pattern *p, const char *text, const char *what,
    glm_err *err)
{
    int ecode;
    PCRE2_SIZE eoff;
    PCRE2_UCHAR msg[160];

    p->text = strdup(text);
    if (p->text == NULL) {
        return glm_errf(err, "out of memory");
    }
    if (strncmp(text, "re:", 3) != 0) {
        return 0;
    }
    /* Python's re syntax for these patterns is PCRE's; anchoring at the
     * start only (re.match) is applied when matching */
    p->re = pcre2_compile((PCRE2_SPTR) (text + 3), PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF, &ecode, &eoff, NULL);
    if (p->re == NULL) {
        pcre2_get_error_message(ecode, msg, sizeof(msg));
        return glm_errf(err, "%s \"%s\": regex error at offset %zu: %s", what,
                        text, (size_t) eoff, (char *) msg);
    }
    return 0;
}

int
glm_quant_pattern_match(const glm_quant_pattern *p, const char *name)
{
    pcre2_match_data *md;
    int rc;

    if (p->re == NULL) {
        return strcmp(p->text, name) == 0;
    }
    md = pcre2_match_data_create_from_pattern(p->re, NULL);
    if (md == NULL) {
        return 0;
    }
    rc = pcre2_match(p->re, (PCRE2_SPTR) name, PCRE2_ZERO_TERMINATED, 0,
                     PCRE2_ANCHORED, md, NULL);
    pcre2_match_data_free(md);
    return rc >= 0;
}

static void
glm_patterns_free(glm_quant_pattern *p, int n)
{
    int i;

    for (i = 0; p != NULL && i < n; i++) {
        free(p[i].text);
        pcre2_code_free(p[i].re);
    }
    free(p);
}

void
glm_quant_free(glm_quant *q)
{
    int i;

    if (q == NULL) {
        return;
    }
    for (i = 0; i < q->n_groups; i++) {
        glm_patterns_free(q->groups[i].targets, q->groups[i].n_targets);
    }
    free(q->groups);
    glm_patterns_free(q->ignore, q->n_ignore);
    free(q);
}

/* A list of strings into patterns; NULL/null is the empty list. */
static int
glm_patterns_parse(yajl_val arr, glm_quant_pattern **out, int *n, const char *what,
    const char *file, glm_err *err)
{
    size_t i;

    *out = NULL;
    *n = 0;
    if (arr == NULL || YAJL_IS_NULL(arr)) {
        return 0;
    }
    if (!YAJL_IS_ARRAY(arr) || arr->u.array.len > INT_MAX / 2) {
        return glm_errf(err, "%s: quantization_config %s must be a list of strings",
                        file, what);
    }
    *out = calloc(arr->u.array.len + 1, sizeof(glm_quant_pattern));
    if (*out == NULL) {
        return glm_errf(err, "out of memory");
    }
    for (i = 0; i < arr->u.array.len; i++) {
        yajl_val v = arr->u.array.values[i];
        if (!YAJL_IS_STRING(v)) {
            return glm_errf(err, "%s: quantization_config %s must be a list of strings",
                            file, what);
        }
        (*n)++;
        if (glm_pattern_init(&(*out)[i], v->u.string, what, err) != 0) {
            return glm_err_prefix(err, "%s: quantization_config", file);
        }
    }
    return 0;
}

static const char *
glm_str_or(yajl_val v, const char *def)
{
    return v != NULL && YAJL_IS_STRING(v) ? v->u.string : def;
}

/* "num_bits": 8 and "type": "float", the only weights this engine reads */
static int
glm_quant_fp8_args(yajl_val args, const char *what, const char *file, glm_err *err)
{
    yajl_val bits = glm_json_get(args, "num_bits"), type = glm_json_get(args, "type");

    if (bits == NULL || !YAJL_IS_INTEGER(bits) || YAJL_GET_INTEGER(bits) != 8
        || type == NULL || !YAJL_IS_STRING(type) || strcmp(type->u.string, "float") != 0)
    {
        char nb[32];

        if (bits != NULL && YAJL_IS_INTEGER(bits)) {
            snprintf(nb, sizeof(nb), "%lld", (long long) YAJL_GET_INTEGER(bits));
        } else {
            snprintf(nb, sizeof(nb), "(missing)");
        }
        return glm_errf(err, "%s: quantization_config %s: only 8-bit float"
                        " (FP8 E4M3) quantization is supported, not num_bits %s,"
                        " type \"%s\"", file, what, nb, glm_str_or(type, "(missing)"));
    }
    return 0;
}

/* block_structure: [rows, cols], or the older "RxC" string */
static int
glm_quant_block(yajl_val v, int64_t block[2], const char *what, const char *file,
    glm_err *err)
{
    long long r = 0, c = 0;
    char tail;

    if (v != NULL && YAJL_IS_ARRAY(v) && v->u.array.len == 2
        && YAJL_IS_INTEGER(v->u.array.values[0]) && YAJL_IS_INTEGER(v->u.array.values[1]))
    {
        r = YAJL_GET_INTEGER(v->u.array.values[0]);
        c = YAJL_GET_INTEGER(v->u.array.values[1]);
    } else if (v != NULL && YAJL_IS_STRING(v)
               && sscanf(v->u.string, "%lldx%lld%c", &r, &c, &tail) != 2)
    {
        r = 0;
    }
    if (r < 1 || c < 1 || r > (1 << 20) || c > (1 << 20)) {
        return glm_errf(err, "%s: quantization_config %s: strategy \"block\" needs"
                        " block_structure [rows, cols] of positive integers", file, what);
    }
    block[0] = r;
    block[1] = c;
    return 0;
}

static int
glm_quant_group_parse(const char *key, yajl_val gv, glm_quant_group *g,
    const char *format, const char *file, glm_err *err)
{
    yajl_val w, a, v;
    const char *strategy, *gformat;
    char what[128];
    int i;

    snprintf(g->name, sizeof(g->name), "%s", key);
    snprintf(what, sizeof(what), "group \"%.64s\"", key);
    if (!YAJL_IS_OBJECT(gv)) {
        return glm_errf(err, "%s: quantization_config %s must be an object", file, what);
    }
    gformat = glm_str_or(glm_json_get(gv, "format"), format);
    if (strcmp(gformat, "float-quantized") != 0 && strcmp(gformat, "naive-quantized") != 0) {
        return glm_errf(err, "%s: quantization_config %s: format \"%s\" is not"
                        " supported (FP8 checkpoints are float-quantized or"
                        " naive-quantized)", file, what, gformat);
    }
    if (glm_patterns_parse(glm_json_get(gv, "targets"), &g->targets, &g->n_targets,
                           "targets", file, err) != 0)
    {
        return -1;
    }
    if (g->n_targets == 0) {
        return glm_errf(err, "%s: quantization_config %s has no targets", file, what);
    }
    for (i = 0; i < g->n_targets; i++) {
        g->targets_linear |= strcmp(g->targets[i].text, "Linear") == 0;
    }

    w = glm_json_get(gv, "weights");
    if (w == NULL || !YAJL_IS_OBJECT(w)) {
        return glm_errf(err, "%s: quantization_config %s quantizes no weights"
                        " (only weight quantization is supported)", file, what);
    }
    snprintf(what, sizeof(what), "group \"%.64s\" weights", key);
    if (glm_quant_fp8_args(w, what, file, err) != 0) {
        return -1;
    }
    strategy = glm_str_or(glm_json_get(w, "strategy"), "tensor");
    if (strcmp(strategy, "tensor") == 0) {
        g->strategy = GLM_SCALE_TENSOR;
    } else if (strcmp(strategy, "channel") == 0) {
        g->strategy = GLM_SCALE_CHANNEL;
    } else if (strcmp(strategy, "block") == 0) {
        g->strategy = GLM_SCALE_BLOCK;
        if (glm_quant_block(glm_json_get(w, "block_structure"), g->block, what, file,
                            err) != 0)
        {
            return -1;
        }
    } else {
        return glm_errf(err, "%s: quantization_config %s: strategy \"%s\" is not"
                        " supported (tensor, channel or block)", file, what, strategy);
    }
    v = glm_json_get(w, "symmetric");
    if (v != NULL && !YAJL_IS_TRUE(v)) {
        return glm_errf(err, "%s: quantization_config %s: asymmetric weights (zero"
                        " points) are not supported", file, what);
    }
    v = glm_json_get(w, "dynamic");
    if (v != NULL && !YAJL_IS_FALSE(v) && !YAJL_IS_NULL(v)) {
        return glm_errf(err, "%s: quantization_config %s: dynamic weight scales are"
                        " not supported (the checkpoint must store weight_scale)",
                        file, what);
    }
    v = glm_json_get(w, "group_size");
    if (v != NULL && !YAJL_IS_NULL(v)) {
        return glm_errf(err, "%s: quantization_config %s: group_size is not"
                        " supported", file, what);
    }

    a = glm_json_get(gv, "input_activations");
    if (a != NULL && !YAJL_IS_NULL(a)) {
        snprintf(what, sizeof(what), "group \"%.64s\" input_activations", key);
        if (!YAJL_IS_OBJECT(a) || glm_quant_fp8_args(a, what, file, err) != 0) {
            return YAJL_IS_OBJECT(a) ? -1
                   : glm_errf(err, "%s: quantization_config %s must be an object",
                              file, what);
        }
        v = glm_json_get(a, "dynamic");
        g->act_quantized = 1;
        g->act_dynamic = v != NULL && (YAJL_IS_TRUE(v) || YAJL_IS_STRING(v));
        snprintf(g->act_strategy, sizeof(g->act_strategy), "%s",
                 glm_str_or(glm_json_get(a, "strategy"), "tensor"));
    }
    v = glm_json_get(gv, "output_activations");
    if (v != NULL && !YAJL_IS_NULL(v)) {
        return glm_errf(err, "%s: quantization_config group \"%.64s\":"
                        " output_activations are not supported", file, key);
    }
    return 0;
}

int
glm_quant_parse(yajl_val qc, glm_quant **out, const char *file, glm_err *err)
{
    glm_quant *q;
    yajl_val groups, v;
    const char *method, *format;
    size_t i;

    *out = NULL;
    if (qc == NULL || YAJL_IS_NULL(qc)) {
        return 0;
    }
    if (!YAJL_IS_OBJECT(qc)) {
        return glm_errf(err, "%s: \"quantization_config\" must be an object", file);
    }
    method = glm_str_or(glm_json_get(qc, "quant_method"), "(missing)");
    if (strcmp(method, "compressed-tensors") != 0) {
        return glm_errf(err, "%s: quantization_config quant_method \"%s\" is not"
                        " supported (only compressed-tensors FP8 checkpoints)", file,
                        method);
    }
    format = glm_str_or(glm_json_get(qc, "format"), "float-quantized");
    v = glm_json_get(qc, "kv_cache_scheme");
    if (v != NULL && !YAJL_IS_NULL(v)) {
        /* static per-tensor FP8 scales for the cache, stored per layer as
         * k_proj/v_proj.output_scale: model.c reads them for
         * --kv-cache-dtype fp8, as vLLM does; any other scheme is refused */
        yajl_val bits = YAJL_IS_OBJECT(v) ? glm_json_get(v, "num_bits") : NULL;
        yajl_val dyn = YAJL_IS_OBJECT(v) ? glm_json_get(v, "dynamic") : NULL;
        yajl_val sym = YAJL_IS_OBJECT(v) ? glm_json_get(v, "symmetric") : NULL;

        if (!YAJL_IS_OBJECT(v) || bits == NULL || !YAJL_IS_INTEGER(bits)
            || YAJL_GET_INTEGER(bits) != 8
            || strcmp(glm_str_or(glm_json_get(v, "type"), ""), "float") != 0
            || strcmp(glm_str_or(glm_json_get(v, "strategy"), "tensor"), "tensor") != 0
            || (dyn != NULL && !YAJL_IS_FALSE(dyn)) || (sym != NULL && YAJL_IS_FALSE(sym)))
        {
            return glm_errf(err, "%s: quantization_config kv_cache_scheme is not"
                            " supported (only static per-tensor 8-bit float, the"
                            " scales of --kv-cache-dtype fp8)", file);
        }
    }
    v = glm_json_get(qc, "sparsity_config");
    if (v != NULL && YAJL_IS_OBJECT(v)
        && strcmp(glm_str_or(glm_json_get(v, "format"), "dense"), "dense") != 0)
    {
        return glm_errf(err, "%s: quantization_config sparsity_config (format \"%s\")"
                        " is not supported", file, glm_str_or(glm_json_get(v, "format"), ""));
    }
    v = glm_json_get(qc, "transform_config");
    if (v != NULL && YAJL_IS_OBJECT(v) && v->u.object.len > 0) {
        return glm_errf(err, "%s: quantization_config transform_config (rotations)"
                        " is not supported", file);
    }
    groups = glm_json_get(qc, "config_groups");
    if (groups == NULL || !YAJL_IS_OBJECT(groups) || groups->u.object.len == 0
        || groups->u.object.len > 64)
    {
        return glm_errf(err, "%s: quantization_config needs a \"config_groups\""
                        " object with 1 to 64 groups", file);
    }

    q = calloc(1, sizeof(*q));
    if (q == NULL || (q->groups = calloc(groups->u.object.len,
                                         sizeof(glm_quant_group))) == NULL)
    {
        free(q);
        return glm_errf(err, "out of memory");
    }
    snprintf(q->format, sizeof(q->format), "%s", format);
    for (i = 0; i < groups->u.object.len; i++) {
        q->n_groups++;
        if (glm_quant_group_parse(groups->u.object.keys[i], groups->u.object.values[i],
                                  &q->groups[i], format, file, err) != 0)
        {
            glm_quant_free(q);
            return -1;
        }
    }
    if (glm_patterns_parse(glm_json_get(qc, "ignore"), &q->ignore, &q->n_ignore,
                           "ignore", file, err) != 0)
    {
        glm_quant_free(q);
        return -1;
    }
    *out = q;
    return 0;
}

const glm_quant_group *
glm_quant_group_of(const glm_quant *q, const char *module, const char **ignored_by)
{
    int i, j;

    if (ignored_by != NULL) {
        *ignored_by = NULL;
    }
    if (q == NULL) {
        return NULL;
    }
    for (i = 0; i < q->n_ignore; i++) {
        if (glm_quant_pattern_match(&q->ignore[i], module)) {
            if (ignored_by != NULL) {
                *ignored_by = q->ignore[i].text;
            }
            return NULL;
        }
    }
    for (i = 0; i < q->n_groups; i++) {
        const glm_quant_group *g = &q->groups[i];
        if (g->targets_linear) {
            return g;               /* every caller binds a Linear module */
        }
        for (j = 0; j < g->n_targets; j++) {
            if (glm_quant_pattern_match(&g->targets[j], module)) {
                return g;
            }
        }
    }
    return NULL;
}

glm_tensor *
glm_quant_bind_linear(glm_checkpoint *ck, glm_quant *q, const char *module,
    int64_t rows, int64_t cols, int flags, glm_err *err)
{
    char wname[512], sname[512], iname[512], want[64], have[64];
    int64_t shape[2] = { rows, cols }, sshape[2];
    const glm_quant_group *g;
    const char *ignored_by;
    glm_tensor *t, *s, *in;
    int sndim, ok, d;

    if (snprintf(wname, sizeof(wname), "%s.weight", module) >= (int) sizeof(wname)
        || snprintf(sname, sizeof(sname), "%s.weight_scale", module) >= (int) sizeof(sname))
    {
        glm_errf(err, "tensor name '%s.weight' too long", module);
        return NULL;
    }
    t = glm_checkpoint_find(ck, wname);
    if (t == NULL || t->dtype != GLM_DTYPE_F8_E4M3) {
        /* a float weight, used as stored */
        t = glm_checkpoint_get(ck, wname, 2, shape, err);
        if (t == NULL) {
            return NULL;
        }
        s = glm_checkpoint_find(ck, sname);
        if (s != NULL) {
            glm_errf(err, "%s: tensor '%s' scales '%s', which is stored as %s,"
                     " not F8_E4M3", s->file, sname, wname, glm_dtype_name(t->dtype));
            return NULL;
        }
        if (glm_quant_group_of(q, module, NULL) != NULL) {
            q->n_float_targeted++;
        }
        return t;
    }

    if (q == NULL) {
        glm_errf(err, "%s: tensor '%s' is F8_E4M3, but config.json has no"
                 " quantization_config to say how it is scaled", t->file, wname);
        return NULL;
    }
    g = glm_quant_group_of(q, module, &ignored_by);
    if (g == NULL) {
        if (ignored_by != NULL) {
            glm_errf(err, "%s: tensor '%s' is F8_E4M3, but quantization_config's"
                     " ignore entry \"%s\" keeps module '%s' unquantized", t->file,
                     wname, ignored_by, module);
        } else {
            glm_errf(err, "%s: tensor '%s' is F8_E4M3, but no quantization_config"
                     " group targets module '%s'", t->file, wname, module);
        }
        return NULL;
    }
    t = glm_checkpoint_get_fp8(ck, wname, 2, shape, err);
    if (t == NULL) {
        return NULL;
    }
    s = glm_checkpoint_find(ck, sname);
    if (s == NULL) {
        glm_errf(err, "%s: FP8 tensor '%s' has no scale: '%s' is missing"
                 " (quantization_config strategy %s)", t->file, wname, sname,
                 glm_scale_strategy_name(g->strategy));
        return NULL;
    }
    if (s->dtype != GLM_DTYPE_F32 && s->dtype != GLM_DTYPE_BF16) {
        glm_errf(err, "%s: tensor '%s' has dtype %s, expected F32 or BF16 (an FP8"
                 " weight scale)", s->file, sname, glm_dtype_name(s->dtype));
        return NULL;
    }
    switch (g->strategy) {
    case GLM_SCALE_TENSOR:
        sndim = 1;
        sshape[0] = 1;
        ok = s->numel == 1 && (s->ndim == 0 || s->ndim == 1);
        break;
    case GLM_SCALE_CHANNEL:
        sndim = 2;
        sshape[0] = rows;
        sshape[1] = 1;
        ok = s->ndim == 2 && s->shape[0] == rows && s->shape[1] == 1;
        break;
    default:
        sndim = 2;
        sshape[0] = (rows + g->block[0] - 1) / g->block[0];
        sshape[1] = (cols + g->block[1] - 1) / g->block[1];
        ok = s->ndim == 2;
        for (d = 0; ok && d < 2; d++) {
            ok = s->shape[d] == sshape[d];
        }
        break;
    }
    if (!ok) {
        glm_shape_str(want, sizeof(want), sndim, sshape);
        glm_shape_str(have, sizeof(have), s->ndim, s->shape);
        if (g->strategy == GLM_SCALE_BLOCK) {
            glm_errf(err, "%s: tensor '%s' has shape %s, expected %s (%lldx%lld block"
                     " scales of a [%lld, %lld] weight)", s->file, sname, have, want,
                     (long long) g->block[0], (long long) g->block[1],
                     (long long) rows, (long long) cols);
        } else {
            glm_errf(err, "%s: tensor '%s' has shape %s, expected %s (the per-%s"
                     " scale of a [%lld, %lld] weight)", s->file, sname, have, want,
                     glm_scale_strategy_name(g->strategy), (long long) rows,
                     (long long) cols);
        }
        return NULL;
    }
    s->used = 1;
    t->scale = s;
    t->scale_strategy = g->strategy;
    t->block[0] = g->block[0];
    t->block[1] = g->block[1];
    t->scale_row0 = 0;
    t->scale_exact = (flags & GLM_LINEAR_EXPERT) != 0;
    q->n_fp8++;

    /* static activation scales: part of the scheme, unused by this backend */
    if (g->act_quantized && !g->act_dynamic
        && snprintf(iname, sizeof(iname), "%s.input_scale", module) < (int) sizeof(iname)
        && (in = glm_checkpoint_find(ck, iname)) != NULL && in->numel == 1)
    {
        in->used = 1;
    }
    return t;
}

void
glm_quant_describe(const glm_quant *q, char *buf, size_t size)
{
    const glm_quant_group *g;
    char w[64], a[96];

    if (q == NULL) {
        snprintf(buf, size, "none");
        return;
    }
    g = &q->groups[0];
    if (g->strategy == GLM_SCALE_BLOCK) {
        snprintf(w, sizeof(w), "%lldx%lld blocks", (long long) g->block[0],
                 (long long) g->block[1]);
    } else {
        snprintf(w, sizeof(w), "per %s", glm_scale_strategy_name(g->strategy));
    }
    if (g->act_quantized) {
        snprintf(a, sizeof(a), "activations %s per %s (not applied on CPU)",
                 g->act_dynamic ? "dynamic" : "static", g->act_strategy);
    } else {
        snprintf(a, sizeof(a), "activations unquantized");
    }
    snprintf(buf, size, "compressed-tensors %s: FP8 E4M3 weights %s, %s, %d ignore"
             " entr%s%s", q->format, w, a, q->n_ignore, q->n_ignore == 1 ? "y" : "ies",
             q->n_groups > 1 ? " (first of several config groups)" : "");
}

void
glm_quant_act_fp8(const float *x, uint8_t *q, float *scales, int rows, int cols, int group,
    int scale_ld)
{
    int r, g, c, n_groups;

    if (group <= 0 || group > cols) {
        group = cols;
    }
    n_groups = cols > 0 ? (cols + group - 1) / group : 0;
    for (r = 0; r < rows; r++) {
        const float *xr = x + (size_t) r * cols;
        for (g = 0; g < n_groups; g++) {
            int c0 = g * group, c1 = c0 + group < cols ? c0 + group : cols;
            float amax = 0.0f, scale;
            for (c = c0; c < c1; c++) {
                amax = fmaxf(amax, fabsf(xr[c]));
            }
            scale = fmaxf(amax, 1e-10f) / 448.0f;
            scales[scale_ld > 0 ? (size_t) g * scale_ld + r : (size_t) r * n_groups + g] = scale;
            for (c = c0; c < c1; c++) {
                float v = xr[c] / scale;
                v = fminf(fmaxf(v, -448.0f), 448.0f);
                q[(size_t) r * cols + c] = glm_f32_to_fp8_e4m3(v);
            }
        }
    }
}
