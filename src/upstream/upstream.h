/* SPDX-License-Identifier: MIT */
/*
 * The two contexts every upstream exchange runs in.
 *
 * drp_upstream_t, one per event loop: the loop, its DNS resolver, the
 * keep-alive pool of idle upstream connections and the draining flag
 * (nothing is pooled once the loop drains). Its owner embeds it (a
 * worker: drp_worker_t.upstream; a test: a static one) and it is used
 * only from that loop's thread, so nothing in it is locked. The fields
 * are public so that a test can set one up by hand (loop, and dns if it
 * resolves names).
 *
 * drp_upstream_conf_t, one per configuration generation: what it says
 * about reaching upstreams (timeouts, the [resolve] table, the trust for
 * upstream TLS). The runtime makes it with its generation and holds the
 * first reference; every fetch and connect holds one of its own, so a
 * SIGHUP never changes the rules under a running exchange. It copies
 * what it needs from the conf and does not keep the conf alive.
 * Immutable after drp_upstream_conf_new(): any thread may read it;
 * ref/unref are atomic.
 *
 * Nothing in src/upstream/ knows the worker, the runtime or a client
 * connection: whoever starts a fetch or a connect passes these two.
 */
#ifndef DRP_UPSTREAM_UPSTREAM_H
#define DRP_UPSTREAM_UPSTREAM_H

#include <ev.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conf/conf.h"
#include "net/dns.h"
#include "tls/session.h"
#include "util/metrics.h"

struct drp_upconn;

typedef struct drp_upstream {
	struct ev_loop *loop;
	drp_dns_t *dns;		 /* NULL: names other than [resolve]'s fail */
	struct drp_upconn *idle; /* pooled connections (fetch.c's) */
	unsigned n_idle;
	bool draining; /* drp_upstream_drain() ran: pool nothing more */
} drp_upstream_t;

/* An address policy: whether a resolved address may be connected to. */
typedef bool (*drp_upstream_addr_policy_fn)(const struct sockaddr *sa);

typedef struct drp_upstream_conf {
	atomic_uint refs;
	double connect_timeout;	     /* s, per address tried */
	double handshake_timeout;    /* s, upstream TLS handshake */
	double body_timeout;	     /* s without progress in an exchange */
	drp_conf_resolve_t *resolve; /* [resolve], copied */
	unsigned n_resolve;
	drp_tls_client_cred_t *cred; /* trust for upstream TLS */
	/* The policy for resolved addresses: drp_upstream_addr_allowed
	 * (a test may set its own before first use). [resolve] entries
	 * are the operator's word and bypass it. */
	drp_upstream_addr_policy_fn addr_allowed;
	/* The parent proxy (upstream_proxy): NULL parent_host if none.
	 * parent_auth is the Proxy-Authorization value ("Basic ..."), NULL
	 * without a user; a secret: never logged. */
	char *parent_host;
	uint16_t parent_port;
	char *parent_auth;
	char **no_proxy; /* no_upstream_proxy names and ".suffix"es */
	unsigned n_no_proxy;
	drp_cidr_t *no_proxy_cidr; /* ... and CIDRs, for IP literals */
	unsigned n_no_proxy_cidr;
	/* Which configured registry a host is, for the metrics' registry
	 * label (NULL: everything is "other"). */
	drp_metrics_regmap_t *regmap;
} drp_upstream_conf_t;

/* Set up up for loop, with a resolver whose queries give up after
 * dns_timeout seconds (a resolver that cannot be made leaves dns NULL). */
void drp_upstream_init(drp_upstream_t *up, struct ev_loop *loop,
		       double dns_timeout);
/* The loop drains: close the pooled connections and pool no more. */
void drp_upstream_drain(drp_upstream_t *up);
/* After the loop's last fetch and connect ended: close the pooled
 * connections and free the resolver. */
void drp_upstream_fini(drp_upstream_t *up);

/* The upstream rules of conf (which the result does not reference);
 * loads the upstream trust (upstream_ca_file, verify_upstream), so it
 * blocks. NULL and err filled on failure. One reference. */
drp_upstream_conf_t *drp_upstream_conf_new(const drp_conf_t *conf, char *err,
					   size_t errlen);
drp_upstream_conf_t *drp_upstream_conf_ref(drp_upstream_conf_t *ucf);
/* NULL is allowed. */
void drp_upstream_conf_unref(drp_upstream_conf_t *ucf);

/* The proxy's address policy: false for addresses a tunnel or fetch must
 * never reach unless [resolve] names them (loopback, link-local,
 * unspecified, multicast, broadcast, their v4-mapped forms, and the
 * addresses of the proxy's own interfaces). Thread-safe. */
bool drp_upstream_addr_allowed(const struct sockaddr *sa);

/* [resolve] lookup: the addresses the operator named for host, in the
 * order written, at most max of them into ss and len (port = the
 * entry's, or `port` when the entry has none). Returns how many (0:
 * none; the resolver decides). */
unsigned drp_upstream_resolve_override(const drp_upstream_conf_t *ucf,
				       const char *host, uint16_t port,
				       struct sockaddr_storage *ss,
				       unsigned *len, unsigned max);

/* Does a connection to host go through the parent proxy? Yes if one is
 * configured, unless [resolve] names host or no_upstream_proxy exempts
 * it (a name, a ".suffix" of it or the suffix's own name, a CIDR
 * holding an IP literal). */
bool drp_upstream_via_parent(const drp_upstream_conf_t *ucf, const char *host)
	__attribute__((nonnull));

#endif
