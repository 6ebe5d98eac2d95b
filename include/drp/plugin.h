/* SPDX-License-Identifier: MIT */
/*
 * docker-registry-proxy auth-plugin ABI.
 *
 * A plugin is a libtool module (-module -avoid-version) that exports
 * exactly one symbol: the const descriptor `drp_plugin`, defined with
 * DRP_PLUGIN_DEFINE(). The daemon loads it with lt_dlopenext(), checks the
 * descriptor and hands the plugin a table of host services
 * (drp_host_api_t). Plugins include only this header and link to nothing
 * of the daemon; everything they need comes through the table.
 *
 * Build a plugin out of tree:
 *     cc -fPIC -fvisibility=hidden $(pkg-config --cflags drp-plugin) \
 *        -shared -o myreg.so myreg.c
 * and install it into `pkg-config --variable=plugindir drp-plugin`, or
 * name it by path in the configuration (plugin = /path/myreg.so).
 * See drp-plugin(3) and examples/auth-plugin/.
 *
 * What a plugin does: for the [registry "NAME"] sections that name it, it
 * adds credentials to upstream requests (decorate) and answers the
 * upstream's 401 challenges (challenge), typically by fetching a token
 * from the realm in the challenge. The daemon holds the configuration and
 * the credentials; clients of the proxy never see either.
 *
 * Rules for every plugin:
 *  - Never open sockets, never block (no sleeping, no blocking I/O in a
 *    hook). Use host->http_fetch and host->timer_start. Files (e.g. a
 *    password file) may be read only in init() and instance_new(), which
 *    run on the main thread before the workers start; prefer
 *    host->config_secret for that.
 *  - Never call exit() or abort(); return DRP_AUTH_ERROR instead.
 *  - Allocate memory handed to the host with host->alloc, free memory the
 *    host hands you with host->free (each function below says which).
 *  - Never log secrets (passwords, Authorization values, tokens, keys).
 *  - Keep every function static except the descriptor; build with
 *    -fvisibility=hidden.
 *
 * Threads: the daemon runs several worker threads, each with its own
 * event loop. One instance serves all of them, so decorate/challenge may
 * run concurrently on different threads for the same instance: treat the
 * instance as read-only after instance_new and keep per-request state in
 * the request (host->req_set_data) or in callback arguments. Every
 * callback a hook starts (http_fetch, timer, token wait) runs later on the
 * same thread as that hook, never from inside the call that started it.
 * The host services are thread-safe.
 *
 * ABI evolution (append-only):
 *  - DRP_PLUGIN_ABI_MAJOR changes only when an existing field, type,
 *    value or meaning changes; the host refuses a plugin whose major
 *    differs from its own.
 *  - DRP_PLUGIN_ABI_MINOR grows when fields are appended to
 *    drp_plugin_t, drp_host_api_t or drp_instance_args_t, or when enum
 *    values are appended. Nothing is ever inserted, reordered, resized or
 *    removed. The host refuses a plugin built against a newer minor than
 *    its own (the plugin could rely on services this host lacks).
 *  - Every growable struct carries its size (struct_size, api_size) in its
 *    first fields. The host reads a descriptor field only if struct_size
 *    covers it; a plugin uses a host service only if api_size covers it
 *    (DRP_HOST_HAS(host, member)).
 *  - drp_plugin_key_t is used in arrays and is therefore frozen for a
 *    major version; new per-key data would come as a new, parallel array.
 */
#ifndef DRP_PLUGIN_H
#define DRP_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DRP_PLUGIN_ABI_MAJOR 1
#define DRP_PLUGIN_ABI_MINOR 1

/* The exported symbol's name, for the loader and for documentation. */
#define DRP_PLUGIN_SYMBOL "drp_plugin"

/* Largest response body http_fetch delivers; longer ones fail -EFBIG. */
#define DRP_HTTP_FETCH_MAX_BODY (1024 * 1024)

#if defined(__GNUC__)
#define DRP_PLUGIN_EXPORT	__attribute__((visibility("default")))
#define DRP_PLUGIN_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define DRP_PLUGIN_EXPORT
#define DRP_PLUGIN_PRINTF(f, a)
#endif

