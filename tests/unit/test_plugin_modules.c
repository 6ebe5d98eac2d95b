/* SPDX-License-Identifier: MIT */
/*
 * The in-tree plugins (plugins/NAME.la), loaded by name like the daemon does,
 * driven through the mock host: challenges in, token requests out, fake
 * token-service answers back.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mock_host.h"
#include "plugin/loader.h"
#include "util/log.h"
#include "util/mem.h"

Suite *plugin_modules_suite(void);

#ifndef PLUGINS_DIR
#error "PLUGINS_DIR must name plugins/ in the build tree"
#endif

#define HUB_CHALLENGE                                                          \
	"Bearer realm=\"https://auth.docker.io/token\","                       \
	"service=\"registry.docker.io\","                                      \
	"scope=\"repository:library/alpine:pull\""
#define HUB_TOKEN_URL                                                          \
	"https://auth.docker.io/token?service=registry.docker.io&scope="       \
	"repository%3Alibrary%2Falpine%3Apull"
#define TOKEN_JSON(t)                                                          \
	"{\"token\":\"" t "\",\"access_token\":\"" t "\","                     \
	"\"expires_in\":300,\"issued_at\":\"2030-01-01T00:00:00Z\"}"

static mock_host_t mh;
static drp_plugin_loader_t *loader;
static drp_conf_errors_t errs;
static drp_plugin_inst_t *inst;

static void setup(void)
{
	mock_host_init(&mh);
	loader = drp_plugin_loader_new(&mh.host, PLUGINS_DIR);
	ck_assert_ptr_nonnull(loader);
	errs = (drp_conf_errors_t){0};
	inst = NULL;
}

static void teardown(void)
{
	drp_plugin_inst_free(inst);
	drp_plugin_loader_free(loader);
	for (unsigned i = 0; i < errs.n; i++)
		free(errs.msg[i]);
	free(errs.msg);
	mock_host_fini(&mh);
}

#define ITEM(k, v, l)                                                          \
	{                                                                      \
		.key = (char *)(k), .value = (char *)(v), .file = "p.ini",     \
		.line = (l)                                                    \
	}

/* Items stay alive for the instance's lifetime (static per test). */
static drp_plugin_inst_t *make(char *name, drp_conf_item_t *items, unsigned n)
{
	static drp_conf_registry_t sec;
	sec = (drp_conf_registry_t){.name = name,
				    .file = "p.ini",
				    .line = 1,
				    .items = items,
				    .n_items = n};
	return drp_plugin_inst_new(loader, &sec, &errs);
}

static const char *errors(void)
{
	static char buf[4096];
	size_t n = 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < errs.n; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\n",
				      errs.msg[i]);
	return buf;
}

static void pull_req(struct drp_auth_req *r, const char *repo)
{
	mock_req_init(r, "GET", "https://registry-1.docker.io/v2/x",
		      "docker.io", repo, "pull");
}

static int challenge(struct drp_auth_req *r, const char *www)
{
	return MOCK_HOOK(r, drp_plugin_inst_challenge(inst, r, www));
}

