/* SPDX-License-Identifier: MIT */
/* Proxy users: htpasswd parsing, password verification, the verdict
 * cache, and the verifier threads that keep bcrypt off the loops. */
#include "auth/users.h"

#include <crypt.h>
#include <netinet/in.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "util/base64.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/pool.h"

/* A users file larger than this is surely not one. */
#define USERS_FILE_MAX (16 * 1024 * 1024)
#define CACHE_BUCKETS  256

enum hash_kind {
	H_CRYPT = 1, /* bcrypt, SHA-crypt: crypt_r(3) */
	H_APR1 = 2,
	H_SHA1 = 3,
};

typedef struct user {
	char *name;
	char *hash;
	enum hash_kind kind;
	unsigned line;
} user_t;

typedef struct verdict {
	struct verdict *next;
	uint8_t key[32];
	int verdict;
	char *user;
	double until;
} verdict_t;

struct drp_users {
	atomic_uint refs;
	char *path;
	user_t *users; /* sorted by name */
	unsigned n;
	double (*now)(void);
	pthread_mutex_t lock; /* the cache */
	verdict_t *bucket[CACHE_BUCKETS];
	unsigned n_cached;
};

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void free_secret(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* Equal strings, in time that depends only on their lengths. */
static bool ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
	if (alen != blen)
		return false;
	const unsigned char *x = a, *y = b;
	unsigned char d = 0;
	for (size_t i = 0; i < alen; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

/* ---- crypt's own base64 alphabet ---- */

static const char crypt64[] =
	"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static bool all_crypt64(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\0' || strchr(crypt64, s[i]) == NULL)
			return false;
	return true;
}

/* ---- Apache's MD5 ($apr1$) ----
 *
 * The MD5-crypt construction (the same as crypt(3)'s $1$ with another
 * magic): a digest of password, magic and salt, mixed with a digest of
 * password+salt+password, then 1000 rounds that alternate the inputs,
 * and the 16 bytes written in a fixed order, 6 bits per character. */

static int md5_init(gnutls_hash_hd_t *h)
{
	return gnutls_hash_init(h, GNUTLS_DIG_MD5) < 0 ? -EIO : 0;
}

static void md5_add(gnutls_hash_hd_t h, const void *p, size_t n)
{
	gnutls_hash(h, p, n);
}

static void to64(char **p, uint32_t v, int n)
{
	while (n-- > 0) {
		*(*p)++ = crypt64[v & 0x3f];
		v >>= 6;
	}
}

/* out: "$apr1$" salt "$" 22 characters; room for 6 + 8 + 1 + 22 + 1. */
static int apr1_hash(const char *pw, const char *salt, size_t salt_len,
		     char out[40])
{
	static const char magic[] = "$apr1$";
	size_t pl = strlen(pw);
	unsigned char fin[16], alt[16];
	gnutls_hash_hd_t h;

	if (salt_len > 8)
		salt_len = 8;
	if (md5_init(&h) < 0)
		return -EIO;
	md5_add(h, pw, pl);
	md5_add(h, salt, salt_len);
	md5_add(h, pw, pl);
	gnutls_hash_deinit(h, alt);

	if (md5_init(&h) < 0)
		return -EIO;
	md5_add(h, pw, pl);
	md5_add(h, magic, sizeof(magic) - 1);
	md5_add(h, salt, salt_len);
	for (size_t i = pl; i > 0; i -= i > 16 ? 16 : i)
		md5_add(h, alt, i > 16 ? 16 : i);
	/* One byte per bit of the length: NUL for a set bit, the
	 * password's first character for a clear one. */
	for (size_t i = pl; i > 0; i >>= 1)
		md5_add(h, (i & 1) ? "" : pw, 1);
	gnutls_hash_deinit(h, fin);

	for (int i = 0; i < 1000; i++) {
		if (md5_init(&h) < 0)
			return -EIO;
		if (i & 1)
			md5_add(h, pw, pl);
		else
			md5_add(h, fin, 16);
		if (i % 3)
			md5_add(h, salt, salt_len);
		if (i % 7)
			md5_add(h, pw, pl);
		if (i & 1)
			md5_add(h, fin, 16);
		else
			md5_add(h, pw, pl);
		gnutls_hash_deinit(h, fin);
	}

	char *p = out;
	memcpy(p, magic, sizeof(magic) - 1);
	p += sizeof(magic) - 1;
	memcpy(p, salt, salt_len);
	p += salt_len;
	*p++ = '$';
	static const unsigned char order[5][3] = {
		{0, 6, 12}, {1, 7, 13}, {2, 8, 14}, {3, 9, 15}, {4, 10, 5}};
	for (int i = 0; i < 5; i++)
		to64(&p,
		     (uint32_t)fin[order[i][0]] << 16 |
			     (uint32_t)fin[order[i][1]] << 8 | fin[order[i][2]],
		     4);
	to64(&p, fin[11], 2);
	*p = '\0';
	explicit_bzero(fin, sizeof(fin));
	explicit_bzero(alt, sizeof(alt));
	return 0;
}

/* ---- loading ---- */

static int user_cmp(const void *a, const void *b)
{
	return strcmp(((const user_t *)a)->name, ((const user_t *)b)->name);
}

static bool prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/* Whether crypt(3) here takes this hash as a setting. */
static bool crypt_supports(const char *hash)
{
#ifdef CRYPT_SALT_OK
	int r = crypt_checksalt(hash);
	return r == CRYPT_SALT_OK || r == CRYPT_SALT_METHOD_LEGACY ||
	       r == CRYPT_SALT_TOO_CHEAP;
#else
	return true;
#endif
}

/*
 * What kind of hash this is: > 0 a kind, 0 skipped (warned), -1 an
 * error (reported). */
static int classify(const char *file, unsigned line, const char *name,
		    const char *hash, drp_conf_errors_t *errs)
{
	size_t n = strlen(hash);
	if (prefix(hash, "$2y$") || prefix(hash, "$2b$") ||
	    prefix(hash, "$2a$")) {
		/* $2y$CC$ + 22 characters of salt + 31 of hash */
		bool ok = n == 60 && hash[4] >= '0' && hash[4] <= '3' &&
			  hash[5] >= '0' && hash[5] <= '9' && hash[6] == '$' &&
			  all_crypt64(hash + 7, 53);
		if (!ok) {
			drp_conf_error(errs, file, line, NULL, NULL,
				       "user '%s': malformed bcrypt hash",
				       name);
			return -1;
		}
		if (!crypt_supports(hash)) {
			drp_conf_error(errs, file, line, NULL, NULL,
				       "user '%s': this system's crypt(3) "
				       "does not support bcrypt",
				       name);
			return -1;
		}
		return H_CRYPT;
	}
	if (prefix(hash, "$5$") || prefix(hash, "$6$")) {
		if (strchr(hash + 3, '$') == NULL || !crypt_supports(hash)) {
			drp_conf_error(errs, file, line, NULL, NULL,
				       "user '%s': malformed or unsupported "
				       "SHA-crypt hash",
				       name);
			return -1;
		}
		return H_CRYPT;
	}
	if (prefix(hash, "$apr1$")) {
		const char *salt = hash + 6;
		const char *d = strchr(salt, '$');
		if (d == NULL || d == salt || d - salt > 8 ||
		    !all_crypt64(salt, (size_t)(d - salt)) ||
		    strlen(d + 1) != 22 || !all_crypt64(d + 1, 22)) {
			drp_conf_error(errs, file, line, NULL, NULL,
				       "user '%s': malformed $apr1$ hash",
				       name);
			return -1;
		}
		return H_APR1;
	}
	if (prefix(hash, "{SHA}")) {
		unsigned char d[32];
		if (n != 5 + 28 ||
		    drp_base64_decode(hash + 5, 28, d, sizeof(d)) != 20) {
			drp_conf_error(errs, file, line, NULL, NULL,
				       "user '%s': malformed {SHA} hash", name);
			return -1;
		}
		return H_SHA1;
	}
	/* Never log the value: it may be a password. */
	if (hash[0] == '$')
		drp_log_warning(DRP_LOG_CONF,
				"%s:%u: user '%s' skipped: unsupported hash "
				"scheme (use htpasswd -B)",
				file, line, name);
	else if (n == 13 && all_crypt64(hash, 13))
		drp_log_warning(DRP_LOG_CONF,
				"%s:%u: user '%s' skipped: crypt(3) DES hashes "
				"are not accepted (they keep 8 characters of a "
				"password); re-create it with htpasswd -B",
				file, line, name);
	else
		drp_log_warning(DRP_LOG_CONF,
				"%s:%u: user '%s' skipped: plaintext passwords "
				"are not accepted; re-create it with "
				"htpasswd -B",
				file, line, name);
	return 0;
}

static void users_free(drp_users_t *u)
{
	for (unsigned i = 0; i < u->n; i++) {
		free(u->users[i].name);
		free(u->users[i].hash);
	}
	free(u->users);
	for (unsigned b = 0; b < CACHE_BUCKETS; b++) {
		while (u->bucket[b] != NULL) {
			verdict_t *v = u->bucket[b];
			u->bucket[b] = v->next;
			free(v->user);
			free(v);
		}
	}
	pthread_mutex_destroy(&u->lock);
	free(u->path);
	free(u);
}

static drp_users_t *parse(const char *file, const char *text, size_t len,
			  drp_conf_errors_t *errs)
{
	drp_users_t *u = DRP_NEW(drp_users_t);
	atomic_init(&u->refs, 1);
	u->path = drp_strdup(file);
	u->now = mono_now;
	pthread_mutex_init(&u->lock, NULL);
	unsigned before = errs->n, line = 0, skipped = 0;
	const char *p = text, *end = text + len;

	if (memchr(text, '\0', len) != NULL) {
		drp_conf_error(errs, file, 0, NULL, NULL,
			       "contains a NUL byte: not an htpasswd file");
		goto out;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		const char *next = nl ? nl + 1 : end;
		line++;
		while (le > p &&
		       (le[-1] == '\r' || le[-1] == ' ' || le[-1] == '\t'))
			le--;
		const char *s = p;
		while (s < le && (*s == ' ' || *s == '\t'))
			s++;
		p = next;
		if (s == le || *s == '#')
			continue;
		const char *colon = memchr(s, ':', (size_t)(le - s));
		if (colon == NULL) {
			drp_conf_error(errs, file, line, NULL, NULL,
				       "expected USER:HASH (as written by "
				       "htpasswd)");
			continue;
		}
		size_t nlen = (size_t)(colon - s);
		bool bad_name = nlen == 0 || nlen > DRP_USERS_NAME_MAX;
		for (size_t i = 0; i < nlen && !bad_name; i++)
			bad_name = (unsigned char)s[i] < 0x20 || s[i] == 0x7f;
		if (bad_name) {
			drp_conf_error(errs, file, line, NULL, NULL,
				       "invalid user name (1 to %d characters, "
				       "no control characters)",
				       DRP_USERS_NAME_MAX);
			continue;
		}
		char *name = drp_strndup(s, nlen);
		char *hash = drp_strndup(colon + 1, (size_t)(le - colon - 1));
		int kind = 0;
		for (unsigned i = 0; i < u->n; i++) {
			if (strcmp(u->users[i].name, name) == 0) {
				drp_conf_error(errs, file, line, NULL, NULL,
					       "duplicate user '%s' (first at "
					       "line %u)",
					       name, u->users[i].line);
				kind = -1;
				break;
			}
		}
		if (kind == 0 && hash[0] == '\0') {
			drp_conf_error(errs, file, line, NULL, NULL,
				       "user '%s' has no password hash", name);
			kind = -1;
		}
		if (kind == 0)
			kind = classify(file, line, name, hash, errs);
		if (kind <= 0) {
			skipped += kind == 0;
			free(name);
			free_secret(hash);
			continue;
		}
		u->users = drp_realloc(u->users, (u->n + 1) * sizeof(user_t));
		u->users[u->n++] = (user_t){
			.name = name,
			.hash = hash,
			.kind = (enum hash_kind)kind,
			.line = line,
		};
	}
out:
	if (errs->n > before) {
		users_free(u);
		return NULL;
	}
	if (u->n == 0)
		drp_log_warning(DRP_LOG_CONF,
				"%s: no user can log in (%u entr%s skipped)",
				file, skipped, skipped == 1 ? "y" : "ies");
	if (u->n > 1)
		qsort(u->users, u->n, sizeof(user_t), user_cmp);
	return u;
}

drp_users_t *drp_users_load_string(const char *name, const char *text,
				   drp_conf_errors_t *errs)
{
	return parse(name, text, strlen(text), errs);
}

drp_users_t *drp_users_load(const char *path, drp_conf_errors_t *errs)
{
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		drp_conf_error(errs, path, 0, NULL, NULL, "cannot open: %s",
			       strerror(errno));
		return NULL;
	}
	char *text = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 16384;
			text = drp_realloc(text, cap);
		}
		size_t n = fread(text + len, 1, cap - len, f);
		len += n;
		if (n == 0 || len > USERS_FILE_MAX)
			break;
	}
	bool err = ferror(f) != 0;
	int e = errno;
	fclose(f);
	drp_users_t *u = NULL;
	if (err)
		drp_conf_error(errs, path, 0, NULL, NULL, "cannot read: %s",
			       strerror(e));
	else if (len > USERS_FILE_MAX)
		drp_conf_error(errs, path, 0, NULL, NULL,
			       "larger than %d MiB: not an htpasswd file",
			       USERS_FILE_MAX >> 20);
	else
		u = parse(path, text, len, errs);
	explicit_bzero(text, cap);
	free(text);
	return u;
}

