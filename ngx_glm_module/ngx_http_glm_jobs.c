
/*
 * ngx_http_glm_module: work off the event loop.
 *
 * A worker's event loop passes every stream's tokens on; the yajl pass over
 * one client's 14 MB body takes tens of milliseconds, during which no
 * stream of that worker would move.  Such work goes to the worker's own
 * threads (glm_intake_threads, each at glm_intake_nice): a job runs there
 * and its `done` runs back on the loop, in the order the jobs finished.
 *
 * Why not nginx's thread pools: their threads serve aio as well, and a
 * thread that lowers its priority can never raise it again; these threads
 * are ours, at a priority below the loop's from their start, so that on a
 * machine with more work than cores the streams still go first.
 *
 * The threads are told apart from the loop by a pipe: a finished job
 * writes one byte (a full pipe means a wake-up is already pending), the
 * loop reads it empty and takes every finished job.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "ngx_http_glm_module.h"


typedef struct {
    pthread_mutex_t              mu;
    pthread_cond_t               cv;
    ngx_http_glm_job_t          *todo;          /* FIFO */
    ngx_http_glm_job_t         **todo_last;
    ngx_http_glm_job_t          *done;          /* FIFO */
    ngx_http_glm_job_t         **done_last;
    ngx_uint_t                   stop;
    int                          nice;
    int                          pipe[2];       /* threads -> loop */
    ngx_connection_t            *conn;          /* the pipe's read end */
    pthread_t                   *tids;
    ngx_uint_t                   nthreads;
} ngx_http_glm_jobs_t;


static void *ngx_http_glm_jobs_thread(void *data);
static void ngx_http_glm_jobs_wake(ngx_event_t *rev);


static ngx_http_glm_jobs_t  ngx_http_glm_jobs;


ngx_int_t
ngx_http_glm_jobs_start(ngx_cycle_t *cycle, ngx_uint_t nthreads, int nice)
{
    int                   err;
    ngx_uint_t            i;
    ngx_connection_t     *c;
    ngx_http_glm_jobs_t  *jobs;

    jobs = &ngx_http_glm_jobs;

    ngx_memzero(jobs, sizeof(ngx_http_glm_jobs_t));
    jobs->pipe[0] = -1;
    jobs->pipe[1] = -1;
    jobs->todo_last = &jobs->todo;
    jobs->done_last = &jobs->done;
    jobs->nice = nice;

    if (nthreads == 0) {
        return NGX_OK;
    }

    if (pipe2(jobs->pipe, O_NONBLOCK|O_CLOEXEC) == -1) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "glm: pipe2() for the intake threads failed");
        return NGX_ERROR;
    }

    c = ngx_get_connection(jobs->pipe[0], cycle->log);
    if (c == NULL) {
        goto failed;
    }

    c->read->handler = ngx_http_glm_jobs_wake;
    c->read->log = cycle->log;
    c->write->log = cycle->log;
    jobs->conn = c;

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        goto failed;
    }

    if (pthread_mutex_init(&jobs->mu, NULL) != 0
        || pthread_cond_init(&jobs->cv, NULL) != 0)
    {
        goto failed;
    }

    jobs->tids = ngx_alloc(nthreads * sizeof(pthread_t), cycle->log);
    if (jobs->tids == NULL) {
        goto failed;
    }

    for (i = 0; i < nthreads; i++) {
        err = pthread_create(&jobs->tids[i], NULL, ngx_http_glm_jobs_thread,
                             jobs);
        if (err != 0) {
            ngx_log_error(NGX_LOG_ALERT, cycle->log, err,
                          "glm: pthread_create() of an intake thread failed");
            break;
        }

        jobs->nthreads++;
    }

    if (jobs->nthreads) {
        return NGX_OK;
    }

failed:

    ngx_http_glm_jobs_stop(cycle);
    return NGX_ERROR;
}


