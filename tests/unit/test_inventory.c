/* SPDX-License-Identifier: MIT */
/*
 * The administrator's view of a cache (src/cache/inventory.c) over real
 * backends: a small registry's worth of blobs, manifests, an index, tag
 * and seen records is stored through the backend interface, then listed,
 * purged piece by piece (what goes, what stays because another manifest
 * or tag uses it), verified after damage on disk, and swept by age.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/digest.h"
#include "cache/inventory.h"
#include "util/log.h"

Suite *inventory_suite(void);

#define OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define OCI_INDEX    "application/vnd.oci.image.index.v1+json"
#define REG	     "reg.test"

static const drp_cache_api_t *api;
static drp_cache_t *db;
static drp_cache_stats_t st;
static char dir[256];

/* The content: blobs, two image manifests, an index. */
static char C1[DRP_DIGEST_STRSIZE], C2[DRP_DIGEST_STRSIZE];
static char L1[DRP_DIGEST_STRSIZE], L2[DRP_DIGEST_STRSIZE];
static char L3[DRP_DIGEST_STRSIZE], X[DRP_DIGEST_STRSIZE];
static char M1[DRP_DIGEST_STRSIZE], M2[DRP_DIGEST_STRSIZE];
static char M3[DRP_DIGEST_STRSIZE], IDX[DRP_DIGEST_STRSIZE];

static void put(const void *p, size_t n, char dg[DRP_DIGEST_STRSIZE])
{
	uint8_t bin[DRP_DIGEST_LEN];
	ck_assert_int_eq(drp_digest_buf(p, n, bin), 0);
	drp_digest_format(bin, dg);
	drp_cache_writer_t *w;
	ck_assert_int_eq(api->write_begin(db, &st, dg, n, &w), 0);
	ck_assert_int_eq(api->write(db, &st, w, p, n), 0);
	ck_assert_int_eq(api->commit(db, &st, w), 0);
}

static void put_blob(const char *text, size_t n, char dg[DRP_DIGEST_STRSIZE])
{
	char *b = malloc(n);
	for (size_t i = 0; i < n; i++)
		b[i] = text[i % strlen(text)];
	put(b, n, dg);
	free(b);
}

static void put_manifest(const char *json, const char *type,
			 char dg[DRP_DIGEST_STRSIZE])
{
	put(json, strlen(json), dg);
	char key[128];
	snprintf(key, sizeof(key), "mt %s", dg);
	ck_assert_int_eq(
		api->meta_put(db, &st, key, strlen(key), type, strlen(type)),
		0);
}

static void put_tag(const char *repo, const char *tag, const char *digest,
		    const char *type)
{
	char key[512];
	ck_assert_int_gt(
		drp_cache_tag_key(key, sizeof(key), REG, repo, tag,
				  "application/vnd.oci.image.index.v1+json"),
		0);
	drp_cache_tag_t t = {.size = 100, .fetched_at = 1700000000};
	snprintf(t.digest, sizeof(t.digest), "%s", digest);
	snprintf(t.media_type, sizeof(t.media_type), "%s", type);
	ck_assert_int_eq(drp_cache_tag_put(api, db, &st, key, &t), 0);
}

static void seen(const char *repo, const char *const *dgs)
{
	for (; *dgs; dgs++)
		ck_assert_int_eq(
			drp_cache_seen_put(api, db, &st, *dgs, REG, repo), 0);
}

