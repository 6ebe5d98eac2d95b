/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: token-service answers (plugin/token.c), the JSON a
 * registry's token endpoint sends back, and the RFC 3339 dates in it.
 * Besides memory safety (and leaks: libFuzzer's leak check) it checks
 * what the callers rely on: an accepted token is non-empty visible ASCII
 * no longer than DRP_TOKEN_MAX_LEN (it goes into an Authorization
 * header), its lifetime is positive, finite and at most a year, and it
 * does not depend on the clock beyond issued_at's rule.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant names itself, then aborts (a finding). */
#define CHECK(x)                                                               \
	do {                                                                   \
		if (!(x)) {                                                    \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #x);                                 \
			abort();                                               \
		}                                                              \
	} while (0)

static void check_token(const drp_token_resp_t *t)
{
	size_t n = strlen(t->token);
	CHECK(n > 0 && n <= DRP_TOKEN_MAX_LEN);
	for (size_t i = 0; i < n; i++)
		CHECK((unsigned char)t->token[i] > 0x20 &&
		      (unsigned char)t->token[i] < 0x7f);
	CHECK(isfinite(t->expires_in) && t->expires_in > 0 &&
	      t->expires_in <= DRP_TOKEN_MAX_TTL);
	CHECK(isfinite(t->ttl) && t->ttl > 0 && t->ttl <= t->expires_in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const time_t nows[] = {0, 1714557600, (time_t)1 << 40,
				      -(time_t)86400};
	drp_token_resp_t first = {0};
	int r0 = 0;
	for (size_t i = 0; i < sizeof(nows) / sizeof(nows[0]); i++) {
		drp_token_resp_t t;
		int r = drp_token_parse((const char *)data, size, nows[i], &t);
		CHECK(r == 0 || r == -EINVAL);
		if (i == 0)
			r0 = r;
		CHECK(r == r0); /* the clock never decides acceptance */
		if (r < 0) {
			CHECK(t.token == NULL);
			continue;
		}
		check_token(&t);
		if (i == 0) {
			first = t;
			continue;
		}
		CHECK(strcmp(t.token, first.token) == 0);
		CHECK(t.expires_in == first.expires_in);
		CHECK(t.issued_at == first.issued_at);
		drp_token_resp_free(&t);
		CHECK(t.token == NULL);
	}
	drp_token_resp_free(&first);

	/* The date parser on its own, on the input as a C string. */
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	time_t when;
	if (drp_token_parse_rfc3339(s, &when) == 0)
		CHECK(strlen(s) >= 20);
	free(s);
	return 0;
}
