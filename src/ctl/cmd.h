/* SPDX-License-Identifier: MIT */
/*
 * The administrator's commands, as the command line takes them and as
 * they travel over the admin socket, and the cache commands' execution
 * on an open cache (the daemon's worker pool runs it for the socket, the
 * command line on a cache directory it opened itself):
 *
 *   cache list [--json]            what is cached (cache/inventory.h)
 *   cache purge REF|DIGEST...      tags, manifests and the blobs no other
 *                                  cached manifest uses
 *   cache verify                   re-hash every object, remove bad ones
 *   warm [--platform P]... REF...  fetch images ahead of use (warm.h)
 *
 * On the admin socket the client sends one line, the command as a JSON
 * object ({"v":1,"op":"list"|"purge"|"verify"|"warm","json":bool,
 * "args":[...],"platforms":[...]}), and reads lines back: "o TEXT" for
 * the standard output, "e TEXT" for the standard error, and last
 * "x STATUS", the exit status.
 *
 * Thread: any.
 */
#ifndef DRP_CTL_CMD_H
#define DRP_CTL_CMD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "cache/cache.h"

enum drp_ctl_op {
	DRP_CTL_LIST = 0,
	DRP_CTL_PURGE = 1,
	DRP_CTL_VERIFY = 2,
	DRP_CTL_WARM = 3,
};

typedef struct drp_ctl_cmd {
	enum drp_ctl_op op;
	bool json;   /* list --json */
	char **args; /* references and digests */
	size_t n_args;
	char **platforms; /* warm --platform */
	size_t n_platforms;
} drp_ctl_cmd_t;

/* Exit statuses of the commands. */
#define DRP_CTL_OK    0
#define DRP_CTL_FAIL  1
#define DRP_CTL_USAGE 2

/* The commands' usage text (for -h and mistakes). */
extern const char drp_ctl_usage[];

/*
 * argv (from the command word on: "cache", "list", ...) into cmd. 0, or
 * DRP_CTL_USAGE after a message to err. Free with drp_ctl_cmd_free.
 */
int drp_ctl_cmd_parse(int argc, char **argv, drp_ctl_cmd_t *cmd, FILE *err)
	__attribute__((nonnull));
/* The socket's request line (no newline); malloc'd. */
char *drp_ctl_cmd_encode(const drp_ctl_cmd_t *cmd) __attribute__((nonnull));
/* A request line back into cmd: 0 or -EINVAL. */
int drp_ctl_cmd_decode(const char *line, size_t len, drp_ctl_cmd_t *cmd)
	__attribute__((nonnull));
void drp_ctl_cmd_free(drp_ctl_cmd_t *cmd);

/*
 * Run list, purge or verify on an open cache; results to out, problems
 * to err. stop (may be NULL) ends a verify early. Returns the exit
 * status (DRP_CTL_OK, or DRP_CTL_FAIL: a reference not cached, a bad
 * object found, an error). backend names the backend in the listing.
 */
int drp_ctl_cache_run(const drp_ctl_cmd_t *cmd, const drp_cache_api_t *api,
		      drp_cache_t *db, drp_cache_stats_t *stats,
		      const atomic_bool *stop, FILE *out, FILE *err)
	__attribute__((nonnull(1, 2, 3, 4, 6, 7)));

#endif
