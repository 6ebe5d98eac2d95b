/* SPDX-License-Identifier: MIT */
/*
 * "fs" backend. Layout under conf->dir:
 *   lock                          flock'd while open (one process per dir)
 *   blobs/sha256/<ab>/<hex>       one file per object, named by its digest
 *   meta/<ab>/<hex>               one file per metadata record, named by
 *                                 the SHA-256 of its key
 *   tmp/                          writes in progress and files being
 *                                 deleted; emptied at open
 *
 * Write-behind (drp_cache_fs_write_behind, the daemon's): a metadata
 * put or delete is kept in memory, where meta_get finds it at once, and
 * written (temp file + rename, or unlink) by a job of the given queue; a
 * record whose write fails stays in memory and is written again later. A
 * remove (a damaged object's drop, from a loop) takes the object out of
 * the index at once and leaves moving its file aside and unlinking it to
 * the queue. So no rename or unlink of the cache runs on an event loop.
 *
 * The layout is trusted: only data that was fully written, fsync'd and
 * verified against its digest is ever renamed into blobs/, so no file
 * there is re-hashed at start-up (that would take minutes for a large
 * cache). The index is rebuilt by scanning the shard directories; odd
 * names are deleted, and a size that changed behind our back is caught
 * at read_open (fstat) and read (short file) and the object dropped.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/digest.h"
#include "cache/index.h"
#include "util/jobs.h"
#include "util/log.h"
#include "util/mem.h"

#define DIR_MODE  0700
#define FILE_MODE 0600
/* Persist "last used" on disk at most this often per object. */
#define STAMP_INTERVAL	      3600
#define DEFAULT_NOSPACE_RETRY 60

/* Meta file header: "DRPM", version, 3 zero bytes, key len, value len
 * (little endian u32), then key and value. */
#define META_MAGIC "DRPM"
#define META_HDR   16

/* A metadata record not on disk yet (write-behind): the newest put or
 * delete of its file, which one job at a time writes; it leaves the table
 * when what the job wrote is still the newest. One whose write failed
 * stays (failed) until a retry, or a newer op, has it written. */
typedef struct meta_pending {
	struct meta_pending *next;  /* in its bucket */
	struct meta_pending *retry; /* in a retry job's list */
	drp_cache_t *db;
	uint8_t name[DRP_DIGEST_LEN]; /* SHA-256 of the key: the file */
	uint64_t gen;		      /* bumped by every put and delete */
	bool del;		      /* the newest is a delete */
	bool queued;		      /* a job has it (queued or running) */
	bool failed;		      /* its last write failed */
	uint8_t *key, *val;	      /* of the newest put (val NULL: del) */
	size_t keylen, vallen;
} meta_pending_t;

#define META_BUCKETS 256
/* Records read from disk, kept in memory for the next reads: a manifest
 * request by tag reads its tag record every time. Bounded: at most
 * META_CACHE_MAX records (least recently read first out), each at most
 * META_CACHE_REC bytes of key and value (a tag record is about 200). A
 * put or delete of a record drops it (before and after touching the
 * disk), and a read that began before one does not keep what it read
 * (meta_rgen), so a kept record is always the newest. */
#define META_CACHE_MAX	   4096
#define META_CACHE_REC	   1024
#define META_CACHE_BUCKETS 1024

typedef struct meta_cached {
	struct meta_cached *next;	   /* in its bucket */
	struct meta_cached *newer, *older; /* recency list */
	uint8_t name[DRP_DIGEST_LEN];
	size_t keylen, vallen;
	uint8_t data[]; /* key, then value */
} meta_cached_t;
/* Records kept in memory after their write failed (a full disk), at
 * most; beyond, a record that fails is dropped (and logged). */
#define META_FAILED_MAX 4096

/* Small objects (manifests, configs, small layers) are kept in memory
 * once read: the next read_open only stats the file (still there, same
 * size: damage is found before an answer as when reading it) and opens
 * and reads nothing. At most SMALL_MAX bytes
 * each and SMALL_BUDGET in all (least recently opened first out). The
 * copy belongs to the object in the index (obj->data) and goes when the
 * object does (a remove, an eviction, a drop after damage found); the
 * objects are immutable (digest-named, verified before they were
 * stored), so a copy is never stale. peek_open, which the cache's
 * verify uses, always reads the file. */
#define SMALL_MAX    (16 * 1024)
#define SMALL_BUDGET (8 * 1024 * 1024)

typedef struct small_copy {
	struct small_copy *newer, *older; /* recency list (idx.lock) */
	drp_cache_obj_t *obj;		  /* NULL once detached */
	unsigned refs;			  /* the object's, and readers' */
	size_t len;
	uint8_t bytes[];
} small_copy_t;

struct drp_cache {
	drp_cache_index_t idx;
	char *dir;
	int dirfd;
	int lockfd;
	unsigned nospace_retry;
	uint64_t seq; /* temp-name counter, atomic */
	/* Write-behind queue (NULL: metadata is written by the op itself);
	 * an op that uses it holds behind_lock (read) from reading it to
	 * its last submission, so that once drp_cache_fs_write_behind has
	 * changed it (write) no op submits to the old queue. */
	drp_jobs_t *behind;
	pthread_rwlock_t behind_lock;
	pthread_mutex_t meta_lock; /* guards pending and the meta_ fields */
	meta_pending_t *pending[META_BUCKETS];
	unsigned meta_failed;	/* records failed, waiting for a retry */
	int64_t meta_retry_at;	/* not before (after the last failure) */
	bool meta_retry_queued; /* a retry job is queued */
	/* The read cache (under meta_lock): */
	meta_cached_t *mcache[META_CACHE_BUCKETS];
	meta_cached_t *mc_newest, *mc_oldest;
	size_t mc_count, mc_max;
	uint64_t meta_rgen;  /* bumped by every drop of a record */
	uint64_t meta_reads; /* record files read (test hook) */
	/* Guarded by idx.lock: */
	small_copy_t *sc_newest, *sc_oldest;
	uint64_t sc_bytes, sc_max;
	uint64_t obj_opens; /* object files opened by read_open (test hook) */
	/* Windows kept mapped (drp_cache_fs_keep_mapped): */
	struct fs_map *km_newest, *km_oldest;
	uint64_t km_bytes, km_max;
	uint64_t km_maps; /* windows mapped by read_map, atomic (test hook) */
	int64_t nospace_until; /* pause_now_ms() */
	bool nospace_logged;
	int inject_err;
	unsigned inject_count;
};

struct drp_cache_reader {
	drp_cache_obj_t *obj;
	int fd;		   /* -1 when reading mem */
	small_copy_t *mem; /* the object's bytes in memory, or NULL */
	uint64_t pos;
};

struct drp_cache_writer {
	uint8_t digest[DRP_DIGEST_LEN];
	drp_digest_t hash;
	int fd; /* -1 when not storing */
	char tmp[32];
	uint64_t written;
	uint64_t reserved;
	int err; /* 0 = storing, else why not (uncommittable) */
};

/* Files renamed aside under the index lock, deleted after unlocking;
 * and windows no longer kept, unmapped after unlocking. */
struct grave {
	drp_cache_t *db;
	uint64_t *seq;
	size_t n, cap;
	struct fs_map *unmap;
};

static void km_detach_obj(drp_cache_t *db, drp_cache_obj_t *o,
			  struct fs_map **unmap);
static void km_unmap_list(struct fs_map *m);

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

/* The clock of the pause after a full disk, in ms: a pause counted in
 * whole wall-clock seconds ended as soon as the second turned over (after
 * a few ms, for nospace_retry=1, when the error came at a second's end). */
static int64_t pause_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t next_seq(drp_cache_t *db)
{
	return __atomic_fetch_add(&db->seq, 1, __ATOMIC_RELAXED);
}

static void blob_path(char *out, size_t len, const uint8_t d[DRP_DIGEST_LEN])
{
	char hex[65];
	drp_digest_hex(d, hex);
	snprintf(out, len, "blobs/sha256/%.2s/%s", hex, hex);
}

static void meta_path(char *out, size_t len, const uint8_t h[DRP_DIGEST_LEN])
{
	char hex[65];
	drp_digest_hex(h, hex);
	snprintf(out, len, "meta/%.2s/%s", hex, hex);
}

/* mkdir every missing directory of rel (relative to dirfd), including
 * rel itself. */
static int mkdirs(int dirfd, const char *rel)
{
	char p[256];
	snprintf(p, sizeof(p), "%s", rel);
	for (char *s = p;; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			*s = '\0';
			if (mkdirat(dirfd, p, DIR_MODE) < 0 && errno != EEXIST)
				return -errno;
			*s = c;
			if (c == '\0')
				return 0;
		}
	}
}

/* Directory part of a relative path, for mkdirs after ENOENT. */
static void parent_of(char *out, size_t len, const char *path)
{
	snprintf(out, len, "%s", path);
	char *slash = strrchr(out, '/');
	if (slash)
		*slash = '\0';
}

static int rename_mkdir(int dirfd, const char *from, const char *to)
{
	if (renameat(dirfd, from, dirfd, to) == 0)
		return 0;
	if (errno != ENOENT)
		return -errno;
	/* The shard directory went missing (deleted by hand): recreate. */
	char parent[256];
	parent_of(parent, sizeof(parent), to);
	int rc = mkdirs(dirfd, parent);
	if (rc < 0)
		return rc;
	return renameat(dirfd, from, dirfd, to) == 0 ? 0 : -errno;
}

static void fsync_dir(drp_cache_t *db, const char *rel)
{
	int fd = openat(db->dirfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fsync(fd) < 0)
		drp_log_errno(DRP_LOG_WARNING, DRP_LOG_CACHE,
			      "fsync of directory %s/%s", db->dir, rel);
	close(fd);
}

/* [locked] Move the file of object d aside. */
static void grave_add(struct grave *g, const uint8_t d[DRP_DIGEST_LEN])
{
	char from[128], to[32];
	uint64_t seq = next_seq(g->db);

	blob_path(from, sizeof(from), d);
	snprintf(to, sizeof(to), "tmp/d%" PRIu64, seq);
	if (renameat(g->db->dirfd, from, g->db->dirfd, to) < 0) {
		if (errno != ENOENT)
			drp_log_errno(DRP_LOG_WARNING, DRP_LOG_CACHE,
				      "cannot remove %s/%s", g->db->dir, from);
		return;
	}
	if (g->n == g->cap) {
		g->cap = g->cap ? 2 * g->cap : 8;
		g->seq = drp_realloc(g->seq, g->cap * sizeof(*g->seq));
	}
	g->seq[g->n++] = seq;
}

/* evict callback [locked]: move the object's file aside. */
static void grave_add_cb(drp_cache_obj_t *obj, void *arg)
{
	struct grave *g = arg;
	km_detach_obj(g->db, obj, &g->unmap);
	grave_add(g, obj->digest);
}

/* [unlocked] Delete what grave_add moved aside; unlink(2) of a big
 * file frees its extents and can take a while, so not under the lock. */
