/* SPDX-License-Identifier: MIT */
/*
 * In-flight manifest fetches, shared by every worker.
 *
 * A manifest that misses the cache is fetched in memory
 * (upstream/fetchbuf.h). While one such fetch runs for a key, every other
 * request with the same key joins it as a waiter instead of asking the
 * upstream again, and gets a copy of the same answer when it is in. The
 * key is the caller's: everything that can change the upstream's answer
 * (registry, target, Accept, credentials; registry/cached.c builds it).
 *
 * The fetch belongs to the entry, not to the request that started it
 * (the leader): if the leader's client goes away the fetch goes on for
 * the others. It is cancelled only when the last waiter leaves on the
 * fetch's own worker (a waiter leaving on another worker lets it finish:
 * only its own loop may touch a fetch), or when that worker's loop ends.
 * The answer is kept whole (status, header lines, body, or the failure),
 * each waiter then treats it as if its own fetch had returned it (so
 * verification, stale serving and the answer's shape stay per request).
 *
 * Thread-safety: one lock for the table and its entries; waiters on any
 * worker are woken through their worker's fill_wake (core/daemon.h), the
 * same wake-up the blob fills use, only the workers with waiters.
 */
#ifndef DRP_REGISTRY_MFLIGHT_H
#define DRP_REGISTRY_MFLIGHT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/daemon.h"
#include "core/runtime.h"
#include "upstream/fetchbuf.h"

/* Waiters per key at most: a request beyond that fetches on its own. */
#define DRP_MFLIGHT_WAITERS_MAX 4096

typedef struct drp_mflight drp_mflight_t;

/*
 * Join the fetch in flight for key or make a new entry (*leader true:
 * the caller starts the fetch with drp_mflight_done as its callback and
 * m as its argument, and gives it to drp_mflight_own at once). Either way
 * the caller is a waiter and holds a reference until drp_mflight_leave.
 * rt (may be NULL): the generation the key was made under, held by the
 * entry (a key may name it by address).
 * NULL: no coalescing here (the key has DRP_MFLIGHT_WAITERS_MAX waiters,
 * or w is not one of srv's workers): the caller fetches on its own.
 * On w's loop.
 */
drp_mflight_t *drp_mflight_join(drp_server_t *srv, drp_worker_t *w,
				drp_runtime_t *rt, const char *key,
				bool *leader);
/* The leader's fetch, owned by m from now on (on the leader's loop). */
void drp_mflight_own(drp_mflight_t *m, drp_fetchbuf_t *fb);
/* The fetch's callback (arg: m): the answer is kept, the waiters
 * woken. Any answer but a 200 leaves the table at once (a later request
 * starts a new fetch); a 200 stays until the waiter that claimed its store
 * calls drp_mflight_store_end (a later request meanwhile joins and gets
 * the same answer instead of missing the cache while the store runs), or
 * until its last waiter leaves without claiming it. */
void drp_mflight_done(void *arg, drp_fetchbuf_result_t *res);
/*
 * The answer, once it is in: a copy in *out (head and body the caller's,
 * freed with drp_mflight_result_free; reason copied into reason, of
 * reason_len bytes). False while the fetch runs.
 */
bool drp_mflight_result(drp_mflight_t *m, drp_fetchbuf_result_t *out,
			char *reason, size_t reason_len);
void drp_mflight_result_free(drp_fetchbuf_result_t *r);
/* True for the first caller only: the waiter that stores the manifest
 * (the others answer from the same bytes without storing them again).
 * That caller holds a reference until drp_mflight_store_end. */
bool drp_mflight_claim_store(drp_mflight_t *m);
/* The claimed store has ended, stored or failed, or nothing was stored
 * (not a verified 200): a kept 200 leaves the table (a later request
 * finds the cache, or fetches anew); drops the claim's reference. On any
 * thread (the stores lane's job calls it). */
void drp_mflight_store_end(drp_mflight_t *m);
/* The waiter is done (answered, or its client went away); drops its
 * reference. On w's loop, w as given to drp_mflight_join. */
void drp_mflight_leave(drp_mflight_t *m, drp_worker_t *w);
/* w's loop ends: its fetches are cancelled, their waiters get a 503. */
void drp_mflight_worker_stop(drp_worker_t *w);
/* Keys in flight (tests). */
unsigned drp_mflight_count(void);

#endif
