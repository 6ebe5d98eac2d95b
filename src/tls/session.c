/* SPDX-License-Identifier: MIT */
#include "tls/session.h"

#include <ctype.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "util/busguard.h"
#include "util/log.h"
#include "util/mem.h"

struct drp_tls_client_cred {
	gnutls_certificate_credentials_t cred;
	bool verify;
};

struct drp_tls {
	gnutls_session_t s;
	bool server;
	bool verify;
	int last_err;
	int last_alert; /* with GNUTLS_E_FATAL_ALERT_RECEIVED */
	/* Server, during the handshake: the last bytes from the client. A
	 * TLS 1.3 client that rejects our certificate before it switched
	 * keys (OpenSSL does) sends its alert unencrypted, which GnuTLS only
	 * sees as a record it cannot decrypt: the alert is read here. */
	unsigned char tail[7];
	unsigned tail_len;
	bool hs_done;
	size_t again_len; /* length of a record send that returned EAGAIN */
	int fd;
	const char *pre; /* bytes read before the handshake (owned by caller) */
	size_t pre_len, pre_off;
	/* Read-ahead of the client (upstream) side: GnuTLS pulls a record
	 * header and then its body, two recv(2) per 16 KiB record; one
	 * recv of up to RA_SIZE serves several records. */
	char *ra;
	size_t ra_len, ra_off;
	/* Server sessions: the last recv(2) got less than it asked for (the
	 * socket was empty then); see drp_tls_drained. */
	bool drained;
	/* Write batching (server sessions only): during drp_tls_write the
	 * records GnuTLS makes are gathered in the thread's batch buffer and
	 * sent with one send(2) per BATCH_SIZE, instead of one per 16 KiB
	 * record; what the socket did not take waits in rest (drp_tls_flush).
	 */
	char *batch; /* the thread's buffer, inside drp_tls_write */
	size_t batch_len;
	char *rest;
	size_t rest_len, rest_off;
	/* Sealing (server sessions, TLS 1.3 with AES-GCM): the records of a
	 * write after its first are encrypted here, straight into the batch
	 * (see seal_records); seal_ok: one of enum seal_state. */
	int seal_ok;
	gnutls_aead_cipher_hd_t seal;
	unsigned char seal_key[32]; /* the write key seal was made with */
	unsigned seal_key_len;
	uint64_t sealed;    /* records sealed here, for the tests */
	uint64_t seal_max;  /* 0: SEAL_SEQ_MAX; tests set a lower one */
	uint64_t seal_next; /* after the last record sealed, for the tests */
	char host[256];
	char sni[256];
	char err[256];
};

static gnutls_priority_t prio;

static void init_priority(void)
{
	/* Once per process; idempotent. */
	static int done;
	if (__atomic_exchange_n(&done, 1, __ATOMIC_SEQ_CST))
		return;
	/* NORMAL's suites, with AES-128-GCM first: NORMAL prefers AES-256,
	 * and with server precedence every client (Go's included, which
	 * would pick AES-128) would pay about a third more per byte for
	 * each of the two TLS legs of an intercepted transfer.
	 * TLS 1.2 and 1.3 only, on both legs (clients and upstreams), like
	 * current nginx and Go defaults: 1.0 and 1.1 are deprecated
	 * (RFC 8996).
	 * X25519 first among the groups: NORMAL puts P-256 first, and with
	 * server precedence a TLS 1.3 client that sent a key share for
	 * X25519 only (Go's crypto/tls, hence containerd and dockerd;
	 * OpenSSL, hence curl) was answered with a HelloRetryRequest for
	 * P-256 on every new connection: a second ClientHello and key
	 * generation, and a round trip. X25519 is also the cheaper key
	 * exchange here. NORMAL's other groups follow in its order. */
	const char *errpos = NULL;
	int r = gnutls_priority_init(
		&prio,
		"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:"
		"-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"
		"+CHACHA20-POLY1305:+AES-128-CCM:+AES-256-CCM:+AES-128-CBC:"
		"+AES-256-CBC:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:"
		"+GROUP-SECP384R1:+GROUP-SECP521R1:+GROUP-X448:"
		"+GROUP-FFDHE2048:+GROUP-FFDHE3072:+GROUP-FFDHE4096:"
		"+GROUP-FFDHE6144:+GROUP-FFDHE8192:%SERVER_PRECEDENCE",
		&errpos);
	drp_require(r == GNUTLS_E_SUCCESS);
}

