#!/bin/bash
# SPDX-License-Identifier: MIT
# skopeo pulls through the proxy, trusting only the proxy CA: every
# manifest and blob arrives byte for byte (small, large, multi-arch index).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_own_proxy
drp_require_tools skopeo

# Small Docker schema2 image: manifest and every blob (config, 2 layers).
mark=$(log_mark "$(reg_log open)")
pskopeo copy --quiet --retry-times 0 docker://registry.test/test/small:v1 "dir:$SCEN/small"
check_dir_image "$SCEN/small" "$SMALL_DIGEST" $SMALL_BLOBS
# The registry really served it (through the proxy: registry.test does not
# resolve for the client).
wait_log "$(reg_log open)" "$mark" "$(req_pat GET /v2/test/small/manifests/v1)" 1 5
expect_ge "upstream manifest GETs" 1 \
	"$(count_since "$(reg_log open)" "$mark" "$(req_pat GET /v2/test/small/manifests/v1)")"

# Large layer: streamed through the interception.
ts=$SECONDS
pskopeo copy --quiet --retry-times 0 docker://registry.test/test/large:v1 "dir:$SCEN/large"
check_dir_image "$SCEN/large" "$LARGE_DIGEST" $LARGE_BLOBS
drp_log "large image (${DRP_IT_LARGE_MB} MiB) through the proxy: $((SECONDS - ts)) s"
rm -rf "$SCEN/large"

# OCI index with two platforms, every instance kept (--all).
pskopeo copy --quiet --retry-times 0 --all docker://registry.test/test/multi:v1 "dir:$SCEN/multi"
expect_file_digest "multi index" "$SCEN/multi/manifest.json" "$MULTI_DIGEST"
expect_file_digest "amd64 manifest" "$SCEN/multi/${MULTI_AMD64_DIGEST#sha256:}.manifest.json" "$MULTI_AMD64_DIGEST"
expect_file_digest "arm64 manifest" "$SCEN/multi/${MULTI_ARM64_DIGEST#sha256:}.manifest.json" "$MULTI_ARM64_DIGEST"
for b in $MULTI_AMD64_BLOBS $MULTI_ARM64_BLOBS; do
	expect_file_digest "multi blob ${b:7:12}" "$SCEN/multi/${b#sha256:}" "$b"
done

# skopeo inspect (manifest + config) agrees on the digest.
expect_eq "skopeo inspect digest" "$SMALL_DIGEST" \
	"$(pskopeo inspect --retry-times 0 docker://registry.test/test/small:v1 | jq -r .Digest)"
