/* SPDX-License-Identifier: MIT */
/*
 * Corpus replayer for a fuzz target, for builds without libFuzzer: every
 * regular file of every directory (or file) named on the command line is
 * passed once to LLVMFuzzerTestOneInput. Without arguments it replays the
 * target's committed corpus, $top_srcdir/FUZZ_CORPUS and its ".repro"
 * sibling when present (top_srcdir comes from the test environment, so
 * VPATH and distcheck builds find the source tree).
 *
 * Each input is copied into a buffer of exactly its size so that an
 * over-read shows under ASan or valgrind. A failing input aborts inside
 * the target; each file's name is printed before it runs, so the test log
 * names the culprit. Ends with "replay: N passed, M failed".
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifndef FUZZ_CORPUS
#error "FUZZ_CORPUS must name the corpus directory relative to top_srcdir"
#endif
#ifndef FUZZ_SRCDIR
#define FUZZ_SRCDIR "."
#endif

static unsigned long replayed;

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	size_t cap = 4096, len = 0;
	uint8_t *buf = malloc(cap);
	size_t n;
	while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
		len += n;
		if (len == cap) {
			cap *= 2;
			uint8_t *nb = realloc(buf, cap);
			if (nb == NULL)
				free(buf);
			buf = nb;
		}
	}
	int err = ferror(f);
	fclose(f);
	if (buf == NULL || err) {
		fprintf(stderr, "%s: read failed\n", path);
		free(buf);
		return -1;
	}
	uint8_t *exact = malloc(len ? len : 1);
	if (exact == NULL) {
		free(buf);
		return -1;
	}
	memcpy(exact, buf, len);
	free(buf);
	printf("replay %s (%zu bytes)\n", path, len);
	fflush(stdout);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	replayed++;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays a file, or the regular files of a directory in name order. */
static int run_path(const char *path, int must_exist)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		if (!must_exist && errno == ENOENT)
			return 0;
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return run_file(path);
	DIR *d = opendir(path);
	if (d == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **nn = realloc(names, cap * sizeof(*names));
			if (nn == NULL) {
				rc = -1;
				break;
			}
			names = nn;
		}
		size_t l = strlen(path) + strlen(e->d_name) + 2;
		names[n] = malloc(l);
		if (names[n] == NULL) {
			rc = -1;
			break;
		}
		snprintf(names[n], l, "%s/%s", path, e->d_name);
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		struct stat fs;
		if (rc == 0 && stat(names[i], &fs) == 0 && S_ISREG(fs.st_mode))
			rc = run_file(names[i]);
		free(names[i]);
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	int rc = 0, first = 1;
	if (first < argc) {
		for (int i = first; i < argc && rc == 0; i++)
			rc = run_path(argv[i], 1);
	} else {
		const char *top = getenv("top_srcdir");
		char dir[4096];
		if (top == NULL || *top == '\0')
			top = FUZZ_SRCDIR;
		snprintf(dir, sizeof(dir), "%s/%s", top, FUZZ_CORPUS);
		rc = run_path(dir, 1);
		if (rc == 0) {
			char repro[4200];
			size_t l = strlen(dir);
			if (l > 3 && strcmp(dir + l - 3, ".in") == 0)
				dir[l - 3] = '\0';
			snprintf(repro, sizeof(repro), "%s.repro", dir);
			rc = run_path(repro, 0);
		}
	}
	if (rc == 0 && replayed == 0) {
		fprintf(stderr, "no inputs replayed\n");
		rc = -1;
	}
	printf("replay: %lu passed, %d failed\n", replayed, rc == 0 ? 0 : 1);
	return rc == 0 ? 0 : 1;
}
