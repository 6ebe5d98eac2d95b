/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: what the cache reads back from its own disk (cache/fs.c
 * metadata files, the records cache/cache.c keeps in them, object file
 * names), as a power cut, a full disk, a bad sector or a hand edit may
 * leave them. The proxy trusts nothing on disk beyond what it checks: a
 * record that fails a check is a miss, never a crash, and what a read
 * returns is what a put could have written.
 *
 * One fs cache in a temporary directory, opened once. Each record is
 * written once by its normal put (so the file is at its real path); each
 * input replaces that file's bytes, then the record is read back.
 *   byte 0, bits 0-1: how the file is made from the rest
 *       0: the rest, raw (header, key and value all fuzzed)
 *       1: a valid header and key, the rest as the value
 *       2: header fields 8-15 (key and value lengths) from the rest's
 *          first 8 bytes, then the real key, then what follows as value
 *       3: as 1, then truncated to a length taken from the rest
 *   bits 2-3: the record read: tag, negative entry, seen, manifest
 *       media type
 * Checks: a tag record read back has a sha256 digest, a media type that
 * can go into a header (printable, no CR/LF) and would be accepted by
 * drp_cache_tag_put again; a negative entry is in the future; a media
 * type record likewise fits a header. The input is also parsed as an
 * object file name (drp_digest_parse_hex, what the start-up scan uses).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#include "cache/cache.h"
#include "cache/digest.h"
#include "util/log.h"

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

#define DIGEST                                                                 \
	"sha256:"                                                              \
	"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

static struct {
	const drp_cache_api_t *api;
	drp_cache_t *db;
	drp_cache_stats_t st;
	char dir[64];
	int dirfd;
} C;

static int rm_cb(const char *path, const struct stat *st, int flag,
		 struct FTW *ftw)
{
	remove(path);
	return 0;
}

