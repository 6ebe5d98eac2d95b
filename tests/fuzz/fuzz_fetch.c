/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the response side of the upstream client (upstream/fetch.c,
 * upstream/fetchbuf.c): status lines, headers, framing, chunked bodies and
 * trailers, 1xx answers, redirects, 401 challenges and retries, pooled
 * connections, back-pressure, as the fake upstream of world.h sends them
 * to a real drp_fetch on the worker loop.
 *
 * Input: byte 0 and byte 1 are flags, the rest the upstream's script (its
 * answers to successive request heads, separated by FZ_SEP).
 *   byte 0  bit 0  follow redirects (blob GET/HEAD)
 *           bit 1  HEAD instead of GET
 *           bit 2  a request body ("hello", Content-Length: 5)
 *           bits 3-4  the sink: 0 room for anything; 1 one byte of room
 *                  at a time; 2 no room until resumed from the loop;
 *                  3 cancels the fetch from head()
 *           bit 5  auth hooks: decorate() adds an Authorization while at
 *                  the origin, challenge() parses WWW-Authenticate
 *                  (plugin/challenge.c) and asks for one retry when it
 *                  finds a Bearer realm
 *           bit 6  a second fetch after the first (a pooled connection)
 *           bit 7  the upstream sends one byte per loop turn
 *   byte 1  bit 0  through drp_fetchbuf (the manifest path: headers
 *                  copied, Docker-Content-Digest, size limit of 64 bytes
 *                  when bit 1 is set too)
 *           bit 2  the upstream closes the connection after each answer
 *           bit 3  over TLS (registry.test:443; the fake upstream's
 *                  certificate is trusted through upstream_ca_file)
 * Checks: the sink's callbacks come in order (head at most once, body
 * only after head and within the room offered, done exactly once and
 * last, nothing after a cancel), a complete Content-Length body is
 * exactly that long, a failure before the head carries a 4xx/5xx status
 * and a reason; and ASan/UBSan/leaks.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/challenge.h"
#include "upstream/fetch.h"
#include "upstream/fetchbuf.h"
#include "world.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant names itself, then aborts (a finding). */
#define CHECK(x)                                                               \
	do {                                                                   \
		if (!(x)) {                                                    \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #x);                                 \
			abort();                                               \
		}                                                              \
	} while (0)

#define MAX_SCRIPT 16

typedef struct probe {
	drp_fetch_t *f;
	unsigned mode; /* sink mode, bits 3-4 */
	bool headed, done, cancelled, paused;
	enum drp_http_body_mode bmode;
	uint64_t length, got;
	size_t offered;
	int err;
} probe_t;

static void s_head(void *arg, const drp_http_msg_t *resp,
		   enum drp_http_body_mode mode, uint64_t length)
{
	probe_t *p = arg;
	CHECK(!p->headed && !p->done && !p->cancelled);
	CHECK(resp->status >= 100 && resp->status <= 999);
	p->headed = true;
	p->bmode = mode;
	p->length = length;
	if (p->mode == 3) {
		p->cancelled = true;
		drp_fetch_cancel(p->f);
	}
}

static size_t s_room(void *arg)
{
	probe_t *p = arg;
	CHECK(!p->done && !p->cancelled);
	switch (p->mode) {
	case 1:
		p->offered = 1;
		break;
	case 2:
		if (!p->paused) {
			p->paused = true;
			p->offered = 0;
			break;
		}
		p->offered = 65536;
		break;
	default:
		p->offered = SIZE_MAX;
	}
	return p->offered;
}

static void s_body(void *arg, const char *data, size_t len)
{
	probe_t *p = arg;
	CHECK(p->headed && !p->done && !p->cancelled);
	CHECK(len > 0 && len <= p->offered);
	/* Touch every byte: ASan sees a span outside the buffer. */
	volatile char sum = 0;
	for (size_t i = 0; i < len; i++)
		sum ^= data[i];
	(void)sum;
	p->got += len;
}

static void s_req_room(void *arg)
{
}

static void s_done(void *arg, int err, int http_status, const char *reason)
{
	probe_t *p = arg;
	CHECK(!p->done && !p->cancelled);
	p->done = true;
	p->err = err;
	if (getenv("FUZZ_FETCH_LOG"))
		fprintf(stderr,
			"done: err %d, status %d (%s), %s, %llu bytes\n", err,
			http_status, reason ? reason : "-",
			p->headed ? "head seen" : "no head",
			(unsigned long long)p->got);
	if (err == 0) {
		CHECK(p->headed);
		if (p->bmode == DRP_HTTP_BODY_LENGTH)
			CHECK(p->got == p->length);
		if (p->bmode == DRP_HTTP_BODY_NONE)
			CHECK(p->got == 0);
	} else if (!p->headed) {
		CHECK(http_status >= 400 && http_status <= 599);
		CHECK(reason != NULL && *reason);
	}
}

static const drp_fetch_sink_t sink = {s_head, s_room, s_body, s_req_room,
				      s_done};

static void h_decorate(void *arg, drp_fetch_t *f, drp_buf_t *headers)
{
	if (drp_fetch_at_origin(f))
		drp_buf_printf(headers, "Authorization: Bearer fuzz\r\n");
}

