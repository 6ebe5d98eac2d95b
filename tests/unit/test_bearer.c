/* SPDX-License-Identifier: MIT */
/*
 * The token flow (plugins/common/bearer.c) as the core runs it for a
 * client's own credentials (bearer_init_client), against the mock host:
 * what the core's identities get, and where that differs from a plugin's
 * configured account, side by side.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bearer.h"
#include "mock_host.h"
#include "plugin/tokencache.h"
#include "util/mem.h"

Suite *bearer_suite(void);

/* "Basic base64(alice:alice-pw)" */
#define ALICE	    "Basic YWxpY2U6YWxpY2UtcHc="
#define TOKEN(t)    "{\"token\":\"" t "\",\"expires_in\":300}"
#define REALM	    "https://auth.test/token"
#define CHALLENGE_S "Bearer realm=\"" REALM "\",service=\"token.test\","

static mock_host_t mh;
static drp_host_ctx_t ctx;
static bearer_t b;
static int holds; /* hold() minus release() */

static void hold(bearer_t *x)
{
	ck_assert_ptr_eq(x, &b);
	holds++;
}

static void release(bearer_t *x)
{
	ck_assert_ptr_eq(x, &b);
	ck_assert_int_gt(holds, 0);
	holds--;
}

static const bearer_client_t client = {
	.hold = hold,
	.release = release,
	.scope = drp_tokencache_scope_canon,
};

static void setup(void)
{
	mock_host_init(&mh);
	ctx = (drp_host_ctx_t){
		.host = &mh.host, .plugin = "proxy", .instance = "alice"};
	holds = 0;
}

static void teardown(void)
{
	ck_assert_int_eq(holds, 0);
	bearer_fini(&b);
	mock_host_fini(&mh);
}

/* b as the core makes it for alice (or anonymous access, basic NULL),
 * or as a plugin makes it for a configured account. */
static void as_client(const char *basic)
{
	ck_assert_int_eq(bearer_init_client(&b, &mh.host.api, &ctx, &client,
					    basic, basic ? "alice" : NULL),
			 0);
}

static void as_plugin(void)
{
	ck_assert_int_eq(
		bearer_init(&b, &mh.host.api, &ctx, "alice", "alice-pw"), 0);
}

static void req(struct drp_auth_req *r, const char *repo, const char *actions)
{
	mock_req_init(r, "GET", "https://reg.test/v2/x", "reg.test", repo,
		      actions);
}

static int challenge(struct drp_auth_req *r, const char *www)
{
	return MOCK_HOOK(r, bearer_challenge(&b, r, www));
}

START_TEST(client_token)
{
	as_client(ALICE);
	struct drp_auth_req r;
	req(&r, "a/b", "pull,push");
	ck_assert_int_eq(bearer_decorate(&b, &r), DRP_AUTH_DECLINED);
	/* The registry writes the actions in its own order. */
	ck_assert_int_eq(
		challenge(&r, CHALLENGE_S "scope=\"repository:a/b:push,pull\""),
		DRP_AUTH_PENDING);
	ck_assert_uint_eq(mh.n_fetches, 1);
	struct drp_http_fetch *f = mock_fetch_nth(&mh, 0);
	ck_assert_str_eq(f->method, "GET");
	/* ...the token request names them in one. */
	ck_assert_str_eq(f->url, REALM "?service=token.test&scope=repository"
				       "%3Aa%2Fb%3Apull%2Cpush");
	/* alice's own credentials go to the token service */
	ck_assert_str_eq(f->headers, "Authorization: " ALICE "\n");
	/* The fetch keeps the identity alive. */
	ck_assert_int_eq(holds, 1);
	mock_fetch_complete(&mh, f, 200, NULL, TOKEN("T1"));
	ck_assert_int_eq(holds, 0);
	ck_assert_int_eq(r.done_calls, 1);
	ck_assert_int_eq(r.done_result, DRP_AUTH_OK);
	ck_assert_str_eq(mock_req_header(&r, "Authorization"), "Bearer T1");
	ck_assert_msg(mock_log_count(&mh, "<6> proxy/alice: token for scope "
					  "'repository:a/b:pull,push' from "
					  "auth.test (user 'alice'), valid "
					  "300 s") == 1,
		      "%s", mock_log_dump(&mh));
	/* The next upload to a/b carries it up front. */
	struct drp_auth_req r2;
	req(&r2, "a/b", "pull,push");
	ck_assert_int_eq(bearer_decorate(&b, &r2), DRP_AUTH_OK);
	ck_assert_str_eq(mock_req_header(&r2, "Authorization"), "Bearer T1");
	ck_assert_uint_eq(mock_log_count(&mh, "YWxpY2U6YWxpY2UtcHc"), 0);
	ck_assert_uint_eq(mock_log_count(&mh, "T1"), 0);
	mock_req_fini(&r);
	mock_req_fini(&r2);
}
END_TEST

