/*
 * cpu_kernels.h: the CPU backend's inner loops, compiled once per
 * instruction set and chosen at run time.
 *
 * The CPU backend is the fp32 oracle, and these loops keep it one: weights
 * are widened to fp32 in registers exactly as glm_tensor_to_f32 widens them
 * (BF16 is a shift, F16 a hardware conversion, FP8 a bit rearrangement and an
 * exact power-of-two multiply, then the same scale product and bf16 rounding
 * as the dequantizer), and every product is accumulated in fp32.  Only the
 * summation order differs from a plain loop: lanes of VW partial sums (one
 * FMA each) over k, reduced at the end.
 *
 * The order of every sum depends only on K, the dtype and the instruction
 * set, never on how many rows share a step or which thread computes a
 * column: a token's logits are the same whether it is decoded alone or in a
 * batch of 64, prefilled or decoded.
 *
 * Three builds of one body (cpu_kernels_body.h):
 *   avx512   AVX-512F, 16 lanes, 4 rows x 4 columns of accumulators
 *   avx2     AVX2 + FMA + F16C, 8 lanes, 2 rows x 4 columns
 *   generic  plain C, 8 lanes, no FMA (any x86-64 or other CPU)
 * GLM_CPU_ISA=generic|avx2|avx512 in the environment picks a lower one (the
 * tests run every build the machine has against each other).
 */
#ifndef GLM_CPU_KERNELS_H
#define GLM_CPU_KERNELS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

/* out[r * ldo + n] = x[r * ldx, :K] . W[n, :K] (+ bias[n]), r < rows */
typedef struct {
    float            *out;
    const float      *x;
    int64_t           ldx, ldo;
    int               rows;
    const glm_tensor *w;               /* [N, K], any float or FP8 dtype */
    const glm_tensor *bias;            /* [N] or NULL */
} glm_mm_args;

/*
 * Causal attention of a tile of query tokens over the paged cache: tokens
 * [tiles[i], tiles[i+1]) belong to one sequence, and the task (i, kv head)
 * computes every query head of that kv head for all of them, so each key and
 * value row is read once for the whole GQA group and the whole tile.  Online
 * softmax over key tiles of GLM_ATTN_KT positions.
 */
typedef struct {
    float                *out;         /* [n_tokens, heads * head_dim] */
    const float          *q;
    const glm_kv_pool    *kv;
    int                   layer;
    const glm_attn_batch *b;
    int                   heads, kv_heads, head_dim;
    float                 scale;
    const int32_t        *tiles;       /* [n_tiles + 1] token offsets */
} glm_attn_args;

/* query rows (tokens x GQA group) of one attention task, at most */
#define GLM_ATTN_ROWS 128
#define GLM_ATTN_KT   32

typedef struct {
    const char *name;
    /* the columns [n0, n1) of a matmul, for all its rows */
    void  (*matmul_cols)(const glm_mm_args *a, int64_t n0, int64_t n1);
    void  (*attn_tile)(const glm_attn_args *a, int64_t tile, int kv_head);
    float (*dot)(const float *a, const float *b, int n);
} glm_cpu_kernels;

extern const glm_cpu_kernels glm_cpu_kernels_avx512;
extern const glm_cpu_kernels glm_cpu_kernels_avx2;
extern const glm_cpu_kernels glm_cpu_kernels_generic;

/* The fastest build this CPU runs (GLM_CPU_ISA may ask for a lower one). */
const glm_cpu_kernels *glm_cpu_kernels_select(void);

/* The kernels of build `name` if this CPU runs it, else NULL. */
const glm_cpu_kernels *glm_cpu_kernels_named(const char *name);

/* The cache row of `pos` in sequence s (layer `layer`, k or v base), in
 * elements of the pool's dtype. */
static inline void *
glm_kv_slot(const glm_kv_pool *kv, void *base, int layer, const glm_seq_blocks *s,
    int pos)
{
    int bi = pos / kv->block_size;

    if (pos < 0 || bi >= s->n_blocks || s->blocks[bi] < 0
        || s->blocks[bi] >= kv->n_blocks)
    {
        /* the scheduler sizes block tables before a step: a miss is a bug */
        fprintf(stderr, "glm-engine: internal error: kv position %d outside its"
                " block table (%d blocks)\n", pos, s->n_blocks);
        abort();
    }
    return (char *) base + ((((int64_t) layer * kv->n_blocks + s->blocks[bi]) * kv->block_size
                             + pos % kv->block_size) * kv->kv_dim)
                           * (int64_t) glm_kv_dtype_size(kv->dtype);
}

/* n values of a cache row (elements first.. of row) widened to fp32:
 * BF16 by a shift, FP8 as torch's float8_e4m3fn.float() times the layer's
 * scale (vLLM's fp8 cache reads fp8 * scale). */
static inline void
glm_kv_widen(glm_kv_dtype dtype, const void *row, int64_t first, int n, float scale,
    float *out)
{
    int i;

    if (dtype == GLM_KV_BF16) {
        const uint16_t *h = (const uint16_t *) row + first;
        for (i = 0; i < n; i++) {
            out[i] = glm_bf16_to_f32(h[i]);
        }
    } else if (dtype == GLM_KV_FP8_E4M3) {
        const uint8_t *b = (const uint8_t *) row + first;
        for (i = 0; i < n; i++) {
            out[i] = glm_fp8_e4m3_to_f32(b[i]) * scale;
        }
    } else {
        memcpy(out, (const float *) row + first, (size_t) n * sizeof(float));
    }
}

/* n fp32 values narrowed into a cache row: BF16 and FP8 round to nearest
 * even, FP8 stores x / scale saturated to +-448 (vLLM's fp8_e4m3 cache). */
static inline void
glm_kv_narrow(glm_kv_dtype dtype, const float *x, int n, float scale, void *row)
{
    int i;

    if (dtype == GLM_KV_BF16) {
        uint16_t *h = row;
        for (i = 0; i < n; i++) {
            h[i] = glm_f32_to_bf16(x[i]);
        }
    } else if (dtype == GLM_KV_FP8_E4M3) {
        uint8_t *b = row;
        for (i = 0; i < n; i++) {
            b[i] = glm_f32_to_fp8_e4m3(x[i] / scale);
        }
    } else {
        memcpy(row, x, (size_t) n * sizeof(float));
    }
}

#endif
