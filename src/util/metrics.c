/* SPDX-License-Identifier: MIT */
#include "util/metrics.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/mem.h"

/* ---- label tables ---- */

static const char *const result_names[DRP_MR_N] = {
	"hit",	 "miss", "coalesced", "revalidated",
	"stale", "pass", "tunnel",    "error",
};

#define N_METHODS 8
static const char *const method_names[N_METHODS] = {
	"get", "head", "post", "put", "patch", "delete", "connect", "other",
};

#define N_CLASSES 5 /* 1xx .. 5xx */

/* Upstream codes counted one by one; the others by class. */
static const int upstream_codes[] = {
	200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400,
	401, 403, 404, 405, 409, 416, 429, 500, 502, 503, 504,
};
#define N_UCODES (sizeof(upstream_codes) / sizeof(upstream_codes[0]))

/* Seconds. The same buckets for both histograms: a manifest hit takes
 * milliseconds, a cold layer minutes. */
static const double buckets[] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
	2.5,   5,    10,    30,	  60,  120,  300,
};
#define N_BUCKETS (sizeof(buckets) / sizeof(buckets[0]))

/* Interned names: appended under the lock, then published by storing
 * n (release); readers scan [0, n) without a lock. */
typedef struct names {
	pthread_mutex_t lock;
	atomic_uint n;
	unsigned first; /* 1 if slot 0 is the fixed "other" */
	char v[DRP_METRICS_NAMES > DRP_METRICS_REGISTRIES
		       ? DRP_METRICS_NAMES
		       : DRP_METRICS_REGISTRIES][DRP_METRICS_NAME_MAX + 1];
	unsigned cap;
} names_t;

typedef struct histogram {
	atomic_ulong counts[N_BUCKETS + 1]; /* per bucket, not cumulative */
	atomic_ullong sum_us;
} histogram_t;

static struct {
	names_t registries, plugins, sections;
	atomic_ulong requests[DRP_METRICS_REGISTRIES][N_METHODS][DRP_MR_N]
			     [N_CLASSES];
	atomic_ulong sent[DRP_METRICS_REGISTRIES][2];
	atomic_ulong up_bytes[DRP_METRICS_REGISTRIES];
	atomic_ulong up_resp[DRP_METRICS_REGISTRIES][N_UCODES + N_CLASSES];
	histogram_t duration[DRP_MR_N], first_byte[DRP_MR_N];
	atomic_ulong tokens[DRP_METRICS_NAMES][2]; /* ok, failed */
	atomic_long rl_limit[DRP_METRICS_NAMES],
		rl_remaining[DRP_METRICS_NAMES];
	atomic_ulong tls[2][3];
	atomic_ulong forged;
	atomic_long fills, fill_waiters;
	atomic_ulong manifest_coalesced;
	atomic_ulong reloads[2]; /* ok, failed */
	atomic_ulong digest_mismatches;
	atomic_ulong fill_no_room;
	atomic_ulong s3[DRP_MS3_N];
	atomic_ulong s3_tags[DRP_MS3T_N];
	atomic_ulong leases[DRP_ML_N];
	atomic_ulong lease_checks[DRP_MLC_N];
	atomic_ulong redis_down;
} M = {
	.registries = {.lock = PTHREAD_MUTEX_INITIALIZER,
		       .n = 1,
		       .first = 1,
		       .v = {"other"},
		       .cap = DRP_METRICS_REGISTRIES},
	.plugins = {.lock = PTHREAD_MUTEX_INITIALIZER,
		    .n = 1,
		    .first = 1,
		    .v = {"other"},
		    .cap = DRP_METRICS_NAMES},
	.sections = {.lock = PTHREAD_MUTEX_INITIALIZER,
		     .cap = DRP_METRICS_NAMES},
	/* No value until a response with the section's credentials says
	 * one. */
	.rl_limit = {[0 ... DRP_METRICS_NAMES - 1] = -1},
	.rl_remaining = {[0 ... DRP_METRICS_NAMES - 1] = -1},
};