/*
 * Hook results. Explicit values, append-only.
 *  OK       the request now carries what it needs (decorate: header set or
 *           nothing to add; challenge: Authorization set, the host retries
 *           the request once).
 *  DECLINED this plugin has nothing to contribute: decorate sends the
 *           request as it is; challenge hands the upstream's 401 to the
 *           client unchanged.
 *  DENIED   the upstream refused the configured credentials (or the
 *           plugin's policy refuses the request): the client gets 403 and
 *           the host logs it.
 *  PENDING  the answer comes later: the plugin calls host->auth_done(req,
 *           result) exactly once, after the hook has returned, with one of
 *           the other four values.
 *  ERROR    the plugin failed (token service unreachable, bad answer): the
 *           client gets 502 and the host logs it.
 */
enum drp_auth_result {
	DRP_AUTH_OK = 0,
	DRP_AUTH_DECLINED = 1,
	DRP_AUTH_DENIED = 2,
	DRP_AUTH_PENDING = 3,
	DRP_AUTH_ERROR = 4,
};

/* Log levels for host->log (syslog numbering). */
enum drp_plugin_log_level {
	DRP_PLUGIN_LOG_ERR = 3,
	DRP_PLUGIN_LOG_WARNING = 4,
	DRP_PLUGIN_LOG_NOTICE = 5,
	DRP_PLUGIN_LOG_INFO = 6,
	DRP_PLUGIN_LOG_DEBUG = 7,
};

/*
 * Opaque handles. Only the host knows their layout.
 *  drp_host_ctx_t        the host's handle for the plugin (given to init)
 *                        or for one instance (given to instance_new): pass
 *                        it to log, config and token services so that the
 *                        host knows who is asking. Valid until fini /
 *                        instance_free returns.
 *  drp_auth_req_t        one upstream request being authorised. Valid
 *                        during a hook and, after PENDING, until auth_done
 *                        or cancel.
 *  drp_http_fetch_t      an http_fetch in flight.
 *  drp_http_fetch_resp_t a response, valid during the fetch callback only.
 *  drp_timer_t           a pending timer.
 *  drp_token_wait_t      a registration to be told about another request's
 *                        token fetch.
 */
typedef struct drp_host_ctx drp_host_ctx_t;
typedef struct drp_auth_req drp_auth_req_t;
typedef struct drp_http_fetch drp_http_fetch_t;
typedef struct drp_http_fetch_resp drp_http_fetch_resp_t;
typedef struct drp_timer drp_timer_t;
typedef struct drp_token_wait drp_token_wait_t;

/* Request attributes for host->req_get. Explicit values, append-only. */
enum drp_req_field {
	/* "GET", "HEAD", "PUT", ... */
	DRP_REQ_METHOD = 1,
	/* Full upstream URL, "https://registry-1.docker.io/v2/..." */
	DRP_REQ_URL = 2,
	/* Upstream host as contacted, "registry-1.docker.io" or "h:5000" */
	DRP_REQ_HOST = 3,
	/* The registry as clients name it, after the alias table:
	 * "docker.io", "quay.io", "europe-docker.pkg.dev", "h:5000" */
	DRP_REQ_REGISTRY = 4,
	/* Canonical repository ("library/alpine"); NULL for /v2/ itself */
	DRP_REQ_REPOSITORY = 5,
	/* What the request needs: "pull", or "pull,push" for uploads */
	DRP_REQ_ACTIONS = 6,
	/* (ABI 1.1) Where the request goes: scheme, lower-cased host and
	 * effective port, "https://registry-1.docker.io:443". decorate and
	 * challenge run only for this origin: the host never calls them for
	 * a redirect to another origin (a CDN, another port or scheme of the
	 * same host) or over plain http, and drops every Authorization
	 * header, the client's included, before such a redirect is
	 * followed. */
	DRP_REQ_ORIGIN = 7,
};

/* Results of host->token_acquire. Explicit values, append-only. */
enum drp_token_state {
	/* *token holds a valid cached token. */
	DRP_TOKEN_HIT = 0,
	/* No token and nobody fetching: the caller is now the fetcher and
	 * must end with exactly one token_put or token_fail for the scope. */
	DRP_TOKEN_FETCH = 1,
	/* Another request is fetching: the callback will run once. */
	DRP_TOKEN_WAIT = 2,
};

/* http_fetch completion: status is the HTTP status (100..599), or a
 * negative errno for a transport failure (-ETIMEDOUT, -ECONNREFUSED,
 * -EFBIG for a body over DRP_HTTP_FETCH_MAX_BODY, -EPROTO for TLS/HTTP
 * errors, ...), in which case resp is NULL and body empty. body is
 * NUL-terminated, host-owned and valid only during the callback. */
