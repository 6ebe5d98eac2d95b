/* SPDX-License-Identifier: MIT */
/*
 * The access log: one line per request and per tunnel, written with a
 * single write(2) (lines from several workers never interleave), and the
 * request metrics counted from the same facts (drp_accesslog_count).
 *
 * access_log_format = text:
 *
 *   TIME CLIENT HOST:PORT METHOD PATH STATUS BYTES_IN BYTES_OUT MS
 *   UP_STATUS RESULT USER CONN "UA"
 *
 *   2026-11-27T18:40:00.123Z 10.0.0.7 quay.io:443 GET
 *   /v2/x/blobs/sha256:ab.. 200 0 1048576 35 200 MISS alice c000042
 *   "containerd/v1.7.2"
 *
 * Missing fields are "-". PATH never carries a query string (signed CDN
 * URLs hold credentials there) and is %-escaped, USER (the proxy user of
 * the connection) too; UA (the User-Agent, at most 256 bytes) is quoted
 * with '"', '%', control and non-ASCII bytes %-escaped. CONN is the
 * connection's id as the daemon log writes it ("[c000042]"), so that one
 * client's requests and their diagnostics can be followed.
 *
 * access_log_format = json: one object per line with the members time,
 * conn, client, user, host ("HOST:PORT"), method, path, status, bytes_in,
 * bytes_out, ms, upstream_status, result, ua; missing ones are null,
 * result is lower-case ("hit", "tls_error": the metrics' result label,
 * and tls_error). Strings are JSON-escaped, and bytes that are not UTF-8
 * become U+FFFD, so that every line parses.
 *
 * The User-Agent is the one header value logged: never Authorization,
 * tokens or passwords.
 */
#ifndef DRP_PROXY_ACCESSLOG_H
#define DRP_PROXY_ACCESSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct drp_runtime;

typedef struct drp_access {
	const char *client;
	const char *host; /* CONNECT or absolute-form host; NULL = direct */
	uint16_t port;
	const char *method;
	const char *path;
	int status;
	uint64_t bytes_in;  /* request body bytes from the client */
	uint64_t bytes_out; /* response body bytes to the client */
	double duration;    /* seconds */
	int up_status;	    /* 0 = no upstream answer */
	const char *result; /* PASS, TUNNEL, HIT, MISS, ..., TLS_ERROR */
	const char *user;   /* proxy user (Proxy-Authorization); NULL */
	unsigned conn;	    /* connection id */
	const char *ua;	    /* User-Agent; NULL */
	/* For the metrics only: seconds to the first response byte (< 0:
	 * none), and whether the proxy cut the response short (an upstream
	 * failure mid-body, a digest mismatch). */
	double first_byte;
	bool cut;
} drp_access_t;

/* Format one line into buf (always NUL-terminated); returns its length
 * including the newline. */
size_t drp_accesslog_format(const drp_access_t *a, double now, char *buf,
			    size_t size);
size_t drp_accesslog_format_json(const drp_access_t *a, double now, char *buf,
				 size_t size);
/* Write a's line in the generation's format (nothing without a log). */
void drp_accesslog_write(const struct drp_runtime *rt, const drp_access_t *a);
/* Count the request in the metrics (util/metrics.h): the registry of
 * host:port under rt's configuration, the result (error: TLS_ERROR, a
 * response cut short, or a 5xx the proxy made rather than passed on from
 * the upstream: none answered, or its answer was unusable, e.g. bytes not
 * matching their digest), and where the bytes sent came from. */
void drp_accesslog_count(const struct drp_runtime *rt, const drp_access_t *a);

#endif