static void cleanup(void)
{
	if (C.db)
		C.api->close(C.db, &C.st);
	nftw(C.dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
	drp_log_set_level(getenv("FUZZ_LOG") ? DRP_LOG_DEBUG : DRP_LOG_ERR);
	snprintf(C.dir, sizeof(C.dir), "/tmp/fuzz_cachemeta.XXXXXX");
	CHECK(mkdtemp(C.dir) != NULL);
	atexit(cleanup);
	C.api = drp_cache_backend_find("fs");
	CHECK(C.api != NULL);
	drp_cache_conf_t cc = {.dir = C.dir, .max_size = 1 << 20};
	char err[256];
	CHECK(C.api->open(&C.db, &cc, &C.st, err, sizeof(err)) == 0);
	C.dirfd = open(C.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(C.dirfd >= 0);
}

/* The file a key's record lives in: meta/XX/<sha256 hex of the key>. */
static void meta_file(const char *key, char *path, size_t len)
{
	uint8_t h[32];
	char hex[65];
	gnutls_hash_fast(GNUTLS_DIG_SHA256, key, strlen(key), h);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", h[i]);
	snprintf(path, len, "meta/%.2s/%s", hex, hex);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void write_file(const char *path, const void *p, size_t n)
{
	int fd = openat(C.dirfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			0600);
	CHECK(fd >= 0);
	CHECK(n == 0 || write(fd, p, n) == (ssize_t)n);
	close(fd);
}

static void make_file(const char *key, unsigned how, const uint8_t *d, size_t n)
{
	char path[128];
	meta_file(key, path, sizeof(path));
	size_t kl = strlen(key);
	if (how == 0) {
		write_file(path, d, n);
		return;
	}
	uint8_t *buf = malloc(16 + kl + n);
	memset(buf, 0, 16);
	memcpy(buf, "DRPM", 4);
	buf[4] = 1;
	size_t vl = n, off = 0, total;
	if (how == 2 && n >= 8) {
		memcpy(buf + 8, d, 8);
		off = 8;
		vl = n - 8;
	} else {
		put_le32(buf + 8, (uint32_t)kl);
		put_le32(buf + 12, (uint32_t)vl);
	}
	memcpy(buf + 16, key, kl);
	memcpy(buf + 16 + kl, d + off, vl);
	total = 16 + kl + vl;
	if (how == 3 && n > 0)
		total = d[0] % (total + 1);
	write_file(path, buf, total);
	free(buf);
}

static bool header_safe(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Each record is put once, by its normal put, so that its file
	 * and directory exist; inputs then only replace the file's bytes
	 * (a failed read may delete it: it is created again). */
	static unsigned char made[4];
	if (C.db == NULL)
		setup();
	if (size < 1)
		return 0;
	unsigned how = data[0] & 3, what = (data[0] >> 2) & 3;
	const uint8_t *d = data + 1;
	size_t n = size - 1;

	/* The name scan's parser, on the raw bytes. */
	uint8_t bin[DRP_DIGEST_LEN];
	if (drp_digest_parse_hex((const char *)d, n, bin) == 0)
		CHECK(n == 64);

	static const char tag_key[] = "tag registry.test library/alpine latest "
				      "application/vnd.oci.image.index.v1+json";
	switch (what) {
	case 0: {
		drp_cache_tag_t t = {.size = 1234, .fetched_at = 1700000000};
		snprintf(t.digest, sizeof(t.digest), "%s", DIGEST);
		snprintf(t.media_type, sizeof(t.media_type),
			 "application/vnd.oci.image.index.v1+json");
		if (!made[0]++)
			CHECK(drp_cache_tag_put(C.api, C.db, &C.st, tag_key,
						&t) == 0);
		make_file(tag_key, how, d, n);
		drp_cache_tag_t got;
		int r = drp_cache_tag_get(C.api, C.db, &C.st, tag_key, &got);
		CHECK(r == 0 || r == -ENOENT || r == -EBADMSG);
		if (r == 0) {
			CHECK(strncmp(got.digest, "sha256:", 7) == 0 &&
			      strlen(got.digest) == 71);
			CHECK(header_safe(got.media_type));
			/* What was read can be written back. */
			CHECK(drp_cache_tag_put(C.api, C.db, &C.st, tag_key,
						&got) == 0);
		}
		break;
	}
	case 1: {
		static const char key[] = "manifest registry.test a/b latest";
		if (!made[1]++)
			CHECK(drp_cache_neg_put(C.api, C.db, &C.st, key,
						1700000000) == 0);
		char full[128];
		snprintf(full, sizeof(full), "neg %s", key);
		make_file(full, how, d, n);
		int64_t exp = 0;
		int r = drp_cache_neg_get(C.api, C.db, &C.st, key, 1600000000,
					  &exp);
		CHECK(r == 0 || r == -ENOENT);
		if (r == 0)
			CHECK(exp > 1600000000);
		break;
	}
	case 2: {
		if (!made[2]++)
			CHECK(drp_cache_seen_put(C.api, C.db, &C.st, DIGEST,
						 "registry.test", "a/b") == 0);
		char full[256];
		snprintf(full, sizeof(full), "seen %s registry.test a/b",
			 DIGEST);
		make_file(full, how, d, n);
		int r = drp_cache_seen_get(C.api, C.db, &C.st, DIGEST,
					   "registry.test", "a/b");
		CHECK(r == 0 || r == -ENOENT);
		break;
	}
	case 3: {
		/* The media type of a manifest stored by digest. */
		if (!made[3]++)
			CHECK(drp_cache_mtype_put(C.api, C.db, &C.st, DIGEST,
						  "application/json") == 0);
		make_file("mt " DIGEST, how, d, n);
		char ctype[DRP_CACHE_MEDIA_TYPE_MAX + 1];
		int r = drp_cache_mtype_get(C.api, C.db, &C.st, DIGEST, ctype,
					    sizeof(ctype));
		CHECK(r == 0 || r == -ENOENT || r == -EBADMSG);
		if (r == 0) {
			CHECK(*ctype && header_safe(ctype));
			CHECK(drp_cache_mtype_put(C.api, C.db, &C.st, DIGEST,
						  ctype) == 0);
		}
		break;
	}
	}
	return 0;
}