static void open_backend(const char *name)
{
	char err[256] = "";
	snprintf(dir, sizeof(dir), "/tmp/drp-test-inv-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	drp_cache_conf_t c = {.dir = dir, .max_size = 64 << 20};
	memset(&st, 0, sizeof(st));
	api = drp_cache_backend_find(name);
	ck_assert_int_eq(api->open(&db, &c, &st, err, sizeof(err)), 0);
}

static int rm_cb(const char *path, const struct stat *sb, int flag,
		 struct FTW *ftw)
{
	return remove(path);
}

static void close_backend(void)
{
	api->close(db, &st);
	nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* app:v1 -> M1 (C1, L1, L2); other:v2 -> M2 (C2, L2, L3);
 * app:multi -> IDX (M1, M3 not cached); X in no repository. */
static void populate(void)
{
	char json[2048];
	put_blob("config one", 300, C1);
	put_blob("config two", 310, C2);
	put_blob("layer one", 5000, L1);
	put_blob("layer two, shared", 7000, L2);
	put_blob("layer three", 9000, L3);
	put_blob("stray", 123, X);
	snprintf(json, sizeof(json),
		 "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MANIFEST "\","
		 "\"config\":{\"digest\":\"%s\",\"size\":300},"
		 "\"layers\":[{\"digest\":\"%s\"},{\"digest\":\"%s\"}]}",
		 C1, L1, L2);
	put_manifest(json, OCI_MANIFEST, M1);
	snprintf(json, sizeof(json),
		 "{\"schemaVersion\":2,\"config\":{\"digest\":\"%s\"},"
		 "\"layers\":[{\"digest\":\"%s\"},{\"digest\":\"%s\"},"
		 "{\"digest\":\"sha512:abc\"}]}",
		 C2, L2, L3);
	put_manifest(json, OCI_MANIFEST, M2);
	/* M3 is never stored: a platform nobody pulled. */
	snprintf(M3, sizeof(M3), "sha256:%064d", 3);
	snprintf(json, sizeof(json),
		 "{\"schemaVersion\":2,\"mediaType\":\"" OCI_INDEX "\","
		 "\"manifests\":[{\"digest\":\"%s\",\"platform\":{"
		 "\"architecture\":\"amd64\",\"os\":\"linux\"}},"
		 "{\"digest\":\"%s\"}]}",
		 M1, M3);
	put_manifest(json, OCI_INDEX, IDX);
	put_tag("app", "v1", M1, OCI_MANIFEST);
	put_tag("app", "multi", IDX, OCI_INDEX);
	put_tag("other", "v2", M2, OCI_MANIFEST);
	const char *app[] = {M1, C1, L1, L2, IDX, NULL};
	const char *other[] = {M2, C2, L2, L3, NULL};
	seen("app", app);
	seen("other", other);
}

static bool cached(const char *dg)
{
	drp_cache_reader_t *r;
	if (api->peek_open(db, &st, dg, 0, &r, NULL) < 0)
		return false;
	api->read_close(db, &st, r);
	return true;
}

/* Purge and return what it wrote. */
static char *purge(drp_inv_t *inv, const bool *sel, const char *const *dgs,
		   size_t n, int *removed)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	*removed = drp_inv_purge(api, db, &st, inv, sel, dgs, n, out);
	fclose(out);
	return text;
}

static bool *select_tag(const drp_inv_t *inv, const char *repo, const char *tag)
{
	bool *sel = calloc(inv->n_tags + 1, sizeof(bool));
	for (size_t i = 0; i < inv->n_tags; i++)
		sel[i] = strcmp(inv->tags[i].repo, repo) == 0 &&
			 strcmp(inv->tags[i].tag, tag) == 0;
	return sel;
}

static const char *const BACKENDS[] = {"memory", "fs"};

START_TEST(load_and_list)
{
	drp_inv_t inv;
	open_backend(BACKENDS[_i]);
	populate();
	ck_assert_int_eq(drp_inv_load(api, db, &st, &inv), 0);
	ck_assert(inv.records);
	ck_assert_uint_eq(inv.n_objs, 9);
	ck_assert_uint_eq(inv.n_tags, 3);
	ck_assert_uint_eq(inv.n_seen, 9);
	/* Sorted: app:multi, app:v1, other:v2. */
	ck_assert_str_eq(inv.tags[0].tag, "multi");
	ck_assert_str_eq(inv.tags[2].repo, "other");
	drp_inv_obj_t *m1 = drp_inv_find(&inv, M1);
	ck_assert_ptr_nonnull(m1);
	ck_assert_str_eq(m1->media_type, OCI_MANIFEST);
	ck_assert_uint_eq(m1->n_refs, 3);
	ck_assert_str_eq(m1->refs[0].digest, C1);
	ck_assert_str_eq(m1->refs[2].digest, L2);
	ck_assert(!m1->refs[0].manifest);
	/* Not sha256: left out. */
	ck_assert_uint_eq(drp_inv_find(&inv, M2)->n_refs, 3);
	drp_inv_obj_t *ix = drp_inv_find(&inv, IDX);
	ck_assert_uint_eq(ix->n_refs, 2);
	ck_assert(ix->refs[1].manifest);
	ck_assert_ptr_null(drp_inv_find(&inv, X)->media_type);

	api->stats(db, &st);
	json_t *l = drp_inv_list_json(&inv, &st, api->name);
	/* The JSON a script reads. */
	ck_assert_int_eq(json_integer_value(json_object_get(l, "objects")), 9);
	json_t *regs = json_object_get(l, "registries");
	ck_assert_int_eq(json_array_size(regs), 1);
	json_t *reg = json_array_get(regs, 0);
	ck_assert_str_eq(json_string_value(json_object_get(reg, "registry")),
			 REG);
	json_t *repos = json_object_get(reg, "repositories");
	ck_assert_int_eq(json_array_size(repos), 2);
	json_t *app = json_array_get(repos, 0);
	ck_assert_str_eq(json_string_value(json_object_get(app, "repository")),
			 "app");
	json_t *multi = json_array_get(json_object_get(app, "tags"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(multi, "digest")),
			 IDX);
	/* IDX, M1, M3 (not cached), C1, L1, L2. */
	ck_assert_int_eq(json_integer_value(json_object_get(multi, "objects")),
			 6);
	ck_assert_int_eq(json_integer_value(json_object_get(multi, "cached")),
			 5);
	json_int_t want =
		(json_int_t)(300 + 5000 + 7000 + drp_inv_find(&inv, M1)->size +
			     drp_inv_find(&inv, IDX)->size);
	ck_assert_int_eq(json_integer_value(json_object_get(multi, "bytes")),
			 want);
	json_t *v1 = json_array_get(json_object_get(app, "tags"), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(v1, "objects")), 4);
	ck_assert(json_is_string(json_object_get(v1, "last_used")));
	ck_assert_str_eq(json_string_value(json_object_get(v1, "fetched_at")),
			 "2023-11-14T22:13:20Z");
	json_t *untagged = json_object_get(app, "untagged");
	ck_assert_int_eq(
		json_integer_value(json_object_get(untagged, "objects")), 0);
	json_t *rest = json_object_get(l, "unattributed");
	ck_assert_int_eq(json_integer_value(json_object_get(rest, "objects")),
			 1);
	ck_assert_str_eq(
		json_string_value(json_object_get(
			json_array_get(json_object_get(rest, "content"), 0),
			"digest")),
		X);

	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	drp_inv_list_text(l, out);
	fclose(out);
	ck_assert_ptr_nonnull(strstr(text, "\nreg.test\n  app\n    multi "));
	char line[128];
	snprintf(line, sizeof(line), "%.19s", IDX);
	ck_assert_ptr_nonnull(strstr(text, line));
	ck_assert_ptr_nonnull(strstr(text, "    v1 "));
	ck_assert_ptr_nonnull(strstr(text, "(no repository)"));
	ck_assert_ptr_nonnull(strstr(text, "total: 9 objects, "));
	ck_assert_ptr_nonnull(strstr(text, " 5/6 "));
	free(text);
	json_decref(l);
	drp_inv_free(&inv);
	close_backend();
}
END_TEST

