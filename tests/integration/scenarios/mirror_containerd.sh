#!/bin/bash
# SPDX-License-Identifier: MIT
# Registry-mirror mode (issue 12) with containerd's hosts.toml, the way
# Kubernetes nodes are configured: no HTTPS_PROXY, no proxy CA for plain
# HTTP, the registry names unresolvable for the client. containerd sends
# /v2/<repo>/...?ns=<registry> to the mirror. Pulls of an open registry,
# a token-auth registry (the proxy answers its challenge: the client has
# no way to its token service) and Docker Hub succeed; a second
# containerd (new state) pulls all three from the cache with no upstream
# blob GET; the same through the mirror TLS listener with a certificate
# of the proxy's CA; intercepted clients share that cache; a registry
# the proxy does not serve is refused.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
. "$DRP_IT_DIR/auth_lib.sh"
. "$DRP_IT_DIR/mirror_lib.sh"
drp_scenario_init
drp_require_tools containerd ctr
mirror_hub

tport=$(drp_free_port)
drp_own_proxy "mirror_tls_listen = 127.0.0.1:$tport
mirror_names = localhost 127.0.0.1"
drp_start_containerd "$SCEN/c1"
mirror_hosts_dir "$SCEN/certs.d" "$PROXY_URL" - registry.test token.test docker.io
mirror_hosts_dir "$SCEN/certs-tls.d" "https://localhost:$tport" "$PROXY_CA" registry.test token.test docker.io

refs="registry.test/test/small:v1 token.test/public/small:v1 docker.io/library/hello:v1"
reg=$(reg_log open) tok=$(reg_log token) hub=$(emu_reg_log hub)
pull_all() # HOSTS-DIR: every ref, checked by digest and content
{
	local r b
	for r in $refs; do
		mirror_client ctr -a "$CTR_SOCK" images pull --hosts-dir "$1" --snapshotter native "$r" \
			>"$SCEN/pull.out" 2>&1 || drp_fail "ctr pull $r through the mirror: $(tail -n 3 "$SCEN/pull.out")"
		expect_eq "ctr $r digest" "$SMALL_DIGEST" "$(ctr_image_digest "$r")"
	done
	for b in $SMALL_BLOBS; do
		expect_eq "content ${b:7:12}" "$b" "$(dctr content ls -q | grep -Fx "$b")"
	done
}

m1=$(log_mark "$reg") m2=$(log_mark "$tok") m3=$(log_mark "$hub") am=$(amark)
pull_all "$SCEN/certs.d"
# The registries log a request once answered: a request of the test's
# own to each, logged, makes their counts final.
settle_upstream registry.test "$reg"
settle_upstream token.test "$tok"
hub_settle=/v2/?drp-settle-$RANDOM$RANDOM hm=$(log_mark "$hub")
edirect curl -s -o /dev/null --max-time 10 --cacert "$TEST_CA" "https://registry-1.docker.io$hub_settle" || true
wait_log "$hub" "$hm" "$hub_settle" 1 10
[ "$(count_since "$hub" "$hm" "$hub_settle")" = 1 ] || drp_fail "registry-1.docker.io did not log $hub_settle"
# Each registry was asked for its image; the three hold the same blobs,
# which containerd fetched once.
for l in "$reg $m1 /v2/test/small/" "$tok $m2 /v2/public/small/" "$hub $m3 /v2/library/hello/"; do
	set -- $l
	mg=$(mirror_count "$1" "$2" GET "$3manifests/") bg=$(mirror_count "$1" "$2" GET "$3blobs/")
	drp_log "first pull: upstream manifest GETs $mg, blob GETs $bg for $3"
	expect_ge "first pull, upstream manifest GETs for $3" 1 "$mg"
done
expect_eq "first pull, upstream blob GETs in all" 3 $(($(mirror_count "$reg" "$m1" GET /v2/test/small/blobs/) +
	$(mirror_count "$tok" "$m2" GET /v2/public/small/blobs/) + $(mirror_count "$hub" "$m3" GET /v2/library/hello/blobs/)))
