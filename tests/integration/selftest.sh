#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Proves the harness without the proxy: starts every upstream server of
# the integration tests, pushes the test images, and checks that each
# server and each client (curl, skopeo, podman, ctr) works DIRECTLY,
# trusting only the test CA. If this fails, the scenarios' failures say
# nothing about the proxy.
#
# usage: selftest.sh            (root; DRP_IT_LARGE_MB sets the big layer)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (binds 127.0.0.x:443)"; exit 77; }
drp_require_tools $DRP_BASE_TOOLS podman containerd ctr
drp_require_python_module cryptography
drp_lock
drp_setup_work
t0=$SECONDS

drp_log "set-up: PKI, registries, nginx"
drp_start_upstreams
drp_log "set-up: images (large layer ${DRP_IT_LARGE_MB:-100} MiB)"
drp_build_images
drp_log "set-up: pushing to three registries"
drp_push_all
drp_log "set-up done in $((SECONDS - t0)) s"

ok() { drp_log "PASS: $*"; }

# 1. /v2/ of each registry: open 200, Basic 401 with a Basic challenge
# (and 200 with credentials), redirect 200.
expect_eq "registry.test /v2/" 200 "$(dcurl -o /dev/null -w '%{http_code}' https://registry.test/v2/)"
expect_eq "basic.test /v2/ anonymous" 401 "$(dcurl -o /dev/null -w '%{http_code}' https://basic.test/v2/)"
expect_eq "basic.test challenge" 'Basic realm="drp-basic-realm"' \
	"$(dcurl -D - -o /dev/null https://basic.test/v2/ | hdr WWW-Authenticate)"
expect_eq "basic.test /v2/ with creds" 200 \
	"$(dcurl -o /dev/null -w '%{http_code}' -u "$BASIC_USER:$BASIC_PASS" https://basic.test/v2/)"
expect_eq "redirect.test /v2/" 200 "$(dcurl -o /dev/null -w '%{http_code}' https://redirect.test/v2/)"
ok "registries answer /v2/"

# 2. Manifest by tag with Accept returns the pushed digest, byte for byte.
for reg in registry.test redirect.test; do
	dcurl -o "$WORK/m.json" -D "$WORK/m.hdr" \
		-H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
		"https://$reg/v2/test/small/manifests/v1"
	expect_file_digest "$reg small manifest" "$WORK/m.json" "$SMALL_DIGEST"
	expect_eq "$reg Docker-Content-Digest" "$SMALL_DIGEST" "$(hdr Docker-Content-Digest <"$WORK/m.hdr")"
done
ok "manifests by tag"

# 3. The redirect registry answers blob GETs with 307 to the CDN, and the
# CDN serves the right bytes at that URL.
mark=$(log_mark "$(CDN_LOG)")
layer=${SMALL_LAYERS%% *}
hdr=$(dcurl -o /dev/null -D - "https://redirect.test/v2/test/small/blobs/$layer")
expect_eq "redirect status" 307 "$(printf '%s' "$hdr" | status_codes)"
expect_eq "redirect Location" \
	"https://cdn.test/docker/registry/v2/blobs/sha256/${layer:7:2}/${layer#sha256:}/data" \
	"$(printf '%s' "$hdr" | hdr Location)"
dcurl -L -o "$WORK/blob" "https://redirect.test/v2/test/small/blobs/$layer"
expect_file_digest "blob via CDN" "$WORK/blob" "$layer"
pat=$(req_pat GET "/docker/registry/v2/blobs/sha256/${layer:7:2}/${layer#sha256:}/data")
wait_log "$(CDN_LOG)" "$mark" "$pat" 1 5
expect_eq "CDN GET count" 1 "$(count_since "$(CDN_LOG)" "$mark" "$pat")"
ok "redirect to CDN"

# 4. Tunnel origin serves its file with its own certificate.
dcurl -o "$WORK/tfile" https://tunnel.test/file
expect_file_digest "tunnel.test/file" "$WORK/tfile" "$TUNNEL_FILE_DIGEST"
ok "tunnel origin"

# 5. Registry access logs count blob GETs.
mark=$(log_mark "$(reg_log open)")
dcurl -o "$WORK/blob" "https://registry.test/v2/test/small/blobs/$layer"
expect_file_digest "registry.test blob" "$WORK/blob" "$layer"
pat=$(req_pat GET "/v2/test/small/blobs/$layer")
wait_log "$(reg_log open)" "$mark" "$pat" 1 5
expect_eq "registry access log blob GET" 1 "$(count_since "$(reg_log open)" "$mark" "$pat")"
ok "access logs"

# 6. skopeo pulls every image byte for byte from every registry.
for reg in registry.test basic.test redirect.test; do
	creds=()
	[ $reg = basic.test ] && creds=(--src-creds "$BASIC_USER:$BASIC_PASS")
	rm -rf "$WORK/out"
	direct skopeo copy --quiet --retry-times 0 "${creds[@]}" \
		"docker://$reg/test/small:v1" "dir:$WORK/out"
	# shellcheck disable=SC2086
	check_dir_image "$WORK/out" "$SMALL_DIGEST" $SMALL_BLOBS
