/* moe_permute: see moe_permute.cuh. */
#include "moe_permute.cuh"

static __global__ void
glm_moe_count_kernel(const int32_t *idx, int pairs, int32_t *counts)
{
    int i;

    for (i = blockIdx.x * blockDim.x + threadIdx.x; i < pairs; i += gridDim.x * blockDim.x) {
        atomicAdd(&counts[idx[i]], 1);
    }
}

static __global__ void
glm_moe_offsets_kernel(const int32_t *counts, int E, int32_t *offsets, int32_t *cursor)
{
    int e, run = 0;

    for (e = threadIdx.x; e < E; e += blockDim.x) {
        cursor[e] = 0;
    }
    if (threadIdx.x == 0) {
        for (e = 0; e < E; e++) {
            offsets[e] = run;
            run += counts[e];
        }
        offsets[E] = run;
    }
}

static __global__ void
glm_moe_scatter_kernel(const int32_t *idx, int pairs, int top_k, const int32_t *offsets,
    int32_t *cursor, int32_t *perm_token, int32_t *slot_of)
{
    int i;

    for (i = blockIdx.x * blockDim.x + threadIdx.x; i < pairs; i += gridDim.x * blockDim.x) {
        int e = idx[i], slot = offsets[e] + atomicAdd(&cursor[e], 1);
        perm_token[slot] = i / top_k;
        slot_of[i] = slot;
    }
}

static __global__ void
glm_moe_gather_kernel(glm_act *xperm, const glm_act *x, const int32_t *perm_token, int hidden)
{
    int64_t slot = blockIdx.x, src = perm_token[slot];
    int c;

    for (c = threadIdx.x; c < hidden; c += blockDim.x) {
        xperm[slot * hidden + c] = x[src * hidden + c];
    }
}

void
glm_cuda_moe_count(cudaStream_t stream, const int32_t *idx, int pairs, int32_t *counts)
{
    if (pairs <= 0) {
        return;
    }
    glm_moe_count_kernel<<<glm_cuda_blocks((size_t) pairs, 256), 256, 0, stream>>>(
        idx, pairs, counts);
    GLM_CUDA_LAUNCHED();
}

void
glm_cuda_moe_offsets(cudaStream_t stream, const int32_t *counts, int n_experts,
    int32_t *offsets, int32_t *cursor)
{
    glm_moe_offsets_kernel<<<1, 256, 0, stream>>>(counts, n_experts, offsets, cursor);
    GLM_CUDA_LAUNCHED();
}

void
glm_cuda_moe_scatter(cudaStream_t stream, const int32_t *idx, int pairs, int top_k,
    const int32_t *offsets, int32_t *cursor, int32_t *perm_token, int32_t *slot_of)
{
    if (pairs <= 0) {
        return;
    }
    glm_moe_scatter_kernel<<<glm_cuda_blocks((size_t) pairs, 256), 256, 0, stream>>>(
        idx, pairs, top_k, offsets, cursor, perm_token, slot_of);
    GLM_CUDA_LAUNCHED();
}

void
glm_cuda_moe_gather(cudaStream_t stream, glm_act *xperm, const glm_act *x,
    const int32_t *perm_token, int pairs, int hidden)
{
    if (pairs <= 0) {
        return;
    }
    glm_moe_gather_kernel<<<pairs, 256, 0, stream>>>(xperm, x, perm_token, hidden);
    GLM_CUDA_LAUNCHED();
}