static void grave_flush(struct grave *g)
{
	char name[32];
	km_unmap_list(g->unmap);
	g->unmap = NULL;
	for (size_t i = 0; i < g->n; i++) {
		snprintf(name, sizeof(name), "tmp/d%" PRIu64, g->seq[i]);
		unlinkat(g->db->dirfd, name, 0);
	}
	DRP_FREE(g->seq);
	g->n = g->cap = 0;
}

/* A removed object's file, left to the write-behind queue. */
struct bury {
	drp_cache_t *db;
	uint8_t d[DRP_DIGEST_LEN];
};

/* The queue's part of a remove: move the file aside and unlink it,
 * unless the digest was stored again meanwhile (publish renames under
 * the index lock too: the file in place is then the new object's). */
static void bury_job(void *arg)
{
	struct bury *b = arg;
	struct grave g = {.db = b->db};
	pthread_mutex_lock(&b->db->idx.lock);
	if (drp_cache_index_find(&b->db->idx, b->d) == NULL)
		grave_add(&g, b->d);
	pthread_mutex_unlock(&b->db->idx.lock);
	grave_flush(&g);
	free(b);
}

/* [locked, behind_lock read] Remove an indexed object from index and
 * disk (disk part finished by drop_finish). With write-behind (the op
 * runs on a loop: a remove, a damaged object's drop) only from the index,
 * so that no rename runs on the loop, under the lock the other loops
 * need: until the queue moves it, the file stays in place, unindexed
 * (never served; a new copy stored meanwhile replaces it). */
static void drop_obj(drp_cache_t *db, drp_cache_obj_t *o, struct grave *g)
{
	/* The index ref keeps o alive across the callback. Its kept
	 * windows go now: a copy stored again is a new file. */
	km_detach_obj(db, o, &g->unmap);
	if (db->behind == NULL)
		grave_add(g, o->digest);
	drp_cache_index_drop(&db->idx, o);
}

/* [behind_lock read] After drop_obj of object d: delete its file, or
 * have the write-behind queue do it. */
static void drop_finish(drp_cache_t *db, const uint8_t d[DRP_DIGEST_LEN],
			struct grave *g)
{
	if (db->behind == NULL) {
		grave_flush(g);
		return;
	}
	km_unmap_list(g->unmap);
	g->unmap = NULL;
	struct bury *b = DRP_NEW(struct bury);
	b->db = db;
	memcpy(b->d, d, DRP_DIGEST_LEN);
	drp_jobs_submit(db->behind, bury_job, b);
}

/* The stored file does not match the index: forget it (logged once, by
 * whoever notices first). */
static void discard_corrupt(drp_cache_t *db, drp_cache_stats_t *stats,
			    drp_cache_obj_t *o, const char *why)
{
	struct grave g = {.db = db};
	char hex[65];
	pthread_rwlock_rdlock(&db->behind_lock);
	pthread_mutex_lock(&db->idx.lock);
	bool indexed = drp_cache_obj_indexed(o);
	if (indexed)
		drop_obj(db, o, &g);
	pthread_mutex_unlock(&db->idx.lock);
	if (indexed) /* o is pinned by the caller: alive */
		drop_finish(db, o->digest, &g);
	pthread_rwlock_unlock(&db->behind_lock);
	DRP_CACHE_STAT_ADD(stats, read_errors, 1);
	if (indexed) {
		drp_digest_hex(o->digest, hex);
		drp_log_warning(DRP_LOG_CACHE,
				"%s/blobs/sha256/%.2s/%s: %s, dropped", db->dir,
				hex, hex, why);
	}
}

