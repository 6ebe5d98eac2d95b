/* SPDX-License-Identifier: MIT */
/*
 * Loads examples/auth-plugin as built out of tree by example_plugin.sh
 * (directory in $DRP_EXAMPLE_DIR) and runs it through the mock host.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mock_host.h"
#include "plugin/loader.h"
#include "util/mem.h"

Suite *plugin_example_suite(void);

static mock_host_t mh;
static drp_plugin_loader_t *loader;
static drp_conf_errors_t errs;

static void setup(void)
{
	const char *dir = getenv("DRP_EXAMPLE_DIR");
	ck_assert_msg(dir != NULL, "run through tests/unit/example_plugin.sh");
	mock_host_init(&mh);
	loader = drp_plugin_loader_new(&mh.host, dir);
	errs = (drp_conf_errors_t){0};
}

static void teardown(void)
{
	drp_plugin_loader_free(loader);
	for (unsigned i = 0; i < errs.n; i++)
		free(errs.msg[i]);
	free(errs.msg);
	mock_host_fini(&mh);
}

START_TEST(example_loads_and_decorates)
{
	char err[512];
	const drp_plugin_mod_t *m =
		drp_plugin_load(loader, "example", err, sizeof(err));
	ck_assert_msg(m != NULL, "%s", err);
	ck_assert_str_eq(drp_plugin_mod_desc(m)->name, "example");
	ck_assert_uint_eq(drp_plugin_mod_desc(m)->abi_major,
			  DRP_PLUGIN_ABI_MAJOR);

	drp_conf_item_t items[] = {
		{.key = "plugin",
		 .value = "example",
		 .file = "e.ini",
		 .line = 2},
		{.key = "value", .value = "xyz", .file = "e.ini", .line = 3},
		{.key = "scheme", .value = "Token", .file = "e.ini", .line = 4},
	};
	drp_conf_registry_t sec = {.name = "registry.example.com",
				   .file = "e.ini",
				   .line = 1,
				   .items = items,
				   .n_items = 3};
	drp_plugin_inst_t *inst = drp_plugin_inst_new(loader, &sec, &errs);
	ck_assert_msg(inst != NULL, "%s", errs.n ? errs.msg[0] : "");
	ck_assert_uint_eq(mock_log_count(&mh, "example/registry.example.com: "
					      "sending Token credentials to "
					      "registry.example.com"),
			  1);
	struct drp_auth_req r;
	mock_req_init(&r, "GET", "https://registry.example.com/v2/", "x", NULL,
		      "pull");
	ck_assert_int_eq(drp_plugin_inst_decorate(inst, &r), DRP_AUTH_OK);
	ck_assert_str_eq(mock_req_header(&r, "Authorization"), "Token xyz");
	ck_assert_int_eq(drp_plugin_inst_challenge(inst, &r, "Basic"),
			 DRP_AUTH_DENIED);
	mock_req_fini(&r);
	drp_plugin_inst_free(inst);
}
END_TEST

START_TEST(example_config_checked)
{
	drp_conf_item_t items[] = {
		{.key = "plugin",
		 .value = "example",
		 .file = "e.ini",
		 .line = 2},
		{.key = "colour", .value = "red", .file = "e.ini", .line = 3},
	};
	drp_conf_registry_t sec = {.name = "registry.example.com",
				   .file = "e.ini",
				   .line = 1,
				   .items = items,
				   .n_items = 2};
	ck_assert_ptr_null(drp_plugin_inst_new(loader, &sec, &errs));
	ck_assert_uint_eq(errs.n, 2);
	ck_assert_str_eq(errs.msg[0], "e.ini:3: [registry "
				      "\"registry.example.com\"] colour: "
				      "unknown key for plugin 'example'");
	ck_assert_str_eq(errs.msg[1], "e.ini:1: [registry "
				      "\"registry.example.com\"] value: "
				      "required by plugin 'example' (or the "
				      "_file form)");
}
END_TEST

Suite *plugin_example_suite(void)
{
	Suite *s = suite_create("plugin_example");
	TCase *tc = tcase_create("example");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, example_loads_and_decorates);
	tcase_add_test(tc, example_config_checked);
	suite_add_tcase(s, tc);
	return s;
}
