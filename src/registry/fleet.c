/* SPDX-License-Identifier: MIT */
#include "registry/fleet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "upstream/redis.h"
#include "util/addr.h"
#include "util/log.h"
#include "util/mem.h"

#define REDIS_TIMEOUT 2.0
#define POLL_FIRST    0.25
#define POLL_MAX      2.0
#define FAILED_MS     "30000"

static const char extend_lua[] =
	"if redis.call('GET', KEYS[1]) == ARGV[1] then "
	"return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
static const char release_lua[] =
	"if redis.call('GET', KEYS[1]) == ARGV[1] then "
	"return redis.call('DEL', KEYS[1]) else return 0 end";

struct drp_fleet {
	char ip[64];
	int port;
	double ttl, wait;
	unsigned n_workers;
	drp_redis_t **conns;  /* per worker, made on its loop */
	drp_lease_t **leases; /* per worker: its live leases (its loop) */
};

struct drp_lease {
	drp_fleet_t *fl;
	drp_worker_t *w;
	drp_redis_t *r; /* NULL: the worker stopped (drp_fleet_worker_stop) */
	drp_lease_t *next, **prevp; /* in fl->leases[slot] */
	const drp_s3_t *s3;
	drp_upstream_conf_t *ucf;
	char digest[80];
	char key[100];	   /* drp:lease:<digest> */
	char failkey[100]; /* drp:failed:<digest> */
	char s3key[100];
	char token[33];
	drp_lease_cb cb;
	void *arg;
	bool mine;
	bool progressed;
	bool fetched;	     /* the body is in: renew until the release */
	bool lapsed;	     /* not known to be ours any more: a renewal or the
			      * confirmation found the key gone or another's */
	double sent_at;	     /* drp_lease_clock() at the take or renewal in
			      * flight */
	double confirmed_at; /* ... of the last one answered yes; -1: none */
	double deadline;
	double poll;
	ev_timer timer;
	drp_redis_cmd_t *cmd;
	drp_s3_call_t *call;
	/* drp_lease_confirm() */
	drp_redis_cmd_t *confirm;
	double confirm_sent;
	drp_lease_confirm_cb confirm_cb;
	void *confirm_arg;
};

/* redis = NAME:PORT: [resolve] first (the proxy's own names), else the
 * system's resolver, once, at start (the main thread, before any
 * request needs the lease); the first address is kept until a restart. */
static int resolve_name(const drp_conf_t *conf, struct sockaddr_storage *ss,
			char *err, size_t errlen)
{
	char host[256];
	const char *v = conf->fleet_redis, *colon = strrchr(v, ':');
	if (colon == NULL || (size_t)(colon - v) >= sizeof(host)) {
		snprintf(err, errlen, "[fleet] redis: bad address %s", v);
		return -1;
	}
	memcpy(host, v, (size_t)(colon - v));
	host[colon - v] = '\0';
	int port = atoi(colon + 1);
	memset(ss, 0, sizeof(*ss));
	for (unsigned i = 0; i < conf->n_resolve; i++) {
		if (strcasecmp(conf->resolve[i].host, host) != 0)
			continue;
		memcpy(ss, &conf->resolve[i].addr, conf->resolve[i].addrlen);
		goto found;
	}
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	int rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0 || res == NULL) {
		snprintf(err, errlen, "[fleet] redis: cannot resolve %s: %s",
			 host, rc ? gai_strerror(rc) : "no address");
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
found:
	if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
	else
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	char ip[64];
	drp_sockaddr_ip_str((struct sockaddr *)ss, ip, sizeof(ip));
	drp_log_notice(DRP_LOG_MAIN,
		       "fleet: Redis %s is %s (resolved at start)", v, ip);
	return 0;
}

