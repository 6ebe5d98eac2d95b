/* SPDX-License-Identifier: MIT */
/*
 * Internals of the core's auth layer, shared by auth.c (sections, the
 * hooks on upstream fetches, the request entries of the host table) and
 * auth_host.c (the process-wide plugin host: loader, token cache, and the
 * host services that need a worker loop: http_fetch, timers, token
 * waits). Nothing outside src/proxy/auth*.c includes this.
 *
 * The plugin host is one per process, shared by every configuration
 * generation: plugins are initialised once and their modules stay loaded
 * while any generation uses them (a reload keeps the old instances alive
 * until their requests end), and the token cache outlives reloads of
 * unrelated sections.
 *
 * Threads: drp_auth_host_ref/unref on the main thread (or, for the last
 * unref at shutdown, whichever thread drops the last runtime). Everything
 * else runs on the worker thread of the request concerned.
 */
#ifndef DRP_PROXY_AUTH_INT_H
#define DRP_PROXY_AUTH_INT_H

#include <drp/plugin.h>

#include "plugin/host.h"
#include "plugin/loader.h"
#include "proxy/auth.h"
#include "proxy/server.h"
#include "proxy/worker.h"

/*
 * Where plugin code runs: the worker and runtime of the request (or
 * callback) on whose behalf the host calls into a plugin. The host
 * services that start something (http_fetch, timer_start, token waits)
 * run it on this worker under this runtime; outside a plugin call they
 * fail. Nested calls save and restore the previous value.
 */
typedef struct drp_auth_cur {
	drp_worker_t *w;
	drp_runtime_t *rt;
	unsigned conn_id; /* for log lines; 0 = none */
} drp_auth_cur_t;

drp_auth_cur_t drp_auth_cur_enter(drp_worker_t *w, drp_runtime_t *rt,
				  unsigned conn_id);
void drp_auth_cur_leave(drp_auth_cur_t saved);
/* NULL outside plugin calls. */
const drp_auth_cur_t *drp_auth_cur(void);

typedef struct drp_auth_host drp_auth_host_t;

/*
 * The process-wide host: created by the first ref (the plugin directory
 * is $DRP_PLUGIN_DIR or the compiled-in one), destroyed by the last
 * unref (plugins' fini, modules unloaded, token cache freed). NULL if
 * libltdl cannot be initialised (logged).
 */
drp_auth_host_t *drp_auth_host_ref(void);
void drp_auth_host_unref(drp_auth_host_t *h);
drp_plugin_loader_t *drp_auth_host_loader(drp_auth_host_t *h)
	__attribute__((nonnull));

/* Request entries of the host table, implemented in auth.c. */
const char *drp_auth_req_get(const drp_auth_req_t *req, int field);
const char *drp_auth_req_header(const drp_auth_req_t *req, const char *name);
int drp_auth_req_set_header(drp_auth_req_t *req, const char *name,
			    const char *value);
void drp_auth_req_set_data(drp_auth_req_t *req, void *data);
void *drp_auth_req_get_data(const drp_auth_req_t *req);
void drp_auth_req_done(drp_auth_req_t *req, int result);

/*
 * http_fetch's URL: "http[s]://host[:port][/path][?query]" without
 * userinfo or fragment. Fills *tls, host (lower-case, no brackets),
 * *port (scheme default when absent) and *target (malloc'ed origin-form,
 * "/" when empty). Returns 0 or -EINVAL.
 */
int drp_auth_parse_url(const char *url, bool *tls, char host[DRP_HOST_MAX + 1],
		       uint16_t *port, char **target)
	__attribute__((nonnull, warn_unused_result));

/*
 * Header-line edits on "Name: value\r\n" blocks (what drp_fetch_req_t
 * and the decorate hook carry). set replaces every line of that name
 * (case-insensitive) with one line at the end; del only removes. get
 * returns a malloc'ed copy of the first value, or NULL.
 */
void drp_auth_headers_set(drp_buf_t *h, const char *name, const char *value)
	__attribute__((nonnull));
void drp_auth_headers_del(drp_buf_t *h, const char *name)
	__attribute__((nonnull));
char *drp_auth_headers_get(const drp_buf_t *h, const char *name)
	__attribute__((nonnull));

/* Whether a header name/value may go into a request (token chars; no CR,
 * LF or NUL in values). */
bool drp_auth_header_ok(const char *name, const char *value);

#endif