drp_users_t *drp_users_ref(drp_users_t *u)
{
	if (u != NULL)
		atomic_fetch_add(&u->refs, 1);
	return u;
}

void drp_users_unref(drp_users_t *u)
{
	if (u != NULL && atomic_fetch_sub(&u->refs, 1) == 1)
		users_free(u);
}

unsigned drp_users_count(const drp_users_t *u)
{
	return u->n;
}

static const user_t *find(const drp_users_t *u, const char *name)
{
	user_t key = {.name = (char *)(uintptr_t)name};
	return u->n ? bsearch(&key, u->users, u->n, sizeof(user_t), user_cmp)
		    : NULL;
}

bool drp_users_has(const drp_users_t *u, const char *name)
{
	return find(u, name) != NULL;
}

const char *drp_users_path(const drp_users_t *u)
{
	return u->path;
}

void drp_users_set_clock(drp_users_t *u, double (*now)(void))
{
	u->now = now;
}

/* ---- verification ---- */

static bool verify_entry(const user_t *e, const char *password)
{
	bool ok = false;
	switch (e->kind) {
	case H_CRYPT: {
		struct crypt_data *cd = drp_calloc(1, sizeof(*cd));
		const char *out = crypt_r(password, e->hash, cd);
		ok = out != NULL && out[0] != '*' &&
		     ct_equal(out, strlen(out), e->hash, strlen(e->hash));
		explicit_bzero(cd, sizeof(*cd));
		free(cd);
		break;
	}
	case H_APR1: {
		char out[40];
		const char *salt = e->hash + 6;
		size_t sl = strcspn(salt, "$");
		ok = apr1_hash(password, salt, sl, out) == 0 &&
		     ct_equal(out, strlen(out), e->hash, strlen(e->hash));
		explicit_bzero(out, sizeof(out));
		break;
	}
	case H_SHA1: {
		unsigned char want[21], got[20];
		ok = drp_base64_decode(e->hash + 5, 28, want, sizeof(want)) ==
			     20 &&
		     gnutls_hash_fast(GNUTLS_DIG_SHA1, password,
				      strlen(password), got) == 0 &&
		     ct_equal(want, 20, got, 20);
		explicit_bzero(got, sizeof(got));
		break;
	}
	}
	return ok;
}

