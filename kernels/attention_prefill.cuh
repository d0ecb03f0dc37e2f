/*
 * attention_prefill: causal attention of runs of query tokens of one
 * sequence (a prefill chunk) over that sequence's paged KV cache.
 *
 * Tile i = int4 { first token, n_rows <= GLM_TILE_Q, sequence, 0 }: tokens
 * first .. first + n_rows - 1 of the batch all belong to that sequence; row
 * r attends to positions 0 .. tok_pos[first + r] of it (the chunk's own k/v
 * are already in the cache: kv_store runs first, so chunked prefill over an
 * earlier cached prefix needs nothing special).  The backend builds tiles
 * from runs of consecutive tokens of one sequence and sends lone tokens
 * (decode) to attention_decode instead.
 *
 * Layout: q, out [n_tokens, heads * head_dim] BF16, math fp32; the cache as
 * paged_kv.cuh.  Launch: grid (n_tiles, heads), GLM_TILE_THREADS threads,
 * glm_attn_tile_smem(head_dim) bytes of dynamic shared memory; head_dim <=
 * GLM_ATTN_MAX_HEAD_DIM.  The kernel is attention_tile.cuh's; its note says
 * why it is fp32 on CUDA cores for now.
 *
 * Tensor cores (issue 14 point 2, not done): what it takes.
 * - A device function shaped as mma.sync.m16n8k16 (BF16 in, fp32 out, the
 *   fragment layout of the PTX ISA: a lane holds rows lane/4 and lane/4+8,
 *   columns 2*(lane%4)..+1 of A, and so on), written with inline PTX on
 *   CUDA and, under GLM_EMU, as a twin that gathers the 32 lanes' fragments
 *   through shared memory (a __syncthreads-free warp exchange: the
 *   emulator's shuffle) and multiplies in fp32.  A test_ops line checks the
 *   twin alone against a plain fp32 product, so the emulated numbers mean
 *   something.  wgmma (sm_90a, asynchronous, descriptors in shared memory)
 *   would need a second twin; mma.sync runs on Hopper at roughly half its
 *   peak and is the first step.
 * - The tile: 64 query rows x (GQA) the group's heads sharing one KV head
 *   (rows = tokens x heads, as the decode kernel shares K/V rows), K and V
 *   staged per 64 positions as BF16 (FP8 widened to BF16 on the load: the
 *   scale stays fp32, applied to S and to the PV product), S = Q K^T and
 *   O += P V on mma, the online softmax on the fp32 accumulators in
 *   registers, P rounded to BF16 for the second product (FlashAttention-2's
 *   rounding; the oracle's tolerance for prefill widens from one BF16
 *   rounding to two).
 * - The paged read: a block table walk per 64 positions; block_size 16
 *   means 4 blocks per stage, gathered by cp.async.
 */
#ifndef GLM_KERNELS_ATTENTION_PREFILL_CUH
#define GLM_KERNELS_ATTENTION_PREFILL_CUH

#include "paged_kv.cuh"

void glm_cuda_attention_prefill(cudaStream_t stream, glm_act *out, const glm_act *q,
    glm_cuda_paged kv, const int4 *tiles, int n_tiles, const int32_t *tok_pos,
    int heads, int kv_heads, int head_dim, float scale);

#endif
