/* SPDX-License-Identifier: MIT */
#include "net/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>

#include "util/log.h"
#include "util/mem.h"

/* Intrusive circular list: unlinking needs no list head, so a query can
 * be cancelled whichever list (queue or a flush's private batch) holds it. */
struct dlist {
	struct dlist *prev, *next;
};

static void dlist_init(struct dlist *h)
{
	h->prev = h->next = h;
}

static bool dlist_empty(const struct dlist *h)
{
	return h->next == h;
}

static void dlist_add_tail(struct dlist *h, struct dlist *n)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}

static void dlist_del(struct dlist *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	dlist_init(n);
}

/* Moves every node of src to the (empty) dst. */
static void dlist_splice(struct dlist *src, struct dlist *dst)
{
	dlist_init(dst);
	if (dlist_empty(src))
		return;
	dst->next = src->next;
	dst->prev = src->prev;
	dst->next->prev = dst;
	dst->prev->next = dst;
	dlist_init(src);
}

struct dns_sock {
	ev_io io;
	drp_dns_t *d;
	struct dns_sock *next;
};

struct drp_dns_query {
	drp_dns_t *d;
	drp_dns_cb cb; /* NULL once delivered or cancelled */
	void *arg;
	struct dlist all;   /* d->all: every query we still own */
	struct dlist queue; /* d->done while waiting for delivery */
	ev_timer deadline;
	uint16_t port;
	bool in_ares; /* c-ares still holds a pointer to us */
	int status;
	drp_dns_result_t res;
};

struct drp_dns {
	struct ev_loop *loop;
	ares_channel channel;
	double timeout;
	ev_timer ares_timer;
	ev_timer flush; /* zero-delay: delivers d->done on the next iteration */
	struct dns_sock *socks;
	struct dlist all;
	struct dlist done;
	bool *freed; /* set by drp_dns_free() while a flush is running */
	bool destroying;
};

static void query_free(drp_dns_query_t *q)
{
	ev_timer_stop(q->d->loop, &q->deadline);
	dlist_del(&q->queue);
	dlist_del(&q->all);
	free(q);
}

static void rearm_ares_timer(drp_dns_t *d)
{
	struct timeval tv;

	if (d->destroying)
		return;
	ev_timer_stop(d->loop, &d->ares_timer);
	if (ares_timeout(d->channel, NULL, &tv) == NULL)
		return;
	ev_timer_set(&d->ares_timer, tv.tv_sec + tv.tv_usec / 1e6, 0.);
	ev_timer_start(d->loop, &d->ares_timer);
}

static void queue_result(drp_dns_query_t *q)
{
	drp_dns_t *d = q->d;

	ev_timer_stop(d->loop, &q->deadline);
	dlist_add_tail(&d->done, &q->queue);
	if (!ev_is_active(&d->flush))
		ev_timer_start(d->loop, &d->flush);
}

static void flush_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	drp_dns_t *d = DRP_CONTAINER_OF(w, drp_dns_t, flush);
	struct dlist batch;
	bool freed = false;

	/* Only what is queued now: results queued by the callbacks below wait
	 * for the next iteration, so a callback that resolves again cannot
	 * starve the loop. */
	dlist_splice(&d->done, &batch);
	d->freed = &freed;
	while (!dlist_empty(&batch)) {
		drp_dns_query_t *q =
			DRP_CONTAINER_OF(batch.next, drp_dns_query_t, queue);
		drp_dns_cb cb = q->cb;
		void *arg = q->arg;
		int status = q->status;
		drp_dns_result_t res = q->res;

		/* The handle dies before its callback runs, so the callback
		 * may free the resolver or cancel any other query. */
		query_free(q);
		cb(arg, status, &res);
		if (freed)
			return;
	}
	d->freed = NULL;
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	drp_dns_query_t *q = DRP_CONTAINER_OF(w, drp_dns_query_t, deadline);
	drp_dns_cb cb = q->cb;
	void *arg = q->arg;
	drp_dns_result_t res = {.n = 0};

	drp_log_debug(DRP_LOG_DNS, "query timed out after %.3gs",
		      q->d->timeout);
	q->cb = NULL;
	/* c-ares may still answer later; the node lives until it does. */
	if (!q->in_ares)
		query_free(q);
	cb(arg, -ETIMEDOUT, &res);
}

