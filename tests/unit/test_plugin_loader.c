/* SPDX-License-Identifier: MIT */
/*
 * Loader and instance tests against real libtool modules
 * (tests/unit/mock_plugin/), with the mock host table.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mock_host.h"
#include "plugin/loader.h"
#include "util/log.h"
#include "util/mem.h"

Suite *plugin_loader_suite(void);

#ifndef MOCK_PLUGIN_DIR
#error "MOCK_PLUGIN_DIR must name tests/unit/mock_plugin in the build tree"
#endif

static mock_host_t mh;
static drp_plugin_loader_t *loader;
static char err[1024];
static char logpath[] = "/tmp/drp-test-loader-XXXXXX";

static void setup(void)
{
	mock_host_init(&mh);
	int fd = mkstemp(logpath);
	ck_assert_int_ge(fd, 0);
	close(fd);
	/* the loader's own log lines (refusals) go to a file we read */
	ck_assert_int_eq(drp_log_init(DRP_LOG_INFO, logpath), 0);
	loader = drp_plugin_loader_new(&mh.host, MOCK_PLUGIN_DIR);
	ck_assert_ptr_nonnull(loader);
	err[0] = '\0';
}

static void teardown(void)
{
	drp_plugin_loader_free(loader);
	mock_host_fini(&mh);
	drp_log_init(DRP_LOG_WARNING, NULL);
	unlink(logpath);
	strcpy(logpath, "/tmp/drp-test-loader-XXXXXX");
}

