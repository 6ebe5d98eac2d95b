/* SPDX-License-Identifier: MIT */
/* The process-wide plugin host and the host services that run on a
 * worker loop: http_fetch (a buffered upstream request through the
 * proxy's own client), timers, and token waits delivered on the waiter's
 * own loop. */
#include "auth/auth_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/uri.h"
#include "upstream/fetchbuf.h"
#include "util/log.h"
#include "util/mem.h"

/* Request bodies of http_fetch are buffered by the fetch; token requests
 * are tiny. */
#define HTTP_FETCH_MAX_REQ_BODY (64 * 1024)

/* ---- where plugin code runs ---- */

static __thread drp_auth_cur_t cur;
static __thread bool cur_set;

drp_auth_cur_t drp_auth_cur_enter(drp_worker_t *w, drp_runtime_t *rt,
				  unsigned conn_id)
{
	drp_auth_cur_t saved = cur_set ? cur : (drp_auth_cur_t){0};
	cur = (drp_auth_cur_t){.w = w, .rt = rt, .conn_id = conn_id};
	cur_set = true;
	return saved;
}

void drp_auth_cur_leave(drp_auth_cur_t saved)
{
	cur = saved;
	cur_set = saved.w != NULL;
}

const drp_auth_cur_t *drp_auth_cur(void)
{
	return cur_set ? &cur : NULL;
}

/* For the plugins' log lines: the connection they run for. */
static unsigned cur_conn_id(void)
{
	return cur_set ? cur.conn_id : 0;
}

/* ---- the host ---- */

/* Token waiters are posted to their own loop through one of these per
 * worker loop, made the first time a request on that loop waits. */
typedef struct auth_loop {
	struct auth_loop *next;
	struct ev_loop *loop;
	ev_async async;
	pthread_mutex_t lock;
	struct drp_token_wait *head, *tail; /* deliveries due */
	/* Plugins' fetches and timers pending on this loop (its thread
	 * only), so that a stopping worker ends each exactly once. */
	struct drp_http_fetch *fetches;
	struct drp_timer *timers;
	bool stopped; /* drp_auth_worker_stop ran: nothing new starts */
} auth_loop_t;

static pthread_mutex_t host_lock = PTHREAD_MUTEX_INITIALIZER;
static drp_auth_host_t *the_host;

/* ---- http_fetch ---- */

struct drp_http_fetch {
	struct drp_http_fetch *prev, *next; /* in lp->fetches */
	auth_loop_t *lp;
	drp_fetchbuf_t *fb;
	drp_http_fetch_cb *cb;
	void *arg;
	drp_worker_t *w;
	drp_runtime_t *rt;
	unsigned conn_id;
};

struct drp_http_fetch_resp {
	const drp_fetchbuf_result_t *res;
	char **vals; /* values handed out by fetch_header */
	unsigned n_vals;
};

static auth_loop_t *loop_of(drp_auth_host_t *h, struct ev_loop *loop);

/* The pending lists: unlink/link on the loop's thread. */
#define LIST_LINK(head, e)                                                     \
	do {                                                                   \
		(e)->prev = NULL;                                              \
		(e)->next = (head);                                            \
		if ((head) != NULL)                                            \
			(head)->prev = (e);                                    \
		(head) = (e);                                                  \
	} while (0)
#define LIST_UNLINK(head, e)                                                   \
	do {                                                                   \
		if ((e)->prev != NULL)                                         \
			(e)->prev->next = (e)->next;                           \
		else                                                           \
			(head) = (e)->next;                                    \
		if ((e)->next != NULL)                                         \
			(e)->next->prev = (e)->prev;                           \
		(e)->prev = (e)->next = NULL;                                  \
	} while (0)

int drp_auth_parse_url(const char *url, bool *tls, char host[DRP_HOST_MAX + 1],
		       uint16_t *port, char **target)
{
	const char *p;
	if (strncasecmp(url, "https://", 8) == 0) {
		*tls = true;
		p = url + 8;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		*tls = false;
		p = url + 7;
	} else {
		return -EINVAL;
	}
	size_t alen = strcspn(p, "/?#");
	if (alen == 0 || memchr(p, '@', alen) != NULL)
		return -EINVAL;
	if (drp_uri_parse_host_header(p, alen, host, port) < 0)
		return -EINVAL;
	if (*port == 0)
		*port = *tls ? 443 : 80;
	const char *rest = p + alen;
	if (strchr(rest, '#') != NULL)
		return -EINVAL;
	for (const char *q = rest; *q; q++)
		if ((unsigned char)*q <= 0x20 || *q == 0x7f)
			return -EINVAL;
	if (*rest == '\0') {
		*target = drp_strdup("/");
	} else if (*rest == '?') {
		size_t n = strlen(rest) + 2;
		*target = drp_malloc(n);
		snprintf(*target, n, "/%s", rest);
	} else {
		*target = drp_strdup(rest);
	}
	return 0;
}

