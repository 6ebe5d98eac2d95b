/* SPDX-License-Identifier: MIT */
#include "registry/mflight.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/runtime.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

struct drp_mflight {
	struct drp_mflight *next; /* in the table */
	drp_server_t *srv;
	/* The generation the key names (by address): held, so that no
	 * later one can take its address while the entry lives. */
	drp_runtime_t *rt;
	char *key;
	/* guarded by the table's lock */
	unsigned refs;	  /* the waiters' and the fetch's */
	unsigned waiters; /* requests that have not left */
	unsigned *wwait;  /* waiters per worker (srv->n_workers) */
	bool in_table;
	bool done;   /* res holds the answer */
	bool stored; /* a waiter took the store */
	/* A 200 kept in the table until its store ends (holds a ref):
	 * a request meanwhile would miss the cache and fetch it again. */
	bool held;
	drp_fetchbuf_result_t res;
	char reason[128];
	/* the home loop's only */
	drp_fetchbuf_t *fb;
	drp_worker_t *home;
};

/* Process-wide, like the fills' table is server-wide: manifest fetches
 * are few (one per cold key), so one lock and a list are enough. */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static drp_mflight_t *table;

static void table_remove_locked(drp_mflight_t *m)
{
	if (!m->in_table)
		return;
	for (drp_mflight_t **p = &table; *p; p = &(*p)->next) {
		if (*p == m) {
			*p = m->next;
			break;
		}
	}
	m->in_table = false;
}

static void unref(drp_mflight_t *m)
{
	pthread_mutex_lock(&table_lock);
	bool last = --m->refs == 0;
	if (last)
		table_remove_locked(m);
	pthread_mutex_unlock(&table_lock);
	if (!last)
		return;
	drp_buf_free(&m->res.head);
	drp_buf_free(&m->res.body);
	free(m->wwait);
	free(m->key);
	if (m->rt != NULL)
		drp_runtime_unref(m->rt);
	free(m);
}

static bool own_worker(drp_server_t *srv, drp_worker_t *w)
{
	return srv != NULL && w != NULL && srv->workers != NULL &&
	       w->id < srv->n_workers && &srv->workers[w->id] == w;
}

drp_mflight_t *drp_mflight_join(drp_server_t *srv, drp_worker_t *w,
				drp_runtime_t *rt, const char *key,
				bool *leader)
{
	*leader = false;
	if (!own_worker(srv, w) || key == NULL)
		return NULL;
	pthread_mutex_lock(&table_lock);
	for (drp_mflight_t *m = table; m; m = m->next) {
		if (m->srv != srv || strcmp(m->key, key) != 0)
			continue;
		if (m->waiters >= DRP_MFLIGHT_WAITERS_MAX) {
			pthread_mutex_unlock(&table_lock);
			drp_log_debug(DRP_LOG_CACHE,
				      "%s: %u requests already wait for this "
				      "manifest: fetched on its own",
				      key, m->waiters);
			return NULL;
		}
		m->refs++;
		m->waiters++;
		m->wwait[w->id]++;
		pthread_mutex_unlock(&table_lock);
		return m;
	}
	drp_mflight_t *m = DRP_NEW(drp_mflight_t);
	m->srv = srv;
	m->rt = rt != NULL ? drp_runtime_ref(rt) : NULL;
	m->key = drp_strdup(key);
	m->wwait = drp_calloc(srv->n_workers, sizeof(*m->wwait));
	m->refs = 2; /* the leader's and the fetch's */
	m->waiters = 1;
	m->wwait[w->id] = 1;
	m->home = w;
	m->in_table = true;
	m->next = table;
	table = m;
	pthread_mutex_unlock(&table_lock);
	*leader = true;
	return m;
}

void drp_mflight_own(drp_mflight_t *m, drp_fetchbuf_t *fb)
{
	/* Only the home loop reads or writes fb, and done runs there. */
	if (!m->done)
		m->fb = fb;
}

/* Wake the workers that have waiters on m (as registry/fill.c does). */
static void notify(drp_mflight_t *m)
{
	drp_server_t *srv = m->srv;
	pthread_rwlock_rdlock(&srv->loops_lock);
	if (!srv->loops_live) {
		pthread_rwlock_unlock(&srv->loops_lock);
		return;
	}
	bool on_home = pthread_equal(pthread_self(), m->home->thread);
	pthread_mutex_lock(&table_lock);
	for (unsigned i = 0; i < srv->n_workers; i++) {
		if (m->wwait[i] == 0)
			continue;
		drp_worker_t *w = &srv->workers[i];
		if (w == m->home && on_home)
			ev_feed_event(w->loop, &w->fill_wake, EV_ASYNC);
		else
			ev_async_send(w->loop, &w->fill_wake);
	}
	pthread_mutex_unlock(&table_lock);
	pthread_rwlock_unlock(&srv->loops_lock);
}

/* Keep res as m's answer (under the lock). True: m stays in the table
 * (a 200, until its store ends), the caller's ref now m->held's. */
