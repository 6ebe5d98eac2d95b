/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: HTTP/1.1 request and response heads, lookups, framing and
 * body decoding. Besides memory safety it checks invariants the proxy
 * relies on, and aborts when one breaks:
 *  - a parsed head is a prefix of the input, every proper prefix of it is
 *    INCOMPLETE, and re-parsing exactly the head gives the same result;
 *  - header names are tokens and values hold no CR, LF or NUL;
 *  - the body decoder yields the same payload, consumed length and error
 *    whether fed all at once or in pieces of any size (here: sizes taken
 *    from the input itself), and never consumes bytes after the message.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/parse.h"
#include "http/range.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                               \
	do {                                                                   \
		if (!(x))                                                      \
			abort();                                               \
	} while (0)

static bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void check_span(const char *buf, size_t len, const char *p, size_t n)
{
	CHECK(n == 0 || (p >= buf && p + n <= buf + len));
}

typedef ssize_t (*parse_fn)(const char *, size_t, size_t, drp_http_msg_t *);

/* Any header value as a Range field: one range is well formed, and what
 * it resolves to lies inside the body. */
static void check_range(const char *v, size_t len)
{
	drp_http_range_t r;
	if (!drp_http_range_parse(v, len, &r))
		return;
	CHECK(r.suffix ? r.first == 0 : r.first <= r.last);
	static const uint64_t sizes[] = {0, 1, 10, 1000, UINT64_MAX};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint64_t first, last;
		if (drp_http_range_resolve(&r, sizes[i], &first, &last) == 0)
			CHECK(first <= last && last < sizes[i]);
	}
}

static void check_head(const char *buf, size_t len, const drp_http_msg_t *m,
		       ssize_t r, bool request)
{
	CHECK((size_t)r <= len && (size_t)r == m->head_len && r >= 4);
	CHECK(memcmp(buf + r - 4, "\r\n\r\n", 4) == 0);
	CHECK(m->num_headers <= DRP_HTTP_MAX_HEADERS);
	CHECK(m->minor_version == 0 || m->minor_version == 1);
	if (request) {
		CHECK(m->method_len > 0 && m->target_len > 0);
		check_span(buf, len, m->method, m->method_len);
		check_span(buf, len, m->target, m->target_len);
		for (size_t i = 0; i < m->target_len; i++)
			CHECK(m->target[i] > 0x20 && m->target[i] < 0x7f);
	} else {
		CHECK(m->status >= 100 && m->status <= 999);
		check_span(buf, len, m->reason, m->reason_len);
	}
	for (size_t i = 0; i < m->num_headers; i++) {
		const drp_http_header_t *h = &m->headers[i];
		CHECK(h->name_len > 0);
		check_span(buf, len, h->name, h->name_len);
		check_span(buf, len, h->value, h->value_len);
		for (size_t k = 0; k < h->name_len; k++)
			CHECK(is_tchar((unsigned char)h->name[k]));
		for (size_t k = 0; k < h->value_len; k++)
			CHECK(h->value[k] != '\r' && h->value[k] != '\n' &&
			      h->value[k] != '\0');
		if (h->value_len) {
			CHECK(h->value[0] != ' ' && h->value[0] != '\t');
			char last = h->value[h->value_len - 1];
			CHECK(last != ' ' && last != '\t');
		}
		/* lookups agree with the array */
		char name[64];
		if (h->name_len < sizeof(name)) {
			memcpy(name, h->name, h->name_len);
			name[h->name_len] = '\0';
			const drp_http_header_t *f = drp_http_find(m, name);
			CHECK(f != NULL && f <= h);
			(void)drp_http_has_token(m, name, "close");
		}
		(void)drp_http_is_hop_by_hop(m, h);
		check_range(h->value, h->value_len);
	}
}

/* Decode `len` bytes at once, or in pieces whose sizes come from `sizes`.
 * Returns consumed bytes or the error; payload copied to out. */
static ssize_t decode(enum drp_http_body_mode mode, uint64_t length,
		      const char *in, size_t len, const uint8_t *sizes,
		      size_t nsizes, char *out, size_t *out_len, bool *done)
{
	drp_http_body_t b;
	drp_http_body_init(&b, mode, length);
	size_t off = 0, si = 0;
	*out_len = 0;
	while (off < len && !b.done) {
		size_t piece = len - off;
		if (nsizes) {
			size_t want = (size_t)sizes[si++ % nsizes] % 17 + 1;
			if (want < piece)
				piece = want;
		}
		const char *d = NULL;
		size_t dl = 0;
		ssize_t c = drp_http_body_feed(&b, in + off, piece, &d, &dl);
		if (c < 0) {
			*done = false;
			return c;
		}
		CHECK((size_t)c <= piece && dl <= (size_t)c);
		if (dl) {
			CHECK(d >= in + off && d + dl <= in + off + c);
			memcpy(out + *out_len, d, dl);
			*out_len += dl;
		}
		CHECK(b.total == *out_len);
		off += (size_t)c;
		/* Every call on a non-empty input makes progress, or
		 * fails. */
		CHECK(c > 0 || dl > 0 || b.done);
	}
	*done = b.done;
	return (ssize_t)off;
}

