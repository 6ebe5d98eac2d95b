/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "ctl/warm.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"
#include "cache/cache.h"
#include "cache/inventory.h"
#include "core/exchange.h"
#include "http/parse.h"
#include "http/uri.h"
#include "plugin/select.h"
#include "proxy/accesslog.h"
#include "proxy/pass.h"
#include "proxy/server.h"
#include "proxy/worker.h"
#include "registry/cached.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

/* Objects of one reference fetched at once (as a client pulls). */
#define PARALLEL 4
/* Manifests larger than this are not cached (registry/cached.c). */
#define MANIFEST_MAX (4 * 1024 * 1024)
/* How often a long transfer reports its progress. */
#define PROGRESS_EVERY 10.0
/* A verified object is stored by a background job: how long the warm
 * waits for it to appear in the cache, and how often it looks. */
#define STORE_WAIT 120.0
#define STORE_POLL 0.05

/* What current clients accept for a tag (Docker, containerd, podman). */
#define ACCEPT                                                                 \
	"application/vnd.docker.distribution.manifest.v2+json, "               \
	"application/vnd.docker.distribution.manifest.list.v2+json, "          \
	"application/vnd.oci.image.index.v1+json, "                            \
	"application/vnd.oci.image.manifest.v1+json"

enum item_kind { K_ROOT, K_MANIFEST, K_BLOB };

/* One object to warm. */
typedef struct item {
	struct item *next;
	enum item_kind kind;
	char digest[DRP_DIGEST_STRSIZE]; /* "" for the root of a tag */
	char label[64];			 /* e.g. the platform */
} item_t;

typedef struct wreq wreq_t;

typedef struct warm_ref {
	drp_warm_ref_t r;
	char *text; /* as given */
	char hostport[DRP_HOST_MAX + 8];
} warm_ref_t;

struct drp_warm {
	drp_worker_t *w;
	drp_runtime_t *rt;
	warm_ref_t *refs;
	size_t n_refs, cur;
	struct {
		char os[32], arch[32], variant[32];
	} * plat;
	size_t n_plat;
	drp_warm_line_fn line;
	drp_warm_done_fn done;
	void *arg;
	/* The current reference. */
	item_t *queue, *queue_tail;
	char **known; /* digests queued so far (each object once) */
	size_t n_known;
	wreq_t *active; /* requests under way */
	unsigned n_active;
	uint64_t objects, fetched, cached, failed, bytes;
	double t0;
	unsigned failed_refs;
	ev_timer next;		   /* deferred steps (never from the caller) */
	ev_timer progress;	   /* long transfers */
	drp_cache_stats_t scratch; /* our own lookups count nowhere */
};

/* One request: an exchange as the handlers see it. */
struct wreq {
	drp_exch_t x;
	drp_buf_t out;
	drp_warm_t *wm;
	wreq_t *next, *prev;
	item_t item;
	char method[8];
	char path[512];
	char repo[256];
	char raw[1024];
	bool head_req;
	bool async, done, closed, logged;
	bool storing; /* waiting for the cache to hold it */
	double start, store_deadline, last_progress;
	ev_timer kick;
	ev_timer stall;
	/* The response as a client would read it. */
	drp_buf_t head;
	bool head_done;
	int status;
	bool chunked;
	char ctype[128];
	char rdigest[DRP_DIGEST_STRSIZE];
	drp_buf_t body; /* manifests */
	bool body_over;
	char result[16];
	size_t blobs; /* a manifest's config and layers */
};

static void req_finish(wreq_t *q);
static void step(drp_warm_t *wm);

/* ---- output ---- */

