#!/bin/sh
# SPDX-License-Identifier: MIT
# Entry point of the container image. Runs the daemon as PID 1 (exec), so
# that docker stop's SIGTERM reaches it and it drains and exits by itself.
#   no arguments: the daemon, on the old image's environment variables
#     (--env-config) if any is set, else on
#     /etc/docker-registry-proxy/docker-registry-proxy.ini;
#   options only: the daemon with those options;
#   anything else: that command (e.g. `sh` for a look inside).
set -e
# The nginx-based image's variables: the daemon translates them
# (--env-config) unless a configuration is given explicitly.
if [ $# -eq 0 ] && env | grep -qE '^(REGISTRIES|AUTH_REGISTRIES|VERIFY_SSL|CACHE_MAX_SIZE|DEBUG|DEBUG_NGINX|ENABLE_MANIFEST_CACHE|ALLOW_PUSH)='; then
	set -- --env-config
fi
if [ $# -eq 0 ] || [ "${1#-}" != "$1" ]; then
	set -- /usr/sbin/docker-registry-proxy "$@"
fi
exec "$@"
