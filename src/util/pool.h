/* SPDX-License-Identifier: MIT */
/*
 * The worker pool: threads for everything that must not run on an event
 * loop (password checks, cache stores, ...), completing on the
 * submitting loop through an ev_async.
 *
 * Work is sorted into named lanes, one per class of work. Each lane has
 * its own FIFO queue, a limit on how many of its jobs run at once (max)
 * and a number of threads reserved for it (reserved): a thread never
 * starts a job of one lane if that would leave fewer idle threads than
 * the other lanes' unused reservations. So a lane saturated with slow
 * jobs never holds the threads another lane is owed: a burst of cache
 * fills does not delay a password check, nor a login flood a fill.
 * Free threads serve the lanes round robin.
 *
 * A lane may instead own its threads (drp_pool_lane_new_own): only they
 * run its jobs, at the lane's own priority. A thread that lowered its
 * priority cannot raise it again (without CAP_SYS_NICE), so a lane whose
 * work must yield to the event loops (the hashing of cold fills, at
 * nice 10) cannot borrow the shared threads, nor lend its own.
 *
 * Each submitted job wakes at most one idle thread, and only when no
 * thread already woken will take it; a thread whose job ends looks for
 * the next job itself.
 *
 * Thread-safe: any thread may submit. A job's completion (done) runs on
 * the loop given at submission, from the pool's ev_async on that loop;
 * the ev_async is started on first submission from that loop, so the
 * first submission for a loop must come from the loop's own thread (or
 * while the loop does not run).
 */
#ifndef DRP_UTIL_POOL_H
#define DRP_UTIL_POOL_H

#include <ev.h>
#include <stdbool.h>

typedef struct drp_pool drp_pool_t;
typedef struct drp_pool_lane drp_pool_lane_t;
typedef struct drp_pool_job drp_pool_job_t;

/* The blocking part: runs on a pool thread. */
typedef void drp_pool_work_fn(void *arg);
/* The job ended: status 0 (work ran) or -ECANCELED (it never will: its
 * lane closed or the pool was freed). Runs on the submitting loop, or
 * on the thread of drp_pool_lane_close/drp_pool_free (see there). */
typedef void drp_pool_done_fn(void *arg, int status);

/* Lane flags. */
enum {
	/* drp_pool_free and drp_pool_lane_close run this lane's queued
	 * jobs before they return (e.g. stores of verified downloads)
	 * instead of cancelling them. */
	DRP_POOL_DRAIN = 1 << 0,
};

/* Start `threads` (>= 1) threads. NULL if none could be started. */
drp_pool_t *drp_pool_new(unsigned threads);
/* Threads running. */
unsigned drp_pool_threads(const drp_pool_t *p) __attribute__((nonnull));

/*
 * Add a lane: at most max (>= 1) of its jobs run at once, and reserved
 * (<= max) threads are kept for it. NULL (and a log line) if the lanes'
 * reservations together would exceed the threads. Name is copied (for
 * logs). Any thread; the lane lives until drp_pool_lane_close or
 * drp_pool_free.
 */
drp_pool_lane_t *drp_pool_lane_new(drp_pool_t *p, const char *name,
				   unsigned max, unsigned reserved,
				   unsigned flags) __attribute__((nonnull));

/*
 * Add a lane with `threads` (>= 1) threads of its own, run at the nice
 * value nice (0: the process's; see setpriority(2): per thread on
 * Linux): at most that many of its jobs run at once, and no other lane's
 * on them. NULL (and a log line) if no thread could be started. Not
 * counted in drp_pool_threads. Any thread but the lane's own.
 */
drp_pool_lane_t *drp_pool_lane_new_own(drp_pool_t *p, const char *name,
				       unsigned threads, int nice,
				       unsigned flags) __attribute__((nonnull));

/*
 * Queue work(arg) on lane; then done(arg, status) on loop. loop NULL:
 * done (if not NULL) runs on the pool thread right after work. *job (if
 * job is not NULL) is a handle for drp_pool_cancel, valid until done
 * starts (or, without done, until work starts). Returns 0, or
 * -ESHUTDOWN when the lane is closing or the pool is being freed
 * (nothing queued).
 */
int drp_pool_submit(drp_pool_lane_t *lane, struct ev_loop *loop,
		    drp_pool_work_fn *work, drp_pool_done_fn *done, void *arg,
		    drp_pool_job_t **job) __attribute__((nonnull(1, 3)));

/* Withdraw a job that has not started: returns true and neither work
 * nor done will run. False if it started (done will still run). */
bool drp_pool_cancel(drp_pool_job_t *job) __attribute__((nonnull));

/* Jobs queued in the lane, and running. */
unsigned drp_pool_lane_queued(drp_pool_lane_t *lane) __attribute__((nonnull));
unsigned drp_pool_lane_running(drp_pool_lane_t *lane) __attribute__((nonnull));

/*
 * Close a lane: new submissions get -ESHUTDOWN, queued jobs are
 * cancelled (their done runs here, with -ECANCELED) or, in a DRAIN lane,
 * run, and this waits for the lane's jobs to end (their done goes to
 * their loop as usual); a lane's own threads then end. The lane's
 * memory stays until drp_pool_free, so a submission to it from any
 * thread meanwhile gets -ESHUTDOWN. A second close is a no-op. Not from
 * a pool thread.
 */
void drp_pool_lane_close(drp_pool_lane_t *lane) __attribute__((nonnull));

/*
 * The loop no longer runs (and is about to be destroyed): stop the
 * pool's ev_async on it; completions due to it from now on are kept and
 * run by drp_pool_free. Call from the thread that destroys the loop.
 */
void drp_pool_loop_forget(drp_pool_t *p, struct ev_loop *loop)
	__attribute__((nonnull));

/* fn(arg) at the end of drp_pool_free, after its threads ended and the
 * completions ran (e.g. free an object that wraps a lane, which may be
 * used until then). Any thread. */
void drp_pool_at_free(drp_pool_t *p, void (*fn)(void *), void *arg)
	__attribute__((nonnull(1, 2)));

/*
 * Free the pool: queued jobs of DRAIN lanes run, those of other lanes
 * are cancelled (done with -ECANCELED), running jobs finish, then every
 * completion not yet delivered runs here, on the calling thread. Call
 * when no loop that submitted runs any more (after drp_pool_loop_forget
 * for the ones already destroyed). NULL is a no-op.
 */
void drp_pool_free(drp_pool_t *p);

#endif
