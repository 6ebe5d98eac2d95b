/* SPDX-License-Identifier: MIT */
/*
 * docker-registry-proxy cache-backend interface (installed as <drp/cache.h>).
 *
 * A cache backend stores immutable, content-addressed objects (blobs and
 * manifests, named by their SHA-256 digest) and small metadata records
 * (tag -> digest, negative entries, "seen in repository" marks). The daemon
 * talks to a backend only through a drp_cache_api_t: a versioned table of
 * operations over an opaque handle, drp_cache_t, whose struct is defined
 * inside the backend and nowhere else.
 *
 * In-tree backends: "fs" (default; one file per digest under a directory)
 * and "memory" (size-bounded, in-process). A backend may also live in a
 * loadable module: the module exports the table through its plugin
 * descriptor (<drp/plugin.h>) and the daemon's loader registers it with
 * drp_cache_backend_register(); `[cache] backend = NAME` then selects it.
 * See drp-cache(3).
 *
 * Digests: always the string "sha256:" followed by 64 lower-case hex
 * digits. Any other spelling or algorithm makes an op return -EINVAL.
 *
 * Errors: every int-returning op returns 0 or a negative errno. Codes with
 * a meaning of their own are listed per op; anything else (-EIO, -ENOMEM)
 * means "the cache failed, serve without it".
 *
 * Threads: one drp_cache_t is shared by every worker thread. All ops on a
 * db may run concurrently, EXCEPT open and close (nothing else may run on
 * that db). A reader or writer is used by one thread at a time (it may
 * move between threads, e.g. to and from a thread pool).
 *
 * Blocking: a backend that does disk or network I/O sets
 * DRP_CACHE_MAY_BLOCK. The core calls the ops that wait for the disk
 * (write_begin/write/commit, adopt: fsync) from background threads, never
 * on an event loop. With INDEX_IN_MEMORY, lookup/stats/iterate run on the
 * loops, and so do read_open/read of cached objects and meta records:
 * on a warm cache they are page-cache reads of a few microseconds per
 * 128 KiB, cheaper than a thread round trip. meta_put and meta_del run
 * on the loops too, and remove (a damaged object's drop): a backend
 * answers them without waiting for its storage (the daemon has "fs"
 * write its records behind, from a background thread, and read them
 * from memory until they are written; a removed object leaves the index
 * at once and its file is moved aside and deleted by that thread).
 *
 * Ownership: backends copy every key, digest and buffer they are given;
 * the caller's memory may be reused as soon as an op returns. Data an op
 * returns is copied into caller-supplied memory (a db is shared between
 * threads, so "valid until the next op on the handle" would not be safe).
 * Readers and writers are owned by the backend and released only by
 * read_close / commit / abort.
 *
 * Evolution rules (ABI):
 *  - DRP_CACHE_ABI_MAJOR changes only when an existing member or meaning
 *    changes; the daemon refuses a backend with another major.
 *  - DRP_CACHE_ABI_MINOR grows when members are APPENDED to the ops table,
 *    drp_cache_conf_t or drp_cache_stats_t, or values to an enum. Nothing
 *    is ever inserted, reordered or removed. The daemon refuses a backend
 *    built with a newer minor than its own, so the conf and stats structs
 *    the daemon passes are always at least as large as the backend knows.
 *  - The daemon checks api->struct_size before calling an op appended
 *    after v1.0 (DRP_CACHE_HAS_OP); every v1.0 op is mandatory.
 *  - Enum values are explicit and never renumbered.
 */
#ifndef DRP_CACHE_H
#define DRP_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DRP_CACHE_ABI_MAJOR 1
#define DRP_CACHE_ABI_MINOR 3

/* "sha256:" + 64 hex digits, plus the NUL. */
#define DRP_CACHE_DIGEST_SIZE 72
/* Longest metadata key, in bytes. */
#define DRP_CACHE_KEY_MAX 1024
/* Longest metadata value, in bytes. */
#define DRP_CACHE_META_MAX 65536
/* write_begin() expected_len when the length is not known in advance. */
#define DRP_CACHE_LEN_UNKNOWN UINT64_MAX

/* Opaque handles: each backend defines these structs privately. */
typedef struct drp_cache drp_cache_t;
typedef struct drp_cache_reader drp_cache_reader_t;
typedef struct drp_cache_writer drp_cache_writer_t;

