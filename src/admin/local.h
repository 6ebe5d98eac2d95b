/* SPDX-License-Identifier: MIT */
/*
 * Answers for requests addressed to the proxy itself: on the client port
 * (origin-form requests) /ca.crt, /setup/systemd, /healthz, and /metrics
 * and /readyz unless the admin listener runs (admin/listener.h); on the
 * admin listener /metrics, /healthz and /readyz.
 *
 * /metrics is the Prometheus text format (0.0.4): the process, the
 * server's connections and cache, and everything util/metrics.h counts.
 * /readyz is 200 "ok", or 503 with the reason while the CA is not loaded,
 * the daemon drains, or a file cannot be written in the cache directory
 * (the probe writes one: permission bits do not stop root, a read-only
 * mount or a full disk do).
 *
 * Thread: any (the worker loops, the admin listener's thread).
 */
#ifndef DRP_ADMIN_LOCAL_H
#define DRP_ADMIN_LOCAL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/daemon.h"
#include "util/buf.h"

typedef struct drp_local_response {
	int status;
	const char *content_type;
	char *body; /* malloc'd */
	size_t len;
} drp_local_response_t;

/* path without query; host = the request's Host header ("" if none);
 * admin: asked on the admin listener. Returns 0 with *r filled, or
 * -ENOENT for a path not answered there. */
int drp_local_answer(drp_server_t *srv, const char *path, size_t len,
		     const char *host, bool admin, drp_local_response_t *r);
void drp_local_response_free(drp_local_response_t *r);

/* The whole /metrics exposition. */
void drp_local_metrics(drp_server_t *srv, drp_buf_t *b);
/* 0 when ready, else -errno with the reason in why. Writes (and
 * removes) a file in the cache directory. */
int drp_local_ready(drp_server_t *srv, char *why, size_t len);

/*
 * --cache-stats: a summary of a /metrics scrape (text) for people: the
 * cache's objects and size, requests by cache result and the hit ratio,
 * bytes sent from the cache and from upstreams. Returns false if text
 * is not the proxy's exposition (no drp_cache_objects).
 */
bool drp_local_summary(const char *text, drp_buf_t *out);

#endif
