/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/base64.h"
#include "util/buf.h"
#include "util/busguard.h"
#include "util/jobs.h"
#include "util/log.h"
#include "util/notify.h"
#include "util/pool.h"

Suite *util_suite(void);

START_TEST(buf_append_consume)
{
	drp_buf_t b = {0};
	drp_buf_append(&b, "hello ", 6);
	drp_buf_printf(&b, "%s %d", "world", 42);
	ck_assert_uint_eq(drp_buf_pending(&b), 14);
	ck_assert_int_eq(memcmp(drp_buf_head(&b), "hello world 42", 14), 0);
	drp_buf_consume(&b, 6);
	ck_assert_int_eq(memcmp(drp_buf_head(&b), "world 42", 8), 0);
	/* Reserving compacts the consumed head before growing. */
	char *tail = drp_buf_reserve(&b, 10000);
	ck_assert_ptr_eq(tail, b.data + 8);
	ck_assert_int_eq(memcmp(drp_buf_head(&b), "world 42", 8), 0);
	drp_buf_consume(&b, 100);
	ck_assert_uint_eq(drp_buf_pending(&b), 0);
	drp_buf_free(&b);
}
END_TEST

/* drp_buf_puts and drp_buf_put_u64 append what "%s" and "%llu" do. */
START_TEST(buf_puts_u64)
{
	static const unsigned long long v[] = {0,
					       1,
					       9,
					       10,
					       99,
					       100,
					       4096,
					       1234567890123ULL,
					       18446744073709551615ULL};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		drp_buf_t b = {0}, p = {0};
		drp_buf_puts(&b, "Content-Length: ");
		drp_buf_put_u64(&b, v[i]);
		drp_buf_puts(&b, "");
		drp_buf_printf(&p, "Content-Length: %llu", v[i]);
		ck_assert_uint_eq(drp_buf_pending(&b), drp_buf_pending(&p));
		ck_assert_int_eq(memcmp(drp_buf_head(&b), drp_buf_head(&p),
					drp_buf_pending(&p)),
				 0);
		drp_buf_free(&b);
		drp_buf_free(&p);
	}
}
END_TEST

/* drp_buf_printf formats in one pass into the free tail when it fits,
 * and whole when it does not: every length around the tail's end. */
START_TEST(buf_printf_lengths)
{
	static char big[9000];
	memset(big, 'x', sizeof(big) - 1);
	for (size_t fill = 0; fill < 4096; fill += 509) {
		for (size_t len = 0; len < sizeof(big); len += 97) {
			drp_buf_t b = {0};
			for (size_t i = 0; i < fill; i++)
				drp_buf_append(&b, "a", 1);
			drp_buf_printf(&b, "<%.*s>%d", (int)len, big, 7);
			ck_assert_uint_eq(drp_buf_pending(&b), fill + len + 3);
			const char *h = drp_buf_head(&b);
			ck_assert_int_eq(h[fill], '<');
			ck_assert_int_eq(h[fill + len + 1], '>');
			ck_assert_int_eq(h[fill + len + 2], '7');
			for (size_t i = 0; i < len; i++)
				ck_assert_int_eq(h[fill + 1 + i], 'x');
			drp_buf_free(&b);
		}
	}
}
END_TEST

START_TEST(log_level_parse)
{
	ck_assert_int_eq(drp_log_level_parse("debug"), DRP_LOG_DEBUG);
	ck_assert_int_eq(drp_log_level_parse("err"), DRP_LOG_ERR);
	ck_assert_int_eq(drp_log_level_parse("loud"), -1);
}
END_TEST

struct order {
	pthread_mutex_t lock;
	int seen[64];
	int n;
	pthread_t thread[64];
};

static struct order ord = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void record(void *arg)
{
	usleep(200); /* let the submitter run ahead: jobs must queue */
	pthread_mutex_lock(&ord.lock);
	ord.thread[ord.n] = pthread_self();
	ord.seen[ord.n++] = (int)(intptr_t)arg;
	pthread_mutex_unlock(&ord.lock);
}

