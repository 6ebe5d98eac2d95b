/* SPDX-License-Identifier: MIT */
#include "util/busguard.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>

static __thread sigjmp_buf *tl_jump;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)si;
	(void)uc;
	sigjmp_buf *j = tl_jump;
	if (j != NULL) {
		tl_jump = NULL;
		siglongjmp(*j, 1);
	}
	/* Not in a guard: the default action, as if there were no handler
	 * (returning re-runs the faulting access). */
	signal(sig, SIG_DFL);
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	/* SA_NODEFER and an empty sa_mask: entering the handler blocks
	 * nothing, so leaving it by siglongjmp leaves the thread's mask as
	 * it was at the fault, and drp_bus_guard need not save and restore
	 * the mask (sigsetjmp(.., 0): no rt_sigprocmask per call; it runs
	 * for every slice sent from a mapped spool). */
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

void drp_bus_guard_install(void)
{
	pthread_once(&once, install);
}

int drp_bus_guard(void (*fn)(void *arg), void *arg)
{
	sigjmp_buf jump;
	/* volatile: read after a siglongjmp */
	volatile int faulted = 0;
	/* The mask is not saved: see install(). */
	if (sigsetjmp(jump, 0) != 0) {
		faulted = 1;
	} else {
		tl_jump = &jump;
		fn(arg);
	}
	tl_jump = NULL;
	return faulted ? -EIO : 0;
}
