/* SPDX-License-Identifier: MIT */
#include "conf/envconf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/schema.h"
#include "util/buf.h"
#include "util/mem.h"

/* Variables of the nginx-based image this proxy does not translate. */
static const char *const unsupported_vars[] = {
	"DEBUG_HUB",
	"DISABLE_IPV6",
	"PROXY_REQUEST_BUFFERING",
};

static bool truthy(const char *v)
{
	return v && (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 ||
		     strcasecmp(v, "yes") == 0);
}

static bool falsy(const char *v)
{
	return v && (strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0 ||
		     strcasecmp(v, "no") == 0);
}

/* A value goes into the INI as is only if it holds no line break and no
 * comment or quoting character the INI reader would treat specially. */
static bool ini_safe(const char *v)
{
	for (; *v; v++)
		if (*v == '\n' || *v == '\r' || *v == ';' || *v == '#' ||
		    *v == '"' || *v == '[' || *v == ']')
			return false;
	return true;
}

/*
 * An nginx time (ngx_parse_time): numbers with units y (365 d), M (30 d),
 * w, d, h, m, s, ms, largest first, optionally blank-separated ("1h30m",
 * "1y 6M"); a bare number is seconds. Returns 0 and the seconds, or -1
 * where nginx refuses the value too.
 */
static int nginx_time(const char *v, double *out)
{
	static const struct {
		const char *unit;
		double sec;
	} units[] = {
		{"y", 365 * 86400.}, {"M", 30 * 86400.}, {"w", 7 * 86400.},
		{"d", 86400.},	     {"h", 3600.},	 {"ms", 0.001},
		{"m", 60.},	     {"s", 1.},
	};
	double total = 0;
	size_t last = 0; /* units[] before this one are used up */
	bool any = false;
	const char *p = v;
	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		if (!isdigit((unsigned char)*p))
			return -1;
		double n = 0;
		while (isdigit((unsigned char)*p)) {
			n = n * 10 + (*p - '0');
			if (n > 1e12)
				return -1;
			p++;
		}
		size_t u = DRP_ARRAY_SIZE(units);
		for (size_t i = 0; i < DRP_ARRAY_SIZE(units); i++) {
			size_t ul = strlen(units[i].unit);
			if (strncmp(p, units[i].unit, ul) == 0) {
				u = i;
				p += ul;
				break;
			}
		}
		if (u == DRP_ARRAY_SIZE(units)) {
			/* No unit: seconds, and the last part. */
			while (*p == ' ')
				p++;
			if (*p != '\0')
				return -1;
			u = DRP_ARRAY_SIZE(units) - 1;
		}
		/* "ms" sorts before "m" only in the table: order by size. */
		if (any && units[u].sec >= units[last].sec)
			return -1;
		last = u;
		any = true;
		total += n * units[u].sec;
	}
	if (!any)
		return -1;
	*out = total;
	return 0;
}

/*
 * A time variable as a duration this proxy reads: as written when it
 * reads it as nginx did ("10m", "60d", "90"), else in seconds ("1h30m"
 * -> "5400s"). Returns 0, or -1 with err naming the variable.
 */
static int duration_of(const char *var, const char *v, char *out, size_t len,
		       char *err, size_t errlen)
{
	double d;
	if (v != NULL && *v != '\0' && strlen(v) < len &&
	    drp_conf_parse_duration(v, &d) == 0) {
		snprintf(out, len, "%s", v);
		return 0;
	}
	if (v == NULL || nginx_time(v, &d) < 0 || d > 1e9) {
		snprintf(err, errlen, "%s: invalid time '%.64s'", var,
			 v ? v : "");
		return -1;
	}
	snprintf(out, len, "%.3f", d);
	char *e = out + strlen(out);
	while (e[-1] == '0')
		*--e = '\0';
	if (e[-1] == '.')
		*--e = '\0';
	snprintf(e, len - (size_t)(e - out), "s");
	return 0;
}

/* key = value, double-quoted (with \\ and \" escaped) where the INI
 * reader would otherwise cut the value: a ';' or '#' (a comment after a
 * blank), or blanks at its end. */
