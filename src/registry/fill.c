/* SPDX-License-Identifier: MIT */
#include "registry/fill.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/digest.h"
#include "core/daemon.h"
#include "registry/fleet.h"
#include "upstream/s3.h"
#include "util/buf.h"
#include "util/jobs.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/metrics.h"
#include "util/pool.h"

#define DECLINED_BODY_MAX (64 * 1024)
/* A hash job is queued per HASH_WAKE bytes that arrived, not per read: a
 * slow link delivers a few KiB at a time, and a job costs a wake-up of a
 * pool thread. It catches up at the end (end_body). */
#define HASH_WAKE (1024 * 1024)
/* One job hashes at most HASH_WINDOW bytes of the spool:
 * other fills' jobs (the lane is FIFO) get their turn in between. */
#define HASH_WINDOW (4 * 1024 * 1024)
#define HASH_CHUNK  (128 * 1024) /* read back and hashed in one go */

struct drp_fill {
	struct drp_fill *next; /* in the server's table */
	drp_server_t *srv;
	atomic_uint refs;
	pthread_mutex_t lock;
	char digest[DRP_DIGEST_STRSIZE];
	char *owner;
	int spool;
	/* guarded by lock */
	unsigned *wwait; /* waiters per worker (srv->n_workers) */
	bool body_ended; /* the fetch is over (end_err: how) */
	int end_err;
	enum drp_fill_state state;
	uint64_t written;
	uint64_t hashed; /* bytes of the spool hashed */
	bool pooled; /* hashed by jobs in srv->hash_lane (set at the head) */
	/* A hash job is queued or running, or the hashing is over: nobody
	 * queues another one. */
	bool hash_queued;
	uint64_t total;
	bool length_known;
	char content_type[128];
	unsigned waiters;
	drp_buf_t declined;	 /* DECLINED: head lines for the initiator */
	drp_buf_t declined_body; /* and the body */
	int declined_status;
	int declined_upstream; /* the upstream's status (0: none answered) */
	bool in_table;
	/* Written once, under srv->fills_lock, when the fetch starts: other
	 * workers read it under that lock (drp_fill_worker_stop). */
	drp_worker_t *home; /* the fetch's worker */
	/* in srv->fills_homed from then on (fills_lock) */
	struct drp_fill *homed_next, **homed_prevp;
	/* owned by the fetch's worker thread */
	drp_fetch_t *fetch;
	/* The hash: the fetch's thread's until the head is in, then, when
	 * pooled, the hash jobs' (one at a time), with hbuf. */
	drp_digest_t hash;
	bool hashing; /* hash is valid: a verdict is still possible */
	char *hbuf;   /* HASH_CHUNK bytes read back for hashing */
	bool bypass;  /* no room for the spool: everyone passes through */
	ev_timer bypass_timer;
	bool declined_too_big;
	bool broken; /* spool write failed: drain and drop */
	/* Progress of a long fill in the log (the fetch's loop). */
	unsigned conn_id; /* the connection that started it */
	ev_timer progress;
	uint64_t progress_last; /* written at the last report */
	bool in_flight;		/* counted in drp_fills_in_flight */
	/* The S3 tier (srv->s3), on the home loop: a fill from the
	 * upstream uploads the spool as it grows and completes the upload
	 * only on a good verdict; a fill from S3 deletes the object on a
	 * bad one. The verdict comes from a hash job through s3_async
	 * (s3_verdict, under lock: 1 good, -1 bad). */
	bool from_s3;
	bool s3_watch; /* s3_async is started (and holds a reference) */
	ev_async s3_async;
	int s3_verdict;
	drp_s3_upload_t *upload;
	drp_s3_call_t *s3_delete; /* of a damaged copy (holds a reference) */
	drp_upstream_conf_t *ucf; /* the S3 requests' rules (a reference) */
	/* [fleet]: deciding who fetches (lease_wait), then the lease this
	 * proxy holds while it fetches, released with the upload. */
	drp_lease_t *lease_wait;
	drp_lease_t *lease;
};

/* A fill this long gets a progress line per period. */
#define PROGRESS_PERIOD 10.0

static void table_remove(drp_fill_t *f)
{
	drp_server_t *srv = f->srv;
	pthread_mutex_lock(&srv->fills_lock);
	if (f->in_table) {
		for (drp_fill_t **p = (drp_fill_t **)&srv->fills; *p;
		     p = &(*p)->next) {
			if (*p == f) {
				*p = f->next;
				break;
			}
		}
		f->in_table = false;
	}
	pthread_mutex_unlock(&srv->fills_lock);
}

static int spool_open_in(const char *dir)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	/* Filesystems without O_TMPFILE: create and unlink at once. */
	char path[4096];
	snprintf(path, sizeof(path), "%s/.spool.XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		unlink(path);
	return fd;
}

/* The spool: the cache backend's own temp file when it offers one (the
 * fs backend then links the verified file into the cache instead of
 * copying it), else one in the spool directory. */
static int spool_open(drp_server_t *srv)
{
	if (srv->capi && DRP_CACHE_HAS_OP(srv->capi, spool_open)) {
		int fd = srv->capi->spool_open(srv->cdb, &srv->cstats);
		if (fd >= 0)
			return fd;
	}
	return spool_open_in(srv->spool_dir);
}

/* A warning that every cold request on a full or read-only disk would
 * otherwise write: logged when it first happens, then at most once per
 * WARN_PERIOD seconds with the count since (any thread). */
#define WARN_PERIOD 60
typedef struct {
	_Atomic int64_t at;	/* the last line: monotonic s + 1; 0: never */
	atomic_ulong n, logged; /* occurrences, and n at the last line */
} warn_limit_t;

/* One more occurrence: returns how many there were since the last line
 * (this one included) when a line is due now, else 0. */
static unsigned long warn_due(warn_limit_t *w)
{
	unsigned long n = atomic_fetch_add(&w->n, 1) + 1;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t now = (int64_t)ts.tv_sec + 1;
	int64_t last = atomic_load(&w->at);
	if (last != 0 && now - last < WARN_PERIOD)
		return 0;
	if (!atomic_compare_exchange_strong(&w->at, &last, now))
		return 0; /* another thread logs it */
	return n - atomic_exchange(&w->logged, n);
}

