/* SPDX-License-Identifier: MIT */
#include "proxy/conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/parse.h"
#include "net/proxyproto.h"
#include "http/uri.h"
#include "plugin/challenge.h"
#include "proxy/accesslog.h"
#include "auth/auth.h"
#include "registry/cached.h"
#include "registry/fill.h"
#include "registry/fleet.h"
#include "registry/mflight.h"
#include "registry/s3tier.h"
#include "core/exchange.h"
#include "conf/conf.h"
#include "proxy/mirror.h"
#include "proxy/pass.h"
#include "upstream/connect.h"
#include "upstream/fetch.h"
#include "admin/local.h"
#include "auth/users.h"
#include "tls/ca.h"
#include "tls/session.h"
#include "util/addr.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/metrics.h"

/* Bounds on what one connection buffers in each direction. */
#define OUT_HIGH     DRP_EXCH_OUT_HIGH
#define IN_BODY_HIGH (64 * 1024)
#define TUNNEL_BUF   (64 * 1024)
#define READ_CHUNK   (16 * 1024)
/* Most bytes one connection writes per turn of its worker's loop (give or
 * take a round of conn_run). A client that reads as fast as the proxy
 * writes (loopback, a fast LAN) would otherwise keep the loop for a whole
 * blob, and every other connection on that worker (handshakes, heads, the
 * other waiters of a fill) would wait for it. 1 MiB costs ~0.5 ms of
 * sealing and sending; the extra turn of the loop per MiB, a few
 * microseconds. */
#define RUN_BUDGET (1024 * 1024)

/* A client connection; private to this file (handlers see a
 * drp_exch_t, core/exchange.h). */
struct drp_conn {
	struct drp_conn *next, *prev;
	drp_worker_t *w;
	drp_runtime_t *rt;
	unsigned id;
	int fd;
	struct sockaddr_storage peer;
	char peer_str[64];
	/* State PROXY_PROTO: the header bytes read so far (only header
	 * bytes: the socket is read no further than the parser needs, so
	 * what follows, TLS included, stays in the socket) and the state
	 * that comes after the header. */
	char *pp_buf;
	size_t pp_len;
	enum drp_conn_state pp_next;
	/* The proxy user its CONNECT (or absolute-form request) proved to
	 * be (Proxy-Authorization against [proxy] users_file); NULL:
	 * anonymous. Kept for every request inside the CONNECT. */
	char *user;
	/* Checking Proxy-Authorization off the loop (state PROXY_AUTH):
	 * the pending check, then its verdict for the request's second
	 * dispatch, which checks that the value is the same (pauth_key). */
	struct drp_users_wait *pauth_wait;
	bool pauth_ready;
	int pauth_verdict;
	char *pauth_user;
	uint8_t pauth_key[32];
	enum drp_conn_state state;
	ev_io io;
	ev_timer timer;
	ev_timer kick;
	ev_tstamp timer_for; /* timeout of the current state */
	/* Between requests of a kept-alive connection: the timer runs
	 * idle_timeout until the next head's first byte starts its
	 * header_timeout. */
	bool idle;
	drp_tls_t *tls;
	bool tls_active; /* handshake done: client I/O goes through TLS */
	drp_leaf_t *leaf;
	drp_buf_t in, out;
	/* Body bytes sent straight from memory the connection does not own
	 * (a fill's mapped spool), ahead of anything in out: queued only
	 * while out is empty (send_ref); zc_release(zc_arg) once
	 * they are written or the connection closes. */
	const char *zc;
	size_t zc_len;
	void (*zc_release)(void *arg);
	void *zc_arg;
	/* RUN_BUDGET: bytes client_flush wrote, and what they were when the
	 * loop's current turn (ev_iteration) first ran the connection. */
	uint64_t written, turn_written;
	unsigned turn;
	size_t head_scanned; /* c->in bytes a parse found incomplete */
	bool client_eof;
	/* A read found the socket empty, or took less than it asked for: no
	 * more reads until the watcher says it is readable (it is
	 * level-triggered), unless TLS holds bytes already read. Reading
	 * after every response, and again when the next request was kicked,
	 * cost two recv(2) that found nothing per keep-alive request. */
	bool in_dry;
	bool draining;
	size_t lingered; /* bytes dropped in LINGER */
	/* CONNECT target */
	char host[DRP_HOST_MAX + 1];
	uint16_t port;
	bool intercepted;
	bool sni_mismatch;
	/* Registry-mirror mode: the request being served came to the proxy
	 * itself (c->host is the registry it named); the connection came to
	 * a mirror TLS listener; the proxy as that client reached it. */
	bool mirror;
	bool mirror_tls;
	char mirror_origin[DRP_HOST_MAX + 40];
	/* tunnel */
	int tfd;
	ev_io tio;
	drp_buf_t tbuf; /* origin -> client */
	bool t_eof, t_shut, c_shut;
	drp_upstream_connect_t *tconnect; /* to the origin */
	uint64_t t_up, t_down;
	ev_tstamp t_start;
	/* the request being served */
	unsigned requests;
	bool req_active;
	char method[16];
	char *path; /* without query, for the log */
	ev_tstamp start;
	uint64_t bytes_in;
	bool req_body_done;
	drp_http_body_t reqbody;
	bool is_ping; /* GET/HEAD /v2/ */
	char *repo;   /* repository of the request (NULL: none) */
	char *ua;     /* its User-Agent, for the log (NULL: none) */
	/* When its first response byte was queued (0: not yet), and
	 * whether the proxy cut its response short (the metrics). */
	ev_tstamp first_byte;
	bool cut;
	/* The request as its handlers see it (core/exchange.h): the
	 * answer's status, result and byte counts, the per-registry
	 * settings, the handler's state. */
	drp_exch_t x;
};

static inline bool drp_conn_out_pending(const drp_conn_t *c)
{
	return drp_buf_pending(&c->out) > 0 || c->zc_len > 0 ||
	       (c->tls_active && drp_tls_out_pending(c->tls));
}

static void conn_run(drp_conn_t *c);
static void io_cb(struct ev_loop *loop, ev_io *io, int revents);
static void tunnel_run(drp_conn_t *c);

const char *drp_conn_state_str(enum drp_conn_state s)
{
	switch (s) {
	case DRP_CONN_PROXY_HEAD:
		return "proxy-head";
	case DRP_CONN_TUNNEL_CONNECT:
		return "tunnel-connect";
	case DRP_CONN_TUNNEL:
		return "tunnel";
	case DRP_CONN_TLS_HANDSHAKE:
		return "tls-handshake";
	case DRP_CONN_HEAD:
		return "head";
	case DRP_CONN_EXCHANGE:
		return "exchange";
	case DRP_CONN_FLUSH_CLOSE:
		return "flush-close";
	case DRP_CONN_PROXY_AUTH:
		return "proxy-auth";
	case DRP_CONN_LINGER:
		return "linger";
	case DRP_CONN_CLOSED:
		return "closed";
	case DRP_CONN_PROXY_PROTO:
		return "proxy-protocol";
	}
	return "?";
}

static const drp_conf_t *conf_of(const drp_conn_t *c)
{
	return c->rt->conf;
}

bool drp_conn_closed(const drp_conn_t *c)
{
	return c->state == DRP_CONN_CLOSED;
}

static void set_timeout(drp_conn_t *c, double secs)
{
	if (c->state == DRP_CONN_CLOSED)
		return;
	c->timer_for = secs;
	ev_timer_stop(c->w->loop, &c->timer);
	ev_timer_set(&c->timer, secs, secs);
	ev_timer_start(c->w->loop, &c->timer);
}

/* Watch the client socket for ev (0: not at all). Unchanged interest
 * leaves the watcher alone: libev turns every ev_io_set into an
 * epoll_ctl, and most rounds of a request end with the same interest
 * they began with. */
static void io_want(drp_conn_t *c, int ev)
{
	if (ev != 0 && ev_is_active(&c->io) &&
	    (c->io.events & (EV_READ | EV_WRITE)) == ev)
		return;
	ev_io_stop(c->w->loop, &c->io);
	if (ev) {
		ev_io_set(&c->io, c->fd, ev);
		ev_io_start(c->w->loop, &c->io);
	}
}

static void kick(drp_conn_t *c)
{
	if (c->state != DRP_CONN_CLOSED && !ev_is_active(&c->kick)) {
		ev_timer_set(&c->kick, 0., 0.);
		ev_timer_start(c->w->loop, &c->kick);
	}
}

/* ---- access log ---- */

static void log_request(drp_conn_t *c, const char *result)
{
	if (!c->req_active)
		return;
	c->req_active = false;
	/* The clock, not the loop's time of this turn: a hit starts and
	 * ends within one turn. */
	ev_tstamp now = ev_time();
	/* An answer queued whole and not written yet counts as its first
	 * byte now; nothing queued and nothing sent: none. */
	if (c->first_byte == 0 && drp_conn_out_pending(c))
		c->first_byte = now;
	drp_access_t a = {
		.client = c->peer_str,
		.host = c->host[0] ? c->host : NULL,
		.port = c->port,
		.method = c->method,
		.path = c->path,
		.status = c->x.status,
		.bytes_in = c->bytes_in,
		.bytes_out = c->x.bytes_out,
		.duration = now - c->start,
		.up_status = c->x.up_status,
		.result = result,
		.user = c->user,
		.conn = c->id,
		.ua = c->ua,
		.first_byte = c->first_byte > 0 ? c->first_byte - c->start : -1,
		.cut = c->cut,
	};
	drp_accesslog_write(c->rt, &a);
	drp_accesslog_count(c->rt, &a);
	DRP_FREE(c->path);
	DRP_FREE(c->ua);
	c->first_byte = 0;
	c->cut = false;
}