/* The request goes away while its token fetch runs: the identity stays
 * alive until the fetch ends, and the token is kept for the next. */
START_TEST(client_cancel_holds)
{
	as_client(ALICE);
	struct drp_auth_req r;
	req(&r, "a/b", "pull");
	ck_assert_int_eq(
		challenge(&r, CHALLENGE_S "scope=\"repository:a/b:pull\""),
		DRP_AUTH_PENDING);
	bearer_cancel(&b, &r);
	ck_assert_ptr_null(r.data);
	ck_assert_int_eq(holds, 1);
	struct drp_http_fetch *f = mock_fetch_nth(&mh, 0);
	ck_assert(!f->cancelled);
	mock_fetch_complete(&mh, f, 200, NULL, TOKEN("T2"));
	ck_assert_int_eq(holds, 0);
	ck_assert_int_eq(r.done_calls, 0);
	struct drp_auth_req r2;
	req(&r2, "a/b", "pull");
	ck_assert_int_eq(bearer_decorate(&b, &r2), DRP_AUTH_OK);
	ck_assert_str_eq(mock_req_header(&r2, "Authorization"), "Bearer T2");
	mock_req_fini(&r);
	mock_req_fini(&r2);
}
END_TEST

/*
 * What keeps the flow from a token, for a client's own credentials
 * (DECLINED: the upstream's 401 goes to the client) and for a plugin's
 * configured account; each with the log line it leaves.
 */
static const struct {
	const char *what;
	bool anonymous;	  /* the client variant without credentials */
	const char *www;  /* the challenge */
	const char *sent; /* Authorization the refused request carried */
	int status;	  /* the token service's answer; 0: no fetch */
	bool waiter;	  /* look at a second request waiting on it */
	int want_client;  /* for the request (or the waiter) */
	int want_plugin;
	const char *log_client; /* NULL: nothing logged */
	const char *log_plugin;
} refusals[] = {
	{"token service refuses the credentials", false,
	 CHALLENGE_S "scope=\"repository:a/b:pull\"", NULL, 401, false,
	 DRP_AUTH_DECLINED, DRP_AUTH_DENIED,
	 "<5> proxy/alice: token service auth.test refused the client's "
	 "credentials for scope 'repository:a/b:pull' (HTTP 401)",
	 "<3> proxy/alice: token service auth.test refused the credentials "
	 "of user 'alice' for scope 'repository:a/b:pull' (HTTP 401)"},
	{"token service refuses anonymous access", true,
	 CHALLENGE_S "scope=\"repository:a/b:pull\"", NULL, 403, false,
	 DRP_AUTH_DECLINED, DRP_AUTH_DENIED,
	 "<5> proxy/alice: token service auth.test refused anonymous "
	 "access for scope 'repository:a/b:pull' (HTTP 403)",
	 "<3> proxy/alice: token service auth.test refused the credentials "
	 "of user 'alice'"},
	{"a waiter on a refused fetch", false,
	 CHALLENGE_S "scope=\"repository:a/b:pull\"", NULL, 401, true,
	 DRP_AUTH_DECLINED, DRP_AUTH_ERROR, "refused the client's",
	 "refused the credentials of user 'alice'"},
	{"the registry refuses Basic credentials it was sent", false,
	 "Basic realm=\"r\"", ALICE, 0, false, DRP_AUTH_DECLINED,
	 DRP_AUTH_DENIED, NULL,
	 "<3> proxy/alice: the registry refused the credentials of user "
	 "'alice'"},
	{"credentials and a plain-http realm", false,
	 "Bearer realm=\"http://auth.test/token\"", NULL, 0, false,
	 DRP_AUTH_DECLINED, DRP_AUTH_ERROR,
	 "<4> proxy/alice: refusing to send credentials to the non-https "
	 "realm 'http://auth.test/token'",
	 "<3> proxy/alice: refusing to send credentials to the non-https "
	 "realm"},
	{"an unparseable challenge", false, "Bearer realm=\"unterminated", NULL,
	 0, false, DRP_AUTH_DECLINED, DRP_AUTH_ERROR, NULL,
	 "<4> proxy/alice: unparseable WWW-Authenticate"},
	{"token service unreachable", false,
	 CHALLENGE_S "scope=\"repository:a/b:pull\"", NULL, -ECONNREFUSED,
	 false, DRP_AUTH_ERROR, DRP_AUTH_ERROR,
	 "<4> proxy/alice: token service auth.test unreachable: Connection "
	 "refused",
	 "<3> proxy/alice: token service auth.test unreachable"},
	{"token service answers 503", false,
	 CHALLENGE_S "scope=\"repository:a/b:pull\"", NULL, 503, false,
	 DRP_AUTH_ERROR, DRP_AUTH_ERROR,
	 "<4> proxy/alice: token service auth.test answered HTTP 503",
	 "<3> proxy/alice: token service auth.test answered HTTP 503"},
};

