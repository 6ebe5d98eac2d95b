/* SPDX-License-Identifier: MIT */
/*
 * One upstream HTTP exchange: connect (pooled keep-alive connections per
 * host, DNS with [resolve] overrides, address policy, TLS with
 * verification), send the request head and stream its body, read the
 * response, follow blob redirects, and deliver the final response to a
 * sink, streaming, with back-pressure.
 *
 * This is the seam for the later layers:
 *  - the auth layer sets drp_fetch_hooks_t: decorate() edits the outgoing
 *    head before every attempt; challenge() sees a 401 and may return
 *    PENDING, later calling drp_fetch_retry() once;
 *  - the cache tees the body: the sink receives decoded payload bytes
 *    (never transfer framing), so one fetch can feed a cache writer and
 *    any number of waiting clients.
 *
 * Context: a fetch runs on the loop of the drp_upstream_t it is given
 * (its pool, its resolver) under the rules of the drp_upstream_conf_t it
 * is given, of which it holds a reference until it is freed (see
 * upstream/upstream.h). Callbacks are never invoked from inside
 * drp_fetch_start().
 */
#ifndef DRP_UPSTREAM_FETCH_H
#define DRP_UPSTREAM_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/parse.h"
#include "upstream/upstream.h"
#include "util/buf.h"

typedef struct drp_fetch drp_fetch_t;

typedef struct drp_fetch_sink {
	/* Final response head (redirects and auth retries already handled).
	 * resp and its strings are valid during the call only. mode/length
	 * describe the payload that body() will deliver. */
	void (*head)(void *arg, const drp_http_msg_t *resp,
		     enum drp_http_body_mode mode, uint64_t length);
	/* Bytes of payload the sink accepts now; 0 pauses reading until
	 * drp_fetch_resume(). */
	size_t (*room)(void *arg);
	/* Decoded payload bytes (never more than room() said). */
	void (*body)(void *arg, const char *data, size_t len);
	/* Request-body space became available (see drp_fetch_send_body). */
	void (*req_room)(void *arg);
	/* Exactly once, last. err 0: the whole response was delivered.
	 * err < 0: failed; if head() was not called yet, http_status is the
	 * status to answer the client with (502, 504) and reason says why. */
	void (*done)(void *arg, int err, int http_status, const char *reason);
} drp_fetch_sink_t;

enum drp_fetch_auth {
	DRP_FETCH_AUTH_OK = 0,	     /* proceed / retry now */
	DRP_FETCH_AUTH_DECLINED = 1, /* not handled: pass the 401 on */
	DRP_FETCH_AUTH_PENDING = 2,  /* will call drp_fetch_retry() later */
	DRP_FETCH_AUTH_ERROR = 3,    /* fail the fetch (502) */
};

typedef struct drp_fetch_hooks {
	/* Called before each attempt with the header lines that will be sent
	 * (without Host and framing); may add or remove lines. Also called
	 * for redirect targets (drp_fetch_host() tells where the attempt
	 * goes): add credentials only while drp_fetch_at_origin(). */
	void (*decorate)(void *arg, drp_fetch_t *f, drp_buf_t *headers);
	/* Called on every 401 to a request without a body to replay (no
	 * body, or an empty one). A fetch is retried after a challenge at
	 * most once: the first call may return OK or PENDING, a later one
	 * only DECLINED or ERROR (OK and PENDING then count as DECLINED). */
	enum drp_fetch_auth (*challenge)(void *arg, drp_fetch_t *f,
					 const drp_http_msg_t *resp);
	/* Optional. Called exactly once, when the fetch is freed (after the
	 * sink's done(), or in drp_fetch_cancel()): the end of the hooks'
	 * per-fetch state; a challenge still pending is abandoned here. */
	void (*release)(void *arg, drp_fetch_t *f);
	void *arg;
	/* Optional. Every response head of the exchange (redirects and
	 * challenges included), before the fetch acts on it; resp is valid
	 * during the call only. drp_fetch_at_origin() tells whether the
	 * attempt it answers carried credentials. */
	void (*response)(void *arg, drp_fetch_t *f, const drp_http_msg_t *resp);
} drp_fetch_hooks_t;

