/* SPDX-License-Identifier: MIT */
/*
 * Base64, standard alphabet (RFC 4648 section 4), on top of nettle.
 *
 * The one encoder and decoder of the core: HTTP Basic credentials (the
 * host service that plugins call, Proxy-Authorization, a client's own
 * Authorization), htpasswd's {SHA} hashes, and (base64url) the token
 * realm's handles. (crypt's hashes use a different alphabet and bit
 * order: auth/users.c keeps that one, as part of those formats.) Plugins do not
 * link this: they get "Basic ..." values from the host table (basic_auth).
 *
 * Encoding always pads. Decoding accepts what RFC 4648 base64 encoders
 * produce, padded or not:
 *   - the alphabet A-Z a-z 0-9 + / only; no white space, no line breaks,
 *     no base64url characters (- _);
 *   - padding is optional, but if present it is complete: the whole
 *     input is a multiple of 4 characters and '=' appears only as its
 *     last one or two characters;
 *   - a final group of 1 character is always malformed;
 *   - non-zero bits after the last byte (a non-canonical final
 *     character) are ignored, as they always were here.
 * Both functions are pure, reentrant and thread-safe.
 */
#ifndef DRP_UTIL_BASE64_H
#define DRP_UTIL_BASE64_H

#include <stddef.h>
#include <sys/types.h>

/* Characters encoding n bytes produces (padded), without the NUL. */
#define DRP_BASE64_ENCODED_LEN(n) (((n) + 2) / 3 * 4)
/* Bytes that decoding len characters can produce at most (unpadded input
 * of length 4k+3 gives 3k+2). */
#define DRP_BASE64_DECODED_MAX(len) ((len) / 4 * 3 + 2)

/*
 * Encode n bytes of in into out (outlen bytes), padded and NUL-ended.
 * Returns the length without the NUL, or -ENOBUFS if outlen is less than
 * DRP_BASE64_ENCODED_LEN(n) + 1 (out is then untouched).
 */
ssize_t drp_base64_encode(const void *in, size_t n, char *out, size_t outlen)
	__attribute__((nonnull(3), warn_unused_result));

/*
 * Encode n bytes of in in base64url (RFC 4648 section 5: - and _ for +
 * and /), without padding, into out (outlen bytes), NUL-ended: the
 * proxy's token-realm handles. Returns the length without the NUL, or
 * -ENOBUFS if out is too small (then untouched).
 */
ssize_t drp_base64url_encode(const void *in, size_t n, char *out, size_t outlen)
	__attribute__((nonnull(3), warn_unused_result));

/*
 * Decode len characters of in (no NUL needed) into out (outlen bytes).
 * Returns the number of bytes decoded; -EINVAL if the input is malformed
 * (see above); -ENOBUFS if out is too small for the result (checked
 * before anything is written). On -EINVAL, out may hold a partial result:
 * a caller decoding a secret clears out either way.
 */
ssize_t drp_base64_decode(const char *in, size_t len, void *out, size_t outlen)
	__attribute__((warn_unused_result));

#endif
