/* SPDX-License-Identifier: MIT */
/* HTTP/1.1 head parser, lookups, framing decisions and body decoding. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/parse.h"
#include "http/range.h"

Suite *http_suite(void);

#define MAXH 65536
#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---- valid requests ---- */

struct req_case {
	const char *in;
	const char *method;
	const char *target;
	int minor;
	size_t nh;
	const char *h0name; /* first header, if any */
	const char *h0value;
};

static const struct req_case good_reqs[] = {
	/* simplest origin-form request */
	{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/", 1, 1, "Host", "a"},
	/* HTTP/1.0 without headers */
	{"GET /x HTTP/1.0\r\n\r\n", "GET", "/x", 0, 0, NULL, NULL},
	/* registry manifest request with Accept */
	{"GET /v2/library/alpine/manifests/3.19 HTTP/1.1\r\n"
	 "Host: registry-1.docker.io\r\n"
	 "Accept: application/vnd.oci.image.index.v1+json\r\n\r\n",
	 "GET", "/v2/library/alpine/manifests/3.19", 1, 2, "Host",
	 "registry-1.docker.io"},
	/* CONNECT authority-form */
	{"CONNECT registry-1.docker.io:443 HTTP/1.1\r\n"
	 "Host: registry-1.docker.io:443\r\n\r\n",
	 "CONNECT", "registry-1.docker.io:443", 1, 1, "Host",
	 "registry-1.docker.io:443"},
	/* absolute-form with query */
	{"GET http://example.com/a?b=c HTTP/1.1\r\nHost: example.com\r\n\r\n",
	 "GET", "http://example.com/a?b=c", 1, 1, "Host", "example.com"},
	/* OWS around the value is stripped, inner spaces kept */
	{"GET / HTTP/1.1\r\nX-A: \t a b \t\r\n\r\n", "GET", "/", 1, 1, "X-A",
	 "a b"},
	/* empty header value */
	{"GET / HTTP/1.1\r\nX-Empty:\r\n\r\n", "GET", "/", 1, 1, "X-Empty", ""},
	/* value of only whitespace is empty */
	{"GET / HTTP/1.1\r\nX-Empty:   \r\n\r\n", "GET", "/", 1, 1, "X-Empty",
	 ""},
	/* obs-text (UTF-8 bytes) allowed in values */
	{"GET / HTTP/1.1\r\nX-U: caf\xc3\xa9\r\n\r\n", "GET", "/", 1, 1, "X-U",
	 "caf\xc3\xa9"},
	/* token characters in names and methods */
	{"M-SEARCH * HTTP/1.1\r\nX!#$%&'*+-.^_`|~9: v\r\n\r\n", "M-SEARCH", "*",
	 1, 1, "X!#$%&'*+-.^_`|~9", "v"},
	/* an empty line before the request-line is ignored (RFC 9112 2.2) */
	{"\r\nGET / HTTP/1.1\r\n\r\n", "GET", "/", 1, 0, NULL, NULL},
	/* HTTP/1.9 is handled as 1.1 */
	{"GET / HTTP/1.9\r\n\r\n", "GET", "/", 1, 0, NULL, NULL},
	/* upload with a Content-Length body (body not part of the head) */
	{"PUT /v2/x/blobs/uploads/u?digest=sha256:00 HTTP/1.1\r\n"
	 "Content-Length: 3\r\n\r\n",
	 "PUT", "/v2/x/blobs/uploads/u?digest=sha256:00", 1, 1,
	 "Content-Length", "3"},
	/* chunked upload */
	{"PATCH /v2/x/blobs/uploads/u HTTP/1.1\r\n"
	 "Transfer-Encoding: chunked\r\n\r\n",
	 "PATCH", "/v2/x/blobs/uploads/u", 1, 1, "Transfer-Encoding",
	 "chunked"},
	/* long values take the word-at-a-time path, an HTAB inside too */
	{"GET /0123456789abcdef0123456789abcdef HTTP/1.1\r\n"
	 "Authorization: Bearer abcdefghijklmnop\tqrstuvwxyz0123456789\r\n\r\n",
	 "GET", "/0123456789abcdef0123456789abcdef", 1, 1, "Authorization",
	 "Bearer abcdefghijklmnop\tqrstuvwxyz0123456789"},
	/* same Content-Length twice is accepted */
	{"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
	 "POST", "/", 1, 2, "Content-Length", "5"},
	/* list of identical Content-Length values */
	{"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", "POST", "/", 1, 1,
	 "Content-Length", "5, 5"},
	/* a colon inside the value is data */
	{"GET / HTTP/1.1\r\nX: a:b: c\r\n\r\n", "GET", "/", 1, 1, "X",
	 "a:b: c"},
};

static void check_good_req(const struct req_case *c, const char *buf,
			   size_t len, const drp_http_msg_t *m, ssize_t r)
{
	ck_assert_int_eq(r, (ssize_t)len);
	ck_assert_uint_eq(m->head_len, len);
	ck_assert_uint_eq(m->method_len, strlen(c->method));
	ck_assert_int_eq(memcmp(m->method, c->method, m->method_len), 0);
	ck_assert_uint_eq(m->target_len, strlen(c->target));
	ck_assert_int_eq(memcmp(m->target, c->target, m->target_len), 0);
	ck_assert_int_eq(m->minor_version, c->minor);
	ck_assert_uint_eq(m->num_headers, c->nh);
	if (c->h0name) {
		const drp_http_header_t *h = &m->headers[0];
		ck_assert_uint_eq(h->name_len, strlen(c->h0name));
		ck_assert_int_eq(memcmp(h->name, c->h0name, h->name_len), 0);
		ck_assert_uint_eq(h->value_len, strlen(c->h0value));
		ck_assert_int_eq(memcmp(h->value, c->h0value, h->value_len), 0);
		/* results point into the caller's buffer */
		ck_assert(h->name >= buf && h->name < buf + len);
	}
}

START_TEST(request_valid)
{
	const struct req_case *c = &good_reqs[_i];
	size_t len = strlen(c->in);
	drp_http_msg_t m;
	ssize_t r = drp_http_parse_request(c->in, len, MAXH, &m);
	check_good_req(c, c->in, len, &m, r);
}
END_TEST

/* Every proper prefix is INCOMPLETE; the message parses once whole. The
 * copy is exact-size on the heap so ASan/valgrind catch any over-read. */
START_TEST(request_incremental)
{
	const struct req_case *c = &good_reqs[_i];
	size_t len = strlen(c->in);
	for (size_t n = 0; n <= len; n++) {
		char *buf = malloc(n ? n : 1);
		memcpy(buf, c->in, n);
		drp_http_msg_t m;
		ssize_t r = drp_http_parse_request(buf, n, MAXH, &m);
		if (n < len)
			ck_assert_msg(r == DRP_HTTP_INCOMPLETE,
				      "prefix %zu of case %d: %zd", n, _i, r);
		else
			check_good_req(c, buf, len, &m, r);
		free(buf);
	}
}
END_TEST

/* ---- malformed requests ---- */

struct bad_case {
	const char *in;
	int code;
};

static const struct bad_case bad_reqs[] = {
	/* bare LF ending the request line */
	{"GET / HTTP/1.1\nHost: a\r\n\r\n", -EINVAL},
	/* bare LF ending a header */
	{"GET / HTTP/1.1\r\nHost: a\n\r\n", -EINVAL},
	/* bare CR inside a header value */
	{"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", -EINVAL},
	/* bare CR as the final line */
	{"GET / HTTP/1.1\r\nX: a\r\n\rX", -EINVAL},
	/* obs-fold continuation line (SP) */
	{"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", -EINVAL},
	/* obs-fold continuation line (HTAB) */
	{"GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", -EINVAL},
	/* whitespace before the first header */
	{"GET / HTTP/1.1\r\n Host: a\r\n\r\n", -EINVAL},
	/* whitespace between name and colon */
	{"GET / HTTP/1.1\r\nHost : a\r\n\r\n", -EINVAL},
	/* HTAB between name and colon */
	{"GET / HTTP/1.1\r\nContent-Length\t: 5\r\n\r\n", -EINVAL},
	/* empty header name */
	{"GET / HTTP/1.1\r\n: a\r\n\r\n", -EINVAL},
	/* invalid token character in a name */
	{"GET / HTTP/1.1\r\nX(y): a\r\n\r\n", -EINVAL},
	/* header line without a colon */
	{"GET / HTTP/1.1\r\nHost\r\n\r\n", -EINVAL},
	/* DEL in a value */
	{"GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", -EINVAL},
	/* control character in a value */
	{"GET / HTTP/1.1\r\nX: a\x01\r\n\r\n", -EINVAL},
	/* two spaces after the method */
	{"GET  / HTTP/1.1\r\n\r\n", -EINVAL},
	/* HTAB as separator in the request line */
	{"GET\t/ HTTP/1.1\r\n\r\n", -EINVAL},
	/* no target at all */
	{"GET HTTP/1.1\r\n\r\n", -EINVAL},
	/* empty method */
	{" / HTTP/1.1\r\n\r\n", -EINVAL},
	/* invalid character in the method */
	{"G(T / HTTP/1.1\r\n\r\n", -EINVAL},
	/* non-ASCII in the target */
	{"GET /\xc3\xa9 HTTP/1.1\r\n\r\n", -EINVAL},
	/* DEL in the target */
	{"GET /\x7f HTTP/1.1\r\n\r\n", -EINVAL},
	/* space after the version */
	{"GET / HTTP/1.1 \r\n\r\n", -EINVAL},
	/* lower-case protocol name */
	{"GET / http/1.1\r\n\r\n", -EINVAL},
	/* two-digit minor version */
	{"GET / HTTP/1.10\r\n\r\n", -EINVAL},
	/* missing minor version */
	{"GET / HTTP/1\r\n\r\n", -EINVAL},
	/* non-digit major version */
	{"GET / HTTP/x.1\r\n\r\n", -EINVAL},
	/* HTTP/2 in HTTP/1 syntax: 505 */
	{"GET / HTTP/2.0\r\n\r\n", -EPROTONOSUPPORT},
	/* the HTTP/2 connection preface: 505 */
	{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", -EPROTONOSUPPORT},
	/* HTTP/0.9-ish version: 505 */
	{"GET / HTTP/0.9\r\n\r\n", -EPROTONOSUPPORT},
	/* HTTP/0.9 simple request (no version) */
	{"GET /\r\n\r\n", -EINVAL},
	/* TLS ClientHello sent to the plain port */
	{"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", -EINVAL},
	/* both Content-Length and Transfer-Encoding (CL.TE smuggling) */
	{"POST / HTTP/1.1\r\nContent-Length: 4\r\n"
	 "Transfer-Encoding: chunked\r\n\r\n",
	 -EINVAL},
	/* both, in the other order (TE.CL) */
	{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
	 "Content-Length: 4\r\n\r\n",
	 -EINVAL},
	/* differing Content-Length headers */
	{"POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n",
	 -EINVAL},
	/* differing Content-Length list values */
	{"POST / HTTP/1.1\r\nContent-Length: 4, 5\r\n\r\n", -EINVAL},
	/* signed Content-Length */
	{"POST / HTTP/1.1\r\nContent-Length: +4\r\n\r\n", -EINVAL},
	/* negative Content-Length */
	{"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", -EINVAL},
	/* hex Content-Length */
	{"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", -EINVAL},
	/* Content-Length with a space inside */
	{"POST / HTTP/1.1\r\nContent-Length: 1 0\r\n\r\n", -EINVAL},
	/* empty Content-Length */
	{"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", -EINVAL},
	/* Content-Length list with an empty element */
	{"POST / HTTP/1.1\r\nContent-Length: 4,\r\n\r\n", -EINVAL},
	/* Content-Length beyond 2^63-1 */
	{"POST / HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n",
	 -EINVAL},
	/* Content-Length overflowing 64 bits */
	{"POST / HTTP/1.1\r\nContent-Length: 184467440737095516160\r\n\r\n",
	 -EINVAL},
	/* final coding not chunked in a request */
	{"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", -EINVAL},
	/* chunked not last */
	{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
	 -EINVAL},
	/* chunked twice */
	{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
	 -EINVAL},
	/* chunked twice over two fields */
	{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
	 "Transfer-Encoding: chunked\r\n\r\n",
	 -EINVAL},
	/* a coding we cannot forward before chunked */
	{"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	 -EINVAL},
	/* obfuscated coding name */
	{"POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", -EINVAL},
	/* chunked with a parameter */
	{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", -EINVAL},
	/* quoted coding name */
	{"POST / HTTP/1.1\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", -EINVAL},
	/* two codings without a comma */
	{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked x\r\n\r\n", -EINVAL},
	/* empty Transfer-Encoding */
	{"POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n", -EINVAL},
	/* Transfer-Encoding in an HTTP/1.0 request */
	{"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", -EINVAL},
	/* two Host headers (RFC 9112 3.2) */
	{"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", -EINVAL},
	/* garbage in the middle of the CRLF after the request line */
	{"GET / HTTP/1.1\rX\n\r\n", -EINVAL},
	/* lone CR before the request line */
	{"\rGET / HTTP/1.1\r\n\r\n", -EINVAL},
};

START_TEST(request_malformed)
{
	const struct bad_case *c = &bad_reqs[_i];
	drp_http_msg_t m;
	ssize_t r = drp_http_parse_request(c->in, strlen(c->in), MAXH, &m);
	ck_assert_msg(r == c->code, "case %d: got %zd want %d", _i, r, c->code);
}
END_TEST

/* ---- responses ---- */

struct resp_case {
	const char *in;
	int status;
	const char *reason;
	int minor;
	size_t nh;
};

static const struct resp_case good_resps[] = {
	/* ordinary 200 */
	{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", 200, "OK", 1, 1},
	/* reason phrase with spaces */
	{"HTTP/1.1 404 Not Found\r\n\r\n", 404, "Not Found", 1, 0},
	/* empty reason after the SP */
	{"HTTP/1.1 204 \r\n\r\n", 204, "", 1, 0},
	/* no SP before an empty reason */
	{"HTTP/1.1 304\r\n\r\n", 304, "", 1, 0},
	/* HTTP/1.0 response */
	{"HTTP/1.0 200 OK\r\n\r\n", 200, "OK", 0, 0},
	/* interim response */
	{"HTTP/1.1 100 Continue\r\n\r\n", 100, "Continue", 1, 0},
	/* redirect with Location */
	{"HTTP/1.1 307 Temporary Redirect\r\n"
	 "Location: https://cdn.example/blob?sig=abc\r\n"
	 "Content-Length: 0\r\n\r\n",
	 307, "Temporary Redirect", 1, 2},
	/* reason with obs-text and HTAB */
	{"HTTP/1.1 200 O\tK \xff\r\n\r\n", 200, "O\tK \xff", 1, 0},
	/* response chunked with a coding before it */
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 200,
	 "OK", 1, 1},
	/* 3-digit status above 599 is syntactically fine */
	{"HTTP/1.1 999 Odd\r\n\r\n", 999, "Odd", 1, 0},
	/* repeated Host is no concern in a response */
	{"HTTP/1.1 200 OK\r\nHost: a\r\nHost: b\r\n\r\n", 200, "OK", 1, 2},
};

static void check_good_resp(const struct resp_case *c, size_t len,
			    const drp_http_msg_t *m, ssize_t r)
{
	ck_assert_int_eq(r, (ssize_t)len);
	ck_assert_uint_eq(m->head_len, len);
	ck_assert_int_eq(m->status, c->status);
	ck_assert_uint_eq(m->reason_len, strlen(c->reason));
	ck_assert_int_eq(memcmp(m->reason, c->reason, m->reason_len), 0);
	ck_assert_int_eq(m->minor_version, c->minor);
	ck_assert_uint_eq(m->num_headers, c->nh);
}

START_TEST(response_valid)
{
	const struct resp_case *c = &good_resps[_i];
	size_t len = strlen(c->in);
	drp_http_msg_t m;
	ssize_t r = drp_http_parse_response(c->in, len, MAXH, &m);
	check_good_resp(c, len, &m, r);
}
END_TEST

START_TEST(response_incremental)
{
	const struct resp_case *c = &good_resps[_i];
	size_t len = strlen(c->in);
	for (size_t n = 0; n <= len; n++) {
		char *buf = malloc(n ? n : 1);
		memcpy(buf, c->in, n);
		drp_http_msg_t m;
		ssize_t r = drp_http_parse_response(buf, n, MAXH, &m);
		if (n < len)
			ck_assert_msg(r == DRP_HTTP_INCOMPLETE,
				      "prefix %zu of case %d: %zd", n, _i, r);
		else
			check_good_resp(c, len, &m, r);
		free(buf);
	}
}
END_TEST

static const struct bad_case bad_resps[] = {
	/* two-digit status */
	{"HTTP/1.1 20 OK\r\n\r\n", -EINVAL},
	/* four-digit status */
	{"HTTP/1.1 2000 OK\r\n\r\n", -EINVAL},
	/* status below 100 */
	{"HTTP/1.1 099 Low\r\n\r\n", -EINVAL},
	/* non-digit status */
	{"HTTP/1.1 2x0 OK\r\n\r\n", -EINVAL},
	/* missing SP after the version */
	{"HTTP/1.1200 OK\r\n\r\n", -EINVAL},
	/* HTTP/2 status line */
	{"HTTP/2.0 200 OK\r\n\r\n", -EPROTONOSUPPORT},
	/* not HTTP at all */
	{"ICY 200 OK\r\n\r\n", -EINVAL},
	/* leading empty line (allowed for requests only) */
	{"\r\nHTTP/1.1 200 OK\r\n\r\n", -EINVAL},
	/* control byte in the reason */
	{"HTTP/1.1 200 O\x01K\r\n\r\n", -EINVAL},
	/* bare LF after the status line */
	{"HTTP/1.1 200 OK\n\r\n", -EINVAL},
	/* obs-fold in a response */
	{"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", -EINVAL},
	/* space before colon in a response */
	{"HTTP/1.1 200 OK\r\nContent-Length : 3\r\n\r\n", -EINVAL},
	/* both framings in a response */
	{"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
	 "Transfer-Encoding: chunked\r\n\r\n",
	 -EINVAL},
	/* differing lengths in a response */
	{"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
	 -EINVAL},
	/* non-digit length in a response */
	{"HTTP/1.1 200 OK\r\nContent-Length: 3a\r\n\r\n", -EINVAL},
	/* chunked twice in a response */
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
	 -EINVAL},
	/* Transfer-Encoding in an HTTP/1.0 response */
	{"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", -EINVAL},
};

START_TEST(response_malformed)
{
	const struct bad_case *c = &bad_resps[_i];
	drp_http_msg_t m;
	ssize_t r = drp_http_parse_response(c->in, strlen(c->in), MAXH, &m);
	ck_assert_msg(r == c->code, "case %d: got %zd want %d", _i, r, c->code);
}
END_TEST

/* NUL bytes anywhere in a head or in chunk framing are refused. */
START_TEST(nul_bytes)
{
	static const char req[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
	static const char req2[] = "GET /\0 HTTP/1.1\r\n\r\n";
	static const char resp[] = "HTTP/1.1 200 O\0K\r\n\r\n";
	static const char ext[] = "5;a\0\r\nhello\r\n0\r\n\r\n";
	static const char trl[] = "0\r\nX: \0\r\n\r\n";
	drp_http_msg_t m;
	ck_assert_int_eq(drp_http_parse_request(req, sizeof(req) - 1, MAXH, &m),
			 -EINVAL);
	ck_assert_int_eq(
		drp_http_parse_request(req2, sizeof(req2) - 1, MAXH, &m),
		-EINVAL);
	ck_assert_int_eq(
		drp_http_parse_response(resp, sizeof(resp) - 1, MAXH, &m),
		-EINVAL);
	drp_http_body_t b;
	const char *d;
	size_t dl;
	drp_http_body_init(&b, DRP_HTTP_BODY_CHUNKED, 0);
	/* the size and ";a" are consumed; the next call hits the NUL */
	ck_assert_int_eq(drp_http_body_feed(&b, ext, sizeof(ext) - 1, &d, &dl),
			 3);
	ck_assert_int_eq(
		drp_http_body_feed(&b, ext + 3, sizeof(ext) - 4, &d, &dl),
		-EINVAL);
	drp_http_body_init(&b, DRP_HTTP_BODY_CHUNKED, 0);
	ck_assert_int_eq(drp_http_body_feed(&b, trl, sizeof(trl) - 1, &d, &dl),
			 6);
	ck_assert_int_eq(
		drp_http_body_feed(&b, trl + 6, sizeof(trl) - 7, &d, &dl),
		-EINVAL);
}
END_TEST

/* Garbage is refused at the first bad byte, not after a CRLFCRLF. */
START_TEST(early_rejection)
{
	drp_http_msg_t m;
	ck_assert_int_eq(drp_http_parse_request("\x16\x03", 2, MAXH, &m),
			 -EINVAL);
	ck_assert_int_eq(drp_http_parse_request("GET / XTTP", 10, MAXH, &m),
			 -EINVAL);
	ck_assert_int_eq(
		drp_http_parse_request("GET / HTTP/1.1\r\nA\n", 18, MAXH, &m),
		-EINVAL);
	ck_assert_int_eq(drp_http_parse_response("SSH-2.0", 7, MAXH, &m),
			 -EINVAL);
}
END_TEST

/* A pipelined second request is not part of the first head. */
START_TEST(pipelined)
{
	const char *two = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
			  "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
	size_t first = strlen("GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
	drp_http_msg_t m;
	ssize_t r = drp_http_parse_request(two, strlen(two), MAXH, &m);
	ck_assert_int_eq(r, (ssize_t)first);
	ck_assert_int_eq(memcmp(m.target, "/a", 2), 0);
	r = drp_http_parse_request(two + first, strlen(two) - first, MAXH, &m);
	ck_assert_int_eq(r, (ssize_t)first);
	ck_assert_int_eq(memcmp(m.target, "/b", 2), 0);
	/* the same for a response followed by its body and another one */
	const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
			   "HTTP/1.1 204 No Content\r\n\r\n";
	r = drp_http_parse_response(resp, strlen(resp), MAXH, &m);
	ck_assert_int_eq(r, 38);
	ck_assert_int_eq(memcmp(resp + r, "hi", 2), 0);
}
END_TEST

/* max_head: 431 when the head does not end within the limit. */
START_TEST(head_limit)
{
	const char *req = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	size_t len = strlen(req);
	drp_http_msg_t m;
	/* exactly max_head bytes: fine */
	ck_assert_int_eq(drp_http_parse_request(req, len, len, &m),
			 (ssize_t)len);
	/* one byte more than allowed: 431 */
	ck_assert_int_eq(drp_http_parse_request(req, len, len - 1, &m), -E2BIG);
	/* incomplete but below the limit: wait */
	ck_assert_int_eq(drp_http_parse_request(req, 10, len - 1, &m),
			 DRP_HTTP_INCOMPLETE);
	/* incomplete and the limit reached: 431 */
	ck_assert_int_eq(drp_http_parse_request(req, len - 1, len - 1, &m),
			 -E2BIG);
	/* a huge header line with no end yet */
	size_t big = 70000;
	char *buf = malloc(big);
	memcpy(buf, "GET / HTTP/1.1\r\nX: ", 19);
	memset(buf + 19, 'a', big - 19);
	ck_assert_int_eq(drp_http_parse_request(buf, big, MAXH, &m), -E2BIG);
	ck_assert_int_eq(drp_http_parse_request(buf, 60000, MAXH, &m),
			 DRP_HTTP_INCOMPLETE);
	/* a complete message within the limit followed by more bytes than
	 * the limit (its body) still parses */
	memcpy(buf, req, len);
	ck_assert_int_eq(drp_http_parse_request(buf, big, len, &m),
			 (ssize_t)len);
	/* responses too */
	const char *resp = "HTTP/1.1 200 OK\r\n\r\n";
	ck_assert_int_eq(drp_http_parse_response(resp, 19, 18, &m), -E2BIG);
	ck_assert_int_eq(drp_http_parse_response(resp, 19, 19, &m), 19);
	free(buf);
}
END_TEST

static char *many_headers(size_t n, int response)
{
	char *buf = malloc(64 + n * 16);
	size_t o = (size_t)sprintf(buf, "%s",
				   response ? "HTTP/1.1 200 OK\r\n"
					    : "GET / HTTP/1.1\r\n");
	for (size_t i = 0; i < n; i++)
		o += (size_t)sprintf(buf + o, "X-%zu: v\r\n", i);
	o += (size_t)sprintf(buf + o, "\r\n");
	return buf;
}

/* DRP_HTTP_MAX_HEADERS headers are fine, one more is a 431. */
START_TEST(header_count_limit)
{
	drp_http_msg_t m;
	char *ok = many_headers(DRP_HTTP_MAX_HEADERS, 0);
	ck_assert_int_eq(drp_http_parse_request(ok, strlen(ok), MAXH, &m),
			 (ssize_t)strlen(ok));
	ck_assert_uint_eq(m.num_headers, DRP_HTTP_MAX_HEADERS);
	ck_assert_int_eq(memcmp(m.headers[99].name, "X-99", 4), 0);
	char *bad = many_headers(DRP_HTTP_MAX_HEADERS + 1, 0);
	ck_assert_int_eq(drp_http_parse_request(bad, strlen(bad), MAXH, &m),
			 -E2BIG);
	/* known as soon as the 101st line starts */
	const char *l101 = strstr(bad, "X-100:");
	ck_assert_int_eq(
		drp_http_parse_request(bad, (size_t)(l101 - bad) + 1, MAXH, &m),
		-E2BIG);
	free(bad);
	bad = many_headers(DRP_HTTP_MAX_HEADERS + 1, 1);
	ck_assert_int_eq(drp_http_parse_response(bad, strlen(bad), MAXH, &m),
			 -E2BIG);
	free(ok);
	free(bad);
}
END_TEST

/* ---- re-parsing after more bytes ---- */

/* Byte by byte and at every two-piece split, _more gives INCOMPLETE until
 * the head is whole, then exactly what the full parser gives. */
START_TEST(more_matches_full)
{
	bool resp = _i >= N(good_reqs);
	const char *in =
		resp ? good_resps[_i - N(good_reqs)].in : good_reqs[_i].in;
	size_t len = strlen(in);
	drp_http_msg_t m, full;
	ssize_t want = resp ? drp_http_parse_response(in, len, MAXH, &full)
			    : drp_http_parse_request(in, len, MAXH, &full);
	ck_assert_int_eq(want, (ssize_t)len);
	size_t prev = 0;
	for (size_t n = 1; n <= len; n++) {
		char *buf = malloc(n);
		memcpy(buf, in, n);
		ssize_t r = resp ? drp_http_parse_response_more(buf, n, prev,
								MAXH, &m)
				 : drp_http_parse_request_more(buf, n, prev,
							       MAXH, &m);
		ck_assert_int_eq(r, n < len ? DRP_HTTP_INCOMPLETE : want);
		prev = n;
		free(buf);
	}
	ck_assert_uint_eq(m.num_headers, full.num_headers);
	ck_assert_uint_eq(m.head_len, full.head_len);
	for (size_t cut = 1; cut < len; cut++) {
		ssize_t r = resp ? drp_http_parse_response_more(in, cut, 0,
								MAXH, &m)
				 : drp_http_parse_request_more(in, cut, 0, MAXH,
							       &m);
		ck_assert_int_eq(r, DRP_HTTP_INCOMPLETE);
		r = resp ? drp_http_parse_response_more(in, len, cut, MAXH, &m)
			 : drp_http_parse_request_more(in, len, cut, MAXH, &m);
		ck_assert_int_eq(r, want);
	}
}
END_TEST

struct more_case {
	const char *prev; /* bytes of the last INCOMPLETE call */
	const char *add;  /* bytes that arrived since */
	int code;	  /* what _more returns */
};

static const struct more_case more_cases[] = {
	/* NUL in the new bytes: refused at once */
	{"GET / HTTP/1.1\r\n", "X: \x01", -EINVAL},
	/* DEL in the new bytes */
	{"GET / HTTP/1.1\r\nX: a", "\x7f", -EINVAL},
	/* bare LF in the new bytes */
	{"GET / HTTP/1.1\r\nX: a", "\n", -EINVAL},
	/* bare CR completed by the new bytes */
	{"GET / HTTP/1.1\r\nX: a\r", "b", -EINVAL},
	/* TLS record bytes after a valid prefix */
	{"G", "\x16\x03", -EINVAL},
	/* obs-fold needs context: deferred while the head is incomplete */
	{"GET / HTTP/1.1\r\nX: a\r\n", " b", DRP_HTTP_INCOMPLETE},
	/* ... and refused once the head is complete */
	{"GET / HTTP/1.1\r\nX: a\r\n b", "\r\n\r\n", -EINVAL},
	/* the terminator split over the old and new bytes */
	{"GET / HTTP/1.1\r\nX: a\r\n\r", "\n", 24},
	/* a complete head followed by body bytes */
	{"HTTP/1.1 200 OK\r", "\n\r\nbody", 19},
	/* obs-text in new bytes is fine */
	{"GET / HTTP/1.1\r\nX: ", "\xc3\xa9", DRP_HTTP_INCOMPLETE},
};

START_TEST(more_cases_table)
{
	const struct more_case *c = &more_cases[_i];
	size_t pl = strlen(c->prev), al = strlen(c->add);
	char *buf = malloc(pl + al);
	memcpy(buf, c->prev, pl);
	memcpy(buf + pl, c->add, al);
	drp_http_msg_t m;
	bool resp = strncmp(c->prev, "HTTP/", 5) == 0;
	ssize_t r =
		resp ? drp_http_parse_response_more(buf, pl + al, pl, MAXH, &m)
		     : drp_http_parse_request_more(buf, pl + al, pl, MAXH, &m);
	ck_assert_msg(r == c->code, "case %d: %zd want %d", _i, r, c->code);
	free(buf);
}
END_TEST

/* A head trickled in one byte per read up to the limit: 431 at the end
 * (and linear work on the way, which keeps this test fast). */
START_TEST(more_trickle)
{
	size_t max = 60000;
	char *buf = malloc(max);
	memcpy(buf, "GET / HTTP/1.1\r\nX: ", 19);
	memset(buf + 19, 'a', max - 19);
	drp_http_msg_t m;
	for (size_t n = 1; n < max; n++)
		ck_assert_int_eq(
			drp_http_parse_request_more(buf, n, n - 1, max, &m),
			DRP_HTTP_INCOMPLETE);
	ck_assert_int_eq(
		drp_http_parse_request_more(buf, max, max - 1, max, &m),
		-E2BIG);
	free(buf);
}
END_TEST

/* Empty lines before a request-line: a few are skipped, more refused. */
START_TEST(leading_empty_lines)
{
	drp_http_msg_t m;
	const char *four = "\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n";
	const char *five = "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n";
	ck_assert_int_eq(drp_http_parse_request(four, strlen(four), MAXH, &m),
			 (ssize_t)strlen(four));
	ck_assert_int_eq(memcmp(m.method, "GET", 3), 0);
	ck_assert_int_eq(drp_http_parse_request(five, strlen(five), MAXH, &m),
			 -EINVAL);
}
END_TEST

/* ---- lookups ---- */

static const char lookup_msg[] = "GET / HTTP/1.1\r\n"
				 "Host: a\r\n"
				 "Accept: text/plain\r\n"
				 "Connection: keep-alive, X-Private,Upgrade\r\n"
				 "ACCEPT: application/json\r\n"
				 "X-Private: 1\r\n"
				 "Keep-Alive: timeout=5\r\n"
				 "Proxy-Authorization: Basic eA==\r\n"
				 "Expect:  100-continue \r\n"
				 "Connection: close\r\n"
				 "X-Public: 2\r\n"
				 "TE: trailers\r\n"
				 "Cache-Control: no-cache \t, max-age=0\r\n"
				 "\r\n";

static void parse_lookup(drp_http_msg_t *m)
{
	ck_assert_int_eq(drp_http_parse_request(
				 lookup_msg, sizeof(lookup_msg) - 1, MAXH, m),
			 (ssize_t)sizeof(lookup_msg) - 1);
}

START_TEST(lookup_find)
{
	drp_http_msg_t m;
	parse_lookup(&m);
	const drp_http_header_t *h = drp_http_find(&m, "accept");
	ck_assert_ptr_eq(h, &m.headers[1]);
	h = drp_http_find_next(&m, "Accept", h);
	ck_assert_ptr_eq(h, &m.headers[3]);
	ck_assert_int_eq(memcmp(h->value, "application/json", 16), 0);
	ck_assert_ptr_null(drp_http_find_next(&m, "Accept", h));
	ck_assert_ptr_null(drp_http_find(&m, "Accep"));
	ck_assert_ptr_null(drp_http_find(&m, "Accepts"));
	ck_assert_ptr_eq(drp_http_find_next(&m, "host", NULL), &m.headers[0]);
}
END_TEST

START_TEST(lookup_tokens)
{
	drp_http_msg_t m;
	parse_lookup(&m);
	/* in the first Connection field */
	ck_assert(drp_http_has_token(&m, "connection", "KEEP-ALIVE"));
	/* no space after the comma */
	ck_assert(drp_http_has_token(&m, "Connection", "upgrade"));
	/* in the second Connection field */
	ck_assert(drp_http_has_token(&m, "Connection", "close"));
	/* OWS around the only element */
	ck_assert(drp_http_has_token(&m, "Expect", "100-continue"));
	/* a prefix of an element is no match */
	ck_assert(!drp_http_has_token(&m, "Connection", "keep"));
	/* a longer string is no match */
	ck_assert(!drp_http_has_token(&m, "Connection", "closed"));
	/* no such header */
	ck_assert(!drp_http_has_token(&m, "Upgrade", "h2c"));
	/* OWS before the comma is not part of the element */
	ck_assert(drp_http_has_token(&m, "Cache-Control", "no-cache"));
	ck_assert(drp_http_has_token(&m, "Cache-Control", "max-age=0"));
	ck_assert(drp_http_method_is(&m, "GET"));
	/* methods are case-sensitive */
	ck_assert(!drp_http_method_is(&m, "get"));
	ck_assert(!drp_http_method_is(&m, "GE"));
	ck_assert(!drp_http_method_is(&m, "GETX"));
}
END_TEST

START_TEST(lookup_hop_by_hop)
{
	drp_http_msg_t m;
	parse_lookup(&m);
	/* expected per header index of lookup_msg */
	static const bool hop[] = {
		false, /* Host */
		false, /* Accept */
		true,  /* Connection */
		false, /* ACCEPT */
		true,  /* X-Private: named by Connection */
		true,  /* Keep-Alive */
		true,  /* Proxy-Authorization */
		false, /* Expect */
		true,  /* Connection (second) */
		false, /* X-Public */
		true,  /* TE */
		false, /* Cache-Control */
	};
	ck_assert_uint_eq(m.num_headers, sizeof(hop) / sizeof(hop[0]));
	for (size_t i = 0; i < m.num_headers; i++)
		ck_assert_msg(drp_http_is_hop_by_hop(&m, &m.headers[i]) ==
				      hop[i],
			      "header %zu", i);
	/* the fixed list, from a response */
	const char *r = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
			"Trailer: X\r\nUpgrade: h2c\r\n"
			"Proxy-Authenticate: Basic\r\n"
			"Proxy-Connection: keep-alive\r\n"
			"Docker-Content-Digest: sha256:00\r\n\r\n";
	ck_assert_int_eq(drp_http_parse_response(r, strlen(r), MAXH, &m),
			 (ssize_t)strlen(r));
	for (size_t i = 0; i < 5; i++)
		ck_assert_msg(drp_http_is_hop_by_hop(&m, &m.headers[i]),
			      "header %zu", i);
	ck_assert(!drp_http_is_hop_by_hop(&m, &m.headers[5]));
}
END_TEST

/* ---- framing decisions ---- */

struct frame_case {
	const char *in;
	const char *req_method; /* NULL: the message is a request */
	int rc;
	enum drp_http_body_mode mode;
	uint64_t length;
};

static const struct frame_case frames[] = {
	/* request without body */
	{"GET / HTTP/1.1\r\n\r\n", NULL, 0, DRP_HTTP_BODY_NONE, 0},
	/* request with Content-Length */
	{"PUT / HTTP/1.1\r\nContent-Length: 1234\r\n\r\n", NULL, 0,
	 DRP_HTTP_BODY_LENGTH, 1234},
	/* request with a zero Content-Length */
	{"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", NULL, 0,
	 DRP_HTTP_BODY_LENGTH, 0},
	/* chunked request, any case and OWS */
	{"PATCH / HTTP/1.1\r\nTransfer-Encoding:  ChUnKeD \r\n\r\n", NULL, 0,
	 DRP_HTTP_BODY_CHUNKED, 0},
	/* chunked request with empty list elements */
	{"PATCH / HTTP/1.1\r\nTransfer-Encoding: , chunked ,\r\n\r\n", NULL, 0,
	 DRP_HTTP_BODY_CHUNKED, 0},
	/* largest accepted length */
	{"PUT / HTTP/1.1\r\nContent-Length: 9223372036854775807\r\n\r\n", NULL,
	 0, DRP_HTTP_BODY_LENGTH, 9223372036854775807ULL},
	/* response to GET with Content-Length */
	{"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n", "GET", 0,
	 DRP_HTTP_BODY_LENGTH, 42},
	/* response to HEAD: no body whatever the headers say */
	{"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n", "HEAD", 0,
	 DRP_HTTP_BODY_NONE, 0},
	/* chunked response to HEAD: no body */
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HEAD", 0,
	 DRP_HTTP_BODY_NONE, 0},
	/* 204: no body */
	{"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", "DELETE", 0,
	 DRP_HTTP_BODY_NONE, 0},
	/* 304: no body */
	{"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", "GET", 0,
	 DRP_HTTP_BODY_NONE, 0},
	/* 100 Continue: no body */
	{"HTTP/1.1 100 Continue\r\n\r\n", "PUT", 0, DRP_HTTP_BODY_NONE, 0},
	/* 101 Switching Protocols: no body */
	{"HTTP/1.1 101 Switching Protocols\r\n\r\n", "GET", 0,
	 DRP_HTTP_BODY_NONE, 0},
	/* 2xx to CONNECT: tunnel, no body */
	{"HTTP/1.1 200 Connection established\r\n\r\n", "CONNECT", 0,
	 DRP_HTTP_BODY_NONE, 0},
	/* non-2xx to CONNECT has a body */
	{"HTTP/1.1 407 Auth\r\nContent-Length: 5\r\n\r\n", "CONNECT", 0,
	 DRP_HTTP_BODY_LENGTH, 5},
	/* chunked response */
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", 0,
	 DRP_HTTP_BODY_CHUNKED, 0},
	/* gzip then chunked: chunked framing */
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "GET",
	 0, DRP_HTTP_BODY_CHUNKED, 0},
	/* a coding with parameters before chunked */
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip;level=1 , chunked\r\n\r\n",
	 "GET", 0, DRP_HTTP_BODY_CHUNKED, 0},
	/* final coding not chunked in a response: read until close */
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "GET", 0,
	 DRP_HTTP_BODY_EOF, 0},
	/* chunked then gzip: read until close */
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "GET",
	 0, DRP_HTTP_BODY_EOF, 0},
	/* neither header: read until close */
	{"HTTP/1.1 200 OK\r\n\r\n", "GET", 0, DRP_HTTP_BODY_EOF, 0},
	/* HTTP/1.0 response without length: until close */
	{"HTTP/1.0 200 OK\r\n\r\n", "GET", 0, DRP_HTTP_BODY_EOF, 0},
	/* error status with a body */
	{"HTTP/1.1 404 Not Found\r\nContent-Length: 19\r\n\r\n", "GET", 0,
	 DRP_HTTP_BODY_LENGTH, 19},
	/* no request method known: framing from the headers */
	{"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", NULL, 0,
	 DRP_HTTP_BODY_LENGTH, 7},
};

