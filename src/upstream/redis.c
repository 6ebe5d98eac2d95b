/* SPDX-License-Identifier: MIT */
#include "upstream/redis.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/adapters/libev.h>

#include "util/log.h"
#include "util/metrics.h"
#include "util/mem.h"

#define BACKOFF_MIN 0.5
#define BACKOFF_MAX 10.0

struct drp_redis {
	struct ev_loop *loop;
	char ip[64];
	int port;
	double timeout;
	redisAsyncContext *ac; /* NULL: not connected */
	bool connected;	       /* the connect callback said so */
	bool down;	       /* logged as unreachable */
	double retry_at;       /* no new connection before (ev_now) */
	double backoff;
	unsigned pending; /* commands sent and not answered */
	/* Commands that failed before reaching hiredis, their failure
	 * due on the loop (timer at 0): drp_redis_free() ends them. */
	struct drp_redis_cmd *unsent;
	bool closing; /* in drp_redis_free(): no new connection */
};

struct drp_redis_cmd {
	drp_redis_t *r;
	drp_redis_cb cb;
	void *arg;
	ev_timer timer;
	bool in_redis;	 /* hiredis owns the callback (reply_cb frees) */
	const char *why; /* failed before reaching hiredis */
	/* in r->unsent while !in_redis */
	struct drp_redis_cmd *next, **prevp;
};

static void set_down(drp_redis_t *r, const char *why)
{
	if (!r->down)
		drp_metrics_redis_down();
	if (!r->down)
		drp_log_warning(DRP_LOG_CACHE,
				"fleet: Redis at %s:%d unavailable (%s): each "
				"proxy fetches on its own",
				r->ip, r->port, why);
	r->down = true;
	r->retry_at = ev_now(r->loop) + r->backoff;
	r->backoff =
		r->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : r->backoff * 2;
}

/* Drop the connection: hiredis calls every pending callback with NULL. */
static void teardown(drp_redis_t *r, const char *why)
{
	redisAsyncContext *ac = r->ac;
	if (ac == NULL)
		return;
	r->ac = NULL;
	r->connected = false;
	set_down(r, why);
	ac->data = NULL;
	redisAsyncFree(ac);
}

static void connect_cb(const redisAsyncContext *ac, int status)
{
	drp_redis_t *r = ac->data;
	if (r == NULL)
		return;
	if (status != REDIS_OK) {
		/* hiredis frees the context after this callback. */
		r->ac = NULL;
		r->connected = false;
		set_down(r, ac->errstr[0] ? ac->errstr : "cannot connect");
		return;
	}
	r->connected = true;
	r->backoff = BACKOFF_MIN;
	if (r->down)
		drp_log_notice(DRP_LOG_CACHE, "fleet: Redis at %s:%d is back",
			       r->ip, r->port);
	r->down = false;
}

static void disconnect_cb(const redisAsyncContext *ac, int status)
{
	drp_redis_t *r = ac->data;
	if (r == NULL)
		return;
	r->ac = NULL;
	r->connected = false;
	set_down(r, ac->errstr[0] ? ac->errstr : "connection closed");
}

static void cmd_free(drp_redis_cmd_t *c)
{
	ev_timer_stop(c->r->loop, &c->timer);
	if (c->prevp) {
		*c->prevp = c->next;
		if (c->next)
			c->next->prevp = c->prevp;
	}
	free(c);
}

/* Failed before it was sent: its callback runs from the loop, or from
 * drp_redis_free(), whichever comes first. */
static void cmd_unsent(drp_redis_cmd_t *c, const char *why)
{
	drp_redis_t *r = c->r;
	c->why = why;
	c->next = r->unsent;
	if (r->unsent)
		r->unsent->prevp = &c->next;
	c->prevp = &r->unsent;
	r->unsent = c;
	ev_timer_set(&c->timer, 0., 0.);
	ev_timer_start(r->loop, &c->timer);
}

