/* SPDX-License-Identifier: MIT */
/*
 * Blobs and manifests answered from the cache, from in-flight fills, or
 * fetched and stored: the handler of an intercepted registry request
 * (core/exchange.h).
 */
#ifndef DRP_REGISTRY_CACHED_H
#define DRP_REGISTRY_CACHED_H

#include <stdbool.h>
#include <stddef.h>

#include "http/parse.h"
#include "http/uri.h"
#include "core/exchange.h"

struct drp_worker;

/* Take over an intercepted GET/HEAD of a blob or manifest (a body-less
 * request; headers are its forward-ready lines); false = not cacheable
 * here, the caller passes it through. */
bool drp_cached_dispatch(drp_exch_t *x, const drp_http_msg_t *req,
			 const drp_route_t *route, const char *target,
			 size_t target_len, const char *headers,
			 size_t headers_len);
/* A fill made progress: kick every request of w waiting for its bytes
 * (the worker's fill_wake). */
void drp_cached_fill_wakeup(struct drp_worker *w);

#endif
