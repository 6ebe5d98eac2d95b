/* SPDX-License-Identifier: MIT */
/*
 * The daemon's Prometheus metrics: fixed label tables, atomic counters,
 * histograms with fixed buckets, and their text exposition (format
 * 0.0.4). Every layer reports through the narrow functions below; the
 * admin endpoint renders them (drp_metrics_render) beside what it reads
 * from the server itself (connections, cache, process).
 *
 * Bounded label sets, so that no client can grow the series:
 *  - registry: the canonical name of a configured registry ("docker.io",
 *    "quay.io", "*.pkg.dev", "host:5000") or "other". Names are interned
 *    once per configuration generation (drp_metrics_regmap_add) into a
 *    table of DRP_METRICS_REGISTRIES slots, slot 0 being "other"; a name
 *    stays interned across reloads (its counters keep counting), and
 *    names beyond the table count as "other".
 *  - method: get, head, post, put, patch, delete, connect, other.
 *  - result: enum drp_metrics_result; code: the status class, 1xx..5xx.
 *  - plugin, section: interned like registry names, from the
 *    configuration (plugins: at most DRP_METRICS_NAMES, slot 0 "other").
 *  - the upstream's code: DRP_METRICS_UPSTREAM_CODES exact codes, any
 *    other one by its class ("4xx").
 *
 * The hot path (one request's end, one upstream response, body bytes)
 * is a few relaxed atomic additions on fixed arrays: no lock and no
 * allocation. Interning (configuration loads, token fetches) takes a
 * mutex; lookups of interned names never do.
 *
 * The state is process-wide, like a Prometheus client library's default
 * registry: the daemon has one set of metrics, and the layers that count
 * (the upstream client, TLS, plugins' token cache) need no pointer to
 * the server for it. Thread-safe; drp_metrics_reset() is for tests.
 */
#ifndef DRP_UTIL_METRICS_H
#define DRP_UTIL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Slots of the registry label, "other" (slot 0) included. */
#define DRP_METRICS_REGISTRIES 64
/* Slots of the plugin and section labels each. */
#define DRP_METRICS_NAMES 64
/* Longest interned name (longer ones are cut). */
#define DRP_METRICS_NAME_MAX 127

/* The result label (append-only). */
enum drp_metrics_result {
	DRP_MR_HIT = 0,
	DRP_MR_MISS = 1,
	DRP_MR_COALESCED = 2,
	DRP_MR_REVALIDATED = 3,
	DRP_MR_STALE = 4,
	DRP_MR_PASS = 5,
	DRP_MR_TUNNEL = 6,
	DRP_MR_ERROR = 7,
	DRP_MR_N = 8,
};

/* Where the bytes sent to a client came from. */
enum drp_metrics_source {
	DRP_MS_NONE = -1, /* answered by the proxy itself: not counted */
	DRP_MS_CACHE = 0,
	DRP_MS_UPSTREAM = 1,
};

enum drp_metrics_tls_side {
	DRP_MTLS_CLIENT = 0,   /* a client's handshake with a forged leaf */
	DRP_MTLS_UPSTREAM = 1, /* the proxy's handshake with an upstream */
};

enum drp_metrics_tls_reason {
	/* client side: the client rejected the forged certificate (it does
	 * not trust the proxy's CA); upstream side: the upstream's
	 * certificate did not verify */
	DRP_MTLS_CERTIFICATE = 0,
	DRP_MTLS_PROTOCOL = 1, /* anything else the handshake failed on */
	DRP_MTLS_TIMEOUT = 2,
};

/* "HIT", "MISS", ... as the access log writes them (any case) ->
 * the label; unknown ones are DRP_MR_PASS. */
enum drp_metrics_result drp_metrics_result_parse(const char *s);
/* The label value: "hit", "miss", ... */
const char *drp_metrics_result_name(enum drp_metrics_result r);

/* ---- the registry label ---- */

/* Intern a registry name; returns its slot (0, "other", when the table
 * is full or name is empty). Takes a lock: configuration loads only. */
unsigned drp_metrics_registry_slot(const char *name);
/* The name of a slot ("other" for 0 and unknown slots). */
const char *drp_metrics_registry_name(unsigned slot);

/*
 * Which registry a host:port belongs to, for one configuration
 * generation: entries of exact hosts and of "*.domain" wildcards (any
 * host with at least one more label in front of ".domain"), each with the
 * registry's canonical name. An exact entry wins over a wildcard, a
 * longer domain over a shorter one. Immutable once built: any thread may
 * look up. Port 0 is 443.
 */
typedef struct drp_metrics_regmap drp_metrics_regmap_t;

drp_metrics_regmap_t *drp_metrics_regmap_new(void)
	__attribute__((malloc, returns_nonnull));
/* host: the exact host, or the domain of a wildcard (without "*.").
 * Interns name. */
void drp_metrics_regmap_add(drp_metrics_regmap_t *m, const char *host,
			    uint16_t port, bool wildcard, const char *name)
	__attribute__((nonnull));
/* The slot for host:port (0 when nothing matches; m may be NULL). */
unsigned drp_metrics_regmap_find(const drp_metrics_regmap_t *m,
				 const char *host, uint16_t port);