START_TEST(framing)
{
	const struct frame_case *c = &frames[_i];
	drp_http_msg_t m;
	bool is_resp = strncmp(c->in, "HTTP/", 5) == 0;
	ssize_t r = is_resp ? drp_http_parse_response(c->in, strlen(c->in),
						      MAXH, &m)
			    : drp_http_parse_request(c->in, strlen(c->in), MAXH,
						     &m);
	ck_assert_int_eq(r, (ssize_t)strlen(c->in));
	enum drp_http_body_mode mode = 99;
	uint64_t len = 99;
	int rc = is_resp ? drp_http_response_framing(&m, c->req_method, &mode,
						     &len)
			 : drp_http_request_framing(&m, &mode, &len);
	ck_assert_int_eq(rc, c->rc);
	ck_assert_int_eq(mode, c->mode);
	ck_assert_uint_eq(len, c->length);
}
END_TEST

/* Framing re-checks a head that was not produced by the parser. */
START_TEST(framing_rejects)
{
	drp_http_msg_t m;
	memset(&m, 0, sizeof(m));
	m.minor_version = 1;
	m.headers[0] = (drp_http_header_t){"Content-Length", 14, "5", 1};
	m.headers[1] =
		(drp_http_header_t){"transfer-encoding", 17, "chunked", 7};
	m.num_headers = 2;
	enum drp_http_body_mode mode;
	uint64_t len;
	/* CL + TE */
	ck_assert_int_eq(drp_http_request_framing(&m, &mode, &len), -EINVAL);
	m.status = 200;
	ck_assert_int_eq(drp_http_response_framing(&m, "GET", &mode, &len),
			 -EINVAL);
	/* gzip-only TE in a request */
	m.headers[0] = (drp_http_header_t){"Transfer-Encoding", 17, "gzip", 4};
	m.num_headers = 1;
	ck_assert_int_eq(drp_http_request_framing(&m, &mode, &len), -EINVAL);
	/* a bad Content-Length */
	m.headers[0] = (drp_http_header_t){"content-length", 14, "1e3", 3};
	ck_assert_int_eq(drp_http_request_framing(&m, &mode, &len), -EINVAL);
	ck_assert_int_eq(drp_http_response_framing(&m, "GET", &mode, &len),
			 -EINVAL);
}
END_TEST

