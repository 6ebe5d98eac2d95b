/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.1 load generator for bench/load.sh: many connections on one libev
 * loop (one thread, so it can be pinned to one core), GnuTLS clients that
 * trust one CA file and never resume a session (each connection is a full
 * handshake, as Go clients do).
 *
 * Modes (--mode):
 *   connect  TCP to --server (the proxy), "CONNECT host:port", TLS to
 *            --host through the tunnel (the proxy's forged certificate,
 *            trusted through --ca, name checked), then the requests
 *   tls      TLS straight to --server, SNI and name check --host (nginx)
 *   plain    plain HTTP to --server (the proxy's mirror port), origin-form
 *
 * Workloads:
 *   -c N [-k K]   N connections, each K requests then closed and replaced
 *                 (0: keep-alive for the whole run); closed loop: the next
 *                 request leaves when the answer to the last is complete
 *   -r RATE       open loop: requests are due at RATE per second from the
 *                 start, each taken by the first free connection; the
 *                 latency counts from when the request was due, so a
 *                 server that falls behind shows as latency, and the
 *                 report gives the rate attempted and the rate achieved
 *   --hold M      M connections that each make --hold-requests requests
 *                 and then stay open and idle (the client keeps only the
 *                 socket) for --duration seconds
 * The run ends by itself: after --duration seconds or --count requests,
 * whichever comes first, plus at most --timeout for what is in flight.
 *
 * Requests come from --requests FILE (lines "METHOD PATH [SIZE [STATUS]]",
 * taken round-robin by every connection) or --path PATH [--method M].
 * Each answer must have STATUS (200) and, if SIZE is given, a body (GET)
 * or Content-Length (HEAD) of SIZE bytes; with --verify, the body of a
 * path naming sha256:HEX must hash to it.
 *
 * With --pid PID (repeatable) it also reads those processes' CPU time
 * (utime + stime of /proc/PID/stat) over the measured window, and their
 * resident memory (VmRSS, VmHWM of /proc/PID/status).
 *
 * Output: readable lines, then one "RESULT key=value ..." line for
 * scripts. Exit status 0 if the run completed (whatever the errors), 2 on
 * bad usage, 1 if it could not run.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#define MAX_PIDS  16
#define HBUF_SIZE 8192
#define RBUF_SIZE (256 * 1024)

/* ---- latency histogram: microseconds, exact below 1024 µs, then 512
 * sub-buckets per power of two (0.2 % resolution) ---- */
#define H_BUCKETS (1024 + 40 * 512)

typedef struct hist {
	uint64_t n, max, sum;
	uint64_t b[H_BUCKETS];
} hist_t;

static unsigned h_index(uint64_t us)
{
	if (us < 1024)
		return (unsigned)us;
	unsigned k = 63 - (unsigned)__builtin_clzll(us);
	unsigned s = k - 9;
	unsigned i = 1024 + (k - 10) * 512 + (unsigned)((us >> s) - 512);
	return i < H_BUCKETS ? i : H_BUCKETS - 1;
}

/* The middle of bucket i, in µs. */
static double h_mid(unsigned i)
{
	if (i < 1024)
		return i;
	unsigned k = (i - 1024) / 512 + 10, s = k - 9;
	uint64_t lo = (uint64_t)((i - 1024) % 512 + 512) << s;
	return (double)lo + (double)((uint64_t)1 << s) / 2;
}

static void h_add(hist_t *h, uint64_t us)
{
	h->b[h_index(us)]++;
	h->n++;
	h->sum += us;
	if (us > h->max)
		h->max = us;
}

/* The p-quantile (0..1) in milliseconds; 0 if empty. */
static double h_pct(const hist_t *h, double p)
{
	if (h->n == 0)
		return 0;
	uint64_t want = (uint64_t)(p * (double)h->n + 0.999999), acc = 0;
	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < H_BUCKETS; i++) {
		acc += h->b[i];
		if (acc >= want)
			return h_mid(i) / 1000;
	}
	return (double)h->max / 1000;
}

/* ---- the request list ---- */
typedef struct req {
	char *wire; /* the request as sent */
	size_t wire_len;
	bool head;
	long long size; /* expected body / Content-Length; -1: any */
	int status;	/* expected status */
	bool has_digest;
	uint8_t digest[32];
} req_t;

/* ---- error kinds ---- */
enum {
	E_SOCKET,	 /* socket() failed (EMFILE...) */
	E_CONNECT,	 /* TCP connect failed */
	E_PROXY_STATUS,	 /* CONNECT answered with another status */
	E_HANDSHAKE,	 /* TLS handshake failed (certificate included) */
	E_SETUP_TIMEOUT, /* no connection within --timeout */
	E_RESP_TIMEOUT,	 /* no complete answer within --timeout */
	E_CLOSED,	 /* closed or reset while a request was open */
	E_IO,		 /* another read/write/TLS error */
	E_STATUS,	 /* unexpected HTTP status */
	E_SIZE,		 /* wrong body size */
	E_DIGEST,	 /* body does not hash to the digest */
	E_PARSE,	 /* malformed answer */
	E_HELD_CLOSED,	 /* a held connection was closed by the server */
	E_SETUP_CLOSED,	 /* closed during CONNECT or the handshake */
	E_KINDS
};
static const char *const e_names[E_KINDS] = {
	[E_SOCKET] = "socket",
	[E_CONNECT] = "connect",
	[E_PROXY_STATUS] = "proxy_status",
	[E_HANDSHAKE] = "handshake",
	[E_SETUP_TIMEOUT] = "setup_timeout",
	[E_RESP_TIMEOUT] = "resp_timeout",
	[E_CLOSED] = "closed",
	[E_IO] = "io",
	[E_STATUS] = "status",
	[E_SIZE] = "size",
	[E_DIGEST] = "digest",
	[E_PARSE] = "parse",
	[E_HELD_CLOSED] = "held_closed",
	[E_SETUP_CLOSED] = "setup_closed",
};

enum mode { M_CONNECT, M_TLS, M_PLAIN };

enum cstate {
	S_CONNECTING,	/* TCP connect in progress */
	S_CONNECT_SEND, /* writing the CONNECT request */
	S_CONNECT_RESP, /* reading the proxy's answer */
	S_HANDSHAKE,
	S_IDLE, /* ready, no request open */
	S_SEND,
	S_RECV,
	S_HELD /* idle for good: socket only, TLS state freed */
};

enum pstate {
	P_HEAD,
	P_BODY,	      /* Content-Length bytes */
	P_BODY_EOF,   /* until the server closes */
	P_CHUNK_SIZE, /* hex digits, extensions, CRLF */
	P_CHUNK_DATA,
	P_CHUNK_CRLF,
	P_TRAILER, /* lines until an empty one */
	P_DONE
};