void drp_metrics_regmap_free(drp_metrics_regmap_t *m);

/* ---- what the layers report ---- */

/* One request ended (an access-log line): its registry slot, method as
 * received, result, status to the client, body bytes sent and where
 * they came from, its duration and the time to its first response byte
 * (seconds; < 0: none was sent). */
void drp_metrics_request(unsigned reg, const char *method,
			 enum drp_metrics_result result, int status,
			 uint64_t bytes_out, enum drp_metrics_source source,
			 double duration, double first_byte);
/* An upstream's response head (every one: redirects and challenges
 * included), and decoded body bytes received from upstreams. */
void drp_metrics_upstream_response(unsigned reg, int status);
void drp_metrics_upstream_bytes(unsigned reg, uint64_t n);
/* A token fetch of a plugin ("client": the proxy's token flow for
 * clients' own credentials) ended. Interns plugin. */
void drp_metrics_token_fetch(const char *plugin, bool ok);

/* The slot of a [registry] section for its rate-limit gauges (interned;
 * -1 when the table is full). Configuration loads only. */
int drp_metrics_section_slot(const char *section);
/* Docker Hub's rate limit as last seen in a response made with that
 * section's credentials (values < 0 are not recorded). */
void drp_metrics_ratelimit(int section_slot, long limit, long remaining);
/*
 * Parse a "ratelimit-limit" / "ratelimit-remaining" value: "100;w=21600"
 * or "100" -> 100. Returns the number, or -1 if the value does not start
 * with one.
 */
long drp_metrics_ratelimit_parse(const char *v, size_t len);

void drp_metrics_tls_failure(enum drp_metrics_tls_side side,
			     enum drp_metrics_tls_reason reason);
void drp_metrics_forged_certificate(void);
/* Gauges: a fill's upstream fetch started (+1) or ended (-1); a request
 * started (+1) or stopped (-1) waiting on a fill's bytes. */
void drp_metrics_fills_add(int delta);
void drp_metrics_fill_waiters_add(int delta);
/* A manifest request joined another's upstream fetch (registry/mflight.h)
 * instead of making its own. */
void drp_metrics_manifest_coalesced(void);
void drp_metrics_reload(bool ok);
void drp_metrics_digest_mismatch(void);
/* A cold blob was passed through uncached: no room for its announced
 * length on the spool's disk. */
void drp_metrics_fill_no_room(void);

/* The shared S3 tier ([cache] backend = s3): what happened to blobs. */
enum drp_metrics_s3_event {
	DRP_MS3_READ = 0,	 /* a fill read a blob from the bucket */
	DRP_MS3_STORED = 1,	 /* an upload completed (or found it there) */
	DRP_MS3_NOT_STORED = 2,	 /* an upload failed (not a cancel) */
	DRP_MS3_DAMAGED = 3,	 /* a copy did not match: deleted */
	DRP_MS3_UNAVAILABLE = 4, /* a lookup got no answer: upstream */
	DRP_MS3_N = 5,
};
void drp_metrics_s3(enum drp_metrics_s3_event e);
/* Tag records read from the S3 tier, by what was found. */
enum drp_metrics_s3_tag {
	DRP_MS3T_FRESH = 0,	  /* younger than tag_ttl: no upstream GET */
	DRP_MS3T_STALE = 1,	  /* as old as tag_ttl or older */
	DRP_MS3T_MISSING = 2,	  /* none (404) */
	DRP_MS3T_INVALID = 3,	  /* not a valid record: ignored */
	DRP_MS3T_UNAVAILABLE = 4, /* no answer from the bucket */
	DRP_MS3T_N = 5,
};
void drp_metrics_s3_tag(enum drp_metrics_s3_tag o);
/* The fleet's lease ([fleet] redis): who fetched a cold blob. */
enum drp_metrics_lease {
	DRP_ML_TAKEN = 0,  /* this proxy took the lease and fetched */
	DRP_ML_STORED = 1, /* another proxy's fill: read from the bucket */
	DRP_ML_ALONE = 2,  /* fetched without a lease (Redis down, the
			      holder failed, the wait ran out) */
	DRP_ML_N = 3,
};
void drp_metrics_lease(enum drp_metrics_lease o);
/* A lease holder's check before completing its upload (the values of
 * enum drp_lease_check, registry/fleet.h): 0 held, 1 lapsed,
 * 2 unanswered but held, 3 unanswered and stale. */
#define DRP_MLC_N 4
void drp_metrics_lease_check(unsigned c);
/* A worker's Redis connection went from up to unavailable. */
void drp_metrics_redis_down(void);

/* ---- exposition ---- */

/* Append every metric of this module, with its HELP and TYPE lines even
 * when it has no sample yet (so that a scrape names every family). */
void drp_metrics_render(drp_buf_t *b) __attribute__((nonnull));
/* Append a label value escaped as the text format wants (backslash,
 * double quote, newline). */
void drp_metrics_label_value(drp_buf_t *b, const char *v)
	__attribute__((nonnull));

/* Tests: zero every counter and forget interned names. */
void drp_metrics_reset(void);

#endif
