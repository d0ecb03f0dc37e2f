/*
 * config.c: see config.h.
 */
#include "config.h"
#include "util/json.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <yajl/yajl_tree.h>

static int
glm_cfg_int(yajl_val obj, const char *key, int def, int lo, int hi, int *out,
    const char *file, glm_err *err)
{
    yajl_val v = glm_json_get(obj, key);
    long long x;

    if (v == NULL || YAJL_IS_NULL(v)) {
        *out = def;
        return 0;
    }
    if (!YAJL_IS_INTEGER(v)) {
        return glm_errf(err, "%s: \"%s\" must be an integer", file, key);
    }
    x = YAJL_GET_INTEGER(v);
    if (x < lo || x > hi) {
        return glm_errf(err, "%s: \"%s\" is %lld, outside [%d, %d]", file, key,
                        x, lo, hi);
    }
    *out = (int) x;
    return 0;
}

static int
glm_cfg_float(yajl_val obj, const char *key, float def, float *out,
    const char *file, glm_err *err)
{
    yajl_val v = glm_json_get(obj, key);

    if (v == NULL || YAJL_IS_NULL(v)) {
        *out = def;
        return 0;
    }
    if (!YAJL_IS_NUMBER(v)) {
        return glm_errf(err, "%s: \"%s\" must be a number", file, key);
    }
    *out = (float) YAJL_GET_DOUBLE(v);
    if (!isfinite(*out)) {
        return glm_errf(err, "%s: \"%s\" is not finite", file, key);
    }
    return 0;
}

static int
glm_cfg_bool(yajl_val obj, const char *key, int def, int *out, const char *file,
    glm_err *err)
{
    yajl_val v = glm_json_get(obj, key);

    if (v == NULL || YAJL_IS_NULL(v)) {
        *out = def;
        return 0;
    }
    if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
        return glm_errf(err, "%s: \"%s\" must be true or false", file, key);
    }
    *out = YAJL_IS_TRUE(v);
    return 0;
}

/* eos_token_id: an integer or a list of integers */
static int
glm_cfg_eos(yajl_val obj, glm_config *cfg, const char *file, glm_err *err)
{
    yajl_val v = glm_json_get(obj, "eos_token_id");
    size_t i;

    if (v == NULL || YAJL_IS_NULL(v)) {
        return 0;
    }
    if (YAJL_IS_INTEGER(v)) {
        cfg->eos_ids[0] = (int) YAJL_GET_INTEGER(v);
        cfg->n_eos = 1;
        return 0;
    }
    if (!YAJL_IS_ARRAY(v) || v->u.array.len > GLM_MAX_EOS) {
        return glm_errf(err, "%s: \"eos_token_id\" must be an integer or a list"
                        " of at most %d integers", file, GLM_MAX_EOS);
    }
    cfg->n_eos = 0;
    for (i = 0; i < v->u.array.len; i++) {
        yajl_val e = v->u.array.values[i];
        if (!YAJL_IS_INTEGER(e) || YAJL_GET_INTEGER(e) < 0
            || YAJL_GET_INTEGER(e) > INT_MAX)
        {
            return glm_errf(err, "%s: \"eos_token_id\" entries must be token ids",
                            file);
        }
        cfg->eos_ids[cfg->n_eos++] = (int) YAJL_GET_INTEGER(e);
    }
    return 0;
}

static yajl_val
glm_parse_json_file(const char *path, const char *name, glm_err *err)
{
    char *text, ebuf[256];
    yajl_val root;

    text = glm_read_file(path, NULL, err);
    if (text == NULL) {
        return NULL;
    }
    root = yajl_tree_parse(text, ebuf, sizeof(ebuf));
    free(text);
    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        char *nl = strchr(ebuf, '\n');
        if (nl) {
            *nl = '\0';
        }
        glm_errf(err, "%s: not a JSON object (%s)", name,
                 root ? "wrong type" : ebuf);
        yajl_tree_free(root);
        return NULL;
    }
    return root;
}