drp_fleet_t *drp_fleet_new(const drp_conf_t *conf, unsigned n_workers,
			   char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	unsigned len;
	if (drp_sockaddr_parse(conf->fleet_redis, &ss, &len) < 0 &&
	    resolve_name(conf, &ss, err, errlen) < 0)
		return NULL;
	drp_fleet_t *fl = DRP_NEW(drp_fleet_t);
	drp_sockaddr_ip_str((struct sockaddr *)&ss, fl->ip, sizeof(fl->ip));
	fl->port = ntohs(ss.ss_family == AF_INET6
				 ? ((struct sockaddr_in6 *)&ss)->sin6_port
				 : ((struct sockaddr_in *)&ss)->sin_port);
	fl->ttl = conf->fleet_lease_ttl;
	fl->wait = conf->fleet_wait;
	fl->n_workers = n_workers ? n_workers : 1;
	fl->conns = drp_calloc(fl->n_workers, sizeof(*fl->conns));
	fl->leases = drp_calloc(fl->n_workers, sizeof(*fl->leases));
	return fl;
}

static unsigned slot_of(const drp_fleet_t *fl, const drp_worker_t *w)
{
	return w->id < fl->n_workers ? w->id : 0;
}

/* Nothing of l runs any more: no timer, no command, no S3 request, no
 * callback. l stays its owner's to cancel or release. */
static void lease_detach(drp_lease_t *l)
{
	ev_timer_stop(l->w->loop, &l->timer);
	drp_redis_cmd_cancel(l->cmd);
	drp_redis_cmd_cancel(l->confirm);
	drp_s3_call_cancel(l->call);
	l->cmd = l->confirm = NULL;
	l->call = NULL;
	if (l->prevp) {
		*l->prevp = l->next;
		if (l->next)
			l->next->prevp = l->prevp;
		l->prevp = NULL;
		l->next = NULL;
	}
	l->r = NULL;
}

void drp_fleet_worker_stop(drp_fleet_t *fl, drp_worker_t *w)
{
	if (fl == NULL || w->id >= fl->n_workers)
		return;
	/* The leases first: their commands point at the connection, and
	 * its end answers every command still pending with NULL: a lease
	 * still deciding would then decide, and start a fetch on a loop
	 * about to end. Stopped, a lease keeps no command, and its owner's
	 * cancel or release later touches nothing of the connection. Their
	 * keys in Redis expire. */
	while (fl->leases[w->id])
		lease_detach(fl->leases[w->id]);
	drp_redis_t *r = fl->conns[w->id];
	fl->conns[w->id] = NULL;
	drp_redis_free(r);
}

void drp_fleet_free(drp_fleet_t *fl)
{
	if (fl == NULL)
		return;
	free(fl->leases);
	free(fl->conns);
	free(fl);
}

static drp_redis_t *conn_of(drp_fleet_t *fl, drp_worker_t *w)
{
	unsigned i = slot_of(fl, w);
	if (fl->conns[i] == NULL)
		fl->conns[i] =
			drp_redis_new(w->loop, fl->ip, fl->port, REDIS_TIMEOUT);
	return fl->conns[i];
}

static void lease_free(drp_lease_t *l)
{
	lease_detach(l);
	drp_upstream_conf_unref(l->ucf);
	free(l);
}

/* The outcome; l is freed unless it is MINE. */
static void decide(drp_lease_t *l, enum drp_lease_outcome o)
{
	ev_timer_stop(l->w->loop, &l->timer);
	l->cmd = NULL;
	l->call = NULL;
	if (o == DRP_LEASE_MINE) {
		l->mine = true;
		/* Renew every third of the lease while bytes arrive. */
		ev_timer_set(&l->timer, l->fl->ttl / 3, l->fl->ttl / 3);
		ev_timer_start(l->w->loop, &l->timer);
		l->cb(l->arg, l, o);
		return;
	}
	l->cb(l->arg, l, o);
	lease_free(l);
}

static void take(drp_lease_t *l);

static void wait_more(drp_lease_t *l)
{
	if (ev_now(l->w->loop) >= l->deadline) {
		drp_log_warning(DRP_LOG_CACHE,
				"fleet: %s: still not in the S3 tier after "
				"%.0f s of another proxy's fill: fetching it "
				"here",
				l->digest, l->fl->wait);
		decide(l, DRP_LEASE_ALONE);
		return;
	}
	ev_timer_set(&l->timer, l->poll, 0.);
	ev_timer_start(l->w->loop, &l->timer);
	l->poll = l->poll * 1.5 > POLL_MAX ? POLL_MAX : l->poll * 1.5;
}