/* ---- teardown ---- */

static void zc_drop(drp_conn_t *c);

/* The request's handler lets go of its state (once). */
static void handler_release(drp_conn_t *c)
{
	const drp_handler_t *h = c->x.h;
	if (h == NULL)
		return;
	c->x.h = NULL;
	if (h->release)
		h->release(&c->x);
	c->x.hs = NULL;
}

/* Everything a connection holds besides its memory and its runtime.
 * Idempotent: drp_conn_close runs it, and drp_conn_reap again in case
 * something was started on the connection after it closed. */
static void release_all(drp_conn_t *c)
{
	drp_worker_t *w = c->w;
	if (c->pauth_wait) {
		drp_users_wait_cancel(w->srv->users_pool, c->pauth_wait);
		c->pauth_wait = NULL;
	}
	zc_drop(c);
	handler_release(c);
	DRP_FREE(c->pp_buf);
	if (c->tconnect) {
		drp_upstream_connect_cancel(c->tconnect);
		c->tconnect = NULL;
	}
	ev_io_stop(w->loop, &c->io);
	ev_io_stop(w->loop, &c->tio);
	ev_timer_stop(w->loop, &c->timer);
	ev_timer_stop(w->loop, &c->kick);
	if (c->tfd >= 0) {
		close(c->tfd);
		c->tfd = -1;
	}
	if (c->tls) {
		if (c->tls_active)
			drp_tls_bye(c->tls);
		drp_tls_free(c->tls);
		c->tls = NULL;
		c->tls_active = false;
	}
	if (c->leaf) {
		drp_leaf_unref(c->leaf);
		c->leaf = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	drp_buf_free(&c->in);
	drp_buf_free(&c->out);
	drp_buf_free(&c->tbuf);
	DRP_FREE(c->path);
	DRP_FREE(c->repo);
	DRP_FREE(c->ua);
	DRP_FREE(c->user);
	DRP_FREE(c->pauth_user);
	DRP_FREE(c->x.realm_user);
}

void drp_conn_close(drp_conn_t *c, const char *reason)
{
	if (c->state == DRP_CONN_CLOSED)
		return;
	drp_worker_t *w = c->w;
	drp_log_debug(DRP_LOG_NET, "[c%06u] close in %s: %s", c->id,
		      drp_conn_state_str(c->state), reason);
	if (c->state == DRP_CONN_TUNNEL) {
		c->req_active = true;
		snprintf(c->method, sizeof(c->method), "CONNECT");
		c->x.status = 200;
		c->bytes_in = c->t_up;
		c->x.bytes_out = c->t_down;
		c->start = c->t_start;
		log_request(c, "TUNNEL");
	} else if (c->req_active) {
		if (c->x.status == 0)
			c->x.status = 499; /* client went away */
		log_request(c, c->x.result ? c->x.result : "PASS");
	}
	release_all(c);
	/* Callers up the stack may still look at c: it stays, CLOSED, on
	 * the closed list until the loop's turn ends. */
	c->state = DRP_CONN_CLOSED;
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = NULL;
	c->next = w->closed;
	w->closed = c;
	w->n_conns--;
	atomic_fetch_sub(&w->srv->stats.connections_open, 1);
	if (w->loop && !ev_is_active(&w->reap))
		ev_prepare_start(w->loop, &w->reap);
}

void drp_conn_reap(drp_worker_t *w)
{
	while (w->closed) {
		drp_conn_t *c = w->closed;
		w->closed = c->next;
		release_all(c);
		drp_runtime_unref(c->rt);
		free(c);
	}
	if (w->loop && ev_is_active(&w->reap))
		ev_prepare_stop(w->loop, &w->reap);
}

/* ---- client I/O ---- */

static ssize_t client_read(drp_conn_t *c, char *p, size_t len)
{
	if (c->tls_active)
		return drp_tls_read(c->tls, p, len);
	ssize_t n = recv(c->fd, p, len, 0);
	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? -EAGAIN : -errno;
	return n;
}

/*
 * State PROXY_PROTO. The socket is peeked, and only bytes the parser
 * has seen to be part of the header are consumed: those of a prefix it
 * wants more of, then exactly the rest of a complete header. So the
 * client's own first bytes stay in the socket for whatever reads next
 * (the request head, or a TLS session reading the fd), and a slow
 * balancer cannot make a level-triggered watcher spin on bytes left
 * unread. Returns 1 when the header is read, 0 to wait for more, -1 if
 * the connection was closed.
 */
static int proxy_proto_read(drp_conn_t *c)
{
	if (c->pp_buf == NULL)
		c->pp_buf = drp_malloc(DRP_PROXYPROTO_MAX);
	for (;;) {
		ssize_t n = recv(c->fd, c->pp_buf + c->pp_len,
				 DRP_PROXYPROTO_MAX - c->pp_len, MSG_PEEK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0) {
			drp_log_notice(DRP_LOG_NET,
				       "[c%06u] %s: closed before its PROXY "
				       "protocol header was complete",
				       c->id, c->peer_str);
			drp_conn_close(c, n == 0 ? "client closed"
						 : "client read failed");
			return -1;
		}
		drp_proxyproto_t pp;
		const char *why = NULL;
		drp_proxyproto_result_t r = drp_proxyproto_parse(
			c->pp_buf, c->pp_len + (size_t)n, &pp, &why);
		if (r == DRP_PROXYPROTO_DONE && pp.len <= c->pp_len)
			r = DRP_PROXYPROTO_INVALID; /* cannot happen */
		if (r == DRP_PROXYPROTO_NEED_MORE &&
		    c->pp_len + (size_t)n >= DRP_PROXYPROTO_MAX)
			r = DRP_PROXYPROTO_INVALID;
		if (r == DRP_PROXYPROTO_INVALID) {
			drp_log_notice(DRP_LOG_NET,
				       "[c%06u] %s: refused: no valid PROXY "
				       "protocol header from a proxy_protocol_"
				       "from address (%s)",
				       c->id, c->peer_str,
				       why ? why : "too long");
			drp_conn_close(c, "bad PROXY protocol header");
			return -1;
		}
		size_t take = r == DRP_PROXYPROTO_DONE ? pp.len - c->pp_len
						       : (size_t)n;
		ssize_t m;
		do
			m = recv(c->fd, c->pp_buf + c->pp_len, take, 0);
		while (m < 0 && errno == EINTR);
		if (m != (ssize_t)take) {
			drp_conn_close(c, "client read failed");
			return -1;
		}
		c->pp_len += take;
		if (r == DRP_PROXYPROTO_NEED_MORE)
			continue;
		char via[64];
		snprintf(via, sizeof(via), "%s", c->peer_str);
		if (pp.has_addrs) {
			memcpy(&c->peer, &pp.src, sizeof(c->peer));
			drp_sockaddr_ip_str((const struct sockaddr *)&c->peer,
					    c->peer_str, sizeof(c->peer_str));
			drp_log_debug(DRP_LOG_NET,
				      "[c%06u] PROXY v%u header from %s: "
				      "client %s",
				      c->id, pp.version, via, c->peer_str);
		} else {
			/* LOCAL (a health check) or UNKNOWN: the balancer
			 * speaks for itself and is policed as itself. */
			drp_log_debug(DRP_LOG_NET,
				      "[c%06u] PROXY v%u header from %s "
				      "without a client address",
				      c->id, pp.version, via);
		}
		DRP_FREE(c->pp_buf);
		c->state = c->pp_next;
		set_timeout(c, c->state == DRP_CONN_TLS_HANDSHAKE
				       ? conf_of(c)->handshake_timeout
				       : conf_of(c)->header_timeout);
		return 1;
	}
}

/* Returns 0, or -1 if the connection was closed. */
static void zc_drop(drp_conn_t *c)
{
	void (*release)(void *) = c->zc_release;
	void *arg = c->zc_arg;
	c->zc = NULL;
	c->zc_len = 0;
	c->zc_release = NULL;
	c->zc_arg = NULL;
	if (release)
		release(arg);
}

static void send_ref(drp_conn_t *c, const char *p, size_t len,
		     void (*release)(void *arg), void *arg)
{
	if (drp_conn_out_pending(c)) {
		/* Misuse (they would overtake what is queued): copy. */
		drp_buf_append(&c->out, p, len);
		if (release)
			release(arg);
		return;
	}
	c->zc = p;
	c->zc_len = len;
	c->zc_release = release;
	c->zc_arg = arg;
}

static int client_flush(drp_conn_t *c, bool *progress)
{
	if (c->req_active && c->first_byte == 0 && drp_conn_out_pending(c))
		c->first_byte = ev_now(c->w->loop);
	/* What the TLS layer holds goes first, then bytes by reference
	 * (queued when out was empty, so whatever is in out came after). */
	if (c->tls_active && drp_tls_out_pending(c->tls)) {
		int r = drp_tls_flush(c->tls);
		if (r == -EAGAIN)
			return 0;
		if (r < 0) {
			drp_conn_close(c, "client write failed");
			return -1;
		}
		*progress = true;
	}
	while (drp_buf_pending(&c->out) > 0 || c->zc_len > 0) {
		bool ref = c->zc_len > 0;
		const char *p = ref ? c->zc : drp_buf_head(&c->out);
		size_t len = ref ? c->zc_len : drp_buf_pending(&c->out);
		ssize_t n;
		if (c->tls_active && ref) {
			/* p is a mapped file: a page that cannot be read
			 * faults, and the session is left half-way. */
			if (drp_tls_write_mapped(c->tls, p, len, &n) < 0) {
				drp_log_err(DRP_LOG_CACHE,
					    "[c%06u] %s: reading a mapped "
					    "body failed (I/O error)",
					    c->id, c->peer_str);
				c->tls_active = false; /* no close_notify */
				drp_conn_close(c, "mapped read failed");
				return -1;
			}
		} else if (c->tls_active) {
			n = drp_tls_write(c->tls, p, len);
		} else {
			n = send(c->fd, p, len, MSG_NOSIGNAL);
			if (n < 0)
				n = (errno == EAGAIN || errno == EINTR)
					    ? -EAGAIN
					    : -errno;
		}
		if (n == -EAGAIN)
			return 0;
		if (n < 0) {
			drp_conn_close(c, "client write failed");
			return -1;
		}
		*progress = true;
		c->written += (uint64_t)n;
		if (ref) {
			c->zc += n;
			c->zc_len -= (size_t)n;
			if (c->zc_len == 0)
				zc_drop(c);
		} else {
			drp_buf_consume(&c->out, (size_t)n);
		}
		if (c->tls_active && drp_tls_out_pending(c->tls))
			return 0; /* the socket is full */
	}
	return 0;
}

/* ---- local responses ---- */

static void respond(drp_conn_t *c, int status, const char *ctype,
		    const char *body, size_t len, bool close_after)
{
	c->x.status = status;
	drp_buf_printf(
		&c->out,
		"HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
		"Content-Length: %zu\r\nCache-Control: no-store\r\n%s\r\n",
		status, drp_http_reason(status), ctype, len,
		close_after ? "Connection: close\r\n" : "");
	if (!c->x.head)
		drp_buf_append(&c->out, body, len);
	c->x.bytes_out = c->x.head ? 0 : len;
	if (close_after)
		c->x.close_after = true;
}

static void respond_error(drp_conn_t *c, int status, bool close_after,
			  const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void respond_error(drp_conn_t *c, int status, bool close_after,
			  const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(msg) - 2)
		n = sizeof(msg) - 2;
	msg[n++] = '\n';
	respond(c, status, "text/plain; charset=utf-8", msg, (size_t)n,
		close_after);
}

/* The request is answered: log it and get ready for the next one. */
static void request_done(drp_conn_t *c, const char *result)
{
	if (c->state == DRP_CONN_CLOSED)
		return;
	log_request(c, result);
	handler_release(c);
	DRP_FREE(c->repo);
	c->x.repo = NULL;
	DRP_FREE(c->x.realm_user);
	c->x.user = c->user;
	c->requests++;
	c->x.head_sent = false;
	c->x.head = false;
	if (c->x.close_after || c->draining ||
	    (c->client_eof && drp_buf_pending(&c->in) == 0)) {
		c->state = DRP_CONN_FLUSH_CLOSE;
		set_timeout(c, conf_of(c)->body_timeout);
		return;
	}
	c->state = c->intercepted ? DRP_CONN_HEAD : DRP_CONN_PROXY_HEAD;
	/* A pipelined request may already be (partly) buffered: its head
	 * has header_timeout from now. */
	c->idle = drp_buf_pending(&c->in) == 0;
	set_timeout(c, c->idle ? conf_of(c)->idle_timeout
			       : conf_of(c)->header_timeout);
	kick(c);
}

static void conn_abort(drp_conn_t *c, const char *reason)
{
	if (c->state == DRP_CONN_CLOSED)
		return;
	if (c->req_active) {
		/* Its access-log line shows a status the client never saw
		 * through: say here what became of it. */
		c->cut = true;
		drp_log_notice(DRP_LOG_PROXY,
			       "[c%06u] %s: %s %s%s: connection reset after "
			       "%llu body bytes: %s",
			       c->id, c->peer_str, c->method, c->host,
			       c->path ? c->path : "",
			       (unsigned long long)c->x.bytes_out, reason);
	}
	/* SO_LINGER 0: close sends RST, so the client cannot mistake the
	 * cut for a complete response. */
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	if (c->tls)
		c->tls_active = false; /* no close_notify either */
	drp_conn_close(c, reason);
}

/* ---- request dispatch ---- */

static bool name_is(const drp_http_header_t *h, const char *name)
{
	size_t n = strlen(name);
	return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

/* Header lines to forward upstream (hop-by-hop, Host and framing
 * removed). */
static void forward_headers(const drp_http_msg_t *req, drp_buf_t *out)
{
	for (size_t i = 0; i < req->num_headers; i++) {
		const drp_http_header_t *h = &req->headers[i];
		if (drp_http_is_hop_by_hop(req, h) || name_is(h, "Host") ||
		    name_is(h, "Content-Length") || name_is(h, "Expect"))
			continue;
		drp_buf_append(out, h->name, h->name_len);
		drp_buf_append(out, ": ", 2);
		drp_buf_append(out, h->value, h->value_len);
		drp_buf_append(out, "\r\n", 2);
	}
}

static void start_fetch(drp_conn_t *c, const drp_http_msg_t *req, bool tls,
			const char *host, uint16_t port, const char *target,
			size_t target_len, bool follow)
{
	enum drp_http_body_mode mode;
	uint64_t len;
	if (drp_http_request_framing(req, &mode, &len) < 0) {
		respond_error(c, 400, true, "invalid request framing");
		request_done(c, "PASS");
		return;
	}
	drp_buf_t hdr = {0};
	forward_headers(req, &hdr);
	char *tgt = drp_strndup(target, target_len);
	drp_fetch_req_t fr = {
		.tls = tls,
		.host = host,
		.port = port,
		.method = c->method,
		.target = tgt,
		.headers = drp_buf_head(&hdr),
		.headers_len = drp_buf_pending(&hdr),
		.body_mode = mode,
		.body_len = len,
		.follow_redirects = follow,
		.conn_id = c->id,
	};
	drp_http_body_init(&c->reqbody, mode, len);
	c->req_body_done = mode == DRP_HTTP_BODY_NONE ||
			   (mode == DRP_HTTP_BODY_LENGTH && len == 0);
	if (!c->req_body_done &&
	    drp_http_has_token(req, "Expect", "100-continue"))
		drp_buf_append(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	set_timeout(c, conf_of(c)->body_timeout);
	drp_pass_start(&c->x, &fr, tls, c->is_ping);
	free(tgt);
	drp_buf_free(&hdr);
}

static void pass(drp_conn_t *c, const char *method, const char *target,
		 const char *headers, size_t headers_len, bool follow)
{
	if (c->state == DRP_CONN_CLOSED)
		return;
	drp_fetch_req_t fr = {
		.tls = true,
		.host = c->host,
		.port = c->port,
		.method = method,
		.target = target,
		.headers = headers,
		.headers_len = headers_len,
		.body_mode = DRP_HTTP_BODY_NONE,
		.follow_redirects = follow,
		.conn_id = c->id,
	};
	c->req_body_done = true;
	set_timeout(c, conf_of(c)->body_timeout);
	drp_pass_start(&c->x, &fr, true, c->is_ping);
}

/* ---- the exchange: what handlers see of the connection ---- */

#define CONN_OF(x) DRP_CONTAINER_OF(x, drp_conn_t, x)
#define CONST_CONN_OF(x)                                                       \
	((const drp_conn_t *)((const char *)(x)-offsetof(drp_conn_t, x)))

static bool x_pending(const drp_exch_t *x)
{
	return drp_conn_out_pending(CONST_CONN_OF(x));
}

static void x_send_ref(drp_exch_t *x, const char *p, size_t len,
		       void (*release)(void *arg), void *arg)
{
	send_ref(CONN_OF(x), p, len, release, arg);
}

static void x_async(drp_exch_t *x)
{
	drp_conn_t *c = CONN_OF(x);
	if (c->state == DRP_CONN_CLOSED)
		return;
	/* A handler without body operations reads no request body. */
	if (c->x.h == NULL || c->x.h->body == NULL)
		c->req_body_done = true;
	c->state = DRP_CONN_EXCHANGE;
}

static void x_kick(drp_exch_t *x)
{
	kick(CONN_OF(x));
}

static void x_done(drp_exch_t *x, const char *result)
{
	drp_conn_t *c = CONN_OF(x);
	if (!c->req_body_done)
		c->x.close_after = true; /* unread request body */
	request_done(c, result);
	kick(c);
}

static void x_error(drp_exch_t *x, int status, bool close_after,
		    const char *msg)
{
	drp_conn_t *c = CONN_OF(x);
	/* An unread request body cannot be followed by another request. */
	respond_error(c, status, close_after || !c->req_body_done, "%s", msg);
}

static void x_abort(drp_exch_t *x, const char *reason)
{
	conn_abort(CONN_OF(x), reason);
}

static void x_close(drp_exch_t *x, const char *reason)
{
	CONN_OF(x)->cut = true;
	drp_conn_close(CONN_OF(x), reason);
}

static void x_pass(drp_exch_t *x, const char *method, const char *target,
		   const char *headers, size_t headers_len, bool follow)
{
	pass(CONN_OF(x), method, target, headers, headers_len, follow);
}

static bool x_closed(const drp_exch_t *x)
{
	return CONST_CONN_OF(x)->state == DRP_CONN_CLOSED;
}

static const drp_exch_ops_t exch_ops = {
	.pending = x_pending,
	.send_ref = x_send_ref,
	.async = x_async,
	.kick = x_kick,
	.done = x_done,
	.error = x_error,
	.abort = x_abort,
	.close = x_close,
	.pass = x_pass,
	.closed = x_closed,
};

/* The request's facts as its handlers read them. */
static void exch_begin(drp_conn_t *c)
{
	drp_exch_t *x = &c->x;
	x->host = c->host;
	x->port = c->port;
	x->user = c->user;
	x->method = c->method;
	x->path = c->path;
	x->repo = c->repo;
	x->draining = c->draining;
	x->mirror = c->mirror;
	x->mirror_origin = c->mirror ? c->mirror_origin : NULL;
}

static bool is_intercepted(const drp_conn_t *c, const char *host, uint16_t port)
{
	return drp_runtime_intercepts(c->rt, host, port);
}

/* ---- proxy users ---- */

static void respond_407(drp_conn_t *c, const char *msg)
{
	size_t len = strlen(msg);
	c->x.status = 407;
	drp_buf_printf(&c->out,
		       "HTTP/1.1 407 Proxy Authentication Required\r\n"
		       "Proxy-Authenticate: Basic realm=\"" DRP_USERS_REALM
		       "\"\r\nContent-Type: text/plain; charset=utf-8\r\n"
		       "Content-Length: %zu\r\nCache-Control: no-store\r\n"
		       "%s\r\n",
		       len + 1,
		       c->x.close_after ? "Connection: close\r\n" : "");
	if (!c->x.head) {
		drp_buf_append(&c->out, msg, len);
		drp_buf_append(&c->out, "\n", 1);
	}
	c->x.bytes_out = c->x.head ? 0 : len + 1;
}

/* The verifier threads judged the Proxy-Authorization of the request
 * still in c->in: dispatch it again with the verdict. */
static void pauth_cb(void *arg, int verdict, const char *user)
{
	drp_conn_t *c = arg;
	c->pauth_wait = NULL;
	c->pauth_ready = true;
	c->pauth_verdict = verdict;
	free(c->pauth_user);
	c->pauth_user = user ? drp_strdup(user) : NULL;
	c->state = DRP_CONN_PROXY_HEAD;
	kick(c);
}

/*
 * Who the client of a CONNECT or absolute-form request is ([proxy]
 * users_file): sets c->user and returns true to go on (also for an
 * anonymous client when require_users is off); false if answered (407,
 * 503) or waiting for a verification (state PROXY_AUTH).
 */
static bool proxy_auth(drp_conn_t *c, const drp_http_msg_t *req)
{
	drp_users_t *u = drp_auth_users(c->rt->auth);
	bool ready = c->pauth_ready;
	c->pauth_ready = false;
	DRP_FREE(c->user);
	if (u == NULL)
		return true;
	const drp_http_header_t *h = drp_http_find(req, "Proxy-Authorization");
	if (h == NULL) {
		if (!conf_of(c)->require_users)
			return true;
		atomic_fetch_add(&c->w->srv->stats.refused, 1);
		drp_log_info(DRP_LOG_PROXY,
			     "[c%06u] %s: %s without proxy credentials: 407",
			     c->id, c->peer_str, c->method);
		respond_407(c, "this proxy needs a user name and password "
			       "(e.g. HTTPS_PROXY=http://USER:PASSWORD@proxy)");
		return false;
	}
	char *value = drp_strndup(h->value, h->value_len);
	uint8_t key[32];
	drp_users_key(value, strlen(value), key);
	char *user = NULL;
	int v;
	if (ready && memcmp(key, c->pauth_key, sizeof(key)) == 0) {
		v = c->pauth_verdict;
		user = c->pauth_user;
		c->pauth_user = NULL;
	} else {
		v = drp_users_check(c->w->srv->users_pool, u, c->w->loop,
				    (const struct sockaddr *)&c->peer, value,
				    &user, pauth_cb, c, &c->pauth_wait);
	}
	DRP_FREE(c->pauth_user);
	explicit_bzero(value, strlen(value));
	free(value);
	switch (v) {
	case 0:
		c->user = user;
		return true;
	case -EINPROGRESS:
		memcpy(c->pauth_key, key, sizeof(key));
		c->state = DRP_CONN_PROXY_AUTH;
		set_timeout(c, conf_of(c)->header_timeout);
		return false;
	case -EBUSY:
		drp_log_warning(DRP_LOG_PROXY,
				"[c%06u] %s: too many proxy passwords being "
				"verified; 503",
				c->id, c->peer_str);
		respond_error(c, 503, false,
			      "too many proxy logins at once; retry");
		return false;
	default:
		atomic_fetch_add(&c->w->srv->stats.refused, 1);
		drp_log_notice(DRP_LOG_PROXY,
			       "[c%06u] %s: proxy user '%s' refused: %s", c->id,
			       c->peer_str, user ? user : "?",
			       v == -ENOENT ? "no such user"
			       : v == -EACCES
				       ? "wrong password"
				       : "malformed Proxy-Authorization");
		free(user);
		respond_407(c, "wrong proxy user name or password");
		return false;
	}
}

static void tunnel_begin(drp_conn_t *c);

static void handle_connect(drp_conn_t *c, const drp_http_msg_t *req)
{
	bool is_ip;
	if (drp_uri_parse_authority(req->target, req->target_len, c->host,
				    &c->port, &is_ip) < 0) {
		c->host[0] = '\0';
		respond_error(c, 400, true,
			      "malformed CONNECT target (expected host:port)");
		return;
	}
	if (!proxy_auth(c, req))
		return;
	if (is_intercepted(c, c->host, c->port)) {
		c->leaf = drp_forge_get(c->w->srv->forge, c->host);
		if (c->leaf == NULL) {
			respond_error(c, 500, true,
				      "cannot forge a certificate for %s",
				      c->host);
			return;
		}
		c->intercepted = true;
		c->x.status = 200;
		drp_buf_printf(&c->out,
			       "HTTP/1.1 200 Connection established\r\n\r\n");
		/* Anything the client sent behind CONNECT is its TLS
		 * ClientHello: hand it to the handshake. */
		drp_buf_consume(&c->in, req->head_len);
		c->head_scanned = 0;
		c->tls = drp_tls_server_new(c->fd, c->leaf->cred);
		if (c->tls == NULL) {
			drp_conn_close(c, "TLS session setup failed");
			return;
		}
		drp_tls_set_prefix(c->tls, drp_buf_head(&c->in),
				   drp_buf_pending(&c->in));
		c->req_active = false;
		DRP_FREE(c->path);
		c->state = DRP_CONN_TLS_HANDSHAKE;
		set_timeout(c, conf_of(c)->handshake_timeout);
		return;
	}
	const drp_conf_t *conf = conf_of(c);
	bool port_ok = false;
	for (unsigned i = 0; i < conf->n_tunnel_ports; i++)
		if (conf->tunnel_ports[i] == c->port)
			port_ok = true;
	if (!port_ok) {
		atomic_fetch_add(&c->w->srv->stats.refused, 1);
		drp_log_notice(DRP_LOG_PROXY,
			       "[c%06u] %s: CONNECT %s:%u refused: port not in "
			       "tunnel_ports",
			       c->id, c->peer_str, c->host, c->port);
		respond_error(c, 403, true,
			      "CONNECT to port %u is not allowed by this proxy",
			      c->port);
		return;
	}
	drp_buf_consume(&c->in, req->head_len);
	c->head_scanned = 0;
	tunnel_begin(c);
}

static void handle_local(drp_conn_t *c, const drp_http_msg_t *req,
			 const char *path, size_t path_len)
{
	if (!drp_http_method_is(req, "GET") &&
	    !drp_http_method_is(req, "HEAD")) {
		respond_error(c, 405, false, "method not allowed here");
		return;
	}
	const drp_http_header_t *h = drp_http_find(req, "Host");
	char hostbuf[300] = "";
	if (h && h->value_len < sizeof(hostbuf)) {
		memcpy(hostbuf, h->value, h->value_len);
		hostbuf[h->value_len] = '\0';
	}
	drp_local_response_t r = {0};
	if (drp_local_answer(c->w->srv, path, path_len, hostbuf, false, &r) <
	    0) {
		respond_error(
			c, 404, false,
			"not found: this is docker-registry-proxy; use it "
			"as an HTTP(S) proxy, or GET /ca.crt, "
			"/setup/systemd, /healthz");
		return;
	}
	respond(c, r.status, r.content_type, r.body, r.len, false);
	drp_local_response_free(&r);
}

static void copy_path(drp_conn_t *c, const char *p, size_t len)
{
	free(c->path);
	c->path = drp_strndup(p, drp_uri_path_len(p, len));
}

/* A registry API request, intercepted or to the mirror (c->host and
 * c->port name the registry): the auth layer first, then the cache, else
 * the upstream. */
static void serve_registry(drp_conn_t *c, const drp_http_msg_t *req,
			   const char *target, size_t target_len)
{
	drp_route_t route;
	if (drp_route_classify(target, target_len, &route) < 0) {
		respond_error(c, 400, false,
			      "invalid repository name or digest");
		return;
	}
	DRP_FREE(c->repo);
	if (route.name_len > 0)
		c->repo = drp_strndup(route.name, route.name_len);
	exch_begin(c);
	if (drp_auth_intercept(&c->x, req, &route))
		return;
	bool get_or_head = drp_http_method_is(req, "GET") || c->x.head;
	c->is_ping = get_or_head && route.kind == DRP_ROUTE_PING;
	enum drp_http_body_mode bmode;
	uint64_t blen;
	bool no_body = drp_http_request_framing(req, &bmode, &blen) == 0 &&
		       (bmode == DRP_HTTP_BODY_NONE ||
			(bmode == DRP_HTTP_BODY_LENGTH && blen == 0));
	if (get_or_head && no_body &&
	    (route.kind == DRP_ROUTE_BLOB ||
	     route.kind == DRP_ROUTE_MANIFEST_TAG ||
	     route.kind == DRP_ROUTE_MANIFEST_DIGEST)) {
		c->req_body_done = true;
		drp_buf_t hdr = {0};
		forward_headers(req, &hdr);
		bool taken = drp_cached_dispatch(&c->x, req, &route, target,
						 target_len, drp_buf_head(&hdr),
						 drp_buf_pending(&hdr));
		drp_buf_free(&hdr);
		if (taken)
			return;
	}
	bool follow = route.kind == DRP_ROUTE_BLOB && get_or_head;
	start_fetch(c, req, true, c->host, c->port, target, target_len, follow);
}

/* The mirror's origin as this client reached it (its Host, else our
 * address), for the realm of the challenges it gets. */
static void set_mirror_origin(drp_conn_t *c, const drp_http_msg_t *req)
{
	const char *scheme = c->mirror_tls ? "https" : "http";
	const drp_http_header_t *h = drp_http_find(req, "Host");
	char host[DRP_HOST_MAX + 1];
	uint16_t port = 0;
	if (h != NULL && drp_uri_parse_host_header(h->value, h->value_len, host,
						   &port) == 0) {
		bool v6 = strchr(host, ':') != NULL;
		int n = snprintf(c->mirror_origin, sizeof(c->mirror_origin),
				 "%s://%s%s%s", scheme, v6 ? "[" : "", host,
				 v6 ? "]" : "");
		if (port != 0 && n > 0)
			snprintf(c->mirror_origin + n,
				 sizeof(c->mirror_origin) - (size_t)n, ":%u",
				 port);
		return;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char addr[80] = "localhost";
	if (getsockname(c->fd, (struct sockaddr *)&ss, &sl) == 0)
		drp_sockaddr_str((struct sockaddr *)&ss, addr, sizeof(addr));
	snprintf(c->mirror_origin, sizeof(c->mirror_origin), "%s://%s", scheme,
		 addr);
}

/* An origin-form request to the proxy itself: a registry mirror request
 * (proxy/mirror.h) is served like an intercepted one, for the registry it
 * names. False: not a mirror path (the proxy's own endpoints). */
static bool mirror_dispatch(drp_conn_t *c, const drp_http_msg_t *req)
{
	drp_mirror_target_t m;
	int r = drp_mirror_map(req->target, req->target_len, &m);
	if (r == -ENOENT)
		return false;
	if (r < 0) {
		drp_log_notice(DRP_LOG_PROXY,
			       "[c%06u] %s: mirror request %s: no registry "
			       "in its ns parameter or path prefix: 400",
			       c->id, c->peer_str, c->path);
		respond_error(c, 400, false,
			      "malformed registry name (ns parameter or path "
			      "prefix)");
		return true;
	}
	snprintf(c->host, sizeof(c->host), "%s", m.host);
	c->port = m.port;
	copy_path(c, m.target, m.target_len);
	if (!drp_server_intercepts(conf_of(c), m.host, m.port)) {
		/* A mirror is no open proxy to any host. */
		atomic_fetch_add(&c->w->srv->stats.refused, 1);
		drp_log_notice(DRP_LOG_PROXY,
			       "[c%06u] %s: mirror request for %s refused: "
			       "not one of the proxy's registries",
			       c->id, c->peer_str, m.registry);
		respond_error(c, 403, false, "this mirror does not serve %s",
			      m.registry);
	} else if (!m.realm && !drp_http_method_is(req, "GET") && !c->x.head) {
		respond_error(c, 405, true,
			      "the registry mirror serves pulls only (GET, "
			      "HEAD)");
	} else {
		c->mirror = true;
		set_mirror_origin(c, req);
		serve_registry(c, req, m.target, m.target_len);
	}
	drp_mirror_target_free(&m);
	return true;
}

/* Each request is served under the configuration in force when it
 * starts: a reload (SIGHUP) applies to the next request of a connection
 * opened before it, while the request under way keeps its own. */
static void refresh_runtime(drp_conn_t *c)
{
	drp_runtime_t *rt = drp_server_runtime_get(c->w->srv);
	if (rt == c->rt) {
		drp_runtime_unref(rt);
		return;
	}
	drp_runtime_unref(c->rt);
	c->rt = rt;
	c->x.rt = rt;
}

static void dispatch(drp_conn_t *c, const drp_http_msg_t *req)
{
	refresh_runtime(c);
	const drp_conf_t *conf = conf_of(c);
	c->req_active = true;
	/* A request dispatched again after its password check keeps its
	 * start. */
	if (!c->pauth_ready)
		c->start = ev_now(c->w->loop);
	c->x.status = 0;
	c->x.up_status = 0;
	c->bytes_in = 0;
	c->x.bytes_out = 0;
	c->x.close_after = req->minor_version == 0 ||
			   drp_http_has_token(req, "Connection", "close");
	size_t ml = req->method_len < sizeof(c->method) - 1
			    ? req->method_len
			    : sizeof(c->method) - 1;
	memcpy(c->method, req->method, ml);
	c->method[ml] = '\0';
	c->x.head = drp_http_method_is(req, "HEAD");
	c->is_ping = false;
	c->mirror = false;
	c->x.result = "PASS";
	c->first_byte = 0;
	c->cut = false;
	const drp_http_header_t *ua = drp_http_find(req, "User-Agent");
	free(c->ua);
	c->ua = ua ? drp_strndup(ua->value,
				 ua->value_len < 256 ? ua->value_len : 256)
		   : NULL;

	/* Inside an interception too: allow may have changed since the
	 * CONNECT. */
	if (!drp_cidr_list_match(conf->allow, conf->n_allow,
				 (struct sockaddr *)&c->peer)) {
		atomic_fetch_add(&c->w->srv->stats.refused, 1);
		drp_log_notice(DRP_LOG_PROXY,
			       "[c%06u] %s: refused: client not in allow",
			       c->id, c->peer_str);
		if (c->state == DRP_CONN_HEAD)
			copy_path(c, req->target, req->target_len);
		else
			copy_path(c, "-", 1);
		respond_error(c, 403, true,
			      "this proxy does not serve your address");
		return;
	}
	if (c->state == DRP_CONN_PROXY_HEAD) {
		bool origin_form = req->target_len > 0 && req->target[0] == '/';
		if (c->mirror_tls && !origin_form) {
			copy_path(c, "-", 1);
			respond_error(c, 400, true,
				      "this port serves the registry mirror "
				      "only: not a proxy");
			return;
		}
		if (drp_http_method_is(req, "CONNECT")) {
			copy_path(c, "-", 1);
			handle_connect(c, req);
			return;
		}
		if (origin_form) {
			c->host[0] = '\0';
			c->port = 0;
			copy_path(c, req->target, req->target_len);
			if (conf->mirror && mirror_dispatch(c, req))
				return;
			c->host[0] = '\0';
			handle_local(c, req, c->path, strlen(c->path));
			return;
		}
		const char *path;
		size_t plen;
		uint16_t port;
		char host[DRP_HOST_MAX + 1];
		int r = drp_uri_parse_absolute(req->target, req->target_len,
					       host, &port, &path, &plen);
		if (r < 0) {
			copy_path(c, "-", 1);
			respond_error(c, 400, true, "%s",
				      r == -EPROTONOSUPPORT
					      ? "only http:// URLs can be "
						"proxied directly; use CONNECT "
						"for https"
					      : "malformed request target");
			return;
		}
		snprintf(c->host, sizeof(c->host), "%s", host);
		c->port = port;
		copy_path(c, path, plen);
		if (!proxy_auth(c, req))
			return;
		bool port_ok = port == 80;
		for (unsigned i = 0; i < conf->n_tunnel_ports; i++)
			if (conf->tunnel_ports[i] == port)
				port_ok = true;
		if (!port_ok) {
			atomic_fetch_add(&c->w->srv->stats.refused, 1);
			respond_error(c, 403, true,
				      "port %u is not allowed by this proxy",
				      port);
			return;
		}
		exch_begin(c); /* the facts its failure is logged with */
		start_fetch(c, req, false, host, port, path, plen, false);
		return;
	}

	/* Inside an intercepted tunnel. */
	const drp_http_header_t *hh = drp_http_find(req, "Host");
	char hhost[DRP_HOST_MAX + 1];
	uint16_t hport;
	const char *target = req->target;
	size_t target_len = req->target_len;
	if (target_len > 8 && strncasecmp(target, "https://", 8) == 0) {
		/* absolute-form inside the tunnel: reduce to origin-form */
		const char *slash = memchr(target + 8, '/', target_len - 8);
		if (slash == NULL) {
			target = "/";
			target_len = 1;
		} else {
			target_len -= (size_t)(slash - target);
			target = slash;
		}
	}
	copy_path(c, target, target_len);
	if (target_len == 0 || target[0] != '/') {
		respond_error(c, 400, true, "malformed request target");
		return;
	}
	if (hh == NULL) {
		respond_error(c, 400, true, "missing Host header");
		return;
	}
	if (drp_uri_parse_host_header(hh->value, hh->value_len, hhost, &hport) <
		    0 ||
	    strcmp(hhost, c->host) != 0 || c->sni_mismatch) {
		drp_log_notice(DRP_LOG_PROXY,
			       "[c%06u] %s: Host/SNI does not match CONNECT "
			       "%s",
			       c->id, c->peer_str, c->host);
		respond_error(c, 421, true,
			      "this connection serves only %s (CONNECT)",
			      c->host);
		return;
	}
	serve_registry(c, req, target, target_len);
}

/* Try to parse and start the next request. Returns true on progress. */
static bool try_request(drp_conn_t *c)
{
	if (drp_buf_pending(&c->in) == 0)
		return false;
	const drp_conf_t *conf = conf_of(c);
	drp_http_msg_t req;
	/* Only the bytes that arrived since the last incomplete parse are
	 * scanned for the end of the head: a client that trickles its head
	 * in byte by byte costs linear, not quadratic, time. */
	size_t prev = c->head_scanned;
	if (prev > drp_buf_pending(&c->in))
		prev = 0;
	ssize_t r = drp_http_parse_request_more(drp_buf_head(&c->in),
						drp_buf_pending(&c->in), prev,
						conf->max_header_size, &req);
	if (r == DRP_HTTP_INCOMPLETE) {
		if (drp_buf_pending(&c->in) > conf->max_header_size) {
			r = -E2BIG;
		} else {
			c->head_scanned = drp_buf_pending(&c->in);
			return false;
		}
	}
	c->head_scanned = 0;
	if (r < 0) {
		c->req_active = true;
		c->start = ev_now(c->w->loop);
		snprintf(c->method, sizeof(c->method), "-");
		copy_path(c, "-", 1);
		int st = r == -E2BIG ? 431 : r == -EPROTONOSUPPORT ? 505 : 400;
		drp_log_notice(DRP_LOG_HTTP, "[c%06u] %s: bad request (%d)",
			       c->id, c->peer_str, st);
		respond_error(c, st, true, "%s",
			      st == 431	  ? "request header fields too large"
			      : st == 505 ? "HTTP version not supported"
					  : "malformed request");
		drp_buf_reset(&c->in);
		request_done(c, "PASS");
		return true;
	}
	enum drp_conn_state before = c->state;
	dispatch(c, &req);
	if (c->state == DRP_CONN_CLOSED)
		return true;
	/* CONNECT consumed its own head (the rest may be TLS bytes). */
	if (before == c->state || c->state == DRP_CONN_EXCHANGE)
		drp_buf_consume(&c->in, (size_t)r);
	if (c->state == before && c->req_active && c->x.h == NULL)
		request_done(c, "PASS");
	return true;
}

/* Move request-body bytes from the client to the fetch. */
static bool pump_request_body(drp_conn_t *c)
{
	bool progress = false;
	const drp_handler_t *h = c->x.h;
	while (!c->req_body_done && h && h->body &&
	       drp_buf_pending(&c->in) > 0) {
		size_t room = h->body_room(&c->x);
		if (room == 0)
			break;
		size_t avail = drp_buf_pending(&c->in);
		const char *data;
		size_t dlen;
		ssize_t n = drp_http_body_feed(
			&c->reqbody, drp_buf_head(&c->in),
			avail < room ? avail : room, &data, &dlen);
		if (n < 0) {
			/* Bad size, bare LF, oversized extension or trailers:
			 * nothing after it can be framed, so the request ends
			 * here (400) and so does the connection. */
			drp_log_notice(DRP_LOG_HTTP,
				       "[c%06u] %s: %s %s%s: malformed chunked "
				       "request body: %s",
				       c->id, c->peer_str, c->method, c->host,
				       c->path ? c->path : "",
				       c->x.head_sent ? "reset" : "400");
			bool cut = c->x.head_sent;
			handler_release(c);
			if (cut) {
				conn_abort(c, "malformed chunked request "
					      "body");
				return false;
			}
			drp_buf_reset(&c->in);
			c->head_scanned = 0;
			c->req_body_done = true;
			respond_error(c, 400, true,
				      "malformed chunked request body");
			request_done(c, "PASS");
			return true;
		}
		if (dlen) {
			h->body(&c->x, data, dlen);
			c->bytes_in += dlen;
		}
		drp_buf_consume(&c->in, (size_t)n);
		c->head_scanned = 0;
		if (n > 0 || dlen > 0)
			progress = true;
		if (c->reqbody.done) {
			c->req_body_done = true;
			h->body_end(&c->x);
		}
		if (n == 0 && dlen == 0)
			break;
	}
	return progress;
}

static bool want_read(const drp_conn_t *c)
{
	if (c->client_eof)
		return false;
	switch (c->state) {
	case DRP_CONN_PROXY_HEAD:
	case DRP_CONN_HEAD:
		return drp_buf_pending(&c->in) <= conf_of(c)->max_header_size;
	case DRP_CONN_EXCHANGE:
		/* Request body, or (pipelining) the next head, bounded. */
		if (!c->req_body_done)
			return drp_buf_pending(&c->in) < IN_BODY_HIGH;
		return drp_buf_pending(&c->in) < 8192;
	default:
		return false;
	}
}

/* After a response that ends the connection: shut our side, then read
 * and drop what the client still sends (the rest of a refused request)
 * until it closes, at most LINGER_BYTES or LINGER_SECS. Closing with
 * unread bytes would reset the connection, and a reset can destroy the
 * response before the client has read it. False: closed. */
#define LINGER_SECS  2.0
#define LINGER_BYTES (4 * 1024 * 1024)

static void linger_read(drp_conn_t *c);

static bool start_linger(drp_conn_t *c)
{
	if (c->client_eof) {
		drp_conn_close(c, "closed after response");
		return false;
	}
	if (c->tls_active) {
		drp_tls_bye(c->tls); /* close_notify, best effort */
		c->tls_active = false;
	}
	if (shutdown(c->fd, SHUT_WR) < 0) {
		drp_conn_close(c, "closed after response");
		return false;
	}
	c->state = DRP_CONN_LINGER;
	c->lingered = 0;
	set_timeout(c, LINGER_SECS);
	return true;
}

static void linger_read(drp_conn_t *c)
{
	char buf[16384];
	for (;;) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
		if (n > 0) {
			c->lingered += (size_t)n;
			if (c->lingered > LINGER_BYTES) {
				drp_conn_close(c, "closed after response "
						  "(client kept sending)");
				return;
			}
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		drp_conn_close(c, "closed after response");
		return;
	}
	ev_io_stop(c->w->loop, &c->io);
	ev_io_set(&c->io, c->fd, EV_READ);
	ev_io_start(c->w->loop, &c->io);
}

/*
 * A client's TLS handshake with the forged certificate failed or timed
 * out: an access-log line for the CONNECT (result TLS_ERROR), and in the
 * daemon log what to do about it. The usual cause is a client that does
 * not trust the proxy's CA: it says so (a certificate alert), or just
 * closes the connection.
 */
static void tls_failed(drp_conn_t *c, bool timeout)
{
	enum drp_tls_fail kind =
		timeout ? DRP_TLS_FAIL_PROTOCOL : drp_tls_fail_kind(c->tls);
	char self[80] = "PROXY:3128";
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(c->fd, (struct sockaddr *)&ss, &sl) == 0)
		drp_sockaddr_str((struct sockaddr *)&ss, self, sizeof(self));
	if (timeout) {
		drp_metrics_tls_failure(DRP_MTLS_CLIENT, DRP_MTLS_TIMEOUT);
		drp_log_notice(DRP_LOG_TLS,
			       "[c%06u] %s: TLS handshake for %s timed out",
			       c->id, c->peer_str, c->host);
	} else if (kind == DRP_TLS_FAIL_CERTIFICATE) {
		drp_metrics_tls_failure(DRP_MTLS_CLIENT, DRP_MTLS_CERTIFICATE);
		drp_log_warning(DRP_LOG_TLS,
				"[c%06u] %s: the client rejected the "
				"certificate forged for %s: it does not trust "
				"this proxy's CA. Install http://%s/ca.crt as "
				"a trusted CA on it (Docker and containerd "
				"hosts: curl http://%s/setup/systemd | sh)",
				c->id, c->peer_str, c->host, self, self);
	} else if (kind == DRP_TLS_FAIL_CLOSED) {
		drp_metrics_tls_failure(DRP_MTLS_CLIENT, DRP_MTLS_PROTOCOL);
		drp_log_notice(DRP_LOG_TLS,
			       "[c%06u] %s: the client closed the connection "
			       "during the TLS handshake for %s (a client that "
			       "does not trust this proxy's CA may do that: "
			       "it must trust http://%s/ca.crt)",
			       c->id, c->peer_str, c->host, self);
	} else {
		drp_metrics_tls_failure(DRP_MTLS_CLIENT, DRP_MTLS_PROTOCOL);
		drp_log_notice(DRP_LOG_TLS,
			       "[c%06u] %s: TLS handshake for %s failed: %s",
			       c->id, c->peer_str, c->host,
			       drp_tls_error(c->tls));
	}
	/* The CONNECT was answered 200 before the handshake. */
	c->req_active = true;
	snprintf(c->method, sizeof(c->method), "CONNECT");
	c->x.status = 200;
	c->x.up_status = 0;
	c->bytes_in = 0;
	c->x.bytes_out = 0;
	log_request(c, "TLS_ERROR");
	drp_conn_close(c, timeout ? "TLS handshake timed out"
				  : "TLS handshake failed");
}

static void conn_run(drp_conn_t *c)
{
	if (c->state == DRP_CONN_CLOSED)
		return;
	if (c->state == DRP_CONN_TUNNEL ||
	    c->state == DRP_CONN_TUNNEL_CONNECT) {
		tunnel_run(c);
		return;
	}
	if (c->state == DRP_CONN_PROXY_PROTO) {
		int r = proxy_proto_read(c);
		if (r < 0)
			return;
		if (r == 0) {
			ev_io_stop(c->w->loop, &c->io);
			ev_io_set(&c->io, c->fd, EV_READ);
			ev_io_start(c->w->loop, &c->io);
			return;
		}
	}
	if (c->turn != ev_iteration(c->w->loop)) {
		c->turn = ev_iteration(c->w->loop);
		c->turn_written = c->written;
	}
	bool yield = false;
	for (int rounds = 0; rounds < 64; rounds++) {
		bool progress = false;
		if (client_flush(c, &progress) < 0)
			return;
		if (c->state == DRP_CONN_FLUSH_CLOSE) {
			if (drp_conn_out_pending(c))
				break;
			if (!start_linger(c))
				return;
		}
		if (c->state == DRP_CONN_LINGER) {
			linger_read(c);
			return;
		}
		if (c->state == DRP_CONN_TLS_HANDSHAKE) {
			if (drp_conn_out_pending(c))
				break; /* the 200 goes out first */
			int r = drp_tls_handshake(c->tls);
			if (r == -EAGAIN)
				break;
			if (r < 0) {
				tls_failed(c, false);
				return;
			}
			drp_buf_reset(&c->in);
			c->head_scanned = 0;
			c->tls_active = true;
			c->in_dry = false;
			const char *sni = drp_tls_sni(c->tls);
			if (c->mirror_tls) {
				/* Origin-form requests, as on the plain
				 * port. */
				c->state = DRP_CONN_PROXY_HEAD;
				set_timeout(c, conf_of(c)->header_timeout);
				progress = true;
				continue;
			}
			if (sni[0] && strcmp(sni, c->host) != 0) {
				drp_log_notice(
					DRP_LOG_TLS,
					"[c%06u] %s: SNI %s differs from "
					"CONNECT %s",
					c->id, c->peer_str, sni, c->host);
				c->sni_mismatch = true;
			}
			c->state = DRP_CONN_HEAD;
			set_timeout(c, conf_of(c)->header_timeout);
			progress = true;
			continue;
		}
		if (c->state == DRP_CONN_PROXY_HEAD ||
		    c->state == DRP_CONN_HEAD) {
			if (try_request(c))
				progress = true;
			if (c->state == DRP_CONN_CLOSED)
				return;
			if (c->state == DRP_CONN_TUNNEL_CONNECT ||
			    c->state == DRP_CONN_TUNNEL) {
				tunnel_run(c);
				return;
			}
			if (c->state == DRP_CONN_FLUSH_CLOSE ||
			    c->state == DRP_CONN_TLS_HANDSHAKE)
				continue;
		}
		if (c->state == DRP_CONN_EXCHANGE && c->x.h && c->x.h->pump) {
			int r = c->x.h->pump(&c->x);
			if (r < 0 || c->state == DRP_CONN_CLOSED)
				return;
			if (r > 0)
				progress = true;
			if (c->state != DRP_CONN_EXCHANGE)
				continue;
		}
		if (c->state == DRP_CONN_EXCHANGE) {
			if (pump_request_body(c))
				progress = true;
			if (c->state == DRP_CONN_CLOSED)
				return;
			if (c->state != DRP_CONN_EXCHANGE)
				continue;
		}
		if (want_read(c) &&
		    (!c->in_dry ||
		     (c->tls_active && drp_tls_pending(c->tls) > 0))) {
			char *p = drp_buf_reserve(&c->in, READ_CHUNK);
			ssize_t n = client_read(c, p, READ_CHUNK);
			if (n > 0) {
				c->in.len += (size_t)n;
				progress = true;
				/* Less than asked for: the socket is empty
				 * now (or so TLS's last recv found it). */
				if (c->tls_active ? drp_tls_drained(c->tls)
						  : (size_t)n < READ_CHUNK)
					c->in_dry = true;
				if (c->idle) {
					/* The next head began: it gets
					 * header_timeout from its first
					 * byte, not what idle_timeout left. */
					c->idle = false;
					set_timeout(c,
						    conf_of(c)->header_timeout);
				}
				if (c->state == DRP_CONN_EXCHANGE)
					ev_timer_again(c->w->loop, &c->timer);
			} else if (n == 0) {
				c->client_eof = true;
				if (c->state != DRP_CONN_EXCHANGE ||
				    !c->req_body_done) {
					drp_conn_close(
						c, c->state == DRP_CONN_EXCHANGE
							   ? "client closed "
							     "during upload"
							   : "client closed");
					return;
				}
			} else if (n != -EAGAIN) {
				drp_conn_close(c, "client read failed");
				return;
			} else {
				c->in_dry = true;
			}
		}
		if (!progress)
			break;
		if (c->state == DRP_CONN_EXCHANGE && drp_conn_out_pending(c))
			ev_timer_again(c->w->loop, &c->timer);
		if (c->written - c->turn_written >= RUN_BUDGET) {
			/* The rest in a later turn: what is queued waits
			 * for the socket (EV_WRITE), anything else for a
			 * kick. */
			yield = !drp_conn_out_pending(c);
			break;
		}
	}
	if (c->state == DRP_CONN_TUNNEL_CONNECT)
		return;
	if (yield) {
		kick(c);
		return;
	}
	int ev = 0;
	if (want_read(c) || c->state == DRP_CONN_TLS_HANDSHAKE)
		ev |= EV_READ;
	if (drp_conn_out_pending(c))
		ev |= EV_WRITE;
	if (c->state == DRP_CONN_TLS_HANDSHAKE && !drp_conn_out_pending(c))
		ev = drp_tls_want_write(c->tls) ? EV_WRITE : EV_READ;
	if (c->tls_active && want_read(c) && drp_tls_pending(c->tls) > 0) {
		kick(c);
		return;
	}
	io_want(c, ev);
}

/* ---- tunnel ---- */

static void tio_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	tunnel_run(DRP_CONTAINER_OF(io, drp_conn_t, tio));
}

/* Each refusal of the origin gets its own status: an address the proxy
 * may not reach 403, a name that does not resolve or an origin that does
 * not answer 502, a name that does not resolve in time 504. */
static void tunnel_refuse(drp_conn_t *c,
			  const drp_upstream_connect_result_t *res)
{
	const drp_upstream_conf_t *u = c->rt->upstream;
	if (res->via_parent && res->err != DRP_UPCONNECT_REFUSED) {
		/* The parent did not open it: the operator's business. */
		char why[200];
		if (res->err == DRP_UPCONNECT_PARENT)
			snprintf(why, sizeof(why), "refused: %s%s", res->detail,
				 res->parent_status == 407
					 ? " (check upstream_proxy's user and "
					   "upstream_proxy_password_file)"
					 : "");
		else
			snprintf(why, sizeof(why), "cannot be reached (%s)",
				 res->addr[0] ? res->addr : "no address");
		drp_log_warning(DRP_LOG_PROXY,
				"[c%06u] CONNECT %s:%u: the upstream proxy "
				"%s:%u %s",
				c->id, c->host, c->port, u->parent_host,
				u->parent_port, why);
		respond_error(c, 502, true,
			      "the proxy's upstream proxy did not connect to "
			      "%s:%u",
			      c->host, c->port);
	} else if (res->err == DRP_UPCONNECT_RESOLVE_TIMEOUT) {
		respond_error(c, 504, true, "timed out resolving %s", c->host);
	} else if (res->err == DRP_UPCONNECT_FAILED ||
		   res->err == DRP_UPCONNECT_TIMEOUT) {
		drp_log_notice(DRP_LOG_PROXY,
			       "[c%06u] CONNECT %s:%u: cannot connect", c->id,
			       c->host, c->port);
		respond_error(c, 502, true, "cannot connect to %s:%u", c->host,
			      c->port);
	} else {
		bool refused =
			res->err == DRP_UPCONNECT_REFUSED && res->n_refused > 0;
		drp_log_notice(DRP_LOG_PROXY, "[c%06u] CONNECT %s:%u: %s",
			       c->id, c->host, c->port,
			       refused ? "address not allowed"
				       : "cannot resolve");
		respond_error(c, refused ? 403 : 502, true, "%s %s",
			      refused ? "the proxy may not connect to"
				      : "cannot resolve",
			      c->host);
	}
	request_done(c, "TUNNEL");
	kick(c);
}

static void tunnel_connected_cb(void *arg, int fd,
				const drp_upstream_connect_result_t *res)
{
	drp_conn_t *c = arg;
	c->tconnect = NULL;
	if (fd < 0) {
		tunnel_refuse(c, res);
		return;
	}
	c->tfd = fd;
	c->state = DRP_CONN_TUNNEL;
	c->req_active = false;
	c->t_start = ev_now(c->w->loop);
	/* The 200 goes to the client first; bytes it sent behind CONNECT
	 * (already in c->in) go to the origin. */
	static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	drp_buf_append(&c->tbuf, ok, sizeof(ok) - 1);
	set_timeout(c, conf_of(c)->tunnel_idle_timeout);
	tunnel_run(c);
}

static void tunnel_begin(drp_conn_t *c)
{
	c->state = DRP_CONN_TUNNEL_CONNECT;
	c->tfd = -1;
	/* Nothing is read from the client until the origin answers, and
	 * the connect keeps its own deadlines (connect_timeout bounds the
	 * resolving too). */
	ev_io_stop(c->w->loop, &c->io);
	ev_timer_stop(c->w->loop, &c->timer);
	drp_upstream_connect_req_t cr = {
		.host = c->host,
		.port = c->port,
		.conn_id = c->id,
		.resolve_deadline = true,
	};
	c->tconnect = drp_upstream_connect(&c->w->upstream, c->rt->upstream,
					   &cr, tunnel_connected_cb, c);
}

static bool relay(drp_conn_t *c, int from, int to, drp_buf_t *b, bool *eof,
		  bool *shut, uint64_t *count, bool *err)
{
	bool progress = false;
	if (!*eof && drp_buf_pending(b) < TUNNEL_BUF) {
		char *p = drp_buf_reserve(b, TUNNEL_BUF);
		ssize_t n = recv(from, p, TUNNEL_BUF - drp_buf_pending(b), 0);
		if (n > 0) {
			b->len += (size_t)n;
			progress = true;
		} else if (n == 0) {
			*eof = true;
			progress = true;
		} else if (errno != EAGAIN && errno != EINTR) {
			*err = true;
		}
	}
	while (drp_buf_pending(b) > 0) {
		ssize_t n = send(to, drp_buf_head(b), drp_buf_pending(b),
				 MSG_NOSIGNAL);
		if (n > 0) {
			drp_buf_consume(b, (size_t)n);
			*count += (uint64_t)n;
			progress = true;
		} else {
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				*err = true;
			break;
		}
	}
	if (*eof && drp_buf_pending(b) == 0 && !*shut) {
		shutdown(to, SHUT_WR);
		*shut = true;
	}
	return progress;
}

static void tunnel_run(drp_conn_t *c)
{
	if (c->state != DRP_CONN_TUNNEL)
		return;
	bool err = false, c_eof = c->client_eof;
	bool p1 = relay(c, c->fd, c->tfd, &c->in, &c_eof, &c->t_shut, &c->t_up,
			&err);
	c->client_eof = c_eof;
	bool p2 = relay(c, c->tfd, c->fd, &c->tbuf, &c->t_eof, &c->c_shut,
			&c->t_down, &err);
	if (err) {
		drp_conn_close(c, "tunnel I/O error");
		return;
	}
	if (c->t_shut && c->c_shut) {
		drp_conn_close(c, "tunnel closed");
		return;
	}
	if (p1 || p2)
		ev_timer_again(c->w->loop, &c->timer);
	int cev = 0, tev = 0;
	if (!c->client_eof && drp_buf_pending(&c->in) < TUNNEL_BUF)
		cev |= EV_READ;
	if (drp_buf_pending(&c->tbuf) > 0)
		cev |= EV_WRITE;
	if (!c->t_eof && drp_buf_pending(&c->tbuf) < TUNNEL_BUF)
		tev |= EV_READ;
	if (drp_buf_pending(&c->in) > 0)
		tev |= EV_WRITE;
	ev_io_stop(c->w->loop, &c->io);
	if (cev) {
		ev_io_set(&c->io, c->fd, cev);
		ev_io_start(c->w->loop, &c->io);
	}
	ev_io_stop(c->w->loop, &c->tio);
	if (tev) {
		ev_io_set(&c->tio, c->tfd, tev);
		ev_io_start(c->w->loop, &c->tio);
	}
}

/* ---- watchers ---- */

static void io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	drp_conn_t *c = DRP_CONTAINER_OF(io, drp_conn_t, io);
	if (revents & EV_READ)
		c->in_dry = false;
	conn_run(c);
}

static void kick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	conn_run(DRP_CONTAINER_OF(t, drp_conn_t, kick));
}

