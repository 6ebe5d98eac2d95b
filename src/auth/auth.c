/* SPDX-License-Identifier: MIT */
/* The auth layer of the proxy core: [registry] sections and their plugin
 * instances, and the hooks that let an instance decorate the upstream
 * requests made for clients and answer their 401 challenges. */
#include "auth/auth.h"
#include "auth/auth_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "plugin/challenge.h"
#include "plugin/select.h"
#include "core/exchange.h"
#include "auth/users.h"
#include "util/addr.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/metrics.h"

typedef struct auth_sec {
	drp_auth_t *a;
	const drp_conf_registry_t *conf; /* owned by the conf */
	drp_plugin_inst_t *inst;
	bool has_plugin;
	const char *user; /* username, for log lines; NULL if none */
	int mslot;	  /* its rate-limit gauges (util/metrics.h), or -1 */
} auth_sec_t;

struct drp_auth {
	drp_users_t *users;    /* [proxy] users_file; NULL if none */
	drp_auth_host_t *host; /* NULL when there is no [registry] section */
	drp_select_t *sel;
	/* Only the sections with a plugin: their hosts get the proxy's own
	 * token realm. */
	drp_select_t *realm_sel;
	auth_sec_t *secs;
	unsigned n_secs;
	/* Sections with token_realm = yes and a plugin. */
	unsigned n_token_realms;
};

/* How one upstream request is authorised; decided before its first
 * attempt. */
enum req_mode {
	MODE_NONE = 0,	 /* sent as it is, 401s go to the client */
	MODE_CLIENT = 1, /* the client's own Authorization: never touched */
	MODE_PROXY = 2,	 /* the section's plugin adds the proxy's */
	MODE_CORE = 3,	 /* the core's own token client: a client's
			    credentials behind a handle, or anonymous */
};

typedef struct hdr_kv {
	char *name;
	char *value;
} hdr_kv_t;

/* A client's credentials on their way to the upstream's /v2/: the token
 * request waits for the answer, as the exchange's handler (a client that
 * goes away cancels the fetch). */
typedef struct realm_check {
	drp_exch_t *x;
	drp_fetch_t *f;
	bool finished;	      /* check_done ran */
	drp_auth_ident_t *id; /* the request's own reference */
	int status;
} realm_check_t;

/* The plugin-visible request (drp_auth_req_t) is the per-fetch state of
 * the hooks. */
struct drp_auth_req {
	auth_sec_t *sec;	 /* NULL: no section, only handles to swap */
	drp_auth_ident_t *ident; /* MODE_CORE */
	bool strip_handle;	 /* the client sent a proxy-local handle */
	drp_worker_t *w;
	drp_runtime_t *rt; /* a reference: an orphan outlives its fetch */
	drp_fetch_t *f;	   /* NULL once the fetch is gone */
	unsigned conn_id;
	char host[DRP_HOST_MAX + 1]; /* as contacted */
	char *method, *url, *hostport, *registry, *repo, *actions, *path;
	char origin[DRP_HOST_MAX + 24]; /* "https://host:port" */
	enum req_mode mode;
	enum drp_conf_push push; /* resolved for the request */
	int push_sec;		 /* the section that set it, -1: default */
	bool decided;
	bool decorated;
	bool outsider; /* the client is outside the section's allow */
	/* No credentials of its own, on a registry the configuration
	 * names: a token_realm section may answer its challenge. */
	bool realm_ok;
	bool mirror; /* for a mirror client: never hand it a challenge */
	/* The request carries the client's own credentials (MODE_CLIENT,
	 * or MODE_CORE with its identity): their key, for remembering what
	 * the upstream said (drp_auth_confirm_set). */
	bool has_cred;
	uint8_t cred[32];
	/* The realm's check of a client's credentials, on this fetch. */
	struct realm_check *check;
	bool challenged;       /* a challenge was answered: retry under way */
	bool pending;	       /* a hook said PENDING, auth_done not yet */
	bool pending_decorate; /* ... and it was decorate (not supported) */
	bool orphan;	       /* fetch gone, plugin without cancel */
	bool pass_401;	       /* the plugin declined after PENDING */
	hdr_kv_t *set;	       /* headers the plugin set */
	unsigned n_set;
	drp_buf_t cur; /* the header block as last built */
	char **vals;   /* strings handed out by req_header */
	unsigned n_vals;
	void *pdata;
};

/* ---- configuration generations ---- */

/* Names in users that the users file does not have can never match:
 * say so at load. */
static void check_users(const drp_conf_registry_t *sec,
			const drp_users_t *users)
{
	const drp_conf_item_t *it = drp_conf_registry_get(sec, "users");
	for (unsigned i = 0; users != NULL && i < sec->n_users; i++)
		if (!drp_users_has(users, sec->users[i]))
			drp_log_warning(DRP_LOG_CONF,
					"%s:%u: [registry \"%s\"] users: '%s' "
					"is not a user of %s",
					it->file, it->line, sec->name,
					sec->users[i], drp_users_path(users));
	if (!sec->has_allow && !sec->has_users &&
	    drp_conf_registry_get(sec, "plugin"))
		drp_log_warning(DRP_LOG_PLUGIN,
				"%s:%u: [registry \"%s\"] has neither allow "
				"nor users: what the proxy's credentials "
				"fetch goes to every client [proxy] allow "
				"admits",
				sec->file, sec->line, sec->name);
}

/* May this client (address, proxy user or NULL) have the section's
 * private content? allow = CIDRs, users = proxy users, both only of the
 * selected section (never inherited). Neither set: whoever [proxy] allow
 * admits; users without allow: no network qualifies by itself. */
static bool sec_allows(const auth_sec_t *s, const struct sockaddr *peer,
		       const char *user)
{
	if (s == NULL)
		return true;
	const drp_conf_registry_t *r = s->conf;
	if (!r->has_allow && !r->has_users)
		return true;
	/* No address: the daemon's own request, made for the operator
	 * (ctl/warm.h), whom every section admits. */
	if (peer == NULL)
		return true;
	if (r->has_allow && drp_cidr_list_match(r->allow, r->n_allow, peer))
		return true;
	if (user == NULL)
		return false;
	if (r->any_user)
		return true;
	for (unsigned i = 0; i < r->n_users; i++)
		if (strcmp(r->users[i], user) == 0)
			return true;
	return false;
}

/* A relative users_file is relative to the configuration file. */
static char *conf_relative(const drp_conf_t *conf, const char *path)
{
	const char *slash = conf->path ? strrchr(conf->path, '/') : NULL;
	if (path[0] == '/' || slash == NULL)
		return drp_strdup(path);
	size_t dl = (size_t)(slash - conf->path);
	size_t n = dl + 1 + strlen(path) + 1;
	char *r = drp_malloc(n);
	snprintf(r, n, "%.*s/%s", (int)dl, conf->path, path);
	return r;
}

drp_users_t *drp_auth_users(const drp_auth_t *a)
{
	return a ? a->users : NULL;
}

