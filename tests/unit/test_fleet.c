/* SPDX-License-Identifier: MIT */
/*
 * The fleet's decision before a lease holder completes its upload
 * (src/registry/fleet.c, drp_lease_check_of): the compare-and-extend's
 * answer, a lapse an earlier answer found, and, without an answer, how
 * long ago the lease was last confirmed. The Redis round trips around it
 * run in the integration scenarios (fleet, fleet_stall).
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "core/daemon.h"
#include "registry/fleet.h"
#include "upstream/redis.h"
#include "upstream/upstream.h"
#include "loopback.h"

Suite *fleet_suite(void);

#define TTL 3.0

static redisReply integer(long long v)
{
	return (redisReply){.type = REDIS_REPLY_INTEGER, .integer = v};
}

/* Redis answers: 1 is ours (extended), 0 is gone or another's; the time
 * since the last confirmation does not matter then. */
START_TEST(fleet_check_answered)
{
	redisReply one = integer(1), zero = integer(0);
	/* held, recently confirmed */
	ck_assert_int_eq(drp_lease_check_of(&one, false, 100., 99., TTL),
			 DRP_LEASE_HELD);
	/* held after a stall far longer than the lease: Redis says so */
	ck_assert_int_eq(drp_lease_check_of(&one, false, 100., 10., TTL),
			 DRP_LEASE_HELD);
	/* the race: confirmed 0.5 s ago by the clock, yet Redis says no
	 * (its key ended, another proxy took it): not published */
	ck_assert_int_eq(drp_lease_check_of(&zero, false, 100., 99.5, TTL),
			 DRP_LEASE_LAPSED);
	ck_assert_int_eq(drp_lease_check_of(&zero, false, 100., 10., TTL),
			 DRP_LEASE_LAPSED);
	ck_assert(drp_lease_check_publish(DRP_LEASE_HELD));
	ck_assert(!drp_lease_check_publish(DRP_LEASE_LAPSED));
}
END_TEST

/* A renewal answered 0 before: never ours again, whatever comes. */
START_TEST(fleet_check_lapsed_before)
{
	redisReply one = integer(1);
	ck_assert_int_eq(drp_lease_check_of(&one, true, 100., 99.9, TTL),
			 DRP_LEASE_LAPSED);
	ck_assert_int_eq(drp_lease_check_of(NULL, true, 100., 99.9, TTL),
			 DRP_LEASE_LAPSED);
}
END_TEST

/* No answer (Redis down, too slow) or an error reply: published only
 * while Redis cannot have ended the key, confirmed_at + ttl. */
START_TEST(fleet_check_unanswered)
{
	redisReply err = {.type = REDIS_REPLY_ERROR};
	ck_assert_int_eq(drp_lease_check_of(NULL, false, 100., 98., TTL),
			 DRP_LEASE_UNANSWERED_HELD);
	ck_assert_int_eq(drp_lease_check_of(&err, false, 100., 98., TTL),
			 DRP_LEASE_UNANSWERED_HELD);
	/* exactly ttl: Redis may have ended it */
	ck_assert_int_eq(drp_lease_check_of(NULL, false, 100., 97., TTL),
			 DRP_LEASE_UNANSWERED_STALE);
	/* a stall longer than the lease */
	ck_assert_int_eq(drp_lease_check_of(NULL, false, 100., 90., TTL),
			 DRP_LEASE_UNANSWERED_STALE);
	/* never confirmed */
	ck_assert_int_eq(drp_lease_check_of(NULL, false, 1., -1., TTL),
			 DRP_LEASE_UNANSWERED_STALE);
	ck_assert(drp_lease_check_publish(DRP_LEASE_UNANSWERED_HELD));
	ck_assert(!drp_lease_check_publish(DRP_LEASE_UNANSWERED_STALE));
}
END_TEST

/* The clock counts on: two readings, the second not earlier. */
START_TEST(fleet_clock)
{
	double a = drp_lease_clock(), b = drp_lease_clock();
	ck_assert(a > 0.);
	ck_assert(b >= a);
}
END_TEST

/* ---- a worker's stop with leases and commands in flight ---- */

/* A loopback port nothing listens on: Redis is refused at once. */
static uint16_t closed_port(void)
{
	uint16_t port = 0;
	int fd = test_listen_loopback(1, &port);
	ck_assert_int_ge(fd, 0);
	close(fd);
	return port;
}

static void stop_loop_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

/* Run loop until *n is at least want, at most 5 s. */
static void run_until(struct ev_loop *loop, const unsigned *n, unsigned want)
{
	ev_timer limit;
	ev_timer_init(&limit, stop_loop_cb, 5., 0.);
	ev_timer_start(loop, &limit);
	while (*n < want && ev_is_active(&limit))
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &limit);
	ck_assert_uint_ge(*n, want);
}

