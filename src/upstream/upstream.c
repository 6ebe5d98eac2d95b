/* SPDX-License-Identifier: MIT */
#include "upstream/upstream.h"

#include <netinet/in.h>
#include <string.h>

#include "upstream/keepalive.h"
#include "util/addr.h"
#include "util/mem.h"

void drp_upstream_init(drp_upstream_t *up, struct ev_loop *loop,
		       double dns_timeout)
{
	up->loop = loop;
	up->dns = drp_dns_new(loop, dns_timeout);
	up->idle = NULL;
	up->n_idle = 0;
	up->draining = false;
}

void drp_upstream_drain(drp_upstream_t *up)
{
	up->draining = true;
	drp_keepalive_flush(up);
}

void drp_upstream_fini(drp_upstream_t *up)
{
	drp_keepalive_flush(up);
	if (up->dns)
		drp_dns_free(up->dns);
	up->dns = NULL;
}

drp_upstream_conf_t *drp_upstream_conf_new(const drp_conf_t *conf, char *err,
					   size_t errlen)
{
	drp_upstream_conf_t *ucf = DRP_NEW(drp_upstream_conf_t);
	atomic_init(&ucf->refs, 1);
	ucf->connect_timeout = conf->connect_timeout;
	ucf->handshake_timeout = conf->handshake_timeout;
	ucf->body_timeout = conf->body_timeout;
	ucf->addr_allowed = drp_upstream_addr_allowed;
	if (conf->n_resolve > 0) {
		ucf->resolve =
			drp_calloc(conf->n_resolve, sizeof(*ucf->resolve));
		for (unsigned i = 0; i < conf->n_resolve; i++) {
			ucf->resolve[i] = conf->resolve[i];
			ucf->resolve[i].host =
				drp_strdup(conf->resolve[i].host);
		}
		ucf->n_resolve = conf->n_resolve;
	}
	ucf->cred = drp_tls_client_cred_new(conf->upstream_ca_file,
					    conf->verify_upstream, err, errlen);
	if (ucf->cred == NULL) {
		drp_upstream_conf_unref(ucf);
		return NULL;
	}
	return ucf;
}

drp_upstream_conf_t *drp_upstream_conf_ref(drp_upstream_conf_t *ucf)
{
	atomic_fetch_add(&ucf->refs, 1);
	return ucf;
}

void drp_upstream_conf_unref(drp_upstream_conf_t *ucf)
{
	if (ucf == NULL || atomic_fetch_sub(&ucf->refs, 1) != 1)
		return;
	drp_tls_client_cred_free(ucf->cred);
	for (unsigned i = 0; i < ucf->n_resolve; i++)
		free(ucf->resolve[i].host);
	free(ucf->resolve);
	free(ucf);
}

bool drp_upstream_addr_allowed(const struct sockaddr *sa)
{
	return !drp_addr_is_forbidden(sa) && !drp_addr_is_local(sa);
}

bool drp_upstream_resolve_override(const drp_upstream_conf_t *ucf,
				   const char *host, uint16_t port,
				   struct sockaddr_storage *ss, unsigned *len)
{
	for (unsigned i = 0; i < ucf->n_resolve; i++) {
		const drp_conf_resolve_t *r = &ucf->resolve[i];
		if (strcmp(r->host, host) != 0)
			continue;
		memcpy(ss, &r->addr, sizeof(*ss));
		*len = r->addrlen;
		if (ss->ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)ss;
			if (in->sin_port == 0)
				in->sin_port = htons(port);
		} else if (ss->ss_family == AF_INET6) {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
			if (in6->sin6_port == 0)
				in6->sin6_port = htons(port);
		}
		return true;
	}
	return false;
}
