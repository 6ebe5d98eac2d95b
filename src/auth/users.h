/* SPDX-License-Identifier: MIT */
/*
 * Proxy users: the htpasswd(1) file named by [proxy] users_file, and the
 * check of a client's Proxy-Authorization (Basic) against it.
 *
 * File format: one "name:hash" per line; blank lines and lines starting
 * with '#' are ignored. Accepted hashes:
 *   $2y$ / $2b$ / $2a$   bcrypt (htpasswd -B), via crypt_r(3)
 *   $5$ / $6$            SHA-256/512-crypt (htpasswd -2 / -5), crypt_r(3)
 *   $apr1$               Apache's MD5 (htpasswd -m, the default)
 *   {SHA}                base64 SHA-1 (htpasswd -s)
 * Plaintext and crypt(3) DES entries, and unknown schemes, are skipped
 * with a warning naming file:line (the user cannot log in); malformed
 * lines and duplicate users are errors.
 *
 * A drp_users_t is one generation of the file: immutable once loaded
 * (SIGHUP loads a new one; a bad file keeps the old one), refcounted,
 * thread-safe. It caches verdicts: bcrypt costs tens of milliseconds, so
 * a verdict is kept DRP_USERS_CACHE_TTL seconds, keyed by the SHA-256 of
 * the Proxy-Authorization value (the password itself is never stored),
 * bounded to DRP_USERS_CACHE_MAX entries; refusals are cached too.
 *
 * Verifications that the cache cannot answer run in a lane of the worker
 * pool (drp_users_pool_t, util/pool.h), never on an event loop: the caller's
 * loop gets the verdict through an ev_async. Concurrent checks of the same
 * value share one verification; a bounded queue turns a flood of
 * distinct wrong passwords into -EBUSY instead of an unbounded backlog,
 * and serves source addresses round robin (drp_users_check).
 */
#ifndef DRP_AUTH_USERS_H
#define DRP_AUTH_USERS_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"

struct sockaddr;
struct drp_pool;

/* The realm of the proxy's 407 challenge. */
#define DRP_USERS_REALM "docker-registry-proxy"
/* How long a verdict (accepted or refused) is remembered, seconds. */
#define DRP_USERS_CACHE_TTL 60
#define DRP_USERS_CACHE_MAX 4096
/* Longest user name accepted, bytes. */
#define DRP_USERS_NAME_MAX 255

typedef struct drp_users drp_users_t;

/*
 * Parse an htpasswd file. Errors are appended to errs as "FILE:LINE:
 * message" (or "FILE: message"); NULL if there was any. Warnings
 * (skipped entries, an empty file) are logged with file:line. Blocking:
 * main thread (start-up, -t, reload).
 */
drp_users_t *drp_users_load(const char *path, drp_conf_errors_t *errs)
	__attribute__((nonnull));
/* Same, from a string (tests); name is used as the file in messages. */
drp_users_t *drp_users_load_string(const char *name, const char *text,
				   drp_conf_errors_t *errs)
	__attribute__((nonnull));
drp_users_t *drp_users_ref(drp_users_t *u);
void drp_users_unref(drp_users_t *u);

/* Number of users that can log in (skipped entries not counted). */
unsigned drp_users_count(const drp_users_t *u) __attribute__((nonnull));
/* Whether name is a user that can log in. */
bool drp_users_has(const drp_users_t *u, const char *name)
	__attribute__((nonnull));
const char *drp_users_path(const drp_users_t *u) __attribute__((nonnull));

/*
 * Verify a password. Blocking (bcrypt!): never call it on an event loop.
 * Returns 0 (match), -EACCES (wrong password) or -ENOENT (no such user).
 */
int drp_users_verify(const drp_users_t *u, const char *user,
		     const char *password) __attribute__((nonnull));

/*
 * Split a Proxy-Authorization value "Basic base64(user:password)" (the
 * scheme in any case). *user and *password are malloc'ed (clear the
 * password with explicit_bzero before free). Returns 0 or -EINVAL (not
 * Basic, bad base64, no ':', an empty or too long user name, control
 * characters in the name).
 */
int drp_users_parse_basic(const char *value, char **user, char **password)
	__attribute__((nonnull, warn_unused_result));

/* SHA-256 of a credential value: what caches key on instead of the
 * secret. */
void drp_users_key(const char *value, size_t len, uint8_t out[32])
	__attribute__((nonnull));

/* A verdict: 0 (accepted), -EACCES (wrong password), -ENOENT (no such
 * user), -EINVAL (malformed value). */

