/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "admin/setup.h"

Suite *setup_suite(void);

#define URL "http://192.0.2.1:3128"

static char dir[64];

static void write_file(const char *name, const char *content, mode_t mode)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fputs(content, f), 0);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
}

/* Contents of dir/name, malloc'd, or NULL if it does not exist. */
static char *read_file(const char *name)
{
	char path[256];
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	char *s = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(fread(s, 1, (size_t)n, f), (size_t)n);
	s[n] = '\0';
	fclose(f);
	return s;
}

static int file_mode(const char *name)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (stat(path, &st) != 0)
		return -1;
	return (int)(st.st_mode & 07777);
}

static int run(const char *cmd)
{
	int st = system(cmd);

	ck_assert_int_ne(st, -1);
	ck_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/drp-test-setup.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	run(cmd);
}

START_TEST(url_validation)
{
	static const struct {
		const char *url;
		int ok;
	} cases[] = {
		/* IPv4 address and port: the usual case. */
		{"http://192.168.1.10:3128", 1},
		/* Bracketed IPv6 literal. */
		{"http://[fd00::1]:3128", 1},
		/* Host name with dashes, trailing slash. */
		{"http://proxy-1.corp.example:3128/", 1},
		/* Command substitution through a Host header. */
		{"http://$(reboot):3128", 0},
		/* Breaking out of the single quotes. */
		{"http://a'b", 0},
		/* Command separator. */
		{"http://a;reboot", 0},
		/* Backquotes. */
		{"http://`id`", 0},
		/* Space and newline. */
		{"http://a b", 0},
		{"http://a\nb", 0},
		/* Heredoc-relevant characters. */
		{"http://a\\b", 0},
		/* Userinfo is not needed and '@' is not in the set. */
		{"http://u@a:3128", 0},
		/* Wrong or missing scheme. */
		{"https://a:3128", 0},
		{"a:3128", 0},
		/* Nothing after the scheme, or only a path. */
		{"http://", 0},
		{"http:///ca.crt", 0},
		/* Empty. */
		{"", 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_msg(drp_setup_url_valid(cases[i].url) == cases[i].ok,
			      "case %zu: %s", i, cases[i].url);
		char *s = drp_setup_systemd_script(cases[i].url);
		ck_assert_msg((s != NULL) == cases[i].ok, "case %zu", i);
		free(s);
	}
	ck_assert_int_eq(drp_setup_url_valid(NULL), 0);
	ck_assert_ptr_null(drp_setup_systemd_script(NULL));

	/* 255 characters after the scheme are accepted, 256 are not. */
	char longurl[300] = "http://";
	memset(longurl + 7, 'a', 255);
	longurl[7 + 255] = '\0';
	ck_assert_int_eq(drp_setup_url_valid(longurl), 1);
	longurl[7 + 255] = 'a';
	longurl[7 + 256] = '\0';
	ck_assert_int_eq(drp_setup_url_valid(longurl), 0);
}
END_TEST

START_TEST(script_text)
{
	char *s = drp_setup_systemd_script(URL "//");

	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(strncmp(s, "#!/bin/sh\n", 10), 0);
	ck_assert_ptr_nonnull(strstr(s, "\nset -eu\n"));
	/* Trailing slashes dropped; every placeholder replaced. */
	ck_assert_ptr_nonnull(strstr(s, "\nproxy='" URL "'\n"));
	ck_assert_ptr_nonnull(strstr(s, "curl -fsS " URL "/setup/systemd"));
	ck_assert_ptr_null(strstr(s, "@PROXY@"));
	ck_assert_ptr_null(strstr(s, URL "/'"));
	ck_assert_ptr_nonnull(strstr(s, "NO_PROXY=localhost,127.0.0.1"));
	free(s);
}
END_TEST

START_TEST(script_syntax)
{
	char *s = drp_setup_systemd_script("http://[fd00::1]:3128");
	char cmd[256];

	ck_assert_ptr_nonnull(s);
	write_file("setup.sh", s, 0644);
	free(s);
	snprintf(cmd, sizeof(cmd), "sh -n '%s/setup.sh'", dir);
	ck_assert_int_eq(run(cmd), 0);
	/* A broken script must fail the check, or this test proves nothing. */
	write_file("broken.sh", "if true; then\n", 0644);
	snprintf(cmd, sizeof(cmd), "sh -n '%s/broken.sh' 2>/dev/null", dir);
	ck_assert_int_ne(run(cmd), 0);
}
END_TEST

#define FAKE_PEM                                                               \
	"-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"

/*
 * A PATH holding only the tools the script needs, so that curl, wget,
 * openssl and the CA tools are exactly the stubs a case installs. Every
 * stub appends its command line to dir/log.
 */
static void make_bin(void)
{
	static const char *const tools[] = {"mktemp", "rm",    "grep", "mkdir",
					    "cp",     "chmod", "cat"};
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/bin' '%s/root'", dir, dir);
	ck_assert_int_eq(run(cmd), 0);
	for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++) {
		snprintf(cmd, sizeof(cmd),
			 "ln -s \"$(command -v %s)\" '%s/bin/%s'", tools[i],
			 dir, tools[i]);
		ck_assert_int_eq(run(cmd), 0);
	}
	char stub[512];
	/* systemctl: docker is running, containerd is not. */
	snprintf(stub, sizeof(stub),
		 "#!/bin/sh\necho \"systemctl $*\" >>'%s/log'\n"
		 "[ \"$1\" != is-active ] && exit 0\n"
		 "[ \"$3\" = docker.service ] && exit 0\nexit 3\n",
		 dir);
	write_file("bin/systemctl", stub, 0755);
}

