/* SPDX-License-Identifier: MIT */
/*
 * The in-flight manifest table (src/registry/mflight.c): who leads and
 * who waits, one key per answer, the copies every waiter gets, which
 * worker is woken, the bound on waiters, and the fetch's end (cancelled
 * with its last waiter on its own loop, kept for waiters elsewhere,
 * cancelled with its loop). Two workers with real libev loops (both run
 * on the test's thread, which the table cannot tell apart: the second's
 * wake-up is an ev_async like another thread's), and, where the fetch
 * itself matters, a real fetch to a socket that never answers.
 */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/conf.h"
#include "proxy/server.h"
#include "proxy/worker.h"
#include "registry/mflight.h"
#include "upstream/fetchbuf.h"
#include "util/buf.h"
#include "util/mem.h"

Suite *mflight_suite(void);

static drp_server_t srv;
static drp_worker_t ws[2];
static unsigned woken[2];
static drp_runtime_t *rt;
static int lfd = -1;
static uint16_t lport;

static void wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	drp_worker_t *w = DRP_CONTAINER_OF(a, drp_worker_t, fill_wake);
	woken[w->id]++;
}

static void setup(void)
{
	memset(&srv, 0, sizeof(srv));
	memset(ws, 0, sizeof(ws));
	memset(woken, 0, sizeof(woken));
	pthread_rwlock_init(&srv.loops_lock, NULL);
	for (unsigned i = 0; i < 2; i++) {
		ws[i].srv = &srv;
		ws[i].id = i;
		ws[i].loop = ev_loop_new(EVFLAG_AUTO);
		ws[i].thread = pthread_self();
		drp_upstream_init(&ws[i].upstream, ws[i].loop, 5.0);
		ev_async_init(&ws[i].fill_wake, wake_cb);
		ev_async_start(ws[i].loop, &ws[i].fill_wake);
	}
	srv.workers = ws;
	srv.n_workers = 2;
	srv.loops_live = true;

	/* An upstream that takes the connection and never answers. */
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(lfd, 8), 0);
	socklen_t sl = sizeof(sin);
	getsockname(lfd, (struct sockaddr *)&sin, &sl);
	lport = ntohs(sin.sin_port);
	char err[256] = "";
	drp_conf_errors_t errs = {0};
	drp_conf_t *conf = drp_conf_load_string(
		"test.ini", "[resolve]\nup.test = 127.0.0.1\n", &errs);
	ck_assert_ptr_nonnull(conf);
	drp_conf_errors_free(&errs);
	rt = drp_runtime_new(conf, err, sizeof(err));
	ck_assert_msg(rt != NULL, "%s", err);
}

static void teardown(void)
{
	ck_assert_uint_eq(drp_mflight_count(), 0);
	for (unsigned i = 0; i < 2; i++) {
		drp_upstream_drain(&ws[i].upstream);
		drp_upstream_fini(&ws[i].upstream);
		ev_loop_destroy(ws[i].loop);
	}
	drp_runtime_unref(rt);
	close(lfd);
	pthread_rwlock_destroy(&srv.loops_lock);
}

static void run_loops(void)
{
	for (unsigned i = 0; i < 2; i++)
		ev_run(ws[i].loop, EVRUN_NOWAIT);
}

/* The leader's fetch, as registry/cached.c starts it: to up.test, whose
 * socket takes the connection and never answers. */
static void start_fetch(drp_mflight_t *m, drp_worker_t *w)
{
	drp_fetch_req_t fr = {.tls = false,
			      .host = "up.test",
			      .port = lport,
			      .method = "GET",
			      .target = "/v2/r/manifests/t",
			      .body_mode = DRP_HTTP_BODY_NONE};
	drp_fetchbuf_t *fb = drp_fetchbuf_start(&w->upstream, rt->upstream, &fr,
						4096, drp_mflight_done, m);
	ck_assert_ptr_nonnull(fb);
	drp_mflight_own(m, fb);
}

static void answer(drp_mflight_t *m, int status, const char *body)
{
	drp_fetchbuf_result_t res = {.status = status, .reason = "fine"};
	drp_buf_puts(&res.head, "Content-Type: application/x-test\r\n");
	drp_buf_puts(&res.body, body);
	snprintf(res.digest, sizeof(res.digest), "sha256:abc");
	snprintf(res.content_type, sizeof(res.content_type),
		 "application/x-test");
	drp_mflight_done(m, &res);
	drp_buf_free(&res.head);
	drp_buf_free(&res.body);
}