drp_tls_client_cred_t *drp_tls_client_cred_new(const char *extra_ca_file,
					       bool verify, char *err,
					       size_t errlen)
{
	init_priority();
	drp_tls_client_cred_t *c = DRP_NEW(drp_tls_client_cred_t);
	c->verify = verify;
	int r = gnutls_certificate_allocate_credentials(&c->cred);
	if (r < 0)
		goto fail;
	r = gnutls_certificate_set_x509_system_trust(c->cred);
	if (r < 0)
		drp_log_warning(DRP_LOG_TLS,
				"system trust store not loaded: (%d) %s", r,
				gnutls_strerror_name(r));
	if (extra_ca_file && *extra_ca_file) {
		r = gnutls_certificate_set_x509_trust_file(
			c->cred, extra_ca_file, GNUTLS_X509_FMT_PEM);
		if (r <= 0) {
			snprintf(err, errlen, "upstream_ca_file %s: %s",
				 extra_ca_file,
				 r == 0 ? "no certificate found"
					: gnutls_strerror(r));
			drp_tls_client_cred_free(c);
			return NULL;
		}
	}
	return c;
fail:
	snprintf(err, errlen, "TLS credentials: (%d) %s", r,
		 gnutls_strerror_name(r));
	drp_tls_client_cred_free(c);
	return NULL;
}

void drp_tls_client_cred_free(drp_tls_client_cred_t *c)
{
	if (c == NULL)
		return;
	if (c->cred)
		gnutls_certificate_free_credentials(c->cred);
	free(c);
}

static void set_err(drp_tls_t *t, int r)
{
	t->last_err = r;
	snprintf(t->err, sizeof(t->err), "(%d) %s", r, gnutls_strerror_name(r));
}

static int post_client_hello_cb(gnutls_session_t s)
{
	drp_tls_t *t = gnutls_session_get_ptr(s);
	size_t len = sizeof(t->sni) - 1;
	unsigned type = 0;
	if (gnutls_server_name_get(s, t->sni, &len, &type, 0) == 0 &&
	    type == GNUTLS_NAME_DNS) {
		t->sni[len] = '\0';
		for (size_t i = 0; i < len; i++)
			t->sni[i] = (char)tolower((unsigned char)t->sni[i]);
		if (len > 0 && t->sni[len - 1] == '.')
			t->sni[len - 1] = '\0';
	} else {
		t->sni[0] = '\0';
	}
	return 0;
}

/* Transport: replay bytes the caller read before TLS started (a client may
 * send its ClientHello right behind CONNECT), then the socket. */
#define RA_SIZE (64 * 1024)

/* The thread's read buffer of server sessions (below). */
static __thread char *tl_ra;

/*
 * Server sessions, after the handshake: a client's request is one small
 * record, which GnuTLS pulls as a header and then a body, two recv(2);
 * one recv into the thread's buffer gets both (and whatever the client
 * pipelined). What GnuTLS did not take yet is kept in an allocation of
 * its own size, freed once taken, so that an idle connection holds no
 * buffer (10,000 of them must stay small).
 */
static ssize_t server_pull(drp_tls_t *t, void *buf, size_t len)
{
	if (t->ra_off == t->ra_len) {
		if (tl_ra == NULL)
			tl_ra = drp_malloc(RA_SIZE);
		ssize_t r = recv(t->fd, tl_ra, RA_SIZE, 0);
		t->drained = r < RA_SIZE;
		if (r <= 0) {
			if (r < 0)
				gnutls_transport_set_errno(t->s, errno);
			return r;
		}
		size_t n = (size_t)r < len ? (size_t)r : len;
		memcpy(buf, tl_ra, n);
		if ((size_t)r > n) {
			free(t->ra);
			t->ra_len = (size_t)r - n;
			t->ra = drp_malloc(t->ra_len);
			memcpy(t->ra, tl_ra + n, t->ra_len);
			t->ra_off = 0;
		}
		return (ssize_t)n;
	}
	size_t n = t->ra_len - t->ra_off;
	if (n > len)
		n = len;
	memcpy(buf, t->ra + t->ra_off, n);
	t->ra_off += n;
	if (t->ra_off == t->ra_len) {
		free(t->ra);
		t->ra = NULL;
		t->ra_off = t->ra_len = 0;
	}
	return (ssize_t)n;
}

