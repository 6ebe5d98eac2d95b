/* SPDX-License-Identifier: MIT */
/*
 * The core's auth layer (src/auth/auth.c, auth_host.c) with the real
 * in-tree basic plugin, against a fake upstream fetch: the test plays the
 * fetch (calls the hooks as fetch.c does, records retries and failures)
 * and the buffered fetches the plugin starts for tokens (records them,
 * answers them). Worker loops are real libev loops, so token waiters are
 * delivered through the auth host's ev_async like in the daemon.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "http/parse.h"
#include "auth/auth.h"
#include "auth/auth_int.h"
#include "core/exchange.h"
#include "upstream/fetchbuf.h"
#include "proxy/server.h"
#include "auth/users.h"
#include "proxy/worker.h"
#include "util/log.h"
#include "util/mem.h"

Suite *auth_suite(void);

#ifndef PLUGINS_DIR
#error "PLUGINS_DIR must name plugins/ in the build tree"
#endif

/* ---- the fake fetch (what fetch.c provides to the hooks) ---- */

struct drp_fetch {
	char host[256]; /* of the current attempt: a test sets it (and tls,
			   port) to play a redirect */
	bool tls;
	uint16_t port;
	char orig_host[256];
	uint16_t orig_port;
	char method[16];
	char target[256];
	unsigned conn_id;
	drp_fetch_hooks_t hooks;
	bool has_hooks;
	int retries;
	int fail_status;
	char fail_reason[512];
	drp_buf_t body; /* for the token POSTs of fetchbuf */
	bool body_ended;
	/* drp_fetch_new: the realm's check of a client's credentials */
	const drp_fetch_sink_t *sink;
	void *sarg;
	bool started;
	int status; /* the final response's, for drp_fetch_upstream_status */
};

/* The last fetch made (the realm's check of a client's credentials). */
static drp_fetch_t *last_fetch;

const char *drp_fetch_host(const drp_fetch_t *f)
{
	return f->host;
}
/* fetch.c's rule: the request's own origin, over TLS. */
bool drp_fetch_at_origin(const drp_fetch_t *f)
{
	return f->tls && drp_uri_same_origin(true, f->orig_host, f->orig_port,
					     f->tls, f->host, f->port);
}
const char *drp_fetch_method(const drp_fetch_t *f)
{
	return f->method;
}
const char *drp_fetch_target(const drp_fetch_t *f)
{
	return f->target;
}
unsigned drp_fetch_conn_id(const drp_fetch_t *f)
{
	return f->conn_id;
}
void drp_fetch_set_hooks(drp_fetch_t *f, const drp_fetch_hooks_t *hooks)
{
	f->hooks = *hooks;
	f->has_hooks = true;
}
void drp_fetch_retry(drp_fetch_t *f)
{
	f->retries++;
}
void drp_fetch_auth_fail(drp_fetch_t *f, int http_status, const char *reason)
{
	if (f->fail_status != 0)
		return;
	f->fail_status = http_status;
	snprintf(f->fail_reason, sizeof(f->fail_reason), "%s", reason);
}
size_t drp_fetch_send_body(drp_fetch_t *f, const char *data, size_t len)
{
	drp_buf_append(&f->body, data, len);
	return len;
}
void drp_fetch_end_body(drp_fetch_t *f)
{
	f->body_ended = true;
}
drp_fetch_t *drp_fetch_new(drp_upstream_t *ctx, drp_upstream_conf_t *ucf,
			   const drp_fetch_req_t *req,
			   const drp_fetch_sink_t *sink, void *sink_arg)
{
	drp_fetch_t *f = DRP_NEW(drp_fetch_t);
	snprintf(f->host, sizeof(f->host), "%s", req->host);
	snprintf(f->orig_host, sizeof(f->orig_host), "%s", req->host);
	f->tls = req->tls;
	f->port = f->orig_port = req->port;
	snprintf(f->method, sizeof(f->method), "%s", req->method);
	snprintf(f->target, sizeof(f->target), "%s", req->target);
	f->conn_id = req->conn_id;
	f->sink = sink;
	f->sarg = sink_arg;
	last_fetch = f;
	return f;
}
int drp_fetch_upstream_status(const drp_fetch_t *f)
{
	return f->status;
}
void drp_fetch_start(drp_fetch_t *f)
{
	f->started = true;
}

/* ---- the fake fetchbuf (token requests of the plugin) ---- */

struct drp_fetchbuf {
	struct drp_fetchbuf *next;
	drp_fetch_t f;
	bool tls;
	uint16_t port;
	char *headers;
	drp_fetchbuf_cb cb;
	void *arg;
	bool done, cancelled;
};

static struct drp_fetchbuf *fbs; /* newest first */
static unsigned n_fbs;

drp_fetchbuf_t *drp_fetchbuf_start(drp_upstream_t *ctx,
				   drp_upstream_conf_t *ucf,
				   const drp_fetch_req_t *req, size_t max_body,
				   drp_fetchbuf_cb cb, void *arg)
{
	struct drp_fetchbuf *fb = DRP_NEW(struct drp_fetchbuf);
	snprintf(fb->f.host, sizeof(fb->f.host), "%s", req->host);
	snprintf(fb->f.method, sizeof(fb->f.method), "%s", req->method);
	snprintf(fb->f.target, sizeof(fb->f.target), "%s", req->target);
	fb->tls = req->tls;
	fb->port = req->port;
	fb->headers =
		drp_strndup(req->headers ? req->headers : "", req->headers_len);
	fb->cb = cb;
	fb->arg = arg;
	fb->next = fbs;
	fbs = fb;
	n_fbs++;
	return fb;
}

drp_fetch_t *drp_fetchbuf_fetch(drp_fetchbuf_t *fb)
{
	return &fb->f;
}

void drp_fetchbuf_cancel(drp_fetchbuf_t *fb)
{
	fb->cancelled = true;
}

/* Answer a recorded token request: status, header block, body. */
static void fb_answer(struct drp_fetchbuf *fb, int status, const char *head,
		      const char *body)
{
	ck_assert(!fb->done && !fb->cancelled);
	drp_fetchbuf_result_t res = {.status = status};
	if (status < 0) {
		res.err = status;
		res.http_status = 502;
		res.reason = "test";
	}
	drp_buf_append(&res.head, head, strlen(head));
	drp_buf_append(&res.body, body, strlen(body));
	fb->done = true;
	fb->cb(fb->arg, &res);
	drp_buf_free(&res.head);
	drp_buf_free(&res.body);
}

static void fbs_free(void)
{
	while (fbs != NULL) {
		struct drp_fetchbuf *fb = fbs;
		fbs = fb->next;
		free(fb->headers);
		drp_buf_free(&fb->f.body);
		free(fb);
	}
	n_fbs = 0;
}

/* ---- runtime references ---- */

/* The fixture holds one reference of its own: the references the auth
 * layer holds are the rest (rt_refs). The last one is never dropped. */
#define rt_refs ((int)atomic_load(&rt.refs) - 1)

static void rt_destroy(drp_runtime_t *r)
{
	ck_abort_msg("the fixture's runtime lost its last reference");
}

/* ---- fixture ---- */

static drp_worker_t worker;
static drp_runtime_t rt;
static drp_conf_errors_t errs;
static char logpath[64];

#define SECTIONS                                                               \
	"[registry \"basic.test\"]\n"                                          \
	"plugin = basic\n"                                                     \
	"username = drpuser\n"                                                 \
	"password = s3cret\n"                                                  \
	"[registry \"push.test\"]\n"                                           \
	"plugin = basic\n"                                                     \
	"username = pusher\n"                                                  \
	"password = pw\n"                                                      \
	"push = proxy\n"                                                       \
	"[registry \"deny.test\"]\n"                                           \
	"plugin = basic\n"                                                     \
	"username = u\n"                                                       \
	"password = pw\n"                                                      \
	"push = deny\n"                                                        \
	"[registry \"anon.test\"]\n"

/* base64("drpuser:s3cret") */
#define BASIC_DRPUSER "Basic ZHJwdXNlcjpzM2NyZXQ="

static void setup_conf(const char *text)
{
	errs = (drp_conf_errors_t){0};
	rt.conf = drp_conf_load_string("t.ini", text, &errs);
	ck_assert_msg(rt.conf != NULL, "%s", errs.n ? errs.msg[0] : "?");
	rt.auth = drp_auth_new(rt.conf, &errs);
	ck_assert_msg(rt.auth != NULL, "%s", errs.n ? errs.msg[0] : "?");
	ck_assert_uint_eq(errs.n, 0);
}

static void setup(void)
{
	setenv(DRP_PLUGIN_DIR_ENV, PLUGINS_DIR, 1);
	snprintf(logpath, sizeof(logpath), "/tmp/test_auth.%d.log", getpid());
	unlink(logpath);
	drp_log_init(DRP_LOG_INFO, logpath);
	worker = (drp_worker_t){.loop = ev_loop_new(EVFLAG_AUTO)};
	rt = (drp_runtime_t){.destroy = rt_destroy};
	atomic_init(&rt.refs, 1);
	setup_conf("[proxy]\n" SECTIONS);
}

static void teardown(void)
{
	drp_auth_free(rt.auth);
	drp_conf_free(rt.conf);
	drp_conf_errors_free(&errs);
	fbs_free();
	ev_loop_destroy(worker.loop);
	drp_log_init(DRP_LOG_WARNING, NULL);
	unlink(logpath);
}

