/* SPDX-License-Identifier: MIT */
/*
 * Range request header parsing. See range.h.
 */
#include <errno.h>
#include <strings.h>

#include "http/range.h"

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* 1*DIGIT at *p (no sign, no space): the value, saturated at UINT64_MAX.
 * Returns false when there is no digit. */
static bool digits(const char **p, const char *end, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	while (s < end && *s >= '0' && *s <= '9') {
		unsigned d = (unsigned)(*s - '0');
		v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
		s++;
	}
	if (s == *p)
		return false;
	*p = s;
	*out = v;
	return true;
}

/* range-spec = int-range / suffix-range, on exactly [s, end). */
static bool range_spec(const char *s, const char *end, drp_http_range_t *r)
{
	*r = (drp_http_range_t){0};
	if (s < end && *s == '-') {
		s++;
		r->suffix = true;
		return digits(&s, end, &r->last) && s == end;
	}
	if (!digits(&s, end, &r->first) || s == end || *s++ != '-')
		return false;
	if (s == end) {
		r->last = UINT64_MAX;
		return true;
	}
	/* A last-pos below first-pos makes the range-spec invalid. */
	return digits(&s, end, &r->last) && s == end && r->last >= r->first;
}

bool drp_http_range_parse(const char *v, size_t len, drp_http_range_t *r)
{
	const char *p = v, *end = v + len;
	if (len < 6 || strncasecmp(p, "bytes=", 6) != 0)
		return false;
	p += 6;
	/* range-set = 1#range-spec: commas with optional whitespace, empty
	 * elements tolerated (RFC 9110 §5.6.1.2). */
	unsigned n = 0;
	while (p < end) {
		while (p < end && (is_ows(*p) || *p == ','))
			p++;
		if (p == end)
			break;
		const char *e = p;
		while (e < end && *e != ',' && !is_ows(*e))
			e++;
		drp_http_range_t one;
		if (!range_spec(p, e, &one))
			return false;
		p = e;
		while (p < end && is_ows(*p))
			p++;
		if (p < end && *p != ',')
			return false; /* whitespace inside a range-spec */
		if (n++ == 0)
			*r = one;
	}
	/* Several ranges: never served as multipart, so ignored. */
	return n == 1;
}

int drp_http_range_resolve(const drp_http_range_t *r, uint64_t size,
			   uint64_t *first, uint64_t *last)
{
	if (r->suffix) {
		if (r->last == 0 || size == 0)
			return -ERANGE;
		*first = r->last >= size ? 0 : size - r->last;
		*last = size - 1;
		return 0;
	}
	if (r->first >= size)
		return -ERANGE;
	*first = r->first;
	*last = r->last >= size ? size - 1 : r->last;
	return 0;
}