static ssize_t pull_cb(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	drp_tls_t *t = p;
	if (t->pre_off < t->pre_len) {
		size_t n = t->pre_len - t->pre_off;
		if (n > len)
			n = len;
		memcpy(buf, t->pre + t->pre_off, n);
		t->pre_off += n;
		return (ssize_t)n;
	}
	if (t->server && t->hs_done && len < RA_SIZE)
		return server_pull(t, buf, len);
	if (!t->server && len < RA_SIZE) {
		if (t->ra_off == t->ra_len) {
			if (t->ra == NULL)
				t->ra = drp_malloc(RA_SIZE);
			ssize_t r = recv(t->fd, t->ra, RA_SIZE, 0);
			if (r <= 0) {
				if (r < 0)
					gnutls_transport_set_errno(t->s, errno);
				return r;
			}
			t->ra_len = (size_t)r;
			t->ra_off = 0;
		}
		size_t n = t->ra_len - t->ra_off;
		if (n > len)
			n = len;
		memcpy(buf, t->ra + t->ra_off, n);
		t->ra_off += n;
		return (ssize_t)n;
	}
	ssize_t r = recv(t->fd, buf, len, 0);
	t->drained = false; /* unknown */
	if (r < 0)
		gnutls_transport_set_errno(t->s, errno);
	if (r > 0 && t->server && !t->hs_done) {
		const unsigned char *b = buf;
		size_t keep = sizeof(t->tail);
		for (size_t i = (size_t)r > keep ? (size_t)r - keep : 0;
		     i < (size_t)r; i++) {
			if (t->tail_len == keep) {
				memmove(t->tail, t->tail + 1, keep - 1);
				t->tail_len--;
			}
			t->tail[t->tail_len++] = b[i];
		}
	}
	return r;
}

#define BATCH_SIZE (256 * 1024)

/* One batch buffer per thread (a session belongs to one thread, and a
 * batch never outlives the drp_tls_write that filled it). */
static __thread char *tl_batch;

static int send_all(drp_tls_t *t, const char *p, size_t len, size_t *sent)
{
	*sent = 0;
	while (*sent < len) {
		ssize_t r = send(t->fd, p + *sent, len - *sent, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		}
		*sent += (size_t)r;
	}
	return 0;
}

/* Send what an earlier write left over: 0 when nothing is left. */
static int send_rest(drp_tls_t *t)
{
	if (t->rest_off == t->rest_len)
		return 0;
	size_t sent;
	int r = send_all(t, t->rest + t->rest_off, t->rest_len - t->rest_off,
			 &sent);
	t->rest_off += sent;
	if (t->rest_off == t->rest_len) {
		free(t->rest);
		t->rest = NULL;
		t->rest_off = t->rest_len = 0;
	}
	return r;
}

/* Send the batch; what the socket does not take moves to rest. */
static int send_batch(drp_tls_t *t)
{
	size_t sent;
	int r = send_all(t, t->batch, t->batch_len, &sent);
	if (sent < t->batch_len && (r == 0 || r == -EAGAIN)) {
		/* rest is empty here: a batch starts only behind nothing */
		size_t left = t->batch_len - sent;
		t->rest = drp_malloc(left);
		memcpy(t->rest, t->batch + sent, left);
		t->rest_len = left;
		t->rest_off = 0;
	}
	t->batch_len = 0;
	return r;
}

static ssize_t push_iov(drp_tls_t *t, const giovec_t *iov, int iovcnt)
{
	size_t total = 0;
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	/* Bytes left over by an earlier write go first. */
	int r = send_rest(t);
	if (r < 0)
		goto fail;
	if (t->batch && t->batch_len + total > BATCH_SIZE) {
		r = send_batch(t);
		if (r < 0)
			goto fail;
	}
	if (t->batch && total <= BATCH_SIZE) {
		for (int i = 0; i < iovcnt; i++) {
			memcpy(t->batch + t->batch_len, iov[i].iov_base,
			       iov[i].iov_len);
			t->batch_len += iov[i].iov_len;
		}
		return (ssize_t)total;
	}
	struct msghdr mh = {.msg_iov = (struct iovec *)(void *)(uintptr_t)iov,
			    .msg_iovlen = (size_t)iovcnt};
	ssize_t n = sendmsg(t->fd, &mh, MSG_NOSIGNAL);
	if (n < 0)
		gnutls_transport_set_errno(t->s, errno);
	return n;
fail:
	gnutls_transport_set_errno(t->s, r == -EAGAIN ? EAGAIN : -r);
	return -1;
}

static ssize_t push_cb(gnutls_transport_ptr_t p, const void *buf, size_t len)
{
	giovec_t iov = {.iov_base = (void *)(uintptr_t)buf, .iov_len = len};
	return push_iov(p, &iov, 1);
}

