/* SPDX-License-Identifier: MIT */
#include "util/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/log.h"
#include "util/mem.h"

/* Strict decimal: digits only, no sign, no blanks, at most max. */
static int parse_dec(const char *s, size_t n, unsigned max, unsigned *out)
{
	unsigned long v = 0;

	if (n == 0 || n > 10)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > max)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

/*
 * The address of sa as bytes. A v4-mapped IPv6 address is returned as
 * AF_INET so that one code path serves both ways a v4 client can appear
 * (on a dual-stack socket every v4 peer is v4-mapped). Returns the family
 * or 0 for anything else.
 */
static int addr_bytes(const struct sockaddr *sa, uint8_t out[16])
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0,    0,
					   0, 0, 0, 0, 0xff, 0xff};

	if (sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;
		memcpy(out, &sin->sin_addr, 4);
		return AF_INET;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;
		const uint8_t *a = sin6->sin6_addr.s6_addr;
		if (memcmp(a, mapped, 12) == 0) {
			memcpy(out, a + 12, 4);
			return AF_INET;
		}
		memcpy(out, a, 16);
		return AF_INET6;
	}
	return 0;
}

static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned full = prefix / 8, rest = prefix % 8;

	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return ((a[full] ^ b[full]) & mask) == 0;
}

int drp_cidr_parse_masked(const char *s, drp_cidr_t *out)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	drp_cidr_t c = {0};
	unsigned max, len;

	if (alen == 0 || alen >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, alen);
	host[alen] = '\0';
	if (inet_pton(AF_INET, host, c.addr) == 1) {
		c.family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, c.addr) == 1) {
		c.family = AF_INET6;
		max = 128;
	} else {
		return -EINVAL;
	}
	c.prefix = max;
	if (slash &&
	    parse_dec(slash + 1, strlen(slash + 1), max, &c.prefix) < 0)
		return -EINVAL;

	int host_bits = 0;
	len = max / 8;
	for (unsigned i = 0; i < len; i++) {
		unsigned keep = c.prefix > 8 * i ? c.prefix - 8 * i : 0;
		uint8_t mask = keep >= 8   ? 0xff
			       : keep == 0 ? 0
					   : (uint8_t)(0xff << (8 - keep));
		if (c.addr[i] & (uint8_t)~mask)
			host_bits = 1;
		c.addr[i] &= mask;
	}
	*out = c;
	return host_bits;
}

int drp_cidr_parse(const char *s, drp_cidr_t *out)
{
	drp_cidr_t c;

	/* A set host bit is refused: "10.0.0.1/8" is far more likely a typo
	 * for a /32 than a wish for the whole /8. */
	if (drp_cidr_parse_masked(s, &c) != 0)
		return -EINVAL;
	*out = c;
	return 0;
}

char *drp_cidr_str(const drp_cidr_t *c, char *buf, unsigned size)
{
	char ip[INET6_ADDRSTRLEN];

	if (size == 0)
		return buf;
	if ((c->family != AF_INET && c->family != AF_INET6) ||
	    inet_ntop(c->family, c->addr, ip, sizeof(ip)) == NULL) {
		snprintf(buf, size, "?");
		return buf;
	}
	snprintf(buf, size, "%s/%u", ip, c->prefix);
	return buf;
}

bool drp_cidr_match(const drp_cidr_t *c, const struct sockaddr *sa)
{
	uint8_t a[16];
	int fam = addr_bytes(sa, a);

	if (fam == 0)
		return false;
	if (c->family == fam)
		return prefix_equal(c->addr, a, c->prefix);
	if (c->family == AF_INET6 && fam == AF_INET && c->prefix >= 96) {
		/* A v6 entry written in v4-mapped form ("::ffff:10.0.0.0/104")
		 * must match the v4 peer it describes; a wider v6 entry such
		 * as ::/0 means "IPv6 clients" and does not. */
		uint8_t m[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		memcpy(m + 12, a, 4);
		return prefix_equal(c->addr, m, c->prefix);
	}
	return false;
}

bool drp_cidr_list_match(const drp_cidr_t *list, unsigned n,
			 const struct sockaddr *sa)
{
	for (unsigned i = 0; i < n; i++)
		if (drp_cidr_match(&list[i], sa))
			return true;
	return false;
}

int drp_sockaddr_parse(const char *s, struct sockaddr_storage *ss,
		       unsigned *len)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *hs, *ps;
	size_t hn;
	unsigned port;
	bool v6;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':')
			return -EINVAL;
		hs = s + 1;
		hn = (size_t)(close - hs);
		ps = close + 2;
		v6 = true;
	} else {
		const char *colon = strrchr(s, ':');
		if (colon == NULL)
			return -EINVAL;
		hs = s;
		hn = (size_t)(colon - s);
		ps = colon + 1;
		v6 = false;
	}
	if (hn == 0 || hn >= sizeof(host))
		return -EINVAL;
	memcpy(host, hs, hn);
	host[hn] = '\0';
	if (parse_dec(ps, strlen(ps), 65535, &port) < 0 || port == 0)
		return -EINVAL;

	memset(ss, 0, sizeof(*ss));
	if (v6) {
		struct sockaddr_in6 *sin6 = (void *)ss;
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -EINVAL;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return 0;
	}
	struct sockaddr_in *sin = (void *)ss;
	if (strcmp(host, "*") == 0)
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		return -EINVAL;
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	*len = sizeof(*sin);
	return 0;
}

