/* SPDX-License-Identifier: MIT */
#include "tls/ca.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/metrics.h"
#include "util/log.h"
#include "util/mem.h"

#define DAY		   (24 * 3600)
#define CA_VALIDITY_DAYS   3652 /* ten years with their leap days */
#define CA_BACKDATE	   DAY
#define LEAF_VALIDITY_DAYS 397
#define LEAF_BACKDATE	   3600
#define LEAF_RENEW_BEFORE  (30 * DAY)
#define FORGE_CACHE_MAX	   10000
#define SERIAL_LEN	   16
#define KEYID_MAX	   64
#define CN_MAX		   64 /* ub-common-name, RFC 5280 */
#define PEM_FILE_MAX	   (1024 * 1024)
#define SUBJECT_O	   "docker-registry-proxy"
#define DNS_NAME_MAX	   253 /* longest DNS name in text form */

struct drp_ca {
	gnutls_x509_crt_t crt;
	gnutls_privkey_t key;
	/* GnuTLS does not promise that one key or certificate object may
	 * be used by several threads at once: signing and copying the CA
	 * certificate into a chain are serialized. */
	pthread_mutex_t lock;
	unsigned char ski[KEYID_MAX];
	size_t ski_len; /* 0: the CA has no subject key id */
	char *pem;
	size_t pem_len;
	char fpr[32 * 3];
	bool created;
};

struct leaf {
	drp_leaf_t pub;
	struct leaf *hnext;
	struct leaf *prev, *next; /* LRU list, most recent first */
	uint64_t hash;
	char host[];
};

