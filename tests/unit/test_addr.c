/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "util/addr.h"

Suite *addr_suite(void);

/* "1.2.3.4" or "::1" -> sockaddr (port 0). */
static const struct sockaddr *sa_of(const char *ip, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *sin = (void *)ss;
	struct sockaddr_in6 *sin6 = (void *)ss;
	if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
	} else {
		ck_assert_int_eq(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
		sin6->sin6_family = AF_INET6;
	}
	return (const struct sockaddr *)ss;
}

static const struct {
	const char *in;
	int ret;	 /* of drp_cidr_parse */
	const char *out; /* drp_cidr_str of the result */
} cidr_cases[] = {
	/* plain v4 network */
	{"10.0.0.0/8", 0, "10.0.0.0/8"},
	/* bare address = host route */
	{"192.168.1.7", 0, "192.168.1.7/32"},
	/* /0 is everything */
	{"0.0.0.0/0", 0, "0.0.0.0/0"},
	/* prefix not on a byte boundary */
	{"172.16.0.0/12", 0, "172.16.0.0/12"},
	/* v6 loopback */
	{"::1/128", 0, "::1/128"},
	/* bare v6 address */
	{"fe80::1", 0, "fe80::1/128"},
	/* v6 prefix of 7 bits */
	{"fc00::/7", 0, "fc00::/7"},
	/* leading zeros in the prefix are fine */
	{"10.0.0.0/08", 0, "10.0.0.0/8"},
	/* host bits set: refused, a typo must not widen a policy */
	{"10.0.0.1/8", -EINVAL, NULL},
	/* host bits set in the last partial byte */
	{"172.17.0.0/12", -EINVAL, NULL},
	/* host bits set in v6 */
	{"fc00::1/7", -EINVAL, NULL},
	/* prefix too long for v4 */
	{"10.0.0.0/33", -EINVAL, NULL},
	/* prefix too long for v6 */
	{"::/129", -EINVAL, NULL},
	/* empty prefix */
	{"10.0.0.0/", -EINVAL, NULL},
	/* signed prefix */
	{"10.0.0.0/+8", -EINVAL, NULL},
	/* short dotted form is not accepted */
	{"10.1/16", -EINVAL, NULL},
	/* a name is not an address */
	{"localhost/8", -EINVAL, NULL},
	/* empty */
	{"", -EINVAL, NULL},
	/* two slashes */
	{"10.0.0.0/8/8", -EINVAL, NULL},
	/* blank inside */
	{"10.0.0.0 /8", -EINVAL, NULL},
	/* brackets are not part of CIDR syntax */
	{"[::1]/128", -EINVAL, NULL},
};

START_TEST(cidr_parse_table)
{
	drp_cidr_t c;
	char buf[64];
	int r = drp_cidr_parse(cidr_cases[_i].in, &c);

	ck_assert_msg(r == cidr_cases[_i].ret, "%s: got %d", cidr_cases[_i].in,
		      r);
	if (r == 0)
		ck_assert_str_eq(drp_cidr_str(&c, buf, sizeof(buf)),
				 cidr_cases[_i].out);
}
END_TEST

START_TEST(cidr_parse_masked)
{
	drp_cidr_t c;
	char buf[64];

	/* Host bits reported and cleared. */
	ck_assert_int_eq(drp_cidr_parse_masked("10.1.2.3/8", &c), 1);
	ck_assert_str_eq(drp_cidr_str(&c, buf, sizeof(buf)), "10.0.0.0/8");
	ck_assert_int_eq(drp_cidr_parse_masked("2001:db8::1/32", &c), 1);
	ck_assert_str_eq(drp_cidr_str(&c, buf, sizeof(buf)), "2001:db8::/32");
	/* Clean network: 0. */
	ck_assert_int_eq(drp_cidr_parse_masked("10.0.0.0/8", &c), 0);
	/* /0 with any address clears everything. */
	ck_assert_int_eq(drp_cidr_parse_masked("1.2.3.4/0", &c), 1);
	ck_assert_str_eq(drp_cidr_str(&c, buf, sizeof(buf)), "0.0.0.0/0");
	/* Syntax errors stay errors. */
	ck_assert_int_eq(drp_cidr_parse_masked("10.0.0.0/40", &c), -EINVAL);
	/* The family and all 16 bytes are set; unused bytes are zero. */
	ck_assert_int_eq(drp_cidr_parse_masked("10.0.0.0/8", &c), 0);
	ck_assert_int_eq(c.family, AF_INET);
	ck_assert_uint_eq(c.prefix, 8);
	ck_assert_uint_eq(c.addr[0], 10);
}
END_TEST

