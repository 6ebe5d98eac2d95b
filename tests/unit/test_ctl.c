/* SPDX-License-Identifier: MIT */
/*
 * The administrator's commands (src/ctl/): image references as warm and
 * purge read them, the command line's words into a command and back
 * through the admin socket's request line, and where the socket is.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "ctl/cmd.h"
#include "ctl/ctl.h"
#include "ctl/warm.h"

Suite *ctl_suite(void);

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const struct {
	const char *in;
	int rc;
	const char *host;
	unsigned port;
	const char *repo, *tag, *digest;
} refs[] = {
	/* Docker Hub's shorthand: library/, latest, the host clients use */
	{"alpine", 0, "registry-1.docker.io", 443, "library/alpine", "latest",
	 ""},
	{"alpine:3.20", 0, "registry-1.docker.io", 443, "library/alpine",
	 "3.20", ""},
	{"bitnami/redis:7", 0, "registry-1.docker.io", 443, "bitnami/redis",
	 "7", ""},
	/* its aliases */
	{"docker.io/library/x:1", 0, "registry-1.docker.io", 443, "library/x",
	 "1", ""},
	{"index.docker.io/x", 0, "registry-1.docker.io", 443, "library/x",
	 "latest", ""},
	/* another registry: a dot, a port or localhost makes the host */
	{"quay.io/org/app:v2", 0, "quay.io", 443, "org/app", "v2", ""},
	{"Registry.Test/team/app:v1", 0, "registry.test", 443, "team/app", "v1",
	 ""},
	{"localhost:5000/x@sha256:" HEX64, 0, "localhost", 5000, "x", "",
	 "sha256:" HEX64},
	{"reg.test:8443/a/b:t@sha256:" HEX64, 0, "reg.test", 8443, "a/b", "",
	 "sha256:" HEX64},
	/* not references */
	{.in = "registry.test/Team:v1", .rc = -EINVAL}, /* upper case */
	{.in = "", .rc = -EINVAL},
	{.in = "registry.test/x:bad tag", .rc = -EINVAL},
	{.in = "registry.test/x@sha256:abc", .rc = -EINVAL},
	{.in = "registry.test/x@md5:" HEX64, .rc = -EINVAL},
	{.in = "reg.test:99999/x", .rc = -EINVAL},
	{.in = "registry.test/", .rc = -EINVAL},
};

START_TEST(parse_ref)
{
	drp_warm_ref_t r;
	int rc = drp_warm_parse_ref(refs[_i].in, &r);
	ck_assert_msg(rc == refs[_i].rc, "%s: %d", refs[_i].in, rc);
	if (rc < 0)
		return;
	ck_assert_str_eq(r.host, refs[_i].host);
	ck_assert_uint_eq(r.port, refs[_i].port);
	ck_assert_str_eq(r.repo, refs[_i].repo);
	ck_assert_str_eq(r.tag, refs[_i].tag);
	ck_assert_str_eq(r.digest, refs[_i].digest);
}
END_TEST

static int parse(const char *line, drp_ctl_cmd_t *cmd, char *err, size_t n)
{
	char buf[512], *argv[16];
	int argc = 0;
	snprintf(buf, sizeof(buf), "%s", line);
	for (char *p = strtok(buf, " "); p && argc < 16; p = strtok(NULL, " "))
		argv[argc++] = p;
	FILE *e = fmemopen(err, n, "w");
	int rc = drp_ctl_cmd_parse(argc, argv, cmd, e);
	fclose(e);
	return rc;
}

