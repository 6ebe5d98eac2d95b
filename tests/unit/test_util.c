/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <string.h>

#include "util/buf.h"
#include "util/log.h"

Suite *util_suite(void);

START_TEST(buf_append_consume)
{
	drp_buf_t b = {0};
	drp_buf_append(&b, "hello ", 6);
	drp_buf_printf(&b, "%s %d", "world", 42);
	ck_assert_uint_eq(drp_buf_pending(&b), 14);
	ck_assert_int_eq(memcmp(drp_buf_head(&b), "hello world 42", 14), 0);
	drp_buf_consume(&b, 6);
	ck_assert_int_eq(memcmp(drp_buf_head(&b), "world 42", 8), 0);
	/* Reserving compacts the consumed head before growing. */
	char *tail = drp_buf_reserve(&b, 10000);
	ck_assert_ptr_eq(tail, b.data + 8);
	ck_assert_int_eq(memcmp(drp_buf_head(&b), "world 42", 8), 0);
	drp_buf_consume(&b, 100);
	ck_assert_uint_eq(drp_buf_pending(&b), 0);
	drp_buf_free(&b);
}
END_TEST

START_TEST(log_level_parse)
{
	ck_assert_int_eq(drp_log_level_parse("debug"), DRP_LOG_DEBUG);
	ck_assert_int_eq(drp_log_level_parse("err"), DRP_LOG_ERR);
	ck_assert_int_eq(drp_log_level_parse("loud"), -1);
}
END_TEST

Suite *util_suite(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, buf_append_consume);
	tcase_add_test(tc, log_level_parse);
	suite_add_tcase(s, tc);
	return s;
}
