#!/bin/bash
# SPDX-License-Identifier: MIT
# The upstream stopped: a cached tag still pulls (STALE), byte for byte.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo
drp_start_registry stale stale.test
drp_push_direct small stale.test/test/small:v1
DRP_IT_REGISTRIES="registry.test stale.test" drp_proxy_conf cache-stale "$(drp_free_port)" "" "tag_ttl = 1s"
drp_start_proxy cache-stale

pskopeo copy --quiet --retry-times 0 docker://stale.test/test/small:v1 "dir:$SCEN/before"
check_dir_image "$SCEN/before" "$SMALL_DIGEST" $SMALL_BLOBS
drp_stop "${REG_PID[stale]}" 10 || true
drp_port_open "${DRP_IP[stale.test]}" 443 && drp_fail "stale.test still answers"
sleep 1.5 # the tag's lifetime (tag_ttl = 1s) runs out: time, not an event

amk=$(amark)
pskopeo copy --quiet --retry-times 0 docker://stale.test/test/small:v1 "dir:$SCEN/after"
check_dir_image "$SCEN/after" "$SMALL_DIGEST" $SMALL_BLOBS
expect_eq "access-log status, result of the tag" "200 STALE" \
	"$(anext '$6, $11' "$amk" stale.test:443 GET /v2/test/small/manifests/v1)"
# Every STALE line is counted as such, its bytes as sent from the cache.
curl -sf --max-time 10 "$PROXY_URL/metrics" >"$SCEN/metrics"
expect_eq "stale in the metrics" "$(count_since "$PROXY_DIR/access.log" 0 " STALE ")" \
	"$(python3 "$DRP_IT_DIR/promq.py" sum "$SCEN/metrics" 'drp_requests_total{registry="stale.test",result="stale"}')"
