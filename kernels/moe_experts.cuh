/*
 * moe_experts: the grouped expert GEMMs of one MoE layer, every expert (and
 * the shared expert) in one launch each, reading the routing from device
 * memory so the host never waits for it:
 *   gate_up: h[s, j] = silu(x[tok(s)] . gate_e[j]) * (x[tok(s)] . up_e[j])
 *   down:    y[s, j] = h[s] . down_e[j]
 * for each slot s of the expert blocks moe_align lays out (expert e's rows
 * are slots [row0, row0 + n) of its tiles; the shared expert is entry E of
 * the table, its slots 0..rows-1 are tokens 0..rows-1 in order).
 *
 * Layout: x [rows, H] BF16; row_token [slots] int32 (the token of slot s);
 * tiles [max_tiles][3] int32 (expert, first slot, rows <= TILE_ROWS) and
 * n_tiles [1], both written by moe_align; table [E + 1] glm_moe_expert
 * (gate/up/down as stored: BF16, fp32, F16, FP8 E4M3 with per-tensor,
 * per-channel or block scales, dequantized in registers by glm_ld_w exactly
 * as the oracle; w == NULL for an expert this rank does not own); h [slots,
 * ld_h] BF16 (ld_h >= both intermediate widths); y [slots, H] BF16.  fp32
 * accumulation, one BF16 rounding per output (SwiGLU is applied to the fp32
 * gate and up, not to rounded ones).
 *
 * Launch: grid (max_tiles, ceil(max N / TILE_COLS)), 256 threads.  The grid
 * is sized on the host for the worst case (every pair in its own tile plus
 * one partial tile per expert); a CTA whose tile index is >= *n_tiles, or
 * whose column block is past its expert's width, exits at once.  A CTA
 * stages its TILE_ROWS activation rows in shared memory K_CHUNK values at a
 * time (fp32, 8 KiB); each of its 8 warps owns 4 output columns; lanes
 * stride along K (lane l reads k = k0 + 32q + l: coalesced weight rows) and
 * a warp sum per (row, column) ends the tile.  Every weight byte of an
 * expert with rows is read once per row tile: once per step in decode (an
 * expert rarely gets more than 8 rows there), which is what a memory-bound
 * decode needs; the emulator's weight_bytes_ratio counts it.
 *
 * Why CUDA cores: decode is memory-bound (a few rows per expert), the
 * launch count is what hurt, and one generic kernel covers every weight
 * format.  Prefill is where this is slow: with hundreds of rows per expert
 * each row tile re-reads the expert's slab (from L2 mostly) and the FMAs
 * run on CUDA cores, several times slower than cuBLASLt's tensor-core
 * GEMMs per expert were (those needed the host to know the counts).  A
 * tensor-core version keeps the same device-side tile list and table and
 * changes the CTA body: 64-128 row tiles, weight tiles staged by TMA (or
 * cp.async) into shared memory, BF16 mma.sync/wgmma with fp32 accumulators
 * (FP8 weights dequantized to BF16 in shared memory per block scale, or
 * FP8 activations quantized per row group for the FP8 wgmma), and the same
 * SwiGLU epilogue; vector loads (16 bytes per lane) for the decode path.
 */
#ifndef GLM_KERNELS_MOE_EXPERTS_CUH
#define GLM_KERNELS_MOE_EXPERTS_CUH

#include "common.cuh"

#define GLM_MOE_TILE_ROWS 8
#define GLM_MOE_TILE_COLS 32
#define GLM_MOE_K_CHUNK   256

/* One expert's weights as the grouped GEMMs read them (gate.w == NULL: not
 * on this rank; it contributes zero) */
typedef struct {
    glm_cuda_weight gate, up, down;
} glm_moe_expert;

/* The most tiles moe_align can lay out: the shared expert's ceil(rows /
 * TILE_ROWS), and at most pairs / TILE_ROWS full tiles plus one partial
 * tile per routed expert with rows. */
static inline int
glm_moe_max_tiles(int rows, int top_k, int n_experts)
{
    int pairs = rows * top_k;

    return (rows + GLM_MOE_TILE_ROWS - 1) / GLM_MOE_TILE_ROWS + pairs / GLM_MOE_TILE_ROWS
           + (pairs < n_experts ? pairs : n_experts) + 1;
}

/* h = silu(x gate^T) * (x up^T) over every tile; inter: the routed experts'
 * width, inter_shared the shared expert's */
void glm_cuda_moe_gate_up(cudaStream_t stream, glm_act *h, int ld_h, const glm_act *x,
    const int32_t *row_token, const int32_t *tiles, const int32_t *n_tiles, int max_tiles,
    const glm_moe_expert *table, int n_experts, int hidden, int inter, int inter_shared);

/* y = h down^T over every tile */
void glm_cuda_moe_down(cudaStream_t stream, glm_act *y, const glm_act *h, int ld_h,
    const int32_t *tiles, const int32_t *n_tiles, int max_tiles,
    const glm_moe_expert *table, int n_experts, int hidden, int inter, int inter_shared);

#endif
