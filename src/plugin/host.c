/* SPDX-License-Identifier: MIT */
#include "plugin/host.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "plugin/challenge.h"
#include "plugin/token.h"
#include "util/base64.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/metrics.h"

double drp_plugin_host_clock(drp_plugin_host_t *h)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- logging and memory ---- */

static void host_log(drp_host_ctx_t *ctx, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void host_log(drp_host_ctx_t *ctx, int level, const char *fmt, ...)
{
	if (level < DRP_LOG_ERR)
		level = DRP_LOG_ERR;
	if (level > DRP_LOG_DEBUG)
		level = DRP_LOG_DEBUG;
	if (level > (int)drp_log_get_level())
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	char conn[16] = "";
	unsigned id =
		ctx->host && ctx->host->conn_id ? ctx->host->conn_id() : 0;
	if (id != 0)
		snprintf(conn, sizeof(conn), "[c%06u] ", id);
	drp_log((enum drp_log_level)level, DRP_LOG_PLUGIN, "%s%s%s%s: %s", conn,
		ctx->plugin, ctx->instance ? "/" : "",
		ctx->instance ? ctx->instance : "", msg);
}

static void *host_alloc(size_t n)
{
	return malloc(n ? n : 1);
}

static void host_free(void *p)
{
	free(p);
}

/* ---- configuration ---- */

static const char *host_config_get(drp_host_ctx_t *ctx, const char *key)
{
	const drp_conf_item_t *it = drp_conf_registry_get(ctx->section, key);
	if (it != NULL)
		return it->value;
	const drp_plugin_key_t *k = drp_schema_key_find(ctx->schema, key);
	return k != NULL ? k->def : NULL;
}

static void vconfig_error(drp_host_ctx_t *ctx, const char *key, const char *fmt,
			  va_list ap) __attribute__((format(printf, 3, 0)));
static void vconfig_error(drp_host_ctx_t *ctx, const char *key, const char *fmt,
			  va_list ap)
{
	char msg[1024];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	ctx->n_errors++;
	if (ctx->errs == NULL || ctx->section == NULL) {
		drp_log_err(DRP_LOG_PLUGIN, "%s%s%s: %s%s%s", ctx->plugin,
			    ctx->instance ? "/" : "",
			    ctx->instance ? ctx->instance : "", key ? key : "",
			    key ? ": " : "", msg);
		return;
	}
	/* At the key's item; a missing key at the section header, named. */
	drp_conf_registry_key_error(
		ctx->errs, ctx->section,
		key ? drp_conf_registry_get(ctx->section, key) : NULL, key,
		"%s", msg);
}

static void host_config_error(drp_host_ctx_t *ctx, const char *key,
			      const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void host_config_error(drp_host_ctx_t *ctx, const char *key,
			      const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vconfig_error(ctx, key, fmt, ap);
	va_end(ap);
}

/* A relative path is relative to the directory of the file naming it. */
static char *resolve_path(const char *conf_file, const char *path)
{
	const char *slash = conf_file ? strrchr(conf_file, '/') : NULL;
	if (path[0] == '/' || slash == NULL)
		return drp_strdup(path);
	size_t dl = (size_t)(slash - conf_file);
	size_t n = dl + 1 + strlen(path) + 1;
	char *r = drp_malloc(n);
	snprintf(r, n, "%.*s/%s", (int)dl, conf_file, path);
	return r;
}

static int read_secret_file(const char *path, char **value, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	struct stat st;
	int r = 0;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		goto out;
	}
	if (st.st_size > DRP_PLUGIN_SECRET_MAX) {
		r = -EFBIG;
		goto out;
	}
	char *buf = drp_malloc((size_t)st.st_size + 1);
	size_t n = 0;
	for (;;) {
		ssize_t k = read(fd, buf + n, (size_t)st.st_size - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = -errno;
			explicit_bzero(buf, n);
			free(buf);
			goto out;
		}
		if (k == 0 || (n += (size_t)k) == (size_t)st.st_size)
			break;
	}
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	*value = buf;
	if (len != NULL)
		*len = n;
out:
	close(fd);
	return r;
}

static int host_config_secret(drp_host_ctx_t *ctx, const char *key,
			      char **value, size_t *len)
{
	const drp_conf_item_t *it = drp_conf_registry_get(ctx->section, key);
	if (it != NULL) {
		*value = drp_strdup(it->value);
		if (len != NULL)
			*len = strlen(it->value);
		return 0;
	}
	char fkey[128];
	if ((size_t)snprintf(fkey, sizeof(fkey), "%s_file", key) >=
	    sizeof(fkey))
		return -ENOENT;
	it = drp_conf_registry_get(ctx->section, fkey);
	if (it == NULL)
		return -ENOENT;
	char *path = resolve_path(it->file, it->value);
	int r = read_secret_file(path, value, len);
	if (r < 0) {
		host_config_error(ctx, fkey, "cannot read '%s': %s", path,
				  r == -EINVAL ? "not a regular file"
					       : strerror(-r));
		/* -ENOENT is reserved for "not configured". */
		r = -EIO;
	}
	free(path);
	return r;
}

/* ---- token cache ---- */

static int host_token_get(drp_host_ctx_t *ctx, const char *scope, char **token)
{
	return drp_tokencache_get(ctx->host->tokens, ctx, scope,
				  ctx->host->now(ctx->host), token);
}

static int host_token_acquire(drp_host_ctx_t *ctx, const char *scope,
			      char **token, drp_token_cb *cb, void *arg,
			      drp_token_wait_t **wait)
{
	drp_tokencache_waiter_t *w = NULL;
	int r = drp_tokencache_acquire(ctx->host->tokens, ctx, scope,
				       ctx->host->now(ctx->host), token, cb,
				       arg, &w);
	if (r == DRP_TOKENCACHE_WAIT)
		*wait = (drp_token_wait_t *)w;
	return r;
}

/* The plugin label of a token fetch: the core's own token flow for
 * clients' credentials runs as "proxy" (auth/auth_client.c) and is
 * counted as "client". */
static const char *token_plugin(const drp_host_ctx_t *ctx)
{
	if (ctx->plugin == NULL || strcmp(ctx->plugin, "proxy") == 0)
		return "client";
	return ctx->plugin;
}

static void host_token_put(drp_host_ctx_t *ctx, const char *scope,
			   const char *token, double expires_in)
{
	drp_metrics_token_fetch(token_plugin(ctx), true);
	drp_tokencache_put(ctx->host->tokens, ctx, scope, token, expires_in,
			   ctx->host->now(ctx->host));
}

static void host_token_fail(drp_host_ctx_t *ctx, const char *scope)
{
	drp_metrics_token_fetch(token_plugin(ctx), false);
	drp_tokencache_fail(ctx->host->tokens, ctx, scope);
}

static void host_token_forget(drp_host_ctx_t *ctx, const char *scope,
			      const char *token)
{
	drp_tokencache_forget(ctx->host->tokens, ctx, scope, token);
}

/* ---- pure helpers ---- */

static int host_challenge_param(const char *hdr, const char *scheme,
				const char *param, char **value)
{
	drp_challenges_t c;
	int r = drp_challenge_parse(hdr, strlen(hdr), &c);
	if (r < 0)
		return -EINVAL;
	const drp_challenge_t *ch = drp_challenge_find(&c, scheme);
	const char *v = NULL;
	if (ch == NULL) {
		r = -ENOENT;
	} else if (param != NULL) {
		v = drp_challenge_param(ch, param);
		r = v ? 0 : -ENOENT;
	}
	if (value != NULL)
		*value = v ? drp_strdup(v) : NULL;
	drp_challenges_free(&c);
	return r;
}

static int host_token_parse(const char *body, size_t len, char **token,
			    double *expires_in)
{
	drp_token_resp_t t;
	int r = drp_token_parse(body, len, time(NULL), &t);
	if (r < 0)
		return r;
	*token = t.token; /* malloc'ed: host->free is free() */
	*expires_in = t.ttl;
	return 0;
}

static char *base64(const unsigned char *in, size_t n)
{
	size_t room = DRP_BASE64_ENCODED_LEN(n) + 1;
	char *out = drp_malloc(room);
	drp_require(drp_base64_encode(in, n, out, room) >= 0);
	return out;
}

static char *host_basic_auth(const char *user, const char *password)
{
	size_t ul = strlen(user), pl = strlen(password);
	char *plain = drp_malloc(ul + 1 + pl + 1);
	memcpy(plain, user, ul);
	plain[ul] = ':';
	memcpy(plain + ul + 1, password, pl + 1);
	char *b = base64((const unsigned char *)plain, ul + 1 + pl);
	explicit_bzero(plain, ul + 1 + pl);
	free(plain);
	size_t n = strlen(b) + sizeof("Basic ");
	char *r = drp_malloc(n);
	snprintf(r, n, "Basic %s", b);
	explicit_bzero(b, strlen(b));
	free(b);
	return r;
}

static char *host_url_encode(const char *s)
{
	char *r = drp_malloc(strlen(s) * 3 + 1);
	char *o = r;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' ||
		    *p == '~') {
			*o++ = (char)*p;
		} else {
			snprintf(o, 4, "%%%02X", *p);
			o += 3;
		}
	}
	*o = '\0';
	return r;
}

