/* SPDX-License-Identifier: MIT */
#include "registry/s3tier.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cache/digest.h"
#include "http/uri.h"
#include "util/log.h"
#include "util/mem.h"

struct drp_s3tier {
	drp_server_t *srv;
	drp_upstream_conf_t *ucf;
	double age;
	struct drp_worker *w;
	ev_timer timer;
	drp_s3_sweep_t *sw;
};

drp_s3_t *drp_s3tier_client(const drp_conf_t *conf, char *err, size_t errlen)
{
	char secret[1024];
	FILE *fp = fopen(conf->s3_secret_key_file, "re");
	if (fp == NULL) {
		snprintf(err, errlen, "s3_secret_key_file %s: %s",
			 conf->s3_secret_key_file, strerror(errno));
		return NULL;
	}
	size_t n = fread(secret, 1, sizeof(secret) - 1, fp);
	fclose(fp);
	secret[n] = '\0';
	/* One line; what trails it (a newline) is not the secret's. */
	secret[strcspn(secret, "\r\n")] = '\0';
	drp_s3_conf_t sc = {
		.endpoint = conf->s3_endpoint,
		.bucket = conf->s3_bucket,
		.region = conf->s3_region,
		.access_key = conf->s3_access_key,
		.secret_key = secret,
		.addressing = conf->s3_virtual ? DRP_S3_VIRTUAL : DRP_S3_PATH,
	};
	char e[256];
	drp_s3_t *s3 = drp_s3_new(&sc, e, sizeof(e));
	explicit_bzero(secret, sizeof(secret));
	if (s3 == NULL)
		snprintf(err, errlen, "[cache] s3: %s", e);
	return s3;
}

drp_s3tier_t *drp_s3tier_new(drp_server_t *srv, drp_upstream_conf_t *ucf,
			     double abandoned_after)
{
	drp_s3tier_t *t = DRP_NEW(drp_s3tier_t);
	t->srv = srv;
	t->ucf = drp_upstream_conf_ref(ucf);
	t->age = abandoned_after;
	return t;
}

static void swept_cb(void *arg, int err, unsigned listed, unsigned aborted)
{
	drp_s3tier_t *t = arg;
	t->sw = NULL;
	if (err == 0 && aborted > 0)
		drp_log_notice(DRP_LOG_CACHE,
			       "S3 sweep: %u unfinished upload(s), %u aborted",
			       listed, aborted);
}

static void timer_cb(struct ev_loop *loop, ev_timer *tm, int revents)
{
	drp_s3tier_t *t = DRP_CONTAINER_OF(tm, drp_s3tier_t, timer);
	if (t->sw || atomic_load(&t->srv->draining))
		return;
	t->sw = drp_s3_sweep(t->srv->s3, &t->w->upstream, t->ucf, "blobs/",
			     t->age, swept_cb, t);
}

void drp_s3tier_run(struct drp_worker *w, void *arg)
{
	drp_s3tier_t *t = arg;
	t->w = w;
	double every = t->age / 2;
	if (every < 1)
		every = 1;
	if (every > 3600)
		every = 3600;
	ev_timer_init(&t->timer, timer_cb, 0., every);
	ev_timer_start(w->loop, &t->timer);
	drp_log_notice(DRP_LOG_CACHE,
		       "S3 tier %s: unfinished uploads older than %.0f s are "
		       "aborted (checked every %.0f s)",
		       drp_s3_describe(t->srv->s3), t->age, every);
}

void drp_s3tier_worker_stop(drp_s3tier_t *t, struct drp_worker *w)
{
	if (t == NULL || t->w != w)
		return;
	ev_timer_stop(w->loop, &t->timer);
	/* Its uploads' aborts are not waited for: the next sweep (this
	 * proxy's after a restart, or another's) takes what is left. */
	drp_s3_sweep_cancel(t->sw);
	t->sw = NULL;
	t->w = NULL;
}

