/* SPDX-License-Identifier: MIT */
/*
 * The daemon's side of the administrator's tools: the admin socket and
 * the max_age sweep.
 *
 * The admin socket is a Unix socket ([proxy] admin_socket; by default
 * admin.sock beside ca_dir), mode 0600, answering only the daemon's own
 * user and root (SO_PEERCRED). It serves the commands of ctl/cmd.h, one
 * per connection: cache list, purge and verify run in the worker pool's
 * "admin" lane (they read and remove files), warm runs on a worker's
 * loop (network I/O, through the request path: ctl/warm.h). None of it
 * is offered on the client port.
 *
 * The sweep removes objects unused for [cache] max_age, every
 * max_age/16 (1 s to 1 h), in the same lane; it reads max_age from the
 * current generation, so a reload changes it.
 *
 * All of it lives on the loop of the first worker.
 *
 * Thread: the main thread calls new (before the workers start), start
 * (after), stop (before they drain) and free (after the pool is freed).
 */
#ifndef DRP_CTL_CTL_H
#define DRP_CTL_CTL_H

#include <stddef.h>

#include "conf/conf.h"
#include "core/daemon.h"

typedef struct drp_ctl drp_ctl_t;

/*
 * The admin socket's path for conf into buf: admin_socket, or its
 * default place (admin.sock in the directory holding ca_dir, or in
 * env_dir when given: --env-config's state directory). 0; 1 when it is
 * off; -ENAMETOOLONG when it does not fit a socket address.
 */
int drp_ctl_socket_path(const drp_conf_t *conf, const char *env_dir, char *buf,
			size_t len) __attribute__((nonnull(1, 3)));

/*
 * Create the admin socket (before the workers start, so that a mistake
 * stops the start with a message). A socket at the default place that
 * cannot be made is logged and left out; one configured explicitly
 * stops the start (-errno, err filled). A stale socket file (nobody
 * answers) is replaced; one where a daemon answers is an error. *out is
 * set on success (also without a socket: the sweep still runs).
 */
int drp_ctl_new(drp_server_t *srv, const drp_conf_t *conf, const char *env_dir,
		drp_ctl_t **out, char *err, size_t errlen)
	__attribute__((nonnull(1, 2, 4, 5)));

/* After drp_workers_start: serve and sweep on the first worker's loop. */
int drp_ctl_start(drp_ctl_t *ctl) __attribute__((nonnull));

/*
 * Before drp_workers_drain: stop accepting, cancel warms (their clients
 * are told), ask running cache commands and the sweep to stop; returns
 * once the loop has done so. Jobs still running end by drp_pool_free.
 */
void drp_ctl_stop(drp_ctl_t *ctl);

/* After drp_pool_free: remove the socket file (if it is still ours). */
void drp_ctl_free(drp_ctl_t *ctl);

#endif
