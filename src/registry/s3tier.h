/* SPDX-License-Identifier: MIT */
/*
 * The S3 tier's own chores, apart from the requests: the client made
 * from [cache] (drp_s3tier_client), and the sweep of multipart uploads
 * that a proxy left unfinished (killed mid-fill, or its abort failed):
 * at start and then every s3_abandoned_after / 2 (1 s .. 1 h), on the
 * first worker's loop, uploads under blobs/ older than
 * s3_abandoned_after by the store's clock are aborted. Every proxy of a
 * fleet sweeps; an abort of an upload another already aborted is a 404,
 * harmless. (A bucket lifecycle rule, AbortIncompleteMultipartUpload,
 * does the same where the store has one.)
 */
#ifndef DRP_REGISTRY_S3TIER_H
#define DRP_REGISTRY_S3TIER_H

#include "conf/conf.h"
#include "core/daemon.h"
#include "upstream/s3.h"

/* The client of conf's [cache] s3_* keys; reads s3_secret_key_file
 * (blocks). NULL and err filled on failure. */
drp_s3_t *drp_s3tier_client(const drp_conf_t *conf, char *err, size_t errlen);

typedef struct drp_s3tier drp_s3tier_t;
/* ucf: the upstream rules the sweeps' requests use (a reference is
 * taken). Main thread, before the workers start. */
drp_s3tier_t *drp_s3tier_new(drp_server_t *srv, drp_upstream_conf_t *ucf,
			     double abandoned_after);
/* Start sweeping on w's loop: a drp_worker_call_fn, arg the tier. */
void drp_s3tier_run(struct drp_worker *w, void *arg);
/* After the loops ended (nothing runs on them any more). */
void drp_s3tier_free(drp_s3tier_t *t);

#endif