drp_auth_t *drp_auth_new(const drp_conf_t *conf, drp_conf_errors_t *errs)
{
	drp_auth_t *a = DRP_NEW(drp_auth_t);
	a->sel = drp_select_new();
	a->realm_sel = drp_select_new();
	if (conf->users_file != NULL) {
		char *path = conf_relative(conf, conf->users_file);
		a->users = drp_users_load(path, errs);
		free(path);
		if (a->users == NULL) {
			drp_auth_free(a);
			return NULL;
		}
	}
	/* The mirror answers upstream challenges for its clients with the
	 * core's token client, which lives in the host. */
	if (conf->n_registry == 0 && !conf->mirror)
		return a;
	a->host = drp_auth_host_ref(&drp_auth_req_entries);
	if (a->host == NULL) {
		drp_conf_error(errs, conf->path ? conf->path : "(defaults)", 0,
			       NULL, NULL,
			       "cannot load auth plugins: libltdl failed to "
			       "initialise");
		drp_auth_free(a);
		return NULL;
	}
	if (conf->n_registry == 0)
		return a;
	unsigned before = errs->n;
	/* One slot per section, in file order (the selection's index). */
	a->secs = drp_calloc(conf->n_registry, sizeof(*a->secs));
	a->n_secs = conf->n_registry;
	for (unsigned i = 0; i < conf->n_registry; i++) {
		const drp_conf_registry_t *sec = &conf->registry[i];
		const char *why = "bad name";
		unsigned dup = 0;
		int r = drp_select_add(a->sel, sec->name, i, &why, &dup);
		if (r == -EEXIST) {
			drp_conf_registry_error(
				errs, sec, NULL,
				"names the same registry and repository "
				"prefix as [registry \"%s\"] (%s:%u)",
				conf->registry[dup].name,
				conf->registry[dup].file,
				conf->registry[dup].line);
			continue;
		}
		/* A bad name is reported by the instance. */
		auth_sec_t *s = &a->secs[i];
		s->a = a;
		s->conf = sec;
		s->inst = drp_plugin_inst_new(drp_auth_host_loader(a->host),
					      sec, errs);
		if (s->inst == NULL)
			continue;
		s->has_plugin = drp_plugin_inst_mod(s->inst) != NULL;
		s->mslot = s->has_plugin ? drp_metrics_section_slot(sec->name)
					 : -1;
		/* Cannot fail: the same name was accepted above. */
		if (s->has_plugin)
			(void)!drp_select_add(a->realm_sel, sec->name, i, NULL,
					      NULL);
		if (s->has_plugin && sec->token_realm)
			a->n_token_realms++;
		check_users(sec, a->users);
		const drp_conf_item_t *u =
			drp_conf_registry_get(sec, "username");
		s->user = u ? u->value : NULL;
		drp_plugin_inst_ctx(s->inst)->core = s;
	}
	if (errs->n > before) {
		drp_auth_free(a);
		return NULL;
	}
	return a;
}

void drp_auth_free(drp_auth_t *a)
{
	if (a == NULL)
		return;
	for (unsigned i = 0; i < a->n_secs; i++) {
		drp_plugin_inst_free(a->secs[i].inst);
	}
	free(a->secs);
	drp_select_free(a->sel);
	drp_select_free(a->realm_sel);
	drp_auth_host_unref(a->host);
	drp_users_unref(a->users);
	free(a);
}

/* ---- the request entries of the host table ---- */

const char *drp_auth_req_get(const drp_auth_req_t *r, int field)
{
	switch (field) {
	case DRP_REQ_METHOD:
		return r->method;
	case DRP_REQ_URL:
		return r->url;
	case DRP_REQ_HOST:
		return r->hostport;
	case DRP_REQ_REGISTRY:
		return r->registry;
	case DRP_REQ_REPOSITORY:
		return r->repo;
	case DRP_REQ_ACTIONS:
		return r->actions;
	case DRP_REQ_ORIGIN:
		return r->origin;
	default:
		return NULL;
	}
}

const char *drp_auth_req_header(const drp_auth_req_t *cr, const char *name)
{
	drp_auth_req_t *r = (drp_auth_req_t *)(uintptr_t)cr;
	char *v = drp_auth_headers_get(&r->cur, name);
	if (v == NULL)
		return NULL;
	r->vals = drp_realloc(r->vals, (r->n_vals + 1) * sizeof(char *));
	r->vals[r->n_vals++] = v;
	return v;
}

int drp_auth_req_set_header(drp_auth_req_t *r, const char *name,
			    const char *value)
{
	if (!drp_auth_header_ok(name, value))
		return -EINVAL;
	unsigned i = 0;
	while (i < r->n_set && strcasecmp(r->set[i].name, name) != 0)
		i++;
	if (i == r->n_set) {
		r->set = drp_realloc(r->set, (r->n_set + 1) * sizeof(*r->set));
		r->set[r->n_set++] = (hdr_kv_t){.name = drp_strdup(name)};
	} else {
		explicit_bzero(r->set[i].value, strlen(r->set[i].value));
		free(r->set[i].value);
	}
	r->set[i].value = drp_strdup(value);
	drp_auth_headers_set(&r->cur, name, value);
	return 0;
}

void drp_auth_req_set_data(drp_auth_req_t *r, void *data)
{
	r->pdata = data;
}

void *drp_auth_req_get_data(const drp_auth_req_t *r)
{
	return r->pdata;
}

static void req_free(drp_auth_req_t *r)
{
	for (unsigned i = 0; i < r->n_set; i++) {
		free(r->set[i].name);
		explicit_bzero(r->set[i].value, strlen(r->set[i].value));
		free(r->set[i].value);
	}
	free(r->set);
	for (unsigned i = 0; i < r->n_vals; i++) {
		explicit_bzero(r->vals[i], strlen(r->vals[i]));
		free(r->vals[i]);
	}
	free(r->vals);
	if (r->cur.data != NULL)
		explicit_bzero(r->cur.data, r->cur.cap);
	drp_buf_free(&r->cur);
	free(r->method);
	free(r->url);
	free(r->hostport);
	free(r->registry);
	free(r->repo);
	free(r->actions);
	free(r->path);
	if (r->check != NULL) {
		drp_auth_ident_unref(r->check->id);
		free(r->check);
	}
	drp_auth_ident_unref(r->ident);
	drp_runtime_unref(r->rt);
	free(r);
}

static const char *plugin_name(const auth_sec_t *s)
{
	if (s == NULL || !s->has_plugin)
		return "none";
	return drp_plugin_mod_desc(drp_plugin_inst_mod(s->inst))->name;
}

static const char *section_name(const auth_sec_t *s)
{
	return s ? s->conf->name : "-";
}

/* The upstream would not take the section's credentials (or its plugin
 * says so): 403 to the client. */
static void deny(drp_auth_req_t *r, const char *what)
{
	const auth_sec_t *s = r->sec;
	const char *user = s ? s->user : NULL;
	drp_log_err(DRP_LOG_PLUGIN,
		    "[c%06u] %s %s%s: %s the credentials of [registry \"%s\"] "
		    "(plugin %s%s%s%s)",
		    r->conn_id, r->method, r->hostport, r->path, what,
		    section_name(s), plugin_name(s), user ? ", user '" : "",
		    user ? user : "", user ? "'" : "");
	char msg[512];
	snprintf(msg, sizeof(msg),
		 "%s refused the proxy's credentials for this request (see "
		 "[registry \"%s\"] in the proxy's configuration)",
		 r->registry, section_name(s));
	drp_fetch_auth_fail(r->f, 403, msg);
}

/* The credentials are fine, the repository is not theirs to read. */
static void no_scope(drp_auth_req_t *r)
{
	const auth_sec_t *s = r->sec;
	const char *user = s ? s->user : NULL;
	drp_log_notice(
		DRP_LOG_PLUGIN,
		"[c%06u] %s %s%s: no access with the credentials of "
		"[registry \"%s\"] (plugin %s%s%s%s): insufficient_scope "
		"(the repository is private to others, or does not "
		"exist)",
		r->conn_id, r->method, r->hostport, r->path, section_name(s),
		plugin_name(s), user ? ", user '" : "", user ? user : "",
		user ? "'" : "");
	char msg[512];
	snprintf(msg, sizeof(msg),
		 "%s grants no access to this repository with the proxy's "
		 "credentials ([registry \"%s\"]): it does not exist, or it "
		 "is private to another account",
		 r->registry, section_name(s));
	drp_fetch_auth_fail(r->f, 403, msg);
}

