/* SPDX-License-Identifier: MIT */
/* Blobs and manifests answered from the cache, from in-flight fills, or
 * fetched and stored: the caching half of a client connection. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cache/cache.h"
#include "cache/digest.h"
#include "http/range.h"
#include "auth/auth.h"
#include "core/exchange.h"
#include "registry/cached.h"
#include "upstream/fetchbuf.h"
#include "registry/fill.h"
#include "registry/mflight.h"
#include "registry/s3tier.h"
#include "core/daemon.h"
#include "plugin/select.h"
#include "upstream/s3.h"
#include "util/busguard.h"
#include "util/jobs.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/metrics.h"

/* Manifests larger than this are passed through, never cached (the
 * distribution spec lets registries refuse more than 4 MiB). */
#define MANIFEST_MAX (4 * 1024 * 1024)
#define READ_CHUNK   (128 * 1024)
#define ZC_WINDOW    (4 * 1024 * 1024)
/* Stored bodies of at least this many bytes are sent from mappings. */
#define MAP_MIN (1024 * 1024)
/* application/vnd.docker.distribution.manifest.v1+json, +prettyjws */
#define SCHEMA1_PREFIX "application/vnd.docker.distribution.manifest.v1+"

enum creq_kind { K_BLOB, K_MANIFEST_DIGEST, K_MANIFEST_TAG };

typedef struct drp_cached_req drp_cached_req_t;

struct drp_cached_req {
	enum creq_kind kind;
	bool head;
	char digest[DRP_CACHE_DIGEST_SIZE];
	char *repo;
	char *target;
	drp_buf_t headers; /* forward-ready request header lines */
	/* The same with Range etc.: a pass forwards the client's request. */
	drp_buf_t pass_headers;
	char tagkey[DRP_CACHE_KEY_MAX + 1];
	drp_cache_tag_t tag; /* known record (manifest by tag) */
	bool have_tag;
	/* Range */
	bool range;
	drp_http_range_t rng;
	uint64_t r_first; /* resolved against the size */
	/* serving */
	drp_cache_reader_t *reader;
	drp_fill_t *fill;
	bool initiator;
	bool waiting; /* on the worker's fill_waiters list */
	drp_exch_t *w_next, *w_prev;
	bool head_sent;
	bool chunked;
	uint64_t pos, end;
	struct slice_win *win; /* the window being sent (fills, stored) */
	bool map;	       /* a stored object: sent from read_map windows */
	drp_fetchbuf_t *fb;
	/* Manifest fetches: the key of this request's upstream GET (NULL:
	 * never shared), and the shared fetch it waits on (as its leader
	 * or not). */
	char *mkey;
	drp_mflight_t *mf;
	bool mf_leader;
	/* The shared fetch whose store this request took (while its
	 * answer is given): the store job ends it. */
	drp_mflight_t *mf_store;
	drp_s3_call_t *s3call; /* asking the S3 tier (HEAD, a manifest) */
	/* A manifest the S3 tier sent, verified, while the upstream
	 * confirms the repository. */
	drp_buf_t s3_body;
	char s3_ctype[DRP_CACHE_MEDIA_TYPE_MAX + 1];
	/* Manifest by tag: tag_ttl; q->tag came from the bucket's record
	 * (fresh, s3_tag_age seconds old by the store's clock). */
	double ttl;
	bool s3_tag;
	int64_t s3_tag_age;
	const char *result;
};

#define CREQ(x) ((drp_cached_req_t *)(x)->hs)

static void cached_release(drp_exch_t *x);
static void drop_damaged(drp_exch_t *x, int err, const char *when);
static int cached_pump(drp_exch_t *x);
static const drp_handler_t cached_handler = {
	.pump = cached_pump,
	.release = cached_release,
};

/* A window of a fill's spool, mapped ahead of what is written (only the
 * written part is ever read), or of a stored object (the cache's
 * read_map), sent in slices by reference; freed when the request has
 * moved past it and no slice is queued. Worker thread only. */
typedef struct slice_win {
	drp_fill_map_t m;
	/* a stored object's: the backend's mapping */
	const drp_cache_api_t *capi;
	drp_cache_t *cdb;
	void *handle;
	const char *data;
	uint64_t off;
	size_t len;
	unsigned refs;
} slice_win_t;

static void win_unref(void *arg)
{
	slice_win_t *w = arg;
	if (w == NULL || --w->refs > 0)
		return;
	if (w->handle)
		w->capi->read_unmap(w->cdb, w->handle);
	else
		drp_fill_unmap(&w->m);
	free(w);
}

/* Queue the next slice of w, from q->pos up to end (within w), by
 * reference. No more per slice than out holds: one round of the
 * connection's loop stays as short as before. */
static void send_slice(drp_exch_t *x, drp_cached_req_t *q, slice_win_t *w,
		       uint64_t end)
{
	size_t want = (size_t)(end - q->pos);
	if (want > DRP_EXCH_OUT_HIGH)
		want = DRP_EXCH_OUT_HIGH;
	w->refs++;
	drp_exch_send_ref(x, w->data + (q->pos - w->off), want, win_unref, w);
	q->pos += want;
	x->bytes_out += want;
}

/* Read one byte of every page of a window (under the SIGBUS guard). */
static void touch_win(void *arg)
{
	const slice_win_t *w = arg;
	const volatile char *p = w->data;
	unsigned sum = 0;
	for (size_t i = 0; i < w->len; i += 4096)
		sum += (unsigned char)p[i];
	if (w->len)
		sum += (unsigned char)p[w->len - 1];
	(void)sum;
}

static drp_server_t *srv_of(drp_exch_t *x)
{
	return x->w->srv;
}

static bool caching(drp_exch_t *x)
{
	return srv_of(x)->capi != NULL;
}

/* The registry as recorded in cache metadata (tags, seen records, who
 * fills a blob): its canonical name, "host" or "host:port", through the
 * alias table (plugin/select.h), so that Docker Hub under any of its
 * names, intercepted or through the mirror, is one registry. */
static void host_key(const drp_exch_t *x, char *buf, size_t len)
{
	char *reg = drp_select_canonical_registry(x->host, x->port);
	snprintf(buf, len, "%s", reg);
	free(reg);
}

/* Has this object been served for this repository before? A cached blob
 * is only ever served for a repository that has it upstream: pushing
 * clients ask "does repository R have blob D?" with a HEAD, and private
 * content must not leak through a public repository's name. */
static bool seen_here(drp_exch_t *x)
{
	if (x->auth_confirm)
		return false;
	drp_server_t *srv = srv_of(x);
	char host[DRP_HOST_MAX + 8];
	host_key(x, host, sizeof(host));
	return drp_cache_seen_get(srv->capi, srv->cdb, &srv->cstats,
				  CREQ(x)->digest, host, CREQ(x)->repo) == 0;
}

static void mark_seen(drp_exch_t *x)
{
	drp_server_t *srv = srv_of(x);
	char host[DRP_HOST_MAX + 8];
	host_key(x, host, sizeof(host));
	drp_cache_seen_put(srv->capi, srv->cdb, &srv->cstats, CREQ(x)->digest,
			   host, CREQ(x)->repo);
}

/* ---- fill waiters (per worker, loop thread only) ---- */

static void wait_on(drp_exch_t *x)
{
	drp_cached_req_t *q = x->hs;
	if (q->waiting)
		return;
	q->waiting = true;
	q->w_prev = NULL;
	q->w_next = x->w->fill_waiters;
	if (q->w_next)
		CREQ(q->w_next)->w_prev = x;
	x->w->fill_waiters = x;
}

static void unwait(drp_exch_t *x)
{
	drp_cached_req_t *q = x->hs;
	if (!q->waiting)
		return;
	q->waiting = false;
	if (q->w_prev)
		CREQ(q->w_prev)->w_next = q->w_next;
	else
		x->w->fill_waiters = q->w_next;
	if (q->w_next)
		CREQ(q->w_next)->w_prev = q->w_prev;
	q->w_next = q->w_prev = NULL;
}

void drp_cached_fill_wakeup(drp_worker_t *w)
{
	/* Kick (deferred) every waiter; each re-registers if it still has
	 * nothing to send. */
	while (w->fill_waiters) {
		drp_exch_t *x = w->fill_waiters;
		unwait(x);
		drp_exch_kick(x);
	}
}