#define ADD(a, v) atomic_fetch_add_explicit(&(a), (v), memory_order_relaxed)
#define GET(a)	  atomic_load_explicit(&(a), memory_order_relaxed)

static int names_find(names_t *t, const char *name)
{
	unsigned n = atomic_load_explicit(&t->n, memory_order_acquire);
	for (unsigned i = t->first; i < n; i++)
		if (strncmp(t->v[i], name, DRP_METRICS_NAME_MAX) == 0)
			return (int)i;
	return -1;
}

/* -1 when full. */
static int names_intern(names_t *t, const char *name)
{
	int i = names_find(t, name);
	if (i >= 0)
		return i;
	pthread_mutex_lock(&t->lock);
	i = names_find(t, name);
	unsigned n = atomic_load_explicit(&t->n, memory_order_relaxed);
	if (i < 0 && n < t->cap) {
		snprintf(t->v[n], sizeof(t->v[n]), "%s", name);
		atomic_store_explicit(&t->n, n + 1, memory_order_release);
		i = (int)n;
	}
	pthread_mutex_unlock(&t->lock);
	return i;
}

static const char *names_get(names_t *t, unsigned i)
{
	unsigned n = atomic_load_explicit(&t->n, memory_order_acquire);
	return i < n ? t->v[i] : NULL;
}

enum drp_metrics_result drp_metrics_result_parse(const char *s)
{
	for (unsigned i = 0; s && i < DRP_MR_N; i++)
		if (strcasecmp(s, result_names[i]) == 0)
			return (enum drp_metrics_result)i;
	if (s && strcasecmp(s, "tls_error") == 0)
		return DRP_MR_ERROR;
	return DRP_MR_PASS;
}

const char *drp_metrics_result_name(enum drp_metrics_result r)
{
	return (unsigned)r < DRP_MR_N ? result_names[r] : "pass";
}

static unsigned method_index(const char *m)
{
	static const char *const upper[N_METHODS - 1] = {
		"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT"};
	for (unsigned i = 0; m && i < N_METHODS - 1; i++)
		if (strcmp(m, upper[i]) == 0)
			return i;
	return N_METHODS - 1;
}

static unsigned class_index(int status)
{
	if (status < 200)
		return 0;
	if (status >= 500)
		return 4;
	return (unsigned)(status / 100 - 1);
}

/* ---- registries ---- */

unsigned drp_metrics_registry_slot(const char *name)
{
	if (name == NULL || name[0] == '\0' || strcmp(name, "other") == 0)
		return 0;
	int i = names_intern(&M.registries, name);
	return i < 0 ? 0 : (unsigned)i;
}

const char *drp_metrics_registry_name(unsigned slot)
{
	const char *n = names_get(&M.registries, slot);
	return n ? n : "other";
}

struct regent {
	char *host;
	size_t len;
	uint16_t port;
	bool wildcard;
	unsigned slot;
};

struct drp_metrics_regmap {
	struct regent *e;
	unsigned n;
};

drp_metrics_regmap_t *drp_metrics_regmap_new(void)
{
	return DRP_NEW(drp_metrics_regmap_t);
}

void drp_metrics_regmap_add(drp_metrics_regmap_t *m, const char *host,
			    uint16_t port, bool wildcard, const char *name)
{
	if (port == 0)
		port = 443;
	unsigned slot = drp_metrics_registry_slot(name);
	for (unsigned i = 0; i < m->n; i++)
		if (m->e[i].port == port && m->e[i].wildcard == wildcard &&
		    strcasecmp(m->e[i].host, host) == 0)
			return; /* the first name given wins */
	m->e = drp_realloc(m->e, (m->n + 1) * sizeof(*m->e));
	m->e[m->n] = (struct regent){.host = drp_strdup(host),
				     .len = strlen(host),
				     .port = port,
				     .wildcard = wildcard,
				     .slot = slot};
	m->n++;
}

