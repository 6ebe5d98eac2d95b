#!/bin/bash
# SPDX-License-Identifier: MIT
# What a service manager relies on: READY=1 on $NOTIFY_SOCKET once the
# proxy accepts connections and STOPPING=1 when it drains (Type=notify);
# SIGUSR1 reopens the logs after logrotate moved them (it used to kill the
# daemon); a second daemon on the same listen address exits with a clear
# error instead of silently taking half of the connections (SO_REUSEPORT);
# the drain ends after drain_timeout; GET / answers 200.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init

port=$(drp_free_port)
notify=$SCEN/notify.log
sock=@drp-it-notify-$$
drp_bg notify python3 "$DRP_IT_DIR/notifylistener.py" "$sock" "$port" "$notify"
drp_wait "the notify listener" 10 grep -q listening "$notify"
drp_proxy_conf svc "$port" "drain_timeout = 2s"
NOTIFY_SOCKET=$sock drp_start_proxy svc
svc_pid=$PROXY_PID

# READY=1 arrives, and the port accepted connections by then.
drp_wait "READY=1" 10 grep -q '^READY=1' "$notify"
expect_match "READY=1 once listening" '^READY=1\|STATUS=listening on 127\.0\.0\.1:[0-9]+ port=open$' \
	"$(grep '^READY=1' "$notify" | head -n 1)"

# GET /: 200, like the nginx-based proxy (health probes ask for it).
code=$(curl -s --max-time 10 -o "$SCEN/root.txt" -w '%{http_code}' "$PROXY_URL/")
expect_eq "GET /" 200 "$code"

# A second daemon with the same listen address (its own CA and cache):
# exits 1 at once, says why, and takes no connection.
sed -e "s|$PROXY_DIR/|$SCEN/second-|g" "$PROXY_DIR/proxy.ini" >"$SCEN/second.ini"
grep -q "^listen = 127.0.0.1:$port\$" "$SCEN/second.ini" || drp_fail "second.ini lacks the listen address"
rc=0
timeout 20 "$DRP_PROXY" -c "$SCEN/second.ini" >"$SCEN/second.out" 2>&1 || rc=$?
expect_eq "second daemon's exit status" 1 "$rc"
expect_match "second daemon's error" "listen 127\.0\.0\.1:$port: address already in use" \
	"$(cat "$SCEN/second.out" "$SCEN"/second-proxy.log 2>/dev/null)"
# Every request still reaches the first daemon (a second daemon in the
# SO_REUSEPORT group would have answered about half of them).
mark=$(amark)
for i in $(seq 20); do
	curl -sf --max-time 10 -o /dev/null "$PROXY_URL/healthz?n=$i" || drp_fail "request $i failed"
done
wait_log "$PROXY_DIR/access.log" "$mark" " GET /healthz 200 " 20 5
expect_eq "requests answered by the first daemon" 20 "$(count_since "$PROXY_DIR/access.log" "$mark" " GET /healthz 200 ")"

# SIGUSR1 after a rotation: the daemon lives on, new lines go to new files
# of the configured names, none to the moved ones.
mv "$PROXY_DIR/access.log" "$PROXY_DIR/access.log.1"
mv "$PROXY_DIR/proxy.log" "$PROXY_DIR/proxy.log.1"
kill -USR1 "$svc_pid"
drp_wait "the reopened error log" 10 grep -q 'SIGUSR1: logs reopened' "$PROXY_DIR/proxy.log"
drp_alive "$svc_pid" || drp_fail "SIGUSR1 killed the proxy"
curl -sf --max-time 10 -o /dev/null "$PROXY_URL/healthz" || drp_fail "request after SIGUSR1 failed"
wait_log "$PROXY_DIR/access.log" 0 " GET /healthz 200 " 1 5
expect_eq "lines in the new access.log" 1 "$(count_since "$PROXY_DIR/access.log" 0 " GET /healthz 200 ")"
expect_eq "lines in the moved access.log" 20 "$(count_since "$PROXY_DIR/access.log.1" 0 " GET /healthz 200 ")"

# SIGTERM with a client stuck in the middle of its request head: STOPPING=1
# at once, the drain ends after drain_timeout (2 s), exit status 0.
exec 5<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n' >&5
drp_unwatch_proxies
t0=$(date +%s%N)
drp_stop "$svc_pid" 15 || drp_fail "proxy needed SIGKILL"
t1=$(date +%s%N)
exec 5>&-
expect_eq "exit status after SIGTERM" 0 "$DRP_STOP_STATUS"
drp_wait "STOPPING=1" 5 grep -q '^STOPPING=1' "$notify"
ms=$(((t1 - t0) / 1000000))
drp_log "stopped in $ms ms with a request head pending"
expect_ge "stop time with a pending request (ms)" 1800 "$ms"
expect_le "stop time with a pending request (ms)" 6000 "$ms"
echo "service: PASS"
