/* SPDX-License-Identifier: MIT */
#include "cache/s3sig.h"

#include <errno.h>
#include <nettle/hmac.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/mem.h"

static const char hexdig[] = "0123456789abcdef";

static void hex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hexdig[p[i] >> 4];
		out[2 * i + 1] = hexdig[p[i] & 15];
	}
	out[2 * n] = '\0';
}

void drp_s3sig_sha256_hex(const void *p, size_t n, char out[65])
{
	struct sha256_ctx ctx;
	uint8_t d[SHA256_DIGEST_SIZE];
	sha256_init(&ctx);
	sha256_update(&ctx, n, p);
	sha256_digest(&ctx, sizeof(d), d);
	hex(d, sizeof(d), out);
}

static void hmac(const uint8_t *key, size_t klen, const char *msg, size_t mlen,
		 uint8_t out[SHA256_DIGEST_SIZE])
{
	struct hmac_sha256_ctx ctx;
	hmac_sha256_set_key(&ctx, klen, key);
	hmac_sha256_update(&ctx, mlen, (const uint8_t *)msg);
	hmac_sha256_digest(&ctx, SHA256_DIGEST_SIZE, out);
}

void drp_s3sig_signing_key(const char *secret, const char *date8,
			   const char *region, const char *service,
			   uint8_t key[32])
{
	size_t n = strlen(secret);
	uint8_t *k0 = drp_malloc(n + 4);
	memcpy(k0, "AWS4", 4);
	memcpy(k0 + 4, secret, n);
	uint8_t k[SHA256_DIGEST_SIZE];
	hmac(k0, n + 4, date8, strlen(date8), k);
	/* The secret's copy must not outlive the call. */
	explicit_bzero(k0, n + 4);
	free(k0);
	hmac(k, sizeof(k), region, strlen(region), k);
	hmac(k, sizeof(k), service, strlen(service), k);
	hmac(k, sizeof(k), "aws4_request", 12, key);
	explicit_bzero(k, sizeof(k));
}

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~';
}

/* SigV4's URI encoding: every byte but the unreserved ones as %XX
 * (upper-case hex), '/' kept when keep_slash. */
static void uri_encode(drp_buf_t *b, const char *s, bool keep_slash)
{
	static const char up[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (unreserved(*p) || (keep_slash && *p == '/')) {
			drp_buf_append(b, p, 1);
		} else {
			char e[3] = {'%', up[*p >> 4], up[*p & 15]};
			drp_buf_append(b, e, 3);
		}
	}
}

static bool is_tchar(unsigned char c)
{
	return unreserved(c) || (c != '\0' && strchr("!#$%&'*+^`|", c));
}

static bool is_token(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (; *s; s++)
		if (!is_tchar((unsigned char)*s))
			return false;
	return true;
}

static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if (*s == '\r' || *s == '\n')
			return true;
	return false;
}

/* Header names the signer writes itself. */
static bool reserved_header(const char *name)
{
	static const char *const own[] = {
		"host", "x-amz-date", "x-amz-content-sha256", "authorization"};
	for (size_t i = 0; i < DRP_ARRAY_SIZE(own); i++)
		if (strcasecmp(name, own[i]) == 0)
			return true;
	return false;
}

/* One header in canonical form: lower-case name; value trimmed, runs of
 * spaces and tabs inside it collapsed to one space. */
struct chdr {
	char *name;
	char *value;
	size_t order; /* position in the request: duplicates keep it */
};

