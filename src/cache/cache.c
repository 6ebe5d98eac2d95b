/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/digest.h"
#include "cache/index.h"
#include "http/uri.h"
#include "util/mem.h"

/*
 * Backend registry. This is process-wide state on purpose: backends are
 * code (like the set of linked-in functions), registered once at start-up
 * by the plugin loader and never removed, so there is nothing per
 * instance to hang it on.
 */
#define MAX_BACKENDS 16

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static const drp_cache_api_t *registered[MAX_BACKENDS];
static size_t n_registered;

static bool name_ok(const char *name)
{
	size_t n = 0;
	if (name == NULL)
		return false;
	for (; name[n]; n++) {
		char c = name[n];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-') ||
		    n >= 31)
			return false;
	}
	return n > 0;
}

static const drp_cache_api_t *find_locked(const char *name)
{
	const drp_cache_api_t *builtin[] = {drp_cache_fs(), drp_cache_mem()};
	for (size_t i = 0; i < DRP_ARRAY_SIZE(builtin); i++)
		if (strcmp(builtin[i]->name, name) == 0)
			return builtin[i];
	for (size_t i = 0; i < n_registered; i++)
		if (strcmp(registered[i]->name, name) == 0)
			return registered[i];
	return NULL;
}

const drp_cache_api_t *drp_cache_backend_find(const char *name)
{
	if (name == NULL)
		return NULL;
	pthread_mutex_lock(&reg_lock);
	const drp_cache_api_t *api = find_locked(name);
	pthread_mutex_unlock(&reg_lock);
	return api;
}

int drp_cache_backend_register(const drp_cache_api_t *api, char *errbuf,
			       size_t errlen)
{
	if (api == NULL) {
		snprintf(errbuf, errlen, "cache backend table is NULL");
		return -EINVAL;
	}
	/* Check the version before reading anything else: a table of
	 * another major may be laid out differently. */
	if (api->abi_major != DRP_CACHE_ABI_MAJOR ||
	    api->abi_minor > DRP_CACHE_ABI_MINOR) {
		snprintf(errbuf, errlen,
			 "cache backend ABI %u.%u not supported (daemon has "
			 "%u.%u)",
			 api->abi_major, api->abi_minor, DRP_CACHE_ABI_MAJOR,
			 DRP_CACHE_ABI_MINOR);
		return -ENOTSUP;
	}
	if (api->struct_size < DRP_CACHE_API_V1_SIZE) {
		snprintf(errbuf, errlen,
			 "cache backend table too small (%u < %zu bytes)",
			 api->struct_size, (size_t)DRP_CACHE_API_V1_SIZE);
		return -EINVAL;
	}
	if (!name_ok(api->name)) {
		snprintf(errbuf, errlen,
			 "cache backend name must be 1-31 of [a-z0-9_-]");
		return -EINVAL;
	}
	struct {
		const char *name;
		bool set;
	} ops[] = {
		{"open", api->open != NULL},
		{"close", api->close != NULL},
		{"lookup", api->lookup != NULL},
		{"read_open", api->read_open != NULL},
		{"read", api->read != NULL},
		{"read_close", api->read_close != NULL},
		{"write_begin", api->write_begin != NULL},
		{"write", api->write != NULL},
		{"commit", api->commit != NULL},
		{"abort", api->abort != NULL},
		{"remove", api->remove != NULL},
		{"iterate", api->iterate != NULL},
		{"stats", api->stats != NULL},
		{"meta_put", api->meta_put != NULL},
		{"meta_get", api->meta_get != NULL},
		{"meta_del", api->meta_del != NULL},
	};
	for (size_t i = 0; i < DRP_ARRAY_SIZE(ops); i++) {
		if (!ops[i].set) {
			snprintf(errbuf, errlen,
				 "cache backend '%s' lacks mandatory op %s",
				 api->name, ops[i].name);
			return -EINVAL;
		}
	}

	int rc = 0;
	pthread_mutex_lock(&reg_lock);
	if (find_locked(api->name)) {
		snprintf(errbuf, errlen, "cache backend '%s' already exists",
			 api->name);
		rc = -EEXIST;
	} else if (n_registered == MAX_BACKENDS) {
		snprintf(errbuf, errlen, "too many cache backends (max %d)",
			 MAX_BACKENDS);
		rc = -ENOSPC;
	} else {
		registered[n_registered++] = api;
	}
	pthread_mutex_unlock(&reg_lock);
	return rc;
}

/* Accept keys: the set of media types, order- and spacing-independent. */

#define MAX_TYPES 32

/* A digest the cache keys on: valid and SHA-256, which is also the one
 * spelling drp_digest_parse() takes. */