static char *read_log(void)
{
	static char buf[16384];
	FILE *f = fopen(logpath, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	return buf;
}

static drp_fetch_t *new_fetch(const char *host, const char *method,
			      const char *target)
{
	drp_fetch_t *f = DRP_NEW(drp_fetch_t);
	snprintf(f->host, sizeof(f->host), "%s", host);
	snprintf(f->orig_host, sizeof(f->orig_host), "%s", host);
	f->tls = true;
	f->port = f->orig_port = 443;
	snprintf(f->method, sizeof(f->method), "%s", method);
	snprintf(f->target, sizeof(f->target), "%s", target);
	f->conn_id = 7;
	return f;
}

/* The fetch is freed: what fetch_free() does with the hooks. */
static void free_fetch(drp_fetch_t *f)
{
	if (f->has_hooks && f->hooks.release)
		f->hooks.release(f->hooks.arg, f);
	drp_buf_free(&f->body);
	free(f);
}

/* fetch.c's cancel: no callback any more, the hooks are released. */
void drp_fetch_cancel(drp_fetch_t *f)
{
	free_fetch(f);
}

/* One attempt's head: decorate() on the given base header lines. */
static char *attempt(drp_fetch_t *f, const char *base)
{
	drp_buf_t h = {0};
	drp_buf_append(&h, base, strlen(base));
	if (f->has_hooks)
		f->hooks.decorate(f->hooks.arg, f, &h);
	char *s = drp_strndup(drp_buf_pending(&h) ? drp_buf_head(&h) : "",
			      drp_buf_pending(&h));
	drp_buf_free(&h);
	return s;
}

/* A 401 with these WWW-Authenticate values (NULL-terminated). */
static enum drp_fetch_auth challenge(drp_fetch_t *f, const char *const *www)
{
	drp_http_msg_t resp = {.status = 401};
	for (; www && *www; www++) {
		drp_http_header_t *h = &resp.headers[resp.num_headers++];
		h->name = "WWW-Authenticate";
		h->name_len = 16;
		h->value = *www;
		h->value_len = strlen(*www);
	}
	return f->hooks.challenge(f->hooks.arg, f, &resp);
}

static void run_loop(void)
{
	for (int i = 0; i < 10; i++)
		ev_run(worker.loop, EVRUN_NOWAIT);
}

/* ---- header blocks and URLs ---- */

/* The block as a string (buffers are not NUL-terminated). */
static const char *buf_str(const drp_buf_t *b)
{
	static char s[1024];
	snprintf(s, sizeof(s), "%.*s", (int)drp_buf_pending(b),
		 drp_buf_head(b));
	return s;
}

START_TEST(test_headers)
{
	drp_buf_t h = {0};
	const char *base = "Accept: a\r\nauthorization: Basic old\r\n"
			   "X-Authorization: keep\r\nAUTHORIZATION: x\r\n";
	drp_buf_append(&h, base, strlen(base));
	char *v = drp_auth_headers_get(&h, "Authorization");
	/* The first line of that name, any case; not a longer name. */
	ck_assert_str_eq(v, "Basic old");
	free(v);
	drp_auth_headers_set(&h, "Authorization", "Bearer t");
	ck_assert_str_eq(buf_str(&h), "Accept: a\r\nX-Authorization: keep\r\n"
				      "Authorization: Bearer t\r\n");
	drp_auth_headers_del(&h, "accept");
	ck_assert_str_eq(buf_str(&h), "X-Authorization: keep\r\n"
				      "Authorization: Bearer t\r\n");
	ck_assert_ptr_null(drp_auth_headers_get(&h, "Accept"));
	drp_buf_free(&h);

	/* Values with spaces around them are trimmed. */
	drp_buf_append(&h, "Www-Authenticate:  Basic x \r\n", 29);
	v = drp_auth_headers_get(&h, "WWW-Authenticate");
	ck_assert_str_eq(v, "Basic x");
	free(v);
	drp_buf_free(&h);

	ck_assert(drp_auth_header_ok("Authorization", "Bearer a.b-c_d~"));
	/* CR or LF would split the request. */
	ck_assert(!drp_auth_header_ok("Authorization", "Bearer a\r\nX: y"));
	ck_assert(!drp_auth_header_ok("Authorization", "a\nb"));
	/* Names are tokens. */
	ck_assert(!drp_auth_header_ok("Bad Name", "v"));
	ck_assert(!drp_auth_header_ok("", "v"));
	ck_assert(!drp_auth_header_ok("X:y", "v"));
	/* Tabs are fine in values. */
	ck_assert(drp_auth_header_ok("X", "a\tb"));
}
END_TEST

START_TEST(test_parse_url)
{
	static const struct {
		const char *url;
		int r;
		bool tls;
		const char *host;
		uint16_t port;
		const char *target;
	} cases[] = {
		/* https, default port, path and query kept */
		{"https://auth.docker.io/token?service=x&scope=y", 0, true,
		 "auth.docker.io", 443, "/token?service=x&scope=y"},
		/* http default port; empty path becomes / */
		{"http://h.test", 0, false, "h.test", 80, "/"},
		/* explicit port, host lower-cased */
		{"https://Auth.Test:8443/t", 0, true, "auth.test", 8443, "/t"},
		/* a query without a path */
		{"https://h.test?x=1", 0, true, "h.test", 443, "/?x=1"},
		/* IPv6 literal */
		{"https://[::1]:5000/v2/", 0, true, "::1", 5000, "/v2/"},
		/* scheme case does not matter */
		{"HTTPS://h.test/", 0, true, "h.test", 443, "/"},
		/* userinfo would be a credential in a URL */
		{.url = "https://u:p@h.test/", .r = -EINVAL},
		/* other schemes */
		{.url = "ftp://h.test/", .r = -EINVAL},
		{.url = "h.test/token", .r = -EINVAL},
		/* no host */
		{.url = "https:///token", .r = -EINVAL},
		/* fragments and raw spaces have no place in a request */
		{.url = "https://h.test/a#b", .r = -EINVAL},
		{.url = "https://h.test/a b", .r = -EINVAL},
		/* bad port */
		{.url = "https://h.test:0/", .r = -EINVAL},
		{.url = "https://h.test:99999/", .r = -EINVAL},
	};
	for (size_t i = 0; i < DRP_ARRAY_SIZE(cases); i++) {
		bool tls = false;
		char host[DRP_HOST_MAX + 1] = "";
		uint16_t port = 0;
		char *target = NULL;
		int r = drp_auth_parse_url(cases[i].url, &tls, host, &port,
					   &target);
		ck_assert_msg(r == cases[i].r, "%s: %d", cases[i].url, r);
		if (r == 0) {
			ck_assert_msg(tls == cases[i].tls, "%s", cases[i].url);
			ck_assert_str_eq(host, cases[i].host);
			ck_assert_uint_eq(port, cases[i].port);
			ck_assert_str_eq(target, cases[i].target);
		}
		free(target);
	}
}
END_TEST

/* ---- configuration ---- */

START_TEST(test_new_errors)
{
	drp_conf_errors_t e = {0};
	/* No section at all: a valid, empty object. */
	drp_conf_t *c = drp_conf_load_string("e.ini", "[proxy]\n", &e);
	drp_auth_t *a = drp_auth_new(c, &e);
	ck_assert_ptr_nonnull(a);
	ck_assert_uint_eq(e.n, 0);
	drp_auth_free(a);
	drp_conf_free(c);

	c = drp_conf_load_string("e.ini",
				 "[registry \"a.test\"]\n"
				 "plugin = nosuch\n"
				 "[registry \"docker.io/acme\"]\n"
				 "[registry \"index.docker.io/acme\"]\n"
				 "[registry \"b.test\"]\n"
				 "plugin = basic\n"
				 "username = u\n"
				 "password_file = /nonexistent/pw\n"
				 "colour = blue\n",
				 &e);
	ck_assert_ptr_nonnull(c);
	a = drp_auth_new(c, &e);
	ck_assert_ptr_null(a);
	/* Each with file:line, in section order; a section with an unknown
	 * key does not get as far as reading its password file. */
	ck_assert_uint_eq(e.n, 3);
	ck_assert_msg(strncmp(e.msg[0],
			      "e.ini:2: [registry \"a.test\"] plugin: cannot "
			      "load ",
			      46) == 0,
		      "%s", e.msg[0]);
	ck_assert_str_eq(e.msg[1],
			 "e.ini:4: [registry \"index.docker.io/acme\"]: "
			 "names the same registry and repository "
			 "prefix as [registry \"docker.io/acme\"] "
			 "(e.ini:3)");
	ck_assert_str_eq(e.msg[2], "e.ini:9: [registry \"b.test\"] colour: "
				   "unknown key for plugin 'basic'");
	drp_conf_errors_free(&e);
	drp_conf_free(c);
}
END_TEST

START_TEST(test_unreadable_password_file)
{
	drp_conf_errors_t e = {0};
	drp_conf_t *c =
		drp_conf_load_string("e.ini",
				     "[registry \"b.test\"]\n"
				     "plugin = basic\n"
				     "username = u\n"
				     "password_file = /nonexistent/pw\n",
				     &e);
	drp_auth_t *a = drp_auth_new(c, &e);
	ck_assert_ptr_null(a);
	ck_assert_uint_eq(e.n, 2);
	ck_assert_str_eq(e.msg[0], "e.ini:4: [registry \"b.test\"] "
				   "password_file: cannot read "
				   "'/nonexistent/pw': No such file or "
				   "directory");
	ck_assert_str_eq(e.msg[1], "e.ini:2: [registry \"b.test\"] plugin: "
				   "plugin 'basic' refused the section: the "
				   "password file cannot be read");
	drp_conf_errors_free(&e);
	drp_conf_free(c);
}
END_TEST

/* ---- Basic ---- */

START_TEST(test_no_section)
{
	drp_fetch_t *f = new_fetch("other.test", "GET", "/v2/");
	drp_auth_attach(&rt, &worker, NULL, f, "other.test", 443, NULL);
	ck_assert(!f->has_hooks);
	free_fetch(f);
}
END_TEST

START_TEST(test_basic_flow)
{
	drp_fetch_t *f =
		new_fetch("basic.test", "GET", "/v2/test/small/manifests/v1");
	drp_auth_attach(&rt, &worker, NULL, f, "basic.test", 443, "test/small");
	ck_assert(f->has_hooks);
	ck_assert_int_eq(rt_refs, 1);

	/* First attempt: the plugin does not know the scheme yet. */
	char *h = attempt(f, "Accept: x\r\n");
	ck_assert_str_eq(h, "Accept: x\r\n");
	free(h);
	const char *www[] = {"Basic realm=\"drp-basic-realm\"", NULL};
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_OK);
	/* The retry carries the proxy's Basic credentials. */
	h = attempt(f, "Accept: x\r\n");
	ck_assert_str_eq(h,
			 "Accept: x\r\nAuthorization: " BASIC_DRPUSER "\r\n");
	free(h);
	/* Refused again: 403, logged with section, plugin and user. */
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_ERROR);
	ck_assert_int_eq(f->fail_status, 403);
	ck_assert_str_eq(f->fail_reason,
			 "basic.test refused the proxy's credentials for this "
			 "request (see [registry \"basic.test\"] in the "
			 "proxy's configuration)");
	ck_assert_msg(strstr(read_log(),
			     "[c000007] GET basic.test/v2/test/small/manifests/"
			     "v1: the registry refused (HTTP 401) the "
			     "credentials of [registry \"basic.test\"] (plugin "
			     "basic, user 'drpuser')") != NULL,
		      "%s", read_log());
	/* Never the secret. */
	ck_assert_ptr_null(strstr(read_log(), "s3cret"));
	ck_assert_ptr_null(strstr(read_log(), "ZHJwdXNlcjpzM2NyZXQ"));
	free_fetch(f);
	ck_assert_int_eq(rt_refs, 0);

	/* Now the plugin knows: Basic goes up front, no 401 round trip. */
	f = new_fetch("basic.test", "HEAD", "/v2/test/small/blobs/sha256:1");
	drp_auth_attach(&rt, &worker, NULL, f, "basic.test", 443, "test/small");
	h = attempt(f, "");
	ck_assert_str_eq(h, "Authorization: " BASIC_DRPUSER "\r\n");
	free(h);
	/* A redirect to a CDN: no credentials there. */
	snprintf(f->host, sizeof(f->host), "cdn.test");
	h = attempt(f, "Range: bytes=0-\r\n");
	ck_assert_str_eq(h, "Range: bytes=0-\r\n");
	free(h);
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_DECLINED);
	ck_assert_int_eq(f->fail_status, 0);
	free_fetch(f);
}
END_TEST

/* The same host on another port or scheme is another origin: the
 * proxy's credentials stay behind (the plugin is not even asked), also
 * on a 401 from there; the same origin, however spelt, gets them. */
static const struct {
	bool tls;
	const char *host;
	uint16_t port;
	bool creds;
} redirects[] = {
	{false, "basic.test", 8080, false}, {true, "basic.test", 6443, false},
	{false, "basic.test", 80, false},   {false, "basic.test", 443, false},
	{true, "cdn.test", 443, false},	    {true, "BASIC.TEST", 443, true},
	{true, "basic.test.", 443, true},   {true, "basic.test", 443, true},
};

START_TEST(test_redirect_origin)
{
	/* Teach the plugin that the registry wants Basic. */
	drp_fetch_t *f = new_fetch("basic.test", "GET", "/v2/");
	drp_auth_attach(&rt, &worker, NULL, f, "basic.test", 443, NULL);
	free(attempt(f, ""));
	const char *www[] = {"Basic realm=\"r\"", NULL};
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_OK);
	free_fetch(f);

	f = new_fetch("basic.test", "GET", "/v2/test/small/blobs/sha256:1");
	drp_auth_attach(&rt, &worker, NULL, f, "basic.test", 443, "test/small");
	ck_assert_str_eq(drp_auth_req_get(f->hooks.arg, DRP_REQ_ORIGIN),
			 "https://basic.test:443");
	char *h = attempt(f, "");
	ck_assert_str_eq(h, "Authorization: " BASIC_DRPUSER "\r\n");
	free(h);
	f->tls = redirects[_i].tls;
	snprintf(f->host, sizeof(f->host), "%s", redirects[_i].host);
	f->port = redirects[_i].port;
	h = attempt(f, "Range: bytes=0-\r\n");
	if (redirects[_i].creds) {
		ck_assert_str_eq(
			h, "Range: bytes=0-\r\nAuthorization: " BASIC_DRPUSER
			   "\r\n");
	} else {
		ck_assert_str_eq(h, "Range: bytes=0-\r\n");
		ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_DECLINED);
	}
	free(h);
	ck_assert_int_eq(f->fail_status, 0);
	free_fetch(f);
}
END_TEST