static ssize_t vec_push_cb(gnutls_transport_ptr_t p, const giovec_t *iov,
			   int iovcnt)
{
	return push_iov(p, iov, iovcnt);
}

static void set_transport(drp_tls_t *t, int fd)
{
	t->fd = fd;
	gnutls_transport_set_ptr(t->s, t);
	gnutls_transport_set_pull_function(t->s, pull_cb);
	gnutls_transport_set_push_function(t->s, push_cb);
	gnutls_transport_set_vec_push_function(t->s, vec_push_cb);
}

void drp_tls_set_prefix(drp_tls_t *t, const char *pre, size_t len)
{
	t->pre = pre;
	t->pre_len = len;
	t->pre_off = 0;
}

static const gnutls_datum_t alpn_http11 = {(unsigned char *)"http/1.1", 8};

drp_tls_t *drp_tls_server_new(int fd, void *cert_cred)
{
	init_priority();
	drp_tls_t *t = DRP_NEW(drp_tls_t);
	t->server = true;
	if (gnutls_init(&t->s, GNUTLS_SERVER | GNUTLS_NONBLOCK |
				       GNUTLS_NO_SIGNAL) < 0) {
		free(t);
		return NULL;
	}
	gnutls_session_set_ptr(t->s, t);
	gnutls_priority_set(t->s, prio);
	gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE,
			       (gnutls_certificate_credentials_t)cert_cred);
	gnutls_alpn_set_protocols(t->s, &alpn_http11, 1, 0);
	gnutls_handshake_set_post_client_hello_function(t->s,
							post_client_hello_cb);
	set_transport(t, fd);
	return t;
}

drp_tls_t *drp_tls_client_new(int fd, const drp_tls_client_cred_t *cred,
			      const char *host)
{
	init_priority();
	drp_tls_t *t = DRP_NEW(drp_tls_t);
	if (gnutls_init(&t->s, GNUTLS_CLIENT | GNUTLS_NONBLOCK |
				       GNUTLS_NO_SIGNAL) < 0) {
		free(t);
		return NULL;
	}
	snprintf(t->host, sizeof(t->host), "%s", host);
	t->verify = cred->verify;
	gnutls_session_set_ptr(t->s, t);
	gnutls_priority_set(t->s, prio);
	gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, cred->cred);
	gnutls_alpn_set_protocols(t->s, &alpn_http11, 1, 0);
	bool is_ip = strchr(host, ':') != NULL ||
		     strspn(host, "0123456789.") == strlen(host);
	if (!is_ip)
		gnutls_server_name_set(t->s, GNUTLS_NAME_DNS, host,
				       strlen(host));
	if (t->verify)
		gnutls_session_set_verify_cert(t->s, host, 0);
	set_transport(t, fd);
	return t;
}

void drp_tls_free(drp_tls_t *t)
{
	if (t == NULL)
		return;
	gnutls_deinit(t->s);
	if (t->seal)
		gnutls_aead_cipher_deinit(t->seal);
	gnutls_memset(t->seal_key, 0, sizeof(t->seal_key));
	free(t->ra);
	free(t->rest);
	free(t);
}

/* Outside drp_tls_write a session has no batch: its pushes are sends.
 * A write cut short by a fault under the bus guard (drp_bus_guard jumps
 * out of it) leaves the thread's batch behind, with records that were
 * never sent and never will be; a close_notify added to them would not
 * be sent either. (Such a session is only freed by the connection code;
 * the tests send a close_notify after a fault, see session_seal_fault.) */
static void batch_drop(drp_tls_t *t)
{
	t->batch = NULL;
	t->batch_len = 0;
}

