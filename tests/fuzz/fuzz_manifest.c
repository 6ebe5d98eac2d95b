/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: what decides which manifest a cached tag answers with.
 * The proxy never interprets a manifest's JSON (it stores the bytes whose
 * SHA-256 matches, with the Content-Type they came with); the bytes from
 * outside that pick and label a manifest are the client's Accept headers
 * (normalised into the tag record's key, cache/cache.c), the upstream's
 * Content-Type (kept in the tag record) and digests. The end-to-end path
 * with arbitrary upstream answers is fuzz_conn's scripted mode.
 *
 * Input: lines; each line is one Accept header value.
 * Checks:
 *  - the Accept key is order- and spacing-independent: the values in
 *    reverse order, all of them merged into one header, and that list's
 *    elements in reverse order give the same
 *    key (or the same refusal); a key is sorted, de-duplicated,
 *    lower-case media types joined by ',' or "-";
 *  - the key makes a tag key, and a tag record with any line as its media
 *    type either is refused by drp_cache_tag_put or reads back equal
 *    (memory backend);
 *  - drp_digest_valid() on each line agrees with a plain model of
 *    "sha256:<64 lower hex>" for the algorithm the cache verifies.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "http/uri.h"

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

#define MAXV 40

static const drp_cache_api_t *api;
static drp_cache_t *db;
static drp_cache_stats_t st;

static bool model_sha256(const char *s, size_t n)
{
	if (n != 71 || strncmp(s, "sha256:", 7) != 0)
		return false;
	for (size_t i = 7; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static void check_key(const char *k, int r)
{
	CHECK(r > 0 && (size_t)r == strlen(k));
	if (strcmp(k, "-") == 0)
		return;
	const char *prev = NULL;
	size_t prev_len = 0;
	for (const char *p = k;;) {
		size_t l = strcspn(p, ",");
		CHECK(l > 0 && memchr(p, '/', l) != NULL);
		for (size_t i = 0; i < l; i++)
			CHECK(!(p[i] >= 'A' && p[i] <= 'Z') && p[i] > ' ' &&
			      p[i] != ';' && p[i] != 0x7f);
		if (prev) {
			size_t m = prev_len < l ? prev_len : l;
			int c = memcmp(prev, p, m);
			CHECK(c < 0 || (c == 0 && prev_len < l));
		}
		prev = p;
		prev_len = l;
		if (p[l] == '\0')
			break;
		p += l + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (api == NULL) {
		char err[128];
		drp_cache_conf_t cc = {.max_size = 1 << 20};
		api = drp_cache_backend_find("memory");
		CHECK(api && api->open(&db, &cc, &st, err, sizeof(err)) == 0);
	}
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	const char *vals[MAXV], *rev[MAXV];
	size_t nv = 0;
	for (char *p = text; nv < MAXV;) {
		char *nl = strchr(p, '\n');
		vals[nv++] = p;
		if (nl == NULL)
			break;
		*nl = '\0';
		p = nl + 1;
	}
	for (size_t i = 0; i < nv; i++)
		rev[i] = vals[nv - 1 - i];

	char k1[1024], k2[1024], k3[1024];
	int r1 = drp_cache_accept_key(k1, sizeof(k1), vals, nv);
	int r2 = drp_cache_accept_key(k2, sizeof(k2), rev, nv);
	/* One header: the values joined by ", " (none holds a newline). */
	size_t ml = 0;
	for (size_t i = 0; i < nv; i++)
		ml += strlen(vals[i]) + 2;
	char *merged = malloc(ml + 1);
	merged[0] = '\0';
	for (size_t i = 0; i < nv; i++) {
		if (i)
			strcat(merged, ", ");
		strcat(merged, vals[i]);
	}
	const char *one[1] = {merged};
	int r3 = drp_cache_accept_key(k3, sizeof(k3), one, 1);
	/* And the list elements themselves in reverse order. */
	char *back = malloc(ml + 1), *cut = merged + strlen(merged);
	size_t bl = 0;
	for (;;) {
		char *c = cut;
		while (c > merged && c[-1] != ',')
			c--;
		if (bl)
			back[bl++] = ',';
		memcpy(back + bl, c, (size_t)(cut - c));
		bl += (size_t)(cut - c);
		if (c == merged)
			break;
		cut = c - 1;
	}
	back[bl] = '\0';
	char k4[1024];
	const char *one_back[1] = {back};
	int r4 = drp_cache_accept_key(k4, sizeof(k4), one_back, 1);
	CHECK(r1 == r2 && r1 == r3 && r1 == r4);
	CHECK(r1 < 0 || strcmp(k1, k4) == 0);
	free(back);
	if (r1 >= 0) {
		check_key(k1, r1);
		CHECK(strcmp(k1, k2) == 0 && strcmp(k1, k3) == 0);
		char tk[DRP_CACHE_KEY_MAX + 1];
		int t = drp_cache_tag_key(tk, sizeof(tk), "registry.test",
					  "library/alpine", "latest", k1);
		CHECK(t > 0 || t == -ENAMETOOLONG);
		if (t > 0) {
			drp_cache_tag_t tag = {.size = 7, .fetched_at = -1};
			snprintf(tag.digest, sizeof(tag.digest), "sha256:%064d",
				 0);
			snprintf(tag.media_type, sizeof(tag.media_type), "%s",
				 vals[0]);
			int p = drp_cache_tag_put(api, db, &st, tk, &tag);
			CHECK(p == 0 || p == -EINVAL);
			drp_cache_tag_t got;
			int g = drp_cache_tag_get(api, db, &st, tk, &got);
			if (p == 0) {
				CHECK(g == 0);
				CHECK(strcmp(got.media_type, tag.media_type) ==
					      0 &&
				      strcmp(got.digest, tag.digest) == 0 &&
				      got.size == 7 && got.fetched_at == -1);
			}
			drp_cache_tag_del(api, db, &st, tk);
		}
	} else {
		CHECK(r1 == -ENAMETOOLONG || r1 == -E2BIG);
	}
	for (size_t i = 0; i < nv; i++) {
		bool sha;
		size_t l = strlen(vals[i]);
		bool ok = drp_digest_valid(vals[i], l, &sha);
		CHECK((ok && sha) == model_sha256(vals[i], l));
	}
	free(merged);
	free(text);
	return 0;
}