/* No spool could be opened (a full or read-only disk): the request is
 * passed through. */
static warn_limit_t spool_warn;

static void spool_failed(drp_server_t *srv, int err)
{
	unsigned long since = warn_due(&spool_warn);
	if (since == 0)
		return;
	drp_log_warning(DRP_LOG_CACHE,
			"spool file in %s: %s: passed through, not cached "
			"(%lu such request(s) since the last report; at most "
			"one report per %d s)",
			srv->spool_dir, strerror(err), since, WARN_PERIOD);
}

const char *drp_fill_owner(const drp_fill_t *f)
{
	return f->owner;
}

drp_fill_t *drp_fill_attach(drp_server_t *srv, const char *digest,
			    const char *owner, enum drp_fill_found *found)
{
	pthread_mutex_lock(&srv->fills_lock);
	for (drp_fill_t *f = srv->fills; f; f = f->next) {
		if (strcmp(f->digest, digest) == 0) {
			atomic_fetch_add(&f->refs, 1);
			pthread_mutex_unlock(&srv->fills_lock);
			*found = DRP_FILL_JOINED;
			return f;
		}
	}
	/* The caller looked in the cache before it came here; a fill may
	 * have ended in between. A verified fill leaves the table only
	 * once it is stored, so a look now, under the table's lock, sees
	 * either its entry above or its object here: never neither (which
	 * would fetch the blob a second time). Counted nowhere: the
	 * caller's own lookup was the miss. */
	drp_cache_stats_t uncounted = {0};
	if (srv->capi &&
	    srv->capi->lookup(srv->cdb, &uncounted, digest, NULL) == 0) {
		pthread_mutex_unlock(&srv->fills_lock);
		*found = DRP_FILL_STORED;
		return NULL;
	}
	int fd = spool_open(srv);
	if (fd < 0) {
		int err = errno;
		pthread_mutex_unlock(&srv->fills_lock);
		spool_failed(srv, err);
		*found = DRP_FILL_NO_SPOOL;
		return NULL;
	}
	drp_fill_t *f = DRP_NEW(drp_fill_t);
	f->srv = srv;
	atomic_init(&f->refs, 2); /* the caller's and the fetch's */
	pthread_mutex_init(&f->lock, NULL);
	snprintf(f->digest, sizeof(f->digest), "%s", digest);
	f->owner = drp_strdup(owner);
	f->spool = fd;
	f->wwait = drp_calloc(srv->n_workers ? srv->n_workers : 1,
			      sizeof(*f->wwait));
	f->total = UINT64_MAX;
	f->state = DRP_FILL_STARTING;
	f->in_table = true;
	f->next = srv->fills;
	srv->fills = f;
	pthread_mutex_unlock(&srv->fills_lock);
	*found = DRP_FILL_CREATED;
	return f;
}

