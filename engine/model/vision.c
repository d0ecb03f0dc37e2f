/*
 * vision.c: see vision.h.  The tower is written against the backend's ops
 * like the text decoder; the only host-side work is the per-grid position
 * table resampling and the rope coordinates, both O(patches).
 *
 * Weights are used in place: the Conv3d patch embedding is a [hidden,
 * 3*2*14*14] matrix over the processor's (C, T, py, px) rows, the fused qkv
 * projection is read as three row-slices, and the 2x2 Conv2d is a
 * [out, hidden*4] matrix once each group of four patches is transposed to
 * (channel, in_row, in_col) order, exactly the view/permute the reference
 * does before its conv.
 */
#include "vision.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    glm_tensor  *norm1, *norm2;
    glm_tensor   wq, wk, wv;          /* row-slices of attn.qkv.weight */
    glm_tensor   bq, bk, bv;          /* ... and of its bias, if any */
    int          has_bias;
    glm_tensor  *proj;
    glm_tensor  *gate, *up, *down;
} glm_vision_block;

struct glm_vision {
    const glm_config *cfg;
    int          D, heads, head_dim, out, merge, side;
    glm_tensor   patch_w;             /* [D, 3*T*p*p] view of the Conv3d */
    glm_tensor  *patch_b;
    glm_tensor  *post_conv_norm, *pos_table, *post_norm;
    glm_vision_block *blocks;
    glm_tensor   down_w;              /* [out, D*m*m] view of the Conv2d */
    glm_tensor  *down_b;
    glm_tensor  *m_proj, *m_ln_w, *m_ln_b, *m_gate, *m_up, *m_down;
    float       *inv_freq;            /* [head_dim/2] */
    int         *axis_of_freq;        /* 1 (row) for the first half, 2 (col) */
};

/* ---- binding ---------------------------------------------------------------- */

static glm_tensor *
glm_vget(glm_checkpoint *ck, glm_err *err, int *failed, int ndim, const int64_t *shape,
    const char *fmt, int l)
{
    char name[256];
    glm_tensor *t;

    if (*failed) {
        return NULL;
    }
    snprintf(name, sizeof(name), fmt, l);
    t = glm_checkpoint_get(ck, name, ndim, shape, err);
    if (t == NULL) {
        *failed = 1;
    }
    return t;
}

/* The [rows, cols] weight of a Linear module of the tower (fmt names the
 * module, without ".weight"): float, or FP8 with its scale (quant.h). */
static glm_tensor *
glm_vget_linear(glm_checkpoint *ck, const glm_config *c, glm_err *err, int *failed,
    int64_t rows, int64_t cols, const char *fmt, int l)
{
    char name[256];
    glm_tensor *t;

    if (*failed) {
        return NULL;
    }
    snprintf(name, sizeof(name), fmt, l);
    t = glm_quant_bind_linear(ck, c->quant, name, rows, cols, 0, err);
    if (t == NULL) {
        *failed = 1;
    }
    return t;
}

/* A 2-D [rows, cols] view of rows [row0, row0+rows) of t, flattened.  An
 * FP8 weight's scale stays indexed by the rows of the whole weight. */
static glm_tensor
glm_view_rows(const glm_tensor *t, int64_t row0, int64_t rows, int64_t cols)
{
    glm_tensor v = *t;
    size_t es = glm_dtype_size(t->dtype);

    v.ndim = cols > 0 ? 2 : 1;
    v.shape[0] = rows;
    v.shape[1] = cols > 0 ? cols : 0;
    v.numel = rows * (cols > 0 ? cols : 1);
    v.data = (const char *) t->data + (size_t) row0 * (size_t) (cols > 0 ? cols : 1) * es;
    v.nbytes = (size_t) v.numel * es;
    v.scale_row0 = t->scale_row0 + row0;
    return v;
}