static void count_cmd_cb(void *arg, const redisReply *reply, const char *why)
{
	ck_assert_ptr_null(reply);
	(*(unsigned *)arg)++;
}

/* A command that failed before reaching Redis (down: within the retry
 * backoff) ends with the connection: its callback runs, nothing leaks.
 * It used to wait for a timer of a loop that no longer ran: leaked. */
START_TEST(fleet_redis_free_unsent)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	drp_redis_t *r = drp_redis_new(loop, "127.0.0.1", closed_port(), 2.);
	const char *argv[] = {"PING"};
	unsigned first = 0, second = 0;
	drp_redis_cmd(r, count_cmd_cb, &first, 1, argv, NULL);
	run_until(loop, &first, 1); /* refused: Redis is down now */
	drp_redis_cmd(r, count_cmd_cb, &second, 1, argv, NULL);
	drp_redis_cmd(r, NULL, NULL, 1, argv, NULL); /* a release's */
	ck_assert_uint_eq(second, 0);
	drp_redis_free(r);
	ck_assert_uint_eq(second, 1);
	ev_loop_destroy(loop);
}
END_TEST

static void count_lease_cb(void *arg, drp_lease_t *l, enum drp_lease_outcome o)
{
	ck_assert_int_eq(o, DRP_LEASE_ALONE); /* Redis is refused */
	(*(unsigned *)arg)++;
}

/* The worker stops with a lease whose command never reached Redis, and
 * its owner cancels it afterwards (as a fill's stop may): no callback,
 * nothing touched after the connection went (that cancel used to reach
 * the freed connection through the command), nothing leaked. */
START_TEST(fleet_worker_stop_leases)
{
	char conf_text[128], err[256] = "";
	snprintf(conf_text, sizeof(conf_text),
		 "[fleet]\nredis = 127.0.0.1:%u\n", closed_port());
	drp_conf_errors_t errs = {0};
	drp_conf_t *conf = drp_conf_load_string("test.ini", conf_text, &errs);
	ck_assert_ptr_nonnull(conf);
	drp_conf_errors_free(&errs);
	drp_upstream_conf_t *ucf =
		drp_upstream_conf_new(conf, err, sizeof(err));
	ck_assert_msg(ucf != NULL, "%s", err);
	drp_fleet_t *fl = drp_fleet_new(conf, 1, err, sizeof(err));
	ck_assert_msg(fl != NULL, "%s", err);

	drp_worker_t w;
	memset(&w, 0, sizeof(w));
	w.loop = ev_loop_new(EVFLAG_AUTO);
	drp_upstream_init(&w.upstream, w.loop, 5.);
	unsigned decided = 0;
	const char *dg = "sha256:"
			 "0000000000000000000000000000000000000000000000000000"
			 "000000000000";
	drp_lease_acquire(fl, &w, NULL, ucf, dg, count_lease_cb, &decided);
	run_until(w.loop, &decided, 1); /* refused: alone; Redis down */
	/* Within the reconnection backoff: its SET fails before Redis. */
	drp_lease_t *held = drp_lease_acquire(fl, &w, NULL, ucf, dg,
					      count_lease_cb, &decided);
	drp_lease_t *kept = drp_lease_acquire(fl, &w, NULL, ucf, dg,
					      count_lease_cb, &decided);
	drp_lease_cancel(kept); /* its owner went first: nothing left */
	drp_fleet_worker_stop(fl, &w);
	ev_run(w.loop, EVRUN_NOWAIT); /* nothing of the lease runs now */
	drp_lease_cancel(held);
	ck_assert_uint_eq(decided, 1);

	drp_fleet_free(fl);
	drp_upstream_fini(&w.upstream);
	ev_loop_destroy(w.loop);
	drp_upstream_conf_unref(ucf);
	drp_conf_free(conf);
}
END_TEST

Suite *fleet_suite(void)
{
	Suite *s = suite_create("fleet");
	TCase *tc = tcase_create("lease check");
	tcase_add_test(tc, fleet_check_answered);
	tcase_add_test(tc, fleet_check_lapsed_before);
	tcase_add_test(tc, fleet_check_unanswered);
	tcase_add_test(tc, fleet_clock);
	suite_add_tcase(s, tc);
	tc = tcase_create("worker stop");
	tcase_add_test(tc, fleet_redis_free_unsent);
	tcase_add_test(tc, fleet_worker_stop_leases);
	suite_add_tcase(s, tc);
	return s;
}
