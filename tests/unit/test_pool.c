/* SPDX-License-Identifier: MIT */
/* The worker pool (src/util/pool.c). Every wait is on a condition the
 * test controls or on a count the jobs keep, never on time. */
#include <check.h>
#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/pool.h"

Suite *pool_suite(void);

/* Shared state of one test's jobs. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool gate_open;	  /* blockers wait for it */
	unsigned started; /* blockers started */
	int order[64];	  /* work, in the order it ran */
	unsigned n_order;
	int done_order[64]; /* done, in the order it ran */
	int done_status[64];
	pthread_t done_thread[64];
	unsigned n_done;
} st = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void reset(void)
{
	pthread_mutex_lock(&st.lock);
	st.gate_open = false;
	st.started = st.n_order = st.n_done = 0;
	pthread_mutex_unlock(&st.lock);
}

static void record_work(void *arg)
{
	pthread_mutex_lock(&st.lock);
	st.order[st.n_order++] = (int)(intptr_t)arg;
	pthread_cond_broadcast(&st.cond);
	pthread_mutex_unlock(&st.lock);
}

/* Blocks until the test opens the gate. */
static void blocker_work(void *arg)
{
	pthread_mutex_lock(&st.lock);
	st.started++;
	pthread_cond_broadcast(&st.cond);
	while (!st.gate_open)
		pthread_cond_wait(&st.cond, &st.lock);
	st.order[st.n_order++] = (int)(intptr_t)arg;
	pthread_mutex_unlock(&st.lock);
}

static void record_done(void *arg, int status)
{
	pthread_mutex_lock(&st.lock);
	st.done_order[st.n_done] = (int)(intptr_t)arg;
	st.done_status[st.n_done] = status;
	st.done_thread[st.n_done] = pthread_self();
	st.n_done++;
	pthread_mutex_unlock(&st.lock);
}

static void wait_started(unsigned n)
{
	pthread_mutex_lock(&st.lock);
	while (st.started < n)
		pthread_cond_wait(&st.cond, &st.lock);
	pthread_mutex_unlock(&st.lock);
}

static void open_gate(void)
{
	pthread_mutex_lock(&st.lock);
	st.gate_open = true;
	pthread_cond_broadcast(&st.cond);
	pthread_mutex_unlock(&st.lock);
}

static unsigned n_done(void)
{
	pthread_mutex_lock(&st.lock);
	unsigned n = st.n_done;
	pthread_mutex_unlock(&st.lock);
	return n;
}

/* Run loop until n completions were recorded (each comes through the
 * pool's ev_async, so ev_run blocks until one is due). */
static void run_until_done(struct ev_loop *loop, unsigned n)
{
	while (n_done() < n)
		ev_run(loop, EVRUN_ONCE);
}

/* A lane limited to one job at a time runs them in submission order
 * even with many threads, and completes them in that order on the
 * submitting loop's thread. */
START_TEST(pool_lane_fifo)
{
	reset();
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	drp_pool_t *p = drp_pool_new(4);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(drp_pool_threads(p), 4);
	drp_pool_lane_t *l = drp_pool_lane_new(p, "serial", 1, 1, 0);
	ck_assert_ptr_nonnull(l);
	for (int i = 0; i < 40; i++)
		ck_assert_int_eq(drp_pool_submit(l, loop, record_work,
						 record_done,
						 (void *)(intptr_t)i, NULL),
				 0);
	run_until_done(loop, 40);
	ck_assert_uint_eq(st.n_order, 40);
	for (int i = 0; i < 40; i++) {
		ck_assert_int_eq(st.order[i], i);
		ck_assert_int_eq(st.done_order[i], i);
		ck_assert_int_eq(st.done_status[i], 0);
		ck_assert(pthread_equal(st.done_thread[i], pthread_self()));
	}
	drp_pool_free(p);
	ev_loop_destroy(loop);
}
END_TEST

