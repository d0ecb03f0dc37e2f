
/*
 * The types and functions that the files of ngx_http_glm_module share; see
 * ngx_http_glm_module.c for the design and which file does what.
 */


#ifndef _NGX_HTTP_GLM_MODULE_H_INCLUDED_
#define _NGX_HTTP_GLM_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>

#include "glm_media_urls.h"
#include "ring/ring.h"


#define NGX_HTTP_GLM_OP_ERROR        100        /* glm_pass error */

#define NGX_HTTP_GLM_DOWN            0
#define NGX_HTTP_GLM_HANDSHAKE       1
#define NGX_HTTP_GLM_READY           2

#define NGX_HTTP_GLM_BUF_SIZE        4096

/*
 * A worker that takes one client's 14 MB body must not stall the streams it
 * also serves: the body is read at most NGX_HTTP_GLM_READ_TURN bytes per
 * turn of the event loop, checked on an intake thread (ngx_http_glm_jobs.c)
 * from NGX_HTTP_GLM_THREAD_MIN bytes on, and goes into the submit ring at
 * most NGX_HTTP_GLM_SUBMIT_TURN bytes per turn.
 */
#define NGX_HTTP_GLM_READ_TURN       (256 * 1024)
#define NGX_HTTP_GLM_THREAD_MIN      (64 * 1024)
#define NGX_HTTP_GLM_SUBMIT_TURN     (512 * 1024)


typedef struct ngx_http_glm_ctx_s    ngx_http_glm_ctx_t;
typedef struct ngx_http_glm_media_s  ngx_http_glm_media_t;
typedef struct ngx_http_glm_check_task_s  ngx_http_glm_check_task_t;
typedef struct ngx_http_glm_job_s    ngx_http_glm_job_t;


/* work for an intake thread: run there, then done back on the loop */
struct ngx_http_glm_job_s {
    ngx_http_glm_job_t          *next;
    void                       (*run)(void *data);
    void                       (*done)(ngx_http_glm_job_t *job);
    void                        *data;
};


typedef struct {
    uint32_t                     slot;
    uint32_t                     gen;
} ngx_http_glm_cancel_t;


/*
 * ring.h's Health, the workers' part: since when each worker has had work in
 * the engine, one slot per nginx process slot, in a shared memory zone of
 * nginx's own (no other peer of the engine can reach it).
 */
typedef struct {
    uint64_t                     busy_since_ns; /* 0: nothing in the engine */
    uint64_t                     pid;           /* the slot's worker */
} ngx_http_glm_board_slot_t;


/* per-worker state: lives in the main conf, set up in init_process */
typedef struct {
    ngx_uint_t                   state;
    ngx_connection_t            *conn;
    ngx_log_t                   *log;
    ngx_event_t                  reconnect;     /* cancelable */
    ngx_event_t                  retry;         /* submit queue, cancels */
    ngx_uint_t                   failures;      /* connect attempts failed */

    glm_setup                    setup;
    size_t                       setup_len;
    int                          seg_fd;        /* the header segment */
    int                          chan_fd;       /* our channel's segment */

    u_char                      *seg;           /* the header, read-only */
    size_t                       seg_size;
    u_char                      *chan_seg;      /* our channel, read-write */
    size_t                       chan_seg_size;
    uint64_t                     epoch;
    ngx_uint_t                   engine_pid;
    glm_ring                     submit;
    glm_ring                     output;
    char                        *names;
    size_t                       names_len;

    /* ring.h's Health: the engine's heartbeat, every worker's slot, ours */
    glm_seg_header              *hdr;
    glm_chan_header             *chan;
    ngx_http_glm_board_slot_t   *board;         /* [NGX_MAX_PROCESSES] */
    ngx_http_glm_board_slot_t   *own;
    ngx_uint_t                   nlive;         /* requests in the engine */

    ngx_http_glm_ctx_t         **slots;
    uint32_t                    *free_slots;
    ngx_uint_t                   nslots;
    ngx_uint_t                   nfree;
    uint32_t                     gen;

    ngx_queue_t                  waiting;       /* not yet in the ring */
    ngx_event_t                  resume;        /* a body half written */
    ngx_queue_t                  dirty;         /* output to pass on */

    ngx_http_glm_cancel_t       *cancels;       /* not yet in the ring */
    ngx_uint_t                   ncancels;
    ngx_uint_t                   cancels_cap;
} ngx_http_glm_worker_t;


typedef struct {
    ngx_str_t                    engine;
    ngx_msec_t                   connect_retry;
    ngx_flag_t                   used;
    ngx_flag_t                   media_used;    /* some glm_media_fetch */
    ngx_shm_zone_t              *board;         /* ngx_http_glm_board_slot_t */
    ngx_uint_t                   intake_threads;    /* 0: on the loop */
    ngx_int_t                    intake_nice;
    ngx_http_glm_worker_t        worker;
} ngx_http_glm_main_conf_t;


typedef struct {
    ngx_uint_t                   op;
    ngx_msec_t                   read_timeout;
    ngx_msec_t                   submit_timeout;
    ngx_msec_t                   health_timeout;
    size_t                       output_limit;
    ngx_msec_t                   stream_keepalive;  /* 0: off */
    ngx_str_t                    media_fetch;   /* empty: off */
    ngx_flag_t                   health_post;   /* glm_health post: /ping */
} ngx_http_glm_loc_conf_t;


struct ngx_http_glm_ctx_s {
    ngx_http_request_t          *request;
    ngx_http_glm_worker_t       *worker;
    ngx_http_glm_loc_conf_t     *conf;

