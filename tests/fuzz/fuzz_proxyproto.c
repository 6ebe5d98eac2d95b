/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the PROXY protocol header parser (net/proxyproto.c), the
 * first bytes a load balancer's connection carries, before any policy.
 * Invariants checked besides memory safety:
 *  - INVALID comes with a reason, the others without; NEED_MORE and
 *    INVALID leave the result zeroed;
 *  - DONE: the length lies in the input and within the version's limit;
 *    addresses, when present, are both AF_INET or both AF_INET6; LOCAL
 *    is v2 and has none; the header alone parses to the same result,
 *    and its proper prefixes need more (a header split across reads
 *    anywhere parses the same);
 *  - INVALID: no prefix one byte shorter was already DONE;
 *  - NEED_MORE: fewer bytes than the longest header of its version;
 *  - a v1 header with addresses, written back as a v1 line, parses to
 *    the same addresses and ports.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                               \
	do {                                                                   \
		if (!(x))                                                      \
			abort();                                               \
	} while (0)

static bool zeroed(const drp_proxyproto_t *p)
{
	static const drp_proxyproto_t zero;
	return memcmp(p, &zero, sizeof(zero)) == 0;
}

static void addr_text(const struct sockaddr_storage *ss, char *ip,
		      unsigned *port)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)ss;
		CHECK(inet_ntop(AF_INET, &s->sin_addr, ip, INET6_ADDRSTRLEN));
		*port = ntohs(s->sin_port);
	} else {
		const struct sockaddr_in6 *s = (const void *)ss;
		CHECK(inet_ntop(AF_INET6, &s->sin6_addr, ip, INET6_ADDRSTRLEN));
		*port = ntohs(s->sin6_port);
	}
}

static void round_trip_v1(const drp_proxyproto_t *p)
{
	char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN], line[160];
	unsigned sp, dp;
	addr_text(&p->src, src, &sp);
	addr_text(&p->dst, dst, &dp);
	int n = snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n",
			 p->src.ss_family == AF_INET ? "TCP4" : "TCP6", src,
			 dst, sp, dp);
	CHECK(n > 0 && (size_t)n < sizeof(line));
	drp_proxyproto_t q;
	CHECK(drp_proxyproto_parse(line, (size_t)n, &q, NULL) ==
	      DRP_PROXYPROTO_DONE);
	CHECK(q.has_addrs && q.len == (size_t)n);
	CHECK(memcmp(&q.src, &p->src, sizeof(q.src)) == 0);
	CHECK(memcmp(&q.dst, &p->dst, sizeof(q.dst)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	drp_proxyproto_t p;
	const char *why = (const char *)1;
	drp_proxyproto_result_t r = drp_proxyproto_parse(data, size, &p, &why);
	drp_proxyproto_t again;
	switch (r) {
	case DRP_PROXYPROTO_INVALID:
		CHECK(why != NULL && strlen(why) > 0);
		CHECK(zeroed(&p));
		if (size > 0)
			CHECK(drp_proxyproto_parse(data, size - 1, &again,
						   NULL) !=
			      DRP_PROXYPROTO_DONE);
		break;
	case DRP_PROXYPROTO_NEED_MORE:
		CHECK(why == NULL);
		CHECK(zeroed(&p));
		CHECK(size < DRP_PROXYPROTO_MAX);
		if (size > 0 && data[0] == 'P')
			CHECK(size < DRP_PROXYPROTO_V1_MAX);
		break;
	case DRP_PROXYPROTO_DONE:
		CHECK(why == NULL);
		CHECK(p.len > 0 && p.len <= size);
		CHECK(p.version == 1 || p.version == 2);
		if (p.version == 1)
			CHECK(p.len >= 15 && p.len <= DRP_PROXYPROTO_V1_MAX);
		else
			CHECK(p.len >= 16 && p.len <= DRP_PROXYPROTO_V2_MAX);
		CHECK(!p.local || (p.version == 2 && !p.has_addrs));
		if (p.has_addrs) {
			CHECK(p.src.ss_family == AF_INET ||
			      p.src.ss_family == AF_INET6);
			CHECK(p.dst.ss_family == p.src.ss_family);
		} else {
			CHECK(p.src.ss_family == 0 && p.dst.ss_family == 0);
		}
		CHECK(drp_proxyproto_parse(data, p.len, &again, NULL) ==
		      DRP_PROXYPROTO_DONE);
		CHECK(memcmp(&again, &p, sizeof(p)) == 0);
		CHECK(drp_proxyproto_parse(data, p.len - 1, &again, NULL) ==
		      DRP_PROXYPROTO_NEED_MORE);
		CHECK(drp_proxyproto_parse(data, p.len / 2, &again, NULL) ==
		      DRP_PROXYPROTO_NEED_MORE);
		if (p.version == 1 && p.has_addrs)
			round_trip_v1(&p);
		break;
	default:
		abort();
	}
	return 0;
}
