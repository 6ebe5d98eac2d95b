/* SPDX-License-Identifier: MIT */
#include "upstream/connect.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/parse.h"
#include "http/uri.h"
#include "util/addr.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

#define MAX_ADDRS 8
/* The longest answer head a parent may give to a CONNECT. */
#define PARENT_HEAD_MAX 8192

enum phase {
	P_RESOLVE,
	P_CONNECT,
	P_PARENT, /* CONNECT sent to the parent, its answer awaited */
	P_DONE,	  /* the result waits for the loop (failed in the starter) */
};

/* One address being connected to; several at once only for addresses of
 * both families (Happy Eyeballs). */
struct attempt {
	struct drp_upstream_connect *uc;
	int fd; /* -1: not in flight */
	char addr[64];
	ev_io io;
	ev_timer timer; /* connect_timeout */
};

struct drp_upstream_connect {
	drp_upstream_t *ctx;
	drp_upstream_conf_t *ucf;
	char host[DRP_HOST_MAX + 1];
	uint16_t port;
	unsigned conn_id;
	drp_upstream_connect_cb cb;
	void *arg;
	enum phase phase;
	bool starting;	   /* inside drp_upstream_connect(): defer the result */
	bool in_cb;	   /* inside cb: a cancel is a no-op */
	bool http_forward; /* plain http: no CONNECT to the parent */
	bool policy_exempt; /* a configured store: no address policy */
	/* The name the addresses are of (the host, or the parent's), for
	 * log lines. */
	const char *cname;
	drp_dns_query_t *dnsq;
	struct sockaddr_storage addrs[MAX_ADDRS];
	unsigned addrlens[MAX_ADDRS];
	unsigned n_addrs, next; /* next: the next address to try */
	bool stagger;		/* both families: overlap the attempts */
	struct attempt att[MAX_ADDRS];
	unsigned n_active;
	bool last_timed_out; /* the attempt that ended last timed out */
	/* The resolve deadline, the stagger delay, the parent's answer, or
	 * 0 s to deliver a result from the loop. */
	ev_timer timer;
	/* The tunnel being asked of the parent. */
	int pfd;
	ev_io pio;
	drp_buf_t pout;
	drp_upstream_connect_result_t res;
};

static void attempt_stop(struct attempt *a)
{
	if (a->fd < 0)
		return;
	ev_io_stop(a->uc->ctx->loop, &a->io);
	ev_timer_stop(a->uc->ctx->loop, &a->timer);
	close(a->fd);
	a->fd = -1;
	a->uc->n_active--;
}

static void uc_stop(drp_upstream_connect_t *uc)
{
	ev_timer_stop(uc->ctx->loop, &uc->timer);
	ev_io_stop(uc->ctx->loop, &uc->pio);
	if (uc->dnsq) {
		drp_dns_cancel(uc->dnsq);
		uc->dnsq = NULL;
	}
	for (unsigned i = 0; i < MAX_ADDRS; i++)
		attempt_stop(&uc->att[i]);
	if (uc->pfd >= 0) {
		close(uc->pfd);
		uc->pfd = -1;
	}
}

static void uc_free(drp_upstream_connect_t *uc)
{
	uc_stop(uc);
	if (uc->pout.data != NULL)
		explicit_bzero(uc->pout.data, uc->pout.cap);
	drp_buf_free(&uc->pout);
	drp_upstream_conf_unref(uc->ucf);
	free(uc);
}

/* The one callback; fd is the caller's from here on. */
static void deliver(drp_upstream_connect_t *uc, int fd)
{
	uc->in_cb = true;
	uc->cb(uc->arg, fd, &uc->res);
	uc_free(uc);
}

static void finish(drp_upstream_connect_t *uc,
		   enum drp_upstream_connect_err err)
{
	uc_stop(uc);
	uc->res.err = err;
	if (!uc->starting) {
		deliver(uc, -1);
		return;
	}
	/* Never call back from the starter. */
	uc->phase = P_DONE;
	ev_timer_set(&uc->timer, 0., 0.);
	ev_timer_start(uc->ctx->loop, &uc->timer);
}

static void set_timer(drp_upstream_connect_t *uc, double secs)
{
	ev_timer_stop(uc->ctx->loop, &uc->timer);
	ev_timer_set(&uc->timer, secs, 0.);
	ev_timer_start(uc->ctx->loop, &uc->timer);
}

static void parent_start(drp_upstream_connect_t *uc, int fd);

/* A connection is established: the tunnel to ask of the parent, or the
 * caller's. */