/* One thread: jobs run in submission order, off the submitting thread;
 * free runs every queued job before returning; a NULL queue runs the job
 * at once on the caller. */
START_TEST(jobs_order_and_drain)
{
	drp_jobs_t *j = drp_jobs_new(1);
	ck_assert_ptr_nonnull(j);
	for (int i = 0; i < 50; i++)
		drp_jobs_submit(j, record, (void *)(intptr_t)i);
	ck_assert_uint_le(drp_jobs_pending(j), 50);
	drp_jobs_free(j);
	ck_assert_int_eq(ord.n, 50);
	for (int i = 0; i < 50; i++) {
		ck_assert_int_eq(ord.seen[i], i);
		ck_assert(!pthread_equal(ord.thread[i], pthread_self()));
	}
	drp_jobs_submit(NULL, record, (void *)(intptr_t)99);
	ck_assert_int_eq(ord.n, 51);
	ck_assert_int_eq(ord.seen[50], 99);
	ck_assert(pthread_equal(ord.thread[50], pthread_self()));
}
END_TEST

/* A job of another lane that submits to the stores queue after
 * drp_jobs_free (the exit order of main.c: the admin lane can still run
 * while the stores queue is freed, and ends with the pool). */
static drp_jobs_t *late_queue;
static void late_submit(void *arg)
{
	(void)arg;
	drp_jobs_submit(late_queue, record, (void *)(intptr_t)8);
}

/* drp_jobs_free on a shared pool: from then on (until the pool is
 * freed) a submission runs at once on the submitting thread, whether it
 * comes from the freeing thread or from a job of another lane still
 * running: the queue is not freed under them. */
START_TEST(jobs_submit_after_free)
{
	pthread_mutex_lock(&ord.lock);
	ord.n = 0;
	pthread_mutex_unlock(&ord.lock);
	drp_pool_t *pool = drp_pool_new(2);
	ck_assert_ptr_nonnull(pool);
	drp_jobs_t *j = drp_jobs_new_on(pool, "stores", 1);
	drp_pool_lane_t *admin =
		drp_pool_lane_new(pool, "admin", 1, 1, DRP_POOL_DRAIN);
	ck_assert_ptr_nonnull(j);
	ck_assert_ptr_nonnull(admin);
	drp_jobs_submit(j, record, (void *)(intptr_t)1);
	drp_jobs_free(j);
	ck_assert_int_eq(ord.n, 1);
	drp_jobs_submit(j, record, (void *)(intptr_t)7);
	ck_assert_int_eq(ord.n, 2);
	ck_assert_int_eq(ord.seen[1], 7);
	ck_assert(pthread_equal(ord.thread[1], pthread_self()));
	late_queue = j;
	ck_assert_int_eq(
		drp_pool_submit(admin, NULL, late_submit, NULL, NULL, NULL), 0);
	drp_pool_free(pool); /* runs the admin job to its end */
	ck_assert_int_eq(ord.n, 3);
	ck_assert_int_eq(ord.seen[2], 8);
	ck_assert(!pthread_equal(ord.thread[2], pthread_self()));
}
END_TEST

struct sum_job {
	const volatile unsigned char *p;
	size_t n;
	unsigned long sum;
};

static void sum_bytes(void *arg)
{
	struct sum_job *j = arg;
	for (size_t i = 0; i < j->n; i++)
		j->sum += j->p[i];
}

/* A mapped file truncated under the mapping: reading it faults (as a
 * disk error does); under the guard that is -EIO, not a dead process. */
