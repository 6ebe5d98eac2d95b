/* SPDX-License-Identifier: MIT */
/*
 * Internals of the core's auth layer, shared by auth.c (sections, the
 * hooks on upstream fetches, the request entries of the host table) and
 * auth_host.c (the process-wide plugin host: loader, token cache, and the
 * host services that need a worker loop: http_fetch, timers, token
 * waits). Nothing outside src/auth/auth*.c includes this.
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
#ifndef DRP_AUTH_AUTH_INT_H
#define DRP_AUTH_AUTH_INT_H

#include <drp/plugin.h>

#include "plugin/host.h"
#include "plugin/loader.h"
#include "auth/auth.h"
#include "core/daemon.h"

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
typedef struct drp_auth_handles drp_auth_handles_t;

/* The process-wide host (auth_host.c): the plugin host table, the
 * plugin loader, the proxy-local token handles, and per worker loop the
 * plugins' pending fetches, timers and token deliveries. */
struct drp_auth_host {
	unsigned refs; /* guarded by auth_host.c's host_lock */
	drp_plugin_host_t ph;
	drp_plugin_loader_t *loader;
	pthread_mutex_t loops_lock;
	struct auth_loop *loops;
	drp_auth_handles_t *handles;
};

/* The request entries of the host table (req_get ... auth_done),
 * implemented by auth.c. */
extern const drp_host_api_t drp_auth_req_entries;

/*
 * The process-wide host: created by the first ref (the plugin directory
 * is $DRP_PLUGIN_DIR or the compiled-in one) with the host table of
 * plugin/host.c's entries, auth_host.c's loop services and the request
 * entries req (drp_auth_req_entries), destroyed by the last unref
 * (plugins' fini, modules unloaded, token cache freed). NULL if libltdl
 * cannot be initialised (logged).
 */
drp_auth_host_t *drp_auth_host_ref(const drp_host_api_t *req);
void drp_auth_host_unref(drp_auth_host_t *h);
drp_plugin_loader_t *drp_auth_host_loader(drp_auth_host_t *h)
	__attribute__((nonnull));

/* The plugin host's table (for the core's own token client). */
drp_plugin_host_t *drp_auth_host_plugin_host(drp_auth_host_t *h)
	__attribute__((nonnull));

/*
 * Identities the core authenticates itself, without a plugin
 * (auth_client.c): a client's own credentials, which it gave to the
 * proxy's token realm, and anonymous access. Each runs the plugins'
 * registry token flow, plugins/common/bearer.c, through this host's table
 * (Basic challenge: the credentials; Bearer challenge: a token from the
 * challenge's realm, cached per identity and scope in the shared token
 * cache), as a client's (bearer_client_t): a refusal is DECLINED, so the
 * upstream's 401 goes to the client. Refcounted; thread-safe except where a
 * request is named (the request's thread).
 */
typedef struct drp_auth_ident drp_auth_ident_t;

/* basic: "Basic base64(user:password)" as the client sent it (copied);
 * registry: the canonical registry the identity is for. */
drp_auth_ident_t *drp_auth_ident_new(drp_auth_host_t *h, const char *basic,
				     const char *registry)
	__attribute__((nonnull, returns_nonnull));
/* The identity of these credentials for registry, shared by every
 * handle given for them while any is alive or it was recently verified
 * (a new reference). */
drp_auth_ident_t *drp_auth_ident_get(drp_auth_host_t *h, const char *basic,
				     const char *registry)
	__attribute__((nonnull, returns_nonnull));
/* The upstream accepted the credentials less than
 * DRP_AUTH_VERIFIED_TTL seconds ago; mark that it just did. */
#define DRP_AUTH_VERIFIED_TTL 300
bool drp_auth_ident_verified(drp_auth_ident_t *id) __attribute__((nonnull));
void drp_auth_ident_set_verified(drp_auth_ident_t *id) __attribute__((nonnull));
/* The shared anonymous identity of a registry (a new reference). */
drp_auth_ident_t *drp_auth_ident_anon(drp_auth_host_t *h, const char *registry)
	__attribute__((nonnull, returns_nonnull));
drp_auth_ident_t *drp_auth_ident_ref(drp_auth_ident_t *id);
void drp_auth_ident_unref(drp_auth_ident_t *id);
/* "alice" (from the Basic credentials) or "anonymous", for log lines. */
const char *drp_auth_ident_user(const drp_auth_ident_t *id)
	__attribute__((nonnull));
/* Like a plugin's decorate/challenge/cancel (enum drp_auth_result; after
 * PENDING, drp_auth_req_done follows). A refusal of the identity's
 * credentials is DECLINED: the upstream's 401 goes to the client. */