int drp_tls_handshake(drp_tls_t *t)
{
	int r = gnutls_handshake(t->s);
	if (r == GNUTLS_E_SUCCESS) {
		t->hs_done = true;
		return 0;
	}
	if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
		return -EAGAIN;
	if (gnutls_error_is_fatal(r) == 0 &&
	    r != GNUTLS_E_WARNING_ALERT_RECEIVED)
		return -EAGAIN;
	set_err(t, r);
	if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
		unsigned status = gnutls_session_get_verify_cert_status(t->s);
		gnutls_datum_t out = {0};
		if (gnutls_certificate_verification_status_print(
			    status, GNUTLS_CRT_X509, &out, 0) == 0) {
			snprintf(t->err, sizeof(t->err),
				 "certificate verification failed for %.64s: "
				 "%.150s",
				 t->host, out.data);
			gnutls_free(out.data);
		}
	} else if (r == GNUTLS_E_FATAL_ALERT_RECEIVED ||
		   r == GNUTLS_E_WARNING_ALERT_RECEIVED) {
		t->last_alert = (int)gnutls_alert_get(t->s);
		snprintf(t->err, sizeof(t->err), "(%d) %s: alert %s", r,
			 gnutls_strerror_name(r),
			 gnutls_alert_get_name(gnutls_alert_get(t->s)));
	} else if (t->server && t->tail_len == sizeof(t->tail) &&
		   t->tail[0] == 21 && t->tail[1] == 3 && t->tail[3] == 0 &&
		   t->tail[4] == 2 && t->tail[5] == GNUTLS_AL_FATAL) {
		/* An unencrypted fatal alert record (type 21, length 2). */
		t->last_err = GNUTLS_E_FATAL_ALERT_RECEIVED;
		t->last_alert = t->tail[6];
		const char *name = gnutls_alert_get_name(
			(gnutls_alert_description_t)t->tail[6]);
		snprintf(t->err, sizeof(t->err), "(%d) %s: alert %s", r,
			 gnutls_strerror_name(r), name ? name : "unknown");
	}
	return -EPROTO;
}

ssize_t drp_tls_read(drp_tls_t *t, void *buf, size_t len)
{
	ssize_t r = gnutls_record_recv(t->s, buf, len);
	if (r >= 0)
		return r;
	if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
		return -EAGAIN;
	if (r == GNUTLS_E_PREMATURE_TERMINATION) {
		/* Peer closed without close_notify: an EOF for our purposes;
		 * HTTP framing tells whether the body was complete. */
		return 0;
	}
	if (r == GNUTLS_E_REHANDSHAKE) {
		return -EAGAIN;
	}
	set_err(t, (int)r);
	return -EPROTO;
}

/* One record per gnutls_record_send; err: its GnuTLS error. */
static ssize_t send_record(drp_tls_t *t, const char *buf, size_t len, int *err)
{
	/* After EAGAIN GnuTLS must be called again with the same data: the
	 * caller's buffer still starts with it, so replay the same length. */
	if (t->again_len && len >= t->again_len)
		len = t->again_len;
	ssize_t r = gnutls_record_send(t->s, buf, len);
	if (r >= 0) {
		t->again_len = 0;
		return r;
	}
	if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
		t->again_len = len;
	*err = (int)r;
	return -1;
}

/*
 * Sealing. GnuTLS makes each record in a buffer of its own, which the
 * push then copies into the batch: for a large body that copy (and the
 * record's allocation) is paid once per 16 KiB. A TLS 1.3 session with
 * AES-GCM seals the records of a write after its first itself, with
 * GnuTLS's cipher and the write key, IV and sequence number GnuTLS
 * exports, straight into the batch (RFC 8446 5.2-5.3): header 23 3 3
 * and the length, then AES-GCM over the data and the content type (23,
 * no padding) with the header as additional data and the IV XOR the
 * sequence number as nonce. The sequence number GnuTLS continues from is
 * set back afterwards.
 *
 * The first record of every write still goes through GnuTLS, which
 * keeps the protocol's own steps where they belong: a KeyUpdate the peer
 * asked for (answered before our next data, with a new write key, which
 * is read after that record) and GnuTLS's own limits. Far below the
 * AES-GCM record limit (2^24.5 records per key), sealing stops at
 * SEAL_SEQ_MAX records and leaves the rest to GnuTLS: GnuTLS starts its
 * own KeyUpdate when a record it made has the sequence number 2^24 - 3
 * (mod 2^24), and sealing must never skip that number.
 */
#define REC_DATA     16384 /* most data per record (2^14) */
#define REC_TAG	     16
#define REC_HEAD     5
#define REC_MAX	     (REC_HEAD + REC_DATA + 1 + REC_TAG)
#define SEAL_SEQ_MAX (UINT64_C(1) << 23)
_Static_assert(SEAL_SEQ_MAX <= 0xfffffd, "below GnuTLS's own KeyUpdate");

enum seal_state {
	SEAL_UNKNOWN = 0,
	SEAL_NEVER = -1, /* another version or cipher, a smaller record
			  * size limit, or sealing failed: GnuTLS makes
			  * every record */
	SEAL_MAYBE = 1,	 /* version and cipher fit; the record size is not
			  * known yet */
	SEAL_YES = 2,	 /* GnuTLS made a record of REC_DATA bytes */
};