START_TEST(bus_guard_truncated_mapping)
{
	drp_bus_guard_install();
	char path[] = "/tmp/drp-busguard.XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	size_t len = 64 * 1024;
	unsigned char *data = malloc(len);
	memset(data, 1, len);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	free(data);
	unsigned char *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(m, MAP_FAILED);

	struct sum_job ok = {m, len, 0};
	ck_assert_int_eq(drp_bus_guard(sum_bytes, &ok), 0);
	ck_assert_uint_eq(ok.sum, len);

	sigset_t before, after;
	ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, NULL, &before), 0);
	ck_assert_int_eq(ftruncate(fd, 0), 0);
	struct sum_job bad = {m, len, 0};
	ck_assert_int_eq(drp_bus_guard(sum_bytes, &bad), -EIO);
	/* The guard leaves the handler by siglongjmp without restoring a
	 * saved mask: the handler must not have blocked anything (SIGBUS
	 * blocked here would make the next fault kill the process). */
	ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, NULL, &after), 0);
	ck_assert_int_eq(sigismember(&after, SIGBUS), 0);
	for (int sig = 1; sig < NSIG; sig++)
		ck_assert_int_eq(sigismember(&after, sig),
				 sigismember(&before, sig));
	/* Again: the handler stays in place, the thread is usable. */
	bad.sum = 0;
	ck_assert_int_eq(drp_bus_guard(sum_bytes, &bad), -EIO);
	struct sum_job mem = {(const unsigned char *)"\x02\x03", 2, 0};
	ck_assert_int_eq(drp_bus_guard(sum_bytes, &mem), 0);
	ck_assert_uint_eq(mem.sum, 5);
	munmap(m, len);
	close(fd);
}
END_TEST

/* ---- base64 ---- */

/* RFC 4648 section 10 test vectors, both ways. */
static const struct {
	const char *plain, *b64;
} b64_vectors[] = {
	{"", ""},
	{"f", "Zg=="},
	{"fo", "Zm8="},
	{"foo", "Zm9v"},
	{"foob", "Zm9vYg=="},
	{"fooba", "Zm9vYmE="},
	{"foobar", "Zm9vYmFy"},
};

START_TEST(base64_rfc4648_vectors)
{
	const char *plain = b64_vectors[_i].plain, *b64 = b64_vectors[_i].b64;
	char enc[16];
	ck_assert_int_eq(
		drp_base64_encode(plain, strlen(plain), enc, sizeof(enc)),
		(ssize_t)strlen(b64));
	ck_assert_str_eq(enc, b64);
	ck_assert_uint_eq(DRP_BASE64_ENCODED_LEN(strlen(plain)), strlen(b64));
	unsigned char dec[16];
	memset(dec, 0xaa, sizeof(dec));
	ck_assert_int_eq(drp_base64_decode(b64, strlen(b64), dec, sizeof(dec)),
			 (ssize_t)strlen(plain));
	ck_assert_int_eq(memcmp(dec, plain, strlen(plain)), 0);
	/* Nothing written past the result. */
	ck_assert_uint_eq(dec[strlen(plain)], 0xaa);
	/* The same without its padding. */
	size_t n = strcspn(b64, "=");
	ck_assert_int_eq(drp_base64_decode(b64, n, dec, sizeof(dec)),
			 (ssize_t)strlen(plain));
	ck_assert_int_eq(memcmp(dec, plain, strlen(plain)), 0);
	ck_assert_uint_le(strlen(plain), DRP_BASE64_DECODED_MAX(n));
}
END_TEST

/* Every byte value, and every length modulo 3, round trip. */
START_TEST(base64_binary_roundtrip)
{
	unsigned char in[256], dec[256];
	char enc[DRP_BASE64_ENCODED_LEN(256) + 1];
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(255 - i);
	for (size_t n = 0; n <= sizeof(in); n++) {
		ssize_t el = drp_base64_encode(in, n, enc, sizeof(enc));
		ck_assert_int_eq(el, (ssize_t)DRP_BASE64_ENCODED_LEN(n));
		ck_assert_uint_eq(strlen(enc), (size_t)el);
		ck_assert_int_eq(
			drp_base64_decode(enc, (size_t)el, dec, sizeof(dec)),
			(ssize_t)n);
		ck_assert_int_eq(memcmp(dec, in, n), 0);
	}
}
END_TEST

