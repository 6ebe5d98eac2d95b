/* SPDX-License-Identifier: MIT */
/*
 * The daemon's side of the cache: the in-tree backends, and typed
 * metadata records built on a backend's generic meta_put/meta_get.
 * The backend contract itself is <drp/cache.h>; backend registration by
 * name (drp_cache_backend_find/register) is declared there too.
 *
 * Record keys (all printable ASCII, fields separated by one space, so no
 * field may contain a space or control character):
 *   tag <host> <repo> <tag> <accept-key>   tag record (drp_cache_tag_*)
 *   neg <any key>                          negative entry (drp_cache_neg_*)
 *   seen <digest> <host> <repo>            object seen in a repository
 * The prefixes keep the families apart in one key space.
 *
 * All functions here are thread-safe (they only call the backend's ops)
 * and may block exactly when the backend's meta ops may block.
 * Return values: >= 0 or a negative errno, as in <drp/cache.h>.
 */
#ifndef DRP_CACHE_CACHE_H
#define DRP_CACHE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "drp/cache.h"

/* Built-in backends (static tables; also found by name). */
const drp_cache_api_t *drp_cache_fs(void);
const drp_cache_api_t *drp_cache_mem(void);

struct drp_jobs;
/*
 * fs only: write metadata behind, through jobs (util/jobs.h), so that
 * meta_put and meta_del return without touching the disk (they run on the
 * event loops): the record stays in memory, where meta_get finds it at
 * once (read-after-write holds from every thread), until a job of the
 * queue has written it (temp file + rename) or unlinked it. A remove (or
 * a damaged object's drop) only takes the object out of the index; a job
 * moves its file aside and unlinks it, unless the digest was stored again
 * by then. A record reaches the disk in the queue's order, so a crash of the
 * process may lose the records still queued. A record whose write fails
 * (a full disk) stays in memory, where reads find it, and the next op
 * after nospace_retry seconds has the queue write it again; at most 4096
 * such records are kept (one more that fails is dropped, logged).
 * NULL ends it: other ops may still run (then and after), none submits
 * to the old queue once this returns, and from then on they write
 * themselves (over a record still in memory, the newest reaches the disk
 * when the queue has run dry). So end it, then drain the queue
 * (drp_jobs_free), then close db: close gives the records kept after a
 * failed write a last try, and drops, logged, what still fails.
 */
void drp_cache_fs_write_behind(drp_cache_t *db, struct drp_jobs *jobs);

/*
 * Test hook (fs only): make the next `count` storage writes of db fail
 * with `err` (e.g. ENOSPC) as if the disk had returned it.
 */
void drp_cache_fs_inject_error(drp_cache_t *db, int err, unsigned count);

/*
 * Test hook (fs only): the number of metadata records kept in memory
 * after a read; max other than SIZE_MAX sets how many may be kept (0:
 * none); *reads (if not NULL) gets how many record files were read.
 */
size_t drp_cache_fs_meta_cached(drp_cache_t *db, size_t max, uint64_t *reads);

/*
 * Test hook (fs only): the number of small objects whose bytes are kept
 * in memory; max_bytes other than UINT64_MAX sets how many bytes may be
 * kept in all (0: none); *bytes gets the bytes kept, *opens how many
 * object files read_open opened (either may be NULL).
 */
size_t drp_cache_fs_small_cached(drp_cache_t *db, uint64_t max_bytes,
				 uint64_t *bytes, uint64_t *opens);

/*
 * fs only: keep the windows read_map maps (the hot path of large
 * objects) mapped after their last user is done, at most max bytes of
 * them (0: none kept, each window is unmapped when its user is done);
 * UINT64_MAX leaves the cap as it is. The next read of a kept window maps
 * nothing and finds its page tables filled. A kept window goes when its
 * object leaves the index (remove, eviction, a drop after damage found),
 * least recently used first when the cap is reached or lowered, and at
 * close. Thread-safe. Returns the number of windows kept; *bytes (if not
 * NULL) gets their bytes, *maps how many windows read_map has mapped in
 * all (test hook).
 */
size_t drp_cache_fs_keep_mapped(drp_cache_t *db, uint64_t max, uint64_t *bytes,
				uint64_t *maps);

/*
 * Store bytes [0, len) of fd, whose SHA-256 the caller has verified to be
 * digest: api->adopt when the backend has it, else a writer fed with
 * pread (which hashes again and returns -EBADMSG on a mismatch). Returns
 * what adopt returns. Blocks.
 */
int drp_cache_adopt(const drp_cache_api_t *api, drp_cache_t *db,
		    drp_cache_stats_t *stats, const char *digest, int fd,
		    uint64_t len);

