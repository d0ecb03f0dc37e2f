/*
 * backend.h: the op interface the model is written against.
 *
 * The model (model.c) is plain functions over explicit sizes that call these
 * ops; a backend implements them.  The CPU backend (backend_cpu.c) computes in
 * fp32 from the stored weights and is the oracle for every other backend; the
 * CUDA backend implements the same table over device memory.
 *
 * Conventions:
 * - Activations are row-major [rows, cols] in memory from be->alloc(), of
 *   the backend's own element type be->act_dtype (be->act_size bytes each):
 *   fp32 on the CPU oracle, BF16 on CUDA.  The model carves and offsets its
 *   buffers by act_size and never reads them; values cross to the host only
 *   through upload_act/download_act (fp32 on the host side) and the fp32
 *   logits of matmul_f32.  Each op computes in fp32 whatever it stores.
 * - Weights are checkpoint tensors in their stored dtype (BF16/F16/F32),
 *   PyTorch layout [out, in]: matmul computes y = x W^T + b.
 * - The KV cache is paged: a pool of blocks of `block_size` token slots per
 *   layer, layout [layer][block][slot][kv_heads * head_dim] for k and for v,
 *   elements of the pool's dtype (glm_kv_dtype below); kv_store takes and
 *   attention computes fp32, narrowing and widening as the dtype says.
 *   Each sequence owns a block table; token i of a batch sits at position
 *   kv_pos[i] of sequence seq[i].  Elements are fp32, BF16 or FP8 E4M3
 *   (glm_kv_dtype; fp8 rounds x / scale to nearest even, saturating at
 *   +-448, BF16 rounds to nearest even).
 */
#ifndef GLM_BACKEND_H
#define GLM_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "backend/sample.h"
#include "model/safetensors.h"

typedef struct glm_backend glm_backend;

/* the element type of a backend's activations */
typedef enum { GLM_ACT_F32 = 0, GLM_ACT_BF16 } glm_act_dtype;

/*
 * The KV cache's element type, a backend's choice (--kv-cache-dtype):
 *   F32        the CPU oracle's default: the cache holds exactly what the
 *              reference computes, so the reference checks see no rounding
 *   BF16       round to nearest even (what a BF16 model writes)
 *   FP8_E4M3   vLLM's fp8_e4m3 cache: x / scale (the layer's k_scale or
 *              v_scale) rounded to nearest even E4M3 ("e4m3fn", finite, no
 *              infinities), saturating to +-448; read back as fp8 * scale
 * Kernels narrow on the store and widen on the read; the math stays fp32.
 */
typedef enum { GLM_KV_F32 = 0, GLM_KV_BF16, GLM_KV_FP8_E4M3 } glm_kv_dtype;

typedef struct {
    int           n_layers;
    int           n_blocks;
    int           block_size;
    int           kv_dim;          /* kv_heads * head_dim */
    glm_kv_dtype  dtype;           /* element type of k and v */
    void         *k;               /* backend memory, [layer][block][slot][kv_dim] of dtype */
    void         *v;
    const float  *k_scale;         /* host, [n_layers]: fp8 stores x / scale (vLLM's fp8_e4m3);
                                      1.0 unless the checkpoint stores per-layer scales */
    const float  *v_scale;
} glm_kv_pool;

/* Bytes of one cache element of dtype t. */
static inline size_t
glm_kv_dtype_size(glm_kv_dtype t)
{
    return t == GLM_KV_FP8_E4M3 ? 1 : t == GLM_KV_BF16 ? 2 : 4;
}

/* "float32", "bfloat16", "fp8_e4m3" */
static inline const char *
glm_kv_dtype_name(glm_kv_dtype t)
{
    return t == GLM_KV_FP8_E4M3 ? "fp8_e4m3" : t == GLM_KV_BF16 ? "bfloat16" : "float32";
}

typedef struct {
    const int32_t *blocks;     /* block table: block id per block_size positions */
    int            n_blocks;
} glm_seq_blocks;

/* What attention needs to find each token's keys and values. */
typedef struct {
    int                    n_tokens;
    const int32_t         *seq;       /* [n_tokens] index into seqs */
    const int32_t         *kv_pos;    /* [n_tokens] position in its sequence */
    const glm_seq_blocks  *seqs;
    int                    n_seqs;
} glm_attn_batch;

/* A decode step for a graph (graph_begin below): the batch padded to the
 * graph's rows, and what the graph is bound to. */
typedef struct {
    int                    rows;      /* a size graph_rows returned */
    const int32_t         *ids;       /* [rows] */
    const int32_t         *pos3;      /* [rows][3] */
    const glm_attn_batch  *attn;      /* rows tokens, each its sequence's only one */
    const glm_kv_pool     *kv;
    const void            *act;       /* the model's activations for this size: a
                                         graph replays only on what it was made on */
} glm_graph_step;

