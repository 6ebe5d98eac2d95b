/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/dns.h"

Suite *dns_suite(void);

/* What one callback saw. */
struct got {
	int calls;
	int status;
	drp_dns_result_t res;
	ev_tstamp at;
	struct ev_loop *loop;
	/* Actions run from inside the callback. */
	drp_dns_query_t *cancel_other;
	drp_dns_t *free_resolver;
};

static struct ev_loop *loop;
static drp_dns_t *dns;

static void setup(void)
{
	loop = ev_loop_new(EVFLAG_AUTO);
	ck_assert_ptr_nonnull(loop);
	dns = drp_dns_new(loop, 2.0);
	ck_assert_ptr_nonnull(dns);
}

static void teardown(void)
{
	drp_dns_free(dns);
	dns = NULL;
	ev_loop_destroy(loop);
	loop = NULL;
}

static void record_cb(void *arg, int status, const drp_dns_result_t *res)
{
	struct got *g = arg;

	g->calls++;
	g->status = status;
	ck_assert_ptr_nonnull(res);
	g->res = *res;
	g->at = ev_now(g->loop);
	if (g->cancel_other != NULL)
		drp_dns_cancel(g->cancel_other);
	if (g->free_resolver != NULL) {
		drp_dns_free(g->free_resolver);
		dns = NULL;
	}
}

static void guard_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	ev_break(l, EVBREAK_ALL);
}

/* Runs the loop until nothing is left to do, at most max_s seconds. The
 * guard timer is unref'd so that it does not itself keep the loop alive. */
static void run_loop(double max_s)
{
	ev_timer guard;

	ev_timer_init(&guard, guard_cb, max_s, 0.);
	ev_timer_start(loop, &guard);
	ev_unref(loop);
	ev_run(loop, 0);
	ev_ref(loop);
	ev_timer_stop(loop, &guard);
}

static void expect_ipv4(const drp_dns_result_t *r, unsigned i, const char *ip,
			uint16_t port)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&r->addr[i];
	char buf[INET_ADDRSTRLEN];

	ck_assert_int_eq(sin->sin_family, AF_INET);
	ck_assert_uint_eq(r->addrlen[i], sizeof(struct sockaddr_in));
	ck_assert_ptr_nonnull(
		inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)));
	ck_assert_str_eq(buf, ip);
	ck_assert_uint_eq(ntohs(sin->sin_port), port);
}

static void expect_ipv6(const drp_dns_result_t *r, unsigned i, const char *ip,
			uint16_t port)
{
	const struct sockaddr_in6 *sin6 =
		(const struct sockaddr_in6 *)&r->addr[i];
	char buf[INET6_ADDRSTRLEN];

	ck_assert_int_eq(sin6->sin6_family, AF_INET6);
	ck_assert_uint_eq(r->addrlen[i], sizeof(struct sockaddr_in6));
	ck_assert_ptr_nonnull(
		inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf)));
	ck_assert_str_eq(buf, ip);
	ck_assert_uint_eq(ntohs(sin6->sin6_port), port);
}

/* Index of the address equal to ip in r, or -1. */
static int find_addr(const drp_dns_result_t *r, const char *ip)
{
	char buf[INET6_ADDRSTRLEN];

	for (unsigned i = 0; i < r->n; i++) {
		const void *a;
		int af = r->addr[i].ss_family;
		if (af == AF_INET)
			a = &((const struct sockaddr_in *)&r->addr[i])
				     ->sin_addr;
		else
			a = &((const struct sockaddr_in6 *)&r->addr[i])
				     ->sin6_addr;
		if (inet_ntop(af, a, buf, sizeof(buf)) != NULL &&
		    strcmp(buf, ip) == 0)
			return (int)i;
	}
	return -1;
}