static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	drp_conn_t *c = DRP_CONTAINER_OF(t, drp_conn_t, timer);
	switch (c->state) {
	case DRP_CONN_PROXY_HEAD:
	case DRP_CONN_HEAD:
		if (drp_buf_pending(&c->in) > 0) {
			/* A partial head that never completed (slow client or
			 * slowloris): say so, then close. */
			c->req_active = true;
			c->start = ev_now(loop) - c->timer_for;
			snprintf(c->method, sizeof(c->method), "-");
			copy_path(c, "-", 1);
			drp_log_notice(DRP_LOG_HTTP,
				       "[c%06u] %s: request head timed out",
				       c->id, c->peer_str);
			drp_buf_reset(&c->in);
			c->head_scanned = 0;
			respond_error(c, 408, true, "request head timed out");
			request_done(c, "PASS");
			set_timeout(c, 5.0);
			kick(c);
			return;
		}
		drp_conn_close(c, "idle timeout");
		return;
	case DRP_CONN_EXCHANGE:
		/* The upstream has its own timers; here the client stalls. */
		if (drp_conn_out_pending(c) ||
		    (!c->req_body_done && c->x.h == NULL)) {
			drp_conn_close(c, "client stalled");
			return;
		}
		return;
	case DRP_CONN_TUNNEL_CONNECT:
		return; /* the connect has its own deadlines */
	case DRP_CONN_TLS_HANDSHAKE:
		tls_failed(c, true);
		return;
	case DRP_CONN_LINGER:
		drp_conn_close(c, "closed after response (linger ended)");
		return;
	case DRP_CONN_PROXY_PROTO:
		drp_log_notice(DRP_LOG_NET,
			       "[c%06u] %s: refused: no PROXY protocol header "
			       "within header_timeout",
			       c->id, c->peer_str);
		drp_conn_close(c, "PROXY protocol header timed out");
		return;
	default:
		drp_conn_close(c, "timeout");
		return;
	}
}

