/* SPDX-License-Identifier: MIT */
/*
 * The S3 client's requests (src/upstream/s3.c) over real sockets: the
 * test's loop runs the client, a thread of the test is the store (plain
 * HTTP on loopback) and answers each request from the test's script,
 * recording what it received (method, target, the signature's headers,
 * the body) for the test to check: signed one-shot requests and their
 * answers (errors with S3's <Code>, oversized bodies, a store that
 * hangs up), path and virtual-hosted addressing, the upload state
 * machine (one conditional PUT; multipart initiate, parts, complete;
 * abort on failure and on request) and the sweep of stale multipart
 * uploads by the store's clock, across pages.
 */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#include "conf/conf.h"
#include "core/daemon.h"
#include "registry/s3tier.h"
#include "upstream/s3.h"
#include "upstream/upstream.h"
#include "loopback.h"

Suite *s3call_suite(void);

/* ---- the fake store ---- */

typedef struct seen {
	char method[8];
	char target[1024];
	char host[256];
	char auth[512];
	char sha[80];
	char inm[16]; /* If-None-Match */
	char range[64];
	char *body;
	size_t body_len;
} seen_t;

#define MAX_SEEN 32

/* The answer to a request: a whole HTTP response (malloc'd), or NULL to
 * hang up without one. */
typedef char *(*answer_fn)(const seen_t *req, unsigned nth);

static struct {
	int lfd;
	uint16_t port;
	pthread_t th;
	pthread_mutex_t lock;
	seen_t seen[MAX_SEEN];
	unsigned n_seen;
	answer_fn answer;
	/* the client */
	struct ev_loop *loop;
	drp_upstream_t up;
	drp_upstream_conf_t *ucf;
	drp_s3_t *s3;
} S;

static char *xprintf(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static char *xprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	return s;
}

static char *resp(int status, const char *extra, const char *body)
{
	return xprintf(
		"HTTP/1.1 %d X\r\nDate: Wed, 01 May 2024 10:20:30 GMT\r\n"
		"Content-Length: %zu\r\n%s\r\n%s",
		status, strlen(body), extra ? extra : "", body);
}

static void header(const char *head, const char *name, char *out, size_t n)
{
	size_t nl = strlen(name);
	out[0] = '\0';
	for (const char *l = strstr(head, "\r\n"); l; l = strstr(l, "\r\n")) {
		l += 2;
		if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
			const char *v = l + nl + 1;
			while (*v == ' ')
				v++;
			size_t len = strcspn(v, "\r");
			snprintf(out, n, "%.*s", (int)len, v);
			return;
		}
	}
}

static bool recv_all(int fd, char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = recv(fd, p, n, 0);
		if (r <= 0)
			return false;
		p += r;
		n -= (size_t)r;
	}
	return true;
}

static void serve(int fd)
{
	char head[8192];
	for (;;) {
		size_t n = 0;
		while (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0) {
			if (n + 1 >= sizeof(head) ||
			    recv(fd, head + n, 1, 0) != 1)
				return;
			n++;
		}
		head[n] = '\0';
		seen_t q = {0};
		sscanf(head, "%7s %1023s", q.method, q.target);
		header(head, "Host", q.host, sizeof(q.host));
		header(head, "Authorization", q.auth, sizeof(q.auth));
		header(head, "X-Amz-Content-Sha256", q.sha, sizeof(q.sha));
		header(head, "If-None-Match", q.inm, sizeof(q.inm));
		header(head, "Range", q.range, sizeof(q.range));
		char cl[32];
		header(head, "Content-Length", cl, sizeof(cl));
		q.body_len = (size_t)strtoull(cl, NULL, 10);
		q.body = calloc(1, q.body_len + 1);
		if (!recv_all(fd, q.body, q.body_len)) {
			free(q.body);
			return;
		}
		pthread_mutex_lock(&S.lock);
		unsigned nth = S.n_seen;
		if (S.n_seen < MAX_SEEN)
			S.seen[S.n_seen++] = q;
		else
			free(q.body);
		pthread_mutex_unlock(&S.lock);
		char *a = S.answer(&S.seen[nth < MAX_SEEN ? nth : 0], nth);
		if (a == NULL)
			return;
		size_t len = strlen(a), off = 0;
		while (off < len) {
			ssize_t w = send(fd, a + off, len - off, MSG_NOSIGNAL);
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		free(a);
	}
}

static void *store_main(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(S.lfd, NULL, NULL);
		if (fd < 0)
			return NULL;
		serve(fd);
		close(fd);
	}
}