/* ---- bodies ---- */

struct body_case {
	const char *in; /* raw body bytes (then one pipelined byte "X") */
	const char *payload;
};

static const struct body_case chunked_good[] = {
	/* one chunk */
	{"5\r\nhello\r\n0\r\n\r\n", "hello"},
	/* two chunks, upper-case hex */
	{"3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n", "abc0123456789"},
	/* lower-case hex and leading zeros */
	{"000a\r\n0123456789\r\n000\r\n\r\n", "0123456789"},
	/* empty body */
	{"0\r\n\r\n", ""},
	/* chunk extensions are ignored */
	{"4;name=value;q=\"a b;c\"\r\nwxyz\r\n0;last\r\n\r\n", "wxyz"},
	/* BWS before an extension and before the line end */
	{"2 ;x\r\nok\r\n0 \t\r\n\r\n", "ok"},
	/* trailers are consumed, not delivered */
	{"1\r\nZ\r\n0\r\nX-Trailer: a\r\nX-Other:\tb c\r\n\r\n", "Z"},
	/* payload containing CRLF and chunk-like bytes */
	{"7\r\n\r\n0\r\n\r\n\r\n0\r\n\r\n", "\r\n0\r\n\r\n"},
	/* sixteen hex digits are allowed (here leading zeros) */
	{"0000000000000003\r\nabc\r\n0\r\n\r\n", "abc"},
};