/* One MoE layer's routing parameters and expert weights. */
typedef struct {
    int                 n_experts, top_k, n_group, topk_group, norm_topk_prob;
    float               routed_scaling_factor;
    int                 hidden, inter;
    const glm_tensor   *router;            /* [E, hidden] */
    const glm_tensor   *correction_bias;   /* [E] fp32, selection only */
    glm_tensor * const *gate, * const *up, * const *down;   /* [E] each; NULL: an
                                                                expert another rank owns */
    /* the shared expert, an MLP every token passes through with weight 1,
     * added after the routed sum (NULL when the layer has none) */
    const glm_tensor   *shared_gate, *shared_up, *shared_down;
} glm_moe_weights;

/* The oracle's routing (the CPU backend's, MODEL.md 3.4) of `rows` tokens
 * from their fp32 router logits [rows, E]: idx [rows, top_k] and weights
 * [rows, top_k] in selection order (best first).  For the tests that hold
 * another backend's routing against it. */
void glm_moe_route_oracle(const glm_moe_weights *m, const float *logits, int rows,
    int32_t *idx, float *w);

struct glm_backend {
    const char    *name;
    glm_act_dtype  act_dtype;
    size_t         act_size;           /* bytes per activation element */

    /* the KV dtypes kv_store and attention handle (bit 1 << glm_kv_dtype),
     * and the one --kv-cache-dtype auto picks */
    unsigned      kv_dtypes;
    glm_kv_dtype  kv_dtype_auto;

    void *(*alloc)(glm_backend *be, size_t bytes);
    void  (*free)(glm_backend *be, void *p);
    /* host <-> backend copies (plain memcpy on the CPU) */
    void  (*upload)(glm_backend *be, void *dst, const void *src, size_t bytes);
    void  (*download)(glm_backend *be, void *dst, const void *src, size_t bytes);
    /* n host fp32 values <-> n activations (converted to / from act_dtype) */
    void  (*upload_act)(glm_backend *be, void *dst, const float *src, size_t n);
    void  (*download_act)(glm_backend *be, float *dst, const void *src, size_t n);

    /* out[i, :] = table[ids[i], :] */
    void (*embed)(glm_backend *be, void *out, const int32_t *ids, int n,
                  const glm_tensor *table);

    /* out[r] = w * x[r] / sqrt(mean(x[r]^2) + eps), rows of length dim */
    void (*rmsnorm)(glm_backend *be, void *out, const void *x,
                    const glm_tensor *w, int rows, int dim, float eps);

    /* out[rows, N] = x[rows, K] W[N, K]^T (+ bias[N]) */
    void (*matmul)(glm_backend *be, void *out, const void *x, int rows,
                   const glm_tensor *w, const glm_tensor *bias);

    /* q, k and v of one input: q = x Wq^T (+ bq), k = x Wk^T (+ bk),
     * v = x Wv^T (+ bv), each as matmul; biases may be NULL.  Three matmuls
     * on the oracle; one GEMM where the backend holds the weights side by
     * side (CUDA: placed so at upload) */
    void (*matmul_qkv)(glm_backend *be, void *q, void *k, void *v, const void *x, int rows,
                       const glm_tensor *wq, const glm_tensor *wk, const glm_tensor *wv,
                       const glm_tensor *bq, const glm_tensor *bk, const glm_tensor *bv);

    /* the same with fp32 out[rows, N] whatever act_dtype: the logits */
    void (*matmul_f32)(glm_backend *be, float *out, const void *x, int rows,
                       const glm_tensor *w, const glm_tensor *bias);

    /* in place, half-split (NeoX) rotation of the first rot_dim dims of each
     * head: frequency j uses position pos3[r][axis_of_freq[j]] */
    void (*rope)(glm_backend *be, void *x, int rows, int heads, int head_dim,
                 int rot_dim, const int32_t *pos3, const int *axis_of_freq,
                 const float *inv_freq);

    /* writes k, v rows [n_tokens, kv_dim] into the pool at each token's slot */
    void (*kv_store)(glm_backend *be, glm_kv_pool *kv, int layer, const void *k,
                     const void *v, const glm_attn_batch *b);

    /* causal attention of each token over positions 0..kv_pos of its own
     * sequence; q [n, heads*head_dim] -> out [n, heads*head_dim]; GQA maps
     * query head h to kv head h / (heads / kv_heads) */
    void (*attention)(glm_backend *be, void *out, const void *q,
                      const glm_kv_pool *kv, int layer, const glm_attn_batch *b,
                      int heads, int kv_heads, int head_dim, float scale);

    /* the attention block's preparation, one op: per-head RMSNorm of q
     * [n, heads*head_dim] and k [n, kv_heads*head_dim] in place (weights
     * q_norm, k_norm; skipped when NULL), then rope of q and of k (as
     * `rope`), then kv_store of k and v (n = b->n_tokens).  The CPU oracle
     * runs exactly those ops in that order; CUDA fuses them. */
    void (*attn_prep)(glm_backend *be, void *q, void *k, const void *v, int heads,
                      int kv_heads, int head_dim, const glm_tensor *q_norm,
                      const glm_tensor *k_norm, float eps, int rot_dim,
                      const int32_t *pos3, const int *axis_of_freq, const float *inv_freq,
                      glm_kv_pool *kv, int layer, const glm_attn_batch *b);

