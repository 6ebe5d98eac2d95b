/* SPDX-License-Identifier: MIT */
/*
 * The registry token flow, written against <drp/plugin.h> only. It is
 * the one implementation in the tree: compiled into each in-tree plugin
 * (with bearer_plugin.c, their shared entry points) and into the proxy
 * core, which runs it through its own host table for clients' own
 * credentials and anonymous access (src/auth/auth_client.c). A
 * third-party plugin may copy it.
 *
 *  - challenge: a "Bearer realm=...,service=...,scope=..." challenge
 *    fetches a token from the realm (GET realm?service=S&scope=X, with
 *    Basic credentials if configured, anonymously otherwise) through
 *    host->http_fetch, and caches it per (owner ctx, scope) in the host's
 *    token cache (token_parse reads token/access_token, expires_in and
 *    issued_at). Concurrent requests for one scope wait for that one
 *    fetch. A "Basic" challenge is answered with the credentials. Realms
 *    come from the challenge, never from the code.
 *  - decorate: once the registry has been seen to want Basic, Basic is
 *    sent up front; otherwise a cached token for the request's scope
 *    ("repository:NAME:pull" or ":pull,push") is added when there is one.
 *  - cancel: a waiting request stops waiting; a request that started the
 *    token fetch leaves the fetch running for the others.
 *
 * Credentials go only to https:// realms; anonymous token requests may use
 * http:// realms too.
 *
 * Whose credentials: a plugin's bearer_t holds the account of its
 * configuration section, so a refusal is that account's fault (DENIED:
 * the client gets 403, the log an error). The core's bearer_t holds a
 * client's own credentials (b->client set): whatever keeps the flow from
 * getting a token (a refusal, a non-https realm, an unparseable
 * challenge, a failed shared fetch) is DECLINED, so that the upstream's
 * 401 reaches the client, who can act on it; logged at notice/warning.
 *
 * Every function runs on the calling worker thread; bearer_t is shared by
 * all threads and read-only after initialisation except for the atomic
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

typedef struct bearer bearer_t;

/*
 * For a bearer_t that carries a client's own credentials (the proxy
 * core). Static storage; every member is mandatory.
 */
typedef struct bearer_client {
	/* Keep b (and what it is embedded in) alive while a token fetch
	 * started for it runs: the request that started it may be gone by
	 * then. (A plugin instance needs none: its host frees it only after
	 * its fetches ended.) */
	void (*hold)(bearer_t *b);
	void (*release)(bearer_t *b);
	/* The challenge's scope as the token request names it and the
	 * cache keys it, host->alloc'ed (the core: actions in one order,
	 * whatever order the registry wrote). */
	char *(*scope)(const char *scope);
} bearer_client_t;

struct bearer {
	const drp_host_api_t *host;
	drp_host_ctx_t *ctx; /* owner of the tokens in the cache */
	char *basic;	     /* "Basic ...", host->alloc'ed; NULL = anonymous */
	/* The account for log lines ("user 'acmebot'"); NULL = anonymous */
	char *who;
	const bearer_client_t *client; /* NULL: a plugin's own account */
	_Atomic int scheme; /* enum bearer_scheme, learned from challenges */
};

/* user/password both NULL for anonymous access. Returns 0 or -ENOMEM. */
int bearer_init(bearer_t *b, const drp_host_api_t *host, drp_host_ctx_t *ctx,
		const char *user, const char *password);
/* The same for a client's credentials as it sent them: basic is
 * "Basic base64(user:password)" (copied) and user its user name for log
 * lines, or both NULL for anonymous access on a client's behalf. client
 * is kept. Returns 0 or -ENOMEM. */
int bearer_init_client(bearer_t *b, const drp_host_api_t *host,
		       drp_host_ctx_t *ctx, const bearer_client_t *client,
		       const char *basic, const char *user);
/* Clears and frees the credentials; b may be initialised again. */
void bearer_fini(bearer_t *b);
/* Names the account in log lines as "KIND 'NAME'" instead of "user
 * 'USER'" (gcr: the service account rather than "_json_key"). Only for a
 * bearer_t with credentials. Returns 0 or -ENOMEM (the name unchanged). */
int bearer_set_who(bearer_t *b, const char *kind, const char *name);

/* As a plugin's decorate, challenge and cancel hooks (enum
 * drp_auth_result; after PENDING, host->auth_done follows once). */
int bearer_decorate(bearer_t *b, drp_auth_req_t *req);
int bearer_challenge(bearer_t *b, drp_auth_req_t *req,
		     const char *www_authenticate);
void bearer_cancel(bearer_t *b, drp_auth_req_t *req);

/* Clears and frees a host->alloc'ed string. */
void bearer_free_secret(const drp_host_api_t *host, char *s);

#endif
