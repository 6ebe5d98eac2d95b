/* SPDX-License-Identifier: MIT */
/* Header blocks ("Name: value\r\n" lines) as the auth layer edits them:
 * the headers of an upstream attempt, and of the answers plugins read. */
#include "auth/auth_int.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "util/mem.h"

static bool line_is(const char *line, size_t len, const char *name)
{
	size_t n = strlen(name);
	return len > n && line[n] == ':' && strncasecmp(line, name, n) == 0;
}

void drp_auth_headers_del(drp_buf_t *h, const char *name)
{
	drp_buf_t out = {0};
	const char *p = drp_buf_head(h), *end = p + drp_buf_pending(h);
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *next = eol ? eol + 1 : end;
		if (!line_is(p, (size_t)(next - p), name))
			drp_buf_append(&out, p, (size_t)(next - p));
		p = next;
	}
	if (h->data != NULL)
		explicit_bzero(h->data, h->cap);
	drp_buf_free(h);
	*h = out;
}

void drp_auth_headers_set(drp_buf_t *h, const char *name, const char *value)
{
	drp_auth_headers_del(h, name);
	drp_buf_printf(h, "%s: %s\r\n", name, value);
}

char *drp_auth_headers_get(const drp_buf_t *h, const char *name)
{
	const char *p = drp_buf_head(h), *end = p + drp_buf_pending(h);
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *next = eol ? eol + 1 : end;
		if (line_is(p, (size_t)(next - p), name)) {
			const char *v = p + strlen(name) + 1;
			const char *e = next;
			while (v < e && (*v == ' ' || *v == '\t'))
				v++;
			while (e > v && (e[-1] == '\n' || e[-1] == '\r' ||
					 e[-1] == ' ' || e[-1] == '\t'))
				e--;
			return drp_strndup(v, (size_t)(e - v));
		}
		p = next;
	}
	return NULL;
}

bool drp_auth_header_ok(const char *name, const char *value)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~";
	if (name == NULL || value == NULL || *name == '\0')
		return false;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && strchr(tchar, *p) == NULL)
			return false;
	for (const unsigned char *p = (const unsigned char *)value; *p; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return false;
	return true;
}
