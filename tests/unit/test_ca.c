/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tls/ca.h"
#include "tls/session.h"
#include "util/busguard.h"

Suite *ca_suite(void);

#define DAY (24 * 3600)
/* Seconds the clock may move between the code under test and a check. */
#define SLACK 10

/* A fixed RSA-2048 key: generating one under valgrind takes too long. */
static const char rsa_key_pem[] =
	"-----BEGIN RSA PRIVATE KEY-----\n"
	"MIIEowIBAAKCAQEAxusirN/Urbctt4k947bHyUaZLHjXD3p4Q0XgK5abhTEfbdDC\n"
	"HLNe4vAGiV+PHzQ13Re7WjzJz0Al3nLVd1ypXgrRAaYIWhmzVrGBeX5T84YygZnM\n"
	"h0ufFv+5E4hq0a9Btswh8CtYdbP9Hn5WFak18IG3QGQ1Joqe9k2xG1SugC87WWz0\n"
	"unFJnix5/cFqsmuH9fu+rAE03WwMyRHIblCtkLD6KFmvAkkBlnM4bP8OCyq88EAv\n"
	"gIKa5SIU5k6+WFFHZpSsPWshNa7w126wuRnPTmGxrJb5Ql65AaRxrXMj+gknLR/f\n"
	"tGLtDnnr8RN0k7XVBrkCvhNU8crM5u2+hy3mQQIDAQABAoIBAGj4PFwt4fWp7J4l\n"
	"9lrsYZF9h+dH/XVVk5Eslpdp6rfmrEcvGsA6h6AKOejUXJqC2snJdDyyR2zu1Q0G\n"
	"XE+Yvme6HYFZNJ8XYOQm18RdPcAM2So7FwtuhI2GdQwxuOzeJzdnkaFDvnKegLxO\n"
	"vu6/VI+OZD2+o62rCSfA5+0cStmpIxKUwrjNE6soPm7n+zOMKUmCzvOjUrjDaS/c\n"
	"3Gb5cxmSysEBQ/u9sB5RHeUfTBwRb129xUrR22JPJDDUOGCtRat7iYKeckJ7lCrm\n"
	"U9FC0wnSEq5IoCTZFZcaoKHXCta/YW2IZXcvzsuCbR1rnh/GJEztnC49pPDAHKH/\n"
	"7gxPRIECgYEA/2A1V9gUh+u2KWzWA/s97PD88msUtgfV8mHc2nnP1VymCtB05WBg\n"
	"2Rw2ABClP53p348TGat02p4yoNRQK9VQYW/SwuJWOau/x0TYl+UVeIbWK7YUiamL\n"
	"f6+YfVGah1IVwexD2UpaTb/LQxBOET8B4YY0H+oaJYn25eFFbC6dds0CgYEAx2eZ\n"
	"4CyQa8UWQEmSy5jc+U/gPOXjgaWD2XnQ0b0mdlpBBz1GZsKkYk3Q/1jCYF/jZKPR\n"
	"VXzECa0+4EMVTZrTm9E0SLXsL3th7+fIYfcz2/xjk7LqyjgsCHbRzeSkdyDMbb6Q\n"
	"6g1CUNGawfzVw+P6r8sAWP+42cm8tVKMT6ZWZUUCgYEAn8JpPJ4yIeHk4L90l6MK\n"
	"V3tfUqyIlWQLhQmR55+C1ICUY3mLV5/WlpwecCX5qvW4RKI2Gb34aXfERnbr/LAD\n"
	"DCGvoTmFJaj7XccFFOk8aF06CLhs2r4VRfjtFaECYhuI/vs2au4n1jHhEABYRlO7\n"
	"coHJhBmo58kKiz9FdesnmRUCgYB8kK+DZtNhP2FDD7LwFLIV3FwMLuAMYUUYWgyk\n"
	"uTCJxp/Q0epkzzq5XjstCFmEsuHuQJfIe4RLNzqMBdwM+qcuM2Yh9eNxVfY8U+LN\n"
	"sAtpZSUfYylg4e4/61ns8OP8tzR9agpE67t9mTK/9B3lnUlA/+NbtYPYKToFW2fj\n"
	"admWsQKBgGu3Yuiff+V25+SiLsJEArKGor5PwraO3xIbGIMiIS5SxjJxa4LBPoji\n"
	"kaU/vUwdisRHV5fZawA9TR8HguzM7G2Jrkm1hmG4Rn6EmEzSoUJK9zpLQxTMm3yr\n"
	"Ul4RGgn7mi0jUHtbJyc3HZzgisWS7QEr0XCdZMAXDzdAnfZW/KeT\n"
	"-----END RSA PRIVATE KEY-----\n";

/* The nginx-based proxy's kind of CA: an RSA key encrypted with the
 * passphrase foobar, as `openssl genrsa -des3` wrote it (traditional
 * Proc-Type PEM) and as OpenSSL 3 writes it (PKCS#8), and its
 * certificate. */
static const char enc_trad_key[] =
	"-----BEGIN RSA PRIVATE KEY-----\n"
	"Proc-Type: 4,ENCRYPTED\n"
	"DEK-Info: DES-EDE3-CBC,0553CA135B7147EE\n"
	"\n"
	"kO+ra9R3DABU9otIpdLX9vxerRysRUybII1+/0WF+3T5oH7PW4MJOw8v62uvaRhL\n"
	"jDFdY86DpwTOH9CORkHLn+HffVbqUMBPD2Pp+aR2/N6izTo94yWRl2RstgHVt9ke\n"
	"7NDb37iJpNYJAW++7f896s4OHCMh9tbNfGjneMPYY//W1Jgnu5o/oNBJM2m/5/10\n"
	"9w6majv6CQCDO9GZLOVDP8C0C4jBfcfzI6gYMJHeSUZ/JLnsDP7hflhLjt92Vb3H\n"
	"j7qbhZnFfI/59xkaAnEWKXc9WRUz6kO8Gp/CLtMTsnTV5H9Epu5z0p5pwzydwrkk\n"
	"0Z/AYrCCzp7JmXcyGNC2s0sXJzETGt1P7DRTmnf7tzev5JC7Ai02x+WNxUcVaWUl\n"
	"URBewy8gb9YtLpxvMrKi/4zLPKPr5zyKzcD8OHS24qm5xKuIx3UpVdKYBs+W0GlA\n"
	"kf8BtTxMcD2alDAJs/Xy9K5mfAgucKkY57Fh2fDG2wo9fmyNAzSvQUfCKbZc4Os6\n"
	"gQahlV9wK44FRK/Dvfd6iuLaIq7WwGhU3P0S33BdgDarwtra4L2K9RIwADKQnXaQ\n"
	"lzfEAy7o6BbdILWKOIFMdv/InicNhPo9AcCJkhQn5nbCOqEU6MtYGOHyf/Vz9LiO\n"
	"drvAs3Bsmygm+mSIEgVWIz9eGJ+9iZNVdUMVHzag+kMsemTgunQiNhaXG1H7+CGn\n"
	"4u7hYsVGrWmLyQpLx7iaLlwpJFusHin1JUweEvUpmRx8sEX5bDPwO9fJ72momJv1\n"
	"G0TquFqDTq207gPEa1p5zdAZ1pkC2DSV7zWu5Iqso5A85sjI6I/4+Ti0np3IGCKi\n"
	"X/POI5lR7VChv+u0oMX+jeHi5IKumThrulRI4pgmcmlJRyzrhMQr5ibC0iLtX8G4\n"
	"3lqbi78Gk9hy4V2ZgK1IPxd2/UC63Pum/4xSOYF5BLnoyawFiK0JMwXOGOkT1RHs\n"
	"ZMyzSdarUwFOYrJQT8VPntV8bGBDJZnH4Sr3OHIZvjaSZPVXmCbXeAP4LFVr8K8O\n"
	"mtHCA/lfuh7nIiBhE637/AP8OphmuXzzKY4u6Kt9LFe2tAdofXB8E3Nokgpkj/y1\n"
	"rbJN4FZM920UD0GsD/egRjCcKypJWvxrAH4aMX38Rm+wVucTb6SemsI056e0Pc1+\n"
	"fW2wwdmIqR/SZJVp9Xr7KaUQIq3inWsmXwn0eSd2MsZfLwHL1ZK9jIX+SqbGcttR\n"
	"BGFyQF9VnUjPdHrduuuyPg2iCLuUYRrqq4SiFbD3PWILBqcYgDpu6+5CpBjSmWlX\n"
	"sy+xSBZI1Dxzy/uH7E+7Uysj3k86UciM68bD+6LD1Nq4MfOdd7Zq4L/MktoDVKIm\n"
	"e0+YkIn2yjF8SctezJvqd1ReddGrT/sSItPn3n2ui971zYz8fuN2Fos/zY5Ta2fI\n"
	"W1aZN9O7Ee6a3BkKxfcMFM6azQVi05NUEelPdBKUWsSGFjSM68dLEYHmhsSQk3/C\n"
	"95j5QC67veQn2BJzqTJj62TyWTxlhNFDKH1AY+iP/yL3MIDnLN9RBlZk/KRV6WcG\n"
	"byvjtCcUFdeixGSAPGYLQgRygbEGmtaU+EV5gnxF8BVbss983rU1iQ==\n"
	"-----END RSA PRIVATE KEY-----\n";
static const char enc_p8_key[] =
	"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
	"MIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQIBozW2SAfgc4CAggA\n"
	"MAwGCCqGSIb3DQIJBQAwFAYIKoZIhvcNAwcECLBScS1hCuWHBIIEyNQyVvduhr1a\n"
	"wqWSK+CFhyCkjJeC250fzLTHRBhn8OHxjk3uMYnVC+cXl6fPqz0MzLvNMpJl6kcF\n"
	"sns0zzkI19rXvD/BqMWhoTxqB5pMk/jf2xpiqZ6YVSpr11puqIGOcbW4jjj2poq/\n"
	"jJsUANgz2j3AAtzDo3kGR7YbkHIcLVDxrTTb193puJhoR4NWhzDb3anrzrnqXT0v\n"
	"iVbgaiK543tHhem3QWq7UUJAMHjuve50VQPH3IAfSWAgd8gU4UHYzcmWfT2ZwPcH\n"
	"20tkIbhET6WrtwmFCWDFN/bskclIJwmvnxN1LfDj8HewWcJASF2uBnJG/5BqeAi1\n"
	"ZBNcbhRA0LZ3HDm8aifPRZfVlG/f6eJJqOX0DjvGptpjBeHJUXW+jnn0SHFXHDwH\n"
	"n7T3PbN5gFXUXaPFyIAc4RUQOOZjWBbbnIX7/gwiFhdvZQJl23MGVPW82jRcdeiZ\n"
	"y+ub1AhmlYAuP7plZadbX+QHo7kg6PQrH65o0/GwzcRB0KmFgiCAOBpTGC68gcGP\n"
	"ML+fMh+BXlUI9FVAAS0Puahi2etTy24yna6/2e8QTfDlwuuEMsgrk7oYRhd8UEmm\n"
	"CgApKp5jQTPf63S9BlsNqz45mf9x0vU9vbUi/k3YwFb53WXlg+7zegUucXXrXQHu\n"
	"t2KtDObgFmR53jazGPGIteeNE3u7CJ7fKnXCuW6sQkj5YBfUI8hm9pldEPEDw52t\n"
	"rwOsKHLUUyugDfyDJHM25XPleHjEEx6S8F5IbN+DFwCoFQXUXC0vZ/AkEyYDYoTv\n"
	"57SNH56i6bRB1ssVypf2Z+HLUQpEb6R5fUONsrw/p57Ly5L+jerp+EkuaAHyWIGs\n"
	"E7Akp4dMMpgvp+bk/qDSRNbDOsmVvtaIo8979n2h6ks4wHHkSq8np8rmOXgegJbI\n"
	"8J/KIKrc0CPlv+UVf6TKcQhLFN+MZ1KfeaaCTmdsJZkXo5jRBxXJ/Y0ok8PrYZxo\n"
	"TYUxgBqyZdHFK9H54W0gOmEMi8kR/uRc68ArQbZCa7QN0CAjEZhzrZl4FaBSYBKf\n"
	"4+Dukj4fPCcqem4B6VGaeqiw6EdIeNmcnsbS5MkxVtVdH+wlztQ9UlNtA2e/sV/P\n"
	"Op61ASh1O6bCdXNU0pziz9d5LpI3Ung+kVnWuzfDZ1wspAml8J4ptJnaBKOckXfv\n"
	"IznMvO6skIaVZH4ZlKrC+70Z1brFu6P9eEItEicsfc5nJDVKlBYwGIwfoiLSz5T9\n"
	"WRs8h+/n8UnIUymvc2yufr+07aYWchAl51LO33GnYmGZ+UNvudo7+MD77lqqQMpZ\n"
	"1s5SLyq6n7pgugIQhyfyIFxDXd5lwvm7RW06ZKPTGWwgWkEgeoXfdLIQzE945z7m\n"
	"mJyiaxQ4dTvYz798VhqNEkIr9paSHEij3EnB4j7HM0MKRHqq/KgW055aOeU0Wckb\n"
	"JrUf5mYyX9S/OjdGAA1diUry4IgoxS2tqZe/Op+es2YyjIm0GsMUOa0GtKO2lLJ6\n"
	"ObvzD2T1oYrerhsJd51X31pP64mZ5urG5f+PbX1EAaiyLylcG7UMdBmwI4mfpxEL\n"
	"w7g80M4fpub4dIJFu3FiO9gcjucIqwnoiY4C1759+9e9n6V7o/wcqOdThfZQvEKY\n"
	"vzt7hPuVeaj2dDkngWdOPA==\n"
	"-----END ENCRYPTED PRIVATE KEY-----\n";
