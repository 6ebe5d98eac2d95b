#!/bin/bash
# SPDX-License-Identifier: MIT
# /readyz on the admin listener (issue 13): 200 while the cache directory
# can be written; with mode 0500 too, since root ignores mode bits (only
# writing tells); 503 with the reason while the directory is on a
# read-only mount, 200 again once it is not; 503 "shutting down" while
# the daemon drains. (Own proxy in a mount namespace of its own, where
# the test remounts its cache directory.)
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools nsenter unshare
aport=$(drp_free_port)
# unshare execs the proxy: the recorded pid is the proxy's.
DRP_PROXY_WRAPPER="unshare -m --propagation private ${DRP_PROXY_WRAPPER:-}" \
	drp_own_proxy "admin_listen = 127.0.0.1:$aport"
admin=http://127.0.0.1:$aport
cache=$PROXY_DIR/cache
ready() { curl -s --max-time 10 -o "$SCEN/body" -w '%{http_code}' "$admin/readyz"; }
inns() { nsenter -t "$PROXY_PID" -m -- "$@"; }

expect_eq "ready" 200 "$(ready)"
expect_eq "ready: body" ok "$(cat "$SCEN/body")"
chmod 0500 "$cache"
expect_eq "ready with the directory at mode 0500 (root writes anyway)" 200 "$(ready)"
chmod 0700 "$cache"

inns mount --bind "$cache" "$cache"
drp_at_exit "nsenter -t '$PROXY_PID' -m -- umount '$cache' 2>/dev/null"
inns mount -o remount,ro,bind "$cache"
expect_eq "not ready on a read-only cache directory" 503 "$(ready)"
expect_match "why" "^cannot write in the cache directory $cache: Read-only file system$" "$(cat "$SCEN/body")"
expect_eq "healthz still 200" 200 "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "$admin/healthz")"
inns umount "$cache"
expect_eq "ready again" 200 "$(ready)"
expect_eq "no probe file left" "" "$(find "$cache" -maxdepth 1 -name '.readyz*')"

# Draining: a client with a request half sent keeps the drain going for
# drain_timeout; meanwhile /readyz says why it is not ready.
exec 5<>"/dev/tcp/127.0.0.1/$PROXY_PORT"
printf 'GET /healthz HTTP/1.1\r\n' >&5
drp_unwatch_proxies
kill -TERM "$PROXY_PID"
i=0
while [ "$(ready)" != 503 ] && [ $i -lt 25 ]; do
	sleep 0.2
	i=$((i + 1))
done
expect_eq "draining: not ready" 503 "$(ready)"
expect_eq "draining: why" "shutting down" "$(cat "$SCEN/body")"
exec 5>&-
drp_stop "$PROXY_PID" 15 || drp_fail "the proxy did not exit after its drain"
expect_eq "exit status" 0 "$DRP_STOP_STATUS"
