/* SPDX-License-Identifier: MIT */
#include "net/proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
				   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
static const char v1_sig[] = "PROXY ";

#define V2_FIXED 16

static drp_proxyproto_result_t invalid(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return DRP_PROXYPROTO_INVALID;
}

/* One field of the v1 line: [*p, end) up to the next space or the end. */
static bool next_field(const char **p, const char *end, const char **f,
		       size_t *len)
{
	const char *s = *p, *e = s;
	while (e < end && *e != ' ')
		e++;
	if (e == s)
		return false;
	*f = s;
	*len = (size_t)(e - s);
	*p = e < end ? e + 1 : e;
	/* A space right before the end would leave an empty last field. */
	return !(e < end && e + 1 == end);
}

static bool parse_port(const char *f, size_t len, uint16_t *port)
{
	if (len == 0 || len > 5 || (len > 1 && f[0] == '0'))
		return false;
	unsigned v = 0;
	for (size_t i = 0; i < len; i++) {
		if (f[i] < '0' || f[i] > '9')
			return false;
		v = v * 10 + (unsigned)(f[i] - '0');
	}
	if (v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

static bool parse_addr(int af, const char *f, size_t len,
		       struct sockaddr_storage *ss)
{
	char tmp[INET6_ADDRSTRLEN];
	if (len >= sizeof(tmp))
		return false;
	memcpy(tmp, f, len);
	tmp[len] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (af == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		return inet_pton(AF_INET, tmp, &sin->sin_addr) == 1;
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	sin6->sin6_family = AF_INET6;
	return inet_pton(AF_INET6, tmp, &sin6->sin6_addr) == 1;
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

static drp_proxyproto_result_t parse_v1(const char *b, size_t n,
					drp_proxyproto_t *out, const char **why)
{
	size_t lim = n < DRP_PROXYPROTO_V1_MAX ? n : DRP_PROXYPROTO_V1_MAX;
	size_t cr = 0;
	/* The line is printable text up to CRLF: anything else can be
	 * refused at once, before the whole line is in. */
	while (cr < lim && b[cr] != '\r') {
		unsigned char c = (unsigned char)b[cr];
		if (c < 0x20 || c > 0x7e)
			return invalid(why, "v1: control character in line");
		cr++;
	}
	size_t sig = n < sizeof(v1_sig) - 1 ? n : sizeof(v1_sig) - 1;
	if (memcmp(b, v1_sig, sig) != 0)
		return invalid(why, "v1: not a PROXY line");
	if (cr == lim) {
		if (lim == DRP_PROXYPROTO_V1_MAX)
			return invalid(why, "v1: line longer than 107 bytes");
		return DRP_PROXYPROTO_NEED_MORE;
	}
	if (cr + 1 >= DRP_PROXYPROTO_V1_MAX)
		return invalid(why, "v1: line longer than 107 bytes");
	if (cr + 1 == n)
		return DRP_PROXYPROTO_NEED_MORE;
	if (b[cr + 1] != '\n')
		return invalid(why, "v1: CR without LF");
	if (cr < sizeof(v1_sig) - 1)
		return invalid(why, "v1: not a PROXY line");

	const char *p = b + sizeof(v1_sig) - 1, *end = b + cr;
	const char *f;
	size_t flen;
	/* "UNKNOWN" may be followed by anything (a sender may put the
	 * addresses it could not classify there): ignored. */
	if ((size_t)(end - p) >= 7 && memcmp(p, "UNKNOWN", 7) == 0 &&
	    (end - p == 7 || p[7] == ' ')) {
		out->version = 1;
		out->len = cr + 2;
		return DRP_PROXYPROTO_DONE;
	}
	if (!next_field(&p, end, &f, &flen))
		return invalid(why, "v1: no protocol");
	int af;
	if (flen == 4 && memcmp(f, "TCP4", 4) == 0)
		af = AF_INET;
	else if (flen == 4 && memcmp(f, "TCP6", 4) == 0)
		af = AF_INET6;
	else
		return invalid(why, "v1: protocol not TCP4, TCP6 or UNKNOWN");
	if (!next_field(&p, end, &f, &flen) ||
	    !parse_addr(af, f, flen, &out->src))
		return invalid(why, "v1: bad source address");
	if (!next_field(&p, end, &f, &flen) ||
	    !parse_addr(af, f, flen, &out->dst))
		return invalid(why, "v1: bad destination address");
	uint16_t sport, dport;
	if (!next_field(&p, end, &f, &flen) || !parse_port(f, flen, &sport))
		return invalid(why, "v1: bad source port");
	if (!next_field(&p, end, &f, &flen) || !parse_port(f, flen, &dport))
		return invalid(why, "v1: bad destination port");
	if (p != end)
		return invalid(why, "v1: text after the destination port");
	set_port(&out->src, sport);
	set_port(&out->dst, dport);
	out->version = 1;
	out->has_addrs = true;
	out->len = cr + 2;
	return DRP_PROXYPROTO_DONE;
}

/* TLVs: type (1 byte), length (2, network order), value; they must tile
 * [p, end) exactly. Their content is not used. */
static bool tlvs_valid(const uint8_t *p, const uint8_t *end)
{
	while (p < end) {
		if (end - p < 3)
			return false;
		size_t l = (size_t)p[1] << 8 | p[2];
		if ((size_t)(end - p - 3) < l)
			return false;
		p += 3 + l;
	}
	return true;
}

static drp_proxyproto_result_t parse_v2(const uint8_t *b, size_t n,
					drp_proxyproto_t *out, const char **why)
{
	size_t sig = n < sizeof(v2_sig) ? n : sizeof(v2_sig);
	if (memcmp(b, v2_sig, sig) != 0)
		return invalid(why, "v2: bad signature");
	if (n > 12 && (b[12] >> 4) != 2)
		return invalid(why, "v2: version not 2");
	if (n > 12 && (b[12] & 15) > 1)
		return invalid(why, "v2: command not LOCAL or PROXY");
	if (n < V2_FIXED)
		return DRP_PROXYPROTO_NEED_MORE;
	size_t len = V2_FIXED + ((size_t)b[14] << 8 | b[15]);
	if (len > DRP_PROXYPROTO_V2_MAX)
		return invalid(why, "v2: header longer than accepted");
	bool local = (b[12] & 15) == 0;
	uint8_t fam = b[13];
	size_t addr_len = 0;
	if (!local) {
		switch (fam) {
		case 0x00: /* UNSPEC */
			break;
		case 0x11: /* AF_INET, STREAM */
			addr_len = 12;
			break;
		case 0x21: /* AF_INET6, STREAM */
			addr_len = 36;
			break;
		case 0x31: /* AF_UNIX, STREAM */
			addr_len = 216;
			break;
		case 0x12:
		case 0x22:
		case 0x32:
			return invalid(why, "v2: datagram transport on TCP");
		default:
			return invalid(why, "v2: unknown address family");
		}
		if (len - V2_FIXED < addr_len)
			return invalid(why, "v2: address block truncated");
	}
	if (n < len)
		return DRP_PROXYPROTO_NEED_MORE;
	/* LOCAL and UNSPEC blocks are to be ignored whatever they hold. */
	if (!local && fam != 0x00 &&
	    !tlvs_valid(b + V2_FIXED + addr_len, b + len))
		return invalid(why, "v2: malformed TLV");

	const uint8_t *a = b + V2_FIXED;
	if (!local && fam == 0x11) {
		struct sockaddr_in *s = (struct sockaddr_in *)&out->src;
		struct sockaddr_in *d = (struct sockaddr_in *)&out->dst;
		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, a, 4);
		memcpy(&d->sin_addr, a + 4, 4);
		memcpy(&s->sin_port, a + 8, 2);
		memcpy(&d->sin_port, a + 10, 2);
		out->has_addrs = true;
	} else if (!local && fam == 0x21) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src;
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)&out->dst;
		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, a, 16);
		memcpy(&d->sin6_addr, a + 16, 16);
		memcpy(&s->sin6_port, a + 32, 2);
		memcpy(&d->sin6_port, a + 34, 2);
		out->has_addrs = true;
	}
	out->version = 2;
	out->local = local;
	out->len = len;
	return DRP_PROXYPROTO_DONE;
}

drp_proxyproto_result_t drp_proxyproto_parse(const void *buf, size_t n,
					     drp_proxyproto_t *out,
					     const char **why)
{
	memset(out, 0, sizeof(*out));
	if (why)
		*why = NULL;
	if (n == 0)
		return DRP_PROXYPROTO_NEED_MORE;
	const uint8_t *b = buf;
	drp_proxyproto_result_t r;
	if (b[0] == v2_sig[0])
		r = parse_v2(b, n, out, why);
	else if (b[0] == (uint8_t)v1_sig[0])
		r = parse_v1(buf, n, out, why);
	else
		r = invalid(why, "no PROXY protocol header");
	if (r != DRP_PROXYPROTO_DONE)
		memset(out, 0, sizeof(*out));
	return r;
}
