/*
 * server.h: `glm-engine serve`, the engine process behind ngx_glm_module.
 *
 * One thread runs the loop: accept worker connections whose credentials
 * ring.h's Peers allow and hand each a channel segment of its own, drain
 * submitted requests to the intake threads (which parse, render and
 * tokenize them; media go on to the media threads), admit what comes back,
 * run one scheduler step, turn sampled tokens into OpenAI-shaped output in
 * the requests' channels, sleep when there is nothing to do.  The OpenAI
 * request/response work lives in openai.c.
 */
#ifndef GLM_SERVER_H
#define GLM_SERVER_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <yajl/yajl_tree.h>

#include "media/media_request.h"
#include "model/model.h"
#include "output/glm_output.h"
#include "output/tool_grammar.h"
#include "parallel/ranks.h"
#include "ring/ring.h"
#include "scheduler.h"
#include "text/tokenizer.h"
#include "util/strbuf.h"

#define GLM_MAX_NAMES    8
#define GLM_MAX_STOPS    16
#define GLM_MAX_REQUEST_ID GLM_REQUEST_ID_MAX  /* request_id, X-Request-Id */
#define GLM_MAX_PEER_UIDS 16

typedef struct glm_server glm_server;
typedef struct glm_req glm_req;
typedef struct glm_conn glm_conn;
typedef struct glm_media_job glm_media_job;

struct glm_conn {
    int            fd;                 /* -1: closed */
    int            channel;            /* -1 until the handshake is done */
    uint32_t       chan_gen;
    pid_t          pid;                /* SO_PEERCRED, at connect() */
    uid_t          uid;
    gid_t          gid;
    unsigned char *base;               /* its channel segment, mapped */
    unsigned char  hello[sizeof(glm_hello)];
    size_t         hello_len;
    glm_ring       submit, output;
    int            bell;               /* a doorbell is owed to the worker */
    glm_req       *assembling;         /* SUBMIT whose body is incomplete */
    glm_conn      *next_dead;          /* closed, freed after the epoll batch */
};

typedef struct {
    glm_seq       *seq;
    int            prompt;             /* its prompt: completions may have several */
    glm_out       *out;                /* reasoning / content / tool calls / boxes */
    glm_detok      detok;              /* completions: ids -> text (no parsing) */
    glm_tg_state  *tgs;                /* grammar state, NULL when unconstrained */
    glm_str        held;               /* text held back for stop strings */
    glm_str        content;            /* non-streaming: the whole answer */
    glm_str        logprobs;           /* JSON entries, comma-separated */
    int            n_logprobs;
    int            completion_tokens;
    int            finished;
    const char    *finish_reason;
    glm_str        stop_reason;        /* JSON value: null, an id or a string */
    int            role_sent;          /* chat: the role chunk; completions: the
                                          first chunk (echo, prompt_token_ids) */
    int            pending_ids;        /* streaming: tokens not yet in a chunk */
    long           text_chars;         /* completions streaming: code points sent
                                          (text_offset of the next logprobs) */
    glm_sampled   *out_lp;             /* completions logprobs, not yet sent */
    int            n_out_lp, cap_out_lp;
    glm_sampled   *prompt_lp;          /* prompt_logprobs: [n_prompt], 0 unused */
    int           *prompt_rank;
} glm_choice;

struct glm_req {
    glm_server    *srv;
    int            channel;
    uint32_t       chan_gen, slot, gen;
    uint32_t       op;
    uint32_t       body_len;
    glm_str        body;

    /* chat and completions */
    char           id[GLM_MAX_REQUEST_ID + 16];   /* "chatcmpl-" + request id */
    char          *header_id;          /* X-Request-Id (SUBMIT), NULL: none */
    int64_t        created;
    char           model[256];
    int            stream, include_usage, continuous_usage, n, n_finished;
    int            n_per_prompt;       /* the request's n; n = prompts * n_per_prompt */
    int            prompt_tokens;      /* all prompts' (usage) */
    int            max_tokens;
    long           asked_max_tokens;   /* max_(completion_)tokens, 0: absent */
    int            skip_special;
    int            ignore_eos;
    int            include_stop_str;
    char          *stops[GLM_MAX_STOPS];
    int            n_stops;
    size_t         max_stop_len;
    int32_t       *stop_ids;
    int            n_stop_ids;
    int            logprobs, top_logprobs;
    int            prompt_logprobs;    /* -1: none; else alternatives per token */
    int            echo;
    int            return_token_ids;
    int            tokens_as_ids;      /* return_tokens_as_token_ids */
    int            stream_interval;    /* a streamed delta every N tokens */
    int            return_prompt_text;
    glm_str        prompt_text;        /* chat: the rendered prompt, when asked */
    glm_str        echo_text;          /* chat echo: the last message's content */
    /* the arrays the sequences' parameters point into (scheduler.h) */
    uint8_t       *allowed;            /* allowed_token_ids as a bitmap */
    int32_t       *bad_words, *bad_word_len;
    int            n_bad_words;
    int32_t       *logprob_ids;
    int            n_logprob_ids;
    char          *cache_salt;
    glm_out_request out_rq;            /* tools, tool_choice, thinking, glm_boxes */
    glm_tg        *tg;                 /* tool-call grammar, NULL when unconstrained */
    glm_choice    *choices;

