/* SPDX-License-Identifier: MIT */
/*
 * The daemon's side of the plugin ABI: the host-services table handed to
 * plugins (<drp/plugin.h>) and the handles behind drp_host_ctx_t.
 *
 * drp_plugin_host_init() makes the whole table, once: its own entries
 * for everything that does not need the proxy core (log, alloc/free,
 * config_get/config_secret/config_error, the token cache,
 * challenge_param, token_parse, basic_auth, url_encode) and the core's
 * entries taken from the table the core passes (req_*, auth_done,
 * http_fetch, http_cancel, fetch_header, timer_start, timer_stop: the
 * core is auth/auth_host.c; tests pass fakes, tests/unit/mock_host.c).
 *
 * Token-cache waiters: the default token_acquire's callback runs on the
 * thread that calls token_put/token_fail. A core with several loops
 * passes its own token_acquire/token_wait_cancel, which post the
 * callback to the waiting request's loop (drp_tokencache_cancel tells
 * whether a delivery was already started).
 *
 * Thread: the table is immutable once plugins are loaded; the functions in
 * it are thread-safe.
 */
#ifndef DRP_PLUGIN_HOST_H
#define DRP_PLUGIN_HOST_H

#include <drp/plugin.h>

#include "conf/conf.h"
#include "plugin/tokencache.h"

typedef struct drp_plugin_host drp_plugin_host_t;

struct drp_plugin_host {
	drp_host_api_t api; /* handed to plugins */
	drp_tokencache_t *tokens;
	/* Monotonic seconds for token expiry; tests replace it. */
	double (*now)(drp_plugin_host_t *h);
	void *core; /* for the core's own use */
	/* Optional: the client connection a plugin runs for on this thread
	 * now (0: none), prefixed to its log lines as "[c000042]". */
	unsigned (*conn_id)(void);
};

/*
 * What a drp_host_ctx_t is: who is asking (plugin, instance), and during
 * instance_new the section being configured and where errors go.
 */
struct drp_host_ctx {
	drp_plugin_host_t *host;
	const char *plugin;   /* descriptor name */
	const char *instance; /* section name; NULL for the plugin's own ctx */
	/* Valid during init/instance_new only (NULL otherwise): */
	const drp_conf_registry_t *section;
	const drp_plugin_key_t *schema;
	drp_conf_errors_t *errs; /* NULL: config errors are only logged */
	unsigned n_errors;	 /* config_error calls so far */
	void *core;		 /* the core's per-instance data */
};

/* Make h->api from this file's entries and core's (core NULL: the
 * core's entries stay NULL), create the token cache. */
void drp_plugin_host_init(drp_plugin_host_t *h, const drp_host_api_t *core);
void drp_plugin_host_fini(drp_plugin_host_t *h);

/* Monotonic clock in seconds (the default h->now; h is unused). */
double drp_plugin_host_clock(drp_plugin_host_t *h);

/* Largest file config_secret reads. */
#define DRP_PLUGIN_SECRET_MAX (1024 * 1024)

#endif
