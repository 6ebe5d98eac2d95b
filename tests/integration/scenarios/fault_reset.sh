#!/bin/bash
# SPDX-License-Identifier: MIT
# The upstream resets the connection half-way through a blob that 16
# clients are waiting for (one fill, fakeupstream's test/reset/: the
# right bytes at 10 MiB/s up to half the blob, then a TCP RST). Every
# client gets a clean error (its transfer fails short of the length it
# was promised) or the right bytes, never a complete response with wrong
# ones; the upstream saw one GET; nothing is cached (the blob's bytes are
# nowhere in the cache, `cache verify` finds nothing bad); the daemon
# lives, and the next fetch of the blob gets it whole and caches it.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools curl
drp_start_fakeupstream $((10 * 1024 * 1024))
DRP_IT_REGISTRIES="registry.test bad.test" drp_own_proxy
layer=$LARGE_LAYER
blob=$WORK/allblobs/${layer#sha256:}
size=$(stat -c %s "$blob")
fake=$WORK/logs/fake.out
reset_get=$(req_pat GET "/v2/test/reset/blobs/$layer")
url=https://bad.test/v2/test/reset/blobs/$layer

fmark=$(log_mark "$fake")
amk=$(amark)
pids=()
# client I: curl's exit status and the bytes it got, in $SCEN/rc.I
client()
{
	(
		rc=0
		PCURL_TIMEOUT=120 pcurl -o "$SCEN/got.$1" "$url" 2>"$SCEN/err.$1" || rc=$?
		echo "$rc $(stat -c %s "$SCEN/got.$1" 2>/dev/null || echo 0)" >"$SCEN/rc.$1"
	) &
	pids+=($!)
}
# The reset waits until every client has joined the fill (the fake holds
# it at half the blob while $gate exists): 15 clients started after the
# fill's GET, each with its TLS handshake, could otherwise come after the
# reset on a busy machine (half the blob at 10 MiB/s is 3.2 s with 64 MiB)
# and start a second fill.
gate=$WORK/resetgate
touch "$gate"
drp_at_exit "rm -f $gate"
client 1
# The first one started the fill (the upstream logs the GET with its
# head); the other 15 join it while the body is under way.
wait_log "$fake" "$fmark" "$reset_get" 1 20
for i in $(seq 2 16); do client "$i"; done
waiters() { curl -s --max-time 5 "$PROXY_URL/metrics" | awk '$1 == "drp_fill_waiters" { v = $2 } END { print v + 0 }'; }
all_joined() { [ "$(waiters)" -ge 16 ]; }
drp_wait "the 16 clients waiting on the one fill" 60 all_joined
rm -f "$gate"
for p in "${pids[@]}"; do wait "$p"; done

clean_errors=0
for i in $(seq 1 16); do
	read -r rc got <"$SCEN/rc.$i"
	if [ "$rc" = 0 ]; then
		expect_file_digest "client $i exited 0: its bytes" "$SCEN/got.$i" "$layer"
	else
		expect_le "client $i (curl exit $rc): bytes, short of the blob" $((size - 1)) "$got"
		clean_errors=$((clean_errors + 1))
	fi
	rm -f "$SCEN/got.$i"
done
drp_log "clients with a clean error: $clean_errors of 16 ($(sed -n 1p "$SCEN/err.1"))"
expect_eq "clients that saw the reset as an error" 16 "$clean_errors"
expect_eq "upstream GETs (one fill for the 16)" 1 "$(count_since "$fake" "$fmark" "$reset_get")"
anext_n 16 "$amk" bad.test:443 GET "/v2/test/reset/blobs/$layer" >"$SCEN/alog"
expect_eq "access-log lines" 16 "$(wc -l <"$SCEN/alog")"
expect_eq "access-log results other than MISS and COALESCED" "" \
	"$(awk '$11 != "MISS" && $11 != "COALESCED" { print $6, $11 }' "$SCEN/alog")"
drp_alive "$PROXY_PID" || drp_fail "the proxy died"
drp_wait "the failed fetch in the proxy log" 5 grep -q "${layer}: upstream fetch failed" "$PROXY_DIR/proxy.log"
drp_log "proxy log: $(grep -m1 "${layer}: upstream fetch failed" "$PROXY_DIR/proxy.log")"
cache_has_content "$blob" && drp_fail "the blob is cached after the reset"
drp_log "ok: the blob is not cached"
"$DRP_PROXY" -c "$PROXY_DIR/proxy.ini" cache verify >"$SCEN/verify" 2>&1 ||
	drp_fail "cache verify: $(cat "$SCEN/verify")"
expect_match "cache verify: nothing bad" '^verified [0-9]+ object\(s\), .*: 0 bad' "$(cat "$SCEN/verify")"

# The next fetch (the upstream behaving) gets the blob whole, caches it;
# the one after that is served with no upstream GET.
good_get=$(req_pat GET "/v2/test/good/blobs/$layer")
fmark=$(log_mark "$fake")
PCURL_TIMEOUT=120 pcurl -o "$SCEN/good" "https://bad.test/v2/test/good/blobs/$layer"
expect_file_digest "the blob after the reset" "$SCEN/good" "$layer"
drp_wait "the blob stored" 20 cache_has_content "$SCEN/good"
rm -f "$SCEN/good"
PCURL_TIMEOUT=120 pcurl -o "$SCEN/good" "https://bad.test/v2/test/good/blobs/$layer"
expect_file_digest "the blob, cached" "$SCEN/good" "$layer"
rm -f "$SCEN/good"
expect_eq "upstream GETs for the two fetches" 1 "$(count_since "$fake" "$fmark" "$good_get")"
