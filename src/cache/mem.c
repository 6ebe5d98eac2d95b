/* SPDX-License-Identifier: MIT */
/*
 * "memory" backend: objects in malloc'd buffers, same budget, LRU and pin
 * semantics as fs (shared index.c). Readers hold a reference, so a
 * removed or evicted object's bytes stay valid until they close.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/cache.h"
#include "cache/digest.h"
#include "cache/index.h"
#include "util/mem.h"

struct meta_rec {
	struct meta_rec *next;
	uint64_t hash;
	size_t klen, vlen;
	uint8_t *val;
	uint8_t key[];
};

struct drp_cache {
	drp_cache_index_t idx;
	pthread_mutex_t meta_lock;
	struct meta_rec **mb;
	size_t mnb; /* power of two */
	size_t mcount;
};

struct drp_cache_reader {
	drp_cache_obj_t *obj;
	uint64_t pos;
};

struct drp_cache_writer {
	uint8_t digest[DRP_DIGEST_LEN];
	drp_digest_t hash;
	uint8_t *buf;
	uint64_t cap;
	uint64_t written;
	uint64_t reserved;
	int err; /* 0 = storing, else why not (uncommittable) */
};

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

static void free_obj(drp_cache_obj_t *obj, void *arg)
{
	free(obj->data);
}

static int mem_open(drp_cache_t **out, const drp_cache_conf_t *conf,
		    drp_cache_stats_t *stats, char *errbuf, size_t errlen)
{
	drp_cache_t *db = DRP_NEW(drp_cache_t);
	int rc = drp_cache_index_init(&db->idx, conf, free_obj, NULL, errbuf,
				      errlen);
	if (rc < 0) {
		free(db);
		return rc;
	}
	if (conf->params && *conf->params) {
		snprintf(errbuf, errlen,
			 "memory backend takes no params ('%s')", conf->params);
		drp_cache_index_destroy(&db->idx);
		free(db);
		return -EINVAL;
	}
	pthread_mutex_init(&db->meta_lock, NULL);
	db->mnb = 64;
	db->mb = drp_calloc(db->mnb, sizeof(*db->mb));
	*out = db;
	return 0;
}

static void mem_close(drp_cache_t *db, drp_cache_stats_t *stats)
{
	for (size_t i = 0; i < db->mnb; i++) {
		struct meta_rec *r = db->mb[i];
		while (r) {
			struct meta_rec *next = r->next;
			free(r->val);
			free(r);
			r = next;
		}
	}
	free(db->mb);
	pthread_mutex_destroy(&db->meta_lock);
	drp_cache_index_destroy(&db->idx);
	free(db);
}

static int mem_lookup(drp_cache_t *db, drp_cache_stats_t *stats,
		      const char *digest, drp_cache_info_t *info)
{
	return drp_cache_index_lookup(&db->idx, stats, digest, now_s(), info);
}

/* read_open, and peek_open when !use (the last use is left alone). */
static int open_reader(drp_cache_t *db, const char *digest, uint64_t offset,
		       drp_cache_reader_t **reader, drp_cache_info_t *info,
		       bool use)
{
	uint8_t d[DRP_DIGEST_LEN];
	int rc = 0;
	if (drp_digest_parse(digest, d) < 0)
		return -EINVAL;
	pthread_mutex_lock(&db->idx.lock);
	drp_cache_obj_t *o = drp_cache_index_find(&db->idx, d);
	if (o == NULL) {
		rc = -ENOENT;
	} else if (offset > o->size) {
		rc = -EINVAL;
	} else {
		drp_cache_index_pin(&db->idx, o);
		if (use)
			drp_cache_index_touch(&db->idx, o, now_s());
		if (info) {
			info->size = o->size;
			info->last_used = o->last_used;
		}
	}
	pthread_mutex_unlock(&db->idx.lock);
	if (rc < 0)
		return rc;
	drp_cache_reader_t *r = DRP_NEW(drp_cache_reader_t);
	r->obj = o;
	r->pos = offset;
	*reader = r;
	return 0;
}

