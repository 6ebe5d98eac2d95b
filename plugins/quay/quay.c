/* SPDX-License-Identifier: MIT */
/*
 * quay: quay.io and Red Hat Quay installations. The registry's challenge
 * names the token realm (https://quay.io/v2/auth on quay.io); tokens are
 * fetched with a robot account ("org+robot" and its token), a user and
 * password, or "$oauthtoken" and an application token, or anonymously.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <drp/plugin.h>

#include "bearer_plugin.h"

static int quay_instance_new(void *pctx, const drp_instance_args_t *args,
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
		const char *kind = user == NULL	       ? "anonymous tokens"
				   : strchr(user, '+') ? "robot account"
						       : "account";
		h->log(args->ctx, DRP_PLUGIN_LOG_INFO, "%s%s%s%s", kind,
		       user ? " '" : "", user ? user : "", user ? "'" : "");
	}
	bearer_free_secret(h, user);
	bearer_free_secret(h, password);
	return r;
}

static const drp_plugin_key_t quay_keys[] = {
	{.key = "username",
	 .type = DRP_KEY_STRING,
	 .help = "robot account (org+name), user, or $oauthtoken"},
	{.key = "password",
	 .type = DRP_KEY_STRING,
	 .flags = DRP_KEY_SECRET | DRP_KEY_FILE,
	 .help = "robot token, password or application token "
		 "(or password_file)"},
	{.key = NULL},
};

DRP_PLUGIN_DEFINE(.name = "quay", .version = "1.0",
		  .description = "quay.io / Red Hat Quay tokens, robot "
				 "accounts",
		  .config = quay_keys, .init = bearer_plugin_init,
		  .fini = bearer_plugin_fini, .instance_new = quay_instance_new,
		  .instance_free = bearer_instance_free,
		  .decorate = bearer_hook_decorate,
		  .challenge = bearer_hook_challenge,
		  .cancel = bearer_hook_cancel);
