/* SPDX-License-Identifier: MIT */
/* The only file that includes <ltdl.h> (DESIGN.md §3). */
#include "plugin/loader.h"

#include <ctype.h>
#include <errno.h>
#include <ltdl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/mem.h"

#ifndef DRP_PLUGINDIR
#define DRP_PLUGINDIR "/usr/local/lib/docker-registry-proxy/plugins-1"
#endif

#define NAME_MAX_LEN 64

struct drp_plugin_mod {
	drp_plugin_mod_t *next;
	char *spec;
	char *file;
	lt_dlhandle handle;
	drp_plugin_t desc; /* copy, zero beyond the plugin's struct_size */
	char *error;	   /* NULL: accepted and initialised */
	drp_host_ctx_t ctx;
	void *pctx;
	bool inited;
	drp_plugin_mod_t *alias; /* same file reached through another spec */
};

struct drp_plugin_loader {
	drp_plugin_host_t *host;
	char *dir;
	drp_plugin_mod_t *mods;
};

drp_plugin_loader_t *drp_plugin_loader_new(drp_plugin_host_t *host,
					   const char *dir)
{
	if (lt_dlinit() != 0) {
		drp_log_err(DRP_LOG_PLUGIN, "libltdl: %s", lt_dlerror());
		return NULL;
	}
	drp_plugin_loader_t *l = DRP_NEW(drp_plugin_loader_t);
	l->host = host;
	if (dir == NULL)
		dir = getenv(DRP_PLUGIN_DIR_ENV);
	l->dir = drp_strdup(dir && *dir ? dir : DRP_PLUGINDIR);
	return l;
}

void drp_plugin_loader_free(drp_plugin_loader_t *l)
{
	if (l == NULL)
		return;
	for (drp_plugin_mod_t *m = l->mods; m; m = m->next)
		if (m->inited && m->desc.fini != NULL)
			m->desc.fini(m->pctx);
	drp_plugin_mod_t *m = l->mods;
	while (m != NULL) {
		drp_plugin_mod_t *next = m->next;
		if (m->handle != NULL)
			lt_dlclose(m->handle);
		free(m->spec);
		free(m->file);
		free(m->error);
		free(m);
		m = next;
	}
	free(l->dir);
	free(l);
	lt_dlexit();
}

const char *drp_plugin_loader_dir(const drp_plugin_loader_t *l)
{
	return l->dir;
}

drp_plugin_host_t *drp_plugin_loader_host(const drp_plugin_loader_t *l)
{
	return l->host;
}

const drp_plugin_t *drp_plugin_mod_desc(const drp_plugin_mod_t *m)
{
	return &m->desc;
}

const char *drp_plugin_mod_file(const drp_plugin_mod_t *m)
{
	return m->file;
}

void *drp_plugin_mod_pctx(const drp_plugin_mod_t *m)
{
	return m->pctx;
}

static bool valid_name(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++)
		if (!islower((unsigned char)s[n]) &&
		    !isdigit((unsigned char)s[n]) && s[n] != '_' && s[n] != '-')
			return false;
	return n > 0 && n <= NAME_MAX_LEN;
}

static void set_error(drp_plugin_mod_t *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_error(drp_plugin_mod_t *m, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&m->error, fmt, ap) < 0)
		drp_fatal_at(__FILE__, __LINE__, "out of memory");
	va_end(ap);
	drp_log_err(DRP_LOG_PLUGIN, "%s", m->error);
}

static void refuse(drp_plugin_mod_t *m, const drp_plugin_t *d, const char *fmt,
		   ...) __attribute__((format(printf, 3, 4)));
static void refuse(drp_plugin_mod_t *m, const drp_plugin_t *d, const char *fmt,
		   ...)
{
	char reason[512], abi[32];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (d != NULL)
		snprintf(abi, sizeof(abi), "%u.%u", d->abi_major, d->abi_minor);
	else
		snprintf(abi, sizeof(abi), "unknown");
	set_error(m, "refusing %s (ABI %s, host %u.%u): %s", m->file, abi,
		  DRP_PLUGIN_ABI_MAJOR, DRP_PLUGIN_ABI_MINOR, reason);
}

