/* SPDX-License-Identifier: MIT */
/* Identities the core authenticates itself (a client's own credentials,
 * anonymous access) and the proxy-local token handles that stand for
 * them, or for the proxy's own identity, in clients' requests. An
 * identity's token flow is the plugins' own (plugins/common/bearer.c),
 * run through the core's host table with the identity as its owner. */
#include "auth/auth_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "bearer.h"
#include "auth/users.h"
#include "util/base64.h"
#include "util/log.h"
#include "util/mem.h"

#define HANDLE_BUCKETS 1024
/* Beyond this many live handles the oldest-looking go first. */
#define HANDLES_MAX 65536
#define HANDLE_RAND 32 /* bytes of randomness: 43 base64url characters */

struct drp_auth_ident {
	drp_host_ctx_t ctx; /* the owner of its tokens in the token cache */
	atomic_uint refs;
	drp_auth_host_t *h;
	/* The token flow; b.basic is "Basic ..." as the client sent it,
	 * NULL for anonymous access. */
	bearer_t b;
	char *user;
	char *registry;
	_Atomic double verified_until;
};

typedef struct handle {
	struct handle *next;
	char id[DRP_AUTH_HANDLE_MAX];
	char *registry;
	drp_auth_ident_t *ident; /* NULL: the proxy's identity */
	char *user; /* the proxy user it was given to (mirror), or NULL */
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

static double now_of(const drp_auth_host_t *h)
{
	drp_plugin_host_t *ph = &((drp_auth_host_t *)(uintptr_t)h)->ph;
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

static const bearer_client_t ident_client;

static drp_auth_ident_t *ident_new(drp_auth_host_t *h, const char *basic,
				   const char *registry)
{
	drp_auth_ident_t *id = DRP_NEW(drp_auth_ident_t);
	atomic_init(&id->refs, 1);
	atomic_init(&id->verified_until, 0.0);
	id->h = h;
	id->user = basic ? basic_user(basic) : drp_strdup("anonymous");
	id->registry = drp_strdup(registry);
	id->ctx = (drp_host_ctx_t){
		.host = &h->ph,
		.plugin = "proxy",
		.instance = id->user,
	};
	drp_require(bearer_init_client(&id->b, &id->ctx.host->api, &id->ctx,
				       &ident_client, basic, id->user) == 0);
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
	drp_auth_handles_t *t = h->handles;
	double now = now_of(h);
	anon_t *dead = NULL;
	pthread_mutex_lock(&t->lock);
	anon_t *e = t->clients;
	while (e != NULL && (strcmp(e->ident->registry, registry) != 0 ||
			     strcmp(e->ident->b.basic, basic) != 0))
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
	return id->b.basic == NULL;
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
	const char *v = id->b.basic ? id->b.basic : "";
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
	drp_auth_handles_t *t = h->handles;
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
	drp_auth_handles_t *t = h->handles;
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
	drp_auth_handles_t *t = h->handles;
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
	bearer_fini(&id->b);
	free(id->user);
	free(id->registry);
	free(id);
}

const char *drp_auth_ident_user(const drp_auth_ident_t *id)
{
	return id->user;
}

/* ---- the identity's token flow ---- */

static void ident_hold(bearer_t *b)
{
	drp_auth_ident_ref(DRP_CONTAINER_OF(b, drp_auth_ident_t, b));
}

static void ident_release(bearer_t *b)
{
	drp_auth_ident_unref(DRP_CONTAINER_OF(b, drp_auth_ident_t, b));
}

/* A token fetch may outlive the request that started it (and with it
 * the last reference to the identity). Registries write a scope's
 * actions in any order: the token request names them in one. */
static const bearer_client_t ident_client = {
	.hold = ident_hold,
	.release = ident_release,
	.scope = drp_tokencache_scope_canon,
};

int drp_auth_ident_decorate(drp_auth_ident_t *id, drp_auth_req_t *r)
{
	return bearer_decorate(&id->b, r);
}

int drp_auth_ident_challenge(drp_auth_ident_t *id, drp_auth_req_t *r,
			     const char *www)
{
	return bearer_challenge(&id->b, r, www);
}

void drp_auth_ident_cancel(drp_auth_ident_t *id, drp_auth_req_t *r)
{
	bearer_cancel(&id->b, r);
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
	free(e->user);
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
			  drp_auth_ident_t *ident, const char *user, double ttl,
			  char out[DRP_AUTH_HANDLE_MAX])
{
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
	if (drp_base64url_encode(rnd, sizeof(rnd), e->id + o,
				 sizeof(e->id) - o) < 0) {
		explicit_bzero(rnd, sizeof(rnd));
		free(e);
		return -EIO;
	}
	explicit_bzero(rnd, sizeof(rnd));
	e->registry = drp_strdup(registry);
	e->ident = drp_auth_ident_ref(ident);
	e->user = user ? drp_strdup(user) : NULL;
	double now = now_of(h);
	e->expires = now + ttl;
	snprintf(out, DRP_AUTH_HANDLE_MAX, "%s", e->id);

	drp_auth_handles_t *t = h->handles;
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
			 const char *registry, drp_auth_ident_t **ident,
			 char **user)
{
	if (user != NULL)
		*user = NULL;
	drp_auth_handles_t *t = h->handles;
	double now = now_of(h);
	int r = -ENOENT;
	pthread_mutex_lock(&t->lock);
	for (handle_t *e = t->bucket[bucket_of(handle)]; e; e = e->next) {
		if (strcmp(e->id, handle) != 0)
			continue;
		if (e->expires > now && strcmp(e->registry, registry) == 0) {
			*ident = drp_auth_ident_ref(e->ident);
			if (user != NULL && e->user != NULL)
				*user = drp_strdup(e->user);
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