static int ares_status_to_errno(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return 0;
	case ARES_ENOTFOUND:
	case ARES_ENODATA:
	case ARES_ENONAME:
	case ARES_EBADNAME:
	case ARES_EBADFAMILY:
		return -ENOENT;
	case ARES_ETIMEOUT:
		return -ETIMEDOUT;
	default:
		return -EIO;
	}
}

static bool same_addr(const struct sockaddr_storage *a, unsigned alen,
		      const struct sockaddr *b, unsigned blen)
{
	return alen == blen && memcmp(a, b, alen) == 0;
}

static void add_addr(drp_dns_result_t *res, const struct sockaddr *sa,
		     unsigned len, uint16_t port)
{
	struct sockaddr_storage ss;

	if (res->n >= DRP_ARRAY_SIZE(res->addr) || len > sizeof(ss))
		return;
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, sa, len);
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = htons(port);
	else if (sa->sa_family == AF_INET6)
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
	else
		return;
	/* /etc/hosts may list an address twice; callers iterate to connect,
	 * so a duplicate only costs a pointless attempt. */
	for (unsigned i = 0; i < res->n; i++)
		if (same_addr(&res->addr[i], res->addrlen[i],
			      (struct sockaddr *)&ss, len))
			return;
	res->addr[res->n] = ss;
	res->addrlen[res->n] = len;
	res->n++;
}

static void ares_done_cb(void *arg, int status, int timeouts,
			 struct ares_addrinfo *ai)
{
	drp_dns_query_t *q = arg;

	q->in_ares = false;
	if (q->d->destroying) {
		/* drp_dns_free() frees the node itself. */
		ares_freeaddrinfo(ai);
		return;
	}
	if (q->cb == NULL) {
		/* Cancelled or timed out: nobody is waiting any more. */
		ares_freeaddrinfo(ai);
		query_free(q);
		return;
	}
	q->status = ares_status_to_errno(status);
	if (status == ARES_SUCCESS && ai != NULL) {
		for (struct ares_addrinfo_node *n = ai->nodes; n != NULL;
		     n = n->ai_next)
			add_addr(&q->res, n->ai_addr, n->ai_addrlen, q->port);
		if (q->res.n == 0)
			q->status = -ENOENT;
	}
	ares_freeaddrinfo(ai);
	/* ares_getaddrinfo() answers /etc/hosts and errors synchronously:
	 * always go through the queue so the caller never sees a callback
	 * from inside drp_dns_resolve(). */
	queue_result(q);
}

static void sock_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct dns_sock *s = DRP_CONTAINER_OF(w, struct dns_sock, io);
	drp_dns_t *d = s->d;
	int fd = w->fd;

	/* May close the socket, and the state callback then frees s. */
	ares_process_fd(d->channel, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
			(revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	rearm_ares_timer(d);
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable,
			  int writable)
{
	drp_dns_t *d = data;
	struct dns_sock **pp = &d->socks;

	while (*pp != NULL && (*pp)->io.fd != fd)
		pp = &(*pp)->next;
	struct dns_sock *s = *pp;

	if (!readable && !writable) {
		if (s != NULL) {
			ev_io_stop(d->loop, &s->io);
			*pp = s->next;
			free(s);
		}
		return;
	}
	int events = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
	if (s == NULL) {
		s = DRP_NEW(struct dns_sock);
		s->d = d;
		s->next = d->socks;
		d->socks = s;
		ev_io_init(&s->io, sock_io_cb, fd, events);
	} else {
		ev_io_stop(d->loop, &s->io);
		ev_io_set(&s->io, fd, events);
	}
	ev_io_start(d->loop, &s->io);
}

static void ares_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	drp_dns_t *d = DRP_CONTAINER_OF(w, drp_dns_t, ares_timer);

	ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	rearm_ares_timer(d);
}

drp_dns_t *drp_dns_new(struct ev_loop *loop, double timeout_s)
{
	drp_dns_t *d = DRP_NEW(drp_dns_t);
	struct ares_options opts;
	int optmask =
		ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;

	d->loop = loop;
	d->timeout = timeout_s > 0 ? timeout_s : 5.;
	dlist_init(&d->all);
	dlist_init(&d->done);
	ev_timer_init(&d->ares_timer, ares_timer_cb, 0., 0.);
	ev_timer_init(&d->flush, flush_cb, 0., 0.);

	/* c-ares waits timeout for the first try and twice that for the
	 * second (one server), so a third of the budget per try lets both
	 * tries fit; the per-query deadline enforces the total anyway (search
	 * domains and several servers multiply the tries). */
	memset(&opts, 0, sizeof(opts));
	opts.timeout = (int)(d->timeout * 1000. / 3.);
	if (opts.timeout < 50)
		opts.timeout = 50;
	opts.tries = 2;
	opts.sock_state_cb = sock_state_cb;
	opts.sock_state_cb_data = d;
	/* No ares_library_init(): on POSIX it only matters for Windows
	 * sockets, and its counter is not thread-safe in c-ares 1.18. */
	int rc = ares_init_options(&d->channel, &opts, optmask);
	if (rc != ARES_SUCCESS) {
		drp_log_err(DRP_LOG_DNS, "resolver init failed: %s",
			    ares_strerror(rc));
		free(d);
		return NULL;
	}
	return d;
}

