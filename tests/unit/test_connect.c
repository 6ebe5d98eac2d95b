/* SPDX-License-Identifier: MIT */
/*
 * The one connect path of fetches and tunnels (drp_upstream_connect) over
 * real sockets on loopback: [resolve] names the targets (an accepting
 * listener, a port bound but not listening, a listener whose backlog is
 * full so that connects hang, a broadcast address that fails at once),
 * and a DNS server in the test's own loop answers names with several
 * addresses. Loopback is refused by the proxy's policy, so the tests
 * that connect to resolved names set a policy that allows it, as a
 * [resolve] entry would.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/conf.h"
#include "upstream/connect.h"
#include "upstream/upstream.h"
#include "util/log.h"

Suite *connect_suite(void);

/* ---- a DNS server in the loop ---- */

/* Names and their A records; AAAA questions get an empty answer. */
static const struct {
	const char *name;
	const char *a[3];
} zone[] = {
	/* Loopback only: refused by the proxy's policy. */
	{"loop.test", {"127.0.0.1", "127.0.0.2"}},
	/* First an address nothing listens on, then the listener's. */
	{"turn.test", {"127.0.0.3", "127.0.0.1"}},
	/* The listener's address first, then the silent one. */
	{"back.test", {"127.0.0.1", "127.0.0.3"}},
};

static struct {
	ev_io io;
	int fd;
	bool silent;
	int queries;
} dns;

static size_t put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
	return 2;
}

static void dns_cb(struct ev_loop *l, ev_io *w, int revents)
{
	unsigned char q[512], r[512];
	struct sockaddr_storage from;
	socklen_t fromlen = sizeof(from);
	ssize_t n = recvfrom(dns.fd, q, sizeof(q), 0, (struct sockaddr *)&from,
			     &fromlen);
	if (n < 12)
		return;
	dns.queries++;
	if (dns.silent)
		return;
	size_t off = 12;
	char name[256] = "";
	while (off < (size_t)n && q[off] != 0) {
		size_t len = q[off];
		if (off + 1 + len > (size_t)n || strlen(name) + len + 2 > 255)
			return;
		if (name[0] != '\0')
			strcat(name, ".");
		strncat(name, (const char *)q + off + 1, len);
		off += 1 + len;
	}
	if (off + 5 > (size_t)n)
		return;
	unsigned qtype = (unsigned)q[off + 1] << 8 | q[off + 2];
	size_t qend = off + 5;
	int z = -1;
	for (size_t i = 0; i < sizeof(zone) / sizeof(zone[0]); i++)
		if (strcmp(zone[i].name, name) == 0)
			z = (int)i;
	unsigned answers = 0;
	size_t len = qend;
	memcpy(r, q, qend);
	for (unsigned i = 0; z >= 0 && qtype == 1 && i < 3 && zone[z].a[i];
	     i++) {
		len += put16(r + len, 0xc00c); /* the question's name */
		len += put16(r + len, 1);      /* A */
		len += put16(r + len, 1);      /* IN */
		len += put16(r + len, 0);
		len += put16(r + len, 60); /* TTL */
		len += put16(r + len, 4);
		inet_pton(AF_INET, zone[z].a[i], r + len);
		len += 4;
		answers++;
	}
	put16(r + 2, 0x8180 | (z >= 0 ? 0 : 3)); /* NXDOMAIN if unknown */
	put16(r + 4, 1);
	put16(r + 6, answers);
	put16(r + 8, 0);
	put16(r + 10, 0);
	sendto(dns.fd, r, len, 0, (struct sockaddr *)&from, fromlen);
}

/* ---- the targets ---- */

static struct ev_loop *loop;
static drp_upstream_t up;
static drp_upstream_conf_t *ucf;
static int lfd;	    /* listens on 127.0.0.1:lport */
static int bfd;	    /* bound to 127.0.0.1:bport, not listening */
static int ffd;	    /* listens on 127.0.0.1:fport, backlog full */
static int fill[4]; /* the connections that fill it */
static uint16_t lport, bport, fport;
static char logpath[64];

static int tcp_on(uint16_t *port, int backlog)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	if (backlog >= 0)
		ck_assert_int_eq(listen(fd, backlog), 0);
	socklen_t sl = sizeof(sin);
	getsockname(fd, (struct sockaddr *)&sin, &sl);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* Connect until the listener's queue takes no more: the kernel then drops
 * further SYNs, so a connect to it neither succeeds nor fails. */
