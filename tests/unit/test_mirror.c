/* SPDX-License-Identifier: MIT */
/* Registry-mirror mode: which registry an origin-form request names. */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "proxy/mirror.h"

Suite *mirror_suite(void);

static const struct {
	const char *in;
	int ret;
	enum drp_mirror_by by;
	const char *registry, *host;
	unsigned port;
	const char *target;
	bool realm;
} cases[] = {
	/* containerd hosts.toml: ns names the registry, and is dropped */
	{"/v2/library/alpine/manifests/3.19?ns=docker.io", 0, DRP_MIRROR_BY_NS,
	 "docker.io", "registry-1.docker.io", 443,
	 "/v2/library/alpine/manifests/3.19", false},
	/* Docker Hub under another of its names: the same registry */
	{"/v2/library/alpine/blobs/sha256:00?ns=index.docker.io", 0,
	 DRP_MIRROR_BY_NS, "docker.io", "registry-1.docker.io", 443,
	 "/v2/library/alpine/blobs/sha256:00", false},
	{"/v2/org/app/manifests/v1?ns=quay.io", 0, DRP_MIRROR_BY_NS, "quay.io",
	 "quay.io", 443, "/v2/org/app/manifests/v1", false},
	/* a port, percent-encoded as url.Values writes it; other
	 * parameters stay */
	{"/v2/team/app/tags/list?n=10&ns=registry.test%3A5000&last=b", 0,
	 DRP_MIRROR_BY_NS, "registry.test:5000", "registry.test", 5000,
	 "/v2/team/app/tags/list?n=10&last=b", false},
	/* ns wins over a prefix-like first component */
	{"/v2/a.b/app/manifests/v1?ns=ghcr.io", 0, DRP_MIRROR_BY_NS, "ghcr.io",
	 "ghcr.io", 443, "/v2/a.b/app/manifests/v1", false},
	/* the ping, with ns */
	{"/v2/?ns=quay.io", 0, DRP_MIRROR_BY_NS, "quay.io", "quay.io", 443,
	 "/v2/", false},
	/* podman/CRI-O registries.conf: location = "PROXY/quay.io" */
	{"/v2/quay.io/org/app/manifests/v1", 0, DRP_MIRROR_BY_PREFIX, "quay.io",
	 "quay.io", 443, "/v2/org/app/manifests/v1", false},
	{"/v2/localhost:5000/app/blobs/sha256:11", 0, DRP_MIRROR_BY_PREFIX,
	 "localhost:5000", "localhost", 5000, "/v2/app/blobs/sha256:11", false},
	{"/v2/localhost/app/manifests/v1", 0, DRP_MIRROR_BY_PREFIX, "localhost",
	 "localhost", 443, "/v2/app/manifests/v1", false},
	{"/v2/docker.io/library/hello/manifests/v1", 0, DRP_MIRROR_BY_PREFIX,
	 "docker.io", "registry-1.docker.io", 443,
	 "/v2/library/hello/manifests/v1", false},
	/* the prefix alone is that registry's ping */
	{"/v2/quay.io", 0, DRP_MIRROR_BY_PREFIX, "quay.io", "quay.io", 443,
	 "/v2/", false},
	{"/v2/quay.io/", 0, DRP_MIRROR_BY_PREFIX, "quay.io", "quay.io", 443,
	 "/v2/", false},
	/* dockerd registry-mirrors: Docker Hub, path as sent */
	{"/v2/library/alpine/manifests/latest", 0, DRP_MIRROR_BY_DEFAULT,
	 "docker.io", "registry-1.docker.io", 443,
	 "/v2/library/alpine/manifests/latest", false},
	{"/v2/", 0, DRP_MIRROR_BY_DEFAULT, "docker.io", "registry-1.docker.io",
	 443, "/v2/", false},
	{"/v2", 0, DRP_MIRROR_BY_DEFAULT, "docker.io", "registry-1.docker.io",
	 443, "/v2/", false},
	{"/v2/acme/app/tags/list?n=5", 0, DRP_MIRROR_BY_DEFAULT, "docker.io",
	 "registry-1.docker.io", 443, "/v2/acme/app/tags/list?n=5", false},
	/* the proxy's token realm */
	{"/_drp/token?ns=quay.io&scope=repository:a/b:pull&service=quay.io", 0,
	 DRP_MIRROR_BY_NS, "quay.io", "quay.io", 443,
	 "/_drp/token?scope=repository:a/b:pull&service=quay.io", true},
	{"/_drp/token?service=docker.io", 0, DRP_MIRROR_BY_DEFAULT, "docker.io",
	 "registry-1.docker.io", 443, "/_drp/token?service=docker.io", true},
	/* not mirror paths: the proxy's own endpoints */
	{.in = "/ca.crt", .ret = -ENOENT},
	{.in = "/v2x/foo", .ret = -ENOENT},
	{.in = "/metrics?ns=docker.io", .ret = -ENOENT},
	{.in = "/_drp/tokens", .ret = -ENOENT},
	/* not registry names */
	{.in = "/v2/x/manifests/v1?ns=", .ret = -EINVAL},
	{.in = "/v2/x/manifests/v1?ns=bad_host!", .ret = -EINVAL},
	{.in = "/v2/x/manifests/v1?ns=a%00b", .ret = -EINVAL},
	{.in = "/v2/x/manifests/v1?ns=a%2", .ret = -EINVAL},
	{.in = "/v2/x/manifests/v1?ns=host:99999", .ret = -EINVAL},
	{.in = "/v2/bad_host.io:x/app/manifests/v1", .ret = -EINVAL},
};

START_TEST(mapping)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		drp_mirror_target_t t;
		const char *in = cases[i].in;
		int r = drp_mirror_map(in, strlen(in), &t);
		ck_assert_msg(r == cases[i].ret, "%s: %d, want %d", in, r,
			      cases[i].ret);
		if (r < 0)
			continue;
		ck_assert_msg(t.by == cases[i].by, "%s: by %d", in, t.by);
		ck_assert_str_eq(t.registry, cases[i].registry);
		ck_assert_str_eq(t.host, cases[i].host);
		ck_assert_uint_eq(t.port, cases[i].port);
		ck_assert_str_eq(t.target, cases[i].target);
		ck_assert_uint_eq(t.target_len, strlen(cases[i].target));
		ck_assert(t.realm == cases[i].realm);
		drp_mirror_target_free(&t);
	}
}
END_TEST

Suite *mirror_suite(void)
{
	Suite *s = suite_create("mirror");
	TCase *tc = tcase_create("map");
	tcase_add_test(tc, mapping);
	suite_add_tcase(s, tc);
	return s;
}