static drp_s3_t *s3_with(drp_s3_addressing_t how, const char *host,
			 uint64_t part_size)
{
	char ep[128], err[256] = "";
	snprintf(ep, sizeof(ep), "http://%s:%u", host, S.port);
	drp_s3_conf_t c = {.endpoint = ep,
			   .bucket = "bkt",
			   .access_key = "AKIDTEST",
			   .secret_key = "sekrit/KEY",
			   .addressing = how,
			   .part_size = part_size};
	drp_s3_t *s3 = drp_s3_new(&c, err, sizeof(err));
	ck_assert_msg(s3 != NULL, "%s", err);
	return s3;
}

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	memset(&S, 0, sizeof(S));
	pthread_mutex_init(&S.lock, NULL);
	S.lfd = test_listen_loopback(16, &S.port);
	ck_assert_int_eq(pthread_create(&S.th, NULL, store_main, NULL), 0);

	/* bkt.s3.test (virtual-hosted) and s3.test go to the store. */
	char text[512];
	snprintf(text, sizeof(text),
		 "[resolve]\ns3.test = 127.0.0.1:%u\n"
		 "bkt.s3.test = 127.0.0.1:%u\n",
		 S.port, S.port);
	drp_conf_errors_t errs = {0};
	drp_conf_t *conf = drp_conf_load_string("s3.ini", text, &errs);
	ck_assert_ptr_nonnull(conf);
	char err[256];
	S.ucf = drp_upstream_conf_new(conf, err, sizeof(err));
	ck_assert_msg(S.ucf != NULL, "%s", err);
	drp_conf_free(conf);
	S.loop = ev_loop_new(EVFLAG_AUTO);
	drp_upstream_init(&S.up, S.loop, 2.0);
	S.s3 = s3_with(DRP_S3_PATH, "127.0.0.1", 0);
}

static void teardown(void)
{
	drp_upstream_fini(&S.up);
	ev_loop_destroy(S.loop);
	drp_upstream_conf_unref(S.ucf);
	drp_s3_free(S.s3);
	shutdown(S.lfd, SHUT_RDWR);
	pthread_join(S.th, NULL);
	close(S.lfd);
	for (unsigned i = 0; i < S.n_seen; i++)
		free(S.seen[i].body);
}

/* Run the loop until *flag (set by a callback). */
static void run_until(const bool *flag)
{
	while (!*flag)
		ev_run(S.loop, EVRUN_ONCE);
}

/* ---- one request ---- */

typedef struct got {
	bool done;
	drp_s3_result_t res;
	char body[4096];
} got_t;

static void got_cb(void *arg, const drp_s3_result_t *res)
{
	got_t *g = arg;
	g->res = *res;
	snprintf(g->body, sizeof(g->body), "%s", res->body ? res->body : "");
	g->res.body = NULL;
	g->done = true;
}

static got_t call(const drp_s3_t *s3, const drp_s3_req_t *r)
{
	got_t g = {0};
	drp_s3_call_t *c = drp_s3_call(s3, &S.up, S.ucf, r, got_cb, &g);
	ck_assert_ptr_nonnull(c);
	/* Never from inside the call. */
	ck_assert(!g.done);
	run_until(&g.done);
	return g;
}

static char *answer_calls(const seen_t *q, unsigned nth)
{
	(void)nth;
	if (strcmp(q->method, "HEAD") == 0)
		return xprintf("HTTP/1.1 200 OK\r\nContent-Length: 12345\r\n"
			       "ETag: \"abc\"\r\n\r\n");
	if (strstr(q->target, "/denied"))
		return resp(403, "Content-Type: application/xml\r\n",
			    "<?xml version=\"1.0\"?><Error><Code>AccessDenied"
			    "</Code><Message>no</Message></Error>");
	if (strstr(q->target, "/broken"))
		return resp(500, NULL, "<Error><Code>InternalError</Code>");
	if (strstr(q->target, "/big"))
		return resp(200, NULL,
			    "0123456789012345678901234567890123456789");
	if (strstr(q->target, "/hangup"))
		return NULL;
	return resp(200, "ETag: \"e-1\"\r\n", "stored");
}

