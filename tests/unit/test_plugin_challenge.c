/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "plugin/challenge.h"

Suite *plugin_challenge_suite(void);

/* Renders a parse result as "Scheme[token68]{name=value;...}|..." */
static void render(const drp_challenges_t *c, char *out, size_t len)
{
	size_t n = 0;
	out[0] = '\0';
	for (unsigned i = 0; i < c->n; i++) {
		const drp_challenge_t *ch = &c->v[i];
		n += (size_t)snprintf(out + n, len - n, "%s%s", i ? "|" : "",
				      ch->scheme);
		if (ch->token68)
			n += (size_t)snprintf(out + n, len - n, "[%s]",
					      ch->token68);
		n += (size_t)snprintf(out + n, len - n, "{");
		for (unsigned j = 0; j < ch->n_params; j++)
			n += (size_t)snprintf(out + n, len - n, "%s%s=%s",
					      j ? ";" : "", ch->params[j].name,
					      ch->params[j].value);
		n += (size_t)snprintf(out + n, len - n, "}");
	}
}

static const struct {
	const char *in;
	int rc;
	const char *out; /* render() of the result when rc == 0 */
} cases[] = {
	/* Docker Hub's challenge, verbatim */
	{"Bearer realm=\"https://auth.docker.io/token\","
	 "service=\"registry.docker.io\","
	 "scope=\"repository:library/alpine:pull\"",
	 0,
	 "Bearer{realm=https://auth.docker.io/token;service=registry.docker.io;"
	 "scope=repository:library/alpine:pull}"},
	/* plain Basic, as distribution's htpasswd auth sends it */
	{"Basic realm=\"Registry Realm\"", 0, "Basic{realm=Registry Realm}"},
	/* scheme and parameter names are case-insensitive: names lower-cased,
	 * scheme kept as written */
	{"bEaReR REALM=\"x\", Service=y", 0, "bEaReR{realm=x;service=y}"},
	/* odd spacing: tabs, spaces around '=' and ',', leading and
	 * trailing separators */
	{" ,\t Bearer   realm =\t\"r\" ,  service= s ,, ", 0,
	 "Bearer{realm=r;service=s}"},
	/* two challenges in one header, RFC 9110's own example */
	{"Newauth realm=\"apps\", type=1, title=\"Login to \\\"apps\\\"\", "
	 "Basic realm=\"simple\"",
	 0,
	 "Newauth{realm=apps;type=1;title=Login to \"apps\"}|"
	 "Basic{realm=simple}"},
	/* escaped backslash and escaped ordinary character */
	{"Basic realm=\"a\\\\b\\c\"", 0, "Basic{realm=a\\bc}"},
	/* comma and '=' inside a quoted string do not split */
	{"Bearer scope=\"repository:a:pull,push\", realm=\"h?x=1\"", 0,
	 "Bearer{scope=repository:a:pull,push;realm=h?x=1}"},
	/* empty quoted string */
	{"Basic realm=\"\"", 0, "Basic{realm=}"},
	/* schemes without parameters, separated by commas */
	{"Negotiate, NTLM", 0, "Negotiate{}|NTLM{}"},
	/* token68 (with padding), then another challenge */
	{"Negotiate abc+/d==, Basic realm=x", 0,
	 "Negotiate[abc+/d==]{}|Basic{realm=x}"},
	/* token68s that look like a parameter name without value */
	{"Bearer realm", 0, "Bearer[realm]{}"},
	{"Bearer realm=", 0, "Bearer[realm=]{}"},
	/* a challenge after a scheme without parameters */
	{"Basic, Bearer realm=\"r\"", 0, "Basic{}|Bearer{realm=r}"},
	/* empty and separator-only values hold no challenge */
	{"", 0, ""},
	{" , ,", 0, ""},
	/* UTF-8 (obs-text) inside a quoted string is kept */
	{"Basic realm=\"caf\xc3\xa9\"", 0, "Basic{realm=caf\xc3\xa9}"},

	/* unterminated quoted string */
	{"Bearer realm=\"https://x", -EINVAL, NULL},
	/* backslash at the very end of the input */
	{"Bearer realm=\"x\\", -EINVAL, NULL},
	/* control character inside a quoted string */
	{"Bearer realm=\"a\rb\"", -EINVAL, NULL},
	/* parameter without a value (a lone "realm=" right after the
	 * scheme would be a valid token68, see above) */
	{"Bearer service=x, realm=", -EINVAL, NULL},
	{"Bearer realm=,service=x", -EINVAL, NULL},
	/* parameter before any scheme */
	{"realm=x, Bearer", -EINVAL, NULL},
	/* missing comma between parameters */
	{"Bearer realm=\"a\" service=\"b\"", -EINVAL, NULL},
	/* the same parameter twice in one challenge */
	{"Bearer realm=a, REALM=b", -EINVAL, NULL},
	/* a parameter after a token68 */
	{"Negotiate abc=, realm=x", -EINVAL, NULL},
	/* junk that is neither token nor quoted string */
	{"Bearer realm=@", -EINVAL, NULL},
	{"\"Bearer\"", -EINVAL, NULL},
	/* a scheme glued to a quote */
	{"Basic\"x\"", -EINVAL, NULL},
	/* two schemes without comma: the second must be a token68 or param */
	{"Basic Bearer realm=x", -EINVAL, NULL},
};

