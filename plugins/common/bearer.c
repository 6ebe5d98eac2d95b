/* SPDX-License-Identifier: MIT */
#include "bearer.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum { ST_FETCH = 1, ST_WAIT = 2 };

/* Per-request state, found again with req_get_data. */
typedef struct fetch_st {
	int kind;
	bearer_t *b;	     /* held (b->client->hold) while the fetch runs */
	drp_auth_req_t *req; /* NULL once the request was cancelled */
	char *scope;
	char *realm_host; /* for log lines */
} fetch_st_t;

typedef struct wait_st {
	int kind;
	bearer_t *b;
	drp_auth_req_t *req;
	drp_token_wait_t *wait;
} wait_st_t;

static char *dup_str(const drp_host_api_t *h, const char *s)
{
	size_t n = strlen(s) + 1;
	char *r = h->alloc(n);
	if (r != NULL)
		memcpy(r, s, n);
	return r;
}

void bearer_free_secret(const drp_host_api_t *host, char *s)
{
	if (s == NULL)
		return;
	/* volatile: keep the compiler from dropping the clearing */
	for (volatile char *p = s; *p; p++)
		*p = 0;
	host->free(s);
}

static void init_common(bearer_t *b, const drp_host_api_t *host,
			drp_host_ctx_t *ctx)
{
	memset(b, 0, sizeof(*b));
	b->host = host;
	b->ctx = ctx;
	atomic_init(&b->scheme, BEARER_SCHEME_UNKNOWN);
}

int bearer_init(bearer_t *b, const drp_host_api_t *host, drp_host_ctx_t *ctx,
		const char *user, const char *password)
{
	init_common(b, host, ctx);
	if (user == NULL)
		return 0;
	b->basic = host->basic_auth(user, password ? password : "");
	if (b->basic == NULL || bearer_set_who(b, "user", user) < 0) {
		bearer_fini(b);
		return -ENOMEM;
	}
	return 0;
}

int bearer_init_client(bearer_t *b, const drp_host_api_t *host,
		       drp_host_ctx_t *ctx, const bearer_client_t *client,
		       const char *basic, const char *user)
{
	init_common(b, host, ctx);
	b->client = client;
	if (basic == NULL)
		return 0;
	b->basic = dup_str(host, basic);
	if (b->basic == NULL ||
	    bearer_set_who(b, "user", user ? user : "?") < 0) {
		bearer_fini(b);
		return -ENOMEM;
	}
	return 0;
}

int bearer_set_who(bearer_t *b, const char *kind, const char *name)
{
	size_t n = strlen(kind) + strlen(name) + sizeof(" ''");
	char *who = b->host->alloc(n);
	if (who == NULL)
		return -ENOMEM;
	snprintf(who, n, "%s '%s'", kind, name);
	b->host->free(b->who);
	b->who = who;
	return 0;
}

void bearer_fini(bearer_t *b)
{
	bearer_free_secret(b->host, b->basic);
	b->host->free(b->who);
	b->basic = NULL;
	b->who = NULL;
}

/* What a request gets when the flow cannot get it a token: the plugin's
 * answer for its configured account, DECLINED for a client's own
 * credentials (the upstream's 401 goes to the client). */
static int give_up(const bearer_t *b, int plugin_result)
{
	return b->client != NULL ? DRP_AUTH_DECLINED : plugin_result;
}

/* A configured account that fails is the operator's error; a client's
 * credentials that fail are the client's business. */
static int fail_level(const bearer_t *b)
{
	return b->client != NULL ? DRP_PLUGIN_LOG_WARNING : DRP_PLUGIN_LOG_ERR;
}

static int set_bearer(bearer_t *b, drp_auth_req_t *req, const char *token)
{
	size_t n = strlen(token) + sizeof("Bearer ");
	char *v = b->host->alloc(n);
	if (v == NULL)
		return DRP_AUTH_ERROR;
	snprintf(v, n, "Bearer %s", token);
	int r = b->host->req_set_header(req, "Authorization", v);
	bearer_free_secret(b->host, v);
	return r == 0 ? DRP_AUTH_OK : DRP_AUTH_ERROR;
}

