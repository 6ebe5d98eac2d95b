/* SPDX-License-Identifier: MIT */
/*
 * In-flight blob fetches ("fills"), shared by every worker.
 *
 * The first client that misses a blob creates the fill and its upstream
 * fetch; every later client asking for the same digest while it runs
 * attaches as a waiter. The fetch writes the body to an unlinked spool
 * file (so waiters stream from it as bytes arrive, at their own pace,
 * Range included) and through SHA-256, once, in short jobs of the worker
 * pool's hash lane (srv->hash_lane) that read the spool behind the fetch;
 * when the digest matches, a job of the stores lane stores the spool in
 * the cache (drp_cache_adopt: the fs backend links the file into place,
 * no second copy, no second hash). A waiter
 * may send every byte of its response except the last one before the digest is
 * verified; on a mismatch every waiter resets its connection, so no client ever
 * sees a complete response with wrong bytes. The fetch belongs to the fill, not
 * to the client that started it: if that client goes away the fill still
 * completes for the others and for the cache.
 *
 * Thread-safety: the table and each fill are locked internally; waiters
 * on any worker are woken through their worker's fill_wake (worker.h),
 * only the workers that have waiters on the fill.
 */
#ifndef DRP_REGISTRY_FILL_H
#define DRP_REGISTRY_FILL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/daemon.h"
#include "upstream/fetch.h"

typedef struct drp_fill drp_fill_t;

enum drp_fill_state {
	DRP_FILL_STARTING = 0, /* waiting for the upstream's head */
	DRP_FILL_RUNNING = 1,  /* 200 received, body arriving */
	DRP_FILL_VERIFIED = 2, /* complete and SHA-256 verified */
	DRP_FILL_FAILED = 3,   /* broken body or digest mismatch: reset */
	DRP_FILL_DECLINED = 4, /* the upstream did not answer 200: the
				  initiator gets that answer, others retry
				  on their own */
	DRP_FILL_BYPASS = 5,   /* no room to spool the body: every waiter
				  passes the request through, uncached */
};

/* Snapshot of a fill for a waiter. */
typedef struct drp_fill_view {
	enum drp_fill_state state;
	uint64_t written; /* bytes in the spool */
	uint64_t total;	  /* body length, UINT64_MAX until known */
	bool length_known;
	char content_type[128];
} drp_fill_view_t;

/* What drp_fill_attach found. */
enum drp_fill_found {
	DRP_FILL_JOINED,  /* a running fill: a new reference to it */
	DRP_FILL_CREATED, /* none: a new fill, not started */
	DRP_FILL_STORED,  /* none, and the object is in the cache now */
	DRP_FILL_NO_SPOOL /* none, and no spool file could be made */
};

/*
 * Find the running fill for digest or create one (owned by `owner`).
 * *found tells which; a created fill has no fetch yet: the caller starts
 * it with drp_fill_start(). Returns a new reference, or NULL: the object
 * was stored after the caller's own lookup (a fill that ended between
 * the two: serve it from the cache), or no spool file could be made (the
 * caller passes the request through).
 */
drp_fill_t *drp_fill_attach(drp_server_t *srv, const char *digest,
			    const char *owner, enum drp_fill_found *found);
/* The owner string given when the fill was created ("host repo"): a
 * waiter for another repository must not be served bytes fetched under
 * this one's credentials. */
const char *drp_fill_owner(const drp_fill_t *f);
void drp_fill_unref(drp_fill_t *f);

/*
 * Start the upstream fetch (req->method must be GET, without Range) on
 * worker w. The fill owns the fetch from now on; the returned pointer
 * may be used only to attach hooks, right away.
 */
drp_fetch_t *drp_fill_start(drp_fill_t *f, drp_worker_t *w, drp_runtime_t *rt,
			    const drp_fetch_req_t *req);

/*
 * Start the fill from the S3 tier (srv->s3) instead: the object
 * blobs/sha256/<hex> read back like an upstream body (spooled, hashed,
 * the last byte held until the verdict); a copy that does not match is
 * deleted from the bucket. The caller has checked that the client may
 * have it (seen, or the upstream confirmed). On worker w's loop.
 * (A fill from the upstream, drp_fill_start, uploads into the tier as
 * it arrives when srv->s3 is set, completed only on a good verdict.)
 */
void drp_fill_start_s3(drp_fill_t *f, drp_worker_t *w, drp_runtime_t *rt,
		       unsigned conn_id);
/* True for a fill started by drp_fill_start_s3. */
bool drp_fill_from_s3(const drp_fill_t *f);

void drp_fill_view(drp_fill_t *f, drp_fill_view_t *v);
/* Bytes [off, off + len) of the spool (below view.written) in memory:
 * a read-only mapping of the page cache, valid until drp_fill_unmap(m)
 * even after the fill is gone. NULL if mapping fails: drp_fill_read. */
typedef struct drp_fill_map {
	void *base;
	size_t len;
} drp_fill_map_t;
const char *drp_fill_map(drp_fill_t *f, uint64_t off, size_t len,
			 drp_fill_map_t *m);
void drp_fill_unmap(drp_fill_map_t *m);
/* pread from the spool; only bytes below view.written are valid. */
ssize_t drp_fill_read(drp_fill_t *f, void *buf, size_t len, uint64_t off);
/* For DRP_FILL_DECLINED: the upstream's answer for the client that
 * started the fill: status line and header lines (no Content-Length, no
 * blank line), and the body. Owned by the fill. Returns the status. */
int drp_fill_declined(drp_fill_t *f, const char **head, size_t *head_len,
		      const char **body, size_t *body_len);
/* For DRP_FILL_DECLINED: the status the upstream answered, or 0 when
 * none did (the fetch failed: the declined answer is the proxy's own). */
int drp_fill_declined_upstream(const drp_fill_t *f);

/* A waiter arrived or left (progress wakes workers only while a fill
 * has waiters). */
void drp_fill_waiter_add(drp_fill_t *f, drp_worker_t *w);
void drp_fill_waiter_del(drp_fill_t *f, drp_worker_t *w);

/*
 * The loop of w is about to end (the workers' stop hook): the fills it
 * fetches for stop there and then, as if their upstream had failed
 * (clients left reset, nothing stored), instead of outliving the loop
 * with their fetch, timers and references: their S3 uploads are dropped
 * (an open multipart upload is left to the sweep), their fleet leases
 * cancelled (the keys expire in Redis). Before drp_fleet_worker_stop().
 * w's thread.
 */
void drp_fill_worker_stop(drp_worker_t *w);

/*
 * At exit, after the workers stopped: cancel the fills whose fetch was
 * abandoned, wait up to timeout seconds for the hash jobs to give their
 * verdicts (the stores of what was complete are queued in srv->jobs),
 * then close srv->hash_lane: what is still queued is discarded
 * unverified. Main thread.
 */
void drp_fill_shutdown(drp_server_t *srv, double timeout);

#endif