static void http_fetch_done(void *arg, drp_fetchbuf_result_t *res)
{
	drp_http_fetch_t *hf = arg;
	hf->fb = NULL;
	LIST_UNLINK(hf->lp->fetches, hf);
	drp_http_fetch_resp_t resp = {.res = res};
	int status;
	const char *body = "";
	size_t body_len = 0;
	if (res->err < 0) {
		status = res->err;
	} else {
		status = res->status;
		body_len = drp_buf_pending(&res->body);
		drp_buf_append(&res->body, "", 1);
		body = drp_buf_head(&res->body);
	}
	drp_auth_cur_t saved = drp_auth_cur_enter(hf->w, hf->rt, hf->conn_id);
	hf->cb(hf->arg, status, res->err < 0 ? NULL : &resp, body, body_len);
	drp_auth_cur_leave(saved);
	for (unsigned i = 0; i < resp.n_vals; i++)
		free(resp.vals[i]);
	free(resp.vals);
	drp_runtime_unref(hf->rt);
	free(hf);
}

/* Framing and routing are the fetch's business. */
static bool header_reserved(const char *line, size_t name_len)
{
	static const char *const reserved[] = {
		"Host", "Content-Length", "Transfer-Encoding", "Connection"};
	for (size_t i = 0; i < DRP_ARRAY_SIZE(reserved); i++)
		if (strlen(reserved[i]) == name_len &&
		    strncasecmp(line, reserved[i], name_len) == 0)
			return true;
	return false;
}

static drp_http_fetch_t *host_http_fetch(drp_host_ctx_t *ctx,
					 const char *method, const char *url,
					 const char *const *headers,
					 const void *body, size_t body_len,
					 drp_http_fetch_cb *cb, void *arg)
{
	const drp_auth_cur_t *c = drp_auth_cur();
	if (c == NULL || c->w == NULL) {
		drp_log_err(DRP_LOG_PLUGIN,
			    "%s: http_fetch outside a hook or callback",
			    ctx->plugin);
		return NULL;
	}
	auth_loop_t *lp = loop_of(ctx->host->core, c->w->loop);
	if (lp->stopped)
		return NULL; /* shutting down */
	if (cb == NULL || method == NULL || url == NULL ||
	    (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0 &&
	     strcmp(method, "HEAD") != 0) ||
	    body_len > HTTP_FETCH_MAX_REQ_BODY || (body_len && body == NULL))
		return NULL;
	bool tls;
	char host[DRP_HOST_MAX + 1];
	uint16_t port;
	char *target;
	if (drp_auth_parse_url(url, &tls, host, &port, &target) < 0) {
		drp_log_warning(DRP_LOG_PLUGIN, "%s%s%s: http_fetch: bad URL",
				ctx->plugin, ctx->instance ? "/" : "",
				ctx->instance ? ctx->instance : "");
		return NULL;
	}
	drp_buf_t hdr = {0};
	for (const char *const *h = headers; h && *h; h++) {
		const char *colon = strchr(*h, ':');
		if (colon == NULL || colon == *h) {
			drp_buf_free(&hdr);
			free(target);
			return NULL;
		}
		size_t nl = (size_t)(colon - *h);
		char *name = drp_strndup(*h, nl);
		const char *value = colon + 1;
		value += strspn(value, " \t");
		bool ok = drp_auth_header_ok(name, value);
		free(name);
		if (!ok) {
			drp_buf_free(&hdr);
			free(target);
			return NULL;
		}
		if (header_reserved(*h, nl))
			continue;
		drp_buf_printf(&hdr, "%.*s: %s\r\n", (int)nl, *h, value);
	}
	bool with_body = strcmp(method, "POST") == 0 || body_len > 0;
	drp_fetch_req_t fr = {
		.tls = tls,
		.host = host,
		.port = port,
		.method = method,
		.target = target,
		.headers = drp_buf_head(&hdr),
		.headers_len = drp_buf_pending(&hdr),
		.body_mode =
			with_body ? DRP_HTTP_BODY_LENGTH : DRP_HTTP_BODY_NONE,
		.body_len = body_len,
		.conn_id = c->conn_id,
	};
	drp_http_fetch_t *hf = DRP_NEW(drp_http_fetch_t);
	hf->lp = lp;
	LIST_LINK(lp->fetches, hf);
	hf->cb = cb;
	hf->arg = arg;
	hf->w = c->w;
	hf->rt = drp_runtime_ref(c->rt);
	hf->conn_id = c->conn_id;
	hf->fb = drp_fetchbuf_start(&c->w->upstream, c->rt->upstream, &fr,
				    DRP_HTTP_FETCH_MAX_BODY, http_fetch_done,
				    hf);
	if (body_len > 0) {
		drp_fetch_t *f = drp_fetchbuf_fetch(hf->fb);
		drp_require(drp_fetch_send_body(f, body, body_len) == body_len);
		drp_fetch_end_body(f);
	}
	/* The header block may hold credentials. */
	if (hdr.data != NULL)
		explicit_bzero(hdr.data, hdr.cap);
	drp_buf_free(&hdr);
	free(target);
	return hf;
}

