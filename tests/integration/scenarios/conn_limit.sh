#!/bin/bash
# SPDX-License-Identifier: MIT
# max_connections (docker-registry-proxy.ini(5)): with 3 connections open
# (each served a request and kept alive), a fourth is answered "503
# Service Unavailable" and closed, with a log line (at most one per 10 s
# however many are refused, and a count in /metrics); once one of the
# three closes, a new connection is served again. A connection inside an
# interception, with a transfer under way, counts as one.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools python3 curl
drp_own_proxy "max_connections = 3"

out=$(python3 "$DRP_IT_DIR/clientprobe.py" "$PROXY_PORT" hold --count 3 --limit 20)
expect_eq "3 connections served, the 4th answered" "3 503" "$(echo "$out" | sed -n 1p)"
expect_eq "a new connection once one of them closed" 200 "$(echo "$out" | sed -n 2p)"
expect_match "proxy log: the refusal" 'connection limit \(3\) reached' "$(cat "$PROXY_DIR/proxy.log")"

# A client that keeps retrying at the limit: 20 more refusals are
# counted in /metrics, and logged at most once per 10 s with how many
# there were (not a line each).
out=$(python3 "$DRP_IT_DIR/clientprobe.py" "$PROXY_PORT" hold --count 3 --extra 20 --limit 20)
expect_eq "3 connections served, 20 more answered" "3 503" "$(echo "$out" | sed -n 1p)"
curl -s --noproxy '*' "http://127.0.0.1:$PROXY_PORT/metrics" >"$SCEN/metrics"
# (at least: a probe's retries for the freed place can be refused too)
n=$(python3 "$DRP_IT_DIR/promq.py" sum "$SCEN/metrics" drp_connections_over_limit_total)
[ "$n" -ge 21 ] || drp_fail "connections answered 503 (/metrics): expected >= 21, got $n"
drp_log "ok: connections answered 503 (/metrics) = $n (>= 21)"
lines=$(grep -c 'connection limit (3) reached' "$PROXY_DIR/proxy.log" || true)
drp_log "log lines for 21 refusals: $lines"
expect_le "log lines for 21 refusals" 2 "$lines"
expect_eq "log lines announcing the limit" 1 "$(grep -c 'new connections are answered 503' "$PROXY_DIR/proxy.log" || true)"

# An intercepted connection holds a place: with it open (its transfer
# paused after the first MiB), two more plain connections are served and
# a third is refused.
expect_eq "healthz with no other connection" ok "$(curl -sS --max-time 10 "$PROXY_URL/healthz" || true)"
python3 "$DRP_IT_DIR/clientprobe.py" "$PROXY_PORT" twostep --connect registry.test --ca "$PROXY_CA" \
	--path "/v2/test/large/blobs/$LARGE_LAYER" --ready "$SCEN/r1" --go "$SCEN/go" --second /v2/ --limit 30 \
	>"$SCEN/held.out" 2>&1 &
held=$!
drp_wait "the intercepted transfer under way" 20 test -e "$SCEN/r1"
out=$(python3 "$DRP_IT_DIR/clientprobe.py" "$PROXY_PORT" hold --count 2 --limit 20)
expect_eq "beside an intercepted connection: 2 served, the next answered" "2 503" "$(echo "$out" | sed -n 1p)"
touch "$SCEN/go"
wait "$held" || drp_fail "the held transfer failed: $(cat "$SCEN/held.out")"
expect_eq "the held transfer" "first 200 $LARGE_LAYER" "$(sed -n 1p "$SCEN/held.out")"