START_TEST(purge_steps)
{
	drp_inv_t inv;
	int removed;
	open_backend(BACKENDS[_i]);
	populate();

	/* app:v1 goes; M1 stays, app:multi's index uses it. */
	ck_assert_int_eq(drp_inv_load(api, db, &st, &inv), 0);
	bool *sel = select_tag(&inv, "app", "v1");
	char *t = purge(&inv, sel, NULL, 0, &removed);
	ck_assert_int_eq(removed, 0);
	ck_assert_msg(strstr(t, "removed tag reg.test/app:v1 ") != NULL, "%s",
		      t);
	char want[256];
	snprintf(want, sizeof(want), "kept manifest %s (used by manifest %s)",
		 M1, IDX);
	ck_assert_msg(strstr(t, want) != NULL, "%s", t);
	ck_assert(cached(M1));
	free(t);
	free(sel);
	drp_inv_free(&inv);

	/* app:multi goes: IDX, M1, C1, L1 with it; L2 stays (M2). */
	ck_assert_int_eq(drp_inv_load(api, db, &st, &inv), 0);
	ck_assert_uint_eq(inv.n_tags, 2);
	sel = select_tag(&inv, "app", "multi");
	t = purge(&inv, sel, NULL, 0, &removed);
	ck_assert_int_eq(removed, 4);
	ck_assert(!cached(IDX) && !cached(M1) && !cached(C1) && !cached(L1));
	ck_assert(cached(L2) && cached(M2) && cached(X));
	snprintf(want, sizeof(want), "kept blob %s (used by manifest %s)", L2,
		 M2);
	ck_assert_msg(strstr(t, want) != NULL, "%s", t);
	snprintf(want, sizeof(want), "removed manifest %s (", IDX);
	ck_assert_msg(strstr(t, want) != NULL, "%s", t);
	ck_assert_msg(strstr(t, "purged 1 tag record(s), 4 object(s)") != NULL,
		      "%s", t);
	free(t);
	free(sel);
	drp_inv_free(&inv);
	/* Their records went with them. */
	char key[128];
	size_t len = 0;
	snprintf(key, sizeof(key), "mt %s", M1);
	ck_assert_int_eq(api->meta_get(db, &st, key, strlen(key), NULL, &len),
			 -ENOENT);
	ck_assert_int_eq(drp_cache_seen_get(api, db, &st, L1, REG, "app"),
			 -ENOENT);
	ck_assert_int_eq(drp_cache_seen_get(api, db, &st, L2, REG, "other"), 0);

	/* A blob by digest goes even though M2 uses it. */
	ck_assert_int_eq(drp_inv_load(api, db, &st, &inv), 0);
	const char *dl[] = {L3};
	t = purge(&inv, NULL, dl, 1, &removed);
	ck_assert_int_eq(removed, 1);
	ck_assert(!cached(L3) && cached(M2));
	free(t);
	drp_inv_free(&inv);

	/* A manifest by digest takes its tag and what only it used. */
	ck_assert_int_eq(drp_inv_load(api, db, &st, &inv), 0);
	const char *dm[] = {M2, "sha256:"
				"00000000000000000000000000000000000000000000"
				"00000000000000000000"};
	t = purge(&inv, NULL, dm, 2, &removed);
	ck_assert_int_eq(removed, 3);
	ck_assert_msg(strstr(t, "removed tag reg.test/other:v2 ") != NULL, "%s",
		      t);
	ck_assert_msg(strstr(t, "not cached: sha256:0000") != NULL, "%s", t);
	ck_assert(!cached(M2) && !cached(C2) && !cached(L2));
	free(t);
	drp_inv_free(&inv);

	ck_assert_int_eq(drp_inv_load(api, db, &st, &inv), 0);
	ck_assert_uint_eq(inv.n_objs, 1); /* X */
	ck_assert_uint_eq(inv.n_tags, 0);
	drp_inv_free(&inv);
	close_backend();
}
END_TEST

