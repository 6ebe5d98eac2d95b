/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin/tokencache.h"

Suite *plugin_tokencache_suite(void);

static drp_tokencache_t *tc;
static int owner_a, owner_b; /* their addresses are the owners */

static void setup(void)
{
	tc = drp_tokencache_new(0);
}

static void teardown(void)
{
	drp_tokencache_free(tc);
}

/* Records what a waiter was told. */
typedef struct seen {
	int calls;
	char token[64];
	bool null;
} seen_t;

static void record_cb(void *arg, const char *token)
{
	seen_t *s = arg;
	s->calls++;
	s->null = token == NULL;
	if (token != NULL)
		strncpy(s->token, token, sizeof(s->token) - 1);
}

static void expect_token(const void *owner, const char *scope, double now,
			 const char *want)
{
	char *t = NULL;
	int rc = drp_tokencache_get(tc, owner, scope, now, &t);
	if (want == NULL) {
		ck_assert_int_eq(rc, -ENOENT);
		ck_assert_ptr_null(t);
	} else {
		ck_assert_int_eq(rc, 0);
		ck_assert_str_eq(t, want);
		free(t);
	}
}

/* drp_tokencache_acquire for owner's scope at now, with cb(arg) as the
 * waiter's callback, answers want (not a hit: no token to free). */
static void expect_acquire(const void *owner, const char *scope, double now,
			   drp_tokencache_cb *cb, void *arg,
			   drp_tokencache_waiter_t **w, int want)
{
	char *t = NULL;
	ck_assert_int_eq(
		drp_tokencache_acquire(tc, owner, scope, now, &t, cb, arg, w),
		want);
	free(t);
}

START_TEST(margin)
{
	/* a tenth of the lifetime ... */
	ck_assert_double_eq(drp_tokencache_margin(60), 6);
	ck_assert_double_eq(drp_tokencache_margin(120), 12);
	/* ... at most 30 s */
	ck_assert_double_eq(drp_tokencache_margin(300), 30);
	ck_assert_double_eq(drp_tokencache_margin(3600), 30);
}
END_TEST

START_TEST(expiry)
{
	/* 300 s token put at t=1000 is used until 1000 + 300 - 30 */
	drp_tokencache_put(tc, &owner_a, "repository:a:pull", "T1", 300, 1000);
	expect_token(&owner_a, "repository:a:pull", 1000, "T1");
	expect_token(&owner_a, "repository:a:pull", 1269.9, "T1");
	expect_token(&owner_a, "repository:a:pull", 1270, NULL);
	/* keyed by owner and scope */
	expect_token(&owner_b, "repository:a:pull", 1000, NULL);
	expect_token(&owner_a, "repository:a:pull,push", 1000, NULL);
	/* a new put replaces */
	drp_tokencache_put(tc, &owner_a, "repository:a:pull", "T2", 60, 2000);
	expect_token(&owner_a, "repository:a:pull", 2053.9, "T2");
	expect_token(&owner_a, "repository:a:pull", 2054, NULL);
}
END_TEST

START_TEST(coalescing)
{
	char *t = NULL;
	seen_t s1 = {0}, s2 = {0};
	drp_tokencache_waiter_t *w1 = NULL, *w2 = NULL;

	/* first asker fetches */
	expect_acquire(&owner_a, "s", 10, record_cb, &s1, &w1,
		       DRP_TOKENCACHE_FETCH);
	ck_assert_ptr_null(w1);
	/* the others wait */
	expect_acquire(&owner_a, "s", 10, record_cb, &s1, &w1,
		       DRP_TOKENCACHE_WAIT);
	expect_acquire(&owner_a, "s", 11, record_cb, &s2, &w2,
		       DRP_TOKENCACHE_WAIT);
	ck_assert_ptr_nonnull(w1);
	ck_assert_ptr_nonnull(w2);
	/* another owner is independent */
	expect_acquire(&owner_b, "s", 11, record_cb, &s2, &w2,
		       DRP_TOKENCACHE_FETCH);
	drp_tokencache_fail(tc, &owner_b, "s");
	ck_assert_int_eq(s2.calls, 0);
	/* nothing is delivered before the put */
	ck_assert_int_eq(s1.calls, 0);
	drp_tokencache_put(tc, &owner_a, "s", "TOKEN", 300, 12);
	ck_assert_int_eq(s1.calls, 1);
	ck_assert_str_eq(s1.token, "TOKEN");
	ck_assert_int_eq(s2.calls, 1);
	ck_assert_str_eq(s2.token, "TOKEN");
	/* later askers hit */
	ck_assert_int_eq(drp_tokencache_acquire(tc, &owner_a, "s", 13, &t,
						record_cb, &s1, &w1),
			 DRP_TOKENCACHE_HIT);
	ck_assert_str_eq(t, "TOKEN");
	free(t);
	ck_assert_int_eq(s1.calls, 1);
	/* after expiry the next asker fetches again */
	expect_acquire(&owner_a, "s", 300, record_cb, &s1, &w1,
		       DRP_TOKENCACHE_FETCH);
	drp_tokencache_fail(tc, &owner_a, "s");
}
END_TEST

