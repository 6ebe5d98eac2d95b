/* SPDX-License-Identifier: MIT */
#include "util/buf.h"

#include <stdio.h>
#include <string.h>

#include "util/mem.h"

void drp_buf_free(drp_buf_t *b)
{
	DRP_FREE(b->data);
	b->off = b->len = b->cap = 0;
}

char *drp_buf_reserve(drp_buf_t *b, size_t n)
{
	if (b->off > 0 && (b->off == b->len || b->cap - b->len < n)) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	if (b->cap - b->len < n) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap - b->len < n)
			cap *= 2;
		b->data = drp_realloc(b->data, cap);
		b->cap = cap;
	}
	return b->data + b->len;
}

void drp_buf_append(drp_buf_t *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	memcpy(drp_buf_reserve(b, n), p, n);
	b->len += n;
}

void drp_buf_printf(drp_buf_t *b, const char *fmt, ...)
{
	/* One pass into the free tail (a response head line fits); a
	 * second only for what does not. */
	char *tail = drp_buf_reserve(b, 256);
	size_t room = b->cap - b->len;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tail, room, fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	if ((size_t)n >= room) {
		tail = drp_buf_reserve(b, (size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf(tail, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

void drp_buf_puts(drp_buf_t *b, const char *s)
{
	drp_buf_append(b, s, strlen(s));
}

const char *drp_u64_digits(char tmp[DRP_U64_DIGITS_SIZE], unsigned long long v,
			   size_t *len)
{
	size_t i = DRP_U64_DIGITS_SIZE;
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	*len = DRP_U64_DIGITS_SIZE - i;
	return tmp + i;
}

void drp_buf_put_u64(drp_buf_t *b, unsigned long long v)
{
	char tmp[DRP_U64_DIGITS_SIZE];
	size_t len;
	const char *d = drp_u64_digits(tmp, v, &len);
	drp_buf_append(b, d, len);
}

void drp_buf_consume(drp_buf_t *b, size_t n)
{
	if (n >= b->len - b->off) {
		b->off = b->len = 0;
		return;
	}
	b->off += n;
}

void drp_buf_reset(drp_buf_t *b)
{
	b->off = b->len = 0;
}
