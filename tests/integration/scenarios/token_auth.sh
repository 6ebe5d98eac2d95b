#!/bin/bash
# SPDX-License-Identifier: MIT
# A token-auth registry (token.test, realm on auth.test, both intercepted)
# through the proxy with the clients' own credentials: the challenge
# reaches the client, the token fetch and the authorized requests pass
# through, each client keeps its own identity, and no token or password
# lands in the proxy's logs.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo ctr containerd
SCHEMA2=application/vnd.docker.distribution.manifest.v2+json
tlog=$WORK/logs/token.out

# The /v2/ probe: a Bearer challenge.
code=$(pcurl -o /dev/null -D "$SCEN/h" -w '%{http_code}' https://token.test/v2/)
expect_eq "anonymous /v2/" 401 "$code"
expect_match "challenge" '^Bearer realm=' "$(hdr WWW-Authenticate <"$SCEN/h")"

# The token dance by hand, through the proxy: a token for alice, then the
# manifest with it.
t=$(pcurl -u "$ALICE" "https://auth.test/token?service=token.test&scope=repository:private/small:pull" | jq -r .token)
[ -n "$t" ] && [ "$t" != null ] || drp_fail "no token from auth.test through the proxy"
code=$(pcurl -o "$SCEN/m.json" -w '%{http_code}' -H "Authorization: Bearer $t" -H "Accept: $SCHEMA2" \
	https://token.test/v2/private/small/manifests/v1)
expect_eq "private manifest with alice's token" 200 "$code"
expect_file_digest "private manifest" "$SCEN/m.json" "$SMALL_DIGEST"

# skopeo: anonymous pulls public/, is refused private/, alice pulls private/.
mark=$(log_mark "$tlog")
pskopeo copy --quiet --retry-times 0 docker://token.test/public/small:v1 "dir:$SCEN/public"
check_dir_image "$SCEN/public" "$SMALL_DIGEST" $SMALL_BLOBS
if pskopeo inspect --retry-times 0 docker://token.test/private/small:v1 >"$SCEN/out" 2>&1; then
	drp_fail "anonymous skopeo inspect of private/small succeeded"
fi
expect_match "anonymous private error" 'unauthorized|authentication required|denied|401' "$(cat "$SCEN/out")"
pskopeo copy --quiet --retry-times 0 --src-creds "$ALICE" docker://token.test/private/secret:v1 "dir:$SCEN/secret"
check_dir_image "$SCEN/secret" "$PUSH_DIGEST" $PUSH_BLOBS
# The token service saw alice's own request: her identity went through.
expect_ge "alice's token fetches" 1 "$(count_since "$tlog" "$mark" 'GET user=alice scope=repository:private/secret:pull')"

# ctr with credentials: containerd's OAuth2 POST goes through too.
drp_start_containerd "$SCEN/ctd"
mark=$(log_mark "$tlog")
via_proxy dctr images pull --snapshotter native --user "$ALICE" token.test/private/small:v1 >/dev/null
expect_eq "ctr private digest" "$SMALL_DIGEST" "$(ctr_image_digest token.test/private/small:v1)"
expect_ge "ctr's token POSTs as alice" 1 "$(count_since "$tlog" "$mark" 'POST user=alice scope=repository:private/small:pull')"

# alice pushes under her own identity.
mark=$(log_mark "$tlog")
pskopeo copy --quiet --retry-times 0 --preserve-digests --dest-creds "$ALICE" \
	"oci:$WORK/images/push" docker://token.test/alice/pushed:v1
expect_ge "alice's push token" 1 "$(count_since "$tlog" "$mark" 'user=alice scope=repository:alice/pushed:pull,push')"
expect_eq "pushed manifest (direct, as alice)" "$PUSH_DIGEST" \
	"$(dcurl -o /dev/null -D - -H "Authorization: Bearer $(dcurl -u "$ALICE" \
		'https://auth.test/token?service=token.test&scope=repository:alice/pushed:pull' | jq -r .token)" \
		-H "Accept: $SCHEMA2" https://token.test/v2/alice/pushed/manifests/v1 | hdr Docker-Content-Digest)"

# Neither the password nor a token in the proxy's logs.
for f in "$PROXY_DIR/access.log" "$PROXY_DIR/proxy.log" "$WORK/logs/proxy-$PROXY_NAME.err"; do
	if grep -qF -e alice-pw -e "${t:0:40}" "$f"; then
		drp_fail "a credential leaked into $f"
	fi
done
drp_log "ok: no credential in the proxy's logs"
