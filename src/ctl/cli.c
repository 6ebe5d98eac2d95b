/* SPDX-License-Identifier: MIT */
#include "ctl/cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "ctl/cmd.h"
#include "ctl/ctl.h"
#include "ctl/warm.h"
#include "proxy/conn.h"
#include "proxy/server.h"
#include "proxy/worker.h"
#include "registry/fill.h"
#include "util/buf.h"
#include "util/jobs.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/pool.h"

/* ---- through the daemon ---- */

/* Connected to the daemon's admin socket, or -1 (*why: nobody there, or
 * an error worth telling). */
static int connect_daemon(const char *path, int *why)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	if (len >= sizeof(sun.sun_path)) {
		*why = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, path, len + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*why = errno;
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		*why = errno;
		close(fd);
		return -1;
	}
	return fd;
}

static int relay(int fd, const drp_ctl_cmd_t *cmd)
{
	char *req = drp_ctl_cmd_encode(cmd);
	size_t len = strlen(req);
	drp_buf_t b = {0};
	drp_buf_printf(&b, "%s\n", req);
	free(req);
	const char *p = drp_buf_head(&b);
	len = drp_buf_pending(&b);
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			perror("docker-registry-proxy: admin socket");
			drp_buf_free(&b);
			return DRP_CTL_FAIL;
		}
		p += n;
		len -= (size_t)n;
	}
	drp_buf_free(&b);
	/* Lines back: "o TEXT", "e TEXT", and "x STATUS" last. */
	FILE *in = fdopen(fd, "r");
	if (in == NULL) {
		close(fd);
		return DRP_CTL_FAIL;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int status = -1;
	while ((n = getline(&line, &cap, in)) > 0) {
		if (line[n - 1] == '\n')
			line[--n] = '\0';
		if (n >= 2 && line[1] == ' ' && line[0] == 'o') {
			printf("%s\n", line + 2);
			fflush(stdout);
		} else if (n >= 2 && line[1] == ' ' && line[0] == 'e') {
			fprintf(stderr, "%s\n", line + 2);
		} else if (n >= 2 && line[1] == ' ' && line[0] == 'x') {
			status = atoi(line + 2);
			break;
		}
	}
	free(line);
	fclose(in);
	if (status < 0) {
		fprintf(stderr, "docker-registry-proxy: the daemon closed the "
				"admin connection before the end\n");
		return DRP_CTL_FAIL;
	}
	return status;
}

/* ---- on our own: the cache ---- */

static int open_cache(const drp_conf_t *conf, const char *sock,
		      const drp_cache_api_t **api, drp_cache_t **db,
		      drp_cache_stats_t *st)
{
	*api = drp_cache_backend_find(conf->cache_backend);
	if (*api == NULL) {
		fprintf(stderr, "unknown cache backend '%s'\n",
			conf->cache_backend);
		return -1;
	}
	if (!((*api)->flags & DRP_CACHE_PERSISTENT)) {
		fprintf(stderr,
			"the %s cache lives only in the daemon, and no daemon "
			"answered on its admin socket%s%s\n",
			(*api)->name, sock ? " " : "", sock ? sock : "");
		return -1;
	}
	drp_cache_conf_t cc = {.dir = conf->cache_dir,
			       .max_size = conf->cache_max_size};
	char err[512] = "";
	int r = (*api)->open(db, &cc, st, err, sizeof(err));
	if (r == -EBUSY) {
		fprintf(stderr,
			"cache %s: in use by a daemon that does not answer on "
			"an admin socket%s%s (admin_socket = off?): stop it, "
			"or give it an admin socket\n",
			conf->cache_dir, sock ? " " : "", sock ? sock : "");
		return -1;
	}
	if (r < 0) {
		fprintf(stderr, "cache: %s\n", err);
		return -1;
	}
	return 0;
}

static int cache_alone(const drp_conf_t *conf, const char *sock,
		       const drp_ctl_cmd_t *cmd)
{
	const drp_cache_api_t *api;
	drp_cache_t *db;
	drp_cache_stats_t st = {0};
	if (open_cache(conf, sock, &api, &db, &st) < 0)
		return DRP_CTL_FAIL;
	int status = drp_ctl_cache_run(cmd, api, db, &st, NULL, stdout, stderr);
	api->close(db, &st);
	return status;
}

/* ---- on our own: warm ---- */

struct alone {
	drp_worker_t *w;
	int status;
};

static void alone_line(void *arg, bool err, const char *line)
{
	(void)arg;
	if (err) {
		fprintf(stderr, "%s\n", line);
	} else {
		printf("%s\n", line);
		fflush(stdout);
	}
}

static void alone_done(void *arg, int status)
{
	struct alone *a = arg;
	a->status = status;
	ev_break(a->w->loop, EVBREAK_ALL);
}