static void say(drp_warm_t *wm, bool err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say(drp_warm_t *wm, bool err, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	wm->line(wm->arg, err, buf);
}

static const char *short_digest(const char *d, char *buf, size_t len)
{
	snprintf(buf, len, "%.19s", d);
	return buf;
}

/* ---- references ---- */

static bool is_host_part(const char *s, size_t n)
{
	return memchr(s, '.', n) || memchr(s, ':', n) ||
	       (n == 9 && strncmp(s, "localhost", 9) == 0);
}

int drp_warm_parse_ref(const char *s, drp_warm_ref_t *out)
{
	memset(out, 0, sizeof(*out));
	char buf[1024];
	if (strlen(s) >= sizeof(buf) || *s == '\0')
		return -EINVAL;
	snprintf(buf, sizeof(buf), "%s", s);
	char *at = strchr(buf, '@');
	if (at) {
		*at = '\0';
		bool sha = false;
		if (!drp_digest_valid(at + 1, strlen(at + 1), &sha) || !sha ||
		    strlen(at + 1) >= sizeof(out->digest))
			return -EINVAL;
		snprintf(out->digest, sizeof(out->digest), "%s", at + 1);
	}
	char *name = buf;
	char host[DRP_HOST_MAX + 8] = "docker.io";
	char *slash = strchr(name, '/');
	if (slash && is_host_part(name, (size_t)(slash - name))) {
		*slash = '\0';
		if (strlen(name) >= sizeof(host))
			return -EINVAL;
		snprintf(host, sizeof(host), "%s", name);
		name = slash + 1;
	}
	char *colon = strrchr(name, ':');
	if (colon && !strchr(colon, '/')) {
		*colon = '\0';
		if (!out->digest[0]) {
			if (strlen(colon + 1) >= sizeof(out->tag))
				return -EINVAL;
			snprintf(out->tag, sizeof(out->tag), "%s", colon + 1);
		}
	}
	if (!out->digest[0] && !out->tag[0])
		snprintf(out->tag, sizeof(out->tag), "latest");
	/* host[:port], lower-cased */
	for (char *p = host; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	char hbuf[DRP_HOST_MAX + 1];
	uint16_t port = 443;
	if (drp_uri_parse_host_header(host, strlen(host), hbuf, &port) < 0)
		return -EINVAL;
	char *reg = drp_select_canonical_registry(hbuf, port);
	char *repo = drp_select_canonical_repo(reg, name);
	const char *contact = drp_select_upstream_host(reg);
	int rc = 0;
	/* The contacted host, without the canonical name's port. */
	if (strcmp(reg, "docker.io") == 0)
		snprintf(out->host, sizeof(out->host), "%s", contact);
	else
		snprintf(out->host, sizeof(out->host), "%s", hbuf);
	out->port = port ? port : 443;
	if (strlen(repo) >= sizeof(out->repo))
		rc = -EINVAL;
	else
		snprintf(out->repo, sizeof(out->repo), "%s", repo);
	/* The registry API's grammar decides what a name and tag are. */
	char path[1024];
	drp_route_t route;
	snprintf(path, sizeof(path), "/v2/%s/manifests/%s", out->repo,
		 out->digest[0] ? out->digest : out->tag);
	if (rc == 0 && (drp_route_classify(path, strlen(path), &route) < 0 ||
			(route.kind != DRP_ROUTE_MANIFEST_TAG &&
			 route.kind != DRP_ROUTE_MANIFEST_DIGEST) ||
			route.name_len != strlen(out->repo)))
		rc = -EINVAL;
	free(reg);
	free(repo);
	return rc;
}

/* ---- the exchange's client side ---- */

#define WREQ(x)	      DRP_CONTAINER_OF(x, wreq_t, x)
#define CONST_WREQ(x) ((const wreq_t *)((const char *)(x)-offsetof(wreq_t, x)))

static void kick(wreq_t *q)
{
	if (!ev_is_active(&q->kick)) {
		ev_timer_set(&q->kick, 0., 0.);
		ev_timer_start(q->wm->w->loop, &q->kick);
	}
}

static void touch(wreq_t *q)
{
	ev_timer_again(q->wm->w->loop, &q->stall);
}

static void release_handler(wreq_t *q)
{
	const drp_handler_t *h = q->x.h;
	if (h == NULL)
		return;
	q->x.h = NULL;
	if (h->release)
		h->release(&q->x);
	q->x.hs = NULL;
}

/* Response bytes as a client reads them: the head is parsed, a
 * manifest's body kept, a blob's counted and dropped. */
static void take(wreq_t *q, const char *p, size_t len)
{
	if (len == 0)
		return;
	touch(q);
	if (!q->head_done) {
		drp_buf_append(&q->head, p, len);
		drp_http_msg_t msg;
		ssize_t r = drp_http_parse_response(drp_buf_head(&q->head),
						    drp_buf_pending(&q->head),
						    65536, &msg);
		if (r == DRP_HTTP_INCOMPLETE)
			return;
		q->head_done = true;
		if (r < 0) {
			q->status = 502;
			return;
		}
		q->status = msg.status;
		const drp_http_header_t *h =
			drp_http_find(&msg, "Content-Type");
		if (h)
			snprintf(q->ctype, sizeof(q->ctype), "%.*s",
				 (int)h->value_len, h->value);
		h = drp_http_find(&msg, "Docker-Content-Digest");
		if (h && h->value_len < sizeof(q->rdigest))
			snprintf(q->rdigest, sizeof(q->rdigest), "%.*s",
				 (int)h->value_len, h->value);
		q->chunked = drp_http_has_token(&msg, "Transfer-Encoding",
						"chunked");
		size_t rest = drp_buf_pending(&q->head) - (size_t)r;
		const char *body = drp_buf_head(&q->head) + r;
		if (q->item.kind != K_BLOB && rest)
			drp_buf_append(&q->body, body, rest);
		drp_buf_consume(&q->head, drp_buf_pending(&q->head));
		return;
	}
	if (q->item.kind != K_BLOB && !q->body_over) {
		if (drp_buf_pending(&q->body) + len > MANIFEST_MAX)
			q->body_over = true;
		else
			drp_buf_append(&q->body, p, len);
	}
}

/* Read what the handler queued. Returns the bytes read. */
static size_t drain_out(wreq_t *q)
{
	size_t n = drp_buf_pending(&q->out);
	take(q, drp_buf_head(&q->out), n);
	drp_buf_consume(&q->out, n);
	return n;
}

static bool x_pending(const drp_exch_t *x)
{
	return drp_buf_pending(x->out) > 0;
}

static void x_send_ref(drp_exch_t *x, const char *p, size_t len,
		       void (*release)(void *arg), void *arg)
{
	wreq_t *q = WREQ(x);
	take(q, p, len);
	if (release)
		release(arg);
}

static void x_async(drp_exch_t *x)
{
	WREQ(x)->async = true;
}

static void x_kick(drp_exch_t *x)
{
	wreq_t *q = WREQ(x);
	if (!q->closed)
		kick(q);
}

static void x_done(drp_exch_t *x, const char *result)
{
	wreq_t *q = WREQ(x);
	if (q->closed || q->done)
		return;
	q->done = true;
	snprintf(q->result, sizeof(q->result), "%s", result ? result : "-");
	release_handler(q);
	kick(q); /* finished from the loop, not from inside the handler */
}

static void x_error(drp_exch_t *x, int status, bool close_after,
		    const char *msg)
{
	x->status = status;
	drp_buf_printf(x->out,
		       "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
		       "Content-Length: %zu\r\n\r\n%s\n",
		       status, drp_http_reason(status), strlen(msg) + 1, msg);
}

static void x_close(drp_exch_t *x, const char *reason)
{
	wreq_t *q = WREQ(x);
	if (q->closed)
		return;
	q->closed = true;
	snprintf(q->result, sizeof(q->result), "%s", "ERROR");
	if (q->status < 400)
		q->status = 0;
	release_handler(q);
	if (!q->head_done)
		q->status = 0;
	drp_log_info(DRP_LOG_CACHE, "[c%06u] warm %s: %s", x->id, q->path,
		     reason);
	kick(q);
}

static void x_abort(drp_exch_t *x, const char *reason)
{
	x_close(x, reason);
}

static void x_pass(drp_exch_t *x, const char *method, const char *target,
		   const char *headers, size_t headers_len, bool follow)
{
	wreq_t *q = WREQ(x);
	if (q->closed)
		return;
	/* What the upstream answers, for the report: a blob's bytes are
	 * not worth fetching uncached, its status is. */
	if (q->item.kind == K_BLOB)
		method = "HEAD";
	drp_fetch_req_t fr = {
		.tls = true,
		.host = x->host,
		.port = x->port,
		.method = method,
		.target = target,
		.headers = headers,
		.headers_len = headers_len,
		.body_mode = DRP_HTTP_BODY_NONE,
		.follow_redirects = follow,
		.conn_id = x->id,
	};
	x->head = strcmp(method, "HEAD") == 0;
	drp_pass_start(x, &fr, true, false);
}

static bool x_closed(const drp_exch_t *x)
{
	return CONST_WREQ(x)->closed;
}

static const drp_exch_ops_t warm_ops = {
	.pending = x_pending,
	.send_ref = x_send_ref,
	.async = x_async,
	.kick = x_kick,
	.done = x_done,
	.error = x_error,
	.abort = x_abort,
	.close = x_close,
	.pass = x_pass,
	.closed = x_closed,
};

/* Move the answer on: pump the handler while it makes progress. */
static void pump(wreq_t *q)
{
	for (int round = 0; round < 64; round++) {
		size_t got = drain_out(q);
		if (q->done || q->closed || q->x.h == NULL ||
		    q->x.h->pump == NULL)
			break;
		int r = q->x.h->pump(&q->x);
		got += drain_out(q);
		if (r < 0 || q->done || q->closed)
			break;
		if (r == 0 && got == 0)
			return;
	}
	drain_out(q);
	if (!q->done && !q->closed && q->x.h)
		kick(q); /* more to come: next turn, others get theirs */
}

static void kick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	wreq_t *q = DRP_CONTAINER_OF(t, wreq_t, kick);
	if (q->done || q->closed) {
		drain_out(q);
		req_finish(q);
		return;
	}
	pump(q);
	if (q->done || q->closed)
		req_finish(q);
}

static void stall_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	wreq_t *q = DRP_CONTAINER_OF(t, wreq_t, stall);
	if (!q->done && !q->closed)
		x_close(&q->x, "no progress within body_timeout");
}