static void reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	drp_redis_cmd_t *c = privdata;
	c->r->pending--;
	if (c->cb)
		c->cb(c->arg, reply,
		      reply	      ? NULL
		      : ac->errstr[0] ? ac->errstr
				      : "no answer");
	cmd_free(c);
}

static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	drp_redis_cmd_t *c = DRP_CONTAINER_OF(t, drp_redis_cmd_t, timer);
	if (!c->in_redis) {
		/* Failed before it was sent: report it now (later than
		 * the call that made it). */
		if (c->cb)
			c->cb(c->arg, NULL, c->why);
		cmd_free(c);
		return;
	}
	/* No answer in time: the connection is as good as gone (this
	 * command's callback runs inside the teardown and frees it). */
	teardown(c->r, "a command timed out");
}

drp_redis_t *drp_redis_new(struct ev_loop *loop, const char *ip, int port,
			   double timeout)
{
	drp_redis_t *r = DRP_NEW(drp_redis_t);
	r->loop = loop;
	snprintf(r->ip, sizeof(r->ip), "%s", ip);
	r->port = port;
	r->timeout = timeout;
	r->backoff = BACKOFF_MIN;
	return r;
}

void drp_redis_free(drp_redis_t *r)
{
	if (r == NULL)
		return;
	r->closing = true;
	redisAsyncContext *ac = r->ac;
	r->ac = NULL;
	if (ac) {
		ac->data = NULL;
		redisAsyncFree(ac);
	}
	/* The loop will not run their timers any more: without this, a
	 * command that never reached Redis (a release sent while it was
	 * down, say) outlived its connection, and leaked. */
	while (r->unsent) {
		drp_redis_cmd_t *c = r->unsent;
		if (c->cb)
			c->cb(c->arg, NULL, c->why);
		cmd_free(c);
	}
	free(r);
}

static bool ensure_connected(drp_redis_t *r)
{
	if (r->ac)
		return true;
	if (ev_now(r->loop) < r->retry_at)
		return false;
	redisAsyncContext *ac = redisAsyncConnect(r->ip, r->port);
	if (ac == NULL)
		return false;
	if (ac->err) {
		set_down(r, ac->errstr);
		redisAsyncFree(ac);
		return false;
	}
	ac->data = r;
	redisLibevAttach(r->loop, ac);
	redisAsyncSetConnectCallback(ac, connect_cb);
	redisAsyncSetDisconnectCallback(ac, disconnect_cb);
	r->ac = ac;
	return true;
}

drp_redis_cmd_t *drp_redis_cmd(drp_redis_t *r, drp_redis_cb cb, void *arg,
			       int argc, const char **argv,
			       const size_t *argvlen)
{
	drp_redis_cmd_t *c = DRP_NEW(drp_redis_cmd_t);
	c->r = r;
	c->cb = cb;
	c->arg = arg;
	ev_init(&c->timer, timer_cb);
	if (r->closing) {
		/* Sent from a callback that drp_redis_free() runs. */
		cmd_unsent(c, "the connection is closing");
		return c;
	}
	if (!ensure_connected(r)) {
		cmd_unsent(c, "not connected");
		return c;
	}
	if (redisAsyncCommandArgv(r->ac, reply_cb, c, argc, argv, argvlen) !=
	    REDIS_OK) {
		cmd_unsent(c, "cannot send");
		return c;
	}
	c->in_redis = true;
	r->pending++;
	ev_timer_set(&c->timer, r->timeout, 0.);
	ev_timer_start(r->loop, &c->timer);
	return c;
}

void drp_redis_cmd_cancel(drp_redis_cmd_t *c)
{
	if (c == NULL)
		return;
	if (!c->in_redis) {
		cmd_free(c);
		return;
	}
	/* hiredis still holds it: its reply (or the teardown) frees it;
	 * its timer still guards the connection. */
	c->cb = NULL;
}
