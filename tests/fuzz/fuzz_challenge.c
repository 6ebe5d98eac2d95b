/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: WWW-Authenticate values (plugin/challenge.c), what every
 * registry's 401 and every token service hands the proxy. Besides memory
 * safety it checks:
 *  - a result holds at most DRP_CHALLENGE_MAX_ITEMS challenges and
 *    parameters, schemes are tokens, parameter names lower-case tokens
 *    and unique per challenge, values without control characters but
 *    HTAB;
 *  - the lookups agree with the arrays;
 *  - printing the result back in canonical form (quoted, escaped) and
 *    parsing that again gives the same result, so nothing a registry
 *    sends can mean one thing to the proxy and another when passed on.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/challenge.h"

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

static bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_token(const char *s, bool lower)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!is_tchar((unsigned char)*s) ||
		    (lower && *s >= 'A' && *s <= 'Z'))
			return false;
	return true;
}

/* Canonical form: "scheme token68" or "scheme a="v", b="w"", joined by
 * ", ". Returns the length written (buf is large enough: callers size
 * it as twice the input plus the separators). */
static size_t print(const drp_challenges_t *cs, char *buf)
{
	size_t n = 0;
	for (unsigned i = 0; i < cs->n; i++) {
		const drp_challenge_t *c = &cs->v[i];
		n += (size_t)sprintf(buf + n, "%s%s", i ? ", " : "", c->scheme);
		if (c->token68)
			n += (size_t)sprintf(buf + n, " %s", c->token68);
		for (unsigned k = 0; k < c->n_params; k++) {
			n += (size_t)sprintf(buf + n, "%s%s=\"", k ? ", " : " ",
					     c->params[k].name);
			for (const char *v = c->params[k].value; *v; v++) {
				if (*v == '"' || *v == '\\')
					buf[n++] = '\\';
				buf[n++] = *v;
			}
			buf[n++] = '"';
		}
	}
	buf[n] = '\0';
	return n;
}

static void same(const drp_challenges_t *a, const drp_challenges_t *b)
{
	CHECK(a->n == b->n);
	for (unsigned i = 0; i < a->n; i++) {
		const drp_challenge_t *x = &a->v[i], *y = &b->v[i];
		CHECK(strcmp(x->scheme, y->scheme) == 0);
		CHECK((x->token68 == NULL) == (y->token68 == NULL));
		CHECK(x->token68 == NULL ||
		      strcmp(x->token68, y->token68) == 0);
		CHECK(x->n_params == y->n_params);
		for (unsigned k = 0; k < x->n_params; k++) {
			CHECK(strcmp(x->params[k].name, y->params[k].name) ==
			      0);
			CHECK(strcmp(x->params[k].value, y->params[k].value) ==
			      0);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	drp_challenges_t cs;
	int r = drp_challenge_parse((const char *)data, size, &cs);
	CHECK(r == 0 || r == -EINVAL || r == -E2BIG);
	if (r < 0) {
		CHECK(cs.n == 0 && cs.v == NULL);
		return 0;
	}
	CHECK(cs.n <= DRP_CHALLENGE_MAX_ITEMS);
	size_t items = 0, text = 0;
	for (unsigned i = 0; i < cs.n; i++) {
		const drp_challenge_t *c = &cs.v[i];
		CHECK(is_token(c->scheme, false));
		CHECK(c->token68 == NULL || c->n_params == 0);
		CHECK(drp_challenge_find(&cs, c->scheme) <= c);
		text += strlen(c->scheme) + 3 +
			(c->token68 ? strlen(c->token68) + 1 : 0);
		items += 1 + c->n_params;
		for (unsigned k = 0; k < c->n_params; k++) {
			const drp_auth_param_t *p = &c->params[k];
			CHECK(is_token(p->name, true));
			CHECK(drp_challenge_param(c, p->name) == p->value);
			for (const char *v = p->value; *v; v++)
				CHECK(*v == '\t' ||
				      ((unsigned char)*v >= 0x20 &&
				       *v != 0x7f));
			text += strlen(p->name) + 2 * strlen(p->value) + 6;
		}
	}
	CHECK(items <= DRP_CHALLENGE_MAX_ITEMS);
	char *buf = malloc(text + 1);
	size_t n = print(&cs, buf);
	CHECK(n <= text);
	drp_challenges_t again;
	CHECK(drp_challenge_parse(buf, n, &again) == 0);
	same(&cs, &again);
	drp_challenges_free(&again);
	free(buf);
	drp_challenges_free(&cs);
	return 0;
}