struct drp_forge {
	drp_ca_t *ca;
	gnutls_x509_privkey_t key;
	unsigned char key_id[KEYID_MAX];
	size_t key_id_len;
	uint64_t seed;
	pthread_mutex_t lock; /* the cache below */
	struct leaf **buckets;
	size_t nbuckets; /* power of two */
	size_t count, max;
	struct leaf *lru_head, *lru_tail;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	if (err == NULL || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Serial numbers: positive (high bit clear) and never shorter than 16
 * bytes, so the DER encoding needs no leading zero octet. */
static int random_serial(unsigned char serial[SERIAL_LEN])
{
	int r = gnutls_rnd(GNUTLS_RND_NONCE, serial, SERIAL_LEN);
	if (r < 0)
		return r;
	serial[0] &= 0x7f;
	if (serial[0] == 0)
		serial[0] = 0x01;
	return 0;
}

/* ---- files ---- */

static int read_file(const char *path, gnutls_datum_t *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	struct stat st;
	int ret = 0;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		goto out;
	}
	if (st.st_size > PEM_FILE_MAX) {
		ret = -EFBIG;
		goto out;
	}
	size_t size = (size_t)st.st_size;
	unsigned char *data = drp_malloc(size + 1);
	size_t got = 0;
	while (got < size) {
		ssize_t n = read(fd, data + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			explicit_bzero(data, size);
			free(data);
			goto out;
		}
		got += (size_t)n;
	}
	data[size] = '\0';
	out->data = data;
	out->size = (unsigned)size;
out:
	close(fd);
	return ret;
}

static void free_secret(gnutls_datum_t *d)
{
	if (d->data != NULL) {
		explicit_bzero(d->data, d->size);
		free(d->data);
	}
	d->data = NULL;
	d->size = 0;
}

/*
 * Writes dir/name through a temporary file in the same directory, then
 * renames it: a crash never leaves a half-written key behind. The mode
 * is set with fchmod so the umask cannot widen or narrow it.
 */
static int write_file_atomic(const char *dir, const char *name,
			     const void *data, size_t len, mode_t mode)
{
	char tmp[PATH_MAX], path[PATH_MAX];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, name) >=
		    sizeof(tmp) ||
	    (size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >=
		    sizeof(path))
		return -ENAMETOOLONG;
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int ret = 0;
	if (fchmod(fd, mode) < 0) {
		ret = -errno;
		goto fail;
	}
	const char *p = data;
	size_t left = len;
	while (left > 0) {
		ssize_t n = write(fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto fail;
		}
		p += n;
		left -= (size_t)n;
	}
	if (fsync(fd) < 0) {
		ret = -errno;
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		ret = -errno;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		ret = -errno;
		goto fail;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return ret;
}

static void sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

/* mkdir -p: parents get the usual 0755, the CA directory itself 0700. */
static int make_dir(const char *dir)
{
	if (mkdir(dir, 0700) == 0)
		return chmod(dir, 0700) < 0 ? -errno : 0;
	if (errno == EEXIST) {
		struct stat st;
		if (stat(dir, &st) < 0)
			return -errno;
		return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
	}
	if (errno != ENOENT)
		return -errno;
	char path[PATH_MAX];
	if ((size_t)snprintf(path, sizeof(path), "%s", dir) >= sizeof(path))
		return -ENAMETOOLONG;
	for (char *s = path + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		/* The mode is set explicitly: under a umask such as 077 or
		 * 0777 (package builds, services) mkdir's would leave a
		 * parent only root could traverse. */
		if (mkdir(path, 0755) == 0) {
			if (chmod(path, 0755) < 0)
				return -errno;
		} else if (errno != EEXIST) {
			return -errno;
		}
		*s = '/';
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	return chmod(dir, 0700) < 0 ? -errno : 0;
}

/* 1 if path exists, 0 if not, -errno if we cannot tell. */
static int file_exists(const char *path)
{
	struct stat st;
	if (lstat(path, &st) == 0)
		return 1;
	return errno == ENOENT ? 0 : -errno;
}

/* ---- the CA ---- */

static int ca_generate(const char *dir, char *err, size_t errlen)
{
	gnutls_x509_privkey_t xkey = NULL;
	gnutls_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t key_pem = {NULL, 0}, crt_pem = {NULL, 0};
	unsigned char serial[SERIAL_LEN], keyid[KEYID_MAX];
	size_t keyid_len = sizeof(keyid);
	const char *what;
	int r;

	what = "generating the CA key";
	if ((r = gnutls_x509_privkey_init(&xkey)) < 0 ||
	    (r = gnutls_x509_privkey_generate(
		     xkey, GNUTLS_PK_ECDSA,
		     GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0)) < 0)
		goto gnutls_fail;
	what = "exporting the CA key";
	if ((r = gnutls_x509_privkey_export2_pkcs8(xkey, GNUTLS_X509_FMT_PEM,
						   NULL, GNUTLS_PKCS_PLAIN,
						   &key_pem)) < 0)
		goto gnutls_fail;

	char host[256] = "localhost";
	if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	char cn[512];
	snprintf(cn, sizeof(cn), "docker-registry-proxy CA %s %04d-%02d-%02d",
		 host, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
	/* A very long host name must not push the CN past its limit. */
	if (strlen(cn) > CN_MAX)
		snprintf(cn, sizeof(cn),
			 "docker-registry-proxy CA %.*s %04d-%02d-%02d",
			 CN_MAX - 36, host, tm.tm_year + 1900, tm.tm_mon + 1,
			 tm.tm_mday);

	what = "building the CA certificate";
	if ((r = random_serial(serial)) < 0 ||
	    (r = gnutls_x509_crt_init(&crt)) < 0 ||
	    (r = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
	    (r = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial))) < 0 ||
	    (r = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME,
					       0, cn, strlen(cn))) < 0 ||
	    (r = gnutls_x509_crt_set_dn_by_oid(
		     crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0, SUBJECT_O,
		     strlen(SUBJECT_O))) < 0 ||
	    (r = gnutls_x509_crt_set_activation_time(crt, now - CA_BACKDATE)) <
		    0 ||
	    (r = gnutls_x509_crt_set_expiration_time(
		     crt, now + (time_t)CA_VALIDITY_DAYS * DAY)) < 0 ||
	    (r = gnutls_x509_crt_set_key(crt, xkey)) < 0 ||
	    (r = gnutls_x509_crt_set_basic_constraints(crt, 1, -1)) < 0 ||
	    (r = gnutls_x509_crt_set_key_usage(
		     crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN)) <
		    0 ||
	    (r = gnutls_x509_crt_get_key_id(crt, 0, keyid, &keyid_len)) < 0 ||
	    (r = gnutls_x509_crt_set_subject_key_id(crt, keyid, keyid_len)) < 0)
		goto gnutls_fail;
	what = "signing the CA certificate";
	if ((r = gnutls_privkey_init(&key)) < 0 ||
	    (r = gnutls_privkey_import_x509(key, xkey, 0)) < 0 ||
	    (r = gnutls_x509_crt_privkey_sign(crt, crt, key, GNUTLS_DIG_SHA256,
					      0)) < 0 ||
	    (r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &crt_pem)) <
		    0)
		goto gnutls_fail;

