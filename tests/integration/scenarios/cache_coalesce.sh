#!/bin/bash
# SPDX-License-Identifier: MIT
# Concurrent cold fetches of one large blob: exactly one upstream GET,
# every client streams as the bytes arrive (first byte long before the
# last), a Range client in the middle gets its bytes, and the client that
# started the fetch may leave without stopping it. The upstream is the
# slow fake (bad.test, test/slow/...) so the fetch is really in flight.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
rate=$((20 * 1024 * 1024))
# Under a wrapper (valgrind) the proxy is many times slower: a slower
# upstream keeps the fetch in flight while every client arrives.
if [ -n "${DRP_PROXY_WRAPPER:-}" ]; then rate=$((rate / 10)); fi
drp_start_fakeupstream $rate
DRP_IT_REGISTRIES="registry.test bad.test" drp_proxy_conf cache-coal "$(drp_free_port)"
drp_start_proxy cache-coal
layer=$LARGE_LAYER
size=$(stat -c %s "$WORK/allblobs/${layer#sha256:}")
url=https://bad.test/v2/test/slow/blobs/$layer
fetch_s=$(awk -v s="$size" -v r="$rate" 'BEGIN { printf "%.2f", s / r }')
drp_log "upstream fetch takes about $fetch_s s"

mark=$(log_mark "$WORK/logs/fake.out")
amk=$(amark)
# The first client starts the fetch, then goes away after 1 s.
PCURL_TIMEOUT=1 pcurl -o /dev/null "$url" 2>/dev/null &
first=$!
# The fill is under way once the upstream has the GET (it logs it with
# the response head).
wait_log "$WORK/logs/fake.out" "$mark" "$(req_pat GET "/v2/test/slow/blobs/$layer")" 1 5
pids=()
for i in 1 2 3 4; do
	PCURL_TIMEOUT=300 pcurl -o "$SCEN/large.$i" -w '%{time_starttransfer} %{time_total}\n' "$url" >"$SCEN/t.$i" &
	pids+=($!)
done
PCURL_TIMEOUT=300 pcurl -o "$SCEN/range" -w '%{http_code}' -r 1048576-2097151 "$url" >"$SCEN/range.code" &
pids+=($!)
wait $first || true
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
expect_eq "every client exited 0" 0 "$rc"
for i in 1 2 3 4; do
	expect_file_digest "client $i" "$SCEN/large.$i" "$layer"
	rm -f "$SCEN/large.$i"
	# Streamed, not stored and forwarded: the first byte came before
	# half the fetch time.
	read -r ttfb total <"$SCEN/t.$i"
	drp_log "client $i: first byte after $ttfb s, done after $total s"
	awk -v a="$ttfb" -v b="$fetch_s" 'BEGIN { exit !(a < b / 2) }' ||
		drp_fail "client $i got its first byte after $ttfb s (fetch takes $fetch_s s)"
done
expect_eq "Range client status" 206 "$(cat "$SCEN/range.code")"
expect_eq "Range client bytes" "$(tail -c +1048577 "$WORK/allblobs/${layer#sha256:}" | head -c 1048576 | sha256sum)" \
	"$(sha256sum <"$SCEN/range")"
wait_log "$WORK/logs/fake.out" "$mark" "$(req_pat GET "/v2/test/slow/blobs/$layer")" 1 5
expect_eq "upstream GETs" 1 "$(count_since "$WORK/logs/fake.out" "$mark" "$(req_pat GET "/v2/test/slow/blobs/$layer")")"
# Six requests for a cacheable blob: every line says MISS, COALESCED or
# HIT (not PASS), and some waiters really were COALESCED.
anext_n 6 "$amk" bad.test:443 GET "/v2/test/slow/blobs/$layer" >"$SCEN/alog"
expect_eq "access-log lines" 6 "$(wc -l <"$SCEN/alog")"
expect_eq "access-log results other than MISS, COALESCED, HIT" "" \
	"$(awk '$11 != "MISS" && $11 != "COALESCED" && $11 != "HIT" { print $6, $8, $11 }' "$SCEN/alog")"
expect_ge "access-log COALESCED lines" 3 "$(awk '$11 == "COALESCED"' "$SCEN/alog" | wc -l)"

# Afterwards: a hit, still no second upstream GET.
PCURL_TIMEOUT=300 pcurl -o "$SCEN/large.5" -D "$SCEN/h" "$url"
expect_file_digest "later client" "$SCEN/large.5" "$layer"
expect_eq "later client X-Cache" HIT "$(hdr X-Cache <"$SCEN/h")"
expect_eq "upstream GETs in the end" 1 "$(count_since "$WORK/logs/fake.out" "$mark" "$(req_pat GET "/v2/test/slow/blobs/$layer")")"