/* "repository:NAME:pull" for the request, "" outside a repository. */
static char *request_scope(bearer_t *b, drp_auth_req_t *req)
{
	const char *repo = b->host->req_get(req, DRP_REQ_REPOSITORY);
	const char *actions = b->host->req_get(req, DRP_REQ_ACTIONS);
	if (repo == NULL)
		return dup_str(b->host, "");
	if (actions == NULL)
		actions = "pull";
	size_t n = strlen(repo) + strlen(actions) + sizeof("repository:::");
	char *s = b->host->alloc(n);
	if (s != NULL)
		snprintf(s, n, "repository:%s:%s", repo, actions);
	return s;
}

int bearer_decorate(bearer_t *b, drp_auth_req_t *req)
{
	if (atomic_load(&b->scheme) == BEARER_SCHEME_BASIC) {
		if (b->basic == NULL)
			return DRP_AUTH_DECLINED;
		return b->host->req_set_header(req, "Authorization",
					       b->basic) == 0
			       ? DRP_AUTH_OK
			       : DRP_AUTH_ERROR;
	}
	char *scope = request_scope(b, req);
	if (scope == NULL)
		return DRP_AUTH_ERROR;
	char *token = NULL;
	int r = DRP_AUTH_DECLINED;
	if (b->host->token_get(b->ctx, scope, &token) == 0) {
		r = set_bearer(b, req, token);
		bearer_free_secret(b->host, token);
	}
	b->host->free(scope);
	return r;
}

static int answer_basic(bearer_t *b, drp_auth_req_t *req)
{
	if (b->basic == NULL)
		return DRP_AUTH_DECLINED;
	atomic_store(&b->scheme, BEARER_SCHEME_BASIC);
	const char *sent = b->host->req_header(req, "Authorization");
	if (sent != NULL && strcmp(sent, b->basic) == 0) {
		if (b->client == NULL)
			b->host->log(b->ctx, DRP_PLUGIN_LOG_ERR,
				     "the registry refused the credentials "
				     "of %s",
				     b->who);
		return give_up(b, DRP_AUTH_DENIED);
	}
	return b->host->req_set_header(req, "Authorization", b->basic) == 0
		       ? DRP_AUTH_OK
		       : DRP_AUTH_ERROR;
}

static void wait_cb(void *arg, const char *token)
{
	wait_st_t *st = arg;
	bearer_t *b = st->b;
	drp_auth_req_t *req = st->req;
	/* NULL: the fetch this waited for failed (most likely refused). */
	int r = token != NULL ? set_bearer(b, req, token)
			      : give_up(b, DRP_AUTH_ERROR);
	b->host->req_set_data(req, NULL);
	b->host->free(st);
	b->host->auth_done(req, r);
}

/* Drops the hold on st->b: the last use of it. */
static void fetch_st_free(fetch_st_t *st)
{
	bearer_t *b = st->b;
	const drp_host_api_t *h = b->host;
	h->free(st->scope);
	h->free(st->realm_host);
	h->free(st);
	if (b->client != NULL)
		b->client->release(b);
}

static void fetch_cb(void *arg, int status, const drp_http_fetch_resp_t *resp,
		     const char *body, size_t body_len)
{
	fetch_st_t *st = arg;
	bearer_t *b = st->b;
	const drp_host_api_t *h = b->host;
	char *token = NULL;
	double ttl = 0;
	int result;
	(void)resp;

	if (status == 200 &&
	    h->token_parse(body, body_len, &token, &ttl) == 0) {
		h->log(b->ctx, DRP_PLUGIN_LOG_INFO,
		       "token for scope '%s' from %s (%s), valid %.0f s",
		       st->scope, st->realm_host, b->who ? b->who : "anonymous",
		       ttl);
		h->token_put(b->ctx, st->scope, token, ttl);
		result = st->req ? set_bearer(b, st->req, token) : DRP_AUTH_OK;
		bearer_free_secret(h, token);
	} else {
		h->token_fail(b->ctx, st->scope);
		if (status == 401 || status == 403) {
			h->log(b->ctx,
			       b->client ? DRP_PLUGIN_LOG_NOTICE
					 : DRP_PLUGIN_LOG_ERR,
			       "token service %s refused %s%s for scope '%s' "
			       "(HTTP %d)",
			       st->realm_host,
			       b->who == NULL ? "anonymous access"
			       : b->client    ? "the client's credentials"
					      : "the credentials of ",
			       b->who != NULL && b->client == NULL ? b->who
								   : "",
			       st->scope, status);
			result = give_up(b, DRP_AUTH_DENIED);
		} else if (status == 200) {
			h->log(b->ctx, fail_level(b),
			       "token service %s sent an unusable answer for "
			       "scope '%s'",
			       st->realm_host, st->scope);
			result = DRP_AUTH_ERROR;
		} else if (status < 0) {
			h->log(b->ctx, fail_level(b),
			       "token service %s unreachable: %s",
			       st->realm_host, strerror(-status));
			result = DRP_AUTH_ERROR;
		} else {
			h->log(b->ctx, fail_level(b),
			       "token service %s answered HTTP %d for scope "
			       "'%s'",
			       st->realm_host, status, st->scope);
			result = DRP_AUTH_ERROR;
		}
	}
	drp_auth_req_t *req = st->req;
	fetch_st_free(st); /* b may be gone from here on */
	if (req != NULL) {
		h->req_set_data(req, NULL);
		h->auth_done(req, result);
	}
}

