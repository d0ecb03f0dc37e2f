/*
 * vision_check.c: images and videos, from file bytes to logits, against the
 * references t/reference/make_vision_fixtures.py wrote from transformers.
 *
 *   vision_check pix VISION_DIR
 *     For every case of VISION_DIR/pix_reference.json: decode the input with
 *     our decoders, run our GLM-4V processor with the case's settings and
 *     compare grid_thw, the video frame choice and timestamps, and every
 *     pixel value with the reference's.  The reference pixel values are
 *     rebuilt here from the reference's resized RGB (the PNG the script
 *     saved, which it checked reproduces transformers' pixel_values to 1e-6):
 *     this file places each value by MODEL.md 5.4's layout on its own, so
 *     the patch order is checked as well.  Prints
 *       PIX <input> grid=<t>x<h>x<w> grid_match=yes max_abs_diff=<x>
 *     and for inputs the reference refuses, PIX <input> refused error_match=yes.
 *
 *   vision_check vl MODEL_DIR
 *     For every case of MODEL_DIR/vl_reference.json: render the messages
 *     with the checkpoint's template, load the media through the server's
 *     path (media_request.c), expand the prompt, and compare the ids, the
 *     M-RoPE positions, every position's top-k logits and the last row, and
 *     a 32-token greedy continuation.  Prints
 *       REF-VL <case> max_abs_logit_diff=<x> greedy=<k>/<n>
 *
 * Exit status 1 when anything is off its tolerance.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "media/media.h"
#include "media/media_request.h"
#include "model/model.h"
#include "model/sampling.h"
#include "model/session.h"
#include "model/vision.h"
#include "output/json_text.h"
#include "ref_common.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

/* pixel values: images must be PIL-exact; videos use torchvision's resize */
#define GLM_PIX_TOL_IMAGE  1e-5
#define GLM_PIX_TOL_VIDEO  1e-5
#define GLM_VL_TOL         5e-3

static int
glm_geti(yajl_val obj, const char *key, int def)
{
    yajl_val v = glm_get(obj, key);

    return v != NULL && YAJL_IS_INTEGER(v) ? (int) YAJL_GET_INTEGER(v) : def;
}

static yajl_val
glm_load_json(const char *dir, const char *name, char **text_out, const char *from,
    const char *to)
{
    char path[PATH_MAX], ebuf[256];
    glm_err err;
    char *text;
    yajl_val v;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    text = glm_read_file(path, NULL, &err);
    if (text == NULL) {
        printf("error: %s\n", err.msg);
        return NULL;
    }
    if (from != NULL) {
        /* make the fixture's relative media URLs absolute */
        size_t nf = strlen(from), nt = strlen(to), n = 0, cap = strlen(text) * 2 + 1;
        char *o = malloc(cap), *p = text;
        while (*p) {
            if (strncmp(p, from, nf) == 0) {
                if (n + nt + 1 >= cap) {
                    cap = cap * 2 + nt;
                    o = realloc(o, cap);
                }
                memcpy(o + n, to, nt);
                n += nt;
                p += nf;
            } else {
                if (n + 2 >= cap) {
                    cap *= 2;
                    o = realloc(o, cap);
                }
                o[n++] = *p++;
            }
        }
        o[n] = '\0';
        free(text);
        text = o;
    }
    v = yajl_tree_parse(text, ebuf, sizeof(ebuf));
    if (v == NULL) {
        printf("error: %s: %s\n", path, ebuf);
    }
    *text_out = text;
    return v;
}

static uint8_t *
glm_file_bytes(const char *dir, const char *rel, size_t *len)
{
    char path[PATH_MAX];
    glm_err err;
    char *b;

    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    b = glm_read_file(path, len, &err);
    if (b == NULL) {
        printf("error: %s\n", err.msg);
    }
    return (uint8_t *) b;
}

