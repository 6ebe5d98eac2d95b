#!/bin/sh
# SPDX-License-Identifier: MIT
# Entry point of the container image. Runs the daemon as PID 1 (exec), so
# that docker stop's SIGTERM reaches it and it drains and exits by itself.
#   no arguments, or options only: the daemon with those options (it reads
#     /etc/docker-registry-proxy/docker-registry-proxy.ini);
#   anything else: that command (e.g. `sh` for a look inside).
set -e
if [ $# -eq 0 ] || [ "${1#-}" != "$1" ]; then
	set -- /usr/sbin/docker-registry-proxy "$@"
fi
exec "$@"