START_TEST(hub_anonymous_token)
{
	static drp_conf_item_t items[] = {ITEM("plugin", "dockerhub", 2)};
	inst = make("docker.io", items, 1);
	ck_assert_msg(inst != NULL, "%s", errors());
	ck_assert_uint_eq(mock_log_count(&mh, "dockerhub/docker.io: anonymous "
					      "tokens"),
			  1);

	struct drp_auth_req r;
	pull_req(&r, "library/alpine");
	/* nothing cached yet: the request goes out as it is */
	ck_assert_int_eq(drp_plugin_inst_decorate(inst, &r), DRP_AUTH_DECLINED);
	ck_assert_int_eq(challenge(&r, HUB_CHALLENGE), DRP_AUTH_PENDING);
	/* one token request, to the realm of the challenge, anonymous */
	ck_assert_uint_eq(mh.n_fetches, 1);
	struct drp_http_fetch *f = mock_fetch_nth(&mh, 0);
	ck_assert_str_eq(f->method, "GET");
	ck_assert_str_eq(f->url, HUB_TOKEN_URL);
	ck_assert_str_eq(f->headers, "");
	ck_assert_int_eq(r.done_calls, 0);
	mock_fetch_complete(&mh, f, 200, NULL, TOKEN_JSON("T1"));
	ck_assert_int_eq(r.done_calls, 1);
	ck_assert_int_eq(r.done_result, DRP_AUTH_OK);
	ck_assert_str_eq(mock_req_header(&r, "Authorization"), "Bearer T1");
	ck_assert_ptr_null(r.data);
	ck_assert_uint_eq(mock_log_count(&mh,
					 "token for scope "
					 "'repository:library/alpine:pull' "
					 "from auth.docker.io (anonymous)"),
			  1);

	/* the next request for that repository carries the token up front */
	struct drp_auth_req r2;
	pull_req(&r2, "library/alpine");
	ck_assert_int_eq(drp_plugin_inst_decorate(inst, &r2), DRP_AUTH_OK);
	ck_assert_str_eq(mock_req_header(&r2, "Authorization"), "Bearer T1");
	/* another repository does not */
	struct drp_auth_req r3;
	pull_req(&r3, "library/busybox");
	ck_assert_int_eq(drp_plugin_inst_decorate(inst, &r3),
			 DRP_AUTH_DECLINED);
	/* a token must not outlive its expiry */
	mock_timers_advance(&mh, 280);
	struct drp_auth_req r4;
	pull_req(&r4, "library/alpine");
	ck_assert_int_eq(drp_plugin_inst_decorate(inst, &r4),
			 DRP_AUTH_DECLINED);
	mock_req_fini(&r);
	mock_req_fini(&r2);
	mock_req_fini(&r3);
	mock_req_fini(&r4);
}
END_TEST

START_TEST(hub_ten_pulls_one_token_request)
{
	static drp_conf_item_t items[] = {ITEM("plugin", "dockerhub", 2)};
	inst = make("docker.io", items, 1);
	ck_assert_ptr_nonnull(inst);
	struct drp_auth_req r[10];
	for (int i = 0; i < 10; i++) {
		pull_req(&r[i], "library/alpine");
		ck_assert_int_eq(challenge(&r[i], HUB_CHALLENGE),
				 DRP_AUTH_PENDING);
	}
	/* ten concurrent 401s, one token request */
	ck_assert_uint_eq(mh.n_fetches, 1);
	mock_fetch_complete(&mh, mock_fetch_nth(&mh, 0), 200, NULL,
			    TOKEN_JSON("SHARED"));
	for (int i = 0; i < 10; i++) {
		ck_assert_int_eq(r[i].done_calls, 1);
		ck_assert_int_eq(r[i].done_result, DRP_AUTH_OK);
		ck_assert_str_eq(mock_req_header(&r[i], "Authorization"),
				 "Bearer SHARED");
		mock_req_fini(&r[i]);
	}
	/* a late 401 (e.g. a request sent before the token existed) gets
	 * the cached token without another request */
	struct drp_auth_req late;
	pull_req(&late, "library/alpine");
	ck_assert_int_eq(challenge(&late, HUB_CHALLENGE), DRP_AUTH_OK);
	ck_assert_str_eq(mock_req_header(&late, "Authorization"),
			 "Bearer SHARED");
	ck_assert_uint_eq(mh.n_fetches, 1);
	mock_req_fini(&late);
}
END_TEST