static void fill_backlog(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons(fport),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	for (unsigned i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET,
				 SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(fill[i], 0);
		int r = connect(fill[i], (struct sockaddr *)&sin, sizeof(sin));
		ck_assert(r == 0 || errno == EINPROGRESS);
	}
}

static void setup(void)
{
	loop = ev_loop_new(EVFLAG_AUTO);
	ck_assert_ptr_nonnull(loop);
	snprintf(logpath, sizeof(logpath), "/tmp/test_connect.%d.log",
		 getpid());
	unlink(logpath);
	drp_log_init(DRP_LOG_INFO, logpath);
	lfd = tcp_on(&lport, 16);
	bfd = tcp_on(&bport, -1);
	ffd = tcp_on(&fport, 0);
	fill_backlog();

	char text[1024];
	snprintf(text, sizeof(text),
		 "[proxy]\nconnect_timeout = 0.3\n"
		 "[resolve]\n"
		 "open.test = 127.0.0.1:%u\n"
		 "bound.test = 127.0.0.1:%u\n"
		 "full.test = 127.0.0.1:%u\n"
		 "bcast.test = 255.255.255.255\n",
		 lport, bport, fport);
	drp_conf_errors_t errs = {0};
	drp_conf_t *conf = drp_conf_load_string("test.ini", text, &errs);
	for (unsigned i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.msg[i]);
	ck_assert_ptr_nonnull(conf);
	drp_conf_errors_free(&errs);
	char err[256] = "";
	ucf = drp_upstream_conf_new(conf, err, sizeof(err));
	ck_assert_msg(ucf != NULL, "%s", err);
	drp_conf_free(conf);

	drp_upstream_init(&up, loop, 1.0);
	ck_assert_ptr_nonnull(up.dns);
	memset(&dns, 0, sizeof(dns));
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	dns.fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(dns.fd, 0);
	ck_assert_int_eq(bind(dns.fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	socklen_t sl = sizeof(sin);
	getsockname(dns.fd, (struct sockaddr *)&sin, &sl);
	ev_io_init(&dns.io, dns_cb, dns.fd, EV_READ);
	ev_io_start(loop, &dns.io);
	char servers[64];
	snprintf(servers, sizeof(servers), "127.0.0.1:%u", ntohs(sin.sin_port));
	ck_assert_int_eq(drp_dns_set_servers(up.dns, servers), 0);
}

static void teardown(void)
{
	drp_upstream_fini(&up);
	ev_io_stop(loop, &dns.io);
	close(dns.fd);
	drp_upstream_conf_unref(ucf);
	for (unsigned i = 0; i < 4; i++)
		close(fill[i]);
	close(lfd);
	close(bfd);
	close(ffd);
	ev_loop_destroy(loop);
	drp_log_init(DRP_LOG_WARNING, NULL);
	unlink(logpath);
}

static bool allow_all(const struct sockaddr *sa)
{
	return true;
}

/* How many lines of the log contain s. */
static unsigned log_count(const char *s)
{
	FILE *f = fopen(logpath, "r");
	ck_assert_ptr_nonnull(f);
	char line[1024];
	unsigned n = 0;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, s))
			n++;
	fclose(f);
	return n;
}

/* ---- what the callback saw ---- */

typedef struct got {
	unsigned calls;
	int fd;
	drp_upstream_connect_result_t res;
	ev_tstamp at;
	bool in_starter; /* set around drp_upstream_connect() */
	bool called_in_starter;
	/* actions from inside the callback */
	drp_upstream_connect_t *self; /* cancel it */
	struct got *again;	      /* start another connect for this one */
	drp_upstream_connect_t *again_h;
} got_t;

static void got_cb(void *arg, int fd, const drp_upstream_connect_result_t *res)
{
	got_t *g = arg;
	g->calls++;
	g->fd = fd;
	g->res = *res;
	g->at = ev_now(loop);
	if (g->in_starter)
		g->called_in_starter = true;
	if (g->self)
		drp_upstream_connect_cancel(g->self); /* allowed: no-op */
	if (g->again) {
		drp_upstream_connect_req_t r = {.host = "open.test",
						.port = 443};
		g->again_h =
			drp_upstream_connect(&up, ucf, &r, got_cb, g->again);
	}
}