static int
glm_config_rope(yajl_val tc, glm_config *cfg, const char *f, glm_err *err)
{
    yajl_val rp = glm_json_get(tc, "rope_parameters");
    yajl_val rs = glm_json_get(tc, "rope_scaling");
    yajl_val src, type, sec;
    float partial;
    size_t i;

    /* v5 keeps everything in rope_parameters; the hub files use top-level
     * rope_theta/partial_rotary_factor and a rope_scaling object */
    if (rp != NULL && YAJL_IS_OBJECT(rp)) {
        src = rp;
    } else {
        src = tc;
        if (rs != NULL && !YAJL_IS_NULL(rs) && !YAJL_IS_OBJECT(rs)) {
            return glm_errf(err, "%s: \"rope_scaling\" must be an object or null", f);
        }
    }
    if (glm_cfg_float(src, "rope_theta", 10000.0f, &cfg->rope_theta, f, err) != 0
        || glm_cfg_float(src, "partial_rotary_factor", 0.5f, &partial, f, err) != 0)
    {
        return -1;
    }
    if (src == tc) {
        src = (rs != NULL && YAJL_IS_OBJECT(rs)) ? rs : NULL;
    }
    type = glm_json_get(src, "rope_type");
    if (type == NULL) {
        type = glm_json_get(src, "type");
    }
    if (type != NULL && !(YAJL_IS_STRING(type)
                          && strcmp(type->u.string, "default") == 0))
    {
        return glm_errf(err, "%s: rope_type %s is not supported (only \"default\","
                        " which every GLM-4.5 checkpoint uses)", f,
                        YAJL_IS_STRING(type) ? type->u.string : "(not a string)");
    }
    if (partial <= 0.0f || partial > 1.0f) {
        return glm_errf(err, "%s: partial_rotary_factor must be in (0, 1]", f);
    }
    cfg->rotary_dim = (int) (cfg->head_dim * partial);
    if (cfg->rotary_dim < 2 || cfg->rotary_dim % 2 != 0) {
        return glm_errf(err, "%s: rotary dimension head_dim*partial_rotary_factor"
                        " = %d must be even and >= 2", f, cfg->rotary_dim);
    }

    cfg->has_mrope = cfg->arch == GLM_ARCH_VISION;
    if (!cfg->has_mrope) {
        return 0;
    }
    /* transformers' default when the key is absent */
    cfg->mrope_section[0] = 8;
    cfg->mrope_section[1] = 12;
    cfg->mrope_section[2] = 12;
    sec = glm_json_get(src, "mrope_section");
    if (sec != NULL && !YAJL_IS_NULL(sec)) {
        if (!YAJL_IS_ARRAY(sec) || sec->u.array.len != 3) {
            return glm_errf(err, "%s: \"mrope_section\" must be a list of 3 integers", f);
        }
        for (i = 0; i < 3; i++) {
            yajl_val e = sec->u.array.values[i];
            if (!YAJL_IS_INTEGER(e) || YAJL_GET_INTEGER(e) < 0
                || YAJL_GET_INTEGER(e) > 4096)
            {
                return glm_errf(err, "%s: \"mrope_section\" must be a list of 3"
                                " non-negative integers", f);
            }
            cfg->mrope_section[i] = (int) YAJL_GET_INTEGER(e);
        }
    }
    if (cfg->mrope_section[0] + cfg->mrope_section[1] + cfg->mrope_section[2]
        != cfg->rotary_dim / 2)
    {
        return glm_errf(err, "%s: mrope_section [%d, %d, %d] must sum to rotary_dim/2"
                        " = %d", f, cfg->mrope_section[0], cfg->mrope_section[1],
                        cfg->mrope_section[2], cfg->rotary_dim / 2);
    }
    return 0;
}