/* An object damaged on disk (fs): verify finds it, says why, removes it;
 * sound objects stay, and verify does not make them recently used. */
START_TEST(verify_fs)
{
	open_backend("fs");
	populate();
	char path[512];
	/* L1: one byte changed in place (same size). */
	snprintf(path, sizeof(path), "%s/blobs/sha256/%.2s/%s", dir, L1 + 7,
		 L1 + 7);
	int fd = open(path, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, "#", 1, 100), 1);
	close(fd);
	/* L3: cut short. */
	snprintf(path, sizeof(path), "%s/blobs/sha256/%.2s/%s", dir, L3 + 7,
		 L3 + 7);
	ck_assert_int_eq(truncate(path, 10), 0);
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	drp_inv_verified_t res;
	ck_assert_int_eq(drp_inv_verify(api, db, &st, NULL, out, &res), 0);
	fclose(out);
	ck_assert_uint_eq(res.objects, 9);
	ck_assert_uint_eq(res.bad, 2);
	char want[256];
	snprintf(want, sizeof(want), "bad %s (4.9 KiB): content hashes to ",
		 L1);
	ck_assert_msg(strstr(text, want) != NULL, "%s", text);
	snprintf(want, sizeof(want),
		 "bad %s (8.8 KiB): missing or of the "
		 "wrong size; removed",
		 L3);
	ck_assert_msg(strstr(text, want) != NULL, "%s", text);
	ck_assert(!cached(L1) && !cached(L3));
	ck_assert(cached(L2) && cached(M1));
	free(text);
	/* A clean cache: nothing to say. */
	text = NULL;
	out = open_memstream(&text, &len);
	ck_assert_int_eq(drp_inv_verify(api, db, &st, NULL, out, &res), 0);
	fclose(out);
	ck_assert_uint_eq(res.bad, 0);
	ck_assert_str_eq(text, "");
	free(text);
	/* Stopped before it starts. */
	atomic_bool stop = true;
	out = fopen("/dev/null", "w");
	ck_assert_int_eq(drp_inv_verify(api, db, &st, &stop, out, &res),
			 -ECANCELED);
	fclose(out);
	close_backend();
}
END_TEST