int drp_users_verify(const drp_users_t *u, const char *user,
		     const char *password)
{
	const user_t *e = find(u, user);
	if (e == NULL) {
		/* Spend what checking a listed name costs (against the
		 * file's first entry), so that the time of a refusal does not
		 * tell which names exist. */
		if (u->n > 0)
			(void)verify_entry(&u->users[0], password);
		return -ENOENT;
	}
	return verify_entry(e, password) ? 0 : -EACCES;
}

int drp_users_parse_basic(const char *value, char **user, char **password)
{
	const char *p = value + strspn(value, " \t");
	*user = *password = NULL;
	if (strncasecmp(p, "Basic", 5) != 0 || (p[5] != ' ' && p[5] != '\t'))
		return -EINVAL;
	p += 5;
	p += strspn(p, " \t");
	size_t n = strcspn(p, " \t");
	if (p[n + strspn(p + n, " \t")] != '\0' || n == 0 || n > 8192)
		return -EINVAL;
	size_t room = DRP_BASE64_DECODED_MAX(n);
	unsigned char *dec = drp_malloc(room);
	ssize_t dl = drp_base64_decode(p, n, dec, room);
	int r = -EINVAL;
	if (dl < 0 || memchr(dec, '\0', (size_t)dl) != NULL)
		goto out;
	const unsigned char *colon = memchr(dec, ':', (size_t)dl);
	if (colon == NULL || colon == dec ||
	    (size_t)(colon - dec) > DRP_USERS_NAME_MAX)
		goto out;
	for (const unsigned char *q = dec; q < colon; q++)
		if (*q < 0x20 || *q == 0x7f)
			goto out;
	*user = drp_strndup((const char *)dec, (size_t)(colon - dec));
	*password = drp_strndup((const char *)colon + 1,
				(size_t)(dl - (colon + 1 - dec)));
	r = 0;
out:
	explicit_bzero(dec, room);
	free(dec);
	return r;
}

