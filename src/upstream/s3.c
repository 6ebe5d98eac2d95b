/* SPDX-License-Identifier: MIT */
#include "upstream/s3.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

#define FD_CHUNK (64 * 1024)

struct drp_s3 {
	bool tls;
	char *hostport; /* "host" or "host:port" (port only if not default) */
	char *bucket;
	char *region;
	char *access_key;
	char *secret_key;
	drp_s3_addressing_t addressing;
	uint64_t part_size;
	char describe[512];
};

/* ---- configuration ---- */

static void set_err(char *err, size_t errlen, const char *msg)
{
	if (errlen)
		snprintf(err, errlen, "%s", msg);
}

drp_s3_t *drp_s3_new(const drp_s3_conf_t *c, char *err, size_t errlen)
{
	const char *e = c->endpoint ? c->endpoint : "";
	bool tls;
	if (strncmp(e, "https://", 8) == 0) {
		tls = true;
		e += 8;
	} else if (strncmp(e, "http://", 7) == 0) {
		tls = false;
		e += 7;
	} else {
		set_err(err, errlen,
			"s3_endpoint must start with http:// or https://");
		return NULL;
	}
	size_t n = strlen(e);
	if (n > 0 && e[n - 1] == '/')
		n--; /* "https://s3.example.com/" */
	if (n == 0 || n > 255 || memchr(e, '/', n) || memchr(e, '@', n) ||
	    memchr(e, '?', n)) {
		set_err(err, errlen,
			"s3_endpoint must be scheme://host[:port] (no path, "
			"no user)");
		return NULL;
	}
	char hp[256];
	memcpy(hp, e, n);
	hp[n] = '\0';
	/* The port, if any, must be a number; the default one is dropped
	 * (S3 signs the Host header as the client sends it, and the fetch
	 * sends none for the default port). */
	char *colon = strrchr(hp, ':');
	if (colon && (hp[0] != '[' || colon > strchr(hp, ']'))) {
		char *end;
		unsigned long port = strtoul(colon + 1, &end, 10);
		if (colon[1] == '\0' || *end || port == 0 || port > 65535) {
			set_err(err, errlen, "s3_endpoint: bad port");
			return NULL;
		}
		if (port == (tls ? 443u : 80u))
			*colon = '\0';
	}
	if (c->access_key == NULL || c->access_key[0] == '\0' ||
	    c->secret_key == NULL || c->secret_key[0] == '\0') {
		set_err(err, errlen, "S3 access key and secret key are needed");
		return NULL;
	}
	char *h = NULL, *p = NULL;
	if (drp_s3_address(c->addressing, hp, c->bucket ? c->bucket : "", "",
			   &h, &p) < 0) {
		set_err(err, errlen,
			c->addressing == DRP_S3_VIRTUAL
				? "s3_bucket is not a valid bucket name for "
				  "virtual-hosted addressing (3..63 of a-z 0-9 "
				  "- and no '.')"
				: "s3_bucket is not a valid bucket name (3..63 "
				  "of a-z 0-9 . -)");
		return NULL;
	}
	drp_s3_t *s3 = DRP_NEW(drp_s3_t);
	s3->tls = tls;
	s3->hostport = drp_strdup(hp);
	s3->bucket = drp_strdup(c->bucket);
	s3->region =
		drp_strdup(c->region && c->region[0] ? c->region : "us-east-1");
	s3->access_key = drp_strdup(c->access_key);
	s3->secret_key = drp_strdup(c->secret_key);
	s3->addressing = c->addressing;
	s3->part_size = c->part_size ? c->part_size : DRP_S3_PART_SIZE;
	snprintf(s3->describe, sizeof(s3->describe), "%s://%s%s",
		 tls ? "https" : "http", h, p);
	free(h);
	free(p);
	return s3;
}

void drp_s3_free(drp_s3_t *s3)
{
	if (s3 == NULL)
		return;
	free(s3->hostport);
	free(s3->bucket);
	free(s3->region);
	free(s3->access_key);
	if (s3->secret_key) {
		explicit_bzero(s3->secret_key, strlen(s3->secret_key));
		free(s3->secret_key);
	}
	free(s3);
}

const char *drp_s3_describe(const drp_s3_t *s3)
{
	return s3->describe;
}

/* ---- signing: the fetch request of one S3 request ---- */

typedef struct signed_req {
	drp_fetch_req_t fr;
	char *host; /* connect host, without the port */
	drp_buf_t headers;
	drp_s3sig_t sig;
} signed_req_t;

static void signed_free(signed_req_t *s)
{
	free(s->host);
	drp_buf_free(&s->headers);
	drp_s3sig_free(&s->sig);
}

