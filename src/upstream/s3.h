/* SPDX-License-Identifier: MIT */
/*
 * The S3 client of the shared cache tier: object requests to an
 * S3-compatible store (Ceph RGW, MinIO, AWS S3), signed with AWS
 * Signature V4 (cache/s3sig.c), over the proxy's own asynchronous HTTP
 * client (upstream/fetch.c) on the calling loop: one TLS stack, one
 * trust configuration, one resolver with [resolve], one keep-alive pool,
 * and no thread per transfer. The configured endpoint is the one
 * exemption from the address policy (it is usually on a private
 * network, or on loopback in tests); redirects are never followed.
 *
 * What is here:
 *  - drp_s3_call(): one request, its answer collected in memory
 *    (bounded): HEAD, small PUT/GET/DELETE, the multipart verbs; the
 *    request body from memory or from a file range (streamed, never
 *    held whole);
 *  - drp_s3_get(): a GET whose body streams into the caller's sink,
 *    with back-pressure (objects read back into a fill);
 *  - drp_s3_upload_*(): an object uploaded from a file that may still
 *    be growing: a single conditional PUT when it is small, else a
 *    multipart upload whose parts go up as the file fills; nothing is
 *    visible under the key until drp_s3_upload_commit() says the bytes
 *    are final (verified) and the upload completes; any failure or
 *    drp_s3_upload_abort() aborts the multipart upload;
 *  - drp_s3_sweep(): abort the multipart uploads left unfinished for
 *    longer than an age, by the store's clock (each listing's Date
 *    against its uploads' Initiated), never by ours.
 *
 * S3's XML answers are read by tag matching (drp_s3_xml_next()); no
 * XML library.
 *
 * Thread: a drp_s3_t is immutable after drp_s3_new() and may be shared
 * by every loop. Each operation runs on the loop of the drp_upstream_t
 * it is given; its callback runs there, later, never from inside the
 * call that started it, exactly once unless the operation is cancelled.
 */
#ifndef DRP_UPSTREAM_S3_H
#define DRP_UPSTREAM_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/s3sig.h"
#include "upstream/fetch.h"
#include "upstream/upstream.h"

/* Parts of a multipart upload: S3 wants >= 5 MiB for every part but
 * the last; 8 MiB parts keep a 10 GiB blob under S3's 10000 parts. */
#define DRP_S3_PART_SIZE (8u * 1024 * 1024)

typedef struct drp_s3_conf {
	/* "http://host[:port]" or "https://host[:port]"; no path. */
	const char *endpoint;
	const char *bucket;
	const char *region; /* NULL: "us-east-1" */
	const char *access_key;
	const char *secret_key; /* copied; never logged */
	drp_s3_addressing_t addressing;
	/* Parts of multipart uploads; 0: DRP_S3_PART_SIZE. Objects smaller
	 * than one part go up with one PUT. */
	uint64_t part_size;
} drp_s3_conf_t;

typedef struct drp_s3 drp_s3_t;

/* NULL and err filled for a bad endpoint, bucket or missing key. */
drp_s3_t *drp_s3_new(const drp_s3_conf_t *conf, char *err, size_t errlen);
void drp_s3_free(drp_s3_t *s3);
/* "http://127.0.0.61:7480/bucket" (or the virtual-hosted form), for
 * log lines; no credential. */
const char *drp_s3_describe(const drp_s3_t *s3);

/* ---- one request, answered in memory ---- */

typedef struct drp_s3_req {
	const char *method; /* GET HEAD PUT POST DELETE */
	const char *key;    /* raw object key; "" for the bucket */
	const drp_s3sig_kv_t *query;
	size_t nquery;
	/* Signed and sent as given (Range, If-None-Match, Content-Type). */
	const drp_s3sig_kv_t *headers;
	size_t nheaders;
	/* The body: body_len bytes at body (copied, and signed), or
	 * fd_len bytes of fd from fd_off (streamed, sent as
	 * UNSIGNED-PAYLOAD: what S3 keeps is verified when it is read
	 * back, by digest). fd < 0 and body NULL: no body. */
	const void *body;
	size_t body_len;
	int fd;
	uint64_t fd_off;
	uint64_t fd_len;
	size_t max_body; /* answer bodies beyond this fail: -EFBIG */
} drp_s3_req_t;

typedef struct drp_s3_result {
	/* 0: an HTTP answer came (any status); < 0: none (connect, TLS,
	 * timeout, a truncated answer, -EFBIG), reason says why. */
	int err;
	const char *reason;
	int status;
	const char *body; /* NUL-terminated; body_len bytes */
	size_t body_len;
	char etag[128];		/* ETag, quotes kept; "" if none */
	char date[64];		/* Date, "" if none */
	char last_modified[64]; /* Last-Modified, "" if none */
	char code[64];		/* <Code> of an error answer, "" if none */
	uint64_t length;	/* Content-Length (HEAD), if has_length */
	bool has_length;
	char content_range[96]; /* Content-Range, "" if none */
	char content_type[128]; /* Content-Type, "" if none */
} drp_s3_result_t;