static bool seal_possible(drp_tls_t *t)
{
	if (t->seal_ok == SEAL_UNKNOWN && t->hs_done) {
		gnutls_cipher_algorithm_t c = gnutls_cipher_get(t->s);
		bool ok = gnutls_protocol_get_version(t->s) == GNUTLS_TLS1_3 &&
			  (c == GNUTLS_CIPHER_AES_128_GCM ||
			   c == GNUTLS_CIPHER_AES_256_GCM);
		t->seal_ok = ok ? SEAL_MAYBE : SEAL_NEVER;
	}
	return t->seal_ok > 0;
}

/* The cipher for the current write key (a KeyUpdate changes it). */
static bool seal_key(drp_tls_t *t, const gnutls_datum_t *key)
{
	if (key->size == 0 || key->size > sizeof(t->seal_key))
		return false;
	if (t->seal && key->size == t->seal_key_len &&
	    memcmp(key->data, t->seal_key, key->size) == 0)
		return true;
	if (t->seal) {
		gnutls_aead_cipher_deinit(t->seal);
		t->seal = NULL;
	}
	gnutls_memset(t->seal_key, 0, sizeof(t->seal_key));
	t->seal_key_len = 0;
	gnutls_cipher_algorithm_t c = key->size == 16
					      ? GNUTLS_CIPHER_AES_128_GCM
					      : GNUTLS_CIPHER_AES_256_GCM;
	if (gnutls_aead_cipher_init(&t->seal, c, key) < 0) {
		t->seal = NULL;
		return false;
	}
	memcpy(t->seal_key, key->data, key->size);
	t->seal_key_len = key->size;
	return true;
}

/* Read the next record's pages while this one is sealed, one load per
 * page: a page not yet mapped is faulted in here rather than in the
 * middle of the cipher, and the first line of each is on its way when
 * the cipher gets there (the hardware prefetcher follows the rest of a
 * page, but does not cross into the next). Prefetching every line too
 * measured slower (bench/compare.sh): the burst waits on memory. */
static void touch_pages(const char *p, size_t len)
{
	const volatile char *v = p;
	for (size_t i = 0; i < len; i += 4096)
		(void)v[i];
	if (len > 0)
		(void)v[len - 1];
}

static bool seal_one(drp_tls_t *t, const unsigned char *iv, uint64_t seq,
		     const char *p, size_t n, unsigned char *out)
{
	static const unsigned char type = 23; /* application_data */
	size_t clen = n + 1 + REC_TAG;
	out[0] = 23;
	out[1] = 3;
	out[2] = 3;
	out[3] = (unsigned char)(clen >> 8);
	out[4] = (unsigned char)clen;
	unsigned char nonce[12];
	memcpy(nonce, iv, sizeof(nonce));
	for (int i = 0; i < 8; i++)
		nonce[4 + i] ^= (unsigned char)(seq >> (56 - 8 * i));
	giovec_t aad = {.iov_base = out, .iov_len = REC_HEAD};
	giovec_t in[2] = {
		{.iov_base = (void *)(uintptr_t)p, .iov_len = n},
		{.iov_base = (void *)(uintptr_t)&type, .iov_len = 1},
	};
	size_t got = clen;
	return gnutls_aead_cipher_encryptv(t->seal, nonce, sizeof(nonce), &aad,
					   1, REC_TAG, in, 2, out + REC_HEAD,
					   &got) == 0 &&
	       got == clen;
}

/* GnuTLS continues from seq: set before every send of sealed records,
 * so that whatever is on the wire is counted even if the next record's
 * read of a mapped file faults (a reused nonce would give the key
 * away). */
static void seal_commit(drp_tls_t *t, uint64_t seq)
{
	unsigned char sq[8];
	for (int i = 7; i >= 0; i--, seq >>= 8)
		sq[i] = (unsigned char)seq;
	/* Cannot fail: the write epoch was there a moment ago. */
	(void)gnutls_record_set_state(t->s, 0, sq);
}

/* Seals records of p into the batch, sending each batch as it fills,
 * until len is done or the socket is full. Returns the bytes taken;
 * *fr gets a send's error (-EAGAIN: the socket took part of a batch,
 * the rest waits in rest). Sealing given up sets SEAL_NEVER. */
