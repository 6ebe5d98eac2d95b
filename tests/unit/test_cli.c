/* SPDX-License-Identifier: MIT */
/*
 * The administrator's commands on the command line (src/ctl/cli.c) run
 * in this process as `docker-registry-proxy cache ...|warm ...` runs
 * them: without a daemon, warm drives the request path on a loop of its
 * own against a fake registry (a thread of the test speaking TLS with a
 * certificate of the test's CA, which the configuration trusts), and
 * the cache commands open the cache directory that warm filled; with a
 * daemon (here a fake one on the admin socket), the command is relayed
 * and its output and exit status passed on. The standard output and
 * error are captured into files and read back.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <jansson.h>

#include "cache/cache.h"
#include "conf/conf.h"
#include "ctl/cli.h"
#include "ctl/cmd.h"
#include "tls/ca.h"
#include "loopback.h"

Suite *cli_suite(void);

/* ---- the fake registry: objects by path, GET and HEAD counted ---- */

enum {
	O_INDEX,      /* /v2/team/app/manifests/v1: an OCI index */
	O_AMD64,      /* its linux/amd64 image manifest */
	O_ARM64,      /* its linux/arm64 image manifest */
	O_CONFIG,     /* the config both use */
	O_LAYER1,     /* amd64's layer */
	O_LAYER2,     /* arm64's layer */
	O_BROKEN,     /* /v2/team/broken/manifests/v1: a layer missing */
	O_BROKEN_CFG, /* its config blob, served */
	N_OBJ
};

typedef struct obj {
	char path[256];
	const char *ctype;
	char *body;
	size_t len;
	char digest[72];
	atomic_uint gets, heads;
} obj_t;

#define MAX_CONNS 64

static struct {
	char base[32]; /* the CA's, and the tests' directories */
	char dir[64];  /* this test's */
	char cadir[128], upca[128], cache[128];
	drp_ca_t *ca;
	drp_forge_t *forge;
	drp_leaf_t *leaf;
	int lfd;
	uint16_t port;
	pthread_t th;
	pthread_t conn_th[MAX_CONNS];
	int conn_fd[MAX_CONNS];
	atomic_uint n_conns;
	obj_t obj[N_OBJ];
	atomic_uint other; /* requests for anything else */
} R;

static void sha256_of(const char *p, size_t n, char out[72])
{
	unsigned char md[32];
	gnutls_hash_fast(GNUTLS_DIG_SHA256, p, n, md);
	strcpy(out, "sha256:");
	for (int i = 0; i < 32; i++)
		sprintf(out + 7 + 2 * i, "%02x", md[i]);
}

static void obj_set(int i, const char *path, const char *ctype, char *body,
		    size_t len)
{
	obj_t *o = &R.obj[i];
	o->ctype = ctype;
	o->body = body;
	o->len = len;
	char d[72];
	sha256_of(body, len, d);
	memcpy(o->digest, d, sizeof(d));
	if (path)
		memcpy(o->path, path, strlen(path) + 1); /* a literal */
	else
		snprintf(o->path, sizeof(o->path), "/v2/team/app/blobs/%s", d);
}

static char *xprintf(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static char *xprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	ck_assert_int_ge(vasprintf(&s, fmt, ap), 0);
	va_end(ap);
	return s;
}

#define MT_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_IMAGE "application/vnd.oci.image.manifest.v1+json"
#define MT_CFG	 "application/vnd.oci.image.config.v1+json"
#define MT_LAYER "application/vnd.oci.image.layer.v1.tar+gzip"

static char *image_manifest(const obj_t *cfg, const obj_t *layer)
{
	return xprintf("{\"schemaVersion\":2,\"mediaType\":\"" MT_IMAGE "\","
		       "\"config\":{\"mediaType\":\"" MT_CFG "\",\"digest\":"
		       "\"%s\",\"size\":%zu},\"layers\":[{\"mediaType\":"
		       "\"" MT_LAYER "\",\"digest\":\"%s\",\"size\":%zu}]}",
		       cfg->digest, cfg->len, layer->digest, layer->len);
}