void drp_conn_drain(drp_conn_t *c)
{
	c->draining = true;
	if (c->state == DRP_CONN_LINGER) {
		drp_conn_close(c, "shutting down");
		return;
	}
	if ((c->state == DRP_CONN_HEAD || c->state == DRP_CONN_PROXY_HEAD) &&
	    drp_buf_pending(&c->in) == 0 && !drp_conn_out_pending(c))
		drp_conn_close(c, "shutting down");
	else if (c->state == DRP_CONN_PROXY_PROTO && c->pp_len == 0)
		drp_conn_close(c, "shutting down");
}

void drp_conn_drain_all(drp_worker_t *w)
{
	for (drp_conn_t *c = w->conns, *next; c; c = next) {
		next = c->next;
		drp_conn_drain(c);
	}
}

void drp_conn_close_all(drp_worker_t *w, const char *reason)
{
	while (w->conns)
		drp_conn_close(w->conns, reason);
}

static drp_conn_t *conn_new(drp_worker_t *w, int fd,
			    const struct sockaddr *peer, socklen_t peerlen);

/* The loop is about to end: what else lives on it goes now. */
static void conn_worker_stop(drp_worker_t *w)
{
	drp_auth_worker_stop(w);
	drp_mflight_worker_stop(w);
	/* The fills (their uploads, leases) before the fleet's Redis
	 * connection that the leases' commands point at. */
	drp_fill_worker_stop(w);
	if (w->srv != NULL) {
		drp_fleet_worker_stop(w->srv->fleet, w);
		drp_s3tier_worker_stop(w->srv->s3tier, w);
	}
}

