/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/proxyproto.h"
#include "util/addr.h"

Suite *proxyproto_suite(void);

static drp_proxyproto_t pp;
static const char *why;

static drp_proxyproto_result_t parse(const void *b, size_t n)
{
	return drp_proxyproto_parse(b, n, &pp, &why);
}

static drp_proxyproto_result_t parse_str(const char *s)
{
	return parse(s, strlen(s));
}

static const char *addr_str(const struct sockaddr_storage *ss)
{
	static char buf[2][64];
	static int i;
	i ^= 1;
	return drp_sockaddr_str((const struct sockaddr *)ss, buf[i], 64);
}

static bool all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* Every proper prefix of a complete header is NEED_MORE, never INVALID:
 * a header split across reads anywhere parses once it is all in. */
static void prefixes_need_more(const void *b, size_t len)
{
	for (size_t n = 0; n < len; n++) {
		ck_assert_msg(parse(b, n) == DRP_PROXYPROTO_NEED_MORE,
			      "prefix of %zu bytes: %s", n, why ? why : "DONE");
		ck_assert(all_zero(&pp, sizeof(pp)));
	}
}

static void expect_invalid(const void *b, size_t n, const char *reason)
{
	ck_assert_msg(parse(b, n) == DRP_PROXYPROTO_INVALID,
		      "accepted (%zu bytes)", n);
	ck_assert_ptr_nonnull(why);
	ck_assert_msg(strstr(why, reason) != NULL, "why '%s', expected '%s'",
		      why, reason);
	ck_assert(all_zero(&pp, sizeof(pp)));
}

/* ---------------------------------------------------------------- v1 */

START_TEST(v1_tcp4)
{
	const char *line = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
	char buf[128];
	snprintf(buf, sizeof(buf), "%sGET / HTTP/1.1\r\n", line);
	ck_assert_int_eq(parse_str(buf), DRP_PROXYPROTO_DONE);
	ck_assert_ptr_null(why);
	ck_assert_uint_eq(pp.version, 1);
	ck_assert_uint_eq(pp.len, strlen(line));
	ck_assert(pp.has_addrs);
	ck_assert(!pp.local);
	ck_assert_str_eq(addr_str(&pp.src), "192.168.0.1:56324");
	ck_assert_str_eq(addr_str(&pp.dst), "192.168.0.11:443");
	prefixes_need_more(line, strlen(line));
}
END_TEST

START_TEST(v1_tcp6)
{
	ck_assert_int_eq(parse_str("PROXY TCP6 2001:db8::1 ::1 0 65535\r\n"),
			 DRP_PROXYPROTO_DONE);
	ck_assert_str_eq(addr_str(&pp.src), "[2001:db8::1]:0");
	ck_assert_str_eq(addr_str(&pp.dst), "[::1]:65535");
	ck_assert_int_eq(pp.src.ss_family, AF_INET6);
	/* A v4-mapped address is an IPv6 address (policy matches it
	 * against IPv4 entries: drp_cidr_match). */
	ck_assert_int_eq(
		parse_str("PROXY TCP6 ::ffff:10.0.0.1 ::ffff:10.0.0.2 1 2\r\n"),
		DRP_PROXYPROTO_DONE);
	ck_assert_str_eq(addr_str(&pp.src), "[::ffff:10.0.0.1]:1");
}
END_TEST

START_TEST(v1_unknown)
{
	ck_assert_int_eq(parse_str("PROXY UNKNOWN\r\nGET"),
			 DRP_PROXYPROTO_DONE);
	ck_assert_uint_eq(pp.len, 15);
	ck_assert(!pp.has_addrs);
	ck_assert(!pp.local);
	/* Whatever follows UNKNOWN is ignored. */
	const char *l = "PROXY UNKNOWN ffff:f::f ffff:f::f 65535 65535\r\n";
	ck_assert_int_eq(parse_str(l), DRP_PROXYPROTO_DONE);
	ck_assert_uint_eq(pp.len, strlen(l));
	ck_assert(!pp.has_addrs);
	prefixes_need_more(l, strlen(l));
	expect_invalid("PROXY UNKNOWNX\r\n", 16, "v1: protocol");
}
END_TEST