/* api->flags (bit values; append-only). */
enum drp_cache_flags {
	/* Ops may block on disk or network I/O: call them off the loop. */
	DRP_CACHE_MAY_BLOCK = 1u << 0,
	/* lookup, iterate and stats answer from memory without I/O and may
	 * be called on a loop thread even when MAY_BLOCK is set. */
	DRP_CACHE_INDEX_IN_MEMORY = 1u << 1,
	/* Objects and metadata survive close/open (and crashes). */
	DRP_CACHE_PERSISTENT = 1u << 2,
};

/*
 * Configuration given to open(). Filled by the daemon from `[cache]`; a
 * backend reads only the members it understands. The struct is owned by
 * the caller and only valid during open(): copy what you keep.
 */
typedef struct drp_cache_conf {
	/* Directory for file-based backends ("fs": required). */
	const char *dir;
	/* Budget in bytes of object content (sizes of the stored objects;
	 * filesystem overhead and metadata records are not counted). > 0. */
	uint64_t max_size;
	/* Eviction starts when usage would exceed high_pct % of max_size and
	 * frees least-recently-used objects down to low_pct %. 0 = default
	 * (95 and 90). Requires 0 < low_pct < high_pct <= 100. */
	unsigned high_pct;
	unsigned low_pct;
	/* Backend-specific "key=value[,key=value]" string, or NULL. Unknown
	 * keys make open() fail with a message. fs: nospace_retry=SECONDS
	 * (pause after the disk filled up, default 60). */
	const char *params;
} drp_cache_conf_t;

/*
 * Statistics. The caller owns the struct and passes it to every op. The
 * COUNTERS are added to by the op doing the work, with relaxed atomic
 * adds, so one struct may be shared by all threads or kept per worker and
 * summed. The GAUGES are written only by the stats op. Zero it before
 * first use.
 */
typedef struct drp_cache_stats {
	/* Gauges (stats op). */
	uint64_t objects;  /* committed objects */
	uint64_t bytes;	   /* their total size */
	uint64_t reserved; /* bytes reserved by open writers */
	uint64_t max_size; /* the budget */
	uint64_t readers;  /* open readers */
	uint64_t writers;  /* open writers */

	/* Counters. */
	uint64_t hits;		    /* lookup found the object */
	uint64_t misses;	    /* lookup did not */
	uint64_t read_bytes;	    /* bytes returned by read */
	uint64_t commits;	    /* objects published by commit */
	uint64_t commit_dups;	    /* commit found it already published */
	uint64_t write_bytes;	    /* bytes given to write */
	uint64_t aborts;	    /* writers aborted */
	uint64_t digest_mismatches; /* commit returned -EBADMSG */
	uint64_t too_big;	    /* writers refused for exceeding max_size */
	uint64_t no_space;	    /* writers refused for lack of space */
	uint64_t write_errors;	    /* I/O errors while storing */
	uint64_t read_errors;	    /* I/O errors or corrupt objects on read */
	uint64_t evictions;	    /* objects evicted by the budget */
	uint64_t evicted_bytes;	    /* their bytes */
	uint64_t removals;	    /* objects removed by remove() */
	uint64_t meta_hits;	    /* meta_get found the key */
	uint64_t meta_misses;	    /* meta_get did not */
	uint64_t meta_puts;
	uint64_t meta_dels;
	uint64_t index_loaded;	/* open: objects found in the store */
	uint64_t index_dropped; /* open: temp/odd files removed */
} drp_cache_stats_t;

/* What lookup() and iterate() report about an object. */
typedef struct drp_cache_info {
	uint64_t size;	   /* exact length in bytes */
	int64_t last_used; /* unix seconds of the last lookup/read/commit */
} drp_cache_info_t;

/*
 * iterate() callback: return 0 to continue, non-zero to stop (iterate then
 * returns that value). digest is only valid during the call.
 */
typedef int (*drp_cache_iter_cb)(const char *digest,
				 const drp_cache_info_t *info, void *arg);

/*
 * meta_iterate() callback: one record. key and val are only valid during
 * the call. Return 0 to continue, non-zero to stop (meta_iterate then
 * returns that value).
 */
typedef int (*drp_cache_meta_cb)(const void *key, size_t keylen,
				 const void *val, size_t vallen, void *arg);

/*
 * The operations table: one `static const` instance per backend, with
 * designated initializers (example in drp-cache(3)). Every op receives
 * the caller's stats (never NULL). "fs:" notes say what the in-tree fs
 * backend does, e.g. where it blocks.
 */
