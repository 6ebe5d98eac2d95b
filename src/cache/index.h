/* SPDX-License-Identifier: MIT */
/*
 * In-memory object index shared by the in-tree backends: digest -> object
 * hash table, LRU list, size budget with high/low watermarks, reader pins
 * and writer reservations.
 *
 * Locking: the index has one mutex (idx->lock). Every function marked
 * [locked] must be called with it held; the backend takes it around a
 * whole decision (e.g. "not indexed yet -> rename into place -> insert")
 * so that the index and the store never disagree.
 *
 * Lifetime of an object: refs counts the index's own reference (while the
 * object is indexed) plus one per open reader. An object leaves the index
 * by eviction or removal but lives until its last reader closes; then the
 * index's free_obj callback releases it. Eviction never picks an object
 * with readers; objects being written are not in the index at all (their
 * space is a reservation).
 *
 * Budget: usage = committed bytes + reserved bytes. A reservation that
 * would take usage above high evicts least-recently-used unpinned objects
 * until usage (with the reservation) is at most low, and fails with
 * -ENOSPC if usage would still exceed max_size.
 */
#ifndef DRP_CACHE_INDEX_H
#define DRP_CACHE_INDEX_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache/digest.h"
#include "drp/cache.h"

typedef struct drp_cache_obj {
	uint8_t digest[DRP_DIGEST_LEN];
	uint64_t size;
	int64_t last_used; /* unix seconds */
	int64_t stamp;	   /* backend's use (fs: time last written to disk) */
	void *data;	   /* backend's use (memory: the bytes) */
	void *maps;	   /* backend's use (fs: windows kept mapped) */
	/* private */
	struct drp_cache_obj *_hnext;
	struct drp_cache_obj *_prev, *_next; /* LRU list */
	unsigned _refs;
	unsigned _readers;
	bool _indexed;
} drp_cache_obj_t;

typedef struct drp_cache_index drp_cache_index_t;

/*
 * Called [locked] for each object evicted by a reservation, after it left
 * the index and before its index reference is dropped: the backend
 * removes it from its store (fs renames the file aside under the lock and
 * deletes it after unlocking). arg is the reserve call's evict_arg.
 */
typedef void (*drp_cache_evict_cb)(drp_cache_obj_t *obj, void *arg);
/* Called [locked] when an object's last reference goes. */
typedef void (*drp_cache_free_cb)(drp_cache_obj_t *obj, void *arg);

struct drp_cache_index {
	pthread_mutex_t lock;
	/* private */
	drp_cache_obj_t **_buckets;
	size_t _nbuckets;     /* power of two */
	drp_cache_obj_t _lru; /* sentinel: _next = least recently used */
	uint64_t _objects, _bytes, _reserved;
	uint64_t _max, _high, _low;
	uint64_t _readers, _writers;
	drp_cache_free_cb _free_obj;
	void *_free_arg;
};

/* One entry of a snapshot (iterate). */
typedef struct drp_cache_snap {
	uint8_t digest[DRP_DIGEST_LEN];
	drp_cache_info_t info;
} drp_cache_snap_t;

/*
 * Validate the budget part of conf (max_size > 0, 0 < low < high <= 100,
 * zeros = defaults 95/90) and set up an empty index. 0, or -EINVAL with a
 * message in errbuf.
 */
int drp_cache_index_init(drp_cache_index_t *idx, const drp_cache_conf_t *conf,
			 drp_cache_free_cb free_obj, void *free_arg,
			 char *errbuf, size_t errlen);
/* Free every indexed object (none may have readers) and the table. */
void drp_cache_index_destroy(drp_cache_index_t *idx);

/* A new object (refs 0, not indexed); abort on allocation failure. */
drp_cache_obj_t *drp_cache_obj_new(const uint8_t digest[DRP_DIGEST_LEN],
				   uint64_t size, int64_t last_used);

/* [locked] The indexed object with this digest, or NULL. */
drp_cache_obj_t *drp_cache_index_find(drp_cache_index_t *idx,
				      const uint8_t digest[DRP_DIGEST_LEN]);
