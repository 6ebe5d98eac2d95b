#!/bin/bash
# SPDX-License-Identifier: MIT
# Cold blobs are hashed by the worker pool's threads, not by a thread of
# their own: while four cold fills of distinct blobs stream from a slow
# upstream, the proxy runs exactly the threads it ran when idle (its
# loops, the pool, the main thread). Each blob still arrives with the
# right bytes, is verified and stored: asked again, it costs the
# upstream nothing.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
rate=$((64 * 1024))
drp_start_fakeupstream $rate
DRP_IT_REGISTRIES="registry.test bad.test" drp_proxy_conf cache-fpool "$(drp_free_port)"
drp_start_proxy cache-fpool

# Four distinct layers of 256 and 512 KiB: 4 to 8 s each at $rate.
read -r _ amd64 <<<"$MULTI_AMD64_BLOBS"
read -r _ arm64 <<<"$MULTI_ARM64_BLOBS"
layers="$SMALL_LAYERS $amd64 $arm64"

threads() { find /proc/"$PROXY_PID"/task -mindepth 1 -maxdepth 1 | wc -l; }

# spools_with_bytes: the proxy's spool files (unlinked temp files in the
# cache's tmp/) that have received body bytes; a fill hashes from its
# upstream's head on.
spools_with_bytes()
{
	local l n=0
	for l in /proc/"$PROXY_PID"/fd/*; do
		case "$(readlink "$l" 2>/dev/null)" in
		*/tmp/*"(deleted)" | */tmp/\#*)
			[ "$(stat -L -c %s "$l" 2>/dev/null || echo 0)" -gt 0 ] && n=$((n + 1))
			;;
		esac
	done
	echo "$n"
}
four_spools() { [ "$(spools_with_bytes)" -ge 4 ]; }

# The idle count, after one request has been served end to end.
pcurl -o /dev/null https://bad.test/v2/
idle=$(threads)
drp_log "threads when idle: $idle"

# The fake holds each slow blob at half while $WORK/slowgate exists: the
# four fills are in flight together, however long their clients took to
# start (each fill is only 4 to 8 s).
touch "$WORK/slowgate"
drp_at_exit "rm -f $WORK/slowgate"
mark=$(log_mark "$WORK/logs/fake.out")
pids=()
for l in $layers; do
	PCURL_TIMEOUT=60 pcurl -o "$SCEN/${l#sha256:}" "https://bad.test/v2/test/slow/blobs/$l" &
	pids+=($!)
done
drp_wait "four fills receiving bytes" 10 four_spools
busy=$(threads)
drp_log "threads with four cold fills in flight: $busy"
expect_eq "threads during four cold fills (as when idle)" "$idle" "$busy"
rm -f "$WORK/slowgate"
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
expect_eq "every client exited 0" 0 "$rc"
for l in $layers; do
	expect_file_digest "blob ${l:7:12}" "$SCEN/${l#sha256:}" "$l"
done

# Verified and stored: the same blobs again cost no upstream GET.
for l in $layers; do
	wait_log "$WORK/logs/fake.out" "$mark" "$(req_pat GET "/v2/test/slow/blobs/$l")" 1 5
done
mark=$(log_mark "$WORK/logs/fake.out")
for l in $layers; do
	pcurl -o "$SCEN/again" "https://bad.test/v2/test/slow/blobs/$l"
	expect_file_digest "blob ${l:7:12} again" "$SCEN/again" "$l"
done
pcurl -o /dev/null https://bad.test/v2/ # a fence in the upstream's log
wait_log "$WORK/logs/fake.out" "$mark" "$(req_pat GET /v2/)" 1 5
expect_eq "upstream blob GETs for the second round" 0 \
	"$(count_since "$WORK/logs/fake.out" "$mark" "/blobs/")"
expect_eq "threads after the fills" "$idle" "$(threads)"
