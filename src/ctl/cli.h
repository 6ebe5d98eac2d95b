/* SPDX-License-Identifier: MIT */
/*
 * The administrator's commands on the command line
 * (docker-registry-proxy [-c FILE] cache ... | warm ...; ctl/cmd.h).
 *
 * With the daemon running (its admin socket answers) the command goes
 * to it and its output is relayed. Otherwise the command works on its
 * own: the cache commands open the cache directory (taking its lock, so
 * a daemon started meanwhile waits for nothing but refuses the
 * directory until they end), and warm runs the daemon's request path
 * in this process, on a loop of its own, with the configuration's
 * credentials and policy.
 *
 * Thread: the main thread, before anything else runs.
 */
#ifndef DRP_CTL_CLI_H
#define DRP_CTL_CLI_H

#include "conf/conf.h"

/*
 * Run the command in argv[0..argc) ("cache", "list", ...) under conf
 * (taken: freed here). env_dir: --env-config's state directory (where
 * the admin socket is by default then), or NULL. Returns the exit
 * status: 0, 1 (failed), 2 (usage).
 */
int drp_ctl_main(drp_conf_t *conf, const char *env_dir, int argc, char **argv)
	__attribute__((nonnull(1, 4)));

#endif
