/* SPDX-License-Identifier: MIT */
#include "upstream/fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/uri.h"
#include "tls/session.h"
#include "upstream/connect.h"
#include "upstream/keepalive.h"
#include "upstream/upstream.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/metrics.h"

/* Read from the upstream only while less than this is waiting for the
 * sink; request-body bytes are buffered up to the same bound. */
#define FETCH_BUF_HIGH	 (256 * 1024)
#define FETCH_READ_CHUNK (64 * 1024)
/* Over TLS, records are read until this much is waiting (or the socket
 * has no more) before the sink gets them, in one piece. */
#define FETCH_BATCH (FETCH_BUF_HIGH - FETCH_READ_CHUNK)
/* Most bytes one fetch reads per turn of its worker's loop: an upstream
 * that sends as fast as the proxy reads (loopback, a fast LAN) would
 * otherwise keep the loop for a whole body, and every connection on
 * that worker (handshakes, heads, a fill's waiters) would wait for it. */
#define FETCH_RUN_BUDGET (1024 * 1024)
#define MAX_REDIRECTS	 5

enum fetch_state {
	F_INIT,
	F_CONNECT, /* drp_upstream_connect() under way */
	F_HANDSHAKE,
	F_EXCHANGE, /* head sent or being sent; response being read */
	F_WAIT_AUTH,
	F_DONE,
};

struct drp_fetch {
	drp_upstream_t *ctx;
	drp_upstream_conf_t *ucf;
	enum fetch_state state;
	/* Inside a sink's head(), body() or done(): drp_fetch_cancel() from
	 * there only marks the fetch (cancelled), and the caller frees it
	 * once the callback has returned, so no frame below uses freed
	 * memory. */
	unsigned in_sink;
	bool cancelled;
	/* target of the current attempt */
	bool tls;
	/* plain http through the parent proxy: the request goes to it in
	 * absolute form */
	bool via_parent;
	char host[DRP_HOST_MAX + 1];
	uint16_t port;
	/* the request's own origin */
	bool orig_tls;
	char orig_host[DRP_HOST_MAX + 1];
	uint16_t orig_port;
	/* A redirect went to another origin or over plain http: no
	 * credentials from here on, also if a later one comes back. */
	bool left_origin;
	char *method;
	char *target;
	drp_buf_t headers; /* base header lines (decorated per attempt) */
	enum drp_http_body_mode body_mode;
	uint64_t body_len;
	bool follow_redirects;
	unsigned conn_id;
	bool policy_exempt; /* drp_fetch_req_t.policy_exempt */
	/* sink and hooks */
	const drp_fetch_sink_t *sink;
	void *sarg;
	drp_fetch_hooks_t hooks;
	/* connecting */
	drp_upstream_connect_t *connect;
	char addr_str[64];
	drp_upconn_t *up;
	bool reused;
	ev_timer timer;
	ev_timer kick; /* deferred run: never call back from a starter */
	/* request */
	drp_buf_t out;	   /* request head */
	drp_buf_t reqbody; /* framed request body waiting to be sent */
	bool req_ended;	   /* drp_fetch_end_body() called */
	bool req_sent;	   /* head + whole body written */
	uint64_t req_taken;
	/* response */
	drp_buf_t in;
	size_t head_scanned; /* f->in bytes a parse found incomplete */
	bool head_done;
	bool resp_close; /* upstream connection not reusable */
	drp_http_body_t rbody;
	int status;
	int redirects;
	bool refused; /* some answer of this exchange was 403 */
	bool auth_tried;
	int auth_fail_status; /* drp_fetch_auth_fail(): fail with this */
	char *auth_fail_reason;
	bool stale_retried;
	bool got_bytes;
	/* FETCH_RUN_BUDGET: bytes read in the loop's turn number turn
	 * (ev_iteration). */
	size_t turn_got;
	unsigned turn;
	bool up_eof; /* the upstream closed (EOF-delimited body) */
	uint64_t bytes_up;
	unsigned mreg; /* the metrics' registry slot of the origin */
};

static void fetch_run(drp_fetch_t *f);
static void fetch_begin(drp_fetch_t *f);
static void up_io_cb(struct ev_loop *loop, ev_io *w, int revents);

/* ---- upstream connections and the per-worker pool ---- */

void drp_fetch_pool_flush(drp_upstream_t *ctx)
{
	drp_keepalive_flush(ctx);
}

/* ---- helpers ---- */

static void fetch_free(drp_fetch_t *f)
{
	if (f->hooks.release)
		f->hooks.release(f->hooks.arg, f);
	ev_timer_stop(f->ctx->loop, &f->timer);
	ev_timer_stop(f->ctx->loop, &f->kick);
	drp_upstream_connect_cancel(f->connect);
	if (f->up)
		drp_upconn_close(f->up);
	drp_buf_free(&f->headers);
	drp_buf_free(&f->out);
	drp_buf_free(&f->reqbody);
	drp_buf_free(&f->in);
	free(f->method);
	free(f->target);
	free(f->auth_fail_reason);
	drp_upstream_conf_unref(f->ucf);
	free(f);
}