static void connected(drp_upstream_connect_t *uc, int fd)
{
	uc_stop(uc);
	if (uc->res.via_parent && !uc->http_forward) {
		parent_start(uc, fd);
		return;
	}
	uc->res.err = DRP_UPCONNECT_OK;
	deliver(uc, fd);
}

static void attempt_io_cb(struct ev_loop *loop, ev_io *io, int revents);
static void attempt_timer_cb(struct ev_loop *loop, ev_timer *t, int revents);

/* Start the next address; with none left and nothing in flight, fail. */
static void connect_next(drp_upstream_connect_t *uc)
{
	while (uc->next < uc->n_addrs) {
		unsigned i = uc->next++;
		struct attempt *a = &uc->att[i];
		struct sockaddr *sa = (struct sockaddr *)&uc->addrs[i];
		drp_sockaddr_str(sa, a->addr, sizeof(a->addr));
		snprintf(uc->res.addr, sizeof(uc->res.addr), "%s", a->addr);
		int fd = socket(sa->sa_family,
				SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			drp_log_errno(DRP_LOG_WARNING, DRP_LOG_PROXY,
				      "[c%06u] socket", uc->conn_id);
			continue;
		}
		if (connect(fd, sa, uc->addrlens[i]) < 0 &&
		    errno != EINPROGRESS) {
			drp_log_info(DRP_LOG_PROXY,
				     "[c%06u] connect %s (%s): %s", uc->conn_id,
				     uc->cname, a->addr, strerror(errno));
			uc->last_timed_out = false;
			close(fd);
			continue;
		}
		a->fd = fd;
		uc->n_active++;
		uc->phase = P_CONNECT;
		ev_io_init(&a->io, attempt_io_cb, fd, EV_WRITE);
		ev_io_start(uc->ctx->loop, &a->io);
		ev_timer_init(&a->timer, attempt_timer_cb,
			      uc->ucf->connect_timeout, 0.);
		ev_timer_start(uc->ctx->loop, &a->timer);
		/* The next family gets its chance soon, this attempt goes
		 * on meanwhile. */
		if (uc->stagger && uc->next < uc->n_addrs)
			set_timer(uc, DRP_UPSTREAM_STAGGER);
		return;
	}
	if (uc->n_active == 0)
		finish(uc, uc->last_timed_out ? DRP_UPCONNECT_TIMEOUT
					      : DRP_UPCONNECT_FAILED);
}

static void attempt_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct attempt *a = DRP_CONTAINER_OF(io, struct attempt, io);
	drp_upstream_connect_t *uc = a->uc;
	int err = 0;
	socklen_t el = sizeof(err);
	getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &el);
	if (err == EINPROGRESS || err == EALREADY)
		return;
	if (err != 0) {
		drp_log_info(DRP_LOG_PROXY, "[c%06u] connect %s (%s): %s",
			     uc->conn_id, uc->cname, a->addr, strerror(err));
		uc->last_timed_out = false;
		attempt_stop(a);
		connect_next(uc);
		return;
	}
	int fd = a->fd;
	snprintf(uc->res.addr, sizeof(uc->res.addr), "%s", a->addr);
	ev_io_stop(loop, &a->io);
	ev_timer_stop(loop, &a->timer);
	a->fd = -1;
	uc->n_active--;
	connected(uc, fd);
}

static void attempt_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct attempt *a = DRP_CONTAINER_OF(t, struct attempt, timer);
	drp_upstream_connect_t *uc = a->uc;
	drp_log_info(DRP_LOG_PROXY, "[c%06u] connect %s (%s): timed out",
		     uc->conn_id, uc->cname, a->addr);
	uc->last_timed_out = true; /* unless a later attempt fails otherwise */
	attempt_stop(a);
	connect_next(uc);
}

static void parent_fail(drp_upstream_connect_t *uc, int status,
			const char *detail)
{
	uc->res.parent_status = status;
	snprintf(uc->res.detail, sizeof(uc->res.detail), "%s", detail);
	finish(uc, DRP_UPCONNECT_PARENT);
}

static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	drp_upstream_connect_t *uc =
		DRP_CONTAINER_OF(t, drp_upstream_connect_t, timer);
	switch (uc->phase) {
	case P_DONE:
		deliver(uc, -1);
		return;
	case P_RESOLVE:
		finish(uc, DRP_UPCONNECT_RESOLVE_TIMEOUT);
		return;
	case P_CONNECT:
		connect_next(uc); /* the stagger delay passed */
		return;
	case P_PARENT:
		parent_fail(uc, 0, "did not answer the CONNECT in time");
		return;
	}
}

/* ---- the parent proxy ---- */

/* Its answer to the CONNECT: only the head is taken from the socket, so
 * nothing the origin sends after it is lost. Returns true when done. */