static char *lower_dup(const char *s)
{
	char *d = drp_strdup(s);
	for (char *p = d; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return d;
}

static char *trimall_dup(const char *s)
{
	char *d = drp_malloc(strlen(s) + 1);
	size_t n = 0;
	bool space = false;
	while (*s == ' ' || *s == '\t')
		s++;
	for (; *s; s++) {
		if (*s == ' ' || *s == '\t') {
			space = true;
			continue;
		}
		if (space && n > 0)
			d[n++] = ' ';
		space = false;
		d[n++] = *s;
	}
	d[n] = '\0';
	return d;
}

static int chdr_cmp(const void *a, const void *b)
{
	const struct chdr *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c != 0)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* An encoded query parameter. */
struct cparam {
	char *name;
	char *value;
};

static int cparam_cmp(const void *a, const void *b)
{
	const struct cparam *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c != 0 ? c : strcmp(x->value, y->value);
}

static char *encode_dup(const char *s, bool keep_slash)
{
	drp_buf_t b = {0};
	uri_encode(&b, s, keep_slash);
	drp_buf_append(&b, "", 1);
	char *r = drp_strdup(b.data);
	drp_buf_free(&b);
	return r;
}

static char *buf_str(drp_buf_t *b)
{
	char *r = drp_strndup(drp_buf_head(b), drp_buf_pending(b));
	drp_buf_free(b);
	return r;
}

static bool valid_payload_hash(const char *h)
{
	if (strcmp(h, DRP_S3SIG_UNSIGNED_PAYLOAD) == 0)
		return true;
	if (strlen(h) != 64)
		return false;
	for (; *h; h++)
		if (!((*h >= '0' && *h <= '9') || (*h >= 'a' && *h <= 'f')))
			return false;
	return true;
}

static int check_request(const drp_s3sig_creds_t *c, const drp_s3sig_req_t *r)
{
	if (c == NULL || r == NULL || c->access_key == NULL ||
	    c->secret_key == NULL || c->region == NULL ||
	    *c->access_key == '\0' || *c->region == '\0')
		return -EINVAL;
	/* The access key and region go into the Authorization header, the
	 * host into Host: nothing that could end a header line. */
	if (has_ctl(c->access_key) || has_ctl(c->region) ||
	    (c->service && (has_ctl(c->service) || *c->service == '\0')))
		return -EINVAL;
	if (!is_token(r->method) || r->host == NULL || *r->host == '\0' ||
	    has_ctl(r->host) || strpbrk(r->host, " \t") != NULL ||
	    r->path == NULL || r->path[0] != '/')
		return -EINVAL;
	if ((r->nquery > 0 && r->query == NULL) ||
	    (r->nheaders > 0 && r->headers == NULL))
		return -EINVAL;
	for (size_t i = 0; i < r->nquery; i++)
		if (r->query[i].name == NULL)
			return -EINVAL;
	for (size_t i = 0; i < r->nheaders; i++) {
		const drp_s3sig_kv_t *h = &r->headers[i];
		if (!is_token(h->name) || h->value == NULL ||
		    has_ctl(h->value) || reserved_header(h->name))
			return -EINVAL;
	}
	if (r->payload_hash && !valid_payload_hash(r->payload_hash))
		return -EINVAL;
	return 0;
}

int drp_s3sig_sign(const drp_s3sig_creds_t *c, const drp_s3sig_req_t *r,
		   drp_s3sig_t *out)
{
	memset(out, 0, sizeof(*out));
	int err = check_request(c, r);
	if (err)
		return err;
	struct tm tm;
	if (gmtime_r(&r->now, &tm) == NULL || tm.tm_year < 70 ||
	    tm.tm_year > 9999 - 1900)
		return -EINVAL;
	strftime(out->amz_date, sizeof(out->amz_date), "%Y%m%dT%H%M%SZ", &tm);
	char date8[9];
	memcpy(date8, out->amz_date, 8);
	date8[8] = '\0';
	const char *service = c->service ? c->service : "s3";
	const char *payload =
		r->payload_hash ? r->payload_hash : DRP_S3SIG_EMPTY_SHA256;
	bool content_header = !(r->flags & DRP_S3SIG_NO_CONTENT_HEADER);
	if (content_header)
		snprintf(out->content_sha256, sizeof(out->content_sha256), "%s",
			 payload);

	/* Canonical URI and query; together they are the request-target. */
	drp_buf_t target = {0};
	uri_encode(&target, r->path, true);
	size_t path_len = drp_buf_pending(&target);
	struct cparam *qp = drp_calloc(r->nquery + 1, sizeof(*qp));
	for (size_t i = 0; i < r->nquery; i++) {
		qp[i].name = encode_dup(r->query[i].name, false);
		qp[i].value = encode_dup(
			r->query[i].value ? r->query[i].value : "", false);
	}
	qsort(qp, r->nquery, sizeof(*qp), cparam_cmp);
	for (size_t i = 0; i < r->nquery; i++)
		drp_buf_printf(&target, "%s%s=%s", i ? "&" : "?", qp[i].name,
			       qp[i].value);

	/* Canonical headers: the caller's plus the signer's, sorted by
	 * name (stable: duplicates keep their order and are joined). */
	size_t nh = r->nheaders + 3;
	struct chdr *h = drp_calloc(nh, sizeof(*h));
	size_t n = 0;
	h[n++] = (struct chdr){drp_strdup("host"), trimall_dup(r->host), 0};
	h[n++] = (struct chdr){drp_strdup("x-amz-date"),
			       drp_strdup(out->amz_date), 0};
	if (content_header)
		h[n++] = (struct chdr){drp_strdup("x-amz-content-sha256"),
				       drp_strdup(payload), 0};
	for (size_t i = 0; i < r->nheaders; i++)
		h[n++] = (struct chdr){lower_dup(r->headers[i].name),
				       trimall_dup(r->headers[i].value), i + 1};
	qsort(h, n, sizeof(*h), chdr_cmp);

	drp_buf_t creq = {0}, signed_hdrs = {0};
	drp_buf_printf(&creq, "%s\n%.*s\n%s\n", r->method, (int)path_len,
		       drp_buf_head(&target),
		       r->nquery ? drp_buf_head(&target) + path_len + 1 : "");
	for (size_t i = 0; i < n; i++) {
		bool dup = i > 0 && strcmp(h[i].name, h[i - 1].name) == 0;
		if (dup) {
			drp_buf_printf(&creq, ",%s", h[i].value);
			continue;
		}
		if (i > 0)
			drp_buf_append(&creq, "\n", 1);
		drp_buf_printf(&creq, "%s:%s", h[i].name, h[i].value);
		drp_buf_printf(&signed_hdrs, "%s%s", i ? ";" : "", h[i].name);
	}
	drp_buf_printf(&creq, "\n\n%.*s\n%s",
		       (int)drp_buf_pending(&signed_hdrs),
		       drp_buf_head(&signed_hdrs), payload);

	char creq_hash[65];
	drp_s3sig_sha256_hex(drp_buf_head(&creq), drp_buf_pending(&creq),
			     creq_hash);
	drp_buf_t sts = {0};
	drp_buf_printf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s",
		       out->amz_date, date8, c->region, service, creq_hash);

	uint8_t key[32], sig[32];
	drp_s3sig_signing_key(c->secret_key, date8, c->region, service, key);
	hmac(key, sizeof(key), drp_buf_head(&sts), drp_buf_pending(&sts), sig);
	explicit_bzero(key, sizeof(key));
	hex(sig, sizeof(sig), out->signature);

	drp_buf_t auth = {0};
	drp_buf_printf(&auth,
		       "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, "
		       "SignedHeaders=%.*s, Signature=%s",
		       c->access_key, date8, c->region, service,
		       (int)drp_buf_pending(&signed_hdrs),
		       drp_buf_head(&signed_hdrs), out->signature);

	out->target = buf_str(&target);
	out->canonical_request = buf_str(&creq);
	out->string_to_sign = buf_str(&sts);
	out->authorization = buf_str(&auth);
	drp_buf_free(&signed_hdrs);
	for (size_t i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
	for (size_t i = 0; i < r->nquery; i++) {
		free(qp[i].name);
		free(qp[i].value);
	}
	free(qp);
	return 0;
}

void drp_s3sig_free(drp_s3sig_t *s)
{
	DRP_FREE(s->target);
	DRP_FREE(s->authorization);
	DRP_FREE(s->canonical_request);
	DRP_FREE(s->string_to_sign);
}

static bool bucket_valid(const char *b, bool virtual_host)
{
	size_t n = strlen(b);
	if (n < 3 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = b[i];
		bool alnum =
			(ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
		if (!alnum && ch != '-' && ch != '.')
			return false;
		if (!alnum && (i == 0 || i == n - 1))
			return false;
		if (ch == '.' && virtual_host)
			return false;
	}
	return true;
}

int drp_s3_address(drp_s3_addressing_t how, const char *endpoint,
		   const char *bucket, const char *key, char **host,
		   char **path)
{
	*host = *path = NULL;
	if (endpoint == NULL || *endpoint == '\0' || has_ctl(endpoint) ||
	    strpbrk(endpoint, " \t/") != NULL || bucket == NULL ||
	    key == NULL || (how != DRP_S3_PATH && how != DRP_S3_VIRTUAL) ||
	    !bucket_valid(bucket, how == DRP_S3_VIRTUAL))
		return -EINVAL;
	drp_buf_t h = {0}, p = {0};
	if (how == DRP_S3_VIRTUAL) {
		drp_buf_printf(&h, "%s.%s", bucket, endpoint);
		drp_buf_printf(&p, "/%s", key);
	} else {
		drp_buf_printf(&h, "%s", endpoint);
		drp_buf_printf(&p, "/%s%s%s", bucket, *key ? "/" : "", key);
	}
	*host = buf_str(&h);
	*path = buf_str(&p);
	return 0;
}