void drp_dns_free(drp_dns_t *d)
{
	if (d == NULL)
		return;
	if (d->freed != NULL)
		*d->freed = true;
	/* ares_destroy() calls back every pending query (ARES_EDESTRUCTION)
	 * and reports its sockets closed; destroying makes those callbacks
	 * leave the nodes to the loop below. */
	d->destroying = true;
	ares_destroy(d->channel);
	while (d->socks != NULL) {
		struct dns_sock *s = d->socks;
		d->socks = s->next;
		ev_io_stop(d->loop, &s->io);
		free(s);
	}
	while (!dlist_empty(&d->all))
		query_free(DRP_CONTAINER_OF(d->all.next, drp_dns_query_t, all));
	ev_timer_stop(d->loop, &d->ares_timer);
	ev_timer_stop(d->loop, &d->flush);
	free(d);
}

/* Fills q->res if host is an IP literal (brackets allowed for IPv6). */
static bool resolve_numeric(drp_dns_query_t *q, const char *host)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	char buf[INET6_ADDRSTRLEN + 2];
	size_t len = strlen(host);

	memset(&sin, 0, sizeof(sin));
	memset(&sin6, 0, sizeof(sin6));
	sin.sin_family = AF_INET;
	sin6.sin6_family = AF_INET6;
	if (inet_pton(AF_INET, host, &sin.sin_addr) == 1) {
		add_addr(&q->res, (struct sockaddr *)&sin, sizeof(sin),
			 q->port);
		return true;
	}
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		if (len - 2 >= sizeof(buf))
			return false;
		memcpy(buf, host + 1, len - 2);
		buf[len - 2] = '\0';
		host = buf;
	}
	if (inet_pton(AF_INET6, host, &sin6.sin6_addr) == 1) {
		add_addr(&q->res, (struct sockaddr *)&sin6, sizeof(sin6),
			 q->port);
		return true;
	}
	return false;
}

drp_dns_query_t *drp_dns_resolve(drp_dns_t *d, const char *host, uint16_t port,
				 drp_dns_cb cb, void *arg)
{
	drp_require(d != NULL && host != NULL && cb != NULL);
	drp_dns_query_t *q = DRP_NEW(drp_dns_query_t);

	q->d = d;
	q->cb = cb;
	q->arg = arg;
	q->port = port;
	dlist_init(&q->queue);
	dlist_add_tail(&d->all, &q->all);
	ev_timer_init(&q->deadline, deadline_cb, d->timeout, 0.);

	if (resolve_numeric(q, host)) {
		q->status = 0;
		queue_result(q);
		return q;
	}
	if (host[0] == '\0') {
		q->status = -ENOENT;
		queue_result(q);
		return q;
	}

	struct ares_addrinfo_hints hints;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	ev_timer_start(d->loop, &q->deadline);
	q->in_ares = true;
	ares_getaddrinfo(d->channel, host, NULL, &hints, ares_done_cb, q);
	rearm_ares_timer(d);
	return q;
}

void drp_dns_cancel(drp_dns_query_t *q)
{
	if (q == NULL || q->cb == NULL)
		return;
	q->cb = NULL;
	/* c-ares has no per-query cancel; an answer that still arrives is
	 * dropped in ares_done_cb(). */
	if (q->in_ares)
		ev_timer_stop(q->d->loop, &q->deadline);
	else
		query_free(q);
}

int drp_dns_set_servers(drp_dns_t *d, const char *servers)
{
	int rc = ares_set_servers_ports_csv(d->channel, servers);

	if (rc == ARES_SUCCESS)
		return 0;
	if (rc == ARES_ENOTIMP)
		return -EBUSY; /* c-ares refuses while queries are pending */
	return rc == ARES_ENODATA || rc == ARES_EBADSTR ? -EINVAL : -EIO;
}
