/* SPDX-License-Identifier: MIT */
#include "plugin/tokencache.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/mem.h"

enum waiter_state {
	W_LINKED, /* in its entry's list, callback pending */
	W_IN_CB,  /* detached, callback about to run or running */
	W_DONE,	  /* callback returned; a cancel in W_IN_CB frees it */
};

struct drp_tokencache_waiter {
	drp_tokencache_waiter_t *next, **pprev;
	drp_tokencache_cb *cb;
	void *arg;
	enum waiter_state state;
	bool cancelled; /* a cancel waits for the callback to return */
	pthread_t deliverer;
};

typedef struct entry {
	struct entry *next;
	const void *owner;
	char *scope;
	uint64_t hash;
	char *token;	/* NULL: none cached */
	double expires; /* usable while now < expires */
	bool fetching;
	drp_tokencache_waiter_t *waiters;
} entry_t;

struct drp_tokencache {
	pthread_mutex_t lock;
	pthread_cond_t cb_done;
	entry_t **buckets;
	unsigned n_buckets; /* power of two */
	unsigned n;
	unsigned max_entries;
};

static uint64_t hash_key(const void *owner, const char *scope)
{
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)(uintptr_t)owner;
	for (const unsigned char *p = (const unsigned char *)scope; *p; p++) {
		h ^= *p;
		h *= 1099511628211ULL;
	}
	return h ^ (h >> 29);
}

static void secret_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

drp_tokencache_t *drp_tokencache_new(unsigned max_entries)
{
	drp_tokencache_t *tc = DRP_NEW(drp_tokencache_t);
	pthread_mutex_init(&tc->lock, NULL);
	pthread_cond_init(&tc->cb_done, NULL);
	tc->n_buckets = 64;
	tc->buckets = drp_calloc(tc->n_buckets, sizeof(*tc->buckets));
	tc->max_entries =
		max_entries ? max_entries : DRP_TOKENCACHE_MAX_ENTRIES;
	return tc;
}

static void free_entry(entry_t *e)
{
	drp_tokencache_waiter_t *w = e->waiters;
	while (w != NULL) {
		drp_tokencache_waiter_t *next = w->next;
		free(w);
		w = next;
	}
	secret_free(e->token);
	free(e->scope);
	free(e);
}

void drp_tokencache_free(drp_tokencache_t *tc)
{
	if (tc == NULL)
		return;
	for (unsigned i = 0; i < tc->n_buckets; i++) {
		entry_t *e = tc->buckets[i];
		while (e != NULL) {
			entry_t *next = e->next;
			free_entry(e);
			e = next;
		}
	}
	free(tc->buckets);
	pthread_cond_destroy(&tc->cb_done);
	pthread_mutex_destroy(&tc->lock);
	free(tc);
}

double drp_tokencache_margin(double ttl)
{
	double m = ttl / 10;
	return m > DRP_TOKENCACHE_MAX_MARGIN ? DRP_TOKENCACHE_MAX_MARGIN : m;
}