/* Feed `in` in pieces cut at `cuts`; collect the payload; return the total
 * consumed (or the negative error). Each piece is an exact-size copy. */
static ssize_t feed_pieces(drp_http_body_t *b, const char *in, size_t len,
			   const size_t *cuts, size_t ncuts, char *out,
			   size_t *out_len)
{
	size_t consumed = 0, start = 0;
	*out_len = 0;
	/* leftover: bytes of earlier pieces not yet consumed are re-fed
	 * with the next piece, as a real caller's buffer would do */
	for (size_t k = 0; k <= ncuts; k++) {
		size_t stop = k < ncuts ? cuts[k] : len;
		size_t n = stop - consumed;
		char *piece = malloc(n ? n : 1);
		memcpy(piece, in + consumed, n);
		size_t off = 0;
		while (off < n && !b->done) {
			const char *data;
			size_t dl;
			ssize_t c = drp_http_body_feed(b, piece + off, n - off,
						       &data, &dl);
			if (c < 0) {
				free(piece);
				return c;
			}
			ck_assert(dl <= (size_t)c);
			if (dl) {
				ck_assert(data >= piece + off &&
					  data + dl <= piece + off + (size_t)c);
				memcpy(out + *out_len, data, dl);
				*out_len += dl;
			}
			if (c == 0 && dl == 0)
				break;
			off += (size_t)c;
		}
		consumed += off;
		free(piece);
		start = stop;
	}
	(void)start;
	return (ssize_t)consumed;
}