/* An 8-bit RGB PNG of the fixtures, through our own decoder. */
static int
glm_png(const char *dir, const char *rel, glm_image *im)
{
    glm_media_limits lim;
    glm_err err;
    size_t len;
    uint8_t *b = glm_file_bytes(dir, rel, &len);
    int r;

    if (b == NULL) {
        return -1;
    }
    glm_media_limits_default(&lim);
    r = glm_image_decode(b, len, &lim, im, &err);
    free(b);
    if (r != 0) {
        printf("error: %s: %s\n", rel, err.msg);
    }
    return r;
}

/* max |ours - (u8/255 - mean)/std| with the value placed by MODEL.md 5.4:
 * row ((r/2)*(gw/2) + c/2)*4 + (r%2)*2 + c%2 of frame pair k, and inside the
 * row (channel, t, py, px); frame 2k+t of the sampled (padded) frames */
static double
glm_pix_diff(const glm_vision_input *in, glm_image *frames, int n_frames,
    const double mean[3], const double std[3], int patch, int T)
{
    int gh = in->grid_h, gw = in->grid_w, k, r, c, ch, t, py, px;
    double mx = 0.0;

    for (k = 0; k < in->grid_t; k++) {
        for (r = 0; r < gh; r++) {
            for (c = 0; c < gw; c++) {
                int64_t row = (int64_t) k * gh * gw
                              + (((r / 2) * (gw / 2) + c / 2) * 4 + (r % 2) * 2 + c % 2);
                const float *pv = in->pixel_values + row * in->patch_dim;
                for (ch = 0; ch < 3; ch++) {
                    for (t = 0; t < T; t++) {
                        const glm_image *f = &frames[n_frames == 1 ? 0 : 2 * k + t];
                        for (py = 0; py < patch; py++) {
                            for (px = 0; px < patch; px++) {
                                int y = r * patch + py, x = c * patch + px;
                                double u = f->rgb[((size_t) y * f->width + x) * 3 + ch];
                                double ref = (u / 255.0 - mean[ch]) / std[ch];
                                double d = fabs(pv[((ch * T + t) * patch + py) * patch + px] - ref);
                                mx = d > mx ? d : mx;
                            }
                        }
                    }
                }
            }
        }
    }
    return mx;
}

static void
glm_proc_of(yajl_val pc, glm_vision_proc *p, int video)
{
    yajl_val v;

    if (video) {
        glm_vision_proc_default_video(p);
    } else {
        glm_vision_proc_default_image(p);
    }
    p->min_pixels = glm_geti(pc, "min_pixels", (int) p->min_pixels);
    p->max_pixels = glm_geti(pc, "max_pixels", (int) p->max_pixels);
    if ((v = glm_get(pc, "fps")) != NULL && YAJL_IS_NUMBER(v)) {
        p->fps = YAJL_GET_DOUBLE(v);
    }
    if ((v = glm_get(pc, "max_duration")) != NULL && YAJL_IS_NUMBER(v)) {
        p->max_duration = YAJL_GET_DOUBLE(v);
    }
}