static void objects_make(void)
{
	char *cfg = xprintf("{\"architecture\":\"amd64\",\"os\":\"linux\"}");
	obj_set(O_CONFIG, NULL, MT_CFG, cfg, strlen(cfg));
	for (int l = 0; l < 2; l++) {
		/* 70 kB: more than one read of the proxy's buffers */
		size_t len = 70 * 1000 + (size_t)l;
		char *b = malloc(len);
		for (size_t i = 0; i < len; i++)
			b[i] = (char)((i * 31 + (size_t)l * 7) % 251);
		obj_set(l ? O_LAYER2 : O_LAYER1, NULL, MT_LAYER, b, len);
	}
	char *m = image_manifest(&R.obj[O_CONFIG], &R.obj[O_LAYER1]);
	obj_set(O_AMD64, NULL, MT_IMAGE, m, strlen(m));
	m = image_manifest(&R.obj[O_CONFIG], &R.obj[O_LAYER2]);
	obj_set(O_ARM64, NULL, MT_IMAGE, m, strlen(m));
	for (int i = O_AMD64; i <= O_ARM64; i++)
		snprintf(R.obj[i].path, sizeof(R.obj[i].path),
			 "/v2/team/app/manifests/%s", R.obj[i].digest);
	char *ix = xprintf(
		"{\"schemaVersion\":2,\"mediaType\":\"" MT_INDEX "\","
		"\"manifests\":[{\"mediaType\":\"" MT_IMAGE "\",\"digest\":"
		"\"%s\",\"size\":%zu,\"platform\":{\"architecture\":\"amd64\","
		"\"os\":\"linux\"}},{\"mediaType\":\"" MT_IMAGE "\",\"digest\":"
		"\"%s\",\"size\":%zu,\"platform\":{\"architecture\":\"arm64\","
		"\"os\":\"linux\",\"variant\":\"v8\"}}]}",
		R.obj[O_AMD64].digest, R.obj[O_AMD64].len,
		R.obj[O_ARM64].digest, R.obj[O_ARM64].len);
	obj_set(O_INDEX, "/v2/team/app/manifests/v1", MT_INDEX, ix, strlen(ix));
	/* team/broken:v1 names the config (served under its repository)
	 * and a layer nobody has. */
	char *bc = xprintf("{\"architecture\":\"amd64\",\"os\":\"linux\","
			   "\"broken\":true}");
	obj_set(O_BROKEN_CFG, NULL, MT_CFG, bc, strlen(bc));
	snprintf(R.obj[O_BROKEN_CFG].path, sizeof(R.obj[O_BROKEN_CFG].path),
		 "/v2/team/broken/blobs/%s", R.obj[O_BROKEN_CFG].digest);
	obj_t missing = {.len = 12};
	strcpy(missing.digest, "sha256:"
			       "00000000000000000000000000000000"
			       "00000000000000000000000000000001");
	m = image_manifest(&R.obj[O_BROKEN_CFG], &missing);
	obj_set(O_BROKEN, "/v2/team/broken/manifests/v1", MT_IMAGE, m,
		strlen(m));
}

static bool tls_send_all(gnutls_session_t s, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = gnutls_record_send(s, p, n);
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
			continue;
		if (r <= 0)
			return false;
		p += r;
		n -= (size_t)r;
	}
	return true;
}

static void *conn_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	gnutls_session_t s;
	gnutls_init(&s, GNUTLS_SERVER);
	gnutls_set_default_priority(s);
	gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, R.leaf->cred);
	gnutls_transport_set_int(s, fd);
	int r;
	do
		r = gnutls_handshake(s);
	while (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED);
	char buf[8192];
	size_t have = 0;
	while (r >= 0) {
		char *end = have ? memmem(buf, have, "\r\n\r\n", 4) : NULL;
		if (end == NULL) {
			if (have == sizeof(buf))
				break;
			ssize_t n = gnutls_record_recv(s, buf + have,
						       sizeof(buf) - have);
			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
				continue;
			if (n <= 0)
				break;
			have += (size_t)n;
			continue;
		}
		size_t hl = (size_t)(end - buf) + 4;
		char method[8] = "", path[512] = "";
		*end = '\0'; /* the head as a string */
		sscanf(buf, "%7s %511s", method, path);
		memmove(buf, buf + hl, have - hl);
		have -= hl;
		bool head = strcmp(method, "HEAD") == 0;
		obj_t *o = NULL;
		for (int i = 0; i < N_OBJ; i++)
			if (strcmp(R.obj[i].path, path) == 0)
				o = &R.obj[i];
		char hdr[1024];
		const char *body;
		size_t blen;
		if (o) {
			atomic_fetch_add(head ? &o->heads : &o->gets, 1);
			snprintf(hdr, sizeof(hdr),
				 "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n"
				 "Content-Length: %zu\r\n"
				 "Docker-Content-Digest: %s\r\n\r\n",
				 o->ctype, o->len, o->digest);
			body = o->body;
			blen = o->len;
		} else {
			atomic_fetch_add(&R.other, 1);
			body = strcmp(path, "/v2/") == 0
				       ? "{}"
				       : "{\"errors\":[{\"code\":"
					 "\"MANIFEST_UNKNOWN\"}]}";
			blen = strlen(body);
			snprintf(hdr, sizeof(hdr),
				 "HTTP/1.1 %s\r\nContent-Type: "
				 "application/json\r\n"
				 "Content-Length: %zu\r\n\r\n",
				 strcmp(path, "/v2/") == 0 ? "200 OK"
							   : "404 Not Found",
				 blen);
		}
		if (!tls_send_all(s, hdr, strlen(hdr)) ||
		    (!head && !tls_send_all(s, body, blen)))
			break;
	}
	gnutls_deinit(s);
	return NULL;
}

static void *accept_main(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept4(R.lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			return NULL;
		unsigned i = atomic_load(&R.n_conns);
		if (i >= MAX_CONNS) {
			close(fd);
			continue;
		}
		R.conn_fd[i] = fd;
		pthread_create(&R.conn_th[i], NULL, conn_main,
			       (void *)(intptr_t)fd);
		atomic_store(&R.n_conns, i + 1);
	}
}

