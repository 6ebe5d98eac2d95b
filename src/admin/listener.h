/* SPDX-License-Identifier: MIT */
/*
 * The admin listener ([proxy] admin_listen): /metrics, /healthz and
 * /readyz (admin/local.h) on addresses of their own, for monitoring that
 * the proxy's clients do not reach, and that a scrape or a probe answers
 * even while every worker is busy. Only those, only GET and HEAD, one
 * request per connection (Connection: close); clients outside
 * admin_allow (of the current configuration generation) get 403.
 *
 * It runs one thread with its own event loop, started after the
 * workers and stopped after them (during a drain it answers /readyz with
 * 503). At most ADMIN_MAX_CONNS connections at once, each with a 10 s
 * deadline and an 8 KiB request head.
 */
#ifndef DRP_ADMIN_LISTENER_H
#define DRP_ADMIN_LISTENER_H

#include <stddef.h>

#include "conf/conf.h"
#include "core/daemon.h"

typedef struct drp_admin drp_admin_t;

/* Bind and listen on conf's admin_listen addresses (none: NULL, no
 * error). NULL with err filled on failure. Main thread. */
drp_admin_t *drp_admin_new(drp_server_t *srv, const drp_conf_t *conf, char *err,
			   size_t errlen);
/* Start answering (its thread). 0 or -errno. */
int drp_admin_start(drp_admin_t *a);
/* Stop the thread, close every connection and socket, free a (NULL is
 * allowed). Main thread. */
void drp_admin_free(drp_admin_t *a);

#endif