/* Lane A saturated by jobs that block (more of them than threads): a
 * job of lane B still runs, because A may not take the thread reserved
 * for B. */
START_TEST(pool_lane_no_starvation)
{
	reset();
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	drp_pool_t *p = drp_pool_new(3);
	/* A could use every thread by its max; it may use all but B's. */
	drp_pool_lane_t *a = drp_pool_lane_new(p, "fills", 3, 1, 0);
	drp_pool_lane_t *b = drp_pool_lane_new(p, "users", 2, 1, 0);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	for (int i = 0; i < 6; i++)
		drp_pool_submit(a, loop, blocker_work, record_done,
				(void *)(intptr_t)i, NULL);
	wait_started(2);
	/* B's job runs and completes while every A job blocks. */
	drp_pool_submit(b, loop, record_work, record_done,
			(void *)(intptr_t)100, NULL);
	run_until_done(loop, 1);
	ck_assert_int_eq(st.done_order[0], 100);
	ck_assert_uint_eq(st.started, 2);
	/* B's reservation holds though B is idle again. */
	ck_assert_uint_eq(drp_pool_lane_running(a), 2);
	ck_assert_uint_eq(drp_pool_lane_queued(a), 4);
	open_gate();
	run_until_done(loop, 7);
	ck_assert_uint_eq(st.n_order, 7);
	drp_pool_free(p);
	ev_loop_destroy(loop);
}
END_TEST

/* Reservations cannot exceed the threads: otherwise a lane could be
 * owed a thread that does not exist. */
START_TEST(pool_lane_overcommit)
{
	drp_pool_t *p = drp_pool_new(2);
	ck_assert_ptr_nonnull(drp_pool_lane_new(p, "a", 2, 1, 0));
	ck_assert_ptr_nonnull(drp_pool_lane_new(p, "b", 2, 1, 0));
	ck_assert_ptr_null(drp_pool_lane_new(p, "c", 1, 1, 0));
	/* Unreserved lanes take only what the others are not owed. */
	ck_assert_ptr_nonnull(drp_pool_lane_new(p, "d", 1, 0, 0));
	drp_pool_free(p);
}
END_TEST

/* A queued job can be withdrawn (neither work nor done runs); a running
 * one cannot. */
START_TEST(pool_cancel)
{
	reset();
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	drp_pool_t *p = drp_pool_new(1);
	drp_pool_lane_t *l = drp_pool_lane_new(p, "x", 1, 1, 0);
	drp_pool_job_t *blk = NULL, *x = NULL, *y = NULL;
	drp_pool_submit(l, loop, blocker_work, record_done, (void *)1, &blk);
	wait_started(1);
	drp_pool_submit(l, loop, record_work, record_done, (void *)2, &x);
	drp_pool_submit(l, loop, record_work, record_done, (void *)3, &y);
	ck_assert(!drp_pool_cancel(blk));
	ck_assert(drp_pool_cancel(x));
	ck_assert_uint_eq(drp_pool_lane_queued(l), 1);
	open_gate();
	run_until_done(loop, 2);
	ck_assert_uint_eq(st.n_order, 2);
	ck_assert_int_eq(st.order[0], 1);
	ck_assert_int_eq(st.order[1], 3);
	ck_assert_int_eq(st.done_order[0], 1);
	ck_assert_int_eq(st.done_order[1], 3);
	drp_pool_free(p);
	ck_assert_uint_eq(st.n_done, 2);
	ev_loop_destroy(loop);
}
END_TEST

static drp_pool_t *free_me;

static void *free_thread(void *arg)
{
	(void)arg;
	drp_pool_free(free_me);
	return NULL;
}

/*
 * Free with queued jobs: a DRAIN lane's all run, the other lane's each
 * either ran or was cancelled, and every done runs exactly once, the
 * undelivered ones inside drp_pool_free (the loop no longer runs).
 */