static enum drp_fetch_auth h_challenge(void *arg, drp_fetch_t *f,
				       const drp_http_msg_t *resp)
{
	enum drp_fetch_auth r = DRP_FETCH_AUTH_DECLINED;
	for (const drp_http_header_t *h =
		     drp_http_find(resp, "WWW-Authenticate");
	     h; h = drp_http_find_next(resp, "WWW-Authenticate", h)) {
		drp_challenges_t cs;
		if (drp_challenge_parse(h->value, h->value_len, &cs) < 0)
			continue;
		const drp_challenge_t *b = drp_challenge_find(&cs, "Bearer");
		if (b && drp_challenge_param(b, "realm"))
			r = DRP_FETCH_AUTH_OK;
		drp_challenges_free(&cs);
	}
	return r;
}

static const drp_fetch_hooks_t hooks = {.decorate = h_decorate,
					.challenge = h_challenge};

typedef struct bprobe {
	bool done;
	drp_fetchbuf_t *fb;
} bprobe_t;

static void fb_cb(void *arg, drp_fetchbuf_result_t *res)
{
	bprobe_t *b = arg;
	CHECK(!b->done);
	b->done = true;
	b->fb = NULL;
	if (getenv("FUZZ_FETCH_LOG"))
		fprintf(stderr, "buffered: err %d, status %d, %zu bytes, %s\n",
			res->err, res->err < 0 ? res->http_status : res->status,
			drp_buf_pending(&res->body), res->content_type);
	if (res->err < 0) {
		CHECK(res->http_status >= 400 && res->http_status <= 599);
		CHECK(res->reason != NULL);
		return;
	}
	/* Kept header lines are complete lines; no framing header. */
	const char *h = drp_buf_head(&res->head);
	size_t n = drp_buf_pending(&res->head);
	CHECK(n == 0 || (n >= 2 && memcmp(h + n - 2, "\r\n", 2) == 0));
	CHECK(strlen(res->digest) < sizeof(res->digest));
	CHECK(strlen(res->content_type) < sizeof(res->content_type));
	CHECK(strpbrk(res->content_type, "\r\n") == NULL);
}

static void one_fetch(unsigned f0, unsigned f1)
{
	drp_fetch_req_t req = {
		.tls = f1 & 8,
		.host = "registry.test",
		.port = f1 & 8 ? 443 : 80,
		.method = f0 & 2 ? "HEAD" : "GET",
		.target = "/v2/test/x/blobs/sha256:"
			  "c08ecaa38d6857c1e7ac8fe21d050ffb45d2909a7ea6170cf82b"
			  "9d3c21fae1d3",
		.headers = "Accept: */*\r\n",
		.headers_len = 13,
		.body_mode = f0 & 4 ? DRP_HTTP_BODY_LENGTH : DRP_HTTP_BODY_NONE,
		.body_len = f0 & 4 ? 5 : 0,
		.follow_redirects = f0 & 1,
		.conn_id = 1,
	};
	if (f1 & 1) {
		bprobe_t b = {0};
		b.fb = drp_fetchbuf_start(&FZ.w.upstream, FZ.srv.rt->upstream,
					  &req, f1 & 2 ? 64 : 1 << 20, fb_cb,
					  &b);
		if (b.fb && (f0 & 4)) {
			drp_fetch_t *f = drp_fetchbuf_fetch(b.fb);
			drp_fetch_send_body(f, "hello", 5);
			drp_fetch_end_body(f);
		}
		fz_run_until_idle();
		if (!b.done && b.fb)
			drp_fetchbuf_cancel(b.fb);
		return;
	}
	probe_t p = {.mode = (f0 >> 3) & 3};
	p.f = drp_fetch_new(&FZ.w.upstream, FZ.srv.rt->upstream, &req, &sink,
			    &p);
	CHECK(p.f != NULL);
	if (f0 & 0x20)
		drp_fetch_set_hooks(p.f, &hooks);
	drp_fetch_start(p.f);
	if (f0 & 4) {
		CHECK(drp_fetch_send_body(p.f, "hello", 5) <= 5);
		drp_fetch_end_body(p.f);
	}
	fz_run_until_idle();
	for (int i = 0; i < 64 && p.mode == 2 && !p.done && !p.cancelled; i++) {
		drp_fetch_resume(p.f);
		fz_run_until_idle();
	}
	if (!p.done && !p.cancelled) {
		p.cancelled = true;
		drp_fetch_cancel(p.f);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_setup("FUZZ_FETCH_LOG");
	if (size < 2)
		return 0;
	unsigned f0 = data[0], f1 = data[1];
	fz_answer_t script[MAX_SCRIPT];
	size_t n = fz_split(data + 2, size - 2, script, MAX_SCRIPT);
	for (size_t i = 0; i < n; i++)
		script[i].close = f1 & 4;
	fz_script(script, n, false, f0 & 0x80 ? 1 : 0, f1 & 8);
	one_fetch(f0, f1);
	if (f0 & 0x40)
		one_fetch(f0 & ~0x40u, f1);
	fz_reset();
	return 0;
}