START_TEST(chunked_every_split)
{
	const struct body_case *c = &chunked_good[_i];
	size_t blen = strlen(c->in);
	/* a pipelined next message follows the body */
	size_t len = blen + 4;
	char *in = malloc(len);
	memcpy(in, c->in, blen);
	memcpy(in + blen, "GET ", 4);
	char out[256];
	size_t out_len;
	for (size_t cut = 0; cut <= len; cut++) {
		drp_http_body_t b;
		drp_http_body_init(&b, DRP_HTTP_BODY_CHUNKED, 0);
		ssize_t r = feed_pieces(&b, in, len, &cut, 1, out, &out_len);
		ck_assert_msg(r == (ssize_t)blen, "cut %zu: %zd", cut, r);
		ck_assert(b.done);
		ck_assert_uint_eq(out_len, strlen(c->payload));
		ck_assert_int_eq(memcmp(out, c->payload, out_len), 0);
		ck_assert_uint_eq(b.total, strlen(c->payload));
	}
	/* one byte at a time */
	size_t cuts[300];
	for (size_t k = 0; k < len; k++)
		cuts[k] = k + 1;
	drp_http_body_t b;
	drp_http_body_init(&b, DRP_HTTP_BODY_CHUNKED, 0);
	ssize_t r = feed_pieces(&b, in, len, cuts, len, out, &out_len);
	ck_assert_int_eq(r, (ssize_t)blen);
	ck_assert(b.done);
	ck_assert_uint_eq(out_len, strlen(c->payload));
	ck_assert_int_eq(memcmp(out, c->payload, out_len), 0);
	/* once done, nothing more is consumed */
	const char *d;
	size_t dl;
	ck_assert_int_eq(drp_http_body_feed(&b, "GET ", 4, &d, &dl), 0);
	ck_assert_uint_eq(dl, 0);
	free(in);
}
END_TEST

