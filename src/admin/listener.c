/* SPDX-License-Identifier: MIT */
#include "admin/listener.h"

#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin/local.h"
#include "http/parse.h"
#include "util/addr.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

#define ADMIN_MAX_CONNS 64
#define ADMIN_HEAD_MAX	8192
#define ADMIN_TIMEOUT	10.0

typedef struct admin_conn {
	struct admin_conn *next, *prev;
	drp_admin_t *a;
	int fd;
	ev_io io;
	ev_timer timer;
	struct sockaddr_storage peer;
	char peer_str[64];
	drp_buf_t in, out;
	bool answered;
} admin_conn_t;

typedef struct admin_listen {
	ev_io io;
	int fd;
	drp_admin_t *a;
} admin_listen_t;

struct drp_admin {
	drp_server_t *srv;
	struct ev_loop *loop;
	pthread_t thread;
	bool running;
	ev_async stop;
	admin_listen_t *l;
	unsigned n_l;
	admin_conn_t *conns;
	unsigned n_conns;
};

static void conn_free(admin_conn_t *c)
{
	drp_admin_t *a = c->a;
	ev_io_stop(a->loop, &c->io);
	ev_timer_stop(a->loop, &c->timer);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		a->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	a->n_conns--;
	drp_buf_free(&c->in);
	drp_buf_free(&c->out);
	free(c);
}

static void respond(admin_conn_t *c, int status, const char *ctype,
		    const char *body, size_t len, bool head)
{
	drp_buf_printf(&c->out,
		       "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
		       "Content-Length: %zu\r\nCache-Control: no-store\r\n"
		       "Connection: close\r\n\r\n",
		       status, drp_http_reason(status), ctype, len);
	if (!head)
		drp_buf_append(&c->out, body, len);
	c->answered = true;
}

static void respond_text(admin_conn_t *c, int status, const char *msg,
			 bool head)
{
	char body[256];
	int n = snprintf(body, sizeof(body), "%s\n", msg);
	respond(c, status, "text/plain; charset=utf-8", body, (size_t)n, head);
}

/* admin_allow of the configuration in force. */
static bool allowed(drp_admin_t *a, const struct sockaddr *peer)
{
	drp_server_t *srv = a->srv;
	pthread_mutex_lock(&srv->rt_lock);
	drp_runtime_t *rt = srv->rt ? drp_runtime_ref(srv->rt) : NULL;
	pthread_mutex_unlock(&srv->rt_lock);
	if (rt == NULL)
		return false;
	bool ok = drp_cidr_list_match(rt->conf->admin_allow,
				      rt->conf->n_admin_allow, peer);
	drp_runtime_unref(rt);
	return ok;
}

static void answer(admin_conn_t *c, const drp_http_msg_t *req)
{
	bool head = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
	bool get = req->method_len == 3 && memcmp(req->method, "GET", 3) == 0;
	if (!allowed(c->a, (const struct sockaddr *)&c->peer)) {
		drp_log_notice(DRP_LOG_MAIN,
			       "admin: %s refused: not in admin_allow",
			       c->peer_str);
		respond_text(c, 403, "not allowed (admin_allow)", head);
		return;
	}
	if (!get && !head) {
		respond_text(c, 405, "method not allowed here", false);
		return;
	}
	size_t plen = 0;
	while (plen < req->target_len && req->target[plen] != '?' &&
	       req->target[plen] != '#')
		plen++;
	drp_local_response_t r = {0};
	if (drp_local_answer(c->a->srv, req->target, plen, "", true, &r) < 0) {
		respond_text(c, 404,
			     "not found: GET /metrics, /healthz, /readyz",
			     head);
		return;
	}
	respond(c, r.status, r.content_type, r.body, r.len, head);
	drp_local_response_free(&r);
}