typedef struct drp_fetch_req {
	bool tls;
	const char *host; /* lower-case name or IP literal */
	uint16_t port;
	const char *method;
	const char *target; /* origin-form, query included */
	/* "Name: value\r\n" lines to send, without Host, Connection,
	 * Content-Length and Transfer-Encoding (the fetch sets those). */
	const char *headers;
	size_t headers_len;
	enum drp_http_body_mode body_mode; /* NONE, LENGTH or CHUNKED */
	uint64_t body_len;
	bool follow_redirects; /* blob GET/HEAD: follow 3xx inside */
	unsigned conn_id;      /* client connection, for log lines */
	/* To the operator's own store (upstream/s3.c): exempt from the
	 * address policy (drp_upstream_connect_req_t.policy_exempt); its
	 * pooled connections are kept apart from everyone else's. */
	bool policy_exempt;
} drp_fetch_req_t;

drp_fetch_t *drp_fetch_new(drp_upstream_t *ctx, drp_upstream_conf_t *ucf,
			   const drp_fetch_req_t *req,
			   const drp_fetch_sink_t *sink, void *sink_arg);
void drp_fetch_set_hooks(drp_fetch_t *f, const drp_fetch_hooks_t *hooks);
void drp_fetch_start(drp_fetch_t *f);
/* Request body: offer bytes; returns how many were taken (bounded
 * buffering). sink->req_room() announces new space. */
size_t drp_fetch_send_body(drp_fetch_t *f, const char *data, size_t len);
/* How many request-body bytes drp_fetch_send_body() would take now. */
size_t drp_fetch_body_room(const drp_fetch_t *f);
/* The request body is complete. */
void drp_fetch_end_body(drp_fetch_t *f);
/* The sink has room again. */
void drp_fetch_resume(drp_fetch_t *f);
/* After PENDING from challenge(): try again (once). */
void drp_fetch_retry(drp_fetch_t *f);
/*
 * Fail the fetch for an authorization reason: the sink's done() gets
 * err -EACCES, http_status (403, 502, ...) and reason (copied). Callable
 * from decorate() (that attempt is not sent), from challenge() (its
 * result is then ignored) and while a challenge is pending (instead of
 * drp_fetch_retry()). done() runs later, from the loop, never from inside
 * this call.
 */
void drp_fetch_auth_fail(drp_fetch_t *f, int http_status, const char *reason);
/* Abort (the client went away): the upstream connection is closed, not
 * pooled, and no sink callback is invoked after this. It may be called
 * from the sink's own head(), body() or done() (the fetch is then freed
 * when that callback returns), never from room() or req_room(). */
void drp_fetch_cancel(drp_fetch_t *f);

int drp_fetch_upstream_status(const drp_fetch_t *f);
/* Some answer in this exchange was 403: an identity was denied. (A 401
 * that a challenge answered is not a refusal: if the retry succeeds, the
 * identity it carried was accepted.) */
bool drp_fetch_refused(const drp_fetch_t *f);
uint64_t drp_fetch_bytes_up(const drp_fetch_t *f);
const char *drp_fetch_host(const drp_fetch_t *f);
/*
 * Whether credentials may go with the current attempt: it goes over TLS
 * to the request's own origin (scheme, host, effective port), and no
 * redirect left that origin before. The fetch itself drops the
 * Authorization lines it was given once this turns false; hooks must not
 * add any then. A redirect to the same origin keeps them.
 */
bool drp_fetch_at_origin(const drp_fetch_t *f);
/* The request as given to drp_fetch_new (target: the current one, after
 * a redirect the redirect's). */
const char *drp_fetch_method(const drp_fetch_t *f);
const char *drp_fetch_target(const drp_fetch_t *f);
unsigned drp_fetch_conn_id(const drp_fetch_t *f);

/* Close ctx's pooled upstream connections (drain/shutdown). */
void drp_fetch_pool_flush(drp_upstream_t *ctx);

#endif
