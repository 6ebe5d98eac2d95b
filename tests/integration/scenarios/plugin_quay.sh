#!/bin/bash
# SPDX-License-Identifier: MIT
# Plugin quay against an emulated quay.io under its real name (issue 4):
# one host serves the registry (docker-registry, token auth, service
# quay.io) and its token endpoint https://quay.io/v2/auth (tokenserver.py
# behind nginx, as quay.io routes both), which answers only {"token"} (no
# expires_in, so the default lifetime applies), GET only, and knows a
# robot account "org+robot": the '+' has to reach it intact.
# With [registry "quay.io"] plugin = quay and the robot, clients without
# any credentials (skopeo, podman, ctr, docker) pull quay.io/org/private:v1;
# ten pulls cost one token request. Without the robot, the public image
# is pulled with anonymous tokens and the private one is refused.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$DRP_IT_DIR/auth_lib.sh"
drp_scenario_init
drp_require_tools skopeo podman ctr containerd
emu_no_client_creds
ROBOT=org+robot
ROBOT_TOKEN=R0B0T7OKEN+QUAY/EMULATION2W5XNDVFOZ4C8RTQ3K9BG1HSJYMPLAUI6E0

emu_host quay.io 127.0.0.34
tport=$(drp_free_port)
rport=$(drp_free_port)
emu_tokens quay "{
  \"listen\": \"127.0.0.1:$tport\", \"tls\": false,
  \"path\": \"/v2/auth\", \"services\": [\"quay.io\"], \"fields\": [\"token\"],
  \"oauth_post\": false, \"storage\": \"$SCEN/storage/quay\",
  \"accounts\": {
    \"$ROBOT\": {\"password_file\": \"$(drp_secret quay-robot.token "$ROBOT_TOKEN")\",
                 \"grants\": [[\"org/*\", [\"pull\"]]]},
    \"${EMU_ADMIN%%:*}\": {\"password\": \"${EMU_ADMIN#*:}\", \"grants\": [[\"*\", [\"pull\", \"push\"]]]}},
  \"anonymous\": [[\"org/public\", [\"pull\"]]],
  \"bad_credentials\": {\"error\": \"Invalid Username or Password\"}}"
emu_registry quay "127.0.0.1:$rport" quay.io https://quay.io/v2/auth host=https://quay.io
emu_nginx "$(emu_front quay.io "$rport" /v2/auth "$tport")"
emu_nginx_wait quay.io
emu_push push quay.io/org/private:v1
emu_push small quay.io/org/public:v1
tlog=$(emu_token_log quay)

