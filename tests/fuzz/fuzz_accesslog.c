/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the access log's two formats (proxy/accesslog.c), given
 * whatever a client can put in a line: the method, path, proxy user name,
 * User-Agent, and the CONNECT host.
 *
 * The input is split at NUL bytes into method, path, user, ua, host and
 * client (a field left out is NULL). Every line must be one line: a
 * single '\n', at its end. The text line has only printable ASCII and
 * exactly 14 fields, none empty, the User-Agent's in double quotes. The JSON
 * line parses (jansson) as an object of exactly the 14 documented members, and
 * each string decodes to its input cut at its bound, with every byte that is
 * not part of a well-formed UTF-8 sequence (Unicode 15, table 3-7) replaced by
 * U+FFFD: nothing a client sends can forge a field or break a log pipeline's
 * parser.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/accesslog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                               \
	do {                                                                   \
		if (!(x)) {                                                    \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #x);                                 \
			abort();                                               \
		}                                                              \
	} while (0)

/* The bounds accesslog.c documents (in bytes of the field). */
enum { METHOD_MAX = 32, PATH_MAX_LOG = 2048, USER_MAX = 255, UA_MAX = 256 };

/* Length of the well-formed UTF-8 sequence at s (table 3-7 of the
 * Unicode standard, written out by its rows), 0 if there is none. */
static size_t wellformed(const unsigned char *s, size_t len)
{
	static const struct {
		unsigned char first_lo, first_hi;
		unsigned char lo[3], hi[3];
		size_t n;
	} rows[] = {
		{0xc2, 0xdf, {0x80}, {0xbf}, 2},
		{0xe0, 0xe0, {0xa0, 0x80}, {0xbf, 0xbf}, 3},
		{0xe1, 0xec, {0x80, 0x80}, {0xbf, 0xbf}, 3},
		{0xed, 0xed, {0x80, 0x80}, {0x9f, 0xbf}, 3},
		{0xee, 0xef, {0x80, 0x80}, {0xbf, 0xbf}, 3},
		{0xf0, 0xf0, {0x90, 0x80, 0x80}, {0xbf, 0xbf, 0xbf}, 4},
		{0xf1, 0xf3, {0x80, 0x80, 0x80}, {0xbf, 0xbf, 0xbf}, 4},
		{0xf4, 0xf4, {0x80, 0x80, 0x80}, {0x8f, 0xbf, 0xbf}, 4},
	};
	for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
		if (s[0] < rows[r].first_lo || s[0] > rows[r].first_hi)
			continue;
		if (len < rows[r].n)
			return 0;
		for (size_t i = 1; i < rows[r].n; i++)
			if (s[i] < rows[r].lo[i - 1] ||
			    s[i] > rows[r].hi[i - 1])
				return 0;
		return rows[r].n;
	}
	return 0;
}

/* What a JSON string of s (at most max bytes) must decode to: malloc'd. */
static char *expected(const char *s, size_t max)
{
	size_t len = strnlen(s, max);
	char *out = malloc(len * 3 + 1), *o = out;
	CHECK(out != NULL);
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < len;) {
		size_t n = p[i] < 0x80 ? 1 : wellformed(p + i, len - i);
		if (n == 0) {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(o, p + i, n);
			o += n;
			i += n;
		}
	}
	*o = '\0';
	return out;
}

static void check_member(json_t *obj, const char *key, const char *in,
			 size_t max)
{
	json_t *v = json_object_get(obj, key);
	CHECK(v != NULL);
	if (in == NULL) {
		CHECK(json_is_null(v));
		return;
	}
	CHECK(json_is_string(v));
	char *want = expected(in, max);
	CHECK(strcmp(json_string_value(v), want) == 0);
	free(want);
}

static void check_text(const char *line, size_t n)
{
	CHECK(n > 0 && line[n - 1] == '\n' && strlen(line) == n);
	unsigned fields = 1, quotes = 0;
	bool in_quotes = false;
	for (size_t i = 0; i + 1 < n; i++) {
		unsigned char c = (unsigned char)line[i];
		CHECK(c >= 0x20 && c < 0x7f);
		if (c == '"') {
			quotes++;
			in_quotes = !in_quotes;
		} else if (c == ' ' && !in_quotes) {
			/* No field is empty: awk and cut see 14. */
			CHECK(i > 0 && line[i + 1] != ' ' &&
			      line[i + 1] != '\n');
			fields++;
		}
	}
	CHECK(fields == 14);
	/* Only the User-Agent is quoted, the last field. */
	CHECK(quotes == 0 || (quotes == 2 && line[n - 2] == '"'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* method \0 path \0 user \0 ua \0 host \0 client */
	char *copy = malloc(size + 1);
	CHECK(copy != NULL);
	memcpy(copy, data, size);
	copy[size] = '\0';
	const char *field[6] = {NULL};
	char *p = copy, *end = copy + size;
	for (unsigned i = 0; i < 6 && p <= end; i++) {
		field[i] = p;
		p += strlen(p) + 1;
	}
	drp_access_t a = {
		.client = field[5] ? field[5] : "10.0.0.7",
		.host = field[4],
		.port = 443,
		.method = field[0],
		.path = field[1],
		.status = 200,
		.bytes_in = size,
		.bytes_out = (uint64_t)size * 1000,
		.duration = (double)size / 1000.0,
		.up_status = size % 2 ? 200 : 0,
		.result = size % 3 ? "MISS" : "TLS_ERROR",
		.user = field[2],
		.conn = (unsigned)size,
		.ua = field[3],
	};
	static char line[20 * 1024];

	size_t n = drp_accesslog_format(&a, 1795000000.25, line, sizeof(line));
	check_text(line, n);

	n = drp_accesslog_format_json(&a, 1795000000.25, line, sizeof(line));
	CHECK(n > 2 && strlen(line) == n &&
	      memchr(line, '\n', n) == line + n - 1);
	json_error_t err;
	json_t *o = json_loadb(line, n, 0, &err);
	if (o == NULL)
		fprintf(stderr, "%s: %s\n", err.text, line);
	CHECK(o != NULL && json_is_object(o));
	CHECK(json_object_size(o) == 14);
	check_member(o, "method", a.method, METHOD_MAX);
	const char *path = a.path && a.path[0] ? a.path : NULL;
	size_t plen = path ? strcspn(path, "?#") : 0;
	check_member(o, "path", path,
		     plen < PATH_MAX_LOG ? plen : PATH_MAX_LOG);
	check_member(o, "user", a.user && a.user[0] ? a.user : NULL, USER_MAX);
	check_member(o, "ua", a.ua, UA_MAX);
	check_member(o, "client", a.client, 64);
	if (a.host != NULL) {
		char hp[300];
		bool v6 = strchr(a.host, ':') != NULL;
		snprintf(hp, sizeof(hp), "%s%.256s%s:443", v6 ? "[" : "",
			 a.host, v6 ? "]" : "");
		check_member(o, "host", hp, sizeof(hp));
	} else {
		CHECK(json_is_null(json_object_get(o, "host")));
	}
	CHECK(json_integer_value(json_object_get(o, "bytes_in")) ==
	      (json_int_t)size);
	json_decref(o);
	free(copy);
	return 0;
}