static const char enc_ca_crt[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIDQzCCAiugAwIBAgIUHfB3+W/oyS6wdZ+4r+RVs8b203UwDQYJKoZIhvcNAQEL\n"
	"BQAwKDEmMCQGA1UEAwwdZG9ja2VyLXJlZ2lzdHJ5LXByb3h5IENBIHRlc3QwIBcN\n"
	"MjYxMjA2MDUxNTI5WhgPMjEyNjExMTIwNTE1MjlaMCgxJjAkBgNVBAMMHWRvY2tl\n"
	"ci1yZWdpc3RyeS1wcm94eSBDQSB0ZXN0MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n"
	"MIIBCgKCAQEAnw9KVftJqpBjuvsvHzIudcAeJFm/S0RsdJ15bsK9I6D2fBrPvcFD\n"
	"sxWcItiCqzDzZVCEIeYFHL+MfTmWEbIGYB0JyLWt8GfuvNDjSfiwFXok2SgjELob\n"
	"ZSqQgSc5gbfXuLNL8NJm1aCL5+dEPYwicp6s9z8piAGmJ5kry3rt6GXFiNt769PS\n"
	"BoZCj6K2M2ax0kPXdPWSzWpHm4ypF9gss7BPqwi8lJ8NsygEpwVjkw2U1Xrjg7aj\n"
	"vKDY4A6ASArkPiT7NdcxbaXt9meSljz49iTpn3lOTVVYLGGU1zdUObWIHOghOTCT\n"
	"i5pROdN9/A3ltkjFy2cGD/OceDZz3wpItQIDAQABo2MwYTAdBgNVHQ4EFgQUC+y+\n"
	"dsdKmxDniDj7kJDKCTf9n84wHwYDVR0jBBgwFoAUC+y+dsdKmxDniDj7kJDKCTf9\n"
	"n84wDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYwDQYJKoZIhvcNAQEL\n"
	"BQADggEBAGsVL2uJXPw5VKNKTrSzBO7268sAP5NFviaKxs4fYYwFhnv3jpqtJ9Jl\n"
	"xrdF0R94aBD9jzHxVV615w4kKcI4zr31ybalAkcwPqvWerKQ7nL0pl2hLq/jZO7e\n"
	"PZpoWB9q1OH1x5O4oSUdoF5/NKDZ5muviZ8vU3tzAeHzgrSY7A16quIQ/DkC37mz\n"
	"c53TdbR7bcvXV5hljoTGcRHKhhUasUnYiL/DzzFoxdiBAjmbDQvikmfbnmrayKzN\n"
	"zLZK8912s6/+7tpwNnnNE43LwSmFflZLmXXQMpgY0TjJvjQS3pmkbXWrn7IiHlpb\n"
	"iLS3ll5QWbJS+AaBYJvmZKmFu2fe6vc=\n"
	"-----END CERTIFICATE-----\n";

static char tmpdir[PATH_MAX];

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/drp-test-ca-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static int rm_cb(const char *path, const struct stat *st, int flag,
		 struct FTW *ftw)
{
	return remove(path);
}

static void teardown(void)
{
	nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *path_in(char *buf, const char *dir, const char *name)
{
	int n = snprintf(buf, PATH_MAX, "%s/%s", dir, name);
	ck_assert(n > 0 && n < PATH_MAX);
	return buf;
}

static const char *subdir(char *buf, const char *name)
{
	return path_in(buf, tmpdir, name);
}

static drp_ca_t *open_ok(const char *dir)
{
	char err[512] = "";
	drp_ca_t *ca = drp_ca_open(dir, err, sizeof(err));
	ck_assert_msg(ca != NULL, "drp_ca_open(%s): %s", dir, err);
	return ca;
}

static gnutls_datum_t read_all(const char *path)
{
	gnutls_datum_t d = {NULL, 0};
	ck_assert_int_eq(gnutls_load_file(path, &d), 0);
	return d;
}

static void write_all(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "w");
	ck_assert_ptr_nonnull(fp);
	ck_assert_uint_eq(fwrite(data, 1, len, fp), len);
	ck_assert_int_eq(fclose(fp), 0);
}

static void copy_file(const char *from, const char *to)
{
	gnutls_datum_t d = read_all(from);
	write_all(to, d.data, d.size);
	gnutls_free(d.data);
}

static gnutls_x509_crt_t crt_from_pem(const char *pem, size_t len)
{
	gnutls_x509_crt_t crt;
	gnutls_datum_t d = {(unsigned char *)(uintptr_t)pem, (unsigned)len};
	ck_assert_int_eq(gnutls_x509_crt_init(&crt), 0);
	ck_assert_int_eq(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM),
			 0);
	return crt;
}

static gnutls_x509_crt_t ca_crt(const drp_ca_t *ca)
{
	size_t len;
	const char *pem = drp_ca_pem(ca, &len);
	return crt_from_pem(pem, len);
}

/* Certificate idx of the leaf's chain: 0 = leaf, 1 = CA. */
static gnutls_x509_crt_t chain_crt(const drp_leaf_t *leaf, unsigned idx)
{
	gnutls_datum_t der;
	gnutls_x509_crt_t crt;
	ck_assert_int_eq(
		gnutls_certificate_get_crt_raw(leaf->cred, 0, idx, &der), 0);
	ck_assert_int_eq(gnutls_x509_crt_init(&crt), 0);
	ck_assert_int_eq(gnutls_x509_crt_import(crt, &der, GNUTLS_X509_FMT_DER),
			 0);
	return crt;
}

static void assert_mode(const char *path, mode_t mode)
{
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_msg((st.st_mode & 07777) == mode, "%s: mode %04o, want %04o",
		      path, (unsigned)(st.st_mode & 07777), (unsigned)mode);
}

/* 16 bytes, positive: the high bit of the first byte is clear. */
static void assert_serial(gnutls_x509_crt_t crt, unsigned char *out)
{
	unsigned char serial[64];
	size_t len = sizeof(serial);
	ck_assert_int_eq(gnutls_x509_crt_get_serial(crt, serial, &len), 0);
	ck_assert_uint_eq(len, 16);
	ck_assert_uint_eq(serial[0] & 0x80, 0);
	ck_assert_uint_ne(serial[0], 0);
	if (out != NULL)
		memcpy(out, serial, 16);
}

static void assert_dn_oid(gnutls_x509_crt_t crt, const char *oid,
			  const char *want)
{
	char buf[512];
	size_t len = sizeof(buf);
	ck_assert_int_eq(
		gnutls_x509_crt_get_dn_by_oid(crt, oid, 0, 0, buf, &len), 0);
	ck_assert_str_eq(buf, want);
}

/* Number of extensions with this OID (duplicates are invalid). */
static int ext_count(gnutls_x509_crt_t crt, const char *oid)
{
	int n = 0;
	for (unsigned i = 0;; i++) {
		char buf[128];
		size_t len = sizeof(buf);
		int r = gnutls_x509_crt_get_extension_oid(crt, i, buf, &len);
		if (r == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		ck_assert_int_eq(r, 0);
		if (strcmp(buf, oid) == 0)
			n++;
	}
	return n;
}

/* Writes dir/ca.key and a self-signed dir/ca.crt made from key_pem. */
static void write_selfsigned(const char *dir, const char *key_pem, int is_ca)
{
	char p[PATH_MAX];
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	gnutls_datum_t kd = {(unsigned char *)(uintptr_t)key_pem,
			     (unsigned)strlen(key_pem)};
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(gnutls_x509_privkey_init(&key), 0);
	ck_assert_int_eq(
		gnutls_x509_privkey_import(key, &kd, GNUTLS_X509_FMT_PEM), 0);
	ck_assert_int_eq(gnutls_x509_crt_init(&crt), 0);
	time_t now = time(NULL);
	unsigned char serial[] = {0x01, 0x02, 0x03};
	unsigned char keyid[64];
	size_t keyid_len = sizeof(keyid);
	ck_assert_int_eq(gnutls_x509_crt_set_version(crt, 3), 0);
	ck_assert_int_eq(gnutls_x509_crt_set_serial(crt, serial, 3), 0);
	ck_assert_int_eq(gnutls_x509_crt_set_dn(crt, "CN=Test RSA CA", NULL),
			 0);
	ck_assert_int_eq(gnutls_x509_crt_set_activation_time(crt, now - DAY),
			 0);
	ck_assert_int_eq(
		gnutls_x509_crt_set_expiration_time(crt, now + 3000 * DAY), 0);
	ck_assert_int_eq(gnutls_x509_crt_set_key(crt, key), 0);
	ck_assert_int_eq(gnutls_x509_crt_set_basic_constraints(crt, is_ca, -1),
			 0);
	if (is_ca)
		ck_assert_int_eq(gnutls_x509_crt_set_key_usage(
					 crt, GNUTLS_KEY_KEY_CERT_SIGN),
				 0);
	ck_assert_int_eq(gnutls_x509_crt_get_key_id(crt, 0, keyid, &keyid_len),
			 0);
	ck_assert_int_eq(
		gnutls_x509_crt_set_subject_key_id(crt, keyid, keyid_len), 0);
	ck_assert_int_eq(
		gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0), 0);
	gnutls_datum_t pem;
	ck_assert_int_eq(
		gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem), 0);
	write_all(path_in(p, dir, "ca.crt"), pem.data, pem.size);
	write_all(path_in(p, dir, "ca.key"), key_pem, strlen(key_pem));
	ck_assert_int_eq(chmod(p, 0600), 0);
	gnutls_free(pem.data);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
}