/* curl or wget stub serving body for the last argument (the URL). */
static void stub_fetcher(const char *name, const char *body)
{
	char stub[512];
	const char *base = strrchr(name, '/') + 1;

	snprintf(stub, sizeof(stub),
		 "#!/bin/sh\nout=; for a; do [ \"$prev\" = -o ] || "
		 "[ \"$prev\" = -O ] && out=$a; prev=$a; done\n"
		 "for url; do :; done\necho \"%s $url\" >>'%s/log'\n"
		 "printf '%%s' '%s' >\"$out\"\n",
		 base, dir, body);
	write_file(name, stub, 0755);
}

static void stub_logger(const char *name)
{
	char stub[256];
	const char *base = strrchr(name, '/') + 1;

	snprintf(stub, sizeof(stub), "#!/bin/sh\necho \"%s $*\" >>'%s/log'\n",
		 base, dir);
	write_file(name, stub, 0755);
}

/* Runs the script for URL with the stubs; returns its exit status. */
static int run_script(void)
{
	char *s = drp_setup_systemd_script(URL);
	char cmd[512];

	ck_assert_ptr_nonnull(s);
	write_file("setup.sh", s, 0644);
	free(s);
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && DRP_SETUP_ROOT='%s/root' PATH='%s/bin' "
		 "/bin/sh setup.sh >out 2>err",
		 dir, dir, dir);
	return run(cmd);
}

static const char dropin[] =
	"# Written by docker-registry-proxy's /setup/systemd.\n"
	"[Service]\n"
	"Environment=\"HTTP_PROXY=" URL "\"\n"
	"Environment=\"HTTPS_PROXY=" URL "\"\n"
	"Environment=\"NO_PROXY=localhost,127.0.0.1\"\n";

static void expect_file(const char *name, const char *content)
{
	char *s = read_file(name);

	ck_assert_msg(s != NULL, "%s missing", name);
	ck_assert_str_eq(s, content);
	free(s);
}