typedef struct conn {
	ev_io io;
	ev_timer timer;
	int fd;
	int events; /* what io watches */
	enum cstate state;
	gnutls_session_t tls;
	bool hold;	 /* one of --hold's */
	bool measured;	 /* ready inside the measured window */
	unsigned nreq;	 /* answers on this connection */
	double t_open;	 /* connect() started */
	const char *out; /* what is being written */
	size_t out_len, out_off;
	/* the open request */
	const req_t *req;
	double t_sched, t_send;
	/* the answer */
	enum pstate p;
	char hbuf[HBUF_SIZE];
	size_t hlen;
	int status;
	long long clen, left, body;
	bool chunked, close_after;
	gnutls_hash_hd_t hash;
	struct conn *next_idle;
	struct conn *prev, *next; /* all open connections */
} conn_t;

/* ---- options and state: one run per process ---- */
static struct {
	enum mode mode;
	const char *server, *host, *ca, *priority, *label, *reqfile, *path;
	const char *method;
	char host_name[256]; /* host without port: SNI, Host, name check */
	char host_port[300]; /* host:port: CONNECT target */
	char *extra_headers;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	unsigned conns, per_conn, hold, hold_requests, max_connecting;
	double duration, rate, timeout;
	uint64_t count;
	bool verify;
	pid_t pids[MAX_PIDS];
	unsigned npids;

	gnutls_certificate_credentials_t cred;
	gnutls_priority_t prio;
	req_t *reqs;
	size_t nreqs, next_req;
	char *connect_wire;
	size_t connect_len;

	struct ev_loop *loop;
	ev_timer tick, stop_timer, grace_timer, retry_timer, hold_timer,
		warm_timer;
	conn_t *all;
	conn_t *idle;
	unsigned n_open, n_connecting, n_ready_now, n_held, n_hold_done,
		n_held_reported, n_held_end;
	bool warming, measuring, stopping, retry_armed, hold_reported;

	/* measurement */
	double t0, t_end;
	uint64_t issued, ok, err[E_KINDS], conns_opened, conns_ready,
		conns_failed, ka_closed;
	unsigned status_seen[600];
	hist_t lat, svc, setup;
	struct rusage ru0, ru1;
	uint64_t srv_ticks0, srv_ticks1;
	long rss_start, rss0, rss_held, hwm_held, rss1, hwm1;
	unsigned err_logged;
} G;

static uint8_t rbuf[RBUF_SIZE];

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("loadgen: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void *xcalloc(size_t n, size_t s)
{
	void *p = calloc(n, s);
	if (p == NULL) {
		fputs("loadgen: out of memory\n", stderr);
		exit(1);
	}
	return p;
}

/* ---- /proc readings of the servers ---- */

/* utime + stime of every --pid, in clock ticks. */
static uint64_t srv_ticks(void)
{
	uint64_t sum = 0;
	for (unsigned i = 0; i < G.npids; i++) {
		char path[64], buf[1024];
		snprintf(path, sizeof(path), "/proc/%ld/stat", (long)G.pids[i]);
		FILE *f = fopen(path, "r");
		if (f == NULL)
			continue;
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		char *p = strrchr(buf, ')');
		if (p == NULL)
			continue;
		/* after the comm: state is field 3; utime 14, stime 15 */
		unsigned long long ut = 0, st = 0;
		if (sscanf(p + 2,
			   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu "
			   "%llu",
			   &ut, &st) == 2)
			sum += ut + st;
	}
	return sum;
}

/* Sum of a /proc/PID/status field (kB) over every --pid. */
static long srv_status_kb(const char *field)
{
	long sum = 0;
	size_t fl = strlen(field);
	for (unsigned i = 0; i < G.npids; i++) {
		char path[64], line[256];
		snprintf(path, sizeof(path), "/proc/%ld/status",
			 (long)G.pids[i]);
		FILE *f = fopen(path, "r");
		if (f == NULL)
			continue;
		while (fgets(line, sizeof(line), f))
			if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
				sum += strtol(line + fl + 1, NULL, 10);
				break;
			}
		fclose(f);
	}
	return sum;
}

/* ---- connections ---- */

static void io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void conn_step(conn_t *c);
static void dispatch(conn_t *c);
static void refill(void);
static void check_done(void);
static void start_measuring(void);

static void watch(conn_t *c, int events)
{
	if (c->events == events)
		return;
	if (c->events)
		ev_io_stop(G.loop, &c->io);
	c->events = events;
	if (events) {
		ev_io_set(&c->io, c->fd, events);
		ev_io_start(G.loop, &c->io);
	}
}

static void arm_timer(conn_t *c)
{
	c->timer.repeat = G.timeout;
	ev_timer_again(G.loop, &c->timer);
}

static void count_error(int kind, conn_t *c, const char *detail)
{
	G.err[kind]++;
	if (G.err_logged < 8) {
		G.err_logged++;
		fprintf(stderr, "loadgen: error %s%s%s\n", e_names[kind],
			detail ? ": " : "", detail ? detail : "");
	}
	(void)c;
}

static void unlink_idle(conn_t *c)
{
	for (conn_t **pp = &G.idle; *pp; pp = &(*pp)->next_idle)
		if (*pp == c) {
			*pp = c->next_idle;
			break;
		}
	c->next_idle = NULL;
}

/* The one close: frees everything; replacements come from refill(). */
static void conn_close(conn_t *c, bool bye)
{
	if (c->state == S_IDLE)
		unlink_idle(c);
	if (c->state < S_IDLE)
		G.n_connecting--;
	if (c->state == S_HELD)
		G.n_held--;
	if (c->tls) {
		if (bye)
			gnutls_bye(c->tls, GNUTLS_SHUT_WR);
		gnutls_deinit(c->tls);
	}
	if (c->hash)
		gnutls_hash_deinit(c->hash, NULL);
	watch(c, 0);
	ev_timer_stop(G.loop, &c->timer);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		G.all = c->next;
	if (c->next)
		c->next->prev = c->prev;
	G.n_open--;
	free(c);
}

/* A failure: counted under kind (a request error if a request was open),
 * the connection closed and replaced. */
static void conn_fail(conn_t *c, int kind, const char *detail)
{
	if (c->state < S_IDLE)
		G.conns_failed++;
	if (c->hold && c->state < S_HELD)
		G.n_hold_done++;
	count_error(kind, c, detail);
	conn_close(c, false);
	refill();
	check_done();
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	G.retry_armed = false;
	refill();
}

/* Connections that fail at once (no descriptor, connection refused) are
 * retried a little later, not in a loop. */
static void arm_retry(void)
{
	if (G.retry_armed || G.stopping)
		return;
	G.retry_armed = true;
	ev_timer_set(&G.retry_timer, 0.05, 0);
	ev_timer_start(G.loop, &G.retry_timer);
}

