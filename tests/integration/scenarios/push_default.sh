#!/bin/bash
# SPDX-License-Identifier: MIT
# [proxy] push: the upload policy of every registry whose [registry]
# sections do not set push. --env-config makes it deny from the old
# image's ALLOW_PUSH (unset, as here: false), which this proxy is
# configured with: a request that starts an upload, or deletes, is
# answered 403 by the proxy itself and never reaches the registry
# (counted in its own log), a real client's push fails and leaves
# nothing, pulls still work, and a section's push = client still lets
# its uploads through. Here the registry has no [registry] section at
# all, which the per-section push alone could not cover.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo
SCHEMA2=application/vnd.docker.distribution.manifest.v2+json
reg=$(reg_log open)

lines=$(drp_env_i "$DRP_PROXY" --env-config --print-config | grep -E '^push =' || true)
drp_log "--env-config made: $lines"
drp_own_proxy "$lines
[registry \"registry.test/test/open\"]
push = client"

settle()
{
	local p=/v2/drp-settle-$RANDOM$RANDOM/manifests/x m
	m=$(log_mark "$reg")
	dcurl -s -o /dev/null "https://registry.test$p" || true
	wait_log "$reg" "$m" "$p" 1 5
}

m=$(log_mark "$reg")
code=$(pcurl -o "$SCEN/post.body" -w '%{http_code}' -X POST \
	https://registry.test/v2/test/denied/blobs/uploads/ || true)
expect_eq "upload POST to registry.test/test/denied ([proxy] push = deny)" 403 "$code"
expect_match "its body" '"code":"DENIED"' "$(cat "$SCEN/post.body")"
code=$(pcurl -o /dev/null -w '%{http_code}' -X DELETE \
	https://registry.test/v2/test/small/manifests/v1 || true)
expect_eq "manifest DELETE ([proxy] push = deny)" 403 "$code"
if pskopeo copy --quiet --retry-times 0 --all --preserve-digests \
	"oci:$WORK/images/push" docker://registry.test/test/denied:v1 >"$SCEN/skopeo.out" 2>&1; then
	drp_fail "skopeo pushed through push = deny"
fi
settle
expect_eq "upload and delete requests at the registry" 0 \
	"$(log_since "$reg" "$m" | grep -cE '"(POST|PUT|PATCH|DELETE) /v2/test/(denied|small)/' || true)"
expect_eq "the denied push at the registry (direct)" 404 \
	"$(dcurl -o /dev/null -w '%{http_code}' -H "Accept: $SCHEMA2" \
		https://registry.test/v2/test/denied/manifests/v1)"

# Pulls are not uploads.
expect_eq "pull through push = deny" "$SMALL_DIGEST" \
	"$(pcurl -o /dev/null -D - -H "Accept: $SCHEMA2" \
		https://registry.test/v2/test/small/manifests/v1 | hdr Docker-Content-Digest)"
# A section's own push wins over [proxy]'s.
code=$(pcurl -o /dev/null -w '%{http_code}' -X POST \
	https://registry.test/v2/test/open/blobs/uploads/ || true)
expect_eq "upload POST to registry.test/test/open (its section: push = client)" 202 "$code"
