/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/select.h"

Suite *plugin_select_suite(void);

/* The sections of a realistic configuration, indexed by position. */
static const char *const sections[] = {
	"docker.io",			/* 0 */
	"docker.io/acme",		/* 1 */
	"docker.io/acme/team",		/* 2 */
	"docker.io/library",		/* 3 */
	"quay.io",			/* 4 */
	"*.pkg.dev",			/* 5 */
	"europe-docker.pkg.dev",	/* 6 */
	"europe-docker.pkg.dev/proj-a", /* 7 */
	"*.docker.pkg.dev",		/* 8 */
	"registry.local:5000",		/* 9 */
	"registry.local",		/* 10 */
	"gcr.io",			/* 11 */
	"*.gcr.io",			/* 12 */
	"Harbor.Example.COM/Team/",	/* 13 */
};

static drp_select_t *sel;

static void setup(void)
{
	sel = drp_select_new();
	for (unsigned i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		ck_assert_int_eq(
			drp_select_add(sel, sections[i], i, NULL, NULL), 0);
}

static void teardown(void)
{
	drp_select_free(sel);
}

static const struct {
	const char *host;
	unsigned port;
	const char *repo;
	int want;
} lookups[] = {
	/* the whole of Docker Hub */
	{"docker.io", 443, "someone/app", 0},
	/* a longer prefix wins: the acme namespace has its own account */
	{"docker.io", 443, "acme/app", 1},
	/* a one-word name is library/acme, not the acme namespace */
	{"docker.io", 443, "acme", 3},
	/* a prefix equal to the whole repository name matches */
	{"docker.io", 443, "acme/team", 2},
	/* component boundary: acmex is not under acme */
	{"docker.io", 443, "acmex/app", 0},
	/* the longest of several nested prefixes */
	{"docker.io", 443, "acme/team/app", 2},
	/* "acme/teamx" is under acme but not under acme/team */
	{"docker.io", 443, "acme/teamx/app", 1},
	/* alias hosts as clients actually contact them */
	{"registry-1.docker.io", 443, "acme/app", 1},
	{"index.docker.io", 0, "someone/app", 0},
	/* host names are case-insensitive, a trailing dot is ignored */
	{"Registry-1.Docker.IO.", 443, "acme/app", 1},
	/* one-word names are library/ images */
	{"docker.io", 443, "alpine", 3},
	{"registry-1.docker.io", 443, "library/alpine", 3},
	/* /v2/ itself: only host-wide sections */
	{"registry-1.docker.io", 443, NULL, 0},
	/* the alias table applies to the default port only */
	{"docker.io", 8443, "acme/app", -ENOENT},
	/* exact host */
	{"quay.io", 443, "org/app", 4},
	/* wildcard: any host under pkg.dev */
	{"us-docker.pkg.dev", 443, "p/r/img", 5},
	/* the longer wildcard domain wins */
	{"asia.docker.pkg.dev", 443, "p/r/img", 8},
	/* an exact host beats every wildcard */
	{"europe-docker.pkg.dev", 443, "proj-b/r/img", 6},
	/* exact host with prefix */
	{"europe-docker.pkg.dev", 443, "proj-a/r/img", 7},
	/* a wildcard needs at least one label in front */
	{"pkg.dev", 443, "x", -ENOENT},
	/* and matches only at a label boundary */
	{"evilpkg.dev", 443, "x", -ENOENT},
	/* several labels in front are fine */
	{"a.b.gcr.io", 443, "p/img", 12},
	{"gcr.io", 443, "p/img", 11},
	/* host:port sections match only that port */
	{"registry.local", 5000, "x/y", 9},
	{"registry.local", 443, "x/y", 10},
	{"registry.local", 0, "x/y", 10},
	{"registry.local", 5001, "x/y", -ENOENT},
	/* upper case and a trailing slash in the section name */
	{"harbor.example.com", 443, "team/app", 13},
	{"harbor.example.com", 443, "other/app", -ENOENT},
	/* unknown registry */
	{"ghcr.io", 443, "o/app", -ENOENT},
	/* IPv6 literal as the core reports it, no section for it */
	{"::1", 5000, "x", -ENOENT},
};

START_TEST(select_table)
{
	int got = drp_select_find(sel, lookups[_i].host,
				  (uint16_t)lookups[_i].port, lookups[_i].repo);
	ck_assert_msg(got == lookups[_i].want,
		      "case %d (%s:%u %s): %d, want %d", _i, lookups[_i].host,
		      lookups[_i].port,
		      lookups[_i].repo ? lookups[_i].repo : "(none)", got,
		      lookups[_i].want);
}
END_TEST

START_TEST(select_no_fallback_to_host_section)
{
	/* With only a prefix section, other repositories match nothing:
	 * selection never falls back across a prefix boundary. */
	drp_select_t *s = drp_select_new();
	ck_assert_int_eq(drp_select_add(s, "docker.io/acme", 7, NULL, NULL), 0);
	ck_assert_int_eq(drp_select_find(s, "docker.io", 443, "acme/x"), 7);
	ck_assert_int_eq(drp_select_find(s, "docker.io", 443, "acmex/x"),
			 -ENOENT);
	ck_assert_int_eq(drp_select_find(s, "docker.io", 443, NULL), -ENOENT);
	/* but the host is intercepted because a section names it */
	ck_assert(drp_select_has_host(s, "registry-1.docker.io", 443));
	ck_assert(!drp_select_has_host(s, "quay.io", 443));
	drp_select_free(s);
}
END_TEST

START_TEST(select_duplicates)
{
	drp_select_t *s = drp_select_new();
	const char *why = NULL;
	unsigned dup = 99;
	ck_assert_int_eq(drp_select_add(s, "docker.io/acme", 0, &why, &dup), 0);
	/* the same after the alias table */
	ck_assert_int_eq(
		drp_select_add(s, "index.docker.io/acme/", 1, &why, &dup),
		-EEXIST);
	ck_assert_uint_eq(dup, 0);
	ck_assert_str_eq(why, "same registry and prefix as an earlier section");
	/* ":443" is the default port */
	ck_assert_int_eq(drp_select_add(s, "quay.io", 2, NULL, NULL), 0);
	ck_assert_int_eq(drp_select_add(s, "QUAY.io:443", 3, NULL, &dup),
			 -EEXIST);
	ck_assert_uint_eq(dup, 2);
	drp_select_free(s);
}
END_TEST

static const struct {
	const char *name;
	const char *why; /* NULL: valid */
	const char *registry, *host, *prefix;
	unsigned port;
	bool wildcard;
} names[] = {
	/* the Docker Hub aliases all become docker.io */
	{"registry-1.docker.io/acme", NULL, "docker.io", "docker.io", "acme",
	 443, false},
	{"index.docker.io", NULL, "docker.io", "docker.io", "", 443, false},
	/* port kept unless 443 */
	{"reg.example:5000/a/b", NULL, "reg.example:5000", "reg.example", "a/b",
	 5000, false},
	{"reg.example:443", NULL, "reg.example", "reg.example", "", 443, false},
	/* a wildcard with port */
	{"*.pkg.dev:8443/p", NULL, "*.pkg.dev:8443", "pkg.dev", "p", 8443,
	 true},
	/* IPv6 literal with port */
	{"[::1]:5000/x", NULL, "[::1]:5000", "[::1]", "x", 5000, false},
	/* bad names, with the reason given */
	{.name = "", .why = "empty registry host"},
	{.name = "/acme", .why = "empty registry host"},
	{.name = "docker.io//acme", .why = "empty repository component"},
	{.name = "docker.io/ac me",
	 .why = "bad character in repository prefix"},
	{.name = "docker.io:0", .why = "bad port"},
	{.name = "docker.io:70000", .why = "bad port"},
	{.name = "docker.io:", .why = "bad port"},
	{.name = "a.*.pkg.dev",
	 .why = "'*' is allowed only as the whole first label"},
	{.name = "*pkg.dev",
	 .why = "'*' is allowed only as the whole first label"},
	{.name = "-bad.example", .why = "bad registry host name"},
	{.name = "bad_host.example", .why = "bad registry host name"},
	{.name = "*.", .why = "bad registry host name"},
};

START_TEST(select_names)
{
	drp_select_name_t n;
	const char *why = NULL;
	int rc = drp_select_parse_name(names[_i].name, &n, &why);
	if (names[_i].why != NULL) {
		ck_assert_int_eq(rc, -EINVAL);
		ck_assert_str_eq(why, names[_i].why);
		return;
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(n.registry, names[_i].registry);
	ck_assert_str_eq(n.host, names[_i].host);
	ck_assert_str_eq(n.prefix, names[_i].prefix);
	ck_assert_uint_eq(n.port, names[_i].port);
	ck_assert(n.wildcard == names[_i].wildcard);
	drp_select_name_free(&n);
}
END_TEST

START_TEST(select_helpers)
{
	char *s = drp_select_canonical_registry("INDEX.docker.io", 0);
	ck_assert_str_eq(s, "docker.io");
	free(s);
	s = drp_select_canonical_registry("registry-1.docker.io", 5000);
	ck_assert_str_eq(s, "registry-1.docker.io:5000");
	free(s);
	s = drp_select_canonical_registry("fe80::1", 5000);
	ck_assert_str_eq(s, "[fe80::1]:5000");
	free(s);
	ck_assert_str_eq(drp_select_upstream_host("docker.io"),
			 "registry-1.docker.io");
	ck_assert_str_eq(drp_select_upstream_host("quay.io"), "quay.io");
	s = drp_select_canonical_repo("docker.io", "alpine");
	ck_assert_str_eq(s, "library/alpine");
	free(s);
	s = drp_select_canonical_repo("docker.io", "acme/app");
	ck_assert_str_eq(s, "acme/app");
	free(s);
	/* library/ is a Docker Hub convention only */
	s = drp_select_canonical_repo("quay.io", "alpine");
	ck_assert_str_eq(s, "alpine");
	free(s);
}
END_TEST

Suite *plugin_select_suite(void)
{
	Suite *s = suite_create("plugin_select");
	TCase *tc = tcase_create("select");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, select_table, 0,
			    (int)(sizeof(lookups) / sizeof(lookups[0])));
	tcase_add_test(tc, select_no_fallback_to_host_section);
	tcase_add_test(tc, select_duplicates);
	tcase_add_loop_test(tc, select_names, 0,
			    (int)(sizeof(names) / sizeof(names[0])));
	tcase_add_test(tc, select_helpers);
	suite_add_tcase(s, tc);
	return s;
}
