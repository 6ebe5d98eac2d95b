/* SPDX-License-Identifier: MIT */
#include "conf/ini.h"

#include <stdio.h>
#include <string.h>

#include "util/mem.h"

struct parser {
	drp_ini_t *ini;
	const char *file;
	drp_conf_errors_t *errs;
	unsigned n_errs;
	unsigned line;
	drp_ini_section_t *cur; /* NULL before the first header */
};

#define perr(p, section, key, ...)                                             \
	do {                                                                   \
		drp_conf_error((p)->errs, (p)->file, (p)->line, (section),     \
			       (key), __VA_ARGS__);                            \
		(p)->n_errs++;                                                 \
	} while (0)

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static const char *skip_blank(const char *s)
{
	while (is_blank(*s))
		s++;
	return s;
}

static bool is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static bool is_key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

/* ';' or '#' at s starts a comment if it follows a blank (or begins the
 * text being scanned, start). */
static bool comment_at(const char *s, const char *start)
{
	return (*s == ';' || *s == '#') && (s == start || is_blank(s[-1]));
}

/* Only a blank or a comment may follow s. */
static bool only_trailer(const char *s)
{
	s = skip_blank(s);
	return *s == '\0' || *s == ';' || *s == '#';
}

/*
 * s points at an opening '"'. On success returns the unquoted copy and
 * sets *end just past the closing quote; NULL if unterminated.
 */
static char *unquote(const char *s, const char **end)
{
	size_t n = strlen(s);
	char *out = drp_malloc(n);
	size_t o = 0;

	for (const char *p = s + 1; *p; p++) {
		if (*p == '\\' && (p[1] == '"' || p[1] == '\\')) {
			out[o++] = *++p;
		} else if (*p == '"') {
			out[o] = '\0';
			*end = p + 1;
			return out;
		} else {
			out[o++] = *p;
		}
	}
	free(out);
	return NULL;
}

static drp_ini_section_t *new_section(struct parser *p)
{
	drp_ini_t *ini = p->ini;

	ini->sec = drp_realloc(ini->sec, (ini->n_sec + 1) * sizeof(*ini->sec));
	drp_ini_section_t *s = &ini->sec[ini->n_sec++];
	memset(s, 0, sizeof(*s));
	s->line = p->line;
	return s;
}

static void parse_header(struct parser *p, const char *s)
{
	const char *q = skip_blank(s + 1), *name = q, *end;
	char *arg = NULL;

	while (is_name_char(*q))
		q++;
	size_t name_len = (size_t)(q - name);
	q = skip_blank(q);
	if (name_len > 0 && *q == '"') {
		arg = unquote(q, &end);
		if (arg == NULL) {
			perr(p, NULL, NULL,
			     "invalid section header: unterminated quote");
			goto bad;
		}
		q = skip_blank(end);
	}
	if (name_len == 0 || *q != ']') {
		perr(p, NULL, NULL,
		     "invalid section header (expected [NAME] or "
		     "[NAME \"ARGUMENT\"])");
		goto bad;
	}
	if (!only_trailer(q + 1)) {
		perr(p, NULL, NULL, "invalid section header: text after ']'");
		goto bad;
	}

	drp_ini_section_t *sec = new_section(p);
	sec->name = drp_strndup(name, name_len);
	sec->arg = arg;
	if (arg) {
		size_t n = name_len + strlen(arg) + 4;
		sec->label = drp_malloc(n);
		snprintf(sec->label, n, "%s \"%s\"", sec->name, arg);
	} else {
		sec->label = drp_strdup(sec->name);
	}
	p->cur = sec;
	return;
bad:
	free(arg);
	p->cur = new_section(p);
	p->cur->bad = true;
}

