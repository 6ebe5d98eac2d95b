/* SPDX-License-Identifier: MIT */
/* Policy decisions and access-log lines of the proxy core. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <netinet/in.h>
#include <stdio.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "proxy/accesslog.h"
#include "proxy/server.h"
#include "proxy/worker.h"
#include "util/mem.h"

Suite *proxy_suite(void);

static drp_conf_t *conf_from(const char *text)
{
	drp_conf_errors_t errs = {0};
	drp_conf_t *c = drp_conf_load_string("test.ini", text, &errs);
	for (unsigned i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.msg[i]);
	ck_assert_ptr_nonnull(c);
	drp_conf_errors_free(&errs);
	return c;
}

START_TEST(intercept_policy)
{
	drp_conf_t *c =
		conf_from("[proxy]\n"
			  "registries = quay.io registry.test:5000 [::1]:8443\n"
			  "[registry \"ghcr.io/acme\"]\n"
			  "username = u\npassword = p\nplugin = basic\n"
			  "[registry \"*.pkg.dev\"]\n");
	static const struct {
		const char *host;
		uint16_t port;
		bool want;
	} cases[] = {
		/* listed host, default port */
		{"quay.io", 443, true},
		/* listed host on another port is tunnelled, not intercepted */
		{"quay.io", 8443, false},
		/* host:port entry matches only that port */
		{"registry.test", 5000, true},
		{"registry.test", 443, false},
		/* wildcard section: subdomains, not the apex */
		{"europe-docker.pkg.dev", 443, true},
		{"pkg.dev", 443, false},
		{"evilpkg.dev", 443, false},
		/* Docker Hub is always intercepted */
		{"registry-1.docker.io", 443, true},
		{"auth.docker.io", 443, true},
		/* a [registry] section implies its host */
		{"ghcr.io", 443, true},
		/* IPv6 literal entry */
		{"::1", 8443, true},
		/* anything else */
		{"github.com", 443, false},
		{"quay.io.evil.com", 443, false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(
			drp_server_intercepts(c, cases[i].host,
					      cases[i].port) == cases[i].want,
			"case %zu: %s:%u", i, cases[i].host, cases[i].port);
	drp_conf_free(c);
}
END_TEST

/* A section named by any Docker Hub alias is a Docker Hub section: its
 * registry hosts are intercepted even where tunnel_only names them, as
 * for [registry "docker.io"]. */
START_TEST(intercept_hub_alias_section)
{
	/* (A section named registry-1.docker.io itself conflicts with this
	 * tunnel_only: a configuration error of its own.) */
	static const char *const names[] = {"docker.io/acme",
					    "index.docker.io/acme"};
	for (size_t i = 0; i < DRP_ARRAY_SIZE(names); i++) {
		char text[256];
		snprintf(text, sizeof(text),
			 "[proxy]\ntunnel_only = registry-1.docker.io\n"
			 "[registry \"%s\"]\n",
			 names[i]);
		drp_conf_t *c = conf_from(text);
		ck_assert_msg(
			drp_server_intercepts(c, "registry-1.docker.io", 443),
			"[registry \"%s\"]", names[i]);
		ck_assert(drp_server_intercepts(c, "index.docker.io", 443));
		drp_conf_free(c);
	}
	/* Without a Docker Hub section, tunnel_only wins. */
	drp_conf_t *c =
		conf_from("[proxy]\ntunnel_only = registry-1.docker.io\n"
			  "[registry \"quay.io\"]\n");
	ck_assert(!drp_server_intercepts(c, "registry-1.docker.io", 443));
	drp_conf_free(c);
}
END_TEST

