/* SPDX-License-Identifier: MIT */
/* The fuzz targets' in-process world; see world.h. */
#include "world.h"

#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "cache/cache.h"
#include "conf/conf.h"
#include "proxy/conn.h"
#include "upstream/fetch.h"
#include "tls/ca.h"
#include "util/log.h"

fz_world_t FZ;

typedef struct fake_conn {
	ev_io rio, wio;
	int fd;
	unsigned heads;
	char tail[4];
	const char *out; /* what is left to send */
	size_t out_len;
	bool close_after;
	struct fake_conn *next;
} fake_conn_t;

static int lfd = -1;
static ev_io lio;
static fake_conn_t *fakes;

static void fake_close(fake_conn_t *f)
{
	ev_io_stop(FZ.w.loop, &f->rio);
	ev_io_stop(FZ.w.loop, &f->wio);
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

static void fake_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	fake_conn_t *f =
		(fake_conn_t *)((char *)io - offsetof(fake_conn_t, wio));
	size_t n = f->out_len;
	if (FZ.piece && n > FZ.piece)
		n = FZ.piece;
	if (n > 0) {
		ssize_t r = send(f->fd, f->out, n, MSG_NOSIGNAL);
		if (r < 0 && errno != EAGAIN && errno != EINTR) {
			fake_close(f);
			return;
		}
		if (r > 0) {
			f->out += r;
			f->out_len -= (size_t)r;
		}
	}
	if (f->out_len == 0) {
		ev_io_stop(loop, &f->wio);
		if (f->close_after)
			fake_close(f);
	}
}

/* A request head ended: queue its answer (when the previous one is out;
 * a head read meanwhile is answered with nothing). */
static void fake_head(fake_conn_t *f)
{
	if ((FZ.once && f->heads++ > 0) || f->out_len > 0)
		return;
	if (FZ.once ? FZ.n_answers == 0 : FZ.next >= FZ.n_answers) {
		f->close_after = true;
		ev_io_start(FZ.w.loop, &f->wio);
		return;
	}
	const fz_answer_t *a = &FZ.answers[FZ.once ? 0 : FZ.next++];
	f->out = a->p;
	f->out_len = a->n;
	f->close_after = a->close;
	ev_io_start(FZ.w.loop, &f->wio);
}

static void fake_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	fake_conn_t *f = (fake_conn_t *)io;
	char buf[16384];
	for (;;) {
		ssize_t n = recv(f->fd, buf, sizeof(buf), 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			fake_close(f);
			return;
		}
		if (n < 0)
			return;
		for (ssize_t i = 0; i < n && f->fd >= 0; i++) {
			memmove(f->tail, f->tail + 1, 3);
			f->tail[3] = buf[i];
			if (memcmp(f->tail, "\r\n\r\n", 4) == 0)
				fake_head(f);
		}
		if (f->fd < 0)
			return;
	}
}

static void fake_accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		fake_conn_t *f = calloc(1, sizeof(*f));
		f->fd = fd;
		f->next = fakes;
		fakes = f;
		ev_io_init(&f->rio, fake_read_cb, fd, EV_READ);
		ev_io_init(&f->wio, fake_write_cb, fd, EV_WRITE);
		ev_io_start(loop, &f->rio);
	}
}

/* Callbacks invoked by the last ev_run round. */
static unsigned invoked;

static void count_invoke(struct ev_loop *loop)
{
	invoked += ev_pending_count(loop);
	ev_invoke_pending(loop);
}

void fz_run_until_idle(void)
{
	unsigned quiet = 0;
	for (int i = 0; i < 5000 && quiet < 3; i++) {
		invoked = 0;
		ev_run(FZ.w.loop, EVRUN_NOWAIT);
		quiet = invoked == 0 ? quiet + 1 : 0;
	}
}

void fz_script(const fz_answer_t *answers, size_t n, bool once, size_t piece)
{
	FZ.answers = answers;
	FZ.n_answers = n;
	FZ.next = 0;
	FZ.once = once;
	FZ.piece = piece;
}

void fz_reset(void)
{
	drp_conn_close_all(&FZ.w, "fuzz input done");
	for (fake_conn_t *f = fakes, *next; f; f = next) {
		next = f->next;
		fake_close(f);
		free(f);
	}
	fakes = NULL;
	drp_fetch_pool_flush(&FZ.w.upstream);
	/* Reaps the closed connections (the ev_prepare watcher). */
	fz_run_until_idle();
	drp_conn_reap(&FZ.w);
	FZ.answers = NULL;
	FZ.n_answers = 0;
}

