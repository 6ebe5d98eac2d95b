#!/bin/bash
# SPDX-License-Identifier: MIT
# Every timeout of docker-registry-proxy.ini(5) against real clients and
# real (or deliberately dead) upstreams, each within its configured time
# and 2 s more:
#   header_timeout     a head that never ends, also trickled a byte at a
#                      time (408, closed), on a fresh connection, inside
#                      an interception, and as the second request of a
#                      kept-alive connection, right away or after an idle
#                      gap: the head gets header_timeout from its first
#                      byte, whatever idle_timeout is
#   idle_timeout       a kept-alive connection, plain and intercepted
#   handshake_timeout  a client that sends no ClientHello after CONNECT;
#                      an upstream that accepts and never answers TLS (504)
#   connect_timeout    an upstream address that drops SYNs (504); one that
#                      refuses answers 502 at once
#   body_timeout       an upstream that never answers a request (504), one
#                      whose body stalls after 1 MiB (the client's transfer
#                      fails, nothing is cached), a client that stops
#                      reading (closed)
#   tunnel_idle_timeout a tunnel with no bytes at all, and one after
#                      traffic that lasted longer than the timeout
# The probes run side by side; each measures its own time.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools python3 curl

HEADER=3 IDLE=6 CONNECT=2 HANDSHAKE=3 BODY=3 TUNNEL=2

drp_start_fakeupstream $((20 * 1024 * 1024))
NS=127.0.0.252
drp_bg deadends-timeouts python3 "$DRP_IT_DIR/deadends.py" "$NS" "$SCEN/ports"
drp_wait_started deadends-timeouts "$DRP_LAST_PID" 10 test -s "$SCEN/ports"
read -r refusing hanging silent <"$SCEN/ports"

DRP_IT_REGISTRIES="registry.test bad.test hang.test silent.test refusing.test" drp_own_proxy \
	"header_timeout = ${HEADER}s
idle_timeout = ${IDLE}s
connect_timeout = ${CONNECT}s
handshake_timeout = ${HANDSHAKE}s
body_timeout = ${BODY}s
tunnel_idle_timeout = ${TUNNEL}s
[resolve]
hang.test = 127.0.0.1:$hanging
silent.test = 127.0.0.1:$silent
refusing.test = 127.0.0.1:$refusing"

probes=()
# probe NAME ARGS...: clientprobe.py in the background, output in NAME.out.
probe()
{
	local name=$1
	shift
	python3 "$DRP_IT_DIR/clientprobe.py" "$PROXY_PORT" "$@" --limit 30 >"$SCEN/$name.out" 2>"$SCEN/$name.err" &
	probes+=($!)
}
# cprobe NAME URL: curl through the proxy; NAME.out is "STATUS
# SECONDS-AFTER-THE-REQUEST-WAS-SENT SECONDS-AFTER-THE-FIRST-BYTE BYTES
# EXIT".
cprobe()
{
	local name=$1 url=$2
	(
		rc=0
		pcurl -o "$SCEN/$name.body" \
			-w '%{http_code} %{time_pretransfer} %{time_starttransfer} %{time_total} %{size_download}\n' \
			"$url" >"$SCEN/$name.w" 2>"$SCEN/$name.err" || rc=$?
		read -r code pre start total size <"$SCEN/$name.w"
		awk -v c="$code" -v p="$pre" -v s="$start" -v t="$total" -v n="$size" -v rc="$rc" \
			'BEGIN { printf "%s %.2f %.2f %d %d\n", c, t - p, (s > 0 ? t - s : -1), n, rc }' >"$SCEN/$name.out"
	) &
	probes+=($!)
}
# within WHAT SECONDS CONFIGURED: SECONDS lies in [CONFIGURED - 0.3,
# CONFIGURED + 2].
within()
{
	awk -v s="$2" -v c="$3" 'BEGIN { exit !(s >= c - 0.3 && s <= c + 2) }' ||
		drp_fail "$1: $2 s, expected $3 s (-0.3/+2)"
	drp_log "ok: $1: $2 s (configured $3 s)"
}
field() { awk -v i="$2" '{ print $i }' "$SCEN/$1.out"; }

layer=$LARGE_LAYER
fmark=$(log_mark "$WORK/logs/fake.out")
amk=$(amark)

probe head-plain slowhead
probe head-tls slowhead --connect registry.test --ca "$PROXY_CA"
probe head-after slowhead --first /healthz
probe head-after-gap slowhead --connect registry.test --ca "$PROXY_CA" --first /v2/ --delay 4
probe idle-plain idle
probe idle-tls idle --connect registry.test --ca "$PROXY_CA"
probe hs-client handshake --connect registry.test
probe tunnel-silent handshake --connect tunnel.test
probe tunnel-after tunnel --connect tunnel.test --ca "$TEST_CA" --path /file --count 3 --every 1
cprobe up-connect https://hang.test/v2/test/small/manifests/v1
cprobe up-refused https://refusing.test/v2/test/small/manifests/v1
cprobe up-handshake https://silent.test/v2/test/small/manifests/v1
cprobe up-mute https://bad.test/v2/test/mute/manifests/v1
cprobe up-stall "https://bad.test/v2/test/stall/blobs/$layer"
python3 "$DRP_IT_DIR/clientprobe.py" "$PROXY_PORT" noread --connect registry.test --ca "$PROXY_CA" \
	--path "/v2/test/large/blobs/$layer" --limit 60 >/dev/null 2>&1 &
