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
old_vars='REGISTRIES|AUTH_REGISTRIES|AUTH_REGISTRIES_DELIMITER|AUTH_REGISTRY_DELIMITER'
old_vars="$old_vars|VERIFY_SSL|CACHE_MAX_SIZE|DEBUG|DEBUG_NGINX|DEBUG_HUB|ALLOW_PUSH"
old_vars="$old_vars|ENABLE_MANIFEST_CACHE|MANIFEST_CACHE_[A-Z_]+|PROXY_REQUEST_BUFFERING"
old_vars="$old_vars|DISABLE_IPV6|SEND_TIMEOUT|CLIENT_BODY_TIMEOUT|CLIENT_HEADER_TIMEOUT"
old_vars="$old_vars|KEEPALIVE_TIMEOUT|PROXY_(CONNECT_)?(READ|CONNECT|SEND)_TIMEOUT"
if [ $# -eq 0 ] && env | grep -qE "^($old_vars)="; then
	set -- --env-config
fi
if [ $# -eq 0 ] || [ "${1#-}" != "$1" ]; then
	set -- /usr/sbin/docker-registry-proxy "$@"
fi
exec "$@"
