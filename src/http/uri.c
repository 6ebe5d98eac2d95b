/* SPDX-License-Identifier: MIT */
/*
 * Request-target parsing and registry route classification. See uri.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/uri.h"

static inline bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static inline bool is_alpha(unsigned char c)
{
	return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

static inline bool is_lower_alnum(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z');
}

static inline bool is_hex_lower(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f');
}

static inline unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

/* Dotted-quad, four decimal parts 0..255 without leading zeros (which
 * some resolvers read as octal). */
static bool ipv4_valid(const char *s, size_t len)
{
	size_t i = 0;
	for (int part = 0; part < 4; part++) {
		if (part > 0) {
			if (i >= len || s[i] != '.')
				return false;
			i++;
		}
		size_t start = i;
		unsigned v = 0;
		while (i < len && is_digit((unsigned char)s[i]) &&
		       i - start < 3) {
			v = v * 10 + (unsigned)(s[i] - '0');
			i++;
		}
		size_t n = i - start;
		if (n == 0 || v > 255 || (n > 1 && s[start] == '0'))
			return false;
	}
	return i == len;
}

/*
 * Validate a host (no brackets, no port) and store its lower-case form.
 * An IPv6 literal (v6 = true) is stored in canonical text form, so that
 * two spellings of one address compare equal.
 */
static int store_host(const char *s, size_t len, bool v6,
		      char host[DRP_HOST_MAX + 1], bool *is_ip)
{
	if (v6) {
		char tmp[INET6_ADDRSTRLEN];
		struct in6_addr a;
		/* Zone identifiers ("%25eth0") are refused by inet_pton. */
		if (len == 0 || len >= sizeof(tmp))
			return -EINVAL;
		memcpy(tmp, s, len);
		tmp[len] = '\0';
		if (inet_pton(AF_INET6, tmp, &a) != 1)
			return -EINVAL;
		if (inet_ntop(AF_INET6, &a, host, DRP_HOST_MAX + 1) == NULL)
			return -EINVAL;
		*is_ip = true;
		return 0;
	}
	if (len > 0 && s[len - 1] == '.')
		len--; /* absolute name */
	if (len == 0 || len > 253)
		return -EINVAL;
	size_t label = 0;
	bool last_numeric = true;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return -EINVAL;
			label = 0;
			last_numeric = true;
			continue;
		}
		if (c == '-') {
			if (label == 0)
				return -EINVAL;
		} else if (!is_alpha(c) && !is_digit(c)) {
			return -EINVAL;
		}
		if (!is_digit(c))
			last_numeric = false;
		if (++label > 63)
			return -EINVAL;
	}
	if (s[len - 1] == '-')
		return -EINVAL;
	/* A name whose last label is all digits can only be an address:
	 * "1.2.3" or "256.1.1.1" are refused, not looked up. */
	if (last_numeric) {
		if (!ipv4_valid(s, len))
			return -EINVAL;
		*is_ip = true;
	} else {
		*is_ip = false;
	}
	for (size_t i = 0; i < len; i++)
		host[i] = (char)lower((unsigned char)s[i]);
	host[len] = '\0';
	return 0;
}