/* ---- requests ---- */

static void req_free(wreq_t *q)
{
	drp_warm_t *wm = q->wm;
	release_handler(q);
	ev_timer_stop(wm->w->loop, &q->kick);
	ev_timer_stop(wm->w->loop, &q->stall);
	if (q->prev)
		q->prev->next = q->next;
	else
		wm->active = q->next;
	if (q->next)
		q->next->prev = q->prev;
	wm->n_active--;
	drp_buf_free(&q->out);
	drp_buf_free(&q->head);
	drp_buf_free(&q->body);
	free(q);
}

static void access_line(wreq_t *q)
{
	drp_access_t a = {
		.client = "warm",
		.host = q->x.host,
		.port = q->x.port,
		.method = q->method,
		.path = q->path,
		.status = q->status,
		.bytes_out = q->x.bytes_out,
		.duration = ev_now(q->wm->w->loop) - q->start,
		.up_status = q->x.up_status,
		.result = q->result[0] ? q->result : "-",
		.first_byte = -1,
	};
	drp_accesslog_write(q->wm->rt, &a);
	/* One count per access-log line, as for clients' requests. */
	drp_accesslog_count(q->wm->rt, &a);
}

/* A new request for item, dispatched as an intercepted client's. false:
 * the handlers did not take it (then *status says why). */