int drp_auth_ident_decorate(drp_auth_ident_t *id, drp_auth_req_t *r);
int drp_auth_ident_challenge(drp_auth_ident_t *id, drp_auth_req_t *r,
			     const char *www_authenticate);
void drp_auth_ident_cancel(drp_auth_ident_t *id, drp_auth_req_t *r);

/*
 * Proxy-local token handles: what the proxy's own token realm hands to
 * clients, instead of any upstream credential. A handle is bound to a
 * registry and to an identity: a client's (ident) or the proxy's own
 * (ident NULL: the matching section's plugin). Handles are random
 * ("drp1." + 43 base64url characters), live ttl seconds, and are shared
 * by all workers and configuration generations.
 */
#define DRP_AUTH_HANDLE_PREFIX "drp1."
#define DRP_AUTH_HANDLE_MAX    64
/* Returns 0 and the handle in out; takes a new reference to ident. user:
 * the proxy user who proved who they are to the realm (the mirror's
 * clients have no Proxy-Authorization), or NULL. -EIO if no randomness
 * is available. */
int drp_auth_handle_issue(drp_auth_host_t *h, const char *registry,
			  drp_auth_ident_t *ident, const char *user, double ttl,
			  char out[DRP_AUTH_HANDLE_MAX])
	__attribute__((nonnull(1, 2, 6)));
/* 0 and *ident (a new reference, or NULL for the proxy's identity) and,
 * if user is not NULL, *user (malloc'ed, or NULL) for a live handle
 * issued for registry; -ENOENT otherwise. */
int drp_auth_handle_find(drp_auth_host_t *h, const char *handle,
			 const char *registry, drp_auth_ident_t **ident,
			 char **user) __attribute__((nonnull(1, 2, 3, 4)));
/* Whether an Authorization value carries a handle ("Bearer drp1..."). */
bool drp_auth_is_handle(const char *authorization);

/*
 * Which repositories are private: those anonymous access cannot read,
 * learned from the anonymous requests made for clients outside a
 * section's allow and remembered for DRP_AUTH_PRIVACY_TTL seconds.
 */
enum drp_auth_privacy {
	DRP_AUTH_UNKNOWN = 0,
	DRP_AUTH_PUBLIC = 1,
	DRP_AUTH_PRIVATE = 2,
};
#define DRP_AUTH_PRIVACY_TTL 3600
int drp_auth_privacy_get(drp_auth_host_t *h, const char *registry,
			 const char *repo) __attribute__((nonnull));
void drp_auth_privacy_set(drp_auth_host_t *h, const char *registry,
			  const char *repo, int privacy)
	__attribute__((nonnull));
/*
 * What the upstream said lately about a client's own credentials (cred:
 * drp_users_key of the Authorization value, or drp_auth_ident_key) for
 * a repository: a pull with them succeeded (CONFIRMED, remembered
 * DRP_AUTH_CONFIRM_TTL seconds), or was refused with 401/403 (REFUSED,
 * DRP_AUTH_REFUSED_TTL). An outsider's cached content needs no HEAD of
 * its own while CONFIRMED, and is refused at once while REFUSED.
 */
enum drp_auth_confirm {
	DRP_AUTH_CONFIRM_UNKNOWN = 0,
	DRP_AUTH_CONFIRMED = 1,
	DRP_AUTH_REFUSED = 2,
};
#define DRP_AUTH_CONFIRM_TTL 60
#define DRP_AUTH_REFUSED_TTL 15
int drp_auth_confirm_get(drp_auth_host_t *h, const uint8_t cred[32],
			 const char *registry, const char *repo)
	__attribute__((nonnull));
void drp_auth_confirm_set(drp_auth_host_t *h, const uint8_t cred[32],
			  const char *registry, const char *repo, int state)
	__attribute__((nonnull));
/* The key of an identity's credentials (as drp_users_key of the Basic
 * value the client gave the realm). */
void drp_auth_ident_key(const drp_auth_ident_t *id, uint8_t out[32])
	__attribute__((nonnull));

/* Whether id is a registry's anonymous identity. */
bool drp_auth_ident_is_anon(const drp_auth_ident_t *id)
	__attribute__((nonnull));

/* The handle table and anonymous identities of a host (auth_client.c). */
drp_auth_handles_t *drp_auth_handles_new(void);
void drp_auth_handles_free(drp_auth_handles_t *t);
drp_auth_handles_t *drp_auth_host_handles(drp_auth_host_t *h)
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