/* The next start() is to the configured store (policy_exempt). */
static bool exempt_next;

static drp_upstream_connect_t *start(got_t *g, const char *host, uint16_t port,
				     bool resolve_deadline)
{
	memset(g, 0, sizeof(*g));
	g->fd = -1;
	drp_upstream_connect_req_t r = {.host = host,
					.port = port,
					.conn_id = 42,
					.resolve_deadline = resolve_deadline,
					.policy_exempt = exempt_next};
	/* Timers count from the loop's time: not from before a slow setup
	 * (valgrind). */
	ev_now_update(loop);
	g->in_starter = true;
	drp_upstream_connect_t *h =
		drp_upstream_connect(&up, ucf, &r, got_cb, g);
	g->in_starter = false;
	ck_assert_ptr_nonnull(h);
	return h;
}

static bool expired;

static void deadline_cb(struct ev_loop *l, ev_timer *t, int revents)
{
	expired = true;
}

/* Run the loop until g's callback ran (or for secs when expect_none). */
static void run_for(got_t *g, double secs, bool expect_none)
{
	ev_timer t;
	ev_timer_init(&t, deadline_cb, secs, 0.);
	ev_timer_start(loop, &t);
	expired = false;
	while (!expired && (expect_none || g->calls == 0))
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &t);
	if (!expect_none)
		ck_assert_msg(!expired, "no callback within %g s", secs);
}

static void expect_peer(int fd, const char *ip, uint16_t port)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	ck_assert_int_eq(getpeername(fd, (struct sockaddr *)&sin, &sl), 0);
	char buf[32];
	inet_ntop(AF_INET, &sin.sin_addr, buf, sizeof(buf));
	ck_assert_str_eq(buf, ip);
	ck_assert_uint_eq(ntohs(sin.sin_port), port);
}

/* ---- the tests ---- */

START_TEST(override_connects)
{
	/* [resolve] names loopback: the operator's word beats the policy,
	 * and the entry's port beats the requested one. */
	got_t g;
	start(&g, "open.test", 443, false);
	ck_assert_uint_eq(g.calls, 0);
	run_for(&g, 5., false);
	ck_assert_uint_eq(g.calls, 1);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_OK);
	ck_assert_int_ge(g.fd, 0);
	expect_peer(g.fd, "127.0.0.1", lport);
	char want[64];
	snprintf(want, sizeof(want), "127.0.0.1:%u", lport);
	ck_assert_str_eq(g.res.addr, want);
	ck_assert_uint_eq(dns.queries, 0);
	close(g.fd);
}
END_TEST

START_TEST(refused_address)
{
	/* Resolved to loopback only: refused, nothing is tried. */
	got_t g;
	start(&g, "loop.test", 443, false);
	run_for(&g, 5., false);
	ck_assert_uint_eq(g.calls, 1);
	ck_assert_int_eq(g.fd, -1);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_REFUSED);
	ck_assert_uint_eq(g.res.n_refused, 2);
	ck_assert_str_eq(g.res.addr, "");
	/* An IP literal not in [resolve] goes by the same policy. */
	start(&g, "127.0.0.1", lport, false);
	run_for(&g, 5., false);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_REFUSED);
	ck_assert_uint_eq(g.res.n_refused, 1);
	/* An unknown name is the resolver's failure, not a refusal. */
	start(&g, "nowhere.test", 443, false);
	run_for(&g, 5., false);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_RESOLVE);
	ck_assert_int_eq(g.res.dns_status, -ENOENT);
	ck_assert_uint_eq(log_count("connect "), 0);
}
END_TEST

START_TEST(store_exempt)
{
	/* The configured store (the cache's S3 endpoint) is exempt from the
	 * policy: the same loopback literal and name connect. */
	got_t g;
	exempt_next = true;
	start(&g, "127.0.0.1", lport, false);
	run_for(&g, 5., false);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_OK);
	expect_peer(g.fd, "127.0.0.1", lport);
	close(g.fd);
	start(&g, "loop.test", lport, false);
	exempt_next = false;
	run_for(&g, 5., false);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_OK);
	expect_peer(g.fd, "127.0.0.1", lport);
	close(g.fd);
}
END_TEST