static void body_differential(enum drp_http_body_mode mode, uint64_t length,
			      const char *in, size_t len, const uint8_t *sizes,
			      size_t nsizes)
{
	char *out1 = malloc(len + 1), *out2 = malloc(len + 1);
	size_t l1, l2;
	bool d1, d2;
	ssize_t r1 = decode(mode, length, in, len, NULL, 0, out1, &l1, &d1);
	ssize_t r2 =
		decode(mode, length, in, len, sizes, nsizes, out2, &l2, &d2);
	CHECK(r1 == r2 && d1 == d2);
	if (r1 >= 0) {
		CHECK(l1 == l2 && memcmp(out1, out2, l1) == 0);
		CHECK(l1 <= (size_t)r1);
		if (mode == DRP_HTTP_BODY_EOF)
			CHECK(l1 == len && (size_t)r1 == len);
		if (mode == DRP_HTTP_BODY_LENGTH)
			CHECK(l1 == (size_t)r1 &&
			      (d1 ? l1 == length : l1 == len));
	}
	free(out1);
	free(out2);
}

typedef ssize_t (*more_fn)(const char *, size_t, size_t, size_t,
			   drp_http_msg_t *);

/*
 * Feed growing prefixes (cut points taken from the input bytes) to the
 * _more variant. It may defer an error the full parser reports at once
 * (INCOMPLETE instead of an error code), but never miss a complete head
 * and never disagree on a definite answer.
 */
static void more_consistency(const char *buf, size_t len, size_t max_head,
			     bool request)
{
	parse_fn parse =
		request ? drp_http_parse_request : drp_http_parse_response;
	more_fn more = request ? drp_http_parse_request_more
			       : drp_http_parse_response_more;
	drp_http_msg_t m, f;
	size_t prev = 0, n = 0, k = 0;
	while (n < len) {
		size_t step = len ? (unsigned char)buf[k++ % len] % 64 + 1 : 1;
		n = n + step < len ? n + step : len;
		ssize_t r = more(buf, n, prev, max_head, &m);
		ssize_t full = parse(buf, n, max_head, &f);
		if (r == DRP_HTTP_INCOMPLETE) {
			/* any error may be deferred, never a head */
			CHECK(full < 0);
			prev = n;
			continue;
		}
		CHECK(r == full);
		if (r > 0)
			CHECK(m.head_len == f.head_len &&
			      m.num_headers == f.num_headers);
		return;
	}
}

static void one_kind(const char *buf, size_t len, bool request)
{
	parse_fn parse =
		request ? drp_http_parse_request : drp_http_parse_response;
	drp_http_msg_t m;
	size_t max_head = 8192;
	ssize_t r = parse(buf, len, max_head, &m);
	CHECK(r > 0 || r == DRP_HTTP_INCOMPLETE || r == -EINVAL ||
	      r == -E2BIG || r == -EPROTONOSUPPORT);
	if (r == DRP_HTTP_INCOMPLETE)
		CHECK(len < max_head);
	more_consistency(buf, len, max_head, request);
	more_consistency(buf, len, 64, request);
	if (r <= 0)
		return;
	check_head(buf, len, &m, r, request);

	/* the head alone parses to the same length; one byte less is
	 * incomplete (exact-size copies catch over-reads) */
	char *head = malloc((size_t)r);
	memcpy(head, buf, (size_t)r);
	drp_http_msg_t m2;
	CHECK(parse(head, (size_t)r, max_head, &m2) == r);
	CHECK(m2.num_headers == m.num_headers);
	CHECK(parse(head, (size_t)r - 1, max_head, &m2) == DRP_HTTP_INCOMPLETE);
	CHECK(parse(head, (size_t)r / 2, max_head, &m2) == DRP_HTTP_INCOMPLETE);
	/* a limit one below the head is a 431 */
	CHECK(parse(head, (size_t)r, (size_t)r - 1, &m2) == -E2BIG);
	free(head);

	enum drp_http_body_mode mode;
	uint64_t length;
	int fr;
	if (request) {
		fr = drp_http_request_framing(&m, &mode, &length);
		CHECK(fr == 0); /* the parser already refused bad framing */
	} else {
		const char *methods[] = {"GET", "HEAD", "CONNECT", NULL};
		for (size_t i = 0; i < 4; i++) {
			fr = drp_http_response_framing(&m, methods[i], &mode,
						       &length);
			CHECK(fr == 0);
			if (i == 1)
				CHECK(mode == DRP_HTTP_BODY_NONE);
		}
		fr = drp_http_response_framing(&m, "GET", &mode, &length);
	}
	CHECK(fr == 0);
	CHECK(mode == DRP_HTTP_BODY_NONE || mode == DRP_HTTP_BODY_LENGTH ||
	      mode == DRP_HTTP_BODY_CHUNKED || mode == DRP_HTTP_BODY_EOF);
	const char *body = buf + r;
	size_t blen = len - (size_t)r;
	body_differential(mode, length, body, blen, (const uint8_t *)buf,
			  (size_t)r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	one_kind(buf, size, true);
	one_kind(buf, size, false);
	/* The chunked decoder on the raw input too, so it is reached without
	 * first finding a valid head. */
	body_differential(DRP_HTTP_BODY_CHUNKED, 0, buf, size, data,
			  size > 8 ? 8 : size);
	(void)drp_http_reason(size ? data[0] * 4 : 0);
	return 0;
}