void drp_s3tier_free(drp_s3tier_t *t)
{
	if (t == NULL)
		return;
	drp_upstream_conf_unref(t->ucf);
	free(t);
}

/* ---- tag records ---- */

/* Printable ASCII without the space: safe in a key, a header value, and
 * as one field of a record's line. */
static bool token_text(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

int drp_s3tier_tag_key(char *buf, size_t buflen, const char *registry,
		       const char *repo, const char *tag,
		       const char *accept_key)
{
	if (!token_text(registry, strlen(registry)) ||
	    !token_text(repo, strlen(repo)) || !token_text(tag, strlen(tag)) ||
	    strchr(tag, '/') != NULL ||
	    !token_text(accept_key, strlen(accept_key)))
		return -EINVAL;
	uint8_t bin[DRP_DIGEST_LEN];
	char hex[2 * DRP_DIGEST_LEN + 1];
	drp_digest_buf(accept_key, strlen(accept_key), bin);
	drp_digest_hex(bin, hex);
	int n = snprintf(buf, buflen, "tags/%s/%s/%s/%.32s", registry, repo,
			 tag, hex);
	if (n < 0 || (size_t)n >= buflen || n > DRP_CACHE_KEY_MAX)
		return -ENAMETOOLONG;
	return n;
}

static bool sha256_digest(const char *s, size_t n)
{
	bool sha256 = false;
	return n == DRP_DIGEST_STRLEN && drp_digest_valid(s, n, &sha256) &&
	       sha256;
}

int drp_s3tier_tag_format(char *buf, size_t buflen, const char *digest,
			  const char *media_type, const char *accept_key)
{
	size_t ml = strlen(media_type);
	if (!sha256_digest(digest, strlen(digest)) ||
	    !token_text(media_type, ml) || ml > DRP_CACHE_MEDIA_TYPE_MAX ||
	    !token_text(accept_key, strlen(accept_key)))
		return -EINVAL;
	int n = snprintf(buf, buflen, "%s %s %s\n", digest, media_type,
			 accept_key);
	if (n < 0 || (size_t)n >= buflen || n > DRP_S3TIER_TAG_RECORD_MAX)
		return -ENAMETOOLONG;
	return n;
}

int drp_s3tier_tag_parse(const char *body, size_t len, const char *accept_key,
			 drp_cache_tag_t *out)
{
	if (len > DRP_S3TIER_TAG_RECORD_MAX)
		return -EFBIG;
	/* One line: the newline last, and only there. */
	if (len == 0 || body[len - 1] != '\n' ||
	    memchr(body, '\n', len - 1) != NULL)
		return -EBADMSG;
	const char *f[3];
	size_t fl[3];
	const char *p = body, *end = body + len - 1;
	for (int i = 0; i < 3; i++) {
		const char *sp =
			i < 2 ? memchr(p, ' ', (size_t)(end - p)) : end;
		if (sp == NULL)
			return -EBADMSG;
		f[i] = p;
		fl[i] = (size_t)(sp - p);
		if (!token_text(f[i], fl[i]))
			return -EBADMSG; /* also: two spaces, a control byte */
		p = sp + 1;
	}
	if (!sha256_digest(f[0], fl[0]) || fl[1] > DRP_CACHE_MEDIA_TYPE_MAX)
		return -EBADMSG;
	if (fl[2] != strlen(accept_key) || memcmp(f[2], accept_key, fl[2]) != 0)
		return -ESTALE;
	memset(out, 0, sizeof(*out));
	memcpy(out->digest, f[0], fl[0]);
	memcpy(out->media_type, f[1], fl[1]);
	return 0;
}

int64_t drp_s3tier_record_age(const char *date, const char *last_modified)
{
	int64_t now = drp_s3_parse_time(date);
	int64_t lm = drp_s3_parse_time(last_modified);
	if (now < 0 || lm < 0 || lm > now)
		return -1;
	return now - lm;
}