START_TEST(test_client_credentials_win)
{
	drp_fetch_t *f =
		new_fetch("basic.test", "GET", "/v2/test/small/manifests/v1");
	drp_auth_attach(&rt, &worker, NULL, f, "basic.test", 443, "test/small");
	char *h = attempt(f, "Authorization: Basic Y2xpZW50OnB3\r\n");
	ck_assert_str_eq(h, "Authorization: Basic Y2xpZW50OnB3\r\n");
	free(h);
	const char *www[] = {"Basic realm=\"r\"", NULL};
	/* The client's own 401 goes back to the client. */
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_DECLINED);
	h = attempt(f, "Authorization: Basic Y2xpZW50OnB3\r\n");
	ck_assert_str_eq(h, "Authorization: Basic Y2xpZW50OnB3\r\n");
	free(h);
	ck_assert_int_eq(f->fail_status, 0);
	free_fetch(f);
}
END_TEST

START_TEST(test_push_policy)
{
	const char *www[] = {"Basic realm=\"r\"", NULL};
	/* push = client (default): an upload gets no proxy credentials and
	 * its 401 goes to the client. */
	drp_fetch_t *f =
		new_fetch("basic.test", "POST", "/v2/test/x/blobs/uploads/");
	drp_auth_attach(&rt, &worker, NULL, f, "basic.test", 443, "test/x");
	char *h = attempt(f, "");
	ck_assert_str_eq(h, "");
	free(h);
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_DECLINED);
	free_fetch(f);

	/* push = proxy: the upload is answered with the proxy's account,
	 * for scope actions pull,push. */
	f = new_fetch("push.test", "POST", "/v2/test/x/blobs/uploads/");
	drp_auth_attach(&rt, &worker, NULL, f, "push.test", 443, "test/x");
	free(attempt(f, ""));
	ck_assert_str_eq(drp_auth_req_get(f->hooks.arg, DRP_REQ_ACTIONS),
			 "pull,push");
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_OK);
	h = attempt(f, "");
	ck_assert_str_eq(h, "Authorization: Basic cHVzaGVyOnB3\r\n");
	free(h);
	free_fetch(f);

	/* push = deny: refused before anything is sent... */
	f = new_fetch("deny.test", "PUT", "/v2/test/x/manifests/v1");
	drp_auth_attach(&rt, &worker, NULL, f, "deny.test", 443, "test/x");
	free(attempt(f, "Authorization: Basic Y2xpZW50OnB3\r\n"));
	ck_assert_int_eq(f->fail_status, 403);
	ck_assert_str_eq(f->fail_reason,
			 "this proxy does not pass uploads to deny.test");
	free_fetch(f);
	/* ... but pulls go on. */
	f = new_fetch("deny.test", "GET", "/v2/test/x/manifests/v1");
	drp_auth_attach(&rt, &worker, NULL, f, "deny.test", 443, "test/x");
	free(attempt(f, ""));
	ck_assert_int_eq(f->fail_status, 0);
	free_fetch(f);

	/* A section without a plugin: nothing to add. */
	f = new_fetch("anon.test", "GET", "/v2/x/manifests/v1");
	drp_auth_attach(&rt, &worker, NULL, f, "anon.test", 443, "x");
	h = attempt(f, "");
	ck_assert_str_eq(h, "");
	free(h);
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_DECLINED);
	free_fetch(f);
}
END_TEST

/* [proxy] push = deny reaches a fetch whose request resolved no section
 * setting push (push_sec -1): refused and logged as [proxy]'s, not as
 * some section's. */
START_TEST(test_push_default)
{
	drp_auth_free(rt.auth);
	drp_conf_free(rt.conf);
	drp_conf_errors_free(&errs);
	setup_conf("[proxy]\npush = deny\n" SECTIONS);
	drp_fetch_t *f =
		new_fetch("basic.test", "POST", "/v2/test/x/blobs/uploads/");
	drp_auth_attach(&rt, &worker, NULL, f, "basic.test", 443, "test/x");
	free(attempt(f, ""));
	ck_assert_int_eq(f->fail_status, 403);
	ck_assert_str_eq(f->fail_reason,
			 "this proxy does not pass uploads to basic.test");
	free_fetch(f);
	ck_assert_msg(strstr(read_log(), "POST basic.test/v2/test/x/blobs/"
					 "uploads/: refused by push = deny of "
					 "[proxy]"),
		      "%s", read_log());
	/* push.test's own push = proxy still wins. */
	f = new_fetch("push.test", "POST", "/v2/test/x/blobs/uploads/");
	drp_auth_attach(&rt, &worker, NULL, f, "push.test", 443, "test/x");
	free(attempt(f, ""));
	ck_assert_int_eq(f->fail_status, 0);
	free_fetch(f);
}
END_TEST

START_TEST(test_request_fields)
{
	drp_fetch_t *f = new_fetch("basic.test", "GET",
				   "/v2/test/small/manifests/v1?x=1");
	drp_auth_attach(&rt, &worker, NULL, f, "basic.test", 443, "test/small");
	drp_auth_req_t *r = f->hooks.arg;
	free(attempt(f, "Accept: a\r\n"));
	/* Table: each field as plugins see it. */
	ck_assert_str_eq(drp_auth_req_get(r, DRP_REQ_METHOD), "GET");
	ck_assert_str_eq(drp_auth_req_get(r, DRP_REQ_URL),
			 "https://basic.test/v2/test/small/manifests/v1?x=1");
	ck_assert_str_eq(drp_auth_req_get(r, DRP_REQ_HOST), "basic.test");
	ck_assert_str_eq(drp_auth_req_get(r, DRP_REQ_REGISTRY), "basic.test");
	ck_assert_str_eq(drp_auth_req_get(r, DRP_REQ_REPOSITORY), "test/small");
	ck_assert_str_eq(drp_auth_req_get(r, DRP_REQ_ACTIONS), "pull");
	/* Unknown fields: NULL. */
	ck_assert_ptr_null(drp_auth_req_get(r, 99));
	/* Headers as last built; set replaces and refuses CR/LF. */
	ck_assert_str_eq(drp_auth_req_header(r, "accept"), "a");
	ck_assert_ptr_null(drp_auth_req_header(r, "Authorization"));
	ck_assert_int_eq(drp_auth_req_set_header(r, "X-T", "1"), 0);
	ck_assert_int_eq(drp_auth_req_set_header(r, "X-T", "2"), 0);
	ck_assert_int_eq(drp_auth_req_set_header(r, "X-T", "3\r\nY: z"),
			 -EINVAL);
	ck_assert_str_eq(drp_auth_req_header(r, "X-T"), "2");
	char *h = attempt(f, "Accept: a\r\n");
	ck_assert_str_eq(h, "Accept: a\r\nX-T: 2\r\n");
	free(h);
	free_fetch(f);

	/* Docker Hub's aliases and library/ naming. */
	drp_auth_free(rt.auth);
	drp_conf_free(rt.conf);
	setup_conf("[registry \"docker.io\"]\nplugin = basic\n"
		   "username = u\npassword = p\n");
	f = new_fetch("registry-1.docker.io", "GET", "/v2/alpine/manifests/3");
	drp_auth_attach(&rt, &worker, NULL, f, "registry-1.docker.io", 443,
			"alpine");
	r = f->hooks.arg;
	ck_assert_str_eq(drp_auth_req_get(r, DRP_REQ_REGISTRY), "docker.io");
	ck_assert_str_eq(drp_auth_req_get(r, DRP_REQ_HOST),
			 "registry-1.docker.io");
	ck_assert_str_eq(drp_auth_req_get(r, DRP_REQ_REPOSITORY),
			 "library/alpine");
	free_fetch(f);
}
END_TEST

/* ---- Bearer: token fetches, the token cache, waiters ---- */

#define TOKEN_CHALLENGE                                                        \
	"Bearer realm=\"https://auth.test/token\",service=\"token.test\","     \
	"scope=\"repository:private/secret:pull\""
#define TOKEN_JSON(t) "{\"token\":\"" t "\",\"expires_in\":300}"

START_TEST(test_bearer_flow)
{
	drp_fetch_t *f = new_fetch("basic.test", "GET",
				   "/v2/private/secret/manifests/v1");
	drp_auth_attach(&rt, &worker, NULL, f, "basic.test", 443,
			"private/secret");
	free(attempt(f, ""));
	const char *www[] = {TOKEN_CHALLENGE, NULL};
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_PENDING);
	/* One token request: GET on the realm, proxy's Basic, on loop. */
	ck_assert_uint_eq(n_fbs, 1);
	ck_assert_str_eq(fbs->f.method, "GET");
	ck_assert(fbs->tls);
	ck_assert_str_eq(fbs->f.host, "auth.test");
	ck_assert_uint_eq(fbs->port, 443);
	ck_assert_str_eq(fbs->f.target,
			 "/token?service=token.test&scope=repository%3A"
			 "private%2Fsecret%3Apull");
	ck_assert_str_eq(fbs->headers, "Authorization: " BASIC_DRPUSER "\r\n");

	/* A second request for the same scope waits for that fetch. */
	drp_fetch_t *g =
		new_fetch("basic.test", "GET", "/v2/private/secret/blobs/b");
	drp_auth_attach(&rt, &worker, NULL, g, "basic.test", 443,
			"private/secret");
	free(attempt(g, ""));
	ck_assert_int_eq(challenge(g, www), DRP_FETCH_AUTH_PENDING);
	ck_assert_uint_eq(n_fbs, 1);

	fb_answer(fbs, 200, "Content-Type: application/json\r\n",
		  TOKEN_JSON("tok1"));
	/* The fetcher's request retries at once, the waiter through its
	 * loop. */
	ck_assert_int_eq(f->retries, 1);
	ck_assert_int_eq(g->retries, 0);
	run_loop();
	ck_assert_int_eq(g->retries, 1);
	char *h = attempt(f, "");
	ck_assert_str_eq(h, "Authorization: Bearer tok1\r\n");
	free(h);
	h = attempt(g, "");
	ck_assert_str_eq(h, "Authorization: Bearer tok1\r\n");
	free(h);
	free_fetch(f);
	free_fetch(g);

	/* The token is cached: the next request carries it up front. */
	f = new_fetch("basic.test", "GET", "/v2/private/secret/blobs/c");
	drp_auth_attach(&rt, &worker, NULL, f, "basic.test", 443,
			"private/secret");
	h = attempt(f, "");
	ck_assert_str_eq(h, "Authorization: Bearer tok1\r\n");
	free(h);
	free_fetch(f);
	ck_assert_uint_eq(n_fbs, 1);
	ck_assert_int_eq(rt_refs, 0);
	ck_assert_ptr_null(strstr(read_log(), "tok1"));
}
END_TEST

/*
 * token_realm = yes: the section's credentials answer the Bearer
 * challenges that name a realm on its host, for the registries the
 * configuration names ([proxy] registries, a section) that have no
 * credentials of their own (GitLab: the registry registry.gitlab.com,
 * the realm gitlab.com; AUTH_REGISTRIES named the realm's host).
 */