/* The longest lines the specification allows, and one byte more. */
START_TEST(v1_length_limit)
{
	const char *longest = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:"
			      "ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
			      "65535 65535\r\n";
	ck_assert_uint_eq(strlen(longest), 104);
	ck_assert_int_eq(parse_str(longest), DRP_PROXYPROTO_DONE);

	char buf[200];
	memset(buf, 'x', sizeof(buf));
	memcpy(buf, "PROXY UNKNOWN ", 14);
	/* 107 bytes with CRLF: accepted. */
	memcpy(buf + 105, "\r\n", 2);
	ck_assert_int_eq(parse(buf, 150), DRP_PROXYPROTO_DONE);
	ck_assert_uint_eq(pp.len, DRP_PROXYPROTO_V1_MAX);
	prefixes_need_more(buf, 107);
	/* 108: refused as soon as the CR shows where the line ends... */
	memset(buf + 105, 'x', 2);
	memcpy(buf + 106, "\r\n", 2);
	expect_invalid(buf, 107, "longer than 107");
	expect_invalid(buf, 150, "longer than 107");
	/* ...and a line with no CRLF in its first 107 bytes as soon as
	 * they are in; 106 bytes may still end well. */
	memset(buf + 105, 'x', 3);
	ck_assert_int_eq(parse(buf, 106), DRP_PROXYPROTO_NEED_MORE);
	expect_invalid(buf, 107, "longer than 107");
	expect_invalid(buf, 200, "longer than 107");
}
END_TEST