	/* Both files are complete on disk before either name appears, so
	 * only a crash between the two renames leaves one of them alone. */
	r = write_file_atomic(dir, "ca.key", key_pem.data, key_pem.size, 0600);
	if (r < 0) {
		seterr(err, errlen, "ca_dir %s: writing ca.key: %s", dir,
		       strerror(-r));
		goto out;
	}
	r = write_file_atomic(dir, "ca.crt", crt_pem.data, crt_pem.size, 0644);
	if (r < 0) {
		seterr(err, errlen, "ca_dir %s: writing ca.crt: %s", dir,
		       strerror(-r));
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/ca.key", dir);
		unlink(path);
		goto out;
	}
	sync_dir(dir);
	r = 0;
	goto out;

gnutls_fail:
	seterr(err, errlen, "ca_dir %s: %s: (%d) %s", dir, what, r,
	       gnutls_strerror_name(r));
out:
	free_secret(&key_pem);
	gnutls_free(crt_pem.data);
	if (crt != NULL)
		gnutls_x509_crt_deinit(crt);
	if (key != NULL)
		gnutls_privkey_deinit(key);
	if (xkey != NULL)
		gnutls_x509_privkey_deinit(xkey);
	return r < 0 ? -1 : 0;
}

static int key_matches(gnutls_privkey_t key, gnutls_x509_crt_t crt)
{
	gnutls_pubkey_t pub = NULL;
	unsigned char a[KEYID_MAX], b[KEYID_MAX];
	size_t alen = sizeof(a), blen = sizeof(b);
	int ok = 0;
	if (gnutls_pubkey_init(&pub) < 0)
		return 0;
	if (gnutls_pubkey_import_privkey(pub, key, 0, 0) == 0 &&
	    gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA256, a, &alen) ==
		    0 &&
	    gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, b,
				       &blen) == 0)
		ok = alen == blen && memcmp(a, b, alen) == 0;
	gnutls_pubkey_deinit(pub);
	return ok;
}

static bool pem_encrypted(const gnutls_datum_t *pem)
{
	return memmem(pem->data, pem->size, "ENCRYPTED", 9) != NULL;
}

