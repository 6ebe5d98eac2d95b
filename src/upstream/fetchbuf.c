/* SPDX-License-Identifier: MIT */
#include "upstream/fetchbuf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/mem.h"

struct drp_fetchbuf {
	drp_fetch_t *fetch;
	drp_fetchbuf_result_t res;
	size_t max_body;
	drp_fetchbuf_cb cb;
	void *arg;
};

static void copy_value(char *dst, size_t size, const drp_http_header_t *h)
{
	size_t n = h->value_len < size - 1 ? h->value_len : size - 1;
	memcpy(dst, h->value, n);
	dst[n] = '\0';
}

static void fb_head(void *arg, const drp_http_msg_t *resp,
		    enum drp_http_body_mode mode, uint64_t length)
{
	drp_fetchbuf_t *fb = arg;
	fb->res.status = resp->status;
	for (size_t i = 0; i < resp->num_headers; i++) {
		const drp_http_header_t *h = &resp->headers[i];
		if (drp_http_is_hop_by_hop(resp, h))
			continue;
		if (h->name_len == 14 &&
		    strncasecmp(h->name, "Content-Length", 14) == 0) {
			char tmp[32];
			copy_value(tmp, sizeof(tmp), h);
			fb->res.content_length = strtoull(tmp, NULL, 10);
			fb->res.has_length = true;
			continue;
		}
		if (h->name_len == 21 &&
		    strncasecmp(h->name, "Docker-Content-Digest", 21) == 0)
			copy_value(fb->res.digest, sizeof(fb->res.digest), h);
		if (h->name_len == 12 &&
		    strncasecmp(h->name, "Content-Type", 12) == 0)
			copy_value(fb->res.content_type,
				   sizeof(fb->res.content_type), h);
		drp_buf_append(&fb->res.head, h->name, h->name_len);
		drp_buf_append(&fb->res.head, ": ", 2);
		drp_buf_append(&fb->res.head, h->value, h->value_len);
		drp_buf_append(&fb->res.head, "\r\n", 2);
	}
	if (mode == DRP_HTTP_BODY_LENGTH && length > fb->max_body)
		fb->res.too_big = true;
}

static size_t fb_room(void *arg)
{
	return 256 * 1024;
}

static void fb_body(void *arg, const char *data, size_t len)
{
	drp_fetchbuf_t *fb = arg;
	if (drp_buf_pending(&fb->res.body) + len > fb->max_body) {
		fb->res.too_big = true;
		return;
	}
	drp_buf_append(&fb->res.body, data, len);
}

static void fb_done(void *arg, int err, int http_status, const char *reason)
{
	drp_fetchbuf_t *fb = arg;
	/* The fetch is freed only after done() returns. */
	fb->res.refused = fb->fetch != NULL && drp_fetch_refused(fb->fetch);
	fb->fetch = NULL;
	fb->res.err = err;
	fb->res.http_status = http_status;
	fb->res.reason = reason;
	if (err == 0 && fb->res.too_big) {
		fb->res.err = -EFBIG;
		fb->res.http_status = 502;
		fb->res.reason = "upstream answer too large";
	}
	fb->cb(fb->arg, &fb->res);
	drp_buf_free(&fb->res.head);
	drp_buf_free(&fb->res.body);
	free(fb);
}

static const drp_fetch_sink_t fb_sink = {
	.head = fb_head,
	.room = fb_room,
	.body = fb_body,
	.done = fb_done,
};

drp_fetchbuf_t *drp_fetchbuf_start(drp_upstream_t *ctx,
				   drp_upstream_conf_t *ucf,
				   const drp_fetch_req_t *req, size_t max_body,
				   drp_fetchbuf_cb cb, void *arg)
{
	drp_fetchbuf_t *fb = DRP_NEW(drp_fetchbuf_t);
	fb->max_body = max_body;
	fb->cb = cb;
	fb->arg = arg;
	fb->fetch = drp_fetch_new(ctx, ucf, req, &fb_sink, fb);
	drp_fetch_start(fb->fetch);
	return fb;
}

drp_fetch_t *drp_fetchbuf_fetch(drp_fetchbuf_t *fb)
{
	return fb->fetch;
}

void drp_fetchbuf_cancel(drp_fetchbuf_t *fb)
{
	if (fb->fetch)
		drp_fetch_cancel(fb->fetch);
	drp_buf_free(&fb->res.head);
	drp_buf_free(&fb->res.body);
	free(fb);
}