START_TEST(hub_refused_token_is_replaced)
{
	static drp_conf_item_t items[] = {ITEM("plugin", "dockerhub", 2)};
	inst = make("docker.io", items, 1);
	struct drp_auth_req r;
	pull_req(&r, "library/alpine");
	ck_assert_int_eq(challenge(&r, HUB_CHALLENGE), DRP_AUTH_PENDING);
	mock_fetch_complete(&mh, mock_fetch_nth(&mh, 0), 200, NULL,
			    TOKEN_JSON("OLD"));
	/* the upstream refuses the token it was sent: fetch a new one */
	struct drp_auth_req r2;
	pull_req(&r2, "library/alpine");
	ck_assert_int_eq(drp_plugin_inst_decorate(inst, &r2), DRP_AUTH_OK);
	ck_assert_int_eq(challenge(&r2, HUB_CHALLENGE), DRP_AUTH_PENDING);
	ck_assert_uint_eq(mh.n_fetches, 2);
	mock_fetch_complete(&mh, mock_fetch_nth(&mh, 1), 200, NULL,
			    TOKEN_JSON("NEW"));
	ck_assert_str_eq(mock_req_header(&r2, "Authorization"), "Bearer NEW");
	mock_req_fini(&r);
	mock_req_fini(&r2);
}
END_TEST

START_TEST(hub_account_refused)
{
	static drp_conf_item_t items[] = {ITEM("plugin", "dockerhub", 2),
					  ITEM("username", "acmebot", 3),
					  ITEM("password", "s3cret", 4)};
	inst = make("docker.io/acme", items, 3);
	ck_assert_msg(inst != NULL, "%s", errors());
	struct drp_auth_req a, b;
	pull_req(&a, "acme/app");
	pull_req(&b, "acme/app");
	const char *www = "Bearer realm=\"https://auth.docker.io/token\","
			  "service=\"registry.docker.io\","
			  "scope=\"repository:acme/app:pull\"";
	ck_assert_int_eq(challenge(&a, www), DRP_AUTH_PENDING);
	ck_assert_int_eq(challenge(&b, www), DRP_AUTH_PENDING);
	struct drp_http_fetch *f = mock_fetch_nth(&mh, 0);
	/* the account goes to the token service, never to the registry */
	ck_assert_str_eq(f->headers,
			 "Authorization: Basic YWNtZWJvdDpzM2NyZXQ=\n");
	mock_fetch_complete(&mh, f, 401, NULL, "{\"details\":\"incorrect\"}");
	/* the fetcher is told "denied", the waiter gets no token */
	ck_assert_int_eq(a.done_result, DRP_AUTH_DENIED);
	ck_assert_int_eq(b.done_calls, 1);
	ck_assert_int_eq(b.done_result, DRP_AUTH_ERROR);
	ck_assert_ptr_null(mock_req_header(&a, "Authorization"));
	ck_assert_uint_eq(
		mock_log_count(&mh,
			       "<3> dockerhub/docker.io/acme: token service "
			       "auth.docker.io refused the credentials of "
			       "user 'acmebot' for scope "
			       "'repository:acme/app:pull' (HTTP 401)"),
		1);
	/* the password never reaches the log */
	ck_assert_uint_eq(mock_log_count(&mh, "s3cret"), 0);
	mock_req_fini(&a);
	mock_req_fini(&b);
}
END_TEST

START_TEST(hub_cancel)
{
	static drp_conf_item_t items[] = {ITEM("plugin", "dockerhub", 2)};
	inst = make("docker.io", items, 1);
	struct drp_auth_req fetcher, waiter, quitter;
	pull_req(&fetcher, "library/alpine");
	pull_req(&waiter, "library/alpine");
	pull_req(&quitter, "library/alpine");
	ck_assert_int_eq(challenge(&fetcher, HUB_CHALLENGE), DRP_AUTH_PENDING);
	ck_assert_int_eq(challenge(&waiter, HUB_CHALLENGE), DRP_AUTH_PENDING);
	ck_assert_int_eq(challenge(&quitter, HUB_CHALLENGE), DRP_AUTH_PENDING);
	/* the client of the fetching request and another one go away */
	drp_plugin_inst_cancel(inst, &fetcher);
	drp_plugin_inst_cancel(inst, &quitter);
	ck_assert_ptr_null(fetcher.data);
	/* the fetch goes on for the remaining waiter */
	struct drp_http_fetch *f = mock_fetch_nth(&mh, 0);
	ck_assert(!f->cancelled);
	mock_fetch_complete(&mh, f, 200, NULL, TOKEN_JSON("T"));
	ck_assert_int_eq(fetcher.done_calls, 0);
	ck_assert_int_eq(quitter.done_calls, 0);
	ck_assert_int_eq(waiter.done_calls, 1);
	ck_assert_str_eq(mock_req_header(&waiter, "Authorization"), "Bearer T");
	mock_req_fini(&fetcher);
	mock_req_fini(&waiter);
	mock_req_fini(&quitter);
}
END_TEST