/* Appends "&name=enc(value)" to out[0..n) for value, or for each
 * space-separated value when split; returns the new length, len on
 * failure. */
static size_t append_params(const drp_host_api_t *h, char *out, size_t len,
			    size_t n, const char *name, const char *values,
			    bool split, bool *first)
{
	const char *p = values;
	while (*p) {
		size_t w = split ? strcspn(p, " ") : strlen(p);
		if (w > 0) {
			char *one = h->alloc(w + 1);
			if (one == NULL)
				return len;
			memcpy(one, p, w);
			one[w] = '\0';
			char *enc = h->url_encode(one);
			h->free(one);
			if (enc == NULL)
				return len;
			int k = snprintf(out + n, len - n, "%s%s=%s",
					 *first ? "" : "&", name, enc);
			h->free(enc);
			if (k < 0 || (size_t)k >= len - n)
				return len;
			n += (size_t)k;
			*first = false;
		}
		p += w;
		p += strspn(p, " ");
	}
	return n;
}

/* The realm URL with the service and scope parameters (one per
 * space-separated scope), host->alloc'ed. */
static char *token_url(const drp_host_api_t *h, const char *realm,
		       const char *service, const char *scope)
{
	/* Each byte encodes to at most 3; each scope costs "&scope=" and
	 * takes at least 2 bytes of the scope string. */
	size_t len = strlen(realm) + 3 * (strlen(service) + strlen(scope)) +
		     64 + 16 * (strlen(scope) / 8 + 1);
	char *url = h->alloc(len);
	if (url == NULL)
		return NULL;
	int n0 = snprintf(url, len, "%s%c", realm,
			  strchr(realm, '?') ? '&' : '?');
	bool first = true;
	size_t n = (size_t)n0;
	n = append_params(h, url, len, n, "service", service, false, &first);
	if (n < len)
		n = append_params(h, url, len, n, "scope", scope, true, &first);
	if (n >= len) {
		h->free(url);
		return NULL;
	}
	if (first) /* no parameters: drop the separator */
		url[n - 1] = '\0';
	return url;
}

/* "https://auth.docker.io/token" -> "auth.docker.io" */
static char *url_host(const drp_host_api_t *h, const char *url)
{
	const char *p = strstr(url, "://");
	p = p ? p + 3 : url;
	size_t n = strcspn(p, "/?#");
	char *r = h->alloc(n + 1);
	if (r != NULL) {
		memcpy(r, p, n);
		r[n] = '\0';
	}
	return r;
}

static int start_fetch(bearer_t *b, drp_auth_req_t *req, const char *realm,
		       const char *service, const char *scope)
{
	const drp_host_api_t *h = b->host;
	fetch_st_t *st = h->alloc(sizeof(*st));
	char *url = token_url(h, realm, service, scope);
	if (st == NULL || url == NULL) {
		h->free(st);
		h->free(url);
		return -ENOMEM;
	}
	*st = (fetch_st_t){.kind = ST_FETCH, .b = b, .req = req};
	if (b->client != NULL)
		b->client->hold(b);
	st->scope = dup_str(h, scope);
	st->realm_host = url_host(h, realm);
	if (st->scope == NULL || st->realm_host == NULL) {
		h->free(url);
		fetch_st_free(st);
		return -ENOMEM;
	}
	char *auth = NULL;
	if (b->basic != NULL) {
		size_t n = strlen(b->basic) + sizeof("Authorization: ");
		auth = h->alloc(n);
		if (auth != NULL)
			snprintf(auth, n, "Authorization: %s", b->basic);
	}
	const char *headers[] = {auth, NULL};
	drp_http_fetch_t *f =
		h->http_fetch(b->ctx, "GET", url, auth ? headers : NULL, NULL,
			      0, fetch_cb, st);
	bearer_free_secret(h, auth);
	h->free(url);
	if (f == NULL) {
		fetch_st_free(st);
		return -EIO;
	}
	h->req_set_data(req, st);
	return 0;
}