static void cached_release(drp_exch_t *x)
{
	drp_cached_req_t *q = x->hs;
	if (q == NULL)
		return;
	drp_server_t *srv = srv_of(x);
	unwait(x);
	/* A body sent from mappings and cut short: if that was a page of
	 * the window that cannot be read (the file truncated, a disk
	 * error: the connection's probe took the SIGBUS), the object goes,
	 * as after a read that fails. */
	if (q->map && q->win && q->pos < q->end &&
	    drp_bus_guard(touch_win, q->win) < 0)
		drop_damaged(x, -EIO, "mid-response");
	if (q->reader)
		srv->capi->read_close(srv->cdb, &srv->cstats, q->reader);
	win_unref(q->win);
	if (q->fill) {
		drp_fill_waiter_del(q->fill, x->w);
		drp_fill_unref(q->fill);
	}
	if (q->fb)
		drp_fetchbuf_cancel(q->fb);
	if (q->mf)
		drp_mflight_leave(q->mf, x->w);
	/* A store claim that no store took (the answer was not stored):
	 * the shared answer need not wait for it. */
	if (q->mf_store)
		drp_mflight_store_end(q->mf_store);
	free(q->mkey);
	drp_s3_call_cancel(q->s3call);
	drp_buf_free(&q->s3_body);
	drp_buf_free(&q->headers);
	drp_buf_free(&q->pass_headers);
	free(q->repo);
	free(q->target);
	free(q);
	x->hs = NULL;
	x->h = NULL;
}

/* ---- response heads ---- */

static void head_common(drp_exch_t *x, int status, const char *ctype,
			const char *digest, const char *result)
{
	/* Appended piece by piece: this runs on every hit. */
	drp_buf_t *b = x->out;
	drp_buf_puts(b, "HTTP/1.1 ");
	drp_buf_put_u64(b, (unsigned)status);
	drp_buf_puts(b, " ");
	drp_buf_puts(b, drp_http_reason(status));
	drp_buf_puts(b, "\r\nContent-Type: ");
	drp_buf_puts(b, ctype);
	drp_buf_puts(b, "\r\nDocker-Content-Digest: ");
	drp_buf_puts(b, digest);
	drp_buf_puts(b, "\r\nETag: \"");
	drp_buf_puts(b, digest);
	drp_buf_puts(b, "\"\r\nDocker-Distribution-Api-Version: registry/2.0"
			"\r\nX-Cache: ");
	drp_buf_puts(b, result);
	drp_buf_puts(b, "\r\n");
	if (x->close_after || x->draining)
		drp_buf_puts(b, "Connection: close\r\n");
	x->status = status;
	x->result = result;
}

/* The end of a whole body's head. */
static void content_length(drp_exch_t *x, bool ranges, uint64_t len)
{
	if (ranges)
		drp_buf_puts(x->out, "Accept-Ranges: bytes\r\n");
	drp_buf_puts(x->out, "Content-Length: ");
	drp_buf_put_u64(x->out, len);
	drp_buf_puts(x->out, "\r\n\r\n");
}

/* One valid byte range is served; anything else is ignored and the whole
 * body sent (see http/range.h). */
static void parse_range(drp_cached_req_t *q, const drp_http_msg_t *req)
{
	const drp_http_header_t *h = drp_http_find(req, "Range");
	q->range = h != NULL &&
		   drp_http_range_parse(h->value, h->value_len, &q->rng);
}

/* Decide [pos,end) for a body of `total` bytes and write the status line
 * and length headers. Returns false after answering 416. */
static bool body_head(drp_exch_t *x, uint64_t total, const char *ctype,
		      const char *result)
{
	drp_cached_req_t *q = x->hs;
	uint64_t first, last;
	if (q->range && q->kind == K_BLOB) {
		if (drp_http_range_resolve(&q->rng, total, &first, &last) < 0) {
			x->result = result;
			drp_buf_printf(
				x->out,
				"HTTP/1.1 416 Range Not Satisfiable\r\n"
				"Content-Range: bytes */%" PRIu64
				"\r\nContent-Length: 0\r\nX-Cache: %s\r\n\r\n",
				total, result);
			x->status = 416;
			return false;
		}
		head_common(x, 206, ctype, q->digest, result);
		drp_buf_printf(x->out,
			       "Content-Range: bytes %" PRIu64 "-%" PRIu64
			       "/%" PRIu64 "\r\nContent-Length: %" PRIu64
			       "\r\n\r\n",
			       first, last, total, last - first + 1);
		q->r_first = first;
		q->pos = first;
		q->end = last + 1;
	} else {
		head_common(x, 200, ctype, q->digest, result);
		content_length(x, q->kind == K_BLOB, total);
		q->pos = 0;
		q->end = total;
	}
	q->head_sent = true;
	return true;
}

/* ---- serving from the cache ---- */

/* A stored object that cannot be read back (deleted or truncated under
 * us, a disk error): out of the index, so that the next request fetches
 * it again. The fs backend drops what it finds missing or short itself;
 * this covers any error of any backend. */
static void drop_damaged(drp_exch_t *x, int err, const char *when)
{
	drp_server_t *srv = srv_of(x);
	drp_cached_req_t *q = x->hs;
	drp_log_warning(DRP_LOG_CACHE,
			"[c%06u] %s: stored object unreadable %s (%s); "
			"dropped from the cache",
			x->id, q->digest, when,
			err == -ENOENT ? "missing or damaged" : strerror(-err));
	(void)srv->capi->remove(srv->cdb, &srv->cstats, q->digest);
}

/* Answer from a stored object. false if it vanished (evicted) or cannot
 * be read: nothing is answered yet, the caller treats it as a miss. */
static bool serve_stored(drp_exch_t *x, const char *ctype, const char *result)
{
	drp_server_t *srv = srv_of(x);
	drp_cached_req_t *q = x->hs;
	drp_cache_info_t info;
	if (srv->capi->lookup(srv->cdb, &srv->cstats, q->digest, &info) < 0)
		return false;
	if (q->head) {
		head_common(x, 200, ctype, q->digest, result);
		content_length(x, q->kind == K_BLOB, info.size);
		drp_exch_done(x, result);
		return true;
	}
	/* Open before the head is queued: damage found now is a miss. */
	uint64_t from = 0, last;
	bool body = info.size > 0;
	if (q->range && q->kind == K_BLOB && body &&
	    drp_http_range_resolve(&q->rng, info.size, &from, &last) < 0)
		body = false; /* 416 */
	if (body) {
		int r = srv->capi->read_open(srv->cdb, &srv->cstats, q->digest,
					     from, &q->reader, &info);
		if (r < 0) {
			drop_damaged(x, r, "before the response");
			return false;
		}
	}
	if (!body_head(x, info.size, ctype, result) || q->pos == q->end) {
		drp_exch_done(x, result);
		return true;
	}
	/* Large bodies only: mapping and unmapping cost more than the copy
	 * they save for a few pages. */
	q->map = q->end - q->pos >= MAP_MIN &&
		 DRP_CACHE_HAS_OP(srv->capi, read_map) &&
		 DRP_CACHE_HAS_OP(srv->capi, read_unmap);
	drp_exch_async(x);
	drp_exch_kick(x);
	return true;
}

static int pump_reader(drp_exch_t *x)
{
	drp_server_t *srv = srv_of(x);
	drp_cached_req_t *q = x->hs;
	int progress = 0;
	/* Slices of mapped windows of the object, sent by reference as a
	 * fill's spool is (pump_fill): the TLS layer seals records straight
	 * from the page cache, without a read into out first. Behind the
	 * head, once that is written. */
	if (q->map && q->pos < q->end && !drp_exch_pending(x)) {
		slice_win_t *w = q->win;
		if (w && q->pos >= w->off + w->len) {
			win_unref(w);
			w = q->win = NULL;
		}
		if (w == NULL) {
			size_t want = ZC_WINDOW;
			if (q->end - q->pos < want)
				want = (size_t)(q->end - q->pos);
			const void *data = NULL;
			void *handle = NULL;
			ssize_t n = srv->capi->read_map(srv->cdb, &srv->cstats,
							q->reader, want, &data,
							&handle);
			if (n == 0 || n == -EIO) {
				/* As a read that fails (below). */
				drop_damaged(x, -EIO, "mid-response");
				drp_exch_abort(x, "cache read failed");
				return -1;
			}
			if (n < 0) {
				q->map = false; /* read the rest */
			} else {
				w = DRP_NEW(slice_win_t);
				w->capi = srv->capi;
				w->cdb = srv->cdb;
				w->handle = handle;
				w->data = data;
				w->off = q->pos;
				w->len = (size_t)n;
				w->refs = 1;
				q->win = w;
			}
		}
		if (w) {
			send_slice(x, q, w, w->off + w->len);
			progress = 1;
		}
	}
	while (!q->map && q->pos < q->end &&
	       drp_buf_pending(x->out) < DRP_EXCH_OUT_HIGH) {
		size_t want = READ_CHUNK;
		if (q->end - q->pos < want)
			want = (size_t)(q->end - q->pos);
		char *p = drp_buf_reserve(x->out, want);
		ssize_t n = srv->capi->read(srv->cdb, &srv->cstats, q->reader,
					    p, want);
		if (n <= 0) {
			/* The head is out: only a reset tells the client
			 * that the body is incomplete. The next request
			 * misses and fetches it again. */
			drop_damaged(x, n == 0 ? -EIO : (int)n, "mid-response");
			drp_exch_abort(x, "cache read failed");
			return -1;
		}
		x->out->len += (size_t)n;
		q->pos += (uint64_t)n;
		x->bytes_out += (uint64_t)n;
		progress = 1;
	}
	if (q->pos == q->end) {
		drp_exch_done(x, q->result ? q->result : x->result);
	}
	return progress;
}