typedef void drp_http_fetch_cb(void *arg, int status,
			       const drp_http_fetch_resp_t *resp,
			       const char *body, size_t body_len);
/* Timer expiry. The timer is gone when this runs (no timer_stop). */
typedef void drp_timer_cb(void *arg);
/* Another request's token fetch ended: token is the new token or NULL if
 * that fetch failed. token is host-owned, valid during the call only. The
 * wait handle is gone when this runs (no token_wait_cancel). */
typedef void drp_token_cb(void *arg, const char *token);

/*
 * Host services. The host fills this table; entries are appended in later
 * minors, so check DRP_HOST_HAS() before using one that is newer than
 * ABI 1.0. Every entry of ABI 1.0 is always present (non-NULL).
 */
typedef struct drp_host_api {
	/* sizeof(drp_host_api_t) as the host was built. */
	uint32_t api_size;
	/* The host's ABI version. */
	uint16_t abi_major;
	uint16_t abi_minor;

	/* ---- logging ---- */
	/* One line, prefixed by the host with "plugin/instance: " (or
	 * "plugin: " for the plugin's own ctx). Thread-safe. */
	void (*log)(drp_host_ctx_t *ctx, int level, const char *fmt, ...)
		DRP_PLUGIN_PRINTF(3, 4);

	/* ---- memory ---- */
	/* alloc returns NULL on failure; free(NULL) is a no-op. Use these
	 * for everything exchanged with the host. */
	void *(*alloc)(size_t size);
	void (*free)(void *ptr);

	/* ---- configuration (init and instance_new only) ---- */
	/* Value of `key` in this instance's section, else the schema
	 * default, else NULL. Host-owned; valid until instance_new returns
	 * (copy what you keep). */
	const char *(*config_get)(drp_host_ctx_t *ctx, const char *key);
	/*
	 * A secret: the inline value of `key`, or the contents of the file
	 * named by `<key>_file` (relative paths are relative to the
	 * configuration file; one trailing newline is removed; at most
	 * 1 MiB). *value is NUL-terminated and host->alloc'ed: clear and
	 * free it with host->free. *len may be NULL. Returns 0, -ENOENT
	 * when neither is set, or -EIO when the file cannot be read (the
	 * host has then reported why, with the file:line of the `_file`
	 * key).
	 */
	int (*config_secret)(drp_host_ctx_t *ctx, const char *key, char **value,
			     size_t *len);
	/* Report a configuration error; the host prefixes the file:line of
	 * `key` (or of the section header if key is NULL or absent) and
	 * fails the configuration test. Typically followed by instance_new
	 * returning -EINVAL. */
	void (*config_error)(drp_host_ctx_t *ctx, const char *key,
			     const char *fmt, ...) DRP_PLUGIN_PRINTF(3, 4);

	/* ---- the request being authorised ---- */
	/* An attribute (enum drp_req_field); NULL if unknown or absent.
	 * Host-owned, valid while req is. */
	const char *(*req_get)(const drp_auth_req_t *req, int field);
	/* Current value of an upstream request header (case-insensitive
	 * name), NULL if absent. Host-owned, valid while req is. */
	const char *(*req_header)(const drp_auth_req_t *req, const char *name);
	/* Set (replace) a header of the upstream request; the host copies
	 * both strings. Values with CR, LF or NUL are refused (-EINVAL).
	 * Returns 0 or a negative errno. */
	int (*req_set_header)(drp_auth_req_t *req, const char *name,
			      const char *value);
	/* One pointer of plugin state per request (NULL initially). The
	 * plugin owns what it points to and frees it before auth_done or in
	 * cancel. */
	void (*req_set_data)(drp_auth_req_t *req, void *data);
	void *(*req_get_data)(const drp_auth_req_t *req);
	/* Finish a hook that returned DRP_AUTH_PENDING: exactly once, never
	 * from inside the hook itself, never after cancel, on the request's
	 * thread (i.e. from a callback the hook started). result is OK,
	 * DECLINED, DENIED or ERROR. req is invalid afterwards. */
	void (*auth_done)(drp_auth_req_t *req, int result);

	/* ---- asynchronous HTTP through the proxy's upstream client ---- */
	/*
	 * Start a request. method "GET"/"POST"; url "https://..." (the
	 * host's TLS verification, [resolve] and upstream settings apply;
	 * redirects are not followed). headers is a NULL-terminated array
	 * of "Name: value" strings, or NULL. body may be NULL. Everything
	 * is copied before the call returns. The callback runs exactly once,
	 * later, on the calling thread, unless http_cancel is called first;
	 * the host never drops a fetch silently (at shutdown it completes
	 * with -ECANCELED). Returns NULL (and never calls cb) if the request
	 * cannot be started (bad URL, out of memory, shutting down).
	 */
	drp_http_fetch_t *(*http_fetch)(drp_host_ctx_t *ctx, const char *method,
					const char *url,
					const char *const *headers,
					const void *body, size_t body_len,
					drp_http_fetch_cb *cb, void *arg);
	/* Abort a fetch; its callback will not run. Call only before the
	 * callback ran. */
	void (*http_cancel)(drp_http_fetch_t *fetch);
	/* A response header (case-insensitive), NULL if absent. Valid during
	 * the callback only. */
	const char *(*fetch_header)(const drp_http_fetch_resp_t *resp,
				    const char *name);

	/* ---- timers (from hooks and callbacks only) ---- */
	/* One-shot, `after` seconds from now, on the calling thread.
	 * The callback runs exactly once unless timer_stop comes first:
	 * at shutdown a pending timer fires early. Returns NULL on failure
	 * (and while shutting down). */
	drp_timer_t *(*timer_start)(drp_host_ctx_t *ctx, double after,
				    drp_timer_cb *cb, void *arg);
	/* Cancel; the callback will not run. Call only before it ran. */
	void (*timer_stop)(drp_timer_t *timer);

	/* ---- token cache, per (instance, scope), shared by all threads ----
	 */
	/* A valid cached token for scope: 0 and *token (host->alloc'ed,
	 * free with host->free), or -ENOENT. Never starts anything. */
	int (*token_get)(drp_host_ctx_t *ctx, const char *scope, char **token);
	/*
	 * Get a token or take part in fetching one (enum drp_token_state):
	 * HIT:   *token set as for token_get.
	 * FETCH: the caller fetches and then calls token_put or token_fail.
	 * WAIT:  cb(arg, token) runs once when the fetcher finishes: never
	 *        inside token_acquire, on the calling thread, possibly from
	 *        inside the fetcher's token_put/token_fail; *wait is a handle
	 *        for token_wait_cancel.
	 * Returns a negative errno on failure (nothing registered).
	 */
	int (*token_acquire)(drp_host_ctx_t *ctx, const char *scope,
			     char **token, drp_token_cb *cb, void *arg,
			     drp_token_wait_t **wait);
	/* Store the token for scope, valid for expires_in seconds from now
	 * (the host stops using it shortly before), and hand it to every
	 * waiter. The host copies token. Ends the caller's FETCH role. */
	void (*token_put)(drp_host_ctx_t *ctx, const char *scope,
			  const char *token, double expires_in);
	/* End the caller's FETCH role without a token: waiters get NULL. */
	void (*token_fail)(drp_host_ctx_t *ctx, const char *scope);
	/* Withdraw a WAIT registration (ctx as given to token_acquire); its
	 * callback will not run. Call only before the callback ran. */
	void (*token_wait_cancel)(drp_host_ctx_t *ctx, drp_token_wait_t *wait);
	/* Drop the cached token for scope if it still equals `token` (the
	 * upstream refused it), so that the next acquire fetches anew. */
	void (*token_forget)(drp_host_ctx_t *ctx, const char *scope,
			     const char *token);

	/* ---- helpers (pure, thread-safe) ---- */
	/*
	 * Parse a WWW-Authenticate value (several challenges, quoted
	 * strings, any spacing; case-insensitive names) and return the
	 * value of `param` of the first challenge whose scheme is `scheme`.
	 * With param NULL, tells whether the scheme is offered. Returns 0
	 * and *value (host->alloc'ed, or NULL when param is NULL), -ENOENT
	 * (no such scheme or parameter) or -EINVAL (malformed header).
	 */
	int (*challenge_param)(const char *www_authenticate, const char *scheme,
			       const char *param, char **value);
	/*
	 * Parse a token-service response (Docker token spec / OAuth2):
	 * "token" or else "access_token", "expires_in" (default 60 s),
	 * "issued_at" (RFC 3339). Returns 0, *token (host->alloc'ed) and
	 * *expires_in (seconds from now), or -EINVAL (not JSON, no usable
	 * token, token with characters that cannot go into a header).
	 */
	int (*token_parse)(const char *body, size_t len, char **token,
			   double *expires_in);
	/* "Basic base64(user:password)", host->alloc'ed; NULL on failure. */
	char *(*basic_auth)(const char *user, const char *password);
	/* Percent-encode for a URL query value (RFC 3986 unreserved chars
	 * kept), host->alloc'ed; NULL on failure. */
	char *(*url_encode)(const char *s);
} drp_host_api_t;