static int
glm_pix_case(const char *dir, yajl_val cs, const double mean[3], const double std[3])
{
    const char *name = glm_get(cs, "name")->u.string;
    const char *kind = glm_get(cs, "kind")->u.string;
    yajl_val grid = glm_get(cs, "grid_thw"), exp = glm_get(cs, "expected");
    int video = strcmp(kind, "video") == 0, ok = 1, i, nf = 0;
    glm_vision_proc proc;
    glm_media_limits lim;
    glm_vision_input in = { 0 };
    glm_image *frames = NULL;
    glm_err err;
    size_t len;
    uint8_t *bytes;
    double diff = 0.0, tol = video ? GLM_PIX_TOL_VIDEO : GLM_PIX_TOL_IMAGE;
    int r;

    glm_proc_of(glm_get(cs, "processor"), &proc, video);
    glm_media_limits_default(&lim);
    bytes = glm_file_bytes(dir, glm_get(cs, "file")->u.string, &len);
    if (bytes == NULL) {
        return 1;
    }
    if (!video) {
        glm_image im = { 0 };
        yajl_val dec = glm_get(cs, "decoded");

        r = glm_image_decode(bytes, len, &lim, &im, &err);
        if (r == 0 && dec != NULL && YAJL_IS_STRING(dec)) {
            /* the decoder on its own: the reference's RGB before resizing */
            glm_image want = { 0 };
            yajl_val ds = glm_get(cs, "decoded_size");
            if (glm_png(dir, dec->u.string, &want) != 0 || want.width != im.width
                || want.height != im.height)
            {
                printf("PIX %s decoded size %dx%d, reference %lldx%lld\n", name, im.width,
                       im.height, YAJL_GET_INTEGER(ds->u.array.values[0]),
                       YAJL_GET_INTEGER(ds->u.array.values[1]));
                ok = 0;
            } else {
                int dmax = 0;
                size_t k;
                for (k = 0; k < (size_t) im.width * im.height * 3; k++) {
                    int d = abs((int) im.rgb[k] - (int) want.rgb[k]);
                    dmax = d > dmax ? d : dmax;
                }
                if (dmax != 0) {
                    printf("PIX %s decoded RGB differs from PIL's by up to %d levels\n",
                           name, dmax);
                    ok = 0;
                }
            }
            glm_image_free(&want);
        }
        if (r == 0) {
            r = glm_preprocess_image(&im, &proc, &in, &err);
        }
        glm_image_free(&im);
        free(bytes);
        if (glm_get(cs, "error") != NULL) {
            printf("PIX %s refused error_match=%s%s%s\n", name, r != 0 ? "yes" : "no",
                   r != 0 ? " message=" : "", r != 0 ? err.msg : "");
            glm_vision_input_free(&in);
            return r != 0 && ok ? 0 : 1;
        }
        if (r != 0) {
            printf("PIX %s error: %s\n", name, err.msg);
            return 1;
        }
        frames = calloc(1, sizeof(glm_image));
        nf = 1;
        if (glm_png(dir, exp->u.string, &frames[0]) != 0) {
            ok = 0;
        }
    } else {
        glm_video v = { 0 };
        yajl_val fi = glm_get(cs, "frame_indices"), ps = glm_get(cs, "pair_seconds");

        r = glm_video_decode(bytes, len, &lim, glm_sample_frames_fps, &proc, &v, &err);
        free(bytes);
        if (r == 0) {
            if ((size_t) v.n_frames != fi->u.array.len) {
                printf("PIX %s sampled %d frames, reference %zu\n", name, v.n_frames,
                       fi->u.array.len);
                ok = 0;
            } else {
                for (i = 0; i < v.n_frames; i++) {
                    if (v.frame_index[i] != YAJL_GET_INTEGER(fi->u.array.values[i])) {
                        printf("PIX %s frame %d is stream frame %d, reference %lld\n", name,
                               i, v.frame_index[i], YAJL_GET_INTEGER(fi->u.array.values[i]));
                        ok = 0;
                    }
                }
            }
            r = glm_preprocess_video(&v, &proc, &in, &err);
        }
        glm_video_free(&v);
        if (r != 0) {
            printf("PIX %s error: %s\n", name, err.msg);
            return 1;
        }
        for (i = 0; ok && i < in.grid_t && (size_t) i < ps->u.array.len; i++) {
            if (in.pair_seconds[i] != YAJL_GET_INTEGER(ps->u.array.values[i])) {
                printf("PIX %s pair %d at %d s, reference %lld s\n", name, i,
                       in.pair_seconds[i], YAJL_GET_INTEGER(ps->u.array.values[i]));
                ok = 0;
            }
        }
        nf = (int) exp->u.array.len;
        frames = calloc((size_t) nf, sizeof(glm_image));
        for (i = 0; i < nf; i++) {
            if (glm_png(dir, exp->u.array.values[i]->u.string, &frames[i]) != 0) {
                ok = 0;
            }
        }
    }
    {
        int gt = (int) YAJL_GET_INTEGER(grid->u.array.values[0]);
        int gh = (int) YAJL_GET_INTEGER(grid->u.array.values[1]);
        int gw = (int) YAJL_GET_INTEGER(grid->u.array.values[2]);
        int match = gt == in.grid_t && gh == in.grid_h && gw == in.grid_w;

        if (match && ok) {
            diff = glm_pix_diff(&in, frames, nf, mean, std, proc.patch_size,
                                proc.temporal_patch_size);
        }
        printf("PIX %s grid=%dx%dx%d grid_match=%s max_abs_diff=%.3g%s\n", name, in.grid_t,
               in.grid_h, in.grid_w, match ? "yes" : "no", match && ok ? diff : NAN,
               match ? "" : " (reference grid differs)");
        ok = ok && match && diff <= tol;
    }
    for (i = 0; i < nf; i++) {
        glm_image_free(&frames[i]);
    }
    free(frames);
    glm_vision_input_free(&in);
    return !ok;
}