/* ---- serving from a fill ---- */

static void pass_through(drp_exch_t *x)
{
	drp_cached_req_t *q = x->hs;
	/* Keep what the pass needs before creq goes away. */
	char *target = drp_strdup(q->target);
	/* A pass answers the client's own request: a ranged GET keeps its
	 * Range (206 from upstream, not 200 and the whole blob). */
	drp_buf_t hdr = q->pass_headers;
	memset(&q->pass_headers, 0, sizeof(q->pass_headers));
	const char *method = q->head ? "HEAD" : "GET";
	bool follow = q->kind == K_BLOB;
	cached_release(x);
	drp_exch_pass(x, method, target, drp_buf_head(&hdr),
		      drp_buf_pending(&hdr), follow);
	free(target);
	drp_buf_free(&hdr);
}

static int pump_fill(drp_exch_t *x)
{
	drp_cached_req_t *q = x->hs;
	drp_fill_view_t v;
	drp_fill_view(q->fill, &v);
	switch (v.state) {
	case DRP_FILL_STARTING:
		wait_on(x);
		return 0;
	case DRP_FILL_DECLINED:
		if (!q->initiator || drp_fill_from_s3(q->fill)) {
			/* Not a 200 for the one who asked: everyone else
			 * asks the upstream on their own (their credentials
			 * may differ). */
			pass_through(x);
			return 1;
		} else {
			const char *head, *body;
			size_t hl, bl;
			int st = drp_fill_declined(q->fill, &head, &hl, &body,
						   &bl);
			x->status = st;
			x->up_status = drp_fill_declined_upstream(q->fill);
			drp_buf_append(x->out, head, hl);
			drp_buf_printf(x->out,
				       "Content-Length: %zu\r\nX-Cache: "
				       "PASS\r\n%s\r\n",
				       bl,
				       x->close_after ? "Connection: close\r\n"
						      : "");
			drp_buf_append(x->out, body, bl);
			x->bytes_out = bl;
			drp_exch_done(x, "PASS");
			return 1;
		}
	case DRP_FILL_BYPASS:
		/* No room to spool it (disk full): straight through. */
		pass_through(x);
		return 1;
	case DRP_FILL_FAILED:
		if (!q->head_sent) {
			drp_exch_error(x, 502, false,
				       "upstream transfer of %s failed",
				       q->digest);
			drp_exch_done(x, q->result);
			return 1;
		}
		drp_exch_abort(x, "blob transfer failed or digest mismatch");
		return -1;
	case DRP_FILL_RUNNING:
	case DRP_FILL_VERIFIED:
		break;
	}
	x->up_status = 200;
	if (!q->head_sent) {
		if (!v.length_known && q->range) {
			/* A range needs the total length: wait for the end
			 * if the upstream did not announce it. */
			wait_on(x);
			return 0;
		}
		if (!v.length_known) {
			/* Unknown length: chunked, and the terminating chunk
			 * (what makes the answer complete) waits for the
			 * verification. */
			head_common(x, 200, v.content_type, q->digest,
				    q->result);
			drp_buf_printf(x->out,
				       "Transfer-Encoding: chunked\r\n\r\n");
			q->head_sent = true;
			q->chunked = true;
			q->pos = 0;
			q->end = UINT64_MAX;
		} else if (!body_head(x, v.total, v.content_type, q->result)) {
			drp_exch_done(x, q->result);
			return 1;
		}
	}
	bool verified = v.state == DRP_FILL_VERIFIED;
	if (q->chunked && verified)
		q->end = v.total;
	/* Every response's last byte waits for the verification. */
	uint64_t limit = v.written < q->end ? v.written : q->end;
	if (!verified && !q->chunked && limit == q->end && limit > q->pos)
		limit--;
	int progress = 0;
	/* Slices of the spool sent by reference from a mapped window: the
	 * TLS layer encrypts straight from the page cache, without a copy
	 * first. Behind the head, once that is written; chunked (rare: no
	 * length announced) copies. */
	bool copy = q->chunked;
	if (!copy && q->pos < limit && !drp_exch_pending(x)) {
		slice_win_t *w = q->win;
		if (w && q->pos >= w->off + w->len) {
			win_unref(w);
			w = q->win = NULL;
		}
		if (w == NULL) {
			w = DRP_NEW(slice_win_t);
			w->data =
				drp_fill_map(q->fill, q->pos, ZC_WINDOW, &w->m);
			w->off = q->pos;
			w->len = ZC_WINDOW;
			w->refs = 1;
			if (w->data == NULL) {
				free(w);
				w = NULL;
			}
			q->win = w;
		}
		if (w) {
			send_slice(x, q, w,
				   w->off + w->len < limit ? w->off + w->len
							   : limit);
			progress = 1;
		} else {
			copy = true;
		}
	}
	while (copy && q->pos < limit &&
	       drp_buf_pending(x->out) < DRP_EXCH_OUT_HIGH) {
		size_t want = READ_CHUNK;
		if (limit - q->pos < want)
			want = (size_t)(limit - q->pos);
		size_t hdr = 0;
		char *p;
		if (q->chunked) {
			char tmp[24];
			hdr = (size_t)snprintf(tmp, sizeof(tmp), "%zx\r\n",
					       want);
			p = drp_buf_reserve(x->out, hdr + want + 2);
			memcpy(p, tmp, hdr);
			p += hdr;
		} else {
			p = drp_buf_reserve(x->out, want);
		}
		ssize_t n = drp_fill_read(q->fill, p, want, q->pos);
		if (n <= 0) {
			drp_exch_abort(x, "spool read failed");
			return -1;
		}
		if (q->chunked) {
			/* Fix the size line if the read came up short. */
			if ((size_t)n != want) {
				char tmp[24];
				size_t h2 = (size_t)snprintf(
					tmp, sizeof(tmp), "%zx\r\n", (size_t)n);
				memmove(p - hdr + h2, p, (size_t)n);
				memcpy(p - hdr, tmp, h2);
				p = p - hdr + h2;
				hdr = h2;
			}
			memcpy(p + n, "\r\n", 2);
			x->out->len += hdr + 2;
		}
		x->out->len += (size_t)n;
		q->pos += (uint64_t)n;
		x->bytes_out += (uint64_t)n;
		progress = 1;
	}
	if (q->chunked && verified && q->pos == q->end)
		drp_buf_append(x->out, "0\r\n\r\n", 5);
	if (q->pos == q->end && verified) {
		mark_seen(x);
		drp_exch_done(x, q->result);
		return 1;
	}
	if (q->pos >= limit)
		wait_on(x);
	return progress;
}

static int pump_mflight(drp_exch_t *x);

static int cached_pump(drp_exch_t *x)
{
	drp_cached_req_t *q = x->hs;
	if (q->mf)
		return pump_mflight(x);
	if (q->reader)
		return pump_reader(x);
	if (q->fill)
		return pump_fill(x);
	return 0;
}

/* The upstream request for this client's request: same target and
 * headers, body-less. */
static drp_fetch_req_t upstream_req(drp_exch_t *x, const char *method,
				    bool follow)
{
	drp_cached_req_t *q = x->hs;
	return (drp_fetch_req_t){
		.tls = true,
		.host = x->host,
		.port = x->port,
		.method = method,
		.target = q->target,
		.headers = drp_buf_head(&q->headers),
		.headers_len = drp_buf_pending(&q->headers),
		.body_mode = DRP_HTTP_BODY_NONE,
		.follow_redirects = follow,
		.conn_id = x->id,
	};
}

/* Start a buffered upstream request for this client, hooks attached. */
static void start_buffered(drp_exch_t *x, const char *method, size_t max,
			   drp_fetchbuf_cb cb)
{
	drp_cached_req_t *q = x->hs;
	drp_fetch_req_t fr = upstream_req(x, method, false);
	q->fb = drp_fetchbuf_start(&x->w->upstream, x->rt->upstream, &fr, max,
				   cb, x);
	drp_auth_attach(x->rt, x->w, x, drp_fetchbuf_fetch(q->fb), x->host,
			x->port, q->repo);
	drp_exch_async(x);
}

/* ---- blobs ---- */