START_TEST(resolve_override)
{
	drp_conf_t *c = conf_from("[resolve]\n"
				  "registry.test = 127.0.0.11:8443\n"
				  "cdn.test = 127.0.0.14\n"
				  "dual.test = [::1]:444 127.0.0.15\n");
	char err[256] = "";
	drp_upstream_conf_t *u = drp_upstream_conf_new(c, err, sizeof(err));
	ck_assert_msg(u != NULL, "%s", err);
	struct sockaddr_storage ss[4];
	unsigned len[4];
	ck_assert_uint_eq(drp_upstream_resolve_override(u, "registry.test", 443,
							ss, len, 4),
			  1);
	struct sockaddr_in *in = (struct sockaddr_in *)&ss[0];
	ck_assert_uint_eq(ntohs(in->sin_port), 8443);
	ck_assert_uint_eq(ntohl(in->sin_addr.s_addr), 0x7f00000b);
	/* no port in the entry: the requested one */
	ck_assert_uint_eq(
		drp_upstream_resolve_override(u, "cdn.test", 443, ss, len, 4),
		1);
	ck_assert_uint_eq(ntohs(in->sin_port), 443);
	ck_assert_uint_eq(
		drp_upstream_resolve_override(u, "other.test", 443, ss, len, 4),
		0);
	/* several, in the order written, at most max */
	ck_assert_uint_eq(
		drp_upstream_resolve_override(u, "dual.test", 443, ss, len, 4),
		2);
	ck_assert_uint_eq(ss[0].ss_family, AF_INET6);
	ck_assert_uint_eq(ntohs(((struct sockaddr_in6 *)&ss[0])->sin6_port),
			  444);
	ck_assert_uint_eq(ntohs(((struct sockaddr_in *)&ss[1])->sin_port), 443);
	ck_assert_uint_eq(
		drp_upstream_resolve_override(u, "dual.test", 443, ss, len, 1),
		1);
	drp_upstream_conf_unref(u);
	drp_conf_free(c);
}
END_TEST

START_TEST(accesslog_line)
{
	drp_access_t a = {
		.client = "10.0.0.7",
		.host = "quay.io",
		.port = 443,
		.method = "GET",
		.path = "/v2/x/blobs/sha256:ab?X-Amz-Signature=secret",
		.status = 200,
		.bytes_in = 0,
		.bytes_out = 1048576,
		.duration = 0.035,
		.up_status = 200,
		.result = "PASS",
		.user = "alice",
	};
	char line[1024];
	size_t n = drp_accesslog_format(&a, 1795000000.25, line, sizeof(line));
	ck_assert_str_eq(line, "2026-11-18T11:06:40.250Z 10.0.0.7 quay.io:443 "
			       "GET /v2/x/blobs/sha256:ab 200 0 1048576 35 "
			       "200 PASS alice c000000 -\n");
	ck_assert_uint_eq(n, strlen(line));
	/* The query string (signed URLs) never reaches the log. */
	ck_assert_ptr_null(strstr(line, "secret"));

	/* Control bytes and spaces in a path cannot forge fields or lines;
	 * a direct request has no host; no upstream status is "-". */
	drp_access_t b = {.client = "::1",
			  .method = "GET",
			  .path = "/a b\nc",
			  .status = 404,
			  .result = "PASS"};
	drp_accesslog_format(&b, 1795000000.0, line, sizeof(line));
	ck_assert_str_eq(line, "2026-11-18T11:06:40.000Z ::1 - GET /a%20b%0Ac "
			       "404 0 0 0 - PASS - c000000 -\n");
	/* A user name cannot forge fields either. */
	b.user = "eve 200\nx";
	drp_accesslog_format(&b, 1795000000.0, line, sizeof(line));
	ck_assert_str_eq(line, "2026-11-18T11:06:40.000Z ::1 - GET /a%20b%0Ac "
			       "404 0 0 0 - PASS eve%20200%0Ax c000000 -\n");
	/* The connection id and the User-Agent, quoted: blanks stay, a
	 * quote or a line break cannot end the field or the line. */
	b.conn = 42;
	b.ua = "docker/24.0 go/1.20 \"x\"\r\nfake";
	drp_accesslog_format(&b, 1795000000.0, line, sizeof(line));
	ck_assert_str_eq(line, "2026-11-18T11:06:40.000Z ::1 - GET /a%20b%0Ac "
			       "404 0 0 0 - PASS eve%20200%0Ax c000042 "
			       "\"docker/24.0 go/1.20 %22x%22%0D%0Afake\"\n");
	/* Every field is there and escaped: an empty method or a path that
	 * is only a query is "-", a host cannot break the line. */
	drp_access_t e = {.client = "",
			  .host = "h\n1 2",
			  .port = 443,
			  .method = "",
			  .path = "?token=secret",
			  .status = 400,
			  .result = "PASS"};
	drp_accesslog_format(&e, 1795000000.0, line, sizeof(line));
	ck_assert_str_eq(line, "2026-11-18T11:06:40.000Z - h%0A1%202:443 - - "
			       "400 0 0 0 - PASS - c000000 -\n");
}
END_TEST

