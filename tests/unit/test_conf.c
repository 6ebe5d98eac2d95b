/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <drp/plugin.h>

#include "conf/conf.h"
#include "util/log.h"

Suite *conf_suite(void);

#define N(a) (sizeof(a) / sizeof((a)[0]))

static char *sa_text(const struct sockaddr_storage *ss, char *buf)
{
	return drp_sockaddr_str((const struct sockaddr *)ss, buf, 64);
}

static char *cidr_text(const drp_cidr_t *c, char *buf)
{
	return drp_cidr_str(c, buf, 64);
}

/* Loads text that must be valid; prints the errors if it is not. */
static drp_conf_t *load_ok(const char *text)
{
	drp_conf_errors_t errs = {0};
	drp_conf_t *c = drp_conf_load_string("t.ini", text, &errs);

	for (unsigned i = 0; i < errs.n; i++)
		fprintf(stderr, "unexpected: %s\n", errs.msg[i]);
	ck_assert_uint_eq(errs.n, 0);
	ck_assert_ptr_nonnull(c);
	return c;
}

/* Loads text that must fail with exactly the given errors, in order. */
static void load_fails(const char *text, const char *const *want, unsigned n)
{
	drp_conf_errors_t errs = {0};
	drp_conf_t *c = drp_conf_load_string("t.ini", text, &errs);

	ck_assert_ptr_null(c);
	for (unsigned i = 0; i < errs.n || i < n; i++)
		ck_assert_msg(i < errs.n && i < n &&
				      strcmp(errs.msg[i], want[i]) == 0,
			      "error %u: got \"%s\", want \"%s\"", i,
			      i < errs.n ? errs.msg[i] : "(none)",
			      i < n ? want[i] : "(none)");
	drp_conf_errors_free(&errs);
}

/* ---- value syntax ---- */

static const struct {
	const char *in;
	int ret;
	uint64_t out;
} size_cases[] = {
	/* plain bytes */
	{"1024", 0, 1024},
	/* zero is a number (the caller decides if it is allowed) */
	{"0", 0, 0},
	/* K M G T are powers of 1024, either case */
	{"10K", 0, 10240},
	{"10k", 0, 10240},
	{"3M", 0, 3ULL << 20},
	{"32G", 0, 32ULL << 30},
	{"1T", 0, 1ULL << 40},
	{"2t", 0, 2ULL << 40},
	/* the largest value without suffix */
	{"18446744073709551615", 0, UINT64_MAX},
	/* one more overflows */
	{"18446744073709551616", -ERANGE, 0},
	/* a suffix that overflows 64 bits */
	{"16777216T", -ERANGE, 0},
	/* the largest T value */
	{"16777215T", 0, 16777215ULL << 40},
	/* fractions are not sizes */
	{"1.5G", -EINVAL, 0},
	/* unknown suffix */
	{"10X", -EINVAL, 0},
	/* "KB" is not accepted: one letter only */
	{"10KB", -EINVAL, 0},
	/* suffix without number */
	{"G", -EINVAL, 0},
	/* sign */
	{"-1", -EINVAL, 0},
	{"+1", -EINVAL, 0},
	/* blanks */
	{" 1", -EINVAL, 0},
	{"1 K", -EINVAL, 0},
	/* empty */
	{"", -EINVAL, 0},
	/* overflow with a bad suffix is a syntax error first */
	{"99999999999999999999X", -EINVAL, 0},
};

START_TEST(parse_size_table)
{
	uint64_t v = 12345;
	int r = drp_conf_parse_size(size_cases[_i].in, &v);

	ck_assert_msg(r == size_cases[_i].ret, "'%s': got %d",
		      size_cases[_i].in, r);
	if (r == 0)
		ck_assert_msg(v == size_cases[_i].out, "'%s': got %llu",
			      size_cases[_i].in, (unsigned long long)v);
	else
		ck_assert_msg(v == 12345, "'%s' wrote *out", size_cases[_i].in);
}
END_TEST

static const struct {
	const char *in;
	int ret;
	double out;
} duration_cases[] = {
	/* bare seconds */
	{"30", 0, 30},
	/* fractional seconds */
	{"0.5", 0, 0.5},
	{"1.25", 0, 1.25},
	/* zero (callers decide whether it is allowed) */
	{"0", 0, 0},
	/* suffixes */
	{"30s", 0, 30},
	{"5m", 0, 300},
	{"2h", 0, 7200},
	{"1d", 0, 86400},
	/* fraction with suffix */
	{"1.5m", 0, 90},
	/* the limit */
	{"1000000000", 0, 1e9},
	{"11574d", 0, 11574 * 86400.0},
	/* over the limit */
	{"1000000001", -ERANGE, 0},
	{"11575d", -ERANGE, 0},
	/* unknown suffix (sizes are not durations) */
	{"5M", -EINVAL, 0},
	{"5y", -EINVAL, 0},
	{"5ms", -EINVAL, 0},
	/* negative */
	{"-1", -EINVAL, 0},
	/* no digit before or after the point */
	{".5", -EINVAL, 0},
	{"5.", -EINVAL, 0},
	/* exponent notation is not accepted */
	{"1e3", -EINVAL, 0},
	/* strtod words */
	{"inf", -EINVAL, 0},
	{"nan", -EINVAL, 0},
	/* blanks */
	{"5 m", -EINVAL, 0},
	/* empty */
	{"", -EINVAL, 0},
};

START_TEST(parse_duration_table)
{
	double v = -7;
	int r = drp_conf_parse_duration(duration_cases[_i].in, &v);

	ck_assert_msg(r == duration_cases[_i].ret, "'%s': got %d",
		      duration_cases[_i].in, r);
	if (r == 0)
		ck_assert_double_eq_tol(v, duration_cases[_i].out, 1e-9);
	else
		ck_assert_double_eq(v, -7);
}
END_TEST

static const struct {
	const char *in;
	int ret;
	bool out;
} bool_cases[] = {
	/* each accepted word */
	{"yes", 0, true},
	{"no", 0, false},
	{"true", 0, true},
	{"false", 0, false},
	{"on", 0, true},
	{"off", 0, false},
	{"1", 0, true},
	{"0", 0, false},
	/* case-insensitive */
	{"YES", 0, true},
	{"Off", 0, false},
	/* anything else */
	{"y", -EINVAL, false},
	{"2", -EINVAL, false},
	{"", -EINVAL, false},
	{"yes ", -EINVAL, false},
};

START_TEST(parse_bool_table)
{
	bool v = !bool_cases[_i].out;
	int r = drp_conf_parse_bool(bool_cases[_i].in, &v);

	ck_assert_msg(r == bool_cases[_i].ret, "'%s': got %d",
		      bool_cases[_i].in, r);
	if (r == 0)
		ck_assert(v == bool_cases[_i].out);
}
END_TEST

/* ---- error formatting ---- */

START_TEST(error_format)
{
	drp_conf_errors_t e = {0};
	drp_conf_item_t it = {
		.key = "token_ttl", .value = "-5", .file = "x.ini", .line = 42};
	drp_conf_registry_t r = {.name = "gcr.io",
				 .file = "x.ini",
				 .line = 40,
				 .items = &it,
				 .n_items = 1};

	drp_conf_error_item(&e, "registry \"gcr.io\"", &it,
			    "value '%s' out of range %d..%d", it.value, 0,
			    86400);
	/* A section passed with its brackets is printed as is. */
	drp_conf_error_item(&e, "[proxy]", &it, "m");
	drp_conf_error_item(&e, NULL, &it, "no section");
	drp_conf_error(&e, "x.ini", 7, "cache", NULL, "about the section");
	drp_conf_error(&e, "x.ini", 7, NULL, NULL, "about the line");
	drp_conf_error(&e, "x.ini", 0, NULL, NULL, "about the file");
	drp_conf_registry_error(&e, &r, &it, "bad %s", "key");
	drp_conf_registry_error(&e, &r, NULL, "instance failed");

	const char *want[] = {
		"x.ini:42: [registry \"gcr.io\"] token_ttl: value '-5' out of "
		"range 0..86400",
		"x.ini:42: [proxy] token_ttl: m",
		"x.ini:42: token_ttl: no section",
		"x.ini:7: [cache]: about the section",
		"x.ini:7: about the line",
		"x.ini: about the file",
		"x.ini:42: [registry \"gcr.io\"] token_ttl: bad key",
		"x.ini:40: [registry \"gcr.io\"]: instance failed",
	};
	ck_assert_uint_eq(e.n, N(want));
	for (unsigned i = 0; i < N(want); i++)
		ck_assert_str_eq(e.msg[i], want[i]);
	drp_conf_errors_free(&e);
	ck_assert_uint_eq(e.n, 0);
	ck_assert_ptr_null(e.msg);
	/* Freeing twice (or an empty sink) is harmless. */
	drp_conf_errors_free(&e);
}
END_TEST

/* An error about a key of a section: at its item if the section has
 * it, else at the header with the key's name; the name is never cut. */
START_TEST(registry_key_error)
{
	drp_conf_errors_t e = {0};
	drp_conf_item_t it = {
		.key = "region", .value = "x", .file = "x.ini", .line = 42};
	char name[700];
	int n = snprintf(name, sizeof(name), "gcr.io/");
	for (int i = 0; i < 100; i++)
		n += snprintf(name + n, sizeof(name) - (size_t)n, "ns%02d/", i);
	snprintf(name + n, sizeof(name) - (size_t)n, "app");
	drp_conf_registry_t r = {.name = "gcr.io", .file = "x.ini", .line = 40};
	drp_conf_registry_t lr = {.name = name, .file = "x.ini", .line = 3};

	drp_conf_registry_key_error(&e, &r, &it, "other", "bad %d", 1);
	drp_conf_registry_key_error(&e, &r, NULL, "region", "missing");
	drp_conf_registry_key_error(&e, &r, NULL, NULL, "about it");
	drp_conf_registry_key_error(&e, &lr, NULL, "region", "missing");
	ck_assert_uint_eq(e.n, 4);
	ck_assert_str_eq(e.msg[0], "x.ini:42: [registry \"gcr.io\"] region: "
				   "bad 1");
	ck_assert_str_eq(e.msg[1],
			 "x.ini:40: [registry \"gcr.io\"] region: missing");
	ck_assert_str_eq(e.msg[2], "x.ini:40: [registry \"gcr.io\"]: about it");
	char want[800];
	snprintf(want, sizeof(want),
		 "x.ini:3: [registry \"%s\"] region: missing", name);
	ck_assert_uint_gt(strlen(name), 500);
	ck_assert_str_eq(e.msg[3], want);
	drp_conf_errors_free(&e);
}
END_TEST

/* ---- bad configurations: one error each, exact message ---- */