static wreq_t *req_new(drp_warm_t *wm, const item_t *it, bool head)
{
	const warm_ref_t *ref = &wm->refs[wm->cur];
	wreq_t *q = DRP_NEW(wreq_t);
	q->wm = wm;
	q->item = *it;
	q->item.next = NULL;
	q->head_req = head;
	snprintf(q->method, sizeof(q->method), "%s", head ? "HEAD" : "GET");
	snprintf(q->repo, sizeof(q->repo), "%s", ref->r.repo);
	const char *what = it->kind == K_BLOB ? "blobs" : "manifests";
	const char *ref_s = it->kind == K_ROOT && it->digest[0] == '\0'
				    ? ref->r.tag
				    : it->digest;
	snprintf(q->path, sizeof(q->path), "/v2/%s/%s/%s", ref->r.repo, what,
		 ref_s);
	ev_init(&q->kick, kick_cb);
	ev_init(&q->stall, stall_cb);
	q->stall.repeat = wm->rt->conf->body_timeout;
	ev_timer_again(wm->w->loop, &q->stall);
	q->start = q->last_progress = ev_now(wm->w->loop);
	q->next = wm->active;
	if (q->next)
		q->next->prev = q;
	wm->active = q;
	wm->n_active++;

	drp_exch_t *x = &q->x;
	x->ops = &warm_ops;
	x->out = &q->out;
	x->id = drp_worker_conn_id(wm->w);
	x->w = wm->w;
	x->rt = wm->rt;
	x->host = ref->r.host;
	x->port = ref->r.port;
	x->peer = "warm";
	x->peer_addr = NULL; /* the operator: see warm.h */
	x->user = NULL;
	x->method = q->method;
	x->path = q->path;
	x->repo = q->repo;
	x->head = head;
	x->result = "PASS";
	return q;
}

/* Hand the request to the auth layer and the cache, as conn.c does for
 * a client's. Returns false if neither took it. */
static bool req_dispatch(wreq_t *q)
{
	drp_warm_t *wm = q->wm;
	drp_exch_t *x = &q->x;
	const warm_ref_t *ref = &wm->refs[wm->cur];
	int n = snprintf(q->raw, sizeof(q->raw),
			 "%s %s HTTP/1.1\r\nHost: %s\r\n%s%s%s"
			 "User-Agent: docker-registry-proxy/" PACKAGE_VERSION
			 " (warm)\r\n\r\n",
			 q->method, q->path, ref->hostport,
			 q->item.kind != K_BLOB ? "Accept: " : "",
			 q->item.kind != K_BLOB ? ACCEPT : "",
			 q->item.kind != K_BLOB ? "\r\n" : "");
	drp_http_msg_t req;
	drp_route_t route;
	if (n < 0 || (size_t)n >= sizeof(q->raw) ||
	    drp_http_parse_request(q->raw, (size_t)n, sizeof(q->raw), &req) <=
		    0 ||
	    drp_route_classify(req.target, req.target_len, &route) < 0) {
		q->status = 400;
		return false;
	}
	if (drp_auth_intercept(x, &req, &route)) {
		if (!q->async && !q->done && x->h == NULL)
			x_done(x, "PASS");
		return true;
	}
	/* A warm wants what the tag names now: always revalidated. */
	if (q->item.kind == K_ROOT && q->item.digest[0] == '\0')
		x->regset.tag_ttl = 0;
	/* The header lines the cache forwards upstream (conn.c's
	 * forward_headers: no Host). */
	const char *hdr = strstr(q->raw, "\r\n") + 2;
	hdr = strstr(hdr, "\r\n") + 2;
	size_t hlen = strlen(hdr) - 2; /* without the blank line */
	bool taken = drp_cached_dispatch(x, &req, &route, req.target,
					 req.target_len, hdr, hlen);
	if (taken && !q->async && !q->done && x->h == NULL)
		x_done(x, x->result ? x->result : "PASS");
	return taken;
}

