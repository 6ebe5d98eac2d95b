/* SPDX-License-Identifier: MIT */
/*
 * The upstream HTTP client (drp_fetch, drp_fetchbuf) over real sockets:
 * a fake upstream listens on 127.0.0.1 in a thread of the test (plain, or
 * TLS with a leaf forged by a test CA through the project's own server
 * sessions), answers from a script and records what it received; the
 * fetch runs on the test's libev loop as it does on a worker's. [resolve]
 * names the fake for up.test and other.test (loopback needs naming).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/conf.h"
#include "net/dns.h"
#include "upstream/fetch.h"
#include "upstream/fetchbuf.h"
#include "upstream/upstream.h"
#include "tls/ca.h"
#include "tls/session.h"
#include "loopback.h"

Suite *fetch_suite(void);

/* ---- the fake upstream ---- */

enum after { A_KEEP, A_CLOSE, A_HOLD };

typedef struct reply {
	const char *data; /* NULL: read the request, answer nothing, hold */
	size_t len;	  /* 0: strlen(data) */
	enum after after; /* A_HOLD: wait for the client to close */
} reply_t;

#define MAX_REQ 8

static struct fake {
	int stop[2];   /* written to end the fake's thread */
	int lfd, lfd2; /* lfd2: a second port, another origin */
	uint16_t port, port2;
	bool tls;
	bool silent; /* accept, never handshake or answer: wait for EOF */
	drp_leaf_t *leaf;
	pthread_t th;
	bool running;
	reply_t replies[MAX_REQ];
	pthread_mutex_t lock;
	unsigned accepts, requests, closes;
	unsigned replied; /* replies written in full */
	char heads[MAX_REQ][4096];
	drp_buf_t bodies[MAX_REQ];
	struct ev_loop *loop; /* the client's: woken on every event */
	ev_async wake;
} fk;

typedef struct fconn {
	int fd;
	drp_tls_t *t;
} fconn_t;

static void fk_event(void)
{
	ev_async_send(fk.loop, &fk.wake);
}

static ssize_t fc_read(fconn_t *c, void *buf, size_t len)
{
	if (c->t) {
		ssize_t n;
		while ((n = drp_tls_read(c->t, buf, len)) == -EAGAIN)
			;
		return n;
	}
	return recv(c->fd, buf, len, 0);
}

static bool fc_write(fconn_t *c, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = c->t ? drp_tls_write(c->t, p, len)
				 : send(c->fd, p, len, MSG_NOSIGNAL);
		if (n == -EAGAIN)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	while (c->t && drp_tls_out_pending(c->t))
		if (drp_tls_flush(c->t) < 0 && drp_tls_out_pending(c->t))
			return false;
	return true;
}

/* The request head, byte by byte (no read-ahead into the next one). */
static bool fc_read_head(fconn_t *c, char *out, size_t size)
{
	size_t n = 0;
	while (n + 1 < size) {
		if (fc_read(c, out + n, 1) != 1)
			return false;
		n++;
		out[n] = '\0';
		if (n >= 4 && memcmp(out + n - 4, "\r\n\r\n", 4) == 0)
			return true;
	}
	return false;
}

static void fc_read_body(fconn_t *c, const char *head, drp_buf_t *body)
{
	const char *cl = strcasestr(head, "\r\nContent-Length: ");
	char ch;
	if (cl) {
		unsigned long long n = strtoull(cl + 18, NULL, 10);
		while (n > 0 && fc_read(c, &ch, 1) == 1) {
			drp_buf_append(body, &ch, 1);
			n--;
		}
	} else if (strcasestr(head, "\r\nTransfer-Encoding: chunked")) {
		while (fc_read(c, &ch, 1) == 1) {
			drp_buf_append(body, &ch, 1);
			size_t l = drp_buf_pending(body);
			if (l >= 5 && memcmp(drp_buf_head(body) + l - 5,
					     "0\r\n\r\n", 5) == 0)
				break;
		}
	}
}

static void fc_wait_eof(fconn_t *c)
{
	char buf[4096];
	while (fc_read(c, buf, sizeof(buf)) > 0)
		;
}

static void serve(fconn_t *c)
{
	if (fk.silent) {
		char buf[4096];
		while (recv(c->fd, buf, sizeof(buf), 0) > 0)
			;
		return;
	}
	if (c->t) {
		int r;
		while ((r = drp_tls_handshake(c->t)) == -EAGAIN)
			;
		if (r < 0)
			return;
	}
	for (;;) {
		char head[4096];
		if (!fc_read_head(c, head, sizeof(head)))
			return;
		pthread_mutex_lock(&fk.lock);
		unsigned i = fk.requests < MAX_REQ ? fk.requests : MAX_REQ - 1;
		snprintf(fk.heads[i], sizeof(fk.heads[i]), "%s", head);
		pthread_mutex_unlock(&fk.lock);
		drp_buf_t body = {0};
		fc_read_body(c, head, &body);
		pthread_mutex_lock(&fk.lock);
		fk.bodies[i] = body;
		fk.requests++;
		pthread_mutex_unlock(&fk.lock);
		fk_event();
		reply_t *r = &fk.replies[i];
		if (r->data == NULL) {
			fc_wait_eof(c);
			return;
		}
		if (!fc_write(c, r->data, r->len ? r->len : strlen(r->data)))
			return;
		pthread_mutex_lock(&fk.lock);
		fk.replied++;
		pthread_mutex_unlock(&fk.lock);
		fk_event();
		if (r->after == A_CLOSE)
			return;
		if (r->after == A_HOLD) {
			fc_wait_eof(c);
			return;
		}
	}
}

static void *fake_main(void *arg)
{
	for (;;) {
		struct pollfd pf[3] = {{.fd = fk.lfd, .events = POLLIN},
				       {.fd = fk.lfd2, .events = POLLIN},
				       {.fd = fk.stop[0], .events = POLLIN}};
		if (poll(pf, 3, -1) < 0 || pf[2].revents)
			break;
		int fd = accept(pf[0].revents ? fk.lfd : fk.lfd2, NULL, NULL);
		if (fd < 0)
			break;
		pthread_mutex_lock(&fk.lock);
		fk.accepts++;
		pthread_mutex_unlock(&fk.lock);
		fk_event();
		fconn_t c = {.fd = fd};
		if (fk.tls && !fk.silent)
			c.t = drp_tls_server_new(fd, fk.leaf->cred);
		serve(&c);
		if (c.t)
			drp_tls_free(c.t);
		close(fd);
		pthread_mutex_lock(&fk.lock);
		fk.closes++;
		pthread_mutex_unlock(&fk.lock);
		fk_event();
	}
	drp_tls_thread_done();
	return NULL;
}

static unsigned fk_get(unsigned *field)
{
	pthread_mutex_lock(&fk.lock);
	unsigned v = *field;
	pthread_mutex_unlock(&fk.lock);
	return v;
}

/* ---- the client side: a loop's context and a generation's rules ---- */

static char tmpdir[PATH_MAX];
static drp_ca_t *ca;
static drp_forge_t *forge;
static drp_upstream_t up;
static drp_upstream_conf_t *ucf;
static bool expired;
static ev_timer deadline;

static void wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
}

static void deadline_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	expired = true;
}

