/* SPDX-License-Identifier: MIT */
#include "util/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/mem.h"

typedef struct pool_loop pool_loop_t;

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct drp_pool_job {
	drp_pool_job_t *next; /* in its lane's queue, then its loop's */
	drp_pool_t *p;
	drp_pool_lane_t *lane; /* while queued or running */
	pool_loop_t *lp;       /* NULL: no loop */
	drp_pool_work_fn *work;
	drp_pool_done_fn *done;
	void *arg;
	int state;
};

struct drp_pool_lane {
	drp_pool_lane_t *next; /* the pool's lanes */
	drp_pool_t *p;
	char name[32];
	unsigned max, reserved, flags;
	unsigned running, queued;
	drp_pool_job_t *head, *tail;
	bool closing;
};

/* Completions due to one loop. */
struct pool_loop {
	pool_loop_t *next;
	struct ev_loop *loop; /* NULL: forgotten */
	struct ev_loop *was;  /* the loop, for lookups after forgetting */
	ev_async async;
	drp_pool_t *p;
	drp_pool_job_t *head, *tail;
};

struct drp_pool {
	pthread_mutex_t lock;
	pthread_cond_t work;  /* a job may have become runnable */
	pthread_cond_t ended; /* a job ended */
	drp_pool_lane_t *lanes;
	drp_pool_lane_t *turn; /* the lane looked at first */
	unsigned running;      /* jobs running, all lanes */
	unsigned reserved;     /* the lanes' reservations together */
	pool_loop_t *loops;
	bool stop;
	pthread_t *threads;
	unsigned n_threads;
};

/* Threads the other lanes are owed and do not use. Lock held. */
static unsigned owed_to_others(const drp_pool_t *p, const drp_pool_lane_t *l)
{
	unsigned owed = 0;
	for (const drp_pool_lane_t *o = p->lanes; o; o = o->next) {
		if (o != l && o->running < o->reserved)
			owed += o->reserved - o->running;
	}
	return owed;
}

/* May one more job of l start now (on an idle thread)? Lock held. */
static bool may_start(const drp_pool_t *p, const drp_pool_lane_t *l)
{
	if (l->head == NULL || l->running >= l->max)
		return false;
	if (p->stop && !(l->flags & DRP_POOL_DRAIN))
		return false;
	if (l->running < l->reserved)
		return true; /* its own reservation */
	unsigned idle = p->n_threads - p->running;
	return idle > owed_to_others(p, l);
}

/* The next job to run, lanes served round robin. Lock held. */
static drp_pool_job_t *pick(drp_pool_t *p)
{
	if (p->lanes == NULL)
		return NULL;
	drp_pool_lane_t *start = p->turn ? p->turn : p->lanes;
	drp_pool_lane_t *l = start;
	do {
		if (may_start(p, l)) {
			drp_pool_job_t *j = l->head;
			l->head = j->next;
			if (l->head == NULL)
				l->tail = NULL;
			j->next = NULL;
			l->queued--;
			l->running++;
			p->running++;
			j->state = JOB_RUNNING;
			p->turn = l->next ? l->next : p->lanes;
			return j;
		}
		l = l->next ? l->next : p->lanes;
	} while (l != start);
	return NULL;
}

static void async_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	(void)loop;
	(void)revents;
	pool_loop_t *lp = DRP_CONTAINER_OF(a, pool_loop_t, async);
	drp_pool_t *p = lp->p;
	/* One at a time: a done may submit again. */
	for (;;) {
		pthread_mutex_lock(&p->lock);
		drp_pool_job_t *j = lp->head;
		if (j != NULL) {
			lp->head = j->next;
			if (lp->head == NULL)
				lp->tail = NULL;
		}
		pthread_mutex_unlock(&p->lock);
		if (j == NULL)
			return;
		j->done(j->arg, 0);
		free(j);
	}
}

