/* SPDX-License-Identifier: MIT */
#include "ctl/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cache/inventory.h"
#include "ctl/cmd.h"
#include "ctl/warm.h"
#include "proxy/server.h"
#include "proxy/worker.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/pool.h"

/* A command line is short; a client gets this long to send it. */
#define CMD_MAX	    (256 * 1024)
#define CMD_TIMEOUT 10.0
/* Output a slow client has not read yet, before it is dropped. */
#define OUT_MAX (16 * 1024 * 1024)

typedef struct client client_t;

struct drp_ctl {
	drp_server_t *srv;
	drp_worker_t *w; /* the loop everything runs on */
	int lfd;
	char *path;
	dev_t dev;
	ino_t ino;
	ev_io accept_io;
	ev_timer sweep;
	drp_pool_lane_t *lane; /* "admin" */
	atomic_bool stop;      /* the daemon stops: jobs end early */
	bool sweeping;	       /* a sweep job is queued or running */
	bool started;
	client_t *clients;
	pthread_mutex_t lock; /* stop's handshake with the main thread */
	pthread_cond_t cond;
	bool stopped;
};

enum cstate { C_CMD, C_POOL, C_WARM, C_FLUSH };

struct client {
	drp_ctl_t *ctl;
	client_t *next, *prev;
	int fd;
	enum cstate state;
	ev_io io;
	ev_timer timer;
	drp_buf_t in, out;
	drp_ctl_cmd_t cmd;
	drp_warm_t *warm;
	atomic_bool stop; /* its job should end: client gone, daemon stops */
	bool broken;	  /* the socket failed */
};

/* ---- the socket's place ---- */

