/* SPDX-License-Identifier: MIT */
/*
 * Configuration errors (internal to src/conf/; everyone else includes
 * conf/conf.h): the one shape of a message, for the syntax layer
 * (ini.c), the schema (schema.c) and the plugin layer alike, and the
 * list that collects them.
 *
 * Thread: pure, no shared state.
 */
#ifndef DRP_CONF_ERROR_H
#define DRP_CONF_ERROR_H

#include "conf/model.h"

/*
 * Error sink: each error is one formatted line of the shape
 *     FILE:LINE: [section] key: message
 * Caller owns it and frees with drp_conf_errors_free().
 */
typedef struct drp_conf_errors {
	char **msg;
	unsigned n;
} drp_conf_errors_t;
void drp_conf_errors_free(drp_conf_errors_t *e);
/*
 * Append an error for an item ("file:line: [section] key: ...").
 * section is the text between the brackets (`registry "quay.io"`); one
 * given with its brackets is printed as is; NULL omits it.
 */
void drp_conf_error_item(drp_conf_errors_t *e, const char *section,
			 const drp_conf_item_t *it, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/*
 * Append an error with an explicit position. Parts that are NULL (or a
 * line of 0) are left out with their separators:
 *   "file:line: [section] key: msg", "file:line: [section]: msg",
 *   "file:line: msg", "file: msg".
 */
void drp_conf_error(drp_conf_errors_t *e, const char *file, unsigned line,
		    const char *section, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
/* For the plugin layer: an error in a [registry "NAME"] section, about
 * item it, or about the section itself (its header line) if it is NULL. */
void drp_conf_registry_error(drp_conf_errors_t *e, const drp_conf_registry_t *r,
			     const drp_conf_item_t *it, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The same about key: at it, its item, or if the section lacks it (it
 * NULL), at the section's header line with the key's name. */
void drp_conf_registry_key_error(drp_conf_errors_t *e,
				 const drp_conf_registry_t *r,
				 const drp_conf_item_t *it, const char *key,
				 const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

#endif
