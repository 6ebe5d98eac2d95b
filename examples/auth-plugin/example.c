/* SPDX-License-Identifier: MIT */
/*
 * A minimal docker-registry-proxy auth plugin: it adds one configured
 * header to every request the proxy sends to the section's registry, e.g.
 *
 *     [registry "registry.example.com"]
 *     plugin = /usr/local/lib/docker-registry-proxy/plugins-1/example.so
 *     value_file = /etc/docker-registry-proxy/example.token
 *     scheme = Bearer
 *
 * It uses nothing but <drp/plugin.h>; build it with the Makefile next to
 * it (pkg-config --cflags drp-plugin). Everything except the descriptor
 * is static, and the module is built with -fvisibility=hidden, so the
 * only exported symbol is `drp_plugin`.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <drp/plugin.h>

/* Per process: the host table, kept from init(). */
typedef struct example {
	const drp_host_api_t *host;
} example_t;

/* Per [registry] section. */
typedef struct example_inst {
	const drp_host_api_t *host;
	char header[4096]; /* "Bearer <value>" */
} example_inst_t;

static int example_init(const drp_host_api_t *host, drp_host_ctx_t *ctx,
			void **pctx)
{
	example_t *e = host->alloc(sizeof(*e));
	if (e == NULL)
		return -ENOMEM;
	e->host = host;
	*pctx = e;
	host->log(ctx, DRP_PLUGIN_LOG_DEBUG, "loaded, host ABI %u.%u",
		  host->abi_major, host->abi_minor);
	return 0;
}

static void example_fini(void *pctx)
{
	example_t *e = pctx;
	e->host->free(e);
}

static int example_instance_new(void *pctx, const drp_instance_args_t *args,
				void **out, char *errbuf, size_t errlen)
{
	const drp_host_api_t *h = ((example_t *)pctx)->host;
	char *value = NULL;
	/* The host has already checked the keys against example_keys. */
	int r = h->config_secret(args->ctx, "value", &value, NULL);
	if (r < 0) {
		snprintf(errbuf, errlen, "no value");
		return r == -ENOENT ? -EINVAL : r;
	}
	example_inst_t *i = h->alloc(sizeof(*i));
	if (i == NULL) {
		h->free(value);
		return -ENOMEM;
	}
	i->host = h;
	const char *scheme = h->config_get(args->ctx, "scheme");
	int n = snprintf(i->header, sizeof(i->header), "%s %s", scheme, value);
	memset(value, 0, strlen(value));
	h->free(value);
	if (n < 0 || (size_t)n >= sizeof(i->header)) {
		h->config_error(args->ctx, "value", "longer than %zu bytes",
				sizeof(i->header) - 64);
		h->free(i);
		return -EINVAL;
	}
	h->log(args->ctx, DRP_PLUGIN_LOG_INFO, "sending %s credentials to %s",
	       scheme, args->registry);
	*out = i;
	return 0;
}

static void example_instance_free(void *inst)
{
	example_inst_t *i = inst;
	memset(i->header, 0, sizeof(i->header));
	i->host->free(i);
}

static int example_decorate(void *inst, drp_auth_req_t *req)
{
	example_inst_t *i = inst;
	if (i->host->req_set_header(req, "Authorization", i->header) < 0)
		return DRP_AUTH_ERROR;
	return DRP_AUTH_OK;
}

/* A 401 although the header was sent: the registry refuses it. */
static int example_challenge(void *inst, drp_auth_req_t *req,
			     const char *www_authenticate)
{
	(void)inst;
	(void)req;
	(void)www_authenticate;
	return DRP_AUTH_DENIED;
}

static const drp_plugin_key_t example_keys[] = {
	{.key = "value",
	 .type = DRP_KEY_STRING,
	 .flags = DRP_KEY_REQUIRED | DRP_KEY_SECRET | DRP_KEY_FILE,
	 .help = "the credential, or value_file = PATH"},
	{.key = "scheme",
	 .type = DRP_KEY_STRING,
	 .def = "Bearer",
	 .help = "authentication scheme put before the value"},
	{.key = NULL},
};

DRP_PLUGIN_DEFINE(.name = "example", .version = "1.0",
		  .description = "a fixed Authorization header",
		  .config = example_keys, .init = example_init,
		  .fini = example_fini, .instance_new = example_instance_new,
		  .instance_free = example_instance_free,
		  .decorate = example_decorate, .challenge = example_challenge);
