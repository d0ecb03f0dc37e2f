/* kv_store: see kv_store.cuh. */
#include "kv_store.cuh"

static __global__ void
glm_kv_store_kernel(void *pool_k, void *pool_v, int dtype, float k_scale, float v_scale,
    int64_t layer_row0, const int64_t *slot_row, int kv_dim, const glm_act *k,
    const glm_act *v)
{
    int64_t i = blockIdx.x, dst = (layer_row0 + slot_row[i]) * kv_dim;
    int c;

    for (c = threadIdx.x; c < kv_dim; c += blockDim.x) {
        glm_kv_st(pool_k, dtype, dst + c, glm_act_ld(k, i * kv_dim + c), k_scale);
        glm_kv_st(pool_v, dtype, dst + c, glm_act_ld(v, i * kv_dim + c), v_scale);
    }
}

void
glm_cuda_kv_store(cudaStream_t stream, void *pool_k, void *pool_v, int dtype, float k_scale,
    float v_scale, int64_t layer_row0, const int64_t *slot_row, int n_tokens, int kv_dim,
    const glm_act *k, const glm_act *v)
{
    if (n_tokens <= 0) {
        return;
    }
    glm_kv_store_kernel<<<n_tokens, 256, 0, stream>>>(pool_k, pool_v, dtype, k_scale, v_scale,
                                                       layer_row0, slot_row, kv_dim, k, v);
    GLM_CUDA_LAUNCHED();
}
