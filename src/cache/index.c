/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/index.h"
#include "util/mem.h"

#define INITIAL_BUCKETS 1024

int drp_cache_index_init(drp_cache_index_t *idx, const drp_cache_conf_t *conf,
			 drp_cache_free_cb free_obj, void *free_arg,
			 char *errbuf, size_t errlen)
{
	unsigned high = conf->high_pct ? conf->high_pct : 95;
	unsigned low = conf->low_pct ? conf->low_pct : 90;

	memset(idx, 0, sizeof(*idx));
	if (conf->max_size == 0) {
		snprintf(errbuf, errlen, "max_size must be greater than 0");
		return -EINVAL;
	}
	if (high > 100 || low >= high) {
		snprintf(errbuf, errlen,
			 "watermarks must satisfy 0 < low (%u) < high (%u) "
			 "<= 100",
			 low, high);
		return -EINVAL;
	}
	pthread_mutex_init(&idx->lock, NULL);
	idx->_nbuckets = INITIAL_BUCKETS;
	idx->_buckets = drp_calloc(idx->_nbuckets, sizeof(*idx->_buckets));
	idx->_lru._next = idx->_lru._prev = &idx->_lru;
	idx->_max = conf->max_size;
	/* Divide first: max_size may be close to UINT64_MAX. */
	idx->_high =
		conf->max_size / 100 * high + conf->max_size % 100 * high / 100;
	idx->_low =
		conf->max_size / 100 * low + conf->max_size % 100 * low / 100;
	idx->_free_obj = free_obj;
	idx->_free_arg = free_arg;
	return 0;
}

static void lru_unlink(drp_cache_obj_t *o)
{
	o->_prev->_next = o->_next;
	o->_next->_prev = o->_prev;
	o->_prev = o->_next = NULL;
}

static void lru_append(drp_cache_index_t *idx, drp_cache_obj_t *o)
{
	o->_prev = idx->_lru._prev;
	o->_next = &idx->_lru;
	idx->_lru._prev->_next = o;
	idx->_lru._prev = o;
}

void drp_cache_index_destroy(drp_cache_index_t *idx)
{
	drp_cache_obj_t *o = idx->_lru._next;
	while (o != &idx->_lru) {
		drp_cache_obj_t *next = o->_next;
		if (idx->_free_obj)
			idx->_free_obj(o, idx->_free_arg);
		free(o);
		o = next;
	}
	DRP_FREE(idx->_buckets);
	pthread_mutex_destroy(&idx->lock);
}

drp_cache_obj_t *drp_cache_obj_new(const uint8_t digest[DRP_DIGEST_LEN],
				   uint64_t size, int64_t last_used)
{
	drp_cache_obj_t *o = DRP_NEW(drp_cache_obj_t);
	memcpy(o->digest, digest, DRP_DIGEST_LEN);
	o->size = size;
	o->last_used = last_used;
	return o;
}

/* The digest is already uniformly distributed: its first bytes are the
 * hash. */
static size_t bucket_of(const drp_cache_index_t *idx, const uint8_t *d)
{
	uint64_t h;
	memcpy(&h, d, sizeof(h));
	return (size_t)(h & (idx->_nbuckets - 1));
}

drp_cache_obj_t *drp_cache_index_find(drp_cache_index_t *idx,
				      const uint8_t digest[DRP_DIGEST_LEN])
{
	drp_cache_obj_t *o = idx->_buckets[bucket_of(idx, digest)];
	while (o && memcmp(o->digest, digest, DRP_DIGEST_LEN) != 0)
		o = o->_hnext;
	return o;
}

static void grow(drp_cache_index_t *idx)
{
	size_t old_n = idx->_nbuckets;
	drp_cache_obj_t **old = idx->_buckets;

	idx->_nbuckets = old_n * 2;
	idx->_buckets = drp_calloc(idx->_nbuckets, sizeof(*idx->_buckets));
	for (size_t i = 0; i < old_n; i++) {
		drp_cache_obj_t *o = old[i];
		while (o) {
			drp_cache_obj_t *next = o->_hnext;
			size_t b = bucket_of(idx, o->digest);
			o->_hnext = idx->_buckets[b];
			idx->_buckets[b] = o;
			o = next;
		}
	}
	free(old);
}