void drp_fill_unref(drp_fill_t *f)
{
	if (f == NULL || atomic_fetch_sub(&f->refs, 1) != 1)
		return;
	table_remove(f);
	if (f->homed_prevp) {
		pthread_mutex_lock(&f->srv->fills_lock);
		*f->homed_prevp = f->homed_next;
		if (f->homed_next)
			f->homed_next->homed_prevp = f->homed_prevp;
		pthread_mutex_unlock(&f->srv->fills_lock);
	}
	close(f->spool);
	drp_upstream_conf_unref(f->ucf);
	free(f->wwait);
	free(f->owner);
	drp_buf_free(&f->declined);
	drp_buf_free(&f->declined_body);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

/* Wake the workers that have waiters on this fill. On the fetch's own
 * thread its worker is woken without a syscall (the event is fed to its
 * loop, which runs it after the current callback); other workers, or
 * from another thread, through their ev_async, which libev coalesces
 * until the loop runs. */
static void notify(drp_fill_t *f)
{
	drp_server_t *srv = f->srv;
	pthread_rwlock_rdlock(&srv->loops_lock);
	if (!srv->loops_live) {
		pthread_rwlock_unlock(&srv->loops_lock);
		return;
	}
	bool on_home =
		f->home && pthread_equal(pthread_self(), f->home->thread);
	pthread_mutex_lock(&f->lock);
	for (unsigned i = 0; i < srv->n_workers; i++) {
		if (f->wwait[i] == 0)
			continue;
		drp_worker_t *w = &srv->workers[i];
		if (w == f->home && on_home)
			ev_feed_event(w->loop, &w->fill_wake, EV_ASYNC);
		else
			ev_async_send(w->loop, &w->fill_wake);
	}
	pthread_mutex_unlock(&f->lock);
	pthread_rwlock_unlock(&srv->loops_lock);
}

void drp_fill_waiter_add(drp_fill_t *f, drp_worker_t *w)
{
	pthread_mutex_lock(&f->lock);
	if (w->id < f->srv->n_workers) {
		f->wwait[w->id]++;
		drp_metrics_fill_waiters_add(1);
	}
	pthread_mutex_unlock(&f->lock);
}

void drp_fill_waiter_del(drp_fill_t *f, drp_worker_t *w)
{
	pthread_mutex_lock(&f->lock);
	if (w->id < f->srv->n_workers && f->wwait[w->id] > 0) {
		f->wwait[w->id]--;
		drp_metrics_fill_waiters_add(-1);
	}
	pthread_mutex_unlock(&f->lock);
}

void drp_fill_view(drp_fill_t *f, drp_fill_view_t *v)
{
	pthread_mutex_lock(&f->lock);
	v->state = f->state;
	v->written = f->written;
	v->total = f->total;
	v->length_known = f->length_known;
	memcpy(v->content_type, f->content_type, sizeof(v->content_type));
	pthread_mutex_unlock(&f->lock);
}

const char *drp_fill_map(drp_fill_t *f, uint64_t off, size_t len,
			 drp_fill_map_t *m)
{
	static long page;
	if (page == 0)
		page = sysconf(_SC_PAGESIZE);
	uint64_t start = off - off % (uint64_t)page;
	m->len = (size_t)(off - start) + len;
	m->base = mmap(NULL, m->len, PROT_READ, MAP_SHARED, f->spool,
		       (off_t)start);
	if (m->base == MAP_FAILED) {
		m->base = NULL;
		return NULL;
	}
	return (const char *)m->base + (off - start);
}

void drp_fill_unmap(drp_fill_map_t *m)
{
	if (m->base)
		munmap(m->base, m->len);
	m->base = NULL;
}

ssize_t drp_fill_read(drp_fill_t *f, void *buf, size_t len, uint64_t off)
{
	ssize_t n = pread(f->spool, buf, len, (off_t)off);
	return n < 0 ? -errno : n;
}

int drp_fill_declined(drp_fill_t *f, const char **head, size_t *head_len,
		      const char **body, size_t *body_len)
{
	*head = drp_buf_head(&f->declined);
	*head_len = drp_buf_pending(&f->declined);
	*body = drp_buf_head(&f->declined_body);
	*body_len = drp_buf_pending(&f->declined_body);
	return f->declined_status;
}

int drp_fill_declined_upstream(const drp_fill_t *f)
{
	return f->declined_upstream;
}

static void set_state(drp_fill_t *f, enum drp_fill_state st)
{
	pthread_mutex_lock(&f->lock);
	f->state = st;
	pthread_mutex_unlock(&f->lock);
	/* New requests go to the cache or fetch again; a verified fill
	 * stays until it is stored, so that they stream from its spool
	 * rather than fetch again while the store runs. */
	if (st > DRP_FILL_VERIFIED ||
	    (st == DRP_FILL_VERIFIED && f->srv->capi == NULL))
		table_remove(f);
	notify(f);
}

/* ---- the fetch's sink ---- */

static void hash_start(drp_fill_t *f);
static void hash_queue(drp_fill_t *f);
static void end_body(drp_fill_t *f, int err);

/* No room for a body on the spool's disk: counted in
 * drp_fills_no_room_total, logged like spool_failed. */
static warn_limit_t no_room_warn;

/* Allocate the body's blocks on the spool's filesystem before the first
 * byte arrives. A full disk is found before anything goes to a client (a
 * spool that fills up halfway would leave every waiter with a broken
 * transfer), and writing into allocated blocks costs the filesystem less
 * than allocating them page by page as the body comes (ext4's delayed
 * allocation reserves and records every page on its way in). False if
 * there is no room. */
static bool reserve_spool(drp_fill_t *f, uint64_t length)
{
	if (length == 0 || length > (uint64_t)INT64_MAX)
		return true;
	if (fallocate(f->spool, FALLOC_FL_KEEP_SIZE, 0, (off_t)length) == 0)
		return true;
	if (errno != ENOSPC && errno != EDQUOT)
		return true; /* cannot tell (e.g. EOPNOTSUPP): try */
	struct statvfs sv;
	uint64_t avail = fstatvfs(f->spool, &sv) == 0
				 ? (uint64_t)sv.f_bavail * sv.f_frsize
				 : 0;
	drp_metrics_fill_no_room();
	unsigned long since = warn_due(&no_room_warn);
	if (since > 0)
		drp_log_warning(DRP_LOG_CACHE,
				"%s: no room for %llu bytes on the spool's "
				"disk (%llu free): passed through, not cached "
				"(%lu such request(s) since the last report; "
				"at most one report per %d s)",
				f->digest, (unsigned long long)length,
				(unsigned long long)avail, since, WARN_PERIOD);
	return false;
}

/* The fill's fetch is over (its loop's thread). */
static void fetch_ended(drp_fill_t *f)
{
	if (!f->in_flight)
		return;
	f->in_flight = false;
	ev_timer_stop(f->home->loop, &f->progress);
	drp_metrics_fills_add(-1);
}

static void progress_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	drp_fill_t *f = DRP_CONTAINER_OF(t, drp_fill_t, progress);
	pthread_mutex_lock(&f->lock);
	uint64_t written = f->written, total = f->total;
	bool known = f->length_known;
	unsigned waiters = 0;
	for (unsigned i = 0; i < f->srv->n_workers; i++)
		waiters += f->wwait[i];
	pthread_mutex_unlock(&f->lock);
	double rate = (double)(written - f->progress_last) / PROGRESS_PERIOD;
	f->progress_last = written;
	char of[64] = "";
	if (known && total > 0)
		snprintf(of, sizeof(of), " of %.1f MiB (%.0f%%)",
			 (double)total / 1048576.0,
			 100.0 * (double)written / (double)total);
	drp_log_info(DRP_LOG_CACHE,
		     "[c%06u] %s: %.1f MiB%s received, %.2f MiB/s, %u "
		     "waiter(s)",
		     f->conn_id, f->digest, (double)written / 1048576.0, of,
		     rate / 1048576.0, waiters);
}

/* ---- the S3 tier ---- */

static void s3_key(const drp_fill_t *f, char *key, size_t len)
{
	const char *hex = strchr(f->digest, ':');
	snprintf(key, len, "blobs/sha256/%s", hex ? hex + 1 : f->digest);
}

/* No verdict will come (the fetch failed, declined, or bypassed): stop
 * waiting for one. Home loop. May free f. */
static void s3_unwatch(drp_fill_t *f)
{
	if (!f->s3_watch)
		return;
	f->s3_watch = false;
	ev_async_stop(f->home->loop, &f->s3_async);
	drp_fill_unref(f);
}

static void upload_cb(void *arg, int err, const char *reason)
{
	drp_fill_t *f = arg;
	f->upload = NULL;
	if (f->lease) {
		/* The object is in S3 (the others read it there), or it
		 * will not be (they fetch on their own). */
		drp_lease_release(f->lease, err == 0 ? NULL : reason);
		f->lease = NULL;
	}
	if (err == 0) {
		drp_metrics_s3(DRP_MS3_STORED);
		drp_log_info(DRP_LOG_CACHE, "%s: in the S3 tier (%s)",
			     f->digest, reason);
	} else if (err != -ECANCELED) {
		drp_metrics_s3(DRP_MS3_NOT_STORED);
		drp_log_warning(DRP_LOG_CACHE,
				"%s: not stored in the S3 tier: %s", f->digest,
				reason);
	}
	drp_fill_unref(f);
}

