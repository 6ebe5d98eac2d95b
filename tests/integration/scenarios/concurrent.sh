#!/bin/bash
# SPDX-License-Identifier: MIT
# Several clients at once through the proxy's workers: every one gets
# every byte right (the large blob 4 times in parallel, plus small pulls).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo
layer=$LARGE_LAYER

pids=()
for i in 1 2 3 4; do
	PCURL_TIMEOUT=300 pcurl -o "$SCEN/large.$i" "https://registry.test/v2/test/large/blobs/$layer" &
	pids+=($!)
done
for i in 1 2 3; do
	pskopeo copy --quiet --retry-times 0 docker://registry.test/test/small:v1 "dir:$SCEN/small.$i" &
	pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
expect_eq "every client exited 0" 0 "$rc"
for i in 1 2 3 4; do
	expect_file_digest "large blob, client $i" "$SCEN/large.$i" "$layer"
	rm -f "$SCEN/large.$i"
done
for i in 1 2 3; do
	check_dir_image "$SCEN/small.$i" "$SMALL_DIGEST" $SMALL_BLOBS
done
