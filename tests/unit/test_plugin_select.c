/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
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

/* The whole chain of matching sections, most specific first (the sections
 * of the fixture). */
static const struct {
	const char *host;
	unsigned port;
	const char *repo;
	int want[4]; /* -1 ends */
} chains[] = {
	/* nested prefixes through an alias host: longest first */
	{"registry-1.docker.io", 443, "acme/team/app", {2, 1, 0, -1}},
	{"index.docker.io", 443, "acme/app", {1, 0, -1}},
	/* a one-word name is library/: the library section, then the host */
	{"docker.io", 443, "alpine", {3, 0, -1}},
	/* /v2/: host-wide sections only */
	{"registry-1.docker.io", 443, NULL, {0, -1}},
	/* exact host, its prefix section, then the wildcard that also
	 * matches it */
	{"europe-docker.pkg.dev", 443, "proj-a/r/img", {7, 6, 5, -1}},
	/* the longer wildcard domain before the shorter */
	{"asia.docker.pkg.dev", 443, "p/img", {8, 5, -1}},
	/* exact host before the wildcard of its parent domain: gcr.io is
	 * not under *.gcr.io, eu.gcr.io is */
	{"gcr.io", 443, "p/img", {11, -1}},
	{"eu.gcr.io", 443, "p/img", {12, -1}},
	/* nothing */
	{"ghcr.io", 443, "o/app", {-1}},
};

START_TEST(select_chain)
{
	unsigned got[DRP_SELECT_CHAIN_MAX];
	unsigned n = drp_select_chain(
		sel, chains[_i].host, (uint16_t)chains[_i].port,
		chains[_i].repo, got, DRP_SELECT_CHAIN_MAX);
	unsigned want_n = 0;
	while (chains[_i].want[want_n] >= 0)
		want_n++;
	ck_assert_msg(n == want_n, "case %d: %u sections, want %u", _i, n,
		      want_n);
	for (unsigned i = 0; i < n; i++)
		ck_assert_msg((int)got[i] == chains[_i].want[i],
			      "case %d: [%u] = %u, want %d", _i, i, got[i],
			      chains[_i].want[i]);
	/* the head of the chain is what the plugin selection picks */
	int find = drp_select_find(sel, chains[_i].host,
				   (uint16_t)chains[_i].port, chains[_i].repo);
	ck_assert_int_eq(find, n > 0 ? (int)got[0] : -ENOENT);
	/* a short buffer keeps the most specific ones */
	if (n > 1) {
		unsigned one;
		ck_assert_uint_eq(drp_select_chain(sel, chains[_i].host,
						   (uint16_t)chains[_i].port,
						   chains[_i].repo, &one, 1),
				  1);
		ck_assert_uint_eq(one, got[0]);
	}
}
END_TEST

/* Per-registry settings resolved from a loaded configuration with the
 * selection: aliases, wildcards, longest prefix, inheritance of tag_ttl
 * and push only. */
static const char resolve_ini[] =
	"[cache]\n"
	"tag_ttl = 5m\n"
	"[registry \"docker.io\"]\n" /* 0 */
	"tag_ttl = 15m\n"
	"push = deny\n"
	"allow = 10.0.0.0/8\n"
	"username = hubuser\n"
	"password = hubpass\n"
	"[registry \"docker.io/acme\"]\n" /* 1: sets nothing that inherits */
	"allow = 192.168.0.0/16\n"
	"[registry \"index.docker.io/acme/team\"]\n" /* 2: alias name */
	"tag_ttl = 1m\n"
	"[registry \"docker.io/acme/team/ci\"]\n" /* 3 */
	"push = client\n"
	"[registry \"*.gcr.io\"]\n" /* 4 */
	"tag_ttl = 2h\n"
	"push = proxy\n"
	"allow = 10.1.0.0/16\n"
	"[registry \"eu.gcr.io\"]\n" /* 5: exact, below the wildcard */
	"[registry \"gcr.io\"]\n"    /* 6: not under *.gcr.io */
	"tag_ttl = 0\n"
	"[registry \"registry-1.docker.io/solo\"]\n" /* 7 */
	"tag_ttl = 30s\n";