/* Whether the daemon log holds a line containing needle. */
static bool daemon_log_has(const char *needle)
{
	char buf[65536];
	FILE *f = fopen(logpath, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

/* The file libltdl opened for a module of the mock directory. */
static void mock_file(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/.libs/%s.so", MOCK_PLUGIN_DIR, name);
}

START_TEST(load_ok_by_name)
{
	const drp_plugin_mod_t *m =
		drp_plugin_load(loader, "mock_ok", err, sizeof(err));
	ck_assert_msg(m != NULL, "%s", err);
	const drp_plugin_t *d = drp_plugin_mod_desc(m);
	ck_assert_str_eq(d->name, "mock_ok");
	ck_assert_str_eq(d->version, "0.1");
	ck_assert_uint_eq(d->abi_major, DRP_PLUGIN_ABI_MAJOR);
	ck_assert_uint_eq(d->struct_size, sizeof(drp_plugin_t));
	char file[512];
	mock_file(file, sizeof(file), "mock_ok");
	ck_assert_str_eq(drp_plugin_mod_file(m), file);
	/* init ran once, with the host table */
	char want[128];
	snprintf(want, sizeof(want), "<6> mock_ok: init api_size=%zu abi=%d.%d",
		 sizeof(drp_host_api_t), DRP_PLUGIN_ABI_MAJOR,
		 DRP_PLUGIN_ABI_MINOR);
	ck_assert_uint_eq(mock_log_count(&mh, want), 1);
	/* a second load is the same module, without a second init */
	ck_assert_ptr_eq(drp_plugin_load(loader, "mock_ok", err, sizeof(err)),
			 m);
	/* and so is a load by path of the same file */
	char path[512];
	snprintf(path, sizeof(path), "%s/mock_ok.la", MOCK_PLUGIN_DIR);
	ck_assert_ptr_eq(drp_plugin_load(loader, path, err, sizeof(err)), m);
	ck_assert_uint_eq(mock_log_count(&mh, "init api_size"), 1);
	ck_assert(daemon_log_has("loaded "));
}
END_TEST

START_TEST(load_by_path_ignores_name)
{
	/* By path only the ABI is checked: a descriptor named
	 * "someone_else" in mock_badname.so is fine. */
	char path[512];
	snprintf(path, sizeof(path), "%s/.libs/mock_badname.so",
		 MOCK_PLUGIN_DIR);
	const drp_plugin_mod_t *m =
		drp_plugin_load(loader, path, err, sizeof(err));
	ck_assert_msg(m != NULL, "%s", err);
	ck_assert_str_eq(drp_plugin_mod_desc(m)->name, "someone_else");
}
END_TEST

/* Each refusal: spec, and the reason after "(ABI x.y, host X.Y): ". The
 * mocks are built against this header: their ABI is the host's, or one
 * more (dmajor, dminor); known = false prints "unknown". */
static const struct {
	const char *spec;
	bool known;
	int dmajor, dminor; /* plugin's ABI minus the host's */
	const char *reason;
} refusals[] = {
	/* a plugin for another major version */
	{"mock_badmajor", true, 1, 0, "ABI major version differs"},
	/* built against a newer header than this daemon's */
	{"mock_newminor", true, 0, 1, "built for a newer ABI minor version"},
	/* a truncated descriptor */
	{"mock_small", true, 0, 0, "descriptor size 16 is smaller than"},
	/* not a drp plugin at all */
	{"mock_nosym", false, 0, 0, "no symbol drp_plugin"},
	/* loaded by name, but calls itself something else */
	{"mock_badname", true, 0, 0,
	 "descriptor name 'someone_else' differs from 'mock_badname'"},
	/* its init() fails */
	{"mock_failinit", true, 0, 0, "init failed: Input/output error"},
	/* lacks a mandatory hook */
	{"mock_nohook", true, 0, 0, "mandatory hook instance_free missing"},
};

START_TEST(refusal_table)
{
	const char *spec = refusals[_i].spec;
	ck_assert_ptr_null(drp_plugin_load(loader, spec, err, sizeof(err)));
	char file[512], want[1024], abi[32] = "unknown";
	mock_file(file, sizeof(file), spec);
	if (refusals[_i].known)
		snprintf(abi, sizeof(abi), "%d.%d",
			 DRP_PLUGIN_ABI_MAJOR + refusals[_i].dmajor,
			 DRP_PLUGIN_ABI_MINOR + refusals[_i].dminor);
	snprintf(want, sizeof(want), "refusing %s (ABI %s, host %d.%d): %s",
		 file, abi, DRP_PLUGIN_ABI_MAJOR, DRP_PLUGIN_ABI_MINOR,
		 refusals[_i].reason);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0,
		      "got  '%s'\nwant '%s'", err, want);
	/* the same line is in the daemon's log, at err level */
	ck_assert(daemon_log_has(want));
	ck_assert(daemon_log_has(" err plugin: refusing "));
	/* asking again gives the same refusal without reopening */
	char again[1024];
	ck_assert_ptr_null(drp_plugin_load(loader, spec, again, sizeof(again)));
	ck_assert_str_eq(again, err);
}
END_TEST

START_TEST(refusal_missing_file)
{
	ck_assert_ptr_null(
		drp_plugin_load(loader, "nonexistent", err, sizeof(err)));
	char want[512];
	snprintf(want, sizeof(want),
		 "cannot load %s/nonexistent{.la,.so}: file not found",
		 MOCK_PLUGIN_DIR);
	ck_assert_str_eq(err, want);
	/* a name that is not a name */
	ck_assert_ptr_null(
		drp_plugin_load(loader, "Mock OK", err, sizeof(err)));
	ck_assert_str_eq(err, "cannot load Mock OK: a plugin name is "
			      "[a-z0-9_-]+ (give a path with '/' to load a "
			      "file)");
	/* a path to a file that is no module */
	ck_assert_ptr_null(
		drp_plugin_load(loader, "/etc/passwd", err, sizeof(err)));
	ck_assert_msg(strncmp(err, "cannot load /etc/passwd: ", 25) == 0, "%s",
		      err);
}
END_TEST

START_TEST(plugin_dir_from_env)
{
	drp_plugin_loader_t *l2;
	setenv(DRP_PLUGIN_DIR_ENV, "/some/where", 1);
	l2 = drp_plugin_loader_new(&mh.host, NULL);
	ck_assert_str_eq(drp_plugin_loader_dir(l2), "/some/where");
	drp_plugin_loader_free(l2);
	unsetenv(DRP_PLUGIN_DIR_ENV);
	l2 = drp_plugin_loader_new(&mh.host, NULL);
	ck_assert_str_eq(drp_plugin_loader_dir(l2), DRP_PLUGINDIR);
	drp_plugin_loader_free(l2);
	/* the argument wins over the environment */
	setenv(DRP_PLUGIN_DIR_ENV, "/some/where", 1);
	ck_assert_str_eq(drp_plugin_loader_dir(loader), MOCK_PLUGIN_DIR);
	unsetenv(DRP_PLUGIN_DIR_ENV);
}
END_TEST

/* ---- instances ---- */

#define ITEM(k, v, l)                                                          \
	{                                                                      \
		.key = (char *)(k), .value = (char *)(v), .file = "t.conf",    \
		.line = (l)                                                    \
	}

static drp_conf_registry_t section(char *name, drp_conf_item_t *items,
				   unsigned n)
{
	return (drp_conf_registry_t){.name = name,
				     .file = "t.conf",
				     .line = 10,
				     .items = items,
				     .n_items = n};
}

static drp_conf_errors_t errs;

static void inst_setup(void)
{
	setup();
	errs = (drp_conf_errors_t){0};
}

static void inst_teardown(void)
{
	for (unsigned i = 0; i < errs.n; i++)
		free(errs.msg[i]);
	free(errs.msg);
	teardown();
}

static const char *all_errors(void)
{
	static char buf[8192];
	size_t n = 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < errs.n; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\n",
				      errs.msg[i]);
	return buf;
}

