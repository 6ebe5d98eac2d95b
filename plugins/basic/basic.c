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

#include "bearer_plugin.h"

static int basic_instance_new(void *pctx, const drp_instance_args_t *args,
			      void **out, char *errbuf, size_t errlen)
{
	const drp_host_api_t *h = bearer_plugin_host(pctx);
	char *user = NULL, *password = NULL;
	int r = bearer_read_credentials(h, args->ctx, &user, &password);
	if (r < 0) {
		bearer_credentials_error(r, errbuf, errlen);
		return r;
	}
	r = bearer_instance_make(h, args->ctx, user, password, out, errbuf,
				 errlen);
	if (r == 0) {
		h->log(args->ctx, DRP_PLUGIN_LOG_INFO, "user '%s'", user);
	}
	bearer_free_secret(h, user);
	bearer_free_secret(h, password);
	return r;
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
		  .config = basic_keys, .init = bearer_plugin_init,
		  .fini = bearer_plugin_fini,
		  .instance_new = basic_instance_new,
		  .instance_free = bearer_instance_free,
		  .decorate = bearer_hook_decorate,
		  .challenge = bearer_hook_challenge,
		  .cancel = bearer_hook_cancel);