static void parse_item(struct parser *p, const char *s)
{
	const char *sec = p->cur && !p->cur->bad ? p->cur->label : NULL;
	const char *q = s;

	while (*q && *q != '=' && !comment_at(q, s))
		q++;
	if (*q != '=') {
		perr(p, sec, NULL, "missing '=' (expected KEY = VALUE)");
		return;
	}
	const char *kend = q;
	while (kend > s && is_blank(kend[-1]))
		kend--;
	if (kend == s) {
		perr(p, sec, NULL, "missing key before '='");
		return;
	}
	char *key = drp_strndup(s, (size_t)(kend - s));
	for (const char *k = key; *k; k++) {
		if (!is_key_char(*k)) {
			perr(p, sec, NULL,
			     "invalid key '%s' (letters, digits, '_', '-' "
			     "and '.' only)",
			     key);
			free(key);
			return;
		}
	}

	const char *v = skip_blank(q + 1), *end;
	char *value;
	if (*v == '"') {
		value = unquote(v, &end);
		if (value == NULL) {
			perr(p, sec, key, "unterminated quoted value");
			free(key);
			return;
		}
		if (!only_trailer(end)) {
			perr(p, sec, key, "text after the closing quote");
			free(value);
			free(key);
			return;
		}
	} else {
		const char *e = v;
		while (*e && !comment_at(e, v))
			e++;
		while (e > v && is_blank(e[-1]))
			e--;
		value = drp_strndup(v, (size_t)(e - v));
	}

	if (p->cur == NULL) {
		perr(p, NULL, key, "key before the first [section]");
		free(value);
		free(key);
		return;
	}
	if (p->cur->bad) {
		/* Already reported at the header; the key cannot be judged. */
		free(value);
		free(key);
		return;
	}
	drp_ini_section_t *cur = p->cur;
	cur->items = drp_realloc(cur->items,
				 (cur->n_items + 1) * sizeof(*cur->items));
	cur->items[cur->n_items++] = (drp_ini_item_t){
		.key = key,
		.value = value,
		.line = p->line,
	};
}

static void parse_line(struct parser *p, const char *line)
{
	const char *s = skip_blank(line);

	if (*s == '\0' || *s == ';' || *s == '#')
		return;
	if (*s == '[')
		parse_header(p, s);
	else
		parse_item(p, s);
}

unsigned drp_ini_parse(drp_ini_t *ini, const char *file, const char *text,
		       size_t len, drp_conf_errors_t *errs)
{
	struct parser p = {.ini = ini, .file = file, .errs = errs};
	size_t pos = 0;

	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		pos = 3;
	while (pos < len) {
		const char *l = text + pos;
		const char *nl = memchr(l, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - l) : len - pos;

		pos += n + (nl ? 1 : 0);
		p.line++;
		if (n > 0 && l[n - 1] == '\r')
			n--;
		if (memchr(l, '\0', n)) {
			perr(&p, NULL, NULL, "NUL byte in line");
			continue;
		}
		/* Any other control character but TAB (a stray CR of CRCRLF
		 * line ends, an escape sequence) would silently become part
		 * of a value: a password that never matches, a path that is
		 * not the one shown. */
		size_t k = 0;
		while (k < n && ((unsigned char)l[k] >= 0x20 || l[k] == '\t') &&
		       l[k] != 0x7f)
			k++;
		if (k < n) {
			perr(&p, NULL, NULL, "control character 0x%02x in line",
			     (unsigned)(unsigned char)l[k]);
			continue;
		}
		char *copy = drp_strndup(l, n);
		parse_line(&p, copy);
		free(copy);
	}
	return p.n_errs;
}

void drp_ini_free(drp_ini_t *ini)
{
	for (unsigned i = 0; i < ini->n_sec; i++) {
		drp_ini_section_t *s = &ini->sec[i];
		for (unsigned j = 0; j < s->n_items; j++) {
			free(s->items[j].key);
			free(s->items[j].value);
		}
		free(s->items);
		free(s->name);
		free(s->arg);
		free(s->label);
	}
	free(ini->sec);
	ini->sec = NULL;
	ini->n_sec = 0;
}