static char *new_ecdsa_key_pem(void)
{
	gnutls_x509_privkey_t key;
	gnutls_datum_t pem;
	ck_assert_int_eq(gnutls_x509_privkey_init(&key), 0);
	ck_assert_int_eq(
		gnutls_x509_privkey_generate(
			key, GNUTLS_PK_ECDSA,
			GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
		0);
	ck_assert_int_eq(
		gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &pem), 0);
	char *s = strndup((const char *)pem.data, pem.size);
	gnutls_free(pem.data);
	gnutls_x509_privkey_deinit(key);
	return s;
}

/* ---- the CA ---- */

START_TEST(ca_create)
{
	char dir[PATH_MAX], p[PATH_MAX];
	/* A nested, missing directory; the umask is the most restrictive
	 * possible, so every mode below must come from the code itself. */
	subdir(dir, "state/ca");
	mode_t old = umask(0777);
	drp_ca_t *ca = open_ok(dir);
	umask(old);
	ck_assert_int_eq(drp_ca_created(ca), 1);
	assert_mode(dir, 0700);
	assert_mode(path_in(p, dir, "ca.key"), 0600);
	assert_mode(path_in(p, dir, "ca.crt"), 0644);
	/* No temporary files left behind. */
	int n = 0;
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		n += e->d_name[0] != '.';
	closedir(d);
	ck_assert_int_eq(n, 2);

	/* The key is an unencrypted PKCS#8 PEM file. */
	gnutls_datum_t key = read_all(path_in(p, dir, "ca.key"));
	ck_assert_int_eq(memcmp(key.data, "-----BEGIN PRIVATE KEY-----\n", 28),
			 0);
	gnutls_free(key.data);

	/* drp_ca_pem() is exactly the file's content. */
	gnutls_datum_t file = read_all(path_in(p, dir, "ca.crt"));
	size_t len;
	const char *pem = drp_ca_pem(ca, &len);
	ck_assert_uint_eq(len, file.size);
	ck_assert_int_eq(memcmp(pem, file.data, len), 0);
	ck_assert_uint_eq(strlen(pem), len);
	gnutls_x509_crt_t crt =
		crt_from_pem((const char *)file.data, file.size);
	gnutls_free(file.data);

	/* Subject and issuer: the documented, distinguishable name. */
	char host[256], want[512];
	ck_assert_int_eq(gethostname(host, sizeof(host)), 0);
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	snprintf(want, sizeof(want),
		 "docker-registry-proxy CA %s %04d-%02d-%02d", host,
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
	assert_dn_oid(crt, GNUTLS_OID_X520_COMMON_NAME, want);
	assert_dn_oid(crt, GNUTLS_OID_X520_ORGANIZATION_NAME,
		      "docker-registry-proxy");
	char subj[1024], iss[1024];
	size_t sl = sizeof(subj), il = sizeof(iss);
	ck_assert_int_eq(gnutls_x509_crt_get_dn(crt, subj, &sl), 0);
	ck_assert_int_eq(gnutls_x509_crt_get_issuer_dn(crt, iss, &il), 0);
	ck_assert_str_eq(subj, iss);

	/* CA:TRUE, critical. */
	unsigned critical = 0, is_ca = 0;
	int pathlen;
	ck_assert_int_ge(gnutls_x509_crt_get_basic_constraints(
				 crt, &critical, &is_ca, &pathlen),
			 0);
	ck_assert_uint_eq(is_ca, 1);
	ck_assert_uint_eq(critical, 1);
	/* keyUsage exactly keyCertSign + cRLSign, critical. */
	unsigned usage = 0;
	critical = 0;
	ck_assert_int_eq(gnutls_x509_crt_get_key_usage(crt, &usage, &critical),
			 0);
	ck_assert_uint_eq(usage,
			  GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN);
	ck_assert_uint_eq(critical, 1);
	/* Subject key id = the key's id. */
	unsigned char ski[64], kid[64];
	size_t ski_len = sizeof(ski), kid_len = sizeof(kid);
	ck_assert_int_eq(gnutls_x509_crt_get_subject_key_id(crt, ski, &ski_len,
							    &critical),
			 0);
	ck_assert_int_eq(gnutls_x509_crt_get_key_id(crt, 0, kid, &kid_len), 0);
	ck_assert_uint_eq(ski_len, kid_len);
	ck_assert_int_eq(memcmp(ski, kid, ski_len), 0);
	ck_assert_int_eq(ext_count(crt, "2.5.29.14"), 1);
	ck_assert_int_eq(ext_count(crt, "2.5.29.19"), 1);
	ck_assert_int_eq(ext_count(crt, "2.5.29.15"), 1);

	/* ECDSA P-256, self-signed with SHA-256, valid signature. */
	unsigned bits = 0;
	ck_assert_int_eq(gnutls_x509_crt_get_pk_algorithm(crt, &bits),
			 GNUTLS_PK_ECDSA);
	gnutls_ecc_curve_t curve;
	ck_assert_int_eq(
		gnutls_x509_crt_get_pk_ecc_raw(crt, &curve, NULL, NULL), 0);
	ck_assert_int_eq(curve, GNUTLS_ECC_CURVE_SECP256R1);
	ck_assert_int_eq(gnutls_x509_crt_get_signature_algorithm(crt),
			 GNUTLS_SIGN_ECDSA_SHA256);
	unsigned status = 1;
	ck_assert_int_eq(gnutls_x509_crt_verify(crt, &crt, 1, 0, &status), 0);
	ck_assert_uint_eq(status, 0);
	assert_serial(crt, NULL);
	ck_assert_int_eq(gnutls_x509_crt_get_version(crt), 3);

	/* Backdated one day, valid ten years from now. */
	time_t nb = gnutls_x509_crt_get_activation_time(crt);
	time_t na = gnutls_x509_crt_get_expiration_time(crt);
	ck_assert_int_le(nb, now - DAY);
	ck_assert_int_ge(nb, now - DAY - SLACK);
	ck_assert_int_eq(na - nb, 3653L * DAY);

	/* Fingerprint: SHA-256 of the DER, "AB:CD:..." upper case. */
	unsigned char fp[32];
	size_t fplen = sizeof(fp);
	ck_assert_int_eq(gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256,
							 fp, &fplen),
			 0);
	char hex[3 * 32] = "";
	for (size_t i = 0; i < 32; i++)
		snprintf(hex + 3 * i, sizeof(hex) - 3 * i,
			 i < 31 ? "%02X:" : "%02X", fp[i]);
	ck_assert_str_eq(drp_ca_fingerprint(ca), hex);
	ck_assert_uint_eq(strlen(drp_ca_fingerprint(ca)), 95);

	gnutls_x509_crt_deinit(crt);
	drp_ca_free(ca);
}
END_TEST

START_TEST(ca_reopen)
{
	char dir[PATH_MAX], p[PATH_MAX];
	subdir(dir, "ca");
	drp_ca_t *ca = open_ok(dir);
	char fpr[96];
	snprintf(fpr, sizeof(fpr), "%s", drp_ca_fingerprint(ca));
	gnutls_datum_t key1 = read_all(path_in(p, dir, "ca.key"));
	drp_ca_free(ca);

	ca = open_ok(dir);
	ck_assert_int_eq(drp_ca_created(ca), 0);
	ck_assert_str_eq(drp_ca_fingerprint(ca), fpr);
	/* The key file was not rewritten. */
	gnutls_datum_t key2 = read_all(path_in(p, dir, "ca.key"));
	ck_assert_uint_eq(key1.size, key2.size);
	ck_assert_int_eq(memcmp(key1.data, key2.data, key1.size), 0);
	gnutls_free(key1.data);
	gnutls_free(key2.data);
	drp_ca_free(ca);
}
END_TEST