glm_vision *
glm_vision_bind(glm_checkpoint *ck, const glm_config *c, glm_err *err)
{
    glm_vision *v = calloc(1, sizeof(*v));
    int failed = 0, l, j, D, p, T, m, O, I, quarter;
    int64_t s1[1], s2[2], s5[5], s4[4];
    glm_tensor *t;

    if (v == NULL) {
        glm_errf(err, "out of memory");
        return NULL;
    }
    v->cfg = c;
    D = v->D = c->vision.hidden_size;
    v->heads = c->vision.num_heads;
    v->head_dim = D / v->heads;
    O = v->out = c->vision.out_hidden_size;
    m = v->merge = c->vision.spatial_merge_size;
    v->side = c->vision.image_size / c->vision.patch_size;
    p = c->vision.patch_size;
    T = c->vision.temporal_patch_size;
    I = c->vision.intermediate_size;
    v->blocks = calloc((size_t) c->vision.depth, sizeof(glm_vision_block));
    v->inv_freq = calloc((size_t) v->head_dim / 2, sizeof(float));
    v->axis_of_freq = calloc((size_t) v->head_dim / 2, sizeof(int));
    if (v->blocks == NULL || v->inv_freq == NULL || v->axis_of_freq == NULL) {
        glm_vision_free(v);
        glm_errf(err, "out of memory");
        return NULL;
    }

#define V1(n, fmt, l) (s1[0] = (n), glm_vget(ck, err, &failed, 1, s1, fmt, l))
#define V2(a, b, fmt, l) (s2[0] = (a), s2[1] = (b), glm_vget(ck, err, &failed, 2, s2, fmt, l))
#define LIN(a, b, fmt, l) glm_vget_linear(ck, c, err, &failed, (a), (b), fmt, l)
    s5[0] = D; s5[1] = 3; s5[2] = T; s5[3] = p; s5[4] = p;
    t = glm_vget(ck, err, &failed, 5, s5, "model.visual.patch_embed.proj.weight", 0);
    if (t != NULL) {
        v->patch_w = glm_view_rows(t, 0, D, (int64_t) 3 * T * p * p);
    }
    v->patch_b = V1(D, "model.visual.patch_embed.proj.bias", 0);
    v->post_conv_norm = V1(D, "model.visual.post_conv_layernorm.weight", 0);
    v->pos_table = V2((int64_t) v->side * v->side, D,
                      "model.visual.embeddings.position_embedding.weight", 0);
    for (l = 0; l < c->vision.depth && !failed; l++) {
        glm_vision_block *B = &v->blocks[l];

        B->norm1 = V1(D, "model.visual.blocks.%d.norm1.weight", l);
        B->norm2 = V1(D, "model.visual.blocks.%d.norm2.weight", l);
        t = LIN(3 * D, D, "model.visual.blocks.%d.attn.qkv", l);
        if (t != NULL) {
            B->wq = glm_view_rows(t, 0, D, D);
            B->wk = glm_view_rows(t, D, D, D);
            B->wv = glm_view_rows(t, 2 * D, D, D);
        }
        if (c->vision.attention_bias) {
            t = V1(3 * D, "model.visual.blocks.%d.attn.qkv.bias", l);
            if (t != NULL) {
                B->bq = glm_view_rows(t, 0, D, 0);
                B->bk = glm_view_rows(t, D, D, 0);
                B->bv = glm_view_rows(t, 2 * D, D, 0);
                B->has_bias = 1;
            }
        }
        B->proj = LIN(D, D, "model.visual.blocks.%d.attn.proj", l);
        /* the blocks' MLP is out_hidden_size wide (transformers' Glm4vMoeisionMlp) */
        B->gate = LIN(O, D, "model.visual.blocks.%d.mlp.gate_proj", l);
        B->up = LIN(O, D, "model.visual.blocks.%d.mlp.up_proj", l);
        B->down = LIN(D, O, "model.visual.blocks.%d.mlp.down_proj", l);
    }
    v->post_norm = V1(D, "model.visual.post_layernorm.weight", 0);
    s4[0] = O; s4[1] = D; s4[2] = m; s4[3] = m;
    t = glm_vget(ck, err, &failed, 4, s4, "model.visual.downsample.weight", 0);
    if (t != NULL) {
        v->down_w = glm_view_rows(t, 0, O, (int64_t) D * m * m);
    }
    v->down_b = V1(O, "model.visual.downsample.bias", 0);
    v->m_proj = LIN(O, O, "model.visual.merger.proj", 0);
    v->m_ln_w = V1(O, "model.visual.merger.post_projection_norm.weight", 0);
    v->m_ln_b = V1(O, "model.visual.merger.post_projection_norm.bias", 0);
    v->m_gate = LIN(I, O, "model.visual.merger.gate_proj", 0);
    v->m_up = LIN(I, O, "model.visual.merger.up_proj", 0);
    v->m_down = LIN(O, I, "model.visual.merger.down_proj", 0);
#undef V1
#undef V2
#undef LIN
    if (failed) {
        glm_vision_free(v);
        return NULL;
    }

    /* 2-D RoPE over the whole head: the first half of the frequencies turns
     * with the patch row, the second with the column, the same inv_freq
     * 1/theta^(2j/(head_dim/2)) for both (transformers' axial rope) */
    quarter = v->head_dim / 4;
    for (j = 0; j < v->head_dim / 2; j++) {
        float expo = (float) (2 * (j % quarter)) / (float) (v->head_dim / 2);
        v->inv_freq[j] = 1.0f / powf(c->vision.rope_theta, expo);
        v->axis_of_freq[j] = j < quarter ? 1 : 2;
    }
    return v;
}

