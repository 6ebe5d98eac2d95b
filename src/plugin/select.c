/* SPDX-License-Identifier: MIT */
#include "plugin/select.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

static const char *const docker_aliases[] = {
	"docker.io",
	"registry-1.docker.io",
	"index.docker.io",
};
#define DOCKER_HUB	    "docker.io"
#define DOCKER_HUB_UPSTREAM "registry-1.docker.io"

struct drp_select {
	drp_select_name_t *v;
	unsigned *idx;
	unsigned n;
};

static bool is_docker_alias(const char *host)
{
	for (size_t i = 0; i < DRP_ARRAY_SIZE(docker_aliases); i++)
		if (strcmp(host, docker_aliases[i]) == 0)
			return true;
	return false;
}

static char *lower_dup(const char *s, size_t n)
{
	char *r = drp_strndup(s, n);
	for (char *p = r; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return r;
}

static bool valid_dns_name(const char *h)
{
	size_t total = strlen(h);
	if (total == 0 || total > 253)
		return false;
	const char *label = h;
	for (;;) {
		const char *dot = strchr(label, '.');
		size_t n = dot ? (size_t)(dot - label) : strlen(label);
		if (n == 0 || n > 63 || label[0] == '-' || label[n - 1] == '-')
			return false;
		for (size_t i = 0; i < n; i++)
			if (!isalnum((unsigned char)label[i]) &&
			    label[i] != '-')
				return false;
		if (dot == NULL)
			return true;
		label = dot + 1;
	}
}

static bool valid_v6_literal(const char *h)
{
	size_t n = strlen(h);
	if (n < 4 || h[0] != '[' || h[n - 1] != ']')
		return false;
	for (size_t i = 1; i < n - 1; i++)
		if (!isxdigit((unsigned char)h[i]) && h[i] != ':' &&
		    h[i] != '.')
			return false;
	return true;
}

static char *make_registry(const char *host, uint16_t port, bool wildcard)
{
	char buf[300];
	if (!wildcard && port == DRP_SELECT_DEFAULT_PORT &&
	    is_docker_alias(host))
		return drp_strdup(DOCKER_HUB);
	if (port == DRP_SELECT_DEFAULT_PORT)
		snprintf(buf, sizeof(buf), "%s%s", wildcard ? "*." : "", host);
	else
		snprintf(buf, sizeof(buf), "%s%s:%u", wildcard ? "*." : "",
			 host, port);
	return drp_strdup(buf);
}

void drp_select_name_free(drp_select_name_t *n)
{
	free(n->registry);
	free(n->host);
	free(n->prefix);
	*n = (drp_select_name_t){0};
}

static int parse_port(const char *s, uint16_t *port)
{
	if (*s == '\0' || strlen(s) > 5)
		return -EINVAL;
	unsigned long v = 0;
	for (const char *p = s; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v == 0 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

static int parse_prefix(const char *p, char **out, const char **why)
{
	size_t n = strlen(p);
	while (n > 0 && p[n - 1] == '/')
		n--; /* "docker.io/acme/" means "docker.io/acme" */
	char *prefix = lower_dup(p, n);
	for (size_t i = 0; i < n; i++) {
		char c = prefix[i];
		bool boundary = i == 0 || prefix[i - 1] == '/';
		if (c == '/' && boundary) {
			*why = "empty repository component";
			goto bad;
		}
		if (c != '/' && !isalnum((unsigned char)c) && c != '.' &&
		    c != '_' && c != '-') {
			*why = "bad character in repository prefix";
			goto bad;
		}
	}
	*out = prefix;
	return 0;
bad:
	free(prefix);
	return -EINVAL;
}

int drp_select_parse_name(const char *name, drp_select_name_t *out,
			  const char **why)
{
	const char *dummy;
	if (why == NULL)
		why = &dummy;
	*out = (drp_select_name_t){.port = DRP_SELECT_DEFAULT_PORT};
	const char *slash = strchr(name, '/');
	size_t hlen = slash ? (size_t)(slash - name) : strlen(name);
	if (hlen == 0) {
		*why = "empty registry host";
		return -EINVAL;
	}
	char *hostport = lower_dup(name, hlen);
	char *host = hostport;
	char *colon = host[0] == '[' ? strstr(host, "]:") : strchr(host, ':');
	if (colon != NULL) {
		if (host[0] == '[')
			colon++;
		*colon = '\0';
		if (parse_port(colon + 1, &out->port) < 0) {
			*why = "bad port";
			goto bad;
		}
	}
	if (strncmp(host, "*.", 2) == 0) {
		out->wildcard = true;
		host += 2;
	}
	size_t l = strlen(host);
	if (l > 0 && host[l - 1] == '.' && !out->wildcard)
		host[l - 1] = '\0'; /* "docker.io." is docker.io */
	if (strchr(host, '*') != NULL) {
		*why = "'*' is allowed only as the whole first label";
		goto bad;
	}
	if (!valid_dns_name(host) &&
	    (out->wildcard || !valid_v6_literal(host))) {
		*why = "bad registry host name";
		goto bad;
	}
	out->host = drp_strdup(host);
	out->registry = make_registry(host, out->port, out->wildcard);
	if (strcmp(out->registry, DOCKER_HUB) == 0) {
		free(out->host);
		out->host = drp_strdup(DOCKER_HUB);
	}
	free(hostport);
	if (parse_prefix(slash ? slash + 1 : "", &out->prefix, why) < 0) {
		drp_select_name_free(out);
		return -EINVAL;
	}
	return 0;
bad:
	free(hostport);
	drp_select_name_free(out);
	return -EINVAL;
}

/* Lower case, no trailing dot, IPv6 literals in brackets (as in names). */
static char *norm_host(const char *host)
{
	size_t l = strlen(host);
	if (strchr(host, ':') != NULL && host[0] != '[') {
		char *r = drp_malloc(l + 3);
		snprintf(r, l + 3, "[%s]", host);
		for (char *p = r; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		return r;
	}
	char *h = lower_dup(host, l);
	if (l > 1 && h[l - 1] == '.')
		h[l - 1] = '\0';
	return h;
}

char *drp_select_canonical_registry(const char *host, uint16_t port)
{
	char *h = norm_host(host);
	char *r =
		make_registry(h, port ? port : DRP_SELECT_DEFAULT_PORT, false);
	free(h);
	return r;
}

const char *drp_select_upstream_host(const char *registry)
{
	return strcmp(registry, DOCKER_HUB) == 0 ? DOCKER_HUB_UPSTREAM
						 : registry;
}

char *drp_select_canonical_repo(const char *registry, const char *repo)
{
	if (strcmp(registry, DOCKER_HUB) == 0 && *repo != '\0' &&
	    strchr(repo, '/') == NULL) {
		size_t n = strlen(repo) + sizeof("library/");
		char *r = drp_malloc(n);
		snprintf(r, n, "library/%s", repo);
		return r;
	}
	return drp_strdup(repo);
}

drp_select_t *drp_select_new(void)
{
	return DRP_NEW(drp_select_t);
}

void drp_select_free(drp_select_t *s)
{
	if (s == NULL)
		return;
	for (unsigned i = 0; i < s->n; i++)
		drp_select_name_free(&s->v[i]);
	free(s->v);
	free(s->idx);
	free(s);
}

int drp_select_add(drp_select_t *s, const char *name, unsigned idx,
		   const char **why, unsigned *dup)
{
	drp_select_name_t n;
	int r = drp_select_parse_name(name, &n, why);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < s->n; i++) {
		if (strcmp(s->v[i].registry, n.registry) == 0 &&
		    strcmp(s->v[i].prefix, n.prefix) == 0) {
			if (dup != NULL)
				*dup = s->idx[i];
			if (why != NULL)
				*why = "same registry and prefix as an earlier "
				       "section";
			drp_select_name_free(&n);
			return -EEXIST;
		}
	}
	s->v = drp_realloc(s->v, (s->n + 1) * sizeof(*s->v));
	s->idx = drp_realloc(s->idx, (s->n + 1) * sizeof(*s->idx));
	s->v[s->n] = n;
	s->idx[s->n] = idx;
	s->n++;
	return 0;
}

/* 0: no match; otherwise larger is more specific (see select.h). */
static size_t host_score(const drp_select_name_t *e, const char *registry,
			 const char *host, uint16_t port)
{
	if (!e->wildcard)
		return strcmp(e->registry, registry) == 0 ? (size_t)-1 : 0;
	if (e->port != port)
		return 0;
	size_t hl = strlen(host), dl = strlen(e->host);
	if (hl <= dl + 1 || host[hl - dl - 1] != '.' ||
	    strcmp(host + hl - dl, e->host) != 0)
		return 0;
	return dl + 1;
}

static bool prefix_matches(const char *prefix, const char *repo)
{
	if (*prefix == '\0')
		return true;
	if (repo == NULL)
		return false;
	size_t n = strlen(prefix);
	return strncmp(repo, prefix, n) == 0 &&
	       (repo[n] == '\0' || repo[n] == '/');
}

typedef struct match {
	unsigned idx;
	size_t host, prefix; /* scores: larger is more specific */
} match_t;

static bool ranks_before(const match_t *a, const match_t *b)
{
	return a->host > b->host ||
	       (a->host == b->host && a->prefix > b->prefix);
}

/* Every matching section, most specific first, into out (at most max);
 * returns how many match (may exceed max). One ranking for the plugin,
 * the policy and every per-registry setting. */
static unsigned rank(const drp_select_t *s, const char *host, uint16_t port,
		     const char *repo, bool any_prefix, match_t *out,
		     unsigned max)
{
	if (port == 0)
		port = DRP_SELECT_DEFAULT_PORT;
	char *registry = drp_select_canonical_registry(host, port);
	char *h = norm_host(host);
	char *crepo = repo ? drp_select_canonical_repo(registry, repo) : NULL;

	unsigned n = 0;
	for (unsigned i = 0; i < s->n; i++) {
		const drp_select_name_t *e = &s->v[i];
		size_t hs = host_score(e, registry, h, port);
		if (hs == 0)
			continue;
		if (!any_prefix && !prefix_matches(e->prefix, crepo))
			continue;
		match_t m = {.idx = s->idx[i],
			     .host = hs,
			     .prefix = strlen(e->prefix)};
		/* Insertion: ties (none between distinct names) keep file
		 * order. */
		unsigned at = n < max ? n : max;
		while (at > 0 && ranks_before(&m, &out[at - 1])) {
			if (at < max)
				out[at] = out[at - 1];
			at--;
		}
		if (at < max)
			out[at] = m;
		n++;
	}
	free(crepo);
	free(h);
	free(registry);
	return n;
}

unsigned drp_select_chain(const drp_select_t *s, const char *host,
			  uint16_t port, const char *repo, unsigned *idx,
			  unsigned max)
{
	match_t m[DRP_SELECT_CHAIN_MAX];
	if (max > DRP_SELECT_CHAIN_MAX)
		max = DRP_SELECT_CHAIN_MAX;
	unsigned n = rank(s, host, port, repo, false, m, max);
	for (unsigned i = 0; i < n && i < max; i++)
		idx[i] = m[i].idx;
	return n < max ? n : max;
}

int drp_select_find(const drp_select_t *s, const char *host, uint16_t port,
		    const char *repo)
{
	match_t m;
	return rank(s, host, port, repo, false, &m, 1) > 0 ? (int)m.idx
							   : -ENOENT;
}

bool drp_select_has_host(const drp_select_t *s, const char *host, uint16_t port)
{
	match_t m;
	return rank(s, host, port, NULL, true, &m, 1) > 0;
}