void drp_users_key(const char *value, size_t len, uint8_t out[32])
{
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, value, len, out) < 0)
		drp_require(!"SHA-256 unavailable");
}

/* The user name of a value, for a refusal's log line; NULL if none. */
static int verdict_of(const drp_users_t *u, const char *value, char **user)
{
	char *name = NULL, *pw = NULL;
	*user = NULL;
	if (drp_users_parse_basic(value, &name, &pw) < 0)
		return -EINVAL;
	int r = drp_users_verify(u, name, pw);
	free_secret(pw);
	*user = name;
	return r;
}

/* ---- the verdict cache ---- */

static unsigned bucket_of(const uint8_t key[32])
{
	return ((unsigned)key[0] << 8 | key[1]) % CACHE_BUCKETS;
}

int drp_users_cache_get(drp_users_t *u, const uint8_t key[32], char **user)
{
	double now = u->now();
	int r = -ESRCH;
	*user = NULL;
	pthread_mutex_lock(&u->lock);
	for (verdict_t *v = u->bucket[bucket_of(key)]; v; v = v->next) {
		if (memcmp(v->key, key, 32) == 0 && v->until > now) {
			r = v->verdict;
			*user = v->user ? drp_strdup(v->user) : NULL;
			break;
		}
	}
	pthread_mutex_unlock(&u->lock);
	return r;
}

