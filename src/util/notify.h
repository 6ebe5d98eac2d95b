/* SPDX-License-Identifier: MIT */
/*
 * The service manager's readiness protocol (sd_notify(3)), without
 * libsystemd: one datagram of "KEY=VALUE\n" lines to the AF_UNIX socket
 * named by $NOTIFY_SOCKET ("/path" or "@abstract-name"). A unit with
 * Type=notify waits for READY=1 before it counts as started; STOPPING=1
 * tells it the drain has begun.
 */
#ifndef DRP_UTIL_NOTIFY_H
#define DRP_UTIL_NOTIFY_H

/*
 * Send state (e.g. "READY=1\nSTATUS=listening") to $NOTIFY_SOCKET.
 * Returns 1 when sent, 0 when no socket is named (not under a service
 * manager), or -errno (an unusable name, or the send failed).
 */
int drp_notify(const char *state);

#endif
