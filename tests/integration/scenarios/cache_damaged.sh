#!/bin/bash
# SPDX-License-Identifier: MIT
# The stored file of a cached blob is deleted, then truncated, under the
# proxy (an admin's rm, disk trouble). The next GET finds out before the
# response head: it is a miss, logged, the object leaves the index, the
# blob is fetched again (exactly one upstream GET) and the client gets the
# right bytes. The proxy keeps running. (Own proxy, empty cache.)
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_own_proxy
reg=$(reg_log open)
layer=${SMALL_LAYERS%% *}
hex=${layer#sha256:}
want=$WORK/images/small/blobs/sha256/$hex
stored=$PROXY_DIR/cache/blobs/sha256/${hex:0:2}/$hex
url=https://registry.test/v2/test/small/blobs/$layer

stored_ok() { [ "$(stat -c %s "$stored" 2>/dev/null)" = "$(stat -c %s "$want")" ]; }
# The proxy's own count of requests by result (/metrics).
counted() {
	curl -s --noproxy '*' "http://127.0.0.1:$PROXY_PORT/metrics" >"$SCEN/metrics"
	python3 "$DRP_IT_DIR/promq.py" sum "$SCEN/metrics" "drp_requests_total{result=\"${1,,}\"}"
}

pcurl -o "$SCEN/got" "$url"
expect_file_digest "cold GET" "$SCEN/got" "$layer"
drp_wait "the blob in the cache" 10 stored_ok
pcurl -o "$SCEN/got" -D "$SCEN/h" "$url"
expect_file_digest "warm GET" "$SCEN/got" "$layer"
expect_eq "warm GET X-Cache" HIT "$(hdr X-Cache <"$SCEN/h")"

for damage in delete truncate; do
	case $damage in
	delete) rm -f "$stored" ;;
	truncate) truncate -s 1000 "$stored" ;;
	esac
	mark=$(log_mark "$reg")
	hits=$(counted HIT) misses=$(counted MISS)
	code=$(pcurl -o "$SCEN/got" -w '%{http_code}' "$url" 2>"$SCEN/err") || true
	drp_alive "$PROXY_PID" || drp_fail "$damage: the proxy died"
	expect_eq "$damage: status" 200 "$code"
	expect_file_digest "$damage: bytes" "$SCEN/got" "$layer"
	# A miss, counted once: not a hit as well.
	expect_eq "$damage: HIT count" "$hits" "$(counted HIT)"
	expect_eq "$damage: MISS count" $((misses + 1)) "$(counted MISS)"
	wait_log "$reg" "$mark" "$(req_pat GET "/v2/test/small/blobs/$layer")" 1 5
	settle_upstream registry.test "$reg" # a second upstream GET would be logged now
	expect_eq "$damage: upstream GETs" 1 \
		"$(count_since "$reg" "$mark" "$(req_pat GET "/v2/test/small/blobs/$layer")")"
	# Stored again, and served from the cache again.
	drp_wait "$damage: the blob back in the cache" 10 stored_ok
	mark=$(log_mark "$reg")
	pcurl -o "$SCEN/got" -D "$SCEN/h" "$url"
	expect_file_digest "$damage: next GET" "$SCEN/got" "$layer"
	expect_eq "$damage: next GET X-Cache" HIT "$(hdr X-Cache <"$SCEN/h")"
	expect_eq "$damage: upstream GETs for the next GET" 0 \
		"$(count_since "$reg" "$mark" "$(req_pat GET "/v2/test/small/blobs/$layer")")"
done
grep -E "$hex.*(missing|differs|damaged)" "$PROXY_DIR/proxy.log" |
	drp_log_first 3 "proxy log: "
[ "$(grep -cE "$hex.*(missing|differs)" "$PROXY_DIR/proxy.log")" -ge 2 ] ||
	drp_fail "the proxy did not log the damaged object twice"

# Damage found mid-body: the head is out, so only that client's transfer
# can fail (a reset, never a clean short answer); the object is dropped
# and the next GET fetches it again and serves the right bytes.
large=$LARGE_LAYER
lhex=${large#sha256:}
lwant=$WORK/images/large/blobs/sha256/$lhex
lstored=$PROXY_DIR/cache/blobs/sha256/${lhex:0:2}/$lhex
lurl=https://registry.test/v2/test/large/blobs/$large
lstored_ok() { [ "$(stat -c %s "$lstored" 2>/dev/null)" = "$(stat -c %s "$lwant")" ]; }
pcurl -o "$SCEN/large" "$lurl"
expect_file_digest "large: cold GET" "$SCEN/large" "$large"
drp_wait "the large blob in the cache" 30 lstored_ok
rm -f "$SCEN/large"
rc=0
PCURL_TIMEOUT=120 pcurl --limit-rate 2M -o "$SCEN/large" "$lurl" 2>"$SCEN/err" &
client=$!
has_some() { [ "$(stat -c %s "$SCEN/large" 2>/dev/null || echo 0)" -gt 1000000 ]; }
drp_wait "the first megabyte of the hit" 20 has_some
truncate -s 0 "$lstored"
wait "$client" || rc=$?
drp_alive "$PROXY_PID" || drp_fail "mid-body: the proxy died"
[ $rc != 0 ] || drp_fail "mid-body: a clean response despite the truncated file ($(stat -c %s "$SCEN/large") bytes)"
drp_log "ok: mid-body: the transfer failed (curl exit $rc after $(stat -c %s "$SCEN/large") bytes)"
mark=$(log_mark "$reg")
pcurl -o "$SCEN/large" "$lurl"
expect_file_digest "mid-body: next GET" "$SCEN/large" "$large"
wait_log "$reg" "$mark" "$(req_pat GET "/v2/test/large/blobs/$large")" 1 5
expect_eq "mid-body: upstream GETs for the next GET" 1 \
	"$(count_since "$reg" "$mark" "$(req_pat GET "/v2/test/large/blobs/$large")")"
grep -E "$lhex.*(shorter|unreadable)" "$PROXY_DIR/proxy.log" |
	drp_log_first 2 "proxy log: "