START_TEST(instance_ok_and_hooks)
{
	drp_conf_item_t items[] = {
		ITEM("plugin", "mock_ok", 11), ITEM("username", "u", 12),
		ITEM("region", "eu", 13),      ITEM("count", "7", 14),
		ITEM("ttl", "5m", 15),	       ITEM("strict", "yes", 16),
		ITEM("token", "s3cr3t", 17),
	};
	drp_conf_registry_t sec = section("registry-1.docker.io/acme", items,
					  DRP_ARRAY_SIZE(items));
	drp_plugin_inst_t *inst = drp_plugin_inst_new(loader, &sec, &errs);
	ck_assert_msg(inst != NULL, "%s", all_errors());
	ck_assert_uint_eq(errs.n, 0);
	/* the plugin saw the section, defaults applied, name canonical */
	ck_assert_uint_eq(
		mock_log_count(&mh,
			       "<6> mock_ok/registry-1.docker.io/acme: "
			       "instance_new section=registry-1.docker.io/acme "
			       "registry=docker.io prefix=acme greeting=hello "
			       "count=7 region=eu"),
		1);
	ck_assert_str_eq(drp_plugin_inst_select_name(inst)->registry,
			 "docker.io");

	struct drp_auth_req req;
	mock_req_init(&req, "GET", "https://registry-1.docker.io/v2/",
		      "docker.io", NULL, "pull");
	ck_assert_int_eq(drp_plugin_inst_decorate(inst, &req), DRP_AUTH_OK);
	ck_assert_str_eq(mock_req_header(&req, "authorization"),
			 "Mock hello/s3cr3t");
	/* challenge: declined, denied, not-a-result */
	ck_assert_int_eq(drp_plugin_inst_challenge(inst, &req, ""),
			 DRP_AUTH_DECLINED);
	ck_assert_int_eq(drp_plugin_inst_challenge(inst, &req, "Denied"),
			 DRP_AUTH_DENIED);
	ck_assert_int_eq(drp_plugin_inst_challenge(inst, &req, "Weird"),
			 DRP_AUTH_ERROR);
	ck_assert(daemon_log_has("mock_ok/registry-1.docker.io/acme: challenge "
				 "returned 42, not a result"));
	/* pending, then answered exactly once from the timer */
	ck_assert_int_eq(MOCK_HOOK(&req, drp_plugin_inst_challenge(
						 inst, &req, "Bearer realm=x")),
			 DRP_AUTH_PENDING);
	ck_assert_int_eq(req.done_calls, 0);
	mock_timers_advance(&mh, 1.5);
	ck_assert_int_eq(req.done_calls, 1);
	ck_assert_int_eq(req.done_result, DRP_AUTH_OK);
	ck_assert_str_eq(mock_req_header(&req, "Authorization"),
			 "Mock answered");
	/* pending, then cancelled: never answered */
	struct drp_auth_req req2;
	mock_req_init(&req2, "GET", "https://x/v2/", "docker.io", NULL, "pull");
	ck_assert_int_eq(MOCK_HOOK(&req2, drp_plugin_inst_challenge(inst, &req2,
								    "Bearer")),
			 DRP_AUTH_PENDING);
	ck_assert(drp_plugin_inst_has_cancel(inst));
	drp_plugin_inst_cancel(inst, &req2);
	mock_timers_advance(&mh, 5);
	ck_assert_int_eq(req2.done_calls, 0);
	ck_assert_uint_eq(mock_log_count(&mh, "cancelled"), 1);

	/* instance_free drops the instance's tokens, fini at loader_free */
	drp_tokencache_put(mh.host.tokens, drp_plugin_inst_ctx(inst), "s", "T",
			   300, mh.now);
	ck_assert_uint_eq(drp_tokencache_count(mh.host.tokens), 1);
	drp_plugin_inst_free(inst);
	ck_assert_uint_eq(drp_tokencache_count(mh.host.tokens), 0);
	ck_assert_uint_eq(mock_log_count(&mh, "instance_free"), 1);
	ck_assert_uint_eq(mock_log_count(&mh, "fini"), 0);
	drp_plugin_loader_free(loader);
	loader = NULL;
	ck_assert_uint_eq(mock_log_count(&mh, "<6> mock_ok: fini"), 1);
	mock_req_fini(&req);
	mock_req_fini(&req2);
}
END_TEST

