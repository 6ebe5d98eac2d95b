/* SPDX-License-Identifier: MIT */
/*
 * Fills (src/registry/fill.c) and their hashing in the worker pool: a
 * fill fetches a blob over a real socket from a fake upstream (a thread
 * of the test, plain HTTP) into a spool in an fs cache; its SHA-256 is
 * computed by jobs of the pool's hash lane, which the test can hold with
 * a job of its own (the lane runs one job at a time), so the verdict's
 * dependence on the lane is seen, not timed.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <drp/cache.h>

#include "cache/cache.h"
#include "cache/digest.h"
#include "conf/conf.h"
#include "registry/fill.h"
#include "proxy/server.h"
#include "proxy/worker.h"
#include "util/jobs.h"
#include "util/mem.h"
#include "util/metrics.h"
#include "util/pool.h"
#include "loopback.h"

Suite *fill_suite(void);

/* 9 MiB and 3 bytes: three hash windows, the last one partial. */
#define BLOB_LEN  (9 * 1024 * 1024 + 3)
#define HELD_SENT (100 * 1000) /* /held sends this much, then waits */

/* ---- the fake upstream: /ok the blob, /bad other bytes of its
 * length, /held a part of the blob, then nothing until released ---- */

static struct {
	int lfd;
	uint16_t port;
	int stop[2]; /* written: release /held and end the thread */
	pthread_t th;
	char *blob;
	char digest[DRP_DIGEST_STRSIZE];
} fk;

static bool send_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static void serve(int fd)
{
	char head[4096];
	size_t n = 0;
	for (;;) {
		n = 0;
		while (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0) {
			if (n + 1 >= sizeof(head) ||
			    recv(fd, head + n, 1, 0) != 1)
				return;
			n++;
		}
		head[n] = '\0';
		bool bad = strncmp(head, "GET /bad ", 9) == 0;
		bool held = strncmp(head, "GET /held ", 10) == 0;
		char resp[256];
		int hl = snprintf(resp, sizeof(resp),
				  "HTTP/1.1 200 OK\r\nContent-Type: "
				  "application/octet-stream\r\nContent-Length: "
				  "%d\r\n\r\n",
				  BLOB_LEN);
		if (!send_all(fd, resp, (size_t)hl))
			return;
		if (held) {
			send_all(fd, fk.blob, HELD_SENT);
			struct pollfd pf = {.fd = fk.stop[0], .events = POLLIN};
			poll(&pf, 1, -1);
			return;
		}
		char *body = fk.blob;
		if (bad) {
			body = drp_malloc(BLOB_LEN);
			memcpy(body, fk.blob, BLOB_LEN);
			body[BLOB_LEN / 2] ^= 1;
		}
		bool ok = send_all(fd, body, BLOB_LEN);
		if (bad)
			free(body);
		if (!ok)
			return;
	}
}

static void *fake_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd pf[2] = {{.fd = fk.lfd, .events = POLLIN},
				       {.fd = fk.stop[0], .events = POLLIN}};
		if (poll(pf, 2, -1) < 0 || pf[1].revents)
			break;
		int fd = accept(fk.lfd, NULL, NULL);
		if (fd < 0)
			break;
		serve(fd);
		close(fd);
	}
	return NULL;
}

/* ---- the proxy side: one worker's loop, a server with an fs cache
 * and a pool whose hash lane runs one job at a time ---- */

static char tmpdir[PATH_MAX];
static drp_server_t srv;
static drp_worker_t w;
static drp_runtime_t *rt;
static bool expired;
static ev_timer deadline;

static void fill_wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
}

static void deadline_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	expired = true;
}

