/* SPDX-License-Identifier: MIT */
#include "upstream/keepalive.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/mem.h"

#define POOL_MAX_PER_KEY 8
#define POOL_MAX	 64
#define POOL_IDLE_S	 30.0

static void pool_idle_cb(struct ev_loop *loop, ev_timer *t, int revents);

drp_upconn_t *drp_upconn_new(drp_upstream_t *ctx, int fd, const char *key)
{
	drp_upconn_t *u = DRP_NEW(drp_upconn_t);
	u->ctx = ctx;
	u->fd = fd;
	snprintf(u->key, sizeof(u->key), "%s", key);
	ev_init(&u->idle, pool_idle_cb);
	return u;
}

void drp_upconn_close(drp_upconn_t *u)
{
	ev_io_stop(u->ctx->loop, &u->io);
	ev_timer_stop(u->ctx->loop, &u->idle);
	if (u->tls)
		drp_tls_free(u->tls);
	if (u->fd >= 0)
		close(u->fd);
	free(u);
}

static void pool_unlink(drp_upconn_t *u)
{
	drp_upstream_t *ctx = u->ctx;
	if (u->prev)
		u->prev->next = u->next;
	else
		ctx->idle = u->next;
	if (u->next)
		u->next->prev = u->prev;
	u->next = u->prev = NULL;
	ctx->n_idle--;
}

static void pool_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	/* An idle connection became readable: the server closed it (or sent
	 * garbage). Either way it is unusable. */
	drp_upconn_t *u = DRP_CONTAINER_OF(io, drp_upconn_t, io);
	pool_unlink(u);
	drp_upconn_close(u);
}

static void pool_idle_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	drp_upconn_t *u = DRP_CONTAINER_OF(t, drp_upconn_t, idle);
	pool_unlink(u);
	drp_upconn_close(u);
}

void drp_keepalive_put(drp_upconn_t *u)
{
	drp_upstream_t *ctx = u->ctx;
	unsigned same = 0;
	for (drp_upconn_t *p = ctx->idle; p; p = p->next)
		if (strcmp(p->key, u->key) == 0)
			same++;
	if (ctx->draining || same >= POOL_MAX_PER_KEY ||
	    ctx->n_idle >= POOL_MAX) {
		drp_upconn_close(u);
		return;
	}
	u->owner = NULL;
	ev_io_stop(ctx->loop, &u->io);
	ev_io_init(&u->io, pool_io_cb, u->fd, EV_READ);
	ev_io_start(ctx->loop, &u->io);
	ev_timer_init(&u->idle, pool_idle_cb, POOL_IDLE_S, 0.);
	ev_timer_start(ctx->loop, &u->idle);
	u->next = ctx->idle;
	u->prev = NULL;
	if (ctx->idle)
		ctx->idle->prev = u;
	ctx->idle = u;
	ctx->n_idle++;
}

drp_upconn_t *drp_keepalive_get(drp_upstream_t *ctx, const char *key)
{
	for (drp_upconn_t *u = ctx->idle; u; u = u->next) {
		if (strcmp(u->key, key) != 0)
			continue;
		pool_unlink(u);
		ev_io_stop(ctx->loop, &u->io);
		ev_timer_stop(ctx->loop, &u->idle);
		if (u->tls && drp_tls_pending(u->tls) > 0) {
			/* Unsolicited bytes: not reusable. */
			drp_upconn_close(u);
			return NULL;
		}
		return u;
	}
	return NULL;
}

void drp_keepalive_flush(drp_upstream_t *ctx)
{
	while (ctx->idle) {
		drp_upconn_t *u = ctx->idle;
		pool_unlink(u);
		drp_upconn_close(u);
	}
}
