/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "conf/envconf.h"

Suite *envconf_suite(void);

/* A test's environment: NAME=VALUE strings, NULL-terminated. */
static const char *table_get(const char *name, void *ctx)
{
	size_t n = strlen(name);
	for (const char *const *e = ctx; *e; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

static char state[] = "/tmp/drp-envconf-XXXXXX";

static void setup(void)
{
	strcpy(state, "/tmp/drp-envconf-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(state));
}

static void teardown(void)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state);
	ck_assert_int_eq(system(cmd), 0);
}

static const char *item(const drp_conf_registry_t *r, const char *key)
{
	const drp_conf_item_t *it = drp_conf_registry_get(r, key);
	return it ? it->value : NULL;
}

static const drp_conf_registry_t *section(const drp_conf_t *c, const char *name)
{
	for (unsigned i = 0; i < c->n_registry; i++)
		if (strcmp(c->registry[i].name, name) == 0)
			return &c->registry[i];
	ck_abort_msg("no section %s", name);
	return NULL;
}

static void assert_secret(const char *path, const char *want)
{
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	FILE *f = fopen(path, "r");
	char buf[512] = "";
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	ck_assert_str_eq(buf, want);
}

/* The old image's variables as its users set them. */
START_TEST(translate_old_image)
{
	static const char json[] =
		"{\"type\": \"service_account\", \"private_key\": \"k:v\"}";
	char auth[512];
	snprintf(auth, sizeof(auth),
		 "auth.docker.io::hubuser::hub pass:with:colons;;;"
		 "quay.io::robot+x::quaypass;;;"
		 "gcr.io::_json_key::%s;;;"
		 "registry.example.net::alice::s3cret",
		 json);
	char auth_var[600];
	snprintf(auth_var, sizeof(auth_var), "AUTH_REGISTRIES=%s", auth);
	const char *env[] = {
		"REGISTRIES=quay.io gcr.io registry.example.net",
		auth_var,
		"AUTH_REGISTRIES_DELIMITER=;;;",
		"AUTH_REGISTRY_DELIMITER=::",
		"VERIFY_SSL=false",
		"CACHE_MAX_SIZE=32g",
		"DEBUG=true",
		"KEEPALIVE_TIMEOUT=300s",
		"PROXY_CONNECT_TIMEOUT=5s",
		"ENABLE_MANIFEST_CACHE=true",
		"ALLOW_PUSH=true",
		NULL,
	};
	char *ini = NULL, *unsup = NULL, err[256] = "";
	int r = drp_envconf_build(table_get, env, state, &ini, &unsup, err,
				  sizeof(err));
	ck_assert_msg(r == 0, "%s", err);
	/* No secret in the text (--print-config, logs). */
	ck_assert_ptr_null(strstr(ini, "hub pass"));
	ck_assert_ptr_null(strstr(ini, "quaypass"));
	ck_assert_ptr_null(strstr(ini, "s3cret"));
	ck_assert_ptr_null(strstr(ini, "private_key"));
	ck_assert_str_eq(unsup, "");

	drp_conf_errors_t errs = {0};
	drp_conf_t *c = drp_conf_load_string("(environment)", ini, &errs);
	ck_assert_msg(c != NULL, "%s\n%s", errs.n ? errs.msg[0] : "", ini);
	ck_assert_uint_eq(c->n_registries, 3);
	ck_assert_str_eq(c->registries[2], "registry.example.net");
	ck_assert(!c->verify_upstream);
	ck_assert_int_eq(c->log_level, 7);
	ck_assert_uint_eq(c->cache_max_size, 32ULL << 30);
	ck_assert_str_eq(c->cache_dir, "/docker_mirror_cache");
	ck_assert_str_eq(c->ca_dir, "/ca");
	ck_assert_str_eq(c->ca_key_passphrase, "foobar");
	ck_assert_str_eq(c->listen[0].text, "[::]:3128");
	ck_assert_double_eq(c->idle_timeout, 300);
	ck_assert_double_eq(c->connect_timeout, 5);
	ck_assert_double_eq(c->drain_timeout, 8);
	ck_assert_uint_eq(c->n_registry, 4);

	const drp_conf_registry_t *s = section(c, "docker.io");
	ck_assert_str_eq(item(s, "plugin"), "dockerhub");
	ck_assert_str_eq(item(s, "username"), "hubuser");
	assert_secret(item(s, "password_file"), "hub pass:with:colons");
	s = section(c, "quay.io");
	ck_assert_str_eq(item(s, "plugin"), "quay");
	ck_assert_str_eq(item(s, "username"), "robot+x");
	assert_secret(item(s, "password_file"), "quaypass");
	s = section(c, "gcr.io");
	ck_assert_str_eq(item(s, "plugin"), "gcr");
	ck_assert_ptr_null(item(s, "username"));
	assert_secret(item(s, "key_file"), json);
	ck_assert(!s->token_realm);
	s = section(c, "registry.example.net");
	ck_assert_str_eq(item(s, "plugin"), "basic");
	/* The old image sent these credentials to every request for the
	 * host, token requests included: a realm's host (GitLab's) is
	 * served by them for the registries whose challenges name it. */
	ck_assert(s->token_realm);
	ck_assert_str_eq(item(s, "username"), "alice");
	assert_secret(item(s, "password_file"), "s3cret");
	drp_conf_free(c);
	drp_conf_errors_free(&errs);
	free(ini);
	free(unsup);
}
END_TEST

/* The defaults delimiters; nothing set but the essentials. */
START_TEST(translate_defaults)
{
	const char *env[] = {"AUTH_REGISTRIES=auth.docker.io:u:p ghcr.io:o:t",
			     NULL};
	char *ini = NULL, *unsup = NULL, err[256] = "";
	ck_assert_int_eq(drp_envconf_build(table_get, env, state, &ini, &unsup,
					   err, sizeof(err)),
			 0);
	ck_assert_str_eq(unsup, "");
	drp_conf_errors_t errs = {0};
	drp_conf_t *c = drp_conf_load_string("(environment)", ini, &errs);
	ck_assert_msg(c != NULL, "%s", errs.n ? errs.msg[0] : "");
	ck_assert(c->verify_upstream);
	ck_assert_uint_eq(c->n_registry, 2);
	ck_assert_str_eq(item(section(c, "ghcr.io"), "plugin"), "basic");
	assert_secret(item(section(c, "ghcr.io"), "password_file"), "t");
	drp_conf_free(c);
	drp_conf_errors_free(&errs);
	free(ini);
	free(unsup);
}
END_TEST

/* A malformed entry: an error that names the entry, not its secret. */
START_TEST(translate_bad_entry)
{
	const char *env[] = {"AUTH_REGISTRIES=quay.io:u:p hostonly-topsecret",
			     NULL};
	char *ini = NULL, *unsup = NULL, err[256] = "";
	ck_assert_int_eq(drp_envconf_build(table_get, env, state, &ini, &unsup,
					   err, sizeof(err)),
			 -1);
	ck_assert_str_eq(err, "AUTH_REGISTRIES: entry 2 is not "
			      "HOST:USER:PASSWORD");
	ck_assert_ptr_null(ini);
	const char *env2[] = {"REGISTRIES=a.io\n[registry \"x\"]", NULL};
	ck_assert_int_eq(drp_envconf_build(table_get, env2, state, &ini, &unsup,
					   err, sizeof(err)),
			 -1);
	ck_assert_str_eq(err, "REGISTRIES: invalid value");
	/* A state directory others can enter is refused. */
	ck_assert_int_eq(chmod(state, 0755), 0);
	const char *env3[] = {"AUTH_REGISTRIES=quay.io:u:p", NULL};
	ck_assert_int_eq(drp_envconf_build(table_get, env3, state, &ini, &unsup,
					   err, sizeof(err)),
			 -1);
	ck_assert_msg(strstr(err, "Operation not permitted"), "%s", err);
}
END_TEST

/* ALLOW_PUSH: the old image refused uploads (405) unless it was true,
 * and then sent them with its credentials for the registry: [proxy]
 * push = deny, or push = proxy. */
START_TEST(translate_allow_push)
{
	const struct {
		const char *var;
		enum drp_conf_push want;
	} cases[] = {
		/* unset: the old image's default, false */
		{NULL, DRP_CONF_PUSH_DENY},
		{"ALLOW_PUSH=false", DRP_CONF_PUSH_DENY},
		{"ALLOW_PUSH=true", DRP_CONF_PUSH_PROXY},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *env[] = {"REGISTRIES=quay.io", cases[i].var, NULL};
		char *ini = NULL, *unsup = NULL, err[256] = "";
		ck_assert_int_eq(drp_envconf_build(table_get, env, state, &ini,
						   &unsup, err, sizeof(err)),
				 0);
		ck_assert_str_eq(unsup, "");
		drp_conf_errors_t errs = {0};
		drp_conf_t *c =
			drp_conf_load_string("(environment)", ini, &errs);
		ck_assert_msg(c != NULL, "%s", errs.n ? errs.msg[0] : "");
		ck_assert_int_eq(c->push, cases[i].want);
		drp_conf_free(c);
		free(ini);
		free(unsup);
	}
}
END_TEST

/* The lifetime drp_conf_tag_ttl gives tag in a configuration without
 * [registry] sections for the request. */
static double ttl_of(const drp_conf_t *c, const char *tag)
{
	return drp_conf_tag_ttl(c, NULL, "team/app", tag);
}

static drp_conf_t *build_load(const char **env, char **unsup)
{
	char *ini = NULL, err[256] = "";
	int r = drp_envconf_build(table_get, env, state, &ini, unsup, err,
				  sizeof(err));
	ck_assert_msg(r == 0, "%s", err);
	drp_conf_errors_t errs = {0};
	drp_conf_t *c = drp_conf_load_string("(environment)", ini, &errs);
	ck_assert_msg(c != NULL, "%s\n%s", errs.n ? errs.msg[0] : "", ini);
	drp_conf_errors_free(&errs);
	free(ini);
	return c;
}

/*
 * ENABLE_MANIFEST_CACHE=true: the old image's tiers, with its defaults
 * for the variables left unset (its Dockerfile set them): "stable" and
 * friends 10m, tags with three digits or dots 60d, the rest 1h; matched
 * against the path as nginx matched its "location ~" blocks.
 */
START_TEST(translate_manifest_cache_defaults)
{
	const char *env[] = {"ENABLE_MANIFEST_CACHE=true", NULL};
	char *unsup = NULL;
	drp_conf_t *c = build_load(env, &unsup);
	ck_assert_str_eq(unsup, "");
	ck_assert_uint_eq(c->n_tag_ttl_rules, 2);
	ck_assert_str_eq(c->tag_ttl_rules[1].regex,
			 "^/v2/(.*)/manifests/"
			 "(.*)(\\d|\\.)+(.*)(\\d|\\.)+(.*)(\\d|\\.)+");
	ck_assert(ttl_of(c, "stable") == 600);
	ck_assert(ttl_of(c, "nightly-2024") == 600);
	ck_assert(ttl_of(c, "1.25.3") == 60 * 86400);
	ck_assert(ttl_of(c, "latest") == 3600);
	ck_assert(ttl_of(c, "v1") == 3600);
	drp_conf_free(c);
	free(unsup);
}
END_TEST

/* Variables as set: an empty regex drops its tier (the old entry point
 * wrote no location for it), nginx times (1h30m, 1w, 500ms, a bare
 * number of seconds) become durations, a regex with INI comment
 * characters survives quoted. */
START_TEST(translate_manifest_cache_set)
{
	const char *env[] = {
		"ENABLE_MANIFEST_CACHE=true",
		"MANIFEST_CACHE_PRIMARY_REGEX=(latest|main;#x)",
		"MANIFEST_CACHE_PRIMARY_TIME=1h30m",
		"MANIFEST_CACHE_SECONDARY_REGEX=",
		"MANIFEST_CACHE_SECONDARY_TIME=1w",
		"MANIFEST_CACHE_DEFAULT_TIME=90",
		NULL,
	};
	char *unsup = NULL;
	drp_conf_t *c = build_load(env, &unsup);
	ck_assert_uint_eq(c->n_tag_ttl_rules, 1);
	ck_assert_str_eq(c->tag_ttl_rules[0].regex,
			 "^/v2/(.*)/manifests/(latest|main;#x)");
	ck_assert(ttl_of(c, "latest") == 5400);
	ck_assert(ttl_of(c, "main;#x") == 5400);
	ck_assert(ttl_of(c, "1.2.3") == 90);
	drp_conf_free(c);
	free(unsup);

	const char *env2[] = {
		"ENABLE_MANIFEST_CACHE=true",
		"MANIFEST_CACHE_PRIMARY_TIME=500ms",
		"MANIFEST_CACHE_SECONDARY_TIME=1M",
		"MANIFEST_CACHE_DEFAULT_TIME=0",
		NULL,
	};
	c = build_load(env2, &unsup);
	ck_assert(ttl_of(c, "test") == 0.5);
	ck_assert(ttl_of(c, "1.2.3") == 30 * 86400);
	ck_assert(ttl_of(c, "latest") == 0);
	drp_conf_free(c);
	free(unsup);
}
END_TEST

/* ENABLE_MANIFEST_CACHE unset or false: the old image revalidated every
 * tag request upstream (proxy_cache_valid 0s), whatever the other
 * variables say. */
START_TEST(translate_manifest_cache_off)
{
	const char *env[] = {"REGISTRIES=quay.io",
			     "MANIFEST_CACHE_PRIMARY_TIME=10m", NULL};
	char *unsup = NULL;
	drp_conf_t *c = build_load(env, &unsup);
	ck_assert_str_eq(unsup, "");
	ck_assert_uint_eq(c->n_tag_ttl_rules, 0);
	ck_assert(c->tag_ttl == 0);
	ck_assert(ttl_of(c, "stable") == 0);
	drp_conf_free(c);
	free(unsup);
	const char *env2[] = {"ENABLE_MANIFEST_CACHE=false", NULL};
	c = build_load(env2, &unsup);
	ck_assert(c->tag_ttl == 0);
	drp_conf_free(c);
	free(unsup);
}
END_TEST

/* A time nginx would not take either is an error naming the variable. */
START_TEST(translate_manifest_cache_bad)
{
	const char *bad[][3] = {
		{"ENABLE_MANIFEST_CACHE=true", "MANIFEST_CACHE_PRIMARY_TIME=",
		 "MANIFEST_CACHE_PRIMARY_TIME: invalid time ''"},
		{"ENABLE_MANIFEST_CACHE=true",
		 "MANIFEST_CACHE_DEFAULT_TIME=soon",
		 "MANIFEST_CACHE_DEFAULT_TIME: invalid time 'soon'"},
		{"ENABLE_MANIFEST_CACHE=true",
		 "MANIFEST_CACHE_SECONDARY_REGEX=a\nb",
		 "MANIFEST_CACHE_SECONDARY_REGEX: a line break cannot be "
		 "carried"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *env[] = {bad[i][0], bad[i][1], NULL};
		char *ini = NULL, *unsup = NULL, err[256] = "";
		ck_assert_int_eq(drp_envconf_build(table_get, env, state, &ini,
						   &unsup, err, sizeof(err)),
				 -1);
		ck_assert_str_eq(err, bad[i][2]);
		ck_assert_ptr_null(ini);
	}
}
END_TEST

/*
 * The old image's ten timeout variables (nginx directives) onto this
 * proxy's timeouts: one variable per key where nginx had one directive
 * for it, the largest where several nginx directives are one timeout
 * here (a body stall, either direction: body_timeout; a tunnel's idle
 * time, either direction: tunnel_idle_timeout; the upstream connect, of
 * a fetch or a tunnel: connect_timeout), so that no transfer the old
 * image let run is cut short. None is left unsupported.
 */
START_TEST(translate_timeouts)
{
	const char *env[] = {
		"CLIENT_HEADER_TIMEOUT=20s",
		"KEEPALIVE_TIMEOUT=5m",
		"SEND_TIMEOUT=90",
		"CLIENT_BODY_TIMEOUT=1m30s",
		"PROXY_READ_TIMEOUT=60s",
		"PROXY_SEND_TIMEOUT=2m",
		"PROXY_CONNECT_TIMEOUT=5s",
		"PROXY_CONNECT_CONNECT_TIMEOUT=7s",
		"PROXY_CONNECT_READ_TIMEOUT=1h",
		"PROXY_CONNECT_SEND_TIMEOUT=30m",
		NULL,
	};
	char *unsup = NULL;
	drp_conf_t *c = build_load(env, &unsup);
	ck_assert_str_eq(unsup, "");
	ck_assert(c->header_timeout == 20);
	ck_assert(c->idle_timeout == 300);
	ck_assert(c->body_timeout == 120);
	ck_assert(c->connect_timeout == 7);
	ck_assert(c->tunnel_idle_timeout == 3600);
	drp_conf_free(c);
	free(unsup);

	/* One of a group alone decides; the rest keep their defaults. */
	const char *env2[] = {"SEND_TIMEOUT=10m", NULL};
	c = build_load(env2, &unsup);
	ck_assert(c->body_timeout == 600);
	ck_assert(c->tunnel_idle_timeout == 600);
	ck_assert(c->connect_timeout == 10);
	drp_conf_free(c);
	free(unsup);

	const char *bad[] = {"PROXY_SEND_TIMEOUT=fast", NULL};
	char *ini = NULL, err[256] = "";
	ck_assert_int_eq(drp_envconf_build(table_get, bad, state, &ini, &unsup,
					   err, sizeof(err)),
			 -1);
	ck_assert_str_eq(err, "PROXY_SEND_TIMEOUT: invalid time 'fast'");
}
END_TEST

/* CACHE_INACTIVE, nginx's inactive= of the old image, is max_age. */
START_TEST(translate_cache_inactive)
{
	const char *env[] = {"CACHE_INACTIVE=60d", NULL};
	char *ini = NULL, *unsup = NULL, err[256] = "";
	ck_assert_int_eq(drp_envconf_build(table_get, env, state, &ini, &unsup,
					   err, sizeof(err)),
			 0);
	drp_conf_errors_t errs = {0};
	drp_conf_t *c = drp_conf_load_string("(environment)", ini, &errs);
	ck_assert_msg(c != NULL, "%s", errs.n ? errs.msg[0] : "");
	ck_assert_double_eq(c->cache_max_age, 60 * 86400);
	drp_conf_free(c);
	drp_conf_errors_free(&errs);
	free(ini);
	free(unsup);
	/* Unset: no age limit, as the size budget alone decides. */
	const char *none[] = {NULL};
	ck_assert_int_eq(drp_envconf_build(table_get, none, state, &ini, &unsup,
					   err, sizeof(err)),
			 0);
	ck_assert_ptr_null(strstr(ini, "max_age"));
	free(ini);
	free(unsup);
}
END_TEST

Suite *envconf_suite(void)
{
	Suite *s = suite_create("envconf");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, translate_old_image);
	tcase_add_test(tc, translate_defaults);
	tcase_add_test(tc, translate_bad_entry);
	tcase_add_test(tc, translate_allow_push);
	tcase_add_test(tc, translate_timeouts);
	tcase_add_test(tc, translate_manifest_cache_defaults);
	tcase_add_test(tc, translate_manifest_cache_set);
	tcase_add_test(tc, translate_manifest_cache_off);
	tcase_add_test(tc, translate_manifest_cache_bad);
	tcase_add_test(tc, translate_cache_inactive);
	suite_add_tcase(s, tc);
	return s;
}
