/* SPDX-License-Identifier: MIT */
/*
 * One request being answered: the interface between the client
 * connection (proxy/conn.c, which implements it) and whatever answers
 * the request (the handlers: cache serving and fills in registry/, the
 * proxy-local token realm in auth/). A handler never sees the
 * connection: it reads the request's facts here and answers through the
 * table of operations.
 *
 * A handler that keeps state for the request sets x->h (its
 * drp_handler_t) and x->hs (the state): the connection calls release()
 * exactly once when the request ends or the connection closes, and
 * pump() whenever the client can take more bytes (or the handler kicked
 * it) while the answer goes on. A handler answers either at once (a
 * whole response to out, then drp_exch_done(), or just returning: the
 * connection ends the request) or later: it calls drp_exch_async() and
 * ends the request with drp_exch_done() (or abort) when it is answered.
 *
 * After any operation that may close the connection (done, error,
 * abort, pass), the handler checks drp_exch_closed() and then only
 * returns: release() has run by then.
 *
 * Thread: the connection's worker loop.
 */
#ifndef DRP_CORE_EXCHANGE_H
#define DRP_CORE_EXCHANGE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "conf/conf.h"
#include "util/buf.h"

/* Most bytes a handler queues in out before it waits for the client. */
#define DRP_EXCH_OUT_HIGH (256 * 1024)

typedef struct drp_exch drp_exch_t;

/* What a handler that answers later gives the connection. */
typedef struct drp_handler {
	/* Move more of the answer to the client. Returns 1 on progress, 0
	 * when waiting, -1 if the connection was closed. */
	int (*pump)(drp_exch_t *x);
	/* The request ended or the connection closed: free the state
	 * (x->hs). Called once; the handler must not touch x afterwards. */
	void (*release)(drp_exch_t *x);
	/* A handler that takes a request body (NULL: the connection reads
	 * none): how many bytes it takes now, the decoded bytes (at most
	 * that many), and their end. */
	size_t (*body_room)(drp_exch_t *x);
	void (*body)(drp_exch_t *x, const char *data, size_t len);
	void (*body_end)(drp_exch_t *x);
} drp_handler_t;

/* The connection's side, implemented by proxy/conn.c. */
typedef struct drp_exch_ops {
	/* Bytes queued for the client: in out, by reference, or in the
	 * TLS layer. */
	bool (*pending)(const drp_exch_t *x);
	/* Queue len bytes at p by reference (only while nothing is
	 * pending); release(arg) once written or the connection closes. */
	void (*send_ref)(drp_exch_t *x, const char *p, size_t len,
			 void (*release)(void *arg), void *arg);
	/* The handler answers later (see above). A handler without body
	 * operations reads no request body. */
	void (*async)(drp_exch_t *x);
	/* Call pump() again soon (deferred to the loop). */
	void (*kick)(drp_exch_t *x);
	/* The response is complete: log it with result, next request. */
	void (*done)(drp_exch_t *x, const char *result);
	/* Answer with a short text error (the request still ends with
	 * done). */
	void (*error)(drp_exch_t *x, int status, bool close_after,
		      const char *msg);
	/* Reset the connection: the client must see a broken transfer. */
	void (*abort)(drp_exch_t *x, const char *reason);
	/* Close the connection (a response cut short: its framing tells
	 * the client). */
	void (*close)(drp_exch_t *x, const char *reason);
	/* Pass a body-less request through to the intercepted upstream,
	 * streaming the answer; headers are forward-ready lines. */
	void (*pass)(drp_exch_t *x, const char *method, const char *target,
		     const char *headers, size_t headers_len, bool follow);
	/* True once the connection closed: only return. */
	bool (*closed)(const drp_exch_t *x);
} drp_exch_ops_t;

struct drp_exch {
	const drp_exch_ops_t *ops;
	/* Bytes to the client, copied: a head, body bytes. */
	drp_buf_t *out;

	/* The request, set by the connection (handlers read these). */
	unsigned id;		/* connection id, for logs */
	struct drp_worker *w;	/* the loop it runs on */
	struct drp_runtime *rt; /* its configuration generation */
	const char *host;	/* intercepted registry host */
	uint16_t port;		/* and port */
	const char *peer;	/* client address, for logs */
	const struct sockaddr *peer_addr;
	const char *user;   /* proxy user (Proxy-Authorization) or NULL */
	const char *method; /* as received */
	const char *path;   /* without query, for logs */
	const char *repo;   /* repository of the request, or NULL */
	bool head;	    /* a HEAD request */
	bool draining;	    /* the daemon is stopping */
	/* Registry-mirror mode (proxy/mirror.h): the request came to the
	 * proxy itself and named its registry, whose host and port are
	 * host and port above; mirror_origin is the proxy as the client
	 * reached it ("http://proxy:3128"), for the realm of challenges. */
	bool mirror;
	const char *mirror_origin;
	/* The proxy user a handle of the proxy's realm was given to (the
	 * mirror's clients cannot send Proxy-Authorization): set by auth/
	 * (then user points to it), freed by the connection at the end of
	 * the request. */
	char *realm_user;
	/* Per-registry settings (auth/ resolves them once per request). */
	drp_conf_regset_t regset;
	/* Cached content goes to this request only after the upstream
	 * accepted the client's own credentials for it (auth/). */
	bool auth_confirm;

	/* The answer, for the access log (handlers write these). */
	int status;	    /* to the client */
	int up_status;	    /* from the upstream, 0: none */
	uint64_t bytes_out; /* body bytes sent */
	const char *result; /* cache result: HIT, MISS, PASS ... */
	bool close_after;   /* close once answered */
	/* A response head is queued: an error can only cut the connection
	 * now. */
	bool head_sent;

	/* The handler answering later, and its state. */
	const drp_handler_t *h;
	void *hs;
};

static inline bool drp_exch_pending(const drp_exch_t *x)
{
	return x->ops->pending(x);
}
static inline bool drp_exch_room(const drp_exch_t *x)
{
	return drp_buf_pending(x->out) < DRP_EXCH_OUT_HIGH;
}
static inline void drp_exch_send_ref(drp_exch_t *x, const char *p, size_t len,
				     void (*release)(void *arg), void *arg)
{
	x->ops->send_ref(x, p, len, release, arg);
}
static inline void drp_exch_async(drp_exch_t *x)
{
	x->ops->async(x);
}
static inline void drp_exch_kick(drp_exch_t *x)
{
	x->ops->kick(x);
}
static inline void drp_exch_done(drp_exch_t *x, const char *result)
{
	x->ops->done(x, result);
}
static inline void drp_exch_abort(drp_exch_t *x, const char *reason)
{
	x->ops->abort(x, reason);
}
static inline void drp_exch_close(drp_exch_t *x, const char *reason)
{
	x->ops->close(x, reason);
}
static inline void drp_exch_pass(drp_exch_t *x, const char *method,
				 const char *target, const char *headers,
				 size_t headers_len, bool follow)
{
	x->ops->pass(x, method, target, headers, headers_len, follow);
}
static inline bool drp_exch_closed(const drp_exch_t *x)
{
	return x->ops->closed(x);
}
static inline void drp_exch_error(drp_exch_t *x, int status, bool close_after,
				  const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static inline void drp_exch_error(drp_exch_t *x, int status, bool close_after,
				  const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	x->ops->error(x, status, close_after, msg);
}

#endif
