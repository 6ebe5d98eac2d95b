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

#include "registry/fleet.h"

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

Suite *fleet_suite(void)
{
	Suite *s = suite_create("fleet");
	TCase *tc = tcase_create("lease check");
	tcase_add_test(tc, fleet_check_answered);
	tcase_add_test(tc, fleet_check_lapsed_before);
	tcase_add_test(tc, fleet_check_unanswered);
	tcase_add_test(tc, fleet_clock);
	suite_add_tcase(s, tc);
	return s;
}