static bool key_digest(const char *s)
{
	bool sha256;
	return drp_digest_valid(s, strnlen(s, DRP_DIGEST_STRSIZE), &sha256) &&
	       sha256;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool type_char_ok(char c)
{
	/* RFC 9110 token characters plus '/'; excludes ',' ';' and space. */
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       strchr("!#$%&'*+-.^_`|~/", c) != NULL;
}

int drp_cache_accept_key(char *buf, size_t buflen, const char *const *values,
			 size_t n_values)
{
	char *types[MAX_TYPES];
	size_t n = 0;
	int rc = 0;

	for (size_t v = 0; v < n_values && values[v]; v++) {
		const char *p = values[v];
		while (*p) {
			size_t len = strcspn(p, ",");
			const char *e = p + len;
			const char *s = p;
			const char *semi = memchr(s, ';', len);
			const char *end = semi ? semi : e;
			while (s < end && (*s == ' ' || *s == '\t'))
				s++;
			while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
				end--;
			char *t = drp_strndup(s, (size_t)(end - s));
			bool ok = t[0] != '\0' && strchr(t, '/') != NULL;
			for (char *c = t; *c && ok; c++) {
				if (*c >= 'A' && *c <= 'Z')
					*c = (char)(*c - 'A' + 'a');
				ok = type_char_ok(*c);
			}
			if (ok && n == MAX_TYPES) {
				/* A key of the first MAX_TYPES would depend
				 * on the order: no key at all. */
				free(t);
				rc = -E2BIG;
				goto out;
			}
			if (ok)
				types[n++] = t;
			else
				free(t);
			p = *e ? e + 1 : e;
		}
	}
	qsort(types, n, sizeof(types[0]), cmp_str);

	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && strcmp(types[i], types[i - 1]) == 0)
			continue;
		size_t tl = strlen(types[i]);
		if (len + (len ? 1 : 0) + tl + 1 > buflen) {
			rc = -ENAMETOOLONG;
			break;
		}
		if (len)
			buf[len++] = ',';
		memcpy(buf + len, types[i], tl);
		len += tl;
	}
out:
	for (size_t i = 0; i < n; i++)
		free(types[i]);
	if (rc < 0)
		return rc;
	if (len == 0) {
		if (buflen < 2)
			return -ENAMETOOLONG;
		buf[len++] = '-';
	}
	buf[len] = '\0';
	return (int)len;
}

static bool field_ok(const char *f)
{
	if (f == NULL || *f == '\0')
		return false;
	for (; *f; f++)
		if ((unsigned char)*f <= ' ' || *f == 0x7f)
			return false;
	return true;
}

/* Join prefix and fields with single spaces; length or -errno. */
static int join_key(char *buf, size_t buflen, const char *prefix,
		    const char *const *fields, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!field_ok(fields[i]))
			return -EINVAL;
	/* Measured, then copied (no printf: a tag key is built on every
	 * manifest request by tag). */
	size_t fl[8], len = strlen(prefix);
	if (n > DRP_ARRAY_SIZE(fl))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		fl[i] = strlen(fields[i]);
		len += 1 + fl[i];
	}
	if (len >= buflen || len > DRP_CACHE_KEY_MAX) {
		if (buflen > 0)
			buf[0] = '\0';
		return -ENAMETOOLONG;
	}
	size_t at = strlen(prefix);
	memcpy(buf, prefix, at);
	for (size_t i = 0; i < n; i++) {
		buf[at++] = ' ';
		memcpy(buf + at, fields[i], fl[i]);
		at += fl[i];
	}
	buf[at] = '\0';
	return (int)len;
}

int drp_cache_tag_key(char *buf, size_t buflen, const char *host,
		      const char *repo, const char *tag, const char *accept_key)
{
	const char *f[] = {host, repo, tag, accept_key};
	return join_key(buf, buflen, "tag", f, DRP_ARRAY_SIZE(f));
}

/* Tag record value: "drp-tag 1\n<digest>\n<media type>\n<size>\n<time>\n".
 * Text, so that a record can be inspected with cat. */
#define TAG_MAGIC "drp-tag 1\n"

/* A media type goes into a Content-Type header: at most
 * DRP_CACHE_MEDIA_TYPE_MAX bytes, no control character (CR, LF, NUL...).
 * What put refuses, get refuses too: a damaged record is a miss. */
static bool media_type_ok(const char *s, size_t len)
{
	if (len > DRP_CACHE_MEDIA_TYPE_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < ' ' || s[i] == 0x7f)
			return false;
	return true;
}