static int sign_req(const drp_s3_t *s3, const drp_s3_req_t *r,
		    const char *payload_hash, uint64_t body_len,
		    signed_req_t *out)
{
	memset(out, 0, sizeof(*out));
	char *hosthdr = NULL, *path = NULL;
	if (drp_s3_address(s3->addressing, s3->hostport, s3->bucket, r->key,
			   &hosthdr, &path) < 0)
		return -EINVAL;
	drp_s3sig_creds_t cr = {
		.access_key = s3->access_key,
		.secret_key = s3->secret_key,
		.region = s3->region,
	};
	drp_s3sig_req_t sr = {
		.method = r->method,
		.host = hosthdr,
		.path = path,
		.query = r->query,
		.nquery = r->nquery,
		.headers = r->headers,
		.nheaders = r->nheaders,
		.payload_hash = payload_hash,
		.now = time(NULL),
	};
	int rc = drp_s3sig_sign(&cr, &sr, &out->sig);
	free(path);
	if (rc < 0) {
		free(hosthdr);
		return rc;
	}
	/* The connect host and port from the Host header. */
	uint16_t port = s3->tls ? 443 : 80;
	char *colon = strrchr(hosthdr, ':');
	if (colon && (hosthdr[0] != '[' || colon > strchr(hosthdr, ']'))) {
		port = (uint16_t)strtoul(colon + 1, NULL, 10);
		*colon = '\0';
	}
	if (hosthdr[0] == '[') {
		size_t l = strlen(hosthdr);
		memmove(hosthdr, hosthdr + 1, l);
		char *rb = strchr(hosthdr, ']');
		if (rb)
			*rb = '\0';
	}
	out->host = hosthdr;
	drp_buf_printf(&out->headers,
		       "X-Amz-Date: %s\r\nX-Amz-Content-Sha256: %s\r\n"
		       "Authorization: %s\r\n",
		       out->sig.amz_date, out->sig.content_sha256,
		       out->sig.authorization);
	for (size_t i = 0; i < r->nheaders; i++)
		drp_buf_printf(&out->headers, "%s: %s\r\n", r->headers[i].name,
			       r->headers[i].value);
	out->fr = (drp_fetch_req_t){
		.tls = s3->tls,
		.host = out->host,
		.port = port,
		.method = r->method,
		.target = out->sig.target,
		.headers = drp_buf_head(&out->headers),
		.headers_len = drp_buf_pending(&out->headers),
		.body_mode = body_len || strcmp(r->method, "PUT") == 0 ||
					     strcmp(r->method, "POST") == 0
				     ? DRP_HTTP_BODY_LENGTH
				     : DRP_HTTP_BODY_NONE,
		.body_len = body_len,
		.follow_redirects = false,
		.policy_exempt = true,
	};
	return 0;
}

/* ---- one request, answered in memory ---- */

struct drp_s3_call {
	drp_fetch_t *f;
	drp_s3_cb cb;
	void *arg;
	/* request body */
	char *mem;
	size_t mem_len;
	int fd;
	uint64_t fd_off, body_len, sent;
	char *chunk;
	/* answer */
	size_t max_body;
	drp_buf_t body;
	drp_s3_result_t res;
	bool too_big;
	/* a failure found before the fetch could start, reported later */
	ev_timer later;
	struct ev_loop *loop;
	int early_err;
};

static void call_free(drp_s3_call_t *c)
{
	if (c->loop)
		ev_timer_stop(c->loop, &c->later);
	free(c->mem);
	free(c->chunk);
	drp_buf_free(&c->body);
	free(c);
}

static void copy_hdr(const drp_http_msg_t *resp, const char *name, char *out,
		     size_t outlen)
{
	const drp_http_header_t *h = drp_http_find(resp, name);
	out[0] = '\0';
	if (h && h->value_len < outlen) {
		memcpy(out, h->value, h->value_len);
		out[h->value_len] = '\0';
	}
}

static void call_head(void *arg, const drp_http_msg_t *resp,
		      enum drp_http_body_mode mode, uint64_t length)
{
	drp_s3_call_t *c = arg;
	c->res.status = resp->status;
	copy_hdr(resp, "ETag", c->res.etag, sizeof(c->res.etag));
	copy_hdr(resp, "Date", c->res.date, sizeof(c->res.date));
	copy_hdr(resp, "Last-Modified", c->res.last_modified,
		 sizeof(c->res.last_modified));
	copy_hdr(resp, "Content-Range", c->res.content_range,
		 sizeof(c->res.content_range));
	copy_hdr(resp, "Content-Type", c->res.content_type,
		 sizeof(c->res.content_type));
	const drp_http_header_t *h = drp_http_find(resp, "Content-Length");
	if (h && h->value_len > 0 && h->value_len < 21) {
		char v[24];
		memcpy(v, h->value, h->value_len);
		v[h->value_len] = '\0';
		char *end;
		unsigned long long l = strtoull(v, &end, 10);
		if (*end == '\0') {
			c->res.length = l;
			c->res.has_length = true;
		}
	}
}