static void host_http_cancel(drp_http_fetch_t *hf)
{
	LIST_UNLINK(hf->lp->fetches, hf);
	if (hf->fb != NULL)
		drp_fetchbuf_cancel(hf->fb);
	drp_runtime_unref(hf->rt);
	free(hf);
}

static const char *host_fetch_header(const drp_http_fetch_resp_t *cresp,
				     const char *name)
{
	drp_http_fetch_resp_t *resp = (drp_http_fetch_resp_t *)(uintptr_t)cresp;
	char *v = drp_auth_headers_get(&resp->res->head, name);
	if (v == NULL)
		return NULL;
	resp->vals =
		drp_realloc(resp->vals, (resp->n_vals + 1) * sizeof(char *));
	resp->vals[resp->n_vals++] = v;
	return v;
}

/* ---- timers ---- */

struct drp_timer {
	struct drp_timer *prev, *next; /* in lp->timers */
	auth_loop_t *lp;
	ev_timer t;
	drp_worker_t *w;
	drp_runtime_t *rt;
	unsigned conn_id;
	drp_timer_cb *cb;
	void *arg;
};

static void timer_fire(struct ev_loop *loop, ev_timer *t, int revents)
{
	drp_timer_t *tm = DRP_CONTAINER_OF(t, drp_timer_t, t);
	ev_timer_stop(loop, t);
	LIST_UNLINK(tm->lp->timers, tm);
	drp_auth_cur_t saved = drp_auth_cur_enter(tm->w, tm->rt, tm->conn_id);
	tm->cb(tm->arg);
	drp_auth_cur_leave(saved);
	drp_runtime_unref(tm->rt);
	free(tm);
}

static drp_timer_t *host_timer_start(drp_host_ctx_t *ctx, double after,
				     drp_timer_cb *cb, void *arg)
{
	const drp_auth_cur_t *c = drp_auth_cur();
	if (c == NULL || c->w == NULL || cb == NULL || !(after >= 0)) {
		drp_log_err(DRP_LOG_PLUGIN,
			    "%s: timer_start outside a hook or callback",
			    ctx->plugin);
		return NULL;
	}
	auth_loop_t *lp = loop_of(ctx->host->core, c->w->loop);
	if (lp->stopped)
		return NULL; /* shutting down */
	drp_timer_t *tm = DRP_NEW(drp_timer_t);
	tm->lp = lp;
	LIST_LINK(lp->timers, tm);
	tm->w = c->w;
	tm->rt = drp_runtime_ref(c->rt);
	tm->conn_id = c->conn_id;
	tm->cb = cb;
	tm->arg = arg;
	ev_timer_init(&tm->t, timer_fire, after, 0.);
	ev_timer_start(c->w->loop, &tm->t);
	return tm;
}

static void host_timer_stop(drp_timer_t *tm)
{
	LIST_UNLINK(tm->lp->timers, tm);
	ev_timer_stop(tm->w->loop, &tm->t);
	drp_runtime_unref(tm->rt);
	free(tm);
}

/* ---- token waits, delivered on the waiter's loop ---- */

struct drp_token_wait {
	struct drp_token_wait *next;
	drp_tokencache_waiter_t *tw;
	auth_loop_t *lp;
	drp_worker_t *w;
	drp_runtime_t *rt;
	unsigned conn_id;
	drp_token_cb *cb;
	void *arg;
	bool queued; /* guarded by lp->lock */
	char *token; /* the delivery: a copy, NULL when the fetch failed */
};

static void wait_free(drp_token_wait_t *tw)
{
	if (tw->token != NULL) {
		explicit_bzero(tw->token, strlen(tw->token));
		free(tw->token);
	}
	if (tw->rt != NULL)
		drp_runtime_unref(tw->rt);
	free(tw);
}

