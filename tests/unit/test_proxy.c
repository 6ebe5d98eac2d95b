/* SPDX-License-Identifier: MIT */
/* Policy decisions and access-log lines of the proxy core. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <stdio.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
/* ---- the text access line against printf ---- */

/* The text formatter as it was, with snprintf and strftime: the new one,
 * which appends without printf, must write the same bytes. */
/* Bounds on what one line takes of each field. */
#define REF_METHOD_MAX	 32
#define REF_PATH_MAX_LOG 2048
#define REF_USER_MAX	 255
#define REF_UA_MAX	 256
#define REF_CLIENT_MAX	 64
#define REF_HOST_MAX	 256

static const char *ref_nonempty(const char *s)
{
	return s && s[0] ? s : "-";
}

/* Append s, %-escaping bytes that would break the line's fields (the
 * blank too unless space_ok: a quoted field may hold it). */
static size_t ref_put_escaped(char *out, size_t size, size_t n, const char *s,
			      size_t max, bool space_ok)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; s[i] && i < max && n + 4 < size; i++) {
		unsigned char ch = (unsigned char)s[i];
		if ((ch < 0x20 || (ch == 0x20 && !space_ok)) || ch >= 0x7f ||
		    ch == '%' || ch == '"') {
			out[n++] = '%';
			out[n++] = hex[ch >> 4];
			out[n++] = hex[ch & 15];
		} else {
			out[n++] = (char)ch;
		}
	}
	return n;
}

/* "2026-11-27T18:40:00.123Z" */
static size_t ref_put_time(char *buf, size_t size, double now)
{
	time_t secs = (time_t)now;
	struct tm tm;
	gmtime_r(&secs, &tm);
	size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	int r = snprintf(buf + n, size - n, ".%03dZ",
			 (int)((now - (double)secs) * 1000.0) % 1000);
	return n + (r > 0 ? (size_t)r : 0);
}

static size_t ref_format(const drp_access_t *a, double now, char *buf,
			 size_t size)
{
	size_t n = ref_put_time(buf, size, now);
	/* Every field escaped, and "-" for an empty one: nothing a client
	 * sends can add, remove or shift a field. */
	if (n + 1 < size)
		buf[n++] = ' ';
	n = ref_put_escaped(buf, size, n, ref_nonempty(a->client),
			    REF_CLIENT_MAX, false);
	if (n + 1 < size)
		buf[n++] = ' ';
	if (a->host && a->host[0]) {
		bool v6 = strchr(a->host, ':') != NULL;
		if (v6 && n + 1 < size)
			buf[n++] = '[';
		n = ref_put_escaped(buf, size, n, a->host, REF_HOST_MAX, false);
		int r = snprintf(buf + n, size - n, "%s:%u ", v6 ? "]" : "",
				 a->port);
		n += r > 0 ? (size_t)r : 0;
	} else if (n + 2 < size) {
		buf[n++] = '-';
		buf[n++] = ' ';
	}
	if (n >= size - 1)
		n = size - 1;
	n = ref_put_escaped(buf, size, n, ref_nonempty(a->method),
			    REF_METHOD_MAX, false);
	if (n + 1 < size)
		buf[n++] = ' ';
	const char *path = a->path ? a->path : "";
	size_t plen = strcspn(path, "?#");
	if (plen == 0) {
		path = "-";
		plen = 1;
	}
	n = ref_put_escaped(buf, size, n, path,
			    plen > REF_PATH_MAX_LOG ? REF_PATH_MAX_LOG : plen,
			    false);
	if (n < size - 1) {
		char up[16] = "-";
		if (a->up_status > 0)
			snprintf(up, sizeof(up), "%d", a->up_status);
		int r = snprintf(buf + n, size - n, " %d %llu %llu %.0f %s %s ",
				 a->status, (unsigned long long)a->bytes_in,
				 (unsigned long long)a->bytes_out,
				 a->duration * 1000.0, up,
				 a->result ? a->result : "-");
		n += r > 0 ? (size_t)r : 0;
		if (n >= size - 1)
			n = size - 1;
		n = ref_put_escaped(buf, size, n, ref_nonempty(a->user),
				    REF_USER_MAX, false);
		if (n < size - 1) {
			r = snprintf(buf + n, size - n, " c%06u ", a->conn);
			n += r > 0 ? (size_t)r : 0;
			if (n >= size - 1)
				n = size - 1;
		}
		if (a->ua == NULL) {
			if (n + 1 < size)
				buf[n++] = '-';
		} else if (n + 1 < size) {
			buf[n++] = '"';
			n = ref_put_escaped(buf, size, n, a->ua, REF_UA_MAX,
					    true);
			if (n + 1 < size)
				buf[n++] = '"';
		}
		if (n + 1 < size)
			buf[n++] = '\n';
	}
	if (n >= size - 1) {
		/* Cut short: still one line. */
		n = size - 1;
		buf[n - 1] = '\n';
	}
	buf[n] = '\0';
	return n;
}

