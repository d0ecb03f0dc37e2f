/*
 * cmd_plan.c: `glm-engine plan`: the memory plan of one GPU (model/plan.h)
 * from config.json and the checkpoint's tensor list, on any machine: the
 * safetensors headers are read, the weights never (a directory with only
 * config.json and a tensor manifest, tensors.txt, works too).  Options are
 * serve's and vLLM's names; the GPU is given by its memory or its name.
 *
 * Exit status: 0 when the plan fits, 3 when it does not (the plan is
 * printed either way, with what to change), 1 on errors, 2 on usage.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "media/media_request.h"
#include "model/config.h"
#include "model/plan.h"
#include "model/tensor_list.h"

int glm_cmd_plan(int argc, char **argv);

static void glm_plan_usage(FILE *f);
static void glm_plan_model_name(char *buf, size_t size, const char *dir);

static void
glm_plan_usage(FILE *f)
{
    fprintf(f,
        "usage: glm-engine plan --model DIR [options]\n"
        "  the memory plan of one GPU, from config.json and the safetensors headers\n"
        "  (or DIR/tensors.txt, a tensor manifest); the weights are never read\n"
        "  --tensor-parallel-size N        GPUs the model is split over (default 1)\n"
        "  --gpu h100|h200                 the GPU by name (default h100: 79.18 GiB)\n"
        "  --gpu-memory GIB                or by its total memory in GiB\n"
        "  --gpu-memory-utilization F      fraction of it to use (default 0.9)\n"
        "  --kv-cache-dtype auto|bfloat16|fp8  (default auto: the model's dtype)\n"
        "  --max-model-len N               context per sequence (default: the model's)\n"
        "  --max-num-seqs N                sequences per step (default 64)\n"
        "  --max-num-batched-tokens N      tokens per step (default 2048)\n"
        "  --block-size N                  tokens per KV block (default 16)\n"
        "exit status: 0 fits, 3 does not fit, 1 error, 2 usage\n");
}

/* the directory's last component: "GLM-4.5-Air-FP8" for ".../GLM-4.5-Air-FP8/" */
static void
glm_plan_model_name(char *buf, size_t size, const char *dir)
{
    size_t n = strlen(dir);
    const char *start;

    while (n > 1 && dir[n - 1] == '/') {
        n--;
    }
    start = dir + n;
    while (start > dir && start[-1] != '/') {
        start--;
    }
    snprintf(buf, size, "%.*s", (int) (dir + n - start), start);
}

int
glm_cmd_plan(int argc, char **argv)
{
    const char *dir = NULL;
    glm_plan_opts o;
    glm_tensor_list tl;
    glm_media_opts media;
    glm_config cfg;
    glm_plan plan;
    glm_err err;
    char name[256];
    double dv;
    long lv;
    int i;

    glm_plan_opts_default(&o);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            glm_plan_usage(stdout);
            return 0;
        }
        if (v == NULL) {
            glm_plan_usage(stderr);
            return 2;
        }
        i++;
        if (strcmp(a, "--model") == 0) {
            dir = v;
        } else if (strcmp(a, "--tensor-parallel-size") == 0 || strcmp(a, "-tp") == 0) {
            if (glm_arg_long(a, v, 1, 4096, &lv) != 0) {
                return 2;
            }
            o.tp = (int) lv;
        } else if (strcmp(a, "--gpu") == 0) {
            if (strcmp(v, "h100") == 0) {
                o.gpu_bytes = GLM_PLAN_H100_BYTES;
            } else if (strcmp(v, "h200") == 0) {
                o.gpu_bytes = GLM_PLAN_H200_BYTES;
            } else {
                fprintf(stderr, "glm-engine: --gpu is h100 or h200 (or give"
                        " --gpu-memory GIB), got '%s'\n", v);
                return 2;
            }
        } else if (strcmp(a, "--gpu-memory") == 0) {
            if (glm_arg_double(a, v, 0.001, 1 << 20, &dv) != 0) {
                return 2;
            }
            o.gpu_bytes = (uint64_t) (dv * GLM_GIB);
        } else if (strcmp(a, "--gpu-memory-utilization") == 0) {
            if (glm_arg_double(a, v, 0.001, 1.0, &o.utilization) != 0) {
                return 2;
            }
        } else if (strcmp(a, "--kv-cache-dtype") == 0) {
            if (glm_plan_kv_parse(v, &o.kv_dtype) != 0) {
                fprintf(stderr, "glm-engine: --kv-cache-dtype is auto, bfloat16 or fp8,"
                        " got '%s'\n", v);
                return 2;
            }
        } else if (strcmp(a, "--max-model-len") == 0) {
            if (glm_arg_long(a, v, 1, INT_MAX, &lv) != 0) {
                return 2;
            }
            o.max_model_len = lv;
        } else if (strcmp(a, "--max-num-seqs") == 0) {
            if (glm_arg_long(a, v, 1, 65536, &lv) != 0) {
                return 2;
            }
            o.max_num_seqs = (int) lv;
        } else if (strcmp(a, "--max-num-batched-tokens") == 0) {
            if (glm_arg_long(a, v, 1, 1 << 20, &lv) != 0) {
                return 2;
            }
            o.max_num_batched_tokens = (int) lv;
        } else if (strcmp(a, "--block-size") == 0) {
            if (glm_arg_long(a, v, 1, 4096, &lv) != 0) {
                return 2;
            }
            o.block_size = (int) lv;
        } else {
            fprintf(stderr, "glm-engine: plan: unknown option %s\n", a);
            glm_plan_usage(stderr);
            return 2;
        }
    }
    if (dir == NULL) {
        glm_plan_usage(stderr);
        return 2;
    }
    if (glm_config_load(&cfg, dir, &err) != 0) {
        fprintf(stderr, "glm-engine: error: %s\n", err.msg);
        return 1;
    }
    if (cfg.arch == GLM_ARCH_VISION) {
        /* the encoder pass is sized by the largest image the processor makes */
        if (glm_media_opts_init(&media, dir, &err) != 0) {
            fprintf(stderr, "glm-engine: error: %s\n", err.msg);
            glm_config_free(&cfg);
            return 1;
        }
        o.vision_max_pixels = media.image_proc.max_pixels;
        glm_media_opts_free(&media);
    }
    if (glm_tensor_list_load(&tl, dir, &err) != 0
        || glm_plan_compute(&plan, &cfg, &tl, &o, &err) != 0)
    {
        fprintf(stderr, "glm-engine: error: %s\n", err.msg);
        glm_tensor_list_free(&tl);
        glm_config_free(&cfg);
        return 1;
    }
    glm_plan_model_name(name, sizeof(name), dir);
    glm_plan_print(stdout, &plan, &cfg, name);
    glm_tensor_list_free(&tl);
    glm_config_free(&cfg);
    return plan.fits ? 0 : 3;
}
