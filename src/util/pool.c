/* SPDX-License-Identifier: MIT */
#include "util/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/log.h"
#include "util/mem.h"

typedef struct pool_loop pool_loop_t;
typedef struct pool_crew pool_crew_t;
typedef struct pool_exit pool_exit_t;

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

/*
 * A set of threads and what they serve: the pool's shared crew serves
 * every lane without threads of its own (under the reservations); a
 * lane's own crew serves that lane alone, at its own priority. Idle
 * threads of a crew wait on its condition, and are woken one per job.
 */
struct pool_crew {
	pthread_cond_t work;   /* a job may have become runnable */
	drp_pool_lane_t *lane; /* NULL: the shared crew */
	drp_pool_t *p;
	int nice;
	unsigned running;   /* jobs running on this crew */
	unsigned n_threads; /* started */
	unsigned idle;	    /* waiting on work */
	unsigned woken;	    /* of those, signalled and not yet up */
	pthread_t *threads;
	bool stop; /* its threads end once nothing is left to run */
};

struct drp_pool_lane {
	drp_pool_lane_t *next; /* the pool's open lanes, then its closed */
	drp_pool_t *p;
	pool_crew_t *crew; /* &p->shared, or one of its own */
	char name[32];
	unsigned max, reserved, flags;
	unsigned running, queued;
	drp_pool_job_t *head, *tail;
	bool closing, closed;
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

/* Run by drp_pool_free after its threads ended. */
struct pool_exit {
	pool_exit_t *next;
	void (*fn)(void *);
	void *arg;
};

struct drp_pool {
	pthread_mutex_t lock;
	pthread_cond_t ended; /* a job ended while someone waits for it */
	pool_crew_t shared;
	drp_pool_lane_t *lanes;	 /* open */
	drp_pool_lane_t *closed; /* kept until drp_pool_free */
	drp_pool_lane_t *turn;	 /* the lane looked at first */
	unsigned reserved;	 /* the shared lanes' reservations */
	unsigned waiting;	 /* threads waiting on ended */
	pool_loop_t *loops;
	pool_exit_t *exits;
	bool stop;
};

/* Threads the other shared lanes are owed and do not use. Lock held. */
static unsigned owed_to_others(const drp_pool_t *p, const drp_pool_lane_t *l)
{
	unsigned owed = 0;
	for (const drp_pool_lane_t *o = p->lanes; o; o = o->next) {
		if (o != l && o->crew == &p->shared && o->running < o->reserved)
			owed += o->reserved - o->running;
	}
	return owed;
}

/* May one more job of l start now (on an idle thread of its crew)? Lock
 * held. */
static bool may_start(const drp_pool_t *p, const drp_pool_lane_t *l)
{
	if (l->head == NULL || l->running >= l->max)
		return false;
	if ((p->stop || l->crew->stop) && !(l->flags & DRP_POOL_DRAIN))
		return false;
	if (l->crew != &p->shared || l->running < l->reserved)
		return true; /* its own threads, or its reservation */
	unsigned idle = p->shared.n_threads - p->shared.running;
	return idle > owed_to_others(p, l);
}

static drp_pool_job_t *take(drp_pool_t *p, drp_pool_lane_t *l)
{
	drp_pool_job_t *j = l->head;
	l->head = j->next;
	if (l->head == NULL)
		l->tail = NULL;
	j->next = NULL;
	l->queued--;
	l->running++;
	l->crew->running++;
	j->state = JOB_RUNNING;
	(void)p;
	return j;
}

/* The next job for crew c, the shared lanes served round robin. Lock
 * held. */
static drp_pool_job_t *pick(drp_pool_t *p, pool_crew_t *c)
{
	if (c->lane != NULL)
		return may_start(p, c->lane) ? take(p, c->lane) : NULL;
	if (p->lanes == NULL)
		return NULL;
	drp_pool_lane_t *start = p->turn ? p->turn : p->lanes;
	drp_pool_lane_t *l = start;
	do {
		if (l->crew == c && may_start(p, l)) {
			p->turn = l->next ? l->next : p->lanes;
			return take(p, l);
		}
		l = l->next ? l->next : p->lanes;
	} while (l != start);
	return NULL;
}

/* How many jobs could start on idle threads of c now (an upper bound:
 * the reservations are looked at per lane only). Lock held. */
static unsigned startable(const drp_pool_t *p, const pool_crew_t *c)
{
	unsigned n = 0;
	for (const drp_pool_lane_t *l = c->lane ? c->lane : p->lanes; l;
	     l = c->lane ? NULL : l->next) {
		if (l->crew == c && may_start(p, l)) {
			unsigned room = l->max - l->running;
			n += l->queued < room ? l->queued : room;
		}
	}
	return n;
}

/* Wake one more idle thread of c if there is a job for it that the
 * threads already woken will not take. Lock held; true: signal c->work
 * (after unlocking). */
static bool wake_one(const drp_pool_t *p, pool_crew_t *c)
{
	if (c->idle <= c->woken || startable(p, c) <= c->woken)
		return false;
	c->woken++;
	return true;
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

/* Has the crew's work ended for good? Lock held. */
static bool crew_over(const drp_pool_t *p, const pool_crew_t *c)
{
	return p->stop || c->stop;
}

static void *thread_main(void *arg)
{
	pool_crew_t *c = arg;
	drp_pool_t *p = c->p;
	/* Lower priority is for good: without CAP_SYS_NICE a thread cannot
	 * raise it again, which is why such a lane has threads of its own
	 * rather than lending the shared ones. */
	if (c->nice != 0 &&
	    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), c->nice) < 0)
		drp_log_errno(DRP_LOG_WARNING, DRP_LOG_MAIN,
			      "pool lane %s: nice %d", c->lane->name, c->nice);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		drp_pool_job_t *j;
		while ((j = pick(p, c)) == NULL && !crew_over(p, c)) {
			c->idle++;
			pthread_cond_wait(&c->work, &p->lock);
			c->idle--;
			if (c->woken > 0)
				c->woken--;
		}
		if (j == NULL)
			break; /* stopping, and nothing to drain */
		/* One wake-up per job: if another job could start too, pass
		 * the turn on to one more idle thread. */
		bool more = wake_one(p, c);
		pthread_mutex_unlock(&p->lock);
		if (more)
			pthread_cond_signal(&c->work);
		j->work(j->arg);
		bool inline_done = j->done != NULL && j->lp == NULL;
		if (inline_done)
			j->done(j->arg, 0);
		pthread_mutex_lock(&p->lock);
		drp_pool_lane_t *l = j->lane;
		l->running--;
		c->running--;
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
		/* The thread that freed the slot looks for the next job
		 * itself (the loop's top): nobody else needs waking, except
		 * whoever waits for jobs to end. */
		if (p->waiting > 0)
			pthread_cond_broadcast(&p->ended);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Start n threads for c (its lock not held). Threads started. */
static unsigned crew_start(pool_crew_t *c, unsigned n)
{
	c->threads = drp_calloc(n, sizeof(pthread_t));
	unsigned started = 0;
	for (unsigned i = 0; i < n; i++) {
		if (pthread_create(&c->threads[started], NULL, thread_main,
				   c) != 0) {
			drp_log_errno(DRP_LOG_ERR, DRP_LOG_MAIN, "pool thread");
			break;
		}
		started++;
	}
	return started;
}

/* Stop c's threads and wait for them (the lock not held). */
static void crew_join(drp_pool_t *p, pool_crew_t *c)
{
	pthread_mutex_lock(&p->lock);
	c->stop = true;
	pthread_mutex_unlock(&p->lock);
	pthread_cond_broadcast(&c->work);
	for (unsigned i = 0; i < c->n_threads; i++)
		pthread_join(c->threads[i], NULL);
	free(c->threads);
	c->threads = NULL;
	c->n_threads = 0;
}

drp_pool_t *drp_pool_new(unsigned threads)
{
	drp_pool_t *p = DRP_NEW(drp_pool_t);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->ended, NULL);
	pthread_cond_init(&p->shared.work, NULL);
	p->shared.p = p;
	if (threads == 0)
		threads = 1;
	/* The count is set before any thread looks at it. */
	pthread_mutex_lock(&p->lock);
	p->shared.n_threads = crew_start(&p->shared, threads);
	pthread_mutex_unlock(&p->lock);
	if (p->shared.n_threads == 0) {
		drp_pool_free(p);
		return NULL;
	}
	return p;
}