/* Longest media type kept in a tag record (bytes, without the NUL). */
#define DRP_CACHE_MEDIA_TYPE_MAX 255

/*
 * Normalize the Accept header values of a manifest request into the key
 * under which a tag record is kept: the media types of every value
 * (comma-separated lists; parameters such as ";q=0.5" dropped; lower-
 * cased), de-duplicated and sorted, joined by ','. Several Accept headers
 * and one merged header give the same key. No acceptable type at all
 * gives "-". Writes a NUL-ended key to buf and returns its length,
 * -ENAMETOOLONG if buflen is too small, or -E2BIG for more than 32 media
 * types (such a request is not answered from a tag record).
 */
int drp_cache_accept_key(char *buf, size_t buflen, const char *const *values,
			 size_t n_values);

/*
 * Build "tag <host> <repo> <tag> <accept_key>" into buf. Returns the key
 * length, -EINVAL if a field is empty or holds a space or control
 * character, -ENAMETOOLONG if it does not fit in buflen or exceeds
 * DRP_CACHE_KEY_MAX.
 */
int drp_cache_tag_key(char *buf, size_t buflen, const char *host,
		      const char *repo, const char *tag,
		      const char *accept_key);

/* What a tag (for one accept key) resolved to, and when. */
typedef struct drp_cache_tag {
	char digest[DRP_CACHE_DIGEST_SIZE]; /* manifest digest */
	char media_type[DRP_CACHE_MEDIA_TYPE_MAX + 1];
	uint64_t size;	    /* manifest length */
	int64_t fetched_at; /* unix seconds of the last upstream confirmation */
} drp_cache_tag_t;

/*
 * Store / read a tag record under key (from drp_cache_tag_key). put:
 * 0, -EINVAL (bad digest, media type too long or with a control
 * character), or the backend's error. get: 0 and *out filled, -ENOENT,
 * -EBADMSG if the stored value is not a valid record (a media type with
 * a control character included).
 */
int drp_cache_tag_put(const drp_cache_api_t *api, drp_cache_t *db,
		      drp_cache_stats_t *stats, const char *key,
		      const drp_cache_tag_t *tag);
int drp_cache_tag_get(const drp_cache_api_t *api, drp_cache_t *db,
		      drp_cache_stats_t *stats, const char *key,
		      drp_cache_tag_t *out);
int drp_cache_tag_del(const drp_cache_api_t *api, drp_cache_t *db,
		      drp_cache_stats_t *stats, const char *key);

/*
 * The media type a manifest stored by digest was served with: key
 * "mt <digest>". put: 0, -EINVAL (bad digest, media type empty, too long
 * or with a control character), or the backend's error. get: 0 and the
 * NUL-ended media type in out (outlen > DRP_CACHE_MEDIA_TYPE_MAX),
 * -ENOENT, or -EBADMSG if the stored value is not one put could have
 * written (it goes into a response header).
 */
int drp_cache_mtype_put(const drp_cache_api_t *api, drp_cache_t *db,
			drp_cache_stats_t *stats, const char *digest,
			const char *media_type);
int drp_cache_mtype_get(const drp_cache_api_t *api, drp_cache_t *db,
			drp_cache_stats_t *stats, const char *digest, char *out,
			size_t outlen);

/*
 * Negative entries: "key is known not to exist until `expires`" (unix
 * seconds). The key is any string (typically a tag key); it is stored as
 * "neg <key>". get: 0 and *expires set while now < expires; -ENOENT if
 * there is none or it has expired (an expired one is deleted).
 */
int drp_cache_neg_put(const drp_cache_api_t *api, drp_cache_t *db,
		      drp_cache_stats_t *stats, const char *key,
		      int64_t expires);
int drp_cache_neg_get(const drp_cache_api_t *api, drp_cache_t *db,
		      drp_cache_stats_t *stats, const char *key, int64_t now,
		      int64_t *expires);
int drp_cache_neg_del(const drp_cache_api_t *api, drp_cache_t *db,
		      drp_cache_stats_t *stats, const char *key);

/*
 * "Object digest was served by repository host/repo": one record per
 * (digest, host, repo), empty value. put: 0 or an error (-EINVAL for a bad
 * digest or field). get: 0 if recorded, else -ENOENT.
 */
int drp_cache_seen_put(const drp_cache_api_t *api, drp_cache_t *db,
		       drp_cache_stats_t *stats, const char *digest,
		       const char *host, const char *repo);
int drp_cache_seen_get(const drp_cache_api_t *api, drp_cache_t *db,
		       drp_cache_stats_t *stats, const char *digest,
		       const char *host, const char *repo);

#endif