/* Ends the fetch: exactly one done() call, then the fetch is freed. */
static void fetch_finish(drp_fetch_t *f, int err, int http_status,
			 const char *reason)
{
	f->state = F_DONE;
	if (err == 0 && f->up && !f->resp_close && f->req_sent &&
	    (f->up->tls == NULL || drp_tls_pending(f->up->tls) == 0)) {
		f->up->requests++;
		drp_keepalive_put(f->up);
		f->up = NULL;
	}
	if (err < 0) {
		/* The operator's business at the default level: whatever
		 * the client is answered, the upstream failed it. */
		drp_log_notice(DRP_LOG_PROXY, "[c%06u] upstream %s:%u: %s",
			       f->conn_id, f->host, f->port, reason);
	}
	const drp_fetch_sink_t *s = f->sink;
	void *arg = f->sarg;
	f->sink = NULL;
	f->in_sink++; /* a cancel from done() must not free it twice */
	if (s && s->done)
		s->done(arg, err, http_status, reason);
	fetch_free(f);
}

/* After a sink callback: true if the sink cancelled the fetch from it,
 * which is then freed here and must not be touched again. */
static bool sink_cancelled(drp_fetch_t *f)
{
	if (--f->in_sink > 0 || !f->cancelled)
		return false;
	fetch_free(f);
	return true;
}

static void fetch_fail(drp_fetch_t *f, int err, int status, const char *fmt,
		       ...) __attribute__((format(printf, 4, 5)));
static void fetch_fail(drp_fetch_t *f, int err, int status, const char *fmt,
		       ...)
{
	char reason[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	fetch_finish(f, err, status, reason);
}

static bool auth_failed(drp_fetch_t *f)
{
	if (f->auth_fail_status == 0)
		return false;
	fetch_fail(f, -EACCES, f->auth_fail_status, "%s", f->auth_fail_reason);
	return true;
}

static void kick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	drp_fetch_t *f = DRP_CONTAINER_OF(t, drp_fetch_t, kick);
	if (f->state == F_WAIT_AUTH && auth_failed(f))
		return;
	if (f->state == F_INIT)
		fetch_begin(f);
	else
		fetch_run(f);
}

static void fetch_kick(drp_fetch_t *f)
{
	if (!ev_is_active(&f->kick)) {
		ev_timer_set(&f->kick, 0., 0.);
		ev_timer_start(f->ctx->loop, &f->kick);
	}
}

static void set_timer(drp_fetch_t *f, double secs)
{
	ev_timer_stop(f->ctx->loop, &f->timer);
	ev_timer_set(&f->timer, secs, secs);
	ev_timer_start(f->ctx->loop, &f->timer);
}

static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents);

drp_fetch_t *drp_fetch_new(drp_upstream_t *ctx, drp_upstream_conf_t *ucf,
			   const drp_fetch_req_t *req,
			   const drp_fetch_sink_t *sink, void *sink_arg)
{
	drp_fetch_t *f = DRP_NEW(drp_fetch_t);
	f->ctx = ctx;
	f->ucf = drp_upstream_conf_ref(ucf);
	f->tls = req->tls;
	snprintf(f->host, sizeof(f->host), "%s", req->host);
	snprintf(f->orig_host, sizeof(f->orig_host), "%s", req->host);
	f->port = req->port;
	f->orig_tls = req->tls;
	f->orig_port = req->port;
	f->method = drp_strdup(req->method);
	f->target = drp_strdup(req->target);
	drp_buf_append(&f->headers, req->headers, req->headers_len);
	f->body_mode = req->body_mode;
	f->body_len = req->body_len;
	f->req_ended =
		req->body_mode == DRP_HTTP_BODY_NONE ||
		(req->body_mode == DRP_HTTP_BODY_LENGTH && req->body_len == 0);
	f->follow_redirects = req->follow_redirects;
	f->conn_id = req->conn_id;
	f->mreg = drp_metrics_regmap_find(ucf->regmap, req->host, req->port);
	f->policy_exempt = req->policy_exempt;
	f->sink = sink;
	f->sarg = sink_arg;
	ev_init(&f->timer, timer_cb);
	ev_init(&f->kick, kick_cb);
	return f;
}

void drp_fetch_set_hooks(drp_fetch_t *f, const drp_fetch_hooks_t *hooks)
{
	f->hooks = *hooks;
}

void drp_fetch_start(drp_fetch_t *f)
{
	f->state = F_INIT;
	fetch_kick(f);
}

int drp_fetch_upstream_status(const drp_fetch_t *f)
{
	return f->status;
}

