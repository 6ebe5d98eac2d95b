/* SPDX-License-Identifier: MIT */
/*
 * The running daemon: configuration generations, the CA, worker threads.
 *
 * A drp_runtime_t is one configuration generation (conf + the objects
 * derived from it). Every connection holds a reference to the runtime it
 * was accepted under, so SIGHUP can swap in a new one while old
 * connections finish under the old rules.
 *
 * Threads: drp_server_* are called from the main thread; workers only use
 * drp_server_runtime_get() (locked) and the atomic counters.
 */
#ifndef DRP_PROXY_SERVER_H
#define DRP_PROXY_SERVER_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <drp/cache.h>

#include "conf/conf.h"
#include "tls/ca.h"
#include "tls/session.h"

typedef struct drp_runtime {
	atomic_uint refs;
	drp_conf_t *conf;
	drp_tls_client_cred_t *upcred;
	struct drp_auth *auth; /* plugin instances of this generation */
	int access_fd;	       /* -1 = none; 2 = stderr */
} drp_runtime_t;

typedef struct drp_stats {
	atomic_ulong connections; /* accepted */
	atomic_ulong connections_open;
	atomic_ulong requests;
	atomic_ulong tunnels;
	atomic_ulong refused;	      /* 403 by policy */
	atomic_ulong upstream_errors; /* 502/504 */
	atomic_ulong upstream_429;
	atomic_ulong bytes_upstream;	/* body bytes received from upstreams */
	atomic_ulong bytes_client;	/* body bytes sent to clients */
	atomic_ulong digest_mismatches; /* upstream bytes not matching */
	/* cacheable requests, by access-log result */
	atomic_ulong hit, miss, coalesced, revalidated, stale;
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
	struct drp_jobs *jobs;	  /* blocking cache work (NULL: inline) */
	atomic_uint fill_threads; /* fill hasher threads running */
	/* Other threads may wake a worker's loop only while loops_live
	 * (read lock); cleared (write lock) before the loops are freed. */
	pthread_rwlock_t loops_lock;
	bool loops_live;
	pthread_mutex_t fills_lock;
	struct drp_fill *fills; /* in-flight fills (guarded by fills_lock) */
	atomic_bool draining;
	double drain_grace; /* seconds connections get to finish */
	time_t started;
} drp_server_t;

/* Build a runtime from a validated conf (takes ownership of conf).
 * NULL + err on failure (e.g. unreadable upstream_ca_file). Blocking. */
drp_runtime_t *drp_runtime_new(drp_conf_t *conf, char *err, size_t errlen);
drp_runtime_t *drp_runtime_ref(drp_runtime_t *rt);
void drp_runtime_unref(drp_runtime_t *rt);

/* Current runtime, with a new reference. Thread-safe. */
drp_runtime_t *drp_server_runtime_get(drp_server_t *srv);
/* Swap in a new runtime (takes the caller's reference). */
void drp_server_runtime_set(drp_server_t *srv, drp_runtime_t *rt);

/* True if CONNECT to host:port should be intercepted under conf. */
bool drp_server_intercepts(const drp_conf_t *conf, const char *host,
			   uint16_t port);

/* [resolve] lookup: true and *ss filled (port = the entry's, or `port`
 * when the entry has none) if the operator named an address for host. */
bool drp_server_resolve_override(const drp_conf_t *conf, const char *host,
				 uint16_t port, struct sockaddr_storage *ss,
				 unsigned *len);

#endif