unsigned drp_metrics_regmap_find(const drp_metrics_regmap_t *m,
				 const char *host, uint16_t port)
{
	if (m == NULL || host == NULL)
		return 0;
	if (port == 0)
		port = 443;
	size_t hl = strlen(host), best = 0;
	unsigned slot = 0;
	for (unsigned i = 0; i < m->n; i++) {
		const struct regent *e = &m->e[i];
		if (e->port != port)
			continue;
		if (!e->wildcard) {
			if (e->len == hl && strcasecmp(e->host, host) == 0)
				return e->slot;
			continue;
		}
		/* "*.domain": at least one label in front of ".domain". */
		if (hl > e->len + 1 && e->len + 1 > best &&
		    host[hl - e->len - 1] == '.' &&
		    strcasecmp(host + hl - e->len, e->host) == 0) {
			best = e->len + 1;
			slot = e->slot;
		}
	}
	return slot;
}

void drp_metrics_regmap_free(drp_metrics_regmap_t *m)
{
	if (m == NULL)
		return;
	for (unsigned i = 0; i < m->n; i++)
		free(m->e[i].host);
	free(m->e);
	free(m);
}

/* ---- reports ---- */

static void observe(histogram_t *h, double secs)
{
	unsigned i = 0;
	while (i < N_BUCKETS && secs > buckets[i])
		i++;
	ADD(h->counts[i], 1);
	ADD(h->sum_us, (unsigned long long)(secs * 1e6 + 0.5));
}

void drp_metrics_request(unsigned reg, const char *method,
			 enum drp_metrics_result result, int status,
			 uint64_t bytes_out, enum drp_metrics_source source,
			 double duration, double first_byte)
{
	if (reg >= DRP_METRICS_REGISTRIES)
		reg = 0;
	if ((unsigned)result >= DRP_MR_N)
		result = DRP_MR_PASS;
	ADD(M.requests[reg][method_index(method)][result][class_index(status)],
	    1);
	if (source != DRP_MS_NONE && bytes_out > 0)
		ADD(M.sent[reg][source], bytes_out);
	observe(&M.duration[result], duration > 0 ? duration : 0);
	if (first_byte >= 0)
		observe(&M.first_byte[result], first_byte);
}

void drp_metrics_upstream_response(unsigned reg, int status)
{
	if (reg >= DRP_METRICS_REGISTRIES)
		reg = 0;
	unsigned col = N_UCODES + class_index(status);
	for (unsigned i = 0; i < N_UCODES; i++)
		if (upstream_codes[i] == status)
			col = i;
	ADD(M.up_resp[reg][col], 1);
}

void drp_metrics_upstream_bytes(unsigned reg, uint64_t n)
{
	if (reg >= DRP_METRICS_REGISTRIES)
		reg = 0;
	ADD(M.up_bytes[reg], n);
}

void drp_metrics_token_fetch(const char *plugin, bool ok)
{
	int i = plugin && plugin[0] ? names_intern(&M.plugins, plugin) : 0;
	ADD(M.tokens[i < 0 ? 0 : i][ok ? 0 : 1], 1);
}

int drp_metrics_section_slot(const char *section)
{
	if (section == NULL || section[0] == '\0')
		return -1;
	return names_intern(&M.sections, section);
}

void drp_metrics_ratelimit(int slot, long limit, long remaining)
{
	if (slot < 0 || slot >= DRP_METRICS_NAMES)
		return;
	if (limit >= 0)
		atomic_store_explicit(&M.rl_limit[slot], limit,
				      memory_order_relaxed);
	if (remaining >= 0)
		atomic_store_explicit(&M.rl_remaining[slot], remaining,
				      memory_order_relaxed);
}