START_TEST(fail_wakes_with_null)
{
	seen_t s = {0};
	drp_tokencache_waiter_t *w = NULL;
	expect_acquire(&owner_a, "s", 0, record_cb, &s, &w,
		       DRP_TOKENCACHE_FETCH);
	expect_acquire(&owner_a, "s", 0, record_cb, &s, &w,
		       DRP_TOKENCACHE_WAIT);
	drp_tokencache_fail(tc, &owner_a, "s");
	ck_assert_int_eq(s.calls, 1);
	ck_assert(s.null);
	/* nothing cached, the next asker fetches */
	ck_assert_uint_eq(drp_tokencache_count(tc), 0);
	expect_acquire(&owner_a, "s", 0, record_cb, &s, &w,
		       DRP_TOKENCACHE_FETCH);
	drp_tokencache_fail(tc, &owner_a, "s");
}
END_TEST

START_TEST(cancel_waiter)
{
	seen_t s1 = {0}, s2 = {0};
	drp_tokencache_waiter_t *w1 = NULL, *w2 = NULL;
	expect_acquire(&owner_a, "s", 0, record_cb, &s1, &w1,
		       DRP_TOKENCACHE_FETCH);
	expect_acquire(&owner_a, "s", 0, record_cb, &s1, &w1,
		       DRP_TOKENCACHE_WAIT);
	expect_acquire(&owner_a, "s", 0, record_cb, &s2, &w2,
		       DRP_TOKENCACHE_WAIT);
	/* the cancelled one is never called, the other one is */
	ck_assert(drp_tokencache_cancel(tc, w1));
	drp_tokencache_put(tc, &owner_a, "s", "X", 100, 0);
	ck_assert_int_eq(s1.calls, 0);
	ck_assert_int_eq(s2.calls, 1);
}
END_TEST

/* A waiter that cancels itself from inside its callback. */
static drp_tokencache_waiter_t *self_w;
static bool self_cancel_result = true;
static void self_cancel_cb(void *arg, const char *token)
{
	self_cancel_result = drp_tokencache_cancel(tc, self_w);
	record_cb(arg, token);
}

START_TEST(cancel_from_callback)
{
	seen_t s = {0};
	expect_acquire(&owner_a, "s", 0, record_cb, &s, &self_w,
		       DRP_TOKENCACHE_FETCH);
	expect_acquire(&owner_a, "s", 0, self_cancel_cb, &s, &self_w,
		       DRP_TOKENCACHE_WAIT);
	drp_tokencache_put(tc, &owner_a, "s", "X", 100, 0);
	/* too late to prevent it; no double free (ASan/valgrind runs) */
	ck_assert(!self_cancel_result);
	ck_assert_int_eq(s.calls, 1);
}
END_TEST

/* A waiter whose callback asks the cache again (re-entrancy). */
static void reenter_cb(void *arg, const char *token)
{
	char *t = NULL;
	drp_tokencache_waiter_t *w;
	int *rc = arg;
	*rc = drp_tokencache_acquire(tc, &owner_a, "s", 1, &t, record_cb, NULL,
				     &w);
	free(t);
}

START_TEST(callback_may_reenter)
{
	drp_tokencache_waiter_t *w;
	int rc = -1;
	expect_acquire(&owner_a, "s", 0, reenter_cb, &rc, &w,
		       DRP_TOKENCACHE_FETCH);
	expect_acquire(&owner_a, "s", 0, reenter_cb, &rc, &w,
		       DRP_TOKENCACHE_WAIT);
	drp_tokencache_put(tc, &owner_a, "s", "X", 100, 0);
	ck_assert_int_eq(rc, DRP_TOKENCACHE_HIT);
}
END_TEST

START_TEST(forget_only_same_token)
{
	drp_tokencache_put(tc, &owner_a, "s", "OLD", 300, 0);
	/* a concurrent refresh already replaced it: keep the new one */
	drp_tokencache_put(tc, &owner_a, "s", "NEW", 300, 1);
	drp_tokencache_forget(tc, &owner_a, "s", "OLD");
	expect_token(&owner_a, "s", 2, "NEW");
	/* the refused token itself is dropped */
	drp_tokencache_forget(tc, &owner_a, "s", "NEW");
	expect_token(&owner_a, "s", 2, NULL);
	ck_assert_uint_eq(drp_tokencache_count(tc), 0);
}
END_TEST

