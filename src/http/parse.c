/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.1 head parser and body framer. See parse.h for the contract.
 *
 * The head parser is a single forward pass over the buffer that rejects a
 * bad byte as soon as it sees it, so garbage is refused without waiting
 * for a CRLFCRLF that may never come. Running out of bytes anywhere in a
 * syntactically valid prefix is DRP_HTTP_INCOMPLETE.
 */
#include <errno.h>
#include <string.h>

#include "http/parse.h"

/* Cap on all trailer bytes of one chunked body (many short lines). */
#define TRAILER_MAX 65536
/* Cap on one chunk-size line (with extensions) and one trailer line. */
#define LINE_MAX_BYTES	 8192
#define CHUNK_MAX_DIGITS 16
/* Empty lines tolerated before a request-line. */
#define MAX_LEADING_CRLF 4
/* Content-Length values above this are refused (they fit an off_t). */
#define CONTENT_LENGTH_MAX ((uint64_t)INT64_MAX)

/* Character classes, one bit each. */
enum {
	C_TCHAR = 1,  /* RFC 9110 token character */
	C_VALUE = 2,  /* field-value octet: HTAB, SP, VCHAR, obs-text */
	C_TARGET = 4, /* request-target octet: VCHAR */
	C_HEX = 8,
	C_DIGIT = 16,
};

#define TC (C_TCHAR | C_VALUE | C_TARGET)
#define VT (C_VALUE | C_TARGET)
#define HX (TC | C_HEX)
#define DG (TC | C_HEX | C_DIGIT)
#define OB C_VALUE
/* clang-format off */
static const uint8_t ctab[256] = {
	/* 0x00 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, C_VALUE, 0, 0, 0, 0, 0, 0,
	/* 0x10 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	/* 0x20  SP  !   "   #   $   %   &   '   (   )   *   +   ,   -   .   / */
	C_VALUE, TC, VT, TC, TC, TC, TC, TC, VT, VT, TC, TC, VT, TC, TC, VT,
	/* 0x30  0-9 :   ;   <   =   >   ? */
	DG, DG, DG, DG, DG, DG, DG, DG, DG, DG, VT, VT, VT, VT, VT, VT,
	/* 0x40  @   A-F             G-O */
	VT, HX, HX, HX, HX, HX, HX, TC, TC, TC, TC, TC, TC, TC, TC, TC,
	/* 0x50  P-Z                         [   \   ]   ^   _ */
	TC, TC, TC, TC, TC, TC, TC, TC, TC, TC, TC, VT, VT, VT, TC, TC,
	/* 0x60  `   a-f             g-o */
	TC, HX, HX, HX, HX, HX, HX, TC, TC, TC, TC, TC, TC, TC, TC, TC,
	/* 0x70  p-z                         {   |   }   ~   DEL */
	TC, TC, TC, TC, TC, TC, TC, TC, TC, TC, TC, VT, TC, VT, TC, 0,
	/* 0x80..0xff: obs-text */
	OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB,
	OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB,
	OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB,
	OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB,
	OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB,
	OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB,
	OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB,
	OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB, OB,
};
/* clang-format on */
#undef TC
#undef VT
#undef HX
#undef DG
#undef OB

#define IS(c, cls) (ctab[(unsigned char)(c)] & (cls))

static inline unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

/* Case-insensitive compare of n bytes; `lc` must already be lower-case. */
static bool ieq(const char *s, const char *lc, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower((unsigned char)s[i]) != (unsigned char)lc[i])
			return false;
	return true;
}

static bool ieq2(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return false;
	return true;
}

/*
 * Word-at-a-time scanning. ONES * n broadcasts a byte; the "has less
 * than" test is exact in whether the word has such a byte (bits above
 * the first hit may be noise, which is fine as we only test != 0).
 */
#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

static inline uint64_t load64(const char *p)
{
	uint64_t w;
	memcpy(&w, p, sizeof(w));
	return w;
}

