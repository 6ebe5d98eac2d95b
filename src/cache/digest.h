/* SPDX-License-Identifier: MIT */
/*
 * Incremental SHA-256 for content digests ("sha256:<64 lower-case hex>").
 *
 * Used by the cache backends to verify what they store, and by the core
 * to verify blobs streamed from upstreams before the last bytes reach a
 * client. Backed by GnuTLS (GNUTLS_DIG_SHA256).
 *
 * Ownership: a drp_digest_t lives wherever the caller puts it (on the
 * stack, inside a connection); init allocates a GnuTLS hash handle that
 * exactly one of drp_digest_final(), drp_digest_final_check() or
 * drp_digest_abort() releases. A zero-initialized drp_digest_t that was
 * never initialized may be passed to drp_digest_abort() (no-op).
 *
 * Thread: a context is used by one thread at a time; the functions keep no
 * shared state.
 */
#ifndef DRP_CACHE_DIGEST_H
#define DRP_CACHE_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Raw SHA-256 length. */
#define DRP_DIGEST_LEN 32
/* "sha256:" + 64 hex digits. */
#define DRP_DIGEST_STRLEN (7 + 2 * DRP_DIGEST_LEN)
/* Room for the string form with its NUL. */
#define DRP_DIGEST_STRSIZE (DRP_DIGEST_STRLEN + 1)

typedef struct drp_digest {
	void *_h;     /* gnutls_hash_hd_t; NULL when not initialized */
	uint64_t len; /* bytes hashed so far */
} drp_digest_t;

/* Start a SHA-256 computation. 0, or -ENOMEM / -EIO (GnuTLS failure). */
int drp_digest_init(drp_digest_t *d) __attribute__((warn_unused_result));
/* Feed n bytes (n may be 0). 0, or -EIO. */
int drp_digest_update(drp_digest_t *d, const void *p, size_t n);
/* Write the raw hash to out and release the context. */
void drp_digest_final(drp_digest_t *d, uint8_t out[DRP_DIGEST_LEN]);
/*
 * Finish and compare with an expected raw digest: 0 if equal, -EBADMSG
 * otherwise. Releases the context either way.
 */
int drp_digest_final_check(drp_digest_t *d,
			   const uint8_t expected[DRP_DIGEST_LEN]);
/* Release the context without a result; safe on an unused one. */
void drp_digest_abort(drp_digest_t *d);

/* One-shot SHA-256 of a buffer. 0 or -errno. */
int drp_digest_buf(const void *p, size_t n, uint8_t out[DRP_DIGEST_LEN]);

/*
 * Parse "sha256:<64 lower-case hex>" (exactly; upper-case hex and other
 * algorithms are rejected, since the string is also a file name and a map
 * key and must have one spelling). 0 and out filled, or -EINVAL.
 */
int drp_digest_parse(const char *s, uint8_t out[DRP_DIGEST_LEN]);
/* Digest strings are validated by drp_digest_valid() (http/uri.h): the
 * strings this parses are exactly those it calls valid and SHA-256. */
/* Format as "sha256:<hex>" into out (DRP_DIGEST_STRSIZE bytes, NUL-ended). */
void drp_digest_format(const uint8_t bin[DRP_DIGEST_LEN],
		       char out[DRP_DIGEST_STRSIZE]);
/* Format only the 64 hex digits (out: 65 bytes, NUL-ended). */
void drp_digest_hex(const uint8_t bin[DRP_DIGEST_LEN], char out[65]);
/* Parse exactly 64 lower-case hex digits. 0 or -EINVAL. */
int drp_digest_parse_hex(const char *hex, size_t len,
			 uint8_t out[DRP_DIGEST_LEN]);

#endif