done
rm -rf "$WORK/out"
ts=$SECONDS
direct skopeo copy --quiet --retry-times 0 docker://registry.test/test/large:v1 "dir:$WORK/out"
# shellcheck disable=SC2086
check_dir_image "$WORK/out" "$LARGE_DIGEST" $LARGE_BLOBS
drp_log "large image direct pull: $((SECONDS - ts)) s"
rm -rf "$WORK/out"
direct skopeo copy --quiet --retry-times 0 --all docker://registry.test/test/multi:v1 "dir:$WORK/out"
expect_file_digest "multi index" "$WORK/out/manifest.json" "$MULTI_DIGEST"
expect_file_digest "multi amd64 manifest" "$WORK/out/${MULTI_AMD64_DIGEST#sha256:}.manifest.json" "$MULTI_AMD64_DIGEST"
expect_file_digest "multi arm64 manifest" "$WORK/out/${MULTI_ARM64_DIGEST#sha256:}.manifest.json" "$MULTI_ARM64_DIGEST"
rm -rf "$WORK/out"
ok "skopeo"

# 7. podman pulls (vfs) and records the pushed manifest digest.
pd=$WORK/pd
direct drp_podman "$pd" pull -q docker://registry.test/test/small:v1 >/dev/null
expect_eq "podman small digest" "$SMALL_DIGEST" \
	"$(drp_podman "$pd" inspect --format '{{.Digest}}' registry.test/test/small:v1)"
direct drp_podman "$pd" pull -q --creds "$BASIC_USER:$BASIC_PASS" docker://basic.test/test/small:v1 >/dev/null
expect_eq "podman basic digest" "$SMALL_DIGEST" \
	"$(drp_podman "$pd" inspect --format '{{.Digest}}' basic.test/test/small:v1)"
direct drp_podman "$pd" pull -q docker://redirect.test/test/multi:v1 >/dev/null
expect_eq "podman multi digest" "$MULTI_DIGEST" \
	"$(drp_podman "$pd" inspect --format '{{.Digest}}' redirect.test/test/multi:v1)"
drp_podman_reset "$pd"
ok "podman"

# 8. ctr (private containerd) pulls, unpacks, records the digest.
drp_start_containerd "$WORK/ctd"
direct ctr -a "$CTR_SOCK" images pull --snapshotter native registry.test/test/small:v1 >/dev/null
expect_eq "ctr small digest" "$SMALL_DIGEST" "$(ctr_image_digest registry.test/test/small:v1)"
direct ctr -a "$CTR_SOCK" images pull --snapshotter native redirect.test/test/multi:v1 >/dev/null
expect_eq "ctr multi digest" "$MULTI_DIGEST" "$(ctr_image_digest redirect.test/test/multi:v1)"
direct ctr -a "$CTR_SOCK" images pull --snapshotter native --user "$BASIC_USER:$BASIC_PASS" basic.test/test/small:v1 >/dev/null
expect_eq "ctr basic digest" "$SMALL_DIGEST" "$(ctr_image_digest basic.test/test/small:v1)"
ok "ctr"

# 9. docker (private dockerd) pulls; it treats these loopback registries
# as insecure when pulling directly, through the proxy it cannot.
if command -v dockerd >/dev/null; then
	drp_start_dockerd "$WORK/dk" direct
	docker pull -q registry.test/test/small:v1 >/dev/null
	expect_eq "docker small digest" "$SMALL_DIGEST" "$(docker_repo_digest registry.test/test/small:v1)"
	docker pull -q registry.test/test/multi:v1 >/dev/null
	expect_eq "docker multi digest" "$MULTI_DIGEST" "$(docker_repo_digest registry.test/test/multi:v1)"
	drp_stop "$DOCKERD_PID" 20 || drp_fail "dockerd did not stop on SIGTERM"
	ok "docker"
else
	drp_log "SKIP: docker (dockerd not installed)"
fi

