/* SPDX-License-Identifier: MIT */
/*
 * The in-process world of the fuzz targets that drive the proxy's event
 * loop (fuzz_conn, fuzz_fetch): one worker loop with an in-memory
 * configuration in this thread, an fs cache and a CA in a temporary
 * directory (removed at exit), and a fake upstream on a loopback port of
 * the same loop that [resolve] sends every test host to (registry.test,
 * up.test, other.test, auth.test, nonexistent.invalid); DNS goes to a
 * closed port. Deterministic: no timers are waited for, no real network.
 *
 * The fake upstream answers request heads (each CRLFCRLF it reads) from a
 * script: the k-th head it sees, on any connection, gets answer k; past
 * the last one, a connection is closed without an answer. With `once`,
 * instead, the first head of every connection gets answer 0 and later
 * ones nothing. Answers go out `piece` bytes per loop turn (0: all at
 * once).
 */
#ifndef DRP_FUZZ_WORLD_H
#define DRP_FUZZ_WORLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/server.h"
#include "proxy/worker.h"

/* Separates the answers of a script in a fuzz input. */
#define FZ_SEP	   "\r\n--up--\r\n"
#define FZ_SEP_LEN 10

typedef struct fz_answer {
	const char *p;
	size_t n;
	bool close; /* close the connection once it is sent */
} fz_answer_t;

typedef struct fz_world {
	drp_server_t srv;
	drp_worker_t w;
	char dir[64];	 /* the temporary directory */
	char cache[128]; /* its cache directory */
	unsigned port;	 /* the fake upstream's */
	/* the script */
	const fz_answer_t *answers;
	size_t n_answers;
	size_t next;  /* answers handed out so far */
	bool once;    /* answer 0 to each connection's first head */
	size_t piece; /* bytes per loop turn, 0: all */
	bool tls;     /* new connections speak TLS */
} fz_world_t;

extern fz_world_t FZ;

/* Set up the world once (later calls do nothing). log_env names the
 * environment variable that turns on debug logs and the access log. */
void fz_setup(const char *log_env);
/* Run the loop without blocking until three turns in a row find nothing
 * to do. */
void fz_run_until_idle(void);
/* The script for the next input: answers[0..n) (kept by the caller until
 * fz_reset). With tls, the fake upstream's new connections speak TLS
 * with a certificate for the SNI name forged by the proxy's CA, which
 * the proxy trusts as upstream_ca_file: intercepted requests, which go
 * upstream over TLS, reach it (and the cache) too. */
void fz_script(const fz_answer_t *answers, size_t n, bool once, size_t piece,
	       bool tls);
/* Close the fake upstream's connections, the pooled upstream
 * connections and every client connection, and reap them. */
void fz_reset(void);
/* Split data at each FZ_SEP into out (at most max parts; the last part
 * keeps the rest). Returns the number of parts (>= 1). */
size_t fz_split(const uint8_t *data, size_t size, fz_answer_t *out, size_t max);

#endif