static void hash_insert(drp_cache_index_t *idx, drp_cache_obj_t *o)
{
	if (idx->_objects >= idx->_nbuckets)
		grow(idx);
	size_t b = bucket_of(idx, o->digest);
	o->_hnext = idx->_buckets[b];
	idx->_buckets[b] = o;
	o->_refs++;
	o->_indexed = true;
	idx->_objects++;
	idx->_bytes += o->size;
}

void drp_cache_index_insert(drp_cache_index_t *idx, drp_cache_obj_t *obj)
{
	hash_insert(idx, obj);
	lru_append(idx, obj);
}

static void unref(drp_cache_index_t *idx, drp_cache_obj_t *o)
{
	if (--o->_refs > 0)
		return;
	if (idx->_free_obj)
		idx->_free_obj(o, idx->_free_arg);
	free(o);
}

void drp_cache_index_drop(drp_cache_index_t *idx, drp_cache_obj_t *obj)
{
	drp_cache_obj_t **pp = &idx->_buckets[bucket_of(idx, obj->digest)];
	while (*pp != obj)
		pp = &(*pp)->_hnext;
	*pp = obj->_hnext;
	obj->_hnext = NULL;
	lru_unlink(obj);
	obj->_indexed = false;
	idx->_objects--;
	idx->_bytes -= obj->size;
	unref(idx, obj);
}

int drp_cache_index_lookup(drp_cache_index_t *idx, drp_cache_stats_t *stats,
			   const char *digest, int64_t now,
			   drp_cache_info_t *info)
{
	uint8_t d[DRP_DIGEST_LEN];
	if (drp_digest_parse(digest, d) < 0)
		return -EINVAL;
	pthread_mutex_lock(&idx->lock);
	drp_cache_obj_t *o = drp_cache_index_find(idx, d);
	if (o) {
		drp_cache_index_touch(idx, o, now);
		if (info) {
			info->size = o->size;
			info->last_used = o->last_used;
		}
	}
	pthread_mutex_unlock(&idx->lock);
	DRP_CACHE_STAT_ADD(stats, hits, o ? 1 : 0);
	DRP_CACHE_STAT_ADD(stats, misses, o ? 0 : 1);
	return o ? 0 : -ENOENT;
}

void drp_cache_index_touch(drp_cache_index_t *idx, drp_cache_obj_t *obj,
			   int64_t now)
{
	obj->last_used = now;
	lru_unlink(obj);
	lru_append(idx, obj);
}

void drp_cache_index_pin(drp_cache_index_t *idx, drp_cache_obj_t *obj)
{
	obj->_refs++;
	obj->_readers++;
	idx->_readers++;
}

void drp_cache_index_unpin(drp_cache_index_t *idx, drp_cache_obj_t *obj)
{
	obj->_readers--;
	idx->_readers--;
	unref(idx, obj);
}

bool drp_cache_obj_indexed(const drp_cache_obj_t *obj)
{
	return obj->_indexed;
}

/*
 * Evict from the cold end until usage + extra <= target. Pinned objects
 * are skipped, not waited for: a long download must not stall writers.
 */
static void evict_to(drp_cache_index_t *idx, uint64_t extra, uint64_t target,
		     drp_cache_evict_cb evict_cb, void *evict_arg,
		     drp_cache_stats_t *stats)
{
	drp_cache_obj_t *o = idx->_lru._next;
	while (o != &idx->_lru &&
	       idx->_bytes + idx->_reserved + extra > target) {
		drp_cache_obj_t *next = o->_next;
		if (o->_readers == 0) {
			uint64_t size = o->size;
			/* Keep the index ref across the callback. */
			o->_refs++;
			drp_cache_index_drop(idx, o);
			if (evict_cb)
				evict_cb(o, evict_arg);
			unref(idx, o);
			DRP_CACHE_STAT_ADD(stats, evictions, 1);
			DRP_CACHE_STAT_ADD(stats, evicted_bytes, size);
		}
		o = next;
	}
}

