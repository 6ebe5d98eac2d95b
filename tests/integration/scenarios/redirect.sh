#!/bin/bash
# SPDX-License-Identifier: MIT
# redirect.test answers blob GET/HEAD with 307 to cdn.test (like Docker
# Hub's CDN). The proxy follows the redirect itself: the client sees only
# the final 200/206, the bytes are right, the CDN saw the proxy's request,
# Authorization was dropped on the way to the other host, Range kept.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo
layer=${SMALL_LAYERS##* }
layer_file=$WORK/images/small/blobs/sha256/${layer#sha256:}
cdn_path=/docker/registry/v2/blobs/sha256/${layer:7:2}/${layer#sha256:}/data

# GET: one 200 (after the proxy's own CONNECT answer), no 3xx, no Location.
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
	"$(alog_field 6 redirect.test:443 GET "/v2/test/small/blobs/$layer") $(alog_field 10 redirect.test:443 GET "/v2/test/small/blobs/$layer")"

# Range follows the redirect: 206, exactly those bytes, Range at the CDN.
cmark=$(log_mark "$(CDN_LOG)")
code=$(pcurl -o "$SCEN/range" -w '%{http_code}' -r 4096-8191 "https://redirect.test/v2/test/small/blobs/$layer")
expect_eq "Range status" 206 "$code"
expect_eq "Range bytes" "$(tail -c +4097 "$layer_file" | head -c 4096 | sha256sum)" "$(sha256sum <"$SCEN/range")"
wait_log "$(CDN_LOG)" "$cmark" "$(req_pat GET "$cdn_path")" 1 5
expect_match "Range at the CDN" '"bytes=4096-8191"' "$(log_since "$(CDN_LOG)" "$cmark" | grep -F "$cdn_path")"

# HEAD: the registry redirects HEAD too; the client gets 200 and the length.
pcurl -I -o /dev/null -D "$SCEN/hh" "https://redirect.test/v2/test/small/blobs/$layer"
codes=$(status_codes <"$SCEN/hh")
expect_no_match "HEAD statuses" '(^| )3[0-9][0-9]( |$)' "$codes"
expect_eq "HEAD final status" 200 "${codes##* }"
expect_eq "HEAD Content-Length" "$(stat -c %s "$layer_file")" "$(hdr Content-Length <"$SCEN/hh")"

# A whole image through the redirecting registry, byte for byte.
cmark=$(log_mark "$(CDN_LOG)")
pskopeo copy --quiet --retry-times 0 docker://redirect.test/test/small:v1 "dir:$SCEN/small"
check_dir_image "$SCEN/small" "$SMALL_DIGEST" $SMALL_BLOBS
wait_log "$(CDN_LOG)" "$cmark" '"GET /docker/registry/v2/blobs/' 3 5
expect_ge "CDN blob GETs for the image" 3 "$(count_since "$(CDN_LOG)" "$cmark" '"GET /docker/registry/v2/blobs/')"