int drp_ctl_socket_path(const drp_conf_t *conf, const char *env_dir, char *buf,
			size_t len)
{
	int n;
	const char *s = conf->admin_socket;
	if (s && s[0] == '\0')
		return 1;
	if (s) {
		n = snprintf(buf, len, "%s", s);
	} else if (env_dir) {
		n = snprintf(buf, len, "%s/admin.sock", env_dir);
	} else {
		/* The directory that holds ca_dir: the state directory. */
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s", conf->ca_dir);
		size_t dl = strlen(dir);
		while (dl > 1 && dir[dl - 1] == '/')
			dir[--dl] = '\0';
		char *slash = strrchr(dir, '/');
		if (slash == NULL)
			snprintf(dir, sizeof(dir), ".");
		else if (slash == dir)
			dir[1] = '\0';
		else
			*slash = '\0';
		n = snprintf(buf, len, "%s%sadmin.sock", dir,
			     strcmp(dir, "/") == 0 ? "" : "/");
	}
	struct sockaddr_un sun;
	if (n < 0 || (size_t)n >= len || (size_t)n >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	return 0;
}

/* ---- clients ---- */

static void client_free(client_t *c)
{
	drp_ctl_t *ctl = c->ctl;
	if (c->warm) {
		drp_warm_cancel(c->warm);
		c->warm = NULL;
	}
	if (ctl->w && ctl->w->loop) {
		ev_io_stop(ctl->w->loop, &c->io);
		ev_timer_stop(ctl->w->loop, &c->timer);
	}
	if (c->fd >= 0)
		close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		ctl->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	drp_buf_free(&c->in);
	drp_buf_free(&c->out);
	drp_ctl_cmd_free(&c->cmd);
	free(c);
}

static void io_cb(struct ev_loop *loop, ev_io *io, int revents);

/* Queue a protocol line ("o TEXT", "e TEXT", "x N"), one line per
 * line of text. */
static void put_lines(client_t *c, char kind, const char *text)
{
	if (drp_buf_pending(&c->out) > OUT_MAX) {
		c->broken = true;
		return;
	}
	for (const char *p = text;;) {
		size_t n = strcspn(p, "\n");
		drp_buf_printf(&c->out, "%c %.*s\n", kind, (int)n, p);
		p += n;
		if (*p == '\0' || p[1] == '\0')
			break;
		p++;
	}
}

/* Watch for what the state needs: the command, room for output, EOF. */
static void client_watch(client_t *c)
{
	struct ev_loop *loop = c->ctl->w->loop;
	int ev = EV_READ;
	if (drp_buf_pending(&c->out) > 0)
		ev |= EV_WRITE;
	if (c->state == C_FLUSH)
		ev = EV_WRITE;
	if (ev_is_active(&c->io) && c->io.events == ev)
		return;
	ev_io_stop(loop, &c->io);
	ev_io_set(&c->io, c->fd, ev);
	ev_io_start(loop, &c->io);
}

/* Write what is queued; false if the client is gone. */
static bool client_flush(client_t *c)
{
	while (drp_buf_pending(&c->out) > 0) {
		ssize_t n = send(c->fd, drp_buf_head(&c->out),
				 drp_buf_pending(&c->out),
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return true;
		if (n <= 0)
			return false;
		drp_buf_consume(&c->out, (size_t)n);
	}
	return true;
}

/* Answer and close once it is written. */
static void client_end(client_t *c, int status)
{
	char x[16];
	snprintf(x, sizeof(x), "%d", status);
	put_lines(c, 'x', x);
	c->state = C_FLUSH;
	if (!client_flush(c) || drp_buf_pending(&c->out) == 0) {
		client_free(c);
		return;
	}
	client_watch(c);
}

/* The client is gone or does not read: nobody to warm for. Ended from
 * the loop, not from inside the warm's callback. */
static void drop_soon(client_t *c)
{
	c->broken = true;
	ev_timer_stop(c->ctl->w->loop, &c->timer);
	ev_timer_set(&c->timer, 0., 0.);
	ev_timer_start(c->ctl->w->loop, &c->timer);
}

static void warm_line(void *arg, bool err, const char *line)
{
	client_t *c = arg;
	if (c->broken)
		return;
	put_lines(c, err ? 'e' : 'o', line);
	if (c->broken || !client_flush(c))
		drop_soon(c);
	else
		client_watch(c);
}

static void warm_done(void *arg, int status)
{
	client_t *c = arg;
	c->warm = NULL;
	client_end(c, status);
}

/* ---- cache commands in the pool ---- */

/* A FILE whose lines go to the client as "o"/"e" lines, written from
 * the pool thread (the socket is blocking then). */
typedef struct line_out {
	client_t *c;
	char kind;
	drp_buf_t partial;
} line_out_t;

static bool send_all(client_t *c, const char *p, size_t n)
{
	while (n > 0 && !c->broken) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			/* The administrator went away: stop working. */
			c->broken = true;
			atomic_store(&c->stop, true);
			return false;
		}
		p += w;
		n -= (size_t)w;
	}
	return !c->broken;
}

static void emit_line(line_out_t *lo, const char *p, size_t n)
{
	char pre[2] = {lo->kind, ' '};
	if (send_all(lo->c, pre, 2) && send_all(lo->c, p, n))
		send_all(lo->c, "\n", 1);
}

static ssize_t lo_write(void *cookie, const char *buf, size_t size)
{
	line_out_t *lo = cookie;
	drp_buf_append(&lo->partial, buf, size);
	for (;;) {
		const char *h = drp_buf_head(&lo->partial);
		const char *nl = memchr(h, '\n', drp_buf_pending(&lo->partial));
		if (nl == NULL)
			break;
		emit_line(lo, h, (size_t)(nl - h));
		drp_buf_consume(&lo->partial, (size_t)(nl - h) + 1);
	}
	return (ssize_t)size;
}

static int lo_close(void *cookie)
{
	line_out_t *lo = cookie;
	if (drp_buf_pending(&lo->partial) > 0)
		emit_line(lo, drp_buf_head(&lo->partial),
			  drp_buf_pending(&lo->partial));
	drp_buf_free(&lo->partial);
	free(lo);
	return 0;
}