START_TEST(pool_free_with_queued)
{
	reset();
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	drp_pool_t *p = drp_pool_new(1);
	drp_pool_lane_t *keep =
		drp_pool_lane_new(p, "stores", 1, 0, DRP_POOL_DRAIN);
	drp_pool_lane_t *drop = drp_pool_lane_new(p, "users", 1, 0, 0);
	drp_pool_submit(drop, loop, blocker_work, record_done, (void *)0, NULL);
	wait_started(1);
	for (int i = 1; i <= 3; i++) {
		drp_pool_submit(keep, loop, record_work, record_done,
				(void *)(intptr_t)i, NULL);
		drp_pool_submit(drop, loop, record_work, record_done,
				(void *)(intptr_t)(10 + i), NULL);
	}
	free_me = p;
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, free_thread, NULL), 0);
	open_gate();
	pthread_join(t, NULL);
	ck_assert_uint_eq(st.n_done, 7);
	unsigned kept = 0, ran = 0, cancelled = 0;
	for (unsigned i = 0; i < st.n_done; i++) {
		int id = st.done_order[i];
		if (id >= 1 && id <= 3) {
			ck_assert_int_eq(st.done_status[i], 0);
			kept++;
		} else if (st.done_status[i] == 0) {
			ran++;
		} else {
			ck_assert_int_eq(st.done_status[i], -ECANCELED);
			cancelled++;
		}
		ck_assert(!pthread_equal(st.done_thread[i], pthread_self()));
	}
	ck_assert_uint_eq(kept, 3);
	ck_assert_uint_eq(ran + cancelled, 4);
	/* Work ran for exactly the jobs completed with 0. */
	ck_assert_uint_eq(st.n_order, kept + ran);
	ev_loop_destroy(loop);
}
END_TEST

/* Closing a lane cancels its queued jobs (done -ECANCELED, on the
 * closing thread), waits for the running one, and refuses new work. */
START_TEST(pool_lane_close)
{
	reset();
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	drp_pool_t *p = drp_pool_new(2);
	drp_pool_lane_t *l = drp_pool_lane_new(p, "users", 1, 1, 0);
	drp_pool_lane_t *other = drp_pool_lane_new(p, "fills", 1, 1, 0);
	drp_pool_submit(l, loop, blocker_work, record_done, (void *)1, NULL);
	wait_started(1);
	drp_pool_submit(l, loop, record_work, record_done, (void *)2, NULL);
	open_gate();
	drp_pool_lane_close(l);
	/* The running job ended (its done is due on the loop); the queued
	 * one was cancelled here unless it had started already. */
	pthread_mutex_lock(&st.lock);
	bool second_ran = st.n_order == 2;
	pthread_mutex_unlock(&st.lock);
	run_until_done(loop, 2);
	for (unsigned i = 0; i < 2; i++) {
		if (st.done_order[i] == 2 && !second_ran)
			ck_assert_int_eq(st.done_status[i], -ECANCELED);
		else
			ck_assert_int_eq(st.done_status[i], 0);
	}
	/* The other lane works on, with the closed lane's thread too. */
	drp_pool_submit(other, loop, record_work, record_done, (void *)3, NULL);
	run_until_done(loop, 3);
	ck_assert_int_eq(st.done_order[2], 3);
	drp_pool_free(p);
	ev_loop_destroy(loop);
}
END_TEST

/* Closing a DRAIN lane runs its queue dry instead. */
START_TEST(pool_lane_close_drains)
{
	reset();
	drp_pool_t *p = drp_pool_new(1);
	drp_pool_lane_t *l =
		drp_pool_lane_new(p, "stores", 1, 1, DRP_POOL_DRAIN);
	drp_pool_submit(l, NULL, blocker_work, NULL, (void *)0, NULL);
	wait_started(1);
	for (int i = 1; i <= 3; i++)
		drp_pool_submit(l, NULL, record_work, record_done,
				(void *)(intptr_t)i, NULL);
	open_gate();
	drp_pool_lane_close(l);
	ck_assert_uint_eq(st.n_order, 4);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(st.order[i], i);
	/* Without a loop, done ran on the pool thread right after work. */
	ck_assert_uint_eq(st.n_done, 3);
	for (unsigned i = 0; i < 3; i++)
		ck_assert(!pthread_equal(st.done_thread[i], pthread_self()));
	drp_pool_free(p);
}
END_TEST