static const struct {
	const char *host;
	const char *repo;
	int sec;
	double tag_ttl;
	enum drp_conf_push push;
	int tag_ttl_sec, push_sec;
} resolves[] = {
	/* [registry "docker.io"] reached by the name clients contact */
	{"registry-1.docker.io", "someone/app", 0, 900, DRP_CONF_PUSH_DENY, 0,
	 0},
	{"index.docker.io", "alpine", 0, 900, DRP_CONF_PUSH_DENY, 0, 0},
	{"docker.io", NULL, 0, 900, DRP_CONF_PUSH_DENY, 0, 0},
	/* docker.io/acme inherits tag_ttl and push from docker.io */
	{"registry-1.docker.io", "acme/app", 1, 900, DRP_CONF_PUSH_DENY, 0, 0},
	/* its own tag_ttl, push still from docker.io two levels up */
	{"registry-1.docker.io", "acme/team/app", 2, 60, DRP_CONF_PUSH_DENY, 2,
	 0},
	/* its own push, tag_ttl from acme/team (the next shorter that sets
	 * it), not from docker.io */
	{"docker.io", "acme/team/ci/x", 3, 60, DRP_CONF_PUSH_CLIENT, 2, 3},
	/* a section named by an alias host, reached by the canonical name */
	{"docker.io", "solo/app", 7, 30, DRP_CONF_PUSH_DENY, 7, 0},
	/* wildcard */
	{"us.gcr.io", "p/img", 4, 7200, DRP_CONF_PUSH_PROXY, 4, 4},
	{"Eu.Gcr.Io.", "p/img", 5, 7200, DRP_CONF_PUSH_PROXY, 4, 4},
	/* the apex is not under the wildcard: only its own section */
	{"gcr.io", "p/img", 6, 0, DRP_CONF_PUSH_CLIENT, 6, -1},
	/* no section: [cache] tag_ttl, push = client */
	{"quay.io", "o/app", -1, 300, DRP_CONF_PUSH_CLIENT, -1, -1},
};

START_TEST(select_resolve)
{
	drp_conf_errors_t errs = {0};
	drp_conf_t *c = drp_conf_load_string("t.ini", resolve_ini, &errs);
	ck_assert_msg(c != NULL, "%s", errs.n ? errs.msg[0] : "");
	drp_select_t *s = drp_select_new();
	for (unsigned i = 0; i < c->n_registry; i++)
		ck_assert_int_eq(
			drp_select_add(s, c->registry[i].name, i, NULL, NULL),
			0);
	unsigned chain[DRP_SELECT_CHAIN_MAX];
	unsigned n =
		drp_select_chain(s, resolves[_i].host, 443, resolves[_i].repo,
				 chain, DRP_SELECT_CHAIN_MAX);
	drp_conf_regset_t r;
	drp_conf_regset_resolve(c, chain, n, &r);
	ck_assert(r.valid);
	ck_assert_msg(r.sec == resolves[_i].sec, "case %d: section %d", _i,
		      r.sec);
	ck_assert_msg(r.tag_ttl == resolves[_i].tag_ttl, "case %d: tag_ttl %g",
		      _i, r.tag_ttl);
	ck_assert_msg(r.push == resolves[_i].push, "case %d: push %d", _i,
		      (int)r.push);
	ck_assert_int_eq(r.tag_ttl_sec, resolves[_i].tag_ttl_sec);
	ck_assert_int_eq(r.push_sec, resolves[_i].push_sec);
	drp_select_free(s);
	drp_conf_free(c);
}
END_TEST

/* allow, users and credentials are the selected section's alone: a
 * section that does not set them has none, whatever a shorter one has. */
START_TEST(select_resolve_no_inherit)
{
	drp_conf_errors_t errs = {0};
	drp_conf_t *c = drp_conf_load_string("t.ini",
					     "[proxy]\n"
					     "users_file = u\n"
					     "[registry \"docker.io\"]\n"
					     "allow = 10.0.0.0/8\n"
					     "users = alice\n"
					     "username = hubuser\n"
					     "password = hubpass\n"
					     "tag_ttl = 1h\n"
					     "[registry \"docker.io/acme\"]\n"
					     "push = proxy\n",
					     &errs);
	ck_assert_msg(c != NULL, "%s", errs.n ? errs.msg[0] : "");
	drp_select_t *s = drp_select_new();
	for (unsigned i = 0; i < c->n_registry; i++)
		ck_assert_int_eq(
			drp_select_add(s, c->registry[i].name, i, NULL, NULL),
			0);
	unsigned chain[DRP_SELECT_CHAIN_MAX];
	unsigned n = drp_select_chain(s, "registry-1.docker.io", 443,
				      "acme/app", chain, DRP_SELECT_CHAIN_MAX);
	ck_assert_uint_eq(n, 2);
	drp_conf_regset_t r;
	drp_conf_regset_resolve(c, chain, n, &r);
	ck_assert_int_eq(r.sec, 1);
	ck_assert(r.tag_ttl == 3600);
	ck_assert_int_eq(r.push, DRP_CONF_PUSH_PROXY);
	const drp_conf_registry_t *sec = &c->registry[r.sec];
	ck_assert(!sec->has_allow);
	ck_assert(!sec->has_users);
	ck_assert_ptr_null(drp_conf_registry_get(sec, "username"));
	ck_assert_ptr_null(drp_conf_registry_get(sec, "password"));
	/* while the host section has them */
	ck_assert(c->registry[0].has_allow);
	ck_assert_uint_eq(c->registry[0].n_users, 1);
	drp_select_free(s);
	drp_conf_free(c);
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
	tcase_add_loop_test(tc, select_chain, 0,
			    (int)(sizeof(chains) / sizeof(chains[0])));
	tcase_add_loop_test(tc, select_resolve, 0,
			    (int)(sizeof(resolves) / sizeof(resolves[0])));
	tcase_add_test(tc, select_resolve_no_inherit);
	suite_add_tcase(s, tc);
	return s;
}
