/* SPDX-License-Identifier: MIT */
/*
 * Asynchronous DNS on a libev loop (c-ares). One resolver per worker
 * loop; not thread-safe across loops. Queries A and AAAA (getaddrinfo
 * semantics via ares_getaddrinfo), uses /etc/hosts and resolv.conf.
 * Results are delivered from the loop, never from inside
 * drp_dns_resolve() itself.
 */
#ifndef DRP_NET_DNS_H
#define DRP_NET_DNS_H

#include <ev.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct drp_dns drp_dns_t;
typedef struct drp_dns_query drp_dns_query_t;

typedef struct drp_dns_result {
	struct sockaddr_storage addr[8]; /* port set to the requested one */
	unsigned addrlen[8];
	unsigned n;
} drp_dns_result_t;

/* status: 0, or negative: -ENOENT (no such name / no address),
 * -ETIMEDOUT, -ECANCELED (never delivered: cancel suppresses callback),
 * -EIO (other resolver error). res is valid only during the call. */
typedef void (*drp_dns_cb)(void *arg, int status, const drp_dns_result_t *res);

/* timeout_s bounds each query as a whole (retries included): when it
 * passes, the callback gets -ETIMEDOUT. <= 0 means 5 s. NULL on failure.
 * res passed to a callback is never NULL; res->n is 0 unless status is 0.
 * A host may be a name, an IPv4/IPv6 literal, or "[v6 literal]". */
drp_dns_t *drp_dns_new(struct ev_loop *loop, double timeout_s);
/* Cancels all outstanding queries (their callbacks are not called). */
void drp_dns_free(drp_dns_t *d);
/* Start a query; numeric hosts resolve too (delivered async as well).
 * Returns a handle valid until the callback runs or cancel. */
drp_dns_query_t *drp_dns_resolve(drp_dns_t *d, const char *host, uint16_t port,
				 drp_dns_cb cb, void *arg);
void drp_dns_cancel(drp_dns_query_t *q);

/* Added: replace the servers from resolv.conf, e.g. "127.0.0.1:5353" or
 * "10.0.0.2,[fd00::53]:53" (comma-separated, port optional). Returns 0,
 * -EINVAL (bad list), -EBUSY (a query is still inside c-ares) or -EIO. */
int drp_dns_set_servers(drp_dns_t *d, const char *servers);

#endif