START_TEST(test_token_realm)
{
	drp_auth_free(rt.auth);
	drp_conf_free(rt.conf);
	drp_conf_errors_free(&errs);
	setup_conf("[proxy]\nregistries = token.test\n"
		   "[registry \"auth.test\"]\nplugin = basic\n"
		   "username = drpuser\npassword = s3cret\n"
		   "token_realm = yes\n"
		   "[registry \"nocreds.test\"]\ntag_ttl = 1m\n");
	const char *www[] = {TOKEN_CHALLENGE, NULL};
	drp_fetch_t *f = new_fetch("token.test", "GET",
				   "/v2/private/secret/manifests/v1");
	drp_auth_attach(&rt, &worker, NULL, f, "token.test", 443,
			"private/secret");
	ck_assert(f->has_hooks);
	char *h = attempt(f, "");
	ck_assert_str_eq(h, "");
	free(h);
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_PENDING);
	ck_assert_uint_eq(n_fbs, 1);
	ck_assert_str_eq(fbs->f.host, "auth.test");
	ck_assert_str_eq(fbs->f.target,
			 "/token?service=token.test&scope=repository%3A"
			 "private%2Fsecret%3Apull");
	ck_assert_str_eq(fbs->headers, "Authorization: " BASIC_DRPUSER "\r\n");
	fb_answer(fbs, 200, "Content-Type: application/json\r\n",
		  TOKEN_JSON("tok1"));
	ck_assert_int_eq(f->retries, 1);
	h = attempt(f, "");
	ck_assert_str_eq(h, "Authorization: Bearer tok1\r\n");
	free(h);
	free_fetch(f);
	ck_assert_msg(strstr(read_log(), "token realm auth.test: the "
					 "credentials of [registry "
					 "\"auth.test\"]"),
		      "%s", read_log());

	/* A section without credentials names its registry too. */
	f = new_fetch("nocreds.test", "GET", "/v2/private/secret/blobs/b");
	drp_auth_attach(&rt, &worker, NULL, f, "nocreds.test", 443,
			"private/secret");
	free(attempt(f, ""));
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_OK);
	h = attempt(f, "");
	ck_assert_str_eq(h, "Authorization: Bearer tok1\r\n");
	free(h);
	free_fetch(f);

	/* Another realm: not this section's to answer. */
	const char *other[] = {"Bearer realm=\"https://elsewhere.test/t\","
			       "service=\"token.test\",scope=\"repository:"
			       "private/secret:pull\"",
			       NULL};
	f = new_fetch("token.test", "GET", "/v2/private/secret/manifests/v2");
	drp_auth_attach(&rt, &worker, NULL, f, "token.test", 443,
			"private/secret");
	free(attempt(f, ""));
	ck_assert_int_eq(challenge(f, other), DRP_FETCH_AUTH_DECLINED);
	free_fetch(f);
	/* A host the configuration does not name (a learned realm, a
	 * registry reached only through a tunnel): never. */
	f = new_fetch("unlisted.test", "GET", "/v2/private/secret/blobs/b");
	drp_auth_attach(&rt, &worker, NULL, f, "unlisted.test", 443,
			"private/secret");
	ck_assert(!f->has_hooks);
	free_fetch(f);
	/* The client's own credentials win. */
	f = new_fetch("token.test", "GET", "/v2/private/secret/blobs/c");
	drp_auth_attach(&rt, &worker, NULL, f, "token.test", 443,
			"private/secret");
	free(attempt(f, "Authorization: Basic Y2xpZW50OnB3\r\n"));
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_DECLINED);
	free_fetch(f);
	/* Uploads only under push = proxy. */
	f = new_fetch("token.test", "POST",
		      "/v2/private/secret/blobs/uploads/");
	drp_auth_attach(&rt, &worker, NULL, f, "token.test", 443,
			"private/secret");
	free(attempt(f, ""));
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_DECLINED);
	free_fetch(f);
	ck_assert_uint_eq(n_fbs, 1);
}
END_TEST

START_TEST(test_bearer_refused)
{
	drp_fetch_t *f = new_fetch("basic.test", "GET",
				   "/v2/private/secret/manifests/v1");
	drp_auth_attach(&rt, &worker, NULL, f, "basic.test", 443,
			"private/secret");
	free(attempt(f, ""));
	const char *www[] = {TOKEN_CHALLENGE, NULL};
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_PENDING);
	fb_answer(fbs, 401, "WWW-Authenticate: Basic realm=\"x\"\r\n", "{}");
	ck_assert_int_eq(f->retries, 0);
	ck_assert_int_eq(f->fail_status, 403);
	ck_assert_msg(strstr(read_log(),
			     "token service auth.test refused the "
			     "credentials of user 'drpuser'") != NULL,
		      "%s", read_log());
	free_fetch(f);

	/* Unreachable token service: 502. */
	f = new_fetch("basic.test", "GET", "/v2/private/secret/manifests/v1");
	drp_auth_attach(&rt, &worker, NULL, f, "basic.test", 443,
			"private/secret");
	free(attempt(f, ""));
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_PENDING);
	fb_answer(fbs, -ECONNREFUSED, "", "");
	ck_assert_int_eq(f->fail_status, 502);
	ck_assert_str_eq(f->fail_reason,
			 "the proxy could not obtain credentials for "
			 "basic.test (plugin basic of [registry "
			 "\"basic.test\"]; see its log)");
	free_fetch(f);
	ck_assert_int_eq(rt_refs, 0);
}
END_TEST

START_TEST(test_cancel_pending)
{
	const char *www[] = {TOKEN_CHALLENGE, NULL};
	drp_fetch_t *f = new_fetch("basic.test", "GET",
				   "/v2/private/secret/manifests/v1");
	drp_auth_attach(&rt, &worker, NULL, f, "basic.test", 443,
			"private/secret");
	free(attempt(f, ""));
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_PENDING);
	drp_fetch_t *g =
		new_fetch("basic.test", "GET", "/v2/private/secret/blobs/b");
	drp_auth_attach(&rt, &worker, NULL, g, "basic.test", 443,
			"private/secret");
	free(attempt(g, ""));
	ck_assert_int_eq(challenge(g, www), DRP_FETCH_AUTH_PENDING);
	/* Both clients go away: the waiter is withdrawn, the fetcher's
	 * token fetch goes on for whoever comes next. */
	free_fetch(g);
	free_fetch(f);
	ck_assert(!fbs->cancelled);
	fb_answer(fbs, 200, "", TOKEN_JSON("tok2"));
	run_loop();
	ck_assert_int_eq(rt_refs, 0);
	/* And its token is in the cache. */
	f = new_fetch("basic.test", "GET", "/v2/private/secret/blobs/c");
	drp_auth_attach(&rt, &worker, NULL, f, "basic.test", 443,
			"private/secret");
	char *h = attempt(f, "");
	ck_assert_str_eq(h, "Authorization: Bearer tok2\r\n");
	free(h);
	free_fetch(f);
}
END_TEST

/* ---- host services that need a loop ---- */

static int timer_hits;
static void on_timer(void *arg)
{
	timer_hits += *(int *)arg;
	ck_assert_ptr_nonnull(drp_auth_cur());
}

static void on_fetch(void *arg, int status, const drp_http_fetch_resp_t *resp,
		     const char *body, size_t len)
{
	int *got = arg;
	*got = status;
}

START_TEST(test_services_outside_hooks)
{
	const drp_host_api_t *api = NULL;
	/* The table the plugins got: find it through an instance ctx. */
	drp_fetch_t *f =
		new_fetch("basic.test", "GET", "/v2/test/small/manifests/v1");
	drp_auth_attach(&rt, &worker, NULL, f, "basic.test", 443, "test/small");
	drp_auth_host_t *h = drp_auth_host_ref(&drp_auth_req_entries);
	api = &drp_plugin_loader_host(drp_auth_host_loader(h))->api;
	drp_host_ctx_t ctx = {
		.host = drp_plugin_loader_host(drp_auth_host_loader(h)),
		.plugin = "t"};
	/* Outside a hook nothing can be started. */
	ck_assert_ptr_null(drp_auth_cur());
	ck_assert_ptr_null(api->http_fetch(&ctx, "GET", "https://a.test/", NULL,
					   NULL, 0, on_fetch, NULL));
	int one = 1;
	ck_assert_ptr_null(api->timer_start(&ctx, 0, on_timer, &one));

	/* Inside: a timer runs on the loop, later; a stopped one never. */
	drp_auth_cur_t saved = drp_auth_cur_enter(&worker, &rt, 3);
	timer_hits = 0;
	int ten = 10;
	drp_timer_t *t1 = api->timer_start(&ctx, 0, on_timer, &one);
	drp_timer_t *t2 = api->timer_start(&ctx, 0, on_timer, &ten);
	ck_assert_ptr_nonnull(t1);
	api->timer_stop(t2);
	/* A POST with a body; reserved headers are the fetch's business;
	 * a header with CR/LF is refused. */
	int got = 0;
	const char *hdrs[] = {"Content-Type: application/x-www-form-"
			      "urlencoded",
			      "Host: evil.test", NULL};
	drp_http_fetch_t *hf =
		api->http_fetch(&ctx, "POST", "https://auth.test:8443/token",
				hdrs, "a=b", 3, on_fetch, &got);
	ck_assert_ptr_nonnull(hf);
	ck_assert_str_eq(fbs->f.method, "POST");
	ck_assert_uint_eq(fbs->port, 8443);
	ck_assert_str_eq(fbs->headers, "Content-Type: application/"
				       "x-www-form-urlencoded\r\n");
	ck_assert_int_eq((int)drp_buf_pending(&fbs->f.body), 3);
	ck_assert(fbs->f.body_ended);
	const char *bad[] = {"X: a\r\nY: b", NULL};
	ck_assert_ptr_null(api->http_fetch(&ctx, "GET", "https://a.test/", bad,
					   NULL, 0, on_fetch, &got));
	drp_auth_cur_leave(saved);
	ck_assert_int_eq(timer_hits, 0);
	run_loop();
	ck_assert_int_eq(timer_hits, 1);
	fb_answer(fbs, 200, "X-Test: yes\r\n", "{}");
	ck_assert_int_eq(got, 200);
	drp_auth_host_unref(h);
	free_fetch(f);
	ck_assert_int_eq(rt_refs, 0);
}
END_TEST

/* Counts its calls and keeps the last status. */
typedef struct fetch_calls {
	int calls;
	int status;
	bool had_resp;
} fetch_calls_t;

static void count_fetch(void *arg, int status,
			const drp_http_fetch_resp_t *resp, const char *body,
			size_t len)
{
	fetch_calls_t *fc = arg;
	fc->calls++;
	fc->status = status;
	fc->had_resp = resp != NULL;
	ck_assert_str_eq(body, "");
	ck_assert_uint_eq(len, 0);
	ck_assert_ptr_nonnull(drp_auth_cur());
}

/* A worker stopping (SIGTERM) ends every plugin fetch still in flight
 * exactly once with -ECANCELED, and fires every pending timer once, so
 * that plugins can free what they hold; afterwards nothing starts. A
 * fetch cancelled before, or one that completed, is not called again. */
START_TEST(test_worker_stop)
{
	drp_auth_host_t *h = drp_auth_host_ref(&drp_auth_req_entries);
	const drp_host_api_t *api =
		&drp_plugin_loader_host(drp_auth_host_loader(h))->api;
	drp_host_ctx_t ctx = {
		.host = drp_plugin_loader_host(drp_auth_host_loader(h)),
		.plugin = "t"};
	fetch_calls_t never = {0}, cancelled = {0}, answered = {0};
	drp_auth_cur_t saved = drp_auth_cur_enter(&worker, &rt, 4);
	/* A server that never answers: only the stop ends it. */
	ck_assert_ptr_nonnull(api->http_fetch(&ctx, "GET",
					      "https://silent.test/token", NULL,
					      NULL, 0, count_fetch, &never));
	struct drp_fetchbuf *silent_fb = fbs;
	drp_http_fetch_t *c1 =
		api->http_fetch(&ctx, "GET", "https://a.test/", NULL, NULL, 0,
				count_fetch, &cancelled);
	ck_assert_ptr_nonnull(c1);
	ck_assert_ptr_nonnull(api->http_fetch(&ctx, "GET", "https://b.test/",
					      NULL, NULL, 0, count_fetch,
					      &answered));
	struct drp_fetchbuf *answered_fb = fbs;
	timer_hits = 0;
	int one = 1, hundred = 100;
	ck_assert_ptr_nonnull(api->timer_start(&ctx, 3600, on_timer, &one));
	drp_timer_t *t2 = api->timer_start(&ctx, 3600, on_timer, &hundred);
	ck_assert_ptr_nonnull(t2);
	drp_auth_cur_leave(saved);
	api->http_cancel(c1);
	api->timer_stop(t2);
	fb_answer(answered_fb, 200, "", "");
	ck_assert_int_eq(answered.calls, 1);
	ck_assert_int_eq(rt_refs, 2); /* the silent fetch and one timer */

	drp_auth_worker_stop(&worker);
	ck_assert_int_eq(never.calls, 1);
	ck_assert_int_eq(never.status, -ECANCELED);
	ck_assert(!never.had_resp);
	ck_assert(silent_fb->cancelled);
	ck_assert_int_eq(timer_hits, 1);
	ck_assert_int_eq(cancelled.calls, 0);
	ck_assert_int_eq(answered.calls, 1);
	ck_assert_int_eq(rt_refs, 0);

	/* Stopped: nothing new starts; the loop has nothing left. */
	saved = drp_auth_cur_enter(&worker, &rt, 4);
	ck_assert_ptr_null(api->http_fetch(&ctx, "GET", "https://c.test/", NULL,
					   NULL, 0, count_fetch, &never));
	ck_assert_ptr_null(api->timer_start(&ctx, 0, on_timer, &one));
	drp_auth_cur_leave(saved);
	drp_auth_worker_stop(&worker);
	run_loop();
	ck_assert_int_eq(never.calls, 1);
	ck_assert_int_eq(timer_hits, 1);
	drp_auth_host_unref(h);
}
END_TEST

