/* SPDX-License-Identifier: MIT */
/* docker-registry-proxy: argv, configuration test, daemon start-up,
 * signals (SIGHUP reload, SIGUSR1 reopens the logs, SIGTERM/SIGINT drain),
 * readiness to the service manager (util/notify.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <gnutls/gnutls.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <drp/cache.h>

#include "cache/cache.h"
#include "conf/conf.h"
#include "conf/envconf.h"
#include "admin/listener.h"
#include "admin/local.h"
#include "ctl/cli.h"
#include "ctl/ctl.h"
#include "auth/auth.h"
#include "registry/fill.h"
#include "registry/fleet.h"
#include "registry/s3tier.h"
#include "proxy/conn.h"
#include "proxy/mirror.h"
#include "proxy/server.h"
#include "proxy/worker.h"
#include "tls/ca.h"
#include "util/jobs.h"
#include "util/busguard.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/metrics.h"
#include "util/notify.h"
#include "util/pool.h"

#define DEFAULT_CONF                                                           \
	DRP_SYSCONFDIR "/docker-registry-proxy/docker-registry-proxy.ini"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: docker-registry-proxy [-c FILE] [-t] [-d] [-p PIDFILE] "
		"[-V] [-h]\n"
		"  -c FILE     configuration file (default %s if it exists,\n"
		"              else the embedded defaults)\n"
		"  -t          check the configuration and exit\n"
		"  -d          detach and run in the background\n"
		"  -p PIDFILE  write the process id to PIDFILE\n"
		"  --cache-stats  print the cache's objects, bytes and "
		"hit/miss\n"
		"              counts (of the running proxy, else of the "
		"cache\n"
		"              directory) and exit\n"
		"  --env-config  build the configuration from the nginx-based\n"
		"              docker-registry-proxy image's environment\n"
		"              variables (REGISTRIES, AUTH_REGISTRIES, ...)\n"
		"  --print-config  with --env-config: print the configuration\n"
		"              it makes (secrets redacted) and exit\n"
		"  -V          print the version and exit\n"
		"  -h          this help\n"
		"The cache, for an administrator (docker-registry-proxy(8)):\n"
		"  cache list [--json] | cache purge REF|DIGEST... | "
		"cache verify\n"
		"  warm [--platform OS/ARCH]... REF...\n",
		DEFAULT_CONF);
}

/* The first directory of a systemd directory variable ("a:b"), copied. */
static char *systemd_dir(const char *var, const char *suffix)
{
	const char *v = getenv(var);
	if (v == NULL || v[0] != '/')
		return NULL;
	size_t n = strcspn(v, ":");
	size_t len = n + strlen(suffix) + 1;
	char *out = drp_malloc(len);
	snprintf(out, len, "%.*s%s", (int)n, v, suffix);
	return out;
}

/* The embedded defaults keep their CA and cache in the working directory;
 * under systemd (StateDirectory=, CacheDirectory=, LogsDirectory=, the
 * only writable places under ProtectSystem=strict) they go there. */
static void defaults_in_systemd_dirs(drp_conf_t *c)
{
	char *d;
	if ((d = systemd_dir("STATE_DIRECTORY", "/ca")) != NULL) {
		free(c->ca_dir);
		c->ca_dir = d;
	}
	if ((d = systemd_dir("CACHE_DIRECTORY", "")) != NULL) {
		free(c->cache_dir);
		c->cache_dir = d;
	}
	if ((d = systemd_dir("LOGS_DIRECTORY", "/access.log")) != NULL) {
		free(c->access_log);
		c->access_log = d;
	}
}

/* --env-config: the configuration comes from the environment. */
static bool env_config;

static const char *env_get(const char *name, void *ctx)
{
	(void)ctx;
	return getenv(name);
}

/* Secrets from the environment (AUTH_REGISTRIES passwords) go to files
 * here: $STATE_DIRECTORY under systemd, else a directory of the user's
 * own in /tmp (writable in the image, whose /ca may be read-only). */
static char *env_state_dir(void)
{
	char *d = systemd_dir("STATE_DIRECTORY", "/env-config");
	if (d == NULL) {
		char buf[64];
		snprintf(buf, sizeof(buf), "/tmp/docker-registry-proxy-%ld",
			 (long)getuid());
		d = drp_strdup(buf);
	}
	return d;
}

