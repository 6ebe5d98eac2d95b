#!/bin/bash
# SPDX-License-Identifier: MIT
# A Basic-auth registry through the proxy: the client's own credentials
# pass through and work; without them the upstream's 401 and its
# challenge reach the client; credentials never appear in the proxy's logs.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo

# With the client's credentials: a byte-for-byte pull.
pskopeo copy --quiet --retry-times 0 --src-creds "$BASIC_USER:$BASIC_PASS" \
	docker://basic.test/test/small:v1 "dir:$SCEN/small"
check_dir_image "$SCEN/small" "$SMALL_DIGEST" $SMALL_BLOBS

# Without credentials: the registry's 401 with its Basic challenge.
code=$(pcurl -o /dev/null -D "$SCEN/h" -w '%{http_code}' https://basic.test/v2/test/small/manifests/v1)
expect_eq "anonymous status" 401 "$code"
expect_eq "anonymous challenge" 'Basic realm="drp-basic-realm"' "$(hdr WWW-Authenticate <"$SCEN/h")"
code=$(pcurl -o /dev/null -w '%{http_code}' https://basic.test/v2/)
expect_eq "anonymous /v2/ status" 401 "$code"

# skopeo without credentials fails, naming the authentication problem.
if pskopeo inspect --retry-times 0 docker://basic.test/test/small:v1 >"$SCEN/out" 2>&1; then
	drp_fail "anonymous skopeo inspect of basic.test succeeded"
fi
expect_match "skopeo error" 'unauthorized|authentication required|401' "$(cat "$SCEN/out")"

# Wrong password: 401; right one: 200 and the manifest.
code=$(pcurl -o /dev/null -w '%{http_code}' -u "$BASIC_USER:wrong" https://basic.test/v2/)
expect_eq "wrong password status" 401 "$code"
code=$(pcurl -o "$SCEN/m.json" -w '%{http_code}' -u "$BASIC_USER:$BASIC_PASS" \
	-H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
	https://basic.test/v2/test/small/manifests/v1)
expect_eq "with credentials status" 200 "$code"
expect_file_digest "with credentials manifest" "$SCEN/m.json" "$SMALL_DIGEST"

# No password, no Authorization value in any proxy log.
b64=$(printf '%s:%s' "$BASIC_USER" "$BASIC_PASS" | base64 -w0)
for f in "$PROXY_DIR/access.log" "$PROXY_DIR/proxy.log" "$WORK/logs/proxy-$PROXY_NAME.err" \
	"$WORK/logs/proxy-$PROXY_NAME.out"; do
	[ -f "$f" ] || continue
	if grep -qF -e "$BASIC_PASS" -e "$b64" "$f"; then
		drp_fail "credentials leaked into $f"
	fi
done
drp_log "ok: no credential in the proxy's logs"
