/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "admin/local.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "admin/setup.h"
#include "cache/cache.h"
#include "util/buf.h"
#include "util/mem.h"
#include "util/metrics.h"

static bool path_is(const char *p, size_t len, const char *want)
{
	return strlen(want) == len && memcmp(p, want, len) == 0;
}

static void family(drp_buf_t *b, const char *name, const char *type,
		   const char *help)
{
	drp_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
		       type);
}

/* The process_* metrics of the Prometheus client libraries. */
static void process_metrics(drp_server_t *srv, drp_buf_t *b)
{
	struct rusage ru;
	double cpu = 0;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		      (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	family(b, "process_cpu_seconds_total", "counter",
	       "Total user and system CPU time spent in seconds.");
	drp_buf_printf(b, "process_cpu_seconds_total %.3f\n", cpu);
	unsigned long long vsz = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "re");
	if (f) {
		if (fscanf(f, "%llu %llu", &vsz, &rss) != 2)
			vsz = rss = 0;
		fclose(f);
	}
	unsigned long long page = (unsigned long long)sysconf(_SC_PAGESIZE);
	family(b, "process_resident_memory_bytes", "gauge",
	       "Resident memory size in bytes.");
	drp_buf_printf(b, "process_resident_memory_bytes %llu\n", rss * page);
	family(b, "process_virtual_memory_bytes", "gauge",
	       "Virtual memory size in bytes.");
	drp_buf_printf(b, "process_virtual_memory_bytes %llu\n", vsz * page);
	unsigned fds = 0;
	DIR *d = opendir("/proc/self/fd");
	if (d) {
		for (struct dirent *e; (e = readdir(d)) != NULL;)
			if (e->d_name[0] != '.')
				fds++;
		closedir(d);
		fds--; /* the directory's own */
	}
	family(b, "process_open_fds", "gauge",
	       "Number of open file descriptors.");
	drp_buf_printf(b, "process_open_fds %u\n", fds);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		family(b, "process_max_fds", "gauge",
		       "Maximum number of open file descriptors.");
		drp_buf_printf(b, "process_max_fds %llu\n",
			       (unsigned long long)rl.rlim_cur);
	}
	family(b, "process_start_time_seconds", "gauge",
	       "Start time of the process since unix epoch in seconds.");
	drp_buf_printf(b, "process_start_time_seconds %lld\n",
		       (long long)srv->started);
}

void drp_local_metrics(drp_server_t *srv, drp_buf_t *b)
{
	const drp_stats_t *s = &srv->stats;
	process_metrics(srv, b);
	family(b, "drp_build_info", "gauge",
	       "The proxy's version (the value is always 1).");
	drp_buf_printf(b, "drp_build_info{version=\"");
	drp_metrics_label_value(b, PACKAGE_VERSION);
	drp_buf_printf(b, "\"} 1\n");
	family(b, "drp_connections_total", "counter",
	       "Client connections accepted.");
	drp_buf_printf(b, "drp_connections_total %lu\n",
		       atomic_load(&s->connections));
	family(b, "drp_connections_open", "gauge", "Client connections open.");
	drp_buf_printf(b, "drp_connections_open %lu\n",
		       atomic_load(&s->connections_open));
	family(b, "drp_connections_over_limit_total", "counter",
	       "Client connections answered 503 at max_connections.");
	drp_buf_printf(b, "drp_connections_over_limit_total %lu\n",
		       atomic_load(&s->over_limit));
	family(b, "drp_refused_total", "counter",
	       "Requests refused by policy (allow, tunnel_ports, proxy "
	       "users).");
	drp_buf_printf(b, "drp_refused_total %lu\n", atomic_load(&s->refused));
	drp_metrics_render(b);
	if (srv->capi == NULL)
		return;
	drp_cache_stats_t cs = srv->cstats;
	srv->capi->stats(srv->cdb, &cs);
	family(b, "drp_cache_objects", "gauge", "Objects in the cache.");
	drp_buf_printf(b, "drp_cache_objects %llu\n",
		       (unsigned long long)cs.objects);
	family(b, "drp_cache_size_bytes", "gauge", "Bytes in the cache.");
	drp_buf_printf(b, "drp_cache_size_bytes %llu\n",
		       (unsigned long long)cs.bytes);
	family(b, "drp_cache_max_size_bytes", "gauge",
	       "The cache's budget ([cache] max_size).");
	drp_buf_printf(b, "drp_cache_max_size_bytes %llu\n",
		       (unsigned long long)cs.max_size);
	family(b, "drp_cache_evictions_total", "counter",
	       "Objects evicted to keep the cache in its budget.");
	drp_buf_printf(b, "drp_cache_evictions_total %llu\n",
		       (unsigned long long)cs.evictions);
	family(b, "drp_cache_read_bytes_total", "counter",
	       "Bytes read from the cache's objects.");
	drp_buf_printf(b, "drp_cache_read_bytes_total %llu\n",
		       (unsigned long long)cs.read_bytes);
	if (srv->capi == drp_cache_fs()) {
		uint64_t kept = 0;
		(void)drp_cache_fs_keep_mapped(srv->cdb, UINT64_MAX, &kept,
					       NULL);
		family(b, "drp_cache_mapped_bytes", "gauge",
		       "Bytes of stored objects kept mapped between requests "
		       "([cache] keep_mapped), part of "
		       "process_resident_memory_bytes.");
		drp_buf_printf(b, "drp_cache_mapped_bytes %llu\n",
			       (unsigned long long)kept);
	}
}

