/* SPDX-License-Identifier: MIT */
/* Request-target parsing and registry route classification. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http/uri.h"

Suite *uri_suite(void);

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---- CONNECT authority-form ---- */

struct auth_case {
	const char *in;
	int rc;
	const char *host;
	uint16_t port;
	bool is_ip;
};

static const struct auth_case authorities[] = {
	/* the usual registry CONNECT */
	{"registry-1.docker.io:443", 0, "registry-1.docker.io", 443, false},
	/* upper case is folded */
	{"GHCR.IO:443", 0, "ghcr.io", 443, false},
	/* trailing dot of an absolute name is removed */
	{"quay.io.:443", 0, "quay.io", 443, false},
	/* single-label name */
	{"localhost:5000", 0, "localhost", 5000, false},
	/* digits and hyphens inside labels */
	{"a-1.b--c.9x:1", 0, "a-1.b--c.9x", 1, false},
	/* IPv4 literal */
	{"127.0.0.1:8443", 0, "127.0.0.1", 8443, true},
	/* IPv4 extremes */
	{"0.0.0.0:65535", 0, "0.0.0.0", 65535, true},
	/* IPv6 loopback */
	{"[::1]:443", 0, "::1", 443, true},
	/* IPv6 is canonicalized (zeros compressed, lower case) */
	{"[2001:DB8:0:0:0:0:0:1]:443", 0, "2001:db8::1", 443, true},
	/* IPv4-mapped IPv6 */
	{"[::ffff:192.0.2.1]:80", 0, "::ffff:192.0.2.1", 80, true},
	/* port with leading zeros */
	{"h:00443", 0, "h", 443, false},
	/* a 63-character label */
	{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.b:1",
	 0, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.b",
	 1, false},
	/* missing port */
	{"registry-1.docker.io", -EINVAL, NULL, 0, false},
	/* empty port */
	{"host:", -EINVAL, NULL, 0, false},
	/* port 0 */
	{"host:0", -EINVAL, NULL, 0, false},
	/* port too large */
	{"host:65536", -EINVAL, NULL, 0, false},
	/* port with six digits */
	{"host:000443", -EINVAL, NULL, 0, false},
	/* signed port */
	{"host:+443", -EINVAL, NULL, 0, false},
	/* non-numeric port */
	{"host:https", -EINVAL, NULL, 0, false},
	/* empty host */
	{":443", -EINVAL, NULL, 0, false},
	/* empty input */
	{"", -EINVAL, NULL, 0, false},
	/* unbracketed IPv6 */
	{"::1:443", -EINVAL, NULL, 0, false},
	/* IPv6 without a port */
	{"[::1]", -EINVAL, NULL, 0, false},
	/* unterminated bracket */
	{"[::1:443", -EINVAL, NULL, 0, false},
	/* junk after the bracket */
	{"[::1]x:443", -EINVAL, NULL, 0, false},
	/* not an IPv6 address in brackets */
	{"[example.com]:443", -EINVAL, NULL, 0, false},
	/* IPv4 in brackets */
	{"[127.0.0.1]:443", -EINVAL, NULL, 0, false},
	/* zone identifier */
	{"[fe80::1%25eth0]:443", -EINVAL, NULL, 0, false},
	/* empty brackets */
	{"[]:443", -EINVAL, NULL, 0, false},
	/* userinfo */
	{"user@host:443", -EINVAL, NULL, 0, false},
	/* underscore is not LDH */
	{"my_host:443", -EINVAL, NULL, 0, false},
	/* label starting with a hyphen */
	{"-a.b:443", -EINVAL, NULL, 0, false},
	/* label ending with a hyphen */
	{"a-.b:443", -EINVAL, NULL, 0, false},
	/* last label ending with a hyphen */
	{"host-:443", -EINVAL, NULL, 0, false},
	/* empty label */
	{"a..b:443", -EINVAL, NULL, 0, false},
	/* leading dot */
	{".a:443", -EINVAL, NULL, 0, false},
	/* only a dot */
	{".:443", -EINVAL, NULL, 0, false},
	/* a 64-character label */
	{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.b:1",
	 -EINVAL, NULL, 0, false},
	/* IPv4 with a part above 255 */
	{"256.1.1.1:443", -EINVAL, NULL, 0, false},
	/* IPv4 with three parts */
	{"1.2.3:443", -EINVAL, NULL, 0, false},
	/* IPv4 with five parts */
	{"1.2.3.4.5:443", -EINVAL, NULL, 0, false},
	/* IPv4 with a leading zero (octal ambiguity) */
	{"010.0.0.1:443", -EINVAL, NULL, 0, false},
	/* all-numeric name */
	{"12345:443", -EINVAL, NULL, 0, false},
	/* percent-encoding */
	{"ex%61mple.com:443", -EINVAL, NULL, 0, false},
	/* a slash (path) */
	{"host/x:443", -EINVAL, NULL, 0, false},
	/* a space */
	{"host :443", -EINVAL, NULL, 0, false},
};

