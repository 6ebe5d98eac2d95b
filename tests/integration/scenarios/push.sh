#!/bin/bash
# SPDX-License-Identifier: MIT
# A push through the proxy (POST, PATCH, PUT streamed upstream, never
# cached) lands byte for byte: checked directly at the registry.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo
layer=${PUSH_BLOBS##* }

mark=$(log_mark "$(reg_log open)")
amk=$(amark)
pskopeo copy --quiet --retry-times 0 --all --preserve-digests \
	"oci:$WORK/images/push" docker://registry.test/test/pushed:v1
# The blobs were really uploaded (not mounted, not skipped).
wait_log "$(reg_log open)" "$mark" "$(req_pat PUT /v2/test/pushed/manifests/v1)" 1 5
log_since "$(reg_log open)" "$mark" >"$SCEN/reg.log"
expect_ge "upload POSTs" 2 "$(grep -cF '"POST /v2/test/pushed/blobs/uploads/' "$SCEN/reg.log" || true)"
expect_ge "upload PUTs with digest" 1 "$(grep -F '"PUT /v2/test/pushed/blobs/uploads/' "$SCEN/reg.log" | grep -cF "digest=sha256%3A${layer#sha256:}" || true)"
expect_eq "manifest PUT" 1 "$(grep -F "$(req_pat PUT /v2/test/pushed/manifests/v1)" "$SCEN/reg.log" | grep -c '" 201 ' || true)"

# Directly at the registry, not through the proxy: manifest and blobs.
dcurl -o "$SCEN/m.json" -D "$SCEN/m.hdr" -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
	https://registry.test/v2/test/pushed/manifests/v1
expect_file_digest "pushed manifest (direct)" "$SCEN/m.json" "$PUSH_DIGEST"
expect_eq "pushed Docker-Content-Digest (direct)" "$PUSH_DIGEST" "$(hdr Docker-Content-Digest <"$SCEN/m.hdr")"
for b in $PUSH_BLOBS; do
	dcurl -o "$SCEN/blob" "https://registry.test/v2/test/pushed/blobs/$b"
	expect_file_digest "pushed blob ${b:7:12} (direct)" "$SCEN/blob" "$b"
done

# The same through the proxy to the Basic-auth registry, with the client's
# credentials.
pskopeo copy --quiet --retry-times 0 --all --preserve-digests --dest-creds "$BASIC_USER:$BASIC_PASS" \
	"oci:$WORK/images/push" docker://basic.test/test/pushed:v1
dcurl -o "$SCEN/m.json" -u "$BASIC_USER:$BASIC_PASS" \
	-H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
	https://basic.test/v2/test/pushed/manifests/v1
expect_file_digest "pushed manifest at basic.test (direct)" "$SCEN/m.json" "$PUSH_DIGEST"

# Pushing blobs the proxy has cached from another repository (pull a base
# image, push it under a new name: what every CI build does). The client's
# HEAD "does the target repository have this blob?" must reflect the
# upstream, not the content-addressed cache: a wrong "yes" makes the
# client skip the upload, and the registry then refuses the manifest.
pskopeo copy --quiet --retry-times 0 docker://registry.test/test/small:v1 "dir:$SCEN/base"
check_dir_image "$SCEN/base" "$SMALL_DIGEST" $SMALL_BLOBS
for b in $SMALL_BLOBS; do
	expect_eq "HEAD of ${b:7:12} in a repository without it" 404 \
		"$(pcurl -I -o /dev/null -w '%{http_code}' "https://registry.test/v2/test/copied/blobs/$b")"
done
pskopeo copy --quiet --retry-times 0 --preserve-digests "dir:$SCEN/base" docker://registry.test/test/copied:v1
expect_eq "copied manifest (direct)" "$SMALL_DIGEST" \
	"$(dcurl -o /dev/null -D - -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
		https://registry.test/v2/test/copied/manifests/v1 | hdr Docker-Content-Digest)"

# A monolithic upload with curl: POST, then PUT with the body and digest.
blob=$SCEN/mono.bin
python3 -c 'import random,sys; sys.stdout.buffer.write(random.Random("drp-mono").randbytes(300000))' >"$blob"
dg="sha256:$(sha256sum <"$blob" | cut -c1-64)"
loc=$(pcurl -X POST -o /dev/null -D - https://registry.test/v2/test/mono/blobs/uploads/ | hdr Location)
expect_match "upload Location" '/v2/test/mono/blobs/uploads/' "$loc"
case $loc in http*) ;; *) loc=https://registry.test$loc ;; esac
sep='?'
case $loc in *\?*) sep='&' ;; esac
code=$(pcurl -X PUT -o /dev/null -w '%{http_code}' -H 'Content-Type: application/octet-stream' \
	--data-binary "@$blob" "$loc${sep}digest=$dg")
expect_eq "monolithic PUT" 201 "$code"
dcurl -o "$SCEN/mono.back" "https://registry.test/v2/test/mono/blobs/$dg"
expect_file_digest "monolithic blob (direct)" "$SCEN/mono.back" "$dg"

# Uploads pass through uncached.
expect_eq "access-log result of the manifest PUT" "201 PASS" \
	"$(anext '$6, $11' "$amk" registry.test:443 PUT /v2/test/pushed/manifests/v1)"

# Paths are logged without their query string (upload URLs carry _state,
# signed URLs carry credentials).
if grep -qE '_state=|digest=sha256' "$PROXY_DIR/access.log"; then
	drp_fail "the access log contains a query string: $(grep -m1 -E '_state=|digest=sha256' "$PROXY_DIR/access.log")"
fi
drp_log "ok: no query strings in the access log"
