
/*
 * ngx_http_glm_module: the nginx side of ngx_glm.
 *
 * Each worker keeps one Unix-socket connection to the engine process and,
 * through it, one channel of the engine's shared-memory segment (the
 * protocol is engine/ring/ring.h).  A request read by nginx is checked
 * (glm_http_check.c), written into the channel's submit ring as SUBMIT
 * records, and answered from HEAD/DATA/END records the engine writes into
 * the output ring; the socket only carries the handshake, one-byte
 * doorbells and liveness.
 *
 * The worker never waits for a client on the engine's behalf: it drains the
 * output ring into request buffers at once and bounds what each request may
 * hold in memory (glm_output_limit: a stream's client is cut off beyond it,
 * a JSON body goes on in a temporary file).  Every request known to the engine holds a
 * non-cancelable timer (glm_read_timeout), so a reload lets it finish; the
 * reconnect timer is cancelable.  A request's slot is released by its pool
 * cleanup, exactly once, which is also where a CANCEL is sent if the engine
 * still runs it.  The engine's heartbeat in the segment (ring.h's Health)
 * tells glm_health, and the requests the engine answers at once (models,
 * metrics, version), when an engine with work waiting has stopped running
 * (glm_health_timeout).
 *
 * http(s) media URLs in a chat body are fetched here, not by the engine
 * (glm_media_fetch): one in-memory subrequest per URL to the operator's
 * internal location, which proxies to $glm_media_url; once all are back,
 * the body goes to the engine with each URL replaced by a data: URL of the
 * bytes (glm_media_urls.c).  The subrequests carry none of the client's
 * headers and no body, so nothing of the client's (Authorization, the
 * prompt) reaches the media's server.
 *
 * The files, by job:
 *
 *   ngx_http_glm_module.c    the module, its directives, variables and
 *                            configuration, worker start and exit;
 *   ngx_http_glm_request.c   request intake: the body, read in turns, its
 *                            checks, a slot, the submit ring and the queue
 *                            waiting for it;
 *   ngx_http_glm_jobs.c      the worker's intake threads, for the checks of
 *                            large bodies;
 *   ngx_http_glm_media.c     the fetch of http(s) media by subrequests;
 *   ngx_http_glm_engine.c    the engine connection, and the draining of the
 *                            output ring into the requests;
 *   ngx_http_glm_output.c    the response to the client, and errors in the
 *                            OpenAI shape;
 *   ngx_http_glm_module.h    what they share.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>

#include <sys/un.h>

#include "ngx_http_glm_module.h"


static void *ngx_http_glm_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_glm_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_glm_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_glm_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_glm_board_init(ngx_shm_zone_t *shm_zone,
    void *data);
static char *ngx_http_glm_engine(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_glm_pass(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_glm_health(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_glm_media_fetch(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_glm_stream_keepalive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_glm_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_glm_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_glm_init_process(ngx_cycle_t *cycle);
static void ngx_http_glm_exit_process(ngx_cycle_t *cycle);


ngx_http_glm_pass_t  ngx_http_glm_passes[] = {
    { ngx_string("chat"), GLM_OP_CHAT, NGX_HTTP_POST },
    { ngx_string("completions"), GLM_OP_COMPLETIONS, NGX_HTTP_POST },
    { ngx_string("tokenize"), GLM_OP_TOKENIZE, NGX_HTTP_POST },
    { ngx_string("detokenize"), GLM_OP_DETOKENIZE, NGX_HTTP_POST },
    { ngx_string("models"), GLM_OP_MODELS, NGX_HTTP_GET },
    { ngx_string("metrics"), GLM_OP_METRICS, NGX_HTTP_GET },
    { ngx_string("version"), GLM_OP_VERSION, NGX_HTTP_GET },
    { ngx_string("error"), NGX_HTTP_GLM_OP_ERROR, 0 },
    { ngx_null_string, 0, 0 }
};


static ngx_conf_num_bounds_t  ngx_http_glm_intake_threads_bounds = {
    ngx_conf_check_num_bounds, 0, 64
};

static ngx_conf_num_bounds_t  ngx_http_glm_intake_nice_bounds = {
    ngx_conf_check_num_bounds, 0, 19
};


static ngx_command_t  ngx_http_glm_commands[] = {

    { ngx_string("glm_engine"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_glm_engine,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("glm_connect_retry"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_glm_main_conf_t, connect_retry),
      NULL },

    { ngx_string("glm_intake_threads"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_glm_main_conf_t, intake_threads),
      &ngx_http_glm_intake_threads_bounds },

    { ngx_string("glm_intake_nice"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_glm_main_conf_t, intake_nice),
      &ngx_http_glm_intake_nice_bounds },

    { ngx_string("glm_pass"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_glm_pass,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("glm_health"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_glm_health,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("glm_read_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_glm_loc_conf_t, read_timeout),
      NULL },

    { ngx_string("glm_submit_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_glm_loc_conf_t, submit_timeout),
      NULL },

    { ngx_string("glm_health_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_glm_loc_conf_t, health_timeout),
      NULL },

    { ngx_string("glm_output_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_glm_loc_conf_t, output_limit),
      NULL },

    { ngx_string("glm_stream_keepalive"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_glm_stream_keepalive,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_glm_loc_conf_t, stream_keepalive),
      NULL },

    { ngx_string("glm_media_fetch"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_glm_media_fetch,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_variable_t  ngx_http_glm_variables[] = {

    /* the URL a glm_media_fetch subrequest fetches: proxy_pass $glm_media_url */
    { ngx_string("glm_media_url"), NULL, ngx_http_glm_media_url_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_http_module_t  ngx_http_glm_module_ctx = {
    ngx_http_glm_add_variables,            /* preconfiguration */
    ngx_http_glm_postconfiguration,        /* postconfiguration */

    ngx_http_glm_create_main_conf,         /* create main configuration */
    ngx_http_glm_init_main_conf,           /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_glm_create_loc_conf,          /* create location configuration */
    ngx_http_glm_merge_loc_conf            /* merge location configuration */
};


ngx_module_t  ngx_http_glm_module = {
    NGX_MODULE_V1,
    &ngx_http_glm_module_ctx,              /* module context */
    ngx_http_glm_commands,                 /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_glm_init_process,             /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_glm_exit_process,             /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* ---- configuration ----------------------------------------------------- */

static void *
ngx_http_glm_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_glm_main_conf_t  *gmcf;

    gmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_glm_main_conf_t));
    if (gmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     gmcf->engine = { 0, NULL };
     *     gmcf->used = 0;
     */

    gmcf->connect_retry = NGX_CONF_UNSET_MSEC;
    gmcf->intake_threads = NGX_CONF_UNSET_UINT;
    gmcf->intake_nice = NGX_CONF_UNSET;

    return gmcf;
}