/* Move cache entries to *dead: the expired ones (refusals false), or
 * the refusals (refusals true), of bucket b or of all (b ==
 * CACHE_BUCKETS). Cache lock held. */
static void evict(drp_users_t *u, verdict_t **dead, double now, unsigned b,
		  bool refusals)
{
	unsigned lo = b == CACHE_BUCKETS ? 0 : b;
	unsigned hi = b == CACHE_BUCKETS ? CACHE_BUCKETS : b + 1;
	for (unsigned i = lo; i < hi; i++) {
		for (verdict_t **pp = &u->bucket[i]; *pp;) {
			verdict_t *x = *pp;
			if (refusals ? x->verdict == 0 : x->until > now) {
				pp = &x->next;
				continue;
			}
			*pp = x->next;
			x->next = *dead;
			*dead = x;
			u->n_cached--;
		}
	}
}

void drp_users_cache_put(drp_users_t *u, const uint8_t key[32], int verdict,
			 const char *user)
{
	double now = u->now();
	verdict_t *dead = NULL;
	unsigned b = bucket_of(key);
	pthread_mutex_lock(&u->lock);
	verdict_t *v = u->bucket[b];
	while (v != NULL && memcmp(v->key, key, 32) != 0)
		v = v->next;
	if (v == NULL && u->n_cached >= DRP_USERS_CACHE_MAX) {
		/* Full: expired entries go; if none had, refusals (this
		 * bucket's, else any), so that a flood of wrong passwords
		 * never pushes out a good verdict; only a good verdict may
		 * push out its bucket when nothing else can go. */
		evict(u, &dead, now, CACHE_BUCKETS, false);
		if (u->n_cached >= DRP_USERS_CACHE_MAX)
			evict(u, &dead, now, b, true);
		if (u->n_cached >= DRP_USERS_CACHE_MAX)
			evict(u, &dead, now, CACHE_BUCKETS, true);
		if (u->n_cached >= DRP_USERS_CACHE_MAX && verdict != 0)
			goto out; /* all good verdicts: keep them */
		if (u->n_cached >= DRP_USERS_CACHE_MAX) {
			while (u->bucket[b] != NULL) {
				verdict_t *x = u->bucket[b];
				u->bucket[b] = x->next;
				x->next = dead;
				dead = x;
				u->n_cached--;
			}
		}
	}
	if (v == NULL) {
		v = DRP_NEW(verdict_t);
		memcpy(v->key, key, 32);
		v->next = u->bucket[b];
		u->bucket[b] = v;
		u->n_cached++;
	} else {
		free(v->user);
	}
	v->verdict = verdict;
	v->user = user ? drp_strdup(user) : NULL;
	v->until = now + DRP_USERS_CACHE_TTL;
out:
	pthread_mutex_unlock(&u->lock);
	while (dead != NULL) {
		verdict_t *x = dead;
		dead = x->next;
		free(x->user);
		free(x);
	}
}

int drp_users_check_sync(drp_users_t *u, const char *value, char **user)
{
	uint8_t key[32];
	drp_users_key(value, strlen(value), key);
	int r = drp_users_cache_get(u, key, user);
	if (r != -ESRCH)
		return r;
	r = verdict_of(u, value, user);
	drp_users_cache_put(u, key, r, *user);
	return r;
}

/* ---- the verifier threads ---- */

/* Deliveries to one loop. */
typedef struct users_loop {
	struct users_loop *next;
	struct ev_loop *loop;
	ev_async async;
	drp_users_pool_t *p;
	drp_users_wait_t *head, *tail; /* verdicts due (pool lock) */
} users_loop_t;

typedef struct job job_t;

/* A source address with queued verifications: the unit of the round
 * robin. Exists while it has queued jobs. */
typedef struct source {
	struct source *prev, *next; /* the ring */
	uint8_t addr[16];	    /* IPv4-mapped, or an IPv6 /64 */
	job_t *head, *tail;	    /* queued, oldest first */
	unsigned n;		    /* queued */
} source_t;

struct drp_users_wait {
	drp_users_wait_t *next; /* in its job, then in its loop's queue */
	job_t *job;		/* NULL once delivered to the queue */
	users_loop_t *lp;
	drp_users_cb *cb;
	void *arg;
	int verdict;
	char *user;
};

