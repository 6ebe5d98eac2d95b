/* SPDX-License-Identifier: MIT */
/*
 * The PROXY protocol, versions 1 (text) and 2 (binary), as HAProxy's
 * proxy-protocol.txt defines it: the header a TCP load balancer sends
 * first on each connection to say who the client really was. Behind a
 * balancer every connection comes from the balancer's address; policy
 * (a section's `allow`, per-client rules, the access log) must apply to
 * the address this header carries instead. A connection from an address
 * in `proxy_protocol_from` must start with a valid header (a header
 * cannot be optional: then any client could claim any address).
 *
 * drp_proxyproto_parse() is a pure function over the bytes received so
 * far: it says DONE (with the header's length; what follows is the
 * client's own data, TLS or HTTP), NEED_MORE (a prefix of a valid
 * header: read more, within the caller's header timeout), or INVALID
 * (close the connection and log `why`). It never reads past n bytes, and
 * it gives the same answer for the same prefix however the bytes were
 * split into reads, so the caller can call it after every read.
 *
 * What is accepted:
 *  v1 "PROXY TCP4 SRC DST SPORT DPORT\r\n", "PROXY TCP6 ...", with single
 *     spaces, addresses in inet_pton's form (no leading zeros), ports
 *     0..65535 without leading zeros; "PROXY UNKNOWN[ anything]\r\n"
 *     (addresses unknown). The whole line is at most 107 bytes.
 *  v2 the 12-byte signature, version 2, command LOCAL (the balancer's
 *     own connection, e.g. a health check: no client address, any family
 *     ignored) or PROXY with AF_INET or AF_INET6 over STREAM (addresses),
 *     UNSPEC or AF_UNIX (addresses unknown). TLVs are skipped, but must
 *     be well-formed (type, 16-bit length, value, ending exactly at the
 *     header's end). At most DRP_PROXYPROTO_V2_MAX bytes in all.
 *  Refused: anything else, including DGRAM transports (this listener is
 *  TCP), unknown commands, families and versions, and truncated address
 *  blocks.
 *
 * When a header is DONE without addresses (v1 UNKNOWN, v2 LOCAL, UNSPEC,
 * AF_UNIX), the caller decides what the client's address is (the
 * balancer's own is what the specification says); it must not be an
 * address the header did not give.
 *
 * Thread-safe, no state, no allocation.
 */
#ifndef DRP_NET_PROXYPROTO_H
#define DRP_NET_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The longest v1 line, CRLF included (the specification's 107). */
#define DRP_PROXYPROTO_V1_MAX 107
/* The longest v2 header accepted (16-byte fixed part + addresses +
 * TLVs). Balancers send a few hundred bytes at most (AWS's VPC endpoint
 * id, HAProxy's SSL TLVs). */
#define DRP_PROXYPROTO_V2_MAX 4096
/* Bytes that are enough to tell whether a header is complete, whichever
 * version: a caller that buffers this much never sees NEED_MORE for a
 * header it could hold. */
#define DRP_PROXYPROTO_MAX DRP_PROXYPROTO_V2_MAX

typedef enum drp_proxyproto_result {
	DRP_PROXYPROTO_INVALID = -1,
	DRP_PROXYPROTO_NEED_MORE = 0,
	DRP_PROXYPROTO_DONE = 1,
} drp_proxyproto_result_t;

typedef struct drp_proxyproto {
	unsigned version; /* 1 or 2 */
	/* v2 LOCAL: the balancer speaks for itself (no client behind). */
	bool local;
	/* src (the client) and dst (the address it connected to at the
	 * balancer) are set, both AF_INET or both AF_INET6, ports in
	 * network order as in any sockaddr. False for v1 UNKNOWN, v2
	 * LOCAL, UNSPEC and AF_UNIX. */
	bool has_addrs;
	struct sockaddr_storage src;
	struct sockaddr_storage dst;
	/* The header's length in bytes: the client's data starts there. */
	size_t len;
} drp_proxyproto_t;

/*
 * Parses the first n bytes of a connection. DONE fills *out; NEED_MORE
 * and INVALID leave it zeroed. On INVALID, *why (if why is not NULL) is
 * a static, printable reason for the log ("v1: bad source address");
 * otherwise NULL. buf may be NULL when n is 0.
 */
drp_proxyproto_result_t drp_proxyproto_parse(const void *buf, size_t n,
					     drp_proxyproto_t *out,
					     const char **why);

#endif