static int
glm_pix(const char *dir)
{
    char *text = NULL;
    yajl_val ref = glm_load_json(dir, "pix_reference.json", &text, NULL, NULL);
    yajl_val cases = glm_get(ref, "cases"), m = glm_get(ref, "image_mean"),
             s = glm_get(ref, "image_std");
    double mean[3], std[3];
    int bad = 0, i;
    size_t k;

    if (cases == NULL || m == NULL || s == NULL) {
        printf("PIX error: %s/pix_reference.json lacks cases/image_mean/image_std\n", dir);
        return 1;
    }
    for (i = 0; i < 3; i++) {
        mean[i] = YAJL_GET_DOUBLE(m->u.array.values[i]);
        std[i] = YAJL_GET_DOUBLE(s->u.array.values[i]);
    }
    for (k = 0; k < cases->u.array.len; k++) {
        bad += glm_pix_case(dir, cases->u.array.values[k], mean, std);
    }
    yajl_tree_free(ref);
    free(text);
    return bad != 0;
}

/* ---- REF-VL --------------------------------------------------------------------------- */

static int
glm_vl_case(const char *dir, glm_model *m, glm_tokenizer *tok, glm_chat_template *tpl,
    const glm_media_opts *mo, yajl_val cs)
{
    const glm_config *c = &m->cfg;
    const char *base = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    char name[256];
    char *prompt = NULL;
    size_t plen = 0;
    glm_tokenizer_ids ids = { 0 }, x = { 0 };
    glm_media_set set;
    glm_grid *grids = NULL;
    glm_mm_prompt *mm = NULL;
    glm_session sess;
    glm_err err;
    int32_t *ref_ids = NULL, *greedy = NULL;
    int n_ref, ng, V = c->vocab_size, i, p, s, ok = 1, greedy_ok = 0;
    int64_t n_patches, n_rows = 0;
    float *px = NULL, *rows = NULL, *logits = NULL;
    double max_diff = 0.0, d;
    yajl_val pos = glm_get(cs, "position_ids");
    glm_str body = { 0 };
    int rc;

    /* the acceptance lines name the case; other fixtures prefix their own name */
    if (strcmp(base, "glm45v-tiny") == 0) {
        snprintf(name, sizeof(name), "%s", glm_get(cs, "name")->u.string);
    } else {
        snprintf(name, sizeof(name), "%s:%s", base, glm_get(cs, "name")->u.string);
    }
    memset(&set, 0, sizeof(set));
    glm_json_write(&body, cs);       /* the server renders request bodies */
    rc = glm_chat_template_render_request(tpl, body.data, body.len, NULL, &prompt, &plen, &err);
    glm_str_free(&body);
    if (rc != 0
        || glm_tokenizer_encode(tok, NULL, prompt, plen, &ids, &err) != 0
        || glm_media_load(mo, cs, &set, &err) != 0
        || glm_media_expand(c, tok, NULL, &set, ids.ids, ids.len, &x, &grids, &err) != 0)
    {
        printf("REF-VL %s error: %s\n", name, err.msg);
        free(prompt);
        return 1;
    }
    glm_ids_of(glm_get(cs, "ids"), &ref_ids, &n_ref);
    glm_ids_of(glm_get(cs, "greedy_ids"), &greedy, &ng);
    if ((int) x.len != n_ref || memcmp(x.ids, ref_ids, (size_t) n_ref * sizeof(int32_t)) != 0) {
        for (i = 0; i < n_ref && i < (int) x.len && x.ids[i] == ref_ids[i]; i++) {
        }
        printf("REF-VL %s prompt ids differ: ours %zu tokens, reference %d, first"
               " difference at %d\n", name, x.len, n_ref, i);
        ok = 0;
        goto done;
    }
    for (i = 0; i < set.n; i++) {
        n_rows += glm_vision_grid_tokens(c, &grids[i]);
    }
    px = glm_media_pixels(&set, &n_patches);
    rows = malloc((size_t) (n_rows ? n_rows : 1) * c->hidden_size * sizeof(float));
    if (glm_vision_encode(m->vision, m->be, px, grids, set.n, rows, &err) != 0
        || (mm = glm_mm_prompt_new(c, x.ids, (int) x.len, grids, set.n, NULL, rows,
                                   n_rows, &err)) == NULL)
    {
        printf("REF-VL %s error: %s\n", name, err.msg);
        ok = 0;
        goto done;
    }
    {
        /* the tower alone, against the reference's merged rows */
        yajl_val emb = glm_get(cs, "image_embeds");
        double td = 0.0;
        int64_t r, k;
        if (emb == NULL) {
            emb = glm_get(cs, "video_embeds");
        }
        if (emb != NULL && YAJL_IS_ARRAY(emb) && (int64_t) emb->u.array.len == n_rows) {
            for (r = 0; r < n_rows; r++) {
                yajl_val row = emb->u.array.values[r];
                for (k = 0; k < c->hidden_size; k++) {
                    d = fabs((double) mm->rows[r * c->hidden_size + k]
                             - YAJL_GET_DOUBLE(row->u.array.values[k]));
                    td = d > td ? d : td;
                }
            }
            printf("TOWER %s rows=%lld max_abs_diff=%.3g\n", name, (long long) n_rows, td);
        }
    }
    if (pos != NULL && YAJL_IS_ARRAY(pos) && pos->u.array.len == 3) {
        for (p = 0; p < n_ref; p++) {
            for (i = 0; i < 3; i++) {
                if (mm->pos3[3 * p + i]
                    != YAJL_GET_INTEGER(pos->u.array.values[i]->u.array.values[p]))
                {
                    printf("REF-VL %s rope position of token %d axis %d: ours %d, reference"
                           " %lld\n", name, p, i, mm->pos3[3 * p + i],
                           YAJL_GET_INTEGER(pos->u.array.values[i]->u.array.values[p]));
                    ok = 0;
                    goto done;
                }
            }
        }
    }
    if (glm_get(cs, "rope_delta") != NULL
        && mm->rope_delta != glm_geti(cs, "rope_delta", INT_MIN))
    {
        printf("REF-VL %s rope delta: ours %d, reference %d\n", name, mm->rope_delta,
               glm_geti(cs, "rope_delta", 0));
        ok = 0;
    }

    /* every position's logits, in one step and in 5-token chunks */
    logits = malloc((size_t) n_ref * V * sizeof(float));
    for (i = 0; i < 2; i++) {
        yajl_val tk_ids = glm_get(cs, "topk_ids"), tk_vals = glm_get(cs, "topk_logits");
        yajl_val last = glm_get(cs, "last_logits");
        if (glm_session_init(&sess, m, n_ref + ng + 1, 16, &err) != 0) {
            printf("REF-VL %s error: %s\n", name, err.msg);
            ok = 0;
            goto done;
        }
        sess.mm = mm;
        if (glm_session_feed(&sess, x.ids, n_ref, i ? 5 : 0, logits, 1, &err) != 0) {
            printf("REF-VL %s error: %s\n", name, err.msg);
            glm_session_free(&sess);
            ok = 0;
            goto done;
        }
        glm_session_free(&sess);
        for (p = 0; p < n_ref; p++) {
            d = glm_topk_diff(logits + (size_t) p * V, tk_ids->u.array.values[p],
                              tk_vals->u.array.values[p]);
            max_diff = d > max_diff ? d : max_diff;
        }
        for (p = 0; p < V; p++) {
            d = fabs((double) logits[(size_t) (n_ref - 1) * V + p]
                     - YAJL_GET_DOUBLE(last->u.array.values[p]));
            max_diff = d > max_diff ? d : max_diff;
        }
    }

    /* greedy decode: positions after the prompt continue at p + rope_delta */
    if (glm_session_init(&sess, m, n_ref + ng + 1, 16, &err) != 0) {
        printf("REF-VL %s error: %s\n", name, err.msg);
        ok = 0;
        goto done;
    }
    sess.mm = mm;
    glm_session_feed(&sess, x.ids, n_ref, 0, logits, 0, &err);
    for (s = 0; s < ng; s++) {
        yajl_val st_ids = glm_get(cs, "step_topk_ids"), st_vals = glm_get(cs, "step_topk_logits");
        int32_t next = glm_argmax(logits, V);
        d = glm_topk_diff(logits, st_ids->u.array.values[s], st_vals->u.array.values[s]);
        max_diff = d > max_diff ? d : max_diff;
        if (next != greedy[s]) {
            fprintf(stderr, "REF-VL %s greedy step %d: ours %d, reference %d\n", name, s,
                    next, greedy[s]);
            break;
        }
        greedy_ok++;
        if (glm_config_is_eos(c, next) || s + 1 == ng) {
            continue;
        }
        if (glm_session_feed(&sess, &next, 1, 0, logits, 0, &err) != 0) {
            printf("REF-VL %s error: %s\n", name, err.msg);
            ok = 0;
            break;
        }
    }
    glm_session_free(&sess);
    printf("REF-VL %s max_abs_logit_diff=%.3g greedy=%d/%d\n", name, max_diff, greedy_ok, ng);
    ok = ok && max_diff <= GLM_VL_TOL && greedy_ok == ng;

done:
    free(prompt);
    free(px);
    if (mm == NULL) {
        free(rows);
    }
    glm_mm_prompt_unref(mm);
    free(grids);
    free(logits);
    free(ref_ids);
    free(greedy);
    glm_tokenizer_ids_free(&ids);
    glm_tokenizer_ids_free(&x);
    glm_media_set_free(&set);
    return !ok;
}