static void sha256_hex(const char *p, size_t n, char out[65])
{
	unsigned char md[32];
	gnutls_hash_fast(GNUTLS_DIG_SHA256, p, n, md);
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

START_TEST(signed_calls)
{
	S.answer = answer_calls;
	drp_s3sig_kv_t h[] = {{"Content-Type", "text/plain"}};
	drp_s3_req_t r = {.method = "PUT",
			  .key = "blobs/sha256/ab",
			  .headers = h,
			  .nheaders = 1,
			  .body = "hello",
			  .body_len = 5,
			  .fd = -1,
			  .max_body = 1024};
	got_t g = call(S.s3, &r);
	ck_assert_int_eq(g.res.err, 0);
	ck_assert_int_eq(g.res.status, 200);
	ck_assert_str_eq(g.res.etag, "\"e-1\"");
	ck_assert_str_eq(g.res.date, "Wed, 01 May 2024 10:20:30 GMT");
	ck_assert_str_eq(g.body, "stored");
	/* Path-style: the bucket in the path; the body's hash signed. */
	seen_t *q = &S.seen[0];
	ck_assert_str_eq(q->method, "PUT");
	ck_assert_str_eq(q->target, "/bkt/blobs/sha256/ab");
	char host[64];
	snprintf(host, sizeof(host), "127.0.0.1:%u", S.port);
	ck_assert_str_eq(q->host, host);
	ck_assert_str_eq(q->body, "hello");
	char hex[65];
	sha256_hex("hello", 5, hex);
	ck_assert_str_eq(q->sha, hex);
	ck_assert_msg(strncmp(q->auth, "AWS4-HMAC-SHA256 Credential=AKIDTEST/",
			      37) == 0,
		      "%s", q->auth);
	ck_assert_ptr_nonnull(strstr(q->auth, "/us-east-1/s3/aws4_request"));
	ck_assert_ptr_nonnull(strstr(q->auth, "SignedHeaders=content-type;"
					      "host;x-amz-content-sha256;"
					      "x-amz-date"));
	ck_assert_ptr_nonnull(strstr(q->auth, "Signature="));
	ck_assert_ptr_null(strstr(q->auth, "sekrit"));

	/* HEAD: the length. */
	r = (drp_s3_req_t){.method = "HEAD", .key = "k", .fd = -1};
	g = call(S.s3, &r);
	ck_assert_int_eq(g.res.status, 200);
	ck_assert(g.res.has_length);
	ck_assert_uint_eq(g.res.length, 12345);
	ck_assert_str_eq(g.res.etag, "\"abc\"");
	/* An empty payload's hash. */
	sha256_hex("", 0, hex);
	ck_assert_str_eq(S.seen[1].sha, hex);

	/* Errors are answers, with S3's code. */
	r = (drp_s3_req_t){
		.method = "GET", .key = "denied", .fd = -1, .max_body = 4096};
	g = call(S.s3, &r);
	ck_assert_int_eq(g.res.err, 0);
	ck_assert_int_eq(g.res.status, 403);
	ck_assert_str_eq(g.res.code, "AccessDenied");
	r.key = "broken";
	g = call(S.s3, &r);
	ck_assert_int_eq(g.res.status, 500);
	/* too big an answer for max_body */
	r.key = "big";
	r.max_body = 10;
	g = call(S.s3, &r);
	ck_assert_int_eq(g.res.err, -EFBIG);
	ck_assert_ptr_nonnull(g.res.reason);
	/* no answer at all */
	r.key = "hangup";
	r.max_body = 4096;
	g = call(S.s3, &r);
	ck_assert_int_lt(g.res.err, 0);
	ck_assert_ptr_nonnull(g.res.reason);
}
END_TEST

/* A body from a file range goes unsigned (verified by digest when read
 * back), the bytes exactly those of the range. */
START_TEST(file_body)
{
	S.answer = answer_calls;
	FILE *f = tmpfile();
	for (int i = 0; i < 100000; i++)
		fputc('a' + i % 26, f);
	fflush(f);
	drp_s3_req_t r = {.method = "PUT",
			  .key = "blobs/x",
			  .fd = fileno(f),
			  .fd_off = 10,
			  .fd_len = 90000,
			  .max_body = 1024};
	got_t g = call(S.s3, &r);
	ck_assert_int_eq(g.res.status, 200);
	seen_t *q = &S.seen[0];
	ck_assert_str_eq(q->sha, "UNSIGNED-PAYLOAD");
	ck_assert_uint_eq(q->body_len, 90000);
	for (size_t i = 0; i < q->body_len; i++)
		ck_assert_int_eq(q->body[i], 'a' + (int)((i + 10) % 26));
	fclose(f);
}
END_TEST

START_TEST(virtual_hosted)
{
	S.answer = answer_calls;
	drp_s3_t *v = s3_with(DRP_S3_VIRTUAL, "s3.test", 0);
	char want[64];
	snprintf(want, sizeof(want), "http://bkt.s3.test:%u/", S.port);
	ck_assert_str_eq(drp_s3_describe(v), want);
	drp_s3_req_t r = {
		.method = "GET", .key = "a b/c", .fd = -1, .max_body = 1024};
	got_t g = call(v, &r);
	ck_assert_int_eq(g.res.status, 200);
	ck_assert_str_eq(S.seen[0].target, "/a%20b/c");
	snprintf(want, sizeof(want), "bkt.s3.test:%u", S.port);
	ck_assert_str_eq(S.seen[0].host, want);
	drp_s3_free(v);

	/* Endpoints and buckets refused up front. */
	char err[256];
	drp_s3_conf_t bad[] = {
		{.endpoint = "ftp://x",
		 .bucket = "bkt",
		 .access_key = "a",
		 .secret_key = "s"},
		{.endpoint = "http://x/path",
		 .bucket = "bkt",
		 .access_key = "a",
		 .secret_key = "s"},
		{.endpoint = "http://x:99999",
		 .bucket = "bkt",
		 .access_key = "a",
		 .secret_key = "s"},
		{.endpoint = "http://x", .bucket = "bkt", .access_key = "a"},
		{.endpoint = "http://x",
		 .bucket = "a.b.c",
		 .access_key = "a",
		 .secret_key = "s",
		 .addressing = DRP_S3_VIRTUAL},
		{.endpoint = "http://x",
		 .bucket = "B",
		 .access_key = "a",
		 .secret_key = "s"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		ck_assert_ptr_null(drp_s3_new(&bad[i], err, sizeof(err)));
		ck_assert_msg(err[0] != '\0', "%zu", i);
	}
	/* The default port is left out of the Host header. */
	drp_s3_conf_t c = {.endpoint = "https://s3.example.com:443/",
			   .bucket = "bkt",
			   .access_key = "a",
			   .secret_key = "s"};
	v = drp_s3_new(&c, err, sizeof(err));
	ck_assert_ptr_nonnull(v);
	ck_assert_str_eq(drp_s3_describe(v), "https://s3.example.com/bkt");
	drp_s3_free(v);
}
END_TEST

/* A GET streamed into a sink, with a Range. */
typedef struct sinkst {
	int status;
	char data[256];
	size_t len;
	bool done;
	int err;
} sinkst_t;

static void sk_head(void *arg, const drp_http_msg_t *resp,
		    enum drp_http_body_mode mode, uint64_t length)
{
	(void)mode, (void)length;
	((sinkst_t *)arg)->status = resp->status;
}
static size_t sk_room(void *arg)
{
	(void)arg;
	return 65536;
}
static void sk_body(void *arg, const char *p, size_t n)
{
	sinkst_t *s = arg;
	if (s->len + n < sizeof(s->data)) {
		memcpy(s->data + s->len, p, n);
		s->len += n;
	}
}
static void sk_done(void *arg, int err, int http_status, const char *reason)
{
	(void)http_status, (void)reason;
	sinkst_t *s = arg;
	s->err = err;
	s->done = true;
}

static char *answer_range(const seen_t *q, unsigned nth)
{
	(void)nth;
	if (q->range[0])
		return xprintf("HTTP/1.1 206 Partial\r\nContent-Length: 3\r\n"
			       "Content-Range: bytes 2-4/10\r\n\r\ncde");
	return resp(200, NULL, "abcdefghij");
}

START_TEST(streamed_get)
{
	S.answer = answer_range;
	drp_fetch_sink_t sink = {.head = sk_head,
				 .room = sk_room,
				 .body = sk_body,
				 .done = sk_done};
	sinkst_t st = {0};
	ck_assert_ptr_nonnull(
		drp_s3_get(S.s3, &S.up, S.ucf, "obj", true, 2, 4, &sink, &st));
	run_until(&st.done);
	ck_assert_int_eq(st.err, 0);
	ck_assert_int_eq(st.status, 206);
	ck_assert_str_eq(S.seen[0].range, "bytes=2-4");
	ck_assert_uint_eq(st.len, 3);
	ck_assert(memcmp(st.data, "cde", 3) == 0);
	sinkst_t all = {0};
	ck_assert_ptr_nonnull(drp_s3_get(S.s3, &S.up, S.ucf, "obj", false, 0, 0,
					 &sink, &all));
	run_until(&all.done);
	ck_assert_int_eq(all.status, 200);
	ck_assert_str_eq(S.seen[1].range, "");
	ck_assert_uint_eq(all.len, 10);
}
END_TEST

/* ---- uploads ---- */

typedef struct upres {
	bool done;
	int err;
	char reason[256];
} upres_t;

static void up_cb(void *arg, int err, const char *reason)
{
	upres_t *u = arg;
	u->err = err;
	snprintf(u->reason, sizeof(u->reason), "%s", reason ? reason : "");
	u->done = true;
}

/* How the store answers the multipart verbs; part `fail_part` fails. */
static unsigned fail_part;
static bool complete_in_body_error;
static bool put_exists;

static char *answer_uploads(const seen_t *q, unsigned nth)
{
	(void)nth;
	if (strcmp(q->method, "POST") == 0 && strstr(q->target, "?uploads"))
		return resp(
			200, NULL,
			"<?xml version=\"1.0\"?><InitiateMultipartUploadResult>"
			"<Bucket>bkt</Bucket><Key>k</Key><UploadId>"
			"2~up&amp;1</UploadId></"
			"InitiateMultipartUploadResult>");
	if (strcmp(q->method, "PUT") == 0 && strstr(q->target, "partNumber=")) {
		unsigned n =
			(unsigned)atoi(strstr(q->target, "partNumber=") + 11);
		if (n == fail_part)
			return resp(500, NULL,
				    "<Error><Code>SlowDown</Code></Error>");
		char h[64];
		snprintf(h, sizeof(h), "ETag: \"etag-%u\"\r\n", n);
		return resp(200, h, "");
	}
	if (strcmp(q->method, "POST") == 0 && strstr(q->target, "uploadId="))
		return resp(
			200, NULL,
			complete_in_body_error
				? "<Error><Code>InternalError</Code></Error>"
				: "<CompleteMultipartUploadResult><ETag>\"x-3\""
				  "</ETag></CompleteMultipartUploadResult>");
	if (strcmp(q->method, "DELETE") == 0)
		return resp(204, NULL, "");
	if (strcmp(q->method, "PUT") == 0)
		return put_exists ? resp(412, NULL,
					 "<Error><Code>PreconditionFailed"
					 "</Code></Error>")
				  : resp(200, "ETag: \"one\"\r\n", "");
	return resp(400, NULL, "");
}

static FILE *file_of(size_t n)
{
	FILE *f = tmpfile();
	for (size_t i = 0; i < n; i++)
		fputc((int)(i % 251), f);
	fflush(f);
	return f;
}

static void uploads_reset(void)
{
	S.answer = answer_uploads;
	fail_part = 0;
	complete_in_body_error = false;
	put_exists = false;
}

/* Smaller than a part: one PUT, conditional; a 412 means stored. */
START_TEST(upload_small)
{
	uploads_reset();
	drp_s3_t *s3 = s3_with(DRP_S3_PATH, "127.0.0.1", 1000);
	FILE *f = file_of(700);
	upres_t u = {0};
	drp_s3_upload_t *up = drp_s3_upload_new(s3, &S.up, S.ucf, "blobs/s",
						fileno(f), up_cb, &u);
	drp_s3_upload_avail(up, 700); /* less than a part: nothing yet */
	drp_s3_upload_commit(up, 700);
	run_until(&u.done);
	ck_assert_int_eq(u.err, 0);
	ck_assert_uint_eq(S.n_seen, 1);
	ck_assert_str_eq(S.seen[0].method, "PUT");
	ck_assert_str_eq(S.seen[0].target, "/bkt/blobs/s");
	ck_assert_str_eq(S.seen[0].inm, "*");
	ck_assert_uint_eq(S.seen[0].body_len, 700);

	put_exists = true;
	u = (upres_t){0};
	up = drp_s3_upload_new(s3, &S.up, S.ucf, "blobs/s", fileno(f), up_cb,
			       &u);
	drp_s3_upload_commit(up, 700);
	run_until(&u.done);
	ck_assert_int_eq(u.err, 0);
	ck_assert_str_eq(u.reason, "already stored");
	fclose(f);
	drp_s3_free(s3);
}
END_TEST

/* Parts go up as the file fills; commit sends the short last part and
 * completes with every part's ETag in order. */
START_TEST(upload_multipart)
{
	uploads_reset();
	drp_s3_t *s3 = s3_with(DRP_S3_PATH, "127.0.0.1", 1000);
	FILE *f = file_of(2500);
	upres_t u = {0};
	drp_s3_upload_t *up = drp_s3_upload_new(s3, &S.up, S.ucf, "blobs/m",
						fileno(f), up_cb, &u);
	ck_assert_str_eq(drp_s3_upload_id(up), "");
	drp_s3_upload_avail(up, 2100);
	/* initiate, part 1, part 2: then it waits for more */
	while (S.n_seen < 3 || drp_s3_upload_parts(up) < 2)
		ev_run(S.loop, EVRUN_ONCE);
	ck_assert_str_eq(drp_s3_upload_id(up), "2~up&1");
	ck_assert(!u.done);
	drp_s3_upload_commit(up, 2500);
	run_until(&u.done);
	ck_assert_int_eq(u.err, 0);
	ck_assert_uint_eq(S.n_seen, 5);
	ck_assert_str_eq(S.seen[0].method, "POST");
	ck_assert_str_eq(S.seen[0].target, "/bkt/blobs/m?uploads=");
	ck_assert_str_eq(S.seen[1].target,
			 "/bkt/blobs/m?partNumber=1&uploadId=2~up%261");
	ck_assert_uint_eq(S.seen[1].body_len, 1000);
	ck_assert_str_eq(S.seen[2].target,
			 "/bkt/blobs/m?partNumber=2&uploadId=2~up%261");
	ck_assert_uint_eq(S.seen[3].body_len, 500);
	ck_assert_int_eq((unsigned char)S.seen[3].body[0], 2000 % 251);
	ck_assert_str_eq(S.seen[4].method, "POST");
	ck_assert_str_eq(S.seen[4].target, "/bkt/blobs/m?uploadId=2~up%261");
	ck_assert_str_eq(
		S.seen[4].body,
		"<CompleteMultipartUpload>"
		"<Part><PartNumber>1</PartNumber><ETag>\"etag-1\"</ETag></Part>"
		"<Part><PartNumber>2</PartNumber><ETag>\"etag-2\"</ETag></Part>"
		"<Part><PartNumber>3</PartNumber><ETag>\"etag-3\"</ETag></Part>"
		"</CompleteMultipartUpload>");
	fclose(f);
	drp_s3_free(s3);
}
END_TEST

/* A part that fails, and a complete answered 200 with an error inside,
 * both abort the multipart upload (a DELETE) and report a failure. */
START_TEST(upload_failures)
{
	uploads_reset();
	drp_s3_t *s3 = s3_with(DRP_S3_PATH, "127.0.0.1", 1000);
	FILE *f = file_of(2500);
	fail_part = 2;
	upres_t u = {0};
	drp_s3_upload_t *up = drp_s3_upload_new(s3, &S.up, S.ucf, "blobs/f",
						fileno(f), up_cb, &u);
	drp_s3_upload_avail(up, 2500);
	drp_s3_upload_commit(up, 2500);
	run_until(&u.done);
	ck_assert_int_lt(u.err, 0);
	ck_assert_ptr_nonnull(strstr(u.reason, "part upload"));
	ck_assert_str_eq(S.seen[S.n_seen - 1].method, "DELETE");
	ck_assert_str_eq(S.seen[S.n_seen - 1].target,
			 "/bkt/blobs/f?uploadId=2~up%261");

	unsigned before = S.n_seen;
	fail_part = 0;
	complete_in_body_error = true;
	u = (upres_t){0};
	up = drp_s3_upload_new(s3, &S.up, S.ucf, "blobs/g", fileno(f), up_cb,
			       &u);
	drp_s3_upload_commit(up, 2500);
	run_until(&u.done);
	ck_assert_int_lt(u.err, 0);
	ck_assert_ptr_nonnull(strstr(u.reason, "complete"));
	/* initiate, 3 parts, complete, abort */
	ck_assert_uint_eq(S.n_seen - before, 6);
	ck_assert_str_eq(S.seen[S.n_seen - 1].method, "DELETE");
	fclose(f);
	drp_s3_free(s3);
}
END_TEST

/* Abort on request: an open multipart upload is deleted, cb says
 * -ECANCELED; before any started, nothing is sent. */
START_TEST(upload_abort)
{
	uploads_reset();
	drp_s3_t *s3 = s3_with(DRP_S3_PATH, "127.0.0.1", 1000);
	FILE *f = file_of(2500);
	upres_t u = {0};
	drp_s3_upload_t *up = drp_s3_upload_new(s3, &S.up, S.ucf, "blobs/a",
						fileno(f), up_cb, &u);
	drp_s3_upload_avail(up, 1000);
	while (drp_s3_upload_parts(up) < 1)
		ev_run(S.loop, EVRUN_ONCE);
	drp_s3_upload_abort(up);
	run_until(&u.done);
	ck_assert_int_eq(u.err, -ECANCELED);
	ck_assert_uint_eq(S.n_seen, 3);
	ck_assert_str_eq(S.seen[2].method, "DELETE");

	u = (upres_t){0};
	up = drp_s3_upload_new(s3, &S.up, S.ucf, "blobs/b", fileno(f), up_cb,
			       &u);
	drp_s3_upload_avail(up, 10);
	drp_s3_upload_abort(up);
	run_until(&u.done);
	ck_assert_int_eq(u.err, -ECANCELED);
	ck_assert_uint_eq(S.n_seen, 3);

	/* cancel: no callback, the upload left to the sweep */
	u = (upres_t){0};
	up = drp_s3_upload_new(s3, &S.up, S.ucf, "blobs/c", fileno(f), up_cb,
			       &u);
	drp_s3_upload_cancel(up);
	ck_assert(!u.done);
	fclose(f);
	drp_s3_free(s3);
}
END_TEST

/* A gate holds the publication: every part goes up, the complete (or
 * the single PUT) waits for publish(); abort() there deletes the
 * multipart upload, and a small object is never PUT. */
static unsigned gate_calls;
static void gate_cb(void *arg)
{
	(void)arg;
	gate_calls++;
}

START_TEST(upload_gate)
{
	uploads_reset();
	drp_s3_t *s3 = s3_with(DRP_S3_PATH, "127.0.0.1", 1000);
	FILE *f = file_of(2500);

	/* multipart, published: initiate, 3 parts, then the gate; the
	 * complete only after publish(). */
	gate_calls = 0;
	upres_t u = {0};
	drp_s3_upload_t *up = drp_s3_upload_new(s3, &S.up, S.ucf, "blobs/p",
						fileno(f), up_cb, &u);
	drp_s3_upload_gate(up, gate_cb, NULL);
	drp_s3_upload_avail(up, 2500);
	drp_s3_upload_commit(up, 2500);
	while (gate_calls == 0)
		ev_run(S.loop, EVRUN_ONCE);
	ck_assert_uint_eq(S.n_seen, 4);
	ck_assert_uint_eq(drp_s3_upload_parts(up), 3);
	ck_assert(!u.done);
	drp_s3_upload_publish(up);
	run_until(&u.done);
	ck_assert_int_eq(u.err, 0);
	ck_assert_uint_eq(gate_calls, 1);
	ck_assert_uint_eq(S.n_seen, 5);
	ck_assert_str_eq(S.seen[4].method, "POST");
	ck_assert_str_eq(S.seen[4].target, "/bkt/blobs/p?uploadId=2~up%261");

	/* multipart, refused at the gate: no complete, the upload deleted */
	unsigned before = S.n_seen;
	gate_calls = 0;
	u = (upres_t){0};
	up = drp_s3_upload_new(s3, &S.up, S.ucf, "blobs/q", fileno(f), up_cb,
			       &u);
	drp_s3_upload_gate(up, gate_cb, NULL);
	drp_s3_upload_commit(up, 2500);
	while (gate_calls == 0)
		ev_run(S.loop, EVRUN_ONCE);
	drp_s3_upload_abort(up);
	run_until(&u.done);
	ck_assert_int_eq(u.err, -ECANCELED);
	/* initiate, 3 parts, abort */
	ck_assert_uint_eq(S.n_seen - before, 5);
	for (unsigned i = before; i < S.n_seen; i++)
		ck_assert(strcmp(S.seen[i].method, "POST") != 0 ||
			  strstr(S.seen[i].target, "?uploads=") != NULL);
	ck_assert_str_eq(S.seen[S.n_seen - 1].method, "DELETE");

	/* small, refused at the gate: nothing is sent at all */
	before = S.n_seen;
	gate_calls = 0;
	u = (upres_t){0};
	up = drp_s3_upload_new(s3, &S.up, S.ucf, "blobs/r", fileno(f), up_cb,
			       &u);
	drp_s3_upload_gate(up, gate_cb, NULL);
	drp_s3_upload_commit(up, 700);
	while (gate_calls == 0)
		ev_run(S.loop, EVRUN_ONCE);
	ck_assert_uint_eq(S.n_seen, before);
	drp_s3_upload_abort(up);
	run_until(&u.done);
	ck_assert_int_eq(u.err, -ECANCELED);
	ck_assert_uint_eq(S.n_seen, before);
	fclose(f);
	drp_s3_free(s3);
}
END_TEST

/* ---- the sweep ---- */

static bool sweep_list_fails, sweep_no_date;

static char *answer_sweep(const seen_t *q, unsigned nth)
{
	(void)nth;
	if (strcmp(q->method, "DELETE") == 0)
		return resp(strstr(q->target, "gone") ? 404 : 204, NULL, "");
	if (sweep_list_fails)
		return resp(403, NULL,
			    "<Error><Code>AccessDenied</Code></Error>");
	if (sweep_no_date)
		return xprintf(
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n<a");
	/* The store's clock says 10:20:30; max_age is an hour. */
	if (strstr(q->target, "key-marker=") == NULL)
		return resp(
			200, NULL,
			"<ListMultipartUploadsResult><IsTruncated>true"
			"</IsTruncated><NextKeyMarker>blobs/n</NextKeyMarker>"
			"<NextUploadIdMarker>u2</NextUploadIdMarker>"
			"<Upload><Key>blobs/old</Key><UploadId>u1</UploadId>"
			"<Initiated>2024-05-01T08:00:00.000Z</Initiated></"
			"Upload>"
			"<Upload><Key>blobs/n</Key><UploadId>u2</UploadId>"
			"<Initiated>2024-05-01T10:20:00.000Z</Initiated></"
			"Upload>"
			"<Upload><Key>blobs/x</Key><UploadId>u9</UploadId>"
			"</Upload>"
			"</ListMultipartUploadsResult>");
	return resp(
		200, NULL,
		"<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>"
		"<Upload><Key>blobs/gone</Key><UploadId>u3</UploadId>"
		"<Initiated>2024-04-30T10:20:30.000Z</Initiated></Upload>"
		"</ListMultipartUploadsResult>");
}

typedef struct swres {
	bool done;
	int err;
	unsigned listed, aborted;
} swres_t;

static void sw_cb(void *arg, int err, unsigned listed, unsigned aborted)
{
	swres_t *s = arg;
	s->err = err;
	s->listed = listed;
	s->aborted = aborted;
	s->done = true;
}

START_TEST(sweep)
{
	S.answer = answer_sweep;
	sweep_list_fails = sweep_no_date = false;
	swres_t r = {0};
	ck_assert_ptr_nonnull(
		drp_s3_sweep(S.s3, &S.up, S.ucf, "blobs/", 3600, sw_cb, &r));
	run_until(&r.done);
	ck_assert_int_eq(r.err, 0);
	ck_assert_uint_eq(r.listed, 3);
	ck_assert_uint_eq(r.aborted, 2);
	/* list, abort u1, list the next page, abort u3 (already gone) */
	ck_assert_uint_eq(S.n_seen, 4);
	ck_assert_str_eq(S.seen[0].target, "/bkt?prefix=blobs%2F&uploads=");
	ck_assert_str_eq(S.seen[1].method, "DELETE");
	ck_assert_str_eq(S.seen[1].target, "/bkt/blobs/old?uploadId=u1");
	ck_assert_str_eq(S.seen[2].target,
			 "/bkt?key-marker=blobs%2Fn&prefix=blobs%2F&"
			 "upload-id-marker=u2&uploads=");
	ck_assert_str_eq(S.seen[3].target, "/bkt/blobs/gone?uploadId=u3");

	sweep_list_fails = true;
	r = (swres_t){0};
	drp_s3_sweep(S.s3, &S.up, S.ucf, "", 3600, sw_cb, &r);
	run_until(&r.done);
	ck_assert_int_lt(r.err, 0);

	sweep_list_fails = false;
	sweep_no_date = true;
	r = (swres_t){0};
	drp_s3_sweep(S.s3, &S.up, S.ucf, "", 3600, sw_cb, &r);
	run_until(&r.done);
	ck_assert_int_eq(r.err, -EPROTO);

	/* cancelled: no callback */
	r = (swres_t){0};
	drp_s3_sweep_t *sw =
		drp_s3_sweep(S.s3, &S.up, S.ucf, "", 3600, sw_cb, &r);
	drp_s3_sweep_cancel(sw);
	ck_assert(!r.done);
}
END_TEST

/* ---- the tier's sweep when its worker stops ---- */

/* The store holds the listing until the test lets it go. */
static pthread_cond_t hold_cond = PTHREAD_COND_INITIALIZER;
static bool hold_released;

static char *answer_hold(const seen_t *q, unsigned nth)
{
	(void)q;
	(void)nth;
	pthread_mutex_lock(&S.lock);
	while (!hold_released)
		pthread_cond_wait(&hold_cond, &S.lock);
	pthread_mutex_unlock(&S.lock);
	return NULL;
}

static unsigned seen_count(void)
{
	pthread_mutex_lock(&S.lock);
	unsigned n = S.n_seen;
	pthread_mutex_unlock(&S.lock);
	return n;
}

static void tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
}

/* The sweeping worker stops with a listing in flight: the sweep, its
 * request and the fetch under it end on that loop (the sanitizer build
 * finds nothing left at exit), and no other sweep starts. They used to
 * be dropped by drp_s3tier_free, after the loop, and leaked. */
START_TEST(tier_sweep_worker_stop)
{
	S.answer = answer_hold;
	hold_released = false;
	drp_server_t srv;
	memset(&srv, 0, sizeof(srv));
	srv.s3 = S.s3;
	drp_worker_t w;
	memset(&w, 0, sizeof(w));
	w.srv = &srv;
	w.loop = S.loop;
	drp_upstream_init(&w.upstream, S.loop, 2.0);
	drp_s3tier_t *t = drp_s3tier_new(&srv, S.ucf, 3600);
	drp_s3tier_run(&w, t);
	/* Until the store has the listing (at most 10 s). */
	ev_timer tick;
	ev_timer_init(&tick, tick_cb, 0.01, 0.01);
	ev_timer_start(S.loop, &tick);
	for (unsigned i = 0; i < 1000 && seen_count() == 0; i++)
		ev_run(S.loop, EVRUN_ONCE);
	ev_timer_stop(S.loop, &tick);
	ck_assert_uint_eq(seen_count(), 1);
	ck_assert_str_eq(S.seen[0].target, "/bkt?prefix=blobs%2F&uploads=");

	drp_s3tier_worker_stop(t, &w);
	drp_s3tier_worker_stop(t, &w); /* once is enough */
	ev_run(S.loop, EVRUN_NOWAIT);
	pthread_mutex_lock(&S.lock);
	hold_released = true;
	pthread_cond_broadcast(&hold_cond);
	pthread_mutex_unlock(&S.lock);
	drp_s3tier_free(t);
	drp_upstream_fini(&w.upstream);
	ck_assert_uint_eq(seen_count(), 1);
}
END_TEST

Suite *s3call_suite(void)
{
	Suite *s = suite_create("s3call");
	TCase *tc = tcase_create("s3call");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, signed_calls);
	tcase_add_test(tc, file_body);
	tcase_add_test(tc, virtual_hosted);
	tcase_add_test(tc, streamed_get);
	tcase_add_test(tc, upload_small);
	tcase_add_test(tc, upload_multipart);
	tcase_add_test(tc, upload_failures);
	tcase_add_test(tc, upload_abort);
	tcase_add_test(tc, upload_gate);
	tcase_add_test(tc, sweep);
	tcase_add_test(tc, tier_sweep_worker_stop);
	suite_add_tcase(s, tc);
	return s;
}