static void conn_open(bool hold)
{
	G.conns_opened++;
	int fd = socket(G.addr.ss_family,
			SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		G.conns_failed++;
		count_error(E_SOCKET, NULL, strerror(errno));
		if (hold)
			G.n_hold_done++;
		arm_retry();
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	conn_t *c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->hold = hold;
	c->t_open = now_s();
	c->state = S_CONNECTING;
	ev_init(&c->io, io_cb);
	ev_init(&c->timer, timer_cb);
	c->next = G.all;
	if (G.all)
		G.all->prev = c;
	G.all = c;
	G.n_open++;
	G.n_connecting++;
	if (connect(fd, (struct sockaddr *)&G.addr, G.addrlen) < 0 &&
	    errno != EINPROGRESS) {
		int e = errno;
		G.conns_failed++;
		count_error(E_CONNECT, NULL, strerror(e));
		if (hold)
			G.n_hold_done++;
		conn_close(c, false);
		arm_retry();
		return;
	}
	arm_timer(c);
	watch(c, EV_WRITE);
}

/* More connections, up to the wanted number and --max-connecting. */
static void refill(void)
{
	if (G.hold) {
		while (G.conns_opened < G.hold &&
		       G.n_connecting < G.max_connecting && !G.retry_armed)
			conn_open(true);
		check_done();
		return;
	}
	while (!G.stopping && G.n_open < G.conns &&
	       G.n_connecting < G.max_connecting && !G.retry_armed)
		conn_open(false);
}

static void ready(conn_t *c)
{
	G.n_connecting--;
	G.conns_ready++;
	double t = now_s();
	h_add(&G.setup, (uint64_t)((t - c->t_open) * 1e6));
	c->state = S_IDLE;
	c->next_idle = NULL;
	if (c->hold && G.hold_requests == 0) {
		dispatch(c);
		return;
	}
	if (G.warming) {
		/* Keep-alive runs start measuring once every connection
		 * is up. */
		c->next_idle = G.idle;
		G.idle = c;
		watch(c, EV_READ);
		ev_timer_stop(G.loop, &c->timer);
		if (++G.n_ready_now >= G.conns)
			start_measuring();
		else
			refill();
		return;
	}
	dispatch(c);
	refill();
}

static void start_tls(conn_t *c)
{
	int r = gnutls_init(&c->tls, GNUTLS_CLIENT | GNUTLS_NONBLOCK);
	if (r < 0) {
		conn_fail(c, E_HANDSHAKE, gnutls_strerror(r));
		return;
	}
	gnutls_priority_set(c->tls, G.prio);
	gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, G.cred);
	gnutls_server_name_set(c->tls, GNUTLS_NAME_DNS, G.host_name,
			       strlen(G.host_name));
	gnutls_session_set_verify_cert(c->tls, G.host_name, 0);
	static unsigned char h11[] = "http/1.1";
	gnutls_datum_t alpn = {.data = h11, .size = 8};
	gnutls_alpn_set_protocols(c->tls, &alpn, 1, 0);
	gnutls_transport_set_int(c->tls, c->fd);
	c->state = S_HANDSHAKE;
	conn_step(c);
}

/* Pick the next request for c (or park/close it). */
static void dispatch(conn_t *c)
{
	if (c->hold) {
		if (c->nreq < G.hold_requests && !G.stopping) {
			const req_t *q = &G.reqs[G.next_req++ % G.nreqs];
			c->req = q;
			c->t_sched = now_s();
			goto send;
		}
		/* Held: only the socket stays; a read event means the
		 * server closed it. */
		if (c->tls) {
			gnutls_deinit(c->tls);
			c->tls = NULL;
		}
		c->state = S_HELD;
		ev_timer_stop(G.loop, &c->timer);
		watch(c, EV_READ);
		G.n_held++;
		G.n_hold_done++;
		check_done();
		return;
	}
	if (G.stopping || (G.per_conn && c->nreq >= G.per_conn)) {
		conn_close(c, true);
		refill();
		check_done();
		return;
	}
	if (!G.measuring) {
		c->state = S_IDLE;
		c->next_idle = G.idle;
		G.idle = c;
		watch(c, EV_READ);
		ev_timer_stop(G.loop, &c->timer);
		return;
	}
	if (G.count && G.issued >= G.count) {
		conn_close(c, true);
		check_done();
		return;
	}
	double t = now_s();
	if (G.rate > 0) {
		uint64_t due = (uint64_t)((t - G.t0) * G.rate);
		if (G.count && due > G.count)
			due = G.count;
		if (G.issued >= due) {
			c->state = S_IDLE;
			c->next_idle = G.idle;
			G.idle = c;
			watch(c, EV_READ);
			ev_timer_stop(G.loop, &c->timer);
			return;
		}
		c->t_sched = G.t0 + (double)G.issued / G.rate;
	} else {
		c->t_sched = t;
	}
	G.issued++;
	c->req = &G.reqs[G.next_req++ % G.nreqs];
send:
	c->state = S_SEND;
	c->out = c->req->wire;
	c->out_len = c->req->wire_len;
	c->out_off = 0;
	c->t_send = now_s();
	c->p = P_HEAD;
	c->hlen = 0;
	arm_timer(c);
	conn_step(c);
}

/* ---- the answer's parser ---- */

static void finish_req(conn_t *c);

static bool header_is(const char *line, size_t n, const char *name)
{
	size_t l = strlen(name);
	return n > l && line[l] == ':' && strncasecmp(line, name, l) == 0;
}

/* The head is complete in hbuf[0..hlen): 0, or -1 (malformed). */
static int parse_head(conn_t *c)
{
	char *h = c->hbuf, *end = h + c->hlen;
	if (c->hlen < 12 || strncmp(h, "HTTP/1.", 7) != 0 || h[8] != ' ' ||
	    !isdigit((unsigned char)h[9]) || !isdigit((unsigned char)h[10]) ||
	    !isdigit((unsigned char)h[11]))
		return -1;
	c->status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
	c->clen = -1;
	c->chunked = false;
	c->close_after = h[7] == '0';
	char *line = memchr(h, '\n', (size_t)(end - h));
	while (line && ++line < end) {
		char *eol = memchr(line, '\n', (size_t)(end - line));
		if (eol == NULL)
			break;
		size_t n = (size_t)(eol - line);
		if (header_is(line, n, "content-length"))
			c->clen = strtoll(line + 15, NULL, 10);
		else if (header_is(line, n, "transfer-encoding"))
			c->chunked = memmem(line, n, "chunked", 7) != NULL;
		else if (header_is(line, n, "connection"))
			c->close_after = memmem(line, n, "close", 5) != NULL;
		line = eol;
	}
	return 0;
}

static void body_bytes(conn_t *c, const uint8_t *p, size_t n)
{
	c->body += (long long)n;
	if (c->hash)
		gnutls_hash(c->hash, p, n);
}