#define RUN_UNTIL(cond)                                                        \
	do {                                                                   \
		expired = false;                                               \
		ev_timer_set(&deadline, 20., 0.);                              \
		ev_timer_start(w.loop, &deadline);                             \
		while (!(cond) && !expired)                                    \
			ev_run(w.loop, EVRUN_ONCE);                            \
		ev_timer_stop(w.loop, &deadline);                              \
		ck_assert_msg(!expired, "timed out waiting for: %s", #cond);   \
	} while (0)

/* Other threads' conditions: polled, each within 20 s. */
#define WAIT_FOR(cond)                                                         \
	do {                                                                   \
		int waited_ = 0;                                               \
		while (!(cond) && waited_++ < 20000)                           \
			usleep(1000);                                          \
		ck_assert_msg((cond), "timed out waiting for: %s", #cond);     \
	} while (0)

/* A job that holds the hash lane until the gate opens. */
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

static void hold_hash_lane(void)
{
	pthread_mutex_lock(&gate.lock);
	gate.open = gate.started = false;
	pthread_mutex_unlock(&gate.lock);
	ck_assert_int_eq(drp_pool_submit(srv.hash_lane, NULL, gate_job, NULL,
					 NULL, NULL),
			 0);
	pthread_mutex_lock(&gate.lock);
	while (!gate.started)
		pthread_cond_wait(&gate.cond, &gate.lock);
	pthread_mutex_unlock(&gate.lock);
}

static void release_hash_lane(void)
{
	pthread_mutex_lock(&gate.lock);
	gate.open = true;
	pthread_cond_broadcast(&gate.cond);
	pthread_mutex_unlock(&gate.lock);
}

static void setup(void)
{
	memset(&fk, 0, sizeof(fk));
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/drp-test-fill-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));

	/* The blob: deterministic bytes, and its digest. */
	fk.blob = drp_malloc(BLOB_LEN);
	uint32_t x = 2463534242u;
	for (size_t i = 0; i < BLOB_LEN; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		fk.blob[i] = (char)x;
	}
	uint8_t bin[DRP_DIGEST_LEN];
	ck_assert_int_eq(drp_digest_buf(fk.blob, BLOB_LEN, bin), 0);
	drp_digest_format(bin, fk.digest);

	ck_assert_int_eq(pipe(fk.stop), 0);
	fk.lfd = test_listen_loopback(8, &fk.port);
	ck_assert_int_eq(pthread_create(&fk.th, NULL, fake_main, NULL), 0);

	char err[256] = "";
	drp_conf_errors_t errs = {0};
	drp_conf_t *conf = drp_conf_load_string(
		"test.ini", "[resolve]\nup.test = 127.0.0.1\n", &errs);
	ck_assert_ptr_nonnull(conf);
	drp_conf_errors_free(&errs);
	rt = drp_runtime_new(conf, err, sizeof(err));
	ck_assert_msg(rt != NULL, "%s", err);

	drp_metrics_reset();
	memset(&srv, 0, sizeof(srv));
	pthread_mutex_init(&srv.fills_lock, NULL);
	pthread_rwlock_init(&srv.loops_lock, NULL);
	char dir[PATH_MAX + 8];
	snprintf(dir, sizeof(dir), "%s/cache", tmpdir);
	drp_cache_conf_t cc = {.dir = dir, .max_size = 1ull << 30};
	srv.capi = drp_cache_fs();
	ck_assert_int_eq(
		srv.capi->open(&srv.cdb, &cc, &srv.cstats, err, sizeof(err)),
		0);
	srv.spool_dir = drp_strdup(tmpdir);
	srv.pool = drp_pool_new(2);
	ck_assert_ptr_nonnull(srv.pool);
	srv.jobs = drp_jobs_new_on(srv.pool, "stores", 1);
	srv.hash_lane = drp_pool_lane_new(srv.pool, "hash", 1, 1, 0);
	ck_assert_ptr_nonnull(srv.jobs);
	ck_assert_ptr_nonnull(srv.hash_lane);

	memset(&w, 0, sizeof(w));
	w.srv = &srv;
	w.loop = ev_loop_new(EVFLAG_AUTO);
	drp_upstream_init(&w.upstream, w.loop, 5.0);
	w.thread = pthread_self();
	ev_async_init(&w.fill_wake, fill_wake_cb);
	ev_async_start(w.loop, &w.fill_wake);
	ev_init(&deadline, deadline_cb);
	srv.workers = &w;
	srv.n_workers = 1;
	srv.loops_live = true;
}

static int rm_cb(const char *path, const struct stat *st, int flag,
		 struct FTW *ftw)
{
	return remove(path);
}