unsigned drp_pool_threads(const drp_pool_t *p)
{
	return p->shared.n_threads;
}

static drp_pool_lane_t *lane_alloc(drp_pool_t *p, const char *name,
				   unsigned max, unsigned reserved,
				   unsigned flags)
{
	drp_pool_lane_t *l = DRP_NEW(drp_pool_lane_t);
	l->p = p;
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->max = max;
	l->reserved = reserved;
	l->flags = flags;
	return l;
}

/* Lock held. */
static void lane_link(drp_pool_t *p, drp_pool_lane_t *l)
{
	/* Appended: the round robin's order is the lanes' order. */
	drp_pool_lane_t **pp = &p->lanes;
	while (*pp != NULL)
		pp = &(*pp)->next;
	*pp = l;
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
	if (p->reserved + reserved > p->shared.n_threads) {
		pthread_mutex_unlock(&p->lock);
		drp_log_err(DRP_LOG_MAIN,
			    "pool lane %s: %u reserved threads, only %u of %u "
			    "left",
			    name, reserved, p->shared.n_threads - p->reserved,
			    p->shared.n_threads);
		return NULL;
	}
	drp_pool_lane_t *l = lane_alloc(p, name, max, reserved, flags);
	l->crew = &p->shared;
	lane_link(p, l);
	p->reserved += reserved;
	pthread_mutex_unlock(&p->lock);
	return l;
}

