/* SPDX-License-Identifier: MIT */
/*
 * Internals of a client connection, shared by conn.c (the state machine)
 * and cached.c (answers from the cache and from in-flight fills). Nothing
 * else includes this.
 */
#ifndef DRP_PROXY_CONN_INT_H
#define DRP_PROXY_CONN_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "conf/conf.h"
#include "http/parse.h"
#include "http/uri.h"
#include "net/dns.h"
#include "proxy/conn.h"
#include "upstream/fetch.h"
#include "tls/ca.h"
#include "tls/session.h"
#include "util/buf.h"

/* Bounds on what one connection buffers in each direction. */
#define DRP_CONN_OUT_HIGH (256 * 1024)

typedef struct drp_cached_req drp_cached_req_t;

struct drp_conn {
	struct drp_conn *next, *prev;
	drp_worker_t *w;
	drp_runtime_t *rt;
	unsigned id;
	int fd;
	struct sockaddr_storage peer;
	char peer_str[64];
	/* The proxy user its CONNECT (or absolute-form request) proved to
	 * be (Proxy-Authorization against [proxy] users_file); NULL:
	 * anonymous. Kept for every request inside the CONNECT. */
	char *user;
	/* Checking Proxy-Authorization off the loop (state PROXY_AUTH):
	 * the pending check, then its verdict for the request's second
	 * dispatch, which checks that the value is the same (pauth_key). */
	struct drp_users_wait *pauth_wait;
	bool pauth_ready;
	int pauth_verdict;
	char *pauth_user;
	uint8_t pauth_key[32];
	enum drp_conn_state state;
	ev_io io;
	ev_timer timer;
	ev_timer kick;
	ev_tstamp timer_for; /* timeout of the current state */
	drp_tls_t *tls;
	bool tls_active; /* handshake done: client I/O goes through TLS */
	drp_leaf_t *leaf;
	drp_buf_t in, out;
	/* Body bytes sent straight from memory the connection does not own
	 * (a fill's mapped spool), ahead of anything in out: queued only
	 * while out is empty (drp_conn_send_ref); zc_release(zc_arg) once
	 * they are written or the connection closes. */
	const char *zc;
	size_t zc_len;
	void (*zc_release)(void *arg);
	void *zc_arg;
	size_t head_scanned; /* c->in bytes a parse found incomplete */
	bool client_eof;
	bool draining;
	size_t lingered; /* bytes dropped in LINGER */
	/* CONNECT target */
	char host[DRP_HOST_MAX + 1];
	uint16_t port;
	bool intercepted;
	bool sni_mismatch;
	/* tunnel */
	int tfd;
	ev_io tio;
	drp_buf_t tbuf; /* origin -> client */
	bool t_eof, t_shut, c_shut;
	drp_dns_query_t *dnsq;
	struct sockaddr_storage taddr[8];
	unsigned taddrlen[8];
	unsigned n_taddr, cur_taddr;
	uint64_t t_up, t_down;
	ev_tstamp t_start;
	/* the request being served */
	unsigned requests;
	drp_fetch_t *fetch;
	bool req_active;
	char method[16];
	char *path; /* without query, for the log */
	ev_tstamp start;
	uint64_t bytes_in, bytes_out;
	int status;
	int up_status;
	bool is_head_req;
	bool close_after;
	bool resp_head_sent;
	bool resp_chunked; /* we frame the response with chunked */
	bool req_body_done;
	drp_http_body_t reqbody;
	const char *result; /* access-log cache result, X-Cache */
	bool is_ping;	    /* GET/HEAD /v2/ */
	char *repo;	    /* repository of the request (NULL: none) */
	/* Its per-registry settings (tag_ttl, push, the selected [registry]
	 * section), resolved once per intercepted request by
	 * drp_auth_intercept (drp_auth_resolve). */
	drp_conf_regset_t regset;
	/* Set by drp_auth_intercept: cached content goes to this request
	 * only after the upstream accepted the client's own credentials for
	 * it (a HEAD), never straight from the cache. */
	bool auth_confirm;
	/* cached path (registry/cached.c) */
	drp_cached_req_t *creq;
};

/* conn.c services for cached.c */
void drp_conn_kick(drp_conn_t *c);
/* The response is complete: log with `result`, next request or close. */
void drp_conn_request_done(drp_conn_t *c, const char *result);
/* Answer with a short text error. */
void drp_conn_respond_error(drp_conn_t *c, int status, bool close_after,
			    const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Pass a body-less request through to the intercepted upstream (GET or
 * HEAD), streaming the answer; headers are forward-ready lines. */
void drp_conn_pass(drp_conn_t *c, const char *method, const char *target,
		   const char *headers, size_t headers_len, bool follow);
/* Reset the connection (RST): the client must see a broken transfer. */
void drp_conn_abort(drp_conn_t *c, const char *reason);

/* cached.c */
/* Take over an intercepted GET/HEAD of a blob or manifest; false = not
 * cacheable here, pass it through. */
bool drp_cached_dispatch(drp_conn_t *c, const drp_http_msg_t *req,
			 const drp_route_t *route, const char *target,
			 size_t target_len, const char *headers,
			 size_t headers_len);
/* Move body bytes from the cache or a fill to c->out. Returns 1 on
 * progress, 0 when waiting, -1 if the connection was closed. */
int drp_cached_pump(drp_conn_t *c);
/* Release what the request holds (close, or request end). */
void drp_cached_release(drp_conn_t *c);
/* The worker's fill_wake callback. */
void drp_cached_fill_wakeup(drp_worker_t *w);

/* Queue len bytes at p, which stay valid until release(arg) is called
 * (when they are written, or the connection closes). Only while nothing
 * else is queued: drp_conn_out_pending(c) must be false. */
void drp_conn_send_ref(drp_conn_t *c, const char *p, size_t len,
		       void (*release)(void *arg), void *arg);
/* Bytes queued for the client: in out, by reference, or accepted by the
 * TLS layer and not sent yet. */
static inline bool drp_conn_out_pending(const drp_conn_t *c)
{
	return drp_buf_pending(&c->out) > 0 || c->zc_len > 0 ||
	       (c->tls_active && drp_tls_out_pending(c->tls));
}

#endif