/* Checks the descriptor; on success m->desc holds the usable copy. */
static bool check_desc(drp_plugin_mod_t *m, const drp_plugin_t *d, bool by_name)
{
	if (d->abi_major != DRP_PLUGIN_ABI_MAJOR) {
		refuse(m, d, "ABI major version differs");
		return false;
	}
	if (d->abi_minor > DRP_PLUGIN_ABI_MINOR) {
		refuse(m, d, "built for a newer ABI minor version");
		return false;
	}
	if (d->struct_size < DRP_PLUGIN_SIZE_1_0) {
		refuse(m, d, "descriptor size %u is smaller than %zu",
		       d->struct_size, (size_t)DRP_PLUGIN_SIZE_1_0);
		return false;
	}
	/* An older minor's descriptor is shorter: read only what it has. */
	size_t n = d->struct_size < sizeof(m->desc) ? d->struct_size
						    : sizeof(m->desc);
	memset(&m->desc, 0, sizeof(m->desc));
	memcpy(&m->desc, d, n);
	if (m->desc.name == NULL || !valid_name(m->desc.name)) {
		refuse(m, d, "descriptor name is missing or not [a-z0-9_-]+");
		return false;
	}
	if (by_name && strcmp(m->desc.name, m->spec) != 0) {
		refuse(m, d, "descriptor name '%s' differs from '%s'",
		       m->desc.name, m->spec);
		return false;
	}
	if (m->desc.instance_new == NULL || m->desc.instance_free == NULL) {
		refuse(m, d, "mandatory hook %s missing",
		       m->desc.instance_new == NULL ? "instance_new"
						    : "instance_free");
		return false;
	}
	return true;
}

static void open_module(drp_plugin_loader_t *l, drp_plugin_mod_t *m)
{
	bool by_name = strchr(m->spec, '/') == NULL;
	if (by_name && !valid_name(m->spec)) {
		m->file = drp_strdup(m->spec);
		set_error(m,
			  "cannot load %s: a plugin name is [a-z0-9_-]+ "
			  "(give a path with '/' to load a file)",
			  m->spec);
		return;
	}
	if (by_name) {
		size_t n = strlen(l->dir) + 1 + strlen(m->spec) + 1;
		m->file = drp_malloc(n);
		snprintf(m->file, n, "%s/%s", l->dir, m->spec);
	} else {
		m->file = drp_strdup(m->spec);
	}

	m->handle = lt_dlopenext(m->file);
	if (m->handle == NULL) {
		const char *e = lt_dlerror();
		set_error(m, "cannot load %s%s: %s", m->file,
			  by_name ? "{.la,.so}" : "", e ? e : "unknown error");
		return;
	}
	/* One file, one init: a second spec for it shares the first. */
	for (drp_plugin_mod_t *o = l->mods; o; o = o->next) {
		if (o == m || o->handle != m->handle)
			continue;
		lt_dlclose(m->handle); /* drops our reference only */
		m->handle = NULL;
		if (o->error != NULL)
			set_error(m, "%s", o->error);
		else if (by_name && strcmp(o->desc.name, m->spec) != 0)
			refuse(m, &o->desc,
			       "descriptor name '%s' differs "
			       "from '%s'",
			       o->desc.name, m->spec);
		else
			m->alias = o;
		return;
	}
	const lt_dlinfo *info = lt_dlgetinfo(m->handle);
	if (info != NULL && info->filename != NULL) {
		free(m->file);
		m->file = drp_strdup(info->filename);
	}

	const drp_plugin_t *d = lt_dlsym(m->handle, DRP_PLUGIN_SYMBOL);
	if (d == NULL) {
		refuse(m, NULL, "no symbol " DRP_PLUGIN_SYMBOL);
		return;
	}
	if (!check_desc(m, d, by_name))
		return;

	m->ctx = (drp_host_ctx_t){.host = l->host, .plugin = m->desc.name};
	if (m->desc.init != NULL) {
		m->ctx.schema = m->desc.config;
		int r = m->desc.init(&l->host->api, &m->ctx, &m->pctx);
		m->ctx.schema = NULL;
		if (r < 0) {
			refuse(m, d, "init failed: %s", strerror(-r));
			return;
		}
	}
	m->inited = true;
	drp_log_info(DRP_LOG_PLUGIN, "loaded %s: %s %s (ABI %u.%u)", m->file,
		     m->desc.name, m->desc.version ? m->desc.version : "",
		     m->desc.abi_major, m->desc.abi_minor);
}

const drp_plugin_mod_t *drp_plugin_load(drp_plugin_loader_t *l,
					const char *spec, char *err,
					size_t errlen)
{
	drp_plugin_mod_t *m = l->mods;
	while (m != NULL && strcmp(m->spec, spec) != 0)
		m = m->next;
	if (m == NULL) {
		m = DRP_NEW(drp_plugin_mod_t);
		m->spec = drp_strdup(spec);
		m->next = l->mods;
		l->mods = m;
		open_module(l, m);
	}
	if (m->error != NULL) {
		snprintf(err, errlen, "%s", m->error);
		return NULL;
	}
	return m->alias ? m->alias : m;
}