uint64_t drp_fetch_bytes_up(const drp_fetch_t *f)
{
	return f->bytes_up;
}

const char *drp_fetch_host(const drp_fetch_t *f)
{
	return f->host;
}

bool drp_fetch_refused(const drp_fetch_t *f)
{
	return f->refused;
}

bool drp_fetch_at_origin(const drp_fetch_t *f)
{
	return f->tls && !f->left_origin;
}

const char *drp_fetch_method(const drp_fetch_t *f)
{
	return f->method;
}

const char *drp_fetch_target(const drp_fetch_t *f)
{
	return f->target;
}

unsigned drp_fetch_conn_id(const drp_fetch_t *f)
{
	return f->conn_id;
}

/* ---- connecting ---- */

static void pool_key(const drp_fetch_t *f, char *key, size_t len)
{
	snprintf(key, len, "%s|%s|%u%s%s", f->tls ? "https" : "http", f->host,
		 f->port, f->via_parent ? "|parent" : "",
		 f->policy_exempt ? "|store" : "");
}

static void start_handshake_or_send(drp_fetch_t *f);

static void up_attach(drp_fetch_t *f, drp_upconn_t *u)
{
	f->up = u;
	u->owner = f;
	ev_io_stop(f->ctx->loop, &u->io);
	ev_io_init(&u->io, up_io_cb, u->fd, EV_READ | EV_WRITE);
}