static void loop_async_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	auth_loop_t *lp = DRP_CONTAINER_OF(a, auth_loop_t, async);
	/* One at a time: a callback may withdraw a later waiter. */
	for (;;) {
		pthread_mutex_lock(&lp->lock);
		drp_token_wait_t *tw = lp->head;
		if (tw != NULL) {
			lp->head = tw->next;
			if (lp->head == NULL)
				lp->tail = NULL;
			tw->queued = false;
		}
		pthread_mutex_unlock(&lp->lock);
		if (tw == NULL)
			return;
		drp_auth_cur_t saved =
			drp_auth_cur_enter(tw->w, tw->rt, tw->conn_id);
		tw->cb(tw->arg, tw->token);
		drp_auth_cur_leave(saved);
		wait_free(tw);
	}
}

/* Runs on the thread that ended the token fetch. */
static void wait_trampoline(void *arg, const char *token)
{
	drp_token_wait_t *tw = arg;
	auth_loop_t *lp = tw->lp;
	char *copy = token ? drp_strdup(token) : NULL;
	pthread_mutex_lock(&lp->lock);
	tw->token = copy;
	tw->queued = true;
	tw->next = NULL;
	if (lp->tail)
		lp->tail->next = tw;
	else
		lp->head = tw;
	lp->tail = tw;
	pthread_mutex_unlock(&lp->lock);
	ev_async_send(lp->loop, &lp->async);
}

/* This loop's delivery queue; made on first use, on the loop's thread. */
static auth_loop_t *loop_of(drp_auth_host_t *h, struct ev_loop *loop)
{
	pthread_mutex_lock(&h->loops_lock);
	auth_loop_t *lp = h->loops;
	while (lp != NULL && lp->loop != loop)
		lp = lp->next;
	if (lp == NULL) {
		lp = DRP_NEW(auth_loop_t);
		lp->loop = loop;
		pthread_mutex_init(&lp->lock, NULL);
		ev_async_init(&lp->async, loop_async_cb);
		ev_async_start(loop, &lp->async);
		lp->next = h->loops;
		h->loops = lp;
	}
	pthread_mutex_unlock(&h->loops_lock);
	return lp;
}

static int host_token_acquire(drp_host_ctx_t *ctx, const char *scope,
			      char **token, drp_token_cb *cb, void *arg,
			      drp_token_wait_t **wait)
{
	const drp_auth_cur_t *c = drp_auth_cur();
	if (c == NULL || c->w == NULL || cb == NULL || wait == NULL)
		return -EINVAL;
	drp_auth_host_t *h = ctx->host->core;
	/* Complete before registering: another thread may deliver at once. */
	drp_token_wait_t *tw = DRP_NEW(drp_token_wait_t);
	tw->lp = loop_of(h, c->w->loop);
	tw->w = c->w;
	tw->conn_id = c->conn_id;
	tw->cb = cb;
	tw->arg = arg;
	int r = drp_tokencache_acquire(ctx->host->tokens, ctx, scope,
				       ctx->host->now(ctx->host), token,
				       wait_trampoline, tw, &tw->tw);
	if (r != DRP_TOKENCACHE_WAIT) {
		wait_free(tw);
		return r;
	}
	tw->rt = drp_runtime_ref(c->rt);
	*wait = tw;
	return r;
}

static void host_token_wait_cancel(drp_host_ctx_t *ctx, drp_token_wait_t *tw)
{
	if (!drp_tokencache_cancel(ctx->host->tokens, tw->tw)) {
		/* Already delivered to our queue (cancel waited for that):
		 * take it out again. */
		auth_loop_t *lp = tw->lp;
		pthread_mutex_lock(&lp->lock);
		if (tw->queued) {
			drp_token_wait_t **pp = &lp->head, *prev = NULL;
			while (*pp != NULL && *pp != tw) {
				prev = *pp;
				pp = &(*pp)->next;
			}
			if (*pp == tw) {
				*pp = tw->next;
				if (lp->tail == tw)
					lp->tail = prev;
			}
			tw->queued = false;
		}
		pthread_mutex_unlock(&lp->lock);
	}
	wait_free(tw);
}

/* ---- lifetime ---- */

