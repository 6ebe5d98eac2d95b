#!/bin/bash
# SPDX-License-Identifier: MIT
# Images share base layers across repositories. redirect.test answers
# blob HEAD (and GET) with 307 to cdn.test, as Docker Hub does: a
# repository that shares layers with a cached one costs the upstream a
# HEAD per blob and no GET, also after a clean restart and after kill -9.
# A redirect counts only for an identity the registry accepted: priv.test
# (stale.test's address; the same storage behind htpasswd) gives the
# cached layers to a client with credentials, never to an anonymous one.
# GETs are counted in the registry's and the CDN's own logs.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
drp_scenario_init
drp_require_tools skopeo

for r in a b c d; do
	drp_push_direct small "redirect.test/shared/$r:v1"
done

# priv.test: a second registry host over the same storage, with Basic
# auth and the same redirect to cdn.test.
ip=${DRP_IP[stale.test]}
cat >"$SCEN/priv.yml" <<EOF
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $WORK/storage/redirect
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $ip:443
  secret: drp-integration-priv
  tls:
    certificate: $WORK/pki/stale.test.crt
    key: $WORK/pki/stale.test.key
auth:
  htpasswd:
    realm: drp-priv-realm
    path: $WORK/htpasswd
middleware:
  storage:
    - name: redirect
      options:
        baseurl: https://cdn.test
EOF
drp_bg reg-priv env -u REGISTRY_AUTH_FILE docker-registry serve "$SCEN/priv.yml"
drp_wait_started reg-priv "$DRP_LAST_PID" 30 \
	curl -s -o /dev/null --cacert "$TEST_CA" --resolve "stale.test:443:$ip" https://stale.test/v2/
PRIV_LOG=$WORK/logs/reg-priv.out

DRP_IT_REGISTRIES="registry.test redirect.test stale.test" drp_proxy_conf shared-layers "$(drp_free_port)"
drp_start_proxy shared-layers

cdn_path() { echo "/docker/registry/v2/blobs/sha256/${1:7:2}/${1#sha256:}/data"; }

# fence FILE URL: a request of our own straight to a server, waited for
# in its log: what the proxy asked before is logged by then.
fence_n=0
fence()
{
	local m
	fence_n=$((fence_n + 1))
	m=$(log_mark "$1")
	dcurl -o /dev/null "$2?fence=$fence_n" 2>/dev/null || true
	wait_log "$1" "$m" "fence=$fence_n " 1 10
	[ "$(count_since "$1" "$m" "fence=$fence_n ")" = 1 ] || drp_fail "fence $fence_n not in $1"
}

# upstream_gets WHAT CDN-MARK REG-LOG REG-MARK REPO: no blob GET reached
# the CDN or the registry for REPO since the marks.
no_upstream_gets()
{
	local what=$1 cmark=$2 reg=$3 rmark=$4 repo=$5 b n=0
	fence "$(CDN_LOG)" https://cdn.test/fence
	fence "$reg" "https://${repo%%/*}/v2/"
	for b in $SMALL_BLOBS; do
		n=$((n + $(count_since "$(CDN_LOG)" "$cmark" "$(req_pat GET "$(cdn_path "$b")")")))
	done
	expect_eq "$what: CDN GETs of the shared blobs" 0 "$n"
	expect_eq "$what: registry blob GETs" 0 \
		"$(count_since "$reg" "$rmark" "\"GET /v2/${repo#*/}/blobs/")"
	drp_log "($what: $(count_since "$reg" "$rmark" "\"HEAD /v2/${repo#*/}/blobs/") blob HEADs)"
}

