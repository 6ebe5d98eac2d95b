#!/bin/bash
# SPDX-License-Identifier: MIT
# podman pulls through the proxy (vfs storage under the scenario dir),
# trusting only the proxy CA; the stored digests are the pushed ones.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_own_proxy
drp_require_tools podman
pd=$SCEN/p
drp_at_exit "drp_podman_reset '$pd'"

via_proxy drp_podman "$pd" pull -q docker://registry.test/test/small:v1
expect_eq "podman small digest" "$SMALL_DIGEST" \
	"$(drp_podman "$pd" inspect --format '{{.Digest}}' registry.test/test/small:v1)"

# The index resolves to this machine's platform; podman records the
# index digest as the image's digest.
via_proxy drp_podman "$pd" pull -q docker://registry.test/test/multi:v1
expect_eq "podman multi digest" "$MULTI_DIGEST" \
	"$(drp_podman "$pd" inspect --format '{{.Digest}}' registry.test/test/multi:v1)"
expect_eq "podman multi arch" amd64 \
	"$(drp_podman "$pd" inspect --format '{{.Architecture}}' registry.test/test/multi:v1)"

# The layers were unpacked: the file of layer 2 is in the image.
expect_eq "podman unpacked file" "hello from docker-registry-proxy tests" \
	"$(cat "$(drp_podman "$pd" image mount registry.test/test/small:v1)/small/hello.txt")"
drp_podman "$pd" image unmount registry.test/test/small:v1 >/dev/null
