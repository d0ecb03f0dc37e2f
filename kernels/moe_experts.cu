/* moe_experts: see moe_experts.cuh. */
#include "moe_experts.cuh"

#define GLM_MOE_THREADS      256
#define GLM_MOE_WARPS        (GLM_MOE_THREADS / 32)
#define GLM_MOE_COLS_PER_WARP (GLM_MOE_TILE_COLS / GLM_MOE_WARPS)

/*
 * One (row tile, column block): out[s, j] for the tile's slots s and
 * columns j0 .. j0 + TILE_COLS of its expert.  gate_up: A rows are x rows
 * of the slots' tokens, the product pairs gate and up, the epilogue is
 * SwiGLU; down: A rows are the slots' h rows.  The branch on gate_up is
 * uniform over the grid.
 */
static __global__ void
glm_moe_grouped_kernel(int gate_up, glm_act *out, int ld_out, const glm_act *a, int ld_a,
    const int32_t *row_token, const int32_t *tiles, const int32_t *n_tiles,
    const glm_moe_expert *table, int n_experts, int k_routed, int k_shared, int n_routed,
    int n_shared)
{
    __shared__ float xs[GLM_MOE_TILE_ROWS][GLM_MOE_K_CHUNK];
    __shared__ int64_t arow[GLM_MOE_TILE_ROWS];
    float acc_a[GLM_MOE_COLS_PER_WARP][GLM_MOE_TILE_ROWS];
    float acc_b[GLM_MOE_COLS_PER_WARP][GLM_MOE_TILE_ROWS];
    int t = blockIdx.x, e, row0, nr, N, K, j0, k0, c, r, q, i;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    glm_cuda_weight wa, wb;

    if (t >= *n_tiles) {
        return;                         /* the worst case did not happen */
    }
    e = tiles[3 * t];
    row0 = tiles[3 * t + 1];
    nr = tiles[3 * t + 2];
    N = e == n_experts ? n_shared : n_routed;
    K = e == n_experts ? k_shared : k_routed;
    j0 = blockIdx.y * GLM_MOE_TILE_COLS;
    if (j0 >= N) {
        return;                         /* a narrower expert than the grid */
    }
    wa = gate_up ? table[e].gate : table[e].down;
    wb = table[e].up;
    if (threadIdx.x < GLM_MOE_TILE_ROWS) {
        int s = row0 + (int) threadIdx.x;
        arow[threadIdx.x] = (int) threadIdx.x >= nr ? -1
                            : (int64_t) (gate_up ? row_token[s] : s) * ld_a;
    }
#pragma unroll
    for (c = 0; c < GLM_MOE_COLS_PER_WARP; c++) {
#pragma unroll
        for (r = 0; r < GLM_MOE_TILE_ROWS; r++) {
            acc_a[c][r] = 0.0f;
            acc_b[c][r] = 0.0f;
        }
    }
    __syncthreads();

    for (k0 = 0; k0 < K; k0 += GLM_MOE_K_CHUNK) {
        for (i = threadIdx.x; i < GLM_MOE_TILE_ROWS * GLM_MOE_K_CHUNK; i += blockDim.x) {
            int rr = i / GLM_MOE_K_CHUNK, kk = i % GLM_MOE_K_CHUNK;
            xs[rr][kk] = rr < nr && k0 + kk < K ? glm_act_ld(a, arow[rr] + k0 + kk) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (c = 0; c < GLM_MOE_COLS_PER_WARP; c++) {
            int j = j0 + c * GLM_MOE_WARPS + warp;
            if (j >= N) {
                continue;
            }
            for (q = 0; q < GLM_MOE_K_CHUNK / 32; q++) {
                int kk = q * 32 + lane;
                float va, vb = 0.0f;
                if (k0 + kk >= K) {
                    break;
                }
                va = glm_ld_w(wa, j, k0 + kk, K);
                if (gate_up) {
                    vb = glm_ld_w(wb, j, k0 + kk, K);
                }
#pragma unroll
                for (r = 0; r < GLM_MOE_TILE_ROWS; r++) {
                    if (r < nr) {
                        acc_a[c][r] += va * xs[r][kk];
                        acc_b[c][r] += vb * xs[r][kk];
                    }
                }
            }
        }
        __syncthreads();
    }

#pragma unroll
    for (c = 0; c < GLM_MOE_COLS_PER_WARP; c++) {
        int j = j0 + c * GLM_MOE_WARPS + warp;
#pragma unroll
        for (r = 0; r < GLM_MOE_TILE_ROWS; r++) {
            float g, u;
            if (r >= nr) {
                continue;               /* uniform over the warp */
            }
            g = glm_warp_sum(acc_a[c][r]);
            u = gate_up ? glm_warp_sum(acc_b[c][r]) : 0.0f;
            if (lane == 0 && j < N) {
                glm_act_st(out, (int64_t) (row0 + r) * ld_out + j,
                           gate_up ? g / (1.0f + expf(-g)) * u : g);
            }
        }
    }
}

static void
glm_moe_grouped(cudaStream_t stream, int gate_up, glm_act *out, int ld_out, const glm_act *a,
    int ld_a, const int32_t *row_token, const int32_t *tiles, const int32_t *n_tiles,
    int max_tiles, const glm_moe_expert *table, int n_experts, int k_routed, int k_shared,
    int n_routed, int n_shared)
{
    int n_max = n_routed > n_shared ? n_routed : n_shared;
    dim3 grid((unsigned) max_tiles, (unsigned) ((n_max + GLM_MOE_TILE_COLS - 1)
                                                / GLM_MOE_TILE_COLS));

    if (max_tiles <= 0 || n_max <= 0) {
        return;
    }
    glm_moe_grouped_kernel<<<grid, GLM_MOE_THREADS, 0, stream>>>(gate_up, out, ld_out, a,
                                                                 ld_a, row_token, tiles,
                                                                 n_tiles, table, n_experts,
                                                                 k_routed, k_shared,
                                                                 n_routed, n_shared);
    GLM_CUDA_LAUNCHED();
}

void
glm_cuda_moe_gate_up(cudaStream_t stream, glm_act *h, int ld_h, const glm_act *x,
    const int32_t *row_token, const int32_t *tiles, const int32_t *n_tiles, int max_tiles,
    const glm_moe_expert *table, int n_experts, int hidden, int inter, int inter_shared)
{
    glm_moe_grouped(stream, 1, h, ld_h, x, hidden, row_token, tiles, n_tiles, max_tiles,
                    table, n_experts, hidden, hidden, inter, inter_shared);
}

void
glm_cuda_moe_down(cudaStream_t stream, glm_act *y, const glm_act *h, int ld_h,
    const int32_t *tiles, const int32_t *n_tiles, int max_tiles,
    const glm_moe_expert *table, int n_experts, int hidden, int inter, int inter_shared)
{
    glm_moe_grouped(stream, 0, y, hidden, h, ld_h, NULL, tiles, n_tiles, max_tiles, table,
                    n_experts, inter, inter_shared, hidden, hidden);
}
