/* SPDX-License-Identifier: MIT */
/*
 * basic: a registry reached with a user name and password (a private
 * distribution registry with htpasswd, Harbor, Nexus, Artifactory, ...).
 * A Basic challenge is answered with the credentials; a Bearer challenge
 * gets a token from the challenge's realm with the same credentials.
 */
#include <errno.h>
#include <stdio.h>

#include <drp/plugin.h>

#include "bearer.h"

typedef struct plugin {
	const drp_host_api_t *host;
} plugin_t;

typedef struct inst {
	bearer_t bearer;
} inst_t;

static int basic_init(const drp_host_api_t *host, drp_host_ctx_t *ctx,
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

static void basic_fini(void *pctx)
{
	plugin_t *p = pctx;
	p->host->free(p);
}

static int basic_instance_new(void *pctx, const drp_instance_args_t *args,
			      void **out, char *errbuf, size_t errlen)
{
	const drp_host_api_t *h = ((plugin_t *)pctx)->host;
	char *user = NULL, *password = NULL;
	int r = bearer_read_credentials(h, args->ctx, &user, &password);
	if (r < 0) {
		snprintf(errbuf, errlen, "%s",
			 r == -EIO ? "the password file cannot be read"
				   : "incomplete credentials");
		return r;
	}
	inst_t *i = h->alloc(sizeof(*i));
	if (i == NULL ||
	    (r = bearer_init(&i->bearer, h, args->ctx, user, password)) < 0) {
		h->free(i);
		snprintf(errbuf, errlen, "out of memory");
		r = -ENOMEM;
	} else {
		h->log(args->ctx, DRP_PLUGIN_LOG_INFO, "user '%s'", user);
		*out = i;
	}
	bearer_free_secret(h, user);
	bearer_free_secret(h, password);
	return r;
}

static void basic_instance_free(void *inst)
{
	inst_t *i = inst;
	const drp_host_api_t *h = i->bearer.host;
	bearer_fini(&i->bearer);
	h->free(i);
}

static int basic_decorate(void *inst, drp_auth_req_t *req)
{
	return bearer_decorate(&((inst_t *)inst)->bearer, req);
}

static int basic_challenge(void *inst, drp_auth_req_t *req,
			   const char *www_authenticate)
{
	return bearer_challenge(&((inst_t *)inst)->bearer, req,
				www_authenticate);
}

static void basic_cancel(void *inst, drp_auth_req_t *req)
{
	bearer_cancel(&((inst_t *)inst)->bearer, req);
}

static const drp_plugin_key_t basic_keys[] = {
	{.key = "username",
	 .type = DRP_KEY_STRING,
	 .flags = DRP_KEY_REQUIRED,
	 .help = "user name at the registry"},
	{.key = "password",
	 .type = DRP_KEY_STRING,
	 .flags = DRP_KEY_REQUIRED | DRP_KEY_SECRET | DRP_KEY_FILE,
	 .help = "password, or password_file = PATH"},
	{.key = NULL},
};

DRP_PLUGIN_DEFINE(.name = "basic", .version = "1.0",
		  .description = "HTTP Basic credentials (also for token "
				 "services that accept them)",
		  .config = basic_keys, .init = basic_init, .fini = basic_fini,
		  .instance_new = basic_instance_new,
		  .instance_free = basic_instance_free,
		  .decorate = basic_decorate, .challenge = basic_challenge,
		  .cancel = basic_cancel);