static bool parent_read(drp_upstream_connect_t *uc)
{
	char buf[PARENT_HEAD_MAX];
	ssize_t n = recv(uc->pfd, buf, sizeof(buf), MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return false;
	if (n <= 0) {
		parent_fail(uc, 0,
			    n == 0 ? "closed the connection"
				   : "failed while answering the CONNECT");
		return true;
	}
	drp_http_msg_t resp;
	ssize_t r = drp_http_parse_response(buf, (size_t)n, sizeof(buf), &resp);
	if (r == DRP_HTTP_INCOMPLETE && (size_t)n < sizeof(buf))
		return false;
	if (r < 0) {
		parent_fail(uc, 0, "sent no valid HTTP answer");
		return true;
	}
	if (resp.status < 200 || resp.status > 299) {
		/* Its status line, printable only (never a header). */
		char detail[96];
		size_t rl = resp.reason_len < 64 ? resp.reason_len : 64;
		int o = snprintf(detail, sizeof(detail), "%d ", resp.status);
		for (size_t i = 0; i < rl && o > 0; i++)
			detail[o++] =
				resp.reason[i] >= 0x20 && resp.reason[i] < 0x7f
					? resp.reason[i]
					: '?';
		detail[o > 0 ? o : 0] = '\0';
		parent_fail(uc, resp.status, detail);
		return true;
	}
	/* Consume exactly the head. */
	size_t left = (size_t)r;
	while (left > 0) {
		ssize_t m = recv(uc->pfd, buf, left, 0);
		if (m < 0 && errno == EINTR)
			continue;
		if (m <= 0) {
			parent_fail(uc, 0,
				    "failed while answering the CONNECT");
			return true;
		}
		left -= (size_t)m;
	}
	int fd = uc->pfd;
	uc->pfd = -1;
	uc_stop(uc);
	uc->res.err = DRP_UPCONNECT_OK;
	deliver(uc, fd);
	return true;
}

static void parent_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	drp_upstream_connect_t *uc =
		DRP_CONTAINER_OF(io, drp_upstream_connect_t, pio);
	while (drp_buf_pending(&uc->pout) > 0) {
		ssize_t n = send(uc->pfd, drp_buf_head(&uc->pout),
				 drp_buf_pending(&uc->pout), MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0) {
			parent_fail(uc, 0, "closed the connection");
			return;
		}
		drp_buf_consume(&uc->pout, (size_t)n);
		if (drp_buf_pending(&uc->pout) == 0) {
			ev_io_stop(loop, &uc->pio);
			ev_io_set(&uc->pio, uc->pfd, EV_READ);
			ev_io_start(loop, &uc->pio);
			return;
		}
	}
	parent_read(uc);
}

static void parent_start(drp_upstream_connect_t *uc, int fd)
{
	uc->phase = P_PARENT;
	uc->pfd = fd;
	bool v6 = strchr(uc->host, ':') != NULL;
	drp_buf_printf(&uc->pout,
		       "CONNECT %s%s%s:%u HTTP/1.1\r\nHost: %s%s%s:%u\r\n",
		       v6 ? "[" : "", uc->host, v6 ? "]" : "", uc->port,
		       v6 ? "[" : "", uc->host, v6 ? "]" : "", uc->port);
	if (uc->ucf->parent_auth != NULL)
		drp_buf_printf(&uc->pout, "Proxy-Authorization: %s\r\n",
			       uc->ucf->parent_auth);
	drp_buf_append(&uc->pout, "\r\n", 2);
	ev_io_init(&uc->pio, parent_io_cb, fd, EV_WRITE);
	ev_io_start(uc->ctx->loop, &uc->pio);
	set_timer(uc, uc->ucf->connect_timeout);
}

/* ---- addresses ---- */

/* Addresses of both families alternate, the first one's family first. */
static void interleave(drp_upstream_connect_t *uc)
{
	unsigned n = uc->n_addrs, n4 = 0, n6 = 0;
	struct sockaddr_storage v4[MAX_ADDRS], v6[MAX_ADDRS];
	unsigned l4[MAX_ADDRS], l6[MAX_ADDRS];
	for (unsigned i = 0; i < n; i++) {
		if (uc->addrs[i].ss_family == AF_INET6) {
			v6[n6] = uc->addrs[i];
			l6[n6++] = uc->addrlens[i];
		} else {
			v4[n4] = uc->addrs[i];
			l4[n4++] = uc->addrlens[i];
		}
	}
	uc->stagger = n4 > 0 && n6 > 0;
	if (!uc->stagger)
		return;
	bool six = uc->addrs[0].ss_family == AF_INET6;
	unsigned i4 = 0, i6 = 0, o = 0;
	while (o < n) {
		bool take6 = (six && i6 < n6) || i4 == n4;
		if (take6) {
			uc->addrs[o] = v6[i6];
			uc->addrlens[o++] = l6[i6++];
		} else {
			uc->addrs[o] = v4[i4];
			uc->addrlens[o++] = l4[i4++];
		}
		six = !take6;
	}
}