static size_t call_room(void *arg)
{
	drp_s3_call_t *c = arg;
	size_t have = drp_buf_pending(&c->body);
	/* One byte beyond the bound tells that the answer is too big. */
	return have <= c->max_body ? c->max_body + 1 - have : 0;
}

static void call_finish(drp_s3_call_t *c)
{
	drp_buf_append(&c->body, "", 1); /* NUL */
	c->res.body = drp_buf_head(&c->body);
	c->res.body_len = drp_buf_pending(&c->body) - 1;
	if (c->res.err == 0 && c->res.status >= 300) {
		size_t pos = 0;
		(void)drp_s3_xml_next(c->res.body, c->res.body_len, &pos,
				      "Code", c->res.code, sizeof(c->res.code));
	}
	c->cb(c->arg, &c->res);
	call_free(c);
}

static void call_body(void *arg, const char *data, size_t len)
{
	drp_s3_call_t *c = arg;
	drp_buf_append(&c->body, data, len);
	if (drp_buf_pending(&c->body) > c->max_body) {
		drp_fetch_cancel(c->f); /* freed when we return */
		c->f = NULL;
		drp_buf_reset(&c->body);
		c->res.err = -EFBIG;
		c->res.reason = "S3 answer larger than expected";
		call_finish(c);
	}
}

static void call_pump(drp_s3_call_t *c)
{
	while (c->f && c->sent < c->body_len) {
		size_t room = drp_fetch_body_room(c->f);
		if (room == 0)
			return;
		uint64_t left = c->body_len - c->sent;
		size_t want = left < room ? (size_t)left : room;
		size_t took;
		if (c->mem) {
			took = drp_fetch_send_body(c->f, c->mem + c->sent,
						   want);
		} else {
			if (want > FD_CHUNK)
				want = FD_CHUNK;
			if (c->chunk == NULL)
				c->chunk = drp_malloc(FD_CHUNK);
			ssize_t n = pread(c->fd, c->chunk, want,
					  (off_t)(c->fd_off + c->sent));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				/* The file is shorter than promised: the
				 * request cannot be finished; the store
				 * sees a short body and refuses it. */
				drp_log_warning(DRP_LOG_CACHE,
						"S3 request body: read failed "
						"at %" PRIu64,
						c->fd_off + c->sent);
				drp_fetch_end_body(c->f);
				c->sent = c->body_len;
				return;
			}
			took = drp_fetch_send_body(c->f, c->chunk, (size_t)n);
		}
		if (took == 0)
			return;
		c->sent += took;
	}
	if (c->f && c->sent == c->body_len)
		drp_fetch_end_body(c->f);
}

static void call_req_room(void *arg)
{
	call_pump(arg);
}

static void call_done(void *arg, int err, int http_status, const char *reason)
{
	drp_s3_call_t *c = arg;
	c->f = NULL;
	if (err < 0) {
		c->res.err = err;
		c->res.reason = reason ? reason : "S3 request failed";
		c->res.status = 0;
	}
	call_finish(c);
}

static const drp_fetch_sink_t call_sink = {
	.head = call_head,
	.room = call_room,
	.body = call_body,
	.req_room = call_req_room,
	.done = call_done,
};

static void later_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	drp_s3_call_t *c = DRP_CONTAINER_OF(t, drp_s3_call_t, later);
	c->res.err = c->early_err;
	c->res.reason = "S3 request could not be signed";
	call_finish(c);
}

drp_s3_call_t *drp_s3_call(const drp_s3_t *s3, drp_upstream_t *ctx,
			   drp_upstream_conf_t *ucf, const drp_s3_req_t *req,
			   drp_s3_cb cb, void *arg)
{
	drp_s3_call_t *c = DRP_NEW(drp_s3_call_t);
	c->cb = cb;
	c->arg = arg;
	c->fd = -1;
	c->loop = ctx->loop;
	c->max_body = req->max_body;
	ev_timer_init(&c->later, later_cb, 0., 0.);
	char hash[65];
	const char *ph = NULL;
	if (req->body) {
		c->mem = drp_malloc(req->body_len ? req->body_len : 1);
		memcpy(c->mem, req->body, req->body_len);
		c->body_len = req->body_len;
		drp_s3sig_sha256_hex(req->body, req->body_len, hash);
		ph = hash;
	} else if (req->fd >= 0) {
		c->fd = req->fd;
		c->fd_off = req->fd_off;
		c->body_len = req->fd_len;
		ph = DRP_S3SIG_UNSIGNED_PAYLOAD;
	}
	signed_req_t sr;
	int r = sign_req(s3, req, ph, c->body_len, &sr);
	if (r < 0) {
		c->early_err = r;
		ev_timer_start(c->loop, &c->later);
		return c;
	}
	c->f = drp_fetch_new(ctx, ucf, &sr.fr, &call_sink, c);
	signed_free(&sr);
	drp_fetch_start(c->f);
	call_pump(c);
	return c;
}