static const struct {
	const char *text;
	const char *err;
} bad_cases[] = {
	/* syntax: no '=' */
	{"[proxy]\nlisten 0.0.0.0:3128\n",
	 "t.ini:2: [proxy]: missing '=' (expected KEY = VALUE)"},
	/* syntax: an '=' in a comment does not count */
	{"[proxy]\n\nworkers ; = 4\n",
	 "t.ini:3: [proxy]: missing '=' (expected KEY = VALUE)"},
	/* syntax: key before any section */
	{"; comment\nlisten = 0.0.0.0:1\n",
	 "t.ini:2: listen: key before the first [section]"},
	/* syntax: header without ']' */
	{"[proxy\nworkers = 2\n",
	 "t.ini:1: invalid section header (expected [NAME] or [NAME "
	 "\"ARGUMENT\"])"},
	/* syntax: empty header */
	{"[]\n", "t.ini:1: invalid section header (expected [NAME] or [NAME "
		 "\"ARGUMENT\"])"},
	/* syntax: unquoted registry name */
	{"[registry quay.io]\n",
	 "t.ini:1: invalid section header (expected [NAME] or [NAME "
	 "\"ARGUMENT\"])"},
	/* syntax: unterminated quote in a header */
	{"[registry \"quay.io]\n",
	 "t.ini:1: invalid section header: unterminated quote"},
	/* syntax: text after ']' */
	{"[proxy] workers = 2\n",
	 "t.ini:1: invalid section header: text after ']'"},
	/* syntax: '=' without key */
	{"[proxy]\n = 4\n", "t.ini:2: [proxy]: missing key before '='"},
	/* syntax: blank inside a key */
	{"[proxy]\nmax connections = 4\n",
	 "t.ini:2: [proxy]: invalid key 'max connections' (letters, digits, "
	 "'_', '-' and '.' only)"},
	/* syntax: unterminated quoted value */
	{"[proxy]\nca_dir = \"/srv/ca\n",
	 "t.ini:2: [proxy] ca_dir: unterminated quoted value"},
	/* syntax: text after the closing quote */
	{"[proxy]\nca_dir = \"/srv/ca\" x\n",
	 "t.ini:2: [proxy] ca_dir: text after the closing quote"},
	/* section: unknown (its keys are not reported again) */
	{"[prox]\nworkers = 2\n",
	 "t.ini:1: [prox]: unknown section (expected proxy, resolve, cache, "
	 "fleet or registry \"NAME\")"},
	/* section: names are lower-case */
	{"[Proxy]\n", "t.ini:1: [Proxy]: unknown section (expected proxy, "
		      "resolve, cache, fleet or registry \"NAME\")"},
	/* section: a plain section given a name */
	{"[cache \"fs\"]\nbackend = fs\n",
	 "t.ini:1: [cache \"fs\"]: this section takes no name"},
	/* section: registry without a name */
	{"[registry]\nplugin = basic\n",
	 "t.ini:1: [registry]: missing name (expected [registry \"HOST\"])"},
	/* section: registry named twice (host compared lower-case) */
	{"[registry \"quay.io\"]\n[registry \"QUAY.io\"]\n",
	 "t.ini:2: [registry \"QUAY.io\"]: duplicate section (first at line "
	 "1)"},
	/* section: registry host with '_' */
	{"[registry \"my_registry\"]\n",
	 "t.ini:1: [registry \"my_registry\"]: invalid registry name "
	 "(expected HOST, HOST:PORT or *.DOMAIN, optionally followed by "
	 "/REPOSITORY/PREFIX)"},
	/* section: registry port 0 */
	{"[registry \"quay.io:0\"]\n",
	 "t.ini:1: [registry \"quay.io:0\"]: invalid registry name (expected "
	 "HOST, HOST:PORT or *.DOMAIN, optionally followed by "
	 "/REPOSITORY/PREFIX)"},
	/* section: wildcard over an IP literal */
	{"[registry \"*.10.0.0.1\"]\n",
	 "t.ini:1: [registry \"*.10.0.0.1\"]: invalid registry name (expected "
	 "HOST, HOST:PORT or *.DOMAIN, optionally followed by "
	 "/REPOSITORY/PREFIX)"},
	/* section: wildcard not at the start */
	{"[registry \"docker.*.dev\"]\n",
	 "t.ini:1: [registry \"docker.*.dev\"]: invalid registry name "
	 "(expected HOST, HOST:PORT or *.DOMAIN, optionally followed by "
	 "/REPOSITORY/PREFIX)"},
	/* section: empty name */
	{"[registry \"\"]\n",
	 "t.ini:1: [registry \"\"]: invalid registry name (expected HOST, "
	 "HOST:PORT or *.DOMAIN, optionally followed by /REPOSITORY/PREFIX)"},
	/* section: upper-case repository prefix */
	{"[registry \"docker.io/Acme\"]\n",
	 "t.ini:1: [registry \"docker.io/Acme\"]: invalid repository prefix "
	 "in registry name (lower-case letters and digits, separated by '/', "
	 "'.', '_', '__' or '-')"},
	/* section: trailing slash */
	{"[registry \"docker.io/acme/\"]\n",
	 "t.ini:1: [registry \"docker.io/acme/\"]: invalid repository prefix "
	 "in registry name (lower-case letters and digits, separated by '/', "
	 "'.', '_', '__' or '-')"},
	/* section: three underscores are not a separator */
	{"[registry \"docker.io/a___b\"]\n",
	 "t.ini:1: [registry \"docker.io/a___b\"]: invalid repository prefix "
	 "in registry name (lower-case letters and digits, separated by '/', "
	 "'.', '_', '__' or '-')"},
	/* [proxy]: unknown key */
	{"[proxy]\nlisten_on = 1.2.3.4:5\n",
	 "t.ini:2: [proxy] listen_on: unknown key"},
	/* [proxy]: keys are case-sensitive */
	{"[proxy]\nWorkers = 2\n", "t.ini:2: [proxy] Workers: unknown key"},
	/* [proxy]: duplicate key */
	{"[proxy]\nworkers = 2\nworkers = 3\n",
	 "t.ini:3: [proxy] workers: duplicate key (first at line 2)"},
	/* [proxy]: duplicate key across two [proxy] blocks */
	{"[proxy]\nworkers = 2\n[cache]\n[proxy]\nworkers = 3\n",
	 "t.ini:5: [proxy] workers: duplicate key (first at line 2)"},
	/* listen: empty */
	{"[proxy]\nlisten =\n",
	 "t.ini:2: [proxy] listen: at least one address is required"},
	/* listen: a name */
	{"[proxy]\nlisten = localhost:3128\n",
	 "t.ini:2: [proxy] listen: invalid address 'localhost:3128' (expected "
	 "IPV4:PORT, [IPV6]:PORT or *:PORT)"},
	/* listen: no port */
	{"[proxy]\nlisten = 0.0.0.0\n",
	 "t.ini:2: [proxy] listen: invalid address '0.0.0.0' (expected "
	 "IPV4:PORT, [IPV6]:PORT or *:PORT)"},
	/* listen: '*' is 0.0.0.0, so this is the same address twice */
	{"[proxy]\nlisten = 0.0.0.0:3128, *:3128\n",
	 "t.ini:2: [proxy] listen: duplicate address '*:3128'"},
	/* workers: 0 */
	{"[proxy]\nworkers = 0\n",
	 "t.ini:2: [proxy] workers: invalid value '0' (expected auto or "
	 "1..256)"},
	/* workers: above 256 */
	{"[proxy]\nworkers = 257\n",
	 "t.ini:2: [proxy] workers: invalid value '257' (expected auto or "
	 "1..256)"},
	/* registries: '_' in a host */
	{"[proxy]\nregistries = quay.io my_registry\n",
	 "t.ini:2: [proxy] registries: invalid host 'my_registry' (expected "
	 "HOST or HOST:PORT)"},
	/* registries: no wildcards here */
	{"[proxy]\nregistries = *.pkg.dev\n",
	 "t.ini:2: [proxy] registries: invalid host '*.pkg.dev' (expected "
	 "HOST or HOST:PORT)"},
	/* registries: a truncated IPv4 literal */
	{"[proxy]\nregistries = 10.1.2\n",
	 "t.ini:2: [proxy] registries: invalid host '10.1.2' (expected HOST "
	 "or HOST:PORT)"},
	/* registries: label starting with '-' */
	{"[proxy]\nregistries = -quay.io\n",
	 "t.ini:2: [proxy] registries: invalid host '-quay.io' (expected HOST "
	 "or HOST:PORT)"},
	/* registries: port out of range */
	{"[proxy]\nregistries = quay.io:65536\n",
	 "t.ini:2: [proxy] registries: invalid host 'quay.io:65536' (expected "
	 "HOST or HOST:PORT)"},
	/* allow: host bits set */
	{"[proxy]\nallow = 10.0.0.1/8\n",
	 "t.ini:2: [proxy] allow: '10.0.0.1/8' has host bits set (the network "
	 "is 10.0.0.0/8)"},
	/* proxy_protocol_from: host bits set */
	{"[proxy]\nproxy_protocol_from = 10.0.0.10/24\n",
	 "t.ini:2: [proxy] proxy_protocol_from: '10.0.0.10/24' has host bits "
	 "set (the network is 10.0.0.0/24)"},
	/* allow: prefix too long */
	{"[proxy]\nallow = ::1/129\n",
	 "t.ini:2: [proxy] allow: invalid CIDR '::1/129' (expected ADDRESS or "
	 "ADDRESS/PREFIX)"},
	/* tunnel_ports: 0 */
	{"[proxy]\ntunnel_ports = 443 0\n",
	 "t.ini:2: [proxy] tunnel_ports: invalid port '0' (expected "
	 "1..65535)"},
	/* tunnel_ports: not a number */
	{"[proxy]\ntunnel_ports = https\n",
	 "t.ini:2: [proxy] tunnel_ports: invalid port 'https' (expected "
	 "1..65535)"},
	/* ca_dir: empty */
	{"[proxy]\nca_dir =\n",
	 "t.ini:2: [proxy] ca_dir: value must not be empty"},
	/* verify_upstream: not a boolean */
	{"[proxy]\nverify_upstream = maybe\n",
	 "t.ini:2: [proxy] verify_upstream: invalid boolean 'maybe' (expected "
	 "yes or no)"},
	/* access_log: empty */
	{"[proxy]\naccess_log = \"\"\n",
	 "t.ini:2: [proxy] access_log: value must not be empty"},
	/* error_log: empty */
	{"[proxy]\nerror_log =\n",
	 "t.ini:2: [proxy] error_log: value must not be empty"},
	/* log_level: unknown */
	{"[proxy]\nlog_level = verbose\n",
	 "t.ini:2: [proxy] log_level: invalid log level 'verbose' (expected "
	 "err, warning, notice, info or debug)"},
	/* max_connections: 0 */
	{"[proxy]\nmax_connections = 0\n",
	 "t.ini:2: [proxy] max_connections: value '0' out of range "
	 "1..1000000"},
	/* max_connections: above the limit */
	{"[proxy]\nmax_connections = 1000001\n",
	 "t.ini:2: [proxy] max_connections: value '1000001' out of range "
	 "1..1000000"},
	/* max_connections: huge (no wrap-around) */
	{"[proxy]\nmax_connections = 99999999999999999999\n",
	 "t.ini:2: [proxy] max_connections: value '99999999999999999999' out "
	 "of range 1..1000000"},
	/* max_connections: not a number */
	{"[proxy]\nmax_connections = 4k\n",
	 "t.ini:2: [proxy] max_connections: invalid number '4k'"},
	/* max_header_size: below 1024 */
	{"[proxy]\nmax_header_size = 1023\n",
	 "t.ini:2: [proxy] max_header_size: value '1023' out of range "
	 "1024..1048576"},
	/* max_header_size: above 1M, with a suffix */
	{"[proxy]\nmax_header_size = 2M\n",
	 "t.ini:2: [proxy] max_header_size: value '2M' out of range "
	 "1024..1048576"},
	/* max_header_size: bad size */
	{"[proxy]\nmax_header_size = 64KB\n",
	 "t.ini:2: [proxy] max_header_size: invalid size '64KB' (expected e.g. "
	 "1024, 10K, 32G, 1T)"},
	/* header_timeout: zero */
	{"[proxy]\nheader_timeout = 0\n",
	 "t.ini:2: [proxy] header_timeout: duration must be greater than 0"},
	/* idle_timeout: zero with a suffix */
	{"[proxy]\nidle_timeout = 0s\n",
	 "t.ini:2: [proxy] idle_timeout: duration must be greater than 0"},
	/* connect_timeout: negative */
	{"[proxy]\nconnect_timeout = -1\n",
	 "t.ini:2: [proxy] connect_timeout: invalid duration '-1' (expected "
	 "e.g. 30, 0.5, 30s, 5m, 2h, 1d)"},
	/* handshake_timeout: empty */
	{"[proxy]\nhandshake_timeout =\n",
	 "t.ini:2: [proxy] handshake_timeout: invalid duration '' (expected "
	 "e.g. 30, 0.5, 30s, 5m, 2h, 1d)"},
	/* body_timeout: unknown suffix */
	{"[proxy]\nbody_timeout = 2w\n",
	 "t.ini:2: [proxy] body_timeout: invalid duration '2w' (expected e.g. "
	 "30, 0.5, 30s, 5m, 2h, 1d)"},
	/* tunnel_idle_timeout: too large */
	{"[proxy]\ntunnel_idle_timeout = 20000d\n",
	 "t.ini:2: [proxy] tunnel_idle_timeout: duration '20000d' is too "
	 "large"},
	/* [resolve]: key is not a host name */
	{"[resolve]\nmy_host = 10.0.0.1\n",
	 "t.ini:2: [resolve] my_host: invalid host name"},
	/* [resolve]: truncated IPv4 */
	{"[resolve]\nquay.io = 10.0.1\n",
	 "t.ini:2: [resolve] quay.io: invalid address '10.0.1' (expected IPV4, "
	 "IPV4:PORT, IPV6 or [IPV6]:PORT)"},
	/* [resolve]: a name is not an address */
	{"[resolve]\nquay.io = localhost\n",
	 "t.ini:2: [resolve] quay.io: invalid address 'localhost' (expected "
	 "IPV4, IPV4:PORT, IPV6 or [IPV6]:PORT)"},
	/* [resolve]: port 0 written out */
	{"[resolve]\nquay.io = 10.0.0.1:0\n",
	 "t.ini:2: [resolve] quay.io: invalid address '10.0.0.1:0' (expected "
	 "IPV4, IPV4:PORT, IPV6 or [IPV6]:PORT)"},
	/* [resolve]: junk after the bracket */
	{"[resolve]\nquay.io = [::1]443\n",
	 "t.ini:2: [resolve] quay.io: invalid address '[::1]443' (expected "
	 "IPV4, IPV4:PORT, IPV6 or [IPV6]:PORT)"},
	/* [resolve]: empty */
	{"[resolve]\nquay.io =\n",
	 "t.ini:2: [resolve] quay.io: invalid address '' (expected IPV4, "
	 "IPV4:PORT, IPV6 or [IPV6]:PORT)"},
	/* [resolve]: same host twice, compared case-insensitively */
	{"[resolve]\nquay.io = 10.0.0.1\nQuay.IO = 10.0.0.2\n",
	 "t.ini:3: [resolve] Quay.IO: duplicate host (first at line 2)"},
	/* [cache]: unknown backend */
	{"[cache]\nbackend = tape\n",
	 "t.ini:2: [cache] backend: unknown backend 'tape' (expected fs, "
	 "memory or s3)"},
	/* [cache]: s3 without its bucket's keys */
	{"[cache]\nbackend = s3\ns3_bucket = b-b-b\n"
	 "s3_endpoint = http://10.0.0.5:7480\ns3_access_key = AK\n",
	 "t.ini:2: [cache] backend: s3 needs s3_secret_key_file"},
	/* [cache]: s3_addressing */
	{"[cache]\ns3_addressing = vhost\n",
	 "t.ini:2: [cache] s3_addressing: invalid value 'vhost' (expected "
	 "path or virtual)"},
	/* [cache]: s3_endpoint without a scheme */
	{"[cache]\ns3_endpoint = s3.example.com\n",
	 "t.ini:2: [cache] s3_endpoint: invalid endpoint 's3.example.com' "
	 "(expected http://HOST[:PORT] or https://HOST[:PORT])"},
	/* [fleet]: redis without a port, or with a bad one */
	{"[fleet]\nredis = redis.example\n",
	 "t.ini:2: [fleet] redis: invalid address 'redis.example' "
	 "(expected HOST:PORT, IP:PORT or [IPv6]:PORT)"},
	{"[fleet]\nredis = redis.example:70000\n",
	 "t.ini:2: [fleet] redis: invalid address 'redis.example:70000' "
	 "(expected HOST:PORT, IP:PORT or [IPv6]:PORT)"},
	{"[fleet]\nredis = redis_1:6379\n",
	 "t.ini:2: [fleet] redis: invalid address 'redis_1:6379' "
	 "(expected HOST:PORT, IP:PORT or [IPv6]:PORT)"},
	{"[fleet]\nlease_ttl = 0.2\n",
	 "t.ini:2: [fleet] lease_ttl: must be at least 1s"},
	/* [cache]: the local tier's keys without the S3 tier */
	{"[cache]\nlocal_dir = /srv/drp\n",
	 "t.ini:2: [cache] local_dir: only with backend = s3 (the local tier "
	 "in front of the bucket; use dir and max_size)"},
	{"[cache]\nbackend = memory\nlocal_max_size = 1G\n",
	 "t.ini:3: [cache] local_max_size: only with backend = s3 (the local "
	 "tier in front of the bucket; use dir and max_size)"},
	/* [cache]: s3_abandoned_after too short */
	{"[cache]\ns3_abandoned_after = 0.5\n",
	 "t.ini:2: [cache] s3_abandoned_after: must be at least 1s"},
	/* [cache]: empty dir */
	{"[cache]\ndir =\n", "t.ini:2: [cache] dir: value must not be empty"},
	/* [cache]: zero size */
	{"[cache]\nmax_size = 0G\n",
	 "t.ini:2: [cache] max_size: size must be greater than 0"},
	/* [cache]: size overflow */
	{"[cache]\nmax_size = 20000000T\n",
	 "t.ini:2: [cache] max_size: size '20000000T' is too large"},
	/* [cache]: fractional size */
	{"[cache]\nmax_size = 1.5G\n",
	 "t.ini:2: [cache] max_size: invalid size '1.5G' (expected e.g. 1024, "
	 "10K, 32G, 1T)"},
	/* [cache]: bad tag_ttl */
	{"[cache]\ntag_ttl = 5 minutes\n",
	 "t.ini:2: [cache] tag_ttl: invalid duration '5 minutes' (expected "
	 "e.g. 30, 0.5, 30s, 5m, 2h, 1d)"},
	/* [cache]: unknown key */
	{"[cache]\nsize = 1G\n", "t.ini:2: [cache] size: unknown key"},
	/* [registry]: plugin-specific key without a plugin */
	{"[registry \"gcr.io\"]\nkey_file = /k.json\n",
	 "t.ini:2: [registry \"gcr.io\"] key_file: unknown key "
	 "(plugin-specific keys need 'plugin' in the section)"},
	/* [registry]: push value */
	{"[registry \"quay.io\"]\npush = always\n",
	 "t.ini:2: [registry \"quay.io\"] push: invalid value 'always' "
	 "(expected client, proxy or deny)"},
	/* [registry]: allow with host bits */
	{"[registry \"quay.io\"]\nallow = 192.168.1.1/24\n",
	 "t.ini:2: [registry \"quay.io\"] allow: '192.168.1.1/24' has host "
	 "bits set (the network is 192.168.1.0/24)"},
	/* [registry]: bad tag_ttl */
	{"[registry \"quay.io\"]\ntag_ttl = soon\n",
	 "t.ini:2: [registry \"quay.io\"] tag_ttl: invalid duration 'soon' "
	 "(expected e.g. 30, 0.5, 30s, 5m, 2h, 1d)"},
	/* [registry]: empty plugin */
	{"[registry \"quay.io\"]\nplugin =\n",
	 "t.ini:2: [registry \"quay.io\"] plugin: value must not be empty"},
	/* [registry]: empty password_file */
	{"[registry \"quay.io\"]\npassword_file =\n",
	 "t.ini:2: [registry \"quay.io\"] password_file: value must not be "
	 "empty"},
	/* [registry]: both password and password_file (reported at the later)
	 */
	{"[registry \"quay.io\"]\nplugin = quay\npassword_file = /p\npassword "
	 "= x\n",
	 "t.ini:4: [registry \"quay.io\"] password: password and "
	 "password_file are mutually exclusive"},
	/* access_log_format: text or json */
	{"[proxy]\naccess_log_format = xml\n",
	 "t.ini:2: [proxy] access_log_format: invalid format 'xml' (expected "
	 "text or json)"},
	/* admin_listen: a bad address */
	{"[proxy]\nadmin_listen = localhost\n",
	 "t.ini:2: [proxy] admin_listen: invalid address 'localhost' "
	 "(expected IPV4:PORT, [IPV6]:PORT or *:PORT)"},
	/* admin_listen: the client port's address */
	{"[proxy]\nlisten = 127.0.0.1:3128\nadmin_listen = 127.0.0.1:9128 "
	 "127.0.0.1:3128\n",
	 "t.ini:3: [proxy] admin_listen: '127.0.0.1:3128' is also in listen "
	 "(the client port)"},
	/* admin_allow: host bits */
	{"[proxy]\nadmin_allow = 10.0.0.1/8\n",
	 "t.ini:2: [proxy] admin_allow: '10.0.0.1/8' has host bits set (the "
	 "network is 10.0.0.0/8)"},
	/* require_users without anybody to require */
	{"[proxy]\nrequire_users = yes\n",
	 "t.ini:2: [proxy] require_users: needs users_file (the proxy users)"},
	/* require_users: not a boolean */
	{"[proxy]\nusers_file = u\nrequire_users = always\n",
	 "t.ini:3: [proxy] require_users: invalid boolean 'always' (expected "
	 "yes or no)"},
	/* tunnel_only: a bad host */
	{"[proxy]\ntunnel_only = a..b\n",
	 "t.ini:2: [proxy] tunnel_only: invalid host 'a..b' (expected HOST, "
	 "HOST:PORT or *.DOMAIN)"},
	/* tunnel_only: a host registries intercepts */
	{"[proxy]\ntunnel_only = x.test quay.io\n",
	 "t.ini:2: [proxy] tunnel_only: 'quay.io' is also in registries "
	 "(intercepted)"},
	/* tunnel_only: a host a [registry] section intercepts */
	{"[proxy]\nregistries =\ntunnel_only = r.test:5000\n"
	 "[registry \"r.test:5000/team\"]\n",
	 "t.ini:3: [proxy] tunnel_only: 'r.test:5000' has a [registry "
	 "\"r.test:5000/team\"] section (line 4), which intercepts it"},
	/* [registry] users without users_file */
	{"[registry \"quay.io\"]\nusers = alice\n",
	 "t.ini:2: [registry \"quay.io\"] users: needs [proxy] users_file "
	 "(the proxy users)"},
	/* [registry] users: '*' with names */
	{"[proxy]\nusers_file = u\n[registry \"quay.io\"]\nusers = *, bob\n",
	 "t.ini:4: [registry \"quay.io\"] users: '*' (any proxy user) stands "
	 "alone"},
	/* [registry] users: empty */
	{"[proxy]\nusers_file = u\n[registry \"quay.io\"]\nusers =\n",
	 "t.ini:4: [registry \"quay.io\"] users: expected user names of "
	 "users_file, or *"},
	/* [registry] users: a name htpasswd cannot hold */
	{"[proxy]\nusers_file = u\n[registry \"quay.io\"]\nusers = a:b\n",
	 "t.ini:4: [registry \"quay.io\"] users: invalid user name 'a:b'"},
	/* [registry]: duplicate shared key */
	{"[registry \"quay.io\"]\nusername = a\nusername = b\n",
	 "t.ini:3: [registry \"quay.io\"] username: duplicate key (first at "
	 "line 2)"},
	/* [registry]: duplicate plugin-specific key */
	{"[registry \"gcr.io\"]\nplugin = gcr\nkey_file = a\nkey_file = b\n",
	 "t.ini:4: [registry \"gcr.io\"] key_file: duplicate key (first at "
	 "line 3)"},
	/* upstream_proxy: only plain-HTTP parents */
	{"[proxy]\nupstream_proxy = https://p.example:3128\n",
	 "t.ini:2: [proxy] upstream_proxy: 'https://p.example:3128': expected "
	 "http://[USER@]HOST:PORT (the parent is spoken to in plain HTTP)"},
	/* upstream_proxy: never a password in the URL */
	{"[proxy]\nupstream_proxy = http://u:pw@p.example:3128\n",
	 "t.ini:2: [proxy] upstream_proxy: 'http://u:pw@p.example:3128': the "
	 "user name must not be empty, and the password goes into "
	 "upstream_proxy_password_file, never into the URL"},
	/* upstream_proxy: the port is required */
	{"[proxy]\nupstream_proxy = http://p.example\n",
	 "t.ini:2: [proxy] upstream_proxy: 'http://p.example': expected "
	 "http://[USER@]HOST:PORT"},
	/* upstream_proxy: a user needs the password file */
	{"[proxy]\nupstream_proxy = http://u@p.example:3128\n",
	 "t.ini:2: [proxy] upstream_proxy: a user name needs "
	 "upstream_proxy_password_file"},
	/* upstream_proxy_password_file: needs a user */
	{"[proxy]\nupstream_proxy = http://p.example:3128\n"
	 "upstream_proxy_password_file = pw\n",
	 "t.ini:3: [proxy] upstream_proxy_password_file: needs a user name in "
	 "upstream_proxy (http://USER@HOST:PORT)"},
	/* no_upstream_proxy: neither a name, a suffix nor a CIDR */
	{"[proxy]\nno_upstream_proxy = .ok.example bad_name\n",
	 "t.ini:2: [proxy] no_upstream_proxy: invalid entry 'bad_name' "
	 "(expected HOST, .DOMAIN or a CIDR)"},
	/* mirror_tls_listen: needs a certificate */
	{"[proxy]\nmirror_tls_listen = 127.0.0.1:8443\n",
	 "t.ini:2: [proxy] mirror_tls_listen: needs mirror_tls_cert and "
	 "mirror_tls_key, or mirror_names (a certificate by the proxy's CA)"},
	/* mirror_tls_cert: and its key */
	{"[proxy]\nmirror_tls_cert = c.pem\n",
	 "t.ini:2: [proxy] mirror_tls_cert: needs mirror_tls_key too"},
	/* mirror_names: host names or addresses */
	{"[proxy]\nmirror_names = ok.example bad!\n",
	 "t.ini:2: [proxy] mirror_names: invalid name 'bad!' (expected a host "
	 "name or an IP address)"},
	/* [resolve]: at most 8 addresses */
	{"[resolve]\nh.example = 1.1.1.1 1.1.1.2 1.1.1.3 1.1.1.4 1.1.1.5 "
	 "1.1.1.6 1.1.1.7 1.1.1.8 1.1.1.9\n",
	 "t.ini:2: [resolve] h.example: at most 8 addresses per host"},
	/* values: a long value is clipped in the message */
	{"[proxy]\nworkers = "
	 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
	 "t.ini:2: [proxy] workers: invalid value "
	 "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	 "aaaaaaaaa...' (expected auto or 1..256)"},
	/* syntax: a control character other than TAB (here a stray CR of
	 * CRCRLF line ends, which would end up in the password) */
	{"[registry \"quay.io\"]\npassword = secret\r\r\n",
	 "t.ini:2: control character 0x0d in line"},
	{"[proxy]\nca_dir = \"/srv/\x1b[2Jca\"\n",
	 "t.ini:2: control character 0x1b in line"},
	{"[proxy]\nca_dir = /srv/ca\x7f\n",
	 "t.ini:2: control character 0x7f in line"},
};

/* The mirror's keys, as parsed. */
START_TEST(mirror_keys)
{
	drp_conf_t *c =
		load_ok("[proxy]\n"
			"mirror = no\n"
			"mirror_tls_listen = 127.0.0.1:8443 [::1]:8443\n"
			"mirror_names = Proxy.Example 10.0.0.5 fd00::5\n");
	char buf[64];
	ck_assert(!c->mirror);
	ck_assert_uint_eq(c->n_mirror_tls_listen, 2);
	ck_assert_str_eq(sa_text(&c->mirror_tls_listen[1].addr, buf),
			 "[::1]:8443");
	ck_assert_uint_eq(c->n_mirror_names, 3);
	ck_assert_str_eq(c->mirror_names[0], "proxy.example");
	drp_conf_free(c);
}
END_TEST

/* The parent proxy's keys, as parsed. */
START_TEST(parent_keys)
{
	drp_conf_t *c = load_ok(
		"[proxy]\n"
		"upstream_proxy = http://drp@[fd00::1]:8080/\n"
		"upstream_proxy_password_file = pw\n"
		"no_upstream_proxy = reg.internal .Corp.Example 10.0.0.0/8 "
		"10.1.2.3 fd00::/8\n");
	ck_assert_str_eq(c->upstream_proxy_host, "fd00::1");
	ck_assert_uint_eq(c->upstream_proxy_port, 8080);
	ck_assert_str_eq(c->upstream_proxy_user, "drp");
	ck_assert_str_eq(c->upstream_proxy_password_file, "pw");
	ck_assert_uint_eq(c->n_no_upstream_proxy, 2);
	ck_assert_str_eq(c->no_upstream_proxy[1], ".corp.example");
	ck_assert_uint_eq(c->n_no_upstream_proxy_cidr, 3);
	drp_conf_free(c);
}
END_TEST

/* [resolve] with several addresses: one entry each, in order. */
START_TEST(resolve_addresses)
{
	drp_conf_t *c = load_ok("[resolve]\n"
				"dual.example = [::1]:443 127.0.0.1\n");
	char buf[64];
	ck_assert_uint_eq(c->n_resolve, 2);
	ck_assert_str_eq(sa_text(&c->resolve[0].addr, buf), "[::1]:443");
	ck_assert_str_eq(sa_text(&c->resolve[1].addr, buf), "127.0.0.1:0");
	ck_assert_str_eq(c->resolve[1].host, "dual.example");
	drp_conf_free(c);
}
END_TEST

START_TEST(bad_config_table)
{
	load_fails(bad_cases[_i].text, &bad_cases[_i].err, 1);
}
END_TEST

/* Every error is reported, in line order, though syntax errors are found
 * in a pass before the others. */
START_TEST(all_errors_reported)
{
	static const char text[] =
		"[proxy]\n"			   /* 1 */
		"workers = lots\n"		   /* 2 */
		"listen 3128\n"			   /* 3: syntax */
		"allow = 10.0.0.0/8 10.1.1.1/16\n" /* 4 */
		"bogus = 1\n"			   /* 5 */
		"[cache]\n"			   /* 6 */
		"backend = tape\n"		   /* 7 */
		"[nope]\n"			   /* 8 */
		"x = 1\n"			   /* 9: not reported */
		"[registry \"ghcr.io\"]\n"	   /* 10 */
		"push = maybe\n"		   /* 11 */
		"realm = x\n"			   /* 12 */
		"[resolve]\n"			   /* 13 */
		"ghcr.io = 1.2.3.4.5\n"		   /* 14 */
		"[proxy]\n"			   /* 15 */
		"workers = 4\n"			   /* 16 */
		"allow = 1.2.3.4/33 fe80::1/8\n"   /* 17: two errors */
		"[broken\n";			   /* 18: syntax */
	const char *want[] = {
		"t.ini:2: [proxy] workers: invalid value 'lots' (expected auto "
		"or 1..256)",
		"t.ini:3: [proxy]: missing '=' (expected KEY = VALUE)",
		"t.ini:4: [proxy] allow: '10.1.1.1/16' has host bits set (the "
		"network is 10.1.0.0/16)",
		"t.ini:5: [proxy] bogus: unknown key",
		"t.ini:7: [cache] backend: unknown backend 'tape' (expected "
		"fs, "
		"memory or s3)",
		"t.ini:8: [nope]: unknown section (expected proxy, resolve, "
		"cache, fleet or registry \"NAME\")",
		"t.ini:11: [registry \"ghcr.io\"] push: invalid value 'maybe' "
		"(expected client, proxy or deny)",
		"t.ini:12: [registry \"ghcr.io\"] realm: unknown key "
		"(plugin-specific keys need 'plugin' in the section)",
		"t.ini:14: [resolve] ghcr.io: invalid address '1.2.3.4.5' "
		"(expected IPV4, IPV4:PORT, IPV6 or [IPV6]:PORT)",
		"t.ini:16: [proxy] workers: duplicate key (first at line 2)",
		"t.ini:17: [proxy] allow: duplicate key (first at line 4)",
		"t.ini:18: invalid section header (expected [NAME] or [NAME "
		"\"ARGUMENT\"])",
	};
	load_fails(text, want, N(want));

	/* Two bad entries in one list: both reported. */
	const char *want2[] = {
		"t.ini:2: [proxy] allow: invalid CIDR '1.2.3.4/33' (expected "
		"ADDRESS or ADDRESS/PREFIX)",
		"t.ini:2: [proxy] allow: 'fe80::1/8' has host bits set (the "
		"network is fe00::/8)",
	};
	load_fails("[proxy]\nallow = 1.2.3.4/33 fe80::1/8\n", want2, N(want2));
}
END_TEST

/* Errors are appended after whatever the sink already holds. */
START_TEST(errors_append)
{
	drp_conf_errors_t errs = {0};

	drp_conf_error(&errs, "a.ini", 9, NULL, NULL, "earlier");
	ck_assert_ptr_null(
		drp_conf_load_string("b.ini", "[proxy]\nx = 1\n", &errs));
	ck_assert_uint_eq(errs.n, 2);
	ck_assert_str_eq(errs.msg[0], "a.ini:9: earlier");
	ck_assert_str_eq(errs.msg[1], "b.ini:2: [proxy] x: unknown key");
	/* A valid load leaves the sink untouched. */
	drp_conf_t *c = drp_conf_load_string("c.ini", "[proxy]\n", &errs);
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(errs.n, 2);
	drp_conf_free(c);
	drp_conf_errors_free(&errs);
}
END_TEST

/* ---- good configurations ---- */

static const char full_text[] =
	"; a full configuration\n"
	"# both comment styles\n"
	"[proxy]\n"
	"listen = 127.0.0.1:3128, [::1]:3129\n"
	"workers = 4\n"
	"registries = Quay.IO gcr.io:0443 [::1]:5000 10.1.2.3\n"
	"allow = 10.0.0.0/8,2001:db8::/32 ; inline comment\n"
	"tunnel_ports = 443 8443\n"
	"ca_dir = \"/var/lib/drp/ca dir\"\n"
	"upstream_ca_file = /etc/ssl/extra.pem\n"
	"verify_upstream = no\n"
	"access_log = /var/log/drp/access.log\n"
	"error_log = /var/log/drp/error.log\n"
	"log_level = debug\n"
	"users_file = /etc/drp/users\n"
	"require_users = yes\n"
	"tunnel_only = Auth.Example.NET *.cdn.test 10.9.9.9:8443\n"
	"max_connections = 100\n"
	"max_header_size = 16K\n"
	"header_timeout = 0.5\n"
	"idle_timeout = 2m\n"
	"connect_timeout = 3s\n"
	"handshake_timeout = 4\n"
	"body_timeout = 1h\n"
	"tunnel_idle_timeout = 1d\n"
	"drain_timeout = 2m\n"
	"\n"
	"[resolve]\n"
	"Registry-1.Docker.IO = 127.0.0.11:443\n"
	"quay.io = 127.0.0.12\n"
	"ghcr.io = [::1]:8443\n"
	"gcr.io = 2001:db8::7\n"
	"k8s.io = [2001:db8::8]\n"
	"\n"
	"[cache]\n"
	"backend = memory\n"
	"dir = /var/cache/drp\n"
	"max_size = 2T\n"
	"tag_ttl = 90\n"
	"\n"
	"[registry \"Docker.IO/acme\"]\n"
	"plugin = dockerhub\n"
	"username = acme\n"
	"password_file = /etc/drp/acme.pass\n"
	"push = proxy\n"
	"token_ttl = 300 ; plugin-specific, kept for the plugin\n"
	"[registry \"*.pkg.dev\"]\n"
	"allow = 10.1.0.0/16\n"
	"users = alice, bob\n"
	"tag_ttl = 1m\n"
	"[registry \"LOCALHOST:05000/team/app_x\"]\n";

/* The old image's encrypted CA key: its passphrase, inline or from a file;
 * empty means none. drain_timeout takes a duration. */
START_TEST(ca_passphrase_and_drain)
{
	drp_conf_t *c = load_ok("[proxy]\nca_key_passphrase = foobar\n"
				"ca_key_passphrase_file = /ca/pass\n"
				"drain_timeout = 0.5\n");
	ck_assert_str_eq(c->ca_key_passphrase, "foobar");
	ck_assert_str_eq(c->ca_key_passphrase_file, "/ca/pass");
	ck_assert_double_eq(c->drain_timeout, 0.5);
	drp_conf_free(c);
	c = load_ok("[proxy]\nca_key_passphrase =\n");
	ck_assert_ptr_null(c->ca_key_passphrase);
	ck_assert_ptr_null(c->ca_key_passphrase_file);
	drp_conf_free(c);
}
END_TEST

/* [cache] max_age (0: never) and [proxy] admin_socket (empty: the
 * default place, off: none). */
START_TEST(max_age_and_admin_socket)
{
	drp_conf_t *c = load_ok("[proxy]\n");
	ck_assert_double_eq(c->cache_max_age, 0);
	ck_assert_ptr_null(c->admin_socket);
	drp_conf_free(c);
	c = load_ok("[proxy]\nadmin_socket = /run/drp/admin.sock\n"
		    "[cache]\nmax_age = 30d\n");
	ck_assert_double_eq(c->cache_max_age, 30 * 86400);
	ck_assert_str_eq(c->admin_socket, "/run/drp/admin.sock");
	drp_conf_free(c);
	c = load_ok("[proxy]\nadmin_socket = off\n[cache]\nmax_age = 2.5\n");
	ck_assert_double_eq(c->cache_max_age, 2.5);
	ck_assert_str_eq(c->admin_socket, "");
	drp_conf_free(c);
	c = load_ok("[proxy]\nadmin_socket =\n");
	ck_assert_ptr_null(c->admin_socket);
	drp_conf_free(c);
	drp_conf_errors_t errs = {0};
	ck_assert_ptr_null(drp_conf_load_string(
		"t.ini", "[cache]\nmax_age = a while\n", &errs));
	ck_assert_uint_eq(errs.n, 1);
	ck_assert_str_eq(errs.msg[0],
			 "t.ini:2: [cache] max_age: invalid duration 'a "
			 "while' (expected e.g. 30, 0.5, 30s, 5m, 2h, 1d)");
	drp_conf_errors_free(&errs);
}
END_TEST

/* [cache] keep_mapped: a size, 0 (the default) turns it off. */
START_TEST(keep_mapped_size)
{
	drp_conf_t *c = load_ok("[cache]\n");
	ck_assert_uint_eq(c->cache_keep_mapped, 0);
	drp_conf_free(c);
	c = load_ok("[cache]\nkeep_mapped = 256M\n");
	ck_assert_uint_eq(c->cache_keep_mapped, 256ULL << 20);
	drp_conf_free(c);
	c = load_ok("[cache]\nkeep_mapped = 0\n");
	ck_assert_uint_eq(c->cache_keep_mapped, 0);
	drp_conf_free(c);
	drp_conf_errors_t errs = {0};
	ck_assert_ptr_null(drp_conf_load_string(
		"t.ini", "[cache]\nkeep_mapped = -1\n", &errs));
	ck_assert_uint_eq(errs.n, 1);
	ck_assert_str_eq(errs.msg[0],
			 "t.ini:2: [cache] keep_mapped: invalid size '-1' "
			 "(expected e.g. 1024, 10K, 32G, 1T)");
	drp_conf_errors_free(&errs);
}
END_TEST

/* [proxy] tcp_congestion: a name (whether the kernel has it is found out
 * at the listen), nothing for the system's. */
START_TEST(tcp_congestion_name)
{
	drp_conf_t *c = load_ok("[proxy]\n");
	ck_assert_ptr_null(c->tcp_congestion);
	drp_conf_free(c);
	c = load_ok("[proxy]\ntcp_congestion = cubic\n");
	ck_assert_str_eq(c->tcp_congestion, "cubic");
	drp_conf_free(c);
	c = load_ok("[proxy]\ntcp_congestion = 0123456789abcde\n");
	ck_assert_str_eq(c->tcp_congestion, "0123456789abcde");
	drp_conf_free(c);
	c = load_ok("[proxy]\ntcp_congestion =\n");
	ck_assert_ptr_null(c->tcp_congestion);
	drp_conf_free(c);
	static const char *const bad[] = {"bb r", "0123456789abcdef", "bbr;",
					  "cubic/x"};
	for (size_t i = 0; i < N(bad); i++) {
		char text[64], want[256];
		snprintf(text, sizeof(text), "[proxy]\ntcp_congestion = %s\n",
			 bad[i]);
		snprintf(want, sizeof(want),
			 "t.ini:2: [proxy] tcp_congestion: invalid name '%s' "
			 "(expected one from "
			 "/proc/sys/net/ipv4/tcp_available_congestion_control, "
			 "such as cubic, or nothing for the system's)",
			 bad[i]);
		drp_conf_errors_t errs = {0};
		ck_assert_ptr_null(drp_conf_load_string("t.ini", text, &errs));
		ck_assert_uint_eq(errs.n, 1);
		ck_assert_str_eq(errs.msg[0], want);
		drp_conf_errors_free(&errs);
	}
}
END_TEST

/* [cache] backend = s3: the fs cache stays (the local tier), the s3_*
 * keys describe the bucket. */
START_TEST(cache_s3)
{
	drp_conf_t *c = load_ok("[cache]\n");
	ck_assert(!c->cache_s3);
	ck_assert_double_eq(c->s3_abandoned_after, 3600);
	drp_conf_free(c);
	c = load_ok("[cache]\nbackend = s3\ns3_endpoint = https://s3.test\n"
		    "s3_bucket = drp-cache\ns3_region = eu-west-1\n"
		    "s3_access_key = AK\ns3_secret_key_file = /etc/drp/s3\n"
		    "s3_addressing = virtual\ns3_abandoned_after = 10m\n");
	ck_assert(c->cache_s3);
	ck_assert_str_eq(c->cache_backend, "fs");
	ck_assert_str_eq(c->s3_endpoint, "https://s3.test");
	ck_assert_str_eq(c->s3_bucket, "drp-cache");
	ck_assert_str_eq(c->s3_region, "eu-west-1");
	ck_assert_str_eq(c->s3_access_key, "AK");
	ck_assert_str_eq(c->s3_secret_key_file, "/etc/drp/s3");
	ck_assert(c->s3_virtual);
	ck_assert_double_eq(c->s3_abandoned_after, 600);
	drp_conf_free(c);
}
END_TEST

#define S3_KEYS                                                                \
	"backend = s3\ns3_endpoint = https://s3.test\ns3_bucket = b\n"         \
	"s3_access_key = AK\ns3_secret_key_file = /etc/drp/s3\n"

/* [cache] local_dir and local_max_size: the local tier in front of S3;
 * without them dir and max_size, as before they existed. */
START_TEST(cache_s3_local_tier)
{
	drp_conf_t *c = load_ok("[cache]\n" S3_KEYS "dir = /var/cache/drp\n"
				"max_size = 2G\n");
	ck_assert_str_eq(c->cache_dir, "/var/cache/drp");
	ck_assert_uint_eq(c->cache_max_size, 2ULL << 30);
	drp_conf_free(c);
	/* In either order of the keys: local_* wins over dir/max_size. */
	c = load_ok("[cache]\nlocal_dir = /srv/drp-local\n"
		    "local_max_size = 512M\n" S3_KEYS "dir = /var/cache/drp\n"
		    "max_size = 2G\n");
	ck_assert_str_eq(c->cache_dir, "/srv/drp-local");
	ck_assert_uint_eq(c->cache_max_size, 512ULL << 20);
	drp_conf_free(c);
	/* One of the two: the other falls back. */
	c = load_ok("[cache]\n" S3_KEYS "dir = /var/cache/drp\n"
		    "local_max_size = 100M\n");
	ck_assert_str_eq(c->cache_dir, "/var/cache/drp");
	ck_assert_uint_eq(c->cache_max_size, 100ULL << 20);
	drp_conf_free(c);
	c = load_ok("[cache]\n" S3_KEYS "local_dir = /srv/l\n");
	ck_assert_str_eq(c->cache_dir, "/srv/l");
	ck_assert_uint_eq(c->cache_max_size, 32ULL << 30);
	drp_conf_free(c);
}
END_TEST

/* [fleet] redis: an address, or a name (resolved at start). */
START_TEST(fleet_redis)
{
	drp_conf_t *c = load_ok("[fleet]\nredis = 10.0.0.20:6379\n");
	ck_assert_str_eq(c->fleet_redis, "10.0.0.20:6379");
	drp_conf_free(c);
	c = load_ok("[fleet]\nredis = redis.internal-1.example:6380\n");
	ck_assert_str_eq(c->fleet_redis, "redis.internal-1.example:6380");
	drp_conf_free(c);
	c = load_ok("[fleet]\nredis = [fd00::20]:6379\n");
	ck_assert_str_eq(c->fleet_redis, "[fd00::20]:6379");
	drp_conf_free(c);
}
END_TEST

/* [proxy] proxy_protocol_from: a CIDR list, empty by default. */
START_TEST(proxy_protocol_from)
{
	char buf[64];
	drp_conf_t *c = load_ok("[proxy]\n");
	ck_assert_uint_eq(c->n_proxy_protocol_from, 0);
	drp_conf_free(c);
	c = load_ok("[proxy]\nproxy_protocol_from = 10.0.0.10 fd00::/64\n");
	ck_assert_uint_eq(c->n_proxy_protocol_from, 2);
	ck_assert_str_eq(cidr_text(&c->proxy_protocol_from[0], buf),
			 "10.0.0.10/32");
	ck_assert_str_eq(cidr_text(&c->proxy_protocol_from[1], buf),
			 "fd00::/64");
	drp_conf_free(c);
}
END_TEST

START_TEST(full_config)
{
	drp_conf_t *c = load_ok(full_text);
	char buf[64];

	ck_assert_str_eq(c->path, "t.ini");
	ck_assert_uint_eq(c->n_listen, 2);
	ck_assert_str_eq(sa_text(&c->listen[0].addr, buf), "127.0.0.1:3128");
	ck_assert_str_eq(c->listen[0].text, "127.0.0.1:3128");
	ck_assert_uint_eq(c->listen[0].addrlen, sizeof(struct sockaddr_in));
	ck_assert_str_eq(sa_text(&c->listen[1].addr, buf), "[::1]:3129");
	ck_assert_str_eq(c->listen[1].text, "[::1]:3129");
	ck_assert_uint_eq(c->listen[1].addrlen, sizeof(struct sockaddr_in6));
	ck_assert_uint_eq(c->workers, 4);
	ck_assert_uint_eq(c->n_registries, 4);
	ck_assert_str_eq(c->registries[0], "quay.io");
	ck_assert_str_eq(c->registries[1], "gcr.io:443");
	ck_assert_str_eq(c->registries[2], "[::1]:5000");
	ck_assert_str_eq(c->registries[3], "10.1.2.3");
	ck_assert_uint_eq(c->n_allow, 2);
	ck_assert_str_eq(cidr_text(&c->allow[0], buf), "10.0.0.0/8");
	ck_assert_str_eq(cidr_text(&c->allow[1], buf), "2001:db8::/32");
	ck_assert_uint_eq(c->n_tunnel_ports, 2);
	ck_assert_uint_eq(c->tunnel_ports[0], 443);
	ck_assert_uint_eq(c->tunnel_ports[1], 8443);
	ck_assert_str_eq(c->ca_dir, "/var/lib/drp/ca dir");
	ck_assert_str_eq(c->upstream_ca_file, "/etc/ssl/extra.pem");
	ck_assert(!c->verify_upstream);
	ck_assert_str_eq(c->access_log, "/var/log/drp/access.log");
	ck_assert_str_eq(c->error_log, "/var/log/drp/error.log");
	ck_assert_int_eq(c->log_level, DRP_LOG_DEBUG);
	ck_assert_str_eq(c->users_file, "/etc/drp/users");
	ck_assert(c->require_users);
	ck_assert_uint_eq(c->n_tunnel_only, 3);
	ck_assert_str_eq(c->tunnel_only[0], "auth.example.net");
	ck_assert_str_eq(c->tunnel_only[1], "*.cdn.test");
	ck_assert_str_eq(c->tunnel_only[2], "10.9.9.9:8443");
	ck_assert_uint_eq(c->max_connections, 100);
	ck_assert_uint_eq(c->max_header_size, 16384);
	ck_assert_double_eq(c->header_timeout, 0.5);
	ck_assert_double_eq(c->idle_timeout, 120);
	ck_assert_double_eq(c->connect_timeout, 3);
	ck_assert_double_eq(c->handshake_timeout, 4);
	ck_assert_double_eq(c->body_timeout, 3600);
	ck_assert_double_eq(c->tunnel_idle_timeout, 86400);
	ck_assert_double_eq(c->drain_timeout, 120);

	ck_assert_uint_eq(c->n_resolve, 5);
	ck_assert_str_eq(c->resolve[0].host, "registry-1.docker.io");
	ck_assert_str_eq(sa_text(&c->resolve[0].addr, buf), "127.0.0.11:443");
	ck_assert_uint_eq(c->resolve[0].addrlen, sizeof(struct sockaddr_in));
	ck_assert_str_eq(c->resolve[1].host, "quay.io");
	/* No port written: 0 = "the requested port". */
	ck_assert_str_eq(sa_text(&c->resolve[1].addr, buf), "127.0.0.12:0");
	ck_assert_str_eq(sa_text(&c->resolve[2].addr, buf), "[::1]:8443");
	ck_assert_uint_eq(c->resolve[2].addrlen, sizeof(struct sockaddr_in6));
	ck_assert_str_eq(sa_text(&c->resolve[3].addr, buf), "[2001:db8::7]:0");
	ck_assert_str_eq(sa_text(&c->resolve[4].addr, buf), "[2001:db8::8]:0");

	ck_assert_str_eq(c->cache_backend, "memory");
	ck_assert_str_eq(c->cache_dir, "/var/cache/drp");
	ck_assert_uint_eq(c->cache_max_size, 2ULL << 40);
	ck_assert_double_eq(c->tag_ttl, 90);

	ck_assert_uint_eq(c->n_registry, 3);
	const drp_conf_registry_t *r = &c->registry[0];
	/* Host lower-cased, repository prefix kept. */
	ck_assert_str_eq(r->name, "docker.io/acme");
	ck_assert_str_eq(r->file, "t.ini");
	ck_assert_uint_eq(r->line, 41);
	ck_assert_uint_eq(r->n_items, 5);
	const char *keys[] = {"plugin", "username", "password_file", "push",
			      "token_ttl"};
	const char *vals[] = {"dockerhub", "acme", "/etc/drp/acme.pass",
			      "proxy", "300"};
	for (unsigned i = 0; i < 5; i++) {
		ck_assert_str_eq(r->items[i].key, keys[i]);
		ck_assert_str_eq(r->items[i].value, vals[i]);
		ck_assert_str_eq(r->items[i].file, "t.ini");
		ck_assert_uint_eq(r->items[i].line, 42 + i);
	}
	ck_assert_ptr_eq(drp_conf_registry_get(r, "token_ttl"), &r->items[4]);
	ck_assert_ptr_null(drp_conf_registry_get(r, "password"));
	r = &c->registry[1];
	ck_assert_str_eq(r->name, "*.pkg.dev");
	ck_assert_uint_eq(r->line, 47);
	ck_assert_uint_eq(r->n_items, 3);
	ck_assert_str_eq(drp_conf_registry_get(r, "allow")->value,
			 "10.1.0.0/16");
	ck_assert_str_eq(drp_conf_registry_get(r, "users")->value,
			 "alice, bob");
	ck_assert_uint_eq(drp_conf_registry_get(r, "tag_ttl")->line, 50);
	r = &c->registry[2];
	/* Port normalised, path kept; an empty section is anonymous. */
	ck_assert_str_eq(r->name, "localhost:5000/team/app_x");
	ck_assert_uint_eq(r->n_items, 0);
	drp_conf_free(c);
}
END_TEST

/* The admin listener and the access log's format. */
START_TEST(admin_and_log_format)
{
	char buf[64];
	drp_conf_t *d = drp_conf_defaults();
	/* By default no admin listener, the admin endpoints stay on the
	 * client port; the text format. */
	ck_assert_uint_eq(d->n_admin_listen, 0);
	ck_assert_uint_eq(d->n_admin_allow, d->n_allow);
	ck_assert_int_eq(d->access_log_format, DRP_CONF_LOG_TEXT);
	drp_conf_free(d);
	drp_conf_t *c = load_ok("[proxy]\n"
				"admin_listen = 127.0.0.1:9128, [::1]:9128\n"
				"admin_allow = 10.0.0.0/8\n"
				"access_log_format = json\n");
	ck_assert_uint_eq(c->n_admin_listen, 2);
	ck_assert_str_eq(sa_text(&c->admin_listen[0].addr, buf),
			 "127.0.0.1:9128");
	ck_assert_str_eq(c->admin_listen[1].text, "[::1]:9128");
	ck_assert_uint_eq(c->n_admin_allow, 1);
	ck_assert_str_eq(cidr_text(&c->admin_allow[0], buf), "10.0.0.0/8");
	ck_assert_int_eq(c->access_log_format, DRP_CONF_LOG_JSON);
	drp_conf_free(c);
	/* Empty: no admin listener. */
	c = load_ok("[proxy]\nadmin_listen =\n");
	ck_assert_uint_eq(c->n_admin_listen, 0);
	drp_conf_free(c);
}
END_TEST

/* Lexical details of values. */
START_TEST(value_syntax)
{
	static const char text[] =
		"\xef\xbb\xbf[proxy]\r\n" /* BOM and CRLF */
		"  ca_dir = \"a;b #c\\\"d\\\\e\" ; quoted keeps ; # and "
		"blanks\r\n"
		"access_log=x#y\n"	    /* '#' not after a blank: kept */
		"error_log = x ;y\n"	    /* ';' after a blank: comment */
		"users_file = p;q\t# tab\n" /* tab before '#' */
		"upstream_ca_file = \"\"\n" /* quoted empty = unset */
		"\t[ cache ]  # header with blanks and a comment\n"
		"dir =  /a b/c  \n" /* inner blanks kept, ends trimmed */
		"[registry \"quay.io\"]\n"
		"plugin = quay\n"
		"password = \"  spaced  \"\n"
		"x-y.z_1 = ok\n"; /* every key character */
	drp_conf_t *c = load_ok(text);

	ck_assert_str_eq(c->ca_dir, "a;b #c\"d\\e");
	ck_assert_str_eq(c->access_log, "x#y");
	ck_assert_str_eq(c->error_log, "x");
	ck_assert_str_eq(c->users_file, "p;q");
	ck_assert_ptr_null(c->upstream_ca_file);
	ck_assert_str_eq(c->cache_dir, "/a b/c");
	ck_assert_str_eq(
		drp_conf_registry_get(&c->registry[0], "password")->value,
		"  spaced  ");
	ck_assert_str_eq(
		drp_conf_registry_get(&c->registry[0], "x-y.z_1")->value, "ok");
	ck_assert_uint_eq(
		drp_conf_registry_get(&c->registry[0], "x-y.z_1")->line, 12);
	drp_conf_free(c);

	/* An empty file, or one with only comments, is the defaults. */
	c = load_ok("");
	ck_assert_uint_eq(c->max_connections, 4096);
	drp_conf_free(c);
	c = load_ok("; nothing\n\n   # here\n");
	ck_assert_str_eq(c->cache_backend, "fs");
	drp_conf_free(c);
	/* Lists replace the default rather than add to it; an empty list
	 * is allowed where it means "none". */
	c = load_ok("[proxy]\nregistries =\nallow =\ntunnel_ports =\n");
	ck_assert_uint_eq(c->n_registries, 0);
	ck_assert_uint_eq(c->n_allow, 0);
	ck_assert_uint_eq(c->n_tunnel_ports, 0);
	drp_conf_free(c);
	/* workers = auto is 0; sizes with suffixes in range. */
	c = load_ok("[proxy]\nworkers = auto\nmax_header_size = 1M\n"
		    "[cache]\ntag_ttl = 0\n");
	ck_assert_uint_eq(c->workers, 0);
	ck_assert_uint_eq(c->max_header_size, 1048576);
	ck_assert_double_eq(c->tag_ttl, 0);
	drp_conf_free(c);
}
END_TEST

/* No line-length limit: a 1 MiB value arrives whole. */
START_TEST(long_line)
{
	size_t n = 1 << 20;
	char *text = malloc(n + 64);
	int off = snprintf(text, 64, "[proxy]\nca_dir = ");
	memset(text + off, 'x', n);
	strcpy(text + off + n, "\n");

	drp_conf_t *c = load_ok(text);
	ck_assert_uint_eq(strlen(c->ca_dir), n);
	ck_assert_int_eq(c->ca_dir[n - 1], 'x');
	drp_conf_free(c);
	free(text);
}
END_TEST

static char *write_tmp(const char *data, size_t len)
{
	char *path = strdup("/tmp/test_conf.XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

START_TEST(load_file)
{
	drp_conf_errors_t errs = {0};
	char want[128];

	/* A real file, with a NUL byte on line 2. */
	static const char bad[] = "[proxy]\nworkers = 2\0\nbogus = 1\n";
	char *path = write_tmp(bad, sizeof(bad) - 1);
	ck_assert_ptr_null(drp_conf_load(path, &errs));
	ck_assert_uint_eq(errs.n, 2);
	snprintf(want, sizeof(want), "%s:2: NUL byte in line", path);
	ck_assert_str_eq(errs.msg[0], want);
	snprintf(want, sizeof(want), "%s:3: [proxy] bogus: unknown key", path);
	ck_assert_str_eq(errs.msg[1], want);
	drp_conf_errors_free(&errs);
	unlink(path);
	free(path);

	/* A valid file keeps its path. */
	path = write_tmp("[proxy]\nworkers = 3", 19); /* no final newline */
	drp_conf_t *c = drp_conf_load(path, &errs);
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(errs.n, 0);
	ck_assert_str_eq(c->path, path);
	ck_assert_uint_eq(c->workers, 3);
	drp_conf_free(c);
	unlink(path);
	free(path);

	/* A missing file. */
	ck_assert_ptr_null(drp_conf_load("/nonexistent/drp.ini", &errs));
	ck_assert_uint_eq(errs.n, 1);
	ck_assert_str_eq(errs.msg[0], "/nonexistent/drp.ini: cannot open: No "
				      "such file or directory");
	drp_conf_errors_free(&errs);

	/* A directory. */
	ck_assert_ptr_null(drp_conf_load("/", &errs));
	ck_assert_uint_eq(errs.n, 1);
	ck_assert_str_eq(errs.msg[0], "/: cannot read: Is a directory");
	drp_conf_errors_free(&errs);
}
END_TEST

/* ---- defaults ---- */

static void assert_str_or_null_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		ck_assert_ptr_eq(a, b);
	else
		ck_assert_str_eq(a, b);
}

/* Field-by-field equality of two configurations, path aside. */
static void assert_conf_eq(const drp_conf_t *a, const drp_conf_t *b)
{
	ck_assert_uint_eq(a->n_listen, b->n_listen);
	for (unsigned i = 0; i < a->n_listen; i++) {
		ck_assert_uint_eq(a->listen[i].addrlen, b->listen[i].addrlen);
		ck_assert_mem_eq(&a->listen[i].addr, &b->listen[i].addr,
				 a->listen[i].addrlen);
		ck_assert_str_eq(a->listen[i].text, b->listen[i].text);
	}
	ck_assert_uint_eq(a->workers, b->workers);
	ck_assert(a->mirror == b->mirror);
	ck_assert_uint_eq(a->n_mirror_tls_listen, b->n_mirror_tls_listen);
	ck_assert_uint_eq(a->n_mirror_names, b->n_mirror_names);
	ck_assert(a->mirror_tls_cert == NULL && b->mirror_tls_cert == NULL);
	ck_assert(a->upstream_proxy_host == NULL &&
		  b->upstream_proxy_host == NULL);
	ck_assert(a->upstream_proxy_password_file == NULL &&
		  b->upstream_proxy_password_file == NULL);
	ck_assert_uint_eq(a->n_no_upstream_proxy, b->n_no_upstream_proxy);
	ck_assert_uint_eq(a->n_registries, b->n_registries);
	for (unsigned i = 0; i < a->n_registries; i++)
		ck_assert_str_eq(a->registries[i], b->registries[i]);
	ck_assert_uint_eq(a->n_allow, b->n_allow);
	ck_assert_mem_eq(a->allow, b->allow, a->n_allow * sizeof(*a->allow));
	ck_assert_uint_eq(a->n_tunnel_ports, b->n_tunnel_ports);
	ck_assert_mem_eq(a->tunnel_ports, b->tunnel_ports,
			 a->n_tunnel_ports * sizeof(*a->tunnel_ports));
	ck_assert_str_eq(a->ca_dir, b->ca_dir);
	assert_str_or_null_eq(a->upstream_ca_file, b->upstream_ca_file);
	ck_assert(a->verify_upstream == b->verify_upstream);
	ck_assert_str_eq(a->access_log, b->access_log);
	ck_assert_str_eq(a->error_log, b->error_log);
	ck_assert_int_eq(a->log_level, b->log_level);
	assert_str_or_null_eq(a->users_file, b->users_file);
	ck_assert(a->require_users == b->require_users);
	ck_assert_uint_eq(a->n_tunnel_only, b->n_tunnel_only);
	for (unsigned i = 0; i < a->n_tunnel_only; i++)
		ck_assert_str_eq(a->tunnel_only[i], b->tunnel_only[i]);
	ck_assert_uint_eq(a->max_connections, b->max_connections);
	ck_assert_uint_eq(a->max_header_size, b->max_header_size);
	ck_assert_double_eq(a->header_timeout, b->header_timeout);
	ck_assert_double_eq(a->idle_timeout, b->idle_timeout);
	ck_assert_double_eq(a->connect_timeout, b->connect_timeout);
	ck_assert_double_eq(a->handshake_timeout, b->handshake_timeout);
	ck_assert_double_eq(a->body_timeout, b->body_timeout);
	ck_assert_double_eq(a->tunnel_idle_timeout, b->tunnel_idle_timeout);
	ck_assert_double_eq(a->drain_timeout, b->drain_timeout);
	ck_assert_int_eq(a->push, b->push);
	ck_assert_int_eq(a->access_log_format, b->access_log_format);
	ck_assert_uint_eq(a->n_admin_listen, b->n_admin_listen);
	ck_assert_uint_eq(a->n_admin_allow, b->n_admin_allow);
	ck_assert_mem_eq(a->admin_allow, b->admin_allow,
			 a->n_admin_allow * sizeof(*a->admin_allow));
	ck_assert_uint_eq(a->n_resolve, b->n_resolve);
	ck_assert_str_eq(a->cache_backend, b->cache_backend);
	ck_assert_str_eq(a->cache_dir, b->cache_dir);
	ck_assert_uint_eq(a->cache_max_size, b->cache_max_size);
	ck_assert_double_eq(a->tag_ttl, b->tag_ttl);
	ck_assert_double_eq(a->cache_max_age, b->cache_max_age);
	ck_assert_uint_eq(a->cache_keep_mapped, b->cache_keep_mapped);
	assert_str_or_null_eq(a->admin_socket, b->admin_socket);
	assert_str_or_null_eq(a->tcp_congestion, b->tcp_congestion);
	ck_assert_uint_eq(a->n_registry, b->n_registry);
}

START_TEST(defaults_values)
{
	drp_conf_t *c = drp_conf_defaults();
	char buf[64];

	ck_assert_ptr_null(c->path);
	ck_assert_uint_eq(c->n_listen, 1);
	ck_assert_str_eq(sa_text(&c->listen[0].addr, buf), "[::]:3128");
	ck_assert_uint_eq(c->workers, 0);
	ck_assert_uint_eq(c->n_registries, 4);
	ck_assert_str_eq(c->registries[0], "quay.io");
	ck_assert_str_eq(c->registries[3], "registry.k8s.io");
	const char *allow[] = {"127.0.0.0/8",	"::1/128",	  "10.0.0.0/8",
			       "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"};
	ck_assert_uint_eq(c->n_allow, N(allow));
	for (unsigned i = 0; i < N(allow); i++)
		ck_assert_str_eq(cidr_text(&c->allow[i], buf), allow[i]);
	ck_assert_uint_eq(c->n_tunnel_ports, 1);
	ck_assert_uint_eq(c->tunnel_ports[0], 443);
	ck_assert_str_eq(c->ca_dir, "./ca");
	ck_assert_ptr_null(c->upstream_ca_file);
	ck_assert(c->verify_upstream);
	ck_assert_str_eq(c->access_log, "-");
	ck_assert_str_eq(c->error_log, "-");
	ck_assert_int_eq(c->log_level, DRP_LOG_NOTICE);
	ck_assert_ptr_null(c->users_file);
	ck_assert(!c->require_users);
	ck_assert_uint_eq(c->n_tunnel_only, 0);
	ck_assert_uint_eq(c->max_connections, 4096);
	ck_assert_uint_eq(c->max_header_size, 65536);
	ck_assert_double_eq(c->header_timeout, 30);
	ck_assert_double_eq(c->idle_timeout, 60);
	ck_assert_double_eq(c->connect_timeout, 10);
	ck_assert_double_eq(c->handshake_timeout, 15);
	ck_assert_double_eq(c->body_timeout, 120);
	ck_assert_double_eq(c->tunnel_idle_timeout, 600);
	ck_assert_double_eq(c->drain_timeout, 8);
	ck_assert_int_eq(c->push, DRP_CONF_PUSH_CLIENT);
	ck_assert_uint_eq(c->n_resolve, 0);
	ck_assert_str_eq(c->cache_backend, "fs");
	ck_assert_str_eq(c->cache_dir, "./cache");
	ck_assert_uint_eq(c->cache_max_size, 32ULL << 30);
	ck_assert_double_eq(c->tag_ttl, 300);
	ck_assert_uint_eq(c->n_registry, 0);
	drp_conf_free(c);
}
END_TEST

/* The text and the built-in structure describe the same configuration,
 * and the text sets every key explicitly (so it documents them all). */
START_TEST(defaults_round_trip)
{
	drp_conf_t *d = drp_conf_defaults();
	drp_conf_t *t = load_ok(drp_conf_defaults_text());

	assert_conf_eq(d, t);
	ck_assert_str_eq(t->path, "t.ini");
	drp_conf_free(t);

	/* Same result when every key is changed first: the text really
	 * sets each one rather than leaving the default in place. */
	const char *keys[] = {
		"listen",
		"workers",
		"registries",
		"allow",
		"tunnel_ports",
		"ca_dir",
		"upstream_ca_file",
		"verify_upstream",
		"access_log",
		"error_log",
		"access_log_format",
		"admin_listen",
		"admin_allow",
		"log_level",
		"users_file",
		"require_users",
		"tunnel_only",
		"max_connections",
		"max_header_size",
		"header_timeout",
		"idle_timeout",
		"connect_timeout",
		"handshake_timeout",
		"body_timeout",
		"tunnel_idle_timeout",
		"push",
		"backend",
		"dir",
		"max_size",
		"tag_ttl",
		"mirror",
		"mirror_tls_listen",
		"mirror_tls_cert",
		"mirror_tls_key",
		"mirror_names",
		"upstream_proxy",
		"upstream_proxy_password_file",
		"no_upstream_proxy",
		"max_age",
		"keep_mapped",
		"admin_socket",
	};
	for (unsigned i = 0; i < N(keys); i++) {
		char needle[64];
		snprintf(needle, sizeof(needle), "\n%s =", keys[i]);
		ck_assert_msg(strstr(drp_conf_defaults_text(), needle),
			      "defaults text lacks %s", keys[i]);
	}
	ck_assert_ptr_nonnull(
		strstr(drp_conf_defaults_text(), "\ndrain_timeout ="));
	drp_conf_free(d);
}
END_TEST

/* The comparison used above does notice a difference. */
START_TEST(defaults_compare_can_fail)
{
	drp_conf_t *d = drp_conf_defaults();
	drp_conf_t *t = load_ok("[cache]\ntag_ttl = 6m\n");

	assert_conf_eq(d, t); /* must abort: tag_ttl 300 != 360 */
	drp_conf_free(t);
	drp_conf_free(d);
}
END_TEST

/* ---- the shipped example ---- */

static char *read_example(void)
{
	const char *top = getenv("top_srcdir");
	char path[4096];

	snprintf(path, sizeof(path), "%s/etc/docker-registry-proxy.ini",
		 top && *top ? top : DRP_TEST_SRCDIR);
	FILE *f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	char *text = calloc(1, 1 << 20);
	size_t n = fread(text, 1, (1 << 20) - 1, f);
	fclose(f);
	ck_assert_uint_gt(n, 0);
	ck_assert_uint_lt(n, (1 << 20) - 1);
	return text;
}

START_TEST(example_loads)
{
	char *text = read_example();
	drp_conf_t *c = load_ok(text);

	/* What the example sets actively: a system layout. */
	ck_assert_str_eq(c->ca_dir, "/var/lib/docker-registry-proxy/ca");
	ck_assert_str_eq(c->cache_dir, "/var/cache/docker-registry-proxy");
	drp_conf_free(c);
	free(text);
}
END_TEST

/*
 * Lines starting with '#' directly followed by a non-blank are
 * commented-out settings; prose uses ';'. Uncommenting them all must
 * give a valid configuration too, so that no example in the file is
 * wrong, and every key then appears.
 */
START_TEST(example_uncommented_loads)
{
	char *text = read_example();
	size_t n = strlen(text);
	char *out = malloc(n + 1), *o = out;

	for (const char *p = text; *p;) {
		if (p[0] == '#' && p[1] && p[1] != ' ' && p[1] != '\n' &&
		    p[1] != '\t')
			p++;
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) + 1 : strlen(p);
		memcpy(o, p, len);
		o += len;
		p += len;
	}
	*o = '\0';

	drp_conf_t *c = load_ok(out);
	ck_assert_uint_ge(c->n_resolve, 1);
	ck_assert_uint_ge(c->n_registry, 4);
	/* Every shared [registry] key appears in some section. */
	const char *shared[] = {"plugin",	 "username", "password",
				"password_file", "allow",    "users",
				"push",		 "tag_ttl",  "tag_ttl_match",
				"token_realm"};
	for (unsigned k = 0; k < N(shared); k++) {
		bool found = false;
		for (unsigned i = 0; i < c->n_registry && !found; i++)
			found = drp_conf_registry_get(&c->registry[i],
						      shared[k]) != NULL;
		ck_assert_msg(found, "example lacks [registry] %s", shared[k]);
	}
	/* Every [proxy] and [cache] key is in the file. */
	const char *keys[] = {
		"listen",
		"workers",
		"registries",
		"allow",
		"tunnel_ports",
		"ca_dir",
		"upstream_ca_file",
		"verify_upstream",
		"access_log",
		"error_log",
		"log_level",
		"users_file",
		"require_users",
		"tunnel_only",
		"max_connections",
		"max_header_size",
		"header_timeout",
		"idle_timeout",
		"connect_timeout",
		"handshake_timeout",
		"body_timeout",
		"tunnel_idle_timeout",
		"backend",
		"dir",
		"max_size",
		"tag_ttl",
		"drain_timeout",
		"push",
		"tag_ttl_match",
		"ca_key_passphrase",
		"max_age",
		"admin_socket",
		"access_log_format",
		"admin_listen",
		"admin_allow",
	};
	for (unsigned i = 0; i < N(keys); i++) {
		char needle[64];
		snprintf(needle, sizeof(needle), "\n%s =", keys[i]);
		ck_assert_msg(strstr(out, needle), "example lacks %s", keys[i]);
	}
	ck_assert_ptr_nonnull(strstr(out, "\ndrain_timeout ="));
	drp_conf_free(c);
	free(out);
	free(text);
}
END_TEST

/* The keys the core applies per request are typed at load; unset ones
 * say so (UNSET / has_*), which is what inheritance needs. */
START_TEST(registry_typed)
{
	drp_conf_t *c =
		load_ok("[proxy]\nusers_file = u\n"
			"[registry \"docker.io\"]\n"
			"tag_ttl = 15m\npush = deny\n"
			"allow = 10.0.0.0/8, 192.168.1.0/24\n"
			"users = alice, bob\n"
			"[registry \"docker.io/acme\"]\n"
			"push = proxy\ntag_ttl = 0\nallow =\nusers = *\n"
			"[registry \"*.gcr.io\"]\n"
			"push = client\n"
			"[registry \"quay.io\"]\n");
	ck_assert_uint_eq(c->n_registry, 4);
	const drp_conf_registry_t *r = &c->registry[0];
	ck_assert(r->has_tag_ttl);
	ck_assert(r->tag_ttl == 900);
	ck_assert_int_eq(r->push, DRP_CONF_PUSH_DENY);
	ck_assert(r->has_allow);
	ck_assert_uint_eq(r->n_allow, 2);
	ck_assert(r->has_users && !r->any_user);
	ck_assert_uint_eq(r->n_users, 2);
	ck_assert_str_eq(r->users[1], "bob");
	r = &c->registry[1];
	ck_assert(r->has_tag_ttl); /* 0 is set, not absent */
	ck_assert(r->tag_ttl == 0);
	ck_assert_int_eq(r->push, DRP_CONF_PUSH_PROXY);
	ck_assert(r->has_allow); /* empty: nobody by network */
	ck_assert_uint_eq(r->n_allow, 0);
	ck_assert(r->has_users && r->any_user);
	ck_assert_uint_eq(r->n_users, 0);
	ck_assert_int_eq(c->registry[2].push, DRP_CONF_PUSH_CLIENT);
	r = &c->registry[3];
	ck_assert(!r->has_tag_ttl && !r->has_allow && !r->has_users);
	ck_assert_int_eq(r->push, DRP_CONF_PUSH_UNSET);
	/* Nothing matches: [cache] tag_ttl and push = client. */
	drp_conf_regset_t set;
	drp_conf_regset_resolve(c, NULL, 0, &set);
	ck_assert(set.valid && set.sec == -1 && set.tag_ttl == 300);
	ck_assert_int_eq(set.push, DRP_CONF_PUSH_CLIENT);
	/* The chain docker.io/acme, docker.io: acme's own values. */
	unsigned chain[] = {1, 0};
	drp_conf_regset_resolve(c, chain, 2, &set);
	ck_assert(set.sec == 1 && set.tag_ttl == 0 && set.tag_ttl_sec == 1);
	ck_assert_int_eq(set.push, DRP_CONF_PUSH_PROXY);
	/* quay.io, nothing set: defaults, but the section is selected. */
	unsigned q = 3;
	drp_conf_regset_resolve(c, &q, 1, &set);
	ck_assert(set.sec == 3 && set.tag_ttl == 300 && set.tag_ttl_sec == -1);
	ck_assert_int_eq(set.push_sec, -1);
	drp_conf_free(c);
}
END_TEST

/* token_realm: which section's credentials answer a challenge naming a
 * realm URL (https only, its host and port; a section named by a host
 * alone), and what the configuration must hold for it. */
START_TEST(token_realm_find)
{
	drp_conf_t *c = load_ok("[proxy]\nregistries = reg.example.com "
				"other.test:5000\n"
				"[registry \"gitlab.com\"]\nplugin = basic\n"
				"token_realm = yes\n"
				"[registry \"auth.example.com:8443\"]\n"
				"plugin = basic\ntoken_realm = yes\n"
				"[registry \"quay.io\"]\nplugin = basic\n");
	ck_assert(c->registry[0].token_realm && !c->registry[2].token_realm);
	ck_assert_int_eq(
		drp_conf_token_realm_find(c, "https://gitlab.com/jwt/auth"), 0);
	ck_assert_int_eq(drp_conf_token_realm_find(c, "HTTPS://GitLab.COM:443"),
			 0);
	ck_assert_int_eq(drp_conf_token_realm_find(
				 c, "https://auth.example.com:8443/token?x=1"),
			 1);
	/* not https, another port, userinfo, another host */
	ck_assert_int_eq(
		drp_conf_token_realm_find(c, "http://gitlab.com/jwt/auth"), -1);
	ck_assert_int_eq(
		drp_conf_token_realm_find(c, "https://gitlab.com:8443/jwt"),
		-1);
	ck_assert_int_eq(
		drp_conf_token_realm_find(c, "https://u@gitlab.com/jwt"), -1);
	ck_assert_int_eq(
		drp_conf_token_realm_find(c, "https://quay.io/v2/auth"), -1);
	ck_assert_int_eq(drp_conf_token_realm_find(c, "https://"), -1);
	ck_assert(drp_conf_lists_registry(c, "reg.example.com", 443));
	ck_assert(drp_conf_lists_registry(c, "other.test", 5000));
	ck_assert(!drp_conf_lists_registry(c, "other.test", 443));
	ck_assert(!drp_conf_lists_registry(c, "gitlab.com", 443));
	drp_conf_free(c);

	const char *bad[] = {
		"t.ini:3: [registry \"a.io/team\"] token_realm: needs a "
		"section named by the realm's host alone (no repository "
		"prefix, no wildcard)",
		"t.ini:5: [registry \"b.io\"] token_realm: needs a plugin "
		"(the credentials it answers with)",
		"t.ini:9: [registry \"c.io\"] token_realm: cannot be combined "
		"with allow or users (the registries it answers for have no "
		"section to apply them; give each its own section)",
	};
	load_fails("[registry \"a.io/team\"]\nplugin = basic\n"
		   "token_realm = yes\n"
		   "[registry \"b.io\"]\ntoken_realm = yes\n"
		   "[registry \"c.io\"]\nplugin = basic\nallow = 10.0.0.0/8\n"
		   "token_realm = yes\n",
		   bad, N(bad));
}
END_TEST

/* [proxy] push: the default of every request whose sections do not say
 * (ALLOW_PUSH of the nginx-based image); a section's push still wins. */
START_TEST(proxy_push_default)
{
	drp_conf_t *c = load_ok("[proxy]\npush = deny\n"
				"[registry \"registry.test/open\"]\n"
				"push = client\n"
				"[registry \"quay.io\"]\n");
	ck_assert_int_eq(c->push, DRP_CONF_PUSH_DENY);
	drp_conf_regset_t set;
	drp_conf_regset_resolve(c, NULL, 0, &set);
	ck_assert_int_eq(set.push, DRP_CONF_PUSH_DENY);
	ck_assert_int_eq(set.push_sec, -1);
	unsigned open_sec = 0, quay = 1;
	drp_conf_regset_resolve(c, &open_sec, 1, &set);
	ck_assert_int_eq(set.push, DRP_CONF_PUSH_CLIENT);
	ck_assert_int_eq(set.push_sec, 0);
	drp_conf_regset_resolve(c, &quay, 1, &set);
	ck_assert_int_eq(set.push, DRP_CONF_PUSH_DENY);
	ck_assert_int_eq(set.push_sec, -1);
	drp_conf_free(c);
	c = load_ok("[proxy]\npush = proxy\n");
	ck_assert_int_eq(c->push, DRP_CONF_PUSH_PROXY);
	drp_conf_free(c);
	const char *bad[] = {
		"t.ini:2: [proxy] push: invalid value 'never' (expected "
		"client, proxy or deny)",
	};
	load_fails("[proxy]\npush = never\n", bad, N(bad));
}
END_TEST

/*
 * Tag lifetimes by regular expression (tag_ttl_match), as the nginx-based
 * image's MANIFEST_CACHE_* tiers: each expression is searched in the
 * manifest request's path /v2/<repository>/manifests/<tag> (PCRE2, case
 * sensitive, anchored only where the expression says so); the first
 * match wins, in file order; a tag none matches gets tag_ttl. Along a
 * section chain, the most specific section's expressions come first, and
 * the first section that sets tag_ttl ends the walk (its tag_ttl is the
 * answer for every other tag); [cache] comes last.
 */
static const char tiers_conf[] =
	"[cache]\n"
	"tag_ttl = 1h\n"
	"tag_ttl_match = 10m ^/v2/(.*)/manifests/(stable|nightly|production|"
	"test)\n"
	"tag_ttl_match = 60d ^/v2/(.*)/manifests/"
	"(.*)(\\d|\\.)+(.*)(\\d|\\.)+(.*)(\\d|\\.)+\n"
	"[registry \"docker.io\"]\n"
	"tag_ttl_match = 1m /manifests/edge$\n"
	"tag_ttl_match = 2m ^/v2/library/\n"
	"[registry \"docker.io/acme\"]\n"
	"tag_ttl = 0\n"
	"[registry \"docker.io/beta\"]\n"
	"tag_ttl_match = 3m /manifests/[a-z]+-rc\\d+$\n"
	"tag_ttl = 5m\n";

static const struct {
	const char *repo, *tag;
	unsigned chain[3];
	unsigned n;
	double ttl;
} tier_cases[] = {
	/* no section: [cache] expressions, the primary tier */
	{"team/app", "stable", {0}, 0, 600},
	/* the old image's regex is not anchored at the end */
	{"team/app", "stable-alpine", {0}, 0, 600},
	/* ... but at the tag's start: "unstable" is not a primary tag */
	{"team/app", "unstable", {0}, 0, 3600},
	/* the secondary tier: three digits or dots */
	{"team/app", "1.2.3", {0}, 0, 60 * 86400},
	{"team/app", "v10.4", {0}, 0, 60 * 86400},
	/* two are not enough: the default */
	{"team/app", "v1", {0}, 0, 3600},
	{"team/app", "latest", {0}, 0, 3600},
	/* case matters, as in nginx's "location ~" */
	{"team/app", "STABLE", {0}, 0, 3600},
	/* docker.io: its own expressions first, then [cache]'s */
	{"library/nginx", "edge", {0}, 1, 60},
	{"library/nginx", "latest", {0}, 1, 120},
	{"other/x", "stable", {0}, 1, 600},
	{"other/x", "latest", {0}, 1, 3600},
	/* docker.io/acme sets tag_ttl: nothing below it applies */
	{"acme/app", "stable", {1, 0}, 2, 0},
	{"acme/app", "edge", {1, 0}, 2, 0},
	/* docker.io/beta: its expression, else its own tag_ttl */
	{"beta/app", "beta-rc1", {2, 0}, 2, 180},
	{"beta/app", "edge", {2, 0}, 2, 300},
	{"beta/app", "stable", {2, 0}, 2, 300},
};

START_TEST(tag_ttl_tiers)
{
	drp_conf_t *c = load_ok(tiers_conf);
	ck_assert_uint_eq(c->n_tag_ttl_rules, 2);
	ck_assert_uint_eq(c->tag_ttl_rules[1].line, 4);
	ck_assert_uint_eq(c->registry[0].n_tag_ttl_rules, 2);
	drp_conf_regset_t set;
	drp_conf_regset_resolve(c, tier_cases[_i].chain, tier_cases[_i].n,
				&set);
	double got = drp_conf_tag_ttl(c, &set, tier_cases[_i].repo,
				      tier_cases[_i].tag);
	ck_assert_msg(got == tier_cases[_i].ttl, "%s:%s: got %g, want %g",
		      tier_cases[_i].repo, tier_cases[_i].tag, got,
		      tier_cases[_i].ttl);
	/* No resolution (a request outside any registry): [cache]. */
	if (tier_cases[_i].n == 0)
		ck_assert(drp_conf_tag_ttl(c, NULL, tier_cases[_i].repo,
					   tier_cases[_i].tag) ==
			  tier_cases[_i].ttl);
	drp_conf_free(c);
}
END_TEST

/* Expressions are compiled at load: a bad one is a load error with
 * PCRE2's message and where in the expression it is. */
START_TEST(tag_ttl_match_errors)
{
	const char *bad_re[] = {
		"t.ini:3: [cache] tag_ttl_match: invalid regular expression "
		"'(stable' at offset 7: missing closing parenthesis",
	};
	load_fails("[cache]\ntag_ttl_match = 1m ^/v2/\n"
		   "tag_ttl_match = 1m (stable\n",
		   bad_re, N(bad_re));
	const char *no_re[] = {
		"t.ini:2: [cache] tag_ttl_match: expected DURATION REGEX "
		"(e.g. 10m /manifests/(stable|nightly)$)",
	};
	load_fails("[cache]\ntag_ttl_match = 10m\n", no_re, N(no_re));
	const char *bad_d[] = {
		"t.ini:2: [registry \"x.io\"] tag_ttl_match: invalid duration "
		"'soon' (expected e.g. 30, 0.5, 30s, 5m, 2h, 1d)",
	};
	load_fails("[registry \"x.io\"]\ntag_ttl_match = soon ^/v2/\n", bad_d,
		   N(bad_d));
}
END_TEST

/* The one lookup of a [registry] section's keys (the conf module and the
 * plugin layer both use it): the item as written, NULL if absent or if
 * there is no section at all (a plugin's own ctx has none). */
START_TEST(registry_get)
{
	drp_conf_t *c = load_ok("[registry \"quay.io\"]\n"
				"plugin = quay\n"
				"x = 1\n"
				"tag_ttl = 1m\n");
	const drp_conf_registry_t *r = &c->registry[0];
	const drp_conf_item_t *it = drp_conf_registry_get(r, "x");
	ck_assert_ptr_eq(it, &r->items[1]);
	ck_assert_str_eq(it->value, "1");
	ck_assert_uint_eq(it->line, 3);
	ck_assert_ptr_eq(drp_conf_registry_get(r, "tag_ttl"), &r->items[2]);
	ck_assert_ptr_null(drp_conf_registry_get(r, "X"));
	ck_assert_ptr_null(drp_conf_registry_get(r, "x_file"));
	ck_assert_ptr_null(drp_conf_registry_get(NULL, "plugin"));
	drp_conf_free(c);
}
END_TEST

/* The core's [registry] keys are one table of the plugins' kind. */
START_TEST(registry_core_keys)
{
	static const char *const core[] = {
		"plugin", "username", "password", "password_file",
		"allow",  "users",    "push",	  "tag_ttl"};
	for (unsigned i = 0; i < N(core); i++) {
		const drp_plugin_key_t *k = drp_schema_registry_key(core[i]);
		ck_assert_msg(k != NULL, "no core key %s", core[i]);
		ck_assert_str_eq(k->key, core[i]);
		ck_assert_ptr_nonnull(k->help);
	}
	ck_assert_int_eq(drp_schema_registry_key("tag_ttl")->type,
			 DRP_KEY_DURATION);
	ck_assert_int_eq(drp_schema_registry_key("password_file")->type,
			 DRP_KEY_PATH);
	ck_assert_uint_eq(drp_schema_registry_key("password")->flags,
			  DRP_KEY_SECRET | DRP_KEY_FILE);
	ck_assert_ptr_null(drp_schema_registry_key("token_ttl"));
	ck_assert_ptr_null(drp_schema_registry_key("Plugin"));
	ck_assert_ptr_null(drp_schema_registry_key("username_file"));

	static const drp_plugin_key_t keys[] = {
		{.key = "count", .type = DRP_KEY_INT, .def = "3"},
		{.key = "tag_ttl", .type = DRP_KEY_INT},
		{.key = NULL},
	};
	ck_assert_ptr_eq(drp_schema_key_find(keys, "count"), &keys[0]);
	ck_assert_ptr_eq(drp_schema_key_find(keys, "tag_ttl"), &keys[1]);
	ck_assert_ptr_null(drp_schema_key_find(keys, "cou"));
	ck_assert_ptr_null(drp_schema_key_find(NULL, "count"));
}
END_TEST

/* A plugin's table is checked by the schema, in the messages of the
 * conf's own keys: FILE:LINE: [registry "NAME"] KEY: ... */
START_TEST(registry_plugin_keys)
{
	static const drp_plugin_key_t keys[] = {
		{.key = "count", .type = DRP_KEY_INT, .min = 1, .max = 10},
		{.key = "ttl", .type = DRP_KEY_DURATION},
		{.key = "strict", .type = DRP_KEY_BOOL},
		{.key = "ca", .type = DRP_KEY_PATH},
		{.key = "token",
		 .type = DRP_KEY_STRING,
		 .flags = DRP_KEY_SECRET | DRP_KEY_FILE},
		{.key = "region",
		 .type = DRP_KEY_STRING,
		 .flags = DRP_KEY_REQUIRED},
		/* A core key: the plugin adds REQUIRED, not a type. */
		{.key = "username",
		 .type = DRP_KEY_INT,
		 .flags = DRP_KEY_REQUIRED},
		{.key = NULL},
	};
	drp_conf_t *c = load_ok("[registry \"quay.io\"]\n"
				"plugin = x\n"
				"count = 11\n"
				"ttl = soon\n"
				"strict = maybe\n"
				"ca =\n"
				"token = s3cret\n"
				"token_file = /t\n"
				"colour = red\n"
				"username = acme\n"
				"tag_ttl = 1m\n"
				"[registry \"ghcr.io\"]\n"
				"plugin = x\n"
				"region = eu\n"
				"count = 10\n"
				"token_file = /t\n"
				"[registry \"gcr.io\"]\n");
	static const char *const want[] = {
		"t.ini:3: [registry \"quay.io\"] count: value '11' out of "
		"range 1..10",
		"t.ini:4: [registry \"quay.io\"] ttl: value 'soon' is not a "
		"duration",
		"t.ini:5: [registry \"quay.io\"] strict: value 'maybe' is not "
		"a boolean",
		"t.ini:6: [registry \"quay.io\"] ca: empty file name",
		"t.ini:8: [registry \"quay.io\"] token_file: conflicts with "
		"token",
		"t.ini:9: [registry \"quay.io\"] colour: unknown key for "
		"plugin "
		"'x'",
		"t.ini:1: [registry \"quay.io\"] region: required by plugin "
		"'x'",
	};
	drp_conf_errors_t errs = {0};
	ck_assert_uint_eq(
		drp_schema_check_plugin(&c->registry[0], "x", keys, &errs),
		N(want));
	for (unsigned i = 0; i < N(want); i++)
		ck_assert_str_eq(errs.msg[i], want[i]);
	drp_conf_errors_free(&errs);
	/* Everything declared, in range, required ones set: no error; the
	 * required username is missing. */
	ck_assert_uint_eq(
		drp_schema_check_plugin(&c->registry[1], "x", keys, &errs), 1);
	ck_assert_str_eq(errs.msg[0], "t.ini:12: [registry \"ghcr.io\"] "
				      "username: required by plugin 'x'");
	drp_conf_errors_free(&errs);
	/* No plugin, no keys: nothing to say of an empty section. */
	ck_assert_uint_eq(
		drp_schema_check_plugin(&c->registry[2], NULL, NULL, &errs), 0);
	ck_assert_uint_eq(errs.n, 0);
	drp_conf_free(c);
}
END_TEST

Suite *conf_suite(void)
{
	Suite *s = suite_create("conf");
	TCase *tc = tcase_create("values");
	tcase_add_loop_test(tc, parse_size_table, 0, N(size_cases));
	tcase_add_loop_test(tc, parse_duration_table, 0, N(duration_cases));
	tcase_add_loop_test(tc, parse_bool_table, 0, N(bool_cases));
	tcase_add_test(tc, error_format);
	tcase_add_test(tc, mirror_keys);
	tcase_add_test(tc, parent_keys);
	tcase_add_test(tc, resolve_addresses);
	tcase_add_test(tc, registry_key_error);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_loop_test(tc, bad_config_table, 0, N(bad_cases));
	tcase_add_test(tc, all_errors_reported);
	tcase_add_test(tc, errors_append);
	suite_add_tcase(s, tc);

	tc = tcase_create("load");
	tcase_add_test(tc, full_config);
	tcase_add_test(tc, max_age_and_admin_socket);
	tcase_add_test(tc, keep_mapped_size);
	tcase_add_test(tc, tcp_congestion_name);
	tcase_add_test(tc, admin_and_log_format);
	tcase_add_test(tc, proxy_protocol_from);
	tcase_add_test(tc, cache_s3);
	tcase_add_test(tc, cache_s3_local_tier);
	tcase_add_test(tc, fleet_redis);
	tcase_add_test(tc, ca_passphrase_and_drain);
	tcase_add_test(tc, value_syntax);
	tcase_add_test(tc, long_line);
	tcase_add_test(tc, load_file);
	tcase_add_test(tc, defaults_values);
	tcase_add_test(tc, defaults_round_trip);
	tcase_add_test(tc, registry_typed);
	tcase_add_test(tc, registry_get);
	tcase_add_test(tc, registry_core_keys);
	tcase_add_test(tc, registry_plugin_keys);
	tcase_add_test(tc, proxy_push_default);
	tcase_add_test(tc, token_realm_find);
	tcase_add_loop_test(tc, tag_ttl_tiers, 0, N(tier_cases));
	tcase_add_test(tc, tag_ttl_match_errors);
	/* Runs in its own process (Check's default fork mode) and must
	 * fail; under CK_FORK=no the failure would end the run, so skip. */
	const char *fork = getenv("CK_FORK");
	if (!fork || strcmp(fork, "no") != 0)
		tcase_add_exit_test(tc, defaults_compare_can_fail, 1);
	suite_add_tcase(s, tc);

	tc = tcase_create("example");
	tcase_add_test(tc, example_loads);
	tcase_add_test(tc, example_uncommented_loads);
	suite_add_tcase(s, tc);
	return s;
}