/* One call reports one payload span and consumes the framing around it. */
START_TEST(chunked_spans)
{
	const char *in = "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
	drp_http_body_t b;
	drp_http_body_init(&b, DRP_HTTP_BODY_CHUNKED, 0);
	const char *d;
	size_t dl;
	ssize_t c = drp_http_body_feed(&b, in, strlen(in), &d, &dl);
	/* first span, then the CRLF and the next size line */
	ck_assert_int_eq(c, 11);
	ck_assert_uint_eq(dl, 3);
	ck_assert_ptr_eq(d, in + 3);
	ck_assert(!b.done);
	c = drp_http_body_feed(&b, in + 11, strlen(in) - 11, &d, &dl);
	ck_assert_int_eq(c, (ssize_t)strlen(in) - 11);
	ck_assert_uint_eq(dl, 2);
	ck_assert_int_eq(memcmp(d, "de", 2), 0);
	ck_assert(b.done);
	ck_assert_uint_eq(b.total, 5);
}
END_TEST

struct chunk_bad {
	const char *in;
	const char *payload; /* delivered before the error */
};

static const struct chunk_bad chunked_bad[] = {
	/* no hex digits */
	{"\r\n", ""},
	/* non-hex size */
	{"g\r\n", ""},
	/* size with a sign */
	{"+5\r\nhello\r\n0\r\n\r\n", ""},
	/* 0x prefix */
	{"0x5\r\nhello\r\n0\r\n\r\n", ""},
	/* seventeen hex digits: overflow */
	{"10000000000000000\r\n", ""},
	/* seventeen digits even if leading zeros */
	{"00000000000000001\r\n", ""},
	/* junk after the digits */
	{"5x\r\nhello\r\n0\r\n\r\n", ""},
	/* digits separated by a space */
	{"5 5\r\n", ""},
	/* bare LF after the size */
	{"5\nhello\r\n0\r\n\r\n", ""},
	/* bare CR after the size */
	{"5\rhello\r\n0\r\n\r\n", ""},
	/* bare LF inside an extension */
	{"5;a\nb\r\nhello\r\n0\r\n\r\n", ""},
	/* data longer than the size */
	{"3\r\nabcd\r\n0\r\n\r\n", "abc"},
	/* data shorter than the size: the next size line eaten, then junk */
	{"5\r\nabc\r\n0\r\n\r\n", "abc\r\n"},
	/* missing LF after the data */
	{"3\r\nabc\rX", "abc"},
	/* bare LF after the data */
	{"3\r\nabc\n0\r\n\r\n", "abc"},
	/* obs-fold in the trailers */
	{"0\r\nX: a\r\n b\r\n\r\n", ""},
	/* trailer without a colon */
	{"0\r\nX\r\n\r\n", ""},
	/* space before the colon in a trailer */
	{"0\r\nX : a\r\n\r\n", ""},
	/* bare LF ending a trailer */
	{"0\r\nX: a\n\r\n", ""},
	/* CTL in a trailer value */
	{"0\r\nX: \x01\r\n\r\n", ""},
	/* CR not followed by LF in a trailer */
	{"0\r\nX: a\rY", ""},
	/* final CR not followed by LF */
	{"0\r\n\rX", ""},
};