static void blob_miss_from(drp_exch_t *x, bool from_s3)
{
	drp_cached_req_t *q = x->hs;
	drp_server_t *srv = srv_of(x);
	enum drp_fill_found found;
	char owner[DRP_HOST_MAX + 8 + 256];
	host_key(x, owner, sizeof(owner));
	size_t ol = strlen(owner);
	snprintf(owner + ol, sizeof(owner) - ol, " %s", q->repo);
	q->fill = drp_fill_attach(srv, q->digest, owner, &found);
	bool created = found == DRP_FILL_CREATED;
	if (found == DRP_FILL_STORED) {
		/* Stored by a fill that ended since this request's lookup
		 * (the bucket and the upstream were asked in between). */
		q->result = "HIT";
		if (!serve_stored(x, "application/octet-stream", "HIT"))
			pass_through(x);
		return;
	}
	if (q->fill != NULL && !created &&
	    strcmp(drp_fill_owner(q->fill), owner) != 0) {
		/* Being fetched for another repository: this client asks
		 * the upstream itself, under its own credentials. */
		drp_fill_unref(q->fill);
		q->fill = NULL;
	}
	if (q->fill == NULL) {
		pass_through(x);
		return;
	}
	drp_fill_waiter_add(q->fill, x->w);
	q->initiator = created;
	/* The S3 tier is a cache too: a hit in either tier is a hit. */
	q->result = !created ? "COALESCED" : from_s3 ? "HIT" : "MISS";
	x->result = q->result;
	if (created && from_s3) {
		drp_fill_start_s3(q->fill, x->w, x->rt, x->id);
	} else if (created) {
		drp_fetch_req_t fr = upstream_req(x, "GET", true);
		drp_fetch_t *f = drp_fill_start(q->fill, x->w, x->rt, &fr);
		drp_auth_attach(x->rt, x->w, x, f, x->host, x->port, q->repo);
	}
	drp_exch_async(x);
	drp_exch_kick(x);
}

static void blob_miss(drp_exch_t *x)
{
	blob_miss_from(x, false);
}

/* Header lines minus those that would make the upstream answer a part
 * or a 304 (the cache needs the whole object). */
static void strip_conditional(drp_buf_t *h)
{
	static const char *const drop[] = {
		"Range:", "If-Range:", "If-None-Match:", "If-Modified-Since:"};
	drp_buf_t out = {0};
	const char *p = drp_buf_head(h), *end = p + drp_buf_pending(h);
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *next = eol ? eol + 1 : end;
		bool keep = true;
		for (size_t i = 0; i < DRP_ARRAY_SIZE(drop); i++)
			if (strncasecmp(p, drop[i], strlen(drop[i])) == 0)
				keep = false;
		if (keep)
			drp_buf_append(&out, p, (size_t)(next - p));
		p = next;
	}
	drp_buf_free(h);
	*h = out;
}

/* ---- manifests ---- */

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

typedef struct manifest_job {
	drp_server_t *srv;
	drp_mflight_t *mf; /* its shared fetch, kept until stored */
	char digest[DRP_CACHE_DIGEST_SIZE];
	size_t len;
	char body[];
} manifest_job_t;

/* Background thread: the object store (fsync) stays off the loop and out
 * of the client's wait. */
static void manifest_job(void *arg)
{
	manifest_job_t *j = arg;
	drp_server_t *srv = j->srv;
	drp_cache_writer_t *wr;
	int r = srv->capi->write_begin(srv->cdb, &srv->cstats, j->digest,
				       j->len, &wr);
	if (r == 0) {
		srv->capi->write(srv->cdb, &srv->cstats, wr, j->body, j->len);
		r = srv->capi->commit(srv->cdb, &srv->cstats, wr);
		if (r < 0)
			drp_log_info(DRP_LOG_CACHE,
				     "%s: manifest not stored: %s", j->digest,
				     strerror(-r));
	}
	/* Stored or not: the shared fetch's answer may go now (a request
	 * from here on finds the cache, or fetches anew). */
	if (j->mf != NULL)
		drp_mflight_store_end(j->mf);
	free(j);
}

/* Store a verified manifest: object + media type (+ tag record). The
 * object is stored in the background; a request for it meanwhile joins
 * the shared fetch, kept until then (registry/mflight.h), or, without
 * one, misses and fetches it again. */
static void s3_put_tag(drp_exch_t *x, const char *digest, const char *ctype);

static void store_manifest(drp_exch_t *x, const char *digest, const char *ctype,
			   const drp_buf_t *body)
{
	drp_server_t *srv = srv_of(x);
	drp_cached_req_t *q = x->hs;
	drp_cache_mtype_put(srv->capi, srv->cdb, &srv->cstats, digest, ctype);
	size_t len = drp_buf_pending(body);
	manifest_job_t *j = drp_malloc(sizeof(*j) + (len ? len : 1));
	j->srv = srv;
	j->mf = q->mf_store;
	q->mf_store = NULL;
	snprintf(j->digest, sizeof(j->digest), "%s", digest);
	j->len = len;
	memcpy(j->body, drp_buf_head(body), len);
	drp_jobs_submit(srv->jobs, manifest_job, j);
	char host[DRP_HOST_MAX + 8];
	host_key(x, host, sizeof(host));
	drp_cache_seen_put(srv->capi, srv->cdb, &srv->cstats, digest, host,
			   q->repo);
	if (q->kind == K_MANIFEST_TAG && q->tagkey[0]) {
		/* Resolved by the bucket's record: as old as that record (the
		 * fleet revalidates a tag once per tag_ttl, not once per
		 * proxy per tag_ttl); from the upstream: the bucket's record
		 * is (re)written. */
		drp_cache_tag_t t = {.size = drp_buf_pending(body),
				     .fetched_at =
					     q->s3_tag ? now_s() - q->s3_tag_age
						       : now_s()};
		snprintf(t.digest, sizeof(t.digest), "%s", digest);
		snprintf(t.media_type, sizeof(t.media_type), "%s", ctype);
		drp_cache_tag_put(srv->capi, srv->cdb, &srv->cstats, q->tagkey,
				  &t);
		if (!q->s3_tag)
			s3_put_tag(x, digest, ctype);
	}
}

static void answer_buffered(drp_exch_t *x, drp_fetchbuf_result_t *res,
			    const char *result)
{
	drp_cached_req_t *q = x->hs;
	x->status = res->status;
	x->up_status = res->status;
	drp_buf_printf(x->out, "HTTP/1.1 %d %s\r\n", res->status,
		       drp_http_reason(res->status));
	drp_buf_append(x->out, drp_buf_head(&res->head),
		       drp_buf_pending(&res->head));
	drp_buf_printf(x->out, "Content-Length: %zu\r\nX-Cache: %s\r\n%s\r\n",
		       drp_buf_pending(&res->body), result,
		       x->close_after ? "Connection: close\r\n" : "");
	if (!q->head) {
		drp_buf_append(x->out, drp_buf_head(&res->body),
			       drp_buf_pending(&res->body));
		x->bytes_out = drp_buf_pending(&res->body);
	}
	drp_exch_done(x, result);
}

static bool serve_manifest_record(drp_exch_t *x, const char *result)
{
	drp_cached_req_t *q = x->hs;
	snprintf(q->digest, sizeof(q->digest), "%s", q->tag.digest);
	q->result = result;
	return serve_stored(x, q->tag.media_type, result);
}

/* The upstream refused the proxy's credentials (drp_fetch_auth_fail with
 * 403): an answer, not an outage to hide with a stale copy. */
static bool auth_refused(const drp_fetchbuf_result_t *res)
{
	return res->err == -EACCES && res->http_status == 403;
}

/* ---- manifests in the S3 tier: manifests/sha256/<hex>, the media type
 * as the object's Content-Type (tag records stay local) ---- */

typedef struct s3_put_ctx {
	char digest[DRP_CACHE_DIGEST_SIZE];
} s3_put_ctx_t;

static void s3_put_manifest_cb(void *arg, const drp_s3_result_t *res)
{
	s3_put_ctx_t *c = arg;
	/* 412: If-None-Match found it there already (another proxy's). */
	if (res->err < 0 ||
	    (res->status != 200 && res->status != 412 && res->status != 201))
		drp_log_warning(DRP_LOG_CACHE,
				"%s: manifest not stored in the S3 tier (%s, "
				"HTTP %d %s)",
				c->digest,
				res->err < 0 ? res->reason : "answer",
				res->status, res->code);
	else if (res->status != 412)
		drp_log_info(DRP_LOG_CACHE, "%s: manifest in the S3 tier",
			     c->digest);
	free(c);
}

/* A verified manifest from the upstream goes into the bucket too; nobody
 * waits for it (the exchange may be gone when the answer comes). */
