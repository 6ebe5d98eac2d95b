/* SPDX-License-Identifier: MIT */
/*
 * gcr: Google Container Registry (gcr.io, *.gcr.io) and Artifact
 * Registry (*.pkg.dev) with a service-account key. Google's token
 * endpoints accept the user name "_json_key" with the key's JSON as the
 * password, so no OAuth flow (and no clock-sensitive JWT signing) is
 * needed here: the registry's challenge names the realm, and the token
 * request carries those Basic credentials.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <drp/plugin.h>

#include "bearer.h"

#define GCR_USER "_json_key"

typedef struct plugin {
	const drp_host_api_t *host;
} plugin_t;

typedef struct inst {
	bearer_t bearer;
} inst_t;

static int gcr_init(const drp_host_api_t *host, drp_host_ctx_t *ctx,
		    void **pctx)
{
	(void)ctx;
	plugin_t *p = host->alloc(sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->host = host;
	*pctx = p;
	return 0;
}

static void gcr_fini(void *pctx)
{
	plugin_t *p = pctx;
	p->host->free(p);
}

/*
 * The account name for log lines: the "client_email" string of the key.
 * A light scan, not a JSON parser: the token service validates the key.
 */
static void client_email(const char *key, char *out, size_t len)
{
	const char *p = strstr(key, "\"client_email\"");
	out[0] = '\0';
	if (p == NULL)
		return;
	p = strchr(p + 14, '"');
	if (p == NULL)
		return;
	size_t n = strcspn(p + 1, "\"\\");
	snprintf(out, len, "%.*s", (int)n, p + 1);
}

static int gcr_instance_new(void *pctx, const drp_instance_args_t *args,
			    void **out, char *errbuf, size_t errlen)
{
	const drp_host_api_t *h = ((plugin_t *)pctx)->host;
	if (h->config_get(args->ctx, "username") != NULL ||
	    h->config_get(args->ctx, "password") != NULL ||
	    h->config_get(args->ctx, "password_file") != NULL) {
		h->config_error(args->ctx,
				h->config_get(args->ctx, "username")
					? "username"
					: "password",
				"not used by plugin gcr: set key_file to the "
				"service-account JSON key");
		snprintf(errbuf, errlen, "username/password given");
		return -EINVAL;
	}
	char *key = NULL;
	int r = h->config_secret(args->ctx, "key", &key, NULL);
	if (r < 0) {
		snprintf(errbuf, errlen, "service-account key unreadable");
		return r == -ENOENT ? -EINVAL : r;
	}
	char email[256];
	client_email(key, email, sizeof(email));
	if (email[0] == '\0' || strstr(key, "\"private_key\"") == NULL) {
		h->config_error(args->ctx,
				h->config_get(args->ctx, "key") ? "key"
								: "key_file",
				"not a service-account key (no client_email "
				"or private_key)");
		bearer_free_secret(h, key);
		snprintf(errbuf, errlen, "bad service-account key");
		return -EINVAL;
	}
	inst_t *i = h->alloc(sizeof(*i));
	if (i == NULL ||
	    (r = bearer_init(&i->bearer, h, args->ctx, GCR_USER, key)) < 0) {
		h->free(i);
		snprintf(errbuf, errlen, "out of memory");
		r = -ENOMEM;
	} else {
		h->log(args->ctx, DRP_PLUGIN_LOG_INFO, "service account '%s'",
		       email);
		*out = i;
	}
	bearer_free_secret(h, key);
	return r;
}

static void gcr_instance_free(void *inst)
{
	inst_t *i = inst;
	const drp_host_api_t *h = i->bearer.host;
	bearer_fini(&i->bearer);
	h->free(i);
}

static int gcr_decorate(void *inst, drp_auth_req_t *req)
{
	return bearer_decorate(&((inst_t *)inst)->bearer, req);
}

static int gcr_challenge(void *inst, drp_auth_req_t *req,
			 const char *www_authenticate)
{
	return bearer_challenge(&((inst_t *)inst)->bearer, req,
				www_authenticate);
}

static void gcr_cancel(void *inst, drp_auth_req_t *req)
{
	bearer_cancel(&((inst_t *)inst)->bearer, req);
}

static const drp_plugin_key_t gcr_keys[] = {
	{.key = "key",
	 .type = DRP_KEY_STRING,
	 .flags = DRP_KEY_REQUIRED | DRP_KEY_SECRET | DRP_KEY_FILE,
	 .help = "service-account JSON key: key_file = PATH"},
	{.key = NULL},
};

DRP_PLUGIN_DEFINE(.name = "gcr", .version = "1.0",
		  .description = "gcr.io and *.pkg.dev with a "
				 "service-account key (_json_key)",
		  .config = gcr_keys, .init = gcr_init, .fini = gcr_fini,
		  .instance_new = gcr_instance_new,
		  .instance_free = gcr_instance_free, .decorate = gcr_decorate,
		  .challenge = gcr_challenge, .cancel = gcr_cancel);
