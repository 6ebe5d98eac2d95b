/* SPDX-License-Identifier: MIT */
/*
 * Schema layer of the configuration (internal to src/conf/): which
 * sections and keys exist, their types and ranges, and how a value lands
 * in drp_conf_t. The user-facing list is docker-registry-proxy.ini(5);
 * keep the two in step.
 *
 * Thread: pure, no shared state.
 */
#ifndef DRP_CONF_SCHEMA_H
#define DRP_CONF_SCHEMA_H

#include "conf/conf.h"
#include "conf/ini.h"

/*
 * Apply every valid section of ini to c, which already holds the
 * defaults; keys not in the file keep them. Messages and items use
 * c->path as the file name. Every error is appended to errs (the caller
 * discards c if any was); returns the number appended.
 */
unsigned drp_schema_apply(drp_conf_t *c, const drp_ini_t *ini,
			  drp_conf_errors_t *errs);

#endif