/* ---- the proxy's realm: handles and the client-facing answers ---- */

static double fake_now = 1000.0;
static double fake_clock(drp_plugin_host_t *h)
{
	return fake_now;
}

START_TEST(test_handles)
{
	drp_auth_host_t *h = drp_auth_host_ref(&drp_auth_req_entries);
	drp_auth_host_plugin_host(h)->now = fake_clock;
	char a[DRP_AUTH_HANDLE_MAX], b[DRP_AUTH_HANDLE_MAX];
	ck_assert_int_eq(
		drp_auth_handle_issue(h, "basic.test", NULL, NULL, 60, a), 0);
	drp_auth_ident_t *alice =
		drp_auth_ident_new(h, "Basic YWxpY2U6YWxpY2UtcHc=", "x.test");
	ck_assert_str_eq(drp_auth_ident_user(alice), "alice");
	ck_assert_int_eq(drp_auth_handle_issue(h, "x.test", alice, NULL, 60, b),
			 0);
	drp_auth_ident_unref(alice); /* the handle holds its own */
	/* "drp1." and 43 base64url characters, different each time. */
	ck_assert_uint_eq(strlen(a), 48);
	ck_assert(strncmp(a, "drp1.", 5) == 0);
	ck_assert_uint_eq(strspn(a + 5, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijk"
					"lmnopqrstuvwxyz0123456789-_"),
			  43);
	ck_assert_str_ne(a, b);

	drp_auth_ident_t *id = (drp_auth_ident_t *)1;
	/* The proxy's identity: found, no ident. */
	ck_assert_int_eq(drp_auth_handle_find(h, a, "basic.test", &id, NULL),
			 0);
	ck_assert_ptr_null(id);
	/* Bound to its registry. */
	ck_assert_int_eq(drp_auth_handle_find(h, a, "x.test", &id, NULL),
			 -ENOENT);
	/* A client's: its identity. */
	ck_assert_int_eq(drp_auth_handle_find(h, b, "x.test", &id, NULL), 0);
	ck_assert_str_eq(drp_auth_ident_user(id), "alice");
	drp_auth_ident_unref(id);
	/* Unknown, truncated. */
	ck_assert_int_eq(
		drp_auth_handle_find(h, "drp1.nope", "x.test", &id, NULL),
		-ENOENT);
	a[20] = '\0';
	ck_assert_int_eq(drp_auth_handle_find(h, a, "basic.test", &id, NULL),
			 -ENOENT);
	/* Expired. */
	fake_now += 61;
	ck_assert_int_eq(drp_auth_handle_find(h, b, "x.test", &id, NULL),
			 -ENOENT);
	fake_now = 1000.0;
	drp_auth_host_unref(h);

	/* Table: what counts as a handle in an Authorization value. */
	ck_assert(drp_auth_is_handle("Bearer drp1.abc"));
	ck_assert(drp_auth_is_handle("bearer  drp1.abc"));
	ck_assert(!drp_auth_is_handle("Bearer eyJhbGciOi"));
	ck_assert(!drp_auth_is_handle("Basic drp1.abc"));
	ck_assert(!drp_auth_is_handle(NULL));
}
END_TEST

/* A client connection inside an intercepted tunnel, as the exchange
 * (core/exchange.h) shows it to drp_auth_intercept: conn.c's side of
 * the interface, faked. */
typedef struct fake_conn {
	drp_exch_t x;
	char host[DRP_HOST_MAX + 1];
	char peer_str[64];
	struct sockaddr_storage peer;
	drp_buf_t out;
	char *path;
	char *user;
	drp_fetch_t *fetch; /* the handler's, while it answers later */
	bool exchange;	    /* the handler answers later */
} fake_conn_t;

#define FAKE_OF(x) DRP_CONTAINER_OF(x, fake_conn_t, x)

/* The requests answered (drp_exch_done). */
static int requests_done;

static bool fx_pending(const drp_exch_t *x)
{
	return drp_buf_pending(x->out) > 0;
}
static void fx_send_ref(drp_exch_t *x, const char *p, size_t len,
			void (*release)(void *arg), void *arg)
{
	drp_buf_append(x->out, p, len);
	if (release)
		release(arg);
}
static void fx_async(drp_exch_t *x)
{
	FAKE_OF(x)->exchange = true;
	FAKE_OF(x)->fetch = last_fetch;
}
static void fx_kick(drp_exch_t *x)
{
}
static void fx_done(drp_exch_t *x, const char *result)
{
	fake_conn_t *c = FAKE_OF(x);
	requests_done++;
	const drp_handler_t *h = x->h;
	x->h = NULL;
	if (h && h->release)
		h->release(x);
	x->hs = NULL;
	c->fetch = NULL;
	c->exchange = false;
}
static void fx_error(drp_exch_t *x, int status, bool close_after,
		     const char *msg)
{
	x->status = status;
	drp_buf_append(x->out, msg, strlen(msg));
}
static void fx_abort(drp_exch_t *x, const char *reason)
{
	ck_abort_msg("abort: %s", reason);
}
static void fx_close(drp_exch_t *x, const char *reason)
{
	ck_abort_msg("close: %s", reason);
}
static void fx_pass(drp_exch_t *x, const char *method, const char *target,
		    const char *headers, size_t headers_len, bool follow)
{
	ck_abort_msg("pass %s %s", method, target);
}
static bool fx_closed(const drp_exch_t *x)
{
	return false;
}
static const drp_exch_ops_t fake_ops = {
	.pending = fx_pending,
	.send_ref = fx_send_ref,
	.async = fx_async,
	.kick = fx_kick,
	.done = fx_done,
	.error = fx_error,
	.abort = fx_abort,
	.close = fx_close,
	.pass = fx_pass,
	.closed = fx_closed,
};

static fake_conn_t *fake_conn(const char *host)
{
	fake_conn_t *c = DRP_NEW(fake_conn_t);
	snprintf(c->host, sizeof(c->host), "%s", host);
	snprintf(c->peer_str, sizeof(c->peer_str), "127.0.0.1");
	c->x.ops = &fake_ops;
	c->x.out = &c->out;
	c->x.rt = &rt;
	c->x.w = &worker;
	c->x.id = 9;
	c->x.host = c->host;
	c->x.port = 443;
	c->x.peer = c->peer_str;
	c->x.peer_addr = (const struct sockaddr *)&c->peer;
	c->x.method = "GET";
	return c;
}

static void free_conn(fake_conn_t *c)
{
	if (c->x.h != NULL && c->x.h->release)
		c->x.h->release(&c->x);
	free(c->user);
	drp_buf_free(&c->out);
	free(c->path);
	free(c);
}

/* Run one request through drp_auth_intercept; *answer gets what the
 * client would read (empty when the request goes on to routing). */
static bool intercept(fake_conn_t *c, const char *raw, char **answer)
{
	static char buf[4096];
	snprintf(buf, sizeof(buf), "%s", raw);
	drp_http_msg_t req;
	ck_assert_int_gt(drp_http_parse_request(buf, strlen(buf), 8192, &req),
			 0);
	free(c->path);
	c->path = drp_strndup(req.target,
			      drp_uri_path_len(req.target, req.target_len));
	c->x.path = c->path;
	c->x.user = c->user;
	c->x.head = drp_http_method_is(&req, "HEAD");
	c->x.close_after = false;
	drp_route_t route;
	ck_assert_int_eq(drp_route_classify(req.target, req.target_len, &route),
			 0);
	drp_buf_reset(&c->out);
	bool r = drp_auth_intercept(&c->x, &req, &route);
	*answer = drp_strndup(drp_buf_pending(&c->out) ? drp_buf_head(&c->out)
						       : "",
			      drp_buf_pending(&c->out));
	return r;
}

/* The handle in a token answer. */
static char *token_of(const char *answer)
{
	const char *p = strstr(answer, "{\"token\":\"");
	ck_assert_ptr_nonnull(p);
	p += 10;
	return drp_strndup(p, strcspn(p, "\""));
}

#define REALM_CHALLENGE                                                        \
	"WWW-Authenticate: Bearer "                                            \
	"realm=\"https://basic.test/_drp/token\",service=\"basic.test\"\r\n"

START_TEST(test_intercept)
{
	fake_conn_t *c = fake_conn("basic.test");
	char *ans, *req;
	/* The probe without credentials: the proxy's challenge. */
	ck_assert(intercept(c, "GET /v2/ HTTP/1.1\r\nHost: basic.test\r\n\r\n",
			    &ans));
	ck_assert_int_eq(c->x.status, 401);
	ck_assert_msg(strncmp(ans,
			      "HTTP/1.1 401 Unauthorized\r\n" REALM_CHALLENGE,
			      strlen("HTTP/1.1 401 "
				     "Unauthorized\r\n" REALM_CHALLENGE)) == 0,
		      "%s", ans);
	ck_assert_ptr_nonnull(strstr(ans, "\"code\":\"UNAUTHORIZED\""));
	free(ans);
	/* Other requests without credentials go on (the plugin decorates
	 * them). */
	ck_assert(!intercept(c,
			     "GET /v2/a/manifests/v1 HTTP/1.1\r\nHost: "
			     "basic.test\r\n\r\n",
			     &ans));
	ck_assert_str_eq(ans, "");
	free(ans);

	/* A token for the proxy's identity. */
	ck_assert(
		intercept(c,
			  "GET /_drp/token?service=basic.test&scope=repository"
			  ":a:pull HTTP/1.1\r\nHost: basic.test\r\n\r\n",
			  &ans));
	ck_assert_int_eq(c->x.status, 200);
	char *tok = token_of(ans);
	ck_assert(strncmp(tok, "drp1.", 5) == 0);
	ck_assert_ptr_nonnull(strstr(ans, "\"expires_in\":3600"));
	char want[128];
	snprintf(want, sizeof(want), "\"access_token\":\"%s\"", tok);
	ck_assert_ptr_nonnull(strstr(ans, want));
	free(ans);
	/* With it the probe is answered 200 here; other requests go on. */
	char raw[512];
	snprintf(raw, sizeof(raw),
		 "GET /v2/ HTTP/1.1\r\nHost: basic.test\r\nAuthorization: "
		 "Bearer %s\r\n\r\n",
		 tok);
	ck_assert(intercept(c, raw, &ans));
	ck_assert_int_eq(c->x.status, 200);
	free(ans);
	snprintf(raw, sizeof(raw),
		 "GET /v2/a/blobs/sha256:%064d HTTP/1.1\r\nHost: "
		 "basic.test\r\nAuthorization: Bearer %s\r\n\r\n",
		 0, tok);
	ck_assert(!intercept(c, raw, &ans));
	free(ans);
	/* An unknown handle: the challenge again, so the client gets a
	 * new one. */
	ck_assert(intercept(c,
			    "GET /v2/a/manifests/v1 HTTP/1.1\r\nHost: "
			    "basic.test\r\nAuthorization: Bearer drp1.gone\r\n"
			    "\r\n",
			    &ans));
	ck_assert_int_eq(c->x.status, 401);
	ck_assert_ptr_nonnull(strstr(ans, REALM_CHALLENGE));
	free(ans);
	/* A handle is for the registry it was issued for. */
	fake_conn_t *d = fake_conn("push.test");
	ck_assert(intercept(d, raw, &ans));
	ck_assert_int_eq(d->x.status, 401);
	free(ans);
	free_conn(d);
	/* The client's own Basic credentials on the probe: passed on. */
	ck_assert(!intercept(c,
			     "GET /v2/ HTTP/1.1\r\nHost: basic.test\r\n"
			     "Authorization: Basic YTpi\r\n\r\n",
			     &ans));
	free(ans);
	/* containerd's OAuth2 POST: 404 (it falls back to GET), and the
	 * unread body means closing. */
	ck_assert(intercept(c,
			    "POST /_drp/token HTTP/1.1\r\nHost: basic.test\r\n"
			    "Content-Length: 3\r\n\r\n",
			    &ans));
	ck_assert_int_eq(c->x.status, 404);
	ck_assert(c->x.close_after);
	ck_assert_ptr_nonnull(strstr(ans, "Connection: close\r\n"));
	free(ans);
	/* HEAD: no body, same head. */
	ck_assert(intercept(c, "HEAD /v2/ HTTP/1.1\r\nHost: basic.test\r\n\r\n",
			    &ans));
	ck_assert_ptr_nonnull(strstr(ans, "Content-Length: 86\r\n"));
	ck_assert_ptr_null(strstr(ans, "UNAUTHORIZED"));
	free(ans);
	free(tok);
	free_conn(c);

	/* Hosts without a plugin section keep the upstream's own auth. */
	c = fake_conn("anon.test");
	ck_assert(!intercept(c, "GET /v2/ HTTP/1.1\r\nHost: anon.test\r\n\r\n",
			     &ans));
	free(ans);
	ck_assert(!intercept(
		c, "GET /_drp/token HTTP/1.1\r\nHost: anon.test\r\n\r\n",
		&ans));
	free(ans);
	free_conn(c);
	(void)req;
}
END_TEST

