/* SPDX-License-Identifier: MIT */
/*
 * Cache serving (src/registry/cached.c) as a handler of the exchange
 * interface (core/exchange.h), with no connection: a fake exchange
 * plays the client (it takes what the handler queues, as a slow or fast
 * reader) and the real memory backend holds the blob. What is checked:
 * the bytes and heads of whole, ranged and HEAD answers, the result the
 * access log gets, back-pressure, and a client that goes away
 * mid-body.
 */
#include <check.h>
#include <errno.h>
#include <stddef.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "conf/conf.h"
#include "http/parse.h"
#include "http/uri.h"
#include "core/exchange.h"
#include "proxy/server.h"
#include "registry/cached.h"
#include "util/buf.h"
#include "util/mem.h"

#define BLOB_LEN (600 * 1024 + 17) /* more than DRP_EXCH_OUT_HIGH twice */
#define HOST	 "reg.test"
#define REPO	 "team/app"

static drp_server_t srv;
static drp_worker_t w;
static drp_runtime_t *rt;
static char *blob;
static char digest[DRP_CACHE_DIGEST_SIZE];

/* ---- the fake client side ---- */

typedef struct fake {
	drp_exch_t x;
	drp_buf_t out;	    /* what the handler queued (copied) */
	drp_buf_t got;	    /* what the client read so far */
	unsigned refs_held; /* slices queued by reference, not released */
	bool async, kicked, done, aborted, passed;
	char result[16];
} fake_t;

#define FAKE(x)	      DRP_CONTAINER_OF(x, fake_t, x)
#define CONST_FAKE(x) ((const fake_t *)((const char *)(x)-offsetof(fake_t, x)))

Suite *registry_suite(void);

static bool f_pending(const drp_exch_t *x)
{
	return drp_buf_pending(x->out) > 0;
}
static void f_send_ref(drp_exch_t *x, const char *p, size_t len,
		       void (*release)(void *arg), void *arg)
{
	/* Written at once: the client reads it. */
	drp_buf_append(&FAKE(x)->got, p, len);
	if (release)
		release(arg);
}
static void f_async(drp_exch_t *x)
{
	FAKE(x)->async = true;
}
static void f_kick(drp_exch_t *x)
{
	FAKE(x)->kicked = true;
}
static void f_release(drp_exch_t *x)
{
	const drp_handler_t *h = x->h;
	x->h = NULL;
	if (h && h->release)
		h->release(x);
	x->hs = NULL;
}
static void f_done(drp_exch_t *x, const char *result)
{
	fake_t *f = FAKE(x);
	ck_assert_msg(!f->done, "done twice");
	f->done = true;
	snprintf(f->result, sizeof(f->result), "%s", result);
	f_release(x);
}
static void f_error(drp_exch_t *x, int status, bool close_after,
		    const char *msg)
{
	x->status = status;
	drp_buf_printf(x->out, "HTTP/1.1 %d x\r\n\r\n%s", status, msg);
}
static void f_abort(drp_exch_t *x, const char *reason)
{
	FAKE(x)->aborted = true;
	f_release(x);
}
static void f_close(drp_exch_t *x, const char *reason)
{
	FAKE(x)->aborted = true;
	f_release(x);
}
static void f_pass(drp_exch_t *x, const char *method, const char *target,
		   const char *headers, size_t headers_len, bool follow)
{
	FAKE(x)->passed = true;
}
static bool f_closed(const drp_exch_t *x)
{
	return CONST_FAKE(x)->aborted;
}

static const drp_exch_ops_t fake_ops = {
	.pending = f_pending,
	.send_ref = f_send_ref,
	.async = f_async,
	.kick = f_kick,
	.done = f_done,
	.error = f_error,
	.abort = f_abort,
	.close = f_close,
	.pass = f_pass,
	.closed = f_closed,
};

static fake_t *fake_new(bool head)
{
	fake_t *f = DRP_NEW(fake_t);
	f->x.ops = &fake_ops;
	f->x.out = &f->out;
	f->x.w = &w;
	f->x.rt = rt;
	f->x.id = 7;
	f->x.host = HOST;
	f->x.port = 443;
	f->x.peer = "127.0.0.1";
	f->x.method = head ? "HEAD" : "GET";
	f->x.head = head;
	f->x.result = "PASS";
	return f;
}

static void fake_free(fake_t *f)
{
	f_release(&f->x);
	drp_buf_free(&f->out);
	drp_buf_free(&f->got);
	free(f);
}

/* The client reads everything queued. */
static void client_reads(fake_t *f)
{
	size_t n = drp_buf_pending(&f->out);
	drp_buf_append(&f->got, drp_buf_head(&f->out), n);
	drp_buf_consume(&f->out, n);
}

/* Dispatch a request for the blob (extra: header lines); returns whether
 * the handler took it. */
