/*
 * ranks.h: a tensor-parallel group of ranks inside one engine process.
 *
 * One thread per rank, each with its own backend and its own shard of the
 * model (model/shard.h); rank 0's model is the group's face: the scheduler
 * (or generate, or bench) holds rank 0's glm_model, plans each step once and
 * calls glm_model_forward on it; that call hands the same batch to every
 * rank thread, runs rank 0's part on the calling thread, and returns when
 * all ranks are done, with the logits gathered on rank 0 (sampling happens
 * once, on the caller's side).  The ranks meet inside the step through the
 * communicator (comm.h): shared memory for the CPU backend.
 *
 * The vision tower: with --mm-encoder-tp-mode data (the default), every rank
 * binds the whole tower (views into the same mapping) and encodes its share
 * of a request's images, whole images in order (glm_model_encode_images);
 * with "weights" it runs on rank 0 alone (the tower is not sharded yet).
 *
 * The CUDA backend's ranks: rank r runs on GPU r (a missing GPU is an error
 * naming how many are visible), each rank thread makes its GPU current and
 * runs on its backend's stream, and the ranks meet through NCCL
 * (comm_nccl.c) enqueued on those streams.  Each rank copies only its own
 * shard to its GPU at load (glm_model_tensors); the checkpoint's tensor
 * structs that ranks share (norms, routers, whole experts) never carry a
 * device pointer (glm_backend_cuda_group_member).  In the CPU emulation of
 * the CUDA backend (t/gpu/emu) the shared-memory communicator stands in
 * for NCCL.
 */
#ifndef GLM_RANKS_H
#define GLM_RANKS_H

#include "model/model.h"
#include "util/util.h"

/* The parallel options, spelled as vLLM spells them on the command line. */
typedef struct {
    int tensor_parallel;          /* --tensor-parallel-size / -tp N, >= 1 */
    int expert_parallel;          /* --enable-expert-parallel */
    int encoder_data_parallel;    /* --mm-encoder-tp-mode data (1, default) | weights (0) */
} glm_parallel;

typedef struct glm_rank_group glm_rank_group;

/* Parses argv[*i] if it is one of the options above (advancing *i past its
 * value); 1 when consumed, 0 when not one of them, -1 on a bad value (the
 * message printed). */
int glm_parallel_arg(glm_parallel *p, int argc, char **argv, int *i);

/* The usage lines of the options. */
#define GLM_PARALLEL_USAGE \
    "  --tensor-parallel-size N, -tp N  split the model over N ranks (default 1)\n" \
    "  --enable-expert-parallel         whole routed experts per rank\n" \
    "  --mm-encoder-tp-mode data|weights  the vision tower per rank (default data)\n"

/* CPU threads for each rank's backend: `threads` (<= 0: all CPUs) shared
 * among `ranks`, at least one each. */
int glm_parallel_threads(int threads, int ranks);

/*
 * Loads DIR split over p->tensor_parallel ranks.  be is rank 0's backend;
 * the other ranks get backends made the same way (its name, `threads`
 * threads each).  Returns rank 0's model, which owns the group (freed by
 * glm_model_free).  With one rank, glm_model_load.
 */
glm_model *glm_model_load_parallel(const char *dir, glm_backend *be, const glm_parallel *p,
    int threads, glm_err *err);

/* Encodes n_grids images or videos (glm_vision_encode's arguments) on the
 * model's tower: on rank 0's model of a data-parallel group, spread over the
 * ranks; otherwise on the model's backend. */
int glm_model_encode_images(glm_model *m, const float *pixels, const glm_grid *grids,
    int n_grids, float *out, glm_err *err);

/* The number of ranks of m's group (1 alone), and rank r's model (m itself
 * for rank 0 or a model alone), for what each rank holds (its ->be, its
 * glm_model_tensors): the memory plan per rank, the checks. */
int glm_model_ranks(const glm_model *m);
glm_model *glm_model_rank(glm_model *m, int r);

/* Called by model.c for rank 0's model. */
int glm_ranks_kv_init(glm_rank_group *g, int n_blocks, int block_size, glm_err *err);
void glm_ranks_kv_free(glm_rank_group *g);
void glm_ranks_forward(glm_rank_group *g, glm_kv_pool *kv0, const glm_batch *b,
    float *logits);
void glm_ranks_free(glm_rank_group *g);

#endif