# 10. The misbehaving upstream of the cache tests does what it says.
drp_start_fakeupstream $((40 * 1024 * 1024))
layer=${SMALL_LAYERS%% *}
dcurl -o "$WORK/blob" "https://bad.test/v2/test/good/blobs/$layer"
expect_file_digest "fake good blob" "$WORK/blob" "$layer"
code=$(dcurl -o "$WORK/blob" -w '%{http_code}' -r 10-19 "https://bad.test/v2/test/good/blobs/$layer")
expect_eq "fake Range" "206 $(tail -c +11 "$WORK/allblobs/${layer#sha256:}" | head -c 10 | sha256sum)" \
	"$code $(sha256sum <"$WORK/blob")"
dcurl -o "$WORK/blob" "https://bad.test/v2/test/bad/blobs/$layer"
expect_eq "fake bad blob: same length" "$(stat -c %s "$WORK/allblobs/${layer#sha256:}")" "$(stat -c %s "$WORK/blob")"
[ "sha256:$(sha256sum <"$WORK/blob" | cut -c1-64)" != "$layer" ] || drp_fail "fake bad blob has the right bytes"
rc=0
dcurl -o "$WORK/blob" "https://bad.test/v2/test/short/blobs/$layer" 2>/dev/null || rc=$?
expect_eq "fake short blob: curl exit (partial file)" 18 "$rc"
ts=$(date +%s%N)
dcurl -o "$WORK/blob" "https://bad.test/v2/test/slow/blobs/$LARGE_LAYER"
te=$(date +%s%N)
expect_file_digest "fake slow blob" "$WORK/blob" "$LARGE_LAYER"
want_ms=$(($(stat -c %s "$WORK/blob") * 1000 / (40 * 1024 * 1024)))
expect_ge "fake slow blob took (ms), 90% of size/rate" $((want_ms * 9 / 10)) $(((te - ts) / 1000000))
drp_stop "$FAKE_PID" 5 || true
ok "fake upstream"

# 11. A registry a scenario starts and stops.
drp_start_registry stale stale.test
drp_push_direct small stale.test/test/small:v1
expect_eq "stale.test manifest" 200 "$(dcurl -o /dev/null -w '%{http_code}' https://stale.test/v2/test/small/manifests/v1)"
drp_stop "${REG_PID[stale]}" 10 || drp_fail "registry did not stop on SIGTERM"
drp_port_open "${DRP_IP[stale.test]}" 443 && drp_fail "stale.test still answers after SIGTERM"
ok "stopping a registry"

# 12. The token-auth registry and its token service.
hdrs=$(dcurl -o /dev/null -D - https://token.test/v2/)
expect_eq "token.test /v2/ anonymous" 401 "$(printf '%s' "$hdrs" | status_codes)"
expect_eq "token.test challenge" 'Bearer realm="https://auth.test/token",service="token.test"' \
	"$(printf '%s' "$hdrs" | hdr WWW-Authenticate)"
tok() { dcurl "$@" | jq -r .token; }
t=$(tok "https://auth.test/token?service=token.test&scope=repository:private/small:pull")
expect_eq "private manifest with an anonymous token" 401 \
	"$(dcurl -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $t" https://token.test/v2/private/small/manifests/v1)"
t=$(tok -u "$PROXYUSER" "https://auth.test/token?service=token.test&scope=repository:private/small:pull")
expect_eq "private manifest with proxyuser's token" "200 $SMALL_DIGEST" \
	"$(dcurl -o /dev/null -w '%{http_code} ' -D "$WORK/th" -H "Authorization: Bearer $t" \
		-H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
		https://token.test/v2/private/small/manifests/v1)$(hdr Docker-Content-Digest <"$WORK/th")"
expect_eq "wrong password at the token service" 401 \
	"$(dcurl -o /dev/null -w '%{http_code}' -u proxyuser:wrong "https://auth.test/token?service=token.test")"
rm -rf "$WORK/out"
direct skopeo copy --quiet --retry-times 0 docker://token.test/public/small:v1 "dir:$WORK/out"
# shellcheck disable=SC2086
check_dir_image "$WORK/out" "$SMALL_DIGEST" $SMALL_BLOBS
if direct skopeo inspect --retry-times 0 docker://token.test/private/small:v1 >/dev/null 2>&1; then
	drp_fail "anonymous skopeo inspect of private/small succeeded"
fi
rm -rf "$WORK/out"
direct skopeo copy --quiet --retry-times 0 --src-creds "$PROXYUSER" docker://token.test/private/secret:v1 "dir:$WORK/out"
# shellcheck disable=SC2086
check_dir_image "$WORK/out" "$PUSH_DIGEST" $PUSH_BLOBS
# containerd's token fetch with credentials is an OAuth2 POST.
mark=$(log_mark "$WORK/logs/token.out")
direct ctr -a "$CTR_SOCK" images pull --snapshotter native --user "$ALICE" token.test/private/small:v1 >/dev/null
expect_eq "ctr private digest" "$SMALL_DIGEST" "$(ctr_image_digest token.test/private/small:v1)"
expect_ge "ctr token POSTs as alice" 1 "$(count_since "$WORK/logs/token.out" "$mark" 'POST user=alice scope=repository:private/small:pull')"
ok "token auth"

# 13. A push of the push image lands with its digest (then removed again
# is not possible without GC, so it goes to a repository nobody else uses).
direct skopeo copy --quiet --all --preserve-digests --retry-times 0 \
	"oci:$WORK/images/push" docker://registry.test/selftest/pushed:v1
expect_eq "pushed manifest digest" "$PUSH_DIGEST" \
	"$(dcurl -I -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
		https://registry.test/v2/selftest/pushed/manifests/v1 | hdr Docker-Content-Digest)"
ok "push"

drp_log "selftest: all direct checks passed in $((SECONDS - t0)) s"
