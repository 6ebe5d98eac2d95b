/* SPDX-License-Identifier: MIT */
#include "cache/inventory.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/uri.h"
#include "util/mem.h"

/* Manifests larger than this are never cached (registry/cached.c). */
#define MANIFEST_MAX (4 * 1024 * 1024)
#define HASH_CHUNK   (256 * 1024)

/* ---- small helpers ---- */

void drp_inv_time(int64_t t, char *buf, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;
	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "-");
}

void drp_inv_size(uint64_t n, char *buf, size_t len)
{
	static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB"};
	if (n < 1024) {
		snprintf(buf, len, "%" PRIu64 " B", n);
		return;
	}
	double v = (double)n / 1024;
	size_t u = 0;
	while (v >= 1024 && u + 1 < DRP_ARRAY_SIZE(unit)) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, unit[u]);
}

static bool sha256_digest(const char *s)
{
	bool sha256;
	return s != NULL &&
	       drp_digest_valid(s, strnlen(s, DRP_DIGEST_STRSIZE), &sha256) &&
	       sha256 && strlen(s) == DRP_DIGEST_STRLEN;
}

static int cmp_obj(const void *a, const void *b)
{
	return strcmp(((const drp_inv_obj_t *)a)->digest,
		      ((const drp_inv_obj_t *)b)->digest);
}

drp_inv_obj_t *drp_inv_find(const drp_inv_t *inv, const char *digest)
{
	drp_inv_obj_t key;
	if (inv->n_objs == 0 || strlen(digest) >= sizeof(key.digest))
		return NULL;
	snprintf(key.digest, sizeof(key.digest), "%s", digest);
	return bsearch(&key, inv->objs, inv->n_objs, sizeof(key), cmp_obj);
}

static size_t obj_index(const drp_inv_t *inv, const drp_inv_obj_t *o)
{
	return (size_t)(o - inv->objs);
}

/* Open an object for reading without making it used, where the backend
 * can. */
static int open_quiet(const drp_cache_api_t *api, drp_cache_t *db,
		      drp_cache_stats_t *stats, const char *digest,
		      drp_cache_reader_t **r, drp_cache_info_t *info)
{
	if (DRP_CACHE_HAS_OP(api, peek_open))
		return api->peek_open(db, stats, digest, 0, r, info);
	return api->read_open(db, stats, digest, 0, r, info);
}

/* ---- loading ---- */

struct objs_acc {
	drp_inv_t *inv;
	size_t cap;
};

static int obj_cb(const char *digest, const drp_cache_info_t *info, void *arg)
{
	struct objs_acc *a = arg;
	drp_inv_t *inv = a->inv;
	if (!sha256_digest(digest))
		return 0;
	if (inv->n_objs == a->cap) {
		a->cap = a->cap ? 2 * a->cap : 256;
		inv->objs = drp_realloc(inv->objs, a->cap * sizeof(*inv->objs));
	}
	drp_inv_obj_t *o = &inv->objs[inv->n_objs++];
	memset(o, 0, sizeof(*o));
	snprintf(o->digest, sizeof(o->digest), "%s", digest);
	o->size = info->size;
	o->last_used = info->last_used;
	return 0;
}

/* Split "f1 f2 ... fn" (exactly n fields, single spaces) in place. */
static bool split_fields(char *s, char **f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		f[i] = s;
		char *sp = strchr(s, ' ');
		if (i + 1 < n) {
			if (sp == NULL || sp == s)
				return false;
			*sp = '\0';
			s = sp + 1;
		} else if (sp != NULL || *s == '\0') {
			return false;
		}
	}
	return true;
}

struct recs_acc {
	drp_inv_t *inv;
	size_t tag_cap, seen_cap;
	char **tag_keys;
	size_t n_tag_keys;
};

static int rec_cb(const void *key, size_t keylen, const void *val,
		  size_t vallen, void *arg)
{
	struct recs_acc *a = arg;
	drp_inv_t *inv = a->inv;
	char *k = drp_strndup(key, keylen);
	if (strlen(k) != keylen) { /* an embedded NUL: not ours */
		free(k);
		return 0;
	}
	if (strncmp(k, "mt ", 3) == 0) {
		drp_inv_obj_t *o = drp_inv_find(inv, k + 3);
		if (o && vallen > 0 && vallen < 256 && o->media_type == NULL)
			o->media_type = drp_strndup(val, vallen);
	} else if (strncmp(k, "tag ", 4) == 0) {
		if (a->n_tag_keys == a->tag_cap) {
			a->tag_cap = a->tag_cap ? 2 * a->tag_cap : 64;
			a->tag_keys = drp_realloc(
				a->tag_keys, a->tag_cap * sizeof(*a->tag_keys));
		}
		a->tag_keys[a->n_tag_keys++] = k;
		return 0;
	} else if (strncmp(k, "seen ", 5) == 0) {
		char *f[3];
		if (split_fields(k + 5, f, 3) && sha256_digest(f[0])) {
			if (inv->n_seen == a->seen_cap) {
				a->seen_cap =
					a->seen_cap ? 2 * a->seen_cap : 256;
				inv->seen = drp_realloc(
					inv->seen,
					a->seen_cap * sizeof(*inv->seen));
			}
			drp_inv_seen_t *s = &inv->seen[inv->n_seen++];
			snprintf(s->digest, sizeof(s->digest), "%s", f[0]);
			s->host = drp_strdup(f[1]);
			s->repo = drp_strdup(f[2]);
		}
	}
	free(k);
	return 0;
}

