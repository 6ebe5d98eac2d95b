/* SPDX-License-Identifier: MIT */
#include "proxy/server.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "http/uri.h"
#include "plugin/select.h"
#include "auth/auth.h"
#include "util/log.h"
#include "util/mem.h"

static void runtime_free(drp_runtime_t *rt);

drp_runtime_t *drp_runtime_new(drp_conf_t *conf, char *err, size_t errlen)
{
	drp_runtime_t *rt = DRP_NEW(drp_runtime_t);
	atomic_init(&rt->refs, 1);
	rt->destroy = runtime_free;
	pthread_mutex_init(&rt->realm_lock, NULL);
	rt->conf = conf;
	rt->access_fd = -1;
	rt->upstream = drp_upstream_conf_new(conf, err, errlen);
	if (rt->upstream == NULL)
		goto fail;
	drp_conf_errors_t errs = {0};
	rt->auth = drp_auth_new(conf, &errs);
	if (rt->auth == NULL) {
		snprintf(err, errlen, "%s",
			 errs.n ? errs.msg[0] : "auth plugins failed");
		drp_conf_errors_free(&errs);
		goto fail;
	}
	drp_conf_errors_free(&errs);
	if (conf->access_log == NULL || strcmp(conf->access_log, "-") == 0) {
		rt->access_fd = 2;
	} else if (conf->access_log[0] != '\0') {
		rt->access_fd =
			open(conf->access_log,
			     O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
		if (rt->access_fd < 0) {
			snprintf(err, errlen, "access_log %s: %s",
				 conf->access_log, strerror(errno));
			goto fail;
		}
	}
	return rt;
fail:
	drp_runtime_unref(rt);
	return NULL;
}

int drp_runtime_reopen_logs(drp_runtime_t *rt)
{
	const drp_conf_t *conf = rt->conf;
	int r = drp_log_reopen(conf->error_log);
	if (r < 0)
		return r;
	if (rt->access_fd <= 2)
		return 0;
	int fd = open(conf->access_log,
		      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	/* Same descriptor number, new file: workers writing meanwhile
	 * never see a closed descriptor (see drp_log_reopen). */
	r = dup3(fd, rt->access_fd, O_CLOEXEC) < 0 ? -errno : 0;
	close(fd);
	return r;
}

static void runtime_free(drp_runtime_t *rt)
{
	if (rt->access_fd > 2)
		close(rt->access_fd);
	drp_upstream_conf_unref(rt->upstream);
	drp_leaf_unref(rt->mirror_leaf);
	if (rt->auth)
		drp_auth_free(rt->auth);
	drp_conf_free(rt->conf);
	for (unsigned i = 0; i < rt->n_realms; i++)
		free(rt->realms[i]);
	free(rt->realms);
	pthread_mutex_destroy(&rt->realm_lock);
	free(rt);
}

drp_runtime_t *drp_server_runtime_get(drp_server_t *srv)
{
	pthread_mutex_lock(&srv->rt_lock);
	drp_runtime_t *rt = drp_runtime_ref(srv->rt);
	pthread_mutex_unlock(&srv->rt_lock);
	return rt;
}

void drp_server_runtime_set(drp_server_t *srv, drp_runtime_t *rt)
{
	/* rt may be NULL at shutdown. */
	pthread_mutex_lock(&srv->rt_lock);
	drp_runtime_t *old = srv->rt;
	srv->rt = rt;
	pthread_mutex_unlock(&srv->rt_lock);
	drp_runtime_unref(old);
}

/* "host" matches port 443, "host:port" that port only. */
static bool entry_matches(const char *entry, size_t elen, const char *host,
			  uint16_t port)
{
	const char *colon = memrchr(entry, ':', elen);
	const char *rb = memchr(entry, ']', elen);
	if (colon && (rb == NULL || colon > rb)) {
		size_t hl = (size_t)(colon - entry);
		unsigned long p = strtoul(colon + 1, NULL, 10);
		if (entry[0] == '[' && rb) {
			return p == port &&
			       (size_t)(rb - entry - 1) == strlen(host) &&
			       strncmp(entry + 1, host, strlen(host)) == 0;
		}
		return p == port && hl == strlen(host) &&
		       strncmp(entry, host, hl) == 0;
	}
	if (port != 443)
		return false;
	if (elen > 2 && entry[0] == '*' && entry[1] == '.') {
		/* "*.pkg.dev": any subdomain, not the apex */
		size_t sl = elen - 1, hl = strlen(host);
		return hl > sl && strncmp(host + hl - sl, entry + 1, sl) == 0;
	}
	return elen == strlen(host) && strncmp(entry, host, elen) == 0;
}

bool drp_server_tunnel_only(const drp_conf_t *conf, const char *host,
			    uint16_t port)
{
	for (unsigned i = 0; i < conf->n_tunnel_only; i++)
		if (entry_matches(conf->tunnel_only[i],
				  strlen(conf->tunnel_only[i]), host, port))
			return true;
	return false;
}

/* Is this section's host part (name, len) Docker Hub under any of its
 * names? The same alias table as the section selection. */
static bool hub_section(const char *name, size_t len)
{
	char *host = drp_strndup(name, len);
	char *reg = drp_select_canonical_registry(host, 0);
	bool hub = strcmp(reg, "docker.io") == 0;
	free(reg);
	free(host);
	return hub;
}

bool drp_server_intercepts(const drp_conf_t *conf, const char *host,
			   uint16_t port)
{
	static const char *const always[] = {
		"registry-1.docker.io", "auth.docker.io", "index.docker.io"};
	bool hub = false;
	for (unsigned i = 0; i < conf->n_registries; i++)
		if (entry_matches(conf->registries[i],
				  strlen(conf->registries[i]), host, port))
			return true;
	/* A [registry "NAME"] section implies its host is intercepted. */
	for (unsigned i = 0; i < conf->n_registry; i++) {
		const char *name = conf->registry[i].name;
		size_t hl = strcspn(name, "/");
		if (hub_section(name, hl)) {
			hub = true; /* the always-list covers Docker Hub */
			continue;
		}
		if (entry_matches(name, hl, host, port))
			return true;
	}
	for (size_t i = 0; i < DRP_ARRAY_SIZE(always); i++) {
		if (port != 443 || strcmp(host, always[i]) != 0)
			continue;
		/* An operator's tunnel_only wins over the built-in list,
		 * except for the registry hosts of a docker.io section
		 * (auth.docker.io is only a realm). */
		if (hub && i != 1)
			return true;
		return !drp_server_tunnel_only(conf, host, port);
	}
	return false;
}

static bool realm_known(drp_runtime_t *rt, const char *hp)
{
	for (unsigned i = 0; i < rt->n_realms; i++)
		if (strcmp(rt->realms[i], hp) == 0)
			return true;
	return false;
}

static void host_port(char *out, size_t len, const char *host, uint16_t port)
{
	bool v6 = strchr(host, ':') != NULL;
	snprintf(out, len, "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "",
		 port);
}

bool drp_runtime_intercepts(drp_runtime_t *rt, const char *host, uint16_t port)
{
	if (drp_server_intercepts(rt->conf, host, port))
		return true;
	if (drp_server_tunnel_only(rt->conf, host, port))
		return false;
	char hp[DRP_HOST_MAX + 16];
	host_port(hp, sizeof(hp), host, port);
	pthread_mutex_lock(&rt->realm_lock);
	bool known = realm_known(rt, hp);
	pthread_mutex_unlock(&rt->realm_lock);
	return known;
}

bool drp_runtime_learn_realm(drp_runtime_t *rt, const char *registry,
			     const char *url)
{
	if (strncasecmp(url, "https://", 8) != 0)
		return false;
	const char *a = url + 8;
	size_t alen = strcspn(a, "/?#");
	char host[DRP_HOST_MAX + 1];
	uint16_t port = 0;
	if (alen == 0 || memchr(a, '@', alen) != NULL ||
	    drp_uri_parse_host_header(a, alen, host, &port) < 0)
		return false;
	if (port == 0)
		port = 443;
	const drp_conf_t *conf = rt->conf;
	bool port_ok = false;
	for (unsigned i = 0; i < conf->n_tunnel_ports; i++)
		port_ok = port_ok || conf->tunnel_ports[i] == port;
	if (!port_ok || drp_server_tunnel_only(conf, host, port) ||
	    drp_server_intercepts(conf, host, port))
		return false;
	char hp[DRP_HOST_MAX + 16];
	host_port(hp, sizeof(hp), host, port);
	bool added = false, full = false;
	pthread_mutex_lock(&rt->realm_lock);
	if (realm_known(rt, hp)) {
		/* nothing new */
	} else if (rt->n_realms >= DRP_RUNTIME_REALMS_MAX) {
		full = !rt->realms_full_logged;
		rt->realms_full_logged = true;
	} else {
		rt->realms = drp_realloc(rt->realms,
					 (rt->n_realms + 1) * sizeof(char *));
		rt->realms[rt->n_realms++] = drp_strdup(hp);
		added = true;
	}
	pthread_mutex_unlock(&rt->realm_lock);
	if (added)
		drp_log_notice(DRP_LOG_PROXY,
			       "learned token realm host %s from a challenge "
			       "of %s: CONNECTs to it are intercepted from now "
			       "on",
			       hp, registry);
	if (full)
		drp_log_warning(DRP_LOG_PROXY,
				"%d token realm hosts learned: %s and later "
				"ones are tunnelled",
				DRP_RUNTIME_REALMS_MAX, hp);
	return added;
}
