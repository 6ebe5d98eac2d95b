#!/bin/bash
# SPDX-License-Identifier: MIT
# Plugin dockerhub against an emulated Docker Hub under its real names
# (issue 4):
#  - registry-1.docker.io: docker-registry with token auth (challenge
#    realm https://auth.docker.io/token, service registry.docker.io)
#    behind nginx, which turns its blob redirects into signed CDN URLs
#    (307 to https://production.cloudflare.docker.com/registry-v2/...
#    ?verify=..., percent-encoded);
#  - production.cloudflare.docker.com: serves the blobs only to URLs whose
#    verify= arrived exactly as signed;
#  - auth.docker.io: tokens as Docker Hub issues them (long JWTs carrying
#    their certificate in x5c, issued_at with nanoseconds): anonymous ones
#    with pull on library/* only, account ones after checking the Basic
#    credentials, 401 for wrong ones; nothing on a repository that does
#    not exist, which the registry then refuses like a private one.
# With [registry "docker.io"] plugin = dockerhub and an account, clients
# without any credentials (skopeo, podman, ctr, docker) pull the private
# docker.io/acme/private:v1 and the one-word docker.io/hello:v1
# (library/hello); ten pulls cost one token request per scope, ten
# concurrent ones too. With the account only in [registry
# "docker.io/acme"] and an anonymous [registry "docker.io"], the public
# image comes with anonymous tokens, acme/private with the account, and
# other/private (which the account could read) is refused, even by digest
# of a blob the proxy holds.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$DRP_IT_DIR/auth_lib.sh"
drp_scenario_init
drp_require_tools skopeo podman ctr containerd
emu_no_client_creds
HUB_PAT=dckr_pat_Emu-Acme+bot/Token=
VERIFY=1764278400-Zm9v%2BYmFy%2FYmF6%3D
CDN=production.cloudflare.docker.com

emu_host registry-1.docker.io 127.0.0.31
emu_host auth.docker.io 127.0.0.32
emu_host $CDN 127.0.0.33
rport=$(drp_free_port)
emu_tokens hub "{
  \"path\": \"/token\", \"services\": [\"registry.docker.io\"],
  \"x5c\": \"$WORK/pki/token-signer.crt\", \"issued_at_ns\": true, \"storage\": \"$SCEN/storage/hub\",
  \"accounts\": {
    \"acmebot\": {\"password_file\": \"$(drp_secret hub-acmebot.pat "$HUB_PAT")\",
                  \"grants\": [[\"acme/*\", [\"pull\"]], [\"other/*\", [\"pull\"]], [\"library/*\", [\"pull\"]]]},
    \"${EMU_ADMIN%%:*}\": {\"password\": \"${EMU_ADMIN#*:}\", \"grants\": [[\"*\", [\"pull\", \"push\"]]]}},
  \"anonymous\": [[\"library/*\", [\"pull\"]]],
  \"bad_credentials\": {\"details\": \"incorrect username or password\"}}" auth.docker.io
emu_registry hub "127.0.0.1:$rport" registry.docker.io https://auth.docker.io/token \
	redirect=https://$CDN host=https://registry-1.docker.io
emu_nginx "$(emu_front registry-1.docker.io "$rport" - - \
	"proxy_redirect ~^https://${CDN//./\\.}/(.*)\$ https://$CDN/registry-v2/\$1?verify=$VERIFY;")" \
	"$(emu_cdn $CDN "$SCEN/storage/hub" /registry-v2 verify "$VERIFY")"
