/* SPDX-License-Identifier: MIT */
/*
 * Upstream connections and the keep-alive pool of a drp_upstream_t
 * (internal to src/upstream/).
 *
 * A connection has one owner at a time: the fetch using it (owner), or
 * the pool. A pooled connection is closed when the server closes it or
 * sends anything unasked, after POOL_IDLE_S seconds idle, and when the
 * pool is flushed. Loop thread only.
 */
#ifndef DRP_UPSTREAM_KEEPALIVE_H
#define DRP_UPSTREAM_KEEPALIVE_H

#include <ev.h>

#include "tls/session.h"
#include "upstream/upstream.h"

struct drp_fetch;

typedef struct drp_upconn {
	struct drp_upconn *next, *prev; /* in the pool */
	drp_upstream_t *ctx;
	int fd;
	drp_tls_t *tls;
	/* "scheme|host|port": what the connection may be reused for */
	char key[300];
	ev_io io; /* the owner's to init and use; the pool's while pooled */
	ev_timer idle;
	struct drp_fetch *owner; /* NULL while pooled */
	unsigned requests;	 /* served on this connection */
} drp_upconn_t;

/* A connection on fd (connected, owned from now on) for key. */
drp_upconn_t *drp_upconn_new(drp_upstream_t *ctx, int fd, const char *key);
/* Stop its watchers, end its TLS session, close fd, free it. */
void drp_upconn_close(drp_upconn_t *u);

/* Pool u for its key, or close it (the loop drains, or the pool holds
 * enough of its key or in all). */
void drp_keepalive_put(drp_upconn_t *u);
/* Take a pooled connection for key out of the pool (its watchers
 * stopped); NULL if there is none fit for reuse. */
drp_upconn_t *drp_keepalive_get(drp_upstream_t *ctx, const char *key);
/* Close every pooled connection of ctx. */
void drp_keepalive_flush(drp_upstream_t *ctx);

#endif