static void s3_put_manifest(drp_exch_t *x, const char *digest,
			    const char *ctype, const drp_buf_t *body)
{
	drp_server_t *srv = srv_of(x);
	if (srv->s3 == NULL || strncmp(digest, "sha256:", 7) != 0)
		return;
	char key[128];
	snprintf(key, sizeof(key), "manifests/sha256/%s", digest + 7);
	const drp_s3sig_kv_t hdrs[] = {{"Content-Type", ctype},
				       {"If-None-Match", "*"}};
	drp_s3_req_t r = {.method = "PUT",
			  .key = key,
			  .headers = hdrs,
			  .nheaders = 2,
			  .body = drp_buf_head(body),
			  .body_len = drp_buf_pending(body),
			  .fd = -1,
			  .max_body = 65536};
	s3_put_ctx_t *c = DRP_NEW(s3_put_ctx_t);
	snprintf(c->digest, sizeof(c->digest), "%s", digest);
	drp_s3_call(srv->s3, &x->w->upstream, x->rt->upstream, &r,
		    s3_put_manifest_cb, c);
}

static void s3_delete_manifest_cb(void *arg, const drp_s3_result_t *res)
{
	(void)arg;
	(void)res;
}

static void manifest_fetch(drp_exch_t *x);

/* The bucket's verified copy, to this client: stored locally, answered
 * from the bytes in hand. */
static void s3_manifest_serve(drp_exch_t *x)
{
	drp_cached_req_t *q = x->hs;
	store_manifest(x, q->digest, q->s3_ctype, &q->s3_body);
	q->result = "HIT";
	head_common(x, 200, q->s3_ctype, q->digest, "HIT");
	drp_buf_printf(x->out, "Content-Length: %zu\r\n\r\n",
		       drp_buf_pending(&q->s3_body));
	if (!q->head) {
		drp_buf_append(x->out, drp_buf_head(&q->s3_body),
			       drp_buf_pending(&q->s3_body));
		x->bytes_out = drp_buf_pending(&q->s3_body);
	}
	drp_exch_done(x, "HIT");
}

static void s3_tag_serve_local(drp_exch_t *x);

static void s3_manifest_confirm_cb(void *arg, drp_fetchbuf_result_t *res)
{
	drp_exch_t *x = arg;
	drp_cached_req_t *q = x->hs;
	q->fb = NULL;
	if (res->err == 0 && res->status == 200 && q->kind == K_MANIFEST_TAG &&
	    res->digest[0] && strcmp(res->digest, q->digest) != 0) {
		/* The tag moved since the bucket's record was written. */
		drp_log_info(DRP_LOG_CACHE,
			     "[c%06u] %s: the upstream has %s, the S3 tier's "
			     "tag record %s: fetched upstream",
			     x->id, q->target, res->digest, q->digest);
		manifest_fetch(x);
		return;
	}
	if (res->err == 0 && res->status == 200) {
		mark_seen(x);
		if (q->s3_ctype[0])
			s3_manifest_serve(x);
		else
			s3_tag_serve_local(x);
		return;
	}
	pass_through(x);
}

static void s3_manifest_cb(void *arg, const drp_s3_result_t *res)
{
	drp_exch_t *x = arg;
	drp_cached_req_t *q = x->hs;
	q->s3call = NULL;
	if (res->err < 0 || res->status != 200) {
		if (res->err < 0 || res->status != 404) {
			drp_metrics_s3(DRP_MS3_UNAVAILABLE);
			drp_log_warning(DRP_LOG_CACHE,
					"[c%06u] %s: the S3 tier did not "
					"answer (%s, HTTP %d %s): fetched "
					"upstream",
					x->id, q->digest,
					res->err < 0 ? res->reason : "answer",
					res->status, res->code);
		}
		manifest_fetch(x);
		return;
	}
	/* Not the proxy's own disk: verified like the upstream's bytes. */
	uint8_t bin[DRP_DIGEST_LEN];
	char digest[DRP_DIGEST_STRSIZE];
	drp_digest_buf(res->body, res->body_len, bin);
	drp_digest_format(bin, digest);
	if (strcmp(digest, q->digest) != 0 || res->content_type[0] == '\0' ||
	    strlen(res->content_type) > DRP_CACHE_MEDIA_TYPE_MAX) {
		drp_metrics_s3(DRP_MS3_DAMAGED);
		drp_metrics_digest_mismatch();
		drp_log_warning(DRP_LOG_CACHE,
				"[c%06u] %s: the S3 tier's manifest hashes "
				"to %s (media type '%s'): deleted, fetched "
				"upstream",
				x->id, q->digest, digest, res->content_type);
		char key[128];
		snprintf(key, sizeof(key), "manifests/sha256/%s",
			 q->digest + 7);
		drp_s3_req_t r = {.method = "DELETE",
				  .key = key,
				  .fd = -1,
				  .max_body = 65536};
		drp_s3_call(srv_of(x)->s3, &x->w->upstream, x->rt->upstream, &r,
			    s3_delete_manifest_cb, NULL);
		manifest_fetch(x);
		return;
	}
	if (q->kind == K_MANIFEST_TAG &&
	    strcmp(res->content_type, q->tag.media_type) != 0) {
		drp_log_warning(DRP_LOG_CACHE,
				"[c%06u] %s: the S3 tier's tag record says %s, "
				"its manifest %s: fetched upstream",
				x->id, q->target, q->tag.media_type,
				res->content_type);
		manifest_fetch(x);
		return;
	}
	snprintf(q->s3_ctype, sizeof(q->s3_ctype), "%s", res->content_type);
	drp_buf_reset(&q->s3_body);
	drp_buf_append(&q->s3_body, res->body, res->body_len);
	if (seen_here(x)) {
		s3_manifest_serve(x);
		return;
	}
	/* The bucket holds no policy: the upstream confirms the client. */
	start_buffered(x, "HEAD", 0, s3_manifest_confirm_cb);
}

/* The upstream's answer to this request's manifest GET, its own or a
 * shared one's (then store says whether this request stores it: one of
 * the waiters does; served says how a 200 is logged, MISS or
 * COALESCED). */
static void manifest_answer(drp_exch_t *x, drp_fetchbuf_result_t *res,
			    bool store, const char *served)
{
	drp_cached_req_t *q = x->hs;
	/* The log shows what the upstream said, whatever the client gets
	 * (a 502 for bytes that do not match their digest). */
	x->up_status = res->err < 0 ? 0 : res->status;
	bool upstream_down = (res->err < 0 && !auth_refused(res)) ||
			     res->status == 429 || res->status >= 500;
	if (upstream_down && q->have_tag) {
		drp_log_warning(
			DRP_LOG_CACHE,
			"[c%06u] %s: upstream %s; serving the last known "
			"manifest %s (STALE)",
			x->id, q->target,
			res->err < 0 ? res->reason : "unavailable",
			q->tag.digest);
		if (serve_manifest_record(x, "STALE"))
			return;
	}
	if (res->err < 0) {
		drp_log_notice(DRP_LOG_CACHE, "[c%06u] %s%s: manifest: %d: %s",
			       x->id, x->host, q->target, res->http_status,
			       res->reason);
		drp_exch_error(x, res->http_status, false, "%s", res->reason);
		drp_exch_done(x, "MISS");
		return;
	}
	if (res->status != 200) {
		answer_buffered(x, res, "PASS");
		return;
	}
	if (strncasecmp(res->content_type, SCHEMA1_PREFIX,
			strlen(SCHEMA1_PREFIX)) == 0) {
		/* A signed schema1 manifest's digest covers its payload
		 * without the signatures, not the bytes served: nothing to
		 * verify them against, so they are passed on, not cached. */
		drp_log_info(DRP_LOG_CACHE,
			     "[c%06u] %s: schema1 manifest (%s): passed "
			     "through, not cached",
			     x->id, q->target, res->content_type);
		answer_buffered(x, res, "PASS");
		return;
	}
	uint8_t bin[DRP_DIGEST_LEN];
	char digest[DRP_DIGEST_STRSIZE];
	drp_digest_buf(drp_buf_head(&res->body), drp_buf_pending(&res->body),
		       bin);
	drp_digest_format(bin, digest);
	const char *want = q->kind == K_MANIFEST_DIGEST ? q->digest
			   : res->digest[0]		? res->digest
							: NULL;
	if (want && strncmp(want, "sha256:", 7) == 0 &&
	    strcmp(want, digest) != 0) {
		drp_log_err(DRP_LOG_CACHE,
			    "[c%06u] %s: manifest bytes hash to %s, not %s; "
			    "not cached",
			    x->id, q->target, digest, want);
		drp_metrics_digest_mismatch();
		drp_exch_error(x, 502, false,
			       "the upstream manifest does not match "
			       "its digest");
		drp_exch_done(x, "MISS");
		return;
	}
	const char *ctype =
		res->content_type[0]
			? res->content_type
			: "application/vnd.oci.image.manifest.v1+json";
	if (store) {
		store_manifest(x, digest, ctype, &res->body);
		s3_put_manifest(x, digest, ctype, &res->body);
	}
	/* Answer from the bytes in hand (the store may have refused). */
	snprintf(q->digest, sizeof(q->digest), "%s", digest);
	if (!res->digest[0])
		drp_buf_printf(&res->head, "Docker-Content-Digest: %s\r\n",
			       digest);
	answer_buffered(x, res, served);
}