/* One JSON object per line, every member present, strings escaped, and
 * bytes that are not UTF-8 replaced: whatever the client sent, the line
 * parses. */
START_TEST(accesslog_json)
{
	drp_access_t a = {
		.client = "10.0.0.7",
		.host = "quay.io",
		.port = 443,
		.method = "GET",
		.path = "/v2/x/blobs/sha256:ab?X-Amz-Signature=secret",
		.status = 200,
		.bytes_out = 1048576,
		.duration = 0.035,
		.up_status = 200,
		.result = "MISS",
		.user = "alice",
		.conn = 7,
		.ua = "containerd/1.7",
	};
	char line[8192];
	size_t n = drp_accesslog_format_json(&a, 1795000000.25, line,
					     sizeof(line));
	ck_assert_uint_eq(n, strlen(line));
	ck_assert_str_eq(
		line, "{\"time\":\"2026-11-18T11:06:40.250Z\",\"conn\":"
		      "\"c000007\",\"client\":\"10.0.0.7\",\"user\":"
		      "\"alice\",\"host\":\"quay.io:443\",\"method\":\"GET\","
		      "\"path\":\"/v2/x/blobs/sha256:ab\",\"status\":200,"
		      "\"bytes_in\":0,\"bytes_out\":1048576,\"ms\":35.000,"
		      "\"upstream_status\":200,\"result\":\"miss\",\"ua\":"
		      "\"containerd/1.7\"}\n");

	/* Hostile strings: quotes, backslashes, control bytes, invalid and
	 * overlong UTF-8, a surrogate, and valid multi-byte characters. */
	static const char *const nasty[] = {
		"a\"b\\c",
		"line\nbreak\t\x01\x7f",
		"\xff\xfe bad",
		"\xc0\xaf overlong",
		"\xed\xa0\x80 surrogate",
		"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xb3",
		"cut \xe2\x82",
	};
	static const char *const want[] = {
		"a\"b\\c",
		"line\nbreak\t\x01\x7f",
		"\xef\xbf\xbd\xef\xbf\xbd bad",
		"\xef\xbf\xbd\xef\xbf\xbd overlong",
		"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd surrogate",
		"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xb3",
		"cut \xef\xbf\xbd\xef\xbf\xbd",
	};
	for (size_t i = 0; i < sizeof(nasty) / sizeof(nasty[0]); i++) {
		drp_access_t b = {.client = "::1",
				  .method = nasty[i],
				  .path = nasty[i],
				  .user = nasty[i],
				  .ua = nasty[i],
				  .result = "TLS_ERROR"};
		drp_accesslog_format_json(&b, 1795000000.0, line, sizeof(line));
		/* One line: its only line break is the last byte. */
		ck_assert_ptr_eq(strchr(line, '\n'), line + strlen(line) - 1);
		json_error_t err;
		json_t *o = json_loads(line, 0, &err);
		ck_assert_msg(o != NULL, "case %zu: %s: %s", i, err.text, line);
		ck_assert_str_eq(json_string_value(json_object_get(o, "ua")),
				 want[i]);
		ck_assert_str_eq(json_string_value(json_object_get(o, "user")),
				 want[i]);
		ck_assert_str_eq(
			json_string_value(json_object_get(o, "result")),
			"tls_error");
		/* Absent facts are null; every member is there. */
		ck_assert(json_is_null(json_object_get(o, "host")));
		ck_assert(json_is_null(json_object_get(o, "upstream_status")));
		ck_assert_uint_eq(json_object_size(o), 14);
		json_decref(o);
	}

	/* A path at the bound, every byte escaped six times over, still
	 * makes a whole line in the daemon's buffer size. */
	char *path = malloc(4096);
	path[0] = '/';
	memset(path + 1, 1, 4094);
	path[4095] = '\0';
	drp_access_t c = {.method = "GET", .path = path, .ua = path};
	char small[1024];
	drp_accesslog_format_json(&c, 1795000000.0, small, sizeof(small));
	json_error_t err;
	json_t *o = json_loads(small, 0, &err);
	ck_assert_msg(o != NULL, "cut line: %s", err.text);
	json_decref(o);
	free(path);
}
END_TEST