struct job {
	job_t *next;	/* all jobs */
	source_t *src;	/* while queued */
	job_t *q_next;	/* in src's queue */
	drp_users_t *u; /* a reference */
	uint8_t key[32];
	char *value; /* the secret: cleared when done */
	bool running;
	drp_users_wait_t *waiters;
};

/*
 * Verifications run in a lane of the worker pool (util/pool.h), which
 * bounds how many run at once and keeps a thread for them whatever the
 * other lanes do. The lane's jobs are tokens: a token that starts takes
 * the next verification by the round robin here, so the pool's FIFO
 * never decides which source goes first. There are as many tokens as
 * verifications that may start (all queued ones, or while held the
 * budget's worth); a token that finds nothing to do just ends.
 */
struct drp_users_pool {
	pthread_mutex_t lock;
	job_t *jobs; /* queued and running */
	unsigned n_jobs, max_jobs;
	unsigned n_queued; /* in the ring */
	source_t *ring;	   /* the source served next; NULL: nothing queued */
	unsigned long verified;
	bool stop, hold;
	unsigned budget; /* verifications that may start while held */
	drp_pool_t *own; /* the pool, when it is ours alone */
	drp_pool_lane_t *lane;
	unsigned tokens; /* in the lane, not yet started */
	users_loop_t *loops;
};

static void job_free(job_t *j)
{
	free_secret(j->value);
	drp_users_unref(j->u);
	free(j);
}

static void wait_free(drp_users_wait_t *w)
{
	free(w->user);
	free(w);
}

static void loop_async_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	users_loop_t *lp = DRP_CONTAINER_OF(a, users_loop_t, async);
	drp_users_pool_t *p = lp->p;
	/* One at a time: a callback may cancel a later waiter. */
	for (;;) {
		pthread_mutex_lock(&p->lock);
		drp_users_wait_t *w = lp->head;
		if (w != NULL) {
			lp->head = w->next;
			if (lp->head == NULL)
				lp->tail = NULL;
		}
		pthread_mutex_unlock(&p->lock);
		if (w == NULL)
			return;
		w->cb(w->arg, w->verdict, w->user);
		wait_free(w);
	}
}

/* Take j off its source's queue (the ring drops an emptied source). */
static void unqueue(drp_users_pool_t *p, job_t *j)
{
	source_t *src = j->src;
	job_t **pp = &src->head, *prev = NULL;
	while (*pp != j) {
		prev = *pp;
		pp = &(*pp)->q_next;
	}
	*pp = j->q_next;
	if (src->tail == j)
		src->tail = prev;
	j->src = NULL;
	j->q_next = NULL;
	p->n_queued--;
	if (--src->n > 0)
		return;
	if (src->next == src) {
		p->ring = NULL;
	} else {
		src->prev->next = src->next;
		src->next->prev = src->prev;
		if (p->ring == src)
			p->ring = src->next;
	}
	free(src);
}

/* The next job to verify: the oldest of the source whose turn it is;
 * the turn then passes to the next source. */
static job_t *next_job(drp_users_pool_t *p)
{
	if ((p->hold && p->budget == 0) || p->ring == NULL)
		return NULL;
	source_t *src = p->ring;
	job_t *j = src->head;
	p->ring = src->next;
	unqueue(p, j);
	if (p->hold)
		p->budget--;
	return j;
}

/* Hand j's verdict to its waiters' loops and free j (pool lock held; j
 * is off the job list). The loops outlive the threads
 * (drp_users_pool_free), so they can be woken under the lock. */
static void deliver(drp_users_pool_t *p, job_t *j, int verdict,
		    const char *user)
{
	users_loop_t *wake[16];
	unsigned n_wake = 0;
	bool wake_all = false;
	while (j->waiters != NULL) {
		drp_users_wait_t *w = j->waiters;
		j->waiters = w->next;
		w->job = NULL;
		w->verdict = verdict;
		w->user = user ? drp_strdup(user) : NULL;
		w->next = NULL;
		users_loop_t *lp = w->lp;
		if (lp->tail)
			lp->tail->next = w;
		else
			lp->head = w;
		lp->tail = w;
		bool seen = false;
		for (unsigned i = 0; i < n_wake; i++)
			seen = seen || wake[i] == lp;
		if (!seen && n_wake < DRP_ARRAY_SIZE(wake))
			wake[n_wake++] = lp;
		else if (!seen)
			wake_all = true;
	}
	if (wake_all) {
		for (users_loop_t *lp = p->loops; lp; lp = lp->next)
			ev_async_send(lp->loop, &lp->async);
	} else {
		for (unsigned i = 0; i < n_wake; i++)
			ev_async_send(wake[i]->loop, &wake[i]->async);
	}
	job_free(j);
}

