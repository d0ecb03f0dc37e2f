/*
 * ranks.c: see ranks.h.
 *
 * The hand-off: rank 0's caller publishes a job (the model step, or a share
 * of the images to encode) and bumps `step` under the lock; each rank thread
 * waits for a job it has not run, runs its part (a model step meets the
 * other ranks in the communicator), and counts itself done.  The job's
 * inputs are the caller's memory, read by every rank and written by none,
 * and they outlive the call.
 */
#include "ranks.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend_cuda.h"
#include "backend/backend_select.h"
#include "comm.h"

typedef void (*glm_rank_job)(glm_rank_group *g, int rank, void *arg);

struct glm_rank_group {
    int               n;
    int               cuda;       /* the ranks are GPUs: rank r on device r */
    int               encoder_data_parallel;
    glm_model       **m;          /* [n]; m[0] is the group's owner */
    glm_vision      **vision;     /* [n]; rank r's binding of the tower, [0] m[0]'s */
    glm_backend     **be;         /* [n]; be[0] is the caller's */
    glm_comm        **comm;       /* [n] */
    glm_kv_pool      *kv;         /* [n]; kv[0] unused: rank 0 runs on the caller's */
    int               kv_ready;
    pthread_t        *th;         /* [n]; th[0] unused */
    int               started;    /* rank threads running */
    pthread_mutex_t   lock;
    pthread_cond_t    go, done;
    uint64_t          step;       /* bumped once per step */
    int               finished;   /* rank threads done with `step` */
    int               quit;
    glm_rank_job      job;        /* this step's work and its argument */
    void             *arg;
};

typedef struct {
    glm_rank_group *g;
    int             rank;
} glm_rank_arg;

/* Makes rank r's GPU current on the calling thread (CUDA's current device
 * is per host thread); nothing for the CPU backend. */
static void
glm_rank_current(glm_rank_group *g, int r)
{
    if (g->cuda && g->be[r] != NULL) {
        glm_backend_cuda_make_current(g->be[r]);
    }
}

int
glm_parallel_arg(glm_parallel *p, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    long v;

    if (strcmp(a, "--tensor-parallel-size") == 0 || strcmp(a, "-tp") == 0) {
        if (*i + 1 >= argc) {
            fprintf(stderr, "glm-engine: %s wants a number of ranks\n", a);
            return -1;
        }
        if (glm_arg_long(a, argv[++*i], 1, 4096, &v) != 0) {
            return -1;
        }
        p->tensor_parallel = (int) v;
        return 1;
    }
    if (strcmp(a, "--enable-expert-parallel") == 0) {
        p->expert_parallel = 1;
        return 1;
    }
    if (strcmp(a, "--mm-encoder-tp-mode") == 0) {
        if (*i + 1 >= argc
            || (strcmp(argv[*i + 1], "data") != 0 && strcmp(argv[*i + 1], "weights") != 0)) {
            fprintf(stderr, "glm-engine: --mm-encoder-tp-mode wants data or weights\n");
            return -1;
        }
        p->encoder_data_parallel = strcmp(argv[++*i], "data") == 0;
        return 1;
    }
    return 0;
}

int
glm_parallel_threads(int threads, int ranks)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    if (threads <= 0) {
        threads = cpus > 0 ? (int) cpus : 1;
    }
    return threads / ranks > 0 ? threads / ranks : 1;
}

static void *
glm_rank_main(void *p)
{
    glm_rank_arg *a = p;
    glm_rank_group *g = a->g;
    int r = a->rank;
    uint64_t seen = 0;

    free(a);
    glm_rank_current(g, r);             /* this thread runs rank r's GPU */
    for (;;) {
        glm_rank_job job;
        void *arg;

        pthread_mutex_lock(&g->lock);
        while (g->step == seen && !g->quit) {
            pthread_cond_wait(&g->go, &g->lock);
        }
        if (g->quit) {
            pthread_mutex_unlock(&g->lock);
            return NULL;
        }
        seen = g->step;
        job = g->job;
        arg = g->arg;
        pthread_mutex_unlock(&g->lock);

        job(g, r, arg);

        pthread_mutex_lock(&g->lock);
        if (++g->finished == g->n - 1) {
            pthread_cond_signal(&g->done);
        }
        pthread_mutex_unlock(&g->lock);
    }
}

/* Runs job on every rank: ranks 1.. on their threads, rank 0 here. */
static void
glm_ranks_run(glm_rank_group *g, glm_rank_job job, void *arg)
{
    pthread_mutex_lock(&g->lock);
    g->job = job;
    g->arg = arg;
    g->finished = 0;
    g->step++;
    pthread_cond_broadcast(&g->go);
    pthread_mutex_unlock(&g->lock);

    job(g, 0, arg);

    pthread_mutex_lock(&g->lock);
    while (g->finished < g->n - 1) {
        pthread_cond_wait(&g->done, &g->lock);
    }
    pthread_mutex_unlock(&g->lock);
}