static size_t seal_records(drp_tls_t *t, const char *p, size_t len, int *fr)
{
	gnutls_datum_t iv = {0}, key = {0};
	unsigned char sq[8];
	uint64_t seq = 0;
	uint64_t max = t->seal_max ? t->seal_max : SEAL_SEQ_MAX;
	if (gnutls_record_get_state(t->s, 0, NULL, &iv, &key, sq) == 0)
		for (int i = 0; i < 8; i++)
			seq = seq << 8 | sq[i];
	if (iv.size != 12 || seq >= max || !seal_key(t, &key)) {
		t->seal_ok = SEAL_NEVER;
		return 0;
	}
	size_t done = 0;
	touch_pages(p, len < REC_DATA ? len : REC_DATA);
	while (done < len) {
		if (seq >= max) {
			t->seal_ok = SEAL_NEVER;
			break;
		}
		if (t->batch_len + REC_MAX > BATCH_SIZE) {
			seal_commit(t, seq);
			*fr = send_batch(t);
			if (*fr < 0 || t->rest_len > 0)
				break;
		}
		size_t n = len - done < REC_DATA ? len - done : REC_DATA;
		size_t next = len - done - n;
		touch_pages(p + done + n, next < REC_DATA ? next : REC_DATA);
		if (!seal_one(t, iv.data, seq, p + done, n,
			      (unsigned char *)t->batch + t->batch_len)) {
			t->seal_ok = SEAL_NEVER;
			break;
		}
		seq++;
		t->batch_len += REC_HEAD + n + 1 + REC_TAG;
		t->sealed++;
		t->seal_next = seq;
		done += n;
	}
	seal_commit(t, seq);
	return done;
}

ssize_t drp_tls_write(drp_tls_t *t, const void *buf, size_t len)
{
	const char *p = buf;
	size_t done = 0;
	int err = 0;
	int fr = 0;
	if (len == 0)
		return 0;
	if (t->server) {
		if (tl_batch == NULL)
			tl_batch = drp_malloc(BATCH_SIZE);
		t->batch = tl_batch;
		t->batch_len = 0;
	}
	/* Without batching one record per call (its push is a send). */
	do {
		bool replay = t->again_len > 0;
		ssize_t r = send_record(t, p + done, len - done, &err);
		if (r <= 0)
			break;
		done += (size_t)r;
		if (!t->server || done == len || t->rest_len > 0 ||
		    !seal_possible(t))
			continue;
		/* The first record went through GnuTLS, whole (its push never
		 * keeps part of it back: it lands in the batch). Sealing
		 * starts once GnuTLS made a record of REC_DATA bytes: one made
		 * from fewer bytes than there were shows a smaller record
		 * size the client asked for (RFC 8449), which GnuTLS keeps
		 * to (a replay's length says nothing: it is the length of
		 * an earlier call). */
		if (!replay && t->seal_ok == SEAL_MAYBE)
			t->seal_ok =
				(size_t)r == REC_DATA ? SEAL_YES : SEAL_NEVER;
		if (t->seal_ok == SEAL_YES)
			done += seal_records(t, p + done, len - done, &fr);
		/* Not sealing: GnuTLS reads the rest, in a next call (its
		 * caller may read ahead first). */
		if (fr < 0 || t->rest_len > 0 || t->seal_ok != SEAL_YES)
			break;
	} while (t->server && done < len);
	if (t->server) {
		if (t->batch_len > 0 && fr == 0)
			fr = send_batch(t);
		t->batch = NULL;
	}
	if (fr < 0 && fr != -EAGAIN) {
		snprintf(t->err, sizeof(t->err), "send: %s", strerror(-fr));
		return -EPIPE;
	}
	if (done > 0)
		return (ssize_t)done;
	if (err == GNUTLS_E_AGAIN || err == GNUTLS_E_INTERRUPTED)
		return -EAGAIN;
	set_err(t, err);
	return -EPIPE;
}

/* How many of the first len bytes a write gives to GnuTLS itself (the
 * rest a TLS 1.3 AES-GCM session seals on its own). */
static size_t write_via_gnutls(drp_tls_t *t, size_t len)
{
	if (t->server && seal_possible(t) && len > REC_DATA)
		return REC_DATA;
	return len;
}

struct mapped_job {
	drp_tls_t *t;
	const char *p;
	size_t len;
	ssize_t n;
};

/* Touch every page GnuTLS itself will read first: a fault here abandons
 * nothing, where one inside GnuTLS would leave a record half-made (and
 * its buffer). The records the session seals itself read the mapping
 * under the same guard, where a fault leaves nothing behind (see
 * seal_commit). Every line is prefetched on the way: the pages are
 * cold, and the cipher's loads would otherwise wait for each line in
 * turn (the hardware prefetcher stops at page boundaries). */