START_TEST(localhost_from_hosts_file)
{
	struct got g = {.loop = loop};

	ck_assert_ptr_nonnull(
		drp_dns_resolve(dns, "localhost", 3128, record_cb, &g));
	run_loop(5.);
	ck_assert_int_eq(g.calls, 1);
	ck_assert_int_eq(g.status, 0);
	ck_assert_uint_ge(g.res.n, 1);
	/* /etc/hosts maps localhost to 127.0.0.1 and/or ::1, nothing else. */
	int v4 = find_addr(&g.res, "127.0.0.1");
	int v6 = find_addr(&g.res, "::1");
	ck_assert(v4 >= 0 || v6 >= 0);
	ck_assert_uint_eq(g.res.n, (v4 >= 0) + (v6 >= 0));
	if (v4 >= 0)
		expect_ipv4(&g.res, v4, "127.0.0.1", 3128);
	if (v6 >= 0)
		expect_ipv6(&g.res, v6, "::1", 3128);
}
END_TEST

START_TEST(numeric_hosts_exact)
{
	struct got a = {.loop = loop}, b = {.loop = loop}, c = {.loop = loop};

	drp_dns_resolve(dns, "127.0.0.5", 443, record_cb, &a);
	drp_dns_resolve(dns, "::1", 5000, record_cb, &b);
	/* Bracketed IPv6 literal, as written in a URL authority. */
	drp_dns_resolve(dns, "[fd00::2]", 8443, record_cb, &c);
	run_loop(5.);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(a.status, 0);
	ck_assert_uint_eq(a.res.n, 1);
	expect_ipv4(&a.res, 0, "127.0.0.5", 443);
	ck_assert_int_eq(b.calls, 1);
	ck_assert_int_eq(b.status, 0);
	ck_assert_uint_eq(b.res.n, 1);
	expect_ipv6(&b.res, 0, "::1", 5000);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(c.status, 0);
	ck_assert_uint_eq(c.res.n, 1);
	expect_ipv6(&c.res, 0, "fd00::2", 8443);
}
END_TEST

START_TEST(never_called_synchronously)
{
	struct got a = {.loop = loop}, b = {.loop = loop}, c = {.loop = loop};

	/* A literal, a hosts-file name (c-ares answers both from inside
	 * ares_getaddrinfo) and an empty name (an immediate error). */
	drp_dns_resolve(dns, "10.1.2.3", 80, record_cb, &a);
	ck_assert_int_eq(a.calls, 0);
	drp_dns_resolve(dns, "localhost", 80, record_cb, &b);
	ck_assert_int_eq(b.calls, 0);
	drp_dns_resolve(dns, "", 80, record_cb, &c);
	ck_assert_int_eq(c.calls, 0);
	run_loop(5.);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(b.calls, 1);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(c.status, -ENOENT);
	ck_assert_uint_eq(c.res.n, 0);
}
END_TEST

START_TEST(invalid_name_calls_back_once)
{
	struct got g = {.loop = loop};
	ev_tstamp start;

	ev_now_update(loop);
	start = ev_now(loop);
	drp_dns_resolve(dns, "no-such-host.invalid", 443, record_cb, &g);
	/* Run until c-ares has given up for good, so that a late second
	 * callback would be seen. */
	run_loop(10.);
	ck_assert_int_eq(g.calls, 1);
	/* No network here: NXDOMAIN, an unreachable server, or the
	 * deadline are all acceptable; success is not. */
	ck_assert_msg(g.status == -ENOENT || g.status == -EIO ||
			      g.status == -ETIMEDOUT,
		      "status %d", g.status);
	ck_assert_uint_eq(g.res.n, 0);
	ck_assert_double_le(g.at - start, 2.0 + 0.5);
}
END_TEST

START_TEST(cancel_suppresses_callback)
{
	struct got a = {.loop = loop}, b = {.loop = loop}, c = {.loop = loop};
	struct got d = {.loop = loop};

	drp_dns_query_t *qa =
		drp_dns_resolve(dns, "127.0.0.1", 1, record_cb, &a);
	drp_dns_query_t *qb =
		drp_dns_resolve(dns, "localhost", 1, record_cb, &b);
	/* Still inside c-ares when cancelled: its late answer is dropped. */
	drp_dns_query_t *qc =
		drp_dns_resolve(dns, "no-such-host.invalid", 1, record_cb, &c);
	drp_dns_resolve(dns, "127.0.0.2", 2, record_cb, &d);
	drp_dns_cancel(qa);
	drp_dns_cancel(qb);
	drp_dns_cancel(qc);
	run_loop(10.);
	ck_assert_int_eq(a.calls, 0);
	ck_assert_int_eq(b.calls, 0);
	ck_assert_int_eq(c.calls, 0);
	/* The uncancelled neighbour is unaffected. */
	ck_assert_int_eq(d.calls, 1);
	expect_ipv4(&d.res, 0, "127.0.0.2", 2);
}
END_TEST