long drp_metrics_ratelimit_parse(const char *v, size_t len)
{
	size_t i = 0;
	while (i < len && (v[i] == ' ' || v[i] == '\t'))
		i++;
	if (i == len || !isdigit((unsigned char)v[i]))
		return -1;
	long n = 0;
	for (; i < len && isdigit((unsigned char)v[i]); i++) {
		if (n > 1000000000L)
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	if (i < len && v[i] != ';' && v[i] != ' ' && v[i] != '\t' &&
	    v[i] != ',')
		return -1;
	return n;
}

void drp_metrics_tls_failure(enum drp_metrics_tls_side side,
			     enum drp_metrics_tls_reason reason)
{
	if ((unsigned)side < 2 && (unsigned)reason < 3)
		ADD(M.tls[side][reason], 1);
}

void drp_metrics_forged_certificate(void)
{
	ADD(M.forged, 1);
}

void drp_metrics_fills_add(int delta)
{
	ADD(M.fills, delta);
}

void drp_metrics_fill_waiters_add(int delta)
{
	ADD(M.fill_waiters, delta);
}

void drp_metrics_manifest_coalesced(void)
{
	ADD(M.manifest_coalesced, 1);
}

void drp_metrics_reload(bool ok)
{
	ADD(M.reloads[ok ? 0 : 1], 1);
}

void drp_metrics_digest_mismatch(void)
{
	ADD(M.digest_mismatches, 1);
}

void drp_metrics_fill_no_room(void)
{
	ADD(M.fill_no_room, 1);
}

void drp_metrics_s3(enum drp_metrics_s3_event e)
{
	if ((unsigned)e < DRP_MS3_N)
		ADD(M.s3[e], 1);
}

void drp_metrics_s3_tag(enum drp_metrics_s3_tag o)
{
	if ((unsigned)o < DRP_MS3T_N)
		ADD(M.s3_tags[o], 1);
}

void drp_metrics_lease(enum drp_metrics_lease o)
{
	if ((unsigned)o < DRP_ML_N)
		ADD(M.leases[o], 1);
}

void drp_metrics_lease_check(unsigned c)
{
	if (c < DRP_MLC_N)
		ADD(M.lease_checks[c], 1);
}

void drp_metrics_redis_down(void)
{
	ADD(M.redis_down, 1);
}

/* ---- exposition ---- */

void drp_metrics_label_value(drp_buf_t *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			drp_buf_printf(b, "\\%c", *v);
		else if (*v == '\n')
			drp_buf_append(b, "\\n", 2);
		else
			drp_buf_append(b, v, 1);
	}
}

static void family(drp_buf_t *b, const char *name, const char *type,
		   const char *help)
{
	drp_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
		       type);
}

/* A counter family with one label: one series per value of it. */
static void labelled(drp_buf_t *b, const char *name, const char *help,
		     const char *label, const char *const *values,
		     const atomic_ulong *counters, unsigned n)
{
	family(b, name, "counter", help);
	for (unsigned i = 0; i < n; i++)
		drp_buf_printf(b, "%s{%s=\"%s\"} %lu\n", name, label, values[i],
			       GET(counters[i]));
}

static void histogram(drp_buf_t *b, const char *name, const char *help,
		      histogram_t *h)
{
	family(b, name, "histogram", help);
	for (unsigned r = 0; r < DRP_MR_N; r++) {
		unsigned long c[N_BUCKETS + 1], total = 0;
		for (unsigned i = 0; i <= N_BUCKETS; i++) {
			c[i] = GET(h[r].counts[i]);
			total += c[i];
		}
		if (total == 0)
			continue;
		unsigned long cum = 0;
		for (unsigned i = 0; i < N_BUCKETS; i++) {
			cum += c[i];
			drp_buf_printf(b,
				       "%s_bucket{result=\"%s\",le=\"%g\"} "
				       "%lu\n",
				       name, result_names[r], buckets[i], cum);
		}
		/* _count is the +Inf bucket, read once: never out of step
		 * with the buckets within one scrape. */
		drp_buf_printf(b,
			       "%s_bucket{result=\"%s\",le=\"+Inf\"} %lu\n"
			       "%s_sum{result=\"%s\"} %.6f\n"
			       "%s_count{result=\"%s\"} %lu\n",
			       name, result_names[r], total, name,
			       result_names[r], (double)GET(h[r].sum_us) / 1e6,
			       name, result_names[r], total);
	}
}