START_TEST(runs_on_debian_like_host)
{
	make_bin();
	stub_fetcher("bin/curl", FAKE_PEM);
	stub_logger("bin/update-ca-certificates");
	ck_assert_int_eq(run_script(), 0);

	expect_file("root/etc/systemd/system/docker.service.d/http-proxy.conf",
		    dropin);
	expect_file("root/etc/systemd/system/containerd.service.d/"
		    "http-proxy.conf",
		    dropin);
	expect_file("root/usr/local/share/ca-certificates/"
		    "docker-registry-proxy.crt",
		    FAKE_PEM);
	ck_assert_int_eq(file_mode("root/usr/local/share/ca-certificates/"
				   "docker-registry-proxy.crt"),
			 0644);
	/* CA first, then systemd; containerd is inactive so only docker is
	 * restarted. */
	expect_file("log", "curl " URL "/ca.crt\n"
			   "update-ca-certificates \n"
			   "systemctl daemon-reload\n"
			   "systemctl is-active --quiet containerd.service\n"
			   "systemctl is-active --quiet docker.service\n"
			   "systemctl restart docker.service\n");
	char *out = read_file("out");
	ck_assert_ptr_nonnull(out);
	ck_assert_ptr_nonnull(strstr(out,
				     "docker-registry-proxy setup: restarted "
				     "docker.service\n"));
	ck_assert_ptr_nonnull(strstr(out, "containerd.service not active"));
	free(out);
}
END_TEST

START_TEST(runs_on_rhel_like_host_with_wget)
{
	make_bin();
	stub_fetcher("bin/wget", FAKE_PEM);
	stub_logger("bin/update-ca-trust");
	/* openssl present: the fingerprint is printed for comparison. */
	write_file("bin/openssl",
		   "#!/bin/sh\necho 'SHA256 Fingerprint=AB:CD'\n", 0755);
	ck_assert_int_eq(run_script(), 0);

	expect_file("root/etc/pki/ca-trust/source/anchors/"
		    "docker-registry-proxy.crt",
		    FAKE_PEM);
	expect_file("root/etc/systemd/system/docker.service.d/http-proxy.conf",
		    dropin);
	expect_file("log", "wget " URL "/ca.crt\n"
			   "update-ca-trust extract\n"
			   "systemctl daemon-reload\n"
			   "systemctl is-active --quiet containerd.service\n"
			   "systemctl is-active --quiet docker.service\n"
			   "systemctl restart docker.service\n");
	char *out = read_file("out");
	ck_assert_ptr_nonnull(out);
	ck_assert_ptr_nonnull(strstr(out, "docker-registry-proxy setup: proxy "
					  "CA SHA256 Fingerprint=AB:CD\n"));
	free(out);
}
END_TEST

START_TEST(bad_ca_changes_nothing)
{
	make_bin();
	/* The "proxy" answers with an HTML page instead of the CA. */
	stub_fetcher("bin/curl", "<html>not found</html>");
	stub_logger("bin/update-ca-certificates");
	ck_assert_int_eq(run_script(), 1);

	ck_assert_ptr_null(read_file("root/etc/systemd/system/docker.service.d/"
				     "http-proxy.conf"));
	ck_assert_ptr_null(read_file("root/usr/local/share/ca-certificates/"
				     "docker-registry-proxy.crt"));
	expect_file("log", "curl " URL "/ca.crt\n");
	expect_file("err", "docker-registry-proxy setup: error: " URL
			   "/ca.crt is not a PEM certificate\n");
}
END_TEST

START_TEST(no_fetcher_fails_cleanly)
{
	make_bin();
	stub_logger("bin/update-ca-certificates");
	ck_assert_int_eq(run_script(), 1);
	expect_file("err", "docker-registry-proxy setup: error: neither curl "
			   "nor wget found\n");
	ck_assert_ptr_null(read_file("log"));
}
END_TEST

Suite *setup_suite(void)
{
	Suite *s = suite_create("setup");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, url_validation);
	tcase_add_test(tc, script_text);
	suite_add_tcase(s, tc);

	TCase *run_tc = tcase_create("run");
	tcase_add_checked_fixture(run_tc, setup, teardown);
	tcase_add_test(run_tc, script_syntax);
	tcase_add_test(run_tc, runs_on_debian_like_host);
	tcase_add_test(run_tc, runs_on_rhel_like_host_with_wget);
	tcase_add_test(run_tc, bad_ca_changes_nothing);
	tcase_add_test(run_tc, no_fetcher_fails_cleanly);
	suite_add_tcase(s, run_tc);
	return s;
}
