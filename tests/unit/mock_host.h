/* SPDX-License-Identifier: MIT */
/*
 * A fake host for plugin tests: the real core-independent services
 * (plugin/host.c: config, token cache, parsers) plus fakes for what needs
 * the proxy core. Log lines are captured, http_fetch only records the
 * request (the test completes it with mock_fetch_complete), timers fire
 * only from mock_timers_fire, the clock is m->now.
 *
 * Single-threaded, like one worker loop.
 */
#ifndef DRP_TESTS_MOCK_HOST_H
#define DRP_TESTS_MOCK_HOST_H

#include <stdbool.h>

#include <drp/plugin.h>

#include "plugin/host.h"

#define MOCK_MAX_HEADERS 16

/* The fake upstream request. */
struct drp_auth_req {
	const char *field[8]; /* by enum drp_req_field */
	char *hname[MOCK_MAX_HEADERS];
	char *hvalue[MOCK_MAX_HEADERS];
	unsigned n_headers;
	void *data;
	int done_calls;
	int done_result;
	bool in_hook; /* auth_done inside the hook is a plugin bug */
};

struct drp_http_fetch {
	struct drp_http_fetch *next;
	char *method, *url, *headers, *body; /* headers joined with "\n" */
	drp_http_fetch_cb *cb;
	void *arg;
	bool cancelled, completed;
};

struct drp_timer {
	struct drp_timer *next;
	double at;
	drp_timer_cb *cb;
	void *arg;
	bool stopped, fired;
};

typedef struct mock_host {
	drp_plugin_host_t host; /* first: api is host.api */
	char **log;
	unsigned n_log;
	struct drp_http_fetch *fetches; /* newest first */
	unsigned n_fetches;
	struct drp_timer *timers;
	double now;
} mock_host_t;

/* Init/fini a mock host; m->host.api is the table to hand out. */
void mock_host_init(mock_host_t *m);
void mock_host_fini(mock_host_t *m);

/* Number of captured log lines containing `needle`. */
unsigned mock_log_count(const mock_host_t *m, const char *needle);
/* All captured lines joined with "\n" (static buffer, for messages). */
const char *mock_log_dump(const mock_host_t *m);

/* Fake request: method, url, registry, repository (may be NULL),
 * actions. */
void mock_req_init(struct drp_auth_req *r, const char *method, const char *url,
		   const char *registry, const char *repo, const char *actions);
void mock_req_fini(struct drp_auth_req *r);
/* Header value or NULL. */
const char *mock_req_header(const struct drp_auth_req *r, const char *name);
/* Run a hook with the in_hook guard set. */
#define MOCK_HOOK(req, call)                                                   \
	({                                                                     \
		(req)->in_hook = true;                                         \
		int _r = (call);                                               \
		(req)->in_hook = false;                                        \
		_r;                                                            \
	})

/* The idx-th fetch started (0 = first), or NULL. */
struct drp_http_fetch *mock_fetch_nth(const mock_host_t *m, unsigned idx);
/* Complete a fetch: status, response headers ("Name: value" array, NULL
 * terminated, may be NULL) and body. */
void mock_fetch_complete(mock_host_t *m, struct drp_http_fetch *f, int status,
			 const char *const *headers, const char *body);
/* Advance the clock and fire due timers. */
void mock_timers_advance(mock_host_t *m, double seconds);

#endif
