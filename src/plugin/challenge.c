/* SPDX-License-Identifier: MIT */
#include "plugin/challenge.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "util/mem.h"

typedef struct cursor {
	const char *s;
	size_t len;
	size_t pos;
} cursor_t;

static bool is_tchar(unsigned char c)
{
	return isalnum(c) || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_token68_char(unsigned char c)
{
	return isalnum(c) || (c != 0 && strchr("-._~+/", c) != NULL);
}

static bool at_end(const cursor_t *c)
{
	return c->pos >= c->len;
}

static unsigned char peek(const cursor_t *c)
{
	return at_end(c) ? 0 : (unsigned char)c->s[c->pos];
}

static void skip_ws(cursor_t *c)
{
	while (!at_end(c) && (peek(c) == ' ' || peek(c) == '\t'))
		c->pos++;
}

/* Skips whitespace and list separators; says whether a comma was seen. */
static bool skip_separators(cursor_t *c)
{
	bool comma = false;
	for (;;) {
		skip_ws(c);
		if (peek(c) != ',' || at_end(c))
			return comma;
		comma = true;
		c->pos++;
	}
}

static size_t token_len(const cursor_t *c)
{
	size_t n = 0;
	while (c->pos + n < c->len && is_tchar((unsigned char)c->s[c->pos + n]))
		n++;
	return n;
}

/*
 * A token68 is only recognisable by what follows it: it must run to the
 * end of the list element. "realm=x" scans as "realm=" followed by "x",
 * so it falls back to being a parameter.
 */
static size_t token68_len(const cursor_t *c)
{
	size_t n = 0;
	while (c->pos + n < c->len &&
	       is_token68_char((unsigned char)c->s[c->pos + n]))
		n++;
	if (n == 0)
		return 0;
	while (c->pos + n < c->len && c->s[c->pos + n] == '=')
		n++;
	size_t end = c->pos + n;
	while (end < c->len && (c->s[end] == ' ' || c->s[end] == '\t'))
		end++;
	if (end < c->len && c->s[end] != ',')
		return 0;
	return n;
}

static char *lower_dup(const char *s, size_t n)
{
	char *r = drp_strndup(s, n);
	for (size_t i = 0; i < n; i++)
		r[i] = (char)tolower((unsigned char)r[i]);
	return r;
}

static int read_quoted(cursor_t *c, char **out)
{
	/* The unescaped value is never longer than the quoted text. */
	char *v = drp_malloc(c->len - c->pos + 1);
	size_t n = 0;
	c->pos++; /* opening quote */
	while (!at_end(c)) {
		unsigned char ch = peek(c);
		c->pos++;
		if (ch == '"') {
			v[n] = '\0';
			*out = v;
			return 0;
		}
		if (ch == '\\') {
			if (at_end(c))
				break;
			ch = peek(c);
			c->pos++;
			if (ch != '\t' && (ch < 0x20 || ch == 0x7f))
				break;
		} else if (ch != '\t' && (ch < 0x20 || ch == 0x7f)) {
			break;
		}
		v[n++] = (char)ch;
	}
	free(v);
	return -EINVAL;
}

static drp_challenge_t *add_challenge(drp_challenges_t *out, const char *s,
				      size_t n)
{
	out->v = drp_realloc(out->v, (out->n + 1) * sizeof(*out->v));
	drp_challenge_t *ch = &out->v[out->n++];
	*ch = (drp_challenge_t){.scheme = drp_strndup(s, n)};
	return ch;
}

static int parse(cursor_t *c, drp_challenges_t *out)
{
	drp_challenge_t *cur = NULL;
	bool first = true;
	unsigned items = 0;

	for (;;) {
		bool comma = skip_separators(c);
		if (at_end(c))
			return 0;
		if (++items > DRP_CHALLENGE_MAX_ITEMS)
			return -E2BIG;
		size_t tlen = token_len(c);
		if (tlen == 0)
			return -EINVAL;
		const char *tok = c->s + c->pos;
		c->pos += tlen;
		size_t after_tok = c->pos;
		skip_ws(c);

		if (peek(c) == '=' && !at_end(c)) {
			/* auth-param of the current challenge */
			if (cur == NULL || cur->token68 != NULL)
				return -EINVAL;
			c->pos++;
			skip_ws(c);
			char *value;
			if (peek(c) == '"' && !at_end(c)) {
				if (read_quoted(c, &value) < 0)
					return -EINVAL;
			} else {
				size_t vlen = token_len(c);
				if (vlen == 0)
					return -EINVAL;
				value = drp_strndup(c->s + c->pos, vlen);
				c->pos += vlen;
			}
			char *name = lower_dup(tok, tlen);
			if (drp_challenge_param(cur, name) != NULL) {
				free(name);
				free(value);
				return -EINVAL;
			}
			cur->params = drp_realloc(cur->params,
						  (cur->n_params + 1) *
							  sizeof(*cur->params));
			cur->params[cur->n_params++] = (drp_auth_param_t){
				.name = name, .value = value};
			skip_ws(c);
			if (!at_end(c) && peek(c) != ',')
				return -EINVAL;
			continue;
		}

		/* A new challenge: only at the start or after a comma. */
		if (!first && !comma)
			return -EINVAL;
		first = false;
		c->pos = after_tok;
		cur = add_challenge(out, tok, tlen);
		if (at_end(c) || peek(c) == ',')
			continue;
		if (peek(c) != ' ' && peek(c) != '\t')
			return -EINVAL;
		skip_ws(c);
		size_t t68 = token68_len(c);
		if (t68 > 0) {
			cur->token68 = drp_strndup(c->s + c->pos, t68);
			c->pos += t68;
			/* a following element must be a new challenge */
		}
	}
}

int drp_challenge_parse(const char *s, size_t len, drp_challenges_t *out)
{
	*out = (drp_challenges_t){0};
	cursor_t c = {.s = s, .len = len};
	int r = parse(&c, out);
	if (r < 0)
		drp_challenges_free(out);
	return r;
}

void drp_challenges_free(drp_challenges_t *c)
{
	for (unsigned i = 0; i < c->n; i++) {
		drp_challenge_t *ch = &c->v[i];
		for (unsigned j = 0; j < ch->n_params; j++) {
			free(ch->params[j].name);
			free(ch->params[j].value);
		}
		free(ch->params);
		free(ch->scheme);
		free(ch->token68);
	}
	DRP_FREE(c->v);
	c->n = 0;
}

const drp_challenge_t *drp_challenge_find(const drp_challenges_t *c,
					  const char *scheme)
{
	for (unsigned i = 0; i < c->n; i++)
		if (strcasecmp(c->v[i].scheme, scheme) == 0)
			return &c->v[i];
	return NULL;
}

const char *drp_challenge_param(const drp_challenge_t *c, const char *name)
{
	for (unsigned i = 0; i < c->n_params; i++)
		if (strcasecmp(c->params[i].name, name) == 0)
			return c->params[i].value;
	return NULL;
}
