/* SPDX-License-Identifier: MIT */
/*
 * The access log: one line per request and per tunnel, written with a
 * single write(2) (lines from several workers never interleave):
 *
 *   TIME CLIENT HOST:PORT METHOD PATH STATUS BYTES_IN BYTES_OUT MS
 *   UP_STATUS RESULT USER
 *
 *   2026-11-27T18:40:00.123Z 10.0.0.7 quay.io:443 GET
 *   /v2/x/blobs/sha256:ab.. 200 0 1048576 35 200 MISS alice
 *
 * Missing fields are "-". PATH never carries a query string (signed CDN
 * URLs hold credentials there) and is %-escaped, USER (the proxy user of
 * the connection) too; no header value is ever logged, so Authorization,
 * tokens and passwords cannot appear.
 */
#ifndef DRP_PROXY_ACCESSLOG_H
#define DRP_PROXY_ACCESSLOG_H

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
	const char *result; /* PASS, TUNNEL, HIT, MISS, ... */
	const char *user;   /* proxy user (Proxy-Authorization); NULL */
} drp_access_t;

/* Format one line into buf (always NUL-terminated); returns its length
 * including the newline. */
size_t drp_accesslog_format(const drp_access_t *a, double now, char *buf,
			    size_t size);
void drp_accesslog_write(const struct drp_runtime *rt, const drp_access_t *a);

#endif
