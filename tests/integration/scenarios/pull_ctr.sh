#!/bin/bash
# SPDX-License-Identifier: MIT
# containerd (private instance) + ctr pull through the proxy; ctr fetches
# on the client side, so the proxy variables and the CA go to ctr.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_own_proxy
drp_require_tools containerd ctr
drp_start_containerd "$SCEN/ctd"

via_proxy dctr images pull --snapshotter native registry.test/test/small:v1 >"$SCEN/pull.out"
expect_eq "ctr small digest" "$SMALL_DIGEST" "$(ctr_image_digest registry.test/test/small:v1)"
# ctr verified and unpacked every layer; its content store holds them.
for b in $SMALL_BLOBS; do
	expect_eq "content ${b:7:12}" "$b" "$(dctr content ls -q | grep -Fx "$b")"
done

via_proxy dctr images pull --snapshotter native registry.test/test/multi:v1 >"$SCEN/pull.out"
expect_eq "ctr multi digest" "$MULTI_DIGEST" "$(ctr_image_digest registry.test/test/multi:v1)"
for b in $MULTI_AMD64_BLOBS; do
	expect_eq "content ${b:7:12}" "$b" "$(dctr content ls -q | grep -Fx "$b")"
done