/* Token-service failures, each an ERROR for the request. */
static const struct {
	int status;
	const char *body;
	const char *log;
} failures[] = {
	/* the token service is down */
	{-ETIMEDOUT, NULL,
	 "token service auth.docker.io unreachable: "
	 "Connection timed out"},
	/* answers 200 with garbage */
	{200, "<html>oops</html>",
	 "token service auth.docker.io sent an "
	 "unusable answer for scope"},
	/* a server error */
	{503, "", "token service auth.docker.io answered HTTP 503"},
};

START_TEST(hub_token_service_failures)
{
	static drp_conf_item_t items[] = {ITEM("plugin", "dockerhub", 2)};
	inst = make("docker.io", items, 1);
	struct drp_auth_req r;
	pull_req(&r, "library/alpine");
	ck_assert_int_eq(challenge(&r, HUB_CHALLENGE), DRP_AUTH_PENDING);
	mock_fetch_complete(&mh, mock_fetch_nth(&mh, 0), failures[_i].status,
			    NULL, failures[_i].body);
	ck_assert_int_eq(r.done_result, DRP_AUTH_ERROR);
	ck_assert_msg(mock_log_count(&mh, failures[_i].log) == 1, "%s",
		      mock_log_dump(&mh));
	/* nothing cached: the next 401 tries again */
	struct drp_auth_req r2;
	pull_req(&r2, "library/alpine");
	ck_assert_int_eq(challenge(&r2, HUB_CHALLENGE), DRP_AUTH_PENDING);
	ck_assert_uint_eq(mh.n_fetches, 2);
	mock_fetch_complete(&mh, mock_fetch_nth(&mh, 1), 200, NULL,
			    TOKEN_JSON("T"));
	mock_req_fini(&r);
	mock_req_fini(&r2);
}
END_TEST

START_TEST(hub_push_scope_and_ping)
{
	static drp_conf_item_t items[] = {ITEM("plugin", "dockerhub", 2)};
	inst = make("docker.io", items, 1);
	/* /v2/ ping: challenge without scope; token for no scope */
	struct drp_auth_req ping;
	mock_req_init(&ping, "GET", "https://registry-1.docker.io/v2/",
		      "docker.io", NULL, "pull");
	ck_assert_int_eq(challenge(&ping,
				   "Bearer realm=\"https://auth.docker.io/"
				   "token\",service=\"registry.docker.io\""),
			 DRP_AUTH_PENDING);
	ck_assert_str_eq(mock_fetch_nth(&mh, 0)->url,
			 "https://auth.docker.io/token?service=registry."
			 "docker.io");
	mock_fetch_complete(&mh, mock_fetch_nth(&mh, 0), 200, NULL,
			    TOKEN_JSON("P"));
	/* the scope of a push, several scopes split into parameters */
	struct drp_auth_req push;
	mock_req_init(&push, "PUT", "https://registry-1.docker.io/v2/a/b/x",
		      "docker.io", "a/b", "pull,push");
	ck_assert_int_eq(
		challenge(&push,
			  "Bearer realm=\"https://auth.docker.io/token\","
			  "service=\"registry.docker.io\","
			  "scope=\"repository:a/b:pull,push "
			  "repository:c/d:pull\""),
		DRP_AUTH_PENDING);
	ck_assert_str_eq(mock_fetch_nth(&mh, 1)->url,
			 "https://auth.docker.io/token?service=registry."
			 "docker.io&scope=repository%3Aa%2Fb%3Apull%2Cpush&"
			 "scope=repository%3Ac%2Fd%3Apull");
	mock_fetch_complete(&mh, mock_fetch_nth(&mh, 1), 200, NULL,
			    TOKEN_JSON("W"));
	ck_assert_str_eq(mock_req_header(&push, "Authorization"), "Bearer W");
	/* decorate finds the ping token for a request outside a repo */
	struct drp_auth_req ping2;
	mock_req_init(&ping2, "GET", "https://registry-1.docker.io/v2/",
		      "docker.io", NULL, "pull");
	ck_assert_int_eq(drp_plugin_inst_decorate(inst, &ping2), DRP_AUTH_OK);
	ck_assert_str_eq(mock_req_header(&ping2, "Authorization"), "Bearer P");
	mock_req_fini(&ping);
	mock_req_fini(&push);
	mock_req_fini(&ping2);
}
END_TEST