static int
glm_config_text(yajl_val tc, glm_config *cfg, const char *f, glm_err *err)
{
    yajl_val act;
    int r = 0, def_bias;

    def_bias = cfg->arch == GLM_ARCH_VISION;     /* class defaults differ */
    r |= glm_cfg_int(tc, "vocab_size", cfg->arch == GLM_ARCH_VISION ? 151424 : 151552,
                     1, 1 << 24, &cfg->vocab_size, f, err);
    r |= r ? 0 : glm_cfg_int(tc, "hidden_size", 4096, 1, 1 << 16, &cfg->hidden_size, f, err);
    r |= r ? 0 : glm_cfg_int(tc, "num_hidden_layers", 46, 1, 4096, &cfg->num_layers, f, err);
    r |= r ? 0 : glm_cfg_int(tc, "num_attention_heads", 96, 1, 4096, &cfg->num_heads, f, err);
    r |= r ? 0 : glm_cfg_int(tc, "num_key_value_heads", 8, 1, 4096, &cfg->num_kv_heads, f, err);
    r |= r ? 0 : glm_cfg_int(tc, "head_dim", 0, 0, 4096, &cfg->head_dim, f, err);
    r |= r ? 0 : glm_cfg_int(tc, "max_position_embeddings",
                             cfg->arch == GLM_ARCH_VISION ? 65536 : 131072, 1, INT_MAX,
                             &cfg->max_position_embeddings, f, err);
    r |= r ? 0 : glm_cfg_bool(tc, "attention_bias", def_bias, &cfg->attention_bias, f, err);
    r |= r ? 0 : glm_cfg_bool(tc, "use_qk_norm", 0, &cfg->use_qk_norm, f, err);
    r |= r ? 0 : glm_cfg_int(tc, "intermediate_size", 10944, 1, 1 << 20,
                             &cfg->intermediate_size, f, err);
    r |= r ? 0 : glm_cfg_int(tc, "moe_intermediate_size", 1408, 1, 1 << 20,
                             &cfg->moe_intermediate_size, f, err);
    r |= r ? 0 : glm_cfg_int(tc, "first_k_dense_replace", 1, 0, 4096,
                             &cfg->first_k_dense_replace, f, err);
    r |= r ? 0 : glm_cfg_int(tc, "n_routed_experts", 128, 1, 1 << 16,
                             &cfg->n_routed_experts, f, err);
    r |= r ? 0 : glm_cfg_int(tc, "n_shared_experts", 1, 0, 64, &cfg->n_shared_experts, f, err);
    r |= r ? 0 : glm_cfg_int(tc, "num_experts_per_tok", 8, 1, 1 << 16,
                             &cfg->num_experts_per_tok, f, err);
    r |= r ? 0 : glm_cfg_float(tc, "routed_scaling_factor", 1.0f,
                               &cfg->routed_scaling_factor, f, err);
    r |= r ? 0 : glm_cfg_int(tc, "n_group", 1, 1, 1 << 16, &cfg->n_group, f, err);
    r |= r ? 0 : glm_cfg_int(tc, "topk_group", 1, 1, 1 << 16, &cfg->topk_group, f, err);
    r |= r ? 0 : glm_cfg_bool(tc, "norm_topk_prob", 1, &cfg->norm_topk_prob, f, err);
    r |= r ? 0 : glm_cfg_float(tc, "rms_norm_eps", 1e-5f, &cfg->rms_norm_eps, f, err);
    r |= r ? 0 : glm_cfg_bool(tc, "tie_word_embeddings", 0, &cfg->tie_word_embeddings, f, err);
    r |= r ? 0 : glm_cfg_int(tc, "num_nextn_predict_layers", 0, 0, 64,
                             &cfg->num_nextn_predict_layers, f, err);
    r |= r ? 0 : glm_cfg_int(tc, "pad_token_id", -1, -1, INT_MAX, &cfg->pad_token_id, f, err);
    r |= r ? 0 : glm_cfg_eos(tc, cfg, f, err);
    if (r) {
        return -1;
    }
    if (cfg->head_dim == 0) {
        cfg->head_dim = cfg->hidden_size / cfg->num_heads;
    }
    act = glm_json_get(tc, "hidden_act");
    if (act != NULL && !(YAJL_IS_STRING(act) && strcmp(act->u.string, "silu") == 0)) {
        return glm_errf(err, "%s: hidden_act must be \"silu\" (GLM-4.5's activation)", f);
    }
    if (cfg->num_heads % cfg->num_kv_heads != 0) {
        return glm_errf(err, "%s: num_attention_heads %d is not a multiple of"
                        " num_key_value_heads %d", f, cfg->num_heads, cfg->num_kv_heads);
    }
    if (cfg->n_routed_experts % cfg->n_group != 0
        || cfg->n_routed_experts / cfg->n_group < 2)
    {
        return glm_errf(err, "%s: n_routed_experts %d must split into n_group %d"
                        " groups of at least 2 experts", f, cfg->n_routed_experts,
                        cfg->n_group);
    }
    if (cfg->topk_group > cfg->n_group
        || cfg->num_experts_per_tok > cfg->topk_group * (cfg->n_routed_experts / cfg->n_group))
    {
        return glm_errf(err, "%s: num_experts_per_tok %d cannot be chosen from"
                        " topk_group %d of n_group %d groups", f,
                        cfg->num_experts_per_tok, cfg->topk_group, cfg->n_group);
    }
    if (cfg->rms_norm_eps <= 0.0f) {
        return glm_errf(err, "%s: rms_norm_eps must be positive", f);
    }
    return glm_config_rope(tc, cfg, f, err);
}