typedef struct {
    glm_kv_pool     *kv0;
    const glm_batch *b;
    float           *logits;
} glm_step_job;

static void
glm_rank_step(glm_rank_group *g, int r, void *arg)
{
    glm_step_job *j = arg;

    glm_model_forward_rank(g->m[r], r == 0 ? j->kv0 : &g->kv[r], j->b,
                           r == 0 ? j->logits : NULL);
}

void
glm_ranks_forward(glm_rank_group *g, glm_kv_pool *kv0, const glm_batch *b, float *logits)
{
    glm_step_job j = { kv0, b, logits };

    glm_ranks_run(g, glm_rank_step, &j);
}

/* ---- the vision tower, data parallel ------------------------------------- */

typedef struct {
    const float    *pixels;
    const glm_grid *grids;
    int             n_grids;
    float          *out;
    int            *first;        /* [ranks + 1]: rank r encodes grids
                                     [first[r], first[r + 1]) */
    int64_t        *px_off, *row_off;  /* [n_grids]: where each grid starts */
    int             px_cols;
    int            *rc;           /* [ranks] */
    glm_err        *err;          /* [ranks] */
} glm_vision_job;

static void
glm_rank_vision(glm_rank_group *g, int r, void *arg)
{
    glm_vision_job *j = arg;
    const glm_config *c = &g->m[0]->cfg;
    int g0 = j->first[r], g1 = j->first[r + 1];

    j->rc[r] = 0;
    if (g1 > g0) {
        j->rc[r] = glm_vision_encode(g->vision[r], g->be[r],
                                     j->pixels + j->px_off[g0] * j->px_cols, j->grids + g0,
                                     g1 - g0, j->out + j->row_off[g0] * c->hidden_size,
                                     &j->err[r]);
    }
}

int
glm_model_encode_images(glm_model *m, const float *pixels, const glm_grid *grids,
    int n_grids, float *out, glm_err *err)
{
    glm_rank_group *g = m->group;
    const glm_config *c = &m->cfg;
    glm_vision_job j;
    int64_t total = 0;
    int N, r, i, rc = 0;

    if (m->vision == NULL) {
        return glm_errf(err, "this model has no vision tower");
    }
    if (g == NULL || !g->encoder_data_parallel || n_grids < 2) {
        return glm_vision_encode(m->vision, m->be, pixels, grids, n_grids, out, err);
    }
    N = g->n;
    memset(&j, 0, sizeof(j));
    j.first = calloc((size_t) N + 1, sizeof(int));
    j.px_off = calloc((size_t) n_grids, sizeof(int64_t));
    j.row_off = calloc((size_t) n_grids, sizeof(int64_t));
    j.rc = calloc((size_t) N, sizeof(int));
    j.err = calloc((size_t) N, sizeof(glm_err));
    if (j.first == NULL || j.px_off == NULL || j.row_off == NULL || j.rc == NULL
        || j.err == NULL)
    {
        rc = glm_errf(err, "out of memory");
        goto done;
    }
    j.pixels = pixels;
    j.grids = grids;
    j.n_grids = n_grids;
    j.out = out;
    j.px_cols = c->vision.in_channels * c->vision.temporal_patch_size
                * c->vision.patch_size * c->vision.patch_size;
    for (i = 0; i < n_grids; i++) {
        j.px_off[i] = total;
        total += (int64_t) grids[i].t * grids[i].h * grids[i].w;
        j.row_off[i] = i == 0 ? 0 : j.row_off[i - 1] + glm_vision_grid_tokens(c, &grids[i - 1]);
    }
    /* each rank its share of the patches, in whole images and in order:
     * rank r takes the images whose first patch falls in [total*r/N, total*(r+1)/N) */
    for (r = 0, i = 0; r < N; r++) {
        j.first[r] = i;
        while (i < n_grids && j.px_off[i] < total * (r + 1) / N) {
            i++;
        }
    }
    j.first[N] = n_grids;
    glm_ranks_run(g, glm_rank_vision, &j);
    for (r = 0; r < N; r++) {
        if (j.rc[r] != 0) {
            *err = j.err[r];
            rc = -1;
            break;
        }
    }
done:
    free(j.first);
    free(j.px_off);
    free(j.row_off);
    free(j.rc);
    free(j.err);
    return rc;
}