static void mget_cb(void *arg, const redisReply *rep, const char *why)
{
	drp_lease_t *l = arg;
	l->cmd = NULL;
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY ||
	    rep->elements != 2) {
		decide(l, DRP_LEASE_ALONE); /* Redis is gone: alone */
		return;
	}
	const redisReply *failed = rep->element[1];
	if (failed->type == REDIS_REPLY_STRING) {
		drp_log_notice(
			DRP_LOG_CACHE,
			"fleet: %s: the proxy fetching it failed (%.*s): "
			"fetching it here",
			l->digest, (int)failed->len, failed->str);
		decide(l, DRP_LEASE_ALONE);
		return;
	}
	if (rep->element[0]->type != REDIS_REPLY_STRING) {
		/* The lease ended (released or expired: its holder died or
		 * stalled) and the object is not there: take it. */
		drp_log_notice(DRP_LOG_CACHE,
			       "fleet: %s: the other proxy's lease ended "
			       "without the object: taking it",
			       l->digest);
		take(l);
		return;
	}
	wait_more(l);
}

static void head_cb(void *arg, const drp_s3_result_t *res)
{
	drp_lease_t *l = arg;
	l->call = NULL;
	if (res->err == 0 && res->status == 200) {
		drp_log_info(DRP_LOG_CACHE,
			     "fleet: %s: stored by another proxy: read from "
			     "the S3 tier",
			     l->digest);
		decide(l, DRP_LEASE_STORED);
		return;
	}
	const char *argv[] = {"MGET", l->key, l->failkey};
	l->cmd = drp_redis_cmd(l->r, mget_cb, l, 3, argv, NULL);
}

static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents);

/* The lease is ours: but a holder releases it only once the object is
 * in S3, so it may have been stored since this proxy last looked. */
static void recheck_cb(void *arg, const drp_s3_result_t *res)
{
	drp_lease_t *l = arg;
	l->call = NULL;
	if (res->err == 0 && res->status == 200) {
		const char *argv[] = {"EVAL", release_lua, "1", l->key,
				      l->token};
		drp_redis_cmd(l->r, NULL, NULL, 5, argv, NULL);
		drp_log_info(DRP_LOG_CACHE,
			     "fleet: %s: stored by another proxy meanwhile: "
			     "read from the S3 tier",
			     l->digest);
		decide(l, DRP_LEASE_STORED);
		return;
	}
	drp_log_info(DRP_LOG_CACHE, "fleet: %s: lease taken", l->digest);
	decide(l, DRP_LEASE_MINE);
}

static void set_cb(void *arg, const redisReply *rep, const char *why)
{
	drp_lease_t *l = arg;
	l->cmd = NULL;
	if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
		decide(l, DRP_LEASE_ALONE);
		return;
	}
	if (rep->type == REDIS_REPLY_STATUS) {
		l->confirmed_at = l->sent_at;
		drp_s3_req_t r = {.method = "HEAD", .key = l->s3key, .fd = -1};
		l->call = drp_s3_call(l->s3, &l->w->upstream, l->ucf, &r,
				      recheck_cb, l);
		return;
	}
	/* nil: another proxy holds it. */
	drp_log_info(DRP_LOG_CACHE,
		     "fleet: %s: another proxy is fetching it: waiting for "
		     "the S3 tier",
		     l->digest);
	wait_more(l);
}

static void take(drp_lease_t *l)
{
	char px[32];
	snprintf(px, sizeof(px), "%.0f", l->fl->ttl * 1000);
	const char *argv[] = {"SET", l->key, l->token, "NX", "PX", px};
	l->sent_at = drp_lease_clock();
	l->cmd = drp_redis_cmd(l->r, set_cb, l, 6, argv, NULL);
}

static void extend_cb(void *arg, const redisReply *rep, const char *why)
{
	drp_lease_t *l = arg;
	l->cmd = NULL;
	if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1)
		l->confirmed_at = l->sent_at;
	if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 0 &&
	    !l->lapsed) {
		/* Another proxy may hold it now and publish the object: the
		 * fill goes on for this proxy's clients and local tier, but
		 * its upload is not completed (drp_lease_lapsed). */
		l->lapsed = true;
		drp_log_notice(DRP_LOG_CACHE,
			       "fleet: %s: the lease lapsed during the fill "
			       "(stalled?); the fill goes on here, its upload "
			       "will not be published",
			       l->digest);
	}
}

