/*
 * serve_plan.c: `serve`'s memory plan (model/plan.h) on the CUDA backend.
 *
 * At start-up, once the weights are on the GPU, the plan is printed as
 * `glm-engine plan` would print it for this GPU (the design: weights as
 * stored, BF16 activations, a BF16 KV cache), and then the KV pool is sized
 * for the backend as it is today, from what --gpu-memory-utilization leaves:
 * the weight bytes the backend measured on the device, its activations
 * (be->act_size: BF16) and its KV cache in the dtype the model chose
 * (glm_model_set_kv_dtype).
 * --kv-blocks, when given, wins.  Too little memory for one --max-model-len
 * sequence is a start-up error naming what to lower.
 *
 * With --tensor-parallel-size N every figure is per GPU, as `glm-engine
 * plan --tensor-parallel-size N` prints them: the design plan for N ranks,
 * then the plan as loaded, from the largest rank's measured weights and
 * the smallest GPU (every rank gets the same number of KV blocks, each
 * holding its own KV heads), one line per rank saying what it holds.
 *
 * The CPU backend has no GPU to plan: --gpu-memory-utilization is noted and
 * left alone there, and --kv-blocks sizes its cache.
 */
#include <stdio.h>

#include "backend/backend_cuda.h"
#include "media/media_request.h"
#include "model/plan.h"
#include "model/tensor_list.h"
#include "parallel/ranks.h"
#include "server.h"

int
glm_serve_plan(glm_server *srv, glm_err *err)
{
    glm_serve_opts *o = &srv->o;
    const glm_config *cfg = &srv->m->cfg;
    glm_media_opts media;
    glm_tensor_list tl;
    glm_plan_opts po;
    glm_plan design, now;
    size_t weight_bytes, free_bytes, total_bytes, w, fr, tot;
    const char *slash;
    int rc, r, ranks = glm_model_ranks(srv->m);

    if (strcmp(srv->be->name, "cuda") != 0) {
        if (o->gpu_memory_utilization > 0) {
            fprintf(stderr, "glm-engine: note: --gpu-memory-utilization is for the CUDA"
                    " backend; the CPU backend's KV cache is --kv-blocks\n");
        }
        return 0;
    }
    glm_backend_cuda_memory(srv->be, &weight_bytes, &free_bytes, &total_bytes);
    /* a group: the largest rank's weights on the smallest GPU */
    for (r = 1; r < ranks; r++) {
        glm_backend_cuda_memory(glm_model_rank(srv->m, r)->be, &w, &fr, &tot);
        weight_bytes = w > weight_bytes ? w : weight_bytes;
        total_bytes = tot < total_bytes ? tot : total_bytes;
    }
    glm_plan_opts_default(&po);
    po.tp = ranks;
    po.expert_parallel = ranks > 1 && o->par.expert_parallel;
    po.gpu_bytes = total_bytes;
    po.utilization = o->gpu_memory_utilization > 0 ? o->gpu_memory_utilization : 0.9;
    po.max_model_len = o->max_model_len;
    po.max_num_seqs = o->max_num_seqs;
    po.max_num_batched_tokens = o->max_num_batched_tokens;
    po.block_size = o->block_size;
    po.kv_dtype = o->kv_cache_dtype;
    if (cfg->arch == GLM_ARCH_VISION && glm_media_opts_init(&media, o->model_dir, err) == 0) {
        po.vision_max_pixels = media.image_proc.max_pixels;
        glm_media_opts_free(&media);
    }
    if (glm_tensor_list_from_checkpoint(&tl, srv->m->ck, err) != 0
        || glm_plan_compute(&design, cfg, &tl, &po, err) != 0)
    {
        glm_tensor_list_free(&tl);
        return -1;
    }
    slash = strrchr(o->model_dir, '/');
    glm_plan_print(stderr, &design, cfg, slash && slash[1] ? slash + 1 : o->model_dir);

    po.weights_override = weight_bytes;
    po.act_bytes = (int) srv->be->act_size;    /* the backend's: BF16 on CUDA */
    po.kv_elem_bytes = (int) glm_kv_dtype_size(srv->m->kv_dtype);    /* the pool's dtype */
    po.no_advice = 1;
    rc = glm_plan_compute(&now, cfg, &tl, &po, err);
    glm_tensor_list_free(&tl);
    if (rc != 0) {
        return -1;
    }
    fprintf(stderr, "glm-engine: CUDA backend today%s: %.2f GiB of weights on the GPU, %s"
            " activations (scratch %.2f GiB), %s KV cache (%llu bytes/token): %.2f GiB"
            " left for %lld KV blocks of %d\n", ranks > 1 ? ", per GPU (the largest rank)" : "",
            weight_bytes / GLM_GIB, srv->be->act_dtype == GLM_ACT_BF16 ? "BF16" : "fp32",
            now.scratch / GLM_GIB, glm_kv_dtype_name(srv->m->kv_dtype),
            (unsigned long long) now.kv_bytes_per_token, now.kv_bytes / GLM_GIB,
            (long long) now.kv_blocks, o->block_size);
    for (r = 0; r < ranks && ranks > 1; r++) {
        glm_backend_cuda_memory(glm_model_rank(srv->m, r)->be, &w, &fr, &tot);
        fprintf(stderr, "glm-engine: rank %d of %d: %.2f GiB of weights, %.2f GiB free of"
                " %.2f GiB, %lld KV blocks of its %d KV heads\n", r, ranks, w / GLM_GIB,
                fr / GLM_GIB, tot / GLM_GIB, (long long) now.kv_blocks,
                now.kv_heads_per_rank);
    }
    if (o->kv_blocks > 0) {
        return 0;                          /* --kv-blocks given: the operator's call */
    }
    if (!now.fits) {
        return glm_errf(err, "--gpu-memory-utilization %.2f of %.2f GiB leaves room for %lld"
                        " tokens of KV cache, less than one --max-model-len %d sequence:"
                        " lower --max-model-len to %lld or --max-num-batched-tokens/"
                        "--max-num-seqs, raise --gpu-memory-utilization, or use more GPUs",
                        po.utilization, total_bytes / GLM_GIB, (long long) now.kv_tokens,
                        o->max_model_len, (long long) now.kv_tokens);
    }
    o->kv_blocks = now.kv_blocks > (1 << 24) ? 1 << 24 : (int) now.kv_blocks;
    return 0;
}
