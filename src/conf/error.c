/* SPDX-License-Identifier: MIT */
/* Formatting and collecting configuration errors (see error.h). */
#include "conf/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/mem.h"

void drp_conf_errors_free(drp_conf_errors_t *e)
{
	if (e == NULL)
		return;
	for (unsigned i = 0; i < e->n; i++)
		free(e->msg[i]);
	free(e->msg);
	e->msg = NULL;
	e->n = 0;
}

static void verror(drp_conf_errors_t *e, const char *file, unsigned line,
		   const char *section, const char *key, const char *fmt,
		   va_list ap) __attribute__((format(printf, 6, 0)));

static void verror(drp_conf_errors_t *e, const char *file, unsigned line,
		   const char *section, const char *key, const char *fmt,
		   va_list ap)
{
	char *msg = NULL, *out = NULL;
	char pos[32] = "";

	if (vasprintf(&msg, fmt, ap) < 0)
		drp_fatal_at(__FILE__, __LINE__, "out of memory");
	if (file && line)
		snprintf(pos, sizeof(pos), ":%u", line);
	bool bracket = section && section[0] != '[';
	int r = asprintf(&out, "%s%s%s%s%s%s%s%s%s%s", file ? file : "", pos,
			 file ? ": " : "", bracket ? "[" : "",
			 section ? section : "", bracket ? "]" : "",
			 section && key ? " " : "", key ? key : "",
			 section || key ? ": " : "", msg);
	if (r < 0)
		drp_fatal_at(__FILE__, __LINE__, "out of memory");
	free(msg);
	e->msg = drp_realloc(e->msg, (e->n + 1) * sizeof(*e->msg));
	e->msg[e->n++] = out;
}

void drp_conf_error(drp_conf_errors_t *e, const char *file, unsigned line,
		    const char *section, const char *key, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verror(e, file, line, section, key, fmt, ap);
	va_end(ap);
}

void drp_conf_error_item(drp_conf_errors_t *e, const char *section,
			 const drp_conf_item_t *it, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (it)
		verror(e, it->file, it->line, section, it->key, fmt, ap);
	else
		verror(e, NULL, 0, section, NULL, fmt, ap);
	va_end(ap);
}

static void vregistry_error(drp_conf_errors_t *e, const drp_conf_registry_t *r,
			    const drp_conf_item_t *it, const char *key,
			    const char *fmt, va_list ap)
	__attribute__((format(printf, 5, 0)));

static void vregistry_error(drp_conf_errors_t *e, const drp_conf_registry_t *r,
			    const drp_conf_item_t *it, const char *key,
			    const char *fmt, va_list ap)
{
	size_t n = strlen(r->name) + 16;
	char *label = drp_malloc(n);

	snprintf(label, n, "registry \"%s\"", r->name);
	if (it)
		verror(e, it->file, it->line, label, it->key, fmt, ap);
	else
		verror(e, r->file, r->line, label, key, fmt, ap);
	free(label);
}

void drp_conf_registry_error(drp_conf_errors_t *e, const drp_conf_registry_t *r,
			     const drp_conf_item_t *it, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vregistry_error(e, r, it, NULL, fmt, ap);
	va_end(ap);
}

void drp_conf_registry_key_error(drp_conf_errors_t *e,
				 const drp_conf_registry_t *r,
				 const drp_conf_item_t *it, const char *key,
				 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vregistry_error(e, r, it, key, fmt, ap);
	va_end(ap);
}