static void plugin_failed(drp_auth_req_t *r)
{
	char msg[512];
	snprintf(msg, sizeof(msg),
		 "the proxy could not obtain credentials for %s (plugin %s of "
		 "[registry \"%s\"]; see its log)",
		 r->registry,
		 r->mode == MODE_CORE ? "proxy" : plugin_name(r->sec),
		 section_name(r->sec));
	drp_fetch_auth_fail(r->f, 502, msg);
}

void drp_auth_req_done(drp_auth_req_t *r, int result)
{
	if (!r->pending) {
		drp_log_err(DRP_LOG_PLUGIN,
			    "%s/%s: auth_done on a request that is not "
			    "pending (ignored)",
			    plugin_name(r->sec), section_name(r->sec));
		return;
	}
	r->pending = false;
	if (r->orphan) {
		req_free(r);
		return;
	}
	if (r->pending_decorate) {
		r->pending_decorate = false;
		return;
	}
	switch (result) {
	case DRP_AUTH_OK:
		drp_fetch_retry(r->f);
		break;
	case DRP_AUTH_DECLINED:
		/* The 401 is gone: ask again and hand that one on. */
		r->pass_401 = true;
		drp_fetch_retry(r->f);
		break;
	case DRP_AUTH_DENIED:
		deny(r, "the plugin refused");
		break;
	default:
		plugin_failed(r);
		break;
	}
}

const drp_host_api_t drp_auth_req_entries = {
	.req_get = drp_auth_req_get,
	.req_header = drp_auth_req_header,
	.req_set_header = drp_auth_req_set_header,
	.req_set_data = drp_auth_req_set_data,
	.req_get_data = drp_auth_req_get_data,
	.auth_done = drp_auth_req_done,
};

/* ---- hooks on the upstream fetch ---- */

static int run_decorate(drp_auth_req_t *r)
{
	drp_auth_cur_t saved = drp_auth_cur_enter(r->w, r->rt, r->conn_id);
	if (r->mode == MODE_CORE) {
		int res = drp_auth_ident_decorate(r->ident, r);
		drp_auth_cur_leave(saved);
		return res;
	}
	int res = drp_plugin_inst_decorate(r->sec->inst, r);
	if (res == DRP_AUTH_PENDING) {
		/* Decorate runs synchronously before the attempt: this host
		 * cannot wait for it. */
		drp_log_warning(DRP_LOG_PLUGIN,
				"%s/%s: decorate returned PENDING, which this "
				"host does not support; sending the request "
				"as it is",
				plugin_name(r->sec), r->sec->conf->name);
		r->pending = true;
		r->pending_decorate = true;
		if (drp_plugin_inst_has_cancel(r->sec->inst)) {
			drp_plugin_inst_cancel(r->sec->inst, r);
			r->pending = false;
			r->pending_decorate = false;
		}
		res = DRP_AUTH_DECLINED;
	}
	drp_auth_cur_leave(saved);
	return res;
}