static FILE *line_file(client_t *c, char kind)
{
	line_out_t *lo = DRP_NEW(line_out_t);
	lo->c = c;
	lo->kind = kind;
	cookie_io_functions_t io = {.write = lo_write, .close = lo_close};
	FILE *f = fopencookie(lo, "w", io);
	drp_require(f != NULL);
	setvbuf(f, NULL, _IOLBF, 0);
	return f;
}

static void cmd_work(void *arg)
{
	client_t *c = arg;
	drp_server_t *srv = c->ctl->srv;
	/* The loop does not watch the socket meanwhile: block on it. */
	int fl = fcntl(c->fd, F_GETFL);
	if (fl >= 0)
		fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
	struct timeval tv = {.tv_sec = 60};
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	FILE *out = line_file(c, 'o'), *err = line_file(c, 'e');
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int status = drp_ctl_cache_run(&c->cmd, srv->capi, srv->cdb,
				       &srv->cstats, &c->stop, out, err);
	fclose(out);
	fclose(err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	static const char *const names[] = {"list", "purge", "verify", "warm"};
	drp_log_notice(DRP_LOG_CACHE,
		       "admin socket: cache %s%s%s: exit %d, %.1f s",
		       names[c->cmd.op], c->cmd.n_args ? " " : "",
		       c->cmd.n_args ? c->cmd.args[0] : "", status,
		       (double)(t1.tv_sec - t0.tv_sec) +
			       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	char x[32];
	int n = snprintf(x, sizeof(x), "x %d\n", status);
	send_all(c, x, (size_t)n);
}

/* On the loop, or in drp_pool_free once the loops are gone. */
static void cmd_done(void *arg, int status)
{
	client_t *c = arg;
	if (status == -ECANCELED) {
		static const char msg[] = "e the daemon is stopping\nx 1\n";
		send_all(c, msg, sizeof(msg) - 1);
	}
	client_free(c);
}

/* ---- the command ---- */

static void start_command(client_t *c)
{
	drp_ctl_t *ctl = c->ctl;
	struct ev_loop *loop = ctl->w->loop;
	ev_timer_stop(loop, &c->timer);
	if (ctl->srv->capi == NULL) {
		put_lines(c, 'e', "this proxy runs without a cache");
		client_end(c, DRP_CTL_FAIL);
		return;
	}
	if (c->cmd.op == DRP_CTL_WARM) {
		c->state = C_WARM;
		drp_runtime_t *rt = drp_server_runtime_get(ctl->srv);
		drp_log_notice(DRP_LOG_CACHE, "admin socket: warm %s%s",
			       c->cmd.args[0], c->cmd.n_args > 1 ? " ..." : "");
		client_watch(c);
		c->warm = drp_warm_start(
			ctl->w, rt, (const char *const *)c->cmd.args,
			c->cmd.n_args, (const char *const *)c->cmd.platforms,
			c->cmd.n_platforms, warm_line, warm_done, c);
		drp_runtime_unref(rt);
		if (c->warm == NULL)
			client_end(c, DRP_CTL_USAGE);
		return;
	}
	c->state = C_POOL;
	ev_io_stop(loop, &c->io);
	if (drp_pool_submit(ctl->lane, loop, cmd_work, cmd_done, c, NULL) < 0) {
		c->state = C_CMD;
		put_lines(c, 'e', "the daemon is stopping");
		client_end(c, DRP_CTL_FAIL);
	}
}

static void read_command(client_t *c)
{
	for (;;) {
		char *p = drp_buf_reserve(&c->in, 4096);
		ssize_t n = recv(c->fd, p, 4096, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			client_free(c);
			return;
		}
		c->in.len += (size_t)n;
		if (drp_buf_pending(&c->in) > CMD_MAX) {
			put_lines(c, 'e', "command too long");
			client_end(c, DRP_CTL_USAGE);
			return;
		}
	}
	const char *h = drp_buf_head(&c->in);
	const char *nl = memchr(h, '\n', drp_buf_pending(&c->in));
	if (nl == NULL)
		return;
	if (drp_ctl_cmd_decode(h, (size_t)(nl - h), &c->cmd) < 0) {
		drp_log_notice(DRP_LOG_CACHE,
			       "admin socket: a malformed command, refused");
		put_lines(c, 'e',
			  "malformed command (a docker-registry-proxy "
			  "of another version?)");
		client_end(c, DRP_CTL_USAGE);
		return;
	}
	drp_buf_reset(&c->in);
	start_command(c);
}

static void io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	client_t *c = DRP_CONTAINER_OF(io, client_t, io);
	if (c->state == C_CMD && (revents & EV_READ)) {
		read_command(c);
		return;
	}
	if (revents & EV_WRITE) {
		if (!client_flush(c)) {
			client_free(c);
			return;
		}
		if (c->state == C_FLUSH && drp_buf_pending(&c->out) == 0) {
			client_free(c);
			return;
		}
	}
	if (c->state == C_WARM && (revents & EV_READ)) {
		/* A warm's client sends nothing more: this is its end. */
		char b[256];
		ssize_t n = recv(c->fd, b, sizeof(b), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			drp_log_notice(DRP_LOG_CACHE,
				       "admin socket: the client of a warm "
				       "went away; stopped");
			client_free(c);
			return;
		}
	}
	if (c->broken) {
		client_free(c);
		return;
	}
	client_watch(c);
}

static void cmd_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	client_t *c = DRP_CONTAINER_OF(t, client_t, timer);
	client_free(c);
}

