/* SPDX-License-Identifier: MIT */
/*
 * Worker threads: one libev loop each, accepting on its own SO_REUSEPORT
 * listening sockets, owning its connections and its upstream context (DNS
 * resolver, pool of idle upstream connections; no locking needed for any
 * of them).
 */
#ifndef DRP_PROXY_WORKER_H
#define DRP_PROXY_WORKER_H

#include <ev.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "net/dns.h"
#include "core/daemon.h"
#include "proxy/server.h"

/*
 * Create the listening sockets for every worker (SO_REUSEPORT: one socket
 * per worker and address). Returns 0 or -errno with err filled.
 */
int drp_workers_listen(drp_server_t *srv, const drp_conf_t *conf, char *err,
		       size_t errlen);
/* Whether the listeners could use the congestion control cc (as this
 * process): 0, or -errno with err filled. For -t. */
int drp_workers_check_congestion(const char *cc, char *err, size_t errlen);
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

/*
 * Run fn(w, arg) on w's loop, soon, from any thread (calls from one
 * thread run in the order made). Returns 0, or -ESHUTDOWN when the
 * loops are gone or going (srv->loops_live is false): fn will not run.
 * Calls still queued when the loop ends are dropped without running
 * (the caller that needs an answer waits for fn, see drp_ctl).
 */
typedef void drp_worker_call_fn(drp_worker_t *w, void *arg);
int drp_worker_call(drp_worker_t *w, drp_worker_call_fn *fn, void *arg)
	__attribute__((nonnull(1, 2)));

#endif
