/* SPDX-License-Identifier: MIT */
/*
 * Proxy users (src/auth/users.c): the htpasswd parser, the password
 * schemes against vectors written by Apache's htpasswd(1) (apache2-utils
 * 2.4: -B bcrypt, -m apr1, -s SHA-1, -2/-5 SHA-crypt), the
 * Proxy-Authorization decoder, the verdict cache and the verifier
 * threads delivering on a real libev loop.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/users.h"
#include "util/base64.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/pool.h"

Suite *users_suite(void);

/* Written by `htpasswd -bn[B|m|s|2|5] USER PASSWORD` (bcrypt at low
 * cost, -C 4/5, to keep the test fast); bcb's $2y$ was renamed $2b$
 * (the same algorithm). */
#define VECTORS                                                                \
	"alice:$2y$05$P63CbjRoWO7NukeAapLmOeAT2OewcpnwJCOW0O8EF3x6xTBrMAO66\n" \
	"bcb:$2b$04$ZBbv3mMy8XDrmIv5zij6mODEoaT4hdSXZxQ14wwr8SybOfBvb0zP6\n"   \
	"bob:$apr1$e0jztoCR$wx1XgLhc/J5spaSvQlFo8.\n"                          \
	"long:$apr1$aKZ.iUwq$BpXag.sb9kvku7lZNUpjV1\n"                         \
	"utf8:$apr1$r0Q9Bj9l$XFCCfAgxNNl940YtnY4DZ.\n"                         \
	"carol:{SHA}hsAaMBat8aKiQgxhKhAqvbXOPbw=\n"                            \
	"dave:$5$5482q0XEQ5T6YqVs$XaeAf37pBKIHpYnA5E1zgHGpUyfZ23ZudTd."        \
	"teKU1mB\n"                                                            \
	"erin:$6$Y3uBbqi0WoJvi9t6$FITpTqob2Gi7scJTAarqTgGzQAxycJhkV0d7EAC1HGL" \
	"I2MEBUubXh1VGyJc0zqstOzBPnOIj7GR6Y3.cdUlKF.\n"

static char logpath[64];

static void log_setup(void)
{
	snprintf(logpath, sizeof(logpath), "/tmp/test_users.%d.log", getpid());
	unlink(logpath);
	drp_log_init(DRP_LOG_INFO, logpath);
}

static void log_teardown(void)
{
	drp_log_init(DRP_LOG_WARNING, NULL);
	unlink(logpath);
}

