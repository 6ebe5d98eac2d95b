/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the configuration reader, INI syntax (conf/ini.c) and the
 * schema that turns it into a drp_conf_t (conf/schema.c, conf/conf.c),
 * as `-t` and SIGHUP run them on a file an operator (or a ConfigMap
 * generator) wrote. Checks besides memory safety and leaks:
 *  - the INI layer's result: section names (but an unreadable
 *    header's) and keys are non-empty and
 *    hold no line break, values hold none either, line numbers lie
 *    within the text, and the error count it returns is what it added;
 *  - the loader either returns a configuration and no error, or NULL
 *    and at least one error, each naming the file;
 *  - a loaded configuration resolves the per-registry settings for
 *    every [registry] section (alone and chained) without failing.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "conf/ini.h"

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

static void no_break(const char *s, bool nonempty)
{
	CHECK(s != NULL && (!nonempty || *s));
	CHECK(strpbrk(s, "\r\n") == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	unsigned lines = 1;
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';

	drp_ini_t ini = {0};
	drp_conf_errors_t errs = {0};
	unsigned n = drp_ini_parse(&ini, "fuzz.ini", text, size, &errs);
	CHECK(n == errs.n);
	for (unsigned i = 0; i < ini.n_sec; i++) {
		const drp_ini_section_t *s = &ini.sec[i];
		/* An unreadable header leaves a nameless section. */
		CHECK(s->bad ? s->name == NULL : s->name != NULL);
		if (!s->bad) {
			no_break(s->name, true);
			no_break(s->label, true);
		}
		if (s->arg)
			no_break(s->arg, false);
		CHECK(s->line <= lines);
		for (unsigned k = 0; k < s->n_items; k++) {
			no_break(s->items[k].key, true);
			no_break(s->items[k].value, false);
			CHECK(s->items[k].line >= 1 &&
			      s->items[k].line <= lines);
		}
	}
	for (unsigned i = 0; i < errs.n; i++)
		CHECK(strncmp(errs.msg[i], "fuzz.ini", 8) == 0);
	drp_ini_free(&ini);
	drp_conf_errors_free(&errs);

	/* The whole loader, on the text up to its first NUL (as a file
	 * read into a C string would be). */
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	drp_conf_errors_t e2 = {0};
	drp_conf_t *c = drp_conf_load_string("fuzz.ini", s, &e2);
	CHECK((c == NULL) == (e2.n > 0));
	for (unsigned i = 0; i < e2.n; i++)
		CHECK(strncmp(e2.msg[i], "fuzz.ini", 8) == 0);
	if (c != NULL) {
		unsigned chain[64];
		unsigned k = c->n_registry < 64 ? c->n_registry : 64;
		for (unsigned i = 0; i < k; i++) {
			drp_conf_regset_t rs;
			chain[i] = i;
			drp_conf_regset_resolve(c, &chain[i], 1, &rs);
		}
		drp_conf_regset_t rs;
		drp_conf_regset_resolve(c, chain, k, &rs);
		drp_conf_regset_resolve(c, chain, 0, &rs);
		drp_conf_free(c);
	}
	drp_conf_errors_free(&e2);
	free(s);
	return 0;
}