START_TEST(mflight_one_answer_for_every_waiter)
{
	bool lead;
	drp_mflight_t *a = drp_mflight_join(&srv, &ws[0], rt, "k1", &lead);
	ck_assert_ptr_nonnull(a);
	ck_assert(lead);
	drp_mflight_t *b = drp_mflight_join(&srv, &ws[1], rt, "k1", &lead);
	ck_assert_ptr_eq(b, a);
	ck_assert(!lead);
	drp_mflight_t *c = drp_mflight_join(&srv, &ws[1], rt, "k1", &lead);
	ck_assert_ptr_eq(c, a);
	ck_assert(!lead);
	/* Another key: another fetch. */
	drp_mflight_t *o = drp_mflight_join(&srv, &ws[1], rt, "k2", &lead);
	ck_assert_ptr_nonnull(o);
	ck_assert_ptr_ne(o, a);
	ck_assert(lead);
	ck_assert_uint_eq(drp_mflight_count(), 2);

	drp_fetchbuf_result_t r;
	char reason[64];
	ck_assert(!drp_mflight_result(b, &r, reason, sizeof(reason)));
	answer(a, 200, "{\"manifest\":1}");
	/* Answered: both workers with waiters are woken; a 200 stays in
	 * the table until its store ends (mflight_kept_until_stored). */
	ck_assert_uint_eq(drp_mflight_count(), 2);
	run_loops();
	ck_assert_uint_eq(woken[0], 1);
	ck_assert_uint_eq(woken[1], 1);

	drp_mflight_t *all[] = {a, b, c};
	for (unsigned i = 0; i < 3; i++) {
		ck_assert(
			drp_mflight_result(all[i], &r, reason, sizeof(reason)));
		ck_assert_int_eq(r.err, 0);
		ck_assert_int_eq(r.status, 200);
		ck_assert_str_eq(r.reason, "fine");
		ck_assert_str_eq(r.digest, "sha256:abc");
		ck_assert_str_eq(r.content_type, "application/x-test");
		ck_assert_uint_eq(drp_buf_pending(&r.body), 14);
		ck_assert(memcmp(drp_buf_head(&r.body), "{\"manifest\":1}",
				 14) == 0);
		ck_assert_uint_eq(drp_buf_pending(&r.head), 34);
		/* A copy: the waiter may change it (cached.c appends a
		 * Docker-Content-Digest line) without touching the others. */
		drp_buf_puts(&r.head, "X: y\r\n");
		drp_mflight_result_free(&r);
	}
	/* One waiter stores. */
	ck_assert(drp_mflight_claim_store(b));
	ck_assert(!drp_mflight_claim_store(a));
	ck_assert(!drp_mflight_claim_store(c));
	drp_mflight_leave(a, &ws[0]);
	drp_mflight_leave(b, &ws[1]);
	drp_mflight_leave(c, &ws[1]);
	ck_assert_uint_eq(drp_mflight_count(), 2);
	drp_mflight_store_end(b);
	/* Stored: the key leaves the table (a later request finds the
	 * cache or fetches anew). */
	ck_assert_uint_eq(drp_mflight_count(), 1);
	drp_mflight_t *later = drp_mflight_join(&srv, &ws[0], rt, "k1", &lead);
	ck_assert_ptr_ne(later, a);
	ck_assert(lead);

	/* An error answer is shared the same way. */
	answer(o, 404, "{\"errors\":[]}");
	ck_assert(drp_mflight_result(o, &r, reason, sizeof(reason)));
	ck_assert_int_eq(r.status, 404);
	drp_mflight_result_free(&r);
	drp_mflight_leave(o, &ws[1]);
	answer(later, 200, "x");
	drp_mflight_leave(later, &ws[0]);
}
END_TEST

START_TEST(mflight_only_workers_with_waiters_woken)
{
	bool lead;
	drp_mflight_t *a = drp_mflight_join(&srv, &ws[1], rt, "k", &lead);
	ck_assert(lead);
	answer(a, 200, "x");
	run_loops();
	ck_assert_uint_eq(woken[0], 0);
	ck_assert_uint_eq(woken[1], 1);
	drp_mflight_leave(a, &ws[1]);
}
END_TEST

