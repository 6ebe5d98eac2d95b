/* SPDX-License-Identifier: MIT */
/* Until the plugin layer is wired in, requests go upstream with the
 * client's own credentials, unchanged. */
#include "proxy/auth.h"

#include "util/mem.h"

struct drp_auth {
	int unused;
};

drp_auth_t *drp_auth_new(const drp_conf_t *conf, drp_conf_errors_t *errs)
{
	return DRP_NEW(drp_auth_t);
}

void drp_auth_free(drp_auth_t *a)
{
	free(a);
}

bool drp_auth_intercept(struct drp_conn *c, const drp_http_msg_t *req,
			const drp_route_t *route)
{
	return false;
}

void drp_auth_attach(struct drp_runtime *rt, struct drp_worker *w,
		     struct drp_conn *c, drp_fetch_t *f, const char *host,
		     uint16_t port, const char *repo)
{
}
