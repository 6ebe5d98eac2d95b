/* SPDX-License-Identifier: MIT */
#include "proxy/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth/users.h"
#include "tls/session.h"
#include "util/log.h"
#include "util/mem.h"

static atomic_uint conn_ids;

/* How often a refusal at max_connections may be logged: a client that
 * retries at once would otherwise write a line per attempt. */
#define OVER_LIMIT_LOG_PERIOD 10

/* A connection was refused at max_connections (any worker): counted,
 * and logged when it is the first, or the first OVER_LIMIT_LOG_PERIOD
 * seconds after the last line, with how many were refused meanwhile. */
static void over_limit(drp_stats_t *s, unsigned max)
{
	unsigned long n = atomic_fetch_add(&s->over_limit, 1) + 1;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t now = (int64_t)ts.tv_sec + 1; /* 0 means never */
	int64_t last = atomic_load(&s->over_limit_logged_at);
	if (last != 0 && now - last < OVER_LIMIT_LOG_PERIOD)
		return;
	if (!atomic_compare_exchange_strong(&s->over_limit_logged_at, &last,
					    now))
		return; /* another worker logs it */
	unsigned long before = atomic_exchange(&s->over_limit_logged, n);
	if (last == 0)
		drp_log_warning(
			DRP_LOG_NET,
			"connection limit (%u) reached: new connections "
			"are answered 503 (max_connections)",
			max);
	else
		drp_log_warning(
			DRP_LOG_NET,
			"connection limit (%u) reached: %lu connection(s) "
			"answered 503 since the last report",
			max, n - before);
}

unsigned drp_worker_conn_id(drp_worker_t *w)
{
	return atomic_fetch_add(&conn_ids, 1) + 1;
}

/* The first line of a file of /proc/sys, blanks for tabs ("" if none). */
static void proc_line(const char *path, char *buf, size_t len)
{
	buf[0] = '\0';
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return;
	if (fgets(buf, (int)len, f) == NULL)
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	for (char *p = buf; *p; p++)
		if (*p == '\t')
			*p = ' ';
}

/* tcp_congestion on a listening socket: the connections it accepts
 * inherit it (unless a route names one of its own: ip route ...
 * congctl). The kernel says whether it has the algorithm and whether
 * this process may use it; it loads a missing algorithm's module only
 * for a process with CAP_NET_ADMIN, which the shipped systemd unit does
 * not give. text: the listen address, or NULL. Returns 0 or -errno (err
 * filled). */
static int set_congestion(int fd, const char *cc, const char *text, char *err,
			  size_t errlen)
{
	if (setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, strlen(cc)) == 0)
		return 0;
	int e = errno;
	char have[256], pre[300] = "";
	if (text != NULL)
		snprintf(pre, sizeof(pre), "listen %s: ", text);
	if (e == ENOENT) {
		proc_line("/proc/sys/net/ipv4/tcp_available_congestion_control",
			  have, sizeof(have));
		snprintf(err, errlen,
			 "%stcp_congestion %s: the kernel has no such "
			 "algorithm (it has: %s; a module must be loaded "
			 "first: modprobe tcp_%s)",
			 pre, cc, have[0] ? have : "?", cc);
	} else if (e == EPERM) {
		proc_line("/proc/sys/net/ipv4/tcp_allowed_congestion_control",
			  have, sizeof(have));
		snprintf(err, errlen,
			 "%stcp_congestion %s: not allowed for this "
			 "process (allowed: %s; add it to "
			 "net.ipv4.tcp_allowed_congestion_control)",
			 pre, cc, have[0] ? have : "?");
	} else {
		snprintf(err, errlen, "%stcp_congestion %s: %s", pre, cc,
			 strerror(e));
	}
	return -e;
}

int drp_workers_check_congestion(const char *cc, char *err, size_t errlen)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "tcp_congestion %s: socket: %s", cc,
			 strerror(e));
		return -e;
	}
	int r = set_congestion(fd, cc, NULL, err, errlen);
	close(fd);
	return r;
}

/* Every worker has a listening socket of its own on each address, joined
 * in one SO_REUSEPORT group. The first socket of the group binds without
 * SO_REUSEPORT, so the bind fails if anything (another instance of this
 * daemon included) already listens there, and only then joins the group:
 * a second daemon can never silently share the address. */
