/* SPDX-License-Identifier: MIT */
/* A configuration's life: the embedded defaults, loading a file (ini.c
 * splits it, schema.c applies it over the defaults), freeing, and the
 * one query made of it per request (drp_conf_regset_resolve). The calls
 * go one way: this file calls the schema, never the reverse. */
#include "conf/conf.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/ini.h"
#include "conf/schema.h"
#include "util/log.h"
#include "util/mem.h"

/* Syntax of the line number in a message. */
static bool digit(char c)
{
	return c >= '0' && c <= '9';
}

/* ---- defaults ---- */

/*
 * Built field by field rather than by parsing drp_conf_defaults_text(),
 * so that the test comparing the two catches a drift of either.
 */
static const char *const default_registries[] = {"quay.io", "gcr.io", "ghcr.io",
						 "registry.k8s.io"};
static const char *const default_allow[] = {
	"127.0.0.0/8",	 "::1/128",	   "10.0.0.0/8",
	"172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
};

drp_conf_t *drp_conf_defaults(void)
{
	drp_conf_t *c = DRP_NEW(drp_conf_t);

	c->n_listen = 1;
	c->listen = drp_calloc(1, sizeof(*c->listen));
	c->listen[0].text = drp_strdup("[::]:3128");
	drp_require(drp_sockaddr_parse(c->listen[0].text, &c->listen[0].addr,
				       &c->listen[0].addrlen) == 0);
	c->workers = 0;
	c->n_registries = DRP_ARRAY_SIZE(default_registries);
	c->registries = drp_calloc(c->n_registries, sizeof(*c->registries));
	for (unsigned i = 0; i < c->n_registries; i++)
		c->registries[i] = drp_strdup(default_registries[i]);
	c->n_allow = DRP_ARRAY_SIZE(default_allow);
	c->allow = drp_calloc(c->n_allow, sizeof(*c->allow));
	for (unsigned i = 0; i < c->n_allow; i++)
		drp_require(drp_cidr_parse(default_allow[i], &c->allow[i]) ==
			    0);
	c->n_admin_allow = DRP_ARRAY_SIZE(default_allow);
	c->admin_allow = drp_calloc(c->n_admin_allow, sizeof(*c->admin_allow));
	for (unsigned i = 0; i < c->n_admin_allow; i++)
		drp_require(drp_cidr_parse(default_allow[i],
					   &c->admin_allow[i]) == 0);
	c->n_tunnel_ports = 1;
	c->tunnel_ports = drp_calloc(1, sizeof(*c->tunnel_ports));
	c->tunnel_ports[0] = 443;
	c->ca_dir = drp_strdup("./ca");
	c->upstream_ca_file = NULL;
	c->ca_key_passphrase = NULL;
	c->ca_key_passphrase_file = NULL;
	c->verify_upstream = true;
	c->access_log = drp_strdup("-");
	c->error_log = drp_strdup("-");
	c->log_level = DRP_LOG_NOTICE;
	c->users_file = NULL;
	c->require_users = false;
	c->max_connections = 4096;
	c->max_header_size = 65536;
	c->header_timeout = 30;
	c->idle_timeout = 60;
	c->connect_timeout = 10;
	c->handshake_timeout = 15;
	c->body_timeout = 120;
	c->tunnel_idle_timeout = 600;
	c->drain_timeout = 8;
	c->push = DRP_CONF_PUSH_CLIENT;
	c->mirror = true;
	c->admin_socket = NULL;
	c->cache_backend = drp_strdup("fs");
	c->cache_dir = drp_strdup("./cache");
	c->cache_max_size = 32ULL << 30;
	c->tag_ttl = 300;
	c->cache_max_age = 0;
	c->cache_keep_mapped = 0;
	c->s3_abandoned_after = 3600;
	c->fleet_lease_ttl = 15;
	c->fleet_wait = 300;
	return c;
}