/* Feed n bytes of the answer: bytes used, or -1 (malformed). */
static long feed(conn_t *c, const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n && c->p != P_DONE) {
		switch (c->p) {
		case P_HEAD: {
			size_t old = c->hlen, take = n - i;
			if (take > HBUF_SIZE - 1 - old)
				take = HBUF_SIZE - 1 - old;
			if (take == 0)
				return -1; /* head too large */
			memcpy(c->hbuf + old, p + i, take);
			c->hlen = old + take;
			c->hbuf[c->hlen] = '\0';
			char *e = memmem(c->hbuf + (old > 3 ? old - 3 : 0),
					 c->hlen - (old > 3 ? old - 3 : 0),
					 "\r\n\r\n", 4);
			if (e == NULL) {
				i += take;
				break;
			}
			size_t hl = (size_t)(e - c->hbuf) + 4;
			i += hl - old;
			c->hlen = hl;
			if (parse_head(c) < 0)
				return -1;
			if (c->status == 100) { /* skip an interim answer */
				c->hlen = 0;
				break;
			}
			c->body = 0;
			bool verify = G.verify && !c->req->head &&
				      c->req->has_digest && c->status == 200;
			if (verify && c->hash == NULL)
				gnutls_hash_init(&c->hash, GNUTLS_DIG_SHA256);
			if (c->req->head || c->status == 204 ||
			    c->status == 304 || c->status / 100 == 1)
				c->p = P_DONE;
			else if (c->chunked)
				c->p = P_CHUNK_SIZE, c->left = 0;
			else if (c->clen >= 0)
				c->p = c->clen ? P_BODY : P_DONE,
				c->left = c->clen;
			else
				c->p = P_BODY_EOF, c->close_after = true;
			break;
		}
		case P_BODY:
		case P_CHUNK_DATA: {
			size_t take = n - i;
			if ((long long)take > c->left)
				take = (size_t)c->left;
			body_bytes(c, p + i, take);
			c->left -= (long long)take;
			i += take;
			if (c->left == 0)
				c->p = c->p == P_BODY ? P_DONE : P_CHUNK_CRLF;
			break;
		}
		case P_BODY_EOF:
			body_bytes(c, p + i, n - i);
			i = n;
			break;
		case P_CHUNK_SIZE: {
			/* hlen counts the CR/LF state: 0 digits, 1 in an
			 * extension, 2 after CR */
			char ch = (char)p[i++];
			if (isxdigit((unsigned char)ch) && c->hlen == 0) {
				int v = isdigit((unsigned char)ch)
						? ch - '0'
						: (tolower(ch) - 'a' + 10);
				if (c->left > (1LL << 40))
					return -1;
				c->left = c->left * 16 + v;
			} else if (ch == '\r') {
				c->hlen = 2;
			} else if (ch == '\n') {
				c->hlen = 0;
				c->p = c->left ? P_CHUNK_DATA : P_TRAILER;
			} else if (ch == ';' || ch == ' ' || c->hlen == 1) {
				c->hlen = 1;
			} else {
				return -1;
			}
			break;
		}
		case P_CHUNK_CRLF: {
			char ch = (char)p[i++];
			if (ch == '\n') {
				c->p = P_CHUNK_SIZE;
				c->left = 0;
				c->hlen = 0;
			} else if (ch != '\r') {
				return -1;
			}
			break;
		}
		case P_TRAILER: {
			/* hlen: bytes on the current line */
			char ch = (char)p[i++];
			if (ch == '\n') {
				if (c->hlen == 0)
					c->p = P_DONE;
				c->hlen = 0;
			} else if (ch != '\r') {
				c->hlen++;
			}
			break;
		}
		case P_DONE:
			break;
		}
	}
	return (long)i;
}

/* ---- I/O ---- */

/* >0 bytes, 0 EOF, -EAGAIN (watching set), other <0: error */
static ssize_t conn_read(conn_t *c, void *buf, size_t n)
{
	if (c->tls) {
		ssize_t r = gnutls_record_recv(c->tls, buf, n);
		if (r >= 0)
			return r;
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
			return -EAGAIN;
		if (r == GNUTLS_E_PREMATURE_TERMINATION)
			return 0;
		return -EIO;
	}
	ssize_t r = read(c->fd, buf, n);
	if (r >= 0)
		return r;
	if (errno == EAGAIN || errno == EINTR)
		return -EAGAIN;
	return -errno;
}

static ssize_t conn_write(conn_t *c, const void *buf, size_t n)
{
	if (c->tls) {
		ssize_t r = gnutls_record_send(c->tls, buf, n);
		if (r >= 0)
			return r;
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
			return -EAGAIN;
		return -EIO;
	}
	ssize_t r = send(c->fd, buf, n, MSG_NOSIGNAL);
	if (r >= 0)
		return r;
	if (errno == EAGAIN || errno == EINTR)
		return -EAGAIN;
	return -errno;
}

/* Write c->out; true when all of it is out (false: waiting or failed,
 * c may be gone). */
static bool flush_out(conn_t *c)
{
	while (c->out_off < c->out_len) {
		ssize_t r = conn_write(c, c->out + c->out_off,
				       c->out_len - c->out_off);
		if (r == -EAGAIN) {
			watch(c, EV_WRITE);
			return false;
		}
		if (r < 0) {
			bool setup = c->state < S_IDLE;
			conn_fail(c, setup ? E_SETUP_CLOSED : E_CLOSED,
				  strerror((int)-r));
			return false;
		}
		c->out_off += (size_t)r;
	}
	return true;
}

static void read_answer(conn_t *c)
{
	for (;;) {
		ssize_t r = conn_read(c, rbuf, sizeof(rbuf));
		if (r == -EAGAIN) {
			watch(c, EV_READ);
			return;
		}
		if (r == 0 && c->p == P_BODY_EOF) {
			c->p = P_DONE;
			finish_req(c);
			return;
		}
		if (r <= 0) {
			conn_fail(c, r == 0 ? E_CLOSED : E_IO,
				  r == 0 ? "closed by the server" : "read");
			return;
		}
		long used = feed(c, rbuf, (size_t)r);
		if (used < 0) {
			conn_fail(c, E_PARSE, "malformed answer");
			return;
		}
		if (c->p == P_DONE) {
			if (used != r) {
				conn_fail(c, E_PARSE, "bytes after the answer");
				return;
			}
			finish_req(c);
			return;
		}
	}
}

