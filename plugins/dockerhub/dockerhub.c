/* SPDX-License-Identifier: MIT */
/*
 * dockerhub: Docker Hub (docker.io = registry-1.docker.io =
 * index.docker.io). The registry's challenge names the token service
 * (https://auth.docker.io/token, service=registry.docker.io); tokens are
 * fetched with the configured account (a password or an access token),
 * or anonymously when none is configured, which still counts pulls
 * against the proxy's address rather than against every node. Naming
 * (library/ for one-word names) is done by the daemon's alias table
 * before this plugin is asked; blob redirects to the CDN are followed
 * by the daemon without credentials.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <drp/plugin.h>

#include "bearer.h"

typedef struct plugin {
	const drp_host_api_t *host;
} plugin_t;

typedef struct inst {
	bearer_t bearer;
} inst_t;

static int hub_init(const drp_host_api_t *host, drp_host_ctx_t *ctx,
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

static void hub_fini(void *pctx)
{
	plugin_t *p = pctx;
	p->host->free(p);
}

static int hub_instance_new(void *pctx, const drp_instance_args_t *args,
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
	if (strcmp(args->registry, "docker.io") != 0)
		h->log(args->ctx, DRP_PLUGIN_LOG_NOTICE,
		       "used for %s, not docker.io: the registry's own "
		       "challenges decide where tokens come from",
		       args->registry);
	inst_t *i = h->alloc(sizeof(*i));
	if (i == NULL ||
	    (r = bearer_init(&i->bearer, h, args->ctx, user, password)) < 0) {
		h->free(i);
		snprintf(errbuf, errlen, "out of memory");
		r = -ENOMEM;
	} else {
		h->log(args->ctx, DRP_PLUGIN_LOG_INFO, "%s%s%s",
		       user ? "account '" : "anonymous tokens",
		       user ? user : "", user ? "'" : "");
		*out = i;
	}
	bearer_free_secret(h, user);
	bearer_free_secret(h, password);
	return r;
}

static void hub_instance_free(void *inst)
{
	inst_t *i = inst;
	const drp_host_api_t *h = i->bearer.host;
	bearer_fini(&i->bearer);
	h->free(i);
}

static int hub_decorate(void *inst, drp_auth_req_t *req)
{
	return bearer_decorate(&((inst_t *)inst)->bearer, req);
}

static int hub_challenge(void *inst, drp_auth_req_t *req,
			 const char *www_authenticate)
{
	return bearer_challenge(&((inst_t *)inst)->bearer, req,
				www_authenticate);
}

static void hub_cancel(void *inst, drp_auth_req_t *req)
{
	bearer_cancel(&((inst_t *)inst)->bearer, req);
}

static const drp_plugin_key_t hub_keys[] = {
	{.key = "username",
	 .type = DRP_KEY_STRING,
	 .help = "Docker ID; omit for anonymous pulls"},
	{.key = "password",
	 .type = DRP_KEY_STRING,
	 .flags = DRP_KEY_SECRET | DRP_KEY_FILE,
	 .help = "password or personal access token (or password_file)"},
	{.key = NULL},
};

DRP_PLUGIN_DEFINE(.name = "dockerhub", .version = "1.0",
		  .description = "Docker Hub tokens (auth.docker.io), with "
				 "an account or anonymous",
		  .config = hub_keys, .init = hub_init, .fini = hub_fini,
		  .instance_new = hub_instance_new,
		  .instance_free = hub_instance_free, .decorate = hub_decorate,
		  .challenge = hub_challenge, .cancel = hub_cancel);