START_TEST(mflight_waiters_bounded)
{
	static drp_mflight_t *ms[DRP_MFLIGHT_WAITERS_MAX];
	bool lead;
	for (unsigned i = 0; i < DRP_MFLIGHT_WAITERS_MAX; i++) {
		ms[i] = drp_mflight_join(&srv, &ws[i % 2], rt, "k", &lead);
		ck_assert_ptr_nonnull(ms[i]);
		ck_assert(lead == (i == 0));
	}
	/* One more: on its own (NULL), the others keep theirs. */
	ck_assert_ptr_null(drp_mflight_join(&srv, &ws[0], rt, "k", &lead));
	answer(ms[0], 200, "x");
	for (unsigned i = 0; i < DRP_MFLIGHT_WAITERS_MAX; i++)
		drp_mflight_leave(ms[i], &ws[i % 2]);
}
END_TEST

START_TEST(mflight_foreign_worker_fetches_alone)
{
	drp_worker_t other = {.srv = &srv, .id = 0};
	bool lead = true;
	ck_assert_ptr_null(drp_mflight_join(&srv, &other, rt, "k", &lead));
	ck_assert(!lead);
	other.id = 7;
	ck_assert_ptr_null(drp_mflight_join(&srv, &other, rt, "k", &lead));
}
END_TEST

/* The leader's client leaves: the fetch goes on for the waiter; the
 * waiter leaves too (on the fetch's loop): the fetch is cancelled. */
START_TEST(mflight_leader_leaves_fetch_goes_on)
{
	bool lead;
	drp_mflight_t *a = drp_mflight_join(&srv, &ws[0], rt, "k", &lead);
	start_fetch(a, &ws[0]);
	drp_mflight_t *b = drp_mflight_join(&srv, &ws[0], rt, "k", &lead);
	ck_assert(!lead);
	drp_mflight_leave(a, &ws[0]);
	ck_assert_uint_eq(drp_mflight_count(), 1);
	run_loops();
	/* Still joinable: the fetch runs. */
	drp_mflight_t *c = drp_mflight_join(&srv, &ws[1], rt, "k", &lead);
	ck_assert_ptr_eq(c, b);
	drp_mflight_leave(c, &ws[1]);
	drp_mflight_leave(b, &ws[0]);
	ck_assert_uint_eq(drp_mflight_count(), 0);
}
END_TEST

/* The last waiter leaves on another loop: that loop may not touch the
 * fetch, which finishes (here: ends with its loop). */
START_TEST(mflight_last_waiter_elsewhere_keeps_fetch)
{
	bool lead;
	drp_mflight_t *a = drp_mflight_join(&srv, &ws[0], rt, "k", &lead);
	start_fetch(a, &ws[0]);
	drp_mflight_t *b = drp_mflight_join(&srv, &ws[1], rt, "k", &lead);
	drp_mflight_leave(a, &ws[0]);
	drp_mflight_leave(b, &ws[1]);
	ck_assert_uint_eq(drp_mflight_count(), 1);
	drp_mflight_worker_stop(&ws[0]);
	ck_assert_uint_eq(drp_mflight_count(), 0);
}
END_TEST

/* The fetch's loop ends: its waiters elsewhere get a 503, are woken. */
START_TEST(mflight_worker_stop_answers_waiters)
{
	bool lead;
	drp_mflight_t *a = drp_mflight_join(&srv, &ws[0], rt, "k", &lead);
	start_fetch(a, &ws[0]);
	drp_mflight_t *b = drp_mflight_join(&srv, &ws[1], rt, "k", &lead);
	drp_mflight_leave(a, &ws[0]);
	drp_mflight_worker_stop(&ws[1]); /* not its loop: nothing */
	ck_assert_uint_eq(drp_mflight_count(), 1);
	drp_mflight_worker_stop(&ws[0]);
	run_loops();
	ck_assert_uint_eq(woken[1], 1);
	drp_fetchbuf_result_t r;
	char reason[64];
	ck_assert(drp_mflight_result(b, &r, reason, sizeof(reason)));
	ck_assert_int_eq(r.err, -ESHUTDOWN);
	ck_assert_int_eq(r.http_status, 503);
	drp_mflight_result_free(&r);
	drp_mflight_leave(b, &ws[1]);
}
END_TEST

