/* SPDX-License-Identifier: MIT */
#include "registry/s3tier.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

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

void drp_s3tier_free(drp_s3tier_t *t)
{
	if (t == NULL)
		return;
	/* The loop is gone: a sweep still under way is dropped with it. */
	drp_upstream_conf_unref(t->ucf);
	free(t);
}