static char *read_log(void)
{
	static char buf[8192];
	FILE *f = fopen(logpath, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	return buf;
}

static drp_users_t *load_ok(const char *text)
{
	drp_conf_errors_t errs = {0};
	drp_users_t *u = drp_users_load_string("users", text, &errs);
	ck_assert_msg(u != NULL, "%s", errs.n ? errs.msg[0] : "?");
	ck_assert_uint_eq(errs.n, 0);
	return u;
}

static const struct {
	const char *user, *password;
	int want;
} verify_cases[] = {
	/* bcrypt $2y$: right, wrong, a prefix of the right one */
	{"alice", "alice-pw", 0},
	{"alice", "alice-pW", -EACCES},
	{"alice", "alice-p", -EACCES},
	/* bcrypt $2b$ */
	{"bcb", "pw2b", 0},
	{"bcb", "", -EACCES},
	/* apr1: a password with a blank and a colon */
	{"bob", "bob pw:with colon", 0},
	{"bob", "bob pw", -EACCES},
	/* apr1: longer than one MD5 block of the alternate sum */
	{"long", "a-password-longer-than-sixteen-bytes-for-apr1", 0},
	{"long", "a-password-longer-than-sixteen-bytes-for-apr2", -EACCES},
	/* apr1: UTF-8 bytes */
	{"utf8", "p\xc3\xa4ssw\xc3\xb6rd", 0},
	{"utf8", "passwort", -EACCES},
	/* {SHA} */
	{"carol", "carol-pw", 0},
	{"carol", "carol-pw ", -EACCES},
	/* SHA-256-crypt and SHA-512-crypt */
	{"dave", "dave-pw", 0},
	{"dave", "erin-pw", -EACCES},
	{"erin", "erin-pw", 0},
	{"erin", "dave-pw", -EACCES},
	/* no such user; names are case-sensitive */
	{"mallory", "alice-pw", -ENOENT},
	{"Alice", "alice-pw", -ENOENT},
};

START_TEST(verify_table)
{
	drp_users_t *u = load_ok(VECTORS);
	ck_assert_uint_eq(drp_users_count(u), 8);
	ck_assert_int_eq(drp_users_verify(u, verify_cases[_i].user,
					  verify_cases[_i].password),
			 verify_cases[_i].want);
	drp_users_unref(u);
}
END_TEST

/* apr1 at the lengths where the construction changes: empty, one
 * byte, exactly one and just over one MD5 block of the alternate sum,
 * two blocks and just over (vectors by htpasswd -bnm). */
static const struct {
	const char *line, *password;
} apr1_cases[] = {
	{"u:$apr1$Dn6TFMK7$edWGWa2nlnFg2lntCtuvk0", ""},
	{"u:$apr1$Ect0wMs9$RRsHv9DWvIvvDZZbFY2sL0", "a"},
	{"u:$apr1$Ng1RimOo$JQkVJovtAbI4Z5qJLAaMk/", "0123456789abcdef"},
	{"u:$apr1$f7Bzn2wd$tKVOhDJmnsPQDb9//d1hB/", "0123456789abcdefg"},
	{"u:$apr1$qkjCJmEW$cyp5T4Fgnp5gUcG5XtJno/",
	 "0123456789abcdef0123456789abcdef"},
	{"u:$apr1$ENivrOpA$fUPKqJw9J0hT1kUeqyx2l0",
	 "0123456789abcdef0123456789abcdefX"},
};

START_TEST(apr1_lengths)
{
	drp_users_t *u = load_ok(apr1_cases[_i].line);
	ck_assert_int_eq(drp_users_verify(u, "u", apr1_cases[_i].password), 0);
	ck_assert_int_eq(drp_users_verify(u, "u", "0123456789abcdefY"),
			 -EACCES);
	drp_users_unref(u);
}
END_TEST

static const struct {
	const char *text;
	const char *err;
} bad_files[] = {
	/* no colon */
	{"alice\n", "users:1: expected USER:HASH (as written by htpasswd)"},
	/* empty user name, after a comment and a blank line */
	{"# users\n\n:$apr1$e0jztoCR$wx1XgLhc/J5spaSvQlFo8.\n",
	 "users:3: invalid user name (1 to 255 characters, no control "
	 "characters)"},
	/* no hash */
	{"alice:\n", "users:1: user 'alice' has no password hash"},
	/* the same user twice (CRLF lines) */
	{"bob:$apr1$e0jztoCR$wx1XgLhc/J5spaSvQlFo8.\r\n"
	 "bob:{SHA}hsAaMBat8aKiQgxhKhAqvbXOPbw=\r\n",
	 "users:2: duplicate user 'bob' (first at line 1)"},
	/* bcrypt cut short */
	{"alice:$2y$05$P63CbjRoWO7NukeAapLmOeAT2OewcpnwJCOW0O8EF3x6xT\n",
	 "users:1: user 'alice': malformed bcrypt hash"},
	/* bcrypt with a bad cost field */
	{"alice:$2y$x5$P63CbjRoWO7NukeAapLmOeAT2OewcpnwJCOW0O8EF3x6xTBrMAO66\n",
	 "users:1: user 'alice': malformed bcrypt hash"},
	/* apr1 without its hash part */
	{"bob:$apr1$e0jztoCR$\n", "users:1: user 'bob': malformed $apr1$ hash"},
	/* apr1 with a salt over 8 characters */
	{"bob:$apr1$e0jztoCRx$wx1XgLhc/J5spaSvQlFo8.\n",
	 "users:1: user 'bob': malformed $apr1$ hash"},
	/* {SHA} of the wrong length */
	{"carol:{SHA}hsAaMBat8aKiQgxhKhAqvbXOPb==\n",
	 "users:1: user 'carol': malformed {SHA} hash"},
	/* a control character in a name */
	{"a\tb:{SHA}hsAaMBat8aKiQgxhKhAqvbXOPbw=\n",
	 "users:1: invalid user name (1 to 255 characters, no control "
	 "characters)"},
};

START_TEST(bad_file_table)
{
	drp_conf_errors_t errs = {0};
	drp_users_t *u =
		drp_users_load_string("users", bad_files[_i].text, &errs);
	ck_assert_ptr_null(u);
	ck_assert_uint_eq(errs.n, 1);
	ck_assert_str_eq(errs.msg[0], bad_files[_i].err);
	drp_conf_errors_free(&errs);
}
END_TEST

/* Weak entries are skipped with a warning that names file:line and
 * never shows the password. */
START_TEST(weak_entries_skipped)
{
	log_setup();
	drp_users_t *u = load_ok("plain:hunter2-secret\n"
				 "des:o0sXdvtGxeO26\n"
				 "md5:$1$ab$Aa2cPQoU2VsJVgVGnPjxQ1\n"
				 "bob:$apr1$e0jztoCR$wx1XgLhc/J5spaSvQlFo8.\n");
	ck_assert_uint_eq(drp_users_count(u), 1);
	ck_assert(drp_users_has(u, "bob"));
	ck_assert(!drp_users_has(u, "plain"));
	ck_assert_int_eq(drp_users_verify(u, "plain", "hunter2-secret"),
			 -ENOENT);
	ck_assert_int_eq(drp_users_verify(u, "des", "despw"), -ENOENT);
	const char *log = read_log();
	ck_assert_ptr_nonnull(strstr(log, "users:1: user 'plain' skipped: "
					  "plaintext passwords are not "
					  "accepted"));
	ck_assert_ptr_nonnull(strstr(log, "users:2: user 'des' skipped: "
					  "crypt(3) DES hashes are not "
					  "accepted"));
	ck_assert_ptr_nonnull(strstr(log, "users:3: user 'md5' skipped: "
					  "unsupported hash scheme"));
	ck_assert_ptr_null(strstr(log, "hunter2"));
	ck_assert_ptr_null(strstr(log, "o0sX"));
	drp_users_unref(u);

	/* Nobody left: a warning, not an error. */
	u = load_ok("# nobody\nplain:pw\n");
	ck_assert_uint_eq(drp_users_count(u), 0);
	ck_assert_ptr_nonnull(strstr(read_log(),
				     "users: no user can log in (1 entry "
				     "skipped)"));
	drp_users_unref(u);
	log_teardown();
}
END_TEST

START_TEST(load_file)
{
	drp_conf_errors_t errs = {0};
	ck_assert_ptr_null(drp_users_load("/nonexistent/users", &errs));
	ck_assert_uint_eq(errs.n, 1);
	ck_assert_str_eq(errs.msg[0], "/nonexistent/users: cannot open: No "
				      "such file or directory");
	drp_conf_errors_free(&errs);

	char path[64];
	snprintf(path, sizeof(path), "/tmp/test_users.%d.htpasswd", getpid());
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(VECTORS, f);
	fclose(f);
	drp_users_t *u = drp_users_load(path, &errs);
	ck_assert_ptr_nonnull(u);
	ck_assert_str_eq(drp_users_path(u), path);
	ck_assert_int_eq(drp_users_verify(u, "carol", "carol-pw"), 0);
	drp_users_unref(u);
	unlink(path);
}
END_TEST

static const struct {
	const char *value;
	int want;
	const char *user, *password;
} basic_cases[] = {
	/* alice:alice-pw */
	{"Basic YWxpY2U6YWxpY2UtcHc=", 0, "alice", "alice-pw"},
	/* scheme in another case, extra blanks around the token */
	{"  bAsIc   YWxpY2U6YWxpY2UtcHc=  ", 0, "alice", "alice-pw"},
	/* only the first colon separates: "bob:a:b" */
	{"Basic Ym9iOmE6Yg==", 0, "bob", "a:b"},
	/* an empty password: "u:" */
	{"Basic dTo=", 0, "u", ""},
	/* not Basic */
	{"Bearer YWxpY2U6YWxpY2UtcHc=", -EINVAL, NULL, NULL},
	/* the scheme alone */
	{"Basic", -EINVAL, NULL, NULL},
	/* "Basicx" is another scheme */
	{"BasicYWxpY2U6YWxpY2UtcHc=", -EINVAL, NULL, NULL},
	/* no colon: "alice" */
	{"Basic YWxpY2U=", -EINVAL, NULL, NULL},
	/* an empty name: ":pw" */
	{"Basic OnB3", -EINVAL, NULL, NULL},
	/* The padding left out, as some clients send it (RFC 4648 lets a
	 * decoder accept that; the token's end is known): one '=' ... */
	{"Basic YWxpY2U6YWxpY2UtcHc", 0, "alice", "alice-pw"},
	/* ... and two: "bob:a:b", "u:" */
	{"Basic Ym9iOmE6Yg", 0, "bob", "a:b"},
	{"Basic dTo", 0, "u", ""},
	/* a password that is not UTF-8 (Latin-1 "\xe9t\xe9"): bytes
	 * kept as they are */
	{"Basic dTrpdOk=", 0, "u", "\xe9t\xe9"},
	{"Basic dTrpdOk", 0, "u", "\xe9t\xe9"},
	/* a password of colons and blanks: "u: : " */
	{"Basic dTogOiA=", 0, "u", " : "},
	/* an empty name and password: ":" */
	{"Basic Og==", -EINVAL, NULL, NULL},
	{"Basic Og", -EINVAL, NULL, NULL},
	/* bad base64: a lone last character (4k+1), incomplete padding,
	 * alphabet, base64url, padding in the middle */
	{"Basic YWxpY2U6YWxpY2Utc", -EINVAL, NULL, NULL},
	{"Basic YWxpY2U6YWxpY2UtcHc==", -EINVAL, NULL, NULL},
	{"Basic Ym9iOmE6Yg=", -EINVAL, NULL, NULL},
	{"Basic YWxp*2U6YWxpY2UtcHc=", -EINVAL, NULL, NULL},
	{"Basic YWxp-2U6YWxpY2UtcHc=", -EINVAL, NULL, NULL},
	{"Basic YW==Y2U6YWxpY2UtcHc=", -EINVAL, NULL, NULL},
	/* two tokens */
	{"Basic YWxpY2U6YWxpY2UtcHc= x", -EINVAL, NULL, NULL},
	/* a NUL byte inside: "a\0b:pw" */
	{"Basic YQBiOnB3", -EINVAL, NULL, NULL},
	/* a control character in the name: "a\nb:pw" */
	{"Basic YQpiOnB3", -EINVAL, NULL, NULL},
};

START_TEST(parse_basic_table)
{
	char *user = (char *)"x", *pw = (char *)"x";
	int r = drp_users_parse_basic(basic_cases[_i].value, &user, &pw);
	ck_assert_int_eq(r, basic_cases[_i].want);
	if (r == 0) {
		ck_assert_str_eq(user, basic_cases[_i].user);
		ck_assert_str_eq(pw, basic_cases[_i].password);
	} else {
		ck_assert_ptr_null(user);
		ck_assert_ptr_null(pw);
	}
	free(user);
	free(pw);
}
END_TEST

/* Basic values as verdicts, at the edges: the padding left out (some
 * HTTP clients do; such a value was refused as malformed), the longest
 * token taken (8192 characters) and one group more. */
START_TEST(basic_edges)
{
	drp_users_t *u = load_ok(VECTORS);
	char *user = NULL;
	/* alice:alice-pw (bcrypt), one '=' left out */
	ck_assert_int_eq(
		drp_users_check_sync(u, "Basic YWxpY2U6YWxpY2UtcHc", &user), 0);
	ck_assert_str_eq(user, "alice");
	free(user);
	/* carol:carol-pw ({SHA}), one '=' left out; and a wrong one */
	ck_assert_int_eq(
		drp_users_check_sync(u, "Basic Y2Fyb2w6Y2Fyb2wtcHc", &user), 0);
	ck_assert_str_eq(user, "carol");
	free(user);
	ck_assert_int_eq(
		drp_users_check_sync(u, "Basic YWxpY2U6d3Jvbmc", &user),
		-EACCES);
	free(user);

	/* "u:" and a password of 6142 bytes: 6144 bytes, 8192 characters */
	size_t plen = 8192 / 4 * 3 - 2;
	char *plain = malloc(plen + 3), *value = malloc(8192 + 16);
	memcpy(plain, "u:", 2);
	memset(plain + 2, 'p', plen + 1);
	memcpy(value, "Basic ", 6);
	ck_assert_int_eq(
		drp_base64_encode(plain, plen + 2, value + 6, 8192 + 1), 8192);
	char *name = NULL, *pw = NULL;
	ck_assert_int_eq(drp_users_parse_basic(value, &name, &pw), 0);
	ck_assert_str_eq(name, "u");
	ck_assert_uint_eq(strlen(pw), plen);
	free(name);
	free(pw);
	/* one byte less: the same length with one '=', or without it */
	ck_assert_int_eq(
		drp_base64_encode(plain, plen + 1, value + 6, 8192 + 1), 8192);
	ck_assert_int_eq(drp_users_parse_basic(value, &name, &pw), 0);
	ck_assert_uint_eq(strlen(pw), plen - 1);
	free(name);
	free(pw);
	value[6 + 8191] = '\0';
	ck_assert_int_eq(drp_users_parse_basic(value, &name, &pw), 0);
	ck_assert_uint_eq(strlen(pw), plen - 1);
	free(name);
	free(pw);
	/* one byte more: 8196 characters, refused */
	ck_assert_int_eq(
		drp_base64_encode(plain, plen + 3, value + 6, 8196 + 1), 8196);
	ck_assert_int_eq(drp_users_parse_basic(value, &name, &pw), -EINVAL);
	ck_assert_ptr_null(name);
	ck_assert_ptr_null(pw);
	free(plain);
	free(value);
	drp_users_unref(u);
}
END_TEST

static double fake_now = 1000;
static double fake_clock(void)
{
	return fake_now;
}

/* Verdicts are cached by the value's SHA-256 for the TTL, refusals too;
 * a new generation starts empty. */
START_TEST(cache)
{
	drp_users_t *u = load_ok(VECTORS);
	drp_users_set_clock(u, fake_clock);
	const char *good = "Basic YWxpY2U6YWxpY2UtcHc="; /* alice:alice-pw */
	const char *wrong = "Basic YWxpY2U6d3Jvbmc=";	 /* alice:wrong */
	const char *nobody = "Basic bWFsbG9yeTpwdw==";	 /* mallory:pw */
	uint8_t kg[32], kw[32];
	drp_users_key(good, strlen(good), kg);
	drp_users_key(wrong, strlen(wrong), kw);
	char *user = NULL;
	ck_assert_int_eq(drp_users_cache_get(u, kg, &user), -ESRCH);

	ck_assert_int_eq(drp_users_check_sync(u, good, &user), 0);
	ck_assert_str_eq(user, "alice");
	free(user);
	ck_assert_int_eq(drp_users_check_sync(u, wrong, &user), -EACCES);
	ck_assert_str_eq(user, "alice");
	free(user);
	ck_assert_int_eq(drp_users_check_sync(u, nobody, &user), -ENOENT);
	ck_assert_str_eq(user, "mallory");
	free(user);
	ck_assert_int_eq(drp_users_check_sync(u, "Bearer x", &user), -EINVAL);
	ck_assert_ptr_null(user);

	ck_assert_int_eq(drp_users_cache_get(u, kg, &user), 0);
	ck_assert_str_eq(user, "alice");
	free(user);
	ck_assert_int_eq(drp_users_cache_get(u, kw, &user), -EACCES);
	free(user);
	/* A planted verdict is what the cache answers: it is consulted
	 * before any verification. */
	drp_users_cache_put(u, kw, 0, "alice");
	ck_assert_int_eq(drp_users_check_sync(u, wrong, &user), 0);
	free(user);
	/* Expired: verified again. */
	fake_now += DRP_USERS_CACHE_TTL + 1;
	ck_assert_int_eq(drp_users_cache_get(u, kw, &user), -ESRCH);
	ck_assert_int_eq(drp_users_check_sync(u, wrong, &user), -EACCES);
	free(user);

	/* Bounded: many distinct values never grow it past the limit, and
	 * the newest verdict is kept. */
	for (unsigned i = 0; i < DRP_USERS_CACHE_MAX + 100; i++) {
		uint8_t k[32];
		char v[32];
		snprintf(v, sizeof(v), "v%u", i);
		drp_users_key(v, strlen(v), k);
		drp_users_cache_put(u, k, -EINVAL, NULL);
		ck_assert_int_eq(drp_users_cache_get(u, k, &user), -EINVAL);
	}

	drp_users_t *u2 = load_ok(VECTORS);
	ck_assert_int_eq(drp_users_cache_get(u2, kg, &user), -ESRCH);
	drp_users_unref(u2);
	drp_users_unref(u);
}
END_TEST

/* ---- the verifier threads ---- */

/* bcrypt at cost 10: tens of ms, seconds under valgrind. */
#define SLOW                                                                   \
	"slow:$2y$10$XPK0xdIFnKxg8c/evZy0gezLm/2.TV3.XxfdQ/nYtwUCnfB.oTKWG\n"

typedef struct got {
	int calls;
	int verdict;
	char user[64];
} got_t;

static void on_verdict(void *arg, int verdict, const char *user)
{
	got_t *g = arg;
	g->calls++;
	g->verdict = verdict;
	snprintf(g->user, sizeof(g->user), "%s", user ? user : "(null)");
}

/* Run the loop until cond or 10 s. */
#define RUN_UNTIL(loop, cond)                                                  \
	do {                                                                   \
		for (int i_ = 0; i_ < 1000 && !(cond); i_++) {                 \
			ev_run((loop), EVRUN_NOWAIT);                          \
			usleep(10000);                                         \
		}                                                              \
	} while (0)

START_TEST(pool_delivers_on_loop)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	drp_users_pool_t *p = drp_users_pool_new(2, 8);
	ck_assert_ptr_nonnull(p);
	drp_users_t *u = load_ok(VECTORS);
	const char *good = "Basic YWxpY2U6YWxpY2UtcHc=";
	const char *wrong = "Basic Ym9iOm5vcGU="; /* bob:nope */
	got_t g1 = {0}, g2 = {0}, g3 = {0}, g4 = {0};
	drp_users_wait_t *w1, *w2, *w3, *w4;
	char *user = NULL;

	/* Held threads keep everything queued: two checks of one value
	 * share one verification, a third is cancelled; none runs inside
	 * the call. */
	drp_users_pool_hold(p, true);
	ck_assert_int_eq(drp_users_check(p, u, loop, NULL, good, &user,
					 on_verdict, &g1, &w1),
			 -EINPROGRESS);
	ck_assert_int_eq(drp_users_check(p, u, loop, NULL, good, &user,
					 on_verdict, &g2, &w2),
			 -EINPROGRESS);
	ck_assert_int_eq(drp_users_check(p, u, loop, NULL, good, &user,
					 on_verdict, &g3, &w3),
			 -EINPROGRESS);
	drp_users_wait_cancel(p, w3);
	ck_assert_int_eq(drp_users_check(p, u, loop, NULL, wrong, &user,
					 on_verdict, &g4, &w4),
			 -EINPROGRESS);
	for (int i = 0; i < 5; i++)
		ev_run(loop, EVRUN_NOWAIT);
	ck_assert_int_eq(g1.calls + g2.calls + g4.calls, 0);
	drp_users_pool_hold(p, false);
	RUN_UNTIL(loop, g1.calls && g2.calls && g4.calls);
	ck_assert_int_eq(g1.calls, 1);
	ck_assert_int_eq(g1.verdict, 0);
	ck_assert_str_eq(g1.user, "alice");
	ck_assert_int_eq(g2.calls, 1);
	ck_assert_int_eq(g2.verdict, 0);
	ck_assert_int_eq(g4.calls, 1);
	ck_assert_int_eq(g4.verdict, -EACCES);
	ck_assert_str_eq(g4.user, "bob");
	ck_assert_uint_eq(drp_users_pool_verified(p), 2);
	/* Nothing more arrives; the cancelled one never. */
	for (int i = 0; i < 5; i++)
		ev_run(loop, EVRUN_NOWAIT);
	ck_assert_int_eq(g1.calls + g2.calls + g3.calls + g4.calls, 3);

	/* Now the cache answers at once, without a callback or a thread. */
	ck_assert_int_eq(drp_users_check(p, u, loop, NULL, good, &user,
					 on_verdict, &g1, &w1),
			 0);
	ck_assert_str_eq(user, "alice");
	free(user);
	ck_assert_int_eq(drp_users_check(p, u, loop, NULL, wrong, &user,
					 on_verdict, &g4, &w4),
			 -EACCES);
	free(user);
	/* A malformed value needs no thread either. */
	ck_assert_int_eq(drp_users_check(p, u, loop, NULL, "Basic !", &user,
					 on_verdict, &g4, &w4),
			 -EINVAL);
	ck_assert_int_eq(g1.calls + g4.calls, 2);
	ck_assert_uint_eq(drp_users_pool_verified(p), 2);

	drp_users_pool_free(p);
	drp_users_unref(u);
	ev_loop_destroy(loop);
}
END_TEST