/* ---- the warm's progress ---- */

static bool known(drp_warm_t *wm, const char *digest)
{
	for (size_t i = 0; i < wm->n_known; i++)
		if (strcmp(wm->known[i], digest) == 0)
			return true;
	wm->known = drp_realloc(wm->known, (wm->n_known + 1) * sizeof(char *));
	wm->known[wm->n_known++] = drp_strdup(digest);
	return false;
}

static void enqueue(drp_warm_t *wm, enum item_kind kind, const char *digest,
		    const char *label)
{
	if (digest[0] && known(wm, digest))
		return;
	item_t *it = DRP_NEW(item_t);
	it->kind = kind;
	snprintf(it->digest, sizeof(it->digest), "%s", digest);
	snprintf(it->label, sizeof(it->label), "%s", label ? label : "");
	if (wm->queue_tail)
		wm->queue_tail->next = it;
	else
		wm->queue = it;
	wm->queue_tail = it;
}

static bool platform_match(const drp_warm_t *wm, json_t *p)
{
	if (wm->n_plat == 0)
		return true;
	const char *os = json_string_value(json_object_get(p, "os"));
	const char *arch =
		json_string_value(json_object_get(p, "architecture"));
	const char *var = json_string_value(json_object_get(p, "variant"));
	for (size_t i = 0; i < wm->n_plat; i++) {
		if (os && arch && strcmp(os, wm->plat[i].os) == 0 &&
		    strcmp(arch, wm->plat[i].arch) == 0 &&
		    (wm->plat[i].variant[0] == '\0' ||
		     (var && strcmp(var, wm->plat[i].variant) == 0)))
			return true;
	}
	return false;
}

static void digest_of(json_t *o, char *out)
{
	const char *d = json_string_value(json_object_get(o, "digest"));
	bool sha = false;
	out[0] = '\0';
	if (d && strlen(d) < DRP_DIGEST_STRSIZE &&
	    drp_digest_valid(d, strlen(d), &sha) && sha)
		snprintf(out, DRP_DIGEST_STRSIZE, "%s", d);
}

/* A manifest arrived: queue what it references. Returns false if it
 * cannot be read. */
static bool expand(wreq_t *q, const char *digest)
{
	drp_warm_t *wm = q->wm;
	char sd[24], dg[DRP_DIGEST_STRSIZE];
	json_t *doc = q->body_over
			      ? NULL
			      : json_loadb(drp_buf_head(&q->body),
					   drp_buf_pending(&q->body), 0, NULL);
	if (!json_is_object(doc)) {
		json_decref(doc);
		return false;
	}
	json_t *mans = json_object_get(doc, "manifests");
	if (json_is_array(mans)) {
		size_t i, total = json_array_size(mans), chosen = 0;
		json_t *e;
		char names[512] = "";
		json_array_foreach(mans, i, e)
		{
			json_t *p = json_object_get(e, "platform");
			digest_of(e, dg);
			if (!dg[0] || !platform_match(wm, p))
				continue;
			char label[64] = "";
			const char *os =
				json_string_value(json_object_get(p, "os"));
			const char *ar = json_string_value(
				json_object_get(p, "architecture"));
			const char *va = json_string_value(
				json_object_get(p, "variant"));
			if (os && ar)
				snprintf(label, sizeof(label), "%s/%s%s%s", os,
					 ar, va ? "/" : "", va ? va : "");
			size_t nl = strlen(names);
			if (nl + strlen(label) + 3 < sizeof(names))
				snprintf(names + nl, sizeof(names) - nl, "%s%s",
					 nl ? ", " : "",
					 label[0] ? label : "?");
			enqueue(wm, K_MANIFEST, dg, label);
			chosen++;
		}
		say(wm, false, "  index %s: %zu of %zu manifest(s)%s%s%s",
		    short_digest(digest, sd, sizeof(sd)), chosen, total,
		    chosen ? " (" : "", names, chosen ? ")" : "");
		if (chosen == 0 && wm->n_plat > 0) {
			say(wm, true,
			    "  no manifest in %s for the platform(s) "
			    "given",
			    short_digest(digest, sd, sizeof(sd)));
			wm->failed++;
		}
	}
	size_t blobs = 0;
	json_t *cfg = json_object_get(doc, "config");
	digest_of(cfg, dg);
	if (dg[0]) {
		enqueue(wm, K_BLOB, dg, "config");
		blobs++;
	}
	const char *arrays[] = {"layers", "blobs"};
	for (size_t a = 0; a < DRP_ARRAY_SIZE(arrays); a++) {
		json_t *arr = json_object_get(doc, arrays[a]);
		size_t i;
		json_t *e;
		if (!json_is_array(arr))
			continue;
		json_array_foreach(arr, i, e)
		{
			digest_of(e, dg);
			if (dg[0]) {
				enqueue(wm, K_BLOB, dg, NULL);
				blobs++;
			}
		}
	}
	q->blobs = blobs;
	json_decref(doc);
	return true;
}

