/* SPDX-License-Identifier: MIT */
/*
 * The proxy's certificate authority and forged leaf certificates.
 *
 * CA: ECDSA P-256 (or RSA if an existing RSA CA is found) key in
 * <ca_dir>/ca.key (mode 0600) and certificate in <ca_dir>/ca.crt (PEM),
 * created on first start (directory created 0700 if missing): subject
 * "CN=docker-registry-proxy CA <hostname>
 * <YYYY-MM-DD>,O=docker-registry-proxy", CA:TRUE (critical), keyUsage
 * keyCertSign+cRLSign (critical), subject key id, validity 10 years (notBefore
 * backdated 1 day). Reused on later starts; a key that does not match the cert
 * is an error.
 *
 * Leaves: one ECDSA P-256 leaf key generated at drp_forge_new(), shared by
 * all leaves. Per host: SAN dNSName (or iPAddress for an IP literal), CN =
 * host, extKeyUsage serverAuth, keyUsage digitalSignature, CA:FALSE,
 * random 128-bit positive serial, notBefore = now - 1 h, notAfter = now +
 * 397 days, authority key id = CA's, signed SHA-256. Cached by host and
 * re-forged once less than 30 days of validity remain.
 *
 * Only this module touches the CA private key. Thread-safe.
 */
#ifndef DRP_TLS_CA_H
#define DRP_TLS_CA_H

#include <gnutls/gnutls.h>
#include <stddef.h>
#include <time.h>

typedef struct drp_ca drp_ca_t;

/*
 * Load <dir>/ca.key + ca.crt or create them. Blocking (disk, keygen):
 * call at start-up only. On error returns NULL and writes a message to
 * err (e.g. "ca_dir /x: Permission denied").
 */
drp_ca_t *drp_ca_open(const char *dir, char *err, size_t errlen);
/*
 * The same, for a ca.key that may be encrypted (PKCS#8, or OpenSSL's
 * traditional Proc-Type: 4,ENCRYPTED PEM, e.g. DES3): passphrase decrypts
 * it (NULL: none; an encrypted key is then an error that names the
 * ca_key_passphrase keys). A CA this call creates is never encrypted. An
 * existing ca_dir may be read-only.
 */
drp_ca_t *drp_ca_open_pass(const char *dir, const char *passphrase, char *err,
			   size_t errlen);
void drp_ca_free(drp_ca_t *ca);
/* PEM of the CA certificate (for GET /ca.crt), owned by ca. */
const char *drp_ca_pem(const drp_ca_t *ca, size_t *len);
/* "AB:CD:..." SHA-256 fingerprint of the DER cert (owned by ca). */
const char *drp_ca_fingerprint(const drp_ca_t *ca);
/* True if the CA was created by this drp_ca_open() call. */
int drp_ca_created(const drp_ca_t *ca);

typedef struct drp_forge drp_forge_t;
/* A forged leaf: refcounted, immutable, usable by many sessions at once. */
typedef struct drp_leaf {
	gnutls_certificate_credentials_t cred; /* leaf + CA chain + leaf key */
	time_t not_after;
	/* private */
	unsigned _refs;
} drp_leaf_t;

/*
 * Generates the shared leaf key (blocking, start-up). NULL on error.
 * ca must outlive f; leaves need neither once forged.
 */
drp_forge_t *drp_forge_new(drp_ca_t *ca, char *err, size_t errlen);
void drp_forge_free(drp_forge_t *f);
/*
 * Leaf for host (lower-case DNS name or IP literal); forged on first use
 * (a signature: microseconds with ECDSA, fine on a loop thread). Returns
 * a new reference (drp_leaf_unref when the session ends) or NULL.
 */
drp_leaf_t *drp_forge_get(drp_forge_t *f, const char *host);
void drp_leaf_unref(drp_leaf_t *leaf);
/*
 * Forge with explicit times (tests): always forges, replaces the cached
 * leaf for host, returns a new reference.
 */
drp_leaf_t *drp_forge_make(drp_forge_t *f, const char *host, time_t now);

/*
 * A leaf for several names at once (host names or IP literals; CN = the
 * first), not cached: the mirror's certificate (mirror_names). A new
 * reference, or NULL (logged) if a name is no host name or forging
 * failed.
 */
drp_leaf_t *drp_forge_names(drp_forge_t *f, const char *const *names,
			    unsigned n);
/*
 * A leaf from PEM files of the operator's (the certificate, with its
 * chain, and its key). Blocking (disk): start-up and reload only. NULL
 * and err filled on failure.
 */
drp_leaf_t *drp_leaf_load(const char *cert, const char *key, char *err,
			  size_t errlen);

/* Another reference to leaf (drp_leaf_unref it too). Returns leaf. */
drp_leaf_t *drp_leaf_ref(drp_leaf_t *leaf);
/*
 * At most max hosts stay cached (default 10000, at least 1); beyond that
 * the least recently used leaf leaves the cache. A session still holding
 * a reference keeps an evicted leaf alive.
 */
void drp_forge_set_cache_max(drp_forge_t *f, size_t max);
/* Number of hosts in the cache. */
size_t drp_forge_cache_count(drp_forge_t *f);

#endif