void drp_s3_call_cancel(drp_s3_call_t *c)
{
	if (c == NULL)
		return;
	if (c->f)
		drp_fetch_cancel(c->f);
	call_free(c);
}

/* ---- a GET streamed into a sink ---- */

drp_fetch_t *drp_s3_get(const drp_s3_t *s3, drp_upstream_t *ctx,
			drp_upstream_conf_t *ucf, const char *key, bool range,
			uint64_t first, uint64_t last,
			const drp_fetch_sink_t *sink, void *arg)
{
	char rv[64];
	snprintf(rv, sizeof(rv), "bytes=%" PRIu64 "-%" PRIu64, first, last);
	drp_s3sig_kv_t h = {"Range", rv};
	drp_s3_req_t r = {
		.method = "GET",
		.key = key,
		.headers = range ? &h : NULL,
		.nheaders = range ? 1 : 0,
		.fd = -1,
	};
	signed_req_t sr;
	if (sign_req(s3, &r, NULL, 0, &sr) < 0)
		return NULL;
	drp_fetch_t *f = drp_fetch_new(ctx, ucf, &sr.fr, sink, arg);
	signed_free(&sr);
	drp_fetch_start(f);
	return f;
}

/* ---- uploads ---- */

enum up_state {
	UP_IDLE,     /* nothing sent yet */
	UP_INIT,     /* POST ?uploads in flight */
	UP_PARTS,    /* an upload id; parts go up */
	UP_COMPLETE, /* POST ?uploadId in flight */
	UP_PUT,	     /* the single PUT in flight */
	UP_ABORT,    /* DELETE ?uploadId in flight */
};

struct drp_s3_upload {
	const drp_s3_t *s3;
	drp_upstream_t *ctx;
	drp_upstream_conf_t *ucf;
	char *key;
	int fd;
	drp_s3_upload_cb cb;
	void *arg;
	enum up_state state;
	drp_s3_call_t *call; /* the one request in flight */
	uint64_t avail;
	uint64_t total;
	bool committed;
	bool abort_wanted;
	char upload_id[512];
	char **etags;
	unsigned n_parts;
	uint64_t part_off;     /* start of the next part */
	uint64_t part_sending; /* length of the part in flight */
	/* the failure that started an abort */
	int fail_err;
	char fail_reason[256];
	ev_timer kick;
	/* drp_s3_upload_gate(): asked once, then waits for publish() */
	drp_s3_upload_gate_cb gate;
	void *gate_arg;
	bool gate_asked;
	bool gate_open;
};

static void up_step(drp_s3_upload_t *u);

static void up_kick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	up_step(DRP_CONTAINER_OF(t, drp_s3_upload_t, kick));
}

static void up_kick(drp_s3_upload_t *u)
{
	if (!ev_is_active(&u->kick)) {
		ev_timer_set(&u->kick, 0., 0.);
		ev_timer_start(u->ctx->loop, &u->kick);
	}
}

static void up_free(drp_s3_upload_t *u)
{
	ev_timer_stop(u->ctx->loop, &u->kick);
	if (u->call)
		drp_s3_call_cancel(u->call);
	for (unsigned i = 0; i < u->n_parts; i++)
		free(u->etags[i]);
	free(u->etags);
	free(u->key);
	drp_upstream_conf_unref(u->ucf);
	free(u);
}

static void up_finish(drp_s3_upload_t *u, int err, const char *reason)
{
	drp_s3_upload_cb cb = u->cb;
	void *arg = u->arg;
	u->call = NULL;
	char why[256];
	snprintf(why, sizeof(why), "%s", reason ? reason : "");
	up_free(u);
	cb(arg, err, why);
}

/* A request failed: abort the multipart upload (if one is open), then
 * report err. */
static void up_fail(drp_s3_upload_t *u, int err, const char *fmt,
		    const drp_s3_result_t *res)
{
	char why[256];
	if (res && res->err < 0)
		snprintf(why, sizeof(why), "%s: %s", fmt, res->reason);
	else if (res)
		snprintf(why, sizeof(why), "%s: HTTP %d%s%s", fmt, res->status,
			 res->code[0] ? " " : "", res->code);
	else
		snprintf(why, sizeof(why), "%s", fmt);
	u->call = NULL;
	if (u->upload_id[0] && u->state != UP_ABORT) {
		u->fail_err = err;
		snprintf(u->fail_reason, sizeof(u->fail_reason), "%s", why);
		u->abort_wanted = true;
		u->state = UP_PARTS;
		up_kick(u);
		return;
	}
	up_finish(u, err, why);
}

