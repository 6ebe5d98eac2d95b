/* SPDX-License-Identifier: MIT */
#include "util/jobs.h"

#include <stdlib.h>

#include "util/mem.h"
#include "util/pool.h"

/* A DRAIN lane of the worker pool: its FIFO is the queue, its limit the
 * number of jobs that run at once. */
struct drp_jobs {
	drp_pool_t *own; /* the pool, when it is ours alone */
	drp_pool_lane_t *lane;
};

drp_jobs_t *drp_jobs_new_on(drp_pool_t *pool, const char *name,
			    unsigned threads)
{
	drp_pool_lane_t *lane = drp_pool_lane_new(
		pool, name, threads ? threads : 1, 1, DRP_POOL_DRAIN);
	if (lane == NULL)
		return NULL;
	drp_jobs_t *j = DRP_NEW(drp_jobs_t);
	j->lane = lane;
	/* Freed with the pool, not by drp_jobs_free: a thread that still
	 * holds the queue (a job of another lane, at exit) submits to a
	 * closed lane and runs its job itself. */
	drp_pool_at_free(pool, free, j);
	return j;
}

drp_jobs_t *drp_jobs_new(unsigned threads)
{
	drp_pool_t *own = drp_pool_new(threads ? threads : 1);
	if (own == NULL)
		return NULL;
	drp_jobs_t *j = drp_jobs_new_on(own, "jobs", threads);
	if (j == NULL) {
		drp_pool_free(own);
		return NULL;
	}
	j->own = own;
	return j;
}

void drp_jobs_submit(drp_jobs_t *j, drp_job_fn fn, void *arg)
{
	if (j == NULL ||
	    drp_pool_submit(j->lane, NULL, fn, NULL, arg, NULL) < 0)
		fn(arg);
}

unsigned drp_jobs_pending(drp_jobs_t *j)
{
	return drp_pool_lane_queued(j->lane) + drp_pool_lane_running(j->lane);
}

void drp_jobs_free(drp_jobs_t *j)
{
	if (j == NULL)
		return;
	/* Runs what is queued; submissions from now on run inline. On a
	 * shared pool j stays (closed) until the pool is freed; a pool of
	 * its own frees j with it. */
	drp_pool_lane_close(j->lane);
	drp_pool_free(j->own);
}