/* Sections that must fail, and every error they must produce. */
static struct {
	char *name;
	drp_conf_item_t items[6];
	unsigned n;
	const char *errors; /* all errors, each followed by "\n" */
} bad_sections[] = {
	/* unknown key, with file:line */
	{"quay.io",
	 {ITEM("plugin", "mock_ok", 11), ITEM("region", "x", 12),
	  ITEM("colour", "blue", 13)},
	 3,
	 "t.conf:13: [registry \"quay.io\"] colour: unknown key for plugin "
	 "'mock_ok'\n"},
	/* type and range errors, all reported; secret values not shown */
	{"quay.io",
	 {ITEM("plugin", "mock_ok", 11), ITEM("region", "x", 12),
	  ITEM("count", "11", 13), ITEM("ttl", "soon", 14),
	  ITEM("strict", "maybe", 15), ITEM("count", "x", 16)},
	 6,
	 "t.conf:13: [registry \"quay.io\"] count: value '11' out of range "
	 "1..10\n"
	 "t.conf:14: [registry \"quay.io\"] ttl: value 'soon' is not a "
	 "duration\n"
	 "t.conf:15: [registry \"quay.io\"] strict: value 'maybe' is not a "
	 "boolean\n"
	 "t.conf:16: [registry \"quay.io\"] count: value 'x' is not an "
	 "integer\n"},
	/* a required key is missing: reported at the section header */
	{"quay.io",
	 {ITEM("plugin", "mock_ok", 11)},
	 1,
	 "t.conf:10: [registry \"quay.io\"] region: required by plugin "
	 "'mock_ok'\n"},
	/* both the inline and the _file form */
	{"quay.io",
	 {ITEM("plugin", "mock_ok", 11), ITEM("region", "x", 12),
	  ITEM("token", "a", 13), ITEM("token_file", "/dev/null", 14)},
	 4,
	 "t.conf:14: [registry \"quay.io\"] token_file: conflicts with "
	 "token\n"},
	/* the secret file cannot be read: the plugin's config_secret reports
	 * it at the _file key, the instance is refused */
	{"quay.io",
	 {ITEM("plugin", "mock_ok", 11), ITEM("region", "x", 12),
	  ITEM("token_file", "/nonexistent/secret", 13)},
	 3,
	 "t.conf:13: [registry \"quay.io\"] token_file: cannot read "
	 "'/nonexistent/secret': No such file or directory\n"
	 "t.conf:11: [registry \"quay.io\"] plugin: plugin 'mock_ok' refused "
	 "the section: token unreadable\n"},
	/* the plugin reports a configuration error itself */
	{"quay.io",
	 {ITEM("plugin", "mock_ok", 11), ITEM("region", "x", 12),
	  ITEM("greeting", "bad", 13)},
	 3,
	 "t.conf:13: [registry \"quay.io\"] greeting: must not be 'bad'\n"
	 "t.conf:11: [registry \"quay.io\"] plugin: plugin 'mock_ok' refused "
	 "the section: Invalid argument\n"},
	/* ... or reports one and returns success anyway */
	{"quay.io",
	 {ITEM("plugin", "mock_ok", 11), ITEM("region", "x", 12),
	  ITEM("greeting", "sneaky", 13)},
	 3,
	 "t.conf:13: [registry \"quay.io\"] greeting: is sneaky\n"
	 "t.conf:11: [registry \"quay.io\"] plugin: plugin 'mock_ok' refused "
	 "the section: configuration errors\n"},
	/* instance_new fails with a reason */
	{"quay.io",
	 {ITEM("plugin", "mock_failinst", 11), ITEM("region", "x", 12)},
	 2,
	 "t.conf:11: [registry \"quay.io\"] plugin: plugin 'mock_failinst' "
	 "refused the section: mock refuses quay.io\n"},
	/* the plugin cannot be loaded: the loader's reason, at `plugin` */
	{"quay.io",
	 {ITEM("plugin", "nonexistent", 11)},
	 1,
	 "t.conf:11: [registry \"quay.io\"] plugin: cannot "
	 "load " MOCK_PLUGIN_DIR "/nonexistent{.la,.so}: file not found\n"},
	/* a section without plugin accepts only the shared keys */
	{"quay.io",
	 {ITEM("allow", "10.0.0.0/8", 11), ITEM("region", "x", 12)},
	 2,
	 "t.conf:12: [registry \"quay.io\"] region: unknown key (the section "
	 "names no plugin)\n"},
	/* a bad section name */
	{"quay.io//x",
	 {ITEM("allow", "10.0.0.0/8", 11)},
	 1,
	 "t.conf:10: [registry \"quay.io//x\"]: empty repository "
	 "component\n"},
};