static int
glm_config_generation(glm_config *cfg, const char *dir, glm_err *err)
{
    char path[4096];
    yajl_val g;
    int r = 0;
    const char *f = path;

    cfg->gen_do_sample = 0;
    cfg->gen_temperature = 1.0f;
    cfg->gen_top_p = 1.0f;
    cfg->gen_top_k = 0;
    if (glm_path_join(path, sizeof(path), dir, "generation_config.json") != 0
        || !glm_file_exists(path))
    {
        return 0;
    }
    g = glm_parse_json_file(path, f, err);
    if (g == NULL) {
        return -1;
    }
    r |= glm_cfg_bool(g, "do_sample", 0, &cfg->gen_do_sample, f, err);
    r |= r ? 0 : glm_cfg_float(g, "temperature", 1.0f, &cfg->gen_temperature, f, err);
    r |= r ? 0 : glm_cfg_float(g, "top_p", 1.0f, &cfg->gen_top_p, f, err);
    r |= r ? 0 : glm_cfg_int(g, "top_k", 0, 0, INT_MAX, &cfg->gen_top_k, f, err);
    /* generate() stops on generation_config's eos ids when it names them */
    r |= r ? 0 : glm_cfg_eos(g, cfg, f, err);
    r |= r ? 0 : glm_cfg_int(g, "pad_token_id", cfg->pad_token_id, -1, INT_MAX,
                             &cfg->pad_token_id, f, err);
    yajl_tree_free(g);
    return r ? -1 : 0;
}

/* vision_config of Glm4vMoeForConditionalGeneration; defaults are the
 * transformers class defaults, which are GLM-4.5V's values. */