static int parse_params(drp_cache_t *db, const char *params, char *errbuf,
			size_t errlen)
{
	const char *p = params;
	while (p && *p) {
		size_t len = strcspn(p, ",");
		const char *eq = memchr(p, '=', len);
		char val[32];
		if (eq == NULL || eq - p != 13 ||
		    memcmp(p, "nospace_retry", 13)) {
			snprintf(errbuf, errlen,
				 "params: unknown key in '%.*s' (fs knows "
				 "nospace_retry=SECONDS)",
				 (int)len, p);
			return -EINVAL;
		}
		size_t vl = len - (size_t)(eq + 1 - p);
		snprintf(val, sizeof(val), "%.*s", (int)vl, eq + 1);
		char *end;
		errno = 0;
		unsigned long v = strtoul(val, &end, 10);
		if (errno || *end || val[0] < '0' || val[0] > '9' ||
		    vl >= sizeof(val) || v > 86400) {
			snprintf(errbuf, errlen,
				 "params: nospace_retry: '%.*s' is not "
				 "0..86400 seconds",
				 (int)vl, eq + 1);
			return -EINVAL;
		}
		db->nospace_retry = (unsigned)v;
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

static int make_layout(drp_cache_t *db, char *errbuf, size_t errlen)
{
	char p[64];
	int rc = mkdirs(db->dirfd, "blobs/sha256");
	if (rc == 0)
		rc = mkdirs(db->dirfd, "tmp");
	for (unsigned i = 0; i < 256 && rc == 0; i++) {
		snprintf(p, sizeof(p), "blobs/sha256/%02x", i);
		rc = mkdirs(db->dirfd, p);
		if (rc == 0) {
			snprintf(p, sizeof(p), "meta/%02x", i);
			rc = mkdirs(db->dirfd, p);
		}
	}
	if (rc < 0)
		snprintf(errbuf, errlen, "cache dir %s: cannot create %s: %s",
			 db->dir, p, strerror(-rc));
	return rc;
}

/* Empty tmp/: what is there is a crashed run's partial write or a file
 * that was being deleted. */
static void clean_tmp(drp_cache_t *db, drp_cache_stats_t *stats)
{
	int fd = openat(db->dirfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(fd, de->d_name, 0) == 0)
			DRP_CACHE_STAT_ADD(stats, index_dropped, 1);
		else
			drp_log_errno(DRP_LOG_WARNING, DRP_LOG_CACHE,
				      "cannot remove %s/tmp/%s", db->dir,
				      de->d_name);
	}
	closedir(d);
}

static int64_t ts_max(const struct stat *st)
{
	return st->st_atim.tv_sec > st->st_mtim.tv_sec ? st->st_atim.tv_sec
						       : st->st_mtim.tv_sec;
}

/* Index every object file of one shard directory. */
static void scan_shard(drp_cache_t *db, drp_cache_stats_t *stats,
		       unsigned shard, drp_cache_obj_t ***objs, size_t *n,
		       size_t *cap)
{
	char rel[32], want[3];
	snprintf(rel, sizeof(rel), "blobs/sha256/%02x", shard);
	snprintf(want, sizeof(want), "%02x", shard);
	int fd = openat(db->dirfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *name = de->d_name;
		uint8_t dg[DRP_DIGEST_LEN];
		struct stat st;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		/* Skip a stat for entries that are plainly not files. */
		if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
			continue;
		if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (drp_digest_parse_hex(name, strlen(name), dg) < 0 ||
		    memcmp(name, want, 2) != 0) {
			/* Not ours (or in the wrong shard): never served. */
			drp_log_notice(DRP_LOG_CACHE,
				       "removing stray file %s/%s/%s", db->dir,
				       rel, name);
			unlinkat(fd, name, 0);
			DRP_CACHE_STAT_ADD(stats, index_dropped, 1);
			continue;
		}
		if (*n == *cap) {
			*cap = *cap ? 2 * *cap : 4096;
			*objs = drp_realloc(*objs, *cap * sizeof(**objs));
		}
		int64_t t = ts_max(&st);
		drp_cache_obj_t *o =
			drp_cache_obj_new(dg, (uint64_t)st.st_size, t);
		o->stamp = t;
		(*objs)[(*n)++] = o;
	}
	closedir(d);
}

/*
 * Scan the 256 shards with a few threads: on a cold page cache the scan
 * waits for inode reads, and several outstanding requests let the disk
 * serve them in parallel (100k objects, cold, idle 2-core VM: 1.1 s with
 * one thread, 0.7 s with four; bench/cache_index.sh).
 */
#define SCAN_THREADS 4

struct scan_job {
	drp_cache_t *db;
	drp_cache_stats_t *stats;
	unsigned first;
	drp_cache_obj_t **objs;
	size_t n, cap;
};

static void *scan_thread(void *arg)
{
	struct scan_job *j = arg;
	for (unsigned s = j->first; s < 256; s += SCAN_THREADS)
		scan_shard(j->db, j->stats, s, &j->objs, &j->n, &j->cap);
	return NULL;
}

static size_t scan_all(drp_cache_t *db, drp_cache_stats_t *stats)
{
	struct scan_job jobs[SCAN_THREADS];
	pthread_t th[SCAN_THREADS];
	bool started[SCAN_THREADS];
	size_t total = 0;

	for (unsigned t = 0; t < SCAN_THREADS; t++) {
		jobs[t] =
			(struct scan_job){.db = db, .stats = stats, .first = t};
		started[t] = pthread_create(&th[t], NULL, scan_thread,
					    &jobs[t]) == 0;
		if (!started[t])
			scan_thread(&jobs[t]);
	}
	for (unsigned t = 0; t < SCAN_THREADS; t++) {
		if (started[t])
			pthread_join(th[t], NULL);
		total += jobs[t].n;
	}
	drp_cache_obj_t **all = drp_malloc((total ? total : 1) * sizeof(*all));
	size_t k = 0;
	for (unsigned t = 0; t < SCAN_THREADS; t++) {
		if (jobs[t].n) /* objs is NULL for an empty share */
			memcpy(all + k, jobs[t].objs, jobs[t].n * sizeof(*all));
		k += jobs[t].n;
		free(jobs[t].objs);
	}
	drp_cache_index_load(&db->idx, all, total);
	free(all);
	return total;
}

/* ---- small objects in memory ---- */

/* [idx.lock] */
static void sc_unlist(drp_cache_t *db, small_copy_t *c)
{
	if (c->newer)
		c->newer->older = c->older;
	else
		db->sc_newest = c->older;
	if (c->older)
		c->older->newer = c->newer;
	else
		db->sc_oldest = c->newer;
	c->newer = c->older = NULL;
}

/* [idx.lock] */
static void sc_push(drp_cache_t *db, small_copy_t *c)
{
	c->newer = NULL;
	c->older = db->sc_newest;
	if (db->sc_newest)
		db->sc_newest->newer = c;
	else
		db->sc_oldest = c;
	db->sc_newest = c;
}

/* [idx.lock] Drop a reference; the last one frees. */
static void sc_unref(small_copy_t *c)
{
	if (--c->refs == 0)
		free(c);
}

/* [idx.lock] Take the copy away from its object (readers keep theirs). */
static void sc_detach(drp_cache_t *db, small_copy_t *c)
{
	sc_unlist(db, c);
	db->sc_bytes -= c->len;
	c->obj->data = NULL;
	c->obj = NULL;
	sc_unref(c);
}

/* [idx.lock] At most max bytes kept. */
static void sc_trim(drp_cache_t *db, uint64_t max)
{
	while (db->sc_bytes > max && db->sc_oldest != NULL)
		sc_detach(db, db->sc_oldest);
}

/* The index frees an object (under its lock, or at destroy). */
static void small_free_obj(drp_cache_obj_t *o, void *arg)
{
	if (o->data != NULL)
		sc_detach(arg, o->data);
	/* Every way out of the index took them already; at close, the
	 * index frees what is left. */
	struct fs_map *unmap = NULL;
	km_detach_obj(arg, o, &unmap);
	km_unmap_list(unmap);
}

size_t drp_cache_fs_small_cached(drp_cache_t *db, uint64_t max_bytes,
				 uint64_t *bytes, uint64_t *opens)
{
	pthread_mutex_lock(&db->idx.lock);
	if (max_bytes != UINT64_MAX) {
		db->sc_max = max_bytes;
		sc_trim(db, max_bytes);
	}
	size_t n = 0;
	for (small_copy_t *c = db->sc_newest; c != NULL; c = c->older)
		n++;
	if (bytes)
		*bytes = db->sc_bytes;
	if (opens)
		*opens = db->obj_opens;
	pthread_mutex_unlock(&db->idx.lock);
	return n;
}

/* Read all of a small object's file (fd, size len) into a copy, and
 * give it to the object unless it has one or left the index meanwhile.
 * NULL if the file did not give len bytes (the caller reads the file,
 * and finds it short). */
static small_copy_t *sc_load(drp_cache_t *db, drp_cache_obj_t *o, int fd,
			     uint64_t len)
{
	small_copy_t *c = drp_malloc(sizeof(*c) + (size_t)len);
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, c->bytes + got, (size_t)len - got,
				  (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got < len) {
		free(c);
		return NULL;
	}
	c->len = (size_t)len;
	c->obj = NULL;
	c->refs = 1; /* the reader's */
	c->newer = c->older = NULL;
	pthread_mutex_lock(&db->idx.lock);
	if (o->data == NULL && drp_cache_obj_indexed(o) && db->sc_max >= len) {
		o->data = c;
		c->obj = o;
		c->refs++;
		sc_push(db, c);
		db->sc_bytes += len;
		sc_trim(db, db->sc_max);
	}
	pthread_mutex_unlock(&db->idx.lock);
	return c;
}

static int fs_open(drp_cache_t **out, const drp_cache_conf_t *conf,
		   drp_cache_stats_t *stats, char *errbuf, size_t errlen)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);

	if (conf->dir == NULL || conf->dir[0] == '\0') {
		snprintf(errbuf, errlen, "fs cache needs a directory (dir)");
		return -EINVAL;
	}
	drp_cache_t *db = DRP_NEW(drp_cache_t);
	db->dirfd = db->lockfd = -1;
	pthread_mutex_init(&db->meta_lock, NULL);
	pthread_rwlock_init(&db->behind_lock, NULL);
	db->dir = drp_strdup(conf->dir);
	db->nospace_retry = DEFAULT_NOSPACE_RETRY;
	db->mc_max = META_CACHE_MAX;
	db->sc_max = SMALL_BUDGET;
	int rc = drp_cache_index_init(&db->idx, conf, small_free_obj, db,
				      errbuf, errlen);
	if (rc < 0)
		goto err_dir;
	rc = parse_params(db, conf->params, errbuf, errlen);
	if (rc < 0)
		goto err_index;

	if (mkdir(db->dir, DIR_MODE) < 0 && errno != EEXIST) {
		rc = -errno;
		snprintf(errbuf, errlen, "cache dir %s: %s", db->dir,
			 strerror(errno));
		goto err_index;
	}
	db->dirfd = open(db->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (db->dirfd < 0) {
		rc = -errno;
		snprintf(errbuf, errlen, "cache dir %s: %s", db->dir,
			 strerror(errno));
		goto err_index;
	}
	db->lockfd = openat(db->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC,
			    FILE_MODE);
	if (db->lockfd < 0) {
		rc = -errno;
		snprintf(errbuf, errlen, "cache dir %s: lock file: %s", db->dir,
			 strerror(errno));
		goto err_fd;
	}
	/* Two processes on one directory would delete each other's temp
	 * files and disagree about the budget. */
	if (flock(db->lockfd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		snprintf(errbuf, errlen,
			 "cache dir %s: in use by another process", db->dir);
		goto err_fd;
	}
	rc = make_layout(db, errbuf, errlen);
	if (rc < 0)
		goto err_fd;
	clean_tmp(db, stats);

	size_t n = scan_all(db, stats);
	DRP_CACHE_STAT_ADD(stats, index_loaded, n);

	/* The budget may have been lowered since the last run. */
	struct grave g = {.db = db};
	pthread_mutex_lock(&db->idx.lock);
	drp_cache_index_trim(&db->idx, grave_add_cb, &g, stats);
	drp_cache_stats_t gauges = {0};
	drp_cache_index_gauges(&db->idx, &gauges);
	pthread_mutex_unlock(&db->idx.lock);
	grave_flush(&g);

	clock_gettime(CLOCK_MONOTONIC, &t1);
	drp_log_info(DRP_LOG_CACHE,
		     "fs cache %s: %" PRIu64 " objects, %" PRIu64
		     " bytes, indexed in %.3f s",
		     db->dir, gauges.objects, gauges.bytes,
		     (double)(t1.tv_sec - t0.tv_sec) +
			     (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	*out = db;
	return 0;

err_fd:
	if (db->lockfd >= 0)
		close(db->lockfd);
	close(db->dirfd);
err_index:
	drp_cache_index_destroy(&db->idx);
err_dir:
	pthread_rwlock_destroy(&db->behind_lock);
	pthread_mutex_destroy(&db->meta_lock);
	free(db->dir);
	free(db);
	return rc;
}

/*
 * Persist the last uses the index learned since each object's disk stamp
 * (read_open stamps at most hourly; lookups never do), so that after a
 * clean restart last use, which orders eviction and decides max_age, is
 * exact to the second. A crash loses at most STAMP_INTERVAL of it.
 */
static void flush_stamps(drp_cache_t *db)
{
	drp_cache_snap_t *snap;
	size_t n;
	pthread_mutex_lock(&db->idx.lock);
	int rc = drp_cache_index_snapshot(&db->idx, &snap, &n);
	pthread_mutex_unlock(&db->idx.lock);
	if (rc < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		drp_cache_obj_t *o =
			drp_cache_index_find(&db->idx, snap[i].digest);
		if (o == NULL || o->last_used <= o->stamp)
			continue;
		char path[128];
		blob_path(path, sizeof(path), o->digest);
		struct timespec ts[2] = {{.tv_sec = o->last_used},
					 {.tv_nsec = UTIME_OMIT}};
		if (utimensat(db->dirfd, path, ts, AT_SYMLINK_NOFOLLOW) == 0)
			o->stamp = o->last_used;
	}
	free(snap);
}

static void pending_free(meta_pending_t *e)
{
	free(e->key);
	free(e->val);
	free(e);
}

static void pending_flush_all(drp_cache_t *db);
static void mcache_trim(drp_cache_t *db, size_t max);

static void fs_close(drp_cache_t *db, drp_cache_stats_t *stats)
{
	/* Nothing else runs on db now (the contract of close). */
	flush_stamps(db);
	/* Records still in memory (their writes failed): a last try. */
	pending_flush_all(db);
	mcache_trim(db, 0);
	(void)drp_cache_fs_keep_mapped(db, 0, NULL, NULL);
	pthread_rwlock_destroy(&db->behind_lock);
	pthread_mutex_destroy(&db->meta_lock);
	drp_cache_index_destroy(&db->idx);
	close(db->lockfd);
	close(db->dirfd);
	free(db->dir);
	free(db);
}

static int fs_lookup(drp_cache_t *db, drp_cache_stats_t *stats,
		     const char *digest, drp_cache_info_t *info)
{
	return drp_cache_index_lookup(&db->idx, stats, digest, now_s(), info);
}

/* read_open, and peek_open when !use: the object's last use (in memory
 * and its stamp on disk) is left alone. */
static int open_reader(drp_cache_t *db, drp_cache_stats_t *stats,
		       const char *digest, uint64_t offset,
		       drp_cache_reader_t **reader, drp_cache_info_t *info,
		       bool use)
{
	uint8_t d[DRP_DIGEST_LEN];
	char path[128];
	int64_t now = now_s();
	bool stamp = false;
	drp_cache_info_t inf = {0};
	small_copy_t *mem = NULL;
	int fd = -1, rc = 0;

	if (drp_digest_parse(digest, d) < 0)
		return -EINVAL;
	pthread_mutex_lock(&db->idx.lock);
	drp_cache_obj_t *o = drp_cache_index_find(&db->idx, d);
	if (o == NULL) {
		rc = -ENOENT;
	} else if (offset > o->size) {
		rc = -EINVAL;
	} else {
		/* Pinned before the file is opened: eviction cannot
		 * unlink it in between (an explicit remove can; then the
		 * open below fails and we report a miss). */
		drp_cache_index_pin(&db->idx, o);
		if (use)
			drp_cache_index_touch(&db->idx, o, now);
		inf.size = o->size;
		inf.last_used = o->last_used;
		if (use && now - o->stamp >= STAMP_INTERVAL) {
			o->stamp = now;
			stamp = true;
		}
		if (use && o->data != NULL) {
			mem = o->data;
			mem->refs++;
			sc_unlist(db, mem);
			sc_push(db, mem);
		}
		if (use && mem == NULL)
			db->obj_opens++;
	}
	pthread_mutex_unlock(&db->idx.lock);
	if (rc < 0)
		return rc;

	blob_path(path, sizeof(path), d);
	struct stat st;
	if (mem != NULL) {
		/* The file is still there with its size (a delete or a
		 * truncation behind our back is found before the answer, as
		 * when reading the file); else as if there were no copy. */
		if (fstatat(db->dirfd, path, &st, 0) == 0 &&
		    (uint64_t)st.st_size == inf.size) {
			if (stamp) {
				struct timespec ts[2] = {
					{.tv_sec = now, .tv_nsec = 0},
					{.tv_nsec = UTIME_OMIT}};
				(void)utimensat(db->dirfd, path, ts, 0);
			}
			goto reader;
		}
		pthread_mutex_lock(&db->idx.lock);
		sc_unref(mem);
		pthread_mutex_unlock(&db->idx.lock);
		mem = NULL;
	}
	fd = openat(db->dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		if (rc == -ENOENT) {
			pthread_mutex_lock(&db->idx.lock);
			bool gone = !drp_cache_obj_indexed(o);
			pthread_mutex_unlock(&db->idx.lock);
			if (!gone)
				discard_corrupt(db, stats, o, "file missing");
		} else {
			drp_log_errno(DRP_LOG_WARNING, DRP_LOG_CACHE,
				      "cannot open %s/%s", db->dir, path);
			DRP_CACHE_STAT_ADD(stats, read_errors, 1);
		}
		goto err_unpin;
	}
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != inf.size) {
		discard_corrupt(db, stats, o, "size differs from the index");
		close(fd);
		rc = -ENOENT;
		goto err_unpin;
	}
	if (stamp) {
		/* Best effort: only orders eviction after a restart. */
		struct timespec ts[2] = {{.tv_sec = now, .tv_nsec = 0},
					 {.tv_nsec = UTIME_OMIT}};
		(void)futimens(fd, ts);
	}
	if (use && inf.size > 0 && inf.size <= SMALL_MAX) {
		mem = sc_load(db, o, fd, inf.size);
		if (mem != NULL) {
			close(fd);
			fd = -1;
		}
	}

reader:;
	drp_cache_reader_t *r = DRP_NEW(drp_cache_reader_t);
	r->obj = o;
	r->fd = fd;
	r->mem = mem;
	r->pos = offset;
	*reader = r;
	if (info)
		*info = inf;
	return 0;

err_unpin:
	pthread_mutex_lock(&db->idx.lock);
	drp_cache_index_unpin(&db->idx, o);
	pthread_mutex_unlock(&db->idx.lock);
	return rc;
}

static int fs_read_open(drp_cache_t *db, drp_cache_stats_t *stats,
			const char *digest, uint64_t offset,
			drp_cache_reader_t **reader, drp_cache_info_t *info)
{
	return open_reader(db, stats, digest, offset, reader, info, true);
}

static int fs_peek_open(drp_cache_t *db, drp_cache_stats_t *stats,
			const char *digest, uint64_t offset,
			drp_cache_reader_t **reader, drp_cache_info_t *info)
{
	return open_reader(db, stats, digest, offset, reader, info, false);
}

static ssize_t fs_read(drp_cache_t *db, drp_cache_stats_t *stats,
		       drp_cache_reader_t *r, void *buf, size_t len)
{
	/* obj->size is immutable: no lock needed. */
	uint64_t left = r->obj->size - r->pos;
	if (left == 0)
		return 0;
	if (len > left)
		len = (size_t)left;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if (r->mem != NULL) {
		memcpy(buf, r->mem->bytes + r->pos, len);
		r->pos += len;
		DRP_CACHE_STAT_ADD(stats, read_bytes, len);
		return (ssize_t)len;
	}
	ssize_t n;
	do
		n = pread(r->fd, buf, len, (off_t)r->pos);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		int err = errno;
		drp_log_errno(DRP_LOG_WARNING, DRP_LOG_CACHE, "read %s",
			      db->dir);
		DRP_CACHE_STAT_ADD(stats, read_errors, 1);
		return -err;
	}
	if (n == 0) {
		discard_corrupt(db, stats, r->obj, "file shorter than indexed");
		return -EIO;
	}
	r->pos += (uint64_t)n;
	DRP_CACHE_STAT_ADD(stats, read_bytes, n);
	return n;
}

/* A mapping of read_map. With keep_mapped, windows are KEEP_WIN-aligned
 * and stay mapped after their last user is done, on the object's list and
 * the recency list, at most km_max bytes in all (least recently used
 * first out): the next request for the object finds its page tables
 * filled and maps nothing. A kept window goes when its object leaves the
 * index (a remove, an eviction, a drop after damage found): a copy stored
 * again is a new file, whose windows are mapped afresh. */
#define KEEP_WIN (4 * 1024 * 1024)

struct fs_map {
	void *base;
	size_t len;
	uint64_t off;		      /* file offset of base */
	drp_cache_obj_t *obj;	      /* kept for it; NULL: not kept */
	struct fs_map *next;	      /* the object's kept windows */
	struct fs_map *newer, *older; /* recency list (idx.lock) */
	unsigned refs;		      /* the cache's while kept, users' */
	bool shared;		      /* ever kept: refs under idx.lock */
};

/* [idx.lock] Take a kept window off its object and the recency list,
 * dropping the cache's reference; the last reference queues it on
 * *unmap (munmap after unlocking: it can take a while). */
static void km_detach(drp_cache_t *db, struct fs_map *m, struct fs_map **unmap)
{
	struct fs_map **pp = (struct fs_map **)&m->obj->maps;
	while (*pp != m)
		pp = &(*pp)->next;
	*pp = m->next;
	if (m->newer)
		m->newer->older = m->older;
	else
		db->km_newest = m->older;
	if (m->older)
		m->older->newer = m->newer;
	else
		db->km_oldest = m->newer;
	m->newer = m->older = m->next = NULL;
	m->obj = NULL;
	db->km_bytes -= m->len;
	if (--m->refs == 0) {
		m->next = *unmap;
		*unmap = m;
	}
}

/* [idx.lock] Every kept window of o. */
static void km_detach_obj(drp_cache_t *db, drp_cache_obj_t *o,
			  struct fs_map **unmap)
{
	while (o->maps != NULL)
		km_detach(db, o->maps, unmap);
}

/* [idx.lock] At most max bytes kept. */
static void km_trim(drp_cache_t *db, uint64_t max, struct fs_map **unmap)
{
	while (db->km_bytes > max && db->km_oldest != NULL)
		km_detach(db, db->km_oldest, unmap);
}

static void km_unmap_list(struct fs_map *m)
{
	while (m != NULL) {
		struct fs_map *next = m->next;
		munmap(m->base, m->len);
		free(m);
		m = next;
	}
}

size_t drp_cache_fs_keep_mapped(drp_cache_t *db, uint64_t max, uint64_t *bytes,
				uint64_t *maps)
{
	struct fs_map *unmap = NULL;
	size_t n = 0;
	pthread_mutex_lock(&db->idx.lock);
	if (max != UINT64_MAX) {
		db->km_max = max;
		km_trim(db, max, &unmap);
	}
	for (struct fs_map *m = db->km_newest; m != NULL; m = m->older)
		n++;
	if (bytes)
		*bytes = db->km_bytes;
	if (maps)
		*maps = __atomic_load_n(&db->km_maps, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&db->idx.lock);
	km_unmap_list(unmap);
	return n;
}

/* [idx.lock] o's kept window at off, or NULL. */
static struct fs_map *km_find(drp_cache_obj_t *o, uint64_t off)
{
	for (struct fs_map *m = o->maps; m != NULL; m = m->next)
		if (m->off == off)
			return m;
	return NULL;
}

/* [idx.lock] Keep m for o, as the most recently used, unless o left the
 * index, has a window there already, or m alone is more than the cap. */
static void km_keep(drp_cache_t *db, drp_cache_obj_t *o, struct fs_map *m,
		    struct fs_map **unmap)
{
	if (m->len > db->km_max || !drp_cache_obj_indexed(o) ||
	    km_find(o, m->off) != NULL)
		return;
	m->obj = o;
	m->shared = true;
	m->refs++;
	m->next = o->maps;
	o->maps = m;
	m->older = db->km_newest;
	if (db->km_newest)
		db->km_newest->newer = m;
	else
		db->km_oldest = m;
	db->km_newest = m;
	db->km_bytes += m->len;
	km_trim(db, db->km_max, unmap);
}

static ssize_t fs_read_map(drp_cache_t *db, drp_cache_stats_t *stats,
			   drp_cache_reader_t *r, size_t len, const void **data,
			   void **handle)
{
	static long page;
	if (page == 0)
		page = sysconf(_SC_PAGESIZE);
	uint64_t left = r->obj->size - r->pos;
	if (left == 0)
		return 0;
	if (len > left)
		len = (size_t)left;
	if (r->mem != NULL)
		return -EOPNOTSUPP; /* in memory: read copies it */
	/* A file shorter than indexed faults where read() would come up
	 * short: found here instead, with the same verdict. */
	struct stat st;
	if (fstat(r->fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < r->pos + len) {
		discard_corrupt(db, stats, r->obj, "file shorter than indexed");
		return -EIO;
	}
	/* Kept windows: the one holding pos, whole (the next read_map of
	 * this reader finds the next one). */
	drp_cache_obj_t *o = r->obj;
	struct fs_map *m = NULL;
	pthread_mutex_lock(&db->idx.lock);
	bool keep = db->km_max > 0;
	uint64_t start = r->pos - r->pos % (uint64_t)page;
	if (keep) {
		start = r->pos - r->pos % KEEP_WIN;
		m = km_find(o, start);
		if (m != NULL) {
			m->refs++;
			if (m->newer != NULL) { /* most recently used */
				m->newer->older = m->older;
				if (m->older)
					m->older->newer = m->newer;
				else
					db->km_oldest = m->newer;
				m->older = db->km_newest;
				m->newer = NULL;
				db->km_newest->newer = m;
				db->km_newest = m;
			}
		}
	}
	pthread_mutex_unlock(&db->idx.lock);
	size_t mlen = (size_t)(r->pos - start) + len;
	if (keep) {
		uint64_t wend = start + KEEP_WIN;
		if (wend > o->size)
			wend = o->size;
		mlen = (size_t)(wend - start);
		if (len > wend - r->pos)
			len = (size_t)(wend - r->pos);
	}
	if (m == NULL) {
		void *base =
			mmap(NULL, mlen, PROT_READ, MAP_SHARED | MAP_POPULATE,
			     r->fd, (off_t)start);
		if (base == MAP_FAILED)
			return -errno;
		__atomic_fetch_add(&db->km_maps, 1, __ATOMIC_RELAXED);
		m = DRP_NEW(struct fs_map);
		m->base = base;
		m->len = mlen;
		m->off = start;
		m->refs = 1;
		if (keep) {
			struct fs_map *unmap = NULL;
			pthread_mutex_lock(&db->idx.lock);
			km_keep(db, o, m, &unmap);
			pthread_mutex_unlock(&db->idx.lock);
			km_unmap_list(unmap);
		}
	}
	*data = (const char *)m->base + (r->pos - m->off);
	*handle = m;
	r->pos += len;
	DRP_CACHE_STAT_ADD(stats, read_bytes, len);
	return (ssize_t)len;
}

static void fs_read_unmap(drp_cache_t *db, void *handle)
{
	struct fs_map *m = handle;
	if (m == NULL)
		return;
	if (m->shared) { /* kept once: others may hold it */
		pthread_mutex_lock(&db->idx.lock);
		bool last = --m->refs == 0;
		pthread_mutex_unlock(&db->idx.lock);
		if (!last)
			return;
	}
	munmap(m->base, m->len);
	free(m);
}

static void fs_read_close(drp_cache_t *db, drp_cache_stats_t *stats,
			  drp_cache_reader_t *r)
{
	if (r->fd >= 0)
		close(r->fd);
	pthread_mutex_lock(&db->idx.lock);
	if (r->mem != NULL)
		sc_unref(r->mem);
	drp_cache_index_unpin(&db->idx, r->obj);
	pthread_mutex_unlock(&db->idx.lock);
	free(r);
}

/* Map a storage errno to the writer's verdict; a full disk or a
 * read-only filesystem pauses caching for nospace_retry seconds (logged
 * once per episode, not once per object). */
static int storage_error(drp_cache_t *db, int err, const char *what)
{
	if (err == ENOSPC || err == EDQUOT || err == EROFS) {
		pthread_mutex_lock(&db->idx.lock);
		bool first = !db->nospace_logged;
		db->nospace_logged = true;
		db->nospace_until =
			pause_now_ms() + (int64_t)db->nospace_retry * 1000;
		pthread_mutex_unlock(&db->idx.lock);
		if (first)
			drp_log_warning(DRP_LOG_CACHE,
					"%s: %s: not caching for %u s (objects "
					"are still served and proxied)",
					db->dir, strerror(err),
					db->nospace_retry);
		return err == EROFS ? -EIO : -ENOSPC;
	}
	drp_log_warning(DRP_LOG_CACHE, "%s: %s: %s", db->dir, what,
			strerror(err));
	return -EIO;
}

static int write_full(drp_cache_t *db, int fd, const void *buf, size_t len)
{
	const char *p = buf;
	if (__atomic_load_n(&db->inject_count, __ATOMIC_RELAXED)) {
		pthread_mutex_lock(&db->idx.lock);
		int err = db->inject_count ? db->inject_err : 0;
		if (err)
			db->inject_count--;
		pthread_mutex_unlock(&db->idx.lock);
		if (err) {
			errno = err;
			return -1;
		}
	}
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Count why an object could not be stored. */
static void count_refusal(drp_cache_stats_t *stats, int err)
{
	if (err == -EFBIG)
		DRP_CACHE_STAT_ADD(stats, too_big, 1);
	else if (err == -ENOSPC)
		DRP_CACHE_STAT_ADD(stats, no_space, 1);
	else
		DRP_CACHE_STAT_ADD(stats, write_errors, 1);
}

/* Stop storing; keep hashing so commit can still judge the bytes. */
static void uncommittable(drp_cache_t *db, drp_cache_stats_t *stats,
			  drp_cache_writer_t *w, int err)
{
	if (w->fd >= 0) {
		close(w->fd);
		w->fd = -1;
	}
	if (w->tmp[0]) {
		unlinkat(db->dirfd, w->tmp, 0);
		w->tmp[0] = '\0';
	}
	pthread_mutex_lock(&db->idx.lock);
	drp_cache_index_release(&db->idx, &w->reserved);
	pthread_mutex_unlock(&db->idx.lock);
	w->err = err;
	count_refusal(stats, err);
}

static int fs_write_begin(drp_cache_t *db, drp_cache_stats_t *stats,
			  const char *digest, uint64_t expected_len,
			  drp_cache_writer_t **writer)
{
	uint8_t d[DRP_DIGEST_LEN];
	struct grave g = {.db = db};
	if (drp_digest_parse(digest, d) < 0)
		return -EINVAL;
	drp_cache_writer_t *w = DRP_NEW(drp_cache_writer_t);
	memcpy(w->digest, d, DRP_DIGEST_LEN);
	w->fd = -1;
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
	if (pause_now_ms() < db->nospace_until)
		rc = -ENOSPC;
	else if (expected_len != DRP_CACHE_LEN_UNKNOWN)
		rc = drp_cache_index_reserve(&db->idx, &w->reserved,
					     expected_len, grave_add_cb, &g,
					     stats);
	pthread_mutex_unlock(&db->idx.lock);
	grave_flush(&g);

	if (rc == 0) {
		snprintf(w->tmp, sizeof(w->tmp), "tmp/w%" PRIu64, next_seq(db));
		w->fd = openat(db->dirfd, w->tmp,
			       O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			       FILE_MODE);
		if (w->fd < 0) {
			w->tmp[0] = '\0';
			rc = storage_error(db, errno, "create temp file");
		}
	}
	if (rc < 0)
		uncommittable(db, stats, w, rc);
	*writer = w;
	return 0;
}

static int fs_write(drp_cache_t *db, drp_cache_stats_t *stats,
		    drp_cache_writer_t *w, const void *buf, size_t len)
{
	if (drp_digest_update(&w->hash, buf, len) < 0)
		return -EIO;
	if (w->err == 0 && len > 0) {
		uint64_t need = w->written + len;
		int rc = 0;
		if (need < w->written) {
			rc = -EFBIG;
		} else if (need > w->reserved) {
			struct grave g = {.db = db};
			pthread_mutex_lock(&db->idx.lock);
			rc = drp_cache_index_reserve(&db->idx, &w->reserved,
						     need, grave_add_cb, &g,
						     stats);
			pthread_mutex_unlock(&db->idx.lock);
			grave_flush(&g);
		}
		if (rc == 0 && write_full(db, w->fd, buf, len) < 0)
			rc = storage_error(db, errno, "write");
		if (rc < 0)
			uncommittable(db, stats, w, rc);
	}
	w->written += len;
	DRP_CACHE_STAT_ADD(stats, write_bytes, len);
	return 0;
}

static void writer_free(drp_cache_t *db, drp_cache_writer_t *w)
{
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp[0])
		unlinkat(db->dirfd, w->tmp, 0);
	drp_digest_abort(&w->hash);
	pthread_mutex_lock(&db->idx.lock);
	drp_cache_index_release(&db->idx, &w->reserved);
	drp_cache_index_writers(&db->idx, -1);
	pthread_mutex_unlock(&db->idx.lock);
	free(w);
}

/*
 * Move the synced file tmp (a name under tmp/) into place as object d of
 * len bytes and index it; under the index lock, so that an object is
 * indexed iff its file is in place. Releases *reserved; tmp is renamed or
 * unlinked (and cleared) in every case. 0 stored, 1 already stored (tmp
 * dropped), or -errno.
 */
static int publish(drp_cache_t *db, drp_cache_stats_t *stats,
		   const uint8_t d[DRP_DIGEST_LEN], char *tmp, uint64_t len,
		   uint64_t *reserved)
{
	char path[128], parent[128];
	blob_path(path, sizeof(path), d);
	pthread_mutex_lock(&db->idx.lock);
	bool dup = drp_cache_index_find(&db->idx, d) != NULL;
	int rc = dup ? 0 : rename_mkdir(db->dirfd, tmp, path);
	bool resumed = false;
	if (!dup && rc == 0) {
		tmp[0] = '\0';
		int64_t now = now_s();
		drp_cache_obj_t *o = drp_cache_obj_new(d, len, now);
		o->stamp = now;
		drp_cache_index_insert(&db->idx, o);
		resumed = db->nospace_logged &&
			  pause_now_ms() >= db->nospace_until;
		if (resumed)
			db->nospace_logged = false;
	}
	drp_cache_index_release(&db->idx, reserved);
	pthread_mutex_unlock(&db->idx.lock);
	if (tmp[0]) {
		unlinkat(db->dirfd, tmp, 0);
		tmp[0] = '\0';
	}
	if (dup) {
		DRP_CACHE_STAT_ADD(stats, commit_dups, 1);
		return 1;
	}
	if (rc < 0) {
		DRP_CACHE_STAT_ADD(stats, write_errors, 1);
		return storage_error(db, -rc, "rename into place");
	}
	/* Make the rename durable (a crash before this loses the object,
	 * never half of it). */
	parent_of(parent, sizeof(parent), path);
	fsync_dir(db, parent);
	if (resumed)
		drp_log_notice(DRP_LOG_CACHE, "%s: caching resumed", db->dir);
	DRP_CACHE_STAT_ADD(stats, commits, 1);
	return 0;
}

static int fs_commit(drp_cache_t *db, drp_cache_stats_t *stats,
		     drp_cache_writer_t *w)
{
	int rc = drp_digest_final_check(&w->hash, w->digest);
	if (rc < 0) {
		char dg[DRP_DIGEST_STRSIZE];
		drp_digest_format(w->digest, dg);
		drp_log_notice(DRP_LOG_CACHE,
			       "%s: content does not match its digest (%" PRIu64
			       " bytes), discarded",
			       dg, w->written);
		DRP_CACHE_STAT_ADD(stats, digest_mismatches, 1);
		writer_free(db, w);
		return rc;
	}
	if (w->err == 0 && fsync(w->fd) < 0)
		uncommittable(db, stats, w, storage_error(db, errno, "fsync"));
	if (w->err == 0) {
		int fd = w->fd;
		w->fd = -1;
		if (close(fd) < 0)
			uncommittable(db, stats, w,
				      storage_error(db, errno, "close"));
	}
	if (w->err < 0) {
		rc = w->err;
		writer_free(db, w);
		return rc;
	}

	rc = publish(db, stats, w->digest, w->tmp, w->written, &w->reserved);
	writer_free(db, w);
	return rc > 0 ? 0 : rc;
}

static void fs_abort(drp_cache_t *db, drp_cache_stats_t *stats,
		     drp_cache_writer_t *w)
{
	DRP_CACHE_STAT_ADD(stats, aborts, 1);
	writer_free(db, w);
}

static int fs_spool_open(drp_cache_t *db, drp_cache_stats_t *stats)
{
	pthread_mutex_lock(&db->idx.lock);
	bool paused = pause_now_ms() < db->nospace_until;
	pthread_mutex_unlock(&db->idx.lock);
	if (paused)
		return -ENOSPC;
	int fd = openat(db->dirfd, "tmp", O_TMPFILE | O_RDWR | O_CLOEXEC,
			FILE_MODE);
	if (fd >= 0)
		return fd;
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return storage_error(db, errno, "open spool file");
	/* No O_TMPFILE here: a named file, unlinked at once (adopt then
	 * copies it). */
	char tmp[32];
	snprintf(tmp, sizeof(tmp), "tmp/s%" PRIu64, next_seq(db));
	fd = openat(db->dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
		    FILE_MODE);
	if (fd < 0)
		return storage_error(db, errno, "open spool file");
	unlinkat(db->dirfd, tmp, 0);
	return fd;
}

/* Copy bytes [0, len) of src into the new file dst (for adopt). */
static int copy_file(drp_cache_t *db, int src, int dst, uint64_t len)
{
	loff_t in = 0, out = 0;
	while ((uint64_t)in < len) {
		size_t want = len - (uint64_t)in > (1u << 30)
				      ? (1u << 30)
				      : (size_t)(len - (uint64_t)in);
		ssize_t n = copy_file_range(src, &in, dst, &out, want, 0);
		if (n > 0)
			continue;
		if (n == 0) {
			errno = EIO; /* the file is shorter than len */
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno != EXDEV && errno != ENOSYS && errno != EINVAL &&
		    errno != EOPNOTSUPP)
			return -1;
		/* No in-kernel copy between these files: read and write. */
		enum { COPY_BUF = 256 * 1024 };
		char *buf = drp_malloc(COPY_BUF);
		int rc = 0;
		while ((uint64_t)in < len && rc == 0) {
			size_t w = len - (uint64_t)in > COPY_BUF
					   ? COPY_BUF
					   : (size_t)(len - (uint64_t)in);
			ssize_t r = pread(src, buf, w, in);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				if (r == 0)
					errno = EIO;
				rc = -1;
			} else if (write_full(db, dst, buf, (size_t)r) < 0) {
				rc = -1;
			} else {
				in += r;
			}
		}
		int saved = errno;
		free(buf);
		errno = saved;
		return rc;
	}
	return 0;
}

/* Give the caller's file a name in tmp/: a link of the file itself when
 * it is an unnamed file on our filesystem (from spool_open), else a
 * synced copy. The name is written to tmp (capacity 32). */
static int adopt_name(drp_cache_t *db, int fd, uint64_t len, char *tmp)
{
	snprintf(tmp, 32, "tmp/a%" PRIu64, next_seq(db));
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (fsync(fd) == 0 &&
	    linkat(AT_FDCWD, proc, db->dirfd, tmp, AT_SYMLINK_FOLLOW) == 0) {
		/* The spool may have grown past len (it never does in the
		 * core); the object is exactly len bytes. */
		struct stat st;
		if (fstat(fd, &st) == 0 && (uint64_t)st.st_size == len)
			return 0;
		unlinkat(db->dirfd, tmp, 0);
	}
	int out = openat(db->dirfd, tmp,
			 O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, FILE_MODE);
	if (out < 0)
		return storage_error(db, errno, "create temp file");
	int rc = 0;
	if (copy_file(db, fd, out, len) < 0)
		rc = storage_error(db, errno, "copy into the cache");
	else if (fsync(out) < 0)
		rc = storage_error(db, errno, "fsync");
	if (close(out) < 0 && rc == 0)
		rc = storage_error(db, errno, "close");
	if (rc < 0)
		unlinkat(db->dirfd, tmp, 0);
	return rc;
}

static int fs_adopt(drp_cache_t *db, drp_cache_stats_t *stats,
		    const char *digest, int fd, uint64_t len)
{
	uint8_t d[DRP_DIGEST_LEN];
	char tmp[32];
	uint64_t reserved = 0;
	struct grave g = {.db = db};
	if (drp_digest_parse(digest, d) < 0 || fd < 0)
		return -EINVAL;

	pthread_mutex_lock(&db->idx.lock);
	int rc = 0;
	if (drp_cache_index_find(&db->idx, d))
		rc = -EEXIST;
	else if (pause_now_ms() < db->nospace_until)
		rc = -ENOSPC;
	else
		rc = drp_cache_index_reserve(&db->idx, &reserved, len,
					     grave_add_cb, &g, stats);
	pthread_mutex_unlock(&db->idx.lock);
	grave_flush(&g);
	if (rc == -EEXIST) {
		DRP_CACHE_STAT_ADD(stats, commit_dups, 1);
		return 0;
	}
	if (rc == 0)
		rc = adopt_name(db, fd, len, tmp);
	if (rc < 0) {
		pthread_mutex_lock(&db->idx.lock);
		drp_cache_index_release(&db->idx, &reserved);
		pthread_mutex_unlock(&db->idx.lock);
		count_refusal(stats, rc);
		return rc;
	}

	rc = publish(db, stats, d, tmp, len, &reserved);
	if (rc == 0)
		DRP_CACHE_STAT_ADD(stats, write_bytes, len);
	return rc > 0 ? 0 : rc;
}

static int fs_remove(drp_cache_t *db, drp_cache_stats_t *stats,
		     const char *digest)
{
	uint8_t d[DRP_DIGEST_LEN];
	struct grave g = {.db = db};
	if (drp_digest_parse(digest, d) < 0)
		return -EINVAL;
	pthread_rwlock_rdlock(&db->behind_lock);
	pthread_mutex_lock(&db->idx.lock);
	drp_cache_obj_t *o = drp_cache_index_find(&db->idx, d);
	if (o)
		drop_obj(db, o, &g);
	pthread_mutex_unlock(&db->idx.lock);
	if (o)
		drop_finish(db, d, &g);
	pthread_rwlock_unlock(&db->behind_lock);
	if (o == NULL)
		return -ENOENT;
	DRP_CACHE_STAT_ADD(stats, removals, 1);
	return 0;
}

static int fs_iterate(drp_cache_t *db, drp_cache_stats_t *stats,
		      drp_cache_iter_cb cb, void *arg)
{
	return drp_cache_index_iterate(&db->idx, cb, arg);
}

static void fs_stats(drp_cache_t *db, drp_cache_stats_t *stats)
{
	drp_cache_index_stats(&db->idx, stats);
}

static bool meta_len_ok(size_t keylen, size_t vallen)
{
	return keylen > 0 && keylen <= DRP_CACHE_KEY_MAX &&
	       vallen <= DRP_CACHE_META_MAX;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* Write a record file: a temp file renamed into place. */
static int meta_write(drp_cache_t *db, const uint8_t name[DRP_DIGEST_LEN],
		      const void *key, size_t keylen, const void *val,
		      size_t vallen)
{
	char path[128], tmp[32];
	uint8_t hdr[META_HDR] = {0};
	int rc = 0;
	meta_path(path, sizeof(path), name);
	memcpy(hdr, META_MAGIC, 4);
	hdr[4] = 1;
	put_le32(hdr + 8, (uint32_t)keylen);
	put_le32(hdr + 12, (uint32_t)vallen);

	snprintf(tmp, sizeof(tmp), "tmp/m%" PRIu64, next_seq(db));
	int fd = openat(db->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			FILE_MODE);
	if (fd < 0)
		return storage_error(db, errno, "create meta temp file");
	struct iovec iov[3] = {{hdr, META_HDR},
			       {(void *)(uintptr_t)key, keylen},
			       {(void *)(uintptr_t)val, vallen}};
	size_t total = META_HDR + keylen + vallen;
	ssize_t n = pwritev(fd, iov, 3, 0);
	/* A short write of <= 81 KiB to a fresh regular file means the disk
	 * is full; no need to loop. */
	if (n < 0 || (size_t)n != total)
		rc = storage_error(db, n < 0 ? errno : ENOSPC, "write meta");
	if (close(fd) < 0 && rc == 0)
		rc = storage_error(db, errno, "close meta");
	if (rc == 0) {
		rc = rename_mkdir(db->dirfd, tmp, path);
		if (rc < 0)
			rc = storage_error(db, -rc, "rename meta");
	}
	if (rc < 0)
		unlinkat(db->dirfd, tmp, 0);
	return rc;
}

static int meta_unlink(drp_cache_t *db, const uint8_t name[DRP_DIGEST_LEN])
{
	char path[128];
	meta_path(path, sizeof(path), name);
	if (unlinkat(db->dirfd, path, 0) < 0)
		return errno == ENOENT ? -ENOENT : -EIO;
	return 0;
}

/* ---- read cache ---- */

static unsigned mcache_bucket(const uint8_t name[DRP_DIGEST_LEN])
{
	return ((unsigned)name[0] | (unsigned)name[1] << 8) %
	       META_CACHE_BUCKETS;
}

/* [meta_lock] */
static meta_cached_t *mcache_find(drp_cache_t *db,
				  const uint8_t name[DRP_DIGEST_LEN])
{
	meta_cached_t *c = db->mcache[mcache_bucket(name)];
	while (c != NULL && memcmp(c->name, name, DRP_DIGEST_LEN) != 0)
		c = c->next;
	return c;
}

/* [meta_lock] Out of the recency list. */
static void mcache_unlist(drp_cache_t *db, meta_cached_t *c)
{
	if (c->newer)
		c->newer->older = c->older;
	else
		db->mc_newest = c->older;
	if (c->older)
		c->older->newer = c->newer;
	else
		db->mc_oldest = c->newer;
}

/* [meta_lock] Out of the table. */
static void mcache_unlink(drp_cache_t *db, meta_cached_t *c)
{
	meta_cached_t **p = &db->mcache[mcache_bucket(c->name)];
	while (*p != c)
		p = &(*p)->next;
	*p = c->next;
	mcache_unlist(db, c);
	db->mc_count--;
}

/* [meta_lock] */
static void mcache_push(drp_cache_t *db, meta_cached_t *c)
{
	c->newer = NULL;
	c->older = db->mc_newest;
	if (db->mc_newest)
		db->mc_newest->newer = c;
	else
		db->mc_oldest = c;
	db->mc_newest = c;
}

/* [meta_lock] Keep at most max records. */
static void mcache_trim(drp_cache_t *db, size_t max)
{
	while (db->mc_count > max) {
		meta_cached_t *c = db->mc_oldest;
		mcache_unlink(db, c);
		free(c);
	}
}

/* [meta_lock] Forget file name's record: a put or delete is changing
 * it. Also makes the reads in progress keep nothing they read. */
static void mcache_drop(drp_cache_t *db, const uint8_t name[DRP_DIGEST_LEN])
{
	db->meta_rgen++;
	meta_cached_t *c = mcache_find(db, name);
	if (c != NULL) {
		mcache_unlink(db, c);
		free(c);
	}
}

static void mcache_drop_locked(drp_cache_t *db,
			       const uint8_t name[DRP_DIGEST_LEN])
{
	pthread_mutex_lock(&db->meta_lock);
	mcache_drop(db, name);
	pthread_mutex_unlock(&db->meta_lock);
}

/* Keep what a read found on disk, unless a put or delete came since
 * the read began (rgen). */
static void mcache_keep(drp_cache_t *db, const uint8_t name[DRP_DIGEST_LEN],
			uint64_t rgen, const void *key, size_t keylen,
			const void *val, size_t vallen)
{
	if (keylen + vallen > META_CACHE_REC)
		return;
	meta_cached_t *c = drp_malloc(sizeof(*c) + keylen + vallen);
	memcpy(c->name, name, DRP_DIGEST_LEN);
	c->keylen = keylen;
	c->vallen = vallen;
	memcpy(c->data, key, keylen);
	if (vallen)
		memcpy(c->data + keylen, val, vallen);
	pthread_mutex_lock(&db->meta_lock);
	if (db->meta_rgen != rgen || db->mc_max == 0 ||
	    mcache_find(db, name) != NULL) {
		pthread_mutex_unlock(&db->meta_lock);
		free(c);
		return;
	}
	meta_cached_t **b = &db->mcache[mcache_bucket(name)];
	c->next = *b;
	*b = c;
	mcache_push(db, c);
	db->mc_count++;
	mcache_trim(db, db->mc_max);
	pthread_mutex_unlock(&db->meta_lock);
}

/* [meta_lock] meta_get from a kept record (the most recent read now). */
static int mcache_get(drp_cache_t *db, meta_cached_t *c, const void *key,
		      size_t keylen, void *buf, size_t *vallen)
{
	if (c->keylen != keylen || memcmp(c->data, key, keylen) != 0)
		return -ENOENT;
	if (c->vallen > *vallen) {
		*vallen = c->vallen;
		return -ERANGE;
	}
	if (c->vallen)
		memcpy(buf, c->data + keylen, c->vallen);
	*vallen = c->vallen;
	if (db->mc_newest != c) {
		mcache_unlist(db, c);
		mcache_push(db, c);
	}
	return 0;
}

size_t drp_cache_fs_meta_cached(drp_cache_t *db, size_t max, uint64_t *reads)
{
	pthread_mutex_lock(&db->meta_lock);
	if (max != SIZE_MAX) {
		db->mc_max = max;
		mcache_trim(db, max);
	}
	size_t n = db->mc_count;
	if (reads)
		*reads = db->meta_reads;
	pthread_mutex_unlock(&db->meta_lock);
	return n;
}

/* ---- write-behind ---- */

/* [meta_lock] The pending record of file name, or NULL. */
static meta_pending_t *pending_find(drp_cache_t *db,
				    const uint8_t name[DRP_DIGEST_LEN])
{
	meta_pending_t *e = db->pending[name[0] % META_BUCKETS];
	while (e != NULL && memcmp(e->name, name, DRP_DIGEST_LEN) != 0)
		e = e->next;
	return e;
}

/* [meta_lock] A new pending record for file name (the caller queues its
 * job once the lock is released). */
static meta_pending_t *pending_add(drp_cache_t *db,
				   const uint8_t name[DRP_DIGEST_LEN])
{
	meta_pending_t *e = DRP_NEW(meta_pending_t);
	e->db = db;
	memcpy(e->name, name, DRP_DIGEST_LEN);
	meta_pending_t **b = &db->pending[name[0] % META_BUCKETS];
	e->next = *b;
	*b = e;
	return e;
}

/* [meta_lock] Drop e from the table. */
static void pending_remove(drp_cache_t *db, meta_pending_t *e)
{
	meta_pending_t **p = &db->pending[e->name[0] % META_BUCKETS];
	while (*p != e)
		p = &(*p)->next;
	*p = e->next;
}

/* [meta_lock] Make a put of key -> val the newest of e. */
static void pending_set(meta_pending_t *e, const void *key, size_t keylen,
			const void *val, size_t vallen)
{
	free(e->key);
	free(e->val);
	e->key = drp_malloc(keylen);
	memcpy(e->key, key, keylen);
	e->keylen = keylen;
	e->val = drp_malloc(vallen ? vallen : 1);
	memcpy(e->val, val, vallen);
	e->vallen = vallen;
	e->del = false;
	e->gen++;
}

/* [meta_lock] Give e to a job unless one has it: true if the caller
 * must queue meta_job(e) (after unlocking). */
static bool pending_claim(drp_cache_t *db, meta_pending_t *e)
{
	if (e->queued)
		return false;
	e->queued = true;
	if (e->failed) {
		e->failed = false;
		db->meta_failed--;
	}
	return true;
}

/* [meta_lock] Is a retry of the failed records due? Then the caller
 * queues meta_retry_job (after unlocking). Only ops ask (not the
 * queue's own jobs), so a disk that keeps failing costs one retry per
 * op at most, and one per nospace_retry seconds by default. */
static bool retry_due(drp_cache_t *db)
{
	if (db->meta_failed == 0 || db->meta_retry_queued ||
	    now_s() < db->meta_retry_at)
		return false;
	db->meta_retry_queued = true;
	return true;
}

/*
 * Write e's newest put or delete (again, if a newer one came meanwhile)
 * and drop it from the table; if the write failed, keep it, failed, for
 * a retry: reads keep finding it in memory (never the older record the
 * disk may still hold), until there are META_FAILED_MAX such records and
 * it is dropped. The caller claimed e (pending_claim). 0, or the error;
 * *kept: e is still in the table (failed).
 */
static int meta_flush(meta_pending_t *e, bool *kept)
{
	drp_cache_t *db = e->db;
	uint64_t gen;
	int rc;
	pthread_mutex_lock(&db->meta_lock);
	do {
		gen = e->gen;
		bool del = e->del;
		uint8_t *copy = NULL;
		size_t kl = e->keylen, vl = e->vallen;
		if (!del) {
			copy = drp_malloc(kl + vl);
			memcpy(copy, e->key, kl);
			memcpy(copy + kl, e->val, vl);
		}
		pthread_mutex_unlock(&db->meta_lock);
		if (del)
			rc = meta_unlink(db, e->name);
		else
			rc = meta_write(db, e->name, copy, kl, copy + kl, vl);
		if (del && rc == -ENOENT)
			rc = 0;
		free(copy);
		pthread_mutex_lock(&db->meta_lock);
	} while (e->gen != gen);
	bool drop = rc == 0 || db->meta_failed >= META_FAILED_MAX;
	if (drop) {
		pending_remove(db, e);
	} else {
		e->queued = false;
		e->failed = true;
		db->meta_failed++;
		db->meta_retry_at = now_s() + db->nospace_retry;
	}
	unsigned failed = db->meta_failed;
	pthread_mutex_unlock(&db->meta_lock);
	*kept = !drop;
	if (rc < 0 && drop)
		drp_log_err(DRP_LOG_CACHE,
			    "%s: a metadata record could not be written (%s), "
			    "with %u others waiting: dropped",
			    db->dir, strerror(-rc), failed);
	if (drop)
		pending_free(e);
	return rc;
}

/* The queue's job for one record. */
static void meta_job(void *arg)
{
	bool kept;
	(void)meta_flush(arg, &kept);
}

/* The queue's job that writes the failed records again; the first that
 * fails again puts the rest back untried (the disk is still full). */
static void meta_retry_job(void *arg)
{
	drp_cache_t *db = arg;
	meta_pending_t *list = NULL;
	pthread_mutex_lock(&db->meta_lock);
	for (unsigned b = 0; b < META_BUCKETS; b++) {
		for (meta_pending_t *e = db->pending[b]; e; e = e->next) {
			if (!e->failed)
				continue;
			pending_claim(db, e);
			e->retry = list;
			list = e;
		}
	}
	db->meta_retry_queued = false;
	pthread_mutex_unlock(&db->meta_lock);
	while (list != NULL) {
		meta_pending_t *e = list;
		list = e->retry;
		bool kept;
		if (meta_flush(e, &kept) < 0)
			break;
	}
	pthread_mutex_lock(&db->meta_lock);
	for (; list != NULL; list = list->retry) {
		list->queued = false;
		list->failed = true;
		db->meta_failed++;
	}
	pthread_mutex_unlock(&db->meta_lock);
}

/* At close (the queue ran dry): one last try for the records kept after
 * a failed write; what still fails is dropped, logged. */
static void pending_flush_all(drp_cache_t *db)
{
	unsigned lost = 0;
	for (unsigned b = 0; b < META_BUCKETS; b++) {
		for (;;) {
			pthread_mutex_lock(&db->meta_lock);
			meta_pending_t *e = db->pending[b];
			if (e != NULL)
				pending_claim(db, e);
			pthread_mutex_unlock(&db->meta_lock);
			if (e == NULL)
				break;
			bool kept;
			if (meta_flush(e, &kept) == 0 || !kept)
				continue;
			/* Kept (failed): drop it now. */
			pthread_mutex_lock(&db->meta_lock);
			pending_remove(db, e);
			db->meta_failed--;
			pthread_mutex_unlock(&db->meta_lock);
			pending_free(e);
			lost++;
		}
	}
	if (lost)
		drp_log_err(DRP_LOG_CACHE,
			    "%s: %u metadata record(s) could not be written: "
			    "lost",
			    db->dir, lost);
}

void drp_cache_fs_write_behind(drp_cache_t *db, drp_jobs_t *jobs)
{
	/* Waits for the ops between reading the queue and submitting. */
	pthread_rwlock_wrlock(&db->behind_lock);
	db->behind = jobs;
	pthread_rwlock_unlock(&db->behind_lock);
}

static int fs_meta_put(drp_cache_t *db, drp_cache_stats_t *stats,
		       const void *key, size_t keylen, const void *val,
		       size_t vallen)
{
	uint8_t name[DRP_DIGEST_LEN];
	if (!meta_len_ok(keylen, vallen))
		return -EINVAL;
	int rc = drp_digest_buf(key, keylen, name);
	if (rc < 0)
		return rc;
	pthread_rwlock_rdlock(&db->behind_lock);
	drp_jobs_t *q = db->behind;
	pthread_mutex_lock(&db->meta_lock);
	mcache_drop(db, name);
	meta_pending_t *e = pending_find(db, name);
	if (e == NULL && q == NULL) {
		pthread_mutex_unlock(&db->meta_lock);
		rc = meta_write(db, name, key, keylen, val, vallen);
		/* A read that began in between may have kept the old one. */
		mcache_drop_locked(db, name);
	} else {
		/* Written behind; or, with write-behind ended, over a record
		 * still in memory: its job (the queue runs dry) writes the
		 * newest, or, without one, this op does. */
		if (e == NULL)
			e = pending_add(db, name);
		pending_set(e, key, keylen, val, vallen);
		bool mine = pending_claim(db, e);
		bool retry = q != NULL && retry_due(db);
		pthread_mutex_unlock(&db->meta_lock);
		bool kept;
		if (mine && q == NULL)
			rc = meta_flush(e, &kept);
		else if (mine)
			drp_jobs_submit(q, meta_job, e);
		if (retry)
			drp_jobs_submit(q, meta_retry_job, db);
	}
	pthread_rwlock_unlock(&db->behind_lock);
	if (rc == 0)
		DRP_CACHE_STAT_ADD(stats, meta_puts, 1);
	return rc;
}

/* [meta_lock] meta_get from a pending record. */
static int pending_get(const meta_pending_t *e, const void *key, size_t keylen,
		       void *buf, size_t *vallen)
{
	/* A delete, or a different key with the same SHA-256: not ours. */
	if (e->del || e->keylen != keylen || memcmp(e->key, key, keylen) != 0)
		return -ENOENT;
	if (e->vallen > *vallen) {
		*vallen = e->vallen;
		return -ERANGE;
	}
	if (e->vallen)
		memcpy(buf, e->val, e->vallen);
	*vallen = e->vallen;
	return 0;
}

static int fs_meta_get(drp_cache_t *db, drp_cache_stats_t *stats,
		       const void *key, size_t keylen, void *buf,
		       size_t *vallen)
{
	char path[128];
	struct stat st;
	uint8_t *data = NULL;
	uint8_t name[DRP_DIGEST_LEN];
	if (!meta_len_ok(keylen, 0))
		return -EINVAL;
	int rc = drp_digest_buf(key, keylen, name);
	if (rc < 0)
		return rc;
	/* Records not on disk yet (write-behind) are in memory, and so are
	 * those read lately. */
	pthread_mutex_lock(&db->meta_lock);
	const meta_pending_t *e = pending_find(db, name);
	meta_cached_t *c = NULL;
	if (e != NULL)
		rc = pending_get(e, key, keylen, buf, vallen);
	else if ((c = mcache_find(db, name)) != NULL)
		rc = mcache_get(db, c, key, keylen, buf, vallen);
	uint64_t rgen = db->meta_rgen;
	db->meta_reads += e == NULL && c == NULL;
	pthread_mutex_unlock(&db->meta_lock);
	if (e != NULL || c != NULL)
		goto out_stats;
	meta_path(path, sizeof(path), name);
	int fd = openat(db->dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = errno == ENOENT ? -ENOENT : -EIO;
		goto out;
	}
	if (fstat(fd, &st) < 0 || st.st_size < META_HDR ||
	    st.st_size > META_HDR + DRP_CACHE_KEY_MAX + DRP_CACHE_META_MAX) {
		rc = -EBADMSG;
		goto out_close;
	}
	data = malloc((size_t)st.st_size);
	if (data == NULL) {
		rc = -ENOMEM;
		goto out_close;
	}
	ssize_t n = pread(fd, data, (size_t)st.st_size, 0);
	if (n != st.st_size || memcmp(data, META_MAGIC, 4) != 0 ||
	    data[4] != 1) {
		rc = -EBADMSG;
		goto out_close;
	}
	uint32_t kl = get_le32(data + 8), vl = get_le32(data + 12);
	if ((uint64_t)META_HDR + kl + vl != (uint64_t)st.st_size) {
		rc = -EBADMSG;
		goto out_close;
	}
	if (kl != keylen || memcmp(data + META_HDR, key, keylen) != 0) {
		/* A different key with the same SHA-256: not ours. */
		rc = -ENOENT;
		goto out_close;
	}
	if (vl > *vallen) {
		*vallen = vl;
		rc = -ERANGE;
		goto out_close;
	}
	if (vl)
		memcpy(buf, data + META_HDR + kl, vl);
	*vallen = vl;
	mcache_keep(db, name, rgen, key, keylen, data + META_HDR + kl, vl);
out_close:
	free(data);
	close(fd);
out:
	if (rc == -EBADMSG) {
		/* Only a power cut after an unsynced put leaves this. */
		drp_log_warning(DRP_LOG_CACHE,
				"%s/%s: damaged metadata record ignored",
				db->dir, path);
		rc = -ENOENT;
	}
out_stats:
	DRP_CACHE_STAT_ADD(stats, meta_hits, rc == 0 || rc == -ERANGE);
	DRP_CACHE_STAT_ADD(stats, meta_misses, rc == -ENOENT);
	return rc;
}

static int fs_meta_del(drp_cache_t *db, drp_cache_stats_t *stats,
		       const void *key, size_t keylen)
{
	uint8_t name[DRP_DIGEST_LEN];
	if (!meta_len_ok(keylen, 0))
		return -EINVAL;
	int rc = drp_digest_buf(key, keylen, name);
	if (rc < 0)
		return rc;
	pthread_rwlock_rdlock(&db->behind_lock);
	drp_jobs_t *q = db->behind;
	pthread_mutex_lock(&db->meta_lock);
	mcache_drop(db, name);
	meta_pending_t *e = pending_find(db, name);
	if (e == NULL && q == NULL) {
		pthread_mutex_unlock(&db->meta_lock);
		rc = meta_unlink(db, name);
		mcache_drop_locked(db, name);
	} else {
		/* Is there a record to delete? The pending one, else the
		 * file (a stat: reads run on the loops). Looked for under
		 * the lock: a job drops a record from memory only once it
		 * is on disk, so one of the two places has it. */
		char path[128];
		meta_path(path, sizeof(path), name);
		if (e == NULL && faccessat(db->dirfd, path, F_OK, 0) == 0)
			e = pending_add(db, name);
		else if (e == NULL || e->del)
			rc = -ENOENT;
		bool mine = false;
		if (rc == 0) {
			free(e->val);
			e->val = NULL;
			e->vallen = 0;
			e->del = true;
			e->gen++;
			mine = pending_claim(db, e);
		}
		bool retry = q != NULL && retry_due(db);
		pthread_mutex_unlock(&db->meta_lock);
		bool kept;
		if (mine && q == NULL)
			rc = meta_flush(e, &kept);
		else if (mine)
			drp_jobs_submit(q, meta_job, e);
		if (retry)
			drp_jobs_submit(q, meta_retry_job, db);
	}
	pthread_rwlock_unlock(&db->behind_lock);
	if (rc == 0)
		DRP_CACHE_STAT_ADD(stats, meta_dels, 1);
	return rc;
}

/* One record file of meta/: its key and value into buf (capacity cap),
 * or false if it is not a whole record. */
static bool read_record(int dirfd, const char *name, uint8_t *buf, size_t cap,
			uint32_t *kl, uint32_t *vl)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	ssize_t n;
	do
		n = pread(fd, buf, cap, 0);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n < META_HDR || memcmp(buf, META_MAGIC, 4) != 0 || buf[4] != 1)
		return false;
	*kl = get_le32(buf + 8);
	*vl = get_le32(buf + 12);
	return *kl > 0 && *kl <= DRP_CACHE_KEY_MAX &&
	       *vl <= DRP_CACHE_META_MAX &&
	       (uint64_t)META_HDR + *kl + *vl == (uint64_t)n;
}

