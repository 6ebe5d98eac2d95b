/* SPDX-License-Identifier: MIT */
/*
 * One configuration generation: the configuration and the objects made
 * from it. Every connection, and every request that may outlive it,
 * holds a reference, so SIGHUP can swap in a new generation while old
 * work finishes under the old rules. Made by proxy/server.c
 * (drp_runtime_new); read by every layer of the core.
 */
#ifndef DRP_CORE_RUNTIME_H
#define DRP_CORE_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "conf/conf.h"
#include "tls/session.h"
#include "upstream/upstream.h"

typedef struct drp_runtime {
	atomic_uint refs;
	/* Frees it at the last drp_runtime_unref (set by its maker). */
	void (*destroy)(struct drp_runtime *rt);
	drp_conf_t *conf;
	/* What this generation says about reaching upstreams (timeouts,
	 * [resolve], upstream TLS trust): every fetch and connect holds a
	 * reference of its own. */
	drp_upstream_conf_t *upstream;
	struct drp_auth *auth; /* plugin instances of this generation */
	/* The certificate of the mirror TLS listeners (mirror_tls_cert, or
	 * made by the CA for mirror_names); NULL without them. */
	struct drp_leaf *mirror_leaf;
	int access_fd; /* -1 = none; 2 = stderr */
	/* Token realm hosts learned from registries' challenges
	 * (drp_runtime_learn_realm), "host:port"; guarded by realm_lock. */
	pthread_mutex_t realm_lock;
	char **realms;
	unsigned n_realms;
	bool realms_full_logged;
} drp_runtime_t;

/* Most realm hosts one generation learns; the rest are tunnelled. */
#define DRP_RUNTIME_REALMS_MAX 256

static inline struct drp_runtime *drp_runtime_ref(struct drp_runtime *rt)
{
	atomic_fetch_add(&rt->refs, 1);
	return rt;
}

static inline void drp_runtime_unref(struct drp_runtime *rt)
{
	if (rt != NULL && atomic_fetch_sub(&rt->refs, 1) == 1)
		rt->destroy(rt);
}

#endif