static bool peer_allowed(int fd, uid_t *uid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	*uid = cred.uid;
	return cred.uid == 0 || cred.uid == geteuid();
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	drp_ctl_t *ctl = DRP_CONTAINER_OF(io, drp_ctl_t, accept_io);
	for (int i = 0; i < 16; i++) {
		int fd = accept4(ctl->lfd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				drp_log_errno(DRP_LOG_WARNING, DRP_LOG_CACHE,
					      "admin socket: accept");
			return;
		}
		uid_t uid = (uid_t)-1;
		if (!peer_allowed(fd, &uid)) {
			static const char no[] =
				"e only the daemon's user and root may use "
				"this socket\nx 1\n";
			ssize_t r = send(fd, no, sizeof(no) - 1,
					 MSG_NOSIGNAL | MSG_DONTWAIT);
			(void)r;
			drp_log_notice(DRP_LOG_CACHE,
				       "admin socket: uid %ld refused",
				       (long)uid);
			close(fd);
			continue;
		}
		client_t *c = DRP_NEW(client_t);
		c->ctl = ctl;
		c->fd = fd;
		c->state = C_CMD;
		c->next = ctl->clients;
		if (c->next)
			c->next->prev = c;
		ctl->clients = c;
		ev_io_init(&c->io, io_cb, fd, EV_READ);
		ev_io_start(loop, &c->io);
		ev_timer_init(&c->timer, cmd_timeout_cb, CMD_TIMEOUT, 0.);
		ev_timer_start(loop, &c->timer);
	}
}

/* ---- max_age ---- */

struct sweep_job {
	drp_ctl_t *ctl;
	double max_age;
};

static void swept_cb(void *arg, const char *digest, uint64_t size,
		     int64_t last_used)
{
	char t[32], sz[32];
	drp_inv_time(last_used, t, sizeof(t));
	drp_inv_size(size, sz, sizeof(sz));
	drp_log_info(DRP_LOG_CACHE, "max_age: removed %s (%s), unused since %s",
		     digest, sz, t);
}

static void sweep_work(void *arg)
{
	struct sweep_job *j = arg;
	drp_server_t *srv = j->ctl->srv;
	uint64_t n = 0, bytes = 0;
	int rc = drp_inv_sweep(srv->capi, srv->cdb, &srv->cstats,
			       (int64_t)time(NULL), j->max_age, &j->ctl->stop,
			       swept_cb, NULL, &n, &bytes);
	if (rc < 0 && rc != -ECANCELED)
		drp_log_warning(DRP_LOG_CACHE, "max_age: sweep failed: %s",
				strerror(-rc));
	if (n > 0) {
		char sz[32];
		drp_inv_size(bytes, sz, sizeof(sz));
		drp_log_notice(DRP_LOG_CACHE,
			       "max_age %gs: removed %" PRIu64
			       " object(s) unused for that long, %s",
			       j->max_age, n, sz);
	}
}

