/*
 * rope: in-place NeoX (half-split) rotation of the first rot_dim dims of
 * every head, partial and multi-axis (M-RoPE) exactly as the CPU op:
 * frequency j (0 <= j < rot_dim/2) turns by pos3[r][axis_of_freq[j]] *
 * inv_freq[j]; dims j and j + rot_dim/2 form the rotated pair; dims from
 * rot_dim to head_dim are left alone (GLM-4.5's partial_rotary_factor 0.5).
 *
 * Layout: x [rows, heads, head_dim] BF16 (rotated in fp32); pos3 [rows][3] int32 (t, h, w;
 * equal for text); axis_of_freq [rot_dim/2] int32; inv_freq [rot_dim/2] fp32
 * (all device memory).  Launch: one block of 128 threads per row; the row's
 * cos/sin table (rot_dim floats) is computed once into shared memory, then
 * threads stride over (head, j) pairs.  Angles are fp32 pos * inv_freq as
 * transformers computes them, cosf/sinf the accurate device versions; the
 * rotation products are kept unfused to round as the oracle does.
 * Later: fused into the q/k projection epilogue with the KV-cache write.
 */
#ifndef GLM_KERNELS_ROPE_CUH
#define GLM_KERNELS_ROPE_CUH

#include "common.cuh"

void glm_cuda_rope(cudaStream_t stream, glm_act *x, int rows, int heads, int head_dim,
    int rot_dim, const int32_t *pos3, const int32_t *axis_of_freq,
    const float *inv_freq);

#endif
