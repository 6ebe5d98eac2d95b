/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the proxy users' htpasswd file (auth/users.c) and the
 * Proxy-Authorization values checked against it.
 *
 * The input is the file, read through drp_users_load() (a memfd, so NUL
 * bytes and CRLF reach the parser as they would from disk) and through
 * drp_users_load_string(); both must agree. When the file loads, every
 * name written on a line is looked up and, if the file holds only hashes
 * that cost little to check ({SHA}, $apr1$: bcrypt and SHA-crypt costs
 * come from the file and are the operator's choice), the first one is
 * checked through a real "Basic" value: the verdict is a documented one,
 * agrees with drp_users_has() and is the same from the verdict cache. The
 * input as a Proxy-Authorization value goes through drp_users_parse_basic()
 * too.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "auth/users.h"
#include "util/base64.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant names itself, then aborts (a finding). */
#define CHECK(x)                                                               \
	do {                                                                   \
		if (!(x)) {                                                    \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #x);                                 \
			abort();                                               \
		}                                                              \
	} while (0)

static drp_users_t *load_fd(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	if (fd < 0) {
		fd = memfd_create("htpasswd", MFD_CLOEXEC);
		CHECK(fd >= 0);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	CHECK(ftruncate(fd, 0) == 0);
	CHECK(pwrite(fd, data, size, 0) == (ssize_t)size);
	drp_conf_errors_t errs = {0};
	drp_users_t *u = drp_users_load(path, &errs);
	CHECK((u == NULL) == (errs.n > 0));
	drp_conf_errors_free(&errs);
	return u;
}

static void check_user(drp_users_t *u, const char *name, size_t nlen,
		       bool cheap)
{
	char user[300];
	if (nlen >= sizeof(user))
		return;
	memcpy(user, name, nlen);
	user[nlen] = '\0';
	bool has = drp_users_has(u, user);
	if (!cheap)
		return;
	/* One check ($apr1$ costs 1000 MD5 rounds), through a real
	 * "Basic" value: the verdict is a documented one, agrees with
	 * drp_users_has(), and the second time comes from the cache. */
	char cred[600], value[900];
	int n = snprintf(cred, sizeof(cred), "%s:password", user);
	strcpy(value, "Basic ");
	ssize_t e = drp_base64_encode(cred, (size_t)n, value + 6,
				      sizeof(value) - 6);
	CHECK(e > 0);
	char *who = NULL;
	int c = drp_users_check_sync(u, value, &who);
	CHECK(c == 0 || c == -EACCES || c == -ENOENT || c == -EINVAL);
	if (c != -EINVAL) {
		CHECK((c != -ENOENT) == has);
		CHECK(who != NULL && strcmp(who, user) == 0);
	}
	free(who);
	who = NULL;
	CHECK(drp_users_check_sync(u, value, &who) == c);
	free(who);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	if (!quiet) {
		drp_log_set_level(DRP_LOG_ERR);
		quiet = true;
	}
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';

	drp_users_t *u = load_fd(data, size);
	drp_conf_errors_t errs = {0};
	drp_users_t *v = drp_users_load_string("fuzz.htpasswd", s, &errs);
	CHECK((v == NULL) == (errs.n > 0));
	drp_conf_errors_free(&errs);
	if (memchr(data, '\0', size) == NULL) {
		CHECK((u == NULL) == (v == NULL));
		CHECK(u == NULL || drp_users_count(u) == drp_users_count(v));
	} else {
		CHECK(u == NULL);
	}
	if (v != NULL)
		drp_users_unref(v);

	if (u != NULL) {
		bool cheap = strstr(s, "$2") == NULL &&
			     strstr(s, "$5$") == NULL &&
			     strstr(s, "$6$") == NULL;
		unsigned lines = 0, checked = 0;
		for (const char *p = s; *p;) {
			const char *nl = strchr(p, '\n');
			size_t ll = nl ? (size_t)(nl - p) : strlen(p);
			size_t sp = strspn(p, " \t");
			const char *colon = memchr(p, ':', ll);
			if (colon != NULL && p + sp < colon)
				check_user(u, p + sp, (size_t)(colon - p - sp),
					   cheap && checked++ < 1);
			lines++;
			p = nl ? nl + 1 : p + ll;
		}
		CHECK(drp_users_count(u) <= lines);
		drp_users_unref(u);
	}

	char *user = NULL, *pw = NULL;
	int r = drp_users_parse_basic(s, &user, &pw);
	CHECK(r == 0 || r == -EINVAL);
	if (r == 0) {
		CHECK(*user != '\0' && strlen(user) <= DRP_USERS_NAME_MAX);
		CHECK(strchr(user, ':') == NULL);
		for (const char *q = user; *q; q++)
			CHECK((unsigned char)*q >= 0x20 && *q != 0x7f);
	} else {
		CHECK(user == NULL && pw == NULL);
	}
	free(user);
	free(pw);
	free(s);
	return 0;
}
