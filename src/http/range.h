/* SPDX-License-Identifier: MIT */
/*
 * The Range request header (RFC 9110 §14.1.2, §14.2) for byte ranges.
 *
 * The proxy serves one byte range (206) and never multipart/byteranges:
 *  - no header, another unit, a syntactically invalid value, or several
 *    ranges: the field is ignored and the whole body is sent (200), as
 *    RFC 9110 allows ("a server MAY ignore the Range header field");
 *  - one valid range that the body satisfies: 206 with Content-Range;
 *  - one valid range that it does not (first-pos at or past the end,
 *    or a zero-length suffix): 416 with "Content-Range: bytes * /SIZE".
 * Pure functions, thread-safe.
 */
#ifndef DRP_HTTP_RANGE_H
#define DRP_HTTP_RANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct drp_http_range {
	bool suffix;	/* "bytes=-N": the last N (= last) bytes */
	uint64_t first; /* first-pos (0 for a suffix) */
	/* last-pos, UINT64_MAX when open-ended ("bytes=N-"); for a suffix,
	 * its length. Numbers too large for 64 bits are UINT64_MAX. */
	uint64_t last;
} drp_http_range_t;

/* Parses a Range field value (len bytes, not NUL-terminated). Returns
 * true and fills *r for exactly one valid byte range; false when the
 * field is to be ignored (see above). */
bool drp_http_range_parse(const char *v, size_t len, drp_http_range_t *r);

/* Resolves a parsed range against a body of `size` bytes: 0 and the
 * inclusive span [*first, *last], or -ERANGE when it is unsatisfiable
 * (416). */
int drp_http_range_resolve(const drp_http_range_t *r, uint64_t size,
			   uint64_t *first, uint64_t *last);

#endif