static int ca_load(drp_ca_t *ca, const char *dir, const char *key_path,
		   const char *crt_path, const char *passphrase, char *err,
		   size_t errlen)
{
	gnutls_datum_t key_pem = {NULL, 0}, crt_pem = {NULL, 0};
	int r = read_file(key_path, &key_pem);
	if (r < 0) {
		seterr(err, errlen, "ca_dir %s: ca.key: %s", dir, strerror(-r));
		goto fail;
	}
	r = read_file(crt_path, &crt_pem);
	if (r < 0) {
		seterr(err, errlen, "ca_dir %s: ca.crt: %s", dir, strerror(-r));
		goto fail;
	}
	bool encrypted = pem_encrypted(&key_pem);
	if (encrypted && (passphrase == NULL || passphrase[0] == '\0')) {
		seterr(err, errlen,
		       "ca_dir %s: ca.key is encrypted: set ca_key_passphrase "
		       "or ca_key_passphrase_file",
		       dir);
		goto fail;
	}
	/* An encrypted key: PKCS#8 ("ENCRYPTED PRIVATE KEY", what OpenSSL
	 * 3 writes) or OpenSSL's traditional "Proc-Type: 4,ENCRYPTED" with
	 * DEK-Info (older images' `openssl genrsa -des3`); GnuTLS decrypts
	 * both. */
	if ((r = gnutls_privkey_init(&ca->key)) < 0 ||
	    (r = gnutls_privkey_import_x509_raw(
		     ca->key, &key_pem, GNUTLS_X509_FMT_PEM,
		     encrypted ? passphrase : NULL, 0)) < 0) {
		if (encrypted)
			seterr(err, errlen,
			       "ca_dir %s: ca.key: cannot decrypt it with the "
			       "passphrase given (wrong passphrase?): (%d) %s",
			       dir, r, gnutls_strerror_name(r));
		else
			seterr(err, errlen,
			       "ca_dir %s: ca.key: not a usable unencrypted "
			       "PEM private key: (%d) %s",
			       dir, r, gnutls_strerror_name(r));
		goto fail;
	}
	if ((r = gnutls_x509_crt_init(&ca->crt)) < 0 ||
	    (r = gnutls_x509_crt_import(ca->crt, &crt_pem,
					GNUTLS_X509_FMT_PEM)) < 0) {
		seterr(err, errlen,
		       "ca_dir %s: ca.crt: not a PEM certificate: (%d) %s", dir,
		       r, gnutls_strerror_name(r));
		goto fail;
	}

	int pk = gnutls_privkey_get_pk_algorithm(ca->key, NULL);
	if (pk != GNUTLS_PK_ECDSA && pk != GNUTLS_PK_RSA) {
		seterr(err, errlen,
		       "ca_dir %s: ca.key: unsupported key type %s (ECDSA or "
		       "RSA expected)",
		       dir, gnutls_pk_get_name((gnutls_pk_algorithm_t)pk));
		goto fail;
	}
	unsigned critical = 0, is_ca = 0;
	int pathlen = -1;
	r = gnutls_x509_crt_get_basic_constraints(ca->crt, &critical, &is_ca,
						  &pathlen);
	if (r < 0 || !is_ca) {
		seterr(err, errlen,
		       "ca_dir %s: ca.crt is not a CA certificate (no "
		       "basicConstraints CA:TRUE)",
		       dir);
		goto fail;
	}
	unsigned usage = 0;
	r = gnutls_x509_crt_get_key_usage(ca->crt, &usage, &critical);
	if (r >= 0 && !(usage & GNUTLS_KEY_KEY_CERT_SIGN)) {
		seterr(err, errlen,
		       "ca_dir %s: ca.crt is not a CA certificate (keyUsage "
		       "lacks keyCertSign)",
		       dir);
		goto fail;
	}
	if (!key_matches(ca->key, ca->crt)) {
		seterr(err, errlen,
		       "ca_dir %s: ca.key does not match ca.crt (restore the "
		       "pair, or remove both to create a new CA)",
		       dir);
		goto fail;
	}
	time_t now = time(NULL);
	time_t expires = gnutls_x509_crt_get_expiration_time(ca->crt);
	if (expires != (time_t)-1 && expires <= now) {
		seterr(err, errlen,
		       "ca_dir %s: ca.crt expired (remove ca.key and ca.crt to "
		       "create a new CA)",
		       dir);
		goto fail;
	}
	if (expires != (time_t)-1 &&
	    expires - now < (time_t)LEAF_VALIDITY_DAYS * DAY)
		drp_log_warning(
			DRP_LOG_TLS,
			"ca_dir %s: the CA expires in %ld days; clients "
			"will reject forged certificates after that",
			dir, (long)((expires - now) / DAY));
	struct stat st;
	if (stat(key_path, &st) == 0 && (st.st_mode & 077) != 0)
		drp_log_warning(
			DRP_LOG_TLS,
			"ca_dir %s: ca.key is accessible to other users "
			"(mode %04o), it should be 0600",
			dir, (unsigned)(st.st_mode & 07777));

	ca->ski_len = sizeof(ca->ski);
	if (gnutls_x509_crt_get_subject_key_id(ca->crt, ca->ski, &ca->ski_len,
					       &critical) < 0)
		ca->ski_len = 0;

	unsigned char fp[32];
	size_t fplen = sizeof(fp);
	if ((r = gnutls_x509_crt_get_fingerprint(ca->crt, GNUTLS_DIG_SHA256, fp,
						 &fplen)) < 0) {
		seterr(err, errlen, "ca_dir %s: ca.crt fingerprint: (%d) %s",
		       dir, r, gnutls_strerror_name(r));
		goto fail;
	}
	for (size_t i = 0; i < fplen; i++)
		snprintf(ca->fpr + 3 * i, sizeof(ca->fpr) - 3 * i,
			 i + 1 < fplen ? "%02X:" : "%02X", fp[i]);

	/* Served as re-encoded PEM: whatever else ca.crt holds (comments,
	 * a second certificate) is not the CA clients should trust. */
	gnutls_datum_t pem = {NULL, 0};
	if ((r = gnutls_x509_crt_export2(ca->crt, GNUTLS_X509_FMT_PEM, &pem)) <
	    0) {
		seterr(err, errlen, "ca_dir %s: ca.crt export: (%d) %s", dir, r,
		       gnutls_strerror_name(r));
		goto fail;
	}
	ca->pem = drp_strndup((const char *)pem.data, pem.size);
	ca->pem_len = pem.size;
	gnutls_free(pem.data);

	free_secret(&key_pem);
	free(crt_pem.data);
	return 0;
fail:
	free_secret(&key_pem);
	free(crt_pem.data);
	return -1;
}

drp_ca_t *drp_ca_open(const char *dir, char *err, size_t errlen)
{
	return drp_ca_open_pass(dir, NULL, err, errlen);
}