static void up_done_cb(void *arg, const drp_s3_result_t *res)
{
	drp_s3_upload_t *u = arg;
	u->call = NULL;
	switch (u->state) {
	case UP_INIT: {
		size_t pos = 0;
		if (res->err < 0 || res->status != 200 ||
		    drp_s3_xml_next(res->body, res->body_len, &pos, "UploadId",
				    u->upload_id, sizeof(u->upload_id)) < 0 ||
		    u->upload_id[0] == '\0') {
			u->upload_id[0] = '\0';
			up_fail(u, -EIO, "S3 multipart initiate", res);
			return;
		}
		u->state = UP_PARTS;
		break;
	}
	case UP_PARTS:
		if (res->err < 0 || res->status != 200 || !res->etag[0]) {
			up_fail(u, -EIO, "S3 part upload", res);
			return;
		}
		u->etags =
			realloc(u->etags, (u->n_parts + 1) * sizeof(*u->etags));
		drp_require(u->etags != NULL);
		u->etags[u->n_parts++] = drp_strdup(res->etag);
		u->part_off += u->part_sending;
		break;
	case UP_COMPLETE:
		/* S3 may answer 200 and put the error in the body. */
		if (res->err < 0 || res->status != 200 ||
		    strstr(res->body, "<CompleteMultipartUploadResult") ==
			    NULL) {
			up_fail(u, -EIO, "S3 multipart complete", res);
			return;
		}
		up_finish(u, 0, "stored (multipart)");
		return;
	case UP_PUT:
		if (res->err == 0 && res->status == 412) {
			up_finish(u, 0, "already stored");
			return;
		}
		if (res->err < 0 || res->status != 200) {
			up_fail(u, -EIO, "S3 PUT", res);
			return;
		}
		up_finish(u, 0, "stored");
		return;
	case UP_ABORT:
		if (res->err < 0 || (res->status != 204 && res->status != 200 &&
				     res->status != 404))
			drp_log_warning(DRP_LOG_CACHE,
					"%s: aborting multipart upload %s "
					"failed (%s%d); the sweep will",
					u->key, u->upload_id,
					res->err < 0 ? res->reason : "HTTP ",
					res->err < 0 ? 0 : res->status);
		up_finish(u, u->fail_err ? u->fail_err : -ECANCELED,
			  u->fail_reason[0] ? u->fail_reason : "aborted");
		return;
	case UP_IDLE:
		break;
	}
	up_step(u);
}

static void up_start(drp_s3_upload_t *u, enum up_state st,
		     const drp_s3_req_t *r)
{
	u->state = st;
	u->call = drp_s3_call(u->s3, u->ctx, u->ucf, r, up_done_cb, u);
}

static void up_part(drp_s3_upload_t *u, uint64_t len)
{
	char num[16];
	snprintf(num, sizeof(num), "%u", u->n_parts + 1);
	drp_s3sig_kv_t q[] = {{"partNumber", num}, {"uploadId", u->upload_id}};
	drp_s3_req_t r = {.method = "PUT",
			  .key = u->key,
			  .query = q,
			  .nquery = 2,
			  .fd = u->fd,
			  .fd_off = u->part_off,
			  .fd_len = len,
			  .max_body = 4096};
	u->part_sending = len;
	up_start(u, UP_PARTS, &r);
}

static void up_complete(drp_s3_upload_t *u)
{
	drp_buf_t x = {0};
	drp_buf_printf(&x, "<CompleteMultipartUpload>");
	for (unsigned i = 0; i < u->n_parts; i++)
		drp_buf_printf(&x,
			       "<Part><PartNumber>%u</PartNumber><ETag>%s</"
			       "ETag></Part>",
			       i + 1, u->etags[i]);
	drp_buf_printf(&x, "</CompleteMultipartUpload>");
	drp_s3sig_kv_t q[] = {{"uploadId", u->upload_id}};
	drp_s3_req_t r = {.method = "POST",
			  .key = u->key,
			  .query = q,
			  .nquery = 1,
			  .body = drp_buf_head(&x),
			  .body_len = drp_buf_pending(&x),
			  .fd = -1,
			  .max_body = 65536};
	up_start(u, UP_COMPLETE, &r);
	drp_buf_free(&x);
}

/* Everything before the request that makes the object visible is done:
 * may it go? Asks the gate once; up_kick() when it answers. */
static bool may_publish(drp_s3_upload_t *u)
{
	if (u->gate == NULL || u->gate_open)
		return true;
	if (!u->gate_asked) {
		u->gate_asked = true;
		u->gate(u->gate_arg);
	}
	return false;
}

