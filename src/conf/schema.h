/* SPDX-License-Identifier: MIT */
/*
 * Schema layer of the configuration: which sections and keys exist,
 * their types and ranges, the syntax of values, and how a value lands in
 * drp_conf_t. The user-facing list is docker-registry-proxy.ini(5); keep
 * the two in step. Everyone outside src/conf/ includes conf/conf.h,
 * which brings this in.
 *
 * It only fills and checks the model (conf/model.h) and reports through
 * conf/error.h; making, loading and freeing a configuration is conf.c's,
 * which calls in here (never the other way).
 *
 * Thread: pure, no shared state.
 */
#ifndef DRP_CONF_SCHEMA_H
#define DRP_CONF_SCHEMA_H

#include <stdbool.h>
#include <stdint.h>

#include "conf/error.h"
#include "conf/model.h"

struct drp_ini;
struct drp_plugin_key; /* drp_plugin_key_t, <drp/plugin.h> */

/*
 * Apply every valid section of ini to c, which already holds the
 * defaults; keys not in the file keep them. Messages and items use
 * c->path as the file name. Every error is appended to errs (the caller
 * discards c if any was); returns the number appended.
 */
unsigned drp_schema_apply(drp_conf_t *c, const struct drp_ini *ini,
			  drp_conf_errors_t *errs);

/* Helpers shared with the plugin layer. Each returns 0, -EINVAL (syntax)
 * or -ERANGE (too large); *out is written only on success. */
/* "32G" -> bytes; suffixes K M G T (powers of 1024, either case), no
 * suffix = bytes; digits only, no sign, no blanks. */
int drp_conf_parse_size(const char *s, uint64_t *out);
/* "5m" -> 300; suffixes s m h d, or a bare number of seconds (may be
 * fractional "0.5"); at most 1e9 seconds. */
int drp_conf_parse_duration(const char *s, double *out);
/* "yes/no/true/false/on/off/1/0", case-insensitive; never -ERANGE. */
int drp_conf_parse_bool(const char *s, bool *out);

/* tag_ttl_match lines (model.h): free them; find the first whose
 * expression matches subject (a manifest path) and store its lifetime in
 * *ttl. Returns 1 if one matched, else 0 (a match that fails, e.g. on
 * PCRE2's match limit, counts as none and is logged at info). */
void drp_conf_ttl_rules_free(drp_conf_ttl_rule_t *rules, unsigned n);
int drp_conf_ttl_rules_match(const drp_conf_t *c,
			     const drp_conf_ttl_rule_t *rules, unsigned n,
			     const char *subject, double *ttl)
	__attribute__((nonnull(1, 4, 5)));

/* The item of a [registry] section with this key: the one lookup of a
 * section's keys, for the conf module and the plugin layer alike. NULL
 * if absent, or if r is NULL (no section). */
const drp_conf_item_t *drp_conf_registry_get(const drp_conf_registry_t *r,
					     const char *key);

/*
 * Keys. Every key of the core is described as plugins describe theirs
 * (drp_plugin_key_t: name, type, range, flags, help), and both kinds are
 * looked up and checked here, with the same
 * "FILE:LINE: [registry "NAME"] KEY: ..." messages.
 */
/* The entry for key in a plugin's NULL-terminated table keys (NULL: an
 * empty table), or NULL. */
const struct drp_plugin_key *
drp_schema_key_find(const struct drp_plugin_key *keys, const char *key);
/* The core's entry for a key of [registry] sections, or NULL (the list
 * is schema.c's registry_keys, and docker-registry-proxy.ini(5)).
 * drp_schema_apply checks these at load; every other key of a section
 * is its plugin's. */
const struct drp_plugin_key *drp_schema_registry_key(const char *key);
/*
 * Check a loaded section against its plugin's table keys (NULL: the
 * section names no plugin, plugin is then NULL too): unknown keys, values
 * of a declared type or out of its range, a key given with its _file
 * form too, a REQUIRED key missing. The core's keys are not checked
 * again. Appends every problem to errs; returns how many.
 */
unsigned drp_schema_check_plugin(const drp_conf_registry_t *sec,
				 const char *plugin,
				 const struct drp_plugin_key *keys,
				 drp_conf_errors_t *errs);

#endif