static const char defaults_text[] =
	"; docker-registry-proxy: the embedded defaults.\n"
	"; See docker-registry-proxy.ini(5) for every key.\n"
	"\n"
	"[proxy]\n"
	"listen = [::]:3128\n"
	"workers = auto\n"
	"tcp_congestion =\n"
	"registries = quay.io gcr.io ghcr.io registry.k8s.io\n"
	"allow = 127.0.0.0/8 ::1/128 10.0.0.0/8 172.16.0.0/12 "
	"192.168.0.0/16 fc00::/7\n"
	"proxy_protocol_from =\n"
	"tunnel_ports = 443\n"
	"ca_dir = ./ca\n"
	"ca_key_passphrase =\n"
	"ca_key_passphrase_file =\n"
	"upstream_ca_file =\n"
	"verify_upstream = yes\n"
	"access_log = -\n"
	"access_log_format = text\n"
	"error_log = -\n"
	"log_level = notice\n"
	"users_file =\n"
	"require_users = no\n"
	"tunnel_only =\n"
	"max_connections = 4096\n"
	"max_header_size = 64K\n"
	"header_timeout = 30s\n"
	"idle_timeout = 60s\n"
	"connect_timeout = 10s\n"
	"handshake_timeout = 15s\n"
	"body_timeout = 120s\n"
	"tunnel_idle_timeout = 10m\n"
	"drain_timeout = 8s\n"
	"push = client\n"
	"mirror = yes\n"
	"mirror_tls_listen =\n"
	"mirror_tls_cert =\n"
	"mirror_tls_key =\n"
	"mirror_names =\n"
	"upstream_proxy =\n"
	"upstream_proxy_password_file =\n"
	"no_upstream_proxy =\n"
	"admin_socket =\n"
	"admin_listen =\n"
	"admin_allow = 127.0.0.0/8 ::1/128 10.0.0.0/8 172.16.0.0/12 "
	"192.168.0.0/16 fc00::/7\n"
	"\n"
	"[resolve]\n"
	"\n"
	"[cache]\n"
	"backend = fs\n"
	"dir = ./cache\n"
	"max_size = 32G\n"
	"tag_ttl = 5m\n"
	"max_age = 0\n"
	"keep_mapped = 0\n"
	"s3_addressing = path\n"
	"s3_abandoned_after = 1h\n"
	"\n"
	"[fleet]\n"
	"lease_ttl = 15s\n"
	"wait = 5m\n";

const char *drp_conf_defaults_text(void)
{
	return defaults_text;
}

/* ---- loading ---- */

/* The line number at the start of a message produced for file, 0 if
 * none (e.g. "file: cannot read"). */
static unsigned msg_line(const char *msg, const char *file)
{
	size_t n = strlen(file);

	if (strncmp(msg, file, n) != 0 || msg[n] != ':' || !digit(msg[n + 1]))
		return 0;
	return (unsigned)strtoul(msg + n + 1, NULL, 10);
}

/*
 * Syntax errors are found before semantic ones; present them all in line
 * order, which is how an operator works through the file. Stable, so two
 * errors on one line keep their order.
 */
static void sort_errors(drp_conf_errors_t *e, unsigned from, const char *file)
{
	for (unsigned i = from + 1; i < e->n; i++) {
		char *m = e->msg[i];
		unsigned l = msg_line(m, file), j = i;
		while (j > from && msg_line(e->msg[j - 1], file) > l) {
			e->msg[j] = e->msg[j - 1];
			j--;
		}
		e->msg[j] = m;
	}
}

static drp_conf_t *load_buf(const char *name, const char *text, size_t len,
			    drp_conf_errors_t *errs)
{
	drp_conf_t *c = drp_conf_defaults();
	drp_ini_t ini = {0};
	unsigned from = errs->n;

	c->path = drp_strdup(name);
	drp_ini_parse(&ini, c->path, text, len, errs);
	drp_schema_apply(c, &ini, errs);
	drp_ini_free(&ini);
	if (errs->n > from) {
		sort_errors(errs, from, c->path);
		drp_conf_free(c);
		return NULL;
	}
	return c;
}

drp_conf_t *drp_conf_load_string(const char *name, const char *text,
				 drp_conf_errors_t *errs)
{
	return load_buf(name ? name : "<string>", text, strlen(text), errs);
}

drp_conf_t *drp_conf_load(const char *path, drp_conf_errors_t *errs)
{
	FILE *f = fopen(path, "r");
	char *text = NULL;
	size_t len = 0, cap = 0;

	if (f == NULL) {
		drp_conf_error(errs, path, 0, NULL, NULL, "cannot open: %s",
			       strerror(errno));
		return NULL;
	}
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 16384;
			text = drp_realloc(text, cap);
		}
		size_t n = fread(text + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		drp_conf_error(errs, path, 0, NULL, NULL, "cannot read: %s",
			       strerror(errno));
		fclose(f);
		free(text);
		return NULL;
	}
	fclose(f);
	drp_conf_t *c = load_buf(path, text, len, errs);
	free(text);
	return c;
}