static void *thread_main(void *arg)
{
	drp_pool_t *p = arg;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		drp_pool_job_t *j;
		while ((j = pick(p)) == NULL && !p->stop)
			pthread_cond_wait(&p->work, &p->lock);
		if (j == NULL)
			break; /* stopping, and nothing to drain */
		pthread_mutex_unlock(&p->lock);
		j->work(j->arg);
		bool inline_done = j->done != NULL && j->lp == NULL;
		if (inline_done)
			j->done(j->arg, 0);
		pthread_mutex_lock(&p->lock);
		j->lane->running--;
		p->running--;
		j->lane = NULL;
		j->state = JOB_DONE;
		if (j->done == NULL || inline_done) {
			free(j);
		} else {
			pool_loop_t *lp = j->lp;
			if (lp->tail)
				lp->tail->next = j;
			else
				lp->head = j;
			lp->tail = j;
			/* Under the lock: drp_pool_loop_forget clears loop
			 * under it before the loop goes. */
			if (lp->loop != NULL)
				ev_async_send(lp->loop, &lp->async);
		}
		/* Limits and reservations changed: anyone may now run. */
		pthread_cond_broadcast(&p->work);
		pthread_cond_broadcast(&p->ended);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

drp_pool_t *drp_pool_new(unsigned threads)
{
	drp_pool_t *p = DRP_NEW(drp_pool_t);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->ended, NULL);
	if (threads == 0)
		threads = 1;
	p->threads = drp_calloc(threads, sizeof(pthread_t));
	for (unsigned i = 0; i < threads; i++) {
		if (pthread_create(&p->threads[p->n_threads], NULL, thread_main,
				   p) != 0) {
			drp_log_errno(DRP_LOG_ERR, DRP_LOG_MAIN, "pool thread");
			break;
		}
		p->n_threads++;
	}
	if (p->n_threads == 0) {
		drp_pool_free(p);
		return NULL;
	}
	return p;
}

unsigned drp_pool_threads(const drp_pool_t *p)
{
	return p->n_threads;
}

drp_pool_lane_t *drp_pool_lane_new(drp_pool_t *p, const char *name,
				   unsigned max, unsigned reserved,
				   unsigned flags)
{
	if (max == 0)
		max = 1;
	if (reserved > max)
		reserved = max;
	pthread_mutex_lock(&p->lock);
	if (p->reserved + reserved > p->n_threads) {
		pthread_mutex_unlock(&p->lock);
		drp_log_err(DRP_LOG_MAIN,
			    "pool lane %s: %u reserved threads, only %u of %u "
			    "left",
			    name, reserved, p->n_threads - p->reserved,
			    p->n_threads);
		return NULL;
	}
	drp_pool_lane_t *l = DRP_NEW(drp_pool_lane_t);
	l->p = p;
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->max = max;
	l->reserved = reserved;
	l->flags = flags;
	/* Appended: the round robin's order is the lanes' order. */
	drp_pool_lane_t **pp = &p->lanes;
	while (*pp != NULL)
		pp = &(*pp)->next;
	*pp = l;
	p->reserved += reserved;
	pthread_mutex_unlock(&p->lock);
	return l;
}

/* The completion queue of loop, made on first use. Lock held. */
static pool_loop_t *loop_of(drp_pool_t *p, struct ev_loop *loop)
{
	pool_loop_t *lp = p->loops;
	while (lp != NULL && lp->was != loop)
		lp = lp->next;
	if (lp == NULL) {
		lp = DRP_NEW(pool_loop_t);
		lp->loop = lp->was = loop;
		lp->p = p;
		ev_async_init(&lp->async, async_cb);
		ev_async_start(loop, &lp->async);
		lp->next = p->loops;
		p->loops = lp;
	}
	return lp;
}

int drp_pool_submit(drp_pool_lane_t *l, struct ev_loop *loop,
		    drp_pool_work_fn *work, drp_pool_done_fn *done, void *arg,
		    drp_pool_job_t **job)
{
	drp_pool_t *p = l->p;
	pthread_mutex_lock(&p->lock);
	if (l->closing || p->stop) {
		pthread_mutex_unlock(&p->lock);
		return -ESHUTDOWN;
	}
	drp_pool_job_t *j = DRP_NEW(drp_pool_job_t);
	j->p = p;
	j->lane = l;
	j->lp = loop != NULL && done != NULL ? loop_of(p, loop) : NULL;
	j->work = work;
	j->done = done;
	j->arg = arg;
	j->state = JOB_QUEUED;
	if (l->tail)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
	l->queued++;
	/* Broadcast: the thread woken by a signal might be unable to take
	 * this lane's job while another could. */
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	if (job != NULL)
		*job = j;
	return 0;
}

