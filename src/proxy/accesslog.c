/* SPDX-License-Identifier: MIT */
#include "proxy/accesslog.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "proxy/server.h"
#include "util/buf.h"
#include "util/metrics.h"

/* Bounds on what one line takes of each field. */
#define METHOD_MAX   32
#define PATH_MAX_LOG 2048
#define USER_MAX     255
#define UA_MAX	     256
#define CLIENT_MAX   64
#define HOST_MAX     256

static const char *nonempty(const char *s)
{
	return s && s[0] ? s : "-";
}

/* Append s, %-escaping bytes that would break the line's fields (the
 * blank too unless space_ok: a quoted field may hold it). */
static size_t put_escaped(char *out, size_t size, size_t n, const char *s,
			  size_t max, bool space_ok)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; s[i] && i < max && n + 4 < size; i++) {
		unsigned char ch = (unsigned char)s[i];
		if ((ch < 0x20 || (ch == 0x20 && !space_ok)) || ch >= 0x7f ||
		    ch == '%' || ch == '"') {
			out[n++] = '%';
			out[n++] = hex[ch >> 4];
			out[n++] = hex[ch & 15];
		} else {
			out[n++] = (char)ch;
		}
	}
	return n;
}

/* Append len bytes of p, as much as fits before the last byte of buf
 * (what snprintf would have kept). */
static size_t put_str(char *buf, size_t size, size_t n, const char *p,
		      size_t len)
{
	if (n + 1 >= size)
		return n;
	if (len > size - 1 - n)
		len = size - 1 - n;
	memcpy(buf + n, p, len);
	return n + len;
}

static size_t put_u64(char *buf, size_t size, size_t n, unsigned long long v)
{
	char tmp[DRP_U64_DIGITS_SIZE];
	size_t len;
	const char *d = drp_u64_digits(tmp, v, &len);
	return put_str(buf, size, n, d, len);
}

static size_t put_int(char *buf, size_t size, size_t n, int v)
{
	if (v < 0) {
		n = put_str(buf, size, n, "-", 1);
		return put_u64(buf, size, n, -(unsigned long long)v);
	}
	return put_u64(buf, size, n, (unsigned long long)v);
}

/* What "%.0f" prints: round to nearest, ties to even (the default
 * rounding mode, as printf rounds); printf itself for the rest (a sign,
 * not a number, too large). */
static size_t put_rounded(char *buf, size_t size, size_t n, double v)
{
	if (!signbit(v) && v < 1e15) {
		unsigned long long u = (unsigned long long)v;
		double frac = v - (double)u; /* exact below 2^53 */
		if (frac > 0.5 || (frac == 0.5 && (u & 1)))
			u++;
		return put_u64(buf, size, n, u);
	}
	char tmp[400];
	int r = snprintf(tmp, sizeof(tmp), "%.0f", v);
	return put_str(buf, size, n, tmp, r > 0 ? (size_t)r : 0);
}

/* "2026-11-27T18:40:00.123Z"; the seconds part is formatted once per
 * second and thread. */
static size_t put_time(char *buf, size_t size, double now)
{
	static __thread time_t last_secs = (time_t)-1;
	static __thread char last[64];
	static __thread size_t last_len;
	time_t secs = (time_t)now;
	if (secs != last_secs || last_secs == (time_t)-1) {
		struct tm tm;
		gmtime_r(&secs, &tm);
		last_len =
			strftime(last, sizeof(last), "%Y-%m-%dT%H:%M:%S", &tm);
		last_secs = secs;
	}
	size_t n = last_len < size ? last_len : 0;
	memcpy(buf, last, n);
	int ms = (int)((now - (double)secs) * 1000.0) % 1000;
	if (ms >= 0 && n + 6 <= size) {
		char t[5] = {'.', (char)('0' + ms / 100),
			     (char)('0' + ms / 10 % 10), (char)('0' + ms % 10),
			     'Z'};
		memcpy(buf + n, t, 5);
		buf[n + 5] = '\0';
		return n + 5;
	}
	int r = snprintf(buf + n, size - n, ".%03dZ", ms);
	return n + (r > 0 ? (size_t)r : 0);
}

