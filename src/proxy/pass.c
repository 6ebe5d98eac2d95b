/* SPDX-License-Identifier: MIT */
#include "proxy/pass.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"
#include "core/daemon.h"
#include "http/parse.h"
#include "plugin/challenge.h"
#include "proxy/server.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

typedef struct pass {
	drp_exch_t *x;
	drp_fetch_t *f; /* NULL once it ended */
	bool intercepted;
	bool ping;
	bool chunked; /* we frame the response with chunked */
	bool paused;  /* the fetch waits for room in out */
} pass_t;

/* A registry's 401 names the token realm the client goes to next:
 * intercept that host too (drp_runtime_learn_realm). */
static void learn_realms(drp_exch_t *x, const drp_http_msg_t *resp)
{
	for (const drp_http_header_t *h =
		     drp_http_find(resp, "WWW-Authenticate");
	     h != NULL; h = drp_http_find_next(resp, "WWW-Authenticate", h)) {
		drp_challenges_t ch;
		if (drp_challenge_parse(h->value, h->value_len, &ch) < 0)
			continue;
		const drp_challenge_t *b = drp_challenge_find(&ch, "Bearer");
		const char *realm = b ? drp_challenge_param(b, "realm") : NULL;
		if (realm != NULL)
			drp_runtime_learn_realm(x->rt, x->host, realm);
		drp_challenges_free(&ch);
	}
}

static void sink_head(void *arg, const drp_http_msg_t *resp,
		      enum drp_http_body_mode mode, uint64_t length)
{
	pass_t *p = arg;
	drp_exch_t *x = p->x;
	x->status = resp->status;
	x->up_status = resp->status;
	/* A mirror client hears of the proxy's realm only: it may not
	 * reach the upstream's. */
	bool rechallenge = resp->status == 401 && x->mirror;
	if (resp->status == 401 && p->intercepted && !x->mirror)
		learn_realms(x, resp);
	/* A sanitized reason phrase: never echo control bytes. */
	drp_buf_printf(x->out, "HTTP/1.1 %d ", resp->status);
	for (size_t i = 0; i < resp->reason_len; i++) {
		char ch = resp->reason[i];
		drp_buf_append(x->out, (ch >= 0x20 && ch != 0x7f) ? &ch : " ",
			       1);
	}
	drp_buf_append(x->out, "\r\n", 2);
	for (size_t i = 0; i < resp->num_headers; i++) {
		const drp_http_header_t *h = &resp->headers[i];
		if (drp_http_is_hop_by_hop(resp, h))
			continue;
		bool is_cl = h->name_len == 14 &&
			     strncasecmp(h->name, "Content-Length", 14) == 0;
		/* A body-less answer keeps the upstream's Content-Length: a
		 * HEAD of a blob must tell its size. */
		if (is_cl && mode != DRP_HTTP_BODY_NONE)
			continue;
		if (rechallenge && h->name_len == 16 &&
		    strncasecmp(h->name, "WWW-Authenticate", 16) == 0)
			continue;
		drp_buf_append(x->out, h->name, h->name_len);
		drp_buf_append(x->out, ": ", 2);
		drp_buf_append(x->out, h->value, h->value_len);
		drp_buf_append(x->out, "\r\n", 2);
	}
	p->chunked = false;
	if (mode == DRP_HTTP_BODY_LENGTH) {
		drp_buf_printf(x->out, "Content-Length: %llu\r\n",
			       (unsigned long long)length);
	} else if (mode == DRP_HTTP_BODY_CHUNKED || mode == DRP_HTTP_BODY_EOF) {
		drp_buf_printf(x->out, "Transfer-Encoding: chunked\r\n");
		p->chunked = true;
	}
	if (rechallenge)
		drp_auth_mirror_challenge(x, x->out);
	drp_buf_printf(x->out, "X-Cache: PASS\r\n");
	if (x->close_after || x->draining)
		drp_buf_printf(x->out, "Connection: close\r\n");
	drp_buf_append(x->out, "\r\n", 2);
	x->head_sent = true;
	drp_exch_kick(x);
}

static size_t sink_room(void *arg)
{
	pass_t *p = arg;
	size_t n = drp_buf_pending(p->x->out);
	if (n >= DRP_EXCH_OUT_HIGH) {
		p->paused = true;
		return 0;
	}
	return DRP_EXCH_OUT_HIGH - n;
}