    /* out[i] = silu(gate[i]) * up[i] */
    void (*swiglu)(glm_backend *be, void *out, const void *gate,
                   const void *up, size_t n);

    /* x[i] += y[i] */
    void (*add)(glm_backend *be, void *x, const void *y, size_t n);

    /* the residual add and the next norm in one op: x[i] += y[i] over
     * [rows, dim], then out[r] = rmsnorm(x[r]) as rmsnorm above (x keeps
     * the sum; out may not alias x or y) */
    void (*add_rmsnorm)(glm_backend *be, void *out, void *x, const void *y,
                        const glm_tensor *w, int rows, int dim, float eps);

    /* a gated MLP's first half in one op: out[rows, N] = silu(x gate^T) *
     * (x up^T), gate and up [N, K] without bias; the result equals matmul,
     * matmul, swiglu (each backend states its rounding) */
    void (*gate_up_swiglu)(glm_backend *be, void *out, const void *x, int rows,
                           const glm_tensor *gate, const glm_tensor *up);

    /* the routed experts of one MoE layer: sigmoid router in fp32, correction
     * bias for selection only, group-limited top-k, normalised and scaled
     * weights; out [rows, hidden] = sum_k w_k * expert_k(x) */
    /* one MoE layer: sigmoid router in fp32, correction bias for selection
     * only, group-limited top-k, normalised and scaled weights;
     * out [rows, hidden] = sum_k w_k * expert_k(x) (ascending expert id),
     * then + shared(x) when the layer has a shared expert */
    void (*moe)(glm_backend *be, void *out, const void *x, int rows,
                const glm_moe_weights *m);

    /* ---- the vision tower's ops ---- */

    /* out[r] = (x[r] - mean) / sqrt(var + eps) * w + b (torch LayerNorm) */
    void (*layernorm)(glm_backend *be, void *out, const void *x,
                      const glm_tensor *w, const glm_tensor *b, int rows,
                      int dim, float eps);

    /* out[i] = gelu(x[i]), the exact erf form (torch nn.GELU()) */
    void (*gelu)(glm_backend *be, void *out, const void *x, size_t n);

    /* non-causal attention inside segments: token i of segment s attends to
     * every token of s (cu_seqlens[s] <= j < cu_seqlens[s+1]); q, k, v and
     * out are [n, heads*head_dim] with rows of stride `stride` elements */
    void (*attention_segments)(glm_backend *be, void *out, const void *q,
                               const void *k, const void *v, int stride,
                               const int32_t *cu_seqlens, int n_segments,
                               int heads, int head_dim, float scale);

    /* groups of g consecutive rows of dim values, each transposed:
     * out[grp][c * g + i] = x[grp * g + i][c]  (the 2x2 merge's permute) */
    void (*group_transpose)(glm_backend *be, void *out, const void *x,
                            int groups, int g, int dim);

    /* ---- the step's tail: logits stay in backend memory (sample.h) ---- */

    /* out[i, :] = x[rows[i], :], n rows of dim activations; rows on the host */
    void (*gather_rows)(glm_backend *be, void *out, const void *x,
                        const int32_t *rows, int n, int dim);

    /* a token for each of `rows` requests p[r], each reading its row
     * p[r].logit_row of fp32 logits [*, vocab] in backend memory, with the
     * row's processing, warpers, seeded draw and logprobs (sample.h); only
     * out[rows] comes back to the host.  The CPU backend's is the oracle;
     * every backend chooses the same ids from the same logits. */
    void (*sample)(glm_backend *be, glm_sample_out *out, const float *logits,
                   int rows, int vocab, const glm_sample_row *p);
    /* ---- decode graphs (optional: NULL where every step runs eagerly) ----
     * A decode step's embedding and layers may be replayed from a graph
     * captured at a fixed number of rows.  graph_rows(n): the rows the
     * model pads an n-token decode step to, 0 for "run it eagerly".
     * graph_begin(step): stages the step's inputs, then 0: the layers ran
     * (replayed), skip them; 1: run them, then call graph_end, and again
     * while it returns 1 (a new size: once eagerly, once captured); -1: no
     * graph, run the step unpadded and eagerly.  Between graph_begin and the
     * last graph_end the layers' ops must be exactly what every step of
     * that size asks (no host-side decision that depends on the step) and
     * must not read the host; the model's host code in between runs only
     * when told to. */
    int (*graph_rows)(glm_backend *be, int n_tokens);
    int (*graph_begin)(glm_backend *be, const glm_graph_step *step);
    int (*graph_end)(glm_backend *be);

    void (*destroy)(glm_backend *be);
};

/* nthreads <= 0: all CPUs. */
glm_backend *glm_backend_cpu_create(int nthreads);

#endif