static void connected_cb(void *arg, int fd,
			 const drp_upstream_connect_result_t *res)
{
	drp_fetch_t *f = arg;
	f->connect = NULL;
	snprintf(f->addr_str, sizeof(f->addr_str), "%s", res->addr);
	const drp_upstream_conf_t *u = f->ucf;
	if (res->via_parent && res->err != DRP_UPCONNECT_OK &&
	    res->err != DRP_UPCONNECT_REFUSED) {
		/* The parent is the operator's business: say which. */
		if (res->err == DRP_UPCONNECT_PARENT)
			fetch_fail(f, -EACCES, 502,
				   "the upstream proxy %s:%u refused CONNECT "
				   "%s:%u: %s%s",
				   u->parent_host, u->parent_port, f->host,
				   f->port, res->detail,
				   res->parent_status == 407
					   ? " (check upstream_proxy's user "
					     "and upstream_proxy_password_file)"
					   : "");
		else if (res->err == DRP_UPCONNECT_RESOLVE)
			fetch_fail(f, res->dns_status, 502,
				   "cannot resolve the upstream proxy %s",
				   u->parent_host);
		else
			fetch_fail(f, -EHOSTUNREACH,
				   res->err == DRP_UPCONNECT_TIMEOUT ? 504
								     : 502,
				   "cannot connect to the upstream proxy %s:%u "
				   "(%s)",
				   u->parent_host, u->parent_port,
				   f->addr_str[0] ? f->addr_str : "no address");
		return;
	}
	switch (res->err) {
	case DRP_UPCONNECT_OK:
		break;
	case DRP_UPCONNECT_RESOLVE:
		fetch_fail(f, res->dns_status, 502, "cannot resolve %s: %s",
			   f->host,
			   res->dns_status == -ENOENT
				   ? "no such host"
				   : strerror(-res->dns_status));
		return;
	case DRP_UPCONNECT_REFUSED:
		fetch_fail(f, -EACCES, 502,
			   "%s resolves only to addresses the proxy may not "
			   "connect to (%u refused; name it in [resolve] to "
			   "allow)",
			   f->host, res->n_refused);
		return;
	case DRP_UPCONNECT_RESOLVE_TIMEOUT:
	case DRP_UPCONNECT_TIMEOUT:
		fetch_fail(f, -ETIMEDOUT, 504, "connect to %s timed out",
			   f->host);
		return;
	case DRP_UPCONNECT_FAILED:
	default:
		fetch_fail(f, -EHOSTUNREACH, 502,
			   "cannot connect to %s:%u (%s)", f->host, f->port,
			   f->addr_str[0] ? f->addr_str : "no address");
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	char key[300];
	pool_key(f, key, sizeof(key));
	up_attach(f, drp_upconn_new(f->ctx, fd, key));
	f->reused = false;
	start_handshake_or_send(f);
}

static void fetch_begin(drp_fetch_t *f)
{
	f->via_parent = !f->tls && drp_upstream_via_parent(f->ucf, f->host);
	char key[300];
	pool_key(f, key, sizeof(key));
	f->addr_str[0] = '\0';
	drp_upconn_t *u = drp_keepalive_get(f->ctx, key);
	if (u) {
		up_attach(f, u);
		f->reused = true;
		start_handshake_or_send(f);
		return;
	}
	/* The connect keeps its own deadlines. */
	ev_timer_stop(f->ctx->loop, &f->timer);
	f->state = F_CONNECT;
	drp_upstream_connect_req_t cr = {
		.host = f->host,
		.port = f->port,
		.conn_id = f->conn_id,
		.http_forward = !f->tls,
		.policy_exempt = f->policy_exempt,
	};
	f->connect = drp_upstream_connect(f->ctx, f->ucf, &cr, connected_cb, f);
}

/* Build the request head for this attempt. */
static void build_head(drp_fetch_t *f)
{
	drp_buf_t hdr = {0};
	drp_buf_append(&hdr, drp_buf_head(&f->headers),
		       drp_buf_pending(&f->headers));
	if (f->hooks.decorate)
		f->hooks.decorate(f->hooks.arg, f, &hdr);
	drp_buf_reset(&f->out);
	bool default_port = f->port == (f->tls ? 443 : 80);
	bool v6 = strchr(f->host, ':') != NULL;
	char hp[DRP_HOST_MAX + 16];
	snprintf(hp, sizeof(hp), "%s%s%s", v6 ? "[" : "", f->host,
		 v6 ? "]" : "");
	if (!default_port)
		snprintf(hp + strlen(hp), sizeof(hp) - strlen(hp), ":%u",
			 f->port);
	if (f->via_parent)
		/* To the parent proxy: absolute form, and its
		 * credentials. */
		drp_buf_printf(&f->out,
			       "%s http://%s%s HTTP/1.1\r\nHost: %s\r\n",
			       f->method, hp, f->target, hp);
	else
		drp_buf_printf(&f->out, "%s %s HTTP/1.1\r\nHost: %s\r\n",
			       f->method, f->target, hp);
	if (f->via_parent && f->ucf->parent_auth != NULL)
		drp_buf_printf(&f->out, "Proxy-Authorization: %s\r\n",
			       f->ucf->parent_auth);
	drp_buf_append(&f->out, drp_buf_head(&hdr), drp_buf_pending(&hdr));
	if (f->body_mode == DRP_HTTP_BODY_LENGTH)
		drp_buf_printf(&f->out, "Content-Length: %llu\r\n",
			       (unsigned long long)f->body_len);
	else if (f->body_mode == DRP_HTTP_BODY_CHUNKED)
		drp_buf_printf(&f->out, "Transfer-Encoding: chunked\r\n");
	drp_buf_append(&f->out, "\r\n", 2);
	drp_buf_free(&hdr);
}

static void start_exchange(drp_fetch_t *f)
{
	f->state = F_EXCHANGE;
	f->head_done = false;
	f->resp_close = false;
	f->got_bytes = false;
	f->req_sent = false;
	drp_buf_reset(&f->in);
	build_head(f);
	if (auth_failed(f))
		return;
	set_timer(f, f->ucf->body_timeout);
	ev_io_stop(f->ctx->loop, &f->up->io);
	ev_io_set(&f->up->io, f->up->fd, EV_READ | EV_WRITE);
	ev_io_start(f->ctx->loop, &f->up->io);
	fetch_run(f);
}

static void start_handshake_or_send(drp_fetch_t *f)
{
	if (f->tls && f->up->tls == NULL) {
		const drp_tls_client_cred_t *cred = f->ucf->cred;
		f->up->tls = drp_tls_client_new(f->up->fd, cred, f->host);
		if (f->up->tls == NULL) {
			fetch_fail(f, -ENOMEM, 502, "TLS session setup failed");
			return;
		}
		f->state = F_HANDSHAKE;
		set_timer(f, f->ucf->handshake_timeout);
		fetch_run(f);
		return;
	}
	start_exchange(f);
}

/* ---- exchange ---- */

/* Move request bytes to the upstream. Returns <0 on a fatal error. */
static int flush_out(drp_fetch_t *f, bool *progress)
{
	for (;;) {
		drp_buf_t *b = drp_buf_pending(&f->out)	      ? &f->out
			       : drp_buf_pending(&f->reqbody) ? &f->reqbody
							      : NULL;
		if (b == NULL)
			break;
		ssize_t n;
		if (f->up->tls)
			n = drp_tls_write(f->up->tls, drp_buf_head(b),
					  drp_buf_pending(b));
		else
			n = send(f->up->fd, drp_buf_head(b), drp_buf_pending(b),
				 MSG_NOSIGNAL);
		if (n < 0 && !f->up->tls && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n == -EAGAIN)
			return 0;
		if (n < 0)
			return -EPIPE;
		drp_buf_consume(b, (size_t)n);
		*progress = true;
		if (b == &f->reqbody && f->sink && f->sink->req_room)
			f->sink->req_room(f->sarg);
	}
	if (f->req_ended && !f->req_sent) {
		f->req_sent = true;
	}
	return 0;
}

size_t drp_fetch_send_body(drp_fetch_t *f, const char *data, size_t len)
{
	size_t have = drp_buf_pending(&f->reqbody);
	if (f->req_ended || have >= FETCH_BUF_HIGH)
		return 0;
	size_t n = FETCH_BUF_HIGH - have;
	if (n > len)
		n = len;
	if (n == 0)
		return 0;
	if (f->body_mode == DRP_HTTP_BODY_CHUNKED) {
		drp_buf_printf(&f->reqbody, "%zx\r\n", n);
		drp_buf_append(&f->reqbody, data, n);
		drp_buf_append(&f->reqbody, "\r\n", 2);
	} else {
		drp_buf_append(&f->reqbody, data, n);
	}
	f->req_taken += n;
	if (f->state == F_EXCHANGE)
		fetch_kick(f);
	return n;
}

size_t drp_fetch_body_room(const drp_fetch_t *f)
{
	size_t have = drp_buf_pending(&f->reqbody);
	if (f->req_ended || have >= FETCH_BUF_HIGH)
		return 0;
	/* Leave space for chunk framing. */
	return FETCH_BUF_HIGH - have > 32 ? FETCH_BUF_HIGH - have - 32 : 0;
}

void drp_fetch_end_body(drp_fetch_t *f)
{
	if (f->req_ended)
		return;
	if (f->body_mode == DRP_HTTP_BODY_CHUNKED)
		drp_buf_append(&f->reqbody, "0\r\n\r\n", 5);
	f->req_ended = true;
	if (f->state == F_EXCHANGE)
		fetch_kick(f);
}

void drp_fetch_resume(drp_fetch_t *f)
{
	if (f->state == F_EXCHANGE)
		fetch_kick(f);
}

void drp_fetch_cancel(drp_fetch_t *f)
{
	f->sink = NULL;
	if (f->in_sink > 0) {
		f->cancelled = true; /* freed when the callback returns */
		return;
	}
	fetch_free(f);
}

void drp_fetch_retry(drp_fetch_t *f)
{
	if (f->state != F_WAIT_AUTH)
		return;
	f->state = F_INIT;
	fetch_kick(f);
}

void drp_fetch_auth_fail(drp_fetch_t *f, int http_status, const char *reason)
{
	if (f->auth_fail_status != 0)
		return;
	f->auth_fail_status = http_status;
	f->auth_fail_reason = drp_strdup(reason);
	if (f->state == F_WAIT_AUTH)
		fetch_kick(f);
}

/* Drop every "Authorization:" line (redirect to another origin). */
static void drop_authorization(drp_buf_t *h)
{
	drp_buf_t out = {0};
	const char *p = drp_buf_head(h), *end = p + drp_buf_pending(h);
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *next = eol ? eol + 1 : end;
		if (strncasecmp(p, "Authorization:", 14) != 0)
			drp_buf_append(&out, p, (size_t)(next - p));
		p = next;
	}
	drp_buf_free(h);
	*h = out;
}