/* Jobs of another lane that block until the test opens the gate. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool open;
	unsigned started;
} gate = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void gate_job(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&gate.lock);
	gate.started++;
	pthread_cond_broadcast(&gate.cond);
	while (!gate.open)
		pthread_cond_wait(&gate.cond, &gate.lock);
	pthread_mutex_unlock(&gate.lock);
}

/*
 * On the shared worker pool, a lane whose jobs hold every thread they
 * may take (cold fills waiting on slow upstreams) does not delay a
 * password check: the users lane keeps its reserved thread.
 */
START_TEST(pool_shared_not_starved)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	drp_pool_t *pool = drp_pool_new(3);
	ck_assert_ptr_nonnull(pool);
	drp_pool_lane_t *fills = drp_pool_lane_new(pool, "fills", 3, 0, 0);
	drp_users_pool_t *p = drp_users_pool_new_on(pool, 2, 8);
	ck_assert_ptr_nonnull(p);
	for (int i = 0; i < 16; i++)
		ck_assert_int_eq(drp_pool_submit(fills, NULL, gate_job, NULL,
						 NULL, NULL),
				 0);
	pthread_mutex_lock(&gate.lock);
	while (gate.started < 2)
		pthread_cond_wait(&gate.cond, &gate.lock);
	pthread_mutex_unlock(&gate.lock);
	ck_assert_uint_eq(drp_pool_lane_running(fills), 2);

	drp_users_t *u = load_ok(VECTORS);
	got_t g = {0};
	drp_users_wait_t *w;
	char *user = NULL;
	ck_assert_int_eq(drp_users_check(p, u, loop, NULL,
					 "Basic YWxpY2U6YWxpY2UtcHc=", &user,
					 on_verdict, &g, &w),
			 -EINPROGRESS);
	RUN_UNTIL(loop, g.calls);
	ck_assert_int_eq(g.calls, 1);
	ck_assert_int_eq(g.verdict, 0);
	ck_assert_str_eq(g.user, "alice");
	/* ... while every fill still blocks. */
	ck_assert_uint_eq(drp_pool_lane_running(fills), 2);
	ck_assert_uint_eq(drp_pool_lane_queued(fills), 14);

	drp_users_pool_free(p);
	pthread_mutex_lock(&gate.lock);
	gate.open = true;
	pthread_cond_broadcast(&gate.cond);
	pthread_mutex_unlock(&gate.lock);
	drp_pool_free(pool);
	drp_users_unref(u);
	ev_loop_destroy(loop);
}
END_TEST

