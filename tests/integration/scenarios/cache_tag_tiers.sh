#!/bin/bash
# SPDX-License-Identifier: MIT
# The nginx-based image's manifest cache tiers (ENABLE_MANIFEST_CACHE,
# MANIFEST_CACHE_*_REGEX/_TIME): --env-config turns them into [cache]
# tag_ttl and tag_ttl_match lines, which this proxy is configured with
# (the rest of --env-config's output needs the container's paths). A tag
# matching the primary expression is served from the cache for its
# lifetime, so is one matching the old default secondary expression (PCRE
# \d), and any other tag (default time 0 here) is asked for upstream
# again; counted in the registry's own access log.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo
SCHEMA2=application/vnd.docker.distribution.manifest.v2+json
reg=$(reg_log open)

lines=$(drp_env_i ENABLE_MANIFEST_CACHE=true MANIFEST_CACHE_PRIMARY_REGEX='(stable|nightly)' \
	MANIFEST_CACHE_PRIMARY_TIME=1h MANIFEST_CACHE_DEFAULT_TIME=0 \
	"$DRP_PROXY" --env-config --print-config | grep -E '^tag_ttl(_match)? =' || true)
drp_log "--env-config made: $(printf '%s' "$lines" | tr '\n' '|')"
drp_own_proxy "" "$lines"

for t in stable 1.2.3 latest; do
	drp_push_direct small "registry.test/test/tiers:$t"
done

# settle: a request straight to the registry, then wait for its line:
# whatever the proxy sent the registry before is logged by then.
settle()
{
	local p=/v2/drp-settle-$RANDOM$RANDOM/manifests/x m
	m=$(log_mark "$reg")
	dcurl -s -o /dev/null "https://registry.test$p" || true
	wait_log "$reg" "$m" "$p" 1 5
}

# again TAG: GET the tag through the proxy twice; prints the upstream's
# manifest requests (GET or HEAD) for the second.
again()
{
	local url=https://registry.test/v2/test/tiers/manifests/$1 m
	expect_eq "test/tiers:$1, first GET" "$SMALL_DIGEST" \
		"$(pcurl -o /dev/null -D - -H "Accept: $SCHEMA2" "$url" | hdr Docker-Content-Digest)"
	settle
	m=$(log_mark "$reg")
	expect_eq "test/tiers:$1, second GET" "$SMALL_DIGEST" \
		"$(pcurl -o /dev/null -D - -H "Accept: $SCHEMA2" "$url" | hdr Docker-Content-Digest)"
	settle
	count_since "$reg" "$m" "/v2/test/tiers/manifests/$1 "
}

# The primary tier (1h), and the old default secondary tier (60d).
expect_eq "upstream manifest requests, second GET of :stable (primary tier, 1h)" 0 "$(again stable)"
expect_eq "upstream manifest requests, second GET of :1.2.3 (secondary tier, 60d)" 0 "$(again 1.2.3)"
# Neither: MANIFEST_CACHE_DEFAULT_TIME=0, the tag is revalidated upstream.
expect_eq "upstream manifest requests, second GET of :latest (default time 0)" 1 "$(again latest)"