static int mem_read_open(drp_cache_t *db, drp_cache_stats_t *stats,
			 const char *digest, uint64_t offset,
			 drp_cache_reader_t **reader, drp_cache_info_t *info)
{
	return open_reader(db, digest, offset, reader, info, true);
}

static int mem_peek_open(drp_cache_t *db, drp_cache_stats_t *stats,
			 const char *digest, uint64_t offset,
			 drp_cache_reader_t **reader, drp_cache_info_t *info)
{
	return open_reader(db, digest, offset, reader, info, false);
}

static ssize_t mem_read(drp_cache_t *db, drp_cache_stats_t *stats,
			drp_cache_reader_t *r, void *buf, size_t len)
{
	/* The bytes are immutable once committed, and the pin keeps them
	 * allocated: no lock needed. */
	uint64_t left = r->obj->size - r->pos;
	if (len > left)
		len = (size_t)left;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if (len == 0)
		return 0;
	memcpy(buf, (const uint8_t *)r->obj->data + r->pos, len);
	r->pos += len;
	DRP_CACHE_STAT_ADD(stats, read_bytes, len);
	return (ssize_t)len;
}

static void mem_read_close(drp_cache_t *db, drp_cache_stats_t *stats,
			   drp_cache_reader_t *r)
{
	pthread_mutex_lock(&db->idx.lock);
	drp_cache_index_unpin(&db->idx, r->obj);
	pthread_mutex_unlock(&db->idx.lock);
	free(r);
}

/* Stop storing; keep hashing so commit can still judge the bytes. */
static void uncommittable(drp_cache_t *db, drp_cache_stats_t *stats,
			  drp_cache_writer_t *w, int err)
{
	DRP_FREE(w->buf);
	w->cap = 0;
	pthread_mutex_lock(&db->idx.lock);
	drp_cache_index_release(&db->idx, &w->reserved);
	pthread_mutex_unlock(&db->idx.lock);
	w->err = err;
	if (err == -EFBIG)
		DRP_CACHE_STAT_ADD(stats, too_big, 1);
	else if (err == -ENOSPC)
		DRP_CACHE_STAT_ADD(stats, no_space, 1);
	else
		DRP_CACHE_STAT_ADD(stats, write_errors, 1);
}

static int mem_write_begin(drp_cache_t *db, drp_cache_stats_t *stats,
			   const char *digest, uint64_t expected_len,
			   drp_cache_writer_t **writer)
{
	uint8_t d[DRP_DIGEST_LEN];
	if (drp_digest_parse(digest, d) < 0)
		return -EINVAL;
	drp_cache_writer_t *w = DRP_NEW(drp_cache_writer_t);
	memcpy(w->digest, d, DRP_DIGEST_LEN);
	int rc = drp_digest_init(&w->hash);
	if (rc < 0) {
		free(w);
		return rc;
	}

	pthread_mutex_lock(&db->idx.lock);
	if (drp_cache_index_find(&db->idx, d)) {
		pthread_mutex_unlock(&db->idx.lock);
		drp_digest_abort(&w->hash);
		free(w);
		return -EEXIST;
	}
	drp_cache_index_writers(&db->idx, 1);
	if (expected_len != DRP_CACHE_LEN_UNKNOWN)
		rc = drp_cache_index_reserve(&db->idx, &w->reserved,
					     expected_len, NULL, NULL, stats);
	pthread_mutex_unlock(&db->idx.lock);

	if (rc < 0) {
		uncommittable(db, stats, w, rc);
	} else if (expected_len != DRP_CACHE_LEN_UNKNOWN && expected_len > 0) {
		w->buf = malloc(expected_len);
		if (w->buf == NULL)
			uncommittable(db, stats, w, -ENOMEM);
		else
			w->cap = expected_len;
	}
	*writer = w;
	return 0;
}

