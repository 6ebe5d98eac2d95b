#!/bin/bash
# SPDX-License-Identifier: MIT
# A second pull by a fresh client costs the upstream no blob GET and no
# manifest-by-digest GET; hits carry the right headers, HEAD is answered
# without the upstream, Range works on a hit. (Own proxy, empty cache.)
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo podman
drp_proxy_conf cache-hit "$(drp_free_port)"
drp_start_proxy cache-hit
reg=$(reg_log open)
layer=${SMALL_LAYERS%% *}
layer_file=$WORK/images/small/blobs/sha256/${layer#sha256:}

# Cold: every blob fetched upstream exactly once.
mark=$(log_mark "$reg")
pskopeo copy --quiet --retry-times 0 docker://registry.test/test/small:v1 "dir:$SCEN/cold"
check_dir_image "$SCEN/cold" "$SMALL_DIGEST" $SMALL_BLOBS
for b in $SMALL_BLOBS; do
	wait_log "$reg" "$mark" "$(req_pat GET "/v2/test/small/blobs/$b")" 1 5
	expect_eq "cold upstream GETs of ${b:7:12}" 1 "$(count_since "$reg" "$mark" "$(req_pat GET "/v2/test/small/blobs/$b")")"
done

# Warm, fresh clients (skopeo into an empty dir, podman with an empty
# store): no blob and no manifest-by-digest request upstream.
mark=$(log_mark "$reg")
pskopeo copy --quiet --retry-times 0 docker://registry.test/test/small:v1 "dir:$SCEN/warm"
check_dir_image "$SCEN/warm" "$SMALL_DIGEST" $SMALL_BLOBS
pd=$SCEN/p
drp_at_exit "drp_podman_reset '$pd'"
via_proxy drp_podman "$pd" pull -q docker://registry.test/test/small:v1 >/dev/null
expect_eq "podman digest (warm)" "$SMALL_DIGEST" \
	"$(drp_podman "$pd" inspect --format '{{.Digest}}' registry.test/test/small:v1)"
settle_upstream registry.test "$reg" # nothing may have arrived
expect_eq "warm upstream blob GETs" 0 "$(count_since "$reg" "$mark" '"GET /v2/test/small/blobs/')"
expect_eq "warm upstream manifest-by-digest GETs" 0 \
	"$(count_since "$reg" "$mark" '"GET /v2/test/small/manifests/sha256:')"

# A hit: X-Cache, Docker-Content-Digest, Content-Length, Content-Type.
mark=$(log_mark "$reg")
amk=$(amark)
code=$(pcurl -o "$SCEN/blob" -D "$SCEN/h" -w '%{http_code}' "https://registry.test/v2/test/small/blobs/$layer")
expect_eq "hit status" 200 "$code"
expect_file_digest "hit bytes" "$SCEN/blob" "$layer"
expect_eq "hit X-Cache" HIT "$(hdr X-Cache <"$SCEN/h")"
expect_eq "hit Docker-Content-Digest" "$layer" "$(hdr Docker-Content-Digest <"$SCEN/h")"
expect_eq "hit Content-Length" "$(stat -c %s "$layer_file")" "$(hdr Content-Length <"$SCEN/h")"
expect_eq "hit Content-Type" application/octet-stream "$(hdr Content-Type <"$SCEN/h")"
expect_eq "hit access-log upstream, result" "- HIT" "$(anext '$10, $11' "$amk" registry.test:443 GET "/v2/test/small/blobs/$layer")"

# HEAD of a cached blob: answered by the proxy alone.
pcurl -I -o /dev/null -D "$SCEN/hh" "https://registry.test/v2/test/small/blobs/$layer"
expect_eq "HEAD status" 200 "$(status_codes <"$SCEN/hh" | awk '{ print $NF }')"
expect_eq "HEAD Content-Length" "$(stat -c %s "$layer_file")" "$(hdr Content-Length <"$SCEN/hh")"
expect_eq "HEAD Docker-Content-Digest" "$layer" "$(hdr Docker-Content-Digest <"$SCEN/hh")"

# Range on a hit: 206, exactly those bytes, Content-Range.
code=$(pcurl -o "$SCEN/range" -D "$SCEN/rh" -w '%{http_code}' -r 100-65635 "https://registry.test/v2/test/small/blobs/$layer")
expect_eq "Range hit status" 206 "$code"
expect_eq "Range hit bytes" "$(tail -c +101 "$layer_file" | head -c 65536 | sha256sum)" "$(sha256sum <"$SCEN/range")"
expect_eq "Content-Range" "bytes 100-65635/$(stat -c %s "$layer_file")" "$(hdr Content-Range <"$SCEN/rh")"
settle_upstream registry.test "$reg"
expect_eq "upstream requests for the hits" 0 "$(count_since "$reg" "$mark" "/v2/test/small/blobs/$layer")"
