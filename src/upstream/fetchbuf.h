/* SPDX-License-Identifier: MIT */
/*
 * An upstream request whose answer is collected in memory (bounded):
 * manifests, tag revalidation, token requests. Built on drp_fetch.
 */
#ifndef DRP_UPSTREAM_FETCHBUF_H
#define DRP_UPSTREAM_FETCHBUF_H

#include "upstream/fetch.h"
#include "util/buf.h"

typedef struct drp_fetchbuf drp_fetchbuf_t;

typedef struct drp_fetchbuf_result {
	int err;	    /* 0, or <0: no usable answer (see http_status) */
	int http_status;    /* err < 0: status to answer with (502/504) */
	const char *reason; /* err < 0: why */
	int status;	    /* the upstream's status */
	/* The upstream's header lines, "Name: value\r\n", without hop-by-hop
	 * headers and without Content-Length. */
	drp_buf_t head;
	drp_buf_t body;
	bool too_big;		 /* body exceeded max_body (err = -EFBIG) */
	char digest[80];	 /* Docker-Content-Digest, "" if none */
	char content_type[256];	 /* "" if none */
	uint64_t content_length; /* Content-Length (for HEAD answers) */
	bool has_length;
	/* Some answer on the way was 403 (drp_fetch_refused). */
	bool refused;
} drp_fetchbuf_result_t;

/* Called exactly once, from the loop; res is valid during the call. */
typedef void (*drp_fetchbuf_cb)(void *arg, drp_fetchbuf_result_t *res);

drp_fetchbuf_t *drp_fetchbuf_start(drp_upstream_t *ctx,
				   drp_upstream_conf_t *ucf,
				   const drp_fetch_req_t *req, size_t max_body,
				   drp_fetchbuf_cb cb, void *arg);
/* The underlying fetch, to attach hooks right after start. */
drp_fetch_t *drp_fetchbuf_fetch(drp_fetchbuf_t *fb);
/* No callback after this. */
void drp_fetchbuf_cancel(drp_fetchbuf_t *fb);

#endif