size_t fz_split(const uint8_t *data, size_t size, fz_answer_t *out, size_t max)
{
	const char *p = (const char *)data, *end = p + size;
	size_t n = 0;
	while (n + 1 < max) {
		const char *s =
			memmem(p, (size_t)(end - p), FZ_SEP, FZ_SEP_LEN);
		if (s == NULL)
			break;
		out[n++] = (fz_answer_t){.p = p, .n = (size_t)(s - p)};
		p = s + FZ_SEP_LEN;
	}
	out[n++] = (fz_answer_t){.p = p, .n = (size_t)(end - p)};
	return n;
}

static int rm_cb(const char *path, const struct stat *st, int flag,
		 struct FTW *ftw)
{
	remove(path);
	return 0;
}

/* The CA and the cache live in a temporary directory: gone at exit. */
static void cleanup(void)
{
	nftw(FZ.dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

void fz_setup(const char *log_env)
{
	if (FZ.w.loop != NULL)
		return;
	bool logs = getenv(log_env) != NULL;
	signal(SIGPIPE, SIG_IGN);
	gnutls_global_init();
	drp_log_set_level(logs ? DRP_LOG_DEBUG : DRP_LOG_ERR);

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sin);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sl) < 0 ||
	    listen(lfd, 128) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &sl) < 0)
		abort();
	unsigned port = ntohs(sin.sin_port);
	FZ.port = port;

	snprintf(FZ.dir, sizeof(FZ.dir), "/tmp/drp_fuzz.XXXXXX");
	if (mkdtemp(FZ.dir) == NULL)
		abort();
	atexit(cleanup);
	const char *dir = FZ.dir;
	snprintf(FZ.cache, sizeof(FZ.cache), "%s/cache", dir);
	char text[2048];
	snprintf(text, sizeof(text),
		 "[proxy]\n"
		 "listen = 127.0.0.1:3128\n"
		 "workers = 1\n"
		 "registries = registry.test\n"
		 "allow = 127.0.0.1/32\n"
		 "tunnel_ports = 443 8443\n"
		 "ca_dir = %s/ca\n"
		 "access_log = %s\n"
		 "[resolve]\n"
		 "registry.test = 127.0.0.1:%u\n"
		 "nonexistent.invalid = 127.0.0.1:%u\n"
		 "up.test = 127.0.0.1:%u\n"
		 "other.test = 127.0.0.1:%u\n"
		 "auth.test = 127.0.0.1:%u\n"
		 "[cache]\n"
		 "dir = %s/cache\n",
		 dir, logs ? "-" : "/dev/null", port, port, port, port, port,
		 dir);
	drp_conf_errors_t errs = {0};
	drp_conf_t *conf = drp_conf_load_string("fuzz.ini", text, &errs);
	if (conf == NULL) {
		for (unsigned i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msg[i]);
		abort();
	}
	char err[512] = "";
	drp_server_t *srv = &FZ.srv;
	pthread_mutex_init(&srv->rt_lock, NULL);
	pthread_mutex_init(&srv->fills_lock, NULL);
	pthread_rwlock_init(&srv->loops_lock, NULL);
	srv->ca = drp_ca_open(conf->ca_dir, err, sizeof(err));
	if (srv->ca == NULL ||
	    (srv->forge = drp_forge_new(srv->ca, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	const drp_cache_api_t *api =
		drp_cache_backend_find(conf->cache_backend);
	drp_cache_conf_t cc = {.dir = conf->cache_dir,
			       .max_size = conf->cache_max_size};
	if (api == NULL ||
	    api->open(&srv->cdb, &cc, &srv->cstats, err, sizeof(err)) < 0) {
		fprintf(stderr, "cache: %s\n", err);
		abort();
	}
	srv->capi = api;
	char spool[4200];
	snprintf(spool, sizeof(spool), "%s/spool", conf->cache_dir);
	mkdir(spool, 0700);
	srv->spool_dir = strdup(spool);
	srv->rt = drp_runtime_new(conf, err, sizeof(err));
	if (srv->rt == NULL) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	FZ.w.srv = srv;
	FZ.w.spare_fd = -1;
	srv->workers = &FZ.w;
	srv->n_workers = 1;
	if (drp_worker_loop_init(&FZ.w, conf, &drp_conn_worker_hooks) < 0)
		abort();
	/* Names not in [resolve] fail fast, without the network. */
	drp_dns_set_servers(FZ.w.upstream.dns, "127.0.0.1:9");
	srv->loops_live = true;
	ev_set_invoke_pending_cb(FZ.w.loop, count_invoke);
	ev_io_init(&lio, fake_accept_cb, lfd, EV_READ);
	ev_io_start(FZ.w.loop, &lio);
}