# pull WHAT REGISTRY/REPO [SKOPEO-ARGS...]: a fresh client pulls the
# image byte for byte; no blob GET goes upstream.
pull()
{
	local what=$1 ref=$2 reg cmark rmark
	shift 2
	case ${ref%%/*} in
	redirect.test) reg=$(reg_log redirect) ;;
	registry.test) reg=$(reg_log open) ;;
	stale.test) reg=$PRIV_LOG ;;
	esac
	cmark=$(log_mark "$(CDN_LOG)")
	rmark=$(log_mark "$reg")
	rm -rf "$SCEN/img"
	pskopeo copy --quiet --retry-times 0 "$@" "docker://$ref:v1" "dir:$SCEN/img"
	check_dir_image "$SCEN/img" "$SMALL_DIGEST" $SMALL_BLOBS
	no_upstream_gets "$what" "$cmark" "$reg" "$rmark" "$ref"
}

# Repository a: fetched through the CDN once.
cmark=$(log_mark "$(CDN_LOG)")
pskopeo copy --quiet --retry-times 0 docker://redirect.test/shared/a:v1 "dir:$SCEN/a"
check_dir_image "$SCEN/a" "$SMALL_DIGEST" $SMALL_BLOBS
for b in $SMALL_BLOBS; do
	wait_log "$(CDN_LOG)" "$cmark" "$(req_pat GET "$(cdn_path "$b")")" 1 5
	expect_eq "repository a: CDN GETs of ${b:7:12}" 1 \
		"$(count_since "$(CDN_LOG)" "$cmark" "$(req_pat GET "$(cdn_path "$b")")")"
done

# Repository b shares every layer: the registry's 307 to the HEAD says
# that b has them; the cache serves them.
pull "repository b" redirect.test/shared/b
# The same layers under another registry host.
pull "registry.test" registry.test/test/small

# priv.test: anonymous clients get the registry's 401, not the cache.
layer=${SMALL_LAYERS%% *}
cmark=$(log_mark "$(CDN_LOG)")
code=$(pcurl -o "$SCEN/anon" -D "$SCEN/anon.h" -w '%{http_code}' "https://stale.test/v2/shared/a/blobs/$layer")
expect_eq "priv.test anonymous blob GET status" 401 "$code"
expect_eq "priv.test anonymous challenge" 'Basic realm="drp-priv-realm"' "$(hdr WWW-Authenticate <"$SCEN/anon.h")"
code=$(pcurl -o "$SCEN/anon" -w '%{http_code}' -r 0-99 "https://stale.test/v2/shared/a/blobs/$layer")
expect_eq "priv.test anonymous ranged GET status" 401 "$code"
code=$(pcurl -o "$SCEN/anon" -w '%{http_code}' -I "https://stale.test/v2/shared/a/blobs/$layer")
expect_eq "priv.test anonymous HEAD status" 401 "$code"
# With credentials the registry redirects the HEAD: served from the cache.
pull "priv.test with credentials" stale.test/shared/a --src-creds "$BASIC_USER:$BASIC_PASS"

# A clean restart: repository c.
drp_unwatch_proxies
drp_stop "$PROXY_PID" 15 || drp_fail "the proxy did not stop on SIGTERM"
drp_start_proxy shared-layers
pull "after a restart, repository c" redirect.test/shared/c

# kill -9 and a restart: repository d, and a again.
drp_unwatch_proxies
kill -KILL "$PROXY_PID"
wait "$PROXY_PID" 2>/dev/null || true
drp_start_proxy shared-layers
pull "after kill -9, repository d" redirect.test/shared/d
pull "after kill -9, repository a" redirect.test/shared/a

# The identity must be accepted: with the basic plugin for priv.test, the
# very first request the plugin sees is challenged (it learns the scheme
# then); the retry with the credentials is answered with the redirect,
# which confirms the blob like a first answer would (on Docker Hub, every
# new repository's first HEAD is challenged for a token of its scope).
# The next repository's HEAD carries the credentials at once.
DRP_IT_REGISTRIES="redirect.test stale.test" drp_proxy_conf shared-layers-plugin "$(drp_free_port)" \
	"[registry \"stale.test\"]
plugin = basic
username = $BASIC_USER
password = $BASIC_PASS"
drp_start_proxy shared-layers-plugin
pskopeo copy --quiet --retry-times 0 docker://redirect.test/shared/a:v1 "dir:$SCEN/p"
check_dir_image "$SCEN/p" "$SMALL_DIGEST" $SMALL_BLOBS
# blob_get WHAT REPO EXPECTED-CDN-GETS EXPECTED-CHALLENGES
blob_get()
{
	local cmark rmark
	cmark=$(log_mark "$(CDN_LOG)")
	rmark=$(log_mark "$PRIV_LOG")
	pcurl -o "$SCEN/blob" "https://stale.test/v2/$2/blobs/$layer"
	expect_file_digest "$1: bytes" "$SCEN/blob" "$layer"
	fence "$(CDN_LOG)" https://cdn.test/fence
	fence "$PRIV_LOG" https://stale.test/v2/
	expect_eq "$1: CDN GETs" "$3" "$(count_since "$(CDN_LOG)" "$cmark" "$(req_pat GET "$(cdn_path "$layer")")")"
	expect_eq "$1: 401 to the HEAD" "$4" \
		"$(log_since "$PRIV_LOG" "$rmark" | grep -F "$(req_pat HEAD "/v2/$2/blobs/$layer")" | grep -c '" 401 ' || true)"
}
blob_get "challenged HEAD" shared/b 0 1
blob_get "HEAD with the credentials at once" shared/c 0 0