/* A flood of distinct values beyond max_jobs is refused (-EBUSY), not
 * queued without bound; the pool then frees what is pending. */
START_TEST(pool_bounded)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	drp_users_pool_t *p = drp_users_pool_new(1, 2);
	drp_users_t *u = load_ok(SLOW);
	char *user = NULL;
	got_t g[5] = {{0}};
	drp_users_wait_t *w[5];
	const char *vals[] = {"Basic c2xvdzphMQ==", "Basic c2xvdzphMg==",
			      "Basic c2xvdzphMw==", "Basic c2xvdzphNA=="};
	drp_users_pool_hold(p, true);
	ck_assert_int_eq(drp_users_check(p, u, loop, NULL, vals[0], &user,
					 on_verdict, &g[0], &w[0]),
			 -EINPROGRESS);
	ck_assert_int_eq(drp_users_check(p, u, loop, NULL, vals[1], &user,
					 on_verdict, &g[1], &w[1]),
			 -EINPROGRESS);
	ck_assert_int_eq(drp_users_check(p, u, loop, NULL, vals[2], &user,
					 on_verdict, &g[2], &w[2]),
			 -EBUSY);
	/* ...but the same value as a pending one joins it. */
	ck_assert_int_eq(drp_users_check(p, u, loop, NULL, vals[1], &user,
					 on_verdict, &g[3], &w[3]),
			 -EINPROGRESS);
	/* Room again once one is done. */
	drp_users_pool_hold(p, false);
	RUN_UNTIL(loop, g[0].calls);
	ck_assert_int_eq(g[0].verdict, -EACCES);
	ck_assert_str_eq(g[0].user, "slow");
	int r = drp_users_check(p, u, loop, NULL, vals[3], &user, on_verdict,
				&g[4], &w[4]);
	ck_assert_int_eq(r, -EINPROGRESS);
	/* Freed with verifications queued or running and waiters maybe
	 * undelivered: no callback from the free itself, no leak. */
	int before = g[1].calls + g[3].calls + g[4].calls;
	drp_users_pool_free(p);
	ck_assert_int_eq(g[1].calls + g[3].calls + g[4].calls, before);
	ck_assert_int_eq(g[2].calls, 0);
	drp_users_unref(u);
	ev_loop_destroy(loop);
}
END_TEST