/*
 * The daemon's request path without its listeners: the configuration's
 * generation (plugins, credentials, [resolve]), the cache, the worker
 * pool and its stores, and one worker loop, run here until the warm
 * ends; then the stores finish as at a daemon's exit.
 */
static int warm_alone(drp_conf_t *conf, const char *sock,
		      const drp_ctl_cmd_t *cmd)
{
	drp_server_t srv = {.started = time(NULL)};
	pthread_mutex_init(&srv.rt_lock, NULL);
	pthread_mutex_init(&srv.fills_lock, NULL);
	pthread_rwlock_init(&srv.loops_lock, NULL);
	char err[512] = "";
	int status = DRP_CTL_FAIL;
	const char *cache_dir = conf->cache_dir;
	char *spool = NULL;

	drp_runtime_t *rt = drp_runtime_new(conf, err, sizeof(err));
	if (rt == NULL) {
		fprintf(stderr, "%s\n", err);
		return DRP_CTL_FAIL;
	}
	srv.rt = rt;
	conf = rt->conf;
	if (open_cache(conf, sock, &srv.capi, &srv.cdb, &srv.cstats) < 0)
		goto out_rt;
	size_t sl = strlen(cache_dir) + 8;
	spool = drp_malloc(sl);
	snprintf(spool, sl, "%s/spool", cache_dir);
	if (mkdir(spool, 0700) < 0 && errno != EEXIST) {
		perror(spool);
		goto out_cache;
	}
	srv.spool_dir = spool;
	/* As in the daemon: the stores, and the hashing of cold blobs off
	 * the one loop that downloads them. */
	srv.pool = drp_pool_new(2);
	if (srv.pool == NULL)
		goto out_cache;
	srv.jobs = drp_jobs_new_on(srv.pool, "stores", 1);
	srv.hash_lane = drp_pool_lane_new(srv.pool, "hash", 1, 1, 0);
	srv.n_workers = 1;
	srv.workers = drp_calloc(1, sizeof(drp_worker_t));
	drp_worker_t *w = &srv.workers[0];
	w->srv = &srv;
	w->spare_fd = -1;
	if (drp_worker_loop_init(w, conf, &drp_conn_worker_hooks) < 0)
		goto out_pool;
	srv.loops_live = true;
	struct alone a = {.w = w, .status = DRP_CTL_FAIL};
	drp_warm_t *wm =
		drp_warm_start(w, rt, (const char *const *)cmd->args,
			       cmd->n_args, (const char *const *)cmd->platforms,
			       cmd->n_platforms, alone_line, alone_done, &a);
	if (wm != NULL)
		ev_run(w->loop, 0);
	status = wm ? a.status : DRP_CTL_USAGE;
	/* As a worker ends: plugins' pending work, then the loop. */
	w->hooks->stop(w);
	pthread_rwlock_wrlock(&srv.loops_lock);
	srv.loops_live = false;
	pthread_rwlock_unlock(&srv.loops_lock);
	drp_pool_loop_forget(srv.pool, w->loop);
	drp_worker_loop_fini(w);
out_pool:
	free(srv.workers);
	srv.workers = NULL;
	drp_fill_shutdown(&srv, 30); /* verdicts; closes the hash lane */
	drp_jobs_free(srv.jobs);
	drp_pool_free(srv.pool);
out_cache:
	srv.capi->close(srv.cdb, &srv.cstats);
out_rt:
	free(spool);
	drp_runtime_unref(rt);
	return status;
}

int drp_ctl_main(drp_conf_t *conf, const char *env_dir, int argc, char **argv)
{
	drp_ctl_cmd_t cmd;
	int status = drp_ctl_cmd_parse(argc, argv, &cmd, stderr);
	if (status != 0) {
		drp_conf_free(conf);
		return status;
	}
	char sock[4096];
	int sr = drp_ctl_socket_path(conf, env_dir, sock, sizeof(sock));
	int fd = -1, why = ENOENT;
	if (sr == 0)
		fd = connect_daemon(sock, &why);
	if (fd >= 0) {
		status = relay(fd, &cmd);
		drp_conf_free(conf);
	} else {
		if (why != ENOENT && why != ECONNREFUSED)
			fprintf(stderr,
				"docker-registry-proxy: admin socket %s: %s; "
				"working without the daemon\n",
				sock, strerror(why));
		/* Only what the operator asked for goes to the terminal. */
		drp_log_init(DRP_LOG_WARNING, NULL);
		signal(SIGPIPE, SIG_IGN);
		if (cmd.op == DRP_CTL_WARM) {
			status = warm_alone(conf, sr == 0 ? sock : NULL, &cmd);
		} else {
			status = cache_alone(conf, sr == 0 ? sock : NULL, &cmd);
			drp_conf_free(conf);
		}
	}
	drp_ctl_cmd_free(&cmd);
	return status;
}