/* Write and remove a file in dir: -errno if that fails. Permission bits
 * do not stop root, so only writing tells (a read-only mount, a full
 * disk, a directory gone). */
static int probe_write(const char *dir)
{
	int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	char path[4096] = "";
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR)) {
		snprintf(path, sizeof(path), "%s/.readyz.%ld.%lx", dir,
			 (long)getpid(), (unsigned long)pthread_self());
		fd = open(path,
			  O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
			  0600);
	}
	if (fd < 0)
		return -errno;
	int r = write(fd, "r", 1) == 1 ? 0 : -errno;
	close(fd);
	if (path[0])
		unlink(path);
	return r;
}

int drp_local_ready(drp_server_t *srv, char *why, size_t len)
{
	if (srv->ca == NULL || srv->forge == NULL) {
		snprintf(why, len, "the CA is not loaded");
		return -ENOKEY;
	}
	if (atomic_load(&srv->draining)) {
		snprintf(why, len, "shutting down");
		return -ESHUTDOWN;
	}
	const char *dir = srv->cache_dir ? srv->cache_dir : srv->spool_dir;
	if (srv->capi != NULL && dir != NULL) {
		int r = probe_write(dir);
		if (r < 0) {
			snprintf(why, len,
				 "cannot write in the cache directory %s: %s",
				 dir, strerror(-r));
			return r;
		}
	}
	return 0;
}

/* The value of label `name` in `a="x",b="y"}` (copied to v). */
static bool label(const char *labels, const char *name, char *v, size_t len)
{
	char key[64];
	snprintf(key, sizeof(key), "%s=\"", name);
	const char *p = strstr(labels, key);
	if (p == NULL || (p != labels && p[-1] != ','))
		return false;
	p += strlen(key);
	size_t n = strcspn(p, "\"");
	if (n >= len)
		n = len - 1;
	memcpy(v, p, n);
	v[n] = '\0';
	return true;
}

static void human(char *buf, size_t len, double bytes)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	unsigned u = 0;
	while (bytes >= 1024 && u < 4) {
		bytes /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", bytes, unit[u]);
}