static int
glm_config_vision(yajl_val root, glm_config *cfg, const char *f, glm_err *err)
{
    yajl_val vc = glm_json_get(root, "vision_config"), rp, act;
    int r = 0;

    if (vc == NULL || !YAJL_IS_OBJECT(vc)) {
        return glm_errf(err, "%s: %s needs a \"vision_config\" object", f,
                        cfg->architecture);
    }
    r |= glm_cfg_int(vc, "depth", 24, 1, 1024, &cfg->vision.depth, f, err);
    r |= r ? 0 : glm_cfg_int(vc, "hidden_size", 1536, 1, 1 << 16, &cfg->vision.hidden_size, f, err);
    r |= r ? 0 : glm_cfg_int(vc, "num_heads", 12, 1, 1024, &cfg->vision.num_heads, f, err);
    r |= r ? 0 : glm_cfg_int(vc, "intermediate_size", 10944, 1, 1 << 20,
                             &cfg->vision.intermediate_size, f, err);
    r |= r ? 0 : glm_cfg_int(vc, "out_hidden_size", 4096, 1, 1 << 16,
                             &cfg->vision.out_hidden_size, f, err);
    r |= r ? 0 : glm_cfg_int(vc, "patch_size", 14, 1, 1024, &cfg->vision.patch_size, f, err);
    r |= r ? 0 : glm_cfg_int(vc, "temporal_patch_size", 2, 1, 16,
                             &cfg->vision.temporal_patch_size, f, err);
    r |= r ? 0 : glm_cfg_int(vc, "spatial_merge_size", 2, 1, 16,
                             &cfg->vision.spatial_merge_size, f, err);
    r |= r ? 0 : glm_cfg_int(vc, "image_size", 336, 1, 1 << 16, &cfg->vision.image_size, f, err);
    r |= r ? 0 : glm_cfg_int(vc, "in_channels", 3, 3, 3, &cfg->vision.in_channels, f, err);
    r |= r ? 0 : glm_cfg_bool(vc, "attention_bias", 0, &cfg->vision.attention_bias, f, err);
    r |= r ? 0 : glm_cfg_float(vc, "rms_norm_eps", 1e-5f, &cfg->vision.rms_norm_eps, f, err);
    cfg->vision.rope_theta = 10000.0f;
    rp = glm_json_get(vc, "rope_parameters");
    if (r == 0 && rp != NULL && YAJL_IS_OBJECT(rp)) {
        r |= glm_cfg_float(rp, "rope_theta", 10000.0f, &cfg->vision.rope_theta, f, err);
    }
    if (r) {
        return -1;
    }
    act = glm_json_get(vc, "hidden_act");
    if (act != NULL && !(YAJL_IS_STRING(act) && strcmp(act->u.string, "silu") == 0)) {
        return glm_errf(err, "%s: vision_config.hidden_act must be \"silu\"", f);
    }
    if (cfg->vision.hidden_size % cfg->vision.num_heads != 0
        || (cfg->vision.hidden_size / cfg->vision.num_heads) % 4 != 0)
    {
        return glm_errf(err, "%s: vision_config hidden_size %d must split into"
                        " num_heads %d heads of a multiple of 4 (2-D RoPE)", f,
                        cfg->vision.hidden_size, cfg->vision.num_heads);
    }
    if (cfg->vision.image_size % cfg->vision.patch_size != 0) {
        return glm_errf(err, "%s: vision_config image_size %d is not a multiple of"
                        " patch_size %d", f, cfg->vision.image_size,
                        cfg->vision.patch_size);
    }
    if (cfg->vision.out_hidden_size != cfg->hidden_size) {
        return glm_errf(err, "%s: vision_config out_hidden_size %d differs from the"
                        " text hidden_size %d", f, cfg->vision.out_hidden_size,
                        cfg->hidden_size);
    }
    return 0;
}