char *drp_sockaddr_ip_str(const struct sockaddr *sa, char *buf, unsigned size)
{
	const void *a = NULL;

	if (size == 0)
		return buf;
	if (sa && sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa && sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	if (a == NULL || inet_ntop(sa->sa_family, a, buf, size) == NULL)
		snprintf(buf, size, "?");
	return buf;
}

char *drp_sockaddr_str(const struct sockaddr *sa, char *buf, unsigned size)
{
	char ip[INET6_ADDRSTRLEN];
	unsigned port;

	if (size == 0)
		return buf;
	if (sa && sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;
		port = ntohs(sin->sin_port);
		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		snprintf(buf, size, "%s:%u", ip, port);
	} else if (sa && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;
		port = ntohs(sin6->sin6_port);
		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, size, "[%s]:%u", ip, port);
	} else {
		snprintf(buf, size, "?");
	}
	return buf;
}

static bool v4_forbidden(const uint8_t *a)
{
	return a[0] == 0 ||		       /* 0.0.0.0/8 "this network" */
	       a[0] == 127 ||		       /* loopback */
	       (a[0] == 169 && a[1] == 254) || /* link-local */
	       (a[0] & 0xf0) == 224 ||	       /* multicast 224/4 */
	       (a[0] == 255 && a[1] == 255 && a[2] == 255 &&
		a[3] == 255); /* limited broadcast */
}

static bool v6_forbidden(const uint8_t *a)
{
	static const uint8_t zero[15];

	if (memcmp(a, zero, 15) == 0 && (a[15] == 0 || a[15] == 1))
		return true; /* :: and ::1 */
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
		return true; /* fe80::/10 */
	return a[0] == 0xff; /* multicast */
}

bool drp_addr_is_forbidden(const struct sockaddr *sa)
{
	uint8_t a[16];

	switch (addr_bytes(sa, a)) {
	case AF_INET:
		return v4_forbidden(a);
	case AF_INET6:
		return v6_forbidden(a);
	default:
		return true; /* not an IP address: nothing to connect to */
	}
}

/*
 * Cache of the local interface addresses. Interfaces change rarely, and a
 * stale answer for up to a minute only matters while an address is being
 * added, so one getifaddrs() per minute serves every worker.
 */
struct local_addr {
	int family;
	uint8_t a[16];
};

static pthread_mutex_t local_lock = PTHREAD_MUTEX_INITIALIZER;
static struct local_addr *local_list;
static unsigned local_n;
static time_t local_stamp;
static bool local_loaded;

#define LOCAL_REFRESH_S 60

static void local_refresh(void)
{
	struct ifaddrs *ifs, *i;
	unsigned n = 0;

	if (getifaddrs(&ifs) < 0) {
		/* Keep the previous list: better than believing that no
		 * address is ours. */
		drp_log_errno(DRP_LOG_WARNING, DRP_LOG_NET, "getifaddrs");
		return;
	}
	for (i = ifs; i; i = i->ifa_next)
		if (i->ifa_addr && (i->ifa_addr->sa_family == AF_INET ||
				    i->ifa_addr->sa_family == AF_INET6))
			n++;
	struct local_addr *list = drp_calloc(n, sizeof(*list));
	n = 0;
	for (i = ifs; i; i = i->ifa_next) {
		int fam = addr_bytes(i->ifa_addr, list[n].a);
		if (fam) {
			list[n].family = fam;
			n++;
		}
	}
	freeifaddrs(ifs);
	free(local_list);
	local_list = list;
	local_n = n;
}

bool drp_addr_is_local(const struct sockaddr *sa)
{
	uint8_t a[16];
	int fam = addr_bytes(sa, a);
	struct timespec now;
	bool found = false;

	if (fam == 0)
		return false;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&local_lock);
	if (!local_loaded || now.tv_sec - local_stamp >= LOCAL_REFRESH_S) {
		local_refresh();
		local_loaded = true;
		local_stamp = now.tv_sec;
	}
	size_t alen = fam == AF_INET ? 4 : 16;
	for (unsigned i = 0; i < local_n && !found; i++)
		found = local_list[i].family == fam &&
			memcmp(local_list[i].a, a, alen) == 0;
	pthread_mutex_unlock(&local_lock);
	return found;
}