static int cmp_tag(const void *a, const void *b)
{
	const drp_inv_tag_t *x = a, *y = b;
	int c = strcmp(x->host, y->host);
	if (c == 0)
		c = strcmp(x->repo, y->repo);
	if (c == 0)
		c = strcmp(x->tag, y->tag);
	if (c == 0)
		c = strcmp(x->accept, y->accept);
	return c;
}

static int cmp_seen(const void *a, const void *b)
{
	const drp_inv_seen_t *x = a, *y = b;
	int c = strcmp(x->host, y->host);
	if (c == 0)
		c = strcmp(x->repo, y->repo);
	if (c == 0)
		c = strcmp(x->digest, y->digest);
	return c;
}

static void add_ref(drp_inv_obj_t *o, const char *digest, bool manifest)
{
	if (!sha256_digest(digest))
		return;
	for (size_t i = 0; i < o->n_refs; i++)
		if (strcmp(o->refs[i].digest, digest) == 0)
			return;
	o->refs = drp_realloc(o->refs, (o->n_refs + 1) * sizeof(*o->refs));
	snprintf(o->refs[o->n_refs].digest, sizeof(o->refs[0].digest), "%s",
		 digest);
	o->refs[o->n_refs++].manifest = manifest;
}

/* The digests of "name": [{"digest"|field: ...}, ...]. */
static void refs_of_array(drp_inv_obj_t *o, json_t *doc, const char *name,
			  const char *field, bool manifest)
{
	json_t *arr = json_object_get(doc, name);
	size_t i;
	json_t *e;
	if (!json_is_array(arr))
		return;
	json_array_foreach(arr, i, e)
	{
		add_ref(o, json_string_value(json_object_get(e, field)),
			manifest);
	}
}