START_TEST(v1_bad)
{
	static const struct {
		const char *line;
		const char *why;
	} bad[] = {
		/* family and address disagree */
		{"PROXY TCP4 ::1 ::1 1 2\r\n", "source address"},
		{"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "source address"},
		{"PROXY TCP4 1.2.3.4 ::1 1 2\r\n", "destination address"},
		/* inet_pton's form only: no leading zeros, four parts */
		{"PROXY TCP4 01.2.3.4 1.2.3.4 1 2\r\n", "source address"},
		{"PROXY TCP4 1.2.3 1.2.3.4 1 2\r\n", "source address"},
		{"PROXY TCP4 1.2.3.256 1.2.3.4 1 2\r\n", "source address"},
		/* ports */
		{"PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n", "source port"},
		{"PROXY TCP4 1.2.3.4 1.2.3.4 080 2\r\n", "source port"},
		{"PROXY TCP4 1.2.3.4 1.2.3.4 -1 2\r\n", "source port"},
		{"PROXY TCP4 1.2.3.4 1.2.3.4 1 2x\r\n", "destination port"},
		{"PROXY TCP4 1.2.3.4 1.2.3.4 1 999999\r\n", "destination port"},
		/* fields: missing, doubled or trailing spaces, one too many */
		{"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n", "destination port"},
		{"PROXY TCP4\r\n", "source address"},
		{"PROXY TCP4  1.2.3.4 1.2.3.4 1 2\r\n", "source address"},
		{"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 \r\n", "destination port"},
		{"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n",
		 "after the destination"},
		{"PROXY  TCP4 1.2.3.4 1.2.3.4 1 2\r\n", "no protocol"},
		{"PROXY \r\n", "no protocol"},
		{"PROXY\r\n", "not a PROXY line"},
		{"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n", "protocol not"},
		{"PROXY tcp4 1.2.3.4 1.2.3.4 1 2\r\n", "protocol not"},
		{"proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n", "no PROXY protocol"},
		{"PROXYTCP4 1.2.3.4 1.2.3.4 1 2\r\n", "not a PROXY line"},
		/* line ends: LF alone, CR without LF, control characters */
		{"PROXY UNKNOWN\n", "control character"},
		{"PROXY UNKNOWN\rX", "CR without LF"},
		{"PROXY UNKNOWN\t\r\n", "control character"},
		{"PROXY UNK\x80NOWN\r\n", "control character"},
		/* not a header at all: HTTP, TLS */
		{"GET / HTTP/1.1\r\n", "no PROXY protocol"},
		{"POST / HTTP/1.1\r\n", "not a PROXY line"},
		{"\x16\x03\x01\x02\x00", "no PROXY protocol"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(parse_str(bad[i].line) == DRP_PROXYPROTO_INVALID,
			      "accepted: %s", bad[i].line);
		ck_assert_msg(strstr(why, bad[i].why) != NULL,
			      "%s: why '%s', expected '%s'", bad[i].line, why,
			      bad[i].why);
		ck_assert(all_zero(&pp, sizeof(pp)));
	}
	/* A NUL inside the line. */
	expect_invalid("PROXY UNK\0NOWN\r\n", 16, "control character");
	/* Bad bytes are refused before the line is complete. */
	expect_invalid("PROXX", 5, "not a PROXY line");
	expect_invalid("PROXY UNKNOWN\n", 14, "control character");
}
END_TEST

/* ---------------------------------------------------------------- v2 */

static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
				0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* A v2 header: ver_cmd, fam, then body (addresses and TLVs) of blen
 * bytes; the length field says blen unless len_field >= 0. */
static size_t v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const void *body,
		 size_t blen, int len_field)
{
	memcpy(out, sig, 12);
	out[12] = ver_cmd;
	out[13] = fam;
	size_t l = len_field >= 0 ? (size_t)len_field : blen;
	out[14] = (uint8_t)(l >> 8);
	out[15] = (uint8_t)l;
	if (blen)
		memcpy(out + 16, body, blen);
	return 16 + blen;
}

static const uint8_t inet_block[12] = {10, 1, 2,    3,	  10,	0,
				       0,  1, 0x13, 0x88, 0x01, 0xbb};

START_TEST(v2_inet)
{
	uint8_t b[256];
	size_t n = v2(b, 0x21, 0x11, inet_block, 12, -1);
	memcpy(b + n, "GET /", 5);
	ck_assert_int_eq(parse(b, n + 5), DRP_PROXYPROTO_DONE);
	ck_assert_uint_eq(pp.version, 2);
	ck_assert_uint_eq(pp.len, 28);
	ck_assert(pp.has_addrs);
	ck_assert(!pp.local);
	ck_assert_str_eq(addr_str(&pp.src), "10.1.2.3:5000");
	ck_assert_str_eq(addr_str(&pp.dst), "10.0.0.1:443");
	prefixes_need_more(b, n);
}
END_TEST

START_TEST(v2_inet6)
{
	uint8_t block[36] = {0};
	block[0] = 0x20, block[1] = 0x01, block[2] = 0x0d, block[3] = 0xb8;
	block[15] = 1; /* 2001:db8::1 */
	block[31] = 1; /* ::1 */
	block[32] = 0xff, block[33] = 0xff;
	block[34] = 0, block[35] = 80;
	uint8_t b[256];
	size_t n = v2(b, 0x21, 0x21, block, 36, -1);
	ck_assert_int_eq(parse(b, n), DRP_PROXYPROTO_DONE);
	ck_assert_uint_eq(pp.len, 52);
	ck_assert_str_eq(addr_str(&pp.src), "[2001:db8::1]:65535");
	ck_assert_str_eq(addr_str(&pp.dst), "[::1]:80");
	prefixes_need_more(b, n);
}
END_TEST

/* LOCAL: the balancer's own connection (health checks). The family and
 * whatever the block holds are ignored. */
START_TEST(v2_local)
{
	uint8_t b[256];
	size_t n = v2(b, 0x20, 0x00, NULL, 0, -1);
	ck_assert_int_eq(parse(b, n), DRP_PROXYPROTO_DONE);
	ck_assert(pp.local);
	ck_assert(!pp.has_addrs);
	ck_assert_uint_eq(pp.len, 16);
	n = v2(b, 0x20, 0x11, inet_block, 12, -1);
	ck_assert_int_eq(parse(b, n), DRP_PROXYPROTO_DONE);
	ck_assert(pp.local);
	ck_assert(!pp.has_addrs);
	ck_assert_uint_eq(pp.len, 28);
	/* Even a family this parser would refuse for PROXY. */
	n = v2(b, 0x20, 0x77, "xyz", 3, -1);
	ck_assert_int_eq(parse(b, n), DRP_PROXYPROTO_DONE);
	ck_assert(pp.local);
}
END_TEST

/* PROXY with UNSPEC or AF_UNIX: done, addresses unknown. */
START_TEST(v2_no_addrs)
{
	uint8_t b[512], unixb[216] = {0};
	size_t n = v2(b, 0x21, 0x00, NULL, 0, -1);
	ck_assert_int_eq(parse(b, n), DRP_PROXYPROTO_DONE);
	ck_assert(!pp.has_addrs);
	ck_assert(!pp.local);
	memcpy(unixb, "/run/client.sock", 16);
	n = v2(b, 0x21, 0x31, unixb, sizeof(unixb), -1);
	ck_assert_int_eq(parse(b, n), DRP_PROXYPROTO_DONE);
	ck_assert(!pp.has_addrs);
	ck_assert_uint_eq(pp.len, 16 + 216);
	expect_invalid(b, v2(b, 0x21, 0x31, unixb, 100, -1), "truncated");
}
END_TEST

/* TLVs after the addresses are skipped (the length covers them), but
 * must tile the rest of the header exactly. */
START_TEST(v2_tlvs)
{
	uint8_t body[64], b[128];
	memcpy(body, inet_block, 12);
	size_t l = 12;
	/* PP2_TYPE_AUTHORITY "example.com", PP2_TYPE_NOOP of 0 bytes, a
	 * custom type 0xE0 of 2 bytes */
	body[l++] = 0x02, body[l++] = 0, body[l++] = 11;
	memcpy(body + l, "example.com", 11), l += 11;
	body[l++] = 0x04, body[l++] = 0, body[l++] = 0;
	body[l++] = 0xe0, body[l++] = 0, body[l++] = 2;
	body[l++] = 0xaa, body[l++] = 0xbb;
	size_t n = v2(b, 0x21, 0x11, body, l, -1);
	memcpy(b + n, "\x16\x03\x01", 3);
	ck_assert_int_eq(parse(b, n + 3), DRP_PROXYPROTO_DONE);
	ck_assert_uint_eq(pp.len, n);
	ck_assert_str_eq(addr_str(&pp.src), "10.1.2.3:5000");
	prefixes_need_more(b, n);

	/* The last TLV says 3 bytes, 2 are there. */
	body[l - 3] = 3;
	expect_invalid(b, v2(b, 0x21, 0x11, body, l, -1), "malformed TLV");
	body[l - 3] = 2;
	/* Two bytes after the addresses: not even a TLV header. */
	expect_invalid(b, v2(b, 0x21, 0x11, body, 14, -1), "malformed TLV");
}
END_TEST

START_TEST(v2_bad)
{
	uint8_t b[8192];
	/* The signature is checked byte by byte, before the rest. */
	memcpy(b, sig, 12);
	b[11] = 0x0b;
	ck_assert_int_eq(parse(b, 11), DRP_PROXYPROTO_NEED_MORE);
	expect_invalid(b, 12, "bad signature");
	b[11] = 0x0a;
	b[4] = 0x01;
	expect_invalid(b, 5, "bad signature");
	ck_assert_int_eq(parse(sig, 4), DRP_PROXYPROTO_NEED_MORE);
	/* "\r\n" then HTTP is not a v2 header. */
	expect_invalid("\r\nGET / HTTP/1.1", 16, "bad signature");

	size_t n = v2(b, 0x11, 0x11, inet_block, 12, -1);
	expect_invalid(b, 13, "version not 2");
	expect_invalid(b, n, "version not 2");
	n = v2(b, 0x22, 0x11, inet_block, 12, -1);
	expect_invalid(b, 13, "command");
	n = v2(b, 0x2f, 0x11, inet_block, 12, -1);
	expect_invalid(b, n, "command");
	/* UDP over a TCP listener; unknown families and transports. */
	expect_invalid(b, v2(b, 0x21, 0x12, inet_block, 12, -1), "datagram");
	expect_invalid(b, v2(b, 0x21, 0x22, inet_block, 12, -1), "datagram");
	expect_invalid(b, v2(b, 0x21, 0x41, inet_block, 12, -1), "family");
	expect_invalid(b, v2(b, 0x21, 0x13, inet_block, 12, -1), "family");
	expect_invalid(b, v2(b, 0x21, 0x10, inet_block, 12, -1), "family");
	/* The length leaves no room for the addresses: known from the
	 * fixed part alone. */
	n = v2(b, 0x21, 0x11, inet_block, 8, -1);
	expect_invalid(b, 16, "truncated");
	expect_invalid(b, n, "truncated");
	expect_invalid(b, v2(b, 0x21, 0x21, inet_block, 12, -1), "truncated");
	/* Longer than accepted: refused from the fixed part, without
	 * waiting for the bytes. */
	n = v2(b, 0x21, 0x11, inet_block, 12, DRP_PROXYPROTO_V2_MAX - 16 + 1);
	expect_invalid(b, 16, "longer than accepted");
	/* The longest accepted: a TLV fills it. */
	memset(b + 16, 0, sizeof(b) - 16);
	memcpy(b + 16, inet_block, 12);
	size_t tl = DRP_PROXYPROTO_V2_MAX - 16 - 12 - 3;
	b[28] = 0xe1, b[29] = (uint8_t)(tl >> 8), b[30] = (uint8_t)tl;
	v2(b, 0x21, 0x11, NULL, 0, DRP_PROXYPROTO_V2_MAX - 16);
	ck_assert_int_eq(parse(b, DRP_PROXYPROTO_V2_MAX - 1),
			 DRP_PROXYPROTO_NEED_MORE);
	ck_assert_int_eq(parse(b, sizeof(b)), DRP_PROXYPROTO_DONE);
	ck_assert_uint_eq(pp.len, DRP_PROXYPROTO_V2_MAX);
}
END_TEST

START_TEST(empty_and_null)
{
	ck_assert_int_eq(drp_proxyproto_parse(NULL, 0, &pp, &why),
			 DRP_PROXYPROTO_NEED_MORE);
	ck_assert_ptr_null(why);
	/* why may be NULL. */
	ck_assert_int_eq(drp_proxyproto_parse("GET", 3, &pp, NULL),
			 DRP_PROXYPROTO_INVALID);
}
END_TEST

Suite *proxyproto_suite(void)
{
	Suite *s = suite_create("proxyproto");
	TCase *tc = tcase_create("v1");
	tcase_add_test(tc, v1_tcp4);
	tcase_add_test(tc, v1_tcp6);
	tcase_add_test(tc, v1_unknown);
	tcase_add_test(tc, v1_length_limit);
	tcase_add_test(tc, v1_bad);
	suite_add_tcase(s, tc);
	tc = tcase_create("v2");
	tcase_add_test(tc, v2_inet);
	tcase_add_test(tc, v2_inet6);
	tcase_add_test(tc, v2_local);
	tcase_add_test(tc, v2_no_addrs);
	tcase_add_test(tc, v2_tlvs);
	tcase_add_test(tc, v2_bad);
	tcase_add_test(tc, empty_and_null);
	suite_add_tcase(s, tc);
	return s;
}