int
glm_ranks_kv_init(glm_rank_group *g, int n_blocks, int block_size, glm_err *err)
{
    int r;

    if (g->kv_ready) {
        return glm_errf(err, "a tensor-parallel model holds one KV pool at a time");
    }
    for (r = 1; r < g->n; r++) {
        g->m[r]->kv_dtype = g->m[0]->kv_dtype;     /* --kv-cache-dtype, set on rank 0 */
        glm_rank_current(g, r);                     /* rank r's pool on its GPU */
        if (glm_kv_pool_init(&g->kv[r], g->m[r], n_blocks, block_size, err) != 0) {
            int failed = r;
            while (--r >= 1) {
                glm_rank_current(g, r);
                glm_kv_pool_free(&g->kv[r], g->m[r]);
            }
            glm_rank_current(g, 0);
            return glm_err_prefix(err, "rank %d", failed);
        }
    }
    glm_rank_current(g, 0);
    g->kv_ready = 1;
    return 0;
}

void
glm_ranks_kv_free(glm_rank_group *g)
{
    int r;

    if (!g->kv_ready) {
        return;
    }
    for (r = 1; r < g->n; r++) {
        glm_rank_current(g, r);
        glm_kv_pool_free(&g->kv[r], g->m[r]);
    }
    glm_rank_current(g, 0);
    g->kv_ready = 0;
}

/* Everything but m[0] (whose glm_model_free calls this). */
void
glm_ranks_free(glm_rank_group *g)
{
    int r;

    if (g == NULL) {
        return;
    }
    if (g->started > 0) {
        pthread_mutex_lock(&g->lock);
        g->quit = 1;
        pthread_cond_broadcast(&g->go);
        pthread_mutex_unlock(&g->lock);
        for (r = 1; r <= g->started; r++) {
            pthread_join(g->th[r], NULL);
        }
    }
    glm_ranks_kv_free(g);
    for (r = 1; r < g->n; r++) {
        glm_rank_current(g, r);
        glm_vision_free(g->vision[r]);
        glm_model_free(g->m[r]);
        if (g->comm[r] != NULL) {
            g->comm[r]->ops->destroy(g->comm[r]);   /* NCCL: before its stream goes */
            g->comm[r] = NULL;
        }
        if (g->be[r] != NULL) {
            g->be[r]->destroy(g->be[r]);
        }
    }
    glm_rank_current(g, 0);
    for (r = 0; r < g->n; r++) {
        if (g->comm[r] != NULL) {
            g->comm[r]->ops->destroy(g->comm[r]);
        }
    }
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->go);
    pthread_cond_destroy(&g->done);
    free(g->m);
    free(g->vision);
    free(g->be);
    free(g->comm);
    free(g->kv);
    free(g->th);
    free(g);
}

/* The CUDA ranks' weights: each rank copies its own shard to its GPU now
 * (a model that does not fit fails here, naming the rank and the tensor),
 * and says what it holds. */
static int
glm_ranks_upload(glm_rank_group *g, int r, glm_err *err)
{
    size_t n = glm_model_tensors(g->m[r], NULL, 0), w, fr, tot;
    glm_tensor **ts = malloc((n ? n : 1) * sizeof(*ts));
    int rc;

    if (ts == NULL) {
        return glm_errf(err, "out of memory");
    }
    glm_model_tensors(g->m[r], ts, n);
    glm_rank_current(g, r);
    rc = glm_backend_cuda_upload_tensors(g->be[r], ts, n, err);
    free(ts);
    if (rc == 0) {
        glm_backend_cuda_memory(g->be[r], &w, &fr, &tot);
        fprintf(stderr, "glm-engine: rank %d of %d on GPU %d: %.2f GiB of weights (its"
                " shard, %zu bytes), %.2f GiB free of %.2f GiB\n", r, g->n,
                glm_backend_cuda_device(g->be[r]), w / 1073741824.0, w, fr / 1073741824.0,
                tot / 1073741824.0);
    }
    glm_rank_current(g, 0);
    return rc;
}

/* The group's communicator: NCCL between the GPUs (each rank's collectives
 * on its backend's stream), shared memory between the CPU ranks. */
static int
glm_ranks_comm(glm_rank_group *g, glm_err *err)
{
    int *devices, r, rc;
    void **streams;

    if (!g->cuda) {
        return glm_comm_shm_create(g->n, g->comm, err);
    }
    devices = calloc((size_t) g->n, sizeof(int));
    streams = calloc((size_t) g->n, sizeof(void *));
    if (devices == NULL || streams == NULL) {
        free(devices);
        free(streams);
        return glm_errf(err, "out of memory");
    }
    for (r = 0; r < g->n; r++) {
        devices[r] = glm_backend_cuda_device(g->be[r]);
        streams[r] = glm_backend_cuda_stream(g->be[r]);
    }
    rc = glm_comm_nccl_create(g->n, devices, streams, g->comm, err);
    glm_rank_current(g, 0);
    free(devices);
    free(streams);
    return rc;
}