static bool keep_locked(drp_mflight_t *m, const drp_fetchbuf_result_t *res,
			bool hold)
{
	m->res.err = res->err;
	m->res.http_status = res->http_status;
	snprintf(m->reason, sizeof(m->reason), "%s",
		 res->reason ? res->reason : "");
	m->res.reason = m->reason;
	m->res.status = res->status;
	drp_buf_reset(&m->res.head);
	drp_buf_append(&m->res.head, drp_buf_head(&res->head),
		       drp_buf_pending(&res->head));
	drp_buf_reset(&m->res.body);
	drp_buf_append(&m->res.body, drp_buf_head(&res->body),
		       drp_buf_pending(&res->body));
	m->res.too_big = res->too_big;
	memcpy(m->res.digest, res->digest, sizeof(m->res.digest));
	memcpy(m->res.content_type, res->content_type,
	       sizeof(m->res.content_type));
	m->res.content_length = res->content_length;
	m->res.has_length = res->has_length;
	m->res.refused = res->refused;
	m->done = true;
	/* Nobody left to claim the store: nothing to wait for. */
	if (hold && res->err == 0 && res->status == 200 && m->waiters > 0 &&
	    !m->stored) {
		m->held = true;
		return true;
	}
	table_remove_locked(m);
	return false;
}

void drp_mflight_done(void *arg, drp_fetchbuf_result_t *res)
{
	drp_mflight_t *m = arg;
	m->fb = NULL;
	pthread_mutex_lock(&table_lock);
	bool held = keep_locked(m, res, true);
	unsigned waiters = m->waiters;
	pthread_mutex_unlock(&table_lock);
	if (waiters > 1)
		drp_log_debug(
			DRP_LOG_CACHE,
			"%s: one upstream answer (%d) for %u requests", m->key,
			res->err < 0 ? res->http_status : res->status, waiters);
	notify(m);
	if (!held)
		unref(m); /* the fetch's */
}

bool drp_mflight_result(drp_mflight_t *m, drp_fetchbuf_result_t *out,
			char *reason, size_t reason_len)
{
	pthread_mutex_lock(&table_lock);
	if (!m->done) {
		pthread_mutex_unlock(&table_lock);
		return false;
	}
	*out = m->res;
	out->head = (drp_buf_t){0};
	out->body = (drp_buf_t){0};
	drp_buf_append(&out->head, drp_buf_head(&m->res.head),
		       drp_buf_pending(&m->res.head));
	drp_buf_append(&out->body, drp_buf_head(&m->res.body),
		       drp_buf_pending(&m->res.body));
	snprintf(reason, reason_len, "%s", m->reason);
	out->reason = reason;
	pthread_mutex_unlock(&table_lock);
	return true;
}

void drp_mflight_result_free(drp_fetchbuf_result_t *r)
{
	drp_buf_free(&r->head);
	drp_buf_free(&r->body);
}

bool drp_mflight_claim_store(drp_mflight_t *m)
{
	pthread_mutex_lock(&table_lock);
	bool first = !m->stored;
	m->stored = true;
	if (first)
		m->refs++; /* the store's, until drp_mflight_store_end */
	pthread_mutex_unlock(&table_lock);
	return first;
}

/* Let a held entry go (under the lock); true: drop its ref. */
static bool release_locked(drp_mflight_t *m)
{
	if (!m->held)
		return false;
	m->held = false;
	table_remove_locked(m);
	return true;
}

void drp_mflight_store_end(drp_mflight_t *m)
{
	pthread_mutex_lock(&table_lock);
	bool drop = release_locked(m);
	pthread_mutex_unlock(&table_lock);
	if (drop)
		unref(m); /* the kept answer's */
	unref(m);	  /* the store's */
}

void drp_mflight_leave(drp_mflight_t *m, drp_worker_t *w)
{
	drp_fetchbuf_t *cancel = NULL;
	pthread_mutex_lock(&table_lock);
	bool drop = false;
	if (m->wwait[w->id] > 0)
		m->wwait[w->id]--;
	m->waiters--;
	/* The last waiter leaves a kept 200 nobody took the store of (a
	 * client gone before its answer): nobody will store it. */
	if (m->waiters == 0 && !m->stored)
		drop = release_locked(m);
	/* Nobody wants the answer any more, and the fetch is this loop's:
	 * stop it (as a lone request's fetch stops with its client). */
	if (m->waiters == 0 && !m->done && w == m->home && m->fb != NULL) {
		cancel = m->fb;
		m->fb = NULL;
		m->done = true;
		m->res.err = -ECANCELED;
		m->res.http_status = 502;
		snprintf(m->reason, sizeof(m->reason), "cancelled");
		m->res.reason = m->reason;
		table_remove_locked(m);
	}
	pthread_mutex_unlock(&table_lock);
	if (cancel != NULL) {
		drp_fetchbuf_cancel(cancel);
		unref(m); /* the fetch's */
	}
	if (drop)
		unref(m); /* the kept answer's */
	unref(m);
}

void drp_mflight_worker_stop(drp_worker_t *w)
{
	for (;;) {
		drp_mflight_t *m = NULL;
		drp_fetchbuf_t *fb = NULL;
		pthread_mutex_lock(&table_lock);
		for (drp_mflight_t *e = table; e; e = e->next) {
			if (e->home == w && e->fb != NULL && !e->done) {
				m = e;
				break;
			}
		}
		if (m != NULL) {
			fb = m->fb;
			m->fb = NULL;
			drp_fetchbuf_result_t gone = {
				.err = -ESHUTDOWN,
				.http_status = 503,
				.reason = "the proxy is shutting down"};
			keep_locked(m, &gone, false);
		}
		pthread_mutex_unlock(&table_lock);
		if (m == NULL)
			return;
		drp_fetchbuf_cancel(fb);
		notify(m);
		unref(m); /* the fetch's */
	}
}

unsigned drp_mflight_count(void)
{
	unsigned n = 0;
	pthread_mutex_lock(&table_lock);
	for (drp_mflight_t *m = table; m; m = m->next)
		n++;
	pthread_mutex_unlock(&table_lock);
	return n;
}
