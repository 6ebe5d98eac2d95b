/* SPDX-License-Identifier: MIT */
/* The proxy's own endpoints (src/admin/local.c): /readyz's probe, where
 * /metrics and /readyz are answered, and --cache-stats' summary. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/local.h"
#include "util/buf.h"

Suite *local_suite(void);

static char dir[64];
static drp_server_t srv;

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/drp-test-local.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	/* Only what the probe looks at: a CA and forge (never used), a
	 * cache (capi non-NULL) in dir. */
	srv = (drp_server_t){.ca = (void *)1,
			     .forge = (void *)1,
			     .capi = (void *)1,
			     .cache_dir = dir};
}

static void teardown(void)
{
	rmdir(dir);
}

START_TEST(ready_probe)
{
	char why[600];
	ck_assert_int_eq(drp_local_ready(&srv, why, sizeof(why)), 0);
	/* The probe leaves nothing behind. */
	ck_assert_int_eq(rmdir(dir), 0);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	/* A directory that is gone cannot be written. */
	ck_assert_int_eq(rmdir(dir), 0);
	ck_assert_int_eq(drp_local_ready(&srv, why, sizeof(why)), -ENOENT);
	ck_assert_ptr_nonnull(
		strstr(why, "cannot write in the cache directory"));
	ck_assert_ptr_nonnull(strstr(why, dir));
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	/* Draining, and no CA: not ready, with the reason. */
	atomic_store(&srv.draining, true);
	ck_assert_int_eq(drp_local_ready(&srv, why, sizeof(why)), -ESHUTDOWN);
	ck_assert_str_eq(why, "shutting down");
	atomic_store(&srv.draining, false);
	srv.ca = NULL;
	ck_assert_int_eq(drp_local_ready(&srv, why, sizeof(why)), -ENOKEY);
	ck_assert_str_eq(why, "the CA is not loaded");
}
END_TEST

START_TEST(admin_paths)
{
	drp_local_response_t r = {0};
	/* No admin listener: everything on the client port. */
	ck_assert_int_eq(drp_local_answer(&srv, "/readyz", 7, "", false, &r),
			 0);
	ck_assert_int_eq(r.status, 200);
	drp_local_response_free(&r);
	/* With one, /metrics and /readyz move there; /healthz stays. */
	srv.admin = (void *)1;
	ck_assert_int_eq(drp_local_answer(&srv, "/readyz", 7, "", false, &r),
			 -ENOENT);
	ck_assert_int_eq(drp_local_answer(&srv, "/metrics", 8, "", false, &r),
			 -ENOENT);
	ck_assert_int_eq(drp_local_answer(&srv, "/healthz", 8, "", false, &r),
			 0);
	drp_local_response_free(&r);
	ck_assert_int_eq(drp_local_answer(&srv, "/readyz", 7, "", true, &r), 0);
	ck_assert_int_eq(r.status, 200);
	drp_local_response_free(&r);
	/* The admin listener serves no client set-up. */
	ck_assert_int_eq(drp_local_answer(&srv, "/ca.crt", 7, "", true, &r),
			 -ENOENT);
	srv.admin = NULL;
}
END_TEST

START_TEST(summary)
{
	static const char scrape[] =
		"# TYPE drp_requests_total counter\n"
		"drp_requests_total{registry=\"docker.io\",method=\"get\","
		"result=\"hit\",code=\"2xx\"} 6\n"
		"drp_requests_total{registry=\"quay.io\",method=\"head\","
		"result=\"hit\",code=\"2xx\"} 2\n"
		"drp_requests_total{registry=\"docker.io\",method=\"get\","
		"result=\"miss\",code=\"2xx\"} 2\n"
		"drp_requests_total{registry=\"other\",method=\"get\","
		"result=\"pass\",code=\"4xx\"} 5\n"
		"drp_sent_bytes_total{registry=\"docker.io\",source=\"cache\"} "
		"3145728\n"
		"drp_sent_bytes_total{registry=\"docker.io\",source="
		"\"upstream\"} "
		"1024\n"
		"drp_upstream_received_bytes_total{registry=\"docker.io\"} "
		"2048\n"
		"drp_cache_objects 12\n"
		"drp_cache_size_bytes 536870912\n"
		"drp_cache_max_size_bytes 2147483648\n"
		"drp_cache_evictions_total 3\n"
		"drp_digest_mismatches_total 1\n";
	drp_buf_t b = {0};
	ck_assert(drp_local_summary(scrape, &b));
	drp_buf_append(&b, "", 1);
	const char *s = drp_buf_head(&b);
	ck_assert_ptr_nonnull(strstr(s, "  objects            12\n"));
	ck_assert_ptr_nonnull(strstr(s, "512.0 MiB of 2.0 GiB (25%)"));
	ck_assert_ptr_nonnull(strstr(
		s, " hit 8, miss 2, coalesced 0, revalidated 0, stale 0, "
		   "pass 5, tunnel 0, error 0\n"));
	/* 8 hits of 10 cacheable requests; pass is not cacheable. */
	ck_assert_ptr_nonnull(strstr(s, "hit ratio          80%"));
	ck_assert_ptr_nonnull(
		strstr(s, "3.0 MiB from the cache, 1.0 KiB from"));
	ck_assert_ptr_nonnull(strstr(s, "digest mismatches  1\n"));
	drp_buf_free(&b);
	/* Not the proxy's exposition. */
	drp_buf_t c = {0};
	ck_assert(!drp_local_summary("<html>nope</html>", &c));
	drp_buf_free(&c);
}
END_TEST

Suite *local_suite(void)
{
	Suite *s = suite_create("local");
	TCase *tc = tcase_create("local");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, ready_probe);
	tcase_add_test(tc, admin_paths);
	tcase_add_test(tc, summary);
	suite_add_tcase(s, tc);
	return s;
}
