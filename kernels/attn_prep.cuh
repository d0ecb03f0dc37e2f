/*
 * attn_prep: the attention block's preparation of one step's q, k and v in
 * one launch: per-head RMSNorm of q and k (GLM-4.5's use_qk_norm; skipped
 * when the weights are NULL), partial M-RoPE of q and k (as rope.cuh: NeoX
 * half split over the first rot_dim dims, frequency j turned by
 * pos3[r][axis_of_freq[j]] * inv_freq[j]), and the KV-cache write of the
 * rotated k and of v (as kv_store.cuh, narrowing to the pool's dtype).
 * Replaces 5 launches (2 rmsnorm, 2 rope, kv_store) in a decode layer.
 *
 * Layout: q [rows, heads * head_dim], k and v [rows, kv_heads * head_dim]
 * BF16 activations, q and k rewritten in place (normalised and rotated, as
 * the unfused ops leave them); q_norm_w, k_norm_w [head_dim] in their
 * stored format (GLM_WFMT_*); pos3, axis_of_freq, inv_freq as rope.cuh;
 * the pool and slot_row as kv_store.cuh.
 *
 * Launch: one block of 256 threads per token row; the row's cos/sin table
 * goes to shared memory once; then each warp takes whole heads (q heads,
 * k heads, then v heads).  A lane owns rotation pairs (j, j + rot_dim/2)
 * and the dims past rot_dim, so the norm's sum of squares (one warp
 * reduction), the scaling and the rotation of a head never exchange
 * elements between lanes.  Between the norm and the rotation the values
 * stay fp32 (one BF16 rounding where the unfused ops had two); the k row
 * the pool receives is the rounded BF16 value the k activation holds, so
 * the cache and the activation agree.  Products unfused (__fmul_rn) as in
 * rope.cuh, to round as the oracle does.
 */
#ifndef GLM_KERNELS_ATTN_PREP_CUH
#define GLM_KERNELS_ATTN_PREP_CUH

#include "common.cuh"
#include "paged_kv.cuh"

typedef struct {
    const void     *q_norm_w, *k_norm_w;    /* NULL: no q/k norm */
    int             q_norm_fmt, k_norm_fmt;
    float           eps;
    int             rot_dim;
    const int32_t  *pos3, *axis_of_freq;
    const float    *inv_freq;
    void           *pool_k, *pool_v;
    int             kv_dtype;               /* GLM_KVT_* */
    float           k_scale, v_scale;
    int64_t         layer_row0;
    const int64_t  *slot_row;
} glm_attn_prep_args;

void glm_cuda_attn_prep(cudaStream_t stream, glm_act *q, glm_act *k, const glm_act *v,
    int rows, int heads, int kv_heads, int head_dim, const glm_attn_prep_args *a);

#endif