START_TEST(ca_key_mismatch)
{
	char a[PATH_MAX], b[PATH_MAX], p[PATH_MAX], q[PATH_MAX];
	char err[512] = "", want[PATH_MAX + 256];
	subdir(a, "a");
	subdir(b, "b");
	drp_ca_free(open_ok(a));
	drp_ca_free(open_ok(b));
	copy_file(path_in(p, a, "ca.key"), path_in(q, b, "ca.key"));
	ck_assert_ptr_null(drp_ca_open(b, err, sizeof(err)));
	snprintf(want, sizeof(want),
		 "ca_dir %s: ca.key does not match ca.crt (restore the pair, "
		 "or remove both to create a new CA)",
		 b);
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(ca_only_one_file)
{
	char dir[PATH_MAX], p[PATH_MAX], err[512] = "", want[PATH_MAX + 256];
	subdir(dir, "ca");
	drp_ca_free(open_ok(dir));
	gnutls_datum_t crt = read_all(path_in(p, dir, "ca.crt"));

	/* Key without certificate: refused, and nothing is regenerated. */
	ck_assert_int_eq(unlink(path_in(p, dir, "ca.crt")), 0);
	ck_assert_ptr_null(drp_ca_open(dir, err, sizeof(err)));
	snprintf(want, sizeof(want),
		 "ca_dir %s: ca.key exists but ca.crt does not (restore it, or "
		 "remove ca.key to create a new CA)",
		 dir);
	ck_assert_str_eq(err, want);
	ck_assert_int_eq(access(path_in(p, dir, "ca.crt"), F_OK), -1);

	/* Certificate without key. */
	write_all(path_in(p, dir, "ca.crt"), crt.data, crt.size);
	ck_assert_int_eq(unlink(path_in(p, dir, "ca.key")), 0);
	ck_assert_ptr_null(drp_ca_open(dir, err, sizeof(err)));
	snprintf(want, sizeof(want),
		 "ca_dir %s: ca.crt exists but ca.key does not (restore it, or "
		 "remove ca.crt to create a new CA)",
		 dir);
	ck_assert_str_eq(err, want);
	ck_assert_int_eq(access(path_in(p, dir, "ca.key"), F_OK), -1);
	gnutls_free(crt.data);
}
END_TEST

START_TEST(ca_not_a_ca)
{
	char dir[PATH_MAX], err[512] = "", want[PATH_MAX + 256];
	char *key = new_ecdsa_key_pem();
	subdir(dir, "leafonly");
	write_selfsigned(dir, key, 0);
	free(key);
	ck_assert_ptr_null(drp_ca_open(dir, err, sizeof(err)));
	snprintf(want, sizeof(want),
		 "ca_dir %s: ca.crt is not a CA certificate (no "
		 "basicConstraints CA:TRUE)",
		 dir);
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(ca_bad_files)
{
	char dir[PATH_MAX], p[PATH_MAX], err[512] = "", want[PATH_MAX + 256];

	/* ca_dir is a regular file. */
	subdir(dir, "file");
	write_all(dir, "x", 1);
	ck_assert_ptr_null(drp_ca_open(dir, err, sizeof(err)));
	snprintf(want, sizeof(want), "ca_dir %s: Not a directory", dir);
	ck_assert_str_eq(err, want);

	/* A key file that holds no key. */
	subdir(dir, "garbage");
	drp_ca_free(open_ok(dir));
	write_all(path_in(p, dir, "ca.key"), "hello\n", 6);
	ck_assert_ptr_null(drp_ca_open(dir, err, sizeof(err)));
	snprintf(want, sizeof(want),
		 "ca_dir %s: ca.key: not a usable unencrypted PEM private key: "
		 "(",
		 dir);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
	/* The GnuTLS error as "(code) NAME". */
	int code = 0;
	char name[128] = "";
	ck_assert_int_eq(sscanf(err + strlen(want), "%d) %127s", &code, name),
			 2);
	ck_assert_int_lt(code, 0);
	ck_assert_str_eq(name, gnutls_strerror_name(code));

	/* An empty path. */
	ck_assert_ptr_null(drp_ca_open("", err, sizeof(err)));
	ck_assert_str_eq(err, "ca_dir: empty path");
}
END_TEST

START_TEST(ca_rsa_existing)
{
	char dir[PATH_MAX];
	subdir(dir, "rsa");
	write_selfsigned(dir, rsa_key_pem, 1);
	drp_ca_t *ca = open_ok(dir);
	ck_assert_int_eq(drp_ca_created(ca), 0);
	drp_forge_t *f = drp_forge_new(ca, NULL, 0);
	ck_assert_ptr_nonnull(f);
	drp_leaf_t *leaf = drp_forge_get(f, "registry.example");
	ck_assert_ptr_nonnull(leaf);
	gnutls_x509_crt_t c = ca_crt(ca), l = chain_crt(leaf, 0);
	unsigned status = 1;
	ck_assert_int_eq(gnutls_x509_crt_verify(l, &c, 1, 0, &status), 0);
	ck_assert_uint_eq(status, 0);
	ck_assert_int_eq(gnutls_x509_crt_get_signature_algorithm(l),
			 GNUTLS_SIGN_RSA_SHA256);
	/* The leaf key stays ECDSA. */
	ck_assert_int_eq(gnutls_x509_crt_get_pk_algorithm(l, NULL),
			 GNUTLS_PK_ECDSA);
	gnutls_x509_crt_deinit(c);
	gnutls_x509_crt_deinit(l);
	drp_leaf_unref(leaf);
	drp_forge_free(f);
	drp_ca_free(ca);
}
END_TEST

/* ---- forged leaves ---- */

static drp_ca_t *fca;
static drp_forge_t *forge;

static void forge_setup(void)
{
	char dir[PATH_MAX], err[512] = "";
	setup();
	fca = open_ok(subdir(dir, "ca"));
	forge = drp_forge_new(fca, err, sizeof(err));
	ck_assert_msg(forge != NULL, "%s", err);
}

static void forge_teardown(void)
{
	drp_forge_free(forge);
	drp_ca_free(fca);
	teardown();
}

/* The only SAN of crt: its type and value. */
static int only_san(gnutls_x509_crt_t crt, unsigned char *val, size_t *len)
{
	unsigned crit;
	size_t l2 = 256;
	unsigned char other[256];
	int type =
		gnutls_x509_crt_get_subject_alt_name(crt, 0, val, len, &crit);
	ck_assert_int_eq(
		gnutls_x509_crt_get_subject_alt_name(crt, 1, other, &l2, &crit),
		GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);
	return type;
}

START_TEST(forge_dns_leaf)
{
	time_t now = time(NULL);
	drp_leaf_t *leaf = drp_forge_get(forge, "registry.example");
	ck_assert_ptr_nonnull(leaf);
	gnutls_x509_crt_t c = ca_crt(fca), l = chain_crt(leaf, 0);

	/* Signed by the CA. */
	unsigned status = 1;
	ck_assert_int_eq(gnutls_x509_crt_verify(l, &c, 1, 0, &status), 0);
	ck_assert_uint_eq(status, 0);
	ck_assert_int_eq(gnutls_x509_crt_get_signature_algorithm(l),
			 GNUTLS_SIGN_ECDSA_SHA256);
	char subj[1024], iss[1024];
	size_t sl = sizeof(subj), il = sizeof(iss);
	ck_assert_int_eq(gnutls_x509_crt_get_dn(c, subj, &sl), 0);
	ck_assert_int_eq(gnutls_x509_crt_get_issuer_dn(l, iss, &il), 0);
	ck_assert_str_eq(iss, subj);

	/* SAN: exactly one dNSName, the host; CN = host. */
	unsigned char san[256];
	size_t san_len = sizeof(san);
	ck_assert_int_eq(only_san(l, san, &san_len), GNUTLS_SAN_DNSNAME);
	ck_assert_str_eq((char *)san, "registry.example");
	assert_dn_oid(l, GNUTLS_OID_X520_COMMON_NAME, "registry.example");
	ck_assert_int_ne(gnutls_x509_crt_check_hostname(l, "registry.example"),
			 0);
	ck_assert_int_eq(gnutls_x509_crt_check_hostname(l, "other.example"), 0);

	/* extKeyUsage: serverAuth only. */
	char oid[128];
	size_t ol = sizeof(oid);
	unsigned crit = 0;
	ck_assert_int_eq(
		gnutls_x509_crt_get_key_purpose_oid(l, 0, oid, &ol, &crit), 0);
	ck_assert_str_eq(oid, GNUTLS_KP_TLS_WWW_SERVER);
	ol = sizeof(oid);
	ck_assert_int_eq(
		gnutls_x509_crt_get_key_purpose_oid(l, 1, oid, &ol, &crit),
		GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);
	/* keyUsage: digitalSignature only. CA:FALSE. */
	unsigned usage = 0;
	ck_assert_int_eq(gnutls_x509_crt_get_key_usage(l, &usage, &crit), 0);
	ck_assert_uint_eq(usage, GNUTLS_KEY_DIGITAL_SIGNATURE);
	unsigned is_ca = 1;
	int pathlen;
	ck_assert_int_ge(gnutls_x509_crt_get_basic_constraints(l, &crit, &is_ca,
							       &pathlen),
			 0);
	ck_assert_uint_eq(is_ca, 0);

	/* Authority key id = the CA's subject key id (exactly once). */
	unsigned char aki[64], ski[64];
	size_t aki_len = sizeof(aki), ski_len = sizeof(ski);
	ck_assert_int_eq(
		gnutls_x509_crt_get_authority_key_id(l, aki, &aki_len, &crit),
		0);
	ck_assert_int_eq(
		gnutls_x509_crt_get_subject_key_id(c, ski, &ski_len, &crit), 0);
	ck_assert_uint_eq(aki_len, ski_len);
	ck_assert_int_eq(memcmp(aki, ski, aki_len), 0);
	ck_assert_int_eq(ext_count(l, "2.5.29.35"), 1);
	ck_assert_int_eq(ext_count(l, "2.5.29.17"), 1);

	/* ECDSA P-256 leaf key. */
	gnutls_ecc_curve_t curve;
	ck_assert_int_eq(gnutls_x509_crt_get_pk_algorithm(l, NULL),
			 GNUTLS_PK_ECDSA);
	ck_assert_int_eq(gnutls_x509_crt_get_pk_ecc_raw(l, &curve, NULL, NULL),
			 0);
	ck_assert_int_eq(curve, GNUTLS_ECC_CURVE_SECP256R1);
	assert_serial(l, NULL);

	/* notBefore an hour in the past; notAfter 397 days from now. */
	time_t nb = gnutls_x509_crt_get_activation_time(l);
	time_t na = gnutls_x509_crt_get_expiration_time(l);
	ck_assert_int_le(nb, now - 3600 + SLACK);
	ck_assert_int_ge(nb, now - 3600 - SLACK);
	ck_assert_int_le(na - now, 397L * DAY + SLACK);
	ck_assert_int_ge(na - now, 397L * DAY - SLACK);
	ck_assert_int_eq(na - nb, 397L * DAY + 3600);
	ck_assert_int_eq(leaf->not_after, na);

	/* The chain's second certificate is the CA, byte for byte. */
	gnutls_x509_crt_t chain_ca = chain_crt(leaf, 1);
	ck_assert_int_ne(gnutls_x509_crt_equals(chain_ca, c), 0);
	gnutls_datum_t none;
	ck_assert_int_lt(
		gnutls_certificate_get_crt_raw(leaf->cred, 0, 2, &none), 0);

	gnutls_x509_crt_deinit(chain_ca);
	gnutls_x509_crt_deinit(c);
	gnutls_x509_crt_deinit(l);
	drp_leaf_unref(leaf);
}
END_TEST

START_TEST(forge_ip_leaf)
{
	/* Table: host as asked, SAN bytes expected, length. */
	static const struct {
		const char *host;
		unsigned char ip[16];
		size_t len;
	} cases[] = {
		/* IPv4 literal. */
		{"127.0.0.11", {127, 0, 0, 11}, 4},
		/* IPv6 loopback. */
		{"::1", {[15] = 1}, 16},
		/* IPv6 in URL brackets, as in a CONNECT target. */
		{"[2001:db8::5]", {0x20, 0x01, 0x0d, 0xb8, [15] = 5}, 16},
	};
	gnutls_x509_crt_t c = ca_crt(fca);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		drp_leaf_t *leaf = drp_forge_get(forge, cases[i].host);
		ck_assert_ptr_nonnull(leaf);
		gnutls_x509_crt_t l = chain_crt(leaf, 0);
		unsigned char san[256];
		size_t len = sizeof(san);
		/* One iPAddress SAN and no dNSName at all. */
		ck_assert_int_eq(only_san(l, san, &len), GNUTLS_SAN_IPADDRESS);
		ck_assert_uint_eq(len, cases[i].len);
		ck_assert_int_eq(memcmp(san, cases[i].ip, len), 0);
		unsigned status = 1;
		ck_assert_int_eq(gnutls_x509_crt_verify(l, &c, 1, 0, &status),
				 0);
		ck_assert_uint_eq(status, 0);
		char text[64];
		inet_ntop(len == 4 ? AF_INET : AF_INET6, cases[i].ip, text,
			  sizeof(text));
		ck_assert_int_ne(gnutls_x509_crt_check_hostname(l, text), 0);
		assert_dn_oid(l, GNUTLS_OID_X520_COMMON_NAME, text);
		gnutls_x509_crt_deinit(l);
		drp_leaf_unref(leaf);
	}
	gnutls_x509_crt_deinit(c);

	/* Other spellings of the same address share the cached leaf. */
	drp_leaf_t *a = drp_forge_get(forge, "::1");
	drp_leaf_t *b = drp_forge_get(forge, "[0:0::1]");
	ck_assert_ptr_eq(a, b);
	drp_leaf_unref(a);
	drp_leaf_unref(b);
}
END_TEST

START_TEST(forge_cache_and_serials)
{
	drp_leaf_t *a = drp_forge_get(forge, "registry.example");
	drp_leaf_t *b = drp_forge_get(forge, "registry.example");
	/* Same host: the cached leaf. Upper case is the same host. */
	drp_leaf_t *u = drp_forge_get(forge, "Registry.Example");
	drp_leaf_t *o = drp_forge_get(forge, "other.example");
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_eq(a, b);
	ck_assert_ptr_eq(a, u);
	ck_assert_ptr_nonnull(o);
	ck_assert_ptr_ne(a, o);
	/* Cache + three callers. */
	ck_assert_uint_eq(a->_refs, 4);
	ck_assert_uint_eq(drp_forge_cache_count(forge), 2);

	/* Serials differ between hosts. */
	unsigned char sa[16], so[16];
	gnutls_x509_crt_t ca_ = chain_crt(a, 0), co = chain_crt(o, 0);
	assert_serial(ca_, sa);
	assert_serial(co, so);
	ck_assert_int_ne(memcmp(sa, so, 16), 0);
	gnutls_x509_crt_deinit(ca_);
	gnutls_x509_crt_deinit(co);
	drp_leaf_unref(a);
	drp_leaf_unref(b);
	drp_leaf_unref(u);
	drp_leaf_unref(o);
	ck_assert_uint_eq(a->_refs, 1);
}
END_TEST

START_TEST(forge_renew)
{
	time_t now = time(NULL);
	/* Forged 380 days ago: 17 days left, below the 30-day margin. */
	drp_leaf_t *old =
		drp_forge_make(forge, "registry.example", now - 380L * DAY);
	ck_assert_ptr_nonnull(old);
	ck_assert_int_eq(old->not_after, now + 17L * DAY);
	drp_leaf_t *n = drp_forge_get(forge, "registry.example");
	ck_assert_ptr_nonnull(n);
	ck_assert_ptr_ne(n, old);
	ck_assert_int_ge(n->not_after, now + 397L * DAY);
	ck_assert_int_le(n->not_after, now + 397L * DAY + SLACK);
	/* The renewed leaf is now the cached one... */
	drp_leaf_t *again = drp_forge_get(forge, "registry.example");
	ck_assert_ptr_eq(again, n);
	/* ...and a session still holding the old one keeps it usable. */
	ck_assert_uint_eq(old->_refs, 1);
	gnutls_x509_crt_t l = chain_crt(old, 0);
	ck_assert_int_eq(gnutls_x509_crt_get_expiration_time(l),
			 now + 17L * DAY);
	gnutls_x509_crt_deinit(l);
	drp_leaf_unref(old);
	drp_leaf_unref(n);
	drp_leaf_unref(again);

	/* Forged 360 days ago: 37 days left, still served. */
	drp_leaf_t *ok = drp_forge_make(forge, "b.example", now - 360L * DAY);
	drp_leaf_t *same = drp_forge_get(forge, "b.example");
	ck_assert_ptr_eq(ok, same);
	drp_leaf_unref(ok);
	drp_leaf_unref(same);
	ck_assert_uint_eq(drp_forge_cache_count(forge), 2);
}
END_TEST

START_TEST(forge_evict_lru)
{
	drp_forge_set_cache_max(forge, 2);
	drp_leaf_t *a = drp_forge_get(forge, "a.example");
	drp_leaf_t *b = drp_forge_get(forge, "b.example");
	drp_leaf_t *a2 = drp_forge_get(forge, "a.example"); /* a is recent */
	drp_leaf_t *c = drp_forge_get(forge, "c.example");  /* evicts b */
	ck_assert_ptr_eq(a, a2);
	ck_assert_uint_eq(drp_forge_cache_count(forge), 2);
	/* b left the cache; our reference is now the only one. */
	ck_assert_uint_eq(b->_refs, 1);
	drp_leaf_t *a3 = drp_forge_get(forge, "a.example");
	ck_assert_ptr_eq(a3, a);
	drp_leaf_t *b2 = drp_forge_get(forge, "b.example"); /* evicts c */
	ck_assert_ptr_ne(b2, b);
	ck_assert_uint_eq(c->_refs, 1);
	ck_assert_uint_eq(a->_refs, 4);
	/* Shrinking evicts down to the new cap, least recent first. */
	drp_forge_set_cache_max(forge, 1);
	ck_assert_uint_eq(drp_forge_cache_count(forge), 1);
	ck_assert_uint_eq(a->_refs, 3);
	ck_assert_uint_eq(b2->_refs, 2);
	drp_leaf_t *list[] = {a, b, a2, c, a3, b2};
	for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++)
		drp_leaf_unref(list[i]);
}
END_TEST

