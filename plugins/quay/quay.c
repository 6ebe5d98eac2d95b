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

#include "bearer.h"

typedef struct plugin {
	const drp_host_api_t *host;
} plugin_t;

typedef struct inst {
	bearer_t bearer;
} inst_t;

static int quay_init(const drp_host_api_t *host, drp_host_ctx_t *ctx,
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

static void quay_fini(void *pctx)
{
	plugin_t *p = pctx;
	p->host->free(p);
}

static int quay_instance_new(void *pctx, const drp_instance_args_t *args,
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
		const char *kind = user == NULL	       ? "anonymous tokens"
				   : strchr(user, '+') ? "robot account"
						       : "account";
		h->log(args->ctx, DRP_PLUGIN_LOG_INFO, "%s%s%s%s", kind,
		       user ? " '" : "", user ? user : "", user ? "'" : "");
		*out = i;
	}
	bearer_free_secret(h, user);
	bearer_free_secret(h, password);
	return r;
}

static void quay_instance_free(void *inst)
{
	inst_t *i = inst;
	const drp_host_api_t *h = i->bearer.host;
	bearer_fini(&i->bearer);
	h->free(i);
}

static int quay_decorate(void *inst, drp_auth_req_t *req)
{
	return bearer_decorate(&((inst_t *)inst)->bearer, req);
}

static int quay_challenge(void *inst, drp_auth_req_t *req,
			  const char *www_authenticate)
{
	return bearer_challenge(&((inst_t *)inst)->bearer, req,
				www_authenticate);
}

static void quay_cancel(void *inst, drp_auth_req_t *req)
{
	bearer_cancel(&((inst_t *)inst)->bearer, req);
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
		  .config = quay_keys, .init = quay_init, .fini = quay_fini,
		  .instance_new = quay_instance_new,
		  .instance_free = quay_instance_free,
		  .decorate = quay_decorate, .challenge = quay_challenge,
		  .cancel = quay_cancel);