START_TEST(challenge_table)
{
	drp_challenges_t c;
	char got[1024];
	int rc = drp_challenge_parse(cases[_i].in, strlen(cases[_i].in), &c);
	ck_assert_msg(rc == cases[_i].rc, "case %d (%s): rc %d, want %d", _i,
		      cases[_i].in, rc, cases[_i].rc);
	if (rc == 0) {
		render(&c, got, sizeof(got));
		ck_assert_str_eq(got, cases[_i].out);
	} else {
		ck_assert_uint_eq(c.n, 0);
		ck_assert_ptr_null(c.v);
	}
	drp_challenges_free(&c);
}
END_TEST

START_TEST(challenge_lookup)
{
	drp_challenges_t c;
	const char *h = "Basic realm=\"b\", Bearer Realm=\"https://t/token\","
			" service=\"svc\"";
	ck_assert_int_eq(drp_challenge_parse(h, strlen(h), &c), 0);
	const drp_challenge_t *b = drp_challenge_find(&c, "BEARER");
	ck_assert_ptr_nonnull(b);
	ck_assert_str_eq(drp_challenge_param(b, "REALM"), "https://t/token");
	ck_assert_str_eq(drp_challenge_param(b, "service"), "svc");
	ck_assert_ptr_null(drp_challenge_param(b, "scope"));
	ck_assert_str_eq(
		drp_challenge_param(drp_challenge_find(&c, "basic"), "realm"),
		"b");
	ck_assert_ptr_null(drp_challenge_find(&c, "Digest"));
	drp_challenges_free(&c);
}
END_TEST

START_TEST(challenge_length_bounded)
{
	/* The parser reads only `len` bytes, not up to a NUL. */
	drp_challenges_t c;
	const char *h = "Basic realm=\"abc\"GARBAGE";
	ck_assert_int_eq(drp_challenge_parse(h, 17, &c), 0);
	ck_assert_str_eq(drp_challenge_param(&c.v[0], "realm"), "abc");
	drp_challenges_free(&c);
	/* An embedded NUL is a control character, not an end. */
	ck_assert_int_eq(drp_challenge_parse("Basic realm=\"a\0b\"", 17, &c),
			 -EINVAL);
}
END_TEST

START_TEST(challenge_too_many)
{
	/* Hostile headers with thousands of parameters are cut off. */
	char h[8192] = "Bearer ";
	for (int i = 0; i < 100; i++) {
		char p[32];
		snprintf(p, sizeof(p), "%sp%d=v", i ? "," : "", i);
		strcat(h, p);
	}
	drp_challenges_t c;
	ck_assert_int_eq(drp_challenge_parse(h, strlen(h), &c), -E2BIG);
	ck_assert_uint_eq(c.n, 0);
}
END_TEST

Suite *plugin_challenge_suite(void)
{
	Suite *s = suite_create("plugin_challenge");
	TCase *tc = tcase_create("parse");
	tcase_add_loop_test(tc, challenge_table, 0,
			    (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(tc, challenge_lookup);
	tcase_add_test(tc, challenge_length_bounded);
	tcase_add_test(tc, challenge_too_many);
	suite_add_tcase(s, tc);
	return s;
}