START_TEST(authority)
{
	const struct auth_case *c = &authorities[_i];
	char host[DRP_HOST_MAX + 1] = "unchanged";
	uint16_t port = 7;
	bool is_ip = !c->is_ip;
	int rc = drp_uri_parse_authority(c->in, strlen(c->in), host, &port,
					 &is_ip);
	ck_assert_msg(rc == c->rc, "case %d (%s): %d", _i, c->in, rc);
	if (rc == 0) {
		ck_assert_str_eq(host, c->host);
		ck_assert_uint_eq(port, c->port);
		ck_assert(is_ip == c->is_ip);
	}
}
END_TEST

/* A 253-character name is the maximum; the length counts without the
 * trailing dot. */
START_TEST(authority_length)
{
	char in[300], host[DRP_HOST_MAX + 1];
	uint16_t port;
	bool ip;
	/* 63+1+63+1+63+1+61 = 253 */
	memset(in, 'a', sizeof(in));
	in[63] = in[127] = in[191] = '.';
	memcpy(in + 253, ".:1", 3);
	ck_assert_int_eq(drp_uri_parse_authority(in, 256, host, &port, &ip), 0);
	ck_assert_uint_eq(strlen(host), 253);
	memcpy(in + 253, ":1", 2);
	ck_assert_int_eq(drp_uri_parse_authority(in, 255, host, &port, &ip), 0);
	/* 254 characters */
	memcpy(in + 253, "a:1", 3);
	ck_assert_int_eq(drp_uri_parse_authority(in, 256, host, &port, &ip),
			 -EINVAL);
	/* length is honoured: no NUL needed, bytes after len ignored */
	ck_assert_int_eq(
		drp_uri_parse_authority("h:12345", 4, host, &port, &ip), 0);
	ck_assert_uint_eq(port, 12);
}
END_TEST

/* ---- Host header ---- */

static const struct auth_case hosts[] = {
	/* no port */
	{"registry-1.docker.io", 0, "registry-1.docker.io", 0, false},
	/* with a port */
	{"Registry.Example:5000", 0, "registry.example", 5000, false},
	/* IPv6 without a port */
	{"[::1]", 0, "::1", 0, true},
	/* IPv6 with a port */
	{"[fe80::A]:8080", 0, "fe80::a", 8080, true},
	/* IPv4 */
	{"10.0.0.1", 0, "10.0.0.1", 0, true},
	/* empty */
	{"", -EINVAL, NULL, 0, false},
	/* empty port */
	{"host:", -EINVAL, NULL, 0, false},
	/* two ports */
	{"host:1:2", -EINVAL, NULL, 0, false},
	/* unbracketed IPv6 */
	{"fe80::1", -EINVAL, NULL, 0, false},
	/* whitespace */
	{"host name", -EINVAL, NULL, 0, false},
	/* list of hosts */
	{"a,b", -EINVAL, NULL, 0, false},
};

START_TEST(host_header)
{
	const struct auth_case *c = &hosts[_i];
	char host[DRP_HOST_MAX + 1] = "unchanged";
	uint16_t port = 7;
	int rc = drp_uri_parse_host_header(c->in, strlen(c->in), host, &port);
	ck_assert_msg(rc == c->rc, "case %d (%s): %d", _i, c->in, rc);
	if (rc == 0) {
		ck_assert_str_eq(host, c->host);
		ck_assert_uint_eq(port, c->port);
	}
}
END_TEST