static void teardown(void)
{
	drp_upstream_drain(&w.upstream);
	ck_assert_int_eq(write(fk.stop[1], "x", 1), 1);
	pthread_join(fk.th, NULL);
	close(fk.lfd);
	close(fk.stop[0]);
	close(fk.stop[1]);
	if (srv.hash_lane)
		drp_pool_lane_close(srv.hash_lane);
	drp_jobs_free(srv.jobs);
	drp_pool_free(srv.pool);
	srv.capi->close(srv.cdb, &srv.cstats);
	free(srv.spool_dir);
	drp_runtime_unref(rt);
	drp_upstream_fini(&w.upstream);
	ev_loop_destroy(w.loop);
	pthread_rwlock_destroy(&srv.loops_lock);
	pthread_mutex_destroy(&srv.fills_lock);
	free(fk.blob);
	nftw(tmpdir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

/* A fill of fk.digest from target, started on w. */
static drp_fill_t *start_fill(const char *target)
{
	enum drp_fill_found found;
	drp_fill_t *f =
		drp_fill_attach(&srv, fk.digest, "up.test test/x", &found);
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(found, DRP_FILL_CREATED);
	drp_fetch_req_t req = {.host = "up.test",
			       .port = fk.port,
			       .method = "GET",
			       .target = target,
			       .follow_redirects = true};
	drp_fill_start(f, &w, rt, &req);
	/* A waiter on w: progress and the verdict wake its loop. */
	drp_fill_waiter_add(f, &w);
	return f;
}

static void end_fill(drp_fill_t *f)
{
	drp_fill_waiter_del(f, &w);
	drp_fill_unref(f);
}

static drp_fill_view_t view(drp_fill_t *f)
{
	drp_fill_view_t v;
	drp_fill_view(f, &v);
	return v;
}

static bool stored(void)
{
	return srv.capi->lookup(srv.cdb, &srv.cstats, fk.digest, NULL) == 0;
}

/* The stored object has the blob's bytes. */
static void check_stored(void)
{
	ck_assert(stored());
	drp_cache_reader_t *r;
	ck_assert_int_eq(srv.capi->read_open(srv.cdb, &srv.cstats, fk.digest, 0,
					     &r, NULL),
			 0);
	char *buf = drp_malloc(BLOB_LEN);
	size_t got = 0;
	for (;;) {
		ssize_t n = srv.capi->read(srv.cdb, &srv.cstats, r, buf + got,
					   BLOB_LEN - got);
		ck_assert_int_ge(n, 0);
		if (n == 0 || got + (size_t)n == BLOB_LEN) {
			got += (size_t)n;
			break;
		}
		got += (size_t)n;
	}
	srv.capi->read_close(srv.cdb, &srv.cstats, r);
	ck_assert_uint_eq(got, BLOB_LEN);
	ck_assert(memcmp(buf, fk.blob, BLOB_LEN) == 0);
	free(buf);
}

/* A sample of /metrics: the value of the line "\nNAME ". */
static long metric(const char *name)
{
	drp_buf_t b = {0};
	char pat[64];
	snprintf(pat, sizeof(pat), "\n%s ", name);
	drp_metrics_render(&b);
	drp_buf_append(&b, "", 1);
	const char *p = strstr(drp_buf_head(&b), pat);
	long n = p ? strtol(p + strlen(pat), NULL, 10) : -1;
	drp_buf_free(&b);
	return n;
}

static unsigned long mismatches(void)
{
	return (unsigned long)metric("drp_digest_mismatches_total");
}

/*
 * The whole body is in the spool, but the verdict (and with it the
 * waiters' last byte) waits for the hash jobs: while the hash lane is
 * held, the fill stays RUNNING; released, its jobs hash the three
 * windows and it becomes VERIFIED, and the stores lane stores it.
 */
START_TEST(fill_verdict_from_hash_lane)
{
	hold_hash_lane();
	drp_fill_t *f = start_fill("/ok");
	RUN_UNTIL(view(f).written == BLOB_LEN);
	/* The fetch has ended (the same read that delivered the last
	 * byte), and a hash job is queued behind the held one. */
	ck_assert_uint_eq(drp_pool_lane_queued(srv.hash_lane), 1);
	ck_assert_int_eq(view(f).state, DRP_FILL_RUNNING);
	ck_assert_uint_eq(atomic_load(&srv.fills_hashing), 1);
	ev_run(w.loop, EVRUN_NOWAIT);
	ck_assert_int_eq(view(f).state, DRP_FILL_RUNNING);

	release_hash_lane();
	RUN_UNTIL(view(f).state != DRP_FILL_RUNNING);
	ck_assert_int_eq(view(f).state, DRP_FILL_VERIFIED);
	ck_assert_uint_eq(view(f).total, BLOB_LEN);
	WAIT_FOR(atomic_load(&srv.fills_hashing) == 0);
	WAIT_FOR(drp_jobs_pending(srv.jobs) == 0);
	check_stored();
	ck_assert_uint_eq(mismatches(), 0);
	end_fill(f);
}
END_TEST

/*
 * A request that missed the cache and then asked elsewhere (the bucket,
 * the upstream's HEAD) may reach the table after the fill it missed has
 * ended: the table no longer lists it, the cache has it. The attach says
 * so instead of creating a second fill (a second upstream fetch), and
 * counts no miss of its own.
 */
START_TEST(fill_attach_after_store)
{
	drp_fill_t *f = start_fill("/ok");
	RUN_UNTIL(view(f).state >= DRP_FILL_VERIFIED);
	ck_assert_int_eq(view(f).state, DRP_FILL_VERIFIED);
	/* The verdict is given before the store is queued: the hash job
	 * ends after both, the store job leaves the table once stored. */
	WAIT_FOR(atomic_load(&srv.fills_hashing) == 0);
	WAIT_FOR(drp_jobs_pending(srv.jobs) == 0);
	end_fill(f);
	check_stored();
	uint64_t misses = srv.cstats.misses, hits = srv.cstats.hits;
	enum drp_fill_found found = DRP_FILL_CREATED;
	drp_fill_t *g =
		drp_fill_attach(&srv, fk.digest, "up.test test/x", &found);
	ck_assert_ptr_null(g);
	ck_assert_int_eq(found, DRP_FILL_STORED);
	ck_assert_uint_eq(srv.cstats.misses, misses);
	ck_assert_uint_eq(srv.cstats.hits, hits);
	/* Gone from the cache: a fill again. */
	ck_assert_int_eq(srv.capi->remove(srv.cdb, &srv.cstats, fk.digest), 0);
	g = drp_fill_attach(&srv, fk.digest, "up.test test/x", &found);
	ck_assert_ptr_nonnull(g);
	ck_assert_int_eq(found, DRP_FILL_CREATED);
	drp_fill_unref(g); /* the fetch's, never started */
	drp_fill_unref(g);
}
END_TEST

/* The spool files (deleted, under tmpdir) this process has open; *last
 * is the fd of the last one found. */
static unsigned spools_open_fd(int *last)
{
	unsigned n = 0;
	DIR *d = opendir("/proc/self/fd");
	ck_assert_ptr_nonnull(d);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		char path[64], target[PATH_MAX];
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		ssize_t len = readlink(path, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		if (strncmp(target, tmpdir, strlen(tmpdir)) == 0 &&
		    strstr(target, "(deleted)") != NULL) {
			n++;
			*last = atoi(e->d_name);
		}
	}
	closedir(d);
	return n;
}

/* The spool's fd: the only deleted file under tmpdir this process has
 * open (the fill's O_TMPFILE). */
static int spool_fd(void)
{
	int fd = -1;
	ck_assert_uint_eq(spools_open_fd(&fd), 1);
	return fd;
}

/*
 * The hash lane reads the spool back: a spool cut short after the fetch
 * wrote it (a disk error, someone else) fails the hash there (a short
 * read), and the fill fails without a verdict: nothing stored, no
 * mismatch counted, the waiters reset.
 */
START_TEST(fill_spool_truncated_before_hash)
{
	hold_hash_lane();
	drp_fill_t *f = start_fill("/ok");
	RUN_UNTIL(view(f).written == BLOB_LEN);
	ck_assert_int_eq(ftruncate(spool_fd(), BLOB_LEN / 3), 0);
	release_hash_lane();
	RUN_UNTIL(view(f).state != DRP_FILL_RUNNING);
	ck_assert_int_eq(view(f).state, DRP_FILL_FAILED);
	WAIT_FOR(atomic_load(&srv.fills_hashing) == 0);
	WAIT_FOR(drp_jobs_pending(srv.jobs) == 0);
	ck_assert(!stored());
	ck_assert_uint_eq(mismatches(), 0);
	end_fill(f);
}
END_TEST

/* Bytes that do not hash to the digest: the fill fails, nothing is
 * stored, the mismatch is counted. */
START_TEST(fill_mismatch_fails)
{
	drp_fill_t *f = start_fill("/bad");
	RUN_UNTIL(view(f).state != DRP_FILL_RUNNING &&
		  view(f).state != DRP_FILL_STARTING);
	ck_assert_int_eq(view(f).state, DRP_FILL_FAILED);
	ck_assert_uint_eq(view(f).written, BLOB_LEN);
	WAIT_FOR(atomic_load(&srv.fills_hashing) == 0);
	WAIT_FOR(drp_jobs_pending(srv.jobs) == 0);
	ck_assert(!stored());
	ck_assert_uint_eq(mismatches(), 1);
	end_fill(f);
}
END_TEST

/* Without a hash lane (after shutdown, or a server without a pool) the
 * fetch's thread hashes as the bytes pass: the same verdict. */
START_TEST(fill_without_lane)
{
	drp_pool_lane_close(srv.hash_lane);
	srv.hash_lane = NULL;
	drp_fill_t *f = start_fill("/ok");
	RUN_UNTIL(view(f).state != DRP_FILL_RUNNING &&
		  view(f).state != DRP_FILL_STARTING);
	ck_assert_int_eq(view(f).state, DRP_FILL_VERIFIED);
	ck_assert_uint_eq(atomic_load(&srv.fills_hashing), 0);
	WAIT_FOR(drp_jobs_pending(srv.jobs) == 0);
	check_stored();
	end_fill(f);
}
END_TEST

static void *shutdown_thread(void *arg)
{
	drp_fill_shutdown(&srv, *(double *)arg);
	return NULL;
}

/* What shutdown waits for: a second fill whose upstream stalls after a
 * few bytes (an abandoned fetch: its hashing ends without a verdict),
 * kicked by drp_fill_shutdown into the lane behind the complete one. */
static drp_fill_t *start_held_fill(void)
{
	enum drp_fill_found found;
	/* Another digest: the table holds one fill per digest. */
	drp_fill_t *g = drp_fill_attach(
		&srv,
		"sha256:0000000000000000000000000000000000000000000000000000000"
		"000000000",
		"up.test test/y", &found);
	ck_assert_int_eq(found, DRP_FILL_CREATED);
	drp_fetch_req_t req = {.host = "up.test",
			       .port = fk.port,
			       .method = "GET",
			       .target = "/held"};
	drp_fill_start(g, &w, rt, &req);
	drp_fill_waiter_add(g, &w);
	RUN_UNTIL(view(g).written == HELD_SENT);
	return g;
}

/*
 * At exit, shutdown lets the hashing under way finish: the complete
 * body queued behind the held lane is still verified (and its store
 * queued), the abandoned one ends without a verdict, and then the lane
 * is closed.
 */
START_TEST(fill_shutdown_waits_for_hashing)
{
	hold_hash_lane();
	drp_fill_t *f = start_fill("/ok");
	RUN_UNTIL(view(f).written == BLOB_LEN);
	drp_fill_t *g = start_held_fill();
	ck_assert_uint_eq(drp_pool_lane_queued(srv.hash_lane), 1);
	ck_assert_uint_eq(atomic_load(&srv.fills_hashing), 2);

	double timeout = 30;
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, shutdown_thread, &timeout),
			 0);
	/* Shutdown ended the abandoned body: its last job is queued. */
	WAIT_FOR(drp_pool_lane_queued(srv.hash_lane) == 2);
	release_hash_lane();
	pthread_join(t, NULL);
	ck_assert_ptr_null(srv.hash_lane);
	ck_assert_uint_eq(atomic_load(&srv.fills_hashing), 0);
	ck_assert_int_eq(view(f).state, DRP_FILL_VERIFIED);
	WAIT_FOR(drp_jobs_pending(srv.jobs) == 0);
	check_stored();
	end_fill(f);
	/* The abandoned fetch ends when its upstream goes. */
	ck_assert_int_eq(write(fk.stop[1], "x", 1), 1);
	RUN_UNTIL(view(g).state == DRP_FILL_FAILED);
	end_fill(g);
}
END_TEST

