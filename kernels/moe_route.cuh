/*
 * moe_route: GLM-4.5's router after the router GEMM (MODEL.md 3.4), as the
 * CPU op does it: s = sigmoid(logits) in fp32; c = s + correction_bias
 * (selection only); when n_group > 1 or topk_group < n_group, each group
 * scores the sum of its two best c, the topk_group best groups stay and the
 * others' c become -inf; the top_k best c are the experts (ties: lower
 * index, as the oracle's scan); their weights are s, divided by their sum
 * (+1e-20) when norm_topk_prob, times routed_scaling_factor.
 *
 * Layout: logits [rows, E] fp32, bias [E] as stored (GLM_WFMT_*); idx [rows, top_k] int32 and
 * w [rows, top_k] fp32 out, in selection order (best first).  Launch: one
 * block of 128 threads per token; threads compute s and c into shared
 * memory, then thread 0 runs the oracle's selection loops serially (E =
 * 128, top_k = 8: about a thousand comparisons; E <= 1024).  Serial on
 * purpose: it is the same sequence of comparisons as the CPU, so the same
 * experts win every tie.
 * Later: a warp-parallel top-k (bitonic over 128 values) fused with the
 * router GEMM's epilogue.
 */
#ifndef GLM_KERNELS_MOE_ROUTE_CUH
#define GLM_KERNELS_MOE_ROUTE_CUH

#include "common.cuh"

#define GLM_MOE_MAX_EXPERTS 1024
#define GLM_MOE_MAX_TOPK    32

void glm_cuda_moe_route(cudaStream_t stream, const float *logits, const void *bias,
    int bias_fmt, int rows, int n_experts, int top_k, int n_group, int topk_group,
    int norm_topk_prob, float routed_scaling_factor, int32_t *idx, float *w);

#endif