/* 1..65535, 1 to 5 digits. */
static int parse_port(const char *s, size_t len, uint16_t *port)
{
	if (len == 0 || len > 5)
		return -EINVAL;
	unsigned v = 0;
	for (size_t i = 0; i < len; i++) {
		if (!is_digit((unsigned char)s[i]))
			return -EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

/* host [ ":" port ]; need_port makes the port mandatory. */
static int parse_hostport(const char *s, size_t len, bool need_port,
			  char host[DRP_HOST_MAX + 1], uint16_t *port,
			  bool *is_ip)
{
	const char *h = s;
	size_t hlen;
	const char *rest;
	bool v6 = false;

	if (len > 0 && s[0] == '[') {
		const char *rb = memchr(s, ']', len);
		if (rb == NULL)
			return -EINVAL;
		h = s + 1;
		hlen = (size_t)(rb - h);
		rest = rb + 1;
		v6 = true;
	} else {
		const char *colon = memchr(s, ':', len);
		hlen = colon ? (size_t)(colon - s) : len;
		rest = s + hlen;
	}
	size_t rlen = len - (size_t)(rest - s);
	*port = 0;
	if (rlen > 0) {
		if (rest[0] != ':')
			return -EINVAL;
		if (parse_port(rest + 1, rlen - 1, port) < 0)
			return -EINVAL;
	} else if (need_port) {
		return -EINVAL;
	}
	return store_host(h, hlen, v6, host, is_ip);
}

int drp_uri_parse_authority(const char *s, size_t len,
			    char host[DRP_HOST_MAX + 1], uint16_t *port,
			    bool *is_ip)
{
	return parse_hostport(s, len, true, host, port, is_ip);
}

int drp_uri_parse_host_header(const char *s, size_t len,
			      char host[DRP_HOST_MAX + 1], uint16_t *port)
{
	bool is_ip;
	return parse_hostport(s, len, false, host, port, &is_ip);
}

int drp_uri_parse_absolute(const char *s, size_t len,
			   char host[DRP_HOST_MAX + 1], uint16_t *port,
			   const char **path, size_t *path_len)
{
	/* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
	size_t i = 0;
	while (i < len &&
	       (is_alpha((unsigned char)s[i]) ||
		(i > 0 && (is_digit((unsigned char)s[i]) || s[i] == '+' ||
			   s[i] == '-' || s[i] == '.'))))
		i++;
	if (i == 0 || i + 3 > len || memcmp(s + i, "://", 3) != 0)
		return -EINVAL;
	if (i != 4 || strncasecmp(s, "http", 4) != 0)
		return -EPROTONOSUPPORT;
	const char *auth = s + 7, *end = s + len;
	size_t alen = 0;
	while (alen < len - 7 && auth[alen] != '/' && auth[alen] != '?' &&
	       auth[alen] != '#')
		alen++;
	const char *p = auth + alen;
	size_t plen = len - 7 - alen;
	if (memchr(auth, '@', alen) != NULL)
		return -EINVAL; /* userinfo */
	bool is_ip;
	int r = parse_hostport(auth, alen, false, host, port, &is_ip);
	if (r < 0)
		return r;
	if (*port == 0)
		*port = 80;
	/* The origin-form must be safe to put on a request line. */
	for (size_t k = 0; k < plen; k++)
		if ((unsigned char)p[k] <= 0x20 || (unsigned char)p[k] >= 0x7f)
			return -EINVAL;
	const char *frag = memchr(p, '#', plen);
	if (frag)
		end = frag; /* fragments are never sent */
	if (p == end) {
		*path = "/";
		*path_len = 1;
	} else if (*p == '?') {
		/* "http://h?q" would need a "/" inserted before the query,
		 * which cannot point into s. */
		return -EINVAL;
	} else {
		*path = p;
		*path_len = (size_t)(end - p);
	}
	return 0;
}

static size_t host_cmp_len(const char *h)
{
	size_t n = strlen(h);
	return n > 1 && h[n - 1] == '.' ? n - 1 : n;
}

bool drp_uri_same_origin(bool tls_a, const char *host_a, uint16_t port_a,
			 bool tls_b, const char *host_b, uint16_t port_b)
{
	if (tls_a != tls_b || host_a == NULL || host_b == NULL)
		return false;
	uint16_t def = tls_a ? 443 : 80;
	if ((port_a ? port_a : def) != (port_b ? port_b : def))
		return false;
	size_t la = host_cmp_len(host_a), lb = host_cmp_len(host_b);
	return la == lb && la > 0 && strncasecmp(host_a, host_b, la) == 0;
}

int drp_uri_origin(char *buf, size_t len, bool tls, const char *host,
		   uint16_t port)
{
	bool v6 = strchr(host, ':') != NULL;
	size_t hl = host_cmp_len(host);
	int n = snprintf(buf, len, "%s://%s%.*s%s:%u", tls ? "https" : "http",
			 v6 ? "[" : "", (int)hl, host, v6 ? "]" : "",
			 (unsigned)(port  ? port
				    : tls ? 443
					  : 80));
	if (n < 0 || (size_t)n >= len) {
		if (len > 0)
			buf[0] = '\0';
		return -ENOSPC;
	}
	for (char *p = buf; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return n;
}

size_t drp_uri_path_len(const char *path, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (path[i] == '?' || path[i] == '#')
			return i;
	return len;
}

/* ---- registry routes ---- */

/* component = [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )* */
static bool name_component_valid(const char *s, size_t len)
{
	size_t i = 0;
	for (;;) {
		size_t start = i;
		while (i < len && is_lower_alnum((unsigned char)s[i]))
			i++;
		if (i == start)
			return false;
		if (i == len)
			return true;
		if (s[i] == '.') {
			i++;
		} else if (s[i] == '_') {
			i++;
			if (i < len && s[i] == '_')
				i++;
		} else if (s[i] == '-') {
			while (i < len && s[i] == '-')
				i++;
		} else {
			return false;
		}
	}
}

static bool name_valid(const char *s, size_t len)
{
	if (len == 0)
		return false;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '/') {
			if (!name_component_valid(s + start, i - start))
				return false;
			start = i + 1;
		}
	}
	return true;
}

/* [A-Za-z0-9_][A-Za-z0-9._-]{0,127} */
static bool tag_valid(const char *s, size_t len)
{
	if (len == 0 || len > 128)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		bool ok = is_alpha(c) || is_digit(c) || c == '_' ||
			  (i > 0 && (c == '.' || c == '-'));
		if (!ok)
			return false;
	}
	return true;
}