static const char *kind_name(enum item_kind k)
{
	return k == K_BLOB ? "blob" : "manifest";
}

static void report(wreq_t *q, const char *digest, bool fetched)
{
	drp_warm_t *wm = q->wm;
	char sd[24], sz[64];
	drp_cache_info_t info = {0};
	(void)wm->w->srv->capi->lookup(wm->w->srv->cdb, &wm->scratch, digest,
				       &info);
	drp_inv_size(info.size, sz, sizeof(sz));
	if (q->blobs) {
		size_t l = strlen(sz);
		snprintf(sz + l, sizeof(sz) - l, ", %zu blob(s)", q->blobs);
	}
	wm->objects++;
	if (fetched) {
		wm->fetched++;
		wm->bytes += info.size;
	} else {
		wm->cached++;
	}
	say(wm, false, "  %s %s%s%s (%s): %s (%s, %.1f s)",
	    kind_name(q->item.kind), short_digest(digest, sd, sizeof(sd)),
	    q->item.label[0] ? " " : "", q->item.label, sz,
	    fetched ? "fetched" : "already cached", q->result,
	    ev_now(wm->w->loop) - q->start);
}

static void fail(wreq_t *q, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void fail(wreq_t *q, const char *fmt, ...)
{
	char why[512], sd[24];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	drp_warm_t *wm = q->wm;
	wm->failed++;
	wm->objects++;
	const char *d = q->item.digest[0] ? q->item.digest : q->path;
	say(wm, true, "  %s %s%s%s: %s", kind_name(q->item.kind),
	    q->item.digest[0] ? short_digest(d, sd, sizeof(sd)) : d,
	    q->item.label[0] ? " " : "", q->item.label, why);
}

static bool stored(drp_warm_t *wm, const char *digest)
{
	drp_server_t *srv = wm->w->srv;
	return srv->capi->lookup(srv->cdb, &wm->scratch, digest, NULL) == 0;
}

/* The request ended: judge it, queue what it leads to, go on. */
static void req_finish(wreq_t *q)
{
	drp_warm_t *wm = q->wm;
	if (!q->logged) {
		access_line(q);
		q->logged = true;
	}
	const char *digest = q->item.digest[0] ? q->item.digest : q->rdigest;
	bool ok_status = q->status == 200 && !q->closed;
	bool cached_result = strcmp(q->result, "HIT") == 0 ||
			     strcmp(q->result, "MISS") == 0 ||
			     strcmp(q->result, "COALESCED") == 0 ||
			     strcmp(q->result, "REVALIDATED") == 0 ||
			     strcmp(q->result, "STALE") == 0;

	if (q->item.kind == K_BLOB && q->head_req && !q->storing && ok_status &&
	    strcmp(q->result, "HIT") == 0) {
		report(q, digest, false);
		req_free(q);
		step(wm);
		return;
	}
	if (!q->storing) {
		if (!ok_status || !cached_result) {
			if (q->closed)
				fail(q, "transfer failed");
			else if (strcmp(q->result, "PASS") == 0 &&
				 q->status == 200)
				fail(q,
				     "not cached: the proxy passed it "
				     "through (%s)",
				     q->ctype[0] ? q->ctype : "no type");
			else
				fail(q, "upstream answered %d", q->status);
			req_free(q);
			step(wm);
			return;
		}
		if (strcmp(q->result, "STALE") == 0)
			say(wm, true,
			    "  %s: upstream unavailable, the cached "
			    "copy is kept (STALE)",
			    q->path);
		if (q->item.kind == K_ROOT) {
			char sd[24];
			say(wm, false, "  %s %s: %s (%s)",
			    q->item.digest[0] ? "manifest" : "tag",
			    q->item.digest[0]
				    ? short_digest(digest, sd, sizeof(sd))
				    : wm->refs[wm->cur].r.tag,
			    short_digest(digest, sd, sizeof(sd)), q->result);
		}
		if (q->item.kind != K_BLOB) {
			if (!digest[0] || !expand(q, digest)) {
				fail(q, "the manifest cannot be read");
				req_free(q);
				step(wm);
				return;
			}
		}
		if (q->item.kind == K_ROOT && digest[0])
			(void)known(wm, digest);
		q->storing = true;
		q->store_deadline = ev_now(wm->w->loop) + STORE_WAIT;
	}
	/* Verified and handed to the store: wait until the cache has it. */
	if (!stored(wm, digest)) {
		if (ev_now(wm->w->loop) > q->store_deadline) {
			q->storing = false;
			fail(q, "not stored in the cache (full, or a write "
				"error: see the log)");
			req_free(q);
			step(wm);
			return;
		}
		ev_timer_stop(wm->w->loop, &q->stall);
		ev_timer_set(&q->kick, STORE_POLL, 0.);
		ev_timer_start(wm->w->loop, &q->kick);
		return;
	}
	bool fetched = strcmp(q->result, "MISS") == 0 ||
		       strcmp(q->result, "COALESCED") == 0;
	if (q->item.kind == K_ROOT) {
		/* Said when it arrived, counted now that it is stored. */
		wm->objects++;
		if (fetched)
			wm->fetched++;
		else
			wm->cached++;
	} else {
		report(q, digest, fetched);
	}
	req_free(q);
	step(wm);
}

/* ---- driving ---- */

static void ref_summary(drp_warm_t *wm)
{
	char sz[32];
	drp_inv_size(wm->bytes, sz, sizeof(sz));
	const warm_ref_t *ref = &wm->refs[wm->cur];
	say(wm, wm->failed > 0,
	    "%s %s: %" PRIu64 " object(s), %" PRIu64 " fetched (%s), %" PRIu64
	    " already cached, %" PRIu64 " failed, %.1f s",
	    wm->failed ? "incomplete" : "warmed", ref->text, wm->objects,
	    wm->fetched, sz, wm->cached, wm->failed,
	    ev_now(wm->w->loop) - wm->t0);
	drp_log_notice(DRP_LOG_CACHE,
		       "warm %s: %" PRIu64 " object(s), %" PRIu64
		       " fetched (%s), %" PRIu64 " already cached, %" PRIu64
		       " failed",
		       ref->text, wm->objects, wm->fetched, sz, wm->cached,
		       wm->failed);
	if (wm->failed)
		wm->failed_refs++;
}

static void ref_reset(drp_warm_t *wm)
{
	while (wm->queue) {
		item_t *n = wm->queue->next;
		free(wm->queue);
		wm->queue = n;
	}
	wm->queue_tail = NULL;
	for (size_t i = 0; i < wm->n_known; i++)
		free(wm->known[i]);
	DRP_FREE(wm->known);
	wm->n_known = 0;
	wm->objects = wm->fetched = wm->cached = wm->failed = wm->bytes = 0;
}

static void ref_begin(drp_warm_t *wm)
{
	const warm_ref_t *ref = &wm->refs[wm->cur];
	wm->t0 = ev_now(wm->w->loop);
	say(wm, false, "warm %s (%s/%s%s%s)", ref->text, ref->hostport,
	    ref->r.repo, ref->r.digest[0] ? "@" : ":",
	    ref->r.digest[0] ? ref->r.digest : ref->r.tag);
	if (!drp_runtime_intercepts(wm->rt, ref->r.host, ref->r.port)) {
		say(wm, true,
		    "  %s is not a registry this proxy intercepts "
		    "(registries, [registry] sections)",
		    ref->hostport);
		wm->failed++;
		return;
	}
	/* The tag, or the digest the reference names. */
	enqueue(wm, K_ROOT, ref->r.digest, NULL);
}

static void finish_all(drp_warm_t *wm);

/* Start what the queue holds, up to PARALLEL; move to the next
 * reference when this one is done. Deferred (wm->next) when called from
 * a request's own callbacks. */
static void step(drp_warm_t *wm)
{
	if (!ev_is_active(&wm->next)) {
		ev_timer_set(&wm->next, 0., 0.);
		ev_timer_start(wm->w->loop, &wm->next);
	}
}

static void next_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	drp_warm_t *wm = DRP_CONTAINER_OF(t, drp_warm_t, next);
	for (;;) {
		while (wm->queue && wm->n_active < PARALLEL) {
			item_t *it = wm->queue;
			wm->queue = it->next;
			if (wm->queue == NULL)
				wm->queue_tail = NULL;
			/* Blobs: a HEAD first (the cache answers it when it
			 * holds the blob), a GET only if missing. */
			wreq_t *q = req_new(wm, it, it->kind == K_BLOB);
			free(it);
			bool taken = req_dispatch(q);
			if (!taken && q->head_req) {
				item_t get = q->item;
				req_free(q);
				q = req_new(wm, &get, false);
				taken = req_dispatch(q);
			}
			if (!taken) {
				fail(q, "the proxy does not cache it");
				req_free(q);
			}
		}
		if (wm->queue || wm->n_active > 0)
			return;
		/* This reference is done. */
		ref_summary(wm);
		ref_reset(wm);
		if (++wm->cur >= wm->n_refs) {
			finish_all(wm);
			return;
		}
		ref_begin(wm);
	}
}