static void sweep_done(void *arg, int status)
{
	struct sweep_job *j = arg;
	j->ctl->sweeping = false;
	free(j);
}

/* How often to look: max_age/16, within [1 s, 1 h]; a minute while it is
 * off (a reload may turn it on). */
static double sweep_interval(double max_age)
{
	if (max_age <= 0)
		return 60;
	double i = max_age / 16;
	return i < 1 ? 1 : i > 3600 ? 3600 : i;
}

static void sweep_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	drp_ctl_t *ctl = DRP_CONTAINER_OF(t, drp_ctl_t, sweep);
	drp_runtime_t *rt = drp_server_runtime_get(ctl->srv);
	double max_age = rt->conf->cache_max_age;
	drp_runtime_unref(rt);
	if (max_age > 0 && !ctl->sweeping && ctl->srv->capi) {
		struct sweep_job *j = DRP_NEW(struct sweep_job);
		j->ctl = ctl;
		j->max_age = max_age;
		ctl->sweeping = true;
		if (drp_pool_submit(ctl->lane, loop, sweep_work, sweep_done, j,
				    NULL) < 0) {
			ctl->sweeping = false;
			free(j);
		}
	}
	t->repeat = sweep_interval(max_age);
	ev_timer_again(loop, t);
}

/* ---- life cycle ---- */

/* Is somebody answering on path? */
static bool answers(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	bool yes = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
	close(fd);
	return yes;
}

static int make_socket(drp_ctl_t *ctl, bool default_place, char *err,
		       size_t errlen)
{
	const char *path = ctl->path;
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen,
				 "admin socket %s: exists and is not a socket",
				 path);
			return -EEXIST;
		}
		if (answers(path)) {
			snprintf(err, errlen,
				 "admin socket %s: another daemon answers "
				 "there",
				 path);
			return -EADDRINUSE;
		}
		unlink(path); /* left by a daemon that died */
	}
	if (default_place) {
		/* --env-config's directory may not exist yet. */
		char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
		snprintf(dir, sizeof(dir), "%s", path);
		char *slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
				int e = errno;
				snprintf(err, errlen, "admin socket %s: %s",
					 path, strerror(e));
				return -e;
			}
		}
	}
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	/* Owner-only from the start: no window where others could connect. */
	mode_t old = umask(0177);
	int r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (r < 0 || chmod(path, 0600) < 0 || listen(fd, 16) < 0 ||
	    stat(path, &st) < 0)
		goto fail;
	ctl->lfd = fd;
	ctl->dev = st.st_dev;
	ctl->ino = st.st_ino;
	return 0;
fail:;
	int e = errno;
	snprintf(err, errlen, "admin socket %s: %s", path, strerror(e));
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	return -e;
}

int drp_ctl_new(drp_server_t *srv, const drp_conf_t *conf, const char *env_dir,
		drp_ctl_t **out, char *err, size_t errlen)
{
	drp_ctl_t *ctl = DRP_NEW(drp_ctl_t);
	ctl->srv = srv;
	ctl->lfd = -1;
	pthread_mutex_init(&ctl->lock, NULL);
	pthread_cond_init(&ctl->cond, NULL);
	char path[4096];
	int r = drp_ctl_socket_path(conf, env_dir, path, sizeof(path));
	bool default_place = conf->admin_socket == NULL;
	if (r < 0) {
		snprintf(err, errlen, "admin socket: path too long");
	} else if (r == 0) {
		ctl->path = drp_strdup(path);
		r = make_socket(ctl, default_place, err, errlen);
		if (r < 0)
			DRP_FREE(ctl->path);
	}
	if (r < 0 && default_place) {
		drp_log_warning(DRP_LOG_MAIN,
				"%s; running without an admin socket (set "
				"[proxy] admin_socket)",
				err);
		r = 0;
	}
	if (r < 0) {
		drp_ctl_free(ctl);
		return r;
	}
	if (ctl->path)
		drp_log_notice(DRP_LOG_MAIN, "admin socket %s", ctl->path);
	*out = ctl;
	return 0;
}