bool drp_local_summary(const char *text, drp_buf_t *out)
{
	static const char *const results[] = {
		"hit",	 "miss", "coalesced", "revalidated",
		"stale", "pass", "tunnel",    "error"};
	double req[8] = {0}, sent_cache = 0, sent_up = 0, received = 0;
	double objects = -1, size = 0, max = 0, evictions = 0, mism = 0;
	for (const char *l = text; l && *l;) {
		const char *nl = strchr(l, '\n');
		size_t ll = nl ? (size_t)(nl - l) : strlen(l);
		char line[1024];
		snprintf(line, sizeof(line), "%.*s", (int)ll, l);
		l = nl ? nl + 1 : NULL;
		if (line[0] == '#' || line[0] == '\0')
			continue;
		char *sp = strrchr(line, ' ');
		if (sp == NULL)
			continue;
		double v = strtod(sp + 1, NULL);
		*sp = '\0';
		char *brace = strchr(line, '{');
		const char *labels = brace ? brace + 1 : "";
		if (brace)
			*brace = '\0';
		char lv[64];
		if (strcmp(line, "drp_requests_total") == 0 &&
		    label(labels, "result", lv, sizeof(lv))) {
			for (unsigned i = 0; i < 8; i++)
				if (strcmp(lv, results[i]) == 0)
					req[i] += v;
		} else if (strcmp(line, "drp_sent_bytes_total") == 0 &&
			   label(labels, "source", lv, sizeof(lv))) {
			if (strcmp(lv, "cache") == 0)
				sent_cache += v;
			else
				sent_up += v;
		} else if (strcmp(line, "drp_upstream_received_bytes_total") ==
			   0) {
			received += v;
		} else if (strcmp(line, "drp_cache_objects") == 0) {
			objects = v;
		} else if (strcmp(line, "drp_cache_size_bytes") == 0) {
			size = v;
		} else if (strcmp(line, "drp_cache_max_size_bytes") == 0) {
			max = v;
		} else if (strcmp(line, "drp_cache_evictions_total") == 0) {
			evictions = v;
		} else if (strcmp(line, "drp_digest_mismatches_total") == 0) {
			mism = v;
		}
	}
	if (objects < 0)
		return false;
	char a[32], b[32];
	human(a, sizeof(a), size);
	human(b, sizeof(b), max);
	drp_buf_printf(out, "  objects            %.0f\n", objects);
	drp_buf_printf(out, "  size               %s of %s (%.0f%%)\n", a, b,
		       max > 0 ? 100.0 * size / max : 0.0);
	drp_buf_printf(out, "  evictions          %.0f\n", evictions);
	drp_buf_printf(out, "  requests          ");
	for (unsigned i = 0; i < 8; i++)
		drp_buf_printf(out, " %s %.0f%s", results[i], req[i],
			       i < 7 ? "," : "\n");
	double cacheable = req[0] + req[1] + req[2] + req[3] + req[4];
	double served = req[0] + req[3] + req[4];
	if (cacheable > 0)
		drp_buf_printf(out,
			       "  hit ratio          %.0f%% (hit, revalidated "
			       "and stale of the cacheable requests)\n",
			       100.0 * served / cacheable);
	human(a, sizeof(a), sent_cache);
	human(b, sizeof(b), sent_up);
	drp_buf_printf(out,
		       "  sent to clients    %s from the cache, %s from "
		       "upstreams\n",
		       a, b);
	human(a, sizeof(a), received);
	drp_buf_printf(out, "  received           %s from upstreams\n", a);
	drp_buf_printf(out, "  digest mismatches  %.0f\n", mism);
	return true;
}

static void text(drp_local_response_t *r, drp_buf_t *b, int status,
		 const char *msg)
{
	r->status = status;
	drp_buf_printf(b, "%s\n", msg);
	r->content_type = "text/plain; charset=utf-8";
}

int drp_local_answer(drp_server_t *srv, const char *path, size_t len,
		     const char *host, bool admin, drp_local_response_t *r)
{
	drp_buf_t b = {0};
	/* With an admin listener, what is the operator's moves there; the
	 * liveness check stays on both (probes of the client port). */
	bool admin_here = admin || srv->admin == NULL;
	r->status = 200;
	if (path_is(path, len, "/")) {
		/* The nginx-based proxy answered 200 here, and the health
		 * probes of its users (compose, Kubernetes) ask for "/". */
		text(r, &b, 200,
		     admin ? "docker-registry-proxy admin: GET /metrics, "
			     "/healthz, /readyz"
		     : admin_here ? "docker-registry-proxy: use it as an "
				    "HTTP(S) proxy; GET /ca.crt, "
				    "/setup/systemd, /healthz, /readyz, "
				    "/metrics"
				  : "docker-registry-proxy: use it as an "
				    "HTTP(S) proxy; GET /ca.crt, "
				    "/setup/systemd, /healthz");
	} else if (path_is(path, len, "/healthz")) {
		text(r, &b, 200, "ok");
	} else if (path_is(path, len, "/metrics") && admin_here) {
		drp_local_metrics(srv, &b);
		r->content_type = "text/plain; version=0.0.4; charset=utf-8";
	} else if (path_is(path, len, "/readyz") && admin_here) {
		char why[600];
		if (drp_local_ready(srv, why, sizeof(why)) < 0)
			text(r, &b, 503, why);
		else
			text(r, &b, 200, "ok");
	} else if (path_is(path, len, "/ca.crt") && !admin) {
		size_t n;
		const char *pem = drp_ca_pem(srv->ca, &n);
		drp_buf_append(&b, pem, n);
		r->content_type = "application/x-x509-ca-cert";
	} else if (path_is(path, len, "/setup/systemd") && !admin) {
		char url[300];
		snprintf(url, sizeof(url), "http://%s",
			 host && *host ? host : "127.0.0.1:3128");
		char *script = drp_setup_systemd_script(url);
		if (script == NULL) {
			text(r, &b, 400,
			     "invalid Host header for the set-up script");
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