START_TEST(instance_errors)
{
	drp_conf_registry_t sec =
		section(bad_sections[_i].name, bad_sections[_i].items,
			bad_sections[_i].n);
	ck_assert_ptr_null(drp_plugin_inst_new(loader, &sec, &errs));
	ck_assert_str_eq(all_errors(), bad_sections[_i].errors);
}
END_TEST

/* A missing key is reported at the section's header with the whole
 * section name, however long its repository prefix. */
START_TEST(instance_error_long_name)
{
	char name[600], want[800];
	int n = snprintf(name, sizeof(name), "quay.io/");
	for (int i = 0; i < 60; i++)
		n += snprintf(name + n, sizeof(name) - (size_t)n, "team%02d/",
			      i);
	snprintf(name + n, sizeof(name) - (size_t)n, "app");
	ck_assert_uint_gt(strlen(name), 400);
	drp_conf_item_t items[] = {ITEM("plugin", "mock_ok", 11)};
	drp_conf_registry_t sec = section(name, items, 1);
	ck_assert_ptr_null(drp_plugin_inst_new(loader, &sec, &errs));
	snprintf(want, sizeof(want),
		 "t.conf:10: [registry \"%s\"] region: required by plugin "
		 "'mock_ok'\n",
		 name);
	ck_assert_str_eq(all_errors(), want);
}
END_TEST

START_TEST(instance_failure_logged)
{
	drp_conf_item_t items[] = {ITEM("plugin", "mock_failinst", 11),
				   ITEM("region", "x", 12)};
	drp_conf_registry_t sec = section("quay.io", items, 2);
	ck_assert_ptr_null(drp_plugin_inst_new(loader, &sec, &errs));
	char want[1024], file[512];
	mock_file(file, sizeof(file), "mock_failinst");
	snprintf(want, sizeof(want),
		 "refusing section \"quay.io\" for %s (ABI %d.%d, host %d.%d): "
		 "instance_new failed: mock refuses quay.io",
		 file, DRP_PLUGIN_ABI_MAJOR, DRP_PLUGIN_ABI_MINOR,
		 DRP_PLUGIN_ABI_MAJOR, DRP_PLUGIN_ABI_MINOR);
	ck_assert_msg(daemon_log_has(want), "missing log line: %s", want);
}
END_TEST