static void put_value(drp_buf_t *b, const char *key, const char *value)
{
	size_t n = strlen(value);
	bool quote = strpbrk(value, ";#") != NULL ||
		     (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'));
	if (!quote) {
		drp_buf_printf(b, "%s = %s\n", key, value);
		return;
	}
	drp_buf_printf(b, "%s = \"", key);
	for (const char *p = value; *p; p++) {
		if (*p == '\\' || *p == '"')
			drp_buf_append(b, "\\", 1);
		drp_buf_append(b, p, 1);
	}
	drp_buf_append(b, "\"\n", 2);
}

/*
 * ENABLE_MANIFEST_CACHE and the MANIFEST_CACHE_* tiers into [cache] (the
 * section is open). The old entry point wrote, for each tier with a
 * non-empty regex R, a "location ~ ^/v2/(.*)/manifests/R" with the
 * tier's proxy_cache_valid, and one for every other manifest with the
 * default time; nginx matched them against the request's path in that
 * order. tag_ttl_match searches the same expression in the same path,
 * in the same order. Unset variables take the old image's defaults (its
 * Dockerfile set them); with the cache off every tag request went
 * upstream (proxy_cache_valid 0s).
 */
static int manifest_cache(drp_buf_t *b, drp_envconf_get_fn get, void *ctx,
			  char *err, size_t errlen)
{
	static const struct {
		const char *re_var, *re_default, *time_var, *time_default;
	} tiers[] = {
		{"MANIFEST_CACHE_PRIMARY_REGEX",
		 "(stable|nightly|production|test)",
		 "MANIFEST_CACHE_PRIMARY_TIME", "10m"},
		{"MANIFEST_CACHE_SECONDARY_REGEX",
		 "(.*)(\\d|\\.)+(.*)(\\d|\\.)+(.*)(\\d|\\.)+",
		 "MANIFEST_CACHE_SECONDARY_TIME", "60d"},
	};
	char dur[64];
	if (!truthy(get("ENABLE_MANIFEST_CACHE", ctx))) {
		drp_buf_printf(b, "; ENABLE_MANIFEST_CACHE is off: every tag "
				  "is asked for upstream\ntag_ttl = 0s\n");
		return 0;
	}
	const char *v = get("MANIFEST_CACHE_DEFAULT_TIME", ctx);
	if (duration_of("MANIFEST_CACHE_DEFAULT_TIME", v ? v : "1h", dur,
			sizeof(dur), err, errlen) < 0)
		return -1;
	drp_buf_printf(b, "tag_ttl = %s\n", dur);
	for (size_t i = 0; i < DRP_ARRAY_SIZE(tiers); i++) {
		const char *re = get(tiers[i].re_var, ctx);
		if (re == NULL)
			re = tiers[i].re_default;
		if (*re == '\0')
			continue; /* no location for this tier */
		if (strpbrk(re, "\r\n") != NULL) {
			snprintf(err, errlen,
				 "%s: a line break cannot be carried",
				 tiers[i].re_var);
			return -1;
		}
		v = get(tiers[i].time_var, ctx);
		if (duration_of(tiers[i].time_var,
				v ? v : tiers[i].time_default, dur, sizeof(dur),
				err, errlen) < 0)
			return -1;
		size_t n = strlen(dur) + strlen(re) + 32;
		char *value = drp_malloc(n);
		snprintf(value, n, "%s ^/v2/(.*)/manifests/%s", dur, re);
		put_value(b, "tag_ttl_match", value);
		free(value);
	}
	return 0;
}

/*
 * The old image's timeout variables (nginx directives) onto this proxy's
 * timeouts. Where several nginx directives are one timeout here, the
 * largest of those set wins, so that no transfer the old image let run
 * is cut short: a body stall in either direction is body_timeout, a
 * tunnel idle in either direction tunnel_idle_timeout, an upstream
 * connect (of a fetch or a tunnel) connect_timeout.
 */
static int timeouts(drp_buf_t *b, drp_envconf_get_fn get, void *ctx, char *err,
		    size_t errlen)
{
	static const struct {
		const char *key;
		const char *vars[5]; /* NULL-terminated */
	} map[] = {
		{"header_timeout", {"CLIENT_HEADER_TIMEOUT"}},
		{"idle_timeout", {"KEEPALIVE_TIMEOUT"}},
		{"connect_timeout",
		 {"PROXY_CONNECT_TIMEOUT", "PROXY_CONNECT_CONNECT_TIMEOUT"}},
		{"body_timeout",
		 {"PROXY_READ_TIMEOUT", "PROXY_SEND_TIMEOUT", "SEND_TIMEOUT",
		  "CLIENT_BODY_TIMEOUT"}},
		{"tunnel_idle_timeout",
		 {"PROXY_CONNECT_READ_TIMEOUT", "PROXY_CONNECT_SEND_TIMEOUT"}},
	};
	for (size_t i = 0; i < DRP_ARRAY_SIZE(map); i++) {
		char best[64] = "", dur[64];
		double max = -1;
		for (const char *const *var = map[i].vars; *var; var++) {
			const char *v = get(*var, ctx);
			if (v == NULL || *v == '\0')
				continue;
			double d;
			if (duration_of(*var, v, dur, sizeof(dur), err,
					errlen) < 0)
				return -1;
			drp_require(drp_conf_parse_duration(dur, &d) == 0);
			if (d > max) {
				max = d;
				snprintf(best, sizeof(best), "%s", dur);
			}
		}
		if (max >= 0)
			drp_buf_printf(b, "%s = %s\n", map[i].key, best);
	}
	return 0;
}

static int write_secret(const char *dir, const char *name, const char *data,
			size_t len, char *path, size_t pathlen)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	/* A directory someone else made (in /tmp, say) is not ours to
	 * write secrets into. */
	struct stat st;
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 077) != 0)
		return -EPERM;
	if ((size_t)snprintf(path, pathlen, "%s/%s", dir, name) >= pathlen)
		return -ENAMETOOLONG;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int r = 0;
	if (fchmod(fd, 0600) < 0)
		r = -errno;
	else if (write(fd, data, len) != (ssize_t)len)
		r = errno ? -errno : -EIO;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	return r;
}

