/* SPDX-License-Identifier: MIT */
/*
 * Reading a mapped file can fault: SIGBUS when a page must come from disk
 * and the read fails, or when the file was truncated under the mapping.
 * The proxy maps its spool files (registry/fill.c) and must not die for
 * that: code that touches such a mapping runs under drp_bus_guard(), and
 * a fault there makes the call fail with -EIO instead of killing the
 * process. A fault anywhere else keeps the default action.
 *
 * The guarded function must only read the mapping and compute (hashing,
 * encrypting): it is abandoned mid-way, so it must not hold locks or be
 * half-way through updating state the caller keeps using. The caller
 * drops whatever the function was working on (the hash, the TLS session).
 *
 * Thread-safety: the guard is per thread; guards do not nest.
 */
#ifndef DRP_UTIL_BUSGUARD_H
#define DRP_UTIL_BUSGUARD_H

/* Install the SIGBUS handler (once, at start-up; idempotent). */
void drp_bus_guard_install(void);

/* Run fn(arg). Returns 0, or -EIO if it faulted on a mapped file (fn did
 * not finish). */
int drp_bus_guard(void (*fn)(void *arg), void *arg);

#endif