static inline uint64_t has_less(uint64_t w, unsigned n)
{
	return (w - ONES * n) & ~w & HIGHS;
}

static inline uint64_t has_byte(uint64_t w, unsigned b)
{
	return has_less(w ^ (ONES * b), 1);
}

/* Skip field-value octets (fast path: no CTL and no DEL in 8 bytes). */
static const char *skip_value(const char *p, const char *end)
{
	for (;;) {
		while (end - p >= 8) {
			uint64_t w = load64(p);
			if (has_less(w, 0x20) | has_byte(w, 0x7f))
				break;
			p += 8;
		}
		/* Walk the word that stopped the fast path; only an HTAB in
		 * it lets the scan go on. */
		const char *stop = end - p >= 8 ? p + 8 : end;
		while (p < stop && IS(*p, C_VALUE))
			p++;
		if (p < stop || p == end)
			return p;
	}
}

/* Skip request-target octets (VCHAR only). */
static const char *skip_target(const char *p, const char *end)
{
	while (end - p >= 8) {
		uint64_t w = load64(p);
		if (has_less(w, 0x21) | (w & HIGHS) | has_byte(w, 0x7f))
			break;
		p += 8;
	}
	while (p < end && IS(*p, C_TARGET))
		p++;
	return p;
}

/* Match a literal; INCOMPLETE if the buffer ends inside it. */
static int expect(const char **pp, const char *end, const char *lit)
{
	const char *p = *pp;
	for (; *lit; lit++, p++) {
		if (p == end)
			return DRP_HTTP_INCOMPLETE;
		if (*p != *lit)
			return -EINVAL;
	}
	*pp = p;
	return 0;
}

/* Consume CRLF at *pp. */
static int crlf(const char **pp, const char *end)
{
	return expect(pp, end, "\r\n");
}

/* "HTTP/" DIGIT "." DIGIT */
static int parse_version(const char **pp, const char *end, int *minor)
{
	int r = expect(pp, end, "HTTP/");
	if (r < 0)
		return r;
	const char *p = *pp;
	if (p == end)
		return DRP_HTTP_INCOMPLETE;
	if (!IS(*p, C_DIGIT))
		return -EINVAL;
	if (*p != '1')
		return -EPROTONOSUPPORT;
	p++;
	if (p == end)
		return DRP_HTTP_INCOMPLETE;
	if (*p != '.')
		return -EINVAL;
	p++;
	if (p == end)
		return DRP_HTTP_INCOMPLETE;
	if (!IS(*p, C_DIGIT))
		return -EINVAL;
	/* A higher 1.x minor is treated as the highest we implement. */
	*minor = *p == '0' ? 0 : 1;
	*pp = p + 1;
	return 0;
}

