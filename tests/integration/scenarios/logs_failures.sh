#!/bin/bash
# SPDX-License-Identifier: MIT
# Following a failed pull (issue 13): a client that does not trust the
# proxy's CA (curl: OpenSSL, skopeo: Go) gets an access-log line with
# result tls_error and the daemon log says so and how to fix it, under the
# same connection id; a handshake that never comes times out the same way;
# upstream failures (connect, digest mismatch, a short body) are logged at
# notice or above and counted as errors; a long fill logs its progress
# every 10 s, while /metrics shows it in flight with its waiters. Without
# an admin listener /metrics is on the client port. (Own proxy.)
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo
promq() { python3 "$DRP_IT_DIR/promq.py" "$@"; }
layer=${SMALL_LAYERS%% *}
size=$(stat -c %s "$WORK/images/small/blobs/sha256/${layer#sha256:}")
# The slow fill takes about 16 s: one progress line at 10 s, and the
# fill is still in flight for about 6 s more while the test reads
# /metrics after that line (about 1 s was too little on a loaded machine
# under the sanitizers: the fill could end before the scrape).
rate=$((size / 16))
drp_start_fakeupstream $rate
DRP_IT_REGISTRIES="registry.test bad.test stale.test" drp_own_proxy "access_log_format = json
log_level = info
handshake_timeout = 2s"
plog=$PROXY_DIR/proxy.log
alog=$PROXY_DIR/access.log
self=127.0.0.1:$PROXY_PORT
scrape()
{
	curl -sf --max-time 10 "$PROXY_URL/metrics" >"$SCEN/$1" || drp_fail "no /metrics on the client port"
	promq check "$SCEN/$1" || drp_fail "malformed exposition in $1"
}
d() { promq delta "$SCEN/$1" "$SCEN/$2" "$3"; }
# jline MARK FILTER: the first access-log line after MARK that the python
# expression FILTER (on o) accepts, as JSON; waits up to 5 s.
jline()
{
	local i=0 out
	while :; do
		out=$(log_since "$alog" "$1" | python3 -c '
import json, sys
for raw in sys.stdin:
    o = json.loads(raw)
    if '"$2"':
        print(json.dumps(o))
        break')
		if [ -n "$out" ] || [ $i -ge 25 ]; then break; fi
		sleep 0.2
		i=$((i + 1))
	done
	printf '%s\n' "$out"
}
jget() { python3 -c 'import json, sys; v = json.loads(sys.argv[1])[sys.argv[2]]; print("null" if v is None else v)' "$1" "$2"; }

scrape m0
pm0=$(log_mark "$plog")
amk0=$(amark)

# A client without the proxy's CA: curl (OpenSSL sends its TLS 1.3 alert
# in clear) and skopeo (Go).
for client in curl skopeo; do
	pm=$(log_mark "$plog")
	amk=$(amark)
	if [ $client = curl ]; then
		curl -sS --max-time 10 --proxy "$PROXY_URL" --noproxy '' --cacert "$TEST_CA" \
			--capath "$WORK/empty-certs" -o /dev/null https://registry.test/v2/ 2>"$SCEN/err" &&
			drp_fail "curl trusted a certificate it has no CA for"
	else
		via_proxy env SSL_CERT_FILE="$TEST_CA" skopeo inspect --retry-times 0 \
			docker://registry.test/test/small:v1 >/dev/null 2>"$SCEN/err" &&
			drp_fail "skopeo trusted a certificate it has no CA for"
	fi
	wait_log "$plog" "$pm" "rejected the certificate forged for registry.test" 1 5
	hint=$(log_since "$plog" "$pm" | grep -F "rejected the certificate forged for registry.test" | head -n 1)
	expect_match "$client: the hint" "^[^ ]+ warning tls: \[c[0-9]{6}\] 127\.0\.0\.1: the client rejected" "$hint"
	expect_match "$client: the fix" "Install http://$self/ca.crt as a trusted CA" "$hint"
	expect_no_match "$client: no GnuTLS code" "GNUTLS_E" "$hint"
	conn=$(printf '%s' "$hint" | sed -n 's/.*\[\(c[0-9]\{6\}\)\].*/\1/p')
	line=$(jline "$amk" "o['conn'] == '$conn'")
	[ -n "$line" ] || drp_fail "$client: no access-log line for $conn"
	expect_eq "$client: result" tls_error "$(jget "$line" result)"
	expect_eq "$client: method" CONNECT "$(jget "$line" method)"
	expect_eq "$client: host" registry.test:443 "$(jget "$line" host)"
done
scrape m1
# (skopeo tries more than once: as many as the log has.)
hints=$(count_since "$plog" "$pm0" "rejected the certificate forged for registry.test")
expect_ge "hints" 2 "$hints"
expect_eq "client certificate rejections counted" "$hints" \
	"$(d m0 m1 'drp_tls_handshake_failures_total{side="client",reason="certificate"}')"
expect_eq "tls_error lines" "$hints" "$(count_since "$alog" "$amk0" '"result":"tls_error"')"
expect_eq "counted as errors" "$hints" \
	"$(d m0 m1 'drp_requests_total{registry="registry.test",method="connect",result="error"}')"

# A CONNECT whose handshake never comes: timed out after handshake_timeout.
amk=$(amark)
pm=$(log_mark "$plog")
exec 5<>"/dev/tcp/127.0.0.1/$PROXY_PORT"
printf 'CONNECT registry.test:443 HTTP/1.1\r\nHost: registry.test:443\r\nUser-Agent: silent/1\r\n\r\n' >&5
line=$(jline "$amk" "o['ua'] == 'silent/1'")
exec 5>&-
expect_eq "timeout: result" tls_error "$(jget "$line" result)"
expect_eq "timeout logged" 1 "$(count_since "$plog" "$pm" "TLS handshake for registry.test timed out")"
scrape m2
expect_eq "handshake timeout counted" 1 \
	"$(d m1 m2 'drp_tls_handshake_failures_total{side="client",reason="timeout"}')"

# An upstream nothing listens on: 502, logged at notice, an error.
pm=$(log_mark "$plog")
expect_eq "stale.test down" 502 "$(pcurl -o /dev/null -w "%{http_code}" https://stale.test/v2/test/small/tags/list)"
wait_log "$plog" "$pm" "upstream stale.test:443" 1 5
expect_match "connect failure at notice" "^[^ ]+ notice proxy: \[c[0-9]{6}\] upstream stale\.test:443: cannot connect" \
	"$(log_since "$plog" "$pm" | grep -F "upstream stale.test:443" | head -n 1)"

# Wrong bytes (digest mismatch) and a body cut short: the client never
# sees a complete 200 (a reset once the head is out, else a 502), and
# the daemon log says why at notice or above, for which connection.
for kind in bad short; do
	pm=$(log_mark "$plog")
	code=$(pcurl -o /dev/null -w '%{http_code}' "https://bad.test/v2/test/$kind/blobs/$layer" 2>/dev/null) ||
		code=reset
	case $code in
	reset)
		wait_log "$plog" "$pm" "connection reset after" 1 5
		expect_match "$kind: the reset, at notice" "notice proxy: \[c[0-9]{6}\] 127\.0\.0\.1: GET bad\.test/v2/test/$kind/blobs/$layer: connection reset after" \
			"$(log_since "$plog" "$pm")"
		;;
	502) ;;
	*) drp_fail "$kind blob: answered $code, not a reset or 502" ;;
	esac
	drp_log "$kind blob: $code"
	wait_log "$plog" "$pm" "$layer" 1 5
	log_since "$plog" "$pm" >"$SCEN/$kind.log"
