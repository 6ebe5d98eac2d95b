/* SPDX-License-Identifier: MIT */
/*
 * drp-s3client: the proxy's own S3 client (src/upstream/s3.c, over its
 * HTTP client on a libev loop) as a command, so that s3_engines.sh runs
 * it against radosgw:
 *
 *   drp-s3client [-a path|virtual] [-C CAFILE] [-r HOST=IP]... [-p PART]
 *                ENDPOINT BUCKET COMMAND ARGS...
 *
 *   put KEY FILE [STEP]  upload FILE: with STEP, the file is announced
 *                        STEP bytes at a time (as a fill's spool grows),
 *                        every 5 ms, and committed at its end
 *   get KEY OUT [FIRST LAST]   GET (ranged) streamed into OUT
 *   head KEY             print "STATUS LENGTH"
 *   delete KEY           print the status
 *   abort KEY FILE       announce FILE, wait until one part is up, abort
 *   leave KEY FILE       announce FILE, wait until one part is up, exit
 *                        without aborting (a killed fill): prints the
 *                        upload id
 *   sweep PREFIX AGE     abort uploads older than AGE seconds by the
 *                        store's clock; prints "LISTED ABORTED"
 *
 * Credentials: S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION. Exit 0 on
 * success, 1 on a failed operation (with a message), 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "upstream/s3.h"
#include "util/buf.h"
#include "util/log.h"

static struct ev_loop *loop;
static int status = 1;
static const char *g_cmd;
static drp_s3_upload_t *up;
static uint64_t fsize, announced, step;
static ev_timer grow;
static int out_fd = -1;

static void usage(void)
{
	fprintf(stderr, "usage: drp-s3client [-a path|virtual] [-C CAFILE] "
			"[-r HOST=IP]... [-p PART] ENDPOINT BUCKET COMMAND "
			"ARGS...\n");
	exit(2);
}

static void up_cb(void *arg, int err, const char *reason)
{
	up = NULL;
	printf("%s\n", err == 0 ? reason : reason);
	status = err == 0 ? 0 : 1;
	if (err)
		fprintf(stderr, "upload: %s\n", reason);
	ev_break(loop, EVBREAK_ALL);
}

static void grow_cb(struct ev_loop *l, ev_timer *t, int revents)
{
	announced = announced + step < fsize ? announced + step : fsize;
	drp_s3_upload_avail(up, announced);
	if (announced == fsize) {
		ev_timer_stop(l, t);
		drp_s3_upload_commit(up, fsize);
	}
}

/* abort / leave: poll until the first part is acknowledged. */
static bool leave_after;
static void part_cb(struct ev_loop *l, ev_timer *t, int revents)
{
	const char *id = drp_s3_upload_id(up);
	if (drp_s3_upload_parts(up) < 1)
		return;
	ev_timer_stop(l, t);
	if (leave_after) {
		printf("%s\n", id);
		drp_s3_upload_cancel(up);
		up = NULL;
		status = 0;
		ev_break(l, EVBREAK_ALL);
		return;
	}
	printf("%s\n", id);
	drp_s3_upload_abort(up);
}

static void abort_cb(void *arg, int err, const char *reason)
{
	up = NULL;
	status = err == -ECANCELED ? 0 : 1;
	if (status)
		fprintf(stderr, "abort: %s\n", reason);
	ev_break(loop, EVBREAK_ALL);
}

static void call_cb(void *arg, const drp_s3_result_t *res)
{
	const char *cmd = g_cmd;
	if (res->err < 0) {
		fprintf(stderr, "%s: %s\n", cmd, res->reason);
		status = 1;
	} else if (strcmp(cmd, "head") == 0) {
		printf("%d %" PRIu64 "\n", res->status, res->length);
		status = 0;
	} else {
		printf("%d\n", res->status);
		status = 0;
	}
	ev_break(loop, EVBREAK_ALL);
}

static int get_status;
static void g_head(void *arg, const drp_http_msg_t *resp,
		   enum drp_http_body_mode mode, uint64_t length)
{
	get_status = resp->status;
}
static size_t g_room(void *arg)
{
	return 1 << 20;
}
static void g_body(void *arg, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(out_fd, data, len);
		if (n <= 0) {
			perror("write");
			exit(1);
		}
		data += n;
		len -= (size_t)n;
	}
}
static void g_done(void *arg, int err, int http_status, const char *reason)
{
	if (err < 0)
		fprintf(stderr, "get: %s\n", reason);
	else
		printf("%d\n", get_status);
	status = err < 0 ? 1 : 0;
	ev_break(loop, EVBREAK_ALL);
}
static const drp_fetch_sink_t get_sink = {
	.head = g_head, .room = g_room, .body = g_body, .done = g_done};

static void sweep_cb(void *arg, int err, unsigned listed, unsigned aborted)
{
	if (err < 0)
		fprintf(stderr, "sweep: %s\n", strerror(-err));
	else
		printf("%u %u\n", listed, aborted);
	status = err < 0 ? 1 : 0;
	ev_break(loop, EVBREAK_ALL);
}

static int open_in(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		perror(path);
		exit(2);
	}
	fsize = (uint64_t)st.st_size;
	return fd;
}