static const struct {
	const char *cidr;
	const char *addr;
	bool match;
} match_cases[] = {
	/* inside a /8 */
	{"10.0.0.0/8", "10.255.1.2", true},
	/* just outside a /8 */
	{"10.0.0.0/8", "11.0.0.0", false},
	/* /12 upper edge */
	{"172.16.0.0/12", "172.31.255.255", true},
	/* /12 first address after it */
	{"172.16.0.0/12", "172.32.0.0", false},
	/* v4-mapped v6 client matches a v4 entry */
	{"10.0.0.0/8", "::ffff:10.1.2.3", true},
	/* v4-mapped outside the v4 entry */
	{"10.0.0.0/8", "::ffff:192.168.0.1", false},
	/* a v4 entry never matches a real v6 address */
	{"0.0.0.0/0", "2001:db8::1", false},
	/* a v6 entry wider than ::ffff:0:0/96 is about v6 clients only */
	{"::/0", "10.0.0.1", false},
	/* ... and so is one that is not in v4-mapped form */
	{"::/96", "::ffff:10.0.0.1", false},
	/* ::ffff:0:0/96 is every v4 client */
	{"::ffff:0:0/96", "10.0.0.1", true},
	/* a v6 entry in v4-mapped form matches the v4 peer */
	{"::ffff:10.0.0.0/104", "10.9.9.9", true},
	/* ... and the v4-mapped peer */
	{"::ffff:10.0.0.0/104", "::ffff:10.9.9.9", true},
	/* ... but not another v4 network */
	{"::ffff:10.0.0.0/104", "11.9.9.9", false},
	/* ULA /7 includes fd.. */
	{"fc00::/7", "fd12:3456::1", true},
	/* ULA /7 excludes fe.. */
	{"fc00::/7", "fe80::1", false},
	/* host route */
	{"::1", "::1", true},
	/* host route, other host */
	{"::1", "::2", false},
	/* /0 matches every v4 */
	{"0.0.0.0/0", "203.0.113.9", true},
};

START_TEST(cidr_match_table)
{
	drp_cidr_t c;
	struct sockaddr_storage ss;

	ck_assert_int_eq(drp_cidr_parse(match_cases[_i].cidr, &c), 0);
	ck_assert_msg(drp_cidr_match(&c, sa_of(match_cases[_i].addr, &ss)) ==
			      match_cases[_i].match,
		      "%s vs %s", match_cases[_i].cidr, match_cases[_i].addr);
}
END_TEST

START_TEST(cidr_list_match)
{
	drp_cidr_t l[2];
	struct sockaddr_storage ss;

	ck_assert_int_eq(drp_cidr_parse("10.0.0.0/8", &l[0]), 0);
	ck_assert_int_eq(drp_cidr_parse("::1", &l[1]), 0);
	ck_assert(drp_cidr_list_match(l, 2, sa_of("::1", &ss)));
	ck_assert(drp_cidr_list_match(l, 2, sa_of("10.2.3.4", &ss)));
	ck_assert(!drp_cidr_list_match(l, 2, sa_of("192.168.0.1", &ss)));
	/* An empty list matches nothing. */
	ck_assert(!drp_cidr_list_match(l, 0, sa_of("10.2.3.4", &ss)));
}
END_TEST