static void manifest_get_cb(void *arg, drp_fetchbuf_result_t *res)
{
	drp_exch_t *x = arg;
	CREQ(x)->fb = NULL;
	manifest_answer(x, res, true, "MISS");
}

/* Waiting on a shared manifest fetch (registry/mflight.h): once its
 * answer is in, this request takes a copy and answers as if its own
 * fetch had brought it (stale serving, verification, HEAD included). */
static int pump_mflight(drp_exch_t *x)
{
	drp_cached_req_t *q = x->hs;
	drp_fetchbuf_result_t res;
	char reason[128];
	if (!drp_mflight_result(q->mf, &res, reason, sizeof(reason))) {
		wait_on(x);
		return 0;
	}
	drp_mflight_t *m = q->mf;
	bool store = drp_mflight_claim_store(m);
	q->mf = NULL;
	drp_mflight_leave(m, x->w);
	q->mf_store = store ? m : NULL;
	manifest_answer(x, &res, store, q->mf_leader ? "MISS" : "COALESCED");
	/* The answer may have ended the request: q is then freed, and
	 * cached_release ended a claim that store_manifest did not take. */
	q = x->hs;
	if (store && q != NULL && q->mf_store == m) {
		/* Not stored (not a verified 200): nothing to keep it for. */
		q->mf_store = NULL;
		drp_mflight_store_end(m);
	}
	drp_mflight_result_free(&res);
	return drp_exch_closed(x) ? -1 : 1;
}

static void manifest_fetch(drp_exch_t *x)
{
	drp_cached_req_t *q = x->hs;
	/* Whatever comes back is the upstream's: it rewrites the bucket's
	 * tag record. */
	q->s3_tag = false;
	bool leader = false;
	if (q->mkey != NULL && q->mf == NULL)
		q->mf = drp_mflight_join(srv_of(x), x->w, x->rt, q->mkey,
					 &leader);
	if (q->mf == NULL) {
		start_buffered(x, "GET", MANIFEST_MAX, manifest_get_cb);
		return;
	}
	q->mf_leader = leader;
	if (leader) {
		/* The fetch is the entry's: this client may leave, the
		 * others still get the answer. */
		drp_fetch_req_t fr = upstream_req(x, "GET", false);
		drp_fetchbuf_t *fb = drp_fetchbuf_start(
			&x->w->upstream, x->rt->upstream, &fr, MANIFEST_MAX,
			drp_mflight_done, q->mf);
		drp_auth_attach(x->rt, x->w, x, drp_fetchbuf_fetch(fb), x->host,
				x->port, q->repo);
		drp_mflight_own(q->mf, fb);
	} else {
		drp_metrics_manifest_coalesced();
		drp_log_debug(DRP_LOG_CACHE,
			      "[c%06u] %s: waits for the manifest fetch in "
			      "flight",
			      x->id, q->target);
	}
	drp_exch_async(x);
	drp_exch_kick(x);
}

static void revalidate_cb(void *arg, drp_fetchbuf_result_t *res)
{
	drp_exch_t *x = arg;
	drp_cached_req_t *q = x->hs;
	drp_server_t *srv = srv_of(x);
	q->fb = NULL;
	x->up_status = res->err < 0 ? 0 : res->status;
	if ((res->err < 0 && !auth_refused(res)) || res->status == 429 ||
	    res->status >= 500) {
		char why[64];
		if (res->err < 0)
			snprintf(why, sizeof(why), "%s", res->reason);
		else
			snprintf(why, sizeof(why), "the upstream answered %d",
				 res->status);
		drp_log_warning(DRP_LOG_CACHE,
				"[c%06u] %s: revalidation failed (%s); serving "
				"%s (STALE)",
				x->id, q->target, why, q->tag.digest);
		if (!serve_manifest_record(x, "STALE"))
			manifest_fetch(x);
		return;
	}
	if (res->status == 200 && strcmp(res->digest, q->tag.digest) == 0) {
		q->tag.fetched_at = now_s();
		drp_cache_tag_put(srv->capi, srv->cdb, &srv->cstats, q->tagkey,
				  &q->tag);
		s3_put_tag(x, q->tag.digest, q->tag.media_type);
		if (serve_manifest_record(x, "REVALIDATED"))
			return;
		manifest_fetch(x);
		return;
	}
	if (res->status == 200) {
		/* The tag moved. */
		q->have_tag = false;
		manifest_fetch(x);
		return;
	}
	/* 401/403/404...: let the client talk to the upstream itself. */
	q->have_tag = false;
	pass_through(x);
}

/* ---- tag records in the S3 tier (registry/s3tier.h) ---- */

/* The bucket's key of this request's record, from q->tagkey ("tag <host>
 * <repo> <tag> <accept key>", no field with a space); the accept key
 * (within q->tagkey) in *accept. */
static int s3_tag_key(const drp_cached_req_t *q, char *key, size_t len,
		      const char **accept)
{
	char tk[sizeof(q->tagkey)];
	snprintf(tk, sizeof(tk), "%s", q->tagkey);
	char *f[5], *save = NULL;
	int n = 0;
	for (char *t = strtok_r(tk, " ", &save); t && n < 5;
	     t = strtok_r(NULL, " ", &save))
		f[n++] = t;
	if (n != 5 || strcmp(f[0], "tag") != 0)
		return -EINVAL;
	*accept = strrchr(q->tagkey, ' ') + 1;
	return drp_s3tier_tag_key(key, len, f[1], f[2], f[3], f[4]);
}

static void s3_put_tag_cb(void *arg, const drp_s3_result_t *res)
{
	char *key = arg;
	if (res->err < 0 || (res->status != 200 && res->status != 201))
		drp_log_warning(DRP_LOG_CACHE,
				"tag record %s not stored in the S3 tier (%s, "
				"HTTP %d %s)",
				key, res->err < 0 ? res->reason : "answer",
				res->status, res->code);
	else
		drp_log_info(DRP_LOG_CACHE, "tag record %s in the S3 tier",
			     key);
	free(key);
}

/* What the upstream said a tag is, for the fleet: (re)written whole,
 * its Last-Modified the store's clock of this confirmation. Nobody waits
 * for it. */
static void s3_put_tag(drp_exch_t *x, const char *digest, const char *ctype)
{
	drp_server_t *srv = srv_of(x);
	drp_cached_req_t *q = x->hs;
	/* tag_ttl 0 (the fleet runs one configuration): nobody would
	 * ever find it fresh. */
	if (srv->s3 == NULL || q->kind != K_MANIFEST_TAG || !q->tagkey[0] ||
	    q->ttl <= 0)
		return;
	char key[DRP_CACHE_KEY_MAX + 1], body[DRP_S3TIER_TAG_RECORD_MAX + 1];
	const char *accept;
	int n;
	if (s3_tag_key(q, key, sizeof(key), &accept) < 0 ||
	    (n = drp_s3tier_tag_format(body, sizeof(body), digest, ctype,
				       accept)) < 0) {
		drp_log_debug(DRP_LOG_CACHE,
			      "[c%06u] %s: no tag record for the S3 tier "
			      "(%s, %s)",
			      x->id, q->target, digest, ctype);
		return;
	}
	const drp_s3sig_kv_t hdrs[] = {{"Content-Type", "text/plain"}};
	drp_s3_req_t r = {.method = "PUT",
			  .key = key,
			  .headers = hdrs,
			  .nheaders = 1,
			  .body = body,
			  .body_len = (size_t)n,
			  .fd = -1,
			  .max_body = 65536};
	drp_s3_call(srv->s3, &x->w->upstream, x->rt->upstream, &r,
		    s3_put_tag_cb, drp_strdup(key));
}

/* Neither the bucket's record nor (then) the local one answers: the
 * upstream, as without the bucket. */
static void tag_upstream(drp_exch_t *x)
{
	drp_cached_req_t *q = x->hs;
	if (q->have_tag)
		start_buffered(x, "HEAD", 0, revalidate_cb);
	else
		manifest_fetch(x);
}

/* The record's manifest is in the local tier, and the client confirmed:
 * the local record takes the bucket's age. */
static void s3_tag_serve_local(drp_exch_t *x)
{
	drp_server_t *srv = srv_of(x);
	drp_cached_req_t *q = x->hs;
	drp_cache_tag_put(srv->capi, srv->cdb, &srv->cstats, q->tagkey,
			  &q->tag);
	if (serve_manifest_record(x, "HIT"))
		return;
	manifest_fetch(x);
}