const drp_worker_hooks_t drp_conn_worker_hooks = {
	.accept = drp_conn_accept,
	.accept_mirror_tls = drp_conn_accept_mirror_tls,
	.reap = drp_conn_reap,
	.drain = drp_conn_drain_all,
	.close_all = drp_conn_close_all,
	.fill_wake = drp_cached_fill_wakeup,
	.stop = conn_worker_stop,
};

void drp_conn_accept(drp_worker_t *w, int fd, const struct sockaddr *peer,
		     socklen_t peerlen)
{
	conn_new(w, fd, peer, peerlen);
}

void drp_conn_accept_mirror_tls(drp_worker_t *w, int fd,
				const struct sockaddr *peer, socklen_t peerlen)
{
	drp_conn_t *c = conn_new(w, fd, peer, peerlen);
	c->mirror_tls = true;
	if (c->rt->mirror_leaf == NULL) {
		drp_conn_close(c, "no mirror certificate");
		return;
	}
	c->leaf = drp_leaf_ref(c->rt->mirror_leaf);
	c->tls = drp_tls_server_new(c->fd, c->leaf->cred);
	if (c->tls == NULL) {
		drp_conn_close(c, "TLS session setup failed");
		return;
	}
	if (c->state == DRP_CONN_PROXY_PROTO) {
		/* The balancer's header comes before the TLS. */
		c->pp_next = DRP_CONN_TLS_HANDSHAKE;
		return;
	}
	c->state = DRP_CONN_TLS_HANDSHAKE;
	set_timeout(c, conf_of(c)->handshake_timeout);
}