static drp_pool_lane_t *closing_lane;

/* The close takes the queued jobs off the lane first, then waits for
 * the running one, then cancels them. */
static void *open_gate_when_unqueued(void *arg)
{
	(void)arg;
	while (drp_pool_lane_queued(closing_lane) > 0)
		usleep(1000);
	release_hash_lane();
	return NULL;
}

/* Out of time: the hash job still queued is cancelled when the lane
 * closes, the fill fails (no verdict, nothing stored). */
START_TEST(fill_shutdown_timeout_cancels)
{
	hold_hash_lane();
	drp_fill_t *f = start_fill("/ok");
	RUN_UNTIL(view(f).written == BLOB_LEN);
	ck_assert_uint_eq(drp_pool_lane_queued(srv.hash_lane), 1);
	closing_lane = srv.hash_lane;
	pthread_t t;
	ck_assert_int_eq(
		pthread_create(&t, NULL, open_gate_when_unqueued, NULL), 0);
	drp_fill_shutdown(&srv, 0);
	pthread_join(t, NULL);
	ck_assert_ptr_null(srv.hash_lane);
	ck_assert_uint_eq(atomic_load(&srv.fills_hashing), 0);
	ck_assert_int_eq(view(f).state, DRP_FILL_FAILED);
	WAIT_FOR(drp_jobs_pending(srv.jobs) == 0);
	ck_assert(!stored());
	end_fill(f);
}
END_TEST

