#!/bin/bash
# SPDX-License-Identifier: MIT
# Private content stays private (issue 4): a cached private blob goes to
# a client inside the section's allow, not to one outside it (403); a
# private blob asked for by digest under a public repository's name is
# not served; wrong proxy credentials are a clear error, never a crash.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo
DRP_IT_ALLOW=127.0.0.0/8 drp_own_proxy "" "[registry \"basic.test\"]
plugin = basic
username = $BASIC_USER
password_file = $(drp_secret basic.pw "$BASIC_PASS")
[registry \"token.test\"]
plugin = basic
username = ${PROXYUSER%%:*}
password_file = $(drp_secret token.pw "${PROXYUSER#*:}")
allow = 127.0.0.1/32"
secret_layer=${PUSH_BLOBS##* }

# 127.0.0.1 (inside allow) pulls the private image: now cached.
pskopeo copy --quiet --retry-times 0 docker://token.test/private/secret:v1 "dir:$SCEN/secret"
check_dir_image "$SCEN/secret" "$PUSH_DIGEST" $PUSH_BLOBS

# 127.0.0.5 (allowed by [proxy], outside the section's allow): 403 for
# the cached private blob, while 127.0.0.1 is served.
code=$(curl -s --max-time 30 --interface 127.0.0.5 --proxy "$PROXY_URL" --noproxy '' \
	--cacert "$PROXY_CA" --capath "$WORK/empty-certs" -o /dev/null -w '%{http_code}' \
	"https://token.test/v2/private/secret/blobs/$secret_layer" || true)
expect_eq "cached private blob for 127.0.0.5" 403 "$code"
code=$(pcurl -o "$SCEN/blob" -w '%{http_code}' "https://token.test/v2/private/secret/blobs/$secret_layer")
expect_eq "cached private blob for 127.0.0.1" 200 "$code"
expect_file_digest "cached private blob bytes" "$SCEN/blob" "$secret_layer"

# The private blob by digest under the public repository's name.
code=$(pcurl -o "$SCEN/blob" -w '%{http_code}' "https://token.test/v2/public/small/blobs/$secret_layer")
[ "$code" != 200 ] || drp_fail "the private blob was served under public/small"
drp_log "ok: private blob under public/small: $code"
code=$(pcurl -o /dev/null -w '%{http_code}' -I "https://token.test/v2/public/small/blobs/$secret_layer")
[ "$code" != 200 ] || drp_fail "HEAD of the private blob under public/small said 200"
drp_log "ok: HEAD of it: $code"

# Wrong proxy credentials: -t or the first pull reports it; no crash.
drp_proxy_conf wrongpw "$(drp_free_port)" "" "[registry \"basic.test\"]
plugin = basic
username = $BASIC_USER
password_file = $(drp_secret wrong.pw not-the-password)"
if "$DRP_PROXY" -t -c "$WORK/wrongpw/proxy.ini" >"$SCEN/t.out" 2>&1; then
	drp_start_proxy wrongpw
	code=$(pcurl -o /dev/null -w '%{http_code}' -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
		https://basic.test/v2/test/small/manifests/v1 || true)
	expect_match "pull with wrong proxy credentials" '^(401|403)$' "$code"
	drp_wait "the refused account in the log" 5 grep -qF "$BASIC_USER" "$WORK/wrongpw/proxy.log"
	drp_log "ok: logged: $(grep -F "$BASIC_USER" "$WORK/wrongpw/proxy.log" | tail -n 1)"
	drp_alive "$PROXY_PID" || drp_fail "the proxy with wrong credentials died"
else
	expect_match "-t names the account or the registry" "$BASIC_USER|basic.test" "$(cat "$SCEN/t.out")"
fi
