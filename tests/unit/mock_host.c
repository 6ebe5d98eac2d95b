/* SPDX-License-Identifier: MIT */
#include "mock_host.h"

#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/mem.h"

static mock_host_t *from_ctx(drp_host_ctx_t *ctx)
{
	return (mock_host_t *)(void *)ctx->host;
}

static void mock_log(drp_host_ctx_t *ctx, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void mock_log(drp_host_ctx_t *ctx, int level, const char *fmt, ...)
{
	mock_host_t *m = from_ctx(ctx);
	char msg[1024], line[1200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(line, sizeof(line), "<%d> %s%s%s: %s", level, ctx->plugin,
		 ctx->instance ? "/" : "", ctx->instance ? ctx->instance : "",
		 msg);
	m->log = drp_realloc(m->log, (m->n_log + 1) * sizeof(*m->log));
	m->log[m->n_log++] = drp_strdup(line);
}

static const char *mock_req_get(const drp_auth_req_t *req, int field)
{
	if (field < 0 || field >= 8)
		return NULL;
	return req->field[field];
}

const char *mock_req_header(const struct drp_auth_req *r, const char *name)
{
	for (unsigned i = 0; i < r->n_headers; i++)
		if (strcasecmp(r->hname[i], name) == 0)
			return r->hvalue[i];
	return NULL;
}

static const char *mock_req_header_api(const drp_auth_req_t *req,
				       const char *name)
{
	return mock_req_header(req, name);
}

static int mock_req_set_header(drp_auth_req_t *req, const char *name,
			       const char *value)
{
	if (strpbrk(value, "\r\n") != NULL || strpbrk(name, "\r\n: ") != NULL)
		return -EINVAL;
	for (unsigned i = 0; i < req->n_headers; i++) {
		if (strcasecmp(req->hname[i], name) == 0) {
			free(req->hvalue[i]);
			req->hvalue[i] = drp_strdup(value);
			return 0;
		}
	}
	if (req->n_headers == MOCK_MAX_HEADERS)
		return -ENOSPC;
	req->hname[req->n_headers] = drp_strdup(name);
	req->hvalue[req->n_headers++] = drp_strdup(value);
	return 0;
}

static void mock_req_set_data(drp_auth_req_t *req, void *data)
{
	req->data = data;
}

static void *mock_req_get_data(const drp_auth_req_t *req)
{
	return req->data;
}

static void mock_auth_done(drp_auth_req_t *req, int result)
{
	/* Contract checks: never inside the hook, exactly once. */
	ck_assert_msg(!req->in_hook, "auth_done called inside the hook");
	ck_assert_msg(req->done_calls == 0, "auth_done called twice");
	req->done_calls++;
	req->done_result = result;
}

static drp_http_fetch_t *mock_http_fetch(drp_host_ctx_t *ctx,
					 const char *method, const char *url,
					 const char *const *headers,
					 const void *body, size_t body_len,
					 drp_http_fetch_cb *cb, void *arg)
{
	mock_host_t *m = from_ctx(ctx);
	if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0)
		return NULL;
	struct drp_http_fetch *f = DRP_NEW(struct drp_http_fetch);
	f->method = drp_strdup(method);
	f->url = drp_strdup(url);
	size_t n = 1;
	for (const char *const *h = headers; h && *h; h++)
		n += strlen(*h) + 1;
	f->headers = drp_calloc(1, n);
	for (const char *const *h = headers; h && *h; h++) {
		strcat(f->headers, *h);
		strcat(f->headers, "\n");
	}
	f->body = body ? drp_strndup(body, body_len) : NULL;
	f->cb = cb;
	f->arg = arg;
	f->next = m->fetches;
	m->fetches = f;
	m->n_fetches++;
	return f;
}

static void mock_http_cancel(drp_http_fetch_t *f)
{
	ck_assert_msg(!f->completed, "http_cancel after completion");
	f->cancelled = true;
}

/* A response is the NULL-terminated header array itself. */
struct drp_http_fetch_resp {
	const char *const *headers;
};

static const char *mock_fetch_header(const drp_http_fetch_resp_t *resp,
				     const char *name)
{
	size_t n = strlen(name);
	for (const char *const *h = resp->headers; h && *h; h++)
		if (strncasecmp(*h, name, n) == 0 && (*h)[n] == ':')
			return *h + n + 1 + strspn(*h + n + 1, " ");
	return NULL;
}

static drp_timer_t *mock_timer_start(drp_host_ctx_t *ctx, double after,
				     drp_timer_cb *cb, void *arg)
{
	mock_host_t *m = from_ctx(ctx);
	struct drp_timer *t = DRP_NEW(struct drp_timer);
	t->at = m->now + after;
	t->cb = cb;
	t->arg = arg;
	t->next = m->timers;
	m->timers = t;
	return t;
}

static void mock_timer_stop(drp_timer_t *t)
{
	ck_assert_msg(!t->fired, "timer_stop after it fired");
	t->stopped = true;
}

static double mock_now(drp_plugin_host_t *h)
{
	return ((mock_host_t *)(void *)h)->now;
}

void mock_host_init(mock_host_t *m)
{
	*m = (mock_host_t){.now = 1000};
	const drp_host_api_t core = {
		.req_get = mock_req_get,
		.req_header = mock_req_header_api,
		.req_set_header = mock_req_set_header,
		.req_set_data = mock_req_set_data,
		.req_get_data = mock_req_get_data,
		.auth_done = mock_auth_done,
		.http_fetch = mock_http_fetch,
		.http_cancel = mock_http_cancel,
		.fetch_header = mock_fetch_header,
		.timer_start = mock_timer_start,
		.timer_stop = mock_timer_stop,
	};
	drp_plugin_host_init(&m->host, &core);
	m->host.api.log = mock_log; /* the log lines are the tests' to read */
	m->host.now = mock_now;
}

void mock_host_fini(mock_host_t *m)
{
	drp_plugin_host_fini(&m->host);
	for (unsigned i = 0; i < m->n_log; i++)
		free(m->log[i]);
	free(m->log);
	while (m->fetches != NULL) {
		struct drp_http_fetch *f = m->fetches;
		m->fetches = f->next;
		free(f->method);
		free(f->url);
		free(f->headers);
		free(f->body);
		free(f);
	}
	while (m->timers != NULL) {
		struct drp_timer *t = m->timers;
		m->timers = t->next;
		free(t);
	}
}

unsigned mock_log_count(const mock_host_t *m, const char *needle)
{
	unsigned n = 0;
	for (unsigned i = 0; i < m->n_log; i++)
		if (strstr(m->log[i], needle) != NULL)
			n++;
	return n;
}

const char *mock_log_dump(const mock_host_t *m)
{
	static char buf[16384];
	size_t n = 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < m->n_log && n < sizeof(buf); i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\n",
				      m->log[i]);
	return buf;
}