static void progress_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	drp_warm_t *wm = DRP_CONTAINER_OF(t, drp_warm_t, progress);
	for (wreq_t *q = wm->active; q; q = q->next) {
		if (q->head_req || q->storing ||
		    ev_now(loop) - q->last_progress < PROGRESS_EVERY)
			continue;
		char sd[24], sz[32];
		drp_inv_size(q->x.bytes_out, sz, sizeof(sz));
		say(wm, false, "  %s %s: %s so far (%.0f s)",
		    kind_name(q->item.kind),
		    short_digest(q->item.digest, sd, sizeof(sd)), sz,
		    ev_now(loop) - q->start);
		q->last_progress = ev_now(loop);
	}
}

static void warm_free(drp_warm_t *wm)
{
	while (wm->active)
		req_free(wm->active);
	ref_reset(wm);
	ev_timer_stop(wm->w->loop, &wm->next);
	ev_timer_stop(wm->w->loop, &wm->progress);
	for (size_t i = 0; i < wm->n_refs; i++)
		free(wm->refs[i].text);
	free(wm->refs);
	free(wm->plat);
	drp_runtime_unref(wm->rt);
	free(wm);
}

static void finish_all(drp_warm_t *wm)
{
	int status = wm->failed_refs ? 1 : 0;
	drp_warm_done_fn done = wm->done;
	void *arg = wm->arg;
	warm_free(wm);
	done(arg, status);
}