static void start_addrs(drp_upstream_connect_t *uc)
{
	interleave(uc);
	uc->next = 0;
	connect_next(uc);
}

static void dns_cb(void *arg, int status, const drp_dns_result_t *res)
{
	drp_upstream_connect_t *uc = arg;
	uc->dnsq = NULL;
	ev_timer_stop(uc->ctx->loop, &uc->timer);
	if (status < 0) {
		uc->res.dns_status = status;
		finish(uc, DRP_UPCONNECT_RESOLVE);
		return;
	}
	uc->n_addrs = 0;
	for (unsigned i = 0; i < res->n && uc->n_addrs < MAX_ADDRS; i++) {
		const struct sockaddr *sa =
			(const struct sockaddr *)&res->addr[i];
		/* The parent's address is the operator's word. */
		if (!uc->res.via_parent && !uc->policy_exempt &&
		    !uc->ucf->addr_allowed(sa)) {
			uc->res.n_refused++;
			continue;
		}
		memcpy(&uc->addrs[uc->n_addrs], &res->addr[i],
		       sizeof(res->addr[i]));
		uc->addrlens[uc->n_addrs++] = res->addrlen[i];
	}
	if (uc->n_addrs == 0) {
		finish(uc, DRP_UPCONNECT_REFUSED);
		return;
	}
	start_addrs(uc);
}

/* An IP literal that the policy refuses, also when only the parent would
 * connect to it (the parent must not be the way to our own network). */
static bool literal_refused(const drp_upstream_connect_t *uc)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, uc->host, &in->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, uc->host, &in6->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		return false;
	return !uc->ucf->addr_allowed((const struct sockaddr *)&ss);
}

drp_upstream_connect_t *
drp_upstream_connect(drp_upstream_t *ctx, drp_upstream_conf_t *ucf,
		     const drp_upstream_connect_req_t *req,
		     drp_upstream_connect_cb cb, void *arg)
{
	drp_upstream_connect_t *uc = DRP_NEW(drp_upstream_connect_t);
	uc->ctx = ctx;
	uc->ucf = drp_upstream_conf_ref(ucf);
	snprintf(uc->host, sizeof(uc->host), "%s", req->host);
	uc->port = req->port;
	uc->conn_id = req->conn_id;
	uc->cb = cb;
	uc->arg = arg;
	uc->http_forward = req->http_forward;
	uc->policy_exempt = req->policy_exempt;
	uc->pfd = -1;
	for (unsigned i = 0; i < MAX_ADDRS; i++) {
		uc->att[i].uc = uc;
		uc->att[i].fd = -1;
	}
	ev_init(&uc->timer, timer_cb);
	ev_init(&uc->pio, parent_io_cb);
	uc->starting = true;
	uc->res.via_parent = drp_upstream_via_parent(ucf, uc->host);
	/* Whose addresses: the parent's, or the host's. */
	const char *name = uc->res.via_parent ? ucf->parent_host : uc->host;
	uint16_t port = uc->res.via_parent ? ucf->parent_port : uc->port;
	uc->cname = name;
	if (uc->res.via_parent && !uc->policy_exempt && literal_refused(uc)) {
		uc->res.n_refused = 1;
		finish(uc, DRP_UPCONNECT_REFUSED);
		uc->starting = false;
		return uc;
	}
	/* [resolve] overrides DNS, and names addresses the operator allows
	 * even if they are loopback or our own. */
	uc->n_addrs = drp_upstream_resolve_override(ucf, name, port, uc->addrs,
						    uc->addrlens, MAX_ADDRS);
	if (uc->n_addrs > 0) {
		start_addrs(uc);
	} else if (ctx->dns == NULL) {
		uc->res.dns_status = -EIO;
		finish(uc, DRP_UPCONNECT_RESOLVE);
	} else {
		uc->phase = P_RESOLVE;
		if (req->resolve_deadline)
			set_timer(uc, ucf->connect_timeout);
		uc->dnsq = drp_dns_resolve(ctx->dns, name, port, dns_cb, uc);
	}
	uc->starting = false;
	return uc;
}

void drp_upstream_connect_cancel(drp_upstream_connect_t *uc)
{
	if (uc == NULL || uc->in_cb)
		return;
	uc_free(uc);
}