static void s3_delete_cb(void *arg, const drp_s3_result_t *res)
{
	drp_fill_t *f = arg;
	f->s3_delete = NULL;
	if (res->err == 0 && (res->status == 204 || res->status == 200))
		drp_log_warning(DRP_LOG_CACHE,
				"%s: the S3 tier's damaged copy was deleted",
				f->digest);
	else
		drp_log_warning(DRP_LOG_CACHE,
				"%s: deleting the S3 tier's damaged copy "
				"failed (%s, HTTP %d)",
				f->digest,
				res->err < 0 ? res->reason : "answer",
				res->status);
	drp_fill_unref(f);
}

static void s3_async_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	drp_fill_t *f = DRP_CONTAINER_OF(a, drp_fill_t, s3_async);
	pthread_mutex_lock(&f->lock);
	int verdict = f->s3_verdict;
	uint64_t total = f->written;
	pthread_mutex_unlock(&f->lock);
	if (verdict == 0)
		return;
	drp_server_t *srv = f->srv;
	/* A lapsed lease, known already: another proxy may be publishing
	 * the same object; the rest of this upload is not sent. Otherwise
	 * the lease is confirmed just before the upload would complete
	 * (publish_gate_cb). */
	bool lapsed = verdict > 0 && drp_lease_lapsed(f->lease);
	if (lapsed) {
		drp_metrics_lease_check(DRP_LEASE_LAPSED);
		drp_log_notice(DRP_LOG_CACHE,
			       "fleet: %s: verified, but the lease is no "
			       "longer this proxy's (a renewal was answered "
			       "so): upload aborted, the proxy that took over "
			       "publishes it",
			       f->digest);
	}
	if (f->upload) {
		if (verdict > 0 && !lapsed)
			drp_s3_upload_commit(f->upload, total);
		else
			drp_s3_upload_abort(f->upload);
	}
	if (f->from_s3 && verdict < 0) {
		drp_metrics_s3(DRP_MS3_DAMAGED);
		char key[128];
		s3_key(f, key, sizeof(key));
		drp_s3_req_t r = {.method = "DELETE",
				  .key = key,
				  .fd = -1,
				  .max_body = 65536};
		atomic_fetch_add(&f->refs, 1);
		f->s3_delete = drp_s3_call(srv->s3, &f->home->upstream, f->ucf,
					   &r, s3_delete_cb, f);
	}
	s3_unwatch(f);
}

/* What drp_lease_confirm() found, just before the upload completes. */
static void lease_checked_cb(void *arg, enum drp_lease_check c)
{
	drp_fill_t *f = arg;
	drp_metrics_lease_check(c);
	if (f->upload == NULL)
		return;
	if (drp_lease_check_publish(c))
		drp_s3_upload_publish(f->upload);
	else
		drp_s3_upload_abort(f->upload); /* logged by the lease */
}

/* The upload is verified and up but for its completion: a lease that
 * lapsed (another proxy may hold it now) must not publish, however fast
 * the fill caught up after a stall, before any renewal could tell. */
static void publish_gate_cb(void *arg)
{
	drp_fill_t *f = arg;
	if (f->lease == NULL) {
		drp_s3_upload_publish(f->upload);
		return;
	}
	drp_lease_confirm(f->lease, lease_checked_cb, f);
}

/* The verdict, from any thread. */
static void s3_verdict(drp_fill_t *f, bool ok)
{
	drp_server_t *srv = f->srv;
	pthread_mutex_lock(&f->lock);
	bool watch = f->s3_watch;
	f->s3_verdict = ok ? 1 : -1;
	pthread_mutex_unlock(&f->lock);
	if (!watch)
		return;
	pthread_rwlock_rdlock(&srv->loops_lock);
	if (srv->loops_live)
		ev_async_send(f->home->loop, &f->s3_async);
	pthread_rwlock_unlock(&srv->loops_lock);
}

static void s3_watch(drp_fill_t *f, drp_runtime_t *rt)
{
	f->ucf = drp_upstream_conf_ref(rt->upstream);
	ev_async_init(&f->s3_async, s3_async_cb);
	ev_async_start(f->home->loop, &f->s3_async);
	f->s3_watch = true;
	atomic_fetch_add(&f->refs, 1);
}

/* The fetch ended without a verdict: nothing to store. Home loop. */
static void s3_abandon(drp_fill_t *f)
{
	if (f->upload)
		drp_s3_upload_abort(f->upload);
	s3_unwatch(f);
}

static void bypass_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	drp_fill_t *f = t->data;
	fetch_ended(f);
	if (f->fetch) {
		drp_fetch_cancel(f->fetch); /* no sink callback after this */
		f->fetch = NULL;
	}
	set_state(f, DRP_FILL_BYPASS);
	s3_abandon(f);
	drp_fill_unref(f); /* the fetch's reference */
}

static void fill_head(void *arg, const drp_http_msg_t *resp,
		      enum drp_http_body_mode mode, uint64_t length)
{
	drp_fill_t *f = arg;
	if (resp->status != 200) {
		/* Keep the answer (bounded) for the client that asked. */
		f->declined_status = resp->status;
		f->declined_upstream = resp->status;
		drp_buf_printf(&f->declined, "HTTP/1.1 %d %s\r\n", resp->status,
			       drp_http_reason(resp->status));
		for (size_t i = 0; i < resp->num_headers; i++) {
			const drp_http_header_t *h = &resp->headers[i];
			if (drp_http_is_hop_by_hop(resp, h) ||
			    (h->name_len == 14 &&
			     strncasecmp(h->name, "Content-Length", 14) == 0))
				continue;
			drp_buf_append(&f->declined, h->name, h->name_len);
			drp_buf_append(&f->declined, ": ", 2);
			drp_buf_append(&f->declined, h->value, h->value_len);
			drp_buf_append(&f->declined, "\r\n", 2);
		}
		pthread_mutex_lock(&f->lock);
		f->state = DRP_FILL_STARTING; /* until the body is in */
		f->length_known = false;
		pthread_mutex_unlock(&f->lock);
		f->total = 0;
		return;
	}
	if (mode == DRP_HTTP_BODY_LENGTH && !reserve_spool(f, length)) {
		/* Nothing was sent to anyone yet: cancel (from the loop, not
		 * inside the fetch's callback) and let every waiter fetch for
		 * itself, without the cache. */
		f->bypass = true;
		ev_timer_init(&f->bypass_timer, bypass_cb, 0., 0.);
		f->bypass_timer.data = f;
		ev_timer_start(f->home->loop, &f->bypass_timer);
		return;
	}
	const drp_http_header_t *ct = drp_http_find(resp, "Content-Type");
	pthread_mutex_lock(&f->lock);
	if (ct && ct->value_len < sizeof(f->content_type)) {
		memcpy(f->content_type, ct->value, ct->value_len);
		f->content_type[ct->value_len] = '\0';
	} else {
		snprintf(f->content_type, sizeof(f->content_type),
			 "application/octet-stream");
	}
	if (mode == DRP_HTTP_BODY_LENGTH) {
		f->total = length;
		f->length_known = true;
	}
	f->state = DRP_FILL_RUNNING;
	pthread_mutex_unlock(&f->lock);
	f->hashing = drp_digest_init(&f->hash) == 0;
	if (f->hashing && f->srv->hash_lane != NULL)
		hash_start(f);
	notify(f);
}