static int parse_headers(const char **pp, const char *end, drp_http_msg_t *msg)
{
	const char *p = *pp;
	msg->num_headers = 0;
	for (;;) {
		if (p == end)
			return DRP_HTTP_INCOMPLETE;
		if (*p == '\r') {
			p++;
			if (p == end)
				return DRP_HTTP_INCOMPLETE;
			if (*p != '\n')
				return -EINVAL;
			*pp = p + 1;
			return 0;
		}
		/* Also refuses obs-fold (SP/HTAB), bare LF and a leading ':'.
		 */
		if (!IS(*p, C_TCHAR))
			return -EINVAL;
		if (msg->num_headers == DRP_HTTP_MAX_HEADERS)
			return -E2BIG;
		drp_http_header_t *h = &msg->headers[msg->num_headers];
		h->name = p;
		while (p < end && IS(*p, C_TCHAR))
			p++;
		if (p == end)
			return DRP_HTTP_INCOMPLETE;
		if (*p != ':') /* whitespace before the colon included */
			return -EINVAL;
		h->name_len = (size_t)(p - h->name);
		p++;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		h->value = p;
		p = skip_value(p, end);
		if (p == end)
			return DRP_HTTP_INCOMPLETE;
		if (*p != '\r')
			return -EINVAL; /* bare LF, NUL, other CTL */
		const char *ve = p;
		while (ve > h->value && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		h->value_len = (size_t)(ve - h->value);
		p++;
		if (p == end)
			return DRP_HTTP_INCOMPLETE;
		if (*p != '\n')
			return -EINVAL;
		p++;
		msg->num_headers++;
	}
}

/* ---- framing headers ---- */

struct framing {
	bool has_cl;
	uint64_t cl;
	unsigned n_te;	   /* Transfer-Encoding fields */
	unsigned codings;  /* transfer codings listed in them */
	unsigned chunked;  /* how many of them are "chunked" */
	bool last_chunked; /* the final coding is chunked */
	unsigned n_host;
};

/* Content-Length = 1*DIGIT, or a list of identical values. */
static int parse_cl(const drp_http_header_t *h, struct framing *f)
{
	const char *p = h->value, *end = h->value + h->value_len;
	if (p == end)
		return -EINVAL;
	for (;;) {
		uint64_t v = 0;
		const char *d = p;
		while (p < end && IS(*p, C_DIGIT)) {
			unsigned dig = (unsigned)(*p - '0');
			if (v > (CONTENT_LENGTH_MAX - dig) / 10)
				return -EINVAL;
			v = v * 10 + dig;
			p++;
		}
		if (p == d)
			return -EINVAL;
		if (f->has_cl && f->cl != v)
			return -EINVAL;
		f->has_cl = true;
		f->cl = v;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p == end)
			return 0;
		if (*p != ',')
			return -EINVAL;
		p++;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
	}
}

/*
 * Transfer-Encoding = #transfer-coding; transfer-coding = token
 * *( OWS ";" OWS parameter ). Empty list elements are allowed (RFC 9110
 * §5.6.1). "chunked" takes no parameters.
 */
static int parse_te(const drp_http_header_t *h, struct framing *f)
{
	const char *p = h->value, *end = h->value + h->value_len;
	unsigned before = f->codings;
	f->n_te++;
	while (p < end) {
		if (*p == ',' || *p == ' ' || *p == '\t') {
			p++;
			continue;
		}
		const char *tok = p;
		while (p < end && IS(*p, C_TCHAR))
			p++;
		if (p == tok)
			return -EINVAL;
		size_t tl = (size_t)(p - tok);
		bool is_chunked = tl == 7 && ieq(tok, "chunked", 7);
		f->codings++;
		f->chunked += is_chunked;
		f->last_chunked = is_chunked;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p < end && *p == ';') {
			if (is_chunked)
				return -EINVAL;
			/* Parameters of another coding: skip to the next
			 * element (a quoted comma is not valid here). */
			while (p < end && *p != ',')
				p++;
		}
		if (p < end && *p != ',')
			return -EINVAL;
	}
	if (f->codings == before)
		return -EINVAL; /* no coding at all */
	return 0;
}

/* Collect and check the framing fields common to requests and responses.
 */
static int scan_framing(const drp_http_msg_t *msg, struct framing *f)
{
	memset(f, 0, sizeof(*f));
	for (size_t i = 0; i < msg->num_headers; i++) {
		const drp_http_header_t *h = &msg->headers[i];
		int r = 0;
		switch (h->name_len) {
		case 4:
			if (ieq(h->name, "host", 4))
				f->n_host++;
			break;
		case 14:
			if (ieq(h->name, "content-length", 14))
				r = parse_cl(h, f);
			break;
		case 17:
			if (ieq(h->name, "transfer-encoding", 17))
				r = parse_te(h, f);
			break;
		default:
			break;
		}
		if (r < 0)
			return r;
	}
	if (f->n_te) {
		/* Both framings present: a smuggling attempt. HTTP/1.0 has
		 * no transfer codings (RFC 9112 §6.1). chunked twice is
		 * never valid. */
		if (f->has_cl || msg->minor_version == 0 || f->chunked > 1)
			return -EINVAL;
	}
	return 0;
}