void drp_conn_accept_intercepted(drp_worker_t *w, int fd,
				 const struct sockaddr *peer, socklen_t peerlen,
				 const char *host, uint16_t port)
{
	drp_conn_t *c = conn_new(w, fd, peer, peerlen);
	snprintf(c->host, sizeof(c->host), "%s", host);
	c->port = port;
	c->intercepted = true;
	c->state = DRP_CONN_HEAD;
}

static drp_conn_t *conn_new(drp_worker_t *w, int fd,
			    const struct sockaddr *peer, socklen_t peerlen)
{
	drp_conn_t *c = DRP_NEW(drp_conn_t);
	c->w = w;
	c->rt = drp_server_runtime_get(w->srv);
	c->id = drp_worker_conn_id(w);
	c->x.ops = &exch_ops;
	c->x.out = &c->out;
	c->x.w = w;
	c->x.rt = c->rt;
	c->x.id = c->id;
	c->x.peer = c->peer_str;
	c->x.peer_addr = (const struct sockaddr *)&c->peer;
	c->fd = fd;
	c->tfd = -1;
	memcpy(&c->peer, peer,
	       peerlen < sizeof(c->peer) ? peerlen : sizeof(c->peer));
	drp_sockaddr_ip_str(peer, c->peer_str, sizeof(c->peer_str));
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->state = DRP_CONN_PROXY_HEAD;
	/* A balancer's connection: its header first. A header from any other
	 * peer is not read as one (it is not trusted; it fails as a request).
	 */
	const drp_conf_t *conf = conf_of(c);
	if (conf->n_proxy_protocol_from > 0 &&
	    drp_cidr_list_match(conf->proxy_protocol_from,
				conf->n_proxy_protocol_from, peer)) {
		c->pp_next = DRP_CONN_PROXY_HEAD;
		c->state = DRP_CONN_PROXY_PROTO;
	}
	ev_io_init(&c->io, io_cb, fd, EV_READ);
	ev_init(&c->tio, tio_cb);
	ev_init(&c->timer, timer_cb);
	ev_init(&c->kick, kick_cb);
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->n_conns++;
	atomic_fetch_add(&w->srv->stats.connections, 1);
	atomic_fetch_add(&w->srv->stats.connections_open, 1);
	ev_io_start(w->loop, &c->io);
	set_timeout(c, conf_of(c)->header_timeout);
	drp_log_debug(DRP_LOG_NET, "[c%06u] accepted from %s", c->id,
		      c->peer_str);
	return c;
}
