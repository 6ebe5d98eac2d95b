/* SPDX-License-Identifier: MIT */
/*
 * Answers for requests addressed to the proxy itself (origin-form on the
 * proxy port): /ca.crt, /setup/systemd, /healthz, /metrics.
 */
#ifndef DRP_ADMIN_LOCAL_H
#define DRP_ADMIN_LOCAL_H

#include <stddef.h>

#include "core/daemon.h"

typedef struct drp_local_response {
	int status;
	const char *content_type;
	char *body; /* malloc'd */
	size_t len;
} drp_local_response_t;

/* path without query; host = the request's Host header ("" if none).
 * Returns 0 with *r filled, or -ENOENT for an unknown path. */
int drp_local_answer(drp_server_t *srv, const char *path, size_t len,
		     const char *host, drp_local_response_t *r);
void drp_local_response_free(drp_local_response_t *r);

#endif