int main(int argc, char **argv)
{
	drp_s3_conf_t sc = {0};
	drp_buf_t conf = {0};
	drp_buf_t resolve = {0};
	const char *cafile = NULL;
	int opt;
	while ((opt = getopt(argc, argv, "a:C:r:p:")) != -1) {
		switch (opt) {
		case 'a':
			sc.addressing = strcmp(optarg, "virtual") == 0
						? DRP_S3_VIRTUAL
						: DRP_S3_PATH;
			break;
		case 'C':
			cafile = optarg;
			break;
		case 'r': {
			char *eq = strchr(optarg, '=');
			if (eq == NULL)
				usage();
			drp_buf_printf(&resolve, "%.*s = %s\n",
				       (int)(eq - optarg), optarg, eq + 1);
			break;
		}
		case 'p':
			sc.part_size = strtoull(optarg, NULL, 10);
			break;
		default:
			usage();
		}
	}
	if (argc - optind < 3)
		usage();
	sc.endpoint = argv[optind];
	sc.bucket = argv[optind + 1];
	const char *cmd = argv[optind + 2];
	char **a = argv + optind + 3;
	int na = argc - optind - 3;
	sc.access_key = getenv("S3_ACCESS_KEY");
	sc.secret_key = getenv("S3_SECRET_KEY");
	sc.region = getenv("S3_REGION");

	drp_buf_printf(&conf, "[proxy]\n");
	if (cafile)
		drp_buf_printf(&conf, "upstream_ca_file = %s\n", cafile);
	drp_buf_printf(&conf, "[resolve]\n");
	drp_buf_append(&conf, drp_buf_head(&resolve),
		       drp_buf_pending(&resolve));
	drp_buf_append(&conf, "", 1);
	drp_conf_errors_t errs = {0};
	drp_conf_t *c = drp_conf_load_string("drp-s3client",
					     drp_buf_head(&conf), &errs);
	for (unsigned i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.msg[i]);
	if (c == NULL)
		return 2;
	char err[256];
	drp_upstream_conf_t *ucf = drp_upstream_conf_new(c, err, sizeof(err));
	drp_conf_free(c);
	if (ucf == NULL) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	drp_s3_t *s3 = drp_s3_new(&sc, err, sizeof(err));
	if (s3 == NULL) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	loop = ev_default_loop(0);
	drp_upstream_t ctx;
	memset(&ctx, 0, sizeof(ctx));
	drp_upstream_init(&ctx, loop, 10);

	drp_s3_call_t *call = NULL;
	drp_s3_sweep_t *sw = NULL;
	drp_fetch_t *gf = NULL;
	if (strcmp(cmd, "put") == 0 && (na == 2 || na == 3)) {
		int fd = open_in(a[1]);
		up = drp_s3_upload_new(s3, &ctx, ucf, a[0], fd, up_cb, NULL);
		if (na == 3) {
			step = strtoull(a[2], NULL, 10);
			ev_timer_init(&grow, grow_cb, 0.005, 0.005);
			ev_timer_start(loop, &grow);
		} else {
			drp_s3_upload_avail(up, fsize);
			drp_s3_upload_commit(up, fsize);
		}
	} else if ((strcmp(cmd, "abort") == 0 || strcmp(cmd, "leave") == 0) &&
		   na == 2) {
		int fd = open_in(a[1]);
		leave_after = strcmp(cmd, "leave") == 0;
		up = drp_s3_upload_new(s3, &ctx, ucf, a[0], fd, abort_cb, NULL);
		drp_s3_upload_avail(up, fsize);
		ev_timer_init(&grow, part_cb, 0.05, 0.05);
		ev_timer_start(loop, &grow);
	} else if (strcmp(cmd, "get") == 0 && (na == 2 || na == 4)) {
		out_fd = open(a[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			      0644);
		if (out_fd < 0) {
			perror(a[1]);
			return 2;
		}
		gf = drp_s3_get(s3, &ctx, ucf, a[0], na == 4,
				na == 4 ? strtoull(a[2], NULL, 10) : 0,
				na == 4 ? strtoull(a[3], NULL, 10) : 0,
				&get_sink, NULL);
	} else if ((strcmp(cmd, "head") == 0 || strcmp(cmd, "delete") == 0) &&
		   na == 1) {
		drp_s3_req_t r = {.method = strcmp(cmd, "head") == 0 ? "HEAD"
								     : "DELETE",
				  .key = a[0],
				  .fd = -1,
				  .max_body = 65536};
		g_cmd = cmd;
		call = drp_s3_call(s3, &ctx, ucf, &r, call_cb, NULL);
	} else if (strcmp(cmd, "sweep") == 0 && na == 2) {
		sw = drp_s3_sweep(s3, &ctx, ucf, a[0], strtod(a[1], NULL),
				  sweep_cb, NULL);
	} else {
		usage();
	}
	(void)call;
	(void)sw;
	(void)gf;
	ev_run(loop, 0);
	if (out_fd >= 0)
		close(out_fd);
	drp_upstream_fini(&ctx);
	drp_upstream_conf_unref(ucf);
	drp_s3_free(s3);
	drp_buf_free(&conf);
	drp_buf_free(&resolve);
	return status;
}
