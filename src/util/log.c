/* SPDX-License-Identifier: MIT */
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_level = DRP_LOG_NOTICE;
static _Atomic int log_fd = 2;
/* Lines to the journal start with "<N>" (sd-daemon(3)) and carry no
 * time stamp: journald records both itself. */
static _Atomic bool log_journal;

/* True when fd is the stream systemd connected to the journal: the
 * device and inode in $JOURNAL_STREAM (systemd.exec(5)) are fd's. */
static bool fd_is_journal(int fd)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2 ||
	    fstat(fd, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

static const char *const level_names[] = {
	[DRP_LOG_ERR] = "err",	     [DRP_LOG_WARNING] = "warning",
	[DRP_LOG_NOTICE] = "notice", [DRP_LOG_INFO] = "info",
	[DRP_LOG_DEBUG] = "debug",
};

int drp_log_init(enum drp_log_level level, const char *path)
{
	log_level = level;
	if (path == NULL || strcmp(path, "-") == 0) {
		log_journal = fd_is_journal(2);
		int old = atomic_exchange(&log_fd, 2);
		if (old > 2)
			close(old);
		return 0;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	log_journal = false;
	int old = atomic_exchange(&log_fd, fd);
	if (old > 2)
		close(old);
	return 0;
}

int drp_log_reopen(const char *path)
{
	if (path == NULL || strcmp(path, "-") == 0 || log_fd <= 2)
		return 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	/* dup2 swaps the file under the same descriptor number: a thread
	 * writing a line meanwhile writes it whole to one file or the
	 * other, never to a closed or reused descriptor. */
	int r = dup3(fd, log_fd, O_CLOEXEC) < 0 ? -errno : 0;
	close(fd);
	return r;
}

void drp_log_set_level(enum drp_log_level level)
{
	log_level = level;
}

enum drp_log_level drp_log_get_level(void)
{
	return log_level;
}

int drp_log_level_parse(const char *s)
{
	for (int i = DRP_LOG_ERR; i <= DRP_LOG_DEBUG; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

void drp_logv(enum drp_log_level level, const char *grp, const char *fmt,
	      va_list ap)
{
	if ((int)level > log_level)
		return;
	char line[2048];
	struct timespec ts;
	struct tm tm;
	size_t n;
	if (log_journal) {
		n = (size_t)snprintf(line, sizeof(line), "<%d>", (int)level);
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ ", &tm);
	}
	int r = snprintf(line + n, sizeof(line) - n,
			 "%s %s: ", level_names[level], grp);
	if (r > 0)
		n += (size_t)r;
	r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (r > 0)
		n += (size_t)r;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	/* Control characters from peers never reach the log verbatim. */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	line[n++] = '\n';
	ssize_t w = write(log_fd, line, n);
	(void)w;
}

void drp_log(enum drp_log_level level, const char *grp, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	drp_logv(level, grp, fmt, ap);
	va_end(ap);
}

void drp_log_errno(enum drp_log_level level, const char *grp, const char *fmt,
		   ...)
{
	int saved = errno;
	char msg[1536];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	drp_log(level, grp, "%s: %s", msg, strerror(saved));
}