size_t drp_accesslog_format(const drp_access_t *a, double now, char *buf,
			    size_t size)
{
	size_t n = put_time(buf, size, now);
	/* Every field escaped, and "-" for an empty one: nothing a client
	 * sends can add, remove or shift a field. */
	if (n + 1 < size)
		buf[n++] = ' ';
	n = put_escaped(buf, size, n, nonempty(a->client), CLIENT_MAX, false);
	if (n + 1 < size)
		buf[n++] = ' ';
	if (a->host && a->host[0]) {
		bool v6 = strchr(a->host, ':') != NULL;
		if (v6 && n + 1 < size)
			buf[n++] = '[';
		n = put_escaped(buf, size, n, a->host, HOST_MAX, false);
		if (v6)
			n = put_str(buf, size, n, "]", 1);
		n = put_str(buf, size, n, ":", 1);
		n = put_u64(buf, size, n, a->port);
		n = put_str(buf, size, n, " ", 1);
	} else if (n + 2 < size) {
		buf[n++] = '-';
		buf[n++] = ' ';
	}
	if (n >= size - 1)
		n = size - 1;
	n = put_escaped(buf, size, n, nonempty(a->method), METHOD_MAX, false);
	if (n + 1 < size)
		buf[n++] = ' ';
	const char *path = a->path ? a->path : "";
	size_t plen = strcspn(path, "?#");
	if (plen == 0) {
		path = "-";
		plen = 1;
	}
	n = put_escaped(buf, size, n, path,
			plen > PATH_MAX_LOG ? PATH_MAX_LOG : plen, false);
	if (n < size - 1) {
		/* " %d %llu %llu %.0f %s %s ", appended without printf: this
		 * runs for every request. */
		const char *result = a->result ? a->result : "-";
		n = put_str(buf, size, n, " ", 1);
		n = put_int(buf, size, n, a->status);
		n = put_str(buf, size, n, " ", 1);
		n = put_u64(buf, size, n, (unsigned long long)a->bytes_in);
		n = put_str(buf, size, n, " ", 1);
		n = put_u64(buf, size, n, (unsigned long long)a->bytes_out);
		n = put_str(buf, size, n, " ", 1);
		n = put_rounded(buf, size, n, a->duration * 1000.0);
		n = put_str(buf, size, n, " ", 1);
		if (a->up_status > 0)
			n = put_int(buf, size, n, a->up_status);
		else
			n = put_str(buf, size, n, "-", 1);
		n = put_str(buf, size, n, " ", 1);
		n = put_str(buf, size, n, result, strlen(result));
		n = put_str(buf, size, n, " ", 1);
		if (n >= size - 1)
			n = size - 1;
		n = put_escaped(buf, size, n, nonempty(a->user), USER_MAX,
				false);
		if (n < size - 1) {
			/* " c%06u " */
			char id[16];
			size_t k = sizeof(id);
			unsigned v = a->conn;
			id[--k] = ' ';
			for (int d = 0; d < 6 || v != 0; d++) {
				id[--k] = (char)('0' + v % 10);
				v /= 10;
			}
			id[--k] = 'c';
			id[--k] = ' ';
			n = put_str(buf, size, n, id + k, sizeof(id) - k);
			if (n >= size - 1)
				n = size - 1;
		}
		if (a->ua == NULL) {
			if (n + 1 < size)
				buf[n++] = '-';
		} else if (n + 1 < size) {
			buf[n++] = '"';
			n = put_escaped(buf, size, n, a->ua, UA_MAX, true);
			if (n + 1 < size)
				buf[n++] = '"';
		}
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

/* ---- JSON ---- */

/* The line being built: whatever does not fit is dropped, never more
 * than would leave room for the closing of the object. */
typedef struct jout {
	char *buf;
	size_t size, n;
} jout_t;

#define JSON_TAIL 256 /* kept free for the last members and "}\n" */

static void jput(jout_t *o, const char *p, size_t len)
{
	if (o->n + len + 1 <= o->size) {
		memcpy(o->buf + o->n, p, len);
		o->n += len;
	}
}

/* Length of the valid UTF-8 sequence at s (of at most len bytes), 0 if
 * it is not one: overlong forms, surrogates and code points above
 * U+10FFFF are not. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
	unsigned c = s[0];
	size_t n;
	unsigned cp, min;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2, cp = c & 0x1f, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3, cp = c & 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4, cp = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* A JSON string of at most max bytes of s, or null. */
static void jstr(jout_t *o, const char *s, size_t max)
{
	if (s == NULL) {
		jput(o, "null", 4);
		return;
	}
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strnlen(s, max);
	jput(o, "\"", 1);
	for (size_t i = 0; i < len;) {
		if (o->n + 8 + JSON_TAIL > o->size)
			break; /* cut short, still valid */
		unsigned char c = p[i];
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			jput(o, e, 2);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			char e[6] = {'\\', 'u',		'0',
				     '0',  hex[c >> 4], hex[c & 15]};
			jput(o, e, 6);
			i++;
		} else if (c < 0x80) {
			jput(o, (const char *)p + i, 1);
			i++;
		} else {
			size_t n = utf8_seq(p + i, len - i);
			if (n > 0) {
				jput(o, (const char *)p + i, n);
				i += n;
			} else {
				jput(o, "\\ufffd", 6);
				i++;
			}
		}
	}
	jput(o, "\"", 1);
}

static void jkey(jout_t *o, const char *key)
{
	char tmp[32];
	int r = snprintf(tmp, sizeof(tmp), ",\"%s\":", key);
	jput(o, tmp, (size_t)r);
}

static void jnum(jout_t *o, const char *key, unsigned long long v)
{
	char tmp[64];
	int r = snprintf(tmp, sizeof(tmp), ",\"%s\":%llu", key, v);
	jput(o, tmp, (size_t)r);
}

size_t drp_accesslog_format_json(const drp_access_t *a, double now, char *buf,
				 size_t size)
{
	jout_t o = {.buf = buf, .size = size};
	char tmp[64];
	size_t t = put_time(tmp, sizeof(tmp), now);
	jput(&o, "{\"time\":\"", 9);
	jput(&o, tmp, t);
	int r = snprintf(tmp, sizeof(tmp), "\",\"conn\":\"c%06u\"", a->conn);
	jput(&o, tmp, (size_t)r);
	jkey(&o, "client");
	jstr(&o, a->client, 64);
	jkey(&o, "user");
	jstr(&o, a->user && a->user[0] ? a->user : NULL, USER_MAX);
	jkey(&o, "host");
	if (a->host) {
		char hp[300];
		bool v6 = strchr(a->host, ':') != NULL;
		snprintf(hp, sizeof(hp), "%s%.256s%s:%u", v6 ? "[" : "",
			 a->host, v6 ? "]" : "", a->port);
		jstr(&o, hp, sizeof(hp));
	} else {
		jput(&o, "null", 4);
	}
	jkey(&o, "method");
	jstr(&o, a->method, METHOD_MAX);
	jkey(&o, "path");
	if (a->path && a->path[0]) {
		size_t plen = strcspn(a->path, "?#");
		jstr(&o, a->path, plen > PATH_MAX_LOG ? PATH_MAX_LOG : plen);
	} else {
		jput(&o, "null", 4);
	}
	r = snprintf(tmp, sizeof(tmp), ",\"status\":%d", a->status);
	jput(&o, tmp, (size_t)r);
	jnum(&o, "bytes_in", a->bytes_in);
	jnum(&o, "bytes_out", a->bytes_out);
	r = snprintf(tmp, sizeof(tmp), ",\"ms\":%.3f",
		     a->duration > 0 ? a->duration * 1000.0 : 0.0);
	jput(&o, tmp, (size_t)r);
	if (a->up_status > 0) {
		jnum(&o, "upstream_status", (unsigned long long)a->up_status);
	} else {
		jkey(&o, "upstream_status");
		jput(&o, "null", 4);
	}
	jkey(&o, "result");
	if (a->result) {
		char res[24];
		size_t i = 0;
		for (; a->result[i] && i < sizeof(res) - 1; i++) {
			char c = a->result[i];
			res[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a')
						      : c;
		}
		res[i] = '\0';
		jstr(&o, res, sizeof(res));
	} else {
		jput(&o, "null", 4);
	}
	jkey(&o, "ua");
	jstr(&o, a->ua, UA_MAX);
	jput(&o, "}\n", 2);
	buf[o.n] = '\0';
	return o.n;
}

void drp_accesslog_write(const drp_runtime_t *rt, const drp_access_t *a)
{
	if (rt->access_fd < 0)
		return;
	struct timeval tv;
	gettimeofday(&tv, NULL);
	double now = (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
	/* The longest line: every field at its bound, every byte of the
	 * path escaped as \u00XX (6 bytes). */
	char line[20 * 1024];
	size_t n =
		rt->conf->access_log_format == DRP_CONF_LOG_JSON
			? drp_accesslog_format_json(a, now, line, sizeof(line))
			: drp_accesslog_format(a, now, line, sizeof(line));
	ssize_t w = write(rt->access_fd, line, n);
	(void)w;
}

void drp_accesslog_count(const drp_runtime_t *rt, const drp_access_t *a)
{
	enum drp_metrics_result res = drp_metrics_result_parse(a->result);
	/* A 5xx the proxy made (not the upstream's own, passed on): no
	 * upstream answered, or its answer could not be used. */
	if (a->cut || (a->status >= 500 && a->status != a->up_status &&
		       res != DRP_MR_STALE))
		res = DRP_MR_ERROR;
	enum drp_metrics_source src = DRP_MS_NONE;
	if (res == DRP_MR_HIT || res == DRP_MR_REVALIDATED ||
	    res == DRP_MR_STALE)
		src = DRP_MS_CACHE;
	else if (a->up_status > 0 || res == DRP_MR_TUNNEL)
		src = DRP_MS_UPSTREAM;
	unsigned reg = a->host ? drp_metrics_regmap_find(rt->upstream->regmap,
							 a->host, a->port)
			       : 0;
	drp_metrics_request(reg, a->method, res, a->status, a->bytes_out, src,
			    a->duration, a->first_byte);
}