START_TEST(parse_commands)
{
	drp_ctl_cmd_t c;
	char err[4096] = "";
	ck_assert_int_eq(parse("cache list --json", &c, err, sizeof(err)), 0);
	ck_assert_int_eq(c.op, DRP_CTL_LIST);
	ck_assert(c.json);
	drp_ctl_cmd_free(&c);
	ck_assert_int_eq(
		parse("cache purge a:1 sha256:" HEX64, &c, err, sizeof(err)),
		0);
	ck_assert_int_eq(c.op, DRP_CTL_PURGE);
	ck_assert_uint_eq(c.n_args, 2);
	ck_assert_str_eq(c.args[1], "sha256:" HEX64);
	drp_ctl_cmd_free(&c);
	ck_assert_int_eq(parse("warm --platform linux/amd64,linux/arm64/v8 "
			       "--platform=linux/s390x x y:2",
			       &c, err, sizeof(err)),
			 0);
	ck_assert_int_eq(c.op, DRP_CTL_WARM);
	ck_assert_uint_eq(c.n_platforms, 3);
	ck_assert_str_eq(c.platforms[1], "linux/arm64/v8");
	ck_assert_str_eq(c.platforms[2], "linux/s390x");
	ck_assert_uint_eq(c.n_args, 2);
	drp_ctl_cmd_free(&c);

	/* Mistakes: usage (2) and a message naming them. */
	const char *bad[][2] = {
		{"cache purge", "which images?"},
		{"warm", "which images?"},
		{"cache list extra", "unexpected argument: extra"},
		{"cache verify --json", "unknown option: --json"},
		{"warm --platform", "--platform needs OS/ARCH"},
		{"cache", "cache: list, purge or verify?"},
		{"cache frob", "unknown cache command: frob"},
		{"frob", "unknown command: frob"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(err, 0, sizeof(err));
		ck_assert_int_eq(parse(bad[i][0], &c, err, sizeof(err)),
				 DRP_CTL_USAGE);
		ck_assert_msg(strstr(err, bad[i][1]) != NULL, "%s: %s",
			      bad[i][0], err);
		ck_assert_ptr_nonnull(strstr(err, "usage:"));
	}
}
END_TEST

/* The socket's request line carries a command whole; anything else is
 * refused. */
START_TEST(encode_decode)
{
	drp_ctl_cmd_t c, d;
	char err[1024];
	ck_assert_int_eq(
		parse("warm --platform linux/arm64 a b", &c, err, sizeof(err)),
		0);
	char *line = drp_ctl_cmd_encode(&c);
	ck_assert_ptr_null(strchr(line, '\n'));
	ck_assert_int_eq(drp_ctl_cmd_decode(line, strlen(line), &d), 0);
	ck_assert_int_eq(d.op, DRP_CTL_WARM);
	ck_assert_uint_eq(d.n_args, 2);
	ck_assert_str_eq(d.args[1], "b");
	ck_assert_uint_eq(d.n_platforms, 1);
	ck_assert_str_eq(d.platforms[0], "linux/arm64");
	free(line);
	drp_ctl_cmd_free(&c);
	drp_ctl_cmd_free(&d);

	const char *bad[] = {
		"",
		"not json",
		"{\"v\":2,\"op\":\"list\"}",
		"{\"v\":1,\"op\":\"format-disk\"}",
		"{\"v\":1}",
		"{\"v\":1,\"op\":\"purge\",\"args\":[1]}",
		"{\"v\":1,\"op\":\"purge\",\"args\":\"x\"}",
		"{\"v\":1,\"op\":\"list\",\"op\":\"verify\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(drp_ctl_cmd_decode(bad[i], strlen(bad[i]), &d) ==
				      -EINVAL,
			      "%s", bad[i]);
}
END_TEST

START_TEST(socket_path)
{
	drp_conf_t *c = drp_conf_defaults();
	char p[256];
	/* Beside ca_dir, in the state directory. */
	free(c->ca_dir);
	c->ca_dir = strdup("/var/lib/drp/ca");
	ck_assert_int_eq(drp_ctl_socket_path(c, NULL, p, sizeof(p)), 0);
	ck_assert_str_eq(p, "/var/lib/drp/admin.sock");
	free(c->ca_dir);
	c->ca_dir = strdup("./ca/");
	ck_assert_int_eq(drp_ctl_socket_path(c, NULL, p, sizeof(p)), 0);
	ck_assert_str_eq(p, "./admin.sock");
	free(c->ca_dir);
	c->ca_dir = strdup("ca");
	ck_assert_int_eq(drp_ctl_socket_path(c, NULL, p, sizeof(p)), 0);
	ck_assert_str_eq(p, "./admin.sock");
	/* --env-config keeps it with its secrets. */
	ck_assert_int_eq(drp_ctl_socket_path(c, "/tmp/drp-0", p, sizeof(p)), 0);
	ck_assert_str_eq(p, "/tmp/drp-0/admin.sock");
	/* Configured; off; too long for a socket address. */
	c->admin_socket = strdup("/run/drp.sock");
	ck_assert_int_eq(drp_ctl_socket_path(c, "/tmp/x", p, sizeof(p)), 0);
	ck_assert_str_eq(p, "/run/drp.sock");
	free(c->admin_socket);
	c->admin_socket = strdup("");
	ck_assert_int_eq(drp_ctl_socket_path(c, NULL, p, sizeof(p)), 1);
	free(c->admin_socket);
	c->admin_socket = malloc(200);
	memset(c->admin_socket, 'a', 199);
	c->admin_socket[199] = '\0';
	ck_assert_int_eq(drp_ctl_socket_path(c, NULL, p, sizeof(p)),
			 -ENAMETOOLONG);
	drp_conf_free(c);
}
END_TEST

Suite *ctl_suite(void)
{
	Suite *s = suite_create("ctl");
	TCase *tc = tcase_create("ctl");
	tcase_add_loop_test(tc, parse_ref, 0, sizeof(refs) / sizeof(refs[0]));
	tcase_add_test(tc, parse_commands);
	tcase_add_test(tc, encode_decode);
	tcase_add_test(tc, socket_path);
	suite_add_tcase(s, tc);
	return s;
}