static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	drp_lease_t *l = DRP_CONTAINER_OF(t, drp_lease_t, timer);
	if (l->mine) {
		if ((!l->progressed && !l->fetched) || l->cmd)
			return; /* stalled: let Redis end the lease */
		l->progressed = false;
		char px[32];
		snprintf(px, sizeof(px), "%.0f", l->fl->ttl * 1000);
		const char *argv[] = {"EVAL", extend_lua, "1",
				      l->key, l->token,	  px};
		l->sent_at = drp_lease_clock();
		l->cmd = drp_redis_cmd(l->r, extend_cb, l, 6, argv, NULL);
		return;
	}
	/* Waiting: is the object there yet? */
	drp_s3_req_t r = {.method = "HEAD", .key = l->s3key, .fd = -1};
	l->call = drp_s3_call(l->s3, &l->w->upstream, l->ucf, &r, head_cb, l);
}

drp_lease_t *drp_lease_acquire(drp_fleet_t *fl, drp_worker_t *w,
			       const drp_s3_t *s3, drp_upstream_conf_t *ucf,
			       const char *digest, drp_lease_cb cb, void *arg)
{
	drp_lease_t *l = DRP_NEW(drp_lease_t);
	l->fl = fl;
	l->w = w;
	l->r = conn_of(fl, w);
	l->s3 = s3;
	l->ucf = drp_upstream_conf_ref(ucf);
	snprintf(l->digest, sizeof(l->digest), "%s", digest);
	snprintf(l->key, sizeof(l->key), "drp:lease:%s", digest);
	snprintf(l->failkey, sizeof(l->failkey), "drp:failed:%s", digest);
	const char *hex = strchr(digest, ':');
	snprintf(l->s3key, sizeof(l->s3key), "blobs/sha256/%s",
		 hex ? hex + 1 : digest);
	uint8_t rnd[16];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		drp_require(!"getrandom failed");
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(l->token + 2 * i, 3, "%02x", rnd[i]);
	l->cb = cb;
	l->arg = arg;
	l->poll = POLL_FIRST;
	l->confirmed_at = -1;
	l->deadline = ev_now(w->loop) + fl->wait;
	ev_init(&l->timer, timer_cb);
	drp_lease_t **head = &fl->leases[slot_of(fl, w)];
	l->next = *head;
	if (*head)
		(*head)->prevp = &l->next;
	l->prevp = head;
	*head = l;
	take(l);
	return l;
}

void drp_lease_cancel(drp_lease_t *l)
{
	if (l)
		lease_free(l);
}

void drp_lease_progress(drp_lease_t *l)
{
	if (l)
		l->progressed = true;
}

void drp_lease_fetched(drp_lease_t *l)
{
	if (l)
		l->fetched = true;
}

bool drp_lease_lapsed(const drp_lease_t *l)
{
	/* Only an answer says so: a lease merely unrenewed for a while may
	 * still hold. The publication does not rest on this: it waits for
	 * drp_lease_confirm(). */
	return l && l->mine && l->lapsed;
}