/* ---- drp_worker_call: work handed to a loop from other threads ---- */

static void noop_worker(drp_worker_t *w)
{
}
static void noop_fill(drp_worker_t *w)
{
}
static void noop_close(drp_worker_t *w, const char *reason)
{
}

static const drp_worker_hooks_t noop_hooks = {
	.reap = noop_worker,
	.drain = noop_worker,
	.close_all = noop_close,
	.fill_wake = noop_fill,
	.stop = noop_worker,
};

struct call_log {
	pthread_t loop_thread;
	int order[4];
	int n;
	bool on_loop;
};

static struct call_log calls;

static void record_call(drp_worker_t *w, void *arg)
{
	calls.on_loop = calls.on_loop &&
			pthread_equal(pthread_self(), calls.loop_thread);
	calls.order[calls.n++] = (int)(intptr_t)arg;
	if (calls.n == 3)
		ev_break(w->loop, EVBREAK_ALL);
}

static void *run_loop(void *arg)
{
	drp_worker_t *w = arg;
	calls.loop_thread = pthread_self();
	ev_run(w->loop, 0);
	return NULL;
}

START_TEST(worker_call)
{
	drp_conf_t *c = conf_from("[proxy]\n");
	drp_server_t srv = {.loops_live = true};
	pthread_rwlock_init(&srv.loops_lock, NULL);
	drp_worker_t w = {.srv = &srv, .spare_fd = -1};
	ck_assert_int_eq(drp_worker_loop_init(&w, c, &noop_hooks), 0);
	calls = (struct call_log){.on_loop = true};
	/* Queued before the loop runs, then run in order on its thread. */
	ck_assert_int_eq(drp_worker_call(&w, record_call, (void *)1), 0);
	ck_assert_int_eq(drp_worker_call(&w, record_call, (void *)2), 0);
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, run_loop, &w), 0);
	ck_assert_int_eq(drp_worker_call(&w, record_call, (void *)3), 0);
	pthread_join(th, NULL);
	ck_assert_int_eq(calls.n, 3);
	ck_assert(calls.on_loop);
	ck_assert_int_eq(calls.order[0], 1);
	ck_assert_int_eq(calls.order[2], 3);
	/* The loops are gone: refused, and never run. */
	srv.loops_live = false;
	ck_assert_int_eq(drp_worker_call(&w, record_call, (void *)4),
			 -ESHUTDOWN);
	srv.loops_live = true;
	ck_assert_int_eq(drp_worker_call(&w, record_call, (void *)5), 0);
	drp_worker_loop_fini(&w); /* dropped, not run */
	ck_assert_int_eq(calls.n, 3);
	pthread_rwlock_destroy(&srv.loops_lock);
	drp_conf_free(c);
}
END_TEST

Suite *proxy_suite(void)
{
	Suite *s = suite_create("proxy");
	TCase *tc = tcase_create("policy");
	tcase_add_test(tc, intercept_policy);
	tcase_add_test(tc, intercept_hub_alias_section);
	tcase_add_test(tc, resolve_override);
	tcase_add_test(tc, accesslog_line);
	tcase_add_test(tc, accesslog_json);
	suite_add_tcase(s, tc);
	tc = tcase_create("worker");
	tcase_add_test(tc, worker_call);
	suite_add_tcase(s, tc);
	return s;
}
