/* SPDX-License-Identifier: MIT */
/*
 * Address helpers: CIDR lists (client policy), "host:port" parsing for
 * listen addresses, and the classification of addresses a tunnel must
 * never reach (loopback, link-local, unspecified, multicast, our own).
 * Pure functions, thread-safe.
 */
#ifndef DRP_UTIL_ADDR_H
#define DRP_UTIL_ADDR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct drp_cidr {
	int family;	  /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* network address, host bits cleared */
	unsigned prefix;  /* 0..32 or 0..128 */
} drp_cidr_t;

/*
 * Parse "10.0.0.0/8", "::1/128", or a bare address (full-length prefix).
 * Returns 0 or -EINVAL. Host bits set in the address are an error
 * ("10.0.0.1/8") so that typos do not silently widen a policy.
 */
int drp_cidr_parse(const char *s, drp_cidr_t *out);
/*
 * Like drp_cidr_parse() but host bits are cleared instead of refused:
 * returns 0 if none were set, 1 if some were (out then holds the network
 * the operator probably meant, for an error message), -EINVAL on bad
 * syntax.
 */
int drp_cidr_parse_masked(const char *s, drp_cidr_t *out);
/* Format "10.0.0.0/8" / "fc00::/7" (buf >= 64 bytes); returns buf. */
char *drp_cidr_str(const drp_cidr_t *c, char *buf, unsigned size);
/* True if sa (AF_INET, AF_INET6; v4-mapped v6 matches v4 entries) is in c. */
bool drp_cidr_match(const drp_cidr_t *c, const struct sockaddr *sa);
bool drp_cidr_list_match(const drp_cidr_t *list, unsigned n,
			 const struct sockaddr *sa);

/*
 * Parse "addr:port", "[v6]:port" or "*:port" for listening; fills
 * *ss and *len. Returns 0 or -EINVAL. Port must be 1..65535.
 */
int drp_sockaddr_parse(const char *s, struct sockaddr_storage *ss,
		       unsigned *len);
/* Format "1.2.3.4:80" / "[::1]:80" (buf >= 64 bytes); returns buf. */
char *drp_sockaddr_str(const struct sockaddr *sa, char *buf, unsigned size);
/* Format only the address, no port (buf >= 48). */
char *drp_sockaddr_ip_str(const struct sockaddr *sa, char *buf, unsigned size);

/* Addresses a tunnel or forwarded request must not be sent to unless the
 * operator named them in [resolve]: loopback, link-local, unspecified,
 * multicast, broadcast, v4-mapped forms of those. */
bool drp_addr_is_forbidden(const struct sockaddr *sa);
/* True if sa equals an address of a local interface (getifaddrs; cached
 * list refreshed at most every 60 s; thread-safe). */
bool drp_addr_is_local(const struct sockaddr *sa);

#endif
