/* SPDX-License-Identifier: MIT */
/*
 * Loading auth plugins (libltdl) and making their instances.
 *
 * Modules: a plugin is named in a section either by name
 * (`plugin = basic`: the module DIR/basic.la or DIR/basic.so, where DIR is
 * the loader's directory) or by path (`plugin = /opt/x/myreg.so`: any
 * value containing '/'). A module is accepted only if it exports the
 * symbol `drp_plugin` and its descriptor has
 *   - abi_major equal to the host's DRP_PLUGIN_ABI_MAJOR,
 *   - abi_minor not above the host's DRP_PLUGIN_ABI_MINOR,
 *   - struct_size at least DRP_PLUGIN_SIZE_1_0,
 *   - a valid name, equal to NAME for a by-name load,
 *   - the mandatory hooks instance_new and instance_free,
 * and its init() (if any) succeeds. Every refusal is logged at err level
 * and returned as one line of the form
 *     refusing FILE (ABI x.y, host X.Y): REASON
 * (or "cannot load FILE: REASON" when the file cannot be opened). Each
 * distinct spec is opened once; asking again returns the same module or
 * the same refusal. Modules are never unloaded before
 * drp_plugin_loader_free() (code of a plugin may still be referenced by
 * instances of an older configuration).
 *
 * Instances: one per [registry "NAME"] section. The section's keys are
 * checked against the core's keys and the plugin's table by the conf
 * schema (drp_schema_check_plugin: unknown key, wrong type, out of range,
 * missing required key: each an error with file:line), then the plugin's
 * instance_new runs. A section without
 * `plugin` makes an anonymous instance: its requests go out without
 * credentials and only its policy keys apply.
 *
 * Thread: loader and instance creation/destruction on the main thread
 * only. The hook wrappers (decorate/challenge/cancel) run on any worker
 * thread.
 */
#ifndef DRP_PLUGIN_LOADER_H
#define DRP_PLUGIN_LOADER_H

#include <stdbool.h>
#include <stddef.h>

#include <drp/plugin.h>

#include "conf/conf.h"
#include "plugin/host.h"
#include "plugin/select.h"

/* Environment variable naming the by-name directory when the loader is
 * created without one (tests, running from the build tree). */
#define DRP_PLUGIN_DIR_ENV "DRP_PLUGIN_DIR"

typedef struct drp_plugin_loader drp_plugin_loader_t;
typedef struct drp_plugin_mod drp_plugin_mod_t;
typedef struct drp_plugin_inst drp_plugin_inst_t;

/*
 * dir: directory for by-name loads; NULL = $DRP_PLUGIN_DIR if set, else
 * the compiled-in DRP_PLUGINDIR. host must outlive the loader; its api
 * table is what plugins receive, so the core fills it first. Returns NULL
 * (logged) if libltdl cannot be initialised.
 */
drp_plugin_loader_t *drp_plugin_loader_new(drp_plugin_host_t *host,
					   const char *dir)
	__attribute__((nonnull(1)));
/* Calls fini of every initialised module, then unloads all. Every
 * instance must have been freed. */
void drp_plugin_loader_free(drp_plugin_loader_t *l);
const char *drp_plugin_loader_dir(const drp_plugin_loader_t *l)
	__attribute__((nonnull));

/*
 * Load (once) and initialise the module named by spec. Returns the module,
 * or NULL with the refusal in err (errlen bytes, NUL-terminated).
 */
const drp_plugin_mod_t *drp_plugin_load(drp_plugin_loader_t *l,
					const char *spec, char *err,
					size_t errlen) __attribute__((nonnull));
/* The module's descriptor, copied (fields beyond its struct_size are
 * zero); its file as opened. */
const drp_plugin_t *drp_plugin_mod_desc(const drp_plugin_mod_t *m)
	__attribute__((nonnull));
const char *drp_plugin_mod_file(const drp_plugin_mod_t *m)
	__attribute__((nonnull));
/* The plugin's *pctx from init (for instance_new/fini). */
void *drp_plugin_mod_pctx(const drp_plugin_mod_t *m) __attribute__((nonnull));
drp_plugin_host_t *drp_plugin_loader_host(const drp_plugin_loader_t *l)
	__attribute__((nonnull));

/*
 * Make the instance for a section. Returns it, or NULL after appending
 * every problem to errs ("FILE:LINE: [registry "NAME"] KEY: ..."). The
 * section must outlive the instance.
 */
drp_plugin_inst_t *drp_plugin_inst_new(drp_plugin_loader_t *l,
				       const drp_conf_registry_t *section,
				       drp_conf_errors_t *errs)
	__attribute__((nonnull));
/* Frees the plugin's instance and its token-cache entries. No request may
 * be pending on it. NULL is a no-op. */
void drp_plugin_inst_free(drp_plugin_inst_t *inst);

/* The section name; the parsed registry/prefix; NULL module if
 * anonymous. */
const char *drp_plugin_inst_name(const drp_plugin_inst_t *inst)
	__attribute__((nonnull));
const drp_select_name_t *
drp_plugin_inst_select_name(const drp_plugin_inst_t *inst)
	__attribute__((nonnull));
const drp_plugin_mod_t *drp_plugin_inst_mod(const drp_plugin_inst_t *inst)
	__attribute__((nonnull));
/* The ctx plugins use for this instance (the core may set ctx->core). */
drp_host_ctx_t *drp_plugin_inst_ctx(drp_plugin_inst_t *inst)
	__attribute__((nonnull));

/*
 * Run a hook. Missing hooks and anonymous instances give
 * DRP_AUTH_DECLINED; a result outside enum drp_auth_result is logged and
 * becomes DRP_AUTH_ERROR. After PENDING the result arrives through the
 * host's auth_done. cancel is a no-op for plugins without it.
 */
int drp_plugin_inst_decorate(drp_plugin_inst_t *inst, drp_auth_req_t *req)
	__attribute__((nonnull));
int drp_plugin_inst_challenge(drp_plugin_inst_t *inst, drp_auth_req_t *req,
			      const char *www_authenticate)
	__attribute__((nonnull));
void drp_plugin_inst_cancel(drp_plugin_inst_t *inst, drp_auth_req_t *req)
	__attribute__((nonnull));
/* Whether the plugin can answer pending requests' cancellation. */
bool drp_plugin_inst_has_cancel(const drp_plugin_inst_t *inst)
	__attribute__((nonnull));

#endif
