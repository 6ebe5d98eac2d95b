/* SPDX-License-Identifier: MIT */
/*
 * A queue of blocking jobs run by background threads, so that the event
 * loops never wait on them (e.g. fsync and link of a downloaded blob into
 * the cache).
 *
 * Jobs run in submission order when there is one thread. Thread-safe:
 * any thread may submit. A queue is a DRAIN lane of the worker pool
 * (util/pool.h) with one thread reserved for it.
 */
#ifndef DRP_UTIL_JOBS_H
#define DRP_UTIL_JOBS_H

typedef struct drp_jobs drp_jobs_t;
struct drp_pool;

typedef void (*drp_job_fn)(void *arg);

/* A queue in a lane of pool named name, running at most `threads` jobs
 * at once. NULL if the pool has no thread left to reserve. */
drp_jobs_t *drp_jobs_new_on(struct drp_pool *pool, const char *name,
			    unsigned threads) __attribute__((nonnull));
/* Same on a pool of its own of `threads` (>= 1) threads. NULL if none
 * could be started. */
drp_jobs_t *drp_jobs_new(unsigned threads);
/* Queue fn(arg). Never fails: with a NULL queue, or once drp_jobs_free
 * has begun on a queue of a shared pool (drp_jobs_new_on) and until that
 * pool is freed, the job runs at once on the calling thread. A queue with
 * a pool of its own (drp_jobs_new) is gone when drp_jobs_free returns. */
void drp_jobs_submit(drp_jobs_t *j, drp_job_fn fn, void *arg);
/* Jobs queued or running. */
unsigned drp_jobs_pending(drp_jobs_t *j);
/* Run every queued job to its end and close the queue. On a shared pool
 * the queue's memory goes with the pool (drp_pool_free); with a pool of
 * its own, both go now. */
void drp_jobs_free(drp_jobs_t *j);

#endif
