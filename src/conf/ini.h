/* SPDX-License-Identifier: MIT */
/*
 * INI syntax layer of the configuration (internal to src/conf/).
 *
 * Turns text into sections of "key = value" items, each with its line
 * number, and reports pure syntax errors (bad header, missing '=', bad key,
 * unterminated quote, key before any section, NUL byte). It knows nothing
 * about which sections and keys exist: that is schema.c's job.
 *
 * Rules (the man page docker-registry-proxy.ini(5) is the user-facing
 * description):
 *   - lines end in LF or CRLF; no length limit; a leading UTF-8 BOM is
 *     skipped;
 *   - blank lines and lines whose first non-blank is ';' or '#' are
 *     comments; in an unquoted value, ';' or '#' preceded by a blank
 *     starts a comment;
 *   - "[name]" or "[name \"arg\"]" starts a section; name is
 *     [A-Za-z0-9_-]+ (schema.c decides which exist) and arg a double-quoted
 * string (\" and \\ escapes);
 *   - "key = value": key is [A-Za-z0-9_.-]+, value trimmed, optionally
 *     double-quoted (same escapes; the quotes keep ';', '#' and blanks).
 *
 * Thread: pure, no shared state.
 */
#ifndef DRP_CONF_INI_H
#define DRP_CONF_INI_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/error.h"

typedef struct drp_ini_item {
	char *key;
	char *value; /* unquoted, comment stripped, never NULL */
	unsigned line;
} drp_ini_item_t;

typedef struct drp_ini_section {
	char *name;  /* "proxy", "registry", ... */
	char *arg;   /* the quoted argument as written, or NULL */
	char *label; /* for messages: name, or name "arg" */
	unsigned line;
	/* The header was unreadable: its items are kept out of the schema
	 * (their meaning is unknown) and produce no further errors. */
	bool bad;
	drp_ini_item_t *items;
	unsigned n_items;
} drp_ini_section_t;

typedef struct drp_ini {
	drp_ini_section_t *sec;
	unsigned n_sec;
} drp_ini_t;

/*
 * Parse text[0..len) (may contain NUL bytes, which are errors) into *ini,
 * which must be zeroed. Syntax errors are appended to errs with "file" as
 * the file name; parsing always continues to the end. Returns the number
 * of errors added. Free *ini with drp_ini_free() in every case.
 */
unsigned drp_ini_parse(drp_ini_t *ini, const char *file, const char *text,
		       size_t len, drp_conf_errors_t *errs);
void drp_ini_free(drp_ini_t *ini);

#endif
