/*
 * moe_align: the routing's token-to-expert alignment, on the device, in one
 * launch: which slot (row of the grouped GEMMs' activations) each (token,
 * pick) pair takes, the token of each slot, and the list of row tiles the
 * grouped GEMMs (moe_experts) run over; nothing goes back to the host.
 *
 * From idx [rows, top_k] (moe_route's picks, pairs = rows * top_k) and the
 * expert table (an expert whose gate.w is NULL is another rank's: its
 * pairs get no slot, slot_of = -1, and contribute zero here):
 *   slots: the shared expert (table entry E, when present) first, tokens
 *          0..rows-1 in order at slots 0..rows-1; then the routed experts
 *          in ascending id, each expert's pairs in one block;
 *   slot_of [pairs], row_token [rows + pairs], tiles [..][3] (expert,
 *   first slot, rows <= TILE_ROWS) and n_tiles [1].
 * Inside an expert's block the order of its tokens follows shared-memory
 * atomics; no result depends on it (each GEMM row is computed alone, and
 * moe_combine sums a token's picks in ascending expert id through slot_of).
 * Launch: one block of 1024 threads; counts, offsets and cursors in shared
 * memory (3 (E + 2) ints); the two scans over E are one thread's (E <=
 * 1024), the tile list and the slots are written in parallel.
 */
#ifndef GLM_KERNELS_MOE_ALIGN_CUH
#define GLM_KERNELS_MOE_ALIGN_CUH

#include "common.cuh"
#include "moe_experts.cuh"

void glm_cuda_moe_align(cudaStream_t stream, const int32_t *idx, int rows, int top_k,
    int n_experts, const glm_moe_expert *table, int32_t *slot_of, int32_t *row_token,
    int32_t *tiles, int32_t *n_tiles);

#endif
