/* SPDX-License-Identifier: MIT */
/*
 * --env-config: the nginx-based docker-registry-proxy image's environment
 * variables, turned into this proxy's INI text (then loaded like a file).
 *
 * Translated (docs/MIGRATION.md has the table): REGISTRIES;
 * AUTH_REGISTRIES (with AUTH_REGISTRIES_DELIMITER, default " ", and
 * AUTH_REGISTRY_DELIMITER, default ":"): auth.docker.io -> [registry
 * "docker.io"] plugin dockerhub, quay.io -> quay, user _json_key -> gcr
 * (the JSON to a 0600 key file), others -> basic with token_realm = yes
 * (the host may be a registry's token realm, as GitLab's); every password
 * goes to a 0600 file in state_dir, never into the INI text; VERIFY_SSL;
 * CACHE_MAX_SIZE; DEBUG/DEBUG_NGINX (log level debug); ALLOW_PUSH ([proxy]
 * push = proxy, else deny); ENABLE_MANIFEST_CACHE and MANIFEST_CACHE_*
 * ([cache] tag_ttl and tag_ttl_match, the old defaults for unset ones;
 * tag_ttl 0 with the cache off); the ten nginx timeout variables (onto
 * header_, idle_, connect_, body_ and tunnel_idle_timeout, the largest
 * where several map onto one; nginx times such as 1h30m are converted).
 * Fixed: listen 0.0.0.0:3128, ca_dir /ca with the old image's passphrase
 * foobar, cache /docker_mirror_cache.
 * Other variables the old image knew (DEBUG_HUB, DISABLE_IPV6,
 * PROXY_REQUEST_BUFFERING) are listed in *unsupported (by name, once
 * each), never guessed at.
 */
#ifndef DRP_CONF_ENVCONF_H
#define DRP_CONF_ENVCONF_H

#include <stddef.h>

/* Returns the variable's value or NULL (getenv, or a test's table). */
typedef const char *(*drp_envconf_get_fn)(const char *name, void *ctx);

/*
 * Build the INI text into *ini (free()) and the names of unsupported
 * variables set, space-separated, into *unsupported (free(); "" if none).
 * Secrets are written under state_dir (created 0700). Returns 0, or -1
 * with a message in err (a malformed AUTH_REGISTRIES entry, say; the
 * message never holds a password).
 */
int drp_envconf_build(drp_envconf_get_fn get, void *ctx, const char *state_dir,
		      char **ini, char **unsupported, char *err, size_t errlen);

#endif
