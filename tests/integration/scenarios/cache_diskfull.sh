#!/bin/bash
# SPDX-License-Identifier: MIT
# The cache's disk is too small for a layer (a 16 MiB tmpfs, whatever
# max_size says): the pull still succeeds byte for byte, passed through
# and logged, the layer is not cached (the next request goes upstream
# again) while the small blobs are; once the disk has room again the
# layer is cached (the request after that is a HIT, no upstream GET).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo mount umount
name=cache-diskfull
cdir=$WORK/$name/cache
mkdir -p "$cdir"
mount -t tmpfs -o size=16m drp-diskfull "$cdir" || drp_fail "cannot mount a tmpfs on $cdir"
drp_at_exit "umount -l '$cdir'"
drp_proxy_conf "$name" "$(drp_free_port)"
drp_start_proxy "$name"
reg=$(reg_log open)
layer_get=$(req_pat GET "/v2/test/large/blobs/$LARGE_LAYER")

mark=$(log_mark "$reg")
pskopeo copy --quiet --retry-times 0 docker://registry.test/test/large:v1 "dir:$SCEN/large.1"
check_dir_image "$SCEN/large.1" "$LARGE_DIGEST" $LARGE_BLOBS
rm -rf "$SCEN/large.1"
expect_match "proxy log: passed through for lack of room" \
	"${LARGE_LAYER}: no room for [0-9]* bytes on the spool's disk" "$(cat "$PROXY_DIR/proxy.log")"
expect_match "access log: the layer passed through" \
	"/v2/test/large/blobs/$LARGE_LAYER 200 .* PASS" "$(cat "$PROXY_DIR/access.log")"

# The small image fits: cached, its second fetch is a HIT.
pskopeo copy --quiet --retry-times 0 docker://registry.test/test/small:v1 "dir:$SCEN/small"
check_dir_image "$SCEN/small" "$SMALL_DIGEST" $SMALL_BLOBS
small_layer=${SMALL_LAYERS%% *}
# Stored by a background thread: wait for it.
small_stored() { cache_has_content "$WORK/images/small/blobs/sha256/${small_layer#sha256:}"; }
drp_wait "the small layer stored" 10 small_stored
code=$(pcurl -o /dev/null -D "$SCEN/h" -w '%{http_code}' "https://registry.test/v2/test/small/blobs/$small_layer")
expect_eq "small layer status" 200 "$code"
expect_eq "small layer X-Cache" HIT "$(hdr X-Cache <"$SCEN/h")"

# Not cached: the next request for the layer goes upstream again.
code=$(pcurl -o "$SCEN/blob" -D "$SCEN/h" -w '%{http_code}' "https://registry.test/v2/test/large/blobs/$LARGE_LAYER")
expect_eq "second layer GET status" 200 "$code"
expect_file_digest "second layer GET bytes" "$SCEN/blob" "$LARGE_LAYER"
rm -f "$SCEN/blob"
# Each request costs two upstream GETs: the cache's, cancelled after the
# response head announced a length that does not fit, and the client's
# own, passed through.
wait_log "$reg" "$mark" "$layer_get" 4 5
expect_eq "upstream GETs of the layer while the disk is full" 4 "$(count_since "$reg" "$mark" "$layer_get")"

# Room again: cached on the next miss, then served without the upstream.
mount -o remount,size=400m "$cdir"
code=$(pcurl -o "$SCEN/blob" -D "$SCEN/h" -w '%{http_code}' "https://registry.test/v2/test/large/blobs/$LARGE_LAYER")
expect_eq "layer GET after remount" 200 "$code"
expect_eq "layer X-Cache after remount" MISS "$(hdr X-Cache <"$SCEN/h")"
expect_file_digest "layer bytes after remount" "$SCEN/blob" "$LARGE_LAYER"
drp_wait "the layer stored" 20 cache_has_content "$SCEN/blob" # by a background thread
rm -f "$SCEN/blob"
mark=$(log_mark "$reg")
code=$(pcurl -o "$SCEN/blob" -D "$SCEN/h" -w '%{http_code}' "https://registry.test/v2/test/large/blobs/$LARGE_LAYER")
expect_eq "layer GET, cached" 200 "$code"
expect_eq "layer X-Cache, cached" HIT "$(hdr X-Cache <"$SCEN/h")"
expect_file_digest "cached layer bytes" "$SCEN/blob" "$LARGE_LAYER"
settle_upstream registry.test "$reg"
expect_eq "upstream GETs of the cached layer" 0 "$(count_since "$reg" "$mark" "$layer_get")"