static void sink_body(void *arg, const char *data, size_t len)
{
	pass_t *p = arg;
	drp_exch_t *x = p->x;
	if (p->chunked)
		drp_buf_printf(x->out, "%zx\r\n", len);
	drp_buf_append(x->out, data, len);
	if (p->chunked)
		drp_buf_append(x->out, "\r\n", 2);
	x->bytes_out += len;
	drp_exch_kick(x);
}

static void sink_req_room(void *arg)
{
	drp_exch_kick(((pass_t *)arg)->x);
}

static void sink_done(void *arg, int err, int http_status, const char *reason)
{
	pass_t *p = arg;
	drp_exch_t *x = p->x;
	p->f = NULL;
	if (err == 0) {
		if (p->chunked)
			drp_buf_append(x->out, "0\r\n\r\n", 5);
		drp_exch_done(x, "PASS");
		return;
	}
	if (x->head_sent) {
		/* Mid-body failure: the client must see a broken transfer,
		 * never a clean end. */
		drp_log_warning(DRP_LOG_PROXY,
				"[c%06u] %s %s: aborted after %llu bytes: %s",
				x->id, x->method, x->path ? x->path : "",
				(unsigned long long)x->bytes_out, reason);
		drp_exch_close(x, "upstream failed mid-response");
		return;
	}
	if (p->ping && x->w->srv->capi) {
		/* The upstream is down: answer the API probe ourselves so
		 * that clients go on to the manifests and blobs the cache
		 * still holds. */
		drp_log_warning(DRP_LOG_PROXY,
				"[c%06u] %s/v2/: upstream unavailable (%s); "
				"answering the probe from the proxy",
				x->id, x->host, reason);
		x->status = 200;
		drp_buf_printf(
			x->out,
			"HTTP/1.1 200 OK\r\nContent-Type: "
			"application/json\r\nContent-Length: 2\r\n"
			"Docker-Distribution-Api-Version: registry/2.0\r\n"
			"X-Cache: STALE\r\n\r\n");
		if (!x->head)
			drp_buf_append(x->out, "{}", 2);
		drp_exch_done(x, "STALE");
		return;
	}
	drp_log_warning(DRP_LOG_PROXY, "[c%06u] %s %s%s: %d: %s", x->id,
			x->method, x->host, x->path ? x->path : "", http_status,
			reason);
	drp_exch_error(x, http_status, false, "%s", reason);
	drp_exch_done(x, "PASS");
}

static const drp_fetch_sink_t pass_sink = {
	.head = sink_head,
	.room = sink_room,
	.body = sink_body,
	.req_room = sink_req_room,
	.done = sink_done,
};

/* The client took bytes: a fetch that waited for room reads on. */
static int pass_pump(drp_exch_t *x)
{
	pass_t *p = x->hs;
	if (p->f && p->paused &&
	    drp_buf_pending(x->out) < DRP_EXCH_OUT_HIGH / 2) {
		p->paused = false;
		drp_fetch_resume(p->f);
	}
	return 0;
}

static void pass_release(drp_exch_t *x)
{
	pass_t *p = x->hs;
	if (p->f)
		drp_fetch_cancel(p->f);
	free(p);
}

static size_t pass_body_room(drp_exch_t *x)
{
	pass_t *p = x->hs;
	return p->f ? drp_fetch_body_room(p->f) : 0;
}

static void pass_body(drp_exch_t *x, const char *data, size_t len)
{
	pass_t *p = x->hs;
	drp_require(drp_fetch_send_body(p->f, data, len) == len);
}

static void pass_body_end(drp_exch_t *x)
{
	pass_t *p = x->hs;
	if (p->f)
		drp_fetch_end_body(p->f);
}

static const drp_handler_t pass_handler = {
	.pump = pass_pump,
	.release = pass_release,
	.body_room = pass_body_room,
	.body = pass_body,
	.body_end = pass_body_end,
};

void drp_pass_start(drp_exch_t *x, const drp_fetch_req_t *fr, bool intercepted,
		    bool ping)
{
	pass_t *p = DRP_NEW(pass_t);
	p->x = x;
	p->intercepted = intercepted;
	p->ping = ping;
	x->head_sent = false;
	p->f = drp_fetch_new(&x->w->upstream, x->rt->upstream, fr, &pass_sink,
			     p);
	if (intercepted)
		drp_auth_attach(x->rt, x->w, x, p->f, fr->host, fr->port,
				x->repo);
	x->h = &pass_handler;
	x->hs = p;
	drp_exch_async(x);
	drp_fetch_start(p->f);
}