/* The token request carries the challenge's values whole, however long
 * (a scope is split only at spaces, a service not at all), as the core's
 * token client always did: the flow is one now. */
START_TEST(hub_token_url_values_whole)
{
	static drp_conf_item_t items[] = {ITEM("plugin", "dockerhub", 2)};
	inst = make("docker.io", items, 1);
	ck_assert_ptr_nonnull(inst);
	static char repo[3001];
	memset(repo, 'a', sizeof(repo) - 1);
	static char www[3300], want[3300];
	snprintf(www, sizeof(www),
		 "Bearer realm=\"https://auth.docker.io/token\","
		 "service=\"registry docker\",scope=\"repository:%s:pull\"",
		 repo);
	snprintf(want, sizeof(want),
		 "https://auth.docker.io/token?service=registry%%20docker&"
		 "scope=repository%%3A%s%%3Apull",
		 repo);
	struct drp_auth_req r;
	pull_req(&r, repo);
	ck_assert_int_eq(challenge(&r, www), DRP_AUTH_PENDING);
	ck_assert_uint_eq(mh.n_fetches, 1);
	const char *url = mock_fetch_nth(&mh, 0)->url;
	/* (Check cannot print 3 KiB strings: lengths and the ends.) */
	ck_assert_msg(strcmp(url, want) == 0,
		      "token URL of %zu bytes, want %zu: '%.70s' ... '%s'",
		      strlen(url), strlen(want), url,
		      url + (strlen(url) > 30 ? strlen(url) - 30 : 0));
	mock_fetch_complete(&mh, mock_fetch_nth(&mh, 0), 200, NULL,
			    TOKEN_JSON("L"));
	ck_assert_int_eq(r.done_result, DRP_AUTH_OK);
	mock_req_fini(&r);
}
END_TEST

START_TEST(basic_registry)
{
	static drp_conf_item_t items[] = {ITEM("plugin", "basic", 2),
					  ITEM("username", "acmebot", 3),
					  ITEM("password", "s3cret", 4)};
	inst = make("registry.example:5000", items, 3);
	ck_assert_msg(inst != NULL, "%s", errors());
	struct drp_auth_req r;
	mock_req_init(&r, "GET", "https://registry.example:5000/v2/a/b/x",
		      "registry.example:5000", "a/b", "pull");
	/* before the registry asked, nothing is sent */
	ck_assert_int_eq(drp_plugin_inst_decorate(inst, &r), DRP_AUTH_DECLINED);
	ck_assert_int_eq(challenge(&r, "Basic realm=\"Registry Realm\""),
			 DRP_AUTH_OK);
	ck_assert_str_eq(mock_req_header(&r, "Authorization"),
			 "Basic YWNtZWJvdDpzM2NyZXQ=");
	/* the same credentials refused again: denied, logged */
	ck_assert_int_eq(challenge(&r, "Basic realm=\"Registry Realm\""),
			 DRP_AUTH_DENIED);
	ck_assert_uint_eq(mock_log_count(&mh, "the registry refused the "
					      "credentials of user 'acmebot'"),
			  1);
	/* from now on Basic is sent up front */
	struct drp_auth_req r2;
	mock_req_init(&r2, "GET", "https://registry.example:5000/v2/c/x",
		      "registry.example:5000", "c", "pull");
	ck_assert_int_eq(drp_plugin_inst_decorate(inst, &r2), DRP_AUTH_OK);
	ck_assert_str_eq(mock_req_header(&r2, "Authorization"),
			 "Basic YWNtZWJvdDpzM2NyZXQ=");
	/* no network involved */
	ck_assert_uint_eq(mh.n_fetches, 0);
	mock_req_fini(&r);
	mock_req_fini(&r2);
}
END_TEST