START_TEST(chunked_malformed)
{
	const struct chunk_bad *c = &chunked_bad[_i];
	size_t len = strlen(c->in);
	/* whole, and split at every position: always -EINVAL with exactly
	 * the same payload delivered before it */
	for (size_t cut = 0; cut <= len; cut++) {
		drp_http_body_t b;
		drp_http_body_init(&b, DRP_HTTP_BODY_CHUNKED, 0);
		char out[64];
		size_t out_len;
		ssize_t r = feed_pieces(&b, c->in, len, &cut, 1, out, &out_len);
		ck_assert_msg(r == -EINVAL, "case %d cut %zu: %zd", _i, cut, r);
		ck_assert(!b.done);
		ck_assert_uint_eq(out_len, strlen(c->payload));
		ck_assert_int_eq(memcmp(out, c->payload, out_len), 0);
	}
}
END_TEST

/* Long extension and trailer lines are bounded. */
START_TEST(chunked_limits)
{
	size_t n = 10000;
	char *in = malloc(n);
	drp_http_body_t b;
	const char *d;
	size_t dl;
	/* an extension line over 8 KiB */
	memset(in, 'a', n);
	memcpy(in, "1;", 2);
	drp_http_body_init(&b, DRP_HTTP_BODY_CHUNKED, 0);
	ssize_t r = 0, off = 0;
	while ((r = drp_http_body_feed(&b, in + off, n - (size_t)off, &d,
				       &dl)) > 0)
		off += r;
	ck_assert_int_eq(r, -EINVAL);
	ck_assert_int_lt(off, 8200);
	/* a trailer line over 8 KiB */
	memcpy(in, "0\r\nX:", 5);
	drp_http_body_init(&b, DRP_HTTP_BODY_CHUNKED, 0);
	off = 0;
	while ((r = drp_http_body_feed(&b, in + off, n - (size_t)off, &d,
				       &dl)) > 0)
		off += r;
	ck_assert_int_eq(r, -EINVAL);
	/* many short trailer lines: 64 KiB in total */
	drp_http_body_init(&b, DRP_HTTP_BODY_CHUNKED, 0);
	ck_assert_int_eq(drp_http_body_feed(&b, "0\r\n", 3, &d, &dl), 3);
	size_t fed = 0;
	const char *line = "Xx: 0123456789\r\n";
	for (off = 0; fed < 1000000; fed += (size_t)r) {
		r = drp_http_body_feed(&b, line + off, 16 - (size_t)off, &d,
				       &dl);
		if (r < 0)
			break;
		ck_assert_uint_eq(dl, 0);
		off = (off + r) % 16;
	}
	ck_assert_int_eq(r, -EINVAL);
	/* 64 KiB counts name and value bytes, 14 of 16 per line */
	ck_assert_uint_eq(fed, 65536 / 14 * 16 + 65536 % 14);
	/* the largest chunk size is accepted and counted down */
	drp_http_body_init(&b, DRP_HTTP_BODY_CHUNKED, 0);
	ck_assert_int_eq(
		drp_http_body_feed(&b, "ffffffffffffffff\r\nab", 20, &d, &dl),
		20);
	ck_assert_uint_eq(dl, 2);
	ck_assert_uint_eq(b.remaining, UINT64_MAX - 2);
	free(in);
}
END_TEST

START_TEST(length_body)
{
	const char *in = "0123456789NEXT";
	for (size_t cut = 0; cut <= 14; cut++) {
		drp_http_body_t b;
		drp_http_body_init(&b, DRP_HTTP_BODY_LENGTH, 10);
		char out[16];
		size_t out_len;
		ssize_t r = feed_pieces(&b, in, 14, &cut, 1, out, &out_len);
		ck_assert_int_eq(r, 10);
		ck_assert(b.done);
		ck_assert_uint_eq(out_len, 10);
		ck_assert_int_eq(memcmp(out, "0123456789", 10), 0);
		ck_assert_uint_eq(b.total, 10);
		ck_assert_uint_eq(b.remaining, 0);
	}
	/* zero length: done at once, nothing consumed */
	drp_http_body_t b;
	const char *d;
	size_t dl;
	drp_http_body_init(&b, DRP_HTTP_BODY_LENGTH, 0);
	ck_assert(b.done);
	ck_assert_int_eq(drp_http_body_feed(&b, "GET", 3, &d, &dl), 0);
	ck_assert_uint_eq(dl, 0);
	/* no body */
	drp_http_body_init(&b, DRP_HTTP_BODY_NONE, 5);
	ck_assert(b.done);
	ck_assert_int_eq(drp_http_body_feed(&b, "GET", 3, &d, &dl), 0);
	/* EOF: everything is payload until the caller sets done */
	drp_http_body_init(&b, DRP_HTTP_BODY_EOF, 0);
	ck_assert(!b.done);
	ck_assert_int_eq(drp_http_body_feed(&b, "abc", 3, &d, &dl), 3);
	ck_assert_uint_eq(dl, 3);
	ck_assert_int_eq(drp_http_body_feed(&b, "de", 2, &d, &dl), 2);
	ck_assert_int_eq(memcmp(d, "de", 2), 0);
	ck_assert_uint_eq(b.total, 5);
	ck_assert(!b.done);
	ck_assert_int_eq(drp_http_body_feed(&b, "", 0, &d, &dl), 0);
}
END_TEST

START_TEST(reasons)
{
	ck_assert_str_eq(drp_http_reason(200), "OK");
	ck_assert_str_eq(drp_http_reason(404), "Not Found");
	ck_assert_str_eq(drp_http_reason(421), "Misdirected Request");
	ck_assert_str_eq(drp_http_reason(431),
			 "Request Header Fields Too Large");
	ck_assert_str_eq(drp_http_reason(502), "Bad Gateway");
	ck_assert_str_eq(drp_http_reason(505), "HTTP Version Not Supported");
	ck_assert_str_eq(drp_http_reason(299), "Unknown");
	ck_assert_str_eq(drp_http_reason(-1), "Unknown");
}
END_TEST

