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
 * is what the client sends (world.h: the loop, the fake upstream).
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
 *   bit 6     scripted upstream: when the rest holds FZ_SEP
 *             ("\r\n--up--\r\n"), what precedes the first one is the
 *             client's bytes and each part after one is the upstream's
 *             answer to the next request head it sees, on any connection
 *             (a manifest with any Content-Type and digest, a 401 then
 *             the token JSON, a redirect...), instead of the table's;
 *             bit 7 then sends them one byte per loop turn. Behind the
 *             intercepted seam the fake upstream then speaks TLS (with a
 *             certificate the proxy trusts), so they reach the cache
 *
 * Deterministic and fast: no timers are waited for, no real network.
 * The interesting failures are memory errors (ASan) and UB (UBSan).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#include "cache/cache.h"
#include "proxy/conn.h"
#include "world.h"

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

/* At most this many scripted answers per input. */
#define MAX_SCRIPT 16

static struct {
	bool ready;
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
	drp_server_t *srv = &FZ.srv;
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

static void client_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	char buf[65536];
	ssize_t n;
	while ((n = recv(F.cfd, buf, sizeof(buf), 0)) > 0)
		;
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		ev_io_stop(loop, io);
}

static void setup(void)
{
	fz_setup("FUZZ_CONN_LOG");
	const char *seam = getenv("FUZZ_CONN_SEAM");
	F.seam = seam == NULL			    ? -1
		 : strcmp(seam, "intercepted") == 0 ? 1
		 : strcmp(seam, "plain") == 0	    ? 0
						    : -1;
	for (size_t i = 0; i < sizeof(F.blob); i++)
		F.blob[i] = (char)('a' + i % 26);
	uint8_t md[32];
	gnutls_hash_fast(GNUTLS_DIG_SHA256, F.blob, sizeof(F.blob), md);
	int o = snprintf(F.blob_digest, sizeof(F.blob_digest), "sha256:");
	for (int i = 0; i < 32; i++)
		o += snprintf(F.blob_digest + o,
			      sizeof(F.blob_digest) - (size_t)o, "%02x", md[i]);
	snprintf(F.blob_path, sizeof(F.blob_path),
		 "%.100s/blobs/sha256/%.2s/%.64s", FZ.cache, F.blob_digest + 7,
		 F.blob_digest + 7);
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
	unsigned answer = (data[0] >> 1) & 7;
	bool scripted = data[0] & 0x40, trickle = data[0] & 0x80;
	blob_damage((data[0] >> 4) & 3);
	data++;
	size--;

	fz_answer_t script[MAX_SCRIPT + 1];
	size_t parts =
		scripted ? fz_split(data, size, script, MAX_SCRIPT + 1) : 1;
	if (parts > 1) {
		/* Part 0 is the client's; the upstream's are kept open. */
		size = script[0].n;
		fz_script(script + 1, parts - 1, false, trickle ? 1 : 0,
			  intercepted);
	} else {
		fz_answer_t a = {.p = answers[answer],
				 .n = strlen(answers[answer]),
				 .close = answer_closes[answer]};
		script[0] = a;
		fz_script(script, 1, true, 0, false);
	}

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
		drp_conn_accept_intercepted(&FZ.w, sv[1],
					    (struct sockaddr *)&peer,
					    sizeof(peer), "registry.test", 443);
	else
		drp_conn_accept(&FZ.w, sv[1], (struct sockaddr *)&peer,
				sizeof(peer));
	ev_io_init(&F.cio, client_cb, F.cfd, EV_READ);
	ev_io_start(FZ.w.loop, &F.cio);

	/* What the socket takes at once; the rest as the proxy reads. */
	size_t off = 0;
	for (int round = 0; round < 64 && off < size; round++) {
		ssize_t n = send(F.cfd, data + off, size - off, MSG_NOSIGNAL);
		if (n > 0)
			off += (size_t)n;
		else if (n < 0 && errno != EAGAIN)
			break;
		fz_run_until_idle();
	}
	fz_run_until_idle();
	shutdown(F.cfd, SHUT_WR);
	fz_run_until_idle();

	drp_conn_close_all(&FZ.w, "fuzz input done");
	ev_io_stop(FZ.w.loop, &F.cio);
	close(F.cfd);
	fz_reset();
	return 0;
}
