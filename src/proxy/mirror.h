/* SPDX-License-Identifier: MIT */
/*
 * Registry-mirror mode: the registry an origin-form request names, for
 * clients configured with a mirror instead of HTTPS_PROXY.
 *
 * A request to the proxy itself ("GET /v2/...", on a listen port or a
 * mirror TLS listener) names its registry, in this order:
 *   1. the "ns" query parameter, as containerd's hosts.toml mirrors send
 *      it: /v2/library/alpine/manifests/3?ns=docker.io;
 *   2. a first path component that contains '.' or ':' or is
 *      "localhost", as path-prefixed mirrors of podman/CRI-O send it
 *      (location = "PROXY:3128/quay.io"): /v2/quay.io/org/app/...;
 *   3. otherwise Docker Hub, as dockerd's registry-mirrors send it:
 *      /v2/library/alpine/...
 * The registry goes through the alias table of plugin/select.h
 * ("docker.io", "index.docker.io" and "registry-1.docker.io" are one
 * registry, contacted as registry-1.docker.io), so that a mirror request
 * and an intercepted one share the cache, the per-registry settings and
 * the credentials. The upstream target loses the prefix and the ns
 * parameter; everything else of it is kept as sent.
 *
 * The proxy's token realm (auth/auth.h, DRP_AUTH_REALM_PATH) is a
 * mirror path too: /_drp/token?ns=REGISTRY (Docker Hub without ns).
 *
 * Pure functions, thread-safe.
 */
#ifndef DRP_PROXY_MIRROR_H
#define DRP_PROXY_MIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/uri.h"

/* How the registry was named (values are stable). */
enum drp_mirror_by {
	DRP_MIRROR_BY_NS = 1,
	DRP_MIRROR_BY_PREFIX = 2,
	DRP_MIRROR_BY_DEFAULT = 3,
};

typedef struct drp_mirror_target {
	enum drp_mirror_by by;
	/* Canonical registry name: "docker.io", "quay.io", "h:5000". */
	char registry[DRP_HOST_MAX + 8];
	/* The host and port to contact: "registry-1.docker.io", 443. */
	char host[DRP_HOST_MAX + 1];
	uint16_t port;
	/* Origin-form target for the upstream (malloc'ed): "/v2/..." or
	 * DRP_AUTH_REALM_PATH with the rest of the query. */
	char *target;
	size_t target_len;
	bool realm; /* the proxy's token realm, not a registry API path */
} drp_mirror_target_t;

/*
 * Map an origin-form request target. Returns 0 with *out filled (free
 * it with drp_mirror_target_free); -ENOENT if it is not a mirror path
 * (neither /v2 nor the realm: the proxy's own endpoints); -EINVAL if the
 * ns parameter or the path prefix is no registry name (host[:port]).
 */
int drp_mirror_map(const char *target, size_t len, drp_mirror_target_t *out)
	__attribute__((nonnull, warn_unused_result));
void drp_mirror_target_free(drp_mirror_target_t *t);

struct drp_conf;
struct drp_forge;
struct drp_leaf;

/*
 * The certificate of the mirror TLS listeners: mirror_tls_cert and
 * mirror_tls_key, else one made by the proxy's CA for mirror_names.
 * Blocking (disk, signing): start-up and reload, on the main thread.
 * 0 and *out (NULL without mirror_tls_listen); -EINVAL and err filled.
 */
int drp_mirror_tls_leaf(const struct drp_conf *conf, struct drp_forge *forge,
			struct drp_leaf **out, char *err, size_t errlen)
	__attribute__((nonnull(1, 2, 3)));

#endif
