/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/metrics.h"

Suite *metrics_suite(void);

static void setup(void)
{
	drp_metrics_reset();
}

/* The rendered exposition, NUL-terminated (free it). */
static char *render(void)
{
	drp_buf_t b = {0};
	drp_metrics_render(&b);
	drp_buf_append(&b, "", 1);
	char *s = strdup(drp_buf_head(&b));
	drp_buf_free(&b);
	return s;
}

/* The value of the sample line that starts with `series ` (-1: none). */
static double sample(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *l = text; l && *l;
	     l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (strncmp(l, series, n) == 0 && l[n] == ' ')
			return strtod(l + n + 1, NULL);
	return -1;
}

START_TEST(regmap_lookup)
{
	drp_metrics_regmap_t *m = drp_metrics_regmap_new();
	drp_metrics_regmap_add(m, "registry-1.docker.io", 443, false,
			       "docker.io");
	drp_metrics_regmap_add(m, "docker.io", 0, false, "docker.io");
	drp_metrics_regmap_add(m, "quay.io", 443, false, "quay.io");
	drp_metrics_regmap_add(m, "registry.test", 5000, false,
			       "registry.test:5000");
	drp_metrics_regmap_add(m, "pkg.dev", 443, true, "*.pkg.dev");
	drp_metrics_regmap_add(m, "docker.pkg.dev", 443, true,
			       "*.docker.pkg.dev");
	static const struct {
		const char *host;
		uint16_t port;
		const char *want;
	} cases[] = {
		/* aliases share one name (and one slot) */
		{"registry-1.docker.io", 443, "docker.io"},
		{"docker.io", 443, "docker.io"},
		/* hosts compare without case; port 0 is 443 */
		{"Quay.IO", 0, "quay.io"},
		/* the port is part of the registry */
		{"quay.io", 8443, "other"},
		{"registry.test", 5000, "registry.test:5000"},
		{"registry.test", 443, "other"},
		/* wildcards: subdomains, not the apex; the longer wins */
		{"europe-docker.pkg.dev", 443, "*.pkg.dev"},
		{"europe.docker.pkg.dev", 443, "*.docker.pkg.dev"},
		{"pkg.dev", 443, "other"},
		{"evilpkg.dev", 443, "other"},
		/* anything else (a client's CONNECT) */
		{"example.com", 443, "other"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned slot = drp_metrics_regmap_find(m, cases[i].host,
							cases[i].port);
		ck_assert_msg(strcmp(drp_metrics_registry_name(slot),
				     cases[i].want) == 0,
			      "%s:%u -> %s, want %s", cases[i].host,
			      cases[i].port, drp_metrics_registry_name(slot),
			      cases[i].want);
	}
	ck_assert_uint_eq(drp_metrics_regmap_find(NULL, "quay.io", 443), 0);
	ck_assert_uint_eq(
		drp_metrics_regmap_find(m, "docker.io", 443),
		drp_metrics_regmap_find(m, "registry-1.docker.io", 443));
	drp_metrics_regmap_free(m);
}
END_TEST

START_TEST(registry_table_bounded)
{
	/* Names beyond the table count as "other": the series are
	 * bounded whatever the configuration says. */
	char name[32];
	unsigned last = 0;
	for (unsigned i = 0; i < DRP_METRICS_REGISTRIES + 10; i++) {
		snprintf(name, sizeof(name), "r%u.test", i);
		last = drp_metrics_registry_slot(name);
		if (i < DRP_METRICS_REGISTRIES - 1)
			ck_assert_uint_eq(last, i + 1);
	}
	ck_assert_uint_eq(last, 0);
	/* Interning again gives the same slot. */
	ck_assert_uint_eq(drp_metrics_registry_slot("r3.test"), 4);
	ck_assert_uint_eq(drp_metrics_registry_slot("other"), 0);
	ck_assert_uint_eq(drp_metrics_registry_slot(""), 0);
	ck_assert_str_eq(drp_metrics_registry_name(0), "other");
	ck_assert_str_eq(drp_metrics_registry_name(9999), "other");
}
END_TEST

START_TEST(requests_and_bytes)
{
	unsigned hub = drp_metrics_registry_slot("docker.io");
	drp_metrics_request(hub, "GET", DRP_MR_HIT, 200, 1000, DRP_MS_CACHE,
			    0.002, 0.001);
	drp_metrics_request(hub, "GET", DRP_MR_HIT, 206, 24, DRP_MS_CACHE,
			    0.003, 0.001);
	drp_metrics_request(hub, "HEAD", DRP_MR_MISS, 404, 0, DRP_MS_UPSTREAM,
			    0.2, 0.2);
	drp_metrics_request(hub, "GET", DRP_MR_MISS, 200, 5000, DRP_MS_UPSTREAM,
			    3, 0.3);
	/* Methods outside the table are "other"; proxy-made answers send
	 * no counted bytes. */
	drp_metrics_request(0, "PROPFIND", DRP_MR_PASS, 405, 30, DRP_MS_NONE, 0,
			    -1);
	drp_metrics_request(0, "CONNECT", drp_metrics_result_parse("TUNNEL"),
			    200, 77, DRP_MS_UPSTREAM, 1, -1);
	drp_metrics_upstream_response(hub, 200);
	drp_metrics_upstream_response(hub, 429);
	drp_metrics_upstream_response(hub, 418);
	drp_metrics_upstream_bytes(hub, 5000);
	char *t = render();
	ck_assert_double_eq(
		sample(t, "drp_requests_total{registry=\"docker.io\","
			  "method=\"get\",result=\"hit\",code=\"2xx\"}"),
		2);
	ck_assert_double_eq(
		sample(t, "drp_requests_total{registry=\"docker.io\","
			  "method=\"head\",result=\"miss\",code=\"4xx\"}"),
		1);
	ck_assert_double_eq(
		sample(t, "drp_requests_total{registry=\"other\","
			  "method=\"other\",result=\"pass\",code=\"4xx\"}"),
		1);
	ck_assert_double_eq(
		sample(t, "drp_requests_total{registry=\"other\","
			  "method=\"connect\",result=\"tunnel\",code=\"2xx\"}"),
		1);
	ck_assert_double_eq(sample(t, "drp_sent_bytes_total{registry="
				      "\"docker.io\",source=\"cache\"}"),
			    1024);
	ck_assert_double_eq(sample(t, "drp_sent_bytes_total{registry="
				      "\"docker.io\",source=\"upstream\"}"),
			    5000);
	ck_assert_double_eq(sample(t, "drp_sent_bytes_total{registry="
				      "\"other\",source=\"upstream\"}"),
			    77);
	ck_assert_double_eq(sample(t, "drp_upstream_received_bytes_total{"
				      "registry=\"docker.io\"}"),
			    5000);
	ck_assert_double_eq(sample(t, "drp_upstream_responses_total{registry="
				      "\"docker.io\",code=\"429\"}"),
			    1);
	/* A code outside the table counts by its class. */
	ck_assert_double_eq(sample(t, "drp_upstream_responses_total{registry="
				      "\"docker.io\",code=\"4xx\"}"),
			    1);
	/* Series without a sample are not written; families always are. */
	ck_assert_ptr_null(strstr(t, "result=\"stale\""));
	ck_assert_ptr_nonnull(strstr(t, "# TYPE drp_ratelimit_remaining "
					"gauge\n"));
	free(t);
}
END_TEST

START_TEST(histograms)
{
	/* 0.004 s in the first bucket, 0.3 in le=0.5, 400 only in +Inf. */
	double d[] = {0.004, 0.3, 0.3, 400};
	for (size_t i = 0; i < 4; i++)
		drp_metrics_request(0, "GET", DRP_MR_MISS, 200, 1,
				    DRP_MS_UPSTREAM, d[i], i == 0 ? 0.001 : -1);
	char *t = render();
	const char *h = "drp_request_duration_seconds";
	char s[200];
	snprintf(s, sizeof(s), "%s_bucket{result=\"miss\",le=\"0.005\"}", h);
	ck_assert_double_eq(sample(t, s), 1);
	snprintf(s, sizeof(s), "%s_bucket{result=\"miss\",le=\"0.25\"}", h);
	ck_assert_double_eq(sample(t, s), 1);
	snprintf(s, sizeof(s), "%s_bucket{result=\"miss\",le=\"0.5\"}", h);
	ck_assert_double_eq(sample(t, s), 3);
	snprintf(s, sizeof(s), "%s_bucket{result=\"miss\",le=\"300\"}", h);
	ck_assert_double_eq(sample(t, s), 3);
	snprintf(s, sizeof(s), "%s_bucket{result=\"miss\",le=\"+Inf\"}", h);
	ck_assert_double_eq(sample(t, s), 4);
	snprintf(s, sizeof(s), "%s_count{result=\"miss\"}", h);
	ck_assert_double_eq(sample(t, s), 4);
	snprintf(s, sizeof(s), "%s_sum{result=\"miss\"}", h);
	ck_assert_double_eq_tol(sample(t, s), 400.604, 1e-6);
	/* First byte: only the request that sent one. */
	ck_assert_double_eq(
		sample(t, "drp_first_byte_seconds_count{result=\"miss\"}"), 1);
	free(t);
}
END_TEST

START_TEST(gauges_and_labels)
{
	ck_assert_int_eq(drp_metrics_ratelimit_parse("76;w=21600", 10), 76);
	ck_assert_int_eq(drp_metrics_ratelimit_parse(" 100", 4), 100);
	ck_assert_int_eq(drp_metrics_ratelimit_parse("0;w=60", 6), 0);
	ck_assert_int_eq(drp_metrics_ratelimit_parse("", 0), -1);
	ck_assert_int_eq(drp_metrics_ratelimit_parse("x;w=1", 5), -1);
	ck_assert_int_eq(drp_metrics_ratelimit_parse("12x", 3), -1);
	ck_assert_int_eq(drp_metrics_ratelimit_parse("99999999999999", 14), -1);
	int hub = drp_metrics_section_slot("docker.io");
	int acme = drp_metrics_section_slot("docker.io/acme");
	ck_assert_int_ge(hub, 0);
	ck_assert_int_ne(hub, acme);
	ck_assert_int_eq(drp_metrics_section_slot("docker.io"), hub);
	drp_metrics_ratelimit(hub, 100, 76);
	drp_metrics_token_fetch("dockerhub", true);
	drp_metrics_token_fetch("dockerhub", false);
	drp_metrics_token_fetch("client", true);
	/* A name that could break the format is escaped. */
	drp_metrics_token_fetch("a\"b\\c\nd", true);
	drp_metrics_tls_failure(DRP_MTLS_CLIENT, DRP_MTLS_CERTIFICATE);
	drp_metrics_forged_certificate();
	drp_metrics_fills_add(1);
	drp_metrics_fills_add(1);
	drp_metrics_fills_add(-1);
	drp_metrics_fill_waiters_add(3);
	drp_metrics_reload(true);
	char *t = render();
	ck_assert_double_eq(
		sample(t, "drp_ratelimit_remaining{section=\"docker.io\"}"),
		76);
	ck_assert_double_eq(
		sample(t, "drp_ratelimit_limit{section=\"docker.io\"}"), 100);
	/* Not seen with acme's credentials: no sample. */
	ck_assert_ptr_null(strstr(t, "section=\"docker.io/acme\""));
	ck_assert_double_eq(sample(t, "drp_token_fetches_total{plugin="
				      "\"dockerhub\",outcome=\"failed\"}"),
			    1);
	ck_assert_double_eq(sample(t, "drp_token_fetches_total{plugin="
				      "\"client\",outcome=\"ok\"}"),
			    1);
	ck_assert_double_eq(sample(t, "drp_token_fetches_total{plugin="
				      "\"a\\\"b\\\\c\\nd\",outcome=\"ok\"}"),
			    1);
	ck_assert_double_eq(sample(t, "drp_tls_handshake_failures_total{side="
				      "\"client\",reason=\"certificate\"}"),
			    1);
	ck_assert_double_eq(sample(t, "drp_forged_certificates_total"), 1);
	ck_assert_double_eq(sample(t, "drp_fills_in_flight"), 1);
	ck_assert_double_eq(sample(t, "drp_fill_waiters"), 3);
	ck_assert_double_eq(sample(t, "drp_reloads_total{outcome=\"ok\"}"), 1);
	ck_assert_double_eq(sample(t, "drp_reloads_total{outcome=\"failed\"}"),
			    0);
	free(t);
}
END_TEST

/* Every line is a HELP/TYPE comment or a sample of a family declared
 * before it (histograms: its _bucket, _sum and _count). */
START_TEST(exposition_format)
{
	drp_metrics_request(drp_metrics_registry_slot("quay.io"), "GET",
			    DRP_MR_HIT, 200, 10, DRP_MS_CACHE, 0.01, 0.001);
	drp_metrics_token_fetch("quay", true);
	drp_metrics_ratelimit(drp_metrics_section_slot("quay.io"), 5, 4);
	char *t = render();
	regex_t help, sample_re;
	ck_assert_int_eq(regcomp(&help,
				 "^# (HELP|TYPE) ([a-z_][a-z0-9_]*) (counter|gauge|"
				 "histogram|[A-Z].*)$",
				 REG_EXTENDED),
			 0);
	ck_assert_int_eq(regcomp(&sample_re,
				 "^([a-z_][a-z0-9_]*)(\\{([a-z_]+=\"([^\"\\\\]|\\\\.)*"
				 "\",?)*\\})? "
				 "[-+0-9.e]+$",
				 REG_EXTENDED),
			 0);
	char family[128] = "", type[32] = "";
	unsigned samples = 0;
	for (char *l = strtok(t, "\n"); l; l = strtok(NULL, "\n")) {
		regmatch_t m[3];
		if (regexec(&help, l, 3, m, 0) == 0) {
			if (strncmp(l, "# TYPE ", 7) == 0) {
				sscanf(l, "# TYPE %127s %31s", family, type);
			}
			continue;
		}
		ck_assert_msg(regexec(&sample_re, l, 2, m, 0) == 0,
			      "malformed line: %s", l);
		char name[128];
		snprintf(name, sizeof(name), "%.*s", (int)(m[1].rm_eo), l);
		size_t fl = strlen(family);
		bool ok = strcmp(name, family) == 0;
		if (strcmp(type, "histogram") == 0)
			ok = strncmp(name, family, fl) == 0 &&
			     (strcmp(name + fl, "_bucket") == 0 ||
			      strcmp(name + fl, "_sum") == 0 ||
			      strcmp(name + fl, "_count") == 0);
		ck_assert_msg(ok, "%s outside its family %s", name, family);
		samples++;
	}
	ck_assert_uint_gt(samples, 20);
	regfree(&help);
	regfree(&sample_re);
	free(t);
}
END_TEST

static void *hammer(void *arg)
{
	unsigned reg = *(unsigned *)arg;
	for (int i = 0; i < 100000; i++) {
		drp_metrics_request(reg, "GET", DRP_MR_HIT, 200, 1,
				    DRP_MS_CACHE, 0.001, 0.0005);
		drp_metrics_upstream_bytes(reg, 2);
	}
	return NULL;
}

START_TEST(concurrent_updates)
{
	unsigned reg = drp_metrics_registry_slot("ghcr.io");
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, hammer, &reg), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	char *s = render();
	ck_assert_double_eq(
		sample(s, "drp_requests_total{registry=\"ghcr.io\",method="
			  "\"get\",result=\"hit\",code=\"2xx\"}"),
		400000);
	ck_assert_double_eq(sample(s, "drp_sent_bytes_total{registry="
				      "\"ghcr.io\",source=\"cache\"}"),
			    400000);
	ck_assert_double_eq(sample(s, "drp_upstream_received_bytes_total{"
				      "registry=\"ghcr.io\"}"),
			    800000);
	ck_assert_double_eq(
		sample(s, "drp_request_duration_seconds_count{result=\"hit\"}"),
		400000);
	free(s);
}
END_TEST

