#!/bin/bash
# SPDX-License-Identifier: MIT
# Registry-mirror mode (issue 12) with the other runtimes' own mirror
# settings, no HTTPS_PROXY and no registry name resolvable for them:
#  - podman (as CRI-O) with a path-prefixed mirror in registries.conf
#    (location = "PROXY/registry.test", insecure: plain HTTP), which sends
#    /v2/registry.test/<repo>/...;
#  - dockerd with "registry-mirrors" (Docker Hub only), which sends
#    /v2/library/<repo>/... and falls back to Docker Hub itself if the
#    mirror fails (here: nowhere, the name does not resolve).
# Each pull is checked by digest and by what reached the upstream.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$DRP_IT_DIR/auth_lib.sh"
. "$DRP_IT_DIR/mirror_lib.sh"
drp_scenario_init
drp_require_tools podman dockerd docker
mirror_hub
drp_own_proxy

# podman, registries.conf
cat >"$SCEN/registries.conf" <<EOF2
unqualified-search-registries = []
[[registry]]
prefix = "registry.test"
location = "registry.test"
[[registry.mirror]]
location = "127.0.0.1:$PROXY_PORT/registry.test"
insecure = true
EOF2
pd=$SCEN/p
drp_at_exit "drp_podman_reset '$pd'"
reg=$(reg_log open) am=$(amark)
m=$(log_mark "$reg")
drp_ns "$WORK/hosts-proxied" SSL_CERT_FILE="$PROXY_CA" SSL_CERT_DIR="$WORK/empty-certs" \
	CONTAINERS_REGISTRIES_CONF="$SCEN/registries.conf" -- drp_podman "$pd" pull -q registry.test/test/small:v1 \
	>"$SCEN/podman.out" 2>&1 || drp_fail "podman pull through the mirror: $(tail -n 3 "$SCEN/podman.out")"
expect_eq "podman, registry.test/test/small:v1" "$SMALL_DIGEST" \
	"$(drp_podman "$pd" inspect --format '{{.Digest}}' registry.test/test/small:v1)"
n=$(mirror_count "$reg" "$m" GET /v2/test/small/blobs/)
drp_log "podman: $n upstream blob GETs"
expect_eq "podman: upstream blob GETs (config and two layers)" 3 "$n"
expect_match "podman came through the mirror, prefix stripped" \
	'registry.test:443 GET /v2/test/small/manifests/v1 200' "$(log_since "$PROXY_DIR/access.log" "$am")"

# dockerd, registry-mirrors
drp_start_dockerd "$SCEN/dk" mirror
hub=$(emu_reg_log hub) am=$(amark)
m=$(log_mark "$hub")
docker pull -q hello:v1 >"$SCEN/docker.out" 2>&1 || drp_fail "docker pull through the mirror: $(cat "$SCEN/docker.out")"
expect_eq "docker, hello:v1" "$SMALL_DIGEST" "$(docker_repo_digest hello:v1)"
# The blobs are cached (podman's image has the same ones): each is
# confirmed for library/hello with a HEAD before it is served.
g=$(mirror_count "$hub" "$m" GET /v2/library/hello/blobs/) h=$(mirror_count "$hub" "$m" HEAD /v2/library/hello/blobs/)
drp_log "dockerd: upstream blob GETs $g, HEADs $h, manifest requests $(mirror_count "$hub" "$m" HEAD /v2/library/hello/manifests/)+$(mirror_count "$hub" "$m" GET /v2/library/hello/manifests/)"
expect_eq "dockerd: upstream blob GETs, HEADs" "0 3" "$g $h"
expect_match "dockerd came through the mirror (Docker Hub by default)" \
	'registry-1.docker.io:443 HEAD /v2/library/hello/manifests/v1 200 .* MISS' "$(log_since "$PROXY_DIR/access.log" "$am")"
# Its second pull after the image is gone: from the cache.
docker rmi -f hello:v1 >/dev/null
m=$(log_mark "$hub")
docker pull -q hello:v1 >"$SCEN/docker.out" 2>&1 || drp_fail "second docker pull: $(cat "$SCEN/docker.out")"
expect_eq "dockerd again: upstream requests" "0 0" \
	"$(mirror_count "$hub" "$m" GET /v2/) $(mirror_count "$hub" "$m" HEAD /v2/)"
