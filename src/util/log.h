/* SPDX-License-Identifier: MIT */
/*
 * Diagnostic log (not the access log, see proxy/accesslog.h).
 *
 * One line per call, written with a single write(2) so that lines from
 * several worker threads never interleave:
 *   2026-11-27T18:40:00Z warning tls: [c000042] handshake failed: ...
 * When standard error is the journal ($JOURNAL_STREAM names it), lines
 * start with the syslog priority instead of the time, "<4>tls: ...".
 * Thread-safe. Never pass secrets (Authorization values, tokens, keys).
 */
#ifndef DRP_UTIL_LOG_H
#define DRP_UTIL_LOG_H

#include <stdarg.h>

enum drp_log_level {
	DRP_LOG_ERR = 3,
	DRP_LOG_WARNING = 4,
	DRP_LOG_NOTICE = 5,
	DRP_LOG_INFO = 6,
	DRP_LOG_DEBUG = 7,
};

/* Log groups: the component a line is about (printed as its prefix). */
#define DRP_LOG_MAIN   "main"
#define DRP_LOG_CONF   "conf"
#define DRP_LOG_NET    "net"
#define DRP_LOG_DNS    "dns"
#define DRP_LOG_TLS    "tls"
#define DRP_LOG_HTTP   "http"
#define DRP_LOG_PROXY  "proxy"
#define DRP_LOG_CACHE  "cache"
#define DRP_LOG_PLUGIN "plugin"

/*
 * Set the threshold and destination. path NULL or "-" = stderr.
 * Returns 0 or -errno (the previous destination is kept on failure).
 */
int drp_log_init(enum drp_log_level level, const char *path);
/*
 * Reopen the log file (SIGUSR1, after logrotate moved it) under the same
 * descriptor. No-op for stderr. Returns 0 or -errno (the old file stays
 * in use on failure).
 */
int drp_log_reopen(const char *path);
void drp_log_set_level(enum drp_log_level level);
enum drp_log_level drp_log_get_level(void);
/* Parse "err|warning|notice|info|debug"; -1 if unknown. */
int drp_log_level_parse(const char *s);

void drp_log(enum drp_log_level level, const char *grp, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void drp_logv(enum drp_log_level level, const char *grp, const char *fmt,
	      va_list ap) __attribute__((format(printf, 3, 0)));
/* Like drp_log() with ": strerror(errno)" appended. */
void drp_log_errno(enum drp_log_level level, const char *grp, const char *fmt,
		   ...) __attribute__((format(printf, 3, 4)));

#define drp_log_err(grp, ...)	  drp_log(DRP_LOG_ERR, grp, __VA_ARGS__)
#define drp_log_warning(grp, ...) drp_log(DRP_LOG_WARNING, grp, __VA_ARGS__)
#define drp_log_notice(grp, ...)  drp_log(DRP_LOG_NOTICE, grp, __VA_ARGS__)
#define drp_log_info(grp, ...)	  drp_log(DRP_LOG_INFO, grp, __VA_ARGS__)
#define drp_log_debug(grp, ...)                                                \
	do {                                                                   \
		if (drp_log_get_level() >= DRP_LOG_DEBUG)                      \
			drp_log(DRP_LOG_DEBUG, grp, __VA_ARGS__);              \
	} while (0)

#endif