static int store(drp_cache_t *db, drp_cache_stats_t *stats,
		 drp_cache_writer_t *w, const void *buf, size_t len)
{
	uint64_t need = w->written + len;
	int rc = 0;
	if (need < w->written)
		return -EFBIG; /* overflow */
	if (need > w->reserved) {
		pthread_mutex_lock(&db->idx.lock);
		rc = drp_cache_index_reserve(&db->idx, &w->reserved, need, NULL,
					     NULL, stats);
		pthread_mutex_unlock(&db->idx.lock);
		if (rc < 0)
			return rc;
	}
	if (need > w->cap) {
		/* Doubling: amortized O(1) appends for unknown lengths; the
		 * slack is trimmed at commit. */
		uint64_t cap = w->cap ? w->cap * 2 : 65536;
		if (cap < need)
			cap = need;
		void *nb =
			cap <= SIZE_MAX ? realloc(w->buf, (size_t)cap) : NULL;
		if (nb == NULL)
			return -ENOMEM;
		w->buf = nb;
		w->cap = cap;
	}
	memcpy(w->buf + w->written, buf, len);
	return 0;
}

static int mem_write(drp_cache_t *db, drp_cache_stats_t *stats,
		     drp_cache_writer_t *w, const void *buf, size_t len)
{
	if (drp_digest_update(&w->hash, buf, len) < 0)
		return -EIO;
	if (w->err == 0 && len > 0) {
		int rc = store(db, stats, w, buf, len);
		if (rc < 0)
			uncommittable(db, stats, w, rc);
	}
	w->written += len;
	DRP_CACHE_STAT_ADD(stats, write_bytes, len);
	return 0;
}

static void writer_free(drp_cache_t *db, drp_cache_writer_t *w)
{
	drp_digest_abort(&w->hash);
	pthread_mutex_lock(&db->idx.lock);
	drp_cache_index_release(&db->idx, &w->reserved);
	drp_cache_index_writers(&db->idx, -1);
	pthread_mutex_unlock(&db->idx.lock);
	free(w->buf);
	free(w);
}

static int mem_commit(drp_cache_t *db, drp_cache_stats_t *stats,
		      drp_cache_writer_t *w)
{
	int rc = drp_digest_final_check(&w->hash, w->digest);
	if (rc < 0) {
		DRP_CACHE_STAT_ADD(stats, digest_mismatches, 1);
		writer_free(db, w);
		return rc;
	}
	if (w->err < 0) {
		rc = w->err;
		writer_free(db, w);
		return rc;
	}

	/* Trim the doubling slack before publishing (outside the lock). */
	if (w->cap > w->written && w->written > 0) {
		void *shrunk = realloc(w->buf, (size_t)w->written);
		if (shrunk)
			w->buf = shrunk;
	}
	pthread_mutex_lock(&db->idx.lock);
	drp_cache_index_writers(&db->idx, -1);
	drp_cache_index_release(&db->idx, &w->reserved);
	if (drp_cache_index_find(&db->idx, w->digest)) {
		pthread_mutex_unlock(&db->idx.lock);
		DRP_CACHE_STAT_ADD(stats, commit_dups, 1);
	} else {
		drp_cache_obj_t *o =
			drp_cache_obj_new(w->digest, w->written, now_s());
		o->data = w->buf;
		w->buf = NULL;
		drp_cache_index_insert(&db->idx, o);
		pthread_mutex_unlock(&db->idx.lock);
		DRP_CACHE_STAT_ADD(stats, commits, 1);
	}
	free(w->buf);
	free(w);
	return 0;
}

static void mem_abort(drp_cache_t *db, drp_cache_stats_t *stats,
		      drp_cache_writer_t *w)
{
	DRP_CACHE_STAT_ADD(stats, aborts, 1);
	writer_free(db, w);
}

