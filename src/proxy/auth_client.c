/* SPDX-License-Identifier: MIT */
/* Identities the core authenticates itself (a client's own credentials,
 * anonymous access) and the proxy-local token handles that stand for
 * them, or for the proxy's own identity, in clients' requests. */
#include "proxy/auth_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "plugin/challenge.h"
#include "proxy/users.h"
#include "util/base64.h"
#include "util/log.h"
#include "util/mem.h"

#define HANDLE_BUCKETS 1024
/* Beyond this many live handles the oldest-looking go first. */
#define HANDLES_MAX 65536
#define HANDLE_RAND 32 /* bytes of randomness: 43 base64url characters */

enum ident_scheme {
	SCHEME_UNKNOWN = 0,
	SCHEME_BASIC = 1,
	SCHEME_BEARER = 2,
};

struct drp_auth_ident {
	drp_host_ctx_t ctx; /* the owner of its tokens in the token cache */
	atomic_uint refs;
	drp_auth_host_t *h;
	char *basic; /* "Basic ..."; NULL: anonymous */
	char *user;
	char *registry;
	atomic_int scheme; /* enum ident_scheme, learned from challenges */
	_Atomic double verified_until;
};

typedef struct handle {
	struct handle *next;
	char id[DRP_AUTH_HANDLE_MAX];
	char *registry;
	drp_auth_ident_t *ident; /* NULL: the proxy's identity */
	double expires;
} handle_t;

typedef struct anon {
	struct anon *next;
	drp_auth_ident_t *ident;
} anon_t;

/* What is known of a repository's privacy. */
typedef struct privacy {
	struct privacy *next;
	char *key; /* "registry/repo" */
	int state; /* enum drp_auth_privacy */
	double until;
} privacy_t;
#define PRIVACY_BUCKETS 256
#define PRIVACY_MAX	65536

/* Beyond this many remembered client identities, unused ones go. */
#define CLIENTS_MAX 1024

struct drp_auth_handles {
	pthread_mutex_t lock;
	handle_t *bucket[HANDLE_BUCKETS];
	unsigned n;
	unsigned inserts;
	anon_t *anon;
	anon_t *clients; /* identities of clients' credentials */
	unsigned n_clients;
	privacy_t *privacy[PRIVACY_BUCKETS];
	unsigned n_privacy;
};

static const drp_host_api_t *api_of(const drp_auth_ident_t *id)
{
	return &id->ctx.host->api;
}

static double now_of(const drp_auth_host_t *h)
{
	drp_plugin_host_t *ph =
		drp_auth_host_plugin_host((drp_auth_host_t *)(uintptr_t)h);
	return ph->now(ph);
}

/* ---- identities ---- */

/* The user name in "Basic base64(user:password)", for log lines:
 * printable ASCII, at most 255 characters, "?" if there is none. */