START_TEST(forge_invalid_hosts)
{
	/* Table: names that must never reach a certificate. */
	static const char *const bad[] = {
		"",		/* empty */
		"[]",		/* empty brackets */
		"a b.example",	/* space */
		"a/b",		/* path separator */
		"*.example",	/* wildcard */
		".example",	/* leading dot */
		"-example",	/* leading hyphen */
		"a..example",	/* empty label */
		"fe80::1%eth0", /* zone id */
		"registry:443", /* port not stripped */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(drp_forge_get(forge, bad[i]) == NULL, "%s",
			      bad[i]);
	/* 254 characters: one more than a DNS name can have. */
	char longname[300];
	memset(longname, 'a', 254);
	longname[254] = '\0';
	ck_assert_ptr_null(drp_forge_get(forge, longname));
	ck_assert_uint_eq(drp_forge_cache_count(forge), 0);
	/* 253 is fine; the CN is left out (over 64), the SAN carries it. */
	longname[253] = '\0';
	for (size_t i = 63; i < 253; i += 64)
		longname[i] = '.';
	drp_leaf_t *leaf = drp_forge_get(forge, longname);
	ck_assert_ptr_nonnull(leaf);
	gnutls_x509_crt_t l = chain_crt(leaf, 0);
	ck_assert_int_ne(gnutls_x509_crt_check_hostname(l, longname), 0);
	char cn[512];
	size_t cnl = sizeof(cn);
	ck_assert_int_eq(
		gnutls_x509_crt_get_dn_by_oid(l, GNUTLS_OID_X520_COMMON_NAME, 0,
					      0, cn, &cnl),
		GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);
	gnutls_x509_crt_deinit(l);
	drp_leaf_unref(leaf);
}
END_TEST

/* ---- a real handshake ---- */

struct server_arg {
	int fd;
	gnutls_certificate_credentials_t cred;
	int result;
};

static void *server_main(void *p)
{
	struct server_arg *a = p;
	gnutls_session_t s;
	ck_assert_int_eq(gnutls_init(&s, GNUTLS_SERVER), 0);
	ck_assert_int_eq(gnutls_set_default_priority(s), 0);
	ck_assert_int_eq(
		gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, a->cred), 0);
	gnutls_transport_set_int(s, a->fd);
	int r;
	do
		r = gnutls_handshake(s);
	while (r < 0 && !gnutls_error_is_fatal(r));
	a->result = r;
	if (r == 0)
		gnutls_bye(s, GNUTLS_SHUT_WR);
	gnutls_deinit(s);
	close(a->fd);
	return NULL;
}

/*
 * Handshake between a server using leaf and a client that trusts only
 * the CA in trust_pem and checks verify_host. Returns the client's
 * result; *status gets its verification status, *npeers the chain size.
 */
static int handshake(drp_leaf_t *leaf, const char *trust_pem,
		     const char *verify_host, const char *sni, unsigned *status,
		     unsigned *npeers)
{
	int sv[2];
	/* A peer that gives up mid-handshake closes its end first. */
	signal(SIGPIPE, SIG_IGN);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct server_arg arg = {.fd = sv[0], .cred = leaf->cred};
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, server_main, &arg), 0);

	gnutls_certificate_credentials_t cc;
	gnutls_session_t s;
	gnutls_datum_t ca = {(unsigned char *)(uintptr_t)trust_pem,
			     (unsigned)strlen(trust_pem)};
	ck_assert_int_eq(gnutls_certificate_allocate_credentials(&cc), 0);
	ck_assert_int_eq(gnutls_certificate_set_x509_trust_mem(
				 cc, &ca, GNUTLS_X509_FMT_PEM),
			 1);
	ck_assert_int_eq(gnutls_init(&s, GNUTLS_CLIENT), 0);
	ck_assert_int_eq(gnutls_set_default_priority(s), 0);
	ck_assert_int_eq(gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cc),
			 0);
	if (sni != NULL)
		ck_assert_int_eq(gnutls_server_name_set(s, GNUTLS_NAME_DNS, sni,
							strlen(sni)),
				 0);
	gnutls_session_set_verify_cert(s, verify_host, 0);
	gnutls_transport_set_int(s, sv[1]);
	int r;
	do
		r = gnutls_handshake(s);
	while (r < 0 && !gnutls_error_is_fatal(r));
	*status = gnutls_session_get_verify_cert_status(s);
	*npeers = 0;
	gnutls_certificate_get_peers(s, npeers);
	gnutls_deinit(s);
	close(sv[1]);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	gnutls_certificate_free_credentials(cc);
	if (r == 0)
		ck_assert_int_eq(arg.result, 0);
	else
		ck_assert_int_lt(arg.result, 0);
	return r;
}

START_TEST(forge_handshake)
{
	size_t len;
	const char *pem = drp_ca_pem(fca, &len);
	unsigned status, npeers;

	/* Right name: verified, and the server sent leaf + CA. */
	drp_leaf_t *leaf = drp_forge_get(forge, "registry.example");
	ck_assert_int_eq(handshake(leaf, pem, "registry.example",
				   "registry.example", &status, &npeers),
			 0);
	ck_assert_uint_eq(status, 0);
	ck_assert_uint_eq(npeers, 2);

	/* Another name: the client rejects the certificate. */
	ck_assert_int_eq(handshake(leaf, pem, "other.example", "other.example",
				   &status, &npeers),
			 GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR);
	ck_assert_uint_eq(status,
			  GNUTLS_CERT_INVALID | GNUTLS_CERT_UNEXPECTED_OWNER);

	/* A client trusting another CA rejects it too. */
	char other[PATH_MAX];
	drp_ca_t *ca2 = open_ok(subdir(other, "other-ca"));
	ck_assert_int_eq(handshake(leaf, drp_ca_pem(ca2, &len),
				   "registry.example", "registry.example",
				   &status, &npeers),
			 GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR);
	ck_assert_uint_ne(status & GNUTLS_CERT_SIGNER_NOT_FOUND, 0);
	drp_ca_free(ca2);
	drp_leaf_unref(leaf);

	/* An IP literal, without SNI (SNI cannot carry an address). */
	leaf = drp_forge_get(forge, "127.0.0.11");
	ck_assert_int_eq(
		handshake(leaf, pem, "127.0.0.11", NULL, &status, &npeers), 0);
	ck_assert_uint_eq(status, 0);
	ck_assert_int_eq(
		handshake(leaf, pem, "127.0.0.12", NULL, &status, &npeers),
		GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR);
	drp_leaf_unref(leaf);

	leaf = drp_forge_get(forge, "::1");
	ck_assert_int_eq(handshake(leaf, pem, "::1", NULL, &status, &npeers),
			 0);
	drp_leaf_unref(leaf);
}
END_TEST

/* ---- a server session's batched writes ---- */

#define BATCH_TOTAL (4 * 1024 * 1024)
#define RECORD	    16384 /* the most data a TLS record carries */

static unsigned char pattern_byte(size_t i)
{
	return (unsigned char)((i * 2654435761u) >> 13);
}

struct reader_arg {
	int fd;
	const char *trust_pem;
	const char *priority; /* NULL: GnuTLS's default */
	/* Ask the server for a KeyUpdate after every this many bytes (0:
	 * never). */
	size_t key_update_every;
	size_t max_record; /* a record size limit to ask for (0: none) */
	/* Pauses: before reading on from pause_at[i] bytes (0: before the
	 * first read), the reader waits for a byte on gate, so that the
	 * server's socket fills up for certain. */
	size_t pause_at[2];
	unsigned npause, paused;
	int gate;
	size_t got;
	size_t bad; /* first wrong offset + 1, or 0 */
	int result;
	int version;	    /* negotiated */
	unsigned read_keys; /* server write keys the reader saw */
	unsigned markers;   /* record_reader: marker records seen */
};

/* The reader's current read key differs from the last one it saw. */
static bool read_key_changed(gnutls_session_t s, unsigned char *last,
			     unsigned *last_len)
{
	gnutls_datum_t key = {0};
	if (gnutls_record_get_state(s, 1, NULL, NULL, &key, NULL) < 0 ||
	    key.size > 32)
		return false;
	if (key.size == *last_len && memcmp(key.data, last, key.size) == 0)
		return false;
	memcpy(last, key.data, key.size);
	*last_len = key.size;
	return true;
}

static void wait_fd(int fd, short events)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	ck_assert_int_ge(poll(&pfd, 1, 10000), 1);
}

static void reader_pauses(struct reader_arg *a)
{
	while (a->paused < a->npause && a->got >= a->pause_at[a->paused]) {
		char c;
		wait_fd(a->gate, POLLIN);
		ck_assert_int_eq(read(a->gate, &c, 1), 1);
		a->paused++;
	}
}

