/* SPDX-License-Identifier: MIT */
/*
 * Growable byte buffer with a read offset: data in [off, len) is pending.
 * Used for connection I/O; growth is bounded by the caller (back-pressure),
 * never by this module.
 */
#ifndef DRP_UTIL_BUF_H
#define DRP_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct drp_buf {
	char *data;
	size_t off; /* first unread byte */
	size_t len; /* end of data */
	size_t cap;
} drp_buf_t;

static inline size_t drp_buf_pending(const drp_buf_t *b)
{
	return b->len - b->off;
}
static inline const char *drp_buf_head(const drp_buf_t *b)
{
	/* A buffer that never held data has none: callers compute
	 * head + pending, and NULL + 0 is undefined. */
	return b->data ? b->data + b->off : "";
}

void drp_buf_free(drp_buf_t *b);
/* Make room for n more bytes at the tail (compacting first); returns the
 * tail pointer. Aborts on allocation failure. */
char *drp_buf_reserve(drp_buf_t *b, size_t n);
void drp_buf_append(drp_buf_t *b, const void *p, size_t n);
void drp_buf_printf(drp_buf_t *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Append a NUL-ended string; the decimal digits of v (no printf: these
 * build response heads on every request). */
void drp_buf_puts(drp_buf_t *b, const char *s);
void drp_buf_put_u64(drp_buf_t *b, unsigned long long v);

/* The decimal digits of v, written at the end of tmp (enough for any
 * 64-bit value); returns where they start, *len their count. */
#define DRP_U64_DIGITS_SIZE 24
const char *drp_u64_digits(char tmp[DRP_U64_DIGITS_SIZE], unsigned long long v,
			   size_t *len);
/* Drop n bytes from the head. */
void drp_buf_consume(drp_buf_t *b, size_t n);
void drp_buf_reset(drp_buf_t *b);

#endif