# The requests came to the mirror with ns= and went upstream as the
# registry's own paths; the token registry's challenge was the proxy's to
# answer (an anonymous token: the client never saw a 401).
expect_match "mirror lines in the access log" "registry-1.docker.io:443 HEAD /v2/library/hello/manifests/v1 200 .* MISS" \
	"$(log_since "$PROXY_DIR/access.log" "$am")"
expect_eq "401s to the mirror's clients" "" \
	"$(log_since "$PROXY_DIR/access.log" "$am" | awk '$6 == 401')"

# A new containerd: everything from the cache.
drp_start_containerd "$SCEN/c2"
m1=$(log_mark "$reg") m2=$(log_mark "$tok") m3=$(log_mark "$hub")
pull_all "$SCEN/certs.d"
for l in "$reg $m1" "$tok $m2" "$hub $m3"; do
	set -- $l
	drp_log "second pull: upstream requests in $(basename "$1"): $(log_since "$1" "$2" | grep -c '"\(GET\|HEAD\) /v2/' || true)"
	expect_eq "second pull: upstream GETs and HEADs in $(basename "$1")" "0 0" \
		"$(mirror_count "$1" "$2" GET /v2/ | head -1) $(mirror_count "$1" "$2" HEAD /v2/)"
done

# The TLS listener, its certificate made by the proxy's CA for
# mirror_names; a third containerd, served from the cache as well.
drp_start_containerd "$SCEN/c3"
m1=$(log_mark "$reg") m3=$(log_mark "$hub")
pull_all "$SCEN/certs-tls.d"
expect_eq "TLS mirror: upstream GETs" "0 0" \
	"$(mirror_count "$reg" "$m1" GET /v2/) $(mirror_count "$hub" "$m3" GET /v2/)"

# Intercepted and mirror clients share one cache for Docker Hub: a tag
# (per Accept) fetched through the mirror, and a blob, are HITs for a
# client that intercepts registry-1.docker.io.
acc='Accept: application/vnd.docker.distribution.manifest.v2+json'
curl -sS -o "$SCEN/m1" -H "$acc" "$PROXY_URL/v2/library/hello/manifests/v1?ns=docker.io"
expect_file_digest "docker hub manifest through the mirror" "$SCEN/m1" "$SMALL_DIGEST"
curl -sS -o "$SCEN/l1" "$PROXY_URL/v2/library/hello/blobs/${SMALL_LAYERS%% *}?ns=docker.io"
expect_file_digest "a docker hub layer through the mirror" "$SCEN/l1" "${SMALL_LAYERS%% *}"
m3=$(log_mark "$hub") am=$(amark)
pcurl -o "$SCEN/m2" -H "$acc" https://registry-1.docker.io/v2/library/hello/manifests/v1
expect_file_digest "the same, intercepted" "$SCEN/m2" "$SMALL_DIGEST"
pcurl -o "$SCEN/l2" "https://registry-1.docker.io/v2/library/hello/blobs/${SMALL_LAYERS%% *}"
expect_file_digest "a layer, intercepted" "$SCEN/l2" "${SMALL_LAYERS%% *}"
expect_eq "intercepted after the mirror: results" "HIT HIT" \
	"$(anext '$11' "$am" registry-1.docker.io:443 GET /v2/library/hello/manifests/v1) $(anext '$11' "$am" registry-1.docker.io:443 GET "/v2/library/hello/blobs/${SMALL_LAYERS%% *}")"
expect_eq "intercepted after the mirror: upstream requests" "0 0" \
	"$(mirror_count "$hub" "$m3" GET /v2/) $(mirror_count "$hub" "$m3" HEAD /v2/)"

# A registry that is not the proxy's: 403, with a log line; a malformed
# ns: 400.
code=$(curl -sS -o "$SCEN/r" -w '%{http_code}' "$PROXY_URL/v2/x/y/manifests/v1?ns=elsewhere.test")
expect_eq "a registry the proxy does not serve" "403 this mirror does not serve elsewhere.test" "$code $(cat "$SCEN/r")"
expect_match "its log line" 'mirror request for elsewhere.test refused: not one of the proxy.s registries' \
	"$(cat "$PROXY_DIR/proxy.log")"
expect_eq "a malformed ns" 400 "$(curl -sS -o /dev/null -w '%{http_code}' "$PROXY_URL/v2/x/y/manifests/v1?ns=a%2Fb")"