/* Read a manifest object and record what it references. */
static void parse_manifest(const drp_cache_api_t *api, drp_cache_t *db,
			   drp_cache_stats_t *stats, drp_inv_obj_t *o)
{
	drp_cache_reader_t *r;
	drp_cache_info_t info;
	if (o->size > MANIFEST_MAX ||
	    open_quiet(api, db, stats, o->digest, &r, &info) < 0) {
		o->unreadable = true;
		return;
	}
	size_t len = (size_t)info.size, got = 0;
	char *buf = malloc(len ? len : 1);
	while (buf && got < len) {
		ssize_t n = api->read(db, stats, r, buf + got, len - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	api->read_close(db, stats, r);
	json_t *doc = buf && got == len ? json_loadb(buf, len, 0, NULL) : NULL;
	free(buf);
	if (!json_is_object(doc)) {
		json_decref(doc);
		o->unreadable = true;
		return;
	}
	json_t *cfg = json_object_get(doc, "config");
	add_ref(o, json_string_value(json_object_get(cfg, "digest")), false);
	refs_of_array(o, doc, "layers", "digest", false);
	refs_of_array(o, doc, "manifests", "digest", true);
	refs_of_array(o, doc, "blobs", "digest", false);
	refs_of_array(o, doc, "fsLayers", "blobSum", false);
	json_decref(doc);
}

int drp_inv_load(const drp_cache_api_t *api, drp_cache_t *db,
		 drp_cache_stats_t *stats, drp_inv_t *inv)
{
	memset(inv, 0, sizeof(*inv));
	struct objs_acc oa = {.inv = inv};
	int rc = api->iterate(db, stats, obj_cb, &oa);
	if (rc < 0)
		return rc;
	if (inv->n_objs)
		qsort(inv->objs, inv->n_objs, sizeof(*inv->objs), cmp_obj);
	if (!DRP_CACHE_HAS_OP(api, meta_iterate))
		return 0;
	inv->records = true;
	struct recs_acc ra = {.inv = inv};
	rc = api->meta_iterate(db, stats, "", 0, rec_cb, &ra);
	for (size_t i = 0; i < ra.n_tag_keys; i++) {
		char *k = ra.tag_keys[i];
		drp_cache_tag_t rec;
		char *copy = drp_strdup(k), *f[4];
		if (rc == 0 && split_fields(copy + 4, f, 4) &&
		    drp_cache_tag_get(api, db, stats, k, &rec) == 0) {
			inv->tags = drp_realloc(inv->tags,
						(inv->n_tags + 1) *
							sizeof(*inv->tags));
			drp_inv_tag_t *t = &inv->tags[inv->n_tags++];
			t->key = k;
			t->host = drp_strdup(f[0]);
			t->repo = drp_strdup(f[1]);
			t->tag = drp_strdup(f[2]);
			t->accept = drp_strdup(f[3]);
			t->rec = rec;
			k = NULL;
		}
		free(copy);
		free(k);
	}
	free(ra.tag_keys);
	if (rc < 0)
		return rc;
	if (inv->n_tags)
		qsort(inv->tags, inv->n_tags, sizeof(*inv->tags), cmp_tag);
	if (inv->n_seen)
		qsort(inv->seen, inv->n_seen, sizeof(*inv->seen), cmp_seen);
	for (size_t i = 0; i < inv->n_objs; i++)
		if (inv->objs[i].media_type)
			parse_manifest(api, db, stats, &inv->objs[i]);
	return 0;
}

void drp_inv_free(drp_inv_t *inv)
{
	for (size_t i = 0; i < inv->n_objs; i++) {
		free(inv->objs[i].media_type);
		free(inv->objs[i].refs);
	}
	for (size_t i = 0; i < inv->n_tags; i++) {
		drp_inv_tag_t *t = &inv->tags[i];
		free(t->key);
		free(t->host);
		free(t->repo);
		free(t->tag);
		free(t->accept);
	}
	for (size_t i = 0; i < inv->n_seen; i++) {
		free(inv->seen[i].host);
		free(inv->seen[i].repo);
	}
	free(inv->objs);
	free(inv->tags);
	free(inv->seen);
	memset(inv, 0, sizeof(*inv));
}

/* ---- reachability ---- */

/*
 * Mark (set[i] = true) everything reachable from the digest root through
 * manifests' references, root included, skipping what is not cached and
 * what is in `stop` (NULL: nothing). Each object newly reached is also
 * given to visit (may be NULL) with the digest that led to it (NULL for
 * the root).
 */
typedef void (*visit_fn)(void *arg, const drp_inv_obj_t *o, const char *via,
			 bool manifest_ref);

struct walk {
	const drp_inv_t *inv;
	bool *set;
	const bool *stop;
	visit_fn visit;
	void *arg;
	size_t *stack;
	size_t n, cap;
};

static void walk_push(struct walk *w, const char *digest, const char *via,
		      bool manifest_ref)
{
	drp_inv_obj_t *o = drp_inv_find(w->inv, digest);
	if (o == NULL)
		return;
	size_t i = obj_index(w->inv, o);
	if (w->set[i] || (w->stop && w->stop[i]))
		return;
	w->set[i] = true;
	if (w->visit)
		w->visit(w->arg, o, via, manifest_ref);
	if (w->n == w->cap) {
		w->cap = w->cap ? 2 * w->cap : 64;
		w->stack = drp_realloc(w->stack, w->cap * sizeof(*w->stack));
	}
	w->stack[w->n++] = i;
}

static void walk_run(struct walk *w)
{
	while (w->n > 0) {
		const drp_inv_obj_t *o = &w->inv->objs[w->stack[--w->n]];
		for (size_t r = 0; r < o->n_refs; r++)
			walk_push(w, o->refs[r].digest, o->digest,
				  o->refs[r].manifest);
	}
}

/* ---- listing ---- */

static json_t *time_json(int64_t t)
{
	char buf[32];
	if (t <= 0)
		return json_null();
	drp_inv_time(t, buf, sizeof(buf));
	return json_string(buf);
}

/* What one tag's manifest leads to. */
struct closure {
	json_t *content;
	uint64_t objects, cached, bytes;
	int64_t last_used;
	char (*uncached)[DRP_DIGEST_STRSIZE]; /* referenced, not stored */
};

static void closure_add(struct closure *c, const char *digest, const char *kind,
			const drp_inv_obj_t *o)
{
	json_t *e = json_pack("{s:s, s:s, s:b}", "digest", digest, "kind", kind,
			      "cached", o != NULL);
	if (o) {
		json_object_set_new(e, "size",
				    json_integer((json_int_t)o->size));
		json_object_set_new(e, "last_used", time_json(o->last_used));
		c->cached++;
		c->bytes += o->size;
		if (o->last_used > c->last_used)
			c->last_used = o->last_used;
	}
	json_array_append_new(c->content, e);
	c->objects++;
}

/* The tag's manifest and everything it references, cached or not (an
 * uncached child manifest ends its branch: what it references is
 * unknown). reached[] gets the cached objects. */
static void tag_closure(const drp_inv_t *inv, const char *root, bool *reached,
			struct closure *c)
{
	/* A breadth-first walk of digests (cached or not), deduplicated. */
	size_t cap = 16, n = 0, head = 0;
	struct item {
		char digest[DRP_DIGEST_STRSIZE];
		bool manifest;
	} *q = drp_malloc(cap * sizeof(*q));
	snprintf(q[n].digest, sizeof(q[0].digest), "%s", root);
	q[n++].manifest = true;
	while (head < n) {
		struct item it = q[head++];
		const drp_inv_obj_t *o = drp_inv_find(inv, it.digest);
		const char *kind = it.manifest || (o && o->media_type)
					   ? "manifest"
					   : "blob";
		closure_add(c, it.digest, kind, o);
		if (o == NULL)
			continue;
		reached[obj_index(inv, o)] = true;
		for (size_t r = 0; r < o->n_refs; r++) {
			bool dup = false;
			for (size_t j = 0; j < n && !dup; j++)
				dup = strcmp(q[j].digest, o->refs[r].digest) ==
				      0;
			if (dup)
				continue;
			if (n == cap) {
				cap *= 2;
				q = drp_realloc(q, cap * sizeof(*q));
			}
			q[n] = (struct item){.manifest = o->refs[r].manifest};
			snprintf(q[n].digest, sizeof(q[0].digest), "%s",
				 o->refs[r].digest);
			n++;
		}
	}
	free(q);
}

static json_t *tag_json(const drp_inv_t *inv, const drp_inv_tag_t *t,
			bool *reached)
{
	char ft[32];
	struct closure c = {.content = json_array()};
	tag_closure(inv, t->rec.digest, reached, &c);
	drp_inv_time(t->rec.fetched_at, ft, sizeof(ft));
	json_t *j =
		json_pack("{s:s, s:s, s:s, s:s, s:s}", "tag", t->tag, "digest",
			  t->rec.digest, "media_type", t->rec.media_type,
			  "accept", t->accept, "fetched_at", ft);
	json_object_set_new(j, "objects", json_integer((json_int_t)c.objects));
	json_object_set_new(j, "cached", json_integer((json_int_t)c.cached));
	json_object_set_new(j, "bytes", json_integer((json_int_t)c.bytes));
	json_object_set_new(j, "last_used", time_json(c.last_used));
	json_object_set_new(j, "content", c.content);
	return j;
}

/* A group of objects outside any tag: count, bytes, last use, list. */
static json_t *group_json(void)
{
	return json_pack("{s:i, s:i, s:n, s:[]}", "objects", 0, "bytes", 0,
			 "last_used", "content");
}

static void group_add(json_t *g, const drp_inv_obj_t *o)
{
	json_t *e = json_pack("{s:s, s:s, s:I}", "digest", o->digest, "kind",
			      o->media_type ? "manifest" : "blob", "size",
			      (json_int_t)o->size);
	json_object_set_new(e, "last_used", time_json(o->last_used));
	json_array_append_new(json_object_get(g, "content"), e);
	json_object_set_new(
		g, "objects",
		json_integer(json_integer_value(json_object_get(g, "objects")) +
			     1));
	json_object_set_new(
		g, "bytes",
		json_integer(json_integer_value(json_object_get(g, "bytes")) +
			     (json_int_t)o->size));
	json_t *lu = json_object_get(g, "last_used");
	char buf[32];
	drp_inv_time(o->last_used, buf, sizeof(buf));
	/* RFC 3339 UTC strings of one width order as the times do. */
	if (o->last_used > 0 &&
	    (!json_is_string(lu) || strcmp(json_string_value(lu), buf) < 0))
		json_object_set_new(g, "last_used", json_string(buf));
}

static int cmp_pair(const char *h1, const char *r1, const char *h2,
		    const char *r2)
{
	int c = strcmp(h1, h2);
	return c ? c : strcmp(r1, r2);
}

json_t *drp_inv_list_json(const drp_inv_t *inv, const drp_cache_stats_t *gauges,
			  const char *backend)
{
	uint64_t bytes = 0;
	for (size_t i = 0; i < inv->n_objs; i++)
		bytes += inv->objs[i].size;
	json_t *top = json_object();
	if (backend)
		json_object_set_new(top, "backend", json_string(backend));
	json_object_set_new(top, "objects",
			    json_integer((json_int_t)inv->n_objs));
	json_object_set_new(top, "bytes", json_integer((json_int_t)bytes));
	if (gauges)
		json_object_set_new(top, "max_size",
				    json_integer((json_int_t)gauges->max_size));
	json_object_set_new(top, "records", json_boolean(inv->records));
	json_t *regs = json_array();
	json_object_set_new(top, "registries", regs);

	/* Objects reached by any tag, and objects reached by a tag of the
	 * repository being listed. */
	size_t n = inv->n_objs ? inv->n_objs : 1;
	bool *any = drp_calloc(n, sizeof(bool));
	bool *here = drp_calloc(n, sizeof(bool));
	bool *seen_any = drp_calloc(n, sizeof(bool));
	size_t ti = 0, si = 0;
	json_t *reg = NULL;
	const char *reg_host = NULL;
	while (ti < inv->n_tags || si < inv->n_seen) {
		/* The next repository in (host, repo) order, from either. */
		const char *h, *r;
		if (si >= inv->n_seen ||
		    (ti < inv->n_tags &&
		     cmp_pair(inv->tags[ti].host, inv->tags[ti].repo,
			      inv->seen[si].host, inv->seen[si].repo) <= 0)) {
			h = inv->tags[ti].host;
			r = inv->tags[ti].repo;
		} else {
			h = inv->seen[si].host;
			r = inv->seen[si].repo;
		}
		if (reg_host == NULL || strcmp(reg_host, h) != 0) {
			reg = json_pack("{s:s, s:[]}", "registry", h,
					"repositories");
			json_array_append_new(regs, reg);
			reg_host = h;
		}
		memset(here, 0, n * sizeof(bool));
		json_t *tags = json_array();
		for (; ti < inv->n_tags &&
		       cmp_pair(inv->tags[ti].host, inv->tags[ti].repo, h, r) ==
			       0;
		     ti++)
			json_array_append_new(
				tags, tag_json(inv, &inv->tags[ti], here));
		json_t *untagged = group_json();
		for (; si < inv->n_seen &&
		       cmp_pair(inv->seen[si].host, inv->seen[si].repo, h, r) ==
			       0;
		     si++) {
			const drp_inv_obj_t *o =
				drp_inv_find(inv, inv->seen[si].digest);
			if (o == NULL)
				continue;
			seen_any[obj_index(inv, o)] = true;
			if (!here[obj_index(inv, o)])
				group_add(untagged, o);
		}
		for (size_t i = 0; i < inv->n_objs; i++)
			any[i] = any[i] || here[i];
		json_t *repo = json_pack("{s:s, s:o, s:o}", "repository", r,
					 "tags", tags, "untagged", untagged);
		json_array_append_new(json_object_get(reg, "repositories"),
				      repo);
	}
	json_t *rest = group_json();
	for (size_t i = 0; i < inv->n_objs; i++)
		if (!any[i] && !seen_any[i])
			group_add(rest, &inv->objs[i]);
	json_object_set_new(top, "unattributed", rest);
	free(any);
	free(here);
	free(seen_any);
	return top;
}

static const char *jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "-";
}

static uint64_t jnum(const json_t *o, const char *k)
{
	json_int_t v = json_integer_value(json_object_get(o, k));
	return v > 0 ? (uint64_t)v : 0;
}

/* "2026-11-27 18:40:00" from an RFC 3339 string, or "-". */
static void when(const json_t *o, const char *k, char *buf, size_t len)
{
	const char *s = json_string_value(json_object_get(o, k));
	if (s == NULL || strlen(s) != 20) {
		snprintf(buf, len, "-");
		return;
	}
	snprintf(buf, len, "%.10s %.8s", s, s + 11);
}

static void group_line(FILE *out, const char *indent, const char *name,
		       const json_t *g)
{
	char sz[32], lu[32];
	drp_inv_size(jnum(g, "bytes"), sz, sizeof(sz));
	when(g, "last_used", lu, sizeof(lu));
	/* The name column ends where a tag's does. */
	int width = 24 - (int)strlen(indent);
	fprintf(out, "%s%-*s %-19s %8" PRIu64 " %10s  %s\n", indent, width,
		name, "", jnum(g, "objects"), sz, lu);
}

void drp_inv_list_text(const json_t *list, FILE *out)
{
	char sz[32], max[32], lu[32];
	size_t i, j, k;
	json_t *reg, *repo, *tag;
	fprintf(out, "%-24s %-19s %8s %10s  %s\n", "REGISTRY/REPOSITORY/TAG",
		"MANIFEST", "OBJECTS", "SIZE", "LAST USED (UTC)");
	json_array_foreach(json_object_get(list, "registries"), i, reg)
	{
		fprintf(out, "%s\n", jstr(reg, "registry"));
		json_array_foreach(json_object_get(reg, "repositories"), j,
				   repo)
		{
			fprintf(out, "  %s\n", jstr(repo, "repository"));
			const char *prev_tag = NULL, *prev_digest = NULL;
			json_array_foreach(json_object_get(repo, "tags"), k,
					   tag)
			{
				/* One line per tag and digest, whatever the
				 * Accept keys that resolved to it. */
				if (prev_tag &&
				    strcmp(prev_tag, jstr(tag, "tag")) == 0 &&
				    strcmp(prev_digest, jstr(tag, "digest")) ==
					    0)
					continue;
				prev_tag = jstr(tag, "tag");
				prev_digest = jstr(tag, "digest");
				uint64_t objs = jnum(tag, "objects"),
					 cached = jnum(tag, "cached");
				char count[48];
				if (cached == objs)
					snprintf(count, sizeof(count),
						 "%" PRIu64, objs);
				else
					snprintf(count, sizeof(count),
						 "%" PRIu64 "/%" PRIu64, cached,
						 objs);
				drp_inv_size(jnum(tag, "bytes"), sz,
					     sizeof(sz));
				when(tag, "last_used", lu, sizeof(lu));
				fprintf(out,
					"    %-20s %-19.19s %8s %10s  %s\n",
					prev_tag, prev_digest, count, sz, lu);
			}
			json_t *u = json_object_get(repo, "untagged");
			if (jnum(u, "objects") > 0)
				group_line(out, "    ", "(untagged)", u);
		}
	}
	json_t *rest = json_object_get(list, "unattributed");
	if (jnum(rest, "objects") > 0)
		group_line(out, "", "(no repository)", rest);
	drp_inv_size(jnum(list, "bytes"), sz, sizeof(sz));
	if (json_object_get(list, "max_size")) {
		drp_inv_size(jnum(list, "max_size"), max, sizeof(max));
		fprintf(out, "total: %" PRIu64 " objects, %s of %s\n",
			jnum(list, "objects"), sz, max);
	} else {
		fprintf(out, "total: %" PRIu64 " objects, %s\n",
			jnum(list, "objects"), sz);
	}
	if (!json_is_true(json_object_get(list, "records")))
		fprintf(out, "(this backend cannot list its records: no tags "
			     "or repositories)\n");
}

/* ---- purge ---- */

static void drop_records(const drp_cache_api_t *api, drp_cache_t *db,
			 drp_cache_stats_t *stats, const drp_inv_t *inv,
			 const drp_inv_obj_t *o)
{
	char key[DRP_CACHE_KEY_MAX + 1];
	int n = snprintf(key, sizeof(key), "mt %s", o->digest);
	(void)api->meta_del(db, stats, key, (size_t)n);
	for (size_t i = 0; i < inv->n_seen; i++) {
		const drp_inv_seen_t *s = &inv->seen[i];
		if (strcmp(s->digest, o->digest) != 0)
			continue;
		n = snprintf(key, sizeof(key), "seen %s %s %s", s->digest,
			     s->host, s->repo);
		if (n > 0 && (size_t)n < sizeof(key))
			(void)api->meta_del(db, stats, key, (size_t)n);
	}
}

static void tag_line(FILE *out, const char *what, const drp_inv_tag_t *t)
{
	fprintf(out, "%s tag %s/%s:%s (Accept %s) -> %s\n", what, t->host,
		t->repo, t->tag, t->accept, t->rec.digest);
}

/* "tag HOST/REPO:TAG" from a tag record key, "manifest DIGEST" from a
 * digest. */
static void user_of(const char *via, char *buf, size_t len)
{
	char *f[4];
	char *copy = via ? drp_strdup(via) : NULL;
	if (copy && strncmp(copy, "tag ", 4) == 0 &&
	    split_fields(copy + 4, f, 4))
		snprintf(buf, len, "tag %s/%s:%s", f[0], f[1], f[2]);
	else if (via)
		snprintf(buf, len, "manifest %s", via);
	else
		snprintf(buf, len, "another cached manifest");
	free(copy);
}

struct keep_why {
	const char **via; /* per object: the manifest or tag that keeps it */
	const drp_inv_t *inv;
};

static void keep_visit(void *arg, const drp_inv_obj_t *o, const char *via,
		       bool manifest_ref)
{
	struct keep_why *k = arg;
	(void)manifest_ref;
	if (via)
		k->via[obj_index(k->inv, o)] = via;
}

int drp_inv_purge(const drp_cache_api_t *api, drp_cache_t *db,
		  drp_cache_stats_t *stats, drp_inv_t *inv, const bool *tag_sel,
		  const char *const *digests, size_t n_digests, FILE *out)
{
	size_t n = inv->n_objs ? inv->n_objs : 1;
	size_t nt = inv->n_tags ? inv->n_tags : 1;
	bool *named = drp_calloc(n, sizeof(bool)); /* removed regardless */
	bool *cand = drp_calloc(n, sizeof(bool));  /* reachable from roots */
	bool *keep = drp_calloc(n, sizeof(bool));  /* still used */
	bool *tag_gone = drp_calloc(nt, sizeof(bool)); /* records deleted */
	const char **via = drp_calloc(n, sizeof(char *));
	int removed = 0, tags = 0;
	uint64_t bytes = 0;

	/* Named digests: a manifest takes its tags with it. */
	for (size_t d = 0; d < n_digests; d++) {
		drp_inv_obj_t *o = drp_inv_find(inv, digests[d]);
		bool tagged = false;
		for (size_t t = 0; t < inv->n_tags; t++) {
			if (strcmp(inv->tags[t].rec.digest, digests[d]) == 0) {
				tag_gone[t] = true;
				tagged = true;
			}
		}
		if (o)
			named[obj_index(inv, o)] = true;
		else if (!tagged)
			fprintf(out, "not cached: %s\n", digests[d]);
	}
	for (size_t t = 0; t < inv->n_tags; t++)
		if (tag_sel && tag_sel[t])
			tag_gone[t] = true;

	/* Candidates: what the deleted tags and the named objects lead to. */
	struct walk w = {.inv = inv, .set = cand};
	for (size_t t = 0; t < inv->n_tags; t++)
		if (tag_gone[t])
			walk_push(&w, inv->tags[t].rec.digest, NULL, true);
	for (size_t i = 0; i < inv->n_objs; i++)
		if (named[i] && !cand[i])
			walk_push(&w, inv->objs[i].digest, NULL, true);
	walk_run(&w);

	/* Kept: what the remaining tags and every other cached manifest
	 * use, never through a named object (it goes whatever uses it). */
	struct keep_why kw = {.via = via, .inv = inv};
	struct walk k = {.inv = inv,
			 .set = keep,
			 .stop = named,
			 .visit = keep_visit,
			 .arg = &kw};
	for (size_t t = 0; t < inv->n_tags; t++) {
		if (tag_gone[t])
			continue;
		drp_inv_obj_t *o = drp_inv_find(inv, inv->tags[t].rec.digest);
		if (o && !named[obj_index(inv, o)] &&
		    !keep[obj_index(inv, o)]) {
			via[obj_index(inv, o)] = inv->tags[t].key;
			walk_push(&k, o->digest, NULL, true);
		}
	}
	for (size_t i = 0; i < inv->n_objs; i++)
		if (inv->objs[i].media_type && !cand[i] && !named[i])
			walk_push(&k, inv->objs[i].digest, NULL, true);
	walk_run(&k);
	free(w.stack);
	free(k.stack);

	for (size_t t = 0; t < inv->n_tags; t++) {
		if (!tag_gone[t])
			continue;
		int r = drp_cache_tag_del(api, db, stats, inv->tags[t].key);
		if (r < 0 && r != -ENOENT) {
			fprintf(out, "error: tag %s/%s:%s: %s\n",
				inv->tags[t].host, inv->tags[t].repo,
				inv->tags[t].tag, strerror(-r));
			continue;
		}
		tag_line(out, "removed", &inv->tags[t]);
		tags++;
	}
	for (size_t i = 0; i < inv->n_objs; i++) {
		const drp_inv_obj_t *o = &inv->objs[i];
		const char *kind = o->media_type ? "manifest" : "blob";
		char sz[32];
		if (!named[i] && !cand[i])
			continue;
		if (!named[i] && keep[i]) {
			char user[DRP_CACHE_KEY_MAX + 16];
			user_of(via[i], user, sizeof(user));
			fprintf(out, "kept %s %s (used by %s)\n", kind,
				o->digest, user);
			continue;
		}
		int r = api->remove(db, stats, o->digest);
		if (r < 0 && r != -ENOENT) {
			fprintf(out, "error: %s %s: %s\n", kind, o->digest,
				strerror(-r));
			continue;
		}
		drop_records(api, db, stats, inv, o);
		drp_inv_size(o->size, sz, sizeof(sz));
		fprintf(out, "removed %s %s (%s)\n", kind, o->digest, sz);
		removed++;
		bytes += o->size;
	}
	char sz[32];
	drp_inv_size(bytes, sz, sizeof(sz));
	fprintf(out, "purged %d tag record(s), %d object(s), %s\n", tags,
		removed, sz);
	free(named);
	free(cand);
	free(keep);
	free(tag_gone);
	free(via);
	return removed;
}

/* ---- verify ---- */

struct snap {
	char digest[DRP_DIGEST_STRSIZE];
	uint64_t size;
	int64_t last_used;
};

struct snap_acc {
	struct snap *s;
	size_t n, cap;
};

static int snap_cb(const char *digest, const drp_cache_info_t *info, void *arg)
{
	struct snap_acc *a = arg;
	if (strlen(digest) >= DRP_DIGEST_STRSIZE)
		return 0;
	if (a->n == a->cap) {
		a->cap = a->cap ? 2 * a->cap : 256;
		a->s = drp_realloc(a->s, a->cap * sizeof(*a->s));
	}
	snprintf(a->s[a->n].digest, DRP_DIGEST_STRSIZE, "%s", digest);
	a->s[a->n].size = info->size;
	a->s[a->n++].last_used = info->last_used;
	return 0;
}

static bool stopped(const atomic_bool *stop)
{
	return stop != NULL && atomic_load(stop);
}

/* Re-hash one object: NULL if it is sound, else why not (into why). */
static const char *check_one(const drp_cache_api_t *api, drp_cache_t *db,
			     drp_cache_stats_t *stats, const struct snap *s,
			     char *buf, char *why, size_t whylen, bool *gone)
{
	drp_cache_reader_t *r;
	drp_cache_info_t info;
	uint8_t want[DRP_DIGEST_LEN], got[DRP_DIGEST_LEN];
	drp_digest_t h;
	*gone = false;
	if (drp_digest_parse(s->digest, want) < 0) {
		snprintf(why, whylen, "not a SHA-256 digest");
		return why;
	}
	int rc = open_quiet(api, db, stats, s->digest, &r, &info);
	if (rc == -ENOENT) {
		/* The backend found it missing or of the wrong size and
		 * dropped it (or it was evicted meanwhile). */
		*gone = true;
		snprintf(why, whylen, "missing or of the wrong size");
		return why;
	}
	if (rc < 0) {
		snprintf(why, whylen, "cannot be opened: %s", strerror(-rc));
		return why;
	}
	if (drp_digest_init(&h) < 0) {
		api->read_close(db, stats, r);
		return NULL; /* no verdict possible: not the object's fault */
	}
	uint64_t total = 0;
	ssize_t n;
	while ((n = api->read(db, stats, r, buf, HASH_CHUNK)) > 0) {
		drp_digest_update(&h, buf, (size_t)n);
		total += (uint64_t)n;
	}
	api->read_close(db, stats, r);
	drp_digest_final(&h, got);
	if (n < 0) {
		snprintf(why, whylen, "read failed after %" PRIu64 " bytes: %s",
			 total, strerror((int)-n));
		return why;
	}
	if (total != info.size) {
		snprintf(why, whylen,
			 "%" PRIu64 " bytes stored, %" PRIu64 " expected",
			 total, info.size);
		return why;
	}
	if (memcmp(got, want, DRP_DIGEST_LEN) != 0) {
		char dg[DRP_DIGEST_STRSIZE];
		drp_digest_format(got, dg);
		snprintf(why, whylen, "content hashes to %s", dg);
		return why;
	}
	return NULL;
}

int drp_inv_verify(const drp_cache_api_t *api, drp_cache_t *db,
		   drp_cache_stats_t *stats, const atomic_bool *stop, FILE *out,
		   drp_inv_verified_t *res)
{
	struct snap_acc a = {0};
	memset(res, 0, sizeof(*res));
	int rc = api->iterate(db, stats, snap_cb, &a);
	char *buf = malloc(HASH_CHUNK);
	if (buf == NULL)
		rc = -ENOMEM;
	for (size_t i = 0; i < a.n && rc == 0; i++) {
		if (stopped(stop)) {
			rc = -ECANCELED;
			break;
		}
		char why[160], sz[32];
		bool gone;
		const char *bad = check_one(api, db, stats, &a.s[i], buf, why,
					    sizeof(why), &gone);
		res->objects++;
		res->bytes += a.s[i].size;
		if (bad == NULL)
			continue;
		int r = api->remove(db, stats, a.s[i].digest);
		drp_inv_size(a.s[i].size, sz, sizeof(sz));
		fprintf(out, "bad %s (%s): %s; %s\n", a.s[i].digest, sz, bad,
			r == 0 || gone ? "removed" : "could not be removed");
		fflush(out);
		res->bad++;
	}
	free(buf);
	free(a.s);
	return rc;
}

/* ---- max_age ---- */

int drp_inv_sweep(const drp_cache_api_t *api, drp_cache_t *db,
		  drp_cache_stats_t *stats, int64_t now, double max_age,
		  const atomic_bool *stop, drp_inv_swept_cb cb, void *arg,
		  uint64_t *n, uint64_t *bytes)
{
	struct snap_acc a = {0};
	uint64_t cnt = 0, sum = 0;
	int rc = api->iterate(db, stats, snap_cb, &a);
	for (size_t i = 0; i < a.n && rc == 0; i++) {
		if (stopped(stop)) {
			rc = -ECANCELED;
			break;
		}
		if ((double)(now - a.s[i].last_used) < max_age)
			continue;
		/* Used since the snapshot? Look again, without using it. */
		if (DRP_CACHE_HAS_OP(api, peek_open)) {
			drp_cache_reader_t *r;
			drp_cache_info_t info;
			if (api->peek_open(db, stats, a.s[i].digest, 0, &r,
					   &info) < 0)
				continue;
			api->read_close(db, stats, r);
			if ((double)(now - info.last_used) < max_age)
				continue;
		}
		if (api->remove(db, stats, a.s[i].digest) < 0)
			continue;
		cnt++;
		sum += a.s[i].size;
		if (cb)
			cb(arg, a.s[i].digest, a.s[i].size, a.s[i].last_used);
	}
	free(a.s);
	if (n)
		*n = cnt;
	if (bytes)
		*bytes = sum;
	return rc;
}