static void unlink_job(drp_users_pool_t *p, job_t *j)
{
	for (job_t **pp = &p->jobs; *pp; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	}
	p->n_jobs--;
}

/* One token of the lane: verify the next queued value, if any. */
static void verify_token(void *arg)
{
	drp_users_pool_t *p = arg;
	pthread_mutex_lock(&p->lock);
	p->tokens--;
	job_t *j = p->stop ? NULL : next_job(p);
	if (j == NULL) {
		pthread_mutex_unlock(&p->lock);
		return;
	}
	j->running = true;
	pthread_mutex_unlock(&p->lock);

	char *user = NULL;
	int verdict = verdict_of(j->u, j->value, &user);
	drp_users_cache_put(j->u, j->key, verdict, user);

	pthread_mutex_lock(&p->lock);
	p->verified++;
	unlink_job(p, j);
	deliver(p, j, verdict, user);
	pthread_mutex_unlock(&p->lock);
	free(user);
}

/* Queue tokens for the verifications that may start. Lock held. */
static void top_up(drp_users_pool_t *p)
{
	unsigned want = p->n_queued;
	if (p->hold && p->budget < want)
		want = p->budget;
	while (!p->stop && p->tokens < want) {
		if (drp_pool_submit(p->lane, NULL, verify_token, NULL, p,
				    NULL) < 0)
			break;
		p->tokens++;
	}
}

drp_users_pool_t *drp_users_pool_new_on(drp_pool_t *pool, unsigned threads,
					unsigned max_jobs)
{
	/* At most `threads` verify at once; one thread is kept for them
	 * whatever the other lanes do. */
	drp_pool_lane_t *lane =
		drp_pool_lane_new(pool, "users", threads ? threads : 1, 1, 0);
	if (lane == NULL)
		return NULL;
	drp_users_pool_t *p = DRP_NEW(drp_users_pool_t);
	pthread_mutex_init(&p->lock, NULL);
	p->max_jobs = max_jobs ? max_jobs : 1;
	p->lane = lane;
	return p;
}

drp_users_pool_t *drp_users_pool_new(unsigned threads, unsigned max_jobs)
{
	drp_pool_t *own = drp_pool_new(threads ? threads : 1);
	if (own == NULL)
		return NULL;
	drp_users_pool_t *p = drp_users_pool_new_on(own, threads, max_jobs);
	if (p == NULL) {
		drp_pool_free(own);
		return NULL;
	}
	p->own = own;
	return p;
}

void drp_users_pool_free(drp_users_pool_t *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_mutex_unlock(&p->lock);
	/* Tokens not started are dropped; a verification under way
	 * finishes (and may still wake a loop). */
	drp_pool_lane_close(p->lane);
	drp_pool_free(p->own);
	while (p->jobs != NULL) {
		job_t *j = p->jobs;
		p->jobs = j->next;
		if (j->src != NULL)
			unqueue(p, j);
		while (j->waiters != NULL) {
			drp_users_wait_t *w = j->waiters;
			j->waiters = w->next;
			wait_free(w);
		}
		job_free(j);
	}
	while (p->loops != NULL) {
		users_loop_t *lp = p->loops;
		p->loops = lp->next;
		/* The loop no longer runs: nobody else touches it. */
		ev_async_stop(lp->loop, &lp->async);
		while (lp->head != NULL) {
			drp_users_wait_t *w = lp->head;
			lp->head = w->next;
			wait_free(w);
		}
		free(lp);
	}
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* The delivery queue of this loop, made on first use (on the loop's
 * thread, as ev_async_start requires). Pool lock held. */
static users_loop_t *loop_of(drp_users_pool_t *p, struct ev_loop *loop)
{
	users_loop_t *lp = p->loops;
	while (lp != NULL && lp->loop != loop)
		lp = lp->next;
	if (lp == NULL) {
		lp = DRP_NEW(users_loop_t);
		lp->loop = loop;
		lp->p = p;
		ev_async_init(&lp->async, loop_async_cb);
		ev_async_start(loop, &lp->async);
		lp->next = p->loops;
		p->loops = lp;
	}
	return lp;
}

/* The source of a check: an IPv4 address (as IPv4-mapped IPv6), an IPv6
 * /64 (one host or site has a whole /64 to pick addresses from), or all
 * zeros (unknown). */
static void source_key(const struct sockaddr *sa, uint8_t out[16])
{
	memset(out, 0, 16);
	if (sa != NULL && sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &a->sin_addr, 4);
	} else if (sa != NULL && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		bool v4 = IN6_IS_ADDR_V4MAPPED(&a->sin6_addr);
		memcpy(out, &a->sin6_addr, v4 ? 16 : 8);
	}
}