static bool dispatch(fake_t *f, const char *repo, const char *extra)
{
	char raw[1024];
	snprintf(raw, sizeof(raw),
		 "%s /v2/%s/blobs/%s HTTP/1.1\r\nHost: " HOST "\r\n%s\r\n",
		 f->x.method, repo, digest, extra);
	drp_http_msg_t req;
	ck_assert_int_gt(drp_http_parse_request(raw, strlen(raw), 8192, &req),
			 0);
	drp_route_t route;
	ck_assert_int_eq(drp_route_classify(req.target, req.target_len, &route),
			 0);
	f->x.repo = REPO;
	return drp_cached_dispatch(&f->x, &req, &route, req.target,
				   req.target_len, "", 0);
}

/* Dispatch and run it to its end as a fast client. */
static bool run(fake_t *f, const char *repo, const char *extra)
{
	if (!dispatch(f, repo, extra))
		return false;
	for (int i = 0; i < 10000 && !f->done && !f->aborted; i++) {
		client_reads(f);
		if (f->x.h && f->x.h->pump)
			ck_assert_int_ge(f->x.h->pump(&f->x), 0);
	}
	client_reads(f);
	ck_assert(f->done);
	return true;
}

/* The response's head and body, split. */
static const char *body_of(fake_t *f, size_t *len)
{
	const char *p = drp_buf_head(&f->got);
	size_t n = drp_buf_pending(&f->got);
	const char *e = memmem(p, n, "\r\n\r\n", 4);
	ck_assert_ptr_nonnull(e);
	*len = n - (size_t)(e + 4 - p);
	return e + 4;
}

static bool head_has(fake_t *f, const char *line)
{
	char *s = drp_strndup(drp_buf_head(&f->got), drp_buf_pending(&f->got));
	char *e = strstr(s, "\r\n\r\n");
	if (e)
		e[2] = '\0'; /* the head's lines, each with its CRLF */
	bool r = strstr(s, line) != NULL;
	free(s);
	return r;
}

/* ---- fixture ---- */

static void setup(void)
{
	const drp_cache_api_t *mem = drp_cache_backend_find("memory");
	ck_assert_ptr_nonnull(mem);
	drp_cache_conf_t cc = {.max_size = 16 << 20};
	char err[256];
	srv = (drp_server_t){.capi = mem};
	ck_assert_int_eq(
		mem->open(&srv.cdb, &cc, &srv.cstats, err, sizeof(err)), 0);
	blob = malloc(BLOB_LEN);
	for (size_t i = 0; i < BLOB_LEN; i++)
		blob[i] = (char)(i * 7 + i / 251);
	unsigned char md[32];
	gnutls_hash_fast(GNUTLS_DIG_SHA256, blob, BLOB_LEN, md);
	int o = snprintf(digest, sizeof(digest), "sha256:");
	for (int i = 0; i < 32; i++)
		o += snprintf(digest + o, sizeof(digest) - (size_t)o, "%02x",
			      md[i]);
	drp_cache_writer_t *wr = NULL;
	ck_assert_int_eq(
		mem->write_begin(srv.cdb, &srv.cstats, digest, BLOB_LEN, &wr),
		0);
	ck_assert_int_eq(mem->write(srv.cdb, &srv.cstats, wr, blob, BLOB_LEN),
			 0);
	ck_assert_int_eq(mem->commit(srv.cdb, &srv.cstats, wr), 0);
	/* Served before for this repository (upstream confirmed it). */
	ck_assert_int_eq(drp_cache_seen_put(mem, srv.cdb, &srv.cstats, digest,
					    HOST, REPO),
			 0);
	drp_conf_errors_t errs = {0};
	drp_conf_t *conf = drp_conf_load_string("t.ini", "[proxy]\n", &errs);
	ck_assert_ptr_nonnull(conf);
	drp_conf_errors_free(&errs);
	rt = drp_runtime_new(conf, err, sizeof(err));
	ck_assert_msg(rt != NULL, "%s", err);
	w = (drp_worker_t){.srv = &srv, .loop = ev_loop_new(EVFLAG_AUTO)};
}

static void teardown(void)
{
	drp_runtime_unref(rt);
	srv.capi->close(srv.cdb, &srv.cstats);
	ev_loop_destroy(w.loop);
	free(blob);
}

/* ---- tests ---- */

START_TEST(hit_whole_blob)
{
	fake_t *f = fake_new(false);
	ck_assert(run(f, REPO, ""));
	ck_assert_str_eq(f->result, "HIT");
	ck_assert_int_eq(f->x.status, 200);
	ck_assert(head_has(f, "HTTP/1.1 200 OK\r\n"));
	char cl[64];
	snprintf(cl, sizeof(cl), "Content-Length: %d\r\n", BLOB_LEN);
	ck_assert(head_has(f, cl));
	ck_assert(head_has(f, "Docker-Content-Digest: sha256:"));
	size_t n;
	const char *b = body_of(f, &n);
	ck_assert_uint_eq(n, BLOB_LEN);
	ck_assert(memcmp(b, blob, BLOB_LEN) == 0);
	ck_assert_ptr_null(f->x.h); /* released at done */
	fake_free(f);
}
END_TEST