START_TEST(instance_anonymous)
{
	drp_conf_item_t items[] = {ITEM("allow", "10.0.0.0/8", 11),
				   ITEM("push", "deny", 12)};
	drp_conf_registry_t sec = section("*.pkg.dev", items, 2);
	drp_plugin_inst_t *inst = drp_plugin_inst_new(loader, &sec, &errs);
	ck_assert_msg(inst != NULL, "%s", all_errors());
	ck_assert_ptr_null(drp_plugin_inst_mod(inst));
	struct drp_auth_req req;
	mock_req_init(&req, "GET", "https://a.pkg.dev/v2/", "a.pkg.dev", NULL,
		      "pull");
	/* nothing to add, nothing to answer */
	ck_assert_int_eq(drp_plugin_inst_decorate(inst, &req),
			 DRP_AUTH_DECLINED);
	ck_assert_int_eq(drp_plugin_inst_challenge(inst, &req, "Basic"),
			 DRP_AUTH_DECLINED);
	ck_assert_uint_eq(req.n_headers, 0);
	ck_assert(!drp_plugin_inst_has_cancel(inst));
	drp_plugin_inst_free(inst);
}
END_TEST

START_TEST(instance_secret_file)
{
	/* token_file relative to the configuration file's directory; one
	 * trailing newline dropped */
	char dir[] = "/tmp/drp-test-secret-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char conf[256], secret[256];
	snprintf(conf, sizeof(conf), "%s/proxy.ini", dir);
	snprintf(secret, sizeof(secret), "%s/tok", dir);
	FILE *f = fopen(secret, "w");
	ck_assert_ptr_nonnull(f);
	fputs("from-file\n", f);
	fclose(f);
	drp_conf_item_t items[] = {
		{.key = "plugin", .value = "mock_ok", .file = conf, .line = 2},
		{.key = "region", .value = "x", .file = conf, .line = 3},
		{.key = "token_file", .value = "tok", .file = conf, .line = 4},
	};
	drp_conf_registry_t sec = {.name = "quay.io",
				   .file = conf,
				   .line = 1,
				   .items = items,
				   .n_items = 3};
	drp_plugin_inst_t *inst = drp_plugin_inst_new(loader, &sec, &errs);
	ck_assert_msg(inst != NULL, "%s", all_errors());
	struct drp_auth_req req;
	mock_req_init(&req, "GET", "https://quay.io/v2/", "quay.io", NULL,
		      "pull");
	ck_assert_int_eq(drp_plugin_inst_decorate(inst, &req), DRP_AUTH_OK);
	ck_assert_str_eq(mock_req_header(&req, "Authorization"),
			 "Mock hello/from-file");
	mock_req_fini(&req);
	drp_plugin_inst_free(inst);
	unlink(secret);
	rmdir(dir);
}
END_TEST

Suite *plugin_loader_suite(void)
{
	Suite *s = suite_create("plugin_loader");
	TCase *tc = tcase_create("load");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, load_ok_by_name);
	tcase_add_test(tc, load_by_path_ignores_name);
	tcase_add_loop_test(tc, refusal_table, 0,
			    (int)DRP_ARRAY_SIZE(refusals));
	tcase_add_test(tc, refusal_missing_file);
	tcase_add_test(tc, plugin_dir_from_env);
	suite_add_tcase(s, tc);
	TCase *ti = tcase_create("instance");
	tcase_add_checked_fixture(ti, inst_setup, inst_teardown);
	tcase_add_test(ti, instance_ok_and_hooks);
	tcase_add_loop_test(ti, instance_errors, 0,
			    (int)DRP_ARRAY_SIZE(bad_sections));
	tcase_add_test(ti, instance_error_long_name);
	tcase_add_test(ti, instance_failure_logged);
	tcase_add_test(ti, instance_anonymous);
	tcase_add_test(ti, instance_secret_file);
	suite_add_tcase(s, ti);
	return s;
}
