/* SPDX-License-Identifier: MIT */
/*
 * Cache backend contract. Every test in the "contract" case is a loop test
 * run once per backend (BACKENDS[_i]): the same assertions hold for "fs",
 * "memory", and "fs" writing its metadata behind through a queue of jobs
 * (as the daemon runs it). fs-only behaviour (restart, on-disk layout,
 * lock, disk full, write-behind) has its own case.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/digest.h"
#include "cache/index.h"
#include "drp/cache.h"
#include "http/uri.h"
#include "util/jobs.h"
#include "util/log.h"

Suite *cache_suite(void);

static const char *const BACKENDS[] = {"fs", "memory", "fs"};
/* BACKENDS[2] writes metadata behind (drp_cache_fs_write_behind). */
#define WRITES_BEHIND(i) ((i) == 2)

static char base_dir[256];
static char dir[512];
static const drp_cache_api_t *api;
static drp_cache_t *db;
static drp_cache_stats_t st;
static drp_jobs_t *behind; /* db's write-behind queue, if any */

static void base_setup(void)
{
	snprintf(base_dir, sizeof(base_dir), "/tmp/drp-test-cache-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base_dir));
}

static int rm_cb(const char *path, const struct stat *sb, int flag,
		 struct FTW *ftw)
{
	return remove(path);
}

static void base_teardown(void)
{
	nftw(base_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Open backend i with a fresh directory (name distinguishes tests). */
static void open_conf(int i, const char *name, const drp_cache_conf_t *c)
{
	char err[256] = "";
	drp_cache_conf_t conf = *c;
	snprintf(dir, sizeof(dir), "%s/%s-%d-%d", base_dir, name, i,
		 (int)getpid());
	conf.dir = dir;
	memset(&st, 0, sizeof(st));
	api = drp_cache_backend_find(BACKENDS[i]);
	ck_assert_ptr_nonnull(api);
	int rc = api->open(&db, &conf, &st, err, sizeof(err));
	ck_assert_msg(rc == 0, "open %s: %d %s", BACKENDS[i], rc, err);
	if (WRITES_BEHIND(i)) {
		behind = drp_jobs_new(1);
		ck_assert_ptr_nonnull(behind);
		drp_cache_fs_write_behind(db, behind);
	}
}

/* Everything written behind is on disk (the queue is empty). */
static void settle(void)
{
	while (behind != NULL && drp_jobs_pending(behind) > 0)
		usleep(1000);
}

/* Close db, after draining its write-behind queue. */
static void close_api(void)
{
	drp_jobs_free(behind); /* runs what is queued */
	behind = NULL;
	api->close(db, &st);
}

static void open_db(int i, const char *name, uint64_t max_size)
{
	drp_cache_conf_t c = {.max_size = max_size};
	open_conf(i, name, &c);
}

static void reopen(void)
{
	char err[256] = "";
	drp_cache_conf_t conf = {.dir = dir, .max_size = 1 << 20};
	close_api();
	memset(&st, 0, sizeof(st));
	int rc = api->open(&db, &conf, &st, err, sizeof(err));
	ck_assert_msg(rc == 0, "reopen: %d %s", rc, err);
}

static void close_db(void)
{
	close_api();
	db = NULL;
}

/* Deterministic, incompressible test bytes. */
static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

static void digest_of(const void *p, size_t n, char out[DRP_DIGEST_STRSIZE])
{
	uint8_t bin[DRP_DIGEST_LEN];
	ck_assert_int_eq(drp_digest_buf(p, n, bin), 0);
	drp_digest_format(bin, out);
}

/* Write p in chunks of `chunk` bytes and commit; returns commit's code. */
static int put_obj(const char *digest, const void *p, size_t n,
		   uint64_t expected, size_t chunk)
{
	drp_cache_writer_t *w;
	int rc = api->write_begin(db, &st, digest, expected, &w);
	if (rc < 0)
		return rc;
	for (size_t off = 0; off < n; off += chunk) {
		size_t len = n - off < chunk ? n - off : chunk;
		ck_assert_int_eq(
			api->write(db, &st, w, (const uint8_t *)p + off, len),
			0);
	}
	return api->commit(db, &st, w);
}

/* Store n bytes of seed's content; digest returned in dg. */
static int put_seed(uint32_t seed, size_t n, char dg[DRP_DIGEST_STRSIZE],
		    uint64_t expected)
{
	uint8_t *p = malloc(n ? n : 1);
	fill(p, n, seed);
	digest_of(p, n, dg);
	int rc =
		put_obj(dg, p, n,
			expected == 0 ? DRP_CACHE_LEN_UNKNOWN : expected, 4096);
	free(p);
	return rc;
}

/* Read everything from r into a malloc'd buffer; *n its length. */
static uint8_t *read_all(drp_cache_reader_t *r, size_t *n, size_t chunk)
{
	size_t cap = 4096, len = 0;
	uint8_t *buf = malloc(cap);
	for (;;) {
		if (cap - len < chunk) {
			cap = cap * 2 + chunk;
			buf = realloc(buf, cap);
		}
		ssize_t k = api->read(db, &st, r, buf + len, chunk);
		ck_assert_int_ge(k, 0);
		if (k == 0)
			break;
		len += (size_t)k;
	}
	*n = len;
	return buf;
}

static void assert_content(const char *dg, uint32_t seed, size_t n)
{
	drp_cache_reader_t *r;
	drp_cache_info_t info;
	ck_assert_int_eq(api->read_open(db, &st, dg, 0, &r, &info), 0);
	ck_assert_uint_eq(info.size, n);
	size_t got;
	uint8_t *buf = read_all(r, &got, 3000);
	api->read_close(db, &st, r);
	uint8_t *want = malloc(n ? n : 1);
	fill(want, n, seed);
	ck_assert_uint_eq(got, n);
	ck_assert_int_eq(memcmp(buf, want, n), 0);
	free(buf);
	free(want);
}

static void gauges(void)
{
	api->stats(db, &st);
}

/* ---- digest wrapper ---------------------------------------------------- */

START_TEST(digest_vectors)
{
	char dg[DRP_DIGEST_STRSIZE];
	uint8_t bin[DRP_DIGEST_LEN], bin2[DRP_DIGEST_LEN];
	drp_digest_t d;

	/* FIPS 180-2 "abc" and the empty string. */
	digest_of("abc", 3, dg);
	ck_assert_str_eq(dg, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a3"
			     "96177a9cb410ff61f20015ad");
	digest_of("", 0, dg);
	ck_assert_str_eq(dg, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4"
			     "649b934ca495991b7852b855");

	/* Incremental in odd pieces equals one-shot. */
	ck_assert_int_eq(drp_digest_init(&d), 0);
	ck_assert_int_eq(drp_digest_update(&d, "a", 1), 0);
	ck_assert_int_eq(drp_digest_update(&d, "", 0), 0);
	ck_assert_int_eq(drp_digest_update(&d, "bc", 2), 0);
	ck_assert_uint_eq(d.len, 3);
	drp_digest_final(&d, bin);
	ck_assert_int_eq(
		drp_digest_parse("sha256:ba7816bf8f01cfea414140de5dae"
				 "2223b00361a396177a9cb410ff61f20015ad",
				 bin2),
		0);
	ck_assert_int_eq(memcmp(bin, bin2, DRP_DIGEST_LEN), 0);

	/* final_check: equal -> 0, different -> -EBADMSG. */
	ck_assert_int_eq(drp_digest_init(&d), 0);
	drp_digest_update(&d, "abc", 3);
	ck_assert_int_eq(drp_digest_final_check(&d, bin2), 0);
	ck_assert_int_eq(drp_digest_init(&d), 0);
	drp_digest_update(&d, "abd", 3);
	ck_assert_int_eq(drp_digest_final_check(&d, bin2), -EBADMSG);
	/* abort on a released context is a no-op. */
	drp_digest_abort(&d);
}
END_TEST

/* One validator: drp_digest_parse() (the cache's key) takes exactly the
 * strings drp_digest_valid() calls valid and SHA-256; the cache's own
 * checks (tag records, seen marks) refuse the rest. */
#define HEX64 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
static const struct {
	const char *s;
	bool key; /* a cache key */
} digest_strings[] = {
	{"sha256:" HEX64, true},
	/* upper-case hex: one spelling only */
	{"sha256:BA7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f2"
	 "0015ad",
	 false},
	/* other algorithms, valid or not, are no key */
	{"sha512:" HEX64 HEX64, false},
	{"sha512:" HEX64, false},
	{"blake3:abc", false},
	/* one digit short, one too many, a non-hex digit */
	{"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20"
	 "015a",
	 false},
	{"sha256:" HEX64 "0", false},
	{"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20"
	 "015ag",
	 false},
	/* no prefix, an upper-case prefix, nothing */
	{HEX64, false},
	{"SHA256:" HEX64, false},
	{"sha256:", false},
	{"", false},
};

START_TEST(digest_one_validator)
{
	const char *d = digest_strings[_i].s;
	bool key = digest_strings[_i].key;
	uint8_t b[DRP_DIGEST_LEN];
	bool sha256 = false;
	bool valid = drp_digest_valid(d, strlen(d), &sha256);
	ck_assert_msg((valid && sha256) == key, "case %d: %s", _i, d);
	ck_assert_int_eq(drp_digest_parse(d, b), key ? 0 : -EINVAL);

	/* The cache refuses what is no key, through the memory backend. */
	const drp_cache_api_t *mem = drp_cache_backend_find("memory");
	ck_assert_ptr_nonnull(mem);
	drp_cache_conf_t conf = {.max_size = 1 << 20};
	char err[256];
	drp_cache_stats_t mst = {0};
	drp_cache_t *mdb = NULL;
	ck_assert_int_eq(mem->open(&mdb, &conf, &mst, err, sizeof(err)), 0);
	ck_assert_int_eq(
		drp_cache_seen_get(mem, mdb, &mst, d, "quay.io", "a/b"),
		key ? -ENOENT : -EINVAL);
	drp_cache_tag_t t = {.size = 1, .fetched_at = 1};
	snprintf(t.media_type, sizeof(t.media_type), "application/x");
	if (strlen(d) < sizeof(t.digest)) {
		memcpy(t.digest, d, strlen(d) + 1);
		ck_assert_int_eq(drp_cache_tag_put(mem, mdb, &mst, "k", &t),
				 key ? 0 : -EINVAL);
	}
	mem->close(mdb, &mst);
}
END_TEST

/* ---- the shared index ------------------------------------------------- */

/* The lookup both in-tree backends share: a hit fills info and marks the
 * object used (its time and its place in the LRU order); a miss and a
 * string that is no digest are told apart; hits and misses are counted,
 * a bad string as neither. */
START_TEST(index_lookup)
{
	drp_cache_index_t idx;
	drp_cache_conf_t conf = {.max_size = 1 << 20};
	char err[128];
	ck_assert_int_eq(
		drp_cache_index_init(&idx, &conf, NULL, NULL, err, sizeof(err)),
		0);
	char da[DRP_DIGEST_STRSIZE], dbs[DRP_DIGEST_STRSIZE],
		dc[DRP_DIGEST_STRSIZE];
	uint8_t a[DRP_DIGEST_LEN], b[DRP_DIGEST_LEN];
	digest_of("a", 1, da);
	digest_of("b", 1, dbs);
	digest_of("c", 1, dc);
	ck_assert_int_eq(drp_digest_parse(da, a), 0);
	ck_assert_int_eq(drp_digest_parse(dbs, b), 0);
	pthread_mutex_lock(&idx.lock);
	drp_cache_index_insert(&idx, drp_cache_obj_new(a, 10, 100));
	drp_cache_index_insert(&idx, drp_cache_obj_new(b, 20, 200));
	pthread_mutex_unlock(&idx.lock);

	drp_cache_stats_t s = {0};
	drp_cache_info_t info = {0};
	ck_assert_int_eq(drp_cache_index_lookup(&idx, &s, da, 300, &info), 0);
	ck_assert_uint_eq(info.size, 10);
	ck_assert_int_eq(info.last_used, 300);
	/* a is now the most recently used: last in the snapshot */
	drp_cache_snap_t *snap = NULL;
	size_t n = 0;
	pthread_mutex_lock(&idx.lock);
	ck_assert_int_eq(drp_cache_index_snapshot(&idx, &snap, &n), 0);
	pthread_mutex_unlock(&idx.lock);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(memcmp(snap[0].digest, b, DRP_DIGEST_LEN), 0);
	ck_assert_int_eq(memcmp(snap[1].digest, a, DRP_DIGEST_LEN), 0);
	ck_assert_int_eq(snap[1].info.last_used, 300);
	ck_assert_int_eq(snap[0].info.last_used, 200);
	free(snap);
	/* info may be NULL */
	ck_assert_int_eq(drp_cache_index_lookup(&idx, &s, dbs, 400, NULL), 0);
	ck_assert_uint_eq(s.hits, 2);
	ck_assert_uint_eq(s.misses, 0);
	/* a miss leaves info alone */
	info.size = 77;
	ck_assert_int_eq(drp_cache_index_lookup(&idx, &s, dc, 500, &info),
			 -ENOENT);
	ck_assert_uint_eq(info.size, 77);
	ck_assert_uint_eq(s.misses, 1);
	/* not a digest the cache keys on */
	ck_assert_int_eq(
		drp_cache_index_lookup(&idx, &s, "sha256:abc", 500, &info),
		-EINVAL);
	ck_assert_int_eq(drp_cache_index_lookup(&idx, &s, "", 500, &info),
			 -EINVAL);
	ck_assert_uint_eq(s.hits, 2);
	ck_assert_uint_eq(s.misses, 1);
	drp_cache_index_destroy(&idx);
}
END_TEST

/* ---- contract, run against every backend ------------------------------ */

START_TEST(roundtrip)
{
	const char *msg = "hello, cache world";
	char dg[DRP_DIGEST_STRSIZE];
	drp_cache_info_t info;
	drp_cache_reader_t *r;
	char buf[8];

	open_db(_i, "roundtrip", 1 << 20);
	digest_of(msg, strlen(msg), dg);
	ck_assert_int_eq(api->lookup(db, &st, dg, &info), -ENOENT);
	ck_assert_int_eq(put_obj(dg, msg, strlen(msg), strlen(msg), 5), 0);
	ck_assert_int_eq(api->lookup(db, &st, dg, &info), 0);
	ck_assert_uint_eq(info.size, strlen(msg));
	ck_assert_int_ge(info.last_used, (int64_t)time(NULL) - 5);

	/* Read back in 8-byte pieces: exact bytes, then EOF (0). */
	ck_assert_int_eq(api->read_open(db, &st, dg, 0, &r, NULL), 0);
	ck_assert_int_eq(api->read(db, &st, r, buf, sizeof(buf)), 8);
	ck_assert_int_eq(memcmp(buf, "hello, c", 8), 0);
	ck_assert_int_eq(api->read(db, &st, r, buf, sizeof(buf)), 8);
	ck_assert_int_eq(memcmp(buf, "ache wor", 8), 0);
	ck_assert_int_eq(api->read(db, &st, r, buf, sizeof(buf)), 2);
	ck_assert_int_eq(memcmp(buf, "ld", 2), 0);
	ck_assert_int_eq(api->read(db, &st, r, buf, sizeof(buf)), 0);
	api->read_close(db, &st, r);

	ck_assert_uint_eq(st.commits, 1);
	ck_assert_uint_eq(st.hits, 1);
	ck_assert_uint_eq(st.misses, 1);
	ck_assert_uint_eq(st.write_bytes, strlen(msg));
	ck_assert_uint_eq(st.read_bytes, strlen(msg));
	gauges();
	ck_assert_uint_eq(st.objects, 1);
	ck_assert_uint_eq(st.bytes, strlen(msg));
	ck_assert_uint_eq(st.reserved, 0);
	ck_assert_uint_eq(st.readers, 0);
	ck_assert_uint_eq(st.writers, 0);
	close_db();
}
END_TEST

START_TEST(empty_object)
{
	char dg[DRP_DIGEST_STRSIZE];
	drp_cache_writer_t *w;
	drp_cache_reader_t *r;
	drp_cache_info_t info;
	char buf[4];

	open_db(_i, "empty", 1000);
	digest_of("", 0, dg);
	ck_assert_int_eq(api->write_begin(db, &st, dg, 0, &w), 0);
	ck_assert_int_eq(api->commit(db, &st, w), 0);
	ck_assert_int_eq(api->read_open(db, &st, dg, 0, &r, &info), 0);
	ck_assert_uint_eq(info.size, 0);
	ck_assert_int_eq(api->read(db, &st, r, buf, sizeof(buf)), 0);
	api->read_close(db, &st, r);
	close_db();
}
END_TEST

START_TEST(read_offset)
{
	enum { N = 100000 };
	char dg[DRP_DIGEST_STRSIZE];
	uint8_t *want = malloc(N);
	drp_cache_reader_t *r;
	drp_cache_info_t info;
	size_t got;
	char one;

	open_db(_i, "offset", 1 << 20);
	fill(want, N, 7);
	ck_assert_int_eq(put_seed(7, N, dg, 0), 0);

	/* From the middle: the tail, exactly. */
	ck_assert_int_eq(api->read_open(db, &st, dg, 12345, &r, &info), 0);
	ck_assert_uint_eq(info.size, N);
	uint8_t *buf = read_all(r, &got, 7000);
	api->read_close(db, &st, r);
	ck_assert_uint_eq(got, N - 12345);
	ck_assert_int_eq(memcmp(buf, want + 12345, got), 0);
	free(buf);

	/* Last byte only. */
	ck_assert_int_eq(api->read_open(db, &st, dg, N - 1, &r, NULL), 0);
	ck_assert_int_eq(api->read(db, &st, r, &one, 1), 1);
	ck_assert_int_eq((uint8_t)one, want[N - 1]);
	api->read_close(db, &st, r);

	/* offset == size: immediate EOF; offset > size: -EINVAL. */
	ck_assert_int_eq(api->read_open(db, &st, dg, N, &r, NULL), 0);
	ck_assert_int_eq(api->read(db, &st, r, &one, 1), 0);
	api->read_close(db, &st, r);
	ck_assert_int_eq(api->read_open(db, &st, dg, N + 1, &r, NULL), -EINVAL);

	/* Absent object, malformed digests. */
	ck_assert_int_eq(
		api->read_open(db, &st,
			       "sha256:00000000000000000000000000000000"
			       "00000000000000000000000000000000",
			       0, &r, NULL),
		-ENOENT);
	ck_assert_int_eq(api->lookup(db, &st, "sha256:abc", NULL), -EINVAL);
	ck_assert_int_eq(api->read_open(db, &st, "md5:00", 0, &r, NULL),
			 -EINVAL);
	gauges();
	ck_assert_uint_eq(st.readers, 0);
	free(want);
	close_db();
}
END_TEST

/* fs: the temp directory holds nothing (no leftovers after a failure). */
static void assert_tmp_empty(int i)
{
	if (strcmp(BACKENDS[i], "fs") != 0)
		return;
	settle();
	char p[600];
	snprintf(p, sizeof(p), "%s/tmp", dir);
	int fd = open(p, O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(fd, 0);
	DIR *d = fdopendir(fd);
	struct dirent *de;
	int n = 0;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	ck_assert_int_eq(n, 0);
}

START_TEST(wrong_digest)
{
	char dg[DRP_DIGEST_STRSIZE];
	open_db(_i, "wrong", 1 << 20);
	digest_of("abd", 3, dg);
	/* "abc" stored under the digest of "abd": refused, nothing left. */
	ck_assert_int_eq(put_obj(dg, "abc", 3, 3, 1), -EBADMSG);
	ck_assert_int_eq(api->lookup(db, &st, dg, NULL), -ENOENT);
	/* One byte too many: also a mismatch. */
	ck_assert_int_eq(put_obj(dg, "abdd", 4, DRP_CACHE_LEN_UNKNOWN, 4),
			 -EBADMSG);
	ck_assert_int_eq(api->lookup(db, &st, dg, NULL), -ENOENT);
	ck_assert_uint_eq(st.digest_mismatches, 2);
	ck_assert_uint_eq(st.commits, 0);
	gauges();
	ck_assert_uint_eq(st.objects, 0);
	ck_assert_uint_eq(st.reserved, 0);
	ck_assert_uint_eq(st.writers, 0);
	assert_tmp_empty(_i);
	/* The right bytes are accepted afterwards. */
	ck_assert_int_eq(put_obj(dg, "abd", 3, 3, 2), 0);
	ck_assert_int_eq(api->lookup(db, &st, dg, NULL), 0);
	close_db();
}
END_TEST

START_TEST(abort_and_exists)
{
	char dg[DRP_DIGEST_STRSIZE];
	drp_cache_writer_t *w;
	open_db(_i, "abort", 1 << 20);
	digest_of("payload", 7, dg);
	ck_assert_int_eq(api->write_begin(db, &st, dg, 7, &w), 0);
	ck_assert_int_eq(api->write(db, &st, w, "pay", 3), 0);
	gauges();
	ck_assert_uint_eq(st.writers, 1);
	ck_assert_uint_eq(st.reserved, 7);
	api->abort(db, &st, w);
	ck_assert_int_eq(api->lookup(db, &st, dg, NULL), -ENOENT);
	ck_assert_uint_eq(st.aborts, 1);
	gauges();
	ck_assert_uint_eq(st.writers, 0);
	ck_assert_uint_eq(st.reserved, 0);
	assert_tmp_empty(_i);

	ck_assert_int_eq(put_obj(dg, "payload", 7, 7, 7), 0);
	/* Once stored, a new writer is refused: serve the stored copy. */
	ck_assert_int_eq(api->write_begin(db, &st, dg, 7, &w), -EEXIST);
	ck_assert_int_eq(api->write_begin(db, &st, "sha256:xyz", 7, &w),
			 -EINVAL);
	close_db();
}
END_TEST

START_TEST(two_writers_same_digest)
{
	char dg[DRP_DIGEST_STRSIZE];
	drp_cache_writer_t *a, *b;
	open_db(_i, "twowriters", 1 << 20);
	digest_of("same bytes", 10, dg);
	/* Both may start; the first commit publishes, the second is an
	 * idempotent 0 that discards its own copy. */
	ck_assert_int_eq(api->write_begin(db, &st, dg, 10, &a), 0);
	ck_assert_int_eq(api->write_begin(db, &st, dg, 10, &b), 0);
	ck_assert_int_eq(api->write(db, &st, a, "same ", 5), 0);
	ck_assert_int_eq(api->write(db, &st, b, "same bytes", 10), 0);
	ck_assert_int_eq(api->commit(db, &st, b), 0);
	ck_assert_int_eq(api->write(db, &st, a, "bytes", 5), 0);
	ck_assert_int_eq(api->commit(db, &st, a), 0);
	ck_assert_uint_eq(st.commits, 1);
	ck_assert_uint_eq(st.commit_dups, 1);
	gauges();
	ck_assert_uint_eq(st.objects, 1);
	ck_assert_uint_eq(st.bytes, 10);
	ck_assert_uint_eq(st.reserved, 0);
	assert_tmp_empty(_i);
	close_db();
}
END_TEST

struct race_arg {
	const char *dg;
	const uint8_t *data;
	size_t n;
	int rc;
};

static void *race_writer(void *p)
{
	struct race_arg *a = p;
	drp_cache_stats_t my = {0};
	drp_cache_writer_t *w;
	a->rc = api->write_begin(db, &my, a->dg, DRP_CACHE_LEN_UNKNOWN, &w);
	if (a->rc < 0)
		return NULL;
	for (size_t off = 0; off < a->n; off += 1000)
		api->write(db, &my, w, a->data + off,
			   a->n - off < 1000 ? a->n - off : 1000);
	a->rc = api->commit(db, &my, w);
	return NULL;
}

START_TEST(threaded_writers_same_digest)
{
	enum { N = 200000, T = 4 };
	char dg[DRP_DIGEST_STRSIZE];
	uint8_t *data = malloc(N);
	pthread_t th[T];
	struct race_arg a[T];

	open_db(_i, "racewriters", 1 << 20);
	fill(data, N, 99);
	digest_of(data, N, dg);
	for (int t = 0; t < T; t++) {
		a[t] = (struct race_arg){.dg = dg, .data = data, .n = N};
		pthread_create(&th[t], NULL, race_writer, &a[t]);
	}
	for (int t = 0; t < T; t++) {
		pthread_join(th[t], NULL);
		/* 0 (published or duplicate), or -EEXIST if it started after
		 * another had already published. */
		ck_assert_msg(a[t].rc == 0 || a[t].rc == -EEXIST,
			      "writer %d: %d", t, a[t].rc);
	}
	gauges();
	ck_assert_uint_eq(st.objects, 1);
	ck_assert_uint_eq(st.bytes, N);
	ck_assert_uint_eq(st.reserved, 0);
	ck_assert_uint_eq(st.writers, 0);
	assert_content(dg, 99, N);
	assert_tmp_empty(_i);
	free(data);
	close_db();
}
END_TEST

struct reader_arg {
	const char *dg;
	pthread_barrier_t *bar;
	uint8_t *want;
	size_t n;
	int ok;
};

static void *race_reader(void *p)
{
	struct reader_arg *a = p;
	drp_cache_stats_t my = {0};
	drp_cache_reader_t *r;
	uint8_t buf[4096];
	size_t pos = 0;
	if (api->read_open(db, &my, a->dg, 0, &r, NULL) != 0)
		return NULL;
	/* First chunk before the removal, the rest after. */
	ssize_t k = api->read(db, &my, r, buf, sizeof(buf));
	a->ok = k == (ssize_t)sizeof(buf) && memcmp(buf, a->want, k) == 0;
	pos = (size_t)k;
	pthread_barrier_wait(a->bar);
	pthread_barrier_wait(a->bar);
	while ((k = api->read(db, &my, r, buf, sizeof(buf))) > 0) {
		if (memcmp(buf, a->want + pos, (size_t)k) != 0)
			a->ok = 0;
		pos += (size_t)k;
	}
	if (k < 0 || pos != a->n)
		a->ok = 0;
	api->read_close(db, &my, r);
	return NULL;
}

START_TEST(readers_survive_remove)
{
	enum { N = 1 << 20, T = 4 };
	char dg[DRP_DIGEST_STRSIZE];
	uint8_t *want = malloc(N);
	pthread_t th[T];
	struct reader_arg a[T];
	pthread_barrier_t bar;
	drp_cache_reader_t *r;

	open_db(_i, "readremove", 4 << 20);
	fill(want, N, 3);
	ck_assert_int_eq(put_seed(3, N, dg, N), 0);
	pthread_barrier_init(&bar, NULL, T + 1);
	for (int t = 0; t < T; t++) {
		a[t] = (struct reader_arg){
			.dg = dg, .bar = &bar, .want = want, .n = N};
		pthread_create(&th[t], NULL, race_reader, &a[t]);
	}
	pthread_barrier_wait(&bar); /* all readers open and mid-object */
	ck_assert_int_eq(api->remove(db, &st, dg), 0);
	ck_assert_int_eq(api->lookup(db, &st, dg, NULL), -ENOENT);
	ck_assert_int_eq(api->read_open(db, &st, dg, 0, &r, NULL), -ENOENT);
	ck_assert_int_eq(api->remove(db, &st, dg), -ENOENT);
	gauges();
	ck_assert_uint_eq(st.objects, 0);
	ck_assert_uint_eq(st.readers, T);
	pthread_barrier_wait(&bar); /* readers continue after the removal */
	for (int t = 0; t < T; t++) {
		pthread_join(th[t], NULL);
		ck_assert_msg(a[t].ok, "reader %d saw wrong bytes", t);
	}
	gauges();
	ck_assert_uint_eq(st.readers, 0);
	ck_assert_uint_eq(st.removals, 1);
	/* It can be stored again afterwards. */
	ck_assert_int_eq(put_seed(3, N, dg, 0), 0);
	assert_content(dg, 3, N);
	pthread_barrier_destroy(&bar);
	free(want);
	close_db();
}
END_TEST

/* Budget 1000: high 950, low 900 (defaults 95 % / 90 %). */
START_TEST(evict_lru)
{
	char a[DRP_DIGEST_STRSIZE], b[DRP_DIGEST_STRSIZE];
	char c[DRP_DIGEST_STRSIZE], d[DRP_DIGEST_STRSIZE];
	char e[DRP_DIGEST_STRSIZE];

	open_db(_i, "evict", 1000);
	ck_assert_int_eq(put_seed(1, 300, a, 300), 0);
	ck_assert_int_eq(put_seed(2, 300, b, 300), 0);
	ck_assert_int_eq(put_seed(3, 300, c, 300), 0);
	ck_assert_uint_eq(st.evictions, 0);
	/* A used again: B is now least recently used. */
	ck_assert_int_eq(api->lookup(db, &st, a, NULL), 0);
	/* 900 + 300 > 950: evict LRU down to <= 900 with D: B only. */
	ck_assert_int_eq(put_seed(4, 300, d, 300), 0);
	ck_assert_uint_eq(st.evictions, 1);
	ck_assert_uint_eq(st.evicted_bytes, 300);
	ck_assert_int_eq(api->lookup(db, &st, b, NULL), -ENOENT);
	ck_assert_int_eq(api->lookup(db, &st, a, NULL), 0);
	ck_assert_int_eq(api->lookup(db, &st, c, NULL), 0);
	ck_assert_int_eq(api->lookup(db, &st, d, NULL), 0);
	/* The lookups above went A, C, D: A is now the LRU and goes for E
	 * (unknown length: reserved as it grows, same result). */
	ck_assert_int_eq(put_seed(5, 300, e, 0), 0);
	ck_assert_uint_eq(st.evictions, 2);
	ck_assert_int_eq(api->lookup(db, &st, a, NULL), -ENOENT);
	ck_assert_int_eq(api->lookup(db, &st, c, NULL), 0);
	ck_assert_int_eq(api->lookup(db, &st, d, NULL), 0);
	ck_assert_int_eq(api->lookup(db, &st, e, NULL), 0);
	assert_content(e, 5, 300);
	gauges();
	ck_assert_uint_eq(st.objects, 3);
	ck_assert_uint_eq(st.bytes, 900);
	ck_assert_uint_le(st.bytes, 1000);
	close_db();
}
END_TEST

START_TEST(evict_skips_pinned)
{
	char a[DRP_DIGEST_STRSIZE], b[DRP_DIGEST_STRSIZE];
	char c[DRP_DIGEST_STRSIZE];
	drp_cache_reader_t *r;

	open_db(_i, "pinned", 1000);
	ck_assert_int_eq(put_seed(1, 600, a, 600), 0);
	ck_assert_int_eq(api->read_open(db, &st, a, 0, &r, NULL), 0);
	/* A is pinned by the reader: no room for B, known or unknown
	 * length. The writer still verifies: a wrong digest is -EBADMSG. */
	ck_assert_int_eq(put_seed(2, 600, b, 600), -ENOSPC);
	ck_assert_int_eq(put_seed(2, 600, b, 0), -ENOSPC);
	ck_assert_int_eq(put_obj(b, "x", 1, 600, 1), -EBADMSG);
	ck_assert_uint_eq(st.no_space, 3);
	ck_assert_uint_eq(st.evictions, 0);
	ck_assert_int_eq(api->lookup(db, &st, b, NULL), -ENOENT);
	/* A small object still fits beside A. */
	ck_assert_int_eq(put_seed(3, 300, c, 300), 0);
	size_t got;
	uint8_t *buf = read_all(r, &got, 100);
	api->read_close(db, &st, r);
	ck_assert_uint_eq(got, 600);
	free(buf);
	assert_tmp_empty(_i);
	/* Unpinned now: 900 + 600 > 950, so A (the LRU) goes; C + B =
	 * 900 <= low watermark, so C stays. */
	ck_assert_int_eq(put_seed(2, 600, b, 600), 0);
	ck_assert_int_eq(api->lookup(db, &st, a, NULL), -ENOENT);
	ck_assert_int_eq(api->lookup(db, &st, c, NULL), 0);
	ck_assert_int_eq(api->lookup(db, &st, b, NULL), 0);
	ck_assert_uint_eq(st.evictions, 1);
	gauges();
	ck_assert_uint_eq(st.bytes, 900);
	close_db();
}
END_TEST

START_TEST(too_big)
{
	char a[DRP_DIGEST_STRSIZE];
	open_db(_i, "toobig", 1000);
	/* Announced too big, unannounced too big: -EFBIG, nothing stored. */
	ck_assert_int_eq(put_seed(1, 1001, a, 1001), -EFBIG);
	ck_assert_int_eq(put_seed(1, 1001, a, 0), -EFBIG);
	ck_assert_int_eq(api->lookup(db, &st, a, NULL), -ENOENT);
	/* A mismatch still wins over the size verdict. */
	ck_assert_int_eq(put_obj(a, "nope", 4, 5000, 4), -EBADMSG);
	ck_assert_uint_eq(st.too_big, 3);
	ck_assert_uint_eq(st.digest_mismatches, 1);
	/* Exactly max_size fits (it evicts everything else if needed). */
	ck_assert_int_eq(put_seed(2, 1000, a, 1000), 0);
	gauges();
	ck_assert_uint_eq(st.bytes, 1000);
	ck_assert_uint_eq(st.reserved, 0);
	assert_tmp_empty(_i);
	close_db();
}
END_TEST

/* A spool as the core makes one: the backend's own (spool_open) when it
 * has the op, else an unlinked file in base_dir; filled with n bytes of
 * seed's content. */
static int spool_with(uint32_t seed, size_t n, char dg[DRP_DIGEST_STRSIZE],
		      bool own)
{
	int fd;
	if (own && DRP_CACHE_HAS_OP(api, spool_open)) {
		fd = api->spool_open(db, &st);
	} else {
		char path[600];
		snprintf(path, sizeof(path), "%s/spool-XXXXXX", base_dir);
		fd = mkstemp(path);
		unlink(path);
	}
	ck_assert_int_ge(fd, 0);
	uint8_t *p = malloc(n ? n : 1);
	fill(p, n, seed);
	digest_of(p, n, dg);
	ck_assert_int_eq(pwrite(fd, p, n, 0), (ssize_t)n);
	free(p);
	return fd;
}

START_TEST(adopt_spool)
{
	char a[DRP_DIGEST_STRSIZE], b[DRP_DIGEST_STRSIZE];
	open_db(_i, "adopt", 1 << 20);
	/* The backend's own spool (fs: an O_TMPFILE, linked into place). */
	int fd = spool_with(1, 300000, a, true);
	ck_assert_int_eq(drp_cache_adopt(api, db, &st, a, fd, 300000), 0);
	assert_content(a, 1, 300000);
	/* Adopting it again: already stored, 0, counted as a duplicate. */
	ck_assert_int_eq(drp_cache_adopt(api, db, &st, a, fd, 300000), 0);
	ck_assert_uint_eq(st.commits, 1);
	ck_assert_uint_eq(st.commit_dups, 1);
	close(fd);
	assert_content(a, 1, 300000); /* the stored copy outlives the fd */
	/* A file of the caller's own (fs: copied, not linked). */
	fd = spool_with(2, 70000, b, false);
	ck_assert_int_eq(drp_cache_adopt(api, db, &st, b, fd, 70000), 0);
	close(fd);
	assert_content(b, 2, 70000);
	/* Only the first len bytes become the object. */
	fd = spool_with(3, 5000, b, true);
	ck_assert_int_eq(pwrite(fd, "trailing", 8, 5000), 8);
	ck_assert_int_eq(drp_cache_adopt(api, db, &st, b, fd, 5000), 0);
	close(fd);
	assert_content(b, 3, 5000);
	ck_assert_int_eq(drp_cache_adopt(api, db, &st, "sha256:xyz", 0, 1),
			 -EINVAL);
	gauges();
	ck_assert_uint_eq(st.objects, 3);
	ck_assert_uint_eq(st.bytes, 375000);
	ck_assert_uint_eq(st.reserved, 0);
	ck_assert_uint_eq(st.writers, 0);
	assert_tmp_empty(_i);
	close_db();
}
END_TEST

START_TEST(adopt_budget)
{
	char a[DRP_DIGEST_STRSIZE], b[DRP_DIGEST_STRSIZE];
	open_db(_i, "adoptbudget", 10000);
	/* Larger than the budget: -EFBIG, nothing stored. */
	int fd = spool_with(1, 10001, a, true);
	ck_assert_int_eq(drp_cache_adopt(api, db, &st, a, fd, 10001), -EFBIG);
	close(fd);
	ck_assert_int_eq(api->lookup(db, &st, a, NULL), -ENOENT);
	ck_assert_uint_eq(st.too_big, 1);
	/* Two that do not fit together: the older one is evicted. */
	fd = spool_with(2, 6000, a, true);
	ck_assert_int_eq(drp_cache_adopt(api, db, &st, a, fd, 6000), 0);
	close(fd);
	fd = spool_with(3, 6000, b, true);
	ck_assert_int_eq(drp_cache_adopt(api, db, &st, b, fd, 6000), 0);
	close(fd);
	ck_assert_int_eq(api->lookup(db, &st, a, NULL), -ENOENT);
	assert_content(b, 3, 6000);
	ck_assert_uint_eq(st.evictions, 1);
	gauges();
	ck_assert_uint_eq(st.bytes, 6000);
	ck_assert_uint_eq(st.reserved, 0);
	assert_tmp_empty(_i);
	close_db();
}
END_TEST

struct iter_acc {
	char dg[4][DRP_DIGEST_STRSIZE];
	uint64_t size[4];
	int64_t last[4];
	int n;
	int stop_at;
};

static int iter_cb(const char *digest, const drp_cache_info_t *info, void *arg)
{
	struct iter_acc *acc = arg;
	if (acc->n == acc->stop_at)
		return 42;
	snprintf(acc->dg[acc->n], DRP_DIGEST_STRSIZE, "%s", digest);
	acc->last[acc->n] = info->last_used;
	acc->size[acc->n++] = info->size;
	return 0;
}

START_TEST(iterate_lru_order)
{
	char a[DRP_DIGEST_STRSIZE], b[DRP_DIGEST_STRSIZE];
	char c[DRP_DIGEST_STRSIZE];
	struct iter_acc acc = {.stop_at = -1};

	open_db(_i, "iterate", 1 << 20);
	ck_assert_int_eq(put_seed(1, 10, a, 0), 0);
	ck_assert_int_eq(put_seed(2, 20, b, 0), 0);
	ck_assert_int_eq(put_seed(3, 30, c, 0), 0);
	ck_assert_int_eq(api->lookup(db, &st, a, NULL), 0);
	/* Least recently used first: B, C, A. */
	ck_assert_int_eq(api->iterate(db, &st, iter_cb, &acc), 0);
	ck_assert_int_eq(acc.n, 3);
	ck_assert_str_eq(acc.dg[0], b);
	ck_assert_str_eq(acc.dg[1], c);
	ck_assert_str_eq(acc.dg[2], a);
	ck_assert_uint_eq(acc.size[0], 20);
	ck_assert_uint_eq(acc.size[2], 10);
	/* A non-zero callback value stops and is returned. */
	acc = (struct iter_acc){.stop_at = 1};
	ck_assert_int_eq(api->iterate(db, &st, iter_cb, &acc), 42);
	ck_assert_int_eq(acc.n, 1);
	close_db();
}
END_TEST

START_TEST(meta_records)
{
	char big[DRP_CACHE_META_MAX + 1];
	char buf[64];
	size_t len;
	const char key[] = "k\0with nul";

	open_db(_i, "meta", 1000);
	len = sizeof(buf);
	ck_assert_int_eq(api->meta_get(db, &st, "a", 1, buf, &len), -ENOENT);
	ck_assert_int_eq(api->meta_put(db, &st, "a", 1, "one", 3), 0);
	len = sizeof(buf);
	ck_assert_int_eq(api->meta_get(db, &st, "a", 1, buf, &len), 0);
	ck_assert_uint_eq(len, 3);
	ck_assert_int_eq(memcmp(buf, "one", 3), 0);
	/* Overwrite with a longer value. */
	ck_assert_int_eq(api->meta_put(db, &st, "a", 1, "second", 6), 0);
	len = sizeof(buf);
	ck_assert_int_eq(api->meta_get(db, &st, "a", 1, buf, &len), 0);
	ck_assert_uint_eq(len, 6);
	ck_assert_int_eq(memcmp(buf, "second", 6), 0);
	/* Too small a buffer: -ERANGE and the needed length. */
	len = 2;
	ck_assert_int_eq(api->meta_get(db, &st, "a", 1, buf, &len), -ERANGE);
	ck_assert_uint_eq(len, 6);
	/* Keys are bytes: an embedded NUL makes a distinct key. */
	ck_assert_int_eq(api->meta_put(db, &st, key, sizeof(key) - 1, "", 0),
			 0);
	len = 0;
	ck_assert_int_eq(
		api->meta_get(db, &st, key, sizeof(key) - 1, NULL, &len), 0);
	ck_assert_uint_eq(len, 0);
	len = sizeof(buf);
	ck_assert_int_eq(api->meta_get(db, &st, "k", 1, buf, &len), -ENOENT);
	/* Limits: value of exactly 64 KiB is fine, one more byte is not;
	 * empty and over-long keys are refused. */
	memset(big, 'v', sizeof(big));
	ck_assert_int_eq(
		api->meta_put(db, &st, "big", 3, big, DRP_CACHE_META_MAX), 0);
	ck_assert_int_eq(
		api->meta_put(db, &st, "big", 3, big, DRP_CACHE_META_MAX + 1),
		-EINVAL);
	char *rb = malloc(DRP_CACHE_META_MAX);
	len = DRP_CACHE_META_MAX;
	ck_assert_int_eq(api->meta_get(db, &st, "big", 3, rb, &len), 0);
	ck_assert_uint_eq(len, DRP_CACHE_META_MAX);
	ck_assert_int_eq(memcmp(rb, big, DRP_CACHE_META_MAX), 0);
	free(rb);
	ck_assert_int_eq(api->meta_put(db, &st, "", 0, "x", 1), -EINVAL);
	ck_assert_int_eq(
		api->meta_put(db, &st, big, DRP_CACHE_KEY_MAX + 1, "x", 1),
		-EINVAL);
	ck_assert_int_eq(api->meta_put(db, &st, big, DRP_CACHE_KEY_MAX, "x", 1),
			 0);
	/* Delete; a second delete is -ENOENT. */
	ck_assert_int_eq(api->meta_del(db, &st, "a", 1), 0);
	ck_assert_int_eq(api->meta_del(db, &st, "a", 1), -ENOENT);
	len = sizeof(buf);
	ck_assert_int_eq(api->meta_get(db, &st, "a", 1, buf, &len), -ENOENT);
	/* Metadata does not count against the object budget. */
	gauges();
	ck_assert_uint_eq(st.bytes, 0);
	ck_assert_uint_eq(st.meta_puts, 5);
	ck_assert_uint_eq(st.meta_dels, 1);
	ck_assert_uint_eq(st.meta_hits, 5);
	ck_assert_uint_eq(st.meta_misses, 3);
	close_db();
}
END_TEST

struct meta_acc {
	int n, stop_at;
	char keys[8][32];
	bool del; /* delete each record from the callback */
};

static int meta_cb(const void *key, size_t keylen, const void *val,
		   size_t vallen, void *arg)
{
	struct meta_acc *acc = arg;
	if (acc->n == acc->stop_at)
		return 7;
	ck_assert_int_lt(acc->n, 8);
	ck_assert_uint_lt(keylen, sizeof(acc->keys[0]));
	memcpy(acc->keys[acc->n], key, keylen);
	acc->keys[acc->n][keylen] = '\0';
	/* The value is the key's first byte repeated keylen times. */
	ck_assert_uint_eq(vallen, keylen);
	for (size_t i = 0; i < vallen; i++)
		ck_assert_int_eq(((const char *)val)[i],
				 ((const char *)key)[0]);
	if (acc->del)
		ck_assert_int_eq(api->meta_del(db, &st, key, keylen), 0);
	acc->n++;
	return 0;
}

static int cmp_key(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void put_rec(const char *key)
{
	char val[32];
	size_t n = strlen(key);
	memset(val, key[0], n);
	ck_assert_int_eq(api->meta_put(db, &st, key, n, val, n), 0);
}

/* v1.2: the records whose key starts with a prefix, every record, a stop
 * value, deleting from the callback. */
START_TEST(meta_iterate)
{
	open_db(_i, "metaiter", 1000);
	ck_assert(DRP_CACHE_HAS_OP(api, meta_iterate));
	put_rec("tag a b c -");
	put_rec("tag a b d -");
	put_rec("seen x y z");
	put_rec("mt sha256:1");
	put_rec("tagx");
	struct meta_acc acc = {.stop_at = -1};
	ck_assert_int_eq(api->meta_iterate(db, &st, "tag ", 4, meta_cb, &acc),
			 0);
	ck_assert_int_eq(acc.n, 2);
	qsort(acc.keys, (size_t)acc.n, sizeof(acc.keys[0]), cmp_key);
	ck_assert_str_eq(acc.keys[0], "tag a b c -");
	ck_assert_str_eq(acc.keys[1], "tag a b d -");
	acc = (struct meta_acc){.stop_at = -1};
	ck_assert_int_eq(api->meta_iterate(db, &st, "", 0, meta_cb, &acc), 0);
	ck_assert_int_eq(acc.n, 5);
	acc = (struct meta_acc){.stop_at = 1};
	ck_assert_int_eq(api->meta_iterate(db, &st, "", 0, meta_cb, &acc), 7);
	ck_assert_int_eq(acc.n, 1);
	/* Deleting what the callback is given: every record goes, once. */
	acc = (struct meta_acc){.stop_at = -1, .del = true};
	ck_assert_int_eq(api->meta_iterate(db, &st, "t", 1, meta_cb, &acc), 0);
	ck_assert_int_eq(acc.n, 3);
	acc = (struct meta_acc){.stop_at = -1};
	ck_assert_int_eq(api->meta_iterate(db, &st, "", 0, meta_cb, &acc), 0);
	ck_assert_int_eq(acc.n, 2);
	/* Objects are not records. */
	char dg[DRP_DIGEST_STRSIZE];
	ck_assert_int_eq(put_seed(5, 100, dg, 0), 0);
	acc = (struct meta_acc){.stop_at = -1};
	ck_assert_int_eq(api->meta_iterate(db, &st, "", 0, meta_cb, &acc), 0);
	ck_assert_int_eq(acc.n, 2);
	close_db();
}
END_TEST

/* v1.2: peek_open reads an object without making it recently used. */
START_TEST(peek_open)
{
	char a[DRP_DIGEST_STRSIZE], b[DRP_DIGEST_STRSIZE];
	char c[DRP_DIGEST_STRSIZE];
	struct iter_acc acc = {.stop_at = -1};
	drp_cache_reader_t *r;
	drp_cache_info_t info;

	open_db(_i, "peek", 1 << 20);
	ck_assert(DRP_CACHE_HAS_OP(api, peek_open));
	ck_assert_int_eq(put_seed(1, 10, a, 0), 0);
	ck_assert_int_eq(put_seed(2, 5000, b, 0), 0);
	ck_assert_int_eq(put_seed(3, 30, c, 0), 0);
	/* Order A, B, C; B's content through a peek. */
	ck_assert_int_eq(api->peek_open(db, &st, b, 0, &r, &info), 0);
	ck_assert_uint_eq(info.size, 5000);
	size_t got;
	uint8_t *buf = read_all(r, &got, 1000);
	api->read_close(db, &st, r);
	uint8_t want[5000];
	fill(want, sizeof(want), 2);
	ck_assert_uint_eq(got, 5000);
	ck_assert_int_eq(memcmp(buf, want, got), 0);
	free(buf);
	ck_assert_int_eq(api->peek_open(db, &st, b, 5001, &r, NULL), -EINVAL);
	ck_assert_int_eq(api->iterate(db, &st, iter_cb, &acc), 0);
	ck_assert_int_eq(acc.n, 3);
	ck_assert_str_eq(acc.dg[0], a);
	ck_assert_str_eq(acc.dg[1], b);
	ck_assert_str_eq(acc.dg[2], c);
	/* read_open is a use: B moves to the end. */
	ck_assert_int_eq(api->read_open(db, &st, b, 0, &r, NULL), 0);
	api->read_close(db, &st, r);
	acc = (struct iter_acc){.stop_at = -1};
	ck_assert_int_eq(api->iterate(db, &st, iter_cb, &acc), 0);
	ck_assert_str_eq(acc.dg[0], a);
	ck_assert_str_eq(acc.dg[2], b);
	ck_assert_int_eq(api->peek_open(db, &st, "sha256:00", 0, &r, NULL),
			 -EINVAL);
	ck_assert_int_eq(api->remove(db, &st, a), 0);
	ck_assert_int_eq(api->peek_open(db, &st, a, 0, &r, NULL), -ENOENT);
	close_db();
}
END_TEST

START_TEST(meta_many)
{
	/* Enough keys to make the memory backend's table grow. */
	char k[32], v[32], buf[32];
	size_t len;
	open_db(_i, "metamany", 1000);
	for (int n = 0; n < 300; n++) {
		snprintf(k, sizeof(k), "key-%d", n);
		snprintf(v, sizeof(v), "value-%d", n * 7);
		ck_assert_int_eq(
			api->meta_put(db, &st, k, strlen(k), v, strlen(v)), 0);
	}
	for (int n = 0; n < 300; n++) {
		snprintf(k, sizeof(k), "key-%d", n);
		snprintf(v, sizeof(v), "value-%d", n * 7);
		len = sizeof(buf);
		ck_assert_int_eq(
			api->meta_get(db, &st, k, strlen(k), buf, &len), 0);
		ck_assert_uint_eq(len, strlen(v));
		ck_assert_int_eq(memcmp(buf, v, len), 0);
	}
	close_db();
}
END_TEST

START_TEST(tag_records)
{
	char key[DRP_CACHE_KEY_MAX + 1], acc[512];
	drp_cache_tag_t t = {0}, got;
	int64_t exp = 0;

	open_db(_i, "tags", 1000);
	const char *accept[] = {
		"application/vnd.oci.image.index.v1+json",
		"application/vnd.docker.distribution.manifest.v2+json; q=0.9, "
		"Application/VND.docker.distribution.manifest.list.v2+json",
		"application/vnd.oci.image.index.v1+json"};
	/* Repeated headers merged, parameters dropped, lower-cased,
	 * de-duplicated, sorted. */
	ck_assert_int_gt(drp_cache_accept_key(acc, sizeof(acc), accept, 3), 0);
	ck_assert_str_eq(acc,
			 "application/vnd.docker.distribution.manifest.list."
			 "v2+json,application/vnd.docker.distribution."
			 "manifest.v2+json,application/vnd.oci.image.index."
			 "v1+json");
	/* Same set in another order and spacing: the same key. */
	const char *accept2[] = {
		" application/vnd.oci.image.index.v1+json ,application/"
		"vnd.docker.distribution.manifest.list.v2+json,application/"
		"vnd.docker.distribution.manifest.v2+json"};
	char acc2[512];
	drp_cache_accept_key(acc2, sizeof(acc2), accept2, 1);
	ck_assert_str_eq(acc, acc2);
	/* No Accept at all, and garbage only: "-". */
	ck_assert_int_eq(drp_cache_accept_key(acc2, sizeof(acc2), NULL, 0), 1);
	ck_assert_str_eq(acc2, "-");
	const char *junk[] = {" , ;q=1, text"};
	drp_cache_accept_key(acc2, sizeof(acc2), junk, 1);
	ck_assert_str_eq(acc2, "-");
	/* Too small a buffer. */
	ck_assert_int_eq(drp_cache_accept_key(acc2, 10, accept, 3),
			 -ENAMETOOLONG);

	ck_assert_int_eq(drp_cache_tag_key(key, sizeof(key), "docker.io",
					   "library/alpine", "3.19", acc),
			 (int)strlen("tag docker.io library/alpine 3.19 ") +
				 (int)strlen(acc));
	ck_assert_int_eq(strncmp(key, "tag docker.io library/alpine 3.19 ", 34),
			 0);
	/* Fields with spaces or empty fields would make keys ambiguous. */
	ck_assert_int_eq(drp_cache_tag_key(key, sizeof(key), "docker.io", "a b",
					   "t", "-"),
			 -EINVAL);
	ck_assert_int_eq(
		drp_cache_tag_key(key, sizeof(key), "docker.io", "r", "", "-"),
		-EINVAL);
	ck_assert_int_eq(drp_cache_tag_key(key, 8, "docker.io", "r", "t", "-"),
			 -ENAMETOOLONG);

	drp_cache_tag_key(key, sizeof(key), "docker.io", "library/alpine",
			  "3.19", acc);
	ck_assert_int_eq(drp_cache_tag_get(api, db, &st, key, &got), -ENOENT);
	digest_of("manifest", 8, t.digest);
	snprintf(t.media_type, sizeof(t.media_type),
		 "application/vnd.oci.image.index.v1+json");
	t.size = 1234;
	t.fetched_at = 1700000000;
	ck_assert_int_eq(drp_cache_tag_put(api, db, &st, key, &t), 0);
	ck_assert_int_eq(drp_cache_tag_get(api, db, &st, key, &got), 0);
	ck_assert_str_eq(got.digest, t.digest);
	ck_assert_str_eq(got.media_type, t.media_type);
	ck_assert_uint_eq(got.size, 1234);
	ck_assert_int_eq(got.fetched_at, 1700000000);
	/* A different Accept key is a different record. */
	drp_cache_tag_key(acc2, sizeof(acc2), "docker.io", "library/alpine",
			  "3.19", "application/vnd.oci.image.index.v1+json");
	ck_assert_int_eq(drp_cache_tag_get(api, db, &st, acc2, &got), -ENOENT);
	/* Invalid records are refused on put, detected on get. */
	t.digest[10] = 'X';
	ck_assert_int_eq(drp_cache_tag_put(api, db, &st, key, &t), -EINVAL);
	ck_assert_int_eq(api->meta_put(db, &st, key, strlen(key), "junk", 4),
			 0);
	ck_assert_int_eq(drp_cache_tag_get(api, db, &st, key, &got), -EBADMSG);
	ck_assert_int_eq(drp_cache_tag_del(api, db, &st, key), 0);
	ck_assert_int_eq(drp_cache_tag_get(api, db, &st, key, &got), -ENOENT);

	/* Negative entries: active before expiry, gone (and deleted)
	 * after; kept apart from the tag record of the same key. */
	ck_assert_int_eq(drp_cache_neg_put(api, db, &st, key, 1000), 0);
	ck_assert_int_eq(drp_cache_neg_get(api, db, &st, key, 999, &exp), 0);
	ck_assert_int_eq(exp, 1000);
	ck_assert_int_eq(drp_cache_tag_get(api, db, &st, key, &got), -ENOENT);
	ck_assert_int_eq(drp_cache_neg_get(api, db, &st, key, 1000, &exp),
			 -ENOENT);
	ck_assert_int_eq(drp_cache_neg_del(api, db, &st, key), -ENOENT);
	ck_assert_int_eq(drp_cache_neg_put(api, db, &st, key, 5000), 0);
	ck_assert_int_eq(drp_cache_neg_del(api, db, &st, key), 0);
	ck_assert_int_eq(drp_cache_neg_get(api, db, &st, key, 1, NULL),
			 -ENOENT);

	/* "Seen in repository" marks. */
	ck_assert_int_eq(drp_cache_seen_get(api, db, &st, t.digest, "quay.io",
					    "org/app"),
			 -EINVAL); /* t.digest was spoiled above */
	digest_of("layer", 5, t.digest);
	ck_assert_int_eq(drp_cache_seen_get(api, db, &st, t.digest, "quay.io",
					    "org/app"),
			 -ENOENT);
	ck_assert_int_eq(drp_cache_seen_put(api, db, &st, t.digest, "quay.io",
					    "org/app"),
			 0);
	ck_assert_int_eq(drp_cache_seen_get(api, db, &st, t.digest, "quay.io",
					    "org/app"),
			 0);
	ck_assert_int_eq(drp_cache_seen_get(api, db, &st, t.digest, "quay.io",
					    "org/other"),
			 -ENOENT);
	close_db();
}
END_TEST

/* Records the cache reads back from its own store feed response headers
 * (the manifest's Content-Type): a damaged one with a line break or other
 * control character is refused like any unreadable record, never served.
 * (Found by tests/fuzz/fuzz_cachemeta.) */
START_TEST(damaged_records_not_served)
{
	char key[DRP_CACHE_KEY_MAX + 1], digest[DRP_CACHE_DIGEST_SIZE];
	char val[512], ctype[DRP_CACHE_MEDIA_TYPE_MAX + 1];
	drp_cache_tag_t got;

	open_db(_i, "damaged", 1000);
	digest_of("manifest", 8, digest);
	drp_cache_tag_key(key, sizeof(key), "docker.io", "library/alpine",
			  "3.19", "-");
	int n = snprintf(val, sizeof(val),
			 "drp-tag 1\n%s\napplication/json\rX-Evil: 1\n"
			 "12\n1700000000\n",
			 digest);
	ck_assert_int_eq(
		api->meta_put(db, &st, key, strlen(key), val, (size_t)n), 0);
	ck_assert_int_eq(drp_cache_tag_get(api, db, &st, key, &got), -EBADMSG);

	/* The media type record of a manifest stored by digest. */
	ck_assert_int_eq(drp_cache_mtype_put(api, db, &st, digest,
					     "application/json\r\nX-Evil: 1"),
			 -EINVAL);
	ck_assert_int_eq(
		drp_cache_mtype_get(api, db, &st, digest, ctype, sizeof(ctype)),
		-ENOENT);
	ck_assert_int_eq(drp_cache_mtype_put(api, db, &st, digest,
					     "application/vnd.oci.image."
					     "manifest.v1+json"),
			 0);
	ck_assert_int_eq(
		drp_cache_mtype_get(api, db, &st, digest, ctype, sizeof(ctype)),
		0);
	ck_assert_str_eq(ctype, "application/vnd.oci.image.manifest.v1+json");
	char mk[128];
	snprintf(mk, sizeof(mk), "mt %s", digest);
	ck_assert_int_eq(
		api->meta_put(db, &st, mk, strlen(mk), "text/x\rEvil", 11), 0);
	ck_assert_int_eq(
		drp_cache_mtype_get(api, db, &st, digest, ctype, sizeof(ctype)),
		-EBADMSG);
	ck_assert_int_eq(api->meta_put(db, &st, mk, strlen(mk), "a\0b", 3), 0);
	ck_assert_int_eq(
		drp_cache_mtype_get(api, db, &st, digest, ctype, sizeof(ctype)),
		-EBADMSG);
	close_db();
}
END_TEST

/* A tag key is "tag <host> <repo> <tag> <accept>", exactly what fits:
 * one byte short of room, or longer than DRP_CACHE_KEY_MAX, is
 * -ENAMETOOLONG; a field with a blank is -EINVAL. */
START_TEST(tag_key_bounds)
{
	char buf[DRP_CACHE_KEY_MAX + 64], want[DRP_CACHE_KEY_MAX + 64];
	static char repo[DRP_CACHE_KEY_MAX];
	int wl = snprintf(want, sizeof(want), "tag %s %s %s %s", "quay.io",
			  "org/app", "v1.2", "-");
	ck_assert_int_eq(drp_cache_tag_key(buf, sizeof(buf), "quay.io",
					   "org/app", "v1.2", "-"),
			 wl);
	ck_assert_str_eq(buf, want);
	ck_assert_int_eq(drp_cache_tag_key(buf, (size_t)wl + 1, "quay.io",
					   "org/app", "v1.2", "-"),
			 wl);
	ck_assert_str_eq(buf, want);
	ck_assert_int_eq(drp_cache_tag_key(buf, (size_t)wl, "quay.io",
					   "org/app", "v1.2", "-"),
			 -ENAMETOOLONG);
	ck_assert_int_eq(drp_cache_tag_key(buf, sizeof(buf), "quay.io",
					   "org app", "v1.2", "-"),
			 -EINVAL);
	/* DRP_CACHE_KEY_MAX bytes exactly, then one more. */
	size_t fixed = strlen("tag h  t -");
	memset(repo, 'r', DRP_CACHE_KEY_MAX - fixed);
	repo[DRP_CACHE_KEY_MAX - fixed] = '\0';
	ck_assert_int_eq(
		drp_cache_tag_key(buf, sizeof(buf), "h", repo, "t", "-"),
		DRP_CACHE_KEY_MAX);
	ck_assert_uint_eq(strlen(buf), DRP_CACHE_KEY_MAX);
	repo[DRP_CACHE_KEY_MAX - fixed] = 'r';
	repo[DRP_CACHE_KEY_MAX - fixed + 1] = '\0';
	ck_assert_int_eq(
		drp_cache_tag_key(buf, sizeof(buf), "h", repo, "t", "-"),
		-ENAMETOOLONG);
}
END_TEST

/* More media types than an Accept key holds: no key (the request is not
 * answered from a tag record), rather than a key that depends on which
 * types came first. (Found by tests/fuzz/fuzz_manifest.) */
START_TEST(accept_key_too_many_types)
{
	char a[1024], b[1024], one[64], two[64];
	char list[2048] = "", rev[2048] = "";
	for (int i = 0; i < 33; i++) {
		snprintf(one, sizeof(one), "%sa/t%d", i ? ", " : "", i);
		strcat(list, one);
		snprintf(two, sizeof(two), "%sa/t%d", i ? ", " : "", 32 - i);
		strcat(rev, two);
	}
	const char *v1[] = {list}, *v2[] = {rev};
	int r1 = drp_cache_accept_key(a, sizeof(a), v1, 1);
	int r2 = drp_cache_accept_key(b, sizeof(b), v2, 1);
	ck_assert_int_eq(r1, -E2BIG);
	ck_assert_int_eq(r2, -E2BIG);
	/* 32 is fine. */
	char *cut = strrchr(list, ',');
	*cut = '\0';
	ck_assert_int_gt(drp_cache_accept_key(a, sizeof(a), v1, 1), 0);
}
END_TEST

struct mix_arg {
	int id;
	int bad;
};

/* Many threads writing, reading, removing small objects in a tight
 * budget: every byte read must be right, the budget must hold. */
static void *mixer(void *p)
{
	struct mix_arg *a = p;
	drp_cache_stats_t my = {0};
	uint8_t data[2000], buf[2000];
	char dg[DRP_DIGEST_STRSIZE];
	for (int n = 0; n < 200; n++) {
		uint32_t seed = (uint32_t)((a->id * 7 + n) % 23);
		size_t len = 500 + seed * 60;
		fill(data, len, seed);
		digest_of(data, len, dg);
		drp_cache_writer_t *w;
		int rc = api->write_begin(
			db, &my, dg, n % 2 ? len : DRP_CACHE_LEN_UNKNOWN, &w);
		if (rc == 0) {
			api->write(db, &my, w, data, len / 2);
			api->write(db, &my, w, data + len / 2, len - len / 2);
			rc = api->commit(db, &my, w);
			if (rc != 0 && rc != -ENOSPC)
				a->bad++;
		} else if (rc != -EEXIST) {
			a->bad++;
		}
		drp_cache_reader_t *r;
		if (api->read_open(db, &my, dg, 0, &r, NULL) == 0) {
			size_t got = 0;
			ssize_t k;
			while ((k = api->read(db, &my, r, buf + got,
					      sizeof(buf) - got)) > 0)
				got += (size_t)k;
			if (k < 0 || got != len || memcmp(buf, data, len))
				a->bad++;
			if (n % 5 == 0)
				api->remove(db, &my, dg);
			api->read_close(db, &my, r);
		}
	}
	return NULL;
}

START_TEST(threaded_mix)
{
	enum { T = 4 };
	pthread_t th[T];
	struct mix_arg a[T];
	open_db(_i, "mix", 8000);
	for (int t = 0; t < T; t++) {
		a[t] = (struct mix_arg){.id = t};
		pthread_create(&th[t], NULL, mixer, &a[t]);
	}
	for (int t = 0; t < T; t++) {
		pthread_join(th[t], NULL);
		ck_assert_int_eq(a[t].bad, 0);
	}
	gauges();
	ck_assert_uint_le(st.bytes, 8000);
	ck_assert_uint_eq(st.reserved, 0);
	ck_assert_uint_eq(st.readers, 0);
	ck_assert_uint_eq(st.writers, 0);
	assert_tmp_empty(_i);
	close_db();
}
END_TEST

START_TEST(open_errors)
{
	char err[256];
	drp_cache_t *x;
	drp_cache_stats_t s = {0};
	const drp_cache_api_t *b = drp_cache_backend_find(BACKENDS[_i]);
	char d[600];
	snprintf(d, sizeof(d), "%s/openerr-%d-%d", base_dir, _i, (int)getpid());
	/* max_size 0 */
	drp_cache_conf_t c = {.dir = d};
	ck_assert_int_eq(b->open(&x, &c, &s, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "max_size must be greater than 0");
	/* low >= high */
	c = (drp_cache_conf_t){
		.dir = d, .max_size = 10, .high_pct = 80, .low_pct = 80};
	ck_assert_int_eq(b->open(&x, &c, &s, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err,
			 "watermarks must satisfy 0 < low (80) < high (80) "
			 "<= 100");
	/* high > 100 */
	c.high_pct = 101;
	ck_assert_int_eq(b->open(&x, &c, &s, err, sizeof(err)), -EINVAL);
	/* unknown params */
	c = (drp_cache_conf_t){
		.dir = d, .max_size = 10, .params = "colour=red"};
	ck_assert_int_eq(b->open(&x, &c, &s, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "colour=red"));
}
END_TEST

/* ---- fs only ------------------------------------------------------------ */

static void touch_file(const char *rel, const char *content)
{
	char p[800];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	FILE *f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	fputs(content, f);
	fclose(f);
}

static int file_exists(const char *rel)
{
	char p[800];
	struct stat sb;
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	return stat(p, &sb) == 0;
}

START_TEST(fs_restart)
{
	char a[DRP_DIGEST_STRSIZE], b[DRP_DIGEST_STRSIZE];
	char buf[16], stray[200];
	size_t len = sizeof(buf);

	open_db(0, "restart", 1 << 20);
	ck_assert_int_eq(put_seed(1, 5000, a, 0), 0);
	ck_assert_int_eq(put_seed(2, 7000, b, 7000), 0);
	ck_assert_int_eq(api->meta_put(db, &st, "tag x", 5, "v1", 2), 0);
	/* B used last: it must stay most recently used after reopening. */
	ck_assert_int_eq(api->lookup(db, &st, b, NULL), 0);

	/* Debris a crash or a stranger could leave: */
	touch_file("tmp/w17", "partial write");	       /* crashed temp */
	touch_file("tmp/d3", "half deleted");	       /* crashed delete */
	touch_file("blobs/sha256/ab/notadigest", "x"); /* odd name */
	/* valid hex, wrong shard */
	snprintf(stray, sizeof(stray), "blobs/sha256/00/%s", a + 7);
	if (strncmp(a + 7, "00", 2) != 0)
		touch_file(stray, "misplaced");
	/* upper-case hex is not the canonical name */
	char upper[128];
	snprintf(upper, sizeof(upper), "blobs/sha256/%.2s/", b + 7);
	size_t ul = strlen(upper);
	for (int i = 0; i < 64; i++)
		upper[ul + i] =
			(char)(b[7 + i] >= 'a' ? b[7 + i] - 32 : b[7 + i]);
	upper[ul + 64] = '\0';
	int has_letter = strpbrk(b + 7, "abcdef") != NULL;
	if (has_letter)
		touch_file(upper, "upper");

	reopen();
	ck_assert_uint_eq(st.index_loaded, 2);
	ck_assert_uint_eq(st.index_dropped,
			  3 + (strncmp(a + 7, "00", 2) != 0) + has_letter);
	ck_assert(!file_exists("tmp/w17"));
	ck_assert(!file_exists("tmp/d3"));
	ck_assert(!file_exists("blobs/sha256/ab/notadigest"));
	ck_assert(!file_exists(upper) || !has_letter);
	assert_content(a, 1, 5000);
	assert_content(b, 2, 7000);
	ck_assert_int_eq(api->meta_get(db, &st, "tag x", 5, buf, &len), 0);
	ck_assert_uint_eq(len, 2);
	gauges();
	ck_assert_uint_eq(st.objects, 2);
	ck_assert_uint_eq(st.bytes, 12000);
	close_db();
}
END_TEST

/* Set an object file's times to t (atime and mtime). */
static void age_file(const char *dg, time_t t)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/blobs/sha256/%.2s/%s", dir, dg + 7,
		 dg + 7);
	struct timespec ts[2] = {{.tv_sec = t}, {.tv_sec = t}};
	ck_assert_int_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static int64_t last_used_of(const char *dg)
{
	struct iter_acc acc = {.stop_at = -1};
	ck_assert_int_eq(api->iterate(db, &st, iter_cb, &acc), 0);
	for (int i = 0; i < acc.n; i++) {
		if (strcmp(acc.dg[i], dg) != 0)
			continue;
		return acc.last[i]; /* iterate is no use */
	}
	ck_abort_msg("%s not in the cache", dg);
	return 0;
}

/* Last use survives a clean restart to the second (close persists what
 * the index learned since the hourly stamp, lookups included); a peek is
 * not a use, even across a restart. */
START_TEST(fs_last_use_restart)
{
	char a[DRP_DIGEST_STRSIZE], b[DRP_DIGEST_STRSIZE];
	time_t old = time(NULL) - 7200;
	drp_cache_reader_t *r;

	open_db(0, "lastuse", 1 << 20);
	ck_assert_int_eq(put_seed(1, 100, a, 0), 0);
	ck_assert_int_eq(put_seed(2, 200, b, 0), 0);
	age_file(a, old);
	age_file(b, old);
	reopen();
	ck_assert_int_eq(last_used_of(a), old);
	ck_assert_int_eq(last_used_of(b), old);
	ck_assert_int_eq(api->lookup(db, &st, a, NULL), 0);
	ck_assert_int_eq(api->peek_open(db, &st, b, 0, &r, NULL), 0);
	api->read_close(db, &st, r);
	reopen();
	ck_assert_int_ge(last_used_of(a), time(NULL) - 5);
	ck_assert_int_eq(last_used_of(b), old);
	close_db();
}
END_TEST

START_TEST(fs_restart_lowered_budget)
{
	char a[DRP_DIGEST_STRSIZE], b[DRP_DIGEST_STRSIZE];
	char err[256];
	struct timespec ts[2] = {{.tv_sec = 1000000}, {.tv_sec = 1000000}};
	char p[800];

	open_db(0, "lowered", 1 << 20);
	ck_assert_int_eq(put_seed(1, 600, a, 0), 0);
	ck_assert_int_eq(put_seed(2, 600, b, 0), 0);
	/* Make A look old on disk: it is the one to go. */
	snprintf(p, sizeof(p), "%s/blobs/sha256/%.2s/%s", dir, a + 7, a + 7);
	ck_assert_int_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
	api->close(db, &st);

	drp_cache_conf_t c = {.dir = dir, .max_size = 1000};
	memset(&st, 0, sizeof(st));
	ck_assert_int_eq(api->open(&db, &c, &st, err, sizeof(err)), 0);
	ck_assert_uint_eq(st.index_loaded, 2);
	ck_assert_uint_eq(st.evictions, 1);
	ck_assert_int_eq(api->lookup(db, &st, a, NULL), -ENOENT);
	ck_assert_int_eq(api->lookup(db, &st, b, NULL), 0);
	ck_assert(!file_exists(p + strlen(dir) + 1));
	close_db();
}
END_TEST

START_TEST(fs_corrupt_not_served)
{
	char a[DRP_DIGEST_STRSIZE], p[800];
	drp_cache_reader_t *r, *early;
	uint8_t buf[8192];

	open_db(0, "corrupt", 1 << 20);
	ck_assert_int_eq(put_seed(1, 20000, a, 0), 0);
	ck_assert_int_eq(api->read_open(db, &st, a, 0, &early, NULL), 0);
	/* Someone truncates the file behind the cache's back. */
	snprintf(p, sizeof(p), "%s/blobs/sha256/%.2s/%s", dir, a + 7, a + 7);
	ck_assert_int_eq(truncate(p, 10000), 0);
	/* A new reader sees the size mismatch: not served, dropped. */
	ck_assert_int_eq(api->read_open(db, &st, a, 0, &r, NULL), -ENOENT);
	ck_assert_int_eq(api->lookup(db, &st, a, NULL), -ENOENT);
	ck_assert_uint_eq(st.read_errors, 1);
	/* The reader opened before gets the first 10000 bytes, then an
	 * error instead of a clean end. */
	ssize_t k, total = 0;
	while ((k = api->read(db, &st, early, buf, sizeof(buf))) > 0)
		total += k;
	ck_assert_int_eq(total, 10000);
	ck_assert_int_eq(k, -EIO);
	api->read_close(db, &st, early);

	/* A file dropped into a shard while running is not in the index:
	 * never served until a restart indexes it (the layout is trusted). */
	char b[DRP_DIGEST_STRSIZE], rel[200];
	digest_of("dropped in", 10, b);
	snprintf(rel, sizeof(rel), "blobs/sha256/%.2s/%s", b + 7, b + 7);
	touch_file(rel, "dropped in");
	ck_assert_int_eq(api->lookup(db, &st, b, NULL), -ENOENT);
	/* And a deleted file turns into a miss, not an error loop. */
	ck_assert_int_eq(put_seed(2, 100, a, 0), 0);
	snprintf(p, sizeof(p), "%s/blobs/sha256/%.2s/%s", dir, a + 7, a + 7);
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(api->read_open(db, &st, a, 0, &r, NULL), -ENOENT);
	ck_assert_int_eq(api->lookup(db, &st, a, NULL), -ENOENT);
	close_db();
}
END_TEST

/* fs: read_map gives the bytes read gives, from the reader's position,
 * in mappings that outlive the reader and the object; a file shorter
 * than indexed is found before a page is touched, with read's verdict. */
START_TEST(fs_read_map)
{
	enum { N = 300000 };
	char a[DRP_DIGEST_STRSIZE], p[800];
	drp_cache_reader_t *r;
	uint8_t *want = malloc(N);
	const void *data;
	void *h[8];
	size_t nh = 0;

	open_db(0, "map", 1 << 20);
	ck_assert(DRP_CACHE_HAS_OP(api, read_map) &&
		  DRP_CACHE_HAS_OP(api, read_unmap));
	fill(want, N, 3);
	ck_assert_int_eq(put_seed(3, N, a, 0), 0);
	/* From an offset not on a page boundary, in pieces of uneven
	 * sizes, the last one short. */
	ck_assert_int_eq(api->read_open(db, &st, a, 5000, &r, NULL), 0);
	uint64_t before = st.read_bytes;
	size_t pos = 5000;
	ssize_t k;
	const uint8_t *maps[8];
	size_t offs[8], lens[8];
	while ((k = api->read_map(db, &st, r, 100001, &data, &h[nh])) > 0) {
		ck_assert_uint_lt(nh, 8);
		maps[nh] = data;
		offs[nh] = pos;
		lens[nh] = (size_t)k;
		pos += (size_t)k;
		nh++;
	}
	ck_assert_int_eq(k, 0);
	ck_assert_uint_eq(pos, N);
	ck_assert_uint_eq(nh, 3);
	ck_assert_uint_eq(st.read_bytes - before, N - 5000);
	/* The mappings stay readable after the reader closed and the
	 * object was removed. */
	api->read_close(db, &st, r);
	ck_assert_int_eq(api->remove(db, &st, a), 0);
	settle();
	for (size_t i = 0; i < nh; i++) {
		ck_assert_int_eq(memcmp(maps[i], want + offs[i], lens[i]), 0);
		api->read_unmap(db, h[i]);
	}

	/* Truncated behind the cache's back after the reader opened it:
	 * -EIO, dropped, as read() does. */
	ck_assert_int_eq(put_seed(3, N, a, 0), 0);
	ck_assert_int_eq(api->read_open(db, &st, a, 0, &r, NULL), 0);
	ck_assert_int_gt(api->read_map(db, &st, r, 4096, &data, &h[0]), 0);
	api->read_unmap(db, h[0]);
	snprintf(p, sizeof(p), "%s/blobs/sha256/%.2s/%s", dir, a + 7, a + 7);
	ck_assert_int_eq(truncate(p, 10000), 0);
	uint64_t errors = st.read_errors;
	ck_assert_int_eq(api->read_map(db, &st, r, 1 << 20, &data, &h[0]),
			 -EIO);
	ck_assert_uint_eq(st.read_errors, errors + 1);
	ck_assert_int_eq(api->lookup(db, &st, a, NULL), -ENOENT);
	api->read_close(db, &st, r);

	/* A small object kept in memory is not mapped: the caller reads
	 * (copies) it, and the reader has not moved. */
	char b[DRP_DIGEST_STRSIZE], got[1000];
	ck_assert_int_eq(put_seed(4, sizeof(got), b, 0), 0);
	fill(want, sizeof(got), 4);
	ck_assert_int_eq(api->read_open(db, &st, b, 0, &r, NULL), 0);
	ck_assert_int_eq(api->read_map(db, &st, r, 4096, &data, &h[0]),
			 -EOPNOTSUPP);
	ck_assert_int_eq(api->read(db, &st, r, got, sizeof(got)),
			 (ssize_t)sizeof(got));
	ck_assert_int_eq(memcmp(got, want, sizeof(got)), 0);
	api->read_close(db, &st, r);
	free(want);
	close_db();
}
END_TEST

/* Map all of dg from offset 0 window by window, check the bytes against
 * seed's, and let go of every window; returns the first window's data. */
static const void *map_all(const char *dg, uint32_t seed, size_t n)
{
	drp_cache_reader_t *r;
	uint8_t *want = malloc(n);
	fill(want, n, seed);
	ck_assert_int_eq(api->read_open(db, &st, dg, 0, &r, NULL), 0);
	const void *data, *first = NULL;
	void *h;
	size_t pos = 0;
	ssize_t k;
	while ((k = api->read_map(db, &st, r, 4 << 20, &data, &h)) > 0) {
		ck_assert_int_eq(memcmp(data, want + pos, (size_t)k), 0);
		if (pos == 0)
			first = data;
		pos += (size_t)k;
		api->read_unmap(db, h);
	}
	ck_assert_int_eq(k, 0);
	ck_assert_uint_eq(pos, n);
	api->read_close(db, &st, r);
	free(want);
	return first;
}

static uint64_t maps_done(void)
{
	uint64_t maps;
	drp_cache_fs_keep_mapped(db, UINT64_MAX, NULL, &maps);
	return maps;
}

static uint64_t kept_bytes(void)
{
	uint64_t bytes;
	drp_cache_fs_keep_mapped(db, UINT64_MAX, &bytes, NULL);
	return bytes;
}

/*
 * fs, keep_mapped: read_map's windows stay mapped for the next reader
 * (nothing mapped again), at most the cap of them (least recently used
 * out first; lowered, at once); a kept window goes with its object (a
 * remove, an eviction, a drop after damage found), and the object
 * stored again is read from its new file. A window in use when its
 * object goes stays readable until let go. (_i: without and with
 * write-behind.)
 */
START_TEST(fs_keep_mapped)
{
	enum { MB = 1 << 20, N = 10 * MB }; /* windows of 4, 4 and 2 MiB */
	char a[DRP_DIGEST_STRSIZE], b[DRP_DIGEST_STRSIZE],
		c[DRP_DIGEST_STRSIZE], p[800];
	drp_cache_reader_t *r;
	const void *data;
	void *h;

	open_db(_i ? 2 : 0, "keep", 24 * MB);
	/* Off (the default): every read maps its windows again. */
	ck_assert_uint_eq(drp_cache_fs_keep_mapped(db, UINT64_MAX, NULL, NULL),
			  0);
	ck_assert_int_eq(put_seed(1, N, a, N), 0);
	uint64_t m0 = maps_done();
	map_all(a, 1, N);
	map_all(a, 1, N);
	ck_assert_uint_eq(maps_done() - m0, 6);
	ck_assert_uint_eq(kept_bytes(), 0);

	/* On: mapped once, then found kept. */
	ck_assert_uint_eq(drp_cache_fs_keep_mapped(db, 16 * MB, NULL, NULL), 0);
	m0 = maps_done();
	const void *first = map_all(a, 1, N);
	ck_assert_uint_eq(maps_done() - m0, 3);
	ck_assert_uint_eq(drp_cache_fs_keep_mapped(db, UINT64_MAX, NULL, NULL),
			  3);
	ck_assert_uint_eq(kept_bytes(), N);
	ck_assert_ptr_eq(map_all(a, 1, N), first);
	ck_assert_uint_eq(maps_done() - m0, 3);
	/* From an offset inside a kept window: that window's bytes. */
	ck_assert_int_eq(api->read_open(db, &st, a, 5 * MB + 123, &r, NULL), 0);
	ck_assert_int_eq(api->read_map(db, &st, r, 4 * MB, &data, &h),
			 3 * MB - 123);
	uint8_t *want = malloc(N);
	fill(want, N, 1);
	ck_assert_int_eq(memcmp(data, want + 5 * MB + 123, 3 * MB - 123), 0);
	api->read_unmap(db, h);
	api->read_close(db, &st, r);
	ck_assert_uint_eq(maps_done() - m0, 3);

	/* The cap: b's windows push a's oldest out, never above 16 MiB. */
	ck_assert_int_eq(put_seed(2, N, b, N), 0);
	map_all(b, 2, N);
	ck_assert_uint_eq(kept_bytes(), 16 * MB);
	ck_assert_uint_eq(drp_cache_fs_keep_mapped(db, UINT64_MAX, NULL, NULL),
			  5);
	/* Lowered: at once. */
	ck_assert_uint_le(drp_cache_fs_keep_mapped(db, 6 * MB, NULL, NULL), 2);
	ck_assert_uint_le(kept_bytes(), 6 * MB);
	ck_assert_uint_eq(drp_cache_fs_keep_mapped(db, 16 * MB, NULL, NULL), 2);

	/* A window in use when its object is removed: still readable;
	 * the object's kept windows are gone. */
	map_all(a, 1, N);
	ck_assert_int_eq(api->read_open(db, &st, a, 0, &r, NULL), 0);
	ck_assert_int_eq(api->read_map(db, &st, r, 4 * MB, &data, &h), 4 * MB);
	ck_assert_ptr_eq(data, map_all(a, 1, N));
	api->read_close(db, &st, r);
	uint64_t before = kept_bytes();
	ck_assert_int_eq(api->remove(db, &st, a), 0);
	settle();
	ck_assert_uint_eq(kept_bytes(), before - N);
	ck_assert_int_eq(memcmp(data, want, 4 * MB), 0);
	api->read_unmap(db, h);

	/* Stored again, then changed in place (as if damaged): a read sees
	 * the new file's bytes, so no window of the old file served it. */
	ck_assert_int_eq(put_seed(1, N, a, N), 0);
	snprintf(p, sizeof(p), "%s/blobs/sha256/%.2s/%s", dir, a + 7, a + 7);
	int fd = open(p, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, "CHANGED", 7, 0), 7);
	close(fd);
	m0 = maps_done();
	ck_assert_int_eq(api->read_open(db, &st, a, 0, &r, NULL), 0);
	ck_assert_int_eq(api->read_map(db, &st, r, 4 * MB, &data, &h), 4 * MB);
	ck_assert_int_eq(memcmp(data, "CHANGED", 7), 0);
	ck_assert_uint_eq(maps_done() - m0, 1);
	api->read_unmap(db, h);
	/* Truncated: the next map finds it, the object and its windows go. */
	ck_assert_int_eq(truncate(p, MB), 0);
	before = kept_bytes();
	ck_assert_int_eq(api->read_map(db, &st, r, 4 * MB, &data, &h), -EIO);
	api->read_close(db, &st, r);
	settle();
	ck_assert_int_eq(api->lookup(db, &st, a, NULL), -ENOENT);
	ck_assert_uint_eq(kept_bytes(), before - 4 * MB);

	/* Evicted (b is the least recently used of 20 MiB in a 24 MiB
	 * budget when c reserves 10): b's windows go with it. */
	ck_assert_int_eq(put_seed(1, N, a, N), 0);
	map_all(a, 1, N);
	ck_assert_uint_eq(kept_bytes(), 16 * MB);
	ck_assert_int_eq(put_seed(3, N, c, N), 0);
	settle();
	ck_assert_int_eq(api->lookup(db, &st, b, NULL), -ENOENT);
	ck_assert_int_eq(api->lookup(db, &st, a, NULL), 0);
	ck_assert_uint_eq(kept_bytes(), N);
	map_all(c, 3, N);
	ck_assert_uint_eq(kept_bytes(), 16 * MB);

	/* Off again: nothing kept; close frees what is kept (LSan). */
	ck_assert_uint_eq(drp_cache_fs_keep_mapped(db, 0, NULL, NULL), 0);
	ck_assert_uint_eq(kept_bytes(), 0);
	drp_cache_fs_keep_mapped(db, 16 * MB, NULL, NULL);
	map_all(c, 3, N);
	free(want);
	close_db();
}
END_TEST

/* Readers on several threads map one object's kept windows while another
 * removes and stores it again and moves the cap: every byte is right
 * (and, under the sanitizers, no window is used after it was unmapped). */
struct km_thread {
	const char *dg;
	atomic_bool *stop;
	unsigned rounds;
};

static void *km_reader(void *arg)
{
	struct km_thread *t = arg;
	enum { N = 9 << 20 };
	uint8_t *want = malloc(N);
	fill(want, N, 7);
	while (!atomic_load(t->stop)) {
		drp_cache_reader_t *r;
		if (api->read_open(db, &st, t->dg, 0, &r, NULL) < 0)
			continue; /* removed just now */
		const void *data;
		void *h;
		size_t pos = 0;
		ssize_t k;
		while ((k = api->read_map(db, &st, r, 4 << 20, &data, &h)) >
		       0) {
			ck_assert_int_eq(memcmp(data, want + pos, (size_t)k),
					 0);
			pos += (size_t)k;
			api->read_unmap(db, h);
		}
		ck_assert_int_eq(k, 0);
		ck_assert_uint_eq(pos, N);
		api->read_close(db, &st, r);
		t->rounds++;
	}
	free(want);
	return NULL;
}

START_TEST(fs_keep_mapped_threads)
{
	char a[DRP_DIGEST_STRSIZE];
	open_db(2, "keepthreads", 64 << 20);
	drp_cache_fs_keep_mapped(db, 8 << 20, NULL, NULL);
	ck_assert_int_eq(put_seed(7, 9 << 20, a, 9 << 20), 0);
	atomic_bool stop = false;
	struct km_thread t[3];
	pthread_t th[3];
	for (int i = 0; i < 3; i++) {
		t[i] = (struct km_thread){.dg = a, .stop = &stop};
		ck_assert_int_eq(pthread_create(&th[i], NULL, km_reader, &t[i]),
				 0);
	}
	for (int i = 0; i < 40; i++) {
		usleep(2000);
		if (i % 4 == 0) {
			api->remove(db, &st, a);
			ck_assert_int_eq(put_seed(7, 9 << 20, a, 9 << 20), 0);
		}
		drp_cache_fs_keep_mapped(db, (i % 3) * (4 << 20), NULL, NULL);
	}
	atomic_store(&stop, true);
	unsigned rounds = 0;
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		rounds += t[i].rounds;
	}
	ck_assert_uint_gt(rounds, 0);
	ck_assert_uint_le(kept_bytes(), 8 << 20);
	close_db();
}
END_TEST

START_TEST(fs_lock)
{
	char err[256];
	drp_cache_t *second;
	drp_cache_stats_t s = {0};
	open_db(0, "lock", 1000);
	drp_cache_conf_t c = {.dir = dir, .max_size = 1000};
	ck_assert_int_eq(api->open(&second, &c, &s, err, sizeof(err)), -EBUSY);
	ck_assert_ptr_nonnull(strstr(err, "in use by another process"));
	close_db();
	/* Released by close. */
	ck_assert_int_eq(api->open(&second, &c, &s, err, sizeof(err)), 0);
	api->close(second, &s);
	/* Missing dir in conf. */
	c.dir = NULL;
	ck_assert_int_eq(api->open(&second, &c, &s, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "fs cache needs a directory (dir)");
	c.dir = "/proc/no/such/dir";
	ck_assert_int_lt(api->open(&second, &c, &s, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(err, "/proc/no/such/dir"));
}
END_TEST

START_TEST(fs_disk_full)
{
	char a[DRP_DIGEST_STRSIZE], b[DRP_DIGEST_STRSIZE];
	drp_cache_conf_t c = {.max_size = 1 << 20, .params = "nospace_retry=1"};
	open_conf(0, "diskfull", &c);
	/* The disk reports ENOSPC in the middle of a write. */
	drp_cache_fs_inject_error(db, ENOSPC, 1);
	ck_assert_int_eq(put_seed(1, 10000, a, 0), -ENOSPC);
	ck_assert_int_eq(api->lookup(db, &st, a, NULL), -ENOENT);
	assert_tmp_empty(0);
	/* Caching is paused: the next writer does not even try. */
	ck_assert_int_eq(put_seed(2, 100, b, 0), -ENOSPC);
	/* ... and still tells a wrong stream apart. */
	ck_assert_int_eq(put_obj(b, "zz", 2, 2, 2), -EBADMSG);
	ck_assert_uint_eq(st.no_space, 3);
	gauges();
	ck_assert_uint_eq(st.reserved, 0);
	/* After the pause, caching resumes by itself. */
	sleep(2);
	ck_assert_int_eq(put_seed(1, 10000, a, 0), 0);
	assert_content(a, 1, 10000);
	/* An I/O error other than ENOSPC: -EIO, no pause. */
	drp_cache_fs_inject_error(db, EIO, 1);
	ck_assert_int_eq(put_seed(2, 100, b, 0), -EIO);
	ck_assert_uint_eq(st.write_errors, 1);
	ck_assert_int_eq(put_seed(2, 100, b, 0), 0);
	close_db();
}
END_TEST

/* Count lines of path containing needle. */
static int count_in_file(const char *path, const char *needle)
{
	char line[1024];
	int n = 0;
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, needle))
			n++;
	fclose(f);
	return n;
}

/* The pause after a full disk lasts nospace_retry seconds from the
 * error, whatever the wall clock's second: an error just before a second
 * turns over (here 50 ms before) still pauses the next writer 50 ms
 * after it turned over. (With whole seconds, nospace_retry=1 paused for
 * anything between a few ms and 1 s, and the check above could fail
 * whenever an error fell at the end of a second.) */
START_TEST(fs_disk_full_pause_spans_second)
{
	char a[DRP_DIGEST_STRSIZE], b[DRP_DIGEST_STRSIZE];
	drp_cache_conf_t c = {.max_size = 1 << 20, .params = "nospace_retry=1"};
	open_conf(0, "diskfullsec", &c);
	struct timespec ts;
	/* Wait for the last 50 ms of a wall-clock second. */
	for (;;) {
		clock_gettime(CLOCK_REALTIME, &ts);
		if (ts.tv_nsec >= 950000000L)
			break;
		usleep(5000);
	}
	time_t second = ts.tv_sec;
	drp_cache_fs_inject_error(db, ENOSPC, 1);
	ck_assert_int_eq(put_seed(1, 10000, a, 0), -ENOSPC);
	/* 50 ms into the next second. */
	for (;;) {
		clock_gettime(CLOCK_REALTIME, &ts);
		if (ts.tv_sec > second && ts.tv_nsec >= 50000000L)
			break;
		usleep(5000);
	}
	ck_assert_int_eq(put_seed(2, 100, b, 0), -ENOSPC);
	ck_assert_int_eq(api->lookup(db, &st, b, NULL), -ENOENT);
	/* After the pause, caching resumes by itself. */
	sleep(2);
	ck_assert_int_eq(put_seed(2, 100, b, 0), 0);
	close_db();
}
END_TEST

START_TEST(fs_disk_full_logged_once)
{
	char a[DRP_DIGEST_STRSIZE], log[700];
	/* No pause: every writer retries the disk, but one full-disk
	 * episode is one log line, and its end is logged too. */
	drp_cache_conf_t c = {.max_size = 1 << 20, .params = "nospace_retry=0"};
	open_conf(0, "logonce", &c);
	snprintf(log, sizeof(log), "%s.log", dir);
	ck_assert_int_eq(drp_log_init(DRP_LOG_INFO, log), 0);
	drp_cache_fs_inject_error(db, ENOSPC, 3);
	ck_assert_int_eq(put_seed(1, 100, a, 0), -ENOSPC);
	ck_assert_int_eq(put_seed(1, 100, a, 0), -ENOSPC);
	ck_assert_int_eq(put_seed(1, 100, a, 0), -ENOSPC);
	ck_assert_int_eq(put_seed(1, 100, a, 0), 0);
	ck_assert_int_eq(put_seed(2, 100, a, 0), 0);
	drp_log_init(DRP_LOG_WARNING, NULL);
	ck_assert_int_eq(count_in_file(log, "No space left on device: not "
					    "caching for 0 s"),
			 1);
	ck_assert_int_eq(count_in_file(log, "caching resumed"), 1);
	close_db();
}
END_TEST

START_TEST(fs_kill9_mid_write)
{
	char a[DRP_DIGEST_STRSIZE], b[DRP_DIGEST_STRSIZE];
	int pfd[2];
	char ok;
	uint8_t *big = malloc(1 << 21);

	fill(big, 1 << 21, 77);
	digest_of(big, 1 << 21, b);
	snprintf(dir, sizeof(dir), "%s/kill9-%d", base_dir, (int)getpid());
	ck_assert_int_eq(pipe(pfd), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* Child: one committed object, then half of a second one,
		 * then wait to be killed. */
		char err[256];
		drp_cache_writer_t *w;
		drp_cache_conf_t c = {.dir = dir, .max_size = 1 << 24};
		api = drp_cache_fs();
		if (api->open(&db, &c, &st, err, sizeof(err)) != 0 ||
		    put_seed(5, 3000, a, 0) != 0 ||
		    api->write_begin(db, &st, b, 1 << 21, &w) != 0 ||
		    api->write(db, &st, w, big, 1 << 20) != 0)
			_exit(1);
		if (write(pfd[1], "k", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(pfd[1]);
	ck_assert_int_eq(read(pfd[0], &ok, 1), 1);
	close(pfd[0]);
	kill(pid, SIGKILL);
	int status;
	waitpid(pid, &status, 0);
	ck_assert(WIFSIGNALED(status));

	/* Restart: the committed object is there, the half one is not, and
	 * its temp file is gone. */
	char err[256];
	drp_cache_conf_t c = {.dir = dir, .max_size = 1 << 24};
	api = drp_cache_fs();
	memset(&st, 0, sizeof(st));
	ck_assert_int_eq(api->open(&db, &c, &st, err, sizeof(err)), 0);
	ck_assert_uint_eq(st.index_loaded, 1);
	ck_assert_uint_eq(st.index_dropped, 1);
	assert_tmp_empty(0);
	fill(big, 3000, 5);
	digest_of(big, 3000, a);
	assert_content(a, 5, 3000);
	ck_assert_int_eq(api->lookup(db, &st, b, NULL), -ENOENT);
	free(big);
	close_db();
}
END_TEST

/* A job that holds the write-behind queue until the gate opens. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool open, started;
} gate = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void gate_job(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&gate.lock);
	gate.started = true;
	pthread_cond_broadcast(&gate.cond);
	while (!gate.open)
		pthread_cond_wait(&gate.cond, &gate.lock);
	pthread_mutex_unlock(&gate.lock);
}

/* The record file of key, relative to dir. */
static void meta_rel(const char *key, char *out, size_t len)
{
	uint8_t h[DRP_DIGEST_LEN];
	char hex[65];
	ck_assert_int_eq(drp_digest_buf(key, strlen(key), h), 0);
	drp_digest_hex(h, hex);
	snprintf(out, len, "meta/%.2s/%s", hex, hex);
}

static int meta_on_disk(const char *key)
{
	char rel[128];
	meta_rel(key, rel, sizeof(rel));
	return file_exists(rel);
}

/* The blob file of digest dg exists in place. */
static int blob_in_place(const char *dg)
{
	char rel[200];
	snprintf(rel, sizeof(rel), "blobs/sha256/%.2s/%s", dg + 7, dg + 7);
	return file_exists(rel);
}

static int tmp_files(void)
{
	char p[600];
	snprintf(p, sizeof(p), "%s/tmp", dir);
	DIR *d = opendir(p);
	ck_assert_ptr_nonnull(d);
	struct dirent *de;
	int n = 0;
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static int get_str(const char *key, char *buf, size_t cap)
{
	size_t len = cap - 1;
	int rc = api->meta_get(db, &st, key, strlen(key), buf, &len);
	buf[rc == 0 ? len : 0] = '\0';
	return rc;
}

/* The blob file of dg, for changing it behind the cache's back. */
static void blob_file(const char *dg, char *out, size_t len)
{
	snprintf(out, len, "%s/blobs/sha256/%.2s/%s", dir, dg + 7, dg + 7);
}

/*
 * Small objects are kept in memory once read: the next read_open opens
 * no file, reads at any offset give the stored bytes, at most the budget
 * is kept (least recently opened first out) and a reader keeps its bytes
 * when the copy is let go; peek_open (what verify uses) still reads the
 * file and finds damage, and the object's copy goes with the object.
 * Larger objects are always read from their file.
 */
START_TEST(fs_small_in_memory)
{
	char a[DRP_DIGEST_STRSIZE], big[DRP_DIGEST_STRSIZE], p[800];
	char dg[6][DRP_DIGEST_STRSIZE];
	drp_cache_reader_t *r, *held;
	uint64_t o0, o1, bytes;
	uint8_t buf[5000];

	open_db(0, "small", 1 << 20);
	ck_assert_int_eq(put_seed(1, 4096, a, 0), 0);
	ck_assert_int_eq(put_seed(2, 16 * 1024 + 1, big, 0), 0);
	drp_cache_fs_small_cached(db, UINT64_MAX, NULL, &o0);
	assert_content(a, 1, 4096);
	drp_cache_fs_small_cached(db, UINT64_MAX, NULL, &o1);
	ck_assert_uint_eq(o1, o0 + 1);
	ck_assert_uint_eq(
		drp_cache_fs_small_cached(db, UINT64_MAX, &bytes, NULL), 1);
	ck_assert_uint_eq(bytes, 4096);
	for (int k = 0; k < 3; k++)
		assert_content(a, 1, 4096);
	/* From an offset. */
	uint8_t want[4096];
	fill(want, sizeof(want), 1);
	ck_assert_int_eq(api->read_open(db, &st, a, 1000, &r, NULL), 0);
	ck_assert_int_eq(api->read(db, &st, r, buf, sizeof(buf)), 3096);
	ck_assert_int_eq(memcmp(buf, want + 1000, 3096), 0);
	ck_assert_int_eq(api->read(db, &st, r, buf, sizeof(buf)), 0);
	api->read_close(db, &st, r);
	drp_cache_fs_small_cached(db, UINT64_MAX, NULL, &o1);
	ck_assert_uint_eq(o1, o0 + 1);
	/* Larger than 16 KiB: a file each time. */
	assert_content(big, 2, 16 * 1024 + 1);
	assert_content(big, 2, 16 * 1024 + 1);
	drp_cache_fs_small_cached(db, UINT64_MAX, NULL, &o1);
	ck_assert_uint_eq(o1, o0 + 3);
	ck_assert_uint_eq(drp_cache_fs_small_cached(db, UINT64_MAX, NULL, NULL),
			  1);

	/* Bounded: a budget of 3 objects of 4 KiB, 6 read. */
	drp_cache_fs_small_cached(db, 3 * 4096, NULL, NULL);
	for (int k = 0; k < 6; k++)
		ck_assert_int_eq(put_seed(10 + (uint32_t)k, 4096, dg[k], 0), 0);
	for (int pass = 0; pass < 2; pass++) {
		for (int k = 0; k < 6; k++) {
			assert_content(dg[k], 10 + (uint32_t)k, 4096);
			ck_assert_uint_le(drp_cache_fs_small_cached(
						  db, UINT64_MAX, &bytes, NULL),
					  3);
			ck_assert_uint_le(bytes, 3 * 4096);
		}
	}
	/* The 3 most recent are kept. */
	drp_cache_fs_small_cached(db, UINT64_MAX, NULL, &o0);
	assert_content(dg[5], 15, 4096);
	assert_content(dg[3], 13, 4096);
	drp_cache_fs_small_cached(db, UINT64_MAX, NULL, &o1);
	ck_assert_uint_eq(o1, o0);
	assert_content(dg[0], 10, 4096);
	drp_cache_fs_small_cached(db, UINT64_MAX, NULL, &o1);
	ck_assert_uint_eq(o1, o0 + 1);

	/* A reader keeps its bytes when the copy is let go. */
	ck_assert_int_eq(api->read_open(db, &st, dg[0], 0, &held, NULL), 0);
	ck_assert_uint_eq(drp_cache_fs_small_cached(db, 0, NULL, NULL), 0);
	fill(want, sizeof(want), 10);
	ck_assert_int_eq(api->read(db, &st, held, buf, sizeof(buf)), 4096);
	ck_assert_int_eq(memcmp(buf, want, 4096), 0);
	api->read_close(db, &st, held);
	drp_cache_fs_small_cached(db, 1 << 20, NULL, NULL);

	/* Damage behind the cache's back is found before an answer, as
	 * from the file: truncated, deleted; and by verify's peek_open,
	 * which reads the file. The object goes, and its copy with it. */
	assert_content(a, 1, 4096);
	blob_file(a, p, sizeof(p));
	ck_assert_int_eq(truncate(p, 100), 0);
	ck_assert_int_eq(api->read_open(db, &st, a, 0, &r, NULL), -ENOENT);
	ck_assert_int_eq(api->lookup(db, &st, a, NULL), -ENOENT);
	ck_assert_int_eq(put_seed(1, 4096, a, 0), 0);
	assert_content(a, 1, 4096);
	assert_content(a, 1, 4096);
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(api->read_open(db, &st, a, 0, &r, NULL), -ENOENT);
	ck_assert_int_eq(api->lookup(db, &st, a, NULL), -ENOENT);
	ck_assert_int_eq(put_seed(1, 4096, a, 0), 0);
	assert_content(a, 1, 4096);
	assert_content(a, 1, 4096);
	ck_assert_int_eq(truncate(p, 4095), 0);
	ck_assert_int_eq(api->peek_open(db, &st, a, 0, &r, NULL), -ENOENT);
	ck_assert_int_eq(api->lookup(db, &st, a, NULL), -ENOENT);
	/* Only a was read since the copies were let go. */
	ck_assert_uint_eq(
		drp_cache_fs_small_cached(db, UINT64_MAX, &bytes, NULL), 0);
	/* Stored again: read from its new file, then kept again. */
	ck_assert_int_eq(put_seed(1, 4096, a, 0), 0);
	drp_cache_fs_small_cached(db, UINT64_MAX, NULL, &o0);
	assert_content(a, 1, 4096);
	assert_content(a, 1, 4096);
	drp_cache_fs_small_cached(db, UINT64_MAX, NULL, &o1);
	ck_assert_uint_eq(o1, o0 + 1);
	/* A remove takes the copy away too. */
	drp_cache_fs_small_cached(db, UINT64_MAX, &bytes, NULL);
	ck_assert_int_eq(api->remove(db, &st, a), 0);
	drp_cache_fs_small_cached(db, UINT64_MAX, &o0, NULL);
	ck_assert_uint_eq(o0, bytes - 4096);
	ck_assert_int_eq(api->read_open(db, &st, a, 0, &r, NULL), -ENOENT);
	close_db();
}
END_TEST

/*
 * The fs backend keeps records it read in memory (a manifest by tag reads
 * its tag record on every request): a second read touches no file; a
 * put (a fill, a revalidation), a delete (a purge) or a put of the raw
 * record (the cache tool) is seen by the next read at once, on disk or
 * still queued; the record comes back exactly as stored, so its age
 * (fetched_at) is judged as before; and at most the set number are kept.
 * _i: 0 writes itself, 2 writes behind (BACKENDS).
 */
START_TEST(fs_meta_read_cache)
{
	char key[DRP_CACHE_KEY_MAX + 1], buf[64];
	drp_cache_tag_t t = {0}, got;
	uint64_t r0, r1;
	int64_t now = (int64_t)time(NULL);

	if (_i == 1)
		return; /* the memory backend keeps everything anyway */
	open_db(_i, "mcache", 1 << 20);
	drp_cache_tag_key(key, sizeof(key), "docker.io", "library/alpine",
			  "3.19", "-");
	digest_of("one", 3, t.digest);
	snprintf(t.media_type, sizeof(t.media_type), "%s",
		 "application/vnd.oci.image.index.v1+json");
	t.size = 321;
	t.fetched_at = now - 100;
	ck_assert_int_eq(drp_cache_tag_put(api, db, &st, key, &t), 0);
	settle();

	/* Read once from disk, then from memory. */
	drp_cache_fs_meta_cached(db, SIZE_MAX, &r0);
	ck_assert_int_eq(drp_cache_tag_get(api, db, &st, key, &got), 0);
	drp_cache_fs_meta_cached(db, SIZE_MAX, &r1);
	ck_assert_uint_eq(r1, r0 + 1);
	ck_assert_uint_eq(drp_cache_fs_meta_cached(db, SIZE_MAX, NULL), 1);
	for (int k = 0; k < 3; k++) {
		memset(&got, 0, sizeof(got));
		ck_assert_int_eq(drp_cache_tag_get(api, db, &st, key, &got), 0);
		ck_assert_str_eq(got.digest, t.digest);
		ck_assert_str_eq(got.media_type, t.media_type);
		ck_assert_uint_eq(got.size, 321);
		/* Its age is what it was: a tag_ttl of 60 s finds it
		 * expired, one of 3600 s fresh. */
		ck_assert_int_eq(got.fetched_at, now - 100);
	}
	drp_cache_fs_meta_cached(db, SIZE_MAX, &r1);
	ck_assert_uint_eq(r1, r0 + 1);

	/* A revalidation rewrites it: seen at once, and after the write. */
	t.fetched_at = now;
	ck_assert_int_eq(drp_cache_tag_put(api, db, &st, key, &t), 0);
	ck_assert_int_eq(drp_cache_tag_get(api, db, &st, key, &got), 0);
	ck_assert_int_eq(got.fetched_at, now);
	settle();
	ck_assert_int_eq(drp_cache_tag_get(api, db, &st, key, &got), 0);
	ck_assert_int_eq(got.fetched_at, now);
	ck_assert_int_eq(drp_cache_tag_get(api, db, &st, key, &got), 0);
	ck_assert_int_eq(got.fetched_at, now);

	/* The tag moved (a fill). */
	digest_of("two", 3, t.digest);
	ck_assert_int_eq(drp_cache_tag_put(api, db, &st, key, &t), 0);
	settle();
	ck_assert_int_eq(drp_cache_tag_get(api, db, &st, key, &got), 0);
	ck_assert_str_eq(got.digest, t.digest);

	/* Rewritten as a raw record (what the cache tool writes): a damaged
	 * value is refused as from disk. */
	ck_assert_int_eq(
		api->meta_put(db, &st, key, strlen(key), "drp-tag 1\nx\n", 12),
		0);
	settle();
	ck_assert_int_eq(drp_cache_tag_get(api, db, &st, key, &got), -EBADMSG);
	ck_assert_int_eq(drp_cache_tag_get(api, db, &st, key, &got), -EBADMSG);

	/* A purge deletes it. */
	ck_assert_int_eq(drp_cache_tag_put(api, db, &st, key, &t), 0);
	settle();
	ck_assert_int_eq(drp_cache_tag_get(api, db, &st, key, &got), 0);
	ck_assert_int_eq(drp_cache_tag_del(api, db, &st, key), 0);
	ck_assert_int_eq(drp_cache_tag_get(api, db, &st, key, &got), -ENOENT);
	settle();
	ck_assert_int_eq(drp_cache_tag_get(api, db, &st, key, &got), -ENOENT);

	/* Bounded: 10 records read, 4 kept, each still read right. */
	drp_cache_fs_meta_cached(db, 4, NULL);
	for (int k = 0; k < 10; k++) {
		char mk[16], v[16];
		snprintf(mk, sizeof(mk), "seen %d", k);
		snprintf(v, sizeof(v), "v%d", k);
		ck_assert_int_eq(
			api->meta_put(db, &st, mk, strlen(mk), v, strlen(v)),
			0);
	}
	settle();
	for (int pass = 0; pass < 2; pass++) {
		for (int k = 0; k < 10; k++) {
			char mk[16], v[16];
			snprintf(mk, sizeof(mk), "seen %d", k);
			snprintf(v, sizeof(v), "v%d", k);
			ck_assert_int_eq(get_str(mk, buf, sizeof(buf)), 0);
			ck_assert_str_eq(buf, v);
			ck_assert_uint_le(
				drp_cache_fs_meta_cached(db, SIZE_MAX, NULL),
				4);
		}
	}
	ck_assert_uint_eq(drp_cache_fs_meta_cached(db, SIZE_MAX, NULL), 4);
	/* The 4 most recent are the ones kept. */
	drp_cache_fs_meta_cached(db, SIZE_MAX, &r0);
	ck_assert_int_eq(get_str("seen 9", buf, sizeof(buf)), 0);
	ck_assert_int_eq(get_str("seen 6", buf, sizeof(buf)), 0);
	drp_cache_fs_meta_cached(db, SIZE_MAX, &r1);
	ck_assert_uint_eq(r1, r0);
	ck_assert_int_eq(get_str("seen 0", buf, sizeof(buf)), 0);
	drp_cache_fs_meta_cached(db, SIZE_MAX, &r1);
	ck_assert_uint_eq(r1, r0 + 1);
	/* 0: none kept. */
	ck_assert_uint_eq(drp_cache_fs_meta_cached(db, 0, NULL), 0);
	ck_assert_int_eq(get_str("seen 1", buf, sizeof(buf)), 0);
	ck_assert_uint_eq(drp_cache_fs_meta_cached(db, SIZE_MAX, NULL), 0);
	close_db();
}
END_TEST

static atomic_bool mc_stop;

static void *mc_reader(void *arg)
{
	(void)arg;
	char buf[32];
	while (!atomic_load(&mc_stop)) {
		size_t len = sizeof(buf);
		(void)api->meta_get(db, &st, "tag r", 5, buf, &len);
	}
	return NULL;
}

/*
 * Reads that race with puts never leave an old value kept: after each
 * put returns, the writer reads exactly what it put, while 3 threads keep
 * reading (and keeping) the record.
 */
START_TEST(fs_meta_read_cache_race)
{
	pthread_t th[3];
	char buf[32], v[32];
	open_db(_i == 0 ? 0 : 2, "mcrace", 1 << 20);
	ck_assert_int_eq(api->meta_put(db, &st, "tag r", 5, "0", 1), 0);
	atomic_store(&mc_stop, false);
	for (int k = 0; k < 3; k++)
		ck_assert_int_eq(pthread_create(&th[k], NULL, mc_reader, NULL),
				 0);
	for (int n = 1; n <= 1000; n++) {
		int l = snprintf(v, sizeof(v), "%d", n);
		ck_assert_int_eq(
			api->meta_put(db, &st, "tag r", 5, v, (size_t)l), 0);
		if (n % 7 == 0)
			settle();
		ck_assert_int_eq(get_str("tag r", buf, sizeof(buf)), 0);
		ck_assert_str_eq(buf, v);
	}
	atomic_store(&mc_stop, true);
	for (int k = 0; k < 3; k++)
		pthread_join(th[k], NULL);
	settle();
	ck_assert_int_eq(get_str("tag r", buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, v);
	close_db();
}
END_TEST

/*
 * Write-behind: with its queue held, puts and deletes touch no file (the
 * ops run on the event loops: no rename, no unlink there) and yet every
 * read sees the newest of them at once; a removed object is gone from the
 * index at once and its file moved aside and unlinked by the queue.
 * Released, the queue writes exactly the newest state, which a reopened
 * cache reads back.
 */
START_TEST(fs_meta_write_behind)
{
	char buf[64], dg[DRP_DIGEST_STRSIZE];
	open_db(0, "behind", 1 << 20);
	/* Written by the op itself, before write-behind. */
	ck_assert_int_eq(api->meta_put(db, &st, "old", 3, "o", 1), 0);
	ck_assert(meta_on_disk("old"));
	ck_assert_int_eq(put_seed(7, 3000, dg, 3000), 0);

	behind = drp_jobs_new(1);
	drp_cache_fs_write_behind(db, behind);
	drp_jobs_submit(behind, gate_job, NULL);
	pthread_mutex_lock(&gate.lock);
	while (!gate.started)
		pthread_cond_wait(&gate.cond, &gate.lock);
	pthread_mutex_unlock(&gate.lock);

	ck_assert_int_eq(api->meta_put(db, &st, "tag a", 5, "v1", 2), 0);
	ck_assert_int_eq(get_str("tag a", buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "v1");
	ck_assert_int_eq(api->meta_put(db, &st, "tag a", 5, "second", 6), 0);
	ck_assert_int_eq(get_str("tag a", buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "second");
	size_t len = 2;
	ck_assert_int_eq(api->meta_get(db, &st, "tag a", 5, buf, &len),
			 -ERANGE);
	ck_assert_uint_eq(len, 6);
	/* Put then delete: gone; a second delete finds nothing. */
	ck_assert_int_eq(api->meta_put(db, &st, "seen x", 6, "", 0), 0);
	len = 0;
	ck_assert_int_eq(api->meta_get(db, &st, "seen x", 6, NULL, &len), 0);
	ck_assert_int_eq(api->meta_del(db, &st, "seen x", 6), 0);
	ck_assert_int_eq(get_str("seen x", buf, sizeof(buf)), -ENOENT);
	ck_assert_int_eq(api->meta_del(db, &st, "seen x", 6), -ENOENT);
	/* A record on disk: its delete is pending, reads miss at once. */
	ck_assert_int_eq(api->meta_del(db, &st, "old", 3), 0);
	ck_assert_int_eq(get_str("old", buf, sizeof(buf)), -ENOENT);
	ck_assert_int_eq(api->meta_del(db, &st, "nothing", 7), -ENOENT);
	/* An object removed: out of the index now, its file left to the
	 * queue. */
	ck_assert_int_eq(api->remove(db, &st, dg), 0);
	ck_assert_int_eq(api->lookup(db, &st, dg, NULL), -ENOENT);

	/* Nothing of it has reached the disk. */
	ck_assert(!meta_on_disk("tag a"));
	ck_assert(!meta_on_disk("seen x"));
	ck_assert(meta_on_disk("old"));
	ck_assert(blob_in_place(dg));
	ck_assert_int_eq(tmp_files(), 0);

	pthread_mutex_lock(&gate.lock);
	gate.open = true;
	pthread_cond_broadcast(&gate.cond);
	pthread_mutex_unlock(&gate.lock);
	settle();
	ck_assert(meta_on_disk("tag a"));
	ck_assert(!meta_on_disk("seen x"));
	ck_assert(!meta_on_disk("old"));
	ck_assert(!blob_in_place(dg));
	ck_assert_int_eq(tmp_files(), 0);
	ck_assert_uint_eq(st.meta_puts, 4);
	ck_assert_uint_eq(st.meta_dels, 2);

	/* The disk holds the newest state. */
	reopen();
	ck_assert_int_eq(get_str("tag a", buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "second");
	ck_assert_int_eq(get_str("seen x", buf, sizeof(buf)), -ENOENT);
	ck_assert_int_eq(get_str("old", buf, sizeof(buf)), -ENOENT);
	close_db();
}
END_TEST

/* Many threads put and read the same few keys through write-behind:
 * every read sees a whole value that was put (never a mix, never a
 * miss once the key was put), and the disk ends with the last put of
 * each key. */
#define WB_KEYS	   4
#define WB_THREADS 4
#define WB_ROUNDS  300

static void *wb_putter(void *arg)
{
	int t = (int)(intptr_t)arg;
	char k[16], v[32], got[32];
	for (int r = 0; r < WB_ROUNDS; r++) {
		int key = (t + r) % WB_KEYS;
		snprintf(k, sizeof(k), "key %d", key);
		snprintf(v, sizeof(v), "key %d value %d.%d", key, t, r);
		if (api->meta_put(db, &st, k, strlen(k), v, strlen(v)) != 0)
			return (void *)1;
		size_t len = sizeof(got);
		if (api->meta_get(db, &st, k, strlen(k), got, &len) != 0 ||
		    len < 12 || memcmp(got, v, 12) != 0)
			return (void *)1;
	}
	return NULL;
}

START_TEST(fs_meta_write_behind_threads)
{
	open_db(2, "behindmt", 1 << 20);
	pthread_t th[WB_THREADS];
	for (int t = 0; t < WB_THREADS; t++)
		pthread_create(&th[t], NULL, wb_putter, (void *)(intptr_t)t);
	for (int t = 0; t < WB_THREADS; t++) {
		void *bad;
		pthread_join(th[t], &bad);
		ck_assert_ptr_null(bad);
	}
	/* The newest value of each key, as the overlay has it ... */
	char want[WB_KEYS][32], buf[32];
	for (int key = 0; key < WB_KEYS; key++) {
		char k[16];
		snprintf(k, sizeof(k), "key %d", key);
		ck_assert_int_eq(get_str(k, want[key], sizeof(want[key])), 0);
	}
	/* ... is what the disk holds once written. */
	reopen();
	for (int key = 0; key < WB_KEYS; key++) {
		char k[16];
		snprintf(k, sizeof(k), "key %d", key);
		ck_assert_int_eq(get_str(k, buf, sizeof(buf)), 0);
		ck_assert_str_eq(buf, want[key]);
	}
	close_db();
}
END_TEST

/*
 * A put and then a delete of the same record, while the queue writes the
 * put: the delete must find the record (in memory or, once the queue has
 * written it, on disk) and it must end deleted on disk, however the
 * queue's job and the delete interleave.
 */
START_TEST(fs_meta_write_behind_del_race)
{
	char k[32], buf[16];
	open_db(2, "behinddel", 1 << 20);
	for (int i = 0; i < 20000; i++) {
		snprintf(k, sizeof(k), "race %d", i % 64);
		ck_assert_int_eq(api->meta_put(db, &st, k, strlen(k), "v", 1),
				 0);
		/* Let the queue's job get a little further each time. */
		for (volatile int spin = 0; spin < (i % 251) * 100; spin++)
			;
		int rc = api->meta_del(db, &st, k, strlen(k));
		ck_assert_msg(rc == 0, "round %d: delete after put: %d", i, rc);
		ck_assert_int_eq(get_str(k, buf, sizeof(buf)), -ENOENT);
	}
	settle();
	for (int i = 0; i < 64; i++) {
		snprintf(k, sizeof(k), "race %d", i);
		ck_assert_msg(!meta_on_disk(k), "%s left on disk", k);
	}
	close_db();
}
END_TEST

/* meta_iterate's callback for fs_meta_write_behind_iterate: "key=val"
 * lines, sorted by the caller. */
struct kv_acc {
	int n;
	char line[8][64];
};

static int kv_cb(const void *key, size_t keylen, const void *val, size_t vallen,
		 void *arg)
{
	struct kv_acc *acc = arg;
	ck_assert_int_lt(acc->n, 8);
	snprintf(acc->line[acc->n++], sizeof(acc->line[0]), "%.*s=%.*s",
		 (int)keylen, (const char *)key, (int)vallen,
		 (const char *)val);
	return 0;
}

static void kv_walk(struct kv_acc *acc)
{
	memset(acc, 0, sizeof(*acc));
	ck_assert_int_eq(api->meta_iterate(db, &st, "tag ", 4, kv_cb, acc), 0);
	qsort(acc->line, (size_t)acc->n, sizeof(acc->line[0]), cmp_key);
}

/*
 * A walk of the records (cache list, purge) sees what meta_get sees while
 * the queue has not written it yet: a record put is reported (once, with
 * its newest value, not the older one on disk), a record deleted is not.
 */
START_TEST(fs_meta_write_behind_iterate)
{
	struct kv_acc acc;
	open_db(0, "behinditer", 1 << 20);
	ck_assert_int_eq(api->meta_put(db, &st, "tag a", 5, "old", 3), 0);
	ck_assert_int_eq(api->meta_put(db, &st, "tag gone", 8, "g", 1), 0);
	ck_assert_int_eq(api->meta_put(db, &st, "tag kept", 8, "k", 1), 0);
	behind = drp_jobs_new(1);
	drp_cache_fs_write_behind(db, behind);
	drp_jobs_submit(behind, gate_job, NULL);
	pthread_mutex_lock(&gate.lock);
	while (!gate.started)
		pthread_cond_wait(&gate.cond, &gate.lock);
	pthread_mutex_unlock(&gate.lock);

	ck_assert_int_eq(api->meta_put(db, &st, "tag a", 5, "new", 3), 0);
	ck_assert_int_eq(api->meta_put(db, &st, "tag b", 5, "b", 1), 0);
	ck_assert_int_eq(api->meta_del(db, &st, "tag gone", 8), 0);
	ck_assert_int_eq(api->meta_put(db, &st, "seen x", 6, "", 0), 0);
	kv_walk(&acc);
	ck_assert_int_eq(acc.n, 3);
	ck_assert_str_eq(acc.line[0], "tag a=new");
	ck_assert_str_eq(acc.line[1], "tag b=b");
	ck_assert_str_eq(acc.line[2], "tag kept=k");

	pthread_mutex_lock(&gate.lock);
	gate.open = true;
	pthread_cond_broadcast(&gate.cond);
	pthread_mutex_unlock(&gate.lock);
	settle();
	kv_walk(&acc);
	ck_assert_int_eq(acc.n, 3);
	ck_assert_str_eq(acc.line[0], "tag a=new");
	ck_assert_str_eq(acc.line[1], "tag b=b");
	ck_assert_str_eq(acc.line[2], "tag kept=k");
	close_db();
}
END_TEST

/* Hold the write-behind queue (a job that waits for the gate). */
static void hold_behind(void)
{
	pthread_mutex_lock(&gate.lock);
	gate.open = gate.started = false;
	pthread_mutex_unlock(&gate.lock);
	drp_jobs_submit(behind, gate_job, NULL);
	pthread_mutex_lock(&gate.lock);
	while (!gate.started)
		pthread_cond_wait(&gate.cond, &gate.lock);
	pthread_mutex_unlock(&gate.lock);
}

static void release_behind(void)
{
	pthread_mutex_lock(&gate.lock);
	gate.open = true;
	pthread_cond_broadcast(&gate.cond);
	pthread_mutex_unlock(&gate.lock);
	settle();
}

/*
 * With write-behind, a remove on a loop (a damaged object's drop) takes
 * the object out of the index at once and leaves the file to the queue:
 * the op itself renames nothing. The queue moves it aside and unlinks
 * it, unless the same digest was stored again meanwhile: the new file in
 * place stays, and is served.
 */
START_TEST(fs_remove_behind)
{
	char a[DRP_DIGEST_STRSIZE], b[DRP_DIGEST_STRSIZE], p[800];
	drp_cache_reader_t *r;
	open_db(2, "removebehind", 1 << 20);
	ck_assert_int_eq(put_seed(1, 3000, a, 3000), 0);
	ck_assert_int_eq(put_seed(2, 5000, b, 5000), 0);

	hold_behind();
	ck_assert_int_eq(api->remove(db, &st, a), 0);
	ck_assert_int_eq(api->lookup(db, &st, a, NULL), -ENOENT);
	ck_assert_int_eq(api->read_open(db, &st, a, 0, &r, NULL), -ENOENT);
	/* A damaged object (truncated behind the cache's back), found by
	 * read_open: dropped at once, its file left to the queue too. */
	snprintf(p, sizeof(p), "%s/blobs/sha256/%.2s/%s", dir, b + 7, b + 7);
	ck_assert_int_eq(truncate(p, 100), 0);
	ck_assert_int_eq(api->read_open(db, &st, b, 0, &r, NULL), -ENOENT);
	ck_assert_int_eq(api->lookup(db, &st, b, NULL), -ENOENT);
	ck_assert(blob_in_place(a));
	ck_assert(blob_in_place(b));
	ck_assert_int_eq(tmp_files(), 0);
	/* b is fetched again and stored before the queue runs. */
	ck_assert_int_eq(put_seed(2, 5000, b, 5000), 0);
	release_behind();

	ck_assert(!blob_in_place(a));
	ck_assert_int_eq(tmp_files(), 0);
	ck_assert(blob_in_place(b));
	ck_assert_int_eq(api->read_open(db, &st, b, 0, &r, NULL), 0);
	size_t n;
	uint8_t *got = read_all(r, &n, 4096), want[5000];
	api->read_close(db, &st, r);
	fill(want, sizeof(want), 2);
	ck_assert_uint_eq(n, sizeof(want));
	ck_assert(memcmp(got, want, n) == 0);
	free(got);
	reopen();
	ck_assert_int_eq(api->lookup(db, &st, a, NULL), -ENOENT);
	ck_assert_int_eq(api->lookup(db, &st, b, NULL), 0);
	close_db();
}
END_TEST

/* Make every create under tmp/ fail (tmp is a file), or undo it. */
static void break_tmp(bool broken)
{
	char t[600], away[620];
	snprintf(t, sizeof(t), "%s/tmp", dir);
	snprintf(away, sizeof(away), "%s/tmp.away", dir);
	if (broken) {
		ck_assert_int_eq(rename(t, away), 0);
		touch_file("tmp", "not a directory");
	} else {
		ck_assert_int_eq(unlink(t), 0);
		ck_assert_int_eq(rename(away, t), 0);
	}
}

/* The value in the record file of key, read from disk ("" if none). */
static void meta_file_val(const char *key, char *out, size_t cap)
{
	char rel[128], p[800];
	meta_rel(key, rel, sizeof(rel));
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	out[0] = '\0';
	FILE *f = fopen(p, "rb");
	if (f == NULL)
		return;
	char buf[512];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	size_t skip = 16 + strlen(key); /* header, key */
	if (n > skip && n - skip < cap) {
		memcpy(out, buf + skip, n - skip);
		out[n - skip] = '\0';
	}
}

/*
 * A record whose write behind fails (here: its temp file cannot be
 * created; a full disk fails the same way) is not lost: reads keep
 * seeing the newest put, never the older record still on disk, and a
 * later op (once nospace_retry has passed: 0 here) has the queue write
 * it again; then the disk holds it.
 */
START_TEST(fs_meta_write_behind_fails)
{
	char buf[64];
	drp_cache_conf_t c = {.max_size = 1 << 20, .params = "nospace_retry=0"};
	open_conf(0, "behindfail", &c);
	ck_assert_int_eq(api->meta_put(db, &st, "tag a", 5, "old", 3), 0);
	behind = drp_jobs_new(1);
	drp_cache_fs_write_behind(db, behind);

	hold_behind();
	ck_assert_int_eq(api->meta_put(db, &st, "tag a", 5, "new", 3), 0);
	ck_assert_int_eq(api->meta_put(db, &st, "seen x", 6, "", 0), 0);
	break_tmp(true);
	release_behind();
	/* Both writes failed: the disk still has the old record only. */
	meta_file_val("tag a", buf, sizeof(buf));
	ck_assert_str_eq(buf, "old");
	ck_assert(!meta_on_disk("seen x"));
	/* Reads see the newest state. */
	ck_assert_int_eq(get_str("tag a", buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "new");
	size_t len = 0;
	ck_assert_int_eq(api->meta_get(db, &st, "seen x", 6, NULL, &len), 0);

	/* The disk works again: the next op has them written. */
	break_tmp(false);
	ck_assert_int_eq(api->meta_put(db, &st, "tag b", 5, "b", 1), 0);
	settle();
	meta_file_val("tag a", buf, sizeof(buf));
	ck_assert_str_eq(buf, "new");
	ck_assert(meta_on_disk("seen x"));
	ck_assert(meta_on_disk("tag b"));
	reopen();
	ck_assert_int_eq(get_str("tag a", buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "new");
	len = 0;
	ck_assert_int_eq(api->meta_get(db, &st, "seen x", 6, NULL, &len), 0);
	close_db();
}
END_TEST

/*
 * Failed writes are kept in memory up to a bound (4096 records): the one
 * beyond is dropped, and logged, and reads then see what the disk has.
 * When write-behind ends (at exit, the queue drained), the kept records
 * get a last try: written if the disk works again, else dropped and
 * logged as lost.
 */
START_TEST(fs_meta_write_behind_fails_bounded)
{
	char buf[64], k[32], log[700];
	drp_cache_conf_t c = {.max_size = 1 << 20,
			      .params = "nospace_retry=86400"};
	open_conf(0, "behindcap", &c);
	snprintf(log, sizeof(log), "%s.log", dir);
	ck_assert_int_eq(drp_log_init(DRP_LOG_WARNING, log), 0);
	ck_assert_int_eq(api->meta_put(db, &st, "tag z", 5, "old", 3), 0);
	behind = drp_jobs_new(1);
	drp_cache_fs_write_behind(db, behind);

	hold_behind();
	for (int i = 0; i < 4096; i++) {
		snprintf(k, sizeof(k), "seen %d", i);
		ck_assert_int_eq(api->meta_put(db, &st, k, strlen(k), "", 0),
				 0);
	}
	ck_assert_int_eq(api->meta_put(db, &st, "tag z", 5, "new", 3), 0);
	break_tmp(true);
	release_behind();
	size_t len = 0;
	ck_assert_int_eq(api->meta_get(db, &st, "seen 0", 6, NULL, &len), 0);
	ck_assert_int_eq(api->meta_get(db, &st, "seen 4095", 9, NULL, &len), 0);
	ck_assert_int_eq(get_str("tag z", buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "old"); /* the 4097th: dropped */
	ck_assert_int_eq(count_in_file(log, "with 4096 others waiting: "
					    "dropped"),
			 1);

	/* The end (write-behind off, the queue drained, close) writes what
	 * the disk takes again ... */
	break_tmp(false);
	drp_cache_fs_write_behind(db, NULL);
	drp_jobs_free(behind);
	behind = NULL;
	ck_assert_int_eq(api->meta_get(db, &st, "seen 0", 6, NULL, &len), 0);
	reopen();
	ck_assert(meta_on_disk("seen 0"));
	ck_assert(meta_on_disk("seen 4095"));

	/* ... and drops what it cannot write, logged. */
	behind = drp_jobs_new(1);
	drp_cache_fs_write_behind(db, behind);
	break_tmp(true);
	ck_assert_int_eq(api->meta_put(db, &st, "tag y", 5, "y", 1), 0);
	settle();
	ck_assert_int_eq(get_str("tag y", buf, sizeof(buf)), 0);
	drp_cache_fs_write_behind(db, NULL);
	drp_jobs_free(behind);
	behind = NULL;
	ck_assert_int_eq(get_str("tag y", buf, sizeof(buf)), 0);
	api->close(db, &st);
	drp_log_init(DRP_LOG_WARNING, NULL);
	ck_assert_int_eq(count_in_file(log, "1 metadata record(s) could not "
					    "be written: lost"),
			 1);
	break_tmp(false);
	open_conf(0, "behindcap", &c); /* the same directory */
	ck_assert_int_eq(get_str("tag y", buf, sizeof(buf)), -ENOENT);
	ck_assert(meta_on_disk("seen 0"));
	close_db();
}
END_TEST

/*
 * Write-behind ends while ops still run (at exit, a command of the admin
 * lane may): once drp_cache_fs_write_behind(db, NULL) returned, no op
 * submits to the queue, which is freed next, and an op over a record
 * the queue still holds leaves the newest on disk, not the queued one.
 */
START_TEST(fs_write_behind_ends_under_ops)
{
	char buf[64];
	open_db(2, "behindend", 1 << 20);
	hold_behind();
	ck_assert_int_eq(api->meta_put(db, &st, "tag a", 5, "queued", 6), 0);
	ck_assert_int_eq(api->meta_put(db, &st, "tag d", 5, "d", 1), 0);
	drp_cache_fs_write_behind(db, NULL);
	ck_assert_int_eq(api->meta_put(db, &st, "tag a", 5, "newest", 6), 0);
	ck_assert_int_eq(api->meta_del(db, &st, "tag d", 5), 0);
	ck_assert_int_eq(api->meta_put(db, &st, "tag b", 5, "b", 1), 0);
	ck_assert(meta_on_disk("tag b")); /* written by the op itself */
	ck_assert_int_eq(get_str("tag a", buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "newest");
	ck_assert_int_eq(get_str("tag d", buf, sizeof(buf)), -ENOENT);
	release_behind();
	drp_jobs_free(behind);
	behind = NULL;
	ck_assert_int_eq(get_str("tag a", buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "newest");
	reopen();
	ck_assert_int_eq(get_str("tag a", buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "newest");
	ck_assert_int_eq(get_str("tag d", buf, sizeof(buf)), -ENOENT);
	ck_assert_int_eq(get_str("tag b", buf, sizeof(buf)), 0);
	close_db();
}
END_TEST

/* An op every few microseconds from another thread while write-behind
 * ends and its queue is freed, as an admin command at exit. */
static atomic_bool ops_stop;

static void *ops_thread(void *arg)
{
	(void)arg;
	char k[32], v[32];
	for (unsigned i = 0; !atomic_load(&ops_stop); i++) {
		snprintf(k, sizeof(k), "tag %u", i % 16);
		snprintf(v, sizeof(v), "v%u", i);
		if (api->meta_put(db, &st, k, strlen(k), v, strlen(v)) != 0)
			return (void *)1;
		if (i % 3 == 0)
			(void)api->meta_del(db, &st, k, strlen(k));
	}
	return NULL;
}

START_TEST(fs_write_behind_ends_under_ops_threads)
{
	open_db(2, "behindendmt", 1 << 20);
	atomic_store(&ops_stop, false);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, ops_thread, NULL), 0);
	while (__atomic_load_n(&st.meta_puts, __ATOMIC_RELAXED) < 2000)
		usleep(100);
	drp_cache_fs_write_behind(db, NULL);
	drp_jobs_free(behind);
	behind = NULL;
	uint64_t after = __atomic_load_n(&st.meta_puts, __ATOMIC_RELAXED);
	while (__atomic_load_n(&st.meta_puts, __ATOMIC_RELAXED) < after + 2000)
		usleep(100);
	atomic_store(&ops_stop, true);
	void *bad;
	pthread_join(t, &bad);
	ck_assert_ptr_null(bad);
	/* What meta_get reads now is what a reopened cache reads. */
	char want[16][32], buf[32], k[32];
	int have[16];
	for (int i = 0; i < 16; i++) {
		snprintf(k, sizeof(k), "tag %d", i);
		have[i] = get_str(k, want[i], sizeof(want[i]));
	}
	reopen();
	for (int i = 0; i < 16; i++) {
		snprintf(k, sizeof(k), "tag %d", i);
		ck_assert_int_eq(get_str(k, buf, sizeof(buf)), have[i]);
		if (have[i] == 0)
			ck_assert_str_eq(buf, want[i]);
	}
	close_db();
}
END_TEST

START_TEST(fs_params)
{
	char err[256];
	drp_cache_t *x;
	drp_cache_stats_t s = {0};
	char d[600];
	snprintf(d, sizeof(d), "%s/params-%d", base_dir, (int)getpid());
	/* Table: params string -> expected open() result. */
	const struct {
		const char *params;
		int rc;
	} cases[] = {
		{"nospace_retry=0", 0},		  /* minimum */
		{"nospace_retry=86400", 0},	  /* maximum */
		{"", 0},			  /* empty = defaults */
		{"nospace_retry=86401", -EINVAL}, /* out of range */
		{"nospace_retry=", -EINVAL},	  /* no value */
		{"nospace_retry=-1", -EINVAL},	  /* negative */
		{"nospace_retry=5s", -EINVAL},	  /* suffix */
		{"nospace_retr=5", -EINVAL},	  /* misspelt key */
		{"nospace_retry=5,x=1", -EINVAL}, /* unknown second key */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		drp_cache_conf_t c = {
			.dir = d, .max_size = 100, .params = cases[i].params};
		int rc = drp_cache_fs()->open(&x, &c, &s, err, sizeof(err));
		ck_assert_msg(rc == cases[i].rc, "'%s': %d", cases[i].params,
			      rc);
		if (rc == 0)
			drp_cache_fs()->close(x, &s);
	}
}
END_TEST

/* ---- registry --------------------------------------------------------------
 */

static int fake_open(drp_cache_t **db_, const drp_cache_conf_t *c,
		     drp_cache_stats_t *s, char *e, size_t el)
{
	return -ENOSYS;
}

START_TEST(registry)
{
	char err[256];
	ck_assert_ptr_eq(drp_cache_backend_find("fs"), drp_cache_fs());
	ck_assert_ptr_eq(drp_cache_backend_find("memory"), drp_cache_mem());
	ck_assert_ptr_null(drp_cache_backend_find("nope"));
	ck_assert_ptr_null(drp_cache_backend_find(NULL));
	ck_assert_int_eq(drp_cache_fs()->flags,
			 DRP_CACHE_MAY_BLOCK | DRP_CACHE_INDEX_IN_MEMORY |
				 DRP_CACHE_PERSISTENT);
	ck_assert_int_eq(drp_cache_mem()->flags & DRP_CACHE_MAY_BLOCK, 0);

	/* A module's table: a copy of memory's ops under another name. */
	static drp_cache_api_t t;
	t = *drp_cache_mem();
	t.name = "s3-test";
	ck_assert_int_eq(drp_cache_backend_register(&t, err, sizeof(err)), 0);
	ck_assert_ptr_eq(drp_cache_backend_find("s3-test"), &t);
	ck_assert_int_eq(drp_cache_backend_register(&t, err, sizeof(err)),
			 -EEXIST);
	ck_assert_str_eq(err, "cache backend 's3-test' already exists");

	/* Table of rejections, one per rule. */
	static drp_cache_api_t bad;
	bad = *drp_cache_mem();
	bad.name = "fs"; /* built-in name */
	ck_assert_int_eq(drp_cache_backend_register(&bad, err, sizeof(err)),
			 -EEXIST);
	bad.name = "Bad Name"; /* not [a-z0-9_-] */
	ck_assert_int_eq(drp_cache_backend_register(&bad, err, sizeof(err)),
			 -EINVAL);
	bad.name = "abcdefghijklmnopqrstuvwxyz012345"; /* 32 chars */
	ck_assert_int_eq(drp_cache_backend_register(&bad, err, sizeof(err)),
			 -EINVAL);
	bad.name = "ok-name";
	bad.abi_major = DRP_CACHE_ABI_MAJOR + 1; /* other major */
	ck_assert_int_eq(drp_cache_backend_register(&bad, err, sizeof(err)),
			 -ENOTSUP);
	ck_assert_str_eq(err, "cache backend ABI 2.3 not supported (daemon "
			      "has 1.3)");
	bad.abi_major = DRP_CACHE_ABI_MAJOR;
	bad.abi_minor = DRP_CACHE_ABI_MINOR + 1; /* newer minor */
	ck_assert_int_eq(drp_cache_backend_register(&bad, err, sizeof(err)),
			 -ENOTSUP);
	bad.abi_minor = DRP_CACHE_ABI_MINOR;
	bad.struct_size = 16; /* truncated table */
	ck_assert_int_eq(drp_cache_backend_register(&bad, err, sizeof(err)),
			 -EINVAL);
	bad.struct_size = sizeof(bad);
	bad.commit = NULL; /* mandatory op missing */
	ck_assert_int_eq(drp_cache_backend_register(&bad, err, sizeof(err)),
			 -EINVAL);
	ck_assert_str_eq(err,
			 "cache backend 'ok-name' lacks mandatory op commit");
	ck_assert_int_eq(drp_cache_backend_register(NULL, err, sizeof(err)),
			 -EINVAL);
	ck_assert_ptr_null(drp_cache_backend_find("ok-name"));

	/* The registered backend really is what find returns. */
	bad = *drp_cache_mem();
	bad.name = "failing";
	bad.open = fake_open;
	ck_assert_int_eq(drp_cache_backend_register(&bad, err, sizeof(err)), 0);
	drp_cache_t *x;
	drp_cache_stats_t s = {0};
	drp_cache_conf_t c = {.max_size = 1};
	ck_assert_int_eq(drp_cache_backend_find("failing")->open(
				 &x, &c, &s, err, sizeof(err)),
			 -ENOSYS);
	/* DRP_CACHE_HAS_OP: a v1 table has meta_del; a table built before
	 * v1.2 (struct_size up to adopt) has no meta_iterate. */
	ck_assert(DRP_CACHE_HAS_OP(drp_cache_fs(), meta_del));
	ck_assert(DRP_CACHE_HAS_OP(drp_cache_mem(), meta_iterate));
	ck_assert(DRP_CACHE_HAS_OP(drp_cache_fs(), peek_open));
	bad = *drp_cache_fs();
	bad.struct_size = offsetof(drp_cache_api_t, adopt) + sizeof(bad.adopt);
	ck_assert(DRP_CACHE_HAS_OP(&bad, adopt));
	ck_assert(!DRP_CACHE_HAS_OP(&bad, meta_iterate));
}
END_TEST

Suite *cache_suite(void)
{
	Suite *s = suite_create("cache");
	int nb = (int)(sizeof(BACKENDS) / sizeof(BACKENDS[0]));

	TCase *tc = tcase_create("digest");
	tcase_add_test(tc, digest_vectors);
	tcase_add_loop_test(tc, digest_one_validator, 0,
			    sizeof(digest_strings) / sizeof(digest_strings[0]));
	tcase_add_test(tc, index_lookup);
	suite_add_tcase(s, tc);

	tc = tcase_create("contract");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_loop_test(tc, roundtrip, 0, nb);
	tcase_add_loop_test(tc, empty_object, 0, nb);
	tcase_add_loop_test(tc, read_offset, 0, nb);
	tcase_add_loop_test(tc, wrong_digest, 0, nb);
	tcase_add_loop_test(tc, abort_and_exists, 0, nb);
	tcase_add_loop_test(tc, two_writers_same_digest, 0, nb);
	tcase_add_loop_test(tc, threaded_writers_same_digest, 0, nb);
	tcase_add_loop_test(tc, readers_survive_remove, 0, nb);
	tcase_add_loop_test(tc, evict_lru, 0, nb);
	tcase_add_loop_test(tc, evict_skips_pinned, 0, nb);
	tcase_add_loop_test(tc, too_big, 0, nb);
	tcase_add_loop_test(tc, adopt_spool, 0, nb);
	tcase_add_loop_test(tc, adopt_budget, 0, nb);
	tcase_add_loop_test(tc, iterate_lru_order, 0, nb);
	tcase_add_loop_test(tc, meta_records, 0, nb);
	tcase_add_loop_test(tc, meta_many, 0, nb);
	tcase_add_loop_test(tc, meta_iterate, 0, nb);
	tcase_add_loop_test(tc, peek_open, 0, nb);
	tcase_add_loop_test(tc, tag_records, 0, nb);
	tcase_add_loop_test(tc, damaged_records_not_served, 0, nb);
	tcase_add_test(tc, accept_key_too_many_types);
	tcase_add_test(tc, tag_key_bounds);
	tcase_add_loop_test(tc, threaded_mix, 0, nb);
	tcase_add_loop_test(tc, open_errors, 0, nb);
	suite_add_tcase(s, tc);

	tc = tcase_create("fs");
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_test(tc, fs_restart);
	tcase_add_test(tc, fs_restart_lowered_budget);
	tcase_add_test(tc, fs_last_use_restart);
	tcase_add_test(tc, fs_corrupt_not_served);
	tcase_add_test(tc, fs_read_map);
	tcase_add_loop_test(tc, fs_keep_mapped, 0, 2);
	tcase_add_test(tc, fs_keep_mapped_threads);
	tcase_add_test(tc, fs_lock);
	tcase_add_test(tc, fs_disk_full);
	tcase_add_test(tc, fs_disk_full_logged_once);
	tcase_add_test(tc, fs_disk_full_pause_spans_second);
	tcase_add_test(tc, fs_kill9_mid_write);
	tcase_add_test(tc, fs_params);
	tcase_add_test(tc, fs_meta_write_behind);
	tcase_add_loop_test(tc, fs_meta_read_cache, 0, 3);
	tcase_add_test(tc, fs_small_in_memory);
	tcase_add_loop_test(tc, fs_meta_read_cache_race, 0, 2);
	tcase_add_test(tc, fs_meta_write_behind_threads);
	tcase_add_test(tc, fs_meta_write_behind_iterate);
	tcase_add_test(tc, fs_meta_write_behind_del_race);
	tcase_add_test(tc, fs_remove_behind);
	tcase_add_test(tc, fs_meta_write_behind_fails);
	tcase_add_test(tc, fs_meta_write_behind_fails_bounded);
	tcase_add_test(tc, fs_write_behind_ends_under_ops);
	tcase_add_test(tc, fs_write_behind_ends_under_ops_threads);
	suite_add_tcase(s, tc);

	tc = tcase_create("registry");
	tcase_add_test(tc, registry);
	suite_add_tcase(s, tc);
	return s;
}