struct swept {
	int n;
	char dg[4][DRP_DIGEST_STRSIZE];
};

static void swept_cb(void *arg, const char *digest, uint64_t size,
		     int64_t last_used)
{
	struct swept *s = arg;
	snprintf(s->dg[s->n++], DRP_DIGEST_STRSIZE, "%s", digest);
}

static void age(const char *dg, time_t t)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/blobs/sha256/%.2s/%s", dir, dg + 7,
		 dg + 7);
	struct timespec ts[2] = {{.tv_sec = t}, {.tv_sec = t}};
	ck_assert_int_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* Objects unused for max_age go, the others stay; last use as the fs
 * backend knows it after a restart. */
START_TEST(sweep_fs)
{
	open_backend("fs");
	populate();
	time_t now = time(NULL);
	age(L1, now - 7200);
	age(X, now - 4000);
	age(L2, now - 100);
	char err[256];
	drp_cache_conf_t c = {.dir = dir, .max_size = 64 << 20};
	api->close(db, &st);
	ck_assert_int_eq(api->open(&db, &c, &st, err, sizeof(err)), 0);
	struct swept s = {0};
	uint64_t n = 0, bytes = 0;
	ck_assert_int_eq(drp_inv_sweep(api, db, &st, now, 3600, NULL, swept_cb,
				       &s, &n, &bytes),
			 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(bytes, 5000 + 123);
	ck_assert_int_eq(s.n, 2);
	ck_assert(!cached(L1) && !cached(X));
	ck_assert(cached(L2) && cached(M1));
	/* Used since: stays. */
	age(L2, now - 7200);
	api->close(db, &st);
	ck_assert_int_eq(api->open(&db, &c, &st, err, sizeof(err)), 0);
	ck_assert_int_eq(api->lookup(db, &st, L2, NULL), 0);
	ck_assert_int_eq(drp_inv_sweep(api, db, &st, now, 3600, NULL, NULL,
				       NULL, &n, NULL),
			 0);
	ck_assert_uint_eq(n, 0);
	ck_assert(cached(L2));
	close_backend();
}
END_TEST

START_TEST(formats)
{
	char b[32];
	drp_inv_size(0, b, sizeof(b));
	ck_assert_str_eq(b, "0 B");
	drp_inv_size(1023, b, sizeof(b));
	ck_assert_str_eq(b, "1023 B");
	drp_inv_size(1536, b, sizeof(b));
	ck_assert_str_eq(b, "1.5 KiB");
	drp_inv_size(5ull << 30, b, sizeof(b));
	ck_assert_str_eq(b, "5.0 GiB");
	drp_inv_time(0, b, sizeof(b));
	ck_assert_str_eq(b, "1970-01-01T00:00:00Z");
	drp_inv_time(1700000000, b, sizeof(b));
	ck_assert_str_eq(b, "2023-11-14T22:13:20Z");
}
END_TEST

Suite *inventory_suite(void)
{
	Suite *s = suite_create("inventory");
	TCase *tc = tcase_create("inventory");
	tcase_add_loop_test(tc, load_and_list, 0, 2);
	tcase_add_loop_test(tc, purge_steps, 0, 2);
	tcase_add_test(tc, verify_fs);
	tcase_add_test(tc, sweep_fs);
	tcase_add_test(tc, formats);
	suite_add_tcase(s, tc);
	return s;
}