START_TEST(basic_token_service_https_only)
{
	static drp_conf_item_t items[] = {ITEM("plugin", "basic", 2),
					  ITEM("username", "u", 3),
					  ITEM("password", "p", 4)};
	inst = make("harbor.example", items, 3);
	struct drp_auth_req r;
	mock_req_init(&r, "GET", "https://harbor.example/v2/a/x",
		      "harbor.example", "a", "pull");
	/* credentials never go to a plain-http realm */
	ck_assert_int_eq(challenge(&r, "Bearer realm=\"http://harbor.example/"
				       "service/token\",service=\"harbor-"
				       "registry\""),
			 DRP_AUTH_ERROR);
	ck_assert_uint_eq(mh.n_fetches, 0);
	ck_assert_uint_eq(mock_log_count(&mh, "refusing to send credentials "
					      "to the non-https realm"),
			  1);
	/* an https realm with a query string of its own */
	ck_assert_int_eq(challenge(&r,
				   "Bearer realm=\"https://harbor.example/"
				   "service/token?x=1\",service=\"harbor-"
				   "registry\",scope=\"repository:a:pull\""),
			 DRP_AUTH_PENDING);
	ck_assert_str_eq(mock_fetch_nth(&mh, 0)->url,
			 "https://harbor.example/service/token?x=1&service="
			 "harbor-registry&scope=repository%3Aa%3Apull");
	ck_assert_str_eq(mock_fetch_nth(&mh, 0)->headers,
			 "Authorization: Basic dTpw\n");
	mock_fetch_complete(&mh, mock_fetch_nth(&mh, 0), 200, NULL,
			    "{\"access_token\":\"H\"}");
	ck_assert_str_eq(mock_req_header(&r, "Authorization"), "Bearer H");
	mock_req_fini(&r);
}
END_TEST

START_TEST(quay_robot)
{
	static drp_conf_item_t items[] = {ITEM("plugin", "quay", 2),
					  ITEM("username", "org+robot", 3),
					  ITEM("password", "RT", 4)};
	inst = make("quay.io/org", items, 3);
	ck_assert_msg(inst != NULL, "%s", errors());
	ck_assert_uint_eq(mock_log_count(&mh, "robot account 'org+robot'"), 1);
	struct drp_auth_req r;
	mock_req_init(&r, "GET", "https://quay.io/v2/org/app/x", "quay.io",
		      "org/app", "pull");
	ck_assert_int_eq(challenge(&r, "Bearer realm=\"https://quay.io/v2/"
				       "auth\",service=\"quay.io\","
				       "scope=\"repository:org/app:pull\""),
			 DRP_AUTH_PENDING);
	ck_assert_str_eq(mock_fetch_nth(&mh, 0)->url,
			 "https://quay.io/v2/auth?service=quay.io&scope="
			 "repository%3Aorg%2Fapp%3Apull");
	ck_assert_str_eq(mock_fetch_nth(&mh, 0)->headers,
			 "Authorization: Basic b3JnK3JvYm90OlJU\n");
	mock_fetch_complete(&mh, mock_fetch_nth(&mh, 0), 200, NULL,
			    "{\"token\":\"Q\"}");
	ck_assert_str_eq(mock_req_header(&r, "Authorization"), "Bearer Q");
	mock_req_fini(&r);
}
END_TEST

#define GCR_KEY                                                                \
	"{\"type\":\"service_account\",\"client_email\":\"puller@p.iam."       \
	"gserviceaccount.com\",\"private_key\":\"-----BEGIN PRIVATE KEY-----"  \
	"\\nX\\n-----END PRIVATE KEY-----\\n\"}"

