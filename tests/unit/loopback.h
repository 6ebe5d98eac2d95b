/* SPDX-License-Identifier: MIT */
/*
 * Unit tests' fake servers: a TCP listener on 127.0.0.1. Header only,
 * included by the test programs that run one (check.h first).
 */
#ifndef DRP_TEST_LOOPBACK_H
#define DRP_TEST_LOOPBACK_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

/* A listening socket on 127.0.0.1 and an ephemeral port (in *port); the
 * test fails if any step does. */
static inline int test_listen_loopback(int backlog, uint16_t *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sin);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sl), 0);
	ck_assert_int_eq(listen(fd, backlog), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

#endif