/* The client's session to the server on a->fd, after its handshake
 * (a->result). */
static gnutls_session_t reader_open(struct reader_arg *a,
				    gnutls_certificate_credentials_t *cc)
{
	gnutls_session_t s;
	gnutls_datum_t ca = {(unsigned char *)(uintptr_t)a->trust_pem,
			     (unsigned)strlen(a->trust_pem)};
	gnutls_certificate_allocate_credentials(cc);
	gnutls_certificate_set_x509_trust_mem(*cc, &ca, GNUTLS_X509_FMT_PEM);
	gnutls_init(&s, GNUTLS_CLIENT);
	if (a->priority)
		ck_assert_int_eq(
			gnutls_priority_set_direct(s, a->priority, NULL), 0);
	else
		gnutls_set_default_priority(s);
	gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, *cc);
	gnutls_server_name_set(s, GNUTLS_NAME_DNS, "registry.example", 16);
	gnutls_session_set_verify_cert(s, "registry.example", 0);
	if (a->max_record)
		ck_assert_int_ge(gnutls_record_set_max_size(s, a->max_record),
				 0);
	gnutls_transport_set_int(s, a->fd);
	int r;
	do
		r = gnutls_handshake(s);
	while (r < 0 && !gnutls_error_is_fatal(r));
	a->result = r;
	a->version = (int)gnutls_protocol_get_version(s);
	return s;
}

static void reader_close(struct reader_arg *a, gnutls_session_t s,
			 gnutls_certificate_credentials_t cc)
{
	gnutls_deinit(s);
	gnutls_certificate_free_credentials(cc);
	close(a->fd);
}

/* A slow client: small reads with pauses, so the server's socket
 * fills up and its session has to keep records back. */
static void *slow_reader(void *p)
{
	struct reader_arg *a = p;
	gnutls_certificate_credentials_t cc;
	gnutls_session_t s = reader_open(a, &cc);
	int r = a->result;
	char buf[3000];
	unsigned n = 0;
	unsigned char key[32];
	unsigned key_len = 0;
	size_t next_update = a->key_update_every;
	while (r == 0 && a->got < BATCH_TOTAL) {
		reader_pauses(a);
		ssize_t k = gnutls_record_recv(s, buf, sizeof(buf));
		if (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED)
			continue;
		if (k <= 0) {
			a->result = (int)k;
			break;
		}
		if (read_key_changed(s, key, &key_len))
			a->read_keys++;
		for (ssize_t i = 0; i < k && a->bad == 0; i++)
			if ((unsigned char)buf[i] != pattern_byte(a->got + i))
				a->bad = a->got + i + 1;
		a->got += (size_t)k;
		if (next_update && a->got >= next_update) {
			next_update += a->key_update_every;
			r = gnutls_session_key_update(s, GNUTLS_KU_PEER);
			a->result = r;
		}
		if (++n % 64 == 0)
			usleep(1000);
	}
	reader_close(a, s, cc);
	return NULL;
}

/* A server session writing to a reader thread over a socket pair. */
struct xfer {
	struct reader_arg *a;
	drp_leaf_t *leaf;
	drp_tls_t *t;
	int fd;	     /* the server's end, non-blocking */
	int gate[2]; /* the reader's pauses */
	pthread_t th;
	unsigned char *data; /* BATCH_TOTAL bytes of pattern */
	size_t off;	     /* bytes the session took */
	size_t big;	     /* writes that took more than one record */
	unsigned held;	     /* times bytes waited in the session */
};

/* Connects, starts reader(a) and completes the handshake. sndbuf: the
 * server's socket send buffer. */
static void xfer_start(struct xfer *x, struct reader_arg *a,
		       void *(*reader)(void *), int sndbuf)
{
	memset(x, 0, sizeof(*x));
	x->a = a;
	size_t len;
	const char *pem = drp_ca_pem(fca, &len);
	x->leaf = drp_forge_get(forge, "registry.example");
	int sv[2];
	signal(SIGPIPE, SIG_IGN);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	ck_assert_int_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	ck_assert_int_eq(pipe(x->gate), 0);
	x->fd = sv[0];
	a->fd = sv[1];
	a->trust_pem = pem;
	a->gate = x->gate[0];
	ck_assert_int_eq(pthread_create(&x->th, NULL, reader, a), 0);

	x->t = drp_tls_server_new(sv[0], x->leaf->cred);
	ck_assert_ptr_nonnull(x->t);
	int r;
	while ((r = drp_tls_handshake(x->t)) == -EAGAIN)
		wait_fd(sv[0], drp_tls_want_write(x->t) ? POLLOUT : POLLIN);
	ck_assert_int_eq(r, 0);

	x->data = malloc(BATCH_TOTAL);
	for (size_t i = 0; i < BATCH_TOTAL; i++)
		x->data[i] = pattern_byte(i);
}

/* Lets the reader go on from its next pause. */
static void xfer_open_gate(struct xfer *x)
{
	ck_assert_int_eq(write(x->gate[1], "g", 1), 1);
}

/* Sends what the session holds, waiting for the socket. */
static void xfer_flush(struct xfer *x)
{
	while (drp_tls_out_pending(x->t)) {
		x->held++;
		int r = drp_tls_flush(x->t);
		ck_assert(r == 0 || r == -EAGAIN);
		if (r == -EAGAIN)
			wait_fd(x->fd, POLLOUT);
	}
}

/* Writes the pattern until the session took upto bytes and holds
 * nothing, as a connection does: what the session holds is sent before
 * the next write. */
static void xfer_pump(struct xfer *x, size_t upto)
{
	while (x->off < upto || drp_tls_out_pending(x->t)) {
		/* What the client sent (KeyUpdates) is read between writes,
		 * as a connection's read side does. */
		char rb[64];
		ssize_t rr = drp_tls_read(x->t, rb, sizeof(rb));
		ck_assert_msg(rr == -EAGAIN, "read: %zd %s", rr,
			      drp_tls_error(x->t));
		xfer_flush(x);
		if (x->off >= upto)
			continue;
		ssize_t n = drp_tls_write(x->t, x->data + x->off,
					  BATCH_TOTAL - x->off);
		if (n == -EAGAIN) {
			wait_fd(x->fd, POLLOUT);
			continue;
		}
		ck_assert_int_gt(n, 0);
		if ((size_t)n > RECORD)
			x->big++;
		x->off += (size_t)n;
	}
}

/* Waits for the reader and frees everything; returns the records the
 * session sealed itself. */
static uint64_t xfer_close(struct xfer *x)
{
	ck_assert_int_eq(pthread_join(x->th, NULL), 0);
	uint64_t sealed = drp_tls_sealed(x->t);
	drp_tls_free(x->t);
	close(x->fd);
	close(x->gate[0]);
	close(x->gate[1]);
	free(x->data);
	drp_tls_thread_done();
	drp_leaf_unref(x->leaf);
	return sealed;
}

/* xfer_close after a slow_reader transfer: every byte arrived, in
 * order. */
static uint64_t xfer_end(struct xfer *x)
{
	uint64_t sealed = xfer_close(x);
	ck_assert_int_eq(x->a->result, 0);
	ck_assert_uint_eq(x->a->got, BATCH_TOTAL);
	ck_assert_uint_eq(x->a->bad, 0);
	return sealed;
}

/* BATCH_TOTAL bytes of pattern through a server session to slow_reader
 * (a) over a socket with a small send buffer; every byte must arrive.
 * Returns the records the session sealed itself; *calls_over_record:
 * writes that took more than one record, *held: times bytes waited in
 * the session. */
static uint64_t batched_transfer(struct reader_arg *a,
				 size_t *calls_over_record, unsigned *held)
{
	struct xfer x;
	xfer_start(&x, a, slow_reader, 32 * 1024);
	xfer_pump(&x, BATCH_TOTAL);
	*calls_over_record = x.big;
	*held = x.held;
	return xfer_end(&x);
}

START_TEST(session_batched_writes)
{
	struct reader_arg a = {0};
	size_t big;
	unsigned held;
	uint64_t sealed = batched_transfer(&a, &big, &held);
	/* Several records per call, bytes kept back when the socket was
	 * full. TLS 1.3 with AES-GCM: all records but the first of each
	 * write sealed by the session. */
	ck_assert_int_eq(a.version, GNUTLS_TLS1_3);
	ck_assert_uint_gt(big, 0);
	ck_assert_uint_gt(held, 0);
	ck_assert_uint_gt(sealed, BATCH_TOTAL / RECORD / 2);
	ck_assert_uint_eq(a.read_keys, 1);
}
END_TEST

/* The client asks for a new server key every 700 KB: each KeyUpdate is
 * answered by GnuTLS (the first record of the next write), and the
 * records sealed after it use the new key. (GnuTLS takes at most 8
 * KeyUpdates a second from a peer.) */
START_TEST(session_sealed_key_update)
{
	struct reader_arg a = {.key_update_every = 700 * 1000};
	size_t big;
	unsigned held;
	uint64_t sealed = batched_transfer(&a, &big, &held);
	ck_assert_int_eq(a.version, GNUTLS_TLS1_3);
	ck_assert_uint_gt(sealed, BATCH_TOTAL / RECORD / 2);
	/* 4 MiB / 700 KB: 5 updates asked for (6 keys); the last may come
	 * too late to be answered before the end. */
	ck_assert_uint_ge(a.read_keys, 5);
}
END_TEST

/* TLS 1.2, TLS 1.3 with ChaCha20, and a client that limits the record
 * size (RFC 8449; its GnuTLS refuses a larger record): GnuTLS makes every
 * record. */
START_TEST(session_unsealed_versions)
{
	static const struct {
		const char *prio;
		size_t max_record;
	} c[] = {
		{"NORMAL:-VERS-ALL:+VERS-TLS1.2", 0},
		{"NORMAL:-CIPHER-ALL:+CHACHA20-POLY1305", 0},
		{NULL, 4096},
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct reader_arg a = {.priority = c[i].prio,
				       .max_record = c[i].max_record};
		size_t big;
		unsigned held;
		uint64_t sealed = batched_transfer(&a, &big, &held);
		ck_assert_uint_gt(big, 0);
		ck_assert_uint_eq(sealed, 0);
	}
}
END_TEST

/* Sealing stops at its sequence number cap (2^23 records; here 20 past
 * the handshake, through the test hook) and GnuTLS makes every record
 * after it. Of the 20 records below the cap the first is GnuTLS's (the
 * first of a write), so at most 19 are sealed: without the cap nearly
 * all of the 256 would be (session_batched_writes). The record with the
 * cap's own sequence number is never sealed (the real cap stays below
 * the number at which GnuTLS starts a KeyUpdate): the last one sealed is
 * the one before it, or the one before that when that one happened to
 * be the first of a write. */
START_TEST(session_seal_cap)
{
	struct reader_arg a = {0};
	struct xfer x;
	xfer_start(&x, &a, slow_reader, 32 * 1024);
	uint64_t cap = drp_tls_test_seal_cap(x.t, 20);
	xfer_pump(&x, BATCH_TOTAL);
	uint64_t next = drp_tls_test_seal_next(x.t);
	uint64_t sealed = xfer_end(&x);
	ck_assert_int_eq(a.version, GNUTLS_TLS1_3);
	ck_assert_uint_gt(sealed, 0);
	ck_assert_uint_lt(sealed, 20);
	ck_assert_uint_le(next, cap);
	ck_assert_uint_ge(next, cap - 1);
}
END_TEST

/* Writes of len bytes until the session holds bytes back (the socket was
 * full at its last send). */