static void reg_label(drp_buf_t *b, unsigned reg)
{
	drp_buf_append(b, "registry=\"", 10);
	drp_metrics_label_value(b, drp_metrics_registry_name(reg));
	drp_buf_append(b, "\"", 1);
}

void drp_metrics_render(drp_buf_t *b)
{
	unsigned nreg = atomic_load(&M.registries.n);
	family(b, "drp_requests_total", "counter",
	       "Requests answered (one per access-log line), by registry, "
	       "method, cache result and status class.");
	for (unsigned r = 0; r < nreg; r++)
		for (unsigned m = 0; m < N_METHODS; m++)
			for (unsigned x = 0; x < DRP_MR_N; x++)
				for (unsigned c = 0; c < N_CLASSES; c++) {
					unsigned long v =
						GET(M.requests[r][m][x][c]);
					if (v == 0)
						continue;
					drp_buf_printf(b,
						       "drp_requests_total{");
					reg_label(b, r);
					drp_buf_printf(
						b,
						",method=\"%s\",result=\"%s\","
						"code=\"%uxx\"} %lu\n",
						method_names[m],
						result_names[x], c + 1, v);
				}
	family(b, "drp_sent_bytes_total", "counter",
	       "Response body bytes sent to clients, by registry and by "
	       "where they came from (cache or upstream).");
	for (unsigned r = 0; r < nreg; r++)
		for (unsigned s = 0; s < 2; s++) {
			unsigned long v = GET(M.sent[r][s]);
			if (v == 0)
				continue;
			drp_buf_printf(b, "drp_sent_bytes_total{");
			reg_label(b, r);
			drp_buf_printf(b, ",source=\"%s\"} %lu\n",
				       s == DRP_MS_CACHE ? "cache" : "upstream",
				       v);
		}
	family(b, "drp_upstream_received_bytes_total", "counter",
	       "Body bytes received from upstreams, by registry.");
	for (unsigned r = 0; r < nreg; r++) {
		unsigned long v = GET(M.up_bytes[r]);
		if (v == 0)
			continue;
		drp_buf_printf(b, "drp_upstream_received_bytes_total{");
		reg_label(b, r);
		drp_buf_printf(b, "} %lu\n", v);
	}
	family(b, "drp_upstream_responses_total", "counter",
	       "Response heads received from upstreams (redirects and "
	       "authentication challenges included), by registry and "
	       "status code.");
	for (unsigned r = 0; r < nreg; r++)
		for (unsigned c = 0; c < N_UCODES + N_CLASSES; c++) {
			unsigned long v = GET(M.up_resp[r][c]);
			if (v == 0)
				continue;
			drp_buf_printf(b, "drp_upstream_responses_total{");
			reg_label(b, r);
			if (c < N_UCODES)
				drp_buf_printf(b, ",code=\"%d\"} %lu\n",
					       upstream_codes[c], v);
			else
				drp_buf_printf(b, ",code=\"%uxx\"} %lu\n",
					       c - (unsigned)N_UCODES + 1, v);
		}
	histogram(b, "drp_request_duration_seconds",
		  "Time from a request's head to the end of its answer, by "
		  "cache result.",
		  M.duration);
	histogram(b, "drp_first_byte_seconds",
		  "Time from a request's head to the first byte of its "
		  "answer queued for the client, by cache result.",
		  M.first_byte);
	family(b, "drp_token_fetches_total", "counter",
	       "Registry token fetches, by plugin (client: the proxy's "
	       "token flow for clients' own credentials) and outcome.");
	unsigned np = atomic_load(&M.plugins.n);
	for (unsigned p = 0; p < np; p++)
		for (unsigned o = 0; o < 2; o++) {
			unsigned long v = GET(M.tokens[p][o]);
			if (v == 0)
				continue;
			drp_buf_printf(b, "drp_token_fetches_total{plugin=\"");
			drp_metrics_label_value(b, names_get(&M.plugins, p));
			drp_buf_printf(b, "\",outcome=\"%s\"} %lu\n",
				       o == 0 ? "ok" : "failed", v);
		}
	unsigned ns = atomic_load(&M.sections.n);
	static const char *const rl_help[2] = {
		"Docker Hub's pull limit (ratelimit-limit) as last seen with "
		"the credentials of a [registry] section.",
		"Pulls left in Docker Hub's window (ratelimit-remaining) as "
		"last seen with the credentials of a [registry] section."};
	static const char *const rl_name[2] = {"drp_ratelimit_limit",
					       "drp_ratelimit_remaining"};
	for (unsigned k = 0; k < 2; k++) {
		family(b, rl_name[k], "gauge", rl_help[k]);
		for (unsigned s = 0; s < ns; s++) {
			long v = k == 0 ? GET(M.rl_limit[s])
					: GET(M.rl_remaining[s]);
			if (v < 0)
				continue;
			drp_buf_printf(b, "%s{section=\"", rl_name[k]);
			drp_metrics_label_value(b, names_get(&M.sections, s));
			drp_buf_printf(b, "\"} %ld\n", v);
		}
	}
	family(b, "drp_tls_handshake_failures_total", "counter",
	       "Failed TLS handshakes with clients (certificate: the client "
	       "rejected the forged certificate) and upstreams "
	       "(certificate: it did not verify).");
	static const char *const sides[2] = {"client", "upstream"};
	static const char *const reasons[3] = {"certificate", "protocol",
					       "timeout"};
	for (unsigned s = 0; s < 2; s++)
		for (unsigned r = 0; r < 3; r++) {
			unsigned long v = GET(M.tls[s][r]);
			if (v)
				drp_buf_printf(
					b,
					"drp_tls_handshake_failures_total{"
					"side=\"%s\",reason=\"%s\"} %lu\n",
					sides[s], reasons[r], v);
		}
	family(b, "drp_forged_certificates_total", "counter",
	       "Leaf certificates forged for intercepted hosts.");
	drp_buf_printf(b, "drp_forged_certificates_total %lu\n", GET(M.forged));
	family(b, "drp_fills_in_flight", "gauge",
	       "Blob fetches from upstreams into the cache under way.");
	drp_buf_printf(b, "drp_fills_in_flight %ld\n", GET(M.fills));
	family(b, "drp_fill_waiters", "gauge",
	       "Requests waiting for the bytes of a fill.");
	drp_buf_printf(b, "drp_fill_waiters %ld\n", GET(M.fill_waiters));
	family(b, "drp_manifest_coalesced_total", "counter",
	       "Manifest requests that waited for another request's upstream "
	       "fetch instead of making their own.");
	drp_buf_printf(b, "drp_manifest_coalesced_total %lu\n",
		       GET(M.manifest_coalesced));
	family(b, "drp_reloads_total", "counter",
	       "Configuration reloads (SIGHUP), by outcome.");
	drp_buf_printf(b,
		       "drp_reloads_total{outcome=\"ok\"} %lu\n"
		       "drp_reloads_total{outcome=\"failed\"} %lu\n",
		       GET(M.reloads[0]), GET(M.reloads[1]));
	family(b, "drp_digest_mismatches_total", "counter",
	       "Upstream bodies that did not match their digest.");
	drp_buf_printf(b, "drp_digest_mismatches_total %lu\n",
		       GET(M.digest_mismatches));
	family(b, "drp_fills_no_room_total", "counter",
	       "Blobs passed through uncached: no room for them on the "
	       "spool's disk.");
	drp_buf_printf(b, "drp_fills_no_room_total %lu\n", GET(M.fill_no_room));
	static const char *const s3ev[DRP_MS3_N] = {
		"read", "stored", "not_stored", "damaged", "unavailable"};
	labelled(b, "drp_s3_tier_total",
		 "Blobs and the shared S3 tier: read from it, stored in it, "
		 "not stored, damaged copies deleted, lookups unanswered.",
		 "event", s3ev, M.s3, DRP_MS3_N);
	static const char *const s3tag[DRP_MS3T_N] = {
		"fresh", "stale", "missing", "invalid", "unavailable"};
	labelled(b, "drp_s3_tag_reads_total",
		 "Tag records read from the shared S3 tier: fresh (no upstream "
		 "GET), stale, missing, not valid (ignored), unanswered.",
		 "outcome", s3tag, M.s3_tags, DRP_MS3T_N);
	static const char *const lease[DRP_ML_N] = {"taken", "stored", "alone"};
	labelled(b, "drp_fleet_leases_total",
		 "Cold blobs by who fetched them: this proxy with the lease, "
		 "another proxy (read from the bucket), this one alone.",
		 "outcome", lease, M.leases, DRP_ML_N);
	static const char *const check[DRP_MLC_N] = {
		"held", "lapsed", "unanswered_held", "unanswered_stale"};
	labelled(
		b, "drp_fleet_lease_checks_total",
		"Lease checks before completing an upload into the S3 tier: "
		"held (Redis confirmed it: completed), lapsed (Redis said it "
		"is not this proxy's: aborted), unanswered_held (Redis did not "
		"answer, the lease confirmed less than lease_ttl ago: "
		"completed), unanswered_stale (no answer, older: aborted).",
		"result", check, M.lease_checks, DRP_MLC_N);
	family(b, "drp_fleet_redis_unavailable_total", "counter",
	       "Times a Redis connection of the fleet became unavailable.");
	drp_buf_printf(b, "drp_fleet_redis_unavailable_total %lu\n",
		       GET(M.redis_down));
}