void mock_req_init(struct drp_auth_req *r, const char *method, const char *url,
		   const char *registry, const char *repo, const char *actions)
{
	*r = (struct drp_auth_req){0};
	r->field[DRP_REQ_METHOD] = method;
	r->field[DRP_REQ_URL] = url;
	/* host part of the url */
	r->field[DRP_REQ_REGISTRY] = registry;
	r->field[DRP_REQ_REPOSITORY] = repo;
	r->field[DRP_REQ_ACTIONS] = actions;
}

void mock_req_fini(struct drp_auth_req *r)
{
	for (unsigned i = 0; i < r->n_headers; i++) {
		free(r->hname[i]);
		free(r->hvalue[i]);
	}
	r->n_headers = 0;
}

struct drp_http_fetch *mock_fetch_nth(const mock_host_t *m, unsigned idx)
{
	if (idx >= m->n_fetches)
		return NULL;
	struct drp_http_fetch *f = m->fetches;
	for (unsigned i = m->n_fetches - 1; i > idx; i--)
		f = f->next;
	return f;
}

void mock_fetch_complete(mock_host_t *m, struct drp_http_fetch *f, int status,
			 const char *const *headers, const char *body)
{
	(void)m;
	ck_assert_msg(!f->cancelled, "completing a cancelled fetch");
	ck_assert_msg(!f->completed, "completing a fetch twice");
	f->completed = true;
	struct drp_http_fetch_resp resp = {.headers = headers};
	f->cb(f->arg, status, status > 0 ? &resp : NULL, body ? body : "",
	      body ? strlen(body) : 0);
}

void mock_timers_advance(mock_host_t *m, double seconds)
{
	m->now += seconds;
	for (struct drp_timer *t = m->timers; t; t = t->next) {
		if (!t->stopped && !t->fired && t->at <= m->now) {
			t->fired = true;
			t->cb(t->arg);
		}
	}
}
