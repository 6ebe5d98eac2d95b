/* SPDX-License-Identifier: MIT */
/*
 * Pass-through: a request answered by its upstream, the answer streamed
 * to the client as it arrives (heads sanitised, hop-by-hop headers
 * dropped, chunked framing where the length is unknown), the request
 * body streamed up. A handler of the exchange (core/exchange.h): the
 * plain forward of absolute-form requests, and every intercepted request
 * the cache does not answer.
 */
#ifndef DRP_PROXY_PASS_H
#define DRP_PROXY_PASS_H

#include <stdbool.h>

#include "core/exchange.h"
#include "upstream/fetch.h"

/*
 * Start fr for x and answer x with what comes back. intercepted: fr goes
 * to the CONNECT's registry over TLS (the auth layer's hooks are
 * attached; a 401's Bearer realm is learned for interception). ping: the
 * request is the registry API probe (GET/HEAD /v2/), which the proxy
 * answers itself when the upstream cannot be reached and a cache may
 * still serve. The caller has set the request body's framing; body bytes
 * reach the fetch through the handler's body operations.
 */
void drp_pass_start(drp_exch_t *x, const drp_fetch_req_t *fr, bool intercepted,
		    bool ping);

#endif