/* ---- absolute-form ---- */

struct abs_case {
	const char *in;
	int rc;
	const char *host;
	uint16_t port;
	const char *path;
};

static const struct abs_case absolutes[] = {
	/* simple */
	{"http://example.com/a/b", 0, "example.com", 80, "/a/b"},
	/* scheme and host case-insensitive */
	{"HTTP://Example.COM:8080/x?y=1", 0, "example.com", 8080, "/x?y=1"},
	/* no path */
	{"http://example.com", 0, "example.com", 80, "/"},
	/* no path but a port */
	{"http://example.com:81", 0, "example.com", 81, "/"},
	/* IPv6 host */
	{"http://[::1]:5000/v2/", 0, "::1", 5000, "/v2/"},
	/* IPv6 host without port */
	{"http://[::1]/", 0, "::1", 80, "/"},
	/* fragment dropped */
	{"http://h/p?q#frag", 0, "h", 80, "/p?q"},
	/* fragment only */
	{"http://h#frag", 0, "h", 80, "/"},
	/* https is not proxied directly */
	{"https://example.com/", -EPROTONOSUPPORT, NULL, 0, NULL},
	/* another scheme */
	{"ftp://example.com/", -EPROTONOSUPPORT, NULL, 0, NULL},
	/* scheme with digits and plus */
	{"svn+ssh://h/", -EPROTONOSUPPORT, NULL, 0, NULL},
	/* origin-form is not absolute-form */
	{"/v2/", -EINVAL, NULL, 0, NULL},
	/* missing slashes */
	{"http:example.com/", -EINVAL, NULL, 0, NULL},
	/* one slash */
	{"http:/example.com/", -EINVAL, NULL, 0, NULL},
	/* empty host */
	{"http:///path", -EINVAL, NULL, 0, NULL},
	/* userinfo */
	{"http://user:pw@example.com/", -EINVAL, NULL, 0, NULL},
	/* userinfo without password */
	{"http://user@example.com/", -EINVAL, NULL, 0, NULL},
	/* empty port */
	{"http://example.com:/", -EINVAL, NULL, 0, NULL},
	/* bad port */
	{"http://example.com:99999/", -EINVAL, NULL, 0, NULL},
	/* query without a path */
	{"http://example.com?x", -EINVAL, NULL, 0, NULL},
	/* space in the path (request splitting) */
	{"http://h/a b", -EINVAL, NULL, 0, NULL},
	/* CRLF in the path (header injection) */
	{"http://h/a\r\nX: y", -EINVAL, NULL, 0, NULL},
	/* non-ASCII in the path */
	{"http://h/\xc3\xa9", -EINVAL, NULL, 0, NULL},
	/* bad host */
	{"http://exa_mple.com/", -EINVAL, NULL, 0, NULL},
	/* empty */
	{"", -EINVAL, NULL, 0, NULL},
	/* scheme only */
	{"http://", -EINVAL, NULL, 0, NULL},
};

START_TEST(absolute)
{
	const struct abs_case *c = &absolutes[_i];
	char host[DRP_HOST_MAX + 1] = "unchanged";
	uint16_t port = 7;
	const char *path = NULL;
	size_t plen = 99;
	size_t len = strlen(c->in);
	/* exact-size copy so that a read past the end is caught */
	char *in = malloc(len ? len : 1);
	memcpy(in, c->in, len);
	int rc = drp_uri_parse_absolute(in, len, host, &port, &path, &plen);
	ck_assert_msg(rc == c->rc, "case %d (%s): %d", _i, c->in, rc);
	if (rc == 0) {
		ck_assert_str_eq(host, c->host);
		ck_assert_uint_eq(port, c->port);
		ck_assert_uint_eq(plen, strlen(c->path));
		ck_assert_int_eq(memcmp(path, c->path, plen), 0);
		/* a real path points into the input */
		if (strcmp(c->path, "/") != 0)
			ck_assert(path > in && path < in + len);
	}
	free(in);
}
END_TEST