    uint32_t                     op;
    uint32_t                     slot;
    uint32_t                     gen;
    ngx_str_t                    request_id;    /* X-Request-Id, to the engine */
    u_char                      *body;
    size_t                       body_len;
    size_t                       body_cap;      /* 0: body is nginx's */
    size_t                       submitted;     /* body bytes in the ring */
    ngx_event_t                  read_more;     /* the body's next turn */
    uint64_t                     live_since;    /* CLOCK_MONOTONIC ns */

    ngx_http_glm_check_task_t   *check;         /* a body checked off-loop */

    glm_media_scan              *media;         /* http(s) URLs found */
    ngx_http_glm_media_t        *fetches;       /* [media->nfetches] */
    ngx_uint_t                   media_pending; /* subrequests running */

    ngx_event_t                  timeout;       /* non-cancelable */
    ngx_event_t                  keepalive;     /* SSE comments, idem */
    ngx_queue_t                  wait_link;
    ngx_queue_t                  dirty_link;

    ngx_chain_t                 *out;           /* not yet passed on */
    ngx_chain_t                **last_out;
    ngx_chain_t                 *free;
    ngx_chain_t                 *busy;
    size_t                       buffered;      /* in memory and spilled */

    ngx_temp_file_t             *spill;         /* a JSON body beyond */
    ngx_chain_t                 *spill_cl;      /* glm_output_limit */
    size_t                       spilled;

    ngx_uint_t                   status;
    ngx_uint_t                   content_type;
    ngx_uint_t                   retry_after;

    unsigned                     has_slot:1;
    unsigned                     waiting:1;
    unsigned                     reading:1;     /* the body, in turns */
    unsigned                     checking:1;    /* on an intake thread */
    unsigned                     partial:1;     /* body partly in the ring */
    unsigned                     media_scanned:1; /* media: the scan or none */
    unsigned                     in_dirty:1;
    unsigned                     live:1;        /* the engine runs it */
    unsigned                     head:1;
    unsigned                     header_sent:1;
    unsigned                     header_flushed:1;
    unsigned                     sse_newlines:2; /* 2: between events */
    unsigned                     ended:1;
    unsigned                     bad:1;         /* the engine broke framing */
    unsigned                     overflow:1;
    unsigned                     spill_failed:1;
    unsigned                     done:1;        /* finalized */
};


typedef struct {
    ngx_str_t                    name;
    ngx_uint_t                   op;
    ngx_uint_t                   method;
} ngx_http_glm_pass_t;


extern ngx_module_t  ngx_http_glm_module;
extern ngx_http_glm_pass_t  ngx_http_glm_passes[];


/* ngx_http_glm_request.c */
ngx_int_t ngx_http_glm_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_glm_admit(ngx_http_glm_ctx_t *ctx);
size_t ngx_http_glm_submit_bound(glm_ring *ring, size_t body_len);
void ngx_http_glm_process_queue(ngx_http_glm_worker_t *w);
void ngx_http_glm_retry_handler(ngx_event_t *ev);
void ngx_http_glm_cancel_live(ngx_http_glm_ctx_t *ctx);
void ngx_http_glm_set_live(ngx_http_glm_ctx_t *ctx, ngx_uint_t live);
void ngx_http_glm_detach(ngx_http_glm_ctx_t *ctx);

/* ngx_http_glm_media.c */
ngx_int_t ngx_http_glm_media_scan_alloc(ngx_http_request_t *r,
    ngx_http_glm_ctx_t *ctx);
ngx_int_t ngx_http_glm_media_start(ngx_http_request_t *r,
    ngx_http_glm_ctx_t *ctx);
ngx_int_t ngx_http_glm_media_url_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
ngx_int_t ngx_http_glm_media_init(ngx_conf_t *cf);

/* ngx_http_glm_output.c */
ngx_int_t ngx_http_glm_health_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_glm_error_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_glm_send_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *message, const char *param,
    ngx_uint_t retry_after, const char *allow);
void ngx_http_glm_flush(ngx_http_glm_ctx_t *ctx);
ngx_int_t ngx_http_glm_append(ngx_http_glm_ctx_t *ctx, const u_char *p,
    size_t n);
ngx_int_t ngx_http_glm_append_body(ngx_http_glm_ctx_t *ctx, const u_char *p,
    size_t n);
void ngx_http_glm_fail(ngx_http_glm_ctx_t *ctx, ngx_uint_t inband,
    ngx_uint_t status, const char *message, ngx_uint_t retry_after);
void ngx_http_glm_keepalive_handler(ngx_event_t *ev);

/* ngx_http_glm_jobs.c */
ngx_int_t ngx_http_glm_jobs_start(ngx_cycle_t *cycle, ngx_uint_t nthreads,
    int nice);
void ngx_http_glm_jobs_stop(ngx_cycle_t *cycle);
ngx_int_t ngx_http_glm_job_post(ngx_http_glm_job_t *job);

/* ngx_http_glm_engine.c */
void ngx_http_glm_connect(ngx_http_glm_worker_t *w);
void ngx_http_glm_reconnect_handler(ngx_event_t *ev);
void ngx_http_glm_disconnect(ngx_http_glm_worker_t *w);
void ngx_http_glm_doorbell(ngx_http_glm_worker_t *w);
uint64_t ngx_http_glm_mono_ns(void);
ngx_msec_t ngx_http_glm_stale(ngx_http_glm_worker_t *w, uint64_t since);
ngx_uint_t ngx_http_glm_engine_stuck(ngx_http_glm_worker_t *w,
    ngx_msec_t timeout);


#endif /* _NGX_HTTP_GLM_MODULE_H_INCLUDED_ */