/* ---- heads ---- */

ssize_t drp_http_parse_request(const char *buf, size_t len, size_t max_head,
			       drp_http_msg_t *msg)
{
	size_t lim = len < max_head ? len : max_head;
	const char *p = buf, *end = buf + lim;
	int r;

	msg->status = 0;
	msg->reason = NULL;
	msg->reason_len = 0;
	msg->num_headers = 0;
	msg->head_len = 0;
	/* RFC 9112 §2.2: ignore empty lines before the request-line (a
	 * few: each one makes an incremental re-parse start over). */
	for (int n = 0; p < end && *p == '\r'; n++) {
		if (n == MAX_LEADING_CRLF) {
			r = -EINVAL;
			goto fail;
		}
		r = crlf(&p, end);
		if (r < 0)
			goto fail;
	}
	if (p == end) {
		r = DRP_HTTP_INCOMPLETE;
		goto fail;
	}
	msg->method = p;
	while (p < end && IS(*p, C_TCHAR))
		p++;
	if (p == end) {
		r = DRP_HTTP_INCOMPLETE;
		goto fail;
	}
	if (p == msg->method || *p != ' ') {
		r = -EINVAL;
		goto fail;
	}
	msg->method_len = (size_t)(p - msg->method);
	p++;
	msg->target = p;
	p = skip_target(p, end);
	if (p == end) {
		r = DRP_HTTP_INCOMPLETE;
		goto fail;
	}
	if (p == msg->target || *p != ' ') {
		r = -EINVAL;
		goto fail;
	}
	msg->target_len = (size_t)(p - msg->target);
	p++;
	r = parse_version(&p, end, &msg->minor_version);
	if (r < 0)
		goto fail;
	r = crlf(&p, end);
	if (r < 0)
		goto fail;
	r = parse_headers(&p, end, msg);
	if (r < 0)
		goto fail;

	struct framing f;
	r = scan_framing(msg, &f);
	if (r < 0)
		return r;
	/* RFC 9112 §3.2: more than one Host is a 400. Requests accept only
	 * "chunked" itself: a coding we cannot forward is refused. */
	if (f.n_host > 1)
		return -EINVAL;
	if (f.n_te && (f.codings != 1 || !f.last_chunked))
		return -EINVAL;
	msg->head_len = (size_t)(p - buf);
	return (ssize_t)msg->head_len;
fail:
	if (r == DRP_HTTP_INCOMPLETE && len >= max_head)
		return -E2BIG;
	return r;
}

ssize_t drp_http_parse_response(const char *buf, size_t len, size_t max_head,
				drp_http_msg_t *msg)
{
	size_t lim = len < max_head ? len : max_head;
	const char *p = buf, *end = buf + lim;
	int r;

	msg->method = NULL;
	msg->method_len = 0;
	msg->target = NULL;
	msg->target_len = 0;
	msg->num_headers = 0;
	msg->head_len = 0;
	r = parse_version(&p, end, &msg->minor_version);
	if (r < 0)
		goto fail;
	r = expect(&p, end, " ");
	if (r < 0)
		goto fail;
	int status = 0;
	for (int i = 0; i < 3; i++, p++) {
		if (p == end) {
			r = DRP_HTTP_INCOMPLETE;
			goto fail;
		}
		if (!IS(*p, C_DIGIT)) {
			r = -EINVAL;
			goto fail;
		}
		status = status * 10 + (*p - '0');
	}
	if (status < 100) {
		r = -EINVAL;
		goto fail;
	}
	msg->status = status;
	if (p == end) {
		r = DRP_HTTP_INCOMPLETE;
		goto fail;
	}
	/* The SP before an empty reason is often left out: accept both. */
	if (*p == ' ')
		p++;
	else if (*p != '\r') {
		r = -EINVAL;
		goto fail;
	}
	msg->reason = p;
	p = skip_value(p, end);
	msg->reason_len = (size_t)(p - msg->reason);
	r = crlf(&p, end);
	if (r < 0)
		goto fail;
	r = parse_headers(&p, end, msg);
	if (r < 0)
		goto fail;

	struct framing f;
	r = scan_framing(msg, &f);
	if (r < 0)
		return r;
	msg->head_len = (size_t)(p - buf);
	return (ssize_t)msg->head_len;
fail:
	if (r == DRP_HTTP_INCOMPLETE && len >= max_head)
		return -E2BIG;
	return r;
}