START_TEST(addresses_in_turn)
{
	/* The first address refuses, the second connects. */
	ucf->addr_allowed = allow_all;
	got_t g;
	start(&g, "turn.test", lport, false);
	run_for(&g, 5., false);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_OK);
	expect_peer(g.fd, "127.0.0.1", lport);
	close(g.fd);
	char line[128];
	snprintf(line, sizeof(line),
		 "[c000042] connect turn.test (127.0.0.3:%u): Connection "
		 "refused",
		 lport);
	ck_assert_uint_eq(log_count(line), 1);
}
END_TEST

START_TEST(all_addresses_fail)
{
	/* Both addresses refuse (bport is bound, never listening). */
	ucf->addr_allowed = allow_all;
	got_t g;
	start(&g, "turn.test", bport, false);
	run_for(&g, 5., false);
	ck_assert_int_eq(g.fd, -1);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_FAILED);
	char want[64];
	snprintf(want, sizeof(want), "127.0.0.1:%u", bport);
	ck_assert_str_eq(g.res.addr, want); /* the last one tried */
	ck_assert_uint_eq(log_count("[c000042] connect turn.test ("), 2);
	/* One [resolve] address that refuses. */
	start(&g, "bound.test", 443, false);
	run_for(&g, 5., false);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_FAILED);
	ck_assert_str_eq(g.res.addr, want);
}
END_TEST

START_TEST(fails_in_starter_not_called_back_there)
{
	/* TCP to a broadcast address fails inside connect(2) itself: the
	 * result still comes from the loop. */
	got_t g;
	start(&g, "bcast.test", 443, false);
	ck_assert_uint_eq(g.calls, 0);
	run_for(&g, 5., false);
	ck_assert(!g.called_in_starter);
	ck_assert_uint_eq(g.calls, 1);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_FAILED);
	ck_assert_str_eq(g.res.addr, "255.255.255.255:443");
	/* Cancelled before the loop delivered it: never. */
	drp_upstream_connect_t *h = start(&g, "bcast.test", 443, false);
	drp_upstream_connect_cancel(h);
	run_for(&g, 0.2, true);
	ck_assert_uint_eq(g.calls, 0);
}
END_TEST

START_TEST(timeout)
{
	/* The only address hangs: TIMEOUT after connect_timeout (0.3 s). */
	got_t g;
	ev_now_update(loop);
	ev_tstamp t0 = ev_now(loop);
	start(&g, "full.test", 443, false);
	run_for(&g, 5., false);
	ck_assert_int_eq(g.fd, -1);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_TIMEOUT);
	ck_assert_double_ge(g.at - t0, 0.25);
	ck_assert_double_le(g.at - t0, 2.0);
	char line[128];
	snprintf(line, sizeof(line),
		 "[c000042] connect full.test (127.0.0.1:%u): timed out",
		 fport);
	ck_assert_uint_eq(log_count(line), 1);
	/* A timeout and then a refusal: the last one decides. */
	ucf->addr_allowed = allow_all;
	start(&g, "back.test", fport, false);
	run_for(&g, 5., false);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_FAILED);
	ck_assert_uint_eq(log_count("[c000042] connect back.test ("), 2);
	/* A refusal and then a timeout. */
	start(&g, "turn.test", fport, false);
	run_for(&g, 5., false);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_TIMEOUT);
}
END_TEST

START_TEST(resolve_timeout)
{
	/* A resolver that never answers: with resolve_deadline the connect
	 * gives up after connect_timeout; without, the resolver's own
	 * deadline (1 s) ends it as a resolver failure. */
	dns.silent = true;
	got_t g;
	ev_now_update(loop);
	ev_tstamp t0 = ev_now(loop);
	start(&g, "turn.test", 443, true);
	run_for(&g, 5., false);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_RESOLVE_TIMEOUT);
	ck_assert_double_le(g.at - t0, 0.9);
	start(&g, "turn.test", 443, false);
	run_for(&g, 5., false);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_RESOLVE);
	ck_assert_int_eq(g.res.dns_status, -ETIMEDOUT);
}
END_TEST

