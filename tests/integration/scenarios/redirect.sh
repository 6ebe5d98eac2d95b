#!/bin/bash
# SPDX-License-Identifier: MIT
# redirect.test answers blob GET/HEAD with 307 to cdn.test (like Docker
# Hub's CDN). The proxy follows the redirect itself: the client sees only
# the final 200/206, the bytes are right, the CDN saw the proxy's request,
# Authorization was dropped on the way to the other host, Range kept.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_own_proxy
drp_require_tools skopeo
layer=${SMALL_LAYERS##* }
cdn_path=/docker/registry/v2/blobs/sha256/${layer:7:2}/${layer#sha256:}/data

# GET: one 200 (after the proxy's own CONNECT answer), no 3xx, no Location.
amk=$(amark)
cmark=$(log_mark "$(CDN_LOG)")
rmark=$(log_mark "$(reg_log redirect)")
pcurl -v -o "$SCEN/blob" -D "$SCEN/h" -H 'Authorization: Bearer drp-client-token' \
	"https://redirect.test/v2/test/small/blobs/$layer" 2>"$SCEN/verbose"
codes=$(status_codes <"$SCEN/h")
expect_no_match "statuses the client saw" '(^| )3[0-9][0-9]( |$)' "$codes"
expect_eq "final status" 200 "${codes##* }"
expect_eq "Location header" "" "$(hdr Location <"$SCEN/h")"
expect_no_match "curl -v output" '< HTTP/[0-9.]+ 3[0-9][0-9]' "$(cat "$SCEN/verbose")"
expect_file_digest "blob via redirect" "$SCEN/blob" "$layer"
# The registry answered the proxy with a 307, the CDN served the proxy.
wait_log "$(reg_log redirect)" "$rmark" "$(req_pat GET "/v2/test/small/blobs/$layer")" 1 5
expect_eq "registry 307 to the proxy" 1 \
	"$(log_since "$(reg_log redirect)" "$rmark" | grep -F "$(req_pat GET "/v2/test/small/blobs/$layer")" | grep -c '" 307 ' || true)"
wait_log "$(CDN_LOG)" "$cmark" "$(req_pat GET "$cdn_path")" 1 5
expect_eq "CDN GETs" 1 "$(count_since "$(CDN_LOG)" "$cmark" "$(req_pat GET "$cdn_path")")"
# Our nginx log format ends with "Range" "Authorization": none of the
# client's Authorization may reach the CDN.
expect_eq "Authorization at the CDN" '"-" "-"' \
	"$(log_since "$(CDN_LOG)" "$cmark" | grep -F "$cdn_path" | awk '{ print $(NF-1), $NF }')"

# The access log: the client got 200; the last upstream answer (the
# CDN's) was 200 too.
expect_eq "access-log status and upstream" "200 200" \
	"$(anext '$6, $10' "$amk" redirect.test:443 GET "/v2/test/small/blobs/$layer")"

# Range on a blob this proxy has not fetched yet follows the redirect too:
# 206 and exactly those bytes. The CDN sees one GET for it: with the
# Range kept, or without it when the proxy fetches the whole blob for its
# cache and serves the range from that.
layer2=${SMALL_LAYERS%% *}
layer2_file=$WORK/images/small/blobs/sha256/${layer2#sha256:}
cdn_path2=/docker/registry/v2/blobs/sha256/${layer2:7:2}/${layer2#sha256:}/data
cmark=$(log_mark "$(CDN_LOG)")
code=$(pcurl -o "$SCEN/range" -w '%{http_code}' -r 4096-8191 "https://redirect.test/v2/test/small/blobs/$layer2")
expect_eq "Range status" 206 "$code"
expect_eq "Range bytes" "$(tail -c +4097 "$layer2_file" | head -c 4096 | sha256sum)" "$(sha256sum <"$SCEN/range")"
wait_log "$(CDN_LOG)" "$cmark" "$(req_pat GET "$cdn_path2")" 1 5
expect_eq "CDN GETs for the Range request" 1 "$(count_since "$(CDN_LOG)" "$cmark" "$(req_pat GET "$cdn_path2")")"
expect_match "Range at the CDN (kept, or none)" '" (200|206) [0-9]+ "(bytes=4096-8191|-)" "-"$' \
	"$(log_since "$(CDN_LOG)" "$cmark" | grep -F "$cdn_path2")"

# HEAD of a blob not fetched yet: the registry redirects HEAD too; the
# client gets 200 and the length, never the 307.
config=${SMALL_BLOBS%% *}
pcurl -I -o /dev/null -D "$SCEN/hh" "https://redirect.test/v2/test/small/blobs/$config"
codes=$(status_codes <"$SCEN/hh")
expect_no_match "HEAD statuses" '(^| )3[0-9][0-9]( |$)' "$codes"
expect_eq "HEAD final status" 200 "${codes##* }"
expect_eq "HEAD Content-Length" "$(stat -c %s "$WORK/images/small/blobs/sha256/${config#sha256:}")" \
	"$(hdr Content-Length <"$SCEN/hh")"

# A whole image through the redirecting registry, byte for byte.
pskopeo copy --quiet --retry-times 0 docker://redirect.test/test/small:v1 "dir:$SCEN/small"
check_dir_image "$SCEN/small" "$SMALL_DIGEST" $SMALL_BLOBS