/* Whether the host table has `member` (for entries added after 1.0). */
#define DRP_HOST_HAS(host, member)                                             \
	((host)->api_size >=                                                   \
		 offsetof(drp_host_api_t, member) + sizeof((host)->member) &&  \
	 (host)->member != NULL)

/* ---- configuration schema ---- */

/* Key types. Explicit values, append-only. */
enum drp_key_type {
	/* any text */
	DRP_KEY_STRING = 1,
	/* decimal integer within [min, max] */
	DRP_KEY_INT = 2,
	/* yes/no/true/false/on/off/1/0 */
	DRP_KEY_BOOL = 3,
	/* seconds, or a number with s/m/h/d; within [min, max] seconds */
	DRP_KEY_DURATION = 4,
	/* a file name (relative to the configuration file) */
	DRP_KEY_PATH = 5,
};

/* Key flags. */
/* Never logged or printed; shown as "(secret)". */
#define DRP_KEY_SECRET 0x1u
/* The section must set it (or <key>_file, with DRP_KEY_FILE). */
#define DRP_KEY_REQUIRED 0x2u
/* May instead be given as <key>_file = PATH; read with config_secret. */
#define DRP_KEY_FILE 0x4u

/*
 * One configuration key a plugin accepts in its sections. The host
 * validates every section before instance_new: a key that is neither
 * shared (plugin, username, password, password_file, allow, users, push,
 * tag_ttl) nor declared here is an error with file:line, as is a value of
 * the wrong type or out of range, or a missing REQUIRED key. Declaring a
 * shared key (e.g. "password" with REQUIRED|SECRET|FILE) adds its flags.
 * Arrays end with an entry whose key is NULL. Frozen (see top).
 */