static size_t fill_room(void *arg)
{
	drp_fill_t *f = arg;
	if (f->bypass)
		return 0;
	return 256 * 1024;
}

/* A spool write failed: nobody can be served from this fill any more,
 * so its download stops now (the cancel takes effect when the sink's
 * callback returns) instead of draining a body nobody gets. A drained
 * fetch would also outlive its clients, and at exit its loop, taking
 * the fill with it. Home loop, inside the sink's body(). */
static void spool_broken(drp_fill_t *f)
{
	drp_fetch_cancel(f->fetch); /* no sink callback after this */
	f->fetch = NULL;
	fetch_ended(f);
	drp_log_warning(
		DRP_LOG_CACHE,
		"[c%06u] %s: upstream fetch stopped: spool write failed",
		f->conn_id, f->digest);
	s3_abandon(f);
	if (!f->pooled && f->hashing) {
		drp_digest_abort(&f->hash);
		f->hashing = false;
	}
	drp_fill_unref(f); /* the fetch's reference */
}

static void fill_body(void *arg, const char *data, size_t len)
{
	drp_fill_t *f = arg;
	if (f->declined_status) {
		if (drp_buf_pending(&f->declined_body) + len >
		    DECLINED_BODY_MAX)
			f->declined_too_big = true;
		else
			drp_buf_append(&f->declined_body, data, len);
		return;
	}
	if (f->broken)
		return;
	uint64_t off = f->written;
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(f->spool, data + done, len - done,
				   (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* The waiters cannot be served: reset them. */
			drp_log_errno(DRP_LOG_ERR, DRP_LOG_CACHE,
				      "%s: spool write", f->digest);
			f->broken = true;
			set_state(f, DRP_FILL_FAILED);
			/* The spool is over: so is its hashing. */
			end_body(f, -EIO);
			spool_broken(f);
			return;
		}
		done += (size_t)n;
	}
	/* Without the pool (f->pooled is the fetch thread's to write), on
	 * the loop, as the bytes pass. */
	if (!f->pooled && f->hashing &&
	    drp_digest_update(&f->hash, data, len) < 0) {
		drp_digest_abort(&f->hash);
		f->hashing = false; /* no verdict: never verified */
	}
	pthread_mutex_lock(&f->lock);
	f->written += len;
	bool kick = f->pooled && !f->hash_queued &&
		    f->written - f->hashed >= HASH_WAKE;
	if (kick)
		f->hash_queued = true;
	pthread_mutex_unlock(&f->lock);
	if (kick)
		hash_queue(f);
	if (f->upload)
		drp_s3_upload_avail(f->upload, f->written);
	drp_lease_progress(f->lease);
	notify(f);
}

static bool digest_matches(drp_fill_t *f)
{
	if (!f->hashing)
		return false;
	uint8_t want[DRP_DIGEST_LEN];
	if (drp_digest_parse(f->digest, want) < 0) {
		drp_digest_abort(&f->hash);
		return false;
	}
	f->hashing = false;
	return drp_digest_final_check(&f->hash, want) == 0;
}

/* The stores lane: put the verified spool into the cache. */
static void store_job(void *arg)
{
	drp_fill_t *f = arg;
	drp_server_t *srv = f->srv;
	int r = drp_cache_adopt(srv->capi, srv->cdb, &srv->cstats, f->digest,
				f->spool, f->written);
	if (r < 0)
		drp_log_info(DRP_LOG_CACHE, "%s: verified, not stored: %s",
			     f->digest, strerror(-r));
	table_remove(f);
	drp_fill_unref(f);
}

/* Does the spool still hold every byte written: its size, and no hole
 * below it? The hash read each range once (the lane, behind the fetch) or
 * hashed the bytes as they passed (no lane); the waiters read the spool
 * later. A spool truncated or punched in between (a disk error, someone
 * else) reads back as zeros there, and must fail the verdict.
 * Filesystems without SEEK_HOLE report no hole. */
static bool spool_intact(drp_fill_t *f)
{
	struct stat st;
	if (fstat(f->spool, &st) < 0 || (uint64_t)st.st_size != f->written)
		return false;
	if (f->written == 0)
		return true;
	off_t hole = lseek(f->spool, 0, SEEK_HOLE);
	if (hole < 0)
		return errno == EINVAL; /* cannot tell */
	return (uint64_t)hole >= f->written;
}

/* The whole body is in the spool and hashed: give the verdict, release
 * the waiters' last byte, and queue the (slow: fsync) store, holding a
 * reference. Runs in a hash job, or on the fetch's thread without one. */