static void up_step(drp_s3_upload_t *u)
{
	if (u->call)
		return;
	uint64_t ps = u->s3->part_size;
	if (u->abort_wanted) {
		if (u->upload_id[0] == '\0') {
			up_finish(u, u->fail_err ? u->fail_err : -ECANCELED,
				  u->fail_reason[0] ? u->fail_reason
						    : "aborted");
			return;
		}
		drp_s3sig_kv_t q[] = {{"uploadId", u->upload_id}};
		drp_s3_req_t r = {.method = "DELETE",
				  .key = u->key,
				  .query = q,
				  .nquery = 1,
				  .fd = -1,
				  .max_body = 65536};
		up_start(u, UP_ABORT, &r);
		return;
	}
	uint64_t have = u->committed ? u->total : u->avail;
	if (u->upload_id[0] == '\0') {
		if (u->committed && u->total < ps) {
			/* Small: one PUT, and only if nobody stored it
			 * first (a content-addressed key: the same bytes). */
			if (!may_publish(u))
				return;
			drp_s3sig_kv_t h[] = {{"If-None-Match", "*"}};
			drp_s3_req_t r = {.method = "PUT",
					  .key = u->key,
					  .headers = h,
					  .nheaders = 1,
					  .fd = u->fd,
					  .fd_off = 0,
					  .fd_len = u->total,
					  .max_body = 65536};
			up_start(u, UP_PUT, &r);
		} else if (have >= ps) {
			drp_s3sig_kv_t q[] = {{"uploads", NULL}};
			drp_s3_req_t r = {.method = "POST",
					  .key = u->key,
					  .query = q,
					  .nquery = 1,
					  .fd = -1,
					  .max_body = 65536};
			up_start(u, UP_INIT, &r);
		}
		return;
	}
	/* Whole parts as soon as they are there; the rest once committed
	 * (the last part may be short, never empty). */
	if (u->part_off + ps <= have) {
		up_part(u, ps);
		return;
	}
	if (!u->committed)
		return;
	if (u->part_off < u->total) {
		up_part(u, u->total - u->part_off);
		return;
	}
	if (may_publish(u))
		up_complete(u);
}

drp_s3_upload_t *drp_s3_upload_new(const drp_s3_t *s3, drp_upstream_t *ctx,
				   drp_upstream_conf_t *ucf, const char *key,
				   int fd, drp_s3_upload_cb cb, void *arg)
{
	drp_s3_upload_t *u = DRP_NEW(drp_s3_upload_t);
	u->s3 = s3;
	u->ctx = ctx;
	u->ucf = drp_upstream_conf_ref(ucf);
	u->key = drp_strdup(key);
	u->fd = fd;
	u->cb = cb;
	u->arg = arg;
	ev_timer_init(&u->kick, up_kick_cb, 0., 0.);
	return u;
}

void drp_s3_upload_avail(drp_s3_upload_t *u, uint64_t n)
{
	if (u->committed || n <= u->avail)
		return;
	u->avail = n;
	up_kick(u);
}

void drp_s3_upload_commit(drp_s3_upload_t *u, uint64_t total)
{
	if (u->committed || u->abort_wanted)
		return;
	u->committed = true;
	u->total = total;
	if (total < u->part_off) {
		/* Parts already sent extend past the end: impossible for a
		 * file that only grew; refuse rather than store. */
		u->fail_err = -EINVAL;
		snprintf(u->fail_reason, sizeof(u->fail_reason),
			 "upload committed shorter than its parts");
		u->abort_wanted = true;
	}
	up_kick(u);
}

void drp_s3_upload_gate(drp_s3_upload_t *u, drp_s3_upload_gate_cb gate,
			void *arg)
{
	u->gate = gate;
	u->gate_arg = arg;
}

void drp_s3_upload_publish(drp_s3_upload_t *u)
{
	if (u->gate_open)
		return;
	u->gate_open = true;
	up_kick(u);
}

void drp_s3_upload_abort(drp_s3_upload_t *u)
{
	if (u->abort_wanted)
		return;
	u->abort_wanted = true;
	if (u->call && u->state != UP_ABORT) {
		/* The request in flight is not waited for: its part is
		 * dropped with the upload. */
		drp_s3_call_cancel(u->call);
		u->call = NULL;
	}
	up_kick(u);
}

void drp_s3_upload_cancel(drp_s3_upload_t *u)
{
	if (u)
		up_free(u);
}

const char *drp_s3_upload_id(const drp_s3_upload_t *u)
{
	return u->upload_id;
}

unsigned drp_s3_upload_parts(const drp_s3_upload_t *u)
{
	return u->n_parts;
}

/* ---- the sweep ---- */

typedef struct sweep_item {
	char *key;
	char *id;
} sweep_item_t;