/*
 * The spool cannot take the body (a write fails: here the file size
 * limit, a full disk alike): the fill fails at once, and its hashing
 * ends with it, not only when the fetch is over, which at exit may never
 * come (the fetch is abandoned with its loop): shutdown would wait for
 * it until its time is up.
 */
START_TEST(fill_spool_write_fails)
{
	struct rlimit old, small;
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	small = old;
	small.rlim_cur = HELD_SENT / 2;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
	drp_fill_t *f = start_fill("/held");
	RUN_UNTIL(view(f).state == DRP_FILL_FAILED);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	ck_assert_uint_lt(view(f).written, HELD_SENT);
	/* The upstream holds the rest back: the fetch is not over, and the
	 * loop does not run any more, as at exit. */
	WAIT_FOR(atomic_load(&srv.fills_hashing) == 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	drp_fill_shutdown(&srv, 30);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_int_lt(t1.tv_sec - t0.tv_sec, 5);
	ck_assert_ptr_null(srv.hash_lane);
	WAIT_FOR(drp_jobs_pending(srv.jobs) == 0);
	ck_assert(!stored());
	/* The upstream goes: the fetch ends, with the fill's last
	 * references. */
	ck_assert_int_eq(write(fk.stop[1], "x", 1), 1);
	RUN_UNTIL(metric("drp_fills_in_flight") == 0);
	end_fill(f);
}
END_TEST

/* The spool files (deleted, under tmpdir) this process has open. */
static unsigned spools_open(void)
{
	int fd;
	return spools_open_fd(&fd);
}

/*
 * The worker's loop ends (SIGTERM) while a fill's fetch is under way
 * (the upstream holds the rest back): the stop hook ends the fetch
 * there and then, as a failed one. The fill fails (nothing stored), it
 * is no longer in flight, and once its waiter leaves nothing holds it:
 * its spool is closed. Before, the fetch was abandoned with the loop,
 * and with it the fill and its spool, for good.
 */
START_TEST(fill_worker_stop_ends_fetch)
{
	drp_fill_t *f = start_fill("/held");
	RUN_UNTIL(view(f).written == HELD_SENT);
	ck_assert_int_eq(metric("drp_fills_in_flight"), 1);
	ck_assert_uint_eq(spools_open(), 1);
	drp_fill_worker_stop(&w);
	ck_assert_int_eq(metric("drp_fills_in_flight"), 0);
	ck_assert_int_eq(view(f).state, DRP_FILL_FAILED);
	/* As at exit: the loop runs no more. */
	drp_fill_shutdown(&srv, 30);
	ck_assert_uint_eq(atomic_load(&srv.fills_hashing), 0);
	WAIT_FOR(drp_jobs_pending(srv.jobs) == 0);
	ck_assert(!stored());
	end_fill(f);
	ck_assert_uint_eq(spools_open(), 0);
	ck_assert_ptr_null(srv.fills);
}
END_TEST

Suite *fill_suite(void)
{
	Suite *s = suite_create("fill");
	TCase *tc = tcase_create("hash");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, fill_verdict_from_hash_lane);
	tcase_add_test(tc, fill_mismatch_fails);
	tcase_add_test(tc, fill_attach_after_store);
	tcase_add_test(tc, fill_spool_truncated_before_hash);
	tcase_add_test(tc, fill_without_lane);
	tcase_add_test(tc, fill_shutdown_waits_for_hashing);
	tcase_add_test(tc, fill_shutdown_timeout_cancels);
	tcase_add_test(tc, fill_spool_write_fails);
	tcase_add_test(tc, fill_worker_stop_ends_fetch);
	suite_add_tcase(s, tc);
	return s;
}
