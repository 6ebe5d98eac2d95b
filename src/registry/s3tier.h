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

#include <stdint.h>

#include "cache/cache.h"
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
/* w's loop is about to end (its stop hook, on that loop): if the sweeps
 * run there, the timer stops and a sweep under way is cancelled (its
 * requests and their memory go; an upload it was aborting is left to
 * the next sweep). NULL t: nothing. */
void drp_s3tier_worker_stop(drp_s3tier_t *t, struct drp_worker *w);
/* After the loops ended and drp_s3tier_worker_stop() ran on the
 * sweeps' loop. */
void drp_s3tier_free(drp_s3tier_t *t);

/*
 * Tag records in the bucket: what a tag resolved to for one set of
 * accepted media types, shared by the fleet so that a proxy that never
 * saw the tag asks no upstream GET while the record is fresh. The object
 * is "tags/<registry>/<repository>/<tag>/<a>", <a> the first 32 hex
 * digits of the SHA-256 of the accept key (drp_cache_accept_key(): the
 * upstream's answer depends on it, so one Accept set's record never
 * answers another's); its body one line,
 * "<digest> <media type> <accept key>\n". The bucket is shared, not
 * trusted: a record is parsed strictly and ignored when anything is off.
 */
/* Longest record read (bytes); a bigger object is not a record. */
#define DRP_S3TIER_TAG_RECORD_MAX 1024

/* The object key. 0, -EINVAL (an empty field, or one with a space, a
 * control character or a byte above 0x7e; a '/' in the tag), or
 * -ENAMETOOLONG (DRP_CACHE_KEY_MAX or buflen exceeded). */
int drp_s3tier_tag_key(char *buf, size_t buflen, const char *registry,
		       const char *repo, const char *tag,
		       const char *accept_key);
/* The record's body, NUL-ended. Its length, or -EINVAL (a digest other
 * than sha256, a media type that is not header-safe token text, an
 * accept key with a space or a control character), -ENAMETOOLONG. */
int drp_s3tier_tag_format(char *buf, size_t buflen, const char *digest,
			  const char *media_type, const char *accept_key);
/* Parse a record read back: 0 and out's digest and media_type set
 * (size and fetched_at 0), or -EBADMSG (not exactly one line of three
 * fields, a digest that is not "sha256:<64 lower hex>", a media type
 * empty, longer than DRP_CACHE_MEDIA_TYPE_MAX or not header-safe),
 * -EFBIG (longer than DRP_S3TIER_TAG_RECORD_MAX), -ESTALE (a valid
 * record for another accept key). */
int drp_s3tier_tag_parse(const char *body, size_t len, const char *accept_key,
			 drp_cache_tag_t *out);
/* A record's age in seconds by the store's clock: the answer's Date minus
 * its Last-Modified (HTTP dates). -1 if either is missing or not a date,
 * or Last-Modified is after Date. */
int64_t drp_s3tier_record_age(const char *date, const char *last_modified);

#endif