/* A handle from the realm, as a client would get it. */
/* The upstream's answer to the realm's check of a client's credentials
 * (c->fetch, GET /v2/): status, or a transport error when < 0. */
static void answer_check(fake_conn_t *c, int status)
{
	drp_fetch_t *f = c->fetch;
	ck_assert_ptr_nonnull(f);
	ck_assert(f->started);
	ck_assert_str_eq(f->method, "GET");
	ck_assert_str_eq(f->target, "/v2/");
	ck_assert(c->exchange);
	free(attempt(f, ""));
	drp_buf_reset(&c->out);
	if (status > 0) {
		drp_http_msg_t resp = {.status = status};
		f->sink->head(f->sarg, &resp, DRP_HTTP_BODY_NONE, 0);
		f->sink->done(f->sarg, 0, status, "complete");
	} else {
		f->sink->done(f->sarg, status, 502, "unreachable");
	}
	ck_assert_ptr_null(c->fetch);
	free_fetch(f);
}

/* A handle from the realm, as a client would get it; a client's
 * credentials are accepted by the (fake) upstream. */
static char *get_handle(const char *host, const char *basic)
{
	fake_conn_t *c = fake_conn(host);
	char raw[512], *ans;
	snprintf(raw, sizeof(raw),
		 "GET /_drp/token HTTP/1.1\r\nHost: %s\r\n%s%s%s\r\n", host,
		 basic ? "Authorization: " : "", basic ? basic : "",
		 basic ? "\r\n" : "");
	ck_assert(intercept(c, raw, &ans));
	if (c->fetch != NULL) {
		free(ans);
		answer_check(c, 200);
		ans = drp_strndup(drp_buf_head(&c->out),
				  drp_buf_pending(&c->out));
	}
	ck_assert_int_eq(c->x.status, 200);
	char *tok = token_of(ans);
	free(ans);
	free_conn(c);
	return tok;
}

START_TEST(test_realm_checks_credentials)
{
	fake_conn_t *c = fake_conn("basic.test");
	char *ans;
	const char *wrong = "GET /_drp/token HTTP/1.1\r\nHost: basic.test\r\n"
			    "Authorization: Basic bm9ib2R5Ondyb25n\r\n\r\n";
	/* Nothing answered yet: the upstream is asked first, with the
	 * client's credentials (not the proxy's). */
	requests_done = 0;
	ck_assert(intercept(c, wrong, &ans));
	ck_assert_str_eq(ans, "");
	free(ans);
	drp_fetch_t *f = c->fetch;
	char *h = attempt(f, "");
	ck_assert_str_eq(h, "");
	free(h);
	const char *www[] = {"Basic realm=\"r\"", NULL};
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_OK);
	h = attempt(f, "");
	ck_assert_str_eq(h, "Authorization: Basic bm9ib2R5Ondyb25n\r\n");
	free(h);
	/* Refused: the client hears the realm's challenge again. */
	drp_http_msg_t resp = {.status = 401};
	f->sink->head(f->sarg, &resp, DRP_HTTP_BODY_NONE, 0);
	f->sink->done(f->sarg, 0, 401, "complete");
	free_fetch(f);
	ck_assert_int_eq(requests_done, 1);
	ck_assert_int_eq(c->x.status, 401);
	ck_assert_ptr_nonnull(strstr(buf_str(&c->out), REALM_CHALLENGE));
	ck_assert_ptr_nonnull(strstr(read_log(), "basic.test refused the "
						 "credentials of user "
						 "'nobody' (HTTP 401)"));

	/* Accepted: a handle, and the next token request for the same
	 * credentials is answered at once. */
	const char *alice = "GET /_drp/token HTTP/1.1\r\nHost: basic.test\r\n"
			    "Authorization: Basic YWxpY2U6YWxpY2UtcHc=\r\n\r\n";
	ck_assert(intercept(c, alice, &ans));
	free(ans);
	answer_check(c, 200);
	ck_assert_int_eq(c->x.status, 200);
	ck_assert_ptr_nonnull(strstr(buf_str(&c->out), "\"token\":\"drp1."));
	ck_assert(intercept(c, alice, &ans));
	ck_assert_ptr_null(c->fetch);
	ck_assert_int_eq(c->x.status, 200);
	free(ans);

	/* The upstream cannot be asked: a handle anyway (it judges the
	 * credentials at their first use). */
	const char *bob = "GET /_drp/token HTTP/1.1\r\nHost: basic.test\r\n"
			  "Authorization: Basic Ym9iOnB3\r\n\r\n";
	ck_assert(intercept(c, bob, &ans));
	free(ans);
	answer_check(c, -ECONNREFUSED);
	ck_assert_int_eq(c->x.status, 200);
	free_conn(c);
}
END_TEST

START_TEST(test_handle_swap)
{
	const char *www[] = {TOKEN_CHALLENGE, NULL};
	/* The proxy's handle: stripped, the plugin's credentials instead. */
	char *ph = get_handle("basic.test", NULL);
	char base[256];
	snprintf(base, sizeof(base),
		 "Accept: x\r\nAuthorization: Bearer %s\r\n", ph);
	drp_fetch_t *f = new_fetch("basic.test", "GET",
				   "/v2/private/secret/manifests/v1");
	drp_auth_attach(&rt, &worker, NULL, f, "basic.test", 443,
			"private/secret");
	char *h = attempt(f, base);
	ck_assert_str_eq(h, "Accept: x\r\n");
	free(h);
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_PENDING);
	ck_assert_str_eq(fbs->headers, "Authorization: " BASIC_DRPUSER "\r\n");
	fb_answer(fbs, 200, "", TOKEN_JSON("proxytok"));
	ck_assert_int_eq(f->retries, 1);
	h = attempt(f, base);
	ck_assert_str_eq(h, "Accept: x\r\nAuthorization: Bearer proxytok\r\n");
	free(h);
	free_fetch(f);

	/* alice's handle: her credentials fetch her own token. */
	char *ah = get_handle("basic.test", "Basic YWxpY2U6YWxpY2UtcHc=");
	snprintf(base, sizeof(base), "Authorization: Bearer %s\r\n", ah);
	f = new_fetch("basic.test", "GET", "/v2/private/secret/manifests/v1");
	drp_auth_attach(&rt, &worker, NULL, f, "basic.test", 443,
			"private/secret");
	h = attempt(f, base);
	/* Not the proxy's cached token: alice has none yet. */
	ck_assert_str_eq(h, "");
	free(h);
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_PENDING);
	ck_assert_uint_eq(n_fbs, 2);
	ck_assert_str_eq(fbs->headers,
			 "Authorization: Basic YWxpY2U6YWxpY2UtcHc=\r\n");
	ck_assert_str_eq(fbs->f.target,
			 "/token?service=token.test&scope=repository%3A"
			 "private%2Fsecret%3Apull");
	fb_answer(fbs, 200, "", TOKEN_JSON("alicetok"));
	ck_assert_int_eq(f->retries, 1);
	h = attempt(f, base);
	ck_assert_str_eq(h, "Authorization: Bearer alicetok\r\n");
	free(h);
	/* Refused after the retry: the client hears the 401 itself. */
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_DECLINED);
	ck_assert_int_eq(f->fail_status, 0);
	free_fetch(f);

	/* alice's upload (push = client allows her own credentials); her
	 * password refused by the token service: the 401 goes to her. */
	f = new_fetch("basic.test", "POST",
		      "/v2/private/secret/blobs/uploads/");
	drp_auth_attach(&rt, &worker, NULL, f, "basic.test", 443,
			"private/secret");
	free(attempt(f, base));
	const char *pushwww[] = {
		"Bearer realm=\"https://auth.test/token\",service=\"token."
		"test\",scope=\"repository:private/secret:push,pull\"",
		NULL};
	ck_assert_int_eq(challenge(f, pushwww), DRP_FETCH_AUTH_PENDING);
	/* The token request names the actions in one order, whatever the
	 * registry wrote. */
	ck_assert_str_eq(fbs->f.target,
			 "/token?service=token.test&scope=repository%3A"
			 "private%2Fsecret%3Apull%2Cpush");
	fb_answer(fbs, 401, "", "{}");
	ck_assert_int_eq(f->fail_status, 0);
	/* DECLINED after PENDING: one more try, whose 401 is handed on. */
	ck_assert_int_eq(f->retries, 1);
	ck_assert_int_eq(challenge(f, pushwww), DRP_FETCH_AUTH_DECLINED);
	free_fetch(f);
	ck_assert_ptr_nonnull(strstr(read_log(), "proxy/alice: token service "
						 "auth.test refused the "
						 "client's credentials"));

	/* A Basic registry: alice's Basic credentials go up. */
	f = new_fetch("basic.test", "GET", "/v2/test/x/manifests/v1");
	drp_auth_attach(&rt, &worker, NULL, f, "basic.test", 443, "test/x");
	free(attempt(f, base));
	const char *basicwww[] = {"Basic realm=\"r\"", NULL};
	ck_assert_int_eq(challenge(f, basicwww), DRP_FETCH_AUTH_OK);
	h = attempt(f, base);
	ck_assert_str_eq(h, "Authorization: Basic YWxpY2U6YWxpY2UtcHc=\r\n");
	free(h);
	free_fetch(f);
	free(ph);
	free(ah);
	ck_assert_ptr_null(strstr(read_log(), "alicetok"));
	ck_assert_ptr_null(strstr(read_log(), "YWxpY2U6YWxpY2UtcHc"));
}
END_TEST