struct drp_s3_sweep {
	const drp_s3_t *s3;
	drp_upstream_t *ctx;
	drp_upstream_conf_t *ucf;
	char *prefix;
	double max_age;
	drp_s3_sweep_cb cb;
	void *arg;
	drp_s3_call_t *call;
	sweep_item_t *items;
	unsigned n_items, next_item;
	bool truncated;
	char key_marker[1100];
	char id_marker[512];
	unsigned listed, aborted;
};

static void sweep_list(drp_s3_sweep_t *sw);
static void sweep_next(drp_s3_sweep_t *sw);

static void sweep_items_free(drp_s3_sweep_t *sw)
{
	for (unsigned i = 0; i < sw->n_items; i++) {
		free(sw->items[i].key);
		free(sw->items[i].id);
	}
	free(sw->items);
	sw->items = NULL;
	sw->n_items = sw->next_item = 0;
}

static void sweep_free(drp_s3_sweep_t *sw)
{
	if (sw->call)
		drp_s3_call_cancel(sw->call);
	sweep_items_free(sw);
	free(sw->prefix);
	drp_upstream_conf_unref(sw->ucf);
	free(sw);
}

static void sweep_end(drp_s3_sweep_t *sw, int err)
{
	drp_s3_sweep_cb cb = sw->cb;
	void *arg = sw->arg;
	unsigned listed = sw->listed, aborted = sw->aborted;
	sw->call = NULL;
	sweep_free(sw);
	cb(arg, err, listed, aborted);
}

static void sweep_abort_cb(void *arg, const drp_s3_result_t *res)
{
	drp_s3_sweep_t *sw = arg;
	sw->call = NULL;
	sweep_item_t *it = &sw->items[sw->next_item - 1];
	if (res->err == 0 &&
	    (res->status == 204 || res->status == 200 || res->status == 404)) {
		sw->aborted++;
		drp_log_notice(DRP_LOG_CACHE,
			       "S3 sweep: aborted the unfinished multipart "
			       "upload %s of %s",
			       it->id, it->key);
	} else {
		drp_log_warning(DRP_LOG_CACHE,
				"S3 sweep: aborting upload %s of %s failed "
				"(%s, HTTP %d)",
				it->id, it->key,
				res->err < 0 ? res->reason : "answer",
				res->status);
	}
	sweep_next(sw);
}

static void sweep_next(drp_s3_sweep_t *sw)
{
	if (sw->next_item < sw->n_items) {
		sweep_item_t *it = &sw->items[sw->next_item++];
		drp_s3sig_kv_t q[] = {{"uploadId", it->id}};
		drp_s3_req_t r = {.method = "DELETE",
				  .key = it->key,
				  .query = q,
				  .nquery = 1,
				  .fd = -1,
				  .max_body = 65536};
		sw->call = drp_s3_call(sw->s3, sw->ctx, sw->ucf, &r,
				       sweep_abort_cb, sw);
		return;
	}
	sweep_items_free(sw);
	if (sw->truncated) {
		sweep_list(sw);
		return;
	}
	sweep_end(sw, 0);
}

static void sweep_list_cb(void *arg, const drp_s3_result_t *res)
{
	drp_s3_sweep_t *sw = arg;
	sw->call = NULL;
	if (res->err < 0 || res->status != 200) {
		drp_log_warning(DRP_LOG_CACHE,
				"S3 sweep: listing uploads failed (%s, HTTP "
				"%d %s)",
				res->err < 0 ? res->reason : "answer",
				res->status, res->code);
		sweep_end(sw, res->err < 0 ? res->err : -EIO);
		return;
	}
	/* The store's clock: its Date against its Initiated. */
	int64_t now = drp_s3_parse_time(res->date);
	if (now < 0) {
		drp_log_warning(DRP_LOG_CACHE,
				"S3 sweep: the listing has no usable Date");
		sweep_end(sw, -EPROTO);
		return;
	}
	const char *b = res->body;
	size_t len = res->body_len;
	char t[16];
	size_t tp = 0;
	sw->truncated = drp_s3_xml_next(b, len, &tp, "IsTruncated", t,
					sizeof(t)) == 0 &&
			strcmp(t, "true") == 0;
	if (sw->truncated) {
		tp = 0;
		if (drp_s3_xml_next(b, len, &tp, "NextKeyMarker",
				    sw->key_marker,
				    sizeof(sw->key_marker)) < 0 ||
		    (tp = 0,
		     drp_s3_xml_next(b, len, &tp, "NextUploadIdMarker",
				     sw->id_marker, sizeof(sw->id_marker))) < 0)
			sw->truncated = false;
	}
	size_t pos = 0;
	for (;;) {
		const char *s = strstr(b + pos, "<Upload>");
		if (s == NULL)
			break;
		const char *e = strstr(s, "</Upload>");
		if (e == NULL)
			break;
		size_t ulen = (size_t)(e - s);
		pos = (size_t)(e - b) + 9;
		char key[1100], id[512], init[64];
		size_t p1 = 0, p2 = 0, p3 = 0;
		if (drp_s3_xml_next(s, ulen, &p1, "Key", key, sizeof(key)) <
			    0 ||
		    drp_s3_xml_next(s, ulen, &p2, "UploadId", id, sizeof(id)) <
			    0 ||
		    drp_s3_xml_next(s, ulen, &p3, "Initiated", init,
				    sizeof(init)) < 0)
			continue;
		sw->listed++;
		int64_t at = drp_s3_parse_time(init);
		if (at < 0 || (double)(now - at) <= sw->max_age)
			continue;
		sw->items = realloc(sw->items,
				    (sw->n_items + 1) * sizeof(*sw->items));
		drp_require(sw->items != NULL);
		sw->items[sw->n_items].key = drp_strdup(key);
		sw->items[sw->n_items].id = drp_strdup(id);
		sw->n_items++;
	}
	sweep_next(sw);
}