/*
 * Make room for one more job of source src (NULL: a source without
 * queued jobs) in a full pool: the busiest source, if it has at least two
 * queued jobs more, gives up its newest one, whose waiters get -EBUSY.
 * Pool lock held. Returns false if there is no room to be had.
 */
static bool make_room(drp_users_pool_t *p, const source_t *src)
{
	source_t *big = NULL, *s = p->ring;
	do {
		if (s != NULL && (big == NULL || s->n > big->n))
			big = s;
		s = s ? s->next : NULL;
	} while (s != NULL && s != p->ring);
	unsigned mine = src ? src->n : 0;
	if (big == NULL || big->n < mine + 2)
		return false;
	job_t *j = big->tail;
	unqueue(p, j);
	unlink_job(p, j);
	deliver(p, j, -EBUSY, NULL);
	return true;
}

int drp_users_check(drp_users_pool_t *p, drp_users_t *u, struct ev_loop *loop,
		    const struct sockaddr *from, const char *value, char **user,
		    drp_users_cb *cb, void *arg, drp_users_wait_t **wait)
{
	uint8_t key[32];
	drp_users_key(value, strlen(value), key);
	int r = drp_users_cache_get(u, key, user);
	if (r != -ESRCH)
		return r;
	char *name = NULL, *pw = NULL;
	if (drp_users_parse_basic(value, &name, &pw) < 0) {
		drp_users_cache_put(u, key, -EINVAL, NULL);
		return -EINVAL;
	}
	free(name);
	free_secret(pw);
	if (p == NULL) {
		r = verdict_of(u, value, user);
		drp_users_cache_put(u, key, r, *user);
		return r;
	}
	pthread_mutex_lock(&p->lock);
	job_t *j = p->jobs;
	while (j != NULL && (j->u != u || memcmp(j->key, key, 32) != 0))
		j = j->next;
	if (j == NULL) {
		uint8_t addr[16];
		source_key(from, addr);
		source_t *src = p->ring;
		while (src != NULL && memcmp(src->addr, addr, 16) != 0) {
			src = src->next;
			if (src == p->ring)
				src = NULL;
		}
		if (p->n_jobs >= p->max_jobs && !make_room(p, src)) {
			pthread_mutex_unlock(&p->lock);
			return -EBUSY;
		}
		if (src == NULL) {
			/* A new source has its turn next. */
			src = DRP_NEW(source_t);
			memcpy(src->addr, addr, 16);
			if (p->ring == NULL) {
				src->prev = src->next = src;
			} else {
				src->next = p->ring;
				src->prev = p->ring->prev;
				src->prev->next = src;
				p->ring->prev = src;
			}
			p->ring = src;
		}
		j = DRP_NEW(job_t);
		j->u = drp_users_ref(u);
		memcpy(j->key, key, 32);
		j->value = drp_strdup(value);
		j->next = p->jobs;
		p->jobs = j;
		p->n_jobs++;
		j->src = src;
		if (src->tail)
			src->tail->q_next = j;
		else
			src->head = j;
		src->tail = j;
		src->n++;
		p->n_queued++;
		top_up(p);
	}
	drp_users_wait_t *w = DRP_NEW(drp_users_wait_t);
	w->job = j;
	w->lp = loop_of(p, loop);
	w->cb = cb;
	w->arg = arg;
	w->next = j->waiters;
	j->waiters = w;
	pthread_mutex_unlock(&p->lock);
	*wait = w;
	return -EINPROGRESS;
}

void drp_users_wait_cancel(drp_users_pool_t *p, drp_users_wait_t *w)
{
	pthread_mutex_lock(&p->lock);
	drp_users_wait_t **pp = w->job ? &w->job->waiters : &w->lp->head;
	drp_users_wait_t *prev = NULL;
	while (*pp != NULL && *pp != w) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (*pp == w) {
		*pp = w->next;
		if (w->job == NULL && w->lp->tail == w)
			w->lp->tail = prev;
	}
	pthread_mutex_unlock(&p->lock);
	wait_free(w);
}

unsigned long drp_users_pool_verified(drp_users_pool_t *p)
{
	pthread_mutex_lock(&p->lock);
	unsigned long n = p->verified;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void drp_users_pool_hold(drp_users_pool_t *p, bool hold)
{
	pthread_mutex_lock(&p->lock);
	p->hold = hold;
	p->budget = 0;
	top_up(p);
	pthread_mutex_unlock(&p->lock);
}

void drp_users_pool_release(drp_users_pool_t *p, unsigned n)
{
	pthread_mutex_lock(&p->lock);
	p->budget += n;
	top_up(p);
	pthread_mutex_unlock(&p->lock);
}
