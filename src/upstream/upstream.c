/* SPDX-License-Identifier: MIT */
#include "upstream/upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "plugin/select.h"
#include "upstream/keepalive.h"
#include "util/addr.h"
#include "util/base64.h"
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

/* A relative path is relative to the configuration file. */
static char *conf_relative(const drp_conf_t *conf, const char *path)
{
	const char *slash = conf->path ? strrchr(conf->path, '/') : NULL;
	if (path[0] == '/' || slash == NULL)
		return drp_strdup(path);
	size_t dl = (size_t)(slash - conf->path);
	size_t n = dl + 1 + strlen(path) + 1;
	char *r = drp_malloc(n);
	snprintf(r, n, "%.*s/%s", (int)dl, conf->path, path);
	return r;
}

/* "Basic base64(user:password)", the password from the file (one
 * trailing newline dropped). NULL and err filled on failure. */
static char *parent_auth(const drp_conf_t *conf, char *err, size_t errlen)
{
	char *path = conf_relative(conf, conf->upstream_proxy_password_file);
	char pw[1024];
	size_t n = 0;
	FILE *f = fopen(path, "re");
	if (f != NULL) {
		n = fread(pw, 1, sizeof(pw), f);
		fclose(f);
	}
	if (f == NULL || n == sizeof(pw)) {
		snprintf(err, errlen, "upstream_proxy_password_file %s: %s",
			 path, f == NULL ? strerror(errno) : "too long");
		free(path);
		explicit_bzero(pw, sizeof(pw));
		return NULL;
	}
	free(path);
	if (n > 0 && pw[n - 1] == '\n')
		n--;
	if (n > 0 && pw[n - 1] == '\r')
		n--;
	size_t ul = strlen(conf->upstream_proxy_user);
	size_t plain_len = ul + 1 + n;
	char *plain = drp_malloc(plain_len + 1);
	memcpy(plain, conf->upstream_proxy_user, ul);
	plain[ul] = ':';
	memcpy(plain + ul + 1, pw, n);
	explicit_bzero(pw, sizeof(pw));
	size_t out_len = DRP_BASE64_ENCODED_LEN(plain_len) + 7;
	char *out = drp_malloc(out_len);
	memcpy(out, "Basic ", 6);
	ssize_t r = drp_base64_encode(plain, plain_len, out + 6, out_len - 6);
	explicit_bzero(plain, plain_len + 1);
	free(plain);
	if (r < 0) {
		free(out);
		snprintf(err, errlen,
			 "upstream_proxy: cannot encode the "
			 "credentials");
		return NULL;
	}
	return out;
}

/* One registries entry or [registry] section name into the map. */
static void regmap_add_name(drp_metrics_regmap_t *m, const char *name)
{
	drp_select_name_t n;
	if (drp_select_parse_name(name, &n, NULL) < 0)
		return;
	char *host = n.host;
	size_t hl = strlen(host);
	if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
		host[hl - 1] = '\0'; /* requests name IPv6 hosts bare */
		host++;
	}
	drp_metrics_regmap_add(m, host, n.port, n.wildcard, n.registry);
	drp_select_name_free(&n);
}

/* The configured registries, for the registry label of the metrics:
 * Docker Hub under its names (always intercepted), the registries list
 * and the hosts of [registry] sections. */
