/* SPDX-License-Identifier: MIT */
/*
 * The daemon's shared state: its counters, the server (CA, cache, fills,
 * the worker pool, the current generation) and the worker loops. Only
 * the types: proxy/server.c and proxy/worker.c run them; every layer of
 * the core reads them.
 */
#ifndef DRP_CORE_DAEMON_H
#define DRP_CORE_DAEMON_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include <drp/cache.h>

#include "core/runtime.h"
#include "upstream/upstream.h"
#include "tls/ca.h"

typedef struct drp_stats {
	atomic_ulong connections; /* accepted */
	atomic_ulong connections_open;
	atomic_ulong refused;	 /* 403 by policy */
	atomic_ulong over_limit; /* 503 at max_connections */
	/* The last "connection limit" log line: when (CLOCK_MONOTONIC
	 * seconds, 0: never) and over_limit then. */
	_Atomic int64_t over_limit_logged_at;
	atomic_ulong over_limit_logged;
	/* Requests, bytes, results and the rest: util/metrics.h. */
} drp_stats_t;

struct drp_worker;

typedef struct drp_server {
	pthread_mutex_t rt_lock;
	drp_runtime_t *rt; /* current generation (guarded by rt_lock) */
	drp_ca_t *ca;
	drp_forge_t *forge;
	struct drp_worker *workers;
	unsigned n_workers;
	drp_stats_t stats;
	/* the cache (NULL capi: caching off) */
	const drp_cache_api_t *capi;
	drp_cache_t *cdb;
	drp_cache_stats_t cstats; /* counters updated atomically by ops */
	char *spool_dir;	  /* where in-flight bodies are spooled */
	char *cache_dir;	  /* the fs backend's directory, or NULL */
	/* The admin listener (admin/listener.h), NULL: none, the admin
	 * endpoints are answered on the client port. */
	struct drp_admin *admin;
	/* The S3 tier behind the cache ([cache] backend = s3), NULL if
	 * none; immutable while the workers run (registry/s3tier.c). */
	struct drp_s3 *s3;
	struct drp_s3tier *s3tier;
	/* [fleet]: the Redis lease of one upstream fetch per blob for the
	 * whole fleet (registry/fleet.c), NULL if none. */
	struct drp_fleet *fleet;
	/* The worker pool: every blocking job runs in one of its lanes
	 * (made by main, freed after the loops and the fills). */
	struct drp_pool *pool;
	struct drp_jobs *jobs; /* blocking cache work (NULL: inline) */
	/* Verifies Proxy-Authorization off the loops (made by
	 * drp_workers_start, freed by drp_workers_drain). */
	struct drp_users_pool *users_pool;
	/* The pool's lane that hashes cold blobs as they arrive (made by
	 * main, closed by drp_fill_shutdown; NULL: hashed on the loop). */
	struct drp_pool_lane *hash_lane;
	atomic_uint fills_hashing; /* fills whose hashing has not ended */
	/* Other threads may wake a worker's loop only while loops_live
	 * (read lock); cleared (write lock) before the loops are freed. */
	pthread_rwlock_t loops_lock;
	bool loops_live;
	pthread_mutex_t fills_lock;
	struct drp_fill *fills; /* in-flight fills (guarded by fills_lock) */
	/* Every fill that has a home loop, in the table or not (one that
	 * failed, or was stored, may still upload to S3 there), until it is
	 * freed: what a worker's stop looks through (fills_lock). */
	struct drp_fill *fills_homed;
	atomic_bool draining;
	double drain_grace; /* seconds connections get to finish */
	time_t started;
} drp_server_t;

struct drp_conn;
struct drp_worker;

/*
 * What runs on a worker's loop, given by the daemon (conn.c's
 * drp_conn_worker_hooks): the worker itself knows nothing of
 * connections, fills or plugins, it only calls these.
 */
typedef struct drp_worker_hooks {
	/* A client connection was accepted (fd is the caller's to own). */
	void (*accept)(struct drp_worker *w, int fd,
		       const struct sockaddr *peer, socklen_t peerlen);
	/* The same on a mirror TLS listener (mirror_tls_listen). */
	void (*accept_mirror_tls)(struct drp_worker *w, int fd,
				  const struct sockaddr *peer,
				  socklen_t peerlen);
	/* Free what closed during the loop's turn (nothing is on the
	 * stack then; also once after the loop ended). */
	void (*reap)(struct drp_worker *w);
	/* The daemon drains: finish what runs, take nothing new. */
	void (*drain)(struct drp_worker *w);
	/* The drain's grace is over: close whatever is still open. */
	void (*close_all)(struct drp_worker *w, const char *reason);
	/* A fill made progress (fill_wake, from any thread). */
	void (*fill_wake)(struct drp_worker *w);
	/* The loop is about to end: pending work ends with its callback
	 * while the loop still exists. */
	void (*stop)(struct drp_worker *w);
} drp_worker_hooks_t;

typedef struct drp_listener {
	ev_io io;
	int fd;
	struct drp_worker *w;
	bool mirror_tls; /* a mirror_tls_listen address */
} drp_listener_t;

typedef struct drp_worker {
	drp_server_t *srv;
	const drp_worker_hooks_t *hooks;
	unsigned id;
	struct ev_loop *loop;
	pthread_t thread;
	ev_async wake; /* drain / stop requests from the main thread */
	drp_listener_t *listeners;
	unsigned n_listeners;
	struct drp_conn *conns; /* open client connections (doubly linked) */
	/* Closed ones, freed at the end of the loop turn by reap
	 * (drp_conn_reap); linked through their next. */
	struct drp_conn *closed;
	ev_prepare reap;
	unsigned n_conns;
	/* This loop's resolver and keep-alive pool, for fetches and
	 * tunnels. */
	drp_upstream_t upstream;
	unsigned next_id;
	int spare_fd;	    /* released on EMFILE to shed one connection */
	ev_async fill_wake; /* a fill made progress: kick its waiters */
	struct drp_exch *fill_waiters; /* requests waiting for fill bytes */
	bool draining;
	/* Functions other threads asked to run on this loop
	 * (drp_worker_call), in order; guarded by calls_lock. */
	ev_async calls_wake;
	pthread_mutex_t calls_lock;
	struct drp_worker_call *calls, *calls_tail;
	/* Out of descriptors with no spare to shed a client with: the
	 * listeners stay readable, so accepting pauses until this timer
	 * (a level-triggered watcher would otherwise spin). */
	ev_timer accept_resume;
	/* Out-of-descriptor events since the last log line (one line per
	 * FD_LOG_EVERY at most), and when that line was written. */
	unsigned fd_shed, fd_pauses;
	ev_tstamp fd_logged;
} drp_worker_t;

#endif