/* Returns true if the redirect is being followed. */
static bool follow_redirect(drp_fetch_t *f, const drp_http_msg_t *resp)
{
	const drp_http_header_t *loc = drp_http_find(resp, "Location");
	if (loc == NULL || loc->value_len == 0)
		return false;
	if (++f->redirects > MAX_REDIRECTS) {
		fetch_fail(f, -ELOOP, 502, "too many redirects");
		return true;
	}
	char host[DRP_HOST_MAX + 1];
	uint16_t port;
	bool tls;
	const char *path;
	size_t path_len;
	const char *v = loc->value;
	size_t vl = loc->value_len;
	if (vl > 8 && strncasecmp(v, "https://", 8) == 0) {
		/* Parse as http:// by skipping one character of the scheme. */
		char tmp[8192];
		if (vl + 1 > sizeof(tmp)) {
			fetch_fail(f, -EINVAL, 502, "redirect URL too long");
			return true;
		}
		memcpy(tmp, "http://", 7);
		memcpy(tmp + 7, v + 8, vl - 8);
		if (drp_uri_parse_absolute(tmp, vl - 1, host, &port, &path,
					   &path_len) < 0) {
			fetch_fail(f, -EINVAL, 502, "bad redirect Location");
			return true;
		}
		/* Default port for https, unless one was given. */
		const char *auth_end = memchr(tmp + 7, '/', vl - 8);
		size_t alen =
			auth_end ? (size_t)(auth_end - (tmp + 7)) : vl - 8;
		const char *rb = memchr(tmp + 7, ']', alen);
		const char *colon = memchr(
			rb ? rb : tmp + 7, ':',
			alen - (size_t)((rb ? rb : tmp + 7) - (tmp + 7)));
		if (colon == NULL)
			port = 443;
		tls = true;
		free(f->target);
		f->target = drp_strndup(path, path_len);
	} else if (vl > 7 && strncasecmp(v, "http://", 7) == 0) {
		if (drp_uri_parse_absolute(v, vl, host, &port, &path,
					   &path_len) < 0) {
			fetch_fail(f, -EINVAL, 502, "bad redirect Location");
			return true;
		}
		tls = false;
		free(f->target);
		f->target = drp_strndup(path, path_len);
	} else if (v[0] == '/') {
		snprintf(host, sizeof(host), "%s", f->host);
		port = f->port;
		tls = f->tls;
		free(f->target);
		f->target = drp_strndup(v, vl);
	} else {
		fetch_fail(f, -EINVAL, 502, "unsupported redirect Location");
		return true;
	}
	drp_log_debug(DRP_LOG_PROXY, "[c%06u] following %d to %s:%u",
		      f->conn_id, resp->status, host, port);
	/* Credentials (the client's, forwarded in f->headers, and whatever
	 * the hooks add) follow only to the same origin, and never in
	 * cleartext: a registry's redirect to http://itself:8080 or to
	 * https://itself:6443 is another server as far as secrets go. */
	if (!tls || !drp_uri_same_origin(f->orig_tls, f->orig_host,
					 f->orig_port, tls, host, port))
		f->left_origin = true;
	if (f->left_origin)
		drop_authorization(&f->headers);
	/* Do not bother draining the redirect's body. */
	drp_upconn_close(f->up);
	f->up = NULL;
	f->tls = tls;
	snprintf(f->host, sizeof(f->host), "%s", host);
	f->port = port;
	f->state = F_INIT;
	fetch_kick(f);
	return true;
}