static void host_token_wait_cancel(drp_host_ctx_t *ctx, drp_token_wait_t *w)
{
	drp_tokencache_cancel(ctx->host->tokens, (drp_tokencache_waiter_t *)w);
}

void drp_plugin_host_init(drp_plugin_host_t *h, const drp_host_api_t *core)
{
	*h = (drp_plugin_host_t){
		.api =
			{
				.api_size = sizeof(drp_host_api_t),
				.abi_major = DRP_PLUGIN_ABI_MAJOR,
				.abi_minor = DRP_PLUGIN_ABI_MINOR,
				.log = host_log,
				.alloc = host_alloc,
				.free = host_free,
				.config_get = host_config_get,
				.config_secret = host_config_secret,
				.config_error = host_config_error,
				.token_get = host_token_get,
				.token_acquire = host_token_acquire,
				.token_put = host_token_put,
				.token_fail = host_token_fail,
				.token_wait_cancel = host_token_wait_cancel,
				.token_forget = host_token_forget,
				.challenge_param = host_challenge_param,
				.token_parse = host_token_parse,
				.basic_auth = host_basic_auth,
				.url_encode = host_url_encode,
			},
		.tokens = drp_tokencache_new(0),
		.now = drp_plugin_host_clock,
	};
	if (core == NULL)
		return;
	drp_host_api_t *a = &h->api;
	a->req_get = core->req_get;
	a->req_header = core->req_header;
	a->req_set_header = core->req_set_header;
	a->req_set_data = core->req_set_data;
	a->req_get_data = core->req_get_data;
	a->auth_done = core->auth_done;
	a->http_fetch = core->http_fetch;
	a->http_cancel = core->http_cancel;
	a->fetch_header = core->fetch_header;
	a->timer_start = core->timer_start;
	a->timer_stop = core->timer_stop;
	/* A core with several loops delivers token waits on the waiter's
	 * own loop. */
	if (core->token_acquire != NULL) {
		a->token_acquire = core->token_acquire;
		a->token_wait_cancel = core->token_wait_cancel;
	}
}

void drp_plugin_host_fini(drp_plugin_host_t *h)
{
	drp_tokencache_free(h->tokens);
	h->tokens = NULL;
}