START_TEST(cancel)
{
	got_t g;
	/* While resolving. */
	drp_upstream_connect_t *h = start(&g, "turn.test", lport, true);
	drp_upstream_connect_cancel(h);
	run_for(&g, 0.5, true);
	ck_assert_uint_eq(g.calls, 0);
	/* While connecting, past connect_timeout. */
	h = start(&g, "full.test", 443, false);
	ev_run(loop, EVRUN_NOWAIT);
	drp_upstream_connect_cancel(h);
	run_for(&g, 0.5, true);
	ck_assert_uint_eq(g.calls, 0);
	drp_upstream_connect_cancel(NULL);
}
END_TEST

START_TEST(cancel_from_callback)
{
	/* The callback cancels its own handle (a no-op: it is freed once
	 * the callback returns) and starts the next connect; run it under
	 * valgrind to see that nothing is freed twice. */
	got_t g, g2;
	memset(&g2, 0, sizeof(g2));
	g2.fd = -1;
	drp_upstream_connect_t *h = start(&g, "bound.test", 443, false);
	g.self = h;
	g.again = &g2;
	run_for(&g, 5., false);
	ck_assert_uint_eq(g.calls, 1);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_FAILED);
	ck_assert_ptr_nonnull(g.again_h);
	run_for(&g2, 5., false);
	ck_assert_uint_eq(g2.calls, 1);
	ck_assert_int_eq(g2.res.err, DRP_UPCONNECT_OK);
	close(g2.fd);
	/* The same after a success. */
	h = start(&g, "open.test", 443, false);
	g.self = h;
	run_for(&g, 5., false);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_OK);
	close(g.fd);
}
END_TEST

/* ---- Happy Eyeballs and the parent proxy ---- */