/* A response head arrived. Returns false if the fetch ended or restarted. */
static bool on_head(drp_fetch_t *f, const drp_http_msg_t *resp)
{
	f->status = resp->status;
	if (f->via_parent && resp->status == 407) {
		fetch_fail(f, -EACCES, 502,
			   "the upstream proxy %s:%u refused the request for "
			   "%s: 407 (check upstream_proxy's user and "
			   "upstream_proxy_password_file)",
			   f->ucf->parent_host, f->ucf->parent_port, f->host);
		return false;
	}
	drp_metrics_upstream_response(f->mreg, resp->status);
	if (resp->status >= 500 || resp->status == 429)
		drp_log_notice(DRP_LOG_PROXY,
			       "[c%06u] upstream %s:%u answered %d to %s %.*s",
			       f->conn_id, f->host, f->port, resp->status,
			       f->method, (int)strcspn(f->target, "?#"),
			       f->target);
	if (f->hooks.response)
		f->hooks.response(f->hooks.arg, f, resp);
	/* A 401 is the ordinary first step of a challenge, answered by a
	 * retry with an identity; a 403 denies the identity outright. */
	if (resp->status == 403)
		f->refused = true;
	enum drp_http_body_mode mode;
	uint64_t length;
	if (drp_http_response_framing(resp, f->method, &mode, &length) < 0) {
		fetch_fail(f, -EPROTO, 502, "invalid response framing");
		return false;
	}
	if (resp->minor_version == 0 ||
	    drp_http_has_token(resp, "Connection", "close") ||
	    mode == DRP_HTTP_BODY_EOF)
		f->resp_close = true;
	if (resp->status >= 300 && resp->status < 400 && resp->status != 304 &&
	    f->follow_redirects)
		if (follow_redirect(f, resp))
			return false;
	bool replayable =
		f->body_mode == DRP_HTTP_BODY_NONE ||
		(f->body_mode == DRP_HTTP_BODY_LENGTH && f->body_len == 0);
	if (resp->status == 401 && f->hooks.challenge && replayable) {
		bool first = !f->auth_tried;
		f->auth_tried = true;
		enum drp_fetch_auth r =
			f->hooks.challenge(f->hooks.arg, f, resp);
		if (auth_failed(f))
			return false;
		/* At most one retry per fetch. */
		if (!first &&
		    (r == DRP_FETCH_AUTH_OK || r == DRP_FETCH_AUTH_PENDING))
			r = DRP_FETCH_AUTH_DECLINED;
		if (r == DRP_FETCH_AUTH_OK || r == DRP_FETCH_AUTH_PENDING) {
			drp_upconn_close(f->up);
			f->up = NULL;
			f->state =
				r == DRP_FETCH_AUTH_OK ? F_INIT : F_WAIT_AUTH;
			ev_timer_stop(f->ctx->loop, &f->timer);
			if (r == DRP_FETCH_AUTH_OK)
				fetch_kick(f);
			return false;
		}
		if (r == DRP_FETCH_AUTH_ERROR) {
			fetch_fail(f, -EACCES, 502, "authentication failed");
			return false;
		}
	}
	drp_http_body_init(&f->rbody, mode, length);
	f->head_done = true;
	if (f->sink && f->sink->head) {
		f->in_sink++;
		f->sink->head(f->sarg, resp, mode, length);
		if (sink_cancelled(f))
			return false;
	}
	return true;
}

