/*
 * moe_route: GLM-4.5's router (MODEL.md 3.4) with its GEMM, one launch:
 * logits = x router^T in fp32; s = sigmoid(logits); c = s +
 * correction_bias (selection only); when n_group > 1 or topk_group <
 * n_group, each group scores the sum of its two best c, the topk_group best
 * groups stay and the others' c become -inf; the top_k best c are the
 * experts; their weights are s, summed in selection order, divided by the
 * sum (+1e-20) when norm_topk_prob, times routed_scaling_factor.
 *
 * The oracle's comparisons, in parallel: its glm_topk picks, k times, the
 * largest value not yet taken, the lower index on a tie, so the k-th pick
 * is the element of rank k in the order (value descending, index
 * ascending).  Here each thread ranks its experts by counting the experts
 * that beat them in that order (E comparisons each: 128 for GLM-4.5-Air,
 * no barriers between picks), so the same experts win every tie, -inf and
 * -0.0 included.  (NaN logits order nothing; their rows still get top_k
 * distinct entries, with -1 for a rank no expert holds.)
 *
 * Layout: x [rows, H] BF16; router [E, H] as stored (glm_cuda_weight, any
 * format glm_ld_w reads); bias [E] as stored (GLM_WFMT_*); idx [rows,
 * top_k] int32 and w [rows, top_k] fp32 out in ASCENDING expert id (the
 * order the combine sums in, as the oracle's), each weight with its expert.
 * Launch: one block of 256 threads per token; each warp computes router
 * rows (lanes stride along H, a warp sum each), then the ranking.  The
 * router weights are re-read per token (from L2 after the first): fine for
 * decode; a prefill-sized batch would tile tokens per block.
 * E <= 1024, top_k <= 32.
 */
#ifndef GLM_KERNELS_MOE_ROUTE_CUH
#define GLM_KERNELS_MOE_ROUTE_CUH

#include "common.cuh"

#define GLM_MOE_MAX_EXPERTS 1024
#define GLM_MOE_MAX_TOPK    32

void glm_cuda_moe_route(cudaStream_t stream, const glm_act *x, const glm_cuda_weight *router,
    const void *bias, int bias_fmt, int rows, int hidden, int n_experts, int top_k,
    int n_group, int topk_group, int norm_topk_prob, float routed_scaling_factor,
    int32_t *idx, float *w);

#endif
