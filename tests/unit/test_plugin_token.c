/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "plugin/token.h"

Suite *plugin_token_suite(void);

/* 2024-05-01T10:00:00Z */
#define NOW ((time_t)1714557600)

static const struct {
	const char *json;
	int rc;
	const char *token;
	double expires_in;
	double ttl;
	time_t issued_at;
} cases[] = {
	/* Docker Hub's shape: token and access_token equal, issued now */
	{"{\"token\":\"abc.def\",\"access_token\":\"abc.def\","
	 "\"expires_in\":300,\"issued_at\":\"2024-05-01T10:00:00Z\"}",
	 0, "abc.def", 300, 300, NOW},
	/* "token" wins over a different "access_token" */
	{"{\"access_token\":\"oauth\",\"token\":\"docker\"}", 0, "docker", 60,
	 60, 0},
	/* OAuth2 form: only access_token; refresh_token ignored */
	{"{\"access_token\":\"ya29.x\",\"expires_in\":3599,"
	 "\"refresh_token\":\"r\",\"scope\":\"s\"}",
	 0, "ya29.x", 3599, 3599, 0},
	/* no expires_in: the spec's default of 60 s */
	{"{\"token\":\"t\"}", 0, "t", 60, 60, 0},
	/* fractional expires_in is accepted */
	{"{\"token\":\"t\",\"expires_in\":90.5}", 0, "t", 90.5, 90.5, 0},
	/* issued 100 s ago: 200 s left */
	{"{\"token\":\"t\",\"expires_in\":300,"
	 "\"issued_at\":\"2024-05-01T09:58:20Z\"}",
	 0, "t", 300, 200, NOW - 100},
	/* fractional seconds and a +02:00 offset: issued 60 s ago */
	{"{\"token\":\"t\",\"expires_in\":300,"
	 "\"issued_at\":\"2024-05-01T11:59:00.123456789+02:00\"}",
	 0, "t", 300, 240, NOW - 60},
	/* issued in the future (clock skew): counts from now */
	{"{\"token\":\"t\",\"expires_in\":300,"
	 "\"issued_at\":\"2024-05-01T10:10:00Z\"}",
	 0, "t", 300, 300, NOW + 600},
	/* issued longer ago than its lifetime: skew, counts from now */
	{"{\"token\":\"t\",\"expires_in\":60,"
	 "\"issued_at\":\"2024-05-01T08:00:00Z\"}",
	 0, "t", 60, 60, NOW - 7200},
	/* unparseable issued_at is ignored */
	{"{\"token\":\"t\",\"expires_in\":120,\"issued_at\":\"yesterday\"}", 0,
	 "t", 120, 120, 0},
	/* a non-string issued_at is ignored too */
	{"{\"token\":\"t\",\"issued_at\":17}", 0, "t", 60, 60, 0},
	/* huge expires_in is capped at a year */
	{"{\"token\":\"t\",\"expires_in\":1e12}", 0, "t", 365.0 * 86400,
	 365.0 * 86400, 0},

	/* no token at all */
	{"{\"expires_in\":300}", -EINVAL, NULL, 0, 0, 0},
	/* token of the wrong type */
	{"{\"token\":42}", -EINVAL, NULL, 0, 0, 0},
	/* "token" present but not a string: no fall-back to access_token */
	{"{\"token\":null,\"access_token\":\"a\"}", -EINVAL, NULL, 0, 0, 0},
	/* empty token */
	{"{\"token\":\"\"}", -EINVAL, NULL, 0, 0, 0},
	/* header injection: CR LF inside the token */
	{"{\"token\":\"a\\r\\nX-Evil: 1\"}", -EINVAL, NULL, 0, 0, 0},
	/* spaces and NUL are not header-safe either */
	{"{\"token\":\"a b\"}", -EINVAL, NULL, 0, 0, 0},
	{"{\"token\":\"a\\u0000b\"}", -EINVAL, NULL, 0, 0, 0},
	/* bad expires_in: zero, negative, string */
	{"{\"token\":\"t\",\"expires_in\":0}", -EINVAL, NULL, 0, 0, 0},
	{"{\"token\":\"t\",\"expires_in\":-5}", -EINVAL, NULL, 0, 0, 0},
	{"{\"token\":\"t\",\"expires_in\":\"300\"}", -EINVAL, NULL, 0, 0, 0},
	/* not an object */
	{"[\"token\"]", -EINVAL, NULL, 0, 0, 0},
	{"\"token\"", -EINVAL, NULL, 0, 0, 0},
	/* garbage, truncation, empty body, HTML error page */
	{"{\"token\":\"t\"", -EINVAL, NULL, 0, 0, 0},
	{"", -EINVAL, NULL, 0, 0, 0},
	{"<html><body>502 Bad Gateway</body></html>", -EINVAL, NULL, 0, 0, 0},
	/* duplicate members are refused rather than guessed */
	{"{\"token\":\"a\",\"token\":\"b\"}", -EINVAL, NULL, 0, 0, 0},
};