typedef struct drp_s3_call drp_s3_call_t;
typedef void (*drp_s3_cb)(void *arg, const drp_s3_result_t *res);

/* Start a request; cb runs once, later. The strings of req are copied.
 * conn_id tags the log lines (0: none). */
drp_s3_call_t *drp_s3_call(const drp_s3_t *s3, drp_upstream_t *ctx,
			   drp_upstream_conf_t *ucf, const drp_s3_req_t *req,
			   drp_s3_cb cb, void *arg);
/* No callback after this. */
void drp_s3_call_cancel(drp_s3_call_t *c);

/* ---- a GET streamed into a sink ---- */

/*
 * GET key (bytes [first, last] when range, else all of it) into sink,
 * exactly as drp_fetch_new() delivers an upstream answer: head() (a 404
 * is an answer too), room(), body(), done(). Returns the fetch (the
 * caller may drp_fetch_cancel() it, and must not once done() ran).
 */
drp_fetch_t *drp_s3_get(const drp_s3_t *s3, drp_upstream_t *ctx,
			drp_upstream_conf_t *ucf, const char *key, bool range,
			uint64_t first, uint64_t last,
			const drp_fetch_sink_t *sink, void *arg);

/* ---- an upload from a (growing) file ---- */

typedef struct drp_s3_upload drp_s3_upload_t;
/* err 0: the object is stored (or was already: a conditional PUT that
 * found it). err < 0: it is not, and no multipart upload is left open
 * (unless aborting failed too; then the sweep takes it). */
typedef void (*drp_s3_upload_cb)(void *arg, int err, const char *reason);

/* Upload bytes of fd (read with pread; the caller keeps it open until
 * cb ran) to key. Nothing is sent until avail() or commit(). */
drp_s3_upload_t *drp_s3_upload_new(const drp_s3_t *s3, drp_upstream_t *ctx,
				   drp_upstream_conf_t *ucf, const char *key,
				   int fd, drp_s3_upload_cb cb, void *arg);
/* Bytes [0, n) of the file are written and will not change: whole parts
 * among them may go up (a multipart upload starts with the first). */
void drp_s3_upload_avail(drp_s3_upload_t *u, uint64_t n);
/* The object is exactly bytes [0, total), verified: upload what is
 * left and complete (or PUT it whole, if no part went up). */
void drp_s3_upload_commit(drp_s3_upload_t *u, uint64_t total);
/* Hold the publication: once committed and every byte but the request
 * that makes the object visible is up (the multipart complete, or the
 * single PUT of a small object), gate(arg) runs once, from the loop
 * (never inside a drp_s3_upload_* call), and the upload waits for
 * drp_s3_upload_publish() or drp_s3_upload_abort(). Without a gate it
 * publishes at once. Set it before drp_s3_upload_commit(). */
typedef void (*drp_s3_upload_gate_cb)(void *arg);
void drp_s3_upload_gate(drp_s3_upload_t *u, drp_s3_upload_gate_cb gate,
			void *arg);
void drp_s3_upload_publish(drp_s3_upload_t *u);
/* Give up: the multipart upload, if any, is aborted; cb runs with
 * -ECANCELED once that is done. */
void drp_s3_upload_abort(drp_s3_upload_t *u);
/* Drop it without a callback (the loop is going away): an open
 * multipart upload is left to the sweep. */
void drp_s3_upload_cancel(drp_s3_upload_t *u);
/* The multipart upload's id, "" until one started, and how many of its
 * parts the store acknowledged (tests, logs). */
const char *drp_s3_upload_id(const drp_s3_upload_t *u);
unsigned drp_s3_upload_parts(const drp_s3_upload_t *u);

/* ---- the sweep of unfinished multipart uploads ---- */

typedef struct drp_s3_sweep drp_s3_sweep_t;
/* err 0 and the counts, or err < 0 (the listing failed). */
typedef void (*drp_s3_sweep_cb)(void *arg, int err, unsigned listed,
				unsigned aborted);
/* Abort every multipart upload under prefix whose Initiated is more
 * than max_age seconds before the listing's Date. */
drp_s3_sweep_t *drp_s3_sweep(const drp_s3_t *s3, drp_upstream_t *ctx,
			     drp_upstream_conf_t *ucf, const char *prefix,
			     double max_age, drp_s3_sweep_cb cb, void *arg);
void drp_s3_sweep_cancel(drp_s3_sweep_t *sw);

/* ---- helpers (exported for the tests) ---- */

/*
 * The next <tag>...</tag> in xml[*pos, len): copies its text, with the
 * five XML entities decoded, into out (NUL-ended; -ERANGE if it does
 * not fit) and moves *pos past it. -ENOENT if there is none.
 */
int drp_s3_xml_next(const char *xml, size_t len, size_t *pos, const char *tag,
		    char *out, size_t outlen);
/* An ISO 8601 time as S3 lists it ("2024-05-01T10:20:30.000Z") or an
 * HTTP date ("Wed, 01 May 2024 10:20:30 GMT") in unix seconds; -1 if it
 * is neither. */
int64_t drp_s3_parse_time(const char *s);

#endif