    /* output not yet in the ring: records [u16 type][u32 len][bytes] */
    glm_str        pending;
    size_t         pending_off;
    int            paused;
    double         paused_since;
    int            done;               /* END queued */

    double         t_arrival, t_first_token, t_last_token;
    glm_req       *next;

    /* waiting for its images/videos (a media job holds its serial) */
    uint64_t       serial;
    int            media_wait;
    glm_seq_params mparams;
    uint64_t       mseed;
    int            mhas_seed;
    int            image_w, image_h;   /* the first image, for glm_boxes pixels */

    /* intake (parse, template, tokenize) on an intake thread: the thread
     * owns the request until it is back on the loop; glm_req_intake leaves
     * one of the outcomes below for glm_req_intake_done */
    glm_tokenizer_ctx *tctx;           /* the handling thread's tokenizer context */
    int            intake;             /* GLM_INTAKE_*: what the loop does next */
    int            dropped;            /* cancelled while in intake: freed on return */
    glm_tokenizer_ids intake_ids;      /* GLM_INTAKE_ADMIT: the prompt (chat) */
    /* completions: the prompts, each with its text for echo */
    glm_tokenizer_ids *prompts;
    glm_str       *prompt_texts;
    int            n_prompts;
    int            echo_only;          /* max_tokens 0 with echo: the prompt alone */
    glm_media_job *intake_media;       /* GLM_INTAKE_MEDIA: the job to submit */
    glm_req       *intake_next;        /* the intake queues' link */
};

enum {
    GLM_INTAKE_ANSWERED = 0,           /* an answer or an error is queued */
    GLM_INTAKE_ADMIT,                  /* a chat ready for the scheduler */
    GLM_INTAKE_MEDIA,                  /* a chat whose media job must be submitted */
};

/* One request's media half, done off the loop thread (openai.c). */
struct glm_media_job {
    uint64_t          serial;          /* the request it belongs to */
    glm_str           body;            /* a copy of the request body */
    glm_tokenizer_ids ids;             /* the rendered prompt, markers unexpanded */
    glm_media_set     set;             /* results */
    glm_tokenizer_ids expanded;
    glm_grid         *grids;
    uint8_t          *item_hash;       /* digest of each item (prefix caching) */
    int               rc, status;
    const char       *param;
    glm_err           err;
    glm_media_job    *next;
};

typedef struct {
    uint64_t       prompt_tokens, generation_tokens;
    /* vllm:request_success_total by finished_reason, one per choice, each
     * counted at its event (never derived by subtraction) */
    uint64_t       requests_stop, requests_length, requests_abort;
    uint64_t       requests_error;
    double         ttft_sum, itl_sum, e2e_sum;
    uint64_t       ttft_n, itl_n, e2e_n;
    uint64_t       ttft_b[16], itl_b[16], e2e_b[16];
} glm_metrics;

typedef struct {
    const char    *model_dir;
    const char    *socket_path;
    const char    *names[GLM_MAX_NAMES];
    int            n_names;
    int            max_model_len;
    int            max_num_seqs;
    int            max_num_batched_tokens;
    int            kv_blocks;
    int            block_size;
    int            prefix_caching;            /* --(no-)enable-prefix-caching */
    const char    *speculative_config;        /* --speculative-config JSON */
    int            threads;
    int            n_channels;
    uint32_t       submit_size, output_size;
    int            socket_mode;
    const char    *socket_group;
    uid_t          peer_uids[GLM_MAX_PEER_UIDS];  /* --allowed-peer-uid */
    int            n_peer_uids;
    const char    *user;                      /* --user: drop to it */
    const char    *chat_template;
    int            trust_request_chat_template;  /* a request's chat_template */
    const char    *default_template_kwargs;   /* JSON object text */
    int            use_generation_config;
    size_t         max_pending_output;
    double         backpressure_deadline;
    const char    *allowed_local_media_path;
    const char    *media_io_kwargs;           /* JSON object text */
    int            media_threads;             /* 0: on the loop thread */
    int            intake_threads;            /* 0: on the loop thread */
    int            intake_nice;               /* their nice value (setpriority) */
    long           limit_media_bytes;         /* 0: the defaults of media.h */
    long           limit_media_pixels;
    int            limit_video_frames;
    int            limit_video_seconds;
    const char    *backend;                   /* "cpu" (NULL) or "cuda" */
    double         gpu_memory_utilization;    /* 0: not given (0.9) */
    glm_parallel   par;                       /* --tensor-parallel-size ... */
    glm_kv_cache_dtype kv_cache_dtype;        /* --kv-cache-dtype, auto: the backend's */
} glm_serve_opts;