START_TEST(short_ttl_not_cached)
{
	seen_t s = {0};
	drp_tokencache_waiter_t *w;
	expect_acquire(&owner_a, "s", 0, record_cb, &s, &w,
		       DRP_TOKENCACHE_FETCH);
	expect_acquire(&owner_a, "s", 0, record_cb, &s, &w,
		       DRP_TOKENCACHE_WAIT);
	/* a zero lifetime still serves the waiters, but is not kept */
	drp_tokencache_put(tc, &owner_a, "s", "EPHEMERAL", 0, 0);
	ck_assert_int_eq(s.calls, 1);
	ck_assert_str_eq(s.token, "EPHEMERAL");
	expect_token(&owner_a, "s", 0, NULL);
	ck_assert_uint_eq(drp_tokencache_count(tc), 0);
}
END_TEST

START_TEST(drop_owner)
{
	seen_t s = {0};
	drp_tokencache_waiter_t *w;
	drp_tokencache_put(tc, &owner_a, "s1", "A1", 300, 0);
	drp_tokencache_put(tc, &owner_a, "s2", "A2", 300, 0);
	drp_tokencache_put(tc, &owner_b, "s1", "B1", 300, 0);
	expect_acquire(&owner_a, "s3", 0, record_cb, &s, &w,
		       DRP_TOKENCACHE_FETCH);
	expect_acquire(&owner_a, "s3", 0, record_cb, &s, &w,
		       DRP_TOKENCACHE_WAIT);
	drp_tokencache_drop_owner(tc, &owner_a);
	ck_assert_int_eq(s.calls, 1);
	ck_assert(s.null);
	ck_assert_uint_eq(drp_tokencache_count(tc), 1);
	expect_token(&owner_b, "s1", 0, "B1");
	expect_token(&owner_a, "s1", 0, NULL);
}
END_TEST

START_TEST(bounded)
{
	drp_tokencache_t *small = drp_tokencache_new(4);
	char scope[16];
	/* two expire early, four later */
	for (int i = 0; i < 6; i++) {
		snprintf(scope, sizeof(scope), "s%d", i);
		drp_tokencache_put(small, &owner_a, scope, "T",
				   i < 2 ? 10 : 1000, 0);
	}
	ck_assert_uint_le(drp_tokencache_count(small), 4);
	/* the entries closest to expiry went first */
	char *t = NULL;
	ck_assert_int_eq(drp_tokencache_get(small, &owner_a, "s0", 1, &t),
			 -ENOENT);
	ck_assert_int_eq(drp_tokencache_get(small, &owner_a, "s5", 1, &t), 0);
	free(t);
	drp_tokencache_free(small);
}
END_TEST

START_TEST(many_scopes_grow)
{
	char scope[32], want[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(scope, sizeof(scope), "repository:r%d:pull", i);
		snprintf(want, sizeof(want), "T%d", i);
		drp_tokencache_put(tc, &owner_a, scope, want, 300, 0);
	}
	ck_assert_uint_eq(drp_tokencache_count(tc), 1000);
	for (int i = 0; i < 1000; i += 97) {
		snprintf(scope, sizeof(scope), "repository:r%d:pull", i);
		snprintf(want, sizeof(want), "T%d", i);
		expect_token(&owner_a, scope, 1, want);
	}
}
END_TEST

/* ---- threads ---- */

#define N_THREADS 8

static atomic_int fetchers, waits, hits, delivered;
static pthread_barrier_t barrier;

static void count_cb(void *arg, const char *token)
{
	(void)arg;
	if (token != NULL && strcmp(token, "SHARED") == 0)
		atomic_fetch_add(&delivered, 1);
}

static void *asker(void *arg)
{
	(void)arg;
	char *t = NULL;
	drp_tokencache_waiter_t *w;
	pthread_barrier_wait(&barrier);
	int rc = drp_tokencache_acquire(tc, &owner_a, "repository:x:pull", 5,
					&t, count_cb, NULL, &w);
	if (rc == DRP_TOKENCACHE_FETCH) {
		atomic_fetch_add(&fetchers, 1);
		/* let the others pile up behind this fetch */
		usleep(20000);
		drp_tokencache_put(tc, &owner_a, "repository:x:pull", "SHARED",
				   300, 6);
	} else if (rc == DRP_TOKENCACHE_WAIT) {
		atomic_fetch_add(&waits, 1);
	} else {
		atomic_fetch_add(&hits, 1);
		free(t);
	}
	return NULL;
}

START_TEST(threads_one_fetch)
{
	pthread_t th[N_THREADS];
	pthread_barrier_init(&barrier, NULL, N_THREADS);
	for (int i = 0; i < N_THREADS; i++)
		pthread_create(&th[i], NULL, asker, NULL);
	for (int i = 0; i < N_THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&barrier);
	/* exactly one fetch; every waiter got the token */
	ck_assert_int_eq(fetchers, 1);
	ck_assert_int_eq(waits + hits, N_THREADS - 1);
	ck_assert_int_eq(delivered, waits);
}
END_TEST