drp_ca_t *drp_ca_open_pass(const char *dir, const char *passphrase, char *err,
			   size_t errlen)
{
	if (dir == NULL || dir[0] == '\0') {
		seterr(err, errlen, "ca_dir: empty path");
		return NULL;
	}
	int r = make_dir(dir);
	if (r < 0) {
		seterr(err, errlen, "ca_dir %s: %s", dir, strerror(-r));
		return NULL;
	}
	char key_path[PATH_MAX], crt_path[PATH_MAX];
	if ((size_t)snprintf(key_path, sizeof(key_path), "%s/ca.key", dir) >=
		    sizeof(key_path) ||
	    (size_t)snprintf(crt_path, sizeof(crt_path), "%s/ca.crt", dir) >=
		    sizeof(crt_path)) {
		seterr(err, errlen, "ca_dir %s: %s", dir,
		       strerror(ENAMETOOLONG));
		return NULL;
	}
	int has_key = file_exists(key_path);
	if (has_key < 0) {
		seterr(err, errlen, "ca_dir %s: ca.key: %s", dir,
		       strerror(-has_key));
		return NULL;
	}
	int has_crt = file_exists(crt_path);
	if (has_crt < 0) {
		seterr(err, errlen, "ca_dir %s: ca.crt: %s", dir,
		       strerror(-has_crt));
		return NULL;
	}
	/* Never pair a new key with an old certificate or the reverse:
	 * clients that trust the old CA would silently stop working. */
	if (has_key != has_crt) {
		seterr(err, errlen,
		       "ca_dir %s: %s exists but %s does not (restore it, or "
		       "remove %s to create a new CA)",
		       dir, has_key ? "ca.key" : "ca.crt",
		       has_key ? "ca.crt" : "ca.key",
		       has_key ? "ca.key" : "ca.crt");
		return NULL;
	}
	bool created = false;
	if (!has_key) {
		if (ca_generate(dir, err, errlen) < 0)
			return NULL;
		created = true;
	}
	drp_ca_t *ca = DRP_NEW(drp_ca_t);
	ca->created = created;
	drp_require(pthread_mutex_init(&ca->lock, NULL) == 0);
	if (ca_load(ca, dir, key_path, crt_path, passphrase, err, errlen) < 0) {
		drp_ca_free(ca);
		return NULL;
	}
	return ca;
}

void drp_ca_free(drp_ca_t *ca)
{
	if (ca == NULL)
		return;
	if (ca->crt != NULL)
		gnutls_x509_crt_deinit(ca->crt);
	if (ca->key != NULL)
		gnutls_privkey_deinit(ca->key);
	pthread_mutex_destroy(&ca->lock);
	free(ca->pem);
	free(ca);
}

const char *drp_ca_pem(const drp_ca_t *ca, size_t *len)
{
	if (len != NULL)
		*len = ca->pem_len;
	return ca->pem;
}

const char *drp_ca_fingerprint(const drp_ca_t *ca)
{
	return ca->fpr;
}

int drp_ca_created(const drp_ca_t *ca)
{
	return ca->created;
}

/*
 * Signs crt with the CA key and builds credentials holding crt, the CA
 * certificate and key (copied by GnuTLS). Everything that reads the CA
 * objects runs under ca->lock.
 */
static int ca_sign_leaf(drp_ca_t *ca, gnutls_x509_crt_t crt,
			gnutls_x509_privkey_t key,
			gnutls_certificate_credentials_t *cred,
			const char **what)
{
	gnutls_certificate_credentials_t c = NULL;
	gnutls_x509_crt_t parsed = NULL;
	gnutls_datum_t der = {NULL, 0};
	int r;
	pthread_mutex_lock(&ca->lock);
	*what = "setting the authority key id";
	if (ca->ski_len > 0 && (r = gnutls_x509_crt_set_authority_key_id(
					crt, ca->ski, ca->ski_len)) < 0)
		goto out;
	*what = "signing";
	if ((r = gnutls_x509_crt_privkey_sign(crt, ca->crt, ca->key,
					      GNUTLS_DIG_SHA256, 0)) < 0)
		goto out;
	/* A certificate built in memory lacks the cached raw issuer name
	 * GnuTLS uses to order a chain: without a round trip through DER
	 * it would not see the CA as the leaf's issuer and would drop it. */
	*what = "building credentials";
	if ((r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der)) < 0 ||
	    (r = gnutls_x509_crt_init(&parsed)) < 0 ||
	    (r = gnutls_x509_crt_import(parsed, &der, GNUTLS_X509_FMT_DER)) < 0)
		goto out;
	gnutls_x509_crt_t chain[2] = {parsed, ca->crt};
	if ((r = gnutls_certificate_allocate_credentials(&c)) < 0)
		goto out;
	if ((r = gnutls_certificate_set_x509_key(c, chain, 2, key)) < 0) {
		gnutls_certificate_free_credentials(c);
		goto out;
	}
	*cred = c;
out:
	pthread_mutex_unlock(&ca->lock);
	if (parsed != NULL)
		gnutls_x509_crt_deinit(parsed);
	gnutls_free(der.data);
	return r < 0 ? r : 0;
}

/* ---- forged leaves ---- */

struct host_key {
	char name[DNS_NAME_MAX + 1];
	bool is_ip;
	unsigned char ip[16];
	size_t ip_len;
};