START_TEST(hit_head)
{
	fake_t *f = fake_new(true);
	ck_assert(run(f, REPO, ""));
	ck_assert_str_eq(f->result, "HIT");
	char cl[64];
	snprintf(cl, sizeof(cl), "Content-Length: %d\r\n", BLOB_LEN);
	ck_assert(head_has(f, cl));
	size_t n;
	body_of(f, &n);
	ck_assert_uint_eq(n, 0);
	fake_free(f);
}
END_TEST

START_TEST(hit_range)
{
	fake_t *f = fake_new(false);
	ck_assert(run(f, REPO, "Range: bytes=300000-300099\r\n"));
	ck_assert_int_eq(f->x.status, 206);
	char cr[96];
	snprintf(cr, sizeof(cr), "Content-Range: bytes 300000-300099/%d\r\n",
		 BLOB_LEN);
	ck_assert(head_has(f, cr));
	size_t n;
	const char *b = body_of(f, &n);
	ck_assert_uint_eq(n, 100);
	ck_assert(memcmp(b, blob + 300000, 100) == 0);
	fake_free(f);
}
END_TEST

START_TEST(range_unsatisfiable)
{
	fake_t *f = fake_new(false);
	ck_assert(run(f, REPO, "Range: bytes=9999999-\r\n"));
	ck_assert_int_eq(f->x.status, 416);
	char cr[64];
	snprintf(cr, sizeof(cr), "Content-Range: bytes */%d\r\n", BLOB_LEN);
	ck_assert(head_has(f, cr));
	fake_free(f);
}
END_TEST

/* Not stored, HEAD: not the handler's (the connection passes it). */
START_TEST(head_of_missing_blob_not_taken)
{
	srv.capi->remove(srv.cdb, &srv.cstats, digest);
	fake_t *f = fake_new(true);
	ck_assert(!run(f, REPO, ""));
	ck_assert_ptr_null(f->x.h);
	ck_assert_uint_eq(drp_buf_pending(&f->out), 0);
	fake_free(f);
}
END_TEST

/* A slow client: the handler stops at the high-water mark and waits;
 * reading on lets it go on, and the bytes arrive whole and in order. */
START_TEST(back_pressure)
{
	fake_t *f = fake_new(false);
	ck_assert(dispatch(f, REPO, ""));
	ck_assert(f->async);
	ck_assert_ptr_nonnull(f->x.h);
	/* Nobody reads: pumping stops short of the blob. */
	for (int i = 0; i < 50; i++)
		f->x.h->pump(&f->x);
	ck_assert(!f->done);
	ck_assert_uint_le(drp_buf_pending(&f->out),
			  DRP_EXCH_OUT_HIGH + 256 * 1024);
	ck_assert_uint_lt(drp_buf_pending(&f->out), BLOB_LEN);
	for (int i = 0; i < 1000 && !f->done; i++) {
		client_reads(f);
		f->x.h->pump(&f->x);
	}
	client_reads(f);
	ck_assert(f->done);
	size_t n;
	const char *b = body_of(f, &n);
	ck_assert_uint_eq(n, BLOB_LEN);
	ck_assert(memcmp(b, blob, BLOB_LEN) == 0);
	fake_free(f);
}
END_TEST

/* The client goes away mid-body: the connection releases the handler,
 * which lets go of its reader (the cache can be closed after it). */
START_TEST(client_gone_mid_body)
{
	fake_t *f = fake_new(false);
	ck_assert(dispatch(f, REPO, ""));
	f->x.h->pump(&f->x);
	ck_assert(!f->done);
	fake_free(f); /* releases the handler's state */
}
END_TEST

/* Docker Hub under any of its names is one registry in the cache's
 * records: a blob seen for "docker.io" (e.g. through the mirror, ns=
 * docker.io) is served without asking the upstream again to a client
 * that intercepts registry-1.docker.io or names index.docker.io. */
START_TEST(seen_by_canonical_registry)
{
	ck_assert_int_eq(drp_cache_seen_put(srv.capi, srv.cdb, &srv.cstats,
					    digest, "docker.io", "library/app"),
			 0);
	static const char *const hosts[] = {"registry-1.docker.io",
					    "index.docker.io", "docker.io"};
	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
		fake_t *f = fake_new(false);
		f->x.host = hosts[i];
		ck_assert(run(f, "library/app", ""));
		ck_assert_msg(strcmp(f->result, "HIT") == 0, "%s: %s", hosts[i],
			      f->result);
		size_t n;
		const char *b = body_of(f, &n);
		ck_assert_uint_eq(n, BLOB_LEN);
		ck_assert(memcmp(b, blob, n) == 0);
		fake_free(f);
	}
}
END_TEST

Suite *registry_suite(void)
{
	Suite *s = suite_create("registry");
	TCase *tc = tcase_create("cached");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, hit_whole_blob);
	tcase_add_test(tc, hit_head);
	tcase_add_test(tc, hit_range);
	tcase_add_test(tc, range_unsatisfiable);
	tcase_add_test(tc, head_of_missing_blob_not_taken);
	tcase_add_test(tc, back_pressure);
	tcase_add_test(tc, client_gone_mid_body);
	tcase_add_test(tc, seen_by_canonical_registry);
	suite_add_tcase(s, tc);
	return s;
}
