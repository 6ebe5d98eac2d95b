/* SPDX-License-Identifier: MIT */
/*
 * Warming: fetch images into the cache ahead of their first pull
 * (docker-registry-proxy warm REF...).
 *
 * The warm driver is a client of the daemon's own request path, inside
 * the process: each manifest and blob is an exchange (core/exchange.h)
 * of its own, made as if an intercepted client had asked for it, and
 * handed to the same code a client's request reaches: the auth layer
 * first (drp_auth_intercept: the request's [registry] section, its
 * policy), then the cache handler (drp_cached_dispatch: hits, fills,
 * the section's plugin and credentials, tag revalidation, coalescing
 * with clients pulling the same blob at the same moment). What the
 * handler would send to a client is read here: manifests are parsed for
 * what they reference, blob bytes are counted and dropped.
 *
 * Per reference: the tag (or digest) is asked for with the Accept
 * header of current clients and always revalidated (a warm wants what
 * the tag names now); an index leads to every platform's manifest, or
 * to those given as --platform; each manifest to its config and layers.
 * A blob is asked for with a HEAD first (answered from the cache when it
 * is there, so a second warm reads nothing from the disk) and fetched
 * with a GET only when missing. An object counts as warmed once the
 * cache holds it. So a second warm of the same image costs only the
 * tag's revalidation (a HEAD upstream).
 *
 * The driver is the operator's, not a client's: it comes from no
 * network address and carries no credentials, and every section's
 * allow admits it (auth.c: a request without a peer address); the
 * proxy's own credentials ([registry] plugins) are used as for any
 * client. Requests go to hosts the proxy intercepts only.
 *
 * Thread: the loop of worker w (start, cancel and every callback).
 */
#ifndef DRP_CTL_WARM_H
#define DRP_CTL_WARM_H

#include <stdbool.h>
#include <stddef.h>

#include "core/daemon.h"
#include "core/runtime.h"

typedef struct drp_warm drp_warm_t;

/* One line of progress (no newline); err: a failure. */
typedef void (*drp_warm_line_fn)(void *arg, bool err, const char *line);
/* The warm ended: status 0 if every object is cached, 1 otherwise. */
typedef void (*drp_warm_done_fn)(void *arg, int status);

/*
 * Warm refs ("[host[:port]/]repo[:tag|@sha256:...]", Docker's shorthand
 * for Docker Hub) one after the other on worker w under generation rt
 * (a reference is taken), restricted to the platforms given
 * ("os/arch[/variant]"; none: all). Strings are copied. line and done
 * run on w's loop; done runs once, never from inside this call. Returns
 * the warm, or NULL after line(err) when a reference or platform is
 * malformed (done does not run then).
 */
drp_warm_t *drp_warm_start(drp_worker_t *w, drp_runtime_t *rt,
			   const char *const *refs, size_t n_refs,
			   const char *const *platforms, size_t n_platforms,
			   drp_warm_line_fn line, drp_warm_done_fn done,
			   void *arg) __attribute__((nonnull(1, 2, 7, 8)));

/* Stop: requests under way are released (a fill they started goes on
 * for the cache), nothing more is written, done does not run. */
void drp_warm_cancel(drp_warm_t *wm);

/* Parse a reference as the warm and purge commands take it. host is
 * the registry as clients contact it ("registry-1.docker.io" for Docker
 * Hub), port 443 unless given; repo in canonical form ("library/x" for
 * a one-word Hub name); exactly one of tag and digest is set (tag
 * "latest" when neither was given). 0 or -EINVAL. */
typedef struct drp_warm_ref {
	char host[256];
	uint16_t port;
	char repo[256];
	char tag[129];
	char digest[72];
} drp_warm_ref_t;
int drp_warm_parse_ref(const char *s, drp_warm_ref_t *out)
	__attribute__((nonnull));

#endif