START_TEST(test_handle_anonymous)
{
	/* Only acme/ has the proxy's account; other repositories on the
	 * same host are fetched anonymously for holders of the proxy's
	 * handle. */
	drp_auth_free(rt.auth);
	drp_conf_free(rt.conf);
	setup_conf("[registry \"hub.test/acme\"]\nplugin = basic\n"
		   "username = u\npassword = p\n");
	char *ph = get_handle("hub.test", NULL);
	char base[256];
	snprintf(base, sizeof(base), "Authorization: Bearer %s\r\n", ph);
	drp_fetch_t *f =
		new_fetch("hub.test", "GET", "/v2/library/alpine/manifests/3");
	drp_auth_attach(&rt, &worker, NULL, f, "hub.test", 443,
			"library/alpine");
	ck_assert(f->has_hooks);
	char *h = attempt(f, base);
	ck_assert_str_eq(h, "");
	free(h);
	const char *www[] = {
		"Bearer realm=\"https://auth.hub.test/token\",service=\"hub\","
		"scope=\"repository:library/alpine:pull\"",
		NULL};
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_PENDING);
	/* Anonymous: no Authorization on the token request. */
	ck_assert_str_eq(fbs->headers, "");
	ck_assert_str_eq(fbs->f.host, "auth.hub.test");
	fb_answer(fbs, 200, "", TOKEN_JSON("anontok"));
	h = attempt(f, base);
	ck_assert_str_eq(h, "Authorization: Bearer anontok\r\n");
	free(h);
	free_fetch(f);
	free(ph);
}
END_TEST

START_TEST(test_outsider)
{
	/* basic.test's account is for 127.0.0.1 and 10/8 only. */
	drp_auth_free(rt.auth);
	drp_conf_free(rt.conf);
	unlink(logpath); /* a fresh log for this configuration */
	drp_log_init(DRP_LOG_INFO, logpath);
	setup_conf("[registry \"basic.test\"]\nplugin = basic\n"
		   "username = drpuser\npassword = s3cret\n"
		   "allow = 127.0.0.1/32, 10.0.0.0/8\n"
		   "[registry \"open.test\"]\nplugin = basic\n"
		   "username = u\npassword = p\n");
	/* A section relying on [proxy] allow is named at start-up. */
	ck_assert_ptr_nonnull(strstr(
		read_log(), "t.ini:6: [registry \"open.test\"] has neither "
			    "allow nor users: what the proxy's credentials "
			    "fetch goes to every client [proxy] allow "
			    "admits"));
	ck_assert_ptr_null(strstr(read_log(), "[registry \"basic.test\"] has "
					      "neither"));
	char *ans;
	fake_conn_t *out = fake_conn("basic.test");
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->peer;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(0x7f000005); /* 127.0.0.5 */
	fake_conn_t *in = fake_conn("basic.test");
	sin = (struct sockaddr_in *)&in->peer;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(0x0a010203); /* 10.1.2.3 */
	const char *blob = "GET /v2/test/small/blobs/sha256:"
			   "0000000000000000000000000000000000000000000000000"
			   "000000000000000 HTTP/1.1\r\nHost: basic.test\r\n";
	char raw[512];
	/* Outside, no credentials, privacy not known yet: on, but the cache
	 * answers only after an anonymous HEAD. */
	snprintf(raw, sizeof(raw), "%s\r\n", blob);
	ck_assert(!intercept(out, raw, &ans));
	ck_assert(out->x.auth_confirm);
	free(ans);
	/* That (anonymous) request is refused: the repository is private,
	 * the outsider gets 403. */
	drp_fetch_t *f = new_fetch("basic.test", "HEAD",
				   "/v2/test/small/blobs/sha256:0");
	drp_auth_attach(&rt, &worker, &out->x, f, "basic.test", 443,
			"test/small");
	char *h = attempt(f, "");
	ck_assert_str_eq(h, "");
	free(h);
	const char *www[] = {"Basic realm=\"r\"", NULL};
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_ERROR);
	ck_assert_int_eq(f->fail_status, 403);
	ck_assert_str_eq(
		f->fail_reason,
		"test/small on basic.test is private: this proxy serves "
		"it only to the clients its configuration allows, or "
		"with credentials of your own");
	free_fetch(f);
	/* Remembered: refused before the cache is asked. */
	ck_assert(intercept(out, raw, &ans));
	ck_assert_int_eq(out->x.status, 403);
	ck_assert_ptr_nonnull(strstr(ans, "\"code\":\"DENIED\""));
	free(ans);
	/* A repository anonymous access reads is public: on, cache and
	 * all. */
	f = new_fetch("basic.test", "GET", "/v2/pub/x/manifests/v1");
	drp_auth_attach(&rt, &worker, &out->x, f, "basic.test", 443, "pub/x");
	free(attempt(f, ""));
	f->status = 200;
	free_fetch(f);
	ck_assert(!intercept(out,
			     "GET /v2/pub/x/manifests/v1 HTTP/1.1\r\n"
			     "Host: basic.test\r\n\r\n",
			     &ans));
	ck_assert(!out->x.auth_confirm);
	free(ans);
	/* Inside: on to the cache and the upstream. */
	ck_assert(!intercept(in, raw, &ans));
	ck_assert(!in->x.auth_confirm);
	free(ans);
	/* Outside with the proxy's handle: still 403. */
	char *ph = get_handle("basic.test", NULL);
	snprintf(raw, sizeof(raw), "%sAuthorization: Bearer %s\r\n\r\n", blob,
		 ph);
	ck_assert(intercept(out, raw, &ans));
	ck_assert_int_eq(out->x.status, 403);
	free(ans);
	/* Outside with its own credentials (raw, or behind a handle):
	 * passed on, the upstream judges them. */
	snprintf(raw, sizeof(raw), "%sAuthorization: Basic YTpi\r\n\r\n", blob);
	ck_assert(!intercept(out, raw, &ans));
	/* ... and the cache answers only after the upstream's HEAD. */
	ck_assert(out->x.auth_confirm);
	free(ans);
	/* Insiders are trusted with the cache. */
	ck_assert(!intercept(in, raw, &ans));
	ck_assert(!in->x.auth_confirm);
	free(ans);
	/* The upstream accepts them for test/small (the HEAD the cache
	 * made): remembered, so the next requests of this client for that
	 * repository need no HEAD of their own... */
	drp_auth_host_t *hh = drp_auth_host_ref(&drp_auth_req_entries);
	drp_plugin_host_t *ph_host = drp_auth_host_plugin_host(hh);
	ph_host->now = fake_clock;
	fake_now = 1000.0;
	f = new_fetch("basic.test", "HEAD", "/v2/test/small/blobs/sha256:0");
	drp_auth_attach(&rt, &worker, &out->x, f, "basic.test", 443,
			"test/small");
	h = attempt(f, "Authorization: Basic YTpi\r\n");
	ck_assert_str_eq(h, "Authorization: Basic YTpi\r\n");
	free(h);
	f->status = 200;
	free_fetch(f);
	ck_assert(!intercept(out, raw, &ans));
	ck_assert(!out->x.auth_confirm);
	free(ans);
	/* ...but other credentials, and other repositories, still do. */
	snprintf(raw, sizeof(raw), "%sAuthorization: Basic YTpj\r\n\r\n", blob);
	ck_assert(!intercept(out, raw, &ans));
	ck_assert(out->x.auth_confirm);
	free(ans);
	const char *other = "GET /v2/test/other/blobs/sha256:"
			    "00000000000000000000000000000000000000000000000"
			    "00000000000000000 HTTP/1.1\r\nHost: basic.test\r\n"
			    "Authorization: Basic YTpi\r\n\r\n";
	ck_assert(!intercept(out, other, &ans));
	ck_assert(out->x.auth_confirm);
	free(ans);
	/* Refused (401) for test/other: the next request is answered 403
	 * at once, for a short while only. */
	f = new_fetch("basic.test", "HEAD", "/v2/test/other/blobs/sha256:0");
	drp_auth_attach(&rt, &worker, &out->x, f, "basic.test", 443,
			"test/other");
	free(attempt(f, "Authorization: Basic YTpi\r\n"));
	f->status = 401;
	free_fetch(f);
	ck_assert(intercept(out, other, &ans));
	ck_assert_int_eq(out->x.status, 403);
	ck_assert_ptr_nonnull(strstr(ans,
				     "basic.test refused these credentials for "
				     "test/other"));
	free(ans);
	fake_now += DRP_AUTH_REFUSED_TTL + 1;
	ck_assert(!intercept(out, other, &ans));
	ck_assert(out->x.auth_confirm);
	free(ans);
	/* The yes lasts longer, but not for ever. */
	snprintf(raw, sizeof(raw), "%sAuthorization: Basic YTpi\r\n\r\n", blob);
	ck_assert(!intercept(out, raw, &ans));
	ck_assert(!out->x.auth_confirm);
	free(ans);
	fake_now += DRP_AUTH_CONFIRM_TTL;
	ck_assert(!intercept(out, raw, &ans));
	ck_assert(out->x.auth_confirm);
	free(ans);
	/* A CDN's answer after the registry's redirect is the registry's
	 * yes, whatever the CDN said. */
	f = new_fetch("basic.test", "GET", "/v2/test/small/blobs/sha256:0");
	drp_auth_attach(&rt, &worker, &out->x, f, "basic.test", 443,
			"test/small");
	free(attempt(f, "Authorization: Basic YTpi\r\n"));
	snprintf(f->host, sizeof(f->host), "cdn.test");
	f->status = 403;
	free_fetch(f);
	ck_assert(!intercept(out, raw, &ans));
	ck_assert(!out->x.auth_confirm);
	free(ans);
	ph_host->now = drp_plugin_host_clock;
	drp_auth_host_unref(hh);
	snprintf(raw, sizeof(raw), "%sAuthorization: Basic YTpi\r\n\r\n", blob);
	char *ah = get_handle("basic.test", "Basic YWxpY2U6YWxpY2UtcHc=");
	snprintf(raw, sizeof(raw), "%sAuthorization: Bearer %s\r\n\r\n", blob,
		 ah);
	ck_assert(!intercept(out, raw, &ans));
	ck_assert(out->x.auth_confirm);
	free(ans);
	/* The probe and the realm are for everyone. */
	ck_assert(intercept(
		out, "GET /v2/ HTTP/1.1\r\nHost: basic.test\r\n\r\n", &ans));
	ck_assert_int_eq(out->x.status, 401);
	free(ans);

	/* Upstream fetches made for an outsider never carry the proxy's
	 * credentials: with the proxy's handle they go anonymously. */
	char base[256];
	snprintf(base, sizeof(base), "Authorization: Bearer %s\r\n", ph);
	f = new_fetch("basic.test", "GET", "/v2/x/manifests/v1");
	drp_auth_attach(&rt, &worker, &out->x, f, "basic.test", 443, "x");
	h = attempt(f, base);
	ck_assert_str_eq(h, "");
	free(h);
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_ERROR);
	ck_assert_int_eq(f->fail_status, 403);
	free_fetch(f);
	/* The same for the insider: the proxy's account. */
	f = new_fetch("basic.test", "GET", "/v2/x/manifests/v1");
	drp_auth_attach(&rt, &worker, &in->x, f, "basic.test", 443, "x");
	free(attempt(f, base));
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_OK);
	h = attempt(f, base);
	ck_assert_str_eq(h, "Authorization: " BASIC_DRPUSER "\r\n");
	free(h);
	free_fetch(f);
	free(ph);
	free(ah);
	free_conn(out);
	free_conn(in);
}
END_TEST

/* The daemon's own request for the operator (a warm, ctl/warm.h) has no
 * peer address: every section admits it, private content is not refused
 * to it, and its upstream requests carry the proxy's credentials, where
 * an outsider's are refused. */
