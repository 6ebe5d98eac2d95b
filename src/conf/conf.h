/* SPDX-License-Identifier: MIT */
/*
 * The daemon's configuration: INI file -> validated, immutable drp_conf_t.
 *
 * Syntax: "[section]" or "[registry \"name\"]" headers; "key = value";
 * ';' or '#' starts a comment at line start or after whitespace; blank
 * lines ignored; no line-length limit. Every key is validated against the
 * schema; unknown sections/keys are errors. Every error message has the
 * shape
 *     FILE:LINE: [section] key: message
 * and ALL errors are collected, not only the first.
 *
 * Thread: built on the main thread; afterwards read-only and shared by all
 * workers (reload builds a new one and swaps pointers).
 */
#ifndef DRP_CONF_CONF_H
#define DRP_CONF_CONF_H

#include "conf/error.h"
#include "conf/model.h"
#include "conf/schema.h"

/*
 * The embedded defaults: listen [::]:3128 (dual-stack: IPv4 clients
 * too; IPv4 only on a host without IPv6), workers auto, registries
 * quay.io gcr.io ghcr.io registry.k8s.io, allow = loopback + RFC1918 +
 * ULA, tunnel_ports 443, ca_dir ./ca, cache dir ./cache, max_size 32G,
 * tag_ttl 5m, verify_upstream yes, access_log -, no users_file,
 * require_users no, tunnel_only empty. Never fails.
 */
drp_conf_t *drp_conf_defaults(void);
/* The embedded defaults as INI text (what `-t -v`/docs show). */
const char *drp_conf_defaults_text(void);

/*
 * Parse FILE. On success returns the conf (errs untouched). On any error
 * returns NULL and errs holds every error found (appended to what it
 * already held), in line order. Keys the file does not set keep the
 * values of drp_conf_defaults(); a list key replaces its default list.
 * Full syntax and every key: docs/docker-registry-proxy.ini.5.
 */
drp_conf_t *drp_conf_load(const char *path, drp_conf_errors_t *errs);
/* Same, from a string (tests); name is used in messages as the file. */
drp_conf_t *drp_conf_load_string(const char *name, const char *text,
				 drp_conf_errors_t *errs);
void drp_conf_free(drp_conf_t *c);

/*
 * Resolve the settings for a request (see drp_conf_regset_t) from chain,
 * the indices into c->registry of the sections matching it, most
 * specific first (n = 0: none matches). Pure; never fails.
 */
void drp_conf_regset_resolve(const drp_conf_t *c, const unsigned *chain,
			     unsigned n, drp_conf_regset_t *out)
	__attribute__((nonnull(1, 4)));

/*
 * How long tag of repository stays fresh in the cache, for a request whose
 * settings are set (NULL, or not valid: none matched, [cache] alone): the
 * first tag_ttl_match expression that matches its manifest path
 * /v2/<repo>/manifests/<tag> (the sections of set->rule_secs in order,
 * then [cache]'s if no section set tag_ttl), else set's tag_ttl ([cache]
 * tag_ttl without set). repo as the client named it. Never fails.
 */
double drp_conf_tag_ttl(const drp_conf_t *c, const drp_conf_regset_t *set,
			const char *repo, const char *tag)
	__attribute__((nonnull(1, 3, 4)));

/*
 * token_realm: the index of the [registry] section with token_realm = yes
 * whose host (and port, 443 if none) is the one of the token realm URL
 * realm (as a Bearer challenge names it), or -1: none, or not an https
 * URL (credentials never go to any other).
 */
int drp_conf_token_realm_find(const drp_conf_t *c, const char *realm)
	__attribute__((nonnull));
/* Whether [proxy] registries names host:port ("host" is port 443). */
bool drp_conf_lists_registry(const drp_conf_t *c, const char *host,
			     uint16_t port) __attribute__((nonnull));

#endif