/* Run the loop until *flag (or the fake's counter) says so. */
#define RUN_UNTIL(cond)                                                        \
	do {                                                                   \
		expired = false;                                               \
		ev_timer_set(&deadline, 10., 0.);                              \
		ev_timer_start(up.loop, &deadline);                            \
		while (!(cond) && !expired)                                    \
			ev_run(up.loop, EVRUN_ONCE);                           \
		ev_timer_stop(up.loop, &deadline);                             \
		ck_assert_msg(!expired, "timed out waiting for: %s", #cond);   \
	} while (0)

/* Stop accepting (the fake's thread ends): connections are refused. */
static void stop_listening(void)
{
	shutdown(fk.lfd, SHUT_RDWR);
	shutdown(fk.lfd2, SHUT_RDWR);
	close(fk.lfd);
	close(fk.lfd2);
	fk.lfd = fk.lfd2 = -1;
}

static void setup_with(bool tls, const char *extra_conf)
{
	memset(&fk, 0, sizeof(fk));
	pthread_mutex_init(&fk.lock, NULL);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/drp-test-fetch-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	char err[256] = "";
	ca = drp_ca_open(tmpdir, err, sizeof(err));
	ck_assert_msg(ca != NULL, "%s", err);
	forge = drp_forge_new(ca, err, sizeof(err));
	ck_assert_msg(forge != NULL, "%s", err);
	char cafile[PATH_MAX + 16];
	snprintf(cafile, sizeof(cafile), "%s/trust.pem", tmpdir);
	size_t plen;
	const char *pem = drp_ca_pem(ca, &plen);
	FILE *fp = fopen(cafile, "w");
	ck_assert_ptr_nonnull(fp);
	ck_assert_uint_eq(fwrite(pem, 1, plen, fp), plen);
	fclose(fp);
	/* up.test and bad.test lead to the fake; the leaf names up.test. */
	fk.leaf = drp_forge_get(forge, "up.test");
	ck_assert_ptr_nonnull(fk.leaf);
	fk.tls = tls;

	ck_assert_int_eq(pipe2(fk.stop, O_CLOEXEC), 0);
	fk.lfd = test_listen_loopback(16, &fk.port);
	fk.lfd2 = test_listen_loopback(16, &fk.port2);

	char text[8192];
	snprintf(text, sizeof(text),
		 "[proxy]\nupstream_ca_file = %s\n%s\n"
		 "[resolve]\nup.test = 127.0.0.1\n"
		 "bad.test = 127.0.0.1\n",
		 cafile, extra_conf ? extra_conf : "");
	drp_conf_errors_t errs = {0};
	drp_conf_t *conf = drp_conf_load_string("test.ini", text, &errs);
	for (unsigned i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.msg[i]);
	ck_assert_ptr_nonnull(conf);
	drp_conf_errors_free(&errs);
	ucf = drp_upstream_conf_new(conf, err, sizeof(err));
	ck_assert_msg(ucf != NULL, "%s", err);
	drp_conf_free(conf);

	memset(&up, 0, sizeof(up));
	up.loop = ev_loop_new(EVFLAG_AUTO);
	fk.loop = up.loop;
	ev_async_init(&fk.wake, wake_cb);
	ev_async_start(up.loop, &fk.wake);
	ev_init(&deadline, deadline_cb);
}

static void start_fake(void)
{
	ck_assert_int_eq(pthread_create(&fk.th, NULL, fake_main, NULL), 0);
	fk.running = true;
}

static int rm_cb(const char *path, const struct stat *st, int flag,
		 struct FTW *ftw)
{
	return remove(path);
}

static void teardown(void)
{
	drp_fetch_pool_flush(&up);
	stop_listening();
	if (fk.running) {
		ck_assert_int_eq(write(fk.stop[1], "x", 1), 1);
		pthread_join(fk.th, NULL);
	}
	close(fk.stop[0]);
	close(fk.stop[1]);
	for (unsigned i = 0; i < MAX_REQ; i++)
		drp_buf_free(&fk.bodies[i]);
	drp_upstream_conf_unref(ucf);
	ev_loop_destroy(up.loop);
	drp_leaf_unref(fk.leaf);
	drp_forge_free(forge);
	drp_ca_free(ca);
	nftw(tmpdir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static void setup_plain(void)
{
	setup_with(false, NULL);
}

static void setup_tls(void)
{
	setup_with(true, NULL);
}

/* Short timeouts, for the stall tests. */
static void setup_plain_short(void)
{
	setup_with(false, "body_timeout = 0.2\nconnect_timeout = 0.2\n");
}

static void setup_tls_short(void)
{
	setup_with(true, "handshake_timeout = 0.2\n");
}

/* ---- a recording sink ---- */

typedef struct rec {
	unsigned heads, bodies, dones, req_rooms;
	int status;
	enum drp_http_body_mode mode;
	uint64_t length;
	char location[256];
	drp_buf_t body;
	int err, http_status;
	char reason[512];
	size_t room;	 /* what room() says; SIZE_MAX by default */
	size_t pause_at; /* room() says 0 once this much arrived */
	/* The sink cancels the fetch from inside this callback. */
	enum {
		CANCEL_NONE,
		CANCEL_IN_HEAD,
		CANCEL_IN_BODY,
		CANCEL_IN_DONE
	} cancel_in;
	bool refused;
	int up_status;
	uint64_t bytes_up;
	size_t max_piece; /* the largest body() */
	drp_fetch_t *f;
} rec_t;

static void rec_head(void *arg, const drp_http_msg_t *resp,
		     enum drp_http_body_mode mode, uint64_t length)
{
	rec_t *r = arg;
	r->heads++;
	r->status = resp->status;
	r->mode = mode;
	r->length = length;
	r->refused = drp_fetch_refused(r->f);
	r->up_status = drp_fetch_upstream_status(r->f);
	const drp_http_header_t *h = drp_http_find(resp, "Location");
	if (h)
		snprintf(r->location, sizeof(r->location), "%.*s",
			 (int)h->value_len, h->value);
	if (r->cancel_in == CANCEL_IN_HEAD) {
		drp_fetch_cancel(r->f);
		r->f = NULL;
	}
}

static size_t rec_room(void *arg)
{
	rec_t *r = arg;
	return r->room;
}

static void rec_body(void *arg, const char *data, size_t len)
{
	rec_t *r = arg;
	ck_assert_uint_le(len, r->room);
	r->bodies++;
	if (len > r->max_piece)
		r->max_piece = len;
	drp_buf_append(&r->body, data, len);
	if (r->pause_at && drp_buf_pending(&r->body) >= r->pause_at)
		r->room = 0;
	if (r->cancel_in == CANCEL_IN_BODY) {
		drp_fetch_cancel(r->f);
		r->f = NULL;
	}
}

static void rec_req_room(void *arg)
{
	rec_t *r = arg;
	r->req_rooms++;
}

static void rec_done(void *arg, int err, int http_status, const char *reason)
{
	rec_t *r = arg;
	r->dones++;
	r->err = err;
	r->http_status = http_status;
	snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "");
	/* The fetch is freed only after done() returns. */
	r->bytes_up = drp_fetch_bytes_up(r->f);
	if (r->cancel_in == CANCEL_IN_DONE)
		drp_fetch_cancel(r->f); /* still freed once, after done() */
	r->f = NULL;
}

static const drp_fetch_sink_t rec_sink = {
	.head = rec_head,
	.room = rec_room,
	.body = rec_body,
	.req_room = rec_req_room,
	.done = rec_done,
};

static void rec_init(rec_t *r)
{
	memset(r, 0, sizeof(*r));
	r->room = SIZE_MAX;
}

static drp_fetch_req_t req_get(const char *host, const char *target)
{
	drp_fetch_req_t q = {
		.tls = fk.tls,
		.host = host,
		.port = fk.port,
		.method = "GET",
		.target = target,
		.headers = "Accept: */*\r\n",
		.headers_len = 13,
		.body_mode = DRP_HTTP_BODY_NONE,
		.follow_redirects = true,
		.conn_id = 7,
	};
	return q;
}

static drp_fetch_t *go(rec_t *r, const drp_fetch_req_t *q)
{
	r->f = drp_fetch_new(&up, ucf, q, &rec_sink, r);
	drp_fetch_start(r->f);
	return r->f;
}

/* A GET of target on host (req_get) into a fresh recorder, started. */
static drp_fetch_t *get(rec_t *r, const char *host, const char *target)
{
	rec_init(r);
	drp_fetch_req_t q = req_get(host, target);
	return go(r, &q);
}

/* The same, run until its done(). */
static void get_done(rec_t *r, const char *host, const char *target)
{
	get(r, host, target);
	RUN_UNTIL(r->dones == 1);
}

/* The common case: the fake answers one request with reply; the fetch
 * of target on up.test runs until its done(). */
static void fetch_one(rec_t *r, reply_t reply, const char *target)
{
	fk.replies[0] = reply;
	start_fake();
	get_done(r, "up.test", target);
}

static char *body_str(rec_t *r)
{
	static char s[4096];
	snprintf(s, sizeof(s), "%.*s", (int)drp_buf_pending(&r->body),
		 drp_buf_head(&r->body));
	return s;
}

/* ---- the tests ---- */

START_TEST(plain_length)
{
	fk.replies[0] =
		(reply_t){.data = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
				  "X-A: b\r\n\r\nhello"};
	start_fake();
	rec_t r;
	drp_fetch_t *f = get(&r, "up.test", "/v2/x/manifests/1?a=b");
	ck_assert_str_eq(drp_fetch_host(f), "up.test");
	ck_assert_str_eq(drp_fetch_method(f), "GET");
	ck_assert_str_eq(drp_fetch_target(f), "/v2/x/manifests/1?a=b");
	ck_assert_uint_eq(drp_fetch_conn_id(f), 7);
	/* Plain http is never an origin credentials may go to. */
	ck_assert(!drp_fetch_at_origin(f));
	/* Nothing is called back from the starter. */
	ck_assert_uint_eq(r.heads + r.dones, 0);
	RUN_UNTIL(r.dones == 1);
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(r.mode, DRP_HTTP_BODY_LENGTH);
	ck_assert_uint_eq(r.length, 5);
	ck_assert_str_eq(body_str(&r), "hello");
	ck_assert_uint_eq(r.bytes_up, 5);
	ck_assert(!r.refused);
	ck_assert_int_eq(r.up_status, 200);
	char want[256];
	snprintf(want, sizeof(want),
		 "GET /v2/x/manifests/1?a=b HTTP/1.1\r\nHost: up.test:%u\r\n"
		 "Accept: */*\r\n\r\n",
		 fk.port);
	ck_assert_str_eq(fk.heads[0], want);
	drp_buf_free(&r.body);
}
END_TEST

START_TEST(chunked_body)
{
	rec_t r;
	fetch_one(&r,
		  (reply_t){.data = "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
				    "chunked\r\n\r\n"
				    "5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nT: "
				    "1\r\n\r\n"},
		  "/c");
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_eq(r.mode, DRP_HTTP_BODY_CHUNKED);
	/* Decoded payload, never the framing. */
	ck_assert_str_eq(body_str(&r), "hello world");
	drp_buf_free(&r.body);
}
END_TEST

START_TEST(eof_delimited_body)
{
	rec_t r;
	fetch_one(&r,
		  (reply_t){.data = "HTTP/1.0 200 OK\r\n\r\nuntil the end",
			    .after = A_CLOSE},
		  "/e");
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_eq(r.mode, DRP_HTTP_BODY_EOF);
	ck_assert_str_eq(body_str(&r), "until the end");
	/* Not pooled: the upstream closed it. */
	ck_assert_uint_eq(up.n_idle, 0);
	drp_buf_free(&r.body);
}
END_TEST

START_TEST(keepalive_reuse)
{
	fk.replies[0] = (reply_t){
		.data = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"};
	fk.replies[1] = (reply_t){
		.data = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"};
	fk.replies[2] =
		(reply_t){.data = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
				  "Connection: close\r\n\r\nc"};
	fk.replies[3] = (reply_t){
		.data = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nd"};
	start_fake();
	const char *want = "abcd";
	for (unsigned i = 0; i < 4; i++) {
		rec_t r;
		get_done(&r, "up.test", "/k");
		ck_assert_int_eq(r.err, 0);
		ck_assert_uint_eq(drp_buf_pending(&r.body), 1);
		ck_assert_int_eq(drp_buf_head(&r.body)[0], want[i]);
		drp_buf_free(&r.body);
		/* "Connection: close" is not pooled. */
		ck_assert_uint_eq(up.n_idle, i == 2 ? 0 : 1);
	}
	/* Three requests on the first connection, the fourth on a new one:
	 * counted by the upstream. */
	ck_assert_uint_eq(fk_get(&fk.requests), 4);
	ck_assert_uint_eq(fk_get(&fk.accepts), 2);
	drp_fetch_pool_flush(&up);
	ck_assert_uint_eq(up.n_idle, 0);
	RUN_UNTIL(fk_get(&fk.closes) == 2);
}
END_TEST

START_TEST(pooled_conn_closed_by_server)
{
	/* The server closes a pooled connection: it leaves the pool. */
	fk.replies[0] = (reply_t){
		.data = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na",
		.after = A_CLOSE};
	fk.replies[1] = (reply_t){
		.data = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"};
	start_fake();
	rec_t r;
	get_done(&r, "up.test", "/k");
	ck_assert_uint_eq(up.n_idle, 1);
	RUN_UNTIL(up.n_idle == 0);
	drp_buf_free(&r.body);
	get_done(&r, "up.test", "/k");
	ck_assert_int_eq(r.err, 0);
	ck_assert_str_eq(body_str(&r), "b");
	ck_assert_uint_eq(fk_get(&fk.accepts), 2);
	drp_buf_free(&r.body);
}
END_TEST

START_TEST(stale_pooled_conn_retried)
{
	/* A pooled connection that dies while the next request is on its
	 * way: retried once on a fresh connection, transparently. The
	 * fake answers the first request and then reads the second without
	 * answering; closing it then is what a server's idle close looks
	 * like to the client. */
	fk.replies[0] = (reply_t){
		.data = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"};
	fk.replies[1] = (reply_t){.data = "", .after = A_CLOSE};
	fk.replies[2] = (reply_t){
		.data = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc"};
	start_fake();
	rec_t r;
	get_done(&r, "up.test", "/k");
	drp_buf_free(&r.body);
	get_done(&r, "up.test", "/k");
	ck_assert_int_eq(r.err, 0);
	ck_assert_str_eq(body_str(&r), "c");
	ck_assert_uint_eq(fk_get(&fk.requests), 3);
	ck_assert_uint_eq(fk_get(&fk.accepts), 2);
	drp_buf_free(&r.body);
}
END_TEST

START_TEST(closed_mid_body)
{
	rec_t r;
	fetch_one(&r,
		  (reply_t){.data = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
				    "\r\n0123456789",
			    .after = A_CLOSE},
		  "/m");
	ck_assert_uint_eq(r.heads, 1);
	ck_assert_int_eq(r.err, -EPIPE);
	ck_assert_int_eq(r.http_status, 502);
	ck_assert_str_eq(body_str(&r), "0123456789");
	ck_assert_str_eq(r.reason, "upstream closed the connection mid-body "
				   "after 10 bytes");
	ck_assert_uint_eq(r.bytes_up, 10);
	drp_buf_free(&r.body);
}
END_TEST

START_TEST(closed_without_response)
{
	rec_t r;
	fetch_one(&r, (reply_t){.data = "", .after = A_CLOSE}, "/m");
	ck_assert_uint_eq(r.heads, 0);
	ck_assert_int_eq(r.err, -EPIPE);
	ck_assert_int_eq(r.http_status, 502);
	ck_assert_str_eq(r.reason,
			 "upstream closed the connection without a response");
}
END_TEST

START_TEST(malformed_answers)
{
	static const struct {
		const char *reply;
		const char *reason;
	} cases[] = {
		{"HTTP/1.1 2x0 OK\r\n\r\n",
		 "malformed response head from upstream"},
		/* Both framings: refused by the head parser already. */
		{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
		 "Transfer-Encoding: chunked\r\n\r\n",
		 "malformed response head from upstream"},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		 "malformed chunked body from upstream"},
	};
	for (unsigned i = 0; i < 3; i++)
		fk.replies[i] =
			(reply_t){.data = cases[i].reply, .after = A_HOLD};
	start_fake();
	for (unsigned i = 0; i < 3; i++) {
		rec_t r;
		get_done(&r, "up.test", "/bad");
		ck_assert_int_eq(r.err, -EPROTO);
		ck_assert_int_eq(r.http_status, 502);
		ck_assert_str_eq(r.reason, cases[i].reason);
		drp_buf_free(&r.body);
	}
	/* None of these connections went back to the pool. */
	ck_assert_uint_eq(up.n_idle, 0);
	RUN_UNTIL(fk_get(&fk.closes) == 3);
}
END_TEST

START_TEST(interim_response_skipped)
{
	rec_t r;
	fetch_one(&r,
		  (reply_t){.data = "HTTP/1.1 100 Continue\r\n\r\n"
				    "HTTP/1.1 204 No Content\r\n\r\n"},
		  "/i");
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_eq(r.status, 204);
	ck_assert_uint_eq(r.heads, 1);
}
END_TEST

START_TEST(body_stall_times_out)
{
	rec_t r;
	fetch_one(&r,
		  (reply_t){.data = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
				    "\r\n0123456789",
			    .after = A_HOLD},
		  "/s");
	ck_assert_uint_eq(r.heads, 1);
	ck_assert_int_eq(r.err, -ETIMEDOUT);
	ck_assert_int_eq(r.http_status, 504);
	ck_assert_str_eq(r.reason, "upstream body stalled");
	/* The connection was closed, not pooled: the upstream sees EOF. */
	RUN_UNTIL(fk_get(&fk.closes) == 1);
	drp_buf_free(&r.body);
}
END_TEST

START_TEST(response_stall_times_out)
{
	rec_t r;
	fetch_one(&r, (reply_t){.data = NULL}, "/s");
	ck_assert_uint_eq(r.heads, 0);
	ck_assert_int_eq(r.err, -ETIMEDOUT);
	ck_assert_int_eq(r.http_status, 504);
	ck_assert_str_eq(r.reason, "upstream response timed out");
	RUN_UNTIL(fk_get(&fk.closes) == 1);
}
END_TEST

START_TEST(connect_refused)
{
	/* Nothing listens on the fake's port once it is closed. */
	stop_listening();
	rec_t r;
	get_done(&r, "up.test", "/r");
	ck_assert_int_eq(r.err, -EHOSTUNREACH);
	ck_assert_int_eq(r.http_status, 502);
	ck_assert_ptr_nonnull(strstr(r.reason, "cannot connect to up.test"));
}
END_TEST

/* Back-pressure: a sink without room stops the reading, also for longer
 * than body_timeout (a paused client is not a stalled upstream), and the
 * whole body arrives once it has room again. */
#define BIG (1024 * 1024)
static char *big_reply(size_t *len)
{
	char head[128];
	int hl = snprintf(head, sizeof(head),
			  "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", BIG);
	char *p = malloc((size_t)hl + BIG);
	memcpy(p, head, (size_t)hl);
	for (size_t i = 0; i < BIG; i++)
		p[hl + i] = (char)('a' + i % 23);
	*len = (size_t)hl + BIG;
	return p;
}

typedef struct pause_state {
	rec_t *r;
	bool fired;
} pause_state_t;

static void unpause_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	pause_state_t *ps = t->data;
	ps->fired = true;
}

START_TEST(back_pressure)
{
	size_t len;
	char *data = big_reply(&len);
	fk.replies[0] = (reply_t){.data = data, .len = len};
	start_fake();
	rec_t r;
	rec_init(&r);
	r.room = 1000;
	r.pause_at = 100000;
	drp_fetch_req_t q = req_get("up.test", "/big");
	drp_fetch_t *f = go(&r, &q);
	RUN_UNTIL(r.room == 0);
	size_t at_pause = drp_buf_pending(&r.body);
	ck_assert_uint_lt(at_pause, BIG);
	/* Longer than body_timeout (0.2 s): nothing arrives, nothing
	 * fails. */
	pause_state_t ps = {&r, false};
	ev_timer t;
	ev_timer_init(&t, unpause_cb, 0.5, 0.);
	t.data = &ps;
	ev_timer_start(up.loop, &t);
	RUN_UNTIL(ps.fired);
	ck_assert_uint_eq(r.dones, 0);
	ck_assert_uint_eq(drp_buf_pending(&r.body), at_pause);
	r.room = 100000;
	r.pause_at = 0;
	drp_fetch_resume(f);
	RUN_UNTIL(r.dones == 1);
	ck_assert_int_eq(r.err, 0);
	ck_assert_uint_eq(drp_buf_pending(&r.body), BIG);
	ck_assert(memcmp(drp_buf_head(&r.body), data + len - BIG, BIG) == 0);
	drp_buf_free(&r.body);
	free(data);
}
END_TEST

/* Request bodies: Content-Length and chunked uploads, with bounded
 * buffering. */
START_TEST(upload_bodies)
{
	fk.replies[0] = (reply_t){
		.data = "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"};
	fk.replies[1] = (reply_t){
		.data = "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"};
	start_fake();
	for (unsigned i = 0; i < 2; i++) {
		rec_t r;
		rec_init(&r);
		drp_fetch_req_t q = req_get("up.test", "/up");
		q.method = "PUT";
		q.body_mode =
			i == 0 ? DRP_HTTP_BODY_LENGTH : DRP_HTTP_BODY_CHUNKED;
		q.body_len = i == 0 ? 11 : 0;
		drp_fetch_t *f = go(&r, &q);
		ck_assert_uint_gt(drp_fetch_body_room(f), 11);
		ck_assert_uint_eq(drp_fetch_send_body(f, "hello", 5), 5);
		RUN_UNTIL(r.req_rooms > 0);
		ck_assert_uint_eq(drp_fetch_send_body(f, " world", 6), 6);
		drp_fetch_end_body(f);
		drp_fetch_end_body(f); /* twice is harmless */
		ck_assert_uint_eq(drp_fetch_send_body(f, "x", 1), 0);
		ck_assert_uint_eq(drp_fetch_body_room(f), 0);
		RUN_UNTIL(r.dones == 1);
		ck_assert_int_eq(r.err, 0);
		ck_assert_int_eq(r.status, i == 0 ? 201 : 202);
		pthread_mutex_lock(&fk.lock);
		drp_buf_t *b = &fk.bodies[i];
		char got[64];
		snprintf(got, sizeof(got), "%.*s", (int)drp_buf_pending(b),
			 drp_buf_head(b));
		pthread_mutex_unlock(&fk.lock);
		ck_assert_str_eq(got, i == 0 ? "hello world"
					     : "5\r\nhello\r\n6\r\n world\r\n"
					       "0\r\n\r\n");
		ck_assert_ptr_nonnull(strstr(
			fk.heads[i], i == 0 ? "\r\nContent-Length: 11\r\n"
					    : "\r\nTransfer-Encoding: "
					      "chunked\r\n"));
	}
	/* Both on one connection. */
	ck_assert_uint_eq(fk_get(&fk.accepts), 1);
}
END_TEST

START_TEST(extra_bytes_not_pooled)
{
	/* More than Content-Length said: the body ends where it said, and a
	 * connection with bytes of unknown purpose is not reused. */
	rec_t r;
	fetch_one(&r,
		  (reply_t){.data = "HTTP/1.1 200 OK\r\nContent-Length: "
				    "1\r\n\r\nab"},
		  "/x");
	ck_assert_int_eq(r.err, 0);
	ck_assert_str_eq(body_str(&r), "a");
	ck_assert_uint_eq(up.n_idle, 0);
	RUN_UNTIL(fk_get(&fk.closes) == 1);
	drp_buf_free(&r.body);
}
END_TEST

START_TEST(dns_policy_refuses_loopback)
{
	/* Without a [resolve] entry a name goes to DNS, and loopback is
	 * not an address the proxy may connect to. */
	up.dns = drp_dns_new(up.loop, 2.0);
	ck_assert_ptr_nonnull(up.dns);
	rec_t r;
	get_done(&r, "localhost", "/x");
	ck_assert_int_eq(r.err, -EACCES);
	ck_assert_int_eq(r.http_status, 502);
	ck_assert_ptr_nonnull(strstr(r.reason, "localhost resolves only to "
					       "addresses the proxy may not "
					       "connect to"));
	/* Cancel while resolving: no callback. */
	drp_fetch_t *f = get(&r, "localhost", "/x");
	ev_run(up.loop, EVRUN_ONCE); /* the deferred start: the query */
	ck_assert_uint_eq(r.dones, 0);
	drp_fetch_cancel(f);
	ev_run(up.loop, EVRUN_NOWAIT);
	ck_assert_uint_eq(r.dones, 0);
	drp_dns_free(up.dns);
	up.dns = NULL;
}
END_TEST

/* ---- redirects and credentials ---- */

typedef struct deco {
	unsigned calls;
	bool at_origin[4];
	char host[4][64];
	bool add_auth;
	/* challenge() */
	unsigned challenges;
	enum drp_fetch_auth answer[3];
	bool fail_in_challenge;
	unsigned releases;
} deco_t;

static void deco_decorate(void *arg, drp_fetch_t *f, drp_buf_t *headers)
{
	deco_t *d = arg;
	if (d->calls < 4) {
		d->at_origin[d->calls] = drp_fetch_at_origin(f);
		snprintf(d->host[d->calls], sizeof(d->host[0]), "%s",
			 drp_fetch_host(f));
	}
	d->calls++;
	if (d->add_auth && drp_fetch_at_origin(f))
		drp_buf_printf(headers, "Authorization: Bearer hooked\r\n");
}

static enum drp_fetch_auth deco_challenge(void *arg, drp_fetch_t *f,
					  const drp_http_msg_t *resp)
{
	deco_t *d = arg;
	ck_assert_int_eq(resp->status, 401);
	ck_assert_ptr_nonnull(drp_http_find(resp, "WWW-Authenticate"));
	if (d->fail_in_challenge)
		drp_fetch_auth_fail(f, 403, "denied by the hook");
	return d->answer[d->challenges++ % 3];
}

static void deco_release(void *arg, drp_fetch_t *f)
{
	deco_t *d = arg;
	d->releases++;
}

static void hook(drp_fetch_t *f, deco_t *d)
{
	drp_fetch_hooks_t h = {.decorate = deco_decorate,
			       .challenge = deco_challenge,
			       .release = deco_release,
			       .arg = d};
	drp_fetch_set_hooks(f, &h);
}

static char redir_buf[4][256];
static const char *redirect_to(unsigned i, const char *path, uint16_t port)
{
	char loc[128];
	snprintf(loc, sizeof(loc), "https://up.test:%u%s", port, path);
	snprintf(redir_buf[i], sizeof(redir_buf[i]),
		 "HTTP/1.1 307 Temporary Redirect\r\nLocation: %s\r\n"
		 "Content-Length: 4\r\n\r\nmove",
		 loc);
	return redir_buf[i];
}

static const char *ok_x = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";

/* A redirect to the same origin keeps the credentials; to another one
 * (other host, or plain http) drops them for the rest of the exchange,
 * also when a later redirect comes back. */
START_TEST(redirect_credentials)
{
	/* The same host on another port is another origin. */
	fk.replies[0] = (reply_t){.data = redirect_to(0, "/same", fk.port)};
	fk.replies[1] = (reply_t){.data = redirect_to(1, "/cdn", fk.port2)};
	fk.replies[2] = (reply_t){.data = redirect_to(2, "/back", fk.port)};
	fk.replies[3] = (reply_t){.data = ok_x};
	start_fake();
	rec_t r;
	rec_init(&r);
	deco_t d = {.add_auth = true};
	drp_fetch_req_t q = req_get("up.test", "/v2/x/blobs/sha256:1");
	q.headers = "Authorization: Basic Y2xpZW50\r\nAccept: */*\r\n";
	q.headers_len = strlen(q.headers);
	drp_fetch_t *f = go(&r, &q);
	hook(f, &d);
	RUN_UNTIL(r.dones == 1);
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(body_str(&r), "x");
	ck_assert_uint_eq(d.calls, 4);
	ck_assert(d.at_origin[0] && d.at_origin[1]);
	ck_assert(!d.at_origin[2] && !d.at_origin[3]);
	ck_assert_str_eq(d.host[2], "up.test");
	/* What the upstream received. */
	ck_assert_ptr_nonnull(strstr(fk.heads[0], "GET /v2/x/blobs/sha256:1 "));
	for (unsigned i = 0; i < 2; i++) {
		ck_assert_ptr_nonnull(
			strstr(fk.heads[i], "Authorization: Basic Y2xpZW50"));
		ck_assert_ptr_nonnull(
			strstr(fk.heads[i], "Authorization: Bearer hooked"));
	}
	ck_assert_ptr_nonnull(strstr(fk.heads[1], "GET /same "));
	ck_assert_ptr_nonnull(strstr(fk.heads[2], "GET /cdn "));
	char host2[64];
	snprintf(host2, sizeof(host2), "Host: up.test:%u\r\n", fk.port2);
	ck_assert_ptr_nonnull(strstr(fk.heads[2], host2));
	for (unsigned i = 2; i < 4; i++)
		ck_assert_ptr_null(strstr(fk.heads[i], "Authorization"));
	ck_assert_ptr_nonnull(strstr(fk.heads[3], "Accept: */*"));
	/* Redirect bodies are not drained: each hop a new connection. */
	ck_assert_uint_eq(fk_get(&fk.accepts), 4);
	ck_assert_uint_eq(d.releases, 1);
	drp_buf_free(&r.body);
}
END_TEST

START_TEST(redirect_relative_and_limits)
{
	/* A relative Location: same origin. */
	fk.replies[0] =
		(reply_t){.data = "HTTP/1.1 302 Found\r\nLocation: /rel\r\n"
				  "Content-Length: 0\r\n\r\n"};
	fk.replies[1] = (reply_t){.data = ok_x};
	start_fake();
	rec_t r;
	rec_init(&r);
	deco_t d = {0};
	drp_fetch_req_t q = req_get("up.test", "/a");
	drp_fetch_t *f = go(&r, &q);
	hook(f, &d);
	RUN_UNTIL(r.dones == 1);
	ck_assert_int_eq(r.err, 0);
	ck_assert_ptr_nonnull(strstr(fk.heads[1], "GET /rel "));
	ck_assert(d.at_origin[1]);
	drp_buf_free(&r.body);
}
END_TEST

START_TEST(redirect_to_http)
{
	/* A redirect to plain http: followed, without credentials. */
	static char buf[256];
	snprintf(buf, sizeof(buf),
		 "HTTP/1.1 302 F\r\nLocation: http://up.test:%u/plain\r\n"
		 "Content-Length: 0\r\n\r\n",
		 fk.port2);
	fk.replies[0] = (reply_t){.data = buf};
	fk.replies[1] = (reply_t){.data = ok_x};
	start_fake();
	rec_t r;
	rec_init(&r);
	drp_fetch_req_t q = req_get("up.test", "/a");
	q.headers = "Authorization: Basic Y2xpZW50\r\n";
	q.headers_len = strlen(q.headers);
	go(&r, &q);
	RUN_UNTIL(r.dones == 1);
	ck_assert_int_eq(r.err, 0);
	ck_assert_ptr_nonnull(strstr(fk.heads[0], "Authorization"));
	ck_assert_ptr_nonnull(strstr(fk.heads[1], "GET /plain "));
	ck_assert_ptr_null(strstr(fk.heads[1], "Authorization"));
	drp_buf_free(&r.body);
}
END_TEST

START_TEST(redirect_not_followed)
{
	/* follow_redirects off: the 3xx goes to the sink as it is. */
	fk.replies[0] =
		(reply_t){.data = "HTTP/1.1 307 T\r\nLocation: /elsewhere\r\n"
				  "Content-Length: 0\r\n\r\n"};
	start_fake();
	rec_t r;
	rec_init(&r);
	drp_fetch_req_t q = req_get("up.test", "/a");
	q.follow_redirects = false;
	go(&r, &q);
	RUN_UNTIL(r.dones == 1);
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_eq(r.status, 307);
	ck_assert_str_eq(r.location, "/elsewhere");
	ck_assert_uint_eq(fk_get(&fk.requests), 1);
}
END_TEST

START_TEST(redirect_errors)
{
	static const char *const loc[] = {
		"ftp://up.test/x",
		"http://bad host/x",
	};
	static const char *const reason[] = {
		"unsupported redirect Location",
		"bad redirect Location",
	};
	static char buf[2][256];
	for (unsigned i = 0; i < 2; i++) {
		snprintf(buf[i], sizeof(buf[i]),
			 "HTTP/1.1 301 M\r\nLocation: %s\r\n"
			 "Content-Length: 0\r\n\r\n",
			 loc[i]);
		fk.replies[i] = (reply_t){.data = buf[i], .after = A_HOLD};
	}
	start_fake();
	for (unsigned i = 0; i < 2; i++) {
		rec_t r;
		get_done(&r, "up.test", "/a");
		ck_assert_int_eq(r.err, -EINVAL);
		ck_assert_int_eq(r.http_status, 502);
		ck_assert_str_eq(r.reason, reason[i]);
	}
}
END_TEST

START_TEST(redirect_loop)
{
	for (unsigned i = 0; i < MAX_REQ; i++)
		fk.replies[i] = (reply_t){
			.data = "HTTP/1.1 302 F\r\nLocation: /again\r\n"
				"Content-Length: 0\r\n\r\n",
			.after = A_HOLD};
	start_fake();
	rec_t r;
	get_done(&r, "up.test", "/a");
	ck_assert_int_eq(r.err, -ELOOP);
	ck_assert_str_eq(r.reason, "too many redirects");
	/* The first request and five redirects. */
	ck_assert_uint_eq(fk_get(&fk.requests), 6);
}
END_TEST

/* ---- 401 challenges ---- */

static const char *unauth = "HTTP/1.1 401 Unauthorized\r\n"
			    "WWW-Authenticate: Bearer realm=\"x\"\r\n"
			    "Content-Length: 0\r\n\r\n";

START_TEST(challenge_retried_once)
{
	/* OK: retried at once, with what decorate adds; a second 401 passes
	 * to the sink (one retry per fetch). */
	fk.replies[0] = (reply_t){.data = unauth};
	fk.replies[1] = (reply_t){.data = unauth};
	start_fake();
	rec_t r;
	rec_init(&r);
	deco_t d = {.answer = {DRP_FETCH_AUTH_OK, DRP_FETCH_AUTH_OK}};
	drp_fetch_req_t q = req_get("up.test", "/v2/");
	drp_fetch_t *f = go(&r, &q);
	hook(f, &d);
	RUN_UNTIL(r.dones == 1);
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_eq(r.status, 401);
	ck_assert_uint_eq(d.challenges, 2);
	ck_assert_uint_eq(d.calls, 2);
	ck_assert_uint_eq(fk_get(&fk.requests), 2);
	/* A 401 is not a refusal. */
	ck_assert_uint_eq(d.releases, 1);
}
END_TEST

typedef struct pend {
	drp_fetch_t *f;
	deco_t *d;
	bool fail;
	ev_timer t;
} pend_t;

static void pend_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	pend_t *p = t->data;
	if (p->fail)
		drp_fetch_auth_fail(p->f, 403, "no credentials for you");
	else {
		p->d->add_auth = true;
		drp_fetch_retry(p->f);
	}
}

START_TEST(challenge_pending_then_retry)
{
	fk.replies[0] = (reply_t){.data = unauth};
	fk.replies[1] = (reply_t){.data = ok_x};
	start_fake();
	rec_t r;
	rec_init(&r);
	deco_t d = {.answer = {DRP_FETCH_AUTH_PENDING}};
	drp_fetch_req_t q = req_get("up.test", "/v2/");
	drp_fetch_t *f = go(&r, &q);
	hook(f, &d);
	drp_fetch_retry(f); /* no effect before a challenge is pending */
	pend_t p = {.f = f, .d = &d};
	RUN_UNTIL(d.challenges == 1);
	ev_timer_init(&p.t, pend_cb, 0., 0.);
	p.t.data = &p;
	ev_timer_start(up.loop, &p.t);
	RUN_UNTIL(r.dones == 1);
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_null(strstr(fk.heads[0], "Authorization"));
	ck_assert_ptr_nonnull(
		strstr(fk.heads[1], "Authorization: Bearer hooked"));
	drp_buf_free(&r.body);
}
END_TEST

START_TEST(challenge_pending_then_fail)
{
	fk.replies[0] = (reply_t){.data = unauth};
	start_fake();
	rec_t r;
	rec_init(&r);
	deco_t d = {.answer = {DRP_FETCH_AUTH_PENDING}};
	drp_fetch_req_t q = req_get("up.test", "/v2/");
	drp_fetch_t *f = go(&r, &q);
	hook(f, &d);
	pend_t p = {.f = f, .d = &d, .fail = true};
	RUN_UNTIL(d.challenges == 1);
	ev_timer_init(&p.t, pend_cb, 0., 0.);
	p.t.data = &p;
	ev_timer_start(up.loop, &p.t);
	RUN_UNTIL(r.dones == 1);
	ck_assert_int_eq(r.err, -EACCES);
	ck_assert_int_eq(r.http_status, 403);
	ck_assert_str_eq(r.reason, "no credentials for you");
	ck_assert_uint_eq(r.heads, 0);
	ck_assert_uint_eq(d.releases, 1);
}
END_TEST

START_TEST(challenge_error_and_fail)
{
	fk.replies[0] = (reply_t){.data = unauth, .after = A_HOLD};
	fk.replies[1] = (reply_t){.data = unauth, .after = A_HOLD};
	start_fake();
	/* ERROR: 502. */
	rec_t r;
	rec_init(&r);
	deco_t d = {.answer = {DRP_FETCH_AUTH_ERROR}};
	drp_fetch_req_t q = req_get("up.test", "/v2/");
	drp_fetch_t *f = go(&r, &q);
	hook(f, &d);
	RUN_UNTIL(r.dones == 1);
	ck_assert_int_eq(r.err, -EACCES);
	ck_assert_int_eq(r.http_status, 502);
	ck_assert_str_eq(r.reason, "authentication failed");
	/* drp_fetch_auth_fail from the challenge wins over its answer. */
	rec_init(&r);
	deco_t d2 = {.answer = {DRP_FETCH_AUTH_OK}, .fail_in_challenge = true};
	f = go(&r, &q);
	hook(f, &d2);
	RUN_UNTIL(r.dones == 1);
	ck_assert_int_eq(r.err, -EACCES);
	ck_assert_int_eq(r.http_status, 403);
	ck_assert_str_eq(r.reason, "denied by the hook");
	ck_assert_uint_eq(fk_get(&fk.requests), 2);
}
END_TEST

static void fail_decorate(void *arg, drp_fetch_t *f, drp_buf_t *headers)
{
	drp_fetch_auth_fail(f, 502, "token service down");
	drp_fetch_auth_fail(f, 403, "ignored: the first one stands");
}

START_TEST(decorate_fails)
{
	/* Failing from decorate: that attempt is not sent. */
	fk.replies[0] = (reply_t){.data = ok_x};
	start_fake();
	rec_t r;
	drp_fetch_t *f = get(&r, "up.test", "/v2/");
	drp_fetch_hooks_t h = {.decorate = fail_decorate};
	drp_fetch_set_hooks(f, &h);
	RUN_UNTIL(r.dones == 1);
	ck_assert_int_eq(r.err, -EACCES);
	ck_assert_int_eq(r.http_status, 502);
	ck_assert_str_eq(r.reason, "token service down");
	RUN_UNTIL(fk_get(&fk.closes) == 1);
	ck_assert_uint_eq(fk_get(&fk.requests), 0);
}
END_TEST

START_TEST(refused_403)
{
	rec_t r;
	fetch_one(&r,
		  (reply_t){.data = "HTTP/1.1 403 Forbidden\r\nContent-Length: "
				    "0\r\n\r\n"},
		  "/v2/");
	ck_assert(r.refused);
	ck_assert_int_eq(r.up_status, 403);
}
END_TEST

/* ---- TLS ---- */

START_TEST(tls_verified)
{
	fk.replies[0] =
		(reply_t){.data = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
				  "\r\nok"};
	fk.replies[1] =
		(reply_t){.data = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
				  "\r\nok"};
	start_fake();
	for (unsigned i = 0; i < 2; i++) {
		rec_t r;
		drp_fetch_t *f = get(&r, "up.test", "/t");
		ck_assert(drp_fetch_at_origin(f));
		RUN_UNTIL(r.dones == 1);
		ck_assert_int_eq(r.err, 0);
		ck_assert_str_eq(body_str(&r), "ok");
		drp_buf_free(&r.body);
	}
	/* Pooled across TLS too. */
	ck_assert_uint_eq(fk_get(&fk.accepts), 1);
}
END_TEST

/*
 * A body that is already waiting in the socket reaches the sink in
 * pieces larger than one read-ahead (64 KiB) or one record (16 KiB): a
 * cache fill writes each piece to its spool with one pwrite, which costs
 * less per byte in larger writes. Pieces stay within what may wait in the
 * fetch's buffer (256 KiB).
 */
#define BIG_BODY (1024 * 1024)
START_TEST(tls_body_in_large_pieces)
{
	static char reply[BIG_BODY + 128];
	int h = snprintf(reply, sizeof(reply),
			 "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n",
			 BIG_BODY);
	for (size_t i = 0; i < BIG_BODY; i++)
		reply[h + i] = (char)('a' + i % 23);
	fk.replies[0] = (reply_t){.data = reply, .len = (size_t)h + BIG_BODY};
	start_fake();
	rec_t r;
	rec_init(&r);
	drp_fetch_req_t q = req_get("up.test", "/big");
	go(&r, &q);
	RUN_UNTIL(fk_get(&fk.requests) == 1);
	/* The loop does not run while the fake writes: the reply waits in
	 * the socket (loopback buffers hold megabytes), as a fast upstream's
	 * does while the loop is busy. */
	while (fk_get(&fk.replied) == 0 && fk_get(&fk.closes) == 0)
		poll(NULL, 0, 1);
	ck_assert_uint_eq(fk_get(&fk.replied), 1);
	RUN_UNTIL(r.dones == 1);
	ck_assert_int_eq(r.err, 0);
	ck_assert_uint_eq(drp_buf_pending(&r.body), BIG_BODY);
	ck_assert_int_eq(memcmp(drp_buf_head(&r.body), reply + h, BIG_BODY), 0);
	ck_assert_uint_ge(r.max_piece, 128 * 1024);
	ck_assert_uint_le(r.max_piece, 256 * 1024);
	drp_buf_free(&r.body);
}
END_TEST

START_TEST(tls_wrong_name)
{
	/* The leaf names up.test, not bad.test: verification fails. */
	start_fake();
	rec_t r;
	get_done(&r, "bad.test", "/t");
	ck_assert_int_eq(r.err, -EPROTO);
	ck_assert_int_eq(r.http_status, 502);
	ck_assert_ptr_nonnull(strstr(r.reason, "TLS with bad.test failed"));
	ck_assert_uint_eq(fk_get(&fk.requests), 0);
}
END_TEST

START_TEST(tls_handshake_times_out)
{
	fk.silent = true;
	start_fake();
	rec_t r;
	get_done(&r, "up.test", "/t");
	ck_assert_int_eq(r.err, -ETIMEDOUT);
	ck_assert_int_eq(r.http_status, 504);
	ck_assert_str_eq(r.reason, "TLS handshake with up.test timed out");
}
END_TEST

/* ---- cancel at every stage: no callback after it, connection closed ---- */

static void assert_silent(rec_t *r)
{
	ck_assert_uint_eq(r->dones, 0);
}

START_TEST(cancel_before_run)
{
	start_fake();
	rec_t r;
	rec_init(&r);
	deco_t d = {0};
	drp_fetch_req_t q = req_get("up.test", "/c");
	drp_fetch_t *f = go(&r, &q);
	hook(f, &d);
	drp_fetch_cancel(f);
	ck_assert_uint_eq(d.releases, 1);
	ev_run(up.loop, EVRUN_NOWAIT);
	assert_silent(&r);
	ck_assert_uint_eq(fk_get(&fk.accepts), 0);
}
END_TEST

START_TEST(cancel_while_connecting)
{
	start_fake();
	rec_t r;
	drp_fetch_t *f = get(&r, "up.test", "/c");
	/* One turn of the loop: the deferred start connects. */
	ev_run(up.loop, EVRUN_ONCE);
	drp_fetch_cancel(f);
	RUN_UNTIL(fk_get(&fk.closes) == 1);
	assert_silent(&r);
}
END_TEST

START_TEST(cancel_in_handshake)
{
	fk.silent = true;
	start_fake();
	rec_t r;
	drp_fetch_t *f = get(&r, "up.test", "/c");
	RUN_UNTIL(fk_get(&fk.accepts) == 1);
	drp_fetch_cancel(f);
	RUN_UNTIL(fk_get(&fk.closes) == 1);
	assert_silent(&r);
}
END_TEST

START_TEST(cancel_awaiting_head)
{
	fk.replies[0] = (reply_t){.data = NULL};
	start_fake();
	rec_t r;
	drp_fetch_t *f = get(&r, "up.test", "/c");
	RUN_UNTIL(fk_get(&fk.requests) == 1);
	drp_fetch_cancel(f);
	RUN_UNTIL(fk_get(&fk.closes) == 1);
	assert_silent(&r);
	ck_assert_uint_eq(up.n_idle, 0);
}
END_TEST

START_TEST(cancel_mid_body)
{
	fk.replies[0] =
		(reply_t){.data = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
				  "\r\n0123456789",
			  .after = A_HOLD};
	start_fake();
	rec_t r;
	drp_fetch_t *f = get(&r, "up.test", "/c");
	RUN_UNTIL(r.bodies == 1);
	drp_fetch_cancel(f);
	RUN_UNTIL(fk_get(&fk.closes) == 1);
	assert_silent(&r);
	ck_assert_uint_eq(up.n_idle, 0);
	drp_buf_free(&r.body);
}
END_TEST

/* A sink may cancel from its own head(), body() or done(): the fetch is
 * freed once the callback has returned, and nothing is called after. */
START_TEST(cancel_from_callbacks)
{
	static const int where[] = {CANCEL_IN_HEAD, CANCEL_IN_BODY,
				    CANCEL_IN_DONE};
	fk.replies[0] =
		(reply_t){.data = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n"
				  "\r\n0123456789"};
	start_fake();
	rec_t r;
	rec_init(&r);
	r.cancel_in = where[_i];
	drp_fetch_req_t q = req_get("up.test", "/c");
	go(&r, &q);
	if (where[_i] == CANCEL_IN_DONE) {
		RUN_UNTIL(r.dones == 1);
		ck_assert_int_eq(r.err, 0);
		ck_assert_str_eq(body_str(&r), "0123456789");
	} else {
		RUN_UNTIL(r.f == NULL);
		/* Whatever else the read held is never delivered. */
		ck_assert_uint_eq(r.heads, 1);
		ck_assert_uint_le(r.bodies,
				  where[_i] == CANCEL_IN_BODY ? 1 : 0);
		RUN_UNTIL(fk_get(&fk.closes) >= 1);
		assert_silent(&r);
	}
	drp_buf_free(&r.body);
}
END_TEST

START_TEST(cancel_paused)
{
	size_t len;
	char *data = big_reply(&len);
	fk.replies[0] = (reply_t){.data = data, .len = len, .after = A_HOLD};
	start_fake();
	rec_t r;
	rec_init(&r);
	r.room = 0;
	drp_fetch_req_t q = req_get("up.test", "/c");
	drp_fetch_t *f = go(&r, &q);
	RUN_UNTIL(r.heads == 1);
	drp_fetch_cancel(f);
	RUN_UNTIL(fk_get(&fk.closes) == 1);
	assert_silent(&r);
	free(data);
}
END_TEST

START_TEST(cancel_pending_auth)
{
	fk.replies[0] = (reply_t){.data = unauth};
	start_fake();
	rec_t r;
	rec_init(&r);
	deco_t d = {.answer = {DRP_FETCH_AUTH_PENDING}};
	drp_fetch_req_t q = req_get("up.test", "/c");
	drp_fetch_t *f = go(&r, &q);
	hook(f, &d);
	RUN_UNTIL(d.challenges == 1);
	drp_fetch_cancel(f);
	ck_assert_uint_eq(d.releases, 1);
	RUN_UNTIL(fk_get(&fk.closes) == 1);
	assert_silent(&r);
}
END_TEST

/* ---- fetchbuf ---- */

typedef struct fbrec {
	unsigned calls;
	int err, http_status, status;
	char head[1024], body[256], digest[80], ctype[256];
	bool too_big, has_length;
	uint64_t content_length;
	bool refused;
} fbrec_t;

static void fb_cb(void *arg, drp_fetchbuf_result_t *res)
{
	fbrec_t *o = arg;
	o->calls++;
	o->err = res->err;
	o->http_status = res->http_status;
	o->status = res->status;
	snprintf(o->head, sizeof(o->head), "%.*s",
		 (int)drp_buf_pending(&res->head), drp_buf_head(&res->head));
	snprintf(o->body, sizeof(o->body), "%.*s",
		 (int)drp_buf_pending(&res->body), drp_buf_head(&res->body));
	snprintf(o->digest, sizeof(o->digest), "%s", res->digest);
	snprintf(o->ctype, sizeof(o->ctype), "%s", res->content_type);
	o->too_big = res->too_big;
	o->has_length = res->has_length;
	o->content_length = res->content_length;
	o->refused = res->refused;
}

START_TEST(fetchbuf_collects)
{
	fk.replies[0] =
		(reply_t){.data = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n"
				  "Connection: keep-alive\r\n"
				  "Keep-Alive: timeout=5\r\n"
				  "Content-Type: application/json\r\n"
				  "Docker-Content-Digest: sha256:abc\r\n\r\n"
				  "{\"a\":1}"};
	/* Chunked, more than max_body: too big. */
	fk.replies[1] = (reply_t){.data = "HTTP/1.1 200 OK\r\n"
					  "Transfer-Encoding: chunked\r\n\r\n"
					  "8\r\n12345678\r\n0\r\n\r\n"};
	/* Content-Length beyond max_body: too big already at the head. */
	fk.replies[2] =
		(reply_t){.data = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n"
				  "\r\n123456789"};
	fk.replies[3] = (reply_t){
		.data = "HTTP/1.1 403 No\r\nContent-Length: 0\r\n\r\n"};
	start_fake();
	drp_fetch_req_t q = req_get("up.test", "/v2/x/manifests/latest");
	fbrec_t o = {0};
	drp_fetchbuf_t *fb = drp_fetchbuf_start(&up, ucf, &q, 7, fb_cb, &o);
	ck_assert_ptr_nonnull(drp_fetchbuf_fetch(fb));
	RUN_UNTIL(o.calls == 1);
	ck_assert_int_eq(o.err, 0);
	ck_assert_int_eq(o.status, 200);
	ck_assert_str_eq(o.body, "{\"a\":1}");
	ck_assert_str_eq(o.digest, "sha256:abc");
	ck_assert_str_eq(o.ctype, "application/json");
	ck_assert(o.has_length);
	ck_assert_uint_eq(o.content_length, 7);
	/* Hop-by-hop headers and Content-Length are not passed on. */
	ck_assert_str_eq(o.head, "Content-Type: application/json\r\n"
				 "Docker-Content-Digest: sha256:abc\r\n");
	for (unsigned i = 0; i < 2; i++) {
		memset(&o, 0, sizeof(o));
		drp_fetchbuf_start(&up, ucf, &q, 7, fb_cb, &o);
		RUN_UNTIL(o.calls == 1);
		ck_assert_int_eq(o.err, -EFBIG);
		ck_assert_int_eq(o.http_status, 502);
		ck_assert(o.too_big);
	}
	memset(&o, 0, sizeof(o));
	drp_fetchbuf_start(&up, ucf, &q, 7, fb_cb, &o);
	RUN_UNTIL(o.calls == 1);
	ck_assert_int_eq(o.err, 0);
	ck_assert_int_eq(o.status, 403);
	ck_assert(o.refused);
}
END_TEST

START_TEST(fetchbuf_errors_and_cancel)
{
	fk.replies[0] = (reply_t){.data = NULL};
	start_fake();
	drp_fetch_req_t q = req_get("up.test", "/v2/");
	fbrec_t o = {0};
	drp_fetchbuf_t *fb = drp_fetchbuf_start(&up, ucf, &q, 100, fb_cb, &o);
	RUN_UNTIL(fk_get(&fk.requests) == 1);
	drp_fetchbuf_cancel(fb);
	RUN_UNTIL(fk_get(&fk.closes) == 1);
	ck_assert_uint_eq(o.calls, 0);
	/* An upstream error: err and the status to answer with. */
	stop_listening();
	memset(&o, 0, sizeof(o));
	drp_fetchbuf_start(&up, ucf, &q, 100, fb_cb, &o);
	RUN_UNTIL(o.calls == 1);
	ck_assert_int_eq(o.err, -EHOSTUNREACH);
	ck_assert_int_eq(o.http_status, 502);
}
END_TEST

Suite *fetch_suite(void)
{
	Suite *s = suite_create("fetch");
	TCase *tc = tcase_create("plain");
	tcase_add_checked_fixture(tc, setup_plain, teardown);
	tcase_add_test(tc, plain_length);
	tcase_add_test(tc, chunked_body);
	tcase_add_test(tc, eof_delimited_body);
	tcase_add_test(tc, keepalive_reuse);
	tcase_add_test(tc, pooled_conn_closed_by_server);
	tcase_add_test(tc, stale_pooled_conn_retried);
	tcase_add_test(tc, closed_mid_body);
	tcase_add_test(tc, closed_without_response);
	tcase_add_test(tc, malformed_answers);
	tcase_add_test(tc, interim_response_skipped);
	tcase_add_test(tc, connect_refused);
	tcase_add_test(tc, upload_bodies);
	tcase_add_test(tc, redirect_not_followed);
	tcase_add_test(tc, redirect_to_http);
	tcase_add_test(tc, extra_bytes_not_pooled);
	tcase_add_test(tc, dns_policy_refuses_loopback);
	tcase_add_test(tc, redirect_errors);
	tcase_add_test(tc, redirect_loop);
	tcase_add_test(tc, challenge_retried_once);
	tcase_add_test(tc, challenge_pending_then_fail);
	tcase_add_test(tc, challenge_error_and_fail);
	tcase_add_test(tc, decorate_fails);
	tcase_add_test(tc, refused_403);
	tcase_add_test(tc, cancel_before_run);
	tcase_add_test(tc, cancel_while_connecting);
	tcase_add_test(tc, cancel_awaiting_head);
	tcase_add_test(tc, cancel_mid_body);
	tcase_add_test(tc, cancel_paused);
	tcase_add_loop_test(tc, cancel_from_callbacks, 0, 3);
	tcase_add_test(tc, cancel_pending_auth);
	tcase_add_test(tc, fetchbuf_collects);
	tcase_add_test(tc, fetchbuf_errors_and_cancel);
	suite_add_tcase(s, tc);

	tc = tcase_create("timeouts");
	tcase_add_checked_fixture(tc, setup_plain_short, teardown);
	tcase_add_test(tc, body_stall_times_out);
	tcase_add_test(tc, response_stall_times_out);
	tcase_add_test(tc, back_pressure);
	suite_add_tcase(s, tc);

	tc = tcase_create("tls");
	tcase_add_checked_fixture(tc, setup_tls, teardown);
	tcase_add_test(tc, tls_verified);
	tcase_add_test(tc, tls_body_in_large_pieces);
	tcase_add_test(tc, tls_wrong_name);
	tcase_add_test(tc, redirect_credentials);
	tcase_add_test(tc, redirect_relative_and_limits);
	tcase_add_test(tc, challenge_pending_then_retry);
	tcase_add_test(tc, cancel_in_handshake);
	suite_add_tcase(s, tc);

	tc = tcase_create("tls_timeouts");
	tcase_add_checked_fixture(tc, setup_tls_short, teardown);
	tcase_add_test(tc, tls_handshake_times_out);
	suite_add_tcase(s, tc);
	return s;
}