glm_model *
glm_model_load_parallel(const char *dir, glm_backend *be, const glm_parallel *p,
    int threads, glm_err *err)
{
    int N = p->tensor_parallel, r;
    glm_rank_group *g;
    glm_model *m0;
    glm_shard sh;

    if (N <= 1) {
        return glm_model_load(dir, be, err);
    }
    if (strcmp(be->name, "cpu") != 0 && strcmp(be->name, "cuda") != 0) {
        glm_errf(err, "--tensor-parallel-size %d: the %s backend has no ranks", N, be->name);
        return NULL;
    }
    g = calloc(1, sizeof(*g));
    if (g == NULL) {
        glm_errf(err, "out of memory");
        return NULL;
    }
    g->n = N;
    g->cuda = strcmp(be->name, "cuda") == 0;
    g->encoder_data_parallel = p->encoder_data_parallel;
    g->m = calloc((size_t) N, sizeof(*g->m));
    g->vision = calloc((size_t) N, sizeof(*g->vision));
    g->be = calloc((size_t) N, sizeof(*g->be));
    g->comm = calloc((size_t) N, sizeof(*g->comm));
    g->kv = calloc((size_t) N, sizeof(*g->kv));
    g->th = calloc((size_t) N, sizeof(*g->th));
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->go, NULL);
    pthread_cond_init(&g->done, NULL);
    if (g->m == NULL || g->vision == NULL || g->be == NULL || g->comm == NULL || g->kv == NULL
        || g->th == NULL)
    {
        glm_errf(err, "out of memory");
        glm_ranks_free(g);
        return NULL;
    }
    /* the backends first: a GPU missing for a rank is the first error, and
     * NCCL's communicator needs each rank's stream */
    g->be[0] = be;
    for (r = 1; r < N; r++) {
        g->be[r] = glm_backend_create_named(be->name, threads, r, err);
        if (g->be[r] == NULL) {
            if (g->cuda) {
                glm_err_prefix(err, "--tensor-parallel-size %d puts rank %d on GPU %d", N, r, r);
            } else {
                glm_err_prefix(err, "rank %d of %d", r, N);
            }
            glm_ranks_free(g);
            return NULL;
        }
    }
    if (g->cuda) {
        for (r = 0; r < N; r++) {
            glm_backend_cuda_group_member(g->be[r]);
        }
        glm_rank_current(g, 0);
    }
    if (glm_ranks_comm(g, err) != 0) {
        glm_ranks_free(g);
        return NULL;
    }
    sh = (glm_shard) { 0, N, p->expert_parallel };
    m0 = g->m[0] = glm_model_load_shard(dir, be, &sh, g->comm[0], NULL, err);
    if (m0 == NULL) {
        glm_err_prefix(err, "rank 0 of %d", N);
        glm_ranks_free(g);
        return NULL;
    }
    m0->group = g;
    /* from here on glm_model_free(m0) frees the group */
    for (r = 1; r < N; r++) {
        sh.rank = r;
        g->m[r] = glm_model_load_shard(dir, g->be[r], &sh, g->comm[r], m0, err);
        /* the vision tower whole on every rank, for data parallel: views
         * into the same mapping as rank 0's */
        if (g->m[r] != NULL && m0->vision != NULL && p->encoder_data_parallel) {
            g->vision[r] = glm_vision_bind(m0->ck, &g->m[r]->cfg, err);
            if (g->vision[r] == NULL) {
                glm_model_free(g->m[r]);
                g->m[r] = NULL;
            }
        }
        if (g->m[r] == NULL) {
            glm_err_prefix(err, "rank %d of %d", r, N);
            glm_model_free(m0);
            return NULL;
        }
    }
    g->vision[0] = m0->vision;
    for (r = 0; r < N && g->cuda; r++) {
        if (glm_ranks_upload(g, r, err) != 0) {
            glm_err_prefix(err, "rank %d of %d", r, N);
            glm_model_free(m0);
            return NULL;
        }
    }
    for (r = 1; r < N; r++) {
        glm_rank_arg *a = malloc(sizeof(*a));
        if (a != NULL) {
            a->g = g;
            a->rank = r;
        }
        if (a == NULL || pthread_create(&g->th[r], NULL, glm_rank_main, a) != 0) {
            free(a);
            glm_errf(err, "cannot start rank %d's thread", r);
            glm_model_free(m0);
            return NULL;
        }
        g->started = r;
    }
    return m0;
}

int
glm_model_ranks(const glm_model *m)
{
    return m->group != NULL ? m->group->n : 1;
}

glm_model *
glm_model_rank(glm_model *m, int r)
{
    return m->group != NULL && r > 0 && r < m->group->n ? m->group->m[r] : m;
}
