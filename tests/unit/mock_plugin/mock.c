/* SPDX-License-Identifier: MIT */
/*
 * A test plugin, built as several libtool modules from this one file.
 * MOCK_VARIANT selects what is wrong with it:
 *   0 mock_ok        a valid plugin (defined with DRP_PLUGIN_DEFINE)
 *   1 mock_badmajor  abi_major = host major + 1
 *   2 mock_newminor  abi_minor = host minor + 1
 *   3 mock_small     struct_size smaller than ABI 1.0's descriptor
 *   4 mock_nosym     exports no `drp_plugin` symbol
 *   5 mock_badname   descriptor name differs from the file name
 *   6 mock_failinit  init() fails
 *   7 mock_failinst  instance_new() fails with a reason
 *   8 mock_nohook    mandatory instance_free missing
 * It reports what happens to it through host->log, which the tests read.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <drp/plugin.h>

#ifndef MOCK_VARIANT
#define MOCK_VARIANT 0
#endif
#ifndef MOCK_NAME
#define MOCK_NAME "mock_ok"
#endif

typedef struct plugin {
	const drp_host_api_t *host;
	drp_host_ctx_t *ctx;
} plugin_t;

typedef struct inst {
	plugin_t *p;
	drp_host_ctx_t *ctx;
	char greeting[64];
	char token[128];
	long count;
} inst_t;

/* Per-process plugin state lives in the object init returns. */
static int mock_init(const drp_host_api_t *host, drp_host_ctx_t *ctx,
		     void **pctx)
{
	host->log(ctx, DRP_PLUGIN_LOG_INFO, "init api_size=%u abi=%u.%u",
		  (unsigned)host->api_size, host->abi_major, host->abi_minor);
	if (MOCK_VARIANT == 6)
		return -EIO;
	plugin_t *p = host->alloc(sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->host = host;
	p->ctx = ctx;
	*pctx = p;
	return 0;
}

static void mock_fini(void *pctx)
{
	plugin_t *p = pctx;
	p->host->log(p->ctx, DRP_PLUGIN_LOG_INFO, "fini");
	p->host->free(p);
}

static int mock_instance_new(void *pctx, const drp_instance_args_t *args,
			     void **out, char *errbuf, size_t errlen)
{
	plugin_t *p = pctx;
	const drp_host_api_t *h = p->host;
	if (MOCK_VARIANT == 7) {
		snprintf(errbuf, errlen, "mock refuses %s", args->section);
		return -EACCES;
	}
	const char *greeting = h->config_get(args->ctx, "greeting");
	if (greeting != NULL && strcmp(greeting, "bad") == 0) {
		h->config_error(args->ctx, "greeting", "must not be '%s'",
				greeting);
		return -EINVAL;
	}
	if (greeting != NULL && strcmp(greeting, "sneaky") == 0) {
		/* reports an error but claims success: the host refuses */
		h->config_error(args->ctx, "greeting", "is sneaky");
	}
	inst_t *i = h->alloc(sizeof(*i));
	if (i == NULL)
		return -ENOMEM;
	memset(i, 0, sizeof(*i));
	i->p = p;
	i->ctx = args->ctx;
	snprintf(i->greeting, sizeof(i->greeting), "%s",
		 greeting ? greeting : "(none)");
	const char *count = h->config_get(args->ctx, "count");
	i->count = count ? strtol(count, NULL, 10) : -1;
	char *tok = NULL;
	int r = h->config_secret(args->ctx, "token", &tok, NULL);
	if (r == 0) {
		snprintf(i->token, sizeof(i->token), "%s", tok);
		h->free(tok);
	} else if (r != -ENOENT) {
		h->free(i);
		snprintf(errbuf, errlen, "token unreadable");
		return r;
	}
	h->log(args->ctx, DRP_PLUGIN_LOG_INFO,
	       "instance_new section=%s registry=%s prefix=%s greeting=%s "
	       "count=%ld region=%s",
	       args->section, args->registry, args->prefix, i->greeting,
	       i->count, h->config_get(args->ctx, "region"));
	*out = i;
	return 0;
}

static void mock_instance_free(void *inst)
{
	inst_t *i = inst;
	i->p->host->log(i->ctx, DRP_PLUGIN_LOG_INFO, "instance_free");
	i->p->host->free(i);
}

static int mock_decorate(void *inst, drp_auth_req_t *req)
{
	inst_t *i = inst;
	char v[256];
	snprintf(v, sizeof(v), "Mock %s/%s", i->greeting, i->token);
	return i->p->host->req_set_header(req, "Authorization", v) == 0
		       ? DRP_AUTH_OK
		       : DRP_AUTH_ERROR;
}

/* Pending challenge: wait for a timer, then answer. */
typedef struct pending {
	inst_t *i;
	drp_auth_req_t *req;
	drp_timer_t *timer;
} pending_t;

static void answer_cb(void *arg)
{
	pending_t *pd = arg;
	const drp_host_api_t *h = pd->i->p->host;
	h->req_set_header(pd->req, "Authorization", "Mock answered");
	h->req_set_data(pd->req, NULL);
	drp_auth_req_t *req = pd->req;
	h->free(pd);
	h->auth_done(req, DRP_AUTH_OK);
}

static int mock_challenge(void *inst, drp_auth_req_t *req,
			  const char *www_authenticate)
{
	inst_t *i = inst;
	const drp_host_api_t *h = i->p->host;
	if (strcmp(www_authenticate, "") == 0)
		return DRP_AUTH_DECLINED;
	if (strcmp(www_authenticate, "Denied") == 0)
		return DRP_AUTH_DENIED;
	if (strcmp(www_authenticate, "Weird") == 0)
		return 42; /* not a result: the host turns it into ERROR */
	pending_t *pd = h->alloc(sizeof(*pd));
	if (pd == NULL)
		return DRP_AUTH_ERROR;
	pd->i = i;
	pd->req = req;
	pd->timer = h->timer_start(i->ctx, 1.0, answer_cb, pd);
	h->req_set_data(req, pd);
	return DRP_AUTH_PENDING;
}

static void mock_cancel(void *inst, drp_auth_req_t *req)
{
	inst_t *i = inst;
	const drp_host_api_t *h = i->p->host;
	pending_t *pd = h->req_get_data(req);
	if (pd == NULL)
		return;
	h->timer_stop(pd->timer);
	h->req_set_data(req, NULL);
	h->free(pd);
	h->log(i->ctx, DRP_PLUGIN_LOG_INFO, "cancelled");
}

static const drp_plugin_key_t mock_keys[] = {
	{.key = "greeting",
	 .type = DRP_KEY_STRING,
	 .def = "hello",
	 .help = "what decorate says"},
	{.key = "count", .type = DRP_KEY_INT, .def = "3", .min = 1, .max = 10},
	{.key = "ttl", .type = DRP_KEY_DURATION, .min = 0, .max = 86400},
	{.key = "strict", .type = DRP_KEY_BOOL, .def = "no"},
	{.key = "token",
	 .type = DRP_KEY_STRING,
	 .flags = DRP_KEY_SECRET | DRP_KEY_FILE},
	{.key = "region", .type = DRP_KEY_STRING, .flags = DRP_KEY_REQUIRED},
	{.key = NULL},
};

#if MOCK_VARIANT == 0 || MOCK_VARIANT == 5 || MOCK_VARIANT == 6 ||             \
	MOCK_VARIANT == 7
/* The normal way to define a plugin. */
DRP_PLUGIN_DEFINE(.name = MOCK_NAME, .version = "0.1",
		  .description = "unit-test plugin", .config = mock_keys,
		  .init = mock_init, .fini = mock_fini,
		  .instance_new = mock_instance_new,
		  .instance_free = mock_instance_free,
		  .decorate = mock_decorate, .challenge = mock_challenge,
		  .cancel = mock_cancel);
#else
/* Broken descriptors are spelled out by hand. */
#if MOCK_VARIANT == 4
#define MOCK_SYMBOL drp_plugin_v2
#else
#define MOCK_SYMBOL drp_plugin
#endif
DRP_PLUGIN_EXPORT extern const drp_plugin_t MOCK_SYMBOL;
DRP_PLUGIN_EXPORT const drp_plugin_t MOCK_SYMBOL = {
	.abi_major = DRP_PLUGIN_ABI_MAJOR + (MOCK_VARIANT == 1),
	.abi_minor = DRP_PLUGIN_ABI_MINOR + (MOCK_VARIANT == 2),
	.struct_size = MOCK_VARIANT == 3 ? 16 : sizeof(drp_plugin_t),
	.name = MOCK_NAME,
	.config = mock_keys,
	.init = mock_init,
	.fini = mock_fini,
	.instance_new = mock_instance_new,
	.instance_free = MOCK_VARIANT == 8 ? NULL : mock_instance_free,
	.decorate = mock_decorate,
	.challenge = mock_challenge,
	.cancel = mock_cancel,
};
#endif