START_TEST(gcr_json_key)
{
	char path[] = "/tmp/drp-test-gcr-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, GCR_KEY "\n", strlen(GCR_KEY) + 1),
			 (ssize_t)strlen(GCR_KEY) + 1);
	close(fd);
	static drp_conf_item_t items[2];
	items[0] = (drp_conf_item_t)ITEM("plugin", "gcr", 2);
	items[1] = (drp_conf_item_t)ITEM("key_file", path, 3);
	inst = make("*.pkg.dev", items, 2);
	ck_assert_msg(inst != NULL, "%s", errors());
	ck_assert_uint_eq(mock_log_count(&mh, "gcr/*.pkg.dev: service account "
					      "'puller@p.iam.gserviceaccount."
					      "com'"),
			  1);
	ck_assert_uint_eq(mock_log_count(&mh, "PRIVATE"), 0);
	struct drp_auth_req r;
	mock_req_init(&r, "GET", "https://europe-docker.pkg.dev/v2/p/r/i/x",
		      "europe-docker.pkg.dev", "p/r/i", "pull");
	ck_assert_int_eq(
		challenge(&r, "Bearer realm=\"https://europe-docker.pkg.dev/v2/"
			      "token\",service=\"europe-docker.pkg.dev\","
			      "scope=\"repository:p/r/i:pull\""),
		DRP_AUTH_PENDING);
	/* user _json_key, the key file's JSON (newline dropped) as password */
	ck_assert_str_eq(
		mock_fetch_nth(&mh, 0)->headers,
		"Authorization: Basic "
		"X2pzb25fa2V5OnsidHlwZSI6InNlcnZpY2VfYWNjb3VudCIsImNsaWVudF9l"
		"bWFpbCI6InB1bGxlckBwLmlhbS5nc2VydmljZWFjY291bnQuY29tIiwicHJp"
		"dmF0ZV9rZXkiOiItLS0tLUJFR0lOIFBSSVZBVEUgS0VZLS0tLS1cblhcbi0t"
		"LS0tRU5EIFBSSVZBVEUgS0VZLS0tLS1cbiJ9\n");
	mock_fetch_complete(&mh, mock_fetch_nth(&mh, 0), 200, NULL,
			    "{\"token\":\"G\",\"expires_in\":3600}");
	ck_assert_str_eq(mock_req_header(&r, "Authorization"), "Bearer G");
	mock_req_fini(&r);
	unlink(path);
}
END_TEST

/* A refused key: the log names the service account, never the key, and
 * not just the fixed user name "_json_key". */
START_TEST(gcr_key_refused)
{
	static drp_conf_item_t items[] = {ITEM("plugin", "gcr", 2),
					  ITEM("key", GCR_KEY, 3)};
	inst = make("gcr.io", items, 2);
	ck_assert_msg(inst != NULL, "%s", errors());
	struct drp_auth_req r;
	mock_req_init(&r, "GET", "https://gcr.io/v2/p/i/manifests/v1", "gcr.io",
		      "p/i", "pull");
	ck_assert_int_eq(
		challenge(&r,
			  "Bearer realm=\"https://gcr.io/v2/token\","
			  "service=\"gcr.io\",scope=\"repository:p/i:pull\""),
		DRP_AUTH_PENDING);
	mock_fetch_complete(&mh, mock_fetch_nth(&mh, 0), 401, NULL,
			    "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}");
	ck_assert_int_eq(r.done_result, DRP_AUTH_DENIED);
	ck_assert_uint_eq(
		mock_log_count(&mh, "<3> gcr/gcr.io: token service gcr.io "
				    "refused the credentials of service "
				    "account 'puller@p.iam.gserviceaccount.com'"
				    " for scope 'repository:p/i:pull' (HTTP "
				    "401)"),
		1);
	ck_assert_uint_eq(mock_log_count(&mh, "_json_key"), 0);
	ck_assert_uint_eq(mock_log_count(&mh, "PRIVATE"), 0);
	mock_req_fini(&r);
}
END_TEST