/* ---- fairness across source addresses ---- */

static struct sockaddr_storage addr_of(const char *ip)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(40000);
	} else {
		ck_assert_int_eq(inet_pton(AF_INET6, ip, &a6->sin6_addr), 1);
		a6->sin6_family = AF_INET6;
	}
	return ss;
}

/* "Basic base64(slow:pw<i>)": a distinct wrong password per i. */
static char *slow_value(unsigned i)
{
	char plain[64], *out = malloc(128);
	int n = snprintf(plain, sizeof(plain), "slow:pw%u", i);
	memcpy(out, "Basic ", 6);
	ck_assert_int_gt(drp_base64_encode(plain, (size_t)n, out + 6, 128 - 6),
			 0);
	return out;
}

#define BACKLOG 6

/* A flood from one address does not delay another's check: with the
 * verifiers held, A queues a backlog, then B one check; of the first two
 * verifications let through, one is B's (served round robin, not
 * oldest first), and A's backlog waits. A cached verdict answers at
 * once, whatever is queued. */
START_TEST(pool_round_robin)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	drp_users_pool_t *p = drp_users_pool_new(1, 64);
	drp_users_t *u = load_ok(SLOW VECTORS);
	struct sockaddr_storage a = addr_of("192.0.2.1"),
				b = addr_of("192.0.2.2");
	got_t ga[BACKLOG] = {{0}}, gb = {0};
	drp_users_wait_t *w;
	char *user = NULL, *v[BACKLOG + 1];
	for (unsigned i = 0; i <= BACKLOG; i++)
		v[i] = slow_value(i);
	/* alice's good verdict is cached before the flood. */
	const char *good = "Basic YWxpY2U6YWxpY2UtcHc=";
	ck_assert_int_eq(drp_users_check_sync(u, good, &user), 0);
	free(user);

	drp_users_pool_hold(p, true);
	for (unsigned i = 0; i < BACKLOG; i++)
		ck_assert_int_eq(drp_users_check(p, u, loop,
						 (struct sockaddr *)&a, v[i],
						 &user, on_verdict, &ga[i], &w),
				 -EINPROGRESS);
	ck_assert_int_eq(drp_users_check(p, u, loop, (struct sockaddr *)&b,
					 v[BACKLOG], &user, on_verdict, &gb,
					 &w),
			 -EINPROGRESS);
	/* The good verdict does not wait behind the queue. */
	ck_assert_int_eq(drp_users_check(p, u, loop, (struct sockaddr *)&b,
					 good, &user, on_verdict, &gb, &w),
			 0);
	ck_assert_str_eq(user, "alice");
	free(user);

	drp_users_pool_release(p, 2);
	RUN_UNTIL(loop, gb.calls && ga[0].calls);
	ck_assert_int_eq(gb.calls, 1);
	ck_assert_int_eq(gb.verdict, -EACCES);
	ck_assert_uint_eq(drp_users_pool_verified(p), 2);
	int a_done = 0;
	for (unsigned i = 0; i < BACKLOG; i++)
		a_done += ga[i].calls;
	ck_assert_int_eq(a_done, 1);
	/* Within one source, oldest first. */
	ck_assert_int_eq(ga[0].calls, 1);

	drp_users_pool_hold(p, false);
	RUN_UNTIL(loop, ga[BACKLOG - 1].calls);
	for (unsigned i = 0; i < BACKLOG; i++)
		ck_assert_int_eq(ga[i].calls, 1);
	ck_assert_uint_eq(drp_users_pool_verified(p), BACKLOG + 1);
	drp_users_pool_free(p);
	for (unsigned i = 0; i <= BACKLOG; i++)
		free(v[i]);
	drp_users_unref(u);
	ev_loop_destroy(loop);
}
END_TEST

