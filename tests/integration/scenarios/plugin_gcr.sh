#!/bin/bash
# SPDX-License-Identifier: MIT
# Plugin gcr against emulated gcr.io and Artifact Registry
# (europe-docker.pkg.dev) under their real names (issue 4): each host
# serves the registry (docker-registry, token auth, service = the host)
# and its token endpoint https://HOST/v2/token (tokenserver.py behind
# nginx), which takes the user "_json_key" only with the service
# account's JSON key, byte for byte, as the password, and refuses
# anonymous token requests for private repositories with 403 DENIED.
# With [registry "gcr.io"] and the wildcard [registry "*.pkg.dev"], both
# plugin = gcr with key_file, clients without any credentials (skopeo,
# podman, ctr, docker) pull gcr.io/proj/private:v1 and
# europe-docker.pkg.dev/proj/repo/img:v1; ten pulls cost one token
# request per scope. Sections without the key (no plugin) refuse them.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$DRP_IT_DIR/auth_lib.sh"
drp_scenario_init
drp_require_tools skopeo podman ctr containerd
drp_require_python_module cryptography
emu_no_client_creds
AR=europe-docker.pkg.dev
GCS=storage.googleapis.com
GCS_PREFIX=/artifacts.proj.appspot.com/containers/images
GCS_SIG=Rk9vYmFy%2BZW11bGF0ZWQ%2Fc2lnbmF0dXJl%3D%3D
SA_ENC=puller%40proj.iam.gserviceaccount.com
AR_PREFIX=/artifacts-downloads/namespaces/proj/repositories/repo/downloads
AR_SIG=AJ2Gh%2Bemu-download%2Ftoken%3D

# A service-account key as the console hands it out: pretty-printed JSON
# with a PEM key ("\n" escapes inside a string), ending in a newline.
mkdir -p "$WORK/secrets"
python3 - "$WORK/secrets/gcp-puller.json" <<-'EOF'
	import json, sys
	from cryptography.hazmat.primitives import serialization
	from cryptography.hazmat.primitives.asymmetric import rsa
	k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
	pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
	                      serialization.NoEncryption()).decode()
	key = {"type": "service_account", "project_id": "proj",
	       "private_key_id": "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c",
	       "private_key": pem, "client_email": "puller@proj.iam.gserviceaccount.com",
	       "client_id": "104251737263817263544",
	       "auth_uri": "https://accounts.google.com/o/oauth2/auth",
	       "token_uri": "https://oauth2.googleapis.com/token",
	       "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
	       "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/puller%40proj.iam.gserviceaccount.com",
	       "universe_domain": "googleapis.com"}
	with open(sys.argv[1], "w") as f:
	    f.write(json.dumps(key, indent=2) + "\n")
EOF
chmod 600 "$WORK/secrets/gcp-puller.json"
keyfile=$WORK/secrets/gcp-puller.json

emu_host gcr.io 127.0.0.35
emu_host $AR 127.0.0.36
emu_host $GCS 127.0.0.37
tport=$(drp_free_port)
gport=$(drp_free_port)
aport=$(drp_free_port)
emu_tokens gcp "{
  \"listen\": \"127.0.0.1:$tport\", \"tls\": false,
  \"path\": \"/v2/token\", \"services\": [\"gcr.io\", \"$AR\"],
  \"fields\": [\"token\", \"expires_in\", \"issued_at\"], \"oauth_post\": false,
  \"json_key\": true, \"denied\": \"403\",
  \"accounts\": {
    \"_json_key\": {\"password_file\": \"$keyfile\", \"grants\": [[\"proj/*\", [\"pull\"]]]},
    \"${EMU_ADMIN%%:*}\": {\"password\": \"${EMU_ADMIN#*:}\", \"grants\": [[\"*\", [\"pull\", \"push\"]]]}},
  \"anonymous\": [],
  \"bad_credentials\": {\"errors\": [{\"code\": \"UNAUTHORIZED\", \"message\": \"Not Authorized.\"}]}}"