bool drp_digest_valid(const char *s, size_t len, bool *is_sha256)
{
	const char *colon = memchr(s, ':', len);
	if (is_sha256)
		*is_sha256 = false;
	if (colon == NULL)
		return false;
	size_t alen = (size_t)(colon - s);
	const char *enc = colon + 1;
	size_t elen = len - alen - 1;
	/* algorithm = component ( [+._-] component )*, component [a-z0-9]+ */
	if (alen == 0)
		return false;
	for (size_t i = 0; i < alen; i++) {
		unsigned char c = (unsigned char)s[i];
		if (is_lower_alnum(c))
			continue;
		if ((c == '+' || c == '.' || c == '_' || c == '-') && i > 0 &&
		    i + 1 < alen && is_lower_alnum((unsigned char)s[i - 1]))
			continue;
		return false;
	}
	size_t want = 0;
	if (alen == 6 && memcmp(s, "sha256", 6) == 0)
		want = 64;
	else if (alen == 6 && memcmp(s, "sha512", 6) == 0)
		want = 128;
	if (want) {
		if (elen != want)
			return false;
		for (size_t i = 0; i < elen; i++)
			if (!is_hex_lower((unsigned char)enc[i]))
				return false;
		if (is_sha256)
			*is_sha256 = want == 64;
		return true;
	}
	/* encoded = [a-zA-Z0-9=_-]+ */
	if (elen == 0)
		return false;
	for (size_t i = 0; i < elen; i++) {
		unsigned char c = (unsigned char)enc[i];
		if (!is_alpha(c) && !is_digit(c) && c != '=' && c != '_' &&
		    c != '-')
			return false;
	}
	return true;
}

static bool seg_is(const char *s, size_t len, const char *lit)
{
	size_t n = strlen(lit);
	return len == n && memcmp(s, lit, n) == 0;
}

