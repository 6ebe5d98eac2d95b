#!/bin/bash
# SPDX-License-Identifier: MIT
# A tag is served from the cache while younger than tag_ttl, then
# revalidated with a HEAD; a tag moved upstream is seen after tag_ttl,
# an unmoved one costs only the HEAD.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo
drp_proxy_conf cache-ttl "$(drp_free_port)" "" "tag_ttl = 3s"
drp_start_proxy cache-ttl
reg=$(reg_log open)
SCHEMA2=application/vnd.docker.distribution.manifest.v2+json
tagurl=https://registry.test/v2/test/moving/manifests/v1
digest_of() { pcurl -o /dev/null -D - -H "Accept: $SCHEMA2" "$tagurl" | hdr Docker-Content-Digest; }

# The image the tag moves to is in the repository beforehand (its own
# tag), so that the move itself is one manifest PUT: a push of the image
# inside the 3 s window (skopeo, 3 MiB) could outlast tag_ttl on a busy
# machine, and the "cached" answer below would then be a revalidation.
drp_push_direct push registry.test/test/moving:target
dcurl -f -o "$SCEN/target.json" -H "Accept: $SCHEMA2" https://registry.test/v2/test/moving/manifests/target ||
	drp_fail "reading the target manifest failed"
expect_file_digest "the target manifest" "$SCEN/target.json" "$PUSH_DIGEST"
drp_push_direct small registry.test/test/moving:v1
t_cached=$(date +%s%N)
expect_eq "tag before the move" "$SMALL_DIGEST" "$(digest_of)"
dcurl -f -o /dev/null -X PUT -H "Content-Type: $SCHEMA2" --data-binary "@$SCEN/target.json" \
	https://registry.test/v2/test/moving/manifests/v1 || drp_fail "moving the tag upstream failed"
mark=$(log_mark "$reg")
expect_eq "tag within tag_ttl (cached)" "$SMALL_DIGEST" "$(digest_of)"
# (The bound of the window, for the record: well under tag_ttl.)
drp_log "the cached answer came $((($(date +%s%N) - t_cached) / 1000000)) ms after the tag was cached"
settle_upstream registry.test "$reg"
expect_eq "upstream manifest requests within tag_ttl" 0 "$(count_since "$reg" "$mark" /v2/test/moving/manifests/)"

sleep 3.5 # tag_ttl (3 s) runs out: time, not an event
mark=$(log_mark "$reg")
expect_eq "tag after tag_ttl (moved)" "$PUSH_DIGEST" "$(digest_of)"
wait_log "$reg" "$mark" "$(req_pat HEAD /v2/test/moving/manifests/v1)" 1 5
expect_ge "revalidating HEADs" 1 "$(count_since "$reg" "$mark" "$(req_pat HEAD /v2/test/moving/manifests/v1)")"

sleep 3.5 # tag_ttl (3 s) runs out: time, not an event
mark=$(log_mark "$reg")
amk=$(amark)
revalidated() {
	curl -sf --max-time 10 "$PROXY_URL/metrics" >"$SCEN/metrics"
	python3 "$DRP_IT_DIR/promq.py" sum "$SCEN/metrics" \
		'drp_requests_total{registry="registry.test",method="get",result="revalidated",code="2xx"}'
}
before=$(revalidated)
expect_eq "tag after tag_ttl (unmoved)" "$PUSH_DIGEST" "$(digest_of)"
wait_log "$reg" "$mark" "$(req_pat HEAD /v2/test/moving/manifests/v1)" 1 5
settle_upstream registry.test "$reg"
expect_eq "revalidating HEADs (unmoved)" 1 "$(count_since "$reg" "$mark" "$(req_pat HEAD /v2/test/moving/manifests/v1)")"
expect_eq "manifest GETs (unmoved)" 0 "$(count_since "$reg" "$mark" '"GET /v2/test/moving/manifests/')"
expect_eq "access-log result (unmoved)" REVALIDATED \
	"$(anext '$11' "$amk" registry.test:443 GET /v2/test/moving/manifests/v1)"
expect_eq "revalidated in the metrics" 1 $(($(revalidated) - before))

# A whole pull after the move gets the new image.
pskopeo copy --quiet --retry-times 0 docker://registry.test/test/moving:v1 "dir:$SCEN/moved"
check_dir_image "$SCEN/moved" "$PUSH_DIGEST" $PUSH_BLOBS