/* With the queue full of one address's checks, another address is still
 * admitted: it takes the place of the busiest source's newest queued
 * check (whose waiter gets -EBUSY), until both have an equal share. No
 * hard per-source cap: one address alone may fill the queue. An IPv6
 * /64 is one source. */
START_TEST(pool_fair_admission)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	drp_users_pool_t *p = drp_users_pool_new(1, 4);
	drp_users_t *u = load_ok(SLOW);
	struct sockaddr_storage a = addr_of("2001:db8:1:2::1"),
				a2 = addr_of("2001:db8:1:2::99"),
				b = addr_of("192.0.2.2");
	got_t ga[5] = {{0}}, gb[3] = {{0}};
	drp_users_wait_t *w;
	char *user = NULL, *v[8];
	for (unsigned i = 0; i < 8; i++)
		v[i] = slow_value(i);

	drp_users_pool_hold(p, true);
	for (unsigned i = 0; i < 4; i++)
		ck_assert_int_eq(
			drp_users_check(p, u, loop,
					(struct sockaddr *)(i % 2 ? &a2 : &a),
					v[i], &user, on_verdict, &ga[i], &w),
			-EINPROGRESS);
	/* Full, and all of it from one /64. */
	ck_assert_int_eq(drp_users_check(p, u, loop, (struct sockaddr *)&a,
					 v[4], &user, on_verdict, &ga[4], &w),
			 -EBUSY);
	/* B is admitted twice, in place of A's newest two... */
	ck_assert_int_eq(drp_users_check(p, u, loop, (struct sockaddr *)&b,
					 v[5], &user, on_verdict, &gb[0], &w),
			 -EINPROGRESS);
	ck_assert_int_eq(drp_users_check(p, u, loop, (struct sockaddr *)&b,
					 v[6], &user, on_verdict, &gb[1], &w),
			 -EINPROGRESS);
	/* ...then has its share, as A has. */
	ck_assert_int_eq(drp_users_check(p, u, loop, (struct sockaddr *)&b,
					 v[7], &user, on_verdict, &gb[2], &w),
			 -EBUSY);
	RUN_UNTIL(loop, ga[3].calls && ga[2].calls);
	ck_assert_int_eq(ga[3].calls, 1);
	ck_assert_int_eq(ga[3].verdict, -EBUSY);
	ck_assert_int_eq(ga[2].calls, 1);
	ck_assert_int_eq(ga[2].verdict, -EBUSY);
	ck_assert_int_eq(ga[0].calls + ga[1].calls + gb[0].calls + gb[1].calls,
			 0);
	ck_assert_uint_eq(drp_users_pool_verified(p), 0);

	drp_users_pool_hold(p, false);
	RUN_UNTIL(loop,
		  ga[0].calls && ga[1].calls && gb[0].calls && gb[1].calls);
	ck_assert_int_eq(ga[0].verdict, -EACCES);
	ck_assert_int_eq(gb[1].verdict, -EACCES);
	/* Evicted checks were not verified, nor cached. */
	ck_assert_uint_eq(drp_users_pool_verified(p), 4);
	uint8_t k[32];
	drp_users_key(v[3], strlen(v[3]), k);
	ck_assert_int_eq(drp_users_cache_get(u, k, &user), -ESRCH);
	drp_users_pool_free(p);
	for (unsigned i = 0; i < 8; i++)
		free(v[i]);
	drp_users_unref(u);
	ev_loop_destroy(loop);
}
END_TEST