void
glm_vision_free(glm_vision *v)
{
    if (v != NULL) {
        free(v->blocks);
        free(v->inv_freq);
        free(v->axis_of_freq);
        free(v);
    }
}

int64_t
glm_vision_grid_tokens(const glm_config *c, const glm_grid *g)
{
    int m = c->vision.spatial_merge_size;

    return (int64_t) g->t * g->h * g->w / (m * m);
}

/* ---- host-side geometry ----------------------------------------------------- */

/* torch's cubic convolution weights (A = -0.75) for fractional offset t */
static void
glm_cubic_weights(float t, float w[4])
{
    const float A = -0.75f;
    float x;

    x = t + 1.0f;
    w[0] = ((A * x - 5.0f * A) * x + 8.0f * A) * x - 4.0f * A;
    x = t;
    w[1] = ((A + 2.0f) * x - (A + 3.0f)) * x * x + 1.0f;
    x = 1.0f - t;
    w[2] = ((A + 2.0f) * x - (A + 3.0f)) * x * x + 1.0f;
    x = 2.0f - t;
    w[3] = ((A * x - 5.0f * A) * x + 8.0f * A) * x - 4.0f * A;
}

static int
glm_clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/*
 * The learned side x side position table resampled to an h x w patch grid:
 * F.grid_sample(mode="bicubic", align_corners=False, padding_mode="border")
 * at the patch centres, in fp32.  Out rows follow the processor's 2x2-block
 * patch order.  Taps beyond the table repeat its edge (border padding).
 */
static void
glm_pos_embed(const glm_vision *v, const float *table, int h, int w, float *out)
{
    int D = v->D, S = v->side, m = v->merge, r, c, i, j, d;
    float *rowv = malloc((size_t) 4 * D * sizeof(float));
    int64_t n = 0;

    if (rowv == NULL) {
        return;
    }
    for (r = 0; r < h; r += m) {
        for (c = 0; c < w; c += m) {
            for (i = 0; i < m; i++) {
                for (j = 0; j < m; j++) {
                    int pr = r + i, pc = c + j, ty, tx, x0, y0;
                    float gx = ((float) pc + 0.5f) / (float) w * 2.0f - 1.0f;
                    float gy = ((float) pr + 0.5f) / (float) h * 2.0f - 1.0f;
                    float ix = ((gx + 1.0f) * (float) S - 1.0f) / 2.0f;
                    float iy = ((gy + 1.0f) * (float) S - 1.0f) / 2.0f;
                    float fx = floorf(ix), fy = floorf(iy), wx[4], wy[4];
                    float *o = out + n * D;

                    x0 = (int) fx;
                    y0 = (int) fy;
                    glm_cubic_weights(ix - fx, wx);
                    glm_cubic_weights(iy - fy, wy);
                    /* four x-interpolations, then one along y, as torch */
                    for (ty = 0; ty < 4; ty++) {
                        int sy = glm_clampi(y0 - 1 + ty, 0, S - 1);
                        float *acc = rowv + (size_t) ty * D;
                        for (d = 0; d < D; d++) {
                            acc[d] = 0.0f;
                        }
                        for (tx = 0; tx < 4; tx++) {
                            int sx = glm_clampi(x0 - 1 + tx, 0, S - 1);
                            const float *src = table + ((size_t) sy * S + sx) * D;
                            for (d = 0; d < D; d++) {
                                acc[d] += src[d] * wx[tx];
                            }
                        }
                    }
                    for (d = 0; d < D; d++) {
                        o[d] = rowv[d] * wy[0] + rowv[D + d] * wy[1]
                               + rowv[2 * D + d] * wy[2] + rowv[3 * D + d] * wy[3];
                    }
                    n++;
                }
            }
        }
    }
    free(rowv);
}