/* Each job completes on the loop it was submitted from, in that loop's
 * thread. */
typedef struct {
	struct ev_loop *loop;
	pthread_t thread;
	pthread_t done_in;
	int status;
} loop_job_t;

static void loop_done(void *arg, int status)
{
	loop_job_t *lj = arg;
	lj->done_in = pthread_self();
	lj->status = status;
	ev_break(lj->loop, EVBREAK_ALL);
}

static void nop_work(void *arg)
{
	(void)arg;
}

static void *loop_thread(void *arg)
{
	loop_job_t *lj = arg;
	ev_run(lj->loop, 0);
	return NULL;
}

START_TEST(pool_done_on_submitting_loop)
{
	drp_pool_t *p = drp_pool_new(2);
	drp_pool_lane_t *l = drp_pool_lane_new(p, "x", 2, 1, 0);
	loop_job_t lj[2];
	memset(lj, 0, sizeof(lj));
	for (int i = 0; i < 2; i++) {
		lj[i].loop = ev_loop_new(EVFLAG_AUTO);
		lj[i].status = 1;
		/* Before the loop runs: allowed from any thread. */
		ck_assert_int_eq(drp_pool_submit(l, lj[i].loop, nop_work,
						 loop_done, &lj[i], NULL),
				 0);
	}
	for (int i = 0; i < 2; i++)
		pthread_create(&lj[i].thread, NULL, loop_thread, &lj[i]);
	for (int i = 0; i < 2; i++) {
		pthread_join(lj[i].thread, NULL);
		ck_assert_int_eq(lj[i].status, 0);
		ck_assert(pthread_equal(lj[i].done_in, lj[i].thread));
	}
	for (int i = 0; i < 2; i++)
		drp_pool_loop_forget(p, lj[i].loop);
	drp_pool_free(p);
	for (int i = 0; i < 2; i++)
		ev_loop_destroy(lj[i].loop);
}
END_TEST

/* One job, and the calling thread waits for it (no loop: done runs on
 * the pool thread right after work). */
static void count_done(void *arg, int status)
{
	(void)arg;
	(void)status;
	pthread_mutex_lock(&st.lock);
	st.n_done++;
	pthread_cond_broadcast(&st.cond);
	pthread_mutex_unlock(&st.lock);
}

static void nop(void *arg)
{
	(void)arg;
}

static long voluntary_switches(void)
{
	struct rusage ru;
	ck_assert_int_eq(getrusage(RUSAGE_SELF, &ru), 0);
	return ru.ru_nvcsw;
}

/* A job wakes one idle thread, not all of them: with 8 idle threads,
 * 200 jobs submitted one at a time (each waited for) cost about two
 * context switches each (the pool thread's and the submitter's), where
 * waking every idle thread on each submit and each end costs more than
 * eight. Counted by the kernel (voluntary context switches of the whole
 * process), so it holds whatever the pool counts itself. */
START_TEST(pool_wakes_one_thread_per_job)
{
	reset();
	drp_pool_t *p = drp_pool_new(8);
	drp_pool_lane_t *l = drp_pool_lane_new(p, "x", 8, 1, 0);
	/* Every thread idle before counting. */
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(
			drp_pool_submit(l, NULL, nop, count_done, NULL, NULL),
			0);
	pthread_mutex_lock(&st.lock);
	while (st.n_done < 8)
		pthread_cond_wait(&st.cond, &st.lock);
	pthread_mutex_unlock(&st.lock);
	usleep(100000); /* the threads go back to waiting */
	long before = voluntary_switches();
	const unsigned n = 200;
	for (unsigned i = 0; i < n; i++) {
		ck_assert_int_eq(
			drp_pool_submit(l, NULL, nop, count_done, NULL, NULL),
			0);
		pthread_mutex_lock(&st.lock);
		while (st.n_done < 8 + i + 1)
			pthread_cond_wait(&st.cond, &st.lock);
		pthread_mutex_unlock(&st.lock);
	}
	long switches = voluntary_switches() - before;
	ck_assert_int_le(switches, 3 * (long)n);
	drp_pool_free(p);
}
END_TEST