/* Parse and deliver what is in f->in. Returns false if the fetch ended. */
static bool process_input(drp_fetch_t *f)
{
	while (!f->head_done) {
		drp_http_msg_t resp;
		size_t prev = f->head_scanned;
		if (prev > drp_buf_pending(&f->in))
			prev = 0;
		ssize_t r = drp_http_parse_response_more(
			drp_buf_head(&f->in), drp_buf_pending(&f->in), prev,
			65536, &resp);
		if (r == DRP_HTTP_INCOMPLETE) {
			f->head_scanned = drp_buf_pending(&f->in);
			return true;
		}
		f->head_scanned = 0;
		if (r < 0) {
			fetch_fail(f, -EPROTO, 502,
				   "malformed response head from upstream");
			return false;
		}
		if (resp.status >= 100 && resp.status < 200) {
			drp_buf_consume(&f->in, (size_t)r);
			continue;
		}
		/* The head's strings point into f->in: deliver, then drop. */
		bool go = on_head(f, &resp);
		if (!go)
			return false;
		drp_buf_consume(&f->in, (size_t)r);
	}
	while (!f->rbody.done && drp_buf_pending(&f->in) > 0) {
		size_t room = f->sink && f->sink->room ? f->sink->room(f->sarg)
						       : SIZE_MAX;
		if (room == 0)
			return true;
		const char *data;
		size_t dlen;
		size_t avail = drp_buf_pending(&f->in);
		/* Never hand the sink more than it has room for: the decoder
		 * is incremental, so feeding a prefix is always safe. */
		size_t feed = avail < room ? avail : room;
		ssize_t c = drp_http_body_feed(&f->rbody, drp_buf_head(&f->in),
					       feed, &data, &dlen);
		if (c < 0) {
			fetch_fail(f, -EPROTO, 502,
				   "malformed chunked body from upstream");
			return false;
		}
		drp_buf_consume(&f->in, (size_t)c);
		if (dlen) {
			f->bytes_up += dlen;
			drp_metrics_upstream_bytes(f->mreg, dlen);
			if (f->sink && f->sink->body) {
				f->in_sink++;
				f->sink->body(f->sarg, data, dlen);
				if (sink_cancelled(f))
					return false;
			}
		}
		if (c == 0 && dlen == 0)
			break;
	}
	if (f->up_eof && drp_buf_pending(&f->in) == 0)
		f->rbody.done = true; /* close-delimited body complete */
	if (f->rbody.done) {
		if (drp_buf_pending(&f->in) > 0)
			f->resp_close = true; /* unexpected extra bytes */
		if (!f->req_ended || drp_buf_pending(&f->reqbody) > 0 ||
		    drp_buf_pending(&f->out) > 0)
			f->resp_close = true; /* answered before the upload
						 finished */
		else
			f->req_sent = true;
		fetch_finish(f, 0, f->status, "complete");
		return false;
	}
	return true;
}

static void up_eof(drp_fetch_t *f)
{
	if (f->head_done && f->rbody.mode == DRP_HTTP_BODY_EOF) {
		f->up_eof = true;
		f->resp_close = true;
		ev_io_stop(f->ctx->loop, &f->up->io);
		process_input(f);
		return;
	}
	if (!f->got_bytes && f->reused && !f->stale_retried &&
	    f->body_mode == DRP_HTTP_BODY_NONE) {
		/* A pooled connection the server had closed: retry once on a
		 * fresh connection. */
		f->stale_retried = true;
		drp_upconn_close(f->up);
		f->up = NULL;
		f->state = F_INIT;
		fetch_kick(f);
		return;
	}
	if (f->head_done)
		fetch_fail(f, -EPIPE, 502,
			   "upstream closed the connection mid-body after "
			   "%llu bytes",
			   (unsigned long long)f->rbody.total);
	else
		fetch_fail(f, -EPIPE, 502,
			   "upstream closed the connection without a response");
}

