/* SPDX-License-Identifier: MIT */
/*
 * Request-target parsing (RFC 9112 §3.2) and registry path classification.
 * Pure functions, thread-safe.
 */
#ifndef DRP_HTTP_URI_H
#define DRP_HTTP_URI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DRP_HOST_MAX 255

/*
 * CONNECT authority-form "host:port" / "[v6]:port". The port is required
 * (1..65535). host is lower-cased into `host` (without brackets), must be
 * a valid DNS name (LDH labels, 1..63 chars each, total <= 253, optional
 * trailing dot removed) or an IPv4/IPv6 literal; *is_ip set accordingly.
 * Returns 0 or -EINVAL.
 */
int drp_uri_parse_authority(const char *s, size_t len,
			    char host[DRP_HOST_MAX + 1], uint16_t *port,
			    bool *is_ip);

/* Host header value: same as above but the port is optional (*port = 0
 * when absent). */
int drp_uri_parse_host_header(const char *s, size_t len,
			      char host[DRP_HOST_MAX + 1], uint16_t *port);

/*
 * Absolute-form "http://host[:port]/path?query" (scheme case-insensitive;
 * only http; userinfo rejected). Sets host (lower-case), *port (80 if
 * absent), and *path and *path_len to the origin-form part ("/" if empty),
 * pointing into s. Returns 0, -EINVAL, or -EPROTONOSUPPORT (https:// or
 * other scheme).
 */
int drp_uri_parse_absolute(const char *s, size_t len,
			   char host[DRP_HOST_MAX + 1], uint16_t *port,
			   const char **path, size_t *path_len);

/*
 * Same origin (RFC 6454): scheme (tls or not), host and effective port
 * (0 stands for the scheme's default, 443 or 80). Host names compare
 * case-insensitively (a trailing dot is ignored). Credentials follow a
 * redirect only to the same origin.
 */
bool drp_uri_same_origin(bool tls_a, const char *host_a, uint16_t port_a,
			 bool tls_b, const char *host_b, uint16_t port_b);

/* "https://host:port" (host lower-cased, an IPv6 literal in brackets, the
 * effective port always written) into buf. Returns the length, or -ENOSPC
 * (buf then holds "" if len > 0). */
int drp_uri_origin(char *buf, size_t len, bool tls, const char *host,
		   uint16_t port);

/* Length of the path without "?query" / "#fragment". */
size_t drp_uri_path_len(const char *path, size_t len);

/* Registry API path classification (OCI distribution spec). */
enum drp_route_kind {
	DRP_ROUTE_OTHER = 0,	     /* not a /v2/ API path */
	DRP_ROUTE_PING = 1,	     /* /v2/ */
	DRP_ROUTE_MANIFEST_TAG = 2,  /* /v2/<name>/manifests/<tag> */
	DRP_ROUTE_MANIFEST_DIGEST = 3, /* /v2/<name>/manifests/<digest> */
	DRP_ROUTE_BLOB = 4,	     /* /v2/<name>/blobs/<digest> */
	DRP_ROUTE_UPLOAD = 5,	     /* /v2/<name>/blobs/uploads/... */
	DRP_ROUTE_TAGS = 6,	     /* /v2/<name>/tags/list */
	DRP_ROUTE_CATALOG = 7,	     /* /v2/_catalog */
	DRP_ROUTE_REFERRERS = 8,     /* /v2/<name>/referrers/<digest> */
	DRP_ROUTE_V2_OTHER = 9,	     /* any other /v2/ path */
};

typedef struct drp_route {
	enum drp_route_kind kind;
	const char *name; /* repository name, into the path */
	size_t name_len;
	const char *ref; /* tag or digest, into the path */
	size_t ref_len;
} drp_route_t;

/*
 * Classify an origin-form path (query ignored). Name components follow
 * the spec grammar ([a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* joined by '/');
 * tags [A-Za-z0-9_][A-Za-z0-9._-]{0,127}; digests are validated with
 * drp_digest_valid(). A /v2/ path with an invalid name/ref classifies as
 * DRP_ROUTE_V2_OTHER with `bad = true` set in the return (-EINVAL).
 * Returns 0 or -EINVAL (the caller answers 400 for a bad name/digest).
 */
int drp_route_classify(const char *path, size_t len, drp_route_t *r);

/* "sha256:<64 lower hex>" (also sha512:<128 hex>); other algorithms per
 * the spec grammar are accepted syntactically but *is_sha256 tells the
 * caller whether it can verify. */
bool drp_digest_valid(const char *s, size_t len, bool *is_sha256);

#endif