static void finish_req(conn_t *c)
{
	double t = now_s();
	const req_t *q = c->req;
	int kind = -1;
	char detail[128] = "";
	if (c->status != q->status) {
		kind = E_STATUS;
		snprintf(detail, sizeof(detail), "%d for %.60s", c->status,
			 q->wire);
	} else if (q->size >= 0 && (q->head ? c->clen : c->body) != q->size) {
		kind = E_SIZE;
		snprintf(detail, sizeof(detail), "%lld bytes, want %lld",
			 q->head ? c->clen : c->body, q->size);
	} else if (c->hash) {
		uint8_t d[32];
		gnutls_hash_deinit(c->hash, d);
		c->hash = NULL;
		if (memcmp(d, q->digest, 32) != 0)
			kind = E_DIGEST;
	}
	if (c->hash) {
		gnutls_hash_deinit(c->hash, NULL);
		c->hash = NULL;
	}
	if (c->status > 0 && c->status < 600)
		G.status_seen[c->status]++;
	c->nreq++;
	if (!c->hold) {
		h_add(&G.lat, (uint64_t)((t - c->t_sched) * 1e6));
		h_add(&G.svc, (uint64_t)((t - c->t_send) * 1e6));
		if (kind < 0)
			G.ok++;
		else
			count_error(kind, c, detail);
	} else if (kind >= 0) {
		conn_fail(c, kind, detail);
		return;
	}
	if (c->close_after) {
		conn_close(c, false);
		refill();
		check_done();
		return;
	}
	c->state = S_IDLE;
	dispatch(c);
}

/* Advance c as far as it goes without waiting. */
static void conn_step(conn_t *c)
{
	switch (c->state) {
	case S_CONNECTING: {
		int e = 0;
		socklen_t l = sizeof(e);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &l);
		if (e == EINPROGRESS) {
			watch(c, EV_WRITE);
			return;
		}
		if (e != 0) {
			conn_fail(c, E_CONNECT, strerror(e));
			return;
		}
		if (G.mode == M_CONNECT) {
			c->state = S_CONNECT_SEND;
			c->out = G.connect_wire;
			c->out_len = G.connect_len;
			c->out_off = 0;
			conn_step(c);
		} else if (G.mode == M_TLS) {
			start_tls(c);
		} else {
			ready(c);
		}
		return;
	}
	case S_CONNECT_SEND:
		if (!flush_out(c))
			return;
		c->state = S_CONNECT_RESP;
		c->hlen = 0;
		watch(c, EV_READ);
		return;
	case S_CONNECT_RESP: {
		/* Nothing follows the proxy's answer before our TLS
		 * ClientHello, so reading ahead is safe. */
		ssize_t r =
			read(c->fd, c->hbuf + c->hlen, HBUF_SIZE - 1 - c->hlen);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r <= 0) {
			conn_fail(c, E_SETUP_CLOSED,
				  r == 0 ? "closed before the CONNECT answer"
					 : strerror(errno));
			return;
		}
		c->hlen += (size_t)r;
		c->hbuf[c->hlen] = '\0';
		char *e = strstr(c->hbuf, "\r\n\r\n");
		if (e == NULL) {
			if (c->hlen >= HBUF_SIZE - 1)
				conn_fail(c, E_PARSE, "CONNECT answer");
			return;
		}
		int st = 0;
		if (sscanf(c->hbuf, "HTTP/1.%*d %d", &st) != 1 || st != 200) {
			char d[64];
			snprintf(d, sizeof(d), "CONNECT answered %d", st);
			if (st > 0 && st < 600)
				G.status_seen[st]++;
			conn_fail(c, E_PROXY_STATUS, d);
			return;
		}
		c->hlen = 0;
		start_tls(c);
		return;
	}
	case S_HANDSHAKE: {
		int r = gnutls_handshake(c->tls);
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
			watch(c, gnutls_record_get_direction(c->tls) ? EV_WRITE
								     : EV_READ);
			return;
		}
		if (r < 0) {
			bool eof = r == GNUTLS_E_PREMATURE_TERMINATION ||
				   r == GNUTLS_E_PULL_ERROR ||
				   r == GNUTLS_E_PUSH_ERROR;
			conn_fail(c, eof ? E_SETUP_CLOSED : E_HANDSHAKE,
				  gnutls_strerror(r));
			return;
		}
		ready(c);
		return;
	}
	case S_SEND:
		if (!flush_out(c))
			return;
		c->state = S_RECV;
		/* The answer cannot be there yet (no pipelining), unless
		 * GnuTLS holds decrypted records already: wait for it. */
		if (c->tls && gnutls_record_check_pending(c->tls))
			read_answer(c);
		else
			watch(c, EV_READ);
		return;
	case S_RECV:
		read_answer(c);
		return;
	case S_IDLE:
	case S_HELD: {
		/* No request open: the server closed the connection (or
		 * sent what it must not). */
		char b[256];
		ssize_t r = c->state == S_HELD || c->tls == NULL
				    ? read(c->fd, b, sizeof(b))
				    : conn_read(c, b, sizeof(b));
		if (r == -EAGAIN || (r < 0 && errno == EAGAIN))
			return;
		if (c->state == S_HELD) {
			/* Late TLS records (session tickets) are not a
			 * close. */
			if (r > 0)
				return;
			conn_fail(c, E_HELD_CLOSED,
				  r == 0 ? "closed by the server"
					 : strerror(errno));
			return;
		}
		G.ka_closed++;
		conn_close(c, false);
		refill();
		check_done();
		return;
	}
	}
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	conn_step((conn_t *)((char *)w - offsetof(conn_t, io)));
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	conn_t *c = (conn_t *)((char *)w - offsetof(conn_t, timer));
	if (c->state < S_IDLE)
		conn_fail(c, E_SETUP_TIMEOUT, NULL);
	else
		conn_fail(c, E_RESP_TIMEOUT, NULL);
}

/* ---- the run ---- */

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	/* Open loop: hand what is due to free connections. */
	while (G.idle && !G.stopping) {
		conn_t *c = G.idle;
		uint64_t due = (uint64_t)((now_s() - G.t0) * G.rate);
		if (G.count && due > G.count)
			due = G.count;
		if (G.issued >= due)
			break;
		G.idle = c->next_idle;
		c->next_idle = NULL;
		c->state = S_SEND; /* not idle any more */
		dispatch(c);
	}
}

static void stop_cb(struct ev_loop *loop, ev_timer *w, int revents);

static void start_measuring(void)
{
	ev_timer_stop(G.loop, &G.warm_timer);
	G.warming = false;
	G.measuring = true;
	G.t0 = now_s();
	getrusage(RUSAGE_SELF, &G.ru0);
	G.srv_ticks0 = srv_ticks();
	G.rss0 = srv_status_kb("VmRSS");
	ev_timer_set(&G.stop_timer, G.duration, 0);
	ev_timer_start(G.loop, &G.stop_timer);
	if (G.rate > 0) {
		ev_timer_set(&G.tick, 0.001, 0.001);
		ev_timer_start(G.loop, &G.tick);
	}
	/* Everything parked during the warm-up starts now. */
	conn_t *c = G.idle;
	G.idle = NULL;
	while (c) {
		conn_t *next = c->next_idle;
		c->next_idle = NULL;
		c->state = S_SEND;
		dispatch(c);
		c = next;
	}
	refill();
}

