#!/bin/bash
# SPDX-License-Identifier: MIT
# max_size smaller than the images: pulls still succeed byte for byte, the
# cache stays within its budget, a blob larger than the budget is streamed
# but never committed (the next request goes upstream again).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo
budget=$((4 * 1024 * 1024))
drp_proxy_conf cache-budget "$(drp_free_port)" "" "max_size = 4M"
drp_start_proxy cache-budget
reg=$(reg_log open)

mark=$(log_mark "$reg")
for round in 1 2; do
	pskopeo copy --quiet --retry-times 0 docker://registry.test/test/small:v1 "dir:$SCEN/small.$round"
	check_dir_image "$SCEN/small.$round" "$SMALL_DIGEST" $SMALL_BLOBS
	pskopeo copy --quiet --retry-times 0 docker://registry.test/test/large:v1 "dir:$SCEN/large"
	check_dir_image "$SCEN/large" "$LARGE_DIGEST" $LARGE_BLOBS
	rm -rf "$SCEN/large"
	used=$(du -sb "$WORK/cache-budget/cache" 2>/dev/null | cut -f1)
	expect_le "cache bytes after round $round (budget $budget + 512 KiB of metadata)" $((budget + 524288)) "$used"
done
wait_log "$reg" "$mark" "$(req_pat GET "/v2/test/large/blobs/$LARGE_LAYER")" 2 5
expect_eq "upstream GETs of the over-budget layer" 2 \
	"$(count_since "$reg" "$mark" "$(req_pat GET "/v2/test/large/blobs/$LARGE_LAYER")")"