static void s3_tag_cb(void *arg, const drp_s3_result_t *res)
{
	drp_exch_t *x = arg;
	drp_cached_req_t *q = x->hs;
	drp_server_t *srv = srv_of(x);
	q->s3call = NULL;
	char key[DRP_CACHE_KEY_MAX + 1];
	const char *accept;
	if (s3_tag_key(q, key, sizeof(key), &accept) < 0) {
		tag_upstream(x);
		return;
	}
	if (res->err == -EFBIG) {
		drp_metrics_s3_tag(DRP_MS3T_INVALID);
		drp_log_warning(DRP_LOG_CACHE,
				"[c%06u] tag record %s in the S3 tier is not "
				"valid (larger than %d bytes): ignored",
				x->id, key, DRP_S3TIER_TAG_RECORD_MAX);
		tag_upstream(x);
		return;
	}
	if (res->err < 0 || (res->status != 200 && res->status != 404)) {
		drp_metrics_s3(DRP_MS3_UNAVAILABLE);
		drp_metrics_s3_tag(DRP_MS3T_UNAVAILABLE);
		drp_log_warning(DRP_LOG_CACHE,
				"[c%06u] %s: the S3 tier did not answer (%s, "
				"HTTP %d %s): the tag asked upstream",
				x->id, q->target,
				res->err < 0 ? res->reason : "answer",
				res->status, res->code);
		tag_upstream(x);
		return;
	}
	if (res->status == 404) {
		drp_metrics_s3_tag(DRP_MS3T_MISSING);
		tag_upstream(x);
		return;
	}
	drp_cache_tag_t t;
	int r = drp_s3tier_tag_parse(res->body, res->body_len, accept, &t);
	if (r < 0) {
		/* Shared, not trusted: ignored, and rewritten by the
		 * upstream's answer. */
		drp_metrics_s3_tag(DRP_MS3T_INVALID);
		drp_log_warning(DRP_LOG_CACHE,
				"[c%06u] tag record %s in the S3 tier is not "
				"valid (%s): ignored",
				x->id, key,
				r == -ESTALE ? "another accept key"
					     : "not one line of a digest, a "
					       "media type and an accept key");
		tag_upstream(x);
		return;
	}
	/* Its age by the store's clock alone: Date - Last-Modified. */
	int64_t age = drp_s3tier_record_age(res->date, res->last_modified);
	if (age < 0 || (double)age >= q->ttl) {
		drp_metrics_s3_tag(DRP_MS3T_STALE);
		drp_log_debug(DRP_LOG_CACHE,
			      "[c%06u] tag record %s in the S3 tier: %" PRId64
			      " s old, stale",
			      x->id, key, age);
		tag_upstream(x);
		return;
	}
	drp_metrics_s3_tag(DRP_MS3T_FRESH);
	/* Fresh: the tag is that digest; the local record, if any, is
	 * superseded. */
	q->s3_tag = true;
	q->s3_tag_age = age;
	q->have_tag = false;
	q->tag = t;
	q->tag.fetched_at = now_s() - age;
	snprintf(q->digest, sizeof(q->digest), "%s", t.digest);
	char ctype[DRP_CACHE_MEDIA_TYPE_MAX + 1];
	drp_cache_info_t info;
	if (srv->capi->lookup(srv->cdb, &srv->cstats, q->digest, &info) == 0 &&
	    drp_cache_mtype_get(srv->capi, srv->cdb, &srv->cstats, q->digest,
				ctype, sizeof(ctype)) == 0 &&
	    strcmp(ctype, t.media_type) == 0) {
		q->tag.size = info.size;
		if (seen_here(x))
			s3_tag_serve_local(x);
		else /* the bucket holds no policy */
			start_buffered(x, "HEAD", 0, s3_manifest_confirm_cb);
		return;
	}
	/* The manifest from the bucket, verified (s3_manifest_cb). */
	char mkey[128];
	snprintf(mkey, sizeof(mkey), "manifests/sha256/%s", q->digest + 7);
	drp_s3_req_t mr = {.method = "GET",
			   .key = mkey,
			   .fd = -1,
			   .max_body = MANIFEST_MAX};
	q->s3call = drp_s3_call(srv->s3, &x->w->upstream, x->rt->upstream, &mr,
				s3_manifest_cb, x);
}

static void s3_tag_lookup(drp_exch_t *x)
{
	drp_server_t *srv = srv_of(x);
	drp_cached_req_t *q = x->hs;
	char key[DRP_CACHE_KEY_MAX + 1];
	const char *accept;
	if (s3_tag_key(q, key, sizeof(key), &accept) < 0) {
		tag_upstream(x);
		return;
	}
	drp_s3_req_t r = {.method = "GET",
			  .key = key,
			  .fd = -1,
			  .max_body = DRP_S3TIER_TAG_RECORD_MAX};
	q->s3call = drp_s3_call(srv->s3, &x->w->upstream, x->rt->upstream, &r,
				s3_tag_cb, x);
	drp_exch_async(x);
}

/* tag_ttl_match / tag_ttl as resolved for the request (inherited along
 * the matching sections), else [cache]'s. */
static double tag_ttl(const drp_exch_t *x, const char *tag)
{
	return drp_conf_tag_ttl(x->rt->conf, &x->regset, x->repo, tag);
}

/* The request's Accept key (drp_cache_accept_key), <0 if it has none. */
static int accept_key(const drp_http_msg_t *req, char *accept, size_t len)
{
	char *owned[32];
	const char *vals[32];
	size_t nv = 0;
	const drp_http_header_t *h = drp_http_find(req, "Accept");
	for (; h && nv < DRP_ARRAY_SIZE(vals);
	     h = drp_http_find_next(req, "Accept", h)) {
		/* The helper wants NUL-terminated strings. */
		owned[nv] = drp_strndup(h->value, h->value_len);
		vals[nv] = owned[nv];
		nv++;
	}
	/* More Accept lines than read: no key, as for too many types. */
	int r = h != NULL ? -E2BIG
			  : drp_cache_accept_key(accept, len, vals, nv);
	for (size_t i = 0; i < nv; i++)
		free(owned[i]);
	return r;
}

/*
 * The key under which this request's manifest GET may be shared with
 * concurrent ones (registry/mflight.h): everything that can change the
 * upstream's answer. The registry as contacted (host:port), the target
 * (repository, tag or digest, the mirror's query), the Accept key, the
 * runtime generation (credentials and sections of one configuration),
 * whose credentials the request travels with (drp_auth_fetch_class) and
 * a SHA-256 of the client's own Authorization, which goes upstream (its
 * own credentials or a handle of the proxy's realm). Not the method: a
 * HEAD that misses is fetched with a GET too. NULL: not shared.
 */
static char *manifest_key(drp_exch_t *x, const drp_http_msg_t *req)
{
	drp_cached_req_t *q = x->hs;
	char accept[1024];
	if (accept_key(req, accept, sizeof(accept)) < 0)
		return NULL;
	char cred[DRP_DIGEST_STRSIZE] = "-";
	const drp_http_header_t *h = drp_http_find(req, "Authorization");
	if (h != NULL) {
		if (drp_http_find_next(req, "Authorization", h) != NULL)
			return NULL;
		uint8_t bin[DRP_DIGEST_LEN];
		drp_digest_buf(h->value, h->value_len, bin);
		drp_digest_format(bin, cred);
	}
	char class[DRP_HOST_MAX + 64];
	drp_auth_fetch_class(x, class, sizeof(class));
	drp_buf_t k = {0};
	drp_buf_printf(&k, "%s:%u %s|%s|%p|%s|%s", x->host, (unsigned)x->port,
		       q->target, accept, (void *)x->rt, class, cred);
	char *key = drp_strndup(drp_buf_head(&k), drp_buf_pending(&k));
	drp_buf_free(&k);
	return key;
}

static bool manifest_tag(drp_exch_t *x, const drp_http_msg_t *req,
			 const drp_route_t *route)
{
	drp_server_t *srv = srv_of(x);
	drp_cached_req_t *q = x->hs;
	char accept[1024];
	if (accept_key(req, accept, sizeof(accept)) < 0)
		return false;
	char host[DRP_HOST_MAX + 8];
	host_key(x, host, sizeof(host));
	char tag[256];
	snprintf(tag, sizeof(tag), "%.*s", (int)route->ref_len, route->ref);
	if (drp_cache_tag_key(q->tagkey, sizeof(q->tagkey), host, q->repo, tag,
			      accept) < 0)
		return false;
	q->ttl = tag_ttl(x, tag);
	/* A local miss or a stale local record asks the bucket's record
	 * first (never with tag_ttl 0: no record would be fresh). */
	bool ask_s3 = srv->s3 != NULL && q->ttl > 0;
	if (drp_cache_tag_get(srv->capi, srv->cdb, &srv->cstats, q->tagkey,
			      &q->tag) == 0 &&
	    srv->capi->lookup(srv->cdb, &srv->cstats, q->tag.digest, NULL) ==
		    0) {
		q->have_tag = true;
		double age = (double)(now_s() - q->tag.fetched_at);
		bool fresh = age >= 0 && age < q->ttl;
		if (fresh && !x->auth_confirm) {
			if (serve_manifest_record(x, "HIT"))
				return true;
			q->have_tag = false;
		} else if (!fresh && ask_s3) {
			s3_tag_lookup(x);
			return true;
		} else {
			start_buffered(x, "HEAD", 0, revalidate_cb);
			return true;
		}
	}
	if (ask_s3) {
		s3_tag_lookup(x);
		return true;
	}
	manifest_fetch(x);
	return true;
}

