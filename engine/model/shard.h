/*
 * shard.h: which part of each weight a tensor-parallel rank holds, and the
 * tensors that hold it.
 *
 * Megatron's split, as the published checkpoints are served: a Linear whose
 * output feeds a per-rank computation (q/k/v, gate/up) is split by output
 * rows, so a rank's part is a contiguous slice of the [out, in] weight: a
 * view into the checkpoint's mapping, nothing copied.  A Linear whose input
 * is split (o_proj, down) is split by input columns; its partial products
 * are summed by one all-reduce after the block.  A column shard of an
 * [out, in] weight is not contiguous, so the rank copies just its columns
 * (1/N of the weight; the CPU kernels and GEMMs then read plain rows and
 * need no leading-dimension argument).
 *
 * Splits need not be even: n items over N ranks give rank r the items
 * [n*r/N, n*(r+1)/N) (glm_split), so N = 3 serves 4 heads or an
 * intermediate size of 1408.  FP8 scales follow their weights: a row shard
 * keeps indexing the whole weight's scale grid from its first row
 * (scale_row0), a column shard from its first column (scale_col0), so a
 * boundary inside a 128-wide block is handled, not refused.
 *
 * Attention heads: the rank's query heads are always whole GQA groups or
 * part of one group, so its query heads use a contiguous run of KV heads
 * and the backend's h / (heads / kv_heads) mapping holds on the rank:
 *   N <= kv_heads: KV heads split over the ranks, each rank the query heads
 *                  of its KV heads;
 *   N >  kv_heads: ranks split over the KV heads, each rank holding one KV
 *                  head (replicated on the ranks that share it, as vLLM
 *                  does) and its share of that head's query heads.
 */
#ifndef GLM_SHARD_H
#define GLM_SHARD_H

#include <stdint.h>

#include "safetensors.h"
#include "util/util.h"

typedef struct {
    int rank, ranks;               /* this rank's place: 0 .. ranks-1 */
    int expert_parallel;           /* routed experts whole, one range per rank */
} glm_shard;

/* rank r's items [lo, hi) of n split over `ranks` ranks */
void glm_split(int64_t n, int rank, int ranks, int64_t *lo, int64_t *hi);

/* The query heads [*h0, *h1) and KV heads [*k0, *k1) of the rank; -1 when
 * the heads cannot be split over sh->ranks (more ranks than query heads,
 * or query heads not a multiple of KV heads). */
int glm_shard_heads(const glm_shard *sh, int heads, int kv_heads, int *h0, int *h1,
    int *k0, int *k1, glm_err *err);

/* The tensors and copies a rank made; freed together. */
typedef struct glm_shard_store glm_shard_store;

void glm_shard_store_free(glm_shard_store *s);

/* Rows [row0, row0 + rows) of a 1-D or [R, C] tensor: a view into the
 * mapping (a 1-D tensor: elements); NULL when out of memory. */
glm_tensor *glm_shard_rows(glm_shard_store **s, const glm_tensor *t, int64_t row0,
    int64_t rows);

/* Columns [col0, col0 + cols) of an [R, C] tensor: a copy of just those
 * columns, in the stored dtype, scales still the whole weight's. */
glm_tensor *glm_shard_cols(glm_shard_store **s, const glm_tensor *t, int64_t col0,
    int64_t cols);

#endif
