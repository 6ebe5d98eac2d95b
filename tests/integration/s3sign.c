/* SPDX-License-Identifier: MIT */
/*
 * drp-s3sign: signs one S3 request with the proxy's own SigV4 code
 * (src/cache/s3sig.c) so that the integration tests can send it to a
 * real S3 service (radosgw) with curl:
 *
 *   drp-s3sign [-a path|virtual] [-H 'Name: value']... [-q name[=value]]...
 *              [-b FILE | -u] METHOD ENDPOINT BUCKET [KEY]
 *
 * ENDPOINT is "http://host[:port]" or "https://host[:port]"; KEY is the
 * raw object key ("" or absent: the bucket). -b signs the SHA-256 of
 * FILE (the body curl will send), -u signs UNSIGNED-PAYLOAD, neither
 * signs the empty body. Credentials come from the environment:
 * S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION (default us-east-1).
 *
 * Prints the URL on the first line, then one "Name: value" line per
 * header to send (for curl -H @FILE): Host, X-Amz-Date,
 * X-Amz-Content-Sha256, Authorization and the -H ones. Exit 0, or 2 with
 * a message on stderr.
 */
#include <errno.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache/s3sig.h"

#define MAXKV 16

static void usage(void)
{
	fprintf(stderr, "usage: drp-s3sign [-a path|virtual] [-H 'Name: "
			"value']... [-q name[=value]]... [-b FILE | -u] METHOD "
			"ENDPOINT BUCKET [KEY]\n");
	exit(2);
}

static int file_sha256(const char *path, char hex[65])
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return -errno;
	struct sha256_ctx ctx;
	sha256_init(&ctx);
	unsigned char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		sha256_update(&ctx, n, buf);
	int err = ferror(f) ? -EIO : 0;
	fclose(f);
	uint8_t d[SHA256_DIGEST_SIZE];
	sha256_digest(&ctx, sizeof(d), d);
	for (size_t i = 0; i < sizeof(d); i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	return err;
}

int main(int argc, char **argv)
{
	drp_s3_addressing_t how = DRP_S3_PATH;
	drp_s3sig_kv_t hdr[MAXKV], query[MAXKV];
	size_t nh = 0, nq = 0;
	const char *body = NULL;
	bool unsigned_payload = false;
	int opt;
	while ((opt = getopt(argc, argv, "a:H:q:b:u")) != -1) {
		switch (opt) {
		case 'a':
			if (strcmp(optarg, "virtual") == 0)
				how = DRP_S3_VIRTUAL;
			else if (strcmp(optarg, "path") != 0)
				usage();
			break;
		case 'H': {
			char *colon = strchr(optarg, ':');
			if (colon == NULL || nh == MAXKV)
				usage();
			*colon = '\0';
			const char *v = colon + 1;
			while (*v == ' ')
				v++;
			hdr[nh++] = (drp_s3sig_kv_t){optarg, v};
			break;
		}
		case 'q': {
			if (nq == MAXKV)
				usage();
			char *eq = strchr(optarg, '=');
			if (eq)
				*eq = '\0';
			query[nq++] =
				(drp_s3sig_kv_t){optarg, eq ? eq + 1 : NULL};
			break;
		}
		case 'b':
			body = optarg;
			break;
		case 'u':
			unsigned_payload = true;
			break;
		default:
			usage();
		}
	}
	if (argc - optind < 3 || argc - optind > 4 ||
	    (body && unsigned_payload))
		usage();
	const char *method = argv[optind], *endpoint = argv[optind + 1];
	const char *bucket = argv[optind + 2];
	const char *key = argc - optind == 4 ? argv[optind + 3] : "";
	const char *scheme_end = strstr(endpoint, "://");
	if (scheme_end == NULL)
		usage();
	const char *authority = scheme_end + 3;

	drp_s3sig_creds_t c = {.access_key = getenv("S3_ACCESS_KEY"),
			       .secret_key = getenv("S3_SECRET_KEY"),
			       .region = getenv("S3_REGION")};
	if (c.region == NULL)
		c.region = "us-east-1";
	if (c.access_key == NULL || c.secret_key == NULL) {
		fprintf(stderr, "drp-s3sign: S3_ACCESS_KEY and S3_SECRET_KEY "
				"must be set\n");
		return 2;
	}
	char hash[65];
	const char *payload = NULL;
	if (body) {
		int err = file_sha256(body, hash);
		if (err) {
			fprintf(stderr, "drp-s3sign: %s: %s\n", body,
				strerror(-err));
			return 2;
		}
		payload = hash;
	} else if (unsigned_payload) {
		payload = DRP_S3SIG_UNSIGNED_PAYLOAD;
	}

	char *host, *path;
	if (drp_s3_address(how, authority, bucket, key, &host, &path) != 0) {
		fprintf(stderr, "drp-s3sign: bad endpoint or bucket\n");
		return 2;
	}
	drp_s3sig_req_t r = {.method = method,
			     .host = host,
			     .path = path,
			     .query = query,
			     .nquery = nq,
			     .headers = hdr,
			     .nheaders = nh,
			     .payload_hash = payload,
			     .now = time(NULL)};
	drp_s3sig_t s;
	if (drp_s3sig_sign(&c, &r, &s) != 0) {
		fprintf(stderr, "drp-s3sign: the request was refused\n");
		return 2;
	}
	printf("%.*s%s%s\n", (int)(scheme_end - endpoint + 3), endpoint, host,
	       s.target);
	printf("Host: %s\nX-Amz-Date: %s\nX-Amz-Content-Sha256: %s\n"
	       "Authorization: %s\n",
	       host, s.amz_date, s.content_sha256, s.authorization);
	for (size_t i = 0; i < nh; i++)
		printf("%s: %s\n", hdr[i].name, hdr[i].value);
	drp_s3sig_free(&s);
	free(host);
	free(path);
	return fflush(stdout) == 0 ? 0 : 2;
}