static void grace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	/* What is still open after the grace is cut (counted by the
	 * per-connection timers normally; this is the last bound). */
	while (G.all) {
		conn_t *c = G.all;
		if (c->state == S_SEND || c->state == S_RECV)
			G.err[E_RESP_TIMEOUT]++;
		conn_close(c, false);
	}
	check_done();
}

static void end_run(void)
{
	if (G.t_end > 0)
		return;
	G.t_end = now_s();
	getrusage(RUSAGE_SELF, &G.ru1);
	G.srv_ticks1 = srv_ticks();
	G.rss1 = srv_status_kb("VmRSS");
	G.hwm1 = srv_status_kb("VmHWM");
	G.n_held_end = G.n_held;
	while (G.all)
		conn_close(G.all, G.all->state != S_HELD);
	ev_break(G.loop, EVBREAK_ALL);
}

static void stop_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	if (G.stopping)
		return;
	G.stopping = true;
	ev_timer_stop(loop, &G.tick);
	if (G.retry_armed) {
		ev_timer_stop(loop, &G.retry_timer);
		G.retry_armed = false;
	}
	/* Idle connections go now, and those still being set up; busy
	 * ones when their answer is in. */
	while (G.idle)
		conn_close(G.idle, true);
	conn_t *c = G.all;
	while (c) {
		conn_t *next = c->next;
		if (c->state < S_IDLE)
			conn_close(c, false);
		c = next;
	}
	ev_timer_set(&G.grace_timer, G.timeout, 0);
	ev_timer_start(loop, &G.grace_timer);
	check_done();
}

/* The warm-up is bounded too: measure with what is up after --timeout. */
static void warm_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	if (G.warming)
		start_measuring();
}

static void hold_end_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	end_run();
}

/* The end, once nothing is in flight. */
static void check_done(void)
{
	if (G.hold) {
		if (!G.hold_reported && G.n_hold_done >= G.hold &&
		    G.n_connecting == 0) {
			G.hold_reported = true;
			G.n_held_reported = G.n_held;
			G.rss_held = srv_status_kb("VmRSS");
			G.hwm_held = srv_status_kb("VmHWM");
			printf("loadgen: held %u of %u connections; server "
			       "RSS %ld kB (was %ld kB)\n",
			       G.n_held, G.hold, G.rss_held, G.rss_start);
			fflush(stdout);
			G.t0 = now_s();
			getrusage(RUSAGE_SELF, &G.ru0);
			G.srv_ticks0 = srv_ticks();
			ev_timer_set(&G.hold_timer, G.duration, 0);
			ev_timer_start(G.loop, &G.hold_timer);
		}
		return;
	}
	if (!G.measuring)
		return;
	if (!G.stopping && G.count && G.issued >= G.count) {
		G.stopping = true;
		ev_timer_stop(G.loop, &G.tick);
		ev_timer_set(&G.grace_timer, G.timeout, 0);
		ev_timer_start(G.loop, &G.grace_timer);
	}
	if (!G.stopping)
		return;
	for (conn_t *c = G.all; c; c = c->next)
		if (c->state == S_SEND || c->state == S_RECV)
			return;
	end_run();
}

/* ---- set-up ---- */

static int hexv(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

static void add_req(const char *method, const char *path, long long size,
		    int status)
{
	static size_t cap;
	if (G.nreqs == cap) {
		cap = cap ? cap * 2 : 64;
		G.reqs = realloc(G.reqs, cap * sizeof(req_t));
		if (G.reqs == NULL)
			die("out of memory");
	}
	req_t *q = &G.reqs[G.nreqs++];
	memset(q, 0, sizeof(*q));
	q->head = strcmp(method, "HEAD") == 0;
	q->size = size;
	q->status = status;
	const char *d = strstr(path, "sha256:");
	if (d) {
		d += 7;
		int i;
		for (i = 0; i < 64; i++)
			if (hexv(d[i]) < 0)
				break;
		if (i == 64 && hexv(d[64]) < 0) {
			q->has_digest = true;
			for (i = 0; i < 32; i++)
				q->digest[i] = (uint8_t)(hexv(d[2 * i]) * 16 +
							 hexv(d[2 * i + 1]));
		}
	}
	const char *accept =
		strstr(path, "/manifests/")
			? "Accept: application/vnd.docker.distribution."
			  "manifest.v2+json, application/vnd.docker."
			  "distribution.manifest.list.v2+json, "
			  "application/vnd.oci.image.manifest.v1+json, "
			  "application/vnd.oci.image.index.v1+json\r\n"
			: "";
	const char *host =
		G.mode == M_PLAIN && G.host == NULL ? G.server : G.host_name;
	size_t n = strlen(method) + strlen(path) + strlen(host) +
		   strlen(accept) +
		   (G.extra_headers ? strlen(G.extra_headers) : 0) + 128;
	q->wire = xcalloc(1, n);
	q->wire_len = (size_t)snprintf(
		q->wire, n,
		"%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: drp-loadgen\r\n%s%s"
		"\r\n",
		method, path, host, accept,
		G.extra_headers ? G.extra_headers : "");
}

static void load_requests(void)
{
	if (G.path) {
		add_req(G.method, G.path, -1, 200);
		return;
	}
	FILE *f = fopen(G.reqfile, "r");
	if (f == NULL)
		die("%s: %s", G.reqfile, strerror(errno));
	char line[4096];
	while (fgets(line, sizeof(line), f)) {
		char m[16], p[3500];
		long long size = -1;
		int st = 200;
		char *s = line;
		while (isspace((unsigned char)*s))
			s++;
		if (*s == '#' || *s == '\0')
			continue;
		int k = sscanf(s, "%15s %3499s %lld %d", m, p, &size, &st);
		if (k < 2)
			die("%s: bad line: %s", G.reqfile, line);
		add_req(m, p, k >= 3 ? size : -1, k >= 4 ? st : 200);
	}
	fclose(f);
	if (G.nreqs == 0)
		die("%s: no requests", G.reqfile);
}

static void parse_addr(const char *s)
{
	char host[256];
	const char *port;
	if (s[0] == '[') {
		const char *e = strchr(s, ']');
		if (e == NULL || e[1] != ':')
			die("bad address %s", s);
		snprintf(host, sizeof(host), "%.*s", (int)(e - s - 1), s + 1);
		port = e + 2;
	} else {
		const char *e = strrchr(s, ':');
		if (e == NULL)
			die("bad address %s (IP:PORT)", s);
		snprintf(host, sizeof(host), "%.*s", (int)(e - s), s);
		port = e + 1;
	}
	struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
				 .ai_socktype = SOCK_STREAM},
			*ai;
	if (getaddrinfo(host, port, &hints, &ai) != 0)
		die("bad address %s (IP:PORT)", s);
	memcpy(&G.addr, ai->ai_addr, ai->ai_addrlen);
	G.addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
}