/* A copy of a record not on disk yet (write-behind), for meta_iterate:
 * its put (key, val) or delete (del) hides the file of the same name. */
typedef struct pending_copy {
	uint8_t name[DRP_DIGEST_LEN];
	bool del;
	uint8_t *key, *val; /* a put whose key has the prefix, else NULL */
	size_t keylen, vallen;
} pending_copy_t;

static int copy_cmp(const void *a, const void *b)
{
	return memcmp(((const pending_copy_t *)a)->name,
		      ((const pending_copy_t *)b)->name, DRP_DIGEST_LEN);
}

/* Copies of the pending records, sorted by name; *n of them. */
static pending_copy_t *pending_copies(drp_cache_t *db, const void *prefix,
				      size_t prefixlen, size_t *n)
{
	pending_copy_t *c = NULL;
	size_t cap = 0;
	*n = 0;
	pthread_mutex_lock(&db->meta_lock);
	for (unsigned b = 0; b < META_BUCKETS; b++) {
		for (const meta_pending_t *e = db->pending[b]; e; e = e->next) {
			if (*n == cap) {
				cap = cap ? 2 * cap : 16;
				c = drp_realloc(c, cap * sizeof(*c));
			}
			pending_copy_t *x = &c[(*n)++];
			memset(x, 0, sizeof(*x));
			memcpy(x->name, e->name, DRP_DIGEST_LEN);
			x->del = e->del;
			if (e->del || e->keylen < prefixlen ||
			    memcmp(e->key, prefix, prefixlen) != 0)
				continue;
			x->key = drp_malloc(e->keylen);
			memcpy(x->key, e->key, e->keylen);
			x->keylen = e->keylen;
			x->val = drp_malloc(e->vallen ? e->vallen : 1);
			memcpy(x->val, e->val, e->vallen);
			x->vallen = e->vallen;
		}
	}
	pthread_mutex_unlock(&db->meta_lock);
	if (*n > 1)
		qsort(c, *n, sizeof(*c), copy_cmp);
	return c;
}