/*
 * [unlocked: takes idx->lock] A backend's lookup operation (drp/cache.h):
 * find the object of a "sha256:<hex>" digest, mark it used at now, fill
 * info (size, last_used; info may be NULL) and count a hit or a miss in
 * stats. 0, -ENOENT (not indexed), or -EINVAL (not a digest the cache
 * keys on; counted as neither).
 */
int drp_cache_index_lookup(drp_cache_index_t *idx, drp_cache_stats_t *stats,
			   const char *digest, int64_t now,
			   drp_cache_info_t *info)
	__attribute__((nonnull(1, 2, 3)));
/* [locked] Index obj as most recently used; takes the index reference. */
void drp_cache_index_insert(drp_cache_index_t *idx, drp_cache_obj_t *obj);
/* [locked] Take obj out of the index and drop the index reference. */
void drp_cache_index_drop(drp_cache_index_t *idx, drp_cache_obj_t *obj);
/* [locked] Mark obj used now (most recently used). */
void drp_cache_index_touch(drp_cache_index_t *idx, drp_cache_obj_t *obj,
			   int64_t now);
/* [locked] Pin/unpin obj for a reader (unpin may free it). */
void drp_cache_index_pin(drp_cache_index_t *idx, drp_cache_obj_t *obj);
void drp_cache_index_unpin(drp_cache_index_t *idx, drp_cache_obj_t *obj);
/* [locked] Whether obj is still indexed (not evicted or removed). */
bool drp_cache_obj_indexed(const drp_cache_obj_t *obj);

/*
 * [locked] Grow a writer's reservation *reserved to need bytes, evicting
 * if needed (evict_cb per victim). 0; -EFBIG if need > max_size; -ENOSPC
 * if the space cannot be found (the reservation is then unchanged).
 * Counts evictions, evicted_bytes in stats.
 */
int drp_cache_index_reserve(drp_cache_index_t *idx, uint64_t *reserved,
			    uint64_t need, drp_cache_evict_cb evict_cb,
			    void *evict_arg, drp_cache_stats_t *stats);
/* [locked] Give back a whole reservation and zero it. */
void drp_cache_index_release(drp_cache_index_t *idx, uint64_t *reserved);
/* [locked] Writers count for stats (+1 at begin, -1 at commit/abort). */
void drp_cache_index_writers(drp_cache_index_t *idx, int delta);
/*
 * [locked] Evict down to the low watermark if usage is above the high one
 * (after open, when the budget was lowered).
 */
void drp_cache_index_trim(drp_cache_index_t *idx, drp_cache_evict_cb evict_cb,
			  void *evict_arg, drp_cache_stats_t *stats);

/*
 * [unlocked, before the index is shared] Index n objects found at start-up
 * ordered by last_used (oldest first). Takes ownership of objs[i], not of
 * the array.
 */
void drp_cache_index_load(drp_cache_index_t *idx, drp_cache_obj_t **objs,
			  size_t n);

/* [locked] Copy all objects, least recently used first. 0 or -ENOMEM;
 * *out is malloc'd (free it), NULL when *n == 0. */
int drp_cache_index_snapshot(drp_cache_index_t *idx, drp_cache_snap_t **out,
			     size_t *n);
/* [locked] Write the gauges into stats. */
void drp_cache_index_gauges(drp_cache_index_t *idx, drp_cache_stats_t *stats);

/* [unlocked: takes the lock for the snapshot only] Call cb for every
 * object of a snapshot, least recently used first, until it returns
 * non-zero (returned); the backends' iterate. */
int drp_cache_index_iterate(drp_cache_index_t *idx, drp_cache_iter_cb cb,
			    void *arg);
/* [unlocked: takes the lock] drp_cache_index_gauges; the backends'
 * stats. */
void drp_cache_index_stats(drp_cache_index_t *idx, drp_cache_stats_t *stats);

/* Relaxed atomic add to a stats counter. */
#define DRP_CACHE_STAT_ADD(stats, field, n)                                    \
	__atomic_fetch_add(&(stats)->field, (uint64_t)(n), __ATOMIC_RELAXED)

#endif