void drp_conf_free(drp_conf_t *c)
{
	if (c == NULL)
		return;
	for (unsigned i = 0; i < c->n_listen; i++)
		free(c->listen[i].text);
	free(c->listen);
	free(c->tcp_congestion);
	for (unsigned i = 0; i < c->n_registries; i++)
		free(c->registries[i]);
	free(c->registries);
	free(c->allow);
	for (unsigned i = 0; i < c->n_admin_listen; i++)
		free(c->admin_listen[i].text);
	free(c->admin_listen);
	free(c->admin_allow);
	free(c->proxy_protocol_from);
	free(c->cache_local_dir);
	free(c->s3_endpoint);
	free(c->s3_bucket);
	free(c->s3_region);
	free(c->s3_access_key);
	free(c->s3_secret_key_file);
	free(c->fleet_redis);
	free(c->tunnel_ports);
	free(c->ca_dir);
	free(c->upstream_ca_file);
	free(c->access_log);
	free(c->error_log);
	free(c->users_file);
	free(c->admin_socket);
	if (c->ca_key_passphrase)
		explicit_bzero(c->ca_key_passphrase,
			       strlen(c->ca_key_passphrase));
	free(c->ca_key_passphrase);
	free(c->ca_key_passphrase_file);
	for (unsigned i = 0; i < c->n_tunnel_only; i++)
		free(c->tunnel_only[i]);
	free(c->tunnel_only);
	for (unsigned i = 0; i < c->n_resolve; i++)
		free(c->resolve[i].host);
	free(c->resolve);
	for (unsigned i = 0; i < c->n_mirror_tls_listen; i++)
		free(c->mirror_tls_listen[i].text);
	free(c->mirror_tls_listen);
	free(c->mirror_tls_cert);
	free(c->mirror_tls_key);
	for (unsigned i = 0; i < c->n_mirror_names; i++)
		free(c->mirror_names[i]);
	free(c->mirror_names);
	free(c->upstream_proxy_host);
	free(c->upstream_proxy_user);
	free(c->upstream_proxy_password_file);
	for (unsigned i = 0; i < c->n_no_upstream_proxy; i++)
		free(c->no_upstream_proxy[i]);
	free(c->no_upstream_proxy);
	free(c->no_upstream_proxy_cidr);
	free(c->cache_backend);
	free(c->cache_dir);
	drp_conf_ttl_rules_free(c->tag_ttl_rules, c->n_tag_ttl_rules);
	pcre2_match_context_free(c->tag_ttl_mctx);
	for (unsigned i = 0; i < c->n_registry; i++) {
		drp_conf_registry_t *r = &c->registry[i];
		drp_conf_ttl_rules_free(r->tag_ttl_rules, r->n_tag_ttl_rules);
		for (unsigned j = 0; j < r->n_items; j++) {
			free(r->items[j].key);
			free(r->items[j].value);
		}
		free(r->items);
		free(r->name);
		free(r->allow);
		for (unsigned j = 0; j < r->n_users; j++)
			free(r->users[j]);
		free(r->users);
	}
	free(c->registry);
	free(c->path);
	free(c);
}

void drp_conf_regset_resolve(const drp_conf_t *c, const unsigned *chain,
			     unsigned n, drp_conf_regset_t *out)
{
	*out = (drp_conf_regset_t){
		.valid = true,
		.sec = n > 0 ? (int)chain[0] : -1,
		.tag_ttl = c->tag_ttl,
		.push = c->push,
		.tag_ttl_sec = -1,
		.push_sec = -1,
	};
	/* Only tag_ttl and push inherit: what a section lets through
	 * (allow, users, credentials) must never widen by what a shorter
	 * name allows. */
	for (unsigned i = 0; i < n; i++) {
		const drp_conf_registry_t *r = &c->registry[chain[i]];
		/* A section's expressions apply up to the one that sets
		 * tag_ttl: that one answers for every other tag. */
		if (out->tag_ttl_sec < 0 && r->n_tag_ttl_rules > 0 &&
		    out->n_rule_secs < DRP_CONF_CHAIN_MAX)
			out->rule_secs[out->n_rule_secs++] = chain[i];
		if (out->tag_ttl_sec < 0 && r->has_tag_ttl) {
			out->tag_ttl = r->tag_ttl;
			out->tag_ttl_sec = (int)chain[i];
		}
		if (out->push_sec < 0 && r->push != DRP_CONF_PUSH_UNSET) {
			out->push = r->push;
			out->push_sec = (int)chain[i];
		}
	}
}

