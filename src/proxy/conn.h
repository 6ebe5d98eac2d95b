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
 *   any --error/timeout/EOF--> drp_conn_close()
 *
 * Thread: owned by one worker loop.
 */
#ifndef DRP_PROXY_CONN_H
#define DRP_PROXY_CONN_H

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
};
const char *drp_conn_state_str(enum drp_conn_state s);

typedef struct drp_conn drp_conn_t;

/* Take ownership of an accepted socket. */
void drp_conn_accept(drp_worker_t *w, int fd, const struct sockaddr *peer,
		     socklen_t peerlen);
void drp_conn_close(drp_conn_t *c, const char *reason);
/* Drain: close the connection if it is idle between requests; otherwise
 * ask it to close after the current request. */
void drp_conn_drain(drp_conn_t *c);
/* drp_conn_drain() / drp_conn_close() every connection of a worker. */
void drp_conn_drain_all(drp_worker_t *w);
void drp_conn_close_all(drp_worker_t *w, const char *reason);

#endif