static int mem_remove(drp_cache_t *db, drp_cache_stats_t *stats,
		      const char *digest)
{
	uint8_t d[DRP_DIGEST_LEN];
	if (drp_digest_parse(digest, d) < 0)
		return -EINVAL;
	pthread_mutex_lock(&db->idx.lock);
	drp_cache_obj_t *o = drp_cache_index_find(&db->idx, d);
	if (o)
		drp_cache_index_drop(&db->idx, o);
	pthread_mutex_unlock(&db->idx.lock);
	if (o == NULL)
		return -ENOENT;
	DRP_CACHE_STAT_ADD(stats, removals, 1);
	return 0;
}

static int mem_iterate(drp_cache_t *db, drp_cache_stats_t *stats,
		       drp_cache_iter_cb cb, void *arg)
{
	return drp_cache_index_iterate(&db->idx, cb, arg);
}

static void mem_stats(drp_cache_t *db, drp_cache_stats_t *stats)
{
	drp_cache_index_stats(&db->idx, stats);
}

/* FNV-1a: keys are short and not attacker-chosen in bulk. */
static uint64_t key_hash(const void *key, size_t len)
{
	const uint8_t *p = key;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static bool meta_len_ok(size_t keylen, size_t vallen)
{
	return keylen > 0 && keylen <= DRP_CACHE_KEY_MAX &&
	       vallen <= DRP_CACHE_META_MAX;
}

/* [meta_lock] Pointer to the link that holds key's record (or NULL). */
static struct meta_rec **meta_find(drp_cache_t *db, const void *key,
				   size_t keylen, uint64_t h)
{
	struct meta_rec **pp = &db->mb[h & (db->mnb - 1)];
	while (*pp && !((*pp)->hash == h && (*pp)->klen == keylen &&
			memcmp((*pp)->key, key, keylen) == 0))
		pp = &(*pp)->next;
	return pp;
}

static void meta_grow(drp_cache_t *db)
{
	size_t nnb = db->mnb * 2;
	struct meta_rec **nb = drp_calloc(nnb, sizeof(*nb));
	for (size_t i = 0; i < db->mnb; i++) {
		struct meta_rec *r = db->mb[i];
		while (r) {
			struct meta_rec *next = r->next;
			r->next = nb[r->hash & (nnb - 1)];
			nb[r->hash & (nnb - 1)] = r;
			r = next;
		}
	}
	free(db->mb);
	db->mb = nb;
	db->mnb = nnb;
}

static int mem_meta_put(drp_cache_t *db, drp_cache_stats_t *stats,
			const void *key, size_t keylen, const void *val,
			size_t vallen)
{
	if (!meta_len_ok(keylen, vallen))
		return -EINVAL;
	uint8_t *copy = malloc(vallen ? vallen : 1);
	if (copy == NULL)
		return -ENOMEM;
	memcpy(copy, val, vallen);
	uint64_t h = key_hash(key, keylen);

	pthread_mutex_lock(&db->meta_lock);
	struct meta_rec **pp = meta_find(db, key, keylen, h);
	if (*pp) {
		free((*pp)->val);
	} else {
		struct meta_rec *r = drp_malloc(sizeof(*r) + keylen);
		r->next = NULL;
		r->hash = h;
		r->klen = keylen;
		memcpy(r->key, key, keylen);
		*pp = r;
		if (++db->mcount > db->mnb) {
			/* pp is stale after a rehash; r is linked already. */
			meta_grow(db);
			pp = meta_find(db, key, keylen, h);
		}
	}
	(*pp)->val = copy;
	(*pp)->vlen = vallen;
	pthread_mutex_unlock(&db->meta_lock);
	DRP_CACHE_STAT_ADD(stats, meta_puts, 1);
	return 0;
}

static int mem_meta_get(drp_cache_t *db, drp_cache_stats_t *stats,
			const void *key, size_t keylen, void *buf,
			size_t *vallen)
{
	if (!meta_len_ok(keylen, 0))
		return -EINVAL;
	uint64_t h = key_hash(key, keylen);
	int rc = 0;

	pthread_mutex_lock(&db->meta_lock);
	struct meta_rec *r = *meta_find(db, key, keylen, h);
	if (r == NULL) {
		rc = -ENOENT;
	} else if (r->vlen > *vallen) {
		rc = -ERANGE;
		*vallen = r->vlen;
	} else {
		if (r->vlen)
			memcpy(buf, r->val, r->vlen);
		*vallen = r->vlen;
	}
	pthread_mutex_unlock(&db->meta_lock);
	DRP_CACHE_STAT_ADD(stats, meta_hits, r ? 1 : 0);
	DRP_CACHE_STAT_ADD(stats, meta_misses, r ? 0 : 1);
	return rc;
}

static int mem_meta_del(drp_cache_t *db, drp_cache_stats_t *stats,
			const void *key, size_t keylen)
{
	if (!meta_len_ok(keylen, 0))
		return -EINVAL;
	uint64_t h = key_hash(key, keylen);

	pthread_mutex_lock(&db->meta_lock);
	struct meta_rec **pp = meta_find(db, key, keylen, h);
	struct meta_rec *r = *pp;
	if (r) {
		*pp = r->next;
		db->mcount--;
	}
	pthread_mutex_unlock(&db->meta_lock);
	if (r == NULL)
		return -ENOENT;
	free(r->val);
	free(r);
	DRP_CACHE_STAT_ADD(stats, meta_dels, 1);
	return 0;
}

/* Copies of the matching records, taken under the lock: the callback
 * runs without it and may delete what it is given. */
static int mem_meta_iterate(drp_cache_t *db, drp_cache_stats_t *stats,
			    const void *prefix, size_t prefixlen,
			    drp_cache_meta_cb cb, void *arg)
{
	struct meta_rec *copies = NULL;
	pthread_mutex_lock(&db->meta_lock);
	for (size_t i = 0; i < db->mnb; i++) {
		for (struct meta_rec *r = db->mb[i]; r; r = r->next) {
			if (r->klen < prefixlen ||
			    memcmp(r->key, prefix, prefixlen) != 0)
				continue;
			struct meta_rec *c = malloc(sizeof(*c) + r->klen);
			uint8_t *v = malloc(r->vlen ? r->vlen : 1);
			if (c == NULL || v == NULL) {
				free(c);
				free(v);
				pthread_mutex_unlock(&db->meta_lock);
				while (copies) {
					struct meta_rec *n = copies->next;
					free(copies->val);
					free(copies);
					copies = n;
				}
				return -ENOMEM;
			}
			c->klen = r->klen;
			c->vlen = r->vlen;
			memcpy(c->key, r->key, r->klen);
			if (r->vlen)
				memcpy(v, r->val, r->vlen);
			c->val = v;
			c->next = copies;
			copies = c;
		}
	}
	pthread_mutex_unlock(&db->meta_lock);
	int rc = 0;
	while (copies) {
		struct meta_rec *c = copies;
		copies = c->next;
		if (rc == 0)
			rc = cb(c->key, c->klen, c->val, c->vlen, arg);
		free(c->val);
		free(c);
	}
	return rc;
}

static const drp_cache_api_t mem_api = {
	.abi_major = DRP_CACHE_ABI_MAJOR,
	.abi_minor = DRP_CACHE_ABI_MINOR,
	.struct_size = sizeof(drp_cache_api_t),
	.name = "memory",
	.flags = DRP_CACHE_INDEX_IN_MEMORY,
	.open = mem_open,
	.close = mem_close,
	.lookup = mem_lookup,
	.read_open = mem_read_open,
	.read = mem_read,
	.read_close = mem_read_close,
	.write_begin = mem_write_begin,
	.write = mem_write,
	.commit = mem_commit,
	.abort = mem_abort,
	.remove = mem_remove,
	.iterate = mem_iterate,
	.stats = mem_stats,
	.meta_put = mem_meta_put,
	.meta_get = mem_meta_get,
	.meta_del = mem_meta_del,
	.meta_iterate = mem_meta_iterate,
	.peek_open = mem_peek_open,
};

const drp_cache_api_t *drp_cache_mem(void)
{
	return &mem_api;
}
