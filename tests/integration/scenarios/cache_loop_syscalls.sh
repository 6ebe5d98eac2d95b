#!/bin/bash
# SPDX-License-Identifier: MIT
# Nothing that waits for the disk's metadata runs on an event loop: while
# a cold pull stores blobs, manifests, their media types, "seen" marks
# and tag records, and a second pull revalidates the tag (tag_ttl 0),
# stores its record again, and finds a stored layer damaged (truncated
# under the proxy: dropped from the cache and fetched again), strace sees
# every rename, link, unlink and fsync of the proxy come from a thread
# that never waits in epoll (the worker pool), none from a loop. And they
# did happen: the records are on disk once the pool has written them, the
# damaged layer is stored again, and a third pull by the tag is answered
# from them.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo strace
drp_proxy_conf loop-sys "$(drp_free_port)" "" "tag_ttl = 0s"
drp_start_proxy loop-sys
reg=$(reg_log open)

# The loops are the threads seen in epoll_wait; the rest is the trace.
strace -f -qq -o "$SCEN/trace" -p "$PROXY_PID" \
	-e trace=epoll_wait,epoll_pwait,rename,renameat,renameat2,link,linkat,unlink,unlinkat,fsync,fdatasync,syncfs &
tracer=$!
drp_at_exit "kill $tracer 2>/dev/null"
traced() { [ "$(awk '{ print $1 }' "$SCEN/trace" 2>/dev/null | sort -u | wc -l)" -gt 0 ]; }
pcurl -o /dev/null https://registry.test/v2/
drp_wait "strace to see the proxy" 10 traced

pskopeo copy --quiet --retry-times 0 docker://registry.test/test/small:v1 "dir:$SCEN/one"
check_dir_image "$SCEN/one" "$SMALL_DIGEST" $SMALL_BLOBS

# Damage one stored layer: the second pull opens it on a loop, finds it
# short, and drops it.
layer=${SMALL_LAYERS%% *}
hex=${layer#sha256:}
want=$WORK/images/small/blobs/sha256/$hex
stored=$PROXY_DIR/cache/blobs/sha256/${hex:0:2}/$hex
stored_ok() { [ "$(stat -c %s "$stored" 2>/dev/null)" = "$(stat -c %s "$want")" ]; }
drp_wait "the layer in the cache" 10 stored_ok
truncate -s 1000 "$stored"

mark=$(log_mark "$reg")
pskopeo copy --quiet --retry-times 0 docker://registry.test/test/small:v1 "dir:$SCEN/two"
check_dir_image "$SCEN/two" "$SMALL_DIGEST" $SMALL_BLOBS
wait_log "$reg" "$mark" "$(req_pat HEAD /v2/test/small/manifests/v1)" 1 5
wait_log "$reg" "$mark" "$(req_pat GET "/v2/test/small/blobs/$layer")" 1 5
grep -qE "$hex.*differs" "$PROXY_DIR/proxy.log" || drp_fail "the damaged layer was not dropped"

# Written: every record the pulls made is on disk (the pool ran its
# queue), so stop tracing once the cache's tmp/ is empty again.
tmp_empty() { [ -z "$(ls -A "$PROXY_DIR/cache/tmp")" ]; }
drp_wait "the damaged layer stored again" 10 stored_ok
drp_wait "the stores to finish" 10 tmp_empty
kill -INT "$tracer"
wait "$tracer" || true

loops=$(awk '$2 ~ /^epoll_p?wait\(/ { print $1 }' "$SCEN/trace" | sort -u | tr '\n' ' ')
drp_log "loop threads: $loops"
[ -n "$loops" ] || drp_fail "no loop thread seen in epoll_wait"
awk -v loops="$loops" '
	BEGIN { n = split(loops, l, " "); for (i = 1; i <= n; i++) loop[l[i]] = 1 }
	$2 ~ /^(rename|renameat2?|link|linkat|unlink|unlinkat|fsync|fdatasync|syncfs)\(/ {
		print (($1 in loop) ? "LOOP " : "pool ") $0
	}' "$SCEN/trace" >"$SCEN/disk"
{ grep '^LOOP ' "$SCEN/disk" || true; } | drp_log_first 5 "on a loop: "
expect_eq "renames, links, unlinks and fsyncs on a loop thread" 0 "$(grep -c '^LOOP ' "$SCEN/disk" || true)"
# The test can fail: the pool did write the records and store the blobs.
expect_ge "metadata records renamed into place by the pool" 4 "$(grep -c '^pool .*rename.*"meta/' "$SCEN/disk" || true)"
expect_ge "fsyncs by the pool" 1 "$(grep -c '^pool .*fsync(' "$SCEN/disk" || true)"
drp_log "ok: $(grep -c '^pool ' "$SCEN/disk") renames/links/unlinks/fsyncs, all by the pool"

# The records are there: a third pull by the tag costs only the HEAD.
mark=$(log_mark "$reg")
pskopeo copy --quiet --retry-times 0 docker://registry.test/test/small:v1 "dir:$SCEN/three"
check_dir_image "$SCEN/three" "$SMALL_DIGEST" $SMALL_BLOBS
pcurl -o /dev/null https://registry.test/v2/ # a fence in the registry's log
wait_log "$reg" "$mark" "$(req_pat GET /v2/)" 1 5
expect_eq "registry GETs of manifests and blobs for the third pull" 0 \
	"$(count_since "$reg" "$mark" '"GET /v2/test/small/' )"