/* at worker exit: the threads finish the job in hand and go */
void
ngx_http_glm_jobs_stop(ngx_cycle_t *cycle)
{
    ngx_uint_t            i;
    ngx_http_glm_jobs_t  *jobs;

    jobs = &ngx_http_glm_jobs;

    if (jobs->nthreads) {
        pthread_mutex_lock(&jobs->mu);
        jobs->stop = 1;
        pthread_cond_broadcast(&jobs->cv);
        pthread_mutex_unlock(&jobs->mu);

        for (i = 0; i < jobs->nthreads; i++) {
            pthread_join(jobs->tids[i], NULL);
        }

        jobs->nthreads = 0;
    }

    ngx_free(jobs->tids);
    jobs->tids = NULL;

    if (jobs->conn) {
        ngx_close_connection(jobs->conn);    /* closes pipe[0] */
        jobs->conn = NULL;
        jobs->pipe[0] = -1;
    }

    if (jobs->pipe[0] != -1) {
        close(jobs->pipe[0]);
        jobs->pipe[0] = -1;
    }

    if (jobs->pipe[1] != -1) {
        close(jobs->pipe[1]);
        jobs->pipe[1] = -1;
    }
}


/* NGX_DECLINED when there are no threads: run it on the loop instead */
ngx_int_t
ngx_http_glm_job_post(ngx_http_glm_job_t *job)
{
    ngx_http_glm_jobs_t  *jobs;

    jobs = &ngx_http_glm_jobs;

    if (jobs->nthreads == 0) {
        return NGX_DECLINED;
    }

    job->next = NULL;

    pthread_mutex_lock(&jobs->mu);
    *jobs->todo_last = job;
    jobs->todo_last = &job->next;
    pthread_cond_signal(&jobs->cv);
    pthread_mutex_unlock(&jobs->mu);

    return NGX_OK;
}


static void *
ngx_http_glm_jobs_thread(void *data)
{
    ngx_http_glm_jobs_t  *jobs = data;

    ngx_http_glm_job_t  *job;

    /* no signal is ours to take: the worker's loop handles them */
    {
        sigset_t  set;

        sigfillset(&set);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
    }

    if (jobs->nice > 0) {
        /* this thread only: on Linux a priority is per thread */
        (void) setpriority(PRIO_PROCESS, (id_t) syscall(SYS_gettid),
                           jobs->nice);
    }

    pthread_mutex_lock(&jobs->mu);

    for ( ;; ) {
        while (jobs->todo == NULL && !jobs->stop) {
            pthread_cond_wait(&jobs->cv, &jobs->mu);
        }

        if (jobs->stop) {
            break;
        }

        job = jobs->todo;
        jobs->todo = job->next;

        if (jobs->todo == NULL) {
            jobs->todo_last = &jobs->todo;
        }

        pthread_mutex_unlock(&jobs->mu);

        job->run(job->data);

        pthread_mutex_lock(&jobs->mu);

        job->next = NULL;
        *jobs->done_last = job;
        jobs->done_last = &job->next;

        /* EAGAIN: the pipe is full, the loop will wake anyway */
        (void) write(jobs->pipe[1], "", 1);
    }

    pthread_mutex_unlock(&jobs->mu);

    return NULL;
}


static void
ngx_http_glm_jobs_wake(ngx_event_t *rev)
{
    u_char                buf[64];
    ngx_http_glm_job_t   *job, *next;
    ngx_http_glm_jobs_t  *jobs;

    jobs = &ngx_http_glm_jobs;

    while (read(jobs->pipe[0], buf, sizeof(buf)) > 0) {
        /* void */
    }

    pthread_mutex_lock(&jobs->mu);
    job = jobs->done;
    jobs->done = NULL;
    jobs->done_last = &jobs->done;
    pthread_mutex_unlock(&jobs->mu);

    for ( /* void */ ; job; job = next) {
        next = job->next;
        job->done(job);
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, rev->log, 0,
                      "glm: the intake threads' pipe failed");
    }
}
