/* SPDX-License-Identifier: MIT */
/*
 * AWS Signature Version 4 (header-based, "AWS4-HMAC-SHA256") for the
 * requests of the S3 cache backend: canonical request, string to sign,
 * signing key, signature and the Authorization header, for path-style
 * and virtual-hosted addressing, signed and unsigned payloads, and query
 * strings (multipart uploads: ?uploads, ?partNumber=N&uploadId=ID).
 *
 * S3 rules, which differ from other AWS services: the path is encoded
 * once and never normalised ("/a/../b" and "//" are signed as they are),
 * and x-amz-content-sha256 is sent and signed with every request.
 *
 * The caller gives the request in raw form (the object key as bytes, the
 * query parameters decoded); drp_s3sig_sign() encodes both, and returns
 * the request-target to put on the request line, which is exactly what
 * was signed, so the two can never disagree.
 *
 * Pure functions over their arguments: no clock (the caller passes the
 * time), no I/O, no shared state; thread-safe. SHA-256 and HMAC-SHA-256
 * come from nettle.
 */
#ifndef DRP_CACHE_S3SIG_H
#define DRP_CACHE_S3SIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* The payload hash of a body sent without hashing it first (allowed by
 * S3; meant for TLS, where the transport protects the body). */
#define DRP_S3SIG_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
/* SHA-256 of the empty string: the payload hash of a GET, HEAD, DELETE. */
#define DRP_S3SIG_EMPTY_SHA256                                                 \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* Flags of drp_s3sig_req_t. */
enum {
	/* Do not add (nor sign) x-amz-content-sha256: for AWS services
	 * other than S3, and for AWS's generic test-suite vectors. */
	DRP_S3SIG_NO_CONTENT_HEADER = 1u << 0,
};

/* The secret is used to derive the signing key and is never copied,
 * logged or returned. */
typedef struct drp_s3sig_creds {
	const char *access_key; /* "AKIAIOSFODNN7EXAMPLE" */
	const char *secret_key;
	const char *region;  /* "us-east-1"; RGW accepts any */
	const char *service; /* NULL means "s3" */
} drp_s3sig_creds_t;

/* A query parameter (raw, decoded) or a header. A query parameter with
 * value NULL has no value ("?uploads"); it is signed, and sent, as
 * "uploads=", which S3 treats the same. */
typedef struct drp_s3sig_kv {
	const char *name;
	const char *value;
} drp_s3sig_kv_t;

typedef struct drp_s3sig_req {
	const char *method; /* "GET", "PUT", "POST", "HEAD", "DELETE" */
	/* The Host header exactly as it will be sent: "s3.example.com",
	 * "bucket.s3.example.com", "127.0.0.1:7480" (a port only when not
	 * the scheme's default: S3 signs what the client sends). */
	const char *host;
	/* The raw path, starting with '/': "/bucket/key" or "/key". Bytes
	 * other than unreserved ones (A-Z a-z 0-9 - . _ ~) and '/' are
	 * percent-encoded here; do not pass an encoded path. */
	const char *path;
	const drp_s3sig_kv_t *query; /* raw; any order; may be NULL */
	size_t nquery;
	/* Further headers to sign, sent by the caller exactly as given
	 * (Range, If-None-Match, Content-Type, Content-MD5, x-amz-*). Names
	 * are case-insensitive; repeated names are joined with ',' in the
	 * order given. Host, X-Amz-Date, X-Amz-Content-Sha256 and
	 * Authorization are the signer's own and refused here. */
	const drp_s3sig_kv_t *headers; /* may be NULL */
	size_t nheaders;
	/* 64 lower-case hex digits (SHA-256 of the body),
	 * DRP_S3SIG_UNSIGNED_PAYLOAD, or NULL for the empty body. */
	const char *payload_hash;
	time_t now; /* signing time (UTC); the server allows +-15 min */
	unsigned flags;
} drp_s3sig_req_t;

/*
 * The signed request. The caller sends:
 *   METHOD target HTTP/1.1
 *   Host: <req.host>
 *   X-Amz-Date: <amz_date>
 *   X-Amz-Content-Sha256: <content_sha256>   (unless NO_CONTENT_HEADER)
 *   Authorization: <authorization>
 *   ... <req.headers> ...
 * Strings are owned by the structure; drp_s3sig_free() releases them.
 */
typedef struct drp_s3sig {
	char amz_date[17];	 /* "20130524T000000Z" */
	char content_sha256[65]; /* the payload hash; "" with the flag */
	char signature[65];	 /* hex HMAC-SHA-256 */
	char *target;		 /* "/bucket/key%24?partNumber=1&uploadId=x" */
	char *authorization;	 /* "AWS4-HMAC-SHA256 Credential=..." */
	/* The intermediate steps, for tests and debug logs (they hold no
	 * secret): */
	char *canonical_request;
	char *string_to_sign;
} drp_s3sig_t;

/*
 * Signs r with c into *out. Returns 0, or -EINVAL (and *out empty) for:
 * a missing field, a path not starting with '/', a method or header name
 * that is not an HTTP token, a header value or host with CR, LF or NUL,
 * a header the signer owns, a payload hash that is neither 64 lower-case
 * hex digits nor UNSIGNED-PAYLOAD, a time outside years 1970..9999.
 * Allocation failures abort (the strings are a few hundred bytes).
 */
int drp_s3sig_sign(const drp_s3sig_creds_t *c, const drp_s3sig_req_t *r,
		   drp_s3sig_t *out) __attribute__((warn_unused_result));
/* Releases what drp_s3sig_sign() stored; safe on a zeroed or freed one. */
void drp_s3sig_free(drp_s3sig_t *s);

/* The signing key for one day ("20130524"), region and service:
 * HMAC chain "AWS4"+secret -> date -> region -> service -> aws4_request.
 * A client may cache it for the day. */
void drp_s3sig_signing_key(const char *secret, const char *date8,
			   const char *region, const char *service,
			   uint8_t key[32]);

/* Lower-case hex SHA-256 of n bytes (a signed payload's hash). */
void drp_s3sig_sha256_hex(const void *p, size_t n, char hex[65]);

/* S3 addressing of an object. */
typedef enum drp_s3_addressing {
	DRP_S3_PATH = 0,    /* https://endpoint/bucket/key */
	DRP_S3_VIRTUAL = 1, /* https://bucket.endpoint/key */
} drp_s3_addressing_t;

/*
 * The Host header and raw path of object `key` (raw bytes, without a
 * leading '/'; "" for the bucket itself) in `bucket` at `endpoint`
 * ("s3.example.com" or "host:port"). Returns 0 and sets *host and *path
 * (free() both), or -EINVAL when the bucket name is not a valid S3
 * bucket name (3..63 of a-z 0-9 . -, starting and ending with a letter or
 * digit) or, for virtual-hosted addressing, contains a '.' (it would not
 * match the endpoint's wildcard certificate), or the endpoint is empty.
 */
int drp_s3_address(drp_s3_addressing_t how, const char *endpoint,
		   const char *bucket, const char *key, char **host,
		   char **path) __attribute__((warn_unused_result));

#endif
