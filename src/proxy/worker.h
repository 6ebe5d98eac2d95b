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