static char *
ngx_http_glm_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_glm_main_conf_t *gmcf = conf;

    ngx_conf_init_msec_value(gmcf->connect_retry, 1000);
    ngx_conf_init_uint_value(gmcf->intake_threads, 1);
    ngx_conf_init_value(gmcf->intake_nice, 10);

    if (gmcf->connect_retry == 0) {
        gmcf->connect_retry = 1;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_glm_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_glm_loc_conf_t  *glcf;

    glcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_glm_loc_conf_t));
    if (glcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     glcf->media_fetch = { 0, NULL };
     */

    glcf->op = NGX_CONF_UNSET_UINT;
    glcf->read_timeout = NGX_CONF_UNSET_MSEC;
    glcf->submit_timeout = NGX_CONF_UNSET_MSEC;
    glcf->health_timeout = NGX_CONF_UNSET_MSEC;
    glcf->output_limit = NGX_CONF_UNSET_SIZE;
    glcf->stream_keepalive = NGX_CONF_UNSET_MSEC;

    return glcf;
}


static char *
ngx_http_glm_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_glm_loc_conf_t *prev = parent;
    ngx_http_glm_loc_conf_t *conf = child;

    /* glm_pass is not inherited: it names the handler of its location */
    ngx_conf_init_uint_value(conf->op, GLM_OP_CHAT);

    ngx_conf_merge_msec_value(conf->read_timeout, prev->read_timeout, 600000);
    ngx_conf_merge_msec_value(conf->submit_timeout, prev->submit_timeout,
                              3000);
    ngx_conf_merge_msec_value(conf->health_timeout, prev->health_timeout,
                              5000);
    ngx_conf_merge_size_value(conf->output_limit, prev->output_limit,
                              8 * 1024 * 1024);
    ngx_conf_merge_msec_value(conf->stream_keepalive, prev->stream_keepalive,
                              15000);

    /* "off" is stored as the empty string, which is also the default */
    ngx_conf_merge_str_value(conf->media_fetch, prev->media_fetch, "");

    /* below the engine's longest sleep a busy engine would look stuck */
    if (conf->health_timeout < 10 * GLM_HEARTBEAT_MAX_SLEEP_MS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"glm_health_timeout\" must be at least %dms",
                           10 * GLM_HEARTBEAT_MAX_SLEEP_MS);
        return NGX_CONF_ERROR;
    }

    if (conf->output_limit < NGX_HTTP_GLM_BUF_SIZE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"glm_output_limit\" must be at least %d",
                           NGX_HTTP_GLM_BUF_SIZE);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_glm_engine(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_glm_main_conf_t *gmcf = conf;

    size_t              size;
    ngx_str_t          *value;
    struct sockaddr_un  sun;

    static ngx_str_t    name = ngx_string("ngx_http_glm_health");

    if (gmcf->engine.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len <= 5 || ngx_strncmp(value[1].data, "unix:", 5) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"glm_engine\" wants \"unix:PATH\", not \"%V\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    gmcf->engine.data = value[1].data + 5;
    gmcf->engine.len = value[1].len - 5;

    if (gmcf->engine.len >= sizeof(sun.sun_path)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"glm_engine\" socket path is longer than %uz",
                           sizeof(sun.sun_path) - 1);
        return NGX_CONF_ERROR;
    }

    /* the same name and size across reloads: the zone and its slots stay */
    size = ngx_align(NGX_MAX_PROCESSES * sizeof(ngx_http_glm_board_slot_t)
                     + 8 * ngx_pagesize, ngx_pagesize);

    gmcf->board = ngx_shared_memory_add(cf, &name, size, &ngx_http_glm_module);
    if (gmcf->board == NULL) {
        return NGX_CONF_ERROR;
    }

    gmcf->board->init = ngx_http_glm_board_init;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_glm_board_init(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t  *shpool;

    if (data) {
        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    shm_zone->data = ngx_slab_calloc(shpool, NGX_MAX_PROCESSES
                                             * sizeof(ngx_http_glm_board_slot_t));
    if (shm_zone->data == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static char *
ngx_http_glm_pass(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_glm_loc_conf_t *glcf = conf;

    ngx_str_t                 *value;
    ngx_http_glm_pass_t       *pass;
    ngx_http_core_loc_conf_t  *clcf;
    ngx_http_glm_main_conf_t  *gmcf;

    if (glcf->op != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    glcf->op = GLM_OP_CHAT;

    if (cf->args->nelts == 2) {
        for (pass = ngx_http_glm_passes; pass->name.len; pass++) {
            if (pass->name.len == value[1].len
                && ngx_strncmp(pass->name.data, value[1].data, value[1].len)
                   == 0)
            {
                break;
            }
        }

        if (pass->name.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unknown glm_pass \"%V\": chat, completions, "
                               "tokenize, detokenize, models, metrics, "
                               "version or error", &value[1]);
            return NGX_CONF_ERROR;
        }

        glcf->op = pass->op;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_glm_handler;

    gmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_glm_module);
    gmcf->used = 1;

    return NGX_CONF_OK;
}


/*
 * glm_health [post]: the health answer; "post" also takes POST (its body
 * discarded), as vLLM's /ping, SageMaker's health check, does.
 */
static char *
ngx_http_glm_health(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_glm_loc_conf_t *glcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;
    ngx_http_glm_main_conf_t  *gmcf;

    value = cf->args->elts;

    if (cf->args->nelts == 2) {
        if (value[1].len != 4 || ngx_strncmp(value[1].data, "post", 4) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\": glm_health takes "
                               "nothing or \"post\"", &value[1]);
            return NGX_CONF_ERROR;
        }

        glcf->health_post = 1;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_glm_health_handler;

    gmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_glm_module);
    gmcf->used = 1;

    return NGX_CONF_OK;
}


/*
 * glm_media_fetch URI | off: the internal location that fetches http(s)
 * media URLs (it proxies to $glm_media_url); off, the default, refuses
 * requests carrying them.
 */
static char *
ngx_http_glm_media_fetch(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_glm_loc_conf_t *glcf = conf;

    ngx_str_t                 *value;
    ngx_http_glm_main_conf_t  *gmcf;

    if (glcf->media_fetch.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        ngx_str_set(&glcf->media_fetch, "");
        return NGX_CONF_OK;
    }

    if (value[1].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"glm_media_fetch\" wants a location's URI "
                           "such as /_glm_media, or off, not \"%V\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    glcf->media_fetch = value[1];

    gmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_glm_module);
    gmcf->media_used = 1;

    return NGX_CONF_OK;
}


/*
 * glm_stream_keepalive TIME | off: an SSE comment line goes to a stream's
 * client whenever it has received nothing for TIME (a queued request
 * waiting for its first token, mostly), so that proxies and load
 * balancers with idle timeouts keep the connection.  0 is off too.
 */
static char *
ngx_http_glm_stream_keepalive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_glm_loc_conf_t *glcf = conf;

    ngx_str_t  *value;
    ngx_msec_t  msec;

    if (glcf->stream_keepalive != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        glcf->stream_keepalive = 0;
        return NGX_CONF_OK;
    }

    msec = ngx_parse_time(&value[1], 0);

    if (msec == (ngx_msec_t) NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"glm_stream_keepalive\" wants a time such as "
                           "15s, or off, not \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    glcf->stream_keepalive = msec;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_glm_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_glm_variables; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_glm_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_glm_main_conf_t  *gmcf;

    gmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_glm_module);

    if (gmcf->used && gmcf->engine.data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "glm_pass and glm_health need \"glm_engine\" "
                           "in the http block");
        return NGX_ERROR;
    }

    /* only configurations that fetch media pay for the filter */
    if (gmcf->media_used) {
        return ngx_http_glm_media_init(cf);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_glm_init_process(ngx_cycle_t *cycle)
{
    ngx_http_glm_worker_t     *w;
    ngx_http_glm_main_conf_t  *gmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    gmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_glm_module);

    if (gmcf == NULL || gmcf->engine.data == NULL) {
        return NGX_OK;
    }

    w = &gmcf->worker;

    ngx_memzero(w, sizeof(ngx_http_glm_worker_t));

    w->log = cycle->log;
    w->seg_fd = -1;
    w->chan_fd = -1;
    w->state = NGX_HTTP_GLM_DOWN;

    /* our slot of ring.h's Health; a respawned worker takes the slot of the
     * one it replaces, and clears what that one left */
    if (ngx_process_slot >= 0 && ngx_process_slot < NGX_MAX_PROCESSES) {
        w->board = gmcf->board->data;
        w->own = &w->board[ngx_process_slot];
        __atomic_store_n(&w->own->busy_since_ns, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&w->own->pid, (uint64_t) ngx_pid, __ATOMIC_RELAXED);
    }

    ngx_queue_init(&w->waiting);
    ngx_queue_init(&w->dirty);

    w->reconnect.handler = ngx_http_glm_reconnect_handler;
    w->reconnect.data = w;
    w->reconnect.log = cycle->log;
    w->reconnect.cancelable = 1;

    /* requests that wait for the ring hold their own non-cancelable timers */
    w->retry.handler = ngx_http_glm_retry_handler;
    w->retry.data = w;
    w->retry.log = cycle->log;
    w->retry.cancelable = 1;

    /* the next part of a large body, at the next turn of the event loop */
    w->resume.handler = ngx_http_glm_retry_handler;
    w->resume.data = w;
    w->resume.log = cycle->log;

    if (ngx_http_glm_jobs_start(cycle, gmcf->intake_threads,
                                (int) gmcf->intake_nice)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_glm_connect(w);

    return NGX_OK;
}


static void
ngx_http_glm_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_glm_worker_t     *w;
    ngx_http_glm_main_conf_t  *gmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return;
    }

    gmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_glm_module);

    if (gmcf == NULL || gmcf->engine.data == NULL) {
        return;
    }

    w = &gmcf->worker;

    if (w->reconnect.timer_set) {
        ngx_del_timer(&w->reconnect);
    }

    if (w->retry.timer_set) {
        ngx_del_timer(&w->retry);
    }

    if (w->resume.posted) {
        ngx_delete_posted_event(&w->resume);
    }

    ngx_http_glm_jobs_stop(cycle);

    ngx_http_glm_disconnect(w);

    if (w->own) {
        __atomic_store_n(&w->own->busy_since_ns, 0, __ATOMIC_RELAXED);
        w->own = NULL;
    }

    ngx_free(w->slots);
    ngx_free(w->free_slots);
    ngx_free(w->cancels);

    w->slots = NULL;
    w->free_slots = NULL;
    w->cancels = NULL;
    w->nslots = 0;
    w->nfree = 0;
}