/* Replace the fixture's rules with those of the configuration text. */
static void use_conf(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static void use_conf(const char *fmt, ...)
{
	char text[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	drp_conf_errors_t errs = {0};
	drp_conf_t *conf = drp_conf_load_string("test.ini", text, &errs);
	for (unsigned i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.msg[i]);
	ck_assert_ptr_nonnull(conf);
	drp_conf_errors_free(&errs);
	char err[256] = "";
	drp_upstream_conf_unref(ucf);
	ucf = drp_upstream_conf_new(conf, err, sizeof(err));
	ck_assert_msg(ucf != NULL, "%s", err);
	drp_conf_free(conf);
}

/* An IPv6 listener on [::1] whose queue is full (SYNs dropped); -1 if
 * this host has no IPv6. */
static int hang6(uint16_t *port, int fillv6[4])
{
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6,
				  .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	if (fd < 0 || bind(fd, (struct sockaddr *)&s6, sizeof(s6)) < 0 ||
	    listen(fd, 0) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	socklen_t sl = sizeof(s6);
	getsockname(fd, (struct sockaddr *)&s6, &sl);
	*port = ntohs(s6.sin6_port);
	for (unsigned i = 0; i < 4; i++) {
		fillv6[i] =
			socket(AF_INET6,
			       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		connect(fillv6[i], (struct sockaddr *)&s6, sizeof(s6));
	}
	return fd;
}

START_TEST(both_families_staggered)
{
	/* [::1]:h6 drops every SYN, 127.0.0.1:lport accepts, and
	 * connect_timeout is 5 s: the IPv4 address is tried 250 ms after
	 * the IPv6 one, which goes on meanwhile, and wins. One after the
	 * other, it would have waited the whole 5 s. */
	uint16_t h6;
	int fill6[4];
	int fd6 = hang6(&h6, fill6);
	if (fd6 < 0) {
		fprintf(stderr, "no IPv6 on this host: not tested\n");
		return;
	}
	use_conf("[proxy]\nconnect_timeout = 5\n[resolve]\n"
		 "dual.test = [::1]:%u 127.0.0.1:%u\n"
		 "two6.test = [::1]:%u [::1]:%u 127.0.0.1\n",
		 h6, lport, h6, h6);
	got_t g;
	ev_now_update(loop);
	ev_tstamp t0 = ev_now(loop);
	start(&g, "dual.test", 443, false);
	run_for(&g, 8., false);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_OK);
	expect_peer(g.fd, "127.0.0.1", lport);
	ck_assert_double_ge(g.at - t0, 0.2);
	ck_assert_double_le(g.at - t0, 1.0);
	close(g.fd);
	/* Both families alternate: the IPv4 address goes second, not
	 * third as written. */
	ev_now_update(loop);
	t0 = ev_now(loop);
	start(&g, "two6.test", lport, false);
	run_for(&g, 8., false);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_OK);
	expect_peer(g.fd, "127.0.0.1", lport);
	ck_assert_double_le(g.at - t0, 1.0);
	close(g.fd);
	ck_assert_uint_eq(log_count("timed out"), 0);
	for (unsigned i = 0; i < 4; i++)
		close(fill6[i]);
	close(fd6);
}
END_TEST

/* A parent proxy in the test's loop: accepts one connection, reads a
 * request head, answers with `answer` (NULL: closes). */
static struct parent {
	int lfd, cfd;
	uint16_t port;
	ev_io lio, cio;
	char req[2048];
	size_t len;
	const char *answer;
	unsigned accepted;
} par;

static void par_read_cb(struct ev_loop *l, ev_io *w, int revents)
{
	ssize_t n = recv(par.cfd, par.req + par.len,
			 sizeof(par.req) - 1 - par.len, 0);
	if (n <= 0)
		return;
	par.len += (size_t)n;
	par.req[par.len] = '\0';
	if (strstr(par.req, "\r\n\r\n") == NULL)
		return;
	ev_io_stop(l, w);
	if (par.answer == NULL) {
		close(par.cfd);
		par.cfd = -1;
		return;
	}
	ck_assert_int_eq(send(par.cfd, par.answer, strlen(par.answer), 0),
			 (ssize_t)strlen(par.answer));
}

static void par_accept_cb(struct ev_loop *l, ev_io *w, int revents)
{
	par.cfd = accept4(par.lfd, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(par.cfd, 0);
	par.accepted++;
	ev_io_stop(l, w);
	ev_io_init(&par.cio, par_read_cb, par.cfd, EV_READ);
	ev_io_start(l, &par.cio);
}

static void par_start(const char *answer)
{
	if (par.cfd >= 0) {
		ev_io_stop(loop, &par.cio);
		close(par.cfd);
	}
	par.cfd = -1;
	par.len = 0;
	par.req[0] = '\0';
	par.answer = answer;
	ev_io_init(&par.lio, par_accept_cb, par.lfd, EV_READ);
	ev_io_start(loop, &par.lio);
}

START_TEST(parent_proxy)
{
	memset(&par, 0, sizeof(par));
	par.cfd = -1;
	par.lfd = tcp_on(&par.port, 4);
	char pw[64];
	snprintf(pw, sizeof(pw), "/tmp/test_connect.%d.pw", getpid());
	FILE *f = fopen(pw, "w");
	ck_assert_ptr_nonnull(f);
	fputs("par-Pw1\n", f);
	fclose(f);
	use_conf("[proxy]\nconnect_timeout = 2\n"
		 "upstream_proxy = http://pu@127.0.0.1:%u\n"
		 "upstream_proxy_password_file = %s\n"
		 "no_upstream_proxy = direct.test .corp.test 10.0.0.0/8\n"
		 "[resolve]\nopen.test = 127.0.0.1:%u\n",
		 par.port, pw, lport);
	unlink(pw);

	/* Who goes through it. */
	ck_assert(drp_upstream_via_parent(ucf, "reg.test"));
	ck_assert(!drp_upstream_via_parent(ucf, "open.test")); /* [resolve] */
	ck_assert(!drp_upstream_via_parent(ucf, "direct.test"));
	ck_assert(drp_upstream_via_parent(ucf, "a.direct.test"));
	ck_assert(!drp_upstream_via_parent(ucf, "a.corp.test"));
	ck_assert(!drp_upstream_via_parent(ucf, "corp.test"));
	ck_assert(drp_upstream_via_parent(ucf, "xcorp.test"));
	ck_assert(!drp_upstream_via_parent(ucf, "10.1.2.3"));
	ck_assert(drp_upstream_via_parent(ucf, "11.1.2.3"));

	/* A tunnel: CONNECT with the credentials, the name unresolved
	 * (no DNS query); what follows the answer's head stays in the
	 * socket. */
	par_start("HTTP/1.1 200 Connection established\r\n\r\nfrom origin");
	got_t g;
	start(&g, "reg.test", 443, false);
	run_for(&g, 5., false);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_OK);
	ck_assert(g.res.via_parent);
	ck_assert_str_eq(
		par.req,
		"CONNECT reg.test:443 HTTP/1.1\r\nHost: reg.test:443\r\n"
		"Proxy-Authorization: Basic cHU6cGFyLVB3MQ==\r\n\r\n");
	char buf[64] = "";
	ck_assert_int_eq(recv(g.fd, buf, sizeof(buf) - 1, 0), 11);
	ck_assert_str_eq(buf, "from origin");
	close(g.fd);
	ck_assert_uint_eq(dns.queries, 0);

	/* It refuses: PARENT, its status line as detail. */
	par_start("HTTP/1.1 407 Proxy Authentication Required\r\n"
		  "Proxy-Authenticate: Basic realm=\"x\"\r\n"
		  "Content-Length: 0\r\n\r\n");
	start(&g, "reg.test", 443, false);
	run_for(&g, 5., false);
	ck_assert_int_eq(g.fd, -1);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_PARENT);
	ck_assert_int_eq(g.res.parent_status, 407);
	ck_assert_str_eq(g.res.detail, "407 Proxy Authentication Required");

	/* It hangs up. */
	par_start(NULL);
	start(&g, "reg.test", 443, false);
	run_for(&g, 5., false);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_PARENT);
	ck_assert_int_eq(g.res.parent_status, 0);
	ck_assert_str_eq(g.res.detail, "closed the connection");

	/* Plain http: the connection to the parent as it is. */
	par_start("unused");
	drp_upstream_connect_req_t r = {
		.host = "reg.test", .port = 80, .http_forward = true};
	memset(&g, 0, sizeof(g));
	drp_upstream_connect(&up, ucf, &r, got_cb, &g);
	run_for(&g, 5., false);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_OK);
	ck_assert(g.res.via_parent);
	ck_assert_uint_eq(par.len, 0);
	close(g.fd);

	/* An address the policy refuses is not asked of the parent. */
	unsigned before = par.accepted;
	start(&g, "127.0.0.5", 443, false);
	run_for(&g, 5., false);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_REFUSED);
	/* A [resolve] host goes direct. */
	start(&g, "open.test", 443, false);
	run_for(&g, 5., false);
	ck_assert_int_eq(g.res.err, DRP_UPCONNECT_OK);
	ck_assert(!g.res.via_parent);
	expect_peer(g.fd, "127.0.0.1", lport);
	close(g.fd);
	run_for(&g, 0.1, true);
	ck_assert_uint_eq(par.accepted, before);
	ev_io_stop(loop, &par.lio);
	ev_io_stop(loop, &par.cio);
	if (par.cfd >= 0)
		close(par.cfd);
	close(par.lfd);
}
END_TEST