static drp_metrics_regmap_t *regmap_new(const drp_conf_t *conf)
{
	static const char *const hub[] = {"docker.io", "registry-1.docker.io",
					  "index.docker.io"};
	drp_metrics_regmap_t *m = drp_metrics_regmap_new();
	for (size_t i = 0; i < DRP_ARRAY_SIZE(hub); i++)
		drp_metrics_regmap_add(m, hub[i], 443, false, "docker.io");
	for (unsigned i = 0; i < conf->n_registries; i++)
		regmap_add_name(m, conf->registries[i]);
	for (unsigned i = 0; i < conf->n_registry; i++)
		regmap_add_name(m, conf->registry[i].name);
	return m;
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
	ucf->regmap = regmap_new(conf);
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
	if (conf->upstream_proxy_host != NULL) {
		ucf->parent_host = drp_strdup(conf->upstream_proxy_host);
		ucf->parent_port = conf->upstream_proxy_port;
		if (conf->upstream_proxy_user != NULL &&
		    conf->upstream_proxy_password_file != NULL) {
			ucf->parent_auth = parent_auth(conf, err, errlen);
			if (ucf->parent_auth == NULL) {
				drp_upstream_conf_unref(ucf);
				return NULL;
			}
		}
		ucf->n_no_proxy = conf->n_no_upstream_proxy;
		ucf->no_proxy = drp_calloc(ucf->n_no_proxy + 1, sizeof(char *));
		for (unsigned i = 0; i < ucf->n_no_proxy; i++)
			ucf->no_proxy[i] =
				drp_strdup(conf->no_upstream_proxy[i]);
		ucf->n_no_proxy_cidr = conf->n_no_upstream_proxy_cidr;
		ucf->no_proxy_cidr = drp_calloc(ucf->n_no_proxy_cidr + 1,
						sizeof(drp_cidr_t));
		/* Without no_upstream_proxy the configuration has no array. */
		if (ucf->n_no_proxy_cidr > 0)
			memcpy(ucf->no_proxy_cidr, conf->no_upstream_proxy_cidr,
			       ucf->n_no_proxy_cidr * sizeof(drp_cidr_t));
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
	drp_metrics_regmap_free(ucf->regmap);
	for (unsigned i = 0; i < ucf->n_resolve; i++)
		free(ucf->resolve[i].host);
	free(ucf->resolve);
	free(ucf->parent_host);
	if (ucf->parent_auth != NULL) {
		explicit_bzero(ucf->parent_auth, strlen(ucf->parent_auth));
		free(ucf->parent_auth);
	}
	for (unsigned i = 0; i < ucf->n_no_proxy; i++)
		free(ucf->no_proxy[i]);
	free(ucf->no_proxy);
	free(ucf->no_proxy_cidr);
	free(ucf);
}

bool drp_upstream_addr_allowed(const struct sockaddr *sa)
{
	return !drp_addr_is_forbidden(sa) && !drp_addr_is_local(sa);
}

unsigned drp_upstream_resolve_override(const drp_upstream_conf_t *ucf,
				       const char *host, uint16_t port,
				       struct sockaddr_storage *ss,
				       unsigned *len, unsigned max)
{
	unsigned n = 0;
	for (unsigned i = 0; i < ucf->n_resolve && n < max; i++) {
		const drp_conf_resolve_t *r = &ucf->resolve[i];
		if (strcmp(r->host, host) != 0)
			continue;
		memcpy(&ss[n], &r->addr, sizeof(*ss));
		len[n] = r->addrlen;
		if (ss[n].ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss[n];
			if (in->sin_port == 0)
				in->sin_port = htons(port);
		} else if (ss[n].ss_family == AF_INET6) {
			struct sockaddr_in6 *in6 =
				(struct sockaddr_in6 *)&ss[n];
			if (in6->sin6_port == 0)
				in6->sin6_port = htons(port);
		}
		n++;
	}
	return n;
}

bool drp_upstream_via_parent(const drp_upstream_conf_t *ucf, const char *host)
{
	if (ucf->parent_host == NULL)
		return false;
	for (unsigned i = 0; i < ucf->n_resolve; i++)
		if (strcmp(ucf->resolve[i].host, host) == 0)
			return false;
	size_t hl = strlen(host);
	for (unsigned i = 0; i < ucf->n_no_proxy; i++) {
		const char *e = ucf->no_proxy[i];
		size_t el = strlen(e);
		if (e[0] != '.') {
			if (strcmp(e, host) == 0)
				return false;
			continue;
		}
		/* ".example.com": its subdomains and example.com itself */
		if ((hl > el && strcmp(host + hl - el, e) == 0) ||
		    strcmp(host, e + 1) == 0)
			return false;
	}
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	if (ss.ss_family != 0 &&
	    drp_cidr_list_match(ucf->no_proxy_cidr, ucf->n_no_proxy_cidr,
				(const struct sockaddr *)&ss))
		return false;
	return true;
}