double drp_conf_tag_ttl(const drp_conf_t *c, const drp_conf_regset_t *set,
			const char *repo, const char *tag)
{
	if (set != NULL && !set->valid)
		set = NULL;
	double fallback = set ? set->tag_ttl : c->tag_ttl;
	bool cache_rules = set == NULL || set->tag_ttl_sec < 0;
	if ((set == NULL || set->n_rule_secs == 0) &&
	    (!cache_rules || c->n_tag_ttl_rules == 0))
		return fallback;
	/* What the nginx-based image matched its tiers against: the
	 * request's path without the query. */
	size_t len = strlen(repo) + strlen(tag) + sizeof("/v2//manifests/");
	char *subject = drp_malloc(len);
	snprintf(subject, len, "/v2/%s/manifests/%s", repo, tag);
	double ttl = fallback;
	bool found = false;
	for (unsigned i = 0; set != NULL && i < set->n_rule_secs && !found;
	     i++) {
		const drp_conf_registry_t *r = &c->registry[set->rule_secs[i]];
		found = drp_conf_ttl_rules_match(c, r->tag_ttl_rules,
						 r->n_tag_ttl_rules, subject,
						 &ttl) == 1;
	}
	if (!found && cache_rules)
		drp_conf_ttl_rules_match(c, c->tag_ttl_rules,
					 c->n_tag_ttl_rules, subject, &ttl);
	free(subject);
	return ttl;
}

/* "host" (port 443) or "host:port" / "[v6]:port", as the schema
 * normalises names: does it name host:port? */
static bool name_is(const char *name, const char *host, uint16_t port)
{
	size_t n = strlen(name);
	const char *rb = strchr(name, ']');
	const char *colon = strrchr(name, ':');
	unsigned p = 443;
	size_t hl = n;
	if (colon != NULL && (rb == NULL || colon > rb)) {
		hl = (size_t)(colon - name);
		p = (unsigned)strtoul(colon + 1, NULL, 10);
	}
	const char *h = name;
	if (h[0] == '[' && rb != NULL) {
		h++;
		hl = (size_t)(rb - name) - 1;
	}
	return p == port && hl == strlen(host) && strncasecmp(h, host, hl) == 0;
}

int drp_conf_token_realm_find(const drp_conf_t *c, const char *realm)
{
	if (strncasecmp(realm, "https://", 8) != 0)
		return -1;
	const char *a = realm + 8;
	size_t alen = strcspn(a, "/?#");
	if (alen == 0 || memchr(a, '@', alen) != NULL || alen > 300)
		return -1;
	char auth[304];
	memcpy(auth, a, alen);
	auth[alen] = '\0';
	/* host, [v6], host:port, [v6]:port */
	char *host = auth, *port = NULL;
	if (auth[0] == '[') {
		char *rb = strchr(auth, ']');
		if (rb == NULL || (rb[1] != '\0' && rb[1] != ':'))
			return -1;
		*rb = '\0';
		host = auth + 1;
		port = rb[1] == ':' ? rb + 2 : NULL;
	} else if ((port = strchr(auth, ':')) != NULL) {
		*port++ = '\0';
	}
	unsigned long p = 443;
	if (port != NULL) {
		char *end;
		p = strtoul(port, &end, 10);
		if (*port == '\0' || *end != '\0' || p == 0 || p > 65535)
			return -1;
	}
	for (unsigned i = 0; i < c->n_registry; i++)
		if (c->registry[i].token_realm &&
		    name_is(c->registry[i].name, host, (uint16_t)p))
			return (int)i;
	return -1;
}

bool drp_conf_lists_registry(const drp_conf_t *c, const char *host,
			     uint16_t port)
{
	for (unsigned i = 0; i < c->n_registries; i++)
		if (name_is(c->registries[i], host, port))
			return true;
	return false;
}
