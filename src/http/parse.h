/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.1 message parsing (RFC 9112), incremental and allocation-free.
 *
 * Heads are parsed from a contiguous buffer; the parser is re-run from the
 * start when more bytes arrive (heads are small and bounded by
 * max_head). Results point INTO the caller's buffer and are valid while
 * the head stays there. Bodies are framed by drp_http_body_t, which walks
 * Content-Length or chunked framing and reports payload spans, so a proxy
 * can forward the raw bytes while a cache consumes the decoded payload.
 *
 * Strictness (request smuggling defence): bare CR, obs-fold, whitespace
 * before the colon, invalid token characters, both Content-Length and
 * Transfer-Encoding, several differing Content-Length values, a
 * Transfer-Encoding whose final coding is not chunked (requests), and
 * non-digit lengths are errors.
 *
 * Thread: pure functions on caller-owned state.
 */
#ifndef DRP_HTTP_PARSE_H
#define DRP_HTTP_PARSE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DRP_HTTP_MAX_HEADERS 100

typedef struct drp_http_header {
	const char *name;
	size_t name_len;
	const char *value; /* leading/trailing OWS stripped */
	size_t value_len;
} drp_http_header_t;

typedef struct drp_http_msg {
	/* request line (requests only) */
	const char *method;
	size_t method_len;
	const char *target;
	size_t target_len;
	/* status line (responses only) */
	int status;
	const char *reason;
	size_t reason_len;
	int minor_version; /* 0 or 1 (HTTP/1.x) */
	drp_http_header_t headers[DRP_HTTP_MAX_HEADERS];
	size_t num_headers;
	size_t head_len; /* bytes of the head incl. the final CRLFCRLF */
} drp_http_msg_t;

/* Parse results (negative errno-style). */
#define DRP_HTTP_INCOMPLETE (-EAGAIN) /* need more bytes */
/* -EINVAL: malformed (400); -E2BIG: head larger than max_head, or more
 * than DRP_HTTP_MAX_HEADERS headers (431); -EPROTONOSUPPORT: not HTTP/1.x
 * (505). */

/* Returns head length (>0) on success, or a negative code above. */
ssize_t drp_http_parse_request(const char *buf, size_t len, size_t max_head,
			       drp_http_msg_t *msg);
ssize_t drp_http_parse_response(const char *buf, size_t len, size_t max_head,
				drp_http_msg_t *msg);

/*
 * Re-parse after more bytes arrived: buf[0..prev_len) is unchanged and
 * the last call on it returned DRP_HTTP_INCOMPLETE (prev_len = 0: first
 * call). Until a CRLFCRLF arrives (or max_head is reached) only the new
 * bytes are looked at, so a head trickled in one byte per read costs
 * linear instead of quadratic time. The result is that of
 * drp_http_parse_request/_response, except that an error the cheap check
 * cannot see (one that depends on where the byte is, e.g. obs-fold, a bad
 * version, or the header count) may be reported only once the head is
 * complete or max_head is reached; bytes never valid in a head (NUL,
 * other CTLs, DEL, bare CR or LF) are refused at once.
 */
ssize_t drp_http_parse_request_more(const char *buf, size_t len,
				    size_t prev_len, size_t max_head,
				    drp_http_msg_t *msg);
ssize_t drp_http_parse_response_more(const char *buf, size_t len,
				     size_t prev_len, size_t max_head,
				     drp_http_msg_t *msg);

/* Case-insensitive lookup of the first header with this name (NULL if
 * none). */
const drp_http_header_t *drp_http_find(const drp_http_msg_t *msg,
				       const char *name);
/* Like drp_http_find starting after `prev` (iterate repeated headers). */
const drp_http_header_t *drp_http_find_next(const drp_http_msg_t *msg,
					    const char *name,
					    const drp_http_header_t *prev);
/* True if any header `name` holds the comma-separated token `tok`
 * (case-insensitive), e.g. Connection: keep-alive, close. */
bool drp_http_has_token(const drp_http_msg_t *msg, const char *name,
			const char *tok);
bool drp_http_method_is(const drp_http_msg_t *msg, const char *method);
/* Hop-by-hop: Connection, Keep-Alive, Proxy-Connection, TE, Trailer,
 * Transfer-Encoding, Upgrade, Proxy-Authorization, Proxy-Authenticate,
 * and every header named in a Connection header of msg. */
bool drp_http_is_hop_by_hop(const drp_http_msg_t *msg,
			    const drp_http_header_t *h);

/* Body framing. */
enum drp_http_body_mode {
	DRP_HTTP_BODY_NONE = 0,	   /* no body */
	DRP_HTTP_BODY_LENGTH = 1,  /* Content-Length */
	DRP_HTTP_BODY_CHUNKED = 2, /* Transfer-Encoding: chunked */
	DRP_HTTP_BODY_EOF = 3,	   /* response delimited by close */
};

/*
 * Decide framing. Requests: chunked, Content-Length or none. Responses
 * (req_method = the request's method): none for HEAD, 1xx, 204, 304 and a
 * 2xx to CONNECT; else chunked, Content-Length, or EOF. Returns 0 and
 * sets *mode and *length, or -EINVAL for conflicting/invalid framing.
 */
int drp_http_request_framing(const drp_http_msg_t *req,
			     enum drp_http_body_mode *mode, uint64_t *length);
int drp_http_response_framing(const drp_http_msg_t *resp,
			      const char *req_method,
			      enum drp_http_body_mode *mode, uint64_t *length);

typedef struct drp_http_body {
	enum drp_http_body_mode mode;
	uint64_t remaining; /* LENGTH: bytes left; CHUNKED: left in chunk */
	uint64_t total;	    /* payload bytes seen so far */
	int state;	    /* chunked sub-state, private */
	size_t line_len; /* private: bytes in the current size/trailer line */
	bool done;
} drp_http_body_t;

void drp_http_body_init(drp_http_body_t *b, enum drp_http_body_mode mode,
			uint64_t length);
/*
 * Feed `len` raw bytes. Consumes a prefix of them and returns its length
 * (>= 0), setting *data and *data_len to the payload span contained in the
 * consumed prefix (possibly empty; it points into `in`). Call repeatedly
 * until all input is consumed or b->done. Bytes after the end of the
 * message are never consumed. Returns -EINVAL on malformed chunked
 * framing (bad hex, missing CRLF, chunk size overflow, trailer line
 * longer than 8 KiB). EOF mode consumes everything; the caller sets done
 * at connection close.
 */
ssize_t drp_http_body_feed(drp_http_body_t *b, const char *in, size_t len,
			   const char **data, size_t *data_len);

/* Standard reason phrase ("Not Found"); "Unknown" for others. */
const char *drp_http_reason(int status);

#endif