/* A flood of refusals never pushes a good verdict out of the full cache
 * (here: every refusal in the good verdict's own bucket). */
START_TEST(cache_keeps_good)
{
	drp_users_t *u = load_ok(VECTORS);
	drp_users_set_clock(u, fake_clock);
	uint8_t good[32] = {0}, k[32] = {0};
	good[31] = 1;
	drp_users_cache_put(u, good, 0, "alice");
	char *user = NULL;
	for (unsigned i = 0; i < 2 * DRP_USERS_CACHE_MAX; i++) {
		memcpy(k + 4, &i, sizeof(i));
		drp_users_cache_put(u, k, -EACCES, "alice");
		ck_assert_int_eq(drp_users_cache_get(u, k, &user), -EACCES);
		free(user);
	}
	ck_assert_int_eq(drp_users_cache_get(u, good, &user), 0);
	ck_assert_str_eq(user, "alice");
	free(user);
	drp_users_unref(u);
}
END_TEST

Suite *users_suite(void)
{
	Suite *s = suite_create("users");
	TCase *tc = tcase_create("htpasswd");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, verify_table, 0,
			    sizeof(verify_cases) / sizeof(verify_cases[0]));
	tcase_add_loop_test(tc, apr1_lengths, 0,
			    sizeof(apr1_cases) / sizeof(apr1_cases[0]));
	tcase_add_loop_test(tc, bad_file_table, 0,
			    sizeof(bad_files) / sizeof(bad_files[0]));
	tcase_add_test(tc, weak_entries_skipped);
	tcase_add_test(tc, load_file);
	tcase_add_loop_test(tc, parse_basic_table, 0,
			    sizeof(basic_cases) / sizeof(basic_cases[0]));
	tcase_add_test(tc, basic_edges);
	suite_add_tcase(s, tc);
	tc = tcase_create("cache");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, cache);
	tcase_add_test(tc, pool_delivers_on_loop);
	tcase_add_test(tc, pool_bounded);
	tcase_add_test(tc, pool_shared_not_starved);
	tcase_add_test(tc, pool_round_robin);
	tcase_add_test(tc, pool_fair_admission);
	tcase_add_test(tc, cache_keeps_good);
	suite_add_tcase(s, tc);
	return s;
}