# The registries' blob redirects (307 from the redirect middleware) are
# turned into what Google sends: a 302 to a signed Cloud Storage URL for
# gcr.io, a 302 to a signed download URL on the registry's own host for
# Artifact Registry.
emu_registry gcr "127.0.0.1:$gport" gcr.io https://gcr.io/v2/token host=https://gcr.io redirect=https://$GCS
emu_registry ar "127.0.0.1:$aport" $AR https://$AR/v2/token host=https://$AR redirect=https://$AR
intercept='proxy_intercept_errors on; error_page 307 = @signed;'
emu_nginx 'map $upstream_http_location $drp_blob { "~/docker/registry/v2/blobs/(.*)$" $1; default ""; }' \
	"$(emu_front gcr.io "$gport" /v2/token "$tport" \
		"location @signed { return 302 https://$GCS$GCS_PREFIX/\$drp_blob?GoogleAccessId=$SA_ENC&Expires=1764278400&Signature=$GCS_SIG; }" \
		"$intercept")" \
	"$(emu_front $AR "$aport" /v2/token "$tport" \
		"location @signed { return 302 https://$AR$AR_PREFIX/\$drp_blob?token=$AR_SIG; }
		$(emu_signed_files "$AR_PREFIX" "$SCEN/storage/ar/docker/registry/v2/blobs" token "$AR_SIG")" \
		"$intercept")" \
	"$(emu_cdn $GCS "$SCEN/storage/gcr/docker/registry/v2/blobs" "$GCS_PREFIX" Signature "$GCS_SIG")"
emu_nginx_wait gcr.io $AR $GCS
emu_push push gcr.io/proj/private:v1
emu_push small $AR/proj/repo/img:v1
tlog=$(emu_token_log gcp)

# What the emulation does without the proxy: each host names its own
# realm; the key is the password, byte for byte (its last newline aside,
# as `docker login --password-stdin` sends it); anonymous: 403.
tok() { edirect curl -sS -o /dev/null -w '%{http_code}' --cacert "$TEST_CA" "$@" "https://gcr.io/v2/token?service=gcr.io&scope=repository:proj/private:pull"; }
code=$(edirect curl -sS -o /dev/null -D "$SCEN/ch" -w '%{http_code}' --cacert "$TEST_CA" https://$AR/v2/)
expect_eq "direct /v2/ of $AR" 401 "$code"
expect_eq "its challenge" "Bearer realm=\"https://$AR/v2/token\",service=\"$AR\"" "$(hdr WWW-Authenticate <"$SCEN/ch")"
expect_eq "direct token, the key" 200 "$(tok -u "_json_key:$(head -c -1 "$keyfile")")"
expect_eq "direct token, the key and one byte more" 401 "$(tok -u "_json_key:$(cat "$keyfile")$(printf '\nx')")"
expect_eq "direct token, anonymous" 403 "$(tok)"
layer=${PUSH_BLOBS##* }
ar_layer=${SMALL_LAYERS##* }
gcs_path=$GCS_PREFIX/sha256/${layer:7:2}/${layer#sha256:}/data
ar_path=$AR_PREFIX/sha256/${ar_layer:7:2}/${ar_layer#sha256:}/data
t=$(edirect curl -sS --cacert "$TEST_CA" -u "_json_key:$(head -c -1 "$keyfile")" \
	"https://gcr.io/v2/token?service=gcr.io&scope=repository:proj/private:pull" | jq -r .token)
edirect curl -sS -o /dev/null -D "$SCEN/bh" --cacert "$TEST_CA" -H "Authorization: Bearer $t" \
	"https://gcr.io/v2/proj/private/blobs/$layer"
expect_eq "direct blob redirect of gcr.io" \
	"302 https://$GCS$gcs_path?GoogleAccessId=$SA_ENC&Expires=1764278400&Signature=$GCS_SIG" \
	"$(status_codes <"$SCEN/bh") $(hdr Location <"$SCEN/bh")"
expect_eq "the signed URL decoded" 403 "$(edirect curl -sS -o /dev/null -w '%{http_code}' --cacert "$TEST_CA" \
	"https://$GCS$gcs_path?Signature=$(printf '%b' "${GCS_SIG//%/\\x}")")"

drp_own_proxy "" "tag_ttl = 0s
[registry \"gcr.io\"]
plugin = gcr
key_file = $keyfile
allow = 127.0.0.1/32
[registry \"*.pkg.dev\"]
plugin = gcr
key_file = $keyfile
allow = 127.0.0.1/32"
mark=$(log_mark "$tlog")
gcs_log=$(emu_front_log $GCS)
ar_log=$(emu_front_log $AR)
gmark=$(log_mark "$gcs_log")
amark=$(log_mark "$ar_log")

# skopeo, ten pulls from each registry: one token request per scope.
for i in $(seq 1 10); do
	rm -rf "$SCEN/private" "$SCEN/ar"
	pskopeo copy --quiet --retry-times 0 docker://gcr.io/proj/private:v1 "dir:$SCEN/private"
	pskopeo copy --quiet --retry-times 0 docker://$AR/proj/repo/img:v1 "dir:$SCEN/ar"
	if [ "$i" = 1 ]; then
		check_dir_image "$SCEN/private" "$PUSH_DIGEST" $PUSH_BLOBS
		check_dir_image "$SCEN/ar" "$SMALL_DIGEST" $SMALL_BLOBS
	fi
done
check_dir_image "$SCEN/private" "$PUSH_DIGEST" $PUSH_BLOBS
check_dir_image "$SCEN/ar" "$SMALL_DIGEST" $SMALL_BLOBS
expected="1 GET user=_json_key scope=repository:proj/private:pull status=200 service=gcr.io
1 GET user=_json_key scope=repository:proj/repo/img:pull status=200 service=$AR"
expect_eq "token requests in 10 skopeo pulls from each" "$expected" \
	"$(emu_token_counts "$tlog" "$mark")"

# podman, ctr and docker, no credentials either.
pd=$SCEN/p
drp_at_exit "drp_podman_reset '$pd'"
via_proxy drp_podman "$pd" pull -q gcr.io/proj/private:v1 >/dev/null
expect_eq "podman, gcr.io/proj/private:v1" "$PUSH_DIGEST" \
	"$(drp_podman "$pd" inspect --format '{{.Digest}}' gcr.io/proj/private:v1)"
via_proxy drp_podman "$pd" pull -q $AR/proj/repo/img:v1 >/dev/null
expect_eq "podman, $AR/proj/repo/img:v1" "$SMALL_DIGEST" \
	"$(drp_podman "$pd" inspect --format '{{.Digest}}' $AR/proj/repo/img:v1)"
drp_start_containerd "$SCEN/ctd"
via_proxy dctr images pull --snapshotter native gcr.io/proj/private:v1 >/dev/null
expect_eq "ctr, gcr.io/proj/private:v1" "$PUSH_DIGEST" "$(ctr_image_digest gcr.io/proj/private:v1)"
via_proxy dctr images pull --snapshotter native $AR/proj/repo/img:v1 >/dev/null
expect_eq "ctr, $AR/proj/repo/img:v1" "$SMALL_DIGEST" "$(ctr_image_digest $AR/proj/repo/img:v1)"
if command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1; then
	drp_start_dockerd "$SCEN/dk" proxy
	docker pull -q gcr.io/proj/private:v1 >"$SCEN/pull.out"
	expect_eq "docker, gcr.io/proj/private:v1" "$PUSH_DIGEST" "$(docker_repo_digest gcr.io/proj/private:v1)"
	docker pull -q $AR/proj/repo/img:v1 >"$SCEN/pull.out"
	expect_eq "docker, $AR/proj/repo/img:v1" "$SMALL_DIGEST" "$(docker_repo_digest $AR/proj/repo/img:v1)"
elif drp_strict; then
	drp_fail "dockerd missing under DRP_STRICT=1"
fi
expect_eq "token requests for all pulls" "$expected" "$(emu_token_counts "$tlog" "$mark")"

# Blobs came from Cloud Storage (gcr.io, without credentials) and from
# the download URL on the registry's host (Artifact Registry), each at
# its signed URL exactly as the registry wrote it.
expect_ge "Cloud Storage GETs of the private layer" 1 \
	"$(log_since "$gcs_log" "$gmark" | grep -F "$(req_pat GET "$gcs_path?GoogleAccessId=$SA_ENC&Expires=1764278400&Signature=$GCS_SIG")" | grep -c '" 200 ' || true)"
expect_eq "Authorization at Cloud Storage" "" "$(log_since "$gcs_log" "$gmark" | grep -v '"-"$' || true)"
expect_eq "Cloud Storage refusals" 0 "$(log_since "$gcs_log" "$gmark" | grep -c '" 403 ' || true)"
expect_ge "Artifact Registry download GETs of the layer" 1 \
	"$(log_since "$ar_log" "$amark" | grep -F "$(req_pat GET "$ar_path?token=$AR_SIG")" | grep -c '" 200 ' || true)"
expect_eq "Artifact Registry download refusals" 0 "$(log_since "$ar_log" "$amark" | grep -F "$AR_PREFIX" | grep -c '" 403 ' || true)"
drp_log "token requests: $(log_since "$tlog" "$mark" | sort | uniq -c | tr -s ' ' | paste -sd';')"

emu_check_no_client_creds
pk=$(jq -r .private_key "$keyfile" | sed -n 2p)
for f in "$PROXY_DIR/access.log" "$PROXY_DIR/proxy.log" "$WORK/logs/proxy-$PROXY_NAME.err"; do
	if grep -qF -e "$pk" -e "$(printf '_json_key:%s' "$(head -c -1 "$keyfile")" | base64 -w0)" "$f"; then
		drp_fail "the service-account key in $f"
	fi
done
drp_log "ok: the key is in none of the proxy's logs"

# Another service account's key: the client gets 403, the log names the
# service account, never the key.
jq '.client_email = "other@proj.iam.gserviceaccount.com"' "$keyfile" >"$WORK/secrets/gcp-other.json"
drp_proxy_conf wrong "$(drp_free_port)" "" "[registry \"gcr.io\"]
plugin = gcr
key_file = $WORK/secrets/gcp-other.json
allow = 127.0.0.1/32"
drp_start_proxy wrong
code=$(pcurl -o /dev/null -w '%{http_code}' -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
	https://gcr.io/v2/proj/private/manifests/v1 || true)
expect_eq "manifest with another service account's key" 403 "$code"
drp_wait "the refusal in the log" 5 grep -qF \
	"token service gcr.io refused the credentials of service account 'other@proj.iam.gserviceaccount.com'" "$PROXY_DIR/proxy.log"
drp_log "ok: logged: $(grep -F 'token service gcr.io refused' "$PROXY_DIR/proxy.log" | tail -n 1)"
if grep -qF "$pk" "$PROXY_DIR/proxy.log" "$WORK/logs/proxy-$PROXY_NAME.err"; then
	drp_fail "the key in the log"
fi

# Sections without the key: no plugin, so the upstream's challenge
# reaches the client, whose anonymous token request is refused; nothing
# private is served.
drp_proxy_conf anon "$(drp_free_port)" "" "[registry \"gcr.io\"]
allow = 127.0.0.1/32
[registry \"*.pkg.dev\"]
allow = 127.0.0.1/32"
drp_start_proxy anon
mark=$(log_mark "$tlog")
for ref in gcr.io/proj/private:v1 $AR/proj/repo/img:v1; do
	if pskopeo copy --quiet --retry-times 0 "docker://$ref" "dir:$SCEN/anon" >"$SCEN/anon.out" 2>&1; then
		drp_fail "$ref pulled through a proxy without the key"
	fi
	expect_match "the keyless client's error for $ref" 'denied|unauthorized|authentication required|401|403' \
		"$(cat "$SCEN/anon.out")"
	rm -rf "$SCEN/anon"
done
if via_proxy dctr -n anon images pull --snapshotter native gcr.io/proj/private:v1 >"$SCEN/anon-ctr.out" 2>&1; then
	drp_fail "ctr pulled gcr.io/proj/private through a proxy without the key"
fi
expect_eq "2xx answers for the private repositories by the proxy without the key" "" \
	"$(awk '$5 ~ "^/v2/proj/" && $6 ~ /^2/' "$PROXY_DIR/access.log")"
expect_eq "key token requests by the proxy without the key" 0 "$(count_since "$tlog" "$mark" "user=_json_key")"
expect_ge "anonymous token requests refused" 1 "$(count_since "$tlog" "$mark" "user=- scope=repository:proj/private:pull status=403")"
