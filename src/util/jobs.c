/* SPDX-License-Identifier: MIT */
#include "util/jobs.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "util/log.h"
#include "util/mem.h"

typedef struct job {
	struct job *next;
	drp_job_fn fn;
	void *arg;
} job_t;

struct drp_jobs {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	job_t *head, **tail;
	unsigned pending; /* queued + running */
	bool stopping;
	pthread_t *threads;
	unsigned n_threads;
};

static void *run(void *arg)
{
	drp_jobs_t *j = arg;
	pthread_mutex_lock(&j->lock);
	for (;;) {
		while (j->head == NULL && !j->stopping)
			pthread_cond_wait(&j->cond, &j->lock);
		job_t *jb = j->head;
		if (jb == NULL)
			break; /* stopping, and nothing left */
		j->head = jb->next;
		if (j->head == NULL)
			j->tail = &j->head;
		pthread_mutex_unlock(&j->lock);
		jb->fn(jb->arg);
		free(jb);
		pthread_mutex_lock(&j->lock);
		j->pending--;
	}
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

drp_jobs_t *drp_jobs_new(unsigned threads)
{
	drp_jobs_t *j = DRP_NEW(drp_jobs_t);
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->cond, NULL);
	j->tail = &j->head;
	j->threads = drp_calloc(threads ? threads : 1, sizeof(pthread_t));
	for (unsigned i = 0; i < threads; i++) {
		if (pthread_create(&j->threads[j->n_threads], NULL, run, j) !=
		    0) {
			drp_log_errno(DRP_LOG_ERR, DRP_LOG_MAIN,
				      "background thread");
			break;
		}
		j->n_threads++;
	}
	if (j->n_threads == 0) {
		drp_jobs_free(j);
		return NULL;
	}
	return j;
}

void drp_jobs_submit(drp_jobs_t *j, drp_job_fn fn, void *arg)
{
	if (j) {
		pthread_mutex_lock(&j->lock);
		if (!j->stopping) {
			job_t *jb = DRP_NEW(job_t);
			jb->fn = fn;
			jb->arg = arg;
			*j->tail = jb;
			j->tail = &jb->next;
			j->pending++;
			pthread_cond_signal(&j->cond);
			pthread_mutex_unlock(&j->lock);
			return;
		}
		pthread_mutex_unlock(&j->lock);
	}
	fn(arg);
}

unsigned drp_jobs_pending(drp_jobs_t *j)
{
	pthread_mutex_lock(&j->lock);
	unsigned n = j->pending;
	pthread_mutex_unlock(&j->lock);
	return n;
}

void drp_jobs_free(drp_jobs_t *j)
{
	if (j == NULL)
		return;
	pthread_mutex_lock(&j->lock);
	j->stopping = true;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
	for (unsigned i = 0; i < j->n_threads; i++)
		pthread_join(j->threads[i], NULL);
	pthread_cond_destroy(&j->cond);
	pthread_mutex_destroy(&j->lock);
	free(j->threads);
	free(j);
}