typedef ssize_t (*parse_fn)(const char *, size_t, size_t, drp_http_msg_t *);

static ssize_t parse_more(parse_fn parse, const char *buf, size_t len,
			  size_t prev_len, size_t max_head, drp_http_msg_t *msg)
{
	size_t lim = len < max_head ? len : max_head;
	if (prev_len == 0 || prev_len >= lim || lim == max_head)
		return parse(buf, len, max_head, msg);
	/* The previous call saw no error in buf[0..prev_len) and no end of
	 * head; look for either in the new bytes (3 back for CRLFCRLF). */
	const unsigned char *u = (const unsigned char *)buf;
	for (size_t i = prev_len >= 3 ? prev_len - 3 : 0; i < lim; i++) {
		unsigned char c = u[i];
		if (i > 0 && u[i - 1] == '\r' && c != '\n')
			return parse(buf, len, max_head, msg); /* bare CR */
		if (c == '\n') {
			if (i == 0 || u[i - 1] != '\r' ||
			    (i >= 3 && u[i - 2] == '\n' && u[i - 3] == '\r'))
				return parse(buf, len, max_head, msg);
		} else if (!IS(c, C_VALUE) && c != '\r') {
			return parse(buf, len, max_head, msg);
		}
	}
	return DRP_HTTP_INCOMPLETE;
}

ssize_t drp_http_parse_request_more(const char *buf, size_t len,
				    size_t prev_len, size_t max_head,
				    drp_http_msg_t *msg)
{
	return parse_more(drp_http_parse_request, buf, len, prev_len, max_head,
			  msg);
}

ssize_t drp_http_parse_response_more(const char *buf, size_t len,
				     size_t prev_len, size_t max_head,
				     drp_http_msg_t *msg)
{
	return parse_more(drp_http_parse_response, buf, len, prev_len, max_head,
			  msg);
}

/* ---- lookup ---- */

const drp_http_header_t *drp_http_find(const drp_http_msg_t *msg,
				       const char *name)
{
	return drp_http_find_next(msg, name, NULL);
}

const drp_http_header_t *drp_http_find_next(const drp_http_msg_t *msg,
					    const char *name,
					    const drp_http_header_t *prev)
{
	size_t n = strlen(name);
	size_t i = prev ? (size_t)(prev - msg->headers) + 1 : 0;
	for (; i < msg->num_headers; i++) {
		const drp_http_header_t *h = &msg->headers[i];
		if (ieq2(h->name, h->name_len, name, n))
			return h;
	}
	return NULL;
}

/* Does the list value hold the element tok (OWS-trimmed, whole)? */
static bool list_has(const char *v, size_t vlen, const char *tok, size_t tlen)
{
	const char *p = v, *end = v + vlen;
	while (p < end) {
		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		const char *s = p;
		while (p < end && *p != ',')
			p++;
		const char *e = p;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e > s && ieq2(s, (size_t)(e - s), tok, tlen))
			return true;
	}
	return false;
}

