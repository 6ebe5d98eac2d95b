/* SPDX-License-Identifier: MIT */
/*
 * Non-blocking GnuTLS sessions over a connected socket, as a server (with a
 * forged leaf) or as a client (upstream, verified). Only tls/ touches
 * GnuTLS: callers see drp_tls_t and errno-style results.
 *
 * Results of handshake/read/write: >= 0 success (bytes; 0 from read = clean
 * EOF), -EAGAIN = retry when the socket is ready in the direction that
 * drp_tls_want_write() tells, other negative = fatal (drp_tls_error()
 * describes the last one). Callers must drain drp_tls_pending() before
 * waiting for readability: decrypted records buffered inside GnuTLS never
 * wake the event loop.
 *
 * Thread: a session belongs to one worker thread. Credentials objects are
 * shared read-only by all workers.
 */
#ifndef DRP_TLS_SESSION_H
#define DRP_TLS_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct drp_tls drp_tls_t;
typedef struct drp_tls_client_cred drp_tls_client_cred_t;

/* Upstream trust: the system store plus an optional extra CA file.
 * verify=false disables verification (logged loudly at start-up by the
 * caller). NULL + err on failure. Blocking (disk): start-up/reload only. */
drp_tls_client_cred_t *drp_tls_client_cred_new(const char *extra_ca_file,
					       bool verify, char *err,
					       size_t errlen);
void drp_tls_client_cred_free(drp_tls_client_cred_t *c);

/* Server session on fd using a certificate credentials object
 * (gnutls_certificate_credentials_t passed as void * to keep GnuTLS types
 * out of callers). ALPN offers only http/1.1. */
drp_tls_t *drp_tls_server_new(int fd, void *cert_cred);
/* Bytes already read from fd that belong to the TLS stream (sent by the
 * client right behind CONNECT); consumed by the handshake. The memory must
 * stay valid until the handshake completes. */
void drp_tls_set_prefix(drp_tls_t *t, const char *pre, size_t len);
/* Client session to `host` (SNI unless an IP literal; name verified). */
drp_tls_t *drp_tls_client_new(int fd, const drp_tls_client_cred_t *cred,
			      const char *host);
void drp_tls_free(drp_tls_t *t);

int drp_tls_handshake(drp_tls_t *t);
ssize_t drp_tls_read(drp_tls_t *t, void *buf, size_t len);
/* Server sessions encrypt as much of buf as the socket takes in one call
 * and send the records in a few large send(2)s; bytes they accepted but
 * the socket did not take wait inside (drp_tls_out_pending). A write
 * that drp_bus_guard cut short (buf a mapped file that faulted) leaves
 * the session fit only for drp_tls_free: records made before the fault
 * may not have been sent. No record is ever sent with a sequence number
 * already used (the key would be exposed). */
ssize_t drp_tls_write(drp_tls_t *t, const void *buf, size_t len);
/* drp_tls_write of a mapped file's bytes, under drp_bus_guard: 0 with
 * *n drp_tls_write's result, or -EIO when reading buf faulted (a file
 * cut short); the session is then fit only for drp_tls_free. What GnuTLS
 * itself reads is touched first, where a fault leaves the session as it
 * was. */
int drp_tls_write_mapped(drp_tls_t *t, const void *buf, size_t len, ssize_t *n);
/* Records this session sealed itself. */
uint64_t drp_tls_sealed(const drp_tls_t *t);
/* Tests only: sealing stops once the write sequence number reaches its
 * current value + records (records > 0; instead of 2^23, never above
 * that), which is returned; drp_tls_test_seal_next: the sequence number
 * after the last record sealed (0 if none). */
uint64_t drp_tls_test_seal_cap(drp_tls_t *t, uint64_t records);
uint64_t drp_tls_test_seal_next(const drp_tls_t *t);
/* Accepted bytes still to be sent: wait for writability and call
 * drp_tls_flush (0 = all sent, -EAGAIN, other negative = fatal). */
bool drp_tls_out_pending(const drp_tls_t *t);
int drp_tls_flush(drp_tls_t *t);
/* A thread that wrote to server sessions is ending: free its buffer. */
void drp_tls_thread_done(void);
/* Send close_notify (best effort, non-blocking). */
void drp_tls_bye(drp_tls_t *t);
/* Bytes a read can return or decrypt without the socket: records
 * buffered inside GnuTLS, plus (client side) raw bytes read ahead. */
size_t drp_tls_pending(drp_tls_t *t);
/* A server session after the handshake: everything the socket had at
 * the last read has been taken, decrypted (drp_tls_pending is 0) and the
 * last recv(2) got less than it asked for, so the socket was empty then
 * and a further read now would most likely find nothing. */
bool drp_tls_drained(drp_tls_t *t);
/* After -EAGAIN: true if GnuTLS waits for writability. */
bool drp_tls_want_write(drp_tls_t *t);
/* Server: the SNI host name the client sent ("" if none), lower-case. */
const char *drp_tls_sni(drp_tls_t *t);
/* Human-readable reason of the last failure (verification details
 * included for client sessions). */
const char *drp_tls_error(drp_tls_t *t);

/* What the last failed handshake failed on. */
enum drp_tls_fail {
	DRP_TLS_FAIL_PROTOCOL = 0, /* anything below */
	/* A server session: the client sent a certificate alert (it does
	 * not trust the forged certificate, i.e. the proxy's CA); a client
	 * session: the upstream's certificate did not verify. */
	DRP_TLS_FAIL_CERTIFICATE = 1,
	/* The peer closed the connection without an alert. */
	DRP_TLS_FAIL_CLOSED = 2,
};
enum drp_tls_fail drp_tls_fail_kind(const drp_tls_t *t);

#endif