void drp_metrics_reset(void)
{
	names_t *t[3] = {&M.registries, &M.plugins, &M.sections};
	for (unsigned i = 0; i < 3; i++) {
		pthread_mutex_lock(&t[i]->lock);
		atomic_store(&t[i]->n, t[i]->first);
		pthread_mutex_unlock(&t[i]->lock);
	}
	memset(M.requests, 0, sizeof(M.requests));
	memset(M.sent, 0, sizeof(M.sent));
	memset(M.up_bytes, 0, sizeof(M.up_bytes));
	memset(M.up_resp, 0, sizeof(M.up_resp));
	memset(M.duration, 0, sizeof(M.duration));
	memset(M.first_byte, 0, sizeof(M.first_byte));
	memset(M.tokens, 0, sizeof(M.tokens));
	memset(M.tls, 0, sizeof(M.tls));
	memset(M.reloads, 0, sizeof(M.reloads));
	for (unsigned i = 0; i < DRP_METRICS_NAMES; i++) {
		atomic_store(&M.rl_limit[i], -1);
		atomic_store(&M.rl_remaining[i], -1);
	}
	atomic_store(&M.forged, 0);
	atomic_store(&M.fills, 0);
	atomic_store(&M.fill_waiters, 0);
	atomic_store(&M.manifest_coalesced, 0);
	atomic_store(&M.digest_mismatches, 0);
	atomic_store(&M.fill_no_room, 0);
	memset(M.s3, 0, sizeof(M.s3));
	memset(M.s3_tags, 0, sizeof(M.s3_tags));
	memset(M.leases, 0, sizeof(M.leases));
	memset(M.lease_checks, 0, sizeof(M.lease_checks));
	atomic_store(&M.redis_down, 0);
}