/* Malformed input: -EINVAL. */
static const char *const b64_bad[] = {
	/* a lone final character (6 bits, no byte) */
	"Z",
	"Zm9vY",
	/* outside the alphabet */
	"Zm9*",
	"Zm9vYmE\x80",
	/* base64url characters are another alphabet */
	"Zm-v",
	"Zm_v",
	/* white space anywhere, line breaks included */
	"Zm9v Ymfy",
	"Zm9v\r\nYmFy",
	" Zm9v",
	"Zm9v\t",
	/* padding in the middle, or too much of it */
	"Zg==Zm8=",
	"Z===",
	"Zg===",
	"====",
	"=",
	/* incomplete padding (a multiple of 4 or none at all) */
	"Zg=",
	"Zm9vYg=",
	/* padding where a full group needs none */
	"Zm9v=",
};

/* RFC 4648 section 10 vectors in the URL alphabet, unpadded, and the
 * characters that differ (62 and 63: - and _). */
START_TEST(base64url_encode_vectors)
{
	static const char *const v[][2] = {
		{"", ""},
		{"f", "Zg"},
		{"fo", "Zm8"},
		{"foo", "Zm9v"},
		{"foob", "Zm9vYg"},
		{"fooba", "Zm9vYmE"},
		{"foobar", "Zm9vYmFy"},
	};
	char enc[64];
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		ck_assert_int_eq(drp_base64url_encode(v[i][0], strlen(v[i][0]),
						      enc, sizeof(enc)),
				 (ssize_t)strlen(v[i][1]));
		ck_assert_str_eq(enc, v[i][1]);
	}
	const unsigned char hi[] = {0xfb, 0xff, 0xbf};
	ck_assert_int_eq(drp_base64url_encode(hi, 3, enc, sizeof(enc)), 4);
	ck_assert_str_eq(enc, "-_-_");
	/* 32 random bytes: the 43 characters of a handle. */
	unsigned char r[32];
	memset(r, 0xa5, sizeof(r));
	ck_assert_int_eq(drp_base64url_encode(r, 32, enc, 44), 43);
	ck_assert_int_eq(drp_base64url_encode(r, 32, enc, 43), -ENOBUFS);
}
END_TEST

START_TEST(base64_rejects)
{
	const char *s = b64_bad[_i];
	unsigned char dec[32];
	ck_assert_msg(drp_base64_decode(s, strlen(s), dec, sizeof(dec)) ==
			      -EINVAL,
		      "case %d accepted", _i);
}
END_TEST

/* Non-canonical final characters (bits after the last byte) are
 * accepted, as the decoders this replaced did: "Zh==" is 'f'. */
START_TEST(base64_noncanonical)
{
	unsigned char dec[4];
	ck_assert_int_eq(drp_base64_decode("Zh==", 4, dec, sizeof(dec)), 1);
	ck_assert_uint_eq(dec[0], 'f');
	ck_assert_int_eq(drp_base64_decode("Zh", 2, dec, sizeof(dec)), 1);
	ck_assert_uint_eq(dec[0], 'f');
	ck_assert_int_eq(drp_base64_decode("Zm9=", 4, dec, sizeof(dec)), 2);
	ck_assert_int_eq(memcmp(dec, "fo", 2), 0);
}
END_TEST

/* Output bounds: too small is -ENOBUFS before anything is written;
 * exactly enough works; the length is taken as given (no NUL needed). */