static const struct {
	const char *in;
	const char *out; /* drp_sockaddr_str, NULL = -EINVAL */
} sa_cases[] = {
	/* v4 */
	{"0.0.0.0:3128", "0.0.0.0:3128"},
	/* v4 loopback, high port */
	{"127.0.0.1:65535", "127.0.0.1:65535"},
	/* v6 any */
	{"[::]:3128", "[::]:3128"},
	/* v6 written long, printed canonical */
	{"[2001:0db8:0:0:0:0:0:1]:443", "[2001:db8::1]:443"},
	/* '*' = every v4 address */
	{"*:8080", "0.0.0.0:8080"},
	/* port 0 is not a listening port */
	{"0.0.0.0:0", NULL},
	/* port too big */
	{"0.0.0.0:65536", NULL},
	/* port missing */
	{"0.0.0.0", NULL},
	/* empty port */
	{"0.0.0.0:", NULL},
	/* bare v6 is ambiguous with a port */
	{"::1:3128", NULL},
	/* v6 without port */
	{"[::1]", NULL},
	/* unclosed bracket */
	{"[::1:3128", NULL},
	/* v4 in brackets */
	{"[127.0.0.1]:80", NULL},
	/* names are not resolved here */
	{"localhost:3128", NULL},
	/* signed port */
	{"1.2.3.4:+80", NULL},
	/* empty address */
	{":80", NULL},
};

START_TEST(sockaddr_parse_table)
{
	struct sockaddr_storage ss;
	unsigned len = 0;
	char buf[64];
	int r = drp_sockaddr_parse(sa_cases[_i].in, &ss, &len);

	if (sa_cases[_i].out == NULL) {
		ck_assert_msg(r == -EINVAL, "%s: got %d", sa_cases[_i].in, r);
		return;
	}
	ck_assert_msg(r == 0, "%s: got %d", sa_cases[_i].in, r);
	ck_assert_str_eq(
		drp_sockaddr_str((struct sockaddr *)&ss, buf, sizeof(buf)),
		sa_cases[_i].out);
	ck_assert_uint_eq(len, ss.ss_family == AF_INET
				       ? sizeof(struct sockaddr_in)
				       : sizeof(struct sockaddr_in6));
}
END_TEST

START_TEST(sockaddr_format)
{
	struct sockaddr_storage ss;
	unsigned len;
	char buf[64], small[8];

	ck_assert_int_eq(drp_sockaddr_parse("[::ffff:10.0.0.1]:80", &ss, &len),
			 0);
	ck_assert_str_eq(
		drp_sockaddr_ip_str((struct sockaddr *)&ss, buf, sizeof(buf)),
		"::ffff:10.0.0.1");
	ck_assert_str_eq(
		drp_sockaddr_str((struct sockaddr *)&ss, buf, sizeof(buf)),
		"[::ffff:10.0.0.1]:80");
	ck_assert_int_eq(drp_sockaddr_parse("192.0.2.1:8080", &ss, &len), 0);
	ck_assert_str_eq(
		drp_sockaddr_ip_str((struct sockaddr *)&ss, buf, sizeof(buf)),
		"192.0.2.1");
	/* Truncation stays NUL-terminated. */
	drp_sockaddr_str((struct sockaddr *)&ss, small, sizeof(small));
	ck_assert_str_eq(small, "192.0.2");
	/* A non-IP family prints "?". */
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	ck_assert_str_eq(
		drp_sockaddr_str((struct sockaddr *)&ss, buf, sizeof(buf)),
		"?");
}
END_TEST