int bearer_challenge(bearer_t *b, drp_auth_req_t *req,
		     const char *www_authenticate)
{
	const drp_host_api_t *h = b->host;
	char *realm = NULL, *service = NULL, *scope = NULL, *key = NULL;
	int r = h->challenge_param(www_authenticate, "Bearer", "realm", &realm);
	if (r == -ENOENT) {
		if (h->challenge_param(www_authenticate, "Basic", NULL, NULL) ==
		    0)
			return answer_basic(b, req);
		return DRP_AUTH_DECLINED;
	}
	if (r < 0) {
		if (b->client == NULL)
			h->log(b->ctx, DRP_PLUGIN_LOG_WARNING,
			       "unparseable WWW-Authenticate from the "
			       "registry");
		return give_up(b, DRP_AUTH_ERROR);
	}
	atomic_store(&b->scheme, BEARER_SCHEME_BEARER);
	if (b->basic != NULL && strncasecmp(realm, "https://", 8) != 0) {
		h->log(b->ctx, fail_level(b),
		       "refusing to send credentials to the non-https realm "
		       "'%s'",
		       realm);
		h->free(realm);
		return give_up(b, DRP_AUTH_ERROR);
	}
	h->challenge_param(www_authenticate, "Bearer", "service", &service);
	h->challenge_param(www_authenticate, "Bearer", "scope", &scope);

	/* The token this request carried was refused: never reuse it. */
	const char *sent = h->req_header(req, "Authorization");
	const char *raw = scope ? scope : "";
	if (sent != NULL && strncasecmp(sent, "Bearer ", 7) == 0)
		h->token_forget(b->ctx, raw, sent + 7);

	char *token = NULL;
	key = b->client != NULL ? b->client->scope(raw) : dup_str(h, raw);
	wait_st_t *ws = h->alloc(sizeof(*ws));
	if (key == NULL || ws == NULL) {
		h->free(ws);
		r = DRP_AUTH_ERROR;
		goto out;
	}
	*ws = (wait_st_t){.kind = ST_WAIT, .b = b, .req = req};
	switch (h->token_acquire(b->ctx, key, &token, wait_cb, ws, &ws->wait)) {
	case DRP_TOKEN_HIT:
		h->free(ws);
		r = set_bearer(b, req, token);
		bearer_free_secret(h, token);
		break;
	case DRP_TOKEN_WAIT:
		h->req_set_data(req, ws);
		r = DRP_AUTH_PENDING;
		break;
	case DRP_TOKEN_FETCH:
		h->free(ws);
		if (start_fetch(b, req, realm, service ? service : "", key) <
		    0) {
			h->token_fail(b->ctx, key);
			r = DRP_AUTH_ERROR;
		} else {
			r = DRP_AUTH_PENDING;
		}
		break;
	default:
		h->free(ws);
		r = DRP_AUTH_ERROR;
		break;
	}
out:
	h->free(key);
	h->free(realm);
	h->free(service);
	h->free(scope);
	return r;
}

void bearer_cancel(bearer_t *b, drp_auth_req_t *req)
{
	const drp_host_api_t *h = b->host;
	int *kind = h->req_get_data(req);
	if (kind == NULL)
		return;
	h->req_set_data(req, NULL);
	if (*kind == ST_WAIT) {
		wait_st_t *ws = (wait_st_t *)(void *)kind;
		h->token_wait_cancel(b->ctx, ws->wait);
		h->free(ws);
	} else {
		/* Others may wait for this token: let the fetch finish. */
		((fetch_st_t *)(void *)kind)->req = NULL;
	}
}