START_TEST(base64_bounds)
{
	char enc[9];
	memset(enc, 'x', sizeof(enc));
	/* "foobar" needs 8 + 1 */
	ck_assert_int_eq(drp_base64_encode("foobar", 6, enc, 8), -ENOBUFS);
	ck_assert_uint_eq((unsigned char)enc[0], 'x');
	ck_assert_int_eq(drp_base64_encode("foobar", 6, enc, 9), 8);
	ck_assert_str_eq(enc, "Zm9vYmFy");
	ck_assert_int_eq(drp_base64_encode("", 0, enc, 0), -ENOBUFS);
	ck_assert_int_eq(drp_base64_encode("", 0, enc, 1), 0);
	ck_assert_str_eq(enc, "");

	unsigned char dec[6];
	memset(dec, 0xaa, sizeof(dec));
	ck_assert_int_eq(drp_base64_decode("Zm9vYmFy", 8, dec, 5), -ENOBUFS);
	ck_assert_uint_eq(dec[0], 0xaa);
	ck_assert_int_eq(drp_base64_decode("Zm9vYmE=", 8, dec, 4), -ENOBUFS);
	ck_assert_int_eq(drp_base64_decode("Zm9vYmE", 7, dec, 4), -ENOBUFS);
	ck_assert_int_eq(drp_base64_decode("Zm9vYmE=", 8, dec, 5), 5);
	ck_assert_int_eq(drp_base64_decode("Zm9vYmE", 7, dec, 5), 5);
	ck_assert_int_eq(drp_base64_decode("Zm9vYmFy", 8, dec, 6), 6);
	ck_assert_int_eq(memcmp(dec, "foobar", 6), 0);
	/* Only len characters are read: a truncated view of a longer
	 * string decodes as what it is. */
	ck_assert_int_eq(drp_base64_decode("Zm9vYmFy", 4, dec, 6), 3);
	ck_assert_int_eq(memcmp(dec, "foo", 3), 0);
	ck_assert_int_eq(drp_base64_decode("Zm9vYmFy", 5, dec, 6), -EINVAL);
	ck_assert_int_eq(drp_base64_decode(NULL, 0, dec, 0), 0);
	/* The bound covers the longest unpadded tail (4k+3 -> 3k+2). */
	ck_assert_uint_eq(DRP_BASE64_DECODED_MAX(7), 5);
	ck_assert_uint_eq(DRP_BASE64_DECODED_MAX(8), 8);
}
END_TEST

static char *slurp(const char *path)
{
	static char buf[8192];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* SIGUSR1's reopen: after a rename (logrotate), new lines go to a new
 * file of the configured name, none to the moved one. */
START_TEST(log_reopen_after_rename)
{
	char dir[] = "/tmp/drp-log-XXXXXX", path[256], moved[256];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/error.log", dir);
	snprintf(moved, sizeof(moved), "%s/error.log.1", dir);
	ck_assert_int_eq(drp_log_init(DRP_LOG_NOTICE, path), 0);
	drp_log_notice("main", "before rotation");
	ck_assert_int_eq(rename(path, moved), 0);
	ck_assert_int_eq(drp_log_reopen(path), 0);
	drp_log_notice("main", "after rotation");
	char *old = slurp(moved);
	ck_assert_ptr_nonnull(strstr(old, "before rotation"));
	ck_assert_ptr_null(strstr(old, "after rotation"));
	char *now = slurp(path);
	ck_assert_ptr_nonnull(now);
	ck_assert_ptr_nonnull(strstr(now, "notice main: after rotation"));
	ck_assert_ptr_null(strstr(now, "before rotation"));
	/* A directory that went away: an error, the old file stays. */
	ck_assert_int_eq(drp_log_reopen("/nonexistent/dir/x.log"), -ENOENT);
	drp_log_notice("main", "still logging");
	ck_assert_ptr_nonnull(strstr(slurp(path), "still logging"));
	/* stderr is never reopened. */
	ck_assert_int_eq(drp_log_reopen("-"), 0);
	unlink(path);
	unlink(moved);
	rmdir(dir);
}
END_TEST

/* Standard error connected to the journal: "<N>" priorities, no time
 * stamp; elsewhere the time stamp and no priority. */
START_TEST(log_journal_priority)
{
	char path[] = "/tmp/drp-journal-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(dup2(fd, 2), 2);
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	char js[64];
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	ck_assert_int_eq(drp_log_init(DRP_LOG_DEBUG, NULL), 0);
	drp_log_err("tls", "bad key");
	drp_log_warning("net", "slow");
	unsetenv("JOURNAL_STREAM");
	drp_log_init(DRP_LOG_DEBUG, NULL);
	drp_log_notice("main", "plain");
	char *out = slurp(path);
	ck_assert_ptr_nonnull(strstr(out, "<3>err tls: bad key\n"));
	ck_assert_ptr_nonnull(strstr(out, "\n<4>warning net: slow\n"));
	char *plain = strstr(out, "notice main: plain");
	ck_assert_ptr_nonnull(plain);
	ck_assert_int_ne(out[strlen(out) - strlen(plain) - 21], '<');
	ck_assert_int_eq(out[strlen(out) - strlen(plain) - 2], 'Z');
	unlink(path);
	close(fd);
}
END_TEST

static int notify_listener(struct sockaddr_un *sun, socklen_t *sl,
			   const char *name)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	size_t len = strlen(name);
	memcpy(sun->sun_path, name, len);
	if (name[0] == '@')
		sun->sun_path[0] = '\0';
	*sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)sun, *sl), 0);
	return fd;
}