static void finish(drp_fill_t *f)
{
	drp_server_t *srv = f->srv;
	bool unverifiable = !f->hashing; /* hashing failed on the way */
	bool ok = digest_matches(f);
	bool lost = ok && !spool_intact(f);
	if (lost) {
		ok = false;
		drp_log_err(DRP_LOG_CACHE,
			    "[c%06u] %s: the spool lost bytes before the "
			    "verdict (truncated, or a hole in its %llu bytes); "
			    "discarded, clients reset",
			    f->conn_id, f->digest,
			    (unsigned long long)f->written);
	} else if (unverifiable) {
		drp_log_err(DRP_LOG_CACHE,
			    "%s: %llu bytes received but not verifiable "
			    "(hashing failed); discarded, clients reset",
			    f->digest, (unsigned long long)f->written);
	} else if (!ok) {
		drp_log_err(DRP_LOG_CACHE,
			    "[c%06u] %s: the %s sent %llu bytes that do not "
			    "match the digest; discarded, clients reset",
			    f->conn_id, f->digest,
			    f->from_s3 ? "S3 tier" : "upstream",
			    (unsigned long long)f->written);
		drp_metrics_digest_mismatch();
	}
	set_state(f, ok ? DRP_FILL_VERIFIED : DRP_FILL_FAILED);
	s3_verdict(f, ok);
	if (!ok || srv->capi == NULL)
		return;
	atomic_fetch_add(&f->refs, 1);
	drp_jobs_submit(srv->jobs, store_job, f);
}

/* ---- hashing, as short jobs in the worker pool's hash lane ---- */

/* Hash bytes [off, off + n) of the spool: read in HASH_CHUNK pieces into
 * the fill's buffer, each hashed while it is still in this core's cache.
 * The spool's pages were written on the fetch's core; reading them with
 * one copy per piece and hashing the copy costs less than hashing them in
 * place through a mapping (page faults, unmapping shootdowns, and SHA-256
 * stalled on every cache miss). A short read (the spool was truncated) or
 * a read error fails the hash. 0 or -errno. */