/*
 * The cached verdict for a value's key: returns the verdict and sets
 * *user (malloc'ed; NULL if the value had no readable user name), or
 * returns -ESRCH if none is cached or it expired.
 */
int drp_users_cache_get(drp_users_t *u, const uint8_t key[32], char **user)
	__attribute__((nonnull));
/* Remember a verdict (user may be NULL). */
void drp_users_cache_put(drp_users_t *u, const uint8_t key[32], int verdict,
			 const char *user) __attribute__((nonnull(1, 2)));
/* The verdict for a Proxy-Authorization value, blocking on a miss (and
 * then cached): for -t style checks and tests. */
int drp_users_check_sync(drp_users_t *u, const char *value, char **user)
	__attribute__((nonnull));
/* Replace the monotonic clock (seconds) used for expiry; tests. */
void drp_users_set_clock(drp_users_t *u, double (*now)(void))
	__attribute__((nonnull));

/* ---- verification off the event loops ---- */

typedef struct drp_users_pool drp_users_pool_t;
typedef struct drp_users_wait drp_users_wait_t;

/* A verification ended: verdict as above, user (valid during the call
 * only) or NULL. Runs on the loop given to drp_users_check, from its
 * ev_async, never inside drp_users_check. */
typedef void drp_users_cb(void *arg, int verdict, const char *user);

/*
 * Verify in a "users" lane of the worker pool: at most `threads` at
 * once, with one pool thread reserved for verifications (so no other
 * lane's work delays a login), and room for max_jobs distinct
 * verifications queued or running. NULL if the pool has no thread left
 * to reserve. Main thread; the pool must outlive drp_users_pool_free.
 */
drp_users_pool_t *drp_users_pool_new_on(struct drp_pool *pool, unsigned threads,
					unsigned max_jobs)
	__attribute__((nonnull));
/* Same on a pool of its own with `threads` threads (tests). NULL if no
 * thread could be started. */
drp_users_pool_t *drp_users_pool_new(unsigned threads, unsigned max_jobs);
/*
 * Stop verifying (a verification under way finishes; queued ones are
 * dropped) and free. Waiters not yet delivered are dropped without their
 * callback: call it when the loops no longer run (their connections are
 * closed), before the loops are destroyed. NULL is a no-op.
 */
void drp_users_pool_free(drp_users_pool_t *p);

/*
 * Check a Proxy-Authorization value against u, on loop's thread, for a
 * client at `from` (NULL: unknown).
 * Returns the verdict at once when the cache has one or the value is
 * malformed (*user set as for drp_users_cache_get); otherwise
 * -EINPROGRESS: cb(arg, verdict, user) runs later on loop, unless
 * drp_users_wait_cancel(*wait) comes first. -EBUSY: max_jobs
 * verifications are pending already and `from` has no fewer of them
 * than any other source (nothing registered).
 *
 * Fairness: pending verifications are served round robin across source
 * addresses (IPv6 by /64), oldest first within one source, so a flood of
 * wrong passwords from one address delays only that address's checks.
 * There is no per-source cap (users behind one NAT share an address):
 * when the queue is full, a source with fewer pending checks than the
 * busiest one takes the place of that one's newest queued check, whose
 * waiters get -EBUSY. A cached verdict never queues, and refusals never
 * push a good verdict out of the cache. With p NULL the verification
 * runs inline (blocking).
 */
int drp_users_check(drp_users_pool_t *p, drp_users_t *u, struct ev_loop *loop,
		    const struct sockaddr *from, const char *value, char **user,
		    drp_users_cb *cb, void *arg, drp_users_wait_t **wait)
	__attribute__((nonnull(2, 3, 5, 6)));
/* Withdraw a pending check: its callback will not run. Call only before
 * it ran, on the loop's thread. */
void drp_users_wait_cancel(drp_users_pool_t *p, drp_users_wait_t *w)
	__attribute__((nonnull));
/* Verifications run so far (each a password hashed once). */
unsigned long drp_users_pool_verified(drp_users_pool_t *p)
	__attribute__((nonnull));
/* Hold (true) or release the threads: held, they start no verification,
 * so queues are deterministic (tests). */
void drp_users_pool_hold(drp_users_pool_t *p, bool hold)
	__attribute__((nonnull));
/* While held, let n more verifications start (tests: which ones start
 * is the queue's order). */
void drp_users_pool_release(drp_users_pool_t *p, unsigned n)
	__attribute__((nonnull));

#endif