static char *env_ini(void)
{
	static bool reported;
	char *ini = NULL, *unsup = NULL, err[512] = "";
	char *dir = env_state_dir();
	int r = drp_envconf_build(env_get, NULL, dir, &ini, &unsup, err,
				  sizeof(err));
	free(dir);
	if (r < 0) {
		drp_log_err(DRP_LOG_CONF, "--env-config: %s", err);
		return NULL;
	}
	if (unsup[0] != '\0' && !reported)
		drp_log_warning(DRP_LOG_CONF,
				"--env-config: not supported, ignored: %s",
				unsup);
	reported = true;
	free(unsup);
	return ini;
}

static char *env_text(const char *path)
{
	char *ini = env_ini();
	if (ini == NULL)
		return NULL;
	if (path != NULL) {
		/* -c FILE too: FILE adds what the old variables cannot
		 * say ([resolve], [registry] sections of its own). */
		FILE *f = fopen(path, "r");
		if (f == NULL) {
			drp_log_errno(DRP_LOG_ERR, DRP_LOG_CONF, "%s", path);
			free(ini);
			return NULL;
		}
		drp_buf_t b = {0};
		drp_buf_printf(&b, "%s\n; appended from %s\n", ini, path);
		char chunk[4096];
		size_t n;
		while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
			drp_buf_append(&b, chunk, n);
		fclose(f);
		free(ini);
		ini = drp_strndup(drp_buf_head(&b), drp_buf_pending(&b));
		drp_buf_free(&b);
	}
	return ini;
}

/* Load the configuration named on the command line, the installed one,
 * or the embedded defaults. Returns NULL after printing every error. */
static drp_conf_t *load_conf(const char *path, const char **used)
{
	if (env_config) {
		*used = path;
		char *ini = env_text(path);
		if (ini == NULL)
			return NULL;
		drp_conf_errors_t errs = {0};
		drp_conf_t *c =
			drp_conf_load_string("(environment)", ini, &errs);
		for (unsigned i = 0; c == NULL && i < errs.n; i++)
			drp_log_err(DRP_LOG_CONF, "%s", errs.msg[i]);
		drp_conf_errors_free(&errs);
		free(ini);
		return c;
	}
	if (path == NULL && access(DEFAULT_CONF, F_OK) == 0)
		path = DEFAULT_CONF;
	*used = path;
	if (path == NULL) {
		drp_conf_t *c = drp_conf_defaults();
		defaults_in_systemd_dirs(c);
		return c;
	}
	drp_conf_errors_t errs = {0};
	drp_conf_t *c = drp_conf_load(path, &errs);
	if (c == NULL) {
		for (unsigned i = 0; i < errs.n; i++)
			drp_log_err(DRP_LOG_CONF, "%s", errs.msg[i]);
		if (errs.n == 0)
			drp_log_err(DRP_LOG_CONF, "%s: cannot load", path);
	}
	drp_conf_errors_free(&errs);
	return c;
}

/* The CA key's passphrase: ca_key_passphrase, or the first line of
 * ca_key_passphrase_file (relative to the configuration file). Returns 0
 * with *out NULL when neither is set; -1 after logging why not. The caller
 * clears and frees *out. */
static int ca_passphrase(const drp_conf_t *conf, const char *used, char **out)
{
	*out = NULL;
	if (conf->ca_key_passphrase && conf->ca_key_passphrase_file) {
		drp_log_err(DRP_LOG_CONF, "ca_key_passphrase and "
					  "ca_key_passphrase_file are both "
					  "set: keep one");
		return -1;
	}
	if (conf->ca_key_passphrase) {
		*out = drp_strdup(conf->ca_key_passphrase);
		return 0;
	}
	const char *f = conf->ca_key_passphrase_file;
	if (f == NULL)
		return 0;
	char path[4096];
	const char *slash = used ? strrchr(used, '/') : NULL;
	if (f[0] != '/' && slash != NULL)
		snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - used),
			 used, f);
	else
		snprintf(path, sizeof(path), "%s", f);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		drp_log_errno(DRP_LOG_ERR, DRP_LOG_CONF,
			      "ca_key_passphrase_file %s", path);
		return -1;
	}
	char buf[1024];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0) {
		drp_log_errno(DRP_LOG_ERR, DRP_LOG_CONF,
			      "ca_key_passphrase_file %s", path);
		return -1;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (buf[0] == '\0') {
		drp_log_err(DRP_LOG_CONF,
			    "ca_key_passphrase_file %s: empty first line",
			    path);
		return -1;
	}
	*out = drp_strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

static void passphrase_free(char *p)
{
	if (p) {
		explicit_bzero(p, strlen(p));
		free(p);
	}
}

static int write_pidfile(const char *path)
{
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (f == NULL)
		return -errno;
	fprintf(f, "%ld\n", (long)getpid());
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		return -errno;
	return 0;
}

static int daemonize(void)
{
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		/* stderr stays: it is the log unless error_log says
		 * otherwise. */
		if (fd > 2)
			close(fd);
	}
	return 0;
}

