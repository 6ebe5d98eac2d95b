#!/bin/bash
# SPDX-License-Identifier: MIT
# A client outside a section's allow (issue 4, private content): without
# credentials of its own it gets 403 for private repositories (anonymous
# access fails), even for what the cache holds, and public ones
# anonymously; with credentials of its own it gets cached
# content only after the upstream accepted them for that repository (a
# HEAD with its identity, remembered briefly: one HEAD for a whole pull):
# wrong ones get the upstream's 401 (then 403 at once for a while),
# alice's (through the proxy's realm) get the bytes, and the token service
# sees alice, never the proxy's account, for that client.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$DRP_IT_DIR/auth_lib.sh"
drp_scenario_init
drp_require_tools skopeo
SCHEMA2=application/vnd.docker.distribution.manifest.v2+json
tlog=$WORK/logs/token.out
reg=$(reg_log token)
DRP_IT_ALLOW=127.0.0.0/8 drp_own_proxy "" "$(auth_sections)
allow = 127.0.0.1/32"
secret_layer=${PUSH_BLOBS##* }
ocurl() { pcurl --interface 127.0.0.5 "$@"; }

# 127.0.0.1 (inside) pulls: the private image is now cached.
pskopeo copy --quiet --retry-times 0 docker://token.test/private/secret:v1 "dir:$SCEN/secret"
check_dir_image "$SCEN/secret" "$PUSH_DIGEST" $PUSH_BLOBS

# Outside, no credentials: 403 for the cached blob (anonymous access,
# asked first, fails: the repository is private) and then, remembered,
# for the tag, before the cache or the upstream is asked.
mark=$(log_mark "$tlog")
code=$(ocurl -o "$SCEN/body" -w '%{http_code}' "https://token.test/v2/private/secret/blobs/$secret_layer" || true)
expect_eq "outsider, no credentials, cached blob" 403 "$code"
expect_match "the refusal says why" 'private/secret on token.test is private' "$(cat "$SCEN/body")"
expect_ge "anonymous token requests" 1 "$(count_since "$tlog" "$mark" 'GET user=- scope=repository:private/secret:pull')"
mark=$(log_mark "$tlog")
code=$(ocurl -o "$SCEN/body" -w '%{http_code}' -H "Accept: $SCHEMA2" https://token.test/v2/private/secret/manifests/v1 || true)
expect_eq "outsider, no credentials, cached tag" 403 "$code"
expect_match "the refusal says why" '"code":"DENIED"' "$(cat "$SCEN/body")"
expect_eq "token requests for the remembered refusal" 0 "$(count_since "$tlog" "$mark" 'GET')"
# A public repository is served to the outsider, anonymously.
code=$(ocurl -o "$SCEN/manifest" -w '%{http_code}' -H "Accept: $SCHEMA2" https://token.test/v2/public/small/manifests/v1 || true)
expect_eq "outsider, no credentials, public repository" 200 "$code"
expect_file_digest "its manifest" "$SCEN/manifest" "$SMALL_DIGEST"

# Outside, the proxy's handle: still 403.
ph=$(ocurl "https://token.test/_drp/token?service=token.test&scope=repository:private/secret:pull" | jq -r .token)
expect_match "a handle of the proxy's realm" '^drp1\.' "$ph"
code=$(ocurl -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ph" \
	"https://token.test/v2/private/secret/blobs/$secret_layer" || true)
expect_eq "outsider with the proxy's handle" 403 "$code"

# Outside, wrong credentials of its own: the proxy's realm checks them
# with the upstream and refuses them; sent raw, the cache does not
# answer, the upstream refuses them.
mark=$(log_mark "$tlog")
code=$(ocurl -o /dev/null -w '%{http_code}' -u nobody:wrong \
	"https://token.test/_drp/token?service=token.test&scope=repository:private/secret:pull" || true)
expect_eq "the realm, wrong credentials" 401 "$code"
expect_ge "checked at the token service" 1 "$(count_since "$tlog" "$mark" 'user=nobody')"
code=$(ocurl -o /dev/null -w '%{http_code}' -H "Authorization: Basic bm9ib2R5Ondyb25n" \
	"https://token.test/v2/private/secret/blobs/$secret_layer" || true)
expect_eq "outsider with raw wrong Basic credentials" 401 "$code"
# That refusal is remembered briefly: the same credentials get 403 at
# once, without asking the upstream again.
rmk=$(log_mark "$reg")
code=$(ocurl -o "$SCEN/body" -w '%{http_code}' -H "Authorization: Basic bm9ib2R5Ondyb25n" \
	"https://token.test/v2/private/secret/blobs/$secret_layer" || true)
expect_eq "the same wrong credentials again" 403 "$code"
expect_match "the refusal says why" 'refused these credentials for private/secret' "$(cat "$SCEN/body")"
expect_eq "upstream requests for the remembered refusal" 0 "$(count_since "$reg" "$rmk" '/v2/private/secret/')"
expect_eq "the proxy's account used for the outsider" 0 "$(count_since "$tlog" "$mark" 'user=proxyuser')"

# Outside, alice's credentials through the proxy's realm: confirmed by
# the upstream under her identity, then served (from the cache).
rmk=$(log_mark "$reg")
ah=$(ocurl -u "$ALICE" "https://token.test/_drp/token?service=token.test&scope=repository:private/secret:pull" | jq -r .token)
code=$(ocurl -o "$SCEN/blob" -w '%{http_code}' -H "Authorization: Bearer $ah" \
	"https://token.test/v2/private/secret/blobs/$secret_layer")
expect_eq "outsider with alice's credentials" 200 "$code"
expect_file_digest "the blob's bytes" "$SCEN/blob" "$secret_layer"
code=$(ocurl -o "$SCEN/manifest" -w '%{http_code}' -H "Authorization: Bearer $ah" -H "Accept: $SCHEMA2" \
	https://token.test/v2/private/secret/manifests/v1)
expect_eq "outsider with alice's credentials, tag" 200 "$code"
expect_file_digest "the manifest's bytes" "$SCEN/manifest" "$PUSH_DIGEST"
# The rest of the pull, every blob: the first confirmation (a HEAD
# under alice's identity, remembered for a minute) covers them all.
for b in $PUSH_BLOBS; do
	code=$(ocurl -o "$SCEN/blob" -w '%{http_code}' -H "Authorization: Bearer $ah" \
		"https://token.test/v2/private/secret/blobs/$b")
	expect_eq "outsider with alice's credentials, blob ${b:7:12}" 200 "$code"
	expect_file_digest "its bytes" "$SCEN/blob" "$b"
done
wait_log "$reg" "$rmk" '"HEAD /v2/private/secret/' 1 5
heads=$(log_since "$reg" "$rmk" | grep -cE '"HEAD /v2/private/secret/[^"]*" 200 ' || true)
expect_eq "upstream HEADs accepted for the whole pull" 1 "$heads"
expect_le "upstream HEADs in all (a 401 before the token)" 2 \
	"$(count_since "$reg" "$rmk" '"HEAD /v2/private/secret/')"
expect_eq "upstream GETs of cached blobs" 0 "$(count_since "$reg" "$rmk" '"GET /v2/private/secret/blobs/')"
expect_ge "alice's token requests" 1 "$(count_since "$tlog" "$mark" 'user=alice scope=repository:private/secret:pull status=200')"
expect_eq "the proxy's account used for the outsider" 0 "$(count_since "$tlog" "$mark" 'user=proxyuser')"
auth_no_secret_in "$PROXY_DIR/access.log" "$PROXY_DIR/proxy.log" "$WORK/logs/proxy-$PROXY_NAME.err"