static void probe_mapped(void *arg)
{
	struct mapped_job *j = arg;
	const volatile char *p = j->p;
	size_t len = write_via_gnutls(j->t, j->len);
	unsigned sum = 0;
	for (size_t i = 0; i < len; i += 4096) {
		sum += (unsigned char)p[i];
		size_t e = len - i < 4096 ? len - i : 4096;
		for (size_t k = 64; k < e; k += 64)
			__builtin_prefetch(j->p + i + k, 0, 3);
	}
	if (len)
		sum += (unsigned char)p[len - 1];
	j->n = (ssize_t)(sum & 0); /* keep the reads */
}

static void write_mapped(void *arg)
{
	struct mapped_job *j = arg;
	j->n = drp_tls_write(j->t, j->p, j->len);
}

int drp_tls_write_mapped(drp_tls_t *t, const void *buf, size_t len, ssize_t *n)
{
	struct mapped_job j = {t, buf, len, 0};
	if (drp_bus_guard(probe_mapped, &j) < 0 ||
	    drp_bus_guard(write_mapped, &j) < 0)
		return -EIO;
	*n = j.n;
	return 0;
}

uint64_t drp_tls_sealed(const drp_tls_t *t)
{
	return t->sealed;
}

uint64_t drp_tls_test_seal_cap(drp_tls_t *t, uint64_t records)
{
	unsigned char sq[8];
	uint64_t seq = 0;
	if (gnutls_record_get_state(t->s, 0, NULL, NULL, NULL, sq) == 0)
		for (int i = 0; i < 8; i++)
			seq = seq << 8 | sq[i];
	t->seal_max =
		seq + records < SEAL_SEQ_MAX ? seq + records : SEAL_SEQ_MAX;
	return t->seal_max;
}

uint64_t drp_tls_test_seal_next(const drp_tls_t *t)
{
	return t->seal_next;
}

void drp_tls_thread_done(void)
{
	free(tl_batch);
	tl_batch = NULL;
	free(tl_ra);
	tl_ra = NULL;
}

bool drp_tls_out_pending(const drp_tls_t *t)
{
	return t->rest_off < t->rest_len;
}

int drp_tls_flush(drp_tls_t *t)
{
	int r = send_rest(t);
	if (r < 0 && r != -EAGAIN)
		snprintf(t->err, sizeof(t->err), "send: %s", strerror(-r));
	return r;
}

void drp_tls_bye(drp_tls_t *t)
{
	batch_drop(t);
	(void)gnutls_bye(t->s, GNUTLS_SHUT_WR);
}

size_t drp_tls_pending(drp_tls_t *t)
{
	return gnutls_record_check_pending(t->s) + (t->ra_len - t->ra_off);
}

bool drp_tls_drained(drp_tls_t *t)
{
	return t->drained && drp_tls_pending(t) == 0;
}

bool drp_tls_want_write(drp_tls_t *t)
{
	return gnutls_record_get_direction(t->s) == 1;
}

const char *drp_tls_sni(drp_tls_t *t)
{
	return t->sni;
}

enum drp_tls_fail drp_tls_fail_kind(const drp_tls_t *t)
{
	switch (t->last_err) {
	case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
	case GNUTLS_E_CERTIFICATE_ERROR:
		return DRP_TLS_FAIL_CERTIFICATE;
	case GNUTLS_E_PREMATURE_TERMINATION:
	case GNUTLS_E_PULL_ERROR:
	case GNUTLS_E_PUSH_ERROR:
		return DRP_TLS_FAIL_CLOSED;
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		break;
	default:
		return DRP_TLS_FAIL_PROTOCOL;
	}
	switch (t->last_alert) {
	case GNUTLS_A_BAD_CERTIFICATE:
	case GNUTLS_A_UNSUPPORTED_CERTIFICATE:
	case GNUTLS_A_CERTIFICATE_REVOKED:
	case GNUTLS_A_CERTIFICATE_EXPIRED:
	case GNUTLS_A_CERTIFICATE_UNKNOWN:
	case GNUTLS_A_UNKNOWN_CA:
		return DRP_TLS_FAIL_CERTIFICATE;
	default:
		return DRP_TLS_FAIL_PROTOCOL;
	}
}

const char *drp_tls_error(drp_tls_t *t)
{
	return t->err[0] ? t->err : "unknown TLS error";
}