int
glm_config_load(glm_config *cfg, const char *dir, glm_err *err)
{
    char path[4096];
    yajl_val root, archs, tc;
    const char *f = path, *name;
    int r = 0;

    memset(cfg, 0, sizeof(*cfg));
    cfg->pad_token_id = -1;
    if (glm_path_join(path, sizeof(path), dir, "config.json") != 0) {
        return glm_errf(err, "%s: path too long", dir);
    }
    root = glm_parse_json_file(path, path, err);
    if (root == NULL) {
        return -1;
    }
    archs = glm_json_get(root, "architectures");
    if (archs == NULL || !YAJL_IS_ARRAY(archs) || archs->u.array.len < 1
        || !YAJL_IS_STRING(archs->u.array.values[0]))
    {
        yajl_tree_free(root);
        return glm_errf(err, "%s: \"architectures\" must list the model class", path);
    }
    name = YAJL_GET_STRING(archs->u.array.values[0]);
    snprintf(cfg->architecture, sizeof(cfg->architecture), "%s", name);
    if (strcmp(name, "Glm4MoeForCausalLM") == 0) {
        cfg->arch = GLM_ARCH_TEXT;
        snprintf(cfg->weight_prefix, sizeof(cfg->weight_prefix), "model.");
        tc = root;
    } else if (strcmp(name, "Glm4vMoeForConditionalGeneration") == 0) {
        cfg->arch = GLM_ARCH_VISION;
        snprintf(cfg->weight_prefix, sizeof(cfg->weight_prefix), "model.language_model.");
        tc = glm_json_get(root, "text_config");
        if (tc == NULL || !YAJL_IS_OBJECT(tc)) {
            yajl_tree_free(root);
            return glm_errf(err, "%s: %s needs a \"text_config\" object", path, name);
        }
    } else {
        yajl_tree_free(root);
        return glm_errf(err, "%s: architecture \"%s\" is not served (expected"
                        " Glm4MoeForCausalLM or Glm4vMoeForConditionalGeneration)",
                        path, cfg->architecture);
    }
    r = glm_config_text(tc, cfg, f, err);
    if (r == 0 && cfg->arch == GLM_ARCH_VISION) {
        /* the ids live at the top level (and are repeated in text_config) */
        r |= glm_cfg_int(root, "image_token_id", 151363, 0, INT_MAX, &cfg->image_token_id, f, err);
        r |= r ? 0 : glm_cfg_int(root, "video_token_id", 151364, 0, INT_MAX, &cfg->video_token_id, f, err);
        r |= r ? 0 : glm_cfg_int(root, "image_start_token_id", 151339, 0, INT_MAX,
                                 &cfg->image_start_token_id, f, err);
        r |= r ? 0 : glm_cfg_int(root, "image_end_token_id", 151340, 0, INT_MAX,
                                 &cfg->image_end_token_id, f, err);
        r |= r ? 0 : glm_cfg_int(root, "video_start_token_id", 151341, 0, INT_MAX,
                                 &cfg->video_start_token_id, f, err);
        r |= r ? 0 : glm_cfg_int(root, "video_end_token_id", 151342, 0, INT_MAX,
                                 &cfg->video_end_token_id, f, err);
        r |= r ? 0 : glm_config_vision(root, cfg, f, err);
    }
    if (r == 0) {
        r = glm_quant_parse(glm_json_get(root, "quantization_config"), &cfg->quant, f, err);
    }
    yajl_tree_free(root);
    if (r != 0 || glm_config_generation(cfg, dir, err) != 0) {
        glm_config_free(cfg);
        return -1;
    }
    return 0;
}

void
glm_config_free(glm_config *cfg)
{
    glm_quant_free(cfg->quant);
    cfg->quant = NULL;
}

int
glm_config_is_eos(const glm_config *cfg, int32_t id)
{
    int i;

    for (i = 0; i < cfg->n_eos; i++) {
        if (cfg->eos_ids[i] == id) {
            return 1;
        }
    }
    return 0;
}

void
glm_config_describe(const glm_config *cfg, char *buf, size_t size)
{
    snprintf(buf, size,
             "%s: %d layers (%d dense), hidden %d, %d heads / %d kv heads x %d"
             " (rotary %d, theta %g%s), %d experts (top-%d, %d shared, groups %d/%d,"
             " scale %g), vocab %d%s",
             cfg->architecture, cfg->num_layers, cfg->first_k_dense_replace,
             cfg->hidden_size, cfg->num_heads, cfg->num_kv_heads, cfg->head_dim,
             cfg->rotary_dim, (double) cfg->rope_theta,
             cfg->has_mrope ? ", M-RoPE" : "", cfg->n_routed_experts,
             cfg->num_experts_per_tok, cfg->n_shared_experts, cfg->topk_group,
             cfg->n_group, (double) cfg->routed_scaling_factor, cfg->vocab_size,
             cfg->use_qk_norm ? ", qk-norm" : "");
}