/*
 * A redirect answering the confirming blob HEAD (not followed): registries
 * with storage redirects (Docker Hub, GHCR, quay, ECR, distribution with
 * a redirect middleware) send HEAD, like GET, to their storage, and only
 * after checking that the identity may read the repository and that the
 * repository has the blob. It counts only when the identity that made
 * the HEAD was accepted: the redirect is the answer to the request that
 * carried it, so a 401 on the way was a challenge that the retry met (an
 * anonymous token for public content, or the credentials the policy lets
 * this client use). A 403 anywhere means an identity was denied for the
 * repository; then the redirect proves nothing and the GET goes through.
 */
static bool has_it(const drp_fetchbuf_result_t *res)
{
	switch (res->status) {
	case 301:
	case 302:
	case 303:
	case 307:
	case 308:
		return !res->refused;
	default:
		return false;
	}
}

/* The object is cached but was never served for this repository: ask
 * the upstream whether the repository has it (a HEAD, with the client's
 * credentials) before serving it. */
static void confirm_cb(void *arg, drp_fetchbuf_result_t *res)
{
	drp_exch_t *x = arg;
	drp_cached_req_t *q = x->hs;
	q->fb = NULL;
	if (res->err == 0 &&
	    (res->status == 200 || (q->kind == K_BLOB && has_it(res)))) {
		mark_seen(x);
		q->result = "HIT";
		if (serve_stored(x,
				 q->kind == K_BLOB ? "application/octet-stream"
						   : q->tag.media_type,
				 "HIT"))
			return;
	}
	/* Not confirmed (404, 401, upstream down...): the client gets the
	 * upstream's own answer. */
	pass_through(x);
}

static void confirm_then_serve(drp_exch_t *x)
{
	start_buffered(x, "HEAD", 0, confirm_cb);
}

/* ---- the S3 tier (srv->s3): a local miss asks the bucket ---- */

/* The bucket holds no policy: its copy goes only to a client the
 * upstream confirms (or that this repository was seen serving). */
static void s3_confirm_cb(void *arg, drp_fetchbuf_result_t *res)
{
	drp_exch_t *x = arg;
	drp_cached_req_t *q = x->hs;
	q->fb = NULL;
	if (res->err == 0 && (res->status == 200 || has_it(res))) {
		mark_seen(x);
		blob_miss_from(x, true);
		return;
	}
	pass_through(x);
}

static void s3_confirm_miss_cb(void *arg, drp_fetchbuf_result_t *res)
{
	drp_exch_t *x = arg;
	drp_cached_req_t *q = x->hs;
	q->fb = NULL;
	if (res->err == 0 && (res->status == 200 || has_it(res))) {
		mark_seen(x);
		blob_miss(x);
		return;
	}
	pass_through(x);
}

static void s3_head_cb(void *arg, const drp_s3_result_t *res)
{
	drp_exch_t *x = arg;
	drp_cached_req_t *q = x->hs;
	q->s3call = NULL;
	if (res->err == 0 && res->status == 200) {
		if (seen_here(x))
			blob_miss_from(x, true);
		else
			start_buffered(x, "HEAD", 0, s3_confirm_cb);
		return;
	}
	if (res->err < 0 || res->status != 404) {
		drp_metrics_s3(DRP_MS3_UNAVAILABLE);
		drp_log_warning(DRP_LOG_CACHE,
				"[c%06u] %s: the S3 tier did not answer (%s, "
				"HTTP %d %s): fetched upstream",
				x->id, q->digest,
				res->err < 0 ? res->reason : "answer",
				res->status, res->code);
	} else if (srv_of(x)->fleet && !seen_here(x)) {
		/* With a fleet, the fill may end up reading the bucket
		 * after all (another proxy's fetch completes first): the
		 * client is confirmed before, as for a copy in the bucket. */
		start_buffered(x, "HEAD", 0, s3_confirm_miss_cb);
		return;
	}
	blob_miss(x);
}

static void s3_probe(drp_exch_t *x)
{
	drp_cached_req_t *q = x->hs;
	char key[128];
	snprintf(key, sizeof(key), "blobs/sha256/%s", q->digest + 7);
	drp_s3_req_t r = {.method = "HEAD", .key = key, .fd = -1};
	q->s3call = drp_s3_call(srv_of(x)->s3, &x->w->upstream, x->rt->upstream,
				&r, s3_head_cb, x);
	drp_exch_async(x);
}

static bool manifest_digest(drp_exch_t *x)
{
	drp_server_t *srv = srv_of(x);
	drp_cached_req_t *q = x->hs;
	char ctype[DRP_CACHE_MEDIA_TYPE_MAX + 1];
	if (srv->capi->lookup(srv->cdb, &srv->cstats, q->digest, NULL) == 0 &&
	    drp_cache_mtype_get(srv->capi, srv->cdb, &srv->cstats, q->digest,
				ctype, sizeof(ctype)) == 0) {
		if (!seen_here(x)) {
			snprintf(q->tag.media_type, sizeof(q->tag.media_type),
				 "%s", ctype);
			confirm_then_serve(x);
			return true;
		}
		q->result = "HIT";
		if (serve_stored(x, ctype, "HIT"))
			return true;
	}
	if (q->head)
		return false; /* a HEAD miss costs the upstream nothing */
	if (srv->s3 && strncmp(q->digest, "sha256:", 7) == 0) {
		char key[128];
		snprintf(key, sizeof(key), "manifests/sha256/%s",
			 q->digest + 7);
		drp_s3_req_t r = {.method = "GET",
				  .key = key,
				  .fd = -1,
				  .max_body = MANIFEST_MAX};
		q->s3call = drp_s3_call(srv->s3, &x->w->upstream,
					x->rt->upstream, &r, s3_manifest_cb, x);
		drp_exch_async(x);
		return true;
	}
	manifest_fetch(x);
	return true;
}

bool drp_cached_dispatch(drp_exch_t *x, const drp_http_msg_t *req,
			 const drp_route_t *route, const char *target,
			 size_t target_len, const char *headers,
			 size_t headers_len)
{
	if (!caching(x))
		return false;
	drp_server_t *srv = srv_of(x);
	bool sha256 = false;
	if (route->kind != DRP_ROUTE_MANIFEST_TAG &&
	    (!drp_digest_valid(route->ref, route->ref_len, &sha256) || !sha256))
		return false; /* only SHA-256 can be verified */
	drp_cached_req_t *q = DRP_NEW(drp_cached_req_t);
	x->hs = q;
	x->h = &cached_handler;
	q->head = x->head;
	q->kind = route->kind == DRP_ROUTE_BLOB		     ? K_BLOB
		  : route->kind == DRP_ROUTE_MANIFEST_DIGEST ? K_MANIFEST_DIGEST
							     : K_MANIFEST_TAG;
	if (q->kind != K_MANIFEST_TAG)
		snprintf(q->digest, sizeof(q->digest), "%.*s",
			 (int)route->ref_len, route->ref);
	q->repo = drp_strndup(route->name, route->name_len);
	q->target = drp_strndup(target, target_len);
	drp_buf_append(&q->headers, headers, headers_len);
	drp_buf_append(&q->pass_headers, headers, headers_len);
	strip_conditional(&q->headers);
	parse_range(q, req);
	if (q->kind != K_BLOB)
		q->mkey = manifest_key(x, req);
	x->result = "PASS";

	bool taken;
	if (q->kind == K_BLOB) {
		taken = true;
		bool stored = srv->capi->lookup(srv->cdb, &srv->cstats,
						q->digest, NULL) == 0;
		if (stored && !seen_here(x)) {
			confirm_then_serve(x);
		} else if (stored) {
			/* A hit once it is served: an object found damaged
			 * now is a miss, counted as one (by blob_miss). */
			q->result = "HIT";
			if (!serve_stored(x, "application/octet-stream", "HIT"))
				blob_miss(x);
		} else if (q->head) {
			taken = false;
		} else if (srv->s3) {
			s3_probe(x);
		} else {
			blob_miss(x);
		}
	} else if (q->kind == K_MANIFEST_DIGEST) {
		taken = manifest_digest(x);
	} else {
		taken = manifest_tag(x, req, route);
	}
	if (!taken)
		cached_release(x);
	return taken;
}
