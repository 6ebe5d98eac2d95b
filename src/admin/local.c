/* SPDX-License-Identifier: MIT */
#include "admin/local.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "admin/setup.h"
#include "util/buf.h"
#include "util/mem.h"

static bool path_is(const char *p, size_t len, const char *want)
{
	return strlen(want) == len && memcmp(p, want, len) == 0;
}

static void metrics(drp_server_t *srv, drp_buf_t *b)
{
	const drp_stats_t *s = &srv->stats;
	struct {
		const char *name, *help, *type;
		unsigned long v;
	} m[] = {
		{"drp_connections_total", "Client connections accepted.",
		 "counter", atomic_load(&s->connections)},
		{"drp_connections_open", "Client connections open.", "gauge",
		 atomic_load(&s->connections_open)},
		{"drp_requests_total", "Requests received.", "counter",
		 atomic_load(&s->requests)},
		{"drp_tunnels_total", "CONNECT tunnels relayed.", "counter",
		 atomic_load(&s->tunnels)},
		{"drp_refused_total", "Requests refused by policy.", "counter",
		 atomic_load(&s->refused)},
		{"drp_upstream_errors_total",
		 "Upstream failures answered with 502/504 or aborted.",
		 "counter", atomic_load(&s->upstream_errors)},
		{"drp_bytes_to_clients_total",
		 "Response body bytes sent to clients.", "counter",
		 atomic_load(&s->bytes_client)},
	};
	for (size_t i = 0; i < DRP_ARRAY_SIZE(m); i++)
		drp_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %lu\n",
			       m[i].name, m[i].help, m[i].name, m[i].type,
			       m[i].name, m[i].v);
	struct {
		const char *result;
		unsigned long v;
	} r[] = {
		{"HIT", atomic_load(&s->hit)},
		{"MISS", atomic_load(&s->miss)},
		{"COALESCED", atomic_load(&s->coalesced)},
		{"REVALIDATED", atomic_load(&s->revalidated)},
		{"STALE", atomic_load(&s->stale)},
	};
	drp_buf_printf(b,
		       "# HELP drp_cache_requests_total Cacheable requests "
		       "by result.\n# TYPE drp_cache_requests_total counter\n");
	for (size_t i = 0; i < DRP_ARRAY_SIZE(r); i++)
		drp_buf_printf(b,
			       "drp_cache_requests_total{result=\"%s\"} %lu\n",
			       r[i].result, r[i].v);
	drp_buf_printf(b,
		       "# HELP drp_digest_mismatches_total Upstream bodies "
		       "that did not match their digest.\n"
		       "# TYPE drp_digest_mismatches_total counter\n"
		       "drp_digest_mismatches_total %lu\n"
		       "# HELP drp_bytes_from_upstream_total Blob bytes "
		       "fetched from upstreams.\n"
		       "# TYPE drp_bytes_from_upstream_total counter\n"
		       "drp_bytes_from_upstream_total %lu\n",
		       atomic_load(&s->digest_mismatches),
		       atomic_load(&s->bytes_upstream));
	if (srv->capi) {
		drp_cache_stats_t cs = srv->cstats;
		srv->capi->stats(srv->cdb, &cs);
		drp_buf_printf(
			b,
			"# HELP drp_cache_objects Objects in the cache.\n"
			"# TYPE drp_cache_objects gauge\ndrp_cache_objects "
			"%llu\n"
			"# HELP drp_cache_bytes Bytes in the cache.\n"
			"# TYPE drp_cache_bytes gauge\ndrp_cache_bytes %llu\n"
			"# HELP drp_cache_max_bytes The cache's budget.\n"
			"# TYPE drp_cache_max_bytes gauge\n"
			"drp_cache_max_bytes %llu\n"
			"# HELP drp_cache_evictions_total Objects evicted.\n"
			"# TYPE drp_cache_evictions_total counter\n"
			"drp_cache_evictions_total %llu\n"
			"# HELP drp_cache_bytes_read_total Bytes served from "
			"the cache.\n# TYPE drp_cache_bytes_read_total "
			"counter\n"
			"drp_cache_bytes_read_total %llu\n",
			(unsigned long long)cs.objects,
			(unsigned long long)cs.bytes,
			(unsigned long long)cs.max_size,
			(unsigned long long)cs.evictions,
			(unsigned long long)cs.read_bytes);
	}
	drp_buf_printf(b,
		       "# HELP drp_start_time_seconds Start time.\n"
		       "# TYPE drp_start_time_seconds gauge\n"
		       "drp_start_time_seconds %lld\n",
		       (long long)srv->started);
}

int drp_local_answer(drp_server_t *srv, const char *path, size_t len,
		     const char *host, drp_local_response_t *r)
{
	drp_buf_t b = {0};
	r->status = 200;
	if (path_is(path, len, "/")) {
		/* The nginx-based proxy answered 200 here, and the health
		 * probes of its users (compose, Kubernetes) ask for "/". */
		drp_buf_printf(&b, "docker-registry-proxy: use it as an "
				   "HTTP(S) proxy; GET /ca.crt, "
				   "/setup/systemd, /healthz, /metrics\n");
		r->content_type = "text/plain; charset=utf-8";
	} else if (path_is(path, len, "/ca.crt")) {
		size_t n;
		const char *pem = drp_ca_pem(srv->ca, &n);
		drp_buf_append(&b, pem, n);
		r->content_type = "application/x-x509-ca-cert";
	} else if (path_is(path, len, "/healthz")) {
		drp_buf_printf(&b, "ok\n");
		r->content_type = "text/plain; charset=utf-8";
	} else if (path_is(path, len, "/metrics")) {
		metrics(srv, &b);
		r->content_type = "text/plain; version=0.0.4";
	} else if (path_is(path, len, "/setup/systemd")) {
		char url[300];
		snprintf(url, sizeof(url), "http://%s",
			 host && *host ? host : "127.0.0.1:3128");
		char *script = drp_setup_systemd_script(url);
		if (script == NULL) {
			r->status = 400;
			drp_buf_printf(&b, "invalid Host header for the set-up "
					   "script\n");
			r->content_type = "text/plain; charset=utf-8";
		} else {
			drp_buf_append(&b, script, strlen(script));
			free(script);
			r->content_type = "text/x-shellscript; charset=utf-8";
		}
	} else {
		return -ENOENT;
	}
	r->len = drp_buf_pending(&b);
	r->body = drp_malloc(r->len + 1);
	memcpy(r->body, drp_buf_head(&b), r->len);
	drp_buf_free(&b);
	return 0;
}

void drp_local_response_free(drp_local_response_t *r)
{
	DRP_FREE(r->body);
}