static void xfer_fill(struct xfer *x, size_t len)
{
	while (!drp_tls_out_pending(x->t)) {
		ck_assert_uint_le(x->off + len, BATCH_TOTAL);
		ssize_t n = drp_tls_write(x->t, x->data + x->off, len);
		ck_assert_int_eq(n, (ssize_t)len);
		x->off += len;
	}
}

/* Writes without sending what the session holds first, until GnuTLS's
 * send returns EAGAIN (its push could not send the bytes held): then
 * GnuTLS keeps the record it made, and the next write replays it. The
 * reader has paused (or will), so the socket fills for certain. */
static void xfer_until_again(struct xfer *x)
{
	for (;;) {
		ck_assert_uint_lt(x->off, BATCH_TOTAL);
		ssize_t n = drp_tls_write(x->t, x->data + x->off,
					  BATCH_TOTAL - x->off);
		if (n == -EAGAIN)
			return;
		ck_assert_int_gt(n, 0);
		x->off += (size_t)n;
	}
}

/*
 * A replay: GnuTLS's send returned EAGAIN, and the next write gives it
 * the same bytes again (drp_tls_write returns -EAGAIN only when GnuTLS's
 * send did, so each -EAGAIN below is followed by a replay).
 *
 * First before sealing is decided: a write of 100 bytes gets EAGAIN, and
 * its replay, inside a longer write, makes a record of 100 bytes. That
 * length is the earlier call's, not a record size limit of the client:
 * sealing must still start with the next record GnuTLS makes of 16384
 * bytes (a client with a 4096-byte limit: never). Then, with sealing
 * on, a replay of a whole record is followed by sealed records in the
 * same write.
 */
START_TEST(session_replay_then_seal)
{
	static const size_t limits[] = {0, 4096};
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		struct reader_arg a = {.max_record = limits[i],
				       .pause_at = {0, BATCH_TOTAL / 2},
				       .npause = limits[i] ? 1 : 2};
		struct xfer x;
		xfer_start(&x, &a, slow_reader, 32 * 1024);
		/* The reader waits before its first read: fill the socket
		 * with writes of less than a record (they leave the sealing
		 * state as it is), then one more write gets EAGAIN. */
		xfer_fill(&x, 1000);
		ck_assert_int_eq(drp_tls_write(x.t, x.data + x.off, 100),
				 -EAGAIN);
		xfer_open_gate(&x);
		xfer_flush(&x);
		ck_assert_int_eq(
			drp_tls_write(x.t, x.data + x.off, BATCH_TOTAL - x.off),
			100);
		x.off += 100;
		ck_assert_uint_eq(drp_tls_sealed(x.t), 0);
		if (limits[i] == 0) {
			/* The reader pauses again halfway; meanwhile sealed
			 * writes fill the socket until one gets EAGAIN. */
			xfer_pump(&x, x.off + 1);
			ck_assert_uint_gt(drp_tls_sealed(x.t), 0);
			xfer_until_again(&x);
			xfer_open_gate(&x);
			xfer_flush(&x);
			uint64_t before = drp_tls_sealed(x.t);
			ssize_t n = drp_tls_write(x.t, x.data + x.off,
						  BATCH_TOTAL - x.off);
			ck_assert_int_gt(n, RECORD);
			ck_assert_uint_gt(drp_tls_sealed(x.t), before);
			x.off += (size_t)n;
		}
		xfer_pump(&x, BATCH_TOTAL);
		uint64_t sealed = xfer_end(&x);
		ck_assert_int_eq(a.version, GNUTLS_TLS1_3);
		if (limits[i] == 0)
			ck_assert_uint_gt(sealed, BATCH_TOTAL / RECORD / 2);
		else
			ck_assert_uint_eq(sealed, 0);
	}
}
END_TEST

#define MARKER_LEN 100

static const char *marker(void)
{
	static char m[MARKER_LEN];
	memset(m, 'M', sizeof(m));
	return m;
}

/* A client reading whole records until the end of the stream: records
 * of pattern (a->got, a->bad as slow_reader), then marker records. */
static void *record_reader(void *p)
{
	struct reader_arg *a = p;
	gnutls_certificate_credentials_t cc;
	gnutls_session_t s = reader_open(a, &cc);
	char *buf = malloc(RECORD);
	while (a->result == 0) {
		reader_pauses(a);
		ssize_t k = gnutls_record_recv(s, buf, RECORD);
		if (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED)
			continue;
		if (k <= 0) {
			a->result = (int)k; /* 0: close_notify */
			break;
		}
		if (k == MARKER_LEN && memcmp(buf, marker(), MARKER_LEN) == 0) {
			a->markers++;
			continue;
		}
		for (ssize_t i = 0; i < k && a->bad == 0; i++)
			if (a->markers > 0 ||
			    (unsigned char)buf[i] != pattern_byte(a->got + i))
				a->bad = a->got + i + 1;
		a->got += (size_t)k;
	}
	free(buf);
	reader_close(a, s, cc);
	return NULL;
}

/*
 * A mapped file cut short under a write: the read faults in the middle
 * of sealing, and the guard abandons drp_tls_write there. The connection
 * code then drops the session; what the client got must be whole
 * records, every byte right. This test goes one step further, to the
 * guarantee seal_commit gives: GnuTLS's sequence number is set before
 * every send of sealed records, so it counts every record on the wire
 * and a fault throws away only records that were never sent. One more
 * record made by GnuTLS after the fault (and a close_notify) must then
 * decrypt at the client; a sequence number used twice would show there
 * as a decryption error. Run 1 sends the close_notify alone: it must
 * not join the abandoned batch (and never be sent) but reach the
 * client.
 *
 * The file: 64 records of pattern, cut at 20 records + 8 KiB. The
 * reader waits until the server is done, and the server's socket takes
 * more than a batch of records, so the write seals a first batch of
 * records, sends it whole, seals on and faults at the cut, before a
 * second send. (A send buffer of 1 MiB is asked for; the kernel gives
 * at least twice net.core.wmem_max's default of 212992, enough for the
 * 246 KB batch. With less, the write stops at the full socket before
 * the cut and the guard's -EIO assertion fails.)
 */
START_TEST(session_seal_fault)
{
	const bool with_marker = _i == 0;
	drp_bus_guard_install();
	const size_t file_len = 64 * RECORD, cut = 20 * RECORD + 8192;
	char path[] = "/tmp/drp-sealfault.XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	unsigned char *data = malloc(file_len);
	for (size_t i = 0; i < file_len; i++)
		data[i] = pattern_byte(i);
	ck_assert_int_eq(write(fd, data, file_len), (ssize_t)file_len);
	free(data);
	const char *m = mmap(NULL, file_len, PROT_READ, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(m, MAP_FAILED);
	ck_assert_int_eq(ftruncate(fd, (off_t)cut), 0);

	struct reader_arg a = {.npause = 1};
	struct xfer x;
	xfer_start(&x, &a, record_reader, 1024 * 1024);
	/* As the connection code writes a mapped body. (What GnuTLS itself
	 * reads, touched first, is the file's first record: the fault comes
	 * in sealing, as the records the client gets show below.) */
	ssize_t n = 0;
	ck_assert_int_eq(drp_tls_write_mapped(x.t, m, file_len, &n), -EIO);
	uint64_t sealed = drp_tls_sealed(x.t);
	xfer_flush(&x);
	if (with_marker)
		ck_assert_int_eq(drp_tls_write(x.t, marker(), MARKER_LEN),
				 MARKER_LEN);
	drp_tls_bye(x.t);
	xfer_open_gate(&x);
	xfer_close(&x);
	munmap((void *)(uintptr_t)m, file_len);
	close(fd);

	ck_assert_int_eq(a.version, GNUTLS_TLS1_3);
	/* Whole records of the file from before the cut, more than the
	 * first (GnuTLS's): sealed records reached the client... */
	ck_assert_uint_eq(a.got % RECORD, 0);
	ck_assert_uint_gt(a.got, RECORD);
	ck_assert_uint_le(a.got, cut);
	ck_assert_uint_eq(a.bad, 0);
	/* ...and the session sealed more than it sent: the fault came
	 * after a send, with sealed records not sent yet. */
	ck_assert_uint_ge(sealed, a.got / RECORD);
	/* Then GnuTLS's record and the close_notify, both decrypted: no
	 * sequence number was used twice. */
	ck_assert_msg(a.result == 0, "client: %s", gnutls_strerror(a.result));
	ck_assert_uint_eq(a.markers, with_marker ? 1 : 0);
}
END_TEST

/* ---- protocol versions: TLS 1.2 or newer on both sides ---- */

struct peer_arg {
	int fd;
	bool server;
	const char *priority;
	gnutls_certificate_credentials_t cred;
	int result;
	int version;	     /* negotiated, when result == 0 */
	unsigned init_flags; /* more gnutls_init flags */
	unsigned hellos;     /* ClientHellos the client (peer) sent */
	int group;	     /* the key exchange's group, when result == 0 */
};

static int count_hello(gnutls_session_t s, unsigned htype, unsigned when,
		       unsigned incoming, const gnutls_datum_t *msg)
{
	(void)htype, (void)when, (void)msg;
	struct peer_arg *a = gnutls_session_get_ptr(s);
	if (!incoming)
		a->hellos++;
	return 0;
}

/* A plain GnuTLS peer limited to the given priority string. */
static void *version_peer(void *p)
{
	struct peer_arg *a = p;
	gnutls_session_t s;
	const char *errpos = NULL;
	ck_assert_int_eq(
		gnutls_init(&s, (a->server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
					a->init_flags),
		0);
	ck_assert_int_eq(gnutls_priority_set_direct(s, a->priority, &errpos),
			 0);
	gnutls_session_set_ptr(s, a);
	gnutls_handshake_set_hook_function(s, GNUTLS_HANDSHAKE_CLIENT_HELLO,
					   GNUTLS_HOOK_PRE, count_hello);
	ck_assert_int_eq(
		gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, a->cred), 0);
	gnutls_transport_set_int(s, a->fd);
	int r;
	do
		r = gnutls_handshake(s);
	while (r < 0 && !gnutls_error_is_fatal(r));
	a->result = r;
	a->version = r == 0 ? (int)gnutls_protocol_get_version(s) : 0;
	a->group = r == 0 ? (int)gnutls_group_get(s) : 0;
	if (r == 0)
		gnutls_bye(s, GNUTLS_SHUT_WR);
	gnutls_deinit(s);
	close(a->fd);
	return NULL;
}

/* Handshakes one of our sessions (a server one with leaf, or a client
 * one when leaf is NULL) against a peer speaking only `priority`.
 * Returns our session's result; *peer gets the peer's. */
static int version_handshake_flags(drp_leaf_t *leaf, const char *priority,
				   unsigned init_flags, struct peer_arg *peer)
{
	int sv[2];
	signal(SIGPIPE, SIG_IGN);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	gnutls_certificate_credentials_t pc;
	ck_assert_int_eq(gnutls_certificate_allocate_credentials(&pc), 0);
	drp_leaf_t *peer_leaf = NULL;
	if (leaf == NULL) {
		/* The peer is the server: give it a forged certificate. */
		peer_leaf = drp_forge_get(forge, "registry.example");
		gnutls_certificate_free_credentials(pc);
		pc = peer_leaf->cred;
	}
	*peer = (struct peer_arg){.fd = sv[1],
				  .server = leaf == NULL,
				  .priority = priority,
				  .cred = pc,
				  .init_flags = init_flags};
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, version_peer, peer), 0);

	char err[256];
	drp_tls_client_cred_t *cc = NULL;
	drp_tls_t *t;
	if (leaf != NULL) {
		t = drp_tls_server_new(sv[0], leaf->cred);
	} else {
		cc = drp_tls_client_cred_new(NULL, false, err, sizeof(err));
		ck_assert_ptr_nonnull(cc);
		t = drp_tls_client_new(sv[0], cc, "registry.example");
	}
	ck_assert_ptr_nonnull(t);
	int r;
	while ((r = drp_tls_handshake(t)) == -EAGAIN)
		wait_fd(sv[0], drp_tls_want_write(t) ? POLLOUT : POLLIN);
	drp_tls_free(t);
	close(sv[0]);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	if (cc != NULL)
		drp_tls_client_cred_free(cc);
	if (peer_leaf != NULL)
		drp_leaf_unref(peer_leaf);
	else
		gnutls_certificate_free_credentials(pc);
	drp_tls_thread_done();
	return r;
}