static void fetch_run(drp_fetch_t *f)
{
	drp_upconn_t *u = f->up;
	if (u == NULL)
		return;
	if (f->state == F_HANDSHAKE) {
		int r = drp_tls_handshake(u->tls);
		if (r == -EAGAIN) {
			ev_io_stop(f->ctx->loop, &u->io);
			ev_io_set(&u->io, u->fd,
				  drp_tls_want_write(u->tls) ? EV_WRITE
							     : EV_READ);
			ev_io_start(f->ctx->loop, &u->io);
			return;
		}
		if (r < 0) {
			drp_metrics_tls_failure(
				DRP_MTLS_UPSTREAM,
				drp_tls_fail_kind(u->tls) ==
						DRP_TLS_FAIL_CERTIFICATE
					? DRP_MTLS_CERTIFICATE
					: DRP_MTLS_PROTOCOL);
			drp_log_warning(DRP_LOG_TLS,
					"[c%06u] upstream %s (%s): %s",
					f->conn_id, f->host, f->addr_str,
					drp_tls_error(u->tls));
			fetch_fail(f, -EPROTO, 502, "TLS with %s failed: %s",
				   f->host, drp_tls_error(u->tls));
			return;
		}
		start_exchange(f);
		return;
	}
	if (f->state != F_EXCHANGE)
		return;

	if (f->turn != ev_iteration(f->ctx->loop)) {
		f->turn = ev_iteration(f->ctx->loop);
		f->turn_got = 0;
	}
	bool progress = true;
	while (progress) {
		progress = false;
		if (flush_out(f, &progress) < 0) {
			/* The upstream may have answered and closed: read
			 * what it said before giving up. */
			f->req_ended = true;
			drp_buf_reset(&f->reqbody);
			drp_buf_reset(&f->out);
			f->resp_close = true;
		}
		if (!f->up_eof && drp_buf_pending(&f->in) < FETCH_BUF_HIGH) {
			char *p = drp_buf_reserve(&f->in, FETCH_READ_CHUNK);
			ssize_t n;
			if (u->tls) {
				n = drp_tls_read(u->tls, p, FETCH_READ_CHUNK);
			} else {
				n = recv(u->fd, p, FETCH_READ_CHUNK, 0);
				if (n < 0)
					n = (errno == EAGAIN || errno == EINTR)
						    ? -EAGAIN
						    : -errno;
			}
			if (n == 0) {
				up_eof(f);
				return;
			}
			if (n > 0) {
				f->in.len += (size_t)n;
				f->turn_got += (size_t)n;
				f->got_bytes = true;
				progress = true;
				ev_timer_again(f->ctx->loop, &f->timer);
			} else if (n != -EAGAIN) {
				if (!f->got_bytes && f->reused &&
				    !f->stale_retried &&
				    f->body_mode == DRP_HTTP_BODY_NONE) {
					up_eof(f);
					return;
				}
				fetch_fail(f, -EPIPE, 502,
					   "upstream read error%s%s",
					   u->tls ? ": " : "",
					   u->tls ? drp_tls_error(u->tls) : "");
				return;
			}
		}
		/* Records are read while the socket has more, so that the
		 * sink gets the body in pieces of up to FETCH_BATCH rather
		 * than one per 16 KiB record or per read-ahead: a cache fill
		 * writes each piece with one pwrite, and the page cache
		 * costs less per byte in larger writes (larger folios). */
		bool batch = progress && u->tls &&
			     drp_buf_pending(&f->in) < FETCH_BATCH;
		if (!batch && (drp_buf_pending(&f->in) > 0 || !f->head_done)) {
			size_t before = drp_buf_pending(&f->in);
			if (!process_input(f))
				return;
			if (drp_buf_pending(&f->in) != before)
				progress = true;
		}
		if (progress && f->turn_got >= FETCH_RUN_BUDGET) {
			/* The rest in a later turn, after the loop's other
			 * watchers. */
			fetch_kick(f);
			return;
		}
	}
	/* Wait for what we need next. */
	int ev = 0;
	bool want_read = !f->up_eof && drp_buf_pending(&f->in) < FETCH_BUF_HIGH;
	if (want_read)
		ev |= EV_READ;
	if (drp_buf_pending(&f->out) || drp_buf_pending(&f->reqbody))
		ev |= EV_WRITE;
	if (u->tls && drp_tls_want_write(u->tls))
		ev |= EV_WRITE;
	if (u->tls && want_read && drp_tls_pending(u->tls) > 0) {
		fetch_kick(f);
		return;
	}
	ev_io_stop(f->ctx->loop, &u->io);
	if (ev) {
		ev_io_set(&u->io, u->fd, ev);
		ev_io_start(f->ctx->loop, &u->io);
	}
}

static void up_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	drp_upconn_t *u = DRP_CONTAINER_OF(io, drp_upconn_t, io);
	if (u->owner)
		fetch_run(u->owner);
}

static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	drp_fetch_t *f = DRP_CONTAINER_OF(t, drp_fetch_t, timer);
	switch (f->state) {
	case F_HANDSHAKE:
		drp_metrics_tls_failure(DRP_MTLS_UPSTREAM, DRP_MTLS_TIMEOUT);
		fetch_fail(f, -ETIMEDOUT, 504,
			   "TLS handshake with %s timed out", f->host);
		return;
	case F_EXCHANGE:
		/* A paused sink is the client's problem, not a stall. */
		if (f->head_done && f->sink && f->sink->room &&
		    f->sink->room(f->sarg) == 0)
			return;
		fetch_fail(f, -ETIMEDOUT, 504,
			   f->head_done ? "upstream body stalled"
					: "upstream response timed out");
		return;
	default:
		return;
	}
}
