/* SPDX-License-Identifier: MIT */
/*
 * WWW-Authenticate parser (RFC 9110 §11.6.1 / §11.2).
 *
 *     WWW-Authenticate = #challenge
 *     challenge  = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
 *     auth-param = token BWS "=" BWS ( token / quoted-string )
 *
 * One header value may hold several challenges, separated by commas like
 * the parameters themselves: a new challenge starts where a token is not
 * followed by "=". Accepted: empty list elements, any run of spaces and
 * tabs around commas and "=", quoted strings with backslash escapes
 * (unescaped in the result). Refused (-EINVAL): unterminated or
 * control-character quoted strings, a parameter without a value, a
 * parameter before any scheme, the same parameter twice in one challenge,
 * bytes that fit no rule. Scheme and parameter names are compared
 * case-insensitively; parameter names are stored lower-cased, schemes as
 * written.
 *
 * Thread: pure functions; results are owned by the caller.
 */
#ifndef DRP_PLUGIN_CHALLENGE_H
#define DRP_PLUGIN_CHALLENGE_H

#include <stddef.h>

typedef struct drp_auth_param {
	char *name;  /* lower-case */
	char *value; /* unescaped */
} drp_auth_param_t;

typedef struct drp_challenge {
	char *scheme;  /* as written, e.g. "Bearer" */
	char *token68; /* NULL unless the challenge carries a token68 */
	drp_auth_param_t *params;
	unsigned n_params;
} drp_challenge_t;

/* A parsed header value. */
typedef struct drp_challenges {
	drp_challenge_t *v;
	unsigned n;
} drp_challenges_t;

/* Upper bound on challenges/params, to bound work on hostile input. */
#define DRP_CHALLENGE_MAX_ITEMS 64

/*
 * Parse `len` bytes of a WWW-Authenticate value into *out (zeroed first).
 * Returns 0 (out->n may be 0 for an empty or all-comma value), -EINVAL
 * (malformed; *out is empty), or -E2BIG (more than
 * DRP_CHALLENGE_MAX_ITEMS challenges or parameters).
 * Free with drp_challenges_free().
 */
int drp_challenge_parse(const char *s, size_t len, drp_challenges_t *out)
	__attribute__((nonnull, warn_unused_result));
void drp_challenges_free(drp_challenges_t *c);

/* First challenge with this scheme (case-insensitive), or NULL. */
const drp_challenge_t *drp_challenge_find(const drp_challenges_t *c,
					  const char *scheme)
	__attribute__((nonnull));
/* Value of a parameter (case-insensitive name), or NULL. */
const char *drp_challenge_param(const drp_challenge_t *c, const char *name)
	__attribute__((nonnull));

#endif