static int version_handshake(drp_leaf_t *leaf, const char *priority,
			     struct peer_arg *peer)
{
	return version_handshake_flags(leaf, priority, 0, peer);
}

START_TEST(session_min_tls12)
{
	drp_leaf_t *leaf = drp_forge_get(forge, "registry.example");
	struct peer_arg peer;
	static const char *const old[] = {
		"NORMAL:-VERS-ALL:+VERS-TLS1.1",
		"NORMAL:-VERS-ALL:+VERS-TLS1.0",
	};
	for (size_t i = 0; i < sizeof(old) / sizeof(old[0]); i++) {
		/* A client that offers only an old version is refused by
		 * the intercepting (server) side ... */
		ck_assert_int_ne(version_handshake(leaf, old[i], &peer), 0);
		ck_assert_int_lt(peer.result, 0);
		/* ... and an upstream that speaks only an old version is
		 * refused by the client side. */
		ck_assert_int_ne(version_handshake(NULL, old[i], &peer), 0);
		ck_assert_int_lt(peer.result, 0);
	}
	/* TLS 1.2 and 1.3 still work both ways. */
	static const char *const ok[] = {"NORMAL:-VERS-ALL:+VERS-TLS1.2",
					 "NORMAL:-VERS-ALL:+VERS-TLS1.3"};
	static const int ver[] = {GNUTLS_TLS1_2, GNUTLS_TLS1_3};
	for (size_t i = 0; i < 2; i++) {
		ck_assert_int_eq(version_handshake(leaf, ok[i], &peer), 0);
		ck_assert_int_eq(peer.result, 0);
		ck_assert_int_eq(peer.version, ver[i]);
		ck_assert_int_eq(version_handshake(NULL, ok[i], &peer), 0);
		ck_assert_int_eq(peer.result, 0);
		ck_assert_int_eq(peer.version, ver[i]);
	}
	drp_leaf_unref(leaf);
}
END_TEST

/* Go's crypto/tls (containerd, dockerd, skopeo), OpenSSL (curl) and
 * rustls send a TLS 1.3 key share for X25519 only. Answering with a
 * group they offered but sent no share for (P-256) costs each new
 * connection a HelloRetryRequest: a second ClientHello, a second key
 * generation on the client, a round trip. The intercepting side takes
 * their X25519 share as it is, on both legs; a client that sends P-256
 * and X25519 shares (GnuTLS) gets X25519 as well. */
START_TEST(session_no_hello_retry)
{
	drp_leaf_t *leaf = drp_forge_get(forge, "registry.example");
	struct peer_arg peer;
	static const char *const x25519_top =
		"NORMAL:-VERS-ALL:+VERS-TLS1.3:-GROUP-ALL:+GROUP-X25519:"
		"+GROUP-SECP256R1:+GROUP-SECP384R1";
	ck_assert_int_eq(version_handshake_flags(leaf, x25519_top,
						 GNUTLS_KEY_SHARE_TOP, &peer),
			 0);
	ck_assert_int_eq(peer.result, 0);
	ck_assert_uint_eq(peer.hellos, 1);
	ck_assert_int_eq(peer.group, GNUTLS_GROUP_X25519);
	/* GnuTLS's own default: shares for P-256 and X25519. */
	ck_assert_int_eq(
		version_handshake_flags(leaf, "NORMAL:-VERS-ALL:+VERS-TLS1.3",
					0, &peer),
		0);
	ck_assert_uint_eq(peer.hellos, 1);
	ck_assert_int_eq(peer.group, GNUTLS_GROUP_X25519);
	/* A client that supports P-256 only still gets it (one retry is
	 * unavoidable only when it sent no usable share at all). */
	ck_assert_int_eq(
		version_handshake_flags(leaf,
					"NORMAL:-VERS-ALL:+VERS-TLS1.3:-GROUP-"
					"ALL:+GROUP-SECP256R1",
					0, &peer),
		0);
	ck_assert_uint_eq(peer.hellos, 1);
	ck_assert_int_eq(peer.group, GNUTLS_GROUP_SECP256R1);
	drp_leaf_unref(leaf);
}
END_TEST

/* ---- threads ---- */

#define NTHREADS 4

static pthread_barrier_t barrier;

static void *get_same(void *p)
{
	pthread_barrier_wait(&barrier);
	return drp_forge_get(forge, "registry.example");
}

/* Several hosts, a tiny cache: forging, hits and evictions interleave. */
static void *churn(void *p)
{
	const char *hosts[] = {"a.example", "b.example", "c.example",
			       "d.example", "e.example"};
	uintptr_t seed = (uintptr_t)p;
	pthread_barrier_wait(&barrier);
	for (int i = 0; i < 40; i++) {
		drp_leaf_t *l = drp_forge_get(forge, hosts[(seed + i * 7) % 5]);
		if (l == NULL)
			return (void *)1;
		drp_leaf_unref(l);
	}
	return NULL;
}

START_TEST(forge_threads)
{
	pthread_t th[NTHREADS];
	void *res[NTHREADS];
	ck_assert_int_eq(pthread_barrier_init(&barrier, NULL, NTHREADS), 0);
	for (int i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, get_same, NULL),
				 0);
	for (int i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_join(th[i], &res[i]), 0);
	/* Every thread got the one cached leaf. */
	for (int i = 0; i < NTHREADS; i++) {
		ck_assert_ptr_nonnull(res[i]);
		ck_assert_ptr_eq(res[i], res[0]);
	}
	ck_assert_uint_eq(((drp_leaf_t *)res[0])->_refs, NTHREADS + 1);
	ck_assert_uint_eq(drp_forge_cache_count(forge), 1);
	for (int i = 0; i < NTHREADS; i++)
		drp_leaf_unref(res[i]);

	drp_forge_set_cache_max(forge, 3);
	for (int i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, churn,
						(void *)(uintptr_t)i),
				 0);
	for (int i = 0; i < NTHREADS; i++) {
		ck_assert_int_eq(pthread_join(th[i], &res[i]), 0);
		ck_assert_ptr_null(res[i]);
	}
	ck_assert_uint_eq(drp_forge_cache_count(forge), 3);
	pthread_barrier_destroy(&barrier);
}
END_TEST

/* An old image's /ca: ca.key encrypted (both PEM forms), loaded with the
 * passphrase from a directory the daemon cannot write. */
START_TEST(ca_encrypted_key)
{
	const char *keys[] = {enc_trad_key, enc_p8_key};
	char dir[PATH_MAX], p[PATH_MAX], err[512];
	for (unsigned i = 0; i < 2; i++) {
		char name[16];
		snprintf(name, sizeof(name), "old%u", i);
		subdir(dir, name);
		ck_assert_int_eq(mkdir(dir, 0700), 0);
		write_all(path_in(p, dir, "ca.key"), keys[i], strlen(keys[i]));
		chmod(p, 0400);
		write_all(path_in(p, dir, "ca.crt"), enc_ca_crt,
			  strlen(enc_ca_crt));
		chmod(dir, 0500);

		/* No passphrase: a clear error naming the keys. */
		err[0] = '\0';
		ck_assert_ptr_null(
			drp_ca_open_pass(dir, NULL, err, sizeof(err)));
		ck_assert_msg(strstr(err, "ca.key is encrypted: set "
					  "ca_key_passphrase or "
					  "ca_key_passphrase_file"),
			      "%s", err);
		ck_assert_ptr_null(drp_ca_open(dir, err, sizeof(err)));
		/* A wrong one: says so, never echoes it. */
		err[0] = '\0';
		ck_assert_ptr_null(
			drp_ca_open_pass(dir, "wrong-pass", err, sizeof(err)));
		ck_assert_msg(strstr(err, "cannot decrypt"), "%s", err);
		ck_assert_ptr_null(strstr(err, "wrong-pass"));

		drp_ca_t *ca =
			drp_ca_open_pass(dir, "foobar", err, sizeof(err));
		ck_assert_msg(ca != NULL, "form %u: %s", i, err);
		ck_assert_int_eq(drp_ca_created(ca), 0);
		/* It signs: a forged leaf verifies against the old cert. */
		drp_forge_t *f = drp_forge_new(ca, err, sizeof(err));
		ck_assert_msg(f != NULL, "%s", err);
		drp_leaf_t *leaf = drp_forge_get(f, "registry.example");
		ck_assert_ptr_nonnull(leaf);
		gnutls_x509_crt_t c = ca_crt(ca), l = chain_crt(leaf, 0);
		unsigned status = 1;
		ck_assert_int_eq(gnutls_x509_crt_verify(l, &c, 1, 0, &status),
				 0);
		ck_assert_uint_eq(status, 0);
		gnutls_x509_crt_deinit(c);
		gnutls_x509_crt_deinit(l);
		drp_leaf_unref(leaf);
		drp_forge_free(f);
		/* Nothing was rewritten. */
		gnutls_datum_t k = read_all(path_in(p, dir, "ca.key"));
		ck_assert_uint_eq(k.size, strlen(keys[i]));
		ck_assert_int_eq(memcmp(k.data, keys[i], k.size), 0);
		gnutls_free(k.data);
		drp_ca_free(ca);
		chmod(dir, 0700);
	}
}
END_TEST

Suite *ca_suite(void)
{
	Suite *s = suite_create("ca");
	TCase *tc = tcase_create("ca");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, ca_create);
	tcase_add_test(tc, ca_reopen);
	tcase_add_test(tc, ca_key_mismatch);
	tcase_add_test(tc, ca_only_one_file);
	tcase_add_test(tc, ca_not_a_ca);
	tcase_add_test(tc, ca_bad_files);
	tcase_add_test(tc, ca_rsa_existing);
	suite_add_tcase(s, tc);

	tc = tcase_create("forge");
	tcase_add_checked_fixture(tc, forge_setup, forge_teardown);
	tcase_add_test(tc, forge_dns_leaf);
	tcase_add_test(tc, forge_ip_leaf);
	tcase_add_test(tc, forge_cache_and_serials);
	tcase_add_test(tc, forge_renew);
	tcase_add_test(tc, forge_evict_lru);
	tcase_add_test(tc, forge_invalid_hosts);
	tcase_add_test(tc, forge_handshake);
	tcase_add_test(tc, session_batched_writes);
	tcase_add_test(tc, session_sealed_key_update);
	tcase_add_test(tc, session_unsealed_versions);
	tcase_add_test(tc, session_seal_cap);
	tcase_add_test(tc, session_replay_then_seal);
	tcase_add_loop_test(tc, session_seal_fault, 0, 2);
	tcase_add_test(tc, session_min_tls12);
	tcase_add_test(tc, session_no_hello_retry);
	tcase_add_test(tc, forge_threads);
	tcase_add_test(tc, ca_encrypted_key);
	suite_add_tcase(s, tc);
	return s;
}