/* ---- Range (RFC 9110 §14.1.2, §14.2) ---- */

#define OPEN UINT64_MAX

struct range_case {
	const char *in;
	bool ok; /* false: ignored, the whole body is sent (200) */
	bool suffix;
	uint64_t first, last;
};

static const struct range_case ranges[] = {
	{"bytes=0-0", true, false, 0, 0},
	{"bytes=0-499", true, false, 0, 499},
	{"bytes=500-", true, false, 500, OPEN},
	{"bytes=-500", true, true, 0, 500},
	{"bytes=-0", true, true, 0, 0},
	{"BYTES=3-4", true, false, 3, 4},
	{"bytes=7-7", true, false, 7, 7},
	{"bytes=999999999-", true, false, 999999999, OPEN},
	/* list syntax: whitespace around elements, empty elements */
	{"bytes= 1-2", true, false, 1, 2},
	{"bytes=1-2 ,", true, false, 1, 2},
	{"bytes=,1-2", true, false, 1, 2},
	/* too large for 64 bits: saturated, still one valid range */
	{"bytes=99999999999999999999999-", true, false, OPEN, OPEN},
	{"bytes=0-99999999999999999999999", true, false, 0, OPEN},
	/* syntactically invalid: ignored */
	{"bytes= -5-", false, false, 0, 0},
	{"bytes=-5-", false, false, 0, 0},
	{"bytes=abc", false, false, 0, 0},
	{"bytes=5", false, false, 0, 0},
	{"bytes=-", false, false, 0, 0},
	{"bytes=", false, false, 0, 0},
	{"bytes=,", false, false, 0, 0},
	{"bytes=5-4", false, false, 0, 0},
	{"bytes=+5-", false, false, 0, 0},
	{"bytes=-+5", false, false, 0, 0},
	{"bytes=--5", false, false, 0, 0},
	{"bytes=0x10-", false, false, 0, 0},
	{"bytes=1 -2", false, false, 0, 0},
	{"bytes=1- 2", false, false, 0, 0},
	{"bytes=1-2;", false, false, 0, 0},
	{"bytes 0-1", false, false, 0, 0},
	{"bytes:0-1", false, false, 0, 0},
	{"items=0-1", false, false, 0, 0},
	{"byte=0-1", false, false, 0, 0},
	{"", false, false, 0, 0},
	/* several ranges: never served as multipart, ignored */
	{"bytes=0-0,5-6", false, false, 0, 0},
	{"bytes=0-0, -1", false, false, 0, 0},
	{"bytes=0-1,0-1", false, false, 0, 0},
	/* one invalid element spoils the set */
	{"bytes=0-0,abc", false, false, 0, 0},
};

START_TEST(range_parse)
{
	const struct range_case *c = &ranges[_i];
	drp_http_range_t r = {.first = 42, .last = 42};
	bool ok = drp_http_range_parse(c->in, strlen(c->in), &r);
	ck_assert_msg(ok == c->ok, "'%s': parse %d, want %d", c->in, ok, c->ok);
	if (!ok)
		return;
	ck_assert_msg(r.suffix == c->suffix && r.first == c->first &&
			      r.last == c->last,
		      "'%s': got suffix=%d %llu-%llu", c->in, r.suffix,
		      (unsigned long long)r.first, (unsigned long long)r.last);
}
END_TEST

/* The value is not NUL-terminated: the parser stops at len. */
START_TEST(range_parse_len)
{
	drp_http_range_t r;
	ck_assert(drp_http_range_parse("bytes=1-2,3-4", 9, &r));
	ck_assert_uint_eq(r.first, 1);
	ck_assert_uint_eq(r.last, 2);
	ck_assert(!drp_http_range_parse("bytes=1-2", 5, &r));
}
END_TEST

struct resolve_case {
	const char *in;
	uint64_t size;
	int want; /* 0 or -ERANGE (416) */
	uint64_t first, last;
};

static const struct resolve_case resolves[] = {
	{"bytes=0-0", 10, 0, 0, 0},
	{"bytes=0-9", 10, 0, 0, 9},
	{"bytes=0-100", 10, 0, 0, 9},
	{"bytes=9-", 10, 0, 9, 9},
	{"bytes=3-", 10, 0, 3, 9},
	{"bytes=-3", 10, 0, 7, 9},
	{"bytes=-10", 10, 0, 0, 9},
	{"bytes=-11", 10, 0, 0, 9},
	{"bytes=0-99999999999999999999999", 10, 0, 0, 9},
	/* unsatisfiable: first-pos at or past the end, empty suffix, or an
	 * empty body */
	{"bytes=10-", 10, -ERANGE, 0, 0},
	{"bytes=10-20", 10, -ERANGE, 0, 0},
	{"bytes=999999999-", 10, -ERANGE, 0, 0},
	{"bytes=99999999999999999999999-", 10, -ERANGE, 0, 0},
	{"bytes=-0", 10, -ERANGE, 0, 0},
	{"bytes=0-", 0, -ERANGE, 0, 0},
	{"bytes=-5", 0, -ERANGE, 0, 0},
};

START_TEST(range_resolve)
{
	const struct resolve_case c = resolves[_i];
	drp_http_range_t r;
	ck_assert(drp_http_range_parse(c.in, strlen(c.in), &r));
	uint64_t first = 77, last = 77;
	int got = drp_http_range_resolve(&r, c.size, &first, &last);
	ck_assert_msg(got == c.want, "'%s' of %llu: %d, want %d", c.in,
		      (unsigned long long)c.size, got, c.want);
	if (got == 0) {
		ck_assert_uint_eq(first, c.first);
		ck_assert_uint_eq(last, c.last);
		ck_assert_uint_le(first, last);
		ck_assert_uint_lt(last, c.size);
	}
}
END_TEST

Suite *http_suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("head");
	tcase_add_loop_test(tc, request_valid, 0, N(good_reqs));
	tcase_add_loop_test(tc, request_incremental, 0, N(good_reqs));
	tcase_add_loop_test(tc, request_malformed, 0, N(bad_reqs));
	tcase_add_loop_test(tc, response_valid, 0, N(good_resps));
	tcase_add_loop_test(tc, response_incremental, 0, N(good_resps));
	tcase_add_loop_test(tc, response_malformed, 0, N(bad_resps));
	tcase_add_test(tc, early_rejection);
	tcase_add_test(tc, nul_bytes);
	tcase_add_test(tc, pipelined);
	tcase_add_test(tc, head_limit);
	tcase_add_test(tc, header_count_limit);
	tcase_add_test(tc, leading_empty_lines);
	suite_add_tcase(s, tc);

	tc = tcase_create("more");
	tcase_add_loop_test(tc, more_matches_full, 0,
			    N(good_reqs) + N(good_resps));
	tcase_add_loop_test(tc, more_cases_table, 0, N(more_cases));
	tcase_add_test(tc, more_trickle);
	suite_add_tcase(s, tc);

	tc = tcase_create("lookup");
	tcase_add_test(tc, lookup_find);
	tcase_add_test(tc, lookup_tokens);
	tcase_add_test(tc, lookup_hop_by_hop);
	tcase_add_test(tc, reasons);
	suite_add_tcase(s, tc);

	tc = tcase_create("framing");
	tcase_add_loop_test(tc, framing, 0, N(frames));
	tcase_add_test(tc, framing_rejects);
	suite_add_tcase(s, tc);

	tc = tcase_create("body");
	tcase_add_loop_test(tc, chunked_every_split, 0, N(chunked_good));
	tcase_add_test(tc, chunked_spans);
	tcase_add_loop_test(tc, chunked_malformed, 0, N(chunked_bad));
	tcase_add_test(tc, chunked_limits);
	tcase_add_test(tc, length_body);
	suite_add_tcase(s, tc);

	tc = tcase_create("range");
	tcase_add_loop_test(tc, range_parse, 0, N(ranges));
	tcase_add_test(tc, range_parse_len);
	tcase_add_loop_test(tc, range_resolve, 0, N(resolves));
	suite_add_tcase(s, tc);
	return s;
}
