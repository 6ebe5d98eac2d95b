/* SPDX-License-Identifier: MIT */
/*
 * The registry token flow shared by the in-tree plugins, written against
 * <drp/plugin.h> only, so a third-party plugin may copy it.
 *
 *  - challenge: a "Bearer realm=...,service=...,scope=..." challenge
 *    fetches a token from the realm (GET realm?service=S&scope=X, with
 *    Basic credentials if configured, anonymously otherwise) through
 *    host->http_fetch, and caches it per (instance, scope) in the host's
 *    token cache. Concurrent requests for one scope wait for that one
 *    fetch. A "Basic" challenge is answered with the configured
 *    credentials. Realms come from the challenge, never from the code.
 *  - decorate: once the registry has been seen to want Basic, Basic is
 *    sent up front; otherwise a cached token for the request's scope
 *    ("repository:NAME:pull" or ":pull,push") is added when there is one.
 *  - cancel: a waiting request stops waiting; a request that started the
 *    token fetch leaves the fetch running for the others.
 *
 * Credentials go only to https:// realms; anonymous token requests may use
 * http:// realms too.
 *
 * Every function runs on the calling worker thread; bearer_t is shared by
 * all threads and read-only after bearer_init except for the atomic
 * scheme hint.
 */
#ifndef DRP_PLUGINS_BEARER_H
#define DRP_PLUGINS_BEARER_H

#include <stdatomic.h>

#include <drp/plugin.h>

enum bearer_scheme {
	BEARER_SCHEME_UNKNOWN = 0,
	BEARER_SCHEME_BASIC = 1,
	BEARER_SCHEME_BEARER = 2,
};

typedef struct bearer {
	const drp_host_api_t *host;
	drp_host_ctx_t *ctx;
	char *basic; /* "Basic ...", host->alloc'ed; NULL = anonymous */
	/* The account for log lines ("user 'acmebot'"); NULL = anonymous */
	char *who;
	_Atomic int scheme; /* enum bearer_scheme, learned from challenges */
} bearer_t;

/* user/password both NULL for anonymous access. Returns 0 or -ENOMEM. */
int bearer_init(bearer_t *b, const drp_host_api_t *host, drp_host_ctx_t *ctx,
		const char *user, const char *password);
void bearer_fini(bearer_t *b);
/* Names the account in log lines as "KIND 'NAME'" instead of "user
 * 'USER'" (gcr: the service account rather than "_json_key"). Only for a
 * bearer_t with credentials. Returns 0 or -ENOMEM (the name unchanged). */
int bearer_set_who(bearer_t *b, const char *kind, const char *name);

int bearer_decorate(bearer_t *b, drp_auth_req_t *req);
int bearer_challenge(bearer_t *b, drp_auth_req_t *req,
		     const char *www_authenticate);
void bearer_cancel(bearer_t *b, drp_auth_req_t *req);

/* Read username and password (or password_file) of the section. Sets
 * both to NULL when neither is configured; reports a lone one with
 * host->config_error. Returns 0, or a negative errno after reporting.
 * Free both with bearer_free_secret(). */
int bearer_read_credentials(const drp_host_api_t *host, drp_host_ctx_t *ctx,
			    char **user, char **password);
/* Clears and frees a host->alloc'ed string. */
void bearer_free_secret(const drp_host_api_t *host, char *s);

/*
 * Plugin entry points shared by every plugin whose instance is one
 * bearer_t: init/fini keep the host table as the plugin context, the
 * hooks forward to bearer_decorate/challenge/cancel, and
 * bearer_instance_make() builds the instance an instance_new returns.
 */
int bearer_plugin_init(const drp_host_api_t *host, drp_host_ctx_t *ctx,
		       void **pctx);
void bearer_plugin_fini(void *pctx);
const drp_host_api_t *bearer_plugin_host(void *pctx);
/* 0 and *out, or -ENOMEM with errbuf filled. */
int bearer_instance_make(const drp_host_api_t *host, drp_host_ctx_t *ctx,
			 const char *user, const char *password, void **out,
			 char *errbuf, size_t errlen);
/* For an error of bearer_read_credentials(): the one-line reason. */
void bearer_credentials_error(int r, char *errbuf, size_t errlen);
void bearer_instance_free(void *inst);
int bearer_hook_decorate(void *inst, drp_auth_req_t *req);
int bearer_hook_challenge(void *inst, drp_auth_req_t *req,
			  const char *www_authenticate);
void bearer_hook_cancel(void *inst, drp_auth_req_t *req);

#endif