/*
 * dual: an IPv6 wildcard ([::]) that takes IPv4 clients too (v4-mapped);
 * every other IPv6 socket is IPv6 only. Returns the socket, -1 (err
 * filled), or -2 if the host has no IPv6 at all (nothing filled).
 */
static int listen_one(const drp_conf_listen_t *l, bool first, bool dual,
		      const char *cc, char *err, size_t errlen)
{
	const struct sockaddr *sa = (const struct sockaddr *)&l->addr;
	int fd = socket(sa->sa_family,
			SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 && sa->sa_family == AF_INET6 && errno == EAFNOSUPPORT)
		return -2;
	if (fd < 0)
		goto fail;
	int one = 1, v6only = !dual;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (!first &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only,
			   sizeof(v6only));
	if (cc != NULL && set_congestion(fd, cc, l->text, err, errlen) < 0) {
		close(fd);
		return -1;
	}
	if (bind(fd, sa, l->addrlen) < 0) {
		if (sa->sa_family == AF_INET6 && errno == EADDRNOTAVAIL &&
		    dual) {
			close(fd);
			return -2;
		}
		if (errno == EADDRINUSE) {
			snprintf(err, errlen,
				 "listen %s: address already in use (is "
				 "another docker-registry-proxy running "
				 "there?)",
				 l->text);
			close(fd);
			return -1;
		}
		goto fail;
	}
	if (first &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	if (listen(fd, 1024) < 0)
		goto fail;
	return fd;
fail:
	snprintf(err, errlen, "listen %s: %s", l->text, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/* [::]:PORT */
static bool v6_any(const drp_conf_listen_t *l)
{
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&l->addr;
	return l->addr.ss_family == AF_INET6 &&
	       IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
}

/* Does the list also have 0.0.0.0 on l's port (then [::] is IPv6 only)? */
static bool has_v4_any(const drp_conf_listen_t *list, unsigned n,
		       const drp_conf_listen_t *l)
{
	uint16_t port = ((const struct sockaddr_in6 *)&l->addr)->sin6_port;
	for (unsigned i = 0; i < n; i++) {
		const struct sockaddr_in *in =
			(const struct sockaddr_in *)&list[i].addr;
		if (list[i].addr.ss_family == AF_INET &&
		    in->sin_addr.s_addr == htonl(INADDR_ANY) &&
		    in->sin_port == port)
			return true;
	}
	return false;
}

/* Out of descriptors: how long accepting pauses when no client could be
 * shed, and how often the condition is logged at most. */
#define ACCEPT_PAUSE 0.5
#define FD_LOG_EVERY 10.0

static void fd_log(struct ev_loop *loop, drp_worker_t *w, bool flush)
{
	if (w->fd_shed == 0 && w->fd_pauses == 0)
		return;
	if (!flush && w->fd_logged != 0 &&
	    ev_now(loop) - w->fd_logged < FD_LOG_EVERY)
		return;
	drp_log_warning(DRP_LOG_NET,
			"out of file descriptors (worker %u): %u "
			"connection(s) dropped, accepting paused %u time(s)",
			w->id, w->fd_shed, w->fd_pauses);
	w->fd_logged = ev_now(loop);
	w->fd_shed = w->fd_pauses = 0;
}

static void accept_resume_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	drp_worker_t *w = DRP_CONTAINER_OF(t, drp_worker_t, accept_resume);
	if (w->spare_fd < 0)
		w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (w->draining)
		return;
	for (unsigned j = 0; j < w->n_listeners; j++)
		if (w->listeners[j].fd >= 0)
			ev_io_start(loop, &w->listeners[j].io);
}

/*
 * accept failed for lack of descriptors, and the listener stays readable:
 * returning would have the loop call accept_cb again at once, a spin.
 * With the spare descriptor, one waiting client is accepted and closed (it
 * learns at once instead of waiting for its timeout), and the next turn
 * sheds the next one. Without it (its slot went to another thread between
 * the close and the accept: the workers share one descriptor table),
 * accepting pauses for ACCEPT_PAUSE, and the spare is taken again then.
 */
static void out_of_fds(struct ev_loop *loop, drp_worker_t *w, drp_listener_t *l)
{
	if (w->spare_fd >= 0) {
		close(w->spare_fd);
		int x = accept(l->fd, NULL, NULL);
		/* EAGAIN: the client left the queue meanwhile. */
		bool gone = x < 0 && (errno == EAGAIN || errno == ECONNABORTED);
		if (x >= 0) {
			close(x);
			w->fd_shed++;
		}
		w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if ((x >= 0 || gone) && w->spare_fd >= 0) {
			fd_log(loop, w, false);
			return;
		}
	}
	w->fd_pauses++;
	for (unsigned j = 0; j < w->n_listeners; j++)
		ev_io_stop(loop, &w->listeners[j].io);
	ev_timer_set(&w->accept_resume, ACCEPT_PAUSE, 0.);
	ev_timer_start(loop, &w->accept_resume);
	fd_log(loop, w, false);
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	drp_listener_t *l = DRP_CONTAINER_OF(io, drp_listener_t, io);
	drp_worker_t *w = l->w;
	if (w->spare_fd < 0)
		w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				out_of_fds(loop, w, l);
			else if (errno != EAGAIN && errno != EINTR &&
				 errno != ECONNABORTED)
				drp_log_errno(DRP_LOG_WARNING, DRP_LOG_NET,
					      "accept");
			return;
		}
		/* A v4 client of a dual-stack socket is a v4 client: in
		 * the access log, the policy and the PROXY headers. */
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		if (ss.ss_family == AF_INET6 &&
		    IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			struct sockaddr_in in = {.sin_family = AF_INET,
						 .sin_port = in6->sin6_port};
			memcpy(&in.sin_addr, &in6->sin6_addr.s6_addr[12], 4);
			memset(&ss, 0, sizeof(ss));
			memcpy(&ss, &in, sizeof(in));
			sl = sizeof(in);
		}
		drp_runtime_t *rt = drp_server_runtime_get(w->srv);
		unsigned max = rt->conf->max_connections;
		drp_runtime_unref(rt);
		if (atomic_load(&w->srv->stats.connections_open) >= max) {
			static const char busy[] =
				"HTTP/1.1 503 Service Unavailable\r\n"
				"Content-Length: 26\r\nConnection: "
				"close\r\n\r\n"
				"too many connections; retry\n";
			ssize_t r =
				send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL);
			(void)r;
			close(fd);
			over_limit(&w->srv->stats, max);
			continue;
		}
		if (l->mirror_tls)
			w->hooks->accept_mirror_tls(w, fd,
						    (struct sockaddr *)&ss, sl);
		else
			w->hooks->accept(w, fd, (struct sockaddr *)&ss, sl);
	}
}