/* Configuration errors of the in-tree plugins, as -t shows them. */
static struct {
	char *name;
	drp_conf_item_t items[4];
	unsigned n;
	const char *errors;
} bad[] = {
	/* basic needs both */
	{"r.example",
	 {ITEM("plugin", "basic", 2)},
	 1,
	 "p.ini:1: [registry \"r.example\"] username: required by plugin "
	 "'basic'\n"
	 "p.ini:1: [registry \"r.example\"] password: required by plugin "
	 "'basic' (or the _file form)\n"},
	/* dockerhub: a user without password */
	{"docker.io",
	 {ITEM("plugin", "dockerhub", 2), ITEM("username", "u", 3)},
	 2,
	 "p.ini:3: [registry \"docker.io\"] username: needs password or "
	 "password_file\n"
	 "p.ini:2: [registry \"docker.io\"] plugin: plugin 'dockerhub' "
	 "refused the section: incomplete credentials\n"},
	/* quay: a password without user */
	{"quay.io",
	 {ITEM("plugin", "quay", 2), ITEM("password", "p", 3)},
	 2,
	 "p.ini:3: [registry \"quay.io\"] password: set together with "
	 "username\n"
	 "p.ini:2: [registry \"quay.io\"] plugin: plugin 'quay' refused the "
	 "section: incomplete credentials\n"},
	/* gcr: no key */
	{"gcr.io",
	 {ITEM("plugin", "gcr", 2)},
	 1,
	 "p.ini:1: [registry \"gcr.io\"] key: required by plugin 'gcr' (or "
	 "the _file form)\n"},
	/* gcr: not a service-account key */
	{"gcr.io",
	 {ITEM("plugin", "gcr", 2), ITEM("key", "{\"a\":1}", 3)},
	 2,
	 "p.ini:3: [registry \"gcr.io\"] key: not a service-account key "
	 "(no client_email or private_key)\n"
	 "p.ini:2: [registry \"gcr.io\"] plugin: plugin 'gcr' refused the "
	 "section: bad service-account key\n"},
	/* gcr: username/password make no sense */
	{"gcr.io",
	 {ITEM("plugin", "gcr", 2), ITEM("key_file", "/dev/null", 3),
	  ITEM("username", "_json_key", 4)},
	 3,
	 "p.ini:4: [registry \"gcr.io\"] username: not used by plugin gcr: "
	 "set key_file to the service-account JSON key\n"
	 "p.ini:2: [registry \"gcr.io\"] plugin: plugin 'gcr' refused the "
	 "section: username/password given\n"},
	/* a key of another plugin */
	{"quay.io",
	 {ITEM("plugin", "quay", 2), ITEM("key_file", "/x", 3)},
	 2,
	 "p.ini:3: [registry \"quay.io\"] key_file: unknown key for plugin "
	 "'quay'\n"},
};

START_TEST(config_errors)
{
	ck_assert_ptr_null(make(bad[_i].name, bad[_i].items, bad[_i].n));
	ck_assert_str_eq(errors(), bad[_i].errors);
}
END_TEST

Suite *plugin_modules_suite(void)
{
	Suite *s = suite_create("plugin_modules");
	TCase *tc = tcase_create("modules");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, hub_anonymous_token);
	tcase_add_test(tc, hub_ten_pulls_one_token_request);
	tcase_add_test(tc, hub_refused_token_is_replaced);
	tcase_add_test(tc, hub_account_refused);
	tcase_add_test(tc, hub_cancel);
	tcase_add_loop_test(tc, hub_token_service_failures, 0,
			    (int)DRP_ARRAY_SIZE(failures));
	tcase_add_test(tc, hub_push_scope_and_ping);
	tcase_add_test(tc, hub_token_url_values_whole);
	tcase_add_test(tc, basic_registry);
	tcase_add_test(tc, basic_token_service_https_only);
	tcase_add_test(tc, quay_robot);
	tcase_add_test(tc, gcr_json_key);
	tcase_add_test(tc, gcr_key_refused);
	tcase_add_loop_test(tc, config_errors, 0, (int)DRP_ARRAY_SIZE(bad));
	suite_add_tcase(s, tc);
	return s;
}