static uint64_t rnd_state = 88172645463325252ULL;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static char *rnd_str(char *buf, size_t cap)
{
	size_t len = rnd() % 4 == 0 ? rnd() % cap : rnd() % 24;
	static const char pick[] = "abcXYZ019 %\"?#:/-.\t\x01\x7f\xc3\xa9";
	for (size_t i = 0; i < len; i++)
		buf[i] = rnd() % 8 == 0 ? (char)(1 + rnd() % 255)
					: pick[rnd() % (sizeof(pick) - 1)];
	buf[len] = '\0';
	return rnd() % 10 == 0 ? NULL : buf;
}

START_TEST(accesslog_line_as_printf)
{
	static char s[6][3000], got[20 * 1024], want[20 * 1024];
	static const double odd[] = {
		0.0,	   -0.0,       0.0005,	  0.0015,  0.0025, -0.0004,
		1e12,	   1e13,       1e300,	  -1e300,  0.5e-3, 2.5e-3,
		1.0 / 0.0, -1.0 / 0.0, 0.0 / 0.0, 123.4565};
	for (int i = 0; i < 200000; i++) {
		drp_access_t a = {
			.client = rnd_str(s[0], 100),
			.host = rnd_str(s[1], 300),
			.port = (uint16_t)rnd(),
			.method = rnd_str(s[2], 40),
			.path = rnd_str(s[3], 2999),
			.status = (int)rnd(),
			.bytes_in = rnd() >> (rnd() % 64),
			.bytes_out = rnd() >> (rnd() % 64),
			.up_status =
				rnd() % 2 ? (int)(rnd() % 600) : (int)rnd(),
			.result = rnd() % 5 ? "HIT" : NULL,
			.user = rnd_str(s[4], 300),
			.conn = (unsigned)(rnd() >> (rnd() % 64)),
			.ua = rnd_str(s[5], 300),
		};
		switch (rnd() % 4) {
		case 0:
			a.duration =
				odd[rnd() % (sizeof(odd) / sizeof(odd[0]))];
			break;
		case 1:
			a.duration = (double)(rnd() % 100000) / 2000.0;
			break;
		default:
			a.duration = (double)(rnd() % 1000000000) / 1e6;
		}
		double now = 1795000000.0 + (double)(rnd() % 100000) / 1000.0;
		if (i % 1000 == 0)
			now = (double)(rnd() % 4000000000ULL) + 0.9995;
		size_t size = rnd() % 3 == 0 ? 40 + rnd() % 600 : sizeof(got);
		memset(got, 'G', sizeof(got));
		memset(want, 'G', sizeof(want));
		size_t gn = drp_accesslog_format(&a, now, got, size);
		size_t wn = ref_format(&a, now, want, size);
		ck_assert_uint_eq(gn, wn);
		ck_assert_msg(memcmp(got, want, wn + 1) == 0,
			      "line %d differs:\n%s\n%s", i, got, want);
	}
}
END_TEST

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
	tcase_add_test(tc, accesslog_line_as_printf);
	suite_add_tcase(s, tc);
	tc = tcase_create("worker");
	tcase_add_test(tc, worker_call);
	suite_add_tcase(s, tc);
	return s;
}
