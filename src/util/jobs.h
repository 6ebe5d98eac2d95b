/* SPDX-License-Identifier: MIT */
/*
 * A queue of blocking jobs run by background threads, so that the event
 * loops never wait on them (e.g. fsync and link of a downloaded blob into
 * the cache).
 *
 * Jobs run in submission order when there is one thread. Thread-safe:
 * any thread may submit.
 */
#ifndef DRP_UTIL_JOBS_H
#define DRP_UTIL_JOBS_H

typedef struct drp_jobs drp_jobs_t;

typedef void (*drp_job_fn)(void *arg);

/* Start `threads` (>= 1) threads. NULL if none could be started. */
drp_jobs_t *drp_jobs_new(unsigned threads);
/* Queue fn(arg). Never fails: after drp_jobs_free has begun (or with a
 * NULL queue) the job runs at once on the calling thread. */
void drp_jobs_submit(drp_jobs_t *j, drp_job_fn fn, void *arg);
/* Jobs queued or running. */
unsigned drp_jobs_pending(drp_jobs_t *j);
/* Run every queued job to its end, then stop the threads and free. */
void drp_jobs_free(drp_jobs_t *j);

#endif