/*
 * Canonical cache key: IP literals (brackets allowed around IPv6) in
 * inet_ntop form, names in lower case; anything that cannot be a host
 * name is refused rather than put into a certificate.
 */
static int host_parse(const char *host, struct host_key *k)
{
	size_t len = strlen(host);
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	if (len == 0 || len > DNS_NAME_MAX)
		return -EINVAL;
	char tmp[DNS_NAME_MAX + 1];
	memcpy(tmp, host, len);
	tmp[len] = '\0';
	k->is_ip = true;
	if (inet_pton(AF_INET, tmp, k->ip) == 1) {
		k->ip_len = 4;
		inet_ntop(AF_INET, k->ip, k->name, sizeof(k->name));
		return 0;
	}
	if (inet_pton(AF_INET6, tmp, k->ip) == 1) {
		k->ip_len = 16;
		inet_ntop(AF_INET6, k->ip, k->name, sizeof(k->name));
		return 0;
	}
	k->is_ip = false;
	k->ip_len = 0;
	if (tmp[0] == '.' || tmp[0] == '-')
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)tmp[i];
		if (!isalnum(c) && c != '-' && c != '.' && c != '_')
			return -EINVAL;
		if (c == '.' && tmp[i + 1] == '.')
			return -EINVAL;
		k->name[i] = (char)tolower(c);
	}
	k->name[len] = '\0';
	return 0;
}

static uint64_t host_hash(const drp_forge_t *f, const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ f->seed;
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h ^ (h >> 29);
}