/* (0, row, col) of each patch in the processor's block order */
static void
glm_patch_coords(int h, int w, int m, int32_t *pos3)
{
    int r, c, i, j;
    int64_t n = 0;

    for (r = 0; r < h; r += m) {
        for (c = 0; c < w; c += m) {
            for (i = 0; i < m; i++) {
                for (j = 0; j < m; j++) {
                    pos3[3 * n] = 0;
                    pos3[3 * n + 1] = r + i;
                    pos3[3 * n + 2] = c + j;
                    n++;
                }
            }
        }
    }
}

/* ---- the tower ------------------------------------------------------------------ */

int
glm_vision_encode(glm_vision *v, glm_backend *be, const float *pixels,
    const glm_grid *grids, int n_grids, float *out, glm_err *err)
{
    const glm_config *c = v->cfg;
    int D = v->D, O = v->out, m = v->merge, hd = v->head_dim, g, k, l;
    int I = c->vision.intermediate_size, n_seg = 0, K = (int) v->patch_w.shape[1];
    int Wmlp = O > I ? O : I;
    int64_t N = 0, Nm, off = 0;
    float eps = c->vision.rms_norm_eps;
    float *table = NULL, *pe_host = NULL;
    void *px, *x, *h, *q, *kk, *vv, *a, *y, *gt, *up, *z;   /* be->act_dtype */
    int32_t *pos3 = NULL, *cu = NULL;

    for (g = 0; g < n_grids; g++) {
        if (grids[g].t < 1 || grids[g].h < m || grids[g].w < m
            || grids[g].h % m || grids[g].w % m)
        {
            return glm_errf(err, "vision grid %dx%dx%d is not a positive multiple of"
                            " the %dx%d merge", grids[g].t, grids[g].h, grids[g].w, m, m);
        }
        N += (int64_t) grids[g].t * grids[g].h * grids[g].w;
        n_seg += grids[g].t;
    }
    if (N == 0) {
        return 0;
    }
    if (N > INT32_MAX / 4) {
        return glm_errf(err, "vision input of %lld patches is too large", (long long) N);
    }
    Nm = N / (m * m);

    /* host geometry: rope coordinates, attention segments, position table */
    pos3 = malloc((size_t) N * 3 * sizeof(int32_t));
    cu = malloc((size_t) (n_seg + 1) * sizeof(int32_t));
    table = malloc((size_t) v->side * v->side * D * sizeof(float));
    pe_host = malloc((size_t) N * D * sizeof(float));
    if (pos3 == NULL || cu == NULL || table == NULL || pe_host == NULL) {
        free(pos3); free(cu); free(table); free(pe_host);
        return glm_errf(err, "out of memory for %lld vision patches", (long long) N);
    }
    glm_tensor_to_f32(v->pos_table, 0, v->pos_table->numel, table);
    cu[0] = 0;
    n_seg = 0;
    for (g = 0; g < n_grids; g++) {
        int64_t hw = (int64_t) grids[g].h * grids[g].w;
        for (k = 0; k < grids[g].t; k++) {
            /* each image, and each frame pair of a video, is its own segment
             * with its own position-table resampling */
            glm_patch_coords(grids[g].h, grids[g].w, m, pos3 + 3 * off);
            glm_pos_embed(v, table, grids[g].h, grids[g].w, pe_host + off * D);
            off += hw;
            cu[n_seg + 1] = (int32_t) off;
            n_seg++;
        }
    }
    free(table);

#define GLM_VALLOC(n) be->alloc(be, (size_t) (n) * be->act_size)
    px = GLM_VALLOC(N * K);
    x = GLM_VALLOC(N * D);
    h = GLM_VALLOC(N * D);
    q = GLM_VALLOC(N * D);
    kk = GLM_VALLOC(N * D);
    vv = GLM_VALLOC(N * D);
    a = GLM_VALLOC(N * D);
    y = GLM_VALLOC(N * D);
    gt = GLM_VALLOC(N * (int64_t) Wmlp);
    up = GLM_VALLOC(N * (int64_t) Wmlp);
    z = GLM_VALLOC(N * D);
#undef GLM_VALLOC
    if (px == NULL || x == NULL || h == NULL || q == NULL || kk == NULL || vv == NULL
        || a == NULL || y == NULL || gt == NULL || up == NULL || z == NULL)
    {
        be->free(be, px); be->free(be, x); be->free(be, h); be->free(be, q);
        be->free(be, kk); be->free(be, vv); be->free(be, a); be->free(be, y);
        be->free(be, gt); be->free(be, up); be->free(be, z);
        free(pos3); free(cu); free(pe_host);
        return glm_errf(err, "out of memory for the vision activations of %lld"
                        " patches", (long long) N);
    }

    /* patch embedding, post-conv norm, resampled position table */
    be->upload_act(be, px, pixels, (size_t) N * K);
    be->matmul(be, x, px, (int) N, &v->patch_w, v->patch_b);
    be->rmsnorm(be, x, x, v->post_conv_norm, (int) N, D, eps);
    be->upload_act(be, h, pe_host, (size_t) N * D);
    be->add(be, x, h, (size_t) N * D);

    for (l = 0; l < c->vision.depth; l++) {
        const glm_vision_block *B = &v->blocks[l];

        be->rmsnorm(be, h, x, B->norm1, (int) N, D, eps);
        be->matmul(be, q, h, (int) N, &B->wq, B->has_bias ? &B->bq : NULL);
        be->matmul(be, kk, h, (int) N, &B->wk, B->has_bias ? &B->bk : NULL);
        be->matmul(be, vv, h, (int) N, &B->wv, B->has_bias ? &B->bv : NULL);
        be->rope(be, q, (int) N, v->heads, hd, hd, pos3, v->axis_of_freq, v->inv_freq);
        be->rope(be, kk, (int) N, v->heads, hd, hd, pos3, v->axis_of_freq, v->inv_freq);
        be->attention_segments(be, a, q, kk, vv, D, cu, n_seg, v->heads, hd,
                               1.0f / sqrtf((float) hd));
        be->matmul(be, y, a, (int) N, B->proj, NULL);
        be->add(be, x, y, (size_t) N * D);

        be->rmsnorm(be, h, x, B->norm2, (int) N, D, eps);
        be->matmul(be, gt, h, (int) N, B->gate, NULL);
        be->matmul(be, up, h, (int) N, B->up, NULL);
        be->swiglu(be, gt, gt, up, (size_t) N * O);
        be->matmul(be, y, gt, (int) N, B->down, NULL);
        be->add(be, x, y, (size_t) N * D);
    }
    be->rmsnorm(be, x, x, v->post_norm, (int) N, D, eps);

    /* 2x2 merge: four patches -> one row of D*4 in (channel, i, j) order */
    be->group_transpose(be, z, x, (int) Nm, m * m, D);
    be->matmul(be, h, z, (int) Nm, &v->down_w, v->down_b);      /* [Nm, O] */

    /* merger: proj -> LayerNorm -> GELU -> SwiGLU MLP */
    be->matmul(be, y, h, (int) Nm, v->m_proj, NULL);
    be->layernorm(be, y, y, v->m_ln_w, v->m_ln_b, (int) Nm, O, 1e-5f);
    be->gelu(be, y, y, (size_t) Nm * O);
    be->matmul(be, gt, y, (int) Nm, v->m_gate, NULL);
    be->matmul(be, up, y, (int) Nm, v->m_up, NULL);
    be->swiglu(be, gt, gt, up, (size_t) Nm * I);
    be->matmul(be, h, gt, (int) Nm, v->m_down, NULL);
    be->download_act(be, out, h, (size_t) Nm * O);

    be->free(be, px); be->free(be, x); be->free(be, h); be->free(be, q);
    be->free(be, kk); be->free(be, vv); be->free(be, a); be->free(be, y);
    be->free(be, gt); be->free(be, up); be->free(be, z);
    free(pos3); free(cu); free(pe_host);
    return 0;
}