/* _i: case * 2 + (0: the client's credentials, 1: a plugin's account) */
START_TEST(refused)
{
	unsigned c = (unsigned)_i / 2;
	bool plugin = _i % 2;
	if (plugin)
		as_plugin();
	else
		as_client(refusals[c].anonymous ? NULL : ALICE);
	struct drp_auth_req r, w;
	req(&r, "a/b", "pull");
	req(&w, "a/b", "pull");
	if (refusals[c].sent != NULL)
		ck_assert_int_eq(mh.host.api.req_set_header(&r, "Authorization",
							    refusals[c].sent),
				 0);
	int res = challenge(&r, refusals[c].www);
	int want = plugin ? refusals[c].want_plugin : refusals[c].want_client;
	if (refusals[c].status != 0) {
		ck_assert_int_eq(res, DRP_AUTH_PENDING);
		if (refusals[c].waiter)
			ck_assert_int_eq(challenge(&w, refusals[c].www),
					 DRP_AUTH_PENDING);
		ck_assert_uint_eq(mh.n_fetches, 1);
		mock_fetch_complete(&mh, mock_fetch_nth(&mh, 0),
				    refusals[c].status, NULL, "{}");
		struct drp_auth_req *x = refusals[c].waiter ? &w : &r;
		ck_assert_int_eq(x->done_calls, 1);
		res = x->done_result;
	}
	ck_assert_msg(res == want, "%s (%s): %d, want %d", refusals[c].what,
		      plugin ? "plugin" : "client", res, want);
	ck_assert_uint_eq(mh.n_fetches, refusals[c].status != 0 ? 1 : 0);
	const char *log =
		plugin ? refusals[c].log_plugin : refusals[c].log_client;
	if (log != NULL)
		ck_assert_msg(mock_log_count(&mh, log) == 1, "%s: %s",
			      refusals[c].what, mock_log_dump(&mh));
	else
		ck_assert_msg(mh.n_log == 0, "%s: %s", refusals[c].what,
			      mock_log_dump(&mh));
	mock_req_fini(&r);
	mock_req_fini(&w);
}
END_TEST

Suite *bearer_suite(void)
{
	Suite *s = suite_create("bearer");
	TCase *tc = tcase_create("flow");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, client_token);
	tcase_add_test(tc, client_cancel_holds);
	tcase_add_loop_test(tc, refused, 0,
			    (int)(2 * DRP_ARRAY_SIZE(refusals)));
	suite_add_tcase(s, tc);
	return s;
}