static int rm_cb(const char *path, const struct stat *st, int flag,
		 struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

/* Once per program: the CA (slow to make), the registry's objects. */
static void setup_once(void)
{
	signal(SIGPIPE, SIG_IGN);
	gnutls_global_init();
	memset(&R, 0, sizeof(R));
	snprintf(R.base, sizeof(R.base), "/tmp/drp_cli.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(R.base));
	snprintf(R.cadir, sizeof(R.cadir), "%s/ca", R.base);
	snprintf(R.upca, sizeof(R.upca), "%s/upstream-ca.pem", R.base);
	char err[512] = "";
	R.ca = drp_ca_open(R.cadir, err, sizeof(err));
	ck_assert_msg(R.ca != NULL, "%s", err);
	R.forge = drp_forge_new(R.ca, err, sizeof(err));
	ck_assert_msg(R.forge != NULL, "%s", err);
	R.leaf = drp_forge_get(R.forge, "registry.test");
	ck_assert_ptr_nonnull(R.leaf);
	size_t pem_len;
	const char *pem = drp_ca_pem(R.ca, &pem_len);
	FILE *pf = fopen(R.upca, "w");
	ck_assert_ptr_nonnull(pf);
	ck_assert_uint_eq(fwrite(pem, 1, pem_len, pf), pem_len);
	ck_assert_int_eq(fclose(pf), 0);
	objects_make();
}

static void teardown_once(void)
{
	for (int i = 0; i < N_OBJ; i++)
		free(R.obj[i].body);
	drp_leaf_unref(R.leaf);
	drp_forge_free(R.forge);
	drp_ca_free(R.ca);
	nftw(R.base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	gnutls_global_deinit();
}

/* Per test: a directory of its own (cache, logs, sockets), the fake
 * registry started with its counters at zero. */
static void setup(void)
{
	snprintf(R.dir, sizeof(R.dir), "%s/t.XXXXXX", R.base);
	ck_assert_ptr_nonnull(mkdtemp(R.dir));
	snprintf(R.cache, sizeof(R.cache), "%s/cache", R.dir);
	for (int i = 0; i < N_OBJ; i++) {
		atomic_store(&R.obj[i].gets, 0);
		atomic_store(&R.obj[i].heads, 0);
	}
	atomic_store(&R.other, 0);
	atomic_store(&R.n_conns, 0);
	R.lfd = test_listen_loopback(64, &R.port);
	ck_assert_int_eq(pthread_create(&R.th, NULL, accept_main, NULL), 0);
}

static void teardown(void)
{
	shutdown(R.lfd, SHUT_RDWR);
	pthread_join(R.th, NULL);
	close(R.lfd);
	unsigned n = atomic_load(&R.n_conns);
	for (unsigned i = 0; i < n; i++) {
		shutdown(R.conn_fd[i], SHUT_RDWR);
		pthread_join(R.conn_th[i], NULL);
		close(R.conn_fd[i]);
	}
	nftw(R.dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- running a command ---- */

static drp_conf_t *conf_with(const char *extra)
{
	char text[4096];
	snprintf(text, sizeof(text),
		 "[proxy]\n"
		 "listen = 127.0.0.1:3128\n"
		 "registries = registry.test\n"
		 "ca_dir = %s\n"
		 "upstream_ca_file = %s\n"
		 "access_log = %s/access.log\n"
		 "%s"
		 "[resolve]\n"
		 "registry.test = 127.0.0.1:%u\n"
		 "[cache]\n"
		 "dir = %s\n",
		 R.cadir, R.upca, R.dir, extra ? extra : "", R.port, R.cache);
	drp_conf_errors_t errs = {0};
	drp_conf_t *conf = drp_conf_load_string("cli.ini", text, &errs);
	ck_assert_msg(conf != NULL, "%s", errs.n ? errs.msg[0] : "?");
	return conf;
}

typedef struct run {
	int status;
	char *out, *err;
} run_t;

static char *slurp(FILE *f)
{
	fflush(f);
	long n = ftell(f);
	char *s = calloc(1, (size_t)n + 1);
	rewind(f);
	ck_assert_uint_eq(fread(s, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return s;
}

/* drp_ctl_main(conf, words...) with stdout and stderr captured. */
static run_t run_conf(drp_conf_t *conf, const char *words)
{
	char buf[1024], *argv[16];
	int argc = 0;
	snprintf(buf, sizeof(buf), "%s", words);
	for (char *p = strtok(buf, " "); p && argc < 16; p = strtok(NULL, " "))
		argv[argc++] = p;
	fflush(stdout);
	fflush(stderr);
	FILE *o = tmpfile(), *e = tmpfile();
	int so = dup(1), se = dup(2);
	dup2(fileno(o), 1);
	dup2(fileno(e), 2);
	run_t r = {.status = drp_ctl_main(conf, NULL, argc, argv)};
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	close(so);
	close(se);
	fseek(o, 0, SEEK_END);
	fseek(e, 0, SEEK_END);
	r.out = slurp(o);
	r.err = slurp(e);
	return r;
}

static run_t run(const char *words)
{
	return run_conf(conf_with(NULL), words);
}

static void run_free(run_t *r)
{
	free(r->out);
	free(r->err);
}

#define ck_run(r, st)                                                          \
	ck_assert_msg((r).status == (st), "status %d\nout:\n%s\nerr:\n%s",     \
		      (r).status, (r).out, (r).err)
#define ck_has(s, sub)                                                         \
	ck_assert_msg(strstr((s), (sub)) != NULL, "no \"%s\" in:\n%s", (sub),  \
		      (s))
#define ck_hasnt(s, sub)                                                       \
	ck_assert_msg(strstr((s), (sub)) == NULL, "\"%s\" in:\n%s", (sub), (s))

/* ---- the tests ---- */

/*
 * warm --platform fetches the index, the chosen platform's manifest,
 * its config and layer, and nothing of the other platform; a second
 * warm finds everything cached and asks upstream for the tag only; the
 * cache commands then see the image, verify it, and purge it.
 */
START_TEST(warm_list_verify_purge)
{
	run_t r = run("warm --platform linux/amd64 registry.test/team/app:v1");
	ck_run(r, 0);
	ck_has(r.out, "warm registry.test/team/app:v1");
	ck_has(r.out, "1 of 2 manifest(s) (linux/amd64)");
	ck_has(r.out, "warmed registry.test/team/app:v1: 4 object(s), "
		      "4 fetched");
	ck_has(r.out, "0 failed");
	ck_assert_str_eq(r.err, "");
	run_free(&r);
	/* Its requests are in the access log, as the client "warm". */
	char alog[256];
	snprintf(alog, sizeof(alog), "%s/access.log", R.dir);
	FILE *af = fopen(alog, "r");
	ck_assert_ptr_nonnull(af);
	fseek(af, 0, SEEK_END);
	char *acc = slurp(af);
	ck_has(acc, " warm registry.test:443 GET /v2/team/app/manifests/v1 "
		    "200 ");
	char want[300];
	snprintf(want, sizeof(want), "GET %s 200 ", R.obj[O_LAYER1].path);
	ck_has(acc, want);
	free(acc);
	ck_assert_uint_eq(R.obj[O_AMD64].gets, 1);
	ck_assert_uint_eq(R.obj[O_LAYER1].gets, 1);
	ck_assert_uint_eq(R.obj[O_CONFIG].gets, 1);
	ck_assert_uint_eq(R.obj[O_ARM64].gets + R.obj[O_ARM64].heads, 0);
	ck_assert_uint_eq(R.obj[O_LAYER2].gets + R.obj[O_LAYER2].heads, 0);
	unsigned tag_asks = R.obj[O_INDEX].gets + R.obj[O_INDEX].heads;
	ck_assert_uint_ge(tag_asks, 1);

	/* Again: only the tag is revalidated upstream. */
	r = run("warm --platform=linux/amd64 registry.test/team/app:v1");
	ck_run(r, 0);
	ck_has(r.out, "already cached");
	ck_has(r.out, "0 fetched");
	run_free(&r);
	ck_assert_uint_eq(R.obj[O_AMD64].gets, 1);
	ck_assert_uint_eq(R.obj[O_LAYER1].gets, 1);
	ck_assert_uint_eq(R.obj[O_CONFIG].gets, 1);
	ck_assert_uint_gt(R.obj[O_INDEX].gets + R.obj[O_INDEX].heads, tag_asks);

	r = run("cache list");
	ck_run(r, 0);
	ck_has(r.out, "team/app");
	ck_has(r.out, "v1");
	run_free(&r);

	r = run("cache list --json");
	ck_run(r, 0);
	json_error_t je;
	json_t *doc = json_loads(r.out, JSON_DISABLE_EOF_CHECK, &je);
	ck_assert_msg(doc != NULL, "%s: %s", je.text, r.out);
	char *dump = json_dumps(doc, 0);
	ck_has(dump, "team/app");
	ck_has(dump, R.obj[O_LAYER1].digest + 7);
	free(dump);
	json_decref(doc);
	run_free(&r);

	r = run("cache verify");
	ck_run(r, 0);
	run_free(&r);

	r = run("cache purge registry.test/team/app:v1");
	ck_run(r, 0);
	run_free(&r);
	r = run("cache list --json");
	ck_run(r, 0);
	ck_hasnt(r.out, R.obj[O_LAYER1].digest + 7);
	run_free(&r);
	/* Nothing left to purge: a failure. */
	r = run("cache purge registry.test/team/app:v1");
	ck_run(r, 1);
	run_free(&r);
}
END_TEST

/* Without --platform every manifest of the index is warmed. */
START_TEST(warm_all_platforms)
{
	run_t r = run("warm registry.test/team/app:v1");
	ck_run(r, 0);
	ck_has(r.out, "2 of 2 manifest(s) (linux/amd64, linux/arm64/v8)");
	ck_has(r.out, "warmed registry.test/team/app:v1: 6 object(s)");
	run_free(&r);
	ck_assert_uint_eq(R.obj[O_ARM64].gets, 1);
	ck_assert_uint_eq(R.obj[O_LAYER2].gets, 1);
	ck_assert_uint_eq(R.obj[O_LAYER1].gets, 1);
	/* The shared config is fetched once. */
	ck_assert_uint_eq(R.obj[O_CONFIG].gets, 1);
}
END_TEST

/* What cannot be warmed is said, and the status is 1. */
START_TEST(warm_failures)
{
	run_t r = run("warm registry.test/team/broken:v1");
	ck_run(r, 1);
	ck_has(r.err, "upstream answered 404");
	ck_has(r.err, "incomplete registry.test/team/broken:v1");
	ck_has(r.err, "1 failed");
	run_free(&r);
	ck_assert_uint_eq(R.obj[O_BROKEN_CFG].gets, 1);

	r = run("warm registry.test/team/app:nosuchtag");
	ck_run(r, 1);
	ck_has(r.err, "upstream answered 404");
	run_free(&r);

	r = run("warm --platform linux/s390x registry.test/team/app:v1");
	ck_run(r, 1);
	ck_has(r.err, "no manifest in");
	run_free(&r);
	ck_assert_uint_eq(R.obj[O_AMD64].gets + R.obj[O_ARM64].gets, 0);

	r = run("warm other.test/x:1");
	ck_run(r, 1);
	ck_has(r.err, "is not a registry this proxy intercepts");
	run_free(&r);

	/* Malformed: usage, nothing asked upstream. */
	unsigned before = R.other;
	r = run("warm registry.test/Bad:1");
	ck_run(r, 2);
	ck_has(r.err, "registry.test/Bad:1");
	run_free(&r);
	r = run("warm --platform linux registry.test/team/app:v1");
	ck_run(r, 2);
	run_free(&r);
	ck_assert_uint_eq(R.other, before);
}
END_TEST

/* The command line's mistakes, and the cache commands where they
 * cannot work. */
START_TEST(usage_and_refusals)
{
	run_t r = run("cache");
	ck_run(r, 2);
	ck_has(r.err, "usage:");
	run_free(&r);

	/* Nothing cached yet: list is empty but fine, verify too. */
	r = run("cache list");
	ck_run(r, 0);
	ck_hasnt(r.out, "team/app");
	run_free(&r);
	r = run("cache verify");
	ck_run(r, 0);
	run_free(&r);
	r = run("cache purge registry.test/team/app:v1");
	ck_run(r, 1);
	run_free(&r);

	/* The memory cache lives in the daemon only. */
	r = run_conf(conf_with(NULL), "cache list");
	run_free(&r);
	char text[512];
	snprintf(text, sizeof(text), "[cache]\nbackend = memory\n");
	drp_conf_errors_t errs = {0};
	drp_conf_t *mc = drp_conf_load_string("mem.ini", text, &errs);
	ck_assert_ptr_nonnull(mc);
	free(mc->ca_dir);
	mc->ca_dir = strdup(R.cadir);
	r = run_conf(mc, "cache list");
	ck_run(r, 1);
	ck_has(r.err, "lives only in the daemon");
	run_free(&r);
}
END_TEST

/* A cache directory held by another (here: this test's own open) is
 * refused with the way out. */
START_TEST(cache_busy)
{
	const drp_cache_api_t *api = drp_cache_fs();
	drp_cache_t *db;
	drp_cache_stats_t st = {0};
	drp_cache_conf_t cc = {.dir = R.cache, .max_size = 1 << 30};
	char err[512];
	ck_assert_int_eq(api->open(&db, &cc, &st, err, sizeof(err)), 0);
	run_t r = run("cache list");
	ck_run(r, 1);
	ck_has(r.err, "in use by a daemon");
	run_free(&r);
	api->close(db, &st);
}
END_TEST

/* ---- through a daemon: a fake one on the admin socket ---- */

static struct {
	int lfd;
	pthread_t th;
	const char *answer; /* sent after the request line */
	char request[1024];
} D;

static void *daemon_main(void *arg)
{
	(void)arg;
	int fd = accept(D.lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	size_t n = 0;
	while (n + 1 < sizeof(D.request)) {
		ssize_t r = recv(fd, D.request + n, 1, 0);
		if (r <= 0 || D.request[n] == '\n')
			break;
		n++;
	}
	D.request[n] = '\0';
	(void)!write(fd, D.answer, strlen(D.answer));
	close(fd);
	return NULL;
}

static run_t through_daemon(const char *answer, const char *words)
{
	char path[256], extra[300];
	snprintf(path, sizeof(path), "%s/admin-test.sock", R.dir);
	unlink(path);
	D.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/admin-test.sock",
		 R.dir);
	ck_assert_int_eq(bind(D.lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(listen(D.lfd, 4), 0);
	D.answer = answer;
	D.request[0] = '\0';
	ck_assert_int_eq(pthread_create(&D.th, NULL, daemon_main, NULL), 0);
	snprintf(extra, sizeof(extra), "admin_socket = %s\n", path);
	run_t r = run_conf(conf_with(extra), words);
	pthread_join(D.th, NULL);
	close(D.lfd);
	return r;
}

START_TEST(relayed)
{
	run_t r = through_daemon("o first line\ne a warning\no second\nx 3\n"
				 "o after the end\n",
				 "cache purge registry.test/a:1");
	ck_run(r, 3);
	ck_assert_str_eq(r.out, "first line\nsecond\n");
	ck_assert_str_eq(r.err, "a warning\n");
	json_t *req = json_loads(D.request, 0, NULL);
	ck_assert_ptr_nonnull(req);
	ck_assert_str_eq(json_string_value(json_object_get(req, "op")),
			 "purge");
	ck_assert_str_eq(json_string_value(json_array_get(
				 json_object_get(req, "args"), 0)),
			 "registry.test/a:1");
	json_decref(req);
	run_free(&r);
	/* No cache was opened for it. */
	struct stat st;
	ck_assert_int_ne(stat(R.cache, &st), 0);

	/* The daemon went away before the status: a failure. */
	r = through_daemon("o partial\n", "cache list");
	ck_run(r, 1);
	ck_assert_str_eq(r.out, "partial\n");
	ck_has(r.err, "closed the admin connection before the end");
	run_free(&r);
}
END_TEST

/* ---- through the daemon: the real program, started by the test ---- */

/* A free loopback port (the daemon binds it with SO_REUSEPORT). */
static unsigned free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sin);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sl), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

static char *program(void)
{
	static char path[4096];
	const char *b = getenv("top_builddir");
	snprintf(path, sizeof(path), "%s/docker-registry-proxy", b ? b : ".");
	return path;
}

/* Run the program with args (words, or NULL) and NOTIFY_SOCKET notify
 * (or none); stdout and stderr into out (a path). Returns the pid, or
 * waits and returns the exit status when wait is set. */
static int spawn(const char *words, const char *notify, const char *out,
		 bool wait)
{
	char buf[1024], *argv[24];
	int argc = 0;
	argv[argc++] = program();
	snprintf(buf, sizeof(buf), "%s", words);
	for (char *p = strtok(buf, " "); p && argc < 23; p = strtok(NULL, " "))
		argv[argc++] = p;
	argv[argc] = NULL;
	/* The child's environment is made here: after fork, in a process
	 * with threads, only async-signal-safe calls. */
	extern char **environ;
	size_t ne = 0;
	while (environ[ne])
		ne++;
	char **envp = calloc(ne + 2, sizeof(*envp)), nsock[300];
	size_t k = 0;
	for (size_t i = 0; i < ne; i++)
		if (strncmp(environ[i], "NOTIFY_SOCKET=", 14) != 0)
			envp[k++] = environ[i];
	if (notify) {
		snprintf(nsock, sizeof(nsock), "NOTIFY_SOCKET=%s", notify);
		envp[k++] = nsock;
	}
	envp[k] = NULL;
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		dup2(fd, 2);
		execve(argv[0], argv, envp);
		_exit(127);
	}
	free(envp);
	if (!wait)
		return pid;
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static char *file_text(const char *path)
{
	FILE *f = fopen(path, "r");
	ck_assert_msg(f != NULL, "%s", path);
	fseek(f, 0, SEEK_END);
	return slurp(f);
}

/* The next state the daemon tells systemd; it must be want. */
static void wait_notify(int nfd, const char *want, const char *log)
{
	char msg[512];
	ssize_t n = recv(nfd, msg, sizeof(msg) - 1, 0);
	if (n < 0) {
		char *t = file_text(log);
		ck_abort_msg("no %s from the daemon: %s\n%s", want,
			     strerror(errno), t);
	}
	msg[n] = '\0';
	ck_assert_msg(strncmp(msg, want, strlen(want)) == 0, "%s, not %s", msg,
		      want);
}

START_TEST(real_daemon)
{
	char conf_path[256], sock[256], notify[256], log[256], out[256],
		pidf[256], extra[1024];
	snprintf(conf_path, sizeof(conf_path), "%s/daemon.ini", R.dir);
	snprintf(sock, sizeof(sock), "%s/admin.sock", R.dir);
	snprintf(notify, sizeof(notify), "%s/notify", R.dir);
	snprintf(log, sizeof(log), "%s/daemon.log", R.dir);
	snprintf(out, sizeof(out), "%s/client.out", R.dir);
	snprintf(pidf, sizeof(pidf), "%s/daemon.pid", R.dir);
	unsigned port = free_port();
	snprintf(extra, sizeof(extra),
		 "admin_socket = %s\n"
		 "workers = 1\n"
		 "error_log = %s/error.log\n",
		 sock, R.dir);
	/* The file the daemon reads: conf_with's text, listening. */
	FILE *cf = fopen(conf_path, "w");
	ck_assert_ptr_nonnull(cf);
	fprintf(cf,
		"[proxy]\n"
		"listen = 127.0.0.1:%u\n"
		"registries = registry.test\n"
		"ca_dir = %s\n"
		"upstream_ca_file = %s\n"
		"access_log = %s/access.log\n"
		"%s"
		"[resolve]\n"
		"registry.test = 127.0.0.1:%u\n"
		"[cache]\n"
		"dir = %s\n",
		port, R.cadir, R.upca, R.dir, extra, R.port, R.cache);
	ck_assert_int_eq(fclose(cf), 0);

	int nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/notify", R.dir);
	ck_assert_int_eq(bind(nfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	struct timeval tv = {.tv_sec = 60};
	setsockopt(nfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	/* -t checks the file without starting. */
	char words[1024];
	snprintf(words, sizeof(words), "-t -c %s", conf_path);
	ck_assert_int_eq(spawn(words, NULL, out, true), 0);
	char *t = file_text(out);
	ck_has(t, "configuration OK");
	free(t);

	snprintf(words, sizeof(words), "-c %s -p %s", conf_path, pidf);
	pid_t pid = spawn(words, notify, log, false);
	wait_notify(nfd, "READY=1", log);
	t = file_text(pidf);
	ck_assert_int_eq(atoi(t), pid);
	free(t);

	/* warm through the daemon: its loop fetches, the lines come back. */
	run_t r = run_conf(conf_with(extra), "warm --platform linux/amd64 "
					     "registry.test/team/app:v1");
	ck_run(r, 0);
	ck_has(r.out, "warmed registry.test/team/app:v1: 4 object(s), "
		      "4 fetched");
	run_free(&r);
	ck_assert_uint_eq(R.obj[O_LAYER1].gets, 1);
	ck_assert_uint_eq(R.obj[O_LAYER2].gets, 0);
	r = run_conf(conf_with(extra), "warm other.test/x:1");
	ck_run(r, 1);
	ck_has(r.err, "is not a registry this proxy intercepts");
	run_free(&r);

	/* The cache commands run in the daemon (the cache is its). */
	r = run_conf(conf_with(extra), "cache list");
	ck_run(r, 0);
	ck_has(r.out, "team/app");
	run_free(&r);
	r = run_conf(conf_with(extra), "cache verify");
	ck_run(r, 0);
	run_free(&r);
	r = run_conf(conf_with(extra), "cache purge registry.test/team/no:1");
	ck_run(r, 1);
	run_free(&r);

	/* The program as a client of its daemon. */
	snprintf(words, sizeof(words), "-c %s cache list --json", conf_path);
	ck_assert_int_eq(spawn(words, NULL, out, true), 0);
	t = file_text(out);
	ck_has(t, R.obj[O_LAYER1].digest + 7);
	free(t);
	snprintf(words, sizeof(words), "-c %s --cache-stats", conf_path);
	ck_assert_int_eq(spawn(words, NULL, out, true), 0);
	t = file_text(out);
	ck_has(t, "cache statistics of the running proxy");
	free(t);

	/* A second daemon on the same admin socket is refused. */
	char conf2[256], cache2[256];
	snprintf(conf2, sizeof(conf2), "%s/second.ini", R.dir);
	snprintf(cache2, sizeof(cache2), "%s/cache2", R.dir);
	cf = fopen(conf2, "w");
	fprintf(cf,
		"[proxy]\nlisten = 127.0.0.1:%u\nca_dir = %s\n"
		"admin_socket = %s\nworkers = 1\n[cache]\ndir = %s\n",
		free_port(), R.cadir, sock, cache2);
	fclose(cf);
	snprintf(words, sizeof(words), "-c %s", conf2);
	ck_assert_int_eq(spawn(words, NULL, out, true), 1);
	t = file_text(out);
	ck_has(t, "another daemon answers there");
	free(t);

	/* Logs reopened, configuration reloaded, still serving. */
	ck_assert_int_eq(kill(pid, SIGUSR1), 0);
	ck_assert_int_eq(kill(pid, SIGHUP), 0);
	wait_notify(nfd, "RELOADING=1", log);
	wait_notify(nfd, "READY=1", log);
	r = run_conf(conf_with(extra), "cache purge registry.test/team/app:v1");
	ck_run(r, 0);
	run_free(&r);

	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	wait_notify(nfd, "STOPPING=1", log);
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		/* Its stderr (a sanitizer's report goes there) and its log. */
		char elog[300];
		snprintf(elog, sizeof(elog), "%s/error.log", R.dir);
		char *dl = file_text(log), *el = file_text(elog);
		fprintf(stderr,
			"-- the daemon's stderr:\n%s\n"
			"-- its error_log:\n%s\n",
			dl, el);
		ck_abort_msg("the daemon ended with status %#x (its stderr "
			     "and error_log above)",
			     (unsigned)st);
	}
	struct stat sb;
	ck_assert_int_ne(stat(sock, &sb), 0); /* removed */
	ck_assert_int_ne(stat(pidf, &sb), 0);
	close(nfd);

	/* No daemon now: the statistics come from the directory. */
	snprintf(words, sizeof(words), "-c %s --cache-stats", conf_path);
	ck_assert_int_eq(spawn(words, NULL, out, true), 0);
	t = file_text(out);
	ck_has(t, "no running proxy answered");
	ck_has(t, "objects");
	free(t);
}
END_TEST

/* The daemon stops while a cache command's answer is still being sent:
 * the command's completion then runs in drp_pool_free, after the
 * workers are gone, and must not reach them (it did: a use after free,
 * which made the daemon exit 1 under ASan; real_daemon hit it when its
 * SIGTERM came before the loop ran a finished command's completion).
 * Made certain here: an answer far larger than the socket holds, to a
 * client that reads none of it until the daemon has freed its workers
 * ("stopped" in its log). */
START_TEST(stop_while_answering)
{
	char conf_path[256], sock[256], log[256], elog[256];
	snprintf(conf_path, sizeof(conf_path), "%s/daemon.ini", R.dir);
	snprintf(sock, sizeof(sock), "%s/admin.sock", R.dir);
	snprintf(log, sizeof(log), "%s/daemon.log", R.dir);
	snprintf(elog, sizeof(elog), "%s/error.log", R.dir);
	FILE *cf = fopen(conf_path, "w");
	ck_assert_ptr_nonnull(cf);
	fprintf(cf,
		"[proxy]\nlisten = 127.0.0.1:%u\nca_dir = %s\n"
		"admin_socket = %s\nworkers = 1\nerror_log = %s\n"
		"[cache]\ndir = %s\n",
		free_port(), R.cadir, sock, elog, R.cache);
	ck_assert_int_eq(fclose(cf), 0);
	/* 5,000 objects: `cache list --json` is one line of about 700 KiB,
	 * which the daemon sends in one go once it is made. */
	char path[512];
	snprintf(path, sizeof(path), "%s/blobs/sha256", R.cache);
	for (char *q = strchr(path + 1, '/'); q; q = strchr(q + 1, '/')) {
		*q = '\0';
		mkdir(path, 0700);
		*q = '/';
	}
	mkdir(path, 0700);
	for (unsigned i = 0; i < 5000; i++) {
		char body[16], dg[72];
		int n = snprintf(body, sizeof(body), "%u", i);
		sha256_of(body, (size_t)n, dg);
		snprintf(path, sizeof(path), "%s/blobs/sha256/%.2s", R.cache,
			 dg + 7);
		mkdir(path, 0700);
		size_t pl = strlen(path);
		snprintf(path + pl, sizeof(path) - pl, "/%s", dg + 7);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, body, (size_t)n), n);
		close(fd);
	}

	int nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/notify", R.dir);
	ck_assert_int_eq(bind(nfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	struct timeval tv = {.tv_sec = 60};
	setsockopt(nfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char words[512];
	snprintf(words, sizeof(words), "-c %s", conf_path);
	pid_t pid = spawn(words, sun.sun_path, log, false);
	wait_notify(nfd, "READY=1", log);

	/* The command, and then nothing read. */
	int cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un csun = {.sun_family = AF_UNIX};
	snprintf(csun.sun_path, sizeof(csun.sun_path), "%.100s", sock);
	ck_assert_int_eq(connect(cfd, (struct sockaddr *)&csun, sizeof(csun)),
			 0);
	char w0[] = "cache", w1[] = "list", w2[] = "--json";
	char *argv[] = {w0, w1, w2};
	drp_ctl_cmd_t cmd;
	ck_assert_int_eq(drp_ctl_cmd_parse(3, argv, &cmd, stderr), 0);
	char *line = drp_ctl_cmd_encode(&cmd);
	drp_ctl_cmd_free(&cmd);
	size_t ll = strlen(line);
	ck_assert_int_eq(write(cfd, line, ll), (ssize_t)ll);
	ck_assert_int_eq(write(cfd, "\n", 1), 1);
	free(line);
	/* The answer is under way (and cannot all fit) once 64 KiB wait. */
	int queued = 0;
	for (int i = 0; i < 6000 && queued < 65536; i++) {
		ck_assert_int_eq(ioctl(cfd, FIONREAD, &queued), 0);
		if (queued < 65536)
			usleep(10000);
	}
	ck_assert_msg(queued >= 65536, "only %d bytes of the answer", queued);

	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	wait_notify(nfd, "STOPPING=1", log);
	/* The workers are freed before "stopped" is logged; the command's
	 * job still waits to send the rest. */
	bool stopped = false;
	for (int i = 0; i < 6000 && !stopped; i++) {
		FILE *f = fopen(elog, "r");
		ck_assert_ptr_nonnull(f);
		fseek(f, 0, SEEK_END);
		char *t = slurp(f);
		stopped = strstr(t, "main: stopped") != NULL;
		free(t);
		if (!stopped)
			usleep(10000);
	}
	ck_assert_msg(stopped, "the daemon did not log \"stopped\"");
	close(cfd); /* the job's send fails; its completion runs now */

	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char *dl = file_text(log), *el = file_text(elog);
		fprintf(stderr,
			"-- the daemon's stderr:\n%s\n"
			"-- its error_log:\n%s\n",
			dl, el);
		ck_abort_msg("the daemon ended with status %#x (its stderr "
			     "and error_log above)",
			     (unsigned)st);
	}
	struct stat sb;
	ck_assert_int_ne(stat(sock, &sb), 0); /* removed */
	close(nfd);
}
END_TEST

/* The program's options, each with its exit status. */
START_TEST(options)
{
	char out[256];
	snprintf(out, sizeof(out), "%s/opt.out", R.dir);
	static const struct {
		const char *words;
		int status;
		const char *says;
	} cases[] = {
		{"-V", 0, PACKAGE_VERSION},
		{"-h", 0, "usage: docker-registry-proxy"},
		{"--help", 0, "cache list [--json]"},
		{"-Z", 2, "usage:"},
		{"-t cache list", 2, "usage:"},
		{"--print-config", 2, "--print-config needs --env-config"},
		{"-c /nonexistent/drp.ini -t", 1, "/nonexistent/drp.ini"},
		{"-c /nonexistent/drp.ini cache list", 1, ""},
		{"cache frob", 2, "unknown cache command: frob"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int st = spawn(cases[i].words, NULL, out, true);
		char *t = file_text(out);
		ck_assert_msg(st == cases[i].status, "%s: %d\n%s",
			      cases[i].words, st, t);
		ck_has(t, cases[i].says);
		free(t);
	}
}
END_TEST

Suite *cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("cli");
	tcase_add_unchecked_fixture(tc, setup_once, teardown_once);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, warm_list_verify_purge);
	tcase_add_test(tc, warm_all_platforms);
	tcase_add_test(tc, warm_failures);
	tcase_add_test(tc, usage_and_refusals);
	tcase_add_test(tc, cache_busy);
	tcase_add_test(tc, relayed);
	tcase_add_test(tc, real_daemon);
	tcase_add_test(tc, stop_while_answering);
	tcase_add_test(tc, options);
	suite_add_tcase(s, tc);
	return s;
}