static drp_auth_host_t *host_new(const drp_host_api_t *req)
{
	drp_auth_host_t *h = DRP_NEW(drp_auth_host_t);
	pthread_mutex_init(&h->loops_lock, NULL);
	/* The core's entries: the requests' (auth.c) and the services
	 * that run on a worker loop (here); plugin/host.c makes the table
	 * of them and its own. */
	drp_host_api_t core = {
		.req_get = req->req_get,
		.req_header = req->req_header,
		.req_set_header = req->req_set_header,
		.req_set_data = req->req_set_data,
		.req_get_data = req->req_get_data,
		.auth_done = req->auth_done,
		.http_fetch = host_http_fetch,
		.http_cancel = host_http_cancel,
		.fetch_header = host_fetch_header,
		.timer_start = host_timer_start,
		.timer_stop = host_timer_stop,
		.token_acquire = host_token_acquire,
		.token_wait_cancel = host_token_wait_cancel,
	};
	drp_plugin_host_init(&h->ph, &core);
	h->ph.core = h;
	h->ph.conn_id = cur_conn_id;
	h->handles = drp_auth_handles_new();
	h->loader = drp_plugin_loader_new(&h->ph, NULL);
	if (h->loader == NULL) {
		drp_auth_handles_free(h->handles);
		drp_plugin_host_fini(&h->ph);
		pthread_mutex_destroy(&h->loops_lock);
		free(h);
		return NULL;
	}
	return h;
}

static void host_free(drp_auth_host_t *h)
{
	drp_plugin_loader_free(h->loader);
	/* Identities own token-cache entries: before the cache goes. */
	drp_auth_handles_free(h->handles);
	drp_plugin_host_fini(&h->ph);
	/* The worker loops are gone by now: only our memory is left. */
	while (h->loops != NULL) {
		auth_loop_t *lp = h->loops;
		h->loops = lp->next;
		while (lp->head != NULL) {
			drp_token_wait_t *tw = lp->head;
			lp->head = tw->next;
			wait_free(tw);
		}
		pthread_mutex_destroy(&lp->lock);
		free(lp);
	}
	pthread_mutex_destroy(&h->loops_lock);
	free(h);
}

drp_auth_host_t *drp_auth_host_ref(const drp_host_api_t *req)
{
	pthread_mutex_lock(&host_lock);
	if (the_host == NULL)
		the_host = host_new(req);
	if (the_host != NULL)
		the_host->refs++;
	drp_auth_host_t *h = the_host;
	pthread_mutex_unlock(&host_lock);
	return h;
}

void drp_auth_host_unref(drp_auth_host_t *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&host_lock);
	bool last = --h->refs == 0;
	if (last)
		the_host = NULL;
	pthread_mutex_unlock(&host_lock);
	if (last)
		host_free(h);
}

void drp_auth_worker_stop(struct drp_worker *w)
{
	pthread_mutex_lock(&host_lock);
	drp_auth_host_t *h = the_host;
	if (h != NULL)
		h->refs++;
	pthread_mutex_unlock(&host_lock);
	if (h == NULL)
		return;
	pthread_mutex_lock(&h->loops_lock);
	auth_loop_t *lp = h->loops;
	while (lp != NULL && lp->loop != w->loop)
		lp = lp->next;
	pthread_mutex_unlock(&h->loops_lock);
	if (lp != NULL) {
		lp->stopped = true;
		/* One at a time from the head: a callback may cancel
		 * others. Nothing new can start (lp->stopped). */
		while (lp->fetches != NULL || lp->timers != NULL) {
			if (lp->fetches != NULL) {
				drp_http_fetch_t *hf = lp->fetches;
				LIST_UNLINK(lp->fetches, hf);
				if (hf->fb != NULL)
					drp_fetchbuf_cancel(hf->fb);
				drp_auth_cur_t saved = drp_auth_cur_enter(
					hf->w, hf->rt, hf->conn_id);
				hf->cb(hf->arg, -ECANCELED, NULL, "", 0);
				drp_auth_cur_leave(saved);
				drp_runtime_unref(hf->rt);
				free(hf);
				continue;
			}
			/* A timer's callback is the plugin's only chance to
			 * free what it holds: it runs now, early. */
			drp_timer_t *tm = lp->timers;
			LIST_UNLINK(lp->timers, tm);
			ev_timer_stop(w->loop, &tm->t);
			drp_auth_cur_t saved =
				drp_auth_cur_enter(tm->w, tm->rt, tm->conn_id);
			tm->cb(tm->arg);
			drp_auth_cur_leave(saved);
			drp_runtime_unref(tm->rt);
			free(tm);
		}
		/* Token deliveries the callbacks caused, on this loop. */
		loop_async_cb(w->loop, &lp->async, 0);
	}
	drp_auth_host_unref(h);
}

drp_plugin_loader_t *drp_auth_host_loader(drp_auth_host_t *h)
{
	return h->loader;
}

drp_plugin_host_t *drp_auth_host_plugin_host(drp_auth_host_t *h)
{
	return &h->ph;
}

drp_auth_handles_t *drp_auth_host_handles(drp_auth_host_t *h)
{
	return h->handles;
}