/* The cache is opened once: a reload cannot move it (the directory is
 * locked by this process). */
static int open_cache(drp_server_t *srv, const drp_conf_t *conf)
{
	const drp_cache_api_t *api =
		drp_cache_backend_find(conf->cache_backend);
	if (api == NULL) {
		drp_log_err(DRP_LOG_CACHE, "unknown cache backend '%s'",
			    conf->cache_backend);
		return -1;
	}
	drp_cache_conf_t cc = {.dir = conf->cache_dir,
			       .max_size = conf->cache_max_size};
	char err[512] = "";
	int r = api->open(&srv->cdb, &cc, &srv->cstats, err, sizeof(err));
	if (r < 0) {
		drp_log_err(DRP_LOG_CACHE, "cache: %s", err);
		return -1;
	}
	srv->capi = api;
	api->stats(srv->cdb, &srv->cstats);
	if (api == drp_cache_fs())
		(void)drp_cache_fs_keep_mapped(
			srv->cdb, conf->cache_keep_mapped, NULL, NULL);
	if (conf->cache_s3) {
		srv->s3 = drp_s3tier_client(conf, err, sizeof(err));
		if (srv->s3 == NULL) {
			drp_log_err(DRP_LOG_CACHE, "%s", err);
			return -1;
		}
	}
	/* In-flight bodies are spooled next to the cache (same disk), or
	 * in the temp dir for a memory cache. */
	char path[4096];
	if (strcmp(api->name, "fs") == 0) {
		srv->cache_dir = drp_strdup(conf->cache_dir);
		snprintf(path, sizeof(path), "%s/spool", conf->cache_dir);
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			drp_log_errno(DRP_LOG_ERR, DRP_LOG_CACHE, "%s", path);
			return -1;
		}
	} else {
		const char *t = getenv("TMPDIR");
		snprintf(path, sizeof(path), "%s", t && *t ? t : "/tmp");
	}
	srv->spool_dir = drp_strdup(path);
	drp_log_notice(DRP_LOG_CACHE,
		       "cache %s in %s: %llu objects, %llu bytes of %llu",
		       api->name, conf->cache_dir,
		       (unsigned long long)srv->cstats.objects,
		       (unsigned long long)srv->cstats.bytes,
		       (unsigned long long)conf->cache_max_size);
	return 0;
}

/* Ask a running daemon (its /metrics on the admin listener, else on the
 * first listen address) for its counters; if none answers, read the cache
 * directory itself. */
static int cache_stats(const drp_conf_t *conf)
{
	char body[256 * 1024];
	size_t n = 0;
	const drp_conf_listen_t *at = conf->n_admin_listen > 0
					      ? &conf->admin_listen[0]
				      : conf->n_listen > 0 ? &conf->listen[0]
							   : NULL;
	if (at != NULL) {
		struct sockaddr_storage ss = at->addr;
		/* A wildcard listener is reached on loopback. */
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;
			if (in->sin_addr.s_addr == htonl(INADDR_ANY))
				in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
			if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
				in6->sin6_addr = in6addr_loopback;
		}
		int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct timeval tv = {.tv_sec = 3};
		if (fd >= 0) {
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
				   sizeof(tv));
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv,
				   sizeof(tv));
		}
		static const char req[] =
			"GET /metrics HTTP/1.1\r\nHost: "
			"localhost\r\nConnection: close\r\n\r\n";
		if (fd >= 0 &&
		    connect(fd, (struct sockaddr *)&ss, at->addrlen) == 0 &&
		    write(fd, req, sizeof(req) - 1) ==
			    (ssize_t)sizeof(req) - 1) {
			ssize_t r;
			while (n < sizeof(body) - 1 &&
			       (r = read(fd, body + n, sizeof(body) - 1 - n)) >
				       0)
				n += (size_t)r;
		}
		if (fd >= 0)
			close(fd);
	}
	body[n] = '\0';
	drp_buf_t out = {0};
	char *text = strstr(body, "\r\n\r\n");
	if (text != NULL && drp_local_summary(text + 4, &out)) {
		printf("cache statistics of the running proxy (%s):\n%.*s",
		       at->text, (int)drp_buf_pending(&out),
		       drp_buf_head(&out));
		drp_buf_free(&out);
		return 0;
	}
	drp_buf_free(&out);
	const drp_cache_api_t *api =
		drp_cache_backend_find(conf->cache_backend);
	if (api == NULL || !(api->flags & DRP_CACHE_PERSISTENT)) {
		fprintf(stderr,
			"no running proxy answered on %s, and the %s "
			"cache keeps nothing on disk\n",
			at ? at->text : "-", conf->cache_backend);
		return 1;
	}
	drp_cache_conf_t cc = {.dir = conf->cache_dir,
			       .max_size = conf->cache_max_size};
	drp_cache_stats_t st = {0};
	drp_cache_t *db;
	char err[512] = "";
	if (api->open(&db, &cc, &st, err, sizeof(err)) < 0) {
		fprintf(stderr, "cache %s: %s\n", conf->cache_dir, err);
		return 1;
	}
	api->stats(db, &st);
	printf("cache %s in %s (no running proxy answered; hit and miss "
	       "counts live in the daemon):\n"
	       "  objects %llu\n  bytes %llu\n  max_size %llu\n",
	       api->name, conf->cache_dir, (unsigned long long)st.objects,
	       (unsigned long long)st.bytes, (unsigned long long)st.max_size);
	api->close(db, &st);
	return 0;
}