emu_nginx_wait registry-1.docker.io $CDN
emu_push push docker.io/acme/private:v1
emu_push push docker.io/other/private:v1
emu_push small docker.io/library/hello:v1
tlog=$(emu_token_log hub)
cdn=$(emu_front_log $CDN)
layer=${PUSH_BLOBS##* }
cdn_path=/registry-v2/docker/registry/v2/blobs/sha256/${layer:7:2}/${layer#sha256:}/data

# What the emulation does without the proxy: the challenge names Docker
# Hub's realm and service; an anonymous token does not open acme/private;
# an account token does, and its blobs are signed CDN redirects.
ecurl() { edirect curl -sS --cacert "$TEST_CA" "$@"; }
code=$(ecurl -o /dev/null -D "$SCEN/ch" -w '%{http_code}' https://registry-1.docker.io/v2/acme/private/manifests/v1)
expect_eq "direct anonymous manifest" 401 "$code"
expect_eq "the registry's challenge" \
	'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:acme/private:pull"' \
	"$(hdr WWW-Authenticate <"$SCEN/ch")"
at=$(ecurl 'https://auth.docker.io/token?service=registry.docker.io&scope=repository:acme/private:pull' | jq -r .token)
expect_eq "direct manifest with an anonymous token" 401 \
	"$(ecurl -o /dev/null -D "$SCEN/ch2" -w '%{http_code}' -H "Authorization: Bearer $at" https://registry-1.docker.io/v2/acme/private/manifests/v1)"
expect_match "its challenge" 'error="insufficient_scope"' "$(hdr WWW-Authenticate <"$SCEN/ch2")"
ecurl -u "acmebot:$HUB_PAT" 'https://auth.docker.io/token?service=registry.docker.io&scope=repository:acme/private:pull' >"$SCEN/tok.json"
expect_match "an account token's issued_at" '^[0-9-]{10}T[0-9:]{8}\.[0-9]{9}Z$' "$(jq -r .issued_at "$SCEN/tok.json")"
expect_ge "an account token's length" 1000 "$(jq -r .token "$SCEN/tok.json" | wc -c)"
ecurl -o /dev/null -D "$SCEN/bh" -H "Authorization: Bearer $(jq -r .token "$SCEN/tok.json")" \
	"https://registry-1.docker.io/v2/acme/private/blobs/$layer"
expect_eq "direct blob redirect" "307 https://$CDN$cdn_path?verify=$VERIFY" \
	"$(status_codes <"$SCEN/bh") $(hdr Location <"$SCEN/bh")"
expect_eq "the CDN with the signed URL" 200 "$(ecurl -o /dev/null -w '%{http_code}' "https://$CDN$cdn_path?verify=$VERIFY")"
expect_eq "the CDN with the URL decoded" 403 \
	"$(ecurl -o /dev/null -w '%{http_code}' "https://$CDN$cdn_path?verify=$(printf '%b' "${VERIFY//%/\\x}")")"

# The proxy holds Docker Hub credentials (tag_ttl 0: every pull asks the
# registry for the tag again).
drp_own_proxy "" "tag_ttl = 0s
[registry \"docker.io\"]
plugin = dockerhub
username = acmebot
password_file = $WORK/secrets/hub-acmebot.pat
allow = 127.0.0.1/32"
mark=$(log_mark "$tlog")
cmark=$(log_mark "$cdn")

# skopeo: ten concurrent pulls of the private image, then ten more one
# after the other: one token request.
pids=()
for i in $(seq 1 10); do
	pskopeo copy --quiet --retry-times 0 docker://docker.io/acme/private:v1 "dir:$SCEN/par$i" \
		>"$SCEN/par$i.out" 2>&1 &
	pids+=($!)
done
for i in $(seq 1 10); do
	wait "${pids[$((i - 1))]}" || drp_fail "concurrent pull $i failed: $(cat "$SCEN/par$i.out")"
	check_dir_image "$SCEN/par$i" "$PUSH_DIGEST" $PUSH_BLOBS
done
drp_log "ok: 10 concurrent skopeo pulls of docker.io/acme/private:v1, digests as pushed"
for i in $(seq 1 10); do
	rm -rf "$SCEN/private"
	pskopeo copy --quiet --retry-times 0 docker://docker.io/acme/private:v1 "dir:$SCEN/private"
done
check_dir_image "$SCEN/private" "$PUSH_DIGEST" $PUSH_BLOBS
expect_eq "token requests in 20 skopeo pulls of acme/private" \
	"1 GET user=acmebot scope=repository:acme/private:pull status=200 service=registry.docker.io" \
	"$(emu_token_counts "$tlog" "$mark")"
# The one-word name is library/hello for the registry and the token.
pskopeo copy --quiet --retry-times 0 docker://docker.io/hello:v1 "dir:$SCEN/hello"
check_dir_image "$SCEN/hello" "$SMALL_DIGEST" $SMALL_BLOBS

# podman, ctr and docker, no credentials either.
pd=$SCEN/p
drp_at_exit "drp_podman_reset '$pd'"
via_proxy drp_podman "$pd" pull -q docker.io/acme/private:v1 >/dev/null
expect_eq "podman, docker.io/acme/private:v1" "$PUSH_DIGEST" \
	"$(drp_podman "$pd" inspect --format '{{.Digest}}' docker.io/acme/private:v1)"
via_proxy drp_podman "$pd" pull -q docker.io/hello:v1 >/dev/null
expect_eq "podman, docker.io/hello:v1" "$SMALL_DIGEST" \
	"$(drp_podman "$pd" inspect --format '{{.Digest}}' docker.io/library/hello:v1)"
drp_start_containerd "$SCEN/ctd"
via_proxy dctr images pull --snapshotter native docker.io/acme/private:v1 >/dev/null
expect_eq "ctr, docker.io/acme/private:v1" "$PUSH_DIGEST" "$(ctr_image_digest docker.io/acme/private:v1)"
via_proxy dctr images pull --snapshotter native docker.io/library/hello:v1 >/dev/null
expect_eq "ctr, docker.io/library/hello:v1" "$SMALL_DIGEST" "$(ctr_image_digest docker.io/library/hello:v1)"
if command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1; then
	drp_start_dockerd "$SCEN/dk" proxy
	docker pull -q acme/private:v1 >"$SCEN/pull.out"
	expect_eq "docker, acme/private:v1" "$PUSH_DIGEST" "$(docker_repo_digest acme/private:v1)"
	docker pull -q hello:v1 >"$SCEN/pull.out"
	expect_eq "docker, hello:v1" "$SMALL_DIGEST" "$(docker_repo_digest hello:v1)"
elif drp_strict; then
	drp_fail "dockerd missing under DRP_STRICT=1"
fi

# Every pull by every client: one token request per scope, all with the
# proxy's account.
expect_eq "token requests for all pulls" \
	"1 GET user=acmebot scope=repository:acme/private:pull status=200 service=registry.docker.io
1 GET user=acmebot scope=repository:library/hello:pull status=200 service=registry.docker.io" \
	"$(emu_token_counts "$tlog" "$mark")"
drp_log "token requests: $(log_since "$tlog" "$mark" | sort | uniq -c | tr -s ' ' | paste -sd';')"

# The private layer came from the CDN, at the signed URL as the registry
# wrote it, without credentials.
wait_log "$cdn" "$cmark" "$(req_pat GET "$cdn_path?verify=$VERIFY")" 1 5
expect_ge "CDN GETs of the private layer at the signed URL" 1 \
	"$(log_since "$cdn" "$cmark" | grep -F "$(req_pat GET "$cdn_path?verify=$VERIFY")" | grep -c '" 200 ' || true)"
expect_eq "CDN refusals" 0 "$(log_since "$cdn" "$cmark" | grep -c '" 403 ' || true)"
expect_eq "Authorization at the CDN" "" "$(log_since "$cdn" "$cmark" | grep -v '"-"$' || true)"

# A repository that does not exist: Docker Hub grants the account
# nothing on it, so the registry answers 401 as for a private one; the
# client gets an error, and the next pull works as before.
mark=$(log_mark "$tlog")
if pskopeo inspect --retry-times 0 docker://docker.io/acme/typo:v1 >"$SCEN/typo.out" 2>&1; then
	drp_fail "docker.io/acme/typo inspected"
fi
expect_match "the client's error for acme/typo" 'StatusCode: 4[0-9][0-9]|denied|unauthorized|not found|unknown' "$(cat "$SCEN/typo.out")"
drp_log "the client's error for acme/typo: $(tail -n 1 "$SCEN/typo.out")"
expect_eq "token requests for acme/typo" \
	"1 GET user=acmebot scope=repository:acme/typo:pull status=200 service=registry.docker.io" \
	"$(emu_token_counts "$tlog" "$mark")"
rm -rf "$SCEN/private"
pskopeo copy --quiet --retry-times 0 docker://docker.io/acme/private:v1 "dir:$SCEN/private"
check_dir_image "$SCEN/private" "$PUSH_DIGEST" $PUSH_BLOBS

emu_check_no_client_creds
auth_no_secret_in "$PROXY_DIR/access.log" "$PROXY_DIR/proxy.log" "$WORK/logs/proxy-$PROXY_NAME.err"
for f in "$PROXY_DIR/access.log" "$PROXY_DIR/proxy.log" "$WORK/logs/proxy-$PROXY_NAME.err"; do
	if grep -qF -e "$HUB_PAT" -e "$(printf 'acmebot:%s' "$HUB_PAT" | base64 -w0)" -e "$(jq -r .token "$SCEN/tok.json" | cut -c1-60)" "$f"; then
		drp_fail "the Docker Hub token or a JWT in $f"
	fi
done
drp_log "ok: the account's token is in none of the proxy's logs"

# The account only for docker.io/acme, anonymous tokens for the rest of
# Docker Hub: the longest match decides, with no fall-back.
drp_proxy_conf split "$(drp_free_port)" "" "[registry \"docker.io/acme\"]
plugin = dockerhub
username = acmebot
password_file = $WORK/secrets/hub-acmebot.pat
allow = 127.0.0.1/32
[registry \"docker.io\"]
plugin = dockerhub
allow = 127.0.0.1/32"
drp_start_proxy split
mark=$(log_mark "$tlog")
pskopeo copy --quiet --retry-times 0 docker://docker.io/hello:v1 "dir:$SCEN/hello-anon"
check_dir_image "$SCEN/hello-anon" "$SMALL_DIGEST" $SMALL_BLOBS
pskopeo copy --quiet --retry-times 0 docker://docker.io/acme/private:v1 "dir:$SCEN/private-split"
check_dir_image "$SCEN/private-split" "$PUSH_DIGEST" $PUSH_BLOBS
expect_eq "token requests: anonymous for library/hello, the account's for acme/private" \
	"1 GET user=- scope=repository:library/hello:pull status=200 service=registry.docker.io
1 GET user=acmebot scope=repository:acme/private:pull status=200 service=registry.docker.io" \
	"$(emu_token_counts "$tlog" "$mark")"
if pskopeo copy --quiet --retry-times 0 docker://docker.io/other/private:v1 "dir:$SCEN/other" \
	>"$SCEN/anon.out" 2>&1; then
	drp_fail "docker.io/other/private pulled through the anonymous section"
fi
expect_match "the client's error for other/private" 'denied|unauthorized|authentication required|401|403' "$(cat "$SCEN/anon.out")"
# A token without the scope is no credential failure: a notice that says
# so, not an error about refused credentials.
expect_match "the proxy's log for other/private" \
	'notice .*other/private/manifests/v1: no access with the credentials of \[registry "docker.io"\] \(plugin dockerhub\): insufficient_scope' \
	"$(cat "$PROXY_DIR/proxy.log")"
expect_no_match "no refused-credentials error for other/private" \
	'other/private.*refused \(HTTP 401\)' "$(cat "$PROXY_DIR/proxy.log")"
if via_proxy dctr -n anon images pull --snapshotter native docker.io/other/private:v1 >"$SCEN/anon-ctr.out" 2>&1; then
	drp_fail "ctr pulled docker.io/other/private through the anonymous section"
fi
# Its layer is in the proxy's cache (acme/private has the same one).
code=$(pcurl -o "$SCEN/blob" -w '%{http_code}' "https://registry-1.docker.io/v2/other/private/blobs/$layer" || true)
[ "$code" != 200 ] || drp_fail "the cached private layer was served under other/private"
drp_log "ok: the cached private layer under other/private: $code"
expect_eq "2xx answers for other/private" "" "$(awk '$5 ~ "^/v2/other/private/" && $6 ~ /^2/' "$PROXY_DIR/access.log")"
expect_eq "account token requests for other/private" 0 "$(count_since "$tlog" "$mark" 'user=acmebot scope=repository:other/')"
