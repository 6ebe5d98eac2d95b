/* SPDX-License-Identifier: MIT */
#include "proxy/accesslog.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "proxy/server.h"

/* Append s, %-escaping bytes that would break the line's fields. */
static size_t put_escaped(char *out, size_t size, size_t n, const char *s,
			  size_t max)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; s[i] && i < max && n + 4 < size; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch <= 0x20 || ch >= 0x7f || ch == '%' || ch == '"') {
			out[n++] = '%';
			out[n++] = hex[ch >> 4];
			out[n++] = hex[ch & 15];
		} else {
			out[n++] = (char)ch;
		}
	}
	return n;
}

size_t drp_accesslog_format(const drp_access_t *a, double now, char *buf,
			    size_t size)
{
	time_t secs = (time_t)now;
	struct tm tm;
	gmtime_r(&secs, &tm);
	size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	int r = snprintf(buf + n, size - n, ".%03dZ %s ",
			 (int)((now - (double)secs) * 1000.0) % 1000,
			 a->client ? a->client : "-");
	n += r > 0 ? (size_t)r : 0;
	if (a->host && n < size) {
		bool v6 = strchr(a->host, ':') != NULL;
		r = snprintf(buf + n, size - n, "%s%s%s:%u ", v6 ? "[" : "",
			     a->host, v6 ? "]" : "", a->port);
		n += r > 0 ? (size_t)r : 0;
	} else if (n + 2 < size) {
		buf[n++] = '-';
		buf[n++] = ' ';
	}
	if (n >= size - 1)
		n = size - 1;
	n = put_escaped(buf, size, n, a->method ? a->method : "-", 32);
	if (n + 1 < size)
		buf[n++] = ' ';
	const char *path = a->path && a->path[0] ? a->path : "-";
	size_t plen = strcspn(path, "?#");
	n = put_escaped(buf, size, n, path, plen > 2048 ? 2048 : plen);
	if (n < size - 1) {
		char up[16] = "-";
		if (a->up_status > 0)
			snprintf(up, sizeof(up), "%d", a->up_status);
		r = snprintf(buf + n, size - n, " %d %llu %llu %.0f %s %s ",
			     a->status, (unsigned long long)a->bytes_in,
			     (unsigned long long)a->bytes_out,
			     a->duration * 1000.0, up,
			     a->result ? a->result : "-");
		n += r > 0 ? (size_t)r : 0;
		if (n >= size - 1)
			n = size - 1;
		n = put_escaped(buf, size, n,
				a->user && a->user[0] ? a->user : "-", 255);
		if (n + 1 < size)
			buf[n++] = '\n';
	}
	if (n >= size - 1) {
		/* Cut short: still one line. */
		n = size - 1;
		buf[n - 1] = '\n';
	}
	buf[n] = '\0';
	return n;
}

void drp_accesslog_write(const drp_runtime_t *rt, const drp_access_t *a)
{
	if (rt->access_fd < 0)
		return;
	struct timeval tv;
	gettimeofday(&tv, NULL);
	char line[4096];
	size_t n = drp_accesslog_format(
		a, (double)tv.tv_sec + (double)tv.tv_usec / 1e6, line,
		sizeof(line));
	ssize_t w = write(rt->access_fd, line, n);
	(void)w;
}
