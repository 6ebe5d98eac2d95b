#!/bin/bash
# SPDX-License-Identifier: MIT
# warm on its own (no daemon answers) runs the daemon's request path in
# its own process, the hashing of cold blobs included: jobs of a pool
# thread hash them, not the one loop that also downloads them. strace
# sees the hash jobs read the spools back (pread64 of 128 KiB pieces)
# from a thread other than the main one, which runs the loop. The blobs are
# fetched once and stored. (Own proxy, stopped first; empty cache.)
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools strace
drp_own_proxy
reg=$(reg_log open)
ini=$PROXY_DIR/proxy.ini
drp_unwatch_proxies
drp_stop "$PROXY_PID" 15 || drp_fail "the proxy did not stop"

mark=$(log_mark "$reg")
# LeakSanitizer cannot run under ptrace: the traced command checks no
# leaks (a sanitizer build's other runs of warm still do).
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
	strace -f -qq -o "$SCEN/trace" -e trace=mmap,pread64 \
	"$DRP_PROXY" -c "$ini" warm registry.test/test/small:v1 >"$SCEN/warm" 2>&1 ||
	drp_fail "standalone warm failed: $(cat "$SCEN/warm")"
sed 's/^/    /' "$SCEN/warm" >&2
nsmall=$(wc -w <<<"$SMALL_BLOBS")
expect_match "standalone warm" "^warmed registry\.test/test/small:v1: $((nsmall + 1)) object\(s\), $((nsmall + 1)) fetched" \
	"$(cat "$SCEN/warm")"
# The registry logs a request once it has answered it, which can be just
# after the warm process has its bytes: its own request makes the counts
# final.
settle_upstream registry.test "$reg"
for bl in $SMALL_BLOBS; do
	expect_eq "upstream GETs of ${bl:7:12}" 1 "$(count_since "$reg" "$mark" "$(req_pat GET "/v2/test/small/blobs/$bl")")"
done

# The process's first line is its main thread's (strace -f -o: "PID call").
main=$(awk 'NR == 1 { print $1 }' "$SCEN/trace")
pieces() { awk -v main="$main" -v want="$1" '$2 ~ /^pread64\(/ && /, 131072, [0-9]+\) = [0-9]+$/ &&
	((want == "main") == ($1 == main)) { n++ } END { print n + 0 }' "$SCEN/trace"; }
drp_log "spool pieces read back for hashing: $(pieces main) by the loop, $(pieces pool) by other threads"
expect_ge "spool pieces read back by a pool thread (the hash jobs)" 1 "$(pieces pool)"
expect_eq "spool pieces read back by the loop" 0 "$(pieces main)"
