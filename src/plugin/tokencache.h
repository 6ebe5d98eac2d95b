/* SPDX-License-Identifier: MIT */
/*
 * Upstream token cache, keyed by (owner, scope): owner is a plugin
 * instance (any pointer the caller picks), scope the token scope string
 * ("repository:library/alpine:pull", "" for none). Shared by all worker
 * threads.
 *
 * A token is used until shortly before it expires: until
 * now + ttl - drp_tokencache_margin(ttl).
 *
 * Coalescing: drp_tokencache_acquire() makes the first asker for a
 * missing token the FETCHER; later askers register a waiter callback and
 * are told once, when the fetcher calls drp_tokencache_put() (token) or
 * drp_tokencache_fail() (NULL). So N concurrent requests for one scope
 * cause one token fetch.
 *
 * Thread: every function is thread-safe. Waiter callbacks run on the
 * thread that calls put/fail, without the cache lock held, and may call
 * back into the cache. A host that needs the callback on the waiter's
 * own event loop posts it there from the callback.
 *
 * Times are seconds on a monotonic clock chosen by the caller (passed as
 * `now`), so tests control time.
 */
#ifndef DRP_PLUGIN_TOKENCACHE_H
#define DRP_PLUGIN_TOKENCACHE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct drp_tokencache drp_tokencache_t;
typedef struct drp_tokencache_waiter drp_tokencache_waiter_t;

/* token: the fetched token (owned by the cache, valid during the call)
 * or NULL when the fetch failed. */
typedef void drp_tokencache_cb(void *arg, const char *token);

/* Results of drp_tokencache_acquire (equal to enum drp_token_state). */
enum drp_tokencache_state {
	DRP_TOKENCACHE_HIT = 0,
	DRP_TOKENCACHE_FETCH = 1,
	DRP_TOKENCACHE_WAIT = 2,
};

/*
 * Scopes are compared in a canonical form: the actions of each
 * space-separated element sorted ("repository:a:push,pull" is
 * "repository:a:pull,push"), then the elements sorted. Registries differ
 * in the order they write them in challenges, and a request names the
 * scope it needs before it sees one. Malloc'ed.
 */
char *drp_tokencache_scope_canon(const char *scope)
	__attribute__((nonnull, malloc, returns_nonnull));

/* Default bound on entries; expired ones are swept first. */
#define DRP_TOKENCACHE_MAX_ENTRIES 4096
/* Longest margin before expiry. */
#define DRP_TOKENCACHE_MAX_MARGIN 30.0

/* max_entries 0 = DRP_TOKENCACHE_MAX_ENTRIES. */
drp_tokencache_t *drp_tokencache_new(unsigned max_entries)
	__attribute__((malloc, returns_nonnull));
/* Frees every entry; pending waiters are dropped without a callback (the
 * caller guarantees that nobody waits any more). */
void drp_tokencache_free(drp_tokencache_t *tc);

/* How long before expiry a token stops being used: a tenth of its
 * lifetime, at most DRP_TOKENCACHE_MAX_MARGIN seconds. */
double drp_tokencache_margin(double ttl);

/* A usable token: 0 and *token (malloc'ed copy; the caller clears and
 * frees it), or -ENOENT. */
int drp_tokencache_get(drp_tokencache_t *tc, const void *owner,
		       const char *scope, double now, char **token)
	__attribute__((nonnull(1, 3, 5)));

/*
 * Returns an enum drp_tokencache_state:
 *  HIT   *token set as for drp_tokencache_get.
 *  FETCH the caller must fetch and then call put or fail exactly once.
 *  WAIT  cb(arg, token) will run once (unless cancelled); *w is the
 *        handle for drp_tokencache_cancel, valid until the callback
 *        returns.
 */
int drp_tokencache_acquire(drp_tokencache_t *tc, const void *owner,
			   const char *scope, double now, char **token,
			   drp_tokencache_cb *cb, void *arg,
			   drp_tokencache_waiter_t **w)
	__attribute__((nonnull(1, 3, 5, 6, 8), warn_unused_result));

/*
 * Store token (copied) for ttl seconds from now, end the fetch, and call
 * every waiter with it. A put without a preceding FETCH just stores.
 * A ttl shorter than its margin is delivered to waiters but not cached.
 */
void drp_tokencache_put(drp_tokencache_t *tc, const void *owner,
			const char *scope, const char *token, double ttl,
			double now) __attribute__((nonnull(1, 3, 4)));
/* End the fetch without a token: every waiter is called with NULL. */
void drp_tokencache_fail(drp_tokencache_t *tc, const void *owner,
			 const char *scope) __attribute__((nonnull(1, 3)));

/*
 * Withdraw a waiter. Returns true if its callback will not run. Returns
 * false if the callback is running or has been started on another thread
 * (this call then waits until it returned) or is running on this thread
 * (a call from inside the callback). Never call it after the callback
 * returned.
 */
bool drp_tokencache_cancel(drp_tokencache_t *tc, drp_tokencache_waiter_t *w)
	__attribute__((nonnull));

/* Drop the cached token for (owner, scope) if it equals `token` (the
 * upstream refused it); a fetch in progress is not affected. */
void drp_tokencache_forget(drp_tokencache_t *tc, const void *owner,
			   const char *scope, const char *token)
	__attribute__((nonnull(1, 3, 4)));

/* Drop every entry of owner (instance freed). Waiters still registered
 * are called with NULL. */
void drp_tokencache_drop_owner(drp_tokencache_t *tc, const void *owner)
	__attribute__((nonnull(1)));

/* Number of entries (tests, metrics). */
unsigned drp_tokencache_count(drp_tokencache_t *tc) __attribute__((nonnull));

#endif