/* ---- positions ------------------------------------------------------------------- */

int
glm_mrope_positions(const glm_config *c, const int32_t *ids, int n,
    const glm_grid *grids, int n_grids, int32_t *pos3, int *delta, glm_err *err)
{
    int m = c->vision.spatial_merge_size, i = 0, in_video = 0, g = -1, pair = 0;
    int32_t cur = 0, mx = -1;

    while (i < n) {
        if (ids[i] != c->image_token_id) {
            if (ids[i] == c->video_start_token_id) {
                in_video = 1;
            } else if (ids[i] == c->video_end_token_id) {
                in_video = 0;
            }
            pos3[3 * i] = pos3[3 * i + 1] = pos3[3 * i + 2] = cur;
            mx = cur > mx ? cur : mx;
            cur++;
            i++;
            continue;
        }
        /* a run of image tokens: one image, or one frame pair of a video */
        {
            int run = 0, gh, gw, r, col;
            const glm_grid *G;

            while (i + run < n && ids[i + run] == c->image_token_id) {
                run++;
            }
            if (g >= 0 && in_video && grids[g].t > 1 && pair + 1 < grids[g].t) {
                pair++;                         /* next pair of this video */
            } else {
                if (g >= 0 && pair + 1 != grids[g].t) {
                    return glm_errf(err, "video %d has %d frame pairs but the prompt"
                                    " places %d", g + 1, grids[g].t, pair + 1);
                }
                g++;
                pair = 0;
            }
            if (g >= n_grids) {
                return glm_errf(err, "the prompt has more image placeholders than"
                                " images and videos (%d)", n_grids);
            }
            G = &grids[g];
            gh = G->h / m;
            gw = G->w / m;
            if ((int64_t) gh * gw != run) {
                return glm_errf(err, "a run of %d image tokens where %s %d needs %d",
                                run, G->t > 1 || in_video ? "video" : "image", g + 1,
                                gh * gw);
            }
            for (r = 0; r < gh; r++) {
                for (col = 0; col < gw; col++) {
                    int32_t *p = pos3 + 3 * (i + r * gw + col);
                    p[0] = cur;
                    p[1] = cur + r;
                    p[2] = cur + col;
                }
            }
            mx = cur + (gh > gw ? gh : gw) - 1 > mx ? cur + (gh > gw ? gh : gw) - 1 : mx;
            cur += gh > gw ? gh : gw;
            i += run;
        }
    }
    if (g + 1 != n_grids || (g >= 0 && pair + 1 != grids[g].t)) {
        return glm_errf(err, "the prompt's image placeholders cover %d of %d images"
                        " and videos", g + 1, n_grids);
    }
    *delta = mx + 1 - n;
    return 0;
}

