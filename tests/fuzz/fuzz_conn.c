/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the client connection state machine itself (proxy/conn.c
 * and what it calls), driven through its public seam. One worker loop
 * with an in-memory configuration runs in this thread; each input is
 * written into a socketpair whose other end is handed to the connection
 * code, against an in-process fake upstream on a loopback port of the
 * same loop ([resolve] sends every test host there; DNS goes to a closed
 * port). The loop runs until nothing is pending, the client end is shut,
 * the loop runs idle again, then every connection is closed and reaped.
 *
 * Input: byte 0 selects the seam and the upstream's behaviour, the rest
 * is what the client sends.
 *   bit 0     0: the plain proxy port (drp_conn_accept);
 *             1: a session as if its CONNECT to registry.test:443 had
 *                been intercepted, below TLS (drp_conn_accept_intercepted)
 *             (FUZZ_CONN_SEAM=plain|intercepted overrides it, for a run
 *             on one seam only)
 *   bits 1-3  the fake upstream's answer to every request head (table
 *             `answers` below: lengths, chunked, EOF, 401, garbage...)
 *   bits 4-5  damage to the one blob in the cache (an fs cache in a
 *             temporary directory, stored and marked as served for
 *             registry.test/test/x before each input that needs it):
 *             0 none, 1 its file deleted, 2 truncated, 3 emptied
 *
 * Deterministic and fast: no timers are waited for, no real network.
 * The interesting failures are memory errors (ASan) and UB (UBSan).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "cache/cache.h"
#include "conf/conf.h"
#include "proxy/conn.h"
#include "upstream/fetch.h"
#include "proxy/server.h"
#include "proxy/worker.h"
#include "tls/ca.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const answers[8] = {
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	"5\r\nhello\r\n0\r\n\r\n",
	"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
	"",					/* close without an answer */
	"HTTP/1.0 200 OK\r\n\r\nuntil the end", /* EOF-delimited */
	"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer "
	"realm=\"https://auth.test/token\",service=\"x\"\r\n"
	"Content-Length: 2\r\n\r\n{}",
	"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
	"garbage\r\n\r\n",
};
static const bool answer_closes[8] = {false, false, false, true,
				      true,  false, true,  true};

typedef struct fake_conn {
	ev_io io;
	int fd;
	bool answered;
	size_t seen;
	char head[4];
	struct fake_conn *next;
} fake_conn_t;

static struct {
	bool ready;
	drp_server_t srv;
	drp_worker_t w;
	int lfd;
	ev_io lio;
	fake_conn_t *fakes;
	unsigned answer;
	ev_io cio; /* the test's end of the socketpair: drained */
	int cfd;
	int seam; /* -1: from the input; 0 plain; 1 intercepted */
	char blob_digest[80];
	char blob_path[4200];
	char blob[40000];
} F;

/* The cached blob: sha256 of `blob` (fuzz_conn.dict names its path). */
static void blob_store(void)
{
	drp_server_t *srv = &F.srv;
	if (srv->capi->lookup(srv->cdb, &srv->cstats, F.blob_digest, NULL) == 0)
		return;
	drp_cache_writer_t *wr = NULL;
	if (srv->capi->write_begin(srv->cdb, &srv->cstats, F.blob_digest,
				   sizeof(F.blob), &wr) < 0 ||
	    srv->capi->write(srv->cdb, &srv->cstats, wr, F.blob,
			     sizeof(F.blob)) < 0 ||
	    srv->capi->commit(srv->cdb, &srv->cstats, wr) < 0)
		abort();
	drp_cache_seen_put(srv->capi, srv->cdb, &srv->cstats, F.blob_digest,
			   "registry.test", "test/x");
}

static void blob_damage(unsigned how)
{
	blob_store();
	if (how == 1)
		unlink(F.blob_path);
	else if (how == 2 || how == 3)
		truncate(F.blob_path, how == 2 ? sizeof(F.blob) / 2 : 0);
}

static void fake_close(fake_conn_t *f)
{
	ev_io_stop(F.w.loop, &f->io);
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

static void fake_io_cb(struct ev_loop *loop, ev_io *io, int revents)
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
		/* Answer (once) at the first CRLFCRLF: request bodies and
		 * later requests are read and dropped. */
		for (ssize_t i = 0; i < n && !f->answered; i++) {
			memmove(f->head, f->head + 1, 3);
			f->head[3] = buf[i];
			if (memcmp(f->head, "\r\n\r\n", 4) == 0) {
				const char *a = answers[F.answer];
				ssize_t r =
					send(f->fd, a, strlen(a), MSG_NOSIGNAL);
				(void)r;
				f->answered = true;
				if (answer_closes[F.answer]) {
					fake_close(f);
					return;
				}
			}
		}
	}
}

static void fake_accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	for (;;) {
		int fd = accept4(F.lfd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		fake_conn_t *f = calloc(1, sizeof(*f));
		f->fd = fd;
		f->next = F.fakes;
		F.fakes = f;
		ev_io_init(&f->io, fake_io_cb, fd, EV_READ);
		ev_io_start(loop, &f->io);
	}
}

static void client_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	char buf[65536];
	ssize_t n;
	while ((n = recv(F.cfd, buf, sizeof(buf), 0)) > 0)
		;
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		ev_io_stop(loop, io);
}

/* Callbacks invoked by the last ev_run round. */
static unsigned invoked;

static void count_invoke(struct ev_loop *loop)
{
	invoked += ev_pending_count(loop);
	ev_invoke_pending(loop);
}