done
expect_match "mismatch at err" "err cache: \[c[0-9]{6}\] $layer: the upstream sent [0-9]+ bytes that do not match the digest" \
	"$(cat "$SCEN/bad.log")"
expect_match "short body at notice or above" "(notice|warning) [a-z]+: \[c[0-9]{6}\] .*(closed the connection mid-body|upstream fetch failed)" \
	"$(cat "$SCEN/short.log")"
scrape m3
expect_eq "digest mismatch counted" 1 "$(d m2 m3 drp_digest_mismatches_total)"
expect_eq "the cut transfers are errors" 2 \
	"$(d m2 m3 'drp_requests_total{registry="bad.test",result="error"}')"
expect_eq "stale.test's 502 is an error" 1 \
	"$(d m2 m3 'drp_requests_total{registry="stale.test",result="error",code="5xx"}')"

# A 5xx the proxy made is an error whatever the upstream said: a blob
# whose upstream cannot be reached (no upstream status in the log: none
# answered), a manifest whose bytes do not match the upstream's
# Docker-Content-Digest (the upstream said 200, the client gets 502).
amk=$(amark)
fmark=$(log_mark "$WORK/logs/fake.out")
expect_eq "blob of an unreachable upstream" 502 \
	"$(pcurl -o /dev/null -w '%{http_code}' "https://stale.test/v2/test/small/blobs/$layer")"