typedef struct drp_plugin_key {
	const char *key;
	int type;	  /* enum drp_key_type */
	const char *def;  /* default as text, NULL for none */
	int64_t min, max; /* INT and DURATION; min == max == 0: any */
	uint32_t flags;	  /* DRP_KEY_* */
	const char *help; /* one line for documentation and -t output */
} drp_plugin_key_t;

/*
 * What instance_new learns about its section. Host-owned, valid until
 * instance_new returns. Fields appended in later minors (check
 * struct_size).
 */
typedef struct drp_instance_args {
	uint32_t struct_size;
	/* The instance's handle: keep it for log, tokens, fetch, timers. */
	drp_host_ctx_t *ctx;
	/* Section name as written (host part lower-case):
	 * "docker.io/acme", "*.pkg.dev", "registry.example:5000". */
	const char *section;
	/* Registry part of the name after the alias table ("docker.io",
	 * "*.pkg.dev", "h:5000") and the repository prefix ("acme", or ""
	 * for the whole registry). */
	const char *registry;
	const char *prefix;
} drp_instance_args_t;

/*
 * The descriptor. Define it with DRP_PLUGIN_DEFINE(); the first four
 * fields never move.
 */
typedef struct drp_plugin {
	uint16_t abi_major; /* DRP_PLUGIN_ABI_MAJOR the plugin was built with */
	uint16_t abi_minor; /* DRP_PLUGIN_ABI_MINOR the plugin was built with */
	uint32_t struct_size; /* sizeof(drp_plugin_t) the plugin was built with
			       */
	/* Mandatory. [a-z0-9_-]+, equal to the module's file name when it
	 * is loaded by name (plugin = NAME). */
	const char *name;

	/* ---- ABI 1.0 ---- */
	/* Optional. Free text for -t and logs: "1.2.0", "HTTP Basic". */
	const char *version;
	const char *description;
	/* Optional. Keys accepted in this plugin's sections, beyond the
	 * shared ones; NULL-key-terminated; static storage. */
	const drp_plugin_key_t *config;

	/*
	 * Optional. Once per process, on the main thread, before any
	 * instance_new. host is valid until fini returns (keep it); ctx is
	 * the plugin-level handle (for log). *pctx (initially NULL) is
	 * passed to instance_new and fini. Return 0 or a negative errno:
	 * the plugin is then refused and every section using it is an
	 * error.
	 */
	int (*init)(const drp_host_api_t *host, drp_host_ctx_t *ctx,
		    void **pctx);
	/* Optional. Once at shutdown, after every instance_free. */
	void (*fini)(void *pctx);

	/*
	 * Mandatory. One per [registry] section using the plugin, on the
	 * main thread (at start-up, `-t`, and SIGHUP reload, where the old
	 * instances live on until their requests end). Read the section with
	 * host->config_get/config_secret, validate it (report problems with
	 * host->config_error), store what you need in a new object and set
	 * *inst. On failure return a negative errno and put a one-line
	 * reason (no secrets) in errbuf (errlen > 0 bytes incl. NUL); *inst
	 * is ignored and instance_free is not called.
	 */
	int (*instance_new)(void *pctx, const drp_instance_args_t *args,
			    void **inst, char *errbuf, size_t errlen);
	/* Mandatory. Free an instance. No hook or callback of it is running
	 * or pending: the host waits until every http_fetch and timer
	 * started with the instance's ctx has completed or been cancelled,
	 * so a plugin may keep a fetch going after its request was
	 * cancelled (e.g. for other requests waiting on the same token).
	 * Token-cache entries of the instance are dropped by the host. */
	void (*instance_free)(void *inst);

	/*
	 * Optional (missing = DECLINED). Before each upstream request to the
	 * section's registry origin (DRP_REQ_ORIGIN; never for a redirect
	 * to another origin such as a CDN, nor over plain http): add
	 * credentials with host->req_set_header, e.g. Basic, or a Bearer token
	 * already in the token cache. Any thread. Returns OK, DECLINED, DENIED
	 * or ERROR: decorate runs just before the request is sent, so it cannot
	 * wait (PENDING is cancelled and the request goes as it is); anything
	 * that needs a fetch belongs in challenge.
	 */
	int (*decorate)(void *inst, drp_auth_req_t *req);
	/*
	 * Optional (missing = DECLINED). The upstream answered 401;
	 * www_authenticate holds its WWW-Authenticate values joined with
	 * ", " (never NULL; "" when absent). Set Authorization and return OK
	 * (the host retries the request once), or return PENDING and call
	 * host->auth_done later, or DECLINED/DENIED/ERROR. The request's
	 * current Authorization (host->req_header) tells which credentials
	 * were just refused. Any thread.
	 */
	int (*challenge)(void *inst, drp_auth_req_t *req,
			 const char *www_authenticate);
	/*
	 * Optional, but needed by any plugin that returns PENDING: the host
	 * gives up on a pending request (client gone, timeout, shutdown).
	 * Stop what was started for it (http_cancel, timer_stop,
	 * token_wait_cancel, or detach it from a fetch that others wait
	 * for), free its state; do not call auth_done. Runs on the request's
	 * thread. Without cancel, the host keeps the request until auth_done
	 * and then drops it.
	 */
	void (*cancel)(void *inst, drp_auth_req_t *req);

	/* Reserved for a cache backend in the same module
	 * (<drp/cache.h>); NULL for auth plugins. */
	const void *cache_api;
} drp_plugin_t;

/* Size of the ABI 1.0 descriptor: the host refuses smaller struct_size. */
#define DRP_PLUGIN_SIZE_1_0                                                    \
	(offsetof(drp_plugin_t, cache_api) + sizeof(const void *))

/*
 * Define the exported descriptor, e.g.
 *     DRP_PLUGIN_DEFINE(.name = "myreg", .instance_new = myreg_new,
 *                       .instance_free = myreg_free,
 *                       .challenge = myreg_challenge);
 * ABI version and struct size are filled in from this header.
 */
#define DRP_PLUGIN_DEFINE(...)                                                 \
	DRP_PLUGIN_EXPORT extern const drp_plugin_t drp_plugin;                \
	DRP_PLUGIN_EXPORT const drp_plugin_t drp_plugin = {                    \
		.abi_major = DRP_PLUGIN_ABI_MAJOR,                             \
		.abi_minor = DRP_PLUGIN_ABI_MINOR,                             \
		.struct_size = sizeof(drp_plugin_t),                           \
		__VA_ARGS__}

#ifdef __cplusplus
}
#endif

#endif
