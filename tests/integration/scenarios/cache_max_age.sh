#!/bin/bash
# [cache] max_age (issue 13): the daemon's sweep removes an object nobody
# used for max_age (logged, one line per object), keeps one that clients
# keep using, and the removed blob costs an upstream GET again. (Own
# proxy, empty cache, max_age = 3s: the sweep looks every second.)
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_own_proxy "log_level = info" "max_age = 3s"
reg=$(reg_log open)
obj() { echo "$PROXY_DIR/cache/blobs/sha256/${1:7:2}/${1#sha256:}"; }
a=${SMALL_LAYERS%% *}
b=${SMALL_LAYERS##* }
[ "$a" != "$b" ] || drp_fail "the small image needs two layers"
url=https://registry.test/v2/test/small/blobs
log=$PROXY_DIR/proxy.log

pcurl -o "$SCEN/a" "$url/$a"
pcurl -o "$SCEN/b" "$url/$b"
expect_file_digest "a" "$SCEN/a" "$a"
expect_file_digest "b" "$SCEN/b" "$b"
stored() { [ -s "$(obj "$a")" ] && [ -s "$(obj "$b")" ]; }
drp_wait "both layers in the cache" 10 stored

# b stays in use (a HEAD, answered from the cache, twice a second) while
# a ages.
(while :; do
	pcurl -o /dev/null -I "$url/$b" || true
	sleep 0.5 # the pace of the use, not a wait
done) &
user=$!
drp_at_exit "kill $user 2>/dev/null"
drp_wait "the sweep to remove a" 20 grep -q "max_age: removed $a " "$log"
kill "$user"
wait "$user" 2>/dev/null || true
grep "max_age" "$log" | sed 's/^/    /' >&2
[ ! -e "$(obj "$a")" ] || drp_fail "a is still in the cache directory"
[ -s "$(obj "$b")" ] || drp_fail "b, in use, was removed"
expect_eq "removal lines for b" 0 "$(grep -c "max_age: removed $b " "$log" || true)"
expect_match "the sweep's summary" "notice cache: max_age 3s: removed [0-9]+ object\(s\) unused for that long" \
	"$(cat "$log")"
expect_match "a's line says since when" "max_age: removed $a \([0-9.]+ KiB\), unused since 20[0-9-]+T[0-9:]+Z" \
	"$(cat "$log")"

# Gone means gone: the next GET fetches it again.
mark=$(log_mark "$reg")
pcurl -o "$SCEN/a2" "$url/$a"
expect_file_digest "a again" "$SCEN/a2" "$a"
wait_log "$reg" "$mark" "$(req_pat GET "/v2/test/small/blobs/$a")" 1 5
expect_eq "upstream GETs for a after its removal" 1 \
	"$(count_since "$reg" "$mark" "$(req_pat GET "/v2/test/small/blobs/$a")")"
