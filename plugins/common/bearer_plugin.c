/* SPDX-License-Identifier: MIT */
#include "bearer_plugin.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int bearer_read_credentials(const drp_host_api_t *host, drp_host_ctx_t *ctx,
			    char **user, char **password)
{
	*user = NULL;
	*password = NULL;
	const char *u = host->config_get(ctx, "username");
	int r = host->config_secret(ctx, "password", password, NULL);
	if (r < 0 && r != -ENOENT)
		return r;
	if (u == NULL && *password == NULL)
		return 0;
	if (u == NULL) {
		host->config_error(ctx, "password",
				   "set together with username");
		bearer_free_secret(host, *password);
		*password = NULL;
		return -EINVAL;
	}
	if (*password == NULL) {
		host->config_error(ctx, "username",
				   "needs password or password_file");
		return -EINVAL;
	}
	size_t n = strlen(u) + 1;
	*user = host->alloc(n);
	if (*user == NULL) {
		bearer_free_secret(host, *password);
		*password = NULL;
		return -ENOMEM;
	}
	memcpy(*user, u, n);
	return 0;
}

typedef struct bearer_plugin {
	const drp_host_api_t *host;
} bearer_plugin_t;

int bearer_plugin_init(const drp_host_api_t *host, drp_host_ctx_t *ctx,
		       void **pctx)
{
	(void)ctx;
	bearer_plugin_t *p = host->alloc(sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->host = host;
	*pctx = p;
	return 0;
}

void bearer_plugin_fini(void *pctx)
{
	bearer_plugin_t *p = pctx;
	p->host->free(p);
}

const drp_host_api_t *bearer_plugin_host(void *pctx)
{
	return ((bearer_plugin_t *)pctx)->host;
}

int bearer_instance_make(const drp_host_api_t *host, drp_host_ctx_t *ctx,
			 const char *user, const char *password, void **out,
			 char *errbuf, size_t errlen)
{
	bearer_t *b = host->alloc(sizeof(*b));
	if (b == NULL || bearer_init(b, host, ctx, user, password) < 0) {
		host->free(b);
		snprintf(errbuf, errlen, "out of memory");
		return -ENOMEM;
	}
	*out = b;
	return 0;
}

void bearer_credentials_error(int r, char *errbuf, size_t errlen)
{
	snprintf(errbuf, errlen, "%s",
		 r == -EIO ? "the password file cannot be read"
			   : "incomplete credentials");
}

void bearer_instance_free(void *inst)
{
	bearer_t *b = inst;
	const drp_host_api_t *h = b->host;
	bearer_fini(b);
	h->free(b);
}

int bearer_hook_decorate(void *inst, drp_auth_req_t *req)
{
	return bearer_decorate(inst, req);
}

int bearer_hook_challenge(void *inst, drp_auth_req_t *req,
			  const char *www_authenticate)
{
	return bearer_challenge(inst, req, www_authenticate);
}

void bearer_hook_cancel(void *inst, drp_auth_req_t *req)
{
	bearer_cancel(inst, req);
}