static void run_until_idle(void)
{
	unsigned quiet = 0;
	for (int i = 0; i < 5000 && quiet < 3; i++) {
		invoked = 0;
		ev_run(F.w.loop, EVRUN_NOWAIT);
		quiet = invoked == 0 ? quiet + 1 : 0;
	}
}

static char tmpdir[64];

static int rm_cb(const char *path, const struct stat *st, int flag,
		 struct FTW *ftw)
{
	remove(path);
	return 0;
}

/* The CA and the cache live in a temporary directory: gone at exit. */
static void cleanup(void)
{
	nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	gnutls_global_init();
	drp_log_set_level(getenv("FUZZ_CONN_LOG") ? DRP_LOG_DEBUG
						  : DRP_LOG_ERR);

	const char *seam = getenv("FUZZ_CONN_SEAM");
	F.seam = seam == NULL			    ? -1
		 : strcmp(seam, "intercepted") == 0 ? 1
		 : strcmp(seam, "plain") == 0	    ? 0
						    : -1;
	F.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sin);
	if (F.lfd < 0 || bind(F.lfd, (struct sockaddr *)&sin, sl) < 0 ||
	    listen(F.lfd, 128) < 0 ||
	    getsockname(F.lfd, (struct sockaddr *)&sin, &sl) < 0)
		abort();
	unsigned port = ntohs(sin.sin_port);

	char dir[] = "/tmp/fuzz_conn.XXXXXX";
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(tmpdir, sizeof(tmpdir), "%s", dir);
	atexit(cleanup);
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
		 dir, getenv("FUZZ_CONN_LOG") ? "-" : "/dev/null", port, port,
		 port, port, port, dir);
	drp_conf_errors_t errs = {0};
	drp_conf_t *conf = drp_conf_load_string("fuzz_conn.ini", text, &errs);
	if (conf == NULL) {
		for (unsigned i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msg[i]);
		abort();
	}
	char err[512] = "";
	drp_server_t *srv = &F.srv;
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
	for (size_t i = 0; i < sizeof(F.blob); i++)
		F.blob[i] = (char)('a' + i % 26);
	uint8_t md[32];
	gnutls_hash_fast(GNUTLS_DIG_SHA256, F.blob, sizeof(F.blob), md);
	int o = snprintf(F.blob_digest, sizeof(F.blob_digest), "sha256:");
	for (int i = 0; i < 32; i++)
		o += snprintf(F.blob_digest + o,
			      sizeof(F.blob_digest) - (size_t)o, "%02x", md[i]);
	snprintf(F.blob_path, sizeof(F.blob_path),
		 "%.4000s/blobs/sha256/%.2s/%.64s", conf->cache_dir,
		 F.blob_digest + 7, F.blob_digest + 7);
	srv->rt = drp_runtime_new(conf, err, sizeof(err));
	if (srv->rt == NULL) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	F.w.srv = srv;
	F.w.spare_fd = -1;
	srv->workers = &F.w;
	srv->n_workers = 1;
	if (drp_worker_loop_init(&F.w, conf, &drp_conn_worker_hooks) < 0)
		abort();
	/* Names not in [resolve] fail fast, without the network. */
	drp_dns_set_servers(F.w.upstream.dns, "127.0.0.1:9");
	srv->loops_live = true;
	ev_set_invoke_pending_cb(F.w.loop, count_invoke);
	ev_io_init(&F.lio, fake_accept_cb, F.lfd, EV_READ);
	ev_io_start(F.w.loop, &F.lio);
	F.ready = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!F.ready)
		setup();
	if (size < 1)
		return 0;
	bool intercepted = data[0] & 1;
	if (F.seam >= 0)
		intercepted = F.seam == 1;
	F.answer = (data[0] >> 1) & 7;
	blob_damage((data[0] >> 4) & 3);
	data++;
	size--;

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		       sv) < 0)
		abort();
	int big = 1 << 20;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	F.cfd = sv[0];
	struct sockaddr_in peer = {.sin_family = AF_INET,
				   .sin_port = htons(40000),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (intercepted)
		drp_conn_accept_intercepted(&F.w, sv[1],
					    (struct sockaddr *)&peer,
					    sizeof(peer), "registry.test", 443);
	else
		drp_conn_accept(&F.w, sv[1], (struct sockaddr *)&peer,
				sizeof(peer));
	ev_io_init(&F.cio, client_cb, F.cfd, EV_READ);
	ev_io_start(F.w.loop, &F.cio);

	/* What the socket takes at once; the rest as the proxy reads. */
	size_t off = 0;
	for (int round = 0; round < 64 && off < size; round++) {
		ssize_t n = send(F.cfd, data + off, size - off, MSG_NOSIGNAL);
		if (n > 0)
			off += (size_t)n;
		else if (n < 0 && errno != EAGAIN)
			break;
		run_until_idle();
	}
	run_until_idle();
	shutdown(F.cfd, SHUT_WR);
	run_until_idle();

	drp_conn_close_all(&F.w, "fuzz input done");
	ev_io_stop(F.w.loop, &F.cio);
	close(F.cfd);
	for (fake_conn_t *f = F.fakes, *next; f; f = next) {
		next = f->next;
		fake_close(f);
		free(f);
	}
	F.fakes = NULL;
	drp_fetch_pool_flush(&F.w.upstream);
	/* Reaps the closed connections (the ev_prepare watcher). */
	run_until_idle();
	drp_conn_reap(&F.w);
	return 0;
}