static bool same_str(const char *a, const char *b)
{
	return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

/* The S3 tier and the fleet are made once, at start (srv->s3,
 * srv->fleet): a reload does not rebuild them. */
static bool same_shared_tier(const drp_conf_t *a, const drp_conf_t *b)
{
	return a->cache_s3 == b->cache_s3 &&
	       same_str(a->s3_endpoint, b->s3_endpoint) &&
	       same_str(a->s3_bucket, b->s3_bucket) &&
	       same_str(a->s3_region, b->s3_region) &&
	       same_str(a->s3_access_key, b->s3_access_key) &&
	       same_str(a->s3_secret_key_file, b->s3_secret_key_file) &&
	       a->s3_virtual == b->s3_virtual &&
	       a->s3_abandoned_after == b->s3_abandoned_after &&
	       same_str(a->fleet_redis, b->fleet_redis) &&
	       a->fleet_lease_ttl == b->fleet_lease_ttl &&
	       a->fleet_wait == b->fleet_wait;
}

static bool same_listen(const drp_conf_t *a, const drp_conf_t *b)
{
	if (a->n_listen != b->n_listen || a->workers != b->workers ||
	    a->n_admin_listen != b->n_admin_listen)
		return false;
	if (!same_str(a->tcp_congestion, b->tcp_congestion))
		return false;
	for (unsigned i = 0; i < a->n_listen; i++)
		if (strcmp(a->listen[i].text, b->listen[i].text) != 0)
			return false;
	if (a->n_mirror_tls_listen != b->n_mirror_tls_listen)
		return false;
	for (unsigned i = 0; i < a->n_mirror_tls_listen; i++)
		if (strcmp(a->mirror_tls_listen[i].text,
			   b->mirror_tls_listen[i].text) != 0)
			return false;
	for (unsigned i = 0; i < a->n_admin_listen; i++)
		if (strcmp(a->admin_listen[i].text, b->admin_listen[i].text) !=
		    0)
			return false;
	return true;
}

static void reload(drp_server_t *srv, const char *path)
{
	drp_log_notice(DRP_LOG_MAIN, "SIGHUP: reloading %s",
		       path ? path : "(embedded defaults)");
	drp_notify("RELOADING=1");
	const char *used;
	drp_conf_t *conf = load_conf(path, &used);
	if (conf == NULL) {
		drp_log_err(DRP_LOG_MAIN,
			    "reload failed: keeping the running configuration");
		drp_metrics_reload(false);
		drp_notify("READY=1");
		return;
	}
	char err[512] = "";
	drp_runtime_t *old = drp_server_runtime_get(srv);
	if (!same_listen(old->conf, conf))
		drp_log_warning(DRP_LOG_MAIN,
				"listen/mirror_tls_listen/admin_listen/workers/"
				"tcp_congestion changes take effect only after "
				"a restart");
	if (strcmp(old->conf->cache_dir, conf->cache_dir) != 0 ||
	    strcmp(old->conf->cache_backend, conf->cache_backend) != 0 ||
	    old->conf->cache_max_size != conf->cache_max_size)
		drp_log_warning(DRP_LOG_MAIN,
				"[cache] changes take effect only after a "
				"restart");
	if (!same_shared_tier(old->conf, conf))
		drp_log_warning(DRP_LOG_MAIN,
				"[cache] s3_* and [fleet] changes take effect "
				"only after a restart (the S3 tier and the "
				"Redis lease keep their start-up settings)");
	if (strcmp(old->conf->ca_dir, conf->ca_dir) != 0)
		drp_log_warning(DRP_LOG_MAIN,
				"ca_dir changes take effect only after a "
				"restart");
	if ((old->conf->admin_socket == NULL) != (conf->admin_socket == NULL) ||
	    (conf->admin_socket &&
	     strcmp(old->conf->admin_socket, conf->admin_socket) != 0))
		drp_log_warning(DRP_LOG_MAIN,
				"admin_socket changes take effect only after "
				"a restart");
	uint64_t old_keep = old->conf->cache_keep_mapped;
	drp_runtime_unref(old);
	drp_log_init(conf->log_level, conf->error_log);
	drp_runtime_t *rt = drp_runtime_new(conf, err, sizeof(err));
	if (rt != NULL &&
	    drp_mirror_tls_leaf(conf, srv->forge, &rt->mirror_leaf, err,
				sizeof(err)) < 0) {
		drp_runtime_unref(rt);
		rt = NULL;
	}
	if (rt == NULL) {
		drp_log_err(DRP_LOG_MAIN,
			    "reload failed: %s; keeping the running "
			    "configuration",
			    err);
		drp_metrics_reload(false);
		drp_notify("READY=1");
		return;
	}
	drp_server_runtime_set(srv, rt);
	/* keep_mapped is the one [cache] setting a reload applies: lowered,
	 * the windows above it are unmapped now. */
	if (srv->capi == drp_cache_fs() &&
	    old_keep != conf->cache_keep_mapped) {
		(void)drp_cache_fs_keep_mapped(
			srv->cdb, conf->cache_keep_mapped, NULL, NULL);
		drp_log_notice(DRP_LOG_CACHE, "keep_mapped is now %llu bytes",
			       (unsigned long long)conf->cache_keep_mapped);
	}
	drp_metrics_reload(true);
	drp_log_notice(DRP_LOG_MAIN, "configuration reloaded");
	drp_notify("READY=1");
}

/* SIGUSR1 (as nginx): logrotate has moved the log files. */
static void reopen_logs(drp_server_t *srv)
{
	drp_runtime_t *rt = drp_server_runtime_get(srv);
	int r = drp_runtime_reopen_logs(rt);
	if (r < 0)
		drp_log_err(DRP_LOG_MAIN,
			    "SIGUSR1: cannot reopen the logs (%s); still "
			    "writing to the old files",
			    strerror(-r));
	else
		drp_log_notice(DRP_LOG_MAIN, "SIGUSR1: logs reopened");
	drp_runtime_unref(rt);
}

/* A start that fails before the worker threads run: free what it set up
 * so far (conf goes with the runtime once there is one; NULL when
 * drp_runtime_new failed, which freed it), so that the process ends
 * clean, under LeakSanitizer too. Returns main's status. */
static int start_failed(drp_server_t *srv, drp_conf_t *conf, drp_ctl_t *ctl)
{
	drp_admin_free(srv->admin);
	drp_ctl_free(ctl);
	for (unsigned i = 0; srv->workers && i < srv->n_workers; i++)
		free(srv->workers[i].listeners);
	free(srv->workers);
	if (srv->capi)
		srv->capi->close(srv->cdb, &srv->cstats);
	drp_s3_free(srv->s3);
	free(srv->spool_dir);
	free(srv->cache_dir);
	if (srv->rt)
		drp_runtime_unref(srv->rt);
	else
		drp_conf_free(conf);
	drp_forge_free(srv->forge);
	drp_ca_free(srv->ca);
	gnutls_global_deinit();
	return 1;
}

int main(int argc, char **argv)
{
	const char *conf_path = NULL, *pidfile = NULL;
	bool test = false, detach = false, stats = false, print = false;
	int opt;
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{"cache-stats", no_argument, NULL, 'S'},
		{"env-config", no_argument, NULL, 'E'},
		{"print-config", no_argument, NULL, 'P'},
		{NULL, 0, NULL, 0},
	};
	/* "+": options end at the command word (cache, warm), whose own
	 * options follow it. */
	while ((opt = getopt_long(argc, argv, "+c:tdp:Vh", longopts, NULL)) !=
	       -1) {
		switch (opt) {
		case 'c':
			conf_path = optarg;
			break;
		case 't':
			test = true;
			break;
		case 'd':
			detach = true;
			break;
		case 'p':
			pidfile = optarg;
			break;
		case 'S':
			stats = true;
			break;
		case 'E':
			env_config = true;
			break;
		case 'P':
			print = true;
			break;
		case 'V':
			printf("%s\n", PACKAGE_STRING);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	bool command = optind < argc;
	if (command && (test || detach || pidfile || stats || print)) {
		usage(stderr);
		return 2;
	}
	drp_log_init(DRP_LOG_NOTICE, NULL);
	if (print) {
		if (!env_config) {
			fprintf(stderr, "--print-config needs --env-config\n");
			return 2;
		}
		char *ini = env_text(conf_path);
		if (ini == NULL)
			return 1;
		/* Passwords are in files already; the only inline secret is
		 * the CA key's passphrase. */
		for (char *line = ini, *nl; line && *line;
		     line = nl ? nl + 1 : NULL) {
			nl = strchr(line, '\n');
			if (nl)
				*nl = '\0';
			if (strncmp(line, "ca_key_passphrase =", 19) == 0 ||
			    strncmp(line, "password =", 10) == 0)
				printf("%.*s= (redacted)\n",
				       (int)strcspn(line, "="), line);
			else
				printf("%s\n", line);
		}
		free(ini);
		return 0;
	}
	const char *used = NULL;
	drp_conf_t *conf = load_conf(conf_path, &used);
	if (command) {
		if (conf == NULL)
			return 1;
		gnutls_global_init();
		char *env_dir = env_config ? env_state_dir() : NULL;
		int r = drp_ctl_main(conf, env_dir, argc - optind,
				     argv + optind);
		free(env_dir);
		gnutls_global_deinit();
		return r;
	}
	if (stats) {
		if (conf == NULL)
			return 1;
		gnutls_global_init();
		int r = cache_stats(conf);
		drp_conf_free(conf);
		return r ? 1 : 0;
	}
	if (test) {
		if (conf == NULL)
			return 1;
		/* -t also loads the plugins and creates their instances, so
		 * that their keys and credentials files are checked too. */
		drp_conf_errors_t errs = {0};
		drp_auth_t *auth = drp_auth_new(conf, &errs);
		for (unsigned i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msg[i]);
		bool ok = auth != NULL && errs.n == 0;
		char cc_err[512];
		if (conf->tcp_congestion != NULL &&
		    drp_workers_check_congestion(conf->tcp_congestion, cc_err,
						 sizeof(cc_err)) < 0) {
			fprintf(stderr, "%s: [proxy] %s\n",
				used ? used : "(embedded defaults)", cc_err);
			ok = false;
		}
		char *pass = NULL;
		ok = ca_passphrase(conf, used, &pass) == 0 && ok;
		passphrase_free(pass);
		drp_conf_errors_free(&errs);
		if (auth)
			drp_auth_free(auth);
		if (!ok) {
			drp_conf_free(conf);
			return 1;
		}
		printf("configuration OK\n");
		drp_conf_free(conf);
		return 0;
	}
	if (conf == NULL)
		return 1;
	if (drp_log_init(conf->log_level, conf->error_log) < 0) {
		drp_log_errno(DRP_LOG_ERR, DRP_LOG_MAIN, "error_log %s",
			      conf->error_log);
		drp_conf_free(conf);
		return 1;
	}
	drp_log_notice(DRP_LOG_MAIN, "%s starting with %s", PACKAGE_STRING,
		       used ? used : "the embedded defaults");
	gnutls_global_init();
	signal(SIGPIPE, SIG_IGN);
	drp_bus_guard_install(); /* mapped spool pages: util/busguard.h */

	drp_server_t srv = {.started = time(NULL)};
	pthread_mutex_init(&srv.rt_lock, NULL);
	pthread_mutex_init(&srv.fills_lock, NULL);
	pthread_rwlock_init(&srv.loops_lock, NULL);
	char err[512] = "";
	char *pass = NULL;
	drp_ctl_t *ctl = NULL;
	if (ca_passphrase(conf, used, &pass) < 0)
		return start_failed(&srv, conf, ctl);
	srv.ca = drp_ca_open_pass(conf->ca_dir, pass, err, sizeof(err));
	passphrase_free(pass);
	if (srv.ca == NULL) {
		drp_log_err(DRP_LOG_TLS, "%s", err);
		return start_failed(&srv, conf, ctl);
	}
	drp_log_notice(DRP_LOG_TLS, "%s CA %s/ca.crt, SHA-256 fingerprint %s",
		       drp_ca_created(srv.ca) ? "created" : "using",
		       conf->ca_dir, drp_ca_fingerprint(srv.ca));
	srv.forge = drp_forge_new(srv.ca, err, sizeof(err));
	if (srv.forge == NULL) {
		drp_log_err(DRP_LOG_TLS, "%s", err);
		return start_failed(&srv, conf, ctl);
	}
	if (!conf->verify_upstream)
		drp_log_warning(DRP_LOG_TLS,
				"verify_upstream = no: upstream certificates "
				"are NOT verified");
	srv.rt = drp_runtime_new(conf, err, sizeof(err));
	if (srv.rt == NULL) {
		drp_log_err(DRP_LOG_MAIN, "%s", err);
		return start_failed(&srv, NULL, ctl); /* it took conf */
	}
	if (drp_mirror_tls_leaf(conf, srv.forge, &srv.rt->mirror_leaf, err,
				sizeof(err)) < 0) {
		drp_log_err(DRP_LOG_TLS, "mirror_tls_listen: %s", err);
		return start_failed(&srv, conf, ctl);
	}
	if (open_cache(&srv, conf) < 0)
		return start_failed(&srv, conf, ctl);
	if (drp_workers_listen(&srv, conf, err, sizeof(err)) < 0) {
		drp_log_err(DRP_LOG_NET, "%s", err);
		return start_failed(&srv, conf, ctl);
	}
	/* The admin socket and the max_age sweep (ctl/ctl.h). */
	char *env_dir = env_config ? env_state_dir() : NULL;
	int cr = drp_ctl_new(&srv, conf, env_dir, &ctl, err, sizeof(err));
	free(env_dir);
	if (cr < 0) {
		drp_log_err(DRP_LOG_MAIN, "%s", err);
		return start_failed(&srv, conf, ctl);
	}
	srv.admin = drp_admin_new(&srv, conf, err, sizeof(err));
	if (srv.admin == NULL && conf->n_admin_listen > 0) {
		drp_log_err(DRP_LOG_NET, "%s", err);
		return start_failed(&srv, conf, ctl);
	}
	if (detach && daemonize() < 0) {
		drp_log_errno(DRP_LOG_ERR, DRP_LOG_MAIN, "cannot detach");
		return start_failed(&srv, conf, ctl);
	}
	if (pidfile && write_pidfile(pidfile) < 0) {
		drp_log_errno(DRP_LOG_ERR, DRP_LOG_MAIN, "pid file %s",
			      pidfile);
		return start_failed(&srv, conf, ctl);
	}
	/* Only the main thread takes signals: workers inherit the mask. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	/* The worker pool: lanes for the stores (here), the password
	 * checks (drp_workers_start, up to two at once) and the
	 * administrator's commands and the max_age sweep (drp_ctl_start)
	 * share four threads, one reserved for each; the hashing of cold
	 * blobs has threads of its own (below). */
	unsigned hashers = srv.n_workers ? srv.n_workers : 1;
	srv.pool = drp_pool_new(4);
	if (srv.pool == NULL) {
		drp_log_err(DRP_LOG_MAIN, "cannot start the worker pool");
		return start_failed(&srv, conf, ctl);
	}
	/* One thread stores verified downloads (fsync, link): the stores
	 * are disk-bound, more threads would only compete for the disk. */
	if (srv.capi) {
		srv.jobs = drp_jobs_new_on(srv.pool, "stores", 1);
		/* One hashing thread per worker (a loop feeds a fill no
		 * faster than a core hashes), at nice 10: hashing trails
		 * the fetch and yields the cores to the loops, which
		 * receive and send the bytes. */
		srv.hash_lane =
			drp_pool_lane_new_own(srv.pool, "hash", hashers, 10, 0);
	}
	/* Metadata records (tags, media types, "seen" marks) are written
	 * from the loops: the fs backend keeps them in memory until the
	 * stores lane has renamed them into place. */
	if (srv.jobs && srv.capi == drp_cache_fs())
		drp_cache_fs_write_behind(srv.cdb, srv.jobs);
	if (drp_workers_start(&srv, &drp_conn_worker_hooks) < 0) {
		drp_log_err(DRP_LOG_MAIN, "cannot start workers");
		return 1;
	}
	if (conf->fleet_redis && srv.s3 == NULL)
		drp_log_warning(DRP_LOG_MAIN,
				"[fleet] redis is not used without [cache] "
				"backend = s3 (the fleet's shared cache)");
	if (conf->fleet_redis && srv.s3) {
		srv.fleet =
			drp_fleet_new(conf, srv.n_workers, err, sizeof(err));
		if (srv.fleet == NULL) {
			drp_log_err(DRP_LOG_MAIN, "%s", err);
			return 1;
		}
	}
	if (srv.s3) {
		srv.s3tier = drp_s3tier_new(&srv, srv.rt->upstream,
					    conf->s3_abandoned_after);
		(void)drp_worker_call(&srv.workers[0], drp_s3tier_run,
				      srv.s3tier);
	}
	if (drp_ctl_start(ctl) < 0) {
		drp_log_err(DRP_LOG_MAIN, "cannot start the admin socket");
		return 1;
	}
	for (unsigned i = 0; i < conf->n_listen; i++)
		drp_log_notice(DRP_LOG_MAIN,
			       "listening on %s with %u worker(s)",
			       conf->listen[i].text, srv.n_workers);
	for (unsigned i = 0; i < conf->n_mirror_tls_listen; i++)
		drp_log_notice(DRP_LOG_MAIN,
			       "registry mirror on https://%s (TLS)",
			       conf->mirror_tls_listen[i].text);
	if (srv.admin != NULL && drp_admin_start(srv.admin) < 0) {
		drp_log_err(DRP_LOG_MAIN, "cannot start the admin listener");
		return 1;
	}
	for (unsigned i = 0; i < conf->n_admin_listen; i++)
		drp_log_notice(DRP_LOG_MAIN,
			       "admin listener (/metrics, /healthz, /readyz) "
			       "on %s",
			       conf->admin_listen[i].text);
	/* Type=notify: the unit counts as started once the sockets accept
	 * (they were bound and listening before the workers started). */
	char status[512];
	snprintf(status, sizeof(status), "READY=1\nSTATUS=listening on %s",
		 conf->listen[0].text);
	int nr = drp_notify(status);
	if (nr < 0)
		drp_log_warning(DRP_LOG_MAIN, "NOTIFY_SOCKET: %s",
				strerror(-nr));
	for (;;) {
		int sig = 0;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			reload(&srv, used);
			continue;
		}
		if (sig == SIGUSR1) {
			reopen_logs(&srv);
			continue;
		}
		drp_log_notice(DRP_LOG_MAIN, "%s: draining connections",
			       sig == SIGTERM ? "SIGTERM" : "SIGINT");
		break;
	}
	drp_notify("STOPPING=1");
	drp_runtime_t *last = drp_server_runtime_get(&srv);
	double grace = last->conf->drain_timeout;
	drp_runtime_unref(last);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	drp_ctl_stop(ctl);
	drp_workers_drain(&srv, grace);
	drp_admin_free(srv.admin);
	srv.admin = NULL;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* The hash jobs get what is left of the grace (at least a second:
	 * a verdict under way is quick); the stores lane then runs dry. */
	double left = grace - (double)(t1.tv_sec - t0.tv_sec) -
		      (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	drp_log_notice(DRP_LOG_MAIN, "stopped");
	if (pidfile)
		unlink(pidfile);
	drp_server_runtime_set(&srv, NULL);
	drp_fill_shutdown(&srv, left > 1 ? left : 1); /* verdicts */
	/* A command of the admin lane may still run (it ends with the
	 * pool): from now on its metadata ops write themselves, and submit
	 * nothing to the stores queue, which is freed next. */
	if (srv.jobs && srv.capi == drp_cache_fs())
		drp_cache_fs_write_behind(srv.cdb, NULL);
	drp_jobs_free(srv.jobs); /* finishes the stores under way */
	drp_pool_free(srv.pool);
	drp_ctl_free(ctl);
	if (srv.capi)
		srv.capi->close(srv.cdb, &srv.cstats);
	drp_s3tier_free(srv.s3tier);
	drp_fleet_free(srv.fleet);
	drp_s3_free(srv.s3);
	free(srv.spool_dir);
	free(srv.cache_dir);
	drp_forge_free(srv.forge);
	drp_ca_free(srv.ca);
	gnutls_global_deinit();
	return 0;
}
