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
#include "core/daemon.h"
#include "core/runtime.h"
#include "tls/ca.h"
#include "tls/session.h"

/* Build a runtime from a validated conf (takes ownership of conf).
 * NULL + err on failure (e.g. unreadable upstream_ca_file). Blocking. */
drp_runtime_t *drp_runtime_new(drp_conf_t *conf, char *err, size_t errlen);
/* SIGUSR1: reopen error_log and access_log files by name (logrotate has
 * moved them). Returns 0 or -errno; the old files stay in use on error. */
int drp_runtime_reopen_logs(drp_runtime_t *rt);

/* Current runtime, with a new reference. Thread-safe. */
drp_runtime_t *drp_server_runtime_get(drp_server_t *srv);
/* Swap in a new runtime (takes the caller's reference). */
void drp_server_runtime_set(drp_server_t *srv, drp_runtime_t *rt);

/*
 * True if CONNECT to host:port should be intercepted under conf: a host
 * of registries or of a [registry] section; else not if tunnel_only
 * names it; else Docker Hub's registry-1.docker.io, index.docker.io and
 * auth.docker.io.
 */
bool drp_server_intercepts(const drp_conf_t *conf, const char *host,
			   uint16_t port);
/* Whether tunnel_only names host:port. */
bool drp_server_tunnel_only(const drp_conf_t *conf, const char *host,
			    uint16_t port);

/*
 * The generation's decision for a CONNECT: drp_server_intercepts, or a
 * realm host it learned (and tunnel_only does not name). Thread-safe.
 */
bool drp_runtime_intercepts(drp_runtime_t *rt, const char *host, uint16_t port);
/*
 * A registry (an intercepted host, for the log) answered a client with a
 * Bearer challenge whose realm is url: remember the realm's host so that
 * later CONNECTs to it are intercepted too, if it is an https URL whose
 * port tunnel_ports allows (interception must not reach what a tunnel
 * could not), that tunnel_only does not name and that is not
 * intercepted already; one log line per host learned, at most
 * DRP_RUNTIME_REALMS_MAX hosts. Returns true if the host is new.
 * Thread-safe.
 */
bool drp_runtime_learn_realm(drp_runtime_t *rt, const char *registry,
			     const char *url);

#endif
