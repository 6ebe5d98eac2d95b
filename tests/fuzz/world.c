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
	gnutls_session_t tls; /* NULL: plaintext */
	bool hs_done;
	drp_leaf_t *leaf;
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
	if (f->tls)
		gnutls_deinit(f->tls);
	f->tls = NULL;
	if (f->leaf)
		drp_leaf_unref(f->leaf);
	f->leaf = NULL;
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

/* The certificate for the name the client asks for (SNI), forged by the
 * proxy's own CA, which upstream_ca_file makes the proxy trust. */
static int fake_hello(gnutls_session_t s)
{
	fake_conn_t *f = gnutls_session_get_ptr(s);
	char name[256];
	size_t len = sizeof(name);
	unsigned type;
	if (gnutls_server_name_get(s, name, &len, &type, 0) < 0)
		snprintf(name, sizeof(name), "registry.test");
	if (f->leaf == NULL)
		f->leaf = drp_forge_get(FZ.srv.forge, name);
	if (f->leaf == NULL)
		return GNUTLS_E_CERTIFICATE_ERROR;
	return gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, f->leaf->cred);
}

/* send/recv through TLS when the connection has it. */
static ssize_t fake_send(fake_conn_t *f, const char *p, size_t n)
{
	if (f->tls == NULL)
		return send(f->fd, p, n, MSG_NOSIGNAL);
	ssize_t r = gnutls_record_send(f->tls, p, n);
	if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
		errno = EAGAIN;
		return -1;
	}
	if (r < 0)
		errno = EPIPE;
	return r < 0 ? -1 : r;
}

static ssize_t fake_recv(fake_conn_t *f, char *p, size_t n)
{
	if (f->tls == NULL)
		return recv(f->fd, p, n, 0);
	if (!f->hs_done) {
		int r = gnutls_handshake(f->tls);
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
			errno = EAGAIN;
			return -1;
		}
		if (r < 0) {
			errno = EPROTO;
			return -1;
		}
		f->hs_done = true;
	}
	ssize_t r = gnutls_record_recv(f->tls, p, n);
	if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
		errno = EAGAIN;
		return -1;
	}
	if (r < 0)
		errno = EPROTO;
	return r < 0 ? -1 : r;
}

static void fake_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	fake_conn_t *f =
		(fake_conn_t *)((char *)io - offsetof(fake_conn_t, wio));
	size_t n = f->out_len;
	if (FZ.piece && n > FZ.piece)
		n = FZ.piece;
	if (n > 0) {
		ssize_t r = fake_send(f, f->out, n);
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
		ssize_t n = fake_recv(f, buf, sizeof(buf));
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
		if (FZ.tls) {
			gnutls_init(&f->tls, GNUTLS_SERVER | GNUTLS_NONBLOCK);
			gnutls_session_set_ptr(f->tls, f);
			gnutls_set_default_priority(f->tls);
			gnutls_handshake_set_post_client_hello_function(
				f->tls, fake_hello);
			gnutls_transport_set_int(f->tls, fd);
		}
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

void fz_script(const fz_answer_t *answers, size_t n, bool once, size_t piece,
	       bool tls)
{
	FZ.tls = tls;
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
	/* The CA first: the fake upstream's TLS certificates come from it,
	 * and the proxy trusts it upstream too. */
	drp_server_t *srv = &FZ.srv;
	char err[512] = "", cadir[128], upca[128];
	snprintf(cadir, sizeof(cadir), "%s/ca", dir);
	snprintf(upca, sizeof(upca), "%s/upstream-ca.pem", dir);
	srv->ca = drp_ca_open(cadir, err, sizeof(err));
	if (srv->ca == NULL ||
	    (srv->forge = drp_forge_new(srv->ca, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	size_t pem_len;
	const char *pem = drp_ca_pem(srv->ca, &pem_len);
	FILE *pf = fopen(upca, "w");
	if (pf == NULL || fwrite(pem, 1, pem_len, pf) != pem_len ||
	    fclose(pf) != 0)
		abort();
	char text[2048];
	snprintf(text, sizeof(text),
		 "[proxy]\n"
		 "listen = 127.0.0.1:3128\n"
		 "workers = 1\n"
		 "registries = registry.test\n"
		 "allow = 127.0.0.1/32\n"
		 "tunnel_ports = 443 8443\n"
		 "ca_dir = %s\n"
		 "upstream_ca_file = %s\n"
		 "access_log = %s\n"
		 "[resolve]\n"
		 "registry.test = 127.0.0.1:%u\n"
		 "nonexistent.invalid = 127.0.0.1:%u\n"
		 "up.test = 127.0.0.1:%u\n"
		 "other.test = 127.0.0.1:%u\n"
		 "auth.test = 127.0.0.1:%u\n"
		 "[cache]\n"
		 "dir = %s/cache\n",
		 cadir, upca, logs ? "-" : "/dev/null", port, port, port, port,
		 port, dir);
	drp_conf_errors_t errs = {0};
	drp_conf_t *conf = drp_conf_load_string("fuzz.ini", text, &errs);
	if (conf == NULL) {
		for (unsigned i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msg[i]);
		abort();
	}
	pthread_mutex_init(&srv->rt_lock, NULL);
	pthread_mutex_init(&srv->fills_lock, NULL);
	pthread_rwlock_init(&srv->loops_lock, NULL);
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