/*
 * With write-behind, a record's newest state may be in memory only: the
 * walk reports those (the pending puts), and skips the files they hide
 * (an older value, or a record whose delete is pending), so a record is
 * reported once, with its newest value, as meta_get would read it.
 */
static int fs_meta_iterate(drp_cache_t *db, drp_cache_stats_t *stats,
			   const void *prefix, size_t prefixlen,
			   drp_cache_meta_cb cb, void *arg)
{
	/* One more byte than the largest record: a longer file is not one. */
	size_t cap = META_HDR + DRP_CACHE_KEY_MAX + DRP_CACHE_META_MAX + 1;
	uint8_t *buf = malloc(cap);
	if (buf == NULL)
		return -ENOMEM;
	size_t n_pend = 0;
	pending_copy_t *pend = pending_copies(db, prefix, prefixlen, &n_pend);
	int rc = 0;
	for (unsigned shard = 0; shard < 256 && rc == 0; shard++) {
		char rel[16];
		snprintf(rel, sizeof(rel), "meta/%02x", shard);
		int fd = openat(db->dirfd, rel,
				O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			continue;
		DIR *d = fdopendir(fd);
		if (d == NULL) {
			close(fd);
			continue;
		}
		struct dirent *de;
		while (rc == 0 && (de = readdir(d)) != NULL) {
			uint32_t kl, vl;
			if (de->d_name[0] == '.' ||
			    (de->d_type != DT_REG && de->d_type != DT_UNKNOWN))
				continue;
			if (!read_record(fd, de->d_name, buf, cap, &kl, &vl) ||
			    kl < prefixlen ||
			    memcmp(buf + META_HDR, prefix, prefixlen) != 0)
				continue;
			pending_copy_t want;
			if (n_pend > 0 &&
			    drp_digest_buf(buf + META_HDR, kl, want.name) ==
				    0 &&
			    bsearch(&want, pend, n_pend, sizeof(*pend),
				    copy_cmp) != NULL)
				continue; /* hidden by a pending put or delete
					   */
			rc = cb(buf + META_HDR, kl, buf + META_HDR + kl, vl,
				arg);
		}
		closedir(d);
	}
	for (size_t i = 0; i < n_pend; i++) {
		if (rc == 0 && pend[i].key != NULL)
			rc = cb(pend[i].key, pend[i].keylen, pend[i].val,
				pend[i].vallen, arg);
		free(pend[i].key);
		free(pend[i].val);
	}
	free(pend);
	free(buf);
	return rc;
}

void drp_cache_fs_inject_error(drp_cache_t *db, int err, unsigned count)
{
	pthread_mutex_lock(&db->idx.lock);
	db->inject_err = err;
	__atomic_store_n(&db->inject_count, count, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&db->idx.lock);
}

static const drp_cache_api_t fs_api = {
	.abi_major = DRP_CACHE_ABI_MAJOR,
	.abi_minor = DRP_CACHE_ABI_MINOR,
	.struct_size = sizeof(drp_cache_api_t),
	.name = "fs",
	.flags = DRP_CACHE_MAY_BLOCK | DRP_CACHE_INDEX_IN_MEMORY |
		 DRP_CACHE_PERSISTENT,
	.open = fs_open,
	.close = fs_close,
	.lookup = fs_lookup,
	.read_open = fs_read_open,
	.read = fs_read,
	.read_close = fs_read_close,
	.write_begin = fs_write_begin,
	.write = fs_write,
	.commit = fs_commit,
	.abort = fs_abort,
	.remove = fs_remove,
	.iterate = fs_iterate,
	.stats = fs_stats,
	.meta_put = fs_meta_put,
	.meta_get = fs_meta_get,
	.meta_del = fs_meta_del,
	.spool_open = fs_spool_open,
	.adopt = fs_adopt,
	.meta_iterate = fs_meta_iterate,
	.peek_open = fs_peek_open,
	.read_map = fs_read_map,
	.read_unmap = fs_read_unmap,
};

const drp_cache_api_t *drp_cache_fs(void)
{
	return &fs_api;
}