static void sweep_list(drp_s3_sweep_t *sw)
{
	drp_s3sig_kv_t q[4] = {{"uploads", NULL}, {"prefix", sw->prefix}};
	size_t nq = 2;
	if (sw->truncated) {
		q[nq++] = (drp_s3sig_kv_t){"key-marker", sw->key_marker};
		q[nq++] = (drp_s3sig_kv_t){"upload-id-marker", sw->id_marker};
	}
	drp_s3_req_t r = {.method = "GET",
			  .key = "",
			  .query = q,
			  .nquery = nq,
			  .fd = -1,
			  .max_body = 4 * 1024 * 1024};
	sw->call = drp_s3_call(sw->s3, sw->ctx, sw->ucf, &r, sweep_list_cb, sw);
}

drp_s3_sweep_t *drp_s3_sweep(const drp_s3_t *s3, drp_upstream_t *ctx,
			     drp_upstream_conf_t *ucf, const char *prefix,
			     double max_age, drp_s3_sweep_cb cb, void *arg)
{
	drp_s3_sweep_t *sw = DRP_NEW(drp_s3_sweep_t);
	sw->s3 = s3;
	sw->ctx = ctx;
	sw->ucf = drp_upstream_conf_ref(ucf);
	sw->prefix = drp_strdup(prefix ? prefix : "");
	sw->max_age = max_age;
	sw->cb = cb;
	sw->arg = arg;
	sweep_list(sw);
	return sw;
}

void drp_s3_sweep_cancel(drp_s3_sweep_t *sw)
{
	if (sw)
		sweep_free(sw);
}

/* ---- helpers ---- */

int drp_s3_xml_next(const char *xml, size_t len, size_t *pos, const char *tag,
		    char *out, size_t outlen)
{
	char open[80], close[80];
	int ol = snprintf(open, sizeof(open), "<%s>", tag);
	int cl = snprintf(close, sizeof(close), "</%s>", tag);
	if (ol <= 0 || cl <= 0 || (size_t)ol >= sizeof(open) ||
	    (size_t)cl >= sizeof(close) || outlen == 0)
		return -EINVAL;
	const char *s =
		*pos <= len ? memmem(xml + *pos, len - *pos, open, (size_t)ol)
			    : NULL;
	if (s == NULL)
		return -ENOENT;
	s += ol;
	const char *e = memmem(s, len - (size_t)(s - xml), close, (size_t)cl);
	if (e == NULL)
		return -ENOENT;
	size_t o = 0;
	for (const char *p = s; p < e;) {
		static const struct {
			const char *ent;
			char c;
		} ents[] = {{"&amp;", '&'},
			    {"&lt;", '<'},
			    {"&gt;", '>'},
			    {"&quot;", '"'},
			    {"&apos;", '\''}};
		char c = *p;
		size_t adv = 1;
		if (c == '&') {
			for (size_t i = 0; i < sizeof(ents) / sizeof(ents[0]);
			     i++) {
				size_t el = strlen(ents[i].ent);
				if ((size_t)(e - p) >= el &&
				    memcmp(p, ents[i].ent, el) == 0) {
					c = ents[i].c;
					adv = el;
					break;
				}
			}
		}
		if (o + 1 >= outlen)
			return -ERANGE;
		out[o++] = c;
		p += adv;
	}
	out[o] = '\0';
	*pos = (size_t)(e - xml) + (size_t)cl;
	return 0;
}

int64_t drp_s3_parse_time(const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (end) {
		if (*end == '.')
			for (end++; isdigit((unsigned char)*end); end++)
				;
		if (*end != 'Z' || end[1] != '\0')
			return -1;
		return (int64_t)timegm(&tm);
	}
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (end == NULL || *end != '\0')
		return -1;
	return (int64_t)timegm(&tm);
}