drp_warm_t *drp_warm_start(drp_worker_t *w, drp_runtime_t *rt,
			   const char *const *refs, size_t n_refs,
			   const char *const *platforms, size_t n_platforms,
			   drp_warm_line_fn line, drp_warm_done_fn done,
			   void *arg)
{
	drp_warm_t *wm = DRP_NEW(drp_warm_t);
	wm->w = w;
	wm->line = line;
	wm->done = done;
	wm->arg = arg;
	wm->refs = drp_calloc(n_refs ? n_refs : 1, sizeof(*wm->refs));
	wm->plat = drp_calloc(n_platforms ? n_platforms : 1, sizeof(*wm->plat));
	bool ok = n_refs > 0;
	if (!ok)
		line(arg, true, "warm: no image reference given");
	for (size_t i = 0; i < n_refs && ok; i++) {
		warm_ref_t *r = &wm->refs[wm->n_refs];
		if (drp_warm_parse_ref(refs[i], &r->r) < 0) {
			char msg[1200];
			snprintf(msg, sizeof(msg),
				 "warm: '%s' is not an image reference "
				 "([HOST[:PORT]/]NAME[:TAG|@sha256:HEX])",
				 refs[i]);
			line(arg, true, msg);
			ok = false;
			break;
		}
		r->text = drp_strdup(refs[i]);
		if (r->r.port == 443)
			snprintf(r->hostport, sizeof(r->hostport), "%s",
				 r->r.host);
		else
			snprintf(r->hostport, sizeof(r->hostport), "%s:%u",
				 r->r.host, r->r.port);
		wm->n_refs++;
	}
	for (size_t i = 0; i < n_platforms && ok; i++) {
		char os[64] = "", arch[64] = "", var[64] = "";
		int n = sscanf(platforms[i], "%63[^/]/%63[^/]/%63s", os, arch,
			       var);
		if (n < 2 || strlen(os) >= sizeof(wm->plat[0].os) ||
		    strlen(arch) >= sizeof(wm->plat[0].arch) ||
		    strlen(var) >= sizeof(wm->plat[0].variant)) {
			char msg[600];
			snprintf(msg, sizeof(msg),
				 "warm: --platform '%s' is not OS/ARCH or "
				 "OS/ARCH/VARIANT",
				 platforms[i]);
			line(arg, true, msg);
			ok = false;
			break;
		}
		snprintf(wm->plat[i].os, sizeof(wm->plat[i].os), "%s", os);
		snprintf(wm->plat[i].arch, sizeof(wm->plat[i].arch), "%s",
			 arch);
		snprintf(wm->plat[i].variant, sizeof(wm->plat[i].variant), "%s",
			 var);
		wm->n_plat++;
	}
	wm->rt = drp_runtime_ref(rt);
	ev_init(&wm->next, next_cb);
	ev_timer_init(&wm->progress, progress_cb, 1., 1.);
	if (!ok || w->srv->capi == NULL) {
		if (ok)
			line(arg, true,
			     "warm: this proxy runs without a "
			     "cache");
		warm_free(wm);
		return NULL;
	}
	ev_timer_start(w->loop, &wm->progress);
	ref_begin(wm);
	step(wm);
	return wm;
}

void drp_warm_cancel(drp_warm_t *wm)
{
	if (wm)
		warm_free(wm);
}