/* "host" of an AUTH_REGISTRIES entry to the section name and plugin. */
static void section_for(const char *host, const char *user, char *name,
			size_t len, const char **plugin)
{
	if (strcmp(host, "auth.docker.io") == 0 ||
	    strcmp(host, "registry-1.docker.io") == 0 ||
	    strcmp(host, "docker.io") == 0) {
		snprintf(name, len, "docker.io");
		*plugin = "dockerhub";
	} else if (strcmp(user, "_json_key") == 0) {
		snprintf(name, len, "%s", host);
		*plugin = "gcr";
	} else if (strcmp(host, "quay.io") == 0) {
		snprintf(name, len, "quay.io");
		*plugin = "quay";
	} else {
		snprintf(name, len, "%s", host);
		*plugin = "basic";
	}
}

static int auth_entry(drp_buf_t *b, const char *entry, const char *delim,
		      const char *state_dir, unsigned idx, char *err,
		      size_t errlen)
{
	/* HOST<d>USER<d>PASSWORD: the password is the rest (it may hold
	 * the delimiter, a _json_key's JSON always does). */
	const char *d1 = strstr(entry, delim);
	const char *d2 = d1 ? strstr(d1 + strlen(delim), delim) : NULL;
	if (d1 == NULL || d2 == NULL || d1 == entry) {
		snprintf(
			err, errlen,
			"AUTH_REGISTRIES: entry %u is not HOST%sUSER%sPASSWORD",
			idx + 1, delim, delim);
		return -1;
	}
	char *host = drp_strndup(entry, (size_t)(d1 - entry));
	char *user = drp_strndup(d1 + strlen(delim),
				 (size_t)(d2 - d1 - strlen(delim)));
	const char *pass = d2 + strlen(delim);
	int ret = -1;
	char name[300], file[64], path[4096];
	const char *plugin;
	section_for(host, user, name, sizeof(name), &plugin);
	if (!ini_safe(host) || !ini_safe(user) || strchr(host, ' ')) {
		snprintf(err, errlen,
			 "AUTH_REGISTRIES: entry %u: host or user holds a "
			 "character the configuration cannot carry",
			 idx + 1);
		goto out;
	}
	snprintf(file, sizeof(file), "%s-%u.%s", plugin, idx + 1,
		 strcmp(plugin, "gcr") == 0 ? "json" : "password");
	int r = write_secret(state_dir, file, pass, strlen(pass), path,
			     sizeof(path));
	if (r < 0) {
		snprintf(err, errlen, "AUTH_REGISTRIES: %s/%s: %s", state_dir,
			 file, strerror(-r));
		goto out;
	}
	drp_buf_printf(b, "\n[registry \"%s\"]\nplugin = %s\n", name, plugin);
	if (strcmp(plugin, "gcr") == 0)
		drp_buf_printf(b, "key_file = %s\n", path);
	else
		drp_buf_printf(b, "username = %s\npassword_file = %s\n", user,
			       path);
	/* The old image added these credentials to every request for the
	 * host: token requests too, where the host is a token realm rather
	 * than a registry (GitLab's gitlab.com for registry.gitlab.com). */
	if (strcmp(plugin, "basic") == 0)
		drp_buf_printf(b, "token_realm = yes\n");
	ret = 0;
out:
	free(host);
	free(user);
	return ret;
}

