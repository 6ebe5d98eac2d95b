/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>

#include "cache/digest.h"

int drp_digest_init(drp_digest_t *d)
{
	gnutls_hash_hd_t h;
	int rc = gnutls_hash_init(&h, GNUTLS_DIG_SHA256);
	if (rc < 0) {
		d->_h = NULL;
		return rc == GNUTLS_E_MEMORY_ERROR ? -ENOMEM : -EIO;
	}
	d->_h = h;
	d->len = 0;
	return 0;
}

int drp_digest_update(drp_digest_t *d, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (d->_h == NULL) /* aborted */
		return -EIO;
	if (gnutls_hash((gnutls_hash_hd_t)d->_h, p, n) < 0)
		return -EIO;
	d->len += n;
	return 0;
}

void drp_digest_final(drp_digest_t *d, uint8_t out[DRP_DIGEST_LEN])
{
	gnutls_hash_deinit((gnutls_hash_hd_t)d->_h, out);
	d->_h = NULL;
}

int drp_digest_final_check(drp_digest_t *d,
			   const uint8_t expected[DRP_DIGEST_LEN])
{
	uint8_t got[DRP_DIGEST_LEN];
	drp_digest_final(d, got);
	/* Not secret data: a plain compare is fine. */
	return memcmp(got, expected, DRP_DIGEST_LEN) == 0 ? 0 : -EBADMSG;
}

void drp_digest_abort(drp_digest_t *d)
{
	if (d->_h == NULL)
		return;
	gnutls_hash_deinit((gnutls_hash_hd_t)d->_h, NULL);
	d->_h = NULL;
}

int drp_digest_buf(const void *p, size_t n, uint8_t out[DRP_DIGEST_LEN])
{
	return gnutls_hash_fast(GNUTLS_DIG_SHA256, p, n, out) < 0 ? -EIO : 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int drp_digest_parse_hex(const char *hex, size_t len,
			 uint8_t out[DRP_DIGEST_LEN])
{
	if (len != 2 * DRP_DIGEST_LEN)
		return -EINVAL;
	for (size_t i = 0; i < DRP_DIGEST_LEN; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int drp_digest_parse(const char *s, uint8_t out[DRP_DIGEST_LEN])
{
	if (strncmp(s, "sha256:", 7) != 0)
		return -EINVAL;
	s += 7;
	/* strnlen bounds the scan: a long string is rejected, not read. */
	return drp_digest_parse_hex(s, strnlen(s, 2 * DRP_DIGEST_LEN + 1), out);
}

void drp_digest_hex(const uint8_t bin[DRP_DIGEST_LEN], char out[65])
{
	static const char xd[] = "0123456789abcdef";
	for (size_t i = 0; i < DRP_DIGEST_LEN; i++) {
		out[2 * i] = xd[bin[i] >> 4];
		out[2 * i + 1] = xd[bin[i] & 15];
	}
	out[64] = '\0';
}

void drp_digest_format(const uint8_t bin[DRP_DIGEST_LEN],
		       char out[DRP_DIGEST_STRSIZE])
{
	memcpy(out, "sha256:", 7);
	drp_digest_hex(bin, out + 7);
}
