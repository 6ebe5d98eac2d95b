/* SPDX-License-Identifier: MIT */
/*
 * Token-service responses (Docker registry token spec, OAuth2 form):
 *
 *     {"token": "...", "access_token": "...", "expires_in": 300,
 *      "issued_at": "2024-05-01T10:00:00.123Z", "refresh_token": "..."}
 *
 *  - token: "token", or "access_token" when "token" is absent; a non-empty
 *    string of visible ASCII (it goes into an Authorization header, so CR,
 *    LF, spaces and control characters are refused).
 *  - expires_in: seconds, a positive number; absent -> 60 (the spec's
 *    default). Zero, negative or non-numeric -> -EINVAL. Capped at one
 *    year.
 *  - issued_at: RFC 3339. The lifetime counts from it when it lies in the
 *    past by less than expires_in; otherwise (future, or already expired
 *    by our clock) it is treated as clock skew and the lifetime counts
 *    from now. Unparseable -> ignored.
 *  - refresh_token and every other member: ignored.
 *
 * Thread: pure functions.
 */
#ifndef DRP_PLUGIN_TOKEN_H
#define DRP_PLUGIN_TOKEN_H

#include <stddef.h>
#include <time.h>

#define DRP_TOKEN_DEFAULT_TTL 60.0
#define DRP_TOKEN_MAX_TTL     (365.0 * 86400)
#define DRP_TOKEN_MAX_LEN     (64 * 1024)

typedef struct drp_token_resp {
	char *token;	   /* malloc'ed; free with drp_token_resp_free */
	double expires_in; /* as sent, or DRP_TOKEN_DEFAULT_TTL */
	time_t issued_at;  /* 0 if absent or unparseable */
	double ttl;	   /* seconds of validity left at `now` */
} drp_token_resp_t;

/*
 * Parse `len` bytes of JSON; `now` is the wall-clock time for issued_at.
 * Returns 0 and fills *out, or -EINVAL (not a JSON object, no usable
 * token, bad expires_in), leaving *out zeroed.
 */
int drp_token_parse(const char *body, size_t len, time_t now,
		    drp_token_resp_t *out)
	__attribute__((nonnull, warn_unused_result));
/* Clears the token's bytes before freeing them. */
void drp_token_resp_free(drp_token_resp_t *t);

/*
 * RFC 3339 date-time ("2024-05-01T10:00:00Z", fractional seconds and
 * "+hh:mm"/"-hh:mm" offsets, 't'/'z' accepted) -> seconds since the
 * epoch. Returns 0 or -EINVAL.
 */
int drp_token_parse_rfc3339(const char *s, time_t *out)
	__attribute__((nonnull, warn_unused_result));

#endif