int drp_workers_listen(drp_server_t *srv, const drp_conf_t *conf, char *err,
		       size_t errlen)
{
	unsigned n = conf->workers;
	if (n == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		n = cpus > 0 ? (unsigned)cpus : 1;
	}
	srv->n_workers = n;
	srv->workers = drp_calloc(n, sizeof(drp_worker_t));
	for (unsigned i = 0; i < n; i++) {
		drp_worker_t *w = &srv->workers[i];
		w->srv = srv;
		w->id = i;
		w->spare_fd = -1;
		unsigned nl = conf->n_listen + conf->n_mirror_tls_listen;
		w->n_listeners = nl;
		w->listeners = drp_calloc(nl, sizeof(drp_listener_t));
		for (unsigned j = 0; j < nl; j++) {
			bool tls = j >= conf->n_listen;
			const drp_conf_listen_t *list =
				tls ? conf->mirror_tls_listen : conf->listen;
			unsigned nlist = tls ? conf->n_mirror_tls_listen
					     : conf->n_listen;
			const drp_conf_listen_t *cl =
				&list[tls ? j - conf->n_listen : j];
			w->listeners[j].w = w;
			w->listeners[j].mirror_tls = tls;
			bool dual = v6_any(cl) && !has_v4_any(list, nlist, cl);
			int fd = listen_one(cl, i == 0, dual,
					    conf->tcp_congestion, err, errlen);
			if (fd == -2 && !dual) {
				snprintf(err, errlen,
					 "listen %s: this host has no IPv6",
					 cl->text);
				fd = -1;
			} else if (fd == -2) {
				/* No IPv6 here: the same port on IPv4. */
				drp_conf_listen_t v4 = {.text = NULL};
				struct sockaddr_in *in =
					(struct sockaddr_in *)&v4.addr;
				in->sin_family = AF_INET;
				in->sin_port =
					((const struct sockaddr_in6 *)&cl->addr)
						->sin6_port;
				v4.addrlen = sizeof(*in);
				char text[32];
				snprintf(text, sizeof(text), "0.0.0.0:%u",
					 ntohs(in->sin_port));
				v4.text = text;
				if (i == 0)
					drp_log_notice(DRP_LOG_NET,
						       "listen %s: this host "
						       "has no IPv6; listening "
						       "on %s only",
						       cl->text, text);
				fd = listen_one(&v4, i == 0, false,
						conf->tcp_congestion, err,
						errlen);
			}
			w->listeners[j].fd = fd;
			if (fd < 0)
				return -EADDRINUSE;
		}
	}
	return 0;
}