static int hash_span(drp_fill_t *f, uint64_t off, size_t n)
{
	if (f->hbuf == NULL)
		f->hbuf = drp_malloc(HASH_CHUNK);
	int r = 0;
	while (n > 0 && r == 0) {
		size_t want = n < HASH_CHUNK ? n : HASH_CHUNK;
		ssize_t got = pread(f->spool, f->hbuf, want, (off_t)off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			r = got < 0 ? -errno : -EIO;
		else if (drp_digest_update(&f->hash, f->hbuf, (size_t)got) < 0)
			r = -EIO;
		off += (uint64_t)(got > 0 ? got : 0);
		n -= (size_t)(got > 0 ? got : 0);
	}
	return r;
}

/* The hashing of f is over (verdict given, or none possible). */
static void hash_end(drp_fill_t *f)
{
	drp_server_t *srv = f->srv;
	if (f->hashing) {
		drp_digest_abort(&f->hash);
		f->hashing = false;
	}
	free(f->hbuf);
	f->hbuf = NULL;
	drp_fill_unref(f);
	atomic_fetch_sub(&srv->fills_hashing, 1);
}

/*
 * One hash job: hash what the spool holds past f->hashed, up to the end
 * of the current window; then give the verdict if the body is complete
 * and hashed, queue the next job if HASH_WAKE bytes (or the end) are
 * pending, else leave it to the fetch to queue one (fill_body,
 * end_body). Jobs of one fill never overlap: hash_queued stays set from
 * queueing until the last job ends.
 */
static void hash_work(void *arg)
{
	drp_fill_t *f = arg;
	pthread_mutex_lock(&f->lock);
	uint64_t done = f->hashed, avail = f->written;
	bool failed = f->body_ended && f->end_err != 0;
	pthread_mutex_unlock(&f->lock);
	if (!failed && done < avail && !f->hashing) {
		done = avail; /* no verdict possible any more */
	} else if (!failed && done < avail) {
		uint64_t end = done + HASH_WINDOW;
		if (end > avail)
			end = avail;
		size_t n = (size_t)(end - done);
		int r = hash_span(f, done, n);
		if (r < 0) {
			/* No verdict possible: the fill fails when the body
			 * ends. */
			drp_log_err(DRP_LOG_CACHE,
				    "%s: spool read for hashing: %s", f->digest,
				    strerror(-r));
			drp_digest_abort(&f->hash);
			f->hashing = false;
		}
		done += n;
	}
	pthread_mutex_lock(&f->lock);
	f->hashed = done;
	bool over = f->body_ended && f->end_err != 0;
	bool verdict = !over && f->body_ended && done == f->written;
	bool again = !over && !verdict &&
		     (f->body_ended || f->written - done >= HASH_WAKE);
	if (!over && !verdict && !again)
		f->hash_queued = false;
	pthread_mutex_unlock(&f->lock);
	if (verdict)
		finish(f);
	if (verdict || over)
		hash_end(f); /* the fetch failed: fill_done set the state */
	else if (again)
		hash_queue(f);
}

/* done of a hash job: after its work (0, nothing to do), or instead of
 * it when the lane closed at exit (-ECANCELED): no verdict. */
static void hash_done(void *arg, int status)
{
	drp_fill_t *f = arg;
	if (status == 0)
		return;
	drp_log_warning(DRP_LOG_CACHE,
			"%s: not verified before exit; discarded", f->digest);
	set_state(f, DRP_FILL_FAILED);
	hash_end(f);
}

/* Queue the next job (the caller set hash_queued). */
static void hash_queue(drp_fill_t *f)
{
	if (drp_pool_submit(f->srv->hash_lane, NULL, hash_work, hash_done, f,
			    NULL) < 0)
		hash_done(f, -ECANCELED);
}

/* From the head on, the hash is the jobs', which hold a reference and
 * count in srv->fills_hashing until the verdict. */
static void hash_start(drp_fill_t *f)
{
	atomic_fetch_add(&f->refs, 1);
	atomic_fetch_add(&f->srv->fills_hashing, 1);
	pthread_mutex_lock(&f->lock);
	f->pooled = true;
	pthread_mutex_unlock(&f->lock);
}

/* The body is over (err: it failed): the last hash job gives the
 * verdict, or ends the hashing. */
static void end_body(drp_fill_t *f, int err)
{
	pthread_mutex_lock(&f->lock);
	f->body_ended = true;
	f->end_err = err;
	if (err == 0) {
		f->total = f->written;
		f->length_known = true;
	}
	bool kick = f->pooled && !f->hash_queued;
	if (kick)
		f->hash_queued = true;
	pthread_mutex_unlock(&f->lock);
	if (kick)
		hash_queue(f);
}

static void fill_done(void *arg, int err, int http_status, const char *reason)
{
	drp_fill_t *f = arg;
	f->fetch = NULL;
	fetch_ended(f);
	if (f->bypass) {
		/* Ended before bypass_cb ran: it only sets the state. */
		return;
	}
	if (f->broken) {
		err = -EIO;
		reason = "spool write failed";
	}
	if (err == 0 && f->declined_status) {
		pthread_mutex_lock(&f->lock);
		if (f->declined_too_big) {
			drp_buf_reset(&f->declined);
			drp_buf_reset(&f->declined_body);
			f->declined_status = 502;
			drp_buf_printf(&f->declined,
				       "HTTP/1.1 502 Bad Gateway\r\n");
		}
		f->total = f->written;
		pthread_mutex_unlock(&f->lock);
		set_state(f, DRP_FILL_DECLINED);
		s3_abandon(f);
	} else if (err == 0) {
		drp_lease_fetched(f->lease);
		/* Waiters get their last byte with the verdict. */
		end_body(f, 0);
		if (!f->pooled)
			finish(f);
	} else {
		drp_log_warning(DRP_LOG_CACHE,
				"[c%06u] %s: %s fetch failed: %s", f->conn_id,
				f->digest, f->from_s3 ? "S3 tier" : "upstream",
				reason);
		s3_abandon(f);
		end_body(f, err);
		if (!f->pooled && f->hashing) {
			drp_digest_abort(&f->hash);
			f->hashing = false;
		}
		if (f->state == DRP_FILL_STARTING && !f->declined_status) {
			/* Nothing was sent yet: the initiator can answer
			 * with the error. */
			f->declined_status = http_status ? http_status : 502;
			drp_buf_reset(&f->declined);
			drp_buf_reset(&f->declined_body);
			drp_buf_printf(&f->declined,
				       "HTTP/1.1 %d %s\r\nContent-Type: "
				       "text/plain; charset=utf-8\r\n",
				       f->declined_status,
				       drp_http_reason(f->declined_status));
			drp_buf_printf(&f->declined_body, "%s\n", reason);
			set_state(f, DRP_FILL_DECLINED);
		} else {
			set_state(f, DRP_FILL_FAILED);
		}
	}
	drp_fill_unref(f); /* the fetch's reference */
}

static const drp_fetch_sink_t fill_sink = {
	.head = fill_head,
	.room = fill_room,
	.body = fill_body,
	.done = fill_done,
};

/* The fleet decided (drp_fill_start with [fleet]). */
static void lease_cb(void *arg, drp_lease_t *l, enum drp_lease_outcome o)
{
	drp_fill_t *f = arg;
	f->lease_wait = NULL;
	drp_metrics_lease(o == DRP_LEASE_MINE	  ? DRP_ML_TAKEN
			  : o == DRP_LEASE_STORED ? DRP_ML_STORED
						  : DRP_ML_ALONE);
	if (o == DRP_LEASE_STORED)
		drp_metrics_s3(DRP_MS3_READ);
	if (o != DRP_LEASE_STORED) {
		f->lease = o == DRP_LEASE_MINE ? l : NULL;
		if (f->lease && f->upload)
			drp_s3_upload_gate(f->upload, publish_gate_cb, f);
		drp_fetch_start(f->fetch);
		return;
	}
	/* Another proxy stored it meanwhile: read it from the bucket, like
	 * drp_fill_start_s3 (the client was confirmed upstream before). */
	drp_fetch_cancel(f->fetch);
	f->fetch = NULL;
	if (f->upload)
		drp_s3_upload_abort(f->upload); /* nothing was sent */
	f->from_s3 = true;
	char key[128];
	s3_key(f, key, sizeof(key));
	f->fetch = drp_s3_get(f->srv->s3, &f->home->upstream, f->ucf, key,
			      false, 0, 0, &fill_sink, f);
	if (f->fetch == NULL)
		fill_done(f, -EINVAL, 502, "S3 request could not be signed");
}

/* What every fetch of a fill starts with, from the upstream or S3. */
static void fill_begin(drp_fill_t *f, drp_worker_t *w, unsigned conn_id)
{
	f->conn_id = conn_id;
	f->in_flight = true;
	drp_metrics_fills_add(1);
	ev_timer_init(&f->progress, progress_cb, PROGRESS_PERIOD,
		      PROGRESS_PERIOD);
	ev_timer_start(w->loop, &f->progress);
}

/* f's fetch runs on w from now on (and its upload, and the rest: until
 * f is freed, w's stop finds it in srv->fills_homed). */
static void set_home(drp_fill_t *f, drp_worker_t *w)
{
	drp_server_t *srv = f->srv;
	pthread_mutex_lock(&srv->fills_lock);
	f->home = w;
	f->homed_next = srv->fills_homed;
	if (srv->fills_homed)
		srv->fills_homed->homed_prevp = &f->homed_next;
	f->homed_prevp = &srv->fills_homed;
	srv->fills_homed = f;
	pthread_mutex_unlock(&srv->fills_lock);
}

/* A new reference to f unless its last one is gone (it is being freed,
 * and waits for fills_lock to leave srv->fills_homed). fills_lock. */
static bool ref_unless_dying(drp_fill_t *f)
{
	unsigned n = atomic_load(&f->refs);
	while (n > 0)
		if (atomic_compare_exchange_weak(&f->refs, &n, n + 1))
			return true;
	return false;
}

drp_fetch_t *drp_fill_start(drp_fill_t *f, drp_worker_t *w, drp_runtime_t *rt,
			    const drp_fetch_req_t *req)
{
	set_home(f, w);
	fill_begin(f, w, req->conn_id);
	if (f->srv->s3) {
		/* Into the S3 tier as it arrives (parts of a multipart
		 * upload), completed on a good verdict only. */
		char key[128];
		s3_key(f, key, sizeof(key));
		s3_watch(f, rt);
		atomic_fetch_add(&f->refs, 1);
		f->upload = drp_s3_upload_new(f->srv->s3, &w->upstream,
					      rt->upstream, key, f->spool,
					      upload_cb, f);
	}
	f->fetch =
		drp_fetch_new(&w->upstream, rt->upstream, req, &fill_sink, f);
	if (f->srv->fleet && f->srv->s3) {
		/* Not before the fleet decided who fetches (the hooks are
		 * attached meanwhile). */
		f->lease_wait =
			drp_lease_acquire(f->srv->fleet, w, f->srv->s3,
					  rt->upstream, f->digest, lease_cb, f);
		return f->fetch;
	}
	drp_fetch_start(f->fetch);
	return f->fetch;
}

void drp_fill_start_s3(drp_fill_t *f, drp_worker_t *w, drp_runtime_t *rt,
		       unsigned conn_id)
{
	set_home(f, w);
	f->from_s3 = true;
	drp_metrics_s3(DRP_MS3_READ);
	fill_begin(f, w, conn_id);
	char key[128];
	s3_key(f, key, sizeof(key));
	s3_watch(f, rt);
	f->fetch = drp_s3_get(f->srv->s3, &w->upstream, rt->upstream, key,
			      false, 0, 0, &fill_sink, f);
	if (f->fetch == NULL)
		fill_done(f, -EINVAL, 502, "S3 request could not be signed");
}

bool drp_fill_from_s3(const drp_fill_t *f)
{
	return f->from_s3;
}

/* f's loop ends (drp_fill_worker_stop): its upload into the S3 tier,
 * the wait for its verdict, the deletion of a damaged copy and its
 * fleet leases end with it. The abort of the upload would need the
 * loop: a multipart upload already begun is left to the next proxy's
 * sweep (s3_abandoned_after), as a killed fill's is; a lease's key in
 * Redis expires (lease_ttl). The leases go before the fleet's Redis
 * connection, which their commands point at (conn_worker_stop). */
static void s3_stop(drp_fill_t *f)
{
	drp_lease_cancel(f->lease_wait);
	f->lease_wait = NULL;
	drp_lease_cancel(f->lease);
	f->lease = NULL;
	if (f->upload != NULL) {
		drp_s3_upload_cancel(f->upload); /* no callback */
		f->upload = NULL;
		drp_fill_unref(f); /* the upload's reference */
	}
	if (f->s3_delete != NULL) {
		drp_s3_call_cancel(f->s3_delete);
		f->s3_delete = NULL;
		drp_fill_unref(f); /* the deletion's reference */
	}
	s3_unwatch(f);
}

/* Does some of f live on w's loop: its fetch, the bypass about to end
 * it, its upload, the wait for its verdict, a deletion, a lease? Under
 * srv->fills_lock (home); the rest is read only when w is f's home, on
 * w's thread, the only one that writes it. */
static bool lives_on(const drp_fill_t *f, const drp_worker_t *w)
{
	return f->home == w && (f->fetch != NULL || f->upload != NULL ||
				f->s3_watch || f->s3_delete != NULL ||
				f->lease != NULL || f->lease_wait != NULL ||
				(f->bypass && ev_is_active(&f->bypass_timer)));
}

void drp_fill_worker_stop(drp_worker_t *w)
{
	drp_server_t *srv = w->srv;
	if (srv == NULL)
		return;
	for (;;) {
		/* One at a time: stopping a fill may take it out of the
		 * table, and free it. */
		drp_fill_t *f = NULL;
		pthread_mutex_lock(&srv->fills_lock);
		/* Not the table: a fill that failed, or was stored, left it,
		 * and may still upload to S3 (and hold its lease) here. */
		for (drp_fill_t *e = srv->fills_homed; e; e = e->homed_next) {
			if (lives_on(e, w) && ref_unless_dying(e)) {
				f = e;
				break;
			}
		}
		pthread_mutex_unlock(&srv->fills_lock);
		if (f == NULL)
			return;
		if (f->bypass && ev_is_active(&f->bypass_timer)) {
			/* bypass_cb has not run yet: it ends the fetch. */
			ev_timer_stop(w->loop, &f->bypass_timer);
			bypass_cb(w->loop, &f->bypass_timer, 0);
		} else if (f->fetch != NULL) {
			drp_fetch_cancel(f->fetch); /* no sink callback now */
			fill_done(f, -ESHUTDOWN, 503,
				  "the proxy is shutting down");
		}
		s3_stop(f);
		drp_fill_unref(f);
	}
}

void drp_fill_shutdown(drp_server_t *srv, double timeout)
{
	/* Fills whose fetch was abandoned with its loop: their hashing
	 * would wait for a body end that never comes. */
	pthread_mutex_lock(&srv->fills_lock);
	size_t n = 0;
	for (drp_fill_t *f = srv->fills; f; f = f->next)
		n++;
	drp_fill_t **open = drp_calloc(n ? n : 1, sizeof(*open));
	n = 0;
	for (drp_fill_t *f = srv->fills; f; f = f->next) {
		atomic_fetch_add(&f->refs, 1);
		open[n++] = f;
	}
	pthread_mutex_unlock(&srv->fills_lock);
	for (size_t i = 0; i < n; i++) {
		pthread_mutex_lock(&open[i]->lock);
		bool ended = open[i]->body_ended;
		pthread_mutex_unlock(&open[i]->lock);
		if (!ended)
			end_body(open[i], -ECANCELED);
		drp_fill_unref(open[i]);
	}
	free(open);
	/* Let the others finish hashing (their stores are queued in the
	 * stores lane, which drains at exit). */
	for (double waited = 0;
	     atomic_load(&srv->fills_hashing) > 0 && waited < timeout;
	     waited += 0.01)
		usleep(10000);
	if (atomic_load(&srv->fills_hashing) > 0)
		drp_log_warning(DRP_LOG_CACHE,
				"%u blob(s) still being verified at exit",
				atomic_load(&srv->fills_hashing));
	/* What is still queued is cancelled (no verdict), what runs ends;
	 * from now on a fill hashes on its fetch's thread. */
	if (srv->hash_lane != NULL) {
		drp_pool_lane_close(srv->hash_lane);
		srv->hash_lane = NULL;
	}
}