static int
glm_vl(const char *dir)
{
    char abs[PATH_MAX], to[PATH_MAX + 16], *text = NULL, path[PATH_MAX];
    glm_backend *be = glm_backend_cpu_create(0);
    glm_model *m;
    glm_tokenizer *tok;
    glm_media_opts mo;
    glm_chat_template *tpl;
    glm_err err;
    yajl_val ref, cases;
    int bad = 0;
    size_t k;

    if (realpath(dir, abs) == NULL) {
        printf("REF-VL error: %s: not found\n", dir);
        return 1;
    }
    snprintf(to, sizeof(to), "file://%s/media/", abs);
    m = glm_model_load(dir, be, &err);
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    tok = m ? glm_tokenizer_load(path, &err) : NULL;
    tpl = tok ? glm_chat_template_load(dir, NULL, &err) : NULL;
    if (tpl == NULL || glm_media_opts_init(&mo, dir, &err) != 0
        || glm_media_opts_allow_root(&mo, abs, &err) != 0)
    {
        printf("REF-VL error: %s\n", err.msg);
        return 1;
    }
    ref = glm_load_json(dir, "vl_reference.json", &text, "file://media/", to);
    cases = glm_get(ref, "cases");
    if (cases == NULL || !YAJL_IS_ARRAY(cases)) {
        printf("REF-VL error: %s/vl_reference.json has no cases\n", dir);
        return 1;
    }
    for (k = 0; k < cases->u.array.len; k++) {
        bad += glm_vl_case(dir, m, tok, tpl, &mo, cases->u.array.values[k]);
    }
    yajl_tree_free(ref);
    free(text);
    glm_media_opts_free(&mo);
    glm_chat_template_free(tpl);
    glm_tokenizer_free(tok);
    glm_model_free(m);
    be->destroy(be);
    return bad != 0;
}

int
main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "pix") == 0) {
        return glm_pix(argv[2]);
    }
    if (argc == 3 && strcmp(argv[1], "vl") == 0) {
        return glm_vl(argv[2]);
    }
    fprintf(stderr, "usage: vision_check pix VISION_DIR | vl MODEL_DIR\n");
    return 2;
}