START_TEST(notify_socket)
{
	unsetenv("NOTIFY_SOCKET");
	ck_assert_int_eq(drp_notify("READY=1"), 0);

	char name[108], buf[256];
	struct sockaddr_un sun;
	socklen_t sl;
	/* Abstract: "@name", as systemd names it in containers. */
	snprintf(name, sizeof(name), "@drp-notify-test-%ld", (long)getpid());
	int fd = notify_listener(&sun, &sl, name);
	setenv("NOTIFY_SOCKET", name, 1);
	ck_assert_int_eq(drp_notify("READY=1\nSTATUS=listening"), 1);
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	ck_assert_int_eq(n, 24);
	buf[n] = '\0';
	ck_assert_str_eq(buf, "READY=1\nSTATUS=listening");
	close(fd);

	/* A path, as systemd names it on a host. */
	char dir[] = "/tmp/drp-notify-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(name, sizeof(name), "%s/notify", dir);
	fd = notify_listener(&sun, &sl, name);
	setenv("NOTIFY_SOCKET", name, 1);
	ck_assert_int_eq(drp_notify("STOPPING=1"), 1);
	n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	ck_assert_int_eq(n, 10);
	buf[n] = '\0';
	ck_assert_str_eq(buf, "STOPPING=1");
	close(fd);
	unlink(name);
	rmdir(dir);

	/* Nobody listening, and names that are no socket address. */
	ck_assert_int_eq(drp_notify("READY=1"), -ENOENT);
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	ck_assert_int_eq(drp_notify("READY=1"), -EINVAL);
	setenv("NOTIFY_SOCKET", "@", 1);
	ck_assert_int_eq(drp_notify("READY=1"), -EINVAL);
	unsetenv("NOTIFY_SOCKET");
}
END_TEST

Suite *util_suite(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, buf_append_consume);
	tcase_add_test(tc, buf_printf_lengths);
	tcase_add_test(tc, buf_puts_u64);
	tcase_add_test(tc, log_level_parse);
	tcase_add_test(tc, jobs_order_and_drain);
	tcase_add_test(tc, jobs_submit_after_free);
	tcase_add_test(tc, bus_guard_truncated_mapping);
	tcase_add_loop_test(tc, base64_rfc4648_vectors, 0,
			    sizeof(b64_vectors) / sizeof(b64_vectors[0]));
	tcase_add_test(tc, base64_binary_roundtrip);
	tcase_add_test(tc, base64url_encode_vectors);
	tcase_add_loop_test(tc, base64_rejects, 0,
			    sizeof(b64_bad) / sizeof(b64_bad[0]));
	tcase_add_test(tc, base64_noncanonical);
	tcase_add_test(tc, base64_bounds);
	tcase_add_test(tc, log_reopen_after_rename);
	tcase_add_test(tc, log_journal_priority);
	tcase_add_test(tc, notify_socket);
	suite_add_tcase(s, tc);
	return s;
}
