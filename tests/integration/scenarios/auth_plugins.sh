#!/bin/bash
# SPDX-License-Identifier: MIT
# The proxy holds the credentials (issue 4): clients with none pull private
# images from a Basic registry and a token registry (skopeo, podman, ctr,
# docker); 10 pulls cost one token request per scope; the proxy's
# credentials and tokens never reach a client; a client's own credentials
# win (its identity at the token service), also for pushes; push = client
# keeps the proxy's account out of uploads.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo podman ctr containerd
SCHEMA2=application/vnd.docker.distribution.manifest.v2+json
tlog=$WORK/logs/token.out
drp_own_proxy "" "tag_ttl = 0s
[registry \"basic.test\"]
plugin = basic
username = $BASIC_USER
password_file = $(drp_secret basic.pw "$BASIC_PASS")
[registry \"token.test\"]
plugin = basic
username = ${PROXYUSER%%:*}
password_file = $(drp_secret token.pw "${PROXYUSER#*:}")"

# No client credentials, Basic registry: skopeo, podman, ctr.
pskopeo copy --quiet --retry-times 0 docker://basic.test/test/small:v1 "dir:$SCEN/basic"
check_dir_image "$SCEN/basic" "$SMALL_DIGEST" $SMALL_BLOBS
pd=$SCEN/p
drp_at_exit "drp_podman_reset '$pd'"
via_proxy drp_podman "$pd" pull -q docker://basic.test/test/multi:v1 >/dev/null
expect_eq "podman, no credentials, basic.test" "$MULTI_DIGEST" \
	"$(drp_podman "$pd" inspect --format '{{.Digest}}' basic.test/test/multi:v1)"
drp_start_containerd "$SCEN/ctd"
via_proxy dctr images pull --snapshotter native basic.test/test/small:v1 >/dev/null
expect_eq "ctr, no credentials, basic.test" "$SMALL_DIGEST" "$(ctr_image_digest basic.test/test/small:v1)"

# No client credentials, token registry: 10 pulls of one private image
# (tag_ttl 0: every pull revalidates the tag upstream) cost one token
# request for its scope, made with the proxy's account.
mark=$(log_mark "$tlog")
for _ in $(seq 1 10); do
	rm -rf "$SCEN/secret"
	pskopeo copy --quiet --retry-times 0 docker://token.test/private/secret:v1 "dir:$SCEN/secret"
done
check_dir_image "$SCEN/secret" "$PUSH_DIGEST" $PUSH_BLOBS
expect_eq "token requests for private/secret:pull in 10 pulls" 1 \
	"$(count_since "$tlog" "$mark" 'scope=repository:private/secret:pull status=200')"
expect_eq "whose" 1 "$(count_since "$tlog" "$mark" 'user=proxyuser scope=repository:private/secret:pull status=200')"
via_proxy dctr images pull --snapshotter native token.test/private/small:v1 >/dev/null
expect_eq "ctr, no credentials, token.test" "$SMALL_DIGEST" "$(ctr_image_digest token.test/private/small:v1)"

# Nothing the client can get holds the proxy's secrets: whatever token a
# credential-less client obtains through the proxy does not open the
# private repository when taken to the registry directly.
pcurl -o /dev/null -D "$SCEN/ch" https://token.test/v2/ || true
realm=$(hdr WWW-Authenticate <"$SCEN/ch" | sed -n 's/.*realm="\([^"]*\)".*/\1/p')
if [ -n "$realm" ]; then
	ct=$(pcurl "$realm?service=token.test&scope=repository:private/secret:pull" | jq -r '.token // .access_token // empty')
	if [ -n "$ct" ]; then
		expect_eq "client's token used directly at the registry" 401 \
			"$(dcurl -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ct" -H "Accept: $SCHEMA2" \
				https://token.test/v2/private/secret/manifests/v1)"
	fi
fi
b64=$(printf '%s' "$PROXYUSER" | base64 -w0)
for f in "$SCEN"/ch "$PROXY_DIR/access.log" "$PROXY_DIR/proxy.log" "$WORK/logs/proxy-$PROXY_NAME.err"; do
	if grep -qF -e "${PROXYUSER#*:}" -e "$b64" -e "$BASIC_PASS" "$f"; then
		drp_fail "a proxy credential in $f"
	fi
done
drp_log "ok: no proxy credential reached the client or the logs"

# A client's own credentials win: alice's pull and push go to the token
# service as alice, even though the proxy has an account there.
mark=$(log_mark "$tlog")
pskopeo copy --quiet --retry-times 0 --src-creds "$ALICE" docker://token.test/private/small:v1 "dir:$SCEN/alice"
check_dir_image "$SCEN/alice" "$SMALL_DIGEST" $SMALL_BLOBS
expect_ge "alice's own token fetches" 1 "$(count_since "$tlog" "$mark" 'user=alice scope=repository:private/small:pull')"
pskopeo copy --quiet --retry-times 0 --preserve-digests --dest-creds "$ALICE" \
	"oci:$WORK/images/push" docker://token.test/alice/viaproxy:v1
expect_ge "alice's push token" 1 "$(count_since "$tlog" "$mark" 'user=alice scope=repository:alice/viaproxy:pull,push')"
expect_eq "proxy-account tokens for alice's push" 0 "$(count_since "$tlog" "$mark" 'user=proxyuser scope=repository:alice/viaproxy')"

# push = client (the default): without credentials of its own a client
# cannot push with the proxy's account.
if pskopeo copy --quiet --retry-times 0 --preserve-digests "oci:$WORK/images/push" \
	docker://basic.test/test/anonpush:v1 >"$SCEN/out" 2>&1; then
	drp_fail "a credential-less push to basic.test succeeded with the proxy's account"
fi
expect_eq "anonymous push landed" 404 \
	"$(dcurl -o /dev/null -w '%{http_code}' -u "$BASIC_USER:$BASIC_PASS" https://basic.test/v2/test/anonpush/manifests/v1)"