line=$(jline "$amk" "o['host'] == 'stale.test:443' and o['path'].endswith('$layer')")
expect_eq "unreachable blob: upstream_status in the log" null "$(jget "$line" upstream_status)"
expect_eq "manifest with a wrong digest" 502 \
	"$(pcurl -o /dev/null -w '%{http_code}' https://bad.test/v2/test/baddigest/manifests/v1)"
wait_log "$WORK/logs/fake.out" "$fmark" '"GET /v2/test/baddigest/manifests/v1 ' 1 5
line=$(jline "$amk" "o['path'] == '/v2/test/baddigest/manifests/v1'")
expect_eq "wrong digest: upstream_status in the log" 200 "$(jget "$line" upstream_status)"
scrape m3b
expect_eq "unreachable blob: an error" 1 \
	"$(d m3 m3b 'drp_requests_total{registry="stale.test",method="get",result="error",code="5xx"}')"
expect_eq "wrong digest: an error" 1 \
	"$(d m3 m3b 'drp_requests_total{registry="bad.test",method="get",result="error",code="5xx"}')"
expect_eq "wrong digest: not a miss" 0 "$(d m3 m3b 'drp_requests_total{registry="bad.test",result="miss"}')"
expect_eq "nothing else counted for bad.test and stale.test" "1 1" \
	"$(d m3 m3b 'drp_requests_total{registry="bad.test"}') $(d m3 m3b 'drp_requests_total{registry="stale.test"}')"

# A long fill: two clients, one fetch; its progress every 10 s at info.
pm=$(log_mark "$plog")
url=https://bad.test/v2/test/slow/blobs/$layer
PCURL_TIMEOUT=120 pcurl -o "$SCEN/slow.1" "$url" &
p1=$!
sleep 0.5
PCURL_TIMEOUT=120 pcurl -o "$SCEN/slow.2" "$url" &
p2=$!
wait_log "$plog" "$pm" "MiB/s, " 1 30
scrape m4
expect_eq "fills in flight" 1 "$(promq sum "$SCEN/m4" drp_fills_in_flight)"
expect_eq "fill waiters" 2 "$(promq sum "$SCEN/m4" drp_fill_waiters)"
expect_match "progress line" "info cache: \[c[0-9]{6}\] $layer: [0-9.]+ MiB of [0-9.]+ MiB \([0-9]+%\) received, [0-9.]+ MiB/s, 2 waiter\(s\)" \
	"$(log_since "$plog" "$pm" | grep -F "MiB/s")"
wait "$p1" || drp_fail "slow client 1 failed"
wait "$p2" || drp_fail "slow client 2 failed"
expect_file_digest "slow client 1" "$SCEN/slow.1" "$layer"
expect_file_digest "slow client 2" "$SCEN/slow.2" "$layer"
scrape m5
expect_eq "fills in flight after" 0 "$(promq sum "$SCEN/m5" drp_fills_in_flight)"
expect_eq "fill waiters after" 0 "$(promq sum "$SCEN/m5" drp_fill_waiters)"
expect_eq "one miss, one coalesced" "1 1" \
	"$(d m4 m5 'drp_requests_total{registry="bad.test",result="miss"}') $(d m4 m5 'drp_requests_total{registry="bad.test",result="coalesced"}')"