static bool has_token_n(const drp_http_msg_t *msg, const char *name,
			size_t nlen, const char *tok, size_t tlen)
{
	for (size_t i = 0; i < msg->num_headers; i++) {
		const drp_http_header_t *h = &msg->headers[i];
		if (ieq2(h->name, h->name_len, name, nlen) &&
		    list_has(h->value, h->value_len, tok, tlen))
			return true;
	}
	return false;
}

bool drp_http_has_token(const drp_http_msg_t *msg, const char *name,
			const char *tok)
{
	return has_token_n(msg, name, strlen(name), tok, strlen(tok));
}

bool drp_http_method_is(const drp_http_msg_t *msg, const char *method)
{
	size_t n = strlen(method);
	/* Methods are case-sensitive (RFC 9110 §9.1). */
	return msg->method != NULL && msg->method_len == n &&
	       memcmp(msg->method, method, n) == 0;
}

bool drp_http_is_hop_by_hop(const drp_http_msg_t *msg,
			    const drp_http_header_t *h)
{
	switch (h->name_len) {
	case 2:
		if (ieq(h->name, "te", 2))
			return true;
		break;
	case 7:
		if (ieq(h->name, "upgrade", 7) || ieq(h->name, "trailer", 7))
			return true;
		break;
	case 10:
		if (ieq(h->name, "connection", 10) ||
		    ieq(h->name, "keep-alive", 10))
			return true;
		break;
	case 16:
		if (ieq(h->name, "proxy-connection", 16))
			return true;
		break;
	case 17:
		if (ieq(h->name, "transfer-encoding", 17))
			return true;
		break;
	case 18:
		if (ieq(h->name, "proxy-authenticate", 18))
			return true;
		break;
	case 19:
		if (ieq(h->name, "proxy-authorization", 19))
			return true;
		break;
	default:
		break;
	}
	return has_token_n(msg, "connection", 10, h->name, h->name_len);
}

/* ---- framing decisions ---- */

int drp_http_request_framing(const drp_http_msg_t *req,
			     enum drp_http_body_mode *mode, uint64_t *length)
{
	struct framing f;
	int r = scan_framing(req, &f);
	if (r < 0)
		return r;
	*length = 0;
	if (f.n_te) {
		if (f.codings != 1 || !f.last_chunked)
			return -EINVAL;
		*mode = DRP_HTTP_BODY_CHUNKED;
	} else if (f.has_cl) {
		*mode = DRP_HTTP_BODY_LENGTH;
		*length = f.cl;
	} else {
		*mode = DRP_HTTP_BODY_NONE;
	}
	return 0;
}

int drp_http_response_framing(const drp_http_msg_t *resp,
			      const char *req_method,
			      enum drp_http_body_mode *mode, uint64_t *length)
{
	struct framing f;
	int r = scan_framing(resp, &f);
	if (r < 0)
		return r;
	*length = 0;
	int st = resp->status;
	if ((req_method && strcmp(req_method, "HEAD") == 0) ||
	    (st >= 100 && st < 200) || st == 204 || st == 304 ||
	    (req_method && strcmp(req_method, "CONNECT") == 0 && st >= 200 &&
	     st < 300)) {
		*mode = DRP_HTTP_BODY_NONE;
	} else if (f.n_te) {
		/* RFC 9112 §6.3 (4): not chunked last = read until close. */
		*mode = f.last_chunked ? DRP_HTTP_BODY_CHUNKED
				       : DRP_HTTP_BODY_EOF;
	} else if (f.has_cl) {
		*mode = DRP_HTTP_BODY_LENGTH;
		*length = f.cl;
	} else {
		*mode = DRP_HTTP_BODY_EOF;
	}
	return 0;
}

/* ---- bodies ---- */

