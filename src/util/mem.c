/* SPDX-License-Identifier: MIT */
#include "util/mem.h"

#include <string.h>

#include "util/log.h"

void drp_fatal_at(const char *file, int line, const char *msg)
{
	drp_log_err(DRP_LOG_MAIN, "fatal at %s:%d: %s", file, line, msg);
	abort();
}

void *drp_malloc_at(size_t n, const char *file, int line)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		drp_fatal_at(file, line, "out of memory");
	return p;
}

void *drp_calloc_at(size_t m, size_t n, const char *file, int line)
{
	void *p = calloc(m ? m : 1, n ? n : 1);
	if (p == NULL)
		drp_fatal_at(file, line, "out of memory");
	return p;
}

void *drp_realloc_at(void *p, size_t n, const char *file, int line)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		drp_fatal_at(file, line, "out of memory");
	return q;
}

char *drp_strdup_at(const char *s, const char *file, int line)
{
	char *p = strdup(s);
	if (p == NULL)
		drp_fatal_at(file, line, "out of memory");
	return p;
}

char *drp_strndup_at(const char *s, size_t n, const char *file, int line)
{
	char *p = strndup(s, n);
	if (p == NULL)
		drp_fatal_at(file, line, "out of memory");
	return p;
}
