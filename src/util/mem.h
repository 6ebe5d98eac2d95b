/* SPDX-License-Identifier: MIT */
/*
 * Allocation for small core objects: failure aborts with file:line (a
 * daemon that cannot allocate a few bytes cannot do anything useful).
 * Network-sized buffers use plain malloc and return -ENOMEM instead.
 */
#ifndef DRP_UTIL_MEM_H
#define DRP_UTIL_MEM_H

#include <stddef.h>
#include <stdlib.h>

#define drp_malloc(n)	  drp_malloc_at((n), __FILE__, __LINE__)
#define drp_calloc(m, n)  drp_calloc_at((m), (n), __FILE__, __LINE__)
#define drp_realloc(p, n) drp_realloc_at((p), (n), __FILE__, __LINE__)
#define drp_strdup(s)	  drp_strdup_at((s), __FILE__, __LINE__)
#define drp_strndup(s, n) drp_strndup_at((s), (n), __FILE__, __LINE__)
#define DRP_NEW(type)	  ((type *)drp_calloc(1, sizeof(type)))
/* Frees and NULLs. */
#define DRP_FREE(p)                                                            \
	do {                                                                   \
		free(p);                                                       \
		(p) = NULL;                                                    \
	} while (0)

#define DRP_CONTAINER_OF(ptr, type, member)                                    \
	((type *)(void *)((char *)(ptr)-offsetof(type, member)))
#define DRP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

void *drp_malloc_at(size_t n, const char *file, int line)
	__attribute__((malloc, returns_nonnull));
void *drp_calloc_at(size_t m, size_t n, const char *file, int line)
	__attribute__((malloc, returns_nonnull));
void *drp_realloc_at(void *p, size_t n, const char *file, int line)
	__attribute__((returns_nonnull));
char *drp_strdup_at(const char *s, const char *file, int line)
	__attribute__((malloc, returns_nonnull, nonnull(1)));
char *drp_strndup_at(const char *s, size_t n, const char *file, int line)
	__attribute__((malloc, returns_nonnull, nonnull(1)));

/* Logs and aborts. */
void drp_fatal_at(const char *file, int line, const char *msg)
	__attribute__((noreturn, cold));
#define drp_require(x)                                                         \
	do {                                                                   \
		if (!(x))                                                      \
			drp_fatal_at(__FILE__, __LINE__,                       \
				     "requirement failed: " #x);               \
	} while (0)

#endif
