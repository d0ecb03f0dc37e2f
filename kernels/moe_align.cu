/* moe_align: see moe_align.cuh. */
#include "moe_align.cuh"

#define GLM_ALIGN_THREADS 1024

static __global__ void
glm_moe_align_kernel(const int32_t *idx, int rows, int top_k, int E,
    const glm_moe_expert *table, int32_t *slot_of, int32_t *row_token, int32_t *tiles,
    int32_t *n_tiles)
{
    extern __shared__ int cnt[];        /* [E + 1] counts, cursors, first tiles */
    int *cursor = cnt + E + 1, *first_tile = cursor + E + 1;
    int pairs = rows * top_k, e, p, i;

    for (e = threadIdx.x; e <= E; e += blockDim.x) {
        cnt[e] = e == E ? (table[E].gate.w != NULL ? rows : 0) : 0;
    }
    __syncthreads();
    for (p = threadIdx.x; p < pairs; p += blockDim.x) {
        e = idx[p];
        if (e >= 0 && e < E && table[e].gate.w != NULL) {
            atomicAdd(&cnt[e], 1);
        }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        int slot = 0, t = 0;
        /* the shared expert (E) first, then 0..E-1 */
        for (i = 0; i <= E; i++) {
            e = i == 0 ? E : i - 1;
            cursor[e] = slot;
            first_tile[e] = t;
            slot += cnt[e];
            t += (cnt[e] + GLM_MOE_TILE_ROWS - 1) / GLM_MOE_TILE_ROWS;
        }
        *n_tiles = t;
    }
    __syncthreads();
    for (e = threadIdx.x; e <= E; e += blockDim.x) {
        int n = cnt[e], t = first_tile[e];
        for (i = 0; i < n; i += GLM_MOE_TILE_ROWS, t++) {
            tiles[3 * t] = e;
            tiles[3 * t + 1] = cursor[e] + i;
            tiles[3 * t + 2] = n - i < GLM_MOE_TILE_ROWS ? n - i : GLM_MOE_TILE_ROWS;
        }
    }
    __syncthreads();
    for (p = threadIdx.x; p < pairs; p += blockDim.x) {
        e = idx[p];
        if (e >= 0 && e < E && table[e].gate.w != NULL) {
            int s = atomicAdd(&cursor[e], 1);
            row_token[s] = p / top_k;
            slot_of[p] = s;
        } else {
            slot_of[p] = -1;
        }
    }
    if (cnt[E] > 0) {
        for (i = threadIdx.x; i < rows; i += blockDim.x) {
            row_token[i] = i;
        }
    }
}

void
glm_cuda_moe_align(cudaStream_t stream, const int32_t *idx, int rows, int top_k,
    int n_experts, const glm_moe_expert *table, int32_t *slot_of, int32_t *row_token,
    int32_t *tiles, int32_t *n_tiles)
{
    size_t smem = (size_t) 3 * (n_experts + 1) * sizeof(int);

    if (rows <= 0) {
        return;
    }
    glm_moe_align_kernel<<<1, GLM_ALIGN_THREADS, smem, stream>>>(idx, rows, top_k,
                                                                 n_experts, table, slot_of,
                                                                 row_token, tiles, n_tiles);
    GLM_CUDA_LAUNCHED();
}