static entry_t **find_slot(drp_tokencache_t *tc, const void *owner,
			   const char *scope, uint64_t h)
{
	entry_t **pp = &tc->buckets[h & (tc->n_buckets - 1)];
	for (; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->hash == h && (*pp)->owner == owner &&
		    strcmp((*pp)->scope, scope) == 0)
			return pp;
	return pp;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The sep-separated words of s (modified), sorted, appended to out. */
static void sort_words(char *s, char sep, drp_buf_t *out)
{
	size_t max = 1;
	for (const char *p = s; *p; p++)
		max += *p == sep;
	char **words = drp_calloc(max, sizeof(*words));
	size_t n = 0;
	char seps[2] = {sep, '\0'}, *save = NULL;
	for (char *w = strtok_r(s, seps, &save); w != NULL && n < max;
	     w = strtok_r(NULL, seps, &save))
		words[n++] = w;
	qsort(words, n, sizeof(*words), cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			drp_buf_append(out, &sep, 1);
		drp_buf_append(out, words[i], strlen(words[i]));
	}
	free(words);
}

char *drp_tokencache_scope_canon(const char *scope)
{
	/* Each element's actions sorted ... */
	char *copy = drp_strdup(scope);
	drp_buf_t elems = {0};
	char *save = NULL;
	bool first = true;
	for (char *el = strtok_r(copy, " ", &save); el != NULL;
	     el = strtok_r(NULL, " ", &save)) {
		if (!first)
			drp_buf_append(&elems, " ", 1);
		first = false;
		char *colon = strrchr(el, ':');
		if (colon == NULL || strchr(el, ':') == colon) {
			drp_buf_append(&elems, el, strlen(el));
			continue;
		}
		drp_buf_append(&elems, el, (size_t)(colon + 1 - el));
		sort_words(colon + 1, ',', &elems);
	}
	/* ... and the elements sorted. */
	char *joined =
		drp_strndup(drp_buf_pending(&elems) ? drp_buf_head(&elems) : "",
			    drp_buf_pending(&elems));
	drp_buf_t out = {0};
	sort_words(joined, ' ', &out);
	char *r = drp_strndup(drp_buf_pending(&out) ? drp_buf_head(&out) : "",
			      drp_buf_pending(&out));
	drp_buf_free(&out);
	drp_buf_free(&elems);
	free(joined);
	free(copy);
	return r;
}

static entry_t *lookup(drp_tokencache_t *tc, const void *owner,
		       const char *scope)
{
	char *key = drp_tokencache_scope_canon(scope);
	entry_t *e = *find_slot(tc, owner, key, hash_key(owner, key));
	free(key);
	return e;
}

static void unlink_entry(drp_tokencache_t *tc, entry_t *e)
{
	entry_t **pp = &tc->buckets[e->hash & (tc->n_buckets - 1)];
	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	tc->n--;
}

static bool idle(const entry_t *e)
{
	return !e->fetching && e->waiters == NULL;
}

static void grow(drp_tokencache_t *tc)
{
	unsigned nb = tc->n_buckets * 2;
	entry_t **b = drp_calloc(nb, sizeof(*b));
	for (unsigned i = 0; i < tc->n_buckets; i++) {
		entry_t *e = tc->buckets[i];
		while (e != NULL) {
			entry_t *next = e->next;
			e->next = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
			e = next;
		}
	}
	free(tc->buckets);
	tc->buckets = b;
	tc->n_buckets = nb;
}

/*
 * Keeps the cache bounded when many scopes pass through: first expired
 * idle entries go, then the idle ones closest to expiry.
 */
static void make_room(drp_tokencache_t *tc, double now)
{
	if (tc->n < tc->max_entries)
		return;
	for (unsigned i = 0; i < tc->n_buckets; i++) {
		entry_t **pp = &tc->buckets[i];
		while (*pp != NULL) {
			entry_t *e = *pp;
			if (idle(e) &&
			    (e->token == NULL || now >= e->expires)) {
				*pp = e->next;
				tc->n--;
				free_entry(e);
			} else {
				pp = &e->next;
			}
		}
	}
	while (tc->n >= tc->max_entries) {
		entry_t *victim = NULL;
		for (unsigned i = 0; i < tc->n_buckets; i++)
			for (entry_t *e = tc->buckets[i]; e; e = e->next)
				if (idle(e) && (victim == NULL ||
						e->expires < victim->expires))
					victim = e;
		if (victim == NULL)
			return; /* everything is busy: allow the overshoot */
		unlink_entry(tc, victim);
		free_entry(victim);
	}
}

static entry_t *get_or_create(drp_tokencache_t *tc, const void *owner,
			      const char *scope, double now)
{
	entry_t *e = lookup(tc, owner, scope);
	if (e != NULL)
		return e;
	make_room(tc, now);
	if (tc->n >= tc->n_buckets * 2)
		grow(tc);
	e = DRP_NEW(entry_t);
	e->owner = owner;
	e->scope = drp_tokencache_scope_canon(scope);
	e->hash = hash_key(owner, e->scope);
	uint64_t h = e->hash;
	entry_t **slot = &tc->buckets[h & (tc->n_buckets - 1)];
	e->next = *slot;
	*slot = e;
	tc->n++;
	return e;
}

static bool usable(const entry_t *e, double now)
{
	return e != NULL && e->token != NULL && now < e->expires;
}

int drp_tokencache_get(drp_tokencache_t *tc, const void *owner,
		       const char *scope, double now, char **token)
{
	pthread_mutex_lock(&tc->lock);
	entry_t *e = lookup(tc, owner, scope);
	int r = -ENOENT;
	if (usable(e, now)) {
		*token = drp_strdup(e->token);
		r = 0;
	}
	pthread_mutex_unlock(&tc->lock);
	return r;
}

int drp_tokencache_acquire(drp_tokencache_t *tc, const void *owner,
			   const char *scope, double now, char **token,
			   drp_tokencache_cb *cb, void *arg,
			   drp_tokencache_waiter_t **w)
{
	int r;
	pthread_mutex_lock(&tc->lock);
	entry_t *e = get_or_create(tc, owner, scope, now);
	if (usable(e, now)) {
		*token = drp_strdup(e->token);
		r = DRP_TOKENCACHE_HIT;
	} else if (e->fetching) {
		drp_tokencache_waiter_t *nw = DRP_NEW(drp_tokencache_waiter_t);
		nw->cb = cb;
		nw->arg = arg;
		nw->state = W_LINKED;
		nw->next = e->waiters;
		if (e->waiters != NULL)
			e->waiters->pprev = &nw->next;
		nw->pprev = &e->waiters;
		e->waiters = nw;
		*w = nw;
		r = DRP_TOKENCACHE_WAIT;
	} else {
		e->fetching = true;
		r = DRP_TOKENCACHE_FETCH;
	}
	pthread_mutex_unlock(&tc->lock);
	return r;
}

/* Called with the lock held: takes the waiters off the entry. */
static drp_tokencache_waiter_t *detach_waiters(entry_t *e)
{
	drp_tokencache_waiter_t *list = e->waiters;
	e->waiters = NULL;
	pthread_t self = pthread_self();
	for (drp_tokencache_waiter_t *w = list; w; w = w->next) {
		w->state = W_IN_CB;
		w->deliverer = self;
		w->pprev = NULL;
	}
	return list;
}

static void deliver(drp_tokencache_t *tc, drp_tokencache_waiter_t *list,
		    const char *token)
{
	while (list != NULL) {
		drp_tokencache_waiter_t *w = list;
		list = w->next;
		w->cb(w->arg, token);
		pthread_mutex_lock(&tc->lock);
		w->state = W_DONE;
		bool canceller_frees = w->cancelled;
		if (canceller_frees)
			pthread_cond_broadcast(&tc->cb_done);
		pthread_mutex_unlock(&tc->lock);
		if (!canceller_frees)
			free(w);
	}
}

void drp_tokencache_put(drp_tokencache_t *tc, const void *owner,
			const char *scope, const char *token, double ttl,
			double now)
{
	double keep = ttl - drp_tokencache_margin(ttl);
	pthread_mutex_lock(&tc->lock);
	entry_t *e = get_or_create(tc, owner, scope, now);
	secret_free(e->token);
	e->token = NULL;
	if (keep > 0) {
		e->token = drp_strdup(token);
		e->expires = now + keep;
	}
	e->fetching = false;
	drp_tokencache_waiter_t *list = detach_waiters(e);
	if (e->token == NULL) {
		unlink_entry(tc, e);
		free_entry(e);
	}
	pthread_mutex_unlock(&tc->lock);
	if (list == NULL)
		return;
	/* The entry may change once unlocked: waiters get their own copy. */
	char *copy = drp_strdup(token);
	deliver(tc, list, copy);
	secret_free(copy);
}

void drp_tokencache_fail(drp_tokencache_t *tc, const void *owner,
			 const char *scope)
{
	drp_tokencache_waiter_t *list = NULL;
	pthread_mutex_lock(&tc->lock);
	entry_t *e = lookup(tc, owner, scope);
	if (e != NULL) {
		e->fetching = false;
		list = detach_waiters(e);
		if (e->token == NULL) {
			unlink_entry(tc, e);
			free_entry(e);
		}
	}
	pthread_mutex_unlock(&tc->lock);
	deliver(tc, list, NULL);
}

bool drp_tokencache_cancel(drp_tokencache_t *tc, drp_tokencache_waiter_t *w)
{
	bool prevented = false;
	pthread_mutex_lock(&tc->lock);
	if (w->state == W_LINKED) {
		*w->pprev = w->next;
		if (w->next != NULL)
			w->next->pprev = w->pprev;
		prevented = true;
	} else if (pthread_equal(w->deliverer, pthread_self())) {
		/* From inside its own callback: the deliverer frees it. */
		pthread_mutex_unlock(&tc->lock);
		return false;
	} else {
		w->cancelled = true;
		while (w->state != W_DONE)
			pthread_cond_wait(&tc->cb_done, &tc->lock);
	}
	pthread_mutex_unlock(&tc->lock);
	free(w);
	return prevented;
}

void drp_tokencache_forget(drp_tokencache_t *tc, const void *owner,
			   const char *scope, const char *token)
{
	pthread_mutex_lock(&tc->lock);
	entry_t *e = lookup(tc, owner, scope);
	if (e != NULL && e->token != NULL && strcmp(e->token, token) == 0) {
		secret_free(e->token);
		e->token = NULL;
		if (idle(e)) {
			unlink_entry(tc, e);
			free_entry(e);
		}
	}
	pthread_mutex_unlock(&tc->lock);
}

void drp_tokencache_drop_owner(drp_tokencache_t *tc, const void *owner)
{
	drp_tokencache_waiter_t *all = NULL;
	pthread_mutex_lock(&tc->lock);
	for (unsigned i = 0; i < tc->n_buckets; i++) {
		entry_t **pp = &tc->buckets[i];
		while (*pp != NULL) {
			entry_t *e = *pp;
			if (e->owner != owner) {
				pp = &e->next;
				continue;
			}
			drp_tokencache_waiter_t *list = detach_waiters(e);
			while (list != NULL) {
				drp_tokencache_waiter_t *w = list;
				list = w->next;
				w->next = all;
				all = w;
			}
			*pp = e->next;
			tc->n--;
			free_entry(e);
		}
	}
	pthread_mutex_unlock(&tc->lock);
	deliver(tc, all, NULL);
}

unsigned drp_tokencache_count(drp_tokencache_t *tc)
{
	pthread_mutex_lock(&tc->lock);
	unsigned n = tc->n;
	pthread_mutex_unlock(&tc->lock);
	return n;
}