static void usage(void)
{
	fputs("usage: loadgen --mode connect|tls|plain --server IP:PORT "
	      "[--host NAME[:PORT]]\n"
	      "  [--ca FILE] [--priority STR] (--requests FILE | --path PATH "
	      "[--method M])\n"
	      "  [-c CONNS] [-k PER_CONN] [-r RATE] [-d SECONDS] [-n COUNT]\n"
	      "  [--hold M [--hold-requests K]] [--max-connecting N] "
	      "[--timeout S]\n"
	      "  [--header 'Name: value']... [--verify] [--pid PID]... "
	      "[--label TEXT]\n",
	      stderr);
	exit(2);
}

static void options(int argc, char **argv)
{
	static const struct option opts[] = {
		{"mode", required_argument, NULL, 'm'},
		{"server", required_argument, NULL, 's'},
		{"host", required_argument, NULL, 'H'},
		{"ca", required_argument, NULL, 'C'},
		{"priority", required_argument, NULL, 'P'},
		{"requests", required_argument, NULL, 'f'},
		{"path", required_argument, NULL, 'u'},
		{"method", required_argument, NULL, 'M'},
		{"conns", required_argument, NULL, 'c'},
		{"per-conn", required_argument, NULL, 'k'},
		{"rate", required_argument, NULL, 'r'},
		{"duration", required_argument, NULL, 'd'},
		{"count", required_argument, NULL, 'n'},
		{"hold", required_argument, NULL, 'h'},
		{"hold-requests", required_argument, NULL, 'q'},
		{"max-connecting", required_argument, NULL, 'x'},
		{"timeout", required_argument, NULL, 't'},
		{"header", required_argument, NULL, 'a'},
		{"verify", no_argument, NULL, 'v'},
		{"pid", required_argument, NULL, 'p'},
		{"label", required_argument, NULL, 'l'},
		{NULL, 0, NULL, 0},
	};
	G.conns = 1;
	G.duration = 10;
	G.timeout = 30;
	G.max_connecting = 256;
	G.hold_requests = 1;
	G.method = "GET";
	G.label = "run";
	G.priority = "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM";
	G.mode = M_CONNECT;
	int o;
	while ((o = getopt_long(argc, argv, "c:k:r:d:n:", opts, NULL)) != -1) {
		switch (o) {
		case 'm':
			if (strcmp(optarg, "connect") == 0)
				G.mode = M_CONNECT;
			else if (strcmp(optarg, "tls") == 0)
				G.mode = M_TLS;
			else if (strcmp(optarg, "plain") == 0)
				G.mode = M_PLAIN;
			else
				die("--mode connect|tls|plain");
			break;
		case 's':
			G.server = optarg;
			break;
		case 'H':
			G.host = optarg;
			break;
		case 'C':
			G.ca = optarg;
			break;
		case 'P':
			G.priority = optarg;
			break;
		case 'f':
			G.reqfile = optarg;
			break;
		case 'u':
			G.path = optarg;
			break;
		case 'M':
			G.method = optarg;
			break;
		case 'c':
			G.conns = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'k':
			G.per_conn = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'r':
			G.rate = strtod(optarg, NULL);
			break;
		case 'd':
			G.duration = strtod(optarg, NULL);
			break;
		case 'n':
			G.count = strtoull(optarg, NULL, 10);
			break;
		case 'h':
			G.hold = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'q':
			G.hold_requests = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'x':
			G.max_connecting = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 't':
			G.timeout = strtod(optarg, NULL);
			break;
		case 'a': {
			size_t old =
				G.extra_headers ? strlen(G.extra_headers) : 0;
			char *n = xcalloc(1, old + strlen(optarg) + 3);
			if (old)
				memcpy(n, G.extra_headers, old);
			sprintf(n + old, "%s\r\n", optarg);
			free(G.extra_headers);
			G.extra_headers = n;
			break;
		}
		case 'v':
			G.verify = true;
			break;
		case 'p':
			if (G.npids == MAX_PIDS)
				die("at most %d --pid", MAX_PIDS);
			G.pids[G.npids++] = (pid_t)strtol(optarg, NULL, 10);
			break;
		case 'l':
			G.label = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || G.server == NULL ||
	    (G.reqfile == NULL) == (G.path == NULL))
		usage();
	if (G.mode != M_PLAIN && (G.host == NULL || G.ca == NULL))
		die("--host and --ca are needed for TLS");
	if (G.conns == 0 || G.max_connecting == 0 || G.duration <= 0 ||
	    G.timeout <= 0)
		die("--conns, --max-connecting, --duration and --timeout "
		    "must be positive");
	parse_addr(G.server);
	if (G.host) {
		const char *colon = strrchr(G.host, ':');
		bool bracket = G.host[0] == '[';
		if (colon && !bracket) {
			snprintf(G.host_name, sizeof(G.host_name), "%.*s",
				 (int)(colon - G.host), G.host);
			snprintf(G.host_port, sizeof(G.host_port), "%s",
				 G.host);
		} else {
			snprintf(G.host_name, sizeof(G.host_name), "%s",
				 G.host);
			snprintf(G.host_port, sizeof(G.host_port), "%s:443",
				 G.host);
		}
	}
}

static double tv_s(const struct timeval *a, const struct timeval *b)
{
	return (double)(b->tv_sec - a->tv_sec) +
	       (double)(b->tv_usec - a->tv_usec) / 1e6;
}

static void report(void)
{
	double wall = G.t_end - G.t0;
	double cli = tv_s(&G.ru0.ru_utime, &G.ru1.ru_utime) +
		     tv_s(&G.ru0.ru_stime, &G.ru1.ru_stime);
	double srv = (double)(G.srv_ticks1 - G.srv_ticks0) /
		     (double)sysconf(_SC_CLK_TCK);
	uint64_t errs = 0;
	for (int k = 0; k < E_KINDS; k++)
		errs += G.err[k];
	uint64_t done = G.ok + errs;
	double rps = wall > 0 ? (double)G.ok / wall : 0;
	const char *m = G.mode == M_CONNECT ? "connect"
			: G.mode == M_TLS   ? "tls"
					    : "plain";
	printf("loadgen: %s: mode %s, server %s, %u connection(s)", G.label, m,
	       G.server, G.hold ? G.hold : G.conns);
	if (G.hold)
		printf(" held");
	else if (G.per_conn)
		printf(" of %u request(s) each", G.per_conn);
	else
		printf(" kept alive");
	printf(", %.2f s\n", wall);
	if (G.hold) {
		printf("  held %u of %u; server RSS %ld kB before, %ld kB "
		       "held (peak %ld kB): %.1f kB per held connection\n",
		       G.n_held_reported, G.hold, G.rss_start, G.rss_held,
		       G.hwm_held,
		       G.n_held_reported ? (double)(G.rss_held - G.rss_start) /
						   G.n_held_reported
					 : 0.0);
		if (G.n_held_end < G.n_held_reported)
			printf("  %u held connection(s) closed by the server "
			       "before the end\n",
			       G.n_held_reported - G.n_held_end);
	} else {
		if (G.rate > 0) {
			uint64_t att = (uint64_t)(G.rate * G.duration);
			if (G.count && att > G.count)
				att = G.count;
			printf("  rate: attempted %.0f/s (%" PRIu64
			       " due), sent %" PRIu64 ", achieved %.0f/s "
			       "(%.1f%%)\n",
			       G.rate, att, G.issued, rps, 100 * rps / G.rate);
		}
		printf("  requests: %" PRIu64 " ok, %" PRIu64
		       " errors, %.0f/s; latency p50 %.3f ms, p99 %.3f ms, "
		       "max %.3f ms%s\n",
		       G.ok, errs, rps, h_pct(&G.lat, 0.5), h_pct(&G.lat, 0.99),
		       (double)G.lat.max / 1000,
		       G.rate > 0 ? " (from when due)" : "");
		if (G.rate > 0)
			printf("  service time (from sending): p50 %.3f ms, "
			       "p99 %.3f ms\n",
			       h_pct(&G.svc, 0.5), h_pct(&G.svc, 0.99));
	}
	printf("  connections: %" PRIu64 " opened, %" PRIu64 " ready, %" PRIu64
	       " failed, %" PRIu64
	       " closed by the server while idle; set-up (connect%s) p50 "
	       "%.3f ms, p99 %.3f ms\n",
	       G.conns_opened, G.conns_ready, G.conns_failed, G.ka_closed,
	       G.mode == M_CONNECT ? " + CONNECT + handshake"
	       : G.mode == M_TLS   ? " + handshake"
				   : "",
	       h_pct(&G.setup, 0.5), h_pct(&G.setup, 0.99));
	printf("  errors:");
	for (int k = 0; k < E_KINDS; k++)
		if (G.err[k])
			printf(" %s %" PRIu64, e_names[k], G.err[k]);
	printf("%s\n", errs ? "" : " none");
	printf("  statuses:");
	for (int s = 0; s < 600; s++)
		if (G.status_seen[s])
			printf(" %d x%u", s, G.status_seen[s]);
	printf("\n  client CPU %.2f s (%.0f%% of a core)", cli,
	       wall > 0 ? 100 * cli / wall : 0);
	if (done)
		printf(", %.1f us per request", 1e6 * cli / (double)done);
	printf("\n");
	if (G.npids) {
		printf("  server CPU %.2f s (%.0f%% of a core)", srv,
		       wall > 0 ? 100 * srv / wall : 0);
		if (G.ok)
			printf(", %.1f us per request", 1e6 * srv / G.ok);
		printf("; RSS %ld kB at start, %ld kB at end, peak %ld kB\n",
		       G.hold ? G.rss_start : G.rss0, G.rss1, G.hwm1);
	}
	printf("RESULT label=%s mode=%s conns=%u per_conn=%u hold=%u "
	       "wall_s=%.3f ok=%" PRIu64 " errors=%" PRIu64 " rps=%.1f "
	       "p50_ms=%.3f p99_ms=%.3f max_ms=%.3f svc_p50_ms=%.3f "
	       "svc_p99_ms=%.3f rate=%.0f issued=%" PRIu64
	       " conns_opened=%" PRIu64 " conns_ready=%" PRIu64
	       " setup_p50_ms=%.3f setup_p99_ms=%.3f "
	       "cli_cpu_s=%.3f srv_cpu_s=%.3f srv_us_per_req=%.1f "
	       "cli_us_per_req=%.1f rss_start_kb=%ld rss0_kb=%ld "
	       "rss_end_kb=%ld hwm_kb=%ld held=%u rss_held_kb=%ld "
	       "hwm_held_kb=%ld ka_closed=%" PRIu64,
	       G.label, m, G.conns, G.per_conn, G.hold, wall, G.ok, errs, rps,
	       h_pct(&G.lat, 0.5), h_pct(&G.lat, 0.99),
	       (double)G.lat.max / 1000, h_pct(&G.svc, 0.5),
	       h_pct(&G.svc, 0.99), G.rate, G.issued, G.conns_opened,
	       G.conns_ready, h_pct(&G.setup, 0.5), h_pct(&G.setup, 0.99), cli,
	       srv, G.ok ? 1e6 * srv / G.ok : 0, done ? 1e6 * cli / done : 0,
	       G.rss_start, G.rss0, G.rss1, G.hwm1, G.n_held_reported,
	       G.rss_held, G.hwm_held, G.ka_closed);
	for (int k = 0; k < E_KINDS; k++)
		printf(" err_%s=%" PRIu64, e_names[k], G.err[k]);
	printf("\n");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	options(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* As many descriptors as the hard limit allows. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	load_requests();
	if (G.mode == M_CONNECT) {
		size_t n = 2 * strlen(G.host_port) + 64;
		G.connect_wire = xcalloc(1, n);
		G.connect_len = (size_t)snprintf(
			G.connect_wire, n,
			"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", G.host_port,
			G.host_port);
	}
	if (G.mode != M_PLAIN) {
		const char *err = NULL;
		if (gnutls_certificate_allocate_credentials(&G.cred) < 0 ||
		    gnutls_certificate_set_x509_trust_file(
			    G.cred, G.ca, GNUTLS_X509_FMT_PEM) <= 0)
			die("cannot load the CA file %s", G.ca);
		if (gnutls_priority_init(&G.prio, G.priority, &err) < 0)
			die("bad --priority at '%s'", err ? err : "?");
	}
	G.loop = ev_default_loop(EVFLAG_AUTO);
	ev_init(&G.tick, tick_cb);
	ev_init(&G.stop_timer, stop_cb);
	ev_init(&G.grace_timer, grace_cb);
	ev_init(&G.retry_timer, retry_cb);
	ev_init(&G.hold_timer, hold_end_cb);
	ev_init(&G.warm_timer, warm_cb);
	G.rss_start = srv_status_kb("VmRSS");
	if (G.hold) {
		/* A bound on the set-up too: --timeout per connection,
		 * and the run as a whole. */
		G.t0 = now_s();
		refill();
		check_done();
	} else if (G.per_conn == 0) {
		G.warming = true;
		ev_timer_set(&G.warm_timer, G.timeout, 0);
		ev_timer_start(G.loop, &G.warm_timer);
		refill();
	} else {
		start_measuring();
	}
	ev_run(G.loop, 0);
	if (G.t_end == 0)
		end_run();
	report();
	return 0;
}