static void attach_cb(drp_worker_t *w, void *arg)
{
	drp_ctl_t *ctl = arg;
	if (ctl->lfd >= 0) {
		ev_io_init(&ctl->accept_io, accept_cb, ctl->lfd, EV_READ);
		ev_io_start(w->loop, &ctl->accept_io);
	}
	ev_init(&ctl->sweep, sweep_cb);
	ctl->sweep.repeat = 1.; /* the first look soon after start */
	ev_timer_again(w->loop, &ctl->sweep);
}

int drp_ctl_start(drp_ctl_t *ctl)
{
	drp_server_t *srv = ctl->srv;
	if (srv->n_workers == 0 || srv->pool == NULL)
		return -EINVAL;
	ctl->w = &srv->workers[0];
	/* One command or sweep at a time, on a thread of its own: a verify
	 * of a large cache must not hold up the stores or the password
	 * checks. */
	ctl->lane = drp_pool_lane_new(srv->pool, "admin", 1, 1, 0);
	if (ctl->lane == NULL)
		return -EAGAIN;
	int r = drp_worker_call(ctl->w, attach_cb, ctl);
	if (r == 0)
		ctl->started = true;
	return r;
}

static void detach_cb(drp_worker_t *w, void *arg)
{
	drp_ctl_t *ctl = arg;
	atomic_store(&ctl->stop, true);
	if (ctl->lfd >= 0) {
		ev_io_stop(w->loop, &ctl->accept_io);
		close(ctl->lfd);
		ctl->lfd = -1;
	}
	ev_timer_stop(w->loop, &ctl->sweep);
	for (client_t *c = ctl->clients, *next; c; c = next) {
		next = c->next;
		if (c->state == C_POOL) {
			atomic_store(&c->stop, true);
			continue;
		}
		if (c->state == C_WARM || c->state == C_CMD) {
			drp_warm_cancel(c->warm);
			c->warm = NULL;
			put_lines(c, 'e', "the daemon is stopping");
			put_lines(c, 'x', "1");
			client_flush(c);
		}
		client_free(c);
	}
	/* Completions of jobs still running run in drp_pool_free, and so
	 * does one already due but not yet run (a command whose answer the
	 * client has read when the daemon is told to stop): by then
	 * drp_workers_drain has freed the worker, so nothing may reach it
	 * through ctl->w any more (client_free checks). */
	drp_pool_loop_forget(ctl->srv->pool, w->loop);
	ctl->w = NULL;
	pthread_mutex_lock(&ctl->lock);
	ctl->stopped = true;
	pthread_cond_signal(&ctl->cond);
	pthread_mutex_unlock(&ctl->lock);
}

void drp_ctl_stop(drp_ctl_t *ctl)
{
	if (ctl == NULL || !ctl->started)
		return;
	atomic_store(&ctl->stop, true);
	if (drp_worker_call(ctl->w, detach_cb, ctl) < 0)
		return;
	pthread_mutex_lock(&ctl->lock);
	while (!ctl->stopped)
		pthread_cond_wait(&ctl->cond, &ctl->lock);
	pthread_mutex_unlock(&ctl->lock);
}

void drp_ctl_free(drp_ctl_t *ctl)
{
	if (ctl == NULL)
		return;
	/* Clients whose job never completed (the pool freed them). */
	while (ctl->clients)
		client_free(ctl->clients);
	if (ctl->lfd >= 0)
		close(ctl->lfd);
	struct stat st;
	if (ctl->path && stat(ctl->path, &st) == 0 && st.st_dev == ctl->dev &&
	    st.st_ino == ctl->ino)
		unlink(ctl->path);
	free(ctl->path);
	pthread_mutex_destroy(&ctl->lock);
	pthread_cond_destroy(&ctl->cond);
	free(ctl);
}