struct glm_server {
    glm_serve_opts  o;
    glm_backend    *be;
    glm_model      *m;
    glm_tokenizer  *tok;
    glm_tokenizer_ctx *tok_ctx;
    void           *chat_template;      /* glm_chat_template * */
    yajl_val        default_kwargs;
    glm_sched       sched;
    glm_tg_vocab   *tg_vocab;           /* NULL: no constrained decoding */
    glm_media_opts  media;              /* images and videos (GLM-4.5V) */
    /* media workers: jobs in, results out through an eventfd */
    pthread_t      *media_tids;
    int             n_media_tids;
    pthread_mutex_t media_mu;
    pthread_cond_t  media_cv;
    glm_media_job  *media_todo, *media_todo_tail, *media_done;
    int             media_efd;
    int             media_stop;
    uint64_t        next_serial;
    /* intake workers: requests in, handled requests out through an eventfd;
     * intake_reqs lists the requests they hold (loop-owned, linked by next) */
    pthread_t      *intake_tids;
    int             n_intake_tids;
    pthread_mutex_t intake_mu;
    pthread_cond_t  intake_cv;
    glm_req        *intake_todo, *intake_todo_tail, *intake_done;
    glm_req        *intake_reqs;
    int             intake_efd;
    int             intake_stop;

    int             listen_fd, epoll_fd;
    int             memfd;              /* the header segment (ring.h) */
    unsigned char  *seg;
    size_t          seg_size;
    size_t          chan_size;          /* each channel segment */
    gid_t           socket_gid;         /* --socket-group; (gid_t) -1: none */
    uid_t           own_uid;            /* the default peer (ring.h's Peers) */
    uint64_t        epoch;
    glm_conn      **conn_of_channel;    /* [n_channels] */
    int             drain_first;        /* glm_drain_all: served first */
    glm_conn       *dead;               /* closed, events of the batch may
                                           still name them */
    uint32_t       *chan_gen;
    glm_req        *reqs;               /* live requests */
    int             n_reqs;
    int             eos_primary;        /* the tokenizer's eos: stop_reason null */
    glm_metrics     metrics;
    volatile int    stop;
};

/* openai.c: requests in, output out */
/* Requests answered on the loop itself: no body to parse (and /metrics
 * reads the loop's state). */
int glm_req_on_loop(const glm_req *req);
/* Everything before admission, on any thread (req->tctx: that thread's
 * tokenizer context): parse, checks, template, tokens; touches no loop
 * state.  Leaves req->intake for glm_req_intake_done, on the loop, which
 * admits the request or submits its media job. */
void glm_req_intake(glm_server *srv, glm_req *req);
void glm_req_intake_done(glm_server *srv, glm_req *req);
/* Both at once, on the loop (glm_req_on_loop requests, --intake-threads 0) */
void glm_req_handle(glm_server *srv, glm_req *req);
int glm_req_on_token(void *ctx, glm_seq *seq, const glm_sampled *s);
void glm_req_on_prompt_logprob(void *ctx, glm_seq *seq, int pos, const glm_sampled *s,
    int rank);
void glm_req_mask(void *ctx, glm_seq *seq, float *logits);
void glm_req_mask_bits(void *ctx, glm_seq *seq, uint32_t *allowed);
void glm_req_queue(glm_req *req, uint16_t type, const void *p, size_t n);
void glm_req_error(glm_req *req, int status, const char *type, const char *param,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void glm_req_free(glm_req *req);
/* Ends a request before its choices are done (the client or its worker
 * left, its output went unread): each unfinished choice counts as an abort
 * in /metrics, then the request is freed. */
void glm_req_abort(glm_req *req);
void glm_media_job_run(glm_server *srv, glm_media_job *job, glm_tokenizer_ctx *tctx);
void glm_media_job_free(glm_media_job *job);
void glm_chat_media_done(glm_server *srv, glm_req *req, glm_media_job *job);

/* server.c: queue a media job (runs inline when there are no workers) */
void glm_media_submit(glm_server *srv, glm_media_job *job);

int glm_cmd_serve(int argc, char **argv);

/* serve_plan.c: on the CUDA backend, prints the memory plan and sizes the
 * KV cache (o.kv_blocks, unless given) from --gpu-memory-utilization; -1
 * when one --max-model-len sequence does not fit */
int glm_serve_plan(glm_server *srv, glm_err *err);

#endif
