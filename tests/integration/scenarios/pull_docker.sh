#!/bin/bash
# SPDX-License-Identifier: MIT
# docker pull through the proxy: a private dockerd (the daemon does the
# pulling) with the proxy variables and only the proxy CA. The registry
# names do not resolve for it, so it cannot fall back to treating them as
# local insecure registries: a wrong CA would really fail.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_own_proxy
drp_require_tools dockerd docker
drp_start_dockerd "$SCEN/dk" proxy

mark=$(log_mark "$(reg_log open)")
docker pull -q registry.test/test/small:v1 >"$SCEN/pull.out"
expect_eq "docker small digest" "$SMALL_DIGEST" "$(docker_repo_digest registry.test/test/small:v1)"
wait_log "$(reg_log open)" "$mark" "$(req_pat GET "/v2/test/small/blobs/${SMALL_LAYERS%% *}")" 1 5
expect_eq "upstream served the layer" 1 \
	"$(count_since "$(reg_log open)" "$mark" "$(req_pat GET "/v2/test/small/blobs/${SMALL_LAYERS%% *}")")"

docker pull -q registry.test/test/multi:v1 >"$SCEN/pull.out"
expect_eq "docker multi digest" "$MULTI_DIGEST" "$(docker_repo_digest registry.test/test/multi:v1)"

# Through the redirecting registry: dockerd never sees the 307.
docker pull -q redirect.test/test/small:v1 >"$SCEN/pull.out"
expect_eq "docker redirect.test digest" "$SMALL_DIGEST" "$(docker_repo_digest redirect.test/test/small:v1)"

# docker login + pull from the Basic-auth registry, through the proxy.
echo "$BASIC_PASS" | docker login -u "$BASIC_USER" --password-stdin basic.test >"$SCEN/login.out" 2>&1 ||
	drp_fail "docker login basic.test failed: $(cat "$SCEN/login.out")"
docker pull -q basic.test/test/small:v1 >"$SCEN/pull.out"
expect_eq "docker basic.test digest" "$SMALL_DIGEST" "$(docker_repo_digest basic.test/test/small:v1)"