START_TEST(path_len)
{
	ck_assert_uint_eq(drp_uri_path_len("/v2/x?a=b", 9), 5);
	ck_assert_uint_eq(drp_uri_path_len("/v2/x#f", 7), 5);
	ck_assert_uint_eq(drp_uri_path_len("/v2/x", 5), 5);
	ck_assert_uint_eq(drp_uri_path_len("?x", 2), 0);
	ck_assert_uint_eq(drp_uri_path_len("", 0), 0);
	/* the length bounds the scan */
	ck_assert_uint_eq(drp_uri_path_len("/ab?c", 3), 3);
}
END_TEST

/* ---- digests ---- */

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct digest_case {
	const char *in;
	bool valid;
	bool sha256;
};

static const struct digest_case digests[] = {
	/* sha256 */
	{"sha256:" HEX64, true, true},
	/* sha512 */
	{"sha512:" HEX64 HEX64, true, false},
	/* an unregistered algorithm: syntax only */
	{"blake3:abcDEF-_=", true, false},
	/* algorithm with separators */
	{"multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
	 true, false},
	/* sha256 with upper-case hex */
	{"sha256:"
	 "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
	 false, false},
	/* sha256 too short */
	{"sha256:0123", false, false},
	/* sha256 one digit too long */
	{"sha256:" HEX64 "0", false, false},
	/* sha256 with a non-hex character */
	{"sha256:"
	 "g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	 false, false},
	/* sha512 of sha256 length */
	{"sha512:" HEX64, false, false},
	/* no colon */
	{"sha256" HEX64, false, false},
	/* empty algorithm */
	{":" HEX64, false, false},
	/* empty encoded part */
	{"blake3:", false, false},
	/* upper-case algorithm */
	{"SHA256:" HEX64, false, false},
	/* separator at the start of the algorithm */
	{"+sha:abc", false, false},
	/* separator at the end of the algorithm */
	{"sha+:abc", false, false},
	/* two separators in a row */
	{"a+.b:abc", false, false},
	/* invalid encoded character */
	{"blake3:ab/c", false, false},
	/* empty */
	{"", false, false},
};

START_TEST(digest)
{
	const struct digest_case *c = &digests[_i];
	bool sha = !c->sha256;
	bool v = drp_digest_valid(c->in, strlen(c->in), &sha);
	ck_assert_msg(v == c->valid, "case %d (%s)", _i, c->in);
	ck_assert_msg(sha == c->sha256, "case %d (%s) sha256", _i, c->in);
	/* is_sha256 may be NULL */
	ck_assert(drp_digest_valid(c->in, strlen(c->in), NULL) == c->valid);
}
END_TEST

/* ---- routes ---- */

struct route_case {
	const char *path;
	int rc;
	enum drp_route_kind kind;
	const char *name; /* NULL: none */
	const char *ref;  /* NULL: none */
};

#define D256 "sha256:" HEX64

static const struct route_case routes[] = {
	/* not the registry API */
	{"/ca.crt", 0, DRP_ROUTE_OTHER, NULL, NULL},
	/* v1 API */
	{"/v1/_ping", 0, DRP_ROUTE_OTHER, NULL, NULL},
	/* /v2 without a slash */
	{"/v2", 0, DRP_ROUTE_OTHER, NULL, NULL},
	/* a look-alike prefix */
	{"/v22/x", 0, DRP_ROUTE_OTHER, NULL, NULL},
	/* the ping */
	{"/v2/", 0, DRP_ROUTE_PING, NULL, NULL},
	/* the ping with a query */
	{"/v2/?x=1", 0, DRP_ROUTE_PING, NULL, NULL},
	/* catalog */
	{"/v2/_catalog", 0, DRP_ROUTE_CATALOG, NULL, NULL},
	/* catalog with pagination */
	{"/v2/_catalog?n=10&last=a", 0, DRP_ROUTE_CATALOG, NULL, NULL},
	/* manifest by tag, two-component name */
	{"/v2/library/alpine/manifests/3.19", 0, DRP_ROUTE_MANIFEST_TAG,
	 "library/alpine", "3.19"},
	/* manifest by tag, one component */
	{"/v2/alpine/manifests/latest", 0, DRP_ROUTE_MANIFEST_TAG, "alpine",
	 "latest"},
	/* manifest by digest */
	{"/v2/library/alpine/manifests/" D256, 0, DRP_ROUTE_MANIFEST_DIGEST,
	 "library/alpine", D256},
	/* blob with a three-component name */
	{"/v2/a/b/c/blobs/" D256, 0, DRP_ROUTE_BLOB, "a/b/c", D256},
	/* blob with a query (signed redirects add one) */
	{"/v2/x/blobs/" D256 "?ns=docker.io", 0, DRP_ROUTE_BLOB, "x", D256},
	/* upload start with the trailing slash */
	{"/v2/x/blobs/uploads/", 0, DRP_ROUTE_UPLOAD, "x", NULL},
	/* upload start without it */
	{"/v2/x/blobs/uploads", 0, DRP_ROUTE_UPLOAD, "x", NULL},
	/* upload session with state in the query */
	{"/v2/x/blobs/uploads/5d4f-uuid?_state=abc&digest=" D256, 0,
	 DRP_ROUTE_UPLOAD, "x", "5d4f-uuid"},
	/* upload in a nested name */
	{"/v2/org/team/app/blobs/uploads/u1", 0, DRP_ROUTE_UPLOAD,
	 "org/team/app", "u1"},
	/* tags list */
	{"/v2/x/tags/list", 0, DRP_ROUTE_TAGS, "x", NULL},
	/* tags list with pagination, nested name */
	{"/v2/a/b/tags/list?n=100", 0, DRP_ROUTE_TAGS, "a/b", NULL},
	/* referrers */
	{"/v2/x/referrers/" D256, 0, DRP_ROUTE_REFERRERS, "x", D256},
	/* referrers with artifactType filter */
	{"/v2/x/y/referrers/" D256 "?artifactType=a%2Fb", 0,
	 DRP_ROUTE_REFERRERS, "x/y", D256},
	/* a name containing "blobs" and "manifests" components */
	{"/v2/blobs/manifests/manifests/latest", 0, DRP_ROUTE_MANIFEST_TAG,
	 "blobs/manifests", "latest"},
	/* a name containing "manifests", then a blob */
	{"/v2/manifests/blobs/blobs/" D256, 0, DRP_ROUTE_BLOB,
	 "manifests/blobs", D256},
	/* a name containing "tags", then a manifest */
	{"/v2/tags/list/manifests/v1", 0, DRP_ROUTE_MANIFEST_TAG, "tags/list",
	 "v1"},
	/* a name containing "blobs/uploads", then a manifest */
	{"/v2/blobs/uploads/manifests/v1", 0, DRP_ROUTE_MANIFEST_TAG,
	 "blobs/uploads", "v1"},
	/* a name containing "uploads", then an upload */
	{"/v2/uploads/blobs/uploads/u", 0, DRP_ROUTE_UPLOAD, "uploads", "u"},
	/* a name containing "referrers", then a manifest */
	{"/v2/referrers/x/manifests/t", 0, DRP_ROUTE_MANIFEST_TAG,
	 "referrers/x", "t"},
	/* name separators: . _ __ and runs of - */
	{"/v2/a.b_c__d---e/f/manifests/t", 0, DRP_ROUTE_MANIFEST_TAG,
	 "a.b_c__d---e/f", "t"},
	/* tag of 128 characters */
	{"/v2/x/manifests/"
	 "_123456789012345678901234567890123456789012345678901234567890123"
	 "4567890123456789012345678901234567890123456789012345678901234567",
	 0, DRP_ROUTE_MANIFEST_TAG, "x",
	 "_123456789012345678901234567890123456789012345678901234567890123"
	 "4567890123456789012345678901234567890123456789012345678901234567"},
	/* tag with upper case, dots and dashes */
	{"/v2/x/manifests/V1.2-rc_3", 0, DRP_ROUTE_MANIFEST_TAG, "x",
	 "V1.2-rc_3"},
	/* unknown /v2/ path */
	{"/v2/x/y/z", 0, DRP_ROUTE_V2_OTHER, NULL, NULL},
	/* a tags path that is not the list */
	{"/v2/x/tags/other", 0, DRP_ROUTE_V2_OTHER, NULL, NULL},
	/* uploads not under blobs */
	{"/v2/x/uploads/u", 0, DRP_ROUTE_V2_OTHER, NULL, NULL},
	/* just a name */
	{"/v2/x", 0, DRP_ROUTE_V2_OTHER, NULL, NULL},
	/* tag of 129 characters */
	{"/v2/x/manifests/"
	 "a1234567890123456789012345678901234567890123456789012345678901234"
	 "5678901234567890123456789012345678901234567890123456789012345678",
	 -EINVAL, DRP_ROUTE_V2_OTHER, NULL, NULL},
	/* tag starting with a dot */
	{"/v2/x/manifests/.hidden", -EINVAL, DRP_ROUTE_V2_OTHER, NULL, NULL},
	/* tag starting with a dash */
	{"/v2/x/manifests/-x", -EINVAL, DRP_ROUTE_V2_OTHER, NULL, NULL},
	/* empty tag */
	{"/v2/x/manifests/", -EINVAL, DRP_ROUTE_V2_OTHER, NULL, NULL},
	/* bad manifest digest */
	{"/v2/x/manifests/sha256:abc", -EINVAL, DRP_ROUTE_V2_OTHER, NULL, NULL},
	/* a blob by tag is not a blob */
	{"/v2/x/blobs/latest", -EINVAL, DRP_ROUTE_V2_OTHER, NULL, NULL},
	/* bad referrers digest */
	{"/v2/x/referrers/latest", -EINVAL, DRP_ROUTE_V2_OTHER, NULL, NULL},
	/* upper case in the name */
	{"/v2/Library/alpine/manifests/latest", -EINVAL, DRP_ROUTE_V2_OTHER,
	 NULL, NULL},
	/* empty name component */
	{"/v2/a//b/manifests/latest", -EINVAL, DRP_ROUTE_V2_OTHER, NULL, NULL},
	/* empty name */
	{"/v2//manifests/latest", -EINVAL, DRP_ROUTE_V2_OTHER, NULL, NULL},
	/* dot-dot path traversal */
	{"/v2/a/../b/manifests/latest", -EINVAL, DRP_ROUTE_V2_OTHER, NULL,
	 NULL},
	/* percent-encoded slash */
	{"/v2/library%2Falpine/manifests/latest", -EINVAL, DRP_ROUTE_V2_OTHER,
	 NULL, NULL},
	/* separator at a component start */
	{"/v2/_x/manifests/latest", -EINVAL, DRP_ROUTE_V2_OTHER, NULL, NULL},
	/* separator at a component end */
	{"/v2/x-/manifests/latest", -EINVAL, DRP_ROUTE_V2_OTHER, NULL, NULL},
	/* three underscores */
	{"/v2/a___b/manifests/latest", -EINVAL, DRP_ROUTE_V2_OTHER, NULL, NULL},
	/* two dots */
	{"/v2/a..b/manifests/latest", -EINVAL, DRP_ROUTE_V2_OTHER, NULL, NULL},
	/* mixed separators */
	{"/v2/a._b/manifests/latest", -EINVAL, DRP_ROUTE_V2_OTHER, NULL, NULL},
	/* manifests without a name */
	{"/v2/manifests/latest", -EINVAL, DRP_ROUTE_V2_OTHER, NULL, NULL},
	/* blobs without a name */
	{"/v2/blobs/" D256, -EINVAL, DRP_ROUTE_V2_OTHER, NULL, NULL},
	/* uploads without a name */
	{"/v2/blobs/uploads/u", -EINVAL, DRP_ROUTE_V2_OTHER, NULL, NULL},
	/* tags list without a name */
	{"/v2/tags/list", -EINVAL, DRP_ROUTE_V2_OTHER, NULL, NULL},
	/* referrers without a name */
	{"/v2/referrers/" D256, -EINVAL, DRP_ROUTE_V2_OTHER, NULL, NULL},
	/* a trailing slash after the reference */
	{"/v2/x/manifests/latest/", 0, DRP_ROUTE_V2_OTHER, NULL, NULL},
};

static void check_span(const char *got, size_t got_len, const char *want)
{
	if (want == NULL) {
		ck_assert_ptr_null(got);
		ck_assert_uint_eq(got_len, 0);
		return;
	}
	ck_assert_ptr_nonnull(got);
	ck_assert_uint_eq(got_len, strlen(want));
	ck_assert_int_eq(memcmp(got, want, got_len), 0);
}

START_TEST(route)
{
	const struct route_case *c = &routes[_i];
	size_t len = strlen(c->path);
	char *p = malloc(len);
	memcpy(p, c->path, len);
	drp_route_t r;
	memset(&r, 0xa5, sizeof(r));
	int rc = drp_route_classify(p, len, &r);
	ck_assert_msg(rc == c->rc, "case %d (%s): rc %d", _i, c->path, rc);
	ck_assert_msg(r.kind == c->kind, "case %d (%s): kind %d", _i, c->path,
		      r.kind);
	check_span(r.name, r.name_len, c->name);
	check_span(r.ref, r.ref_len, c->ref);
	free(p);
}
END_TEST

/* Credentials follow a redirect only to the same origin: scheme, host
 * (any case, trailing dot or not) and effective port. */
static const struct {
	bool tls_a;
	const char *host_a;
	uint16_t port_a;
	bool tls_b;
	const char *host_b;
	uint16_t port_b;
	bool same;
} origins[] = {
	{true, "h.test", 443, true, "h.test", 443, true},
	{true, "h.test", 443, true, "h.test", 0, true},
	{true, "h.test", 443, true, "H.Test", 443, true},
	{true, "h.test", 443, true, "h.test.", 443, true},
	{false, "h.test", 80, false, "h.test", 0, true},
	{true, "h.test", 5000, true, "h.test", 5000, true},
	{true, "h.test", 443, true, "h.test", 6443, false},
	{true, "h.test", 443, false, "h.test", 8080, false},
	{true, "h.test", 443, false, "h.test", 443, false},
	{true, "h.test", 443, false, "h.test", 80, false},
	{true, "h.test", 80, false, "h.test", 80, false},
	{true, "h.test", 443, true, "cdn.test", 443, false},
	{true, "h.test", 443, true, "h.test.cdn", 443, false},
	{true, "h.test", 443, true, "", 443, false},
	{true, "2001:db8::1", 443, true, "2001:DB8::1", 0, true},
};

START_TEST(same_origin)
{
	const __typeof__(origins[0]) *c = &origins[_i];
	ck_assert_int_eq(drp_uri_same_origin(c->tls_a, c->host_a, c->port_a,
					     c->tls_b, c->host_b, c->port_b),
			 c->same);
	ck_assert_int_eq(drp_uri_same_origin(c->tls_b, c->host_b, c->port_b,
					     c->tls_a, c->host_a, c->port_a),
			 c->same);
}
END_TEST

START_TEST(origin)
{
	char b[64];
	ck_assert_int_eq(drp_uri_origin(b, sizeof(b), true, "Reg.Test.", 0),
			 20);
	ck_assert_str_eq(b, "https://reg.test:443");
	drp_uri_origin(b, sizeof(b), false, "reg.test", 8080);
	ck_assert_str_eq(b, "http://reg.test:8080");
	drp_uri_origin(b, sizeof(b), true, "2001:db8::1", 6443);
	ck_assert_str_eq(b, "https://[2001:db8::1]:6443");
	ck_assert_int_eq(drp_uri_origin(b, 10, true, "reg.test", 443), -ENOSPC);
	ck_assert_str_eq(b, "");
}
END_TEST

Suite *uri_suite(void)
{
	Suite *s = suite_create("uri");
	TCase *tc = tcase_create("target");
	tcase_add_loop_test(tc, authority, 0, N(authorities));
	tcase_add_test(tc, authority_length);
	tcase_add_loop_test(tc, host_header, 0, N(hosts));
	tcase_add_loop_test(tc, absolute, 0, N(absolutes));
	tcase_add_test(tc, path_len);
	tcase_add_loop_test(tc, same_origin, 0, N(origins));
	tcase_add_test(tc, origin);
	suite_add_tcase(s, tc);
	tc = tcase_create("registry");
	tcase_add_loop_test(tc, digest, 0, N(digests));
	tcase_add_loop_test(tc, route, 0, N(routes));
	suite_add_tcase(s, tc);
	return s;
}
