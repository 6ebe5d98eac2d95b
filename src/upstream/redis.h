/* SPDX-License-Identifier: MIT */
/*
 * A Redis connection on one event loop, for the fleet's fill leases
 * (registry/fleet.c): hiredis's asynchronous API on its libev adapter.
 * hiredis 0.14 has no asynchronous timeouts, so every command gets a
 * timer of ours; one that fires tears the connection down, which fails
 * every pending command (callback with reply NULL), and the next command
 * reconnects, after a backoff (0.5 s, doubling, at most 10 s) while
 * Redis stays unreachable. State changes are logged once each.
 *
 * The configured Redis is the operator's: it is an address given in the
 * configuration, so the address policy of upstream connections does not
 * apply to it (as for the S3 endpoint).
 *
 * Thread: one drp_redis_t per loop, used on that loop only. Callbacks
 * run later, from the loop, never from inside drp_redis_cmd().
 */
#ifndef DRP_UPSTREAM_REDIS_H
#define DRP_UPSTREAM_REDIS_H

#include <ev.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct drp_redis drp_redis_t;

/* ip: a numeric address (v4 or v6); timeout: seconds per command. */
drp_redis_t *drp_redis_new(struct ev_loop *loop, const char *ip, int port,
			   double timeout);
/* Pending commands, sent or not, get their callback (reply NULL) before
 * this returns; one sent from such a callback too. Cancel the commands
 * whose callers go away first: a callback that runs here must not need
 * the loop any more. r's loop thread, while the loop exists. */
void drp_redis_free(drp_redis_t *r);

/* reply is NULL when the command failed (why says how: not connected,
 * timed out, connection lost); a Redis error is a REDIS_REPLY_ERROR
 * reply. Valid during the call only. */
typedef void (*drp_redis_cb)(void *arg, const redisReply *reply,
			     const char *why);

/* Send a command given as argc strings (binary-safe with argvlen; NULL
 * argvlen: strlen). cb runs exactly once, unless drp_redis_cmd_cancel. */
typedef struct drp_redis_cmd drp_redis_cmd_t;
drp_redis_cmd_t *drp_redis_cmd(drp_redis_t *r, drp_redis_cb cb, void *arg,
			       int argc, const char **argv,
			       const size_t *argvlen);
/* The callback will not run (the command may still reach Redis). */
void drp_redis_cmd_cancel(drp_redis_cmd_t *c);

#endif
