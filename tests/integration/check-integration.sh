#!/bin/sh
# SPDX-License-Identifier: MIT
# `make check` entry for the integration tests: runs run.sh against the
# proxy just built. They bind 127.0.0.x:443 and start registries, so they
# need root; otherwise the test is skipped (77).
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: integration tests need root (they bind 127.0.0.x:443)"
	exit 77
fi
: "${top_srcdir:?run through make check}" "${top_builddir:?run through make check}"
DRP_PROXY=${DRP_PROXY:-$top_builddir/docker-registry-proxy}
export DRP_PROXY
exec bash "$top_srcdir/tests/integration/run.sh"