int drp_cache_index_reserve(drp_cache_index_t *idx, uint64_t *reserved,
			    uint64_t need, drp_cache_evict_cb evict_cb,
			    void *evict_arg, drp_cache_stats_t *stats)
{
	if (need <= *reserved)
		return 0;
	if (need > idx->_max)
		return -EFBIG;
	uint64_t extra = need - *reserved;
	if (idx->_bytes + idx->_reserved + extra > idx->_high)
		evict_to(idx, extra, idx->_low, evict_cb, evict_arg, stats);
	if (idx->_bytes + idx->_reserved + extra > idx->_max)
		return -ENOSPC;
	idx->_reserved += extra;
	*reserved = need;
	return 0;
}

void drp_cache_index_release(drp_cache_index_t *idx, uint64_t *reserved)
{
	idx->_reserved -= *reserved;
	*reserved = 0;
}

void drp_cache_index_writers(drp_cache_index_t *idx, int delta)
{
	idx->_writers += (uint64_t)(int64_t)delta;
}

void drp_cache_index_trim(drp_cache_index_t *idx, drp_cache_evict_cb evict_cb,
			  void *evict_arg, drp_cache_stats_t *stats)
{
	if (idx->_bytes + idx->_reserved > idx->_high)
		evict_to(idx, 0, idx->_low, evict_cb, evict_arg, stats);
}

static int cmp_last_used(const void *a, const void *b)
{
	const drp_cache_obj_t *x = *(drp_cache_obj_t *const *)a;
	const drp_cache_obj_t *y = *(drp_cache_obj_t *const *)b;
	if (x->last_used != y->last_used)
		return x->last_used < y->last_used ? -1 : 1;
	/* Ties: any fixed order, so that a reload is deterministic. */
	return memcmp(x->digest, y->digest, DRP_DIGEST_LEN);
}

void drp_cache_index_load(drp_cache_index_t *idx, drp_cache_obj_t **objs,
			  size_t n)
{
	if (n == 0)
		return; /* objs may be NULL */
	qsort(objs, n, sizeof(*objs), cmp_last_used);
	for (size_t i = 0; i < n; i++)
		drp_cache_index_insert(idx, objs[i]);
}

int drp_cache_index_snapshot(drp_cache_index_t *idx, drp_cache_snap_t **out,
			     size_t *n)
{
	*out = NULL;
	*n = 0;
	if (idx->_objects == 0)
		return 0;
	drp_cache_snap_t *s = malloc(idx->_objects * sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	size_t i = 0;
	for (drp_cache_obj_t *o = idx->_lru._next; o != &idx->_lru;
	     o = o->_next, i++) {
		memcpy(s[i].digest, o->digest, DRP_DIGEST_LEN);
		s[i].info.size = o->size;
		s[i].info.last_used = o->last_used;
	}
	*out = s;
	*n = i;
	return 0;
}

void drp_cache_index_gauges(drp_cache_index_t *idx, drp_cache_stats_t *stats)
{
	stats->objects = idx->_objects;
	stats->bytes = idx->_bytes;
	stats->reserved = idx->_reserved;
	stats->max_size = idx->_max;
	stats->readers = idx->_readers;
	stats->writers = idx->_writers;
}

int drp_cache_index_iterate(drp_cache_index_t *idx, drp_cache_iter_cb cb,
			    void *arg)
{
	drp_cache_snap_t *snap;
	size_t n;
	char dg[DRP_DIGEST_STRSIZE];

	pthread_mutex_lock(&idx->lock);
	int rc = drp_cache_index_snapshot(idx, &snap, &n);
	pthread_mutex_unlock(&idx->lock);
	for (size_t i = 0; i < n && rc == 0; i++) {
		drp_digest_format(snap[i].digest, dg);
		rc = cb(dg, &snap[i].info, arg);
	}
	free(snap);
	return rc;
}

void drp_cache_index_stats(drp_cache_index_t *idx, drp_cache_stats_t *stats)
{
	pthread_mutex_lock(&idx->lock);
	drp_cache_index_gauges(idx, stats);
	pthread_mutex_unlock(&idx->lock);
}
