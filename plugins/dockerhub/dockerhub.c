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

#include "bearer_plugin.h"

static int hub_instance_new(void *pctx, const drp_instance_args_t *args,
			    void **out, char *errbuf, size_t errlen)
{
	const drp_host_api_t *h = bearer_plugin_host(pctx);
	char *user = NULL, *password = NULL;
	int r = bearer_read_credentials(h, args->ctx, &user, &password);
	if (r < 0) {
		bearer_credentials_error(r, errbuf, errlen);
		return r;
	}
	if (strcmp(args->registry, "docker.io") != 0)
		h->log(args->ctx, DRP_PLUGIN_LOG_NOTICE,
		       "used for %s, not docker.io: the registry's own "
		       "challenges decide where tokens come from",
		       args->registry);
	r = bearer_instance_make(h, args->ctx, user, password, out, errbuf,
				 errlen);
	if (r == 0) {
		h->log(args->ctx, DRP_PLUGIN_LOG_INFO, "%s%s%s",
		       user ? "account '" : "anonymous tokens",
		       user ? user : "", user ? "'" : "");
	}
	bearer_free_secret(h, user);
	bearer_free_secret(h, password);
	return r;
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
		  .config = hub_keys, .init = bearer_plugin_init,
		  .fini = bearer_plugin_fini, .instance_new = hub_instance_new,
		  .instance_free = bearer_instance_free,
		  .decorate = bearer_hook_decorate,
		  .challenge = bearer_hook_challenge,
		  .cancel = bearer_hook_cancel);