int drp_envconf_build(drp_envconf_get_fn get, void *ctx, const char *state_dir,
		      char **ini, char **unsupported, char *err, size_t errlen)
{
	drp_buf_t b = {0}, u = {0};
	int ret = -1;
	*ini = NULL;
	*unsupported = NULL;

	drp_buf_printf(&b, "; made by --env-config from the environment of "
			   "the nginx-based docker-registry-proxy image\n"
			   "[proxy]\nlisten = [::]:3128\n");
	const char *v = get("REGISTRIES", ctx);
	if (v && *v) {
		if (!ini_safe(v)) {
			snprintf(err, errlen, "REGISTRIES: invalid value");
			goto out;
		}
		drp_buf_printf(&b, "registries = %s\n", v);
	}
	drp_buf_printf(&b, "ca_dir = /ca\n"
			   "; the old image's CA key passphrase\n"
			   "ca_key_passphrase = foobar\n");
	/* The old image answered uploads 405 unless ALLOW_PUSH=true, and
	 * then sent them with its credentials for the registry. */
	if (truthy(get("ALLOW_PUSH", ctx)))
		drp_buf_printf(&b, "push = proxy\n");
	else
		drp_buf_printf(&b, "push = deny\n");
	if (falsy(get("VERIFY_SSL", ctx)))
		drp_buf_printf(&b, "verify_upstream = no\n");
	if (truthy(get("DEBUG", ctx)) || truthy(get("DEBUG_NGINX", ctx)))
		drp_buf_printf(&b, "log_level = debug\n");
	if (timeouts(&b, get, ctx, err, errlen) < 0)
		goto out;
	drp_buf_printf(&b, "drain_timeout = 8s\n\n[cache]\n"
			   "dir = /docker_mirror_cache\n");
	v = get("CACHE_MAX_SIZE", ctx);
	if (v && *v) {
		/* nginx sizes: 32g, 500m; ours take upper-case suffixes. */
		char size[64];
		size_t n = strlen(v);
		if (n >= sizeof(size) || !ini_safe(v)) {
			snprintf(err, errlen, "CACHE_MAX_SIZE: invalid value");
			goto out;
		}
		for (size_t i = 0; i <= n; i++)
			size[i] = (char)toupper((unsigned char)v[i]);
		drp_buf_printf(&b, "max_size = %s\n", size);
	}
	if (manifest_cache(&b, get, ctx, err, errlen) < 0)
		goto out;
	/* proxy_cache_path's inactive=: nginx durations (60d, 12h) are
	 * ours too; the loader reports any other. */
	v = get("CACHE_INACTIVE", ctx);
	if (v && *v) {
		if (!ini_safe(v)) {
			snprintf(err, errlen, "CACHE_INACTIVE: invalid value");
			goto out;
		}
		drp_buf_printf(&b, "max_age = %s\n", v);
	}
	v = get("AUTH_REGISTRIES", ctx);
	if (v && *v) {
		const char *ed = get("AUTH_REGISTRIES_DELIMITER", ctx);
		const char *fd = get("AUTH_REGISTRY_DELIMITER", ctx);
		if (ed == NULL || *ed == '\0')
			ed = " ";
		if (fd == NULL || *fd == '\0')
			fd = ":";
		char *copy = drp_strdup(v);
		unsigned idx = 0;
		int r = 0;
		for (char *p = copy; p && r == 0;) {
			char *next = strstr(p, ed);
			if (next) {
				*next = '\0';
				next += strlen(ed);
			}
			if (*p)
				r = auth_entry(&b, p, fd, state_dir, idx++, err,
					       errlen);
			p = next;
		}
		explicit_bzero(copy, strlen(copy));
		free(copy);
		if (r < 0)
			goto out;
	}
	for (size_t i = 0; i < DRP_ARRAY_SIZE(unsupported_vars); i++)
		if (get(unsupported_vars[i], ctx) != NULL)
			drp_buf_printf(&u, "%s%s",
				       drp_buf_pending(&u) ? " " : "",
				       unsupported_vars[i]);
	*ini = drp_strndup(drp_buf_head(&b), drp_buf_pending(&b));
	*unsupported = drp_strndup(drp_buf_head(&u), drp_buf_pending(&u));
	ret = 0;
out:
	drp_buf_free(&b);
	drp_buf_free(&u);
	return ret;
}