/* A leaf for the names k[0..n) (CN = the first). */
static struct leaf *leaf_forge_n(drp_forge_t *f, const struct host_key *k,
				 unsigned n, time_t now)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_certificate_credentials_t cred = NULL;
	unsigned char serial[SERIAL_LEN];
	const char *what = "building the certificate";
	int r;
	size_t namelen = strlen(k->name);
	time_t not_after = now + (time_t)LEAF_VALIDITY_DAYS * DAY;

	if ((r = random_serial(serial)) < 0 ||
	    (r = gnutls_x509_crt_init(&crt)) < 0 ||
	    (r = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
	    (r = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial))) < 0)
		goto fail;
	/* Clients match the SAN; a CN over the X.520 limit is left out
	 * rather than producing a certificate strict parsers reject. */
	if (namelen <= CN_MAX &&
	    (r = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME,
					       0, k->name, namelen)) < 0)
		goto fail;
	for (unsigned i = 0; i < n && r >= 0; i++) {
		unsigned flag = i == 0 ? GNUTLS_FSAN_SET : GNUTLS_FSAN_APPEND;
		if (k[i].is_ip)
			r = gnutls_x509_crt_set_subject_alt_name(
				crt, GNUTLS_SAN_IPADDRESS, k[i].ip, k[i].ip_len,
				flag);
		else
			r = gnutls_x509_crt_set_subject_alt_name(
				crt, GNUTLS_SAN_DNSNAME, k[i].name,
				strlen(k[i].name), flag);
	}
	if (r < 0)
		goto fail;
	if ((r = gnutls_x509_crt_set_activation_time(
		     crt, now - LEAF_BACKDATE)) < 0 ||
	    (r = gnutls_x509_crt_set_expiration_time(crt, not_after)) < 0 ||
	    (r = gnutls_x509_crt_set_key(crt, f->key)) < 0 ||
	    (r = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
	    (r = gnutls_x509_crt_set_key_usage(
		     crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
	    (r = gnutls_x509_crt_set_key_purpose_oid(
		     crt, GNUTLS_KP_TLS_WWW_SERVER, 0)) < 0 ||
	    (r = gnutls_x509_crt_set_subject_key_id(crt, f->key_id,
						    f->key_id_len)) < 0)
		goto fail;
	if ((r = ca_sign_leaf(f->ca, crt, f->key, &cred, &what)) < 0)
		goto fail;
	gnutls_x509_crt_deinit(crt);

	struct leaf *l = drp_calloc(1, sizeof(*l) + namelen + 1);
	memcpy(l->host, k->name, namelen + 1);
	l->pub.cred = cred;
	l->pub.not_after = not_after;
	l->pub._refs = 1;
	l->hash = host_hash(f, k->name);
	drp_log_debug(DRP_LOG_TLS, "forged a certificate for %s", k->name);
	return l;
fail:
	drp_log_err(DRP_LOG_TLS, "forging a certificate for %s: %s: (%d) %s",
		    k->name, what, r, gnutls_strerror_name(r));
	if (crt != NULL)
		gnutls_x509_crt_deinit(crt);
	return NULL;
}

static struct leaf *leaf_forge(drp_forge_t *f, const struct host_key *k,
			       time_t now)
{
	return leaf_forge_n(f, k, 1, now);
}

static int parse_or_log(const char *host, struct host_key *k);

drp_leaf_t *drp_forge_names(drp_forge_t *f, const char *const *names,
			    unsigned n)
{
	if (n == 0)
		return NULL;
	struct host_key *k = drp_calloc(n, sizeof(*k));
	struct leaf *l = NULL;
	for (unsigned i = 0; i < n; i++)
		if (parse_or_log(names[i], &k[i]) < 0)
			goto out;
	l = leaf_forge_n(f, k, n, time(NULL));
out:
	free(k);
	return l ? &l->pub : NULL;
}

drp_leaf_t *drp_leaf_load(const char *cert, const char *key, char *err,
			  size_t errlen)
{
	gnutls_certificate_credentials_t cred = NULL;
	int r = gnutls_certificate_allocate_credentials(&cred);
	if (r >= 0)
		r = gnutls_certificate_set_x509_key_file2(
			cred, cert, key, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (r < 0) {
		seterr(err, errlen, "%s, %s: (%d) %s", cert, key, r,
		       gnutls_strerror_name(r));
		if (cred != NULL)
			gnutls_certificate_free_credentials(cred);
		return NULL;
	}
	struct leaf *l = drp_calloc(1, sizeof(*l) + 1);
	l->pub.cred = cred;
	l->pub._refs = 1;
	return &l->pub;
}

drp_leaf_t *drp_leaf_ref(drp_leaf_t *leaf)
{
	__atomic_add_fetch(&leaf->_refs, 1, __ATOMIC_RELAXED);
	return leaf;
}

void drp_leaf_unref(drp_leaf_t *leaf)
{
	if (leaf == NULL)
		return;
	if (__atomic_sub_fetch(&leaf->_refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	struct leaf *l = DRP_CONTAINER_OF(leaf, struct leaf, pub);
	gnutls_certificate_free_credentials(l->pub.cred);
	free(l);
}

/* The functions below run with f->lock held. */

static struct leaf **bucket_of(drp_forge_t *f, uint64_t hash)
{
	return &f->buckets[hash & (f->nbuckets - 1)];
}

static struct leaf *cache_find(drp_forge_t *f, const char *name)
{
	uint64_t h = host_hash(f, name);
	for (struct leaf *l = *bucket_of(f, h); l != NULL; l = l->hnext)
		if (l->hash == h && strcmp(l->host, name) == 0)
			return l;
	return NULL;
}

static void lru_unlink(drp_forge_t *f, struct leaf *l)
{
	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		f->lru_head = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	else
		f->lru_tail = l->prev;
	l->prev = l->next = NULL;
}

static void lru_push_front(drp_forge_t *f, struct leaf *l)
{
	l->prev = NULL;
	l->next = f->lru_head;
	if (f->lru_head != NULL)
		f->lru_head->prev = l;
	f->lru_head = l;
	if (f->lru_tail == NULL)
		f->lru_tail = l;
}

/* Drops the cache's reference; sessions may still hold theirs. */
static void cache_remove(drp_forge_t *f, struct leaf *l)
{
	struct leaf **pp = bucket_of(f, l->hash);
	while (*pp != l)
		pp = &(*pp)->hnext;
	*pp = l->hnext;
	l->hnext = NULL;
	lru_unlink(f, l);
	f->count--;
	drp_leaf_unref(&l->pub);
}

static void cache_grow(drp_forge_t *f)
{
	size_t n = f->nbuckets * 2;
	struct leaf **b = drp_calloc(n, sizeof(*b));
	for (size_t i = 0; i < f->nbuckets; i++) {
		struct leaf *l = f->buckets[i];
		while (l != NULL) {
			struct leaf *next = l->hnext;
			l->hnext = b[l->hash & (n - 1)];
			b[l->hash & (n - 1)] = l;
			l = next;
		}
	}
	free(f->buckets);
	f->buckets = b;
	f->nbuckets = n;
}

/* Takes over the caller's reference to l as the cache's own. */
static void cache_insert(drp_forge_t *f, struct leaf *l)
{
	struct leaf *old = cache_find(f, l->host);
	if (old != NULL)
		cache_remove(f, old);
	if (f->count >= f->nbuckets)
		cache_grow(f);
	struct leaf **b = bucket_of(f, l->hash);
	l->hnext = *b;
	*b = l;
	lru_push_front(f, l);
	f->count++;
	while (f->count > f->max)
		cache_remove(f, f->lru_tail);
}

static bool leaf_fresh(const struct leaf *l, time_t now)
{
	return l->pub.not_after - now >= LEAF_RENEW_BEFORE;
}

drp_forge_t *drp_forge_new(drp_ca_t *ca, char *err, size_t errlen)
{
	drp_forge_t *f = DRP_NEW(drp_forge_t);
	f->ca = ca;
	f->max = FORGE_CACHE_MAX;
	f->nbuckets = 64;
	f->buckets = drp_calloc(f->nbuckets, sizeof(*f->buckets));
	drp_require(pthread_mutex_init(&f->lock, NULL) == 0);
	const char *what = "generating the leaf key";
	int r;
	if ((r = gnutls_x509_privkey_init(&f->key)) < 0 ||
	    (r = gnutls_x509_privkey_generate(
		     f->key, GNUTLS_PK_ECDSA,
		     GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0)) < 0)
		goto fail;
	what = "computing the leaf key id";
	f->key_id_len = sizeof(f->key_id);
	if ((r = gnutls_x509_privkey_get_key_id(f->key, 0, f->key_id,
						&f->key_id_len)) < 0)
		goto fail;
	what = "seeding the cache";
	if ((r = gnutls_rnd(GNUTLS_RND_NONCE, &f->seed, sizeof(f->seed))) < 0)
		goto fail;
	return f;
fail:
	seterr(err, errlen, "tls: %s: (%d) %s", what, r,
	       gnutls_strerror_name(r));
	drp_forge_free(f);
	return NULL;
}

void drp_forge_free(drp_forge_t *f)
{
	if (f == NULL)
		return;
	while (f->lru_head != NULL)
		cache_remove(f, f->lru_head);
	free(f->buckets);
	if (f->key != NULL)
		gnutls_x509_privkey_deinit(f->key);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

static int parse_or_log(const char *host, struct host_key *k)
{
	if (host_parse(host, k) == 0)
		return 0;
	/* The name came from a client: never echo control bytes. */
	char shown[DNS_NAME_MAX + 1];
	size_t i = 0;
	for (; host[i] != '\0' && i < DNS_NAME_MAX; i++)
		shown[i] = isprint((unsigned char)host[i]) ? host[i] : '?';
	shown[i] = '\0';
	drp_log_err(DRP_LOG_TLS,
		    "forging a certificate for '%s': not a host name or IP "
		    "address",
		    shown);
	return -EINVAL;
}

drp_leaf_t *drp_forge_make(drp_forge_t *f, const char *host, time_t now)
{
	struct host_key k;
	if (parse_or_log(host, &k) < 0)
		return NULL;
	struct leaf *l = leaf_forge(f, &k, now);
	if (l == NULL)
		return NULL;
	drp_leaf_ref(&l->pub); /* the caller's; the first is the cache's */
	pthread_mutex_lock(&f->lock);
	cache_insert(f, l);
	pthread_mutex_unlock(&f->lock);
	return &l->pub;
}

drp_leaf_t *drp_forge_get(drp_forge_t *f, const char *host)
{
	struct host_key k;
	if (parse_or_log(host, &k) < 0)
		return NULL;
	time_t now = time(NULL);
	pthread_mutex_lock(&f->lock);
	struct leaf *l = cache_find(f, k.name);
	if (l != NULL && leaf_fresh(l, now))
		goto hit;
	pthread_mutex_unlock(&f->lock);

	/* Signing happens outside the cache lock so that one host being
	 * forged never stalls lookups of others. */
	struct leaf *nl = leaf_forge(f, &k, now);
	if (nl == NULL)
		return NULL;
	drp_metrics_forged_certificate();
	pthread_mutex_lock(&f->lock);
	/* Another thread may have forged the same host meanwhile: every
	 * caller must end up with the cached leaf, so ours is dropped. */
	l = cache_find(f, k.name);
	if (l != NULL && leaf_fresh(l, now)) {
		drp_leaf_unref(&nl->pub);
		goto hit;
	}
	cache_insert(f, nl);
	l = nl;
hit:
	lru_unlink(f, l);
	lru_push_front(f, l);
	drp_leaf_ref(&l->pub);
	pthread_mutex_unlock(&f->lock);
	return &l->pub;
}

void drp_forge_set_cache_max(drp_forge_t *f, size_t max)
{
	pthread_mutex_lock(&f->lock);
	f->max = max > 0 ? max : 1;
	while (f->count > f->max)
		cache_remove(f, f->lru_tail);
	pthread_mutex_unlock(&f->lock);
}

size_t drp_forge_cache_count(drp_forge_t *f)
{
	pthread_mutex_lock(&f->lock);
	size_t n = f->count;
	pthread_mutex_unlock(&f->lock);
	return n;
}
