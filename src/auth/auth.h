/* SPDX-License-Identifier: MIT */
/*
 * The proxy core's side of the auth plugins: where a plugin instance is
 * chosen for a request, where it decorates upstream requests and answers
 * their 401 challenges, and where the proxy answers a client itself (its
 * own token realm, policy refusals).
 *
 * Thread: drp_auth_new/free on the main thread (start-up, -t, reload);
 * everything else on the calling worker's loop.
 */
#ifndef DRP_AUTH_AUTH_H
#define DRP_AUTH_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "conf/conf.h"
#include "http/parse.h"
#include "http/uri.h"
#include "core/exchange.h"
#include "upstream/fetch.h"

struct drp_runtime;
struct drp_worker;

typedef struct drp_auth drp_auth_t;

/* Where the proxy's realm is served: on every intercepted host that has
 * a section with a plugin, and on the mirror (with ?ns=REGISTRY). */
#define DRP_AUTH_REALM_PATH "/_drp/token"

/*
 * Load the plugins and create one instance per [registry] section of
 * conf. Problems are appended to errs (file:line form); returns NULL only
 * if something failed (then errs holds why). A conf without [registry]
 * sections gives an empty, valid object.
 */
drp_auth_t *drp_auth_new(const drp_conf_t *conf, drp_conf_errors_t *errs);
void drp_auth_free(drp_auth_t *a);

/* The proxy users of this generation ([proxy] users_file, loaded by
 * drp_auth_new with the rest: -t and reload check it too); NULL if none
 * are configured. Owned by a. */
struct drp_users *drp_auth_users(const drp_auth_t *a);

/*
 * An intercepted request arrived (after the Host/SNI check, before
 * routing). Return true if the auth layer answered it itself, as the
 * request's handler (core/exchange.h: the proxy's token realm, a 401
 * challenge for /v2/, a 403 by policy). First of all it resolves the
 * request's per-registry settings into x->regset (drp_auth_resolve),
 * which the rest of the request uses.
 */
bool drp_auth_intercept(drp_exch_t *x, const drp_http_msg_t *req,
			const drp_route_t *route);

/* The header line of the mirror's challenge for x's registry
 * ("WWW-Authenticate: Bearer realm=...\r\n"), appended to out: a 401
 * passed through to a mirror client carries it instead of the
 * upstream's, whose realm the client may not reach. */
void drp_auth_mirror_challenge(const drp_exch_t *x, drp_buf_t *out);

/*
 * Attach the matching instance's hooks to an upstream fetch made for
 * client request x on behalf of repository repo (NULL for /v2/ and
 * other non-repository paths). x may be NULL (the fetch outlives its
 * client, e.g. a shared fill): the decision is then the one the first
 * client's request made.
 */
void drp_auth_attach(struct drp_runtime *rt, struct drp_worker *w,
		     const drp_exch_t *x, drp_fetch_t *f, const char *host,
		     uint16_t port, const char *repo);

/*
 * Whose credentials x's upstream requests would travel with, apart from
 * the client's own Authorization (which the caller adds): the selected
 * section, whether the client is outside its allow/users, mirror or
 * not (and the mirror's origin). Two requests for the same target with
 * the same class and the same Authorization get the same answer from the
 * upstream, so they may share one fetch (registry/mflight.h). In buf,
 * NUL-terminated, cut to len.
 */
void drp_auth_fetch_class(const drp_exch_t *x, char *buf, size_t len);

/*
 * Resolve the per-registry settings for a request to host:port (port 0 =
 * 443) in repository repo (NULL: none) with the selection the plugins
 * use (plugin/select.h: aliases, wildcards, longest prefix first) over
 * rt's generation: the selected section and the inherited tag_ttl and
 * push (conf.h, drp_conf_regset_t). drp_auth_intercept resolves each
 * intercepted request once into x->regset; everything per-registry
 * reads it from there.
 */
void drp_auth_resolve(const struct drp_runtime *rt, const char *host,
		      uint16_t port, const char *repo, drp_conf_regset_t *out)
	__attribute__((nonnull(1, 2, 5)));

/*
 * A worker stops (shutdown, after its connections closed), on its own
 * thread while its loop still exists: every plugin http_fetch still
 * pending there completes now with -ECANCELED and every pending plugin
 * timer fires now, each exactly once (plugins free their state in these
 * callbacks); afterwards neither can be started on this loop.
 */
void drp_auth_worker_stop(struct drp_worker *w);

#endif
