/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the Range request header (http/range.c), which decides
 * which bytes of a cached blob are served. Checked against a plain
 * reference model written from RFC 9110 §14.1.1 (split the set on
 * commas, trim OWS, skip empty elements, exactly one range-spec of
 * digits and one '-'; numbers saturate at UINT64_MAX), and resolving
 * against sizes (some taken from the input) must give a non-empty span
 * inside the body, the span the model computes.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/range.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant names itself, then aborts (a finding). */
#define CHECK(x)                                                               \
	do {                                                                   \
		if (!(x)) {                                                    \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #x);                                 \
			abort();                                               \
		}                                                              \
	} while (0)

/* Digits in [s, e) only; saturating. */
static bool num(const char *s, const char *e, uint64_t *v)
{
	if (s == e)
		return false;
	unsigned __int128 x = 0;
	for (; s < e; s++) {
		if (*s < '0' || *s > '9')
			return false;
		x = x * 10 + (unsigned)(*s - '0');
		if (x > UINT64_MAX)
			x = (unsigned __int128)UINT64_MAX + 1;
	}
	*v = x > UINT64_MAX ? UINT64_MAX : (uint64_t)x;
	return true;
}

static bool model(const char *v, size_t len, drp_http_range_t *out)
{
	if (len < 6 || strncasecmp(v, "bytes=", 6) != 0)
		return false;
	const char *p = v + 6, *end = v + len;
	unsigned n = 0;
	while (p <= end) {
		const char *c = memchr(p, ',', (size_t)(end - p));
		const char *e = c ? c : end;
		const char *s = p, *t = e;
		while (s < t && (*s == ' ' || *s == '\t'))
			s++;
		while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
			t--;
		if (s < t) {
			drp_http_range_t r = {0};
			const char *dash = memchr(s, '-', (size_t)(t - s));
			if (dash == NULL)
				return false;
			if (dash == s) {
				r.suffix = true;
				if (!num(s + 1, t, &r.last))
					return false;
			} else {
				if (!num(s, dash, &r.first))
					return false;
				if (dash + 1 == t)
					r.last = UINT64_MAX;
				else if (!num(dash + 1, t, &r.last) ||
					 r.last < r.first)
					return false;
			}
			if (n++ == 0)
				*out = r;
		}
		if (c == NULL)
			break;
		p = c + 1;
	}
	return n == 1;
}

static void resolve(const drp_http_range_t *r, uint64_t size)
{
	uint64_t first, last;
	int rc = drp_http_range_resolve(r, size, &first, &last);
	bool sat = r->suffix ? r->last > 0 && size > 0 : r->first < size;
	CHECK((rc == 0) == sat);
	if (rc != 0) {
		CHECK(rc == -ERANGE);
		return;
	}
	CHECK(first <= last && last < size);
	if (r->suffix) {
		CHECK(last == size - 1);
		CHECK(last - first + 1 == (r->last < size ? r->last : size));
	} else {
		CHECK(first == r->first);
		CHECK(last == (r->last < size ? r->last : size - 1));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *v = (const char *)data;
	drp_http_range_t r, m = {0};
	bool ok = drp_http_range_parse(v, size, &r);
	bool mok = model(v, size, &m);
	CHECK(ok == mok);
	if (!ok)
		return 0;
	CHECK(r.suffix == m.suffix && r.first == m.first && r.last == m.last);
	CHECK(r.suffix ? r.first == 0 : r.first <= r.last);
	static const uint64_t sizes[] = {
		0, 1, 2, 10, 4096, UINT64_MAX - 1, UINT64_MAX};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		resolve(&r, sizes[i]);
	/* sizes around the range's own numbers */
	const uint64_t near[] = {r.first, r.last};
	for (size_t i = 0; i < 2; i++)
		for (int d = -1; d <= 1; d++)
			resolve(&r, near[i] + (uint64_t)(int64_t)d);
	return 0;
}
