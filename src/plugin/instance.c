/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/loader.h"
#include "util/log.h"
#include "util/mem.h"

struct drp_plugin_inst {
	drp_host_ctx_t ctx;
	const drp_plugin_mod_t *mod; /* NULL: anonymous */
	const drp_plugin_t *desc;
	void *state;
	char *name;
	drp_select_name_t sel;
};

static void inst_destroy(drp_plugin_inst_t *inst)
{
	free(inst->name);
	drp_select_name_free(&inst->sel);
	free(inst);
}

drp_plugin_inst_t *drp_plugin_inst_new(drp_plugin_loader_t *l,
				       const drp_conf_registry_t *sec,
				       drp_conf_errors_t *errs)
{
	drp_plugin_inst_t *inst = DRP_NEW(drp_plugin_inst_t);
	inst->name = drp_strdup(sec->name);
	const char *why = "bad name";
	if (drp_select_parse_name(sec->name, &inst->sel, &why) < 0) {
		drp_conf_registry_error(errs, sec, NULL, "%s", why);
		goto fail;
	}
	const drp_conf_item_t *pit = drp_conf_registry_get(sec, "plugin");
	if (pit == NULL) {
		if (drp_schema_check_plugin(sec, NULL, NULL, errs) > 0)
			goto fail;
		return inst;
	}

	char err[1024];
	inst->mod = drp_plugin_load(l, pit->value, err, sizeof(err));
	if (inst->mod == NULL) {
		drp_conf_registry_error(errs, sec, pit, "%s", err);
		goto fail;
	}
	inst->desc = drp_plugin_mod_desc(inst->mod);
	if (drp_schema_check_plugin(sec, inst->desc->name, inst->desc->config,
				    errs) > 0)
		goto fail;

	drp_plugin_host_t *host = drp_plugin_loader_host(l);
	inst->ctx = (drp_host_ctx_t){
		.host = host,
		.plugin = inst->desc->name,
		.instance = inst->name,
		.section = sec,
		.schema = inst->desc->config,
		.errs = errs,
	};
	drp_instance_args_t args = {
		.struct_size = sizeof(args),
		.ctx = &inst->ctx,
		.section = inst->name,
		.registry = inst->sel.registry,
		.prefix = inst->sel.prefix,
	};
	char ebuf[512] = "";
	void *state = NULL;
	int r = inst->desc->instance_new(drp_plugin_mod_pctx(inst->mod), &args,
					 &state, ebuf, sizeof(ebuf));
	ebuf[sizeof(ebuf) - 1] = '\0';
	if (r == 0 && inst->ctx.n_errors > 0) {
		/* It reported configuration errors yet accepted: refuse. */
		inst->desc->instance_free(state);
		r = -EINVAL;
		if (ebuf[0] == '\0')
			snprintf(ebuf, sizeof(ebuf), "configuration errors");
	}
	if (r < 0) {
		if (ebuf[0] == '\0')
			snprintf(ebuf, sizeof(ebuf), "%s", strerror(-r));
		drp_log_err(DRP_LOG_PLUGIN,
			    "refusing section \"%s\" for %s (ABI %u.%u, host "
			    "%u.%u): instance_new failed: %s",
			    sec->name, drp_plugin_mod_file(inst->mod),
			    inst->desc->abi_major, inst->desc->abi_minor,
			    DRP_PLUGIN_ABI_MAJOR, DRP_PLUGIN_ABI_MINOR, ebuf);
		drp_conf_registry_error(errs, sec, pit,
					"plugin '%s' refused the section: %s",
					inst->desc->name, ebuf);
		goto fail;
	}
	inst->state = state;
	/* The section is only guaranteed during instance_new. */
	inst->ctx.section = NULL;
	inst->ctx.schema = NULL;
	inst->ctx.errs = NULL;
	return inst;
fail:
	inst_destroy(inst);
	return NULL;
}

void drp_plugin_inst_free(drp_plugin_inst_t *inst)
{
	if (inst == NULL)
		return;
	if (inst->mod != NULL) {
		inst->desc->instance_free(inst->state);
		drp_tokencache_drop_owner(inst->ctx.host->tokens, &inst->ctx);
	}
	inst_destroy(inst);
}

const char *drp_plugin_inst_name(const drp_plugin_inst_t *inst)
{
	return inst->name;
}

const drp_select_name_t *
drp_plugin_inst_select_name(const drp_plugin_inst_t *inst)
{
	return &inst->sel;
}

const drp_plugin_mod_t *drp_plugin_inst_mod(const drp_plugin_inst_t *inst)
{
	return inst->mod;
}

drp_host_ctx_t *drp_plugin_inst_ctx(drp_plugin_inst_t *inst)
{
	return &inst->ctx;
}

static int checked(drp_plugin_inst_t *inst, const char *hook, int r)
{
	if (r >= DRP_AUTH_OK && r <= DRP_AUTH_ERROR)
		return r;
	drp_log_err(DRP_LOG_PLUGIN, "%s/%s: %s returned %d, not a result",
		    inst->desc->name, inst->name, hook, r);
	return DRP_AUTH_ERROR;
}

int drp_plugin_inst_decorate(drp_plugin_inst_t *inst, drp_auth_req_t *req)
{
	if (inst->mod == NULL || inst->desc->decorate == NULL)
		return DRP_AUTH_DECLINED;
	return checked(inst, "decorate",
		       inst->desc->decorate(inst->state, req));
}

int drp_plugin_inst_challenge(drp_plugin_inst_t *inst, drp_auth_req_t *req,
			      const char *www_authenticate)
{
	if (inst->mod == NULL || inst->desc->challenge == NULL)
		return DRP_AUTH_DECLINED;
	return checked(
		inst, "challenge",
		inst->desc->challenge(inst->state, req, www_authenticate));
}

void drp_plugin_inst_cancel(drp_plugin_inst_t *inst, drp_auth_req_t *req)
{
	if (inst->mod != NULL && inst->desc->cancel != NULL)
		inst->desc->cancel(inst->state, req);
}

bool drp_plugin_inst_has_cancel(const drp_plugin_inst_t *inst)
{
	return inst->mod != NULL && inst->desc->cancel != NULL;
}
