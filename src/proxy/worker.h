/* SPDX-License-Identifier: MIT */
/*
 * Worker threads: one libev loop each, accepting on its own SO_REUSEPORT
 * listening sockets, owning its connections, its DNS resolver and its pool
 * of idle upstream connections (no locking needed for any of them).
 */
#ifndef DRP_PROXY_WORKER_H
#define DRP_PROXY_WORKER_H

#include <ev.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "net/dns.h"
#include "proxy/server.h"

struct drp_conn;
struct drp_upconn;
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
} drp_listener_t;

typedef struct drp_worker {
	drp_server_t *srv;
	const drp_worker_hooks_t *hooks;
	unsigned id;
	struct ev_loop *loop;
	pthread_t thread;
	ev_async wake; /* drain / stop requests from the main thread */
	drp_dns_t *dns;
	drp_listener_t *listeners;
	unsigned n_listeners;
	struct drp_conn *conns; /* open client connections (doubly linked) */
	/* Closed ones, freed at the end of the loop turn by reap
	 * (drp_conn_reap); linked through their next. */
	struct drp_conn *closed;
	ev_prepare reap;
	unsigned n_conns;
	struct drp_upconn *idle; /* pooled upstream connections */
	unsigned n_idle;
	unsigned next_id;
	int spare_fd;	    /* released on EMFILE to shed one connection */
	ev_async fill_wake; /* a fill made progress: kick its waiters */
	struct drp_exch *fill_waiters; /* requests waiting for fill bytes */
	bool draining;
} drp_worker_t;

/*
 * Create the listening sockets for every worker (SO_REUSEPORT: one socket
 * per worker and address). Returns 0 or -errno with err filled.
 */
int drp_workers_listen(drp_server_t *srv, const drp_conf_t *conf, char *err,
		       size_t errlen);
/* Start the worker threads, running hooks. */
int drp_workers_start(drp_server_t *srv, const drp_worker_hooks_t *hooks);
/* Stop accepting, let connections finish (closing idle keep-alives), and
 * join the threads; connections still open after `grace` seconds are
 * closed. */
void drp_workers_drain(drp_server_t *srv, double grace);

/* Set up w's loop, resolver and watchers (drp_workers_start does it for
 * every worker; a test can do it for one of its own). */
int drp_worker_loop_init(drp_worker_t *w, const drp_conf_t *conf,
			 const drp_worker_hooks_t *hooks);
/* Undo drp_worker_loop_init after the loop has ended. */
void drp_worker_loop_fini(drp_worker_t *w);

/* Connection id for logs: unique per process. */
unsigned drp_worker_conn_id(drp_worker_t *w);

#endif