drp_pool_lane_t *drp_pool_lane_new_own(drp_pool_t *p, const char *name,
				       unsigned threads, int nice,
				       unsigned flags)
{
	if (threads == 0)
		threads = 1;
	drp_pool_lane_t *l = lane_alloc(p, name, threads, threads, flags);
	pool_crew_t *c = DRP_NEW(pool_crew_t);
	pthread_cond_init(&c->work, NULL);
	c->lane = l;
	c->p = p;
	c->nice = nice;
	l->crew = c;
	pthread_mutex_lock(&p->lock);
	c->n_threads = crew_start(c, threads);
	if (c->n_threads == 0) {
		pthread_mutex_unlock(&p->lock);
		pthread_cond_destroy(&c->work);
		free(c->threads);
		free(c);
		free(l);
		return NULL;
	}
	l->max = c->n_threads;
	lane_link(p, l);
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
	if (l->closing || l->closed || p->stop) {
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
	/* One thread for one job, and only if one could take it now; a
	 * job that may not start yet is taken by the thread whose job's
	 * end makes room for it. Any idle thread of the crew can run what
	 * any other could. */
	pool_crew_t *c = l->crew;
	bool wake = wake_one(p, c);
	if (job != NULL)
		*job = j;
	pthread_mutex_unlock(&p->lock);
	if (wake)
		pthread_cond_signal(&c->work);
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
	if (l->closing || l->closed) {
		pthread_mutex_unlock(&p->lock);
		return;
	}
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
	p->waiting++;
	while (l->running > 0 || l->queued > 0)
		pthread_cond_wait(&p->ended, &p->lock);
	p->waiting--;
	drp_pool_lane_t **pp = &p->lanes;
	while (*pp != l)
		pp = &(*pp)->next;
	*pp = l->next;
	if (p->turn == l)
		p->turn = l->next;
	/* Kept (closed) until the pool goes: a late submission gets
	 * -ESHUTDOWN rather than freed memory. */
	l->closing = false;
	l->closed = true;
	l->next = p->closed;
	p->closed = l;
	bool own = l->crew != &p->shared;
	if (!own)
		p->reserved -= l->reserved;
	pthread_mutex_unlock(&p->lock);
	if (own)
		crew_join(p, l->crew);
	else /* its reservation is free for the others */
		pthread_cond_broadcast(&p->shared.work);
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

void drp_pool_at_free(drp_pool_t *p, void (*fn)(void *), void *arg)
{
	pool_exit_t *e = DRP_NEW(pool_exit_t);
	e->fn = fn;
	e->arg = arg;
	pthread_mutex_lock(&p->lock);
	e->next = p->exits;
	p->exits = e;
	pthread_mutex_unlock(&p->lock);
}

static void lane_free(drp_pool_t *p, drp_pool_lane_t *l)
{
	if (l->crew != &p->shared) {
		pthread_cond_destroy(&l->crew->work);
		free(l->crew->threads);
		free(l->crew);
	}
	free(l);
}

void drp_pool_free(drp_pool_t *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_mutex_unlock(&p->lock);
	/* The threads run the DRAIN lanes' queues dry, then end. */
	pthread_cond_broadcast(&p->shared.work);
	for (drp_pool_lane_t *l = p->lanes; l; l = l->next)
		if (l->crew != &p->shared)
			pthread_cond_broadcast(&l->crew->work);
	for (unsigned i = 0; i < p->shared.n_threads; i++)
		pthread_join(p->shared.threads[i], NULL);
	for (drp_pool_lane_t *l = p->lanes; l; l = l->next)
		if (l->crew != &p->shared)
			for (unsigned i = 0; i < l->crew->n_threads; i++)
				pthread_join(l->crew->threads[i], NULL);
	while (p->lanes != NULL) {
		drp_pool_lane_t *l = p->lanes;
		p->lanes = l->next;
		cancel_all(l->head);
		lane_free(p, l);
	}
	while (p->closed != NULL) {
		drp_pool_lane_t *l = p->closed;
		p->closed = l->next;
		lane_free(p, l);
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
	while (p->exits != NULL) {
		pool_exit_t *e = p->exits;
		p->exits = e->next;
		e->fn(e->arg);
		free(e);
	}
	pthread_cond_destroy(&p->shared.work);
	pthread_cond_destroy(&p->ended);
	pthread_mutex_destroy(&p->lock);
	free(p->shared.threads);
	free(p);
}
