/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/busguard.h"
#include "util/jobs.h"
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

struct order {
	pthread_mutex_t lock;
	int seen[64];
	int n;
	pthread_t thread[64];
};

static struct order ord = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void record(void *arg)
{
	usleep(200); /* let the submitter run ahead: jobs must queue */
	pthread_mutex_lock(&ord.lock);
	ord.thread[ord.n] = pthread_self();
	ord.seen[ord.n++] = (int)(intptr_t)arg;
	pthread_mutex_unlock(&ord.lock);
}

/* One thread: jobs run in submission order, off the submitting thread;
 * free runs every queued job before returning; a NULL queue runs the job
 * at once on the caller. */
START_TEST(jobs_order_and_drain)
{
	drp_jobs_t *j = drp_jobs_new(1);
	ck_assert_ptr_nonnull(j);
	for (int i = 0; i < 50; i++)
		drp_jobs_submit(j, record, (void *)(intptr_t)i);
	ck_assert_uint_le(drp_jobs_pending(j), 50);
	drp_jobs_free(j);
	ck_assert_int_eq(ord.n, 50);
	for (int i = 0; i < 50; i++) {
		ck_assert_int_eq(ord.seen[i], i);
		ck_assert(!pthread_equal(ord.thread[i], pthread_self()));
	}
	drp_jobs_submit(NULL, record, (void *)(intptr_t)99);
	ck_assert_int_eq(ord.n, 51);
	ck_assert_int_eq(ord.seen[50], 99);
	ck_assert(pthread_equal(ord.thread[50], pthread_self()));
}
END_TEST

struct sum_job {
	const volatile unsigned char *p;
	size_t n;
	unsigned long sum;
};

static void sum_bytes(void *arg)
{
	struct sum_job *j = arg;
	for (size_t i = 0; i < j->n; i++)
		j->sum += j->p[i];
}

/* A mapped file truncated under the mapping: reading it faults (as a
 * disk error does); under the guard that is -EIO, not a dead process. */
START_TEST(bus_guard_truncated_mapping)
{
	drp_bus_guard_install();
	char path[] = "/tmp/drp-busguard.XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	size_t len = 64 * 1024;
	unsigned char *data = malloc(len);
	memset(data, 1, len);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	free(data);
	unsigned char *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(m, MAP_FAILED);

	struct sum_job ok = {m, len, 0};
	ck_assert_int_eq(drp_bus_guard(sum_bytes, &ok), 0);
	ck_assert_uint_eq(ok.sum, len);

	ck_assert_int_eq(ftruncate(fd, 0), 0);
	struct sum_job bad = {m, len, 0};
	ck_assert_int_eq(drp_bus_guard(sum_bytes, &bad), -EIO);
	/* Again: the handler stays in place, the thread is usable. */
	bad.sum = 0;
	ck_assert_int_eq(drp_bus_guard(sum_bytes, &bad), -EIO);
	struct sum_job mem = {(const unsigned char *)"\x02\x03", 2, 0};
	ck_assert_int_eq(drp_bus_guard(sum_bytes, &mem), 0);
	ck_assert_uint_eq(mem.sum, 5);
	munmap(m, len);
	close(fd);
}
END_TEST

Suite *util_suite(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, buf_append_consume);
	tcase_add_test(tc, log_level_parse);
	tcase_add_test(tc, jobs_order_and_drain);
	tcase_add_test(tc, bus_guard_truncated_mapping);
	suite_add_tcase(s, tc);
	return s;
}