enum {
	CH_SIZE = 0, /* hex digits of chunk-size */
	CH_BWS,	     /* after the size: BWS, then ";" or CR */
	CH_EXT,	     /* chunk extensions, up to CR */
	CH_SIZE_LF,  /* LF ending the size line */
	CH_DATA,     /* chunk payload */
	CH_DATA_CR,  /* CR after the payload */
	CH_DATA_LF,  /* LF after the payload */
	CH_TR_START, /* start of a trailer line, or the final CRLF */
	CH_TR_NAME,  /* trailer field name */
	CH_TR_VALUE, /* trailer field value, up to CR */
	CH_TR_LF,    /* LF ending a trailer line */
	CH_END_LF,   /* LF of the final empty line */
};

void drp_http_body_init(drp_http_body_t *b, enum drp_http_body_mode mode,
			uint64_t length)
{
	memset(b, 0, sizeof(*b));
	b->mode = mode;
	b->state = CH_SIZE;
	switch (mode) {
	case DRP_HTTP_BODY_LENGTH:
		b->remaining = length;
		b->done = length == 0;
		break;
	case DRP_HTTP_BODY_CHUNKED:
	case DRP_HTTP_BODY_EOF:
		break;
	default:
		b->mode = DRP_HTTP_BODY_NONE;
		b->done = true;
		break;
	}
}

static inline int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = lower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * One call reports at most one payload span, so the walk stops when a
 * second span would start; framing bytes around the span are consumed in
 * the same call. An error found after a span is reported by the next call
 * (which starts at the bad byte), so no payload is lost with it.
 */
static ssize_t feed_chunked(drp_http_body_t *b, const char *in, size_t len,
			    const char **data, size_t *data_len)
{
	const char *p = in, *end = in + len;
	bool spanned = false;
	int err = 0;

	while (p < end && !b->done) {
		unsigned char c = (unsigned char)*p;
		switch (b->state) {
		case CH_SIZE: {
			int v = hexval(c);
			if (v >= 0) {
				if (b->line_len == CHUNK_MAX_DIGITS) {
					err = -EINVAL; /* overflow */
					goto out;
				}
				b->remaining =
					(b->remaining << 4) | (unsigned)v;
				b->line_len++;
				p++;
				break;
			}
			if (b->line_len == 0) {
				err = -EINVAL; /* no digits */
				goto out;
			}
			b->state = CH_BWS;
			continue; /* same byte */
		}
		case CH_BWS:
			/* Only whitespace, then ";" or the line end, may
			 * follow the digits ("5x" is not a size). */
			if (c == ';') {
				b->state = CH_EXT;
			} else if (c == '\r') {
				b->state = CH_SIZE_LF;
			} else if (c != ' ' && c != '\t') {
				err = -EINVAL;
				goto out;
			}
			goto size_line_byte;
		case CH_EXT:
			if (c == '\r') {
				b->state = CH_SIZE_LF;
			} else if (c != '\t' && (c < 0x20 || c == 0x7f)) {
				err = -EINVAL; /* bare LF, CTL */
				goto out;
			}
			/* Extensions are ignored; only the bytes that could
			 * end or split the line matter. */
		size_line_byte:
			if (++b->line_len > LINE_MAX_BYTES) {
				err = -EINVAL;
				goto out;
			}
			p++;
			break;
		case CH_SIZE_LF:
			if (c != '\n') {
				err = -EINVAL;
				goto out;
			}
			p++;
			b->line_len = 0;
			if (b->remaining == 0) {
				/* last-chunk: trailers follow; remaining now
				 * counts trailer bytes. */
				b->state = CH_TR_START;
			} else {
				b->state = CH_DATA;
			}
			break;
		case CH_DATA: {
			if (spanned)
				goto out;
			size_t avail = (size_t)(end - p);
			size_t n = b->remaining < avail ? (size_t)b->remaining
							: avail;
			*data = p;
			*data_len = n;
			spanned = true;
			p += n;
			b->remaining -= n;
			b->total += n;
			if (b->remaining == 0)
				b->state = CH_DATA_CR;
			break;
		}
		case CH_DATA_CR:
			if (c != '\r') {
				err = -EINVAL;
				goto out;
			}
			p++;
			b->state = CH_DATA_LF;
			break;
		case CH_DATA_LF:
			if (c != '\n') {
				err = -EINVAL;
				goto out;
			}
			p++;
			b->state = CH_SIZE;
			b->line_len = 0;
			b->remaining = 0;
			break;
		case CH_TR_START:
			if (c == '\r') {
				b->state = CH_END_LF;
				p++;
				break;
			}
			if (!IS(c, C_TCHAR)) {
				err = -EINVAL; /* obs-fold, bare LF, ':' */
				goto out;
			}
			b->state = CH_TR_NAME;
			continue;
		case CH_TR_NAME:
			if (c == ':')
				b->state = CH_TR_VALUE;
			else if (!IS(c, C_TCHAR)) {
				err = -EINVAL;
				goto out;
			}
			goto trailer_byte;
		case CH_TR_VALUE:
			if (c == '\r') {
				b->state = CH_TR_LF;
				p++;
				break;
			}
			if (!IS(c, C_VALUE)) {
				err = -EINVAL;
				goto out;
			}
		trailer_byte:
			if (++b->line_len > LINE_MAX_BYTES ||
			    ++b->remaining > TRAILER_MAX) {
				err = -EINVAL;
				goto out;
			}
			p++;
			break;
		case CH_TR_LF:
			if (c != '\n') {
				err = -EINVAL;
				goto out;
			}
			p++;
			b->line_len = 0;
			b->state = CH_TR_START;
			break;
		case CH_END_LF:
			if (c != '\n') {
				err = -EINVAL;
				goto out;
			}
			p++;
			b->remaining = 0;
			b->done = true;
			break;
		default:
			err = -EINVAL;
			goto out;
		}
	}
out:
	if (err && p == in)
		return err;
	return (ssize_t)(p - in);
}

