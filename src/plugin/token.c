/* SPDX-License-Identifier: MIT */
#include "plugin/token.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

static bool digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

int drp_token_parse_rfc3339(const char *s, time_t *out)
{
	int Y, M, D, h, m, sec;
	if (strlen(s) < 20 || !digits(s, 4, &Y) || s[4] != '-' ||
	    !digits(s + 5, 2, &M) || s[7] != '-' || !digits(s + 8, 2, &D) ||
	    (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) ||
	    s[13] != ':' || !digits(s + 14, 2, &m) || s[16] != ':' ||
	    !digits(s + 17, 2, &sec))
		return -EINVAL;
	if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
		return -EINVAL;
	const char *p = s + 19;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		while (isdigit((unsigned char)*p))
			p++;
	}
	long offset = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om;
		if (!digits(p + 1, 2, &oh) || p[3] != ':' ||
		    !digits(p + 4, 2, &om) || oh > 23 || om > 59)
			return -EINVAL;
		offset = (oh * 3600L + om * 60L) * (*p == '-' ? -1 : 1);
		p += 6;
	} else {
		return -EINVAL;
	}
	if (*p != '\0')
		return -EINVAL;
	struct tm tm = {
		.tm_year = Y - 1900,
		.tm_mon = M - 1,
		.tm_mday = D,
		.tm_hour = h,
		.tm_min = m,
		.tm_sec = sec == 60 ? 59 : sec,
	};
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	*out = t - offset;
	return 0;
}

static bool header_safe(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

int drp_token_parse(const char *body, size_t len, time_t now,
		    drp_token_resp_t *out)
{
	*out = (drp_token_resp_t){0};
	json_error_t jerr;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	int r = -EINVAL;
	if (root == NULL || !json_is_object(root))
		goto out;

	/* "token" wins; "access_token" is the OAuth2 spelling of it. */
	json_t *tok = json_object_get(root, "token");
	if (tok == NULL)
		tok = json_object_get(root, "access_token");
	if (!json_is_string(tok))
		goto out;
	const char *tv = json_string_value(tok);
	if (json_string_length(tok) > DRP_TOKEN_MAX_LEN ||
	    strlen(tv) != json_string_length(tok) || !header_safe(tv))
		goto out;

	double expires_in = DRP_TOKEN_DEFAULT_TTL;
	json_t *exp = json_object_get(root, "expires_in");
	if (exp != NULL) {
		if (!json_is_number(exp))
			goto out;
		expires_in = json_number_value(exp);
		if (!(expires_in > 0) || !isfinite(expires_in))
			goto out;
		if (expires_in > DRP_TOKEN_MAX_TTL)
			expires_in = DRP_TOKEN_MAX_TTL;
	}

	time_t issued_at = 0;
	double ttl = expires_in;
	json_t *iat = json_object_get(root, "issued_at");
	if (json_is_string(iat) &&
	    drp_token_parse_rfc3339(json_string_value(iat), &issued_at) == 0) {
		double age = difftime(now, issued_at);
		if (age >= 0 && age < expires_in)
			ttl = expires_in - age;
	} else {
		issued_at = 0;
	}

	out->token = drp_strdup(tv);
	out->expires_in = expires_in;
	out->issued_at = issued_at;
	out->ttl = ttl;
	r = 0;
out:
	json_decref(root);
	return r;
}

void drp_token_resp_free(drp_token_resp_t *t)
{
	if (t->token != NULL) {
		explicit_bzero(t->token, strlen(t->token));
		free(t->token);
	}
	*t = (drp_token_resp_t){0};
}