double drp_lease_clock(void)
{
	struct timespec ts;
#ifdef CLOCK_BOOTTIME
	if (clock_gettime(CLOCK_BOOTTIME, &ts) == 0)
		return (double)ts.tv_sec + ts.tv_nsec / 1e9;
#endif
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

bool drp_lease_check_publish(enum drp_lease_check c)
{
	return c == DRP_LEASE_HELD || c == DRP_LEASE_UNANSWERED_HELD;
}

enum drp_lease_check drp_lease_check_of(const redisReply *reply, bool lapsed,
					double now, double confirmed_at,
					double ttl)
{
	/* Redis said so before: a token of 128 random bits is never ours
	 * again. */
	if (lapsed)
		return DRP_LEASE_LAPSED;
	if (reply && reply->type == REDIS_REPLY_INTEGER)
		return reply->integer == 1 ? DRP_LEASE_HELD : DRP_LEASE_LAPSED;
	/* No answer (or an error: Redis is not itself). Redis started the
	 * key's last PX ttl when it ran a command this proxy sent at
	 * confirmed_at or later: until confirmed_at + ttl nobody else can
	 * have taken it (unless Redis lost its data: then the same verified
	 * object may be completed twice); after, it may be another
	 * proxy's. */
	if (confirmed_at >= 0 && now < confirmed_at + ttl)
		return DRP_LEASE_UNANSWERED_HELD;
	return DRP_LEASE_UNANSWERED_STALE;
}

static void confirm_cb(void *arg, const redisReply *rep, const char *why)
{
	drp_lease_t *l = arg;
	l->confirm = NULL;
	double now = drp_lease_clock();
	enum drp_lease_check c = drp_lease_check_of(
		rep, l->lapsed, now, l->confirmed_at, l->fl->ttl);
	switch (c) {
	case DRP_LEASE_HELD:
		l->confirmed_at = l->confirm_sent;
		drp_log_info(DRP_LOG_CACHE,
			     "fleet: %s: lease confirmed: completing the "
			     "upload",
			     l->digest);
		break;
	case DRP_LEASE_LAPSED:
		l->lapsed = true;
		drp_log_notice(DRP_LOG_CACHE,
			       "fleet: %s: verified, but the lease is no "
			       "longer this proxy's (Redis: the key is gone "
			       "or another proxy's): upload aborted, the "
			       "proxy that took over publishes it",
			       l->digest);
		break;
	case DRP_LEASE_UNANSWERED_HELD:
		drp_log_warning(DRP_LOG_CACHE,
				"fleet: %s: Redis did not confirm the lease "
				"(%s), but confirmed it %.1f s ago (lease_ttl "
				"%.0f s): completing the upload",
				l->digest, why ? why : "an error reply",
				now - l->confirmed_at, l->fl->ttl);
		break;
	case DRP_LEASE_UNANSWERED_STALE:
	case DRP_LEASE_CHECK_N:
		l->lapsed = true;
		drp_log_warning(DRP_LOG_CACHE,
				"fleet: %s: verified, but the lease is no "
				"longer this proxy's for sure (Redis did not "
				"confirm it: %s; last confirmed %s%.1f s ago, "
				"lease_ttl %.0f s): upload aborted",
				l->digest, why ? why : "an error reply",
				l->confirmed_at < 0 ? "never: " : "",
				l->confirmed_at < 0 ? 0.
						    : now - l->confirmed_at,
				l->fl->ttl);
		break;
	}
	l->confirm_cb(l->confirm_arg, c);
}

void drp_lease_confirm(drp_lease_t *l, drp_lease_confirm_cb cb, void *arg)
{
	char px[32];
	snprintf(px, sizeof(px), "%.0f", l->fl->ttl * 1000);
	const char *argv[] = {"EVAL", extend_lua, "1", l->key, l->token, px};
	drp_redis_cmd_cancel(l->confirm);
	l->confirm = NULL;
	if (l->r == NULL)
		return; /* the worker stopped: no answer will come */
	l->confirm_cb = cb;
	l->confirm_arg = arg;
	l->confirm_sent = drp_lease_clock();
	l->confirm = drp_redis_cmd(l->r, confirm_cb, l, 6, argv, NULL);
}

void drp_lease_release(drp_lease_t *l, const char *failure)
{
	if (l == NULL)
		return;
	/* A lease that lapsed may be another proxy's now: its failure
	 * marker would send that proxy's waiters upstream on their own. */
	if (failure && drp_lease_lapsed(l))
		failure = NULL;
	if (l->r == NULL) {
		/* Its worker stopped: the key expires (lease_ttl). */
		lease_free(l);
		return;
	}
	/* One connection: Redis runs these in order; nobody waits for
	 * the answers. */
	if (failure) {
		const char *argv[] = {"SET", l->failkey,
				      failure[0] ? failure : "failed", "PX",
				      FAILED_MS};
		drp_redis_cmd(l->r, NULL, NULL, 5, argv, NULL);
	}
	const char *argv[] = {"EVAL", release_lua, "1", l->key, l->token};
	drp_redis_cmd(l->r, NULL, NULL, 5, argv, NULL);
	drp_log_info(DRP_LOG_CACHE, "fleet: %s: lease released%s%s", l->digest,
		     failure ? " after a failure: " : "",
		     failure ? failure : "");
	lease_free(l);
}
