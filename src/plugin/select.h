/* SPDX-License-Identifier: MIT */
/*
 * Which [registry "NAME"] section governs a request.
 *
 * NAME = REGISTRY[/PREFIX], where REGISTRY is a host as written in image
 * references, optionally with ":port", or a wildcard "*.domain" (any
 * host with at least one more label in front of ".domain"), and PREFIX is
 * a repository prefix of one or more "/"-separated components. Host and
 * prefix are lower-cased; ":443" is the default port and is dropped.
 *
 * The alias table: docker.io = registry-1.docker.io = index.docker.io
 * (canonical name "docker.io", upstream host "registry-1.docker.io"), and
 * Docker Hub repositories of one component live under "library/"
 * ("alpine" = "library/alpine"). Both section names and requests go
 * through it before matching, so a section is chosen before any plugin
 * runs. Section prefixes are NOT given "library/" ("docker.io/acme" means
 * the namespace acme/, not library/acme).
 *
 * Longest match: among the sections whose registry matches the request's
 * host and port and whose prefix equals the repository or is followed in
 * it by "/" (component boundary: "acme" matches "acme" and "acme/app", not
 * "acmex/app"), the winner is the one with
 *   1. an exact host rather than a wildcard,
 *   2. then the longer wildcard domain,
 *   3. then the longer prefix (in characters, at a component boundary).
 * There is no fall-back across prefixes for the plugin, credentials, allow
 * and users: the longest matching one decides. Only tag_ttl and push are
 * inherited along the chain of matching sections (drp_select_chain).
 *
 * Thread: a drp_select_t is built on the main thread and read-only
 * afterwards; lookups are thread-safe.
 */
#ifndef DRP_PLUGIN_SELECT_H
#define DRP_PLUGIN_SELECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DRP_SELECT_DEFAULT_PORT 443

/* A section name taken apart. */
typedef struct drp_select_name {
	char *registry; /* canonical: "docker.io", "*.pkg.dev", "h:5000" */
	char *host;	/* without port / "*.": "docker.io", "pkg.dev", "h" */
	uint16_t port;	/* 443 when not written */
	bool wildcard;
	char *prefix; /* "" for the whole registry, "acme/team" */
} drp_select_name_t;

/*
 * Parse and canonicalise a section name. Returns 0, or -EINVAL with a
 * short reason in *why (static string) for: empty name, bad host
 * characters or labels, "*" anywhere but as the whole first label, bad
 * port, empty prefix components, characters outside [a-z0-9._/-] in the
 * prefix. Free with drp_select_name_free().
 */
int drp_select_parse_name(const char *name, drp_select_name_t *out,
			  const char **why)
	__attribute__((nonnull(1, 2), warn_unused_result));
void drp_select_name_free(drp_select_name_t *n);

/* Canonical registry name of a host (any case) and port (0 = 443):
 * "Registry-1.Docker.IO",443 -> "docker.io"; "h",5000 -> "h:5000".
 * Malloc'ed. */
char *drp_select_canonical_registry(const char *host, uint16_t port)
	__attribute__((nonnull, malloc, returns_nonnull));
/* Host to contact for a canonical registry name: "docker.io" ->
 * "registry-1.docker.io"; others are returned unchanged (static or the
 * argument itself). */
const char *drp_select_upstream_host(const char *registry)
	__attribute__((nonnull));
/* Canonical repository: "library/" + repo for a one-component name on
 * docker.io; otherwise a copy. Malloc'ed. */
char *drp_select_canonical_repo(const char *registry, const char *repo)
	__attribute__((nonnull, malloc, returns_nonnull));

typedef struct drp_select drp_select_t;

drp_select_t *drp_select_new(void) __attribute__((malloc, returns_nonnull));
void drp_select_free(drp_select_t *s);

/*
 * Add a section name with the caller's index for it. Returns 0; -EINVAL
 * (see drp_select_parse_name, reason in *why); -EEXIST when the name
 * equals an earlier one after canonicalisation ("index.docker.io/acme"
 * after "docker.io/acme"), with the earlier index in *dup.
 */
int drp_select_add(drp_select_t *s, const char *name, unsigned idx,
		   const char **why, unsigned *dup)
	__attribute__((nonnull(1, 2), warn_unused_result));

/*
 * Find the section for a request to `host` (as contacted or named by the
 * client, any case) on `port` (0 = 443) for repository `repo` as it
 * appears in the path (NULL for requests outside a repository, e.g.
 * /v2/, which only host-wide sections match). Returns the index given
 * to drp_select_add, or -ENOENT.
 */
int drp_select_find(const drp_select_t *s, const char *host, uint16_t port,
		    const char *repo) __attribute__((nonnull(1, 2)));

/*
 * The whole chain for such a request: the indices of every matching
 * section, most specific first by the ranking above (the first is what
 * drp_select_find returns), at most max (capped at DRP_SELECT_CHAIN_MAX;
 * less specific ones beyond are dropped). Returns how many were written.
 * Per-registry settings that inherit (tag_ttl, push) are taken from the
 * first section of the chain that sets them.
 */
#define DRP_SELECT_CHAIN_MAX 16
unsigned drp_select_chain(const drp_select_t *s, const char *host,
			  uint16_t port, const char *repo, unsigned *idx,
			  unsigned max) __attribute__((nonnull(1, 2)));

/* Whether any section (with or without prefix) names this host: such
 * hosts are intercepted. */
bool drp_select_has_host(const drp_select_t *s, const char *host, uint16_t port)
	__attribute__((nonnull));

#endif