START_TEST(token_table)
{
	drp_token_resp_t t;
	int rc = drp_token_parse(cases[_i].json, strlen(cases[_i].json), NOW,
				 &t);
	ck_assert_msg(rc == cases[_i].rc, "case %d: rc %d, want %d", _i, rc,
		      cases[_i].rc);
	if (rc == 0) {
		ck_assert_str_eq(t.token, cases[_i].token);
		ck_assert_double_eq_tol(t.expires_in, cases[_i].expires_in,
					1e-9);
		ck_assert_double_eq_tol(t.ttl, cases[_i].ttl, 1e-9);
		ck_assert_int_eq(t.issued_at, cases[_i].issued_at);
	} else {
		ck_assert_ptr_null(t.token);
	}
	drp_token_resp_free(&t);
}
END_TEST

static const struct {
	const char *in;
	int rc;
	time_t out;
} dates[] = {
	/* plain UTC */
	{"2024-05-01T10:00:00Z", 0, NOW},
	/* lower-case t and z */
	{"2024-05-01t10:00:00z", 0, NOW},
	/* negative offset: 05:00 at -05:00 is 10:00 UTC */
	{"2024-05-01T05:00:00-05:00", 0, NOW},
	/* fractional seconds are dropped */
	{"2024-05-01T10:00:00.999Z", 0, NOW},
	/* the epoch */
	{"1970-01-01T00:00:00Z", 0, 0},
	/* missing zone */
	{"2024-05-01T10:00:00", -EINVAL, 0},
	/* date only */
	{"2024-05-01", -EINVAL, 0},
	/* month 13 */
	{"2024-13-01T10:00:00Z", -EINVAL, 0},
	/* dot without digits */
	{"2024-05-01T10:00:00.Z", -EINVAL, 0},
	/* trailing junk */
	{"2024-05-01T10:00:00Zjunk", -EINVAL, 0},
	/* space instead of T */
	{"2024-05-01 10:00:00Z", -EINVAL, 0},
};

START_TEST(rfc3339_table)
{
	time_t t = 12345;
	int rc = drp_token_parse_rfc3339(dates[_i].in, &t);
	ck_assert_msg(rc == dates[_i].rc, "case %d (%s): rc %d", _i,
		      dates[_i].in, rc);
	if (rc == 0)
		ck_assert_int_eq(t, dates[_i].out);
	else
		ck_assert_int_eq(t, 12345); /* untouched */
}
END_TEST

Suite *plugin_token_suite(void)
{
	Suite *s = suite_create("plugin_token");
	TCase *tc = tcase_create("parse");
	tcase_add_loop_test(tc, token_table, 0,
			    (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_loop_test(tc, rfc3339_table, 0,
			    (int)(sizeof(dates) / sizeof(dates[0])));
	suite_add_tcase(s, tc);
	return s;
}
