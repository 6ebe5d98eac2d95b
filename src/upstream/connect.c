/* SPDX-License-Identifier: MIT */
#include "upstream/connect.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/uri.h"
#include "util/addr.h"
#include "util/log.h"
#include "util/mem.h"

#define MAX_ADDRS 8

enum phase {
	P_RESOLVE,
	P_CONNECT,
	P_DONE, /* the result waits for the loop (failed in the starter) */
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
	bool starting; /* inside drp_upstream_connect(): defer the result */
	bool in_cb;    /* inside cb: a cancel is a no-op */
	drp_dns_query_t *dnsq;
	struct sockaddr_storage addrs[MAX_ADDRS];
	unsigned addrlens[MAX_ADDRS];
	unsigned n_addrs, cur;
	int fd;		     /* the socket being connected, or -1 */
	bool last_timed_out; /* the last address tried timed out */
	ev_io io;
	/* The resolve deadline, each address's connect_timeout, or 0 s to
	 * deliver a result from the loop. */
	ev_timer timer;
	drp_upstream_connect_result_t res;
};

static void uc_stop(drp_upstream_connect_t *uc)
{
	ev_io_stop(uc->ctx->loop, &uc->io);
	ev_timer_stop(uc->ctx->loop, &uc->timer);
	if (uc->dnsq) {
		drp_dns_cancel(uc->dnsq);
		uc->dnsq = NULL;
	}
	if (uc->fd >= 0) {
		close(uc->fd);
		uc->fd = -1;
	}
}

static void uc_free(drp_upstream_connect_t *uc)
{
	uc_stop(uc);
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

static void connect_next(drp_upstream_connect_t *uc)
{
	while (uc->cur < uc->n_addrs) {
		unsigned i = uc->cur++;
		struct sockaddr *sa = (struct sockaddr *)&uc->addrs[i];
		drp_sockaddr_str(sa, uc->res.addr, sizeof(uc->res.addr));
		uc->last_timed_out = false;
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
				     uc->host, uc->res.addr, strerror(errno));
			close(fd);
			continue;
		}
		uc->fd = fd;
		uc->phase = P_CONNECT;
		ev_io_set(&uc->io, fd, EV_WRITE);
		ev_io_start(uc->ctx->loop, &uc->io);
		set_timer(uc, uc->ucf->connect_timeout);
		return;
	}
	finish(uc, uc->last_timed_out ? DRP_UPCONNECT_TIMEOUT
				      : DRP_UPCONNECT_FAILED);
}

static void io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	drp_upstream_connect_t *uc =
		DRP_CONTAINER_OF(io, drp_upstream_connect_t, io);
	int err = 0;
	socklen_t el = sizeof(err);
	getsockopt(uc->fd, SOL_SOCKET, SO_ERROR, &err, &el);
	if (err == EINPROGRESS || err == EALREADY)
		return;
	ev_io_stop(loop, &uc->io);
	if (err != 0) {
		drp_log_info(DRP_LOG_PROXY, "[c%06u] connect %s (%s): %s",
			     uc->conn_id, uc->host, uc->res.addr,
			     strerror(err));
		close(uc->fd);
		uc->fd = -1;
		connect_next(uc);
		return;
	}
	int fd = uc->fd;
	uc->fd = -1;
	uc->res.err = DRP_UPCONNECT_OK;
	deliver(uc, fd);
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
		drp_log_info(DRP_LOG_PROXY,
			     "[c%06u] connect %s (%s): timed out", uc->conn_id,
			     uc->host, uc->res.addr);
		ev_io_stop(loop, &uc->io);
		close(uc->fd);
		uc->fd = -1;
		uc->last_timed_out = true; /* unless another address is tried */
		connect_next(uc);
		return;
	}
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
		if (!uc->ucf->addr_allowed(sa)) {
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
	uc->cur = 0;
	connect_next(uc);
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
	uc->fd = -1;
	ev_init(&uc->io, io_cb);
	ev_init(&uc->timer, timer_cb);
	uc->starting = true;
	/* [resolve] overrides DNS, and names an address the operator allows
	 * even if it is loopback or our own. */
	if (drp_upstream_resolve_override(ucf, uc->host, uc->port,
					  &uc->addrs[0], &uc->addrlens[0])) {
		uc->n_addrs = 1;
		connect_next(uc);
	} else if (ctx->dns == NULL) {
		uc->res.dns_status = -EIO;
		finish(uc, DRP_UPCONNECT_RESOLVE);
	} else {
		uc->phase = P_RESOLVE;
		if (req->resolve_deadline)
			set_timer(uc, ucf->connect_timeout);
		uc->dnsq = drp_dns_resolve(ctx->dns, uc->host, uc->port, dns_cb,
					   uc);
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