/* A parent proxy without no_upstream_proxy: every host goes through it.
 * The configuration then has no exception list (no CIDRs at all), which
 * the upstream configuration copies without reading a null array
 * (UBSan: memcpy from NULL). */
START_TEST(parent_proxy_without_exceptions)
{
	use_conf("[proxy]\nupstream_proxy = http://127.0.0.1:9\n");
	ck_assert(drp_upstream_via_parent(ucf, "reg.test"));
	ck_assert(drp_upstream_via_parent(ucf, "10.1.2.3"));
	ck_assert(drp_upstream_via_parent(ucf, "::1"));
}
END_TEST

Suite *connect_suite(void)
{
	Suite *s = suite_create("connect");
	TCase *tc = tcase_create("connect");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, override_connects);
	tcase_add_test(tc, refused_address);
	tcase_add_test(tc, store_exempt);
	tcase_add_test(tc, addresses_in_turn);
	tcase_add_test(tc, all_addresses_fail);
	tcase_add_test(tc, fails_in_starter_not_called_back_there);
	tcase_add_test(tc, timeout);
	tcase_add_test(tc, resolve_timeout);
	tcase_add_test(tc, cancel);
	tcase_add_test(tc, cancel_from_callback);
	tcase_add_test(tc, both_families_staggered);
	tcase_add_test(tc, parent_proxy);
	tcase_add_test(tc, parent_proxy_without_exceptions);
	suite_add_tcase(s, tc);
	return s;
}
