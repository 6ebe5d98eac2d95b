/* SPDX-License-Identifier: MIT */
/*
 * A client connection: the explicit state machine from the first byte on
 * the proxy port to the close. Exactly one teardown, drp_conn_close(),
 * which logs the reason.
 *
 *   PROXY_HEAD --CONNECT intercepted--> TLS_HANDSHAKE --> HEAD <--> EXCHANGE
 *       |      --CONNECT other-------> TUNNEL_CONNECT --> TUNNEL
 *       |      --GET http://...------> EXCHANGE (plain forward) --> PROXY_HEAD
 *       +------ GET /ca.crt ... -----> local answer --> PROXY_HEAD
 *   PROXY_HEAD <--> PROXY_AUTH: Proxy-Authorization being verified off the
 *       loop; the same request is dispatched again with the verdict
 *   PROXY_PROTO --header read--> PROXY_HEAD (or TLS_HANDSHAKE on a mirror
 *       TLS listener): only for peers in proxy_protocol_from; the header's
 *       client address replaces the peer's for policy and the access log
 *   any --error/timeout/EOF--> drp_conn_close() --> CLOSED
 *
 * Closing and freeing are apart: drp_conn_close() tears everything down
 * (watchers, sockets, the fetch, cache readers, the access-log line) and
 * leaves the struct in state CLOSED on its worker's closed list; the
 * worker frees it at the end of the loop's turn (an ev_prepare watcher,
 * drp_conn_reap). So a function whose callee may have closed the
 * connection can still look at it: every caller checks
 * drp_conn_closed(c) after such a call and then only returns.
 *
 * Thread: owned by one worker loop.
 */
#ifndef DRP_PROXY_CONN_H
#define DRP_PROXY_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proxy/worker.h"

enum drp_conn_state {
	DRP_CONN_PROXY_HEAD = 0,     /* plain request on the proxy port */
	DRP_CONN_TUNNEL_CONNECT = 1, /* resolving/connecting to the origin */
	DRP_CONN_TUNNEL = 2,	     /* relaying bytes */
	DRP_CONN_TLS_HANDSHAKE = 3,  /* TLS with a forged certificate */
	DRP_CONN_HEAD = 4,	     /* intercepted: reading a request head */
	DRP_CONN_EXCHANGE = 5,	     /* a request is being served */
	DRP_CONN_FLUSH_CLOSE = 6,    /* writing the last bytes, then close */
	DRP_CONN_PROXY_AUTH = 7,     /* waiting for a password verification */
	DRP_CONN_LINGER = 8, /* response sent, our side shut: reading what the
				client still sends until it closes */
	DRP_CONN_CLOSED = 9, /* torn down; freed at the end of the loop turn */
	DRP_CONN_PROXY_PROTO = 10, /* a peer in proxy_protocol_from: reading
				      its PROXY header (then PROXY_HEAD, or
				      TLS_HANDSHAKE on a mirror TLS port) */
};
const char *drp_conn_state_str(enum drp_conn_state s);

typedef struct drp_conn drp_conn_t;

/* Take ownership of an accepted socket. */
void drp_conn_accept(drp_worker_t *w, int fd, const struct sockaddr *peer,
		     socklen_t peerlen);
/* A connection to a mirror TLS listener: TLS with the runtime's
 * mirror_leaf, then origin-form requests as on the plain port (the
 * registry mirror, /ca.crt, ...); no CONNECT, no proxying. */
void drp_conn_accept_mirror_tls(drp_worker_t *w, int fd,
				const struct sockaddr *peer, socklen_t peerlen);
/* Test seam (the fuzz target): take fd as a session whose CONNECT to
 * host:port was intercepted and whose TLS is done, the client speaking
 * plaintext HTTP on fd (state HEAD; no TLS layer). */
void drp_conn_accept_intercepted(drp_worker_t *w, int fd,
				 const struct sockaddr *peer, socklen_t peerlen,
				 const char *host, uint16_t port);
/* Tear the connection down (idempotent); the memory stays valid, in
 * state CLOSED, until drp_conn_reap() runs at the end of the loop turn. */
void drp_conn_close(drp_conn_t *c, const char *reason);
/* True once drp_conn_close() ran: the caller must only return. */
bool drp_conn_closed(const drp_conn_t *c);
/* Free the worker's closed connections. Called by the worker's ev_prepare
 * watcher (nothing is on the stack then) and after its loop ended. */
void drp_conn_reap(drp_worker_t *w);
/* Drain: close the connection if it is idle between requests; otherwise
 * ask it to close after the current request. */
void drp_conn_drain(drp_conn_t *c);
/* What a worker runs (drp_workers_start): connections, the fills'
 * wakeups and the plugins' end. */
extern const drp_worker_hooks_t drp_conn_worker_hooks;
/* drp_conn_drain() / drp_conn_close() every connection of a worker. */
void drp_conn_drain_all(drp_worker_t *w);
void drp_conn_close_all(drp_worker_t *w, const char *reason);

#endif