static void wake_cb(struct ev_loop *loop, ev_async *a, int revents);
static void drain_check_cb(struct ev_loop *loop, ev_timer *t, int revents);

static void fill_wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	drp_worker_t *w = DRP_CONTAINER_OF(a, drp_worker_t, fill_wake);
	w->hooks->fill_wake(w);
}

struct drp_worker_call {
	struct drp_worker_call *next;
	drp_worker_call_fn *fn;
	void *arg;
};

static void calls_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	drp_worker_t *w = DRP_CONTAINER_OF(a, drp_worker_t, calls_wake);
	pthread_mutex_lock(&w->calls_lock);
	struct drp_worker_call *c = w->calls;
	w->calls = w->calls_tail = NULL;
	pthread_mutex_unlock(&w->calls_lock);
	while (c) {
		struct drp_worker_call *next = c->next;
		c->fn(w, c->arg);
		free(c);
		c = next;
	}
}

int drp_worker_call(drp_worker_t *w, drp_worker_call_fn *fn, void *arg)
{
	drp_server_t *srv = w->srv;
	struct drp_worker_call *c = DRP_NEW(struct drp_worker_call);
	c->fn = fn;
	c->arg = arg;
	pthread_rwlock_rdlock(&srv->loops_lock);
	if (!srv->loops_live || w->loop == NULL) {
		pthread_rwlock_unlock(&srv->loops_lock);
		free(c);
		return -ESHUTDOWN;
	}
	pthread_mutex_lock(&w->calls_lock);
	if (w->calls_tail)
		w->calls_tail->next = c;
	else
		w->calls = c;
	w->calls_tail = c;
	pthread_mutex_unlock(&w->calls_lock);
	ev_async_send(w->loop, &w->calls_wake);
	pthread_rwlock_unlock(&srv->loops_lock);
	return 0;
}

static void reap_cb(struct ev_loop *loop, ev_prepare *p, int revents)
{
	drp_worker_t *w = DRP_CONTAINER_OF(p, drp_worker_t, reap);
	w->hooks->reap(w);
}

static void *worker_main(void *arg)
{
	drp_worker_t *w = arg;
	ev_run(w->loop, 0);
	w->hooks->reap(w);
	drp_tls_thread_done();
	return NULL;
}

/* Two verifications at once, in the worker pool's users lane: bcrypt
 * at cost 10 takes tens of milliseconds, and the cache answers every
 * repeated Proxy-Authorization; at most 256 distinct values wait (a
 * flood of wrong passwords gets 503). */
#define USERS_THREADS 2
#define USERS_JOBS    256

int drp_worker_loop_init(drp_worker_t *w, const drp_conf_t *conf,
			 const drp_worker_hooks_t *hooks)
{
	w->hooks = hooks;
	w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (w->loop == NULL)
		return -ENOMEM;
	drp_upstream_init(&w->upstream, w->loop, conf->connect_timeout);
	w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ev_async_init(&w->wake, wake_cb);
	w->wake.data = w;
	ev_async_start(w->loop, &w->wake);
	ev_async_init(&w->fill_wake, fill_wake_cb);
	ev_async_start(w->loop, &w->fill_wake);
	pthread_mutex_init(&w->calls_lock, NULL);
	w->calls = w->calls_tail = NULL;
	ev_async_init(&w->calls_wake, calls_cb);
	ev_async_start(w->loop, &w->calls_wake);
	/* Started (by the connection's close) when there is something to
	 * free. */
	ev_prepare_init(&w->reap, reap_cb);
	ev_timer_init(&w->accept_resume, accept_resume_cb, ACCEPT_PAUSE, 0.);
	for (unsigned j = 0; j < w->n_listeners; j++) {
		ev_io_init(&w->listeners[j].io, accept_cb, w->listeners[j].fd,
			   EV_READ);
		ev_io_start(w->loop, &w->listeners[j].io);
	}
	return 0;
}