static void conn_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	admin_conn_t *c = DRP_CONTAINER_OF(io, admin_conn_t, io);
	if (!c->answered) {
		char *p = drp_buf_reserve(&c->in, 2048);
		ssize_t n = recv(c->fd, p, 2048, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			conn_free(c);
			return;
		}
		if (n > 0)
			c->in.len += (size_t)n;
		drp_http_msg_t req;
		ssize_t r = drp_http_parse_request(drp_buf_head(&c->in),
						   drp_buf_pending(&c->in),
						   ADMIN_HEAD_MAX, &req);
		if (r == DRP_HTTP_INCOMPLETE)
			return;
		if (r < 0)
			respond_text(c, r == -E2BIG ? 431 : 400,
				     "malformed request", false);
		else
			answer(c, &req);
		ev_io_stop(loop, &c->io);
		ev_io_set(&c->io, c->fd, EV_WRITE);
		ev_io_start(loop, &c->io);
	}
	while (drp_buf_pending(&c->out) > 0) {
		ssize_t n = send(c->fd, drp_buf_head(&c->out),
				 drp_buf_pending(&c->out), MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0)
			break;
		drp_buf_consume(&c->out, (size_t)n);
	}
	/* All sent (or the client went away): one request per connection.
	 */
	shutdown(c->fd, SHUT_WR);
	conn_free(c);
}

static void conn_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	conn_free(DRP_CONTAINER_OF(t, admin_conn_t, timer));
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	admin_listen_t *l = DRP_CONTAINER_OF(io, admin_listen_t, io);
	drp_admin_t *a = l->a;
	for (int i = 0; i < 16; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (a->n_conns >= ADMIN_MAX_CONNS) {
			close(fd);
			continue;
		}
		admin_conn_t *c = DRP_NEW(admin_conn_t);
		c->a = a;
		c->fd = fd;
		memcpy(&c->peer, &ss, sizeof(ss));
		drp_sockaddr_ip_str((struct sockaddr *)&ss, c->peer_str,
				    sizeof(c->peer_str));
		c->next = a->conns;
		if (a->conns)
			a->conns->prev = c;
		a->conns = c;
		a->n_conns++;
		ev_io_init(&c->io, conn_io_cb, fd, EV_READ);
		ev_io_start(loop, &c->io);
		ev_timer_init(&c->timer, conn_timer_cb, ADMIN_TIMEOUT, 0.);
		ev_timer_start(loop, &c->timer);
	}
}

static void stop_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

static void *admin_main(void *arg)
{
	drp_admin_t *a = arg;
	ev_run(a->loop, 0);
	return NULL;
}

static int listen_on(const drp_conf_listen_t *l, char *err, size_t errlen)
{
	const struct sockaddr *sa = (const struct sockaddr *)&l->addr;
	int fd = socket(sa->sa_family,
			SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (sa->sa_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
				   sizeof(one));
	}
	if (fd < 0 || bind(fd, sa, l->addrlen) < 0 || listen(fd, 64) < 0) {
		snprintf(err, errlen, "admin_listen %s: %s", l->text,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

drp_admin_t *drp_admin_new(drp_server_t *srv, const drp_conf_t *conf, char *err,
			   size_t errlen)
{
	if (conf->n_admin_listen == 0)
		return NULL;
	drp_admin_t *a = DRP_NEW(drp_admin_t);
	a->srv = srv;
	a->l = drp_calloc(conf->n_admin_listen, sizeof(*a->l));
	for (unsigned i = 0; i < conf->n_admin_listen; i++) {
		int fd = listen_on(&conf->admin_listen[i], err, errlen);
		if (fd < 0) {
			drp_admin_free(a);
			return NULL;
		}
		a->l[a->n_l++] = (admin_listen_t){.fd = fd, .a = a};
	}
	return a;
}

int drp_admin_start(drp_admin_t *a)
{
	a->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (a->loop == NULL)
		return -ENOMEM;
	ev_async_init(&a->stop, stop_cb);
	ev_async_start(a->loop, &a->stop);
	for (unsigned i = 0; i < a->n_l; i++) {
		ev_io_init(&a->l[i].io, accept_cb, a->l[i].fd, EV_READ);
		ev_io_start(a->loop, &a->l[i].io);
	}
	int r = pthread_create(&a->thread, NULL, admin_main, a);
	if (r != 0)
		return -r;
	a->running = true;
	return 0;
}

void drp_admin_free(drp_admin_t *a)
{
	if (a == NULL)
		return;
	if (a->running) {
		ev_async_send(a->loop, &a->stop);
		pthread_join(a->thread, NULL);
	}
	while (a->conns)
		conn_free(a->conns);
	for (unsigned i = 0; i < a->n_l; i++) {
		if (a->loop)
			ev_io_stop(a->loop, &a->l[i].io);
		close(a->l[i].fd);
	}
	if (a->loop)
		ev_loop_destroy(a->loop);
	free(a->l);
	free(a);
}
