/* SPDX-License-Identifier: MIT */
/*
 * The administrator's view of a cache: what it holds by registry,
 * repository and tag (list), getting rid of an image or an object
 * (purge), re-hashing every object (verify), and removing what has not
 * been used for a while (sweep, [cache] max_age). Built only on the
 * backend interface (<drp/cache.h>), so it serves any backend: the
 * daemon runs these in its worker pool for the admin socket, the
 * command line runs them on a cache directory it opened itself.
 *
 * Where the facts come from (cache/cache.h has the record formats):
 *   objects       iterate (digest, size, last use)
 *   manifests     the objects with an "mt <digest>" record (their media
 *                 type); what they reference is read from the manifest
 *                 itself (config, layers, manifests, blobs)
 *   tags          "tag <host> <repo> <tag> <accept-key>" records
 *   repositories  "seen <digest> <host> <repo>" records: the objects
 *                 served for a repository, tagged or not
 * Records need meta_iterate (ABI 1.2); without it there are objects only.
 * Objects are read with peek_open where the backend has it, so that
 * none of this counts as a use of the objects.
 *
 * Errors: 0 or a negative errno. Thread: any; blocking (disk).
 */
#ifndef DRP_CACHE_INVENTORY_H
#define DRP_CACHE_INVENTORY_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cache/cache.h"
#include "cache/digest.h"

/* A digest a manifest references. */
typedef struct drp_inv_ref {
	char digest[DRP_DIGEST_STRSIZE];
	bool manifest; /* a child manifest (of an index), else a blob */
} drp_inv_ref_t;

/* One stored object. */
typedef struct drp_inv_obj {
	char digest[DRP_DIGEST_STRSIZE];
	uint64_t size;
	int64_t last_used;
	/* A manifest: its media type ("mt" record); NULL for a blob. */
	char *media_type;
	/* What a manifest references (valid sha256 digests only), in the
	 * manifest's order: config and layers, an index's child manifests,
	 * an artifact's blobs. */
	struct drp_inv_ref *refs;
	size_t n_refs;
	/* The manifest could not be read or parsed (refs is empty). */
	bool unreadable;
} drp_inv_obj_t;

/* One tag record. */
typedef struct drp_inv_tag {
	char *key; /* the record's key, for deleting it */
	char *host, *repo, *tag, *accept;
	drp_cache_tag_t rec;
} drp_inv_tag_t;

/* One "seen" record: digest served for host/repo. */
typedef struct drp_inv_seen {
	char digest[DRP_DIGEST_STRSIZE];
	char *host, *repo;
} drp_inv_seen_t;

typedef struct drp_inv {
	drp_inv_obj_t *objs; /* sorted by digest */
	size_t n_objs;
	drp_inv_tag_t *tags; /* sorted by host, repo, tag, accept */
	size_t n_tags;
	drp_inv_seen_t *seen; /* sorted by host, repo, digest */
	size_t n_seen;
	/* The backend lists records (meta_iterate); else no tags, no
	 * repositories. */
	bool records;
} drp_inv_t;

/*
 * Read everything above from the cache: objects, records, and every
 * manifest (peek_open; a manifest that cannot be read or parsed is
 * marked unreadable, not an error). 0, -ENOMEM, or the backend's error.
 * Free with drp_inv_free (also after a failure).
 */
int drp_inv_load(const drp_cache_api_t *api, drp_cache_t *db,
		 drp_cache_stats_t *stats, drp_inv_t *inv)
	__attribute__((nonnull, warn_unused_result));
void drp_inv_free(drp_inv_t *inv);

/* The object with this digest, or NULL. */
drp_inv_obj_t *drp_inv_find(const drp_inv_t *inv, const char *digest)
	__attribute__((nonnull));

/*
 * The listing: registries, their repositories, their tags, as JSON
 * (docker-registry-proxy(8), "cache list --json"). gauges (may be NULL)
 * adds the cache's totals. Times are RFC 3339 UTC strings. New
 * reference (never NULL).
 */
json_t *drp_inv_list_json(const drp_inv_t *inv, const drp_cache_stats_t *gauges,
			  const char *backend)
	__attribute__((nonnull(1), returns_nonnull));
/* The same listing for people, from the JSON, to out. */
void drp_inv_list_text(const json_t *list, FILE *out) __attribute__((nonnull));

/*
 * Purge: delete the tag records marked in tag_sel (inv->n_tags flags;
 * may be NULL) and the objects named in digests (a manifest: with every
 * tag record that resolves to it; a blob: that blob), then every
 * manifest and blob reachable from them (an index's child manifests, a
 * manifest's config and layers) that no remaining tag and no other
 * cached manifest uses. Their "mt" and "seen" records go with them.
 * Each step is written to out as one line. Returns the number of
 * objects removed, or -errno (a failed removal is reported and skipped,
 * not fatal). inv is stale afterwards.
 */
int drp_inv_purge(const drp_cache_api_t *api, drp_cache_t *db,
		  drp_cache_stats_t *stats, drp_inv_t *inv, const bool *tag_sel,
		  const char *const *digests, size_t n_digests, FILE *out)
	__attribute__((nonnull(1, 2, 3, 4, 8)));

/* What verify found. */
typedef struct drp_inv_verified {
	uint64_t objects, bytes; /* checked */
	uint64_t bad;		 /* removed */
} drp_inv_verified_t;

/*
 * Re-hash every object (peek_open, read, SHA-256): one whose bytes do
 * not match its digest, or that cannot be read back whole, is removed
 * and reported to out, one line each. Stops early when *stop becomes
 * true (stop may be NULL). 0 (*res filled), -ECANCELED (stopped), or
 * the backend's error from iterate.
 */
int drp_inv_verify(const drp_cache_api_t *api, drp_cache_t *db,
		   drp_cache_stats_t *stats, const atomic_bool *stop, FILE *out,
		   drp_inv_verified_t *res)
	__attribute__((nonnull(1, 2, 3, 5, 6)));

/* Called for each object a sweep removed. */
typedef void (*drp_inv_swept_cb)(void *arg, const char *digest, uint64_t size,
				 int64_t last_used);

/*
 * max_age: remove every object whose last use is before now - max_age
 * seconds (checked again just before it goes, with peek_open, so an
 * object used since the snapshot stays). *n and *bytes (may be NULL)
 * get what went. Stops early on *stop. 0, -ECANCELED, or the backend's
 * error from iterate.
 */
int drp_inv_sweep(const drp_cache_api_t *api, drp_cache_t *db,
		  drp_cache_stats_t *stats, int64_t now, double max_age,
		  const atomic_bool *stop, drp_inv_swept_cb cb, void *arg,
		  uint64_t *n, uint64_t *bytes)
	__attribute__((nonnull(1, 2, 3)));

/* "2026-11-27T18:40:00Z" (UTC) into buf (at least 21 bytes). */
void drp_inv_time(int64_t t, char *buf, size_t len) __attribute__((nonnull));
/* "1.5 MiB", "512 B" into buf. */
void drp_inv_size(uint64_t n, char *buf, size_t len) __attribute__((nonnull));

#endif
