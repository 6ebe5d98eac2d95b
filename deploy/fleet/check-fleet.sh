#!/bin/sh
# SPDX-License-Identifier: MIT
# The fleet recipe (docs/FLEET.md) stays usable: its proxy.ini passes the
# proxy's own -t, and its haproxy.cfg passes haproxy -c where HAProxy is
# installed (it is, with the test dependencies; DRP_STRICT=1 insists).
set -eu
dir=${srcdir:-.}/deploy/fleet
proxy=${top_builddir:-.}/docker-registry-proxy
"$proxy" -t -c "$dir/proxy.ini" || { echo "FAIL: $dir/proxy.ini"; exit 1; }
if command -v haproxy >/dev/null 2>&1; then
	haproxy -c -q -f "$dir/haproxy.cfg" || { echo "FAIL: $dir/haproxy.cfg"; exit 1; }
elif [ "${DRP_STRICT:-}" = 1 ]; then
	echo "FAIL: haproxy missing (DRP_STRICT=1)"
	exit 1
else
	echo "SKIP: haproxy missing: only proxy.ini checked"
	exit 77
fi
echo "PASS: deploy/fleet"