/* A verified 200 is stored in the background (cached.c's stores lane):
 * until that store ends the key stays, so a request in that window joins
 * and is answered from the kept copy instead of missing the cache and
 * fetching again. The store's end (here held until the test says so)
 * lets the key go; so does a failed store. */
START_TEST(mflight_kept_until_stored)
{
	bool lead;
	drp_mflight_t *a = drp_mflight_join(&srv, &ws[0], rt, "k", &lead);
	ck_assert(lead);
	answer(a, 200, "{\"m\":1}");
	ck_assert(drp_mflight_claim_store(a));
	drp_mflight_leave(a, &ws[0]);
	/* The store job has not finished: a new request joins. */
	ck_assert_uint_eq(drp_mflight_count(), 1);
	drp_mflight_t *b = drp_mflight_join(&srv, &ws[1], rt, "k", &lead);
	ck_assert_ptr_eq(b, a);
	ck_assert(!lead);
	drp_fetchbuf_result_t r;
	char reason[64];
	ck_assert(drp_mflight_result(b, &r, reason, sizeof(reason)));
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_eq(drp_buf_pending(&r.body), 7);
	drp_mflight_result_free(&r);
	ck_assert(!drp_mflight_claim_store(b)); /* stored once */
	drp_mflight_leave(b, &ws[1]);
	ck_assert_uint_eq(drp_mflight_count(), 1);
	/* The store ends (success or failure alike): the key leaves, the
	 * next request finds the cache or fetches anew. */
	drp_mflight_store_end(a);
	ck_assert_uint_eq(drp_mflight_count(), 0);
	drp_mflight_t *c = drp_mflight_join(&srv, &ws[0], rt, "k", &lead);
	ck_assert_ptr_ne(c, a);
	ck_assert(lead);
	answer(c, 200, "x");
	ck_assert(drp_mflight_claim_store(c));
	/* The store job ends on the lane's thread while the key has a
	 * waiter: the entry lives on for it, leaves the table. */
	drp_mflight_t *d = drp_mflight_join(&srv, &ws[1], rt, "k", &lead);
	ck_assert_ptr_eq(d, c);
	drp_mflight_store_end(c);
	ck_assert_uint_eq(drp_mflight_count(), 0);
	ck_assert(drp_mflight_result(d, &r, reason, sizeof(reason)));
	drp_mflight_result_free(&r);
	drp_mflight_leave(c, &ws[0]);
	drp_mflight_leave(d, &ws[1]);
}
END_TEST

/* Not kept: an answer other than 200, and a 200 nobody is left to
 * store (every waiter gone before one claimed it). */
START_TEST(mflight_not_kept)
{
	bool lead;
	drp_mflight_t *a = drp_mflight_join(&srv, &ws[0], rt, "k", &lead);
	answer(a, 404, "{}");
	ck_assert_uint_eq(drp_mflight_count(), 0);
	ck_assert(drp_mflight_claim_store(a));
	drp_mflight_store_end(a); /* nothing held: harmless */
	drp_mflight_leave(a, &ws[0]);
	drp_mflight_t *b = drp_mflight_join(&srv, &ws[0], rt, "k", &lead);
	ck_assert(lead);
	answer(b, 200, "x");
	ck_assert_uint_eq(drp_mflight_count(), 1);
	drp_mflight_leave(b, &ws[0]);
	ck_assert_uint_eq(drp_mflight_count(), 0);
}
END_TEST

Suite *mflight_suite(void)
{
	Suite *s = suite_create("mflight");
	TCase *tc = tcase_create("table");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, mflight_one_answer_for_every_waiter);
	tcase_add_test(tc, mflight_only_workers_with_waiters_woken);
	tcase_add_test(tc, mflight_waiters_bounded);
	tcase_add_test(tc, mflight_foreign_worker_fetches_alone);
	tcase_add_test(tc, mflight_leader_leaves_fetch_goes_on);
	tcase_add_test(tc, mflight_last_waiter_elsewhere_keeps_fetch);
	tcase_add_test(tc, mflight_worker_stop_answers_waiters);
	tcase_add_test(tc, mflight_kept_until_stored);
	tcase_add_test(tc, mflight_not_kept);
	suite_add_tcase(s, tc);
	return s;
}
