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

#include "bearer_plugin.h"

#define GCR_USER "_json_key"

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
	const drp_host_api_t *h = bearer_plugin_host(pctx);
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
	r = bearer_instance_make(h, args->ctx, GCR_USER, key, out, errbuf,
				 errlen);
	/* Refusals name the service account, not the fixed "_json_key". */
	if (r == 0 && bearer_set_who(*out, "service account", email) < 0) {
		bearer_instance_free(*out);
		snprintf(errbuf, errlen, "out of memory");
		r = -ENOMEM;
	}
	if (r == 0) {
		h->log(args->ctx, DRP_PLUGIN_LOG_INFO, "service account '%s'",
		       email);
	}
	bearer_free_secret(h, key);
	return r;
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
		  .config = gcr_keys, .init = bearer_plugin_init,
		  .fini = bearer_plugin_fini, .instance_new = gcr_instance_new,
		  .instance_free = bearer_instance_free,
		  .decorate = bearer_hook_decorate,
		  .challenge = bearer_hook_challenge,
		  .cancel = bearer_hook_cancel);