int drp_cache_tag_put(const drp_cache_api_t *api, drp_cache_t *db,
		      drp_cache_stats_t *stats, const char *key,
		      const drp_cache_tag_t *tag)
{
	char val[512];
	if (!key_digest(tag->digest) ||
	    !media_type_ok(tag->media_type,
			   strnlen(tag->media_type, sizeof(tag->media_type))))
		return -EINVAL;
	int n = snprintf(val, sizeof(val),
			 TAG_MAGIC "%s\n%s\n%" PRIu64 "\n%" PRId64 "\n",
			 tag->digest, tag->media_type, tag->size,
			 tag->fetched_at);
	if (n < 0 || (size_t)n >= sizeof(val))
		return -EINVAL;
	return api->meta_put(db, stats, key, strlen(key), val, (size_t)n);
}

/* Next '\n'-terminated line of [*p, end) copied to out (cap bytes).
 * false if there is none or it does not fit. */
static bool take_line(const char **p, const char *end, char *out, size_t cap)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	if (nl == NULL || (size_t)(nl - *p) >= cap)
		return false;
	memcpy(out, *p, (size_t)(nl - *p));
	out[nl - *p] = '\0';
	*p = nl + 1;
	return true;
}

static bool parse_i64(const char *s, bool allow_neg, int64_t *out)
{
	char *end;
	if (*s == '\0' || (!allow_neg && *s == '-'))
		return false;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

int drp_cache_tag_get(const drp_cache_api_t *api, drp_cache_t *db,
		      drp_cache_stats_t *stats, const char *key,
		      drp_cache_tag_t *out)
{
	char val[512], num[32];
	size_t len = sizeof(val);
	int rc = api->meta_get(db, stats, key, strlen(key), val, &len);
	if (rc == -ERANGE)
		return -EBADMSG;
	if (rc < 0)
		return rc;

	const char *p = val, *end = val + len;
	int64_t size, t;
	memset(out, 0, sizeof(*out));
	if (len < sizeof(TAG_MAGIC) - 1 ||
	    memcmp(val, TAG_MAGIC, sizeof(TAG_MAGIC) - 1) != 0)
		return -EBADMSG;
	p += sizeof(TAG_MAGIC) - 1;
	if (!take_line(&p, end, out->digest, sizeof(out->digest)) ||
	    !key_digest(out->digest) ||
	    !take_line(&p, end, out->media_type, sizeof(out->media_type)) ||
	    !media_type_ok(out->media_type, strlen(out->media_type)) ||
	    !take_line(&p, end, num, sizeof(num)) ||
	    !parse_i64(num, false, &size) ||
	    !take_line(&p, end, num, sizeof(num)) ||
	    !parse_i64(num, true, &t) || p != end) {
		memset(out, 0, sizeof(*out));
		return -EBADMSG;
	}
	out->size = (uint64_t)size;
	out->fetched_at = t;
	return 0;
}

int drp_cache_tag_del(const drp_cache_api_t *api, drp_cache_t *db,
		      drp_cache_stats_t *stats, const char *key)
{
	return api->meta_del(db, stats, key, strlen(key));
}

int drp_cache_mtype_put(const drp_cache_api_t *api, drp_cache_t *db,
			drp_cache_stats_t *stats, const char *digest,
			const char *media_type)
{
	char key[DRP_CACHE_DIGEST_SIZE + 8];
	size_t len = strlen(media_type);
	if (!key_digest(digest) || len == 0 || !media_type_ok(media_type, len))
		return -EINVAL;
	snprintf(key, sizeof(key), "mt %s", digest);
	return api->meta_put(db, stats, key, strlen(key), media_type,
			     strlen(media_type));
}

int drp_cache_mtype_get(const drp_cache_api_t *api, drp_cache_t *db,
			drp_cache_stats_t *stats, const char *digest, char *out,
			size_t outlen)
{
	char key[DRP_CACHE_DIGEST_SIZE + 8];
	if (!key_digest(digest) || outlen <= DRP_CACHE_MEDIA_TYPE_MAX)
		return -EINVAL;
	snprintf(key, sizeof(key), "mt %s", digest);
	size_t len = outlen - 1;
	int rc = api->meta_get(db, stats, key, strlen(key), out, &len);
	if (rc == -ERANGE)
		rc = -EBADMSG;
	if (rc == 0 && (len == 0 || memchr(out, '\0', len) != NULL ||
			!media_type_ok(out, len)))
		rc = -EBADMSG;
	if (rc < 0) {
		out[0] = '\0';
		return rc;
	}
	out[len] = '\0';
	return 0;
}

/* "neg <key>" into buf; length or -ENAMETOOLONG. */
static int neg_key(char *buf, size_t buflen, const char *key)
{
	int n = snprintf(buf, buflen, "neg %s", key);
	if (n < 0 || (size_t)n >= buflen || n > DRP_CACHE_KEY_MAX)
		return -ENAMETOOLONG;
	return n;
}

int drp_cache_neg_put(const drp_cache_api_t *api, drp_cache_t *db,
		      drp_cache_stats_t *stats, const char *key,
		      int64_t expires)
{
	char k[DRP_CACHE_KEY_MAX + 1], val[32];
	int kl = neg_key(k, sizeof(k), key);
	if (kl < 0)
		return kl;
	int vl = snprintf(val, sizeof(val), "%" PRId64, expires);
	return api->meta_put(db, stats, k, (size_t)kl, val, (size_t)vl);
}

int drp_cache_neg_get(const drp_cache_api_t *api, drp_cache_t *db,
		      drp_cache_stats_t *stats, const char *key, int64_t now,
		      int64_t *expires)
{
	char k[DRP_CACHE_KEY_MAX + 1], val[32];
	size_t len = sizeof(val) - 1;
	int64_t e = 0;
	int kl = neg_key(k, sizeof(k), key);
	if (kl < 0)
		return kl;
	int rc = api->meta_get(db, stats, k, (size_t)kl, val, &len);
	if (rc == -ERANGE)
		rc = -EBADMSG;
	if (rc < 0 && rc != -EBADMSG)
		return rc;
	if (rc == 0) {
		val[len] = '\0';
		if (!parse_i64(val, true, &e))
			rc = -EBADMSG;
	}
	if (rc == 0 && now < e) {
		if (expires)
			*expires = e;
		return 0;
	}
	/* Expired or unreadable: drop it so it is not read again. A racing
	 * fresh put may be lost; that costs one upstream request. */
	api->meta_del(db, stats, k, (size_t)kl);
	return -ENOENT;
}

int drp_cache_neg_del(const drp_cache_api_t *api, drp_cache_t *db,
		      drp_cache_stats_t *stats, const char *key)
{
	char k[DRP_CACHE_KEY_MAX + 1];
	int kl = neg_key(k, sizeof(k), key);
	if (kl < 0)
		return kl;
	return api->meta_del(db, stats, k, (size_t)kl);
}

static int seen_key(char *buf, size_t buflen, const char *digest,
		    const char *host, const char *repo)
{
	if (!key_digest(digest))
		return -EINVAL;
	const char *f[] = {digest, host, repo};
	return join_key(buf, buflen, "seen", f, DRP_ARRAY_SIZE(f));
}

int drp_cache_seen_put(const drp_cache_api_t *api, drp_cache_t *db,
		       drp_cache_stats_t *stats, const char *digest,
		       const char *host, const char *repo)
{
	char k[DRP_CACHE_KEY_MAX + 1];
	int kl = seen_key(k, sizeof(k), digest, host, repo);
	if (kl < 0)
		return kl;
	return api->meta_put(db, stats, k, (size_t)kl, "", 0);
}

int drp_cache_seen_get(const drp_cache_api_t *api, drp_cache_t *db,
		       drp_cache_stats_t *stats, const char *digest,
		       const char *host, const char *repo)
{
	char k[DRP_CACHE_KEY_MAX + 1];
	size_t len = 0;
	int kl = seen_key(k, sizeof(k), digest, host, repo);
	if (kl < 0)
		return kl;
	int rc = api->meta_get(db, stats, k, (size_t)kl, NULL, &len);
	/* Any stored value (even one too long for no buffer) means seen. */
	return rc == -ERANGE ? 0 : rc;
}

int drp_cache_adopt(const drp_cache_api_t *api, drp_cache_t *db,
		    drp_cache_stats_t *stats, const char *digest, int fd,
		    uint64_t len)
{
	if (DRP_CACHE_HAS_OP(api, adopt))
		return api->adopt(db, stats, digest, fd, len);
	drp_cache_writer_t *w;
	int rc = api->write_begin(db, stats, digest, len, &w);
	if (rc == -EEXIST) {
		DRP_CACHE_STAT_ADD(stats, commit_dups, 1);
		return 0;
	}
	if (rc < 0)
		return rc;
	char *buf = drp_malloc(256 * 1024);
	uint64_t off = 0;
	while (off < len && rc == 0) {
		size_t want = len - off > 256 * 1024 ? 256 * 1024
						     : (size_t)(len - off);
		ssize_t n = pread(fd, buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			rc = n < 0 ? -errno : -EIO;
		else
			rc = api->write(db, stats, w, buf, (size_t)n);
		off += n > 0 ? (uint64_t)n : 0;
	}
	free(buf);
	if (rc < 0) {
		api->abort(db, stats, w);
		return rc;
	}
	return api->commit(db, stats, w);
}