ssize_t drp_http_body_feed(drp_http_body_t *b, const char *in, size_t len,
			   const char **data, size_t *data_len)
{
	*data = in;
	*data_len = 0;
	if (b->done)
		return 0;
	switch (b->mode) {
	case DRP_HTTP_BODY_LENGTH: {
		size_t n = b->remaining < len ? (size_t)b->remaining : len;
		*data_len = n;
		b->remaining -= n;
		b->total += n;
		b->done = b->remaining == 0;
		return (ssize_t)n;
	}
	case DRP_HTTP_BODY_EOF:
		*data_len = len;
		b->total += len;
		return (ssize_t)len;
	case DRP_HTTP_BODY_CHUNKED:
		return feed_chunked(b, in, len, data, data_len);
	default:
		b->done = true;
		return 0;
	}
}

const char *drp_http_reason(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 101:
		return "Switching Protocols";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 203:
		return "Non-Authoritative Information";
	case 204:
		return "No Content";
	case 205:
		return "Reset Content";
	case 206:
		return "Partial Content";
	case 300:
		return "Multiple Choices";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Found";
	case 303:
		return "See Other";
	case 304:
		return "Not Modified";
	case 305:
		return "Use Proxy";
	case 307:
		return "Temporary Redirect";
	case 308:
		return "Permanent Redirect";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 402:
		return "Payment Required";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 406:
		return "Not Acceptable";
	case 407:
		return "Proxy Authentication Required";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 410:
		return "Gone";
	case 411:
		return "Length Required";
	case 412:
		return "Precondition Failed";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 415:
		return "Unsupported Media Type";
	case 416:
		return "Range Not Satisfiable";
	case 417:
		return "Expectation Failed";
	case 421:
		return "Misdirected Request";
	case 422:
		return "Unprocessable Content";
	case 425:
		return "Too Early";
	case 426:
		return "Upgrade Required";
	case 428:
		return "Precondition Required";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 451:
		return "Unavailable For Legal Reasons";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	case 507:
		return "Insufficient Storage";
	case 511:
		return "Network Authentication Required";
	default:
		return "Unknown";
	}
}