static char *basic_user(const char *basic)
{
	const char *p = basic + strcspn(basic, " ");
	p += strspn(p, " ");
	size_t len = strcspn(p, " ");
	size_t room = DRP_BASE64_DECODED_MAX(len);
	char *dec = drp_malloc(room);
	ssize_t dl = drp_base64_decode(p, len, dec, room);
	char out[256];
	size_t n = 0;
	for (ssize_t i = 0; i < dl && dec[i] != ':' && n < sizeof(out) - 1;
	     i++) {
		unsigned char ch = (unsigned char)dec[i];
		out[n++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	out[n] = '\0';
	explicit_bzero(dec, room);
	free(dec);
	return drp_strdup(n ? out : "?");
}

static drp_auth_ident_t *ident_new(drp_auth_host_t *h, const char *basic,
				   const char *registry)
{
	drp_auth_ident_t *id = DRP_NEW(drp_auth_ident_t);
	atomic_init(&id->refs, 1);
	atomic_init(&id->scheme, SCHEME_UNKNOWN);
	atomic_init(&id->verified_until, 0.0);
	id->h = h;
	id->basic = basic ? drp_strdup(basic) : NULL;
	id->user = basic ? basic_user(basic) : drp_strdup("anonymous");
	id->registry = drp_strdup(registry);
	id->ctx = (drp_host_ctx_t){
		.host = drp_auth_host_plugin_host(h),
		.plugin = "proxy",
		.instance = id->user,
	};
	return id;
}

drp_auth_ident_t *drp_auth_ident_new(drp_auth_host_t *h, const char *basic,
				     const char *registry)
{
	return ident_new(h, basic, registry);
}

drp_auth_ident_t *drp_auth_ident_get(drp_auth_host_t *h, const char *basic,
				     const char *registry)
{
	drp_auth_handles_t *t = drp_auth_host_handles(h);
	double now = now_of(h);
	anon_t *dead = NULL;
	pthread_mutex_lock(&t->lock);
	anon_t *e = t->clients;
	while (e != NULL && (strcmp(e->ident->registry, registry) != 0 ||
			     strcmp(e->ident->basic, basic) != 0))
		e = e->next;
	if (e == NULL) {
		if (t->n_clients >= CLIENTS_MAX) {
			/* Forget those nobody holds and nobody verified
			 * lately. */
			for (anon_t **pp = &t->clients; *pp != NULL;) {
				anon_t *x = *pp;
				if (atomic_load(&x->ident->refs) == 1 &&
				    atomic_load(&x->ident->verified_until) <=
					    now) {
					*pp = x->next;
					x->next = dead;
					dead = x;
					t->n_clients--;
				} else {
					pp = &x->next;
				}
			}
		}
		e = DRP_NEW(anon_t);
		e->ident = ident_new(h, basic, registry);
		e->next = t->clients;
		t->clients = e;
		t->n_clients++;
	}
	drp_auth_ident_t *id = drp_auth_ident_ref(e->ident);
	pthread_mutex_unlock(&t->lock);
	while (dead != NULL) {
		anon_t *x = dead;
		dead = x->next;
		drp_auth_ident_unref(x->ident);
		free(x);
	}
	return id;
}

bool drp_auth_ident_is_anon(const drp_auth_ident_t *id)
{
	return id->basic == NULL;
}

static unsigned bucket_of(const char *id);

static char *privacy_key(const char *registry, const char *repo)
{
	size_t n = strlen(registry) + strlen(repo) + 2;
	char *k = drp_malloc(n);
	snprintf(k, n, "%s/%s", registry, repo);
	return k;
}

/* The table of what is known about repositories holds the privacy of
 * "registry/repo" and the upstream's verdict on a client's credentials
 * for it, under "!HEX registry/repo" (no registry name starts with '!'). */
static int known_get(drp_auth_host_t *h, char *key);
static void known_set(drp_auth_host_t *h, char *key, int state, double ttl);

static char *confirm_key(const uint8_t cred[32], const char *registry,
			 const char *repo)
{
	size_t n = 1 + 64 + 1 + strlen(registry) + 1 + strlen(repo) + 1;
	char *k = drp_malloc(n), *p = k;
	*p++ = '!';
	for (int i = 0; i < 32; i++, p += 2)
		snprintf(p, 3, "%02x", cred[i]);
	snprintf(p, n - 65, " %s/%s", registry, repo);
	return k;
}

int drp_auth_confirm_get(drp_auth_host_t *h, const uint8_t cred[32],
			 const char *registry, const char *repo)
{
	return known_get(h, confirm_key(cred, registry, repo));
}

void drp_auth_confirm_set(drp_auth_host_t *h, const uint8_t cred[32],
			  const char *registry, const char *repo, int state)
{
	known_set(h, confirm_key(cred, registry, repo), state,
		  state == DRP_AUTH_CONFIRMED ? DRP_AUTH_CONFIRM_TTL
					      : DRP_AUTH_REFUSED_TTL);
}

void drp_auth_ident_key(const drp_auth_ident_t *id, uint8_t out[32])
{
	const char *v = id->basic ? id->basic : "";
	drp_users_key(v, strlen(v), out);
}

int drp_auth_privacy_get(drp_auth_host_t *h, const char *registry,
			 const char *repo)
{
	return known_get(h, privacy_key(registry, repo));
}

void drp_auth_privacy_set(drp_auth_host_t *h, const char *registry,
			  const char *repo, int state)
{
	known_set(h, privacy_key(registry, repo), state, DRP_AUTH_PRIVACY_TTL);
}

/* Takes key. */
static int known_get(drp_auth_host_t *h, char *key)
{
	drp_auth_handles_t *t = drp_auth_host_handles(h);
	double now = now_of(h);
	int state = DRP_AUTH_UNKNOWN;
	pthread_mutex_lock(&t->lock);
	for (privacy_t *p = t->privacy[bucket_of(key) % PRIVACY_BUCKETS]; p;
	     p = p->next)
		if (strcmp(p->key, key) == 0 && p->until > now)
			state = p->state;
	pthread_mutex_unlock(&t->lock);
	free(key);
	return state;
}

/* Takes key. */
static void known_set(drp_auth_host_t *h, char *key, int state, double ttl)
{
	drp_auth_handles_t *t = drp_auth_host_handles(h);
	double now = now_of(h);
	unsigned b = bucket_of(key) % PRIVACY_BUCKETS;
	privacy_t *dead = NULL;
	pthread_mutex_lock(&t->lock);
	privacy_t *p = t->privacy[b];
	while (p != NULL && strcmp(p->key, key) != 0)
		p = p->next;
	if (p == NULL) {
		if (t->n_privacy >= PRIVACY_MAX) {
			/* Full: this bucket's entries go. */
			dead = t->privacy[b];
			t->privacy[b] = NULL;
			for (privacy_t *x = dead; x; x = x->next)
				t->n_privacy--;
		}
		p = DRP_NEW(privacy_t);
		p->key = key;
		key = NULL;
		p->next = t->privacy[b];
		t->privacy[b] = p;
		t->n_privacy++;
	}
	p->state = state;
	p->until = now + ttl;
	pthread_mutex_unlock(&t->lock);
	free(key);
	while (dead != NULL) {
		privacy_t *x = dead;
		dead = x->next;
		free(x->key);
		free(x);
	}
}

bool drp_auth_ident_verified(drp_auth_ident_t *id)
{
	return atomic_load(&id->verified_until) > now_of(id->h);
}

void drp_auth_ident_set_verified(drp_auth_ident_t *id)
{
	atomic_store(&id->verified_until,
		     now_of(id->h) + DRP_AUTH_VERIFIED_TTL);
}

drp_auth_ident_t *drp_auth_ident_anon(drp_auth_host_t *h, const char *registry)
{
	drp_auth_handles_t *t = drp_auth_host_handles(h);
	pthread_mutex_lock(&t->lock);
	anon_t *a = t->anon;
	while (a != NULL && strcmp(a->ident->registry, registry) != 0)
		a = a->next;
	if (a == NULL) {
		a = DRP_NEW(anon_t);
		a->ident = ident_new(h, NULL, registry);
		a->next = t->anon;
		t->anon = a;
	}
	drp_auth_ident_t *id = drp_auth_ident_ref(a->ident);
	pthread_mutex_unlock(&t->lock);
	return id;
}

drp_auth_ident_t *drp_auth_ident_ref(drp_auth_ident_t *id)
{
	if (id != NULL)
		atomic_fetch_add(&id->refs, 1);
	return id;
}

void drp_auth_ident_unref(drp_auth_ident_t *id)
{
	if (id == NULL || atomic_fetch_sub(&id->refs, 1) != 1)
		return;
	drp_tokencache_drop_owner(id->ctx.host->tokens, &id->ctx);
	if (id->basic != NULL) {
		explicit_bzero(id->basic, strlen(id->basic));
		free(id->basic);
	}
	free(id->user);
	free(id->registry);
	free(id);
}

const char *drp_auth_ident_user(const drp_auth_ident_t *id)
{
	return id->user;
}

/* ---- the identity's token flow ---- */

enum { OP_FETCH = 1, OP_WAIT = 2 };

/* A pending challenge of one request (in the request's data slot). */
typedef struct id_op {
	int kind;
	drp_auth_ident_t *id; /* a reference */
	drp_auth_req_t *r;    /* NULL once the request gave up */
	char *scope;
	char *realm_host;
	drp_token_wait_t *wait;
} id_op_t;

static void op_free(id_op_t *op)
{
	free(op->scope);
	free(op->realm_host);
	drp_auth_ident_unref(op->id);
	free(op);
}

static int set_bearer(drp_auth_req_t *r, const char *token)
{
	size_t n = strlen(token) + sizeof("Bearer ");
	char *v = drp_malloc(n);
	snprintf(v, n, "Bearer %s", token);
	int rc = drp_auth_req_set_header(r, "Authorization", v);
	explicit_bzero(v, n);
	free(v);
	return rc == 0 ? DRP_AUTH_OK : DRP_AUTH_ERROR;
}

/* "repository:NAME:ACTIONS" of the request, "" outside a repository. */
static char *req_scope(const drp_auth_req_t *r)
{
	const char *repo = drp_auth_req_get(r, DRP_REQ_REPOSITORY);
	const char *actions = drp_auth_req_get(r, DRP_REQ_ACTIONS);
	if (repo == NULL)
		return drp_strdup("");
	size_t n = strlen(repo) + strlen(actions) + sizeof("repository:::");
	char *s = drp_malloc(n);
	snprintf(s, n, "repository:%s:%s", repo, actions);
	return s;
}

int drp_auth_ident_decorate(drp_auth_ident_t *id, drp_auth_req_t *r)
{
	if (atomic_load(&id->scheme) == SCHEME_BASIC) {
		if (id->basic == NULL)
			return DRP_AUTH_DECLINED;
		return drp_auth_req_set_header(r, "Authorization", id->basic) ==
				       0
			       ? DRP_AUTH_OK
			       : DRP_AUTH_ERROR;
	}
	char *scope = req_scope(r);
	char *token = NULL;
	int res = DRP_AUTH_DECLINED;
	if (api_of(id)->token_get(&id->ctx, scope, &token) == 0) {
		res = set_bearer(r, token);
		explicit_bzero(token, strlen(token));
		free(token);
	}
	free(scope);
	return res;
}

static void wait_cb(void *arg, const char *token)
{
	id_op_t *op = arg;
	drp_auth_req_t *r = op->r;
	/* NULL: the fetch this waited for failed (most likely refused). */
	int res = token ? set_bearer(r, token) : DRP_AUTH_DECLINED;
	drp_auth_req_set_data(r, NULL);
	op_free(op);
	drp_auth_req_done(r, res);
}

static void fetch_cb(void *arg, int status, const drp_http_fetch_resp_t *resp,
		     const char *body, size_t body_len)
{
	id_op_t *op = arg;
	drp_auth_ident_t *id = op->id;
	const drp_host_api_t *api = api_of(id);
	char *token = NULL;
	double ttl = 0;
	int res;
	if (status == 200 &&
	    api->token_parse(body, body_len, &token, &ttl) == 0) {
		drp_log_info(DRP_LOG_PLUGIN,
			     "proxy/%s: token for scope '%s' from %s, valid "
			     "%.0f s",
			     id->user, op->scope, op->realm_host, ttl);
		api->token_put(&id->ctx, op->scope, token, ttl);
		res = op->r ? set_bearer(op->r, token) : DRP_AUTH_OK;
		explicit_bzero(token, strlen(token));
		free(token);
	} else {
		api->token_fail(&id->ctx, op->scope);
		if (status == 401 || status == 403) {
			/* The client's credentials (or anonymous access)
			 * are not good enough: its 401 goes back to it. */
			drp_log_notice(DRP_LOG_PLUGIN,
				       "proxy/%s: token service %s refused "
				       "%s for scope '%s' (HTTP %d)",
				       id->user, op->realm_host,
				       id->basic ? "the client's credentials"
						 : "anonymous access",
				       op->scope, status);
			res = DRP_AUTH_DECLINED;
		} else {
			drp_log_warning(DRP_LOG_PLUGIN,
					"proxy/%s: token service %s: %s%s",
					id->user, op->realm_host,
					status < 0 ? "" : "HTTP ",
					status < 0	? strerror(-status)
					: status == 200 ? "unusable answer"
							: "error");
			res = DRP_AUTH_ERROR;
		}
	}
	drp_auth_req_t *r = op->r;
	op_free(op);
	if (r != NULL) {
		drp_auth_req_set_data(r, NULL);
		drp_auth_req_done(r, res);
	}
}

/* realm?service=S&scope=A&scope=B (scope values space-separated). */
static char *token_url(const drp_host_api_t *api, const char *realm,
		       const char *service, const char *scope)
{
	drp_buf_t b = {0};
	drp_buf_printf(&b, "%s", realm);
	char sep = strchr(realm, '?') ? '&' : '?';
	if (*service) {
		char *e = api->url_encode(service);
		drp_buf_printf(&b, "%cservice=%s", sep, e);
		free(e);
		sep = '&';
	}
	for (const char *p = scope; *p;) {
		size_t w = strcspn(p, " ");
		if (w > 0) {
			char *one = drp_strndup(p, w);
			char *e = api->url_encode(one);
			drp_buf_printf(&b, "%cscope=%s", sep, e);
			free(e);
			free(one);
			sep = '&';
		}
		p += w;
		p += strspn(p, " ");
	}
	char *url = drp_strndup(drp_buf_head(&b), drp_buf_pending(&b));
	drp_buf_free(&b);
	return url;
}

static int start_fetch(id_op_t *op, const char *realm, const char *service)
{
	drp_auth_ident_t *id = op->id;
	const drp_host_api_t *api = api_of(id);
	char *url = token_url(api, realm, service, op->scope);
	const char *p = strstr(realm, "://");
	p = p ? p + 3 : realm;
	op->realm_host = drp_strndup(p, strcspn(p, "/?#"));
	char *auth = NULL;
	if (id->basic != NULL) {
		size_t n = strlen(id->basic) + sizeof("Authorization: ");
		auth = drp_malloc(n);
		snprintf(auth, n, "Authorization: %s", id->basic);
	}
	const char *headers[] = {auth, NULL};
	drp_http_fetch_t *f =
		api->http_fetch(&id->ctx, "GET", url, auth ? headers : NULL,
				NULL, 0, fetch_cb, op);
	if (auth != NULL) {
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	free(url);
	return f ? 0 : -EIO;
}

static int answer_basic(drp_auth_ident_t *id, drp_auth_req_t *r)
{
	if (id->basic == NULL)
		return DRP_AUTH_DECLINED;
	atomic_store(&id->scheme, SCHEME_BASIC);
	const char *sent = drp_auth_req_header(r, "Authorization");
	if (sent != NULL && strcmp(sent, id->basic) == 0)
		return DRP_AUTH_DECLINED; /* refused: the client hears so */
	return drp_auth_req_set_header(r, "Authorization", id->basic) == 0
		       ? DRP_AUTH_OK
		       : DRP_AUTH_ERROR;
}

int drp_auth_ident_challenge(drp_auth_ident_t *id, drp_auth_req_t *r,
			     const char *www)
{
	drp_challenges_t cs;
	if (drp_challenge_parse(www, strlen(www), &cs) < 0)
		return DRP_AUTH_DECLINED;
	const drp_challenge_t *bearer = drp_challenge_find(&cs, "Bearer");
	const char *realm =
		bearer ? drp_challenge_param(bearer, "realm") : NULL;
	int res;
	if (realm == NULL) {
		res = drp_challenge_find(&cs, "Basic") ? answer_basic(id, r)
						       : DRP_AUTH_DECLINED;
		drp_challenges_free(&cs);
		return res;
	}
	atomic_store(&id->scheme, SCHEME_BEARER);
	if (id->basic != NULL && strncasecmp(realm, "https://", 8) != 0) {
		drp_log_warning(DRP_LOG_PLUGIN,
				"proxy/%s: not sending a client's credentials "
				"to the non-https realm '%s'",
				id->user, realm);
		drp_challenges_free(&cs);
		return DRP_AUTH_DECLINED;
	}
	const char *service = drp_challenge_param(bearer, "service");
	const char *scope = drp_challenge_param(bearer, "scope");
	const drp_host_api_t *api = api_of(id);
	const char *sent = drp_auth_req_header(r, "Authorization");
	if (sent != NULL && strncasecmp(sent, "Bearer ", 7) == 0)
		api->token_forget(&id->ctx, scope ? scope : "", sent + 7);

	id_op_t *op = DRP_NEW(id_op_t);
	op->id = drp_auth_ident_ref(id);
	op->r = r;
	/* Registries write the actions in any order: ask in one. */
	op->scope = drp_tokencache_scope_canon(scope ? scope : "");
	char *token = NULL;
	switch (api->token_acquire(&id->ctx, op->scope, &token, wait_cb, op,
				   &op->wait)) {
	case DRP_TOKEN_HIT:
		res = set_bearer(r, token);
		explicit_bzero(token, strlen(token));
		free(token);
		op_free(op);
		break;
	case DRP_TOKEN_WAIT:
		op->kind = OP_WAIT;
		drp_auth_req_set_data(r, op);
		res = DRP_AUTH_PENDING;
		break;
	case DRP_TOKEN_FETCH:
		op->kind = OP_FETCH;
		if (start_fetch(op, realm, service ? service : "") < 0) {
			api->token_fail(&id->ctx, op->scope);
			op_free(op);
			res = DRP_AUTH_ERROR;
		} else {
			drp_auth_req_set_data(r, op);
			res = DRP_AUTH_PENDING;
		}
		break;
	default:
		op_free(op);
		res = DRP_AUTH_ERROR;
		break;
	}
	drp_challenges_free(&cs);
	return res;
}

void drp_auth_ident_cancel(drp_auth_ident_t *id, drp_auth_req_t *r)
{
	id_op_t *op = drp_auth_req_get_data(r);
	if (op == NULL)
		return;
	drp_auth_req_set_data(r, NULL);
	if (op->kind == OP_WAIT) {
		api_of(id)->token_wait_cancel(&id->ctx, op->wait);
		op_free(op);
	} else {
		/* Others may wait for this token: the fetch goes on. */
		op->r = NULL;
	}
}

/* ---- handles ---- */

drp_auth_handles_t *drp_auth_handles_new(void)
{
	drp_auth_handles_t *t = DRP_NEW(drp_auth_handles_t);
	pthread_mutex_init(&t->lock, NULL);
	return t;
}

static void handle_free(handle_t *e)
{
	drp_auth_ident_unref(e->ident);
	free(e->registry);
	explicit_bzero(e->id, sizeof(e->id));
	free(e);
}

void drp_auth_handles_free(drp_auth_handles_t *t)
{
	if (t == NULL)
		return;
	for (unsigned i = 0; i < HANDLE_BUCKETS; i++)
		while (t->bucket[i] != NULL) {
			handle_t *e = t->bucket[i];
			t->bucket[i] = e->next;
			handle_free(e);
		}
	anon_t *lists[] = {t->anon, t->clients};
	for (size_t i = 0; i < DRP_ARRAY_SIZE(lists); i++)
		while (lists[i] != NULL) {
			anon_t *a = lists[i];
			lists[i] = a->next;
			drp_auth_ident_unref(a->ident);
			free(a);
		}
	for (unsigned i = 0; i < PRIVACY_BUCKETS; i++)
		while (t->privacy[i] != NULL) {
			privacy_t *p = t->privacy[i];
			t->privacy[i] = p->next;
			free(p->key);
			free(p);
		}
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static unsigned bucket_of(const char *id)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % HANDLE_BUCKETS;
}

/* Unlinks expired entries (all of one bucket when force) onto *dead;
 * the caller frees them outside the lock. */
static void sweep(drp_auth_handles_t *t, double now, handle_t **dead,
		  int force_bucket)
{
	for (unsigned i = 0; i < HANDLE_BUCKETS; i++) {
		handle_t **pp = &t->bucket[i];
		while (*pp != NULL) {
			handle_t *e = *pp;
			if (e->expires > now && (int)i != force_bucket) {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			e->next = *dead;
			*dead = e;
			t->n--;
		}
	}
}

int drp_auth_handle_issue(drp_auth_host_t *h, const char *registry,
			  drp_auth_ident_t *ident, double ttl,
			  char out[DRP_AUTH_HANDLE_MAX])
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char rnd[HANDLE_RAND];
	size_t got = 0;
	while (got < sizeof(rnd)) {
		ssize_t n = getrandom(rnd + got, sizeof(rnd) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EIO;
		got += (size_t)n;
	}
	handle_t *e = DRP_NEW(handle_t);
	size_t o = strlen(DRP_AUTH_HANDLE_PREFIX);
	memcpy(e->id, DRP_AUTH_HANDLE_PREFIX, o);
	/* 6 bits per character from a bit stream over the random bytes. */
	unsigned acc = 0;
	int bits = 0;
	for (size_t i = 0; i < sizeof(rnd); i++) {
		acc = acc << 8 | rnd[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			e->id[o++] = tab[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		e->id[o++] = tab[(acc << (6 - bits)) & 63];
	e->id[o] = '\0';
	explicit_bzero(rnd, sizeof(rnd));
	e->registry = drp_strdup(registry);
	e->ident = drp_auth_ident_ref(ident);
	double now = now_of(h);
	e->expires = now + ttl;
	snprintf(out, DRP_AUTH_HANDLE_MAX, "%s", e->id);

	drp_auth_handles_t *t = drp_auth_host_handles(h);
	handle_t *dead = NULL;
	unsigned b = bucket_of(e->id);
	pthread_mutex_lock(&t->lock);
	if (++t->inserts % 256 == 0 || t->n >= HANDLES_MAX)
		sweep(t, now, &dead, -1);
	if (t->n >= HANDLES_MAX)
		sweep(t, now, &dead, (int)b);
	e->next = t->bucket[b];
	t->bucket[b] = e;
	t->n++;
	pthread_mutex_unlock(&t->lock);
	while (dead != NULL) {
		handle_t *d = dead;
		dead = d->next;
		handle_free(d);
	}
	return 0;
}

int drp_auth_handle_find(drp_auth_host_t *h, const char *handle,
			 const char *registry, drp_auth_ident_t **ident)
{
	drp_auth_handles_t *t = drp_auth_host_handles(h);
	double now = now_of(h);
	int r = -ENOENT;
	pthread_mutex_lock(&t->lock);
	for (handle_t *e = t->bucket[bucket_of(handle)]; e; e = e->next) {
		if (strcmp(e->id, handle) != 0)
			continue;
		if (e->expires > now && strcmp(e->registry, registry) == 0) {
			*ident = drp_auth_ident_ref(e->ident);
			r = 0;
		}
		break;
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

bool drp_auth_is_handle(const char *authorization)
{
	return authorization != NULL &&
	       strncasecmp(authorization, "Bearer ", 7) == 0 &&
	       strncmp(authorization + 7 + strspn(authorization + 7, " "),
		       DRP_AUTH_HANDLE_PREFIX,
		       strlen(DRP_AUTH_HANDLE_PREFIX)) == 0;
}