static const struct {
	const char *addr;
	bool forbidden;
} forbidden_cases[] = {
	/* loopback, first and last of 127/8 */
	{"127.0.0.1", true},
	{"127.255.255.254", true},
	/* unspecified 0/8 */
	{"0.0.0.0", true},
	{"0.1.2.3", true},
	/* link-local 169.254/16 */
	{"169.254.169.254", true},
	/* 169.253 is ordinary */
	{"169.253.0.1", false},
	/* multicast 224/4, both ends */
	{"224.0.0.1", true},
	{"239.255.255.255", true},
	/* 240/4 reserved but not in the list */
	{"240.0.0.1", false},
	/* limited broadcast */
	{"255.255.255.255", true},
	/* ordinary public and private v4 */
	{"8.8.8.8", false},
	{"10.0.0.1", false},
	{"192.168.1.1", false},
	/* v6 unspecified and loopback */
	{"::", true},
	{"::1", true},
	/* ::2 is not loopback */
	{"::2", false},
	/* v6 link-local fe80::/10, both ends */
	{"fe80::1", true},
	{"febf:ffff::1", true},
	/* fec0 is outside fe80::/10 */
	{"fec0::1", false},
	/* v6 multicast */
	{"ff02::1", true},
	/* ordinary v6 */
	{"2001:db8::1", false},
	{"fd00::1", false},
	/* v4-mapped forms of forbidden v4 */
	{"::ffff:127.0.0.1", true},
	{"::ffff:169.254.1.1", true},
	{"::ffff:0.0.0.0", true},
	{"::ffff:224.0.0.5", true},
	{"::ffff:255.255.255.255", true},
	/* v4-mapped ordinary v4 */
	{"::ffff:8.8.8.8", false},
};

START_TEST(forbidden_table)
{
	struct sockaddr_storage ss;

	ck_assert_msg(
		drp_addr_is_forbidden(sa_of(forbidden_cases[_i].addr, &ss)) ==
			forbidden_cases[_i].forbidden,
		"%s", forbidden_cases[_i].addr);
}
END_TEST

START_TEST(forbidden_non_ip)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	ck_assert(drp_addr_is_forbidden((struct sockaddr *)&ss));
}
END_TEST

START_TEST(is_local)
{
	struct sockaddr_storage ss;

	/* lo is always up in a test environment. */
	ck_assert(drp_addr_is_local(sa_of("127.0.0.1", &ss)));
	/* Asked again: the cached list answers the same. */
	ck_assert(drp_addr_is_local(sa_of("127.0.0.1", &ss)));
	/* The v4-mapped form of a local address is local. */
	ck_assert(drp_addr_is_local(sa_of("::ffff:127.0.0.1", &ss)));
	/* Other loopback addresses are not interface addresses. */
	ck_assert(!drp_addr_is_local(sa_of("127.0.0.2", &ss)));
	/* TEST-NET-1 and documentation v6 are never configured here. */
	ck_assert(!drp_addr_is_local(sa_of("192.0.2.1", &ss)));
	ck_assert(!drp_addr_is_local(sa_of("2001:db8::dead", &ss)));
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	ck_assert(!drp_addr_is_local((struct sockaddr *)&ss));
}
END_TEST

Suite *addr_suite(void)
{
	Suite *s = suite_create("addr");
	TCase *tc = tcase_create("cidr");
	tcase_add_loop_test(tc, cidr_parse_table, 0,
			    sizeof(cidr_cases) / sizeof(cidr_cases[0]));
	tcase_add_test(tc, cidr_parse_masked);
	tcase_add_loop_test(tc, cidr_match_table, 0,
			    sizeof(match_cases) / sizeof(match_cases[0]));
	tcase_add_test(tc, cidr_list_match);
	suite_add_tcase(s, tc);

	tc = tcase_create("sockaddr");
	tcase_add_loop_test(tc, sockaddr_parse_table, 0,
			    sizeof(sa_cases) / sizeof(sa_cases[0]));
	tcase_add_test(tc, sockaddr_format);
	suite_add_tcase(s, tc);

	tc = tcase_create("policy");
	tcase_add_loop_test(tc, forbidden_table, 0,
			    sizeof(forbidden_cases) /
				    sizeof(forbidden_cases[0]));
	tcase_add_test(tc, forbidden_non_ip);
	tcase_add_test(tc, is_local);
	suite_add_tcase(s, tc);
	return s;
}