glm_mm_prompt *
glm_mm_prompt_new(const glm_config *c, const int32_t *ids, int n,
    const glm_grid *grids, int n_grids, const uint8_t *item_hash, float *rows,
    int64_t n_rows, glm_err *err)
{
    glm_mm_prompt *mm = calloc(1, sizeof(*mm));
    int64_t row = 0, item_end = 0;
    int i, item = -1;

    if (mm == NULL || (mm->pos3 = malloc((size_t) n * 3 * sizeof(int32_t))) == NULL
        || (mm->row_of = malloc((size_t) n * sizeof(int32_t))) == NULL
        || (mm->item_of = malloc((size_t) n * sizeof(int32_t))) == NULL
        || (item_hash != NULL
            && (mm->item_hash = malloc((size_t) n_grids * GLM_MM_ITEM_HASH_SIZE)) == NULL))
    {
        if (mm != NULL) {
            free(mm->pos3);
            free(mm->row_of);
            free(mm->item_of);
            free(mm);
        }
        free(rows);
        glm_errf(err, "out of memory");
        return NULL;
    }
    mm->refs = 1;
    mm->n_prompt = n;
    mm->hidden = c->hidden_size;
    mm->rows = rows;
    mm->n_rows = n_rows;
    mm->n_items = n_grids;
    if (item_hash != NULL) {
        memcpy(mm->item_hash, item_hash, (size_t) n_grids * GLM_MM_ITEM_HASH_SIZE);
    }
    for (i = 0; i < n; i++) {
        mm->row_of[i] = ids[i] == c->image_token_id ? (int32_t) row++ : -1;
        /* rows follow the grids in order: a video's frame pairs are one item */
        while (mm->row_of[i] >= item_end && item + 1 < n_grids) {
            item_end += glm_vision_grid_tokens(c, &grids[++item]);
        }
        mm->item_of[i] = mm->row_of[i] >= 0 ? item : -1;
    }
    if (row != n_rows
        || glm_mrope_positions(c, ids, n, grids, n_grids, mm->pos3, &mm->rope_delta,
                               err) != 0)
    {
        if (row != n_rows) {
            glm_errf(err, "the prompt has %lld image tokens but the images and videos"
                     " give %lld", (long long) row, (long long) n_rows);
        }
        glm_mm_prompt_unref(mm);
        return NULL;
    }
    return mm;
}

glm_mm_prompt *
glm_mm_prompt_ref(glm_mm_prompt *mm)
{
    if (mm != NULL) {
        mm->refs++;
    }
    return mm;
}

void
glm_mm_prompt_unref(glm_mm_prompt *mm)
{
    if (mm != NULL && --mm->refs == 0) {
        free(mm->pos3);
        free(mm->rows);
        free(mm->row_of);
        free(mm->item_of);
        free(mm->item_hash);
        free(mm);
    }
}