START_TEST(cancel_from_another_callback)
{
	struct got a = {.loop = loop}, b = {.loop = loop}, c = {.loop = loop};

	/* b is queued in the same delivery batch as a; c is still in c-ares
	 * (its server never answers) when a's callback cancels it. */
	drp_dns_resolve(dns, "127.0.0.1", 1, record_cb, &a);
	drp_dns_query_t *qb =
		drp_dns_resolve(dns, "127.0.0.2", 1, record_cb, &b);
	a.cancel_other = qb;
	run_loop(5.);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(b.calls, 0);

	struct got a2 = {.loop = loop};
	drp_dns_query_t *qc =
		drp_dns_resolve(dns, "no-such-host.invalid", 1, record_cb, &c);
	drp_dns_resolve(dns, "127.0.0.3", 1, record_cb, &a2);
	a2.cancel_other = qc;
	run_loop(10.);
	ck_assert_int_eq(a2.calls, 1);
	ck_assert_int_eq(c.calls, 0);
}
END_TEST

#define MANY 300
START_TEST(many_concurrent)
{
	static struct got g[MANY];
	char host[32];

	for (int i = 0; i < MANY; i++) {
		memset(&g[i], 0, sizeof(g[i]));
		g[i].loop = loop;
		/* Mix literals with hosts-file names through c-ares. */
		if (i % 3 == 0)
			snprintf(host, sizeof(host), "localhost");
		else
			snprintf(host, sizeof(host), "127.0.%d.%d", i / 256,
				 i % 256);
		ck_assert_ptr_nonnull(drp_dns_resolve(
			dns, host, (uint16_t)(1000 + i), record_cb, &g[i]));
	}
	run_loop(10.);
	for (int i = 0; i < MANY; i++) {
		ck_assert_int_eq(g[i].calls, 1);
		ck_assert_int_eq(g[i].status, 0);
		if (i % 3 == 0) {
			int k = find_addr(&g[i].res, "127.0.0.1");
			ck_assert_int_ge(k, 0);
			expect_ipv4(&g[i].res, k, "127.0.0.1", 1000 + i);
		} else {
			snprintf(host, sizeof(host), "127.0.%d.%d", i / 256,
				 i % 256);
			ck_assert_uint_eq(g[i].res.n, 1);
			expect_ipv4(&g[i].res, 0, host, 1000 + i);
		}
	}
}
END_TEST

START_TEST(free_with_outstanding_queries)
{
	struct got g[4] = {
		{.loop = loop}, {.loop = loop}, {.loop = loop}, {.loop = loop}};

	drp_dns_resolve(dns, "127.0.0.1", 1, record_cb, &g[0]);
	drp_dns_resolve(dns, "localhost", 1, record_cb, &g[1]);
	drp_dns_resolve(dns, "no-such-host.invalid", 1, record_cb, &g[2]);
	drp_dns_resolve(dns, "::1", 1, record_cb, &g[3]);
	drp_dns_free(dns);
	dns = NULL;
	/* Nothing of the resolver may remain on the loop: no watcher keeps
	 * it running and no callback is ever made. */
	ev_run(loop, 0);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(g[i].calls, 0);
}
END_TEST

START_TEST(free_from_inside_callback)
{
	struct got a = {.loop = loop}, b = {.loop = loop}, c = {.loop = loop};

	drp_dns_resolve(dns, "127.0.0.1", 1, record_cb, &a);
	drp_dns_resolve(dns, "127.0.0.2", 1, record_cb, &b);
	drp_dns_resolve(dns, "no-such-host.invalid", 1, record_cb, &c);
	a.free_resolver = dns;
	run_loop(10.);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(b.calls, 0);
	ck_assert_int_eq(c.calls, 0);
	ck_assert_ptr_null(dns);
}
END_TEST

