/* SPDX-License-Identifier: MIT */
/*
 * Start-up index benchmark of the fs cache backend.
 *   cache_index populate DIR N SIZE   lay out N valid objects of SIZE bytes
 *                                     directly in DIR (no fsync: setup only)
 *   cache_index open DIR              time the backend's open (index build)
 * Used by bench/cache_index.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/digest.h"
#include "drp/cache.h"

static int populate(const char *dir, unsigned long n, size_t size)
{
	char path[4096], hex[65];
	uint8_t *buf = calloc(1, size < 8 ? 8 : size);
	uint8_t d[DRP_DIGEST_LEN];

	snprintf(path, sizeof(path), "%s", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/blobs", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/blobs/sha256", dir);
	mkdir(path, 0700);
	for (unsigned s = 0; s < 256; s++) {
		snprintf(path, sizeof(path), "%s/blobs/sha256/%02x", dir, s);
		mkdir(path, 0700);
	}
	for (unsigned long i = 0; i < n; i++) {
		memcpy(buf, &i, sizeof(i));
		if (drp_digest_buf(buf, size, d) < 0)
			return 1;
		drp_digest_hex(d, hex);
		snprintf(path, sizeof(path), "%s/blobs/sha256/%.2s/%s", dir,
			 hex, hex);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || write(fd, buf, size) != (ssize_t)size) {
			perror(path);
			return 1;
		}
		close(fd);
	}
	free(buf);
	return 0;
}

static int time_open(const char *dir)
{
	drp_cache_conf_t conf = {.dir = dir, .max_size = UINT64_MAX / 2};
	drp_cache_stats_t st = {0};
	drp_cache_t *db;
	char err[256];
	struct timespec t0, t1;
	const drp_cache_api_t *api = drp_cache_fs();

	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = api->open(&db, &conf, &st, err, sizeof(err));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (rc < 0) {
		fprintf(stderr, "open: %s\n", err);
		return 1;
	}
	api->stats(db, &st);
	printf("objects=%" PRIu64 " bytes=%" PRIu64 " open_seconds=%.3f\n",
	       st.objects, st.bytes,
	       (double)(t1.tv_sec - t0.tv_sec) +
		       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	api->close(db, &st);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "populate") == 0)
		return populate(argv[2], strtoul(argv[3], NULL, 10),
				(size_t)strtoul(argv[4], NULL, 10));
	if (argc == 3 && strcmp(argv[1], "open") == 0)
		return time_open(argv[2]);
	fprintf(stderr, "usage: %s populate DIR N SIZE | open DIR\n", argv[0]);
	return 2;
}
