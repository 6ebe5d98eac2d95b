/* SPDX-License-Identifier: MIT */
/*
 * One upstream fetch per blob for a fleet of proxies that share the S3
 * tier: a lease in Redis ([fleet] redis), taken by the first proxy to
 * miss a blob everywhere, before it fetches.
 *
 *   take:    SET drp:lease:<digest> <token> NX PX <lease_ttl>
 *            (token: 128 random bits)
 *   renew:   every lease_ttl/3 while bytes keep arriving (and after the
 *            last one until the release: the upload's tail), compare-and-
 *            extend (a script: PEXPIRE only if the value is our token);
 *            a stalled fill stops renewing, and Redis's own TTL ends the
 *            lease: no clocks are compared across machines; a holder
 *            whose renewal is answered 0 (the lease lapsed, another
 *            proxy may hold it now) still serves its clients and fills
 *            its local tier, but aborts its upload (the proxy that took
 *            over publishes the object) and sets no failure marker
 *   confirm: before the upload is completed (the object made visible in
 *            S3), compare-and-extend once more and complete only if the
 *            value is still our token: a renewal skipped after a stall
 *            cannot let a holder whose lease lapsed publish, however
 *            fast its fill catches up; Redis unreachable then: complete
 *            only if the last confirmation (take, renewal) was sent less
 *            than lease_ttl ago (Redis cannot have ended the key since),
 *            else abort: the lease may be another proxy's
 *   release: once the object is complete in S3 (or the fill failed:
 *            first SET drp:failed:<digest> <reason> PX 30000),
 *            compare-and-delete
 *   others:  while the lease is someone else's, poll S3 for the object
 *            (an unfinished multipart upload cannot be read, so there is
 *            nothing to stream from the holder) and Redis for the lease
 *            and a failure marker, with backoff, at most [fleet] wait:
 *            the object appears: read it from S3; the lease is gone
 *            without it: try to take it; a failure marker, the wait
 *            over, or Redis unreachable: fetch alone.
 *
 * Without Redis (not configured, or down: logged at each change) every
 * proxy works alone: it still coalesces its own clients and still reads
 * and fills the S3 tier, so a cold blob costs at most one upstream fetch
 * per proxy, and none once an upload completed.
 *
 * Thread: a lease lives on the loop of the worker that took it; the
 * drp_fleet_t is shared (one Redis connection per worker, each used by
 * its own loop only).
 */
#ifndef DRP_REGISTRY_FLEET_H
#define DRP_REGISTRY_FLEET_H

#include <hiredis/hiredis.h>
#include <stdbool.h>

#include "conf/conf.h"
#include "core/daemon.h"
#include "upstream/s3.h"

typedef struct drp_fleet drp_fleet_t;
typedef struct drp_lease drp_lease_t;

/* From [fleet] (conf->fleet_redis set); main thread, before the workers
 * start. NULL and err filled on failure. */
drp_fleet_t *drp_fleet_new(const drp_conf_t *conf, unsigned n_workers,
			   char *err, size_t errlen);
/* Worker w's loop is about to end (its stop hook, on that loop): its
 * leases stop first (no timer, command, S3 request or callback of theirs
 * runs any more; each stays its owner's to cancel or release, which
 * then sends nothing: the keys expire in Redis), then its Redis
 * connection goes while the loop its watchers are on still exists.
 * Owners that cancel their leases before (the fills') leave nothing to
 * stop. */
void drp_fleet_worker_stop(drp_fleet_t *fl, drp_worker_t *w);
/* After the loops ended (each worker's connection went with its loop). */
void drp_fleet_free(drp_fleet_t *fl);

enum drp_lease_outcome {
	DRP_LEASE_MINE = 0,   /* fetch it; renew and release the lease */
	DRP_LEASE_STORED = 1, /* another proxy stored it: read it from S3 */
	DRP_LEASE_ALONE = 2,  /* fetch it without a lease */
};
/* With MINE, the lease is the caller's until drp_lease_release(); with
 * the others it is gone once cb returns. */
typedef void (*drp_lease_cb)(void *arg, drp_lease_t *l,
			     enum drp_lease_outcome o);

/* Start deciding who fetches digest (on worker w's loop). cb runs once,
 * later. */
drp_lease_t *drp_lease_acquire(drp_fleet_t *fl, drp_worker_t *w,
			       const drp_s3_t *s3, drp_upstream_conf_t *ucf,
			       const char *digest, drp_lease_cb cb, void *arg);
/* No callback any more, the lease freed (its key, if taken, expires in
 * Redis: nothing is sent). Before the outcome, or instead of a release
 * when the loop ends. */
void drp_lease_cancel(drp_lease_t *l);
/* Bytes arrived: the next renewal may extend the lease. */
void drp_lease_progress(drp_lease_t *l);
/* The whole body arrived: renew until drp_lease_release() whether bytes
 * arrive or not. What is left (the digest, the upload's last parts and
 * its completion) is bounded by the S3 requests' own deadlines; without
 * this, an upload tail longer than lease_ttl let the lease lapse with
 * the object almost stored, and a waiting proxy fetched it again. */
void drp_lease_fetched(drp_lease_t *l);
/* The lease is no longer this proxy's: a renewal found the key gone or
 * another proxy's token (the holder stalled, or was stopped, for longer
 * than lease_ttl). The holder then does not publish its copy (the proxy
 * that took over publishes the same object) and sets no failure marker.
 * false for NULL. */
bool drp_lease_lapsed(const drp_lease_t *l);
/* What drp_lease_confirm() found (explicit values: a metrics label). */
enum drp_lease_check {
	DRP_LEASE_HELD = 0,   /* Redis: still our token (extended): publish */
	DRP_LEASE_LAPSED = 1, /* Redis: gone or another's: do not publish */
	DRP_LEASE_UNANSWERED_HELD = 2,	/* no answer, but confirmed less
					 * than lease_ttl ago: publish */
	DRP_LEASE_UNANSWERED_STALE = 3, /* no answer, and the lease may
					 * have ended: do not publish */
	DRP_LEASE_CHECK_N = 4,
};
/* Publish a copy under that check (HELD, UNANSWERED_HELD)? */
bool drp_lease_check_publish(enum drp_lease_check c);
/* The decision itself, for a reply of the compare-and-extend (NULL:
 * none, Redis unreachable or too slow), for a lease that an earlier
 * answer found lapsed or not, at now, last confirmed by a command sent
 * at confirmed_at (< 0: never), on a clock that counts while the
 * process is stopped (drp_lease_clock()). */
enum drp_lease_check drp_lease_check_of(const redisReply *reply, bool lapsed,
					double now, double confirmed_at,
					double ttl);
/* Seconds on CLOCK_BOOTTIME: a stall (SIGSTOP, a suspended machine)
 * counts, as it does for Redis's own expiry of the key. */
double drp_lease_clock(void);

typedef void (*drp_lease_confirm_cb)(void *arg, enum drp_lease_check c);
/* Just before publishing (completing the upload): is the lease still
 * this proxy's? cb runs once, later, from l's loop, unless the lease is
 * released or cancelled first, or its worker stopped. Logs a lease that is not.
 * A lapsed or stale answer also marks the lease lapsed (no failure marker
 * then). */
void drp_lease_confirm(drp_lease_t *l, drp_lease_confirm_cb cb, void *arg);

/* The fill is over: failure NULL (the object is in S3) or why not (a
 * failure marker for the waiting proxies first). Frees l. */
void drp_lease_release(drp_lease_t *l, const char *failure);

#endif