static struct {
	pthread_mutex_t lock;
	int nice[16];
	pid_t tid[16];
	unsigned n;
} pr = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void record_nice(void *arg)
{
	(void)arg;
	pid_t tid = (pid_t)syscall(SYS_gettid);
	errno = 0;
	int n = getpriority(PRIO_PROCESS, (id_t)tid);
	pthread_mutex_lock(&pr.lock);
	pr.nice[pr.n] = n;
	pr.tid[pr.n++] = tid;
	pthread_mutex_unlock(&pr.lock);
}

/* A lane with threads of its own runs its jobs on them at its nice
 * value, and neither lends them to the shared lanes (which keep the
 * process's priority) nor needs the shared threads: with the only
 * shared thread blocked, its jobs still run. */
START_TEST(pool_own_lane_priority)
{
	reset();
	pr.n = 0;
	errno = 0;
	int base = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
	drp_pool_t *p = drp_pool_new(1);
	drp_pool_lane_t *shared = drp_pool_lane_new(p, "users", 1, 1, 0);
	drp_pool_lane_t *own = drp_pool_lane_new_own(p, "hash", 2, 10, 0);
	ck_assert_ptr_nonnull(own);
	ck_assert_uint_eq(drp_pool_threads(p), 1);
	ck_assert_int_eq(drp_pool_submit(shared, NULL, blocker_work, NULL,
					 (void *)(intptr_t)1, NULL),
			 0);
	wait_started(1);
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(drp_pool_submit(own, NULL, record_nice,
						 count_done, NULL, NULL),
				 0);
	pthread_mutex_lock(&st.lock);
	while (st.n_done < 6)
		pthread_cond_wait(&st.cond, &st.lock);
	pthread_mutex_unlock(&st.lock);
	open_gate();
	ck_assert_int_eq(drp_pool_submit(shared, NULL, record_nice, count_done,
					 NULL, NULL),
			 0);
	pthread_mutex_lock(&st.lock);
	while (st.n_done < 7)
		pthread_cond_wait(&st.cond, &st.lock);
	pthread_mutex_unlock(&st.lock);
	ck_assert_uint_eq(pr.n, 7);
	for (int i = 0; i < 6; i++) {
		ck_assert_int_eq(pr.nice[i], base + 10 > 19 ? 19 : base + 10);
		ck_assert_int_ne(pr.tid[i], pr.tid[6]);
	}
	ck_assert_int_eq(pr.nice[6], base);
	/* Closed, its threads end; a late submission is refused. */
	drp_pool_lane_close(own);
	ck_assert_int_eq(drp_pool_submit(own, NULL, nop, NULL, NULL, NULL),
			 -ESHUTDOWN);
	drp_pool_free(p);
}
END_TEST

Suite *pool_suite(void)
{
	Suite *s = suite_create("pool");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, pool_lane_fifo);
	tcase_add_test(tc, pool_lane_no_starvation);
	tcase_add_test(tc, pool_lane_overcommit);
	tcase_add_test(tc, pool_cancel);
	tcase_add_test(tc, pool_free_with_queued);
	tcase_add_test(tc, pool_lane_close);
	tcase_add_test(tc, pool_lane_close_drains);
	tcase_add_test(tc, pool_done_on_submitting_loop);
	tcase_add_test(tc, pool_wakes_one_thread_per_job);
	tcase_add_test(tc, pool_own_lane_priority);
	suite_add_tcase(s, tc);
	return s;
}