/* Finish a <name>/<word>/<ref> route: check the name and the reference. */
static int route_set(drp_route_t *r, enum drp_route_kind kind, const char *name,
		     size_t name_len, const char *ref, size_t ref_len)
{
	bool ok = name_valid(name, name_len);
	if (ok) {
		switch (kind) {
		case DRP_ROUTE_MANIFEST_TAG:
			ok = tag_valid(ref, ref_len);
			break;
		case DRP_ROUTE_MANIFEST_DIGEST:
		case DRP_ROUTE_BLOB:
		case DRP_ROUTE_REFERRERS:
			ok = drp_digest_valid(ref, ref_len, NULL);
			break;
		default:
			break;
		}
	}
	if (!ok) {
		r->kind = DRP_ROUTE_V2_OTHER;
		return -EINVAL;
	}
	r->kind = kind;
	r->name = name;
	r->name_len = name_len;
	r->ref = ref_len ? ref : NULL;
	r->ref_len = ref_len;
	return 0;
}

int drp_route_classify(const char *path, size_t len, drp_route_t *r)
{
	memset(r, 0, sizeof(*r));
	r->kind = DRP_ROUTE_OTHER;
	len = drp_uri_path_len(path, len);
	if (len < 4 || memcmp(path, "/v2/", 4) != 0)
		return 0;
	if (len == 4) {
		r->kind = DRP_ROUTE_PING;
		return 0;
	}
	const char *rest = path + 4;
	size_t rlen = len - 4;
	if (seg_is(rest, rlen, "_catalog")) {
		r->kind = DRP_ROUTE_CATALOG;
		return 0;
	}
	r->kind = DRP_ROUTE_V2_OTHER;

	/*
	 * Names may contain any word of the API ("blobs/manifests" is a
	 * valid repository), so the route is decided by the last components
	 * only: <name>/<word>/<last>, and for uploads
	 * <name>/blobs/uploads/<id>.
	 */
	const char *last = memrchr(rest, '/', rlen);
	if (last == NULL)
		return 0;
	const char *ref = last + 1;
	size_t ref_len = rlen - (size_t)(ref - rest);
	size_t before = (size_t)(last - rest); /* <name>/<word> */
	const char *ws = memrchr(rest, '/', before);
	const char *word = ws ? ws + 1 : rest;
	size_t word_len = before - (size_t)(word - rest);
	size_t name_len = ws ? (size_t)(ws - rest) : 0;
	bool has_name = ws != NULL;

	if (seg_is(word, word_len, "tags") && seg_is(ref, ref_len, "list"))
		return has_name ? route_set(r, DRP_ROUTE_TAGS, rest, name_len,
					    ref, 0)
				: -EINVAL;
	if (seg_is(word, word_len, "manifests")) {
		if (!has_name)
			return -EINVAL;
		enum drp_route_kind k = memchr(ref, ':', ref_len)
						? DRP_ROUTE_MANIFEST_DIGEST
						: DRP_ROUTE_MANIFEST_TAG;
		return route_set(r, k, rest, name_len, ref, ref_len);
	}
	if (seg_is(word, word_len, "blobs")) {
		if (!has_name)
			return -EINVAL;
		/* POST /v2/<name>/blobs/uploads (no trailing slash). */
		if (seg_is(ref, ref_len, "uploads"))
			return route_set(r, DRP_ROUTE_UPLOAD, rest, name_len,
					 ref + ref_len, 0);
		return route_set(r, DRP_ROUTE_BLOB, rest, name_len, ref,
				 ref_len);
	}
	if (seg_is(word, word_len, "uploads") && has_name) {
		/* <name>/blobs/uploads/<id>: the word before must be blobs */
		const char *bs = memrchr(rest, '/', name_len);
		const char *bw = bs ? bs + 1 : rest;
		size_t bw_len = name_len - (size_t)(bw - rest);
		if (seg_is(bw, bw_len, "blobs")) {
			if (bs == NULL)
				return -EINVAL;
			return route_set(r, DRP_ROUTE_UPLOAD, rest,
					 (size_t)(bs - rest), ref, ref_len);
		}
	}
	if (seg_is(word, word_len, "referrers")) {
		if (!has_name)
			return -EINVAL;
		return route_set(r, DRP_ROUTE_REFERRERS, rest, name_len, ref,
				 ref_len);
	}
	return 0;
}