noread=$!
for p in "${probes[@]}"; do wait "$p" || drp_fail "a probe failed (pid $p)"; done

for n in head-plain head-tls head-after head-after-gap; do
	expect_eq "$n: status, connection" "408 closed" "$(field "$n" 1) $(field "$n" 3)"
	within "$n: the head's time until 408" "$(field "$n" 2)" $HEADER
done
for n in idle-plain idle-tls; do
	expect_eq "$n: the request" 200 "$(field "$n" 1)"
	within "$n: idle until closed" "$(field "$n" 2)" $IDLE
done
expect_eq "client without ClientHello: CONNECT" 200 "$(field hs-client 1)"
within "client without ClientHello: until closed" "$(field hs-client 2)" $HANDSHAKE
expect_eq "silent tunnel: CONNECT" 200 "$(field tunnel-silent 1)"
within "silent tunnel: until closed" "$(field tunnel-silent 2)" $TUNNEL
expect_eq "busy tunnel: GETs through it, 1 s apart" 3 "$(field tunnel-after 1)"
within "busy tunnel: from its last response until closed" "$(field tunnel-after 2)" $TUNNEL

expect_eq "upstream dropping SYNs: status" 504 "$(field up-connect 1)"
within "upstream dropping SYNs: until the 504" "$(field up-connect 2)" $CONNECT
expect_eq "upstream refusing: status" 502 "$(field up-refused 1)"
expect_le "upstream refusing: ms until the 502" 1000 "$(awk '{ printf "%d", $2 * 1000 }' "$SCEN/up-refused.out")"
expect_eq "upstream without TLS handshake: status" 504 "$(field up-handshake 1)"
within "upstream without TLS handshake: until the 504" "$(field up-handshake 2)" $HANDSHAKE
expect_eq "upstream that never answers: status" 504 "$(field up-mute 1)"
within "upstream that never answers: until the 504" "$(field up-mute 2)" $BODY

# The stalled body: the head and the first MiB, then the transfer fails
# (curl: 18 partial file or 56 receive error), body_timeout after the
# first byte; one upstream GET, nothing cached.
expect_eq "stalled upstream body: status" 200 "$(field up-stall 1)"
expect_match "stalled upstream body: curl fails" '^(18|56)$' "$(field up-stall 5)"
expect_eq "stalled upstream body: bytes the client got" $((1 << 20)) "$(field up-stall 4)"
within "stalled upstream body: first byte until the failure" "$(field up-stall 3)" $BODY
expect_eq "stalled upstream body: upstream GETs" 1 \
	"$(count_since "$WORK/logs/fake.out" "$fmark" "$(req_pat GET "/v2/test/stall/blobs/$layer")")"
drp_wait "the stall in the proxy log" 5 grep -q "upstream body stalled" "$PROXY_DIR/proxy.log"
cache_has_content "$WORK/allblobs/${layer#sha256:}" && drp_fail "the stalled blob is cached"
drp_log "ok: the stalled blob is not cached"

# The client that stopped reading: its request ends body_timeout after
# the last byte it took (the access log's duration, in ms, counts from
# the request: the socket buffers fill in well under a second).
noread_line() { alog_since "$amk" registry.test:443 GET "/v2/test/large/blobs/$layer" | head -n 1; }
noread_logged() { [ -n "$(noread_line)" ]; }
drp_wait "the stalled client's access-log line" 20 noread_logged
line=$(noread_line)
kill "$noread" 2>/dev/null || true
wait "$noread" 2>/dev/null || true
ms=$(echo "$line" | awk '{ print $9 }')
within "client that stopped reading: request until closed" "$(awk -v m="$ms" 'BEGIN { printf "%.2f", m / 1000 }')" $BODY
expect_ge "client that stopped reading: bytes it was sent" 1 "$(echo "$line" | awk '{ print $8 }')"
expect_le "client that stopped reading: bytes it was sent" $(($(stat -c %s "$WORK/allblobs/${layer#sha256:}") - 1)) \
	"$(echo "$line" | awk '{ print $8 }')"

# The access log has the four 408s, and the tunnels with their results.
expect_eq "access log: 408 lines" 4 "$(log_since "$PROXY_DIR/access.log" "$amk" | awk '$6 == 408' | wc -l)"
expect_eq "access log: tunnel lines" "200 TUNNEL
200 TUNNEL" "$(alog_since "$amk" tunnel.test:443 CONNECT - | awk '{ print $6, $11 }')"
expect_eq "proxy log: heads that timed out" 4 "$(grep -c 'request head timed out' "$PROXY_DIR/proxy.log" || true)"
drp_alive "$PROXY_PID" || drp_fail "the proxy died"