static bool is_pull(const char *method)
{
	return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

/* Before the first attempt: whose credentials this request travels
 * with. */
static void decide(drp_auth_req_t *r, const drp_buf_t *headers)
{
	const auth_sec_t *s = r->sec;
	drp_auth_t *a = r->rt->auth;
	bool upload = !is_pull(r->method);
	bool plugin_ok = s && s->has_plugin && !r->outsider &&
			 (!upload || r->push == DRP_CONF_PUSH_PROXY);
	char *client = drp_auth_headers_get(headers, "Authorization");
	r->mode = MODE_NONE;
	if (upload && r->push == DRP_CONF_PUSH_DENY) {
		drp_log_notice(
			DRP_LOG_PROXY,
			"[c%06u] %s %s%s: refused by push = deny of "
			"[%s%s%s]",
			r->conn_id, r->method, r->hostport, r->path,
			r->push_sec < 0 ? "proxy" : "registry \"",
			r->push_sec < 0
				? ""
				: r->rt->conf->registry[r->push_sec].name,
			r->push_sec < 0 ? "" : "\"");
		char msg[300];
		snprintf(msg, sizeof(msg),
			 "this proxy does not pass uploads to %s", r->registry);
		drp_fetch_auth_fail(r->f, 403, msg);
		goto out;
	}
	drp_auth_ident_t *id = NULL;
	bool handle = drp_auth_is_handle(client), found = false;
	if (handle) {
		/* A handle of the proxy's realm never goes upstream. */
		r->strip_handle = true;
		const char *h = client + 7 + strspn(client + 7, " ");
		found = drp_auth_handle_find(a->host, h, r->registry, &id,
					     NULL) == 0;
	}
	if (id != NULL) {
		r->mode = MODE_CORE; /* the client's own credentials */
		r->ident = id;
		r->has_cred = true;
		drp_auth_ident_key(id, r->cred);
	} else if (client != NULL && !handle) {
		r->mode = MODE_CLIENT; /* the client's credentials win */
		r->has_cred = true;
		drp_users_key(client, strlen(client), r->cred);
	} else if (plugin_ok) {
		/* The proxy's handle, none, or one that expired since the
		 * request came in. */
		r->mode = MODE_PROXY;
	} else if (found || r->outsider || r->mirror) {
		/* What anonymous access gets, and no more. A mirror client
		 * often cannot reach the upstream's token service at all:
		 * the proxy answers the challenge for it. */
		r->mode = MODE_CORE;
		r->ident = drp_auth_ident_anon(a->host, r->registry);
	}
out:
	if (client != NULL) {
		explicit_bzero(client, strlen(client));
		free(client);
	}
}

static void hook_decorate(void *arg, drp_fetch_t *f, drp_buf_t *headers)
{
	drp_auth_req_t *r = arg;
	/* A redirect to another origin (a CDN, another port or scheme of
	 * the same host) or over plain http: never any credentials. The
	 * rule is the fetch's, so no plugin can get it wrong. */
	if (!drp_fetch_at_origin(f))
		return;
	if (!r->decided) {
		r->decided = true;
		decide(r, headers);
	}
	if (r->strip_handle)
		drp_auth_headers_del(headers, "Authorization");
	if (!r->decorated && (r->mode == MODE_PROXY || r->mode == MODE_CORE)) {
		r->decorated = true;
		drp_buf_reset(&r->cur);
		drp_buf_append(&r->cur, drp_buf_head(headers),
			       drp_buf_pending(headers));
		int res = run_decorate(r);
		if (res == DRP_AUTH_DENIED)
			deny(r, "the plugin refused");
		else if (res == DRP_AUTH_ERROR)
			plugin_failed(r);
	}
	for (unsigned i = 0; i < r->n_set; i++)
		drp_auth_headers_set(headers, r->set[i].name, r->set[i].value);
	drp_buf_reset(&r->cur);
	drp_buf_append(&r->cur, drp_buf_head(headers),
		       drp_buf_pending(headers));
}

/* Every WWW-Authenticate value, joined with ", " (malloc'ed). */
static char *www_authenticate(const drp_http_msg_t *resp)
{
	drp_buf_t b = {0};
	for (const drp_http_header_t *h =
		     drp_http_find(resp, "WWW-Authenticate");
	     h != NULL; h = drp_http_find_next(resp, "WWW-Authenticate", h)) {
		if (drp_buf_pending(&b) > 0)
			drp_buf_append(&b, ", ", 2);
		drp_buf_append(&b, h->value, h->value_len);
	}
	char *s = drp_strndup(drp_buf_pending(&b) ? drp_buf_head(&b) : "",
			      drp_buf_pending(&b));
	drp_buf_free(&b);
	return s;
}

/* A 401 after anonymous access had its chance (the retry with an
 * anonymous token, or the token refused): the repository is private. For
 * a client outside the section's allow that is the end: 403. */
static bool anon_refused(drp_auth_req_t *r)
{
	if (r->mode != MODE_CORE || !drp_auth_ident_is_anon(r->ident) ||
	    r->repo == NULL || !(r->challenged || r->pass_401))
		return false;
	drp_auth_privacy_set(r->rt->auth->host, r->registry, r->repo,
			     DRP_AUTH_PRIVATE);
	if (!r->outsider)
		return false;
	drp_log_notice(DRP_LOG_PROXY,
		       "[c%06u] %s %s%s: %s is private; refused outside the "
		       "allow of [registry \"%s\"]",
		       r->conn_id, r->method, r->hostport, r->path, r->repo,
		       section_name(r->sec));
	char msg[400];
	snprintf(msg, sizeof(msg),
		 "%s on %s is private: this proxy serves it only to the "
		 "clients its configuration allows, or with credentials of "
		 "your own",
		 r->repo, r->registry);
	drp_fetch_auth_fail(r->f, 403, msg);
	return true;
}

/*
 * A request that travels without credentials (MODE_NONE), to a registry
 * the configuration names but gives none: if its challenge names a realm
 * on the host of a token_realm section, that section's plugin answers it
 * (the nginx-based image's AUTH_REGISTRIES named such realm hosts).
 */
static void adopt_realm(drp_auth_req_t *r, const drp_http_msg_t *resp)
{
	if (!is_pull(r->method) && r->push != DRP_CONF_PUSH_PROXY)
		return;
	int idx = -1;
	for (const drp_http_header_t *h =
		     drp_http_find(resp, "WWW-Authenticate");
	     h != NULL && idx < 0;
	     h = drp_http_find_next(resp, "WWW-Authenticate", h)) {
		drp_challenges_t ch;
		if (drp_challenge_parse(h->value, h->value_len, &ch) < 0)
			continue;
		const drp_challenge_t *b = drp_challenge_find(&ch, "Bearer");
		const char *realm = b ? drp_challenge_param(b, "realm") : NULL;
		if (realm != NULL)
			idx = drp_conf_token_realm_find(r->rt->conf, realm);
		drp_challenges_free(&ch);
	}
	auth_sec_t *s = idx >= 0 ? &r->rt->auth->secs[idx] : NULL;
	if (s == NULL || !s->has_plugin)
		return;
	drp_log_info(DRP_LOG_PLUGIN,
		     "[c%06u] %s %s%s: token realm %s: the credentials of "
		     "[registry \"%s\"]",
		     r->conn_id, r->method, r->hostport, r->path, s->conf->name,
		     s->conf->name);
	r->sec = s;
	r->mode = MODE_PROXY;
}

static enum drp_fetch_auth hook_challenge(void *arg, drp_fetch_t *f,
					  const drp_http_msg_t *resp)
{
	drp_auth_req_t *r = arg;
	if (r->realm_ok && r->mode == MODE_NONE && !r->challenged &&
	    drp_fetch_at_origin(f))
		adopt_realm(r, resp);
	bool ours = r->mode == MODE_PROXY || r->mode == MODE_CORE;
	if (!drp_fetch_at_origin(f) || !ours)
		return DRP_FETCH_AUTH_DECLINED;
	if (anon_refused(r))
		return DRP_FETCH_AUTH_ERROR;
	if (r->pass_401)
		return DRP_FETCH_AUTH_DECLINED;
	if (r->challenged && r->mode == MODE_CORE)
		return DRP_FETCH_AUTH_DECLINED; /* the client's to hear */
	if (r->challenged) {
		/* The one retry, with what the plugin provided, was refused
		 * too: for lack of scope (the account may not read this
		 * repository, or it does not exist: Docker Hub grants nothing
		 * on an unknown name), or because the credentials are bad. */
		char *again = www_authenticate(resp);
		bool scope = again && strcasestr(again, "insufficient_scope");
		free(again);
		if (scope)
			no_scope(r);
		else
			deny(r, "the registry refused (HTTP 401)");
		return DRP_FETCH_AUTH_ERROR;
	}
	r->challenged = true;
	char *www = www_authenticate(resp);
	drp_auth_cur_t saved = drp_auth_cur_enter(r->w, r->rt, r->conn_id);
	int res = r->mode == MODE_CORE
			  ? drp_auth_ident_challenge(r->ident, r, www)
			  : drp_plugin_inst_challenge(r->sec->inst, r, www);
	drp_auth_cur_leave(saved);
	free(www);
	/* Anonymous access cannot even try (a Basic registry). */
	if (res == DRP_AUTH_DECLINED && anon_refused(r))
		return DRP_FETCH_AUTH_ERROR;
	switch (res) {
	case DRP_AUTH_OK:
		return DRP_FETCH_AUTH_OK;
	case DRP_AUTH_PENDING:
		r->pending = true;
		return DRP_FETCH_AUTH_PENDING;
	case DRP_AUTH_DECLINED:
		return DRP_FETCH_AUTH_DECLINED;
	case DRP_AUTH_DENIED:
		deny(r, "the plugin refused");
		return DRP_FETCH_AUTH_ERROR;
	default:
		plugin_failed(r);
		return DRP_FETCH_AUTH_ERROR;
	}
}

/* Docker Hub's pull limit ("ratelimit-limit: 100;w=21600",
 * "ratelimit-remaining: 76;w=21600") as the section's own credentials
 * are told: a client's own identity, or anonymous access, has a limit
 * of its own that says nothing about the proxy's account. */
static void hook_response(void *arg, drp_fetch_t *f, const drp_http_msg_t *resp)
{
	drp_auth_req_t *r = arg;
	if (r->mode != MODE_PROXY || !r->decorated || r->sec == NULL ||
	    r->sec->mslot < 0 || !drp_fetch_at_origin(f))
		return;
	const drp_http_header_t *l = drp_http_find(resp, "RateLimit-Limit");
	const drp_http_header_t *rem =
		drp_http_find(resp, "RateLimit-Remaining");
	if (l == NULL && rem == NULL)
		return;
	/* The attempt this answers carried the section's credentials (r->cur
	 * is its header block), not just the section's lack of them. */
	char *sent = drp_auth_headers_get(&r->cur, "Authorization");
	if (sent == NULL)
		return;
	explicit_bzero(sent, strlen(sent));
	free(sent);
	drp_metrics_ratelimit(
		r->sec->mslot,
		l ? drp_metrics_ratelimit_parse(l->value, l->value_len) : -1,
		rem ? drp_metrics_ratelimit_parse(rem->value, rem->value_len)
		    : -1);
}

static void hook_release(void *arg, drp_fetch_t *f)
{
	drp_auth_req_t *r = arg;
	int st = drp_fetch_upstream_status(f);
	if (r->mode == MODE_CORE && drp_auth_ident_is_anon(r->ident) &&
	    r->repo != NULL && st >= 200 && st < 300)
		drp_auth_privacy_set(r->rt->auth->host, r->registry, r->repo,
				     DRP_AUTH_PUBLIC);
	if (r->has_cred && r->repo != NULL && is_pull(r->method) &&
	    r->rt->auth->host != NULL) {
		/* A redirect (to a CDN) is the registry's yes; a CDN's own
		 * answer says nothing about the credentials. */
		bool moved = !drp_fetch_at_origin(f);
		int v = moved || (st >= 200 && st < 300) ? DRP_AUTH_CONFIRMED
			: st == 401 || st == 403	 ? DRP_AUTH_REFUSED
							 : 0;
		if (v != 0)
			drp_auth_confirm_set(r->rt->auth->host, r->cred,
					     r->registry, r->repo, v);
	}
	r->f = NULL;
	if (r->pending && r->mode == MODE_CORE) {
		drp_auth_cur_t saved =
			drp_auth_cur_enter(r->w, r->rt, r->conn_id);
		drp_auth_ident_cancel(r->ident, r);
		drp_auth_cur_leave(saved);
		r->pending = false;
	}
	if (r->pending) {
		if (!drp_plugin_inst_has_cancel(r->sec->inst)) {
			/* Kept until the plugin's auth_done. */
			r->orphan = true;
			return;
		}
		drp_auth_cur_t saved =
			drp_auth_cur_enter(r->w, r->rt, r->conn_id);
		drp_plugin_inst_cancel(r->sec->inst, r);
		drp_auth_cur_leave(saved);
		r->pending = false;
	}
	req_free(r);
}

static drp_auth_req_t *req_new(drp_runtime_t *rt, drp_worker_t *w,
			       auth_sec_t *s, drp_fetch_t *f, const char *host,
			       uint16_t port, const char *repo)
{
	drp_auth_req_t *r = DRP_NEW(drp_auth_req_t);
	r->sec = s;
	r->w = w;
	r->rt = drp_runtime_ref(rt);
	r->f = f;
	r->conn_id = drp_fetch_conn_id(f);
	snprintf(r->host, sizeof(r->host), "%s", host);
	r->method = drp_strdup(drp_fetch_method(f));
	const char *target = drp_fetch_target(f);
	r->path = drp_strndup(target, drp_uri_path_len(target, strlen(target)));
	bool v6 = strchr(host, ':') != NULL;
	char hp[DRP_HOST_MAX + 16];
	if (port == 443 || port == 0)
		snprintf(hp, sizeof(hp), "%s%s%s", v6 ? "[" : "", host,
			 v6 ? "]" : "");
	else
		snprintf(hp, sizeof(hp), "%s%s%s:%u", v6 ? "[" : "", host,
			 v6 ? "]" : "", port);
	r->hostport = drp_strdup(hp);
	drp_uri_origin(r->origin, sizeof(r->origin), true, host, port);
	size_t ul = strlen(hp) + strlen(target) + sizeof("https://");
	r->url = drp_malloc(ul);
	snprintf(r->url, ul, "https://%s%s", hp, target);
	r->registry = drp_select_canonical_registry(host, port);
	r->repo = repo ? drp_select_canonical_repo(r->registry, repo) : NULL;
	r->actions = drp_strdup(is_pull(r->method) ? "pull" : "pull,push");
	drp_fetch_hooks_t hooks = {
		.decorate = hook_decorate,
		.challenge = hook_challenge,
		.release = hook_release,
		.arg = r,
		.response = hook_response,
	};
	drp_fetch_set_hooks(f, &hooks);
	return r;
}

void drp_auth_attach(struct drp_runtime *rt, struct drp_worker *w,
		     const drp_exch_t *x, drp_fetch_t *f, const char *host,
		     uint16_t port, const char *repo)
{
	bool mirror = x != NULL && x->mirror;
	if (f == NULL || rt == NULL || rt->auth == NULL ||
	    rt->auth->host == NULL || (rt->auth->n_secs == 0 && !mirror))
		return;
	drp_auth_t *a = rt->auth;
	/* The client's request carries its resolution; a fetch for another
	 * host or repository (or without a client) resolves its own, the
	 * same way. */
	drp_conf_regset_t own;
	const drp_conf_regset_t *set = &own;
	if (x != NULL && x->regset.valid && strcmp(host, x->host) == 0 &&
	    port == x->port &&
	    (repo == x->repo ||
	     (repo && x->repo && strcmp(repo, x->repo) == 0)))
		set = &x->regset;
	else
		drp_auth_resolve(rt, host, port, repo, &own);
	auth_sec_t *s = set->sec >= 0 && a->secs[set->sec].inst
				? &a->secs[set->sec]
				: NULL;
	bool realm_ok =
		a->n_token_realms > 0 && (s == NULL || !s->has_plugin) &&
		(s != NULL || drp_conf_lists_registry(rt->conf, host, port));
	/* Without a section, a host with the proxy's realm still needs its
	 * handles swapped. */
	if (s == NULL && !realm_ok && !mirror &&
	    !drp_select_has_host(a->realm_sel, host, port))
		return;
	drp_auth_req_t *r = req_new(rt, w, s, f, host, port, repo);
	r->push = set->push;
	r->push_sec = set->push_sec;
	r->outsider = x != NULL && !sec_allows(s, x->peer_addr, x->user);
	r->realm_ok = realm_ok;
	r->mirror = mirror;
}

void drp_auth_fetch_class(const drp_exch_t *x, char *buf, size_t len)
{
	const drp_auth_t *a = x->rt != NULL ? x->rt->auth : NULL;
	int sec = x->regset.valid ? x->regset.sec : -2;
	bool outsider = false;
	if (a != NULL && sec >= 0 && (unsigned)sec < a->n_secs &&
	    a->secs[sec].inst != NULL)
		outsider = !sec_allows(&a->secs[sec], x->peer_addr, x->user);
	snprintf(buf, len, "s%d o%d m%d %s", sec, outsider, x->mirror,
		 x->mirror && x->mirror_origin ? x->mirror_origin : "-");
}

void drp_auth_resolve(const struct drp_runtime *rt, const char *host,
		      uint16_t port, const char *repo, drp_conf_regset_t *out)
{
	unsigned chain[DRP_SELECT_CHAIN_MAX];
	unsigned n = 0;
	if (rt->auth != NULL && rt->auth->n_secs > 0)
		n = drp_select_chain(rt->auth->sel, host, port, repo, chain,
				     DRP_SELECT_CHAIN_MAX);
	drp_conf_regset_resolve(rt->conf, chain, n, out);
}

/* ---- the proxy's own token realm ---- */

/* How long a handle of the proxy's realm lives. Clients fetch a new one
 * when a request with an expired one is answered 401. */
#define HANDLE_TTL 3600

#define UNAUTHORIZED_BODY                                                      \
	"{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":"                 \
	"\"authentication required\",\"detail\":null}]}"

/* A response of the proxy's own, as the registry API would give it. */
static void respond(drp_exch_t *x, int status, const char *extra,
		    const char *body, bool close)
{
	size_t len = strlen(body);
	close = close || x->close_after;
	x->status = status;
	drp_buf_printf(x->out,
		       "HTTP/1.1 %d %s\r\n%sContent-Type: application/json\r\n"
		       "Content-Length: %zu\r\nCache-Control: no-store\r\n"
		       "Docker-Distribution-Api-Version: registry/2.0\r\n%s"
		       "\r\n",
		       status, drp_http_reason(status), extra, len,
		       close ? "Connection: close\r\n" : "");
	if (!x->head)
		drp_buf_append(x->out, body, len);
	x->bytes_out = x->head ? 0 : len;
	if (close)
		x->close_after = true;
}

/* The challenge of the mirror: its own realm, for the registry of the
 * request. */
static void mirror_challenge_header(const drp_exch_t *x, char *hdr, size_t len)
{
	char *registry = drp_select_canonical_registry(x->host, x->port);
	snprintf(hdr, len,
		 "WWW-Authenticate: Bearer realm=\"%s" DRP_AUTH_REALM_PATH
		 "?ns=%s\",service=\"%s\"\r\n",
		 x->mirror_origin, registry, registry);
	free(registry);
}

void drp_auth_mirror_challenge(const drp_exch_t *x, drp_buf_t *out)
{
	char hdr[3 * DRP_HOST_MAX + 128];
	mirror_challenge_header(x, hdr, sizeof(hdr));
	drp_buf_append(out, hdr, strlen(hdr));
}

/* 401 with the challenge that sends clients to the proxy's realm on the
 * same host (the mirror's own, for the mirror). */
static void challenge_client(drp_exch_t *x)
{
	if (x->mirror) {
		char mh[3 * DRP_HOST_MAX + 128];
		mirror_challenge_header(x, mh, sizeof(mh));
		respond(x, 401, mh, UNAUTHORIZED_BODY, false);
		return;
	}
	bool v6 = strchr(x->host, ':') != NULL;
	char hp[DRP_HOST_MAX + 16];
	if (x->port == 443)
		snprintf(hp, sizeof(hp), "%s%s%s", v6 ? "[" : "", x->host,
			 v6 ? "]" : "");
	else
		snprintf(hp, sizeof(hp), "%s%s%s:%u", v6 ? "[" : "", x->host,
			 v6 ? "]" : "", x->port);
	char hdr[2 * sizeof(hp) + 128];
	snprintf(hdr, sizeof(hdr),
		 "WWW-Authenticate: Bearer "
		 "realm=\"https://%s" DRP_AUTH_REALM_PATH
		 "\",service=\"%s\"\r\n",
		 hp, hp);
	respond(x, 401, hdr, UNAUTHORIZED_BODY, false);
}

static char *header_value(const drp_http_msg_t *req, const char *name)
{
	const drp_http_header_t *h = drp_http_find(req, name);
	return h ? drp_strndup(h->value, h->value_len) : NULL;
}

static void free_secret(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* Answer a token request with a new handle for id (NULL: the proxy's
 * identity) given to the proxy user user (NULL: none). */
static void give_handle_to(drp_exch_t *x, const char *registry,
			   drp_auth_ident_t *id, const char *user)
{
	char handle[DRP_AUTH_HANDLE_MAX];
	if (drp_auth_handle_issue(x->rt->auth->host, registry, id, user,
				  HANDLE_TTL, handle) < 0) {
		respond(x, 500, "", "{}", false);
		return;
	}
	drp_log_info(DRP_LOG_PROXY,
		     "[c%06u] %s: token of the proxy's realm for %s (%s%s%s)",
		     x->id, x->peer, registry,
		     id ? drp_auth_ident_user(id) : "the proxy's identity",
		     user ? ", proxy user " : "", user ? user : "");
	char issued[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(issued, sizeof(issued), "%Y-%m-%dT%H:%M:%SZ", &tm);
	char body[256];
	snprintf(body, sizeof(body),
		 "{\"token\":\"%s\",\"access_token\":\"%s\","
		 "\"expires_in\":%d,\"issued_at\":\"%s\"}",
		 handle, handle, HANDLE_TTL, issued);
	respond(x, 200, "", body, false);
	explicit_bzero(body, sizeof(body));
	explicit_bzero(handle, sizeof(handle));
}

static void give_handle(drp_exch_t *x, const char *registry,
			drp_auth_ident_t *id)
{
	give_handle_to(x, registry, id, NULL);
}

static void give_user_handle(drp_exch_t *x, const char *registry,
			     const char *user)
{
	give_handle_to(x, registry, NULL, user);
}

static void check_head(void *arg, const drp_http_msg_t *resp,
		       enum drp_http_body_mode mode, uint64_t length)
{
	((realm_check_t *)arg)->status = resp->status;
}

static size_t check_room(void *arg)
{
	return 64 * 1024;
}

static void check_body(void *arg, const char *data, size_t len)
{
}

static void check_done(void *arg, int err, int http_status, const char *reason)
{
	realm_check_t *ck = arg;
	drp_exch_t *x = ck->x;
	ck->finished = true;
	char *registry = drp_select_canonical_registry(x->host, x->port);
	x->up_status = ck->status;
	if (err == 0 && ck->status == 200) {
		drp_auth_ident_set_verified(ck->id);
		give_handle(x, registry, ck->id);
	} else if (err == 0 && (ck->status == 401 || ck->status == 403)) {
		drp_log_notice(DRP_LOG_PROXY,
			       "[c%06u] %s: %s refused the credentials of "
			       "user '%s' (HTTP %d)",
			       x->id, x->peer, registry,
			       drp_auth_ident_user(ck->id), ck->status);
		challenge_client(x);
	} else {
		/* Cannot tell now: the upstream judges them at first use. */
		drp_log_info(DRP_LOG_PROXY,
			     "[c%06u] %s: could not check the credentials of "
			     "user '%s' at %s (%s)",
			     x->id, x->peer, drp_auth_ident_user(ck->id),
			     registry, err < 0 ? reason : "unexpected answer");
		give_handle(x, registry, ck->id);
	}
	free(registry);
	drp_exch_done(x, "PASS");
}

static const drp_fetch_sink_t check_sink = {
	.head = check_head,
	.room = check_room,
	.body = check_body,
	.done = check_done,
};

/* The request ends or its client went away: a check still running is
 * cancelled (which frees ck with the fetch's auth request). */
static void check_release(drp_exch_t *x)
{
	realm_check_t *ck = x->hs;
	if (ck != NULL && !ck->finished)
		drp_fetch_cancel(ck->f);
}

static const drp_handler_t check_handler = {
	.release = check_release,
};

/* GET /v2/ at the upstream with the client's credentials (through the
 * core's token client, like every request behind its handle). */
static void start_check(drp_exch_t *x, drp_auth_ident_t *id)
{
	drp_fetch_req_t fr = {
		.tls = true,
		.host = x->host,
		.port = x->port,
		.method = "GET",
		.target = "/v2/",
		.headers = "",
		.headers_len = 0,
		.body_mode = DRP_HTTP_BODY_NONE,
		.conn_id = x->id,
	};
	realm_check_t *ck = DRP_NEW(realm_check_t);
	ck->x = x;
	ck->id = id;
	drp_fetch_t *f = drp_fetch_new(&x->w->upstream, x->rt->upstream, &fr,
				       &check_sink, ck);
	drp_auth_req_t *r =
		req_new(x->rt, x->w, NULL, f, x->host, x->port, NULL);
	r->decided = true;
	r->mode = MODE_CORE;
	r->ident = drp_auth_ident_ref(id);
	r->check = ck; /* freed with the request, after check_done */
	ck->f = f;
	x->h = &check_handler;
	x->hs = ck;
	drp_exch_async(x);
	drp_fetch_start(f);
}

/*
 * GET https://HOST/_drp/token: a handle for the client's own
 * credentials (Basic), once the upstream accepted them (remembered for
 * DRP_AUTH_VERIFIED_TTL), or, without any, for the proxy's identity.
 * OAuth2 POSTs get 404, after which clients fall back to GET.
 */
static void token_endpoint(drp_exch_t *x, const drp_http_msg_t *req,
			   const char *registry)
{
	drp_auth_t *a = x->rt->auth;
	if (!drp_http_method_is(req, "GET")) {
		/* The request body is not read: close after answering. */
		respond(x, 404, "",
			"{\"errors\":[{\"code\":\"UNSUPPORTED\",\"message\":"
			"\"use GET\"}]}",
			true);
		return;
	}
	char *auth = header_value(req, "Authorization");
	if (auth == NULL) {
		give_handle(x, registry, NULL);
		return;
	}
	if (strncasecmp(auth, "Basic ", 6) != 0) {
		free_secret(auth);
		challenge_client(x);
		return;
	}
	drp_auth_ident_t *id = drp_auth_ident_get(a->host, auth, registry);
	free_secret(auth);
	if (drp_auth_ident_verified(id)) {
		give_handle(x, registry, id);
		drp_auth_ident_unref(id);
		return;
	}
	start_check(x, id); /* takes the reference */
}

/*
 * Content of a section with a plugin may be private: a client outside the
 * section's allow gets it only with credentials of its own, which the
 * upstream checks (for cached content with a HEAD: x->auth_confirm).
 * Without, its repository requests are refused, also when the cache
 * could answer them. Returns true if answered.
 */
static bool private_refused(drp_exch_t *x, const char *auth,
			    const char *registry, const drp_route_t *route)
{
	drp_auth_t *a = x->rt->auth;
	if (route->name_len == 0)
		return false;
	int idx = x->regset.valid ? x->regset.sec : -1;
	const auth_sec_t *s = idx >= 0 ? &a->secs[idx] : NULL;
	if (s == NULL || !s->has_plugin || sec_allows(s, x->peer_addr, x->user))
		return false;
	char *repo = drp_strndup(route->name, route->name_len);
	char *crepo = drp_select_canonical_repo(registry, repo);
	free(repo);
	uint8_t cred[32];
	bool own = auth != NULL && !drp_auth_is_handle(auth);
	if (own) {
		drp_users_key(auth, strlen(auth), cred);
	} else if (auth != NULL) {
		drp_auth_ident_t *id = NULL;
		const char *h = auth + 7 + strspn(auth + 7, " ");
		own = drp_auth_handle_find(a->host, h, registry, &id, NULL) ==
			      0 &&
		      id != NULL;
		if (own)
			drp_auth_ident_key(id, cred);
		drp_auth_ident_unref(id);
	}
	if (own) {
		/* Its own credentials: whatever the cache holds, the upstream
		 * first confirms them for this repository (a HEAD), unless it
		 * did so a moment ago. */
		int v = drp_auth_confirm_get(a->host, cred, registry, crepo);
		explicit_bzero(cred, sizeof(cred));
		free(crepo);
		x->auth_confirm = v != DRP_AUTH_CONFIRMED;
		if (v != DRP_AUTH_REFUSED)
			return false;
		drp_log_notice(DRP_LOG_PROXY,
			       "[c%06u] %s: %s %s%s refused: the upstream "
			       "refused these credentials for %.*s a moment "
			       "ago",
			       x->id, x->peer, x->method, registry, x->path,
			       (int)route->name_len, route->name);
		char body[512];
		snprintf(body, sizeof(body),
			 "{\"errors\":[{\"code\":\"DENIED\",\"message\":"
			 "\"%s refused these credentials for %.*s\"}]}",
			 registry, (int)route->name_len, route->name);
		respond(x, 403, "", body, false);
		return true;
	}
	int privacy = drp_auth_privacy_get(a->host, registry, crepo);
	free(crepo);
	if (privacy == DRP_AUTH_PUBLIC)
		return false;
	if (privacy == DRP_AUTH_UNKNOWN) {
		/* Anonymous access decides (its requests learn the answer):
		 * cached content only after an anonymous HEAD. */
		x->auth_confirm = true;
		return false;
	}
	drp_log_notice(DRP_LOG_PROXY,
		       "[c%06u] %s: %s %s%s refused: private, and outside "
		       "the allow of [registry \"%s\"]",
		       x->id, x->peer, x->method, registry, x->path,
		       s->conf->name);
	char body[512];
	snprintf(body, sizeof(body),
		 "{\"errors\":[{\"code\":\"DENIED\",\"message\":\"this "
		 "proxy serves %.*s on %s only to the clients its "
		 "configuration allows, or with credentials of your "
		 "own\"}]}",
		 (int)route->name_len, route->name, registry);
	respond(x, 403, "", body, false);
	return true;
}

/* push = deny ([registry] or [proxy]): an upload or delete (any method
 * but GET and HEAD on a /v2/ path) is answered here, before anything
 * goes upstream, also where no section attaches the hooks; its body is
 * never read (the connection closes). Returns true if answered. */
static bool push_denied(drp_exch_t *x, const drp_http_msg_t *req,
			const drp_route_t *route)
{
	if (x->regset.push != DRP_CONF_PUSH_DENY ||
	    route->kind == DRP_ROUTE_OTHER || drp_http_method_is(req, "GET") ||
	    drp_http_method_is(req, "HEAD"))
		return false;
	int sec = x->regset.push_sec;
	drp_log_notice(DRP_LOG_PROXY,
		       "[c%06u] %s: %s %s%s refused by push = deny of "
		       "[%s%s%s]",
		       x->id, x->peer, x->method, x->host, x->path,
		       sec < 0 ? "proxy" : "registry \"",
		       sec < 0 ? "" : x->rt->conf->registry[sec].name,
		       sec < 0 ? "" : "\"");
	char *registry = drp_select_canonical_registry(x->host, x->port);
	char body[400];
	snprintf(body, sizeof(body),
		 "{\"errors\":[{\"code\":\"DENIED\",\"message\":\"this "
		 "proxy does not pass uploads to %s\"}]}",
		 registry);
	free(registry);
	respond(x, 403, "", body, true);
	return true;
}

/* ---- the mirror's clients ---- */

/* A proxy user's password on its way through the users lane, as the
 * exchange's handler (a client that goes away withdraws it). */
typedef struct user_check {
	drp_exch_t *x;
	struct drp_users_wait *wait;
	char *registry;
} user_check_t;

static void user_check_free(user_check_t *uc)
{
	free(uc->registry);
	free(uc);
}

static void user_check_release(drp_exch_t *x)
{
	user_check_t *uc = x->hs;
	if (uc == NULL)
		return;
	if (uc->wait != NULL)
		drp_users_wait_cancel(x->w->srv->users_pool, uc->wait);
	user_check_free(uc);
}

static const drp_handler_t user_check_handler = {
	.release = user_check_release,
};

static void give_user_handle(drp_exch_t *x, const char *registry,
			     const char *user);

/* 401 from the token endpoint: no (good) credentials of a proxy user. */
static void refuse_token(drp_exch_t *x)
{
	respond(x, 401,
		"WWW-Authenticate: Basic realm=\"" DRP_USERS_REALM "\"\r\n",
		UNAUTHORIZED_BODY, false);
}

static void user_verdict(drp_exch_t *x, const char *registry, int verdict,
			 const char *user)
{
	if (verdict == 0) {
		give_user_handle(x, registry, user);
		return;
	}
	drp_log_notice(DRP_LOG_PROXY,
		       "[c%06u] %s: token of the proxy's realm for %s refused: "
		       "proxy user '%s': %s",
		       x->id, x->peer, registry, user ? user : "?",
		       verdict == -EBUSY    ? "too many checks at once"
		       : verdict == -EACCES ? "wrong password"
					    : "malformed credentials");
	if (verdict == -EBUSY)
		respond(x, 503, "", "{}", false);
	else
		refuse_token(x);
}

static void user_check_cb(void *arg, int verdict, const char *user)
{
	drp_exch_t *x = arg;
	user_check_t *uc = x->hs;
	uc->wait = NULL;
	user_verdict(x, uc->registry, verdict, user);
	drp_exch_done(x, "PASS");
}

/*
 * The mirror's token endpoint, GET /_drp/token?ns=REGISTRY: a handle for
 * a proxy user (Basic credentials of [proxy] users_file, checked like a
 * Proxy-Authorization), for the client's own registry credentials (as on
 * an intercepted host), or, without any, for the proxy's identity. With
 * require_users only a proxy user gets one.
 */
static void mirror_token_endpoint(drp_exch_t *x, const drp_http_msg_t *req,
				  const char *registry)
{
	drp_auth_t *a = x->rt->auth;
	bool need_user = x->rt->conf->require_users;
	char *auth = header_value(req, "Authorization");
	char *user = NULL, *pw = NULL;
	bool basic = auth != NULL && strncasecmp(auth, "Basic ", 6) == 0;
	if (basic && drp_users_parse_basic(auth, &user, &pw) == 0) {
		explicit_bzero(pw, strlen(pw));
		free(pw);
	}
	if (user != NULL && a->users != NULL && drp_users_has(a->users, user)) {
		char *who = NULL;
		struct drp_users_wait *wait = NULL;
		user_check_t *uc = DRP_NEW(user_check_t);
		uc->x = x;
		uc->registry = drp_strdup(registry);
		x->h = &user_check_handler;
		x->hs = uc;
		int v = drp_users_check(x->w->srv->users_pool, a->users,
					x->w->loop, x->peer_addr, auth, &who,
					user_check_cb, x, &wait);
		if (v == -EINPROGRESS) {
			uc->wait = wait;
			drp_exch_async(x);
		} else {
			/* Answered from the cache: the connection ends the
			 * request. */
			x->h = NULL;
			x->hs = NULL;
			user_check_free(uc);
			user_verdict(x, registry, v, who);
		}
		free(who);
	} else if (need_user) {
		drp_log_info(DRP_LOG_PROXY,
			     "[c%06u] %s: token of the proxy's realm for %s: "
			     "no proxy user (require_users)",
			     x->id, x->peer, registry);
		refuse_token(x);
	} else {
		token_endpoint(x, req, registry);
	}
	free(user);
	free_secret(auth);
}

/* Does a section of this registry keep content private from some
 * clients (a plugin's credentials behind allow or users)? */
static bool mirror_outsider(const drp_exch_t *x)
{
	drp_auth_t *a = x->rt->auth;
	int idx = x->regset.valid ? x->regset.sec : -1;
	const auth_sec_t *s = idx >= 0 ? &a->secs[idx] : NULL;
	return s != NULL && s->has_plugin &&
	       !sec_allows(s, x->peer_addr, x->user);
}

/*
 * A mirror request: the same policy as an intercepted one, but the
 * client has only Authorization to prove who it is, so every question
 * of identity is asked with the proxy's own Bearer realm on the mirror
 * (challenge_client): a proxy user (require_users, a section's users)
 * or the client's registry credentials come back as a handle. The API
 * probe is answered here: a mirror client never needs the upstream's.
 */
static bool mirror_intercept(drp_exch_t *x, const drp_http_msg_t *req,
			     const drp_route_t *route)
{
	drp_auth_t *a = x->rt->auth;
	if (a == NULL || a->host == NULL)
		return false;
	char *registry = drp_select_canonical_registry(x->host, x->port);
	char *auth = header_value(req, "Authorization");
	bool get_or_head = drp_http_method_is(req, "GET") ||
			   drp_http_method_is(req, "HEAD");
	bool handle = drp_auth_is_handle(auth), handle_ok = false;
	if (handle) {
		const char *h = auth + 7 + strspn(auth + 7, " ");
		drp_auth_ident_t *id = NULL;
		char *user = NULL;
		handle_ok = drp_auth_handle_find(a->host, h, registry, &id,
						 &user) == 0;
		drp_auth_ident_unref(id);
		if (user != NULL) {
			free(x->realm_user);
			x->realm_user = user;
			x->user = user;
		}
	}
	bool answered = true;
	if (x->path != NULL && strcmp(x->path, DRP_AUTH_REALM_PATH) == 0) {
		mirror_token_endpoint(x, req, registry);
	} else if (handle && !handle_ok) {
		challenge_client(x); /* expired, or not ours */
	} else if (x->rt->conf->require_users && x->user == NULL) {
		drp_log_info(DRP_LOG_PROXY,
			     "[c%06u] %s: mirror %s %s%s without a proxy user: "
			     "401",
			     x->id, x->peer, x->method, registry, x->path);
		challenge_client(x);
	} else if (route->kind == DRP_ROUTE_PING && get_or_head) {
		if (auth == NULL &&
		    drp_select_has_host(a->realm_sel, x->host, x->port))
			challenge_client(x);
		else
			respond(x, 200, "", "{}", false);
	} else if (auth == NULL && route->name_len > 0 && mirror_outsider(x)) {
		/* Perhaps a proxy user, or with credentials of its own. */
		challenge_client(x);
	} else {
		answered = private_refused(x, auth, registry, route);
	}
	free_secret(auth);
	free(registry);
	return answered;
}

bool drp_auth_intercept(drp_exch_t *x, const drp_http_msg_t *req,
			const drp_route_t *route)
{
	drp_auth_t *a = x->rt->auth;
	x->auth_confirm = false;
	/* Once per request: every per-registry setting of it comes from
	 * here (x->regset). */
	char *repo = route->name_len > 0
			     ? drp_strndup(route->name, route->name_len)
			     : NULL;
	drp_auth_resolve(x->rt, x->host, x->port, repo, &x->regset);
	free(repo);
	if (push_denied(x, req, route))
		return true;
	if (x->mirror)
		return mirror_intercept(x, req, route);
	if (a == NULL || a->n_secs == 0 ||
	    !drp_select_has_host(a->realm_sel, x->host, x->port))
		return false;
	char *registry = drp_select_canonical_registry(x->host, x->port);
	bool answered = true;
	bool get_or_head = drp_http_method_is(req, "GET") ||
			   drp_http_method_is(req, "HEAD");
	char *auth = header_value(req, "Authorization");
	if (x->path != NULL && strcmp(x->path, DRP_AUTH_REALM_PATH) == 0) {
		token_endpoint(x, req, registry);
	} else if (private_refused(x, auth, registry, route)) {
		/* answered */
	} else if (drp_auth_is_handle(auth)) {
		const char *h = auth + 7 + strspn(auth + 7, " ");
		drp_auth_ident_t *id = NULL;
		if (drp_auth_handle_find(a->host, h, registry, &id, NULL) < 0)
			challenge_client(x); /* expired, or not ours */
		else if (route->kind == DRP_ROUTE_PING && get_or_head)
			respond(x, 200, "", "{}", false);
		else
			answered = false;
		drp_auth_ident_unref(id);
	} else if (auth == NULL && route->kind == DRP_ROUTE_PING &&
		   get_or_head) {
		challenge_client(x);
	} else {
		answered = false;
	}
	free_secret(auth);
	free(registry);
	return answered;
}