typedef struct drp_cache_api {
	uint16_t abi_major; /* DRP_CACHE_ABI_MAJOR the backend was built with */
	uint16_t abi_minor; /* DRP_CACHE_ABI_MINOR the backend was built with */
	uint32_t struct_size; /* sizeof(drp_cache_api_t) as built */
	/* Config name: [a-z0-9_-], 1..31 characters. */
	const char *name;
	uint32_t flags; /* enum drp_cache_flags */

	/*
	 * Open (create if needed) a cache. On success *db is set and 0
	 * returned; on failure a message is written to errbuf (NUL-ended,
	 * truncated to errlen) and -errno returned: -EINVAL bad conf,
	 * -EBUSY the store is in use by another process, anything else from
	 * the system. fs: creates the layout, removes temp files left by a
	 * crash, builds the index (stats->index_loaded/_dropped). Blocks;
	 * called at start-up, before workers run.
	 */
	int (*open)(drp_cache_t **db, const drp_cache_conf_t *conf,
		    drp_cache_stats_t *stats, char *errbuf, size_t errlen);
	/*
	 * Release everything. All readers and writers must have been closed
	 * or aborted. Data already committed is kept (PERSISTENT).
	 */
	void (*close)(drp_cache_t *db, drp_cache_stats_t *stats);

	/*
	 * Is the object stored? 0 and *info filled (info may be NULL), or
	 * -ENOENT. Counts a hit or a miss and marks the object recently used.
	 */
	int (*lookup)(drp_cache_t *db, drp_cache_stats_t *stats,
		      const char *digest, drp_cache_info_t *info);

	/*
	 * Open the object for streaming from byte `offset` (for Range). The
	 * reader pins the object: it is never evicted while open, and if it
	 * is removed meanwhile the reader still sees all of its bytes.
	 * 0 and *reader set (*info filled if info is not NULL); -ENOENT;
	 * -EINVAL if offset > size (offset == size gives an immediate EOF).
	 * Does not count hits/misses (lookup does). fs: opens a file.
	 */
	int (*read_open)(drp_cache_t *db, drp_cache_stats_t *stats,
			 const char *digest, uint64_t offset,
			 drp_cache_reader_t **reader, drp_cache_info_t *info);
	/*
	 * Copy up to len bytes at the reader's position and advance it.
	 * Returns the count (> 0), 0 at the end, or -errno (-EIO: the stored
	 * object turned out shorter than recorded; it is dropped from the
	 * cache). fs: pread(2), blocks on disk.
	 */
	ssize_t (*read)(drp_cache_t *db, drp_cache_stats_t *stats,
			drp_cache_reader_t *reader, void *buf, size_t len);
	/* Release the reader (and the pin). Never fails. */
	void (*read_close)(drp_cache_t *db, drp_cache_stats_t *stats,
			   drp_cache_reader_t *reader);

	/*
	 * Start storing an object. expected_len is the announced length or
	 * DRP_CACHE_LEN_UNKNOWN; it reserves budget early but the digest
	 * alone decides what is valid. Returns 0 and *writer, -EEXIST if
	 * the object is already stored (serve it instead), -EINVAL for a
	 * bad digest, -ENOMEM.
	 *
	 * Several writers of one digest may run at once (each has its own
	 * temp space); the first verified commit publishes, the others'
	 * commits return 0 and discard their copies.
	 *
	 * A writer that cannot store (object larger than max_size, budget
	 * full of pinned objects, disk full, I/O error) does not fail:
	 * it becomes UNCOMMITTABLE, stops storing, releases its space and
	 * keeps hashing, so that commit still gives a verdict on the bytes.
	 */
	int (*write_begin)(drp_cache_t *db, drp_cache_stats_t *stats,
			   const char *digest, uint64_t expected_len,
			   drp_cache_writer_t **writer);
	/*
	 * Append len bytes. Returns 0; the only error is -EIO if the hash
	 * itself failed (a storage failure makes the writer uncommittable
	 * instead, see above). fs: write(2), blocks on disk.
	 */
	int (*write)(drp_cache_t *db, drp_cache_stats_t *stats,
		     drp_cache_writer_t *writer, const void *buf, size_t len);
	/*
	 * Finish: verify that the SHA-256 of everything written equals the
	 * digest, then publish atomically. Releases the writer in every case.
	 *   0        verified and stored (or already stored by another
	 *            writer of the same digest)
	 *   -EBADMSG the bytes do not match the digest; nothing published.
	 *            Takes precedence over every code below, so the caller
	 *            can use commit as its verification of the stream.
	 *   -EFBIG   verified, not stored: larger than max_size
	 *   -ENOSPC  verified, not stored: no space (budget or disk)
	 *   -EIO     verified, not stored: an I/O error while storing
	 *   other    verified, not stored (e.g. -ENOMEM in "memory")
	 * Only fully written, synced and verified data is ever published:
	 * after a crash at any moment, an object is either complete or
	 * absent. fs: fsync + rename + directory fsync; blocks.
	 */
	int (*commit)(drp_cache_t *db, drp_cache_stats_t *stats,
		      drp_cache_writer_t *writer);
	/* Discard the writer and everything it wrote. Never fails. */
	void (*abort)(drp_cache_t *db, drp_cache_stats_t *stats,
		      drp_cache_writer_t *writer);

	/*
	 * Remove a stored object. 0 or -ENOENT. Open readers keep reading
	 * it to the end; new lookups miss at once.
	 */
	int (*remove)(drp_cache_t *db, drp_cache_stats_t *stats,
		      const char *digest);
	/*
	 * Call cb for every stored object, least recently used first, on a
	 * snapshot taken at the start (cb may call other ops on db, and
	 * objects it reports may be gone by the time it runs). Returns 0, the
	 * callback's non-zero stop value, or -ENOMEM.
	 */
	int (*iterate)(drp_cache_t *db, drp_cache_stats_t *stats,
		       drp_cache_iter_cb cb, void *arg);
	/* Write the gauges of *stats (counters are left alone). */
	void (*stats)(drp_cache_t *db, drp_cache_stats_t *stats);

	/*
	 * Metadata records: key (1..DRP_CACHE_KEY_MAX bytes, any bytes) ->
	 * value (0..DRP_CACHE_META_MAX bytes). Separate from objects: never
	 * evicted, not counted in max_size. meta_put replaces atomically (a
	 * concurrent meta_get sees the old or the new value, never a mix);
	 * concurrent puts of one key: the last one wins. Sets (e.g. the
	 * repositories a blob was seen in) should be stored as one record
	 * per member with the member in the key, so adding needs no
	 * read-modify-write. Returns 0; -EINVAL for a bad length.
	 * fs: a small file written to a temp name and renamed (not fsync'd:
	 * a record survives a crash of the process, not always a power cut);
	 * in the daemon, written behind by its stores thread, so a record
	 * put just before a crash of the process may be lost too (one whose
	 * write fails, on a full disk, is kept in memory and written again
	 * later).
	 */
	int (*meta_put)(drp_cache_t *db, drp_cache_stats_t *stats,
			const void *key, size_t keylen, const void *val,
			size_t vallen);
	/*
	 * Copy the value into buf (capacity *vallen) and set *vallen to its
	 * length. 0; -ENOENT; -ERANGE if buf is too small (*vallen is then
	 * set to the length needed). buf may be NULL with *vallen == 0 to
	 * test for existence.
	 */
	int (*meta_get)(drp_cache_t *db, drp_cache_stats_t *stats,
			const void *key, size_t keylen, void *buf,
			size_t *vallen);
	/* Delete a record. 0 or -ENOENT. */
	int (*meta_del)(drp_cache_t *db, drp_cache_stats_t *stats,
			const void *key, size_t keylen);

	/* ---- v1.1 (optional: check with DRP_CACHE_HAS_OP) ---- */

	/*
	 * Open an anonymous temp file, readable and writable, in which the
	 * core spools a body it is receiving (clients stream from it while
	 * it fills) and which it then hands to adopt(). Return the fd (the
	 * caller closes it) or -errno; -ENOSPC while the backend pauses
	 * caching for a full disk. A backend without this op makes the core
	 * use a temp file of its own.
	 * fs: O_TMPFILE in DIR/tmp, on the objects' filesystem, so adopt()
	 * links the file into place instead of copying it (named and
	 * unlinked at once where O_TMPFILE is not supported).
	 */
	int (*spool_open)(drp_cache_t *db, drp_cache_stats_t *stats);
	/*
	 * Store bytes [0, len) of the file fd as the object `digest`. The
	 * CALLER has verified that they hash to digest (the core hashes every
	 * body once, as it arrives; hashing again here would double the CPU
	 * of a cold pull): the backend does not check. fd stays open and the
	 * caller's; its offset is not used (pread). The file must not change
	 * during the call.
	 * Returns what commit() returns, except -EBADMSG: 0 (stored, or
	 * already stored), -EFBIG, -ENOSPC, -EIO, -EINVAL (bad digest).
	 * Same guarantee: after a crash the object is complete or absent.
	 * fs: fsync(fd), then a link of the file into place when it came
	 * from spool_open (no copy), else a copy; blocks.
	 * The core uses write_begin/write/commit when a backend lacks this
	 * op (drp_cache_adopt() in the daemon does exactly that).
	 */
	int (*adopt)(drp_cache_t *db, drp_cache_stats_t *stats,
		     const char *digest, int fd, uint64_t len);

	/* ---- v1.2 (optional: check with DRP_CACHE_HAS_OP) ---- */

	/*
	 * Call cb for every metadata record whose key begins with the
	 * prefixlen bytes at prefix (prefixlen 0: every record), in no
	 * particular order. Records put or deleted during the walk may or
	 * may not be reported; cb may call other ops on db, meta_del of the
	 * record it was given included. Returns 0, the callback's non-zero
	 * stop value, or -errno. For the administrator's tools (listing,
	 * purging: docker-registry-proxy cache), never the request path.
	 * A backend without it cannot list tags.
	 * fs: reads every record file under meta/ (blocks; seconds for a
	 * cache of many thousand records); in the daemon, where records are
	 * written behind, also those not written yet, with their newest
	 * value, and not those whose delete is not written yet.
	 */
	int (*meta_iterate)(drp_cache_t *db, drp_cache_stats_t *stats,
			    const void *prefix, size_t prefixlen,
			    drp_cache_meta_cb cb, void *arg);
	/*
	 * read_open() that is not a use of the object: its last use, its
	 * place in the LRU order and whatever the backend keeps of them on
	 * disk stay as they were, so that reading every object (verify, a
	 * listing that parses manifests) does not make the whole cache look
	 * recently used and defeat eviction and max_age. Everything else is
	 * read_open's: the reader pins the object, read and read_close
	 * serve it. The core falls back to read_open without it.
	 */
	int (*peek_open)(drp_cache_t *db, drp_cache_stats_t *stats,
			 const char *digest, uint64_t offset,
			 drp_cache_reader_t **reader, drp_cache_info_t *info);

	/* ---- v1.3 (optional: check with DRP_CACHE_HAS_OP) ---- */

	/*
	 * read() without the copy: map up to len bytes at the reader's
	 * position read-only and advance it. Returns the count (> 0) with
	 * *data pointing at the first byte and *handle to give to
	 * read_unmap once the caller is done with them (the mapping
	 * outlives read_close), 0 at the end, or -errno as read() (-EIO:
	 * the object turned out shorter than recorded; it is dropped), or
	 * another -errno when this object cannot be mapped (the caller
	 * reads instead). A page of a file damaged after the call may
	 * fault (SIGBUS) when touched: the core touches mappings only
	 * under its guard (util/busguard.h). Counts read_bytes.
	 * fs: fstat(2) (the size is checked, as read() does) and mmap(2).
	 */
	ssize_t (*read_map)(drp_cache_t *db, drp_cache_stats_t *stats,
			    drp_cache_reader_t *reader, size_t len,
			    const void **data, void **handle);
	/* Release a mapping of read_map. Never fails; any thread. */
	void (*read_unmap)(drp_cache_t *db, void *handle);
	/* Appended ops go here (check with DRP_CACHE_HAS_OP). */
} drp_cache_api_t;