/*
 * A DNS server on 127.0.0.1 in the test's own loop, so that the c-ares
 * path (sockets, timers, answers) is exercised without a network:
 * "reg.test" has A 10.1.2.3 and AAAA fd00::7, "v4.test" only A 10.9.9.9,
 * anything else is NXDOMAIN; with silent set it never answers.
 */
struct fake_dns {
	ev_io io;
	int fd;
	int port;
	bool silent;
	int queries;
};

static size_t put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
	return 2;
}

static void fake_dns_cb(struct ev_loop *l, ev_io *w, int revents)
{
	struct fake_dns *f = (struct fake_dns *)w;
	unsigned char q[512], r[512];
	struct sockaddr_storage from;
	socklen_t fromlen = sizeof(from);
	ssize_t n = recvfrom(f->fd, q, sizeof(q), 0, (struct sockaddr *)&from,
			     &fromlen);

	if (n < 12)
		return;
	f->queries++;
	if (f->silent)
		return;
	/* Question: labels from offset 12, then qtype and qclass. */
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

	bool known =
		strcmp(name, "reg.test") == 0 || strcmp(name, "v4.test") == 0;
	const unsigned char a_reg[4] = {10, 1, 2, 3};
	const unsigned char a_v4[4] = {10, 9, 9, 9};
	unsigned char aaaa[16];
	inet_pton(AF_INET6, "fd00::7", aaaa);
	const unsigned char *rdata = NULL;
	unsigned rdlen = 0;
	if (qtype == 1 && known) {
		rdata = strcmp(name, "reg.test") == 0 ? a_reg : a_v4;
		rdlen = 4;
	} else if (qtype == 28 && strcmp(name, "reg.test") == 0) {
		rdata = aaaa;
		rdlen = 16;
	}

	memcpy(r, q, qend);
	/* QR, RD, RA; rcode 3 (NXDOMAIN) for unknown names. */
	put16(r + 2, 0x8180 | (known ? 0 : 3));
	put16(r + 4, 1);
	put16(r + 6, rdata != NULL ? 1 : 0);
	put16(r + 8, 0);
	put16(r + 10, 0);
	size_t len = qend;
	if (rdata != NULL) {
		len += put16(r + len, 0xc00c); /* name: pointer to question */
		len += put16(r + len, qtype);
		len += put16(r + len, 1); /* class IN */
		len += put16(r + len, 0);
		len += put16(r + len, 60); /* TTL */
		len += put16(r + len, rdlen);
		memcpy(r + len, rdata, rdlen);
		len += rdlen;
	}
	sendto(f->fd, r, len, 0, (struct sockaddr *)&from, fromlen);
}

static void fake_dns_start(struct fake_dns *f, bool silent)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);

	memset(f, 0, sizeof(*f));
	f->silent = silent;
	f->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(f->fd, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(f->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(f->fd, (struct sockaddr *)&sin, &len), 0);
	f->port = ntohs(sin.sin_port);
	ev_io_init(&f->io, fake_dns_cb, f->fd, EV_READ);
	ev_io_start(loop, &f->io);
	/* The fake server must not keep run_loop() going by itself. */
	ev_unref(loop);

	char servers[64];
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", f->port);
	ck_assert_int_eq(drp_dns_set_servers(dns, servers), 0);
}

static void fake_dns_stop(struct fake_dns *f)
{
	ev_ref(loop);
	ev_io_stop(loop, &f->io);
	close(f->fd);
}

