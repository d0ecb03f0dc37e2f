/* kv_store: see kv_store.cuh. */
#include "kv_store.cuh"

static __global__ void
glm_kv_store_kernel(float *pool_k, float *pool_v, int64_t layer_row0,
    const int64_t *slot_row, int kv_dim, const glm_act *k, const glm_act *v)
{
    int64_t i = blockIdx.x, dst = (layer_row0 + slot_row[i]) * kv_dim;
    int c;

    for (c = threadIdx.x; c < kv_dim; c += blockDim.x) {
        pool_k[dst + c] = glm_act_ld(k, i * kv_dim + c);
        pool_v[dst + c] = glm_act_ld(v, i * kv_dim + c);
    }
}

void
glm_cuda_kv_store(cudaStream_t stream, float *pool_k, float *pool_v,
    int64_t layer_row0, const int64_t *slot_row, int n_tokens, int kv_dim,
    const glm_act *k, const glm_act *v)
{
    if (n_tokens <= 0) {
        return;
    }
    glm_kv_store_kernel<<<n_tokens, 256, 0, stream>>>(pool_k, pool_v, layer_row0,
                                                       slot_row, kv_dim, k, v);
    GLM_CUDA_LAUNCHED();
}