# What the emulation does without the proxy: the realm is on quay.io
# itself; the answer holds only "token"; the robot is known by its name.
code=$(edirect curl -sS -o /dev/null -D "$SCEN/ch" -w '%{http_code}' --cacert "$TEST_CA" https://quay.io/v2/)
expect_eq "direct /v2/" 401 "$code"
expect_eq "the registry's challenge" 'Bearer realm="https://quay.io/v2/auth",service="quay.io"' \
	"$(hdr WWW-Authenticate <"$SCEN/ch")"
expect_eq "fields of the robot's token answer" '["token"]' \
	"$(edirect curl -sS --cacert "$TEST_CA" -u "$ROBOT:$ROBOT_TOKEN" \
		'https://quay.io/v2/auth?service=quay.io&scope=repository:org/private:pull' | jq -c keys)"
expect_eq "the robot with a wrong token" 401 \
	"$(edirect curl -sS -o /dev/null -w '%{http_code}' --cacert "$TEST_CA" -u "$ROBOT:wrong" \
		'https://quay.io/v2/auth?service=quay.io&scope=repository:org/private:pull')"

drp_own_proxy "" "tag_ttl = 0s
[registry \"quay.io\"]
plugin = quay
username = $ROBOT
password_file = $WORK/secrets/quay-robot.token
allow = 127.0.0.1/32"
mark=$(log_mark "$tlog")

# skopeo, ten pulls of the private image: one token request, the robot's.
for i in $(seq 1 10); do
	rm -rf "$SCEN/private"
	pskopeo copy --quiet --retry-times 0 docker://quay.io/org/private:v1 "dir:$SCEN/private"
	[ "$i" = 1 ] && check_dir_image "$SCEN/private" "$PUSH_DIGEST" $PUSH_BLOBS
done
check_dir_image "$SCEN/private" "$PUSH_DIGEST" $PUSH_BLOBS
expect_eq "token requests in 10 skopeo pulls of org/private" \
	"1 GET user=$ROBOT scope=repository:org/private:pull status=200 service=quay.io" \
	"$(emu_token_counts "$tlog" "$mark")"

# podman, ctr and docker, no credentials either.
pd=$SCEN/p
drp_at_exit "drp_podman_reset '$pd'"
via_proxy drp_podman "$pd" pull -q quay.io/org/private:v1 >/dev/null
expect_eq "podman, quay.io/org/private:v1" "$PUSH_DIGEST" \
	"$(drp_podman "$pd" inspect --format '{{.Digest}}' quay.io/org/private:v1)"
drp_start_containerd "$SCEN/ctd"
via_proxy dctr images pull --snapshotter native quay.io/org/private:v1 >/dev/null
expect_eq "ctr, quay.io/org/private:v1" "$PUSH_DIGEST" "$(ctr_image_digest quay.io/org/private:v1)"
if command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1; then
	drp_start_dockerd "$SCEN/dk" proxy
	docker pull -q quay.io/org/private:v1 >"$SCEN/pull.out"
	expect_eq "docker, quay.io/org/private:v1" "$PUSH_DIGEST" "$(docker_repo_digest quay.io/org/private:v1)"
elif drp_strict; then
	drp_fail "dockerd missing under DRP_STRICT=1"
fi
expect_eq "token requests for all pulls" \
	"1 GET user=$ROBOT scope=repository:org/private:pull status=200 service=quay.io" \
	"$(emu_token_counts "$tlog" "$mark")"
drp_log "token requests: $(log_since "$tlog" "$mark" | sort | uniq -c | tr -s ' ' | paste -sd';')"

emu_check_no_client_creds
for f in "$PROXY_DIR/access.log" "$PROXY_DIR/proxy.log" "$WORK/logs/proxy-$PROXY_NAME.err"; do
	if grep -qF -e "$ROBOT_TOKEN" -e "$(printf '%s:%s' "$ROBOT" "$ROBOT_TOKEN" | base64 -w0)" "$f"; then
		drp_fail "the robot's token in $f"
	fi
done
drp_log "ok: the robot's token is in none of the proxy's logs"

# A wrong robot token: the client gets 403, the log names the robot (its
# '+' intact) and never the token.
drp_proxy_conf wrong "$(drp_free_port)" "" "[registry \"quay.io\"]
plugin = quay
username = $ROBOT
password_file = $(drp_secret quay-wrong.token "${ROBOT_TOKEN}X")
allow = 127.0.0.1/32"
drp_start_proxy wrong
code=$(pcurl -o /dev/null -w '%{http_code}' -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
	https://quay.io/v2/org/private/manifests/v1 || true)
expect_eq "manifest with a wrong robot token" 403 "$code"
drp_wait "the refusal in the log" 5 grep -qF "token service quay.io refused the credentials of user '$ROBOT'" "$PROXY_DIR/proxy.log"
drp_log "ok: logged: $(grep -F 'token service quay.io refused' "$PROXY_DIR/proxy.log" | tail -n 1)"
if grep -qF "$ROBOT_TOKEN" "$PROXY_DIR/proxy.log" "$WORK/logs/proxy-$PROXY_NAME.err"; then
	drp_fail "the robot's token in the log"
fi

# No robot: anonymous tokens serve the public image; the private one is
# refused and nothing of it is served.
drp_proxy_conf anon "$(drp_free_port)" "" "[registry \"quay.io\"]
plugin = quay
allow = 127.0.0.1/32"
drp_start_proxy anon
mark=$(log_mark "$tlog")
pskopeo copy --quiet --retry-times 0 docker://quay.io/org/public:v1 "dir:$SCEN/public"
check_dir_image "$SCEN/public" "$SMALL_DIGEST" $SMALL_BLOBS
expect_eq "anonymous token requests for org/public" \
	"1 GET user=- scope=repository:org/public:pull status=200 service=quay.io" \
	"$(emu_token_counts "$tlog" "$mark")"
if pskopeo copy --quiet --retry-times 0 docker://quay.io/org/private:v1 "dir:$SCEN/private-anon" \
	>"$SCEN/anon.out" 2>&1; then
	drp_fail "quay.io/org/private pulled through a proxy without the robot"
fi
expect_match "the anonymous client's error" 'denied|unauthorized|authentication required|401|403' "$(cat "$SCEN/anon.out")"
if via_proxy drp_podman "$pd" pull -q quay.io/org/private:v1 >"$SCEN/anon-podman.out" 2>&1; then
	drp_fail "podman pulled quay.io/org/private through a proxy without the robot"
fi
expect_eq "2xx answers for org/private by the proxy without the robot" "" \
	"$(awk '$5 ~ "^/v2/org/private/" && $6 ~ /^2/' "$PROXY_DIR/access.log")"
expect_eq "robot token requests by the proxy without the robot" 0 "$(count_since "$tlog" "$mark" "user=$ROBOT")"