/* Take j off its lane's queue. Lock held. */
static void unqueue(drp_pool_lane_t *l, drp_pool_job_t *j)
{
	drp_pool_job_t **pp = &l->head, *prev = NULL;
	while (*pp != j) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	*pp = j->next;
	if (l->tail == j)
		l->tail = prev;
	j->next = NULL;
	l->queued--;
}

bool drp_pool_cancel(drp_pool_job_t *j)
{
	drp_pool_t *p = j->p;
	pthread_mutex_lock(&p->lock);
	bool queued = j->state == JOB_QUEUED;
	if (queued)
		unqueue(j->lane, j);
	pthread_mutex_unlock(&p->lock);
	if (queued)
		free(j);
	return queued;
}

unsigned drp_pool_lane_queued(drp_pool_lane_t *l)
{
	pthread_mutex_lock(&l->p->lock);
	unsigned n = l->queued;
	pthread_mutex_unlock(&l->p->lock);
	return n;
}

unsigned drp_pool_lane_running(drp_pool_lane_t *l)
{
	pthread_mutex_lock(&l->p->lock);
	unsigned n = l->running;
	pthread_mutex_unlock(&l->p->lock);
	return n;
}

/* Cancel a list of jobs taken off their queues: done with -ECANCELED,
 * on the calling thread, without the lock. */
static void cancel_all(drp_pool_job_t *j)
{
	while (j != NULL) {
		drp_pool_job_t *next = j->next;
		if (j->done)
			j->done(j->arg, -ECANCELED);
		free(j);
		j = next;
	}
}

void drp_pool_lane_close(drp_pool_lane_t *l)
{
	drp_pool_t *p = l->p;
	pthread_mutex_lock(&p->lock);
	l->closing = true;
	drp_pool_job_t *dropped = NULL;
	if (!(l->flags & DRP_POOL_DRAIN)) {
		dropped = l->head;
		for (drp_pool_job_t *j = dropped; j; j = j->next) {
			j->lane = NULL;
			j->state = JOB_DONE;
		}
		l->head = l->tail = NULL;
		l->queued = 0;
	}
	while (l->running > 0 || l->queued > 0)
		pthread_cond_wait(&p->ended, &p->lock);
	drp_pool_lane_t **pp = &p->lanes;
	while (*pp != l)
		pp = &(*pp)->next;
	*pp = l->next;
	if (p->turn == l)
		p->turn = l->next;
	p->reserved -= l->reserved;
	/* Its reservation is free for the others. */
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	free(l);
	cancel_all(dropped);
}

void drp_pool_loop_forget(drp_pool_t *p, struct ev_loop *loop)
{
	pthread_mutex_lock(&p->lock);
	for (pool_loop_t *lp = p->loops; lp; lp = lp->next) {
		if (lp->loop == loop) {
			ev_async_stop(loop, &lp->async);
			lp->loop = NULL;
		}
	}
	pthread_mutex_unlock(&p->lock);
}

void drp_pool_free(drp_pool_t *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	/* The threads run the DRAIN lanes' queues dry, then end. */
	for (unsigned i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	while (p->lanes != NULL) {
		drp_pool_lane_t *l = p->lanes;
		p->lanes = l->next;
		cancel_all(l->head);
		free(l);
	}
	while (p->loops != NULL) {
		pool_loop_t *lp = p->loops;
		p->loops = lp->next;
		if (lp->loop != NULL)
			ev_async_stop(lp->loop, &lp->async);
		for (drp_pool_job_t *j = lp->head, *next; j; j = next) {
			next = j->next;
			j->done(j->arg, 0);
			free(j);
		}
		free(lp);
	}
	pthread_cond_destroy(&p->ended);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->lock);
	free(p->threads);
	free(p);
}