/* Token fetches intern their plugin's name on whichever loop runs them:
 * threads racing to intern the same names get one slot each, and no
 * count is lost or lands on another name. */
static void *token_hammer(void *arg)
{
	(void)arg;
	char name[16];
	for (int i = 0; i < 20000; i++) {
		snprintf(name, sizeof(name), "plugin%d", i % 8);
		drp_metrics_token_fetch(name, i % 5 != 0);
	}
	return NULL;
}

START_TEST(concurrent_interning)
{
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(
			pthread_create(&t[i], NULL, token_hammer, NULL), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	char *s = render();
	for (int p = 0; p < 8; p++) {
		char series[128];
		snprintf(series, sizeof(series),
			 "drp_token_fetches_total{plugin=\"plugin%d\","
			 "outcome=\"ok\"}",
			 p);
		/* Per thread, plugin p is fetched 2500 times; every fifth
		 * fetch (i % 5 == 0) failed. */
		double ok = sample(s, series);
		snprintf(series, sizeof(series),
			 "drp_token_fetches_total{plugin=\"plugin%d\","
			 "outcome=\"failed\"}",
			 p);
		double failed = sample(s, series);
		ck_assert_double_eq(ok + failed, 4 * 2500);
		ck_assert_double_eq(failed, 4 * 500);
		/* One series per name and outcome. */
		char *first = strstr(s, series);
		ck_assert_ptr_nonnull(first);
		ck_assert_ptr_null(strstr(first + 1, series));
	}
	free(s);
}
END_TEST

Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, regmap_lookup);
	tcase_add_test(tc, registry_table_bounded);
	tcase_add_test(tc, requests_and_bytes);
	tcase_add_test(tc, histograms);
	tcase_add_test(tc, gauges_and_labels);
	tcase_add_test(tc, exposition_format);
	tcase_add_test(tc, concurrent_updates);
	tcase_add_test(tc, concurrent_interning);
	suite_add_tcase(s, tc);
	return s;
}
