/* SPDX-License-Identifier: MIT */
/*
 * Plugin entry points shared by every in-tree plugin whose instance is
 * one bearer_t (bearer.h): init/fini keep the host table as the plugin
 * context, the hooks forward to bearer_decorate/challenge/cancel,
 * bearer_read_credentials() reads a section's account and
 * bearer_instance_make() builds the instance an instance_new returns.
 * Plugins only: the core runs bearer.c without these.
 */
#ifndef DRP_PLUGINS_BEARER_PLUGIN_H
#define DRP_PLUGINS_BEARER_PLUGIN_H

#include <stddef.h>

#include <drp/plugin.h>

#include "bearer.h"

/* Read username and password (or password_file) of the section. Sets
 * both to NULL when neither is configured; reports a lone one with
 * host->config_error. Returns 0, or a negative errno after reporting.
 * Free both with bearer_free_secret(). */
int bearer_read_credentials(const drp_host_api_t *host, drp_host_ctx_t *ctx,
			    char **user, char **password);

int bearer_plugin_init(const drp_host_api_t *host, drp_host_ctx_t *ctx,
		       void **pctx);
void bearer_plugin_fini(void *pctx);
const drp_host_api_t *bearer_plugin_host(void *pctx);
/* 0 and *out, or -ENOMEM with errbuf filled. */
int bearer_instance_make(const drp_host_api_t *host, drp_host_ctx_t *ctx,
			 const char *user, const char *password, void **out,
			 char *errbuf, size_t errlen);
/* For an error of bearer_read_credentials(): the one-line reason. */
void bearer_credentials_error(int r, char *errbuf, size_t errlen);
void bearer_instance_free(void *inst);
int bearer_hook_decorate(void *inst, drp_auth_req_t *req);
int bearer_hook_challenge(void *inst, drp_auth_req_t *req,
			  const char *www_authenticate);
void bearer_hook_cancel(void *inst, drp_auth_req_t *req);

#endif
