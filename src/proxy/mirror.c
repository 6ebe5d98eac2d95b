/* SPDX-License-Identifier: MIT */
#include "proxy/mirror.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "conf/conf.h"
#include "plugin/select.h"
#include "tls/ca.h"
#include "util/buf.h"
#include "util/mem.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode s[0..n) into out (at most outlen - 1 bytes). */
static int unescape(const char *s, size_t n, char *out, size_t outlen)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			if (i + 2 >= n)
				return -EINVAL;
			int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		if (c == '\0' || o + 1 >= outlen)
			return -EINVAL;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

/* "host[:port]" as a registry: canonical name, host and port to
 * contact. */
static int set_registry(const char *name, size_t n, drp_mirror_target_t *out)
{
	char buf[DRP_HOST_MAX + 8];
	if (unescape(name, n, buf, sizeof(buf)) < 0)
		return -EINVAL;
	uint16_t port = 0;
	if (drp_uri_parse_host_header(buf, strlen(buf), out->host, &port) < 0)
		return -EINVAL;
	if (port == 0)
		port = 443;
	char *reg = drp_select_canonical_registry(out->host, port);
	snprintf(out->registry, sizeof(out->registry), "%s", reg);
	free(reg);
	/* Docker Hub under any of its names is contacted as one host. */
	const char *up = drp_select_upstream_host(out->registry);
	if (up != out->registry)
		snprintf(out->host, sizeof(out->host), "%s", up);
	out->port = port;
	return 0;
}

/* The query without its ns parameter(s), into b ("" if nothing is
 * left); the last ns value in *ns, *ns_len (NULL if none). */
static void split_query(const char *q, size_t n, drp_buf_t *b, const char **ns,
			size_t *ns_len)
{
	*ns = NULL;
	*ns_len = 0;
	size_t i = 0;
	while (i < n) {
		const char *p = q + i;
		const char *amp = memchr(p, '&', n - i);
		size_t plen = amp ? (size_t)(amp - p) : n - i;
		if (plen >= 3 && memcmp(p, "ns=", 3) == 0) {
			*ns = p + 3;
			*ns_len = plen - 3;
		} else if (plen > 0) {
			drp_buf_append(b, drp_buf_pending(b) ? "&" : "?", 1);
			drp_buf_append(b, p, plen);
		}
		i += plen + 1;
	}
}

int drp_mirror_map(const char *target, size_t len, drp_mirror_target_t *out)
{
	*out = (drp_mirror_target_t){0};
	size_t plen = drp_uri_path_len(target, len);
	const char *query =
		plen < len && target[plen] == '?' ? target + plen + 1 : NULL;
	size_t qlen = query ? len - plen - 1 : 0;
	static const char realm[] = DRP_AUTH_REALM_PATH;
	const char *path = target;
	if (plen == sizeof(realm) - 1 && memcmp(path, realm, plen) == 0) {
		out->realm = true;
	} else if (!((plen == 3 && memcmp(path, "/v2", 3) == 0) ||
		     (plen >= 4 && memcmp(path, "/v2/", 4) == 0))) {
		return -ENOENT;
	}
	drp_buf_t q = {0};
	const char *ns;
	size_t ns_len;
	split_query(query, qlen, &q, &ns, &ns_len);
	const char *rest = path + (out->realm ? plen : 3);
	size_t rest_len = out->realm ? 0 : plen - 3; /* after "/v2" */
	int r = 0;
	if (ns != NULL) {
		out->by = DRP_MIRROR_BY_NS;
		r = set_registry(ns, ns_len, out);
	} else if (!out->realm && rest_len > 1) {
		/* rest = "/first/..." */
		const char *first = rest + 1;
		const char *slash = memchr(first, '/', rest_len - 1);
		size_t flen = slash ? (size_t)(slash - first) : rest_len - 1;
		bool named = memchr(first, '.', flen) != NULL ||
			     memchr(first, ':', flen) != NULL ||
			     (flen == 9 && memcmp(first, "localhost", 9) == 0);
		if (named) {
			out->by = DRP_MIRROR_BY_PREFIX;
			r = set_registry(first, flen, out);
			rest = first + flen;
			rest_len -= flen + 1;
		}
	}
	if (r == 0 && out->by == 0) {
		out->by = DRP_MIRROR_BY_DEFAULT;
		r = set_registry("docker.io", 9, out);
	}
	if (r < 0) {
		drp_buf_free(&q);
		*out = (drp_mirror_target_t){0};
		return -EINVAL;
	}
	drp_buf_t t = {0};
	if (out->realm) {
		drp_buf_append(&t, realm, sizeof(realm) - 1);
	} else {
		drp_buf_append(&t, "/v2", 3);
		drp_buf_append(&t, rest_len ? rest : "/",
			       rest_len ? rest_len : 1);
	}
	drp_buf_append(&t, drp_buf_head(&q), drp_buf_pending(&q));
	drp_buf_free(&q);
	out->target_len = drp_buf_pending(&t);
	out->target = drp_strndup(drp_buf_head(&t), out->target_len);
	drp_buf_free(&t);
	return 0;
}

void drp_mirror_target_free(drp_mirror_target_t *t)
{
	if (t == NULL)
		return;
	free(t->target);
	t->target = NULL;
}

int drp_mirror_tls_leaf(const drp_conf_t *conf, drp_forge_t *forge,
			drp_leaf_t **out, char *err, size_t errlen)
{
	*out = NULL;
	if (conf->n_mirror_tls_listen == 0)
		return 0;
	if (conf->mirror_tls_cert != NULL) {
		*out = drp_leaf_load(conf->mirror_tls_cert,
				     conf->mirror_tls_key, err, errlen);
		return *out ? 0 : -EINVAL;
	}
	*out = drp_forge_names(forge, (const char *const *)conf->mirror_names,
			       conf->n_mirror_names);
	if (*out == NULL) {
		snprintf(err, errlen,
			 "cannot make the mirror's certificate for "
			 "mirror_names");
		return -EINVAL;
	}
	return 0;
}
