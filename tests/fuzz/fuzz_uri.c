/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: CONNECT authority, Host header, absolute-form, path length,
 * registry route classification and digest validation. Invariants checked
 * besides memory safety:
 *  - a parsed host is lower-case LDH / IPv4 / canonical IPv6 text and
 *    parsing its own "host:port" rendering gives it back unchanged;
 *  - an absolute-form path is safe to put on a request line;
 *  - route spans lie inside the path, and their references validate.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                               \
	do {                                                                   \
		if (!(x))                                                      \
			abort();                                               \
	} while (0)

static void check_host(const char *host, bool is_ip)
{
	size_t n = strnlen(host, DRP_HOST_MAX + 1);
	CHECK(n > 0 && n <= 253);
	bool colon = false;
	for (size_t i = 0; i < n; i++) {
		char c = host[i];
		CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == ':');
		colon |= c == ':';
	}
	CHECK(!colon || is_ip);
	CHECK(host[n - 1] != '.');
}

/* Render host:port and parse it again: must be a fixed point. */
static void round_trip(const char *host, uint16_t port, const bool *is_ip)
{
	char s[300];
	bool v6 = strchr(host, ':') != NULL;
	int n = snprintf(s, sizeof(s), v6 ? "[%s]:%u" : "%s:%u", host, port);
	CHECK(n > 0 && (size_t)n < sizeof(s));
	char h2[DRP_HOST_MAX + 1];
	uint16_t p2 = 0;
	bool ip2 = false;
	CHECK(drp_uri_parse_authority(s, (size_t)n, h2, &p2, &ip2) == 0);
	CHECK(strcmp(h2, host) == 0 && p2 == port);
	CHECK(is_ip == NULL || ip2 == *is_ip);
}

static void check_span(const char *buf, size_t len, const char *p, size_t n)
{
	CHECK(n == 0 || (p >= buf && p + n <= buf + len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	char host[DRP_HOST_MAX + 1];
	uint16_t port = 0;
	bool is_ip = false;

	int r = drp_uri_parse_authority(s, size, host, &port, &is_ip);
	CHECK(r == 0 || r == -EINVAL);
	if (r == 0) {
		CHECK(port != 0);
		check_host(host, is_ip);
		round_trip(host, port, &is_ip);
	}

	r = drp_uri_parse_host_header(s, size, host, &port);
	CHECK(r == 0 || r == -EINVAL);
	if (r == 0) {
		check_host(host, strchr(host, ':') != NULL);
		round_trip(host, port ? port : 1, NULL);
	}

	const char *path = NULL;
	size_t plen = 0;
	r = drp_uri_parse_absolute(s, size, host, &port, &path, &plen);
	CHECK(r == 0 || r == -EINVAL || r == -EPROTONOSUPPORT);
	if (r == 0) {
		CHECK(port != 0 && plen > 0 && path[0] == '/');
		/* into s, or the constant "/" for an empty path */
		CHECK((path > s && path + plen <= s + size) ||
		      (plen == 1 && (path < s || path >= s + size)));
		for (size_t i = 0; i < plen; i++)
			CHECK(path[i] > 0x20 && path[i] < 0x7f &&
			      path[i] != '#');
	}

	size_t pl = drp_uri_path_len(s, size);
	CHECK(pl <= size);
	CHECK(memchr(s, '?', pl) == NULL && memchr(s, '#', pl) == NULL);

	drp_route_t rt;
	r = drp_route_classify(s, size, &rt);
	CHECK(r == 0 || r == -EINVAL);
	if (r < 0)
		CHECK(rt.kind == DRP_ROUTE_V2_OTHER);
	check_span(s, pl, rt.name, rt.name_len);
	check_span(s, pl, rt.ref, rt.ref_len);
	switch (rt.kind) {
	case DRP_ROUTE_MANIFEST_DIGEST:
	case DRP_ROUTE_BLOB:
	case DRP_ROUTE_REFERRERS:
		CHECK(drp_digest_valid(rt.ref, rt.ref_len, NULL));
		/* fall through */
	case DRP_ROUTE_MANIFEST_TAG:
	case DRP_ROUTE_UPLOAD:
	case DRP_ROUTE_TAGS:
		CHECK(rt.name_len > 0 && r == 0);
		CHECK(memchr(rt.name, '.', 1) == NULL); /* starts alnum */
		for (size_t i = 0; i < rt.name_len; i++)
			CHECK(rt.name[i] != '%' && rt.name[i] != '?');
		break;
	default:
		CHECK(rt.name == NULL && rt.ref == NULL);
		break;
	}

	bool sha = false;
	if (drp_digest_valid(s, size, &sha) && sha)
		CHECK(size == 71 && memcmp(s, "sha256:", 7) == 0);
	return 0;
}