START_TEST(server_answers_a_and_aaaa)
{
	struct fake_dns f;
	struct got g = {.loop = loop}, h = {.loop = loop};

	fake_dns_start(&f, false);
	drp_dns_resolve(dns, "reg.test", 443, record_cb, &g);
	drp_dns_resolve(dns, "v4.test", 80, record_cb, &h);
	run_loop(5.);
	fake_dns_stop(&f);
	/* Both families of reg.test, in whatever order RFC 6724 sorts them. */
	ck_assert_int_eq(g.calls, 1);
	ck_assert_int_eq(g.status, 0);
	ck_assert_uint_eq(g.res.n, 2);
	int v4 = find_addr(&g.res, "10.1.2.3");
	int v6 = find_addr(&g.res, "fd00::7");
	ck_assert_int_ge(v4, 0);
	ck_assert_int_ge(v6, 0);
	expect_ipv4(&g.res, v4, "10.1.2.3", 443);
	expect_ipv6(&g.res, v6, "fd00::7", 443);
	/* An empty AAAA answer next to an A record is not an error. */
	ck_assert_int_eq(h.calls, 1);
	ck_assert_int_eq(h.status, 0);
	ck_assert_uint_eq(h.res.n, 1);
	expect_ipv4(&h.res, 0, "10.9.9.9", 80);
	/* One A and one AAAA question per name. */
	ck_assert_int_eq(f.queries, 4);
}
END_TEST

START_TEST(server_nxdomain_is_enoent)
{
	struct fake_dns f;
	struct got g = {.loop = loop};

	fake_dns_start(&f, false);
	drp_dns_resolve(dns, "missing.test", 443, record_cb, &g);
	run_loop(5.);
	fake_dns_stop(&f);
	ck_assert_int_eq(g.calls, 1);
	ck_assert_int_eq(g.status, -ENOENT);
	ck_assert_uint_eq(g.res.n, 0);
}
END_TEST

START_TEST(silent_server_times_out)
{
	struct fake_dns f;
	struct got g = {.loop = loop};
	ev_tstamp start;

	drp_dns_free(dns);
	dns = drp_dns_new(loop, 0.6);
	ck_assert_ptr_nonnull(dns);
	fake_dns_start(&f, true);
	ev_now_update(loop);
	start = ev_now(loop);
	drp_dns_resolve(dns, "reg.test", 443, record_cb, &g);
	/* Long enough for c-ares to give up too: no second callback. */
	run_loop(5.);
	ck_assert_int_eq(g.calls, 1);
	ck_assert_int_eq(g.status, -ETIMEDOUT);
	ck_assert_uint_eq(g.res.n, 0);
	ck_assert_double_ge(g.at - start, 0.55);
	ck_assert_double_le(g.at - start, 1.2);
	/* c-ares retried: two tries of A and AAAA each. */
	ck_assert_int_eq(f.queries, 4);
	fake_dns_stop(&f);
}
END_TEST

START_TEST(set_servers_errors)
{
	struct got g = {.loop = loop};

	/* Not an address list. */
	ck_assert_int_eq(drp_dns_set_servers(dns, "not an address"), -EINVAL);
	/* c-ares refuses to swap servers under a pending query. */
	drp_dns_query_t *q =
		drp_dns_resolve(dns, "no-such-host.invalid", 1, record_cb, &g);
	ck_assert_int_eq(drp_dns_set_servers(dns, "127.0.0.1:53"), -EBUSY);
	drp_dns_cancel(q);
	/* A literal never enters c-ares, so it does not block the swap. */
	drp_dns_resolve(dns, "127.0.0.1", 1, record_cb, &g);
	run_loop(10.);
	ck_assert_int_eq(g.calls, 1);
	ck_assert_int_eq(drp_dns_set_servers(dns, "127.0.0.1:53,[::1]:53"), 0);
}
END_TEST

Suite *dns_suite(void)
{
	Suite *s = suite_create("dns");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, localhost_from_hosts_file);
	tcase_add_test(tc, numeric_hosts_exact);
	tcase_add_test(tc, never_called_synchronously);
	tcase_add_test(tc, invalid_name_calls_back_once);
	tcase_add_test(tc, cancel_suppresses_callback);
	tcase_add_test(tc, cancel_from_another_callback);
	tcase_add_test(tc, many_concurrent);
	tcase_add_test(tc, free_with_outstanding_queries);
	tcase_add_test(tc, free_from_inside_callback);
	tcase_add_test(tc, server_answers_a_and_aaaa);
	tcase_add_test(tc, server_nxdomain_is_enoent);
	tcase_add_test(tc, silent_server_times_out);
	tcase_add_test(tc, set_servers_errors);
	suite_add_tcase(s, tc);
	return s;
}
