#!/bin/bash
# SPDX-License-Identifier: MIT
# The image's HEALTHCHECK: GET /healthz on the first listen address of the
# configuration (bash's /dev/tcp: the image has no HTTP client).
conf=${DRP_CONF:-/etc/docker-registry-proxy/docker-registry-proxy.ini}
l=$(sed -n 's/^[[:space:]]*listen[[:space:]]*=[[:space:]]*\([^[:space:],]*\).*/\1/p' "$conf" 2>/dev/null | head -n 1)
host=${l%:*} port=${l##*:}
if [ -z "$l" ]; then host=127.0.0.1 port=3128; fi
case $host in
"" | "*" | 0.0.0.0 | "[::]") host=127.0.0.1 ;; # [::] is dual-stack, or IPv4 only
\[*\]) host=${host#[} host=${host%]} ;;
esac
exec 3<>"/dev/tcp/$host/$port" || exit 1
printf 'GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
IFS= read -r -t 5 line <&3 || exit 1
case $line in
"HTTP/1."?" 200 "*) exit 0 ;;
esac
echo "unhealthy: $line"
exit 1