void drp_worker_loop_fini(drp_worker_t *w)
{
	w->hooks->reap(w);
	fd_log(w->loop, w, true);
	drp_upstream_fini(&w->upstream);
	ev_async_stop(w->loop, &w->calls_wake);
	ev_loop_destroy(w->loop);
	w->loop = NULL;
	while (w->calls) {
		struct drp_worker_call *next = w->calls->next;
		free(w->calls);
		w->calls = next;
	}
	w->calls_tail = NULL;
	pthread_mutex_destroy(&w->calls_lock);
	if (w->spare_fd >= 0)
		close(w->spare_fd);
	w->spare_fd = -1;
}

int drp_workers_start(drp_server_t *srv, const drp_worker_hooks_t *hooks)
{
	srv->users_pool =
		srv->pool ? drp_users_pool_new_on(srv->pool, USERS_THREADS,
						  USERS_JOBS)
			  : drp_users_pool_new(USERS_THREADS, USERS_JOBS);
	if (srv->users_pool == NULL)
		return -EAGAIN;
	drp_runtime_t *rt = drp_server_runtime_get(srv);
	for (unsigned i = 0; i < srv->n_workers; i++) {
		if (drp_worker_loop_init(&srv->workers[i], rt->conf, hooks) <
		    0) {
			drp_runtime_unref(rt);
			return -ENOMEM;
		}
	}
	drp_runtime_unref(rt);
	pthread_rwlock_wrlock(&srv->loops_lock);
	srv->loops_live = true;
	pthread_rwlock_unlock(&srv->loops_lock);
	for (unsigned i = 0; i < srv->n_workers; i++) {
		int r = pthread_create(&srv->workers[i].thread, NULL,
				       worker_main, &srv->workers[i]);
		if (r != 0)
			return -r;
	}
	return 0;
}

typedef struct drain_state {
	ev_timer check;
	ev_tstamp deadline;
} drain_state_t;

static void wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	drp_worker_t *w = a->data;
	if (w->draining || !atomic_load(&w->srv->draining))
		return;
	w->draining = true;
	ev_timer_stop(loop, &w->accept_resume);
	for (unsigned j = 0; j < w->n_listeners; j++) {
		ev_io_stop(loop, &w->listeners[j].io);
		close(w->listeners[j].fd);
		w->listeners[j].fd = -1;
	}
	drp_upstream_drain(&w->upstream);
	w->hooks->drain(w);
	drain_state_t *d = DRP_NEW(drain_state_t);
	d->deadline = ev_now(loop) + w->srv->drain_grace;
	ev_timer_init(&d->check, drain_check_cb, 0.1, 0.1);
	d->check.data = w;
	ev_timer_start(loop, &d->check);
}

static void drain_check_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	drp_worker_t *w = t->data;
	drain_state_t *d = DRP_CONTAINER_OF(t, drain_state_t, check);
	if (w->conns && ev_now(loop) < d->deadline)
		return;
	if (w->conns)
		w->hooks->close_all(w, "shutdown deadline");
	ev_timer_stop(loop, t);
	free(d);
	/* Plugins' fetches and timers still pending end now, each with
	 * its callback (-ECANCELED), while the loop still exists. */
	w->hooks->stop(w);
	ev_async_stop(loop, &w->wake);
	ev_async_stop(loop, &w->fill_wake);
	ev_async_stop(loop, &w->calls_wake);
	ev_break(loop, EVBREAK_ALL);
}

void drp_workers_drain(drp_server_t *srv, double grace)
{
	srv->drain_grace = grace;
	atomic_store(&srv->draining, true);
	for (unsigned i = 0; i < srv->n_workers; i++)
		ev_async_send(srv->workers[i].loop, &srv->workers[i].wake);
	for (unsigned i = 0; i < srv->n_workers; i++)
		pthread_join(srv->workers[i].thread, NULL);
	/* No thread may wake a loop from now on (hash jobs of fills may
	 * still run). */
	pthread_rwlock_wrlock(&srv->loops_lock);
	srv->loops_live = false;
	pthread_rwlock_unlock(&srv->loops_lock);
	/* Before the loops go: a verifier thread may still wake one. */
	drp_users_pool_free(srv->users_pool);
	srv->users_pool = NULL;
	for (unsigned i = 0; i < srv->n_workers; i++) {
		drp_worker_t *w = &srv->workers[i];
		drp_worker_loop_fini(w);
		free(w->listeners);
	}
	free(srv->workers);
	srv->workers = NULL;
}