START_TEST(test_operator)
{
	drp_auth_free(rt.auth);
	drp_conf_free(rt.conf);
	setup_conf("[registry \"basic.test\"]\nplugin = basic\n"
		   "username = drpuser\npassword = s3cret\n"
		   "allow = 10.0.0.0/8\n");
	fake_conn_t *out = fake_conn("basic.test");
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->peer;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(0x7f000005); /* 127.0.0.5 */
	fake_conn_t *op = fake_conn("basic.test");
	op->x.peer_addr = NULL;
	op->x.peer = "warm";
	const char *www[] = {"Basic realm=\"r\"", NULL};
	const char *raw = "GET /v2/test/small/manifests/v1 HTTP/1.1\r\n"
			  "Host: basic.test\r\n\r\n";
	char *ans, *h;
	/* The outsider learns the repository is private. */
	ck_assert(!intercept(out, raw, &ans));
	free(ans);
	drp_fetch_t *f =
		new_fetch("basic.test", "GET", "/v2/test/small/manifests/v1");
	drp_auth_attach(&rt, &worker, &out->x, f, "basic.test", 443,
			"test/small");
	free(attempt(f, ""));
	ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_ERROR);
	ck_assert_int_eq(f->fail_status, 403);
	free_fetch(f);
	ck_assert(intercept(out, raw, &ans));
	ck_assert_int_eq(out->x.status, 403);
	free(ans);
	/* The operator: on to the cache, no confirmation needed... */
	ck_assert(!intercept(op, raw, &ans));
	ck_assert(!op->x.auth_confirm);
	ck_assert_str_eq(ans, "");
	free(ans);
	/* ... and the proxy's credentials upstream. */
	f = new_fetch("basic.test", "GET", "/v2/test/small/manifests/v1");
	drp_auth_attach(&rt, &worker, &op->x, f, "basic.test", 443,
			"test/small");
	h = attempt(f, "");
	if (h[0] == '\0') {
		/* The plugin learns the scheme from the challenge. */
		ck_assert_int_eq(challenge(f, www), DRP_FETCH_AUTH_OK);
		free(h);
		h = attempt(f, "");
	}
	ck_assert_str_eq(h, "Authorization: " BASIC_DRPUSER "\r\n");
	free(h);
	free_fetch(f);
	free_conn(out);
	free_conn(op);
}
END_TEST

/* Proxy users in a section's policy: users without allow admits those
 * users and no network; users = * any proxy user; the start-up warning
 * names only sections with neither. */
START_TEST(test_users_policy)
{
	char upath[64];
	snprintf(upath, sizeof(upath), "/tmp/test_auth.%d.users", getpid());
	FILE *uf = fopen(upath, "w");
	ck_assert_ptr_nonnull(uf);
	/* htpasswd -bns alice alice-pw; htpasswd -bnm bob bob pw:with colon */
	fputs("alice:{SHA}g2YDYHBhl9R/ddqtGep+ipAO4aU=\n"
	      "bob:$apr1$e0jztoCR$wx1XgLhc/J5spaSvQlFo8.\n",
	      uf);
	fclose(uf);
	drp_auth_free(rt.auth);
	drp_conf_free(rt.conf);
	unlink(logpath);
	drp_log_init(DRP_LOG_INFO, logpath);
	char text[1024];
	snprintf(text, sizeof(text),
		 "[proxy]\nusers_file = %s\n"
		 "[registry \"basic.test\"]\nplugin = basic\n"
		 "username = drpuser\npassword = s3cret\n"
		 "users = alice, ghost\n"
		 "[registry \"push.test\"]\nplugin = basic\n"
		 "username = drpuser\npassword = s3cret\n"
		 "allow = 10.0.0.0/8\nusers = *\n"
		 "[registry \"open.test\"]\nplugin = basic\n"
		 "username = u\npassword = p\n",
		 upath);
	setup_conf(text);
	drp_users_t *users = drp_auth_users(rt.auth);
	ck_assert_ptr_nonnull(users);
	ck_assert_uint_eq(drp_users_count(users), 2);
	const char *log = read_log();
	ck_assert_ptr_nonnull(strstr(log, "[registry \"open.test\"] has "
					  "neither allow nor users"));
	ck_assert_ptr_null(strstr(log, "[registry \"basic.test\"] has"));
	ck_assert_ptr_null(strstr(log, "[registry \"push.test\"] has"));
	/* A name the file does not have never matches: said at start-up. */
	ck_assert_ptr_nonnull(strstr(log, "t.ini:7: [registry \"basic.test\"] "
					  "users: 'ghost' is not a user of"));

	const char *www[] = {"Basic realm=\"r\"", NULL};
	static const struct {
		const char *host;
		uint32_t addr;
		const char *user;
		bool allowed;
	} cases[] = {
		/* users without allow: no network qualifies... */
		{"basic.test", 0x7f000001, NULL, false},
		/* ...a listed user does, from anywhere... */
		{"basic.test", 0x7f000005, "alice", true},
		/* ...another proxy user does not */
		{"basic.test", 0x7f000005, "bob", false},
		/* users = *: any proxy user */
		{"push.test", 0x7f000005, "bob", true},
		/* ...or the allow network, without a user */
		{"push.test", 0x0a000001, NULL, true},
		/* ...but not an anonymous client elsewhere */
		{"push.test", 0x7f000005, NULL, false},
		/* neither: whoever [proxy] allow admitted */
		{"open.test", 0x7f000005, NULL, true},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fake_conn_t *c = fake_conn(cases[i].host);
		struct sockaddr_in *sin = (struct sockaddr_in *)&c->peer;
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(cases[i].addr);
		c->user = cases[i].user ? drp_strdup(cases[i].user) : NULL;
		c->x.user = c->user;
		drp_fetch_t *f =
			new_fetch(cases[i].host, "GET", "/v2/x/manifests/v1");
		drp_auth_attach(&rt, &worker, &c->x, f, cases[i].host, 443,
				"x");
		/* Allowed: the proxy's account (sent at once once the
		 * plugin knows the scheme, else in answer to the challenge);
		 * not: anonymous access, refused, the repository is
		 * private. */
		char *h = attempt(f, "");
		bool proxys = strstr(h, "Authorization: Basic ") != NULL;
		free(h);
		if (!proxys) {
			enum drp_fetch_auth got = challenge(f, www);
			ck_assert_msg(got == (cases[i].allowed
						      ? DRP_FETCH_AUTH_OK
						      : DRP_FETCH_AUTH_ERROR),
				      "case %zu: %d", i, (int)got);
			h = attempt(f, "");
			proxys = strstr(h, "Authorization: Basic ") != NULL;
			free(h);
		}
		ck_assert_msg(proxys == cases[i].allowed, "case %zu", i);
		ck_assert_int_eq(f->fail_status, cases[i].allowed ? 0 : 403);
		free_fetch(f);
		free_conn(c);
	}
	unlink(upath);

	/* A users file that cannot be read fails the configuration. */
	drp_conf_errors_t e2 = {0};
	drp_conf_t *c2 = drp_conf_load_string(
		"t.ini", "[proxy]\nusers_file = /nonexistent/users\n", &e2);
	ck_assert_ptr_nonnull(c2);
	ck_assert_ptr_null(drp_auth_new(c2, &e2));
	ck_assert_uint_eq(e2.n, 1);
	ck_assert_str_eq(e2.msg[0], "/nonexistent/users: cannot open: No such "
				    "file or directory");
	drp_conf_errors_free(&e2);
	drp_conf_free(c2);
}
END_TEST

/* The host's basic_auth (what plugins send upstream) against known
 * encodings, and back through the proxy's own Basic parser. */
static const struct {
	const char *user, *password, *want;
} basic_auth_cases[] = {
	/* "drpuser:s3cret", 14 bytes: one '=' */
	{"drpuser", "s3cret", BASIC_DRPUSER},
	/* "u:p", 3 bytes: no padding */
	{"u", "p", "Basic dTpw"},
	/* "u:pw", 4 bytes: two '=' */
	{"u", "pw", "Basic dTpwdw=="},
	/* a colon in the password: "bob:a:b" */
	{"bob", "a:b", "Basic Ym9iOmE6Yg=="},
	/* an empty password: "u:" */
	{"u", "", "Basic dTo="},
	/* an empty user (the upstream judges it): ":pw" */
	{"", "pw", "Basic OnB3"},
	/* a password that is not UTF-8: "u:\xe9t\xe9" */
	{"u", "\xe9t\xe9", "Basic dTrpdOk="},
};

START_TEST(test_host_basic_auth)
{
	drp_auth_host_t *h = drp_auth_host_ref(&drp_auth_req_entries);
	const drp_host_api_t *api = &drp_auth_host_plugin_host(h)->api;
	const char *user = basic_auth_cases[_i].user;
	const char *password = basic_auth_cases[_i].password;
	char *v = api->basic_auth(user, password);
	ck_assert_str_eq(v, basic_auth_cases[_i].want);
	char *u = NULL, *p = NULL;
	ck_assert_int_eq(drp_users_parse_basic(v, &u, &p),
			 user[0] ? 0 : -EINVAL);
	if (user[0]) {
		ck_assert_str_eq(u, user);
		ck_assert_str_eq(p, password);
	}
	free(u);
	free(p);
	api->free(v);

	/* The longest the proxy's parser takes: 8192 characters. */
	size_t plen = 8192 / 4 * 3 - 2;
	char *big = malloc(plen + 1);
	memset(big, 'p', plen);
	big[plen] = '\0';
	v = api->basic_auth("u", big);
	ck_assert_uint_eq(strlen(v), 6 + 8192);
	ck_assert_int_eq(drp_users_parse_basic(v, &u, &p), 0);
	ck_assert_str_eq(p, big);
	free(u);
	free(p);
	api->free(v);
	free(big);
	drp_auth_host_unref(h);
}
END_TEST

/* The name a client's own Basic credentials give its identity in log
 * lines. */
static const struct {
	const char *basic, *user;
} ident_names[] = {
	/* alice:alice-pw */
	{"Basic YWxpY2U6YWxpY2UtcHc=", "alice"},
	/* the same without its padding */
	{"Basic YWxpY2U6YWxpY2UtcHc", "alice"},
	/* blanks after the scheme and after the token */
	{"Basic   YWxpY2U6YWxpY2UtcHc=  ", "alice"},
	/* no colon: all of it is the name ("alice") */
	{"Basic YWxpY2U=", "alice"},
	/* bytes outside printable ASCII show as '?': "j\xc3\xb6rg:pw",
	 * "a\x01b:pw" */
	{"Basic asO2cmc6cHc=", "j??rg"},
	{"Basic YQFiOnB3", "a?b"},
	/* no name: ":pw" */
	{"Basic OnB3", "?"},
	/* not base64: nothing is decoded, no partial name */
	{"Basic YWxp*2U6YWxpY2UtcHc=", "?"},
	{"Basic YWxpY2U6YWxpY2Utc", "?"},
	/* no token */
	{"Basic", "?"},
};

START_TEST(test_ident_user)
{
	drp_auth_host_t *h = drp_auth_host_ref(&drp_auth_req_entries);
	drp_auth_ident_t *id =
		drp_auth_ident_new(h, ident_names[_i].basic, "x.test");
	ck_assert_str_eq(drp_auth_ident_user(id), ident_names[_i].user);
	drp_auth_ident_unref(id);
	drp_auth_host_unref(h);
}
END_TEST

Suite *auth_suite(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_headers);
	tcase_add_test(tc, test_parse_url);
	tcase_add_test(tc, test_new_errors);
	tcase_add_test(tc, test_unreadable_password_file);
	tcase_add_test(tc, test_no_section);
	tcase_add_test(tc, test_basic_flow);
	tcase_add_loop_test(tc, test_redirect_origin, 0,
			    sizeof(redirects) / sizeof(redirects[0]));
	tcase_add_test(tc, test_client_credentials_win);
	tcase_add_test(tc, test_push_policy);
	tcase_add_test(tc, test_push_default);
	tcase_add_test(tc, test_token_realm);
	tcase_add_test(tc, test_request_fields);
	tcase_add_test(tc, test_bearer_flow);
	tcase_add_test(tc, test_bearer_refused);
	tcase_add_test(tc, test_cancel_pending);
	tcase_add_test(tc, test_services_outside_hooks);
	tcase_add_test(tc, test_worker_stop);
	tcase_add_test(tc, test_handles);
	tcase_add_test(tc, test_intercept);
	tcase_add_test(tc, test_handle_swap);
	tcase_add_test(tc, test_realm_checks_credentials);
	tcase_add_test(tc, test_handle_anonymous);
	tcase_add_test(tc, test_outsider);
	tcase_add_test(tc, test_operator);
	tcase_add_test(tc, test_users_policy);
	tcase_add_loop_test(tc, test_host_basic_auth, 0,
			    sizeof(basic_auth_cases) /
				    sizeof(basic_auth_cases[0]));
	tcase_add_loop_test(tc, test_ident_user, 0,
			    sizeof(ident_names) / sizeof(ident_names[0]));
	suite_add_tcase(s, tc);
	return s;
}
