/* SPDX-License-Identifier: MIT */
/*
 * One way to open a TCP connection to an upstream host:port, for fetches
 * and CONNECT tunnels alike.
 *
 *  1. The address: [resolve] entries name it (the operator's word, used
 *     as is, loopback included), else the loop's resolver (A and AAAA).
 *  2. The address policy (ucf->addr_allowed), on resolved addresses only:
 *     loopback, link-local, unspecified, multicast, broadcast and the
 *     proxy's own addresses are refused (a name that resolves only to
 *     such is REFUSED).
 *  3. A non-blocking connect to each address in turn (at most 8), each
 *     given connect_timeout seconds, until one is established. When the
 *     addresses are of both families, they are tried alternately (the
 *     first one's family first), and the next attempt starts after
 *     DRP_UPSTREAM_STAGGER seconds while the earlier ones go on (RFC
 *     8305's Happy Eyeballs): an IPv6 path that drops packets costs a
 *     quarter of a second, not connect_timeout.
 *
 * With a parent proxy (upstream_proxy; drp_upstream_via_parent), steps 1
 * and 2 are the parent's: the connection goes to the parent (its name
 * resolved like any other, its address exempt from the policy, often a
 * loopback one), which is asked "CONNECT host:port" (with the
 * Proxy-Authorization of upstream_proxy_password_file), and the fd is
 * the tunnel it opens. The host's name is never resolved here; an IP
 * literal still has to pass the policy. A plain-http request
 * (http_forward) gets the connection to the parent as it is: the caller
 * sends it the request in absolute form.
 *
 * Each failed address is logged at info level ("[cNNNNNN] connect HOST
 * (ADDR): why"); what the caller answers for a failure is the caller's
 * (a tunnel 403/502/504, a fetch 502/504), so none is logged here.
 *
 * The callback runs exactly once, from the loop and never from inside
 * drp_upstream_connect(), unless drp_upstream_connect_cancel() came
 * first. The handle is gone once the callback returns; cancelling it
 * from inside the callback is allowed and does nothing. The connect
 * holds a reference to ucf until it ends.
 */
#ifndef DRP_UPSTREAM_CONNECT_H
#define DRP_UPSTREAM_CONNECT_H

#include <stdbool.h>
#include <stdint.h>

#include "upstream/upstream.h"

typedef struct drp_upstream_connect drp_upstream_connect_t;

/* Why no connection (values are stable; append only). */
enum drp_upstream_connect_err {
	DRP_UPCONNECT_OK = 0,
	/* The resolver failed: dns_status (-ENOENT: no such host,
	 * -ETIMEDOUT: its own deadline passed, -EIO: other). */
	DRP_UPCONNECT_RESOLVE = 1,
	/* Resolved, but to no address the policy allows (n_refused were
	 * refused). */
	DRP_UPCONNECT_REFUSED = 2,
	/* With resolve_deadline: no answer within connect_timeout. */
	DRP_UPCONNECT_RESOLVE_TIMEOUT = 3,
	/* Every address failed; the last one with an error. */
	DRP_UPCONNECT_FAILED = 4,
	/* Every address failed; the last one timed out. */
	DRP_UPCONNECT_TIMEOUT = 5,
	/* The parent proxy did not open the tunnel: it answered the
	 * CONNECT with parent_status (e.g. 407, 403, 502), or closed the
	 * connection or let connect_timeout pass (parent_status 0);
	 * detail says which. */
	DRP_UPCONNECT_PARENT = 6,
};

/* Seconds before the next address of the other family is tried while
 * the earlier attempts go on (RFC 8305 recommends 250 ms). */
#define DRP_UPSTREAM_STAGGER 0.25

typedef struct drp_upstream_connect_result {
	enum drp_upstream_connect_err err;
	int dns_status;	    /* RESOLVE */
	unsigned n_refused; /* REFUSED */
	/* "1.2.3.4:443": the address connected to, or the last one tried;
	 * "" if none was (the parent's, via a parent). */
	char addr[64];
	/* The connection goes through the parent proxy (then FAILED and
	 * TIMEOUT are about reaching the parent). */
	bool via_parent;
	int parent_status; /* PARENT */
	/* PARENT: "407 Proxy Authentication Required", "closed the
	 * connection", "timed out" (sanitised, never a header value). */
	char detail[128];
} drp_upstream_connect_result_t;

/* fd >= 0: connected (non-blocking, close-on-exec); the callee owns it.
 * fd < 0: res->err says why. res is valid during the call only. */
typedef void (*drp_upstream_connect_cb)(
	void *arg, int fd, const drp_upstream_connect_result_t *res);

typedef struct drp_upstream_connect_req {
	const char *host; /* lower-case name or IP literal */
	uint16_t port;
	unsigned conn_id; /* client connection, for log lines */
	/* Bound the resolving by connect_timeout too (RESOLVE_TIMEOUT);
	 * otherwise only the resolver's own deadline applies. */
	bool resolve_deadline;
	/* A plain-http request: through a parent, no CONNECT (the caller
	 * writes the request in absolute form to res->via_parent's fd). */
	bool http_forward;
	/* The operator's own store (the cache's S3 endpoint): the address
	 * policy does not apply, as for a [resolve] entry. Set only for an
	 * endpoint the configuration names, never for a client's target. */
	bool policy_exempt;
} drp_upstream_connect_req_t;

/* Start connecting (req's strings are copied). Never NULL. */
drp_upstream_connect_t *
drp_upstream_connect(drp_upstream_t *ctx, drp_upstream_conf_t *ucf,
		     const drp_upstream_connect_req_t *req,
		     drp_upstream_connect_cb cb, void *arg);
/* Stop: no callback, the socket being connected is closed. NULL is
 * allowed. */
void drp_upstream_connect_cancel(drp_upstream_connect_t *uc);

#endif