/* Size of the v1.0 table: the smallest struct_size the daemon accepts. */
#define DRP_CACHE_API_V1_SIZE                                                  \
	(offsetof(drp_cache_api_t, meta_del) + sizeof(void (*)(void)))

/* True if api was built with op and sets it (for ops appended later). */
#define DRP_CACHE_HAS_OP(api, op)                                              \
	(offsetof(drp_cache_api_t, op) + sizeof((api)->op) <=                  \
		 (api)->struct_size &&                                         \
	 (api)->op != NULL)

/*
 * Daemon side. These are implemented by the daemon, not by backends; an
 * out-of-tree backend links against nothing of the daemon.
 *
 * drp_cache_backend_find: the backend registered under name ("fs",
 * "memory", or one added by a module), or NULL. Thread-safe.
 *
 * drp_cache_backend_register: add a backend (the plugin loader calls it
 * for a descriptor that carries a cache table; call at start-up). The
 * table must stay valid until exit (modules are never unloaded). Returns
 * 0; -EINVAL (bad name, missing op, struct_size too small); -ENOTSUP
 * (abi_major differs or abi_minor is newer than the daemon's); -EEXIST
 * (name taken); -ENOSPC (too many backends). On error a message is
 * written to errbuf.
 */
const drp_cache_api_t *drp_cache_backend_find(const char *name);
int drp_cache_backend_register(const drp_cache_api_t *api, char *errbuf,
			       size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