/* Cancel on one thread while another delivers: the canceller waits for
 * a running callback to return and then frees the waiter. */
static atomic_int in_cb, cb_may_return;
static void slow_cb(void *arg, const char *token)
{
	(void)arg;
	(void)token;
	atomic_store(&in_cb, 1);
	while (!atomic_load(&cb_may_return))
		usleep(1000);
}

static void *deliverer(void *arg)
{
	(void)arg;
	drp_tokencache_put(tc, &owner_a, "s", "X", 300, 0);
	return NULL;
}

static void *releaser(void *arg)
{
	(void)arg;
	usleep(50000);
	atomic_store(&cb_may_return, 1);
	return NULL;
}

START_TEST(cancel_races_delivery)
{
	drp_tokencache_waiter_t *w;
	expect_acquire(&owner_a, "s", 0, slow_cb, NULL, &w,
		       DRP_TOKENCACHE_FETCH);
	expect_acquire(&owner_a, "s", 0, slow_cb, NULL, &w,
		       DRP_TOKENCACHE_WAIT);
	pthread_t d, r;
	pthread_create(&d, NULL, deliverer, NULL);
	while (!atomic_load(&in_cb))
		usleep(1000);
	pthread_create(&r, NULL, releaser, NULL);
	/* blocks until slow_cb returns, then reports "too late" */
	ck_assert(!drp_tokencache_cancel(tc, w));
	ck_assert_int_eq(atomic_load(&cb_may_return), 1);
	pthread_join(d, NULL);
	pthread_join(r, NULL);
}
END_TEST

START_TEST(scope_canon)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		/* actions sorted */
		{"repository:a/b:push,pull", "repository:a/b:pull,push"},
		/* already canonical */
		{"repository:a/b:pull", "repository:a/b:pull"},
		/* elements sorted, each with its actions sorted */
		{"repository:z:pull repository:a:push,pull",
		 "repository:a:pull,push repository:z:pull"},
		/* a registry with a port in the name: actions after the last
		 * colon */
		{"repository:h:5000/x:push,pull",
		 "repository:h:5000/x:pull,push"},
		/* no actions part, extra spaces */
		{"  registry:catalog:*  ", "registry:catalog:*"},
		{"plain", "plain"},
		/* empty: the scope of requests outside a repository */
		{"", ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *c = drp_tokencache_scope_canon(cases[i].in);
		ck_assert_str_eq(c, cases[i].out);
		free(c);
	}
	/* A token stored under one spelling is found under the other. */
	drp_tokencache_t *cache = drp_tokencache_new(0);
	int owner;
	drp_tokencache_put(cache, &owner, "repository:a:push,pull", "t1", 300,
			   0);
	char *tok = NULL;
	ck_assert_int_eq(drp_tokencache_get(cache, &owner,
					    "repository:a:pull,push", 1, &tok),
			 0);
	ck_assert_str_eq(tok, "t1");
	free(tok);
	drp_tokencache_forget(cache, &owner, "repository:a:pull,push", "t1");
	ck_assert_int_eq(drp_tokencache_get(cache, &owner,
					    "repository:a:push,pull", 1, &tok),
			 -ENOENT);
	drp_tokencache_free(cache);
}
END_TEST

Suite *plugin_tokencache_suite(void)
{
	Suite *s = suite_create("plugin_tokencache");
	TCase *tc_core = tcase_create("core");
	tcase_add_checked_fixture(tc_core, setup, teardown);
	tcase_add_test(tc_core, margin);
	tcase_add_test(tc_core, scope_canon);
	tcase_add_test(tc_core, expiry);
	tcase_add_test(tc_core, coalescing);
	tcase_add_test(tc_core, fail_wakes_with_null);
	tcase_add_test(tc_core, cancel_waiter);
	tcase_add_test(tc_core, cancel_from_callback);
	tcase_add_test(tc_core, callback_may_reenter);
	tcase_add_test(tc_core, forget_only_same_token);
	tcase_add_test(tc_core, short_ttl_not_cached);
	tcase_add_test(tc_core, drop_owner);
	tcase_add_test(tc_core, bounded);
	tcase_add_test(tc_core, many_scopes_grow);
	suite_add_tcase(s, tc_core);
	TCase *tc_mt = tcase_create("threads");
	tcase_add_checked_fixture(tc_mt, setup, teardown);
	tcase_add_test(tc_mt, threads_one_fetch);
	tcase_add_test(tc_mt, cancel_races_delivery);
	suite_add_tcase(s, tc_mt);
	return s;
}
